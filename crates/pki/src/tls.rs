//! rustls certificate verifiers for node mutual TLS: a node accepts a TLS peer only when the
//! peer's chain is recognized for [`Purpose::NodeTls`] by the node's own jurisdiction under
//! the mutual-recognition agreement.
//!
//! - [`NodeServerCertVerifier`] serves a node acting as TLS client: the server's chain must be
//!   recognized, its leaf must assert id-kp-serverAuth, and its subjectAltName must match the
//!   name the client dialled (RFC 6125 §6.4, RFC 9525 §6.3).
//! - [`NodeClientCertVerifier`] serves a node acting as TLS server: a client certificate is
//!   mandatory, its chain must be recognized and its leaf must assert id-kp-clientAuth.
//!
//! [`NodeClientCertVerifier::participants`] builds the client verifier of a node's public
//! listener instead: the chain must be recognized for [`Purpose::ParticipantTls`] or
//! [`Purpose::Operator`], and the leaf must assert id-kp-clientAuth and that purpose's own EKU
//! ([`Purpose::marker_eku`]) literally.
//!
//! Both check the TLS 1.2 and 1.3 handshake signatures with the ring provider's algorithms
//! (the provider the rest of the workspace installs), and take the validation time from the
//! `now` rustls passes (its `TimeProvider`), so tests can pin it.
//!
//! Failures become `rustls::Error::InvalidCertificate` with the most precise
//! [`CertificateError`] rustls has, so the peer receives the matching alert (RFC 8446 §6.2:
//! `certificate_expired`, `certificate_revoked`, `unknown_ca`, `unsupported_certificate`…).
//! Where rustls has no variant that carries the facts (a mutual-recognition refusal, a broken
//! rule of RFC 5280 §6 other than time and revocation), the error is
//! `CertificateError::Other` holding a [`TlsVerifyError`] with the whole explanation. This
//! crate does not log: a caller that wants every refusal explained in its log (the precise
//! variants carry less than the verdict) installs a [`RefusalHook`], which sees the
//! [`TlsVerifyError`] with the full verdict before the handshake fails.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, ExtendedKeyPurpose, OtherError,
    SignatureScheme,
};

use crate::cert::Cert;
use crate::crl::CrlError;
use crate::error::Error;
use crate::mra::{Mra, MraError, RecognitionVerdict};
use crate::profile::{PeerName, check_peer_name};
use crate::purpose::{EKU_CLIENT_AUTH, EKU_SERVER_AUTH, Purpose};
use crate::time::UnixTime;

/// Most intermediates accepted from a TLS peer. A node presents its issuing CA (and perhaps its
/// root); 8 leaves room for deeper hierarchies while bounding the parsing and path-building work
/// one handshake can cause (the path builder keeps its own, tighter depth bound).
pub const PEER_INTERMEDIATES_MAX: usize = 8;

/// Why a TLS peer's certificate was refused, with everything an operator needs in the log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TlsVerifyError {
    /// A presented certificate is not valid DER or breaks the certificate syntax.
    #[error("peer certificate {index} cannot be parsed: {source}")]
    BadEncoding {
        /// 0 is the end-entity certificate, 1.. the intermediates in the order sent.
        index: usize,
        /// What the parser found.
        source: Error,
    },
    /// The leaf does not assert the extended key usage this side of TLS needs.
    #[error(
        "peer certificate {subject} lacks extended key usage {required} (it has {present:?}) \
         [RFC 5280 §4.2.1.12]"
    )]
    MissingEku {
        /// The leaf's subject.
        subject: String,
        /// The OID required: id-kp-serverAuth, id-kp-clientAuth, or a client identity's own EKU.
        required: &'static str,
        /// The OIDs present (empty when the extension is absent).
        present: Vec<String>,
    },
    /// The chain is not recognized for the verifier's purpose by the local jurisdiction.
    #[error(
        "peer chain not recognized by {} for {}: {}",
        .verdict.relying,
        .verdict.purpose,
        explain(verdict)
    )]
    NotRecognized {
        /// The verdict, with the deciding rule, the certificate concerned and every check.
        verdict: Box<RecognitionVerdict>,
        /// What kind of failure it was, for the TLS alert.
        kind: RefusalKind,
    },
    /// The server's subjectAltName does not cover the name the client dialled (RFC 6125
    /// §6.4, RFC 9525 §6.3).
    #[error("peer certificate {subject}: {source}")]
    NameMismatch {
        /// The leaf's subject.
        subject: String,
        /// The name dialled.
        expected: ServerName<'static>,
        /// The mismatch, with the names the certificate presents.
        source: Error,
    },
    /// The peer sent more intermediates than [`PEER_INTERMEDIATES_MAX`].
    #[error("peer sent {count} intermediate certificates, more than the {count_max} accepted")]
    TooManyIntermediates {
        /// How many were sent.
        count: usize,
        /// The bound.
        count_max: usize,
    },
    /// The time rustls passed does not fit the verifier's time type.
    #[error("validation time {seconds} s after the epoch is out of range")]
    TimeOutOfRange {
        /// The seconds rustls passed.
        seconds: u64,
    },
}

/// The classes of refusal that TLS alerts distinguish (RFC 8446 §6.2), read off a verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusalKind {
    /// A signature on the path does not verify.
    BadSignature,
    /// The leaf's extended key usage does not permit node TLS.
    BadPurpose,
    /// A certificate on the path has expired.
    Expired {
        /// Its notAfter.
        not_after: UnixTime,
        /// The validation time.
        now: UnixTime,
    },
    /// A certificate on the path is not valid yet.
    NotYetValid {
        /// Its notBefore.
        not_before: UnixTime,
        /// The validation time.
        now: UnixTime,
    },
    /// Anything else: a mutual-recognition clause, a constraint of RFC 5280 §6.1.
    Other,
    /// A certificate on the path is revoked.
    Revoked,
    /// Revocation status could not be established (no usable CRL where one is required).
    RevocationUnknown,
    /// A critical extension the verifier does not process.
    UnhandledCriticalExtension,
    /// The path leads to no anchor of the agreement.
    UnknownIssuer,
}

/// The deciding failure of a verdict in one line: rule, certificate, message.
fn explain(verdict: &RecognitionVerdict) -> String {
    match &verdict.reason {
        Some(reason) => match &reason.cert {
            Some(c) => format!(
                "{} [{}] (certificate {} on the path: {}, serial {})",
                reason.message, reason.rule, c.position, c.subject, c.serial
            ),
            None => format!("{} [{}]", reason.message, reason.rule),
        },
        None => "no reason recorded".to_owned(),
    }
}

/// Why a verifier could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The agreement has no party with the local jurisdiction's code.
    #[error("the agreement has no jurisdiction `{code}`; use one of its party codes")]
    UnknownJurisdiction {
        /// The code given.
        code: String,
    },
    /// The agreement's signatures do not allow relying on it (MRA §signatures).
    #[error("refusing the agreement: {0}")]
    Mra(#[from] MraError),
    /// A trust anchor of the agreement does not parse.
    #[error("anchor {index} of {jurisdiction} cannot be parsed: {source}")]
    Anchor {
        /// The jurisdiction listing it.
        jurisdiction: String,
        /// Its index in the jurisdiction's anchor list.
        index: usize,
        /// What the parser found.
        source: Error,
    },
}

/// Which end of the TLS connection the peer is, and so which EKU its leaf needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PeerRole {
    Client,
    Server,
}

impl PeerRole {
    fn eku(self) -> &'static str {
        match self {
            Self::Client => EKU_CLIENT_AUTH,
            Self::Server => EKU_SERVER_AUTH,
        }
    }

    fn purpose(self) -> ExtendedKeyPurpose {
        match self {
            Self::Client => ExtendedKeyPurpose::ClientAuth,
            Self::Server => ExtendedKeyPurpose::ServerAuth,
        }
    }
}

/// What both verifiers share: the agreement, the local jurisdiction and the handshake
/// signature algorithms.
#[derive(Clone)]
struct NodeTls {
    mra: Arc<Mra>,
    relying: String,
    /// What the peer's chain may be recognized for, tried in order: node TLS for the relay,
    /// participant TLS or operator on the public listener.
    purposes: Vec<Purpose>,
    algorithms: WebPkiSupportedAlgorithms,
    hook: Option<RefusalHook>,
    extra_crls: Vec<Vec<u8>>,
}

/// A callback that sees every refused peer, for logging.
pub type RefusalHook = Arc<dyn Fn(&TlsVerifyError) + Send + Sync>;

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeTls")
            .field("agreement", &self.mra.agreement_id)
            .field("relying", &self.relying)
            .finish_non_exhaustive()
    }
}

impl NodeTls {
    fn new(mra: Arc<Mra>, relying: &str) -> Result<Self, TlsSetupError> {
        if mra.jurisdiction(relying).is_none() {
            return Err(TlsSetupError::UnknownJurisdiction {
                code: relying.to_owned(),
            });
        }
        // Refuse at start-up what recognition would refuse on every handshake (MRA
        // §signatures), so a misconfigured node fails loudly instead of rejecting every peer.
        if !mra.unsigned_allowed() {
            mra.verify_signatures()?;
        }
        Ok(Self {
            mra,
            relying: relying.to_owned(),
            purposes: vec![Purpose::NodeTls],
            algorithms: rustls::crypto::ring::default_provider().signature_verification_algorithms,
            hook: None,
            extra_crls: Vec::new(),
        })
    }

    /// Parses, recognizes and checks the peer's leaf for `role`; returns the parsed leaf.
    fn verify_peer(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        role: PeerRole,
        now: rustls::pki_types::UnixTime,
    ) -> Result<Cert, TlsVerifyError> {
        if intermediates.len() > PEER_INTERMEDIATES_MAX {
            return Err(TlsVerifyError::TooManyIntermediates {
                count: intermediates.len(),
                count_max: PEER_INTERMEDIATES_MAX,
            });
        }
        let seconds = now.as_secs();
        let now = i64::try_from(seconds)
            .map(UnixTime)
            .map_err(|_| TlsVerifyError::TimeOutOfRange { seconds })?;
        let leaf = Cert::from_der(end_entity)
            .map_err(|source| TlsVerifyError::BadEncoding { index: 0, source })?;
        let pool = intermediates
            .iter()
            .enumerate()
            .map(|(i, der)| {
                Cert::from_der(der).map_err(|source| TlsVerifyError::BadEncoding {
                    index: i + 1,
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let purpose = self.recognize(&leaf, &pool, now)?;
        // Purpose::NodeTls accepts either TLS usage because one certificate serves both ends;
        // each side of the handshake asks for its own (RFC 5280 §4.2.1.12). anyExtendedKeyUsage
        // is not enough: a node certificate names the TLS role it plays.
        let present = leaf.extended_key_usage().unwrap_or(&[]);
        if !present.iter().any(|oid| oid == role.eku()) {
            return Err(TlsVerifyError::MissingEku {
                subject: leaf.subject_display().to_owned(),
                required: role.eku(),
                present: present.to_vec(),
            });
        }
        // Path validation lets a leaf without an EKU extension (or with anyExtendedKeyUsage)
        // through; a client identity must name its purpose itself.
        if let Some(marker) = purpose.marker_eku()
            && !present.iter().any(|oid| oid == marker)
        {
            return Err(TlsVerifyError::MissingEku {
                subject: leaf.subject_display().to_owned(),
                required: marker,
                present: present.to_vec(),
            });
        }
        Ok(leaf)
    }

    /// MRA recognition of the chain by the local jurisdiction at `now`, for the first of the
    /// verifier's purposes that recognizes it; the refusal of the first purpose otherwise.
    fn recognize(
        &self,
        leaf: &Cert,
        pool: &[Cert],
        now: UnixTime,
    ) -> Result<Purpose, TlsVerifyError> {
        let recognize = |purpose| {
            self.mra
                .recognize(&self.relying, purpose, leaf, pool, &self.extra_crls, now)
        };
        // The constructors never leave the list empty; node TLS is the conservative default.
        let mut purposes = self.purposes.iter().copied();
        let first = purposes.next().unwrap_or(Purpose::NodeTls);
        let verdict = recognize(first);
        if verdict.recognized {
            return Ok(first);
        }
        if let Some(purpose) = purposes.find(|p| recognize(*p).recognized) {
            return Ok(purpose);
        }
        let kind = self.classify(&verdict, leaf, pool, now);
        Err(TlsVerifyError::NotRecognized {
            verdict: Box::new(verdict),
            kind,
        })
    }

    /// Reads the kind of refusal off the verdict's deciding rule, which cites
    /// [`Error::rule`] for path-validation failures.
    fn classify(
        &self,
        verdict: &RecognitionVerdict,
        leaf: &Cert,
        pool: &[Cert],
        now: UnixTime,
    ) -> RefusalKind {
        let Some(reason) = &verdict.reason else {
            return RefusalKind::Other;
        };
        let rule = reason.rule.as_str();
        let unknown_issuer = Error::UnknownIssuer {
            issuer: String::new(),
        };
        let revocation = Error::Revocation(CrlError::Revoked { index: 0 });
        let expired = Error::Expired {
            now,
            not_after: now,
            cert: String::new(),
        };
        let eku = Error::EkuMismatch {
            required: Vec::new(),
            present: Vec::new(),
        };
        let critical = Error::UnknownCriticalExtension { oid: String::new() };
        let signature = Error::BadSignature(crate::signature::SignatureError::BadSignature {
            key: String::new(),
        });
        if rule == unknown_issuer.rule() {
            RefusalKind::UnknownIssuer
        } else if rule == revocation.rule() {
            // The messages of `CrlError::StatusUnknown` and `CrlError::Revoked`, as the path error
            // prints them; anything else under this rule (a malformed CRL) is left general.
            if reason.message.contains("revocation status of certificate") {
                RefusalKind::RevocationUnknown
            } else if reason.message.contains("is revoked") {
                RefusalKind::Revoked
            } else {
                RefusalKind::Other
            }
        } else if rule == expired.rule() {
            // Expired and not-yet-valid cite the same rule (RFC 5280 §6.1.3(a)(2)): look at
            // the certificate concerned to tell them apart.
            let cert = reason.cert.as_ref().and_then(|c| {
                std::iter::once(leaf)
                    .chain(pool)
                    .chain(self.mra.jurisdictions.iter().flat_map(|j| j.anchor_certs()))
                    .find(|cert| hex::encode(cert.sha256()) == c.sha256)
            });
            match cert {
                Some(c) if c.not_before() > now => RefusalKind::NotYetValid {
                    not_before: c.not_before(),
                    now,
                },
                Some(c) => RefusalKind::Expired {
                    not_after: c.not_after(),
                    now,
                },
                None => RefusalKind::Other,
            }
        } else if rule == eku.rule() {
            RefusalKind::BadPurpose
        } else if rule == critical.rule() {
            RefusalKind::UnhandledCriticalExtension
        } else if rule == signature.rule() {
            RefusalKind::BadSignature
        } else {
            RefusalKind::Other
        }
    }

    /// Hands a refusal to the hook, then converts it for rustls.
    fn report(&self, result: Result<(), TlsVerifyError>) -> Result<(), rustls::Error> {
        result.map_err(|err| {
            if let Some(hook) = &self.hook {
                hook(&err);
            }
            err.to_rustls()
        })
    }

    fn verify_tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }
}

impl TlsVerifyError {
    /// The rustls error for this refusal: the most precise `CertificateError`, so that the
    /// alert sent to the peer says what is wrong; `Other` with this error when no variant
    /// carries the facts.
    pub fn to_rustls(&self) -> rustls::Error {
        let other = || CertificateError::Other(OtherError(Arc::new(self.clone())));
        let certificate_error = match self {
            Self::BadEncoding { .. } => other(),
            Self::MissingEku { present, .. } => CertificateError::InvalidPurposeContext {
                required: self.role_purpose(),
                presented: present.iter().map(|oid| eku_purpose(oid)).collect(),
            },
            Self::NotRecognized { kind, .. } => match *kind {
                RefusalKind::BadPurpose => CertificateError::InvalidPurpose,
                RefusalKind::BadSignature => CertificateError::BadSignature,
                RefusalKind::Expired { not_after, now } => CertificateError::ExpiredContext {
                    time: to_pki_time(now),
                    not_after: to_pki_time(not_after),
                },
                RefusalKind::NotYetValid { not_before, now } => {
                    CertificateError::NotValidYetContext {
                        time: to_pki_time(now),
                        not_before: to_pki_time(not_before),
                    }
                }
                RefusalKind::Revoked => CertificateError::Revoked,
                RefusalKind::RevocationUnknown => CertificateError::UnknownRevocationStatus,
                RefusalKind::UnhandledCriticalExtension => {
                    CertificateError::UnhandledCriticalExtension
                }
                RefusalKind::UnknownIssuer => CertificateError::UnknownIssuer,
                RefusalKind::Other => other(),
            },
            Self::NameMismatch {
                expected, source, ..
            } => CertificateError::NotValidForNameContext {
                expected: expected.clone(),
                presented: match source {
                    Error::PeerNameMismatch { presented, .. } => presented.clone(),
                    _ => Vec::new(),
                },
            },
            Self::TooManyIntermediates { .. } | Self::TimeOutOfRange { .. } => other(),
        };
        rustls::Error::InvalidCertificate(certificate_error)
    }

    fn role_purpose(&self) -> ExtendedKeyPurpose {
        match self {
            Self::MissingEku { required, .. } if *required == EKU_CLIENT_AUTH => {
                PeerRole::Client.purpose()
            }
            _ => PeerRole::Server.purpose(),
        }
    }
}

/// rustls's view of one EKU OID: the TLS usages by name, others by their arcs (an arc too
/// large for `usize`, as in a UUID arc, is shown as 0).
fn eku_purpose(oid: &str) -> ExtendedKeyPurpose {
    match oid {
        EKU_SERVER_AUTH => ExtendedKeyPurpose::ServerAuth,
        EKU_CLIENT_AUTH => ExtendedKeyPurpose::ClientAuth,
        _ => ExtendedKeyPurpose::Other(
            oid.split('.')
                .map(|arc| arc.parse::<usize>().unwrap_or(0))
                .collect(),
        ),
    }
}

/// Converts to rustls's time; times before the epoch (which no TLS peer's clock reports)
/// clamp to the epoch.
fn to_pki_time(t: UnixTime) -> rustls::pki_types::UnixTime {
    rustls::pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(t.0).unwrap_or(0),
    ))
}

/// The server-certificate verifier of a node acting as TLS client.
#[derive(Debug)]
pub struct NodeServerCertVerifier {
    inner: NodeTls,
}

impl NodeServerCertVerifier {
    /// A verifier that accepts servers whose chain `relying` recognizes for node TLS under
    /// `mra`. Fails when `relying` is not a party or the agreement is not signed by every
    /// party (unless [`crate::danger::allow_unsigned_agreement`] was used).
    pub fn new(mra: Arc<Mra>, relying: &str) -> Result<Self, TlsSetupError> {
        Ok(Self {
            inner: NodeTls::new(mra, relying)?,
        })
    }

    /// Calls `hook` with every refusal before the handshake fails, so the caller can log the
    /// full explanation (this crate does not log). The rustls error carries it only when
    /// rustls has no more precise variant.
    pub fn with_refusal_hook(mut self, hook: RefusalHook) -> Self {
        self.inner.hook = Some(hook);
        self
    }

    /// Checks revocation against these CRLs (DER) as well as the agreement's, for a node that
    /// fetches fresher CRLs than the agreement's snapshot (RFC 5280 §6.3).
    pub fn with_crls(mut self, crls: Vec<Vec<u8>>) -> Self {
        self.inner.extra_crls = crls;
        self
    }

    fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: rustls::pki_types::UnixTime,
    ) -> Result<(), TlsVerifyError> {
        let leaf = self
            .inner
            .verify_peer(end_entity, intermediates, PeerRole::Server, now)?;
        let peer = match server_name {
            ServerName::DnsName(dns) => PeerName::Dns(dns.as_ref().to_owned()),
            ServerName::IpAddress(ip) => PeerName::Ip(IpAddr::from(*ip)),
            // ServerName is non-exhaustive; a form this verifier does not know matches nothing.
            _ => PeerName::Dns(String::new()),
        };
        check_peer_name(&leaf, &peer).map_err(|source| TlsVerifyError::NameMismatch {
            subject: leaf.subject_display().to_owned(),
            expected: server_name.to_owned(),
            source,
        })
    }
}

impl ServerCertVerifier for NodeServerCertVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .report(self.verify(end_entity, intermediates, server_name, now))?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.algorithms.supported_schemes()
    }
}

/// The client-certificate verifier of a node acting as TLS server. Client authentication is
/// mandatory.
#[derive(Debug)]
pub struct NodeClientCertVerifier {
    inner: NodeTls,
    root_hints: Vec<DistinguishedName>,
}

impl NodeClientCertVerifier {
    /// A verifier that accepts clients whose chain `relying` recognizes for node TLS under
    /// `mra`. Fails when `relying` is not a party, the agreement is not signed by every party
    /// (unless [`crate::danger::allow_unsigned_agreement`] was used), or an anchor does not parse.
    pub fn new(mra: Arc<Mra>, relying: &str) -> Result<Self, TlsSetupError> {
        let inner = NodeTls::new(mra, relying)?;
        let root_hints = root_hints(&inner)?;
        Ok(Self { inner, root_hints })
    }
}

/// RFC 8446 §4.2.4 certificate_authorities: the anchors of every jurisdiction the local one
/// may recognize for one of the verifier's purposes (itself, and the issuers of its rows), so a
/// client holding several identities picks one that can succeed. The hint does not decide
/// anything; recognition does.
fn root_hints(inner: &NodeTls) -> Result<Vec<DistinguishedName>, TlsSetupError> {
    let mut root_hints = Vec::new();
    for jurisdiction in &inner.mra.jurisdictions {
        let recognized = jurisdiction.code == inner.relying
            || inner.mra.rows.iter().any(|row| {
                row.relying == inner.relying
                    && row.issuing == jurisdiction.code
                    && inner.purposes.iter().any(|p| row.purposes.contains(p))
            });
        if !recognized {
            continue;
        }
        for (index, der) in jurisdiction.anchors.iter().enumerate() {
            let anchor = Cert::from_der(der).map_err(|source| TlsSetupError::Anchor {
                jurisdiction: jurisdiction.code.clone(),
                index,
                source,
            })?;
            root_hints.push(DistinguishedName::from(anchor.subject().der().to_vec()));
        }
    }
    Ok(root_hints)
}

impl NodeClientCertVerifier {
    /// The client verifier of a node's public listener: a client is accepted when `relying`
    /// recognizes its chain for [`Purpose::ParticipantTls`] or [`Purpose::Operator`] under
    /// `mra` and its leaf asserts id-kp-clientAuth and the purpose's own EKU. Client
    /// authentication stays mandatory here; a listener that lets anonymous clients in wraps
    /// this verifier. Which identity the client has is for the service to read off the chain.
    pub fn participants(mra: Arc<Mra>, relying: &str) -> Result<Self, TlsSetupError> {
        let mut inner = NodeTls::new(mra, relying)?;
        inner.purposes = vec![Purpose::ParticipantTls, Purpose::Operator];
        let root_hints = root_hints(&inner)?;
        Ok(Self { inner, root_hints })
    }

    /// Calls `hook` with every refusal before the handshake fails, so the caller can log the
    /// full explanation (this crate does not log).
    pub fn with_refusal_hook(mut self, hook: RefusalHook) -> Self {
        self.inner.hook = Some(hook);
        self
    }

    /// Checks revocation against these CRLs (DER) as well as the agreement's, for a node that
    /// fetches fresher CRLs than the agreement's snapshot (RFC 5280 §6.3).
    pub fn with_crls(mut self, crls: Vec<Vec<u8>>) -> Self {
        self.inner.extra_crls = crls;
        self
    }
}

impl ClientCertVerifier for NodeClientCertVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.root_hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner.report(
            self.inner
                .verify_peer(end_entity, intermediates, PeerRole::Client, now)
                .map(drop),
        )?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests;
