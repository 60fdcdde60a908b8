//! One line of a replay file: decoded by serde into typed members, then each member checked
//! into a [`Payment`].
//!
//! Decoding refuses what is wrong with the line's shape: text that is not JSON, a line that
//! is not one object, a member the format does not have (`deny_unknown_fields`; its path,
//! such as `amount.ccy`, comes from `serde_path_to_error`) and a member given twice. A member
//! whose value is of the wrong JSON type still decodes, as a [`Given`] that records what was
//! found, so that the member's own check can say what it must be ("must be a string, not a
//! number") in the order the checks run.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::path::PathBuf;

use kakehashi_proto::pb;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use kakehashi_protocol::instruction::{self, ChargeBearer, Uetr};
use kakehashi_protocol::money::{self, Currency};
use kakehashi_protocol::reason::{ReasonCode, Rejection};

use super::{Derivation, Expect, Fault, LineError, Parties, Payment, SignerFiles, set_references};

/// Parses one non-blank line (number `number`) into a payment. `occurrences` counts the
/// payment contents seen so far in the file, for derived UETRs.
pub(super) fn parse_line(
    number: usize,
    text: &str,
    parties: &Parties,
    occurrences: &mut HashMap<String, u64>,
) -> Result<Payment, LineError> {
    let refused = |refusal: Refusal| refusal.at(number);
    let line = decode(text).map_err(refused)?;
    let (mut payment, explicit) = check_members(number, line, parties).map_err(refused)?;
    payment.uetr_derived = explicit.uetr.is_none();
    match explicit.uetr.as_deref() {
        Some(text) => {
            payment.uetr = Uetr::parse(text).map_err(|r| refused(Refusal::rejected("uetr", r)))?;
            set_references(
                &mut payment,
                explicit.end_to_end_id,
                explicit.instruction_id,
            );
        }
        None => {
            let canonical = canonical_text(&payment, &explicit);
            let seen = occurrences.entry(canonical.clone()).or_default();
            *seen = seen.saturating_add(1);
            // The UETR (and the default references quoting it) wait for the bank's key:
            // `key_uetrs`. Until then it is the nil UUID, which every node refuses (FF01).
            payment.derivation = Some(Derivation {
                canonical,
                occurrence: *seen,
                end_to_end_id: explicit.end_to_end_id,
                instruction_id: explicit.instruction_id,
            });
        }
    }
    Ok(payment)
}

// ---------------------------------------------------------------------------------------------
// The line's members, as serde decodes them

/// The members a line may have; `null` is the same as absent.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    debtor_agent: Option<Scalar>,
    signer: Option<Given<SignerMembers>>,
    debtor_account: Option<Scalar>,
    debtor_name: Option<Scalar>,
    creditor_agent: Option<Scalar>,
    creditor_account: Option<Scalar>,
    creditor_name: Option<Scalar>,
    amount: Option<Given<AmountMembers>>,
    target_currency: Option<Scalar>,
    charge_bearer: Option<Scalar>,
    remittance_information: Option<Scalar>,
    uetr: Option<Scalar>,
    end_to_end_id: Option<Scalar>,
    instruction_id: Option<Scalar>,
    expect: Option<Given<ExpectMembers>>,
    fault: Option<Scalar>,
    /// Accepted and ignored.
    #[serde(rename = "comment")]
    _comment: Option<IgnoredAny>,
}

/// `amount`'s members; `null` is a wrong value here, not an absent one.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AmountMembers {
    #[serde(default, deserialize_with = "present")]
    currency: Option<Scalar>,
    #[serde(default, deserialize_with = "present")]
    value: Option<Scalar>,
}

/// `signer`'s members; `null` is a wrong value here, not an absent one.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SignerMembers {
    #[serde(default, deserialize_with = "present")]
    cert: Option<Scalar>,
    #[serde(default, deserialize_with = "present")]
    key: Option<Scalar>,
}

/// `expect`'s members; `null` is the same as absent.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectMembers {
    status: Option<Scalar>,
    reason: Option<Scalar>,
}

/// Decodes a member that is there, `null` included (an absent one takes the `default`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// A member's value as the line gave it: of the JSON type the member wants or of another,
/// recorded so that the member's check can say what it found.
enum Given<T> {
    /// A string.
    Text(String),
    /// A non-negative integer that fits 64 bits.
    Integer(u64),
    /// Any other number, as JSON writes it.
    Number(String),
    /// An object, decoded into its members.
    Object(T),
    /// `null`, a boolean or an array.
    Other(Kind),
}

/// A member that wants a string (or a number): an object given there is skipped, not decoded.
type Scalar = Given<IgnoredAny>;

/// The JSON values [`Given::Other`] records.
#[derive(Clone, Copy)]
enum Kind {
    Array,
    Boolean,
    Null,
}

impl<T> Given<T> {
    /// What was found, for "must be …, not {found}".
    fn found(&self) -> &'static str {
        match self {
            Self::Text(_) => "a string",
            Self::Integer(_) | Self::Number(_) => "a number",
            Self::Object(_) => "an object",
            Self::Other(Kind::Array) => "an array",
            Self::Other(Kind::Boolean) => "a boolean",
            Self::Other(Kind::Null) => "null",
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Given<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(GivenVisitor(PhantomData))
    }
}

struct GivenVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for GivenVisitor<T> {
    type Value = Given<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Given<T>, E> {
        Ok(Given::Other(Kind::Null))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Given<T>, E> {
        Ok(Given::Other(Kind::Boolean))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Given<T>, E> {
        Ok(Given::Integer(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Given<T>, E> {
        Ok(u64::try_from(v).map_or_else(|_| Given::Number(v.to_string()), Given::Integer))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Given<T>, E> {
        // As serde_json writes the number; JSON has no NaN or infinity, so `None` is unreachable
        // and reads as null, as it does in serde_json's own `Value`.
        Ok(serde_json::Number::from_f64(v)
            .map_or(Given::Other(Kind::Null), |n| Given::Number(n.to_string())))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Given<T>, E> {
        Ok(Given::Text(v.to_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Given<T>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Given::Other(Kind::Array))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Given<T>, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(Given::Object)
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// Why a line is refused: the member at fault (a dotted path), when one is, and what is wrong.
struct Refusal {
    member: Option<String>,
    detail: String,
}

impl Refusal {
    fn line(detail: impl Into<String>) -> Self {
        Self {
            member: None,
            detail: detail.into(),
        }
    }

    fn member(member: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            member: Some(member.into()),
            detail: detail.into(),
        }
    }

    /// A check shared with the node refused the member.
    fn rejected(member: &str, rejection: Rejection) -> Self {
        Self::member(member, rejection.detail)
    }

    /// The error of line `line`; every format problem is FF01.
    fn at(self, line: usize) -> LineError {
        LineError {
            line,
            field: self.member,
            code: ReasonCode::Ff01,
            detail: self.detail,
        }
    }
}

/// The line's members, or why the line is not one JSON object of known members.
fn decode(text: &str) -> Result<Line, Refusal> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let given: Given<Line> = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|error| shape_refusal(text, &error))?;
    let Given::Object(line) = given else {
        return Err(Refusal::line(
            "a line must be one JSON object (one payment)",
        ));
    };
    deserializer.end().map_err(|error| not_json(&error))?;
    Ok(line)
}

fn not_json(error: &serde_json::Error) -> Refusal {
    Refusal::line(format!(
        "not valid JSON at column {}: {error}",
        error.column()
    ))
}

/// Why a line did not decode. Apart from text that is not JSON, serde's derive refuses two
/// things: a member it does not know, where the path ends with that member, and a member
/// given twice, where the path names the object holding the member but not the member.
fn shape_refusal(text: &str, error: &serde_path_to_error::Error<serde_json::Error>) -> Refusal {
    if !error.inner().is_data() {
        return not_json(error.inner());
    }
    if let Some(member) = repeated_member(text) {
        return Refusal::member(member, "given twice");
    }
    let path: Vec<&str> = error
        .path()
        .iter()
        .filter_map(|segment| match segment {
            serde_path_to_error::Segment::Map { key } => Some(key.as_str()),
            _ => None,
        })
        .collect();
    let members = match path[..] {
        [_] => {
            "a line has debtor_agent, debtor_account, creditor_agent, creditor_account, amount \
             and optionally signer, debtor_name, creditor_name, target_currency, \
             charge_bearer, remittance_information, uetr, end_to_end_id, instruction_id, \
             expect, fault, comment"
        }
        ["amount", _] => "an amount has currency and value",
        ["signer", _] => "a signer has cert and key",
        ["expect", _] => "an expectation has status and reason",
        // Not reached: every object the line decodes into one of those.
        _ => return Refusal::line(format!("not a payment line: {}", error.inner())),
    };
    Refusal::member(path.join("."), format!("unknown member; {members}"))
}

/// The first member given twice in an object serde's derive decodes (the line and its
/// `amount`, `signer` and `expect`), as a dotted path.
fn repeated_member(text: &str) -> Option<String> {
    match serde_json::from_str::<Given<Keys<true>>>(text).ok()? {
        Given::Object(keys) => keys.repeated,
        _ => None,
    }
}

/// The line's members whose values serde's derive decodes as objects.
const NESTED_OBJECTS: [&str; 3] = ["amount", "signer", "expect"];

/// A scan of one JSON object's keys: the first given twice. `NESTED` scans the objects of
/// the members in [`NESTED_OBJECTS`] too. (Read through [`Given`], which hands it objects
/// only.)
struct Keys<const NESTED: bool> {
    repeated: Option<String>,
}

impl<'de, const NESTED: bool> Deserialize<'de> for Keys<NESTED> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(KeysVisitor::<NESTED>)
    }
}

struct KeysVisitor<const NESTED: bool>;

impl<'de, const NESTED: bool> Visitor<'de> for KeysVisitor<NESTED> {
    type Value = Keys<NESTED>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen: Vec<String> = Vec::new();
        let mut repeated = None;
        while let Some(key) = map.next_key::<String>()? {
            let inside = if NESTED && NESTED_OBJECTS.contains(&key.as_str()) {
                match map.next_value::<Given<Keys<false>>>()? {
                    Given::Object(keys) => keys.repeated,
                    _ => None,
                }
            } else {
                map.next_value::<IgnoredAny>()?;
                None
            };
            if repeated.is_none() {
                repeated = if seen.contains(&key) {
                    Some(key.clone())
                } else {
                    inside.map(|member| format!("{key}.{member}"))
                };
            }
            seen.push(key);
        }
        Ok(Keys { repeated })
    }
}

// ---------------------------------------------------------------------------------------------
// Checking the members

/// The members the UETR and the default references depend on, as the line gives them.
struct References {
    end_to_end_id: Option<String>,
    instruction_id: Option<String>,
    uetr: Option<String>,
}

/// The two banks of a line and the parties of the agreement they belong to.
struct Banks {
    debtor_agent: String,
    creditor_agent: String,
    /// The debtor agent's country.
    sending: String,
    /// The creditor agent's country.
    receiving: String,
    sending_currency: &'static Currency,
    receiving_currency: &'static Currency,
}

/// Checks every member, in the order of the refusals, into a payment whose UETR and
/// references the caller fills in from the references given.
fn check_members(
    number: usize,
    line: Line,
    parties: &Parties,
) -> Result<(Payment, References), Refusal> {
    let banks = banks(line.debtor_agent, line.creditor_agent, parties)?;
    let signer = signer_files(line.signer)?;
    let debtor_account = account(line.debtor_account, "debtor_account")?;
    let creditor_account = account(line.creditor_account, "creditor_account")?;
    let debtor_name = optional_text(
        line.debtor_name,
        "debtor_name",
        1,
        instruction::NAME_CHARS_MAX,
    )?
    .unwrap_or_else(|| format!("account {debtor_account} at {}", banks.debtor_agent));
    let creditor_name = optional_text(
        line.creditor_name,
        "creditor_name",
        1,
        instruction::NAME_CHARS_MAX,
    )?
    .unwrap_or_else(|| format!("account {creditor_account} at {}", banks.creditor_agent));
    let (amount, amount_minor) = amount(line.amount)?;
    if amount.currency != banks.sending_currency.alpha {
        return Err(Refusal::member(
            "amount.currency",
            format!(
                "{} debits in {}, not {}; the amount is what the debtor pays",
                banks.sending, banks.sending_currency.alpha, amount.currency
            ),
        ));
    }
    let target_currency = target_currency(line.target_currency, &banks)?;
    let charge_bearer = match optional_text(line.charge_bearer, "charge_bearer", 1, 4)? {
        None => ChargeBearer::Shar,
        Some(code) => {
            ChargeBearer::parse(&code).map_err(|r| Refusal::rejected("charge_bearer", r))?
        }
    };
    let remittance_information = optional_text(
        line.remittance_information,
        "remittance_information",
        0,
        instruction::REMITTANCE_CHARS_MAX,
    )?
    .unwrap_or_default();
    let end_to_end_id = optional_text(
        line.end_to_end_id,
        "end_to_end_id",
        1,
        instruction::ID_CHARS_MAX,
    )?;
    let instruction_id = optional_text(
        line.instruction_id,
        "instruction_id",
        1,
        instruction::ID_CHARS_MAX,
    )?;
    let fault = fault(line.fault)?;
    let expect = expect(line.expect)?;
    let references = References {
        end_to_end_id,
        instruction_id,
        uetr: optional_text(line.uetr, "uetr", 1, 64)?,
    };
    let payment = Payment {
        line: number,
        debtor_agent: banks.debtor_agent,
        signer,
        sending: banks.sending,
        receiving: banks.receiving,
        debtor_account,
        debtor_name,
        creditor_agent: banks.creditor_agent,
        creditor_account,
        creditor_name,
        amount,
        amount_minor,
        target_currency,
        charge_bearer,
        remittance_information,
        // Set by the caller once the references are checked.
        uetr: Uetr([0; 16]),
        uetr_derived: false,
        derivation: None,
        end_to_end_id: String::new(),
        instruction_id: String::new(),
        expect,
        fault,
        pacs008: None,
    };
    Ok((payment, references))
}

/// The debtor and creditor agents: BICs of banks of two different parties of the agreement.
fn banks(
    debtor_agent: Option<Scalar>,
    creditor_agent: Option<Scalar>,
    parties: &Parties,
) -> Result<Banks, Refusal> {
    let debtor_agent = required_text(debtor_agent, "debtor_agent")?;
    let debtor_agent = instruction::bic("debtor_agent", debtor_agent)
        .map_err(|r| Refusal::rejected("debtor_agent", r))?;
    let creditor_agent = required_text(creditor_agent, "creditor_agent")?;
    let creditor_agent = instruction::bic("creditor_agent", creditor_agent)
        .map_err(|r| Refusal::rejected("creditor_agent", r))?;
    // ISO 9362: characters 5 and 6 of a BIC are the bank's ISO 3166 country; `bic` checked
    // that they are letters.
    let sending = debtor_agent.get(4..6).unwrap_or_default().to_owned();
    let receiving = creditor_agent.get(4..6).unwrap_or_default().to_owned();
    let party_list = || parties.keys().cloned().collect::<Vec<_>>().join(", ");
    let Some(sending_currency) = parties.get(&sending).copied() else {
        return Err(Refusal::member(
            "debtor_agent",
            format!(
                "{debtor_agent} is a bank of {sending}, which is not a party to the agreement \
                 (parties: {})",
                party_list()
            ),
        ));
    };
    let Some(receiving_currency) = parties.get(&receiving).copied() else {
        return Err(Refusal::member(
            "creditor_agent",
            format!(
                "{creditor_agent} is a bank of {receiving}, which is not a party to the \
                 agreement (parties: {})",
                party_list()
            ),
        ));
    };
    if sending == receiving {
        return Err(Refusal::member(
            "creditor_agent",
            format!(
                "{creditor_agent} is a bank of {receiving}, like the debtor agent; the relay \
                 carries cross-border payments only"
            ),
        ));
    }
    Ok(Banks {
        debtor_agent,
        creditor_agent,
        sending,
        receiving,
        sending_currency,
        receiving_currency,
    })
}

/// A required string member.
fn required_text(value: Option<Scalar>, member: &str) -> Result<String, Refusal> {
    match value {
        None => Err(Refusal::member(member, "missing")),
        Some(Given::Text(text)) => Ok(text),
        Some(other) => Err(Refusal::member(
            member,
            format!("must be a string, not {}", other.found()),
        )),
    }
}

/// An optional string of `min` to `max` characters, none of them a control character.
fn optional_text(
    value: Option<Scalar>,
    member: &str,
    min: usize,
    max: usize,
) -> Result<Option<String>, Refusal> {
    let text = match value {
        None => return Ok(None),
        Some(Given::Text(text)) => text,
        Some(other) => {
            return Err(Refusal::member(
                member,
                format!("must be a string, not {}", other.found()),
            ));
        }
    };
    let chars = text.chars().count();
    if chars < min || chars > max {
        return Err(Refusal::member(
            member,
            format!("is {chars} characters; {min} to {max} are allowed"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(Refusal::member(member, "holds a control character"));
    }
    Ok(Some(text))
}

/// An account id given as a decimal string or a JSON integer.
fn account(value: Option<Scalar>, member: &str) -> Result<u128, Refusal> {
    let text = match value {
        None => return Err(Refusal::member(member, "missing")),
        Some(Given::Text(text)) => text,
        Some(Given::Integer(n)) => n.to_string(),
        Some(other) => {
            let found = match other {
                Given::Number(_) => "this number",
                _ => other.found(),
            };
            return Err(Refusal::member(
                member,
                format!("must be a decimal string or a non-negative integer, not {found}"),
            ));
        }
    };
    instruction::account(member, &text).map_err(|r| Refusal::rejected(member, r))
}

/// The amount debited: an ISO 4217 currency and a positive decimal string in major units.
fn amount(
    value: Option<Given<AmountMembers>>,
) -> Result<(pb::ActiveCurrencyAndAmount, u128), Refusal> {
    let members = match value {
        None => {
            return Err(Refusal::member(
                "amount",
                "missing; give {\"currency\": \"JPY\", \"value\": \"25000\"}",
            ));
        }
        Some(Given::Object(members)) => members,
        Some(other) => {
            return Err(Refusal::member(
                "amount",
                format!(
                    "must be an object {{\"currency\": ..., \"value\": ...}}, not {}",
                    other.found()
                ),
            ));
        }
    };
    let currency = match members.currency {
        None => return Err(Refusal::member("amount.currency", "missing")),
        Some(Given::Text(text)) => text,
        Some(other) => {
            return Err(Refusal::member(
                "amount.currency",
                format!("must be a string, not {}", other.found()),
            ));
        }
    };
    let value = match members.value {
        None => return Err(Refusal::member("amount.value", "missing")),
        Some(Given::Text(text)) => text,
        Some(Given::Integer(n)) => return Err(number_amount(&n.to_string())),
        Some(Given::Number(n)) => return Err(number_amount(&n)),
        Some(other) => {
            return Err(Refusal::member(
                "amount.value",
                format!("must be a string, not {}", other.found()),
            ));
        }
    };
    let wire = pb::ActiveCurrencyAndAmount {
        currency: currency.clone(),
        value,
    };
    let (currency_found, minor) = money::parse_amount(&wire).map_err(|r| {
        let member = if money::currency(&currency).is_none() {
            "amount.currency"
        } else {
            "amount.value"
        };
        Refusal::rejected(member, r)
    })?;
    if minor == 0 {
        return Err(Refusal::member(
            "amount.value",
            "is zero; a payment must be positive",
        ));
    }
    Ok((money::format_amount(currency_found, minor), minor))
}

fn number_amount(number: &str) -> Refusal {
    Refusal::member(
        "amount.value",
        format!(
            "must be a decimal string such as \"{number}\", not a JSON number (numbers lose \
             precision)"
        ),
    )
}

/// The creditor's currency: the receiving party's, which the line may name.
fn target_currency(value: Option<Scalar>, banks: &Banks) -> Result<&'static Currency, Refusal> {
    let Some(code) = optional_text(value, "target_currency", 1, 3)? else {
        return Ok(banks.receiving_currency);
    };
    let currency = money::currency(&code).ok_or_else(|| {
        Refusal::member(
            "target_currency",
            format!("{code} is not an ISO 4217 code kakehashi knows"),
        )
    })?;
    if currency.alpha != banks.receiving_currency.alpha {
        return Err(Refusal::member(
            "target_currency",
            format!(
                "{} credits in {}, not {code}",
                banks.receiving, banks.receiving_currency.alpha
            ),
        ));
    }
    Ok(currency)
}

fn fault(value: Option<Scalar>) -> Result<Option<Fault>, Refusal> {
    let Some(name) = optional_text(value, "fault", 1, 32)? else {
        return Ok(None);
    };
    [Fault::BadSignature, Fault::ExpiredInstruction]
        .into_iter()
        .find(|f| f.as_str() == name)
        .map(Some)
        .ok_or_else(|| {
            Refusal::member(
                "fault",
                format!("{name:?} is not bad_signature or expired_instruction"),
            )
        })
}

fn signer_files(value: Option<Given<SignerMembers>>) -> Result<Option<SignerFiles>, Refusal> {
    let members = match value {
        None => return Ok(None),
        Some(Given::Object(members)) => members,
        Some(other) => {
            return Err(Refusal::member(
                "signer",
                format!(
                    "must be an object {{\"cert\": PATH, \"key\": PATH}}, not {}",
                    other.found()
                ),
            ));
        }
    };
    let path = |value: Option<Scalar>, member: &str| match value {
        Some(Given::Text(text)) if !text.is_empty() => Ok(PathBuf::from(text)),
        Some(other) => Err(Refusal::member(
            member,
            format!("must be a non-empty path string, not {}", other.found()),
        )),
        None => Err(Refusal::member(member, "missing")),
    };
    Ok(Some(SignerFiles {
        cert: path(members.cert, "signer.cert")?,
        key: path(members.key, "signer.key")?,
    }))
}

fn expect(value: Option<Given<ExpectMembers>>) -> Result<Option<Expect>, Refusal> {
    let members = match value {
        None => return Ok(None),
        Some(Given::Object(members)) => members,
        Some(other) => {
            return Err(Refusal::member(
                "expect",
                format!(
                    "must be an object such as {{\"status\": \"RJCT\", \"reason\": \"AM04\"}}, \
                     not {}",
                    other.found()
                ),
            ));
        }
    };
    let text = |value: Option<Scalar>, member: &str| match value {
        None => Ok(None),
        Some(Given::Text(text)) => Ok(Some(text)),
        Some(other) => Err(Refusal::member(
            member,
            format!("must be a string, not {}", other.found()),
        )),
    };
    let reason = match text(members.reason, "expect.reason")? {
        None => None,
        Some(code) => Some(ReasonCode::parse(&code).ok_or_else(|| {
            Refusal::member(
                "expect.reason",
                format!(
                    "{code:?} is not a reason code the nodes answer ({})",
                    ReasonCode::ALL.map(ReasonCode::as_str).join(", ")
                ),
            )
        })?),
    };
    match (text(members.status, "expect.status")?.as_deref(), reason) {
        (Some("ACSC"), None) => Ok(Some(Expect::Settled)),
        (Some("ACSC"), Some(_)) => Err(Refusal::member(
            "expect.reason",
            "an ACSC payment has no reason code",
        )),
        (Some("RJCT") | None, reason @ Some(_)) | (Some("RJCT"), reason @ None) => {
            Ok(Some(Expect::Rejected(reason)))
        }
        (None, None) => Err(Refusal::member(
            "expect",
            "give a status (ACSC or RJCT) or a reason",
        )),
        (Some(other), _) => Err(Refusal::member(
            "expect.status",
            format!("{other:?} is not ACSC or RJCT (PDNG is not an outcome)"),
        )),
    }
}

/// The payment's content, for its derived UETR: one `name=value` line per member except
/// `expect` and `comment`, after defaults, in a fixed order, each value JSON-escaped so that
/// no value can forge another member. The references are as given (their defaults derive
/// from the UETR).
fn canonical_text(payment: &Payment, references: &References) -> String {
    let signer_path = |path: fn(&SignerFiles) -> &PathBuf| {
        payment
            .signer
            .as_ref()
            .map(|s| path(s).display().to_string())
            .unwrap_or_default()
    };
    let members = [
        ("debtor_agent", payment.debtor_agent.clone()),
        ("signer_cert", signer_path(|s| &s.cert)),
        ("signer_key", signer_path(|s| &s.key)),
        ("debtor_account", payment.debtor_account.to_string()),
        ("debtor_name", payment.debtor_name.clone()),
        ("creditor_agent", payment.creditor_agent.clone()),
        ("creditor_account", payment.creditor_account.to_string()),
        ("creditor_name", payment.creditor_name.clone()),
        ("amount_currency", payment.amount.currency.clone()),
        ("amount_minor", payment.amount_minor.to_string()),
        ("target_currency", payment.target_currency.alpha.to_owned()),
        ("charge_bearer", payment.charge_bearer.as_str().to_owned()),
        (
            "remittance_information",
            payment.remittance_information.clone(),
        ),
        (
            "end_to_end_id",
            references.end_to_end_id.clone().unwrap_or_default(),
        ),
        (
            "instruction_id",
            references.instruction_id.clone().unwrap_or_default(),
        ),
        (
            "fault",
            payment
                .fault
                .map(|f| f.as_str().to_owned())
                .unwrap_or_default(),
        ),
    ];
    let mut out = String::new();
    for (name, value) in members {
        out.push_str(name);
        out.push('=');
        out.push_str(&Value::String(value).to_string());
        out.push('\n');
    }
    out
}
