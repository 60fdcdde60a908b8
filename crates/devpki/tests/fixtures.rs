//! Every fixture of the table (`kakehashi_devpki::FIXTURES`) against the committed files: the
//! verifier gives each its documented verdict at the pinned time, and `openssl verify` agrees on
//! the chains it can judge.

use std::process::Command;

use kakehashi_devpki::{Expected, FIXTURES, Fixture, VALIDATION_TIME};
use kakehashi_pki::cert::Cert;
use kakehashi_pki::mra::Mra;
use kakehashi_pki::{Outcome, UnixTime};

use crate::util::certs_dir;

// --- openssl agreement --------------------------------------------------------------------

/// Splits a PEM bundle into (leaf, rest) PEM texts.
fn split_chain(pem: &str) -> (String, String) {
    let end = "-----END CERTIFICATE-----";
    let cut = pem.find(end).map(|i| i + end.len()).unwrap_or(pem.len());
    (
        pem[..cut].trim().to_owned() + "\n",
        pem[cut..].trim().to_owned() + "\n",
    )
}

fn openssl_available() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Runs `openssl verify` on a fixture at the pinned time with the anchor's CRLs; true if OK.
fn openssl_verifies(fixture_chain: &str, anchor: &str) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let pem = std::fs::read_to_string(certs_dir().join(fixture_chain)).unwrap();
    let (leaf, rest) = split_chain(&pem);
    let leaf_path = dir.path().join("leaf.pem");
    let untrusted_path = dir.path().join("untrusted.pem");
    std::fs::write(&leaf_path, leaf).unwrap();
    std::fs::write(&untrusted_path, rest).unwrap();
    let at = UnixTime::parse_rfc3339(VALIDATION_TIME).unwrap().0;
    let anchor_dir = certs_dir().join(anchor);
    let output = Command::new("openssl")
        .arg("verify")
        .arg("-attime")
        .arg(at.to_string())
        .arg("-CAfile")
        .arg(anchor_dir.join("root.pem"))
        .arg("-untrusted")
        .arg(&untrusted_path)
        .arg("-crl_check_all")
        .arg("-CRLfile")
        .arg(anchor_dir.join("crl.pem"))
        .arg("-CRLfile")
        .arg(anchor_dir.join("root-crl.pem"))
        .arg(&leaf_path)
        .output()
        .expect("run openssl");
    output.status.success()
}

#[test]
fn openssl_agrees_on_every_chain_it_can_judge() {
    if !openssl_available() {
        eprintln!("note: openssl is not installed; skipping the openssl agreement check");
        return;
    }
    for fixture in FIXTURES {
        if fixture.anchor.is_empty() {
            continue;
        }
        let anchor = fixture.anchor.to_ascii_lowercase();
        // openssl knows RFC 5280 but not the MRA's purposes, levels or rows, so it should accept
        // exactly the chains whose only fault (if any) is an MRA rule or a private EKU.
        let path_valid = matches!(
            fixture.expected,
            Expected::Recognized
                | Expected::PurposeNotRecognized
                | Expected::LevelBelowMinimum
                | Expected::WrongPurpose
        );
        assert_eq!(
            openssl_verifies(fixture.chain, &anchor),
            path_valid,
            "openssl disagrees on fixture {} ({})",
            fixture.name,
            fixture.chain
        );
    }
}

// --- Recognition of every fixture ---------------------------------------------------------

#[track_caller]
fn check(fixture: &Fixture, mra: &Mra) {
    let bytes = std::fs::read(certs_dir().join(fixture.chain)).unwrap();
    let chain = Cert::parse_pem_or_der_bundle(&bytes).unwrap();
    let (leaf, intermediates) = chain.split_first().unwrap();
    let time = UnixTime::parse_rfc3339(VALIDATION_TIME).unwrap();
    let verdict = mra.recognize(
        fixture.relying,
        fixture.purpose,
        leaf,
        intermediates,
        &[],
        time,
    );
    let json = serde_json::to_string_pretty(&verdict).unwrap();
    assert_eq!(
        verdict.recognized(),
        fixture.expected == Expected::Recognized,
        "fixture {}: {json}",
        fixture.name
    );
    let expected_anchor = (!fixture.anchor.is_empty()).then(|| fixture.anchor.to_owned());
    if fixture.expected == Expected::Recognized {
        assert!(verdict.reason().is_none(), "{json}");
        assert_eq!(
            verdict.anchor_jurisdiction(),
            expected_anchor.as_deref(),
            "{json}"
        );
        assert_eq!(verdict.clause(), Some(fixture.rule().as_str()), "{json}");
        assert!(
            verdict.level_reached() >= verdict.level_required(),
            "{json}"
        );
        assert!(
            verdict.checks().iter().all(|c| c.outcome != Outcome::Fail),
            "{json}"
        );
        assert_eq!(verdict.path().len(), 3, "leaf, issuing CA, root: {json}");
    } else {
        let reason = verdict.reason().expect("a failing verdict has a reason");
        assert_eq!(
            reason.rule,
            fixture.rule(),
            "fixture {}: {json}",
            fixture.name
        );
        assert!(
            verdict.checks().iter().any(|c| c.outcome == Outcome::Fail),
            "{json}"
        );
        // MRA refusals happen on a validated path, so the anchor is known; path failures
        // have none.
        if reason.rule.starts_with("MRA") {
            assert_eq!(
                verdict.anchor_jurisdiction(),
                expected_anchor.as_deref(),
                "{json}"
            );
        } else {
            assert_eq!(verdict.anchor_jurisdiction(), None, "{json}");
        }
    }
}

#[test]
fn every_fixture_gets_its_documented_verdict_at_the_pinned_time() {
    let mra = Mra::load(&certs_dir().join("mra.toml")).unwrap();
    for fixture in FIXTURES {
        check(fixture, &mra);
    }
}
