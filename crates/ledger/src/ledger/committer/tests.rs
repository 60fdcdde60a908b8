//! When the writer signs the journal head: while records arrive (by count, by time, and when
//! they stop arriving) and at close, observed in the open ledger's storage.

use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;

use crate::journal::SignedHead;
use crate::model::{AccountId, NewAccount, NewTransfer, Timestamp, TransferId};
use crate::recovery;
use crate::{Ledger, Options};

const NOW: Timestamp = Timestamp(1_764_000_000_000_000_000);

fn key() -> SigningKey {
    SigningKey::from_bytes(&[3; 32])
}

/// A new ledger with accounts 1 and 2 (record 1), opened with `options`.
fn ledger(options: Options) -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = Ledger::open(dir.path(), key(), options).expect("opens");
    let accounts = [1, 2].map(|id| NewAccount {
        id: AccountId(id),
        ledger: 392,
        code: 1,
        ..NewAccount::default()
    });
    let results = ledger.create_accounts(&accounts, NOW).expect("accounts");
    assert!(results.iter().all(|r| r.is_recorded()), "{results:?}");
    (dir, ledger)
}

/// One transfer per call: one caller waiting for each answer makes one group, and one
/// record, per call.
fn transfer(ledger: &Ledger, id: u128) {
    let transfer = NewTransfer {
        id: TransferId(id),
        debit_account_id: AccountId(1),
        credit_account_id: AccountId(2),
        amount: 1,
        ledger: 392,
        code: 1,
        ..NewTransfer::default()
    };
    let results = ledger.create_transfers(&[transfer], NOW).expect("answered");
    assert!(results.iter().all(|r| r.is_recorded()), "{results:?}");
}

/// Every signed head stored so far, each checked against the node key.
fn signed_heads(ledger: &Ledger) -> Vec<u64> {
    ledger
        .trees
        .signed_heads
        .iter()
        .map(|item| {
            let (_, value) = item.expect("read");
            let signed = SignedHead::decode(&value).expect("decodes");
            assert!(signed.verify(&key().verifying_key()), "{signed:?}");
            signed.seq
        })
        .collect()
}

/// Options under which time never triggers a signature within a test.
fn by_count(records: u64) -> Options {
    Options {
        signed_head_interval: Duration::from_secs(3_600),
        signed_head_records: records,
        ..Options::default()
    }
}

#[test]
fn a_stream_of_records_signs_its_head_every_configured_count_without_closing() {
    let (_dir, ledger) = ledger(by_count(3));
    for id in 10..19 {
        transfer(&ledger, id);
    }
    // Records 1 (the accounts) to 10; a signature every third record, in the batch of the
    // group whose head it is, and nothing else yet: no checkpoint is due.
    assert_eq!(signed_heads(&ledger), [3, 6, 9]);
    assert!(ledger.trees.checkpoints.is_empty());
    // Each signs the hash its record stores, as the start-up check reads it.
    let (head_seq, head_hash) = ledger.trees.head().expect("read").expect("a head");
    assert_eq!(head_seq, 10);
    let vouched = recovery::check_chain_tail(&ledger.trees, &key().verifying_key(), 10, head_hash)
        .expect("the chain checks");
    assert_eq!(vouched.last_signed_seq(), 9);
    ledger.close().expect("close");
}

#[test]
fn a_zero_interval_signs_every_group_and_close_adds_a_checkpoint() {
    let options = Options {
        signed_head_interval: Duration::ZERO,
        signed_head_records: u64::MAX,
        ..Options::default()
    };
    let (dir, ledger) = ledger(options);
    for id in 10..13 {
        transfer(&ledger, id);
    }
    assert_eq!(signed_heads(&ledger), [1, 2, 3, 4]);
    ledger.close().expect("close");
    let trees = crate::ledger::trees::open_offline(dir.path()).expect("opens");
    let checkpoint = recovery::last_checkpoint(&trees)
        .expect("read")
        .expect("the close took a checkpoint");
    assert_eq!(checkpoint.seq, 4);
}

#[test]
fn records_that_stop_arriving_are_signed_about_an_interval_later() {
    let options = Options {
        signed_head_interval: Duration::from_millis(20),
        signed_head_records: u64::MAX,
        ..Options::default()
    };
    let (_dir, ledger) = ledger(options);
    transfer(&ledger, 10);
    // Nothing more arrives: the writer signs record 2 on its own, without closing. Wait for
    // it (the only thing that could make this slow is a loaded machine).
    let deadline = Instant::now() + Duration::from_secs(30);
    while signed_heads(&ledger).last() != Some(&2) {
        assert!(Instant::now() < deadline, "{:?}", signed_heads(&ledger));
        std::thread::sleep(Duration::from_millis(5));
    }
    ledger.close().expect("close");
}

#[test]
fn dropping_the_ledger_signs_its_head_like_close() {
    let (dir, ledger) = ledger(by_count(u64::MAX));
    transfer(&ledger, 10);
    drop(ledger);
    let trees = crate::ledger::trees::open_offline(dir.path()).expect("opens");
    let checkpoint = recovery::last_checkpoint(&trees)
        .expect("read")
        .expect("the drop took a checkpoint");
    assert_eq!(checkpoint.seq, 2);
    assert!(checkpoint.verify(&key().verifying_key()));
}

#[test]
fn reopening_a_cleanly_closed_ledger_and_closing_it_adds_no_signature() {
    let (dir, ledger) = ledger(by_count(u64::MAX));
    transfer(&ledger, 10);
    ledger.close().expect("close");
    Ledger::open(dir.path(), key(), by_count(u64::MAX))
        .expect("reopens")
        .close()
        .expect("close");
    let trees = crate::ledger::trees::open_offline(dir.path()).expect("opens");
    assert_eq!(trees.checkpoints.len(), 1);
    assert!(trees.signed_heads.is_empty());
}

#[test]
fn signed_head_records_must_be_at_least_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let error = Ledger::open(dir.path(), key(), by_count(0)).err();
    assert!(
        matches!(
            error,
            Some(crate::Error::InvalidOption {
                name: "signed_head_records",
                ..
            })
        ),
        "{error:?}"
    );
}

#[test]
fn a_cache_budget_under_the_least_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    for bytes in [0, 255, crate::CACHE_CAPACITY_MIN - 1] {
        let options = Options {
            cache_capacity_bytes: bytes,
            ..Options::default()
        };
        let error = Ledger::open(dir.path(), key(), options).err();
        assert!(
            matches!(
                error,
                Some(crate::Error::InvalidOption {
                    name: "cache_capacity_bytes",
                    ..
                })
            ),
            "{bytes}: {error:?}"
        );
    }
    // Refused before sled was opened: the directory holds no database.
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
    let options = Options {
        cache_capacity_bytes: crate::CACHE_CAPACITY_MIN,
        ..Options::default()
    };
    Ledger::open(dir.path(), key(), options)
        .expect("the least budget opens")
        .close()
        .expect("close");
}
