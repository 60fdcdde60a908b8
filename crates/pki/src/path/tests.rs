use super::*;

fn ca(cn: &str) -> (rcgen::CertificateParams, rcgen::KeyPair) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    (
        params,
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap(),
    )
}

fn issue(
    subject: &rcgen::CertificateParams,
    key: &rcgen::KeyPair,
    issuer: (&rcgen::CertificateParams, &rcgen::KeyPair),
) -> Cert {
    let issuer = rcgen::Issuer::from_params(issuer.0, issuer.1);
    Cert::from_der(subject.signed_by(key, &issuer).unwrap().der()).unwrap()
}

fn accept_all(c: &Candidate<'_>) -> Result<Vec<String>, PathError> {
    Ok(c.certs
        .iter()
        .map(|c| c.subject_display().to_owned())
        .collect())
}

#[test]
fn prefers_an_anchor_over_a_longer_path_through_the_pool() {
    let (root_p, root_k) = ca("Root");
    let (ica_p, ica_k) = ca("ICA");
    let root = Cert::from_der(root_p.self_signed(&root_k).unwrap().der()).unwrap();
    let ica_as_anchor = Cert::from_der(ica_p.self_signed(&ica_k).unwrap().der()).unwrap();
    let ica = issue(&ica_p, &ica_k, (&root_p, &root_k));
    let (leaf_p, leaf_k) = ca("Leaf");
    let leaf = issue(&leaf_p, &leaf_k, (&ica_p, &ica_k));
    let anchors = [root, ica_as_anchor];
    let found = build(
        &leaf,
        &[ica],
        &anchors,
        CHAIN_DEPTH_MAX,
        Budget::default(),
        accept_all,
    )
    .unwrap();
    assert_eq!(found, ["CN=Leaf", "CN=ICA"]);
}

#[test]
fn backtracks_past_a_candidate_the_validator_rejects() {
    let (root_p, root_k) = ca("Root");
    let root = Cert::from_der(root_p.self_signed(&root_k).unwrap().der()).unwrap();
    let (ica_p, ica_k) = ca("ICA");
    let first = issue(&ica_p, &ica_k, (&root_p, &root_k));
    // The same CA re-certified (another serial number): a second candidate issuer.
    let mut again = ica_p.clone();
    again.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x42]));
    let second = issue(&again, &ica_k, (&root_p, &root_k));
    assert_ne!(first.der(), second.der());
    let (leaf_p, leaf_k) = ca("Leaf");
    let leaf = issue(&leaf_p, &leaf_k, (&ica_p, &ica_k));
    let pool = [first.clone(), second.clone()];
    let anchors = [root];
    let mut tried = Vec::new();
    let found = build(
        &leaf,
        &pool,
        &anchors,
        CHAIN_DEPTH_MAX,
        Budget::default(),
        |c| {
            tried.push(c.certs[1].der().to_vec());
            if c.certs[1].der() == first.der() {
                Err(PathError::new(
                    Error::NotCa { cert: "x".into() },
                    None,
                    Vec::new(),
                    Vec::new(),
                ))
            } else {
                Ok(c.certs[1].der().to_vec())
            }
        },
    )
    .unwrap();
    assert_eq!(found, second.der());
    assert_eq!(tried.len(), 2);
}

#[test]
fn reports_the_most_specific_failure_and_honours_the_budget() {
    let (root_p, root_k) = ca("Root");
    let root = Cert::from_der(root_p.self_signed(&root_k).unwrap().der()).unwrap();
    let (leaf_p, leaf_k) = ca("Leaf");
    let leaf = issue(&leaf_p, &leaf_k, (&root_p, &root_k));
    let anchors = [root];
    let err = build(
        &leaf,
        &[],
        &anchors,
        CHAIN_DEPTH_MAX,
        Budget::default(),
        |_| {
            Err::<(), _>(PathError::new(
                Error::PathLenExceeded {
                    path_len: 0,
                    cert: "CN=Root".into(),
                    exceeded_by: "CN=Sub".into(),
                },
                None,
                Vec::new(),
                Vec::new(),
            ))
        },
    )
    .unwrap_err();
    assert!(matches!(err.error(), Error::PathLenExceeded { .. }));
    let tight = Budget {
        signature_checks_max: 0,
        path_attempts_max: 1,
    };
    let err = build(&leaf, &[], &anchors, CHAIN_DEPTH_MAX, tight, accept_all).unwrap_err();
    assert!(matches!(err.error(), Error::BudgetExceeded { .. }));
}
