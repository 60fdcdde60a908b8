use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, date_time_ymd,
};

use super::*;
use crate::UnixTime;
use crate::purpose::{EKU_CLIENT_AUTH, EKU_SERVER_AUTH};
use crate::validate::PeerName;

/// 2030-06-01T00:00:00Z, inside every test certificate's validity.
const NOW: UnixTime = UnixTime(1_906_502_400);

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = date_time_ymd(2025, 1, 1);
    params.not_after = date_time_ymd(2040, 1, 1);
    params.use_authority_key_identifier_extension = true;
    params
}

fn root(cn: &str) -> CertifiedIssuer<'static, KeyPair> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    CertifiedIssuer::self_signed(ca_params(cn), key).unwrap()
}

fn leaf(issuer: &CertifiedIssuer<'static, KeyPair>, dns: &str) -> Cert {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(vec![dns.to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, dns);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.not_before = date_time_ymd(2026, 1, 1);
    params.not_after = date_time_ymd(2031, 1, 1);
    params.use_authority_key_identifier_extension = true;
    Cert::from_der(params.signed_by(&key, issuer).unwrap().der()).unwrap()
}

fn pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

#[test]
fn an_unparsable_anchor_is_skipped_and_counted_not_fatal() {
    let a = root("Root A");
    let b = root("Root B");
    let garbage = pem(b"\x30\x03\x02\x01\x05");
    let text = format!(
        "# a comment line, as distribution bundles carry\n{}{garbage}{}",
        pem(a.der()),
        pem(b.der())
    );
    let bundle = AnchorBundle::parse(text.as_bytes()).unwrap();
    assert_eq!(bundle.anchors().len(), 2);
    assert_eq!(bundle.total(), 3);
    assert_eq!(bundle.skipped().len(), 1);
    assert_eq!(bundle.skipped()[0].index, 1);
    assert_eq!(bundle.file_index(1), Some(2), "Root B is the file's third");

    let verdict = verify_with_anchors(
        &leaf(&b, "bank.example"),
        &[],
        &bundle,
        &[],
        &ValidationOptions::new(NOW),
    );
    assert!(verdict.valid(), "{verdict:?}");
    assert_eq!(verdict.anchor_index(), Some(2));
    assert_eq!(verdict.path().len(), 2);
}

#[test]
fn a_bundle_with_nothing_usable_is_an_error_with_the_reason() {
    assert_eq!(AnchorBundle::parse(b" \n").unwrap_err(), BundleError::Empty);
    let key = "-----BEGIN PRIVATE KEY-----\naGVsbG8=\n-----END PRIVATE KEY-----\n";
    assert_eq!(
        AnchorBundle::parse(key.as_bytes()).unwrap_err(),
        BundleError::NoCertificate
    );
    let garbage = pem(b"\x30\x03\x02\x01\x05");
    assert!(matches!(
        AnchorBundle::parse(garbage.as_bytes()).unwrap_err(),
        BundleError::NoUsableAnchor { total: 1, .. }
    ));
    let open = "-----BEGIN CERTIFICATE-----\nMIIB\n";
    assert!(matches!(
        AnchorBundle::parse(open.as_bytes()).unwrap_err(),
        BundleError::Pem(_)
    ));
    assert!(matches!(
        AnchorBundle::parse(b"\x30\x03\x02\x01\x05").unwrap_err(),
        BundleError::Der(_)
    ));
}

#[test]
fn der_bundles_are_read_whole() {
    let a = root("Root A");
    let bundle = AnchorBundle::parse(a.der()).unwrap();
    assert_eq!(bundle.anchors().len(), 1);
    assert!(bundle.skipped().is_empty());
}

#[test]
fn an_anchor_given_as_the_chain_is_its_own_one_certificate_path() {
    let a = root("Root A");
    let bundle = AnchorBundle::parse(pem(a.der()).as_bytes()).unwrap();
    let itself = Cert::from_der(a.der()).unwrap();
    let verdict = verify_with_anchors(&itself, &[], &bundle, &[], &ValidationOptions::new(NOW));
    assert!(verdict.valid(), "{verdict:?}");
    assert!(verdict.leaf_is_anchor());
    assert_eq!(verdict.path().len(), 1);
    // Still judged: an anchor is not valid outside its own validity period.
    let late = verify_with_anchors(
        &itself,
        &[],
        &bundle,
        &[],
        &ValidationOptions::new(UnixTime(NOW.0 + 20 * 365 * 86_400)),
    );
    assert!(!late.valid());
    assert_eq!(
        late.reason().map(|r| r.rule.as_str()),
        Some("RFC 5280 §6.1.3(a)(2)")
    );
    // verify_chain alone keeps refusing an anchor presented as the leaf.
    assert!(
        verify_chain(
            &itself,
            &[],
            bundle.anchors(),
            &CrlSet::new(),
            &ValidationOptions::new(NOW)
        )
        .is_err()
    );
}

#[test]
fn the_web_pki_profile_checks_the_name_and_the_eku() {
    let a = root("Root A");
    let bundle = AnchorBundle::parse(pem(a.der()).as_bytes()).unwrap();
    let server = leaf(&a, "bank.example");
    let mut opts = ValidationOptions::new(NOW);
    opts.profile = Profile::WebPki;
    opts.required_ekus = vec![EKU_SERVER_AUTH.to_owned()];
    opts.peer_name = Some(PeerName::Dns("bank.example".into()));
    let verdict = verify_with_anchors(&server, &[], &bundle, &[], &opts);
    assert!(verdict.valid(), "{verdict:?}");
    assert_eq!(verdict.profile(), "web PKI");

    opts.peer_name = Some(PeerName::Dns("other.example".into()));
    let verdict = verify_with_anchors(&server, &[], &bundle, &[], &opts);
    assert_eq!(
        verdict.reason().map(|r| r.rule.as_str()),
        Some("RFC 6125 §6.4, RFC 9525 §6.3")
    );
    let cert = verdict.reason().and_then(|r| r.cert.as_ref());
    assert_eq!(cert.map(|c| c.position), Some(0));

    opts.peer_name = Some(PeerName::Dns("bank.example".into()));
    opts.required_ekus = vec![EKU_CLIENT_AUTH.to_owned()];
    let verdict = verify_with_anchors(&server, &[], &bundle, &[], &opts);
    assert!(!verdict.valid());
    assert!(
        verdict
            .checks()
            .iter()
            .any(|c| c.outcome == crate::Outcome::Fail),
        "the failure is among the checks: {verdict:?}"
    );
}

#[test]
fn an_unusable_crl_is_a_failing_check_not_a_pass() {
    let a = root("Root A");
    let bundle = AnchorBundle::parse(pem(a.der()).as_bytes()).unwrap();
    let verdict = verify_with_anchors(
        &leaf(&a, "bank.example"),
        &[],
        &bundle,
        &[b"not a CRL".to_vec()],
        &ValidationOptions::new(NOW),
    );
    assert!(!verdict.valid());
    assert_eq!(
        verdict.reason().map(|r| r.rule.as_str()),
        Some("RFC 5280 §5.1")
    );
}
