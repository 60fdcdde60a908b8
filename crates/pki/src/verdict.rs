//! The explanation vocabulary shared by path validation and mutual recognition: every check
//! that ran, on which certificate, under which rule, and with what outcome.

use serde::Serialize;

/// Names one certificate of a candidate path the way an auditor looks it up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CertRef {
    /// 0 is the end-entity (leaf); the trust anchor has the highest position.
    pub position: usize,
    /// The subject distinguished name in RFC 4514 string form.
    pub subject: String,
    /// The serial number as lowercase hex, without leading zero bytes.
    pub serial: String,
    /// SHA-256 of the certificate's DER, lowercase hex.
    pub sha256: String,
}

/// What a single check concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The check did not apply (for example no CRL was supplied and none is required).
    NotApplicable,
    /// The rule was satisfied.
    Pass,
    /// The rule was broken; the chain is not valid on this path.
    Fail,
}

/// One check of one rule, on one certificate or on the path as a whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// The rule, cited: `RFC 5280 §6.1.3(a)(2)` or `MRA §recognition`.
    pub rule: String,
    /// A short name for what was checked, such as `validity` or `name-constraints`.
    pub name: String,
    /// The certificate the check is about; `None` for path-wide checks.
    pub cert: Option<CertRef>,
    /// What the check concluded.
    pub outcome: Outcome,
    /// A human sentence with the values compared (times, names, OIDs).
    pub detail: String,
}

impl Check {
    /// A passing check.
    pub fn pass(rule: &str, name: &str, cert: Option<CertRef>, detail: impl Into<String>) -> Self {
        Self {
            rule: rule.into(),
            name: name.into(),
            cert,
            outcome: Outcome::Pass,
            detail: detail.into(),
        }
    }

    /// A failing check.
    pub fn fail(rule: &str, name: &str, cert: Option<CertRef>, detail: impl Into<String>) -> Self {
        Self {
            rule: rule.into(),
            name: name.into(),
            cert,
            outcome: Outcome::Fail,
            detail: detail.into(),
        }
    }
}
