//! A node refuses to start on books that fail its start-up checks (issue 11, defect 10): an
//! altered ledger or payment store is refused with one message that names the directory and
//! the fix, where the offline tools also find the damage; a database held by another process
//! says so, and only then.

use std::path::Path;

use kakehashi_ledger::AuditOptions;
use kakehashi_node::node::{Node, NodeError};
use kakehashi_node::store::Store;
use kakehashi_proto::pb::TransactionStatus;

use crate::support::*;

/// Opens the closed sled database in `dir`, waiting for the lock a node released a moment ago
/// (sled drops it from background threads).
fn sled_open(dir: &Path) -> sled::Db {
    for _ in 0..300 {
        if let Ok(db) = sled::open(dir) {
            return db;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("{} stays locked", dir.display());
}

/// Rewrites, through sled (so sled's own checksums stay valid), every value of `tree` in the
/// database in `dir` that `pick` selects, with `edit`: the edit a person with the files could
/// make. Returns how many values were edited.
fn tamper(
    dir: &Path,
    tree: &str,
    pick: impl Fn(&[u8], &[u8]) -> bool,
    edit: impl Fn(&mut Vec<u8>),
) -> usize {
    let db = sled_open(dir);
    let tree = db.open_tree(tree).expect("tree");
    let mut edited = 0;
    for item in tree.iter() {
        let (key, value) = item.expect("read");
        if pick(&key, &value) {
            let mut value = value.to_vec();
            edit(&mut value);
            tree.insert(key, value).expect("write");
            edited += 1;
        }
    }
    db.flush().expect("flush");
    edited
}

#[track_caller]
fn refused_books(error: NodeError, what: &str, path: &Path, inspect: &str) -> String {
    let text = error.to_string();
    match error {
        NodeError::Books {
            what: found,
            path: found_path,
            ..
        } => {
            assert_eq!(found, what, "{text}");
            assert_eq!(found_path, path, "{text}");
        }
        other => panic!("not refused as corrupt books: {other:?}"),
    }
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("Restore"), "{text}");
    assert!(text.contains(inspect), "{text}");
    assert!(!text.contains("another process"), "{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_to_start_on_a_ledger_whose_head_was_altered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = Ports::new();
    let jp = start("JP", dir.path(), &ports).await;
    jp.shutdown().await.expect("JP shutdown");
    let ledger = dir.path().join("jp/ledger");
    // The journal head (meta key "mhead": the record's seq, then its hash): one hash bit.
    let edited = tamper(
        &ledger,
        "ledger",
        |key, _| key == b"mhead",
        |value| value[8] ^= 0x01,
    );
    assert_eq!(edited, 1);

    let error = Node::start(config("JP", dir.path(), &ports))
        .await
        .expect_err("the node refuses the altered ledger");
    let text = refused_books(
        error,
        "ledger",
        &ledger,
        &format!("kakehashi ledger audit --data-dir {}", ledger.display()),
    );
    assert!(text.contains("journal head"), "{text}");
    let report = kakehashi_ledger::audit(&ledger, &AuditOptions::default()).expect("audit runs");
    assert!(!report.is_clean(), "the audit reports it too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_to_start_on_a_payment_in_doubt_whose_record_does_not_decode() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = Ports::new();
    // No SG node: the payment is forwarded and stays in doubt, a record the node loads at start.
    let jp = start("JP", dir.path(), &ports).await;
    let mut participant = bank_client(jp.public_addr, "JP", "KKHAJPJ0").await;
    let bank = bank("jp", "KKHAJPJ0");
    let source = amount("JPY", "1000");
    let report = quote_and_submit(
        &mut participant,
        "SG",
        source,
        |q, a| jp_to_sg(&bank, q, a),
        new_uetr(),
    )
    .await;
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Pdng,
        "{report:?}"
    );
    jp.shutdown().await.expect("JP shutdown");
    // The payment store's records are the ledger's records (key prefix `r`).
    let store = dir.path().join("jp/ledger");
    // The outbound record of the payment in doubt (`r`, the store's `o`, its UETR): its first
    // byte, the record's format.
    let edited = tamper(
        &store,
        "ledger",
        |key, _| key.len() == 18 && key.starts_with(b"ro"),
        |value| value[0] ^= 0x01,
    );
    assert_eq!(edited, 1);

    let error = Node::start(config("JP", dir.path(), &ports))
        .await
        .expect_err("the node refuses the altered payment store");
    let text = refused_books(
        error,
        "payment store",
        &store,
        "kakehashi ledger pair-audit",
    );
    assert!(text.contains("does not decode"), "{text}");
    // What the pair audit reads finds it too.
    let offline = Store::open_read_only(&dir.path().join("jp")).expect("opens");
    let unreadable = offline
        .outbound_all()
        .await
        .expect_err("a record that does not decode");
    assert!(
        unreadable.to_string().contains("does not decode"),
        "{unreadable}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_held_by_a_running_node_is_reported_as_held_once_and_only_then() {
    let dir = tempfile::tempdir().expect("tempdir");
    let jp = start("JP", dir.path(), &Ports::new()).await;
    // A second node on the same data directory (on other ports).
    let error = Node::start(config("JP", dir.path(), &Ports::new()))
        .await
        .expect_err("the ledger is held");
    let text = error.to_string();
    assert!(
        matches!(error, NodeError::Locked { what: "ledger", .. }),
        "{error:?}"
    );
    assert_eq!(text.matches("held by another process").count(), 1, "{text}");
    assert!(
        text.contains(&dir.path().join("jp/ledger").display().to_string()),
        "{text}"
    );
    jp.shutdown().await.expect("JP shutdown");

    // A ledger that will not open for another reason does not blame another process.
    let other = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(other.path().join("jp/ledger/db"))
        .expect("a directory where sled's log goes");
    let error = Node::start(config("JP", other.path(), &Ports::new()))
        .await
        .expect_err("sled cannot open a directory as its log");
    let text = error.to_string();
    assert!(!text.contains("another process"), "{text}");
    assert!(text.contains("jp/ledger"), "{text}");
}
