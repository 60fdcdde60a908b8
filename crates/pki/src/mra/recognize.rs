//! Recognition: whether a relying jurisdiction recognizes a chain for a purpose at a time,
//! under the rules in the module documentation of [`super`], with the evidence.

use serde::Serialize;

use super::{AssuranceLevel, Jurisdiction, Mra, RecognitionRow};
use crate::cert::Cert;
use crate::crl::{CrlSet, RevocationMode};
use crate::policy::ANY_POLICY;
use crate::purpose::Purpose;
use crate::time::UnixTime;
use crate::validate::{PathError, ValidatedPath, ValidationOptions, verify_chain};
use crate::verdict::{CertRef, Check, Outcome};

impl Mra {
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
        let mut verdict = RecognitionVerdict::new(&self.agreement_id, relying, purpose, time);
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
        let signature_check = match self.signature_check() {
            Ok(check) => check,
            Err(refusal) => {
                verdict.refuse(*refusal);
                return verdict;
            }
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
            let opts = validation_options(issuer, purpose, extra_crls, time);
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

    /// MRA §signatures: the passing (or, when unsigned agreements are allowed, warning) check
    /// that recognition records, or the refusal when it may not rely on the agreement.
    fn signature_check(&self) -> Result<Check, Box<Check>> {
        if self.signatures_valid {
            Ok(Check::pass(
                "MRA §signatures",
                "agreement-signatures",
                None,
                format!(
                    "every party of {} signed and every signature verifies",
                    self.agreement_id
                ),
            ))
        } else if self.allow_unsigned {
            Ok(Check {
                rule: "MRA §signatures".into(),
                name: "agreement-signatures".into(),
                cert: None,
                outcome: Outcome::NotApplicable,
                detail: format!(
                    "WARNING: {} is not signed by every party (or a signature is invalid); \
                     continuing only because unsigned agreements were explicitly allowed",
                    self.agreement_id
                ),
            })
        } else {
            Err(Box::new(Check::fail(
                "MRA §signatures",
                "agreement-signatures",
                None,
                format!(
                    "{} is not signed by every party or a signature is invalid; \
                     refusing to rely on it",
                    self.agreement_id
                ),
            )))
        }
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
        if !self.in_force(verdict, time) {
            return;
        }
        let Some(row) = self.row(verdict, relying, issuer, time) else {
            return;
        };
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

    /// MRA §validity: whether the agreement is in force at `time`, recorded in the verdict.
    fn in_force(&self, verdict: &mut RecognitionVerdict, time: UnixTime) -> bool {
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
            return false;
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
        true
    }

    /// MRA §recognition: the row that decides whether `relying` recognizes `issuer` for the
    /// verdict's purpose at `time`, or `None` with the refusal recorded when no row applies.
    /// Among the rows that apply, one whose minimum the chain reaches is preferred; otherwise
    /// the most lenient, whose failure is the nearest miss.
    fn row(
        &self,
        verdict: &mut RecognitionVerdict,
        relying: &Jurisdiction,
        issuer: &Jurisdiction,
        time: UnixTime,
    ) -> Option<&RecognitionRow> {
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
            return None;
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
            return None;
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
            return None;
        }
        let level = verdict.level_reached;
        let row = in_window
            .iter()
            .copied()
            .find(|r| level.is_some_and(|l| l >= r.minimum_level))
            .or_else(|| in_window.iter().copied().min_by_key(|r| r.minimum_level))
            .unwrap_or(first_for_purpose);
        Some(row)
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
///
/// A proof type: only [`Mra::recognize`] (and the caches and TLS verifiers of this crate that
/// call it) makes one. Its fields are private to the crate, and it has no public constructor,
/// no `Default` and no `Deserialize`, so code outside the verifier can read a verdict, clone it
/// and serialize it, but not forge one:
///
/// ```compile_fail,E0451
/// use kakehashi_pki::RecognitionVerdict;
/// let forged = RecognitionVerdict { recognized: true, ..todo!() };
/// ```
///
/// ```compile_fail,E0277
/// let forged: kakehashi_pki::RecognitionVerdict = Default::default();
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecognitionVerdict {
    pub(crate) recognized: bool,
    pub(crate) agreement_id: String,
    pub(crate) relying: String,
    pub(crate) purpose: Purpose,
    pub(crate) time: String,
    pub(crate) anchor_jurisdiction: Option<String>,
    pub(crate) clause: Option<String>,
    pub(crate) level_reached: Option<AssuranceLevel>,
    pub(crate) level_required: Option<AssuranceLevel>,
    pub(crate) policies: Vec<String>,
    pub(crate) path: Vec<CertRef>,
    pub(crate) checks: Vec<Check>,
    pub(crate) reason: Option<Reason>,
}

impl RecognitionVerdict {
    /// The decision.
    pub fn recognized(&self) -> bool {
        self.recognized
    }

    /// The agreement consulted.
    pub fn agreement_id(&self) -> &str {
        &self.agreement_id
    }

    /// The relying jurisdiction.
    pub fn relying(&self) -> &str {
        &self.relying
    }

    /// The purpose asked about.
    pub fn purpose(&self) -> Purpose {
        self.purpose
    }

    /// The validation time, RFC 3339.
    pub fn time(&self) -> &str {
        &self.time
    }

    /// The jurisdiction whose anchor the path validated to, if one did.
    pub fn anchor_jurisdiction(&self) -> Option<&str> {
        self.anchor_jurisdiction.as_deref()
    }

    /// The clause that decided: `MRA §recognition.<id>` or `MRA §self-recognition`.
    pub fn clause(&self) -> Option<&str> {
        self.clause.as_deref()
    }

    /// The highest assurance level the leaf's policies reach.
    pub fn level_reached(&self) -> Option<AssuranceLevel> {
        self.level_reached
    }

    /// The level the clause requires.
    pub fn level_required(&self) -> Option<AssuranceLevel> {
        self.level_required
    }

    /// The user-constrained policy set (RFC 5280 §6.1.6), anyPolicy removed.
    pub fn policies(&self) -> &[String] {
        &self.policies
    }

    /// The path, leaf first and trust anchor last (the closest candidate on failure).
    pub fn path(&self) -> &[CertRef] {
        &self.path
    }

    /// Every check, path validation first, then the MRA's.
    pub fn checks(&self) -> &[Check] {
        &self.checks
    }

    /// Why it is not recognized; `None` when recognized.
    pub fn reason(&self) -> Option<&Reason> {
        self.reason.as_ref()
    }
}

impl RecognitionVerdict {
    /// A verdict not (yet) recognized, with no evidence.
    fn new(agreement_id: &str, relying: &str, purpose: Purpose, time: UnixTime) -> Self {
        Self {
            recognized: false,
            agreement_id: agreement_id.to_owned(),
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
        }
    }

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

/// MRA §anchors: path validation to `issuer`'s anchors at `time` with the purpose's extended
/// key usages; revocation is required on every certificate when there are CRLs to check with.
fn validation_options(
    issuer: &Jurisdiction,
    purpose: Purpose,
    extra_crls: &[Vec<u8>],
    time: UnixTime,
) -> ValidationOptions {
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
    opts
}

/// Fills a verdict from a path-validation failure.
fn path_failure(verdict: &mut RecognitionVerdict, error: &PathError) {
    verdict.checks.extend(error.checks().iter().cloned());
    verdict.path = error.path().to_vec();
    let (check, recorded) = error.deciding_check();
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
