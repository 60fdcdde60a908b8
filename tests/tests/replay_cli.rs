//! `kakehashi replay` and `kakehashi bench` driven through the real binary. Replay runs against
//! a `kakehashi devnet` process (real TLS on 127.0.0.1, real sled on disk) as an integration
//! test suite would: the committed sample file meets every expectation and moves the balances
//! by exactly the settled sums; running it again pays nothing twice; a malformed file is
//! refused whole with exit 2 and sends nothing; an unmet expectation exits 1. The committed
//! ISO 20022 pacs.008 messages settle the same way, are answered in pacs.002 and pay once, and
//! the debtor's camt.053 statement books them.
//! Bench starts its own in-process pair; only the structure and consistency of its figures are
//! asserted, never timings.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kakehashi_e2e::{DevnetProcess, kakehashi, repo_root};
use kakehashi_proto::pb::ActiveCurrencyAndAmount;
use kakehashi_protocol::money;

/// The committed sample file, relative to the repository root.
const SAMPLE: &str = "tests/data/devnet-payments.jsonl";

/// How many payment lines the sample holds.
const SAMPLE_LINES: usize = 14;

/// How long a devnet may take to start both nodes before the test gives up.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// A `kakehashi devnet` process on free ports; stopped (SIGINT, then killed) when dropped.
struct Devnet {
    process: DevnetProcess,
}

impl Devnet {
    fn start(scratch: &Path) -> Self {
        let process = DevnetProcess::spawn(&scratch.join("data"), scratch, &[], |_| {});
        let mut devnet = Self { process };
        // Ready when it prints the Ctrl-C hint, which comes after both nodes are listening.
        let started = Instant::now();
        while !devnet.process.stdout().contains("Press Ctrl-C") {
            if let Some(status) = devnet.process.child.try_wait().expect("poll devnet") {
                panic!(
                    "devnet exited early with {status}\n{}",
                    devnet.process.logs()
                );
            }
            assert!(
                started.elapsed() < START_DEADLINE,
                "devnet not ready after {START_DEADLINE:?}\n{}",
                devnet.process.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        devnet
    }

    fn url(&self, jurisdiction: &str) -> String {
        self.process.url(jurisdiction)
    }

    fn logs(&self) -> String {
        self.process.logs()
    }

    /// Posted balances in minor units by account, on the node of `jurisdiction` (the funding
    /// account, the only negative one, is left out).
    fn balances(&self, jurisdiction: &str) -> BTreeMap<String, i128> {
        let operator = format!("certs/{}/operator.pem", jurisdiction.to_ascii_lowercase());
        let out = kakehashi(&[
            "balance",
            "--node",
            &self.url(jurisdiction),
            "--json",
            "--identity",
            &operator,
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows: serde_json::Value = serde_json::from_str(&text).expect("balance JSON");
        rows.as_array()
            .expect("a list of balances")
            .iter()
            .filter_map(|row| {
                let posted = row["posted"].as_str()?;
                Some((row["account"].as_str()?.to_owned(), minor(posted)?))
            })
            .collect()
    }

    /// Balances of both nodes, keyed `JP 1001`, `SG 2001`, ...
    fn books(&self) -> BTreeMap<String, i128> {
        let mut all = BTreeMap::new();
        for node in ["JP", "SG"] {
            for (account, value) in self.balances(node) {
                all.insert(format!("{node} {account}"), value);
            }
        }
        all
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.process.child.id().to_string()])
            .status();
        let stopping = Instant::now();
        while stopping.elapsed() < START_DEADLINE {
            if let Ok(Some(_)) = self.process.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.process.child.kill();
        let _ = self.process.child.wait();
    }
}

/// Minor units of `"25000 JPY"` or `"216.95 SGD"`; None for a negative or unreadable amount.
fn minor(text: &str) -> Option<i128> {
    let (value, currency) = text.split_once(' ')?;
    let amount = ActiveCurrencyAndAmount {
        currency: currency.to_owned(),
        value: value.to_owned(),
    };
    money::parse_amount(&amount)
        .ok()
        .and_then(|(_, m)| i128::try_from(m).ok())
}

/// Runs `kakehashi` with `args`: exit code, stdout, stderr.
fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = kakehashi(args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn replay(devnet: &Devnet, file: &str, out: Option<&Path>) -> (Option<i32>, String, String) {
    let base = devnet.process.base.to_string();
    let mut args = vec!["replay", file, "--base-port", &base];
    let out_text;
    if let Some(path) = out {
        out_text = path.to_str().expect("UTF-8 temp path").to_owned();
        args.extend(["--out", &out_text]);
    }
    run(&args)
}

fn results(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("results file")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON result line"))
        .collect()
}

/// What the settled results must have moved, keyed like [`Devnet::books`]: each debtor down by
/// its debit, each creditor up by its credit, as the results file reports them.
fn settled_moves(
    results: &[serde_json::Value],
    sample: &[serde_json::Value],
) -> BTreeMap<String, i128> {
    let mut moves = BTreeMap::new();
    for (result, line) in results.iter().zip(sample) {
        if result["status"] != "ACSC" || result["decided_earlier"] == true {
            continue;
        }
        let (from, to) = result["route"]
            .as_str()
            .and_then(|r| r.split_once('→'))
            .expect("a route");
        let account = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let debited = minor(result["debited"].as_str().expect("debited")).expect("amount");
        let credited = minor(result["credited"].as_str().expect("credited")).expect("amount");
        *moves
            .entry(format!("{from} {}", account(&line["debtor_account"])))
            .or_default() -= debited;
        *moves
            .entry(format!("{to} {}", account(&line["creditor_account"])))
            .or_default() += credited;
    }
    moves
}

#[test]
fn the_sample_file_meets_every_expectation_moves_exact_sums_and_a_rerun_pays_nothing_twice() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let devnet = Devnet::start(scratch.path());
    let sample: Vec<serde_json::Value> = std::fs::read_to_string(repo_root().join(SAMPLE))
        .expect("sample file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("sample line"))
        .collect();
    assert_eq!(sample.len(), SAMPLE_LINES);

    let before = devnet.books();
    let first = scratch.path().join("first.jsonl");
    let (code, stdout, stderr) = replay(&devnet, SAMPLE, Some(&first));
    let context = format!("{stdout}\n{stderr}\n{}", devnet.logs());
    assert_eq!(code, Some(0), "{context}");
    assert!(
        stdout.contains(&format!("All {SAMPLE_LINES} line(s) as expected")),
        "{context}"
    );
    assert!(!stdout.contains('✗'), "{context}");

    // One result per line, in file order, each as its line expected.
    let first_results = results(&first);
    assert_eq!(first_results.len(), SAMPLE_LINES, "{context}");
    for (i, (result, line)) in first_results.iter().zip(&sample).enumerate() {
        assert_eq!(result["line"], i + 1, "{result}");
        assert_eq!(result["met"], true, "{result}");
        assert_eq!(result["decided_earlier"], false, "{result}");
        let expect = &line["expect"];
        let status = expect["status"].as_str().unwrap_or("RJCT");
        assert_eq!(result["status"], status, "{result}");
        if let Some(reason) = expect["reason"].as_str() {
            assert_eq!(result["reason"], reason, "{result}");
        }
        if status == "ACSC" {
            // The receipt is kept, verified and about this very payment.
            assert_eq!(
                result["receipt"]["receipt"]["uetr"], result["uetr"],
                "{result}"
            );
            assert!(result["receipt_problem"].is_null(), "{result}");
            assert!(result["credited"].as_str().is_some(), "{result}");
        } else {
            assert!(result["receipt"].is_null(), "{result}");
        }
        if let Some(uetr) = line["uetr"].as_str() {
            assert_eq!(result["uetr"], uetr, "{result}");
        }
        if let Some(e2e) = line["end_to_end_id"].as_str() {
            assert_eq!(result["end_to_end_id"], e2e, "{result}");
        }
    }
    let counts = |status: &str| {
        first_results
            .iter()
            .filter(|r| r["status"] == status)
            .count()
    };
    assert_eq!((counts("ACSC"), counts("RJCT")), (6, 8), "{context}");

    // Every balance moved by exactly the settled sums, and no other balance moved (the
    // corridor and liquidity accounts excepted: they carry the other side of each payment).
    let after = devnet.books();
    let moves = settled_moves(&first_results, &sample);
    assert!(!moves.is_empty());
    for (account, was) in &before {
        let now = after.get(account).copied().unwrap_or_default();
        let internal = account.ends_with(" 9002")
            || account.ends_with(" 9003")
            || account.ends_with(" 9102")
            || account.ends_with(" 9103");
        if internal {
            continue;
        }
        let want = moves.get(account).copied().unwrap_or_default();
        assert_eq!(
            now - was,
            want,
            "{account} moved {} instead of {want}",
            now - was
        );
    }

    // The same file again: every payment the nodes recorded is reported with its earlier
    // outcome (DUPL, nothing moved); the unauthenticated and quote-stage refusals repeat.
    let second = scratch.path().join("second.jsonl");
    let (code, stdout, stderr) = replay(&devnet, SAMPLE, Some(&second));
    let context = format!("{stdout}\n{stderr}\n{}", devnet.logs());
    assert_eq!(code, Some(0), "{context}");
    assert!(stdout.contains("decided by an earlier run"), "{context}");
    let second_results = results(&second);
    assert_eq!(second_results.len(), SAMPLE_LINES);
    for (one, two) in first_results.iter().zip(&second_results) {
        assert_eq!(one["uetr"], two["uetr"], "the same UETRs: {two}");
        assert_eq!(one["status"], two["status"], "{two}");
        assert_eq!(one["reason"], two["reason"], "{two}");
        assert_eq!(two["met"], true, "{two}");
        if one["status"] == "ACSC" {
            assert_eq!(two["decided_earlier"], true, "{two}");
            assert_eq!(two["resubmission_answer"], "RJCT DUPL", "{two}");
            assert_eq!(one["credited"], two["credited"], "{two}");
        }
    }
    assert_eq!(devnet.books(), after, "the second run moved money");
}

/// The committed pacs.008.001.08 sample messages, relative to the repository root.
const PACS008_DIR: &str = "tests/data/iso20022";

#[test]
fn pacs008_messages_settle_answer_in_pacs002_pay_once_and_show_in_the_camt053_statement() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let devnet = Devnet::start(scratch.path());
    let before = devnet.books();
    let reports = scratch.path().join("pacs002");
    let reports_text = reports.to_str().expect("UTF-8 temp path").to_owned();
    let base = devnet.process.base.to_string();
    let first = scratch.path().join("first.jsonl");
    let first_text = first.to_str().expect("UTF-8 temp path").to_owned();
    let (code, stdout, stderr) = run(&[
        "replay",
        PACS008_DIR,
        "--base-port",
        &base,
        "--out",
        &first_text,
        "--pacs002-out",
        &reports_text,
    ]);
    let context = format!("{stdout}\n{stderr}\n{}", devnet.logs());
    assert_eq!(code, Some(0), "{context}");
    assert!(stdout.contains("All 3 line(s) as expected"), "{context}");
    let first_results = results(&first);
    assert!(
        first_results.iter().all(|r| r["status"] == "ACSC"),
        "{context}"
    );

    // Each debtor down by its settlement amount, each creditor up by what its result says.
    let after = devnet.books();
    let credited = |uetr: &str| {
        let result = first_results
            .iter()
            .find(|r| r["uetr"] == uetr)
            .expect("a result per UETR");
        minor(result["credited"].as_str().expect("credited")).expect("amount")
    };
    for (account, moved) in [
        ("JP 1001", -25_000),
        ("JP 1002", -12_000),
        ("SG 2102", -8_050),
        ("SG 2001", credited("3f6c1d2a-8b4e-4f7a-9c15-2d8e6b0a4f11")),
        ("SG 2002", credited("7a2e9b40-1c3d-4e5f-8a6b-9c0d1e2f3a42")),
        ("JP 1102", credited("c4d5e6f7-0a1b-4c2d-8e3f-405162738495")),
    ] {
        assert_eq!(after[account] - before[account], moved, "{account}");
    }

    // One pacs.002 per message, quoting the original message and each transaction.
    let jp = std::fs::read_to_string(reports.join("pacs008-jp-to-sg.pacs002.xml"))
        .expect("the JP message's report");
    for needle in [
        "<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10\">",
        "<OrgnlMsgId>KKHAJPJ0-20261207-0001</OrgnlMsgId>",
        "<OrgnlMsgNmId>pacs.008.001.08</OrgnlMsgNmId>",
        "<OrgnlInstrId>KKHAJPJ0-0001</OrgnlInstrId>",
        "<OrgnlEndToEndId>INV-2026-1207-02</OrgnlEndToEndId>",
        "<OrgnlUETR>3f6c1d2a-8b4e-4f7a-9c15-2d8e6b0a4f11</OrgnlUETR>",
        "<OrgnlUETR>7a2e9b40-1c3d-4e5f-8a6b-9c0d1e2f3a42</OrgnlUETR>",
    ] {
        assert!(jp.contains(needle), "{needle}\n{jp}");
    }
    assert_eq!(jp.matches("<TxSts>ACSC</TxSts>").count(), 2, "{jp}");
    check_pacs002_model(&jp);
    let sg = std::fs::read_to_string(reports.join("pacs008-sg-to-jp.pacs002.xml"))
        .expect("the SG message's report");
    assert!(
        sg.contains("<OrgnlTxId>KKHBSGS0-TX-0001</OrgnlTxId>"),
        "{sg}"
    );
    check_pacs002_model(&sg);

    // The same messages again pay nothing: the node answers DUPL, replay reports the earlier
    // outcome; and `pay --pacs008` of one of them is RJCT DUPL, as its pacs.002 says.
    let (code, stdout, stderr) = run(&["replay", PACS008_DIR, "--base-port", &base]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("decided by an earlier run"), "{stdout}");
    let again = scratch.path().join("again.pacs002.xml");
    let (code, stdout, stderr) = run(&[
        "pay",
        "--node",
        &devnet.url("SG"),
        "--bank",
        "certs/sg/banks/KKHBSGS0.pem",
        "--key",
        "certs/sg/banks/KKHBSGS0.key.pem",
        "--pacs008",
        "tests/data/iso20022/pacs008-sg-to-jp.xml",
        "--pacs002-out",
        again.to_str().expect("UTF-8 temp path"),
    ]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    let again = std::fs::read_to_string(&again).expect("pay's report");
    assert!(again.contains("<TxSts>RJCT</TxSts>"), "{again}");
    assert!(again.contains("<Cd>DUPL</Cd>"), "{again}");
    check_pacs002_model(&again);
    assert_eq!(devnet.books(), after, "a resent message moved money");
    // `status --pacs002` reports the settled payment.
    let (code, stdout, stderr) = run(&[
        "status",
        "c4d5e6f7-0a1b-4c2d-8e3f-405162738495",
        "--node",
        &devnet.url("SG"),
        "--identity",
        "KKHBSGS0",
        "--pacs002",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("<TxSts>ACSC</TxSts>"), "{stdout}");
    assert!(
        stdout.contains("<OrgnlEndToEndId>PO-88412</OrgnlEndToEndId>"),
        "{stdout}"
    );
    check_pacs002_model(&stdout);

    // A message with an element the node cannot honour is refused whole, by path, and
    // nothing of it is sent (its good first transaction's UETR stays unknown).
    let sample =
        std::fs::read_to_string(repo_root().join(PACS008_DIR).join("pacs008-jp-to-sg.xml"))
            .expect("sample");
    let bad = sample
        .replace("3f6c1d2a-8b4e-4f7a-9c15-2d8e6b0a4f11", "5b0e4c1d-2a3f-4e6b-8c7d-9e0f1a2b3c4d")
        .replace("7a2e9b40-1c3d-4e5f-8a6b-9c0d1e2f3a42", "6c1f5d2e-3b4a-4f7c-9d8e-0f1a2b3c4d5e")
        .replacen(
            "<Dbtr>\n        <Nm>Sato Trading KK</Nm>",
            "<IntrmyAgt1><FinInstnId><BICFI>KKHBJPJ0</BICFI></FinInstnId></IntrmyAgt1>\n      <Dbtr>\n        <Nm>Sato Trading KK</Nm>",
            1,
        );
    assert_ne!(bad, sample);
    let bad_path = scratch.path().join("bad.xml");
    std::fs::write(&bad_path, bad).expect("write");
    let (code, stdout, stderr) = run(&[
        "replay",
        bad_path.to_str().expect("UTF-8 temp path"),
        "--base-port",
        &base,
    ]);
    assert_eq!(code, Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(
            "/Document/FIToFICstmrCdtTrf/CdtTrfTxInf[2]/IntrmyAgt1: FF01: refused: the relay pays \
             the creditor agent directly"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was sent"), "{stderr}");
    let (code, _, stderr) = run(&[
        "status",
        "5b0e4c1d-2a3f-4e6b-8c7d-9e0f1a2b3c4d",
        "--node",
        &devnet.url("JP"),
        "--identity",
        "KKHAJPJ0",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("no payment with UETR"), "{stderr}");
    assert_eq!(devnet.books(), after);

    // The debtor's camt.053 statement, offline once the nodes have stopped: it closes at the
    // posted balance the node reported, books the payment with its UETR and end-to-end id
    // (from the payment store), and the official schema accepts it.
    drop(devnet);
    let data = scratch.path().join("data/jp");
    let statement = scratch.path().join("statement.xml");
    let (code, stdout, stderr) = run(&[
        "ledger",
        "statement",
        "--data-dir",
        data.join("ledger").to_str().expect("UTF-8 temp path"),
        "--payments",
        data.to_str().expect("UTF-8 temp path"),
        "--account",
        "1001",
        "--camt053",
        statement.to_str().expect("UTF-8 temp path"),
    ]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let xml = std::fs::read_to_string(&statement).expect("the statement");
    let closing = format!(
        "<Cd>CLBD</Cd>\n          </CdOrPrtry>\n        </Tp>\n        <Amt Ccy=\"JPY\">{}</Amt>",
        after["JP 1001"]
    );
    assert!(xml.contains(&closing), "{closing}\n{xml}");
    for needle in [
        "<Cd>OUTBOUND</Cd>",
        "<EndToEndId>INV-2026-1207-01</EndToEndId>",
        "<UETR>3f6c1d2a-8b4e-4f7a-9c15-2d8e6b0a4f11</UETR>",
    ] {
        assert!(xml.contains(needle), "{needle}\n{xml}");
    }
    validate_camt053(&statement);
}

/// Validates `file` against the official camt.053.001.08 schema with xmllint (Debian's
/// libxml2-utils); skipped without xmllint unless KAKEHASHI_REQUIRE_XMLLINT is set, as
/// `.ci/run` sets it.
fn validate_camt053(file: &Path) {
    let schema = repo_root().join("tests/data/iso20022/xsd/camt.053.001.08.xsd");
    match Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&schema)
        .arg(file)
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var_os("KAKEHASHI_REQUIRE_XMLLINT").is_none(),
                "xmllint is not installed but KAKEHASHI_REQUIRE_XMLLINT is set"
            );
            eprintln!("xmllint is not installed: camt.053 validation skipped");
        }
        Err(e) => panic!("running xmllint: {e}"),
    }
}

/// Checks a written pacs.002.001.10 against the message model of the pinned pyiso20022 with
/// tests/iso20022/check_model.py (no registry ships the official pacs.002 XSD; see
/// tests/data/iso20022/xsd/README.md). Run by the Python that KAKEHASHI_ISO20022_PYTHON names
/// (`.ci/run` sets it); skipped when it is unset, failed when it is set but cannot run.
fn check_pacs002_model(document: &str) {
    let Some(python) = std::env::var_os("KAKEHASHI_ISO20022_PYTHON") else {
        eprintln!("KAKEHASHI_ISO20022_PYTHON is not set: pacs.002 model check skipped");
        return;
    };
    let mut child = Command::new(&python)
        .arg(repo_root().join("tests/iso20022/check_model.py"))
        .args(["--message", "pacs.002.001.10", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("KAKEHASHI_ISO20022_PYTHON={python:?} cannot run: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(document.as_bytes())
            .expect("writing the report to the model check");
    }
    let out = child
        .wait_with_output()
        .expect("waiting for the model check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => {}
        Some(1) => panic!("the pacs.002.001.10 model refuses the report:\n{stderr}\n{document}"),
        _ => panic!(
            "the pacs.002 model check could not run ({}):\n{stderr}",
            out.status
        ),
    }
}

#[test]
fn a_malformed_file_is_refused_whole_and_an_unmet_expectation_exits_1() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let devnet = Devnet::start(scratch.path());
    let good = |uetr: &str, account: &str| {
        format!(
            r#"{{"uetr":"{uetr}","debtor_agent":"KKHAJPJ0","debtor_account":"1001","creditor_agent":"KKHASGS0","creditor_account":"{account}","amount":{{"currency":"JPY","value":"1000"}},"expect":{{"status":"ACSC"}}}}"#
        )
    };
    let good_uetr = "0f6a3c2e-51d4-4b8a-9c3e-7d2f1a0b9c11";
    let mut file = Vec::new();
    file.extend_from_slice(good(good_uetr, "2001").as_bytes());
    file.extend_from_slice(b"\n{\"debtor_agent\": \"KKHAJPJ0\",\n");
    let with = |from: &str, to: &str| good(good_uetr, "2001").replace(from, to) + "\n";
    file.extend_from_slice(with("\"expect\"", "\"expectation\"").as_bytes());
    file.extend_from_slice(with("\"1000\"", "\"10.5\"").as_bytes());
    file.extend_from_slice(with("\"JPY\"", "\"YEN\"").as_bytes());
    file.extend_from_slice(with(good_uetr, "0f6a3c2e-51d4-4b8a-9c3e").as_bytes());
    file.extend_from_slice(b"{\"debtor_agent\": \"KKH\xffJPJ0\"}\n");
    file.extend_from_slice(
        format!("{}\n", " ".repeat(20_000))
            .replace(' ', "x")
            .as_bytes(),
    );
    let bad = scratch.path().join("bad.jsonl");
    std::fs::write(&bad, &file).expect("write bad file");

    let before = devnet.books();
    let (code, stdout, stderr) = replay(&devnet, bad.to_str().expect("UTF-8 path"), None);
    assert_eq!(code, Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("7 bad line(s); nothing was sent"),
        "{stderr}"
    );
    for expected in [
        "line 2: FF01: not valid JSON",
        "line 3, member expectation: FF01: unknown member",
        "line 4, member amount.value: FF01",
        "line 5, member amount.currency: FF01: unknown currency",
        "line 6, member uetr: FF01",
        "line 7: FF01: not UTF-8",
        "line 8: FF01: the line is 20000 bytes",
    ] {
        assert!(stderr.contains(expected), "{expected}\n{stderr}");
    }
    // Nothing was sent: the good first line's UETR is unknown to the node, nothing moved.
    let (code, _, stderr) = run(&[
        "status",
        good_uetr,
        "--node",
        &devnet.url("JP"),
        "--identity",
        "KKHAJPJ0",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("no payment with UETR"), "{stderr}");
    assert_eq!(devnet.books(), before);

    // A valid file whose payment is refused (AC01) though it expects ACSC: exit 1, marked.
    let unmet = scratch.path().join("unmet.jsonl");
    std::fs::write(
        &unmet,
        good("4c1d2e3f-a5b6-4c7d-8e9f-0a1b2c3d4e5f", "2999") + "\n",
    )
    .expect("write");
    let (code, stdout, stderr) = replay(&devnet, unmet.to_str().expect("UTF-8 path"), None);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("RJCT AC01"), "{stdout}");
    assert!(stdout.contains("ACSC ✗"), "{stdout}");
    assert!(stdout.contains("NOT as expected: 1 line(s)"), "{stdout}");
}

#[test]
fn bench_settles_every_payment_and_reports_consistent_figures() {
    let (code, stdout, stderr) = run(&["bench", "--payments", "50", "--concurrency", "4"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    for expected in [
        "answers        ACSC 50",
        "settled        50 of 50",
        "payments/s (50 settled in",
        "balances       exact: every balance moved by exactly the settled sums (50000 JPY debited",
        // The client verifies every settled payment's receipt, as a bank does.
        "receipts       50 verified by the client under the agreement (50 settled)",
        "failures       0",
        "cpu split      per settled payment:",
    ] {
        assert!(stdout.contains(expected), "{expected}\n{stdout}");
    }
    let figures: Vec<f64> = stdout
        .lines()
        .find(|l| l.starts_with("SubmitPayment"))
        .expect("a SubmitPayment line")
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(figures.len(), 4, "p50 p90 p99 max: {stdout}");
    assert!(figures.windows(2).all(|w| w[0] <= w[1]), "{figures:?}");

    let (code, stdout, stderr) = run(&[
        "bench",
        "--payments",
        "8",
        "--concurrency",
        "4",
        "--stream",
        "--json",
    ]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("bench JSON");
    assert_eq!(report["payments"], 8, "{report}");
    assert_eq!(report["settled"], 8, "{report}");
    assert_eq!(
        report["answers"],
        serde_json::json!({"ACSC": 8}),
        "{report}"
    );
    assert_eq!(report["balances_exact"], true, "{report}");
    assert_eq!(report["debited"], "8000 JPY", "{report}");
    assert!(
        report["payments_per_sec"].as_f64().is_some_and(|r| r > 0.0),
        "{report}"
    );
    let submit = &report["submit_ms"];
    let p = |k: &str| submit[k].as_f64().expect("a figure");
    assert!(
        p("p50") <= p("p90") && p("p90") <= p("p99") && p("p99") <= p("max"),
        "{report}"
    );
    // The crypto ceiling counts only work the run also did on the same cores, so the run
    // cannot exceed it: the fraction is in (0, 1].
    let figure = |k: &str| {
        report[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{k}: {report}"))
    };
    assert!(figure("crypto_ceiling_per_second") > 0.0, "{report}");
    let fraction = figure("ceiling_fraction");
    assert!(fraction > 0.0 && fraction <= 1.0, "{report}");
    assert!(figure("cpu_per_payment_us") > 0.0, "{report}");
    let operations = report["crypto_operations"]
        .as_array()
        .expect("the operations");
    let count = |op: &str| -> u64 {
        operations
            .iter()
            .filter(|o| o["operation"] == op)
            .filter_map(|o| o["count"].as_u64())
            .sum()
    };
    // One signature per signed object (quote, instruction, receipt); six verifications: the
    // quote at the client and the receiver (the sender takes its own quote, held byte for
    // byte, without verifying its signature again), the instruction at both nodes, and the
    // receipt at the sender and at the client.
    assert_eq!((count("sign"), count("verify")), (3, 6), "{report}");
    assert!(
        !operations.iter().any(|o| o["operation"] == "verify"
            && o["object"] == "quote"
            && o["place"] == "sender"),
        "the sender does not verify its own quote again: {report}"
    );
    assert!(
        operations.iter().any(|o| o["operation"] == "verify"
            && o["object"] == "receipt"
            && o["place"] == "client"),
        "the client verifies receipts: {report}"
    );
    assert!(
        operations
            .iter()
            .all(|o| o["bytes"].as_u64().is_some_and(|b| b > 0)
                && o["each_us"].as_f64().is_some_and(|t| t > 0.0)),
        "{report}"
    );
    assert_eq!(report["receipts_verified"], report["settled"], "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    // The split adds up to the total per payment (rounding aside), from named parts.
    let split = &report["cpu_split_us"];
    let part = |k: &str| {
        split[k]
            .as_f64()
            .unwrap_or_else(|| panic!("cpu_split_us.{k}: {report}"))
    };
    let sum = part("crypto") + part("storage") + part("tls_http2") + part("rest");
    assert!((sum - part("total")).abs() < 0.01, "{report}");
    assert!(
        (part("total") - figure("cpu_per_payment_us")).abs() < 0.01,
        "{report}"
    );
    assert!(part("crypto") > 0.0 && part("storage") > 0.0, "{report}");
    assert!(part("per_grpc_call") > 0.0, "{report}");
    assert_eq!(split["grpc_calls_per_payment"], 3, "{report}");
    assert_rss(&report);
}

/// The RSS figures of a bench report are present and positive, the max at least the start and
/// the end, and the series holds them.
fn assert_rss(report: &serde_json::Value) {
    let bytes = |k: &str| {
        report[k]
            .as_u64()
            .filter(|b| *b > 0)
            .unwrap_or_else(|| panic!("{k}: {report}"))
    };
    let (start, end, max) = (
        bytes("rss_start_bytes"),
        bytes("rss_end_bytes"),
        bytes("rss_max_bytes"),
    );
    assert!(max >= start && max >= end, "{report}");
    let series = report["rss_series"].as_array().expect("an RSS series");
    assert!(series.len() >= 2, "{report}");
    assert_eq!(series[0][1].as_u64(), Some(start), "{report}");
}

#[test]
fn bench_runs_for_a_duration_at_a_rate() {
    // 2 s at 20 payments/s: a paced run stops sending when its time is up and ends once what
    // is in flight is answered. The bound is generous (a loaded machine may be slow to start
    // the nodes and to answer); nothing here asserts a speed.
    let started = Instant::now();
    let (code, stdout, stderr) = run(&[
        "bench",
        "--duration",
        "2",
        "--rate",
        "20",
        "--concurrency",
        "4",
        "--json",
    ]);
    let elapsed = started.elapsed();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("bench JSON");
    assert_eq!(report["paced"], true, "{report}");
    assert_eq!(report["latency_from"], "due", "{report}");
    let wall = report["wall_secs"].as_f64().expect("wall_secs");
    assert!(wall >= 1.9, "the run lasts its duration: {report}");
    assert!(
        wall < 2.0 + 60.0,
        "the run ends after its duration: {report}"
    );
    assert!(elapsed.as_secs() < 180, "{elapsed:?}");
    // The schedule holds 40 slots due before 2 s, each either sent or missed.
    let payments = report["payments"].as_u64().expect("payments");
    let missed = report["missed_slots"].as_u64().expect("missed_slots");
    assert!(payments >= 1, "{report}");
    assert_eq!(payments + missed, 40, "{report}");
    assert_eq!(report["settled"].as_u64(), Some(payments), "{report}");
    assert_eq!(report["receipts_verified"], report["settled"], "{report}");
    assert_eq!(report["balances_exact"], true, "{report}");
    assert_rss(&report);
}
