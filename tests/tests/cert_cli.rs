//! `kakehashi cert verify` and `kakehashi cert inspect` as an auditor runs them: the real
//! binary on the committed development PKI (`certs/`), with the validation time pinned to the
//! one the fixture table documents.

use std::path::Path;
use std::process::Output;

use kakehashi_devpki::{Expected, FIXTURES, Fixture, VALIDATION_TIME};
use kakehashi_e2e::{kakehashi, repo_root};
use serde_json::Value;

const MRA: &str = "certs/mra.toml";

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn chain_path(fixture: &Fixture) -> String {
    format!("certs/{}", fixture.chain)
}

fn verify(chain: &str, relying: &str, purpose: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "cert",
        "verify",
        chain,
        "--mra",
        MRA,
        "--relying",
        relying,
        "--purpose",
        purpose,
        "--at",
        VALIDATION_TIME,
    ];
    args.extend_from_slice(extra);
    kakehashi(&args)
}

/// True when a check line carries the fail mark.
fn has_failed_check(text: &str) -> bool {
    text.lines().any(|l| l.starts_with("  ✗ "))
}

#[track_caller]
fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
}

/// Asserts an input error: exit 2, nothing on stdout, and stderr mentioning every `needle`.
#[track_caller]
fn assert_input_error(out: &Output, needles: &[&str]) {
    assert_exit(out, 2);
    assert!(
        out.stdout.is_empty(),
        "no verdict on bad input: {}",
        stdout(out)
    );
    let err = stderr(out);
    assert!(err.starts_with("error: "), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "stderr lacks {needle:?}: {err}");
    }
}

// --- cert verify: the fixture table -------------------------------------------------------

#[test]
fn every_fixture_gets_its_documented_verdict_as_json() {
    assert!(FIXTURES.len() >= 15, "the fixture table lists every case");
    for fixture in FIXTURES {
        let out = verify(
            &chain_path(fixture),
            fixture.relying,
            fixture.purpose.as_str(),
            &["--json"],
        );
        let recognized = fixture.expected == Expected::Recognized;
        assert_exit(&out, if recognized { 0 } else { 1 });
        let verdict: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{}: JSON verdict: {e}", fixture.name));
        let name = fixture.name;
        assert_eq!(verdict["recognized"], recognized, "{name}");
        assert_eq!(verdict["relying"], fixture.relying, "{name}");
        assert_eq!(verdict["purpose"], fixture.purpose.as_str(), "{name}");
        assert_eq!(verdict["time"], VALIDATION_TIME, "{name}");
        assert_eq!(verdict["time_source"], "--at", "{name}");
        assert_eq!(verdict["chain_file"], chain_path(fixture), "{name}");
        let checks = verdict["checks"].as_array().expect("checks");
        if recognized {
            assert_eq!(verdict["clause"], fixture.rule().as_str(), "{name}");
            assert_eq!(verdict["anchor_jurisdiction"], fixture.anchor, "{name}");
            assert!(verdict["reason"].is_null(), "{name}");
            assert!(
                checks.iter().all(|c| c["outcome"] != "fail"),
                "{name}: a recognized chain has no failed check"
            );
            let path = verdict["path"].as_array().expect("path");
            assert!(path.len() >= 2, "{name}: leaf to anchor");
            assert_eq!(path[0]["position"], 0, "{name}");
        } else {
            assert_eq!(verdict["reason"]["rule"], fixture.rule().as_str(), "{name}");
            assert!(
                checks
                    .iter()
                    .any(|c| c["outcome"] == "fail" && c["rule"] == fixture.rule().as_str()),
                "{name}: the deciding rule appears as a failed check"
            );
        }
    }
}

#[test]
fn every_fixture_gets_its_documented_verdict_as_text() {
    for fixture in FIXTURES {
        let out = verify(
            &chain_path(fixture),
            fixture.relying,
            fixture.purpose.as_str(),
            &[],
        );
        let name = fixture.name;
        let text = stdout(&out);
        assert!(
            text.contains(&format!("time       {VALIDATION_TIME} (from --at)")),
            "{name}: says which time was used\n{text}"
        );
        assert!(
            text.contains(&fixture.rule()),
            "{name}: cites the rule\n{text}"
        );
        if fixture.expected == Expected::Recognized {
            assert_exit(&out, 0);
            assert!(
                text.contains(&format!(
                    "RECOGNIZED by {} for {}",
                    fixture.relying, fixture.purpose
                )),
                "{name}\n{text}"
            );
            assert!(
                text.contains(&format!("<trust anchor of {}>", fixture.anchor)),
                "{name}\n{text}"
            );
            assert!(!has_failed_check(&text), "{name}: no failed check\n{text}");
        } else {
            assert_exit(&out, 1);
            assert!(
                text.contains(&format!(
                    "NOT RECOGNIZED by {} for {}",
                    fixture.relying, fixture.purpose
                )),
                "{name}\n{text}"
            );
            assert!(
                has_failed_check(&text),
                "{name}: marks the failed check\n{text}"
            );
            assert!(
                text.contains(&format!("  rule         {}", fixture.rule())),
                "{name}\n{text}"
            );
        }
    }
}

#[test]
fn recognized_chain_prints_the_path_as_a_tree_and_the_deciding_row() {
    let out = verify("certs/jp/banks/KKHAJPJ0.pem", "SG", "payment-signing", &[]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    let leaf = text.find("[0] CN=KKHAJPJ0").expect("leaf line");
    let issuing = text
        .find("└─ [1] CN=Kakehashi JP Issuing CA 1")
        .expect("issuing line");
    let root = text
        .find("└─ [2] CN=Kakehashi JP Root CA")
        .expect("anchor line");
    assert!(
        leaf < issuing && issuing < root,
        "leaf → issuing → anchor\n{text}"
    );
    assert!(text.contains("<trust anchor of JP>"), "{text}");
    assert!(text.contains("✓ [0] validity"), "{text}");
    assert!(text.contains("(MRA §level)"), "{text}");
    assert!(
        text.contains("under MRA §recognition.SG-recognizes-JP; assurance level high reached, substantial required"),
        "{text}"
    );
    assert!(
        text.contains("row SG-recognizes-JP: SG recognizes JP for"),
        "{text}"
    );
}

#[test]
fn refused_chain_names_the_certificate_and_why() {
    let out = verify(
        "certs/fixtures/expired/chain.pem",
        "SG",
        "payment-signing",
        &[],
    );
    assert_exit(&out, 1);
    let text = stdout(&out);
    assert!(
        text.contains("  certificate  [0] CN=KKHEJPJ0 expired"),
        "{text}"
    );
    assert!(text.contains("expired at 2025-12-31T23:59:59Z"), "{text}");
    assert!(text.contains("✗ [0] validity"), "{text}");
}

#[test]
fn the_same_chain_is_recognized_for_one_purpose_and_not_another() {
    // A bank's payment-signing certificate does not serve node TLS (RFC 5280 §4.2.1.12).
    let out = verify("certs/jp/banks/KKHAJPJ0.pem", "SG", "node-tls", &["--json"]);
    assert_exit(&out, 1);
    let verdict: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(verdict["reason"]["rule"], "RFC 5280 §4.2.1.12");
}

#[test]
fn extra_crl_files_are_read_in_pem() {
    let out = verify(
        "certs/fixtures/revoked/chain.pem",
        "SG",
        "payment-signing",
        &["--crl", "certs/jp/crl.pem", "--json"],
    );
    assert_exit(&out, 1);
    let verdict: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(verdict["reason"]["rule"], "RFC 5280 §6.3");
    let out = verify(
        "certs/jp/banks/KKHBJPJ0.pem",
        "SG",
        "payment-signing",
        &["--crl", "certs/jp/crl.pem"],
    );
    assert_exit(&out, 0);
}

#[test]
fn untrusted_intermediates_can_come_from_another_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = std::fs::read_to_string(repo_root().join("certs/jp/banks/KKHAJPJ0.pem"))
        .expect("read bundle");
    let end = "-----END CERTIFICATE-----";
    let split = bundle.find(end).expect("first certificate") + end.len();
    let leaf = dir.path().join("leaf.pem");
    std::fs::write(&leaf, &bundle[..split]).expect("write leaf");
    let leaf = leaf.to_str().expect("utf-8 path");

    let alone = verify(leaf, "SG", "payment-signing", &["--json"]);
    assert_exit(&alone, 1);
    let verdict: Value = serde_json::from_slice(&alone.stdout).expect("json");
    assert_eq!(
        verdict["reason"]["rule"],
        "RFC 5280 §6.1 (path to a trust anchor)"
    );

    let with_pool = verify(
        leaf,
        "SG",
        "payment-signing",
        &["--untrusted", "certs/jp/issuing.pem"],
    );
    assert_exit(&with_pool, 0);
}

#[test]
fn default_time_is_now_and_the_output_says_so() {
    let out = kakehashi(&[
        "cert",
        "verify",
        "certs/jp/banks/KKHAJPJ0.pem",
        "--mra",
        MRA,
        "--relying",
        "SG",
        "--purpose",
        "payment-signing",
        "--json",
    ]);
    // The verdict depends on today's date, so only how the time was chosen is asserted.
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stderr(&out));
    let verdict: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(verdict["time_source"], "the system clock");
    assert_ne!(verdict["time"], VALIDATION_TIME);
}

// --- cert verify: bad input ---------------------------------------------------------------

#[test]
fn missing_chain_file_is_an_input_error() {
    let out = verify("certs/no-such-chain.pem", "SG", "payment-signing", &[]);
    assert_input_error(&out, &["certs/no-such-chain.pem", "cannot read"]);
}

#[test]
fn garbage_chain_file_is_an_input_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "this is not a certificate\n").expect("write");
    let out = verify(
        garbage.to_str().expect("utf-8"),
        "SG",
        "payment-signing",
        &[],
    );
    assert_input_error(&out, &["garbage.pem", "PEM or DER"]);
}

#[test]
fn corrupt_certificate_in_a_bundle_is_named_by_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = std::fs::read_to_string(repo_root().join("certs/jp/banks/KKHAJPJ0.pem"))
        .expect("read bundle");
    // Damage the base64 body of the second certificate.
    let second = bundle
        .rfind("-----BEGIN CERTIFICATE-----")
        .expect("second block");
    let body = second + "-----BEGIN CERTIFICATE-----\n".len();
    let mut damaged = bundle.clone();
    damaged.replace_range(body..body + 8, "AAAAAAAA");
    let path = dir.path().join("damaged.pem");
    std::fs::write(&path, damaged).expect("write");
    let out = verify(path.to_str().expect("utf-8"), "SG", "payment-signing", &[]);
    assert_input_error(&out, &["damaged.pem", "certificate 1"]);

    let out = kakehashi(&["cert", "inspect", path.to_str().expect("utf-8")]);
    assert_input_error(&out, &["damaged.pem", "certificate 1"]);
}

#[test]
fn bad_time_is_an_input_error() {
    let out = kakehashi(&[
        "cert",
        "verify",
        "certs/jp/banks/KKHAJPJ0.pem",
        "--mra",
        MRA,
        "--relying",
        "SG",
        "--purpose",
        "payment-signing",
        "--at",
        "2027-01-01 00:00",
    ]);
    assert_input_error(&out, &["--at", "RFC 3339"]);
}

#[test]
fn unknown_relying_party_and_purpose_are_input_errors() {
    let out = verify("certs/jp/banks/KKHAJPJ0.pem", "XX", "payment-signing", &[]);
    assert_input_error(&out, &["XX", "JP, SG, TH"]);
    let out = verify("certs/jp/banks/KKHAJPJ0.pem", "SG", "signing", &[]);
    assert_input_error(&out, &["signing", "payment-signing"]);
}

#[test]
fn missing_required_flag_is_a_usage_error() {
    let out = kakehashi(&["cert", "verify", "certs/jp/banks/KKHAJPJ0.pem"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("--mra"), "{}", stderr(&out));
}

/// The committed agreement with its `[[signature]]` tables removed and file references made
/// absolute, written to `dir`.
fn unsigned_agreement(dir: &Path) -> String {
    let certs = repo_root().join("certs");
    let text = std::fs::read_to_string(certs.join("mra.toml")).expect("read mra.toml");
    let cut = text.find("[[signature]]").expect("signed agreement");
    let mut unsigned = text[..cut].to_owned();
    for party in ["jp", "sg", "th"] {
        unsigned = unsigned.replace(
            &format!("\"{party}/"),
            &format!("\"{}/{party}/", certs.display()),
        );
    }
    let path = dir.join("unsigned.toml");
    std::fs::write(&path, unsigned).expect("write");
    path.to_str().expect("utf-8").to_owned()
}

#[test]
fn unsigned_agreement_is_refused_unless_explicitly_allowed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mra = unsigned_agreement(dir.path());
    let base = [
        "cert",
        "verify",
        "certs/jp/banks/KKHAJPJ0.pem",
        "--mra",
        mra.as_str(),
        "--relying",
        "SG",
        "--purpose",
        "payment-signing",
        "--at",
        VALIDATION_TIME,
    ];
    let out = kakehashi(&base);
    assert_input_error(
        &out,
        &["not signed", "--allow-unsigned-mra", "kakehashi mra sign"],
    );

    let mut allowed = base.to_vec();
    allowed.push("--allow-unsigned-mra");
    let out = kakehashi(&allowed);
    assert_exit(&out, 0);
    assert!(stderr(&out).contains("WARNING"), "{}", stderr(&out));
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.starts_with("  · ") && l.contains("agreement-signatures")),
        "the signature check is marked not applicable\n{}",
        stdout(&out)
    );
}

#[test]
fn malformed_agreement_is_an_input_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, "version = \n").expect("write");
    let out = kakehashi(&[
        "cert",
        "verify",
        "certs/jp/banks/KKHAJPJ0.pem",
        "--mra",
        path.to_str().expect("utf-8"),
        "--relying",
        "SG",
        "--purpose",
        "payment-signing",
    ]);
    assert_input_error(&out, &["broken.toml"]);
}

// --- cert inspect ---------------------------------------------------------------------------

#[test]
fn inspect_prints_every_certificate_of_a_bundle() {
    let out = kakehashi(&["cert", "inspect", "certs/jp/node/tls.pem"]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    // One section per certificate, in bundle order: the leaf, then its issuing CA. Each
    // assertion looks only at the section of the certificate it is about.
    let (leaf, issuer) = text
        .split_once("certificate 1 of 2")
        .unwrap_or_else(|| panic!("two sections expected:\n{text}"));
    assert!(leaf.starts_with("certificate 0 of 2"), "{text}");
    assert!(
        leaf.contains("subject              CN=jp-node.kakehashi.test,"),
        "{leaf}"
    );
    assert!(
        leaf.contains("serverAuth (1.3.6.1.5.5.7.3.1), clientAuth (1.3.6.1.5.5.7.3.2)"),
        "{leaf}"
    );
    assert!(leaf.contains("dNSName localhost"), "{leaf}");
    assert!(leaf.contains("iPAddress 127.0.0.1"), "{leaf}");
    assert!(
        leaf.contains("kakehashi JP assurance substantial"),
        "{leaf}"
    );
    assert!(
        leaf.contains("keyUsage             digitalSignature (critical)"),
        "{leaf}"
    );
    assert!(
        leaf.contains("basicConstraints     not a CA (critical)"),
        "{leaf}"
    );
    // The node's TLS leaf is ECDSA P-256 (what BoringSSL-based gRPC clients can verify in a
    // handshake), signed by its Ed25519 issuing CA.
    assert!(
        leaf.contains("public key           P-256 (256 bits)"),
        "{leaf}"
    );
    assert!(!leaf.contains("public key           Ed25519"), "{leaf}");
    assert!(leaf.contains("signature            Ed25519"), "{leaf}");
    assert!(
        issuer.contains("subject              CN=Kakehashi JP Issuing CA 1,"),
        "{issuer}"
    );
    assert!(issuer.contains("CA, pathLen 0 (critical)"), "{issuer}");
    assert!(
        issuer.contains("public key           Ed25519 (256 bits)"),
        "{issuer}"
    );
}

#[test]
fn inspect_json_names_kakehashi_ekus_and_critical_flags() {
    let out = kakehashi(&["cert", "inspect", "--json", "certs/jp/banks/KKHAJPJ0.pem"]);
    assert_exit(&out, 0);
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
    let certs = doc["certificates"].as_array().expect("certificates");
    assert_eq!(certs.len(), 2);
    let leaf = &certs[0];
    assert_eq!(
        leaf["subject"].as_str().map(|s| s.contains("CN=KKHAJPJ0")),
        Some(true)
    );
    assert_eq!(
        leaf["extended_key_usage"][0]["name"],
        "kakehashi payment-signing"
    );
    assert_eq!(leaf["basic_constraints"]["ca"], false);
    assert_eq!(leaf["key_usage"][0], "digitalSignature");
    let sha = leaf["sha256"].as_str().expect("fingerprint");
    assert_eq!(sha.len(), 32 * 3 - 1, "colon-separated SHA-256");
    let basic = leaf["extensions"]
        .as_array()
        .expect("extensions")
        .iter()
        .find(|e| e["name"] == "basicConstraints")
        .expect("basicConstraints listed");
    assert_eq!(basic["critical"], true);
    assert_eq!(certs[1]["basic_constraints"]["ca"], true);
}

#[test]
fn inspect_reads_der() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pem = std::fs::read_to_string(repo_root().join("certs/jp/root.pem")).expect("read");
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    // Decode through the binary's own PEM path first to get the expected fingerprint.
    let from_pem: Value = serde_json::from_slice(
        &kakehashi(&["cert", "inspect", "--json", "certs/jp/root.pem"]).stdout,
    )
    .expect("json");
    let der = base64_decode(&body);
    let path = dir.path().join("root.der");
    std::fs::write(&path, der).expect("write");
    let out = kakehashi(&["cert", "inspect", "--json", path.to_str().expect("utf-8")]);
    assert_exit(&out, 0);
    let from_der: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        from_der["certificates"][0]["sha256"],
        from_pem["certificates"][0]["sha256"]
    );
    assert_eq!(from_der["certificates"][0]["self_issued"], true);
}

#[test]
fn inspect_of_a_missing_or_garbage_file_is_an_input_error() {
    let out = kakehashi(&["cert", "inspect", "certs/nothing-here.pem"]);
    assert_input_error(&out, &["certs/nothing-here.pem"]);
    let out = kakehashi(&["cert", "inspect", "certs/mra.toml"]);
    assert_input_error(&out, &["certs/mra.toml", "PEM or DER"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, b"").expect("write");
    let out = kakehashi(&["cert", "inspect", empty.to_str().expect("utf-8")]);
    assert_input_error(&out, &["empty.pem", "is empty"]);
}

/// Standard base64 (RFC 4648 §4), enough for a test fixture.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        other => panic!("not base64: {other}"),
    };
    let mut out = Vec::new();
    for quad in text.as_bytes().chunks(4) {
        let symbols: Vec<u8> = quad.iter().copied().filter(|c| *c != b'=').collect();
        let mut n = 0u32;
        for &c in &symbols {
            n = (n << 6) | u32::from(value(c));
        }
        n <<= 6 * (4 - symbols.len());
        out.extend_from_slice(&n.to_be_bytes()[1..symbols.len()]);
    }
    out
}
