use super::*;

fn check(state: &mut ConstraintState, name: GeneralName) -> Result<(), Error> {
    state.check(&SubjectName::Alt(&name))
}

fn permit(bases: Vec<GeneralName>) -> ConstraintState {
    let mut s = ConstraintState::new();
    s.add(&NameConstraints {
        permitted: Some(bases),
        excluded: None,
        critical: true,
    })
    .unwrap();
    s
}

fn exclude(bases: Vec<GeneralName>) -> ConstraintState {
    let mut s = ConstraintState::new();
    s.add(&NameConstraints {
        permitted: None,
        excluded: Some(bases),
        critical: true,
    })
    .unwrap();
    s
}

fn dns(s: &str) -> GeneralName {
    GeneralName::Dns(s.into())
}

#[test]
fn dns_subtree_permits_itself_and_subdomains_only() {
    let mut s = permit(vec![dns("example.com")]);
    assert!(check(&mut s, dns("example.com")).is_ok());
    assert!(check(&mut s, dns("foo.bar.EXAMPLE.com")).is_ok());
    assert!(check(&mut s, dns("notexample.com")).is_err());
    assert!(check(&mut s, dns("example.com.evil")).is_err());
}

#[test]
fn other_forms_are_not_constrained_by_a_dns_subtree() {
    let mut s = permit(vec![dns("example.com")]);
    assert!(check(&mut s, GeneralName::Ip(vec![10, 0, 0, 1])).is_ok());
}

#[test]
fn wildcard_san_must_lie_wholly_inside_permitted_and_wholly_outside_excluded() {
    let mut s = permit(vec![dns("foo.com")]);
    assert!(check(&mut s, dns("*.foo.com")).is_ok());
    let mut s = permit(vec![dns("foo.example.com")]);
    assert!(check(&mut s, dns("*.example.com")).is_err());
    let mut s = exclude(vec![dns("bar.example.com")]);
    assert!(check(&mut s, dns("*.example.com")).is_err());
    let mut s = exclude(vec![dns("a.bar.example.com")]);
    assert!(check(&mut s, dns("*.example.com")).is_ok());
}

#[test]
fn excluded_wins_over_permitted() {
    let mut s = ConstraintState::new();
    s.add(&NameConstraints {
        permitted: Some(vec![dns("example.com")]),
        excluded: Some(vec![dns("example.com")]),
        critical: true,
    })
    .unwrap();
    assert!(check(&mut s, dns("example.com")).is_err());
}

#[test]
fn permitted_sets_of_two_cas_intersect() {
    let mut s = permit(vec![dns("foo.example.com"), dns("bar.example.com")]);
    s.add(&NameConstraints {
        permitted: Some(vec![dns("bar.example.com")]),
        excluded: None,
        critical: true,
    })
    .unwrap();
    assert!(check(&mut s, dns("bar.example.com")).is_ok());
    assert!(check(&mut s, dns("foo.example.com")).is_err());
}

#[test]
fn ip_subtrees_match_by_prefix_and_family() {
    let mut s = permit(vec![GeneralName::Ip(vec![192, 0, 2, 0, 255, 255, 255, 0])]);
    assert!(check(&mut s, GeneralName::Ip(vec![192, 0, 2, 1])).is_ok());
    assert!(check(&mut s, GeneralName::Ip(vec![192, 0, 3, 1])).is_err());
    let mut v6 = vec![0u8; 16];
    v6[15] = 1;
    assert!(check(&mut s, GeneralName::Ip(v6)).is_err());
    assert!(
        check(
            &mut s,
            GeneralName::Ip(vec![192, 0, 2, 0, 255, 255, 255, 0])
        )
        .is_err()
    );
}

#[test]
fn malformed_subtrees_are_rejected() {
    for base in [
        dns(".example.com"),
        dns("*.example.com"),
        GeneralName::Ip(vec![192, 0, 2, 0]),
        GeneralName::Ip(vec![192, 0, 2, 0, 255, 0, 255, 0]),
        GeneralName::Email("invalid@invalid@example.com".into()),
    ] {
        let mut s = ConstraintState::new();
        let nc = NameConstraints {
            permitted: Some(vec![base.clone()]),
            excluded: None,
            critical: true,
        };
        assert!(s.add(&nc).is_err(), "{base:?}");
    }
}

#[test]
fn email_subtrees_follow_rfc5280_forms_with_literal_asterisks() {
    let email = |s: &str| GeneralName::Email(s.into());
    let mut s = permit(vec![email("*@example.com")]);
    assert!(check(&mut s, email("*@example.com")).is_ok());
    assert!(check(&mut s, email("a@example.com")).is_err());
    let mut s = permit(vec![email("example.com")]);
    assert!(check(&mut s, email("a@example.com")).is_ok());
    assert!(check(&mut s, email("a@sub.example.com")).is_err());
    assert!(check(&mut s, email("invalid@address@example.com")).is_err());
    let mut s = permit(vec![email(".example.com")]);
    assert!(check(&mut s, email("a@sub.example.com")).is_ok());
    assert!(check(&mut s, email("a@example.com")).is_err());
}

#[test]
fn uri_subtrees_constrain_the_host() {
    let uri = |s: &str| GeneralName::Uri(s.into());
    let mut s = permit(vec![uri(".example.com")]);
    assert!(check(&mut s, uri("https://www.example.com:443/x")).is_ok());
    assert!(check(&mut s, uri("https://example.com/")).is_err());
    assert!(check(&mut s, uri("urn:isbn:1")).is_err());
}

#[test]
fn unprocessable_form_rejects_only_when_an_instance_appears() {
    let other = GeneralName::Other {
        oid: "1.2.3".into(),
    };
    let mut s = exclude(vec![other.clone()]);
    assert!(check(&mut s, dns("example.com")).is_ok());
    assert!(matches!(
        check(&mut s, other),
        Err(Error::UnsupportedNameConstraint { .. })
    ));
}

#[test]
fn quadratic_work_is_bounded() {
    let bases: Vec<_> = (0..600).map(|i| dns(&format!("n{i}.example"))).collect();
    let mut s = exclude(bases);
    let names: Vec<_> = (0..600).map(|i| dns(&format!("m{i}.test"))).collect();
    let err = names
        .into_iter()
        .try_for_each(|n| check(&mut s, n))
        .unwrap_err();
    assert!(matches!(err, Error::BudgetExceeded { .. }));
}
