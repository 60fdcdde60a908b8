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
    #[error("policy graph at certificate {index} has size {size}, over the bound {size_max}")]
    GraphTooLarge {
        /// RFC numbering: 1 is the certificate issued by the anchor, n the leaf.
        index: usize,
        /// The size reached.
        size: usize,
        /// The bound.
        size_max: usize,
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
    let mut counters = Counters::new(n, settings);

    // §6.1.2(a): the tree starts as a single anyPolicy node of depth 0.
    let mut graph = Graph::new();

    for (offset, cert) in path.iter().enumerate() {
        let index = offset + 1;
        let is_leaf = index == n;

        // §6.1.3(d)-(e): grow depth i from the certificate's policies, or empty the tree.
        match &cert.policies {
            Some(policies) if !graph.is_null() => {
                let any_allowed = counters.inhibit_any_policy > 0 || (!is_leaf && cert.self_issued);
                graph.add_level(policies, any_allowed);
            }
            _ => graph.set_null(),
        }
        graph.check_size(index)?;

        // §6.1.3(f): with explicit_policy at 0 the tree may not be NULL.
        if counters.explicit_policy == 0 && graph.is_null() {
            return Err(PolicyError::ExplicitPolicyRequired { index });
        }

        if is_leaf {
            break;
        }
        map_policies(&mut graph, cert, index, counters.policy_mapping)?;
        counters.prepare_for_next(cert);
    }
    wrap_up(graph, path, settings, counters.explicit_policy)
}

/// The counters of RFC 5280 §6.1.2(d)-(f).
struct Counters {
    explicit_policy: u64,
    policy_mapping: u64,
    inhibit_any_policy: u64,
}

impl Counters {
    /// §6.1.2(d)-(f): each counter starts at n+1 unless the matching initial input is set.
    fn new(n: usize, settings: &PolicySettings) -> Self {
        // `n` is a path length, far below u64::MAX, so the conversion and the +1 cannot
        // overflow; saturate anyway rather than assert.
        let n_plus_one = u64::try_from(n).unwrap_or(u64::MAX).saturating_add(1);
        let start = |inhibited: bool| if inhibited { 0 } else { n_plus_one };
        Self {
            explicit_policy: start(settings.initial_explicit_policy),
            policy_mapping: start(settings.initial_policy_mapping_inhibit),
            inhibit_any_policy: start(settings.initial_any_policy_inhibit),
        }
    }

    /// §6.1.4(h)-(j) for a CA certificate.
    fn prepare_for_next(&mut self, cert: &PolicyCertInfo) {
        // §6.1.4(h): counters count down on every certificate that is not self-issued.
        if !cert.self_issued {
            self.explicit_policy = self.explicit_policy.saturating_sub(1);
            self.policy_mapping = self.policy_mapping.saturating_sub(1);
            self.inhibit_any_policy = self.inhibit_any_policy.saturating_sub(1);
        }
        // §6.1.4(i), (j): constraints can only tighten the counters.
        if let Some(skip) = cert.require_explicit_policy {
            self.explicit_policy = self.explicit_policy.min(skip);
        }
        if let Some(skip) = cert.inhibit_policy_mapping {
            self.policy_mapping = self.policy_mapping.min(skip);
        }
        if let Some(skip) = cert.inhibit_any_policy {
            self.inhibit_any_policy = self.inhibit_any_policy.min(skip);
        }
    }
}

/// §6.1.4(a)-(b) for certificate `index` (a CA): its policy mappings.
fn map_policies(
    graph: &mut Graph,
    cert: &PolicyCertInfo,
    index: usize,
    policy_mapping: u64,
) -> Result<(), PolicyError> {
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
    Ok(())
}

/// §6.1.5: the wrap-up after the leaf, and the outcome.
fn wrap_up(
    mut graph: Graph,
    path: &[PolicyCertInfo],
    settings: &PolicySettings,
    mut explicit_policy: u64,
) -> Result<PolicyOutcome, PolicyError> {
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
        return Err(PolicyError::ExplicitPolicyRequired { index: path.len() });
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
                size_max: POLICY_GRAPH_SIZE_MAX,
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
mod tests;
