//! Receipts: what the receiving node signs, with its receipt-signing key, once the creditor's
//! credit is durable; and the receipt file a participant keeps and anyone can verify offline
//! under the agreement.
//!
//! # The receipt file (`kakehashi-receipt-v1`)
//!
//! A JSON object with exactly three members:
//!
//! ```json
//! {
//!   "format": "kakehashi-receipt-v1",
//!   "signed": {
//!     "payload": "<base64: the encoded kakehashi.v1.Receipt, exactly as signed>",
//!     "signature": "<base64: 64-byte Ed25519 signature over kakehashi-receipt-v1\n || payload>",
//!     "signer_chain": ["<base64: DER certificate, leaf first>", "..."]
//!   },
//!   "receipt": {
//!     "uetr": "eb6305c9-1f7f-49de-aed0-16487c27b42d",
//!     "end_to_end_id": "E2E-0001",
//!     "instruction_sha256": "<64 lower-case hex digits>",
//!     "receiving_jurisdiction": "SG",
//!     "sending_jurisdiction": "JP",
//!     "debtor_agent_bic": "KKHAJPJ0",
//!     "creditor_agent_bic": "KKHASGS0",
//!     "creditor_account": "2001",
//!     "credited_amount": { "currency": "SGD", "value": "86.78" },
//!     "ledger_transfer_id": "12345",
//!     "settled_at": "2027-01-01T00:00:05Z",
//!     "transaction_status": "ACSC"
//!   }
//! }
//! ```
//!
//! Base64 is the standard alphabet with padding (RFC 4648 §4). `signed` is the evidence;
//! `receipt` is a readable copy of the signed payload's fields (times in RFC 3339 UTC, whole
//! seconds). Reading a file refuses an unknown `format`, unknown members, and a readable copy
//! that differs from the signed payload, so what a person reads is what was signed. Reading does
//! not verify the signature: [`verify_receipt`] does.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::SigningKey;
use kakehashi_pki::{Purpose, UnixTime};
use kakehashi_proto::{SIGNING_DOMAIN_RECEIPT, pb};
use prost::Message as _;
use serde::{Deserialize, Serialize};

use crate::instruction::{ID_CHARS_MAX, Instruction, Uetr, account, bic, to_timestamp, unix_time};
use crate::money::{Currency, excerpt, format_amount, parse_amount};
use crate::quote::jurisdiction_code;
use crate::reason::Rejection;
use crate::signed::{self, Signer, Trust};

/// The `transaction_status` of every receipt: AcceptedSettlementCompleted (pacs.002).
pub const TRANSACTION_STATUS_ACSC: &str = "ACSC";

/// The `format` tag of a receipt file; a new layout gets a new tag.
pub const RECEIPT_FILE_FORMAT: &str = "kakehashi-receipt-v1";

/// Largest receipt file read: a 64 KiB payload and 8 certificates of 16 KiB in base64 (4/3)
/// come to about 260 KiB; 512 KiB leaves room for the readable copy and formatting.
pub const RECEIPT_FILE_LEN_MAX: usize = 512 * 1024;

/// SHA-256 digests are 32 bytes.
const SHA256_LEN: usize = 32;

/// The receipt for `instr`, credited on `receiving`'s ledger as `credited` by ledger transfer
/// `ledger_transfer_id` at `settled_at`. Sign it with [`sign_receipt`].
pub fn build_receipt(
    instr: &Instruction,
    receiving: &str,
    sending: &str,
    credited: (&'static Currency, u128),
    ledger_transfer_id: u128,
    settled_at: UnixTime,
) -> pb::Receipt {
    pb::Receipt {
        uetr: instr.uetr.to_string(),
        end_to_end_id: instr.end_to_end_id.clone(),
        instruction_sha256: instr.payload_sha256.to_vec(),
        receiving_jurisdiction: receiving.to_owned(),
        sending_jurisdiction: sending.to_owned(),
        debtor_agent_bic: instr.debtor_agent_bic.clone(),
        creditor_agent_bic: instr.creditor_agent_bic.clone(),
        creditor_account: instr.creditor_account.to_string(),
        credited_amount: Some(format_amount(credited.0, credited.1)),
        ledger_transfer_id: ledger_transfer_id.to_string(),
        settled_at: Some(to_timestamp(settled_at)),
        transaction_status: TRANSACTION_STATUS_ACSC.to_owned(),
    }
}

/// Signs `receipt` with the node's receipt-signing `key` and its `chain` (DER, leaf first).
pub fn sign_receipt(receipt: &pb::Receipt, key: &SigningKey, chain: &[Vec<u8>]) -> pb::Signed {
    signed::sign(SIGNING_DOMAIN_RECEIPT, receipt.encode_to_vec(), key, chain)
}

/// Verifies a signed receipt for `relying` at `time`: the signature and chain (receipt-signing
/// purpose) and the signer's jurisdiction equal to `receiving_jurisdiction` → DS0B; every field
/// well-formed and the status ACSC → FF01.
pub fn verify_receipt<'a>(
    signed: &pb::Signed,
    mra: impl Into<Trust<'a>>,
    relying: &str,
    time: UnixTime,
) -> Result<(pb::Receipt, Signer), Rejection> {
    let signer = signed::verify(
        signed,
        SIGNING_DOMAIN_RECEIPT,
        mra,
        relying,
        Purpose::ReceiptSigning,
        time,
        &[],
    )?;
    let receipt = decode_receipt(&signed.payload)?;
    if receipt.receiving_jurisdiction != signer.jurisdiction() {
        return Err(Rejection::signature(format!(
            "receipt says receiving_jurisdiction {} but its signer {} is certified under {}'s \
             anchor",
            excerpt(&receipt.receiving_jurisdiction),
            signer.subject_cn(),
            signer.jurisdiction()
        )));
    }
    check_receipt(&receipt)?;
    Ok((receipt, signer))
}

/// Every field of a decoded receipt, FF01 naming the first bad one.
fn check_receipt(receipt: &pb::Receipt) -> Result<(), Rejection> {
    Uetr::parse(&receipt.uetr)
        .map_err(|r| Rejection::format(format!("receipt uetr: {}", r.detail)))?;
    let e2e = receipt.end_to_end_id.chars().count();
    if e2e == 0 || e2e > ID_CHARS_MAX || receipt.end_to_end_id.chars().any(char::is_control) {
        return Err(Rejection::format(format!(
            "receipt end_to_end_id must be 1 to {ID_CHARS_MAX} printable characters"
        )));
    }
    if receipt.instruction_sha256.len() != SHA256_LEN {
        return Err(Rejection::format(format!(
            "receipt instruction_sha256 is {} bytes; a SHA-256 is {SHA256_LEN}",
            receipt.instruction_sha256.len()
        )));
    }
    jurisdiction_code(
        "receipt receiving_jurisdiction",
        &receipt.receiving_jurisdiction,
    )?;
    jurisdiction_code(
        "receipt sending_jurisdiction",
        &receipt.sending_jurisdiction,
    )?;
    bic("receipt debtor_agent_bic", receipt.debtor_agent_bic.clone())?;
    bic(
        "receipt creditor_agent_bic",
        receipt.creditor_agent_bic.clone(),
    )?;
    account("receipt creditor_account", &receipt.creditor_account)?;
    let credited = receipt
        .credited_amount
        .as_ref()
        .ok_or_else(|| Rejection::format("receipt credited_amount is missing"))?;
    let (_, minor) = parse_amount(credited)
        .map_err(|r| Rejection::format(format!("receipt credited_amount: {}", r.detail)))?;
    if minor == 0 {
        return Err(Rejection::format("receipt credited_amount is zero"));
    }
    account("receipt ledger_transfer_id", &receipt.ledger_transfer_id)?;
    unix_time("receipt settled_at", receipt.settled_at.as_ref())?;
    if receipt.transaction_status != TRANSACTION_STATUS_ACSC {
        return Err(Rejection::format(format!(
            "receipt transaction_status is {}; a receipt is only issued for ACSC",
            excerpt(&receipt.transaction_status)
        )));
    }
    Ok(())
}

/// Decodes a receipt payload (no checks beyond protobuf's).
fn decode_receipt(payload: &[u8]) -> Result<pb::Receipt, Rejection> {
    pb::Receipt::decode(payload)
        .map_err(|e| Rejection::format(format!("payload is not a Receipt: {e}")))
}

/// A receipt as a participant keeps it: the signed evidence and its decoded fields. See the
/// module documentation for the JSON form.
#[derive(Clone, Debug, PartialEq)]
pub struct ReceiptFile {
    /// The signed receipt, byte for byte.
    pub signed: pb::Signed,
    /// The fields decoded from `signed.payload` (not verified until [`verify_receipt`]).
    pub receipt: pb::Receipt,
}

impl ReceiptFile {
    /// Wraps a signed receipt, decoding its payload; FF01 when it is not a Receipt.
    pub fn new(signed: pb::Signed) -> Result<Self, Rejection> {
        let receipt = decode_receipt(&signed.payload)?;
        Ok(Self { signed, receipt })
    }

    /// The JSON text of the file (pretty-printed, members in the documented order).
    pub fn to_json(&self) -> String {
        let file = FileJson {
            format: RECEIPT_FILE_FORMAT.to_owned(),
            signed: SignedJson {
                payload: BASE64.encode(&self.signed.payload),
                signature: BASE64.encode(&self.signed.signature),
                signer_chain: self
                    .signed
                    .signer_chain
                    .iter()
                    .map(|der| BASE64.encode(der))
                    .collect(),
            },
            receipt: ReceiptJson::from(&self.receipt),
        };
        // Invariant: every member is a string, a list of strings or a struct of strings, which
        // serde_json always serializes (it fails only on non-string map keys or custom
        // Serialize errors, neither of which exists here).
        let mut text =
            serde_json::to_string_pretty(&file).expect("string-only JSON always serializes");
        text.push('\n');
        text
    }

    /// Reads the JSON text of a receipt file. FF01 when it is too large, not JSON of the
    /// documented shape, of another `format`, has bad base64, or when its readable `receipt`
    /// differs from the signed payload. Does not verify the signature.
    pub fn from_json(text: &str) -> Result<Self, Rejection> {
        if text.len() > RECEIPT_FILE_LEN_MAX {
            return Err(Rejection::format(format!(
                "receipt file is {} bytes; at most {RECEIPT_FILE_LEN_MAX} are allowed",
                text.len()
            )));
        }
        let tag: FormatOnly = serde_json::from_str(text).map_err(|e| {
            Rejection::format(format!(
                "receipt file is not a JSON object with a string \"format\" member: {e}"
            ))
        })?;
        if tag.format != RECEIPT_FILE_FORMAT {
            return Err(Rejection::format(format!(
                "receipt file format is {}; this version reads {RECEIPT_FILE_FORMAT}",
                excerpt(&tag.format)
            )));
        }
        let file: FileJson = serde_json::from_str(text).map_err(|e| {
            Rejection::format(format!(
                "receipt file does not have the {RECEIPT_FILE_FORMAT} shape: {e}"
            ))
        })?;
        let decode = |field: &str, value: &str| {
            BASE64.decode(value).map_err(|e| {
                Rejection::format(format!("receipt file {field} is not standard base64: {e}"))
            })
        };
        if file.signed.signer_chain.len() > signed::CHAIN_LEN_MAX {
            return Err(Rejection::format(format!(
                "receipt file signed.signer_chain has {} certificates; at most {} are allowed",
                file.signed.signer_chain.len(),
                signed::CHAIN_LEN_MAX
            )));
        }
        let mut signer_chain = Vec::with_capacity(file.signed.signer_chain.len());
        for (index, der) in file.signed.signer_chain.iter().enumerate() {
            signer_chain.push(decode(&format!("signed.signer_chain[{index}]"), der)?);
        }
        let signed = pb::Signed {
            payload: decode("signed.payload", &file.signed.payload)?,
            signature: decode("signed.signature", &file.signed.signature)?,
            signer_chain,
        };
        let parsed = Self::new(signed)?;
        if ReceiptJson::from(&parsed.receipt) != file.receipt {
            return Err(Rejection::format(
                "receipt file's readable \"receipt\" differs from the signed payload; the file \
                 was edited (the signed payload is the receipt)",
            ));
        }
        Ok(parsed)
    }
}

/// Just the tag, read first so an unknown format is named as such rather than as a shape error.
#[derive(Deserialize)]
struct FormatOnly {
    format: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileJson {
    format: String,
    signed: SignedJson,
    receipt: ReceiptJson,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignedJson {
    payload: String,
    signature: String,
    signer_chain: Vec<String>,
}

#[derive(Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct ReceiptJson {
    uetr: String,
    end_to_end_id: String,
    instruction_sha256: String,
    receiving_jurisdiction: String,
    sending_jurisdiction: String,
    debtor_agent_bic: String,
    creditor_agent_bic: String,
    creditor_account: String,
    credited_amount: Option<AmountJson>,
    ledger_transfer_id: String,
    settled_at: Option<String>,
    transaction_status: String,
}

#[derive(Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct AmountJson {
    currency: String,
    value: String,
}

impl From<&pb::Receipt> for ReceiptJson {
    fn from(r: &pb::Receipt) -> Self {
        Self {
            uetr: r.uetr.clone(),
            end_to_end_id: r.end_to_end_id.clone(),
            instruction_sha256: hex::encode(&r.instruction_sha256),
            receiving_jurisdiction: r.receiving_jurisdiction.clone(),
            sending_jurisdiction: r.sending_jurisdiction.clone(),
            debtor_agent_bic: r.debtor_agent_bic.clone(),
            creditor_agent_bic: r.creditor_agent_bic.clone(),
            creditor_account: r.creditor_account.clone(),
            credited_amount: r.credited_amount.as_ref().map(|a| AmountJson {
                currency: a.currency.clone(),
                value: a.value.clone(),
            }),
            ledger_transfer_id: r.ledger_transfer_id.clone(),
            settled_at: r.settled_at.as_ref().map(|t| {
                if t.nanos == 0 {
                    UnixTime(t.seconds).to_rfc3339()
                } else {
                    format!("{} (+{} ns)", UnixTime(t.seconds).to_rfc3339(), t.nanos)
                }
            }),
            transaction_status: r.transaction_status.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instruction::ChargeBearer;
    use crate::money::currency;
    use crate::reason::ReasonCode;
    use crate::signed::test_support::{at_2027, chain, key, mra};

    fn instruction() -> Instruction {
        Instruction {
            uetr: Uetr::parse("eb6305c9-1f7f-49de-aed0-16487c27b42d").expect("uetr"),
            end_to_end_id: "E2E-0001".to_owned(),
            instruction_id: "INSTR-0001".to_owned(),
            created: at_2027(),
            expiry: UnixTime(at_2027().0 + 300),
            amount_minor: 10_000,
            currency: currency("JPY").expect("JPY"),
            charge_bearer: ChargeBearer::Shar,
            debtor_agent_bic: "KKHAJPJ0".to_owned(),
            debtor_account: 1001,
            debtor_name: "Yamada Taro".to_owned(),
            creditor_agent_bic: "KKHASGS0".to_owned(),
            creditor_account: 2001,
            creditor_name: "Tan Wei Ling".to_owned(),
            remittance_information: String::new(),
            quote: pb::Signed::default(),
            payload_sha256: [7; 32],
        }
    }

    fn receipt() -> pb::Receipt {
        let sgd = currency("SGD").expect("SGD");
        build_receipt(
            &instruction(),
            "SG",
            "JP",
            (sgd, 8678),
            12_345,
            UnixTime(at_2027().0 + 5),
        )
    }

    fn sg_signed(receipt: &pb::Receipt) -> pb::Signed {
        sign_receipt(
            receipt,
            &key("sg/node/receipt.key.pem"),
            &chain("sg/node/receipt.pem"),
        )
    }

    #[track_caller]
    fn rejected<T: std::fmt::Debug>(result: Result<T, Rejection>, code: ReasonCode, needle: &str) {
        let r = result.expect_err("must be rejected");
        assert_eq!(r.code, code, "{}", r.detail);
        assert!(r.detail.contains(needle), "{:?} lacks {needle:?}", r.detail);
    }

    #[test]
    fn build_receipt_copies_the_instruction_and_settlement() {
        let r = receipt();
        assert_eq!(r.uetr, "eb6305c9-1f7f-49de-aed0-16487c27b42d");
        assert_eq!(r.end_to_end_id, "E2E-0001");
        assert_eq!(r.instruction_sha256, vec![7; 32]);
        assert_eq!(
            (
                r.receiving_jurisdiction.as_str(),
                r.sending_jurisdiction.as_str()
            ),
            ("SG", "JP")
        );
        assert_eq!(
            (r.debtor_agent_bic.as_str(), r.creditor_agent_bic.as_str()),
            ("KKHAJPJ0", "KKHASGS0")
        );
        assert_eq!(r.creditor_account, "2001");
        let credited = r.credited_amount.as_ref().expect("amount");
        assert_eq!(
            (credited.currency.as_str(), credited.value.as_str()),
            ("SGD", "86.78")
        );
        assert_eq!(r.ledger_transfer_id, "12345");
        assert_eq!(r.settled_at, Some(to_timestamp(UnixTime(at_2027().0 + 5))));
        assert_eq!(r.transaction_status, "ACSC");
    }

    #[test]
    fn a_signed_receipt_verifies_for_either_party() {
        let signed = sg_signed(&receipt());
        for relying in ["JP", "SG"] {
            let (r, signer) = verify_receipt(&signed, &mra(), relying, at_2027()).expect("valid");
            assert_eq!(r, receipt());
            assert_eq!(signer.jurisdiction(), "SG");
        }
    }

    #[test]
    fn tampered_receipt_is_ds0b() {
        let mut signed = sg_signed(&receipt());
        let mut edited = receipt();
        edited.credited_amount = Some(format_amount(currency("SGD").expect("SGD"), 9999));
        signed.payload = edited.encode_to_vec();
        rejected(
            verify_receipt(&signed, &mra(), "JP", at_2027()),
            ReasonCode::Ds0b,
            "does not verify",
        );
    }

    #[test]
    fn a_receipt_signed_by_the_other_node_is_ds0b() {
        // The JP node signs a receipt claiming SG credited it.
        let signed = sign_receipt(
            &receipt(),
            &key("jp/node/receipt.key.pem"),
            &chain("jp/node/receipt.pem"),
        );
        rejected(
            verify_receipt(&signed, &mra(), "JP", at_2027()),
            ReasonCode::Ds0b,
            "receiving_jurisdiction \"SG\"",
        );
    }

    #[test]
    fn a_bank_key_cannot_sign_receipts() {
        let signed = sign_receipt(
            &receipt(),
            &key("sg/banks/KKHASGS0.key.pem"),
            &chain("sg/banks/KKHASGS0.pem"),
        );
        rejected(
            verify_receipt(&signed, &mra(), "JP", at_2027()),
            ReasonCode::Ds0b,
            "receipt-signing",
        );
    }

    /// One edit of a receipt's fields.
    type Edit = fn(&mut pb::Receipt);

    #[test]
    fn malformed_receipt_fields_are_ff01() {
        let cases: [(Edit, &str); 9] = [
            (
                |r| r.transaction_status = "RJCT".into(),
                "transaction_status is \"RJCT\"",
            ),
            (|r| r.uetr = "nope".into(), "receipt uetr"),
            (
                |r| r.instruction_sha256 = vec![1; 31],
                "instruction_sha256 is 31 bytes",
            ),
            (
                |r| r.sending_jurisdiction = String::new(),
                "sending_jurisdiction",
            ),
            (|r| r.creditor_account = "0".into(), "creditor_account"),
            (|r| r.credited_amount = None, "credited_amount is missing"),
            (|r| r.ledger_transfer_id = "x".into(), "ledger_transfer_id"),
            (|r| r.settled_at = None, "settled_at is missing"),
            (|r| r.debtor_agent_bic = "KKHA".into(), "debtor_agent_bic"),
        ];
        for (edit, needle) in cases {
            let mut r = receipt();
            edit(&mut r);
            rejected(
                verify_receipt(&sg_signed(&r), &mra(), "JP", at_2027()),
                ReasonCode::Ff01,
                needle,
            );
        }
    }

    #[test]
    fn garbage_receipt_payload_is_ff01() {
        let signed = signed::sign(
            SIGNING_DOMAIN_RECEIPT,
            vec![0xff; 9],
            &key("sg/node/receipt.key.pem"),
            &chain("sg/node/receipt.pem"),
        );
        rejected(
            verify_receipt(&signed, &mra(), "JP", at_2027()),
            ReasonCode::Ff01,
            "payload is not a Receipt",
        );
        rejected(
            ReceiptFile::new(signed),
            ReasonCode::Ff01,
            "payload is not a Receipt",
        );
    }

    #[test]
    fn receipt_file_round_trips_and_verifies() {
        let file = ReceiptFile::new(sg_signed(&receipt())).expect("receipt");
        let text = file.to_json();
        let back = ReceiptFile::from_json(&text).expect("reads back");
        assert_eq!(back, file);
        let (r, _) = verify_receipt(&back.signed, &mra(), "JP", at_2027()).expect("valid");
        assert_eq!(r, receipt());
    }

    #[test]
    fn receipt_file_has_the_documented_shape() {
        let file = ReceiptFile::new(sg_signed(&receipt())).expect("receipt");
        let json: serde_json::Value = serde_json::from_str(&file.to_json()).expect("JSON");
        assert_eq!(json["format"], "kakehashi-receipt-v1");
        assert_eq!(
            json["signed"]["signer_chain"].as_array().map(Vec::len),
            Some(2)
        );
        let payload = BASE64
            .decode(json["signed"]["payload"].as_str().expect("string"))
            .expect("b64");
        assert_eq!(payload, file.signed.payload);
        assert_eq!(
            json["receipt"]["uetr"],
            "eb6305c9-1f7f-49de-aed0-16487c27b42d"
        );
        assert_eq!(json["receipt"]["instruction_sha256"], "07".repeat(32));
        assert_eq!(json["receipt"]["credited_amount"]["value"], "86.78");
        assert_eq!(json["receipt"]["settled_at"], "2027-01-01T00:00:05Z");
        assert_eq!(json["receipt"]["transaction_status"], "ACSC");
    }

    #[test]
    fn receipt_file_refuses_bad_input() {
        let good = ReceiptFile::new(sg_signed(&receipt()))
            .expect("receipt")
            .to_json();
        let edit = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v: serde_json::Value = serde_json::from_str(&good).expect("JSON");
            f(&mut v);
            v.to_string()
        };
        rejected(
            ReceiptFile::from_json("not json"),
            ReasonCode::Ff01,
            "not a JSON object",
        );
        rejected(
            ReceiptFile::from_json("{}"),
            ReasonCode::Ff01,
            "missing field `format`",
        );
        rejected(
            ReceiptFile::from_json(&edit(&|v| v["format"] = "kakehashi-receipt-v2".into())),
            ReasonCode::Ff01,
            "format is \"kakehashi-receipt-v2\"",
        );
        rejected(
            ReceiptFile::from_json(&edit(&|v| v["extra"] = 1.into())),
            ReasonCode::Ff01,
            "unknown field",
        );
        rejected(
            ReceiptFile::from_json(&edit(&|v| v["signed"]["signature"] = "!!".into())),
            ReasonCode::Ff01,
            "signed.signature is not standard base64",
        );
        rejected(
            ReceiptFile::from_json(&edit(&|v| v["signed"]["payload"] = "////".into())),
            ReasonCode::Ff01,
            "payload is not a Receipt",
        );
        rejected(
            ReceiptFile::from_json(&edit(&|v| {
                v["receipt"]["credited_amount"]["value"] = "99.99".into()
            })),
            ReasonCode::Ff01,
            "differs from the signed payload",
        );
        rejected(
            ReceiptFile::from_json(&edit(&|v| {
                v["signed"]["signer_chain"] = vec!["AA=="; 9].into()
            })),
            ReasonCode::Ff01,
            "at most 8",
        );
        rejected(
            ReceiptFile::from_json(&" ".repeat(RECEIPT_FILE_LEN_MAX + 1)),
            ReasonCode::Ff01,
            "at most 524288",
        );
    }
}
