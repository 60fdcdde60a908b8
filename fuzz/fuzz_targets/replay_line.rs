//! Arbitrary bytes as a `kakehashi replay` transaction file (JSON Lines) through
//! `replay::parse`, with the parties of the committed agreement as `kakehashi replay` builds
//! them. Nothing may panic.
//!
//! Oracles: parsing is deterministic (the same bytes give the same payments and UETRs, which
//! is what makes a re-run idempotent); an accepted payment names two different parties and
//! debits in the sending party's currency; and the instruction `replay::instruction` builds
//! from it, at a quote the sending party's node issued and the bank verified for it, is one the
//! node's `instruction::decode` accepts with the same fields, so a file that passes validation
//! never sends a malformed instruction.
#![no_main]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;

use kakehashi_ops::replay::{self, Parties, Payment, UetrKey};
use kakehashi_pki::UnixTime;
use kakehashi_pki::cache::RecognitionCache;
use kakehashi_pki::mra::Mra;
use kakehashi_protocol::bank::Bank;
use kakehashi_protocol::instruction;
use kakehashi_protocol::money::{self, Rate};
use kakehashi_protocol::quote::{QuoteAsk, QuoteIssuer, QuoteOffer, verify_quote_for};
use kakehashi_protocol::signed::{ParsedCerts, Trust};
use libfuzzer_sys::fuzz_target;

/// The `--seed` of derived UETRs.
const SEED: &str = "fuzz";
/// 2027-01-01T00:00:00Z, the creation time of the instructions built.
const NOW: UnixTime = UnixTime(1_798_761_600);
/// The mid rate of the quotes: with three or fewer decimals between two currencies, any positive
/// amount converts to a positive one.
const MID: &str = "1000";

struct World {
    parties: Parties,
    mra: Mra,
    cache: RecognitionCache,
    certs: ParsedCerts,
    /// Each party's node quotes with its receipt-signing key.
    issuers: BTreeMap<String, QuoteIssuer>,
    /// Any bank's key will do: `instruction::decode` checks format, not the signature.
    bank: Bank,
}

impl World {
    fn trust(&self) -> Trust<'_> {
        Trust::cached(&self.mra, &self.cache).with_parsed_certs(&self.certs)
    }
}

/// The receipt-signing identity of `code`'s node in the dev PKI.
fn issuer(certs: &std::path::Path, code: &str) -> QuoteIssuer {
    let dir = certs.join(code.to_lowercase()).join("node");
    let bytes = std::fs::read(dir.join("receipt.pem")).expect("committed dev chain");
    let chain = kakehashi_pki::pem::blocks_or_der(&bytes, "CERTIFICATE").expect("PEM chain");
    let text = std::fs::read_to_string(dir.join("receipt.key.pem")).expect("committed dev key");
    QuoteIssuer {
        jurisdiction: code.to_owned(),
        key: SigningKey::from_pkcs8_pem(&text).expect("PKCS#8 Ed25519 key"),
        chain,
        ttl_secs: 60,
    }
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let certs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../certs");
        let mra = Mra::load(&certs.join("mra.toml")).expect("certs/mra.toml loads");
        // As crates/cli/src/cmd_replay.rs builds them.
        let parties: Parties = mra
            .jurisdictions()
            .iter()
            .filter_map(|j| Some((j.code.clone(), money::currency(&j.currency)?)))
            .collect();
        assert!(parties.len() >= 2, "the agreement has at least JP and SG");
        let bank = Bank::load(
            &certs.join("jp/banks/KKHAJPJ0.pem"),
            &certs.join("jp/banks/KKHAJPJ0.key.pem"),
        )
        .expect("committed dev bank");
        let issuers = parties
            .keys()
            .map(|code| (code.clone(), issuer(&certs, code)))
            .collect();
        let cache = RecognitionCache::new(&mra).expect("recognition cache");
        World {
            parties,
            mra,
            cache,
            certs: ParsedCerts::new(),
            issuers,
            bank,
        }
    })
}

/// `data` parsed, its derived UETRs keyed with the world's bank (as `kakehashi replay` keys
/// each line with its signing bank).
fn parse_keyed(world: &World, data: &[u8]) -> Result<Vec<Payment>, Vec<replay::LineError>> {
    let mut payments = replay::parse(data, &world.parties)?;
    let key = UetrKey::of(&world.bank);
    replay::key_uetrs(&mut payments, SEED, |_| &key);
    Ok(payments)
}

fuzz_target!(|data: &[u8]| {
    let world = world();
    match parse_keyed(world, data) {
        Ok(payments) => {
            assert!(!payments.is_empty(), "an accepted file has a payment");
            let again = parse_keyed(world, data).expect("parses twice");
            assert_eq!(again.len(), payments.len());
            for (a, b) in payments.iter().zip(&again) {
                assert_eq!(a.uetr, b.uetr, "line {}: UETRs are deterministic", a.line);
            }
            for payment in &payments {
                check(world, payment);
            }
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "a refused file names a reason");
            assert!(errors.len() <= replay::ERRORS_MAX);
            for error in &errors {
                let _ = error.to_string();
            }
        }
    }
});

fn check(world: &World, payment: &Payment) {
    assert_ne!(payment.sending, payment.receiving);
    let currency = world
        .parties
        .get(&payment.sending)
        .copied()
        .expect("the sending jurisdiction is a party");
    assert!(world.parties.contains_key(&payment.receiving));
    assert_eq!(payment.amount.currency, currency.alpha);
    assert!(payment.amount_minor > 0);

    // What replay would send, at a quote for the payment that the bank verified: the node must
    // accept its format. A payment the node cannot quote (one that overflows at this rate) is
    // never signed.
    let offer = QuoteOffer {
        counterparty: &payment.receiving,
        source: (currency, payment.amount_minor),
        target_currency: payment.target_currency,
        mid: Rate::parse(MID).expect("rate"),
        spread_bps: 0,
    };
    let Ok(quote) = world.issuers[&payment.sending].issue(&offer, NOW, "Q-fuzz".into()) else {
        return;
    };
    let asked = QuoteAsk {
        source: (currency, payment.amount_minor),
        counterparty: payment.receiving.clone(),
        target_currency: payment.target_currency,
    };
    let quote = verify_quote_for(quote, &asked, world.trust(), &payment.sending, NOW, 30)
        .unwrap_or_else(|e| panic!("line {}: the node's quote: {e}", payment.line));
    // The builder signs as the bank; `kakehashi replay` signs each line with the bank whose BIC
    // is its debtor agent, so the world's bank goes by that name here.
    let bank = Bank {
        bic: payment.debtor_agent.clone(),
        ..world.bank.clone()
    };
    let signed = replay::instruction(&bank, payment, &quote, NOW);
    let instr = instruction::decode(&signed).unwrap_or_else(|r| {
        panic!(
            "line {}: replay accepted a payment whose instruction the node refuses: {}",
            payment.line, r.detail
        )
    });
    assert_eq!(instr.uetr, payment.uetr);
    assert_eq!(instr.end_to_end_id, payment.end_to_end_id);
    assert_eq!(instr.instruction_id, payment.instruction_id);
    assert_eq!(instr.amount_minor, payment.amount_minor);
    assert_eq!(instr.debtor_agent_bic, payment.debtor_agent);
    assert_eq!(instr.creditor_agent_bic, payment.creditor_agent);
    assert_eq!(instr.debtor_account, payment.debtor_account);
    assert_eq!(instr.creditor_account, payment.creditor_account);
    assert_eq!(instr.debtor_name, payment.debtor_name);
    assert_eq!(instr.creditor_name, payment.creditor_name);
    assert_eq!(instr.remittance_information, payment.remittance_information);
    assert_eq!(instr.charge_bearer, payment.charge_bearer);
}
