//! TLS for the node's listeners and its calls to peers, built on the mutual-recognition
//! verifiers of `kakehashi_pki::tls`.
//!
//! - [`relay_server_config`]: the relay listener. Client authentication is mandatory; a client
//!   is accepted only when its chain is recognized for `node-tls` by this node's jurisdiction
//!   under the agreement (DESIGN.md §1, "TLS").
//! - [`public_server_config`]: the participant listener. A client certificate is optional at
//!   the handshake (quotes and health are public), but one that is presented must be
//!   recognized by this node's jurisdiction for participant TLS (a bank) or operator
//!   ([`NodeClientCertVerifier::participants`]); a node TLS or payment-signing certificate is
//!   refused. The service reads the caller's identity off it and decides per RPC (see the
//!   `service` module).
//! - [`relay_endpoint`]: a tonic endpoint to a peer's relay listener that presents this node's
//!   identity and recognizes the server under the agreement.
//!
//! Only the ring provider is used ([`install_crypto_provider`]); with aws-lc-rs also compiled
//! in, rustls could not pick a process default (ARCHITECTURE.md, "Stack facts"). Every refusal
//! the verifiers make is logged with `tracing::warn!` and the verdict's full explanation.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kakehashi_pki::mra::Mra;
use kakehashi_pki::tls::{
    NodeClientCertVerifier, NodeServerCertVerifier, RefusalHook, TlsSetupError, TlsVerifyError,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};
use tonic::transport::{ClientTlsConfig, Endpoint};

use crate::config::{Limits, RelayAddress};
use crate::metrics::Listener;

/// ALPN protocol id of HTTP/2 over TLS (RFC 9113 §3.2); gRPC requires it.
pub const ALPN_H2: &[u8] = b"h2";

/// Largest PEM file read for an identity: a chain of a few certificates is a few KiB.
pub const IDENTITY_FILE_BYTES_MAX: u64 = 1024 * 1024;

/// Protocol versions offered: TLS 1.3 first (RFC 8446), TLS 1.2 for older stacks (RFC 5246;
/// rustls offers only AEAD suites with forward secrecy there).
static PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Installs ring as the process-wide rustls crypto provider. Idempotent: a provider already
/// installed (by an earlier call, or by the embedding program) is kept.
pub fn install_crypto_provider() {
    // `install_default` fails only when a provider is already installed, which is the state
    // this function is meant to reach.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// `certificate chain` or `private key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is larger than [`IDENTITY_FILE_BYTES_MAX`].
    #[error("{what} {path} is larger than {max} bytes; is this the right file?")]
    TooLarge {
        /// `certificate chain` or `private key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The bound.
        max: u64,
    },
    /// The chain file holds no PEM `CERTIFICATE` block, or one does not decode.
    #[error("certificate chain {path}: {message}; expected PEM CERTIFICATE blocks, leaf first")]
    BadChain {
        /// The file (or `<memory>`).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The key file holds no PKCS#8 `PRIVATE KEY` block.
    #[error("private key {path}: {message}; expected one PEM PRIVATE KEY block (PKCS#8)")]
    BadKey {
        /// The file (or `<memory>`).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the identity (for example the key does not match the leaf).
    #[error("TLS identity {cert} / {key} refused: {source}")]
    Identity {
        /// The chain file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's reason.
        source: rustls::Error,
    },
    /// The mutual-recognition verifier could not be built.
    #[error("cannot verify TLS peers: {0}")]
    Verifier(#[from] TlsSetupError),
    /// The peer's relay endpoint could not be configured.
    #[error("peer {jurisdiction} relay endpoint: {source}")]
    Endpoint {
        /// The peer.
        jurisdiction: String,
        /// tonic's error.
        source: tonic::transport::Error,
    },
}

/// A node's TLS identity: its certificate chain (leaf first) and PKCS#8 private key.
pub struct TlsIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivatePkcs8KeyDer<'static>,
    chain_pem: Vec<u8>,
    key_pem: Vec<u8>,
    cert_path: PathBuf,
    key_path: PathBuf,
}

impl std::fmt::Debug for TlsIdentity {
    // The key stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("cert", &self.cert_path)
            .field("certificates", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        Self {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            chain_pem: self.chain_pem.clone(),
            key_pem: self.key_pem.clone(),
            cert_path: self.cert_path.clone(),
            key_path: self.key_path.clone(),
        }
    }
}

fn read_bounded(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let read = |source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    };
    if std::fs::metadata(path).map_err(read)?.len() > IDENTITY_FILE_BYTES_MAX {
        return Err(TlsError::TooLarge {
            what,
            path: path.to_owned(),
            max: IDENTITY_FILE_BYTES_MAX,
        });
    }
    std::fs::read(path).map_err(read)
}

impl TlsIdentity {
    /// Reads a PEM chain (leaf first) and a PEM PKCS#8 key.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let chain_pem = read_bounded("certificate chain", cert)?;
        let key_pem = read_bounded("private key", key)?;
        Self::from_pem_at(chain_pem, key_pem, cert, key)
    }

    /// An identity from PEM bytes already in memory.
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        let memory = Path::new("<memory>");
        Self::from_pem_at(chain_pem.to_vec(), key_pem.to_vec(), memory, memory)
    }

    fn from_pem_at(
        chain_pem: Vec<u8>,
        key_pem: Vec<u8>,
        cert_path: &Path,
        key_path: &Path,
    ) -> Result<Self, TlsError> {
        let bad_chain = |message: String| TlsError::BadChain {
            path: cert_path.to_owned(),
            message,
        };
        let chain = CertificateDer::pem_slice_iter(&chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad_chain(e.to_string()))?;
        if chain.is_empty() {
            return Err(bad_chain("no certificate found".to_owned()));
        }
        let key = match PrivateKeyDer::from_pem_slice(&key_pem) {
            Ok(PrivateKeyDer::Pkcs8(key)) => key,
            Ok(_) => {
                return Err(TlsError::BadKey {
                    path: key_path.to_owned(),
                    message: "the key is not PKCS#8 (convert it with `openssl pkcs8 -topk8 \
                              -nocrypt`)"
                        .to_owned(),
                });
            }
            Err(e) => {
                return Err(TlsError::BadKey {
                    path: key_path.to_owned(),
                    message: e.to_string(),
                });
            }
        };
        let identity = Self {
            chain,
            key,
            chain_pem,
            key_pem,
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
        };
        // Building a certified key checks that the private key belongs to the leaf, so a
        // mismatched pair fails here, at start-up, not on the first handshake.
        identity.certified_key()?;
        Ok(identity)
    }

    /// The chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The leaf certificate's DER.
    pub fn leaf_der(&self) -> &[u8] {
        // `from_pem_at` refuses an empty chain.
        self.chain.first().map_or(&[], |c| c.as_ref())
    }

    fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.clone_key())
    }

    fn certified_key(&self) -> Result<rustls::sign::CertifiedKey, TlsError> {
        rustls::sign::CertifiedKey::from_der(self.chain.clone(), self.private_key(), &provider())
            .map_err(|source| self.identity_error(source))
    }

    fn identity_error(&self, source: rustls::Error) -> TlsError {
        TlsError::Identity {
            cert: self.cert_path.clone(),
            key: self.key_path.clone(),
            source,
        }
    }

    /// The identity in tonic's form, for a client that presents it (a relay client, or an
    /// operator calling the admin RPCs).
    pub fn tonic_identity(&self) -> tonic::transport::Identity {
        tonic::transport::Identity::from_pem(&self.chain_pem, &self.key_pem)
    }
}

/// Most refused-certificate lines one listener (or the relay client) logs per
/// [`REFUSAL_LOG_WINDOW`]; the rest are counted and reported with the next line logged.
const REFUSAL_LOG_LINES_MAX: u32 = 10;

/// The window of [`REFUSAL_LOG_LINES_MAX`].
const REFUSAL_LOG_WINDOW: Duration = Duration::from_secs(60);

/// A refusal hook that logs the full explanation and names the listener (or peer), at most
/// [`REFUSAL_LOG_LINES_MAX`] lines a minute: anyone can open handshakes with a certificate of
/// their own making, and one WARN line with a verdict's explanation per handshake would let
/// them fill the operator's disk. The listener's refusal summary still counts every refused
/// handshake.
fn log_refusals(side: &'static str) -> RefusalHook {
    let limiter = std::sync::Mutex::new(LogLimiter::new(REFUSAL_LOG_LINES_MAX, REFUSAL_LOG_WINDOW));
    Arc::new(move |err: &TlsVerifyError| {
        let allowed = limiter
            .lock()
            .map(|mut l| l.admit(std::time::Instant::now()))
            .unwrap_or(Some(0));
        if let Some(suppressed) = allowed {
            tracing::warn!(
                side,
                reason = %err,
                suppressed_before = suppressed,
                "refused TLS peer certificate"
            );
        }
    })
}

/// Admits at most `lines` log lines per `window`, counting the lines it refuses.
#[derive(Debug)]
struct LogLimiter {
    lines: u32,
    window: Duration,
    started: Option<std::time::Instant>,
    logged: u32,
    suppressed: u64,
}

impl LogLimiter {
    fn new(lines: u32, window: Duration) -> Self {
        Self {
            lines,
            window,
            started: None,
            logged: 0,
            suppressed: 0,
        }
    }

    /// `Some(n)` when a line may be logged at `now`, `n` being how many were refused since
    /// the last line logged; `None` when this one is refused.
    fn admit(&mut self, now: std::time::Instant) -> Option<u64> {
        let expired = self
            .started
            .is_none_or(|started| now.saturating_duration_since(started) >= self.window);
        if expired {
            self.started = Some(now);
            self.logged = 0;
        }
        if self.logged < self.lines {
            self.logged += 1;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed = self.suppressed.saturating_add(1);
            None
        }
    }
}

/// The server configuration of the relay listener: client certificate mandatory and
/// recognized for node TLS by `jurisdiction` under `mra` (plus `crls`, DER, fresher than the
/// agreement's), ALPN h2, TLS 1.3 and 1.2, ring.
pub fn relay_server_config(
    identity: &TlsIdentity,
    mra: Arc<Mra>,
    jurisdiction: &str,
    crls: Vec<Vec<u8>>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let verifier = NodeClientCertVerifier::new(mra, jurisdiction)?
        .with_crls(crls)
        .with_refusal_hook(log_refusals(Listener::Relay.as_str()));
    server_config(identity, Arc::new(verifier))
}

/// The server configuration of the public listener: a client certificate is optional; one
/// that is presented must be recognized by `jurisdiction` for participant TLS or operator.
pub fn public_server_config(
    identity: &TlsIdentity,
    mra: Arc<Mra>,
    jurisdiction: &str,
    crls: Vec<Vec<u8>>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let verifier = NodeClientCertVerifier::participants(mra, jurisdiction)?
        .with_crls(crls)
        .with_refusal_hook(log_refusals(Listener::Public.as_str()));
    server_config(identity, Arc::new(OptionalClientCert(verifier)))
}

fn server_config(
    identity: &TlsIdentity,
    verifier: Arc<dyn ClientCertVerifier>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(|e| identity.identity_error(e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain.clone(), identity.private_key())
        .map_err(|e| identity.identity_error(e))?;
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// A client-certificate verifier that lets a client without a certificate through, for the
/// public listener. A presented certificate is verified exactly as the inner verifier does.
#[derive(Debug)]
struct OptionalClientCert(NodeClientCertVerifier);

impl ClientCertVerifier for OptionalClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.0.verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// A tonic endpoint to one relay listener of the peer of `jurisdiction`: presents `identity`
/// as client certificate, accepts the server only when `own_jurisdiction` recognizes its chain
/// for node TLS under `mra` and its subjectAltName covers `address.server_name`; connect, TLS
/// handshake and request deadlines from `limits` (`connect_timeout_ms`,
/// `tls_handshake_timeout_ms`, `relay_timeout_ms`), HTTP/2 keepalive, TCP_NODELAY.
///
/// Call [`install_crypto_provider`] first: tonic's connector uses the process default.
pub fn relay_endpoint(
    jurisdiction: &str,
    address: &RelayAddress,
    identity: &TlsIdentity,
    mra: Arc<Mra>,
    own_jurisdiction: &str,
    limits: &Limits,
) -> Result<Endpoint, TlsError> {
    let verifier = NodeServerCertVerifier::new(mra, own_jurisdiction)?
        .with_refusal_hook(log_refusals("relay client"));
    let tls = ClientTlsConfig::new()
        .domain_name(address.server_name.clone())
        .identity(identity.tonic_identity())
        .timeout(Duration::from_millis(limits.tls_handshake_timeout_ms));
    Endpoint::from(address.uri.clone())
        .connect_timeout(Duration::from_millis(limits.connect_timeout_ms))
        .timeout(Duration::from_millis(limits.relay_timeout_ms))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(limits.http2_keepalive_interval_secs))
        .keep_alive_timeout(Duration::from_secs(limits.http2_keepalive_timeout_secs))
        .tls_config_with_verifier(tls, Arc::new(verifier))
        .map_err(|source| TlsError::Endpoint {
            jurisdiction: jurisdiction.to_owned(),
            source,
        })
}

/// The DER of the client's leaf certificate on a request that arrived over TLS with a client
/// certificate (already recognized by the listener's verifier); `None` otherwise.
pub fn peer_leaf_der<T>(request: &tonic::Request<T>) -> Option<Vec<u8>> {
    let certs = request.peer_certs()?;
    certs.first().map(|leaf| leaf.as_ref().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Clock as _, SystemClock};

    /// Before the limiter, every refused handshake logged its own WARN line: a stranger's
    /// self-made certificate, sent in a loop, wrote as many lines as handshakes.
    #[test]
    fn refused_certificates_log_a_bounded_number_of_lines_per_window() {
        let mut limiter = LogLimiter::new(3, Duration::from_secs(60));
        let t0 = std::time::Instant::now();
        let first: Vec<_> = (0..10).map(|_| limiter.admit(t0)).collect();
        assert_eq!(first[..3], [Some(0), Some(0), Some(0)]);
        assert!(first[3..].iter().all(Option::is_none), "{first:?}");
        // Within the window nothing more is logged, however many come.
        assert_eq!(limiter.admit(t0 + Duration::from_secs(59)), None);
        // The next window's first line reports the 8 refused meanwhile, once.
        let later = t0 + Duration::from_secs(61);
        assert_eq!(limiter.admit(later), Some(8));
        assert_eq!(limiter.admit(later), Some(0));
    }

    fn certs() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../certs")
    }

    fn jp_identity() -> TlsIdentity {
        let dir = certs().join("jp/node");
        TlsIdentity::load(&dir.join("tls.pem"), &dir.join("tls.key.pem")).expect("JP identity")
    }

    fn mra() -> Arc<Mra> {
        Arc::new(Mra::load(&certs().join("mra.toml")).expect("mra"))
    }

    #[test]
    fn loads_the_committed_node_identity_with_its_chain() {
        let identity = jp_identity();
        assert!(identity.chain().len() >= 2, "leaf and issuing CA");
        assert_eq!(identity.leaf_der(), identity.chain()[0].as_ref());
        assert!(!format!("{identity:?}").contains("PRIVATE"));
    }

    #[test]
    fn refuses_a_key_that_does_not_belong_to_the_leaf() {
        let dir = certs();
        let err = TlsIdentity::load(
            &dir.join("jp/node/tls.pem"),
            &dir.join("sg/node/tls.key.pem"),
        )
        .expect_err("SG key with JP leaf");
        assert!(matches!(err, TlsError::Identity { .. }), "{err}");
    }

    #[test]
    fn refuses_missing_and_malformed_files_naming_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope.pem");
        let key = certs().join("jp/node/tls.key.pem");
        let err = TlsIdentity::load(&missing, &key).expect_err("missing");
        assert!(err.to_string().contains("nope.pem"), "{err}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, b"not pem at all").expect("write");
        let err = TlsIdentity::load(&empty, &key).expect_err("no certificate");
        assert!(matches!(err, TlsError::BadChain { .. }), "{err}");
        let err = TlsIdentity::load(&certs().join("jp/node/tls.pem"), &empty).expect_err("no key");
        assert!(matches!(err, TlsError::BadKey { .. }), "{err}");
    }

    fn chain_of(name: &str) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_file_iter(certs().join(name))
            .expect("open")
            .collect::<Result<Vec<_>, _>>()
            .expect("parse")
    }

    /// Issue 12: the public listener takes a bank's participant-TLS certificate and the
    /// operator's, of its own jurisdiction; a node TLS certificate (the old operator
    /// credential), a payment-signing certificate and a foreign bank's TLS certificate are
    /// refused at the handshake.
    #[test]
    fn public_verifier_makes_the_client_certificate_optional_only() {
        let strict = NodeClientCertVerifier::participants(mra(), "JP").expect("verifier");
        assert!(strict.client_auth_mandatory());
        let optional = OptionalClientCert(
            NodeClientCertVerifier::participants(mra(), "JP").expect("verifier"),
        );
        assert!(optional.offer_client_auth());
        assert!(!optional.client_auth_mandatory());
        let now = rustls::pki_types::UnixTime::since_unix_epoch(Duration::from_secs(
            SystemClock.unix_secs(),
        ));
        let verdict = |name: &str| {
            let chain = chain_of(name);
            optional
                .verify_client_cert(&chain[0], &chain[1..], now)
                .is_ok()
        };
        assert!(verdict("jp/banks/KKHAJPJ0-tls.pem"));
        assert!(verdict("jp/operator.pem"));
        assert!(!verdict("jp/banks/KKHAJPJ0.pem"), "payment signing");
        assert!(!verdict("jp/node/tls.pem"), "node TLS");
        assert!(
            !verdict("sg/banks/KKHASGS0-tls.pem"),
            "no row carries participant-tls"
        );
        assert!(
            !verdict("sg/operator.pem"),
            "another jurisdiction's operator"
        );
    }

    #[test]
    fn both_listeners_negotiate_h2() {
        let identity = jp_identity();
        let relay = relay_server_config(&identity, mra(), "JP", Vec::new()).expect("relay");
        let public = public_server_config(&identity, mra(), "JP", Vec::new()).expect("public");
        for config in [&relay, &public] {
            assert_eq!(config.alpn_protocols, vec![ALPN_H2.to_vec()]);
        }
    }

    #[test]
    fn refuses_a_jurisdiction_the_agreement_does_not_know() {
        let err = relay_server_config(&jp_identity(), mra(), "XX", Vec::new())
            .expect_err("XX is not a party");
        assert!(err.to_string().contains("XX"), "{err}");
    }

    #[test]
    fn install_crypto_provider_is_idempotent() {
        install_crypto_provider();
        install_crypto_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
