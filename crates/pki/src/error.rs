//! Errors of the verifier, each with the rule it cites and a rank for picking the most specific
//! failure when several candidate paths fail (as webpki's `Error::rank` / `most_specific`).

use crate::crl::CrlError;
use crate::policy::PolicyError;
use crate::signature::SignatureError;
use crate::time::UnixTime;

/// Why a certificate, a bundle or a path was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The issuer's key does not verify the certificate's signature.
    #[error("bad signature: {0}")]
    BadSignature(SignatureError),
    /// The path search gave up after its budget of work (signature checks, path attempts).
    #[error("path building budget exhausted: more than {limit} {what}")]
    BudgetExceeded {
        /// What ran out.
        what: &'static str,
        /// The bound that was hit.
        limit: usize,
    },
    /// The path would be longer than allowed.
    #[error("chain longer than {depth_max} certificates")]
    ChainTooDeep {
        /// The largest number of certificates (leaf to anchor) allowed.
        depth_max: usize,
    },
    /// The end-entity certificate lacks every extended key usage the purpose requires.
    #[error("extended key usage does not permit {required:?} (certificate has {present:?})")]
    EkuMismatch {
        /// Any one of these would do.
        required: Vec<String>,
        /// What the certificate asserts.
        present: Vec<String>,
    },
    /// notAfter is before the validation time.
    #[error("certificate {cert} expired at {not_after} (validation time {now})")]
    Expired {
        /// The validation time.
        now: UnixTime,
        /// The certificate's notAfter.
        not_after: UnixTime,
        /// The certificate's subject.
        cert: String,
    },
    /// A key usage required for the certificate's role is missing or forbidden.
    #[error("key usage: {detail}")]
    KeyUsage {
        /// What was required or found.
        detail: String,
    },
    /// A certificate or input is malformed or violates a MUST of the certificate profile.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// Which certificate or input (for bundles: the index and file).
        what: String,
        /// What is wrong.
        detail: String,
    },
    /// A certificate that is not self-signed lacks the authorityKeyIdentifier extension, or
    /// carries it without the keyIdentifier field (RFC 5280 §4.2.1.1).
    #[error(
        "certificate {cert} is not self-signed and {}: RFC 5280 §4.2.1.1 requires the \
         keyIdentifier in every certificate but a self-signed one",
        if *.extension_present {
            "its authorityKeyIdentifier has no keyIdentifier"
        } else {
            "has no authorityKeyIdentifier"
        }
    )]
    MissingAuthorityKeyId {
        /// The certificate's subject.
        cert: String,
        /// Whether the extension is present (without keyIdentifier) rather than absent.
        extension_present: bool,
    },
    /// The issuer's subject does not match the certificate's issuer name.
    #[error(
        "issuer name {issuer} does not match the subject {issuer_subject} of the next certificate"
    )]
    NameChaining {
        /// The certificate's issuer field.
        issuer: String,
        /// The subject of the certificate tried as its issuer.
        issuer_subject: String,
    },
    /// A name in a certificate falls outside a permitted subtree or inside an excluded one.
    #[error("name {name} violates a name constraint ({detail})")]
    NameConstraintViolation {
        /// The offending name, e.g. `dNSName foo.example.com`.
        name: String,
        /// Which constraint, and where it came from.
        detail: String,
    },
    /// A certificate used as an issuer is not a CA (basicConstraints cA is not true).
    #[error("certificate {cert} is not a CA but issued another certificate")]
    NotCa {
        /// The subject of the would-be issuer.
        cert: String,
    },
    /// notBefore is after the validation time.
    #[error("certificate {cert} is not valid before {not_before} (validation time {now})")]
    NotYetValid {
        /// The validation time.
        now: UnixTime,
        /// The certificate's notBefore.
        not_before: UnixTime,
        /// The certificate's subject.
        cert: String,
    },
    /// More non-self-issued intermediates follow a CA than its pathLenConstraint allows.
    #[error("pathLenConstraint {path_len} of {cert} exceeded by {exceeded_by}")]
    PathLenExceeded {
        /// The constraint that was exceeded.
        path_len: u32,
        /// The subject of the CA that set it.
        cert: String,
        /// The subject of the CA certificate that came one too many.
        exceeded_by: String,
    },
    /// The end-entity certificate is not valid for the expected peer name.
    #[error("certificate is not valid for {expected} (it names {presented:?})")]
    PeerNameMismatch {
        /// The expected DNS name, IP address or email.
        expected: String,
        /// The names the certificate presents.
        presented: Vec<String>,
    },
    /// Certificate policy processing rejected the path.
    #[error("certificate policy: {0}")]
    Policy(#[from] PolicyError),
    /// A rule of the web-PKI profile (CA/Browser Forum baseline requirements) is broken.
    #[error("web-PKI profile: {detail}")]
    Profile {
        /// The rule cited.
        rule: &'static str,
        /// What was found.
        detail: String,
    },
    /// Revocation checking rejected the path.
    #[error("revocation: {0}")]
    Revocation(#[from] CrlError),
    /// No certificate in the pool or among the anchors issued this certificate.
    #[error("no trusted issuer found for {issuer}")]
    UnknownIssuer {
        /// The issuer name looked for.
        issuer: String,
    },
    /// A critical extension the verifier does not process.
    #[error("unrecognized critical extension {oid}")]
    UnknownCriticalExtension {
        /// The extension's OID.
        oid: String,
    },
    /// A signature uses an algorithm or key the verifier deliberately refuses (SHA-1, DSA,
    /// RSA below 2048 bits, P-521, Ed448). The chain is rejected.
    #[error("unsupported algorithm: {algorithm}")]
    UnsupportedAlgorithm {
        /// What was refused.
        algorithm: String,
    },
    /// A name constraint uses a form the verifier cannot process; RFC 5280 §4.2.1.10 requires
    /// rejecting the certificate when such a constraint is critical.
    #[error("name constraint of form {form} cannot be processed")]
    UnsupportedNameConstraint {
        /// The GeneralName form, e.g. `x400Address`.
        form: String,
    },
}

impl Error {
    /// The rule this error cites, for explanations.
    pub fn rule(&self) -> &'static str {
        match self {
            Self::BadSignature(_) => "RFC 5280 §6.1.3(a)(1)",
            Self::BudgetExceeded { .. } => "path building budget",
            Self::ChainTooDeep { .. } => "RFC 5280 §6.1 (maximum path length)",
            Self::EkuMismatch { .. } => "RFC 5280 §4.2.1.12",
            Self::Expired { .. } | Self::NotYetValid { .. } => "RFC 5280 §6.1.3(a)(2)",
            Self::KeyUsage { .. } => "RFC 5280 §4.2.1.3, §6.1.4(n)",
            Self::Malformed { .. } => "RFC 5280 §4.1",
            Self::MissingAuthorityKeyId { .. } => "RFC 5280 §4.2.1.1",
            Self::NameChaining { .. } => "RFC 5280 §6.1.3(a)(4)",
            Self::NameConstraintViolation { .. } => "RFC 5280 §6.1.3(b)-(c), §4.2.1.10",
            Self::NotCa { .. } => "RFC 5280 §6.1.4(k)",
            Self::PathLenExceeded { .. } => "RFC 5280 §6.1.4(l)",
            Self::PeerNameMismatch { .. } => "RFC 6125 §6.4, RFC 9525 §6.3",
            Self::Policy(_) => "RFC 5280 §6.1.3(d)-(f), §6.1.4(a)-(j), §6.1.5",
            Self::Profile { rule, .. } => rule,
            Self::Revocation(_) => "RFC 5280 §6.3",
            Self::UnknownIssuer { .. } => "RFC 5280 §6.1 (path to a trust anchor)",
            Self::UnknownCriticalExtension { .. } => "RFC 5280 §4.2, §6.1.4(o)",
            Self::UnsupportedAlgorithm { .. } => "RFC 5280 §6.1.3(a)(1) (algorithm refused)",
            Self::UnsupportedNameConstraint { .. } => "RFC 5280 §4.2.1.10",
        }
    }

    /// How specific the error is; the path builder reports the highest-ranked error among the
    /// candidate paths it tried. Failing to find any issuer is the least specific; an error on
    /// a complete path to an anchor is more specific than one met while building; a budget
    /// overrun outranks all because the search stopped early.
    pub fn rank(&self) -> u32 {
        match self {
            Self::UnknownIssuer { .. } => 0,
            Self::NameChaining { .. } => 5,
            Self::UnsupportedAlgorithm { .. } => 10,
            Self::BadSignature(_) => 20,
            Self::ChainTooDeep { .. } => 30,
            Self::Malformed { .. } => 100,
            Self::MissingAuthorityKeyId { .. } => 105,
            Self::UnknownCriticalExtension { .. } => 110,
            Self::NotCa { .. } => 120,
            Self::PathLenExceeded { .. } => 130,
            Self::KeyUsage { .. } => 140,
            Self::Profile { .. } => 145,
            Self::NameConstraintViolation { .. } | Self::UnsupportedNameConstraint { .. } => 150,
            Self::Expired { .. } | Self::NotYetValid { .. } => 160,
            Self::Policy(_) => 170,
            Self::EkuMismatch { .. } => 180,
            Self::PeerNameMismatch { .. } => 190,
            Self::Revocation(_) => 200,
            Self::BudgetExceeded { .. } => 1000,
        }
    }

    /// True when the only reason for rejection is an algorithm the verifier refuses on
    /// purpose, so the chain's validity could not be decided.
    pub fn is_unsupported_algorithm(&self) -> bool {
        matches!(self, Self::UnsupportedAlgorithm { .. })
    }
}

impl From<SignatureError> for Error {
    fn from(err: SignatureError) -> Self {
        match err {
            SignatureError::Unsupported { algorithm } => Self::UnsupportedAlgorithm { algorithm },
            other => Self::BadSignature(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_path_errors_outrank_building_errors() {
        let unknown = Error::UnknownIssuer {
            issuer: "CN=x".into(),
        };
        let expired = Error::Expired {
            now: UnixTime(10),
            not_after: UnixTime(5),
            cert: "CN=y".into(),
        };
        assert!(expired.rank() > unknown.rank());
        assert!(
            expired.rank() > Error::from(SignatureError::BadSignature { key: "k".into() }).rank()
        );
    }

    #[test]
    fn refused_algorithm_maps_to_unsupported_not_bad_signature() {
        let e = Error::from(SignatureError::Unsupported {
            algorithm: "DSA".into(),
        });
        assert!(e.is_unsupported_algorithm());
        let e = Error::from(SignatureError::BadSignature {
            key: "P-256".into(),
        });
        assert!(!e.is_unsupported_algorithm());
        assert_eq!(e.rule(), "RFC 5280 §6.1.3(a)(1)");
    }
}
