//! The pair audit of books in PostgreSQL (issue 15, `[storage] backend = "postgres"`): a JP
//! node whose books are a schema of a throwaway durable cluster (`kakehashi-pgcluster`) and an
//! SG node on sled pay, stop, and are audited as a pair, the JP ledger's audit pinned to the
//! key of JP's signing certificate as on sled. A schema without a ledger and a server that
//! cannot be reached are errors that say so (and show no password), and the audit creates
//! nothing. The tests that need a server say so and pass when PostgreSQL is missing, and fail
//! under `KAKEHASHI_REQUIRE_PG=1`, as CI sets.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kakehashi_node::config::{Config, PostgresStorage, StorageBackend, default_schema};
use kakehashi_ops::load::{self, LoadOptions};
use kakehashi_ops::pair_audit::{self, NodeBooks, PairAuditError};
use kakehashi_pgcluster::{Cluster, ClusterOptions};
use kakehashi_pki::mra::Mra;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The devnet configuration of `jurisdiction`, its data directory under `dir`.
fn devnet(jurisdiction: &str, dir: &Path) -> Config {
    let code = jurisdiction.to_ascii_lowercase();
    Config::load(&repo().join(format!("crates/node/devnet/{code}.toml")))
        .expect("devnet configuration")
        .with_data_dir(dir.join(code))
}

fn on_postgres(mut config: Config, url: &str, schema: &str) -> Config {
    config.storage.backend = StorageBackend::Postgres(PostgresStorage {
        url: url.to_owned(),
        schema: schema.to_owned(),
        pool_size: 4,
    });
    config
}

fn mra() -> Mra {
    Mra::load(&repo().join("certs/mra.toml")).expect("the devnet agreement")
}

/// A running cluster with database `books` (stopped when dropped).
struct Database {
    url: String,
    cluster: Cluster,
    _dir: tempfile::TempDir,
}

fn database(test: &str) -> Option<Database> {
    let binaries = kakehashi_pgcluster::require(test)?;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a cluster directory");
    let cluster = Cluster::start(&binaries, dir.path(), ClusterOptions::default())
        .expect("start a PostgreSQL cluster");
    let url = cluster
        .create_database("books")
        .expect("create the database");
    Some(Database {
        url,
        cluster,
        _dir: dir,
    })
}

/// Whether the database `books` has the schema `schema`.
fn has_schema(db: &Database, schema: &str) -> bool {
    let found = db
        .cluster
        .psql(
            "books",
            &format!(
                "SELECT count(*) FROM information_schema.schemata WHERE schema_name = '{schema}'"
            ),
        )
        .expect("psql");
    found.trim() != "0"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_postgres_and_a_node_on_sled_are_audited_as_a_pair() {
    let Some(db) = database("pair_audit_on_postgres") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let jp = on_postgres(devnet("JP", dir.path()), &db.url, &default_schema("JP"));
    let sg = devnet("SG", dir.path());
    let mra = Arc::new(mra());
    let routes = load::routes(&jp, &sg, &repo().join("certs")).expect("routes");
    let pair = load::start_pair(jp.clone(), sg.clone(), dir.path())
        .await
        .expect("JP on PostgreSQL and SG on sled start");
    let options = LoadOptions {
        payments: 5,
        concurrency: 2,
        ..LoadOptions::default()
    };
    let report = load::run(
        &pair,
        Arc::new(routes),
        Arc::clone(&mra),
        &options,
        Arc::new(|| {}),
    )
    .await
    .expect("the payments run");
    assert_eq!(report.settled(), 5, "every payment settles");
    pair.shutdown().await.expect("both nodes stop cleanly");
    assert!(
        !dir.path().join("jp").join("ledger").exists(),
        "JP keeps no books in its data directory"
    );

    let (jp_books, sg_books) = pair_audit::load_pair(&jp, &sg, &mra)
        .await
        .expect("both books load");
    assert_eq!(
        jp_books.data_dir,
        Path::new("PostgreSQL schema kakehashi_jp")
    );
    assert_eq!(jp_books.outbound.len(), 5, "JP's payment records");
    assert_eq!(sg_books.inbound.len(), 5, "SG's payment records");
    let jp_audit = jp_books.ledger_audit.as_ref().expect("JP's ledger audit");
    assert!(jp_audit.is_clean(), "{jp_audit:?}");
    assert!(jp_audit.checkpoints_verified > 0, "{jp_audit:?}");
    assert_eq!(jp_audit.records_unsigned, 0, "a clean close signs the head");
    let report = pair_audit::audit_pair(&jp_books, &sg_books, &mra);
    assert!(report.agrees(), "{report:?}");
    let jp_to_sg = report
        .directions
        .iter()
        .find(|d| d.sender == "JP")
        .expect("the JP → SG direction");
    assert_eq!((jp_to_sg.payments, jp_to_sg.settled), (5, 5));
    assert_eq!(
        jp_to_sg.position.corridor_posted,
        jp_to_sg.position.settled_source
    );
    assert_ne!(jp_to_sg.position.corridor_posted.value, "0");

    // The JP ledger's checkpoints are pinned to the key of the configuration's signing
    // certificate: under SG's certificate they are JP's books no more.
    let mut wrong_key = jp.clone();
    wrong_key.signing.cert = sg.signing.cert.clone();
    let books = NodeBooks::load(&wrong_key, "SG", &mra)
        .await
        .expect("the books load");
    let audit = books.ledger_audit.as_ref().expect("the ledger audit");
    assert!(!audit.is_clean(), "{audit:?}");
    let report = pair_audit::audit_pair(&books, &sg_books, &mra);
    assert!(!report.agrees());

    // Two configurations of one schema are not a pair.
    let same = on_postgres(sg.clone(), &db.url, &default_schema("JP"));
    let error = pair_audit::load_pair(&jp, &same, &mra)
        .await
        .expect_err("one schema");
    assert!(
        error.to_string().contains("both use the PostgreSQL schema"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_without_a_ledger_is_an_error_and_the_audit_creates_nothing() {
    let Some(db) = database("pair_audit_of_a_missing_schema") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let jp = on_postgres(devnet("JP", dir.path()), &db.url, "kakehashi_absent");
    let error = NodeBooks::load(&jp, "SG", &mra())
        .await
        .expect_err("no ledger there");
    assert!(
        matches!(error, PairAuditError::Postgres { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("JP's ledger in PostgreSQL schema kakehashi_absent")
            && message.contains("no ledger in schema kakehashi_absent")
            && message.contains("start the node once"),
        "{message}"
    );
    assert!(
        !has_schema(&db, "kakehashi_absent"),
        "a read-only tool created the schema"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_cannot_be_reached_is_an_error_that_shows_no_password() {
    // Port 1 on the loopback: nothing listens there, so the connection is refused at once.
    let dir = tempfile::tempdir().expect("tempdir");
    let jp = on_postgres(
        devnet("JP", dir.path()),
        "postgresql://kakehashi:hunter2-secret@127.0.0.1:1/books",
        "kakehashi_jp",
    );
    let error = NodeBooks::load(&jp, "SG", &mra())
        .await
        .expect_err("nothing listens");
    let message = error.to_string();
    assert!(
        matches!(error, PairAuditError::Postgres { .. }),
        "{error:?}"
    );
    assert!(
        message.contains("is the server running") && !message.contains("hunter2"),
        "{message}"
    );
    assert!(!format!("{error:?}").contains("hunter2"), "{error:?}");
}
