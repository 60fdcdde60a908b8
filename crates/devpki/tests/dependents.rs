//! The dependency rule of this crate, checked rather than stated: no production crate links the
//! generator and its development keys. Among the workspace members only the `kakehashi` binary
//! (for `pki init` and `conformance`) has a normal dependency on `kakehashi-devpki`, and no
//! member links that binary; tests take it as a dev-dependency.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// The package whose dependents are checked.
const PACKAGE: &str = "kakehashi-devpki";

/// The only workspace members allowed a normal dependency on it.
const ALLOWED_DEPENDENTS: &[&str] = &["kakehashi"];

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

/// Names of the workspace members with a normal (non-dev, non-build) dependency on a package
/// named `target`.
fn normal_dependents(metadata: &Value, target: &str) -> BTreeSet<String> {
    let name_of: BTreeMap<&str, &str> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            (
                p["id"].as_str().expect("id"),
                p["name"].as_str().expect("name"),
            )
        })
        .collect();
    let members: BTreeSet<&str> = metadata["workspace_members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let nodes = metadata["resolve"]["nodes"]
        .as_array()
        .expect("resolve nodes (cargo metadata without --no-deps)");
    nodes
        .iter()
        .filter(|n| members.contains(n["id"].as_str().expect("node id")))
        .filter(|n| {
            n["deps"].as_array().expect("deps").iter().any(|dep| {
                name_of[dep["pkg"].as_str().expect("pkg")] == target
                    && dep["dep_kinds"]
                        .as_array()
                        .expect("dep_kinds")
                        .iter()
                        .any(|k| k["kind"].is_null())
            })
        })
        .map(|n| name_of[n["id"].as_str().expect("node id")].to_owned())
        .collect()
}

#[test]
fn only_the_cli_links_devpki_and_nothing_links_the_cli() {
    let metadata = metadata();
    let dependents = normal_dependents(&metadata, PACKAGE);
    let allowed: BTreeSet<String> = ALLOWED_DEPENDENTS.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(
        dependents, allowed,
        "production crates must not depend on {PACKAGE}"
    );
    for dependent in ALLOWED_DEPENDENTS {
        let linked_by = normal_dependents(&metadata, dependent);
        assert!(
            linked_by.is_empty(),
            "{dependent} links {PACKAGE}, so nothing may link {dependent}; linked by {linked_by:?}"
        );
    }
}
