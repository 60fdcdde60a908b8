//! The x509-limbo conformance harness: limbo testcases in, limbo results out.
//!
//! SERVER and CLIENT testcases run under the web-PKI profile (serverAuth or clientAuth, the
//! expected peer name, `max_chain_depth`); testcases that carry `pkits_settings` run under
//! the plain RFC 5280 profile with those policy inputs. Revocation follows x509-limbo's
//! convention: it is checked when the case supplies CRLs, and then, for a case that carries
//! `pkits_settings`, required for every certificate below the anchor, as PKITS expects. A case is SKIPPED only when the chain's fate hinges on an
//! algorithm the verifier refuses on purpose (SHA-1, DSA, small RSA keys, P-521, Ed448), and
//! the context says which. The validation time is an argument: a testcase without one uses
//! the `default_time` the caller passes (limbo's "now").

use serde::{Deserialize, Serialize};

use kakehashi_pki::UnixTime;
use kakehashi_pki::cert::{Cert, EKU_ANY, KeyUsage};
use kakehashi_pki::crl::{CrlSet, RevocationMode};
use kakehashi_pki::policy::PolicySettings;
use kakehashi_pki::purpose::{EKU_CLIENT_AUTH, EKU_SERVER_AUTH};
use kakehashi_pki::validate::{PeerName, Profile, ValidationOptions, verify_chain};

/// Most testcases one file may hold: limbo's full suite has about ten thousand; the bound
/// keeps a hostile file from holding the harness forever.
pub const TESTCASES_MAX: usize = 100_000;

/// A limbo-format file.
#[derive(Clone, Debug, Deserialize)]
pub struct LimboFile {
    /// Format version (1).
    pub version: u32,
    /// The testcases.
    pub testcases: Vec<Testcase>,
}

/// An expected or actual outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum CaseOutcome {
    /// The chain validated.
    Success,
    /// The chain was rejected.
    Failure,
    /// The harness did not decide (actual results only).
    Skipped,
}

/// limbo's peer name.
#[derive(Clone, Debug, Deserialize)]
pub struct LimboPeerName {
    /// `DNS`, `IP` or `RFC822`.
    pub kind: String,
    /// The name.
    pub value: String,
}

/// PKITS user inputs (RFC 5280 §6.1.1(c), (e)-(g)).
#[derive(Clone, Debug, Deserialize)]
pub struct PkitsSettings {
    /// user-initial-policy-set.
    pub initial_policy_set: Vec<String>,
    /// initial-explicit-policy.
    pub initial_explicit_policy: bool,
    /// initial-policy-mapping-inhibit.
    pub initial_policy_mapping_inhibit: bool,
    /// initial-any-policy-inhibit.
    pub initial_inhibit_any_policy: bool,
}

/// One limbo testcase (the fields the harness reads).
#[derive(Clone, Debug, Deserialize)]
pub struct Testcase {
    /// Unique id, e.g. `rfc5280::nc::permitted-dns-match`.
    pub id: String,
    /// `SERVER` or `CLIENT`.
    pub validation_kind: String,
    /// Trust anchors, PEM.
    #[serde(default)]
    pub trusted_certs: Vec<String>,
    /// The untrusted pool, PEM.
    #[serde(default)]
    pub untrusted_intermediates: Vec<String>,
    /// The leaf, PEM.
    pub peer_certificate: String,
    /// RFC 3339; `None` means "now".
    #[serde(default)]
    pub validation_time: Option<String>,
    /// Key usages the leaf must assert (limbo names, e.g. `digitalSignature`).
    #[serde(default)]
    pub key_usage: Vec<String>,
    /// Extended key usages required of the leaf (limbo names, e.g. `serverAuth`).
    #[serde(default)]
    pub extended_key_usage: Vec<String>,
    /// The expected outcome.
    pub expected_result: CaseOutcome,
    /// The name the leaf must be valid for.
    #[serde(default)]
    pub expected_peer_name: Option<LimboPeerName>,
    /// Most intermediates (self-issued ones not counted); limbo's `max_chain_depth`.
    #[serde(default, rename = "max_chain_depth")]
    pub chain_depth_max: Option<usize>,
    /// CRLs, PEM.
    #[serde(default)]
    pub crls: Vec<String>,
    /// Present on PKITS testcases.
    #[serde(default)]
    pub pkits_settings: Option<PkitsSettings>,
}

/// One result in limbo's result format.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct CaseResult {
    /// The testcase id.
    pub id: String,
    /// What the verifier concluded.
    pub actual_result: CaseOutcome,
    /// Why (the error and rule on failure).
    pub context: String,
}

/// limbo's results file.
#[derive(Clone, Debug, Serialize)]
pub struct ResultsFile {
    /// Always 1.
    pub version: u32,
    /// Always `kakehashi`.
    pub harness: &'static str,
    /// One per testcase, in file order.
    pub results: Vec<CaseResult>,
}

/// Why a limbo file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LimboError {
    /// The JSON does not parse as a limbo file.
    #[error("invalid JSON for a limbo file")]
    Json(#[from] serde_json::Error),
    /// An unsupported format version.
    #[error("unsupported limbo format version {0} (expected 1)")]
    Version(u32),
    /// Too many testcases.
    #[error("{0} testcases is more than the {TESTCASES_MAX} allowed")]
    TooMany(usize),
}

/// Parses a limbo-format file.
pub fn parse_file(bytes: &[u8]) -> Result<LimboFile, LimboError> {
    let file: LimboFile = serde_json::from_slice(bytes)?;
    if file.version != 1 {
        return Err(LimboError::Version(file.version));
    }
    if file.testcases.len() > TESTCASES_MAX {
        return Err(LimboError::TooMany(file.testcases.len()));
    }
    Ok(file)
}

/// How the results compare with the expectations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Actual equals expected.
    pub passed: usize,
    /// SUCCESS where FAILURE was expected: a security defect.
    pub wrong_accepts: usize,
    /// FAILURE where SUCCESS was expected.
    pub wrong_rejects: usize,
    /// SKIPPED.
    pub skipped: usize,
    /// Every case.
    pub total: usize,
    /// (id, expected, actual, context) of every case that did not pass.
    pub mismatches: Vec<(String, CaseOutcome, CaseOutcome, String)>,
}

/// Compares results with the file's expectations (results in file order).
pub fn summarize(file: &LimboFile, results: &[CaseResult]) -> Summary {
    let mut s = Summary::default();
    for (case, result) in file.testcases.iter().zip(results) {
        s.total += 1;
        match (case.expected_result, result.actual_result) {
            (expected, actual) if expected == actual => {
                s.passed += 1;
                continue;
            }
            (_, CaseOutcome::Skipped) => s.skipped += 1,
            (CaseOutcome::Failure, CaseOutcome::Success) => s.wrong_accepts += 1,
            _ => s.wrong_rejects += 1,
        }
        s.mismatches.push((
            case.id.clone(),
            case.expected_result,
            result.actual_result,
            result.context.clone(),
        ));
    }
    s
}

/// Runs one testcase.
pub fn run_case(case: &Testcase, default_time: UnixTime) -> CaseResult {
    let (actual_result, context) = match decide(case, default_time) {
        Ok(context) => (CaseOutcome::Success, context),
        Err(Decision::Reject(context)) => (CaseOutcome::Failure, context),
        Err(Decision::Skip(context)) => (CaseOutcome::Skipped, context),
    };
    CaseResult {
        id: case.id.clone(),
        actual_result,
        context,
    }
}

enum Decision {
    Reject(String),
    Skip(String),
}

fn decide(case: &Testcase, default_time: UnixTime) -> Result<String, Decision> {
    let reject = Decision::Reject;
    let leaf = Cert::parse_pem_or_der_bundle(case.peer_certificate.as_bytes())
        .map_err(|e| reject(format!("peer certificate: {e}")))?;
    let leaf = leaf
        .into_iter()
        .next()
        .ok_or_else(|| reject("peer certificate: empty".into()))?;
    // A pool or anchor certificate that does not parse cannot be on any path; it is left out
    // rather than failing the case, as an unused bad certificate must not decide anything.
    let parse_all = |pems: &[String]| -> Vec<Cert> {
        pems.iter()
            .filter_map(|pem| Cert::parse_pem_or_der_bundle(pem.as_bytes()).ok())
            .flatten()
            .collect()
    };
    let anchors = parse_all(&case.trusted_certs);
    let intermediates = parse_all(&case.untrusted_intermediates);

    let time = match &case.validation_time {
        Some(text) => UnixTime::parse_rfc3339(text)
            .map_err(|e| reject(format!("validation_time {text:?}: {e}")))?,
        None => default_time,
    };
    let mut opts = ValidationOptions::new(time);
    opts.required_key_usage = key_usage_bits(&case.key_usage).map_err(reject)?;
    let mut ekus = eku_oids(&case.extended_key_usage).map_err(reject)?;
    let mut crls = CrlSet::new();
    for pem in &case.crls {
        for der in pem_blocks(pem, "X509 CRL") {
            crls.add_der(&der)
                .map_err(|e| reject(format!("CRL: {e}")))?;
        }
    }
    if let Some(pkits) = &case.pkits_settings {
        opts.profile = Profile::Rfc5280;
        // x509-limbo's convention: revocation is checked when the case supplies CRLs. PKITS
        // then expects every certificate below the anchor to be covered by one; a case without
        // CRLs (a policy-processing case, say) is judged on the rest of the path.
        opts.revocation = if crls.is_empty() {
            RevocationMode::Off
        } else {
            RevocationMode::Required
        };
        opts.policy = PolicySettings {
            initial_policy_set: pkits.initial_policy_set.clone(),
            initial_explicit_policy: pkits.initial_explicit_policy,
            initial_policy_mapping_inhibit: pkits.initial_policy_mapping_inhibit,
            initial_any_policy_inhibit: pkits.initial_inhibit_any_policy,
        };
    } else {
        opts.profile = Profile::WebPki;
        if ekus.is_empty() {
            ekus.push(
                match case.validation_kind.as_str() {
                    "CLIENT" => EKU_CLIENT_AUTH,
                    _ => EKU_SERVER_AUTH,
                }
                .to_owned(),
            );
        }
        opts.intermediates_max = case.chain_depth_max;
    }
    opts.required_ekus = ekus;
    // Web-PKI cases also follow the CA/Browser Forum's CRL rules (URI-only distribution
    // points, no indirect partitioned CRLs); PKITS and private PKIs use directory names.
    crls.set_cabf_rules(opts.profile == Profile::WebPki);
    if !crls.is_empty() {
        for cert in intermediates.iter().chain(&anchors) {
            crls.add_issuer(cert.clone())
                .map_err(|e| reject(format!("CRL issuer: {e}")))?;
        }
    }
    opts.peer_name = match &case.expected_peer_name {
        None => None,
        Some(p) => Some(peer_name(p).map_err(reject)?),
    };
    match verify_chain(&leaf, &intermediates, &anchors, &crls, &opts) {
        Ok(path) => Ok(format!(
            "validated through {} certificate(s) to {}",
            path.path().len(),
            path.path().last().map_or("?", |c| c.subject.as_str())
        )),
        Err(err) if err.error().is_unsupported_algorithm() => Err(Decision::Skip(format!(
            "deliberately refused algorithm, validity undecided: {err}"
        ))),
        Err(err) => Err(reject(err.to_string())),
    }
}

fn peer_name(p: &LimboPeerName) -> Result<PeerName, String> {
    match p.kind.as_str() {
        "DNS" => Ok(PeerName::Dns(p.value.clone())),
        "IP" => p
            .value
            .parse()
            .map(PeerName::Ip)
            .map_err(|e| format!("expected_peer_name IP {:?}: {e}", p.value)),
        "RFC822" => Ok(PeerName::Email(p.value.clone())),
        other => Err(format!("unknown peer name kind {other:?}")),
    }
}

fn eku_oids(names: &[String]) -> Result<Vec<String>, String> {
    names
        .iter()
        .map(|name| {
            Ok(match name.as_str() {
                "serverAuth" => EKU_SERVER_AUTH,
                "clientAuth" => EKU_CLIENT_AUTH,
                "codeSigning" => "1.3.6.1.5.5.7.3.3",
                "emailProtection" => "1.3.6.1.5.5.7.3.4",
                "timeStamping" => "1.3.6.1.5.5.7.3.8",
                "OCSPSigning" => "1.3.6.1.5.5.7.3.9",
                "anyExtendedKeyUsage" => EKU_ANY,
                other => return Err(format!("unknown extended key usage {other:?}")),
            }
            .to_owned())
        })
        .collect()
}

fn key_usage_bits(names: &[String]) -> Result<u16, String> {
    names.iter().try_fold(0u16, |bits, name| {
        let bit = match name.as_str() {
            "digitalSignature" => KeyUsage::DIGITAL_SIGNATURE,
            "contentCommitment" | "nonRepudiation" => 1 << 1,
            "keyEncipherment" => 1 << 2,
            "dataEncipherment" => 1 << 3,
            "keyAgreement" => 1 << 4,
            "keyCertSign" => KeyUsage::KEY_CERT_SIGN,
            "cRLSign" => KeyUsage::CRL_SIGN,
            "encipherOnly" => 1 << 7,
            "decipherOnly" => 1 << 8,
            other => return Err(format!("unknown key usage {other:?}")),
        };
        Ok(bits | bit)
    })
}

/// The DER bodies of the PEM blocks labelled `label` in `text`; undecodable blocks are left
/// out (the case then lacks that input and fails closed).
fn pem_blocks(text: &str, label: &str) -> Vec<Vec<u8>> {
    use base64::Engine as _;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&begin) {
        let body = &rest[start + begin.len()..];
        let Some(stop) = body.find(&end) else { break };
        let compact: String = body[..stop]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(compact) {
            out.push(der);
        }
        rest = &body[stop + end.len()..];
    }
    out
}

#[cfg(test)]
mod tests;
