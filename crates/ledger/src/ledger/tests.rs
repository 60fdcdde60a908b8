//! Tests of the writer's parts together: journal reads through the index, and groups
//! sequenced over groups still in flight.

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};

use super::check_journal_tail;
use super::overlay::{InFlight, WriterStore};
use super::sequencer::prepare;
use super::trees::{Trees, open_db};
use crate::idhash::IdMap;
use crate::journal::{Entries, GENESIS_HASH, Record, decode_chunk_key};
use crate::model::{
    Account, AccountId, NewTransfer, PendingStatus, Timestamp, Transfer, TransferFlags, TransferId,
};
use crate::result::CreateTransferResult;
use crate::state_machine::{Changes, Store};

const NOW: Timestamp = Timestamp(1_764_000_000_000_000_000);
const SECOND: u64 = 1_000_000_000;

/// Runs one group through the state machine over `in_flight` (nothing written to sled)
/// and leaves it in flight, as the sequencer does while the committer is busy.
fn sequence(
    trees: &Trees,
    accounts: &RwLock<IdMap<AccountId, Account>>,
    in_flight: &mut VecDeque<InFlight>,
    run: impl FnOnce(&mut Changes, &WriterStore<'_>) -> Vec<CreateTransferResult>,
) -> Vec<CreateTransferResult> {
    let last = in_flight
        .back()
        .map_or(NOW, |group| group.changes.last_timestamp);
    let mut changes = Changes::new(last);
    let results = run(
        &mut changes,
        &WriterStore {
            trees,
            accounts,
            in_flight,
            filter: None,
        },
    );
    let group = in_flight.len() as u64 + 1;
    in_flight.push_back(InFlight {
        group,
        changes: Arc::new(changes),
    });
    results
}

fn pending(id: u128, timeout: u32) -> NewTransfer {
    NewTransfer {
        id: TransferId(id),
        debit_account_id: AccountId(1),
        credit_account_id: AccountId(2),
        amount: 10,
        ledger: 392,
        code: 1,
        flags: TransferFlags::PENDING,
        timeout,
        ..NewTransfer::default()
    }
}

fn resolve(id: u128, pending_id: u128, flags: TransferFlags) -> NewTransfer {
    let post = flags.contains(TransferFlags::POST_PENDING_TRANSFER);
    NewTransfer {
        id: TransferId(id),
        pending_id: TransferId(pending_id),
        amount: if post { 10 } else { 0 },
        flags,
        ..NewTransfer::default()
    }
}

fn one_transfer(id: u128) -> Transfer {
    Transfer {
        id: TransferId(id),
        debit_account_id: AccountId(1),
        credit_account_id: AccountId(2),
        amount: id,
        ledger: 392,
        code: 1,
        timestamp: Timestamp(NOW.0 + u64::try_from(id).expect("small")),
        ..Transfer::default()
    }
}

#[test]
fn transfers_in_shared_and_long_journal_chunks_read_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trees = Trees::open(open_db(dir.path(), 1 << 20).expect("db")).expect("trees");
    // Records 1–3 and 5–6 hold one transfer each; record 4 holds forty, more than a chunk.
    let sizes = [(1u64, 1u128), (2, 1), (3, 1), (4, 40), (5, 1), (6, 1)];
    let mut prev_hash = GENESIS_HASH;
    let mut records = Vec::new();
    let mut locations = Vec::new();
    let mut next_id = 100u128;
    for (seq, entries) in sizes {
        let transfers: Vec<Transfer> = (0..entries)
            .map(|n| one_transfer(next_id + n * 2))
            .collect();
        next_id += 1_000;
        for (index, transfer) in transfers.iter().enumerate() {
            locations.push((transfer.id, seq, u32::try_from(index).expect("small")));
        }
        let (bytes, hash) = Record {
            seq,
            prev_hash,
            now: NOW,
            entries: Entries::Transfers(transfers),
        }
        .encode();
        prev_hash = hash;
        records.push((seq, bytes));
    }
    let (writes, _) = prepare(&Changes::new(NOW), records, &locations, 6, prev_hash, 1);
    trees.apply(writes, "test").expect("applied");
    let keys: Vec<(u64, u32)> = trees
        .journal
        .iter()
        .map(|item| decode_chunk_key(&item.expect("read").0).expect("key"))
        .collect();
    assert_eq!(keys, [(1, 0), (4, 0), (4, 1), (5, 0)]);
    for (id, seq, index) in &locations {
        let transfer = trees.transfer(*id).expect("read").expect("stored");
        assert_eq!(transfer, one_transfer(id.0), "record {seq} entry {index}");
    }
    assert_eq!(trees.transfer(TransferId(101)).expect("read"), None);
    check_journal_tail(&trees, 6).expect("the tail is record 6");
    assert!(check_journal_tail(&trees, 5).is_err());
}

#[test]
fn later_groups_see_the_groups_still_in_flight() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trees = Trees::open(open_db(dir.path(), 1 << 20).expect("db")).expect("trees");
    let accounts = RwLock::new(
        [1u128, 2]
            .map(|id| {
                let account = Account {
                    id: AccountId(id),
                    ledger: 392,
                    code: 1,
                    ..Account::default()
                };
                (account.id, account)
            })
            .into_iter()
            .collect::<IdMap<_, _>>(),
    );
    let mut in_flight = VecDeque::new();
    let transfers = |in_flight: &mut VecDeque<InFlight>, events: Vec<NewTransfer>| {
        sequence(&trees, &accounts, in_flight, |changes, store| {
            changes
                .create_transfers(store, &events, NOW)
                .expect("state machine")
                .0
        })
    };
    use CreateTransferResult as R;
    // Group 1: two pending transfers (one with a timeout); none of it reaches sled.
    let created = transfers(&mut in_flight, vec![pending(10, 1), pending(11, 0)]);
    assert_eq!(created, [R::Ok, R::Ok]);
    // Group 2 finds them only in group 1's overlay: repeats exist, a post resolves.
    let group2 = transfers(
        &mut in_flight,
        vec![
            pending(10, 1),
            resolve(20, 11, TransferFlags::POST_PENDING_TRANSFER),
        ],
    );
    assert_eq!(group2, [R::Exists, R::Ok]);
    // Group 3 sees group 2's post through its overlay (newest first).
    let group3 = transfers(
        &mut in_flight,
        vec![resolve(21, 11, TransferFlags::VOID_PENDING_TRANSFER)],
    );
    assert_eq!(group3, [R::PendingTransferAlreadyPosted]);
    // The overlays carry the balances: 10 pending (transfer 10) and 10 posted (11).
    let store = WriterStore {
        trees: &trees,
        accounts: &accounts,
        in_flight: &in_flight,
        filter: None,
    };
    let debit = store.account(AccountId(1)).expect("read").expect("exists");
    assert_eq!((debit.debits_pending, debit.debits_posted), (10, 10));
    // Expiry sees group 1's index entry; a group that voids it removes it for the next.
    let due = store
        .expiring(Timestamp(NOW.0 + 2 * SECOND), 10)
        .expect("expiring");
    assert_eq!(due.iter().map(|(_, id)| id.0).collect::<Vec<_>>(), [10]);
    let voided = transfers(
        &mut in_flight,
        vec![resolve(22, 10, TransferFlags::VOID_PENDING_TRANSFER)],
    );
    assert_eq!(voided, [R::Ok]);
    let store = WriterStore {
        trees: &trees,
        accounts: &accounts,
        in_flight: &in_flight,
        filter: None,
    };
    let due = store
        .expiring(Timestamp(NOW.0 + 2 * SECOND), 10)
        .expect("expiring");
    assert!(due.is_empty(), "{due:?}");
    assert_eq!(
        store.pending_status(TransferId(10)).expect("read"),
        Some(PendingStatus::Voided)
    );
}

/// A transient failure in a group still in flight (written to nothing yet) is seen by the next
/// group: its retry is `id_already_failed`, with the id filter in use or not.
#[test]
fn later_groups_see_the_failed_ids_of_groups_in_flight() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trees = Trees::open(open_db(dir.path(), 1 << 20).expect("db")).expect("trees");
    let accounts = RwLock::new(IdMap::default());
    let mut filter = crate::filter::IdFilter::new();
    let mut in_flight = VecDeque::new();
    use CreateTransferResult as R;
    let event = NewTransfer {
        id: TransferId(30),
        debit_account_id: AccountId(1),
        credit_account_id: AccountId(2),
        amount: 1,
        ledger: 392,
        code: 1,
        ..NewTransfer::default()
    };
    let first = sequence(&trees, &accounts, &mut in_flight, |changes, store| {
        changes
            .create_transfers(store, &[event], NOW)
            .expect("state machine")
            .0
    });
    assert_eq!(first, [R::DebitAccountNotFound]);
    // The sequencer puts failed ids into the filter with their group.
    filter.insert(30);
    for filter in [None, Some(&filter)] {
        let store = WriterStore {
            trees: &trees,
            accounts: &accounts,
            in_flight: &in_flight,
            filter,
        };
        assert!(store.transfer_failed(TransferId(30)).expect("read"));
        assert!(!store.transfer_failed(TransferId(31)).expect("read"));
        let mut changes = Changes::new(NOW);
        let (results, _) = changes
            .create_transfers(&store, &[event], NOW)
            .expect("state machine");
        assert_eq!(results, [R::IdAlreadyFailed]);
    }
}
