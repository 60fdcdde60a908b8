//! Books in PostgreSQL through the binary (issue 15): `kakehashi devnet --demo --storage
//! postgres://…` runs both nodes on one database of a throwaway durable cluster
//! (`kakehashi-pgcluster`), a schema each, and keeps nothing of its books in the data
//! directory; then `ledger audit`, `ledger export`, `ledger statement` and `ledger pair-audit`
//! with `--config` read those books as on sled (the audit pinned to the node's key, every
//! record signed after the clean stop). A schema without a ledger, a server that cannot be
//! reached and both `--data-dir` and `--config` exit 2 with a reason, show no password and
//! create nothing. The tests that need a server say so and pass when PostgreSQL is missing, and
//! fail under `KAKEHASHI_REQUIRE_PG=1`, as CI sets.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use kakehashi_e2e::{DEMO_DEADLINE, DevnetProcess, kakehashi, repo_root};
use kakehashi_pgcluster::{Cluster, ClusterOptions};

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

/// The schemas of database `books`, sorted, one per line.
fn schemas(db: &Database) -> String {
    db.cluster
        .psql(
            "books",
            "SELECT schema_name FROM information_schema.schemata \
             WHERE schema_name LIKE 'kakehashi%' ORDER BY 1",
        )
        .expect("psql")
}

/// Writes `<dir>/<code>.toml`: the committed devnet configuration of `code` with its
/// certificates by absolute path, its data under `data_dir/<code>`, and its books in `schema`
/// of the database at `url`.
fn config_on_postgres(dir: &Path, code: &str, data_dir: &Path, url: &str, schema: &str) -> PathBuf {
    let repo = repo_root();
    let text = std::fs::read_to_string(repo.join(format!("crates/node/devnet/{code}.toml")))
        .expect("devnet config");
    let sled_storage = text
        .lines()
        .find(|line| line.starts_with("cache_mib"))
        .expect("the devnet's [storage] cache_mib");
    let text = text
        .replace("../../../certs", &repo.join("certs").display().to_string())
        .replace(
            &format!("data_dir = \"data/{code}\""),
            &format!("data_dir = \"{}\"", data_dir.join(code).display()),
        )
        .replace(
            sled_storage,
            &format!("backend = \"postgres\"\nurl = \"{url}\"\nschema = \"{schema}\""),
        );
    let path = dir.join(format!("{code}.toml"));
    std::fs::write(&path, text).expect("write the configuration");
    path
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn run(args: &[&str]) -> Output {
    kakehashi(args)
}

/// Runs `kakehashi devnet --demo --storage URL` to its end (killed after the demo deadline).
fn devnet_demo_on(url: &str, data_dir: &Path, scratch: &Path) -> (Option<i32>, String) {
    let mut process = DevnetProcess::spawn(
        data_dir,
        scratch,
        &["--demo", "--storage", url],
        |command| {
            command.env_remove(kakehashi_node::fault::ENV);
        },
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = process.child.try_wait().expect("wait for kakehashi devnet") {
            break status;
        }
        if started.elapsed() > DEMO_DEADLINE {
            let _ = process.child.kill();
            let _ = process.child.wait();
            panic!(
                "devnet --demo still running after {DEMO_DEADLINE:?}\n{}",
                process.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status.code(), process.logs())
}

#[test]
fn devnet_on_postgres_then_the_ledger_tools_with_config_read_its_books() {
    let Some(db) = database("devnet_on_postgres_and_the_ledger_tools") else {
        return;
    };
    let scratch = tempfile::tempdir().expect("tempdir");
    let data_dir = scratch.path().join("devnet-data");
    let (code, logs) = devnet_demo_on(&db.url, &data_dir, scratch.path());
    assert_eq!(code, Some(0), "{logs}");
    assert!(
        logs.contains("PostgreSQL") && logs.contains("schemas kakehashi_jp and kakehashi_sg"),
        "{logs}"
    );
    assert_eq!(
        schemas(&db).split_whitespace().collect::<Vec<_>>(),
        ["kakehashi_jp", "kakehashi_sg"]
    );
    for code in ["jp", "sg"] {
        assert!(
            !data_dir.join(code).join("ledger").exists(),
            "the {code} node kept books in its data directory"
        );
    }

    let jp = config_on_postgres(scratch.path(), "jp", &data_dir, &db.url, "kakehashi_jp");
    let sg = config_on_postgres(scratch.path(), "sg", &data_dir, &db.url, "kakehashi_sg");
    let jp = jp.to_str().expect("UTF-8 path");
    let sg = sg.to_str().expect("UTF-8 path");

    // The audit: clean, pinned to JP's signing key, every record signed by the clean stop.
    let audit = run(&[
        "ledger",
        "audit",
        "--config",
        jp,
        "--require-signed-head",
        "--json",
    ]);
    assert_eq!(audit.status.code(), Some(0), "{}", text(&audit));
    let report: serde_json::Value =
        serde_json::from_slice(&audit.stdout).expect("audit --json is JSON");
    assert_eq!(report["clean"], serde_json::Value::Bool(true), "{report}");
    assert_eq!(report["records_unsigned"], 0, "{report}");
    assert!(report["records"].as_u64().unwrap_or(0) > 0, "{report}");
    assert!(
        report["checkpoints_verified"].as_u64().unwrap_or(0) > 0,
        "{report}"
    );
    let human = run(&["ledger", "audit", "--config", sg]);
    assert_eq!(human.status.code(), Some(0), "{}", text(&human));
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(
        human.contains("ledger audit of PostgreSQL schema kakehashi_sg")
            && human.contains("result: clean"),
        "{human}"
    );
    // Pinned to another key, the same books are not the node's: exit 1.
    let other = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
    let pinned = run(&[
        "ledger",
        "audit",
        "--config",
        jp,
        "--expected-key",
        &hex::encode(other.to_bytes()),
    ]);
    assert_eq!(pinned.status.code(), Some(1), "{}", text(&pinned));

    // The export: every account and transfer, as JSON Lines.
    let export = run(&["ledger", "export", "--config", sg]);
    assert_eq!(export.status.code(), Some(0), "{}", text(&export));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("each export line is JSON"))
        .collect();
    assert!(
        lines.iter().any(|l| l.to_string().contains("\"2001\"")),
        "SG's creditor account 2001 is exported"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.to_string().contains("\"debit_account_id\"")),
        "transfers are exported"
    );

    // The statement of SG's creditor, quoting the payments' end-to-end ids from the node's
    // own payment records.
    let camt053 = scratch.path().join("statement.xml");
    let statement = run(&[
        "ledger",
        "statement",
        "--config",
        sg,
        "--account",
        "2001",
        "--camt053",
        camt053.to_str().expect("UTF-8 path"),
    ]);
    assert_eq!(statement.status.code(), Some(0), "{}", text(&statement));
    let xml = std::fs::read_to_string(&camt053).expect("the statement is written");
    assert!(xml.contains("<EndToEndId>"), "{xml}");

    // The pair audit of the two schemas.
    let pair = run(&["ledger", "pair-audit", "--config", jp, "--config", sg]);
    assert_eq!(pair.status.code(), Some(0), "{}", text(&pair));
    let pair = String::from_utf8_lossy(&pair.stdout);
    assert!(
        pair.contains("PostgreSQL schema kakehashi_jp") && pair.contains("result: the pair agrees"),
        "{pair}"
    );

    // A schema without a ledger: exit 2, said so, and not created.
    let elsewhere = scratch.path().join("absent");
    std::fs::create_dir(&elsewhere).expect("a directory for the configuration");
    let absent = config_on_postgres(&elsewhere, "jp", &data_dir, &db.url, "kakehashi_absent");
    let audit = run(&[
        "ledger",
        "audit",
        "--config",
        absent.to_str().expect("UTF-8 path"),
    ]);
    assert_eq!(audit.status.code(), Some(2), "{}", text(&audit));
    assert!(
        String::from_utf8_lossy(&audit.stderr).contains("no ledger in schema kakehashi_absent"),
        "{}",
        text(&audit)
    );
    assert!(!schemas(&db).contains("kakehashi_absent"), "created");
}

#[test]
fn devnet_on_a_database_that_cannot_be_reached_exits_2_without_showing_the_password() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let data_dir = scratch.path().join("devnet-data");
    // Port 1 on the loopback: nothing listens there, so the connection is refused at once.
    let url = "postgresql://kakehashi:hunter2-secret@127.0.0.1:1/books";
    let (code, logs) = devnet_demo_on(url, &data_dir, scratch.path());
    assert_eq!(code, Some(2), "{logs}");
    assert!(
        logs.contains("the JP node did not start") && logs.contains("check --storage"),
        "{logs}"
    );
    assert!(!logs.contains("hunter2"), "{logs}");

    let refused = run(&[
        "devnet",
        "--storage",
        "mysql://kakehashi:hunter2-secret@db/books",
    ]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(!text(&refused).contains("hunter2"), "{}", text(&refused));
}

#[test]
fn the_ledger_tools_take_data_dir_or_config_not_both() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let jp = repo_root().join("crates/node/devnet/jp.toml");
    let jp = jp.to_str().expect("UTF-8 path");
    let dir = scratch.path().to_str().expect("UTF-8 path");
    for tool in ["audit", "export"] {
        let both = run(&["ledger", tool, "--data-dir", dir, "--config", jp]);
        assert_eq!(both.status.code(), Some(2), "{}", text(&both));
        assert!(
            String::from_utf8_lossy(&both.stderr).contains("cannot be used with"),
            "{}",
            text(&both)
        );
        let neither = run(&["ledger", tool]);
        assert_eq!(neither.status.code(), Some(2), "{}", text(&neither));
    }
    let entries = std::fs::read_dir(scratch.path()).expect("read").count();
    assert_eq!(entries, 0, "nothing was created");
}
