//! pacs.008.001.08 (FI to FI Customer Credit Transfer), CBPR+ usage: read into the fields of
//! the signed instruction, and written from them.
//!
//! [`parse()`] decodes a message into a [`Message`] of [`Transaction`]s, each holding what
//! `kakehashi` puts in the signed `CreditTransferInstruction` (the quote, creation and expiry
//! times are the sender's to add). Everything that would make the node refuse the payment's
//! format, and everything in the message the node could not honour, is refused first, with the
//! element's path and an FF01 reason; [`write()`] is the inverse for the fields the mapping
//! covers. The mapping, element by element, is in `docs/iso20022.md`.

use kakehashi_proto::pb;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use super::{
    AccountIdOut, OtherOut, REFUSALS_MAX, Refusal, WriteError, iso_date, text, write_document,
};
use crate::instruction::{self, ChargeBearer, Instruction, Uetr};
use crate::money::{self, Currency, format_amount};

/// The message's XML namespace.
pub const NAMESPACE: &str = "urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08";

/// The message name (`MsgNmId`) a status report quotes.
pub const MESSAGE_NAME: &str = "pacs.008.001.08";

/// The path of the message's root content.
const ROOT: &str = "/Document/FIToFICstmrCdtTrf";

/// ISO 20022 `Max35Text`: message, instruction, end-to-end and transaction ids.
const ID_MAX: usize = 35;

/// ISO 20022 `Max140Text`: names and one line of unstructured remittance information.
const TEXT_MAX: usize = 140;

/// A branch code that names a bank's primary office: `KKHAJPJ0XXX` is `KKHAJPJ0`.
const PRIMARY_OFFICE: &str = "XXX";

/// A pacs.008 message, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// `GrpHdr/MsgId`: the message's reference, quoted by status reports.
    pub message_id: String,
    /// `GrpHdr/CreDtTm`, as the message wrote it (an `ISODateTime`).
    pub created: String,
    /// The transactions (`CdtTrfTxInf`), in the message's order.
    pub transactions: Vec<Transaction>,
}

/// One `CdtTrfTxInf`, checked: the fields of the signed instruction it becomes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    /// `PmtId/UETR` (required: it is what makes the same message sent twice pay once), a
    /// version 4 UUID as the schema's `UUIDv4Identifier` says; [`write()`] writes it as it is.
    pub uetr: Uetr,
    /// `PmtId/EndToEndId`.
    pub end_to_end_id: String,
    /// `PmtId/InstrId`; the sender's default when absent.
    pub instruction_id: Option<String>,
    /// `PmtId/TxId`, quoted back in status reports; not part of the instruction.
    pub transaction_id: Option<String>,
    /// `IntrBkSttlmAmt/@Ccy`.
    pub currency: &'static Currency,
    /// `IntrBkSttlmAmt` in minor units, positive.
    pub amount_minor: u128,
    /// `IntrBkSttlmDt` (the transaction's, or the group header's).
    pub settlement_date: time::Date,
    /// `ChrgBr`.
    pub charge_bearer: ChargeBearer,
    /// `Dbtr/Nm`.
    pub debtor_name: String,
    /// `DbtrAcct/Id/Othr/Id`: the account on the sending ledger.
    pub debtor_account: u128,
    /// `DbtrAgt/FinInstnId/BICFI`, as the 8-character BIC of the party (a primary-office `XXX`
    /// branch code dropped).
    pub debtor_agent: String,
    /// `CdtrAgt/FinInstnId/BICFI`, as the debtor agent's.
    pub creditor_agent: String,
    /// `Cdtr/Nm`.
    pub creditor_name: String,
    /// `CdtrAcct/Id/Othr/Id`: the account on the receiving ledger.
    pub creditor_account: u128,
    /// `RmtInf/Ustrd` (at most one occurrence); empty when absent.
    pub remittance_information: String,
}

impl Transaction {
    /// The fields of a decoded instruction as a transaction settling on `settlement_date`.
    pub fn of_instruction(instruction: &Instruction, settlement_date: time::Date) -> Self {
        Self {
            uetr: instruction.uetr,
            end_to_end_id: instruction.end_to_end_id.clone(),
            instruction_id: Some(instruction.instruction_id.clone()),
            transaction_id: None,
            currency: instruction.currency,
            amount_minor: instruction.amount_minor,
            settlement_date,
            charge_bearer: instruction.charge_bearer,
            debtor_name: instruction.debtor_name.clone(),
            debtor_account: instruction.debtor_account,
            debtor_agent: instruction.debtor_agent_bic.clone(),
            creditor_agent: instruction.creditor_agent_bic.clone(),
            creditor_name: instruction.creditor_name.clone(),
            creditor_account: instruction.creditor_account,
            remittance_information: instruction.remittance_information.clone(),
        }
    }

    /// The interbank settlement amount in the wire's canonical form.
    pub fn amount(&self) -> pb::ActiveCurrencyAndAmount {
        format_amount(self.currency, self.amount_minor)
    }
}

/// Parses and checks a pacs.008.001.08 message. `today` is the sender's UTC date: a
/// transaction dated after the day that is already `today + 1` somewhere (a forward-dated
/// payment) is refused, because the node settles on receipt and holds nothing for later.
/// Returns every refusal found (up to [`REFUSALS_MAX`]); nothing of a refused message should
/// be sent.
pub fn parse(bytes: &[u8], today: time::Date) -> Result<Message, Vec<Refusal>> {
    let one = |refusal: Refusal| vec![refusal];
    if bytes.len() > super::MESSAGE_BYTES_MAX {
        return Err(one(Refusal::ff01(
            "/",
            format!(
                "the message is {} bytes; at most {} are read",
                bytes.len(),
                super::MESSAGE_BYTES_MAX
            ),
        )));
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| {
        one(Refusal::ff01(
            "/",
            format!(
                "not UTF-8 (invalid byte at offset {}); CBPR+ messages are UTF-8",
                e.valid_up_to()
            ),
        ))
    })?;
    check_root(text).map_err(one)?;
    let mut deserializer = quick_xml::de::Deserializer::from_str(text);
    let document: DocumentIn =
        serde_path_to_error::deserialize(&mut deserializer).map_err(|e| one(shape_refusal(&e)))?;
    check(document.FIToFICstmrCdtTrf, today)
}

/// Checks that the root element is a pacs.008.001.08 `Document` (resolving its namespace, so
/// that a prefixed root is read as well as a default namespace).
fn check_root(text: &str) -> Result<(), Refusal> {
    use quick_xml::events::Event;
    use quick_xml::name::ResolveResult;
    let mut reader = quick_xml::NsReader::from_str(text);
    loop {
        match reader.read_resolved_event() {
            Ok((namespace, Event::Start(start) | Event::Empty(start))) => {
                let local = start.local_name();
                let name = local.into_inner().to_owned();
                let uri = match namespace {
                    ResolveResult::Bound(ns) => ns.into_inner().to_owned(),
                    _ => String::new(),
                };
                if name == "AppHdr" || uri.contains(":head.001.") {
                    return Err(Refusal::ff01(
                        &format!("/{name}"),
                        "a business application header (head.001) is not read; give the \
                         pacs.008 Document alone",
                    ));
                }
                if name != "Document" || uri != NAMESPACE {
                    return Err(Refusal::ff01(
                        &format!("/{name}"),
                        format!(
                            "the root is {name} in namespace {uri:?}; a pacs.008.001.08 message \
                             is a Document in {NAMESPACE}"
                        ),
                    ));
                }
                return Ok(());
            }
            Ok((_, Event::Eof)) => {
                return Err(Refusal::ff01("/", "the file holds no XML element"));
            }
            Ok(_) => {}
            Err(e) => return Err(Refusal::ff01("/", format!("not well-formed XML: {e}"))),
        }
    }
}

/// The refusal of a message serde could not decode: an element the mapping does not take
/// (named, with why, where one of [`REFUSED`] says), a required element missing, or a value
/// of the wrong shape.
fn shape_refusal(error: &serde_path_to_error::Error<quick_xml::DeError>) -> Refusal {
    let mut path = String::from("/Document");
    for segment in error.path().iter() {
        match segment {
            serde_path_to_error::Segment::Map { key } => {
                path.push('/');
                path.push_str(key);
            }
            serde_path_to_error::Segment::Seq { index } => {
                path.push_str(&format!("[{}]", index.saturating_add(1)));
            }
            _ => {}
        }
    }
    let message = error.inner().to_string();
    if let Some(name) = quoted_after(&message, "unknown field `") {
        if !path.ends_with(&format!("/{name}")) {
            path.push('/');
            path.push_str(name);
        }
        let why = REFUSED
            .iter()
            .find(|(element, _)| *element == name.trim_start_matches('@'))
            .map_or(
                "it is not an element kakehashi can honour here (docs/iso20022.md lists those \
                 it reads and ignores)",
                |(_, why)| why,
            );
        return Refusal::ff01(&path, format!("refused: {why}"));
    }
    if let Some(name) = quoted_after(&message, "missing field `") {
        path.push('/');
        path.push_str(name);
        return Refusal::ff01(&path, "required, and missing");
    }
    if error.inner().to_string().contains("duplicate field") {
        return Refusal::ff01(&path, "given more than once where one is allowed");
    }
    Refusal::ff01(&path, format!("not a pacs.008.001.08 message: {message}"))
}

/// The text between `prefix` and the next backquote in `message`.
fn quoted_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let start = message.find(prefix)? + prefix.len();
    let rest = message.get(start..)?;
    rest.get(..rest.find('`')?)
}

/// Elements of pacs.008.001.08 that kakehashi refuses, and why: each asks for something the
/// relay does not do, so sending the payment without it would not be the payment asked for.
const REFUSED: &[(&str, &str)] = &[
    (
        "SttlmTmIndctn",
        "settlement times are not offered: the node settles on receipt",
    ),
    (
        "SttlmTmReq",
        "a requested settlement time cannot be honoured: the node settles on receipt",
    ),
    (
        "XchgRate",
        "the rate is the node's signed quote at sending, not one the message states",
    ),
    (
        "PrvsInstgAgt1",
        "kakehashi takes a payment from its debtor agent only, not one relayed by earlier agents",
    ),
    (
        "PrvsInstgAgt2",
        "kakehashi takes a payment from its debtor agent only, not one relayed by earlier agents",
    ),
    (
        "PrvsInstgAgt3",
        "kakehashi takes a payment from its debtor agent only, not one relayed by earlier agents",
    ),
    (
        "IntrmyAgt1",
        "the relay pays the creditor agent directly; it routes through no intermediary agent",
    ),
    (
        "IntrmyAgt2",
        "the relay pays the creditor agent directly; it routes through no intermediary agent",
    ),
    (
        "IntrmyAgt3",
        "the relay pays the creditor agent directly; it routes through no intermediary agent",
    ),
    (
        "InstrForCdtrAgt",
        "the signed instruction has no field to carry instructions to the creditor agent",
    ),
    (
        "InstrForNxtAgt",
        "the signed instruction has no field to carry instructions to the next agent",
    ),
    (
        "Strd",
        "structured remittance information has no place in the signed instruction; give one \
         Ustrd line",
    ),
    (
        "SplmtryData",
        "supplementary data has no place in the signed instruction",
    ),
    (
        "IBAN",
        "accounts in Japan and Singapore have no IBAN; give the account as Othr/Id",
    ),
    (
        "SttlmAcct",
        "settlement is between the two nodes' ledgers; no settlement account is chosen by the \
         message",
    ),
    ("ClrSys", "no clearing system settles kakehashi payments"),
    (
        "InstgRmbrsmntAgt",
        "reimbursement agents belong to the cover method, which kakehashi does not use",
    ),
    (
        "InstdRmbrsmntAgt",
        "reimbursement agents belong to the cover method, which kakehashi does not use",
    ),
    (
        "ThrdRmbrsmntAgt",
        "reimbursement agents belong to the cover method, which kakehashi does not use",
    ),
];

// ---------------------------------------------------------------------------------------------
// The message as serde reads it: every element honoured or ignored is listed; the others are
// refused by `deny_unknown_fields`. Field names are the XML element names. The ignored elements
// are fields so that they are accepted, and are never read (hence `dead_code`).

#[derive(Deserialize)]
#[allow(non_snake_case, dead_code)]
struct DocumentIn {
    FIToFICstmrCdtTrf: CreditTransferIn,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case, dead_code)]
struct CreditTransferIn {
    GrpHdr: GroupHeaderIn,
    #[serde(default)]
    CdtTrfTxInf: Vec<TransactionIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case, dead_code)]
struct GroupHeaderIn {
    MsgId: String,
    CreDtTm: String,
    BtchBookg: Option<IgnoredAny>,
    NbOfTxs: String,
    CtrlSum: Option<String>,
    TtlIntrBkSttlmAmt: Option<AmountIn>,
    IntrBkSttlmDt: Option<String>,
    SttlmInf: SettlementIn,
    PmtTpInf: Option<IgnoredAny>,
    InstgAgt: Option<AgentIn>,
    InstdAgt: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case, dead_code)]
struct SettlementIn {
    SttlmMtd: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AmountIn {
    #[serde(rename = "@Ccy")]
    currency: String,
    #[serde(rename = "$text")]
    value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case, dead_code)]
struct AgentIn {
    FinInstnId: InstitutionIn,
    BrnchId: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case, dead_code)]
struct InstitutionIn {
    BICFI: Option<String>,
    ClrSysMmbId: Option<IgnoredAny>,
    LEI: Option<IgnoredAny>,
    Nm: Option<IgnoredAny>,
    PstlAdr: Option<IgnoredAny>,
    Othr: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case, dead_code)]
struct TransactionIn {
    PmtId: PaymentIdIn,
    PmtTpInf: Option<IgnoredAny>,
    IntrBkSttlmAmt: AmountIn,
    IntrBkSttlmDt: Option<String>,
    SttlmPrty: Option<IgnoredAny>,
    AccptncDtTm: Option<IgnoredAny>,
    PoolgAdjstmntDt: Option<IgnoredAny>,
    InstdAmt: Option<AmountIn>,
    ChrgBr: String,
    #[serde(default)]
    ChrgsInf: Vec<IgnoredAny>,
    InstgAgt: Option<AgentIn>,
    InstdAgt: Option<IgnoredAny>,
    UltmtDbtr: Option<IgnoredAny>,
    InitgPty: Option<IgnoredAny>,
    Dbtr: PartyIn,
    DbtrAcct: Option<AccountIn>,
    DbtrAgt: AgentIn,
    DbtrAgtAcct: Option<IgnoredAny>,
    CdtrAgt: AgentIn,
    CdtrAgtAcct: Option<IgnoredAny>,
    Cdtr: PartyIn,
    CdtrAcct: Option<AccountIn>,
    UltmtCdtr: Option<IgnoredAny>,
    Purp: Option<IgnoredAny>,
    #[serde(default)]
    RgltryRptg: Vec<IgnoredAny>,
    Tax: Option<IgnoredAny>,
    #[serde(default)]
    RltdRmtInf: Vec<IgnoredAny>,
    RmtInf: Option<RemittanceIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case, dead_code)]
struct PaymentIdIn {
    InstrId: Option<String>,
    EndToEndId: String,
    TxId: Option<String>,
    UETR: Option<String>,
    ClrSysRef: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case, dead_code)]
struct PartyIn {
    Nm: Option<String>,
    PstlAdr: Option<IgnoredAny>,
    Id: Option<IgnoredAny>,
    CtryOfRes: Option<IgnoredAny>,
    CtctDtls: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case, dead_code)]
struct AccountIn {
    Id: AccountIdIn,
    Tp: Option<IgnoredAny>,
    Ccy: Option<IgnoredAny>,
    Nm: Option<IgnoredAny>,
    Prxy: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case, dead_code)]
struct AccountIdIn {
    Othr: OtherAccountIn,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case, dead_code)]
struct OtherAccountIn {
    Id: String,
    SchmeNm: Option<IgnoredAny>,
    Issr: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case, dead_code)]
struct RemittanceIn {
    #[serde(default)]
    Ustrd: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Checking

/// Collects refusals up to [`REFUSALS_MAX`].
#[derive(Default)]
struct Refusals(Vec<Refusal>);

impl Refusals {
    /// The value, or `None` after recording why not.
    fn take<T>(&mut self, result: Result<T, Refusal>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(refusal) => {
                if self.0.len() < REFUSALS_MAX {
                    self.0.push(refusal);
                }
                None
            }
        }
    }

    fn full(&self) -> bool {
        self.0.len() >= REFUSALS_MAX
    }
}

/// The settlement methods kakehashi honours: the relay settles between accounts the agents
/// hold with the nodes (INDA: the instructed agent's books; INGA: the instructing agent's).
const SETTLEMENT_METHODS: [&str; 2] = ["INDA", "INGA"];

fn check(message: CreditTransferIn, today: time::Date) -> Result<Message, Vec<Refusal>> {
    let mut refusals = Refusals::default();
    let header = message.GrpHdr;
    let group = format!("{ROOT}/GrpHdr");
    let message_id = refusals.take(text::identifier(
        &format!("{group}/MsgId"),
        &header.MsgId,
        ID_MAX,
    ));
    let created = refusals.take(date_time(&format!("{group}/CreDtTm"), &header.CreDtTm));
    let method = header.SttlmInf.SttlmMtd.as_str();
    if !SETTLEMENT_METHODS.contains(&method) {
        refusals.take::<()>(Err(Refusal::ff01(
            &format!("{group}/SttlmInf/SttlmMtd"),
            format!(
                "settlement method {method:?} is not honoured: kakehashi settles between the \
                 agents' accounts with the nodes (INDA or INGA), not by cover (COVE) or through \
                 a clearing system (CLRG)"
            ),
        )));
    }
    let group_date = header
        .IntrBkSttlmDt
        .as_deref()
        .and_then(|d| refusals.take(settlement_date(&format!("{group}/IntrBkSttlmDt"), d, today)));
    let group_agent = header
        .InstgAgt
        .as_ref()
        .and_then(|agent| refusals.take(agent_bic(&format!("{group}/InstgAgt"), agent)));
    let mut transactions = Vec::new();
    for (index, raw) in message.CdtTrfTxInf.into_iter().enumerate() {
        if refusals.full() {
            break;
        }
        let path = format!("{ROOT}/CdtTrfTxInf[{}]", index + 1);
        if let Some(transaction) = check_transaction(
            &path,
            raw,
            group_date,
            group_agent.as_deref(),
            today,
            &mut refusals,
        ) {
            transactions.push(transaction);
        }
    }
    if refusals.0.is_empty() {
        check_totals(
            &header.NbOfTxs,
            header.CtrlSum.as_deref(),
            header.TtlIntrBkSttlmAmt.as_ref(),
            &transactions,
            &mut refusals,
        );
    }
    if refusals.0.is_empty() && transactions.is_empty() {
        refusals.take::<()>(Err(Refusal::ff01(
            &format!("{ROOT}/CdtTrfTxInf"),
            "the message holds no transaction",
        )));
    }
    match (refusals.0.is_empty(), message_id, created) {
        (true, Some(message_id), Some(created)) => Ok(Message {
            message_id,
            created,
            transactions,
        }),
        _ => Err(refusals.0),
    }
}

/// Checks the group header's control totals against the transactions: `NbOfTxs`, and where
/// given `CtrlSum` (the plain sum of the amounts) and `TtlIntrBkSttlmAmt` (the sum in the one
/// settlement currency).
fn check_totals(
    count: &str,
    control_sum: Option<&str>,
    total: Option<&AmountIn>,
    transactions: &[Transaction],
    refusals: &mut Refusals,
) {
    let group = format!("{ROOT}/GrpHdr");
    if count != transactions.len().to_string() {
        refusals.take::<()>(Err(Refusal::ff01(
            &format!("{group}/NbOfTxs"),
            format!(
                "says {count:?} transactions; the message holds {}",
                transactions.len()
            ),
        )));
    }
    if let Some(sum) = control_sum {
        // The plain decimal sum, at the finest scale any currency here uses.
        let scale = money::EXPONENT_MAX;
        let actual = transactions.iter().try_fold(0u128, |sum, t| {
            let factor = 10u128.checked_pow(u32::from(scale.checked_sub(t.currency.exponent)?))?;
            sum.checked_add(t.amount_minor.checked_mul(factor)?)
        });
        let given = parse_decimal(sum, scale);
        if actual.is_none() || given != actual {
            refusals.take::<()>(Err(Refusal::ff01(
                &format!("{group}/CtrlSum"),
                format!("{sum:?} is not the sum of the transactions' IntrBkSttlmAmt"),
            )));
        }
    }
    if let Some(total) = total {
        let path = format!("{group}/TtlIntrBkSttlmAmt");
        let Some(currency) = money::currency(&total.currency) else {
            refusals.take::<()>(Err(Refusal::ff01(
                &format!("{path}/@Ccy"),
                format!("unknown currency {:?}", total.currency),
            )));
            return;
        };
        let sum = transactions.iter().try_fold(0u128, |sum, t| {
            (t.currency == currency).then_some(())?;
            sum.checked_add(t.amount_minor)
        });
        let given = money::parse_amount(&pb::ActiveCurrencyAndAmount {
            currency: total.currency.clone(),
            value: total.value.clone(),
        })
        .ok()
        .map(|(_, minor)| minor);
        if sum.is_none() || given != sum {
            refusals.take::<()>(Err(Refusal::ff01(
                &path,
                format!(
                    "{} {} is not the sum of the transactions' IntrBkSttlmAmt (all in {})",
                    total.currency, total.value, total.currency
                ),
            )));
        }
    }
}

/// A strict unsigned decimal as an integer scaled by 10^`scale`, if it is one.
fn parse_decimal(text: &str, scale: u8) -> Option<u128> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || fraction.len() > usize::from(scale)
        || whole.len() > money::AMOUNT_DIGITS_MAX
    {
        return None;
    }
    let mut digits = String::from(whole);
    digits.push_str(fraction);
    digits.extend(std::iter::repeat_n(
        '0',
        usize::from(scale) - fraction.len(),
    ));
    digits.parse().ok()
}

#[allow(clippy::too_many_lines)]
fn check_transaction(
    path: &str,
    raw: TransactionIn,
    group_date: Option<time::Date>,
    group_agent: Option<&str>,
    today: time::Date,
    refusals: &mut Refusals,
) -> Option<Transaction> {
    let at = |element: &str| format!("{path}/{element}");
    let before = refusals.0.len();
    let uetr = match raw.PmtId.UETR.as_deref() {
        Some(text) => refusals.take(v4_uetr(&at("PmtId/UETR"), text)),
        None => refusals.take(Err(Refusal::ff01(
            &at("PmtId/UETR"),
            "required, and missing: the UETR is what makes the same message sent twice pay \
             once (CBPR+ requires it too)",
        ))),
    };
    let end_to_end_id = refusals.take(text::identifier(
        &at("PmtId/EndToEndId"),
        &raw.PmtId.EndToEndId,
        ID_MAX,
    ));
    let instruction_id = raw
        .PmtId
        .InstrId
        .as_deref()
        .and_then(|id| refusals.take(text::identifier(&at("PmtId/InstrId"), id, ID_MAX)));
    let transaction_id = raw
        .PmtId
        .TxId
        .as_deref()
        .and_then(|id| refusals.take(text::identifier(&at("PmtId/TxId"), id, ID_MAX)));
    let amount = refusals.take(amount(&at("IntrBkSttlmAmt"), &raw.IntrBkSttlmAmt));
    if let (Some(instructed), Some((currency, minor))) = (raw.InstdAmt.as_ref(), amount) {
        let same = money::parse_amount(&pb::ActiveCurrencyAndAmount {
            currency: instructed.currency.clone(),
            value: instructed.value.clone(),
        })
        .is_ok_and(|(c, m)| c == currency && m == minor);
        if !same {
            refusals.take::<()>(Err(Refusal::ff01(
                &at("InstdAmt"),
                format!(
                    "{} {} differs from the settlement amount: kakehashi converts the settlement \
                     amount at its own quote and cannot guarantee an instructed amount in \
                     another currency or of another value",
                    instructed.currency, instructed.value
                ),
            )));
        }
    }
    let date = match (raw.IntrBkSttlmDt.as_deref(), group_date) {
        (Some(text), group) => refusals
            .take(settlement_date(&at("IntrBkSttlmDt"), text, today))
            .and_then(|date| match group {
                Some(g) if g != date => refusals.take(Err(Refusal::ff01(
                    &at("IntrBkSttlmDt"),
                    format!(
                        "{text} differs from the group header's IntrBkSttlmDt {}",
                        iso_date(g)
                    ),
                ))),
                _ => Some(date),
            }),
        (None, Some(group)) => Some(group),
        (None, None) => refusals.take(Err(Refusal::ff01(
            &at("IntrBkSttlmDt"),
            "required, and missing here and in the group header",
        ))),
    };
    let charge_bearer = refusals
        .take(ChargeBearer::parse(&raw.ChrgBr).map_err(|r| Refusal::ff01(&at("ChrgBr"), r.detail)));
    let debtor_name = name(&at("Dbtr/Nm"), raw.Dbtr.Nm.as_deref(), refusals);
    let debtor_account = account(&at("DbtrAcct"), raw.DbtrAcct.as_ref(), refusals);
    let debtor_agent = refusals.take(agent_bic(&at("DbtrAgt"), &raw.DbtrAgt));
    let creditor_agent = refusals.take(agent_bic(&at("CdtrAgt"), &raw.CdtrAgt));
    let creditor_name = name(&at("Cdtr/Nm"), raw.Cdtr.Nm.as_deref(), refusals);
    let creditor_account = account(&at("CdtrAcct"), raw.CdtrAcct.as_ref(), refusals);
    if let Some(debtor_agent) = debtor_agent.as_deref() {
        let instructing = raw
            .InstgAgt
            .as_ref()
            .and_then(|agent| refusals.take(agent_bic(&at("InstgAgt"), agent)))
            .map(|bic| (at("InstgAgt"), bic))
            .or_else(|| group_agent.map(|bic| (format!("{ROOT}/GrpHdr/InstgAgt"), bic.to_owned())));
        if let Some((place, bic)) = instructing
            && bic != debtor_agent
        {
            refusals.take::<()>(Err(Refusal::ff01(
                &place,
                format!(
                    "the instructing agent {bic} is not the debtor agent {debtor_agent}: \
                     kakehashi takes a payment from its debtor agent only"
                ),
            )));
        }
    }
    let remittance_information = match raw.RmtInf.map(|r| r.Ustrd).unwrap_or_default().as_slice() {
        [] => Some(String::new()),
        [line] => refusals.take(text::extended(&at("RmtInf/Ustrd"), line, TEXT_MAX)),
        [_, ..] => refusals.take(Err(Refusal::ff01(
            &at("RmtInf/Ustrd[2]"),
            "refused: the signed instruction carries one line of remittance information \
             (CBPR+ allows one Ustrd)",
        ))),
    };
    if refusals.0.len() != before {
        return None;
    }
    let (currency, amount_minor) = amount?;
    Some(Transaction {
        uetr: uetr?,
        end_to_end_id: end_to_end_id?,
        instruction_id,
        transaction_id,
        currency,
        amount_minor,
        settlement_date: date?,
        charge_bearer: charge_bearer?,
        debtor_name: debtor_name?,
        debtor_account: debtor_account?,
        debtor_agent: debtor_agent?,
        creditor_agent: creditor_agent?,
        creditor_name: creditor_name?,
        creditor_account: creditor_account?,
        remittance_information: remittance_information?,
    })
}

/// A UETR that is a version 4 UUID, as the schema's `UUIDv4Identifier` requires (pacs.002 and
/// camt.053 quote it with the same type; the node itself takes versions 1 to 8).
fn v4_uetr(path: &str, text: &str) -> Result<Uetr, Refusal> {
    let uetr = Uetr::parse(text).map_err(|r| Refusal::ff01(path, r.detail))?;
    if uetr.version() != 4 {
        return Err(Refusal::ff01(
            path,
            format!(
                "{text} is a version {} UUID; an ISO 20022 UETR is a version 4 UUID \
                 (UUIDv4Identifier)",
                uetr.version()
            ),
        ));
    }
    Ok(uetr)
}

/// A positive amount in a currency kakehashi knows, with no more fraction digits than the
/// currency has.
fn amount(path: &str, raw: &AmountIn) -> Result<(&'static Currency, u128), Refusal> {
    let (currency, minor) = money::parse_amount(&pb::ActiveCurrencyAndAmount {
        currency: raw.currency.clone(),
        value: raw.value.clone(),
    })
    .map_err(|r| Refusal::ff01(path, r.detail))?;
    if minor == 0 {
        return Err(Refusal::ff01(
            path,
            "the amount is zero; a payment is positive",
        ));
    }
    Ok((currency, minor))
}

/// A required name of the CBPR+ extended set, 1 to 140 characters.
fn name(path: &str, value: Option<&str>, refusals: &mut Refusals) -> Option<String> {
    match value {
        Some(value) => refusals.take(text::extended(path, value, TEXT_MAX)),
        None => refusals.take(Err(Refusal::ff01(
            path,
            "required, and missing: the node screens and records both parties by name",
        ))),
    }
}

/// The kakehashi account of a `DbtrAcct` or `CdtrAcct`: its `Id/Othr/Id`, a decimal account id.
fn account(path: &str, value: Option<&AccountIn>, refusals: &mut Refusals) -> Option<u128> {
    let Some(value) = value else {
        return refusals.take(Err(Refusal::ff01(
            path,
            "required, and missing: give the account on the node's ledger as Id/Othr/Id",
        )));
    };
    let path = format!("{path}/Id/Othr/Id");
    refusals.take(
        instruction::account("account", &value.Id.Othr.Id)
            .map_err(|r| Refusal::ff01(&path, r.detail)),
    )
}

/// The BIC of an agent (`FinInstnId/BICFI`), as the 8 characters of its party: `XXX`, the
/// primary office's branch code, is the same party as the 8-character BIC; another branch is
/// not a participant.
fn agent_bic(path: &str, agent: &AgentIn) -> Result<String, Refusal> {
    let path = format!("{path}/FinInstnId/BICFI");
    let Some(bic) = agent.FinInstnId.BICFI.as_deref() else {
        return Err(Refusal::ff01(
            &path,
            "required, and missing: the node knows participants by BIC only",
        ));
    };
    let bic =
        instruction::bic("BICFI", bic.to_owned()).map_err(|r| Refusal::ff01(&path, r.detail))?;
    match bic.get(8..) {
        None | Some("") => Ok(bic),
        Some(PRIMARY_OFFICE) => Ok(bic.get(..8).unwrap_or_default().to_owned()),
        Some(branch) => Err(Refusal::ff01(
            &path,
            format!(
                "{bic} names branch {branch}; participants are banks by their 8-character BIC \
                 (or its primary office, branch code XXX)"
            ),
        )),
    }
}

/// An `ISODate` (`YYYY-MM-DD`), not after `today + 1` (the date that is already under way in
/// time zones ahead of UTC, such as Tokyo's and Singapore's, while it is still `today` in UTC).
fn settlement_date(path: &str, text: &str, today: time::Date) -> Result<time::Date, Refusal> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(text, &format).map_err(|_| {
        Refusal::ff01(
            path,
            format!("{text:?} is not a date of the form 2026-12-07"),
        )
    })?;
    let latest = today.next_day().unwrap_or(today);
    if date > latest {
        return Err(Refusal::ff01(
            path,
            format!(
                "{text} is a forward date: the node settles on receipt and holds nothing for a \
                 later day; send it on its settlement date"
            ),
        ));
    }
    Ok(date)
}

/// An `ISODateTime`: `2026-12-07T09:30:00`, with optional fraction of a second and an optional
/// `Z` or `±hh:mm` offset.
fn date_time(path: &str, text: &str) -> Result<String, Refusal> {
    use time::format_description::well_known::Rfc3339;
    let local = time::macros::format_description!(
        version = 2,
        "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
    );
    if time::OffsetDateTime::parse(text, &Rfc3339).is_ok()
        || time::PrimitiveDateTime::parse(text, &local).is_ok()
    {
        Ok(text.to_owned())
    } else {
        Err(Refusal::ff01(
            path,
            format!("{text:?} is not a date and time of the form 2026-12-07T09:30:00+09:00"),
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Writing

/// Writes `message` as a pacs.008.001.08 document (CBPR+ usage: one settlement date per
/// transaction, accounts by `Othr/Id`, settlement method INDA). The inverse of [`parse()`] for
/// every field of [`Message`].
pub fn write(message: &Message) -> Result<String, WriteError> {
    let document = DocumentOut {
        xmlns: NAMESPACE,
        body: CreditTransferOut {
            header: GroupHeaderOut {
                message_id: &message.message_id,
                created: &message.created,
                count: message.transactions.len().to_string(),
                settlement: SettlementOut { method: "INDA" },
            },
            transactions: message.transactions.iter().map(transaction_out).collect(),
        },
    };
    write_document("pacs.008", &document)
}

fn transaction_out(t: &Transaction) -> TransactionOut<'_> {
    let amount = t.amount();
    TransactionOut {
        payment_id: PaymentIdOut {
            instruction_id: t.instruction_id.as_deref(),
            end_to_end_id: &t.end_to_end_id,
            transaction_id: t.transaction_id.as_deref(),
            uetr: t.uetr.to_string(),
        },
        amount: AmountOut {
            currency: t.currency.alpha,
            value: amount.value,
        },
        date: iso_date(t.settlement_date),
        charge_bearer: t.charge_bearer.as_str(),
        debtor: PartyOut {
            name: &t.debtor_name,
        },
        debtor_account: account_out(t.debtor_account),
        debtor_agent: agent_out(&t.debtor_agent),
        creditor_agent: agent_out(&t.creditor_agent),
        creditor: PartyOut {
            name: &t.creditor_name,
        },
        creditor_account: account_out(t.creditor_account),
        remittance: (!t.remittance_information.is_empty()).then_some(RemittanceOut {
            line: &t.remittance_information,
        }),
    }
}

fn account_out(id: u128) -> AccountOut {
    AccountOut {
        id: AccountIdOut {
            other: OtherOut { id: id.to_string() },
        },
    }
}

fn agent_out(bic: &str) -> AgentOut<'_> {
    AgentOut {
        institution: InstitutionOut { bic },
    }
}

#[derive(Serialize)]
struct DocumentOut<'a> {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    #[serde(rename = "FIToFICstmrCdtTrf")]
    body: CreditTransferOut<'a>,
}

#[derive(Serialize)]
struct CreditTransferOut<'a> {
    #[serde(rename = "GrpHdr")]
    header: GroupHeaderOut<'a>,
    #[serde(rename = "CdtTrfTxInf")]
    transactions: Vec<TransactionOut<'a>>,
}

#[derive(Serialize)]
struct GroupHeaderOut<'a> {
    #[serde(rename = "MsgId")]
    message_id: &'a str,
    #[serde(rename = "CreDtTm")]
    created: &'a str,
    #[serde(rename = "NbOfTxs")]
    count: String,
    #[serde(rename = "SttlmInf")]
    settlement: SettlementOut,
}

#[derive(Serialize)]
struct SettlementOut {
    #[serde(rename = "SttlmMtd")]
    method: &'static str,
}

#[derive(Serialize)]
struct TransactionOut<'a> {
    #[serde(rename = "PmtId")]
    payment_id: PaymentIdOut<'a>,
    #[serde(rename = "IntrBkSttlmAmt")]
    amount: AmountOut,
    #[serde(rename = "IntrBkSttlmDt")]
    date: String,
    #[serde(rename = "ChrgBr")]
    charge_bearer: &'static str,
    #[serde(rename = "Dbtr")]
    debtor: PartyOut<'a>,
    #[serde(rename = "DbtrAcct")]
    debtor_account: AccountOut,
    #[serde(rename = "DbtrAgt")]
    debtor_agent: AgentOut<'a>,
    #[serde(rename = "CdtrAgt")]
    creditor_agent: AgentOut<'a>,
    #[serde(rename = "Cdtr")]
    creditor: PartyOut<'a>,
    #[serde(rename = "CdtrAcct")]
    creditor_account: AccountOut,
    #[serde(rename = "RmtInf", skip_serializing_if = "Option::is_none")]
    remittance: Option<RemittanceOut<'a>>,
}

#[derive(Serialize)]
struct PaymentIdOut<'a> {
    #[serde(rename = "InstrId", skip_serializing_if = "Option::is_none")]
    instruction_id: Option<&'a str>,
    #[serde(rename = "EndToEndId")]
    end_to_end_id: &'a str,
    #[serde(rename = "TxId", skip_serializing_if = "Option::is_none")]
    transaction_id: Option<&'a str>,
    #[serde(rename = "UETR")]
    uetr: String,
}

#[derive(Serialize)]
struct AmountOut {
    #[serde(rename = "@Ccy")]
    currency: &'static str,
    #[serde(rename = "$text")]
    value: String,
}

#[derive(Serialize)]
struct PartyOut<'a> {
    #[serde(rename = "Nm")]
    name: &'a str,
}

#[derive(Serialize)]
struct AccountOut {
    #[serde(rename = "Id")]
    id: AccountIdOut,
}

#[derive(Serialize)]
struct AgentOut<'a> {
    #[serde(rename = "FinInstnId")]
    institution: InstitutionOut<'a>,
}

#[derive(Serialize)]
struct InstitutionOut<'a> {
    #[serde(rename = "BICFI")]
    bic: &'a str,
}

#[derive(Serialize)]
struct RemittanceOut<'a> {
    #[serde(rename = "Ustrd")]
    line: &'a str,
}

#[cfg(test)]
mod tests;
