//! A JP and an SG node whose books live in PostgreSQL (issue 15, `[storage] backend =
//! "postgres"`): both nodes in one database, a schema each, on a throwaway durable cluster
//! (`kakehashi-pgcluster`; the tests say so and pass when PostgreSQL is missing, and fail
//! under `KAKEHASHI_REQUIRE_PG=1`, as CI sets).

use std::path::Path;

use kakehashi_ledger::AuditOptions;
use kakehashi_node::config::{Config, PostgresStorage, StorageBackend, default_schema};
use kakehashi_node::node::{Node, RunningNode, postgres_options};
use kakehashi_pgcluster::TestDatabase;
use kakehashi_proto::pb::{self, TransactionStatus};

use crate::support::*;

/// A throwaway cluster with database `books`, for `test` (see `TestDatabase`).
fn database(test: &str) -> Option<TestDatabase> {
    TestDatabase::start(test, Path::new(env!("CARGO_TARGET_TMPDIR")), "books")
}

/// The devnet configuration of `jurisdiction` with its books in `url`, in the default schema.
fn on_postgres(jurisdiction: &str, dir: &Path, ports: &Ports, url: &str) -> Config {
    let mut config = config(jurisdiction, dir, ports);
    config.storage.backend = StorageBackend::Postgres(PostgresStorage {
        url: url.to_owned(),
        schema: default_schema(jurisdiction),
        pool_size: 4,
    });
    config
}

async fn start_on(config: Config) -> RunningNode {
    let jurisdiction = config.jurisdiction.clone();
    Node::start(config)
        .await
        .unwrap_or_else(|e| panic!("{jurisdiction} node on PostgreSQL: {e}"))
}

/// One payment from `from`'s bank to the other jurisdiction, answered ACSC; its UETR.
async fn pays(
    client: &mut pb::payments_client::PaymentsClient<tonic::transport::Channel>,
    from: &str,
) -> String {
    let (source, to, bic) = match from {
        "JP" => (amount("JPY", "10000"), "SG", "KKHAJPJ0"),
        _ => (amount("SGD", "100.00"), "JP", "KKHBSGS0"),
    };
    let bank = bank(&from.to_ascii_lowercase(), bic);
    let q = quote(client, to, &source).await;
    let order = match from {
        "JP" => jp_to_sg(&bank, q, source),
        _ => sg_to_jp(&bank, q, source),
    };
    let uetr = new_uetr();
    let report = submit(client, instruction(&order, uetr)).await;
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Acsc,
        "{report:?}"
    );
    uetr.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_on_postgres_settle_both_ways_and_keep_their_books_across_a_restart() {
    let Some(db) = database("nodes_on_postgres_settle_both_ways") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = Ports::new();
    let jp = start_on(on_postgres("JP", dir.path(), &ports, db.url())).await;
    let sg = start_on(on_postgres("SG", dir.path(), &ports, db.url())).await;
    let mut jp_client = bank_client(jp.public_addr, "JP", "KKHAJPJ0").await;
    let mut sg_client = bank_client(sg.public_addr, "SG", "KKHBSGS0").await;
    let mut jp_operator = operator_client(jp.public_addr, "JP").await;
    let mut sg_operator = operator_client(sg.public_addr, "SG").await;

    let to_sg = pays(&mut jp_client, "JP").await;
    let to_jp = pays(&mut sg_client, "SG").await;
    let before = (
        balances(&mut jp_operator).await,
        balances(&mut sg_operator).await,
    );
    assert_eq!(posted(&before.0, "1001"), "9990000", "JP's debtor paid");
    assert_eq!(
        posted(&before.1, "2001"),
        "100086.78",
        "SG's creditor was paid"
    );
    drop((jp_client, sg_client, jp_operator, sg_operator));
    jp.shutdown().await.expect("JP shutdown");
    sg.shutdown().await.expect("SG shutdown");

    // The books are in the database, not in the data directories: without them, the nodes
    // start on the same books.
    std::fs::remove_dir_all(dir.path()).expect("remove the data directories");
    let jp = start_on(on_postgres("JP", dir.path(), &ports, db.url())).await;
    let sg = start_on(on_postgres("SG", dir.path(), &ports, db.url())).await;
    let mut jp_client = bank_client(jp.public_addr, "JP", "KKHAJPJ0").await;
    let mut sg_client = bank_client(sg.public_addr, "SG", "KKHBSGS0").await;
    let mut jp_operator = operator_client(jp.public_addr, "JP").await;
    let mut sg_operator = operator_client(sg.public_addr, "SG").await;
    let after = (
        balances(&mut jp_operator).await,
        balances(&mut sg_operator).await,
    );
    assert_eq!(after, before, "the balances survive the restart");
    for (client, uetr) in [(&mut jp_client, &to_sg), (&mut sg_client, &to_jp)] {
        let status = settled_status(client, uetr).await;
        assert_eq!(
            status.transaction_status(),
            TransactionStatus::Acsc,
            "{status:?}"
        );
    }
    // A payment submitted again after the restart is the same payment: answered as a
    // duplicate, not paid twice.
    let again = pays(&mut jp_client, "JP").await;
    assert_ne!(again, to_sg);
    drop((jp_client, sg_client, jp_operator, sg_operator));
    let configs = [
        on_postgres("JP", dir.path(), &ports, db.url()),
        on_postgres("SG", dir.path(), &ports, db.url()),
    ];
    jp.shutdown().await.expect("JP shutdown");
    sg.shutdown().await.expect("SG shutdown");

    // Each schema's journal audits clean under its node's key, with the head signed at close.
    for config in &configs {
        let StorageBackend::Postgres(postgres) = &config.storage.backend else {
            unreachable!("configured on PostgreSQL");
        };
        let mut report =
            kakehashi_ledger_pg::audit(&postgres_options(postgres), &AuditOptions::default())
                .await
                .expect("the audit runs");
        report.require_signed_head();
        assert!(report.is_clean(), "{}: {report:?}", config.jurisdiction);
    }
    drop(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_reopens_its_books_after_the_database_restarts() {
    let Some(mut db) = database("a_node_reopens_its_books_after_the_database_restarts") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = Ports::new();
    let jp = start_on(on_postgres("JP", dir.path(), &ports, db.url())).await;
    let sg = start_on(on_postgres("SG", dir.path(), &ports, db.url())).await;
    let mut jp_client = bank_client(jp.public_addr, "JP", "KKHAJPJ0").await;
    pays(&mut jp_client, "JP").await;

    let before = balances(&mut operator_client(jp.public_addr, "JP").await).await;
    // A power cut of the database: every connection dies with it.
    db.cluster().kill();
    // A quote needs no books; the payment under it needs them and is not decided.
    let source = amount("JPY", "10000");
    let q = quote(&mut jp_client, "SG", &source).await;
    let signed = instruction(&jp_to_sg(&bank("jp", "KKHAJPJ0"), q, source), new_uetr());
    let submit_again = |client: &mut pb::payments_client::PaymentsClient<_>| {
        let request = pb::SubmitPaymentRequest {
            instruction: Some(signed.clone()),
        };
        let mut client = client.clone();
        async move { client.submit_payment(request).await }
    };
    match submit_again(&mut jp_client).await {
        Ok(report) => assert_ne!(
            report.get_ref().transaction_status(),
            TransactionStatus::Acsc,
            "nothing settles while the books are down"
        ),
        Err(status) => assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}"),
    }

    db.cluster().restart().expect("the database starts again");
    // The nodes reopen their books on their own: the bank retries the same instruction (the
    // same UETR) until it is answered.
    let mut settled = None;
    for _ in 0..100 {
        if let Ok(report) = submit_again(&mut jp_client).await {
            let report = report.into_inner();
            match report.transaction_status() {
                TransactionStatus::Acsc | TransactionStatus::Rjct => {
                    settled = Some(report);
                    break;
                }
                TransactionStatus::Pdng => {
                    settled = Some(settled_status(&mut jp_client, &report.uetr).await);
                    break;
                }
                _ => {}
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // It ends: settled, or (when SG's books were not back yet as JP forwarded it, so SG
    // fenced it on JP's status query) rejected with nothing moved. Never in doubt for good,
    // never paid twice. (Both endings occur, depending on which node reopens first.)
    let ended = settled.expect("the payment was answered once the database came back");
    let again = submit_again(&mut jp_client)
        .await
        .expect("answered")
        .into_inner();
    // Submitted again, the payment is a duplicate whose answer names how it ended.
    let ended_as = match ended.transaction_status() {
        TransactionStatus::Acsc => "its status: ACSC".to_owned(),
        _ => format!("its status: RJCT {}", ended.status_reason_code),
    };
    assert_eq!(
        (
            again.transaction_status(),
            again.status_reason_code.as_str()
        ),
        (TransactionStatus::Rjct, "DUPL"),
        "{again:?}"
    );
    assert!(again.status_reason_detail.contains(&ended_as), "{again:?}");
    let debited = match ended.transaction_status() {
        TransactionStatus::Acsc => "9980000",
        TransactionStatus::Rjct => "9990000",
        _ => panic!("not final: {ended:?}"),
    };
    // With both nodes' books back, a new payment settles.
    pays(&mut jp_client, "JP").await;
    let after = balances(&mut operator_client(jp.public_addr, "JP").await).await;
    let debited_now = (debited.parse::<u64>().expect("JPY") - 10_000).to_string();
    assert_eq!(
        (posted(&before, "1001").as_str(), posted(&after, "1001")),
        ("9990000", debited_now),
        "each settled payment debited once ({ended:?})"
    );
    drop(jp_client);
    jp.shutdown().await.expect("JP shutdown");
    sg.shutdown().await.expect("SG shutdown");
}

/// The ledger's writer stops after a commit whose outcome it cannot know (its session ended
/// during COMMIT, as when the primary dies); the node's handle opens the ledger again at the
/// next call, on what the database committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_books_reopen_after_a_commit_whose_outcome_is_unknown() {
    use kakehashi_ledger::RecordWrite;
    use kakehashi_node::engine::PgHandle;

    let Some(db) = database("the_books_reopen_after_a_commit_whose_outcome_is_unknown") else {
        return;
    };
    let postgres = PostgresStorage {
        url: db.url().to_owned(),
        schema: "kakehashi_reopen".into(),
        pool_size: 4,
    };
    let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let handle = PgHandle::open(postgres_options(&postgres), key)
        .await
        .expect("open");
    let put = |key: &[u8]| RecordWrite::Put {
        key: key.to_vec(),
        value: b"v".to_vec(),
    };
    let first = handle.ledger().await.expect("the ledger");
    first.write_records(vec![put(b"a")]).await.expect("written");
    // A deferred trigger that ends its own session at COMMIT when the record `die` is written.
    db.psql("CREATE FUNCTION kakehashi_reopen.die() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.key = 'die'::bytea THEN
                     PERFORM pg_terminate_backend(pg_backend_pid());
                     PERFORM pg_sleep(5);
                 END IF;
                 RETURN NULL;
             END $$;
             CREATE CONSTRAINT TRIGGER die AFTER INSERT ON kakehashi_reopen.records
                 DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kakehashi_reopen.die();");
    let cut = first.write_records(vec![put(b"die")]).await;
    assert!(
        matches!(cut, Err(kakehashi_ledger_pg::Error::OutcomeUnknown { .. })),
        "{cut:?}"
    );
    assert!(first.stopped().is_some(), "the writer stopped");
    let again = handle.ledger().await.expect("reopened");
    assert!(!std::sync::Arc::ptr_eq(&first, &again), "a new ledger");
    assert!(again.stopped().is_none());
    again
        .write_records(vec![put(b"b")])
        .await
        .expect("written after reopening");
    for (key, present) in [(&b"a"[..], true), (b"b", true), (b"die", false)] {
        assert_eq!(
            again.record(key).await.expect("read").is_some(),
            present,
            "{}",
            String::from_utf8_lossy(key)
        );
    }
    assert!(
        std::sync::Arc::ptr_eq(&again, &handle.ledger().await.expect("the ledger")),
        "a running ledger is kept"
    );
}

/// One node process writes a schema: a second process configured on the same schema is
/// refused at start, and starts once the first has stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_node_process_on_the_same_schema_is_refused() {
    let Some(db) = database("a_second_node_process_on_the_same_schema_is_refused") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let first = start_on(on_postgres("JP", dir.path(), &Ports::new(), db.url())).await;
    let second = Node::start(on_postgres("JP", dir.path(), &Ports::new(), db.url())).await;
    let error = match second {
        Ok(_) => panic!("a second process on kakehashi_jp started"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.contains("kakehashi_jp") && error.contains("written by another process"),
        "{error}"
    );
    first.shutdown().await.expect("shutdown");
    let again = start_on(on_postgres("JP", dir.path(), &Ports::new(), db.url())).await;
    again.shutdown().await.expect("shutdown");
}
