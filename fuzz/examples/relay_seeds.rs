//! Writes the seed inputs of the `relay_input` fuzz target into `seeds/relay_input/`: a real
//! payment's signed quote, instruction and receipt, made with the committed dev PKI (certs/) by
//! the node's own code, in each of the target's modes. `seeds.sh` runs it; run from `fuzz/`:
//! `cargo run --example relay_seeds`.

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use kakehashi_pki::UnixTime;
use kakehashi_pki::mra::Mra;
use kakehashi_protocol::bank::{self, Bank, InstructionOptions, Order};
use kakehashi_protocol::instruction::{self, Uetr};
use kakehashi_protocol::money::{Rate, currency};
use kakehashi_protocol::quote::{QuoteAsk, QuoteIssuer, QuoteOffer, verify_quote_for};
use kakehashi_protocol::receipt::{ReceiptFile, build_receipt, sign_receipt};
use prost::Message as _;

/// The fuzz target's fixed time, 2027-01-01T00:00:00Z.
const NOW: UnixTime = UnixTime(1_798_761_600);

/// The target's mode bytes (see `fuzz_targets/relay_input.rs`); the top bit picks SG as the
/// relying party.
const ENVELOPE: u8 = 0;
const INSTRUCTION: u8 = 1;
const QUOTE: u8 = 2;
const RECEIPT: u8 = 3;
const RECEIPT_FILE: u8 = 4;
const RELYING_SG: u8 = 0x80;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let certs = fuzz.join("../certs");
    let out = fuzz.join("seeds/relay_input");
    if out.exists() {
        std::fs::remove_dir_all(&out)?;
    }
    std::fs::create_dir_all(&out)?;

    let jpy = currency("JPY").ok_or("JPY")?;
    let sgd = currency("SGD").ok_or("SGD")?;
    let issuer = QuoteIssuer {
        jurisdiction: "JP".into(),
        key: key(&certs.join("jp/node/receipt.key.pem"))?,
        chain: chain(&certs.join("jp/node/receipt.pem"))?,
        ttl_secs: 60,
    };
    let quote = issuer
        .issue(
            &QuoteOffer {
                counterparty: "SG",
                source: (jpy, 25_000),
                target_currency: sgd,
                mid: Rate::parse("0.0087").map_err(|r| r.detail)?,
                spread_bps: 25,
            },
            UnixTime(NOW.0 - 10),
            "Q-JP-0001".into(),
        )
        .map_err(|r| r.detail)?;
    let bank = Bank::load(
        &certs.join("jp/banks/KKHAJPJ0.pem"),
        &certs.join("jp/banks/KKHAJPJ0.key.pem"),
    )?;
    let order = Order {
        debtor_account: 1001,
        debtor_name: "Aoki Kenji".into(),
        creditor_agent_bic: "KKHASGS0".into(),
        creditor_account: 2001,
        creditor_name: "Tan Wei Ming".into(),
        remittance_information: "Birthday gift".into(),
    };
    let uetr = Uetr::parse("eb6305c9-1f7f-49de-aed0-16487c27b42d").map_err(|r| r.detail)?;
    // The bank signs only at a quote it verified for the payment, as `kakehashi pay` does.
    let mra = Mra::load(&certs.join("mra.toml"))?;
    let asked = QuoteAsk {
        source: (jpy, 25_000),
        counterparty: "SG".into(),
        target_currency: sgd,
    };
    let verified = verify_quote_for(quote.clone(), &asked, &mra, "JP", NOW, 30)?;
    let options = InstructionOptions::default();
    let signed_instruction = bank::instruction(&bank, &order, &verified, uetr, NOW, &options);
    let instr = instruction::decode(&signed_instruction).map_err(|r| r.detail)?;
    let receipt = build_receipt(&instr, "SG", "JP", (sgd, 21_695), 12_345, NOW);
    let signed_receipt = sign_receipt(
        &receipt,
        &key(&certs.join("sg/node/receipt.key.pem"))?,
        &chain(&certs.join("sg/node/receipt.pem"))?,
    );
    let file = ReceiptFile::new(signed_receipt.clone()).map_err(|r| r.detail)?;

    let seeds: [(&str, u8, Vec<u8>); 9] = [
        (
            "envelope-instruction-jp",
            ENVELOPE,
            signed_instruction.encode_to_vec(),
        ),
        (
            "envelope-instruction-sg",
            ENVELOPE | RELYING_SG,
            signed_instruction.encode_to_vec(),
        ),
        (
            "envelope-quote-sg",
            ENVELOPE | RELYING_SG,
            quote.encode_to_vec(),
        ),
        (
            "envelope-receipt-jp",
            ENVELOPE,
            signed_receipt.encode_to_vec(),
        ),
        (
            "instruction-payload-sg",
            INSTRUCTION | RELYING_SG,
            signed_instruction.payload.clone(),
        ),
        ("quote-payload-jp", QUOTE, quote.payload.clone()),
        (
            "quote-payload-sg",
            QUOTE | RELYING_SG,
            quote.payload.clone(),
        ),
        (
            "receipt-payload-jp",
            RECEIPT,
            signed_receipt.payload.clone(),
        ),
        ("receipt-file-jp", RECEIPT_FILE, file.to_json().into_bytes()),
    ];
    for (name, mode, body) in seeds {
        let mut bytes = vec![mode];
        bytes.extend_from_slice(&body);
        std::fs::write(out.join(name), bytes)?;
    }
    println!("wrote 9 seeds to {}", out.display());
    Ok(())
}

fn key(path: &Path) -> Result<SigningKey, Box<dyn std::error::Error>> {
    Ok(SigningKey::from_pkcs8_pem(&std::fs::read_to_string(path)?)?)
}

fn chain(path: &Path) -> Result<Vec<Vec<u8>>, Box<dyn std::error::Error>> {
    Ok(kakehashi_pki::pem::blocks_or_der(
        &std::fs::read(path)?,
        "CERTIFICATE",
    )?)
}
