//! `kakehashi ledger audit` and `kakehashi ledger export` driven as an auditor would: a ledger
//! written through the library on a real sled database on disk, then read by the real binary.

use kakehashi_e2e::kakehashi;
use kakehashi_ledger::{
    AccountId, CreateTransferResult, Ledger, NewAccount, NewTransfer, Options, Timestamp,
    TransferFlags, TransferId,
};

const JPY: u32 = 392;
const SGD: u32 = 702;

fn node_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[42; 32])
}

/// Writes a small two-currency ledger (a posted and a voided two-phase transfer among them)
/// and closes it, so the binary can open it read-only.
fn write_ledger(dir: &std::path::Path) {
    let ledger = Ledger::open(dir, node_key(), Options::default()).expect("open ledger");
    let now = Timestamp::from_unix_nanos(1_798_761_600_000_000_000);
    let accounts: Vec<NewAccount> = [(1, JPY), (2, JPY), (3, SGD), (4, SGD)]
        .map(|(id, ledger)| NewAccount {
            id: AccountId(id),
            ledger,
            code: 1,
            ..Default::default()
        })
        .to_vec();
    let results = ledger
        .create_accounts(&accounts, now)
        .expect("create accounts");
    assert!(results.iter().all(|r| r.is_recorded()), "{results:?}");
    let transfer = |id, debit, credit, amount, ledger| NewTransfer {
        id: TransferId(id),
        debit_account_id: AccountId(debit),
        credit_account_id: AccountId(credit),
        amount,
        ledger,
        code: 1,
        ..Default::default()
    };
    let mut pending = transfer(12, 3, 4, 500, SGD);
    pending.flags = TransferFlags::PENDING;
    let mut void = transfer(13, 0, 0, 0, SGD);
    void.pending_id = TransferId(12);
    void.flags = TransferFlags::VOID_PENDING_TRANSFER;
    void.ledger = SGD;
    let batch = [
        transfer(10, 1, 2, 150_000, JPY),
        transfer(11, 3, 4, 1_250, SGD),
        pending,
        void,
    ];
    let results = ledger
        .create_transfers(&batch, now)
        .expect("create transfers");
    assert_eq!(results, vec![CreateTransferResult::Ok; 4]);
}

#[test]
fn audit_of_a_clean_ledger_exits_0_and_export_lists_every_transfer() {
    let dir = tempfile::tempdir().unwrap();
    write_ledger(dir.path());
    let data_dir = dir.path().to_str().unwrap();

    let audit = kakehashi(&["ledger", "audit", "--data-dir", data_dir, "--json"]);
    let stdout = String::from_utf8_lossy(&audit.stdout);
    assert_eq!(
        audit.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("audit --json is JSON");
    assert_eq!(
        report["discrepancies"].as_array().map(Vec::len),
        Some(0),
        "{report}"
    );

    let export = kakehashi(&["ledger", "export", "--data-dir", data_dir]);
    assert_eq!(
        export.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("each export line is JSON"))
        .collect();
    let ids: Vec<String> = lines
        .iter()
        .filter(|line| line.to_string().contains("\"debit_account_id\""))
        .filter_map(|line| find_field(line, "id"))
        .collect();
    for id in ["10", "11", "12", "13"] {
        assert!(
            ids.iter().any(|got| got == id),
            "transfer {id} missing from export: {ids:?}"
        );
    }
}

#[test]
fn audit_with_a_different_pinned_key_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    write_ledger(dir.path());
    let other = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
    let pinned = hex::encode(other.as_bytes());
    let audit = kakehashi(&[
        "ledger",
        "audit",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--expected-key",
        &pinned,
    ]);
    assert_eq!(
        audit.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&audit.stdout)
    );
}

/// Issue 13, item 4: the writer signs its head when the ledger closes (here when
/// `write_ledger`'s `Ledger` is dropped), so `--require-signed-head` passes on a cleanly closed
/// ledger. Removing every signature leaves what a node killed before its first signature
/// leaves: the plain audit still passes and says how many records are unsigned, and
/// `--require-signed-head` fails, exit 1, naming them.
#[test]
fn require_signed_head_passes_after_a_clean_close_and_fails_on_an_unsigned_tail() {
    let dir = tempfile::tempdir().unwrap();
    write_ledger(dir.path());
    let data_dir = dir.path().to_str().unwrap();
    let audit = |require: bool| {
        let mut args = vec!["ledger", "audit", "--data-dir", data_dir];
        if require {
            args.push("--require-signed-head");
        }
        let output = kakehashi(&args);
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        (output.status.code(), stdout)
    };
    let (code, stdout) = audit(true);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("signed to    record 2 of 2\n"), "{stdout}");

    // sled releases a closed database's lock from background threads; wait for it.
    let db = (0..300)
        .find_map(|_| {
            sled::open(dir.path())
                .inspect_err(|_| std::thread::sleep(std::time::Duration::from_millis(10)))
                .ok()
        })
        .expect("sled opens");
    db.open_tree("checkpoints")
        .expect("tree")
        .clear()
        .expect("clear");
    let state = db.open_tree("ledger").expect("tree");
    // Signed heads live in the state tree under prefix `s`.
    for item in state.scan_prefix(b"s") {
        let (key, _) = item.expect("read");
        state.remove(key).expect("remove");
    }
    db.flush().expect("flush");
    drop(state);
    drop(db);

    let (code, stdout) = audit(false);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains("signed to    record 0 of 2; 2 records after it are not signed"),
        "{stdout}"
    );
    let (code, stdout) = audit(true);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("result: 1 discrepancies"), "{stdout}");
    assert!(
        stdout.contains("journal record 1: records 1 to 2 follow the last signed head"),
        "{stdout}"
    );
}

#[test]
fn audit_of_a_missing_data_dir_exits_2_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-node");
    let audit = kakehashi(&["ledger", "audit", "--data-dir", missing.to_str().unwrap()]);
    assert_eq!(audit.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&audit.stderr).is_empty());
    assert!(
        !missing.exists(),
        "an offline audit must not create a database"
    );
}

/// The value of `key` in `value` or in any object nested in it, as a string.
fn find_field(value: &serde_json::Value, key: &str) -> Option<String> {
    match value {
        serde_json::Value::Object(map) => map
            .get(key)
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .or_else(|| map.values().find_map(|v| find_field(v, key))),
        _ => None,
    }
}

/// The JP node's receipt- and checkpoint-signing key, as committed.
fn jp_node_key() -> ed25519_dalek::SigningKey {
    use ed25519_dalek::pkcs8::DecodePrivateKey as _;
    let pem =
        std::fs::read_to_string(kakehashi_e2e::repo_root().join("certs/jp/node/receipt.key.pem"))
            .expect("JP receipt key");
    ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).expect("PKCS#8 Ed25519")
}

/// Issue 11, defect 10: `kakehashi node run` on a ledger whose head was altered (one bit of
/// its hash, rewritten through sled so sled's own checksums hold) refuses to start, exit 2,
/// with one error that names the ledger directory and the audit to run; the audit finds it.
#[test]
fn node_run_refuses_a_ledger_its_audit_refuses_with_one_message_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("jp");
    let ledger_dir = data.join("ledger");
    let ledger = Ledger::open(&ledger_dir, jp_node_key(), Options::default()).expect("open");
    let account = NewAccount {
        id: AccountId(1),
        ledger: JPY,
        code: 1,
        ..Default::default()
    };
    let now = Timestamp::from_unix_nanos(1_798_761_600_000_000_000);
    ledger.create_accounts(&[account], now).expect("account");
    ledger.close().expect("close");
    // sled releases a closed database's lock from background threads; wait for it.
    let db = (0..300)
        .find_map(|_| {
            sled::open(&ledger_dir)
                .inspect_err(|_| std::thread::sleep(std::time::Duration::from_millis(10)))
                .ok()
        })
        .expect("sled opens");
    let tree = db.open_tree("ledger").expect("tree");
    let mut head = tree.get(b"mhead").expect("read").expect("a head").to_vec();
    head[8] ^= 0x01;
    tree.insert(b"mhead", head).expect("write");
    db.flush().expect("flush");
    drop(tree);
    drop(db);

    let repo = kakehashi_e2e::repo_root();
    let config = std::fs::read_to_string(repo.join("crates/node/devnet/jp.toml"))
        .expect("devnet config")
        .replace("../../../certs", &repo.join("certs").display().to_string())
        .replace(
            "data_dir = \"data/jp\"",
            &format!("data_dir = \"{}\"", data.display()),
        );
    let config_path = dir.path().join("jp.toml");
    std::fs::write(&config_path, config).expect("config");
    // Before the fix the node started on these books and ran until stopped: give it a
    // deadline rather than hang.
    let mut node = std::process::Command::new(kakehashi_e2e::kakehashi_bin())
        .args(["node", "run", "--config", config_path.to_str().unwrap()])
        .env_remove("KAKEHASHI_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kakehashi");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while node.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = node.kill();
            panic!("the node started on a ledger whose head was altered");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let run = node.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.matches("error:").count(), 1, "{stderr}");
    assert_eq!(stderr.matches("journal head").count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "kakehashi ledger audit --data-dir {}",
            ledger_dir.display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("another process"), "{stderr}");

    let audit = kakehashi(&[
        "ledger",
        "audit",
        "--data-dir",
        ledger_dir.to_str().unwrap(),
    ]);
    assert_eq!(
        audit.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&audit.stdout)
    );
}
