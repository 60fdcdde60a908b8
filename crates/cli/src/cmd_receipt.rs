//! `kakehashi receipt verify`: checks a signed receipt file offline under the
//! mutual-recognition agreement, as the jurisdiction that relies on it, and prints what it
//! proves (or, when it does not verify, what it claims and why that is not proven).
//!
//! Exit codes: 0 valid, 1 invalid, 2 usage or input error.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use kakehashi_pki::UnixTime;
use kakehashi_pki::mra::Mra;
use kakehashi_proto::pb;
use kakehashi_protocol::receipt::{ReceiptFile, verify_receipt};
use kakehashi_protocol::signed::Signer;

use crate::client;
use crate::output::{
    CHECKS_HEADING, SignerJson, amount_text, check_line, reason_meaning, time_text, write_stdout,
};

/// Largest receipt file read: a receipt with an 8-certificate chain is a few tens of KiB.
const RECEIPT_FILE_SIZE_MAX: u64 = 1 << 20;

/// `kakehashi receipt ...`
#[derive(clap::Subcommand)]
pub(crate) enum ReceiptCommand {
    /// Verify a signed receipt offline under the mutual-recognition agreement and print what
    /// it proves.
    ///
    /// Exit 0 valid, 1 invalid, 2 usage or input error.
    Verify(ReceiptVerifyArgs),
}

/// Arguments of `kakehashi receipt verify`.
#[derive(clap::Args)]
pub(crate) struct ReceiptVerifyArgs {
    /// The receipt file (`kakehashi pay --receipt-out`, or the devnet demo's receipts/).
    file: PathBuf,
    /// The mutual-recognition agreement.
    #[arg(long, default_value = "certs/mra.toml", value_name = "FILE")]
    mra: PathBuf,
    /// The jurisdiction relying on the receipt, e.g. `JP` for the debtor's side.
    #[arg(long, value_name = "CODE")]
    relying: String,
    /// Validation time (RFC 3339, e.g. `2027-01-01T00:00:00Z`); default: now.
    #[arg(long, value_name = "RFC3339")]
    at: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(cmd: ReceiptCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ReceiptCommand::Verify(args) => receipt_verify(&args),
    }
}

fn receipt_verify(args: &ReceiptVerifyArgs) -> anyhow::Result<ExitCode> {
    let (time, time_source) = match &args.at {
        Some(text) => {
            let time = UnixTime::parse_rfc3339(text).map_err(|e| {
                anyhow::anyhow!(
                    "bad --at `{text}`: {e}; give an RFC 3339 time with an offset, \
                     e.g. 2027-01-01T00:00:00Z"
                )
            })?;
            (time, "--at")
        }
        None => (client::now()?, "the system clock"),
    };
    let mra = client::load_mra(&args.mra)?;
    client::check_party(&mra, &args.relying, "--relying")?;
    let size = std::fs::metadata(&args.file)
        .with_context(|| format!("cannot read the receipt {}", args.file.display()))?
        .len();
    if size > RECEIPT_FILE_SIZE_MAX {
        bail!(
            "{} is {size} bytes; a receipt file is far smaller (limit {RECEIPT_FILE_SIZE_MAX})",
            args.file.display()
        );
    }
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read the receipt {}", args.file.display()))?;
    if serde_json::from_str::<serde_json::Value>(&text).is_err() {
        bail!(
            "{} is not JSON; give a receipt file written by `kakehashi pay --receipt-out` or \
             the devnet demo",
            args.file.display()
        );
    }
    // From here on the file claims to be a receipt: anything wrong with it is a verdict.
    // Reading it already refuses a readable copy that differs from the signed payload.
    let verdict = match ReceiptFile::from_json(&text) {
        Ok(file) => match verify_receipt(&file.signed, &mra, &args.relying, time) {
            Ok((receipt, signer)) => ReceiptVerdict::Valid {
                receipt,
                signer: Box::new(signer),
            },
            Err(r) => ReceiptVerdict::Invalid {
                code: r.code.as_str(),
                detail: r.detail,
                receipt: Some(file.receipt),
            },
        },
        Err(r) => ReceiptVerdict::Invalid {
            code: r.code.as_str(),
            detail: format!("not a well-formed receipt file: {}", r.detail),
            receipt: None,
        },
    };
    let mut out = String::new();
    if args.json {
        let doc = verdict.json(args, &mra, time, time_source);
        out.push_str(&serde_json::to_string_pretty(&doc)?);
        out.push('\n');
    } else {
        verdict.write_text(&mut out, args, &mra, time, time_source);
    }
    write_stdout(&out)?;
    Ok(match verdict {
        ReceiptVerdict::Valid { .. } => ExitCode::SUCCESS,
        ReceiptVerdict::Invalid { .. } => ExitCode::from(1),
    })
}

enum ReceiptVerdict {
    Valid {
        receipt: pb::Receipt,
        // Boxed: a verdict with its checks is much larger than the invalid variant.
        signer: Box<Signer>,
    },
    Invalid {
        code: &'static str,
        detail: String,
        /// The payload decoded without trusting it, to show what was claimed.
        receipt: Option<pb::Receipt>,
    },
}

impl ReceiptVerdict {
    fn write_text(
        &self,
        out: &mut String,
        args: &ReceiptVerifyArgs,
        mra: &Mra,
        time: UnixTime,
        time_source: &str,
    ) {
        let _ = writeln!(out, "receipt    {}", args.file.display());
        let _ = writeln!(
            out,
            "agreement  {} ({})",
            mra.agreement_id(),
            mra.path().display()
        );
        let _ = writeln!(out, "relying    {}", args.relying);
        let _ = writeln!(out, "time       {time} (from {time_source})");
        let _ = writeln!(out);
        self.write_claims(out);
        match self {
            Self::Valid { receipt, signer } => {
                write_signer_path(out, signer);
                write_checks(out, receipt, signer);
                let _ = writeln!(out);
                let _ = writeln!(
                    out,
                    "VALID: {} credited {} to account {} at {}, signed by {} ({}), recognized \
                     by {} for receipt-signing under {}",
                    receipt.receiving_jurisdiction,
                    amount_text(receipt.credited_amount.as_ref()),
                    receipt.creditor_account,
                    receipt.creditor_agent_bic,
                    signer.subject_cn(),
                    signer.jurisdiction(),
                    args.relying,
                    signer.verdict().clause().unwrap_or("the agreement")
                );
            }
            Self::Invalid { code, detail, .. } => {
                let _ = writeln!(out, "INVALID ({code}: {})", reason_meaning(code));
                let _ = writeln!(out, "  why  {detail}");
            }
        }
    }

    /// The receipt's fields: what it proves when valid, what it claims otherwise.
    fn write_claims(&self, out: &mut String) {
        let receipt = match self {
            Self::Valid { receipt, .. } => Some(receipt),
            Self::Invalid { receipt, .. } => receipt.as_ref(),
        };
        if let Some(r) = receipt {
            let heading = match self {
                Self::Valid { .. } => "what it proves",
                Self::Invalid { .. } => "what it claims (NOT proven)",
            };
            let _ = writeln!(out, "{heading}");
            let _ = writeln!(out, "  uetr                 {}", r.uetr);
            let _ = writeln!(out, "  end-to-end id        {}", r.end_to_end_id);
            let _ = writeln!(
                out,
                "  payment              {} {} -> {} {} (creditor account {})",
                r.sending_jurisdiction,
                r.debtor_agent_bic,
                r.receiving_jurisdiction,
                r.creditor_agent_bic,
                r.creditor_account
            );
            let _ = writeln!(
                out,
                "  credited             {}",
                amount_text(r.credited_amount.as_ref())
            );
            let _ = writeln!(out, "  status               {}", r.transaction_status);
            let _ = writeln!(out, "  ledger transfer      {}", r.ledger_transfer_id);
            let _ = writeln!(
                out,
                "  settled at           {}",
                time_text(r.settled_at.as_ref())
            );
            let _ = writeln!(
                out,
                "  instruction sha256   {}",
                hex::encode(&r.instruction_sha256)
            );
            let _ = writeln!(out);
        }
    }

    fn json(
        &self,
        args: &ReceiptVerifyArgs,
        mra: &Mra,
        time: UnixTime,
        time_source: &str,
    ) -> serde_json::Value {
        let receipt_json = |r: &pb::Receipt| {
            serde_json::json!({
                "uetr": r.uetr,
                "end_to_end_id": r.end_to_end_id,
                "instruction_sha256": hex::encode(&r.instruction_sha256),
                "receiving_jurisdiction": r.receiving_jurisdiction,
                "sending_jurisdiction": r.sending_jurisdiction,
                "debtor_agent_bic": r.debtor_agent_bic,
                "creditor_agent_bic": r.creditor_agent_bic,
                "creditor_account": r.creditor_account,
                "credited_amount": amount_text(r.credited_amount.as_ref()),
                "ledger_transfer_id": r.ledger_transfer_id,
                "settled_at": time_text(r.settled_at.as_ref()),
                "transaction_status": r.transaction_status,
            })
        };
        let mut doc = serde_json::json!({
            "file": args.file.display().to_string(),
            "agreement_id": mra.agreement_id(),
            "relying": args.relying,
            "time": time.to_rfc3339(),
            "time_source": time_source,
        });
        if let Some(obj) = doc.as_object_mut() {
            match self {
                Self::Valid { receipt, signer } => {
                    obj.insert("valid".into(), true.into());
                    obj.insert("receipt".into(), receipt_json(receipt));
                    obj.insert("signer".into(), serde_json::json!(SignerJson::new(signer)));
                    obj.insert(
                        "verdict".into(),
                        serde_json::to_value(signer.verdict()).unwrap_or_default(),
                    );
                }
                Self::Invalid {
                    code,
                    detail,
                    receipt,
                } => {
                    obj.insert("valid".into(), false.into());
                    obj.insert("reason_code".into(), (*code).into());
                    obj.insert("reason_detail".into(), detail.clone().into());
                    obj.insert(
                        "claimed_receipt".into(),
                        receipt
                            .as_ref()
                            .map_or(serde_json::Value::Null, receipt_json),
                    );
                }
            }
        }
        doc
    }
}

/// The signer's certificate path, leaf first, as a tree.
fn write_signer_path(out: &mut String, signer: &Signer) {
    let path = &signer.verdict().path();
    let _ = writeln!(out, "signer's certificate path");
    for (i, c) in path.iter().enumerate() {
        let role = if i == 0 {
            "leaf".to_owned()
        } else if i + 1 == path.len() {
            format!("trust anchor of {}", signer.jurisdiction())
        } else {
            "intermediate".to_owned()
        };
        let branch = if i == 0 { "" } else { "└─ " };
        let _ = writeln!(
            out,
            "  {}{branch}[{}] {} (serial {})  <{role}>",
            "   ".repeat(i),
            c.position,
            c.subject,
            c.serial
        );
    }
}

/// Every check the verification ran, with its rule; then the signer-jurisdiction check.
fn write_checks(out: &mut String, receipt: &pb::Receipt, signer: &Signer) {
    let _ = writeln!(out);
    let _ = writeln!(out, "{CHECKS_HEADING}");
    let _ = writeln!(
        out,
        "  ✓     file: the readable fields match the signed payload"
    );
    let _ = writeln!(
        out,
        "  ✓ [0] signature: Ed25519 over the receipt domain and the payload"
    );
    for check in signer.verdict().checks() {
        let _ = writeln!(out, "{}", check_line(check));
    }
    let _ = writeln!(
        out,
        "  ✓     signer-jurisdiction: the signer's anchor is {}, the receipt's receiving \
         jurisdiction",
        receipt.receiving_jurisdiction
    );
}
