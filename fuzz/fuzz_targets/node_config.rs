//! Arbitrary UTF-8 text as a node configuration through `Config::parse` (TOML, then every
//! cross-field rule) and `Config::validate`. Nothing may panic, and nothing is read from disk:
//! `parse` only resolves paths against the base directory.
//!
//! Oracles: what `parse` returns validates again; every peer, account and the funding account
//! it lists are found by their accessors; and a peer's relay URI, printed and given back to
//! `with_peer_relay` (as the devnet does after picking ports), yields the same configuration.
#![no_main]

use std::path::Path;

use kakehashi_node::config::{AccountKind, Config};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/node/devnet");
    let config = match Config::parse(text, &base) {
        Ok(config) => config,
        Err(error) => {
            assert!(!error.to_string().is_empty());
            return;
        }
    };
    config
        .validate()
        .unwrap_or_else(|e| panic!("a parsed configuration does not validate: {e}"));
    for peer in &config.peers {
        assert!(config.peer(&peer.jurisdiction).is_some());
        let relays: Vec<String> = peer.relays.iter().map(ToString::to_string).collect();
        let relays: Vec<&str> = relays.iter().map(String::as_str).collect();
        let again = config
            .clone()
            .with_peer_relays(&peer.jurisdiction, &relays)
            .unwrap_or_else(|e| panic!("relays {relays:?} do not read back: {e}"));
        assert_eq!(again, config, "relays {relays:?} read back differently");
    }
    for account in &config.accounts {
        assert!(config.account(account.id).is_some());
    }
    let funding = config
        .funding_account()
        .expect("a validated configuration has a funding account");
    assert_eq!(funding.kind, AccountKind::Funding);
});
