//! The bank the command line pays as, and the participant flow's answers in its terms.
//!
//! `pay`, the devnet demo and `replay` pay through `kakehashi_node::participant`: quote, verify
//! the quote under the agreement and check it is for the amount and destination asked, sign
//! (`kakehashi_protocol::bank::instruction` takes only a verified quote), submit, verify the
//! receipt. This module loads the signing bank with the command line's own checks (bounded
//! reads, the key is the certificate's), turns refusals into reports and errors into messages,
//! and writes receipt files.

use std::path::Path;

use anyhow::{Context as _, bail};
use kakehashi_node::participant::{
    Answer, Participant, PayError, PaymentRequest, ReceiptError, VerifiedReceipt,
};
use kakehashi_pki::UnixTime;
use kakehashi_pki::cert::Cert;
use kakehashi_proto::pb;
use kakehashi_protocol::bank;
use kakehashi_protocol::instruction::Uetr;
use kakehashi_protocol::quote::QuoteTerms;
use kakehashi_protocol::receipt::ReceiptFile;

use crate::client::{self, NodeClient};

/// X.520 countryName, read from a bank certificate's subject (RFC 5280 §4.1.2.4).
const OID_COUNTRY: &str = "2.5.4.6";

/// Largest private-key file read: an Ed25519 PKCS#8 PEM key is about 120 bytes.
const KEY_FILE_SIZE_MAX: u64 = 64 << 10;

/// A bank that signs instructions: the protocol library's bank identity (BIC, key, chain)
/// and the country its certificate names.
pub(crate) struct Bank {
    pub(crate) identity: bank::Bank,
    pub(crate) country: Option<String>,
}

impl Bank {
    /// Reads a payment-signing chain and its key, and checks that the key is the leaf's.
    pub(crate) fn load(cert: &Path, key: &Path) -> anyhow::Result<Self> {
        // Bound the reads first: the library reads whole files.
        client::read_bounded(cert, "bank certificate")?;
        let key_size = std::fs::metadata(key)
            .with_context(|| format!("cannot read the key {}", key.display()))?
            .len();
        anyhow::ensure!(
            key_size <= KEY_FILE_SIZE_MAX,
            "{} is {key_size} bytes; an Ed25519 PKCS#8 key is far smaller",
            key.display()
        );
        let identity = bank::Bank::load(cert, key).map_err(|e| {
            anyhow::anyhow!(
                "{e} (give the bank's payment-signing chain in PEM, leaf first, with --bank and \
                 its Ed25519 PKCS#8 key with --key)"
            )
        })?;
        let leaf = identity
            .chain
            .first()
            .and_then(|der| Cert::from_der(der).ok())
            .with_context(|| format!("{}: no readable certificate", cert.display()))?;
        if leaf.spki().key() != identity.key.verifying_key().as_bytes() {
            bail!(
                "{} is not the key of {} (subject {}); give the matching .key.pem",
                key.display(),
                cert.display(),
                leaf.subject_display()
            );
        }
        let country = leaf
            .subject()
            .attributes(OID_COUNTRY)
            .find_map(|a| a.text());
        Ok(Self { identity, country })
    }

    pub(crate) fn bic(&self) -> &str {
        &self.identity.bic
    }
}

/// How a payment ended, as the sending node reported it (or as it refused the quote or the
/// instruction before recording a payment), with its receipt verified.
pub(crate) struct Sent {
    /// The quote the instruction settles at, when the node issued one.
    pub(crate) quote: Option<QuoteTerms>,
    pub(crate) report: pb::PaymentStatusReport,
    /// Which call decided: `quote`, `submit`.
    pub(crate) stage: &'static str,
    /// The report's receipt, verified under the agreement.
    pub(crate) receipt: Result<Option<VerifiedReceipt>, ReceiptError>,
}

/// A new random UETR (RFC 4122 version 4).
pub(crate) fn new_uetr() -> anyhow::Result<Uetr> {
    Uetr::new_v4(&ring::rand::SystemRandom::new())
        .map_err(|_| anyhow::anyhow!("the system random number generator failed"))
}

/// Pays `request` through the participant flow (quote, verify, check, sign, submit, verify the
/// receipt). A refusal by the node (with a reason code) is an outcome, not an error; errors are
/// a node that cannot be reached, a quote that does not verify or is not what was asked, or an
/// answer without a reason.
pub(crate) async fn send_payment(
    node: &mut NodeClient,
    participant: &Participant<'_>,
    bank: &Bank,
    request: &PaymentRequest,
    now: UnixTime,
) -> anyhow::Result<Sent> {
    let paid = participant
        .pay(&mut node.payments, &bank.identity, request, now)
        .await
        .map_err(|e| pay_error(&node.url, e))?;
    let stage = paid.step().as_str();
    let report = match paid.answer {
        Answer::Report(report) => *report,
        Answer::Refused(refusal) => pb::PaymentStatusReport {
            uetr: request.uetr.to_string(),
            transaction_status: pb::TransactionStatus::Rjct.into(),
            status_reason_code: refusal.code,
            status_reason_detail: refusal.message,
            interbank_settlement_amount: Some(request.amount.clone()),
            ..pb::PaymentStatusReport::default()
        },
    };
    Ok(Sent {
        quote: paid.quote.map(|quote| quote.terms().clone()),
        report,
        stage,
        receipt: paid.receipt,
    })
}

/// An error of the participant flow in the command line's words.
pub(crate) fn pay_error(url: &str, error: PayError) -> anyhow::Error {
    match error {
        PayError::Call { step, status } => client::call_error(url, step.as_str(), &status),
        PayError::Refused(refusal) => anyhow::anyhow!(
            "{} refused at {url}: {}",
            refusal.step.as_str(),
            refusal.message
        ),
        PayError::Quote(error) => {
            anyhow::anyhow!("the node at {url} {error}; nothing was signed or sent")
        }
        other => anyhow::Error::new(other),
    }
}

/// Writes a signed receipt as a receipt file (JSON), replacing the file whole.
pub(crate) fn write_receipt_file(path: &Path, signed: &pb::Signed) -> anyhow::Result<()> {
    let file = ReceiptFile::new(signed.clone())
        .map_err(|r| anyhow::anyhow!("cannot encode the receipt for {}: {r}", path.display()))?;
    let json = file.to_json();
    std::fs::write(path, json)
        .with_context(|| format!("cannot write the receipt to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_uetrs_are_version_4_rfc_4122_and_differ() {
        let a = new_uetr().unwrap();
        let b = new_uetr().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.0[6] >> 4, 4);
        assert_eq!(a.0[8] >> 6, 0b10);
        let text = a.to_string();
        assert_eq!(Uetr::parse(&text).unwrap(), a);
    }
}
