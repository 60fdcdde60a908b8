//! A bank as a participant, and the pacs.008-style instruction it signs.

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use kakehashi_pki::cert::Cert;
use kakehashi_pki::{UnixTime, pem};
use kakehashi_proto::SIGNING_DOMAIN_INSTRUCTION;
use kakehashi_proto::pb;
use prost::Message;

use crate::instruction::{Uetr, to_timestamp};
use crate::reason::Rejection;
use crate::signed;

/// Longest a participant may make an instruction live; nodes refuse longer ones (their
/// `instruction_max_lifetime_secs`, 600 in the devnet configurations).
pub const INSTRUCTION_LIFETIME_SECS: i64 = 300;

/// A bank's key or certificate file is unreadable or not what it should be.
#[derive(Debug, thiserror::Error)]
#[error("{what} {path}: {message}")]
pub struct BankFileError {
    /// Which file.
    pub what: &'static str,
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub message: String,
}

/// A bank as a participant: its payment-signing key and certificate chain.
#[derive(Clone, Debug)]
pub struct Bank {
    /// The BIC: the common name of the signing certificate.
    pub bic: String,
    /// The Ed25519 key.
    pub key: SigningKey,
    /// DER, leaf first.
    pub chain: Vec<Vec<u8>>,
}

impl Bank {
    /// Loads a bank from its PEM chain (leaf first) and PKCS#8 key.
    pub fn load(chain: &Path, key: &Path) -> Result<Self, BankFileError> {
        let file = |what: &'static str, path: &Path, message: String| BankFileError {
            what,
            path: path.to_owned(),
            message,
        };
        let chain_bytes =
            std::fs::read(chain).map_err(|e| file("bank certificate", chain, e.to_string()))?;
        let chain_der = pem::blocks_or_der(&chain_bytes, "CERTIFICATE")
            .map_err(|m| file("bank certificate", chain, m))?;
        let leaf = chain_der
            .first()
            .ok_or_else(|| file("bank certificate", chain, "no certificate".into()))?;
        let cert =
            Cert::from_der(leaf).map_err(|e| file("bank certificate", chain, e.to_string()))?;
        let bic = cert
            .subject()
            .attributes("2.5.4.3")
            .find_map(|a| a.text())
            .ok_or_else(|| file("bank certificate", chain, "no common name (BIC)".into()))?;
        let key_text =
            std::fs::read_to_string(key).map_err(|e| file("bank key", key, e.to_string()))?;
        let key_pair = SigningKey::from_pkcs8_pem(&key_text)
            .map_err(|e| file("bank key", key, format!("not an Ed25519 PKCS#8 key: {e}")))?;
        Ok(Self {
            bic,
            key: key_pair,
            chain: chain_der,
        })
    }
}

/// What a debtor wants to pay, apart from the quote.
#[derive(Clone, Debug)]
pub struct Order {
    /// The debtor's account on the sending node.
    pub debtor_account: u128,
    /// The debtor's name.
    pub debtor_name: String,
    /// The creditor's bank.
    pub creditor_agent_bic: String,
    /// The creditor's account on the receiving node.
    pub creditor_account: u128,
    /// The creditor's name.
    pub creditor_name: String,
    /// Free text for the creditor.
    pub remittance_information: String,
}

/// Builds the instruction for `order` at `quote` (its source amount is the amount debited) and
/// signs it with `bank`'s key. `now` is the creation time; the instruction expires
/// [`INSTRUCTION_LIFETIME_SECS`] later.
pub fn instruction(
    bank: &Bank,
    order: &Order,
    quote: &pb::Signed,
    uetr: Uetr,
    now: UnixTime,
) -> Result<pb::Signed, Rejection> {
    let terms = pb::Quote::decode(quote.payload.as_slice())
        .map_err(|e| Rejection::format(format!("the quote does not decode: {e}")))?;
    let short = uetr.to_string();
    let short = short.get(..8).unwrap_or_default();
    let body = pb::CreditTransferInstruction {
        uetr: uetr.to_string(),
        end_to_end_id: format!("E2E-{short}"),
        instruction_id: format!("{}-{short}", bank.bic),
        creation_date_time: Some(to_timestamp(now)),
        expiry_date_time: Some(to_timestamp(UnixTime(
            now.0.saturating_add(INSTRUCTION_LIFETIME_SECS),
        ))),
        interbank_settlement_amount: terms.source_amount,
        charge_bearer: "SHAR".into(),
        debtor_agent_bic: bank.bic.clone(),
        debtor_account: order.debtor_account.to_string(),
        debtor_name: order.debtor_name.clone(),
        creditor_agent_bic: order.creditor_agent_bic.clone(),
        creditor_account: order.creditor_account.to_string(),
        creditor_name: order.creditor_name.clone(),
        remittance_information: order.remittance_information.clone(),
        quote: Some(quote.clone()),
    };
    Ok(signed::sign(
        SIGNING_DOMAIN_INSTRUCTION,
        body.encode_to_vec(),
        &bank.key,
        &bank.chain,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    #[test]
    fn a_bank_is_named_by_its_certificate() {
        let dir = repo().join("certs/jp/banks");
        let bank = Bank::load(&dir.join("KKHAJPJ0.pem"), &dir.join("KKHAJPJ0.key.pem")).unwrap();
        assert_eq!(bank.bic, "KKHAJPJ0");
        assert_eq!(bank.chain.len(), 2);
    }

    #[test]
    fn a_missing_key_names_the_file() {
        let dir = repo().join("certs/jp/banks");
        let err = Bank::load(&dir.join("KKHAJPJ0.pem"), &dir.join("missing.pem")).unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");
    }
}
