//! RFC 5280 §6.1 basic path validation over one candidate path, and [`verify_chain`], which
//! builds candidate paths (backtracking over the intermediate pool, within [`Budget`]) and
//! returns the first that validates.
//!
//! The trust anchor is a certificate. Its own validity, critical extensions, basic
//! constraints, key usage and name constraints are enforced as those of a CA on the path (RFC
//! 5937 trust-anchor constraints), which is what x509-limbo and the web PKI expect.

use crate::cert::{Cert, KeyUsage};
use crate::crl::{CrlSet, RevocationMode};
use crate::error::Error;
use crate::name_constraints::{ConstraintState, subject_names};
use crate::path::{self, Candidate};
pub use crate::path::{Budget, CHAIN_DEPTH_MAX, PATH_ATTEMPTS_MAX, SIGNATURE_CHECKS_MAX};
use crate::policy::{PolicyOutcome, PolicySettings};
pub use crate::profile::{PeerName, Profile};
use crate::profile::{
    Role, check_common_name, check_leaf_eku, check_peer_name, check_signature_pairing,
    check_webpki_cert,
};
use crate::time::UnixTime;
use std::sync::OnceLock;

use crate::verdict::{CertRef, Check, Outcome};

/// Longest serial number, in octets (RFC 5280 §4.1.2.2: "Conforming CAs MUST NOT use
/// serialNumber values longer than 20 octets").
pub const SERIAL_LEN_MAX: usize = 20;

/// What the relying party asks of a chain.
#[derive(Clone, Debug)]
pub struct ValidationOptions {
    /// The validation time (RFC 5280 §6.1.1(b)).
    pub time: UnixTime,
    /// Extended key usages the leaf must permit; any one suffices; empty means none required.
    pub required_ekus: Vec<String>,
    /// keyUsage bits ([`KeyUsage`] constants) the leaf must assert when it has keyUsage.
    pub required_key_usage: u16,
    /// The identity the leaf must carry.
    pub peer_name: Option<PeerName>,
    /// Policy inputs (RFC 5280 §6.1.1(c), (e)-(g)).
    pub policy: PolicySettings,
    /// How revocation is checked.
    pub revocation: RevocationMode,
    /// Most certificates on a path, leaf and anchor included (capped at
    /// [`CHAIN_DEPTH_MAX`]).
    pub chain_depth_max: usize,
    /// Most intermediates that are not self-issued (x509-limbo's `max_chain_depth`); `None`
    /// leaves only `chain_depth_max`.
    pub intermediates_max: Option<usize>,
    /// Rule set on top of RFC 5280.
    pub profile: Profile,
    /// Bounds on the path search.
    pub budget: Budget,
}

impl ValidationOptions {
    /// RFC 5280 validation at `time` with no EKU, key usage or name requirement, default
    /// policy settings, CRLs checked when supplied, and the default bounds.
    pub fn new(time: UnixTime) -> Self {
        Self {
            time,
            required_ekus: Vec::new(),
            required_key_usage: 0,
            peer_name: None,
            policy: PolicySettings::default(),
            revocation: RevocationMode::IfAvailable,
            chain_depth_max: CHAIN_DEPTH_MAX,
            intermediates_max: None,
            profile: Profile::Rfc5280,
            budget: Budget::default(),
        }
    }
}

/// A path that validated. Built only inside this crate.
#[derive(Clone, Debug)]
pub struct ValidatedPath {
    path: Vec<CertRef>,
    anchor_index: usize,
    policy: PolicyOutcome,
    recorded: Vec<Recorded>,
    /// `recorded` with each certificate position resolved to its [`CertRef`], built on first
    /// read: a caller that only needs the outcome (a TLS handshake, a cache fill) does not pay
    /// for copying every certificate's reference into every check.
    checks: OnceLock<Vec<Check>>,
}

impl ValidatedPath {
    fn new(
        path: Vec<CertRef>,
        anchor_index: usize,
        policy: PolicyOutcome,
        recorded: Vec<Recorded>,
    ) -> Self {
        Self {
            path,
            anchor_index,
            policy,
            recorded,
            checks: OnceLock::new(),
        }
    }

    /// The chosen path, leaf first, trust anchor last.
    pub fn path(&self) -> &[CertRef] {
        &self.path
    }

    /// The index of the trust anchor in the `anchors` slice given to [`verify_chain`].
    pub fn anchor_index(&self) -> usize {
        self.anchor_index
    }

    /// The policy sets that came out of RFC 5280 §6.1.6.
    pub fn policy(&self) -> &PolicyOutcome {
        &self.policy
    }

    /// Every check that ran, in order.
    pub fn checks(&self) -> &[Check] {
        self.checks.get_or_init(|| {
            self.recorded
                .iter()
                .map(|r| r.to_check(&self.path))
                .collect()
        })
    }
}

/// Why no path validated: the most specific error among the candidates tried. Boxed, so a
/// `Result` carrying it stays small.
#[derive(Clone, Debug)]
pub struct PathError(Box<PathErrorInner>);

#[derive(Clone, Debug)]
struct PathErrorInner {
    error: Error,
    cert: Option<CertRef>,
    path: Vec<CertRef>,
    checks: Vec<Check>,
}

impl PathError {
    pub(crate) fn new(
        error: Error,
        cert: Option<CertRef>,
        path: Vec<CertRef>,
        checks: Vec<Check>,
    ) -> Self {
        Self(Box::new(PathErrorInner {
            error,
            cert,
            path,
            checks,
        }))
    }

    /// The rule that was broken.
    pub fn error(&self) -> &Error {
        &self.0.error
    }

    /// The certificate the error is about, if it concerns one.
    pub fn cert(&self) -> Option<&CertRef> {
        self.0.cert.as_ref()
    }

    /// The candidate path that came closest, leaf first.
    pub fn path(&self) -> &[CertRef] {
        &self.0.path
    }

    /// The checks that ran on that path, up to and including the failure.
    pub fn checks(&self) -> &[Check] {
        &self.0.checks
    }

    /// The deciding failure as a check (the rule, the certificate, this error's text), and
    /// whether [`PathError::checks`] already holds a failed check of that rule (a failure found
    /// while building the path, before any check ran, is not among them).
    pub(crate) fn deciding_check(&self) -> (Check, bool) {
        let rule = self.0.error.rule();
        let recorded = self
            .0
            .checks
            .iter()
            .any(|c| c.outcome == Outcome::Fail && c.rule == rule);
        let check = Check::fail(
            rule,
            "path-validation",
            self.0.cert.clone(),
            self.to_string(),
        );
        (check, recorded)
    }
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0.cert {
            Some(c) => write!(
                f,
                "{} [{}] at certificate {} ({}, serial {})",
                self.0.error,
                self.0.error.rule(),
                c.position,
                c.subject,
                c.serial
            ),
            None => write!(f, "{} [{}]", self.0.error, self.0.error.rule()),
        }
    }
}

impl std::error::Error for PathError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0.error)
    }
}

/// Validates `leaf` to one of `anchors`, using `intermediates` as the untrusted pool.
pub fn verify_chain(
    leaf: &Cert,
    intermediates: &[Cert],
    anchors: &[Cert],
    crls: &CrlSet,
    opts: &ValidationOptions,
) -> Result<ValidatedPath, PathError> {
    path::build(
        leaf,
        intermediates,
        anchors,
        opts.chain_depth_max,
        opts.budget,
        |candidate| validate_candidate(candidate, crls, opts),
    )
}

/// Validates the path made of `anchor` alone (the chain's leaf is one of the anchors,
/// `anchors[anchor_index]`): the anchor's own checks, then what `opts` asks of a leaf. Only
/// [`crate::anchors::verify_with_anchors`] asks this; [`verify_chain`] never builds such a path.
pub(crate) fn verify_anchor_alone(
    anchor: &Cert,
    anchor_index: usize,
    crls: &CrlSet,
    opts: &ValidationOptions,
) -> Result<ValidatedPath, PathError> {
    let candidate = Candidate {
        certs: vec![anchor],
        anchor_index,
        refused: Vec::new(),
    };
    validate_candidate(&candidate, crls, opts)
}

/// One check as recorded during validation. Rule and name are static text and the certificate
/// is its position on the path; [`Recorded::to_check`] turns it into a [`Check`] with the same
/// content when the checks are read.
#[derive(Clone, Debug)]
enum Recorded {
    /// A check recorded by this module.
    Compact {
        rule: &'static str,
        name: &'static str,
        position: Option<usize>,
        outcome: Outcome,
        detail: String,
    },
    /// A check recorded elsewhere (revocation), kept as given.
    Full(Check),
}

impl Recorded {
    fn to_check(&self, refs: &[CertRef]) -> Check {
        match self {
            Self::Compact {
                rule,
                name,
                position,
                outcome,
                detail,
            } => Check {
                rule: (*rule).to_owned(),
                name: (*name).to_owned(),
                cert: position.and_then(|p| refs.get(p).cloned()),
                outcome: *outcome,
                detail: detail.clone(),
            },
            Self::Full(check) => check.clone(),
        }
    }
}

/// Records checks for one candidate and stops at the first failure.
struct Run {
    checks: Vec<Recorded>,
    refs: Vec<CertRef>,
}

impl Run {
    fn pass(
        &mut self,
        rule: &'static str,
        name: &'static str,
        position: Option<usize>,
        detail: impl Into<String>,
    ) {
        self.checks.push(Recorded::Compact {
            rule,
            name,
            position,
            outcome: Outcome::Pass,
            detail: detail.into(),
        });
    }

    fn fail(&mut self, name: &'static str, position: Option<usize>, error: Error) -> PathError {
        let cert = position.and_then(|p| self.refs.get(p).cloned());
        self.checks.push(Recorded::Compact {
            rule: error.rule(),
            name,
            position,
            outcome: Outcome::Fail,
            detail: error.to_string(),
        });
        let checks = self.checks.iter().map(|r| r.to_check(&self.refs)).collect();
        self.checks.clear();
        PathError::new(error, cert, self.refs.clone(), checks)
    }

    /// Turns a rule result into a recorded check.
    fn require(
        &mut self,
        name: &'static str,
        position: Option<usize>,
        result: Result<String, Error>,
        rule: &'static str,
    ) -> Result<(), PathError> {
        match result {
            Ok(detail) => {
                self.pass(rule, name, position, detail);
                Ok(())
            }
            Err(error) => Err(self.fail(name, position, error)),
        }
    }
}

/// RFC 5280 §6.1 over one complete candidate (leaf first, anchor last).
fn validate_candidate(
    candidate: &Candidate<'_>,
    crls: &CrlSet,
    opts: &ValidationOptions,
) -> Result<ValidatedPath, PathError> {
    let certs = &candidate.certs;
    let n = certs.len();
    let mut run = Run {
        checks: Vec::new(),
        refs: certs
            .iter()
            .enumerate()
            .map(|(p, c)| c.cert_ref(p))
            .collect(),
    };
    let mut state = WorkingState::new();
    // Certificates from the anchor down to the leaf, in RFC 5280 order.
    for pos in (0..n).rev() {
        let role = if pos == n - 1 {
            Role::Anchor
        } else if pos == 0 {
            Role::Leaf
        } else {
            Role::Intermediate
        };
        process_certificate(candidate, pos, role, opts, &mut state, &mut run)?;
        if role == Role::Leaf {
            break;
        }
        prepare_for_next(certs[pos], pos, role, opts.profile, &mut state, &mut run)?;
    }
    check_leaf(certs[0], state.intermediates, opts, &mut run)?;
    let policy = policy_outcome(certs, opts, &mut run)?;
    check_revocation(candidate, crls, opts, &mut run)?;
    refuse_unchecked_signatures(candidate, opts.profile, &mut run)?;
    Ok(ValidatedPath::new(
        run.refs,
        candidate.anchor_index,
        policy,
        run.checks,
    ))
}

/// The state RFC 5280 §6.1.2 carries from one certificate to the next (the policy variables
/// aside: [`policy_outcome`] runs them over the whole path).
struct WorkingState {
    /// §6.1.2(b)-(c): permitted_subtrees and excluded_subtrees.
    constraints: ConstraintState,
    /// §6.1.2(k) max_path_length: how many more non-self-issued CA certificates may follow,
    /// seeded by the anchor's own pathLenConstraint; `None` while no constraint is in force.
    path_len_max: Option<u32>,
    /// Which CA's pathLenConstraint binds now, and its value, so a violation names the CA
    /// whose constraint was exceeded rather than the certificate that exceeded it. On a tie
    /// the later (nearer) CA is named: its constraint is the one the next CA certificate runs
    /// into first.
    path_len_set_by: Option<(u32, String)>,
    /// Intermediates seen that are not self-issued.
    intermediates: usize,
}

impl WorkingState {
    fn new() -> Self {
        Self {
            constraints: ConstraintState::new(),
            path_len_max: None,
            path_len_set_by: None,
            intermediates: 0,
        }
    }
}

/// §6.1.3, basic certificate processing of the certificate at `pos`, with the web-PKI
/// profile's rules for it; for the leaf, also the profile's commonName rule.
fn process_certificate(
    candidate: &Candidate<'_>,
    pos: usize,
    role: Role,
    opts: &ValidationOptions,
    state: &mut WorkingState,
    run: &mut Run,
) -> Result<(), PathError> {
    let certs = &candidate.certs;
    let cert = certs[pos];
    let webpki = opts.profile == Profile::WebPki;
    let at = Some(pos);
    run.require(
        "well-formed",
        at,
        well_formed(cert, role),
        "RFC 5280 §4.1, §4.2",
    )?;
    if role != Role::Anchor {
        record_signature_and_name_chaining(candidate, pos, run);
    }
    run.require(
        "validity",
        at,
        validity(cert, opts.time),
        "RFC 5280 §6.1.3(a)(2)",
    )?;
    run.require(
        "critical-extensions",
        at,
        critical_extensions(cert),
        "RFC 5280 §4.2, §6.1.4(o)",
    )?;
    run.require(
        "authority-key-identifier",
        at,
        authority_key_identifier(cert),
        RULE_AKI,
    )?;
    if webpki {
        let result = check_webpki_cert(cert, role, &opts.required_ekus).and_then(|()| match certs
            .get(pos + 1)
        {
            Some(issuer) => check_signature_pairing(cert, issuer),
            None => Ok(()),
        });
        run.require(
            "web-pki-profile",
            at,
            result.map(|()| "conforms".into()),
            "CABF BR §7.1",
        )?;
    }
    // §6.1.3(b)-(c): names of the leaf and of every non-self-issued intermediate.
    if role == Role::Leaf || (role == Role::Intermediate && !cert.is_self_issued()) {
        let result = names_within_constraints(cert, role, webpki, &mut state.constraints);
        run.require("name-constraints", at, result, "RFC 5280 §6.1.3(b)-(c)")?;
    }
    if role == Role::Leaf && webpki {
        run.require(
            "common-name",
            at,
            check_common_name(cert, !state.constraints.is_unconstrained())
                .map(|()| "commonName repeats a subjectAltName value or is not a host".into()),
            "CABF BR §7.1.4.3",
        )?;
    }
    Ok(())
}

/// §6.1.3(a)(1) and (a)(4) for the certificate at `pos`: its signature by the next one up,
/// which path building verified, and the name chaining that building followed. A refused
/// algorithm does not end the walk: other rules may still decide the path; it is reported only
/// if nothing else fails (the path is never accepted).
fn record_signature_and_name_chaining(candidate: &Candidate<'_>, pos: usize, run: &mut Run) {
    let certs = &candidate.certs;
    let cert = certs[pos];
    let at = Some(pos);
    if candidate.refused[pos].is_none() {
        let detail = format!(
            "signed by {} ({})",
            certs[pos + 1].subject_display(),
            cert.signature_algorithm()
                .map(|a| a.name())
                .unwrap_or_default()
        );
        run.pass("RFC 5280 §6.1.3(a)(1)", "signature", at, detail);
    }
    run.pass(
        "RFC 5280 §6.1.3(a)(4)",
        "name-chaining",
        at,
        format!(
            "issuer {} matches the issuer's subject",
            cert.issuer_display()
        ),
    );
}

/// §6.1.3(b)-(c): every name of `cert` lies within the permitted and outside the excluded
/// subtrees in force.
fn names_within_constraints(
    cert: &Cert,
    role: Role,
    webpki: bool,
    constraints: &mut ConstraintState,
) -> Result<String, Error> {
    if constraints.is_unconstrained() {
        return Ok("no name constraints in force".to_owned());
    }
    // Web-PKI clients read a host name from the commonName only when there is no
    // subjectAltName (RFC 6125 §6.4.4), so only then is it constrained as one.
    let cn_as_host = webpki && role == Role::Leaf && cert.subject_alt_names().is_none();
    subject_names(cert, cn_as_host)
        .iter()
        .try_for_each(|name| constraints.check(name))
        .map(|()| "every name is within the permitted and outside the excluded subtrees".into())
}

/// §6.1.4, preparation for the certificate below `cert` (a CA): basic constraints, the path
/// length, keyCertSign and the name constraints it adds.
fn prepare_for_next(
    cert: &Cert,
    pos: usize,
    role: Role,
    profile: Profile,
    state: &mut WorkingState,
    run: &mut Run,
) -> Result<(), PathError> {
    let at = Some(pos);
    run.require(
        "basic-constraints",
        at,
        is_ca(cert, role, profile),
        "RFC 5280 §6.1.4(k)",
    )?;
    if role == Role::Intermediate && !cert.is_self_issued() {
        state.intermediates += 1;
        let result = match state.path_len_max {
            Some(0) => {
                let (path_len, set_by) = state.path_len_set_by.clone().unwrap_or_default();
                Err(Error::PathLenExceeded {
                    path_len,
                    cert: set_by,
                    exceeded_by: cert.subject_display().to_owned(),
                })
            }
            Some(left) => {
                state.path_len_max = Some(left - 1);
                Ok(format!("{left} more CA certificate(s) allowed"))
            }
            None => Ok("no path length constraint in force".into()),
        };
        run.require("path-length", at, result, "RFC 5280 §6.1.4(l)")?;
    }
    if let Some(len) = cert.basic_constraints().and_then(|bc| bc.path_len)
        && state.path_len_max.is_none_or(|left| len <= left)
    {
        state.path_len_max = Some(len);
        state.path_len_set_by = Some((len, cert.subject_display().to_owned()));
    }
    let key_usage = match cert.key_usage() {
        Some(ku) if !ku.has(KeyUsage::KEY_CERT_SIGN) => Err(Error::KeyUsage {
            detail: format!("CA {} lacks keyCertSign", cert.subject_display()),
        }),
        Some(_) => Ok("keyCertSign asserted".to_owned()),
        None => Ok("no keyUsage extension".to_owned()),
    };
    run.require("key-usage", at, key_usage, "RFC 5280 §6.1.4(n)")?;
    if let Some(nc) = cert.name_constraints() {
        run.require(
            "name-constraints",
            at,
            state
                .constraints
                .add(nc)
                .map(|()| "constraints added for the certificates below".into()),
            "RFC 5280 §6.1.4(g)",
        )?;
    }
    Ok(())
}

/// What the relying party asks of the leaf once the path is walked: at most
/// `intermediates_max` intermediates, an extended key usage it requires, the key usage bits it
/// requires, and the peer name.
fn check_leaf(
    leaf: &Cert,
    intermediates: usize,
    opts: &ValidationOptions,
    run: &mut Run,
) -> Result<(), PathError> {
    if let Some(intermediates_max) = opts.intermediates_max {
        let result = if intermediates > intermediates_max {
            Err(Error::ChainTooDeep {
                depth_max: intermediates_max,
            })
        } else {
            Ok(format!(
                "{intermediates} intermediate(s), at most {intermediates_max}"
            ))
        };
        run.require(
            "chain-depth",
            Some(0),
            result,
            "RFC 5280 §6.1 (maximum path length)",
        )?;
    }
    run.require(
        "extended-key-usage",
        Some(0),
        check_leaf_eku(leaf, &opts.required_ekus, opts.profile)
            .map(|()| format!("permits {:?}", opts.required_ekus)),
        "RFC 5280 §4.2.1.12",
    )?;
    if opts.required_key_usage != 0 {
        let result = match leaf.key_usage() {
            Some(ku) if ku.0 & opts.required_key_usage != opts.required_key_usage => {
                Err(Error::KeyUsage {
                    detail: format!(
                        "leaf keyUsage {:#06x} lacks required bits {:#06x}",
                        ku.0, opts.required_key_usage
                    ),
                })
            }
            _ => Ok("required key usage present".to_owned()),
        };
        run.require("key-usage", Some(0), result, "RFC 5280 §4.2.1.3")?;
    }
    if let Some(peer) = &opts.peer_name {
        run.require(
            "peer-name",
            Some(0),
            check_peer_name(leaf, peer).map(|()| format!("valid for {peer}")),
            "RFC 6125 §6.4",
        )?;
    }
    Ok(())
}

/// RFC 5280 §6.3 for every certificate below the anchor, when CRLs were supplied or
/// revocation is required.
fn check_revocation(
    candidate: &Candidate<'_>,
    crls: &CrlSet,
    opts: &ValidationOptions,
    run: &mut Run,
) -> Result<(), PathError> {
    if crls.is_empty() && opts.revocation != RevocationMode::Required {
        return Ok(());
    }
    let certs = &candidate.certs;
    let mut crl_checks = Vec::new();
    let result = crate::crl::check_path(certs, crls, opts.time, opts.revocation, &mut crl_checks);
    run.checks
        .extend(crl_checks.into_iter().map(Recorded::Full));
    let Err(err) = result else {
        return Ok(());
    };
    let anchor_pos = certs.len() - 1;
    let index = match &err {
        crate::crl::CrlError::Revoked { index } => Some((*index).min(anchor_pos)),
        _ => None,
    };
    // On a path whose own signatures use a refused algorithm, the CRLs are usually signed
    // with the same keys: an unknown status then says nothing new, and the refusal is the
    // reason reported. A certificate found revoked is a decision in itself.
    let refused = candidate.refused.iter().flatten().next();
    if let (None, Some(refused)) = (index, refused) {
        run.checks.push(Recorded::Compact {
            rule: "RFC 5280 §6.3",
            name: "revocation",
            position: None,
            outcome: Outcome::Fail,
            detail: err.to_string(),
        });
        return Err(run.fail("signature", None, refused.clone()));
    }
    Err(run.fail("revocation", index, Error::Revocation(err)))
}

/// A path with a refused signature algorithm is never accepted. Under the web-PKI profile
/// the algorithms refused for weakness are also forbidden outright (CABF BR §7.1.3.2), so
/// the path is decided: rejected.
fn refuse_unchecked_signatures(
    candidate: &Candidate<'_>,
    profile: Profile,
    run: &mut Run,
) -> Result<(), PathError> {
    let Some((pos, Some(refused))) = candidate
        .refused
        .iter()
        .enumerate()
        .find(|(_, r)| r.is_some())
    else {
        return Ok(());
    };
    let error = match refused {
        Error::UnsupportedAlgorithm { algorithm }
            if profile == Profile::WebPki && forbidden_in_web_pki(algorithm) =>
        {
            Error::Profile {
                rule: "CABF BR §6.1.5, §7.1.3.2",
                detail: format!("signature algorithm {algorithm} is not permitted"),
            }
        }
        other => other.clone(),
    };
    Err(run.fail("signature", Some(pos), error))
}

/// The refused algorithms the Baseline Requirements forbid as well: SHA-1 and MD5 signatures,
/// DSA, RSA keys outside 2048–8192 bits. P-521 and Ed448 are refused here but are not weak, so
/// they stay undecided.
fn forbidden_in_web_pki(algorithm: &str) -> bool {
    let lower = algorithm.to_ascii_lowercase();
    ["sha1", "md5", "md2", "rsa-"]
        .iter()
        .any(|weak| lower.contains(weak))
        || lower.starts_with("dsa")
}

/// Runs certificate policy processing (RFC 5280 §6.1.2-§6.1.5). When no certificate carries
/// a policy extension and the settings are the defaults, the RFC algorithm ends with a NULL
/// tree and no error, so the call is skipped.
fn policy_outcome(
    certs: &[&Cert],
    opts: &ValidationOptions,
    run: &mut Run,
) -> Result<PolicyOutcome, PathError> {
    let below_anchor = &certs[..certs.len() - 1];
    let any_extension = below_anchor.iter().any(|c| c.has_policy_extensions());
    if !any_extension && opts.policy == PolicySettings::default() {
        run.pass(
            "RFC 5280 §6.1.5",
            "certificate-policies",
            None,
            "no policy extensions and default settings: nothing to process",
        );
        return Ok(PolicyOutcome::default());
    }
    // Certificate 1 (issued by the anchor) first, the leaf last.
    let infos: Vec<_> = below_anchor.iter().rev().map(|c| c.policy_info()).collect();
    match crate::policy::process(&infos, &opts.policy) {
        Ok(outcome) => {
            run.pass(
                "RFC 5280 §6.1.5",
                "certificate-policies",
                None,
                format!(
                    "authorities-constrained {:?}, user-constrained {:?}",
                    outcome.authorities_constrained, outcome.user_constrained
                ),
            );
            Ok(outcome)
        }
        Err(err) => Err(run.fail("certificate-policies", None, Error::Policy(err))),
    }
}

/// The RFC 5280 MUSTs about a certificate's own encoding that make it unusable on any path.
fn well_formed(cert: &Cert, role: Role) -> Result<String, Error> {
    let malformed = |detail: String| Error::Malformed {
        what: format!("certificate {}", cert.subject_display()),
        detail,
    };
    if let Some(defect) = cert.defects().first() {
        return Err(malformed(defect.clone()));
    }
    let serial = cert.serial();
    // §4.1.2.2: a positive integer of at most 20 octets. Trust anchors are exempt: they are
    // trusted out of band, and long-lived roots predate the rule (some have serial 0).
    if role == Role::Anchor {
        // Exempt, see above.
    } else if serial.len() > SERIAL_LEN_MAX {
        return Err(malformed(format!(
            "serial number of {} octets (at most {SERIAL_LEN_MAX}, RFC 5280 §4.1.2.2)",
            serial.len()
        )));
    } else if serial.first().is_some_and(|b| b & 0x80 != 0) || serial.iter().all(|b| *b == 0) {
        return Err(malformed(
            "serial number is not a positive integer (RFC 5280 §4.1.2.2)".into(),
        ));
    }
    // §4.1.2.4: the issuer field MUST contain a non-empty distinguished name.
    if cert.issuer().is_empty() {
        return Err(malformed("empty issuer name (RFC 5280 §4.1.2.4)".into()));
    }
    // §4.1.2.6: a CA's subject MUST be non-empty; an empty subject needs a critical SAN.
    if cert.subject().is_empty() {
        if role != Role::Leaf || cert.is_ca() {
            return Err(malformed(
                "CA certificate with an empty subject (RFC 5280 §4.1.2.6)".into(),
            ));
        }
        if !cert.subject_alt_names_critical() {
            return Err(malformed(
                "empty subject without a critical subjectAltName (RFC 5280 §4.2.1.6)".into(),
            ));
        }
    }
    Ok("no structural defects".into())
}

fn validity(cert: &Cert, now: UnixTime) -> Result<String, Error> {
    // §4.1.2.5: both bounds are inclusive.
    if now < cert.not_before() {
        return Err(Error::NotYetValid {
            now,
            not_before: cert.not_before(),
            cert: cert.subject_display().to_owned(),
        });
    }
    if now > cert.not_after() {
        return Err(Error::Expired {
            now,
            not_after: cert.not_after(),
            cert: cert.subject_display().to_owned(),
        });
    }
    Ok(format!(
        "valid from {} to {}",
        cert.not_before(),
        cert.not_after()
    ))
}

/// The rule [`authority_key_identifier`] cites.
const RULE_AKI: &str = "RFC 5280 §4.2.1.1";

/// RFC 5280 §4.2.1.1: "The keyIdentifier field of the authorityKeyIdentifier extension MUST
/// be included in all certificates generated by conforming CAs", with one exception: a
/// self-signed certificate, the form in which a CA distributes its key, may omit it. The rule
/// holds under both profiles and for the trust anchor too: an anchor that is not self-signed
/// (a CA certificate cross-signed by another root, configured as the anchor) is a certificate
/// some CA generated and must carry it. x509-limbo expects the same
/// (`rfc5280::aki::cross-signed-root-missing-aki`).
fn authority_key_identifier(cert: &Cert) -> Result<String, Error> {
    if cert.authority_key_id().is_some_and(|a| a.key_id.is_some()) {
        return Ok("authorityKeyIdentifier keyIdentifier present".into());
    }
    if cert.is_self_signed() {
        return Ok("self-signed: the authorityKeyIdentifier may be omitted".into());
    }
    let subject = match cert.subject_display() {
        "" => format!("with an empty subject (serial {})", cert.serial_hex()),
        subject => subject.to_owned(),
    };
    Err(Error::MissingAuthorityKeyId {
        cert: subject,
        extension_present: cert.authority_key_id().is_some(),
    })
}

fn critical_extensions(cert: &Cert) -> Result<String, Error> {
    match cert.unrecognized_critical_extensions().first() {
        Some(oid) => Err(Error::UnknownCriticalExtension { oid: oid.clone() }),
        None => Ok("every critical extension is processed".into()),
    }
}

/// §6.1.4(k): an issuer must be a v3 CA certificate (basicConstraints cA). A v1 trust anchor
/// is accepted under the RFC 5280 profile, where anchors are trusted out of band.
fn is_ca(cert: &Cert, role: Role, profile: Profile) -> Result<String, Error> {
    if cert.is_ca() {
        return Ok("basicConstraints cA is true".into());
    }
    if role == Role::Anchor && profile == Profile::Rfc5280 && cert.version() == 0 {
        return Ok("version 1 trust anchor".into());
    }
    Err(Error::NotCa {
        cert: cert.subject_display().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf_with_serial(serial: &[u8]) -> Cert {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["a.example".to_owned()]).unwrap();
        params.serial_number = Some(rcgen::SerialNumber::from_slice(serial));
        Cert::from_der(params.self_signed(&key).unwrap().der()).unwrap()
    }

    #[test]
    fn serial_numbers_must_be_positive_and_at_most_20_octets() {
        assert!(well_formed(&leaf_with_serial(&[0x01]), Role::Leaf).is_ok());
        assert!(well_formed(&leaf_with_serial(&[0x7f; 20]), Role::Leaf).is_ok());
        assert!(well_formed(&leaf_with_serial(&[0x00]), Role::Leaf).is_err());
        assert!(well_formed(&leaf_with_serial(&[0x7f; 21]), Role::Leaf).is_err());
        assert!(well_formed(&leaf_with_serial(&[0x00]), Role::Anchor).is_ok());
    }

    #[test]
    fn validity_bounds_are_inclusive() {
        let cert = leaf_with_serial(&[1]);
        assert!(validity(&cert, cert.not_before()).is_ok());
        assert!(validity(&cert, cert.not_after()).is_ok());
        assert!(matches!(
            validity(&cert, UnixTime(cert.not_after().0 + 1)),
            Err(Error::Expired { .. })
        ));
        assert!(matches!(
            validity(&cert, UnixTime(cert.not_before().0 - 1)),
            Err(Error::NotYetValid { .. })
        ));
    }

    #[test]
    fn weak_refused_algorithms_are_forbidden_in_the_web_pki_but_strong_ones_undecided() {
        assert!(forbidden_in_web_pki("sha1WithRSAEncryption"));
        assert!(forbidden_in_web_pki("ecdsa-with-SHA1"));
        assert!(forbidden_in_web_pki("dsa-with-sha256"));
        assert!(forbidden_in_web_pki("RSA-1024"));
        assert!(!forbidden_in_web_pki("P-521"));
        assert!(!forbidden_in_web_pki("ecdsa-with-SHA512 on P-256"));
    }

    #[test]
    fn a_v3_certificate_without_the_ca_bit_cannot_issue() {
        let cert = leaf_with_serial(&[1]);
        assert!(is_ca(&cert, Role::Intermediate, Profile::Rfc5280).is_err());
        assert!(is_ca(&cert, Role::Anchor, Profile::WebPki).is_err());
    }
}
