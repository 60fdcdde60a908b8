//! Reopening, two ledgers on one schema, records with their transfers, and what open refuses.

use std::collections::BTreeSet;
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use kakehashi_ledger::{
    AccountFlags, AccountId, CreateTransferResult, NewAccount, NewTransfer, PendingStatus,
    RecordWrite, Timestamp, TransferFlags, TransferId,
};
use kakehashi_ledger_pg::{Error, Options, PgLedger};

use super::*;

fn account(id: u128, flags: AccountFlags) -> NewAccount {
    NewAccount {
        id: AccountId(id),
        ledger: JPY,
        code: 1,
        flags,
        ..NewAccount::default()
    }
}

fn transfer(id: u128, debit: u128, credit: u128, amount: u128) -> NewTransfer {
    NewTransfer {
        id: TransferId(id),
        debit_account_id: AccountId(debit),
        credit_account_id: AccountId(credit),
        amount,
        ledger: JPY,
        code: 1,
        ..NewTransfer::default()
    }
}

#[test]
fn state_head_and_key_survive_a_reopen_and_another_key_is_refused() {
    let Some(server) = server("state_head_and_key_survive_a_reopen_and_another_key_is_refused")
    else {
        return;
    };
    let url = server.url.clone();
    runtime().block_on(async {
        let schema = fresh_schema(&url, "reopen").await;
        let ledger = open(&url, &schema).await;
        let accounts = [
            account(1, AccountFlags::NONE),
            account(2, AccountFlags::HISTORY),
        ];
        ledger
            .create_accounts(&accounts, NOW)
            .await
            .expect("accounts");
        let pending = NewTransfer {
            flags: TransferFlags::PENDING,
            timeout: 1,
            ..transfer(11, 1, 2, 30)
        };
        let results = ledger
            .create_transfers(&[transfer(10, 1, 2, 100), pending], NOW)
            .await
            .expect("transfers");
        assert_eq!(
            results,
            [CreateTransferResult::Ok, CreateTransferResult::Ok]
        );
        ledger
            .write_records(vec![RecordWrite::Put {
                key: b"k1".to_vec(),
                value: b"v1".to_vec(),
            }])
            .await
            .expect("records");
        let head = ledger.head().await.expect("head");
        assert_eq!(head.seq, 2, "one record per request that changed something");
        ledger.close().await.expect("close");

        let refused =
            PgLedger::open(&options(&url, &schema), SigningKey::from_bytes(&[8; 32])).await;
        assert!(
            matches!(refused, Err(Error::NodeKeyMismatch { .. })),
            "another key: {:?}",
            refused.err()
        );

        let ledger = open(&url, &schema).await;
        assert_eq!(ledger.head().await.expect("head"), head);
        let found = ledger
            .lookup_accounts(&[AccountId(1), AccountId(2)])
            .await
            .expect("lookup");
        assert_eq!(found[0].map(|a| a.debits_posted), Some(100));
        assert_eq!(found[0].map(|a| a.debits_pending), Some(30));
        assert_eq!(found[1].map(|a| a.credits_posted), Some(100));
        assert_eq!(
            ledger.pending_status(TransferId(11)).await.expect("status"),
            Some(PendingStatus::Pending)
        );
        assert_eq!(
            ledger
                .account_history(AccountId(2))
                .await
                .expect("history")
                .len(),
            2
        );
        assert_eq!(
            ledger.record(b"k1").await.expect("record"),
            Some(b"v1".to_vec())
        );
        // Idempotency and the clock survive: the same transfer again is `exists`, and the
        // expiry a second later finds the pending one.
        assert_eq!(
            ledger
                .create_transfers(&[transfer(10, 1, 2, 100)], NOW)
                .await
                .expect("retry"),
            [CreateTransferResult::Exists]
        );
        let expired = ledger
            .expire_pending(Timestamp(NOW.0 + 2_000_000_000))
            .await
            .expect("expire");
        assert_eq!(expired.count, 1);
        assert_eq!(
            ledger.pending_status(TransferId(11)).await.expect("status"),
            Some(PendingStatus::Expired)
        );
        assert_eq!(ledger.head().await.expect("head").seq, 3);
        ledger.close().await.expect("close");
    });
}

#[test]
fn records_commit_with_their_transfers_or_not_at_all() {
    let Some(server) = server("records_commit_with_their_transfers_or_not_at_all") else {
        return;
    };
    let url = server.url.clone();
    runtime().block_on(async {
        let schema = fresh_schema(&url, "records").await;
        let ledger = open(&url, &schema).await;
        let accounts = [
            account(1, AccountFlags::NONE),
            account(2, AccountFlags::NONE),
        ];
        ledger
            .create_accounts(&accounts, NOW)
            .await
            .expect("accounts");
        let results = ledger
            .create_transfers_with(&[transfer(20, 1, 2, 5)], NOW, |outcomes| {
                assert!(outcomes[0].timestamp.is_some());
                Ok(vec![RecordWrite::Put {
                    key: b"pay/20".to_vec(),
                    value: b"settled".to_vec(),
                }])
            })
            .await
            .expect("with records");
        assert_eq!(results, [CreateTransferResult::Ok]);
        assert_eq!(
            ledger.record(b"pay/20").await.expect("record"),
            Some(b"settled".to_vec())
        );
        // A refusing closure: neither the transfer nor any record is committed.
        let refused = ledger
            .create_transfers_with(&[transfer(21, 1, 2, 5)], NOW, |_| {
                Err("the payment moved on".into())
            })
            .await;
        assert!(
            matches!(
                refused,
                Err(Error::Ledger(
                    kakehashi_ledger::Error::RecordsRefused { .. }
                ))
            ),
            "{refused:?}"
        );
        // A panicking closure, and an oversized record, are refused the same way.
        let panicked = ledger
            .create_transfers_with(&[transfer(22, 1, 2, 5)], NOW, |_| panic!("a bug"))
            .await;
        assert!(matches!(panicked, Err(Error::Ledger(_))), "{panicked:?}");
        let oversized = ledger
            .create_transfers_with(&[transfer(23, 1, 2, 5)], NOW, |_| {
                Ok(vec![RecordWrite::Put {
                    key: b"big".to_vec(),
                    value: vec![0; kakehashi_ledger::RECORD_VALUE_LEN_MAX + 1],
                }])
            })
            .await;
        assert!(matches!(oversized, Err(Error::Ledger(_))), "{oversized:?}");
        let found = ledger
            .lookup_transfers(&[TransferId(21), TransferId(22), TransferId(23)])
            .await
            .expect("lookup");
        assert_eq!(found, [None, None, None]);
        assert_eq!(ledger.record(b"big").await.expect("record"), None);
        let accounts = ledger
            .lookup_accounts(&[AccountId(1)])
            .await
            .expect("lookup");
        assert_eq!(accounts[0].map(|a| a.debits_posted), Some(5));
        // The refused ids stay free: the same transfer with records that pass now applies.
        let results = ledger
            .create_transfers_with(&[transfer(21, 1, 2, 5)], NOW, |_| Ok(Vec::new()))
            .await
            .expect("retry");
        assert_eq!(results, [CreateTransferResult::Ok]);
        // Pages of a prefix, in key order, continued after the last key.
        let writes = (0..5)
            .map(|n| RecordWrite::Put {
                key: format!("q/{n}").into_bytes(),
                value: vec![n],
            })
            .chain([RecordWrite::Delete {
                key: b"q/3".to_vec(),
            }])
            .collect();
        ledger.write_records(writes).await.expect("records");
        let first = ledger.records(b"q/", None, 2).await.expect("page");
        assert_eq!(
            first.iter().map(|(key, _)| key.clone()).collect::<Vec<_>>(),
            [b"q/0".to_vec(), b"q/1".to_vec()]
        );
        let rest = ledger.records(b"q/", Some(b"q/1"), 10).await.expect("page");
        assert_eq!(
            rest.iter().map(|(key, _)| key.clone()).collect::<Vec<_>>(),
            [b"q/2".to_vec(), b"q/4".to_vec()]
        );
        ledger.close().await.expect("close");
    });
}

#[test]
fn two_ledgers_on_one_schema_write_one_chain_and_apply_each_id_once() {
    let Some(server) = server("two_ledgers_on_one_schema_write_one_chain_and_apply_each_id_once")
    else {
        return;
    };
    let url = server.url.clone();
    runtime().block_on(async {
        let schema = fresh_schema(&url, "shared").await;
        // Without the writer lease: the head row's lock alone orders the two writers.
        let shared = Options {
            exclusive: false,
            ..options(&url, &schema)
        };
        let first = Arc::new(PgLedger::open(&shared, node_key()).await.expect("first"));
        let second = Arc::new(PgLedger::open(&shared, node_key()).await.expect("second"));
        let accounts: Vec<NewAccount> = (1..=4).map(|id| account(id, AccountFlags::NONE)).collect();
        first
            .create_accounts(&accounts, NOW)
            .await
            .expect("accounts");
        // Both processes send the same ids (a retry reaching both, as a relay would), one
        // request after another each, interleaving with the other process.
        let (a, b) = tokio::join!(send(Arc::clone(&first)), send(Arc::clone(&second)));
        let mut applied = BTreeSet::new();
        for (id, result) in a.iter().chain(&b) {
            match result {
                CreateTransferResult::Ok => assert!(applied.insert(*id), "{id:?} applied twice"),
                CreateTransferResult::Exists => {}
                other => panic!("{id:?}: {other:?}"),
            }
        }
        assert_eq!(applied.len(), 40, "every id applied exactly once");
        let head = first.head().await.expect("head");
        assert_eq!(head, second.head().await.expect("head"));
        // One record per request that applied something, all on one chain: 1 for the
        // accounts, 40 for the transfers applied (the `exists` answers journal nothing).
        assert_eq!(head.seq, 41);
        let accounts = first
            .lookup_accounts(&(1..=4).map(AccountId).collect::<Vec<_>>())
            .await
            .expect("lookup");
        let debits: u128 = accounts.iter().flatten().map(|a| a.debits_posted).sum();
        let credits: u128 = accounts.iter().flatten().map(|a| a.credits_posted).sum();
        assert_eq!((debits, credits), (40, 40));
        for ledger in [first, second] {
            let Ok(ledger) = Arc::try_unwrap(ledger) else {
                panic!("a task still holds the ledger");
            };
            ledger.close().await.expect("close");
        }
        let report = kakehashi_ledger_pg::audit(&options(&url, &schema), &Default::default())
            .await
            .expect("audit");
        assert!(report.is_clean(), "{:?}", report.discrepancies);
        assert_eq!((report.records, report.records_unsigned), (41, 0));
    });
}

#[test]
fn one_ledger_holds_the_writer_lease_and_a_lost_lease_stops_its_writer() {
    let Some(server) =
        server("one_ledger_holds_the_writer_lease_and_a_lost_lease_stops_its_writer")
    else {
        return;
    };
    let url = server.url.clone();
    runtime().block_on(async {
        let schema = fresh_schema(&url, "lease").await;
        let first = open(&url, &schema).await;
        let put = |key: &[u8]| RecordWrite::Put {
            key: key.to_vec(),
            value: b"v".to_vec(),
        };
        first.write_records(vec![put(b"a")]).await.expect("written");
        // A second ledger on the schema is refused while the first runs.
        let refused = PgLedger::open(&options(&url, &schema), node_key()).await;
        assert!(
            matches!(&refused, Err(Error::Held { schema: held }) if *held == schema),
            "{:?}",
            refused.err()
        );
        // The lease's session ends (as a cut connection would): the second ledger may take it,
        // and the first's next group is not applied and stops its writer.
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        let connection = tokio::spawn(connection);
        let ended = client
            .query_one(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_locks \
                 WHERE locktype = 'advisory' AND objsubid = 2 AND granted) AS t",
                &[],
            )
            .await
            .expect("terminate the lease's session");
        assert_eq!(ended.get::<_, i64>(0), 1, "one lease session");
        drop(client);
        let _ = connection.await;
        let mut second = None;
        for _ in 0..50 {
            match PgLedger::open(&options(&url, &schema), node_key()).await {
                Ok(ledger) => {
                    second = Some(ledger);
                    break;
                }
                // The ended session's locks go once the server has noticed.
                Err(Error::Held { .. }) => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(other) => panic!("{other}"),
            }
        }
        let second = second.expect("the lease is free once its session ended");
        let lost = first.write_records(vec![put(b"lost")]).await;
        assert!(matches!(lost, Err(Error::LeaseLost { .. })), "{lost:?}");
        assert!(first.stopped().is_some(), "the first writer stopped");
        second
            .write_records(vec![put(b"b")])
            .await
            .expect("the new holder writes");
        for (key, present) in [(&b"a"[..], true), (b"b", true), (b"lost", false)] {
            assert_eq!(
                second.record(key).await.expect("read").is_some(),
                present,
                "{}",
                String::from_utf8_lossy(key)
            );
        }
        drop(first);
        second.close().await.expect("close");
        let report = kakehashi_ledger_pg::audit(&options(&url, &schema), &Default::default())
            .await
            .expect("audit");
        assert!(report.is_clean(), "{:?}", report.discrepancies);
    });
}

#[test]
fn the_audit_finds_a_tampered_balance_journal_or_signature() {
    let Some(server) = server("the_audit_finds_a_tampered_balance_journal_or_signature") else {
        return;
    };
    let url = server.url.clone();
    runtime().block_on(async {
        let schema = fresh_schema(&url, "tamper").await;
        let ledger = open(&url, &schema).await;
        let accounts = [account(1, AccountFlags::NONE), account(2, AccountFlags::NONE)];
        ledger.create_accounts(&accounts, NOW).await.expect("accounts");
        ledger
            .create_transfers(&[transfer(10, 1, 2, 100)], NOW)
            .await
            .expect("transfer");
        ledger.close().await.expect("close");
        let options = options(&url, &schema);
        let clean = kakehashi_ledger_pg::audit(&options, &Default::default())
            .await
            .expect("audit");
        assert!(clean.is_clean(), "{:?}", clean.discrepancies);
        assert!(clean.checkpoints_verified >= 1, "the close took a checkpoint");
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        let connection = tokio::spawn(connection);
        // Each tampering alone is found; each is undone before the next.
        let tamperings = [
            // Account 2's credits_posted (bytes 64..80 of its encoding) raised by one.
            (
                "UPDATE {s}.accounts SET account = overlay(account placing '\\x65'::bytea                  from 65 for 1) WHERE id = '\\x00000000000000000000000000000002'",
                "UPDATE {s}.accounts SET account = overlay(account placing '\\x64'::bytea                  from 65 for 1) WHERE id = '\\x00000000000000000000000000000002'",
            ),
            // A byte of the transfer's journal record.
            (
                "UPDATE {s}.journal SET record = overlay(record placing '\\xff'::bytea from 60                  for 1) WHERE seq = 2",
                "",
            ),
        ];
        for (tamper, undo) in tamperings {
            let saved = client
                .query_one(
                    &format!("SELECT record FROM {schema}.journal WHERE seq = 2"),
                    &[],
                )
                .await
                .expect("save")
                .get::<_, Vec<u8>>(0);
            client
                .batch_execute(&tamper.replace("{s}", &schema))
                .await
                .expect("tamper");
            let report = kakehashi_ledger_pg::audit(&options, &Default::default())
                .await
                .expect("audit");
            assert!(!report.is_clean(), "{tamper}: the audit found nothing");
            // Opening refuses books it cannot vouch for (here the head's record or the
            // balances its checkpoint signed).
            let refused = PgLedger::open(&options, node_key()).await;
            assert!(
                matches!(refused, Err(Error::Corrupt { .. })),
                "{tamper}: {:?}",
                refused.err()
            );
            if undo.is_empty() {
                client
                    .execute(
                        &format!("UPDATE {schema}.journal SET record = $1 WHERE seq = 2"),
                        &[&saved],
                    )
                    .await
                    .expect("undo");
            } else {
                client
                    .batch_execute(&undo.replace("{s}", &schema))
                    .await
                    .expect("undo");
            }
        }
        let again = kakehashi_ledger_pg::audit(&options, &Default::default())
            .await
            .expect("audit");
        assert!(again.is_clean(), "{:?}", again.discrepancies);
        // Another key than the node's: every signature fails.
        let stranger = SigningKey::from_bytes(&[9; 32]).verifying_key();
        let pinned = kakehashi_ledger_pg::audit(
            &options,
            &kakehashi_ledger::AuditOptions {
                expected_key: Some(stranger),
            },
        )
        .await
        .expect("audit");
        assert!(!pinned.is_clean());
        drop(client);
        let _ = connection.await;
    });
}

/// Sends transfers 100..140, one request each, from four tasks at once (ids spread over
/// them); returns each id's result.
async fn send(ledger: Arc<PgLedger>) -> Vec<(TransferId, CreateTransferResult)> {
    let tasks: Vec<_> = (0..4u128)
        .map(|task| {
            let ledger = Arc::clone(&ledger);
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for n in (0..40u128).filter(|n| n % 4 == task) {
                    let batch = [transfer(100 + n, 1 + n % 4, 1 + (n + 1) % 4, 1)];
                    let results = ledger
                        .create_transfers(&batch, Timestamp(NOW.0 + n as u64))
                        .await
                        .expect("transfers");
                    answers.push((batch[0].id, results[0]));
                }
                answers
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.extend(task.await.expect("task"));
    }
    answers
}

/// Installs, in `schema`, a deferred trigger on the records table that acts at COMMIT on a
/// record keyed `fail` (an ERROR: the server rolls back and says so) or `die` (the backend
/// terminates itself: the session ends during COMMIT).
async fn install_commit_faults(url: &str, schema: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    let connection = tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "CREATE FUNCTION {schema}.commit_fault() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.key = 'fail'::bytea THEN
                     RAISE EXCEPTION 'refused at commit';
                 ELSIF NEW.key = 'die'::bytea THEN
                     PERFORM pg_terminate_backend(pg_backend_pid());
                     PERFORM pg_sleep(5);
                 END IF;
                 RETURN NULL;
             END $$;
             CREATE CONSTRAINT TRIGGER commit_fault AFTER INSERT ON {schema}.records
                 DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
                 EXECUTE FUNCTION {schema}.commit_fault();"
        ))
        .await
        .expect("install the faults");
    drop(client);
    let _ = connection.await;
}

#[test]
fn a_commit_refused_is_not_applied_and_a_commit_cut_off_stops_the_writer() {
    let Some(server) =
        server("a_commit_refused_is_not_applied_and_a_commit_cut_off_stops_the_writer")
    else {
        return;
    };
    let url = server.url.clone();
    runtime().block_on(async {
        let schema = fresh_schema(&url, "commit").await;
        let ledger = open(&url, &schema).await;
        let accounts = [
            account(1, AccountFlags::NONE),
            account(2, AccountFlags::NONE),
        ];
        ledger
            .create_accounts(&accounts, NOW)
            .await
            .expect("accounts");
        install_commit_faults(&url, &schema).await;
        let put = |key: &[u8]| RecordWrite::Put {
            key: key.to_vec(),
            value: b"v".to_vec(),
        };
        // Refused at COMMIT with an ERROR: rolled back, said so, and the writer goes on.
        let key = b"fail".to_vec();
        let refused = ledger
            .create_transfers_with(&[transfer(30, 1, 2, 7)], NOW, move |_| {
                Ok(vec![RecordWrite::Put {
                    key,
                    value: b"v".to_vec(),
                }])
            })
            .await;
        assert!(
            matches!(refused, Err(Error::NotApplied { .. })),
            "{refused:?}"
        );
        assert_eq!(
            ledger
                .lookup_transfers(&[TransferId(30)])
                .await
                .expect("lookup"),
            [None]
        );
        ledger
            .write_records(vec![put(b"after")])
            .await
            .expect("the writer goes on");
        // Cut off during COMMIT: the outcome is unknown, the writer stops.
        let cut = ledger
            .create_transfers_with(&[transfer(31, 1, 2, 7)], NOW, move |_| {
                Ok(vec![RecordWrite::Put {
                    key: b"die".to_vec(),
                    value: b"v".to_vec(),
                }])
            })
            .await;
        assert!(matches!(cut, Err(Error::OutcomeUnknown { .. })), "{cut:?}");
        assert!(cut.is_err_and(|error| !error.is_transient()));
        let later = ledger.write_records(vec![put(b"later")]).await;
        assert!(matches!(later, Err(Error::Stopped { .. })), "{later:?}");
        assert!(ledger.stopped().is_some());
        assert!(ledger.close().await.is_err(), "close reports the stop");
        // Reopened, the books say what happened (here: the session died before the commit).
        let ledger = open(&url, &schema).await;
        assert_eq!(
            ledger
                .lookup_transfers(&[TransferId(30), TransferId(31)])
                .await
                .expect("lookup"),
            [None, None]
        );
        assert_eq!(
            ledger.record(b"after").await.expect("record"),
            Some(b"v".to_vec())
        );
        ledger.close().await.expect("close");
        let report = kakehashi_ledger_pg::audit(&options(&url, &schema), &Default::default())
            .await
            .expect("audit");
        assert!(report.is_clean(), "{:?}", report.discrepancies);
    });
}

#[test]
fn a_schema_a_newer_build_migrated_is_refused_and_bad_schema_names_are_refused() {
    let Some(server) =
        server("a_schema_a_newer_build_migrated_is_refused_and_bad_schema_names_are_refused")
    else {
        return;
    };
    let url = server.url.clone();
    runtime().block_on(async {
        let schema = fresh_schema(&url, "version").await;
        open(&url, &schema).await.close().await.expect("close");
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        let connection = tokio::spawn(connection);
        client
            .batch_execute(&format!(
                "INSERT INTO {schema}.schema_version (version) VALUES (99)"
            ))
            .await
            .expect("a newer version");
        drop(client);
        let _ = connection.await;
        let refused = PgLedger::open(&options(&url, &schema), node_key()).await;
        assert!(
            matches!(refused, Err(Error::SchemaTooNew { found: 99, .. })),
            "{:?}",
            refused.err()
        );
        let audited =
            kakehashi_ledger_pg::audit(&options(&url, &schema), &Default::default()).await;
        assert!(matches!(audited, Err(Error::SchemaTooNew { .. })));
        for bad in [
            "",
            "Public",
            "a;drop",
            "pg_catalog",
            "1abc",
            &"a".repeat(64),
        ] {
            let refused = PgLedger::open(&options(&url, bad), node_key()).await;
            assert!(
                matches!(refused, Err(Error::InvalidOption { name: "schema", .. })),
                "{bad:?}"
            );
        }
    });
}

#[test]
fn a_server_killed_between_groups_fails_requests_unapplied_and_a_reopened_ledger_goes_on() {
    let Some(mut server) = server(
        "a_server_killed_between_groups_fails_requests_unapplied_and_a_reopened_ledger_goes_on",
    ) else {
        return;
    };
    let url = server.url.clone();
    let runtime = runtime();
    let schema = runtime.block_on(fresh_schema(&url, "killed"));
    let ledger = runtime.block_on(async {
        let ledger = open(&url, &schema).await;
        let accounts = [
            account(1, AccountFlags::NONE),
            account(2, AccountFlags::NONE),
        ];
        ledger
            .create_accounts(&accounts, NOW)
            .await
            .expect("accounts");
        ledger
    });
    server.cluster.kill();
    let refused = runtime.block_on(ledger.create_transfers(&[transfer(40, 1, 2, 3)], NOW));
    assert!(
        matches!(refused, Err(Error::NotApplied { .. })),
        "{refused:?}"
    );
    assert!(refused.is_err_and(|error| error.is_transient()));
    assert!(
        ledger.stopped().is_none(),
        "a known outcome does not stop the writer"
    );
    server.cluster.restart().expect("restart");
    runtime.block_on(async {
        // Connections the pool held died with the server; each failed attempt drops one. The
        // writer lease died with them: the first group that reaches the server finds it gone
        // and stops the writer, and the ledger is opened again, as the node's handle does.
        let mut ledger = ledger;
        let mut results = None;
        let mut reopened = false;
        for _ in 0..10 {
            match ledger.create_transfers(&[transfer(40, 1, 2, 3)], NOW).await {
                Ok(applied) => {
                    results = Some(applied);
                    break;
                }
                Err(Error::NotApplied { .. } | Error::Pool { .. }) => continue,
                Err(Error::LeaseLost { .. }) => {
                    assert!(ledger.stopped().is_some());
                    drop(ledger);
                    ledger = open(&url, &schema).await;
                    reopened = true;
                }
                Err(other) => panic!("{other:?}"),
            }
        }
        assert!(reopened, "the lease did not survive the server");
        assert_eq!(results, Some(vec![CreateTransferResult::Ok]));
        let accounts = ledger
            .lookup_accounts(&[AccountId(1)])
            .await
            .expect("lookup");
        assert_eq!(
            accounts[0].map(|a| a.debits_posted),
            Some(3),
            "applied once"
        );
        ledger.close().await.expect("close");
        let report = kakehashi_ledger_pg::audit(&options(&url, &schema), &Default::default())
            .await
            .expect("audit");
        assert!(report.is_clean(), "{:?}", report.discrepancies);
    });
}
