//! The crates' dependency rules (ARCHITECTURE.md, "Code Map"), checked rather than stated.
//!
//! Each rule is read from `cargo tree -e normal`, which follows normal (linked) dependencies
//! only, transitively, with the features that building that one package enables: a crate's
//! dev- and build-dependencies never end up in what it links, and `cargo metadata` would
//! unify features across the whole workspace (the node turns on the proto crate's gRPC
//! services, which the protocol crate must not get).

use std::collections::BTreeSet;
use std::process::Command;

use kakehashi_e2e::repo_root;

/// Packages each library crate must never link, transitively, and why.
const FORBIDDEN: &[(&str, &[(&str, &str)])] = &[
    (
        "kakehashi-pki",
        &[
            (
                "kakehashi-ledger",
                "pki and ledger are leaves that know nothing of each other",
            ),
            (
                "kakehashi-proto",
                "wire types are converted at the node's edge",
            ),
            (
                "p256",
                "the dev PKI's key derivation is tooling (kakehashi-devpki)",
            ),
            (
                "rcgen",
                "certificate generation is tooling (kakehashi-devpki)",
            ),
            ("sled", "storage belongs to the ledger and the node"),
            (
                "tokio",
                "the verifier does no I/O: DER, anchors and time are arguments",
            ),
            ("tonic", "RPC belongs to the node"),
            (
                "tracing",
                "the verifier explains itself in its verdicts, not in logs",
            ),
        ],
    ),
    (
        "kakehashi-ledger",
        &[
            ("kakehashi-pki", "the ledger knows nothing of certificates"),
            ("kakehashi-proto", "the ledger knows nothing of the wire"),
            (
                "tokio",
                "the ledger's writer is threads; callers bring their own runtime",
            ),
            ("tonic", "the ledger knows nothing of gRPC"),
            ("x509-parser", "the ledger knows nothing of certificates"),
        ],
    ),
    (
        "kakehashi-proto",
        &[
            ("kakehashi-ledger", "the wire contract is a leaf"),
            ("kakehashi-pki", "the wire contract is a leaf"),
        ],
    ),
    (
        "kakehashi-protocol",
        &[
            (
                "hyper",
                "no transport: both sides apply these rules to bytes they hold",
            ),
            (
                "kakehashi-ledger",
                "the protocol names transfers; the node writes them",
            ),
            ("sled", "no storage in the shared rules"),
            ("tokio", "no runtime in the shared rules"),
            (
                "tonic",
                "the proto crate's messages only, without its gRPC services",
            ),
        ],
    ),
    (
        "kakehashi-node",
        &[
            ("kakehashi", "nothing depends on the command line"),
            (
                "kakehashi-devpki",
                "a running node never links the dev PKI generator and its keys",
            ),
            (
                "kakehashi-ops",
                "the offline tools are built on the node, not the other way round",
            ),
            ("rcgen", "a running node issues no certificates"),
        ],
    ),
    (
        "kakehashi-ops",
        &[
            ("kakehashi", "nothing depends on the command line"),
            (
                "kakehashi-devpki",
                "the tools work on real PKIs, not the generator's",
            ),
        ],
    ),
    (
        "kakehashi-testkit",
        &[
            (
                "kakehashi",
                "the kit runs the binary as a process, never links it",
            ),
            (
                "kakehashi-devpki",
                "the kit runs the committed PKI, as the nodes do",
            ),
        ],
    ),
    (
        "kakehashi-sim",
        &[
            ("kakehashi", "nothing depends on the command line"),
            (
                "kakehashi-devpki",
                "the simulator runs the committed PKI, as the nodes do",
            ),
        ],
    ),
    (
        "kakehashi-ledger-pg",
        &[
            (
                "kakehashi-node",
                "the storage engine is below the node; the node chooses it",
            ),
            ("kakehashi-pki", "the ledger knows nothing of certificates"),
            ("kakehashi-proto", "the ledger knows nothing of the wire"),
            ("tonic", "the ledger knows nothing of gRPC"),
            (
                "kakehashi-pgcluster",
                "a node's ledger connects to a server; it never starts or kills one",
            ),
        ],
    ),
    (
        "kakehashi-pgcluster",
        &[
            (
                "kakehashi-node",
                "it runs PostgreSQL's programs and knows nothing of the node",
            ),
            (
                "kakehashi-ledger",
                "it runs PostgreSQL's programs and knows nothing of the ledger",
            ),
            (
                "tokio",
                "child processes of the standard library, no runtime",
            ),
        ],
    ),
];

/// Packages that only the listed workspace members may link: tooling and the binary edge.
const DEPENDENTS: &[(&str, &[&str])] = &[
    ("kakehashi", &[]),
    ("kakehashi-devpki", &["kakehashi"]),
    // The simulator runs the operators' pair audit over its books as one of its oracles; the
    // test kit replays files and audits its pairs with them.
    (
        "kakehashi-ops",
        &["kakehashi", "kakehashi-sim", "kakehashi-testkit"],
    ),
    ("kakehashi-sim", &["kakehashi"]),
    // Tests only: the end-to-end tests' shared helpers are built on its process helpers.
    ("kakehashi-testkit", &["kakehashi-e2e"]),
    // Throwaway PostgreSQL servers (initdb, pg_ctl, SIGKILL): tests and tooling take it as a
    // dev-dependency; no library crate links it, so no node can start or kill a server.
    ("kakehashi-pgcluster", &[]),
];

/// The package names printed by `cargo tree` with `args`, one per line.
fn tree(args: &[&str]) -> BTreeSet<String> {
    // Cargo sets CARGO for the tests it runs; the compile-time value is the same binary.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let output = Command::new(cargo)
        .args([
            "tree", "--locked", "-e", "normal", "--prefix", "none", "-f", "{p}",
        ])
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo tree {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("cargo tree prints UTF-8")
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn library_crates_link_nothing_their_rule_forbids() {
    for (package, forbidden) in FORBIDDEN {
        let linked = tree(&["-p", package]);
        assert!(
            linked.contains(*package),
            "{package}: cargo tree printed {linked:?}"
        );
        for (name, why) in *forbidden {
            assert!(
                !linked.contains(*name),
                "{package} must not link {name} ({why}); see `cargo tree -e normal -p {package} -i {name}`"
            );
        }
    }
}

#[test]
fn the_walk_reaches_what_the_crates_really_use() {
    // A rule that reads an empty tree would pass for the wrong reason.
    let pki = tree(&["-p", "kakehashi-pki"]);
    for used in ["x509-parser", "ring", "ed25519-dalek"] {
        assert!(pki.contains(used), "kakehashi-pki links {used}: {pki:?}");
    }
    let protocol = tree(&["-p", "kakehashi-protocol"]);
    for used in ["kakehashi-pki", "kakehashi-proto", "prost", "sha2"] {
        assert!(
            protocol.contains(used),
            "kakehashi-protocol links {used}: {protocol:?}"
        );
    }
    let node = tree(&["-p", "kakehashi-node"]);
    for used in ["kakehashi-protocol", "kakehashi-ledger", "tonic", "sled"] {
        assert!(node.contains(used), "kakehashi-node links {used}: {node:?}");
    }
}

#[test]
fn only_the_command_line_links_the_tooling_crates() {
    for (package, allowed) in DEPENDENTS {
        // Inverted, one level: the members with a normal dependency on `package`.
        let mut dependents = tree(&["--workspace", "-i", package, "--depth", "1"]);
        assert!(
            dependents.remove(*package),
            "{package} is a workspace member"
        );
        let allowed: BTreeSet<String> = allowed.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(
            dependents, allowed,
            "the workspace members that link {package}"
        );
    }
}
