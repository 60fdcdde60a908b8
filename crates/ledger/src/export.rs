//! The export of a stored ledger: every account and every transfer, as typed values
//! ([`LedgerExport`]) and as JSON Lines ([`export()`], built on them), for reconciliation.

use std::collections::VecDeque;
use std::io::Write;
use std::iter::FusedIterator;
use std::path::Path;

use crate::codec::{DecodeError, decode_table_piece, decode_transfer_run, key_u128};
use crate::error::Error;
use crate::ledger::trees::{Entry, Trees, open_offline};
use crate::model::{Account, AccountFlags, PendingStatus, Transfer, TransferFlags, TransferId};

/// A stored ledger opened for reading every account and every transfer, as typed values.
///
/// [`LedgerExport::open`] opens the ledger directory the way [`export()`] and [`audit()`]
/// do: it refuses a missing directory rather than creating a ledger, checks the storage
/// format version before reading anything ([`Error::UnsupportedFormat`]), and writes nothing.
/// It holds sled's exclusive file lock until it is dropped, so it fails cleanly
/// ([`Error::Storage`]) while a node holds the ledger, and a node cannot open the ledger while
/// an export is open.
///
/// Accounts come with their balances as of the last journal record, transfers with the
/// status of each pending transfer (posted, voided, expired or still pending) and the journal
/// record that holds them. Flags are the model's typed [`AccountFlags`] and
/// [`TransferFlags`]; amounts and ids are the model's integers.
///
/// A reconciliation that needs a few accounts and the transfers that touch them, as the pair
/// audit does for a corridor:
///
/// ```
/// use std::collections::BTreeMap;
///
/// use kakehashi_ledger::{
///     Account, AccountId, ExportedTransfer, LedgerExport, PendingStatus, TransferFlags,
/// };
/// # use kakehashi_ledger::{Ledger, NewAccount, NewTransfer, Options, Timestamp, TransferId};
/// # fn main() -> Result<(), kakehashi_ledger::Error> {
/// # let dir = tempfile::tempdir().expect("a temporary directory");
/// # let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
/// # let ledger = Ledger::open(dir.path(), key, Options::default())?;
/// # let now = Timestamp::from_unix_nanos(1_764_000_000_000_000_000);
/// # let accounts = [1, 2].map(|id| NewAccount {
/// #     id: AccountId(id), ledger: 392, code: 1, ..NewAccount::default()
/// # });
/// # ledger.create_accounts(&accounts, now)?;
/// # let reserve = NewTransfer {
/// #     id: TransferId(10), debit_account_id: AccountId(1), credit_account_id: AccountId(2),
/// #     amount: 5_000, ledger: 392, code: 1, flags: TransferFlags::PENDING,
/// #     ..NewTransfer::default()
/// # };
/// # let post = NewTransfer {
/// #     id: TransferId(11), pending_id: TransferId(10), amount: 5_000,
/// #     flags: TransferFlags::POST_PENDING_TRANSFER, ..NewTransfer::default()
/// # };
/// # ledger.create_transfers(&[reserve, post], now)?;
/// # ledger.close()?;
/// # let path = dir.path();
/// let corridor = AccountId(2);
/// let export = LedgerExport::open(path)?;
/// let balances: BTreeMap<AccountId, Account> = export
///     .accounts()
///     .filter(|account| account.id == corridor)
///     .map(|account| (account.id, account))
///     .collect();
/// assert_eq!(balances[&corridor].credits_posted, 5_000);
/// for item in export.transfers() {
///     // An error (a corrupt index, an unreadable journal chunk) ends the iteration.
///     let ExportedTransfer { transfer, pending_status, .. } = item?;
///     if transfer.debit_account_id != corridor && transfer.credit_account_id != corridor {
///         continue;
///     }
///     if transfer.flags.contains(TransferFlags::PENDING) {
///         // A reservation, and what became of it.
///         assert_eq!(pending_status, Some(PendingStatus::Posted));
///     } else if transfer.flags.contains(TransferFlags::POST_PENDING_TRANSFER) {
///         // The posting of a reservation: `pending_id` names it.
///         assert_eq!((transfer.pending_id.0, transfer.amount), (10, 5_000));
///     }
/// }
/// # Ok(()) }
/// ```
///
/// [`audit()`]: crate::audit()
pub struct LedgerExport {
    trees: Trees,
    /// Every account as of the last journal record, in id order.
    accounts: Vec<Account>,
}

impl LedgerExport {
    /// Opens the ledger in directory `path` for export (see [`LedgerExport`]) and loads its
    /// accounts: the stored snapshot plus the journal records written since.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let trees = open_offline(path)?;
        let mut accounts: Vec<Account> = crate::recovery::load_accounts(&trees)?
            .accounts
            .into_values()
            .collect();
        accounts.sort_unstable_by_key(|account| account.id);
        Ok(Self { trees, accounts })
    }

    /// Every account in id order, with its balances as of the last journal record.
    pub fn accounts(&self) -> ExportAccounts<'_> {
        ExportAccounts(self.accounts.iter())
    }

    /// Every transfer in id order, read from the journal record that holds it. Each call
    /// scans the stored transfers anew.
    pub fn transfers(&self) -> ExportTransfers<'_> {
        let mut sources = vec![Source {
            kind: SourceKind::Runs,
            entries: Box::new(self.trees.transfers.iter()),
            ids: VecDeque::new(),
        }];
        // Each id table is a second sorted sequence of ids; the iterator merges them all.
        let tables = self.trees.id_table_list();
        let error = match tables {
            Ok(tables) => {
                sources.extend(tables.into_iter().map(|(table, _)| Source {
                    kind: SourceKind::Table(table),
                    entries: Box::new(self.trees.id_tables.scan_prefix(&table.to_be_bytes())),
                    ids: VecDeque::new(),
                }));
                None
            }
            Err(error) => Some(error),
        };
        ExportTransfers {
            trees: &self.trees,
            sources,
            error,
            failed: false,
        }
    }
}

/// The iterator of [`LedgerExport::accounts`].
#[derive(Clone, Debug)]
pub struct ExportAccounts<'a>(std::slice::Iter<'a, Account>);

impl Iterator for ExportAccounts<'_> {
    type Item = Account;

    fn next(&mut self) -> Option<Account> {
        self.0.next().copied()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for ExportAccounts<'_> {}

impl FusedIterator for ExportAccounts<'_> {}

/// A stored transfer as [`LedgerExport::transfers`] gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExportedTransfer {
    /// The transfer as it was created.
    pub transfer: Transfer,
    /// For a pending transfer, where it stands now: still pending, posted, voided or expired.
    /// `None` for every other transfer.
    pub pending_status: Option<PendingStatus>,
    /// The sequence number of the journal record that holds the transfer.
    pub journal_seq: u64,
}

/// The iterator of [`LedgerExport::transfers`]: every transfer in id order, or the error that
/// stopped the scan (after which it yields nothing).
pub struct ExportTransfers<'a> {
    trees: &'a Trees,
    /// The run index and each id table, every one read in id order; each id is in exactly
    /// one of them.
    sources: Vec<Source>,
    /// An error met before the scan started (listing the id tables), yielded first.
    error: Option<Error>,
    failed: bool,
}

/// Where a [`Source`] reads its ids from.
#[derive(Clone, Copy)]
enum SourceKind {
    /// The run index (see `PREFIX_TRANSFER`): one entry per run of ids.
    Runs,
    /// Id table number `n` (see `PREFIX_ID_TABLE`): one entry per piece.
    Table(u64),
}

/// One sorted sequence of stored ids and their journal locations.
struct Source {
    kind: SourceKind,
    entries: Box<dyn Iterator<Item = sled::Result<Entry>> + Send>,
    /// The ids of the entry being read that are not yet yielded: id, record, entry index.
    ids: VecDeque<(u128, u64, u32)>,
}

impl Source {
    /// The next id of the source, if any, without taking it.
    fn peek(&mut self) -> Result<Option<(u128, u64, u32)>, Error> {
        while self.ids.is_empty() {
            let Some(item) = self.entries.next() else {
                return Ok(None);
            };
            let (key, value) = item.map_err(Error::storage("scanning transfers"))?;
            match self.kind {
                SourceKind::Runs => {
                    let first =
                        key_u128(&key, "transfer run key").map_err(Error::corrupt("transfer"))?;
                    let run =
                        decode_transfer_run(&value).map_err(Error::corrupt("transfer run"))?;
                    for offset in 0..run.len() {
                        let id = first.wrapping_add(u128::from(offset));
                        let (seq, index) = run.location(offset).ok_or_else(|| Error::Corrupt {
                            what: TransferId(id).to_string(),
                            source: DecodeError {
                                what: "transfer run",
                                detail: format!(
                                    "no location for offset {offset} of a run of {}",
                                    run.len()
                                ),
                            },
                        })?;
                        self.ids.push_back((id, seq, index));
                    }
                }
                SourceKind::Table(table) => {
                    let piece = decode_table_piece(&value)
                        .map_err(Error::corrupt(format!("id table {table}")))?;
                    self.ids.extend(
                        piece
                            .into_iter()
                            .map(|entry| (entry.id, entry.seq, entry.index)),
                    );
                }
            }
        }
        Ok(self.ids.front().copied())
    }
}

impl Iterator for ExportTransfers<'_> {
    type Item = Result<ExportedTransfer, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let next = self.next_transfer().transpose();
        self.failed = matches!(next, Some(Err(_)));
        next
    }
}

impl FusedIterator for ExportTransfers<'_> {}

impl ExportTransfers<'_> {
    fn next_transfer(&mut self) -> Result<Option<ExportedTransfer>, Error> {
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        // The source whose next id is the least (a few sources: a linear pick will do).
        let mut least: Option<(usize, u128)> = None;
        for (at, source) in self.sources.iter_mut().enumerate() {
            if let Some((id, _, _)) = source.peek()?
                && least.is_none_or(|(_, least_id)| id < least_id)
            {
                least = Some((at, id));
            }
        }
        let Some((id, seq, index)) = least
            .and_then(|(at, _)| self.sources.get_mut(at))
            .and_then(|source| source.ids.pop_front())
        else {
            return Ok(None);
        };
        // The index names where the transfer is in the journal; read it from there.
        let transfer = self.trees.transfer_at(TransferId(id), seq, index)?;
        let pending_status = if transfer.flags.contains(TransferFlags::PENDING) {
            self.trees.pending_status(transfer.id)?
        } else {
            None
        };
        Ok(Some(ExportedTransfer {
            transfer,
            pending_status,
            journal_seq: seq,
        }))
    }
}

/// What [`export()`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportSummary {
    /// Account lines.
    pub accounts: u64,
    /// Transfer lines.
    pub transfers: u64,
}

/// Writes every account, then every transfer, as JSON Lines (one object per line with a
/// `"type"` of `"account"` or `"transfer"`), for reconciliation. `u128` values are decimal
/// strings because common JSON tools hold numbers as 64-bit floats. The ledger is read
/// through [`LedgerExport`], which says how it is opened.
pub fn export(path: &Path, out: &mut dyn Write) -> Result<ExportSummary, Error> {
    let ledger = LedgerExport::open(path)?;
    export_lines(ledger.accounts(), ledger.transfers(), out)
}

/// Writes `accounts`, then `transfers`, as [`export()`] writes them (one JSON object per
/// line), for an engine that reads them from its own storage: the lines cannot differ between
/// engines. An `Err` among the transfers ends the export with it.
pub fn export_lines(
    accounts: impl IntoIterator<Item = Account>,
    transfers: impl IntoIterator<Item = Result<ExportedTransfer, Error>>,
    out: &mut dyn Write,
) -> Result<ExportSummary, Error> {
    let mut summary = ExportSummary::default();
    let write_line = |out: &mut dyn Write, value: serde_json::Value| -> Result<(), Error> {
        serde_json::to_writer(&mut *out, &value).map_err(|error| Error::Io {
            context: "writing the export".into(),
            source: error.into(),
        })?;
        out.write_all(b"\n")
            .map_err(Error::io("writing the export"))
    };
    for account in accounts {
        write_line(out, account_json(&account))?;
        summary.accounts = summary.accounts.saturating_add(1);
    }
    for item in transfers {
        let exported = item?;
        write_line(
            out,
            transfer_json(&exported.transfer, exported.pending_status),
        )?;
        summary.transfers = summary.transfers.saturating_add(1);
    }
    out.flush().map_err(Error::io("writing the export"))?;
    Ok(summary)
}

fn account_json(account: &Account) -> serde_json::Value {
    serde_json::json!({
        "type": "account",
        "id": account.id.0.to_string(),
        "ledger": account.ledger,
        "code": account.code,
        "flags": account_flag_names(account.flags),
        "debits_pending": account.debits_pending.to_string(),
        "debits_posted": account.debits_posted.to_string(),
        "credits_pending": account.credits_pending.to_string(),
        "credits_posted": account.credits_posted.to_string(),
        "user_data_128": account.user_data_128.to_string(),
        "user_data_64": account.user_data_64,
        "user_data_32": account.user_data_32,
        "timestamp": account.timestamp.0,
    })
}

fn transfer_json(transfer: &Transfer, status: Option<PendingStatus>) -> serde_json::Value {
    serde_json::json!({
        "type": "transfer",
        "id": transfer.id.0.to_string(),
        "debit_account_id": transfer.debit_account_id.0.to_string(),
        "credit_account_id": transfer.credit_account_id.0.to_string(),
        "amount": transfer.amount.to_string(),
        "pending_id": transfer.pending_id.0.to_string(),
        "ledger": transfer.ledger,
        "code": transfer.code,
        "flags": transfer_flag_names(transfer.flags),
        "timeout": transfer.timeout,
        "user_data_128": transfer.user_data_128.to_string(),
        "user_data_64": transfer.user_data_64,
        "user_data_32": transfer.user_data_32,
        "timestamp": transfer.timestamp.0,
        "pending_status": status.map(PendingStatus::as_str),
    })
}

fn account_flag_names(flags: AccountFlags) -> Vec<&'static str> {
    [
        (AccountFlags::LINKED, "linked"),
        (
            AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
            "debits_must_not_exceed_credits",
        ),
        (
            AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS,
            "credits_must_not_exceed_debits",
        ),
        (AccountFlags::HISTORY, "history"),
        (AccountFlags::IMPORTED, "imported"),
        (AccountFlags::CLOSED, "closed"),
    ]
    .into_iter()
    .filter(|(flag, _)| flags.contains(*flag))
    .map(|(_, name)| name)
    .collect()
}

fn transfer_flag_names(flags: TransferFlags) -> Vec<&'static str> {
    [
        (TransferFlags::LINKED, "linked"),
        (TransferFlags::PENDING, "pending"),
        (
            TransferFlags::POST_PENDING_TRANSFER,
            "post_pending_transfer",
        ),
        (
            TransferFlags::VOID_PENDING_TRANSFER,
            "void_pending_transfer",
        ),
        (TransferFlags::BALANCING_DEBIT, "balancing_debit"),
        (TransferFlags::BALANCING_CREDIT, "balancing_credit"),
        (TransferFlags::CLOSING_DEBIT, "closing_debit"),
        (TransferFlags::CLOSING_CREDIT, "closing_credit"),
        (TransferFlags::IMPORTED, "imported"),
    ]
    .into_iter()
    .filter(|(flag, _)| flags.contains(*flag))
    .map(|(_, name)| name)
    .collect()
}

#[cfg(test)]
mod tests;
