//! Arbitrary bytes as what a node receives from a bank or a peer node: a `kakehashi.v1.Signed`
//! envelope on the wire, the payload inside one (an instruction, a quote, a receipt), or a
//! receipt file's JSON. Every entry point answers with a value or a `Rejection`, never a panic.
//!
//! A random signature never verifies, so the payload modes re-sign the fuzzed payload with the
//! committed dev keys (certs/, whose private keys are public): the checks that only run on a
//! correctly signed object (the quote's terms, the receipt's fields, the signer's BIC against
//! the debtor agent) are reached from the first execution, as a peer holding a recognized key
//! would reach them.
//!
//! Oracles besides "no panic": an accepted instruction keeps the bounds `decode` documents; a
//! verified quote can be issued again from its terms by `QuoteIssuer` and verifies to the same
//! terms; a verified receipt is ACSC and names its signer's jurisdiction as receiving; a receipt
//! file written by `to_json` reads back equal.
//!
//! Input layout: the first byte picks the mode (its low bits, see `run`) and, by its top bit,
//! the relying party (JP or SG); the rest is the mode's body.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use kakehashi_pki::cache::RecognitionCache;
use kakehashi_pki::mra::Mra;
use kakehashi_pki::{Purpose, UnixTime};
use kakehashi_proto::{
    SIGNING_DOMAIN_INSTRUCTION, SIGNING_DOMAIN_QUOTE, SIGNING_DOMAIN_RECEIPT, pb,
};
use kakehashi_protocol::instruction::{self, ID_CHARS_MAX, NAME_CHARS_MAX, REMITTANCE_CHARS_MAX};
use kakehashi_protocol::quote::{QuoteIssuer, QuoteOffer, verify_quote};
use kakehashi_protocol::receipt::{
    RECEIPT_FILE_LEN_MAX, ReceiptFile, TRANSACTION_STATUS_ACSC, verify_receipt,
};
use kakehashi_protocol::signed::{self, ParsedCerts, Trust};
use libfuzzer_sys::fuzz_target;
use prost::Message as _;

/// 2027-01-01T00:00:00Z: inside every dev certificate's validity and the agreement's window.
const NOW: UnixTime = UnixTime(1_798_761_600);
/// The devnet's clock skew allowance (crates/node/devnet/*.toml).
const SKEW_SECS: u64 = 30;

/// The committed agreement and the dev identities the payload modes sign with.
struct World {
    mra: Mra,
    cache: RecognitionCache,
    certs: ParsedCerts,
    /// JP's node receipt-signing identity: signs quotes (the sending node issues them).
    jp_receipt: (SigningKey, Vec<Vec<u8>>),
    /// SG's node receipt-signing identity: signs receipts (the receiving node issues them).
    sg_receipt: (SigningKey, Vec<Vec<u8>>),
    /// Bank KKHAJPJ0's payment-signing identity: signs instructions.
    jp_bank: (SigningKey, Vec<Vec<u8>>),
}

fn certs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../certs")
}

fn identity(chain: &str, key: &str) -> (SigningKey, Vec<Vec<u8>>) {
    let bytes = std::fs::read(certs_dir().join(chain)).expect("committed dev chain");
    let chain = kakehashi_pki::pem::blocks_or_der(&bytes, "CERTIFICATE").expect("PEM chain");
    let text = std::fs::read_to_string(certs_dir().join(key)).expect("committed dev key");
    let key = SigningKey::from_pkcs8_pem(&text).expect("PKCS#8 Ed25519 key");
    (key, chain)
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let mra = Mra::load(&certs_dir().join("mra.toml")).expect("certs/mra.toml loads");
        let cache = RecognitionCache::new(&mra).expect("recognition cache");
        World {
            cache,
            mra,
            certs: ParsedCerts::new(),
            jp_receipt: identity("jp/node/receipt.pem", "jp/node/receipt.key.pem"),
            sg_receipt: identity("sg/node/receipt.pem", "sg/node/receipt.key.pem"),
            jp_bank: identity("jp/banks/KKHAJPJ0.pem", "jp/banks/KKHAJPJ0.key.pem"),
        }
    })
}

impl World {
    /// What a node checks signatures with: the agreement and its caches (Engine::trust).
    fn trust(&self) -> Trust<'_> {
        Trust::cached(&self.mra, &self.cache).with_parsed_certs(&self.certs)
    }
}

fuzz_target!(|data: &[u8]| run(data));

fn run(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let world = world();
    let relying = if mode & 0x80 == 0 { "JP" } else { "SG" };
    match mode & 0x07 {
        // The envelope as received: nothing re-signed.
        0 | 5 => {
            if let Ok(signed) = pb::Signed::decode(body) {
                envelope(world, &signed, relying);
            }
        }
        // A CreditTransferInstruction, signed by KKHAJPJ0, its quote (if any) by JP's node.
        1 | 6 => {
            let payload = resign_quote_inside(world, body);
            let (key, chain) = &world.jp_bank;
            let signed = signed::sign(SIGNING_DOMAIN_INSTRUCTION, payload, key, chain);
            envelope(world, &signed, relying);
        }
        // A Quote, signed by JP's node.
        2 | 7 => {
            let (key, chain) = &world.jp_receipt;
            let signed = signed::sign(SIGNING_DOMAIN_QUOTE, body.to_vec(), key, chain);
            quote(world, &signed, relying);
        }
        // A Receipt, signed by SG's node (the bytes as given: unknown fields, field order).
        3 => {
            let (key, chain) = &world.sg_receipt;
            let signed = signed::sign(SIGNING_DOMAIN_RECEIPT, body.to_vec(), key, chain);
            receipt_signed(world, &signed, relying);
        }
        // A receipt file's JSON text.
        _ => {
            if let Ok(text) = std::str::from_utf8(body) {
                receipt_file(world, text, relying);
            }
        }
    }
}

/// When `body` decodes as an instruction carrying a quote, re-signs that quote's payload with
/// JP's receipt key so the quote checks run; otherwise returns `body` unchanged.
fn resign_quote_inside(world: &World, body: &[u8]) -> Vec<u8> {
    let Ok(mut raw) = pb::CreditTransferInstruction::decode(body) else {
        return body.to_vec();
    };
    let Some(quote) = raw.quote.take() else {
        return body.to_vec();
    };
    let (key, chain) = &world.jp_receipt;
    raw.quote = Some(signed::sign(
        SIGNING_DOMAIN_QUOTE,
        quote.payload,
        key,
        chain,
    ));
    raw.encode_to_vec()
}

/// What the engine does with an instruction envelope (submit and prepare): decode, verify the
/// signature for payment signing, match the signer to the debtor agent, verify the quote. Also
/// every other reading of an envelope, since a peer may send any object in any field.
fn envelope(world: &World, signed: &pb::Signed, relying: &str) {
    match instruction::decode(signed) {
        Ok(instr) => {
            check_instruction(&instr);
            let signer = signed::verify(
                signed,
                SIGNING_DOMAIN_INSTRUCTION,
                world.trust(),
                relying,
                Purpose::PaymentSigning,
                NOW,
                &[],
            );
            if let Ok(signer) = signer {
                assert!(!signer.subject_cn().is_empty());
                if signer.subject_cn() == instr.debtor_agent_bic {
                    quote(world, &instr.quote, relying);
                }
            }
        }
        Err(rejection) => assert!(!rejection.detail.is_empty()),
    }
    // The same bytes as the other kinds of signed object: a wrong domain must only refuse.
    quote(world, signed, relying);
    receipt_signed(world, signed, relying);
    let _ = ReceiptFile::new(signed.clone());
}

/// The bounds `instruction::decode` promises for what it accepts.
fn check_instruction(instr: &instruction::Instruction) {
    assert!(instr.expiry > instr.created);
    assert!(instr.amount_minor > 0);
    assert!(instr.debtor_account != 0 && instr.creditor_account != 0);
    for (text, max, required) in [
        (&instr.end_to_end_id, ID_CHARS_MAX, true),
        (&instr.instruction_id, ID_CHARS_MAX, true),
        (&instr.debtor_name, NAME_CHARS_MAX, true),
        (&instr.creditor_name, NAME_CHARS_MAX, true),
        (&instr.remittance_information, REMITTANCE_CHARS_MAX, false),
    ] {
        let chars = text.chars().count();
        assert!(chars <= max, "{chars} characters, at most {max}");
        assert!(!required || chars > 0);
    }
    // A UETR prints as the text it parses from.
    let again = instruction::Uetr::parse(&instr.uetr.to_string()).expect("a UETR reparses");
    assert_eq!(again, instr.uetr);
    let _ = instr.charge_bearer.as_str();
}

/// `verify_quote`; a verified quote must be reproducible by the issuer from its terms.
fn quote(world: &World, signed: &pb::Signed, relying: &str) {
    let Ok((terms, signer)) = verify_quote(signed, world.trust(), relying, NOW, SKEW_SECS, &[])
    else {
        return;
    };
    assert_eq!(terms.issuing, signer.jurisdiction());
    assert_ne!(terms.issuing, terms.counterparty);
    assert!(terms.source.1 > 0 && terms.target.1 > 0);
    assert!(terms.expires_at > terms.issued_at);
    if terms.issuing != "JP" {
        return;
    }
    let (key, chain) = &world.jp_receipt;
    let ttl = terms.expires_at.0 - terms.issued_at.0;
    let issuer = QuoteIssuer {
        jurisdiction: terms.issuing.clone(),
        key: key.clone(),
        chain: chain.clone(),
        ttl_secs: u64::try_from(ttl).expect("a verified quote's lifetime is positive"),
    };
    let again = issuer
        .issue(
            &QuoteOffer {
                counterparty: &terms.counterparty,
                source: terms.source,
                target_currency: terms.target.0,
                mid: terms.mid,
                spread_bps: terms.spread_bps,
            },
            terms.issued_at,
            terms.quote_id.clone(),
        )
        .unwrap_or_else(|r| panic!("terms that verified do not issue: {}", r.detail));
    let (reissued, _) = verify_quote(&again, world.trust(), relying, NOW, SKEW_SECS, &[])
        .unwrap_or_else(|r| panic!("a re-issued quote does not verify: {}", r.detail));
    assert_eq!(reissued, terms);
}

/// `verify_receipt`, and the receipt file of the same envelope written and read back.
fn receipt_signed(world: &World, signed: &pb::Signed, relying: &str) {
    if let Ok((receipt, signer)) = verify_receipt(signed, world.trust(), relying, NOW) {
        assert_eq!(receipt.transaction_status, TRANSACTION_STATUS_ACSC);
        assert_eq!(receipt.receiving_jurisdiction, signer.jurisdiction());
    }
    if let Ok(file) = ReceiptFile::new(signed.clone()) {
        round_trip(&file);
    }
}

/// A receipt file's JSON: read it; what reads must write and read back equal, and verifies as
/// the envelope it holds does (and, re-signed by SG's node, reaches the field checks).
fn receipt_file(world: &World, text: &str, relying: &str) {
    let Ok(file) = ReceiptFile::from_json(text) else {
        return;
    };
    round_trip(&file);
    let _ = verify_receipt(&file.signed, world.trust(), relying, NOW);
    let (key, chain) = &world.sg_receipt;
    let resigned = signed::sign(
        SIGNING_DOMAIN_RECEIPT,
        file.signed.payload.clone(),
        key,
        chain,
    );
    receipt_signed(world, &resigned, relying);
}

fn round_trip(file: &ReceiptFile) {
    let json = file.to_json();
    if json.len() > RECEIPT_FILE_LEN_MAX {
        return;
    }
    let back = ReceiptFile::from_json(&json)
        .unwrap_or_else(|r| panic!("a written receipt file does not read back: {}", r.detail));
    assert_eq!(&back, file);
}
