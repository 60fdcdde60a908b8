//! The invariants asserted before every write (fail-stop) and re-checked by the audit.

use std::collections::BTreeMap;

use crate::Error;
use crate::model::{Account, AccountFlags};
use crate::state_machine::Changes;
use crate::wide::Sum256;

/// Asserts, before anything is written, that in every currency the group's debits moved as
/// much as its credits (pending and posted separately), and that no flagged account is over
/// its limit. The state machine guarantees both; a failure here is a bug, and fail-stop is the
/// only safe answer for money.
pub(crate) fn check_group_balanced(changes: &Changes) -> Result<(), Error> {
    // Per ledger: (new debits + old credits, new credits + old debits), pending and posted.
    let mut sums: BTreeMap<u32, [Sum256; 4]> = BTreeMap::new();
    for (id, after) in &changes.accounts {
        let before = changes
            .accounts_before
            .get(id)
            .copied()
            .flatten()
            .unwrap_or_else(|| Account {
                id: *id,
                ledger: after.ledger,
                ..Account::default()
            });
        if before.ledger != after.ledger {
            return Err(Error::InvariantViolated {
                detail: format!(
                    "{id} changed ledger from {} to {}",
                    before.ledger, after.ledger
                ),
            });
        }
        let entry = sums.entry(after.ledger).or_default();
        entry[0].add(after.debits_posted);
        entry[0].add(before.credits_posted);
        entry[1].add(after.credits_posted);
        entry[1].add(before.debits_posted);
        entry[2].add(after.debits_pending);
        entry[2].add(before.credits_pending);
        entry[3].add(after.credits_pending);
        entry[3].add(before.debits_pending);
        check_limits(after)?;
    }
    for (ledger, [posted_a, posted_b, pending_a, pending_b]) in sums {
        if posted_a != posted_b || pending_a != pending_b {
            return Err(Error::InvariantViolated {
                detail: format!("ledger {ledger}: this group's debits differ from its credits"),
            });
        }
    }
    Ok(())
}

pub(crate) fn check_limits(account: &Account) -> Result<(), Error> {
    let debits = Sum256::of(&[account.debits_pending, account.debits_posted]);
    let credits = Sum256::of(&[account.credits_pending, account.credits_posted]);
    if account
        .flags
        .contains(AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS)
        && debits > Sum256::of(&[account.credits_posted])
    {
        return Err(Error::InvariantViolated {
            detail: format!("{} would have debits exceeding its credits", account.id),
        });
    }
    if account
        .flags
        .contains(AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS)
        && credits > Sum256::of(&[account.debits_posted])
    {
        return Err(Error::InvariantViolated {
            detail: format!("{} would have credits exceeding its debits", account.id),
        });
    }
    Ok(())
}
