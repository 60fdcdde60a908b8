//! What the commands print with: aligned tables, amounts and times as text, what reason codes
//! mean, the signer of a verified object, and the exit code of a payment still in doubt. Status
//! names come from `kakehashi_protocol::status`, the one spelling the node and the load
//! generator use too.

use std::fmt::Write as _;

use kakehashi_pki::Check;
use kakehashi_pki::{Outcome, UnixTime};
use kakehashi_proto::pb;
use kakehashi_protocol::money::{self, Currency};
use kakehashi_protocol::reason::ReasonCode;
use kakehashi_protocol::signed::Signer;
use serde::Serialize;

/// Exit code of a payment still in doubt (PDNG): neither success (0) nor a refusal (1), and
/// not an error (2); scripts retry `kakehashi status UETR` until it is 0 or 1.
pub(crate) const EXIT_PENDING: u8 = 3;

/// Writes `text` to standard output and flushes it (a closed pipe is an error the binary's
/// edge turns into exit 0).
pub(crate) fn write_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(())
}

/// Writes an aligned text table; `right[i]` right-aligns column `i`.
pub(crate) fn write_table<const N: usize>(
    out: &mut String,
    header: &[&str; N],
    rows: &[[String; N]],
    right: &[bool; N],
) {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut text = String::from(" ");
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            text.push(' ');
            if right[i] {
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
            } else {
                text.push_str(cell);
                text.push_str(&" ".repeat(pad));
            }
            text.push(' ');
        }
        text.trim_end().to_owned()
    };
    let _ = writeln!(out, "{}", line(header.to_vec()));
    let rule: Vec<String> = widths.iter().map(|w| "─".repeat(*w)).collect();
    let _ = writeln!(out, "{}", line(rule.iter().map(String::as_str).collect()));
    for row in rows {
        let _ = writeln!(out, "{}", line(row.iter().map(String::as_str).collect()));
    }
}

/// `"12.30 SGD"`, or `-` when absent.
pub(crate) fn amount_text(a: Option<&pb::ActiveCurrencyAndAmount>) -> String {
    a.map_or_else(|| "-".to_owned(), |a| format!("{} {}", a.value, a.currency))
}

/// `"12.30 SGD"` from minor units.
pub(crate) fn minor_text(currency: &Currency, minor: u128) -> String {
    amount_text(Some(&money::format_amount(currency, minor)))
}

/// An RFC 3339 time, or `-` when absent.
pub(crate) fn time_text(t: Option<&prost_types::Timestamp>) -> String {
    t.map_or_else(|| "-".to_owned(), |t| UnixTime(t.seconds).to_rfc3339())
}

/// What a reason code means, for people.
pub(crate) fn reason_meaning(code: &str) -> &'static str {
    ReasonCode::parse(code).map_or("unknown reason code", ReasonCode::meaning)
}

/// The legend of the check lists `cert verify` and `receipt verify` print.
pub(crate) const CHECKS_HEADING: &str =
    "checks (✓ pass, ✗ fail, · not applicable; [n] is the position on the path)";

/// One check of a verdict: its mark, the position of the certificate it is about, what was
/// checked, the values compared and the rule.
pub(crate) fn check_line(check: &Check) -> String {
    let on = check
        .cert
        .as_ref()
        .map_or_else(|| "   ".to_owned(), |c| format!("[{}]", c.position));
    format!(
        "  {} {on} {}: {}  ({})",
        check_mark(check.outcome),
        check.name,
        check.detail,
        check.rule
    )
}

/// Check marks: pass, fail, not applicable.
pub(crate) fn check_mark(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Pass => "✓",
        Outcome::Fail => "✗",
        Outcome::NotApplicable => "·",
    }
}

/// Who signed a verified quote or receipt, as JSON output shows it.
#[derive(Serialize)]
pub(crate) struct SignerJson {
    subject_cn: String,
    jurisdiction: String,
    leaf_sha256: String,
    clause: Option<String>,
}

impl SignerJson {
    pub(crate) fn new(signer: &Signer) -> Self {
        Self {
            subject_cn: signer.subject_cn().to_owned(),
            jurisdiction: signer.jurisdiction().to_owned(),
            leaf_sha256: hex::encode(signer.leaf_sha256()),
            clause: signer.verdict().clause().map(str::to_owned),
        }
    }
}

/// The name of a currency ledger: its ISO 4217 alphabetic code, or `#N` for one the table does
/// not know.
pub(crate) fn ledger_currency(ledger: u32) -> String {
    // A ledger is an ISO 4217 numeric code; one the table does not know prints as a number.
    u16::try_from(ledger)
        .ok()
        .and_then(money::currency_by_numeric)
        .map_or_else(|| format!("#{ledger}"), |c| c.alpha.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies_are_named_from_the_iso_4217_table() {
        assert_eq!(ledger_currency(392), "JPY");
        assert_eq!(ledger_currency(764), "THB");
        assert_eq!(ledger_currency(1), "#1");
        assert_eq!(ledger_currency(70_000), "#70000");
    }

    #[test]
    fn table_aligns_columns_and_right_aligns_amounts() {
        let mut out = String::new();
        let rows = [
            ["1".to_owned(), "5.00 SGD".to_owned()],
            ["1001".to_owned(), "12345.67 SGD".to_owned()],
        ];
        write_table(&mut out, &["account", "balance"], &rows, &[false, true]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4);
        let end = lines[0].chars().count();
        assert_eq!(lines[2].chars().count(), end);
        assert_eq!(lines[3].chars().count(), end);
        assert!(lines[2].ends_with(" 5.00 SGD"));
        assert!(lines[2].starts_with("  1 "));
    }
}
