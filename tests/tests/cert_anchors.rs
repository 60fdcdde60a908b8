//! `kakehashi cert verify CHAIN --anchors BUNDLE` as an auditor runs it, judged against
//! `openssl verify -CAfile BUNDLE -untrusted REST` on the same question: the committed
//! development PKI under the RFC 5280 profile (valid, expired, not yet valid, at a pinned time,
//! revoked with CRLs, wrong EKU, wrong policy, unknown root, broken signature, path length),
//! chains issued here under a fresh ECDSA root for the web-PKI profile (name, IP address, EKU),
//! and the machine's own CA bundle. The verdicts (valid or not) must agree; where they
//! deliberately differ, the test says why.
//!
//! openssl is required: CI's machine image has it (`.ci/run` checks), and a test that needs it
//! fails with a message rather than passing unnoticed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use kakehashi_devpki::VALIDATION_TIME;
use kakehashi_e2e::{kakehashi, repo_root};
use kakehashi_pki::{Cert, UnixTime};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, date_time_ymd,
};
use serde_json::Value;

/// The system CA bundle of Debian and Ubuntu (the CI image), from the ca-certificates package.
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Roots of the system bundle each compared as its own chain.
const ROOTS_SAMPLED: usize = 40;

/// A time inside the validity of the chains issued here (2026-01-01 → 2027-01-01 leaves).
const WEB_TIME: &str = "2026-06-01T00:00:00Z";

const JP_POLICY_HIGH: &str = "2.25.128136148999515510376338397963583368341.2.392.3";
const JP_POLICY_SUBSTANTIAL: &str = "2.25.128136148999515510376338397963583368341.2.392.2";

// --- running both tools -------------------------------------------------------------------

/// Fails the test when openssl is missing: it is the reference these tests compare with.
fn require_openssl() {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let ok = Command::new("openssl")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            ok,
            "openssl is not installed: `cert verify --anchors` is tested against `openssl \
             verify`; install OpenSSL 3 (the `openssl` package)"
        );
    });
}

/// Epoch seconds of an RFC 3339 time, for openssl's `-attime`.
fn epoch(rfc3339: &str) -> String {
    UnixTime::parse_rfc3339(rfc3339)
        .expect("test time")
        .0
        .to_string()
}

/// Splits a PEM chain into its first certificate and the rest (each PEM text).
fn split_chain(pem: &str) -> (String, String) {
    let end = "-----END CERTIFICATE-----";
    let cut = pem.find(end).map_or(pem.len(), |i| i + end.len());
    (
        pem[..cut].trim().to_owned() + "\n",
        pem[cut..].trim().to_owned(),
    )
}

/// `openssl verify -CAfile bundle [-untrusted rest] args leaf`: true when it says OK.
fn openssl_valid(chain: &Path, bundle: &Path, args: &[&str]) -> bool {
    require_openssl();
    let root = repo_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let pem = std::fs::read_to_string(root.join(chain)).expect("read chain");
    let (leaf, rest) = split_chain(&pem);
    let leaf_path = dir.path().join("leaf.pem");
    std::fs::write(&leaf_path, leaf).expect("write leaf");
    let mut cmd = Command::new("openssl");
    cmd.current_dir(&root)
        .arg("verify")
        .arg("-CAfile")
        .arg(bundle);
    if !rest.is_empty() {
        let untrusted = dir.path().join("untrusted.pem");
        std::fs::write(&untrusted, rest + "\n").expect("write untrusted");
        cmd.arg("-untrusted").arg(untrusted);
    }
    let out = cmd
        .args(args)
        .arg(&leaf_path)
        .output()
        .expect("run openssl");
    out.status.success()
}

/// `kakehashi cert verify chain --anchors bundle args`: the verdict from the exit code (0 valid,
/// 1 not), anything else fails the test.
fn ours(chain: &Path, bundle: &Path, args: &[&str]) -> (bool, Output) {
    let chain = chain.to_str().expect("utf-8 path");
    let bundle = bundle.to_str().expect("utf-8 path");
    let mut all = vec!["cert", "verify", chain, "--anchors", bundle];
    all.extend_from_slice(args);
    let out = kakehashi(&all);
    let valid = match out.status.code() {
        Some(0) => true,
        Some(1) => false,
        other => panic!(
            "kakehashi {all:?} exited {other:?}\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    };
    (valid, out)
}

/// Both tools give `expected` on the same question, asked in each one's terms.
#[track_caller]
fn agree(chain: &Path, bundle: &Path, ours_args: &[&str], openssl_args: &[&str], expected: bool) {
    let (valid, out) = ours(chain, bundle, ours_args);
    assert_eq!(
        valid,
        expected,
        "kakehashi on {} {ours_args:?}\n{}",
        chain.display(),
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        openssl_valid(chain, bundle, openssl_args),
        expected,
        "openssl verify on {} {openssl_args:?}",
        chain.display()
    );
}

/// The deciding rule of a `--json` verdict.
fn reason_rule(out: &Output) -> String {
    let verdict: Value = serde_json::from_slice(&out.stdout).expect("JSON verdict");
    verdict["reason"]["rule"].as_str().unwrap_or("").to_owned()
}

fn p(path: &str) -> PathBuf {
    PathBuf::from(path)
}

// --- the development PKI, RFC 5280 profile -----------------------------------------------

#[test]
fn dev_pki_chains_get_the_same_verdict_from_both_tools() {
    let at = epoch(VALIDATION_TIME);
    let jp = p("certs/jp/root.pem");
    let ours_at = ["--at", VALIDATION_TIME];
    let openssl_at = ["-attime", at.as_str()];
    let cases: &[(&str, bool)] = &[
        ("certs/jp/banks/KKHAJPJ0.pem", true),
        ("certs/jp/banks/KKHBJPJ0-tls.pem", true),
        ("certs/jp/node/tls.pem", true),
        ("certs/fixtures/expired/chain.pem", false),
        ("certs/fixtures/not-yet-valid/chain.pem", false),
        ("certs/fixtures/broken-signature/chain.pem", false),
        ("certs/fixtures/path-length/chain.pem", false),
        ("certs/fixtures/unknown-root/chain.pem", false),
        // Revoked, but no CRL is given: revocation is not checked (as openssl without
        // -crl_check), and the chain is otherwise sound.
        ("certs/fixtures/revoked/chain.pem", true),
    ];
    for (chain, expected) in cases {
        agree(&p(chain), &jp, &ours_at, &openssl_at, *expected);
    }
}

#[test]
fn the_validation_time_decides_for_both_tools() {
    // JP node TLS leaf valid 2025-02-01 → 2026-02-01.
    let chain = p("certs/fixtures/node-expired/chain.pem");
    let jp = p("certs/jp/root.pem");
    for (at, expected) in [
        ("2025-06-01T00:00:00Z", true),
        ("2026-02-01T00:00:01Z", false),
        ("2025-01-31T23:59:59Z", false),
    ] {
        agree(
            &chain,
            &jp,
            &["--at", at],
            &["-attime", epoch(at).as_str()],
            expected,
        );
    }
}

#[test]
fn revocation_is_checked_on_every_certificate_when_crls_are_given() {
    let jp = p("certs/jp/root.pem");
    let at = epoch(VALIDATION_TIME);
    let both_crls = [
        "--at",
        VALIDATION_TIME,
        "--crl",
        "certs/jp/crl.pem",
        "--crl",
        "certs/jp/root-crl.pem",
    ];
    let openssl_all = [
        "-attime",
        at.as_str(),
        "-crl_check_all",
        "-CRLfile",
        "certs/jp/crl.pem",
        "-CRLfile",
        "certs/jp/root-crl.pem",
    ];
    agree(
        &p("certs/fixtures/revoked/chain.pem"),
        &jp,
        &both_crls,
        &openssl_all,
        false,
    );
    agree(
        &p("certs/fixtures/node-revoked/chain.pem"),
        &jp,
        &both_crls,
        &openssl_all,
        false,
    );
    agree(
        &p("certs/jp/banks/KKHBJPJ0.pem"),
        &jp,
        &both_crls,
        &openssl_all,
        true,
    );
    let (_, out) = ours(
        &p("certs/fixtures/revoked/chain.pem"),
        &jp,
        &[&both_crls[..], &["--json"]].concat(),
    );
    assert_eq!(reason_rule(&out), "RFC 5280 §6.3");

    // Deliberate disagreement: given only the issuing CA's CRL, openssl's -crl_check checks the
    // leaf alone and accepts, while kakehashi, once CRLs are given, requires a status for every
    // certificate below the anchor (the harness's and PKITS's convention) and finds none for
    // the issuing CA, whose CRL (the root's) is missing. openssl's -crl_check_all agrees.
    let chain = p("certs/jp/banks/KKHBJPJ0.pem");
    let leaf_crl_only = ["--at", VALIDATION_TIME, "--crl", "certs/jp/crl.pem"];
    let (valid, out) = ours(&chain, &jp, &leaf_crl_only);
    assert!(!valid, "{}", String::from_utf8_lossy(&out.stdout));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("revocation status of certificate 1 is unknown"),
        "{text}"
    );
    let crl_leaf = ["-attime", at.as_str(), "-CRLfile", "certs/jp/crl.pem"];
    assert!(openssl_valid(
        &chain,
        &jp,
        &[&crl_leaf[..], &["-crl_check"]].concat()
    ));
    assert!(!openssl_valid(
        &chain,
        &jp,
        &[&crl_leaf[..], &["-crl_check_all"]].concat()
    ));
}

#[test]
fn a_required_eku_the_leaf_lacks_is_refused_by_both() {
    let jp = p("certs/jp/root.pem");
    let at = epoch(VALIDATION_TIME);
    // A payment-signing leaf (the kakehashi EKU only) is no TLS server or client.
    let bank = p("certs/jp/banks/KKHAJPJ0.pem");
    for (eku, purpose) in [("serverAuth", "sslserver"), ("clientAuth", "sslclient")] {
        agree(
            &bank,
            &jp,
            &["--at", VALIDATION_TIME, "--eku", eku],
            &["-attime", at.as_str(), "-purpose", purpose],
            false,
        );
    }
    // The bank's participant-TLS leaf is a TLS client, not a server.
    let tls = p("certs/jp/banks/KKHAJPJ0-tls.pem");
    agree(
        &tls,
        &jp,
        &["--at", VALIDATION_TIME, "--eku", "clientAuth"],
        &["-attime", at.as_str(), "-purpose", "sslclient"],
        true,
    );
    agree(
        &tls,
        &jp,
        &["--at", VALIDATION_TIME, "--eku", "serverAuth"],
        &["-attime", at.as_str(), "-purpose", "sslserver"],
        false,
    );
    let (_, out) = ours(
        &tls,
        &jp,
        &["--at", VALIDATION_TIME, "--eku", "serverAuth", "--json"],
    );
    assert_eq!(reason_rule(&out), "RFC 5280 §4.2.1.12");
    // An EKU by OID (openssl verify takes only its named purposes, so kakehashi alone).
    let payment_signing = "2.25.128136148999515510376338397963583368341.1.1";
    let (valid, _) = ours(
        &bank,
        &jp,
        &["--at", VALIDATION_TIME, "--eku", payment_signing],
    );
    assert!(valid);
    let (valid, _) = ours(
        &p("certs/fixtures/wrong-purpose/chain.pem"),
        &jp,
        &["--at", VALIDATION_TIME, "--eku", payment_signing],
    );
    assert!(!valid);
}

#[test]
fn a_policy_asked_for_must_be_one_the_path_is_valid_for() {
    let jp = p("certs/jp/root.pem");
    let at = epoch(VALIDATION_TIME);
    let bank = p("certs/jp/banks/KKHAJPJ0.pem");
    // --policy is RFC 5280's user-initial-policy-set with initial-explicit-policy set, which
    // is openssl's -policy with -explicit_policy.
    for (policy, expected) in [(JP_POLICY_HIGH, true), (JP_POLICY_SUBSTANTIAL, false)] {
        agree(
            &bank,
            &jp,
            &["--at", VALIDATION_TIME, "--policy", policy],
            &[
                "-attime",
                at.as_str(),
                "-policy",
                policy,
                "-explicit_policy",
            ],
            expected,
        );
    }
    // Either of two suffices.
    agree(
        &bank,
        &jp,
        &[
            "--at",
            VALIDATION_TIME,
            "--policy",
            JP_POLICY_SUBSTANTIAL,
            "--policy",
            JP_POLICY_HIGH,
        ],
        &[
            "-attime",
            at.as_str(),
            "-policy",
            JP_POLICY_SUBSTANTIAL,
            "-policy",
            JP_POLICY_HIGH,
            "-explicit_policy",
        ],
        true,
    );
    let (_, out) = ours(
        &bank,
        &jp,
        &[
            "--at",
            VALIDATION_TIME,
            "--policy",
            JP_POLICY_SUBSTANTIAL,
            "--json",
        ],
    );
    let verdict: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(verdict["initial_explicit_policy"], true);
    assert_eq!(verdict["initial_policy_set"][0], JP_POLICY_SUBSTANTIAL);
    assert!(
        reason_rule(&out).starts_with("RFC 5280 §6.1.3(d)"),
        "{verdict}"
    );
}

#[test]
fn a_bundle_of_several_roots_finds_the_right_one_and_reports_what_it_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = repo_root();
    let read = |f: &str| std::fs::read_to_string(root.join(f)).expect("read root");
    let sound = dir.path().join("sound.pem");
    std::fs::write(
        &sound,
        format!(
            "{}{}{}",
            read("certs/jp/root.pem"),
            read("certs/th/root.pem"),
            read("certs/sg/root.pem")
        ),
    )
    .expect("write bundle");
    let at = epoch(VALIDATION_TIME);
    agree(
        &p("certs/sg/banks/KKHASGS0.pem"),
        &sound,
        &["--at", VALIDATION_TIME],
        &["-attime", at.as_str()],
        true,
    );

    // Deliberate disagreement: a bundle with a certificate that does not parse. openssl refuses
    // to load the whole file; kakehashi skips that certificate, uses the others and says so.
    let damaged = dir.path().join("damaged.pem");
    std::fs::write(
        &damaged,
        format!(
            "{}-----BEGIN CERTIFICATE-----\nMAMCAQU=\n-----END CERTIFICATE-----\n{}",
            read("certs/jp/root.pem"),
            read("certs/sg/root.pem")
        ),
    )
    .expect("write bundle");
    assert!(!openssl_valid(
        &p("certs/sg/banks/KKHASGS0.pem"),
        &damaged,
        &["-attime", at.as_str()]
    ));
    let (valid, out) = ours(
        &p("certs/sg/banks/KKHASGS0.pem"),
        &damaged,
        &["--at", VALIDATION_TIME],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(valid, "{text}");
    assert!(
        text.contains("(2 trust anchor(s) of 3 certificate(s), 1 skipped"),
        "{text}"
    );
    assert!(
        text.contains("<trust anchor, bundle certificate 2>"),
        "{text}"
    );
    assert!(text.contains("  bundle certificate 1: "), "{text}");
    let (_, out) = ours(
        &p("certs/sg/banks/KKHASGS0.pem"),
        &damaged,
        &["--at", VALIDATION_TIME, "--json"],
    );
    let verdict: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(verdict["anchors"]["certificates"], 3);
    assert_eq!(verdict["anchors"]["trust_anchors"], 2);
    assert_eq!(verdict["anchors"]["skipped"][0]["index"], 1);
    assert_eq!(verdict["anchor_index"], 2);
}

// --- web-PKI profile, on chains issued here ----------------------------------------------

/// A root, an intermediate and leaves issued under it, as a public CA would (ECDSA P-256,
/// key identifiers, critical basic constraints), written as PEM files in `dir`.
struct WebPki {
    dir: tempfile::TempDir,
}

impl WebPki {
    fn issue() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = |cn: &str, path_len: Option<u8>| {
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
            params.distinguished_name.push(DnType::CommonName, cn);
            params
                .distinguished_name
                .push(DnType::OrganizationName, "Kakehashi auditor test CA");
            params.is_ca = IsCa::Ca(match path_len {
                Some(n) => BasicConstraints::Constrained(n),
                None => BasicConstraints::Unconstrained,
            });
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            params.not_before = date_time_ymd(2025, 1, 1);
            params.not_after = date_time_ymd(2035, 1, 1);
            params.use_authority_key_identifier_extension = true;
            params
        };
        let key = || KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let root = CertifiedIssuer::self_signed(ca("Kakehashi Auditor Test Root", None), key())
            .expect("root");
        let issuing = CertifiedIssuer::signed_by(
            ca("Kakehashi Auditor Test Issuing CA", Some(0)),
            key(),
            &root,
        )
        .expect("issuing CA");
        let leaf = |names: &[&str], eku: ExtendedKeyUsagePurpose| {
            let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
            let mut params = CertificateParams::new(names).expect("leaf params");
            params
                .distinguished_name
                .push(DnType::CommonName, "bank.example");
            params.extended_key_usages = vec![eku];
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.not_before = date_time_ymd(2026, 1, 1);
            params.not_after = date_time_ymd(2027, 1, 1);
            params.use_authority_key_identifier_extension = true;
            params.signed_by(&key(), &issuing).expect("leaf").pem()
        };
        let write = |name: &str, text: &str| {
            std::fs::write(dir.path().join(name), text).expect("write");
        };
        write("root.pem", &root.pem());
        let issuing_pem = issuing.pem();
        let server = leaf(
            &["bank.example", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        write("server.pem", &format!("{server}{issuing_pem}"));
        let client = leaf(&["bank.example"], ExtendedKeyUsagePurpose::ClientAuth);
        write("client.pem", &format!("{client}{issuing_pem}"));
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

#[test]
fn web_pki_profile_matches_openssl_on_names_addresses_and_ekus() {
    let web = WebPki::issue();
    let root = web.path("root.pem");
    let server = web.path("server.pem");
    let at = epoch(WEB_TIME);
    let named = |name: &str, flag: &str| -> (Vec<String>, Vec<String>) {
        (
            ["--at", WEB_TIME, "--server-name", name]
                .map(String::from)
                .to_vec(),
            ["-attime", at.as_str(), "-purpose", "sslserver", flag, name]
                .map(String::from)
                .to_vec(),
        )
    };
    for (name, flag, expected) in [
        ("bank.example", "-verify_hostname", true),
        ("BANK.example", "-verify_hostname", true),
        ("other.example", "-verify_hostname", false),
        ("127.0.0.1", "-verify_ip", true),
        ("127.0.0.2", "-verify_ip", false),
    ] {
        let (a, b) = named(name, flag);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let b: Vec<&str> = b.iter().map(String::as_str).collect();
        agree(&server, &root, &a, &b, expected);
    }
    let (_, out) = ours(
        &server,
        &root,
        &["--at", WEB_TIME, "--server-name", "other.example", "--json"],
    );
    let verdict: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(verdict["profile"], "web PKI");
    assert_eq!(verdict["reason"]["cert"]["position"], 0);
    assert!(
        verdict["reason"]["rule"]
            .as_str()
            .is_some_and(|r| r.starts_with("RFC 6125 §6.4")),
        "{verdict}"
    );

    // A client-only leaf presented as a server: the web-PKI profile requires serverAuth.
    agree(
        &web.path("client.pem"),
        &root,
        &["--at", WEB_TIME, "--server-name", "bank.example"],
        &[
            "-attime",
            at.as_str(),
            "-purpose",
            "sslserver",
            "-verify_hostname",
            "bank.example",
        ],
        false,
    );
    agree(
        &web.path("client.pem"),
        &root,
        &[
            "--at",
            WEB_TIME,
            "--server-name",
            "bank.example",
            "--eku",
            "clientAuth",
        ],
        &[
            "-attime",
            at.as_str(),
            "-purpose",
            "sslclient",
            "-verify_hostname",
            "bank.example",
        ],
        true,
    );
}

#[test]
fn the_dev_pki_node_chain_under_the_web_pki_profile_matches_openssl_on_names() {
    // The node's TLS leaf names localhost, jp-node.kakehashi.test and 127.0.0.1. Its CAs sign
    // with Ed25519, which the web-PKI profile accepts as rustls-webpki does (RFC 8410).
    let chain = p("certs/jp/node/tls.pem");
    let jp = p("certs/jp/root.pem");
    let at = epoch(VALIDATION_TIME);
    for (name, flag, expected) in [
        ("localhost", "-verify_hostname", true),
        ("jp-node.kakehashi.test", "-verify_hostname", true),
        ("sg-node.kakehashi.test", "-verify_hostname", false),
        ("127.0.0.1", "-verify_ip", true),
    ] {
        agree(
            &chain,
            &jp,
            &["--at", VALIDATION_TIME, "--server-name", name],
            &["-attime", at.as_str(), "-purpose", "sslserver", flag, name],
            expected,
        );
    }
    // A bank's participant-TLS leaf is a client: refused as a server by both.
    agree(
        &p("certs/jp/banks/KKHAJPJ0-tls.pem"),
        &jp,
        &["--at", VALIDATION_TIME, "--server-name", "localhost"],
        &[
            "-attime",
            at.as_str(),
            "-purpose",
            "sslserver",
            "-verify_hostname",
            "localhost",
        ],
        false,
    );
}

// --- the machine's own CA bundle ----------------------------------------------------------

/// The system bundle, or `None` (with the reason printed) when this machine has none.
fn system_bundle() -> Option<PathBuf> {
    let path = PathBuf::from(SYSTEM_BUNDLE);
    if path.is_file() {
        Some(path)
    } else {
        eprintln!(
            "note: {SYSTEM_BUNDLE} is absent on this machine; skipping the system-bundle test"
        );
        None
    }
}

#[test]
fn every_root_of_the_system_bundle_gets_the_same_verdict_as_its_own_chain() {
    let Some(bundle) = system_bundle() else {
        return;
    };
    let text = std::fs::read_to_string(&bundle).expect("read the system bundle");
    let begin = "-----BEGIN CERTIFICATE-----";
    let blocks: Vec<String> = text
        .split(begin)
        .skip(1)
        .map(|rest| format!("{begin}{rest}"))
        .collect();
    let subjects: Vec<Option<String>> = blocks
        .iter()
        .map(|pem| {
            Cert::parse_pem_or_der_bundle(pem.as_bytes())
                .ok()
                .and_then(|certs| certs.first().map(|c| c.subject_display().to_owned()))
        })
        .collect();
    // One time for both tools, so a root cannot expire between the two runs.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let now = i64::try_from(now).expect("time");
    let at = UnixTime(now).to_rfc3339();
    let dir = tempfile::tempdir().expect("tempdir");
    // openssl looks the issuer of a self-signed leaf up by name in the store and takes the
    // first match: when the bundle holds two roots with one subject (a re-keyed root), it may
    // compare against the other and report "self-signed certificate" although the root itself
    // is in the bundle. kakehashi matches the certificate itself. Those roots are not compared.
    let unique: Vec<(usize, &String, &String)> = blocks
        .iter()
        .zip(&subjects)
        .enumerate()
        .filter_map(|(i, (pem, subject))| {
            let subject = subject.as_ref()?;
            let same = subjects.iter().flatten().filter(|s| *s == subject).count();
            (same == 1).then_some((i, pem, subject))
        })
        .collect();
    // An even sample of ROOTS_SAMPLED roots keeps the test to a few seconds (each root is two
    // processes, and the debug binary reads the whole bundle each time).
    let step = unique.len().div_ceil(ROOTS_SAMPLED).max(1);
    let unique: Vec<_> = unique.into_iter().step_by(step).collect();
    // A few workers.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    let verdicts: Vec<bool> = std::thread::scope(|scope| {
        let handles: Vec<_> = unique
            .chunks(unique.len().div_ceil(workers).max(1))
            .map(|part| {
                let (bundle, dir, at) = (&bundle, dir.path(), at.as_str());
                scope.spawn(move || {
                    part.iter()
                        .map(|(i, pem, subject)| {
                            let chain = dir.join(format!("root-{i}.pem"));
                            std::fs::write(&chain, pem).expect("write root");
                            let (valid, out) = ours(&chain, bundle, &["--at", at]);
                            let openssl =
                                openssl_valid(&chain, bundle, &["-attime", &now.to_string()]);
                            assert_eq!(
                                valid,
                                openssl,
                                "bundle certificate {i} ({subject}): kakehashi {valid}, \
                                 openssl {openssl}\n{}",
                                String::from_utf8_lossy(&out.stdout)
                            );
                            valid
                        })
                        .collect::<Vec<bool>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a worker panicked (see above)"))
            .collect()
    });
    let compared = verdicts.len();
    let valid_roots = verdicts.iter().filter(|v| **v).count();
    assert!(
        compared >= ROOTS_SAMPLED / 2 && valid_roots >= ROOTS_SAMPLED / 2,
        "a system bundle holds well over {ROOTS_SAMPLED} current roots; compared {compared}, \
         {valid_roots} valid"
    );
}

#[test]
fn a_chain_under_a_root_added_to_the_system_bundle_validates_in_both_profiles() {
    let Some(system) = system_bundle() else {
        return;
    };
    let web = WebPki::issue();
    let mut bundle = std::fs::read_to_string(&system).expect("read the system bundle");
    if !bundle.ends_with('\n') {
        bundle.push('\n');
    }
    bundle.push_str(&std::fs::read_to_string(web.path("root.pem")).expect("read root"));
    let extended = web.path("bundle.pem");
    std::fs::write(&extended, bundle).expect("write bundle");
    let server = web.path("server.pem");
    let at = epoch(WEB_TIME);
    agree(
        &server,
        &extended,
        &["--at", WEB_TIME, "--server-name", "bank.example"],
        &[
            "-attime",
            at.as_str(),
            "-purpose",
            "sslserver",
            "-verify_hostname",
            "bank.example",
        ],
        true,
    );
    agree(
        &server,
        &extended,
        &["--at", WEB_TIME],
        &["-attime", at.as_str()],
        true,
    );
    // The same chain against the bundle as shipped: no path to any of its roots.
    agree(
        &server,
        &system,
        &["--at", WEB_TIME, "--server-name", "bank.example"],
        &[
            "-attime",
            at.as_str(),
            "-purpose",
            "sslserver",
            "-verify_hostname",
            "bank.example",
        ],
        false,
    );
    let (_, out) = ours(&server, &system, &["--at", WEB_TIME, "--json"]);
    assert_eq!(reason_rule(&out), "RFC 5280 §6.1 (path to a trust anchor)");
}

// --- bad input and usage ------------------------------------------------------------------

/// Exit 2, nothing on stdout, and stderr mentioning every `needle`.
#[track_caller]
fn assert_input_error(args: &[&str], needles: &[&str]) {
    let out = kakehashi(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}\n{err}");
    assert!(out.stdout.is_empty(), "{args:?}: no verdict on bad input");
    for needle in needles {
        assert!(
            err.contains(needle),
            "{args:?}: stderr lacks {needle:?}: {err}"
        );
    }
}

#[test]
fn bad_bundles_options_and_mixed_modes_are_input_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "\n").expect("write");
    let empty = empty.to_str().expect("utf-8");
    let keys = dir.path().join("keys.pem");
    std::fs::write(
        &keys,
        std::fs::read(repo_root().join("certs/jp/root.key.pem")).expect("read key"),
    )
    .expect("write");
    let keys = keys.to_str().expect("utf-8");
    let chain = "certs/jp/banks/KKHAJPJ0.pem";
    let verify = |extra: &[&str]| -> Vec<String> {
        ["cert", "verify", chain]
            .iter()
            .chain(extra)
            .map(|s| (*s).to_owned())
            .collect()
    };
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (verify(&["--anchors", empty]), vec!["empty.pem", "empty"]),
        (
            verify(&["--anchors", keys]),
            vec!["keys.pem", "CERTIFICATE"],
        ),
        (
            verify(&["--anchors", "certs/mra.toml"]),
            vec!["certs/mra.toml", "DER"],
        ),
        (
            verify(&["--anchors", "certs/no-such-bundle.pem"]),
            vec!["certs/no-such-bundle.pem", "cannot read"],
        ),
        (
            verify(&["--anchors", "certs/jp/root.pem", "--policy", "1.2.x"]),
            vec!["--policy", "1.2.x"],
        ),
        (
            verify(&["--anchors", "certs/jp/root.pem", "--eku", "codeSign"]),
            vec!["--eku", "serverAuth, clientAuth or a dotted OID"],
        ),
        (
            verify(&[
                "--anchors",
                "certs/jp/root.pem",
                "--server-name",
                "*.example",
            ]),
            vec!["--server-name", "wildcard"],
        ),
        (
            verify(&["--anchors", "certs/jp/root.pem", "--at", "tomorrow"]),
            vec!["--at", "RFC 3339"],
        ),
        // Mixed modes and options of the other mode are usage errors (clap).
        (
            verify(&["--anchors", "certs/jp/root.pem", "--mra", "certs/mra.toml"]),
            vec!["--mra", "--anchors"],
        ),
        (
            verify(&["--anchors", "certs/jp/root.pem", "--relying", "SG"]),
            vec!["--relying"],
        ),
        (
            verify(&[
                "--mra",
                "certs/mra.toml",
                "--relying",
                "SG",
                "--purpose",
                "node-tls",
                "--server-name",
                "localhost",
            ]),
            vec!["--server-name", "--anchors"],
        ),
        (
            verify(&["--anchors", "certs/jp/root.pem", "--allow-unsigned-mra"]),
            vec!["--allow-unsigned-mra"],
        ),
    ];
    for (args, needles) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_input_error(&args, &needles);
    }
}

#[test]
fn a_garbage_chain_is_an_input_error_too() {
    assert_input_error(
        &[
            "cert",
            "verify",
            "certs/mra.toml",
            "--anchors",
            "certs/jp/root.pem",
        ],
        &["certs/mra.toml", "PEM or DER"],
    );
}

#[test]
fn the_text_verdict_shows_the_inputs_the_path_and_every_check() {
    let (valid, out) = ours(
        &p("certs/jp/banks/KKHAJPJ0.pem"),
        &p("certs/jp/root.pem"),
        &["--at", VALIDATION_TIME, "--policy", JP_POLICY_HIGH],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(valid, "{text}");
    for line in [
        "anchors    certs/jp/root.pem (1 trust anchor(s) of 1 certificate(s))",
        "profile    RFC 5280",
        "eku        none required",
        "revocation not checked (no --crl)",
        &format!("time       {VALIDATION_TIME} (from --at)"),
        &format!("policy     {JP_POLICY_HIGH}; an explicit policy is required"),
        "<trust anchor, bundle certificate 0>",
        "✓ [0] validity",
        "VALID under the RFC 5280 profile: chain to the trust anchor CN=Kakehashi JP Root CA",
    ] {
        assert!(text.contains(line), "lacks {line:?}\n{text}");
    }
    assert!(
        !text.contains("RECOGNIZED"),
        "no recognition section\n{text}"
    );

    let (valid, out) = ours(
        &p("certs/fixtures/expired/chain.pem"),
        &p("certs/jp/root.pem"),
        &["--at", VALIDATION_TIME],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!valid);
    for line in [
        "path (closest candidate; it did not validate)",
        "✗ [0] validity",
        "NOT VALID under the RFC 5280 profile",
        "  rule         RFC 5280 §6.1.3(a)(2)",
        "  certificate  [0] CN=KKHEJPJ0",
    ] {
        assert!(text.contains(line), "lacks {line:?}\n{text}");
    }
}
