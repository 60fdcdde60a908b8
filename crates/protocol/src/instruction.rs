//! The payment instruction: a pacs.008-style `CreditTransferInstruction`, decoded from the
//! exact signed bytes and validated field by field into an [`Instruction`].
//!
//! [`decode`] checks format only (every refusal is FF01 and names the field and the limit); the
//! signature and chain are [`crate::signed::verify`]'s job, the quote's [`crate::quote`]'s, and
//! accounts, funds and sanctions the settlement code's. Lengths follow ISO 20022: `Max35Text`
//! for references, `Max140Text` for names and remittance information, counted in characters.

use kakehashi_pki::UnixTime;
use kakehashi_proto::pb;
use prost::Message as _;
use sha2::{Digest as _, Sha256};

use crate::money::{Currency, excerpt, parse_amount};
use crate::reason::Rejection;
use crate::signed::PAYLOAD_LEN_MAX;

/// ISO 20022 `Max35Text`: end-to-end id and instruction id.
pub const ID_CHARS_MAX: usize = 35;

/// ISO 20022 `Max140Text`: debtor and creditor names.
pub const NAME_CHARS_MAX: usize = 140;

/// ISO 20022 `Max140Text`: one occurrence of unstructured remittance information (`RmtInf/Ustrd`).
pub const REMITTANCE_CHARS_MAX: usize = 140;

/// Most digits in a decimal account id: u128::MAX has 39.
const ACCOUNT_DIGITS_MAX: usize = 39;

/// Earliest instant a `google.protobuf.Timestamp` may hold: 0001-01-01T00:00:00Z.
pub const TIMESTAMP_SECONDS_MIN: i64 = -62_135_596_800;

/// Latest instant a `google.protobuf.Timestamp` may hold: 9999-12-31T23:59:59Z.
pub const TIMESTAMP_SECONDS_MAX: i64 = 253_402_300_799;

/// Nanoseconds are 0 to 999,999,999 (google/protobuf/timestamp.proto).
const TIMESTAMP_NANOS_MAX: i32 = 999_999_999;

/// A validated instruction. Everything in it came from the signed payload whose SHA-256 is
/// `payload_sha256`.
#[derive(Clone, Debug)]
pub struct Instruction {
    /// Unique end-to-end transaction reference.
    pub uetr: Uetr,
    /// The debtor's own reference (1 to 35 characters).
    pub end_to_end_id: String,
    /// The debtor agent's reference (1 to 35 characters).
    pub instruction_id: String,
    /// Creation time (whole seconds; sub-second digits are dropped).
    pub created: UnixTime,
    /// The instruction may not settle after this instant; later than `created`.
    pub expiry: UnixTime,
    /// The interbank settlement amount in minor units, positive.
    pub amount_minor: u128,
    /// The interbank settlement currency.
    pub currency: &'static Currency,
    /// Who bears charges (carried for the receiver; kakehashi charges only the quoted spread).
    pub charge_bearer: ChargeBearer,
    /// The debtor agent's BIC; must be the signer's CN (checked by the caller).
    pub debtor_agent_bic: String,
    /// The debtor's account on the sending ledger, non-zero.
    pub debtor_account: u128,
    /// The debtor's name (1 to 140 characters).
    pub debtor_name: String,
    /// The creditor agent's BIC.
    pub creditor_agent_bic: String,
    /// The creditor's account on the receiving ledger, non-zero.
    pub creditor_account: u128,
    /// The creditor's name (1 to 140 characters).
    pub creditor_name: String,
    /// Unstructured remittance information (0 to 140 characters).
    pub remittance_information: String,
    /// The signed quote, unverified here.
    pub quote: pb::Signed,
    /// SHA-256 of the signed payload: what the relay and receipts refer to.
    pub payload_sha256: [u8; 32],
}

/// Decodes and validates the instruction in `signed.payload`. Does not check the signature.
pub fn decode(signed: &pb::Signed) -> Result<Instruction, Rejection> {
    if signed.payload.len() > PAYLOAD_LEN_MAX {
        return Err(Rejection::format(format!(
            "instruction payload is {} bytes; at most {PAYLOAD_LEN_MAX} are allowed",
            signed.payload.len()
        )));
    }
    let raw = pb::CreditTransferInstruction::decode(signed.payload.as_slice()).map_err(|e| {
        Rejection::format(format!("payload is not a CreditTransferInstruction: {e}"))
    })?;
    let uetr = Uetr::parse(&raw.uetr).map_err(|r| prefixed("uetr", r))?;
    let end_to_end_id = text(
        "end_to_end_id",
        raw.end_to_end_id,
        ID_CHARS_MAX,
        Required::Yes,
    )?;
    let instruction_id = text(
        "instruction_id",
        raw.instruction_id,
        ID_CHARS_MAX,
        Required::Yes,
    )?;
    let created = unix_time("creation_date_time", raw.creation_date_time.as_ref())?;
    let expiry = unix_time("expiry_date_time", raw.expiry_date_time.as_ref())?;
    if expiry <= created {
        return Err(Rejection::format(format!(
            "expiry_date_time {expiry} must be later than creation_date_time {created}"
        )));
    }
    let amount = raw.interbank_settlement_amount.as_ref().ok_or_else(|| {
        Rejection::format("interbank_settlement_amount is missing; give the amount to debit")
    })?;
    let (currency, amount_minor) =
        parse_amount(amount).map_err(|r| prefixed("interbank_settlement_amount", r))?;
    if amount_minor == 0 {
        return Err(Rejection::format(
            "interbank_settlement_amount is zero; a payment must be positive",
        ));
    }
    let charge_bearer = ChargeBearer::parse(&raw.charge_bearer)?;
    let debtor_agent_bic = bic("debtor_agent_bic", raw.debtor_agent_bic)?;
    let debtor_account = account("debtor_account", &raw.debtor_account)?;
    let debtor_name = text(
        "debtor_name",
        raw.debtor_name,
        NAME_CHARS_MAX,
        Required::Yes,
    )?;
    let creditor_agent_bic = bic("creditor_agent_bic", raw.creditor_agent_bic)?;
    let creditor_account = account("creditor_account", &raw.creditor_account)?;
    let creditor_name = text(
        "creditor_name",
        raw.creditor_name,
        NAME_CHARS_MAX,
        Required::Yes,
    )?;
    let remittance_information = text(
        "remittance_information",
        raw.remittance_information,
        REMITTANCE_CHARS_MAX,
        Required::No,
    )?;
    let quote = raw.quote.ok_or_else(|| {
        Rejection::format("quote is missing; include the signed quote from GetQuote")
    })?;
    Ok(Instruction {
        uetr,
        end_to_end_id,
        instruction_id,
        created,
        expiry,
        amount_minor,
        currency,
        charge_bearer,
        debtor_agent_bic,
        debtor_account,
        debtor_name,
        creditor_agent_bic,
        creditor_account,
        creditor_name,
        remittance_information,
        quote,
        payload_sha256: Sha256::digest(&signed.payload).into(),
    })
}

/// A signed instruction envelope with the [`Instruction`] decoded from its payload, for a
/// caller that looks inside the instruction before handing the envelope on (the node's
/// participant API checks the debtor agent before the engine takes the payment), so the
/// envelope is decoded once.
///
/// Only [`decode_signed`] makes one, from the envelope it then holds, and neither half can be
/// replaced: whoever is handed one knows the instruction is exactly what the envelope's
/// payload says (the signature is not checked here; that is [`crate::signed::verify`]'s job,
/// over the same envelope).
///
/// ```compile_fail,E0451
/// use kakehashi_protocol::instruction::SignedInstruction;
/// let forged = SignedInstruction { signed: todo!(), instruction: todo!() };
/// ```
#[derive(Clone, Debug)]
pub struct SignedInstruction {
    signed: pb::Signed,
    instruction: Instruction,
}

impl SignedInstruction {
    /// The envelope as received: the exact signed bytes, the signature and the chain.
    pub fn signed(&self) -> &pb::Signed {
        &self.signed
    }

    /// The instruction decoded from the envelope's payload.
    pub fn instruction(&self) -> &Instruction {
        &self.instruction
    }

    /// The envelope and its instruction, taken apart.
    pub fn into_parts(self) -> (pb::Signed, Instruction) {
        (self.signed, self.instruction)
    }
}

/// [`decode`] of `signed`, kept together with the envelope it was decoded from.
pub fn decode_signed(signed: pb::Signed) -> Result<SignedInstruction, Rejection> {
    let instruction = decode(&signed)?;
    Ok(SignedInstruction {
        signed,
        instruction,
    })
}

/// A unique end-to-end transaction reference: a UUID (RFC 9562, formerly RFC 4122) with the
/// RFC 4122 variant, as SWIFT gpi uses it. Ordered by its bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Uetr(pub [u8; 16]);

/// Length of the UUID text form 8-4-4-4-12 (RFC 9562 §4).
const UETR_TEXT_LEN: usize = 36;

/// Byte offsets of the hyphens in the text form.
const UETR_HYPHENS: [usize; 4] = [8, 13, 18, 23];

impl Uetr {
    /// Parses the RFC 9562 §4 text form: 32 hex digits (either case) grouped 8-4-4-4-12 by
    /// hyphens. The variant must be RFC 4122's (`10xx`, RFC 9562 §4.1), the version one RFC 9562
    /// defines (1 to 8, §4.2), and the nil UUID is refused.
    pub fn parse(text: &str) -> Result<Self, Rejection> {
        let refuse = |problem: &str| {
            Rejection::format(format!(
                "{} is not a UETR: {problem}; expected a UUID such as \
                 eb6305c9-1f7f-49de-aed0-16487c27b42d",
                excerpt(text)
            ))
        };
        if text.len() != UETR_TEXT_LEN {
            return Err(refuse(&format!(
                "{} bytes instead of {UETR_TEXT_LEN}",
                text.len()
            )));
        }
        let mut bytes = [0u8; 16];
        let mut nibbles = 0usize;
        for (position, byte) in text.bytes().enumerate() {
            if UETR_HYPHENS.contains(&position) {
                if byte != b'-' {
                    return Err(refuse(&format!("expected '-' at position {position}")));
                }
                continue;
            }
            let value = match byte {
                b'0'..=b'9' => byte - b'0',
                b'a'..=b'f' => byte - b'a' + 10,
                b'A'..=b'F' => byte - b'A' + 10,
                _ => {
                    return Err(refuse(&format!(
                        "expected a hex digit at position {position}"
                    )));
                }
            };
            // 32 non-hyphen positions in a 36-byte string with 4 hyphens: nibbles < 32.
            if let Some(slot) = bytes.get_mut(nibbles / 2) {
                *slot = (*slot << 4) | value;
            }
            nibbles += 1;
        }
        let uetr = Self(bytes);
        if bytes == [0; 16] {
            return Err(refuse("the nil UUID is not a reference"));
        }
        if bytes[8] & 0xc0 != 0x80 {
            return Err(refuse(
                "its variant is not RFC 4122's (the first digit of the fourth group must be 8, 9, \
                 a or b)",
            ));
        }
        if !(1..=8).contains(&uetr.version()) {
            return Err(refuse(
                "its version (first digit of the third group) must be 1 to 8",
            ));
        }
        Ok(uetr)
    }

    /// A fresh random (version 4) UETR, RFC 9562 §5.4: 122 random bits, the version and variant
    /// fixed. Fails only if the system's random source does.
    pub fn new_v4(rng: &dyn ring::rand::SecureRandom) -> Result<Self, ring::error::Unspecified> {
        let mut bytes = [0u8; 16];
        rng.fill(&mut bytes)?;
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Ok(Self(bytes))
    }

    /// The version nibble (RFC 9562 §4.2).
    pub fn version(self) -> u8 {
        self.0[6] >> 4
    }

    /// The UETR as a u128 (big-endian), e.g. to derive ledger ids.
    pub fn as_u128(self) -> u128 {
        u128::from_be_bytes(self.0)
    }
}

impl std::fmt::Display for Uetr {
    /// Lower-case hyphenated, RFC 9562 §4.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (index, byte) in self.0.iter().enumerate() {
            if matches!(index, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Uetr {
    type Err = Rejection;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// ISO 20022 `ChargeBearerType1Code` (`ChrgBr`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChargeBearer {
    /// `CRED`: all charges borne by the creditor.
    Cred,
    /// `DEBT`: all charges borne by the debtor.
    Debt,
    /// `SHAR`: each side bears its own agent's charges.
    Shar,
    /// `SLEV`: as the service level (scheme rules) says.
    Slev,
}

impl ChargeBearer {
    /// Every code.
    pub const ALL: [Self; 4] = [Self::Cred, Self::Debt, Self::Shar, Self::Slev];

    /// The four-letter code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cred => "CRED",
            Self::Debt => "DEBT",
            Self::Shar => "SHAR",
            Self::Slev => "SLEV",
        }
    }

    /// Parses `charge_bearer`: exactly one of DEBT, CRED, SHAR, SLEV (no default when empty).
    pub fn parse(text: &str) -> Result<Self, Rejection> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == text)
            .ok_or_else(|| {
                Rejection::format(format!(
                    "charge_bearer {} is not one of DEBT, CRED, SHAR, SLEV",
                    excerpt(text)
                ))
            })
    }
}

impl std::fmt::Display for ChargeBearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `google.protobuf.Timestamp` for `time` (whole seconds).
pub fn to_timestamp(time: UnixTime) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.0,
        nanos: 0,
    }
}

/// The instant a wire timestamp `field` names, in whole seconds (sub-second digits dropped,
/// i.e. rounded toward the past). FF01 when missing or outside the range the type allows.
pub fn unix_time(
    field: &str,
    timestamp: Option<&prost_types::Timestamp>,
) -> Result<UnixTime, Rejection> {
    let Some(timestamp) = timestamp else {
        return Err(Rejection::format(format!("{field} is missing")));
    };
    if !(TIMESTAMP_SECONDS_MIN..=TIMESTAMP_SECONDS_MAX).contains(&timestamp.seconds) {
        return Err(Rejection::format(format!(
            "{field} has {} seconds; a timestamp lies between 0001-01-01 and 9999-12-31",
            timestamp.seconds
        )));
    }
    if !(0..=TIMESTAMP_NANOS_MAX).contains(&timestamp.nanos) {
        return Err(Rejection::format(format!(
            "{field} has {} nanoseconds; they must be 0 to {TIMESTAMP_NANOS_MAX}",
            timestamp.nanos
        )));
    }
    Ok(UnixTime(timestamp.seconds))
}

/// Shortest BIC (ISO 9362): 4 party, 2 country, 2 location characters.
const BIC_LEN: usize = 8;

/// A BIC with a 3-character branch code.
const BIC_BRANCH_LEN: usize = 11;

/// Leading BIC characters that must be letters: party prefix and ISO 3166 country code.
const BIC_LETTERS: usize = 6;

/// Validates a BIC: 8 or 11 characters of A–Z and 0–9, letters in positions 1 to 6.
pub fn bic(field: &str, value: String) -> Result<String, Rejection> {
    match bic_problem(&value) {
        None => Ok(value),
        Some(problem) => Err(Rejection::format(format!(
            "{field} {} {problem}; a BIC is 8 or 11 characters A-Z/0-9, letters in positions 1-6 \
             (e.g. KKHAJPJ0)",
            excerpt(&value)
        ))),
    }
}

/// What makes `value` not a BIC (ISO 9362), or `None` if it is one. The one BIC rule of the
/// project: configurations and sanctions lists check BICs with it too, each wording the error
/// for its own reader.
pub fn bic_problem(value: &str) -> Option<String> {
    if value.len() != BIC_LEN && value.len() != BIC_BRANCH_LEN {
        return Some(format!("is {} bytes long", value.len()));
    }
    for (index, byte) in value.bytes().enumerate() {
        let ok = if index < BIC_LETTERS {
            byte.is_ascii_uppercase()
        } else {
            byte.is_ascii_uppercase() || byte.is_ascii_digit()
        };
        if !ok {
            return Some(format!(
                "has an invalid character at position {}",
                index + 1
            ));
        }
    }
    None
}

/// Parses a decimal account id: ASCII digits, no sign or leading zero, a non-zero u128.
pub fn account(field: &str, value: &str) -> Result<u128, Rejection> {
    let refuse = |problem: &str| {
        Rejection::format(format!(
            "{field} {} {problem}; an account is a non-zero decimal integer below 2^128",
            excerpt(value)
        ))
    };
    if value.is_empty() {
        return Err(refuse("is empty"));
    }
    if value.len() > ACCOUNT_DIGITS_MAX {
        return Err(refuse(&format!(
            "has more than {ACCOUNT_DIGITS_MAX} digits"
        )));
    }
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refuse("is not all ASCII digits"));
    }
    if value.len() > 1 && value.starts_with('0') {
        return Err(refuse("has a leading zero"));
    }
    let id: u128 = value
        .parse()
        .map_err(|_| refuse("does not fit in 128 bits"))?;
    if id == 0 {
        return Err(refuse("is zero"));
    }
    Ok(id)
}

/// Whether an empty text field is refused.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Required {
    No,
    Yes,
}

/// Validates free text: at most `max` characters, no control characters (they would let a
/// sender forge lines in logs and receipts), non-empty when required.
fn text(field: &str, value: String, max: usize, required: Required) -> Result<String, Rejection> {
    if required == Required::Yes && value.is_empty() {
        return Err(Rejection::format(format!(
            "{field} is empty; it is required"
        )));
    }
    let chars = value.chars().count();
    if chars > max {
        return Err(Rejection::format(format!(
            "{field} is {chars} characters; at most {max} are allowed (ISO 20022 Max{max}Text)"
        )));
    }
    if let Some(position) = value.chars().position(char::is_control) {
        return Err(Rejection::format(format!(
            "{field} has a control character at character {position}; only printable text is \
             allowed"
        )));
    }
    if let Some(position) = value.chars().position(is_bidi_control) {
        return Err(Rejection::format(format!(
            "{field} has a bidirectional formatting character at character {position}; it \
             would make the text display other than it reads (Unicode UAX #9)"
        )));
    }
    Ok(value)
}

/// The explicit bidirectional formatting characters of Unicode UAX #9 §2 (embeddings,
/// overrides, isolates and the implicit marks): invisible, they reorder what a reader sees, so a
/// name could display as another (the "Trojan Source" spoofing, CVE-2021-42574).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Validates a party or account name by the rules of the instruction's debtor and creditor
/// names: required, at most [`NAME_CHARS_MAX`] characters, no control and no bidirectional
/// formatting character. Nodes apply it to the names operators give accounts too.
pub fn name(field: &str, value: String) -> Result<String, Rejection> {
    text(field, value, NAME_CHARS_MAX, Required::Yes)
}

/// Prefixes a rejection's detail with the field it concerns.
fn prefixed(field: &str, rejection: Rejection) -> Rejection {
    Rejection::new(rejection.code, format!("{field}: {}", rejection.detail))
}

#[cfg(test)]
mod tests {
    use kakehashi_proto::SIGNING_DOMAIN_INSTRUCTION;
    use proptest::prelude::*;

    use super::*;
    use crate::reason::ReasonCode;
    use crate::signed::sign;
    use crate::signed::test_support::{chain, key};

    const UETR: &str = "eb6305c9-1f7f-49de-aed0-16487c27b42d";

    fn valid() -> pb::CreditTransferInstruction {
        pb::CreditTransferInstruction {
            uetr: UETR.to_owned(),
            end_to_end_id: "E2E-0001".to_owned(),
            instruction_id: "INSTR-0001".to_owned(),
            creation_date_time: Some(to_timestamp(UnixTime(1_798_761_600))),
            expiry_date_time: Some(to_timestamp(UnixTime(1_798_761_900))),
            interbank_settlement_amount: Some(pb::ActiveCurrencyAndAmount {
                currency: "JPY".to_owned(),
                value: "10000".to_owned(),
            }),
            charge_bearer: "SHAR".to_owned(),
            debtor_agent_bic: "KKHAJPJ0".to_owned(),
            debtor_account: "1001".to_owned(),
            debtor_name: "Yamada Taro".to_owned(),
            creditor_agent_bic: "KKHASGS0".to_owned(),
            creditor_account: "2001".to_owned(),
            creditor_name: "Tan Wei Ling".to_owned(),
            remittance_information: "invoice 42".to_owned(),
            quote: Some(pb::Signed::default()),
        }
    }

    fn signed(raw: &pb::CreditTransferInstruction) -> pb::Signed {
        sign(
            SIGNING_DOMAIN_INSTRUCTION,
            raw.encode_to_vec(),
            &key("jp/banks/KKHAJPJ0.key.pem"),
            &chain("jp/banks/KKHAJPJ0.pem"),
        )
    }

    #[track_caller]
    fn refused(edit: impl FnOnce(&mut pb::CreditTransferInstruction), needle: &str) {
        let mut raw = valid();
        edit(&mut raw);
        let r = decode(&signed(&raw)).expect_err("must be refused");
        assert_eq!(r.code, ReasonCode::Ff01, "{}", r.detail);
        assert!(r.detail.contains(needle), "{:?} lacks {needle:?}", r.detail);
    }

    #[test]
    fn decodes_a_valid_instruction() {
        let s = signed(&valid());
        let i = decode(&s).expect("valid");
        assert_eq!(i.uetr.to_string(), UETR);
        assert_eq!(i.end_to_end_id, "E2E-0001");
        assert_eq!(i.instruction_id, "INSTR-0001");
        assert_eq!(i.created, UnixTime(1_798_761_600));
        assert_eq!(i.expiry, UnixTime(1_798_761_900));
        assert_eq!((i.currency.alpha, i.amount_minor), ("JPY", 10_000));
        assert_eq!(i.charge_bearer, ChargeBearer::Shar);
        assert_eq!(
            (i.debtor_agent_bic.as_str(), i.debtor_account),
            ("KKHAJPJ0", 1001)
        );
        assert_eq!(
            (i.creditor_agent_bic.as_str(), i.creditor_account),
            ("KKHASGS0", 2001)
        );
        assert_eq!(i.debtor_name, "Yamada Taro");
        assert_eq!(i.creditor_name, "Tan Wei Ling");
        assert_eq!(i.remittance_information, "invoice 42");
        assert_eq!(i.quote, pb::Signed::default());
        let digest: [u8; 32] = Sha256::digest(&s.payload).into();
        assert_eq!(i.payload_sha256, digest);
    }

    #[test]
    fn decode_signed_holds_the_envelope_with_what_decode_makes_of_it() {
        let s = signed(&valid());
        let held = decode_signed(s.clone()).expect("valid");
        assert_eq!(
            held.signed(),
            &s,
            "the envelope as given, signature and chain too"
        );
        let alone = decode(&s).expect("valid");
        assert_eq!(held.instruction().payload_sha256, alone.payload_sha256);
        assert_eq!(held.instruction().uetr, alone.uetr);
        let (envelope, instruction) = held.into_parts();
        assert_eq!(envelope, s);
        assert_eq!(instruction.end_to_end_id, alone.end_to_end_id);
        // What decode refuses, decode_signed refuses with the same answer.
        let mut raw = valid();
        raw.uetr = "not a uuid".to_owned();
        let bad = signed(&raw);
        let refused = decode_signed(bad.clone()).expect_err("a bad UETR");
        assert_eq!(refused, decode(&bad).expect_err("a bad UETR"));
    }

    #[test]
    fn accepts_the_iso_maxima_and_optional_remittance() {
        let mut raw = valid();
        raw.end_to_end_id = "é".repeat(ID_CHARS_MAX);
        raw.instruction_id = "x".repeat(ID_CHARS_MAX);
        raw.debtor_name = "山".repeat(NAME_CHARS_MAX);
        raw.creditor_name = "n".repeat(NAME_CHARS_MAX);
        raw.remittance_information = String::new();
        raw.creditor_agent_bic = "KKHASGS0XXX".to_owned();
        raw.charge_bearer = "DEBT".to_owned();
        let i = decode(&signed(&raw)).expect("valid");
        assert_eq!(i.creditor_agent_bic, "KKHASGS0XXX");
        assert_eq!(i.charge_bearer, ChargeBearer::Debt);
        assert_eq!(i.remittance_information, "");
    }

    #[test]
    fn garbage_payload_is_ff01() {
        let mut s = signed(&valid());
        s.payload = vec![0xff, 0xff, 0xff, 0xff];
        let r = decode(&s).expect_err("garbage");
        assert_eq!(r.code, ReasonCode::Ff01);
        assert!(
            r.detail
                .starts_with("payload is not a CreditTransferInstruction: "),
            "{}",
            r.detail
        );
    }

    #[test]
    fn invalid_utf8_in_a_string_field_is_ff01() {
        // Field 2 (end_to_end_id), wire type 2 (length-delimited), 2 bytes that are not UTF-8.
        let mut payload = valid().encode_to_vec();
        payload.extend_from_slice(&[0x12, 0x02, 0xff, 0xfe]);
        let s = pb::Signed {
            payload,
            ..signed(&valid())
        };
        let r = decode(&s).expect_err("invalid UTF-8");
        assert_eq!(r.code, ReasonCode::Ff01);
        assert!(
            r.detail
                .contains("payload is not a CreditTransferInstruction"),
            "{}",
            r.detail
        );
        assert!(r.detail.to_lowercase().contains("utf-8"), "{}", r.detail);
    }

    #[test]
    fn oversized_payload_is_ff01() {
        let s = pb::Signed {
            payload: vec![0; PAYLOAD_LEN_MAX + 1],
            ..pb::Signed::default()
        };
        let r = decode(&s).expect_err("too big");
        assert!(r.detail.contains("at most 65536"), "{}", r.detail);
    }

    #[test]
    fn every_field_is_checked_and_named() {
        refused(|r| r.uetr = String::new(), "uetr: \"\" is not a UETR");
        refused(
            |r| r.uetr = "00000000-0000-0000-0000-000000000000".into(),
            "nil UUID",
        );
        refused(
            |r| r.end_to_end_id = String::new(),
            "end_to_end_id is empty",
        );
        refused(
            |r| r.end_to_end_id = "x".repeat(36),
            "end_to_end_id is 36 characters; at most 35",
        );
        refused(
            |r| r.end_to_end_id = "a\nb".into(),
            "end_to_end_id has a control character",
        );
        refused(
            |r| r.instruction_id = String::new(),
            "instruction_id is empty",
        );
        refused(
            |r| r.instruction_id = "x".repeat(36),
            "instruction_id is 36 characters",
        );
        refused(
            |r| r.creation_date_time = None,
            "creation_date_time is missing",
        );
        refused(|r| r.expiry_date_time = None, "expiry_date_time is missing");
        refused(
            |r| r.expiry_date_time = r.creation_date_time,
            "expiry_date_time 2027-01-01T00:00:00Z must be later than creation_date_time",
        );
        refused(
            |r| {
                r.creation_date_time = Some(prost_types::Timestamp {
                    seconds: i64::MAX,
                    nanos: 0,
                })
            },
            "creation_date_time has 9223372036854775807 seconds",
        );
        refused(
            |r| {
                r.expiry_date_time = Some(prost_types::Timestamp {
                    seconds: 1_798_761_900,
                    nanos: -1,
                })
            },
            "expiry_date_time has -1 nanoseconds",
        );
        refused(
            |r| r.interbank_settlement_amount = None,
            "interbank_settlement_amount is missing",
        );
        refused(
            |r| r.interbank_settlement_amount.as_mut().expect("set").value = "0".into(),
            "interbank_settlement_amount is zero",
        );
        refused(
            |r| r.interbank_settlement_amount.as_mut().expect("set").value = "-5".into(),
            "interbank_settlement_amount: JPY amount \"-5\"",
        );
        refused(
            |r| {
                r.interbank_settlement_amount
                    .as_mut()
                    .expect("set")
                    .currency = "XXX".into()
            },
            "interbank_settlement_amount: unknown currency",
        );
        refused(
            |r| r.charge_bearer = String::new(),
            "charge_bearer \"\" is not one of",
        );
        refused(
            |r| r.charge_bearer = "shar".into(),
            "charge_bearer \"shar\"",
        );
        refused(
            |r| r.debtor_agent_bic = "KKHAJPJ".into(),
            "debtor_agent_bic \"KKHAJPJ\" is 7 bytes",
        );
        refused(
            |r| r.debtor_agent_bic = "KKHA1PJ0".into(),
            "invalid character at position 5",
        );
        refused(
            |r| r.creditor_agent_bic = "kkhasgs0".into(),
            "creditor_agent_bic",
        );
        refused(
            |r| r.creditor_agent_bic = "KKHASGS0XX".into(),
            "is 10 bytes",
        );
        refused(
            |r| r.debtor_account = String::new(),
            "debtor_account \"\" is empty",
        );
        refused(
            |r| r.debtor_account = "0".into(),
            "debtor_account \"0\" is zero",
        );
        refused(|r| r.debtor_account = "-1".into(), "not all ASCII digits");
        refused(|r| r.debtor_account = "0100".into(), "leading zero");
        refused(|r| r.creditor_account = "1".repeat(40), "creditor_account");
        refused(
            |r| r.creditor_account = "9".repeat(39),
            "does not fit in 128 bits",
        );
        refused(|r| r.debtor_name = String::new(), "debtor_name is empty");
        refused(
            |r| r.debtor_name = "x".repeat(141),
            "debtor_name is 141 characters; at most 140",
        );
        refused(
            |r| r.creditor_name = String::new(),
            "creditor_name is empty",
        );
        refused(
            |r| r.creditor_name = "x\u{7}".into(),
            "creditor_name has a control character",
        );
        // Issue 12: a right-to-left override would display "Sato" as another name.
        refused(
            |r| r.creditor_name = "Sato \u{202E}KK".into(),
            "creditor_name has a bidirectional formatting character",
        );
        refused(
            |r| r.debtor_name = "\u{2067}Aoki".into(),
            "debtor_name has a bidirectional formatting character",
        );
        refused(
            |r| r.remittance_information = "x".repeat(141),
            "remittance_information is 141 characters",
        );
        refused(|r| r.quote = None, "quote is missing");
    }

    #[test]
    fn account_names_follow_the_instruction_name_rules() {
        assert_eq!(name("name", "Aoki Kenji".into()).unwrap(), "Aoki Kenji");
        assert_eq!(name("name", "山田 太郎".into()).unwrap(), "山田 太郎");
        for bad in ["", "a\0b", "Sato \u{202E}KK", "x\u{200F}"] {
            let refused = name("name", bad.into()).expect_err(bad);
            assert_eq!(refused.code, ReasonCode::Ff01, "{bad:?}");
        }
        assert!(name("name", "n".repeat(NAME_CHARS_MAX + 1)).is_err());
    }

    #[test]
    fn largest_account_id_is_accepted() {
        let mut raw = valid();
        raw.creditor_account = u128::MAX.to_string();
        assert_eq!(
            decode(&signed(&raw)).expect("valid").creditor_account,
            u128::MAX
        );
    }

    #[test]
    fn uetr_parses_either_case_and_prints_lower_case() {
        let upper = UETR.to_uppercase();
        let a = Uetr::parse(UETR).expect("lower");
        let b = Uetr::parse(&upper).expect("upper");
        assert_eq!(a, b);
        assert_eq!(b.to_string(), UETR);
        assert_eq!(a.version(), 4);
        assert_eq!(a.0[0], 0xeb);
        assert_eq!(a.0[15], 0x2d);
        assert_eq!(
            "eb6305c9-1f7f-49de-aed0-16487c27b42d".parse::<Uetr>(),
            Ok(a)
        );
    }

    #[test]
    fn uetr_refuses_bad_text_form_variant_and_version() {
        for (text, needle) in [
            ("eb6305c91f7f49deaed016487c27b42d", "32 bytes instead of 36"),
            (
                "{eb6305c9-1f7f-49de-aed0-16487c27b4}",
                "expected a hex digit at position 0",
            ),
            (
                "eb6305c9-1f7f-49de-aed0_16487c27b42d",
                "expected '-' at position 23",
            ),
            (
                "eb6305c9-1f7f-49de-aed0-16487c27b42g",
                "hex digit at position 35",
            ),
            ("eb6305c9-1f7f-49de-0ed0-16487c27b42d", "variant"),
            ("eb6305c9-1f7f-49de-ced0-16487c27b42d", "variant"),
            ("ffffffff-ffff-ffff-ffff-ffffffffffff", "variant"),
            ("eb6305c9-1f7f-09de-aed0-16487c27b42d", "version"),
            ("eb6305c9-1f7f-99de-aed0-16487c27b42d", "version"),
            ("00000000-0000-0000-0000-000000000000", "nil UUID"),
            (
                "eb6305c9-1f7f-49de-aed0-16487c27b4２",
                "bytes instead of 36",
            ),
        ] {
            let r = Uetr::parse(text).expect_err(text);
            assert_eq!(r.code, ReasonCode::Ff01);
            assert!(r.detail.contains(needle), "{text}: {}", r.detail);
        }
    }

    #[test]
    fn new_v4_gives_distinct_valid_uetrs() {
        let rng = ring::rand::SystemRandom::new();
        let a = Uetr::new_v4(&rng).expect("random");
        let b = Uetr::new_v4(&rng).expect("random");
        assert_ne!(a, b);
        assert_eq!(a.version(), 4);
        assert_eq!(Uetr::parse(&a.to_string()), Ok(a));
    }

    #[test]
    fn charge_bearer_codes_round_trip() {
        for c in ChargeBearer::ALL {
            assert_eq!(ChargeBearer::parse(c.as_str()), Ok(c));
            assert_eq!(c.to_string(), c.as_str());
        }
    }

    proptest! {
        #[test]
        fn uetr_display_parse_round_trips(mut bytes in any::<[u8; 16]>(), version in 1u8..=8) {
            bytes[6] = (bytes[6] & 0x0f) | (version << 4);
            bytes[8] = (bytes[8] & 0x3f) | 0x80;
            let uetr = Uetr(bytes);
            prop_assert_eq!(Uetr::parse(&uetr.to_string()), Ok(uetr));
        }

        #[test]
        fn decode_never_panics_on_arbitrary_payloads(payload in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&pb::Signed { payload, ..pb::Signed::default() });
        }

        #[test]
        fn uetr_parse_never_panics(text in ".{0,40}") {
            let _ = Uetr::parse(&text);
        }
    }
}
