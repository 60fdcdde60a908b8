//! `kakehashi sim` as a user runs it: the devnet's three nodes by default, the JSON summary,
//! a replay of the same seeds giving the same trace hash, the nodes taken from the files
//! given, and a set-up it cannot make refused with exit 2.

use kakehashi_e2e::kakehashi;

fn json(args: &[&str]) -> serde_json::Value {
    let run = kakehashi(args);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    serde_json::from_slice(&run.stdout).expect("one JSON object")
}

#[test]
fn the_default_run_simulates_the_three_devnet_nodes_and_replays_its_trace() {
    let args = [
        "sim",
        "--seeds",
        "2",
        "--seed-start",
        "7",
        "--payments",
        "20",
        "--json",
    ];
    let first = json(&args);
    for key in ["seeds", "payments", "faults", "violations", "trace_hash"] {
        assert!(first.get(key).is_some(), "{key}: {first}");
    }
    assert_eq!(first["seeds"], 2);
    assert_eq!(first["payments"], 40);
    assert_eq!(first["violations"], serde_json::json!([]));
    let again = json(&args);
    assert_eq!(
        first["trace_hash"], again["trace_hash"],
        "the same seeds replay"
    );
    // The text report names the jurisdictions it read from the configurations.
    let text = kakehashi(&["sim", "--seeds", "1", "--payments", "10"]);
    let stderr = String::from_utf8_lossy(&text.stderr);
    assert_eq!(text.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("simulating JP, SG, TH"), "{stderr}");
}

#[test]
fn the_nodes_are_the_configurations_given() {
    let two = kakehashi(&[
        "sim",
        "--seeds",
        "1",
        "--payments",
        "10",
        "--config",
        "crates/node/devnet/sg.toml",
        "--config",
        "crates/node/devnet/th.toml",
    ]);
    let stderr = String::from_utf8_lossy(&two.stderr);
    assert_eq!(two.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("simulating SG, TH"), "{stderr}");
    let one = kakehashi(&[
        "sim",
        "--seeds",
        "1",
        "--config",
        "crates/node/devnet/jp.toml",
    ]);
    let stderr = String::from_utf8_lossy(&one.stderr);
    assert_eq!(one.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("at least two node configurations"),
        "{stderr}"
    );
}
