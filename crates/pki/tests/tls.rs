//! The rustls verifier adapters in real handshakes: a server and a client thread talk TLS over
//! a TCP socket on 127.0.0.1, each side verifying the other with the mutual-recognition
//! agreement in `certs/`. Time is pinned through rustls's `TimeProvider`, so nothing rots.
//!
//! Peers come from the committed development PKI (`certs/jp`, `certs/sg`, `certs/th`,
//! `certs/fixtures`, among them the node TLS fixtures the relay's tests use) or are issued here
//! with rcgen by a committed CA key, for cases the fixtures lack (a leaf revoked only by a CRL
//! supplied at run time, a client-only node of TH).

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kakehashi_pki::mra::Mra;
use kakehashi_pki::tls::{
    NodeClientCertVerifier, NodeServerCertVerifier, RefusalKind, TlsVerifyError,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, ServerConfig};
use x509_parser::der_parser::asn1_rs::Tag;

use crate::util::certs_dir;

/// The validation time the fixture table is documented for (certs/README.md).
const PINNED_TIME: u64 = 1_798_761_600; // 2027-01-01T00:00:00Z

/// The day the node TLS fixtures were added: nodes check peers at the real clock, so the
/// expired fixture must already be expired then, not only at the pinned time.
const NODE_FIXTURES_ADDED: u64 = 1_795_824_000; // 2026-11-28T00:00:00Z

/// notAfter of `certs/fixtures/node-expired` (certs/README.md, node TLS fixtures).
const NODE_EXPIRED_NOT_AFTER: u64 = 1_769_904_000; // 2026-02-01T00:00:00Z

/// How long either side waits for the other before the test fails instead of hanging.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

const PING: &[u8] = b"ping";

static TLS12_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
const PONG: &[u8] = b"pong";

fn mra() -> Arc<Mra> {
    Arc::new(Mra::load(&certs_dir().join("mra.toml")).expect("load certs/mra.toml"))
}

/// The committed agreement without the rows that recognize TH, signed again by every party
/// with the committed development authority keys (`certs/mra-keys/`): TH stays a party whose
/// certificates are valid, but nobody recognizes it. The committed agreement, in which every
/// party recognizes every other, has no such party.
fn mra_nobody_recognizes_th() -> Arc<Mra> {
    use ed25519_dalek::pkcs8::DecodePrivateKey as _;

    let path = certs_dir().join("mra.toml");
    let text = std::fs::read_to_string(&path).expect("read certs/mra.toml");
    let unsigned = &text[..text.find("\n[[signature]]\n").expect("a signature section")];
    let marker = "\n[[recognition]]\n";
    let mut rows = unsigned.split(marker);
    let mut derived = rows.next().expect("the parties").to_owned();
    let mut dropped = 0;
    for row in rows {
        if row.contains("issuing = \"TH\"\n") {
            dropped += 1;
        } else {
            derived.push_str(marker);
            derived.push_str(row);
        }
    }
    assert_eq!(dropped, 2, "JP-recognizes-TH and SG-recognizes-TH");
    let mut mra = Mra::parse_with(&derived, &path, &mut |reference: &str| {
        std::fs::read(certs_dir().join(reference)).map_err(|cause| {
            kakehashi_pki::mra::MraError::Read {
                path: reference.into(),
                cause,
            }
        })
    })
    .expect("the derived agreement parses");
    for code in ["JP", "SG", "TH"] {
        let key = certs_dir().join(format!("mra-keys/{}.key.pem", code.to_ascii_lowercase()));
        let pem = std::fs::read_to_string(key).expect("authority key");
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem).expect("PKCS#8 Ed25519 key");
        mra.sign(code, &key).expect("sign");
    }
    mra.verify_signatures().expect("signed by every party");
    Arc::new(mra)
}

#[derive(Debug)]
struct FixedTime(u64);

impl rustls::time_provider::TimeProvider for FixedTime {
    fn current_time(&self) -> Option<UnixTime> {
        Some(UnixTime::since_unix_epoch(Duration::from_secs(self.0)))
    }
}

/// A certificate chain (leaf first) and its private key.
struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

/// A committed chain and key, e.g. `jp/node/tls`.
fn committed(stem: &str) -> Identity {
    let dir = certs_dir();
    let chain = CertificateDer::pem_file_iter(dir.join(format!("{stem}.pem")))
        .expect("open chain")
        .collect::<Result<Vec<_>, _>>()
        .expect("parse chain");
    let key = PrivateKeyDer::from_pem_file(dir.join(format!("{stem}.key.pem"))).expect("key");
    Identity { chain, key }
}

/// What a node leaf issued here looks like.
struct LeafSpec<'a> {
    /// The issuing CA's directory under certs/ (holds issuing.pem and issuing.key.pem).
    ca_dir: &'a str,
    /// A committed leaf whose certificatePolicies extension is copied (so the leaf carries a
    /// policy the agreement maps to a level).
    policy_from: &'a str,
    ekus: Vec<rcgen::ExtendedKeyUsagePurpose>,
    not_before: (i32, u8, u8),
    not_after: (i32, u8, u8),
}

/// The serial number of every leaf issued here.
const ISSUED_SERIAL: &[u8] = &[0x7e, 0x57, 0x01];

/// The committed issuing CA of `ca_dir` as an rcgen issuer, and its certificate.
fn issuing_ca(
    ca_dir: &str,
) -> (
    rcgen::Issuer<'static, rcgen::KeyPair>,
    CertificateDer<'static>,
) {
    let dir = certs_dir().join(ca_dir);
    let ca_pem = std::fs::read_to_string(dir.join("issuing.pem")).expect("issuing.pem");
    let ca_key_pem = std::fs::read_to_string(dir.join("issuing.key.pem")).expect("issuing key");
    let ca_key = rcgen::KeyPair::from_pem(&ca_key_pem).expect("issuing key parses");
    let ca_der = CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("issuing DER");
    let mut ca_params = rcgen::CertificateParams::default();
    ca_params.distinguished_name = subject_of(&ca_der);
    (rcgen::Issuer::new(ca_params, ca_key), ca_der)
}

/// Issues a node TLS leaf with rcgen under a committed issuing CA.
fn issue(spec: &LeafSpec<'_>) -> Identity {
    let (issuer, ca_der) = issuing_ca(spec.ca_dir);
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("params");
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "test node issued by the tls test",
    );
    let (y, m, d) = spec.not_before;
    params.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = spec.not_after;
    params.not_after = rcgen::date_time_ymd(y, m, d);
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = spec.ekus.clone();
    params.use_authority_key_identifier_extension = true;
    params
        .custom_extensions
        .push(policies_extension(spec.policy_from));
    params.serial_number = Some(rcgen::SerialNumber::from_slice(ISSUED_SERIAL));

    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("leaf key");
    let leaf = params.signed_by(&key, &issuer).expect("sign leaf");
    Identity {
        chain: vec![leaf.der().clone(), ca_der],
        key: PrivateKeyDer::try_from(key.serialize_der()).expect("pkcs8"),
    }
}

/// The subject of `der` as rcgen's name, same attribute order and string types, so the issued
/// leaf's issuer field equals the CA's subject.
fn subject_of(der: &CertificateDer<'_>) -> rcgen::DistinguishedName {
    let (_, cert) = x509_parser::parse_x509_certificate(der).expect("parse CA");
    let mut name = rcgen::DistinguishedName::new();
    for attr in cert.subject().iter_attributes() {
        let arcs: Vec<u64> = attr.attr_type().iter().expect("small arcs").collect();
        let text = attr.as_str().expect("text attribute").to_owned();
        let value = if attr.attr_value().tag() == Tag::PrintableString {
            rcgen::DnValue::PrintableString(text.try_into().expect("printable"))
        } else {
            rcgen::DnValue::Utf8String(text)
        };
        name.push(rcgen::DnType::from_oid(&arcs), value);
    }
    name
}

/// The certificatePolicies extension of a committed leaf, as an rcgen custom extension.
fn policies_extension(stem: &str) -> rcgen::CustomExtension {
    let path = certs_dir().join(format!("{stem}.pem"));
    let der = CertificateDer::from_pem_file(&path).expect("policy source");
    let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("parse policy source");
    let ext = cert
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == "2.5.29.32")
        .expect("policy source has certificatePolicies");
    rcgen::CustomExtension::from_oid_content(&[2, 5, 29, 32], ext.value.to_vec())
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What both ends saw, and what their verifiers refused.
struct Outcome {
    client: Result<Vec<u8>, rustls::Error>,
    server: Result<(), rustls::Error>,
    client_refusals: Vec<TlsVerifyError>,
    server_refusals: Vec<TlsVerifyError>,
}

struct Setup {
    /// Server identity and the server node's jurisdiction.
    server: Identity,
    server_jurisdiction: &'static str,
    /// Client identity (None: no client certificate) and the client node's jurisdiction.
    client: Option<Identity>,
    client_jurisdiction: &'static str,
    /// The name the client dials.
    server_name: &'static str,
    /// Protocol versions both ends allow.
    versions: &'static [&'static rustls::SupportedProtocolVersion],
    /// CRLs (DER) the server checks besides the agreement's.
    server_crls: Vec<Vec<u8>>,
    /// What both ends' clocks read, in seconds since the Unix epoch.
    now: u64,
    /// The agreement both ends verify under.
    mra: Arc<Mra>,
}

impl Setup {
    fn new(server: Identity, client: Option<Identity>) -> Self {
        Self {
            server,
            server_jurisdiction: "SG",
            client,
            client_jurisdiction: "JP",
            server_name: "localhost",
            versions: rustls::ALL_VERSIONS,
            server_crls: Vec::new(),
            now: PINNED_TIME,
            mra: mra(),
        }
    }
}

fn io_to_tls(err: std::io::Error) -> rustls::Error {
    match err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => tls.clone(),
        None => rustls::Error::General(format!("i/o: {err}")),
    }
}

/// Runs one handshake plus a ping/pong exchange over 127.0.0.1.
fn handshake(setup: Setup) -> Outcome {
    let mra = Arc::clone(&setup.mra);
    let time: Arc<dyn rustls::time_provider::TimeProvider> = Arc::new(FixedTime(setup.now));

    let server_refusals = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&server_refusals);
    let client_verifier = NodeClientCertVerifier::new(Arc::clone(&mra), setup.server_jurisdiction)
        .expect("client verifier")
        .with_crls(setup.server_crls)
        .with_refusal_hook(Arc::new(move |e: &TlsVerifyError| {
            sink.lock().expect("lock").push(e.clone());
        }));
    let server_config = ServerConfig::builder_with_details(provider(), Arc::clone(&time))
        .with_protocol_versions(setup.versions)
        .expect("versions")
        .with_client_cert_verifier(Arc::new(client_verifier))
        .with_single_cert(setup.server.chain, setup.server.key)
        .expect("server cert");

    let client_refusals = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&client_refusals);
    let server_verifier = NodeServerCertVerifier::new(Arc::clone(&mra), setup.client_jurisdiction)
        .expect("server verifier")
        .with_refusal_hook(Arc::new(move |e: &TlsVerifyError| {
            sink.lock().expect("lock").push(e.clone());
        }));
    let builder = ClientConfig::builder_with_details(provider(), time)
        .with_protocol_versions(setup.versions)
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(server_verifier));
    let client_config = match setup.client {
        Some(id) => builder
            .with_client_auth_cert(id.chain, id.key)
            .expect("client cert"),
        None => builder.with_no_client_auth(),
    };

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = std::thread::spawn(move || -> Result<(), rustls::Error> {
        let (sock, _) = listener.accept().map_err(io_to_tls)?;
        sock.set_read_timeout(Some(IO_TIMEOUT)).map_err(io_to_tls)?;
        let conn = rustls::ServerConnection::new(Arc::new(server_config))?;
        let mut tls = rustls::StreamOwned::new(conn, sock);
        let mut buf = [0u8; PING.len()];
        tls.read_exact(&mut buf).map_err(io_to_tls)?;
        assert_eq!(buf, PING);
        tls.write_all(PONG).map_err(io_to_tls)?;
        tls.flush().map_err(io_to_tls)?;
        Ok(())
    });

    let client = (|| -> Result<Vec<u8>, rustls::Error> {
        let sock = TcpStream::connect(addr).map_err(io_to_tls)?;
        sock.set_read_timeout(Some(IO_TIMEOUT)).map_err(io_to_tls)?;
        let name = ServerName::try_from(setup.server_name)
            .expect("server name")
            .to_owned();
        let conn = rustls::ClientConnection::new(Arc::new(client_config), name)?;
        let mut tls = rustls::StreamOwned::new(conn, sock);
        tls.write_all(PING).map_err(io_to_tls)?;
        tls.flush().map_err(io_to_tls)?;
        let mut buf = vec![0u8; PONG.len()];
        tls.read_exact(&mut buf).map_err(io_to_tls)?;
        Ok(buf)
    })();
    let server = server.join().expect("server thread");
    let client_refusals = client_refusals.lock().expect("lock").clone();
    let server_refusals = server_refusals.lock().expect("lock").clone();
    Outcome {
        client,
        server,
        client_refusals,
        server_refusals,
    }
}

/// Asserts the handshake failed on the side whose verifier refused, with `expected`, and that
/// the refusal the hook saw explains itself with `explains`.
#[track_caller]
fn assert_refused_by_client(outcome: &Outcome, expected: fn(&CertificateError) -> bool) {
    match &outcome.client {
        Err(rustls::Error::InvalidCertificate(e)) => {
            assert!(expected(e), "client refused with the wrong error: {e:?}");
        }
        other => panic!("client should refuse the server certificate, got {other:?}"),
    }
    assert!(
        outcome.server.is_err(),
        "server must see the handshake fail"
    );
    assert_eq!(outcome.client_refusals.len(), 1, "one refusal reported");
}

#[track_caller]
fn assert_refused_by_server(outcome: &Outcome, expected: fn(&CertificateError) -> bool) {
    match &outcome.server {
        Err(rustls::Error::InvalidCertificate(e)) => {
            assert!(expected(e), "server refused with the wrong error: {e:?}");
        }
        other => panic!("server should refuse the client certificate, got {other:?}"),
    }
    assert!(
        outcome.client.is_err(),
        "client must see the handshake fail"
    );
    assert_eq!(outcome.server_refusals.len(), 1, "one refusal reported");
}

// --- accepted -------------------------------------------------------------------------------

#[test]
fn jp_client_and_sg_server_recognize_each_other() {
    let outcome = handshake(Setup::new(
        committed("sg/node/tls"),
        Some(committed("jp/node/tls")),
    ));
    assert_eq!(
        outcome.client.as_deref().ok(),
        Some(PONG),
        "{:?}",
        outcome.client
    );
    assert!(outcome.server.is_ok(), "{:?}", outcome.server);
    assert!(outcome.client_refusals.is_empty());
    assert!(outcome.server_refusals.is_empty());
}

#[test]
fn every_pair_of_committed_nodes_meets_by_host_name_under_the_committed_agreement() {
    // Every party recognizes every other for node-tls, and each node certificate carries the
    // DNS name `<code>-node.kakehashi.test` that a peer on another host dials.
    let nodes: [(&'static str, &'static str); 3] = [
        ("JP", "jp-node.kakehashi.test"),
        ("SG", "sg-node.kakehashi.test"),
        ("TH", "th-node.kakehashi.test"),
    ];
    for (server, name) in nodes {
        for (client, _) in nodes {
            if client == server {
                continue;
            }
            let mut setup = Setup::new(
                committed(&format!("{}/node/tls", server.to_ascii_lowercase())),
                Some(committed(&format!(
                    "{}/node/tls",
                    client.to_ascii_lowercase()
                ))),
            );
            setup.server_jurisdiction = server;
            setup.client_jurisdiction = client;
            setup.server_name = name;
            let outcome = handshake(setup);
            assert_eq!(
                outcome.client.as_deref().ok(),
                Some(PONG),
                "{client} dialling {name}: {:?}",
                outcome.client
            );
            assert!(outcome.server.is_ok(), "{server}: {:?}", outcome.server);
            assert!(outcome.client_refusals.is_empty(), "{client} → {server}");
            assert!(outcome.server_refusals.is_empty(), "{client} → {server}");
        }
    }
}

#[test]
fn accepts_peer_over_tls12_and_by_ip_address() {
    let mut setup = Setup::new(committed("jp/node/tls"), Some(committed("sg/node/tls")));
    setup.server_jurisdiction = "JP";
    setup.client_jurisdiction = "SG";
    setup.server_name = "127.0.0.1";
    setup.versions = TLS12_ONLY;
    let outcome = handshake(setup);
    assert_eq!(
        outcome.client.as_deref().ok(),
        Some(PONG),
        "{:?}",
        outcome.client
    );
    assert!(outcome.server.is_ok(), "{:?}", outcome.server);
}

#[test]
fn accepts_own_jurisdiction_node_by_dns_name() {
    let mut setup = Setup::new(committed("sg/node/tls"), Some(committed("sg/node/tls")));
    setup.client_jurisdiction = "SG";
    setup.server_name = "sg-node.kakehashi.test";
    let outcome = handshake(setup);
    assert_eq!(
        outcome.client.as_deref().ok(),
        Some(PONG),
        "{:?}",
        outcome.client
    );
    assert!(outcome.server.is_ok(), "{:?}", outcome.server);
}

// --- refused --------------------------------------------------------------------------------

#[test]
fn refuses_server_from_unknown_pki() {
    let server = issue(&LeafSpec {
        ca_dir: "fixtures/unknown-root/pki",
        policy_from: "fixtures/unknown-root/pki/banks/KKHAXXX0",
        ekus: vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ],
        not_before: (2025, 6, 1),
        not_after: (2035, 6, 1),
    });
    let outcome = handshake(Setup::new(server, Some(committed("jp/node/tls"))));
    assert_refused_by_client(&outcome, |e| matches!(e, CertificateError::UnknownIssuer));
    match &outcome.client_refusals[0] {
        TlsVerifyError::NotRecognized { verdict, kind } => {
            assert_eq!(*kind, RefusalKind::UnknownIssuer);
            assert!(!verdict.recognized());
            assert!(outcome.client_refusals[0].to_string().contains("JP"));
        }
        other => panic!("expected a recognition refusal, got {other}"),
    }
}

#[test]
fn refuses_client_whose_certificate_expired() {
    let client = issue(&LeafSpec {
        ca_dir: "jp",
        policy_from: "jp/node/tls",
        ekus: vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ],
        not_before: (2025, 6, 1),
        not_after: (2026, 6, 1),
    });
    let outcome = handshake(Setup::new(committed("sg/node/tls"), Some(client)));
    assert_refused_by_server(&outcome, |e| {
        matches!(e, CertificateError::ExpiredContext { time, not_after }
            if time.as_secs() == PINNED_TIME && not_after.as_secs() < PINNED_TIME)
    });
    let why = outcome.server_refusals[0].to_string();
    assert!(why.contains("expired"), "{why}");
    assert!(why.contains("§6.1.3(a)(2)"), "{why}");
}

#[test]
fn refuses_client_whose_certificate_is_revoked() {
    let spec = LeafSpec {
        ca_dir: "jp",
        policy_from: "jp/node/tls",
        ekus: vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth],
        not_before: (2025, 6, 1),
        not_after: (2035, 6, 1),
    };
    // A CRL of the JP issuing CA newer than the committed one, listing the issued leaf.
    let (issuer, _) = issuing_ca("jp");
    let crl = rcgen::CertificateRevocationListParams {
        this_update: rcgen::date_time_ymd(2026, 12, 1),
        next_update: rcgen::date_time_ymd(2027, 12, 1),
        crl_number: rcgen::SerialNumber::from_slice(&[0x7f]),
        issuing_distribution_point: None,
        revoked_certs: vec![rcgen::RevokedCertParams {
            serial_number: rcgen::SerialNumber::from_slice(ISSUED_SERIAL),
            revocation_time: rcgen::date_time_ymd(2026, 11, 1),
            reason_code: Some(rcgen::RevocationReason::KeyCompromise),
            invalidity_date: None,
        }],
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    }
    .signed_by(&issuer)
    .expect("sign CRL");

    // Without the fresh CRL the leaf is accepted; with it, refused as revoked.
    let accepted = handshake(Setup::new(committed("sg/node/tls"), Some(issue(&spec))));
    assert!(accepted.server.is_ok(), "{:?}", accepted.server);
    let mut setup = Setup::new(committed("sg/node/tls"), Some(issue(&spec)));
    setup.server_crls = vec![crl.der().to_vec()];
    let outcome = handshake(setup);
    assert_refused_by_server(&outcome, |e| matches!(e, CertificateError::Revoked));
    let why = outcome.server_refusals[0].to_string();
    assert!(why.contains("revoked"), "{why}");
    assert!(why.contains("§6.3"), "{why}");
}

#[test]
fn refuses_server_without_server_auth_eku() {
    // The committed wrong-purpose fixture is a JP leaf whose only EKU is clientAuth.
    let outcome = handshake(Setup::new(
        committed("fixtures/wrong-purpose/chain"),
        Some(committed("jp/node/tls")),
    ));
    assert_refused_by_client(&outcome, |e| {
        matches!(e, CertificateError::InvalidPurposeContext { required, presented }
            if *required == rustls::ExtendedKeyPurpose::ServerAuth
                && presented == &[rustls::ExtendedKeyPurpose::ClientAuth])
    });
    let why = outcome.client_refusals[0].to_string();
    assert!(why.contains("1.3.6.1.5.5.7.3.1"), "{why}");
}

#[test]
fn refuses_client_with_payment_signing_certificate() {
    // A bank's payment-signing certificate is recognized for payments, not for node TLS.
    let outcome = handshake(Setup::new(
        committed("sg/node/tls"),
        Some(committed("jp/banks/KKHAJPJ0")),
    ));
    assert_refused_by_server(&outcome, |e| matches!(e, CertificateError::InvalidPurpose));
    match &outcome.server_refusals[0] {
        TlsVerifyError::NotRecognized { kind, .. } => assert_eq!(*kind, RefusalKind::BadPurpose),
        other => panic!("expected a recognition refusal, got {other}"),
    }
}

#[test]
fn refuses_client_from_a_party_the_server_does_not_recognize() {
    // TH is a party to the agreement, but (in this derived agreement) no row says SG
    // recognizes TH.
    let client = issue(&LeafSpec {
        ca_dir: "th",
        policy_from: "th/banks/KKHATHB0",
        ekus: vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth],
        not_before: (2025, 6, 1),
        not_after: (2035, 6, 1),
    });
    let mut setup = Setup::new(committed("sg/node/tls"), Some(client));
    setup.mra = mra_nobody_recognizes_th();
    let outcome = handshake(setup);
    assert_refused_by_server(&outcome, |e| matches!(e, CertificateError::Other(_)));
    let why = outcome.server_refusals[0].to_string();
    assert!(why.contains("MRA §recognition"), "{why}");
    assert!(why.contains("TH"), "{why}");
}

#[test]
fn refuses_client_without_certificate() {
    let outcome = handshake(Setup::new(committed("sg/node/tls"), None));
    assert!(
        matches!(outcome.server, Err(rustls::Error::NoCertificatesPresented)),
        "{:?}",
        outcome.server
    );
    assert!(
        outcome.client.is_err(),
        "client must see the handshake fail"
    );
}

#[test]
fn refuses_server_whose_names_do_not_cover_the_dialled_name() {
    let mut setup = Setup::new(committed("sg/node/tls"), Some(committed("jp/node/tls")));
    setup.server_name = "jp-node.kakehashi.test";
    let outcome = handshake(setup);
    assert_refused_by_client(&outcome, |e| {
        matches!(e, CertificateError::NotValidForNameContext { presented, .. }
            if presented.iter().any(|n| n.contains("sg-node.kakehashi.test")))
    });
    assert!(matches!(
        outcome.client_refusals[0],
        TlsVerifyError::NameMismatch { .. }
    ));
}

// --- the committed node TLS fixtures (certs/README.md, "Node TLS fixtures") ------------------

/// A node of `relying`, with its committed identity, meets `peer` twice at `now`: first `peer`
/// dials it (its server verifier judges `peer`), then it dials `peer` (its client-side
/// verifier judges `peer`). The other end always accepts the node, so any refusal is the
/// node's. Returns (incoming, outgoing).
fn meet(relying: &'static str, peer: &str, now: u64) -> (Outcome, Outcome) {
    meet_under(mra(), relying, peer, now)
}

/// [`meet`] under the agreement `mra`.
fn meet_under(mra: Arc<Mra>, relying: &'static str, peer: &str, now: u64) -> (Outcome, Outcome) {
    let local = committed(&format!("{}/node/tls", relying.to_ascii_lowercase()));
    let mut incoming = Setup::new(local.clone(), Some(committed(peer)));
    incoming.server_jurisdiction = relying;
    incoming.now = now;
    incoming.mra = Arc::clone(&mra);
    let mut outgoing = Setup::new(committed(peer), Some(local));
    outgoing.client_jurisdiction = relying;
    outgoing.now = now;
    outgoing.mra = mra;
    (handshake(incoming), handshake(outgoing))
}

/// Asserts that both meetings failed at `relying`'s verifier with `expected`, and that the
/// refusal it reported is of the kind `kind` accepts.
#[track_caller]
fn assert_refused_both_ways(
    relying: &str,
    (incoming, outgoing): &(Outcome, Outcome),
    expected: fn(&CertificateError) -> bool,
    kind: fn(&RefusalKind) -> bool,
) {
    assert_refused_by_server(incoming, expected);
    assert_refused_by_client(outgoing, expected);
    for refusal in [&incoming.server_refusals[0], &outgoing.client_refusals[0]] {
        match refusal {
            TlsVerifyError::NotRecognized { verdict, kind: k } => {
                assert!(kind(k), "{relying}: wrong refusal kind {k:?}: {refusal}");
                assert!(!verdict.recognized(), "{relying}: {refusal}");
                assert_eq!(verdict.relying(), relying, "{refusal}");
            }
            other => panic!("{relying}: expected a recognition refusal, got {other}"),
        }
    }
}

#[test]
fn jp_and_sg_nodes_refuse_the_expired_node_fixture_at_the_pinned_time_and_the_day_it_was_added() {
    for now in [PINNED_TIME, NODE_FIXTURES_ADDED] {
        for relying in ["JP", "SG"] {
            let meetings = meet(relying, "fixtures/node-expired/chain", now);
            assert_refused_both_ways(
                relying,
                &meetings,
                |e| {
                    matches!(e, CertificateError::ExpiredContext { time, not_after }
                        if not_after.as_secs() == NODE_EXPIRED_NOT_AFTER
                            && time.as_secs() > NODE_EXPIRED_NOT_AFTER)
                },
                |k| matches!(k, RefusalKind::Expired { .. }),
            );
            let why = meetings.0.server_refusals[0].to_string();
            assert!(why.contains("§6.1.3(a)(2)"), "{why}");
        }
    }
}

#[test]
fn jp_and_sg_nodes_refuse_the_revoked_node_fixture_by_the_committed_crl() {
    // No CRL is supplied here: jp/crl.pem, named by the agreement, lists the fixture.
    for relying in ["JP", "SG"] {
        let meetings = meet(relying, "fixtures/node-revoked/chain", PINNED_TIME);
        assert_refused_both_ways(
            relying,
            &meetings,
            |e| matches!(e, CertificateError::Revoked),
            |k| matches!(k, RefusalKind::Revoked),
        );
        let why = meetings.1.client_refusals[0].to_string();
        assert!(why.contains("revoked"), "{why}");
        assert!(why.contains("§6.3"), "{why}");
    }
}

#[test]
fn jp_and_sg_nodes_refuse_the_node_fixture_from_an_unknown_pki() {
    for relying in ["JP", "SG"] {
        let meetings = meet(relying, "fixtures/node-unknown-pki/chain", PINNED_TIME);
        assert_refused_both_ways(
            relying,
            &meetings,
            |e| matches!(e, CertificateError::UnknownIssuer),
            |k| matches!(k, RefusalKind::UnknownIssuer),
        );
    }
}

#[test]
fn jp_and_sg_nodes_refuse_the_th_node_whose_jurisdiction_they_do_not_recognize() {
    // TH is a party to the agreement and its node certificate is valid, but (in this derived
    // agreement) no row says JP or SG recognizes TH: the refusal is the agreement's,
    // explained, not a path error.
    let derived = mra_nobody_recognizes_th();
    for relying in ["JP", "SG"] {
        let meetings = meet_under(Arc::clone(&derived), relying, "th/node/tls", PINNED_TIME);
        assert_refused_both_ways(
            relying,
            &meetings,
            |e| matches!(e, CertificateError::Other(_)),
            |k| matches!(k, RefusalKind::Other),
        );
        for refusal in [
            &meetings.0.server_refusals[0],
            &meetings.1.client_refusals[0],
        ] {
            let why = refusal.to_string();
            assert!(why.contains("MRA §recognition"), "{why}");
            assert!(why.contains("TH"), "{why}");
        }
    }
}

#[test]
fn refuses_to_build_on_an_agreement_without_the_local_party() {
    let err = NodeServerCertVerifier::new(mra(), "XX").expect_err("XX is not a party");
    assert!(err.to_string().contains("XX"), "{err}");
}
