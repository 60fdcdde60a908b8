//! camt.053.001.08 (Bank to Customer Statement), written from a node's ledger: the opening
//! and closing booked balances of one account over a period, one booked entry per posted
//! transfer, and the reservations still pending as information.

use kakehashi_pki::UnixTime;
use serde::Serialize;

use super::{AccountIdOut, OtherOut, WriteError, iso_date, iso_date_time, write_document};
use crate::instruction::Uetr;
use crate::money::{Currency, format_amount};

/// The message's XML namespace.
pub const NAMESPACE: &str = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08";

/// A statement of one account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// `GrpHdr/MsgId` and `Stmt/Id` (at most 35 characters).
    pub message_id: String,
    /// `GrpHdr/CreDtTm` and `Stmt/CreDtTm`.
    pub created: UnixTime,
    /// The account (`Acct/Id/Othr/Id`).
    pub account: u128,
    /// Its currency (`Acct/Ccy`, and every amount's).
    pub currency: &'static Currency,
    /// `FrToDt`: the period the statement covers.
    pub from: UnixTime,
    /// The end of the period.
    pub to: UnixTime,
    /// `Bal` OPBD: the booked balance at `from`, in minor units (negative: a debit balance).
    pub opening: i128,
    /// `Bal` CLBD: the booked balance at `to`.
    pub closing: i128,
    /// The entries, in booking order.
    pub entries: Vec<Entry>,
}

/// One entry (`Ntry`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// `Amt`, in minor units.
    pub amount_minor: u128,
    /// `CdtDbtInd`: a credit to the account (else a debit).
    pub credit: bool,
    /// `Sts/Cd`: BOOK for a posted transfer, INFO for a reservation still pending.
    pub booked: bool,
    /// `BookgDt/DtTm` (for a pending reservation, when it was made).
    pub booked_at: UnixTime,
    /// `AcctSvcrRef`: the ledger transfer id, 32 hex digits.
    pub reference: String,
    /// `BkTxCd/Prtry/Cd`: what the transfer was for (e.g. `OUTBOUND`).
    pub kind: String,
    /// `NtryDtls/TxDtls/Refs/UETR`, for a payment (a version 4 UUID; others are not quoted).
    pub uetr: Option<Uetr>,
    /// `NtryDtls/TxDtls/Refs/EndToEndId`, when known.
    pub end_to_end_id: Option<String>,
}

/// The `BkTxCd/Prtry/Issr` of the entries' proprietary codes.
const CODE_ISSUER: &str = "KAKEHASHI";

/// Writes `statement` as a camt.053.001.08 document.
pub fn write(statement: &Statement) -> Result<String, WriteError> {
    let created = iso_date_time(statement.created);
    let balance = |code: &'static str, minor: i128, at: UnixTime| BalanceOut {
        kind: BalanceTypeOut {
            code_or_proprietary: CodeOut { code },
        },
        amount: amount(statement.currency, minor.unsigned_abs()),
        indicator: if minor < 0 { "DBIT" } else { "CRDT" },
        date: DateOut { date: date_of(at) },
    };
    let document = DocumentOut {
        xmlns: NAMESPACE,
        body: StatementMessageOut {
            header: GroupHeaderOut {
                message_id: &statement.message_id,
                created: created.clone(),
            },
            statement: StatementOut {
                id: &statement.message_id,
                created,
                period: PeriodOut {
                    from: iso_date_time(statement.from),
                    to: iso_date_time(statement.to),
                },
                account: AccountOut {
                    id: AccountIdOut {
                        other: OtherOut {
                            id: statement.account.to_string(),
                        },
                    },
                    currency: statement.currency.alpha,
                },
                balances: vec![
                    balance("OPBD", statement.opening, statement.from),
                    balance("CLBD", statement.closing, statement.to),
                ],
                entries: statement
                    .entries
                    .iter()
                    .map(|e| entry_out(statement.currency, e))
                    .collect(),
            },
        },
    };
    write_document("camt.053", &document)
}

fn entry_out<'a>(currency: &'static Currency, e: &'a Entry) -> EntryOut<'a> {
    let uetr = e.uetr.filter(|u| u.version() == 4).map(|u| u.to_string());
    let details = (uetr.is_some() || e.end_to_end_id.is_some()).then_some(DetailsOut {
        transaction: TransactionOut {
            refs: RefsOut {
                end_to_end_id: e.end_to_end_id.as_deref(),
                uetr,
            },
        },
    });
    EntryOut {
        amount: amount(currency, e.amount_minor),
        indicator: if e.credit { "CRDT" } else { "DBIT" },
        status: CodeOut {
            code: if e.booked { "BOOK" } else { "INFO" },
        },
        booking: DateTimeOut {
            date_time: iso_date_time(e.booked_at),
        },
        reference: &e.reference,
        code: BankCodeOut {
            proprietary: ProprietaryOut {
                code: &e.kind,
                issuer: CODE_ISSUER,
            },
        },
        details,
    }
}

fn amount(currency: &'static Currency, minor: u128) -> AmountOut {
    AmountOut {
        currency: currency.alpha,
        value: format_amount(currency, minor).value,
    }
}

fn date_of(time: UnixTime) -> String {
    time::OffsetDateTime::from_unix_timestamp(time.0)
        .map_or_else(|_| "1970-01-01".to_owned(), |t| iso_date(t.date()))
}

#[derive(Serialize)]
struct DocumentOut<'a> {
    #[serde(rename = "@xmlns")]
    xmlns: &'static str,
    #[serde(rename = "BkToCstmrStmt")]
    body: StatementMessageOut<'a>,
}

#[derive(Serialize)]
struct StatementMessageOut<'a> {
    #[serde(rename = "GrpHdr")]
    header: GroupHeaderOut<'a>,
    #[serde(rename = "Stmt")]
    statement: StatementOut<'a>,
}

#[derive(Serialize)]
struct GroupHeaderOut<'a> {
    #[serde(rename = "MsgId")]
    message_id: &'a str,
    #[serde(rename = "CreDtTm")]
    created: String,
}

#[derive(Serialize)]
struct StatementOut<'a> {
    #[serde(rename = "Id")]
    id: &'a str,
    #[serde(rename = "CreDtTm")]
    created: String,
    #[serde(rename = "FrToDt")]
    period: PeriodOut,
    #[serde(rename = "Acct")]
    account: AccountOut,
    #[serde(rename = "Bal")]
    balances: Vec<BalanceOut>,
    #[serde(rename = "Ntry")]
    entries: Vec<EntryOut<'a>>,
}

#[derive(Serialize)]
struct PeriodOut {
    #[serde(rename = "FrDtTm")]
    from: String,
    #[serde(rename = "ToDtTm")]
    to: String,
}

#[derive(Serialize)]
struct AccountOut {
    #[serde(rename = "Id")]
    id: AccountIdOut,
    #[serde(rename = "Ccy")]
    currency: &'static str,
}

#[derive(Serialize)]
struct BalanceOut {
    #[serde(rename = "Tp")]
    kind: BalanceTypeOut,
    #[serde(rename = "Amt")]
    amount: AmountOut,
    #[serde(rename = "CdtDbtInd")]
    indicator: &'static str,
    #[serde(rename = "Dt")]
    date: DateOut,
}

#[derive(Serialize)]
struct BalanceTypeOut {
    #[serde(rename = "CdOrPrtry")]
    code_or_proprietary: CodeOut,
}

#[derive(Serialize)]
struct CodeOut {
    #[serde(rename = "Cd")]
    code: &'static str,
}

#[derive(Serialize)]
struct DateOut {
    #[serde(rename = "Dt")]
    date: String,
}

#[derive(Serialize)]
struct DateTimeOut {
    #[serde(rename = "DtTm")]
    date_time: String,
}

#[derive(Serialize)]
struct AmountOut {
    #[serde(rename = "@Ccy")]
    currency: &'static str,
    #[serde(rename = "$text")]
    value: String,
}

#[derive(Serialize)]
struct EntryOut<'a> {
    #[serde(rename = "Amt")]
    amount: AmountOut,
    #[serde(rename = "CdtDbtInd")]
    indicator: &'static str,
    #[serde(rename = "Sts")]
    status: CodeOut,
    #[serde(rename = "BookgDt")]
    booking: DateTimeOut,
    #[serde(rename = "AcctSvcrRef")]
    reference: &'a str,
    #[serde(rename = "BkTxCd")]
    code: BankCodeOut<'a>,
    #[serde(rename = "NtryDtls", skip_serializing_if = "Option::is_none")]
    details: Option<DetailsOut<'a>>,
}

#[derive(Serialize)]
struct BankCodeOut<'a> {
    #[serde(rename = "Prtry")]
    proprietary: ProprietaryOut<'a>,
}

#[derive(Serialize)]
struct ProprietaryOut<'a> {
    #[serde(rename = "Cd")]
    code: &'a str,
    #[serde(rename = "Issr")]
    issuer: &'static str,
}

#[derive(Serialize)]
struct DetailsOut<'a> {
    #[serde(rename = "TxDtls")]
    transaction: TransactionOut<'a>,
}

#[derive(Serialize)]
struct TransactionOut<'a> {
    #[serde(rename = "Refs")]
    refs: RefsOut<'a>,
}

#[derive(Serialize)]
struct RefsOut<'a> {
    #[serde(rename = "EndToEndId", skip_serializing_if = "Option::is_none")]
    end_to_end_id: Option<&'a str>,
    #[serde(rename = "UETR", skip_serializing_if = "Option::is_none")]
    uetr: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iso20022::schema::{self, Outcome};
    use crate::money::currency;

    fn statement() -> Statement {
        let uetr = Uetr::parse("3f6c1d2a-8b4e-4f7a-9c15-2d8e6b0a4f11").unwrap();
        Statement {
            message_id: "KKH-STMT-1001-1796601600".into(),
            created: UnixTime(1_796_640_000),
            account: 1001,
            currency: currency("JPY").unwrap(),
            from: UnixTime(1_796_601_600),
            to: UnixTime(1_796_640_000),
            opening: 500_000,
            closing: 475_000,
            entries: vec![
                Entry {
                    amount_minor: 25_000,
                    credit: false,
                    booked: true,
                    booked_at: UnixTime(1_796_610_000),
                    reference: "0123456789abcdef0123456789abcdef".into(),
                    kind: "OUTBOUND".into(),
                    uetr: Some(uetr),
                    end_to_end_id: Some("INV-1".into()),
                },
                Entry {
                    amount_minor: 1_000,
                    credit: false,
                    booked: false,
                    booked_at: UnixTime(1_796_620_000),
                    reference: "fedcba9876543210fedcba9876543210".into(),
                    kind: "OUTBOUND".into(),
                    uetr: Some(Uetr::parse("3f6c1d2a-8b4e-1f7a-9c15-2d8e6b0a4f11").unwrap()),
                    end_to_end_id: None,
                },
            ],
        }
    }

    #[test]
    fn a_statement_is_valid_against_the_official_schema() {
        let xml = write(&statement()).unwrap();
        for needle in [
            "<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.08\">",
            "<Cd>OPBD</Cd>",
            "<Amt Ccy=\"JPY\">500000</Amt>",
            "<Cd>CLBD</Cd>",
            "<Amt Ccy=\"JPY\">475000</Amt>",
            "<Cd>BOOK</Cd>",
            "<Cd>INFO</Cd>",
            "<UETR>3f6c1d2a-8b4e-4f7a-9c15-2d8e6b0a4f11</UETR>",
            "<EndToEndId>INV-1</EndToEndId>",
        ] {
            assert!(xml.contains(needle), "{needle}\n{xml}");
        }
        // The pending entry's UETR is not version 4: not quoted, and no empty details.
        assert_eq!(xml.matches("<NtryDtls>").count(), 1, "{xml}");
        let outcome = schema::validate(&xml, "camt.053.001.08.xsd");
        assert!(matches!(outcome, Outcome::Valid | Outcome::Skipped));
    }

    #[test]
    fn a_debit_balance_and_an_empty_statement_are_valid() {
        let empty = Statement {
            opening: -1_500,
            closing: 0,
            entries: Vec::new(),
            ..statement()
        };
        let xml = write(&empty).unwrap();
        let opening = xml
            .find("<Amt Ccy=\"JPY\">1500</Amt>")
            .expect("the opening balance");
        let after = xml[opening..]
            .split_once('\n')
            .map(|(_, rest)| rest.trim_start());
        assert!(
            after.is_some_and(|rest| rest.starts_with("<CdtDbtInd>DBIT</CdtDbtInd>")),
            "{xml}"
        );
        assert!(!xml.contains("<Ntry>"), "{xml}");
        schema::validate(&xml, "camt.053.001.08.xsd");
    }
}
