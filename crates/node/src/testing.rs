//! Shared by the crate's unit tests that need running nodes: a JP/SG pair from the devnet
//! configurations on ports the system chooses and temporary data directories, and the devnet's
//! usual JP→SG instruction signed by a bank at a quote of JP's. The integration tests
//! (`tests/`) have their own support; these reach what they cannot, the store's test-only
//! fault hooks.
#![cfg(test)]

use std::path::{Path, PathBuf};

use kakehashi_proto::pb;
use kakehashi_protocol::bank::{self, Bank, InstructionOptions, Order};
use kakehashi_protocol::instruction::Uetr;
use kakehashi_protocol::money;
use kakehashi_protocol::quote::{QuoteAsk, verify_quote_for};

use crate::config::Config;
use crate::engine::{Engine, QuoteAsker};
use crate::node::{Node, RunningNode};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn config(jurisdiction: &str, dir: &Path) -> Config {
    let file = repo().join(format!(
        "crates/node/devnet/{}.toml",
        jurisdiction.to_lowercase()
    ));
    Config::load(&file)
        .expect("devnet config")
        .with_data_dir(dir.join(jurisdiction.to_lowercase()))
        .with_ports(0, 0, 0)
}

/// Two running nodes; their data directory is removed when the pair is dropped.
pub(crate) struct Pair {
    _dir: tempfile::TempDir,
    pub(crate) jp: RunningNode,
    pub(crate) sg: RunningNode,
}

/// Starts SG, then JP with SG's relay address as its peer (the tests pay JP→SG only, so SG's
/// own peer address stays the devnet's).
pub(crate) async fn pair() -> Pair {
    let dir = tempfile::tempdir().expect("tempdir");
    let sg = Node::start(config("SG", dir.path()))
        .await
        .expect("SG node");
    let jp_config = config("JP", dir.path())
        .with_peer_relay("SG", &format!("https://127.0.0.1:{}", sg.relay_addr.port()))
        .expect("SG relay address");
    let jp = Node::start(jp_config).await.expect("JP node");
    Pair { _dir: dir, jp, sg }
}

/// Aoki Kenji (1001 at KKHAJPJ0) pays Tan Wei Ming (2001 at KKHASGS0) 10,000 JPY under
/// `uetr`, at a quote `jp` issues now.
pub(crate) fn jp_to_sg(jp: &Engine, uetr: Uetr) -> pb::Signed {
    let banks = repo().join("certs/jp/banks");
    let bank = Bank::load(&banks.join("KKHAJPJ0.pem"), &banks.join("KKHAJPJ0.key.pem"))
        .expect("bank files");
    let jpy = money::currency("JPY").expect("JPY");
    let source = money::format_amount(jpy, 10_000);
    let quote = jp
        .quote(&QuoteAsker::Anonymous, "SG", &source)
        .expect("quote");
    let now = jp.clock().now().1;
    let ask = QuoteAsk {
        source: (jpy, 10_000),
        counterparty: "SG".into(),
        target_currency: money::currency("SGD").expect("SGD"),
    };
    let quote = verify_quote_for(quote, &ask, jp.mra(), "JP", now, 30).expect("JP's quote");
    let order = Order {
        debtor_account: 1001,
        debtor_name: "Aoki Kenji".into(),
        creditor_agent_bic: "KKHASGS0".into(),
        creditor_account: 2001,
        creditor_name: "Tan Wei Ming".into(),
        remittance_information: String::new(),
    };
    bank::instruction(
        &bank,
        &order,
        &quote,
        uetr,
        now,
        &InstructionOptions::default(),
    )
}

/// A fresh random UETR.
pub(crate) fn new_uetr() -> Uetr {
    Uetr::new_v4(&ring::rand::SystemRandom::new()).expect("randomness")
}
