//! A bank as a participant, and the pacs.008-style instruction it signs at a verified quote.

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use kakehashi_pki::cert::Cert;
use kakehashi_pki::{UnixTime, pem};
use kakehashi_proto::SIGNING_DOMAIN_INSTRUCTION;
use kakehashi_proto::pb;
use prost::Message;

use crate::instruction::{ChargeBearer, Uetr, to_timestamp};
use crate::money::format_amount;
use crate::quote::VerifiedQuote;
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

/// How an instruction is built beyond its order and quote: its references, who bears charges
/// and, for tests of the nodes' refusals, a deliberate fault. The default is what `kakehashi
/// pay` sends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstructionOptions {
    /// `PmtId/EndToEndId`; default `E2E-` and the UETR's first 8 hex digits.
    pub end_to_end_id: Option<String>,
    /// `PmtId/InstrId`; default the BIC, `-` and the UETR's first 8 hex digits.
    pub instruction_id: Option<String>,
    /// `ChrgBr`; default SHAR (each side bears its own agent's charges).
    pub charge_bearer: Option<ChargeBearer>,
    /// A deliberate defect; none by default.
    pub fault: Option<Fault>,
}

/// A deliberate defect in a signed instruction, for tests of the nodes' refusals: the bank
/// still signs only at a verified quote, and the node must refuse what it receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// One bit of the Ed25519 signature flipped: the node refuses it (DS0B).
    BadSignature,
    /// Created [`EXPIRED_CREATED_AGO_SECS`] before `now` and expired
    /// [`EXPIRED_LIFETIME_SECS`] after that (AB05).
    ExpiredInstruction,
}

/// How long before now a [`Fault::ExpiredInstruction`] dates the instruction's creation; it
/// expires a minute after that, so it is past expiry even under the 3 minutes of clock skew a
/// node might allow (the devnet allows 30 s).
pub const EXPIRED_CREATED_AGO_SECS: i64 = 300;

/// Lifetime of a [`Fault::ExpiredInstruction`]'s instruction.
pub const EXPIRED_LIFETIME_SECS: i64 = 60;

/// How many leading UETR hex digits the default references quote.
const UETR_SHORT_LEN: usize = 8;

/// Builds the instruction for `order` at `quote` and signs it with `bank`'s key. The amount
/// debited is the quote's source amount, which [`crate::quote::verify_quote_for`] checked is
/// the amount asked for. `now` is the creation time; the instruction expires
/// [`INSTRUCTION_LIFETIME_SECS`] later (unless `options` asks for an expired one).
pub fn instruction(
    bank: &Bank,
    order: &Order,
    quote: &VerifiedQuote,
    uetr: Uetr,
    now: UnixTime,
    options: &InstructionOptions,
) -> pb::Signed {
    let uetr_text = uetr.to_string();
    let short = uetr_text.get(..UETR_SHORT_LEN).unwrap_or_default();
    let (created, expires) = match options.fault {
        Some(Fault::ExpiredInstruction) => {
            let created = now.0.saturating_sub(EXPIRED_CREATED_AGO_SECS);
            (created, created.saturating_add(EXPIRED_LIFETIME_SECS))
        }
        _ => (now.0, now.0.saturating_add(INSTRUCTION_LIFETIME_SECS)),
    };
    let (currency, minor) = quote.terms().source;
    let body = pb::CreditTransferInstruction {
        end_to_end_id: (options.end_to_end_id.clone()).unwrap_or_else(|| format!("E2E-{short}")),
        instruction_id: (options.instruction_id.clone())
            .unwrap_or_else(|| format!("{}-{short}", bank.bic)),
        uetr: uetr_text,
        creation_date_time: Some(to_timestamp(UnixTime(created))),
        expiry_date_time: Some(to_timestamp(UnixTime(expires))),
        interbank_settlement_amount: Some(format_amount(currency, minor)),
        charge_bearer: (options.charge_bearer)
            .unwrap_or(ChargeBearer::Shar)
            .as_str()
            .to_owned(),
        debtor_agent_bic: bank.bic.clone(),
        debtor_account: order.debtor_account.to_string(),
        debtor_name: order.debtor_name.clone(),
        creditor_agent_bic: order.creditor_agent_bic.clone(),
        creditor_account: order.creditor_account.to_string(),
        creditor_name: order.creditor_name.clone(),
        remittance_information: order.remittance_information.clone(),
        quote: Some(quote.signed().clone()),
    };
    let mut signed = signed::sign(
        SIGNING_DOMAIN_INSTRUCTION,
        body.encode_to_vec(),
        &bank.key,
        &bank.chain,
    );
    if options.fault == Some(Fault::BadSignature)
        && let Some(first) = signed.signature.first_mut()
    {
        *first ^= 1;
    }
    signed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instruction::decode;
    use crate::money::{Rate, currency};
    use crate::quote::{QuoteAsk, QuoteIssuer, QuoteOffer, verify_quote_for};
    use crate::signed::test_support::{at_2027, chain, key, mra};

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

    fn alpha() -> Bank {
        let dir = repo().join("certs/jp/banks");
        Bank::load(&dir.join("KKHAJPJ0.pem"), &dir.join("KKHAJPJ0.key.pem")).unwrap()
    }

    /// The JP node's quote of 10,000 JPY to SG, verified as JP.
    fn verified_quote() -> VerifiedQuote {
        let issuer = QuoteIssuer {
            jurisdiction: "JP".to_owned(),
            key: key("jp/node/receipt.key.pem"),
            chain: chain("jp/node/receipt.pem"),
            ttl_secs: 60,
        };
        let (jpy, sgd) = (currency("JPY").unwrap(), currency("SGD").unwrap());
        let offer = QuoteOffer {
            counterparty: "SG",
            source: (jpy, 10_000),
            target_currency: sgd,
            mid: Rate::parse("0.0087").unwrap(),
            spread_bps: 25,
        };
        let signed = issuer.issue(&offer, at_2027(), "Q-1".to_owned()).unwrap();
        let asked = QuoteAsk {
            source: (jpy, 10_000),
            counterparty: "SG".to_owned(),
            target_currency: sgd,
        };
        verify_quote_for(signed, &asked, &mra(), "JP", at_2027(), 30).unwrap()
    }

    fn order() -> Order {
        Order {
            debtor_account: 1001,
            debtor_name: "Aoki Kenji".into(),
            creditor_agent_bic: "KKHASGS0".into(),
            creditor_account: 2001,
            creditor_name: "Tan Wei Ming".into(),
            remittance_information: "Birthday gift".into(),
        }
    }

    const UETR: &str = "eb6305c9-1f7f-49de-aed0-16487c27b42d";

    #[test]
    fn an_instruction_debits_the_verified_quote_and_carries_its_bytes() {
        let quote = verified_quote();
        let uetr = Uetr::parse(UETR).unwrap();
        let options = InstructionOptions::default();
        let signed = instruction(&alpha(), &order(), &quote, uetr, at_2027(), &options);
        let body = decode(&signed).expect("a well-formed instruction");
        assert_eq!(body.uetr, uetr);
        assert_eq!(body.amount_minor, 10_000);
        assert_eq!(body.end_to_end_id, "E2E-eb6305c9");
        assert_eq!(body.instruction_id, "KKHAJPJ0-eb6305c9");
        assert_eq!(body.charge_bearer, ChargeBearer::Shar);
        let raw = pb::CreditTransferInstruction::decode(signed.payload.as_slice()).unwrap();
        assert_eq!(raw.quote.as_ref(), Some(quote.signed()));
        let expiry = raw.expiry_date_time.unwrap().seconds;
        assert_eq!(expiry, at_2027().0 + INSTRUCTION_LIFETIME_SECS);
    }

    #[test]
    fn options_set_references_and_charges_and_faults_break_signature_or_times() {
        let quote = verified_quote();
        let uetr = Uetr::parse(UETR).unwrap();
        let build = |options: &InstructionOptions| {
            instruction(&alpha(), &order(), &quote, uetr, at_2027(), options)
        };
        let plain = InstructionOptions {
            end_to_end_id: Some("INV-42".into()),
            instruction_id: Some("KKHAJPJ0-INV-42".into()),
            charge_bearer: Some(ChargeBearer::Debt),
            fault: None,
        };
        let good = build(&plain);
        let body = decode(&good).unwrap();
        assert_eq!(body.end_to_end_id, "INV-42");
        assert_eq!(body.instruction_id, "KKHAJPJ0-INV-42");
        assert_eq!(body.charge_bearer, ChargeBearer::Debt);
        let flipped = build(&InstructionOptions {
            fault: Some(Fault::BadSignature),
            ..plain.clone()
        });
        assert_eq!(flipped.payload, good.payload);
        assert_ne!(flipped.signature, good.signature);
        let expired = build(&InstructionOptions {
            fault: Some(Fault::ExpiredInstruction),
            ..plain
        });
        let raw = pb::CreditTransferInstruction::decode(expired.payload.as_slice()).unwrap();
        let expiry = raw.expiry_date_time.unwrap().seconds;
        assert!(
            expiry < at_2027().0 - 180,
            "expired well beyond a few minutes of skew"
        );
    }

    #[test]
    fn a_missing_key_names_the_file() {
        let dir = repo().join("certs/jp/banks");
        let err = Bank::load(&dir.join("KKHAJPJ0.pem"), &dir.join("missing.pem")).unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");
    }
}
