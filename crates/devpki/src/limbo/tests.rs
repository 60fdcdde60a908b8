use super::*;

#[test]
fn maps_limbo_usage_names() {
    assert_eq!(
        eku_oids(&["serverAuth".into()]).unwrap(),
        vec![EKU_SERVER_AUTH.to_owned()]
    );
    assert!(eku_oids(&["bogus".into()]).is_err());
    assert_eq!(
        key_usage_bits(&["digitalSignature".into(), "keyCertSign".into()]).unwrap(),
        KeyUsage::DIGITAL_SIGNATURE | KeyUsage::KEY_CERT_SIGN
    );
}

#[test]
fn summary_counts_wrong_accepts_separately() {
    let case = |id: &str, expected| Testcase {
        id: id.into(),
        validation_kind: "SERVER".into(),
        trusted_certs: vec![],
        untrusted_intermediates: vec![],
        peer_certificate: String::new(),
        validation_time: None,
        key_usage: vec![],
        extended_key_usage: vec![],
        expected_result: expected,
        expected_peer_name: None,
        chain_depth_max: None,
        crls: vec![],
        pkits_settings: None,
    };
    let file = LimboFile {
        version: 1,
        testcases: vec![
            case("a", CaseOutcome::Failure),
            case("b", CaseOutcome::Success),
            case("c", CaseOutcome::Failure),
            case("d", CaseOutcome::Success),
        ],
    };
    let result = |id: &str, actual| CaseResult {
        id: id.into(),
        actual_result: actual,
        context: String::new(),
    };
    let results = [
        result("a", CaseOutcome::Success),
        result("b", CaseOutcome::Failure),
        result("c", CaseOutcome::Failure),
        result("d", CaseOutcome::Skipped),
    ];
    let s = summarize(&file, &results);
    assert_eq!(
        (s.passed, s.wrong_accepts, s.wrong_rejects, s.skipped),
        (1, 1, 1, 1)
    );
}

/// A root and a server leaf for `name`, as limbo PEM strings.
fn server_chain(name: &str) -> (String, String) {
    let root_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut root = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    root.distinguished_name
        .push(rcgen::DnType::OrganizationName, "Limbo Test Root");
    root.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    root.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    root.not_before = rcgen::date_time_ymd(2025, 1, 1);
    root.not_after = rcgen::date_time_ymd(2030, 1, 1);
    let root_pem = root.self_signed(&root_key).unwrap().pem();
    let leaf_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let mut leaf = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
    leaf.distinguished_name = rcgen::DistinguishedName::new();
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    leaf.not_before = rcgen::date_time_ymd(2025, 1, 1);
    leaf.not_after = rcgen::date_time_ymd(2030, 1, 1);
    let issuer = rcgen::Issuer::new(root, root_key);
    (root_pem, leaf.signed_by(&leaf_key, &issuer).unwrap().pem())
}

fn server_case(root: &str, leaf: &str, peer: &str, time: &str) -> Testcase {
    Testcase {
        id: "generated".into(),
        validation_kind: "SERVER".into(),
        trusted_certs: vec![root.to_owned()],
        untrusted_intermediates: vec![],
        peer_certificate: leaf.to_owned(),
        validation_time: Some(time.into()),
        key_usage: vec![],
        extended_key_usage: vec![],
        expected_result: CaseOutcome::Success,
        expected_peer_name: Some(LimboPeerName {
            kind: "DNS".into(),
            value: peer.into(),
        }),
        chain_depth_max: None,
        crls: vec![],
        pkits_settings: None,
    }
}

#[test]
fn server_case_succeeds_for_its_name_and_fails_for_another_or_when_expired() {
    let (root, leaf) = server_chain("node.example.jp");
    let ok = run_case(
        &server_case(&root, &leaf, "node.example.jp", "2026-01-01T00:00:00Z"),
        UnixTime(0),
    );
    assert_eq!(ok.actual_result, CaseOutcome::Success, "{}", ok.context);
    let other = run_case(
        &server_case(&root, &leaf, "node.example.sg", "2026-01-01T00:00:00Z"),
        UnixTime(0),
    );
    assert_eq!(other.actual_result, CaseOutcome::Failure);
    assert!(
        other.context.contains("node.example.sg"),
        "{}",
        other.context
    );
    let late = run_case(
        &server_case(&root, &leaf, "node.example.jp", "2031-01-01T00:00:00Z"),
        UnixTime(0),
    );
    assert_eq!(late.actual_result, CaseOutcome::Failure);
    assert!(late.context.contains("expired"), "{}", late.context);
}

#[test]
fn missing_validation_time_uses_the_callers_time() {
    let (root, leaf) = server_chain("node.example.jp");
    let mut case = server_case(&root, &leaf, "node.example.jp", "");
    case.validation_time = None;
    let in_window = UnixTime::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
    assert_eq!(
        run_case(&case, in_window).actual_result,
        CaseOutcome::Success
    );
    assert_eq!(
        run_case(&case, UnixTime(0)).actual_result,
        CaseOutcome::Failure
    );
}

#[test]
fn parse_file_rejects_other_versions() {
    assert!(matches!(
        parse_file(br#"{"version": 2, "testcases": []}"#),
        Err(LimboError::Version(2))
    ));
    assert_eq!(
        parse_file(br#"{"version": 1, "testcases": []}"#)
            .unwrap()
            .testcases
            .len(),
        0
    );
    assert!(parse_file(b"[]").is_err());
}

#[test]
fn an_unparseable_leaf_is_a_failure_with_context() {
    let case = Testcase {
        id: "x".into(),
        validation_kind: "SERVER".into(),
        trusted_certs: vec![],
        untrusted_intermediates: vec![],
        peer_certificate: "not pem".into(),
        validation_time: Some("2024-01-01T00:00:00Z".into()),
        key_usage: vec![],
        extended_key_usage: vec![],
        expected_result: CaseOutcome::Failure,
        expected_peer_name: None,
        chain_depth_max: None,
        crls: vec![],
        pkits_settings: None,
    };
    let r = run_case(&case, UnixTime(0));
    assert_eq!(r.actual_result, CaseOutcome::Failure);
    assert!(r.context.contains("peer certificate"), "{}", r.context);
}

/// A PKITS-style case (RFC 5280 profile, `pkits_settings`) over a generated root and leaf.
fn pkits_case(root: &str, leaf: &str, crls: Vec<String>) -> Testcase {
    let mut case = server_case(root, leaf, "node.example.jp", "2026-01-01T00:00:00Z");
    case.expected_peer_name = None;
    case.crls = crls;
    case.pkits_settings = Some(PkitsSettings {
        initial_policy_set: vec!["2.5.29.32.0".into()],
        initial_explicit_policy: false,
        initial_policy_mapping_inhibit: false,
        initial_inhibit_any_policy: false,
    });
    case
}

/// An empty CRL signed by a CA unrelated to the chains above: it covers none of their
/// certificates.
fn unrelated_crl() -> String {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Unrelated CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let issuer = rcgen::Issuer::new(params, key);
    rcgen::CertificateRevocationListParams {
        this_update: rcgen::date_time_ymd(2025, 6, 1),
        next_update: rcgen::date_time_ymd(2029, 6, 1),
        crl_number: rcgen::SerialNumber::from_slice(&[1]),
        issuing_distribution_point: None,
        revoked_certs: vec![],
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(&issuer)
    .unwrap()
    .pem()
    .unwrap()
}

#[test]
fn a_pkits_case_without_crls_is_judged_without_revocation() {
    // x509-limbo's convention: revocation is checked when the case supplies CRLs. A PKITS
    // case without any (a policy-processing case) must not fail for "no CRL".
    let (root, leaf) = server_chain("node.example.jp");
    let r = run_case(&pkits_case(&root, &leaf, vec![]), UnixTime(0));
    assert_eq!(r.actual_result, CaseOutcome::Success, "{}", r.context);
}

#[test]
fn a_pkits_case_with_crls_requires_one_covering_every_certificate() {
    // With CRLs supplied, PKITS expects every certificate below the anchor to be covered:
    // a CRL that speaks for none of them leaves the leaf's status unknown.
    let (root, leaf) = server_chain("node.example.jp");
    let r = run_case(
        &pkits_case(&root, &leaf, vec![unrelated_crl()]),
        UnixTime(0),
    );
    assert_eq!(r.actual_result, CaseOutcome::Failure, "{}", r.context);
    assert!(r.context.contains("revocation"), "{}", r.context);
}
