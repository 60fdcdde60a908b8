//! What `replay` reports: one result per line (the `--out` JSON Lines), the table, the problems,
//! the counts and the exit code.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use kakehashi_ops::load::percentile;
use kakehashi_ops::replay::{LineResult, LineStatus};

use crate::output::{EXIT_PENDING, reason_meaning, write_table};

/// Files with at most this many lines get a table row per line; longer ones list only the
/// lines that were not as expected.
const TABLE_ROWS_MAX: usize = 200;

/// At most this many problem lines are listed in the summary (all are in `--out`).
const PROBLEMS_SHOWN_MAX: usize = 50;

/// A result as its `--out` line.
fn json(r: &LineResult) -> ResultJson<'_> {
    let some = |text: &str| (!text.is_empty()).then(|| text.to_owned());
    ResultJson {
        line: r.line,
        uetr: &r.uetr,
        end_to_end_id: &r.end_to_end_id,
        route: &r.route,
        status: r.status.as_str(),
        reason: some(&r.reason),
        detail: &r.detail,
        decided_by: some(&r.decided_by),
        stage: r.stage,
        decided_earlier: r.earlier,
        resubmission_answer: r.resubmission_answer.as_deref(),
        debited: r.debited.as_deref(),
        credited: r.credited.as_deref(),
        expected: r.expect.map(|e| e.to_string()),
        met: r.met,
        latency_ms: (r.latency.as_secs_f64() * 1e6).round() / 1e3,
        receipt: r.receipt.as_ref(),
        receipt_problem: r.receipt_problem.as_deref(),
    }
}

/// One line of `--out`, members in this order.
#[derive(serde::Serialize)]
struct ResultJson<'a> {
    line: usize,
    uetr: &'a str,
    end_to_end_id: &'a str,
    route: &'a str,
    status: &'a str,
    reason: Option<String>,
    detail: &'a str,
    decided_by: Option<String>,
    stage: &'a str,
    decided_earlier: bool,
    resubmission_answer: Option<&'a str>,
    debited: Option<&'a str>,
    credited: Option<&'a str>,
    expected: Option<String>,
    met: Option<bool>,
    latency_ms: f64,
    receipt: Option<&'a serde_json::Value>,
    receipt_problem: Option<&'a str>,
}

pub(super) fn write_results(path: &Path, results: &[LineResult]) -> anyhow::Result<()> {
    let mut text = String::new();
    for r in results {
        text.push_str(&serde_json::to_string(&json(r))?);
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

/// Writes the table and summary; returns the exit code.
pub(super) fn summary(out: &mut String, results: &[LineResult], wall: Duration) -> ExitCode {
    let _ = writeln!(out);
    write_line_table(out, results);
    write_problems(out, results);
    write_counts(out, results, wall);
    let pending = results
        .iter()
        .filter(|r| r.status == LineStatus::Pdng)
        .count();
    let bad = results
        .iter()
        .filter(|r| !r.is_fine() && r.status != LineStatus::Pdng)
        .count();
    if bad > 0 {
        let _ = writeln!(
            out,
            "NOT as expected: {bad} line(s) (marked ✗){}",
            if pending > 0 {
                format!(", and {pending} still PDNG")
            } else {
                String::new()
            }
        );
        ExitCode::from(1)
    } else if pending > 0 {
        let _ = writeln!(
            out,
            "In doubt: {pending} payment(s) still PDNG; the nodes resolve them — run the file \
             again later to learn the outcome (nothing is paid twice)"
        );
        ExitCode::from(EXIT_PENDING)
    } else {
        let _ = writeln!(out, "All {} line(s) as expected.", results.len());
        ExitCode::SUCCESS
    }
}

/// A row per line, or for a long file a row per line that was not as expected.
fn write_line_table(out: &mut String, results: &[LineResult]) {
    let rows: Vec<&LineResult> = if results.len() <= TABLE_ROWS_MAX {
        results.iter().collect()
    } else {
        results.iter().filter(|r| !r.is_fine()).collect()
    };
    if !rows.is_empty() {
        let cells: Vec<[String; 7]> = rows
            .iter()
            .map(|r| {
                let outcome = if r.earlier {
                    format!("{} (earlier run)", r.outcome())
                } else {
                    r.outcome()
                };
                let expected = match (r.expect, r.met) {
                    (Some(e), Some(true)) => format!("{e} ✓"),
                    (Some(e), Some(false)) => format!("{e} ✗"),
                    (Some(e), None) => format!("{e} ?"),
                    (None, _) if r.is_fine() => "-".to_owned(),
                    (None, _) => "- ✗".to_owned(),
                };
                [
                    r.line.to_string(),
                    r.uetr.chars().take(8).collect(),
                    r.route.clone(),
                    r.debited.clone().unwrap_or_else(|| "-".to_owned()),
                    r.credited.clone().unwrap_or_else(|| "-".to_owned()),
                    outcome,
                    expected,
                ]
            })
            .collect();
        write_table(
            out,
            &[
                "line", "uetr", "route", "debited", "credited", "outcome", "expected",
            ],
            &cells,
            &[true, false, false, true, true, false, false],
        );
        let _ = writeln!(out);
    }
}

/// The rejected, failed and unexpected lines, with why.
fn write_problems(out: &mut String, results: &[LineResult]) {
    let problems: Vec<&LineResult> = results
        .iter()
        .filter(|r| !r.is_fine() || r.status == LineStatus::Rjct)
        .collect();
    if !problems.is_empty() {
        let _ = writeln!(out, "Rejected, failed or unexpected:");
        for r in problems.iter().take(PROBLEMS_SHOWN_MAX) {
            let meaning = if r.reason.is_empty() {
                String::new()
            } else {
                format!(" ({})", reason_meaning(&r.reason))
            };
            let mark = if r.is_fine() { "" } else { "✗ " };
            let _ = writeln!(
                out,
                "  {mark}line {} {}{meaning}: {}",
                r.line,
                r.outcome(),
                r.detail
            );
            if let Some(problem) = &r.receipt_problem {
                let _ = writeln!(out, "       receipt: {problem}");
            }
            if let (Some(e), Some(false)) = (r.expect, r.met) {
                let _ = writeln!(out, "       expected {e}");
            }
        }
        if problems.len() > PROBLEMS_SHOWN_MAX {
            let _ = writeln!(
                out,
                "  ... and {} more (see --out)",
                problems.len() - PROBLEMS_SHOWN_MAX
            );
        }
        let _ = writeln!(out);
    }
}

/// Outcomes by status and reason, expectations, throughput and latency.
fn write_counts(out: &mut String, results: &[LineResult], wall: Duration) {
    let mut by_outcome: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for r in results {
        let entry = by_outcome.entry(r.outcome()).or_default();
        entry.0 += 1;
        if r.earlier {
            entry.1 += 1;
        }
    }
    let _ = writeln!(out, "Outcomes");
    for (outcome, (count, earlier)) in &by_outcome {
        let note = if *earlier > 0 {
            format!(
                "  ({earlier} decided by an earlier run: the node answered DUPL and moved nothing)"
            )
        } else {
            String::new()
        };
        let _ = writeln!(out, "  {outcome:<12} {count:>7}{note}");
    }
    let met = results.iter().filter(|r| r.met == Some(true)).count();
    let unmet = results.iter().filter(|r| r.met == Some(false)).count();
    let undecided = results
        .iter()
        .filter(|r| r.expect.is_some() && r.met.is_none())
        .count();
    let without = results.iter().filter(|r| r.expect.is_none()).count();
    let _ = writeln!(
        out,
        "Expectations  {met} met, {unmet} not met, {undecided} undecided (PDNG), {without} \
         line(s) without one"
    );
    let answered = results.iter().filter(|r| r.status.is_decided()).count();
    let secs = wall.as_secs_f64();
    let rate = if secs > 0.0 {
        answered as f64 / secs
    } else {
        0.0
    };
    let _ = writeln!(
        out,
        "Throughput    {answered} payment(s) decided in {secs:.2} s: {rate:.1} payments/s"
    );
    let mut latencies: Vec<Duration> = results.iter().map(|r| r.latency).collect();
    latencies.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let _ = writeln!(
        out,
        "Latency       p50 {:.1} ms, p99 {:.1} ms (per line: quote, sign, submit, answer)",
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0))
    );
}

#[cfg(test)]
mod tests {
    use kakehashi_ops::replay::Expect;

    use super::*;

    fn result(status: &str, reason: &str, expect: Option<Expect>, met: Option<bool>) -> LineResult {
        let status = match status {
            "ACSC" => LineStatus::Acsc,
            "RJCT" => LineStatus::Rjct,
            "PDNG" => LineStatus::Pdng,
            _ => LineStatus::Error,
        };
        LineResult {
            status,
            reason: reason.into(),
            expect,
            met,
            ..LineResult::default()
        }
    }

    #[test]
    fn a_line_without_expectation_is_fine_when_answered() {
        assert!(result("ACSC", "", None, None).is_fine());
        assert!(result("RJCT", "AM04", None, None).is_fine());
        assert!(!result("ERROR", "", None, None).is_fine());
        assert!(!result("PDNG", "", None, None).is_fine());
        let mut no_receipt = result("ACSC", "", None, None);
        no_receipt.receipt_problem = Some("x".into());
        assert!(!no_receipt.is_fine());
    }

    #[test]
    fn exit_codes_rank_failures_over_pending_over_success() {
        let ok = result("ACSC", "", Some(Expect::Settled), Some(true));
        let unmet = result("ACSC", "", Some(Expect::Rejected(None)), Some(false));
        let pending = result("PDNG", "", Some(Expect::Settled), None);
        let code = |rs: &[LineResult]| summary(&mut String::new(), rs, Duration::from_secs(1));
        assert_eq!(code(std::slice::from_ref(&ok)), ExitCode::SUCCESS);
        assert_eq!(code(&[ok.clone(), pending.clone()]), ExitCode::from(3));
        assert_eq!(code(&[ok, pending, unmet]), ExitCode::from(1));
    }
}
