//! The transaction file `kakehashi replay` sends: JSON Lines, one payment per line, in the
//! vocabulary of ISO 20022 pacs.008 (debtor and creditor agents by BIC, accounts, the
//! interbank settlement amount as an `ActiveCurrencyAndAmount`, UETR, end-to-end id) plus what
//! an integration test expects to happen to it (pacs.002 status and reason code).
//!
//! ```text
//! {"debtor_agent":"KKHAJPJ0","debtor_account":"1001","creditor_agent":"KKHASGS0","creditor_account":"2001","creditor_name":"Tan Wei Ming","amount":{"currency":"JPY","value":"25000"},"target_currency":"SGD","end_to_end_id":"INV-2026-0001","expect":{"status":"ACSC"}}
//! {"debtor_agent":"KKHBJPJ0","debtor_account":"1102","creditor_agent":"KKHBSGS0","creditor_account":"2102","amount":{"currency":"JPY","value":"4999999"},"expect":{"status":"RJCT","reason":"AM04"}}
//! ```
//!
//! Members (unknown members and members given twice are refused; `null` is the same as absent):
//!
//! | member | ISO 20022 | required | meaning |
//! |---|---|---|---|
//! | `debtor_agent` | `DbtrAgt/FinInstnId/BICFI` | yes | the sending bank; its country (BIC characters 5–6) picks the sending node |
//! | `signer` | | no | `{"cert": PEM chain, "key": PKCS#8 PEM}`, paths relative to the file; default: the bank's pair in the dev PKI |
//! | `debtor_account` | `DbtrAcct` | yes | account id on the sending ledger (string or integer) |
//! | `debtor_name` | `Dbtr/Nm` | no | default `account <id> at <BIC>` |
//! | `creditor_agent` | `CdtrAgt/FinInstnId/BICFI` | yes | the receiving bank; its country is the counterparty jurisdiction |
//! | `creditor_account` | `CdtrAcct` | yes | account id on the receiving ledger |
//! | `creditor_name` | `Cdtr/Nm` | no | default `account <id> at <BIC>` |
//! | `amount` | `IntrBkSttlmAmt` | yes | `{"currency": "JPY", "value": "25000"}`: a decimal string in major units, in the sending jurisdiction's currency |
//! | `target_currency` | `XchgRateInf/UnitCcy` | no | the creditor's currency, checked against the agreement and the quote |
//! | `charge_bearer` | `ChrgBr` | no | DEBT, CRED, SHAR (default) or SLEV |
//! | `remittance_information` | `RmtInf/Ustrd` | no | at most 140 characters |
//! | `uetr` | `PmtId/UETR` | no | default: derived from the line (below) |
//! | `end_to_end_id` | `PmtId/EndToEndId` | no | at most 35 characters; default `E2E-` and the UETR's first 8 digits |
//! | `instruction_id` | `PmtId/InstrId` | no | at most 35 characters; default the BIC, `-` and the UETR's first 8 digits |
//! | `expect` | pacs.002 `TxSts`, `StsRsnInf/Rsn/Cd` | no | `{"status": "ACSC"}` or `{"status": "RJCT", "reason": "AM04"}` (`reason` alone implies RJCT) |
//! | `fault` | | no | for tests: `bad_signature` (one signature bit flipped: DS0B) or `expired_instruction` (expired four minutes ago: AB05) |
//! | `comment` | | no | ignored |
//!
//! Blank lines are skipped; a UTF-8 byte-order mark at the start and CR before LF are allowed.
//! [`parse`] validates the whole file before anything is sent and reports every bad line (up
//! to [`ERRORS_MAX`]) with its number, the member and an FF01 reason.
//!
//! **pacs.008 messages.** Instead of JSON Lines, a run may read ISO 20022 pacs.008.001.08
//! messages ([`parse_pacs008`], mapping in `docs/iso20022.md`): each `CdtTrfTxInf` is a payment,
//! numbered across the run's messages as lines are, with the UETR the message gives (required)
//! and the message's references kept for the pacs.002 reports that answer it. Refusals name the
//! element's path instead of a line and member.
//!
//! **Derived UETRs.** A line without `uetr` gets one derived from its content, so that running
//! the same file again after an interruption submits the same UETRs and the sending node's
//! idempotence (a known UETR is DUPL and moves nothing) keeps anything from being paid twice.
//! A UETR derived from the content alone could be computed by anyone who sees or guesses the
//! file, and another bank could take it first (its payment would hold the UETR and the
//! genuine one be DUPL); so the derivation is keyed with a secret only the sending bank has.
//! The key is HMAC-SHA256 under the bank's Ed25519 signing key of a domain tag ([`UetrKey`]);
//! the UETR is the first 16 bytes of HMAC-SHA256 under that key of a domain tag, the `--seed`
//! text, a canonical text of the payment's members (every member except `expect` and
//! `comment`, after defaults, in a fixed order, JSON-escaped) and the occurrence number of that
//! content in the file (the second identical line is a second payment), with the version and
//! variant bits of a version 4 UUID (RFC 9562 §5.4) because SWIFT gpi expects UETRs of that
//! shape. The same bank, file and seed give the same UETRs; editing a line's payment members,
//! changing the seed or signing with another key makes it a new payment; reordering lines,
//! inserting other lines or editing `expect` does not. [`parse`] leaves derived UETRs as the
//! nil UUID, which every node refuses as malformed, until [`key_uetrs`] is given the banks'
//! keys.
//! UETRs derived by versions before the key (`kakehashi-replay-uetr-v1`) are not derived again:
//! a file interrupted under such a version must be finished, or its payments looked up with
//! `kakehashi status`, before it is run again with this one, which would send them as new
//! payments.
//!
//! **Sending.** [`send`] sends the validated payments to running nodes through the participant
//! flow and follows each to a typed [`LineResult`]; `kakehashi replay` and the test kit share
//! it.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use kakehashi_node::participant::PaymentRequest;
use kakehashi_pki::UnixTime;
use kakehashi_proto::pb;
use ring::hmac;
use serde_json::Value;

use kakehashi_protocol::bank::{self, Bank, InstructionOptions, Order};
use kakehashi_protocol::instruction::{ChargeBearer, Uetr};
use kakehashi_protocol::money::{self, Currency};
use kakehashi_protocol::quote::VerifiedQuote;
use kakehashi_protocol::reason::ReasonCode;

mod line;
pub mod send;
mod xml;

pub use send::{LineResult, LineStatus, Verdict};
pub use xml::{Pacs008Origin, parse_pacs008};

/// Largest replay file read: 256 MiB is about a million payment lines, more than one run
/// should hold in memory (every line and its result are kept until the summary).
pub const FILE_BYTES_MAX: u64 = 256 << 20;

/// Longest line: a payment with every member at its longest (names and remittance of 140
/// characters, up to 4 bytes each in UTF-8, and two file paths) stays under 4 KiB; 16 KiB
/// leaves room for comments while refusing a runaway line before it is parsed.
pub const LINE_BYTES_MAX: usize = 16 << 10;

/// Most payment lines in one file (the bound [`FILE_BYTES_MAX`] implies for short lines).
pub const PAYMENTS_MAX: usize = 1_000_000;

/// Most line errors reported before [`parse`] stops looking: enough to fix a file in one go,
/// few enough to read.
pub const ERRORS_MAX: usize = 50;

/// How long before now an `expired_instruction` fault dates the instruction's creation (the
/// instruction builder's [`bank::Fault::ExpiredInstruction`]).
pub use kakehashi_protocol::bank::EXPIRED_CREATED_AGO_SECS;

/// Domain tag of derived UETRs, versioned so that a change of the derivation never collides
/// with UETRs derived before (v1 hashed the content without a key).
const UETR_DOMAIN: &[u8] = b"kakehashi-replay-uetr-v2\n";

/// Domain tag of the key a bank's derived UETRs are made with ([`UetrKey`]): the signing key is
/// used for this one purpose under its own tag, never to sign anything a node would accept.
const UETR_KEY_DOMAIN: &[u8] = b"kakehashi-replay-uetr-key-v1";

/// How many leading UETR hex digits default references quote.
const UETR_SHORT_LEN: usize = 8;

/// A bad line: where, which member, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {code}: {detail}", self.place())]
pub struct LineError {
    /// 1-based line number (0 for the file as a whole).
    pub line: usize,
    /// The member at fault, when one is; for a pacs.008 message, the element's path from
    /// `/Document`.
    pub field: Option<String>,
    /// The ISO 20022 reason code (FF01 for every format problem).
    pub code: ReasonCode,
    /// What is wrong and what would be right.
    pub detail: String,
}

impl LineError {
    /// `line 7, member uetr`, `line 7`, or `file` for line 0 (the file as a whole); an XML
    /// message's element path (it starts with `/`) alone.
    fn place(&self) -> String {
        if let Some(path) = self.field.as_deref().filter(|f| f.starts_with('/')) {
            return path.to_owned();
        }
        let mut text = if self.line == 0 {
            "file".to_owned()
        } else {
            format!("line {}", self.line)
        };
        if let Some(field) = &self.field {
            text.push_str(", member ");
            text.push_str(field);
        }
        text
    }
}

/// The agreement's parties and their currencies: what a line's BICs and amounts are checked
/// against.
pub type Parties = BTreeMap<String, &'static Currency>;

/// A signing identity given by file paths, as written in the line (relative paths are the
/// caller's to resolve against the file's directory).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SignerFiles {
    /// PEM chain, leaf first.
    pub cert: PathBuf,
    /// PKCS#8 PEM key.
    pub key: PathBuf,
}

/// What a line expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// ACSC: settled.
    Settled,
    /// RJCT, with this reason code or any.
    Rejected(Option<ReasonCode>),
}

impl Expect {
    /// Whether an outcome with pacs.002 `status` (ACSC, RJCT, PDNG) and `reason` meets it.
    pub fn is_met_by(self, status: &str, reason: &str) -> bool {
        match self {
            Self::Settled => status == "ACSC",
            Self::Rejected(None) => status == "RJCT",
            Self::Rejected(Some(code)) => status == "RJCT" && reason == code.as_str(),
        }
    }
}

impl std::fmt::Display for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Settled => f.write_str("ACSC"),
            Self::Rejected(None) => f.write_str("RJCT"),
            Self::Rejected(Some(code)) => write!(f, "RJCT {code}"),
        }
    }
}

/// A deliberate defect, for integration tests of the nodes' refusals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// One bit of the Ed25519 signature flipped: the node refuses it (DS0B).
    BadSignature,
    /// Created [`EXPIRED_CREATED_AGO_SECS`] ago and already expired (AB05).
    ExpiredInstruction,
}

impl Fault {
    /// The name used in files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadSignature => "bad_signature",
            Self::ExpiredInstruction => "expired_instruction",
        }
    }
}

/// One validated payment line.
#[derive(Clone, Debug)]
pub struct Payment {
    /// 1-based line number in the file.
    pub line: usize,
    /// The sending bank's BIC.
    pub debtor_agent: String,
    /// Where its signing identity is, if not the default.
    pub signer: Option<SignerFiles>,
    /// The sending jurisdiction (the debtor agent's country).
    pub sending: String,
    /// The receiving jurisdiction (the creditor agent's country).
    pub receiving: String,
    /// The debtor's account on the sending ledger.
    pub debtor_account: u128,
    /// The debtor's name.
    pub debtor_name: String,
    /// The creditor's bank.
    pub creditor_agent: String,
    /// The creditor's account on the receiving ledger.
    pub creditor_account: u128,
    /// The creditor's name.
    pub creditor_name: String,
    /// The amount debited, canonical wire form.
    pub amount: pb::ActiveCurrencyAndAmount,
    /// The amount in minor units.
    pub amount_minor: u128,
    /// The creditor's currency.
    pub target_currency: &'static Currency,
    /// Who bears charges.
    pub charge_bearer: ChargeBearer,
    /// Unstructured remittance information.
    pub remittance_information: String,
    /// The UETR.
    pub uetr: Uetr,
    /// Whether the UETR was derived (the line had none).
    pub uetr_derived: bool,
    /// What a derived UETR is made of, until [`key_uetrs`] makes it.
    derivation: Option<Derivation>,
    /// The end-to-end id.
    pub end_to_end_id: String,
    /// The instruction id.
    pub instruction_id: String,
    /// What should happen.
    pub expect: Option<Expect>,
    /// A deliberate defect.
    pub fault: Option<Fault>,
    /// The pacs.008 message and references it came from, when it came from one.
    pub pacs008: Option<Pacs008Origin>,
}

impl Payment {
    /// Whether a status report of the sending node for this UETR describes this payment (the
    /// same end-to-end id and amount): a resubmission of the same line, not another payment
    /// that reused the UETR.
    pub fn is_same_as(&self, report: &pb::PaymentStatusReport) -> bool {
        let amount = report
            .interbank_settlement_amount
            .as_ref()
            .and_then(|a| money::parse_amount(a).ok());
        report.end_to_end_id == self.end_to_end_id
            && amount.is_some_and(|(c, minor)| {
                c.alpha == self.amount.currency && minor == self.amount_minor
            })
    }
}

/// Parses and validates a whole replay file. Every payment line must be well formed, name
/// banks of two different parties of the agreement and debit in the sending party's currency;
/// otherwise the errors of up to [`ERRORS_MAX`] lines are returned and nothing should be sent.
/// Derived UETRs are made afterwards, by [`key_uetrs`] with the banks' keys.
pub fn parse(bytes: &[u8], parties: &Parties) -> Result<Vec<Payment>, Vec<LineError>> {
    let mut errors = Vec::new();
    let mut payments = Vec::new();
    let mut occurrences: HashMap<String, u64> = HashMap::new();
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    for (index, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        if errors.len() >= ERRORS_MAX {
            break;
        }
        let number = index + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.len() > LINE_BYTES_MAX {
            errors.push(line_error(
                number,
                None,
                format!(
                    "the line is {} bytes; at most {LINE_BYTES_MAX} are allowed",
                    raw.len()
                ),
            ));
            continue;
        }
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let text = match std::str::from_utf8(raw) {
            Ok(text) => text,
            Err(e) => {
                errors.push(line_error(
                    number,
                    None,
                    format!(
                        "not UTF-8 (invalid byte at column {}); save the file as UTF-8",
                        e.valid_up_to() + 1
                    ),
                ));
                continue;
            }
        };
        if payments.len() >= PAYMENTS_MAX {
            errors.push(line_error(
                number,
                None,
                format!("more than {PAYMENTS_MAX} payments; split the file"),
            ));
            break;
        }
        match line::parse_line(number, text, parties, &mut occurrences) {
            Ok(payment) => payments.push(payment),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() && payments.is_empty() {
        errors.push(line_error(
            0,
            None,
            "the file holds no payment lines (one JSON object per line)".to_owned(),
        ));
    }
    if errors.is_empty() {
        Ok(payments)
    } else {
        Err(errors)
    }
}

fn line_error(line: usize, field: Option<&str>, detail: String) -> LineError {
    LineError {
        line,
        field: field.map(str::to_owned),
        code: ReasonCode::Ff01,
        detail,
    }
}

/// A line's content for its derived UETR, and the references it gave (the defaults quote the
/// UETR, so they wait for it too).
#[derive(Clone, Debug)]
pub(crate) struct Derivation {
    /// The canonical text of the payment's members.
    pub(crate) canonical: String,
    /// 1-based occurrence of that content in the file.
    pub(crate) occurrence: u64,
    /// The line's `end_to_end_id`, if it had one.
    pub(crate) end_to_end_id: Option<String>,
    /// The line's `instruction_id`, if it had one.
    pub(crate) instruction_id: Option<String>,
}

/// A bank's secret for its derived UETRs: HMAC-SHA256 under its Ed25519 signing key of a domain
/// tag. Only the holder of the signing key can compute it, so only the bank can tell which
/// UETRs its files will use.
#[derive(Clone)]
pub struct UetrKey(hmac::Key);

impl UetrKey {
    /// The key of `bank`'s derived UETRs.
    pub fn of(bank: &Bank) -> Self {
        let signing = hmac::Key::new(hmac::HMAC_SHA256, &bank.key.to_bytes());
        let derived = hmac::sign(&signing, UETR_KEY_DOMAIN);
        Self(hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()))
    }
}

impl std::fmt::Debug for UetrKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UetrKey(..)")
    }
}

/// The derived UETR of the `occurrence`-th line (1-based) with payment content `canonical`,
/// under the sending bank's `key` and the run's `seed`.
pub fn derive_uetr(key: &UetrKey, seed: &str, canonical: &str, occurrence: u64) -> Uetr {
    let mut mac = hmac::Context::with_key(&key.0);
    mac.update(UETR_DOMAIN);
    mac.update(Value::String(seed.to_owned()).to_string().as_bytes());
    mac.update(b"\n");
    mac.update(canonical.as_bytes());
    mac.update(occurrence.to_string().as_bytes());
    let tag = mac.sign();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&tag.as_ref()[..16]);
    // RFC 9562 §5.4: version 4 in the high nibble of byte 6, variant 10 in byte 8.
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Uetr(bytes)
}

/// Makes the derived UETRs of `payments` (and the default references that quote them), each
/// under the key of the bank that signs it, `key_of(index)`, and `seed`. Lines with their own
/// UETR are left as they are.
pub fn key_uetrs<'k>(
    payments: &mut [Payment],
    seed: &str,
    mut key_of: impl FnMut(usize) -> &'k UetrKey,
) {
    for (index, payment) in payments.iter_mut().enumerate() {
        let Some(derivation) = payment.derivation.take() else {
            continue;
        };
        payment.uetr = derive_uetr(
            key_of(index),
            seed,
            &derivation.canonical,
            derivation.occurrence,
        );
        set_references(payment, derivation.end_to_end_id, derivation.instruction_id);
    }
}

/// The line's references, or the defaults that quote the UETR's first digits.
fn set_references(
    payment: &mut Payment,
    end_to_end_id: Option<String>,
    instruction_id: Option<String>,
) {
    let short: String = payment
        .uetr
        .to_string()
        .chars()
        .take(UETR_SHORT_LEN)
        .collect();
    payment.end_to_end_id = end_to_end_id.unwrap_or_else(|| format!("E2E-{short}"));
    payment.instruction_id =
        instruction_id.unwrap_or_else(|| format!("{}-{short}", payment.debtor_agent));
}

/// What the participant flow sends for `payment`: the line's amount, receiving jurisdiction,
/// parties, references, charge bearer and fault.
pub fn request(payment: &Payment) -> PaymentRequest {
    let (order, options) = order(payment);
    PaymentRequest {
        uetr: payment.uetr,
        amount: payment.amount.clone(),
        counterparty: payment.receiving.clone(),
        order,
        options,
    }
}

/// The order and instruction options of `payment`.
fn order(payment: &Payment) -> (Order, InstructionOptions) {
    let order = Order {
        debtor_account: payment.debtor_account,
        debtor_name: payment.debtor_name.clone(),
        creditor_agent_bic: payment.creditor_agent.clone(),
        creditor_account: payment.creditor_account,
        creditor_name: payment.creditor_name.clone(),
        remittance_information: payment.remittance_information.clone(),
    };
    let options = InstructionOptions {
        end_to_end_id: Some(payment.end_to_end_id.clone()),
        instruction_id: Some(payment.instruction_id.clone()),
        charge_bearer: Some(payment.charge_bearer),
        fault: payment.fault.map(|fault| match fault {
            Fault::BadSignature => bank::Fault::BadSignature,
            Fault::ExpiredInstruction => bank::Fault::ExpiredInstruction,
        }),
    };
    (order, options)
}

/// Builds the instruction for `payment` at `quote` (verified for the line's amount and
/// receiving jurisdiction) and signs it with `bank`'s key; applies the line's fault, if any.
/// `now` is the creation time.
pub fn instruction(
    bank: &Bank,
    payment: &Payment,
    quote: &VerifiedQuote,
    now: UnixTime,
) -> pb::Signed {
    let (order, options) = order(payment);
    bank::instruction(bank, &order, quote, payment.uetr, now, &options)
}

#[cfg(test)]
mod tests {
    use kakehashi_protocol::instruction;
    use kakehashi_protocol::money::Rate;
    use kakehashi_protocol::quote::{QuoteAsk, QuoteIssuer, QuoteOffer, verify_quote_for};
    use prost::Message as _;
    use serde_json::Value;

    use super::*;
    use crate::test_support::{at_2027, chain, key, mra};

    fn parties() -> Parties {
        let mut p = Parties::new();
        p.insert("JP".into(), money::currency("JPY").unwrap());
        p.insert("SG".into(), money::currency("SGD").unwrap());
        p
    }

    const GOOD: &str = r#"{"debtor_agent":"KKHAJPJ0","debtor_account":"1001","creditor_agent":"KKHASGS0","creditor_account":2001,"amount":{"currency":"JPY","value":"25000"}}"#;

    /// The dev PKI's KKHAJPJ0, the bank of `GOOD`.
    fn bank_a() -> Bank {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../certs/jp/banks");
        Bank::load(&dir.join("KKHAJPJ0.pem"), &dir.join("KKHAJPJ0.key.pem")).unwrap()
    }

    /// `text` parsed, its derived UETRs keyed with `bank`'s key and `seed`.
    fn parse_as(bank: &Bank, text: &str, seed: &str) -> Vec<Payment> {
        let mut payments = parse(text.as_bytes(), &parties()).unwrap();
        let key = UetrKey::of(bank);
        key_uetrs(&mut payments, seed, |_| &key);
        payments
    }

    fn parse_keyed(text: &str, seed: &str) -> Vec<Payment> {
        parse_as(&bank_a(), text, seed)
    }

    fn parse_one(line: &str) -> Result<Payment, LineError> {
        let mut payments = parse(line.as_bytes(), &parties()).map_err(|mut e| e.remove(0))?;
        let key = UetrKey::of(&bank_a());
        key_uetrs(&mut payments, "", |_| &key);
        Ok(payments.remove(0))
    }

    /// `GOOD` with `member` set to `json` (raw JSON text), or removed when `json` is empty.
    fn with(member: &str, json: &str) -> String {
        let mut value: serde_json::Map<String, Value> = serde_json::from_str(GOOD).unwrap();
        if json.is_empty() {
            value.remove(member);
        } else {
            value.insert(member.into(), serde_json::from_str(json).unwrap());
        }
        Value::Object(value).to_string()
    }

    #[track_caller]
    fn check_refused(line: &str, field: Option<&str>, words: &str) {
        let err = parse_one(line).unwrap_err();
        assert_eq!(err.line, 1, "{err}");
        assert_eq!(err.code, ReasonCode::Ff01, "{err}");
        assert_eq!(err.field.as_deref(), field, "{err}");
        assert!(err.detail.contains(words), "{err}");
    }

    #[test]
    fn a_minimal_line_gets_defaults_and_a_derived_v4_uetr() {
        let p = parse_one(GOOD).unwrap();
        assert_eq!((p.sending.as_str(), p.receiving.as_str()), ("JP", "SG"));
        assert_eq!(p.amount.value, "25000");
        assert_eq!(p.amount_minor, 25_000);
        assert_eq!(p.target_currency.alpha, "SGD");
        assert_eq!(p.creditor_account, 2001);
        assert_eq!(p.debtor_name, "account 1001 at KKHAJPJ0");
        assert_eq!(p.charge_bearer, ChargeBearer::Shar);
        assert!(p.uetr_derived);
        assert_eq!(p.uetr.version(), 4);
        assert_eq!(p.uetr.0[8] & 0xc0, 0x80);
        assert!(p.end_to_end_id.starts_with("E2E-"));
        assert_eq!(p.expect, None);
    }

    #[test]
    fn derived_uetrs_are_stable_and_depend_on_content_occurrence_and_seed() {
        let a = parse_keyed(GOOD, "");
        let b = parse_keyed(GOOD, "");
        assert_eq!(a[0].uetr, b[0].uetr, "same file, same UETR");
        let twice = parse_keyed(&format!("{GOOD}\n{GOOD}\n"), "");
        assert_eq!(twice[0].uetr, a[0].uetr);
        assert_ne!(
            twice[1].uetr, twice[0].uetr,
            "an identical line is another payment"
        );
        let other = with("amount", r#"{"currency":"JPY","value":"25001"}"#);
        let moved = parse_keyed(&format!("{other}\n{GOOD}\n"), "");
        assert_eq!(
            moved[1].uetr, a[0].uetr,
            "inserting another line changes nothing"
        );
        assert_ne!(moved[0].uetr, a[0].uetr);
        let expect = with("expect", r#"{"status":"ACSC"}"#);
        assert_eq!(
            parse_one(&expect).unwrap().uetr,
            a[0].uetr,
            "expect is not content"
        );
        let seeded = parse_keyed(GOOD, "run 2");
        assert_ne!(seeded[0].uetr, a[0].uetr);
        let spaced = GOOD.replace(',', ", ");
        assert_eq!(
            parse_one(&spaced).unwrap().uetr,
            a[0].uetr,
            "whitespace is not content"
        );
    }

    /// Another bank (or anyone without KKHAJPJ0's signing key) cannot compute the UETRs of
    /// KKHAJPJ0's file, so it cannot take them first (issue 11, defect 3).
    #[test]
    fn derived_uetrs_need_the_signing_banks_key() {
        let own = parse_keyed(GOOD, "");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../certs/jp/banks");
        let other = Bank::load(&dir.join("KKHBJPJ0.pem"), &dir.join("KKHBJPJ0.key.pem")).unwrap();
        let theirs = parse_as(&other, GOOD, "");
        assert_ne!(own[0].uetr, theirs[0].uetr);
        assert_eq!(theirs[0].uetr.version(), 4);
        assert!(
            own[0]
                .end_to_end_id
                .ends_with(&own[0].uetr.to_string()[..8])
        );
        // Not keyed yet: the nil UUID, which every node refuses, never a guessable UETR.
        let unkeyed = parse(GOOD.as_bytes(), &parties()).unwrap();
        assert_eq!(unkeyed[0].uetr, Uetr([0; 16]));
        // An explicit UETR is the line's own, whoever keys the file.
        let line = with("uetr", r#""EB6305C9-1F7F-49DE-AED0-16487C27B42D""#);
        assert_eq!(
            parse_as(&other, &line, "x")[0].uetr,
            parse_keyed(&line, "")[0].uetr
        );
    }

    #[test]
    fn an_explicit_uetr_and_references_are_kept() {
        let line = with("uetr", r#""EB6305C9-1F7F-49DE-AED0-16487C27B42D""#);
        let p = parse_one(&line).unwrap();
        assert!(!p.uetr_derived);
        assert_eq!(p.uetr.to_string(), "eb6305c9-1f7f-49de-aed0-16487c27b42d");
        let line = with("end_to_end_id", r#""INV-42""#);
        assert_eq!(parse_one(&line).unwrap().end_to_end_id, "INV-42");
    }

    #[test]
    fn expectations_parse_and_match_outcomes() {
        let settled = parse_one(&with("expect", r#"{"status":"ACSC"}"#)).unwrap();
        assert_eq!(settled.expect, Some(Expect::Settled));
        let am04 = parse_one(&with("expect", r#"{"reason":"AM04"}"#)).unwrap();
        let am04 = am04.expect.unwrap();
        assert_eq!(am04, Expect::Rejected(Some(ReasonCode::Am04)));
        assert!(am04.is_met_by("RJCT", "AM04"));
        assert!(!am04.is_met_by("RJCT", "AC01"));
        assert!(!am04.is_met_by("ACSC", ""));
        assert!(!Expect::Settled.is_met_by("PDNG", ""));
        assert!(Expect::Rejected(None).is_met_by("RJCT", "DUPL"));
        assert_eq!(am04.to_string(), "RJCT AM04");
    }

    #[test]
    fn blank_lines_crlf_and_a_byte_order_mark_are_accepted() {
        let file = format!("\u{feff}{GOOD}\r\n\r\n   \n{GOOD}\r\n");
        let payments = parse(file.as_bytes(), &parties()).unwrap();
        assert_eq!(payments.len(), 2);
        assert_eq!(payments[1].line, 4);
    }

    #[test]
    fn an_empty_file_is_an_error() {
        for file in ["", "\n\n", "\u{feff}", " \r\n"] {
            let errors = parse(file.as_bytes(), &parties()).unwrap_err();
            assert_eq!(errors.len(), 1);
            assert!(errors[0].detail.contains("no payment lines"), "{file:?}");
            assert!(
                errors[0].to_string().starts_with("file: FF01: "),
                "{}",
                errors[0]
            );
        }
    }

    #[test]
    fn bad_json_and_non_objects_are_refused() {
        check_refused("{\"debtor_agent\": ", None, "not valid JSON");
        check_refused("[1, 2]", None, "one JSON object");
        check_refused("42", None, "one JSON object");
        check_refused("nonsense", None, "not valid JSON");
    }

    #[test]
    fn unknown_and_repeated_members_are_named() {
        check_refused(&with("amout", "1"), Some("amout"), "unknown member");
        let twice = GOOD.replacen('{', r#"{"uetr":null,"uetr":null,"#, 1);
        check_refused(&twice, Some("uetr"), "given twice");
        check_refused(
            &with("amount", r#"{"currency":"JPY","value":"1","ccy":"x"}"#),
            Some("amount.ccy"),
            "unknown member",
        );
        check_refused(
            &with("expect", r#"{"status":"ACSC","code":"x"}"#),
            Some("expect.code"),
            "unknown member",
        );
    }

    #[test]
    fn members_of_nested_objects_given_twice_or_null_are_named() {
        check_refused(
            &with("amount", r#"{"currency":"JPY","value":"1"}"#)
                .replace(r#""value":"1""#, r#""value":"1","value":"2""#),
            Some("amount.value"),
            "given twice",
        );
        check_refused(
            &with("amount", r#"{"currency":null,"value":"1"}"#),
            Some("amount.currency"),
            "must be a string, not null",
        );
        check_refused(
            &with("signer", r#"{"cert":"a.pem"}"#),
            Some("signer.key"),
            "missing",
        );
        // A member repeated inside a value the line ignores (a comment) is not a member
        // given twice: the unknown member is what is reported.
        check_refused(
            &GOOD.replacen('{', r#"{"amout":1,"comment":{"x":1,"x":2},"#, 1),
            Some("amout"),
            "unknown member",
        );
        check_refused(&format!("{GOOD} x"), None, "not valid JSON");
    }

    #[test]
    fn the_derived_uetr_is_pinned_to_the_documented_derivation() {
        // HMAC-SHA256 under KKHAJPJ0's derived key over the domain tag, the JSON seed, the
        // canonical members and occurrence 1, computed apart from this code: a change here
        // would make a re-run pay again.
        let p = parse_one(GOOD).unwrap();
        assert_eq!(p.uetr.to_string(), "3286847c-e2c4-40b9-81f1-0fd58402eacf");
    }

    #[test]
    fn missing_and_mistyped_members_are_named() {
        check_refused(&with("debtor_agent", ""), Some("debtor_agent"), "missing");
        check_refused(
            &with("creditor_account", ""),
            Some("creditor_account"),
            "missing",
        );
        check_refused(&with("amount", ""), Some("amount"), "missing");
        check_refused(
            &with("debtor_agent", "7"),
            Some("debtor_agent"),
            "must be a string",
        );
        check_refused(
            &with("amount", r#""25000 JPY""#),
            Some("amount"),
            "must be an object",
        );
        check_refused(
            &with("debtor_account", "-1"),
            Some("debtor_account"),
            "non-negative",
        );
        check_refused(
            &with("debtor_account", "1.5"),
            Some("debtor_account"),
            "non-negative",
        );
        check_refused(
            &with("debtor_account", r#""01""#),
            Some("debtor_account"),
            "leading zero",
        );
        check_refused(
            &with("debtor_account", r#""0""#),
            Some("debtor_account"),
            "non-zero",
        );
    }

    #[test]
    fn bad_amounts_and_currencies_are_refused() {
        let amount = |json: &str| with("amount", json);
        check_refused(
            &amount(r#"{"currency":"JPY","value":25000}"#),
            Some("amount.value"),
            "JSON number",
        );
        check_refused(
            &amount(r#"{"currency":"JPY","value":"0"}"#),
            Some("amount.value"),
            "zero",
        );
        check_refused(
            &amount(r#"{"currency":"JPY","value":"-5"}"#),
            Some("amount.value"),
            "JPY amount",
        );
        check_refused(
            &amount(r#"{"currency":"JPY","value":"1.5"}"#),
            Some("amount.value"),
            "JPY amount",
        );
        check_refused(
            &amount(r#"{"currency":"JPY","value":"1e3"}"#),
            Some("amount.value"),
            "JPY amount",
        );
        let huge = format!(r#"{{"currency":"JPY","value":"{}"}}"#, "9".repeat(60));
        check_refused(&amount(&huge), Some("amount.value"), "longer than");
        check_refused(
            &amount(r#"{"currency":"XXX","value":"5"}"#),
            Some("amount.currency"),
            "unknown currency",
        );
        check_refused(
            &amount(r#"{"currency":"jpy","value":"5"}"#),
            Some("amount.currency"),
            "unknown currency",
        );
        check_refused(
            &amount(r#"{"currency":"SGD","value":"5.00"}"#),
            Some("amount.currency"),
            "debits in JPY",
        );
        check_refused(
            &with("target_currency", r#""THB""#),
            Some("target_currency"),
            "credits in SGD",
        );
        check_refused(
            &with("target_currency", r#""ZZZ""#),
            Some("target_currency"),
            "ISO 4217",
        );
    }

    #[test]
    fn bad_uetrs_bics_and_references_are_refused() {
        check_refused(&with("uetr", r#""not-a-uuid""#), Some("uetr"), "not a UETR");
        check_refused(
            &with("uetr", r#""00000000-0000-0000-0000-000000000000""#),
            Some("uetr"),
            "nil UUID",
        );
        check_refused(
            &with("debtor_agent", r#""kkhajpj0""#),
            Some("debtor_agent"),
            "invalid character",
        );
        check_refused(
            &with("creditor_agent", r#""KKHATHT0""#),
            Some("creditor_agent"),
            "not a party",
        );
        check_refused(
            &with("creditor_agent", r#""KKHBJPJ0""#),
            Some("creditor_agent"),
            "cross-border",
        );
        let long = format!("\"{}\"", "x".repeat(36));
        check_refused(
            &with("end_to_end_id", &long),
            Some("end_to_end_id"),
            "1 to 35",
        );
        check_refused(
            &with("end_to_end_id", r#""""#),
            Some("end_to_end_id"),
            "1 to 35",
        );
        check_refused(
            &with("creditor_name", r#""a\u0007b""#),
            Some("creditor_name"),
            "control",
        );
        check_refused(
            &with("charge_bearer", r#""OUR""#),
            Some("charge_bearer"),
            "not one of",
        );
        check_refused(&with("fault", r#""flaky""#), Some("fault"), "bad_signature");
    }

    #[test]
    fn bad_expectations_are_refused() {
        check_refused(
            &with("expect", r#""ACSC""#),
            Some("expect"),
            "must be an object",
        );
        check_refused(
            &with("expect", r#"{"status":"PDNG"}"#),
            Some("expect.status"),
            "not ACSC or RJCT",
        );
        check_refused(
            &with("expect", r#"{"reason":"XX99"}"#),
            Some("expect.reason"),
            "not a reason code",
        );
        check_refused(
            &with("expect", r#"{"status":"ACSC","reason":"AM04"}"#),
            Some("expect.reason"),
            "no reason code",
        );
        check_refused(&with("expect", "{}"), Some("expect"), "give a status");
    }

    #[test]
    fn overlong_and_non_utf8_lines_are_refused_without_parsing() {
        let long = format!("{GOOD}{}", " ".repeat(LINE_BYTES_MAX));
        check_refused(&long, None, "bytes; at most");
        let mut bytes = GOOD.as_bytes().to_vec();
        bytes.insert(10, 0xff);
        let err = parse(&bytes, &parties()).unwrap_err();
        assert!(err[0].detail.contains("not UTF-8"), "{:?}", err[0]);
    }

    #[test]
    fn every_bad_line_is_reported_with_its_number_up_to_the_bound() {
        let file = format!("{GOOD}\nnot json\n{GOOD}\n{}\n", with("uetr", "1"));
        let errors = parse(file.as_bytes(), &parties()).unwrap_err();
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 4]);
        assert!(
            errors[0].to_string().starts_with("line 2: FF01: "),
            "{}",
            errors[0]
        );
        assert!(
            errors[1]
                .to_string()
                .starts_with("line 4, member uetr: FF01: "),
            "{}",
            errors[1]
        );
        let many = "x\n".repeat(ERRORS_MAX * 2);
        assert_eq!(
            parse(many.as_bytes(), &parties()).unwrap_err().len(),
            ERRORS_MAX
        );
    }

    #[test]
    fn a_report_is_the_same_payment_only_with_the_same_reference_and_amount() {
        let p = parse_one(GOOD).unwrap();
        let report = |e2e: &str, value: &str| pb::PaymentStatusReport {
            end_to_end_id: e2e.into(),
            interbank_settlement_amount: Some(pb::ActiveCurrencyAndAmount {
                currency: "JPY".into(),
                value: value.into(),
            }),
            ..pb::PaymentStatusReport::default()
        };
        assert!(p.is_same_as(&report(&p.end_to_end_id, "25000")));
        assert!(!p.is_same_as(&report(&p.end_to_end_id, "25001")));
        assert!(!p.is_same_as(&report("E2E-other", "25000")));
        assert!(!p.is_same_as(&pb::PaymentStatusReport::default()));
    }

    /// The JP node's quote for `payment`, verified as the sending bank's node would.
    fn verified_quote(payment: &Payment) -> VerifiedQuote {
        let issuer = QuoteIssuer {
            jurisdiction: "JP".to_owned(),
            key: key("jp/node/receipt.key.pem"),
            chain: chain("jp/node/receipt.pem"),
            ttl_secs: 60,
        };
        let jpy = money::currency("JPY").unwrap();
        let offer = QuoteOffer {
            counterparty: &payment.receiving,
            source: (jpy, payment.amount_minor),
            target_currency: payment.target_currency,
            mid: Rate::parse("0.0087").unwrap(),
            spread_bps: 25,
        };
        let signed = issuer.issue(&offer, at_2027(), "Q-1".to_owned()).unwrap();
        let asked = QuoteAsk {
            source: (jpy, payment.amount_minor),
            counterparty: payment.receiving.clone(),
            target_currency: payment.target_currency,
        };
        verify_quote_for(signed, &asked, &mra(), "JP", at_2027(), 30).unwrap()
    }

    #[test]
    fn faults_change_the_signature_or_the_times() {
        let bank = bank_a();
        let now = at_2027();
        let plain = parse_one(GOOD).unwrap();
        let quote = verified_quote(&plain);
        let good = instruction(&bank, &plain, &quote, now);
        let mut bad = plain.clone();
        bad.fault = Some(Fault::BadSignature);
        let flipped = instruction(&bank, &bad, &quote, now);
        assert_eq!(flipped.payload, good.payload);
        assert_ne!(flipped.signature, good.signature);
        let mut old = plain;
        old.fault = Some(Fault::ExpiredInstruction);
        let expired = instruction(&bank, &old, &quote, now);
        let body = pb::CreditTransferInstruction::decode(expired.payload.as_slice()).unwrap();
        let expiry = body.expiry_date_time.unwrap().seconds;
        assert!(
            expiry < now.0 - 180,
            "expired well beyond a few minutes of skew"
        );
    }

    #[test]
    fn an_instruction_carries_the_line_references_and_the_verified_quote() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../certs/jp/banks");
        let bank = Bank::load(&dir.join("KKHAJPJ0.pem"), &dir.join("KKHAJPJ0.key.pem")).unwrap();
        let payment = parse_one(&with("charge_bearer", r#""DEBT""#)).unwrap();
        let quote = verified_quote(&payment);
        let signed = instruction(&bank, &payment, &quote, at_2027());
        let body = instruction::decode(&signed).unwrap();
        assert_eq!(body.uetr, payment.uetr);
        assert_eq!(body.end_to_end_id, payment.end_to_end_id);
        assert_eq!(body.instruction_id, payment.instruction_id);
        assert_eq!(body.amount_minor, payment.amount_minor);
        assert_eq!(body.charge_bearer, ChargeBearer::Debt);
        let raw = pb::CreditTransferInstruction::decode(signed.payload.as_slice()).unwrap();
        assert_eq!(raw.quote.as_ref(), Some(quote.signed()));
    }
}
