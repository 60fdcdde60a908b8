use super::*;

fn self_signed(alg: &'static rcgen::SignatureAlgorithm) -> (Vec<u8>, Vec<u8>) {
    let key = rcgen::KeyPair::generate_for(alg).unwrap();
    let params = rcgen::CertificateParams::new(vec!["a.example".to_owned()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    (
        cert.der().to_vec(),
        rcgen::PublicKeyData::subject_public_key_info(&key),
    )
}

fn parts(der: &[u8]) -> (Spki, SignatureAlgorithm, Vec<u8>, Vec<u8>) {
    let (_, x) = x509_parser::parse_x509_certificate(der).unwrap();
    (
        Spki::from_x509(x.public_key()).unwrap(),
        SignatureAlgorithm::from_x509(&x.signature_algorithm).unwrap(),
        x.tbs_certificate.as_ref().to_vec(),
        x.signature_value.data.to_vec(),
    )
}

#[test]
fn verifies_ed25519_p256_p384_and_rsa_self_signatures() {
    for alg in [
        &rcgen::PKCS_ED25519,
        &rcgen::PKCS_ECDSA_P256_SHA256,
        &rcgen::PKCS_ECDSA_P384_SHA384,
    ] {
        let (der, spki_der) = self_signed(alg);
        let (spki, sig_alg, tbs, sig) = parts(&der);
        assert_eq!(Spki::from_der(&spki_der).unwrap(), spki);
        verify_signature(&spki, &sig_alg, &tbs, &sig).unwrap();
    }
}

#[test]
fn rejects_a_flipped_bit_in_the_signed_message() {
    for alg in [&rcgen::PKCS_ED25519, &rcgen::PKCS_ECDSA_P256_SHA256] {
        let (der, _) = self_signed(alg);
        let (spki, sig_alg, mut tbs, sig) = parts(&der);
        let last = tbs.len() - 1;
        tbs[last] ^= 1;
        assert!(matches!(
            verify_signature(&spki, &sig_alg, &tbs, &sig),
            Err(SignatureError::BadSignature { .. })
        ));
    }
}

#[test]
fn rejects_signature_algorithm_that_does_not_fit_the_key() {
    let (der, _) = self_signed(&rcgen::PKCS_ED25519);
    let (spki, _, tbs, sig) = parts(&der);
    let err = verify_signature(
        &spki,
        &SignatureAlgorithm::Ecdsa(HashAlgorithm::Sha256),
        &tbs,
        &sig,
    );
    assert!(matches!(err, Err(SignatureError::KeyMismatch { .. })));
}

#[test]
fn refuses_sha1_as_unsupported_not_as_bad() {
    let (der, _) = self_signed(&rcgen::PKCS_ED25519);
    let (spki, _, tbs, sig) = parts(&der);
    let sha1 = SignatureAlgorithm::Unsupported {
        oid: "1.2.840.113549.1.1.5".to_owned(),
        name: "sha1WithRSAEncryption".to_owned(),
    };
    assert_eq!(
        verify_signature(&spki, &sha1, &tbs, &sig),
        Err(SignatureError::Unsupported {
            algorithm: "sha1WithRSAEncryption".to_owned()
        })
    );
}

#[test]
fn counts_rsa_modulus_bits_without_leading_zero() {
    // SEQUENCE { INTEGER 0x00 0x80 00.. (2048 bits), INTEGER 65537 }
    let mut modulus = vec![0x00, 0x80];
    modulus.extend(std::iter::repeat_n(0u8, 255));
    let mut body = vec![0x02, 0x82, 0x01, 0x01];
    body.extend(&modulus);
    body.extend([0x02, 0x03, 0x01, 0x00, 0x01]);
    let mut der = vec![0x30, 0x82];
    der.extend((body.len() as u16).to_be_bytes());
    der.extend(body);
    assert_eq!(rsa_modulus_bits(&der).unwrap(), 2048);
    assert!(rsa_modulus_bits(&der[..10]).is_err());
}
