use x509_parser::der_parser::asn1_rs::Tag;

use super::name::encode_oid;
use super::*;

fn ca_params(cn: &str) -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(2));
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    params
}

#[test]
fn parses_fields_of_an_rcgen_ca_and_leaf() {
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let ca = ca_params("Test Root").self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params("Test Root"), ca_key);
    let leaf_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut leaf_params =
        rcgen::CertificateParams::new(vec!["node.example.jp".to_owned()]).unwrap();
    leaf_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();

    let ca = Cert::from_der(ca.der()).unwrap();
    let leaf = Cert::from_der(leaf.der()).unwrap();
    assert!(ca.is_ca());
    assert_eq!(ca.basic_constraints().unwrap().path_len, Some(2));
    assert!(ca.key_usage().unwrap().has(KeyUsage::KEY_CERT_SIGN));
    assert!(ca.may_sign_crls());
    assert!(ca.is_self_issued());
    assert_eq!(ca.subject_display(), "CN=Test Root");
    assert!(!leaf.is_ca());
    assert_eq!(leaf.issuer(), ca.subject());
    assert_eq!(
        leaf.subject_alt_names().unwrap(),
        &[GeneralName::Dns("node.example.jp".into())]
    );
    assert_eq!(
        leaf.extended_key_usage().unwrap(),
        &["1.3.6.1.5.5.7.3.1".to_owned()]
    );
    assert!(leaf.defects().is_empty(), "{:?}", leaf.defects());
    assert!(leaf.unrecognized_critical_extensions().is_empty());
    crate::signature::verify_cert_signed_by(&leaf, &ca).unwrap();
    crate::signature::verify_cert_signed_by(&ca, &leaf).unwrap_err();
    assert_eq!(
        leaf.cert_ref(0).sha256,
        hex::encode(Sha256::digest(leaf.der()))
    );
}

fn with_raw_extension(oid: &[u64], content: Vec<u8>) -> Cert {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["a.example".to_owned()]).unwrap();
    params.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(oid, content)];
    Cert::from_der(params.self_signed(&key).unwrap().der()).unwrap()
}

#[test]
fn records_profile_defects_that_reject_the_certificate() {
    // basicConstraints { pathLenConstraint 0 } without cA.
    let bc = with_raw_extension(&[2, 5, 29, 19], vec![0x30, 0x03, 0x02, 0x01, 0x00]);
    assert!(
        bc.defects().iter().any(|d| d.contains("pathLenConstraint")),
        "{:?}",
        bc.defects()
    );
    // keyUsage with an empty BIT STRING.
    let ku = with_raw_extension(&[2, 5, 29, 15], vec![0x03, 0x01, 0x00]);
    assert!(
        ku.defects().iter().any(|d| d.contains("keyUsage")),
        "{:?}",
        ku.defects()
    );
    // A well-formed keyUsage (digitalSignature) is no defect.
    let fine = with_raw_extension(&[2, 5, 29, 15], vec![0x03, 0x02, 0x07, 0x80]);
    assert!(fine.defects().is_empty(), "{:?}", fine.defects());
    assert!(fine.key_usage().unwrap().has(KeyUsage::DIGITAL_SIGNATURE));
}

#[test]
fn records_unrecognized_critical_extensions_only() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["a.example".to_owned()]).unwrap();
    let mut critical = rcgen::CustomExtension::from_oid_content(&[1, 2, 3, 4], vec![5, 0]);
    critical.set_criticality(true);
    let plain = rcgen::CustomExtension::from_oid_content(&[1, 2, 3, 5], vec![5, 0]);
    params.custom_extensions = vec![critical, plain];
    let cert = Cert::from_der(params.self_signed(&key).unwrap().der()).unwrap();
    assert_eq!(
        cert.unrecognized_critical_extensions(),
        ["1.2.3.4".to_owned()]
    );
}

#[test]
fn oid_text_is_dotted_decimal_even_for_uuid_arcs() {
    for text in [
        "1.2.840.113549.1.1.11",
        "2.5.29.37.0",
        crate::purpose::EKU_PAYMENT_SIGNING,
    ] {
        // encode_oid gives a short-form TLV: the content starts after two octets.
        let tlv = encode_oid(text);
        assert_eq!(oid_string(&Oid::new(tlv[2..].to_vec().into())), text);
    }
}

#[test]
fn names_compare_case_and_whitespace_insensitively() {
    let attr = |tag: Tag, v: &str| Attribute {
        oid: OID_COMMON_NAME.into(),
        tag: tag.0,
        universal: true,
        value: v.as_bytes().to_vec(),
    };
    let a = Name::from_rdns(
        vec![],
        vec![vec![attr(Tag::PrintableString, "  Example   CA ")]],
    );
    let b = Name::from_rdns(vec![], vec![vec![attr(Tag::Utf8String, "example ca")]]);
    let c = Name::from_rdns(vec![], vec![vec![attr(Tag::Utf8String, "example cb")]]);
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(
        a.with_rdn_appended(&[attr(Tag::Utf8String, "x")])
            .starts_with(&b)
    );
    let encoded = a.with_rdn_appended(&[attr(Tag::Utf8String, "x")]);
    assert_eq!(Name::from_der(encoded.der()).unwrap(), encoded);
}

#[test]
fn bundle_errors_name_the_failing_certificate() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let good = ca_params("A").self_signed(&key).unwrap().pem();
    let bad = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    let both = format!("{good}{bad}");
    let err = Cert::parse_pem_or_der_bundle(both.as_bytes()).unwrap_err();
    assert!(
        err.to_string().contains("certificate 1 of the bundle"),
        "{err}"
    );
    assert_eq!(
        Cert::parse_pem_or_der_bundle(good.as_bytes())
            .unwrap()
            .len(),
        1
    );
    assert!(Cert::parse_pem_or_der_bundle(b"\x30\x03\x02\x01\x01").is_err());
}
