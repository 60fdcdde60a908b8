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

use std::collections::{HashMap, HashSet};

use x509_parser::der_parser::asn1_rs::{Any, Class, FromDer, Tag};
use x509_parser::extensions::{GeneralName as X509GeneralName, ParsedExtension};
use x509_parser::prelude::X509Extension;
use x509_parser::revocation_list::CertificateRevocationList;
use x509_parser::x509::AttributeTypeAndValue;

use crate::cert::{Attribute, Cert, DistributionPoint, DistributionPointName, GeneralName, Name};
use crate::signature::{self, SignatureAlgorithm, SignatureError};
use crate::time::UnixTime;
use crate::verdict::{Check, Outcome};

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

// CRL extensions (RFC 5280 §5.2) and CRL entry extensions (§5.3).
const OID_AUTHORITY_KEY_ID: &str = "2.5.29.35";
const OID_ISSUER_ALT_NAME: &str = "2.5.29.18";
const OID_CRL_NUMBER: &str = "2.5.29.20";
const OID_DELTA_CRL_INDICATOR: &str = "2.5.29.27";
const OID_ISSUING_DISTRIBUTION_POINT: &str = "2.5.29.28";
const OID_FRESHEST_CRL: &str = "2.5.29.46";
const OID_AUTHORITY_INFO_ACCESS: &str = "1.3.6.1.5.5.7.1.1";
const OID_REASON_CODE: &str = "2.5.29.21";
const OID_HOLD_INSTRUCTION_CODE: &str = "2.5.29.23";
const OID_INVALIDITY_DATE: &str = "2.5.29.24";
const OID_CERTIFICATE_ISSUER: &str = "2.5.29.29";
const OID_CRL_DISTRIBUTION_POINTS: &str = "2.5.29.31";

/// CRL extensions whose content this module processes or may safely ignore; any other critical
/// one makes the CRL unusable (RFC 5280 §5.2).
const CRL_EXTENSIONS_UNDERSTOOD: &[&str] = &[
    OID_AUTHORITY_KEY_ID,
    OID_ISSUER_ALT_NAME,
    OID_CRL_NUMBER,
    OID_DELTA_CRL_INDICATOR,
    OID_ISSUING_DISTRIBUTION_POINT,
    OID_FRESHEST_CRL,
    OID_AUTHORITY_INFO_ACCESS,
];

/// CRL entry extensions this module processes or may safely ignore; any other critical one
/// makes the whole CRL unusable (RFC 5280 §5.3).
const ENTRY_EXTENSIONS_UNDERSTOOD: &[&str] = &[
    OID_REASON_CODE,
    OID_HOLD_INSTRUCTION_CODE,
    OID_INVALIDITY_DATE,
    OID_CERTIFICATE_ISSUER,
];

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
                max: CRL_SET_LEN_MAX,
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
                max: CRL_ISSUERS_LEN_MAX,
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
    #[error("too many {what}: at most {max}")]
    TooMany {
        /// What overflowed.
        what: &'static str,
        /// The bound.
        max: usize,
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
        // Without CRLs there is nothing to read: skip re-parsing the certificate, which keeps
        // revocation checking free on the common path where no CRL is supplied.
        if set.crls.is_empty() {
            return Status::Unknown {
                claimed: false,
                detail: "no CRL was supplied".to_owned(),
            };
        }
        let mut distribution_points = match cert_distribution_points(cert) {
            Ok(points) => points,
            Err(why) => {
                return Status::Unknown {
                    claimed: true,
                    detail: format!("its cRLDistributionPoints cannot be read: {why}"),
                };
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
            return Status::Unknown {
                claimed,
                detail: format!(
                    "its cRLDistributionPoints names {} where only URIs are allowed (CABF BR \
                     §7.1.2.11.2)",
                    describe_name(name)
                ),
            };
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

        let mut reasons_mask: u16 = 0;
        let mut used = Vec::new();
        let mut problems: Vec<String> = Vec::new();

        for dp in &distribution_points {
            for crl in set.crls.iter().filter(|c| c.delta_base.is_none()) {
                let Some(interim) = self.scope(crl, cert, dp, &mut problems) else {
                    continue;
                };
                if let Err(why) = self.current(crl) {
                    problems.push(why);
                    continue;
                }
                let signer = match self.find_signer(crl, ancestors, visiting) {
                    Ok(signer) => signer,
                    Err(why) => {
                        problems.push(why);
                        continue;
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
                    return Status::Revoked {
                        detail: format!(
                            "serial {} is {kind} ({}) on {}",
                            hex::encode(cert.serial()),
                            reason_name(entry.reason),
                            source.describe()
                        ),
                    };
                }
                reasons_mask |= interim;
                let source = match delta {
                    Some(d) => format!("{} with {}", crl.describe(), d.describe()),
                    None => crl.describe(),
                };
                if !used.contains(&source) {
                    used.push(source);
                }
            }
        }

        // The same CRL can be reached through several distribution points.
        problems.sort();
        problems.dedup();
        if reasons_mask & ALL_REASONS == ALL_REASONS {
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

/// The issuing distribution point extension (RFC 5280 §5.2.5), owned.
#[derive(Clone, Debug)]
struct IssuingDistributionPoint {
    name: Option<DistributionPointName>,
    only_contains_user_certs: bool,
    only_contains_ca_certs: bool,
    only_some_reasons: Option<u16>,
    indirect: bool,
    only_contains_attribute_certs: bool,
}

/// One revoked certificate.
#[derive(Clone, Debug)]
struct Entry {
    /// The serial number's content octets, as in the certificate.
    serial: Vec<u8>,
    /// CRLReason.
    reason: Option<u8>,
    /// The certificate issuer in an indirect CRL; `None` means the CRL issuer.
    issuer: Option<Vec<GeneralName>>,
}

/// One CRL, parsed once into owned values.
#[derive(Clone, Debug)]
struct ParsedCrl {
    /// Position in the set, for the signature cache and explanations.
    index: usize,
    tbs: Vec<u8>,
    signature_algorithm: Result<SignatureAlgorithm, SignatureError>,
    signature: Vec<u8>,
    issuer: Name,
    this_update: UnixTime,
    next_update: Option<UnixTime>,
    /// cRLNumber content octets.
    crl_number: Option<Vec<u8>>,
    /// BaseCRLNumber of a delta CRL.
    delta_base: Option<Vec<u8>>,
    idp: Option<IssuingDistributionPoint>,
    /// The IDP extension value, compared byte for byte between a delta and its base.
    idp_der: Option<Vec<u8>>,
    entries: Vec<Entry>,
    /// Why the CRL may not be used at all.
    defect: Option<String>,
}

impl ParsedCrl {
    fn from_der(index: usize, der: &[u8]) -> Result<Self, CrlError> {
        let malformed = |detail: String| CrlError::Malformed { index, detail };
        let (rest, crl) =
            CertificateRevocationList::from_der(der).map_err(|e| malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(malformed(format!("{} trailing bytes", rest.len())));
        }
        let tbs = &crl.tbs_cert_list;
        let mut parsed = Self {
            index,
            tbs: tbs.as_ref().to_vec(),
            signature_algorithm: SignatureAlgorithm::from_x509(&crl.signature_algorithm),
            signature: crl.signature_value.data.to_vec(),
            issuer: Name::from_x509(&tbs.issuer),
            this_update: UnixTime(tbs.this_update.timestamp()),
            next_update: tbs.next_update.map(|t| UnixTime(t.timestamp())),
            crl_number: None,
            delta_base: None,
            idp: None,
            idp_der: None,
            entries: Vec::new(),
            defect: None,
        };
        let mut defects = Vec::new();
        // RFC 5280 §5.1.2.1: a CRL with extensions is version 2, and this module requires
        // the cRLNumber extension, so every usable CRL is version 2.
        if tbs.version.map(|v| v.0) != Some(1) {
            defects.push("not a version 2 CRL (RFC 5280 §5.1.2.1)".to_owned());
        }
        // RFC 5280 §5.1.1.2: the outer algorithm must equal the TBSCertList signature field.
        if crl.signature_algorithm.algorithm != tbs.signature.algorithm
            || crl.signature_algorithm.parameters.as_ref().map(|p| p.data)
                != tbs.signature.parameters.as_ref().map(|p| p.data)
        {
            defects.push("signatureAlgorithm differs from the TBSCertList signature".to_owned());
        }
        parsed.read_extensions(tbs.extensions(), &mut defects);
        if parsed.crl_number.is_none() {
            defects.push("no cRLNumber extension (RFC 5280 §5.2.3)".to_owned());
        }
        let indirect = parsed.idp.as_ref().is_some_and(|idp| idp.indirect);
        let mut current_issuer: Option<Vec<GeneralName>> = None;
        // Serials seen per run of entries that share a certificate issuer: a serial listed
        // twice for one issuer makes the CRL ambiguous (CABF servercert issue 589), so the
        // CRL is not used.
        let mut issuer_run = 0usize;
        let mut seen_serials: HashSet<(usize, Vec<u8>)> = HashSet::new();
        for revoked in &tbs.revoked_certificates {
            let mut reason = None;
            let mut seen = Vec::new();
            for ext in revoked.extensions() {
                let oid = ext.oid.to_id_string();
                if seen.contains(&oid) {
                    defects.push(format!("duplicate CRL entry extension {oid}"));
                }
                seen.push(oid.clone());
                match ext.parsed_extension() {
                    ParsedExtension::ParseError { error } => {
                        defects.push(format!("CRL entry extension {oid} is malformed: {error}"));
                    }
                    ParsedExtension::ReasonCode(code) => reason = Some(code.0),
                    _ => {}
                }
                if oid == OID_CERTIFICATE_ISSUER {
                    if !indirect {
                        // §5.3.3: only indirect CRLs name other certificate issuers.
                        defects
                            .push("certificateIssuer entry in a CRL that is not indirect".into());
                    }
                    match general_names(ext.value) {
                        Some(names) => {
                            current_issuer = Some(names);
                            issuer_run += 1;
                        }
                        None => defects.push("malformed certificateIssuer entry extension".into()),
                    }
                } else if ext.critical && !ENTRY_EXTENSIONS_UNDERSTOOD.contains(&oid.as_str()) {
                    defects.push(format!("unrecognized critical CRL entry extension {oid}"));
                }
            }
            let serial = canonical_integer(revoked.raw_serial()).to_vec();
            if !seen_serials.insert((issuer_run, serial.clone())) {
                defects.push(format!("serial {} is listed twice", hex::encode(&serial)));
            }
            parsed.entries.push(Entry {
                serial,
                reason,
                issuer: current_issuer.clone(),
            });
        }
        // One message per kind of defect, however many entries share it.
        defects.sort();
        defects.dedup();
        parsed.defect = (!defects.is_empty()).then(|| defects.join("; "));
        Ok(parsed)
    }

    fn read_extensions(&mut self, extensions: &[X509Extension<'_>], defects: &mut Vec<String>) {
        let mut seen = Vec::new();
        for ext in extensions {
            let oid = ext.oid.to_id_string();
            if seen.contains(&oid) {
                defects.push(format!("duplicate CRL extension {oid} (RFC 5280 §5.2)"));
            }
            seen.push(oid.clone());
            if let ParsedExtension::ParseError { error } = ext.parsed_extension() {
                defects.push(format!("CRL extension {oid} is malformed: {error}"));
                continue;
            }
            match oid.as_str() {
                OID_CRL_NUMBER => {
                    if ext.critical {
                        defects.push("cRLNumber is marked critical (RFC 5280 §5.2.3)".to_owned());
                    }
                    match unsigned_integer(ext.value) {
                        Some(n) => self.crl_number = Some(n),
                        None => defects.push("malformed cRLNumber".to_owned()),
                    }
                }
                OID_DELTA_CRL_INDICATOR => match unsigned_integer(ext.value) {
                    Some(n) => self.delta_base = Some(n),
                    None => defects.push("malformed deltaCRLIndicator".to_owned()),
                },
                OID_ISSUING_DISTRIBUTION_POINT => match issuing_distribution_point(ext.value) {
                    Ok(idp) => {
                        self.idp = Some(idp);
                        self.idp_der = Some(ext.value.to_vec());
                    }
                    Err(why) => defects.push(format!("malformed issuingDistributionPoint: {why}")),
                },
                _ if ext.critical && !CRL_EXTENSIONS_UNDERSTOOD.contains(&oid.as_str()) => {
                    defects.push(format!("unrecognized critical CRL extension {oid}"));
                }
                _ => {}
            }
        }
    }

    fn describe(&self) -> String {
        let kind = if self.delta_base.is_some() {
            "delta CRL"
        } else {
            "CRL"
        };
        match &self.crl_number {
            Some(n) => format!("{kind} #{} of {}", hex::encode(n), self.issuer),
            None => format!("{kind} of {}", self.issuer),
        }
    }
}

/// Content octets of a non-negative DER INTEGER.
fn unsigned_integer(der: &[u8]) -> Option<Vec<u8>> {
    let (rest, any) = Any::from_der(der).ok()?;
    if !rest.is_empty() || any.tag() != Tag::Integer || any.class() != Class::Universal {
        return None;
    }
    let data = any.data;
    if data.is_empty() || data[0] & 0x80 != 0 {
        return None;
    }
    Some(data.to_vec())
}

/// GeneralNames (a SEQUENCE OF GeneralName), as in the certificateIssuer entry extension.
fn general_names(der: &[u8]) -> Option<Vec<GeneralName>> {
    let (seq, rest) = element(der).ok()?;
    if !rest.is_empty() || expect(&seq, Class::Universal, Tag::Sequence.0, "GeneralNames").is_err()
    {
        return None;
    }
    general_names_content(seq.data).ok()
}

/// The certificate's cRLDistributionPoints (RFC 5280 §4.2.1.13), read from its DER here
/// rather than from the certificate view: x509-parser 0.18 silently drops a
/// nameRelativeToCRLIssuer (it parses the implicitly tagged SET as if it carried its own SET
/// header), and a dropped name would make distribution point matching guess.
fn cert_distribution_points(cert: &Cert) -> Result<Vec<DistributionPoint>, String> {
    let (_, x509) = x509_parser::parse_x509_certificate(cert.der()).map_err(|e| e.to_string())?;
    let Some(ext) = x509
        .tbs_certificate
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == OID_CRL_DISTRIBUTION_POINTS)
    else {
        return Ok(Vec::new());
    };
    let (seq, rest) = element(ext.value)?;
    expect(
        &seq,
        Class::Universal,
        Tag::Sequence.0,
        "DistributionPoints",
    )?;
    if !rest.is_empty() {
        return Err("trailing bytes after DistributionPoints".into());
    }
    let mut points = Vec::new();
    let mut input = seq.data;
    while !input.is_empty() {
        let (point, rest) = element(input)?;
        expect(
            &point,
            Class::Universal,
            Tag::Sequence.0,
            "DistributionPoint",
        )?;
        points.push(distribution_point(point.data)?);
        input = rest;
    }
    if points.is_empty() {
        return Err("empty cRLDistributionPoints".into());
    }
    Ok(points)
}

/// The fields of one DistributionPoint SEQUENCE.
fn distribution_point(mut input: &[u8]) -> Result<DistributionPoint, String> {
    let mut point = DistributionPoint {
        name: None,
        reasons: None,
        crl_issuer: None,
    };
    let mut last_tag = None;
    while !input.is_empty() {
        let (field, rest) = element(input)?;
        let tag = context_tag(&field)?;
        if last_tag.is_some_and(|last| tag <= last) {
            return Err("DistributionPoint fields out of order".into());
        }
        last_tag = Some(tag);
        match tag {
            0 => point.name = Some(distribution_point_name(field.data)?),
            1 => point.reasons = Some(reason_flags(field.data)?),
            2 => point.crl_issuer = Some(general_names_content(field.data)?),
            _ => return Err(format!("unexpected DistributionPoint field [{tag}]")),
        }
        input = rest;
    }
    if point.name.is_none() && point.crl_issuer.is_none() {
        // RFC 5280 §4.2.1.13: a DistributionPoint MUST NOT consist of only the reasons field.
        return Err("DistributionPoint without name or cRLIssuer".into());
    }
    Ok(point)
}

/// The issuingDistributionPoint extension value (RFC 5280 §5.2.5).
fn issuing_distribution_point(der: &[u8]) -> Result<IssuingDistributionPoint, String> {
    let (seq, rest) = element(der)?;
    expect(
        &seq,
        Class::Universal,
        Tag::Sequence.0,
        "IssuingDistributionPoint",
    )?;
    if !rest.is_empty() {
        return Err("trailing bytes".into());
    }
    let mut idp = IssuingDistributionPoint {
        name: None,
        only_contains_user_certs: false,
        only_contains_ca_certs: false,
        only_some_reasons: None,
        indirect: false,
        only_contains_attribute_certs: false,
    };
    let mut input = seq.data;
    let mut last_tag = None;
    while !input.is_empty() {
        let (field, rest) = element(input)?;
        let tag = context_tag(&field)?;
        if last_tag.is_some_and(|last| tag <= last) {
            return Err("fields out of order".into());
        }
        last_tag = Some(tag);
        match tag {
            0 => idp.name = Some(distribution_point_name(field.data)?),
            1 => idp.only_contains_user_certs = boolean(field.data)?,
            2 => idp.only_contains_ca_certs = boolean(field.data)?,
            3 => idp.only_some_reasons = Some(reason_flags(field.data)?),
            4 => idp.indirect = boolean(field.data)?,
            5 => idp.only_contains_attribute_certs = boolean(field.data)?,
            _ => return Err(format!("unexpected field [{tag}]")),
        }
        input = rest;
    }
    let scopes = [
        idp.only_contains_user_certs,
        idp.only_contains_ca_certs,
        idp.only_contains_attribute_certs,
    ];
    if scopes.iter().filter(|s| **s).count() > 1 {
        // RFC 5280 §5.2.5: at most one of the three may be TRUE.
        return Err("more than one onlyContains flag".into());
    }
    Ok(idp)
}

/// The content of the explicit [0] that holds a DistributionPointName CHOICE.
fn distribution_point_name(content: &[u8]) -> Result<DistributionPointName, String> {
    let (choice, rest) = element(content)?;
    if !rest.is_empty() {
        return Err("trailing bytes after DistributionPointName".into());
    }
    match context_tag(&choice)? {
        0 => Ok(DistributionPointName::FullName(general_names_content(
            choice.data,
        )?)),
        1 => {
            // nameRelativeToCRLIssuer [1] IMPLICIT RelativeDistinguishedName: the content is
            // the SET's content, one AttributeTypeAndValue after another.
            let mut input = choice.data;
            let mut attributes = Vec::new();
            while !input.is_empty() {
                let (rest, atv) = AttributeTypeAndValue::from_der(input)
                    .map_err(|e| format!("nameRelativeToCRLIssuer: {e}"))?;
                let value = atv.attr_value();
                attributes.push(Attribute {
                    oid: atv.attr_type().to_id_string(),
                    tag: value.tag().0,
                    universal: value.class() == Class::Universal,
                    value: value.data.to_vec(),
                });
                input = rest;
            }
            if attributes.is_empty() {
                return Err("empty nameRelativeToCRLIssuer".into());
            }
            Ok(DistributionPointName::RelativeToIssuer(attributes))
        }
        tag => Err(format!("unexpected DistributionPointName choice [{tag}]")),
    }
}

/// GeneralName after GeneralName, at least one (the content of an implicitly tagged
/// GeneralNames).
fn general_names_content(mut input: &[u8]) -> Result<Vec<GeneralName>, String> {
    let mut names = Vec::new();
    while !input.is_empty() {
        let (rest, name) =
            X509GeneralName::from_der(input).map_err(|e| format!("GeneralName: {e}"))?;
        names.push(general_name(&name));
        input = rest;
    }
    if names.is_empty() {
        return Err("empty GeneralNames".into());
    }
    Ok(names)
}

/// ReasonFlags from the content of an implicitly tagged BIT STRING: bit k of the result is
/// named bit k (0 = unused, 1 = keyCompromise, … 8 = aACompromise).
fn reason_flags(content: &[u8]) -> Result<u16, String> {
    let Some((unused, bytes)) = content.split_first() else {
        return Err("empty ReasonFlags".into());
    };
    if *unused > 7 || bytes.len() > 2 || (bytes.is_empty() && *unused != 0) {
        return Err("malformed ReasonFlags".into());
    }
    let mut flags = 0u16;
    for (k, byte) in bytes.iter().enumerate() {
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                flags |= 1 << (k * 8 + bit);
            }
        }
    }
    Ok(flags)
}

fn boolean(content: &[u8]) -> Result<bool, String> {
    match content {
        [0x00] => Ok(false),
        [0xff] => Ok(true),
        _ => Err("malformed BOOLEAN".into()),
    }
}

/// One DER element and the bytes after it.
fn element(input: &[u8]) -> Result<(Any<'_>, &[u8]), String> {
    let (rest, any) = Any::from_der(input).map_err(|e| e.to_string())?;
    Ok((any, rest))
}

fn expect(any: &Any<'_>, class: Class, tag: u32, what: &str) -> Result<(), String> {
    if any.class() == class && any.tag().0 == tag {
        Ok(())
    } else {
        Err(format!("expected {what}"))
    }
}

fn context_tag(any: &Any<'_>) -> Result<u32, String> {
    if any.class() == Class::ContextSpecific {
        Ok(any.tag().0)
    } else {
        Err("expected a context-specific field".into())
    }
}

/// The same mapping as the certificate parser's, for names read from CRLs.
fn general_name(name: &X509GeneralName<'_>) -> GeneralName {
    match name {
        X509GeneralName::OtherName(oid, _) => GeneralName::Other {
            oid: oid.to_id_string(),
        },
        X509GeneralName::RFC822Name(s) => GeneralName::Email((*s).to_owned()),
        X509GeneralName::DNSName(s) => GeneralName::Dns((*s).to_owned()),
        X509GeneralName::X400Address(_) => GeneralName::X400,
        X509GeneralName::DirectoryName(n) => GeneralName::Directory(Name::from_x509(n)),
        X509GeneralName::EDIPartyName(_) => GeneralName::EdiParty,
        X509GeneralName::URI(s) => GeneralName::Uri((*s).to_owned()),
        X509GeneralName::IPAddress(b) => GeneralName::Ip(b.to_vec()),
        X509GeneralName::RegisteredID(oid) => GeneralName::RegisteredId(oid.to_id_string()),
        X509GeneralName::Invalid(tag, _) => GeneralName::Invalid { tag: tag.0 },
    }
}

#[cfg(test)]
mod tests;
