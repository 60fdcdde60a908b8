//! Certificate revocation lists (RFC 5280 §5, §6.3).
//!
//! A [`CrlSet`] holds the CRLs a caller supplies, parsed once into owned values, and the
//! certificates that may have signed them besides the path itself (a CA's separate CRL-signing
//! key, the issuer of an indirect CRL). [`check_path`] runs the §6.3.3 algorithm for every
//! certificate of a validated path except the trust anchor:
//!
//! - a CRL is in scope for a certificate when its issuer is the certificate's issuer, or the
//!   cRLIssuer of one of the certificate's distribution points (then the CRL must be an indirect
//!   CRL), and its issuing distribution point matches the distribution point and the kind of
//!   certificate (§6.3.3(b));
//! - it is usable only when it is current at `now`, carries a cRLNumber, has no critical
//!   extension (CRL or entry) that this module does not process, and its signature verifies with
//!   the key of a CRL issuer that is itself valid: a certificate of the path above the one being
//!   checked, or a supplied certificate signed by one of those, within its validity, allowed to
//!   sign CRLs when it has keyUsage, and not itself revoked (§6.3.3(f), (g));
//! - a delta CRL (§5.2.4) is never used alone; it updates the complete CRL of the same issuer
//!   and scope whose number is at least its BaseCRLNumber, and removeFromCRL in it lifts a hold;
//! - the certificate's status is known once usable CRLs cover every revocation reason
//!   (onlySomeReasons, §6.3.3(d)); a revoked serial, including one on hold, is an error.
//!
//! Everything not understood makes a CRL unusable, never a certificate good: in
//! [`RevocationMode::Required`] an uncovered certificate fails, and in
//! [`RevocationMode::IfAvailable`] a certificate for which a CRL was supplied but none was
//! usable fails as well.

use std::collections::HashMap;

use self::parse::{Entry, ParsedCrl, cert_distribution_points};
use crate::cert::{Cert, DistributionPoint, DistributionPointName, GeneralName, Name};
use crate::signature::{self, SignatureError};
use crate::time::UnixTime;
use crate::verdict::{Check, Outcome};

mod parse;

/// Most CRLs one set holds: far above what an auditor or a test suite supplies, and a bound on
/// the work of every certificate check, which scans the whole set.
pub const CRL_SET_LEN_MAX: usize = 1024;

/// Most candidate CRL-issuer certificates one set holds (the untrusted pool of a chain).
pub const CRL_ISSUERS_LEN_MAX: usize = 1024;

/// How many CRL-issuer certificates may be validated inside one another: the issuer of a CRL
/// may need its own CRL, whose issuer may need one too. Real deployments use one level; PKITS
/// needs two. Deeper chains are refused (the CRL is not usable).
pub const CRL_ISSUER_DEPTH_MAX: usize = 3;

/// Most signature verifications one [`check_path`] call performs: every (CRL, signer) pair
/// costs one and results are cached. A hostile set of many same-named CRLs and issuers cannot
/// make a check slow; past the budget CRLs count as not usable.
pub const SIGNATURE_VERIFICATIONS_MAX: usize = 512;

/// CRLReason (RFC 5280 §5.3.1) values with a meaning here.
const REASON_CERTIFICATE_HOLD: u8 = 6;
const REASON_REMOVE_FROM_CRL: u8 = 8;

/// ReasonFlags bits 1 (keyCompromise) to 8 (aACompromise): the value of reasons_mask once the
/// status is known for every reason (RFC 5280 §6.3.2(a), §6.3.3).
const ALL_REASONS: u16 = 0x1fe;

/// How revocation is checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RevocationMode {
    /// No revocation checking.
    Off,
    /// Check each certificate for which a CRL was supplied (one issued by its issuer or by
    /// the cRLIssuer of one of its distribution points): usable CRLs must then give its
    /// status, so a stale, forged or out-of-scope CRL fails the certificate rather than being
    /// ignored. Certificates no supplied CRL speaks for pass.
    #[default]
    IfAvailable,
    /// Every certificate on the path (not the anchor) must be covered by a valid CRL (PKITS).
    Required,
}

/// A set of parsed CRLs supplied by the caller, with the certificates that may have signed
/// them.
#[derive(Clone, Debug, Default)]
pub struct CrlSet {
    crls: Vec<ParsedCrl>,
    issuers: Vec<Cert>,
    /// Whether the CA/Browser Forum rules for distribution points apply.
    cabf: bool,
}

impl CrlSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one DER-encoded CRL. A CRL that parses but breaks a rule (an unknown critical
    /// extension, no cRLNumber) is kept and reported as unusable when it is in scope.
    pub fn add_der(&mut self, der: &[u8]) -> Result<(), CrlError> {
        let index = self.crls.len();
        if index >= CRL_SET_LEN_MAX {
            return Err(CrlError::TooMany {
                what: "CRLs",
                len_max: CRL_SET_LEN_MAX,
            });
        }
        self.crls.push(ParsedCrl::from_der(index, der)?);
        Ok(())
    }

    /// Adds a certificate that may have signed some of the CRLs without being on the path: a
    /// CA's separate CRL-signing certificate or the issuer of an indirect CRL (RFC 5280
    /// §6.3.3(f)). It is trusted only after it is validated against the path. Callers pass
    /// the untrusted intermediates here.
    pub fn add_issuer(&mut self, cert: Cert) -> Result<(), CrlError> {
        if self.issuers.len() >= CRL_ISSUERS_LEN_MAX {
            return Err(CrlError::TooMany {
                what: "CRL issuer certificates",
                len_max: CRL_ISSUERS_LEN_MAX,
            });
        }
        if !self.issuers.iter().any(|c| c.sha256() == cert.sha256()) {
            self.issuers.push(cert);
        }
        Ok(())
    }

    /// Adds a DER-encoded candidate CRL-issuer certificate (see [`CrlSet::add_issuer`]).
    pub fn add_issuer_der(&mut self, der: &[u8]) -> Result<(), CrlError> {
        let cert = Cert::from_der(der).map_err(|e| CrlError::Malformed {
            index: self.issuers.len(),
            detail: format!("CRL issuer certificate: {e}"),
        })?;
        self.add_issuer(cert)
    }

    /// Applies, on top of RFC 5280, the CA/Browser Forum Baseline Requirements' rules for
    /// CRL distribution points, for web-PKI validation: a certificate's distribution point
    /// and a partitioned CRL's issuing distribution point name URIs only (BR §7.1.2.11.2,
    /// §7.2.2.1), and a partitioned CRL is never indirect (BR §7.2.2.1). A CRL or certificate
    /// that breaks them gives no revocation status. Off by default: PKITS and private PKIs
    /// use directory names.
    pub fn set_cabf_rules(&mut self, on: bool) {
        self.cabf = on;
    }

    /// True when no CRL was supplied.
    pub fn is_empty(&self) -> bool {
        self.crls.is_empty()
    }

    /// The number of CRLs.
    pub fn len(&self) -> usize {
        self.crls.len()
    }
}

/// Why revocation checking rejected a certificate.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CrlError {
    /// A supplied CRL or issuer certificate does not parse.
    #[error("CRL input {index} is malformed: {detail}")]
    Malformed {
        /// Position of the input in the order it was added.
        index: usize,
        /// What failed to parse.
        detail: String,
    },
    /// The certificate at `index` (0 = leaf) is revoked.
    #[error("certificate {index} is revoked")]
    Revoked {
        /// Path position, 0 = leaf.
        index: usize,
    },
    /// No usable CRL gives the status of the certificate for every reason.
    #[error("revocation status of certificate {index} is unknown: {detail}")]
    StatusUnknown {
        /// Path position, 0 = leaf.
        index: usize,
        /// Why no CRL decided it.
        detail: String,
    },
    /// A set bound was reached.
    #[error("too many {what}: at most {len_max}")]
    TooMany {
        /// What overflowed.
        what: &'static str,
        /// The bound.
        len_max: usize,
    },
}

/// Checks every certificate of `path` (leaf first; the last element is the trust anchor, which
/// is not itself checked) against `crls` at `now`, appending one check per certificate.
pub fn check_path(
    path: &[&Cert],
    crls: &CrlSet,
    now: UnixTime,
    mode: RevocationMode,
    checks: &mut Vec<Check>,
) -> Result<(), CrlError> {
    check_path_within(path, crls, now, mode, checks, SIGNATURE_VERIFICATIONS_MAX)
}

/// [`check_path`] with an explicit signature budget (tests use a small one).
fn check_path_within(
    path: &[&Cert],
    crls: &CrlSet,
    now: UnixTime,
    mode: RevocationMode,
    checks: &mut Vec<Check>,
    budget: usize,
) -> Result<(), CrlError> {
    let checked = path.len().saturating_sub(1);
    if mode == RevocationMode::Off {
        for (index, cert) in path.iter().take(checked).enumerate() {
            checks.push(not_applicable(cert, index, "revocation checking is off"));
        }
        return Ok(());
    }
    let mut ctx = Context {
        set: crls,
        now,
        mode,
        verified: HashMap::new(),
        budget,
    };
    for (index, cert) in path.iter().take(checked).enumerate() {
        let ancestors = path.get(index + 1..).unwrap_or_default();
        let mut visiting = Vec::new();
        match ctx.status(cert, ancestors, &mut visiting) {
            Status::Good { detail } => {
                checks.push(Check::pass(
                    "RFC 5280 §6.3.3",
                    "revocation",
                    Some(cert.cert_ref(index)),
                    detail,
                ));
            }
            Status::Revoked { detail } => {
                checks.push(Check::fail(
                    "RFC 5280 §6.3.3(i)",
                    "revocation",
                    Some(cert.cert_ref(index)),
                    detail,
                ));
                return Err(CrlError::Revoked { index });
            }
            Status::Unknown { claimed, detail } => {
                if mode == RevocationMode::IfAvailable && !claimed {
                    checks.push(not_applicable(
                        cert,
                        index,
                        "no CRL was supplied for its issuer",
                    ));
                    continue;
                }
                checks.push(Check::fail(
                    "RFC 5280 §6.3.3(k)",
                    "revocation",
                    Some(cert.cert_ref(index)),
                    detail.clone(),
                ));
                return Err(CrlError::StatusUnknown { index, detail });
            }
        }
    }
    Ok(())
}

fn not_applicable(cert: &Cert, index: usize, detail: &str) -> Check {
    Check {
        rule: "RFC 5280 §6.3".to_owned(),
        name: "revocation".to_owned(),
        cert: Some(cert.cert_ref(index)),
        outcome: Outcome::NotApplicable,
        detail: detail.to_owned(),
    }
}

/// What the CRLs say about one certificate.
enum Status {
    /// Every reason is covered and no usable CRL lists it.
    Good { detail: String },
    /// A usable CRL lists it.
    Revoked { detail: String },
    /// Not every reason is covered. `claimed` tells whether any supplied CRL names its issuer.
    Unknown { claimed: bool, detail: String },
}

/// What the usable CRLs consulted for one certificate cover so far.
#[derive(Default)]
struct Coverage {
    /// The revocation reasons covered (ReasonFlags bits, §6.3.3(d)).
    reasons_mask: u16,
    /// The CRLs (with their deltas) used, described, each once.
    used: Vec<String>,
    /// Why in-scope CRLs could not be used.
    problems: Vec<String>,
}

impl Coverage {
    /// The status once every CRL was consulted and none lists the certificate.
    fn status(mut self, cert: &Cert, claimed: bool) -> Status {
        // The same CRL can be reached through several distribution points.
        self.problems.sort();
        self.problems.dedup();
        let (used, problems) = (self.used, self.problems);
        if self.reasons_mask & ALL_REASONS == ALL_REASONS {
            return Status::Good {
                detail: format!("not revoked according to {}", used.join(", ")),
            };
        }
        let detail = if used.is_empty() && problems.is_empty() {
            format!("no CRL covers it (issuer {})", cert.issuer())
        } else if used.is_empty() {
            format!("no usable CRL covers it: {}", problems.join("; "))
        } else {
            format!(
                "the usable CRLs ({}) do not cover every revocation reason{}",
                used.join(", "),
                if problems.is_empty() {
                    String::new()
                } else {
                    format!("; {}", problems.join("; "))
                }
            )
        };
        Status::Unknown { claimed, detail }
    }
}

/// State of one [`check_path`] call.
struct Context<'a> {
    set: &'a CrlSet,
    now: UnixTime,
    mode: RevocationMode,
    /// Signature results by (CRL index, signer SHA-256).
    verified: HashMap<(usize, [u8; 32]), Result<(), String>>,
    /// Signature verifications left.
    budget: usize,
}

impl<'a> Context<'a> {
    /// RFC 5280 §6.3.3 for `cert`, whose validated issuers are `ancestors` (nearest first).
    /// `visiting` lists the CRL-issuer certificates being validated around this call.
    fn status(&mut self, cert: &Cert, ancestors: &[&Cert], visiting: &mut Vec<Cert>) -> Status {
        let set = self.set;
        let (distribution_points, claimed) = match self.distribution_points(cert) {
            Ok(found) => found,
            Err(unknown) => return unknown,
        };
        let mut coverage = Coverage::default();
        for dp in &distribution_points {
            for crl in set.crls.iter().filter(|c| c.delta_base.is_none()) {
                let revoked = self.consult(crl, cert, dp, ancestors, visiting, &mut coverage);
                if let Some(revoked) = revoked {
                    return revoked;
                }
            }
        }
        coverage.status(cert, claimed)
    }

    /// The distribution points `cert`'s CRLs are looked up under, and whether any supplied CRL
    /// names its issuer; the status itself when it is unknown before any CRL is read.
    fn distribution_points(&self, cert: &Cert) -> Result<(Vec<DistributionPoint>, bool), Status> {
        let set = self.set;
        // Without CRLs there is nothing to read: skip re-parsing the certificate, which keeps
        // revocation checking free on the common path where no CRL is supplied.
        if set.crls.is_empty() {
            return Err(Status::Unknown {
                claimed: false,
                detail: "no CRL was supplied".to_owned(),
            });
        }
        let mut distribution_points = match cert_distribution_points(cert) {
            Ok(points) => points,
            Err(why) => {
                return Err(Status::Unknown {
                    claimed: true,
                    detail: format!("its cRLDistributionPoints cannot be read: {why}"),
                });
            }
        };
        let claimed = set
            .crls
            .iter()
            .any(|crl| crl_names_cert_authority(crl, cert, &distribution_points));
        if set.cabf
            && let Some(name) = distribution_points
                .iter()
                .find_map(|dp| dp.name.as_ref().filter(|n| !uris_only(n)))
        {
            return Err(Status::Unknown {
                claimed,
                detail: format!(
                    "its cRLDistributionPoints names {} where only URIs are allowed (CABF BR \
                     §7.1.2.11.2)",
                    describe_name(name)
                ),
            });
        }
        // §6.3.3: CRLs not named by a distribution point but issued by the certificate issuer
        // are tried as if from a distribution point named by the issuer, with every reason.
        distribution_points.push(DistributionPoint {
            name: Some(DistributionPointName::FullName(vec![
                GeneralName::Directory(cert.issuer().clone()),
            ])),
            reasons: None,
            crl_issuer: None,
        });
        Ok((distribution_points, claimed))
    }

    /// §6.3.3(a)-(j) for one complete CRL through one distribution point: `Some(Revoked)`
    /// when it (or its delta) lists `cert`; otherwise the reasons it covers, or why it is not
    /// usable, go into `coverage`.
    fn consult(
        &mut self,
        crl: &'a ParsedCrl,
        cert: &Cert,
        dp: &DistributionPoint,
        ancestors: &[&Cert],
        visiting: &mut Vec<Cert>,
        coverage: &mut Coverage,
    ) -> Option<Status> {
        let interim = self.scope(crl, cert, dp, &mut coverage.problems)?;
        if let Err(why) = self.current(crl) {
            coverage.problems.push(why);
            return None;
        }
        let signer = match self.find_signer(crl, ancestors, visiting) {
            Ok(signer) => signer,
            Err(why) => {
                coverage.problems.push(why);
                return None;
            }
        };
        let delta = self.find_delta(crl, &signer);
        // §6.3.3(h)-(j): the delta CRL speaks first; removeFromCRL lifts a hold.
        let entry = delta
            .and_then(|d| find_entry(d, cert).map(|e| (d, e)))
            .or_else(|| find_entry(crl, cert).map(|e| (crl, e)));
        if let Some((source, entry)) = entry
            && entry.reason != Some(REASON_REMOVE_FROM_CRL)
        {
            let kind = if entry.reason == Some(REASON_CERTIFICATE_HOLD) {
                "on hold"
            } else {
                "revoked"
            };
            return Some(Status::Revoked {
                detail: format!(
                    "serial {} is {kind} ({}) on {}",
                    hex::encode(cert.serial()),
                    reason_name(entry.reason),
                    source.describe()
                ),
            });
        }
        coverage.reasons_mask |= interim;
        let source = match delta {
            Some(d) => format!("{} with {}", crl.describe(), d.describe()),
            None => crl.describe(),
        };
        if !coverage.used.contains(&source) {
            coverage.used.push(source);
        }
        None
    }

    /// §6.3.3(b), (d): whether `crl` is in scope for `cert` through `dp`, and the reasons it
    /// covers. Out-of-scope CRLs are skipped silently; in-scope CRLs that break a rule are
    /// noted in `problems`.
    fn scope(
        &self,
        crl: &ParsedCrl,
        cert: &Cert,
        dp: &DistributionPoint,
        problems: &mut Vec<String>,
    ) -> Option<u16> {
        // (b)(1): the CRL issuer is the cRLIssuer of the distribution point, in which case
        // the CRL must say it is indirect, or else the certificate issuer.
        let issuer_matches = match &dp.crl_issuer {
            Some(names) => {
                names.contains(&GeneralName::Directory(crl.issuer.clone()))
                    && crl.idp.as_ref().is_some_and(|idp| idp.indirect)
            }
            None => crl.issuer == *cert.issuer(),
        };
        if !issuer_matches {
            return None;
        }
        if let Some(defect) = &crl.defect {
            problems.push(format!("{} is not usable: {defect}", crl.describe()));
            return None;
        }
        if self.set.cabf
            && let Some(idp) = &crl.idp
            && (idp.indirect || idp.name.as_ref().is_some_and(|n| !uris_only(n)))
        {
            problems.push(format!(
                "{} is a partitioned CRL that is indirect or names more than URIs (CABF BR \
                 §7.2.2.1)",
                crl.describe()
            ));
            return None;
        }
        let mut interim = dp.reasons.unwrap_or(ALL_REASONS) & ALL_REASONS;
        if let Some(idp) = &crl.idp {
            // (b)(2)(i): a distribution point name in the CRL must match the certificate's.
            if let Some(idp_name) = &idp.name {
                let idp_names = full_names(idp_name, &crl.issuer);
                let dp_names = match (&dp.name, &dp.crl_issuer) {
                    (Some(name), issuers) => {
                        let base = issuers
                            .as_deref()
                            .and_then(first_directory_name)
                            .unwrap_or_else(|| cert.issuer().clone());
                        full_names(name, &base)
                    }
                    (None, Some(issuers)) => issuers.clone(),
                    (None, None) => Vec::new(),
                };
                if !idp_names.iter().any(|n| dp_names.contains(n)) {
                    return None;
                }
            }
            // (b)(2)(ii)-(iv): the kind of certificate the CRL covers.
            if idp.only_contains_attribute_certs
                || (idp.only_contains_user_certs && cert.is_ca())
                || (idp.only_contains_ca_certs && !cert.is_ca())
            {
                return None;
            }
            // (d): onlySomeReasons narrows the reasons.
            if let Some(reasons) = idp.only_some_reasons {
                interim &= reasons;
            }
        }
        (interim != 0).then_some(interim)
    }

    /// §6.3.3(a): the CRL is current at `now`.
    fn current(&self, crl: &ParsedCrl) -> Result<(), String> {
        if crl.this_update > self.now {
            return Err(format!(
                "{} is not yet valid (thisUpdate {})",
                crl.describe(),
                crl.this_update
            ));
        }
        match crl.next_update {
            Some(next) if next < self.now => Err(format!(
                "{} is out of date (nextUpdate {next})",
                crl.describe()
            )),
            _ => Ok(()),
        }
    }

    /// §6.3.3(f), (g): a valid certificate whose key verifies the CRL signature. Path
    /// certificates above the one being checked come first, then certificates being validated
    /// around this call (a CRL issuer covered by its own indirect CRL), then supplied
    /// candidates, each validated here.
    fn find_signer(
        &mut self,
        crl: &ParsedCrl,
        ancestors: &[&Cert],
        visiting: &mut Vec<Cert>,
    ) -> Result<Cert, String> {
        let mut tried = Vec::new();
        for candidate in ancestors.iter().copied().chain(visiting.iter()) {
            if candidate.subject() != &crl.issuer {
                continue;
            }
            if !candidate.may_sign_crls() {
                tried.push(format!(
                    "{} lacks keyUsage cRLSign (RFC 5280 §6.3.3(f))",
                    candidate.subject()
                ));
                continue;
            }
            match self.verify(crl, candidate) {
                Ok(()) => return Ok(candidate.clone()),
                Err(why) => tried.push(why),
            }
        }
        let set = self.set;
        for candidate in &set.issuers {
            if candidate.subject() != &crl.issuer
                || ancestors.iter().any(|a| a.sha256() == candidate.sha256())
                || visiting.iter().any(|v| v.sha256() == candidate.sha256())
            {
                continue;
            }
            if !candidate.may_sign_crls() {
                tried.push(format!(
                    "{} lacks keyUsage cRLSign (RFC 5280 §6.3.3(f))",
                    candidate.subject()
                ));
                continue;
            }
            // Cheap test first: the candidate's key must verify the CRL before its own
            // certificate is worth validating.
            if self.verify(crl, candidate).is_err() {
                continue;
            }
            match self.validate_issuer(candidate, ancestors, visiting) {
                Ok(()) => return Ok(candidate.clone()),
                Err(why) => tried.push(why),
            }
        }
        if tried.is_empty() {
            tried.push(format!("no certificate for its issuer {}", crl.issuer));
        }
        Err(format!(
            "{} has no valid signer: {}",
            crl.describe(),
            tried.join("; ")
        ))
    }

    /// Validates a supplied CRL-issuer certificate: issued and signed by a path certificate
    /// above the one being checked, current, free of defects and unknown critical extensions,
    /// and not revoked itself.
    fn validate_issuer(
        &mut self,
        candidate: &Cert,
        ancestors: &[&Cert],
        visiting: &mut Vec<Cert>,
    ) -> Result<(), String> {
        let name = candidate.subject().to_string();
        if visiting.len() >= CRL_ISSUER_DEPTH_MAX {
            return Err(format!(
                "CRL issuer {name} is nested deeper than {CRL_ISSUER_DEPTH_MAX} levels"
            ));
        }
        if !candidate.defects().is_empty()
            || !candidate.unrecognized_critical_extensions().is_empty()
        {
            return Err(format!(
                "CRL issuer {name} has defects or unknown critical extensions"
            ));
        }
        if candidate.not_before() > self.now || candidate.not_after() < self.now {
            return Err(format!("CRL issuer {name} is outside its validity period"));
        }
        let mut position = None;
        for (index, ancestor) in ancestors.iter().enumerate() {
            if ancestor.subject() != candidate.issuer() {
                continue;
            }
            // Certificate signatures share the budget with CRL signatures, so a pool of
            // look-alike issuers cannot multiply the work.
            self.budget = self
                .budget
                .checked_sub(1)
                .ok_or_else(|| "signature verification budget exhausted".to_owned())?;
            if signature::verify_cert_signed_by(candidate, ancestor).is_ok() {
                position = Some(index);
                break;
            }
        }
        let Some(position) = position else {
            return Err(format!(
                "CRL issuer {name} is not signed by a certificate of the path"
            ));
        };
        let issuers = ancestors.get(position..).unwrap_or_default();
        visiting.push(candidate.clone());
        let status = self.status(candidate, issuers, visiting);
        visiting.pop();
        match status {
            Status::Good { .. } => Ok(()),
            Status::Unknown { claimed: false, .. } if self.mode == RevocationMode::IfAvailable => {
                Ok(())
            }
            Status::Revoked { detail } => Err(format!("CRL issuer {name}: {detail}")),
            Status::Unknown { detail, .. } => Err(format!("CRL issuer {name}: {detail}")),
        }
    }

    /// The newest usable delta CRL for `complete`: same issuer and signer, same scope,
    /// BaseCRLNumber at most the complete CRL's number and a number above it (RFC 5280
    /// §5.2.4, §6.3.3(c)). Unusable deltas are ignored: the complete CRL alone is current.
    fn find_delta(&mut self, complete: &ParsedCrl, signer: &Cert) -> Option<&'a ParsedCrl> {
        let set: &'a CrlSet = self.set;
        let complete_number = complete.crl_number.as_deref()?;
        let mut best: Option<&'a ParsedCrl> = None;
        for delta in &set.crls {
            let Some(base) = delta.delta_base.as_deref() else {
                continue;
            };
            let Some(number) = delta.crl_number.as_deref() else {
                continue;
            };
            let usable = delta.defect.is_none()
                && delta.issuer == complete.issuer
                && delta.idp_der == complete.idp_der
                && compare_numbers(base, complete_number).is_le()
                && compare_numbers(number, complete_number).is_gt()
                && self.current(delta).is_ok()
                && best.is_none_or(|b| {
                    b.crl_number
                        .as_deref()
                        .is_none_or(|n| compare_numbers(number, n).is_gt())
                });
            if usable && self.verify(delta, signer).is_ok() {
                best = Some(delta);
            }
        }
        best
    }

    /// Verifies `crl`'s signature with `signer`'s key, with caching and a budget. The error
    /// says why, for the explanation.
    fn verify(&mut self, crl: &ParsedCrl, signer: &Cert) -> Result<(), String> {
        let key = (crl.index, signer.sha256());
        if let Some(result) = self.verified.get(&key) {
            return result.clone();
        }
        let Some(left) = self.budget.checked_sub(1) else {
            return Err("signature verification budget exhausted".to_owned());
        };
        self.budget = left;
        let result = crl
            .signature_algorithm
            .as_ref()
            .map_err(Clone::clone)
            .and_then(|algorithm| {
                signature::verify_signed_by(algorithm, &crl.tbs, &crl.signature, signer.spki())
            })
            .map_err(|e| match e {
                SignatureError::BadSignature { .. } => {
                    format!("signature does not verify with {}", signer.subject())
                }
                other => format!(
                    "signature cannot be checked with {}: {other}",
                    signer.subject()
                ),
            });
        self.verified.insert(key, result.clone());
        result
    }
}

/// True when `crl` is issued by the certificate's issuer or by the cRLIssuer of one of its
/// distribution points: the caller supplied revocation information for this certificate.
fn crl_names_cert_authority(crl: &ParsedCrl, cert: &Cert, dps: &[DistributionPoint]) -> bool {
    crl.issuer == *cert.issuer()
        || dps.iter().any(|dp| {
            dp.crl_issuer
                .as_ref()
                .is_some_and(|names| names.contains(&GeneralName::Directory(crl.issuer.clone())))
        })
}

/// The entry of `crl` for `cert`: same serial, and issued by the certificate's issuer (the CRL
/// issuer unless a certificateIssuer entry extension says otherwise, RFC 5280 §5.3.3).
fn find_entry<'c>(crl: &'c ParsedCrl, cert: &Cert) -> Option<&'c Entry> {
    crl.entries.iter().find(|entry| {
        entry.serial == canonical_integer(cert.serial())
            && match &entry.issuer {
                None => crl.issuer == *cert.issuer(),
                Some(names) => names.contains(&GeneralName::Directory(cert.issuer().clone())),
            }
    })
}

/// The minimal two's-complement form of INTEGER content octets: redundant leading 0x00 or
/// 0xFF octets removed. DER already requires it; comparing canonical forms means a CA that
/// encodes a serial with extra octets in its CRL still revokes the certificate.
fn canonical_integer(mut bytes: &[u8]) -> &[u8] {
    while let [first, second, ..] = bytes {
        let redundant =
            (*first == 0x00 && second & 0x80 == 0) || (*first == 0xff && second & 0x80 != 0);
        if !redundant {
            break;
        }
        bytes = &bytes[1..];
    }
    bytes
}

/// A distribution point name as GeneralNames: a relative name is appended to `base`.
fn full_names(name: &DistributionPointName, base: &Name) -> Vec<GeneralName> {
    match name {
        DistributionPointName::FullName(names) => names.clone(),
        DistributionPointName::RelativeToIssuer(rdn) => {
            vec![GeneralName::Directory(base.with_rdn_appended(rdn))]
        }
    }
}

fn first_directory_name(names: &[GeneralName]) -> Option<Name> {
    names.iter().find_map(|n| match n {
        GeneralName::Directory(name) => Some(name.clone()),
        _ => None,
    })
}

/// True for a fullName made of URIs only.
fn uris_only(name: &DistributionPointName) -> bool {
    match name {
        DistributionPointName::FullName(names) => {
            names.iter().all(|n| matches!(n, GeneralName::Uri(_)))
        }
        DistributionPointName::RelativeToIssuer(_) => false,
    }
}

fn describe_name(name: &DistributionPointName) -> String {
    match name {
        DistributionPointName::FullName(names) => names
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        DistributionPointName::RelativeToIssuer(_) => "a nameRelativeToCRLIssuer".to_owned(),
    }
}

/// Compares two unsigned big-endian integers given as content octets.
fn compare_numbers(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let strip = |x: &[u8]| -> Vec<u8> {
        let first = x.iter().position(|b| *b != 0).unwrap_or(x.len());
        x.get(first..).unwrap_or_default().to_vec()
    };
    let (a, b) = (strip(a), strip(b));
    a.len().cmp(&b.len()).then_with(|| a.cmp(&b))
}

fn reason_name(reason: Option<u8>) -> &'static str {
    match reason {
        None => "no reason code",
        Some(0) => "unspecified",
        Some(1) => "keyCompromise",
        Some(2) => "cACompromise",
        Some(3) => "affiliationChanged",
        Some(4) => "superseded",
        Some(5) => "cessationOfOperation",
        Some(REASON_CERTIFICATE_HOLD) => "certificateHold",
        Some(REASON_REMOVE_FROM_CRL) => "removeFromCRL",
        Some(9) => "privilegeWithdrawn",
        Some(10) => "aACompromise",
        Some(_) => "unknown reason",
    }
}

#[cfg(test)]
mod tests;
