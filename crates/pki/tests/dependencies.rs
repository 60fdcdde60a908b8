//! The verifier's dependency rule, checked rather than stated: through its normal (linked)
//! dependencies, transitively, `kakehashi-pki` reaches no async runtime, RPC, storage or logging
//! crate, neither the ledger nor the wire types, and no certificate generator. Dev- and
//! build-dependencies are not followed: they never end up in the verifier.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// The package under test.
const PACKAGE: &str = "kakehashi-pki";

/// Packages the verifier must never link, and why.
const FORBIDDEN: &[(&str, &str)] = &[
    (
        "kakehashi-ledger",
        "pki and ledger are leaves that do not depend on each other",
    ),
    (
        "kakehashi-proto",
        "wire types are converted at the node's edge, not in the verifier",
    ),
    (
        "p256",
        "the dev PKI's key derivation is tooling (kakehashi-devpki); ECDSA here is ring's",
    ),
    (
        "rcgen",
        "certificate generation is tooling (kakehashi-devpki)",
    ),
    ("sled", "storage belongs to the ledger and the node"),
    (
        "tokio",
        "the verifier does no I/O: DER, anchors and time come in as arguments",
    ),
    ("tonic", "RPC belongs to the node"),
    (
        "tracing",
        "the verifier explains itself in its verdicts, not in logs",
    ),
];

/// `cargo metadata` for the workspace, with the full dependency resolution.
fn metadata() -> Value {
    // Cargo sets CARGO for the tests it runs; the compile-time value is the same binary.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

/// Every package `PACKAGE` reaches through normal dependencies (a `dep_kinds` entry whose
/// `kind` is null), each with the package it was first reached from: name → parent name.
fn normal_closure(metadata: &Value) -> BTreeMap<String, String> {
    let packages = metadata["packages"].as_array().expect("packages");
    let name_of: BTreeMap<&str, &str> = packages
        .iter()
        .map(|p| {
            (
                p["id"].as_str().expect("id"),
                p["name"].as_str().expect("name"),
            )
        })
        .collect();
    let members = metadata["workspace_members"].as_array().expect("members");
    let root = members
        .iter()
        .filter_map(Value::as_str)
        .find(|id| name_of.get(id) == Some(&PACKAGE))
        .expect("the package is a workspace member");
    let nodes: BTreeMap<&str, &Value> = metadata["resolve"]["nodes"]
        .as_array()
        .expect("resolve nodes (cargo metadata without --no-deps)")
        .iter()
        .map(|n| (n["id"].as_str().expect("node id"), n))
        .collect();

    let mut reached = BTreeMap::from([(PACKAGE.to_owned(), String::new())]);
    let mut seen = BTreeSet::from([root]);
    let mut queue = vec![root];
    while let Some(id) = queue.pop() {
        let deps = nodes[id]["deps"].as_array().expect("deps");
        for dep in deps {
            let kinds = dep["dep_kinds"].as_array().expect("dep_kinds");
            if !kinds.iter().any(|k| k["kind"].is_null()) {
                continue;
            }
            let dep_id = dep["pkg"].as_str().expect("pkg");
            if seen.insert(dep_id) {
                reached
                    .entry(name_of[dep_id].to_owned())
                    .or_insert_with(|| name_of[id].to_owned());
                queue.push(dep_id);
            }
        }
    }
    reached
}

/// How `name` is reached, e.g. `kakehashi-pki -> rustls -> log`.
fn route(reached: &BTreeMap<String, String>, name: &str) -> String {
    let mut hops = vec![name.to_owned()];
    let mut at = name;
    while let Some(parent) = reached.get(at).filter(|p| !p.is_empty()) {
        hops.push(parent.clone());
        at = parent;
    }
    hops.reverse();
    hops.join(" -> ")
}

#[test]
fn pki_links_no_runtime_rpc_storage_logging_ledger_proto_or_generator_crate() {
    let reached = normal_closure(&metadata());
    // The walk follows edges: the verifier's own parser and crypto are reached.
    for expected in ["x509-parser", "ring", "ed25519-dalek"] {
        assert!(
            reached.contains_key(expected),
            "{expected} not reached: {reached:?}"
        );
    }
    for (name, why) in FORBIDDEN {
        assert!(
            !reached.contains_key(*name),
            "{PACKAGE} must not depend on {name} ({why}), but reaches it: {}",
            route(&reached, name)
        );
    }
}
