use ed25519_dalek::SigningKey as DalekSigningKey;
use kakehashi_pki::mra::Mra;
use kakehashi_pki::purpose::{EKU_PAYMENT_SIGNING, EKU_RECEIPT_SIGNING};
use time::macros::datetime;

use super::*;
use crate::encode::{oid_content, serial};
use crate::jurisdictions::{LEAF_NOT_AFTER, NODE_EXPIRED_NOT_AFTER, NODE_REVOKED_INDEX};
use crate::keys::{derive_p256_scalar, p256_pkcs8_pem};

const TEST_SEED: &str = "unit-test-seed";

fn pki() -> DevPki {
    generate(TEST_SEED).unwrap()
}

fn file<'a>(pki: &'a DevPki, path: &str) -> &'a [u8] {
    pki.files
        .get(Path::new(path))
        .unwrap_or_else(|| panic!("{path} missing"))
}

fn certs(bytes: &[u8]) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(bytes)
        .map(|p| p.unwrap().contents)
        .collect()
}

/// Decodes OID content octets with 128-bit arcs (x509-parser prints hex past 64 bits).
fn dotted(content: &[u8]) -> String {
    let mut arcs: Vec<u128> = Vec::new();
    let mut value: u128 = 0;
    for byte in content {
        value = (value << 7) | u128::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            arcs.push(value);
            value = 0;
        }
    }
    let first = arcs[0].min(80) / 40;
    let mut out = vec![first.to_string(), (arcs[0] - first * 40).to_string()];
    out.extend(arcs[1..].iter().map(u128::to_string));
    out.join(".")
}

#[test]
fn oid_content_round_trips_through_the_decoder() {
    for oid in [
        EKU_PAYMENT_SIGNING,
        EKU_RECEIPT_SIGNING,
        "1.3.6.1.5.5.7.3.1",
        "2.999.3",
    ] {
        assert_eq!(dotted(&oid_content(oid).unwrap()), oid);
    }
}

#[test]
fn same_seed_gives_same_bytes_and_other_seed_differs() {
    let a = pki();
    let b = pki();
    assert_eq!(a.files, b.files);
    let c = generate("another-seed").unwrap();
    assert_ne!(file(&a, "jp/root.pem"), file(&c, "jp/root.pem"));
}

#[test]
fn private_keys_are_pkcs8_v1_that_dalek_reads_back() {
    use ed25519_dalek::pkcs8::DecodePrivateKey as _;
    let pki = pki();
    let pem = std::str::from_utf8(file(&pki, "mra-keys/jp.key.pem")).unwrap();
    let key = DalekSigningKey::from_pkcs8_pem(pem).unwrap();
    assert_eq!(
        key.to_bytes(),
        derive_key(TEST_SEED, "mra-authority/jp").to_bytes()
    );
    let der = certs_labelled(file(&pki, "jp/root.key.pem"), "PRIVATE KEY");
    assert_eq!(der[0].len(), 48, "RFC 8410 §10.3 example length");
    assert_eq!(der[0][4], 0x00, "version 1 is encoded as INTEGER 0");
}

fn certs_labelled(bytes: &[u8], label: &str) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(bytes)
        .map(|p| p.unwrap())
        .filter(|p| p.label == label)
        .map(|p| p.contents)
        .collect()
}

#[test]
fn rejects_empty_and_oversized_seed() {
    assert!(matches!(generate(""), Err(DevPkiError::Seed)));
    let long = "x".repeat(SEED_LEN_MAX + 1);
    assert!(matches!(generate(&long), Err(DevPkiError::Seed)));
}

#[test]
fn oid_content_encodes_uuid_arc() {
    // 2.25 -> 40*2+25 = 105 = 0x69; then a multi-byte arc.
    assert_eq!(oid_content("2.25.1").unwrap(), vec![0x69, 0x01]);
    assert_eq!(oid_content("1.2.840").unwrap(), vec![0x2a, 0x86, 0x48]);
    assert!(oid_content(EKU_PAYMENT_SIGNING).unwrap().len() > 18);
    assert!(oid_content("3.1").is_err());
    assert!(oid_content("1.40").is_err());
    assert!(oid_content("1").is_err());
}

#[test]
fn bank_leaf_carries_payment_eku_policy_and_validity() {
    let pki = pki();
    let chain = certs(file(&pki, "jp/banks/KKHAJPJ0.pem"));
    assert_eq!(chain.len(), 2, "leaf then issuing CA");
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    let other: Vec<String> = eku.other.iter().map(|o| dotted(o.as_bytes())).collect();
    assert_eq!(other, vec![EKU_PAYMENT_SIGNING.to_owned()]);
    assert!(!eku.server_auth);
    let oids: Vec<String> = leaf
        .iter_extensions()
        .filter_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::CertificatePolicies(p) => Some(p),
            _ => None,
        })
        .flat_map(|p| p.iter().map(|i| dotted(i.policy_id.as_bytes())))
        .collect();
    assert_eq!(oids, vec![policy_oid(392, AssuranceLevel::High)]);
    assert_eq!(
        leaf.validity().not_after.timestamp(),
        LEAF_NOT_AFTER.unix_timestamp()
    );
    assert!(leaf.key_usage().unwrap().unwrap().value.digital_signature());
    let (_, issuing) = x509_parser::parse_x509_certificate(&chain[1]).unwrap();
    assert_eq!(leaf.issuer(), issuing.subject());
}

#[test]
fn p256_pkcs8_holds_the_rfc_6979_a25_key_pair_and_refuses_out_of_range_scalars() {
    let scalar: [u8; 32] =
        hex::decode("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721")
            .unwrap()
            .try_into()
            .unwrap();
    let pem = p256_pkcs8_pem(&scalar, "rfc6979").unwrap();
    let der = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .unwrap()
        .1
        .contents;
    let pair = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &der,
        &ring::rand::SystemRandom::new(),
    )
    .unwrap();
    let public = ring::signature::KeyPair::public_key(&pair)
        .as_ref()
        .to_vec();
    assert_eq!(
        hex::encode_upper(&public[1..33]),
        "60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6"
    );
    assert_eq!(
        hex::encode_upper(&public[33..]),
        "7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299"
    );
    assert!(p256_pkcs8_pem(&[0u8; 32], "zero").is_err());
    let n: [u8; 32] =
        hex::decode("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551")
            .unwrap()
            .try_into()
            .unwrap();
    assert!(p256_pkcs8_pem(&n, "order").is_err());
}

/// The SubjectPublicKeyInfo algorithm OID and key bytes of a certificate.
fn spki(der: &[u8]) -> (String, Vec<u8>) {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let info = cert.public_key();
    (
        info.algorithm.algorithm.to_id_string(),
        info.subject_public_key.data.to_vec(),
    )
}

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_ED25519: &str = "1.3.101.112";

#[test]
fn node_tls_keys_are_p256_pkcs8_matching_their_certificates_and_sign() {
    use ring::signature::KeyPair as _;
    let pki = pki();
    let rng = ring::rand::SystemRandom::new();
    for stem in [
        "jp/node/tls",
        "sg/node/tls",
        "th/node/tls",
        "fixtures/node-expired/chain",
        "fixtures/node-revoked/chain",
        "fixtures/node-unknown-pki/chain",
        "jp/banks/KKHAJPJ0-tls",
        "sg/banks/KKHASGS0-tls",
        "th/banks/KKHATHB0-tls",
        "jp/operator",
        "sg/operator",
        "th/operator",
    ] {
        let chain = certs(file(&pki, &format!("{stem}.pem")));
        let (algorithm, public) = spki(&chain[0]);
        assert_eq!(algorithm, OID_EC_PUBLIC_KEY, "{stem}");
        let (issuer_algorithm, _) = spki(&chain[1]);
        assert_eq!(
            issuer_algorithm, OID_ED25519,
            "{stem}: issued by an Ed25519 CA"
        );
        let der = certs_labelled(file(&pki, &format!("{stem}.key.pem")), "PRIVATE KEY");
        // ring re-derives the public key from the scalar and refuses a mismatch.
        let key = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &der[0],
            &rng,
        )
        .unwrap_or_else(|e| panic!("{stem}: {e}"));
        assert_eq!(key.public_key().as_ref(), public.as_slice(), "{stem}");
        let signature = key.sign(&rng, b"handshake transcript").unwrap();
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, &public)
            .verify(b"handshake transcript", signature.as_ref())
            .unwrap();
    }
}

#[test]
fn every_key_but_tls_keys_stays_ed25519() {
    let pki = pki();
    let mut checked = 0;
    for (path, bytes) in &pki.files {
        let text = path.to_string_lossy();
        if !text.ends_with(".pem") || text.ends_with(".key.pem") || text.contains("crl") {
            continue;
        }
        let node_tls = text.ends_with("node/tls.pem")
            || text.contains("fixtures/node-")
            || text.ends_with("-tls.pem")
            || text.ends_with("th-bank-tls-abroad/chain.pem")
            || text.ends_with("operator.pem");
        let chain = certs(bytes);
        let (algorithm, _) = spki(&chain[0]);
        let expected = if node_tls {
            OID_EC_PUBLIC_KEY
        } else {
            OID_ED25519
        };
        assert_eq!(algorithm, expected, "{text}");
        for ca in &chain[1..] {
            assert_eq!(spki(ca).0, OID_ED25519, "{text}: CA");
        }
        checked += 1;
    }
    assert!(checked > 20, "only {checked} certificate files");
}

#[test]
fn p256_scalars_differ_by_name_and_seed_and_from_the_ed25519_seed() {
    let a = derive_p256_scalar(TEST_SEED, "jp/node/tls").unwrap();
    assert_eq!(a, derive_p256_scalar(TEST_SEED, "jp/node/tls").unwrap());
    assert_ne!(a, derive_p256_scalar(TEST_SEED, "sg/node/tls").unwrap());
    assert_ne!(
        a,
        derive_p256_scalar("another-seed", "jp/node/tls").unwrap()
    );
    assert_ne!(a, derive_key(TEST_SEED, "jp/node/tls").to_bytes());
}

/// A rustls client that, like BoringSSL in gRPC core, offers no Ed25519 signature scheme
/// in the handshake (RFC 8446 §4.2.3), but still verifies Ed25519 certificate signatures.
fn client_without_ed25519(root_pem: &[u8]) -> rustls::ClientConfig {
    let mut provider = rustls::crypto::ring::default_provider();
    let mapping: Vec<_> = provider
        .signature_verification_algorithms
        .mapping
        .iter()
        .filter(|(scheme, _)| *scheme != rustls::SignatureScheme::ED25519)
        .copied()
        .collect();
    provider.signature_verification_algorithms.mapping = Box::leak(mapping.into_boxed_slice());
    let mut roots = rustls::RootCertStore::empty();
    for der in certs(root_pem) {
        roots.add(der.into()).unwrap();
    }
    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// Runs a TLS handshake in memory between `client` and a server holding `stem`'s chain and
/// key; the first error either side raises, if any.
fn handshake(pki: &DevPki, client: rustls::ClientConfig, stem: &str) -> Result<(), String> {
    use rustls::pki_types::pem::PemObject as _;
    let chain = certs(file(pki, &format!("{stem}.pem")))
        .into_iter()
        .map(rustls::pki_types::CertificateDer::from)
        .collect();
    let key =
        rustls::pki_types::PrivateKeyDer::from_pem_slice(file(pki, &format!("{stem}.key.pem")))
            .unwrap();
    let server = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut client = rustls::ClientConnection::new(std::sync::Arc::new(client), name).unwrap();
    let mut server = rustls::ServerConnection::new(std::sync::Arc::new(server)).unwrap();
    fn pass(
        from: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<impl Sized>>,
        to: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<impl Sized>>,
    ) -> Result<(), String> {
        let mut bytes = Vec::new();
        while from.wants_write() {
            from.write_tls(&mut bytes).unwrap();
        }
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            to.read_tls(&mut rest).unwrap();
            to.process_new_packets().map_err(|e| e.to_string())?;
        }
        Ok(())
    }
    for _ in 0..8 {
        pass(&mut client, &mut server).map_err(|e| format!("server: {e}"))?;
        pass(&mut server, &mut client).map_err(|e| format!("client: {e}"))?;
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok(());
        }
    }
    Err("the handshake did not finish".into())
}

#[test]
fn node_tls_identity_handshakes_with_a_client_that_offers_no_ed25519_scheme() {
    let pki = pki();
    for code in ["jp", "sg", "th"] {
        let client = client_without_ed25519(file(&pki, &format!("{code}/root.pem")));
        handshake(&pki, client, &format!("{code}/node/tls")).unwrap();
    }
    // The control: an Ed25519 leaf (a bank's) cannot sign for that client, as the nodes'
    // Ed25519 TLS keys could not before.
    let client = client_without_ed25519(file(&pki, "jp/root.pem"));
    let err = handshake(&pki, client, "jp/banks/KKHAJPJ0").unwrap_err();
    assert!(
        err.contains("server:") && err.contains("NoSignatureSchemesInCommon"),
        "{err}"
    );
}

#[test]
fn node_tls_leaf_has_both_tls_usages_and_localhost_names() {
    let pki = pki();
    let chain = certs(file(&pki, "sg/node/tls.pem"));
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    let san = leaf.subject_alternative_name().unwrap().unwrap().value;
    let text = format!("{:?}", san.general_names);
    assert!(text.contains("localhost"));
    assert!(text.contains("127.0.0.1") || text.contains("[127, 0, 0, 1]"));
}

#[test]
fn issuing_ca_has_path_len_zero_and_crl_revokes_third_bank_and_node_fixture() {
    let pki = pki();
    let issuing = certs(file(&pki, "jp/issuing.pem"));
    let (_, ca) = x509_parser::parse_x509_certificate(&issuing[0]).unwrap();
    let bc = ca.basic_constraints().unwrap().unwrap().value;
    assert!(bc.ca);
    assert_eq!(bc.path_len_constraint, Some(0));
    let crl_pem = certs(file(&pki, "jp/crl.pem"));
    let (_, crl) = x509_parser::parse_x509_crl(&crl_pem[0]).unwrap();
    let revoked: Vec<u64> = crl
        .iter_revoked_certificates()
        .map(|r| u64::try_from(r.serial().clone()).unwrap())
        .collect();
    assert_eq!(
        revoked,
        vec![serial(392, 0x10, 3), serial(392, 0x40, NODE_REVOKED_INDEX)]
    );
    for (chain, listed) in [
        ("jp/banks/KKHCJPJ0.pem", revoked[0]),
        ("fixtures/node-revoked/chain.pem", revoked[1]),
    ] {
        let der = certs(file(&pki, chain));
        let (_, leaf) = x509_parser::parse_x509_certificate(&der[0]).unwrap();
        assert_eq!(
            u64::try_from(leaf.serial.clone()).unwrap(),
            listed,
            "{chain}"
        );
    }
    let sg_crl = certs(file(&pki, "sg/crl.pem"));
    let (_, crl) = x509_parser::parse_x509_crl(&sg_crl[0]).unwrap();
    assert_eq!(
        crl.iter_revoked_certificates().count(),
        1,
        "SG: third bank only"
    );
}

/// The parts of a node TLS leaf a relying node looks at, besides validity and issuer.
#[derive(Debug, PartialEq)]
struct NodeShape {
    subject_organization: String,
    server_auth: bool,
    client_auth: bool,
    other_ekus: usize,
    digital_signature: bool,
    is_ca: bool,
    names: String,
    policies: Vec<String>,
}

fn leaf_of(pki: &DevPki, chain: &str) -> Vec<Vec<u8>> {
    let chain = certs(file(pki, chain));
    assert_eq!(chain.len(), 2, "leaf then issuing CA");
    chain
}

fn node_shape(der: &[u8]) -> NodeShape {
    let (_, leaf) = x509_parser::parse_x509_certificate(der).unwrap();
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    let san = leaf.subject_alternative_name().unwrap().unwrap().value;
    NodeShape {
        subject_organization: leaf
            .subject()
            .iter_organization()
            .map(|o| o.as_str().unwrap().to_owned())
            .collect(),
        server_auth: eku.server_auth,
        client_auth: eku.client_auth,
        other_ekus: eku.other.len(),
        digital_signature: leaf.key_usage().unwrap().unwrap().value.digital_signature(),
        is_ca: leaf.is_ca(),
        names: format!("{:?}", san.general_names),
        policies: policy_ids(&leaf),
    }
}

fn policy_ids(leaf: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    leaf.iter_extensions()
        .filter_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::CertificatePolicies(p) => Some(p),
            _ => None,
        })
        .flat_map(|p| p.iter().map(|i| dotted(i.policy_id.as_bytes())))
        .collect()
}

#[test]
fn node_fixtures_differ_from_the_jp_node_in_exactly_one_respect() {
    let pki = pki();
    let good = leaf_of(&pki, "jp/node/tls.pem");
    let (_, good_leaf) = x509_parser::parse_x509_certificate(&good[0]).unwrap();
    let good_shape = node_shape(&good[0]);
    assert!(good_shape.server_auth && good_shape.client_auth);
    assert!(good_shape.names.contains("jp-node.kakehashi.test"));

    for fixture in ["node-expired", "node-revoked"] {
        let chain = leaf_of(&pki, &format!("fixtures/{fixture}/chain.pem"));
        assert_eq!(node_shape(&chain[0]), good_shape, "{fixture}");
        assert_eq!(chain[1], good[1], "{fixture}: issued by the JP issuing CA");
    }
    let expired = leaf_of(&pki, "fixtures/node-expired/chain.pem");
    let (_, leaf) = x509_parser::parse_x509_certificate(&expired[0]).unwrap();
    assert_eq!(
        leaf.validity().not_after.timestamp(),
        NODE_EXPIRED_NOT_AFTER.unix_timestamp()
    );
    let added = datetime!(2026-11-28 00:00:00 UTC).unix_timestamp();
    assert!(
        leaf.validity().not_after.timestamp() < added,
        "expired on the day it was added"
    );
    let revoked = leaf_of(&pki, "fixtures/node-revoked/chain.pem");
    let (_, leaf) = x509_parser::parse_x509_certificate(&revoked[0]).unwrap();
    assert_eq!(leaf.validity(), good_leaf.validity());

    // The impostor keeps the names and usages; its issuer and policy are XX's.
    let unknown = leaf_of(&pki, "fixtures/node-unknown-pki/chain.pem");
    let (_, leaf) = x509_parser::parse_x509_certificate(&unknown[0]).unwrap();
    assert_eq!(leaf.validity(), good_leaf.validity());
    assert!(leaf.subject().to_string().contains("C=JP"));
    assert_eq!(
        unknown[1],
        certs(file(&pki, "fixtures/unknown-root/pki/issuing.pem"))[0]
    );
    let shape = node_shape(&unknown[0]);
    assert_eq!(
        shape.policies,
        vec![policy_oid(999, AssuranceLevel::Substantial)]
    );
    assert_eq!(
        NodeShape {
            policies: good_shape.policies.clone(),
            ..shape
        },
        good_shape
    );
}

#[test]
fn th_node_has_tls_and_receipt_identities_like_jp_and_sg() {
    let pki = pki();
    let tls = leaf_of(&pki, "th/node/tls.pem");
    let shape = node_shape(&tls[0]);
    assert!(shape.server_auth && shape.client_auth);
    assert!(
        shape.names.contains("th-node.kakehashi.test"),
        "{}",
        shape.names
    );
    assert!(shape.names.contains("localhost"), "{}", shape.names);
    assert_eq!(
        shape.policies,
        vec![policy_oid(764, AssuranceLevel::Substantial)]
    );
    assert_eq!(tls[1], certs(file(&pki, "th/issuing.pem"))[0]);

    let receipt = leaf_of(&pki, "th/node/receipt.pem");
    let (_, leaf) = x509_parser::parse_x509_certificate(&receipt[0]).unwrap();
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    let other: Vec<String> = eku.other.iter().map(|o| dotted(o.as_bytes())).collect();
    assert_eq!(other, vec![EKU_RECEIPT_SIGNING.to_owned()]);
    assert!(!eku.server_auth && !eku.client_auth);
    assert_eq!(
        policy_ids(&leaf),
        vec![policy_oid(764, AssuranceLevel::High)]
    );
    for key in ["th/node/tls.key.pem", "th/node/receipt.key.pem"] {
        assert_eq!(
            certs_labelled(file(&pki, key), "PRIVATE KEY").len(),
            1,
            "{key}"
        );
    }
}

#[test]
fn broken_signature_fixture_differs_from_a_good_signature_in_one_bit() {
    let pki = pki();
    let chain = certs(file(&pki, "fixtures/broken-signature/chain.pem"));
    let (_, leaf) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
    let (_, issuing) = x509_parser::parse_x509_certificate(&chain[1]).unwrap();
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::ED25519,
        issuing.public_key().subject_public_key.data.to_vec(),
    );
    assert!(
        key.verify(leaf.tbs_certificate.as_ref(), &leaf.signature_value.data)
            .is_err()
    );
    let mut fixed = chain[0].clone();
    *fixed.last_mut().unwrap() ^= 0x01;
    let (_, good) = x509_parser::parse_x509_certificate(&fixed).unwrap();
    assert!(
        key.verify(good.tbs_certificate.as_ref(), &good.signature_value.data)
            .is_ok()
    );
}

#[test]
fn every_fixture_chain_exists_and_parses() {
    let pki = pki();
    for fixture in FIXTURES {
        let chain = certs(file(&pki, fixture.chain));
        assert!(!chain.is_empty(), "{}", fixture.name);
        for der in chain {
            x509_parser::parse_x509_certificate(&der).unwrap();
        }
    }
}

#[test]
fn generated_agreement_is_signed_by_every_party() {
    let pki = pki();
    let text = std::str::from_utf8(file(&pki, "mra.toml")).unwrap();
    let mut read =
        |r: &str| -> Result<Vec<u8>, MraError> { Ok(pki.files.get(Path::new(r)).unwrap().clone()) };
    let mra = Mra::parse_with(text, Path::new("mra.toml"), &mut read).unwrap();
    mra.verify_signatures().unwrap();
    assert_eq!(mra.signed_parties(), vec!["JP", "SG", "TH"]);
}

#[test]
fn writing_refuses_a_non_empty_directory_without_force() {
    let pki = pki();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep.txt"), b"x").unwrap();
    assert!(matches!(
        pki.write_to(dir.path(), false),
        Err(DevPkiError::NotEmpty(_))
    ));
    let written = pki.write_to(dir.path(), true).unwrap();
    assert_eq!(written, pki.files.len());
    assert!(dir.path().join("keep.txt").exists());
    assert!(dir.path().join("mra.toml").exists());
}

/// Issue 12: every bank has a participant-TLS identity (clientAuth and the participant-TLS
/// EKU, the BIC as subject CN, the bank's policy) and every node jurisdiction an operator
/// identity (clientAuth and the operator EKU); neither carries the other's marker, and no
/// other leaf carries either.
#[test]
fn banks_have_participant_tls_and_nodes_an_operator_identity() {
    use kakehashi_pki::purpose::{EKU_CLIENT_AUTH, EKU_OPERATOR, EKU_PARTICIPANT_TLS};
    let pki = pki();
    let ekus_of = |path: &str| -> (Vec<String>, String) {
        let chain = certs(file(&pki, path));
        let (_, cert) = x509_parser::parse_x509_certificate(&chain[0]).unwrap();
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        let ekus: Vec<String> = eku
            .other
            .iter()
            .map(|o| dotted(o.as_bytes()))
            .chain(eku.client_auth.then(|| EKU_CLIENT_AUTH.to_owned()))
            .chain(eku.server_auth.then(|| "serverAuth".to_owned()))
            .collect();
        let cn = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_owned();
        (ekus, cn)
    };
    for bic in ["KKHAJPJ0", "KKHBJPJ0", "KKHCJPJ0", "KKHASGS0", "KKHATHB0"] {
        let dir = match &bic[4..6] {
            "JP" => "jp",
            "SG" => "sg",
            _ => "th",
        };
        let (ekus, cn) = ekus_of(&format!("{dir}/banks/{bic}-tls.pem"));
        assert_eq!(cn, bic);
        assert!(ekus.iter().any(|e| e == EKU_CLIENT_AUTH), "{bic}: {ekus:?}");
        assert!(
            ekus.iter().any(|e| e == EKU_PARTICIPANT_TLS),
            "{bic}: {ekus:?}"
        );
        assert!(!ekus.iter().any(|e| e == EKU_OPERATOR), "{bic}: {ekus:?}");
    }
    for dir in ["jp", "sg", "th"] {
        let (ekus, _) = ekus_of(&format!("{dir}/operator.pem"));
        assert!(ekus.iter().any(|e| e == EKU_CLIENT_AUTH), "{dir}: {ekus:?}");
        assert!(ekus.iter().any(|e| e == EKU_OPERATOR), "{dir}: {ekus:?}");
        assert!(!ekus.iter().any(|e| e == EKU_PARTICIPANT_TLS), "{dir}");
        let (node, _) = ekus_of(&format!("{dir}/node/tls.pem"));
        assert!(
            !node
                .iter()
                .any(|e| e == EKU_OPERATOR || e == EKU_PARTICIPANT_TLS),
            "{dir}: {node:?}"
        );
    }
}
