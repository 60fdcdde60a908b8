//! Certificate policy processing (RFC 5280 §6.1.2-§6.1.5).
//!
//! RFC 5280 describes the state as a *valid policy tree*. Read literally, the tree can grow
//! exponentially with the path length (a CA that asserts many policies and maps each to many
//! others, repeated down the path; OpenSSL's CVE-2023-0464). This module keeps the equivalent
//! *policy graph* that modern verifiers use instead: at each depth there is at most one node
//! per valid_policy, and a node records the set of its parents at the previous depth. In the
//! RFC tree all nodes of one depth that share a valid_policy also share their
//! expected_policy_set (it is either `{valid_policy}` from §6.1.3(d) or the mapped set of
//! §6.1.4(b)(1), which depends only on valid_policy) and therefore grow identical subtrees, so
//! merging them loses nothing: a tree node is a path from the root through the graph. The graph
//! is still bounded ([`POLICY_GRAPH_SIZE_MAX`]) because a hostile certificate with thousands of
//! policies could make a single level quadratic; past the bound processing fails closed.

use std::collections::{BTreeMap, BTreeSet};

/// anyPolicy (RFC 5280 §4.2.1.4).
pub const ANY_POLICY: &str = "2.5.29.32.0";

/// Largest policy graph (nodes + parent edges + expected-policy entries, summed over every
/// depth) that processing will build. Real chains need a few dozen: PKITS 4.8.6, four
/// policies narrowing to one over four certificates, peaks at 20. Ten thousand leaves room for
/// chains with many policies per CA while keeping a hostile chain's work to milliseconds; past
/// it the path is rejected, never accepted.
pub const POLICY_GRAPH_SIZE_MAX: usize = 10_000;

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
    ///
    /// The policies are expressed in the trust anchor's domain, as PKITS states them: the
    /// valid_policy of each node directly below an anyPolicy node that still leads to depth
    /// n. After a mapping P1 → P2 and a leaf asserting P2 the set is `[P1]`. It is
    /// `[ANY_POLICY]` when anyPolicy survives to depth n and the user set was anyPolicy.
    pub user_constrained: Vec<String>,
}

/// Why policy processing rejected the path.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// policyMappings maps to or from anyPolicy (§6.1.4(a)).
    #[error("certificate {index} maps anyPolicy in policyMappings")]
    AnyPolicyMapped {
        /// RFC numbering: 1 is the certificate issued by the anchor, n the leaf.
        index: usize,
    },
    /// The path has no certificate to process.
    #[error("policy processing needs at least one certificate")]
    EmptyPath,
    /// explicit_policy reached 0 and the valid policy tree is NULL (§6.1.3(f), §6.1.5(g)).
    #[error(
        "an explicit policy is required but the valid policy tree is empty at certificate {index}"
    )]
    ExplicitPolicyRequired {
        /// RFC numbering: 1 is the certificate issued by the anchor, n the leaf.
        index: usize,
    },
    /// The policy graph outgrew [`POLICY_GRAPH_SIZE_MAX`]; the path is rejected.
    #[error("policy graph at certificate {index} has size {size}, over the bound {max}")]
    GraphTooLarge {
        /// RFC numbering: 1 is the certificate issued by the anchor, n the leaf.
        index: usize,
        /// The size reached.
        size: usize,
        /// The bound.
        max: usize,
    },
}

/// Runs policy processing over the path. `path[0]` is certificate 1 (issued by the trust
/// anchor), `path[n-1]` the leaf.
pub fn process(
    path: &[PolicyCertInfo],
    settings: &PolicySettings,
) -> Result<PolicyOutcome, PolicyError> {
    let n = path.len();
    if n == 0 {
        return Err(PolicyError::EmptyPath);
    }
    // §6.1.2(d)-(f): each counter starts at n+1 unless the matching initial input is set.
    // `n` is a path length, far below u64::MAX, so the conversion and the +1 cannot overflow;
    // saturate anyway rather than assert.
    let n_plus_one = u64::try_from(n).unwrap_or(u64::MAX).saturating_add(1);
    let start = |inhibited: bool| if inhibited { 0 } else { n_plus_one };
    let mut explicit_policy = start(settings.initial_explicit_policy);
    let mut policy_mapping = start(settings.initial_policy_mapping_inhibit);
    let mut inhibit_any_policy = start(settings.initial_any_policy_inhibit);

    // §6.1.2(a): the tree starts as a single anyPolicy node of depth 0.
    let mut graph = Graph::new();

    for (offset, cert) in path.iter().enumerate() {
        let index = offset + 1;
        let is_leaf = index == n;

        // §6.1.3(d)-(e): grow depth i from the certificate's policies, or empty the tree.
        match &cert.policies {
            Some(policies) if !graph.is_null() => {
                let any_allowed = inhibit_any_policy > 0 || (!is_leaf && cert.self_issued);
                graph.add_level(policies, any_allowed);
            }
            _ => graph.set_null(),
        }
        graph.check_size(index)?;

        // §6.1.3(f): with explicit_policy at 0 the tree may not be NULL.
        if explicit_policy == 0 && graph.is_null() {
            return Err(PolicyError::ExplicitPolicyRequired { index });
        }

        if is_leaf {
            break;
        }

        // §6.1.4(a): anyPolicy may not be mapped either way.
        if cert
            .mappings
            .iter()
            .any(|(issuer, subject)| issuer == ANY_POLICY || subject == ANY_POLICY)
        {
            return Err(PolicyError::AnyPolicyMapped { index });
        }
        // §6.1.4(b): apply the mappings, or delete mapped policies when mapping is inhibited.
        if !cert.mappings.is_empty() && !graph.is_null() {
            if policy_mapping > 0 {
                graph.apply_mappings(&cert.mappings);
            } else {
                graph.delete_mapped(&cert.mappings);
            }
            graph.check_size(index)?;
        }

        // §6.1.4(h): counters count down on every certificate that is not self-issued.
        if !cert.self_issued {
            explicit_policy = explicit_policy.saturating_sub(1);
            policy_mapping = policy_mapping.saturating_sub(1);
            inhibit_any_policy = inhibit_any_policy.saturating_sub(1);
        }
        // §6.1.4(i), (j): constraints can only tighten the counters.
        if let Some(skip) = cert.require_explicit_policy {
            explicit_policy = explicit_policy.min(skip);
        }
        if let Some(skip) = cert.inhibit_policy_mapping {
            policy_mapping = policy_mapping.min(skip);
        }
        if let Some(skip) = cert.inhibit_any_policy {
            inhibit_any_policy = inhibit_any_policy.min(skip);
        }
    }

    // §6.1.5(a), (b): the leaf counts down once more, and its own requireExplicitPolicy of 0
    // takes effect immediately.
    explicit_policy = explicit_policy.saturating_sub(1);
    if path.last().and_then(|leaf| leaf.require_explicit_policy) == Some(0) {
        explicit_policy = 0;
    }

    let authorities_constrained = graph.deepest_policies();

    // §6.1.5(g): intersect with the user-initial-policy-set.
    let user_set: BTreeSet<&str> = settings
        .initial_policy_set
        .iter()
        .map(String::as_str)
        .collect();
    if !user_set.contains(ANY_POLICY) {
        graph.intersect(&user_set);
    }
    if explicit_policy == 0 && graph.is_null() {
        return Err(PolicyError::ExplicitPolicyRequired { index: n });
    }
    Ok(PolicyOutcome {
        authorities_constrained,
        user_constrained: graph.authority_domain_policies(),
    })
}

/// One node of the policy graph: a valid_policy at some depth.
#[derive(Clone, Debug)]
struct Node {
    /// valid_policy values of the parents at the previous depth.
    parents: BTreeSet<String>,
    /// expected_policy_set (§6.1.2(a)): the policies a child must assert to hang below.
    expected: BTreeSet<String>,
}

impl Node {
    fn new(policy: &str) -> Self {
        Self {
            parents: BTreeSet::new(),
            expected: BTreeSet::from([policy.to_owned()]),
        }
    }
}

/// The valid policy graph: `levels[d]` maps each valid_policy at depth d to its node.
#[derive(Clone, Debug)]
struct Graph {
    levels: Vec<BTreeMap<String, Node>>,
}

impl Graph {
    /// §6.1.2(a): the anyPolicy root at depth 0.
    fn new() -> Self {
        Self {
            levels: vec![BTreeMap::from([(
                ANY_POLICY.to_owned(),
                Node::new(ANY_POLICY),
            )])],
        }
    }

    /// The depth of the deepest level (the root level always exists).
    fn depth(&self) -> usize {
        self.levels.len().saturating_sub(1)
    }

    /// Pruning keeps every node on a path to the deepest level, so the tree is NULL exactly
    /// when the deepest level is empty.
    fn is_null(&self) -> bool {
        self.levels.last().is_none_or(BTreeMap::is_empty)
    }

    /// §6.1.3(e): the tree becomes NULL; a new, empty level keeps depths aligned with
    /// certificate indexes.
    fn set_null(&mut self) {
        for level in &mut self.levels {
            level.clear();
        }
        self.levels.push(BTreeMap::new());
    }

    fn check_size(&self, index: usize) -> Result<(), PolicyError> {
        let size: usize = self
            .levels
            .iter()
            .flat_map(BTreeMap::values)
            .map(|node| 1 + node.parents.len() + node.expected.len())
            .sum();
        if size > POLICY_GRAPH_SIZE_MAX {
            return Err(PolicyError::GraphTooLarge {
                index,
                size,
                max: POLICY_GRAPH_SIZE_MAX,
            });
        }
        Ok(())
    }

    /// §6.1.3(d): builds depth i from the certificate's policies and prunes.
    fn add_level(&mut self, policies: &[String], any_allowed: bool) {
        let previous = self.levels.last().cloned().unwrap_or_default();
        let has_any_parent = previous.contains_key(ANY_POLICY);
        let mut level: BTreeMap<String, Node> = BTreeMap::new();

        // (d)(1): each policy other than anyPolicy hangs below every node that expects it,
        // or below the anyPolicy node when nothing expects it.
        for policy in policies.iter().filter(|p| p.as_str() != ANY_POLICY) {
            let parents: BTreeSet<String> = previous
                .iter()
                .filter(|(_, node)| node.expected.contains(policy))
                .map(|(valid, _)| valid.clone())
                .collect();
            let parents = if parents.is_empty() && has_any_parent {
                BTreeSet::from([ANY_POLICY.to_owned()])
            } else {
                parents
            };
            if !parents.is_empty() {
                level
                    .entry(policy.clone())
                    .or_insert_with(|| Node::new(policy))
                    .parents
                    .extend(parents);
            }
        }

        // (d)(2): an asserted anyPolicy, when allowed, gives every node a child for each
        // expected policy that no child carries yet.
        if any_allowed && policies.iter().any(|p| p == ANY_POLICY) {
            for (valid, node) in &previous {
                for expected in &node.expected {
                    let child = level
                        .entry(expected.clone())
                        .or_insert_with(|| Node::new(expected));
                    child.parents.insert(valid.clone());
                }
            }
        }

        self.levels.push(level);
        self.prune();
    }

    /// §6.1.4(b)(1): replaces each mapped node's expected_policy_set by its subject-domain
    /// policies; a policy that only anyPolicy would have carried gets its own node below the
    /// previous anyPolicy node.
    fn apply_mappings(&mut self, mappings: &[(String, String)]) {
        let mut mapped: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for (issuer, subject) in mappings {
            mapped
                .entry(issuer.as_str())
                .or_default()
                .insert(subject.clone());
        }
        let Some(level) = self.levels.last_mut() else {
            return;
        };
        let has_any = level.contains_key(ANY_POLICY);
        for (issuer, subjects) in mapped {
            if let Some(node) = level.get_mut(issuer) {
                node.expected = subjects;
            } else if has_any {
                level.insert(
                    issuer.to_owned(),
                    Node {
                        parents: BTreeSet::from([ANY_POLICY.to_owned()]),
                        expected: subjects,
                    },
                );
            }
        }
    }

    /// §6.1.4(b)(2): with mapping inhibited, each mapped issuer-domain policy is deleted at
    /// depth i, then the tree is pruned.
    fn delete_mapped(&mut self, mappings: &[(String, String)]) {
        if let Some(level) = self.levels.last_mut() {
            for (issuer, _) in mappings {
                level.remove(issuer);
            }
        }
        self.prune();
    }

    /// Deletes, repeatedly, every node above the deepest level that has no child
    /// (§6.1.3(d)(3)). Deleting at depth d can only strand nodes at depth d-1, so one pass
    /// from the bottom up reaches the fixed point.
    fn prune(&mut self) {
        for depth in (0..self.depth()).rev() {
            let (upper, lower) = self.levels.split_at_mut(depth + 1);
            let (Some(level), Some(children)) = (upper.last_mut(), lower.first()) else {
                continue;
            };
            let referenced: BTreeSet<&String> = children
                .values()
                .flat_map(|node| node.parents.iter())
                .collect();
            level.retain(|valid, _| referenced.contains(valid));
        }
    }

    /// Removes `parent` from the parents of every node at `depth`, deleting nodes left
    /// without parents and repeating below: in tree terms, deletes the subtrees that hung
    /// below the deleted node and keeps copies that hang below other parents.
    fn detach_children(&mut self, depth: usize, parent: &str) {
        let mut orphans = vec![parent.to_owned()];
        for level in self.levels.iter_mut().skip(depth) {
            if orphans.is_empty() {
                break;
            }
            let mut next = Vec::new();
            for (valid, node) in level.iter_mut() {
                for orphan in &orphans {
                    node.parents.remove(orphan);
                }
                if node.parents.is_empty() {
                    next.push(valid.clone());
                }
            }
            for valid in &next {
                level.remove(valid);
            }
            orphans = next;
        }
    }

    /// §6.1.5(g)(iii): the intersection with a user-initial-policy-set that is not
    /// anyPolicy.
    fn intersect(&mut self, user_set: &BTreeSet<&str>) {
        if self.is_null() {
            return;
        }
        let n = self.depth();
        // (iii)(1): the valid_policy_node_set is every node whose parent is anyPolicy.
        let mut top_policies = BTreeSet::new();
        // (iii)(2): delete those whose policy is neither in the user set nor anyPolicy, and
        // everything below them.
        for depth in 1..=n {
            let Some(level) = self.levels.get_mut(depth) else {
                break;
            };
            let mut removed = Vec::new();
            for (valid, node) in level.iter_mut() {
                if !node.parents.contains(ANY_POLICY) || valid == ANY_POLICY {
                    continue;
                }
                top_policies.insert(valid.clone());
                if !user_set.contains(valid.as_str()) {
                    node.parents.remove(ANY_POLICY);
                    if node.parents.is_empty() {
                        removed.push(valid.clone());
                    }
                }
            }
            for valid in &removed {
                level.remove(valid);
            }
            for valid in &removed {
                self.detach_children(depth + 1, valid);
            }
        }
        // (iii)(3): an anyPolicy node at depth n stands for every user policy not yet
        // present; replace it by explicit nodes below anyPolicy of depth n-1.
        if let Some(level) = self.levels.get_mut(n)
            && level.remove(ANY_POLICY).is_some()
        {
            for policy in user_set {
                if !top_policies.contains(*policy) {
                    level
                        .entry((*policy).to_owned())
                        .or_insert_with(|| Node::new(policy))
                        .parents
                        .insert(ANY_POLICY.to_owned());
                }
            }
        }
        // (iii)(4): prune.
        self.prune();
    }

    /// The valid_policy values at the deepest level.
    fn deepest_policies(&self) -> Vec<String> {
        self.levels
            .last()
            .map(|level| level.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The policies of the tree in the trust anchor's domain: anyPolicy when the anyPolicy
    /// chain reaches the deepest level, else every non-anyPolicy node with an anyPolicy
    /// parent. After pruning every remaining node leads to the deepest level.
    fn authority_domain_policies(&self) -> Vec<String> {
        if self.is_null() {
            return Vec::new();
        }
        if self
            .levels
            .last()
            .is_some_and(|level| level.contains_key(ANY_POLICY))
        {
            return vec![ANY_POLICY.to_owned()];
        }
        let set: BTreeSet<&String> = self
            .levels
            .iter()
            .skip(1)
            .flat_map(|level| level.iter())
            .filter(|(valid, node)| {
                valid.as_str() != ANY_POLICY && node.parents.contains(ANY_POLICY)
            })
            .map(|(valid, _)| valid)
            .collect();
        set.into_iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The PKITS test policies: 2.16.840.1.101.3.2.1.48.k.
    fn p(k: u32) -> String {
        format!("2.16.840.1.101.3.2.1.48.{k}")
    }

    fn any() -> String {
        ANY_POLICY.to_owned()
    }

    /// A certificate that asserts `policies`.
    fn cert(policies: &[String]) -> PolicyCertInfo {
        PolicyCertInfo {
            policies: Some(policies.to_vec()),
            ..PolicyCertInfo::default()
        }
    }

    fn no_policies() -> PolicyCertInfo {
        PolicyCertInfo::default()
    }

    fn with_mappings(mut info: PolicyCertInfo, pairs: &[(u32, u32)]) -> PolicyCertInfo {
        info.mappings = pairs.iter().map(|(a, b)| (p(*a), p(*b))).collect();
        info
    }

    fn require_explicit(mut info: PolicyCertInfo, skip: u64) -> PolicyCertInfo {
        info.require_explicit_policy = Some(skip);
        info
    }

    fn inhibit_mapping(mut info: PolicyCertInfo, skip: u64) -> PolicyCertInfo {
        info.inhibit_policy_mapping = Some(skip);
        info
    }

    fn inhibit_any(mut info: PolicyCertInfo, skip: u64) -> PolicyCertInfo {
        info.inhibit_any_policy = Some(skip);
        info
    }

    fn self_issued(mut info: PolicyCertInfo) -> PolicyCertInfo {
        info.self_issued = true;
        info
    }

    fn settings(
        initial: &[String],
        explicit: bool,
        no_mapping: bool,
        no_any: bool,
    ) -> PolicySettings {
        PolicySettings {
            initial_policy_set: initial.to_vec(),
            initial_explicit_policy: explicit,
            initial_policy_mapping_inhibit: no_mapping,
            initial_any_policy_inhibit: no_any,
        }
    }

    fn defaults() -> PolicySettings {
        PolicySettings::default()
    }

    /// Asserts success with the given user-constrained policy set.
    #[track_caller]
    fn accepts(path: &[PolicyCertInfo], settings: &PolicySettings, expected: &[String]) {
        match process(path, settings) {
            Ok(outcome) => assert_eq!(outcome.user_constrained, expected, "{outcome:?}"),
            Err(err) => panic!("expected acceptance, got {err}"),
        }
    }

    #[track_caller]
    fn rejects(path: &[PolicyCertInfo], settings: &PolicySettings) -> PolicyError {
        match process(path, settings) {
            Ok(outcome) => panic!("expected rejection, got {outcome:?}"),
            Err(err) => err,
        }
    }

    // --- PKITS 4.8: certificate policies ---

    #[test]
    fn same_policy_throughout_satisfies_explicit_policy() {
        // PKITS 4.8.1: Good CA (P1) -> EE (P1), explicit policy required.
        let path = [cert(&[p(1)]), cert(&[p(1)])];
        accepts(&path, &settings(&[any()], true, false, false), &[p(1)]);
        accepts(&path, &settings(&[p(1)], true, false, false), &[p(1)]);
        accepts(&path, &settings(&[p(1), p(2)], true, false, false), &[p(1)]);
    }

    #[test]
    fn user_set_disjoint_from_path_policies_fails_when_explicit() {
        // PKITS 4.8.1 subpart 3.
        let path = [cert(&[p(1)]), cert(&[p(1)])];
        let err = rejects(&path, &settings(&[p(2)], true, false, false));
        assert_eq!(err, PolicyError::ExplicitPolicyRequired { index: 2 });
    }

    #[test]
    fn user_set_disjoint_from_path_policies_passes_without_explicit_policy() {
        let path = [cert(&[p(1)]), cert(&[p(1)])];
        accepts(&path, &settings(&[p(2)], false, false, false), &[]);
    }

    #[test]
    fn no_policies_fails_when_explicit_policy_required() {
        // PKITS 4.8.2 subpart 2.
        let path = [no_policies(), no_policies()];
        let err = rejects(&path, &settings(&[any()], true, false, false));
        assert_eq!(err, PolicyError::ExplicitPolicyRequired { index: 1 });
    }

    #[test]
    fn no_policies_passes_with_empty_set_when_not_required() {
        let path = [no_policies(), no_policies()];
        accepts(&path, &defaults(), &[]);
    }

    #[test]
    fn different_policies_empty_the_tree() {
        // PKITS 4.8.3: P1 -> P2 -> P2 gives a NULL tree.
        let path = [cert(&[p(1)]), cert(&[p(2)]), cert(&[p(2)])];
        accepts(&path, &defaults(), &[]);
        rejects(&path, &settings(&[any()], true, false, false));
    }

    #[test]
    fn require_explicit_zero_in_ca_rejects_disjoint_leaf() {
        // PKITS 4.8.4: Good CA (P1) -> Good subCA (P1, requireExplicitPolicy 0) -> EE (P2).
        let path = [
            cert(&[p(1)]),
            require_explicit(cert(&[p(1)]), 0),
            cert(&[p(2)]),
        ];
        assert_eq!(
            rejects(&path, &defaults()),
            PolicyError::ExplicitPolicyRequired { index: 3 }
        );
        // PKITS 4.8.5: P1 -> P2 (requireExplicitPolicy 0) -> P1. The tree is NULL at certificate
        // 2 already, but its own constraint only applies from certificate 3 (§6.1.4(i) runs
        // after §6.1.3(f)).
        let path = [
            cert(&[p(1)]),
            require_explicit(cert(&[p(2)]), 0),
            cert(&[p(1)]),
        ];
        assert_eq!(
            rejects(&path, &defaults()),
            PolicyError::ExplicitPolicyRequired { index: 3 }
        );
    }

    #[test]
    fn overlapping_policies_narrow_to_the_common_one() {
        // PKITS 4.8.6.
        let path = [
            require_explicit(cert(&[p(1), p(2), p(3), p(4)]), 0),
            cert(&[p(1), p(2), p(3)]),
            cert(&[p(1), p(2)]),
            cert(&[p(1)]),
        ];
        accepts(&path, &defaults(), &[p(1)]);
    }

    #[test]
    fn narrowing_then_diverging_policies_fail_under_explicit_policy() {
        // PKITS 4.8.7: P123 -> P12 -> P1 -> EE P2.
        let path = [
            require_explicit(cert(&[p(1), p(2), p(3)]), 0),
            cert(&[p(1), p(2)]),
            cert(&[p(1)]),
            cert(&[p(2)]),
        ];
        rejects(&path, &defaults());
        // PKITS 4.8.9: P123 -> P12 -> P2 -> P1 -> EE P1.
        let path = [
            require_explicit(cert(&[p(1), p(2), p(3)]), 0),
            cert(&[p(1), p(2)]),
            cert(&[p(2)]),
            cert(&[p(1)]),
            cert(&[p(1)]),
        ];
        assert_eq!(
            rejects(&path, &defaults()),
            PolicyError::ExplicitPolicyRequired { index: 4 }
        );
    }

    #[test]
    fn two_shared_policies_each_satisfy_their_user_set() {
        // PKITS 4.8.10.
        let path = [
            require_explicit(cert(&[p(1), p(2)]), 0),
            cert(&[p(1), p(2)]),
        ];
        accepts(&path, &defaults(), &[p(1), p(2)]);
        accepts(&path, &settings(&[p(1)], false, false, false), &[p(1)]);
        accepts(&path, &settings(&[p(2)], false, false, false), &[p(2)]);
    }

    #[test]
    fn any_policy_throughout_yields_the_user_set() {
        // PKITS 4.8.11.
        let path = [require_explicit(cert(&[any()]), 0), cert(&[any()])];
        accepts(&path, &defaults(), &[any()]);
        accepts(&path, &settings(&[p(1)], false, false, false), &[p(1)]);
        accepts(
            &path,
            &settings(&[p(1), p(3)], false, false, false),
            &[p(1), p(3)],
        );
    }

    #[test]
    fn leaf_policy_outside_ca_policy_fails() {
        // PKITS 4.8.12: P3 (requireExplicitPolicy 0) -> EE P4.
        let path = [require_explicit(cert(&[p(3)]), 0), cert(&[p(4)])];
        rejects(&path, &defaults());
    }

    #[test]
    fn any_policy_ca_passes_leaf_policy_only_for_matching_user_set() {
        // PKITS 4.8.14.
        let path = [require_explicit(cert(&[any()]), 0), cert(&[p(1)])];
        accepts(&path, &settings(&[p(1)], false, false, false), &[p(1)]);
        rejects(&path, &settings(&[p(2)], false, false, false));
    }

    #[test]
    fn leaf_with_policy_and_any_policy_matches_each_ca_policy() {
        // PKITS 4.8.18: P12 CA -> EE (P1, anyPolicy).
        let path = [
            require_explicit(cert(&[p(1), p(2)]), 0),
            cert(&[p(1), any()]),
        ];
        accepts(&path, &settings(&[p(1)], false, false, false), &[p(1)]);
        accepts(&path, &settings(&[p(2)], false, false, false), &[p(2)]);
    }

    // --- PKITS 4.9: requireExplicitPolicy ---

    #[test]
    fn require_explicit_beyond_path_length_is_not_triggered() {
        // PKITS 4.9.2: requireExplicitPolicy 5 on a path of 5; the leaf has no policies.
        let path = [
            require_explicit(cert(&[p(1)]), 5),
            cert(&[p(1)]),
            cert(&[p(1)]),
            cert(&[p(1)]),
            no_policies(),
        ];
        accepts(&path, &defaults(), &[]);
    }

    #[test]
    fn require_explicit_zero_is_satisfied_by_a_policy_through_the_path() {
        // PKITS 4.9.4.
        let path = [
            require_explicit(cert(&[p(1)]), 0),
            cert(&[p(1)]),
            cert(&[p(1)]),
            cert(&[p(1)]),
            cert(&[p(1)]),
        ];
        accepts(&path, &defaults(), &[p(1)]);
    }

    #[test]
    fn tightened_require_explicit_catches_leaf_without_policies() {
        // PKITS 4.9.5: 7 -> 2 -> 4 (ignored, larger) -> no constraint -> EE without policies.
        let path = [
            require_explicit(cert(&[p(1)]), 7),
            require_explicit(cert(&[p(1)]), 2),
            require_explicit(cert(&[p(1)]), 4),
            cert(&[p(1)]),
            no_policies(),
        ];
        assert_eq!(
            rejects(&path, &defaults()),
            PolicyError::ExplicitPolicyRequired { index: 5 }
        );
    }

    #[test]
    fn self_issued_ca_does_not_count_toward_require_explicit() {
        // PKITS 4.9.6: requireExplicitPolicy 2 -> self-issued -> EE without policies.
        let path = [
            require_explicit(cert(&[p(1)]), 2),
            self_issued(cert(&[p(1)])),
            no_policies(),
        ];
        accepts(&path, &defaults(), &[]);
        // PKITS 4.9.7: one more non-self-issued CA exhausts the counter.
        let path = [
            require_explicit(cert(&[p(1)]), 2),
            self_issued(cert(&[p(1)])),
            cert(&[p(1)]),
            no_policies(),
        ];
        rejects(&path, &defaults());
        // PKITS 4.9.8: a second self-issued CA does not help.
        let path = [
            require_explicit(cert(&[p(1)]), 2),
            self_issued(cert(&[p(1)])),
            cert(&[p(1)]),
            self_issued(cert(&[p(1)])),
            no_policies(),
        ];
        rejects(&path, &defaults());
    }

    #[test]
    fn leaf_require_explicit_zero_applies_at_wrap_up() {
        // §6.1.5(b): a leaf with requireExplicitPolicy 0 and no surviving policy fails.
        let path = [cert(&[p(1)]), require_explicit(cert(&[p(2)]), 0)];
        rejects(&path, &defaults());
        let path = [cert(&[p(1)]), require_explicit(cert(&[p(1)]), 0)];
        accepts(&path, &defaults(), &[p(1)]);
    }

    // --- PKITS 4.10: policy mappings ---

    #[test]
    fn mapped_policy_is_reported_in_the_anchor_domain() {
        // PKITS 4.10.1: P1 mapped to P2; EE asserts P2.
        let path = [
            require_explicit(with_mappings(cert(&[p(1)]), &[(1, 2)]), 0),
            cert(&[p(2)]),
        ];
        accepts(&path, &settings(&[p(1)], false, false, false), &[p(1)]);
        rejects(&path, &settings(&[p(2)], false, false, false));
    }

    #[test]
    fn initial_mapping_inhibit_deletes_mapped_policies() {
        // PKITS 4.10.1 subpart 3.
        let path = [
            require_explicit(with_mappings(cert(&[p(1)]), &[(1, 2)]), 0),
            cert(&[p(2)]),
        ];
        assert_eq!(
            rejects(&path, &settings(&[any()], false, true, false)),
            PolicyError::ExplicitPolicyRequired { index: 2 }
        );
    }

    #[test]
    fn issuer_domain_policy_after_mapping_fails() {
        // PKITS 4.10.2: after P1 -> P2 the leaf asserts P1.
        let path = [
            require_explicit(with_mappings(cert(&[p(1)]), &[(1, 2)]), 0),
            cert(&[p(1)]),
        ];
        rejects(&path, &defaults());
        rejects(&path, &settings(&[any()], false, true, false));
    }

    #[test]
    fn chained_mappings_follow_the_mapped_branch() {
        // PKITS 4.10.3 / 4.10.4: P12 map 1->3; P2,P5 map 2->4, 5->7; P3,P4 map 4->8.
        let chain = |leaf: PolicyCertInfo| {
            vec![
                require_explicit(with_mappings(cert(&[p(1), p(2)]), &[(1, 3)]), 0),
                with_mappings(cert(&[p(2), p(5)]), &[(2, 4), (5, 7)]),
                with_mappings(cert(&[p(3), p(4)]), &[(4, 8)]),
                leaf,
            ]
        };
        let valid = chain(cert(&[p(8)]));
        accepts(&valid, &defaults(), &[p(2)]);
        accepts(&valid, &settings(&[p(2)], false, false, false), &[p(2)]);
        rejects(&valid, &settings(&[p(1)], false, false, false));
        rejects(&chain(cert(&[p(3)])), &defaults());
    }

    #[test]
    fn one_policy_mapped_to_several() {
        // PKITS 4.10.5 / 4.10.6: P1 -> {P2, P3, P4}; P2,P4 map 2->5, 4->6.
        let chain = |leaf: u32| {
            vec![
                require_explicit(with_mappings(cert(&[p(1)]), &[(1, 2), (1, 3), (1, 4)]), 0),
                with_mappings(cert(&[p(2), p(4)]), &[(2, 5), (4, 6)]),
                cert(&[p(leaf)]),
            ]
        };
        for leaf in [5, 6] {
            accepts(
                &chain(leaf),
                &settings(&[p(1)], false, false, false),
                &[p(1)],
            );
            rejects(&chain(leaf), &settings(&[p(6)], false, false, false));
        }
    }

    #[test]
    fn mapping_from_or_to_any_policy_is_an_error() {
        // PKITS 4.10.7 / 4.10.8 (§6.1.4(a)).
        let from = [
            require_explicit(with_any_mapping(cert(&[any()]), true), 0),
            cert(&[p(1)]),
        ];
        assert_eq!(
            rejects(&from, &defaults()),
            PolicyError::AnyPolicyMapped { index: 1 }
        );
        let to = [
            require_explicit(with_any_mapping(cert(&[p(1)]), false), 0),
            cert(&[any()]),
        ];
        assert_eq!(
            rejects(&to, &defaults()),
            PolicyError::AnyPolicyMapped { index: 1 }
        );
    }

    fn with_any_mapping(mut info: PolicyCertInfo, from_any: bool) -> PolicyCertInfo {
        info.mappings = if from_any {
            vec![(any(), p(1))]
        } else {
            vec![(p(1), any())]
        };
        info
    }

    #[test]
    fn mapping_under_any_policy_creates_the_mapped_node() {
        // PKITS 4.10.9: anyPolicy CA maps P1 -> P2; EE asserts P1, which hangs below
        // anyPolicy (P1's own node now expects P2).
        let path = [
            require_explicit(with_mappings(cert(&[any()]), &[(1, 2)]), 0),
            cert(&[p(1)]),
        ];
        accepts(&path, &defaults(), &[p(1)]);
        // ... and a leaf asserting P2 is reached through the mapping.
        let path = [
            require_explicit(with_mappings(cert(&[any()]), &[(1, 2)]), 0),
            cert(&[p(2)]),
        ];
        accepts(&path, &defaults(), &[p(1)]);
    }

    #[test]
    fn mapping_below_a_specific_policy_does_not_revive_it() {
        // PKITS 4.10.10: Good CA (P1) -> anyPolicy CA mapping P1 -> P2 -> EE P1.
        let path = [
            cert(&[p(1)]),
            require_explicit(with_mappings(cert(&[any()]), &[(1, 2)]), 0),
            cert(&[p(1)]),
        ];
        rejects(&path, &defaults());
    }

    #[test]
    fn leaf_any_policy_covers_unmapped_policy() {
        // PKITS 4.10.12: P12 CA maps P1 -> P3; EE asserts P3 and anyPolicy.
        let path = [
            require_explicit(with_mappings(cert(&[p(1), p(2)]), &[(1, 3)]), 0),
            cert(&[p(3), any()]),
        ];
        accepts(&path, &settings(&[p(1)], false, false, false), &[p(1)]);
        accepts(&path, &settings(&[p(2)], false, false, false), &[p(2)]);
    }

    #[test]
    fn ca_with_policy_and_any_policy_maps_the_policy() {
        // PKITS 4.10.13 / 4.10.14: CA (P1, anyPolicy) maps P1 -> P2.
        let path13 = [
            require_explicit(with_mappings(cert(&[p(1), any()]), &[(1, 2)]), 0),
            cert(&[p(2)]),
        ];
        accepts(&path13, &defaults(), &[p(1)]);
        accepts(
            &path13,
            &settings(&[p(1), p(2)], false, false, false),
            &[p(1)],
        );
        let path14 = [
            require_explicit(with_mappings(cert(&[p(1), any()]), &[(1, 2)]), 0),
            cert(&[p(1)]),
        ];
        accepts(&path14, &defaults(), &[p(1)]);
    }

    // --- PKITS 4.11: inhibitPolicyMapping ---

    #[test]
    fn inhibit_policy_mapping_zero_blocks_the_next_mapping() {
        // PKITS 4.11.1.
        let path = [
            inhibit_mapping(require_explicit(cert(&[p(1)]), 0), 0),
            with_mappings(cert(&[p(1)]), &[(1, 2)]),
            cert(&[p(1), p(2)]),
        ];
        rejects(&path, &defaults());
    }

    #[test]
    fn inhibit_policy_mapping_one_allows_one_mapping_level() {
        // PKITS 4.11.2.
        let path = [
            inhibit_mapping(require_explicit(cert(&[p(1), p(2)]), 0), 1),
            with_mappings(cert(&[p(1), p(2)]), &[(1, 3), (2, 4)]),
            cert(&[p(3)]),
        ];
        accepts(&path, &defaults(), &[p(1)]);
    }

    #[test]
    fn tightened_inhibit_policy_mapping_blocks_later_mapping() {
        // PKITS 4.11.5: 5 -> 1 -> (counter hits 0) -> mapping CA.
        let path = [
            inhibit_mapping(require_explicit(cert(&[p(1)]), 0), 5),
            inhibit_mapping(cert(&[p(1)]), 1),
            cert(&[p(1)]),
            with_mappings(cert(&[p(1)]), &[(1, 2)]),
            cert(&[p(2)]),
        ];
        rejects(&path, &defaults());
    }

    #[test]
    fn self_issued_ca_does_not_count_toward_inhibit_policy_mapping() {
        let base = || {
            vec![
                inhibit_mapping(require_explicit(cert(&[p(1)]), 0), 1),
                self_issued(cert(&[p(1)])),
                with_mappings(cert(&[p(1)]), &[(1, 2)]),
            ]
        };
        // PKITS 4.11.7.
        let mut path = base();
        path.push(cert(&[p(2)]));
        accepts(&path, &defaults(), &[p(1)]);
        // PKITS 4.11.8 / 4.11.9: the second mapping CA is past the counter.
        let mut path = base();
        path.push(with_mappings(cert(&[p(2)]), &[(2, 3)]));
        path.push(cert(&[p(3)]));
        rejects(&path, &defaults());
        let mut path = base();
        path.push(with_mappings(cert(&[p(2)]), &[(2, 3)]));
        path.push(cert(&[p(2)]));
        rejects(&path, &defaults());
    }

    // --- PKITS 4.12: inhibitAnyPolicy ---

    #[test]
    fn inhibit_any_policy_zero_ignores_leaf_any_policy() {
        // PKITS 4.12.1 / 4.12.2.
        let ca = inhibit_any(require_explicit(cert(&[p(1)]), 0), 0);
        rejects(&[ca.clone(), cert(&[any()])], &defaults());
        accepts(&[ca, cert(&[any(), p(1)])], &defaults(), &[p(1)]);
    }

    #[test]
    fn inhibit_any_policy_one_allows_one_any_policy_ca() {
        let ca = inhibit_any(require_explicit(cert(&[p(1)]), 0), 1);
        // PKITS 4.12.3: initial-any-policy-inhibit set.
        let path = [ca.clone(), cert(&[any()]), cert(&[p(1)])];
        rejects(&path, &settings(&[any()], false, false, true));
        accepts(&path, &defaults(), &[p(1)]);
        // PKITS 4.12.4: the leaf's anyPolicy is past the counter.
        rejects(&[ca, cert(&[any()]), cert(&[any()])], &defaults());
    }

    #[test]
    fn tightened_inhibit_any_policy_blocks_leaf_any_policy() {
        // PKITS 4.12.5.
        let path = [
            inhibit_any(require_explicit(cert(&[p(1)]), 0), 5),
            inhibit_any(cert(&[p(1)]), 1),
            cert(&[p(1)]),
            cert(&[any()]),
        ];
        rejects(&path, &defaults());
    }

    #[test]
    fn self_issued_ca_does_not_count_toward_inhibit_any_policy() {
        let ca = || inhibit_any(require_explicit(cert(&[p(1)]), 0), 1);
        // PKITS 4.12.7.
        let path = [
            ca(),
            self_issued(cert(&[p(1)])),
            cert(&[any()]),
            cert(&[p(1)]),
        ];
        accepts(&path, &defaults(), &[p(1)]);
        // PKITS 4.12.9: a self-issued intermediate may use anyPolicy past the counter.
        let path = [
            ca(),
            self_issued(cert(&[p(1)])),
            cert(&[any()]),
            self_issued(cert(&[any()])),
            cert(&[p(1)]),
        ];
        accepts(&path, &defaults(), &[p(1)]);
        // PKITS 4.12.10: but a self-issued leaf may not.
        let path = [
            ca(),
            self_issued(cert(&[p(1)])),
            cert(&[any()]),
            self_issued(cert(&[any()])),
        ];
        rejects(&path, &defaults());
    }

    // --- The graph against a literal RFC 5280 tree ---

    /// A literal valid_policy_tree (RFC 5280 §6.1.2-§6.1.5), exponential and all: the
    /// reference the graph is compared with.
    mod literal {
        use std::collections::BTreeSet;

        use super::super::{ANY_POLICY, PolicyCertInfo, PolicySettings};

        #[derive(Clone, Debug)]
        struct Node {
            depth: usize,
            policy: String,
            expected: BTreeSet<String>,
            parent: Option<usize>,
            alive: bool,
        }

        struct Tree {
            nodes: Vec<Node>,
        }

        impl Tree {
            fn at(&self, depth: usize) -> Vec<usize> {
                (0..self.nodes.len())
                    .filter(|i| self.nodes[*i].alive && self.nodes[*i].depth == depth)
                    .collect()
            }

            fn add(&mut self, parent: usize, policy: &str, expected: BTreeSet<String>) {
                let depth = self.nodes[parent].depth + 1;
                self.nodes.push(Node {
                    depth,
                    policy: policy.to_owned(),
                    expected,
                    parent: Some(parent),
                    alive: true,
                });
            }

            fn has_child(&self, parent: usize) -> bool {
                self.nodes
                    .iter()
                    .any(|n| n.alive && n.parent == Some(parent))
            }

            fn child_policies(&self, parent: usize) -> Vec<String> {
                self.nodes
                    .iter()
                    .filter(|n| n.alive && n.parent == Some(parent))
                    .map(|n| n.policy.clone())
                    .collect()
            }

            fn prune(&mut self, below: usize) {
                for depth in (0..below).rev() {
                    for i in self.at(depth) {
                        if !self.has_child(i) {
                            self.nodes[i].alive = false;
                        }
                    }
                }
            }

            fn delete_subtree(&mut self, i: usize) {
                self.nodes[i].alive = false;
                for child in 0..self.nodes.len() {
                    if self.nodes[child].alive && self.nodes[child].parent == Some(i) {
                        self.delete_subtree(child);
                    }
                }
            }

            fn is_null(&self, depth: usize) -> bool {
                self.at(depth).is_empty()
            }
        }

        fn set(p: &str) -> BTreeSet<String> {
            BTreeSet::from([p.to_owned()])
        }

        /// Ok(user-constrained set) or Err(()) for a rejection.
        pub(super) fn process(
            path: &[PolicyCertInfo],
            settings: &PolicySettings,
        ) -> Result<Vec<String>, ()> {
            let n = path.len();
            let start = |inhibit: bool| if inhibit { 0 } else { n as u64 + 1 };
            let mut explicit = start(settings.initial_explicit_policy);
            let mut mapping = start(settings.initial_policy_mapping_inhibit);
            let mut any = start(settings.initial_any_policy_inhibit);
            let mut tree = Tree {
                nodes: vec![Node {
                    depth: 0,
                    policy: ANY_POLICY.to_owned(),
                    expected: set(ANY_POLICY),
                    parent: None,
                    alive: true,
                }],
            };
            let mut null = false;
            for (k, cert) in path.iter().enumerate() {
                let i = k + 1;
                match &cert.policies {
                    Some(policies) if !null => {
                        let previous = tree.at(i - 1);
                        for p in policies.iter().filter(|p| *p != ANY_POLICY) {
                            let matches: Vec<usize> = previous
                                .iter()
                                .copied()
                                .filter(|j| tree.nodes[*j].expected.contains(p))
                                .collect();
                            if matches.is_empty() {
                                for j in &previous {
                                    if tree.nodes[*j].policy == ANY_POLICY {
                                        tree.add(*j, p, set(p));
                                    }
                                }
                            } else {
                                for j in matches {
                                    tree.add(j, p, set(p));
                                }
                            }
                        }
                        if policies.iter().any(|p| p == ANY_POLICY)
                            && (any > 0 || (i < n && cert.self_issued))
                        {
                            for j in &previous {
                                let existing = tree.child_policies(*j);
                                let expected = tree.nodes[*j].expected.clone();
                                for e in expected {
                                    if !existing.contains(&e) {
                                        tree.add(*j, &e, set(&e));
                                    }
                                }
                            }
                        }
                        tree.prune(i);
                        null = tree.is_null(i);
                    }
                    _ => null = true,
                }
                if explicit == 0 && null {
                    return Err(());
                }
                if i == n {
                    break;
                }
                if cert
                    .mappings
                    .iter()
                    .any(|(a, b)| a == ANY_POLICY || b == ANY_POLICY)
                {
                    return Err(());
                }
                if !null {
                    let issuers: BTreeSet<&String> = cert.mappings.iter().map(|(a, _)| a).collect();
                    for id_p in issuers {
                        let subjects: BTreeSet<String> = cert
                            .mappings
                            .iter()
                            .filter(|(a, _)| a == id_p)
                            .map(|(_, b)| b.clone())
                            .collect();
                        let holders: Vec<usize> = tree
                            .at(i)
                            .into_iter()
                            .filter(|j| tree.nodes[*j].policy == *id_p)
                            .collect();
                        if mapping > 0 {
                            if holders.is_empty() {
                                let any_here = tree
                                    .at(i)
                                    .into_iter()
                                    .find(|j| tree.nodes[*j].policy == ANY_POLICY);
                                if let Some(a) = any_here {
                                    let parent = tree.nodes[a].parent.unwrap();
                                    tree.add(parent, id_p, subjects.clone());
                                }
                            }
                            for j in holders {
                                tree.nodes[j].expected = subjects.clone();
                            }
                        } else {
                            for j in holders {
                                tree.nodes[j].alive = false;
                            }
                            tree.prune(i);
                            null = tree.is_null(i);
                        }
                    }
                }
                if !cert.self_issued {
                    explicit = explicit.saturating_sub(1);
                    mapping = mapping.saturating_sub(1);
                    any = any.saturating_sub(1);
                }
                if let Some(r) = cert.require_explicit_policy {
                    explicit = explicit.min(r);
                }
                if let Some(m) = cert.inhibit_policy_mapping {
                    mapping = mapping.min(m);
                }
                if let Some(a) = cert.inhibit_any_policy {
                    any = any.min(a);
                }
            }
            explicit = explicit.saturating_sub(1);
            if path.last().and_then(|c| c.require_explicit_policy) == Some(0) {
                explicit = 0;
            }
            let user: BTreeSet<&String> = settings.initial_policy_set.iter().collect();
            let any_user = user.iter().any(|p| *p == ANY_POLICY);
            if !null && !any_user {
                let top: Vec<usize> = (0..tree.nodes.len())
                    .filter(|i| {
                        let node = &tree.nodes[*i];
                        node.alive
                            && node
                                .parent
                                .is_some_and(|p| tree.nodes[p].policy == ANY_POLICY)
                    })
                    .collect();
                let top_policies: BTreeSet<String> =
                    top.iter().map(|i| tree.nodes[*i].policy.clone()).collect();
                for i in &top {
                    let policy = tree.nodes[*i].policy.clone();
                    if policy != ANY_POLICY && !user.contains(&policy) {
                        tree.delete_subtree(*i);
                    }
                }
                let any_leaf = tree
                    .at(n)
                    .into_iter()
                    .find(|i| tree.nodes[*i].policy == ANY_POLICY);
                if let Some(a) = any_leaf {
                    let parent = tree.nodes[a].parent.unwrap();
                    for p in &user {
                        if !top_policies.contains(*p) {
                            tree.add(parent, p, set(p));
                        }
                    }
                    tree.nodes[a].alive = false;
                }
                tree.prune(n);
                null = tree.is_null(n);
            }
            if explicit == 0 && null {
                return Err(());
            }
            if null {
                return Ok(Vec::new());
            }
            if tree
                .at(n)
                .iter()
                .any(|i| tree.nodes[*i].policy == ANY_POLICY)
            {
                return Ok(vec![ANY_POLICY.to_owned()]);
            }
            let result: BTreeSet<String> = (0..tree.nodes.len())
                .filter(|i| {
                    let node = &tree.nodes[*i];
                    node.alive
                        && node.policy != ANY_POLICY
                        && node
                            .parent
                            .is_some_and(|p| tree.nodes[p].policy == ANY_POLICY)
                })
                .map(|i| tree.nodes[i].policy.clone())
                .collect();
            Ok(result.into_iter().collect())
        }
    }

    /// A small deterministic generator (64-bit LCG): enough to explore many shapes of path
    /// without a dependency.
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % n
        }

        fn policy(&mut self) -> String {
            match self.below(4) {
                0 => any(),
                k => p(k as u32),
            }
        }

        fn skip(&mut self) -> Option<u64> {
            match self.below(4) {
                0 => Some(self.below(3)),
                _ => None,
            }
        }

        fn cert(&mut self) -> PolicyCertInfo {
            let policies = match self.below(6) {
                0 => None,
                _ => Some(
                    (0..1 + self.below(3))
                        .map(|_| self.policy())
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect(),
                ),
            };
            let mappings = (0..self.below(3))
                .map(|_| (p(1 + self.below(3) as u32), p(1 + self.below(3) as u32)))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            PolicyCertInfo {
                policies,
                mappings,
                require_explicit_policy: self.skip(),
                inhibit_policy_mapping: self.skip(),
                inhibit_any_policy: self.skip(),
                self_issued: self.below(5) == 0,
            }
        }
    }

    #[test]
    fn graph_agrees_with_a_literal_policy_tree() {
        let mut rng = Lcg(0x6b61_6b65_6861_7368);
        let mut accepted = 0;
        let mut rejected = 0;
        for _ in 0..4000 {
            let len = 1 + rng.below(5) as usize;
            let path: Vec<PolicyCertInfo> = (0..len).map(|_| rng.cert()).collect();
            let initial: Vec<String> = match rng.below(3) {
                0 => vec![any()],
                _ => (0..1 + rng.below(2))
                    .map(|_| p(1 + rng.below(3) as u32))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
            };
            let settings = settings(
                &initial,
                rng.below(3) == 0,
                rng.below(4) == 0,
                rng.below(4) == 0,
            );
            let expected = literal::process(&path, &settings);
            let got = process(&path, &settings).map(|o| o.user_constrained);
            assert_eq!(
                got.is_ok(),
                expected.is_ok(),
                "{path:#?} {settings:?} {got:?}"
            );
            if let (Ok(got), Ok(expected)) = (&got, &expected) {
                assert_eq!(got, expected, "{path:#?} {settings:?}");
                accepted += 1;
            } else {
                rejected += 1;
            }
        }
        // The generator must exercise both outcomes for the comparison to mean something.
        assert!(
            accepted > 500 && rejected > 500,
            "{accepted} accepted, {rejected} rejected"
        );
    }

    // --- PKITS through the whole verifier ---

    /// Every PKITS case expected to validate must report PKITS's user-constrained policy set
    /// (the harness checks only accept/reject). Skipped, with a note, in a clone without the
    /// shared conformance folder.
    #[test]
    fn pkits_valid_paths_report_the_expected_user_constrained_set() {
        use base64::Engine as _;

        use crate::cert::Cert;
        use crate::crl::{CrlSet, RevocationMode};
        use crate::profile::Profile;
        use crate::time::UnixTime;
        use crate::validate::{ValidationOptions, verify_chain};

        let file = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/conformance/pkits-dev.json"
        );
        let Ok(text) = std::fs::read_to_string(file) else {
            eprintln!("skipped: the PKITS conformance file is not present");
            return;
        };
        let der = |pem: &serde_json::Value| {
            let body: String = pem
                .as_str()
                .unwrap()
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .collect();
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap()
        };
        let strings = |v: &serde_json::Value| -> Vec<String> {
            let mut list: Vec<String> = v
                .as_array()
                .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
                .unwrap_or_default();
            list.sort();
            list
        };
        let data: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut compared = 0;
        for case in data["testcases"].as_array().unwrap() {
            if case["expected_result"] != "SUCCESS" {
                continue;
            }
            let certs = |key: &str| -> Vec<Cert> {
                case[key]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|p| Cert::from_der(&der(p)).ok())
                    .collect()
            };
            let (anchors, pool) = (certs("trusted_certs"), certs("untrusted_intermediates"));
            let leaf = Cert::from_der(&der(&case["peer_certificate"])).unwrap();
            let mut crls = CrlSet::new();
            for crl in case["crls"].as_array().unwrap() {
                crls.add_der(&der(crl)).unwrap();
            }
            for cert in pool.iter().chain(&anchors) {
                crls.add_issuer(cert.clone()).unwrap();
            }
            let time = UnixTime::parse_rfc3339(case["validation_time"].as_str().unwrap()).unwrap();
            let mut opts = ValidationOptions::new(time);
            opts.profile = Profile::Rfc5280;
            opts.revocation = RevocationMode::Required;
            let pkits = &case["pkits_settings"];
            opts.policy = PolicySettings {
                initial_policy_set: strings(&pkits["initial_policy_set"]),
                initial_explicit_policy: pkits["initial_explicit_policy"] == true,
                initial_policy_mapping_inhibit: pkits["initial_policy_mapping_inhibit"] == true,
                initial_any_policy_inhibit: pkits["initial_inhibit_any_policy"] == true,
            };
            // DSA cases are refused on purpose; they say nothing about policies.
            let Ok(path) = verify_chain(&leaf, &pool, &anchors, &crls, &opts) else {
                continue;
            };
            let mut got = path.policy().user_constrained.clone();
            got.sort();
            let id = case["id"].as_str().unwrap();
            assert_eq!(
                got,
                strings(&case["expected_user_constrained_policy_set"]),
                "{id}"
            );
            compared += 1;
        }
        assert!(compared >= 70, "only {compared} PKITS paths validated");
    }

    // --- Bounds and degenerate inputs ---

    #[test]
    fn empty_path_is_an_error() {
        assert_eq!(rejects(&[], &defaults()), PolicyError::EmptyPath);
    }

    #[test]
    fn graph_past_the_bound_fails_closed() {
        // A CA asserting 120 policies and mapping each to all 120 gives expected-policy sets
        // of 14,400 entries at depth 1, over the bound.
        let wide: Vec<String> = (0..120).map(p).collect();
        let mut ca = cert(&wide);
        ca.policies.get_or_insert_with(Vec::new).push(any());
        ca.mappings = (0..120)
            .flat_map(|a| (0..120).map(move |b| (p(a), p(b))))
            .collect();
        let path = [ca.clone(), ca.clone(), ca, cert(&wide)];
        assert!(matches!(
            rejects(&path, &defaults()),
            PolicyError::GraphTooLarge { .. }
        ));
    }

    #[test]
    fn chain_of_many_policies_stays_small() {
        // The exponential case for a literal tree: every CA asserts P1..P8 and maps each to
        // all of P1..P8. The merged graph stays within the bound.
        let all: Vec<String> = (1..=8).map(p).collect();
        let pairs: Vec<(u32, u32)> = (1..=8).flat_map(|a| (1..=8).map(move |b| (a, b))).collect();
        let ca = with_mappings(cert(&all), &pairs);
        let mut path = vec![ca; 8];
        path.push(cert(&[p(3)]));
        let outcome = process(&path, &defaults()).expect("graph within bound");
        assert_eq!(outcome.user_constrained, all);
        assert_eq!(outcome.authorities_constrained, vec![p(3)]);
    }
}
