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
//!   invalid, unless the caller explicitly allowed an unsigned agreement for experiments.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::cert::Cert;
use crate::crl::{CrlSet, RevocationMode};
use crate::error::Error as PathFailure;
use crate::policy::ANY_POLICY;
use crate::purpose::Purpose;
use crate::time::UnixTime;
use crate::validate::{PathError, ValidatedPath, ValidationOptions, verify_chain};
use crate::verdict::{CertRef, Check, Outcome};

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

/// A common assurance level that each jurisdiction's policy OIDs map to. The names follow the
/// eIDAS regulation's levels of assurance (Regulation (EU) No 910/2014, Article 8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AssuranceLevel {
    /// Limited confidence in the claimed identity.
    Low,
    /// Substantial confidence.
    Substantial,
    /// High confidence.
    High,
}

impl AssuranceLevel {
    /// Every level, lowest first.
    pub const ALL: [Self; 3] = [Self::Low, Self::Substantial, Self::High];

    /// The name used in the MRA file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Substantial => "substantial",
            Self::High => "high",
        }
    }

    /// Parses the MRA-file name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == text)
    }

    /// The number used as the last arc of the development PKI's policy OIDs (1 = low).
    pub fn number(self) -> u8 {
        match self {
            Self::Low => 1,
            Self::Substantial => 2,
            Self::High => 3,
        }
    }
}

impl std::fmt::Display for AssuranceLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    #[error("{} is {size} bytes, more than the {max}-byte limit", path.display())]
    TooLarge {
        /// The file that is too large.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The bound.
        max: u64,
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

/// One party to the agreement.
#[derive(Clone, Debug)]
pub struct Jurisdiction {
    /// ISO 3166-1 alpha-2 code, upper case.
    pub code: String,
    /// Display name.
    pub name: String,
    /// ISO 4217 alphabetic currency code.
    pub currency: String,
    /// The authority's Ed25519 public key, which signs the agreement.
    pub authority_key: VerifyingKey,
    /// Trust anchors, DER.
    pub anchors: Vec<Vec<u8>>,
    /// The same anchors, parsed.
    anchor_certs: Vec<Cert>,
    /// CRLs of the jurisdiction's CAs, DER.
    pub crls: Vec<Vec<u8>>,
    /// Certificate policy OID (dotted) → assurance level.
    pub policies: BTreeMap<String, AssuranceLevel>,
}

impl Jurisdiction {
    /// The trust anchors, parsed.
    pub fn anchor_certs(&self) -> &[Cert] {
        &self.anchor_certs
    }

    /// The highest level this jurisdiction's map assigns to any of `policies`, with the OID
    /// that reached it; `None` when none is mapped.
    pub fn highest_level<'a>(
        &self,
        policies: impl IntoIterator<Item = &'a str>,
    ) -> Option<(AssuranceLevel, String)> {
        policies
            .into_iter()
            .filter_map(|oid| self.policies.get(oid).map(|l| (*l, oid.to_owned())))
            .max_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.cmp(&a.1)))
    }
}

/// One recognition clause: `relying` recognizes `issuing` for `purposes`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecognitionRow {
    /// The clause id cited in verdicts as `MRA §recognition.<id>`.
    pub id: String,
    /// The jurisdiction that relies on foreign certificates.
    pub relying: String,
    /// The jurisdiction whose PKI issued them.
    pub issuing: String,
    /// What they are recognized for.
    pub purposes: BTreeSet<Purpose>,
    /// The lowest assurance level accepted.
    pub minimum_level: AssuranceLevel,
    /// Start of the clause's window (inclusive).
    pub not_before: UnixTime,
    /// End of the clause's window (inclusive, as RFC 5280 §4.1.2.5 treats notAfter).
    pub not_after: UnixTime,
}

impl RecognitionRow {
    /// The clause citation, `MRA §recognition.<id>`.
    pub fn clause(&self) -> String {
        format!("MRA §recognition.{}", self.id)
    }
}

/// A parsed and checked mutual-recognition agreement.
#[derive(Clone, Debug)]
pub struct Mra {
    path: PathBuf,
    /// Schema version (1).
    pub version: u32,
    /// The agreement's identifier.
    pub agreement_id: String,
    /// Optional free-text title.
    pub title: Option<String>,
    /// Start of the agreement (inclusive).
    pub not_before: UnixTime,
    /// End of the agreement (inclusive).
    pub not_after: UnixTime,
    /// The parties, in file order.
    pub jurisdictions: Vec<Jurisdiction>,
    /// The recognition clauses, in file order.
    pub rows: Vec<RecognitionRow>,
    signatures: BTreeMap<String, [u8; 64]>,
    canonical: Vec<u8>,
    allow_unsigned: bool,
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
        let raw: RawMra = toml::from_str(text).map_err(|e| MraError::Syntax {
            path: path.to_owned(),
            reason: e.to_string().trim_end().to_owned(),
        })?;
        let mut mra = Checker { path, read }.check(raw)?;
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

    /// Checks that every party has signed and every signature verifies (RFC 8032 Ed25519,
    /// strict verification) over the canonical bytes. An invalid signature is reported before
    /// missing ones: it is a tampering sign, a missing one is unfinished business.
    pub fn verify_signatures(&self) -> Result<(), MraError> {
        let statuses = self.signature_statuses();
        if let Some((code, _)) = statuses
            .iter()
            .find(|(_, s)| *s == SignatureStatus::Invalid)
        {
            return Err(MraError::BadSignature {
                jurisdiction: code.clone(),
            });
        }
        let missing: Vec<String> = statuses
            .into_iter()
            .filter(|(_, s)| *s == SignatureStatus::Missing)
            .map(|(code, _)| code)
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(MraError::Unsigned { missing })
        }
    }

    /// Each party's signature status, in file order.
    pub fn signature_statuses(&self) -> Vec<(String, SignatureStatus)> {
        self.jurisdictions
            .iter()
            .map(|j| {
                let status = match self.signatures.get(&j.code) {
                    None => SignatureStatus::Missing,
                    Some(bytes) => {
                        let signature = ed25519_dalek::Signature::from_bytes(bytes);
                        match j.authority_key.verify_strict(&self.canonical, &signature) {
                            Ok(()) => SignatureStatus::Valid,
                            Err(_) => SignatureStatus::Invalid,
                        }
                    }
                };
                (j.code.clone(), status)
            })
            .collect()
    }

    /// The codes of the parties that have not signed, in file order.
    pub fn unsigned_parties(&self) -> Vec<String> {
        self.jurisdictions
            .iter()
            .filter(|j| !self.signatures.contains_key(&j.code))
            .map(|j| j.code.clone())
            .collect()
    }

    /// The codes of the parties that have signed, in code order.
    pub fn signed_parties(&self) -> Vec<String> {
        self.signatures.keys().cloned().collect()
    }

    /// Lets [`Mra::recognize`] proceed although signatures are missing or invalid: for
    /// experiments only. The verdict still records the signature check as failed.
    pub fn allow_unsigned(&mut self, allow: bool) {
        self.allow_unsigned = allow;
    }

    /// Whether [`Mra::allow_unsigned`] was set.
    pub fn unsigned_allowed(&self) -> bool {
        self.allow_unsigned
    }

    /// Signs the canonical bytes as `jurisdiction`'s authority, replacing an earlier
    /// signature of that party. The key must be the authority key the agreement lists.
    pub fn sign(&mut self, jurisdiction: &str, key: &SigningKey) -> Result<(), MraError> {
        let party =
            self.jurisdiction(jurisdiction)
                .ok_or_else(|| MraError::UnknownJurisdiction {
                    code: jurisdiction.to_owned(),
                })?;
        if party.authority_key != key.verifying_key() {
            return Err(MraError::WrongKey {
                jurisdiction: jurisdiction.to_owned(),
            });
        }
        let signature = key.sign(&self.canonical);
        self.signatures
            .insert(jurisdiction.to_owned(), signature.to_bytes());
        self.signatures_valid = self.verify_signatures().is_ok();
        Ok(())
    }

    /// The `[[signature]]` tables for the current signatures, in code order.
    pub fn signatures_toml(&self) -> String {
        let mut out = String::new();
        for (code, signature) in &self.signatures {
            out.push_str("[[signature]]\n");
            out.push_str(&format!("jurisdiction = \"{code}\"\n"));
            let encoded = base64::engine::general_purpose::STANDARD.encode(signature);
            out.push_str(&format!("ed25519 = \"{encoded}\"\n\n"));
        }
        out
    }

    /// Returns `text` (the agreement's source) with its `[[signature]]` tables replaced by the
    /// current signatures. Everything before the first `[[signature]]` line is kept byte for
    /// byte, so comments survive; the signature tables must come last in the file.
    pub fn with_signatures(&self, text: &str) -> Result<String, MraError> {
        let head = match find_signature_section(text) {
            Some(start) => {
                let tail: toml::Table =
                    toml::from_str(&text[start..]).map_err(|e| MraError::Syntax {
                        path: self.path.clone(),
                        reason: e.to_string().trim_end().to_owned(),
                    })?;
                if tail.keys().any(|k| k != "signature") {
                    return Err(MraError::Layout {
                        path: self.path.clone(),
                        reason: "the [[signature]] tables must come last in the file".into(),
                    });
                }
                &text[..start]
            }
            None => {
                let whole: toml::Table = toml::from_str(text).map_err(|e| MraError::Syntax {
                    path: self.path.clone(),
                    reason: e.to_string().trim_end().to_owned(),
                })?;
                if whole.contains_key("signature") {
                    return Err(MraError::Layout {
                        path: self.path.clone(),
                        reason: "signatures must be written as [[signature]] tables at the end \
                                 of the file"
                            .into(),
                    });
                }
                text
            }
        };
        let mut out = head.trim_end().to_owned();
        out.push_str("\n\n");
        out.push_str(&self.signatures_toml());
        let trimmed = out.trim_end().len();
        out.truncate(trimmed);
        out.push('\n');
        Ok(out)
    }

    /// Rewrites the agreement's file with the current signatures (see
    /// [`Mra::with_signatures`]), after checking that the file still holds this agreement.
    pub fn save_signatures(&self) -> Result<(), MraError> {
        let text = read_bounded(&self.path, MRA_FILE_SIZE_MAX)?;
        let text = String::from_utf8(text).map_err(|_| MraError::Syntax {
            path: self.path.clone(),
            reason: "the file is not UTF-8".into(),
        })?;
        let on_disk = Self::load(&self.path)?;
        if on_disk.canonical != self.canonical {
            return Err(MraError::Layout {
                path: self.path.clone(),
                reason: "the file changed since it was read; sign again".into(),
            });
        }
        let updated = self.with_signatures(&text)?;
        write_atomically(&self.path, updated.as_bytes())
    }

    /// Decides whether `relying` recognizes the chain — `leaf` plus the untrusted pool
    /// `intermediates` — for `purpose` at `time` (see the module documentation for the rules).
    /// The chain is validated (RFC 5280 §6) against each party's anchors in turn, the relying
    /// party's own first, with the purpose's extended key usages and the party's CRLs plus
    /// `extra_crls` (DER); revocation is required on every certificate when the party lists
    /// CRLs. When no party recognizes it, the verdict carries the most specific failure:
    /// an MRA refusal of a validated path outranks every path-validation error, and path errors
    /// rank as [`crate::error::Error::rank`] says.
    pub fn recognize(
        &self,
        relying: &str,
        purpose: Purpose,
        leaf: &Cert,
        intermediates: &[Cert],
        extra_crls: &[Vec<u8>],
        time: UnixTime,
    ) -> RecognitionVerdict {
        let mut verdict = RecognitionVerdict {
            recognized: false,
            agreement_id: self.agreement_id.clone(),
            relying: relying.to_owned(),
            purpose,
            time: time.to_rfc3339(),
            anchor_jurisdiction: None,
            clause: None,
            level_reached: None,
            level_required: None,
            policies: Vec::new(),
            path: Vec::new(),
            checks: Vec::new(),
            reason: None,
        };
        let Some(relying_index) = self.jurisdictions.iter().position(|j| j.code == relying) else {
            verdict.refuse(Check::fail(
                "MRA §parties",
                "relying-party",
                None,
                format!(
                    "{relying} is not a party to agreement {}",
                    self.agreement_id
                ),
            ));
            return verdict;
        };
        let signature_check = if self.signatures_valid {
            Check::pass(
                "MRA §signatures",
                "agreement-signatures",
                None,
                format!(
                    "every party of {} signed and every signature verifies",
                    self.agreement_id
                ),
            )
        } else if self.allow_unsigned {
            Check {
                rule: "MRA §signatures".into(),
                name: "agreement-signatures".into(),
                cert: None,
                outcome: Outcome::NotApplicable,
                detail: format!(
                    "WARNING: {} is not signed by every party (or a signature is invalid); \
                     continuing only because unsigned agreements were explicitly allowed",
                    self.agreement_id
                ),
            }
        } else {
            verdict.refuse(Check::fail(
                "MRA §signatures",
                "agreement-signatures",
                None,
                format!(
                    "{} is not signed by every party or a signature is invalid; \
                     refusing to rely on it",
                    self.agreement_id
                ),
            ));
            return verdict;
        };

        let order = std::iter::once(relying_index)
            .chain((0..self.jurisdictions.len()).filter(|i| *i != relying_index));
        let mut best: Option<(u32, RecognitionVerdict)> = None;
        let mut tried = Vec::new();
        for index in order {
            let issuer = &self.jurisdictions[index];
            let crls = match self.crls_with(index, extra_crls, intermediates) {
                Ok(crls) => crls,
                Err(check) => {
                    verdict.checks.push(signature_check);
                    verdict.refuse(*check);
                    return verdict;
                }
            };
            let mut opts = ValidationOptions::new(time);
            opts.required_ekus = purpose
                .required_ekus()
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
            opts.revocation = if issuer.crls.is_empty() && extra_crls.is_empty() {
                RevocationMode::IfAvailable
            } else {
                RevocationMode::Required
            };
            let mut attempt = verdict.clone();
            attempt.checks.push(signature_check.clone());
            let rank = match verify_chain(leaf, intermediates, &issuer.anchor_certs, &crls, &opts) {
                Ok(validated) => {
                    tried.push(format!("{}: path validates", issuer.code));
                    self.judge(
                        &mut attempt,
                        &self.jurisdictions[relying_index],
                        issuer,
                        &validated,
                        time,
                    );
                    if attempt.recognized {
                        return attempt;
                    }
                    MRA_REFUSAL_RANK
                }
                Err(error) => {
                    tried.push(format!("{}: {}", issuer.code, error.error()));
                    path_failure(&mut attempt, &error);
                    error.error().rank()
                }
            };
            if best.as_ref().is_none_or(|(r, _)| rank > *r) {
                best = Some((rank, attempt));
            }
        }
        let Some((_, mut verdict)) = best else {
            // Unreachable in practice: the relying party itself is always tried.
            verdict.refuse(Check::fail(
                "MRA §anchors",
                "anchors-tried",
                None,
                "no party tried",
            ));
            return verdict;
        };
        verdict.checks.push(Check::fail(
            "MRA §anchors",
            "anchors-tried",
            None,
            format!(
                "not recognized under any party's anchors: {}",
                tried.join("; ")
            ),
        ));
        verdict
    }

    /// Party `index`'s CRLs plus `extra` (DER), with the intermediates as candidate CRL
    /// signers; a malformed extra CRL becomes a failing check.
    fn crls_with(
        &self,
        index: usize,
        extra: &[Vec<u8>],
        intermediates: &[Cert],
    ) -> Result<CrlSet, Box<Check>> {
        let mut set = self.crl_sets.get(index).cloned().unwrap_or_default();
        for (k, der) in extra.iter().enumerate() {
            set.add_der(der).map_err(|e| {
                Box::new(Check::fail(
                    "RFC 5280 §5.1",
                    "crl-input",
                    None,
                    format!("supplied CRL {k} is unusable: {e}"),
                ))
            })?;
        }
        for cert in intermediates {
            set.add_issuer(cert.clone()).map_err(|e| {
                Box::new(Check::fail(
                    "RFC 5280 §6.3.3(f)",
                    "crl-issuers",
                    None,
                    e.to_string(),
                ))
            })?;
        }
        Ok(set)
    }

    /// Applies the MRA rules to a path that validated to one of `issuer`'s anchors.
    fn judge(
        &self,
        verdict: &mut RecognitionVerdict,
        relying: &Jurisdiction,
        issuer: &Jurisdiction,
        validated: &ValidatedPath,
        time: UnixTime,
    ) {
        verdict.checks.extend(validated.checks().iter().cloned());
        verdict.path = validated.path().to_vec();
        verdict.anchor_jurisdiction = Some(issuer.code.clone());
        let anchor = verdict.path.last().cloned();
        verdict.checks.push(Check::pass(
            "MRA §anchors",
            "anchor-jurisdiction",
            anchor.clone(),
            format!(
                "the path ends at trust anchor {} of {} ({})",
                anchor.as_ref().map_or("?", |a| a.subject.as_str()),
                issuer.code,
                issuer.name
            ),
        ));
        // anyPolicy (RFC 5280 §4.2.1.4) says nothing about assurance, so it maps to no level.
        verdict.policies = validated
            .policy()
            .user_constrained
            .iter()
            .filter(|p| p.as_str() != ANY_POLICY)
            .cloned()
            .collect();
        let reached = issuer.highest_level(verdict.policies.iter().map(String::as_str));
        verdict.level_reached = reached.as_ref().map(|(level, _)| *level);
        let leaf = verdict.path.first().cloned();

        if relying.code == issuer.code {
            verdict.clause = Some("MRA §self-recognition".into());
            verdict.level_required = Some(AssuranceLevel::Low);
            verdict.checks.push(Check::pass(
                "MRA §self-recognition",
                "recognition",
                None,
                format!("{} always recognizes its own PKI", relying.code),
            ));
            self.level_check(verdict, issuer, reached, AssuranceLevel::Low, leaf);
            return;
        }

        if time < self.not_before || time > self.not_after {
            verdict.refuse(Check::fail(
                "MRA §validity",
                "agreement-window",
                None,
                format!(
                    "agreement {} is in force from {} to {}; the validation time {} is outside",
                    self.agreement_id, self.not_before, self.not_after, verdict.time
                ),
            ));
            return;
        }
        verdict.checks.push(Check::pass(
            "MRA §validity",
            "agreement-window",
            None,
            format!(
                "agreement {} is in force from {} to {}",
                self.agreement_id, self.not_before, self.not_after
            ),
        ));

        let pair: Vec<&RecognitionRow> = self
            .rows
            .iter()
            .filter(|r| r.relying == relying.code && r.issuing == issuer.code)
            .collect();
        let Some(first) = pair.first() else {
            verdict.refuse(Check::fail(
                "MRA §recognition",
                "recognition",
                None,
                format!(
                    "no row says {} recognizes {} ({})",
                    relying.code, issuer.code, issuer.name
                ),
            ));
            return;
        };
        let for_purpose: Vec<&RecognitionRow> = pair
            .iter()
            .copied()
            .filter(|r| r.purposes.contains(&verdict.purpose))
            .collect();
        let Some(first_for_purpose) = for_purpose.first() else {
            let covered: Vec<&str> = first.purposes.iter().map(|p| p.as_str()).collect();
            verdict.refuse(Check::fail(
                &first.clause(),
                "recognition-purpose",
                None,
                format!(
                    "{} recognizes {} for {}, not for {}",
                    relying.code,
                    issuer.code,
                    covered.join(", "),
                    verdict.purpose
                ),
            ));
            return;
        };
        let in_window: Vec<&RecognitionRow> = for_purpose
            .iter()
            .copied()
            .filter(|r| r.not_before <= time && time <= r.not_after)
            .collect();
        if in_window.is_empty() {
            let row = first_for_purpose;
            verdict.clause = Some(row.clause());
            verdict.refuse(Check::fail(
                &row.clause(),
                "recognition-window",
                None,
                format!(
                    "row {} applies from {} to {}; the validation time {} is outside",
                    row.id, row.not_before, row.not_after, verdict.time
                ),
            ));
            return;
        }
        // Prefer a row whose minimum the chain reaches; otherwise judge against the most
        // lenient row, whose failure is the nearest miss.
        let level = verdict.level_reached;
        let row = in_window
            .iter()
            .copied()
            .find(|r| level.is_some_and(|l| l >= r.minimum_level))
            .or_else(|| in_window.iter().copied().min_by_key(|r| r.minimum_level))
            .unwrap_or(first_for_purpose);
        verdict.clause = Some(row.clause());
        verdict.level_required = Some(row.minimum_level);
        verdict.checks.push(Check::pass(
            &row.clause(),
            "recognition",
            None,
            format!(
                "{} recognizes {} for {} from {} to {}",
                relying.code, issuer.code, verdict.purpose, row.not_before, row.not_after
            ),
        ));
        self.level_check(verdict, issuer, reached, row.minimum_level, leaf);
    }

    fn level_check(
        &self,
        verdict: &mut RecognitionVerdict,
        issuer: &Jurisdiction,
        reached: Option<(AssuranceLevel, String)>,
        required: AssuranceLevel,
        leaf: Option<CertRef>,
    ) {
        match reached {
            Some((level, oid)) if level >= required => {
                verdict.checks.push(Check::pass(
                    "MRA §level",
                    "assurance-level",
                    leaf,
                    format!(
                        "policy {oid} maps to {level} in {}'s map; {required} is required",
                        issuer.code
                    ),
                ));
                verdict.recognized = true;
                verdict.reason = None;
            }
            Some((level, oid)) => verdict.refuse(Check::fail(
                "MRA §level",
                "assurance-level",
                leaf,
                format!(
                    "policy {oid} maps to {level} in {}'s map; {required} is required",
                    issuer.code
                ),
            )),
            None => {
                let shown = if verdict.policies.is_empty() {
                    "no certificate policy".to_owned()
                } else {
                    format!("policies {}", verdict.policies.join(", "))
                };
                verdict.refuse(Check::fail(
                    "MRA §level",
                    "assurance-level",
                    leaf,
                    format!(
                        "the path carries {shown}, none of which {}'s map assigns a level; \
                         {required} is required",
                        issuer.code
                    ),
                ));
            }
        }
    }

    fn compute_canonical_bytes(&self) -> Result<Vec<u8>, MraError> {
        let mut jurisdictions: Vec<CanonicalJurisdiction> = self
            .jurisdictions
            .iter()
            .map(|j| {
                let mut anchors: Vec<String> =
                    j.anchors.iter().map(|der| sha256_hex(der)).collect();
                anchors.sort();
                CanonicalJurisdiction {
                    anchors_sha256: anchors,
                    authority_key: hex::encode(j.authority_key.as_bytes()),
                    code: j.code.clone(),
                    currency: j.currency.clone(),
                    name: j.name.clone(),
                    policies: j
                        .policies
                        .iter()
                        .map(|(oid, level)| (oid.clone(), level.as_str()))
                        .collect(),
                }
            })
            .collect();
        jurisdictions.sort_by(|a, b| a.code.cmp(&b.code));
        let mut recognition: Vec<CanonicalRow> = self
            .rows
            .iter()
            .map(|r| CanonicalRow {
                id: r.id.clone(),
                issuing: r.issuing.clone(),
                minimum_level: r.minimum_level.as_str(),
                not_after: r.not_after.to_rfc3339(),
                not_before: r.not_before.to_rfc3339(),
                purposes: r.purposes.iter().map(|p| p.as_str()).collect(),
                relying: r.relying.clone(),
            })
            .collect();
        recognition.sort_by(|a, b| a.id.cmp(&b.id));
        let canonical = CanonicalMra {
            agreement_id: self.agreement_id.clone(),
            jurisdictions,
            not_after: self.not_after.to_rfc3339(),
            not_before: self.not_before.to_rfc3339(),
            recognition,
            title: self.title.clone(),
            version: self.version,
        };
        let mut out = CANONICAL_PREFIX.to_vec();
        // Serializing plain structs, strings and a string-keyed BTreeMap to a Vec does not
        // fail in practice; if it ever did, refuse rather than sign a truncated form.
        let json = serde_json::to_vec(&canonical).map_err(|e| MraError::Syntax {
            path: self.path.clone(),
            reason: format!("cannot form the canonical bytes: {e}"),
        })?;
        out.extend_from_slice(&json);
        Ok(out)
    }
}

/// Rank given to an MRA refusal of a path that validated: above every path-validation error
/// (`crate::error::Error::rank` tops out at 1,000), since the chain itself was sound.
const MRA_REFUSAL_RANK: u32 = 10_000;

/// The deciding failure of a verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// The rule broken: an RFC 5280 section or an MRA clause.
    pub rule: String,
    /// What was found.
    pub message: String,
    /// The certificate concerned, if any.
    pub cert: Option<CertRef>,
}

/// The answer to "does `relying` recognize this chain for `purpose` at `time`?", with the
/// evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecognitionVerdict {
    /// The decision.
    pub recognized: bool,
    /// The agreement consulted.
    pub agreement_id: String,
    /// The relying jurisdiction.
    pub relying: String,
    /// The purpose asked about.
    pub purpose: Purpose,
    /// The validation time, RFC 3339.
    pub time: String,
    /// The jurisdiction whose anchor the path validated to, if one did.
    pub anchor_jurisdiction: Option<String>,
    /// The clause that decided: `MRA §recognition.<id>` or `MRA §self-recognition`.
    pub clause: Option<String>,
    /// The highest assurance level the leaf's policies reach.
    pub level_reached: Option<AssuranceLevel>,
    /// The level the clause requires.
    pub level_required: Option<AssuranceLevel>,
    /// The user-constrained policy set (RFC 5280 §6.1.6), anyPolicy removed.
    pub policies: Vec<String>,
    /// The path, leaf first and trust anchor last (the closest candidate on failure).
    pub path: Vec<CertRef>,
    /// Every check, path validation first, then the MRA's.
    pub checks: Vec<Check>,
    /// Why it is not recognized; `None` when recognized.
    pub reason: Option<Reason>,
}

impl RecognitionVerdict {
    /// Records a failing check as the deciding reason.
    fn refuse(&mut self, check: Check) {
        self.recognized = false;
        self.reason = Some(Reason {
            rule: check.rule.clone(),
            message: check.detail.clone(),
            cert: check.cert.clone(),
        });
        self.checks.push(check);
    }
}

/// Fills a verdict from a path-validation failure.
fn path_failure(verdict: &mut RecognitionVerdict, error: &PathError) {
    verdict.checks.extend(error.checks().iter().cloned());
    verdict.path = error.path().to_vec();
    let failure: &PathFailure = error.error();
    let recorded = error
        .checks()
        .iter()
        .any(|c| c.outcome == Outcome::Fail && c.rule == failure.rule());
    let check = Check::fail(
        failure.rule(),
        "path-validation",
        error.cert().cloned(),
        error.to_string(),
    );
    if recorded {
        verdict.recognized = false;
        verdict.reason = Some(Reason {
            rule: check.rule,
            message: check.detail,
            cert: check.cert,
        });
    } else {
        verdict.refuse(check);
    }
}

/// Lowercase hex SHA-256.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

// The canonical form. Field order is alphabetical because serde serializes struct fields in
// declaration order: this is what makes the JSON keys sorted.
#[derive(Serialize)]
struct CanonicalMra {
    agreement_id: String,
    jurisdictions: Vec<CanonicalJurisdiction>,
    not_after: String,
    not_before: String,
    recognition: Vec<CanonicalRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    version: u32,
}

#[derive(Serialize)]
struct CanonicalJurisdiction {
    anchors_sha256: Vec<String>,
    authority_key: String,
    code: String,
    currency: String,
    name: String,
    policies: BTreeMap<String, &'static str>,
}

#[derive(Serialize)]
struct CanonicalRow {
    id: String,
    issuing: String,
    minimum_level: &'static str,
    not_after: String,
    not_before: String,
    purposes: Vec<&'static str>,
    relying: String,
}

// The file as written; `Checker` turns it into an `Mra`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMra {
    version: u32,
    agreement_id: String,
    title: Option<String>,
    not_before: String,
    not_after: String,
    #[serde(default)]
    jurisdiction: Vec<RawJurisdiction>,
    #[serde(default)]
    recognition: Vec<RawRow>,
    #[serde(default)]
    signature: Vec<RawSignature>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJurisdiction {
    code: String,
    name: String,
    currency: String,
    authority_key: String,
    anchors: Vec<String>,
    #[serde(default)]
    crls: Vec<String>,
    #[serde(default)]
    policies: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRow {
    id: String,
    relying: String,
    issuing: String,
    purposes: Vec<String>,
    minimum_level: String,
    not_before: String,
    not_after: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSignature {
    jurisdiction: String,
    ed25519: String,
}

struct Checker<'a> {
    path: &'a Path,
    read: &'a mut dyn FnMut(&str) -> Result<Vec<u8>, MraError>,
}

impl Checker<'_> {
    fn field(&self, field: impl Into<String>, reason: impl Into<String>) -> MraError {
        MraError::Field {
            path: self.path.to_owned(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    fn check(mut self, raw: RawMra) -> Result<Mra, MraError> {
        if raw.version != MRA_VERSION {
            return Err(self.field(
                "version",
                format!(
                    "version {} is not supported; this tool reads version {MRA_VERSION}",
                    raw.version
                ),
            ));
        }
        self.text("agreement_id", &raw.agreement_id)?;
        if let Some(title) = &raw.title {
            self.text("title", title)?;
        }
        let not_before = self.time("not_before", &raw.not_before)?;
        let not_after = self.time("not_after", &raw.not_after)?;
        if not_before >= not_after {
            return Err(self.field("not_after", "must be later than not_before"));
        }
        if raw.jurisdiction.is_empty() {
            return Err(self.field("jurisdiction", "the agreement has no jurisdictions"));
        }
        if raw.jurisdiction.len() > JURISDICTIONS_MAX {
            return Err(self.field(
                "jurisdiction",
                format!("more than {JURISDICTIONS_MAX} jurisdictions"),
            ));
        }
        let mut jurisdictions = Vec::with_capacity(raw.jurisdiction.len());
        for (i, j) in raw.jurisdiction.into_iter().enumerate() {
            let checked = self.jurisdiction(i, j)?;
            if jurisdictions
                .iter()
                .any(|other: &Jurisdiction| other.code == checked.code)
            {
                return Err(self.field(
                    format!("jurisdiction[{i}].code"),
                    format!("jurisdiction {} appears twice", checked.code),
                ));
            }
            jurisdictions.push(checked);
        }
        if raw.recognition.len() > RECOGNITION_ROWS_MAX {
            return Err(self.field(
                "recognition",
                format!("more than {RECOGNITION_ROWS_MAX} rows"),
            ));
        }
        let mut rows: Vec<RecognitionRow> = Vec::with_capacity(raw.recognition.len());
        for (i, r) in raw.recognition.into_iter().enumerate() {
            let row = self.row(i, r, &jurisdictions)?;
            if rows.iter().any(|other| other.id == row.id) {
                return Err(self.field(
                    format!("recognition[{i}].id"),
                    format!("row id `{}` appears twice", row.id),
                ));
            }
            rows.push(row);
        }
        let mut signatures = BTreeMap::new();
        for (i, s) in raw.signature.into_iter().enumerate() {
            let field = format!("signature[{i}]");
            if !jurisdictions.iter().any(|j| j.code == s.jurisdiction) {
                return Err(self.field(
                    format!("{field}.jurisdiction"),
                    format!(
                        "`{}` is not a jurisdiction of this agreement",
                        s.jurisdiction
                    ),
                ));
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s.ed25519.trim())
                .map_err(|e| self.field(format!("{field}.ed25519"), format!("not base64: {e}")))?;
            let bytes: [u8; 64] = bytes.try_into().map_err(|b: Vec<u8>| {
                self.field(
                    format!("{field}.ed25519"),
                    format!("an Ed25519 signature is 64 bytes, this one is {}", b.len()),
                )
            })?;
            if signatures.insert(s.jurisdiction.clone(), bytes).is_some() {
                return Err(self.field(
                    format!("{field}.jurisdiction"),
                    format!("{} has signed twice", s.jurisdiction),
                ));
            }
        }
        Ok(Mra {
            path: self.path.to_owned(),
            version: raw.version,
            agreement_id: raw.agreement_id,
            title: raw.title,
            not_before,
            not_after,
            jurisdictions,
            rows,
            signatures,
            canonical: Vec::new(),
            allow_unsigned: false,
            signatures_valid: false,
            crl_sets: Vec::new(),
        })
    }

    fn text(&self, field: &str, value: &str) -> Result<(), MraError> {
        if value.trim().is_empty() {
            return Err(self.field(field, "must not be empty"));
        }
        if value.len() > TEXT_LEN_MAX {
            return Err(self.field(field, format!("longer than {TEXT_LEN_MAX} bytes")));
        }
        if value.chars().any(char::is_control) {
            return Err(self.field(field, "contains control characters"));
        }
        Ok(())
    }

    fn time(&self, field: &str, value: &str) -> Result<UnixTime, MraError> {
        UnixTime::parse_rfc3339(value).map_err(|e| {
            self.field(
                field,
                format!("`{value}` is not an RFC 3339 time such as 2026-01-01T00:00:00Z: {e}"),
            )
        })
    }

    fn jurisdiction(&mut self, i: usize, j: RawJurisdiction) -> Result<Jurisdiction, MraError> {
        let at = |name: &str| format!("jurisdiction[{i}].{name}");
        if !is_upper_alpha(&j.code, 2) {
            return Err(self.field(
                at("code"),
                format!("`{}` is not an ISO 3166-1 alpha-2 code such as JP", j.code),
            ));
        }
        self.text(&at("name"), &j.name)?;
        if !is_upper_alpha(&j.currency, 3) {
            return Err(self.field(
                at("currency"),
                format!("`{}` is not an ISO 4217 code such as JPY", j.currency),
            ));
        }
        let key_bytes = hex::decode(j.authority_key.trim())
            .map_err(|e| self.field(at("authority_key"), format!("not hex: {e}")))?;
        let key_bytes: [u8; 32] = key_bytes.try_into().map_err(|b: Vec<u8>| {
            self.field(
                at("authority_key"),
                format!("an Ed25519 public key is 32 bytes, this one is {}", b.len()),
            )
        })?;
        let authority_key = VerifyingKey::from_bytes(&key_bytes)
            .map_err(|_| self.field(at("authority_key"), "not a valid Ed25519 public key"))?;
        if authority_key.is_weak() {
            return Err(self.field(at("authority_key"), "a weak (small-order) Ed25519 key"));
        }
        if j.anchors.is_empty() {
            return Err(self.field(at("anchors"), "at least one trust anchor is required"));
        }
        if j.anchors.len() > ANCHORS_PER_JURISDICTION_MAX {
            return Err(self.field(
                at("anchors"),
                format!("more than {ANCHORS_PER_JURISDICTION_MAX} anchors"),
            ));
        }
        let mut anchors = Vec::new();
        let mut anchor_certs = Vec::new();
        for (k, reference) in j.anchors.iter().enumerate() {
            let field = format!("{}[{k}]", at("anchors"));
            for der in self.load_blocks(&field, reference, "CERTIFICATE")? {
                let cert = Cert::from_der(&der).map_err(|e| {
                    self.field(
                        &field,
                        format!(
                            "{}: not a usable X.509 certificate: {e}",
                            describe(reference)
                        ),
                    )
                })?;
                anchors.push(der);
                anchor_certs.push(cert);
            }
        }
        if j.crls.len() > CRLS_PER_JURISDICTION_MAX {
            return Err(self.field(
                at("crls"),
                format!("more than {CRLS_PER_JURISDICTION_MAX} CRLs"),
            ));
        }
        let mut crls = Vec::new();
        for (k, reference) in j.crls.iter().enumerate() {
            let field = format!("{}[{k}]", at("crls"));
            for der in self.load_blocks(&field, reference, "X509 CRL")? {
                CrlSet::new().add_der(&der).map_err(|e| {
                    self.field(
                        &field,
                        format!("{}: not a usable X.509 CRL: {e}", describe(reference)),
                    )
                })?;
                crls.push(der);
            }
        }
        if j.policies.len() > POLICIES_PER_JURISDICTION_MAX {
            return Err(self.field(
                at("policies"),
                format!("more than {POLICIES_PER_JURISDICTION_MAX} policy OIDs"),
            ));
        }
        let mut policies = BTreeMap::new();
        for (oid, level) in &j.policies {
            let field = format!("{}.\"{oid}\"", at("policies"));
            if !is_dotted_oid(oid) {
                return Err(self.field(field, format!("`{oid}` is not a dotted object identifier")));
            }
            let level = AssuranceLevel::parse(level).ok_or_else(|| {
                self.field(
                    &field,
                    format!("`{level}` is not a level (low, substantial, high)"),
                )
            })?;
            policies.insert(oid.clone(), level);
        }
        Ok(Jurisdiction {
            code: j.code,
            name: j.name,
            currency: j.currency,
            authority_key,
            anchors,
            anchor_certs,
            crls,
            policies,
        })
    }

    /// Reads PEM blocks with `label` (or one DER object) from a file reference or inline PEM.
    fn load_blocks(
        &mut self,
        field: &str,
        reference: &str,
        label: &str,
    ) -> Result<Vec<Vec<u8>>, MraError> {
        let bytes = if reference.trim_start().starts_with("-----BEGIN") {
            reference.as_bytes().to_vec()
        } else {
            if reference.trim().is_empty() {
                return Err(self.field(field, "empty file reference"));
            }
            (self.read)(reference).map_err(|e| self.field(field, e.to_string()))?
        };
        let blocks = crate::pem::blocks_or_der(&bytes, label)
            .map_err(|e| self.field(field, format!("{}: bad PEM: {e}", describe(reference))))?;
        if blocks.is_empty() {
            return Err(self.field(
                field,
                format!("{}: no `{label}` PEM block", describe(reference)),
            ));
        }
        Ok(blocks)
    }

    fn row(
        &self,
        i: usize,
        r: RawRow,
        jurisdictions: &[Jurisdiction],
    ) -> Result<RecognitionRow, MraError> {
        let at = |name: &str| format!("recognition[{i}].{name}");
        self.text(&at("id"), &r.id)?;
        if !r
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(self.field(at("id"), "use letters, digits, '-', '_' and '.' only"));
        }
        for (name, code) in [("relying", &r.relying), ("issuing", &r.issuing)] {
            if !jurisdictions.iter().any(|j| &j.code == code) {
                return Err(self.field(
                    at(name),
                    format!("`{code}` is not a jurisdiction of this agreement"),
                ));
            }
        }
        if r.relying == r.issuing {
            return Err(self.field(
                at("issuing"),
                "a jurisdiction always recognizes itself (MRA §self-recognition); remove this row",
            ));
        }
        if r.purposes.is_empty() {
            return Err(self.field(at("purposes"), "list at least one purpose"));
        }
        let mut purposes = BTreeSet::new();
        for p in &r.purposes {
            let purpose = Purpose::parse(p).ok_or_else(|| {
                self.field(
                    at("purposes"),
                    format!("`{p}` is not a purpose (node-tls, payment-signing, receipt-signing)"),
                )
            })?;
            purposes.insert(purpose);
        }
        let minimum_level = AssuranceLevel::parse(&r.minimum_level).ok_or_else(|| {
            self.field(
                at("minimum_level"),
                format!(
                    "`{}` is not a level (low, substantial, high)",
                    r.minimum_level
                ),
            )
        })?;
        let not_before = self.time(&at("not_before"), &r.not_before)?;
        let not_after = self.time(&at("not_after"), &r.not_after)?;
        if not_before >= not_after {
            return Err(self.field(at("not_after"), "must be later than not_before"));
        }
        Ok(RecognitionRow {
            id: r.id,
            relying: r.relying,
            issuing: r.issuing,
            purposes,
            minimum_level,
            not_before,
            not_after,
        })
    }
}

fn describe(reference: &str) -> String {
    if reference.trim_start().starts_with("-----BEGIN") {
        "inline PEM".into()
    } else {
        reference.to_owned()
    }
}

fn is_upper_alpha(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| b.is_ascii_uppercase())
}

/// A dotted OID as X.660 allows: first arc 0–2, at least two arcs, decimal arcs without
/// leading zeros.
pub(crate) fn is_dotted_oid(text: &str) -> bool {
    if text.is_empty() || text.len() > OID_TEXT_LEN_MAX {
        return false;
    }
    let arcs: Vec<&str> = text.split('.').collect();
    if arcs.len() < 2 {
        return false;
    }
    let well_formed = arcs.iter().all(|a| {
        !a.is_empty()
            && a.bytes().all(|b| b.is_ascii_digit())
            && (a.len() == 1 || !a.starts_with('0'))
    });
    well_formed && matches!(arcs[0], "0" | "1" | "2")
}

fn find_signature_section(text: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim() == "[[signature]]" {
            return Some(offset);
        }
        offset += line.len();
    }
    None
}

fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, MraError> {
    let metadata = std::fs::metadata(path).map_err(|cause| MraError::Read {
        path: path.to_owned(),
        cause,
    })?;
    if metadata.len() > max {
        return Err(MraError::TooLarge {
            path: path.to_owned(),
            size: metadata.len(),
            max,
        });
    }
    std::fs::read(path).map_err(|cause| MraError::Read {
        path: path.to_owned(),
        cause,
    })
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), MraError> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = PathBuf::from(temp);
    std::fs::write(&temp, bytes).map_err(|cause| MraError::Write {
        path: temp.clone(),
        cause,
    })?;
    std::fs::rename(&temp, path).map_err(|cause| MraError::Write {
        path: path.to_owned(),
        cause,
    })
}

#[cfg(test)]
mod tests;
