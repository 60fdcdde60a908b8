//! pacs.008.001.08 messages as replay input: each transaction (`CdtTrfTxInf`) becomes a
//! [`Payment`], checked like a JSON line and against the agreement's parties, with its UETR
//! from the message (required there, so the same message sent twice pays once).

use kakehashi_protocol::iso20022::pacs008;
use kakehashi_protocol::money::format_amount;
use kakehashi_protocol::reason::ReasonCode;

use super::{LineError, Parties, Payment, set_references};

/// Where a payment read from a pacs.008 message came from, for the status reports that answer
/// it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pacs008Origin {
    /// 0-based index of the message among those read in the run.
    pub message: usize,
    /// The message's `GrpHdr/MsgId`.
    pub message_id: String,
    /// Its `GrpHdr/CreDtTm`.
    pub created: String,
    /// The transaction's `PmtId/InstrId`, as given (absent: the default was used).
    pub instruction_id: Option<String>,
    /// The transaction's `PmtId/TxId`.
    pub transaction_id: Option<String>,
}

/// Parses the pacs.008.001.08 message `bytes` (the `message`-th of the run, 0-based) into
/// payments numbered from `first_line` on. `today` is the UTC date (forward-dated transactions
/// are refused). Every refusal names the element's path.
pub fn parse_pacs008(
    bytes: &[u8],
    parties: &Parties,
    today: time::Date,
    message: usize,
    first_line: usize,
) -> Result<Vec<Payment>, Vec<LineError>> {
    let parsed = pacs008::parse(bytes, today).map_err(|refusals| {
        refusals
            .into_iter()
            .map(|r| LineError {
                line: 0,
                field: Some(r.path),
                code: r.code,
                detail: r.detail,
            })
            .collect::<Vec<_>>()
    })?;
    let mut payments = Vec::new();
    let mut errors = Vec::new();
    for (index, transaction) in parsed.transactions.into_iter().enumerate() {
        let path = format!("/Document/FIToFICstmrCdtTrf/CdtTrfTxInf[{}]", index + 1);
        let origin = Pacs008Origin {
            message,
            message_id: parsed.message_id.clone(),
            created: parsed.created.clone(),
            instruction_id: transaction.instruction_id.clone(),
            transaction_id: transaction.transaction_id.clone(),
        };
        match payment(&path, transaction, parties, first_line + index, origin) {
            Ok(payment) => payments.push(payment),
            Err(error) => errors.push(error),
        }
    }
    if errors.is_empty() {
        Ok(payments)
    } else {
        Err(errors)
    }
}

/// The payment of one checked transaction: its banks must be of two different parties and it
/// must debit in the sending party's currency; the target currency is the receiving party's.
fn payment(
    path: &str,
    t: pacs008::Transaction,
    parties: &Parties,
    line: usize,
    origin: Pacs008Origin,
) -> Result<Payment, LineError> {
    let refuse = |element: &str, detail: String| LineError {
        line: 0,
        field: Some(format!("{path}/{element}")),
        code: ReasonCode::Ff01,
        detail,
    };
    // ISO 9362: characters 5 and 6 of a BIC are the bank's country (checked letters).
    let sending = t.debtor_agent.get(4..6).unwrap_or_default().to_owned();
    let receiving = t.creditor_agent.get(4..6).unwrap_or_default().to_owned();
    let party_list = || parties.keys().cloned().collect::<Vec<_>>().join(", ");
    let Some(sending_currency) = parties.get(&sending).copied() else {
        return Err(refuse(
            "DbtrAgt/FinInstnId/BICFI",
            format!(
                "{} is a bank of {sending}, which is not a party to the agreement (parties: {})",
                t.debtor_agent,
                party_list()
            ),
        ));
    };
    let Some(target_currency) = parties.get(&receiving).copied() else {
        return Err(refuse(
            "CdtrAgt/FinInstnId/BICFI",
            format!(
                "{} is a bank of {receiving}, which is not a party to the agreement (parties: {})",
                t.creditor_agent,
                party_list()
            ),
        ));
    };
    if sending == receiving {
        return Err(refuse(
            "CdtrAgt/FinInstnId/BICFI",
            format!(
                "{} is a bank of {receiving}, like the debtor agent; the relay carries \
                 cross-border payments only",
                t.creditor_agent
            ),
        ));
    }
    if t.currency != sending_currency {
        return Err(refuse(
            "IntrBkSttlmAmt/@Ccy",
            format!(
                "{sending} debits in {sending_currency}, not {}; the settlement amount is what \
                 the debtor agent pays",
                t.currency
            ),
        ));
    }
    let mut payment = Payment {
        line,
        debtor_agent: t.debtor_agent,
        signer: None,
        sending,
        receiving,
        debtor_account: t.debtor_account,
        debtor_name: t.debtor_name,
        creditor_agent: t.creditor_agent,
        creditor_account: t.creditor_account,
        creditor_name: t.creditor_name,
        amount: format_amount(t.currency, t.amount_minor),
        amount_minor: t.amount_minor,
        target_currency,
        charge_bearer: t.charge_bearer,
        remittance_information: t.remittance_information,
        uetr: t.uetr,
        uetr_derived: false,
        derivation: None,
        end_to_end_id: String::new(),
        instruction_id: String::new(),
        expect: None,
        fault: None,
        pacs008: Some(origin),
    };
    set_references(&mut payment, Some(t.end_to_end_id), t.instruction_id);
    Ok(payment)
}

#[cfg(test)]
mod tests {
    use kakehashi_protocol::instruction::Uetr;
    use kakehashi_protocol::money;

    use super::*;

    fn uetr(text: &str) -> Uetr {
        Uetr::parse(text).unwrap()
    }

    fn parties() -> Parties {
        let mut p = Parties::new();
        p.insert("JP".into(), money::currency("JPY").unwrap());
        p.insert("SG".into(), money::currency("SGD").unwrap());
        p
    }

    fn sample(name: &str) -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/data/iso20022")
                .join(name),
        )
        .unwrap()
    }

    fn today() -> time::Date {
        time::macros::date!(2026 - 12 - 07)
    }

    #[test]
    fn the_samples_become_payments_with_their_own_uetrs() {
        let jp = parse_pacs008(&sample("pacs008-jp-to-sg.xml"), &parties(), today(), 0, 1).unwrap();
        assert_eq!(jp.len(), 2);
        let first = &jp[0];
        assert_eq!(first.line, 1);
        assert_eq!(
            (first.sending.as_str(), first.receiving.as_str()),
            ("JP", "SG")
        );
        assert_eq!(first.target_currency.alpha, "SGD");
        assert_eq!(first.uetr, uetr("3f6c1d2a-8b4e-4f7a-9c15-2d8e6b0a4f11"));
        assert!(!first.uetr_derived);
        assert_eq!(first.instruction_id, "KKHAJPJ0-0001");
        assert_eq!(first.end_to_end_id, "INV-2026-1207-01");
        assert_eq!(first.amount.value, "25000");
        let origin = first.pacs008.as_ref().unwrap();
        assert_eq!(origin.message_id, "KKHAJPJ0-20261207-0001");
        assert_eq!(jp[1].line, 2);
        assert_eq!(jp[1].debtor_agent, "KKHAJPJ0");
        let sg = parse_pacs008(&sample("pacs008-sg-to-jp.xml"), &parties(), today(), 1, 3).unwrap();
        assert_eq!(sg[0].line, 3);
        assert_eq!(sg[0].target_currency.alpha, "JPY");
        assert_eq!(
            sg[0].pacs008.as_ref().unwrap().transaction_id.as_deref(),
            Some("KKHBSGS0-TX-0001")
        );
    }

    #[test]
    fn parties_and_currencies_are_checked_by_path() {
        let text = String::from_utf8(sample("pacs008-sg-to-jp.xml")).unwrap();
        let errors = parse_pacs008(
            text.replace("<BICFI>KKHBJPJ0</BICFI>", "<BICFI>KKHBTHB0</BICFI>")
                .as_bytes(),
            &parties(),
            today(),
            0,
            1,
        )
        .unwrap_err();
        assert_eq!(
            errors[0].field.as_deref(),
            Some("/Document/FIToFICstmrCdtTrf/CdtTrfTxInf[1]/CdtrAgt/FinInstnId/BICFI")
        );
        assert!(errors[0].detail.contains("not a party"), "{}", errors[0]);
        let errors = parse_pacs008(
            text.replace("Ccy=\"SGD\"", "Ccy=\"JPY\"")
                .replace(">80.50<", ">80<")
                .as_bytes(),
            &parties(),
            today(),
            0,
            1,
        )
        .unwrap_err();
        assert!(
            errors[0].detail.contains("SG debits in SGD"),
            "{}",
            errors[0]
        );
        assert_eq!(
            errors[0].to_string().split(':').next(),
            Some("/Document/FIToFICstmrCdtTrf/CdtTrfTxInf[1]/IntrBkSttlmAmt/@Ccy")
        );
    }
}
