//! Certificate policy processing (RFC 5280 §6.1.2-§6.1.5): the valid policy tree.
//!
//! Interface fixed during bootstrap; the algorithm is filled in by the module's owner.

/// anyPolicy (RFC 5280 §4.2.1.4).
pub const ANY_POLICY: &str = "2.5.29.32.0";

/// The policy-related content of one certificate on the path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyCertInfo {
    /// certificatePolicies; `None` when the extension is absent.
    pub policies: Option<Vec<String>>,
    /// policyMappings as (issuerDomainPolicy, subjectDomainPolicy) pairs.
    pub mappings: Vec<(String, String)>,
    /// policyConstraints requireExplicitPolicy (skip certs).
    pub require_explicit_policy: Option<u64>,
    /// policyConstraints inhibitPolicyMapping (skip certs).
    pub inhibit_policy_mapping: Option<u64>,
    /// inhibitAnyPolicy (skip certs).
    pub inhibit_any_policy: Option<u64>,
    /// Subject and issuer names are equal (RFC 5280 §6.1: self-issued certs do not count
    /// down the skip counters, except the leaf).
    pub self_issued: bool,
}

/// The user-supplied inputs of RFC 5280 §6.1.1(c), (e), (f), (g).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicySettings {
    /// user-initial-policy-set (dotted OIDs; `ANY_POLICY` for any).
    pub initial_policy_set: Vec<String>,
    /// initial-explicit-policy.
    pub initial_explicit_policy: bool,
    /// initial-policy-mapping-inhibit.
    pub initial_policy_mapping_inhibit: bool,
    /// initial-any-policy-inhibit.
    pub initial_any_policy_inhibit: bool,
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self {
            initial_policy_set: vec![ANY_POLICY.to_owned()],
            initial_explicit_policy: false,
            initial_policy_mapping_inhibit: false,
            initial_any_policy_inhibit: false,
        }
    }
}

/// The outputs of RFC 5280 §6.1.6 that concern policies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyOutcome {
    /// The authorities-constrained policy set: policies of the valid policy tree at depth n
    /// (`ANY_POLICY` may appear). Empty when the tree is NULL.
    pub authorities_constrained: Vec<String>,
    /// The user-constrained policy set (§6.1.5(g)(iii)). Empty when the tree is NULL.
    pub user_constrained: Vec<String>,
}

/// Why policy processing rejected the path.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// explicit_policy reached 0 and the valid policy tree is NULL (§6.1.3(f), §6.1.5(g)).
    #[error("an explicit policy is required but the valid policy tree is empty at certificate {index}")]
    ExplicitPolicyRequired {
        /// RFC numbering: 1 is the certificate issued by the anchor, n the leaf.
        index: usize,
    },
    /// policyMappings maps to or from anyPolicy (§6.1.4(a)).
    #[error("certificate {index} maps anyPolicy in policyMappings")]
    AnyPolicyMapped {
        /// RFC numbering: 1 is the certificate issued by the anchor, n the leaf.
        index: usize,
    },
    /// Not yet implemented: fail closed.
    #[error("certificate policy processing is not implemented yet")]
    Unimplemented,
}

/// Runs policy processing over the path. `path[0]` is certificate 1 (issued by the trust
/// anchor), `path[n-1]` the leaf.
pub fn process(
    path: &[PolicyCertInfo],
    settings: &PolicySettings,
) -> Result<PolicyOutcome, PolicyError> {
    let _ = (path, settings);
    Err(PolicyError::Unimplemented)
}
