//! The agreement's TOML schema: the file as written (`Raw*`), the checked types it becomes
//! (jurisdictions, recognition rows, assurance levels), and the checks between the two.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use base64::Engine as _;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use super::{
    ANCHORS_PER_JURISDICTION_MAX, CRLS_PER_JURISDICTION_MAX, JURISDICTIONS_MAX, MRA_VERSION, Mra,
    MraError, OID_TEXT_LEN_MAX, POLICIES_PER_JURISDICTION_MAX, RECOGNITION_ROWS_MAX, TEXT_LEN_MAX,
};
use crate::cert::Cert;
use crate::crl::CrlSet;
use crate::purpose::Purpose;
use crate::time::UnixTime;

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
    pub(super) anchor_certs: Vec<Cert>,
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

/// Parses agreement `text` and checks it against the schema; `path` names it in errors, and
/// `read` fetches the referenced anchor and CRL files. Signatures are parsed, not verified.
pub(super) fn parse(
    text: &str,
    path: &Path,
    read: &mut dyn FnMut(&str) -> Result<Vec<u8>, MraError>,
) -> Result<Mra, MraError> {
    let raw: RawMra = toml::from_str(text).map_err(|e| MraError::Syntax {
        path: path.to_owned(),
        reason: e.to_string().trim_end().to_owned(),
    })?;
    Checker { path, read }.check(raw)
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
        let jurisdictions = self.jurisdictions(raw.jurisdiction)?;
        let rows = self.rows(raw.recognition, &jurisdictions)?;
        let signatures = self.signatures(raw.signature, &jurisdictions)?;
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

    /// The `[[jurisdiction]]` tables, each checked, no code twice.
    fn jurisdictions(&mut self, raw: Vec<RawJurisdiction>) -> Result<Vec<Jurisdiction>, MraError> {
        let mut jurisdictions = Vec::with_capacity(raw.len());
        for (i, j) in raw.into_iter().enumerate() {
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
        Ok(jurisdictions)
    }

    /// The `[[recognition]]` rows, at most [`RECOGNITION_ROWS_MAX`], each checked, no id twice.
    fn rows(
        &self,
        raw: Vec<RawRow>,
        jurisdictions: &[Jurisdiction],
    ) -> Result<Vec<RecognitionRow>, MraError> {
        if raw.len() > RECOGNITION_ROWS_MAX {
            return Err(self.field(
                "recognition",
                format!("more than {RECOGNITION_ROWS_MAX} rows"),
            ));
        }
        let mut rows: Vec<RecognitionRow> = Vec::with_capacity(raw.len());
        for (i, r) in raw.into_iter().enumerate() {
            let row = self.row(i, r, jurisdictions)?;
            if rows.iter().any(|other| other.id == row.id) {
                return Err(self.field(
                    format!("recognition[{i}].id"),
                    format!("row id `{}` appears twice", row.id),
                ));
            }
            rows.push(row);
        }
        Ok(rows)
    }

    /// The `[[signature]]` tables: one per party at most, each a 64-byte Ed25519 signature by
    /// a jurisdiction of the agreement. Whether they verify is checked later.
    fn signatures(
        &self,
        raw: Vec<RawSignature>,
        jurisdictions: &[Jurisdiction],
    ) -> Result<BTreeMap<String, [u8; 64]>, MraError> {
        let mut signatures = BTreeMap::new();
        for (i, s) in raw.into_iter().enumerate() {
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
        Ok(signatures)
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
        let authority_key = self.authority_key(&at("authority_key"), &j.authority_key)?;
        let (anchors, anchor_certs) = self.anchors(&at("anchors"), &j.anchors)?;
        let crls = self.crls(&at("crls"), &j.crls)?;
        let policies = self.policies(&at("policies"), &j.policies)?;
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

    /// The authority's Ed25519 public key: 32 bytes of hex, a valid point, not of small order.
    fn authority_key(&self, field: &str, hex_key: &str) -> Result<VerifyingKey, MraError> {
        let key_bytes =
            hex::decode(hex_key.trim()).map_err(|e| self.field(field, format!("not hex: {e}")))?;
        let key_bytes: [u8; 32] = key_bytes.try_into().map_err(|b: Vec<u8>| {
            self.field(
                field,
                format!("an Ed25519 public key is 32 bytes, this one is {}", b.len()),
            )
        })?;
        let authority_key = VerifyingKey::from_bytes(&key_bytes)
            .map_err(|_| self.field(field, "not a valid Ed25519 public key"))?;
        if authority_key.is_weak() {
            return Err(self.field(field, "a weak (small-order) Ed25519 key"));
        }
        Ok(authority_key)
    }

    /// The trust anchors, 1 to [`ANCHORS_PER_JURISDICTION_MAX`] references, as DER and parsed.
    fn anchors(
        &mut self,
        field: &str,
        references: &[String],
    ) -> Result<(Vec<Vec<u8>>, Vec<Cert>), MraError> {
        if references.is_empty() {
            return Err(self.field(field, "at least one trust anchor is required"));
        }
        if references.len() > ANCHORS_PER_JURISDICTION_MAX {
            return Err(self.field(
                field,
                format!("more than {ANCHORS_PER_JURISDICTION_MAX} anchors"),
            ));
        }
        let mut anchors = Vec::new();
        let mut anchor_certs = Vec::new();
        for (k, reference) in references.iter().enumerate() {
            let field = format!("{field}[{k}]");
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
        Ok((anchors, anchor_certs))
    }

    /// The CRLs, at most [`CRLS_PER_JURISDICTION_MAX`] references, each a usable CRL, as DER.
    fn crls(&mut self, field: &str, references: &[String]) -> Result<Vec<Vec<u8>>, MraError> {
        if references.len() > CRLS_PER_JURISDICTION_MAX {
            return Err(self.field(field, format!("more than {CRLS_PER_JURISDICTION_MAX} CRLs")));
        }
        let mut crls = Vec::new();
        for (k, reference) in references.iter().enumerate() {
            let field = format!("{field}[{k}]");
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
        Ok(crls)
    }

    /// The policy map, at most [`POLICIES_PER_JURISDICTION_MAX`] dotted OIDs, each to a level.
    fn policies(
        &self,
        field: &str,
        map: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, AssuranceLevel>, MraError> {
        if map.len() > POLICIES_PER_JURISDICTION_MAX {
            return Err(self.field(
                field,
                format!("more than {POLICIES_PER_JURISDICTION_MAX} policy OIDs"),
            ));
        }
        let mut policies = BTreeMap::new();
        for (oid, level) in map {
            let field = format!("{field}.\"{oid}\"");
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
        Ok(policies)
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
                let known: Vec<&str> = Purpose::ALL.iter().map(|p| p.as_str()).collect();
                self.field(
                    at("purposes"),
                    format!("`{p}` is not a purpose ({})", known.join(", ")),
                )
            })?;
            if !purpose.foreign_recognition_allowed() {
                return Err(self.field(
                    at("purposes"),
                    format!(
                        "`{p}` is recognized only by its own jurisdiction (MRA \
                         §self-recognition); a row may not carry it"
                    ),
                ));
            }
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
pub(super) fn is_dotted_oid(text: &str) -> bool {
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
