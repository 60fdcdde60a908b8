//! Signature verification: Ed25519 through ed25519-dalek, ECDSA and RSA through ring.
//!
//! The accepted set is deliberately narrow. Ed25519 (RFC 8410), ECDSA on P-256 and P-384
//! (RFC 5758), RSA PKCS#1 v1.5 and RSASSA-PSS with SHA-256/384/512 (RFC 4055) on 2048–8192-bit
//! keys verify. SHA-1 and MD5 signatures, DSA, RSA keys below 2048 bits, P-521 and Ed448 are
//! refused with [`SignatureError::Unsupported`], which is distinct from a bad signature so the
//! conformance harness can report such cases as skipped; in normal use a refused algorithm
//! still rejects the chain (fail closed).

use std::sync::OnceLock;

use x509_parser::der_parser::asn1_rs::{Any, FromDer, Oid, Tag};
use x509_parser::x509::{AlgorithmIdentifier, SubjectPublicKeyInfo};

use crate::cert::Cert;

/// Smallest RSA modulus accepted, in bits: NIST SP 800-131A disallows RSA below 2048 bits for
/// signatures, and ring's verifiers enforce the same floor.
pub const RSA_MODULUS_BITS_MIN: usize = 2048;
/// Largest RSA modulus accepted, in bits: bounds the cost of one verification against hostile
/// inputs (ring's `*_2048_8192_*` verifiers stop here too).
pub const RSA_MODULUS_BITS_MAX: usize = 8192;

// Algorithm OIDs (RFC 3279, RFC 4055, RFC 5758, RFC 8410).
const OID_RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const OID_RSA_PSS: &str = "1.2.840.113549.1.1.10";
const OID_MGF1: &str = "1.2.840.113549.1.1.8";
const OID_SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";
const OID_SHA384_WITH_RSA: &str = "1.2.840.113549.1.1.12";
const OID_SHA512_WITH_RSA: &str = "1.2.840.113549.1.1.13";
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const OID_ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
const OID_ECDSA_SHA512: &str = "1.2.840.10045.4.3.4";
const OID_ED25519: &str = "1.3.101.112";
const OID_SECP256R1: &str = "1.2.840.10045.3.1.7";
const OID_SECP384R1: &str = "1.3.132.0.34";
const OID_SHA256: &str = "2.16.840.1.101.3.4.2.1";
const OID_SHA384: &str = "2.16.840.1.101.3.4.2.2";
const OID_SHA512: &str = "2.16.840.1.101.3.4.2.3";

/// Names for algorithms refused on purpose, so the error says what was seen.
const REFUSED_SIGNATURE_ALGORITHMS: &[(&str, &str)] = &[
    ("1.2.840.113549.1.1.2", "md2WithRSAEncryption"),
    ("1.2.840.113549.1.1.4", "md5WithRSAEncryption"),
    ("1.2.840.113549.1.1.5", "sha1WithRSAEncryption"),
    ("1.3.14.3.2.29", "sha1WithRSASignature"),
    ("1.2.840.113549.1.1.14", "sha224WithRSAEncryption"),
    ("1.2.840.10045.4.1", "ecdsa-with-SHA1"),
    ("1.2.840.10045.4.3.1", "ecdsa-with-SHA224"),
    ("1.2.840.10040.4.3", "dsa-with-sha1"),
    ("2.16.840.1.101.3.4.3.1", "dsa-with-sha224"),
    ("2.16.840.1.101.3.4.3.2", "dsa-with-sha256"),
    ("1.3.101.113", "Ed448"),
];

const REFUSED_KEY_ALGORITHMS: &[(&str, &str)] = &[
    ("1.2.840.10040.4.1", "DSA"),
    ("1.3.101.113", "Ed448"),
    ("1.3.101.110", "X25519"),
    ("1.3.101.111", "X448"),
    (OID_RSA_PSS, "RSASSA-PSS public key"),
];

/// Why a signature did not verify.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature does not match the message under this key.
    #[error("signature does not verify with the issuer's {key} key")]
    BadSignature {
        /// The key algorithm, for the explanation.
        key: String,
    },
    /// The signature algorithm cannot be used with this key type or curve.
    #[error("signature algorithm {algorithm} cannot be used with a {key} key")]
    KeyMismatch {
        /// The signature algorithm.
        algorithm: String,
        /// The key algorithm.
        key: String,
    },
    /// An encoding is malformed (algorithm parameters, key, or signature value).
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// Which structure.
        what: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// The algorithm is deliberately refused or not implemented (SHA-1, DSA, small RSA,
    /// P-521, Ed448, unusual PSS parameters).
    #[error("unsupported algorithm: {algorithm}")]
    Unsupported {
        /// A readable name of what was refused, e.g. `sha1WithRSAEncryption` or `RSA-1024`.
        algorithm: String,
    },
}

impl SignatureError {
    fn malformed(what: &'static str, detail: impl Into<String>) -> Self {
        Self::Malformed {
            what,
            detail: detail.into(),
        }
    }
}

/// Hash functions the accepted signature algorithms use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlgorithm {
    fn from_oid(oid: &str) -> Option<Self> {
        match oid {
            OID_SHA256 => Some(Self::Sha256),
            OID_SHA384 => Some(Self::Sha384),
            OID_SHA512 => Some(Self::Sha512),
            _ => None,
        }
    }

    /// The digest length in bytes (the PSS salt length ring expects).
    pub fn output_len(self) -> u32 {
        match self {
            Self::Sha256 => 32,
            Self::Sha384 => 48,
            Self::Sha512 => 64,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Sha256 => "SHA-256",
            Self::Sha384 => "SHA-384",
            Self::Sha512 => "SHA-512",
        }
    }
}

/// A signature algorithm as named by an AlgorithmIdentifier, with parameters checked.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SignatureAlgorithm {
    /// ECDSA with the given hash (RFC 5758 §3.2).
    Ecdsa(HashAlgorithm),
    /// Ed25519 (RFC 8410 §3).
    Ed25519,
    /// RSA PKCS#1 v1.5 with the given hash (RFC 4055 §5).
    RsaPkcs1(HashAlgorithm),
    /// RSASSA-PSS with MGF1 over the same hash and a salt as long as the digest (RFC 4055 §3.1).
    RsaPss(HashAlgorithm),
    /// Anything else: refused, never verified.
    Unsupported {
        /// The dotted OID of the algorithm.
        oid: String,
        /// A readable name, for explanations.
        name: String,
    },
}

impl SignatureAlgorithm {
    /// Reads an AlgorithmIdentifier as parsed by x509-parser (from a certificate or a CRL).
    /// Malformed parameters are an error; a well-formed but refused algorithm is
    /// [`SignatureAlgorithm::Unsupported`].
    pub fn from_x509(alg: &AlgorithmIdentifier<'_>) -> Result<Self, SignatureError> {
        let oid = crate::cert::oid_string(&alg.algorithm);
        let params = alg.parameters.as_ref();
        let hash = match oid.as_str() {
            OID_SHA256_WITH_RSA | OID_ECDSA_SHA256 => Some(HashAlgorithm::Sha256),
            OID_SHA384_WITH_RSA | OID_ECDSA_SHA384 => Some(HashAlgorithm::Sha384),
            OID_SHA512_WITH_RSA | OID_ECDSA_SHA512 => Some(HashAlgorithm::Sha512),
            _ => None,
        };
        match (oid.as_str(), hash) {
            (OID_SHA256_WITH_RSA | OID_SHA384_WITH_RSA | OID_SHA512_WITH_RSA, Some(hash)) => {
                // RFC 4055 §5: the parameters MUST be NULL, and implementations MUST accept
                // them absent as well.
                if !params_absent_or_null(params) {
                    return Err(SignatureError::malformed(
                        "signature algorithm",
                        "RSA PKCS#1 v1.5 parameters must be NULL or absent",
                    ));
                }
                Ok(Self::RsaPkcs1(hash))
            }
            (OID_ECDSA_SHA256 | OID_ECDSA_SHA384 | OID_ECDSA_SHA512, Some(hash)) => {
                // RFC 5758 §3.2: the parameters field MUST be absent.
                if params.is_some() {
                    return Err(SignatureError::malformed(
                        "signature algorithm",
                        "ECDSA parameters must be absent",
                    ));
                }
                Ok(Self::Ecdsa(hash))
            }
            (OID_ED25519, _) => {
                // RFC 8410 §3: the parameters MUST be absent.
                if params.is_some() {
                    return Err(SignatureError::malformed(
                        "signature algorithm",
                        "Ed25519 parameters must be absent",
                    ));
                }
                Ok(Self::Ed25519)
            }
            (OID_RSA_PSS, _) => {
                let params = params.ok_or_else(|| {
                    SignatureError::malformed(
                        "signature algorithm",
                        "RSASSA-PSS without parameters",
                    )
                })?;
                parse_pss_params(params)
            }
            _ => {
                let name = REFUSED_SIGNATURE_ALGORITHMS
                    .iter()
                    .find(|(o, _)| *o == oid)
                    .map_or_else(
                        || format!("signature algorithm {oid}"),
                        |(_, n)| (*n).to_owned(),
                    );
                Ok(Self::Unsupported { oid, name })
            }
        }
    }

    /// A readable name such as `ecdsa-with-SHA256`.
    pub fn name(&self) -> String {
        match self {
            Self::Ecdsa(h) => format!("ecdsa-with-{}", h.name()),
            Self::Ed25519 => "Ed25519".to_owned(),
            Self::RsaPkcs1(h) => format!("RSA PKCS#1 v1.5 {}", h.name()),
            Self::RsaPss(h) => format!("RSASSA-PSS {}", h.name()),
            Self::Unsupported { name, .. } => name.clone(),
        }
    }
}

fn params_absent_or_null(params: Option<&Any<'_>>) -> bool {
    params.is_none_or(|p| p.tag() == Tag::Null && p.data.is_empty())
}

/// RFC 4055 §3.1 RSASSA-PSS-params. ring verifies PSS only with MGF1 over the message hash and
/// a salt as long as the digest (the profile RFC 4055 §3.3 recommends), so other combinations
/// are refused as unsupported rather than guessed at.
fn parse_pss_params(params: &Any<'_>) -> Result<SignatureAlgorithm, SignatureError> {
    let parsed = x509_parser::signature_algorithm::RsaSsaPssParams::try_from(params)
        .map_err(|e| SignatureError::malformed("RSASSA-PSS parameters", e.to_string()))?;
    let hash_oid = crate::cert::oid_string(parsed.hash_algorithm_oid());
    let unsupported = |why: String| {
        Ok(SignatureAlgorithm::Unsupported {
            oid: OID_RSA_PSS.to_owned(),
            name: format!("RSASSA-PSS ({why})"),
        })
    };
    if let Some(h) = parsed.hash_algorithm()
        && !params_absent_or_null(h.parameters.as_ref())
    {
        return Err(SignatureError::malformed(
            "RSASSA-PSS parameters",
            "hash algorithm parameters must be NULL or absent",
        ));
    }
    let Some(hash) = HashAlgorithm::from_oid(&hash_oid) else {
        return unsupported(format!("hash {hash_oid}"));
    };
    let mgf = parsed
        .mask_gen_algorithm()
        .map_err(|e| SignatureError::malformed("RSASSA-PSS parameters", e.to_string()))?;
    let mgf_oid = crate::cert::oid_string(&mgf.mgf);
    let mgf_hash = crate::cert::oid_string(&mgf.hash);
    if mgf_oid != OID_MGF1 {
        return unsupported(format!("mask generation {mgf_oid}"));
    }
    if HashAlgorithm::from_oid(&mgf_hash) != Some(hash) {
        return unsupported(format!("MGF1 hash {mgf_hash} differs from {}", hash.name()));
    }
    if parsed.salt_length() != hash.output_len() {
        return unsupported(format!("salt length {}", parsed.salt_length()));
    }
    if parsed.trailer_field() != 1 {
        return Err(SignatureError::malformed(
            "RSASSA-PSS parameters",
            format!("trailer field {} (must be 1)", parsed.trailer_field()),
        ));
    }
    Ok(SignatureAlgorithm::RsaPss(hash))
}

/// The key algorithm of a SubjectPublicKeyInfo.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// An EC key on P-256.
    EcP256,
    /// An EC key on P-384.
    EcP384,
    /// An Ed25519 key.
    Ed25519,
    /// An RSA key (rsaEncryption) with the modulus size in bits.
    Rsa {
        /// Modulus length in bits.
        bits: usize,
    },
    /// Any other key type or curve: signatures by it are refused.
    Unsupported {
        /// A readable name.
        name: String,
    },
}

impl KeyAlgorithm {
    /// A readable name such as `P-256` or `RSA-2048`.
    pub fn name(&self) -> String {
        match self {
            Self::EcP256 => "P-256".to_owned(),
            Self::EcP384 => "P-384".to_owned(),
            Self::Ed25519 => "Ed25519".to_owned(),
            Self::Rsa { bits } => format!("RSA-{bits}"),
            Self::Unsupported { name } => name.clone(),
        }
    }
}

/// An owned SubjectPublicKeyInfo (RFC 5280 §4.1.2.7): the DER, the key algorithm and the key
/// bytes (the BIT STRING contents).
#[derive(Clone, Debug)]
pub struct Spki {
    der: Vec<u8>,
    algorithm: KeyAlgorithm,
    key: Vec<u8>,
    /// An Ed25519 key decoded to a curve point on first use, `None` if it is not a point.
    /// Decoding costs a field square root; a trust anchor or a cached intermediate verifies many
    /// signatures, and a leaf (whose key signs nothing on the path) never pays for it. The
    /// strict checks on the point (small order) still run on every verification.
    ed25519: OnceLock<Option<ed25519_dalek::VerifyingKey>>,
}

// Equality and hashing follow the encoded key alone: the decoded point is a cache derived
// from `key`.
impl PartialEq for Spki {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der && self.algorithm == other.algorithm && self.key == other.key
    }
}

impl Eq for Spki {}

impl std::hash::Hash for Spki {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.der.hash(state);
        self.algorithm.hash(state);
        self.key.hash(state);
    }
}

impl Spki {
    /// Parses a DER SubjectPublicKeyInfo.
    pub fn from_der(der: &[u8]) -> Result<Self, SignatureError> {
        let (rest, spki) = SubjectPublicKeyInfo::from_der(der)
            .map_err(|e| SignatureError::malformed("public key", e.to_string()))?;
        if !rest.is_empty() {
            return Err(SignatureError::malformed("public key", "trailing bytes"));
        }
        Self::from_x509(&spki)
    }

    /// Reads a SubjectPublicKeyInfo parsed by x509-parser. Unknown key types are kept as
    /// [`KeyAlgorithm::Unsupported`]; a known type with a broken encoding is an error.
    pub fn from_x509(spki: &SubjectPublicKeyInfo<'_>) -> Result<Self, SignatureError> {
        if spki.subject_public_key.unused_bits != 0 {
            return Err(SignatureError::malformed(
                "public key",
                "BIT STRING has unused bits",
            ));
        }
        let key = spki.subject_public_key.data.to_vec();
        let oid = crate::cert::oid_string(&spki.algorithm.algorithm);
        let params = spki.algorithm.parameters.as_ref();
        let algorithm = match oid.as_str() {
            OID_ED25519 => {
                if params.is_some() {
                    return Err(SignatureError::malformed(
                        "public key",
                        "Ed25519 key parameters must be absent (RFC 8410 §3)",
                    ));
                }
                if key.len() != ed25519_dalek::PUBLIC_KEY_LENGTH {
                    return Err(SignatureError::malformed(
                        "public key",
                        format!("Ed25519 key of {} bytes", key.len()),
                    ));
                }
                KeyAlgorithm::Ed25519
            }
            OID_EC_PUBLIC_KEY => {
                let curve = params
                    .filter(|p| p.tag() == Tag::Oid)
                    .map(|p| crate::cert::oid_string(&Oid::new(p.data.into())))
                    .ok_or_else(|| {
                        // RFC 5480 §2.1.1: only namedCurve is allowed in certificates.
                        SignatureError::malformed("public key", "EC key without a named curve")
                    })?;
                match curve.as_str() {
                    OID_SECP256R1 => KeyAlgorithm::EcP256,
                    OID_SECP384R1 => KeyAlgorithm::EcP384,
                    "1.3.132.0.35" => KeyAlgorithm::Unsupported {
                        name: "P-521".to_owned(),
                    },
                    other => KeyAlgorithm::Unsupported {
                        name: format!("EC curve {other}"),
                    },
                }
            }
            OID_RSA_ENCRYPTION => {
                if !params_absent_or_null(params) {
                    return Err(SignatureError::malformed(
                        "public key",
                        "rsaEncryption parameters must be NULL (RFC 3279 §2.3.1)",
                    ));
                }
                KeyAlgorithm::Rsa {
                    bits: rsa_modulus_bits(&key)?,
                }
            }
            _ => KeyAlgorithm::Unsupported {
                name: REFUSED_KEY_ALGORITHMS
                    .iter()
                    .find(|(o, _)| *o == oid)
                    .map_or_else(|| format!("key algorithm {oid}"), |(_, n)| (*n).to_owned()),
            },
        };
        Ok(Self {
            der: spki.raw.to_vec(),
            algorithm,
            key,
            ed25519: OnceLock::new(),
        })
    }

    /// The DER encoding of the whole SubjectPublicKeyInfo.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The key algorithm.
    pub fn algorithm(&self) -> &KeyAlgorithm {
        &self.algorithm
    }

    /// The subjectPublicKey BIT STRING contents.
    pub fn key(&self) -> &[u8] {
        &self.key
    }
}

/// The modulus length in bits of an RSAPublicKey (RFC 3279 §2.3.1), without leading zeros.
fn rsa_modulus_bits(key: &[u8]) -> Result<usize, SignatureError> {
    let malformed = |d: &str| SignatureError::malformed("public key", format!("RSA key: {d}"));
    let (rest, seq) = Any::from_der(key).map_err(|_| malformed("not a SEQUENCE"))?;
    if !rest.is_empty() || seq.tag() != Tag::Sequence {
        return Err(malformed("not a single SEQUENCE"));
    }
    let (rest, modulus) = Any::from_der(seq.data).map_err(|_| malformed("no modulus"))?;
    let (rest, exponent) = Any::from_der(rest).map_err(|_| malformed("no exponent"))?;
    if !rest.is_empty() || modulus.tag() != Tag::Integer || exponent.tag() != Tag::Integer {
        return Err(malformed("expected two INTEGERs"));
    }
    let bytes = modulus.data;
    let first = bytes
        .iter()
        .position(|b| *b != 0)
        .ok_or_else(|| malformed("zero modulus"))?;
    let significant = &bytes[first..];
    // `first` < len, so `significant` is not empty and its first byte is non-zero.
    let lead_bits = 8 - significant[0].leading_zeros() as usize;
    Ok((significant.len() - 1) * 8 + lead_bits)
}

/// Verifies `signature` over `message` with the key in `spki` under `algorithm`.
pub fn verify_signature(
    spki: &Spki,
    algorithm: &SignatureAlgorithm,
    message: &[u8],
    signature: &[u8],
) -> Result<(), SignatureError> {
    use ring::signature as rs;

    let mismatch = || SignatureError::KeyMismatch {
        algorithm: algorithm.name(),
        key: spki.algorithm.name(),
    };
    if let SignatureAlgorithm::Unsupported { name, .. } = algorithm {
        return Err(SignatureError::Unsupported {
            algorithm: name.clone(),
        });
    }
    if let KeyAlgorithm::Unsupported { name } = &spki.algorithm {
        return Err(SignatureError::Unsupported {
            algorithm: name.clone(),
        });
    }
    if let KeyAlgorithm::Rsa { bits } = spki.algorithm
        && !(RSA_MODULUS_BITS_MIN..=RSA_MODULUS_BITS_MAX).contains(&bits)
    {
        return Err(SignatureError::Unsupported {
            algorithm: format!("RSA-{bits}"),
        });
    }
    let ring_alg: &dyn rs::VerificationAlgorithm = match (algorithm, &spki.algorithm) {
        (SignatureAlgorithm::Ed25519, KeyAlgorithm::Ed25519) => {
            return verify_ed25519(spki, message, signature);
        }
        (SignatureAlgorithm::Ed25519, _) => return Err(mismatch()),
        (SignatureAlgorithm::Ecdsa(h), KeyAlgorithm::EcP256) => match h {
            HashAlgorithm::Sha256 => &rs::ECDSA_P256_SHA256_ASN1,
            HashAlgorithm::Sha384 => &rs::ECDSA_P256_SHA384_ASN1,
            HashAlgorithm::Sha512 => {
                return Err(SignatureError::Unsupported {
                    algorithm: "ecdsa-with-SHA512 on P-256".to_owned(),
                });
            }
        },
        (SignatureAlgorithm::Ecdsa(h), KeyAlgorithm::EcP384) => match h {
            HashAlgorithm::Sha256 => &rs::ECDSA_P384_SHA256_ASN1,
            HashAlgorithm::Sha384 => &rs::ECDSA_P384_SHA384_ASN1,
            HashAlgorithm::Sha512 => {
                return Err(SignatureError::Unsupported {
                    algorithm: "ecdsa-with-SHA512 on P-384".to_owned(),
                });
            }
        },
        (SignatureAlgorithm::Ecdsa(_), _) => return Err(mismatch()),
        (SignatureAlgorithm::RsaPkcs1(h), KeyAlgorithm::Rsa { .. }) => match h {
            HashAlgorithm::Sha256 => &rs::RSA_PKCS1_2048_8192_SHA256,
            HashAlgorithm::Sha384 => &rs::RSA_PKCS1_2048_8192_SHA384,
            HashAlgorithm::Sha512 => &rs::RSA_PKCS1_2048_8192_SHA512,
        },
        (SignatureAlgorithm::RsaPss(h), KeyAlgorithm::Rsa { .. }) => match h {
            HashAlgorithm::Sha256 => &rs::RSA_PSS_2048_8192_SHA256,
            HashAlgorithm::Sha384 => &rs::RSA_PSS_2048_8192_SHA384,
            HashAlgorithm::Sha512 => &rs::RSA_PSS_2048_8192_SHA512,
        },
        (SignatureAlgorithm::RsaPkcs1(_) | SignatureAlgorithm::RsaPss(_), _) => {
            return Err(mismatch());
        }
        (SignatureAlgorithm::Unsupported { .. }, _) => return Err(mismatch()),
    };
    rs::UnparsedPublicKey::new(ring_alg, &spki.key)
        .verify(message, signature)
        .map_err(|_| SignatureError::BadSignature {
            key: spki.algorithm.name(),
        })
}

/// Ed25519 with ed25519-dalek's strict verification, which rejects small-order keys and
/// non-canonical signatures (the malleability RFC 8032 §5.1.7 leaves open). The key's point is
/// decoded once per [`Spki`] and reused.
fn verify_ed25519(spki: &Spki, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
    let key: &[u8; ed25519_dalek::PUBLIC_KEY_LENGTH] = spki
        .key
        .as_slice()
        .try_into()
        .map_err(|_| SignatureError::malformed("public key", "Ed25519 key is not 32 bytes"))?;
    let signature: &[u8; ed25519_dalek::SIGNATURE_LENGTH] = signature
        .try_into()
        .map_err(|_| SignatureError::malformed("signature", "Ed25519 signature is not 64 bytes"))?;
    let bad = || SignatureError::BadSignature {
        key: "Ed25519".to_owned(),
    };
    let key = spki
        .ed25519
        .get_or_init(|| ed25519_dalek::VerifyingKey::from_bytes(key).ok())
        .as_ref()
        .ok_or_else(bad)?;
    key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(signature))
        .map_err(|_| bad())
}

/// Verifies that `issuer`'s key signed `cert` (RFC 5280 §6.1.3(a)(1)).
pub fn verify_cert_signed_by(cert: &Cert, issuer: &Cert) -> Result<(), SignatureError> {
    verify_signed_by(
        cert.signature_algorithm()?,
        cert.tbs(),
        cert.signature_value(),
        issuer.spki(),
    )
}

/// Verifies a signed structure (a CRL's TBSCertList, for instance) against an issuer's key: the
/// algorithm as parsed, the exact signed bytes and the signature BIT STRING contents.
pub fn verify_signed_by(
    algorithm: &SignatureAlgorithm,
    tbs: &[u8],
    signature: &[u8],
    issuer_spki: &Spki,
) -> Result<(), SignatureError> {
    verify_signature(issuer_spki, algorithm, tbs, signature)
}

#[cfg(test)]
mod tests;
