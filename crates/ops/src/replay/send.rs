//! Sending a validated transaction file to running nodes as their banks would, and following
//! each payment to an outcome: what `kakehashi replay` and the test kit share.
//!
//! Every line takes the participant flow (`kakehashi_node::participant`): quote, verify the
//! quote under the agreement, sign, submit, verify the receipt. Lines that share a UETR run
//! one after the other in file order; the others run `concurrency` at a time. A resubmission
//! answered DUPL is looked up: when the UETR's payment is this line's (same end-to-end id and
//! amount), its earlier outcome is the line's. A submission without an answer is asked about,
//! and reported PDNG when that fails too: unknown is never "not sent".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kakehashi_node::Clock;
use kakehashi_node::participant::{
    Answer, Participant, PayError, ReceiptError, Refusal, Step, VerifiedReceipt,
};
use kakehashi_pki::mra::Mra;
use kakehashi_proto::pb;
use kakehashi_proto::pb::payments_client::PaymentsClient;
use kakehashi_protocol::bank::Bank;
use kakehashi_protocol::instruction::Uetr;
use kakehashi_protocol::reason::ReasonCode;
use kakehashi_protocol::receipt::ReceiptFile;
use kakehashi_protocol::status::{self, status_name};
use tonic::transport::Channel;

use super::{ERRORS_MAX, Expect, LineError, Payment, request};
use crate::load;

/// How often a PDNG payment's status is asked for while waiting.
const PENDING_POLL: Duration = Duration::from_millis(200);

/// How a line ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LineStatus {
    /// ACSC: settled on both ledgers.
    Acsc,
    /// RJCT: refused, nothing moved.
    Rjct,
    /// PDNG: in doubt; the nodes resolve it, the outcome is not known yet.
    Pdng,
    /// No answer before anything was submitted, or a quote that could not be trusted
    /// (nothing was signed): the line has no outcome.
    #[default]
    Error,
}

impl LineStatus {
    /// `ACSC`, `RJCT`, `PDNG`, `ERROR`, as reports print it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Acsc => "ACSC",
            Self::Rjct => "RJCT",
            Self::Pdng => "PDNG",
            Self::Error => "ERROR",
        }
    }

    /// Whether the payment's outcome is known (ACSC or RJCT).
    pub fn is_decided(self) -> bool {
        matches!(self, Self::Acsc | Self::Rjct)
    }

    fn of(report: &pb::PaymentStatusReport) -> Self {
        match report.transaction_status() {
            pb::TransactionStatus::Acsc => Self::Acsc,
            pb::TransactionStatus::Rjct => Self::Rjct,
            _ => Self::Pdng,
        }
    }
}

impl std::fmt::Display for LineStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A line's result judged against its expectation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// As expected; or, without an expectation, answered (ACSC or RJCT) with a receipt that
    /// verified.
    Fine,
    /// Decided, and not as expected (or a settled payment's receipt did not verify).
    NotMet,
    /// The outcome is unknown: still PDNG, or no answer at all (ERROR).
    Unknown,
}

/// A line's outcome.
#[derive(Clone, Debug, Default)]
pub struct LineResult {
    /// 1-based line number (for pacs.008 input, the transaction's number across the run).
    pub line: usize,
    /// The payment's UETR.
    pub uetr: String,
    /// Its end-to-end id.
    pub end_to_end_id: String,
    /// `sending→receiving`.
    pub route: String,
    /// How it ended.
    pub status: LineStatus,
    /// The ISO 20022 reason code of a refusal (empty otherwise).
    pub reason: String,
    /// The node's explanation, or why there is no outcome.
    pub detail: String,
    /// The jurisdiction whose node decided.
    pub decided_by: String,
    /// Which call decided: quote, submit, status (a PDNG resolved by asking).
    pub stage: &'static str,
    /// The node answered DUPL and the UETR's payment is this line's: the outcome is that
    /// payment's, decided by an earlier run (or an earlier identical line).
    pub earlier: bool,
    /// What the node answered to this submission when `earlier` (RJCT DUPL).
    pub resubmission_answer: Option<String>,
    /// What the debtor paid, `"25000 JPY"`.
    pub debited: Option<String>,
    /// What the creditor got.
    pub credited: Option<String>,
    /// A settled payment's receipt, as a receipt file (JSON).
    pub receipt: Option<serde_json::Value>,
    /// Why a settled payment's receipt proves nothing, when it does not verify.
    pub receipt_problem: Option<String>,
    /// What the line expected.
    pub expect: Option<Expect>,
    /// `None` while undecided (PDNG, ERROR without expectation) or without expectation.
    pub met: Option<bool>,
    /// From the first call to the outcome.
    pub latency: Duration,
}

impl LineResult {
    /// `ACSC`, `RJCT AM04`, ...
    pub fn outcome(&self) -> String {
        status::with_reason(self.status.as_str(), &self.reason)
    }

    /// Fine: as expected, or answered when nothing was expected.
    pub fn is_fine(&self) -> bool {
        self.verdict() == Verdict::Fine
    }

    /// The result against the line's expectation.
    pub fn verdict(&self) -> Verdict {
        match self.met {
            Some(true) => Verdict::Fine,
            Some(false) if self.status.is_decided() => Verdict::NotMet,
            Some(false) => Verdict::Unknown,
            None if !self.status.is_decided() => Verdict::Unknown,
            None if self.receipt_problem.is_some() => Verdict::NotMet,
            None => Verdict::Fine,
        }
    }
}

/// A connected `Payments` client and the address it reached, for messages.
#[derive(Clone, Debug)]
pub struct Connection {
    /// The client, presenting the bank's participant-TLS identity.
    pub payments: PaymentsClient<Channel>,
    /// The node's URL.
    pub url: String,
}

/// Turns a flow error of a line into the detail its ERROR result carries; the node's URL is
/// the first argument.
pub type DescribeError = fn(&str, PayError) -> String;

/// What the lines need to be sent.
pub struct Sender {
    /// The agreement quotes and receipts are verified under.
    pub mra: Arc<Mra>,
    /// One connection per sending jurisdiction and debtor agent BIC, presenting that bank's
    /// participant-TLS identity (a node takes an instruction only from its debtor agent).
    pub nodes: BTreeMap<(String, String), Connection>,
    /// The signing banks; each line's is given by index to [`Sender::send`].
    pub banks: Vec<Bank>,
    /// How long to keep asking about a payment still PDNG before reporting it as such.
    pub pending_wait: Duration,
    /// The clock instructions are dated and receipts verified with.
    pub clock: Arc<dyn Clock>,
    /// Called once per line when it has its result (a progress bar).
    pub on_line: Arc<dyn Fn() + Send + Sync>,
    /// How an error of the flow reads in a result's detail.
    pub describe_error: DescribeError,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("nodes", &self.nodes.keys().collect::<Vec<_>>())
            .field("banks", &self.banks.len())
            .field("pending_wait", &self.pending_wait)
            .finish_non_exhaustive()
    }
}

/// The default [`DescribeError`]: the error and the node.
pub fn describe_error(url: &str, error: PayError) -> String {
    format!("{error} (node {url})")
}

/// A replay run that failed as a whole (a task lost); a line's failure is its result.
#[derive(Debug, thiserror::Error)]
#[error("replay: {0}")]
pub struct SendError(String);

impl Sender {
    /// Sends every payment, `bank_of[i]` the index in [`Sender::banks`] of payment `i`'s
    /// signer, and returns the results in file order. Lines sharing a UETR form a chain run
    /// in file order; chains run concurrently, `concurrency` (at least 1) at a time.
    pub async fn send(
        self: &Arc<Self>,
        payments: Vec<Payment>,
        bank_of: Vec<usize>,
        concurrency: usize,
    ) -> Result<Vec<LineResult>, SendError> {
        if bank_of.len() != payments.len() || bank_of.iter().any(|b| *b >= self.banks.len()) {
            return Err(SendError(
                "every payment needs the index of its signing bank".to_owned(),
            ));
        }
        let chains = chains(&payments);
        let payments = Arc::new(payments);
        let bank_of = Arc::new(bank_of);
        let window = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
        let mut tasks = Vec::with_capacity(chains.len());
        for chain in chains {
            let permit = Arc::clone(&window)
                .acquire_owned()
                .await
                .map_err(|_| SendError("the concurrency window closed".to_owned()))?;
            let (shared, payments, bank_of) = (
                Arc::clone(self),
                Arc::clone(&payments),
                Arc::clone(&bank_of),
            );
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::with_capacity(chain.len());
                for index in chain {
                    let payment = &payments[index];
                    let bank = &shared.banks[bank_of[index]];
                    out.push((index, shared.send_line(payment, bank).await));
                    (shared.on_line)();
                }
                drop(permit);
                out
            }));
        }
        let mut results: Vec<Option<LineResult>> = vec![None; payments.len()];
        for task in tasks {
            let done = task
                .await
                .map_err(|e| SendError(format!("a replay task failed: {e}")))?;
            for (index, result) in done {
                results[index] = Some(result);
            }
        }
        Ok(results.into_iter().flatten().collect())
    }

    /// Sends one line's payment and follows it to an outcome. Never fails: a call that gets no
    /// answer before anything was submitted is an ERROR outcome; a submission whose fate is
    /// unknown is PDNG.
    async fn send_line(&self, payment: &Payment, bank: &Bank) -> LineResult {
        let started = Instant::now();
        let mut result = LineResult {
            line: payment.line,
            uetr: payment.uetr.to_string(),
            end_to_end_id: payment.end_to_end_id.clone(),
            route: route(payment),
            expect: payment.expect,
            stage: "quote",
            ..LineResult::default()
        };
        let key = (payment.sending.clone(), payment.debtor_agent.clone());
        let Some(node) = self.nodes.get(&key) else {
            return errored(result, started, format!("no node for {}", payment.sending));
        };
        let mut node = node.clone();
        let participant = Participant::new(self.mra.as_ref(), &payment.sending);
        let (direct, mut receipt) = match self
            .pay_line(&participant, &mut node, payment, bank, &mut result)
            .await
        {
            Ok(answer) => answer,
            Err(detail) => return errored(result, started, detail),
        };
        let direct_status = (
            status_name(direct.transaction_status()),
            direct.status_reason_code.clone(),
        );
        let mut report = direct.clone();
        // A DUPL refusal whose payment could not be asked about yet: its outcome is unknown.
        let mut dupl_unasked = false;
        // A known UETR: DUPL. If it is this very payment, report its outcome (decided earlier).
        if direct_status.0 == "RJCT" && direct_status.1 == "DUPL" {
            match status(&mut node.payments, payment).await {
                Ok(earlier) if payment.is_same_as(&earlier) => {
                    report = earlier;
                    receipt = None;
                    result.earlier = true;
                    result.resubmission_answer =
                        Some(status::with_reason(direct_status.0, &direct_status.1));
                }
                // Another payment holds the UETR: the refusal is the outcome.
                Ok(_) => {}
                // The refusal says nothing of the payment, which may have settled: unknown is
                // PDNG, as for a submission without an answer (issue 11, defect 9), or a bank
                // that read RJCT might pay again.
                Err(asked) => {
                    report = dupl_in_doubt(payment, &asked);
                    receipt = None;
                    dupl_unasked = true;
                }
            }
        }
        if report.transaction_status() == pb::TransactionStatus::Pdng {
            let deadline = Instant::now() + self.pending_wait;
            while Instant::now() < deadline {
                tokio::time::sleep(PENDING_POLL).await;
                if let Ok(now) = status(&mut node.payments, payment).await {
                    if dupl_unasked {
                        dupl_unasked = false;
                        if !payment.is_same_as(&now) {
                            report = direct;
                            break;
                        }
                        result.earlier = true;
                        result.resubmission_answer =
                            Some(status::with_reason(direct_status.0, &direct_status.1));
                    }
                    report = now;
                    receipt = None;
                    result.stage = "status";
                    if report.transaction_status() != pb::TransactionStatus::Pdng {
                        break;
                    }
                }
            }
        }
        result.latency = started.elapsed();
        result.status = LineStatus::of(&report);
        result.reason = report.status_reason_code.clone();
        result.detail = report.status_reason_detail.clone();
        result.decided_by = report.decided_by.clone();
        result.debited = report.interbank_settlement_amount.as_ref().map(amount_text);
        result.credited = report.credited_amount.as_ref().map(amount_text);
        if report.transaction_status() == pb::TransactionStatus::Acsc {
            // The receipt the flow verified, or, for a report asked for since, verified now.
            let verified = match receipt {
                Some(verified) => verified,
                None => participant.verify_receipt(&report, self.clock.now().1),
            };
            keep_receipt(&report, verified, &mut result);
        }
        result.met = match (payment.expect, result.status) {
            (_, LineStatus::Pdng) | (None, _) => None,
            (Some(expect), status) => Some(
                result.receipt_problem.is_none()
                    && (expect.is_met_by(status.as_str(), &result.reason)
                        || (result.earlier && expect.is_met_by(direct_status.0, &direct_status.1))),
            ),
        };
        result
    }

    /// Pays the line through the participant flow (quote, verify, check, sign, submit, verify
    /// the receipt). A refusal with a reason code is a report (RJCT); a submission that got no
    /// answer is a report too, asked for or PDNG when asking fails; `Err` is a call that got
    /// no answer before anything was submitted or a quote that cannot be trusted (nothing
    /// signed).
    async fn pay_line(
        &self,
        participant: &Participant<'_>,
        node: &mut Connection,
        payment: &Payment,
        bank: &Bank,
        result: &mut LineResult,
    ) -> Result<(pb::PaymentStatusReport, ReceiptCheck), String> {
        let now = self.clock.now().1;
        let request = request(payment);
        match participant
            .pay(&mut node.payments, bank, &request, now)
            .await
        {
            Ok(paid) => {
                result.stage = paid.step().as_str();
                match paid.answer {
                    Answer::Report(report) => Ok((*report, Some(paid.receipt))),
                    Answer::Refused(refusal) => Ok((refused(payment, &refusal), None)),
                }
            }
            Err(PayError::Call {
                step: Step::Submit,
                status: call_status,
            }) => {
                // No answer: the node may still have taken it. Ask before saying anything.
                result.stage = "submit";
                match status(&mut node.payments, payment).await {
                    Ok(report) => {
                        result.stage = "status";
                        Ok((report, None))
                    }
                    Err(asked) => Ok((in_doubt(payment, &call_status, &asked), None)),
                }
            }
            Err(error) => Err((self.describe_error)(&node.url, error)),
        }
    }
}

/// `sending→receiving`.
pub fn route(payment: &Payment) -> String {
    format!("{}→{}", payment.sending, payment.receiving)
}

/// The indexes of the lines of each UETR, in file order; chains in order of first appearance.
fn chains(payments: &[Payment]) -> Vec<Vec<usize>> {
    let mut chains: Vec<Vec<usize>> = Vec::new();
    let mut chain_of: BTreeMap<Uetr, usize> = BTreeMap::new();
    for (index, p) in payments.iter().enumerate() {
        let chain = *chain_of.entry(p.uetr).or_insert_with(|| {
            chains.push(Vec::new());
            chains.len() - 1
        });
        chains[chain].push(index);
    }
    chains
}

/// Loads every distinct signing identity the lines use, with `load` (certificate and key
/// files; the error's text goes into the line's error); returns the banks and the index of
/// each line's bank. A line's `signer` files are relative to `base` (the file's directory);
/// without one, the debtor agent's pair in the dev-PKI layout under `certs`
/// (`<certs>/<jurisdiction in lower case>/banks/<BIC>.pem` and `.key.pem`).
pub fn load_banks(
    payments: &[Payment],
    certs: &Path,
    base: &Path,
    mut load: impl FnMut(&Path, &Path) -> Result<Bank, String>,
) -> Result<(Vec<Bank>, Vec<usize>), Vec<LineError>> {
    let mut banks: Vec<Bank> = Vec::new();
    let mut known: BTreeMap<(PathBuf, PathBuf), usize> = BTreeMap::new();
    let mut bank_of = Vec::with_capacity(payments.len());
    let mut errors = Vec::new();
    for p in payments {
        let (files, member) = match &p.signer {
            Some(s) => ((base.join(&s.cert), base.join(&s.key)), "signer"),
            None => {
                let dir = load::banks_dir(certs, &p.sending);
                (
                    (
                        dir.join(format!("{}.pem", p.debtor_agent)),
                        dir.join(format!("{}.key.pem", p.debtor_agent)),
                    ),
                    "debtor_agent",
                )
            }
        };
        let fail = |detail: String| LineError {
            line: p.line,
            field: Some(member.to_owned()),
            code: ReasonCode::Ff01,
            detail,
        };
        let index = match known.get(&files) {
            Some(index) => *index,
            None => match load(&files.0, &files.1) {
                Ok(bank) => {
                    banks.push(bank);
                    known.insert(files.clone(), banks.len() - 1);
                    banks.len() - 1
                }
                Err(e) => {
                    errors.push(fail(format!(
                        "cannot load the bank's signing identity: {e}"
                    )));
                    if errors.len() >= ERRORS_MAX {
                        break;
                    }
                    continue;
                }
            },
        };
        if banks[index].bic != p.debtor_agent {
            errors.push(fail(format!(
                "the signing certificate {} is for {}, not the debtor agent {}",
                files.0.display(),
                banks[index].bic,
                p.debtor_agent
            )));
            continue;
        }
        bank_of.push(index);
    }
    if errors.is_empty() {
        Ok((banks, bank_of))
    } else {
        Err(errors)
    }
}

fn errored(mut result: LineResult, started: Instant, detail: String) -> LineResult {
    result.latency = started.elapsed();
    result.status = LineStatus::Error;
    result.detail = detail;
    result.met = result.expect.map(|_| false);
    result
}

/// `"25000 JPY"`.
fn amount_text(amount: &pb::ActiveCurrencyAndAmount) -> String {
    format!("{} {}", amount.value, amount.currency)
}

/// What the flow's receipt check found: `None` when the report is not the flow's own.
type ReceiptCheck = Option<Result<Option<VerifiedReceipt>, ReceiptError>>;

/// A submission that got no answer and whose status could not be learnt either, as a PDNG
/// report: unknown is reported as unknown (issue 11, defect 9). The node may have taken the
/// payment (it may even have settled, its answer lost), and even a status query answered "not
/// found" does not prove otherwise while the node's submission task may still be running. A
/// bank that paid again under a new UETR on a false "nothing was sent" would pay twice.
fn in_doubt(
    payment: &Payment,
    submit: &tonic::Status,
    asked: &tonic::Status,
) -> pb::PaymentStatusReport {
    pb::PaymentStatusReport {
        uetr: payment.uetr.to_string(),
        end_to_end_id: payment.end_to_end_id.clone(),
        transaction_status: pb::TransactionStatus::Pdng.into(),
        status_reason_detail: format!(
            "SubmitPayment got no answer ({:?}: {}) and the status query failed ({:?}: {}): \
             the node may have taken the payment; ask again with `kakehashi status {}`, or \
             replay the file again (its UETRs are fixed, so nothing is paid twice)",
            submit.code(),
            submit.message(),
            asked.code(),
            asked.message(),
            payment.uetr
        ),
        interbank_settlement_amount: Some(payment.amount.clone()),
        ..pb::PaymentStatusReport::default()
    }
}

/// A resubmission refused DUPL whose payment's status could not be asked, as a PDNG report:
/// the UETR is known to the node, but whether its payment settled is not.
fn dupl_in_doubt(payment: &Payment, asked: &tonic::Status) -> pb::PaymentStatusReport {
    pb::PaymentStatusReport {
        uetr: payment.uetr.to_string(),
        end_to_end_id: payment.end_to_end_id.clone(),
        transaction_status: pb::TransactionStatus::Pdng.into(),
        status_reason_detail: format!(
            "the node answered DUPL (it knows the UETR from an earlier submission) and the \
             status query failed ({:?}: {}): the payment's outcome is unknown; ask again with \
             `kakehashi status {}`, or replay the file again",
            asked.code(),
            asked.message(),
            payment.uetr
        ),
        interbank_settlement_amount: Some(payment.amount.clone()),
        ..pb::PaymentStatusReport::default()
    }
}

/// A call refused with a reason code, as a rejection report.
fn refused(payment: &Payment, refusal: &Refusal) -> pb::PaymentStatusReport {
    pb::PaymentStatusReport {
        uetr: payment.uetr.to_string(),
        end_to_end_id: payment.end_to_end_id.clone(),
        transaction_status: pb::TransactionStatus::Rjct.into(),
        status_reason_code: refusal.code.clone(),
        // The message repeats the code ("RR04: source_amount: ..."); the report carries it
        // apart.
        status_reason_detail: refusal.detail().to_owned(),
        interbank_settlement_amount: Some(payment.amount.clone()),
        decided_by: payment.sending.clone(),
        ..pb::PaymentStatusReport::default()
    }
}

async fn status(
    node: &mut PaymentsClient<Channel>,
    payment: &Payment,
) -> Result<pb::PaymentStatusReport, tonic::Status> {
    node.get_payment_status(pb::PaymentStatusRequest {
        uetr: payment.uetr.to_string(),
    })
    .await
    .map(tonic::Response::into_inner)
}

/// Keeps a settled payment's receipt, and what is wrong with it when it did not verify (as
/// the debtor's jurisdiction).
fn keep_receipt(
    report: &pb::PaymentStatusReport,
    verified: Result<Option<VerifiedReceipt>, ReceiptError>,
    result: &mut LineResult,
) {
    if let Err(problem) = verified {
        result.receipt_problem = Some(problem.to_string());
    }
    result.receipt = (report.receipt.clone())
        .and_then(|signed| ReceiptFile::new(signed).ok())
        .and_then(|file| serde_json::from_str(&file.to_json()).ok());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(status: LineStatus, expect: Option<Expect>, met: Option<bool>) -> LineResult {
        LineResult {
            status,
            expect,
            met,
            ..LineResult::default()
        }
    }

    #[test]
    fn verdicts_separate_unmet_expectations_from_unknown_outcomes() {
        use LineStatus::{Acsc, Error, Pdng, Rjct};
        let settled = Some(Expect::Settled);
        assert_eq!(result(Acsc, settled, Some(true)).verdict(), Verdict::Fine);
        assert_eq!(
            result(Rjct, settled, Some(false)).verdict(),
            Verdict::NotMet
        );
        assert_eq!(result(Pdng, settled, None).verdict(), Verdict::Unknown);
        assert_eq!(
            result(Error, settled, Some(false)).verdict(),
            Verdict::Unknown
        );
        assert_eq!(result(Error, None, None).verdict(), Verdict::Unknown);
        assert_eq!(result(Rjct, None, None).verdict(), Verdict::Fine);
        let mut unverified = result(Acsc, None, None);
        unverified.receipt_problem = Some("does not verify".into());
        assert_eq!(unverified.verdict(), Verdict::NotMet);
        assert!(!unverified.is_fine());
    }
}
