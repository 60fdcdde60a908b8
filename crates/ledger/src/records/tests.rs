//! Records kept with transfers: written in the transfers' group commit or not at all, read
//! only once durable, refused whole when the caller's closure fails or a write is too large.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ed25519_dalek::SigningKey;

use super::{RECORD_KEY_LEN_MAX, RECORD_VALUE_LEN_MAX, RecordWrite, TransferOutcome};
use crate::model::{AccountFlags, AccountId, NewAccount, NewTransfer, Timestamp, TransferId};
use crate::result::CreateTransferResult;
use crate::{AuditOptions, Error, Ledger, LedgerRecords, Options};

const NOW: Timestamp = Timestamp(1_764_000_000_000_000_000);

fn key() -> SigningKey {
    SigningKey::from_bytes(&[5; 32])
}

/// A new ledger with accounts 1 and 2; account 2 may not go into debit beyond its credits.
fn ledger() -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = Ledger::open(dir.path(), key(), Options::default()).expect("opens");
    let accounts = [
        (1, AccountFlags::NONE),
        (2, AccountFlags::DEBITS_MUST_NOT_EXCEED_CREDITS),
    ]
    .map(|(id, flags)| NewAccount {
        id: AccountId(id),
        ledger: 392,
        code: 1,
        flags,
        ..NewAccount::default()
    });
    let results = ledger.create_accounts(&accounts, NOW).expect("accounts");
    assert!(results.iter().all(|r| r.is_recorded()), "{results:?}");
    (dir, ledger)
}

fn transfer(id: u128, debit: u128, credit: u128) -> NewTransfer {
    NewTransfer {
        id: TransferId(id),
        debit_account_id: AccountId(debit),
        credit_account_id: AccountId(credit),
        amount: 5,
        ledger: 392,
        code: 1,
        ..NewTransfer::default()
    }
}

/// A transfer from account 2 beyond its credits: fails transiently (`exceeds_credits`).
fn overdraft(id: u128) -> NewTransfer {
    NewTransfer {
        amount: 1_000,
        ..transfer(id, 2, 1)
    }
}

fn put(key: &[u8], value: &[u8]) -> RecordWrite {
    RecordWrite::Put {
        key: key.to_vec(),
        value: value.to_vec(),
    }
}

#[test]
fn the_closure_sees_the_answered_results_and_the_ledger_timestamps() {
    let (dir, ledger) = ledger();
    // One that applies, one that fails transiently (account 2 holds no credits).
    let batch = [transfer(10, 1, 2), overdraft(11)];
    let seen: Arc<Mutex<Vec<TransferOutcome>>> = Arc::default();
    let seen_in = Arc::clone(&seen);
    let results = ledger
        .create_transfers_with(&batch, NOW, move |outcomes| {
            seen_in.lock().expect("lock").extend_from_slice(outcomes);
            Ok(vec![put(b"p/10", b"ten"), put(b"p/11", b"eleven")])
        })
        .expect("answered");
    assert_eq!(
        results,
        [
            CreateTransferResult::Ok,
            CreateTransferResult::ExceedsCredits
        ]
    );
    let seen = seen.lock().expect("lock").clone();
    let stored = ledger
        .lookup_transfers(&[TransferId(10)])
        .expect("lookup")
        .pop()
        .flatten()
        .expect("stored");
    assert_eq!(
        seen,
        [
            TransferOutcome {
                result: CreateTransferResult::Ok,
                timestamp: Some(stored.timestamp),
            },
            TransferOutcome {
                result: CreateTransferResult::ExceedsCredits,
                timestamp: None,
            },
        ]
    );
    assert_eq!(
        ledger.record(b"p/10").expect("reads"),
        Some(b"ten".to_vec())
    );
    // Records alone, a delete among them, in one call.
    ledger
        .write_records(vec![
            put(b"q/1", b"x"),
            RecordWrite::Delete {
                key: b"p/11".to_vec(),
            },
        ])
        .expect("written");
    assert_eq!(ledger.record(b"p/11").expect("reads"), None);
    // Pages: after a key, within a prefix, bounded.
    ledger
        .write_records(
            (0..5u8)
                .map(|n| put(&[b'p', b'/', b'z', n], &[n]))
                .collect(),
        )
        .expect("written");
    let first = ledger.records(b"p/", None, 3).expect("page");
    let keys: Vec<&[u8]> = first.iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(keys, [&b"p/10"[..], b"p/z\0", b"p/z\x01"]);
    let next = ledger.records(b"p/", Some(&first[2].0), 10).expect("page");
    assert_eq!(next.len(), 3);
    assert!(next.iter().all(|(k, _)| k.starts_with(b"p/z")));
    // A key before the prefix starts the page at the prefix.
    assert_eq!(
        ledger.records(b"q/", Some(b"a"), 10).expect("page").len(),
        1
    );
    ledger.close().expect("closes");
    // Records are not ledger state: the audit is clean, and the offline reader sees them.
    let report = crate::audit(dir.path(), &AuditOptions::default()).expect("audit");
    assert!(report.is_clean(), "{:#?}", report.discrepancies);
    let offline = LedgerRecords::open(dir.path()).expect("opens");
    assert_eq!(offline.record(b"q/1").expect("reads"), Some(b"x".to_vec()));
    let scanned: Vec<_> = offline
        .records(b"p/")
        .collect::<Result<_, _>>()
        .expect("scans");
    assert_eq!(scanned.len(), 6);
}

#[test]
fn a_refused_closure_or_record_refuses_the_whole_request_and_writes_nothing() {
    let (_dir, ledger) = ledger();
    type Refusal = Box<dyn Fn() -> Result<Vec<RecordWrite>, String> + Send>;
    let refusals: Vec<Refusal> = vec![
        Box::new(|| Err("cannot encode".into())),
        Box::new(|| panic!("the caller's closure panics")),
        Box::new(|| Ok(vec![put(b"k", &vec![0; RECORD_VALUE_LEN_MAX + 1])])),
        Box::new(|| Ok(vec![put(&vec![b'k'; RECORD_KEY_LEN_MAX + 1], b"v")])),
        Box::new(|| Ok(vec![put(b"", b"v")])),
    ];
    for refusal in refusals {
        // One that would apply and one that would fail transiently: neither may stand.
        let batch = [transfer(20, 1, 2), overdraft(21)];
        let error = ledger
            .create_transfers_with(&batch, NOW, move |_| {
                let mut writes = vec![put(b"r/20", b"applied")];
                writes.extend(refusal()?);
                Ok(writes)
            })
            .expect_err("refused");
        assert!(matches!(error, Error::RecordsRefused { .. }), "{error:?}");
        let found = ledger.lookup_transfers(&[TransferId(20)]).expect("lookup");
        assert_eq!(found, [None]);
        assert_eq!(ledger.record(b"r/20").expect("reads"), None);
    }
    // Nothing of the refused requests stands: not the transfer, not the transient failure
    // (a retry of 21 would be `id_already_failed`), not the balances.
    let results = ledger
        .create_transfers(&[transfer(20, 1, 2), transfer(21, 2, 1)], NOW)
        .expect("answered");
    assert_eq!(
        results,
        [CreateTransferResult::Ok, CreateTransferResult::Ok]
    );
    let accounts = ledger.lookup_accounts(&[AccountId(1)]).expect("lookup");
    let account = accounts[0].expect("exists");
    assert_eq!((account.debits_posted, account.credits_posted), (5, 5));
    // Oversized writes alone are refused before they are queued.
    let error = ledger
        .write_records(vec![put(b"k", &vec![0; RECORD_VALUE_LEN_MAX + 1])])
        .expect_err("refused");
    assert!(matches!(error, Error::RecordsRefused { .. }), "{error:?}");
    // The writer is still serving.
    ledger
        .write_records(vec![put(b"after", b"ok")])
        .expect("written");
    assert_eq!(
        ledger.record(b"after").expect("reads"),
        Some(b"ok".to_vec())
    );
}

/// A reader never sees a record before the transfer it was written with: both are published
/// by the same group commit, once durable.
#[test]
fn a_record_is_never_visible_before_its_transfer() {
    let (_dir, ledger) = ledger();
    let ledger = Arc::new(ledger);
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (ledger, done) = (Arc::clone(&ledger), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut seen = 0;
            while !done.load(Ordering::Acquire) {
                for id in 100..160u128 {
                    let record = ledger.record(&id.to_be_bytes()).expect("reads");
                    if record.is_some() {
                        let found = ledger.lookup_transfers(&[TransferId(id)]).expect("lookup");
                        assert!(
                            found[0].is_some(),
                            "record {id} visible before its transfer"
                        );
                        seen += 1;
                    }
                }
            }
            seen
        })
    };
    for id in 100..160u128 {
        let results = ledger
            .create_transfers_with(&[transfer(id, 1, 2)], NOW, move |_| {
                Ok(vec![put(&id.to_be_bytes(), b"paid")])
            })
            .expect("answered");
        assert_eq!(results, [CreateTransferResult::Ok]);
        // Answered means durable and visible.
        assert!(ledger.record(&id.to_be_bytes()).expect("reads").is_some());
    }
    done.store(true, Ordering::Release);
    assert!(reader.join().expect("reader") > 0);
}
