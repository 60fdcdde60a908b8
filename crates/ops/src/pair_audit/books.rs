//! Loading one node's books offline: its ledger's own audit, the corridor's accounts and
//! transfers from the ledger's export, and the payment store's records of the corridor.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use ed25519_dalek::pkcs8::DecodePublicKey as _;
use kakehashi_ledger::{
    AccountId, AuditOptions, AuditReport, PendingStatus, Timestamp, Transfer, TransferFlags,
    TransferId,
};
use kakehashi_node::config::{Config, Peer};
use kakehashi_node::store::{InboundRecord, OutboundRecord, Store, StoreError};
use kakehashi_pki::cert::Cert;
use kakehashi_pki::mra::Mra;
use kakehashi_pki::pem;
use serde::Deserialize;

use kakehashi_protocol::instruction::Uetr;
use kakehashi_protocol::money::{self, Currency};

/// Why the audit could not run (as opposed to what it found, which is in the report).
#[derive(Debug, thiserror::Error)]
pub enum PairAuditError {
    /// The two configurations are not the two ends of one corridor.
    #[error("the two configurations are not a pair: {0}")]
    NotAPair(String),
    /// The agreement does not name a jurisdiction or its currency.
    #[error("agreement: {0}")]
    Agreement(String),
    /// A file the audit needs is unusable (the node's signing certificate).
    #[error("{jurisdiction}: {what} {path}: {message}")]
    File {
        /// The node.
        jurisdiction: String,
        /// Which file.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The ledger could not be audited or exported.
    #[error("{jurisdiction}'s ledger {path}: {error}")]
    Ledger {
        /// The node.
        jurisdiction: String,
        /// The ledger directory.
        path: PathBuf,
        /// The ledger's error (in the message, so it is not a `source` too: a chain printer
        /// would show it twice).
        error: kakehashi_ledger::Error,
    },
    /// The ledger export has a line this audit cannot read.
    #[error("{jurisdiction}'s ledger export, line {line}: {detail}")]
    Export {
        /// The node.
        jurisdiction: String,
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        detail: String,
    },
    /// The payment store could not be read.
    #[error("{jurisdiction}'s payment store {path}: {error}{hint}")]
    Store {
        /// The node.
        jurisdiction: String,
        /// The store directory.
        path: PathBuf,
        /// The store's error (in the message only, as for `Ledger`).
        error: StoreError,
        /// What to do, when known.
        hint: &'static str,
    },
}

/// A ledger account's balances as the export shows them (after replaying the journal).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountView {
    /// Currency ledger (ISO 4217 numeric).
    pub ledger: u32,
    /// Account code (the node's [`AccountKind::ledger_code`]).
    pub code: u16,
    /// Minor units.
    pub debits_pending: u128,
    /// Minor units.
    pub debits_posted: u128,
    /// Minor units.
    pub credits_pending: u128,
    /// Minor units.
    pub credits_posted: u128,
}

/// A ledger transfer and, for a pending one, how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Booked {
    /// The transfer as stored.
    pub transfer: Transfer,
    /// For a pending transfer, its status.
    pub status: Option<PendingStatus>,
}

/// One node's books for one corridor, as read offline.
#[derive(Clone, Debug)]
pub struct NodeBooks {
    /// The node's jurisdiction.
    pub jurisdiction: String,
    /// Its ledger currency.
    pub currency: &'static Currency,
    /// Its data directory (for the report).
    pub data_dir: PathBuf,
    /// The other end of the corridor.
    pub peer: String,
    /// Where payments to `peer` are reserved and posted.
    pub corridor_account: u128,
    /// Where payments from `peer` are credited from.
    pub liquidity_account: u128,
    /// The receiver's allowance for clock differences when it checked quotes and instructions.
    pub clock_skew_secs: u64,
    /// The corridor and liquidity accounts, when they exist.
    pub accounts: BTreeMap<u128, AccountView>,
    /// Every transfer that moves the corridor or the liquidity account.
    pub transfers: Vec<Booked>,
    /// Payments this node sent to `peer`.
    pub outbound: BTreeMap<Uetr, OutboundRecord>,
    /// Payments this node received (or fenced) from `peer`.
    pub inbound: BTreeMap<Uetr, InboundRecord>,
    /// The ledger's own audit, when it was run.
    pub ledger_audit: Option<AuditReport>,
}

impl NodeBooks {
    /// Reads the books of the node configured by `config` for its corridor with `peer`:
    /// runs the ledger audit (checkpoints pinned to the key of the node's signing
    /// certificate), reads the ledger export and the payment store. Read-only; fails while a
    /// node holds either database.
    pub fn load(config: &Config, peer: &str, mra: &Mra) -> Result<Self, PairAuditError> {
        let jurisdiction = &config.jurisdiction;
        let link = config.peer(peer).ok_or_else(|| {
            PairAuditError::NotAPair(format!(
                "{jurisdiction}'s configuration has no [[peer]] {peer}"
            ))
        })?;
        let currency = currency_of(mra, jurisdiction)?;
        // The store first: sled refuses it at once while a node runs, where the ledger's
        // offline open waits a little for the lock.
        let Records { outbound, inbound } = read_store(config, peer)?;
        let ledger_audit = audit_ledger(config)?;
        let (accounts, transfers) = read_corridor(config, link)?;
        Ok(Self {
            jurisdiction: jurisdiction.clone(),
            currency,
            data_dir: config.data_dir.clone(),
            peer: peer.to_owned(),
            corridor_account: link.corridor_account,
            liquidity_account: link.liquidity_account,
            clock_skew_secs: config.limits.clock_skew_secs,
            accounts,
            transfers,
            outbound,
            inbound,
            ledger_audit: Some(ledger_audit),
        })
    }
}

/// A node's payment records of one corridor.
struct Records {
    outbound: BTreeMap<Uetr, OutboundRecord>,
    inbound: BTreeMap<Uetr, InboundRecord>,
}

/// The payment store's records of payments to and from `peer`.
fn read_store(config: &Config, peer: &str) -> Result<Records, PairAuditError> {
    let store_dir = config.data_dir.join("node");
    let store_error = |error: StoreError| {
        let hint = if error.to_string().contains("lock") {
            " (a running node holds it: stop the node, then audit)"
        } else {
            ""
        };
        PairAuditError::Store {
            jurisdiction: config.jurisdiction.clone(),
            path: store_dir.clone(),
            error,
            hint,
        }
    };
    let store = Store::open_read_only(&store_dir).map_err(store_error)?;
    let mut outbound = BTreeMap::new();
    for item in store.outbound_records() {
        let (uetr, record) = item.map_err(store_error)?;
        if record.peer == peer {
            outbound.insert(uetr, record);
        }
    }
    let mut inbound = BTreeMap::new();
    for item in store.inbound_records() {
        let (uetr, record) = item.map_err(store_error)?;
        if record.sender == peer {
            inbound.insert(uetr, record);
        }
    }
    Ok(Records { outbound, inbound })
}

fn ledger_dir(config: &Config) -> PathBuf {
    config.data_dir.join("ledger")
}

fn ledger_error(config: &Config, path: &Path, error: kakehashi_ledger::Error) -> PairAuditError {
    PairAuditError::Ledger {
        jurisdiction: config.jurisdiction.clone(),
        path: path.to_owned(),
        error,
    }
}

/// The ledger's own audit, its checkpoints pinned to the key of the node's signing
/// certificate.
fn audit_ledger(config: &Config) -> Result<AuditReport, PairAuditError> {
    let dir = ledger_dir(config);
    let expected_key = ledger_key(config)?;
    kakehashi_ledger::audit(
        &dir,
        &AuditOptions {
            expected_key: Some(expected_key),
        },
    )
    .map_err(|error| ledger_error(config, &dir, error))
}

/// The corridor's accounts and every transfer that moves one of them, from the ledger's
/// export.
fn read_corridor(
    config: &Config,
    link: &Peer,
) -> Result<(BTreeMap<u128, AccountView>, Vec<Booked>), PairAuditError> {
    let dir = ledger_dir(config);
    let mut reader = ExportReader::new([link.corridor_account, link.liquidity_account]);
    let exported = kakehashi_ledger::export(&dir, &mut reader);
    if let Some((line, detail)) = reader.error.take() {
        return Err(PairAuditError::Export {
            jurisdiction: config.jurisdiction.clone(),
            line,
            detail,
        });
    }
    exported.map_err(|error| ledger_error(config, &dir, error))?;
    Ok((reader.accounts, reader.transfers))
}

/// Loads both ends of the corridor between `a` and `b` (see [`NodeBooks::load`]) after
/// checking that they are one: two jurisdictions, each the other's peer, two data
/// directories.
pub fn load_pair(
    a: &Config,
    b: &Config,
    mra: &Mra,
) -> Result<(NodeBooks, NodeBooks), PairAuditError> {
    if a.jurisdiction == b.jurisdiction {
        return Err(PairAuditError::NotAPair(format!(
            "both are {} nodes; give the configurations of the two ends of a corridor",
            a.jurisdiction
        )));
    }
    if a.data_dir == b.data_dir {
        return Err(PairAuditError::NotAPair(format!(
            "both use the data directory {}",
            a.data_dir.display()
        )));
    }
    for (from, to) in [(a, b), (b, a)] {
        if from.peer(&to.jurisdiction).is_none() {
            return Err(PairAuditError::NotAPair(format!(
                "{}'s configuration has no [[peer]] {}",
                from.jurisdiction, to.jurisdiction
            )));
        }
    }
    Ok((
        NodeBooks::load(a, &b.jurisdiction, mra)?,
        NodeBooks::load(b, &a.jurisdiction, mra)?,
    ))
}

/// The ledger currency of `jurisdiction`, from the agreement and the ISO 4217 table.
fn currency_of(mra: &Mra, jurisdiction: &str) -> Result<&'static Currency, PairAuditError> {
    let party = mra.jurisdiction(jurisdiction).ok_or_else(|| {
        PairAuditError::Agreement(format!("{jurisdiction} is not a party to the agreement"))
    })?;
    money::currency(&party.currency).ok_or_else(|| {
        PairAuditError::Agreement(format!(
            "{jurisdiction}'s currency {} is not an ISO 4217 code kakehashi knows",
            party.currency
        ))
    })
}

/// The key the node's ledger checkpoints must be signed with: the node signs them with its
/// receipt-signing key (`node.rs`), whose certificate the configuration names.
fn ledger_key(config: &Config) -> Result<VerifyingKey, PairAuditError> {
    let path = &config.signing.cert;
    let error = |message: String| PairAuditError::File {
        jurisdiction: config.jurisdiction.clone(),
        what: "signing certificate",
        path: path.clone(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| error(e.to_string()))?;
    let chain = pem::blocks_or_der(&bytes, "CERTIFICATE").map_err(error)?;
    let leaf = chain
        .first()
        .ok_or_else(|| error("no CERTIFICATE block".into()))?;
    let cert = Cert::from_der(leaf).map_err(|e| error(e.to_string()))?;
    VerifyingKey::from_public_key_der(cert.spki().der())
        .map_err(|e| error(format!("not an Ed25519 key: {e}")))
}

/// Longest line accepted from the ledger export: an account or transfer line is under 1 KiB
/// (about twenty members, u128 values as at most 39 digits), so 64 KiB only stops a runaway.
const EXPORT_LINE_LEN_MAX: usize = 64 * 1024;

/// Receives `kakehashi_ledger::export`'s JSON Lines and keeps the accounts and transfers of
/// the corridor. The export is the ledger's public reconciliation format; reading it keeps
/// this audit on the ledger's public interface.
struct ExportReader {
    wanted: [u128; 2],
    partial: Vec<u8>,
    line: u64,
    accounts: BTreeMap<u128, AccountView>,
    transfers: Vec<Booked>,
    error: Option<(u64, String)>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ExportLine {
    Account(AccountLine),
    Transfer(TransferLine),
}

#[derive(Deserialize)]
struct AccountLine {
    id: String,
    ledger: u32,
    code: u16,
    debits_pending: String,
    debits_posted: String,
    credits_pending: String,
    credits_posted: String,
}

#[derive(Deserialize)]
struct TransferLine {
    id: String,
    debit_account_id: String,
    credit_account_id: String,
    amount: String,
    pending_id: String,
    ledger: u32,
    code: u16,
    flags: Vec<String>,
    timeout: u32,
    user_data_128: String,
    user_data_64: u64,
    user_data_32: u32,
    timestamp: u64,
    pending_status: Option<String>,
}

impl ExportReader {
    fn new(wanted: [u128; 2]) -> Self {
        Self {
            wanted,
            partial: Vec::new(),
            line: 0,
            accounts: BTreeMap::new(),
            transfers: Vec::new(),
            error: None,
        }
    }

    fn take_line(&mut self, bytes: &[u8]) -> Result<(), String> {
        let line: ExportLine = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        match line {
            ExportLine::Account(a) => {
                let id = number("id", &a.id)?;
                if self.wanted.contains(&id) {
                    self.accounts.insert(
                        id,
                        AccountView {
                            ledger: a.ledger,
                            code: a.code,
                            debits_pending: number("debits_pending", &a.debits_pending)?,
                            debits_posted: number("debits_posted", &a.debits_posted)?,
                            credits_pending: number("credits_pending", &a.credits_pending)?,
                            credits_posted: number("credits_posted", &a.credits_posted)?,
                        },
                    );
                }
            }
            ExportLine::Transfer(t) => {
                let debit = number("debit_account_id", &t.debit_account_id)?;
                let credit = number("credit_account_id", &t.credit_account_id)?;
                if !self.wanted.contains(&debit) && !self.wanted.contains(&credit) {
                    return Ok(());
                }
                let mut flags = TransferFlags::NONE;
                for name in &t.flags {
                    flags = flags.union(match name.as_str() {
                        "linked" => TransferFlags::LINKED,
                        "pending" => TransferFlags::PENDING,
                        "post_pending_transfer" => TransferFlags::POST_PENDING_TRANSFER,
                        "void_pending_transfer" => TransferFlags::VOID_PENDING_TRANSFER,
                        other => return Err(format!("unknown transfer flag {other:?}")),
                    });
                }
                let status = match t.pending_status.as_deref() {
                    None => None,
                    Some("pending") => Some(PendingStatus::Pending),
                    Some("posted") => Some(PendingStatus::Posted),
                    Some("voided") => Some(PendingStatus::Voided),
                    Some("expired") => Some(PendingStatus::Expired),
                    Some(other) => return Err(format!("unknown pending status {other:?}")),
                };
                self.transfers.push(Booked {
                    transfer: Transfer {
                        id: TransferId(number("id", &t.id)?),
                        debit_account_id: AccountId(debit),
                        credit_account_id: AccountId(credit),
                        amount: number("amount", &t.amount)?,
                        pending_id: TransferId(number("pending_id", &t.pending_id)?),
                        user_data_128: number("user_data_128", &t.user_data_128)?,
                        user_data_64: t.user_data_64,
                        user_data_32: t.user_data_32,
                        timeout: t.timeout,
                        ledger: t.ledger,
                        code: t.code,
                        flags,
                        timestamp: Timestamp(t.timestamp),
                    },
                    status,
                });
            }
        }
        Ok(())
    }
}

fn number(field: &str, text: &str) -> Result<u128, String> {
    text.parse()
        .map_err(|_| format!("{field} {text:?} is not a decimal u128"))
}

impl io::Write for ExportReader {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut rest = data;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = rest.split_at(end);
            self.partial.extend_from_slice(head);
            let line = std::mem::take(&mut self.partial);
            self.line = self.line.saturating_add(1);
            if let Err(detail) = self.take_line(&line) {
                self.error = Some((self.line, detail.clone()));
                return Err(io::Error::other(detail));
            }
            rest = tail.get(1..).unwrap_or_default();
        }
        if self.partial.len().saturating_add(rest.len()) > EXPORT_LINE_LEN_MAX {
            let detail = format!("a line longer than {EXPORT_LINE_LEN_MAX} bytes");
            self.error = Some((self.line.saturating_add(1), detail.clone()));
            return Err(io::Error::other(detail));
        }
        self.partial.extend_from_slice(rest);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
