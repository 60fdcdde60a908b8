use super::*;

#[test]
fn exact_names_match_case_insensitively() {
    assert!(dns_name_matches("example.com", "EXAMPLE.com"));
    assert!(!dns_name_matches("example.com", "example2.com"));
    assert!(!dns_name_matches("abc.example.com", "def.example.com"));
    assert!(!dns_name_matches("example.com", "abc.example.com"));
}

#[test]
fn wildcard_matches_exactly_one_leftmost_label() {
    assert!(dns_name_matches("*.example.com", "foo.example.com"));
    assert!(!dns_name_matches("*.example.com", "example.com"));
    assert!(!dns_name_matches("*.example.com", "foo.bar.example.com"));
}

#[test]
fn partial_and_public_suffix_wildcards_match_nothing() {
    assert!(!dns_name_matches("ba*.example.com", "baz.example.com"));
    assert!(!dns_name_matches(
        "xn--*-1b3c148a.example.com",
        "xn--bliss-1b3c148a.example.com"
    ));
    assert!(!dns_name_matches("*", "com"));
    assert!(!dns_name_matches("*.com", "example.com"));
    assert!(!dns_name_matches("*.co.uk", "example.co.uk"));
    assert!(dns_name_matches("*.example.co.uk", "www.example.co.uk"));
}

#[test]
fn non_ascii_presented_names_never_match() {
    assert!(!dns_name_matches("😜.example.com", "xn--628h.example.com"));
}

#[test]
fn ldh_syntax_rejects_underscores_but_allows_a_wildcard() {
    assert!(is_ldh_dns_name("*.example.com"));
    assert!(!is_ldh_dns_name("foo_bar.example.com"));
    assert!(!is_ldh_dns_name("-a.example.com"));
}

fn leaf(cn: Option<&str>, sans: &[&str], edit: impl FnOnce(&mut rcgen::CertificateParams)) -> Cert {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params =
        rcgen::CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
            .unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = cn {
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
    }
    edit(&mut params);
    Cert::from_der(params.self_signed(&key).unwrap().der()).unwrap()
}

#[test]
fn common_name_must_repeat_a_san_exactly_on_unconstrained_chains() {
    let ok = leaf(Some("a.example.com"), &["a.example.com"], |_| {});
    assert!(check_common_name(&ok, false).is_ok());
    let other = leaf(Some("b.example.com"), &["a.example.com"], |_| {});
    assert!(check_common_name(&other, false).is_err());
    assert!(check_common_name(&other, true).is_ok());
    let respelled = leaf(Some("A.Example.com"), &["a.example.com"], |_| {});
    assert!(check_common_name(&respelled, true).is_err());
    let not_a_host = leaf(Some("Bank Signing Key"), &["a.example.com"], |_| {});
    assert!(check_common_name(&not_a_host, false).is_ok());
}

#[test]
fn host_common_name_outside_the_san_is_refused_even_when_the_san_names_the_peer() {
    // BR §7.1.4.3 holds whatever the SAN matches: a wildcard does not cover its parent
    // domain (RFC 6125 §6.4.3), and with only an iPAddress SAN an RFC 6125 §6.4.4 client
    // would fall back to the commonName, so both would carry an unvalidated identity.
    let wildcard_parent = leaf(Some("example.com"), &["*.example.com"], |_| {});
    assert!(check_common_name(&wildcard_parent, false).is_err());
    let ip_only = leaf(Some("example.com"), &["127.0.0.1"], |_| {});
    assert!(check_common_name(&ip_only, false).is_err());
    let ip_cn = leaf(Some("1.1.1.1"), &["test.localhost"], |_| {});
    assert!(check_common_name(&ip_cn, false).is_err());
    let copied = leaf(Some("*.example.com"), &["*.example.com"], |_| {});
    assert!(check_common_name(&copied, false).is_ok());
}

#[test]
fn common_name_ip_must_be_canonical_text_of_an_ip_san() {
    let ok = leaf(Some("192.168.1.1"), &["192.168.1.1"], |_| {});
    assert!(check_common_name(&ok, false).is_ok());
    let hex = leaf(Some("0xC0A80101"), &["192.168.1.1"], |_| {});
    assert!(check_common_name(&hex, true).is_err());
    let upper = leaf(Some("2001:DB8::1"), &["2001:db8::1"], |_| {});
    assert!(check_common_name(&upper, true).is_err());
    assert_eq!(
        lenient_ip("0xC0A80101"),
        Some("192.168.1.1".parse().unwrap())
    );
    assert_eq!(lenient_ip("example"), None);
}

#[test]
fn web_pki_leaf_rules_reject_ca_leaves_critical_eku_and_missing_eku() {
    let eku = |p: &mut rcgen::CertificateParams| {
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    };
    assert!(check_webpki_leaf(&leaf(None, &["a.example.com"], eku)).is_ok());
    let no_eku = leaf(None, &["a.example.com"], |_| {});
    assert!(check_webpki_leaf(&no_eku).is_err());
    let ca = leaf(None, &["a.example.com"], |p| {
        eku(p);
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    });
    assert!(check_webpki_leaf(&ca).is_err());
    let underscore = leaf(None, &["a_b.example.com"], eku);
    assert!(check_webpki_leaf(&underscore).is_err());
}

#[test]
fn eku_absent_is_unrestricted_and_any_eku_counts_only_under_rfc5280() {
    let required = vec![crate::purpose::EKU_SERVER_AUTH.to_owned()];
    let none = leaf(None, &["a.example.com"], |_| {});
    assert!(check_leaf_eku(&none, &required, Profile::WebPki).is_ok());
    let any = leaf(None, &["a.example.com"], |p| {
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::Any];
    });
    assert!(check_leaf_eku(&any, &required, Profile::Rfc5280).is_ok());
    assert!(check_leaf_eku(&any, &required, Profile::WebPki).is_err());
}

#[test]
fn peer_ip_matches_only_an_ip_san() {
    let cert = leaf(None, &["127.0.0.1", "8.8.8.8.example"], |_| {});
    assert!(check_peer_name(&cert, &PeerName::Ip("127.0.0.1".parse().unwrap())).is_ok());
    assert!(check_peer_name(&cert, &PeerName::Ip("8.8.8.8".parse().unwrap())).is_err());
}

#[test]
fn ecdsa_hash_must_match_the_issuer_curve() {
    let p256 = leaf(None, &["a.example.com"], |_| {});
    let p384_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let p384 = Cert::from_der(
        rcgen::CertificateParams::new(vec!["b.example.com".to_owned()])
            .unwrap()
            .self_signed(&p384_key)
            .unwrap()
            .der(),
    )
    .unwrap();
    // Self-signed with ecdsa-with-SHA256 under P-256, and with SHA-384 under P-384.
    assert!(check_signature_pairing(&p256, &p256).is_ok());
    assert!(check_signature_pairing(&p384, &p384).is_ok());
    assert!(check_signature_pairing(&p256, &p384).is_err());
    assert!(check_signature_pairing(&p384, &p256).is_err());
}

#[test]
fn canonical_ip_text_is_rfc5952_lowercase() {
    let mut v6 = [0u8; 16];
    v6[0] = 0x20;
    v6[1] = 0x01;
    v6[2] = 0x0d;
    v6[3] = 0xb8;
    v6[15] = 0xab;
    assert_eq!(canonical_ip(&v6).unwrap(), "2001:db8::ab");
    assert_eq!(canonical_ip(&[192, 168, 1, 1]).unwrap(), "192.168.1.1");
}
