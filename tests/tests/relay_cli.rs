//! The relay driven through the real binary, as a newcomer would: `kakehashi devnet --demo`
//! starts the JP and SG nodes (real TLS on 127.0.0.1, real sled on disk), sends payments both
//! ways through the public gRPC API, and reports; `kakehashi receipt verify` then checks the
//! receipts it wrote, offline, and refuses tampered copies. A second test drives the
//! participant commands (`balance`, `quote`, `pay`, `status`) against a running devnet and
//! stops it with Ctrl-C (SIGINT).
//!
//! Ports: the test binds 127.0.0.1:0 to find free ports and releases them before the binary
//! binds them again. Another process could take one in between (a tiny race); the devnet then
//! fails to start, says which port, and the test fails with that message rather than hanging.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kakehashi_e2e::{DemoRun, devnet_demo, kakehashi, kakehashi_bin, repo_root};

/// The SG node listens this far above `--base-port` (`kakehashi devnet --help`).
const SG_PORT_OFFSET: u16 = 100;

/// A base port N such that N, N+1, N+2 (JP) and N+100, N+101, N+102 (SG) are free right now:
/// one block of 103 ports from the shared allocator, which never hands a port out twice.
fn free_base_port() -> u16 {
    kakehashi_e2e::free_ports(SG_PORT_OFFSET + 3)
}

/// The lines of the payments table for one route that ended with `outcome`.
fn table_lines<'a>(stdout: &'a str, route: &str, outcome: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .filter(|l| l.contains(route) && l.contains(outcome))
        .collect()
}

#[track_caller]
fn check_demo(run: &DemoRun) {
    let context = format!("stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert_eq!(run.status.code(), Some(0), "{context}");
    // Payments settled both ways, each marked as expected.
    let jp_sg = table_lines(&run.stdout, "JP→SG", "ACSC settled");
    let sg_jp = table_lines(&run.stdout, "SG→JP", "ACSC settled");
    assert_eq!(jp_sg.len(), 3, "{context}");
    assert_eq!(sg_jp.len(), 2, "{context}");
    for line in jp_sg.iter().chain(&sg_jp) {
        assert!(line.trim_end().ends_with('✓'), "{line}\n{context}");
        assert!(
            line.contains(" JPY") && line.contains(" SGD"),
            "{line}\n{context}"
        );
    }
    // Each rejected payment rejected with its reason code.
    for code in ["AM04", "DS0B", "AC01", "RR04"] {
        let rejected: Vec<&str> = run
            .stdout
            .lines()
            .filter(|l| l.contains(&format!("RJCT {code}")))
            .collect();
        assert_eq!(rejected.len(), 1, "{code}\n{context}");
        assert!(rejected[0].trim_end().ends_with('✓'), "{code}\n{context}");
    }
    assert!(!run.stdout.contains('✗'), "{context}");
    // Five receipts verified, the balances reconciled, and the one-sentence summary.
    assert_eq!(run.stdout.matches("✓ signed by").count(), 5, "{context}");
    assert!(
        run.stdout.contains("JP ledger, customer accounts"),
        "{context}"
    );
    assert!(
        run.stdout.contains("SG ledger, customer accounts"),
        "{context}"
    );
    assert!(
        run.stdout.contains("All as expected: 5 payments settled"),
        "{context}"
    );
}

fn receipt_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("the demo wrote a receipts directory")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn receipt_verify(file: &Path) -> std::process::Output {
    let file = file.to_str().expect("UTF-8 temp path");
    kakehashi(&[
        "receipt",
        "verify",
        file,
        "--mra",
        "certs/mra.toml",
        "--relying",
        "JP",
    ])
}

/// Replaces the first character of a string by a different one (for base64, a different
/// base64 character, which changes the first decoded byte).
fn flip_base64(text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    chars[0] = if chars[0] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

#[test]
fn devnet_demo_settles_both_ways_rejects_with_reasons_and_receipts_verify_offline() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let data = scratch.path().join("devnet-data");

    // The binary's one demo run on fresh books (`crate::shared_demo`), read only here.
    let first = crate::shared_demo();
    check_demo(&first.run);
    let receipts = receipt_files(&first.data_dir().join("receipts"));
    assert_eq!(receipts.len(), 5, "{receipts:?}");

    // Every receipt verifies offline under the agreement (JP recognizes SG's receipt-signing
    // key and its own).
    for file in &receipts {
        let out = receipt_verify(file);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}\n{stdout}\n{}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("VALID:"), "{stdout}");
    }

    // A tampered signature, signed payload or readable copy of a field is refused with exit 1.
    let original: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&receipts[0]).expect("read receipt"))
            .expect("receipt file is JSON");
    let tampered_copies = [
        ("signature", "/signed/signature"),
        ("payload", "/signed/payload"),
        ("readable-amount", "/receipt/credited_amount/value"),
    ];
    for (what, pointer) in tampered_copies {
        let mut doc = original.clone();
        let field = doc.pointer_mut(pointer).expect("field present");
        let text = field.as_str().expect("string field").to_owned();
        *field = serde_json::Value::String(flip_base64(&text));
        let copy = scratch.path().join(format!("tampered-{what}.json"));
        std::fs::write(&copy, serde_json::to_string_pretty(&doc).expect("JSON")).expect("write");
        let out = receipt_verify(&copy);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "tampered {what}\n{stdout}");
        assert!(stdout.contains("INVALID"), "tampered {what}\n{stdout}");
    }

    // Running the demo again on the same ledgers (a copy of them) works: new UETRs, balances
    // carry on.
    first.copy_data_to(&data);
    let second = devnet_demo(&data, scratch.path());
    check_demo(&second);
    assert_eq!(receipt_files(&data.join("receipts")).len(), 10);
}

/// How long a devnet may take to start both nodes before the test gives up.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// Runs `kakehashi` with `args`, returning exit code and stdout; stderr goes into panics.
fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = kakehashi(args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn participant_commands_quote_pay_and_follow_a_payment_on_a_running_devnet() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let base = free_base_port();
    let stdout_path = scratch.path().join("devnet.stdout");
    let stderr_path = scratch.path().join("devnet.stderr");
    let mut devnet = Command::new(kakehashi_bin())
        .current_dir(repo_root())
        .args(["devnet", "--base-port", &base.to_string(), "--data-dir"])
        .arg(scratch.path().join("data"))
        .env_remove("KAKEHASHI_LOG")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("start kakehashi devnet");
    let logs = || {
        format!(
            "devnet stdout:\n{}\ndevnet stderr:\n{}",
            std::fs::read_to_string(&stdout_path).unwrap_or_default(),
            std::fs::read_to_string(&stderr_path).unwrap_or_default()
        )
    };
    // Ready when it prints the Ctrl-C hint, which comes after both nodes are listening.
    let started = Instant::now();
    while !std::fs::read_to_string(&stdout_path)
        .unwrap_or_default()
        .contains("Press Ctrl-C")
    {
        if let Some(status) = devnet.try_wait().expect("poll devnet") {
            panic!("devnet exited early with {status}\n{}", logs());
        }
        if started.elapsed() > START_DEADLINE {
            let _ = devnet.kill();
            panic!("devnet not ready after {START_DEADLINE:?}\n{}", logs());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let jp = format!("https://127.0.0.1:{base}");
    let sg = format!("https://127.0.0.1:{}", base + SG_PORT_OFFSET);

    // Issue 12: a bank sees only its own accounts; the operator every account.
    let as_operator = ["--identity", "certs/jp/operator.pem"];
    let (code, balances, err) = run(&[
        "balance",
        "--node",
        &jp,
        "--json",
        as_operator[0],
        as_operator[1],
    ]);
    assert_eq!(code, Some(0), "{err}\n{}", logs());
    let balances: serde_json::Value = serde_json::from_str(&balances).expect("balance JSON");
    let before_1001 = balances
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["account"] == "1001"))
        .map(|r| r["posted"].as_str().unwrap_or_default().to_owned())
        .expect("account 1001 listed");

    let (code, quote, err) = run(&[
        "quote", "--node", &jp, "--to", "SG", "--amount", "10000", "--json",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let quote: serde_json::Value = serde_json::from_str(&quote).expect("quote JSON");
    assert_eq!(quote["quote"]["source_amount"], "10000 JPY", "{quote}");
    assert!(
        quote["quote"]["target_amount"]
            .as_str()
            .is_some_and(|t| t.ends_with(" SGD")),
        "{quote}"
    );

    let receipt = scratch.path().join("receipt.json");
    let receipt_arg = receipt.to_str().expect("UTF-8 temp path");
    let pay = |from: &str, bic: &str, amount: &str| {
        let bank = format!("certs/jp/banks/{bic}.pem");
        let key = format!("certs/jp/banks/{bic}.key.pem");
        run(&[
            "pay",
            "--node",
            &jp,
            "--bank",
            &bank,
            "--key",
            &key,
            "--from",
            from,
            "--to",
            "SG",
            "--to-bic",
            "KKHASGS0",
            "--to-account",
            "2001",
            "--amount",
            amount,
            "--receipt-out",
            receipt_arg,
            "--json",
        ])
    };
    let (code, paid, err) = pay("1001", "KKHAJPJ0", "10000");
    assert_eq!(code, Some(0), "{paid}\n{err}\n{}", logs());
    let paid: serde_json::Value = serde_json::from_str(&paid).expect("pay JSON");
    assert_eq!(paid["report"]["status"], "ACSC", "{paid}");
    assert_eq!(paid["report"]["debited"], "10000 JPY", "{paid}");
    let uetr = paid["report"]["uetr"].as_str().expect("uetr").to_owned();

    // The debtor's node knows the payment; the creditor's node was not asked to send it.
    let (code, status, err) = run(&["status", &uetr, "--node", &jp, "--identity", "KKHAJPJ0"]);
    assert_eq!(code, Some(0), "{status}\n{err}");
    assert!(status.contains("ACSC"), "{status}");
    let (code, _, err) = run(&["status", &uetr, "--node", &sg, "--identity", "KKHASGS0"]);
    assert_eq!(code, Some(2), "{err}");
    // Another bank of JP is told exactly what it would be told of an unknown UETR.
    let (code, _, err) = run(&["status", &uetr, "--node", &jp, "--identity", "KKHBJPJ0"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no payment with UETR"), "{err}");
    // Without an identity, no status at all.
    let (code, _, err) = run(&["status", &uetr, "--node", &jp]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("Unauthenticated"), "{err}");

    // The receipt written by --receipt-out verifies offline.
    let (code, verified, err) = run(&[
        "receipt",
        "verify",
        receipt_arg,
        "--mra",
        "certs/mra.toml",
        "--relying",
        "JP",
    ]);
    assert_eq!(code, Some(0), "{verified}\n{err}");
    assert!(verified.contains("VALID:"), "{verified}");

    // More than the debtor has: rejected (exit 1) with AM04, and nothing moved.
    let (code, refused, err) = pay("1102", "KKHBJPJ0", "4000000");
    assert_eq!(code, Some(1), "{refused}\n{err}");
    let refused: serde_json::Value = serde_json::from_str(&refused).expect("pay JSON");
    assert_eq!(refused["report"]["status"], "RJCT", "{refused}");
    assert_eq!(refused["report"]["reason_code"], "AM04", "{refused}");

    let (code, after, err) = run(&[
        "balance",
        "1001",
        "1102",
        "--node",
        &jp,
        "--json",
        as_operator[0],
        as_operator[1],
    ]);
    assert_eq!(code, Some(0), "{err}");
    let after: serde_json::Value = serde_json::from_str(&after).expect("balance JSON");
    let posted = |account: &str| {
        after
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["account"] == account))
            .and_then(|r| r["posted"].as_str())
            .map(str::to_owned)
            .expect("account listed")
    };
    let units = |text: &str| -> i64 { text.trim_end_matches(" JPY").parse().expect("JPY amount") };
    assert_eq!(units(&posted("1001")), units(&before_1001) - 10_000);
    assert_eq!(posted("1102"), "500000 JPY");

    // The operator (its own certificate, listed in [admin] operator_certs) opens and funds an
    // account; a bank's certificate is not an operator's, nor is the node's TLS certificate.
    let operator = [
        "--operator-cert",
        "certs/jp/operator.pem",
        "--operator-key",
        "certs/jp/operator.key.pem",
    ];
    let mut open = vec!["account", "open", "1301", "--owner-bic", "KKHAJPJ0"];
    open.extend(["--name", "Yamada Taro", "--node", &jp]);
    let (code, opened, err) = run(&[open.as_slice(), &operator].concat());
    assert_eq!(code, Some(0), "{opened}\n{err}");
    assert!(opened.contains("opened account 1301"), "{opened}");
    let fund = [
        "account", "fund", "1301", "--amount", "70000", "--node", &jp,
    ];
    let (code, funded, err) = run(&[fund.as_slice(), &operator].concat());
    assert_eq!(code, Some(0), "{funded}\n{err}");
    assert!(funded.contains("70000 JPY"), "{funded}");
    let not_operator = [
        "--operator-cert",
        "certs/jp/banks/KKHAJPJ0.pem",
        "--operator-key",
        "certs/jp/banks/KKHAJPJ0.key.pem",
    ];
    let (code, _, err) = run(&[fund.as_slice(), &not_operator].concat());
    assert_eq!(code, Some(2), "{err}");
    let node_tls = [
        "--operator-cert",
        "certs/jp/node/tls.pem",
        "--operator-key",
        "certs/jp/node/tls.key.pem",
    ];
    let (code, _, err) = run(&[fund.as_slice(), &node_tls].concat());
    assert_eq!(code, Some(2), "{err}");

    // Ctrl-C stops both nodes gracefully and exits 0.
    let pid = devnet.id().to_string();
    let sent = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("run kill");
    assert!(sent.success());
    let stopping = Instant::now();
    let status = loop {
        if let Some(status) = devnet.try_wait().expect("poll devnet") {
            break status;
        }
        if stopping.elapsed() > START_DEADLINE {
            let _ = devnet.kill();
            panic!("devnet did not stop after SIGINT\n{}", logs());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0), "{}", logs());
    assert!(logs().contains("Stopping both nodes"), "{}", logs());
}
