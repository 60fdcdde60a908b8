//! The report of `kakehashi ledger pair-audit --report FILE`: the agreement and the keys the
//! evidence and the ledgers were checked against, each check with its verdict, the payments
//! and the corridor and liquidity positions of each direction (a chart per direction), the
//! payments in doubt and every discrepancy by UETR.

use std::path::Path;

use kakehashi_ops::pair_audit::{DirectionReport, DiscrepancyKind, PairReport};
use kakehashi_pki::mra::Mra;

use super::audit::plotted;
use super::chart::{self, Pair, Panel};
use super::page::{Cell, Page, Verdict};

/// The key a node's ledger audit was pinned to.
pub(crate) struct NodeKey {
    /// The node's jurisdiction.
    pub(crate) jurisdiction: String,
    /// Its signing certificate, whose key the ledger's signatures must verify under.
    pub(crate) signing_cert: String,
    /// The key stored in its ledger (hex), when the audit read one.
    pub(crate) stored_key: Option<String>,
}

/// Everything the pair audit report shows.
pub(crate) struct PairAuditRun<'a> {
    /// What the audit found.
    pub(crate) report: &'a PairReport,
    /// The agreement the evidence was verified under.
    pub(crate) mra: &'a Mra,
    /// Where it was read from.
    pub(crate) mra_path: &'a Path,
    /// Each node's ledger key.
    pub(crate) keys: Vec<NodeKey>,
    /// What was run.
    pub(crate) command: String,
    /// When.
    pub(crate) generated: String,
}

/// Every kind of finding, in the order of the checks table.
const KINDS: [DiscrepancyKind; 13] = [
    DiscrepancyKind::MissingCredit,
    DiscrepancyKind::CreditWithoutReservation,
    DiscrepancyKind::CreditedButVoided,
    DiscrepancyKind::AmountDiffers,
    DiscrepancyKind::BookingWrong,
    DiscrepancyKind::InstructionInvalid,
    DiscrepancyKind::ReceiptInvalid,
    DiscrepancyKind::RecordMismatch,
    DiscrepancyKind::PositionDiffers,
    DiscrepancyKind::UnexplainedMovement,
    DiscrepancyKind::LedgerAudit,
    DiscrepancyKind::SenderNotYetResolved,
    DiscrepancyKind::ReceiverNotYetRecorded,
];

/// What the check that finds `kind` verifies.
fn check(kind: DiscrepancyKind) -> &'static str {
    match kind {
        DiscrepancyKind::MissingCredit => {
            "Every reservation the sender posted has the receiver's credit"
        }
        DiscrepancyKind::CreditWithoutReservation => {
            "Every credit on the receiver has the sender's reservation with the same UETR"
        }
        DiscrepancyKind::CreditedButVoided => {
            "No payment voided (or expired) on the sender is credited on the receiver"
        }
        DiscrepancyKind::AmountDiffers => {
            "The amounts agree: reservation, posting, instruction, quote, credit, receipt, records"
        }
        DiscrepancyKind::BookingWrong => {
            "Every payment transfer and account is booked right: currency, code, accounts, \
             timeout, UETR-derived id"
        }
        DiscrepancyKind::InstructionInvalid => {
            "Every stored instruction decodes, verifies under the agreement and matches on both sides"
        }
        DiscrepancyKind::ReceiptInvalid => {
            "Every settled payment's receipt verifies under the agreement and describes the credit"
        }
        DiscrepancyKind::RecordMismatch => "Every payment store record agrees with its own ledger",
        DiscrepancyKind::PositionDiffers => {
            "Corridor and liquidity balances equal the sums of the payments"
        }
        DiscrepancyKind::UnexplainedMovement => {
            "Every transfer moving a corridor or liquidity account is a payment step or funding"
        }
        DiscrepancyKind::LedgerAudit => "Each node's own ledger audit is clean",
        DiscrepancyKind::SenderNotYetResolved => {
            "No payment settled by the receiver is still unresolved on the sender (recovery repairs it)"
        }
        DiscrepancyKind::ReceiverNotYetRecorded => {
            "No payment credited by the receiver is still unrecorded there (recovery repairs it)"
        }
    }
}

/// One direction's positions: the sender's corridor account in the source currency and the
/// receiver's liquidity account in the target currency, each beside the sums it must equal.
fn positions_chart(d: &DirectionReport) -> anyhow::Result<chart::Svg> {
    let p = &d.position;
    let pair = |label: &str,
                booked: &kakehashi_ops::pair_audit::Amount,
                sum: &kakehashi_ops::pair_audit::Amount| Pair {
        label: label.to_owned(),
        values: [plotted(&booked.value), plotted(&sum.value)],
        texts: [booked.value.clone(), sum.value.clone()],
        differs: booked != sum,
    };
    chart::paired_bars(&[
        Panel {
            title: format!("{} corridor account {}", d.sender, p.corridor_account),
            unit: p.corridor_posted.currency.clone(),
            legend: [
                "booked balance".to_owned(),
                "sum of the payments".to_owned(),
            ],
            pairs: vec![
                pair("posted | Σ settled", &p.corridor_posted, &p.settled_source),
                pair(
                    "pending | Σ in doubt",
                    &p.corridor_pending,
                    &p.reserved_in_doubt,
                ),
            ],
        },
        Panel {
            title: format!("{} liquidity account {}", d.receiver, p.liquidity_account),
            unit: p.liquidity_debited.currency.clone(),
            legend: [
                "booked balance".to_owned(),
                "sum of the payments".to_owned(),
            ],
            pairs: vec![pair(
                "debited | Σ credited",
                &p.liquidity_debited,
                &p.settled_target,
            )],
        },
    ])
}

/// The pair audit report.
pub(crate) fn pair_audit_html(run: &PairAuditRun<'_>) -> anyhow::Result<String> {
    let report = run.report;
    let names: Vec<&str> = report
        .nodes
        .iter()
        .map(|n| n.jurisdiction.as_str())
        .collect();
    let mut page = Page::new(
        &format!("Pair audit of {}", names.join(" and ")),
        &format!(
            "kakehashi ledger pair-audit: do the two nodes' books agree on every payment between \
             them? Report made at {}",
            run.generated
        ),
    );
    if report.agrees() {
        page.banner(Verdict::Pass, "Result: the pair agrees.");
    } else {
        page.banner(
            Verdict::Fail,
            &format!(
                "Result: {} discrepancies (listed below by UETR).",
                report.discrepancy_count()
            ),
        );
    }
    let count = |f: fn(&DirectionReport) -> u64| -> u64 { report.directions.iter().map(f).sum() };
    let in_doubt = (report.in_doubt.len() as u64).saturating_add(report.in_doubt_not_listed);
    page.tiles(&[
        (count(|d| d.payments).to_string(), "payments"),
        (count(|d| d.settled).to_string(), "settled"),
        (count(|d| d.rejected).to_string(), "rejected"),
        (in_doubt.to_string(), "in doubt"),
        (report.discrepancy_count().to_string(), "discrepancies"),
    ]);

    page.heading("The agreement");
    let mra = run.mra;
    let mut facts = vec![
        ("agreement", Cell::Code(mra.agreement_id().to_owned())),
        ("file", Cell::Code(run.mra_path.display().to_string())),
    ];
    if let Some(title) = mra.title() {
        facts.push(("title", Cell::Text(title.to_owned())));
    }
    facts.push((
        "in force",
        Cell::Text(format!("{} to {}", mra.not_before(), mra.not_after())),
    ));
    facts.push((
        "signatures",
        Cell::Text(if mra.signatures_verified() {
            "every party's signature verified".to_owned()
        } else {
            "NOT every party's signature verified".to_owned()
        }),
    ));
    page.facts(facts);
    page.table(
        &["party", "name", "currency", "authority key (Ed25519)"],
        mra.jurisdictions()
            .iter()
            .map(|j| {
                vec![
                    Cell::Text(j.code.clone()),
                    Cell::Text(j.name.clone()),
                    Cell::Text(j.currency.clone()),
                    Cell::Code(hex::encode(j.authority_key.to_bytes())),
                ]
            })
            .collect(),
    );

    page.heading("The nodes and their keys");
    page.table(
        &[
            "node",
            "currency",
            "data directory",
            "signing certificate",
            "ledger key stored",
        ],
        report
            .nodes
            .iter()
            .map(|node| {
                let key = run
                    .keys
                    .iter()
                    .find(|k| k.jurisdiction == node.jurisdiction);
                vec![
                    Cell::Text(node.jurisdiction.clone()),
                    Cell::Text(node.currency.clone()),
                    Cell::Code(node.data_dir.clone()),
                    Cell::Code(key.map_or_else(String::new, |k| k.signing_cert.clone())),
                    Cell::Code(
                        key.and_then(|k| k.stored_key.clone())
                            .unwrap_or_else(|| "(not read)".to_owned()),
                    ),
                ]
            })
            .collect(),
    );
    page.paragraph(
        "Each ledger's checkpoints and signed heads are verified under the key of its node's \
         signing certificate; receipts, quotes and instructions under the agreement, at the \
         time the receiver settled.",
    );

    page.heading("Checks");
    let mut rows = Vec::new();
    for node in &report.nodes {
        let (verdict, text) = match node.ledger_audit_clean {
            Some(true) => (Verdict::Pass, "clean"),
            Some(false) => (Verdict::Fail, "discrepancies (listed below)"),
            None => (Verdict::Note, "not run"),
        };
        rows.push(vec![
            Cell::Text(format!(
                "{}'s ledger audit: {text}; {} journal records, {} checkpoints verified",
                node.jurisdiction, node.ledger_records, node.ledger_checkpoints_verified
            )),
            Cell::Verdict(verdict),
            Cell::Number(String::new()),
        ]);
    }
    for d in &report.directions {
        rows.push(vec![
            Cell::Text(format!(
                "{} → {}: corridor and liquidity positions reconcile with the payments",
                d.sender, d.receiver
            )),
            Cell::Verdict(Verdict::of(!d.position.reconciled)),
            Cell::Number(String::new()),
        ]);
    }
    for kind in KINDS {
        let found = report
            .discrepancies
            .iter()
            .filter(|d| d.kind == kind)
            .count();
        rows.push(vec![
            Cell::Text(check(kind).to_owned()),
            Cell::Verdict(Verdict::of(found > 0)),
            Cell::Number(found.to_string()),
        ]);
    }
    page.table(&["check", "verdict", "findings"], rows);
    if report.discrepancies_not_listed > 0 {
        page.paragraph(&format!(
            "{} more discrepancies were found but not listed; they are not counted in the \
             checks above.",
            report.discrepancies_not_listed
        ));
    }

    for d in &report.directions {
        let p = &d.position;
        page.heading(&format!("{} → {}", d.sender, d.receiver));
        page.table(
            &[
                "payments",
                "settled",
                "rejected",
                "in doubt",
                "inconsistent",
            ],
            vec![
                [
                    d.payments,
                    d.settled,
                    d.rejected,
                    d.in_doubt,
                    d.inconsistent,
                ]
                .iter()
                .map(|n| Cell::Number(n.to_string()))
                .collect(),
            ],
        );
        let svg = positions_chart(d)?;
        page.chart(
            &svg,
            &format!(
                "Left: {sender}'s corridor account for {receiver}, its posted credits beside \
                 the source amounts of the payments {receiver} settled, its pending credits \
                 beside the reservations in doubt. Right: {receiver}'s liquidity account for \
                 {sender}, its debits beside the amounts credited (funded {funded}).",
                sender = d.sender,
                receiver = d.receiver,
                funded = p.liquidity_funded
            ),
        );
    }

    page.heading("Payments in doubt");
    if report.in_doubt.is_empty() {
        page.paragraph("None.");
    } else {
        page.paragraph(
            "Reserved on the sender and not settled by the receiver: waiting for the receiver's \
             answer, not discrepancies.",
        );
        let mut in_doubt: Vec<_> = report.in_doubt.iter().collect();
        in_doubt.sort_by(|a, b| a.uetr.cmp(&b.uetr));
        page.table(
            &[
                "UETR",
                "direction",
                "reserved",
                "sender record",
                "receiver record",
            ],
            in_doubt
                .into_iter()
                .map(|p| {
                    vec![
                        Cell::Code(p.uetr.clone()),
                        Cell::Text(format!("{} → {}", p.sender, p.receiver)),
                        Cell::Number(p.reserved.to_string()),
                        Cell::Text(p.sender_record.clone().unwrap_or_else(|| "none".into())),
                        Cell::Text(p.receiver_record.clone().unwrap_or_else(|| "none".into())),
                    ]
                })
                .collect(),
        );
        if report.in_doubt_not_listed > 0 {
            page.paragraph(&format!(
                "… and {} more not listed.",
                report.in_doubt_not_listed
            ));
        }
    }

    page.heading("Discrepancies by UETR");
    if report.discrepancies.is_empty() {
        page.paragraph("None.");
    } else {
        // By UETR, so that every finding about one payment stands together; findings about
        // no single payment (positions, ledger audits) last.
        let mut listed: Vec<_> = report.discrepancies.iter().collect();
        listed.sort_by(|a, b| match (&a.uetr, &b.uetr) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
        page.table(
            &["UETR", "finding", "node", "detail", "repaired by recovery"],
            listed
                .into_iter()
                .map(|d| {
                    vec![
                        Cell::Code(d.uetr.clone().unwrap_or_else(|| "—".to_owned())),
                        Cell::Text(d.kind.as_str().to_owned()),
                        Cell::Text(d.node.clone()),
                        Cell::Text(d.detail.clone()),
                        Cell::Text(if d.repaired_by_recovery { "yes" } else { "no" }.to_owned()),
                    ]
                })
                .collect(),
        );
        if report.discrepancies_not_listed > 0 {
            page.paragraph(&format!(
                "… and {} more not listed.",
                report.discrepancies_not_listed
            ));
        }
    }

    page.heading("Command");
    page.facts(vec![("command", Cell::Code(run.command.clone()))]);
    Ok(page.finish())
}

#[cfg(test)]
mod tests {
    use kakehashi_ops::pair_audit::{Amount, NodeSummary, PairDiscrepancy, Position};

    use super::*;

    #[test]
    fn every_kind_of_finding_is_a_check() {
        // Adding a kind fails to compile here until it is given a place in KINDS.
        let place = |kind: DiscrepancyKind| match kind {
            DiscrepancyKind::MissingCredit => 0,
            DiscrepancyKind::CreditWithoutReservation => 1,
            DiscrepancyKind::CreditedButVoided => 2,
            DiscrepancyKind::AmountDiffers => 3,
            DiscrepancyKind::BookingWrong => 4,
            DiscrepancyKind::InstructionInvalid => 5,
            DiscrepancyKind::ReceiptInvalid => 6,
            DiscrepancyKind::RecordMismatch => 7,
            DiscrepancyKind::PositionDiffers => 8,
            DiscrepancyKind::UnexplainedMovement => 9,
            DiscrepancyKind::LedgerAudit => 10,
            DiscrepancyKind::SenderNotYetResolved => 11,
            DiscrepancyKind::ReceiverNotYetRecorded => 12,
        };
        for (index, kind) in KINDS.iter().enumerate() {
            assert_eq!(place(*kind), index, "{kind:?}");
        }
    }

    fn amount(currency: &str, value: &str) -> Amount {
        Amount {
            currency: currency.into(),
            value: value.into(),
        }
    }

    fn report() -> PairReport {
        let node = |j: &str, c: &str| NodeSummary {
            jurisdiction: j.into(),
            currency: c.into(),
            data_dir: format!("data/{j}"),
            ledger_audit_clean: Some(true),
            ledger_records: 40,
            ledger_checkpoints_verified: 2,
            corridor_transfers: 10,
            outbound_records: 5,
            inbound_records: 5,
        };
        PairReport {
            nodes: vec![node("JP", "JPY"), node("SG", "SGD")],
            directions: vec![DirectionReport {
                sender: "JP".into(),
                receiver: "SG".into(),
                payments: 7,
                settled: 5,
                rejected: 2,
                in_doubt: 0,
                inconsistent: 0,
                position: Position {
                    corridor_account: "9101".into(),
                    corridor_posted: amount("JPY", "50000"),
                    settled_source: amount("JPY", "50000"),
                    corridor_pending: amount("JPY", "0"),
                    reserved_in_doubt: amount("JPY", "0"),
                    liquidity_account: "9201".into(),
                    liquidity_debited: amount("SGD", "435.50"),
                    settled_target: amount("SGD", "435.50"),
                    liquidity_funded: amount("SGD", "1000000.00"),
                    reconciled: true,
                },
            }],
            in_doubt: Vec::new(),
            in_doubt_not_listed: 0,
            discrepancies: Vec::new(),
            discrepancies_not_listed: 0,
        }
    }

    fn html(report: &PairReport) -> String {
        let mra = Mra::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../certs/mra.toml"))
            .expect("the committed agreement");
        pair_audit_html(&PairAuditRun {
            report,
            mra: &mra,
            mra_path: Path::new("certs/mra.toml"),
            keys: vec![NodeKey {
                jurisdiction: "JP".into(),
                signing_cert: "certs/jp/node/signing.pem".into(),
                stored_key: Some("ef".repeat(32)),
            }],
            command: "kakehashi ledger pair-audit".into(),
            generated: "2026-12-07T00:00:00Z".into(),
        })
        .expect("report")
    }

    #[test]
    fn an_agreeing_pair_shows_the_agreement_keys_checks_and_a_chart_per_direction() {
        let report = report();
        let text = html(&report);
        assert!(text.contains("Result: the pair agrees."), "{text}");
        assert!(text.contains("<code>certs/mra.toml</code>"), "{text}");
        assert!(text.contains(&"ef".repeat(32)), "{text}");
        assert!(text.contains("certs/jp/node/signing.pem"), "{text}");
        assert_eq!(text.matches("<svg").count(), 1, "one direction, one chart");
        assert!(text.contains("JP corridor account 9101"), "{text}");
        assert!(text.contains("435.50"), "{text}");
        assert!(!text.contains("verdict fail"), "{text}");
        // Two ledger audits, one direction and every kind of finding.
        assert_eq!(
            text.matches("class=\"verdict pass\"").count(),
            2 + 1 + KINDS.len()
        );
    }

    #[test]
    fn discrepancies_are_listed_by_uetr_and_fail_their_checks() {
        let mut report = report();
        for (uetr, kind) in [
            (Some("uetr-b"), DiscrepancyKind::MissingCredit),
            (None, DiscrepancyKind::PositionDiffers),
            (Some("uetr-a <x>"), DiscrepancyKind::AmountDiffers),
        ] {
            report.discrepancies.push(PairDiscrepancy {
                kind,
                node: "SG".into(),
                uetr: uetr.map(str::to_owned),
                detail: format!("{} & more", kind.as_str()),
                repaired_by_recovery: false,
            });
        }
        report.directions[0].position.reconciled = false;
        report.directions[0].position.liquidity_debited = amount("SGD", "500.00");
        let text = html(&report);
        assert!(text.contains("Result: 3 discrepancies"), "{text}");
        assert_eq!(text.matches("class=\"verdict fail\"").count(), 4, "{text}");
        let a = text.find("uetr-a &lt;x&gt;").expect("escaped UETR");
        let b = text.find("<code>uetr-b</code>").expect("UETR b");
        let none = text.find("<code>—</code>").expect("no UETR");
        assert!(a < b && b < none, "sorted by UETR, none last");
        assert!(text.contains("amount_differs &amp; more"), "{text}");
        assert!(text.contains("≠ differs"), "the chart marks the position");
    }
}
