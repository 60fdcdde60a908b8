//! kakehashi-devpki: the development PKI generator and the x509-limbo conformance harness,
//! tooling around the verifier that no node runs.
//!
//! It owns the generator behind `kakehashi pki init` (the committed `certs/` is exactly its
//! output for the seed in `certs/dev-seed.txt`) and [`limbo`], the x509-limbo and NIST PKITS
//! harness behind `kakehashi conformance`. It depends on `kakehashi-pki` (the verifier the
//! harness drives, the agreement the generator signs) and on rcgen and p256, which the verifier
//! itself must not carry.
//!
//! Production code must not depend on it: neither `kakehashi-pki` nor `kakehashi-node` nor
//! `kakehashi-ledger` does. The `kakehashi` binary uses it for the developer commands
//! `pki init` and `conformance` only, and tests use its fixture table.
//!
//! # The development PKI
//!
//! [`generate`] makes, for Japan (JP) and Singapore (SG), each a root CA, an issuing CA, three
//! fictitious banks with payment-signing certificates, a node TLS certificate, a
//! receipt-signing certificate and CRLs; a third jurisdiction (TH) with one bank and a node,
//! which recognizes JP and SG but is not recognized by them; negative fixtures for auditors,
//! among them node TLS certificates with exactly one defect each for the relay's handshake
//! tests; and the mutual-recognition agreement (`mra.toml`), signed by every party.
//!
//! Every private key derives from a seed (SHA-256 of a domain-separation label, the seed and
//! the key's name), and every date and serial number is fixed, so the same seed regenerates the
//! same bytes: every certificate and CRL is signed by an Ed25519 CA, and Ed25519 signatures are
//! deterministic (RFC 8032 §5.1.6). The keys are for development only; they are committed next
//! to the certificates.
//!
//! All keys are Ed25519 except the node TLS keys, which are ECDSA P-256: gRPC clients built on
//! BoringSSL (gRPC core, behind Python, Ruby, PHP, C# and C++) do not offer Ed25519 among their
//! TLS signature algorithms (RFC 8446 §4.2.3), so they could not complete a handshake with a
//! node holding an Ed25519 key. A P-256 leaf under an Ed25519 issuing CA is still generated
//! deterministically: its key derives from the seed, and only its CA signs anything here.
//!
//! Validity dates are far from today so that committed fixtures do not rot: tests pin the
//! validation time to [`VALIDATION_TIME`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod limbo;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ed25519_dalek::SigningKey as DalekSigningKey;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CustomExtension,
    DistinguishedName, DnType, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use sha2::Digest as _;
use time::OffsetDateTime;
use time::macros::datetime;

use kakehashi_pki::mra::{AssuranceLevel, Mra, MraError};
use kakehashi_pki::purpose::{
    EKU_CLIENT_AUTH, EKU_PAYMENT_SIGNING, EKU_RECEIPT_SIGNING, EKU_SERVER_AUTH, KAKEHASHI_ARC,
    Purpose,
};

/// The validation time the fixture table is documented for, and that tests pin.
pub const VALIDATION_TIME: &str = "2027-01-01T00:00:00Z";

/// Domain separation for key derivation: a key derived for another use never collides.
const KEY_DERIVATION_LABEL: &[u8] = b"kakehashi-devpki-v1";

/// Bytes of randomness in a generated seed: 256 bits, the strength of an Ed25519 key.
const SEED_RANDOM_LEN: usize = 32;

/// Longest seed accepted on the command line; a seed is a name, not a document.
pub const SEED_LEN_MAX: usize = 256;

/// Roots: 2025-01-01 → 2045-01-01, twenty years, so nothing rots while the project lives.
const ROOT_NOT_BEFORE: OffsetDateTime = datetime!(2025-01-01 00:00:00 UTC);
const ROOT_NOT_AFTER: OffsetDateTime = datetime!(2045-01-01 00:00:00 UTC);
/// Issuing CAs end a year before their roots, as real hierarchies nest validity.
const ISSUING_NOT_BEFORE: OffsetDateTime = datetime!(2025-01-01 00:00:00 UTC);
const ISSUING_NOT_AFTER: OffsetDateTime = datetime!(2044-01-01 00:00:00 UTC);
/// Participant and node certificates: ten years from mid-2025.
const LEAF_NOT_BEFORE: OffsetDateTime = datetime!(2025-06-01 00:00:00 UTC);
const LEAF_NOT_AFTER: OffsetDateTime = datetime!(2035-06-01 00:00:00 UTC);
/// The expired fixture ends in 2025, before any pinned validation time.
const EXPIRED_NOT_BEFORE: OffsetDateTime = datetime!(2025-01-01 00:00:00 UTC);
const EXPIRED_NOT_AFTER: OffsetDateTime = datetime!(2025-12-31 23:59:59 UTC);
/// The expired node TLS fixture: a one-year certificate that ended on 2026-02-01. Nodes check
/// their peers at the real clock, so it must already be expired on the day it was added
/// (2026-11-28) as well as at the pinned validation time.
const NODE_EXPIRED_NOT_BEFORE: OffsetDateTime = datetime!(2025-02-01 00:00:00 UTC);
const NODE_EXPIRED_NOT_AFTER: OffsetDateTime = datetime!(2026-02-01 00:00:00 UTC);
/// The not-yet-valid fixture starts in 2040.
const FUTURE_NOT_BEFORE: OffsetDateTime = datetime!(2040-01-01 00:00:00 UTC);
const FUTURE_NOT_AFTER: OffsetDateTime = datetime!(2042-01-01 00:00:00 UTC);
/// CRLs: issued mid-2025; nextUpdate far ahead so that committed CRLs stay current in tests.
const CRL_THIS_UPDATE: OffsetDateTime = datetime!(2025-06-01 00:00:00 UTC);
const CRL_NEXT_UPDATE: OffsetDateTime = datetime!(2044-01-01 00:00:00 UTC);
const REVOCATION_TIME: OffsetDateTime = datetime!(2025-09-01 00:00:00 UTC);
/// The agreement and its recognition rows.
const MRA_NOT_BEFORE: &str = "2026-01-01T00:00:00Z";
const MRA_NOT_AFTER: &str = "2046-01-01T00:00:00Z";
const ROW_NOT_BEFORE: &str = "2026-01-01T00:00:00Z";
const ROW_NOT_AFTER: &str = "2036-01-01T00:00:00Z";

/// Serial indices of the node fixtures under JP's issuing CA (kind 0x40, after the six bank
/// fixtures), so the CRL entry and the README name the same serial.
const NODE_EXPIRED_INDEX: u8 = 7;
const NODE_REVOKED_INDEX: u8 = 8;

/// id-ce-certificatePolicies (RFC 5280 §4.2.1.4).
const OID_CERTIFICATE_POLICIES: &[u64] = &[2, 5, 29, 32];
/// id-ce-extKeyUsage (RFC 5280 §4.2.1.12).
const OID_EXT_KEY_USAGE: &[u64] = &[2, 5, 29, 37];

/// One jurisdiction of the development PKI.
struct JurisdictionSpec {
    code: &'static str,
    name: &'static str,
    currency: &'static str,
    /// ISO 3166-1 numeric code; it names the jurisdiction's policy arc and its serials.
    number: u32,
    banks: &'static [BankSpec],
    /// Whether the jurisdiction is a party to the agreement.
    in_mra: bool,
    /// Whether it runs a node (node TLS and receipt-signing certificates).
    has_node: bool,
}

struct BankSpec {
    bic: &'static str,
    name: &'static str,
    level: AssuranceLevel,
    revoked: bool,
}

// BICs whose eighth character is '0' are SWIFT test-and-training codes, never live banks; the
// four-letter bank codes and names below are invented for this project.
const JP: JurisdictionSpec = JurisdictionSpec {
    code: "JP",
    name: "Japan",
    currency: "JPY",
    number: 392,
    banks: &[
        BankSpec {
            bic: "KKHAJPJ0",
            name: "Kakehashi Alpha Bank JP (fictitious)",
            level: AssuranceLevel::High,
            revoked: false,
        },
        BankSpec {
            bic: "KKHBJPJ0",
            name: "Kakehashi Beta Bank JP (fictitious)",
            level: AssuranceLevel::Substantial,
            revoked: false,
        },
        BankSpec {
            bic: "KKHCJPJ0",
            name: "Kakehashi Gamma Bank JP (fictitious)",
            level: AssuranceLevel::Substantial,
            revoked: true,
        },
    ],
    in_mra: true,
    has_node: true,
};

const SG: JurisdictionSpec = JurisdictionSpec {
    code: "SG",
    name: "Singapore",
    currency: "SGD",
    number: 702,
    banks: &[
        BankSpec {
            bic: "KKHASGS0",
            name: "Kakehashi Alpha Bank SG (fictitious)",
            level: AssuranceLevel::High,
            revoked: false,
        },
        BankSpec {
            bic: "KKHBSGS0",
            name: "Kakehashi Beta Bank SG (fictitious)",
            level: AssuranceLevel::Substantial,
            revoked: false,
        },
        BankSpec {
            bic: "KKHCSGS0",
            name: "Kakehashi Gamma Bank SG (fictitious)",
            level: AssuranceLevel::Substantial,
            revoked: true,
        },
    ],
    in_mra: true,
    has_node: true,
};

/// Thailand is a party that has acceded one way: it recognizes JP and SG, but they do not yet
/// recognize it. It runs a node, so a third-jurisdiction relay test can extend the agreement
/// at test time and use TH's committed identities.
const TH: JurisdictionSpec = JurisdictionSpec {
    code: "TH",
    name: "Thailand",
    currency: "THB",
    number: 764,
    banks: &[BankSpec {
        bic: "KKHATHB0",
        name: "Kakehashi Alpha Bank TH (fictitious)",
        level: AssuranceLevel::High,
        revoked: false,
    }],
    in_mra: true,
    has_node: true,
};

/// A PKI the agreement does not mention at all. ISO 3166 reserves numeric codes 900–999 and
/// alpha-2 `XX` for user assignment, so neither names a real country.
const XX: JurisdictionSpec = JurisdictionSpec {
    code: "XX",
    name: "Unlisted",
    currency: "XXX",
    number: 999,
    banks: &[BankSpec {
        bic: "KKHAXXX0",
        name: "Kakehashi Alpha Bank XX (fictitious)",
        level: AssuranceLevel::High,
        revoked: false,
    }],
    in_mra: false,
    has_node: false,
};

/// What verifying a fixture must conclude.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// Recognized.
    Recognized,
    /// Not recognized: the leaf's notAfter is before the validation time.
    Expired,
    /// Not recognized: the leaf's notBefore is after the validation time.
    NotYetValid,
    /// Not recognized: the issuing CA's CRL lists the leaf.
    Revoked,
    /// Not recognized: the leaf lacks the purpose's extended key usage.
    WrongPurpose,
    /// Not recognized: the chain validates to a party the relying jurisdiction does not
    /// recognize.
    UnrecognizedJurisdiction,
    /// Not recognized: the chain leads to no anchor of the agreement.
    UnknownIssuer,
    /// Not recognized: the leaf's policy maps to a level below the row's minimum.
    LevelBelowMinimum,
    /// Not recognized: the leaf's signature does not verify.
    BadSignature,
    /// Not recognized: a CA with pathLenConstraint 0 issued another CA.
    PathLength,
}

impl Expected {
    /// The verdict's one-word form for the fixture table.
    pub fn verdict(self) -> &'static str {
        match self {
            Self::Recognized => "recognized",
            _ => "not recognized",
        }
    }

    /// The rule that decides, as cited in the fixture table.
    pub fn rule(self) -> &'static str {
        match self {
            Self::Recognized => "MRA §recognition.<row> or MRA §self-recognition",
            Self::Expired | Self::NotYetValid => "RFC 5280 §6.1.3(a)(2)",
            Self::Revoked => "RFC 5280 §6.3",
            Self::WrongPurpose => "RFC 5280 §4.2.1.12",
            Self::UnrecognizedJurisdiction => "MRA §recognition",
            Self::UnknownIssuer => "RFC 5280 §6.1 (path to a trust anchor)",
            Self::LevelBelowMinimum => "MRA §level",
            Self::BadSignature => "RFC 5280 §6.1.3(a)(1)",
            Self::PathLength => "RFC 5280 §6.1.4(l)",
        }
    }
}

/// One entry of the fixture table: a chain file, how it is verified, and the verdict.
#[derive(Clone, Copy, Debug)]
pub struct Fixture {
    /// Short name (the fixture directory for negative fixtures).
    pub name: &'static str,
    /// The chain file (leaf first, then intermediates), relative to the PKI directory.
    pub chain: &'static str,
    /// The jurisdiction whose anchor the chain leads to; empty when none of the agreement's.
    pub anchor: &'static str,
    /// The relying jurisdiction.
    pub relying: &'static str,
    /// The purpose verified for.
    pub purpose: Purpose,
    /// The expected verdict.
    pub expected: Expected,
    /// Why, in a sentence.
    pub why: &'static str,
}

impl Fixture {
    /// The clause (when recognized) or rule (when not) that decides the verdict.
    pub fn rule(&self) -> String {
        match self.expected {
            Expected::Recognized if self.anchor == self.relying => {
                "MRA §self-recognition".to_owned()
            }
            Expected::Recognized => {
                format!(
                    "MRA §recognition.{}-recognizes-{}",
                    self.relying, self.anchor
                )
            }
            other => other.rule().to_owned(),
        }
    }
}

/// The fixture table documented in the generated README, verified at [`VALIDATION_TIME`].
pub const FIXTURES: &[Fixture] = &[
    Fixture {
        name: "jp-bank-high",
        chain: "jp/banks/KKHAJPJ0.pem",
        anchor: "JP",
        relying: "SG",
        purpose: Purpose::PaymentSigning,
        expected: Expected::Recognized,
        why: "JP anchor; row SG-recognizes-JP; level high >= substantial",
    },
    Fixture {
        name: "jp-bank-substantial",
        chain: "jp/banks/KKHBJPJ0.pem",
        anchor: "JP",
        relying: "SG",
        purpose: Purpose::PaymentSigning,
        expected: Expected::Recognized,
        why: "JP anchor; row SG-recognizes-JP; level substantial >= substantial",
    },
    Fixture {
        name: "sg-bank-own",
        chain: "sg/banks/KKHASGS0.pem",
        anchor: "SG",
        relying: "SG",
        purpose: Purpose::PaymentSigning,
        expected: Expected::Recognized,
        why: "SG anchor; SG always recognizes itself",
    },
    Fixture {
        name: "jp-node-tls",
        chain: "jp/node/tls.pem",
        anchor: "JP",
        relying: "SG",
        purpose: Purpose::NodeTls,
        expected: Expected::Recognized,
        why: "JP anchor; row SG-recognizes-JP covers node-tls",
    },
    Fixture {
        name: "jp-receipt",
        chain: "jp/node/receipt.pem",
        anchor: "JP",
        relying: "SG",
        purpose: Purpose::ReceiptSigning,
        expected: Expected::Recognized,
        why: "JP anchor; row SG-recognizes-JP covers receipt-signing",
    },
    Fixture {
        name: "sg-bank-to-jp",
        chain: "sg/banks/KKHBSGS0.pem",
        anchor: "SG",
        relying: "JP",
        purpose: Purpose::PaymentSigning,
        expected: Expected::Recognized,
        why: "SG anchor; row JP-recognizes-SG",
    },
    Fixture {
        name: "th-node-tls-own",
        chain: "th/node/tls.pem",
        anchor: "TH",
        relying: "TH",
        purpose: Purpose::NodeTls,
        expected: Expected::Recognized,
        why: "TH anchor; TH always recognizes itself",
    },
    Fixture {
        name: "expired",
        chain: "fixtures/expired/chain.pem",
        anchor: "JP",
        relying: "SG",
        purpose: Purpose::PaymentSigning,
        expected: Expected::Expired,
        why: "leaf notAfter 2025-12-31T23:59:59Z is before the validation time",
    },
    Fixture {
        name: "not-yet-valid",
        chain: "fixtures/not-yet-valid/chain.pem",
        anchor: "JP",
        relying: "SG",
        purpose: Purpose::PaymentSigning,
        expected: Expected::NotYetValid,
        why: "leaf notBefore 2040-01-01T00:00:00Z is after the validation time",
    },
    Fixture {
        name: "revoked",
        chain: "fixtures/revoked/chain.pem",
        anchor: "JP",
        relying: "SG",
        purpose: Purpose::PaymentSigning,
        expected: Expected::Revoked,
        why: "jp/crl.pem lists KKHCJPJ0's serial (keyCompromise, 2025-09-01)",
    },
    Fixture {
        name: "wrong-purpose",
        chain: "fixtures/wrong-purpose/chain.pem",
        anchor: "JP",
        relying: "SG",
        purpose: Purpose::PaymentSigning,
        expected: Expected::WrongPurpose,
        why: "leaf EKU is clientAuth only, not payment-signing",
    },
    Fixture {
        name: "unrecognized-jurisdiction",
        chain: "fixtures/unrecognized-jurisdiction/chain.pem",
        anchor: "TH",
        relying: "SG",
        purpose: Purpose::PaymentSigning,
        expected: Expected::UnrecognizedJurisdiction,
        why: "validates to the TH anchor, but no row says SG recognizes TH",
    },
    Fixture {
        name: "unknown-root",
        chain: "fixtures/unknown-root/chain.pem",
        anchor: "",
        relying: "SG",
        purpose: Purpose::PaymentSigning,
        expected: Expected::UnknownIssuer,
        why: "the XX root is not an anchor of any party",
    },
    Fixture {
        name: "policy-below-level",
        chain: "fixtures/policy-below-level/chain.pem",
        anchor: "JP",
        relying: "SG",
        purpose: Purpose::PaymentSigning,
        expected: Expected::LevelBelowMinimum,
        why: "leaf policy maps to low; row SG-recognizes-JP needs substantial",
    },
    Fixture {
        name: "broken-signature",
        chain: "fixtures/broken-signature/chain.pem",
        anchor: "JP",
        relying: "SG",
        purpose: Purpose::PaymentSigning,
        expected: Expected::BadSignature,
        why: "last byte of the leaf's signature flipped",
    },
    Fixture {
        name: "path-length",
        chain: "fixtures/path-length/chain.pem",
        anchor: "JP",
        relying: "SG",
        purpose: Purpose::PaymentSigning,
        expected: Expected::PathLength,
        why: "JP issuing CA (pathLenConstraint 0) issued a sub-CA that issued the leaf",
    },
    // Node TLS certificates for the relay's handshake tests: each is like `jp/node/tls.pem`
    // (both TLS usages, the same names, the substantial policy) except for one defect.
    Fixture {
        name: "node-expired",
        chain: "fixtures/node-expired/chain.pem",
        anchor: "JP",
        relying: "SG",
        purpose: Purpose::NodeTls,
        expected: Expected::Expired,
        why: "JP node TLS leaf valid 2025-02-01 → 2026-02-01, expired at the validation time \
              and at any clock after 2026-02-01",
    },
    Fixture {
        name: "node-revoked",
        chain: "fixtures/node-revoked/chain.pem",
        anchor: "JP",
        relying: "SG",
        purpose: Purpose::NodeTls,
        expected: Expected::Revoked,
        why: "JP node TLS leaf whose serial jp/crl.pem lists (keyCompromise, 2025-09-01)",
    },
    Fixture {
        name: "node-unknown-pki",
        chain: "fixtures/node-unknown-pki/chain.pem",
        anchor: "",
        relying: "SG",
        purpose: Purpose::NodeTls,
        expected: Expected::UnknownIssuer,
        why: "node TLS leaf issued by the XX issuing CA (fixtures/unknown-root/pki), which \
              leads to no anchor of any party",
    },
    Fixture {
        name: "th-node-tls",
        chain: "th/node/tls.pem",
        anchor: "TH",
        relying: "SG",
        purpose: Purpose::NodeTls,
        expected: Expected::UnrecognizedJurisdiction,
        why: "validates to the TH anchor, but no row says SG recognizes TH for node-tls",
    },
];

/// Why the development PKI could not be generated or written.
#[derive(Debug, thiserror::Error)]
pub enum DevPkiError {
    /// rcgen refused a certificate or CRL.
    #[error("cannot generate {what}: {cause}")]
    Generate {
        /// What was being generated.
        what: String,
        /// rcgen's error.
        cause: rcgen::Error,
    },
    /// A key could not be encoded.
    #[error("cannot encode the key {what}: {reason}")]
    Key {
        /// Which key.
        what: String,
        /// Why.
        reason: String,
    },
    /// The seed is empty or too long.
    #[error("the seed must be 1 to {SEED_LEN_MAX} bytes of text")]
    Seed,
    /// The system random source failed.
    #[error("the system random source failed")]
    Random,
    /// The generated agreement did not parse or sign (a generator bug).
    #[error("the generated agreement is invalid: {0}")]
    Mra(#[from] MraError),
    /// The output directory is not empty and `force` was not given.
    #[error("{} is not empty; pass --force to overwrite the generated files", .0.display())]
    NotEmpty(PathBuf),
    /// Writing a file failed.
    #[error("cannot write {}: {cause}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The operating-system error.
        cause: std::io::Error,
    },
}

/// A generated development PKI: file contents keyed by path relative to the output directory.
#[derive(Clone, Debug)]
pub struct DevPki {
    /// The seed every key derives from.
    pub seed: String,
    /// Relative path → bytes.
    pub files: BTreeMap<PathBuf, Vec<u8>>,
}

/// A fresh random seed: 32 bytes from the system CSPRNG, hex.
pub fn random_seed() -> Result<String, DevPkiError> {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; SEED_RANDOM_LEN];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| DevPkiError::Random)?;
    Ok(hex::encode(bytes))
}

/// The policy OID of `level` in the jurisdiction with ISO 3166 numeric code `number`:
/// `KAKEHASHI_ARC.2.<number>.<level>`.
pub fn policy_oid(number: u32, level: AssuranceLevel) -> String {
    format!("{KAKEHASHI_ARC}.2.{number}.{}", level.number())
}

/// Derives the Ed25519 key called `name` from `seed`.
pub fn derive_key(seed: &str, name: &str) -> DalekSigningKey {
    let mut hasher = sha2::Sha256::new();
    hasher.update(KEY_DERIVATION_LABEL);
    hasher.update([0]);
    hasher.update(seed.as_bytes());
    hasher.update([0]);
    hasher.update(name.as_bytes());
    let digest = hasher.finalize();
    let mut secret = [0u8; 32];
    secret.copy_from_slice(&digest);
    DalekSigningKey::from_bytes(&secret)
}

/// Generates the whole development PKI from `seed`.
pub fn generate(seed: &str) -> Result<DevPki, DevPkiError> {
    if seed.is_empty() || seed.len() > SEED_LEN_MAX {
        return Err(DevPkiError::Seed);
    }
    let mut generator = Generator {
        seed,
        files: BTreeMap::new(),
    };
    let mut jp = generator.jurisdiction(&JP)?;
    let sg = generator.jurisdiction(&SG)?;
    let th = generator.jurisdiction(&TH)?;
    // XX's files are generated, then moved under the unknown-root fixture.
    let xx = generator.jurisdiction(&XX)?;
    // JP's CRL lists the revoked node fixture, so the node fixtures are issued before the CRLs
    // are signed, and the CRLs before the agreement that references them.
    generator.node_fixtures(&mut jp, &xx)?;
    for party in [&jp, &sg, &th, &xx] {
        generator.crls(party)?;
    }
    generator.fixtures(&jp)?;
    generator.mra(&[&jp, &sg, &th])?;
    generator.put("dev-seed.txt", format!("{seed}\n").into_bytes());
    generator.put("README.md", readme(seed).into_bytes());
    Ok(DevPki {
        seed: seed.to_owned(),
        files: generator.files,
    })
}

impl DevPki {
    /// Writes every file under `out`. Refuses a non-empty `out` unless `force`; with `force`
    /// it overwrites the generated files and leaves any other file alone.
    pub fn write_to(&self, out: &Path, force: bool) -> Result<usize, DevPkiError> {
        let non_empty = std::fs::read_dir(out)
            .map(|mut entries| entries.next().is_some())
            .unwrap_or(false);
        if non_empty && !force {
            return Err(DevPkiError::NotEmpty(out.to_owned()));
        }
        for (relative, bytes) in &self.files {
            let path = out.join(relative);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|cause| DevPkiError::Write {
                    path: parent.to_owned(),
                    cause,
                })?;
            }
            std::fs::write(&path, bytes).map_err(|cause| DevPkiError::Write {
                path: path.clone(),
                cause,
            })?;
        }
        Ok(self.files.len())
    }
}

/// A generated CA: what is needed to issue under it.
struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

/// The generated hierarchy of one jurisdiction.
struct Generated {
    spec: &'static JurisdictionSpec,
    root: Ca,
    issuing: Ca,
    authority: DalekSigningKey,
    /// Serials of leaves the issuing CA has revoked; its CRL is signed once all are known.
    revoked: Vec<u64>,
}

/// What a leaf certificate asserts.
struct LeafSpec<'a> {
    label: String,
    common_name: String,
    organization: String,
    serial: u64,
    ekus: &'a [&'a str],
    policy: Option<String>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    alt_names: Vec<SanType>,
    key: LeafKey,
}

/// The key algorithm of a leaf's subject key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LeafKey {
    /// Ed25519 (RFC 8410): every key except node TLS keys.
    Ed25519,
    /// ECDSA on P-256 (RFC 5480): node TLS keys, because gRPC clients built on BoringSSL
    /// (gRPC core: Python, Ruby, PHP, C#, C++) do not offer Ed25519 in the TLS
    /// signature_algorithms extension (RFC 8446 §4.2.3), so a handshake with an Ed25519 node
    /// certificate fails for them with no scheme in common.
    EcdsaP256,
}

struct Generator<'s> {
    seed: &'s str,
    files: BTreeMap<PathBuf, Vec<u8>>,
}

impl Generator<'_> {
    fn put(&mut self, path: &str, bytes: Vec<u8>) {
        self.files.insert(PathBuf::from(path), bytes);
    }

    fn key(&self, name: &str) -> Result<(KeyPair, String), DevPkiError> {
        self.key_of(name, LeafKey::Ed25519)
    }

    fn key_of(&self, name: &str, kind: LeafKey) -> Result<(KeyPair, String), DevPkiError> {
        let (pem, algorithm) = match kind {
            LeafKey::Ed25519 => (
                pkcs8_v1_pem(&derive_key(self.seed, name)),
                &rcgen::PKCS_ED25519,
            ),
            LeafKey::EcdsaP256 => (
                p256_pkcs8_pem(&derive_p256_scalar(self.seed, name)?, name)?,
                &rcgen::PKCS_ECDSA_P256_SHA256,
            ),
        };
        let pair = KeyPair::from_pkcs8_pem_and_sign_algo(&pem, algorithm).map_err(|cause| {
            DevPkiError::Generate {
                what: format!("key {name}"),
                cause,
            }
        })?;
        Ok((pair, pem))
    }

    fn jurisdiction(&mut self, spec: &'static JurisdictionSpec) -> Result<Generated, DevPkiError> {
        let dir = spec.code.to_ascii_lowercase();
        let org = format!(
            "Kakehashi Development PKI {} (NOT FOR PRODUCTION)",
            spec.code
        );
        let all_levels: Vec<String> = AssuranceLevel::ALL
            .iter()
            .map(|l| policy_oid(spec.number, *l))
            .collect();

        // Root: pathLenConstraint 1 allows exactly one intermediate (the issuing CA).
        let (root_key, root_key_pem) = self.key(&format!("{dir}/root"))?;
        let mut root_params = ca_params(
            spec.code,
            &org,
            &format!("Kakehashi {} Root CA", spec.code),
            serial(spec.number, 0x01, 1),
            1,
        );
        root_params.not_before = ROOT_NOT_BEFORE;
        root_params.not_after = ROOT_NOT_AFTER;
        let root_cert =
            root_params
                .self_signed(&root_key)
                .map_err(|cause| DevPkiError::Generate {
                    what: format!("{dir} root"),
                    cause,
                })?;
        let root = Ca {
            pem: root_cert.pem(),
            params: root_params,
            key: root_key,
        };

        // Issuing CA: pathLenConstraint 0, it issues end entities only (RFC 5280 §4.2.1.9).
        // It asserts every policy OID of its jurisdiction so that a leaf's own policy is what
        // reaches the valid policy tree (RFC 5280 §6.1.3(d)).
        let (issuing_key, issuing_key_pem) = self.key(&format!("{dir}/issuing"))?;
        let mut issuing_params = ca_params(
            spec.code,
            &org,
            &format!("Kakehashi {} Issuing CA 1", spec.code),
            serial(spec.number, 0x02, 1),
            0,
        );
        issuing_params.not_before = ISSUING_NOT_BEFORE;
        issuing_params.not_after = ISSUING_NOT_AFTER;
        issuing_params.use_authority_key_identifier_extension = true;
        issuing_params
            .custom_extensions
            .push(policies_extension(&all_levels)?);
        let issuing_cert = issuing_params
            .signed_by(&issuing_key, &Issuer::from_params(&root.params, &root.key))
            .map_err(|cause| DevPkiError::Generate {
                what: format!("{dir} issuing CA"),
                cause,
            })?;
        let issuing = Ca {
            pem: issuing_cert.pem(),
            params: issuing_params,
            key: issuing_key,
        };

        self.put(&format!("{dir}/root.pem"), root.pem.clone().into_bytes());
        self.put(&format!("{dir}/root.key.pem"), root_key_pem.into_bytes());
        self.put(
            &format!("{dir}/issuing.pem"),
            issuing.pem.clone().into_bytes(),
        );
        self.put(
            &format!("{dir}/issuing.key.pem"),
            issuing_key_pem.into_bytes(),
        );

        let mut revoked = Vec::new();
        for (i, bank) in spec.banks.iter().enumerate() {
            let index = u8::try_from(i + 1).unwrap_or(u8::MAX);
            let leaf = LeafSpec {
                label: format!("{dir}/banks/{}", bank.bic),
                common_name: bank.bic.to_owned(),
                organization: bank.name.to_owned(),
                serial: serial(spec.number, 0x10, index),
                ekus: &[EKU_PAYMENT_SIGNING],
                policy: Some(policy_oid(spec.number, bank.level)),
                not_before: LEAF_NOT_BEFORE,
                not_after: LEAF_NOT_AFTER,
                alt_names: Vec::new(),
                key: LeafKey::Ed25519,
            };
            self.leaf(&issuing, &leaf, &format!("{dir}/banks/{}", bank.bic))?;
            if bank.revoked {
                revoked.push(leaf.serial);
            }
        }

        if spec.has_node {
            let tls = node_tls(
                spec,
                spec,
                format!("{dir}/node/tls"),
                serial(spec.number, 0x20, 1),
            )?;
            self.leaf(&issuing, &tls, &format!("{dir}/node/tls"))?;
            let receipt = LeafSpec {
                label: format!("{dir}/node/receipt"),
                common_name: format!("Kakehashi {} Node receipt signing", spec.code),
                organization: format!("Kakehashi {} Node (development)", spec.code),
                serial: serial(spec.number, 0x30, 1),
                ekus: &[EKU_RECEIPT_SIGNING],
                policy: Some(policy_oid(spec.number, AssuranceLevel::High)),
                not_before: LEAF_NOT_BEFORE,
                not_after: LEAF_NOT_AFTER,
                alt_names: Vec::new(),
                key: LeafKey::Ed25519,
            };
            self.leaf(&issuing, &receipt, &format!("{dir}/node/receipt"))?;
        }

        let authority = derive_key(self.seed, &format!("mra-authority/{dir}"));
        if spec.in_mra {
            let pem = pkcs8_v1_pem(&authority);
            self.put(&format!("mra-keys/{dir}.key.pem"), pem.into_bytes());
        }
        Ok(Generated {
            spec,
            root,
            issuing,
            authority,
            revoked,
        })
    }

    /// Writes a jurisdiction's CRLs. The issuing CA's CRL lists every leaf it revoked (the
    /// third bank, and for JP the revoked node fixture); the root's CRL covers the issuing CA
    /// and revokes nothing, so revocation can be required on every certificate.
    fn crls(&mut self, party: &Generated) -> Result<(), DevPkiError> {
        let dir = party.spec.code.to_ascii_lowercase();
        let crl = crl_for(
            &party.issuing,
            &party.revoked,
            &format!("{dir} issuing CRL"),
        )?;
        self.put(&format!("{dir}/crl.pem"), crl.into_bytes());
        let root_crl = crl_for(&party.root, &[], &format!("{dir} root CRL"))?;
        self.put(&format!("{dir}/root-crl.pem"), root_crl.into_bytes());
        Ok(())
    }

    /// Node TLS fixtures for the relay's handshake tests. Each has exactly one defect and is
    /// otherwise what `jp/node/tls.pem` is: serverAuth and clientAuth, SAN DNS `localhost` and
    /// `jp-node.kakehashi.test` and IP `127.0.0.1`, the issuer's substantial policy, and the
    /// same subject apart from a common name that says which fixture it is.
    fn node_fixtures(&mut self, jp: &mut Generated, xx: &Generated) -> Result<(), DevPkiError> {
        let n = jp.spec.number;

        // Expired before the day it was made, so a node on the real clock refuses it too.
        let mut expired = node_tls(
            jp.spec,
            jp.spec,
            "fixtures/node-expired".into(),
            serial(n, 0x40, NODE_EXPIRED_INDEX),
        )?;
        expired.common_name = "jp-node.kakehashi.test (expired fixture)".into();
        expired.not_before = NODE_EXPIRED_NOT_BEFORE;
        expired.not_after = NODE_EXPIRED_NOT_AFTER;
        self.leaf(&jp.issuing, &expired, "fixtures/node-expired/chain")?;

        // Revoked: JP's issuing CA lists this serial in jp/crl.pem (RFC 5280 §5.3.1
        // keyCompromise), the same entry shape as the revoked bank's.
        let mut revoked = node_tls(
            jp.spec,
            jp.spec,
            "fixtures/node-revoked".into(),
            serial(n, 0x40, NODE_REVOKED_INDEX),
        )?;
        revoked.common_name = "jp-node.kakehashi.test (revoked fixture)".into();
        self.leaf(&jp.issuing, &revoked, "fixtures/node-revoked/chain")?;
        jp.revoked.push(revoked.serial);

        // An impostor: it names itself a JP node, but the unlisted XX PKI issued it under XX's
        // substantial policy. The chain ends at XX's issuing CA, whose root is no party's
        // anchor (it is in fixtures/unknown-root/pki for inspection).
        let mut unknown = node_tls(
            jp.spec,
            xx.spec,
            "fixtures/node-unknown-pki".into(),
            serial(xx.spec.number, 0x20, 1),
        )?;
        unknown.common_name = "jp-node.kakehashi.test (unknown PKI fixture)".into();
        self.leaf(&xx.issuing, &unknown, "fixtures/node-unknown-pki/chain")?;
        Ok(())
    }

    /// Issues a leaf, writes `<file>.pem` (leaf then issuing CA) and `<file>.key.pem`, and
    /// returns the leaf's DER.
    fn leaf(&mut self, ca: &Ca, leaf: &LeafSpec<'_>, file: &str) -> Result<Vec<u8>, DevPkiError> {
        let (key, key_pem) = self.key_of(&leaf.label, leaf.key)?;
        let params = leaf_params(leaf)?;
        let cert = params
            .signed_by(&key, &Issuer::from_params(&ca.params, &ca.key))
            .map_err(|cause| DevPkiError::Generate {
                what: leaf.label.clone(),
                cause,
            })?;
        let mut chain = cert.pem();
        chain.push_str(&ca.pem);
        self.put(&format!("{file}.pem"), chain.into_bytes());
        self.put(&format!("{file}.key.pem"), key_pem.into_bytes());
        Ok(cert.der().to_vec())
    }

    fn fixtures(&mut self, jp: &Generated) -> Result<(), DevPkiError> {
        let n = jp.spec.number;
        let bank = |label: &str, cn: &str, index: u8| LeafSpec {
            label: format!("fixtures/{label}"),
            common_name: cn.to_owned(),
            organization: "Kakehashi Fixture Bank JP (fictitious)".to_owned(),
            serial: serial(n, 0x40, index),
            ekus: &[EKU_PAYMENT_SIGNING],
            policy: Some(policy_oid(n, AssuranceLevel::High)),
            not_before: LEAF_NOT_BEFORE,
            not_after: LEAF_NOT_AFTER,
            alt_names: Vec::new(),
            key: LeafKey::Ed25519,
        };

        let mut expired = bank("expired", "KKHEJPJ0 expired", 1);
        expired.not_before = EXPIRED_NOT_BEFORE;
        expired.not_after = EXPIRED_NOT_AFTER;
        self.leaf(&jp.issuing, &expired, "fixtures/expired/chain")?;

        let mut future = bank("not-yet-valid", "KKHFJPJ0 not yet valid", 2);
        future.not_before = FUTURE_NOT_BEFORE;
        future.not_after = FUTURE_NOT_AFTER;
        self.leaf(&jp.issuing, &future, "fixtures/not-yet-valid/chain")?;

        let mut wrong = bank("wrong-purpose", "KKHWJPJ0 TLS client only", 3);
        wrong.ekus = &[EKU_CLIENT_AUTH];
        self.leaf(&jp.issuing, &wrong, "fixtures/wrong-purpose/chain")?;

        let mut low = bank("policy-below-level", "KKHDJPJ0 low assurance", 4);
        low.organization = "Kakehashi Delta Bank JP (fictitious)".to_owned();
        low.policy = Some(policy_oid(n, AssuranceLevel::Low));
        self.leaf(&jp.issuing, &low, "fixtures/policy-below-level/chain")?;

        // The revoked fixture is the revoked JP bank's own chain, copied for convenience.
        let revoked_bank = JP.banks.iter().find(|b| b.revoked).map(|b| b.bic);
        if let Some(bic) = revoked_bank {
            for (from, to) in [
                (format!("jp/banks/{bic}.pem"), "fixtures/revoked/chain.pem"),
                (
                    format!("jp/banks/{bic}.key.pem"),
                    "fixtures/revoked/chain.key.pem",
                ),
            ] {
                if let Some(bytes) = self.files.get(Path::new(&from)).cloned() {
                    self.put(to, bytes);
                }
            }
        }

        // Broken signature: a valid leaf whose last signature byte is flipped. An Ed25519
        // signature is the last 64 bytes of the DER (RFC 8410 §6), so the flip stays inside it.
        let good = bank("broken-signature", "KKHXJPJ0 broken signature", 5);
        let der = self.leaf(&jp.issuing, &good, "fixtures/broken-signature/chain")?;
        let mut broken = der;
        if let Some(last) = broken.last_mut() {
            *last ^= 0x01;
        }
        let mut chain = pem_encode("CERTIFICATE", &broken);
        chain.push_str(&jp.issuing.pem);
        self.put("fixtures/broken-signature/chain.pem", chain.into_bytes());

        // Path length: the JP issuing CA (pathLenConstraint 0) issues a sub-CA, which issues a
        // leaf. RFC 5280 §6.1.4(l) rejects the sub-CA.
        let (sub_key, sub_key_pem) = self.key("fixtures/path-length/sub-ca")?;
        let mut sub_params = ca_params(
            "JP",
            "Kakehashi Development PKI JP (NOT FOR PRODUCTION)",
            "Kakehashi JP Rogue Sub CA",
            serial(n, 0x50, 1),
            0,
        );
        sub_params.not_before = LEAF_NOT_BEFORE;
        sub_params.not_after = LEAF_NOT_AFTER;
        sub_params.use_authority_key_identifier_extension = true;
        let all_levels: Vec<String> = AssuranceLevel::ALL
            .iter()
            .map(|l| policy_oid(n, *l))
            .collect();
        sub_params
            .custom_extensions
            .push(policies_extension(&all_levels)?);
        let sub_cert = sub_params
            .signed_by(
                &sub_key,
                &Issuer::from_params(&jp.issuing.params, &jp.issuing.key),
            )
            .map_err(|cause| DevPkiError::Generate {
                what: "path-length sub-CA".into(),
                cause,
            })?;
        let sub = Ca {
            pem: sub_cert.pem(),
            params: sub_params,
            key: sub_key,
        };
        self.put(
            "fixtures/path-length/sub-ca.key.pem",
            sub_key_pem.into_bytes(),
        );
        let deep = bank("path-length", "KKHPJPJ0 under a sub-CA", 6);
        self.leaf(&sub, &deep, "fixtures/path-length/leaf")?;
        let leaf_chain = self
            .files
            .remove(Path::new("fixtures/path-length/leaf.pem"))
            .unwrap_or_default();
        let leaf_key = self
            .files
            .remove(Path::new("fixtures/path-length/leaf.key.pem"))
            .unwrap_or_default();
        let mut chain = leaf_chain;
        chain.extend_from_slice(jp.issuing.pem.as_bytes());
        self.put("fixtures/path-length/chain.pem", chain);
        self.put("fixtures/path-length/chain.key.pem", leaf_key);

        // A third jurisdiction's bank: TH is a party, but nobody recognizes it yet.
        let th_bank = &TH.banks[0];
        for suffix in ["pem", "key.pem"] {
            let from = format!("th/banks/{}.{suffix}", th_bank.bic);
            if let Some(bytes) = self.files.get(Path::new(&from)).cloned() {
                self.put(
                    &format!("fixtures/unrecognized-jurisdiction/chain.{suffix}"),
                    bytes,
                );
            }
        }

        // An unlisted PKI: move XX's files under the fixture, keeping its root for inspection.
        let xx_files: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| p.starts_with("xx"))
            .cloned()
            .collect();
        for path in xx_files {
            if let Some(bytes) = self.files.remove(&path) {
                let relative = path.strip_prefix("xx").unwrap_or(&path);
                let target = Path::new("fixtures/unknown-root/pki").join(relative);
                self.files.insert(target, bytes);
            }
        }
        let xx_bank = &XX.banks[0];
        for suffix in ["pem", "key.pem"] {
            let from = format!("fixtures/unknown-root/pki/banks/{}.{suffix}", xx_bank.bic);
            if let Some(bytes) = self.files.get(Path::new(&from)).cloned() {
                self.put(&format!("fixtures/unknown-root/chain.{suffix}"), bytes);
            }
        }

        for fixture in FIXTURES {
            if let Some(dir) = fixture.chain.strip_suffix("/chain.pem") {
                let line = format!(
                    "# {}\n\nVerified by {} for {} at {VALIDATION_TIME}: **{}** ({}) — {}.\n",
                    fixture.name,
                    fixture.relying,
                    fixture.purpose,
                    fixture.expected.verdict(),
                    fixture.rule(),
                    fixture.why
                );
                self.put(&format!("{dir}/README.md"), line.into_bytes());
            }
        }
        Ok(())
    }

    fn mra(&mut self, parties: &[&Generated]) -> Result<(), DevPkiError> {
        let mut text = String::new();
        text.push_str(MRA_HEADER);
        let _ = writeln!(text, "version = 1");
        let _ = writeln!(text, "agreement_id = \"kakehashi-dev-jp-sg-th-2026\"");
        let _ = writeln!(
            text,
            "title = \"Development mutual-recognition agreement: Japan, Singapore, Thailand\""
        );
        let _ = writeln!(text, "not_before = \"{MRA_NOT_BEFORE}\"");
        let _ = writeln!(text, "not_after = \"{MRA_NOT_AFTER}\"");
        for party in parties {
            let spec = party.spec;
            let dir = spec.code.to_ascii_lowercase();
            let _ = writeln!(text, "\n[[jurisdiction]]");
            let _ = writeln!(text, "code = \"{}\"", spec.code);
            let _ = writeln!(text, "name = \"{}\"", spec.name);
            let _ = writeln!(text, "currency = \"{}\"", spec.currency);
            let _ = writeln!(
                text,
                "authority_key = \"{}\"",
                hex::encode(party.authority.verifying_key().as_bytes())
            );
            let _ = writeln!(text, "anchors = [\"{dir}/root.pem\"]");
            let _ = writeln!(text, "crls = [\"{dir}/crl.pem\", \"{dir}/root-crl.pem\"]");
            let _ = writeln!(text, "[jurisdiction.policies]");
            for level in AssuranceLevel::ALL {
                let _ = writeln!(
                    text,
                    "\"{}\" = \"{}\"",
                    policy_oid(spec.number, level),
                    level
                );
            }
        }
        let rows: [(&str, &str, &[Purpose]); 4] = [
            ("SG", "JP", &Purpose::ALL),
            ("JP", "SG", &Purpose::ALL),
            (
                "TH",
                "JP",
                &[Purpose::PaymentSigning, Purpose::ReceiptSigning],
            ),
            (
                "TH",
                "SG",
                &[Purpose::PaymentSigning, Purpose::ReceiptSigning],
            ),
        ];
        for (relying, issuing, purposes) in rows {
            let _ = writeln!(text, "\n[[recognition]]");
            let _ = writeln!(text, "id = \"{relying}-recognizes-{issuing}\"");
            let _ = writeln!(text, "relying = \"{relying}\"");
            let _ = writeln!(text, "issuing = \"{issuing}\"");
            let names: Vec<String> = purposes.iter().map(|p| format!("\"{p}\"")).collect();
            let _ = writeln!(text, "purposes = [{}]", names.join(", "));
            let _ = writeln!(text, "minimum_level = \"substantial\"");
            let _ = writeln!(text, "not_before = \"{ROW_NOT_BEFORE}\"");
            let _ = writeln!(text, "not_after = \"{ROW_NOT_AFTER}\"");
        }

        let files = &self.files;
        let mut read = |reference: &str| -> Result<Vec<u8>, MraError> {
            files
                .get(Path::new(reference))
                .cloned()
                .ok_or_else(|| MraError::Read {
                    path: PathBuf::from(reference),
                    cause: std::io::Error::from(std::io::ErrorKind::NotFound),
                })
        };
        let mut mra = Mra::parse_with(&text, Path::new("mra.toml"), &mut read)?;
        for party in parties {
            mra.sign(party.spec.code, &party.authority)?;
        }
        mra.verify_signatures()?;
        let signed = mra.with_signatures(&text)?;
        self.put("mra.toml", signed.into_bytes());
        Ok(())
    }
}

const MRA_HEADER: &str = "\
# kakehashi development mutual-recognition agreement (MRA).
# Generated by `kakehashi pki init`; DEVELOPMENT ONLY, the authority keys are in mra-keys/.
# Anchor and CRL paths are relative to this file. The signatures cover the canonical bytes
# described in README.md (not this text), so comments and layout may change freely; any change
# of meaning needs every party to sign again (`kakehashi mra sign`).
# Rule not written as a row: every jurisdiction recognizes its own PKI (MRA §self-recognition).

";

/// A serial number: the ISO numeric jurisdiction code, a kind byte (0x01 root, 0x02 issuing
/// CA, 0x10 bank, 0x20 node TLS, 0x30 receipt, 0x40 fixture, 0x50 fixture sub-CA) and an
/// index. Positive and unique within each issuer, as RFC 5280 §4.1.2.2 requires.
fn serial(number: u32, kind: u8, index: u8) -> u64 {
    (u64::from(number) << 16) | (u64::from(kind) << 8) | u64::from(index)
}

fn serial_number(value: u64) -> SerialNumber {
    let bytes = value.to_be_bytes();
    let first = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len() - 1);
    SerialNumber::from_slice(&bytes[first..])
}

fn name(country: &str, organization: &str, common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, country);
    dn.push(DnType::OrganizationName, organization);
    dn.push(DnType::CommonName, common_name);
    dn
}

fn ca_params(
    country: &str,
    organization: &str,
    common_name: &str,
    serial: u64,
    path_len: u8,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(country, organization, common_name);
    params.serial_number = Some(serial_number(serial));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.key_identifier_method = KeyIdMethod::Sha256;
    params
}

fn leaf_params(leaf: &LeafSpec<'_>) -> Result<CertificateParams, DevPkiError> {
    let country = leaf
        .label
        .split('/')
        .next()
        .filter(|d| d.len() == 2)
        .map(str::to_ascii_uppercase)
        .unwrap_or_else(|| "JP".to_owned());
    let mut params = CertificateParams::default();
    params.distinguished_name = name(&country, &leaf.organization, &leaf.common_name);
    params.serial_number = Some(serial_number(leaf.serial));
    params.not_before = leaf.not_before;
    params.not_after = leaf.not_after;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    params.subject_alt_names = leaf.alt_names.clone();
    let ekus: Vec<String> = leaf.ekus.iter().map(|s| (*s).to_owned()).collect();
    params.custom_extensions.push(eku_extension(&ekus)?);
    if let Some(policy) = &leaf.policy {
        params
            .custom_extensions
            .push(policies_extension(std::slice::from_ref(policy))?);
    }
    Ok(params)
}

/// A node TLS leaf: serverAuth and clientAuth (either end of mutual TLS), SAN DNS `localhost`
/// and `<code>-node.kakehashi.test` and IP `127.0.0.1` (nodes listen on loopback in
/// development), valid 2025-06-01 → 2035-06-01, with an ECDSA P-256 key ([`LeafKey`] says
/// why). `named` gives the names, `issuer` the substantial policy OID; they differ only for
/// the unknown-PKI impostor fixture.
fn node_tls(
    named: &JurisdictionSpec,
    issuer: &JurisdictionSpec,
    label: String,
    serial: u64,
) -> Result<LeafSpec<'static>, DevPkiError> {
    let node_name = format!("{}-node.kakehashi.test", named.code.to_ascii_lowercase());
    Ok(LeafSpec {
        label,
        common_name: node_name.clone(),
        organization: format!("Kakehashi {} Node (development)", named.code),
        serial,
        ekus: &[EKU_SERVER_AUTH, EKU_CLIENT_AUTH],
        policy: Some(policy_oid(issuer.number, AssuranceLevel::Substantial)),
        not_before: LEAF_NOT_BEFORE,
        not_after: LEAF_NOT_AFTER,
        alt_names: vec![
            dns("localhost")?,
            dns(&node_name)?,
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        ],
        key: LeafKey::EcdsaP256,
    })
}

fn dns(name: &str) -> Result<SanType, DevPkiError> {
    let ia5 = rcgen::string::Ia5String::try_from(name.to_owned()).map_err(|cause| {
        DevPkiError::Generate {
            what: format!("DNS name {name}"),
            cause,
        }
    })?;
    Ok(SanType::DnsName(ia5))
}

/// extKeyUsage written by hand: kakehashi's EKUs sit under a 128-bit UUID arc, which rcgen's
/// `u64` OID components cannot hold.
fn eku_extension(oids: &[String]) -> Result<CustomExtension, DevPkiError> {
    let mut body = Vec::new();
    for oid in oids {
        body.extend(der_tlv(0x06, &oid_content(oid)?));
    }
    Ok(CustomExtension::from_oid_content(
        OID_EXT_KEY_USAGE,
        der_tlv(0x30, &body),
    ))
}

/// certificatePolicies (RFC 5280 §4.2.1.4): a SEQUENCE of PolicyInformation, each holding
/// only its policyIdentifier. Non-critical, as the RFC recommends for interoperability.
fn policies_extension(oids: &[String]) -> Result<CustomExtension, DevPkiError> {
    let mut body = Vec::new();
    for oid in oids {
        body.extend(der_tlv(0x30, &der_tlv(0x06, &oid_content(oid)?)));
    }
    Ok(CustomExtension::from_oid_content(
        OID_CERTIFICATE_POLICIES,
        der_tlv(0x30, &body),
    ))
}

/// The content octets of an OBJECT IDENTIFIER (X.690 §8.19): the first two arcs combined as
/// 40·a + b, then base-128 with continuation bits. Arcs up to 128 bits (UUID arcs) fit.
fn oid_content(dotted: &str) -> Result<Vec<u8>, DevPkiError> {
    let bad = || DevPkiError::Key {
        what: dotted.to_owned(),
        reason: "not a dotted object identifier".into(),
    };
    let arcs: Vec<u128> = dotted
        .split('.')
        .map(|a| a.parse::<u128>().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let [first, second, rest @ ..] = arcs.as_slice() else {
        return Err(bad());
    };
    if *first > 2 || (*first < 2 && *second >= 40) {
        return Err(bad());
    }
    let head = first
        .checked_mul(40)
        .and_then(|v| v.checked_add(*second))
        .ok_or_else(bad)?;
    let mut out = Vec::new();
    for arc in std::iter::once(head).chain(rest.iter().copied()) {
        let mut groups = vec![(arc & 0x7f) as u8];
        let mut value = arc >> 7;
        while value > 0 {
            groups.push(((value & 0x7f) as u8) | 0x80);
            value >>= 7;
        }
        out.extend(groups.iter().rev());
    }
    Ok(out)
}

/// A DER tag-length-value with a definite length (X.690 §8.1.3).
fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let first = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len() - 1);
        out.push(0x80 | (bytes.len() - first) as u8);
        out.extend_from_slice(&bytes[first..]);
    }
    out.extend_from_slice(content);
    out
}

fn crl_for(ca: &Ca, revoked: &[u64], what: &str) -> Result<String, DevPkiError> {
    let params = CertificateRevocationListParams {
        this_update: CRL_THIS_UPDATE,
        next_update: CRL_NEXT_UPDATE,
        crl_number: SerialNumber::from_slice(&[1]),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|s| RevokedCertParams {
                serial_number: serial_number(*s),
                revocation_time: REVOCATION_TIME,
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params
        .signed_by(&Issuer::from_params(&ca.params, &ca.key))
        .map_err(|cause| DevPkiError::Generate {
            what: what.to_owned(),
            cause,
        })?;
    crl.pem().map_err(|cause| DevPkiError::Generate {
        what: what.to_owned(),
        cause,
    })
}

/// The Ed25519 private key as PKCS#8 version 1 (RFC 8410 §7: PrivateKeyInfo with the 32-byte
/// seed as CurvePrivateKey, no public key). Version 2 with the public key attached is also
/// valid (RFC 5958), but OpenSSL 3.0 refuses it, and auditors reach for openssl first.
fn pkcs8_v1_pem(key: &DalekSigningKey) -> String {
    // id-Ed25519 (RFC 8410 §3): 1.3.101.112.
    const ID_ED25519: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
    let mut body = der_tlv(0x02, &[0x00]);
    body.extend(der_tlv(0x30, ID_ED25519));
    body.extend(der_tlv(0x04, &der_tlv(0x04, key.as_bytes())));
    pem_encode("PRIVATE KEY", &der_tlv(0x30, &body))
}

/// Domain separation for P-256 key derivation, distinct from the Ed25519 label so that a node
/// TLS scalar never equals an Ed25519 seed derived for the same name.
const P256_KEY_DERIVATION_LABEL: &[u8] = b"kakehashi-devpki-v1-p256";

/// Candidates tried before giving up on a P-256 scalar. A SHA-256 output is outside [1, n)
/// with probability about 2^-32 (n is just under 2^256), so the second candidate is already
/// astronomically unlikely to be needed; the bound only keeps the loop finite.
const P256_SCALAR_CANDIDATES: u8 = 16;

/// Length of a P-256 private scalar and of each affine coordinate (SEC 1 §2.3.5, §2.3.3).
const P256_LEN: usize = 32;

/// Derives the P-256 private scalar called `name` from `seed`: the first SHA-256 of
/// `label || 0 || seed || 0 || name || 0 || i` (i = 0, 1, …) that lies in [1, n), the
/// "testing candidates" method of FIPS 186-5 §A.2.2, so the scalar is uniform and never reduced.
fn derive_p256_scalar(seed: &str, name: &str) -> Result<[u8; P256_LEN], DevPkiError> {
    for counter in 0..P256_SCALAR_CANDIDATES {
        let mut hasher = sha2::Sha256::new();
        hasher.update(P256_KEY_DERIVATION_LABEL);
        hasher.update([0]);
        hasher.update(seed.as_bytes());
        hasher.update([0]);
        hasher.update(name.as_bytes());
        hasher.update([0, counter]);
        let digest = hasher.finalize();
        let mut scalar = [0u8; P256_LEN];
        scalar.copy_from_slice(&digest);
        // `from_slice` refuses zero and values at or above the group order n.
        if ::p256::SecretKey::from_slice(&scalar).is_ok() {
            return Ok(scalar);
        }
    }
    Err(DevPkiError::Key {
        what: name.to_owned(),
        reason: format!("no valid P-256 scalar in {P256_SCALAR_CANDIDATES} candidates"),
    })
}

/// The P-256 private key as PKCS#8 (RFC 5208 §5) holding an ECPrivateKey (RFC 5915 §3) with
/// its public key, which ring (and so rustls and rcgen) requires and checks against the scalar.
/// The RustCrypto `p256` crate computes the public key; ring exposes no way to.
fn p256_pkcs8_pem(scalar: &[u8; P256_LEN], name: &str) -> Result<String, DevPkiError> {
    use ::p256::pkcs8::{EncodePrivateKey as _, LineEnding};
    let refuse = |reason: String| DevPkiError::Key {
        what: name.to_owned(),
        reason,
    };
    let key = ::p256::SecretKey::from_slice(scalar)
        .map_err(|_| refuse("the P-256 scalar is zero or not below the group order".into()))?;
    key.to_pkcs8_pem(LineEnding::LF)
        .map(|pem| pem.to_string())
        .map_err(|e| refuse(format!("encoding the P-256 key as PKCS#8: {e}")))
}

/// PEM with 64-character lines (RFC 7468 §2).
fn pem_encode(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// `YYYY-MM-DD` of a fixed date, for the README.
fn rfc3339_date(t: OffsetDateTime) -> String {
    format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day())
}

fn readme(seed: &str) -> String {
    let mut table = String::new();
    table.push_str("| fixture | chain | relying | purpose | verdict | rule | why |\n");
    table.push_str("|---|---|---|---|---|---|---|\n");
    for f in FIXTURES {
        let _ = writeln!(
            table,
            "| {} | `{}` | {} | {} | **{}** | {} | {} |",
            f.name,
            f.chain,
            f.relying,
            f.purpose,
            f.expected.verdict(),
            f.rule(),
            f.why
        );
    }
    let mut levels = String::new();
    for (spec, in_mra) in [(&JP, true), (&SG, true), (&TH, true), (&XX, false)] {
        for level in AssuranceLevel::ALL {
            let _ = writeln!(
                levels,
                "| {} | `{}` | {level} | {} |",
                spec.code,
                policy_oid(spec.number, level),
                if in_mra { "yes" } else { "no (unknown PKI)" }
            );
        }
    }
    README_TEMPLATE
        .replace("{SEED}", seed)
        .replace("{TIME}", VALIDATION_TIME)
        .replace("{TABLE}", &table)
        .replace("{LEVELS}", &levels)
        .replace("{ARC}", KAKEHASHI_ARC)
        .replace(
            "{NODE_EXPIRED}",
            &format!(
                "{} → {}",
                rfc3339_date(NODE_EXPIRED_NOT_BEFORE),
                rfc3339_date(NODE_EXPIRED_NOT_AFTER)
            ),
        )
        .replace(
            "{NODE_REVOKED}",
            &format!("{:#x}", serial(JP.number, 0x40, NODE_REVOKED_INDEX)),
        )
}

const README_TEMPLATE: &str = r#"# Development PKI and mutual-recognition agreement

> **DEVELOPMENT ONLY. EVERY PRIVATE KEY IN THIS DIRECTORY IS PUBLIC.**
> The `*.key.pem` files and `mra-keys/` are committed so that tests and demos work on a fresh
> clone. Anyone can sign as these CAs, banks, nodes and MRA authorities. Never trust these
> anchors or this agreement outside a development machine.

This directory is generated by `kakehashi pki init` (crates/pki/src/devpki.rs) and committed.
Regenerate it only on purpose:

```sh
cargo run -p kakehashi -- pki init --out certs --force                 # new random seed
cargo run -p kakehashi -- pki init --out certs --force --seed "$(cat certs/dev-seed.txt)"  # same bytes
```

Every key derives from the seed in `dev-seed.txt` (SHA-256 of `kakehashi-devpki-v1`, the seed
and the key's name), and all dates and serial numbers are fixed, so the same seed gives the same
files byte for byte (every certificate and CRL is signed by an Ed25519 CA, and Ed25519
signatures are deterministic). A test regenerates from the committed seed and compares.

## What is here

| path | what |
|---|---|
| `jp/`, `sg/`, `th/` | root CA (`root.pem`, pathLen 1, 2025-01-01 → 2045-01-01), issuing CA (`issuing.pem`, pathLen 0, → 2044-01-01), their keys, `crl.pem` (issuing CA's CRL: JP's and SG's revoke their third bank, JP's also the `node-revoked` fixture, TH's revokes nothing) and `root-crl.pem` (root's CRL, revokes nothing) |
| `jp/banks/`, `sg/banks/`, `th/banks/` | three banks each in JP and SG, one in TH: `<BIC>.pem` = payment-signing leaf + issuing CA, `<BIC>.key.pem` = its key. Leaves valid 2025-06-01 → 2035-06-01 |
| `jp/node/`, `sg/node/`, `th/node/` | `tls.pem` (serverAuth + clientAuth; SAN DNS `localhost`, `<jp|sg|th>-node.kakehashi.test`, IP `127.0.0.1`; substantial policy) and `receipt.pem` (receipt signing; high policy), chains (leaf + issuing CA) with keys `tls.key.pem`, `receipt.key.pem` |
| `th/` | Thailand: a party that recognizes JP and SG for payment and receipt signing but is not (yet) recognized by them; `th/node/tls.pem` is the node of a jurisdiction JP and SG do not recognize |
| `fixtures/<name>/` | negative fixtures: `chain.pem` (leaf first, then its issuing CA), `chain.key.pem` (the leaf's key) and a one-line README |
| `fixtures/unknown-root/pki/` | the XX PKI that no party lists: root, issuing CA, CRLs, one bank; it also issued `fixtures/node-unknown-pki` |
| `mra.toml` | the agreement, signed by JP, SG and TH |
| `mra-keys/` | the MRA authorities' Ed25519 signing keys (PKCS#8) |
| `dev-seed.txt` | the seed the keys derive from |

All keys are Ed25519 (PKCS#8 PEM) except the node TLS keys (`jp/node/tls.key.pem`,
`sg/node/tls.key.pem`, `th/node/tls.key.pem` and the `fixtures/node-*` keys), which are ECDSA
P-256 (PKCS#8 PEM holding an RFC 5915 ECPrivateKey with its public key), still issued by the
Ed25519 issuing CAs. The reason is interoperability: gRPC clients built on gRPC core and
BoringSSL (Python grpcio, Ruby, PHP, C#, C++) do not offer Ed25519 among their TLS signature
algorithms, so a handshake with an Ed25519 node certificate fails with no signature scheme in
common. P-256 with SHA-256 is offered by every TLS 1.2 and 1.3 stack. The P-256 scalar is the
first SHA-256 of `kakehashi-devpki-v1-p256`, the seed, the key's name and a counter that lies in
[1, n), so these keys are as reproducible as the Ed25519 ones; ECDSA signatures made with them
(in handshakes) are randomized, but none is stored here.

Leaves carry keyUsage digitalSignature, basicConstraints
CA:FALSE, an authority key identifier, an extendedKeyUsage for their purpose and one
certificatePolicies OID standing for their assurance level.

The banks are fictitious. Their BICs end in `0` in the eighth position, which SWIFT reserves for
test-and-training codes, so none is a live bank:

| jurisdiction | BIC | name | policy level | status |
|---|---|---|---|---|
| JP | KKHAJPJ0 | Kakehashi Alpha Bank JP | high | valid |
| JP | KKHBJPJ0 | Kakehashi Beta Bank JP | substantial | valid |
| JP | KKHCJPJ0 | Kakehashi Gamma Bank JP | substantial | revoked |
| SG | KKHASGS0 | Kakehashi Alpha Bank SG | high | valid |
| SG | KKHBSGS0 | Kakehashi Beta Bank SG | substantial | valid |
| SG | KKHCSGS0 | Kakehashi Gamma Bank SG | substantial | revoked |
| TH | KKHATHB0 | Kakehashi Alpha Bank TH | high | valid (not recognized by JP/SG) |

Node TLS certificates carry the substantial policy; receipt-signing certificates high.

## Assurance levels

Each jurisdiction issues under its own policy OIDs, `{ARC}.2.<ISO 3166 numeric>.<n>`
(kakehashi's private arc, then 2 for policies); the agreement maps each OID to a common level:

| jurisdiction | policy OID | level | in the MRA |
|---|---|---|---|
{LEVELS}
## Fixture table

Each chain verified at **{TIME}** with `certs/mra.toml`:

```sh
kakehashi cert verify certs/<chain> --mra certs/mra.toml --relying <relying> --purpose <purpose> --at {TIME}
```

Exit code 0 for recognized, 1 for not recognized.

{TABLE}
`crates/pki/tests/mra.rs` checks every row against the verifier. When `openssl` is installed
it also checks that `openssl verify -attime … -crl_check_all` accepts exactly the chains whose
only fault (if any) is an MRA rule or the private payment-signing EKU, which openssl does not
know: the recognized ones, `wrong-purpose`, `unrecognized-jurisdiction` (against the TH root)
and `policy-below-level`; it rejects the rest for the same reason as the verifier.

## Node TLS fixtures

For the relay's mutual-TLS tests (`node-tls` purpose, `pki::tls::{NodeServerCertVerifier,
NodeClientCertVerifier}`). Each `fixtures/node-*/` certificate is exactly like `jp/node/tls.pem`
(serverAuth + clientAuth, SAN DNS `localhost` and `jp-node.kakehashi.test`, IP `127.0.0.1`, JP's
substantial policy, subject `C=JP, O=Kakehashi JP Node (development)`) except for one defect,
and its common name says which. Present `chain.pem` with `chain.key.pem`. Nodes validate at the
real clock; every defect holds at any time from 2026-02-01 until the leaves end (2035-06-01).

| peer certificate | the one defect | a JP or SG node refuses it with (rustls `CertificateError`) |
|---|---|---|
| `fixtures/node-expired/chain.pem` | valid {NODE_EXPIRED} only | `ExpiredContext` (RFC 5280 §6.1.3(a)(2)) |
| `fixtures/node-revoked/chain.pem` | serial `{NODE_REVOKED}` is in `jp/crl.pem` (keyCompromise) | `Revoked` (RFC 5280 §6.3) |
| `fixtures/node-unknown-pki/chain.pem` | issued by the XX issuing CA, whose root is no party's anchor | `UnknownIssuer` (RFC 5280 §6.1) |
| `th/node/tls.pem` | a valid TH node, but no row says JP or SG recognizes TH | `Other`, explained as an MRA §recognition refusal |

The committed agreement has no row in which TH relies on anyone for `node-tls`, nor one in which
anyone recognizes TH: a test that runs a TH node extends its own copy of the agreement with those
rows (signed by the keys in `mra-keys/`) at test time. `crates/pki/tests/tls.rs` runs each row in
a real handshake on 127.0.0.1, in both directions.

## The agreement (`mra.toml`)

Jurisdictions list their anchors and CRLs (paths relative to the file, or inline PEM), their
policy OID → level map and their authority's Ed25519 public key. Rows say who recognizes whom,
for which purposes, from when to when and at which minimum level. Rules:

- **MRA §self-recognition**: a jurisdiction always recognizes chains to its own anchors, for
  every purpose and at any time, if the leaf's policy is in its own map (any level).
- **MRA §validity**: cross-border recognition needs the agreement in force.
- **MRA §recognition.<id>**: Y recognizes a chain that validates (RFC 5280 §6, with the
  purpose's EKU, and revocation checked against X's CRLs in the agreement plus any supplied,
  required on every certificate when X lists CRLs) to an anchor of X when row `<id>` says
  Y recognizes X for the purpose at that time (window bounds inclusive), and
- **MRA §level**: the highest level X's map assigns to the user-constrained policy set
  (RFC 5280 §6.1.6; anyPolicy carries no level) reaches the row's `minimum_level`.
- **MRA §anchors**: the chain is tried against every party's anchors, the relying party's own
  first; when none recognizes it, the verdict reports the most specific failure (a validated
  path refused by an MRA rule outranks any path-validation error).
- **MRA §signatures**: every party signs; a verifier refuses an agreement with a missing or bad
  signature unless told to allow it (`--allow-unsigned`, for experiments).

### Canonical bytes (what is signed)

`kakehashi-mra-v1\n` followed by compact JSON of the parsed agreement:

- object keys in ascending byte order, no insignificant whitespace, serde_json string escaping;
- top level: `agreement_id`, `jurisdictions`, `not_after`, `not_before`, `recognition`,
  `title` (omitted when absent), `version`;
- times normalized to RFC 3339 UTC with `Z` and whole seconds;
- `jurisdictions` sorted by `code`, each with `anchors_sha256` (lowercase hex SHA-256 of each
  anchor's DER, sorted), `authority_key` (hex), `code`, `currency`, `name`, `policies`
  (OID → level, sorted by OID);
- `recognition` sorted by `id`, each with `id`, `issuing`, `minimum_level`, `not_after`,
  `not_before`, `purposes` (sorted), `relying`;
- not covered: anchor file paths, CRLs (they are signed by their issuers and change more often)
  and the signatures.

Each party signs these bytes with pure Ed25519 (RFC 8032); signatures are base64 in
`[[signature]]` tables at the end of the file. Reformatting the TOML or moving anchor files
keeps the signatures valid; changing any covered value, or an anchor's content, breaks them.
`kakehashi mra canonical --mra certs/mra.toml` prints the canonical bytes, so a signature can be
checked with any Ed25519 implementation, for example OpenSSL 3:

```sh
kakehashi mra canonical --mra certs/mra.toml > canonical.bin
grep -A1 'jurisdiction = "JP"' certs/mra.toml | sed -n 's/^ed25519 = "\(.*\)"/\1/p' | base64 -d > jp.sig
openssl pkey -in certs/mra-keys/jp.key.pem -pubout -out jp.pub
openssl pkeyutl -verify -pubin -inkey jp.pub -rawin -in canonical.bin -sigfile jp.sig
```

```sh
kakehashi mra verify --mra certs/mra.toml            # exit 0 all parties signed and valid, 1 otherwise, 2 bad input
kakehashi mra sign --mra certs/mra.toml --jurisdiction JP --key certs/mra-keys/jp.key.pem
```

Seed of this generation: `{SEED}`
"#;

#[cfg(test)]
mod tests;
