//! Arbitrary bytes as a `kakehashi replay` transaction file (JSON Lines) through
//! `replay::parse`, with the parties of the committed agreement as `kakehashi replay` builds
//! them. Nothing may panic.
//!
//! Oracles: parsing is deterministic (the same bytes give the same payments and UETRs, which
//! is what makes a re-run idempotent); an accepted payment names two different parties and
//! debits in the sending party's currency; and the instruction `replay::instruction` builds
//! from it is one the node's `instruction::decode` accepts with the same fields, so a file
//! that passes validation never sends a malformed instruction.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use kakehashi_protocol::instruction;
use kakehashi_protocol::money;
use kakehashi_protocol::bank::Bank;
use kakehashi_ops::replay::{self, Parties, Payment};
use kakehashi_pki::UnixTime;
use kakehashi_pki::mra::Mra;
use kakehashi_proto::pb;
use libfuzzer_sys::fuzz_target;

/// The `--seed` of derived UETRs.
const SEED: &str = "fuzz";
/// 2027-01-01T00:00:00Z, the creation time of the instructions built.
const NOW: UnixTime = UnixTime(1_798_761_600);

struct World {
    parties: Parties,
    /// Any bank will do: `instruction::decode` checks format, not the signature.
    bank: Bank,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let certs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../certs");
        let mra = Mra::load(&certs.join("mra.toml")).expect("certs/mra.toml loads");
        // As crates/cli/src/cmd_replay.rs builds them.
        let parties: Parties = mra
            .jurisdictions
            .iter()
            .filter_map(|j| Some((j.code.clone(), money::currency(&j.currency)?)))
            .collect();
        assert!(parties.len() >= 2, "the agreement has at least JP and SG");
        let bank = Bank::load(
            &certs.join("jp/banks/KKHAJPJ0.pem"),
            &certs.join("jp/banks/KKHAJPJ0.key.pem"),
        )
        .expect("committed dev bank");
        World { parties, bank }
    })
}

fuzz_target!(|data: &[u8]| {
    let world = world();
    match replay::parse(data, &world.parties, SEED) {
        Ok(payments) => {
            assert!(!payments.is_empty(), "an accepted file has a payment");
            let again = replay::parse(data, &world.parties, SEED).expect("parses twice");
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
        .expect("the sending jurisdiction is a party");
    assert!(world.parties.contains_key(&payment.receiving));
    assert_eq!(payment.amount.currency, currency.alpha);
    assert!(payment.amount_minor > 0);

    // What replay would send: the node must accept its format.
    let quote = pb::Signed::default();
    let signed = replay::instruction(&world.bank, payment, &quote, NOW);
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
