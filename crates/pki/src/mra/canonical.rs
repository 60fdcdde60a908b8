//! The canonical bytes of an agreement (what every party signs) and the detached Ed25519
//! signatures over them: verifying, signing and writing them back into the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use serde::Serialize;
use sha2::Digest as _;

use super::{CANONICAL_PREFIX, MRA_FILE_SIZE_MAX, Mra, MraError, SignatureStatus, read_bounded};

impl Mra {
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

    pub(super) fn compute_canonical_bytes(&self) -> Result<Vec<u8>, MraError> {
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

/// Lowercase hex SHA-256.
fn sha256_hex(bytes: &[u8]) -> String {
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

pub(super) fn find_signature_section(text: &str) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim() == "[[signature]]" {
            return Some(offset);
        }
        offset += line.len();
    }
    None
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
