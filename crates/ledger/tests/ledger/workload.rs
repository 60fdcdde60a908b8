//! The random workload of the mixed-feature property tests, shared by the sled ledger's own
//! test (`mixed.rs`, against the in-memory ledger) and the PostgreSQL engine's differential test
//! (`kakehashi-ledger-pg`, which includes this file by path): random batches mixing every feature
//! of the contract (plain, pending, post with partial, zero and full amounts, void, balancing,
//! closing, linked chains, imported batches, expiry, retries, refusals of every kind).

use kakehashi_ledger::{
    AMOUNT_MAX, AccountFlags, AccountId, MemoryLedger, NewAccount, NewTransfer, Timestamp,
    TransferFlags, TransferId,
};
use proptest::prelude::*;

const JPY: u32 = 392;
const SGD: u32 = 702;

pub(crate) const ACCOUNTS: u128 = 8;
pub(crate) const IDS: u128 = 48;
pub(crate) const SECOND: u64 = 1_000_000_000;

/// One random transfer event: a shape and the fields it varies.
#[derive(Clone, Debug)]
pub(crate) struct Event {
    id: u128,
    kind: u8,
    debit: u128,
    credit: u128,
    amount: u128,
    pending_id: u128,
    timeout: u32,
    linked: bool,
    extra: u16,
}

#[derive(Clone, Debug)]
pub(crate) enum Call {
    Transfers {
        imported: bool,
        events: Vec<Event>,
    },
    /// Resend an earlier batch (picked by index), as a client retrying after a lost answer.
    Retry(usize),
    Expire,
}

pub(crate) fn event() -> impl Strategy<Value = Event> {
    (
        1..IDS,
        0u8..10,
        (1..=ACCOUNTS, 1..=ACCOUNTS),
        prop_oneof![3 => 0u128..120, 1 => Just(0u128), 1 => Just(AMOUNT_MAX)],
        1..IDS,
        0u32..3,
        prop::bool::weighted(0.15),
        prop_oneof![8 => Just(0u16), 1 => 0u16..1024],
    )
        .prop_map(
            |(id, kind, (debit, credit), amount, pending_id, timeout, linked, extra)| Event {
                id,
                kind,
                debit,
                credit,
                amount,
                pending_id,
                timeout,
                linked,
                extra,
            },
        )
}

pub(crate) fn call() -> impl Strategy<Value = Call> {
    prop_oneof![
        6 => prop::collection::vec(event(), 1..6)
            .prop_map(|events| Call::Transfers { imported: false, events }),
        1 => prop::collection::vec(event(), 1..4)
            .prop_map(|events| Call::Transfers { imported: true, events }),
        1 => any::<usize>().prop_map(Call::Retry),
        1 => Just(Call::Expire),
    ]
}

/// The event as a transfer: kinds 0–1 plain, 2–3 pending (3: closing), 4–5 post, 6 void,
/// 7 balancing, 8 pending balancing, 9 anything (raw flags from `extra`). A post or void
/// mostly names one of the pending transfers stored so far (`pendings`), so that most of
/// them find one, live or resolved.
pub(crate) fn new_transfer(event: &Event, timestamp: Timestamp, pendings: &[u128]) -> NewTransfer {
    let pending_id = match pendings.len() {
        0 => event.pending_id,
        _ if event.pending_id.is_multiple_of(5) => event.pending_id,
        len => pendings[(event.pending_id as usize) % len],
    };
    let base = NewTransfer {
        id: TransferId(event.id),
        debit_account_id: AccountId(event.debit),
        credit_account_id: AccountId(event.credit),
        amount: event.amount % 1_000,
        ledger: JPY,
        code: 1,
        timestamp,
        ..NewTransfer::default()
    };
    let resolve = |flags| NewTransfer {
        debit_account_id: AccountId(0),
        credit_account_id: AccountId(0),
        ledger: 0,
        code: 0,
        pending_id: TransferId(pending_id),
        amount: event.amount,
        flags,
        ..base
    };
    let mut transfer = match event.kind {
        0 | 1 => base,
        2 => NewTransfer {
            flags: TransferFlags::PENDING,
            timeout: event.timeout,
            ..base
        },
        3 => NewTransfer {
            flags: TransferFlags::PENDING.union(if event.timeout == 0 {
                TransferFlags::CLOSING_DEBIT
            } else {
                TransferFlags::CLOSING_CREDIT
            }),
            timeout: event.timeout,
            ..base
        },
        4 | 5 => resolve(TransferFlags::POST_PENDING_TRANSFER),
        6 => resolve(TransferFlags::VOID_PENDING_TRANSFER),
        7 => NewTransfer {
            flags: if event.timeout == 0 {
                TransferFlags::BALANCING_DEBIT
            } else {
                TransferFlags::BALANCING_CREDIT
            },
            amount: event.amount,
            ..base
        },
        8 => NewTransfer {
            flags: TransferFlags::PENDING.union(TransferFlags::BALANCING_DEBIT),
            amount: event.amount,
            ..base
        },
        _ => NewTransfer {
            flags: TransferFlags(event.extra),
            pending_id: TransferId(event.pending_id % 3),
            timeout: event.timeout,
            ledger: if event.extra.is_multiple_of(5) {
                SGD
            } else {
                JPY
            },
            ..base
        },
    };
    if event.extra % 7 == 1 {
        transfer.user_data_128 = u128::from(event.extra);
    }
    if event.linked {
        transfer.flags = transfer.flags.union(TransferFlags::LINKED);
    }
    if timestamp.0 != 0 {
        transfer.flags = transfer.flags.union(TransferFlags::IMPORTED);
    }
    transfer
}

pub(crate) fn opening_flags() -> impl Strategy<Value = AccountFlags> {
    prop::sample::select(vec![
        AccountFlags::NONE,
        AccountFlags::NONE,
        AccountFlags::HISTORY,
        AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS,
        AccountFlags::CREDITS_MUST_NOT_EXCEED_DEBITS,
        AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS.union(AccountFlags::HISTORY),
        AccountFlags::CLOSED,
    ])
}

/// The opening accounts: ids `1..=ACCOUNTS` with the given ledgers and flags.
pub(crate) fn opening_accounts(opening: &[(u32, AccountFlags)]) -> Vec<NewAccount> {
    opening
        .iter()
        .zip(1..)
        .map(|(&(ledger, flags), id)| NewAccount {
            id: AccountId(id),
            ledger,
            code: 1,
            flags,
            ..NewAccount::default()
        })
        .collect()
}

/// Money in: account 1 funds every other account, whatever its limits (ids from 1,001).
pub(crate) fn funding(opening: &[(u32, AccountFlags)]) -> Vec<NewTransfer> {
    (2..=ACCOUNTS)
        .map(|id| NewTransfer {
            id: TransferId(1_000 + id),
            debit_account_id: AccountId(1),
            credit_account_id: AccountId(id),
            amount: 500,
            ledger: opening[id as usize - 1].0,
            code: 1,
            ..NewTransfer::default()
        })
        .collect()
}

/// The batch a transfers or retry call sends at `now` (`None` for a retry before any batch, or
/// an expiry), given the books so far (`memory`: posts and voids mostly name its pending
/// transfers) and the batches sent before (which it joins).
pub(crate) fn batch(
    call: &Call,
    now: Timestamp,
    memory: &MemoryLedger,
    sent: &mut Vec<Vec<NewTransfer>>,
) -> Option<Vec<NewTransfer>> {
    let batch: Vec<NewTransfer> = match call {
        Call::Transfers { imported, events } => {
            let pendings: Vec<u128> = memory
                .transfers()
                .filter(|t| t.flags.contains(TransferFlags::PENDING))
                .map(|t| t.id.0)
                .collect();
            events
                .iter()
                .enumerate()
                .map(|(index, event)| {
                    // An imported batch's timestamps (just before `now`) follow every earlier
                    // event when calls are a second apart.
                    let timestamp = if *imported {
                        Timestamp(now.0 - SECOND / 2 + index as u64)
                    } else {
                        Timestamp(0)
                    };
                    new_transfer(event, timestamp, &pendings)
                })
                .collect()
        }
        Call::Retry(index) if !sent.is_empty() => sent[index % sent.len()].clone(),
        _ => return None,
    };
    sent.push(batch.clone());
    Some(batch)
}
