//! `kakehashi ledger pair-audit` against the books a real devnet leaves: the demo's payments
//! agree on both nodes (exit 0, both directions counted), and books altered offline through
//! the libraries (an extra credit carrying a settled payment's UETR, a receipt dropped from
//! the payment store) make it exit 1 naming each UETR. A store held by a process is refused
//! with exit 2 and what to do. A devnet killed right after a receiver's credit leaves books
//! that differ only in ways recovery repairs (and the audit says so); after a restart lets
//! recovery run, they agree.
//!
//! Ports come from the shared allocator (`kakehashi_e2e::free_ports`); see `relay_cli.rs` for
//! why a port taken in between fails the test with a message rather than hanging it.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use kakehashi_e2e::{DevnetProcess, kakehashi, repo_root};
use kakehashi_ledger::{AccountId, Ledger, NewTransfer, Options, TransferId};
use kakehashi_node::fault;
use kakehashi_node::store::{OutboundState, Store, Write};
use kakehashi_node::{Clock as _, SystemClock};
use kakehashi_protocol::instruction::Uetr;
use kakehashi_protocol::transfer::codes;

/// How long the demo may take before the test kills it: two nodes and nine payments take a
/// few seconds; this long is a hang.
const DEMO_DEADLINE: Duration = Duration::from_secs(90);

/// SG's liquidity account for JP and a creditor account, from `crates/node/devnet/sg.toml`.
const SG_LIQUIDITY_FOR_JP: u128 = 9103;
const SG_CUSTOMER: u128 = 2001;

/// A devnet process: `kakehashi devnet --data-dir DIR --base-port N [extra...]`, output in
/// files under `scratch`, `crash_at` set as the fault point when given.
struct Devnet {
    process: DevnetProcess,
}

impl Devnet {
    fn start(data_dir: &Path, scratch: &Path, extra: &[&str], crash_at: Option<&str>) -> Self {
        let process = DevnetProcess::spawn(data_dir, scratch, extra, |command| {
            command.env_remove(fault::ENV);
            if let Some(point) = crash_at {
                command.env(fault::ENV, point);
            }
        });
        Self { process }
    }

    /// Waits for the process to end by itself (killing it after [`DEMO_DEADLINE`]).
    fn wait(mut self) -> (ExitStatus, String) {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self
                .process
                .child
                .try_wait()
                .expect("wait for kakehashi devnet")
            {
                break status;
            }
            if started.elapsed() > DEMO_DEADLINE {
                let _ = self.process.child.kill();
                break self.process.child.wait().expect("reap devnet");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        (status, self.process.logs())
    }

    /// Stops it with SIGTERM (a clean shutdown releases the databases) and waits.
    fn stop(self) -> (ExitStatus, String) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.process.child.id().to_string()])
            .status();
        self.wait()
    }
}

/// Copies the books of the binary's one demo run (`crate::shared_demo`) to `data_dir`, once
/// that run exited 0.
fn devnet_demo(data_dir: &Path) {
    let demo = crate::shared_demo();
    let status = demo.run.status;
    let logs = format!("stdout:\n{}\nstderr:\n{}", demo.run.stdout, demo.run.stderr);
    assert!(
        status.success(),
        "devnet --demo ended with {status}\n{logs}"
    );
    demo.copy_data_to(data_dir);
}

fn pair_audit(data_dir: &Path, json: bool) -> Output {
    let dir = data_dir.to_str().expect("UTF-8 temp path");
    let mut args = vec![
        "ledger",
        "pair-audit",
        "--config",
        "crates/node/devnet/jp.toml",
        "--config",
        "crates/node/devnet/sg.toml",
        "--devnet-data-dir",
        dir,
    ];
    if json {
        args.push("--json");
    }
    kakehashi(&args)
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The UETRs of the demo's receipts for payments `receiving` credited.
fn settled_into(data_dir: &Path, receiving: &str) -> Vec<String> {
    let mut uetrs = Vec::new();
    let dir = data_dir.join("receipts");
    for entry in std::fs::read_dir(&dir).expect("the demo wrote receipts") {
        let path: PathBuf = entry.expect("entry").path();
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("receipt")).expect("JSON");
        if json["receipt"]["receiving_jurisdiction"] == receiving {
            uetrs.push(json["receipt"]["uetr"].as_str().expect("uetr").to_owned());
        }
    }
    uetrs.sort();
    uetrs
}

/// The SG node's ledger key: its receipt-signing key (the node signs checkpoints with it).
fn sg_node_key() -> SigningKey {
    let pem = std::fs::read_to_string(repo_root().join("certs/sg/node/receipt.key.pem"))
        .expect("SG receipt key");
    SigningKey::from_pkcs8_pem(&pem).expect("PKCS#8 Ed25519")
}

#[tokio::test]
async fn pair_audit_agrees_on_the_demo_and_names_each_tampered_payment() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let data = scratch.path().join("devnet-data");
    devnet_demo(&data);

    // The demo's books agree: 3 payments settled JP → SG and 2 SG → JP.
    let clean = pair_audit(&data, false);
    let report = String::from_utf8_lossy(&clean.stdout).into_owned();
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean));
    assert!(report.contains("JP → SG"), "{report}");
    assert!(report.contains("3 settled"), "{report}");
    assert!(report.contains("2 settled"), "{report}");
    assert!(report.contains("result: the pair agrees"), "{report}");
    let json = pair_audit(&data, true);
    assert_eq!(json.status.code(), Some(0), "{}", text(&json));
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON report");
    assert_eq!(value["agrees"], true);
    assert_eq!(value["directions"][0]["sender"], "JP");
    assert_eq!(value["directions"][0]["settled"], 3);
    assert_eq!(value["directions"][1]["settled"], 2);
    assert_eq!(value["directions"][0]["position"]["reconciled"], true);

    let to_sg = settled_into(&data, "SG");
    assert_eq!(to_sg.len(), 3, "three JP → SG receipts");

    // 1. Offline, SG's ledger gets a second, well-formed credit carrying a settled UETR.
    //    SG's own ledger audit stays clean (it is a valid journaled transfer); only the pair
    //    audit can see that no reservation on JP pays for it.
    let doubled = Uetr::parse(&to_sg[0]).expect("UETR");
    {
        let ledger = Ledger::open(&data.join("sg/ledger"), sg_node_key(), Options::default())
            .expect("open SG ledger offline");
        let extra = NewTransfer {
            id: TransferId(4242),
            debit_account_id: AccountId(SG_LIQUIDITY_FOR_JP),
            credit_account_id: AccountId(SG_CUSTOMER),
            amount: 100,
            user_data_128: doubled.as_u128(),
            ledger: 702,
            code: codes::INBOUND,
            ..NewTransfer::default()
        };
        let results = ledger
            .create_transfers(&[extra], SystemClock.now().0)
            .expect("write");
        assert!(results[0].is_recorded(), "{results:?}");
        ledger.close().expect("close");
    }
    let ledger_audit = kakehashi(&[
        "ledger",
        "audit",
        "--data-dir",
        data.join("sg/ledger").to_str().expect("UTF-8"),
    ]);
    assert_eq!(
        ledger_audit.status.code(),
        Some(0),
        "{}",
        text(&ledger_audit)
    );

    // 2. SG's payment store loses the receipt of another settled payment.
    let unreceipted = Uetr::parse(&to_sg[1]).expect("UETR");
    // The payment store is a view over the ledger's records.
    let store = Store::over_ledger(std::sync::Arc::new(
        Ledger::open(&data.join("sg/ledger"), sg_node_key(), Options::default())
            .expect("open SG ledger offline"),
    ));
    let mut record = store
        .inbound("JP", &unreceipted)
        .await
        .expect("read")
        .expect("SG recorded the payment");
    record.receipt = None;
    store
        .put(vec![Write::Inbound(unreceipted, record)])
        .await
        .expect("write");

    // While a process holds the store the audit refuses, says what to do, changes nothing.
    let held = pair_audit(&data, false);
    assert_eq!(held.status.code(), Some(2), "{}", text(&held));
    assert!(
        String::from_utf8_lossy(&held.stderr).contains("stop the node"),
        "{}",
        text(&held)
    );
    drop(store);

    // The ledger's threads let go of the database once the last handle is gone.
    let started = Instant::now();
    let tampered = loop {
        let output = pair_audit(&data, false);
        if output.status.code() != Some(2) || started.elapsed() > Duration::from_secs(10) {
            break output;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let report = String::from_utf8_lossy(&tampered.stdout).into_owned();
    assert_eq!(tampered.status.code(), Some(1), "{}", text(&tampered));
    let line_of = |uetr: &Uetr| -> Vec<&str> {
        let needle = format!("UETR {uetr}");
        report.lines().filter(|l| l.contains(&needle)).collect()
    };
    let doubled_lines = line_of(&doubled);
    assert!(
        doubled_lines
            .iter()
            .any(|l| l.contains("booking_wrong") && l.contains("credit 4242 also carries")),
        "{report}"
    );
    let unreceipted_lines = line_of(&unreceipted);
    assert!(
        unreceipted_lines
            .iter()
            .any(|l| l.contains("receipt_invalid") && l.contains("holds no receipt")),
        "{report}"
    );
    // SG paid out 1.00 SGD more than the settled payments account for.
    assert!(report.contains("position_differs on SG"), "{report}");
    // The untouched payment is named nowhere.
    assert!(
        line_of(&Uetr::parse(&to_sg[2]).expect("UETR")).is_empty(),
        "{report}"
    );
}

#[test]
fn a_crash_after_the_receivers_credit_is_repairable_and_the_books_agree_after_recovery() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let data = scratch.path().join("devnet-data");

    // Both nodes run in the devnet process, so the receiver's abort right after its first
    // credit stops the sender too: its reservation pending, the receiver's record accepting.
    let (status, logs) = Devnet::start(
        &data,
        scratch.path(),
        &["--demo"],
        Some(fault::RECEIVER_AFTER_CREDIT),
    )
    .wait();
    assert!(!status.success(), "the devnet was meant to abort\n{logs}");

    let crashed = pair_audit(&data, true);
    assert_eq!(crashed.status.code(), Some(1), "{}", text(&crashed));
    let value: serde_json::Value = serde_json::from_slice(&crashed.stdout).expect("JSON");
    let findings = value["discrepancies"].as_array().expect("discrepancies");
    let kinds: Vec<&str> = findings
        .iter()
        .map(|d| d["kind"].as_str().expect("kind"))
        .collect();
    // The receiver's credit and its decision are one commit (issue 14): only the sender is
    // left to resolve.
    assert!(kinds.contains(&"sender_not_yet_resolved"), "{kinds:?}");
    assert!(!kinds.contains(&"receiver_not_yet_recorded"), "{kinds:?}");
    assert!(
        findings.iter().all(|d| d["repaired_by_recovery"] == true),
        "only states recovery repairs: {}",
        text(&crashed)
    );
    let uetr = findings
        .iter()
        .find_map(|d| d["uetr"].as_str())
        .expect("the payment is named")
        .to_owned();

    // A restart resolves the payment (the sender asks, the receiver records its credit).
    let devnet = Devnet::start(&data, scratch.path(), &[], None);
    let node = devnet.process.url("JP");
    let started = Instant::now();
    let mut last = None;
    while started.elapsed() < DEMO_DEADLINE {
        // Either node may have been the sender; JP answers for JP → SG, SG for SG → JP.
        let sg_node = devnet.process.url("SG");
        let settled = [
            (node.as_str(), "certs/jp/operator.pem"),
            (sg_node.as_str(), "certs/sg/operator.pem"),
        ]
        .iter()
        .any(|(url, operator)| {
            let output = kakehashi(&["status", &uetr, "--node", url, "--identity", operator]);
            let settled = output.status.code() == Some(0);
            last = Some(text(&output));
            settled
        });
        if settled {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, logs) = devnet.stop();
    assert!(
        started.elapsed() < DEMO_DEADLINE,
        "the payment did not settle after the restart: {last:?}\n{logs}"
    );

    let recovered = pair_audit(&data, false);
    assert_eq!(recovered.status.code(), Some(0), "{}", text(&recovered));
    let report = String::from_utf8_lossy(&recovered.stdout);
    assert!(report.contains("1 settled"), "{report}");
}

/// Issue 11, defect 8, and issue 14: the sender's reservation and its `Forwarded` record are
/// one commit, so no crash leaves a record naming a reservation no ledger holds (what the
/// audit calls a `record_mismatch`). A crash after that commit, before Prepare, leaves a
/// payment forwarded in doubt that the receiver never saw: recovery's status query fences it
/// and the sender voids it (AB05), and the books agree.
#[tokio::test]
async fn a_crash_between_the_senders_record_and_its_reservation_leaves_books_that_agree() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let data = scratch.path().join("devnet-data");

    let (status, logs) = Devnet::start(
        &data,
        scratch.path(),
        &["--demo"],
        Some(fault::SENDER_AFTER_RESERVATION),
    )
    .wait();
    assert!(!status.success(), "the devnet was meant to abort\n{logs}");

    // Exactly one payment was left forwarded in doubt, on whichever node sent first.
    let mut reserving = Vec::new();
    for code in ["JP", "SG"] {
        let store = Store::open_read_only(&data.join(code.to_lowercase()))
            .expect("the payment store opens");
        for (uetr, record) in store.unresolved_outbound().await.expect("in doubt") {
            assert_eq!(record.state, OutboundState::Forwarded, "{record:?}");
            reserving.push((code, uetr));
        }
    }
    let [(sender, uetr)] = reserving[..] else {
        panic!("one payment left in doubt: {reserving:?}\n{logs}");
    };

    // A restart lets the sender's recovery end the payment: rejected, nothing forwarded.
    let devnet = Devnet::start(&data, scratch.path(), &[], None);
    let node = devnet.process.url(sender);
    let started = Instant::now();
    let mut last = String::new();
    while started.elapsed() < DEMO_DEADLINE {
        let operator = format!("certs/{}/operator.pem", sender.to_ascii_lowercase());
        let output = kakehashi(&[
            "status",
            &uetr.to_string(),
            "--node",
            &node,
            "--identity",
            &operator,
        ]);
        last = text(&output);
        if output.status.code() == Some(1) && last.contains("AB05") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, logs) = devnet.stop();
    assert!(
        started.elapsed() < DEMO_DEADLINE,
        "the payment was not rejected after the restart: {last}\n{logs}"
    );

    let audited = pair_audit(&data, false);
    assert_eq!(audited.status.code(), Some(0), "{}", text(&audited));
}
