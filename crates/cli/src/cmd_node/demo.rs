//! The devnet demo (`kakehashi devnet --demo`): payments both ways as real participants send
//! them (over the public gRPC API and TLS, through the participant flow, instructions signed
//! with the committed bank keys), then the outcomes against what each scenario expects, the
//! customer balances before and after, and the receipts verified offline.
//!
//! It passes (exit 0) only when every outcome is as expected, every receipt verifies and every
//! customer balance moved by exactly the settled amounts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use kakehashi_node::participant::{Participant, PaymentRequest, VerifiedReceipt};
use kakehashi_pki::mra::Mra;
use kakehashi_proto::pb;
use kakehashi_protocol::bank::{InstructionOptions, Order};
use kakehashi_protocol::money;
use kakehashi_protocol::status::{self, status_name};

use crate::client::{self, NodeClient};
use crate::output::{amount_text, reason_meaning, write_stdout, write_table};
use crate::payer::{self, Bank, Sent};

/// What the demo needs to act as the banks of both jurisdictions.
pub(super) struct Demo {
    pub(super) mra_path: PathBuf,
    pub(super) certs: PathBuf,
    pub(super) receipts: PathBuf,
    pub(super) jp_url: String,
    pub(super) sg_url: String,
}

/// How much a scenario pays.
#[derive(Clone, Copy)]
enum Amount {
    /// This many major units of the sending node's currency.
    Fixed(&'static str),
    /// One minor unit more than the debtor's available balance (to show AM04 whatever the
    /// balances are after earlier runs).
    AboveAvailable,
}

/// One payment the demo sends, and what should happen to it.
struct Scenario {
    /// The sending (debtor's) jurisdiction; the creditor is in the other one.
    from: &'static str,
    bank: &'static str,
    debtor: u128,
    creditor_bic: &'static str,
    creditor: u128,
    creditor_name: &'static str,
    amount: Amount,
    remittance: &'static str,
    /// `None` for a payment that settles, else the reason code it must be rejected with.
    expect: Option<&'static str>,
    /// What the scenario shows, for the table.
    note: &'static str,
}

/// The demo's payments: three JP→SG and two SG→JP that settle, then four that must be
/// rejected for four different reasons, each decided by a real check on a real input.
const SCENARIOS: &[Scenario] = &[
    Scenario {
        from: "JP",
        bank: "KKHAJPJ0",
        debtor: 1001,
        creditor_bic: "KKHASGS0",
        creditor: 2001,
        creditor_name: "Tan Wei Ming",
        amount: Amount::Fixed("25000"),
        remittance: "Birthday gift",
        expect: None,
        note: "settles",
    },
    Scenario {
        from: "JP",
        bank: "KKHBJPJ0",
        debtor: 1101,
        creditor_bic: "KKHBSGS0",
        creditor: 2101,
        creditor_name: "Nur Aisyah",
        amount: Amount::Fixed("120000"),
        remittance: "Rent March",
        expect: None,
        note: "settles",
    },
    Scenario {
        from: "JP",
        bank: "KKHAJPJ0",
        debtor: 1002,
        creditor_bic: "KKHASGS0",
        creditor: 2002,
        creditor_name: "Lim Logistics Pte Ltd",
        amount: Amount::Fixed("1500000"),
        remittance: "Invoice 2026-118",
        expect: None,
        note: "settles",
    },
    Scenario {
        from: "SG",
        bank: "KKHASGS0",
        debtor: 2001,
        creditor_bic: "KKHAJPJ0",
        creditor: 1001,
        creditor_name: "Aoki Kenji",
        amount: Amount::Fixed("150.00"),
        remittance: "Thank you",
        expect: None,
        note: "settles",
    },
    Scenario {
        from: "SG",
        bank: "KKHBSGS0",
        debtor: 2102,
        creditor_bic: "KKHBJPJ0",
        creditor: 1102,
        creditor_name: "Tanaka Hiroshi",
        amount: Amount::Fixed("80.50"),
        remittance: "Books",
        expect: None,
        note: "settles",
    },
    Scenario {
        from: "JP",
        bank: "KKHBJPJ0",
        debtor: 1102,
        creditor_bic: "KKHBSGS0",
        creditor: 2102,
        creditor_name: "Raj Kumar",
        amount: Amount::AboveAvailable,
        remittance: "More than he has",
        expect: Some("AM04"),
        note: "one yen more than the debtor has",
    },
    Scenario {
        from: "JP",
        bank: "KKHCJPJ0",
        debtor: 1101,
        creditor_bic: "KKHASGS0",
        creditor: 2001,
        creditor_name: "Tan Wei Ming",
        amount: Amount::Fixed("10000"),
        remittance: "Signed with a revoked key",
        expect: Some("DS0B"),
        note: "signed by a bank whose certificate is revoked",
    },
    Scenario {
        from: "SG",
        bank: "KKHASGS0",
        debtor: 2001,
        creditor_bic: "KKHAJPJ0",
        creditor: 1999,
        creditor_name: "Nobody",
        amount: Amount::Fixed("10.00"),
        remittance: "Wrong account number",
        expect: Some("AC01"),
        note: "to an account the JP ledger does not have",
    },
    Scenario {
        from: "JP",
        bank: "KKHAJPJ0",
        debtor: 1001,
        creditor_bic: "KKHASGS0",
        creditor: 2001,
        creditor_name: "Sanctioned Trading Co",
        amount: Amount::Fixed("5000"),
        remittance: "Screened",
        expect: Some("RR04"),
        note: "to a name on the sanctions list",
    },
];

/// One scenario's result.
struct Row<'a> {
    scenario: &'a Scenario,
    debtor_name: String,
    sent: Sent,
    /// The receipt of a settled payment, verified and written to a file, or why not.
    receipt: Option<Result<ReceiptRow, String>>,
}

struct ReceiptRow {
    signer: String,
    jurisdiction: String,
    clause: String,
    file: PathBuf,
}

impl Demo {
    pub(super) async fn run(&self) -> anyhow::Result<ExitCode> {
        let mra = Arc::new(client::load_mra(&self.mra_path)?);
        // The balances before and after are every account's: the operators' view. Each
        // payment is sent over its bank's own connection (`send`).
        let mut jp = self
            .connect_as(&mra, "JP", self.operator_files("JP"))
            .await?;
        let mut sg = self
            .connect_as(&mra, "SG", self.operator_files("SG"))
            .await?;
        std::fs::create_dir_all(&self.receipts)
            .with_context(|| format!("cannot create {}", self.receipts.display()))?;

        let before_jp = jp.balances(&[]).await?;
        let before_sg = sg.balances(&[]).await?;

        let mut rows = Vec::with_capacity(SCENARIOS.len());
        for scenario in SCENARIOS {
            let files = client::bank_tls_files(&self.certs, scenario.bank);
            let mut node = self.connect_as(&mra, scenario.from, files).await?;
            let operator = if scenario.from == "JP" {
                &mut jp
            } else {
                &mut sg
            };
            rows.push(self.send(&mra, &mut node, operator, scenario).await?);
        }

        let after_jp = jp.balances(&[]).await?;
        let after_sg = sg.balances(&[]).await?;

        let mut out = String::new();
        let mismatches = write_outcomes(&mut out, &rows);
        let _ = writeln!(out);
        let unreconciled = write_balances(&mut out, &rows, &before_jp, &after_jp, "JP")
            + write_balances(&mut out, &rows, &before_sg, &after_sg, "SG");
        let bad_receipts = write_receipts(&mut out, &rows);
        write_summary(&mut out, &rows, mismatches, unreconciled, bad_receipts);
        write_stdout(&out)?;
        Ok(if mismatches + unreconciled + bad_receipts == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }

    /// A connection to the `code` node presenting the chain and key `files`.
    async fn connect_as(
        &self,
        mra: &Arc<Mra>,
        code: &str,
        (cert, key): (PathBuf, PathBuf),
    ) -> anyhow::Result<NodeClient> {
        let url = if code == "JP" {
            &self.jp_url
        } else {
            &self.sg_url
        };
        let identity = client::read_identity(&cert, &key)?;
        client::connect(url, Arc::clone(mra), code, None, Some(identity)).await
    }

    /// The operator identity of the `code` node: `<certs>/<code>/operator.pem` and its key.
    fn operator_files(&self, code: &str) -> (PathBuf, PathBuf) {
        let dir = self.certs.join(code.to_ascii_lowercase());
        (dir.join("operator.pem"), dir.join("operator.key.pem"))
    }

    /// Sends one scenario's payment as its bank would and checks the receipt if it settled.
    async fn send<'a>(
        &self,
        mra: &Mra,
        node: &mut NodeClient,
        operator: &mut NodeClient,
        scenario: &'a Scenario,
    ) -> anyhow::Result<Row<'a>> {
        let dir = scenario.from.to_ascii_lowercase();
        let banks = self.certs.join(&dir).join("banks");
        let bank = Bank::load(
            &banks.join(format!("{}.pem", scenario.bank)),
            &banks.join(format!("{}.key.pem", scenario.bank)),
        )?;
        // Read now, not from the snapshot before the first payment: earlier scenarios may
        // have credited this account.
        // Through the operator: some scenarios debit an account of another bank than the
        // signing one, which that bank's own connection does not see.
        let current = operator.balances(&[scenario.debtor]).await?;
        let debtor = current
            .iter()
            .find(|b| b.account == scenario.debtor.to_string())
            .with_context(|| {
                format!(
                    "the {} node has no account {}; did the devnet configuration change?",
                    scenario.from, scenario.debtor
                )
            })?;
        let amount = match scenario.amount {
            Amount::Fixed(value) => pb::ActiveCurrencyAndAmount {
                currency: debtor
                    .posted_balance
                    .as_ref()
                    .map(|a| a.currency.clone())
                    .unwrap_or_default(),
                value: value.to_owned(),
            },
            Amount::AboveAvailable => above(debtor.available_balance.as_ref())?,
        };
        let request = PaymentRequest {
            uetr: payer::new_uetr()?,
            amount,
            counterparty: other(scenario.from).to_owned(),
            order: Order {
                debtor_account: scenario.debtor,
                debtor_name: debtor.name.clone(),
                creditor_agent_bic: scenario.creditor_bic.to_owned(),
                creditor_account: scenario.creditor,
                creditor_name: scenario.creditor_name.to_owned(),
                remittance_information: scenario.remittance.to_owned(),
            },
            options: InstructionOptions::default(),
        };
        let participant = Participant::new(mra, scenario.from);
        let now = client::now()?;
        let sent = payer::send_payment(node, &participant, &bank, &request, now).await?;
        let receipt = match &sent.receipt {
            Ok(None) => None,
            Ok(Some(verified)) => Some(self.keep_receipt(&sent.report, verified)),
            Err(e) => Some(Err(e.to_string())),
        };
        Ok(Row {
            scenario,
            debtor_name: debtor.name.clone(),
            sent,
            receipt,
        })
    }
}

impl Demo {
    /// Writes a verified receipt to the receipts directory, for `kakehashi receipt verify`.
    fn keep_receipt(
        &self,
        report: &pb::PaymentStatusReport,
        verified: &VerifiedReceipt,
    ) -> Result<ReceiptRow, String> {
        let signed = report.receipt.as_ref().ok_or("no receipt to write")?;
        let file = self
            .receipts
            .join(format!("{}.json", verified.receipt.uetr));
        payer::write_receipt_file(&file, signed).map_err(|e| format!("{e:#}"))?;
        let signer = &verified.signer;
        Ok(ReceiptRow {
            signer: signer.subject_cn().to_owned(),
            jurisdiction: signer.jurisdiction().to_owned(),
            clause: signer.verdict().clause().unwrap_or_default().to_owned(),
            file,
        })
    }
}

fn other(jurisdiction: &str) -> &'static str {
    if jurisdiction == "JP" { "SG" } else { "JP" }
}

/// One minor unit more than `available`.
fn above(
    available: Option<&pb::ActiveCurrencyAndAmount>,
) -> anyhow::Result<pb::ActiveCurrencyAndAmount> {
    let available = available.context("the node reported no available balance")?;
    let (currency, minor) = money::parse_amount(available)
        .map_err(|r| anyhow::anyhow!("the node reported a bad balance: {r}"))?;
    let more = minor
        .checked_add(1)
        .context("balance at the limit of u128")?;
    Ok(money::format_amount(currency, more))
}

/// The first eight hex digits of a UETR, enough to tell the demo's payments apart.
fn short(uetr: &str) -> String {
    uetr.chars().take(8).collect()
}

/// Whether a row ended as its scenario expected.
fn as_expected(row: &Row<'_>) -> bool {
    let status = status_name(row.sent.report.transaction_status());
    match row.scenario.expect {
        None => status == "ACSC" && matches!(row.receipt, Some(Ok(_))),
        Some(code) => status == "RJCT" && row.sent.report.status_reason_code == code,
    }
}

/// The payments table; returns how many outcomes differed from expectations.
fn write_outcomes(out: &mut String, rows: &[Row<'_>]) -> usize {
    let _ = writeln!(
        out,
        "Payments (sent as the banks would: quote, sign, submit over TLS)"
    );
    let header = [
        "#",
        "uetr",
        "route",
        "debtor",
        "creditor",
        "sent",
        "credited",
        "outcome",
        "expected?",
    ];
    let cells: Vec<[String; 9]> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let report = &row.sent.report;
            let name = status_name(report.transaction_status());
            let outcome = match name {
                "RJCT" => status::with_reason(name, &report.status_reason_code),
                "ACSC" => "ACSC settled".to_owned(),
                other => other.to_owned(),
            };
            let mark = if as_expected(row) {
                "✓".to_owned()
            } else {
                match row.scenario.expect {
                    None => "✗ expected ACSC".to_owned(),
                    Some(code) => format!("✗ expected RJCT {code}"),
                }
            };
            [
                (i + 1).to_string(),
                short(&report.uetr),
                format!("{}→{}", row.scenario.from, other(row.scenario.from)),
                format!(
                    "{} {} {}",
                    row.scenario.bank, row.scenario.debtor, row.debtor_name
                ),
                format!(
                    "{} {} {}",
                    row.scenario.creditor_bic, row.scenario.creditor, row.scenario.creditor_name
                ),
                amount_text(report.interbank_settlement_amount.as_ref()),
                amount_text(report.credited_amount.as_ref()),
                outcome,
                mark,
            ]
        })
        .collect();
    write_table(
        out,
        &header,
        &cells,
        &[true, false, false, false, false, true, true, false, false],
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Why the rejected ones were rejected (nothing moved for them):"
    );
    for (i, row) in rows.iter().enumerate() {
        let report = &row.sent.report;
        if status_name(report.transaction_status()) != "RJCT" {
            continue;
        }
        let by = if report.decided_by.is_empty() {
            format!("{} (at {})", row.scenario.from, row.sent.stage)
        } else {
            report.decided_by.clone()
        };
        let _ = writeln!(
            out,
            "  #{} {} ({}): {}",
            i + 1,
            report.status_reason_code,
            reason_meaning(&report.status_reason_code),
            row.scenario.note
        );
        let _ = writeln!(
            out,
            "       decided by {by}: {}",
            report.status_reason_detail
        );
    }
    rows.iter().filter(|r| !as_expected(r)).count()
}

/// Customer balances before and after on one ledger, and whether each moved by exactly what
/// the settled payments say; returns how many accounts did not.
fn write_balances(
    out: &mut String,
    rows: &[Row<'_>],
    before: &[pb::AccountBalance],
    after: &[pb::AccountBalance],
    jurisdiction: &str,
) -> usize {
    // The change each settled payment should have made, in minor units, by account.
    let mut expected: BTreeMap<String, i128> = BTreeMap::new();
    for row in rows {
        if status_name(row.sent.report.transaction_status()) != "ACSC" {
            continue;
        }
        let report = &row.sent.report;
        if row.scenario.from == jurisdiction {
            *expected.entry(row.scenario.debtor.to_string()).or_default() -=
                minor(report.interbank_settlement_amount.as_ref());
        } else {
            *expected
                .entry(row.scenario.creditor.to_string())
                .or_default() += minor(report.credited_amount.as_ref());
        }
    }
    let mut unreconciled = 0;
    let cells: Vec<[String; 7]> = before
        .iter()
        .filter(|b| b.kind == "customer")
        .map(|b| {
            let now = after.iter().find(|a| a.account == b.account);
            let was = minor(b.posted_balance.as_ref());
            let is = now.map_or(was, |a| minor(a.posted_balance.as_ref()));
            let change = is - was;
            let want = expected.get(&b.account).copied().unwrap_or(0);
            let mark = if change == want {
                "✓".to_owned()
            } else {
                unreconciled += 1;
                format!(
                    "✗ expected {}",
                    signed_text(b.posted_balance.as_ref(), want)
                )
            };
            [
                b.account.clone(),
                b.owner_bic.clone(),
                b.name.clone(),
                amount_text(b.posted_balance.as_ref()),
                now.map_or_else(
                    || "-".to_owned(),
                    |a| amount_text(a.posted_balance.as_ref()),
                ),
                signed_text(b.posted_balance.as_ref(), change),
                mark,
            ]
        })
        .collect();
    let _ = writeln!(
        out,
        "{jurisdiction} ledger, customer accounts (posted balances)"
    );
    write_table(
        out,
        &[
            "account",
            "bank",
            "name",
            "before",
            "after",
            "change",
            "reconciled?",
        ],
        &cells,
        &[false, false, false, true, true, true, false],
    );
    let _ = writeln!(out);
    unreconciled
}

/// Minor units of an amount the node reported (0 when absent or unreadable; the reconciliation
/// then flags the account).
fn minor(amount: Option<&pb::ActiveCurrencyAndAmount>) -> i128 {
    amount
        .and_then(|a| money::parse_amount(a).ok())
        .and_then(|(_, m)| i128::try_from(m).ok())
        .unwrap_or(0)
}

/// A signed change in the currency of `like`, e.g. `+217.02 SGD`, `-25000 JPY`, `0`.
fn signed_text(like: Option<&pb::ActiveCurrencyAndAmount>, change: i128) -> String {
    if change == 0 {
        return "0".to_owned();
    }
    let Some(currency) = like.map(|a| a.currency.as_str()).and_then(money::currency) else {
        return change.to_string();
    };
    let sign = if change < 0 { "-" } else { "+" };
    let amount = money::format_amount(currency, change.unsigned_abs());
    format!("{sign}{} {}", amount.value, amount.currency)
}

/// The receipts of the settled payments, verified offline; returns how many failed.
fn write_receipts(out: &mut String, rows: &[Row<'_>]) -> usize {
    let _ = writeln!(
        out,
        "Receipts (signed by the crediting node, verified offline under the MRA by the \
         debtor's jurisdiction)"
    );
    let mut failed = 0;
    for (i, row) in rows.iter().enumerate() {
        match &row.receipt {
            None => {}
            Some(Ok(r)) => {
                let _ = writeln!(
                    out,
                    "  #{} {}  ✓ signed by {} ({}), recognized by {} under {}",
                    i + 1,
                    short(&row.sent.report.uetr),
                    r.signer,
                    r.jurisdiction,
                    row.scenario.from,
                    r.clause
                );
                let _ = writeln!(out, "     {}", r.file.display());
            }
            Some(Err(why)) => {
                failed += 1;
                let _ = writeln!(
                    out,
                    "  #{} {}  ✗ does not verify: {why}",
                    i + 1,
                    short(&row.sent.report.uetr)
                );
            }
        }
    }
    let first = rows.iter().find_map(|r| match &r.receipt {
        Some(Ok(receipt)) => Some((r.scenario.from, &receipt.file)),
        _ => None,
    });
    if let Some((relying, file)) = first {
        let _ = writeln!(
            out,
            "  Check one yourself: kakehashi receipt verify {} --mra certs/mra.toml --relying \
             {relying}",
            file.display()
        );
    }
    let _ = writeln!(out);
    failed
}

fn write_summary(
    out: &mut String,
    rows: &[Row<'_>],
    mismatches: usize,
    unreconciled: usize,
    bad_receipts: usize,
) {
    let settled = |from: &str| {
        rows.iter()
            .filter(|r| {
                r.scenario.from == from && status_name(r.sent.report.transaction_status()) == "ACSC"
            })
            .count()
    };
    let rejected = rows
        .iter()
        .filter(|r| status_name(r.sent.report.transaction_status()) == "RJCT")
        .count();
    let receipts = rows
        .iter()
        .filter(|r| matches!(r.receipt, Some(Ok(_))))
        .count();
    if mismatches + unreconciled + bad_receipts == 0 {
        let _ = writeln!(
            out,
            "All as expected: {} payments settled ({} JP→SG, {} SG→JP) with their {receipts} \
             receipts verified, {rejected} were rejected with nothing moved, and every balance \
             changed by exactly the settled amounts.",
            settled("JP") + settled("SG"),
            settled("JP"),
            settled("SG"),
        );
    } else {
        let _ = writeln!(
            out,
            "NOT as expected: {mismatches} payment outcome(s) differed, {unreconciled} \
             balance(s) did not reconcile and {bad_receipts} receipt(s) did not verify (marked \
             ✗ above)."
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(currency: &str, value: &str) -> pb::ActiveCurrencyAndAmount {
        pb::ActiveCurrencyAndAmount {
            currency: currency.into(),
            value: value.into(),
        }
    }

    fn row<'a>(
        scenario: &'a Scenario,
        status: pb::TransactionStatus,
        code: &str,
        receipt: bool,
    ) -> Row<'a> {
        let report = pb::PaymentStatusReport {
            uetr: "0b6c1c52-6a0e-4c39-9a3e-2f7e1c0d9b11".into(),
            transaction_status: status.into(),
            status_reason_code: code.into(),
            interbank_settlement_amount: Some(amount("JPY", "25000")),
            credited_amount: (status == pb::TransactionStatus::Acsc)
                .then(|| amount("SGD", "216.95")),
            ..pb::PaymentStatusReport::default()
        };
        Row {
            scenario,
            debtor_name: "Aoki Kenji".into(),
            sent: Sent {
                quote: None,
                report,
                stage: "submit",
                receipt: Ok(None),
            },
            receipt: receipt.then(|| {
                Ok(ReceiptRow {
                    signer: "SG receipts".into(),
                    jurisdiction: "SG".into(),
                    clause: "MRA §recognition.JP-recognizes-SG".into(),
                    file: PathBuf::from("r.json"),
                })
            }),
        }
    }

    #[test]
    fn an_outcome_is_as_expected_only_with_the_expected_status_code_and_receipt() {
        let settles = &SCENARIOS[0];
        let am04 = SCENARIOS.iter().find(|s| s.expect == Some("AM04")).unwrap();
        use pb::TransactionStatus::{Acsc, Pdng, Rjct};
        assert!(as_expected(&row(settles, Acsc, "", true)));
        assert!(!as_expected(&row(settles, Acsc, "", false)), "no receipt");
        assert!(!as_expected(&row(settles, Pdng, "", false)));
        assert!(!as_expected(&row(settles, Rjct, "AM04", false)));
        assert!(as_expected(&row(am04, Rjct, "AM04", false)));
        assert!(!as_expected(&row(am04, Rjct, "AC01", false)), "wrong code");
        assert!(!as_expected(&row(am04, Acsc, "", true)), "settled");
    }

    #[test]
    fn balances_reconcile_only_when_they_moved_by_the_settled_amounts() {
        let scenario = &SCENARIOS[0];
        assert_eq!((scenario.from, scenario.debtor), ("JP", 1001));
        let rows = [row(scenario, pb::TransactionStatus::Acsc, "", true)];
        let balance = |account: &str, value: &str| pb::AccountBalance {
            account: account.into(),
            kind: "customer".into(),
            posted_balance: Some(amount("JPY", value)),
            ..pb::AccountBalance::default()
        };
        let before = [balance("1001", "100000"), balance("1002", "5000")];
        let mut out = String::new();
        let good = [balance("1001", "75000"), balance("1002", "5000")];
        assert_eq!(
            write_balances(&mut out, &rows, &before, &good, "JP"),
            0,
            "{out}"
        );
        let debited_twice = [balance("1001", "50000"), balance("1002", "5000")];
        assert_eq!(
            write_balances(&mut out, &rows, &before, &debited_twice, "JP"),
            1
        );
        let stray = [balance("1001", "75000"), balance("1002", "4999")];
        assert_eq!(write_balances(&mut out, &rows, &before, &stray, "JP"), 1);
        assert!(out.contains("✗ expected -25000 JPY"), "{out}");
    }

    #[test]
    fn scenarios_cover_both_directions_and_four_rejection_reasons() {
        let settles = |from: &str| {
            SCENARIOS
                .iter()
                .filter(|s| s.from == from && s.expect.is_none())
                .count()
        };
        assert!(settles("JP") >= 3);
        assert!(settles("SG") >= 2);
        let mut codes: Vec<&str> = SCENARIOS.iter().filter_map(|s| s.expect).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes, ["AC01", "AM04", "DS0B", "RR04"]);
    }

    #[test]
    fn signed_change_uses_the_currency_minor_unit() {
        let sgd = pb::ActiveCurrencyAndAmount {
            currency: "SGD".into(),
            value: "1.00".into(),
        };
        assert_eq!(signed_text(Some(&sgd), 21702), "+217.02 SGD");
        assert_eq!(signed_text(Some(&sgd), -5), "-0.05 SGD");
        assert_eq!(signed_text(Some(&sgd), 0), "0");
    }

    #[test]
    fn above_available_is_one_minor_unit_more() {
        let jpy = pb::ActiveCurrencyAndAmount {
            currency: "JPY".into(),
            value: "500000".into(),
        };
        assert_eq!(above(Some(&jpy)).unwrap().value, "500001");
        let sgd = pb::ActiveCurrencyAndAmount {
            currency: "SGD".into(),
            value: "12.30".into(),
        };
        assert_eq!(above(Some(&sgd)).unwrap().value, "12.31");
    }
}
