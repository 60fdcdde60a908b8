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
