//! Chains judged against a plain bundle of trust anchors, outside any agreement: what an auditor
//! runs before proposing a foreign CA for the agreement, or to check a bank's public TLS chain
//! against a system CA bundle.
//!
//! The decision is [`verify_chain`]'s (RFC 5280 §6.1, with the web-PKI profile when the options
//! ask for it); this module only reads the bundle and puts the outcome in the same explained
//! form as a recognition verdict: the path, every check with its rule and outcome, and the
//! deciding failure.

use serde::Serialize;

use crate::cert::{BUNDLE_LEN_MAX, Cert};
use crate::crl::CrlSet;
use crate::mra::Reason;
use crate::validate::{PathError, Profile, ValidatedPath, ValidationOptions, verify_chain};
use crate::verdict::{CertRef, Check};

/// What every PEM block starts with (RFC 7468 §2).
const PEM_BEGIN: &str = "-----BEGIN ";

/// A bundle of trust anchors as a system keeps them (a file of PEM `CERTIFICATE` blocks, or
/// DER certificates back to back), with the certificates that could not be read set aside.
///
/// Real bundles carry certificates some parsers refuse (an old encoding, an odd extension):
/// one of them must not make the whole bundle unusable, so each is skipped and reported, and
/// the rest are the anchors.
#[derive(Clone, Debug)]
pub struct AnchorBundle {
    anchors: Vec<Cert>,
    /// For each anchor, its index among the certificates of the file (skipped ones counted).
    file_index: Vec<usize>,
    skipped: Vec<SkippedAnchor>,
    total: usize,
}

/// A certificate of a bundle that was not used as a trust anchor, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SkippedAnchor {
    /// Its index among the certificates of the file, from 0.
    pub index: usize,
    /// Why it was skipped.
    pub reason: String,
}

/// Why a bundle gives no trust anchor at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// The input is empty.
    #[error("the bundle is empty")]
    Empty,
    /// The PEM framing is broken (the certificates' positions are unknown past it).
    #[error("malformed PEM: {0}")]
    Pem(String),
    /// PEM text without a `CERTIFICATE` block.
    #[error("no -----BEGIN CERTIFICATE----- block")]
    NoCertificate,
    /// DER input that does not parse as certificates back to back.
    #[error("not a DER certificate sequence: {0}")]
    Der(String),
    /// More certificates than a bundle may hold.
    #[error("more than {len_max} certificates")]
    TooMany {
        /// The bound.
        len_max: usize,
    },
    /// Every certificate of the bundle was skipped.
    #[error("none of its {total} certificate(s) parses; the first: {first}")]
    NoUsableAnchor {
        /// Certificates in the bundle.
        total: usize,
        /// Why the first was skipped.
        first: String,
    },
}

impl AnchorBundle {
    /// Reads a bundle. PEM blocks with other labels are ignored; a `CERTIFICATE` block that
    /// does not decode or parse is skipped and listed in [`AnchorBundle::skipped`]. DER input
    /// is all or nothing (without PEM framing a bad certificate hides where the next begins).
    pub fn parse(bytes: &[u8]) -> Result<Self, BundleError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(BundleError::Empty);
        }
        let Ok(text) = std::str::from_utf8(bytes) else {
            return Self::parse_der(bytes);
        };
        if !text.contains(PEM_BEGIN) {
            return Self::parse_der(bytes);
        }
        let mut bundle = Self {
            anchors: Vec::new(),
            file_index: Vec::new(),
            skipped: Vec::new(),
            total: 0,
        };
        for (block, pem) in x509_parser::pem::Pem::iter_from_buffer(bytes).enumerate() {
            if block >= crate::pem::PEM_BLOCKS_MAX {
                return Err(BundleError::TooMany {
                    len_max: crate::pem::PEM_BLOCKS_MAX,
                });
            }
            let pem = pem.map_err(|e| BundleError::Pem(format!("PEM block {block}: {e}")))?;
            if pem.label != "CERTIFICATE" {
                continue;
            }
            let index = bundle.total;
            if index >= BUNDLE_LEN_MAX {
                return Err(BundleError::TooMany {
                    len_max: BUNDLE_LEN_MAX,
                });
            }
            bundle.total += 1;
            match Cert::from_der(&pem.contents) {
                Ok(cert) => {
                    bundle.anchors.push(cert);
                    bundle.file_index.push(index);
                }
                Err(e) => bundle.skipped.push(SkippedAnchor {
                    index,
                    reason: e.to_string(),
                }),
            }
        }
        if bundle.total == 0 {
            return Err(BundleError::NoCertificate);
        }
        if bundle.anchors.is_empty() {
            return Err(BundleError::NoUsableAnchor {
                total: bundle.total,
                first: bundle
                    .skipped
                    .first()
                    .map(|s| format!("certificate {}: {}", s.index, s.reason))
                    .unwrap_or_default(),
            });
        }
        Ok(bundle)
    }

    fn parse_der(bytes: &[u8]) -> Result<Self, BundleError> {
        let anchors =
            Cert::parse_pem_or_der_bundle(bytes).map_err(|e| BundleError::Der(e.to_string()))?;
        Ok(Self {
            file_index: (0..anchors.len()).collect(),
            total: anchors.len(),
            anchors,
            skipped: Vec::new(),
        })
    }

    /// The trust anchors, in file order.
    pub fn anchors(&self) -> &[Cert] {
        &self.anchors
    }

    /// The certificates set aside, in file order.
    pub fn skipped(&self) -> &[SkippedAnchor] {
        &self.skipped
    }

    /// How many certificates the file holds, skipped ones included.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The index in the file of anchor `anchor` (an index into [`AnchorBundle::anchors`]).
    pub fn file_index(&self, anchor: usize) -> Option<usize> {
        self.file_index.get(anchor).copied()
    }
}

/// The answer to "is this chain valid against these anchors, with these options?", with the
/// evidence: the counterpart, outside any agreement, of a
/// [`RecognitionVerdict`](crate::RecognitionVerdict).
///
/// Made only by [`verify_with_anchors`]: the fields are private to the crate and there is no
/// constructor, `Default` or `Deserialize`, so a caller holding one knows the verifier made it:
///
/// ```compile_fail,E0451
/// use kakehashi_pki::anchors::ChainVerdict;
/// let forged = ChainVerdict { valid: true, ..todo!() };
/// ```
///
/// ```compile_fail,E0277
/// let forged: kakehashi_pki::anchors::ChainVerdict = Default::default();
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChainVerdict {
    pub(crate) valid: bool,
    pub(crate) profile: &'static str,
    pub(crate) time: String,
    pub(crate) anchor_index: Option<usize>,
    pub(crate) leaf_is_anchor: bool,
    pub(crate) policies: Vec<String>,
    pub(crate) path: Vec<CertRef>,
    pub(crate) checks: Vec<Check>,
    pub(crate) reason: Option<Reason>,
}

impl ChainVerdict {
    /// The decision.
    pub fn valid(&self) -> bool {
        self.valid
    }

    /// The rule set applied: `RFC 5280` or `web PKI`.
    pub fn profile(&self) -> &str {
        self.profile
    }

    /// The validation time, RFC 3339.
    pub fn time(&self) -> &str {
        &self.time
    }

    /// When valid, the trust anchor's index among the certificates of the bundle file.
    pub fn anchor_index(&self) -> Option<usize> {
        self.anchor_index
    }

    /// True when the chain's first certificate is itself one of the anchors (validated as the
    /// one certificate of its path).
    pub fn leaf_is_anchor(&self) -> bool {
        self.leaf_is_anchor
    }

    /// The user-constrained policy set (RFC 5280 §6.1.6) of a valid path; empty when no
    /// policy was processed or the valid policy tree is NULL.
    pub fn policies(&self) -> &[String] {
        &self.policies
    }

    /// The path, leaf first, anchor last; for an invalid chain the closest candidate.
    pub fn path(&self) -> &[CertRef] {
        &self.path
    }

    /// Every check that ran, in order.
    pub fn checks(&self) -> &[Check] {
        &self.checks
    }

    /// Why the chain is not valid.
    pub fn reason(&self) -> Option<&Reason> {
        self.reason.as_ref()
    }
}

/// Validates `leaf` to one of `bundle`'s anchors with `intermediates` as the untrusted pool and
/// `crls` (DER) as the CRLs to check with, under `opts` as given (profile, EKU, peer name,
/// policy inputs, revocation mode, time).
///
/// A leaf that is itself one of the anchors (a root checked on its own) is a path of that one
/// certificate, checked as an anchor and for what `opts` asks of the leaf: OpenSSL and Go
/// accept such a chain, and an auditor asks exactly this of a root in a bundle. The general
/// [`verify_chain`] keeps refusing it, so no peer can authenticate with an anchor itself.
pub fn verify_with_anchors(
    leaf: &Cert,
    intermediates: &[Cert],
    bundle: &AnchorBundle,
    crls: &[Vec<u8>],
    opts: &ValidationOptions,
) -> ChainVerdict {
    let mut verdict = ChainVerdict {
        valid: false,
        profile: match opts.profile {
            Profile::Rfc5280 => "RFC 5280",
            Profile::WebPki => "web PKI",
        },
        time: opts.time.to_rfc3339(),
        anchor_index: None,
        leaf_is_anchor: false,
        policies: Vec::new(),
        path: vec![leaf.cert_ref(0)],
        checks: Vec::new(),
        reason: None,
    };
    let crls = match crl_set(crls, intermediates, opts.profile) {
        Ok(set) => set,
        Err(check) => {
            verdict.reason = Some(reason_of(&check));
            verdict.checks.push(*check);
            return verdict;
        }
    };
    let own = bundle
        .anchors
        .iter()
        .position(|anchor| anchor.der() == leaf.der());
    let result = match own {
        Some(index) => {
            verdict.leaf_is_anchor = true;
            crate::validate::verify_anchor_alone(&bundle.anchors[index], index, &crls, opts)
        }
        None => verify_chain(leaf, intermediates, &bundle.anchors, &crls, opts),
    };
    match result {
        Ok(validated) => accept(&mut verdict, bundle, &validated),
        Err(error) => refuse(&mut verdict, &error),
    }
    verdict
}

/// The CRLs as a set, with the intermediates as candidate CRL signers and, under the web-PKI
/// profile, the CA/Browser Forum's distribution-point rules; a CRL that does not parse is a
/// failing check.
fn crl_set(
    crls: &[Vec<u8>],
    intermediates: &[Cert],
    profile: Profile,
) -> Result<CrlSet, Box<Check>> {
    let mut set = CrlSet::new();
    set.set_cabf_rules(profile == Profile::WebPki);
    for (k, der) in crls.iter().enumerate() {
        set.add_der(der).map_err(|e| {
            Box::new(Check::fail(
                "RFC 5280 §5.1",
                "crl-input",
                None,
                format!("supplied CRL {k} is unusable: {e}"),
            ))
        })?;
    }
    if !set.is_empty() {
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
    }
    Ok(set)
}

fn accept(verdict: &mut ChainVerdict, bundle: &AnchorBundle, validated: &ValidatedPath) {
    verdict.valid = true;
    verdict.anchor_index = bundle.file_index(validated.anchor_index());
    verdict.policies = validated.policy().user_constrained.clone();
    verdict.path = validated.path().to_vec();
    verdict.checks = validated.checks().to_vec();
}

fn refuse(verdict: &mut ChainVerdict, error: &PathError) {
    verdict.path = error.path().to_vec();
    verdict.checks = error.checks().to_vec();
    let (check, recorded) = error.deciding_check();
    verdict.reason = Some(reason_of(&check));
    if !recorded {
        verdict.checks.push(check);
    }
}

fn reason_of(check: &Check) -> Reason {
    Reason {
        rule: check.rule.clone(),
        message: check.detail.clone(),
        cert: check.cert.clone(),
    }
}

#[cfg(test)]
mod tests;
