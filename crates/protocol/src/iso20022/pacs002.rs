//! pacs.002.001.10 (FI to FI Payment Status Report), CBPR+ usage, written from the nodes'
//! status reports: per transaction `TxSts` ACSC, RJCT or PDNG, the ISO reason code in
//! `StsRsnInf/Rsn/Cd` with the node's detail in `AddtlInf`, the original message and
//! transaction references and the UETR.

use kakehashi_pki::UnixTime;
use kakehashi_proto::pb;
use serde::Serialize;

use super::{WriteError, iso_date_time, text, write_document};
use crate::instruction::Uetr;
use crate::status::status_name;

/// The message's XML namespace.
pub const NAMESPACE: &str = "urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10";

/// ISO 20022 `Max105Text`: one `AddtlInf`.
const ADDITIONAL_CHARS_MAX: usize = 105;

/// How many `AddtlInf` a reason's detail fills at most (CBPR+ allows two).
const ADDITIONAL_MAX: usize = 2;

/// A status report to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// `GrpHdr/MsgId`: this report's reference (CBPR+ identifier rules).
    pub message_id: String,
    /// `GrpHdr/CreDtTm`.
    pub created: UnixTime,
    /// The statuses, one per original transaction.
    pub transactions: Vec<TransactionStatus>,
}

/// The message a transaction came in, when it came in one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginalMessage {
    /// Its `GrpHdr/MsgId`.
    pub message_id: String,
    /// Its name, e.g. `pacs.008.001.08`.
    pub name: String,
    /// Its `GrpHdr/CreDtTm`, as it wrote it.
    pub created: Option<String>,
}

/// The status of one original transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionStatus {
    /// The message it came in (`OrgnlGrpInf`), if known.
    pub original_message: Option<OriginalMessage>,
    /// `OrgnlInstrId`.
    pub instruction_id: Option<String>,
    /// `OrgnlEndToEndId`.
    pub end_to_end_id: String,
    /// `OrgnlTxId`.
    pub transaction_id: Option<String>,
    /// `OrgnlUETR`; not written unless it is a version 4 UUID (the schema's `UUIDv4Identifier`).
    pub uetr: Uetr,
    /// `TxSts`; nothing is written for an unspecified status.
    pub status: pb::TransactionStatus,
    /// `StsRsnInf/Rsn/Cd`: the ISO 20022 `ExternalStatusReason1Code`, when there is one.
    pub reason_code: String,
    /// `StsRsnInf/AddtlInf`: the reason's detail, fitted to the CBPR+ character set and cut to
    /// two 105-character lines.
    pub reason_detail: String,
}

impl TransactionStatus {
    /// The status a node's `report` gives, for a transaction with these references.
    pub fn of_report(
        report: &pb::PaymentStatusReport,
        uetr: Uetr,
        original_message: Option<OriginalMessage>,
        instruction_id: Option<String>,
        transaction_id: Option<String>,
    ) -> Self {
        Self {
            original_message,
            instruction_id,
            end_to_end_id: report.end_to_end_id.clone(),
            transaction_id,
            uetr,
            status: report.transaction_status(),
            reason_code: report.status_reason_code.clone(),
            reason_detail: report.status_reason_detail.clone(),
        }
    }
}

/// Writes `report` as a pacs.002.001.10 document.
pub fn write(report: &Report) -> Result<String, WriteError> {
    let document = DocumentOut {
        xmlns: NAMESPACE,
        body: StatusReportOut {
            header: GroupHeaderOut {
                message_id: &report.message_id,
                created: iso_date_time(report.created),
            },
            transactions: report.transactions.iter().map(transaction_out).collect(),
        },
    };
    write_document("pacs.002", &document)
}

fn transaction_out(t: &TransactionStatus) -> TransactionOut<'_> {
    let status = match t.status {
        pb::TransactionStatus::Unspecified => None,
        other => Some(status_name(other)),
    };
    let detail = text::fit_extended(&t.reason_detail, ADDITIONAL_CHARS_MAX * ADDITIONAL_MAX);
    let chars: Vec<char> = detail.chars().collect();
    let additional: Vec<String> = chars
        .chunks(ADDITIONAL_CHARS_MAX)
        .map(|chunk| chunk.iter().collect())
        .collect();
    let reason = (!t.reason_code.is_empty() || !additional.is_empty()).then(|| ReasonOut {
        reason: (!t.reason_code.is_empty()).then(|| CodeOut {
            code: &t.reason_code,
        }),
        additional,
    });
    TransactionOut {
        original_group: t.original_message.as_ref().map(|m| OriginalGroupOut {
            message_id: &m.message_id,
            name: &m.name,
            created: m.created.as_deref(),
        }),
        instruction_id: t.instruction_id.as_deref(),
        end_to_end_id: &t.end_to_end_id,
        transaction_id: t.transaction_id.as_deref(),
        // The schema's UUIDv4Identifier: a UETR of another version (the node takes versions 1
        // to 8) cannot be quoted; the end-to-end id still identifies the payment.
        uetr: (t.uetr.version() == 4).then(|| t.uetr.to_string()),
        status,
        reason,
    }
}

#[derive(Serialize)]
struct DocumentOut<'a> {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    #[serde(rename = "FIToFIPmtStsRpt")]
    body: StatusReportOut<'a>,
}

#[derive(Serialize)]
struct StatusReportOut<'a> {
    #[serde(rename = "GrpHdr")]
    header: GroupHeaderOut<'a>,
    #[serde(rename = "TxInfAndSts")]
    transactions: Vec<TransactionOut<'a>>,
}

#[derive(Serialize)]
struct GroupHeaderOut<'a> {
    #[serde(rename = "MsgId")]
    message_id: &'a str,
    #[serde(rename = "CreDtTm")]
    created: String,
}

#[derive(Serialize)]
struct TransactionOut<'a> {
    #[serde(rename = "OrgnlGrpInf", skip_serializing_if = "Option::is_none")]
    original_group: Option<OriginalGroupOut<'a>>,
    #[serde(rename = "OrgnlInstrId", skip_serializing_if = "Option::is_none")]
    instruction_id: Option<&'a str>,
    #[serde(rename = "OrgnlEndToEndId")]
    end_to_end_id: &'a str,
    #[serde(rename = "OrgnlTxId", skip_serializing_if = "Option::is_none")]
    transaction_id: Option<&'a str>,
    #[serde(rename = "OrgnlUETR", skip_serializing_if = "Option::is_none")]
    uetr: Option<String>,
    #[serde(rename = "TxSts", skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
    #[serde(rename = "StsRsnInf", skip_serializing_if = "Option::is_none")]
    reason: Option<ReasonOut<'a>>,
}

#[derive(Serialize)]
struct OriginalGroupOut<'a> {
    #[serde(rename = "OrgnlMsgId")]
    message_id: &'a str,
    #[serde(rename = "OrgnlMsgNmId")]
    name: &'a str,
    #[serde(rename = "OrgnlCreDtTm", skip_serializing_if = "Option::is_none")]
    created: Option<&'a str>,
}

#[derive(Serialize)]
struct ReasonOut<'a> {
    #[serde(rename = "Rsn", skip_serializing_if = "Option::is_none")]
    reason: Option<CodeOut<'a>>,
    #[serde(rename = "AddtlInf")]
    additional: Vec<String>,
}

#[derive(Serialize)]
struct CodeOut<'a> {
    #[serde(rename = "Cd")]
    code: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iso20022::schema;

    const UETR: &str = "3f6c1d2a-8b4e-4f7a-9c15-2d8e6b0a4f11";

    fn rejected() -> TransactionStatus {
        TransactionStatus {
            original_message: Some(OriginalMessage {
                message_id: "KKHAJPJ0-20261207-0001".into(),
                name: "pacs.008.001.08".into(),
                created: Some("2026-12-07T09:30:00+09:00".into()),
            }),
            instruction_id: Some("KKHAJPJ0-0001".into()),
            end_to_end_id: "INV-1".into(),
            transaction_id: None,
            uetr: Uetr::parse(UETR).unwrap(),
            status: pb::TransactionStatus::Rjct,
            reason_code: "AM04".into(),
            reason_detail: format!("debtor account 1001 holds JPY 10 → {}", "x".repeat(300)),
        }
    }

    #[test]
    fn writes_status_reason_references_and_uetr() {
        let settled = TransactionStatus {
            original_message: None,
            instruction_id: None,
            transaction_id: Some("TX-9".into()),
            status: pb::TransactionStatus::Acsc,
            reason_code: String::new(),
            reason_detail: String::new(),
            ..rejected()
        };
        let xml = write(&Report {
            message_id: "KKHAJPJ0-STS-1".into(),
            created: UnixTime(1_796_000_000),
            transactions: vec![rejected(), settled],
        })
        .unwrap();
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10\">"), "{xml}");
        for needle in [
            "<MsgId>KKHAJPJ0-STS-1</MsgId>",
            "<CreDtTm>2026-11-30T",
            "<OrgnlMsgId>KKHAJPJ0-20261207-0001</OrgnlMsgId>",
            "<OrgnlMsgNmId>pacs.008.001.08</OrgnlMsgNmId>",
            "<OrgnlInstrId>KKHAJPJ0-0001</OrgnlInstrId>",
            "<OrgnlEndToEndId>INV-1</OrgnlEndToEndId>",
            "<OrgnlTxId>TX-9</OrgnlTxId>",
            "<OrgnlUETR>3f6c1d2a-8b4e-4f7a-9c15-2d8e6b0a4f11</OrgnlUETR>",
            "<TxSts>RJCT</TxSts>",
            "<Cd>AM04</Cd>",
            "<AddtlInf>debtor account 1001 holds JPY 10 ? xxx",
            "<TxSts>ACSC</TxSts>",
        ] {
            assert!(xml.contains(needle), "{needle} not in\n{xml}");
        }
        assert_eq!(xml.matches("<AddtlInf>").count(), 2, "{xml}");
        assert_eq!(xml.matches("<StsRsnInf>").count(), 1, "{xml}");
        let order = [
            "<OrgnlGrpInf>",
            "<OrgnlInstrId>",
            "<OrgnlEndToEndId>",
            "<OrgnlUETR>",
            "<TxSts>",
            "<StsRsnInf>",
        ];
        let positions: Vec<usize> = order.iter().map(|n| xml.find(n).unwrap()).collect();
        assert!(positions.is_sorted(), "schema order: {xml}");
        schema::check_model(&xml, "pacs.002.001.10");
    }

    /// `tests/data/iso20022/pacs002/pacs002-jp-to-sg.xml`, the sample `.ci/run` checks against
    /// the pacs.002.001.10 model, is byte for byte what the writer writes.
    #[test]
    fn the_committed_sample_is_what_the_writer_writes() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/data/iso20022/pacs002/pacs002-jp-to-sg.xml");
        let sample = std::fs::read_to_string(&path).unwrap();
        let settled = TransactionStatus {
            end_to_end_id: "INV-2026-1207-01".into(),
            status: pb::TransactionStatus::Acsc,
            reason_code: String::new(),
            reason_detail: String::new(),
            ..rejected()
        };
        let insufficient = TransactionStatus {
            instruction_id: Some("KKHAJPJ0-0002".into()),
            end_to_end_id: "INV-2026-1207-02".into(),
            uetr: Uetr::parse("7a2e9b40-1c3d-4e5f-8a6b-9c0d1e2f3a42").unwrap(),
            reason_detail: "debtor account 1001 holds JPY 10, the payment needs JPY 250000".into(),
            ..rejected()
        };
        let xml = write(&Report {
            message_id: "KKHAJPJ0-STS-20261207-0001".into(),
            created: UnixTime(1_796_603_465),
            transactions: vec![settled, insufficient],
        })
        .unwrap();
        assert_eq!(xml, sample);
        schema::check_model(&xml, "pacs.002.001.10");
    }

    #[test]
    fn a_uetr_that_is_not_version_4_is_not_quoted() {
        let t = TransactionStatus {
            uetr: Uetr::parse("3f6c1d2a-8b4e-1f7a-9c15-2d8e6b0a4f11").unwrap(),
            ..rejected()
        };
        let xml = write(&Report {
            message_id: "M".into(),
            created: UnixTime(0),
            transactions: vec![t],
        })
        .unwrap();
        assert!(!xml.contains("<OrgnlUETR>"), "{xml}");
        schema::check_model(&xml, "pacs.002.001.10");
        assert!(
            xml.contains("<OrgnlEndToEndId>INV-1</OrgnlEndToEndId>"),
            "{xml}"
        );
    }

    #[test]
    fn an_unspecified_status_writes_no_status_code() {
        let t = TransactionStatus {
            status: pb::TransactionStatus::Unspecified,
            reason_code: String::new(),
            reason_detail: String::new(),
            ..rejected()
        };
        let xml = write(&Report {
            message_id: "M".into(),
            created: UnixTime(0),
            transactions: vec![t],
        })
        .unwrap();
        assert!(!xml.contains("<TxSts>"), "{xml}");
        assert!(!xml.contains("<StsRsnInf>"), "{xml}");
        schema::check_model(&xml, "pacs.002.001.10");
    }
}
