use kakehashi_proto::SIGNING_DOMAIN_INSTRUCTION;
use proptest::prelude::*;
use prost::Message as _;

use super::*;
use crate::instruction::{decode, to_timestamp};
use crate::iso20022::schema::{self, Outcome};
use crate::reason::ReasonCode;
use crate::signed::sign;
use crate::signed::test_support::{chain, key};

fn sample(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/iso20022")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn today() -> time::Date {
    time::macros::date!(2026 - 12 - 07)
}

const ONE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08">
  <FIToFICstmrCdtTrf>
    <GrpHdr>
      <MsgId>MSG-1</MsgId>
      <CreDtTm>2026-12-07T09:30:00</CreDtTm>
      <NbOfTxs>1</NbOfTxs>
      <SttlmInf><SttlmMtd>INDA</SttlmMtd></SttlmInf>
    </GrpHdr>
    <CdtTrfTxInf>
      <PmtId>
        <InstrId>INSTR-1</InstrId>
        <EndToEndId>E2E-1</EndToEndId>
        <UETR>3f6c1d2a-8b4e-4f7a-9c15-2d8e6b0a4f11</UETR>
      </PmtId>
      <IntrBkSttlmAmt Ccy="JPY">25000</IntrBkSttlmAmt>
      <IntrBkSttlmDt>2026-12-07</IntrBkSttlmDt>
      <ChrgBr>SHAR</ChrgBr>
      <Dbtr><Nm>Aoki Kenji</Nm></Dbtr>
      <DbtrAcct><Id><Othr><Id>1001</Id></Othr></Id></DbtrAcct>
      <DbtrAgt><FinInstnId><BICFI>KKHAJPJ0</BICFI></FinInstnId></DbtrAgt>
      <CdtrAgt><FinInstnId><BICFI>KKHASGS0</BICFI></FinInstnId></CdtrAgt>
      <Cdtr><Nm>Tan Wei Ming</Nm></Cdtr>
      <CdtrAcct><Id><Othr><Id>2001</Id></Othr></Id></CdtrAcct>
      <RmtInf><Ustrd>Invoice 1</Ustrd></RmtInf>
    </CdtTrfTxInf>
  </FIToFICstmrCdtTrf>
</Document>
"#;

/// `ONE` with `from` replaced by `to` (which must occur).
fn edited(from: &str, to: &str) -> String {
    assert!(ONE.contains(from), "{from:?} is not in the template");
    ONE.replacen(from, to, 1)
}

/// The one refusal of `xml`: its path and a detail containing `words`.
#[track_caller]
fn refused(xml: &str, path: &str, words: &str) {
    let refusals = parse(xml.as_bytes(), today()).expect_err("must be refused");
    let found = refusals
        .iter()
        .find(|r| r.path == path)
        .unwrap_or_else(|| panic!("no refusal at {path}: {refusals:#?}"));
    assert_eq!(found.code, ReasonCode::Ff01);
    assert!(
        found.detail.contains(words),
        "{path}: {:?} lacks {words:?}",
        found.detail
    );
}

const TX: &str = "/Document/FIToFICstmrCdtTrf/CdtTrfTxInf[1]";
const HDR: &str = "/Document/FIToFICstmrCdtTrf/GrpHdr";

#[test]
fn the_template_parses_into_the_instruction_fields() {
    let message = parse(ONE.as_bytes(), today()).unwrap();
    assert_eq!(message.message_id, "MSG-1");
    assert_eq!(message.created, "2026-12-07T09:30:00");
    let [t] = message.transactions.as_slice() else {
        panic!("one transaction")
    };
    assert_eq!(t.uetr.to_string(), "3f6c1d2a-8b4e-4f7a-9c15-2d8e6b0a4f11");
    assert_eq!(t.instruction_id.as_deref(), Some("INSTR-1"));
    assert_eq!(t.end_to_end_id, "E2E-1");
    assert_eq!((t.currency.alpha, t.amount_minor), ("JPY", 25_000));
    assert_eq!(t.settlement_date, today());
    assert_eq!(t.charge_bearer, ChargeBearer::Shar);
    assert_eq!(
        (t.debtor_agent.as_str(), t.debtor_account),
        ("KKHAJPJ0", 1001)
    );
    assert_eq!(
        (t.creditor_agent.as_str(), t.creditor_account),
        ("KKHASGS0", 2001)
    );
    assert_eq!(
        (t.debtor_name.as_str(), t.creditor_name.as_str()),
        ("Aoki Kenji", "Tan Wei Ming")
    );
    assert_eq!(t.remittance_information, "Invoice 1");
}

#[test]
fn the_committed_samples_parse() {
    let jp = parse(&sample("pacs008-jp-to-sg.xml"), today()).unwrap();
    assert_eq!(jp.message_id, "KKHAJPJ0-20261207-0001");
    assert_eq!(jp.transactions.len(), 2);
    // KKHAJPJ0XXX is the primary office of KKHAJPJ0: the same party.
    assert_eq!(jp.transactions[1].debtor_agent, "KKHAJPJ0");
    assert_eq!(jp.transactions[1].charge_bearer, ChargeBearer::Debt);
    assert_eq!(jp.transactions[1].remittance_information, "");
    let sg = parse(&sample("pacs008-sg-to-jp.xml"), today()).unwrap();
    let [t] = sg.transactions.as_slice() else {
        panic!("one transaction")
    };
    assert_eq!((t.currency.alpha, t.amount_minor), ("SGD", 8050));
    assert_eq!(t.transaction_id.as_deref(), Some("KKHBSGS0-TX-0001"));
    assert_eq!(t.settlement_date, today());
}

#[test]
fn what_is_written_is_valid_against_the_official_schema_and_reads_back() {
    for name in ["pacs008-jp-to-sg.xml", "pacs008-sg-to-jp.xml"] {
        let message = parse(&sample(name), today()).unwrap();
        let xml = write(&message).unwrap();
        let outcome = schema::validate(&xml, "pacs.008.001.08.xsd");
        assert!(matches!(outcome, Outcome::Valid | Outcome::Skipped));
        assert_eq!(parse(xml.as_bytes(), today()).unwrap(), message, "{xml}");
    }
    // The committed samples themselves are valid too (what .ci/run checks with xmllint).
    for name in ["pacs008-jp-to-sg.xml", "pacs008-sg-to-jp.xml"] {
        let text = String::from_utf8(sample(name)).unwrap();
        schema::validate(&text, "pacs.008.001.08.xsd");
    }
}

#[test]
fn elements_that_cannot_be_honoured_are_refused_by_path() {
    let intermediary =
        "<IntrmyAgt1><FinInstnId><BICFI>KKHXJPJ0</BICFI></FinInstnId></IntrmyAgt1>\n      <Dbtr>";
    refused(
        &edited("<Dbtr>", intermediary),
        &format!("{TX}/IntrmyAgt1"),
        "no intermediary agent",
    );
    refused(
        &edited("<ChrgBr>", "<XchgRate>0.0087</XchgRate>\n      <ChrgBr>"),
        &format!("{TX}/XchgRate"),
        "signed quote",
    );
    refused(
        &edited(
            "<RmtInf><Ustrd>Invoice 1</Ustrd></RmtInf>",
            "<InstrForCdtrAgt><Cd>PHOB</Cd></InstrForCdtrAgt><RmtInf><Ustrd>Invoice 1</Ustrd></RmtInf>",
        ),
        &format!("{TX}/InstrForCdtrAgt"),
        "creditor agent",
    );
    refused(
        &edited(
            "<Id><Othr><Id>2001</Id></Othr></Id>",
            "<Id><IBAN>GB29NWBK60161331926819</IBAN></Id>",
        ),
        &format!("{TX}/CdtrAcct/Id/IBAN"),
        "no IBAN",
    );
    refused(
        &edited(
            "<Ustrd>Invoice 1</Ustrd>",
            "<Strd><AddtlRmtInf>x</AddtlRmtInf></Strd>",
        ),
        &format!("{TX}/RmtInf/Strd"),
        "structured remittance",
    );
    refused(
        &edited(
            "<Ustrd>Invoice 1</Ustrd>",
            "<Ustrd>a</Ustrd><Ustrd>b</Ustrd>",
        ),
        &format!("{TX}/RmtInf/Ustrd[2]"),
        "one line",
    );
    refused(
        &edited("<SttlmMtd>INDA</SttlmMtd>", "<SttlmMtd>COVE</SttlmMtd>"),
        &format!("{HDR}/SttlmInf/SttlmMtd"),
        "cover",
    );
}

#[test]
fn header_totals_must_match_the_transactions() {
    refused(
        &edited("<NbOfTxs>1</NbOfTxs>", "<NbOfTxs>2</NbOfTxs>"),
        &format!("{HDR}/NbOfTxs"),
        "the message holds 1",
    );
    refused(
        &edited(
            "<NbOfTxs>1</NbOfTxs>",
            "<NbOfTxs>1</NbOfTxs><CtrlSum>25000.01</CtrlSum>",
        ),
        &format!("{HDR}/CtrlSum"),
        "not the sum",
    );
    refused(
        &edited(
            "<NbOfTxs>1</NbOfTxs>",
            "<NbOfTxs>1</NbOfTxs><TtlIntrBkSttlmAmt Ccy=\"JPY\">2500</TtlIntrBkSttlmAmt>",
        ),
        &format!("{HDR}/TtlIntrBkSttlmAmt"),
        "not the sum",
    );
    refused(
        &edited(
            "<NbOfTxs>1</NbOfTxs>",
            "<NbOfTxs>1</NbOfTxs><TtlIntrBkSttlmAmt Ccy=\"SGD\">25000</TtlIntrBkSttlmAmt>",
        ),
        &format!("{HDR}/TtlIntrBkSttlmAmt"),
        "all in SGD",
    );
    // Matching totals pass.
    let good = edited(
        "<NbOfTxs>1</NbOfTxs>",
        "<NbOfTxs>1</NbOfTxs><CtrlSum>25000.00</CtrlSum><TtlIntrBkSttlmAmt Ccy=\"JPY\">25000</TtlIntrBkSttlmAmt>",
    );
    parse(good.as_bytes(), today()).unwrap();
}

#[test]
fn texts_outside_the_cbpr_set_or_too_long_are_refused() {
    refused(
        &edited("<Nm>Aoki Kenji</Nm>", "<Nm>青木 健二</Nm>"),
        &format!("{TX}/Dbtr/Nm"),
        "outside the CBPR+ character set",
    );
    refused(
        &edited(
            "<Nm>Tan Wei Ming</Nm>",
            &format!("<Nm>{}</Nm>", "n".repeat(141)),
        ),
        &format!("{TX}/Cdtr/Nm"),
        "141 characters",
    );
    refused(
        &edited(
            "<EndToEndId>E2E-1</EndToEndId>",
            "<EndToEndId>E2E_1</EndToEndId>",
        ),
        &format!("{TX}/PmtId/EndToEndId"),
        "'_'",
    );
    refused(
        &edited(
            "<MsgId>MSG-1</MsgId>",
            &format!("<MsgId>{}</MsgId>", "M".repeat(36)),
        ),
        &format!("{HDR}/MsgId"),
        "36 characters",
    );
    refused(
        &edited(
            "<Ustrd>Invoice 1</Ustrd>",
            &format!("<Ustrd>{}</Ustrd>", "u".repeat(141)),
        ),
        &format!("{TX}/RmtInf/Ustrd"),
        "141 characters",
    );
}

#[test]
fn every_instruction_field_is_checked_with_its_path() {
    refused(
        &edited("<UETR>3f6c1d2a-8b4e-4f7a-9c15-2d8e6b0a4f11</UETR>", ""),
        &format!("{TX}/PmtId/UETR"),
        "pay once",
    );
    refused(
        &edited(
            "3f6c1d2a-8b4e-4f7a-9c15-2d8e6b0a4f11",
            "00000000-0000-0000-0000-000000000000",
        ),
        &format!("{TX}/PmtId/UETR"),
        "nil UUID",
    );
    refused(
        &edited(
            "3f6c1d2a-8b4e-4f7a-9c15-2d8e6b0a4f11",
            "3f6c1d2a-8b4e-1f7a-9c15-2d8e6b0a4f11",
        ),
        &format!("{TX}/PmtId/UETR"),
        "version 1 UUID",
    );
    refused(
        &edited("Ccy=\"JPY\">25000<", "Ccy=\"JPY\">25000.5<"),
        &format!("{TX}/IntrBkSttlmAmt"),
        "fraction",
    );
    refused(
        &edited("Ccy=\"JPY\">25000<", "Ccy=\"JPY\">0<"),
        &format!("{TX}/IntrBkSttlmAmt"),
        "zero",
    );
    refused(
        &edited("Ccy=\"JPY\"", "Ccy=\"XXX\""),
        &format!("{TX}/IntrBkSttlmAmt"),
        "unknown currency",
    );
    refused(
        &edited(
            "<IntrBkSttlmDt>2026-12-07</IntrBkSttlmDt>",
            "<IntrBkSttlmDt>2026-12-09</IntrBkSttlmDt>",
        ),
        &format!("{TX}/IntrBkSttlmDt"),
        "forward date",
    );
    refused(
        &edited("<IntrBkSttlmDt>2026-12-07</IntrBkSttlmDt>", ""),
        &format!("{TX}/IntrBkSttlmDt"),
        "missing",
    );
    refused(
        &edited("<ChrgBr>SHAR</ChrgBr>", "<ChrgBr>shar</ChrgBr>"),
        &format!("{TX}/ChrgBr"),
        "not one of",
    );
    refused(
        &edited("<Id>1001</Id>", "<Id>01001</Id>"),
        &format!("{TX}/DbtrAcct/Id/Othr/Id"),
        "leading zero",
    );
    refused(
        &edited(
            "<DbtrAcct><Id><Othr><Id>1001</Id></Othr></Id></DbtrAcct>",
            "",
        ),
        &format!("{TX}/DbtrAcct"),
        "missing",
    );
    refused(
        &edited("<BICFI>KKHASGS0</BICFI>", "<BICFI>KKHASGS0TYO</BICFI>"),
        &format!("{TX}/CdtrAgt/FinInstnId/BICFI"),
        "branch TYO",
    );
    refused(
        &edited("<BICFI>KKHAJPJ0</BICFI>", "<BICFI>KKHAJPJ</BICFI>"),
        &format!("{TX}/DbtrAgt/FinInstnId/BICFI"),
        "7 bytes",
    );
    refused(
        &edited(
            "<Dbtr><Nm>Aoki Kenji</Nm></Dbtr>",
            "<Dbtr><PstlAdr><Ctry>JP</Ctry></PstlAdr></Dbtr>",
        ),
        &format!("{TX}/Dbtr/Nm"),
        "missing",
    );
    refused(
        &edited(
            "<ChrgBr>",
            "<InstdAmt Ccy=\"SGD\">220.00</InstdAmt><ChrgBr>",
        ),
        &format!("{TX}/InstdAmt"),
        "own quote",
    );
    refused(
        &edited(
            "<Dbtr>",
            "<InstgAgt><FinInstnId><BICFI>KKHBJPJ0</BICFI></FinInstnId></InstgAgt><Dbtr>",
        ),
        &format!("{TX}/InstgAgt"),
        "not the debtor agent",
    );
    refused(
        &edited(
            "<CreDtTm>2026-12-07T09:30:00</CreDtTm>",
            "<CreDtTm>yesterday</CreDtTm>",
        ),
        &format!("{HDR}/CreDtTm"),
        "not a date and time",
    );
    refused(
        &edited("<MsgId>MSG-1</MsgId>", ""),
        &format!("{HDR}/MsgId"),
        "missing",
    );
}

#[test]
fn the_root_must_be_a_pacs008_document() {
    refused(
        &ONE.replace("pacs.008.001.08", "pacs.008.001.09"),
        "/Document",
        "pacs.008.001.08 message",
    );
    refused(
        "<AppHdr xmlns=\"urn:iso:std:iso:20022:tech:xsd:head.001.001.02\"/>",
        "/AppHdr",
        "head.001",
    );
    refused("not xml at all", "/", "no XML element");
    refused("<Document", "/", "not well-formed");
    let refusals = parse(b"\xff\xfe<Document/>", today()).unwrap_err();
    assert!(refusals[0].detail.contains("not UTF-8"), "{refusals:?}");
    // A prefixed root in the right namespace is the same message.
    let prefixed = ONE
        .replace("<Document xmlns=", "<p:Document xmlns:p=")
        .replace("</Document>", "</p:Document>");
    parse(prefixed.as_bytes(), today()).unwrap();
}

#[test]
fn informational_elements_are_ignored() {
    let xml = edited(
        "<Dbtr><Nm>Aoki Kenji</Nm></Dbtr>",
        "<UltmtDbtr><Nm>Parent KK</Nm></UltmtDbtr><Dbtr><Nm>Aoki Kenji</Nm><PstlAdr><Ctry>JP</Ctry></PstlAdr></Dbtr>",
    )
    .replace(
        "<RmtInf>",
        "<Purp><Cd>SUPP</Cd></Purp><RgltryRptg><DbtCdtRptgInd>BOTH</DbtCdtRptgInd></RgltryRptg><RgltryRptg/><RmtInf>",
    );
    let message = parse(xml.as_bytes(), today()).unwrap();
    assert_eq!(message, parse(ONE.as_bytes(), today()).unwrap());
}

#[test]
fn deep_nesting_inside_an_ignored_element_is_skipped_without_recursion() {
    // An ignored element is skipped whatever it holds; a deeply nested one must not exhaust
    // the stack (the whole message stays within MESSAGE_BYTES_MAX).
    let depth = 200_000;
    let nested = format!("{}{}", "<x>".repeat(depth), "</x>".repeat(depth));
    let xml = edited("<Dbtr>", &format!("<Purp>{nested}</Purp><Dbtr>"));
    parse(xml.as_bytes(), today()).expect("the ignored Purp is skipped");
    // Deep nesting where an element is not allowed is refused, not recursed into.
    let xml = edited("<Dbtr>", &format!("<Unknown>{nested}</Unknown><Dbtr>"));
    refused(&xml, &format!("{TX}/Unknown"), "refused");
}

#[test]
fn many_transactions_report_every_bad_one() {
    let tx_start = ONE.find("<CdtTrfTxInf>").unwrap();
    let tx_end = ONE.find("</CdtTrfTxInf>").unwrap() + "</CdtTrfTxInf>".len();
    let tx = &ONE[tx_start..tx_end];
    let bad = tx.replace("<ChrgBr>SHAR</ChrgBr>", "<ChrgBr>XXXX</ChrgBr>");
    let xml = format!("{}{tx}\n{bad}\n{bad}{}", &ONE[..tx_start], &ONE[tx_end..])
        .replace("<NbOfTxs>1</NbOfTxs>", "<NbOfTxs>3</NbOfTxs>");
    let refusals = parse(xml.as_bytes(), today()).unwrap_err();
    let paths: Vec<&str> = refusals.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/Document/FIToFICstmrCdtTrf/CdtTrfTxInf[2]/ChrgBr",
            "/Document/FIToFICstmrCdtTrf/CdtTrfTxInf[3]/ChrgBr"
        ]
    );
}

/// A strategy for CBPR+ identifiers: x-set characters, no leading, trailing or double `/`.
fn identifier() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9?:().,'+ -]{0,33}[A-Za-z0-9]"
}

/// Names and remittance lines of the extended set (no leading or trailing space: XML readers
/// trim them).
fn extended_text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!(
        "[A-Za-z0-9]([A-Za-z0-9/?:().,'+ !#$%&*=^_`{{|}}~\";<>@\\[\\]\\\\-]{{0,{}}}[A-Za-z0-9])?",
        max - 2
    ))
    .expect("regex")
}

prop_compose! {
    fn instruction_fields()(
        uetr in any::<[u8; 16]>(),
        end_to_end_id in identifier(),
        instruction_id in identifier(),
        (currency, value) in prop_oneof![
            (Just("JPY"), (1u64..=99_999_999_999).prop_map(|v| v.to_string())),
            (Just("SGD"), (1u64..=99_999_999_999).prop_map(|v| format!("{}.{:02}", v / 100, v % 100))),
        ],
        charge_bearer in prop::sample::select(ChargeBearer::ALL.to_vec()),
        debtor_name in extended_text(140),
        creditor_name in extended_text(140),
        remittance in prop_oneof![Just(String::new()), extended_text(140)],
        debtor_account in 1u128..,
        creditor_account in 1u128..,
        second_bank in prop::bool::ANY,
    ) -> pb::CreditTransferInstruction {
        let mut bytes = uetr;
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        pb::CreditTransferInstruction {
            uetr: Uetr(bytes).to_string(),
            end_to_end_id,
            instruction_id,
            creation_date_time: Some(to_timestamp(kakehashi_pki::UnixTime(1_796_600_000))),
            expiry_date_time: Some(to_timestamp(kakehashi_pki::UnixTime(1_796_600_300))),
            interbank_settlement_amount: Some(pb::ActiveCurrencyAndAmount {
                currency: currency.to_owned(),
                value,
            }),
            charge_bearer: charge_bearer.as_str().to_owned(),
            debtor_agent_bic: "KKHAJPJ0".to_owned(),
            debtor_account: debtor_account.to_string(),
            debtor_name,
            creditor_agent_bic: if second_bank { "KKHBSGS0".to_owned() } else { "KKHASGS0".to_owned() },
            creditor_account: creditor_account.to_string(),
            creditor_name,
            remittance_information: remittance,
            quote: Some(pb::Signed::default()),
        }
    }
}

proptest! {
    /// instruction → pacs.008 → instruction is the identity for every field the mapping covers.
    #[test]
    fn instruction_to_pacs008_and_back_is_the_identity(raw in instruction_fields()) {
        let signed = sign(
            SIGNING_DOMAIN_INSTRUCTION,
            raw.encode_to_vec(),
            &key("jp/banks/KKHAJPJ0.key.pem"),
            &chain("jp/banks/KKHAJPJ0.pem"),
        );
        let decoded = decode(&signed).expect("a valid instruction");
        let message = Message {
            message_id: "MSG-PROP".to_owned(),
            created: "2026-12-07T00:00:00Z".to_owned(),
            transactions: vec![Transaction::of_instruction(&decoded, today())],
        };
        let xml = write(&message).expect("writes");
        let back = parse(xml.as_bytes(), today()).expect("reads back");
        prop_assert_eq!(&back, &message);
        let t = &back.transactions[0];
        prop_assert_eq!(t.uetr, decoded.uetr);
        prop_assert_eq!(&t.end_to_end_id, &decoded.end_to_end_id);
        prop_assert_eq!(t.instruction_id.as_ref(), Some(&decoded.instruction_id));
        prop_assert_eq!((t.currency, t.amount_minor), (decoded.currency, decoded.amount_minor));
        prop_assert_eq!(t.charge_bearer, decoded.charge_bearer);
        prop_assert_eq!(&t.debtor_agent, &decoded.debtor_agent_bic);
        prop_assert_eq!(t.debtor_account, decoded.debtor_account);
        prop_assert_eq!(&t.debtor_name, &decoded.debtor_name);
        prop_assert_eq!(&t.creditor_agent, &decoded.creditor_agent_bic);
        prop_assert_eq!(t.creditor_account, decoded.creditor_account);
        prop_assert_eq!(&t.creditor_name, &decoded.creditor_name);
        prop_assert_eq!(&t.remittance_information, &decoded.remittance_information);
        prop_assert_eq!(t.amount(), raw.interbank_settlement_amount.clone().expect("set"));
    }

    #[test]
    fn parse_never_panics(text in ".{0,400}") {
        let _ = parse(text.as_bytes(), today());
    }

    #[test]
    fn parse_never_panics_on_edited_messages(at in 0usize..1400, cut in 0usize..40, insert in "[<>/a-zA-Z\"= ]{0,12}") {
        let mut text = ONE.to_owned();
        let at = text.char_indices().map(|(i, _)| i).find(|i| *i >= at.min(text.len())).unwrap_or(text.len());
        let end = text.char_indices().map(|(i, _)| i).find(|i| *i >= at + cut).unwrap_or(text.len());
        text.replace_range(at..end, &insert);
        let _ = parse(text.as_bytes(), today());
    }
}
