//! ISO 20022 XML at the edge: pacs.008.001.08 messages read into the fields of the signed
//! instruction ([`pacs008`]) and written back from them, and pacs.002.001.10 status reports
//! written from the nodes' answers ([`pacs002`]), camt.053.001.08 statements written from
//! a ledger ([`camt053`]).
//!
//! The node's wire format stays protobuf; these messages are how banks' back offices speak to
//! the command line. Reading goes through serde ([`quick_xml::de`]) into types that list every
//! element the mapping honours or ignores, so an element it would have to honour but cannot is
//! refused by name with its path (`deny_unknown_fields`), not dropped; the checks after that
//! refuse what the node would refuse, before anything is sent. Every refusal is a [`Refusal`]:
//! the element's path and an FF01 reason.
//!
//! The field-by-field mapping, with which elements are honoured, refused or ignored and why,
//! is in `docs/iso20022.md`; the official schemas the written messages are validated against
//! are under `tests/data/iso20022/xsd/`.

pub mod camt053;
pub mod pacs002;
pub mod pacs008;
mod text;

#[cfg(any(test, feature = "test-support"))]
pub mod schema;

use crate::reason::ReasonCode;

/// A written account identification: `Othr/Id`, as accounts in Japan and Singapore have no
/// IBAN. Shared by the pacs.008 and camt.053 writers.
#[derive(serde::Serialize)]
struct AccountIdOut {
    #[serde(rename = "Othr")]
    other: OtherOut,
}

/// The `Othr` of an [`AccountIdOut`]: the account id on the node's ledger.
#[derive(serde::Serialize)]
struct OtherOut {
    #[serde(rename = "Id")]
    id: String,
}

/// Largest message read: a pacs.008 of some thousand transactions is a few MiB; 64 MiB refuses
/// a runaway file before it is parsed.
pub const MESSAGE_BYTES_MAX: usize = 64 << 20;

/// Most refusals reported for one message before the checks stop: enough to fix a file in one
/// go, few enough to read.
pub const REFUSALS_MAX: usize = 50;

/// Why a message (or one of its transactions) is refused: where, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {code}: {detail}")]
pub struct Refusal {
    /// The element or attribute at fault, as a path from the root
    /// (`/Document/FIToFICstmrCdtTrf/CdtTrfTxInf[2]/PmtId/UETR`; `@Ccy` for an attribute).
    pub path: String,
    /// The ISO 20022 reason code: FF01 for every refusal of the message's content.
    pub code: ReasonCode,
    /// What is wrong and what would be right.
    pub detail: String,
}

impl Refusal {
    /// An FF01 refusal of the element at `path`.
    pub(crate) fn ff01(path: &str, detail: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            code: ReasonCode::Ff01,
            detail: detail.into(),
        }
    }
}

/// Why a message could not be written (the serializer refused a value; not expected for the
/// types here, which hold only text).
#[derive(Debug, thiserror::Error)]
#[error("writing the {message} message: {source}")]
pub struct WriteError {
    /// Which message.
    pub message: &'static str,
    /// The serializer's error.
    #[source]
    pub source: quick_xml::SeError,
}

/// The XML declaration every written message starts with.
const DECLARATION: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// Serializes `value` as the `Document` root of a message, indented by two spaces, after the
/// XML declaration.
fn write_document<T: serde::Serialize>(
    message: &'static str,
    value: &T,
) -> Result<String, WriteError> {
    let mut out = String::from(DECLARATION);
    let mut serializer = quick_xml::se::Serializer::with_root(&mut out, Some("Document"))
        .map_err(|source| WriteError { message, source })?;
    serializer.indent(' ', 2);
    value
        .serialize(serializer)
        .map_err(|source| WriteError { message, source })?;
    out.push('\n');
    Ok(out)
}

/// An ISO 20022 `ISODateTime` in UTC with whole seconds, as written: `2026-12-07T01:02:03Z`.
pub fn iso_date_time(time: kakehashi_pki::UnixTime) -> String {
    time::OffsetDateTime::from_unix_timestamp(time.0).map_or_else(
        |_| "1970-01-01T00:00:00Z".to_owned(),
        |t| {
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        },
    )
}

/// An ISO 20022 `ISODate`: `2026-12-07`.
pub fn iso_date(date: time::Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}
