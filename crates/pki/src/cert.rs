//! An owned, parsed view of one X.509 certificate: the fields path validation reads.
//!
//! A certificate is parsed once with x509-parser and copied into owned values, so the rest of
//! the verifier never re-parses DER. Structural errors fail [`Cert::from_der`]; a violation of
//! a MUST of RFC 5280 §4 inside a parsed certificate (a malformed or duplicated extension, for
//! instance) is recorded in [`Cert::defects`] and rejects every path that uses the certificate.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};
use x509_parser::der_parser::asn1_rs::{Any, Oid};
use x509_parser::prelude::X509Certificate;

use crate::error::Error;
use crate::policy::PolicyCertInfo;
use crate::signature::{SignatureAlgorithm, SignatureError, Spki};
use crate::time::UnixTime;
use crate::verdict::CertRef;

mod extension;
mod name;

pub use self::extension::{
    AuthorityKeyId, BasicConstraints, DistributionPoint, DistributionPointName, KeyUsage,
    NameConstraints,
};
pub use self::name::{Attribute, GeneralName, Name, format_ip};

/// Most certificates accepted in one PEM or DER bundle: far above any real chain, and it bounds
/// the work a hostile file can cause.
pub const BUNDLE_LEN_MAX: usize = 1024;
/// anyExtendedKeyUsage (RFC 5280 §4.2.1.12).
pub const EKU_ANY: &str = "2.5.29.37.0";

/// commonName (X.520).
pub const OID_COMMON_NAME: &str = "2.5.4.3";
/// emailAddress (PKCS #9), which RFC 5280 §4.2.1.10 subjects to rfc822Name constraints.
pub const OID_EMAIL_ADDRESS: &str = "1.2.840.113549.1.9.1";

/// One parsed certificate.
#[derive(Clone, Debug)]
pub struct Cert {
    der: Vec<u8>,
    tbs: Vec<u8>,
    version: u32,
    serial: Vec<u8>,
    signature_algorithm: Result<SignatureAlgorithm, SignatureError>,
    signature: Vec<u8>,
    issuer: Name,
    subject: Name,
    issuer_display: String,
    subject_display: String,
    not_before: UnixTime,
    not_after: UnixTime,
    spki: Spki,
    extension_oids: Vec<(String, bool)>,
    basic_constraints: Option<BasicConstraints>,
    key_usage: Option<KeyUsage>,
    extended_key_usage: Option<Vec<String>>,
    subject_alt_names: Option<Vec<GeneralName>>,
    san_critical: bool,
    name_constraints: Option<NameConstraints>,
    policy_info: PolicyCertInfo,
    subject_key_id: Option<Vec<u8>>,
    authority_key_id: Option<AuthorityKeyId>,
    crl_distribution_points: Vec<DistributionPoint>,
    unrecognized_critical: Vec<String>,
    defects: Vec<String>,
    validity_encoding_defect: Option<String>,
    sha256: [u8; 32],
    /// Whether the certificate is self-signed, worked out on first ask (a signature check).
    self_signed: std::sync::OnceLock<bool>,
}

impl Cert {
    /// Parses one DER certificate. Trailing bytes after the certificate are an error.
    pub fn from_der(der: &[u8]) -> Result<Self, Error> {
        let malformed = |detail: String| Error::Malformed {
            what: "certificate".into(),
            detail,
        };
        let (rest, x) =
            x509_parser::parse_x509_certificate(der).map_err(|e| malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(malformed(format!("{} trailing bytes", rest.len())));
        }
        Self::from_x509(&x)
    }

    fn from_x509(x: &X509Certificate<'_>) -> Result<Self, Error> {
        let tbs = &x.tbs_certificate;
        let mut defects = Vec::new();
        let spki = Spki::from_x509(tbs.public_key()).map_err(|e| Error::Malformed {
            what: "certificate public key".into(),
            detail: e.to_string(),
        })?;
        // RFC 5280 §4.1.1.2: signatureAlgorithm MUST be the same as the TBS `signature` field.
        if !same_algorithm(&x.signature_algorithm, &tbs.signature) {
            defects.push(
                "signatureAlgorithm differs from the TBSCertificate signature field (RFC 5280 \
                 §4.1.1.2)"
                    .to_owned(),
            );
        }
        if x.signature_value.unused_bits != 0 {
            defects.push("signature BIT STRING has unused bits".to_owned());
        }
        let issuer = Name::from_x509(tbs.issuer());
        let subject = Name::from_x509(tbs.subject());
        let der = x.as_raw().to_vec();
        let mut cert = Self {
            sha256: Sha256::digest(&der).into(),
            tbs: tbs.as_ref().to_vec(),
            version: tbs.version.0,
            serial: tbs.raw_serial().to_vec(),
            signature_algorithm: SignatureAlgorithm::from_x509(&x.signature_algorithm),
            signature: x.signature_value.data.to_vec(),
            issuer_display: issuer.to_rfc4514(),
            subject_display: subject.to_rfc4514(),
            issuer,
            subject,
            not_before: UnixTime(tbs.validity.not_before.timestamp()),
            not_after: UnixTime(tbs.validity.not_after.timestamp()),
            spki,
            extension_oids: Vec::new(),
            basic_constraints: None,
            key_usage: None,
            extended_key_usage: None,
            subject_alt_names: None,
            san_critical: false,
            name_constraints: None,
            policy_info: PolicyCertInfo::default(),
            subject_key_id: None,
            authority_key_id: None,
            crl_distribution_points: Vec::new(),
            unrecognized_critical: Vec::new(),
            defects,
            validity_encoding_defect: validity_encoding_defect(&tbs.validity),
            der,
            self_signed: std::sync::OnceLock::new(),
        };
        cert.read_extensions(x);
        cert.policy_info.self_issued = cert.issuer == cert.subject;
        Ok(cert)
    }

    /// Parses a bundle: one DER certificate, or any number of PEM `CERTIFICATE` blocks (other
    /// PEM blocks are skipped). Errors say which certificate failed and why.
    pub fn parse_pem_or_der_bundle(bytes: &[u8]) -> Result<Vec<Self>, Error> {
        const BEGIN: &[u8] = b"-----BEGIN ";
        if !contains(bytes, BEGIN) {
            return Self::parse_der_sequence(bytes);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| Error::Malformed {
            what: "PEM bundle".into(),
            detail: "not UTF-8 text".into(),
        })?;
        let mut certs = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("-----BEGIN ") {
            let after = &rest[start + 11..];
            let label_end = after.find("-----").ok_or_else(|| Error::Malformed {
                what: format!("PEM block {}", certs.len()),
                detail: "unterminated BEGIN line".into(),
            })?;
            let label = &after[..label_end];
            let body_start = &after[label_end + 5..];
            let end_marker = format!("-----END {label}-----");
            let body_end = body_start
                .find(&end_marker)
                .ok_or_else(|| Error::Malformed {
                    what: format!("PEM block {}", certs.len()),
                    detail: format!("no {end_marker} line"),
                })?;
            let body = &body_start[..body_end];
            rest = &body_start[body_end + end_marker.len()..];
            if label != "CERTIFICATE" {
                continue;
            }
            if certs.len() >= BUNDLE_LEN_MAX {
                return Err(Error::Malformed {
                    what: "PEM bundle".into(),
                    detail: format!("more than {BUNDLE_LEN_MAX} certificates"),
                });
            }
            let index = certs.len();
            let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            use base64::Engine as _;
            let der = base64::engine::general_purpose::STANDARD
                .decode(compact.as_bytes())
                .map_err(|e| Error::Malformed {
                    what: format!("certificate {index} of the bundle"),
                    detail: format!("bad base64: {e}"),
                })?;
            certs.push(Self::from_der(&der).map_err(|e| bundle_error(index, &e))?);
        }
        if certs.is_empty() {
            return Err(Error::Malformed {
                what: "PEM bundle".into(),
                detail: "no CERTIFICATE block".into(),
            });
        }
        Ok(certs)
    }

    /// One or more DER certificates, back to back.
    fn parse_der_sequence(mut bytes: &[u8]) -> Result<Vec<Self>, Error> {
        let mut certs = Vec::new();
        while !bytes.is_empty() {
            let index = certs.len();
            if index >= BUNDLE_LEN_MAX {
                return Err(Error::Malformed {
                    what: "DER bundle".into(),
                    detail: format!("more than {BUNDLE_LEN_MAX} certificates"),
                });
            }
            let (rest, x) = x509_parser::parse_x509_certificate(bytes).map_err(|e| {
                bundle_error(
                    index,
                    &Error::Malformed {
                        what: "certificate".into(),
                        detail: e.to_string(),
                    },
                )
            })?;
            certs.push(Self::from_x509(&x).map_err(|e| bundle_error(index, &e))?);
            bytes = rest;
        }
        if certs.is_empty() {
            return Err(Error::Malformed {
                what: "bundle".into(),
                detail: "empty input".into(),
            });
        }
        Ok(certs)
    }

    /// How an explanation names this certificate at `position` on a path (0 = leaf).
    pub fn cert_ref(&self, position: usize) -> CertRef {
        CertRef {
            position,
            subject: self.subject_display.clone(),
            serial: self.serial_hex(),
            sha256: hex::encode(self.sha256),
        }
    }

    /// The whole certificate DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The TBSCertificate DER: the bytes the issuer signed.
    pub fn tbs(&self) -> &[u8] {
        &self.tbs
    }

    /// The X.509 version as encoded (0 = v1, 2 = v3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The signature algorithm, or why it could not be read.
    pub fn signature_algorithm(&self) -> Result<&SignatureAlgorithm, SignatureError> {
        self.signature_algorithm.as_ref().map_err(Clone::clone)
    }

    /// The signature BIT STRING contents.
    pub fn signature_value(&self) -> &[u8] {
        &self.signature
    }

    /// The serial number's content octets as encoded (two's complement, may start with 0x00).
    pub fn serial(&self) -> &[u8] {
        &self.serial
    }

    /// The serial number as lowercase hex without leading zero bytes.
    pub fn serial_hex(&self) -> String {
        let first = self
            .serial
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(self.serial.len());
        let hex = hex::encode(&self.serial[first..]);
        if hex.is_empty() { "00".into() } else { hex }
    }

    /// The issuer name (compare with `==`, which follows RFC 5280 §7.1).
    pub fn issuer(&self) -> &Name {
        &self.issuer
    }

    /// The subject name (compare with `==`, which follows RFC 5280 §7.1).
    pub fn subject(&self) -> &Name {
        &self.subject
    }

    /// The subject in RFC 4514 form.
    pub fn subject_display(&self) -> &str {
        &self.subject_display
    }

    /// The issuer in RFC 4514 form.
    pub fn issuer_display(&self) -> &str {
        &self.issuer_display
    }

    /// True when subject and issuer names match (RFC 5280 §6.1: a self-issued certificate).
    pub fn is_self_issued(&self) -> bool {
        self.policy_info.self_issued
    }

    /// True when the certificate is self-signed: self-issued, and its signature verifies
    /// under its own public key (RFC 5280 §3.2, the form in which a CA distributes its key
    /// and the one certificate §4.2.1.1 lets omit the authorityKeyIdentifier). A self-issued
    /// certificate whose signature uses an algorithm the verifier refuses (an old SHA-1 root)
    /// counts as self-signed: the check cannot tell; as a trust anchor its own signature is
    /// relied on by no rule, and anywhere else on a path the refused algorithm already keeps
    /// the path from being accepted. The answer is computed once per parsed certificate.
    pub fn is_self_signed(&self) -> bool {
        *self.self_signed.get_or_init(|| {
            self.is_self_issued()
                && match crate::signature::verify_cert_signed_by(self, self) {
                    Ok(()) => true,
                    Err(e) => matches!(e, SignatureError::Unsupported { .. }),
                }
        })
    }

    /// notBefore.
    pub fn not_before(&self) -> UnixTime {
        self.not_before
    }

    /// notAfter.
    pub fn not_after(&self) -> UnixTime {
        self.not_after
    }

    /// The subject public key.
    pub fn spki(&self) -> &Spki {
        &self.spki
    }

    /// Every extension's OID and criticality, in order.
    pub fn extensions(&self) -> &[(String, bool)] {
        &self.extension_oids
    }

    /// basicConstraints, if present.
    pub fn basic_constraints(&self) -> Option<BasicConstraints> {
        self.basic_constraints
    }

    /// True when basicConstraints asserts cA.
    pub fn is_ca(&self) -> bool {
        self.basic_constraints.is_some_and(|bc| bc.ca)
    }

    /// keyUsage, if present.
    pub fn key_usage(&self) -> Option<KeyUsage> {
        self.key_usage
    }

    /// True when the key may sign CRLs: keyUsage is absent or asserts cRLSign (RFC 5280
    /// §6.3.3(f)).
    pub fn may_sign_crls(&self) -> bool {
        self.key_usage.is_none_or(|ku| ku.has(KeyUsage::CRL_SIGN))
    }

    /// extendedKeyUsage OIDs, if the extension is present.
    pub fn extended_key_usage(&self) -> Option<&[String]> {
        self.extended_key_usage.as_deref()
    }

    /// subjectAltName entries, if the extension is present.
    pub fn subject_alt_names(&self) -> Option<&[GeneralName]> {
        self.subject_alt_names.as_deref()
    }

    /// Whether subjectAltName was marked critical.
    pub fn subject_alt_names_critical(&self) -> bool {
        self.san_critical
    }

    /// nameConstraints, if present.
    pub fn name_constraints(&self) -> Option<&NameConstraints> {
        self.name_constraints.as_ref()
    }

    /// The policy-related content for `crate::policy::process`.
    pub fn policy_info(&self) -> PolicyCertInfo {
        self.policy_info.clone()
    }

    /// True when any of the policy extensions is present.
    pub fn has_policy_extensions(&self) -> bool {
        let p = &self.policy_info;
        p.policies.is_some()
            || !p.mappings.is_empty()
            || p.require_explicit_policy.is_some()
            || p.inhibit_policy_mapping.is_some()
            || p.inhibit_any_policy.is_some()
    }

    /// subjectKeyIdentifier, if present.
    pub fn subject_key_id(&self) -> Option<&[u8]> {
        self.subject_key_id.as_deref()
    }

    /// authorityKeyIdentifier, if present.
    pub fn authority_key_id(&self) -> Option<&AuthorityKeyId> {
        self.authority_key_id.as_ref()
    }

    /// cRLDistributionPoints entries (empty when the extension is absent).
    pub fn crl_distribution_points(&self) -> &[DistributionPoint] {
        &self.crl_distribution_points
    }

    /// Critical extensions this verifier does not process.
    pub fn unrecognized_critical_extensions(&self) -> &[String] {
        &self.unrecognized_critical
    }

    /// Violations of RFC 5280 MUSTs found while parsing; any one rejects paths through this
    /// certificate.
    pub fn defects(&self) -> &[String] {
        &self.defects
    }

    /// A validity date encoded with the wrong time type for its year (RFC 5280 §4.1.2.5), a
    /// profile violation that the web-PKI profile rejects; the RFC 5280 profile reads such
    /// dates, as PKITS expects.
    pub fn validity_encoding_defect(&self) -> Option<&str> {
        self.validity_encoding_defect.as_deref()
    }

    /// SHA-256 of the DER.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }
}

/// Year from which RFC 5280 §4.1.2.5 requires GeneralizedTime instead of UTCTime.
const GENERALIZED_TIME_FROM_YEAR: i32 = 2050;

/// RFC 5280 §4.1.2.5: validity dates through 2049 MUST be UTCTime, from 2050 GeneralizedTime.
fn validity_encoding_defect(validity: &x509_parser::certificate::Validity) -> Option<String> {
    [
        ("notBefore", &validity.not_before),
        ("notAfter", &validity.not_after),
    ]
    .into_iter()
    .find_map(|(field, t)| {
        let year = time::OffsetDateTime::from_unix_timestamp(t.timestamp())
            .map_or(GENERALIZED_TIME_FROM_YEAR, |d| d.year());
        let want_utc = year < GENERALIZED_TIME_FROM_YEAR;
        (want_utc != t.is_utctime()).then(|| {
            format!(
                "{field} in {year} is encoded as {} (RFC 5280 §4.1.2.5)",
                if t.is_utctime() {
                    "UTCTime"
                } else {
                    "GeneralizedTime"
                }
            )
        })
    })
}

fn same_algorithm(
    a: &x509_parser::x509::AlgorithmIdentifier<'_>,
    b: &x509_parser::x509::AlgorithmIdentifier<'_>,
) -> bool {
    let params = |p: Option<&Any<'_>>| p.map(|a| (a.tag(), a.data.to_vec()));
    a.algorithm == b.algorithm && params(a.parameters.as_ref()) == params(b.parameters.as_ref())
}

/// Dotted-decimal text of an OID. Arcs that fit in 64 bits (all but UUID arcs) are formatted
/// directly, which is far cheaper than the big-integer path `to_id_string` takes for every arc.
pub fn oid_string(oid: &Oid<'_>) -> String {
    match oid.iter() {
        Some(arcs) => {
            let mut out = String::with_capacity(oid.as_bytes().len() * 3);
            for (i, arc) in arcs.enumerate() {
                if i > 0 {
                    out.push('.');
                }
                let _ = write!(out, "{arc}");
            }
            out
        }
        None => oid.to_id_string(),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn bundle_error(index: usize, err: &Error) -> Error {
    Error::Malformed {
        what: format!("certificate {index} of the bundle"),
        detail: err.to_string(),
    }
}

#[cfg(test)]
mod tests;
