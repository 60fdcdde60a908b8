//! The export of a stored ledger as JSON Lines, for reconciliation.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use crate::codec::{decode_transfer_run, key_u128};
use crate::error::Error;
use crate::ledger::trees::open_offline;
use crate::model::{
    Account, AccountFlags, AccountId, PendingStatus, Transfer, TransferFlags, TransferId,
};

/// What [`export`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportSummary {
    /// Account lines.
    pub accounts: u64,
    /// Transfer lines.
    pub transfers: u64,
}

/// Writes every account, then every transfer, as JSON Lines (one object per line with a
/// `"type"` of `"account"` or `"transfer"`), for reconciliation. `u128` values are decimal
/// strings because common JSON tools hold numbers as 64-bit floats.
pub fn export(path: &Path, out: &mut dyn Write) -> Result<ExportSummary, Error> {
    let trees = open_offline(path)?;
    let mut summary = ExportSummary::default();
    let write_line = |out: &mut dyn Write, value: serde_json::Value| -> Result<(), Error> {
        serde_json::to_writer(&mut *out, &value).map_err(|error| Error::Io {
            context: "writing the export".into(),
            source: error.into(),
        })?;
        out.write_all(b"\n")
            .map_err(Error::io("writing the export"))
    };
    // Stored accounts are a snapshot; the current balances are that plus the journal since.
    let loaded = crate::recovery::load_accounts(&trees)?;
    let accounts: BTreeMap<AccountId, Account> = loaded.accounts.into_iter().collect();
    for account in accounts.values() {
        write_line(out, account_json(account))?;
        summary.accounts = summary.accounts.saturating_add(1);
    }
    for item in trees.transfers.iter() {
        let (key, value) = item.map_err(Error::storage("scanning transfers"))?;
        let first = key_u128(&key, "transfer run key").map_err(Error::corrupt("transfer"))?;
        let run = decode_transfer_run(&value).map_err(Error::corrupt("transfer run"))?;
        for offset in 0..run.len() {
            let id = TransferId(first.wrapping_add(u128::from(offset)));
            // The index names where the transfer is in the journal; read it from there.
            let (seq, index) = run.location(offset).ok_or_else(|| Error::Corrupt {
                what: id.to_string(),
                source: crate::codec::DecodeError {
                    what: "transfer run",
                    detail: format!("no location for offset {offset} of a run of {}", run.len()),
                },
            })?;
            let transfer = trees.transfer_at(id, seq, index)?;
            let status = if transfer.flags.contains(TransferFlags::PENDING) {
                trees.pending_status(transfer.id)?
            } else {
                None
            };
            write_line(out, transfer_json(&transfer, status))?;
            summary.transfers = summary.transfers.saturating_add(1);
        }
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
    ]
    .into_iter()
    .filter(|(flag, _)| flags.contains(*flag))
    .map(|(_, name)| name)
    .collect()
}
