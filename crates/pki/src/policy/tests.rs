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

fn settings(initial: &[String], explicit: bool, no_mapping: bool, no_any: bool) -> PolicySettings {
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
