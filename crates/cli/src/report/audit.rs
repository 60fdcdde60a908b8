//! The report of `kakehashi ledger audit --report FILE`: the ledger and the key its
//! signatures were checked against, each check with its verdict, the journal's figures, the
//! debits and credits of each currency as a chart, and every discrepancy.

use std::path::Path;

use kakehashi_ledger::{AuditReport, Location};

use super::chart::{self, Pair, Panel};
use super::page::{Cell, Page, Verdict};

/// Everything the ledger audit report shows.
pub(crate) struct LedgerAuditRun<'a> {
    /// The ledger directory audited.
    pub(crate) data_dir: &'a Path,
    /// What the audit found.
    pub(crate) report: &'a AuditReport,
    /// The key the auditor pinned (`--expected-key`), in hex; `None` when the stored key was
    /// used.
    pub(crate) expected_key: Option<String>,
    /// Whether records after the last signature were made a discrepancy.
    pub(crate) require_signed_head: bool,
    /// What was run.
    pub(crate) command: String,
    /// When.
    pub(crate) generated: String,
}

/// The checks of the audit, each named by where its findings are located
/// ([`kakehashi_ledger::Location`]), with what it covers.
fn checks(report: &AuditReport) -> Vec<(String, usize)> {
    let count = |matches: fn(&Location) -> bool| {
        report
            .discrepancies
            .iter()
            .filter(|d| matches(&d.location))
            .count()
    };
    vec![
        (
            "Metadata: the stored node key (against the pinned key when given), the journal \
             head, the format, the snapshot position, the indexes"
                .to_owned(),
            count(|l| matches!(l, Location::Meta)),
        ),
        (
            format!(
                "Journal: every record decodes, chains to the one before by hash and replays \
                 ({} records)",
                report.records
            ),
            count(|l| matches!(l, Location::JournalRecord { .. })),
        ),
        (
            format!(
                "Checkpoints: signatures and digests ({} verified)",
                report.checkpoints_verified
            ),
            count(|l| matches!(l, Location::Checkpoint { .. })),
        ),
        (
            format!(
                "Signed heads: signatures, and the records they sign ({} verified)",
                report.signed_heads_verified
            ),
            count(|l| matches!(l, Location::SignedHead { .. })),
        ),
        (
            format!(
                "Accounts: every stored balance equals the replayed one ({} accounts)",
                report.accounts
            ),
            count(|l| matches!(l, Location::Account { .. })),
        ),
        (
            format!(
                "Transfers: every stored transfer and pending status matches the journal ({} \
                 transfers, {} expiries)",
                report.transfers, report.expiries
            ),
            count(|l| matches!(l, Location::Transfer { .. })),
        ),
        (
            "Currencies: debits equal credits in every currency ledger".to_owned(),
            count(|l| matches!(l, Location::Ledger { .. })),
        ),
    ]
}

/// The ledger audit report.
pub(crate) fn ledger_audit_html(run: &LedgerAuditRun<'_>) -> anyhow::Result<String> {
    let report = run.report;
    let clean = report.is_clean();
    let total = (report.discrepancies.len() as u64).saturating_add(report.discrepancies_not_listed);
    let mut page = Page::new(
        &format!("Ledger audit of {}", run.data_dir.display()),
        &format!(
            "kakehashi ledger audit: the journal replayed offline, report made at {}",
            run.generated
        ),
    );
    if clean {
        page.banner(
            Verdict::Pass,
            "Result: clean. The audit found no discrepancy.",
        );
    } else {
        page.banner(
            Verdict::Fail,
            &format!("Result: {total} discrepancies (listed below)."),
        );
    }
    page.tiles(&[
        (report.records.to_string(), "journal records replayed"),
        (
            format!("{} of {}", report.last_signed_seq, report.records),
            "signed to record",
        ),
        (
            report.checkpoints_verified.to_string(),
            "checkpoints verified",
        ),
        (
            report.signed_heads_verified.to_string(),
            "signed heads verified",
        ),
        (total.to_string(), "discrepancies"),
    ]);

    page.heading("What was audited, with which key");
    let key_source = match &run.expected_key {
        Some(_) => "pinned with --expected-key; the stored key must equal it",
        None => {
            "the key stored in the ledger (no --expected-key): proves consistency, not whose \
             key it is"
        }
    };
    let mut facts = vec![
        ("ledger", Cell::Code(run.data_dir.display().to_string())),
        (
            "node key stored",
            Cell::Code(or_none(&report.verifying_key)),
        ),
    ];
    if let Some(expected) = &run.expected_key {
        facts.push(("node key expected", Cell::Code(expected.clone())));
    }
    facts.push((
        "signatures checked against",
        Cell::Text(key_source.to_owned()),
    ));
    facts.push(("journal head", Cell::Code(or_none(&report.head))));
    facts.push((
        "contents",
        Cell::Text(format!(
            "{} accounts, {} transfers, {} expiries",
            report.accounts, report.transfers, report.expiries
        )),
    ));
    facts.push(("command", Cell::Code(run.command.clone())));
    page.facts(facts);

    page.heading("Checks");
    let mut rows: Vec<Vec<Cell>> = checks(report)
        .into_iter()
        .map(|(check, found)| {
            vec![
                Cell::Text(check),
                Cell::Verdict(Verdict::of(found > 0)),
                Cell::Number(found.to_string()),
            ]
        })
        .collect();
    let unsigned = report.records_unsigned;
    let signed_verdict = match (unsigned, run.require_signed_head) {
        (0, _) => Verdict::Pass,
        (_, true) => Verdict::Fail,
        (_, false) => Verdict::Note,
    };
    rows.push(vec![
        Cell::Text(format!(
            "Signed to the head: records after the last signature ({unsigned} of {}; {})",
            report.records,
            if run.require_signed_head {
                "required to be none, --require-signed-head"
            } else {
                "listed, not a discrepancy without --require-signed-head"
            }
        )),
        Cell::Verdict(signed_verdict),
        Cell::Number(unsigned.to_string()),
    ]);
    page.table(&["check", "verdict", "findings"], rows);
    if report.discrepancies_not_listed > 0 {
        page.paragraph(&format!(
            "{} more discrepancies were found but not listed; they are not counted in the \
             checks above.",
            report.discrepancies_not_listed
        ));
    }

    page.heading("Debits and credits per currency");
    let panels: Vec<Panel> = report
        .ledgers
        .iter()
        .map(|totals| {
            let currency = crate::output::ledger_currency(totals.ledger);
            Panel {
                title: format!(
                    "ledger {} ({currency}), {} accounts",
                    totals.ledger, totals.accounts
                ),
                unit: format!("minor units of {currency}"),
                legend: ["debits".to_owned(), "credits".to_owned()],
                pairs: vec![
                    totals_pair("posted", &totals.debits_posted, &totals.credits_posted),
                    totals_pair("pending", &totals.debits_pending, &totals.credits_pending),
                ],
            }
        })
        .collect();
    if panels.is_empty() {
        page.paragraph("The ledger holds no currency yet.");
    } else {
        let svg = chart::paired_bars(&panels)?;
        page.chart(
            &svg,
            "Replayed totals of every currency ledger, in minor units: debits must equal \
             credits, posted and pending.",
        );
    }

    page.heading("Discrepancies");
    if report.discrepancies.is_empty() {
        page.paragraph("None.");
    } else {
        page.table(
            &["where", "what"],
            report
                .discrepancies
                .iter()
                .map(|d| {
                    vec![
                        Cell::Code(d.location.to_string()),
                        Cell::Text(d.detail.clone()),
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
    Ok(page.finish())
}

/// Debits beside credits; the totals are decimal strings (they may exceed u128), in the
/// audit's canonical form, so equal sums are equal strings.
fn totals_pair(label: &str, debits: &str, credits: &str) -> Pair {
    Pair {
        label: label.to_owned(),
        values: [plotted(debits), plotted(credits)],
        texts: [debits.to_owned(), credits.to_owned()],
        differs: debits != credits,
    }
}

/// A decimal as a bar's height (the bar is drawn to scale; its label states the exact value).
pub(super) fn plotted(decimal: &str) -> f64 {
    decimal
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .unwrap_or(0.0)
}

fn or_none(value: &str) -> String {
    if value.is_empty() {
        "(none stored)".to_owned()
    } else {
        value.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use kakehashi_ledger::{Discrepancy, LedgerTotals};

    use super::*;

    fn html(report: &AuditReport, require_signed_head: bool) -> String {
        ledger_audit_html(&LedgerAuditRun {
            data_dir: Path::new("data/<jp>"),
            report,
            expected_key: Some("ab".repeat(32)),
            require_signed_head,
            command: "kakehashi ledger audit".into(),
            generated: "2026-12-07T00:00:00Z".into(),
        })
        .expect("report")
    }

    #[test]
    fn a_clean_audit_shows_each_check_passing_and_the_totals_chart() {
        let report = AuditReport {
            records: 12,
            accounts: 3,
            transfers: 9,
            last_signed_seq: 12,
            checkpoints_verified: 1,
            signed_heads_verified: 2,
            verifying_key: "cd".repeat(32),
            ledgers: vec![LedgerTotals {
                ledger: 392,
                accounts: 3,
                debits_posted: "500".into(),
                credits_posted: "500".into(),
                debits_pending: "0".into(),
                credits_pending: "0".into(),
            }],
            ..AuditReport::default()
        };
        let html = html(&report, false);
        assert!(html.contains("Result: clean"), "{html}");
        assert_eq!(html.matches("class=\"verdict pass\"").count(), 8, "{html}");
        assert!(!html.contains("verdict fail"), "{html}");
        assert_eq!(html.matches("<svg").count(), 1);
        assert!(html.contains("ledger 392 (JPY), 3 accounts"), "{html}");
        assert!(html.contains("data/&lt;jp&gt;"), "{html}");
        assert!(html.contains(&"ab".repeat(32)), "the pinned key");
        assert!(html.contains(&"cd".repeat(32)), "the stored key");
    }

    #[test]
    fn each_discrepancy_fails_its_check_and_is_listed() {
        let mut report = AuditReport {
            records: 9,
            last_signed_seq: 7,
            records_unsigned: 2,
            discrepancies: vec![Discrepancy {
                location: Location::Account { id: "7".into() },
                detail: "balance <altered> & wrong".into(),
            }],
            ..AuditReport::default()
        };
        let text = html(&report, false);
        assert!(text.contains("Result: 1 discrepancies"), "{text}");
        assert_eq!(text.matches("class=\"verdict fail\"").count(), 1, "{text}");
        assert_eq!(
            text.matches("class=\"verdict note\"").count(),
            1,
            "unsigned, not required"
        );
        assert!(
            text.contains("balance &lt;altered&gt; &amp; wrong"),
            "{text}"
        );
        assert!(text.contains("<code>account 7</code>"), "{text}");
        report.require_signed_head();
        let text = html(&report, true);
        assert_eq!(text.matches("class=\"verdict fail\"").count(), 3, "{text}");
        assert!(text.contains("follow the last signed head"), "{text}");
    }
}
