//! The test kit's own tests, written as a user of the crate would: nothing but
//! `kakehashi_testkit` (and the runtime) starts the pair, pays, replays and audits.

use kakehashi_testkit::{Error, LineStatus, Outcome, TestPair, Transfer, sample_file};

/// What the issue asks of the kit, end to end: a pair on free ports, a payment each way
/// through the bank clients, the sample transaction file replayed with every expectation met,
/// and the pair audit clean at teardown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_pays_both_ways_replays_the_sample_file_and_its_books_agree() {
    let pair = TestPair::start().await.expect("the pair starts");
    assert_eq!(pair.jurisdictions(), ["JP", "SG"]);
    let jp = pair.bank("KKHAJPJ0").expect("a JP bank");
    let sg = pair.bank("KKHASGS0").expect("an SG bank");
    assert_eq!(jp.accounts(), [1001, 1002]);

    let quote = jp.quote("10000", "SG").await.expect("a verified quote");
    assert_eq!(quote.terms().target.0.alpha, "SGD");

    let jp_before = jp.balance(1001).await.expect("JP balance");
    let sg_before = sg.balance(2001).await.expect("SG balance");
    let to_sg = jp
        .pay(&Transfer::new(1001, "KKHASGS0", 2001, "10000").creditor_name("Tan Wei Ming"))
        .await
        .expect("JP→SG is answered");
    let Outcome::Settled { report, receipt } = &to_sg.outcome else {
        panic!("JP→SG did not settle: {:?}", to_sg.outcome);
    };
    assert_eq!(receipt.receipt.uetr, to_sg.uetr.to_string());
    let credited = report
        .credited_amount
        .as_ref()
        .expect("a settled report names the credit");
    assert_eq!(jp.balance(1001).await.unwrap(), jp_before - 10_000);
    let credited_cents: u128 = credited.value.replace('.', "").parse().unwrap();
    assert_eq!(sg.balance(2001).await.unwrap(), sg_before + credited_cents);
    // The sending node answers for the payment by its UETR.
    let seen = jp
        .status(&to_sg.uetr)
        .await
        .expect("the debtor agent may ask");
    assert_eq!(seen.transaction_status, report.transaction_status);

    let to_jp = sg
        .pay(&Transfer::new(2001, "KKHAJPJ0", 1001, "20.00"))
        .await
        .expect("SG→JP is answered");
    assert_eq!(
        to_jp.outcome.status(),
        "ACSC",
        "{:?}",
        to_jp.outcome.reason()
    );

    // A refusal is an outcome, not an error: above JP's per-payment limit of 5,000,000 JPY.
    let too_much = jp
        .pay(&Transfer::new(1001, "KKHASGS0", 2001, "6000000"))
        .await
        .expect("answered");
    assert_eq!(
        too_much.outcome.reason(),
        Some("RR04"),
        "{}",
        too_much.outcome.status()
    );
    assert!(too_much.quote.is_none(), "refused at the quote");

    let replay = pair
        .replay_file(sample_file())
        .await
        .expect("the file replays");
    assert_eq!(replay.results.len(), 14);
    assert!(replay.all_as_expected(), "{replay}");
    let statuses = |status| replay.results.iter().filter(|r| r.status == status).count();
    assert_eq!(statuses(LineStatus::Acsc), 6, "{replay}");
    assert_eq!(statuses(LineStatus::Rjct), 8, "{replay}");

    // The same lines again: fixed UETRs, so the node answers DUPL and nothing moves twice.
    let again = pair
        .replay_file(sample_file())
        .await
        .expect("replays again");
    assert!(again.all_as_expected(), "{again}");
    assert!(again.line(1).is_some_and(|r| r.earlier), "{again}");

    let audit = pair.shutdown().await.expect("the books agree");
    assert!(audit.agrees());
    assert!(audit.in_doubt.is_empty());
    let settled: u64 = audit.directions.iter().map(|d| d.settled).sum();
    // 1 + 1 paid here, 6 settled by the file.
    assert_eq!(settled, 8, "{audit:?}");
}

/// A line that does not validate stops the replay before anything is sent, naming the line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_line_is_refused_before_anything_is_sent_and_a_dropped_pair_frees_its_books() {
    let dir = tempfile::tempdir().unwrap();
    let pair = TestPair::builder()
        .data_dir(dir.path())
        .start()
        .await
        .expect("the pair starts");
    let lines = concat!(
        r#"{"debtor_agent":"KKHAJPJ0","debtor_account":"1001","creditor_agent":"KKHASGS0","creditor_account":"2001","amount":{"currency":"JPY","value":"100"},"expect":{"status":"ACSC"}}"#,
        "\n",
        r#"{"debtor_agent":"KKHAJPJ0","debtor_account":"1001","creditor_agent":"KKHASGS0","creditor_account":"2001","amount":{"currency":"SGD","value":"1"}}"#,
        "\n"
    );
    match pair.replay_lines(lines).await {
        Err(Error::ReplayInput(errors)) => {
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert_eq!(errors[0].line, 2);
        }
        other => panic!("expected the second line refused, got {other:?}"),
    }
    let first = lines.lines().next().unwrap();
    let sent = pair.replay_lines(first).await.expect("one good line");
    assert!(sent.all_as_expected(), "{sent}");

    // Dropped without `shutdown`: the nodes stop and release their databases, so a pair
    // started on the same books opens them (the node waits briefly for sled's lock) and
    // finds the payment.
    drop(pair);
    let again = TestPair::builder()
        .data_dir(dir.path())
        .start()
        .await
        .expect("a new pair opens the dropped pair's books");
    let uetr = kakehashi_testkit::Uetr::parse(&sent.results[0].uetr).unwrap();
    let report = again
        .bank("KKHAJPJ0")
        .unwrap()
        .status(&uetr)
        .await
        .expect("the payment is in the books");
    assert_eq!(report.transaction_status, 1, "{report:?}");
    let audit = again.shutdown().await.expect("the books agree");
    let settled: u64 = audit.directions.iter().map(|d| d.settled).sum();
    assert_eq!(settled, 1);
}

/// The audit at teardown fails when the books disagree: a JP ledger that settled a payment,
/// started beside fresh SG books that never credited it, shows a posted reservation without
/// its credit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_fails_when_the_two_books_disagree() {
    let first = tempfile::tempdir().unwrap();
    let pair = TestPair::builder()
        .data_dir(first.path())
        .start()
        .await
        .expect("the pair starts");
    let paid = pair
        .bank("KKHAJPJ0")
        .unwrap()
        .pay(&Transfer::new(1001, "KKHASGS0", 2001, "1000"))
        .await
        .expect("answered");
    assert_eq!(paid.outcome.status(), "ACSC");
    pair.shutdown().await.expect("the first pair's books agree");

    // The JP books of that pair, the SG books of none.
    let second = tempfile::tempdir().unwrap();
    copy_dir(&first.path().join("jp"), &second.path().join("jp"));
    let pair = TestPair::builder()
        .data_dir(second.path())
        .start()
        .await
        .expect("the mismatched pair starts");
    match pair.shutdown().await {
        Err(Error::Disagree(report)) => {
            let uetr = paid.uetr.to_string();
            assert!(
                report
                    .discrepancies
                    .iter()
                    .any(|d| d.uetr.as_deref() == Some(uetr.as_str())),
                "{:?}",
                report.discrepancies
            );
        }
        other => panic!("expected the audit to find the missing credit, got {other:?}"),
    }
}

/// Copies a directory tree (a stopped node's books).
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
