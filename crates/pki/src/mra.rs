//! The mutual-recognition agreement (MRA): its TOML schema, its canonical bytes, the detached
//! Ed25519 signatures of every party's authority, and recognition of a certificate chain.
//!
//! # Schema (`certs/mra.toml`)
//!
//! ```toml
//! version = 1
//! agreement_id = "kakehashi-jp-sg-2026"
//! title = "optional free text"
//! not_before = "2026-01-01T00:00:00Z"      # RFC 3339
//! not_after = "2046-01-01T00:00:00Z"
//!
//! [[jurisdiction]]
//! code = "JP"                              # ISO 3166-1 alpha-2, upper case
//! name = "Japan"
//! currency = "JPY"                         # ISO 4217 alphabetic code
//! authority_key = "<64 hex digits>"        # the authority's Ed25519 public key
//! anchors = ["jp/root.pem"]                # relative to the MRA file, or inline PEM
//! crls = ["jp/crl.pem", "jp/root-crl.pem"] # relative to the MRA file, or inline PEM
//! [jurisdiction.policies]                  # certificate policy OID -> assurance level
//! "2.25.….2.392.3" = "high"
//!
//! [[recognition]]
//! id = "SG-recognizes-JP"                  # the clause cited in verdicts
//! relying = "SG"
//! issuing = "JP"
//! purposes = ["payment-signing", "node-tls", "receipt-signing"]
//! minimum_level = "substantial"
//! not_before = "2026-01-01T00:00:00Z"
//! not_after = "2036-01-01T00:00:00Z"
//!
//! [[signature]]                            # last in the file, one per jurisdiction
//! jurisdiction = "JP"
//! ed25519 = "<base64 of the 64-byte signature>"
//! ```
//!
//! # Canonical bytes
//!
//! Signatures cover [`Mra::canonical_bytes`]: the ASCII string `kakehashi-mra-v1\n` followed by
//! compact JSON (no insignificant whitespace, serde_json string escaping) of the parsed
//! agreement with object keys in ascending byte order; times are normalized to RFC 3339 UTC
//! (`Z`, whole seconds); jurisdictions are sorted by code, recognition rows by id, purposes by
//! name; each anchor appears as the lowercase hex SHA-256 of its DER, sorted; the policy map is
//! sorted by OID string. Anchor file paths, CRLs and the signatures themselves are not covered:
//! moving an anchor file keeps the signatures valid, replacing its content breaks them, and
//! CRLs authenticate themselves (their issuer signs them) and change more often than the
//! agreement. Because the bytes derive from the parsed agreement, reformatting the TOML or
//! reordering tables does not break signatures.
//!
//! # Recognition rules
//!
//! - **MRA §self-recognition**: a jurisdiction always recognizes chains that validate to its
//!   own anchors, for every purpose and at any time, provided the leaf carries a policy that its
//!   own policy map assigns a level (any level).
//! - **MRA §validity**: cross-border recognition needs the agreement in force at the time.
//! - **`MRA §recognition.<id>`**: relying jurisdiction Y recognizes a chain that validates to an
//!   anchor of jurisdiction X when row `<id>` says Y recognizes X for the purpose, the time
//!   falls inside the row's window, and **MRA §level**: the highest assurance level that X's
//!   policy map assigns to the user-constrained policy set (RFC 5280 §6.1.6; anyPolicy carries
//!   no level) reaches the row's `minimum_level`. Window bounds are inclusive.
//! - **MRA §anchors**: "validates" means RFC 5280 §6 path validation to one of X's anchors
//!   with the purpose's extended key usages, and revocation checked against X's CRLs in the
//!   agreement plus any the caller supplies — required for every certificate below the anchor
//!   when CRLs are available. Every party's anchors are tried, the relying party's own first;
//!   when none recognizes the chain, the verdict reports the most specific failure.
//! - **MRA §parties**: only a party to the agreement can rely on it.
//! - **MRA §signatures**: recognition fails closed while a party's signature is missing or
//!   invalid, unless the caller explicitly allowed an unsigned agreement for experiments,
//!   through [`crate::danger::allow_unsigned_agreement`].
//!
//! # Layout
//!
//! This module holds [`Mra`], its errors and bounds, and loading. `schema` turns the TOML
//! into checked jurisdictions and rows, `canonical` forms the canonical bytes and signs and
//! verifies them, and `recognize` applies the rules above and builds the verdict.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::crl::CrlSet;
use crate::time::UnixTime;

mod canonical;
mod recognize;
mod schema;

pub use self::recognize::{Reason, RecognitionVerdict};
pub use self::schema::{AssuranceLevel, Jurisdiction, RecognitionRow};

/// The domain-separation prefix of the canonical bytes; `v1` changes if their definition does.
pub const CANONICAL_PREFIX: &[u8] = b"kakehashi-mra-v1\n";

/// The only schema version this code reads.
pub const MRA_VERSION: u32 = 1;

/// Largest MRA file read, in bytes: a real agreement is a few kilobytes; the bound keeps a
/// mistaken path (a disk image, /dev/zero) from exhausting memory.
pub const MRA_FILE_SIZE_MAX: u64 = 1 << 20;

/// Largest anchor or CRL file read, in bytes: CRLs of a national PKI can reach megabytes.
pub const REFERENCED_FILE_SIZE_MAX: u64 = 64 << 20;

/// Most jurisdictions in one agreement: ASEAN has ten members; the bound leaves room.
pub const JURISDICTIONS_MAX: usize = 64;

/// Most trust anchors per jurisdiction: a root plus a few rollover successors.
pub const ANCHORS_PER_JURISDICTION_MAX: usize = 16;

/// Most CRLs per jurisdiction: one per CA, a handful of CAs.
pub const CRLS_PER_JURISDICTION_MAX: usize = 64;

/// Most recognition rows: every ordered pair of 64 jurisdictions would need 4,032; rows are
/// usually per pair, so a quarter of that is ample.
pub const RECOGNITION_ROWS_MAX: usize = 1024;

/// Most policy OIDs per jurisdiction: one per assurance level and a few legacy ones.
pub const POLICIES_PER_JURISDICTION_MAX: usize = 64;

/// Longest free-text field (ids, names, titles), in bytes, to keep verdicts readable.
pub const TEXT_LEN_MAX: usize = 256;

/// Longest dotted OID accepted in a policy map; DER OIDs beyond this are not seen in practice.
pub const OID_TEXT_LEN_MAX: usize = 200;

/// Why an agreement could not be read, signed or trusted.
#[derive(Debug, thiserror::Error)]
pub enum MraError {
    /// The file (the agreement or one it references) could not be read.
    #[error("cannot read {}: {cause}", path.display())]
    Read {
        /// The file that failed.
        path: PathBuf,
        /// The operating-system error.
        cause: std::io::Error,
    },
    /// A file is larger than the bound for its kind.
    #[error("{} is {size} bytes, more than the {size_max}-byte limit", path.display())]
    TooLarge {
        /// The file that is too large.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The bound.
        size_max: u64,
    },
    /// The agreement is not valid TOML or does not match the schema.
    #[error("{}: {reason}", path.display())]
    Syntax {
        /// The agreement file.
        path: PathBuf,
        /// The TOML parser's message, with line and column.
        reason: String,
    },
    /// A field has a value the schema does not allow.
    #[error("{}: field `{field}`: {reason}", path.display())]
    Field {
        /// The agreement file.
        path: PathBuf,
        /// The field, as a TOML path such as `jurisdiction[1].policies`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No jurisdiction in the agreement has this code.
    #[error("the agreement has no jurisdiction `{code}`")]
    UnknownJurisdiction {
        /// The code asked for.
        code: String,
    },
    /// The signing key is not the authority key the agreement lists for the jurisdiction.
    #[error("the key does not match the authority key of {jurisdiction} in the agreement")]
    WrongKey {
        /// The jurisdiction whose signature was attempted.
        jurisdiction: String,
    },
    /// One or more parties have not signed (MRA §signatures).
    #[error("the agreement is not signed by {}; every party must sign (MRA §signatures)", .missing.join(", "))]
    Unsigned {
        /// The codes of the parties without a signature.
        missing: Vec<String>,
    },
    /// A party's signature does not verify over the canonical bytes (MRA §signatures).
    #[error(
        "the signature of {jurisdiction} does not verify over the agreement's canonical bytes (MRA §signatures)"
    )]
    BadSignature {
        /// The party whose signature is invalid.
        jurisdiction: String,
    },
    /// The signatures could not be written back because the file's layout is not the one
    /// this tool writes (`[[signature]]` tables last).
    #[error("{}: {reason}", path.display())]
    Layout {
        /// The agreement file.
        path: PathBuf,
        /// What is in the way.
        reason: String,
    },
    /// Writing the agreement failed.
    #[error("cannot write {}: {cause}", path.display())]
    Write {
        /// The file that failed.
        path: PathBuf,
        /// The operating-system error.
        cause: std::io::Error,
    },
}

/// Whether one party's signature is present and verifies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureStatus {
    /// Present but does not verify over the canonical bytes.
    Invalid,
    /// Absent.
    Missing,
    /// Present and verifies.
    Valid,
}

impl SignatureStatus {
    /// The word used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invalid => "invalid",
            Self::Missing => "missing",
            Self::Valid => "valid",
        }
    }
}

/// A parsed and checked mutual-recognition agreement.
///
/// Its content is read-only outside this crate (accessors, no public fields): the signatures
/// are checked over the parsed agreement when it is loaded or signed, so an agreement whose
/// rows or anchors could be changed afterwards would be recognized on signatures that do not
/// cover it.
///
/// ```compile_fail,E0616
/// fn widen(mra: &mut kakehashi_pki::Mra) {
///     mra.rows.clear();
/// }
/// ```
#[derive(Clone, Debug)]
pub struct Mra {
    path: PathBuf,
    pub(crate) version: u32,
    pub(crate) agreement_id: String,
    pub(crate) title: Option<String>,
    pub(crate) not_before: UnixTime,
    pub(crate) not_after: UnixTime,
    pub(crate) jurisdictions: Vec<Jurisdiction>,
    pub(crate) rows: Vec<RecognitionRow>,
    signatures: BTreeMap<String, [u8; 64]>,
    canonical: Vec<u8>,
    /// Set only through [`crate::danger::allow_unsigned_agreement`].
    pub(crate) allow_unsigned: bool,
    /// Every party signed and every signature verified when last computed (load, sign).
    signatures_valid: bool,
    /// Each jurisdiction's CRLs, parsed once, in jurisdiction order.
    crl_sets: Vec<CrlSet>,
}

impl Mra {
    /// Reads and checks the agreement at `path`; anchor and CRL paths are relative to its
    /// directory. Signatures are parsed here and checked by [`Mra::verify_signatures`].
    pub fn load(path: &Path) -> Result<Self, MraError> {
        let text = read_bounded(path, MRA_FILE_SIZE_MAX)?;
        let text = String::from_utf8(text).map_err(|_| MraError::Syntax {
            path: path.to_owned(),
            reason: "the file is not UTF-8".into(),
        })?;
        let base = path.parent().map(Path::to_owned).unwrap_or_default();
        Self::parse_with(&text, path, &mut |reference: &str| {
            let file = base.join(reference);
            read_bounded(&file, REFERENCED_FILE_SIZE_MAX)
        })
    }

    /// Parses agreement `text`; `path` names it in errors, and `read` fetches the referenced
    /// anchor and CRL files (given the reference as written in the file).
    pub fn parse_with(
        text: &str,
        path: &Path,
        read: &mut dyn FnMut(&str) -> Result<Vec<u8>, MraError>,
    ) -> Result<Self, MraError> {
        let mut mra = schema::parse(text, path, read)?;
        mra.canonical = mra.compute_canonical_bytes()?;
        mra.signatures_valid = mra.verify_signatures().is_ok();
        let mut crl_sets = Vec::with_capacity(mra.jurisdictions.len());
        for (i, j) in mra.jurisdictions.iter().enumerate() {
            let mut set = CrlSet::new();
            for (k, der) in j.crls.iter().enumerate() {
                set.add_der(der).map_err(|e| MraError::Field {
                    path: path.to_owned(),
                    field: format!("jurisdiction[{i}].crls[{k}]"),
                    reason: format!("not a usable X.509 CRL: {e}"),
                })?;
            }
            crl_sets.push(set);
        }
        mra.crl_sets = crl_sets;
        Ok(mra)
    }

    /// Schema version (1).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The agreement's identifier.
    pub fn agreement_id(&self) -> &str {
        &self.agreement_id
    }

    /// Optional free-text title.
    pub fn title(&self) -> Option<&str> {
        self.title.as_deref()
    }

    /// Start of the agreement (inclusive).
    pub fn not_before(&self) -> UnixTime {
        self.not_before
    }

    /// End of the agreement (inclusive).
    pub fn not_after(&self) -> UnixTime {
        self.not_after
    }

    /// The parties, in file order.
    pub fn jurisdictions(&self) -> &[Jurisdiction] {
        &self.jurisdictions
    }

    /// The recognition clauses, in file order.
    pub fn rows(&self) -> &[RecognitionRow] {
        &self.rows
    }

    /// The file this agreement was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The jurisdiction with `code`.
    pub fn jurisdiction(&self, code: &str) -> Option<&Jurisdiction> {
        self.jurisdictions.iter().find(|j| j.code == code)
    }

    /// Whether every party's signature verified when last checked (load, sign); what
    /// [`Mra::recognize`] reports as its signature check.
    pub fn signatures_verified(&self) -> bool {
        self.signatures_valid
    }

    /// The bytes every party signs (see the module documentation).
    pub fn canonical_bytes(&self) -> &[u8] {
        &self.canonical
    }

    /// Whether recognition was allowed to proceed without every party's valid signature
    /// ([`crate::danger::allow_unsigned_agreement`]).
    pub fn unsigned_allowed(&self) -> bool {
        self.allow_unsigned
    }
}

fn read_bounded(path: &Path, size_max: u64) -> Result<Vec<u8>, MraError> {
    let metadata = std::fs::metadata(path).map_err(|cause| MraError::Read {
        path: path.to_owned(),
        cause,
    })?;
    if metadata.len() > size_max {
        return Err(MraError::TooLarge {
            path: path.to_owned(),
            size: metadata.len(),
            size_max,
        });
    }
    std::fs::read(path).map_err(|cause| MraError::Read {
        path: path.to_owned(),
        cause,
    })
}

#[cfg(test)]
mod tests;
