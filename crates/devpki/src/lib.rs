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

mod encode;
mod fixtures;
mod generator;
mod jurisdictions;
mod keys;
mod readme;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kakehashi_pki::mra::{AssuranceLevel, MraError};
use kakehashi_pki::purpose::KAKEHASHI_ARC;

pub use self::fixtures::{Expected, FIXTURES, Fixture};
use self::generator::Generator;
use self::jurisdictions::{JP, SG, TH, XX};
pub use self::keys::derive_key;
use self::readme::readme;

/// The validation time the fixture table is documented for, and that tests pin.
pub const VALIDATION_TIME: &str = "2027-01-01T00:00:00Z";

/// Bytes of randomness in a generated seed: 256 bits, the strength of an Ed25519 key.
const SEED_RANDOM_LEN: usize = 32;

/// Longest seed accepted on the command line; a seed is a name, not a document.
pub const SEED_LEN_MAX: usize = 256;

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

/// A second receipt-signing identity of jurisdiction `code` (`"JP"`, `"SG"` or `"TH"`) in the
/// development PKI of `seed`: a key derived from `seed` and `name`, certified by the
/// jurisdiction's issuing CA for receipt signing at the node's assurance level, so the
/// agreement recognizes it exactly as it recognizes the node's own. It is not the node's key:
/// tests sign with it what a node must refuse to take for its own (a quote another key of its
/// jurisdiction issued). Nothing is written; the committed files are unchanged. Returns the
/// key (PKCS#8 PEM) and its chain (PEM, leaf then issuing CA). `None` for another `code`.
pub fn other_receipt_signer(
    seed: &str,
    code: &str,
    name: &str,
) -> Result<Option<(String, String)>, DevPkiError> {
    if seed.is_empty() || seed.len() > SEED_LEN_MAX {
        return Err(DevPkiError::Seed);
    }
    let Some(spec) = [&JP, &SG, &TH].into_iter().find(|spec| spec.code == code) else {
        return Ok(None);
    };
    let mut generator = Generator {
        seed,
        files: BTreeMap::new(),
    };
    // The same seed gives the same issuing CA, byte for byte, as the committed one.
    let party = generator.jurisdiction(spec)?;
    let file = format!("{}/other-receipt/{name}", spec.code.to_ascii_lowercase());
    generator.other_receipt_leaf(&party, &file, name)?;
    let text = |suffix: &str| {
        generator
            .files
            .get(Path::new(&format!("{file}{suffix}")))
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
            .unwrap_or_default()
    };
    Ok(Some((text(".key.pem"), text(".pem"))))
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

#[cfg(test)]
mod tests;
