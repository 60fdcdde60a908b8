//! A node killed in the middle of a payment, then restarted: both ledgers end consistent.
//!
//! Real processes (`kakehashi node run`), real sockets on 127.0.0.1, real mutual TLS, real
//! sled on disk. The crash is `std::process::abort` at a named point (`KAKEHASHI_CRASH_AT`, see
//! `kakehashi_node::fault`), as abrupt as `kill -9`. After the restart the sender's recovery
//! loop asks the receiver for its decision and applies it; the test then stops both nodes and
//! audits both ledgers offline.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kakehashi_e2e::pair::{NodeFiles, NodeProcess, write_config};
use kakehashi_e2e::{kakehashi_bin, repo_root};
use kakehashi_node::fault;
use kakehashi_node::participant::{self, Participant};
use kakehashi_node::{Clock as _, SystemClock};
use kakehashi_pki::mra::Mra;
use kakehashi_proto::pb::{self as pb, TransactionStatus, payments_client::PaymentsClient};
use kakehashi_protocol::bank::{self, Bank, InstructionOptions, Order};
use kakehashi_protocol::instruction::Uetr;
use tonic::transport::Channel;

/// Longest a node may take to start listening, or a payment in doubt to resolve.
const PATIENCE: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    kakehashi_e2e::free_ports(1)
}

/// Starts `kakehashi node run` for `files`, with the crash point `crash_at` when given.
fn spawn(files: &NodeFiles, crash_at: Option<&str>) -> NodeProcess {
    NodeProcess::spawn(files, |command| {
        if let Some(point) = crash_at {
            command.env(fault::ENV, point);
        }
    })
}

fn mra() -> Arc<Mra> {
    Arc::new(Mra::load(&repo_root().join("certs/mra.toml")).expect("certs/mra.toml"))
}

/// A connection to the node of `relying` as its first bank (KKHAJPJ0 or KKHASGS0), whose
/// participant-TLS identity lets it pay and see its own accounts and payments.
async fn connect(port: u16, relying: &str) -> PaymentsClient<Channel> {
    let bank = if relying == "JP" {
        "jp/banks/KKHAJPJ0-tls"
    } else {
        "sg/banks/KKHASGS0-tls"
    };
    connect_as(port, relying, bank).await
}

/// A connection to the node of `relying` presenting the identity `stem` under certs/.
async fn connect_as(port: u16, relying: &str, stem: &str) -> PaymentsClient<Channel> {
    let certs = repo_root().join("certs");
    let identity = kakehashi_node::tls::TlsIdentity::load(
        &certs.join(format!("{stem}.pem")),
        &certs.join(format!("{stem}.key.pem")),
    )
    .expect("the TLS identity");
    let started = Instant::now();
    loop {
        match participant::connect(
            &format!("https://127.0.0.1:{port}"),
            "localhost",
            mra(),
            relying,
            Some(&identity),
        )
        .await
        {
            Ok(client) => return client,
            Err(e) if started.elapsed() < PATIENCE => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("node on port {port} never came up: {e}"),
        }
    }
}

async fn posted(client: &mut PaymentsClient<Channel>, account: &str) -> (String, String) {
    let balance = client
        .get_balances(pb::BalancesRequest {
            accounts: vec![account.to_owned()],
            ..pb::BalancesRequest::default()
        })
        .await
        .expect("balances")
        .into_inner()
        .balances
        .remove(0);
    (
        balance.posted_balance.map(|a| a.value).unwrap_or_default(),
        balance.pending_debits.map(|a| a.value).unwrap_or_default(),
    )
}

/// Submits a JP→SG payment of `jpy` from 1001 to 2001; returns its UETR and the first answer
/// (an error when the node died on the way).
async fn pay(
    client: &mut PaymentsClient<Channel>,
    jpy: &str,
) -> (Uetr, Result<pb::PaymentStatusReport, tonic::Status>) {
    let certs = repo_root().join("certs/jp/banks");
    let bank =
        Bank::load(&certs.join("KKHAJPJ0.pem"), &certs.join("KKHAJPJ0.key.pem")).expect("bank");
    let mra = mra();
    let participant = Participant::new(&*mra, "JP");
    let amount = pb::ActiveCurrencyAndAmount {
        currency: "JPY".into(),
        value: jpy.into(),
    };
    let ask = participant.ask(&amount, "SG").expect("a JPY amount to SG");
    let now = SystemClock.now().1;
    let quote = participant
        .quote(client, &ask, now)
        .await
        .expect("a quote that verifies");
    let uetr = Uetr::new_v4(&ring::rand::SystemRandom::new()).expect("randomness");
    let order = Order {
        debtor_account: 1001,
        debtor_name: "Aoki Kenji".into(),
        creditor_agent_bic: "KKHASGS0".into(),
        creditor_account: 2001,
        creditor_name: "Tan Wei Ming".into(),
        remittance_information: "crash test".into(),
    };
    let options = InstructionOptions::default();
    let signed = bank::instruction(&bank, &order, &quote, uetr, now, &options);
    let answer = client
        .submit_payment(pb::SubmitPaymentRequest {
            instruction: Some(signed),
        })
        .await
        .map(tonic::Response::into_inner);
    (uetr, answer)
}

async fn settled(client: &mut PaymentsClient<Channel>, uetr: Uetr) -> pb::PaymentStatusReport {
    let started = Instant::now();
    loop {
        let report = client
            .get_payment_status(pb::PaymentStatusRequest {
                uetr: uetr.to_string(),
            })
            .await
            .expect("status")
            .into_inner();
        if report.transaction_status() != TransactionStatus::Pdng {
            return report;
        }
        assert!(started.elapsed() < PATIENCE, "still in doubt: {report:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn stop(process: NodeProcess) {
    process.stop(PATIENCE);
}

fn audit(data_dir: &Path) {
    let output = Command::new(kakehashi_bin())
        .args(["ledger", "audit", "--data-dir"])
        .arg(data_dir.join("ledger"))
        .output()
        .expect("run audit");
    assert!(
        output.status.success(),
        "audit of {} failed:\n{}{}",
        data_dir.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn wait_exit(process: &mut NodeProcess) {
    let status = process
        .wait_exit(PATIENCE)
        .expect("the node did not reach its crash point");
    assert!(!status.success(), "the node was meant to abort");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_and_sender_crashes_mid_payment_end_consistent_on_both_ledgers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let jp_ports = [free_port(), free_port(), free_port()];
    let sg_ports = [free_port(), free_port(), free_port()];
    let jp = write_config(dir.path(), "jp", jp_ports, sg_ports[1]);
    let sg = write_config(dir.path(), "sg", sg_ports, jp_ports[1]);

    // 1. The receiver dies right after crediting, before recording or answering.
    let mut sg_child = spawn(&sg, Some(fault::RECEIVER_AFTER_CREDIT));
    let mut jp_child = spawn(&jp, None);
    let mut jp_client = connect(jp.public, "JP").await;
    let _ = connect(sg.public, "SG").await;
    let (uetr, first) = pay(&mut jp_client, "10000").await;
    let first = first.expect("JP answers even when SG dies");
    assert_eq!(
        first.transaction_status(),
        TransactionStatus::Pdng,
        "{first:?}"
    );
    wait_exit(&mut sg_child);
    // Reserved, not yet posted: the pending debit holds the funds.
    assert_eq!(
        posted(&mut jp_client, "1001").await,
        ("10000000".into(), "10000".into())
    );

    sg_child = spawn(&sg, None);
    let report = settled(&mut jp_client, uetr).await;
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Acsc,
        "{report:?}"
    );
    assert!(
        report.receipt.is_some(),
        "the rebuilt receipt reaches the sender"
    );
    assert_eq!(
        posted(&mut jp_client, "1001").await,
        ("9990000".into(), "0".into())
    );
    let mut sg_client = connect(sg.public, "SG").await;
    assert_eq!(posted(&mut sg_client, "2001").await.0, "100086.78");

    // 2. The sender dies after SG settled, before posting its reservation.
    stop(jp_child);
    jp_child = spawn(&jp, Some(fault::SENDER_BEFORE_RESOLVE));
    let mut jp_client = connect(jp.public, "JP").await;
    let (uetr, answer) = pay(&mut jp_client, "20000").await;
    assert!(
        answer.is_err(),
        "the sender died before answering: {answer:?}"
    );
    wait_exit(&mut jp_child);
    assert_eq!(
        posted(&mut sg_client, "2001").await.0,
        "100260.34",
        "SG credited 173.56"
    );

    jp_child = spawn(&jp, None);
    let mut jp_client = connect(jp.public, "JP").await;
    let report = settled(&mut jp_client, uetr).await;
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Acsc,
        "{report:?}"
    );
    assert_eq!(
        posted(&mut jp_client, "1001").await,
        ("9970000".into(), "0".into())
    );
    // The corridor account is no bank's: the operator reads it.
    let mut jp_operator = connect_as(jp.public, "JP", "jp/operator").await;
    assert_eq!(posted(&mut jp_operator, "9002").await.0, "30000");

    stop(jp_child);
    stop(sg_child);
    audit(&jp.data_dir);
    audit(&sg.data_dir);
}

/// Issue 11, defect 9: when SubmitPayment gets no answer and the node cannot be asked either,
/// `replay` must say the payment is in doubt (PDNG, exit 3), never that nothing was sent: here
/// the sender dies after the receiver settled, and the payment turns out settled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_reports_a_payment_whose_sender_died_as_in_doubt_not_as_never_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let jp_ports = [free_port(), free_port(), free_port()];
    let sg_ports = [free_port(), free_port(), free_port()];
    let jp = write_config(dir.path(), "jp", jp_ports, sg_ports[1]);
    let sg = write_config(dir.path(), "sg", sg_ports, jp_ports[1]);
    let sg_child = spawn(&sg, None);
    let mut jp_child = spawn(&jp, Some(fault::SENDER_BEFORE_RESOLVE));
    let _ = connect(jp.public, "JP").await;
    let _ = connect(sg.public, "SG").await;

    let sample = std::fs::read_to_string(repo_root().join("tests/data/devnet-payments.jsonl"))
        .expect("sample file");
    let line = sample.lines().next().expect("a first line");
    assert!(line.contains("JP→SG settles"), "{line}");
    let file = dir.path().join("one.jsonl");
    std::fs::write(&file, format!("{line}\n")).expect("write the file");
    let out = dir.path().join("results.jsonl");
    let output = Command::new(kakehashi_bin())
        .arg("replay")
        .arg(&file)
        .args(["--node", &format!("JP=https://127.0.0.1:{}", jp.public)])
        .args(["--node", &format!("SG=https://127.0.0.1:{}", sg.public)])
        .arg("--mra")
        .arg(repo_root().join("certs/mra.toml"))
        .args(["--pending-wait", "0"])
        .arg("--out")
        .arg(&out)
        .output()
        .expect("kakehashi replay runs");
    wait_exit(&mut jp_child);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stdout.contains("PDNG"), "{stdout}");
    assert!(!stdout.contains("nothing was sent"), "{stdout}");
    let result: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&out)
            .expect("results file")
            .lines()
            .next()
            .expect("one result"),
    )
    .expect("a JSON result");
    assert_eq!(result["status"], "PDNG", "{result}");
    let uetr = Uetr::parse(result["uetr"].as_str().expect("uetr")).expect("a UETR");

    // It had in fact settled: after a restart the sender learns so from the receiver.
    jp_child = spawn(&jp, None);
    let mut jp_client = connect(jp.public, "JP").await;
    let report = settled(&mut jp_client, uetr).await;
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Acsc,
        "{report:?}"
    );
    stop(jp_child);
    stop(sg_child);
}
