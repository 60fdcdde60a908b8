//! The audit's comparison of what is stored with what the journal replay gives.

use std::collections::BTreeMap;

use super::replay::Replay;
use super::source::AuditSource;
use super::{AuditReport, LedgerTotals, Location};
use crate::codec::{decode_account, decode_expiry_key, decode_pending_status, id_key, key_u128};
use crate::error::Error;
use crate::model::{PendingStatus, TransferId};
use crate::wide::Sum256;

/// Compares the stored account snapshot with the replayed accounts at the snapshot's record,
/// and checks that its debits equal its credits per currency.
pub(super) fn compare_snapshot(
    source: &dyn AuditSource,
    replay: &Replay,
    report: &mut AuditReport,
) -> Result<(), Error> {
    let mut totals: BTreeMap<u32, [Sum256; 4]> = BTreeMap::new();
    let mut stored_ids = 0u64;
    source.accounts(&mut |key, value| {
        stored_ids = stored_ids.saturating_add(1);
        let stored = match decode_account(value) {
            Ok(account) => account,
            Err(error) => {
                let id = key_u128(key, "account key")
                    .map(|id| id.to_string())
                    .unwrap_or_default();
                report.flag(Location::Account { id }, error.to_string());
                return;
            }
        };
        let at = Location::Account {
            id: stored.id.0.to_string(),
        };
        if key != id_key(stored.id.0) {
            report.flag(at.clone(), "stored under another id's key");
        }
        match replay.accounts.get(&stored.id) {
            None => report.flag(at, "stored but never created in the journal"),
            Some(expected) if expected != &stored => report.flag(
                at,
                format!(
                    "stored snapshot differs from the journal replay: expected debits \
                     pending/posted {}/{} credits pending/posted {}/{}, found {}/{} and {}/{}",
                    expected.debits_pending,
                    expected.debits_posted,
                    expected.credits_pending,
                    expected.credits_posted,
                    stored.debits_pending,
                    stored.debits_posted,
                    stored.credits_pending,
                    stored.credits_posted
                ),
            ),
            Some(_) => {}
        }
        let sums = totals.entry(stored.ledger).or_default();
        sums[0].add(stored.debits_posted);
        sums[1].add(stored.credits_posted);
        sums[2].add(stored.debits_pending);
        sums[3].add(stored.credits_pending);
    })?;
    if stored_ids != replay.accounts.len() as u64 {
        report.flag(
            Location::Meta,
            format!(
                "snapshot holds {stored_ids} accounts but the journal created {} by then",
                replay.accounts.len()
            ),
        );
    }
    for (
        ledger,
        [
            debits_posted,
            credits_posted,
            debits_pending,
            credits_pending,
        ],
    ) in totals
    {
        if debits_posted != credits_posted {
            report.flag(
                Location::Ledger { ledger },
                format!(
                    "stored snapshot: Σ debits_posted {debits_posted} != Σ credits_posted \
                     {credits_posted}"
                ),
            );
        }
        if debits_pending != credits_pending {
            report.flag(
                Location::Ledger { ledger },
                format!(
                    "stored snapshot: Σ debits_pending {debits_pending} != Σ credits_pending \
                     {credits_pending}"
                ),
            );
        }
    }
    Ok(())
}

/// Per-currency totals of the replayed accounts at the journal head; debits must equal
/// credits.
pub(super) fn final_totals(replay: &Replay, report: &mut AuditReport) {
    let mut totals: BTreeMap<u32, (u64, [Sum256; 4])> = BTreeMap::new();
    for account in replay.accounts.values() {
        let (count, sums) = totals.entry(account.ledger).or_default();
        *count = count.saturating_add(1);
        sums[0].add(account.debits_posted);
        sums[1].add(account.credits_posted);
        sums[2].add(account.debits_pending);
        sums[3].add(account.credits_pending);
    }
    report.accounts = replay.accounts.len() as u64;
    for (
        ledger,
        (
            accounts,
            [
                debits_posted,
                credits_posted,
                debits_pending,
                credits_pending,
            ],
        ),
    ) in totals
    {
        if debits_posted != credits_posted {
            report.flag(
                Location::Ledger { ledger },
                format!("Σ debits_posted {debits_posted} != Σ credits_posted {credits_posted}"),
            );
        }
        if debits_pending != credits_pending {
            report.flag(
                Location::Ledger { ledger },
                format!("Σ debits_pending {debits_pending} != Σ credits_pending {credits_pending}"),
            );
        }
        report.ledgers.push(LedgerTotals {
            ledger,
            accounts,
            debits_posted: debits_posted.to_string(),
            credits_posted: credits_posted.to_string(),
            debits_pending: debits_pending.to_string(),
            credits_pending: credits_pending.to_string(),
        });
    }
}

pub(super) fn compare_pending(
    source: &dyn AuditSource,
    replay: &Replay,
    report: &mut AuditReport,
) -> Result<(), Error> {
    let mut stored_count = 0usize;
    source.pending(&mut |key, value| {
        stored_count = stored_count.saturating_add(1);
        let id = key_u128(key, "pending key").unwrap_or_default();
        let at = Location::Transfer { id: id.to_string() };
        let found = decode_pending_status(value);
        match (replay.reservations.get(&TransferId(id)), found) {
            (Some(expected), Ok(found)) if expected.status == found => {}
            (Some(expected), found) => report.flag(
                at,
                format!(
                    "pending status should be {}, found {found:?}",
                    expected.status.as_str()
                ),
            ),
            (None, _) => report.flag(
                at,
                "has a pending status but no pending transfer in the journal",
            ),
        }
    })?;
    if stored_count != replay.reservations.len() {
        report.flag(
            Location::Meta,
            format!(
                "{} pending transfers in the journal but {stored_count} pending statuses stored",
                replay.reservations.len()
            ),
        );
    }
    let mut indexed = 0usize;
    source.expiry(&mut |key| {
        indexed = indexed.saturating_add(1);
        match decode_expiry_key(key) {
            Ok((at, id)) => {
                let live = replay.reservations.get(&id).is_some_and(|r| {
                    r.status == PendingStatus::Pending && r.transfer.expires_at() == Some(at)
                });
                if !live {
                    report.flag(
                        Location::Transfer {
                            id: id.0.to_string(),
                        },
                        format!(
                            "expiry index entry at {} but it is not a live pending transfer",
                            at.0
                        ),
                    );
                }
            }
            Err(error) => report.flag(Location::Meta, format!("expiry index: {error}")),
        }
    })?;
    let live = replay
        .reservations
        .values()
        .filter(|r| r.status == PendingStatus::Pending && r.transfer.expires_at().is_some())
        .count();
    if indexed != live {
        report.flag(
            Location::Meta,
            format!(
                "{live} live pending transfers with a timeout but {indexed} expiry index entries"
            ),
        );
    }
    Ok(())
}

pub(super) fn compare_counts(
    source: &dyn AuditSource,
    replay: &Replay,
    report: &mut AuditReport,
) -> Result<(), Error> {
    let stored = source.transfers_stored(&mut |location, detail| report.flag(location, detail))?;
    if stored != report.transfers {
        report.flag(
            Location::Meta,
            format!(
                "{} transfers in the journal but {stored} stored",
                report.transfers
            ),
        );
    }
    let history = source.history_entries()?;
    if history != replay.history_expected {
        report.flag(
            Location::Meta,
            format!(
                "{} history entries expected from the journal but {history} stored",
                replay.history_expected
            ),
        );
    }
    Ok(())
}
