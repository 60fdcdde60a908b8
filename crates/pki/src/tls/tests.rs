use super::*;
use crate::mra::Reason;

fn verdict(rule: &str, message: &str) -> Box<RecognitionVerdict> {
    Box::new(RecognitionVerdict {
        recognized: false,
        agreement_id: "test".into(),
        relying: "SG".into(),
        purpose: Purpose::NodeTls,
        time: "2027-01-01T00:00:00Z".into(),
        anchor_jurisdiction: None,
        clause: None,
        level_reached: None,
        level_required: None,
        policies: Vec::new(),
        path: Vec::new(),
        checks: Vec::new(),
        reason: Some(Reason {
            rule: rule.into(),
            message: message.into(),
            cert: None,
        }),
    })
}

fn refused(kind: RefusalKind) -> CertificateError {
    let err = TlsVerifyError::NotRecognized {
        verdict: verdict("MRA §recognition", "no row says SG recognizes TH"),
        kind,
    };
    match err.to_rustls() {
        rustls::Error::InvalidCertificate(e) => e,
        other => panic!("not a certificate error: {other:?}"),
    }
}

#[test]
fn expired_refusal_carries_both_times() {
    let e = refused(RefusalKind::Expired {
        not_after: UnixTime(100),
        now: UnixTime(200),
    });
    assert!(
        matches!(e, CertificateError::ExpiredContext { time, not_after }
        if time.as_secs() == 200 && not_after.as_secs() == 100)
    );
}

#[test]
fn not_yet_valid_refusal_carries_both_times() {
    let e = refused(RefusalKind::NotYetValid {
        not_before: UnixTime(300),
        now: UnixTime(200),
    });
    assert!(
        matches!(e, CertificateError::NotValidYetContext { time, not_before }
        if time.as_secs() == 200 && not_before.as_secs() == 300)
    );
}

#[test]
fn refusal_kinds_map_to_the_matching_tls_errors() {
    assert_eq!(refused(RefusalKind::Revoked), CertificateError::Revoked);
    assert_eq!(
        refused(RefusalKind::RevocationUnknown),
        CertificateError::UnknownRevocationStatus
    );
    assert_eq!(
        refused(RefusalKind::UnknownIssuer),
        CertificateError::UnknownIssuer
    );
    assert_eq!(
        refused(RefusalKind::BadPurpose),
        CertificateError::InvalidPurpose
    );
    assert_eq!(
        refused(RefusalKind::BadSignature),
        CertificateError::BadSignature
    );
    assert_eq!(
        refused(RefusalKind::UnhandledCriticalExtension),
        CertificateError::UnhandledCriticalExtension
    );
}

#[test]
fn mutual_recognition_refusal_keeps_the_explanation() {
    let CertificateError::Other(OtherError(inner)) = refused(RefusalKind::Other) else {
        panic!("an MRA refusal has no precise rustls variant");
    };
    let text = inner.to_string();
    assert!(text.contains("no row says SG recognizes TH"), "{text}");
    assert!(text.contains("MRA §recognition"), "{text}");
}

#[test]
fn missing_client_auth_names_the_required_purpose() {
    let err = TlsVerifyError::MissingEku {
        subject: "CN=x".into(),
        required: EKU_CLIENT_AUTH,
        present: vec![EKU_SERVER_AUTH.into()],
    };
    let rustls::Error::InvalidCertificate(CertificateError::InvalidPurposeContext {
        required,
        presented,
    }) = err.to_rustls()
    else {
        panic!("expected InvalidPurposeContext");
    };
    assert_eq!(required, ExtendedKeyPurpose::ClientAuth);
    assert_eq!(presented, vec![ExtendedKeyPurpose::ServerAuth]);
}

#[test]
fn private_eku_with_a_uuid_arc_maps_without_overflow() {
    let purpose = eku_purpose(crate::purpose::EKU_PAYMENT_SIGNING);
    let ExtendedKeyPurpose::Other(arcs) = purpose else {
        panic!("a private EKU is not a TLS usage");
    };
    assert_eq!(arcs.len(), 5);
    assert_eq!(arcs[..2], [2, 25]);
}

#[test]
fn times_before_the_epoch_clamp_to_it() {
    assert_eq!(to_pki_time(UnixTime(-5)).as_secs(), 0);
    assert_eq!(to_pki_time(UnixTime(42)).as_secs(), 42);
}
