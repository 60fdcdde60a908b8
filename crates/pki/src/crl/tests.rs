use rcgen::{
    BasicConstraints as RcgenBasicConstraints, CertificateParams, CertificateRevocationListParams,
    CrlDistributionPoint, CrlIssuingDistributionPoint, CrlScope, CustomExtension,
    DistinguishedName, DnType, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevocationReason, RevokedCertParams, SerialNumber, SigningKey as _,
};
use time::OffsetDateTime;

use super::parse::{
    OID_CERTIFICATE_ISSUER, OID_CRL_NUMBER, OID_DELTA_CRL_INDICATOR,
    OID_ISSUING_DISTRIBUTION_POINT, OID_REASON_CODE, distribution_point_name,
    issuing_distribution_point, reason_flags,
};
use super::*;

/// The validation time of every test: 2027-01-15T08:00:00Z.
const NOW: i64 = 1_800_000_000;
const DAY: i64 = 86_400;

fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap()
}

/// A certificate with its rcgen parameters and key, so it can issue.
struct Authority {
    params: CertificateParams,
    key: KeyPair,
    cert: Cert,
}

impl Authority {
    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }

    /// An issuer whose key usages rcgen does not check, to sign CRLs the certificate's
    /// keyUsage would not allow.
    fn unchecked_issuer(&self) -> Issuer<'_, &KeyPair> {
        let mut params = self.params.clone();
        params.key_usages.clear();
        Issuer::new(params, &self.key)
    }

    fn name_der(&self) -> Vec<u8> {
        self.cert.subject().der().to_vec()
    }
}

fn params(cn: &str, serial: u8, ca: bool) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.serial_number = Some(SerialNumber::from_slice(&[serial]));
    params.not_before = at(NOW - 30 * DAY);
    params.not_after = at(NOW + 365 * DAY);
    if ca {
        params.is_ca = IsCa::Ca(RcgenBasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    }
    params
}

fn issue(params: CertificateParams, issuer: Option<&Authority>) -> Authority {
    let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let der = match issuer {
        Some(issuer) => params.signed_by(&key, &issuer.issuer()).unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    let cert = Cert::from_der(der.der()).unwrap();
    Authority { params, key, cert }
}

/// Root CA -> intermediate CA -> leaf (serial 0x11).
struct Pki {
    root: Authority,
    inter: Authority,
    leaf: Authority,
}

impl Pki {
    fn new() -> Self {
        Self::with_leaf(|p| p)
    }

    fn with_leaf(adjust: impl FnOnce(CertificateParams) -> CertificateParams) -> Self {
        let root = issue(params("Test Root", 1, true), None);
        let inter = issue(params("Test Issuing CA", 2, true), Some(&root));
        let leaf = issue(adjust(params("Test Leaf", 0x11, false)), Some(&inter));
        Self { root, inter, leaf }
    }

    fn path(&self) -> Vec<&Cert> {
        vec![&self.leaf.cert, &self.inter.cert, &self.root.cert]
    }
}

fn revoked(serial: u8, reason: Option<RevocationReason>) -> RevokedCertParams {
    RevokedCertParams {
        serial_number: SerialNumber::from_slice(&[serial]),
        revocation_time: at(NOW - 2 * DAY),
        reason_code: reason,
        invalidity_date: None,
    }
}

/// A current CRL built by rcgen.
fn rcgen_crl(
    issuer: &Issuer<'_, &KeyPair>,
    revoked: Vec<RevokedCertParams>,
    idp: Option<CrlIssuingDistributionPoint>,
) -> Vec<u8> {
    CertificateRevocationListParams {
        this_update: at(NOW - DAY),
        next_update: at(NOW + 7 * DAY),
        crl_number: SerialNumber::from_slice(&[1]),
        issuing_distribution_point: idp,
        revoked_certs: revoked,
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(issuer)
    .unwrap()
    .der()
    .to_vec()
}

fn good_crls(pki: &Pki) -> CrlSet {
    let mut set = CrlSet::new();
    set.add_der(&rcgen_crl(&pki.root.issuer(), vec![], None))
        .unwrap();
    set.add_der(&rcgen_crl(&pki.inter.issuer(), vec![], None))
        .unwrap();
    set
}

fn check(path: &[&Cert], set: &CrlSet, mode: RevocationMode) -> (Result<(), CrlError>, Vec<Check>) {
    let mut checks = Vec::new();
    let result = check_path(path, set, UnixTime(NOW), mode, &mut checks);
    (result, checks)
}

#[track_caller]
fn assert_unknown(result: Result<(), CrlError>, index: usize) -> String {
    match result {
        Err(CrlError::StatusUnknown { index: i, detail }) => {
            assert_eq!(i, index, "{detail}");
            detail
        }
        other => panic!("expected unknown status for {index}, got {other:?}"),
    }
}

// --- A small DER writer for CRLs rcgen cannot express (delta CRLs, unknown critical
// extensions, indirect CRLs with certificateIssuer entries). ---

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend(content);
    out
}

fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(0x30, &parts.concat())
}

fn oid(dotted: &str) -> Vec<u8> {
    let arcs: Vec<u64> = dotted.split('.').map(|a| a.parse().unwrap()).collect();
    let mut content = Vec::new();
    let mut push = |mut v: u64| {
        let mut bytes = vec![(v & 0x7f) as u8];
        v >>= 7;
        while v > 0 {
            bytes.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        bytes.reverse();
        content.extend(bytes);
    };
    push(arcs[0] * 40 + arcs[1]);
    for arc in &arcs[2..] {
        push(*arc);
    }
    tlv(0x06, &content)
}

fn utc_time(unix: i64) -> Vec<u8> {
    let t = at(unix);
    let text = format!(
        "{:02}{:02}{:02}{:02}{:02}{:02}Z",
        t.year() % 100,
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    tlv(0x17, text.as_bytes())
}

fn extension(oid_text: &str, critical: bool, value: Vec<u8>) -> Vec<u8> {
    let mut parts = vec![oid(oid_text)];
    if critical {
        parts.push(vec![0x01, 0x01, 0xff]);
    }
    parts.push(tlv(0x04, &value));
    seq(&parts)
}

fn crl_number(n: u8) -> Vec<u8> {
    extension(OID_CRL_NUMBER, false, tlv(0x02, &[n]))
}

fn delta_indicator(base: u8) -> Vec<u8> {
    extension(OID_DELTA_CRL_INDICATOR, true, tlv(0x02, &[base]))
}

fn reason(code: u8) -> Vec<u8> {
    extension(OID_REASON_CODE, false, tlv(0x0a, &[code]))
}

fn certificate_issuer(name_der: &[u8]) -> Vec<u8> {
    extension(OID_CERTIFICATE_ISSUER, true, seq(&[tlv(0xa4, name_der)]))
}

/// IDP with only the indirectCRL flag.
fn indirect_idp() -> Vec<u8> {
    extension(
        OID_ISSUING_DISTRIBUTION_POINT,
        true,
        seq(&[vec![0x84, 0x01, 0xff]]),
    )
}

struct Entry {
    serial: Vec<u8>,
    extensions: Vec<Vec<u8>>,
}

fn entry(serial: u8, extensions: Vec<Vec<u8>>) -> Entry {
    Entry {
        serial: vec![serial],
        extensions,
    }
}

/// An entry whose serial is given as raw INTEGER content octets.
fn entry_with_serial(serial: &[u8]) -> Entry {
    Entry {
        serial: serial.to_vec(),
        extensions: Vec::new(),
    }
}

/// A version 2 CRL signed with Ed25519 by `key`, issued under `issuer_der`.
fn raw_crl(
    issuer_der: &[u8],
    key: &KeyPair,
    this_update: i64,
    next_update: i64,
    entries: &[Entry],
    extensions: &[Vec<u8>],
) -> Vec<u8> {
    let times = (this_update, next_update);
    raw_crl_with_version(Some(1), issuer_der, key, times, entries, extensions)
}

/// As [`raw_crl`], with the version field given (`None` omits it: version 1).
fn raw_crl_with_version(
    version: Option<u8>,
    issuer_der: &[u8],
    key: &KeyPair,
    (this_update, next_update): (i64, i64),
    entries: &[Entry],
    extensions: &[Vec<u8>],
) -> Vec<u8> {
    let algorithm = seq(&[oid("1.3.101.112")]);
    let mut tbs: Vec<Vec<u8>> = version.map(|v| tlv(0x02, &[v])).into_iter().collect();
    tbs.extend([
        algorithm.clone(),
        issuer_der.to_vec(),
        utc_time(this_update),
        utc_time(next_update),
    ]);
    if !entries.is_empty() {
        let list: Vec<Vec<u8>> = entries
            .iter()
            .map(|e| {
                let mut parts = vec![tlv(0x02, &e.serial), utc_time(NOW - 2 * DAY)];
                if !e.extensions.is_empty() {
                    parts.push(seq(&e.extensions));
                }
                seq(&parts)
            })
            .collect();
        tbs.push(seq(&list));
    }
    if !extensions.is_empty() {
        tbs.push(tlv(0xa0, &seq(extensions)));
    }
    let tbs = seq(&tbs);
    let signature = key.sign(&tbs).unwrap();
    let mut bits = vec![0u8];
    bits.extend(signature);
    seq(&[tbs, algorithm, tlv(0x03, &bits)])
}

/// A current CRL from `authority` with the given entries and extensions.
fn crl_from(authority: &Authority, entries: &[Entry], extensions: &[Vec<u8>]) -> Vec<u8> {
    raw_crl(
        &authority.name_der(),
        &authority.key,
        NOW - DAY,
        NOW + 7 * DAY,
        entries,
        extensions,
    )
}

// --- Basic status ---

#[test]
fn current_crls_without_the_serials_pass_every_certificate() {
    let pki = Pki::new();
    let (result, checks) = check(&pki.path(), &good_crls(&pki), RevocationMode::Required);
    result.unwrap();
    assert_eq!(checks.len(), 2);
    assert!(checks.iter().all(|c| c.outcome == Outcome::Pass));
    assert_eq!(checks[0].cert.as_ref().map(|c| c.position), Some(0));
}

#[test]
fn revoked_leaf_is_rejected() {
    let pki = Pki::new();
    let mut set = CrlSet::new();
    set.add_der(&rcgen_crl(&pki.root.issuer(), vec![], None))
        .unwrap();
    let crl = rcgen_crl(
        &pki.inter.issuer(),
        vec![revoked(0x11, Some(RevocationReason::KeyCompromise))],
        None,
    );
    set.add_der(&crl).unwrap();
    let (result, checks) = check(&pki.path(), &set, RevocationMode::Required);
    assert_eq!(result, Err(CrlError::Revoked { index: 0 }));
    assert!(
        checks[0].detail.contains("keyCompromise"),
        "{}",
        checks[0].detail
    );
    assert_eq!(checks[0].outcome, Outcome::Fail);
}

#[test]
fn revoked_intermediate_is_rejected() {
    let pki = Pki::new();
    let mut set = CrlSet::new();
    set.add_der(&rcgen_crl(&pki.root.issuer(), vec![revoked(2, None)], None))
        .unwrap();
    set.add_der(&rcgen_crl(&pki.inter.issuer(), vec![], None))
        .unwrap();
    let (result, _) = check(&pki.path(), &set, RevocationMode::Required);
    assert_eq!(result, Err(CrlError::Revoked { index: 1 }));
}

#[test]
fn other_serial_on_the_crl_does_not_revoke() {
    let pki = Pki::new();
    let mut set = CrlSet::new();
    set.add_der(&rcgen_crl(&pki.root.issuer(), vec![], None))
        .unwrap();
    set.add_der(&rcgen_crl(
        &pki.inter.issuer(),
        vec![revoked(0x12, None)],
        None,
    ))
    .unwrap();
    check(&pki.path(), &set, RevocationMode::Required)
        .0
        .unwrap();
}

#[test]
fn certificate_on_hold_is_rejected() {
    let pki = Pki::new();
    let mut set = good_crls(&pki);
    let crl = rcgen_crl(
        &pki.inter.issuer(),
        vec![revoked(0x11, Some(RevocationReason::CertificateHold))],
        None,
    );
    set.add_der(&crl).unwrap();
    let (result, checks) = check(&pki.path(), &set, RevocationMode::Required);
    assert_eq!(result, Err(CrlError::Revoked { index: 0 }));
    assert!(checks[0].detail.contains("on hold"), "{}", checks[0].detail);
}

// --- Modes ---

#[test]
fn required_mode_rejects_a_certificate_no_crl_covers() {
    let pki = Pki::new();
    let mut set = CrlSet::new();
    set.add_der(&rcgen_crl(&pki.root.issuer(), vec![], None))
        .unwrap();
    let detail = assert_unknown(check(&pki.path(), &set, RevocationMode::Required).0, 0);
    assert!(detail.contains("no CRL covers it"), "{detail}");
}

#[test]
fn if_available_mode_passes_a_certificate_no_crl_covers() {
    let pki = Pki::new();
    let mut set = CrlSet::new();
    set.add_der(&rcgen_crl(&pki.root.issuer(), vec![], None))
        .unwrap();
    let (result, checks) = check(&pki.path(), &set, RevocationMode::IfAvailable);
    result.unwrap();
    assert_eq!(checks[0].outcome, Outcome::NotApplicable);
    assert_eq!(checks[1].outcome, Outcome::Pass);
}

#[test]
fn if_available_mode_rejects_when_the_supplied_crl_is_unusable() {
    let pki = Pki::new();
    let mut set = CrlSet::new();
    let stale = raw_crl(
        &pki.inter.name_der(),
        &pki.inter.key,
        NOW - 10 * DAY,
        NOW - DAY,
        &[],
        &[crl_number(1)],
    );
    set.add_der(&stale).unwrap();
    assert_unknown(check(&pki.path(), &set, RevocationMode::IfAvailable).0, 0);
}

#[test]
fn empty_set_fails_required_mode_and_passes_if_available_mode() {
    let pki = Pki::new();
    let empty = CrlSet::new();
    let detail = assert_unknown(check(&pki.path(), &empty, RevocationMode::Required).0, 0);
    assert!(detail.contains("no CRL"), "{detail}");
    let (result, checks) = check(&pki.path(), &empty, RevocationMode::IfAvailable);
    result.unwrap();
    assert!(checks.iter().all(|c| c.outcome == Outcome::NotApplicable));
}

#[test]
fn off_mode_ignores_revocations() {
    let pki = Pki::new();
    let mut set = CrlSet::new();
    set.add_der(&rcgen_crl(
        &pki.inter.issuer(),
        vec![revoked(0x11, None)],
        None,
    ))
    .unwrap();
    let (result, checks) = check(&pki.path(), &set, RevocationMode::Off);
    result.unwrap();
    assert!(checks.iter().all(|c| c.outcome == Outcome::NotApplicable));
}

// --- Usability of a CRL ---

#[test]
fn crl_past_next_update_is_not_usable() {
    let pki = Pki::new();
    let mut set = good_crls(&pki);
    set.crls.retain(|c| c.issuer != *pki.inter.cert.subject());
    let stale = raw_crl(
        &pki.inter.name_der(),
        &pki.inter.key,
        NOW - 10 * DAY,
        NOW - 1,
        &[],
        &[crl_number(1)],
    );
    set.add_der(&stale).unwrap();
    let detail = assert_unknown(check(&pki.path(), &set, RevocationMode::Required).0, 0);
    assert!(detail.contains("out of date"), "{detail}");
}

#[test]
fn crl_current_until_exactly_next_update() {
    let pki = Pki::new();
    let mut set = good_crls(&pki);
    set.crls.retain(|c| c.issuer != *pki.inter.cert.subject());
    let crl = raw_crl(
        &pki.inter.name_der(),
        &pki.inter.key,
        NOW - DAY,
        NOW,
        &[],
        &[crl_number(1)],
    );
    set.add_der(&crl).unwrap();
    check(&pki.path(), &set, RevocationMode::Required)
        .0
        .unwrap();
}

#[test]
fn crl_issued_in_the_future_is_not_usable() {
    let pki = Pki::new();
    let mut set = good_crls(&pki);
    set.crls.retain(|c| c.issuer != *pki.inter.cert.subject());
    let future = raw_crl(
        &pki.inter.name_der(),
        &pki.inter.key,
        NOW + 1,
        NOW + 7 * DAY,
        &[],
        &[crl_number(1)],
    );
    set.add_der(&future).unwrap();
    let detail = assert_unknown(check(&pki.path(), &set, RevocationMode::Required).0, 0);
    assert!(detail.contains("not yet valid"), "{detail}");
}

#[test]
fn crl_signed_by_another_key_is_not_usable() {
    let pki = Pki::new();
    let mut set = good_crls(&pki);
    set.crls.retain(|c| c.issuer != *pki.inter.cert.subject());
    let impostor = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let forged = raw_crl(
        &pki.inter.name_der(),
        &impostor,
        NOW - DAY,
        NOW + DAY,
        &[],
        &[crl_number(1)],
    );
    set.add_der(&forged).unwrap();
    let detail = assert_unknown(check(&pki.path(), &set, RevocationMode::Required).0, 0);
    assert!(detail.contains("signature does not verify"), "{detail}");
}

#[test]
fn crl_from_another_issuer_does_not_cover_the_certificate() {
    let pki = Pki::new();
    let mut set = CrlSet::new();
    set.add_der(&rcgen_crl(&pki.root.issuer(), vec![], None))
        .unwrap();
    // The root's CRL does not speak for certificates the intermediate issued.
    let (result, _) = check(&pki.path(), &set, RevocationMode::Required);
    assert_unknown(result, 0);
}

#[test]
fn issuer_without_crl_sign_cannot_sign_crls() {
    let root = issue(params("Test Root", 1, true), None);
    let mut inter_params = params("No cRLSign CA", 2, true);
    inter_params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let inter = issue(inter_params, Some(&root));
    let leaf = issue(params("Test Leaf", 0x11, false), Some(&inter));
    let mut set = CrlSet::new();
    set.add_der(&rcgen_crl(&root.issuer(), vec![], None))
        .unwrap();
    set.add_der(&rcgen_crl(&inter.unchecked_issuer(), vec![], None))
        .unwrap();
    let path = [&leaf.cert, &inter.cert, &root.cert];
    let detail = assert_unknown(check(&path, &set, RevocationMode::Required).0, 0);
    assert!(detail.contains("cRLSign"), "{detail}");
}

#[test]
fn issuer_without_key_usage_may_sign_crls() {
    let root = issue(params("Test Root", 1, true), None);
    let mut inter_params = params("No keyUsage CA", 2, true);
    inter_params.key_usages.clear();
    let inter = issue(inter_params, Some(&root));
    let leaf = issue(params("Test Leaf", 0x11, false), Some(&inter));
    let mut set = CrlSet::new();
    set.add_der(&rcgen_crl(&root.issuer(), vec![], None))
        .unwrap();
    set.add_der(&rcgen_crl(&inter.issuer(), vec![], None))
        .unwrap();
    let path = [&leaf.cert, &inter.cert, &root.cert];
    check(&path, &set, RevocationMode::Required).0.unwrap();
}

#[test]
fn unknown_critical_crl_extension_makes_the_crl_unusable() {
    let pki = Pki::new();
    let mut set = good_crls(&pki);
    set.crls.retain(|c| c.issuer != *pki.inter.cert.subject());
    let crl = crl_from(
        &pki.inter,
        &[],
        &[crl_number(1), extension("1.2.3.4", true, vec![0x05, 0x00])],
    );
    set.add_der(&crl).unwrap();
    let detail = assert_unknown(check(&pki.path(), &set, RevocationMode::Required).0, 0);
    assert!(
        detail.contains("unrecognized critical CRL extension 1.2.3.4"),
        "{detail}"
    );
}

#[test]
fn unknown_non_critical_crl_extension_is_ignored() {
    let pki = Pki::new();
    let mut set = good_crls(&pki);
    set.crls.retain(|c| c.issuer != *pki.inter.cert.subject());
    let crl = crl_from(
        &pki.inter,
        &[],
        &[crl_number(1), extension("1.2.3.4", false, vec![0x05, 0x00])],
    );
    set.add_der(&crl).unwrap();
    check(&pki.path(), &set, RevocationMode::Required)
        .0
        .unwrap();
}

#[test]
fn unknown_critical_entry_extension_makes_the_whole_crl_unusable() {
    let pki = Pki::new();
    let mut set = good_crls(&pki);
    set.crls.retain(|c| c.issuer != *pki.inter.cert.subject());
    // The entry is for another serial; RFC 5280 §5.3 still forbids using the CRL.
    let crl = crl_from(
        &pki.inter,
        &[entry(
            0x12,
            vec![extension("1.2.3.4", true, vec![0x05, 0x00])],
        )],
        &[crl_number(1)],
    );
    set.add_der(&crl).unwrap();
    let detail = assert_unknown(check(&pki.path(), &set, RevocationMode::Required).0, 0);
    assert!(detail.contains("critical CRL entry extension"), "{detail}");
}

#[test]
fn crl_without_crl_number_is_not_usable() {
    let pki = Pki::new();
    let mut set = good_crls(&pki);
    set.crls.retain(|c| c.issuer != *pki.inter.cert.subject());
    set.add_der(&crl_from(&pki.inter, &[], &[])).unwrap();
    let detail = assert_unknown(check(&pki.path(), &set, RevocationMode::Required).0, 0);
    assert!(detail.contains("cRLNumber"), "{detail}");
}

#[test]
fn version_1_crl_is_not_usable() {
    let pki = Pki::new();
    let short = [&pki.leaf.cert, &pki.inter.cert];
    let times = (NOW - DAY, NOW + DAY);
    let name = pki.inter.name_der();
    let mut v1 = CrlSet::new();
    v1.add_der(&raw_crl_with_version(
        None,
        &name,
        &pki.inter.key,
        times,
        &[],
        &[crl_number(1)],
    ))
    .unwrap();
    let detail = assert_unknown(check(&short, &v1, RevocationMode::Required).0, 0);
    assert!(detail.contains("version 2"), "{detail}");
    let mut v2 = CrlSet::new();
    v2.add_der(&raw_crl_with_version(
        Some(1),
        &name,
        &pki.inter.key,
        times,
        &[],
        &[crl_number(1)],
    ))
    .unwrap();
    check(&short, &v2, RevocationMode::Required).0.unwrap();
}

#[test]
fn malformed_crl_is_an_input_error() {
    let mut set = CrlSet::new();
    assert!(matches!(
        set.add_der(&[0x30, 0x03, 0x02, 0x01]),
        Err(CrlError::Malformed { index: 0, .. })
    ));
    assert!(set.is_empty());
}

// --- Delta CRLs (RFC 5280 §5.2.4) ---

fn delta_pki(complete_entries: &[Entry], delta_entries: &[Entry], base: u8) -> (Pki, CrlSet) {
    let pki = Pki::new();
    let mut set = CrlSet::new();
    set.add_der(&rcgen_crl(&pki.root.issuer(), vec![], None))
        .unwrap();
    set.add_der(&crl_from(&pki.inter, complete_entries, &[crl_number(2)]))
        .unwrap();
    set.add_der(&crl_from(
        &pki.inter,
        delta_entries,
        &[crl_number(3), delta_indicator(base)],
    ))
    .unwrap();
    (pki, set)
}

#[test]
fn delta_crl_revokes_a_certificate_absent_from_the_complete_crl() {
    let (pki, set) = delta_pki(&[], &[entry(0x11, vec![reason(1)])], 2);
    let (result, checks) = check(&pki.path(), &set, RevocationMode::Required);
    assert_eq!(result, Err(CrlError::Revoked { index: 0 }));
    assert!(
        checks[0].detail.contains("delta CRL"),
        "{}",
        checks[0].detail
    );
}

#[test]
fn delta_remove_from_crl_lifts_a_hold() {
    let (pki, set) = delta_pki(
        &[entry(0x11, vec![reason(6)])],
        &[entry(0x11, vec![reason(8)])],
        2,
    );
    check(&pki.path(), &set, RevocationMode::Required)
        .0
        .unwrap();
}

#[test]
fn hold_stands_when_the_delta_does_not_apply_to_the_complete_crl() {
    // BaseCRLNumber 3 is newer than the complete CRL (number 2): the delta is not usable.
    let (pki, set) = delta_pki(
        &[entry(0x11, vec![reason(6)])],
        &[entry(0x11, vec![reason(8)])],
        3,
    );
    let (result, _) = check(&pki.path(), &set, RevocationMode::Required);
    assert_eq!(result, Err(CrlError::Revoked { index: 0 }));
}

#[test]
fn delta_crl_alone_does_not_cover_a_certificate() {
    let pki = Pki::new();
    let mut set = CrlSet::new();
    set.add_der(&rcgen_crl(&pki.root.issuer(), vec![], None))
        .unwrap();
    set.add_der(&crl_from(
        &pki.inter,
        &[],
        &[crl_number(3), delta_indicator(2)],
    ))
    .unwrap();
    assert_unknown(check(&pki.path(), &set, RevocationMode::Required).0, 0);
}

#[test]
fn delta_signed_by_another_key_is_ignored() {
    let pki = Pki::new();
    let mut set = CrlSet::new();
    set.add_der(&rcgen_crl(&pki.root.issuer(), vec![], None))
        .unwrap();
    set.add_der(&crl_from(
        &pki.inter,
        &[entry(0x11, vec![reason(6)])],
        &[crl_number(2)],
    ))
    .unwrap();
    let impostor = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let forged = raw_crl(
        &pki.inter.name_der(),
        &impostor,
        NOW - DAY,
        NOW + DAY,
        &[entry(0x11, vec![reason(8)])],
        &[crl_number(3), delta_indicator(2)],
    );
    set.add_der(&forged).unwrap();
    let (result, _) = check(&pki.path(), &set, RevocationMode::Required);
    assert_eq!(result, Err(CrlError::Revoked { index: 0 }));
}

// --- Issuing distribution point scope (RFC 5280 §5.2.5, §6.3.3(b)) ---

const ISSUING_CRL_URI: &str = "http://crl.example/issuing.crl";
const ROOT_CRL_URI: &str = "http://crl.example/root.crl";

fn scoped(uri: &str, scope: CrlScope) -> Option<CrlIssuingDistributionPoint> {
    Some(CrlIssuingDistributionPoint {
        distribution_point: CrlDistributionPoint {
            uris: vec![uri.to_owned()],
        },
        scope: Some(scope),
    })
}

fn with_dp(uri: &str) -> impl FnOnce(CertificateParams) -> CertificateParams + '_ {
    move |mut p| {
        p.crl_distribution_points = vec![CrlDistributionPoint {
            uris: vec![uri.to_owned()],
        }];
        p
    }
}

#[test]
fn user_certs_only_crl_covers_the_leaf_but_not_a_ca() {
    let root = issue(params("Test Root", 1, true), None);
    let inter = issue(
        with_dp(ROOT_CRL_URI)(params("Test Issuing CA", 2, true)),
        Some(&root),
    );
    let leaf = issue(
        with_dp(ISSUING_CRL_URI)(params("Test Leaf", 0x11, false)),
        Some(&inter),
    );
    let path = [&leaf.cert, &inter.cert, &root.cert];
    let mut set = CrlSet::new();
    set.add_der(&rcgen_crl(
        &inter.issuer(),
        vec![],
        scoped(ISSUING_CRL_URI, CrlScope::UserCertsOnly),
    ))
    .unwrap();
    let mut users_only = set.clone();
    users_only
        .add_der(&rcgen_crl(
            &root.issuer(),
            vec![],
            scoped(ROOT_CRL_URI, CrlScope::UserCertsOnly),
        ))
        .unwrap();
    assert_unknown(check(&path, &users_only, RevocationMode::Required).0, 1);
    let mut cas_only = set;
    cas_only
        .add_der(&rcgen_crl(
            &root.issuer(),
            vec![],
            scoped(ROOT_CRL_URI, CrlScope::CaCertsOnly),
        ))
        .unwrap();
    check(&path, &cas_only, RevocationMode::Required).0.unwrap();
}

#[test]
fn ca_certs_only_crl_does_not_cover_the_leaf() {
    let pki = Pki::with_leaf(with_dp(ISSUING_CRL_URI));
    let mut set = CrlSet::new();
    set.add_der(&rcgen_crl(
        &pki.inter.issuer(),
        vec![],
        scoped(ISSUING_CRL_URI, CrlScope::CaCertsOnly),
    ))
    .unwrap();
    let short = [&pki.leaf.cert, &pki.inter.cert];
    assert_unknown(check(&short, &set, RevocationMode::Required).0, 0);
}

#[test]
fn attribute_certs_only_crl_covers_nothing() {
    let pki = Pki::new();
    let mut set = CrlSet::new();
    let idp = extension(
        OID_ISSUING_DISTRIBUTION_POINT,
        true,
        seq(&[vec![0x85, 0x01, 0xff]]),
    );
    set.add_der(&crl_from(&pki.inter, &[], &[crl_number(1), idp]))
        .unwrap();
    let short = [&pki.leaf.cert, &pki.inter.cert];
    assert_unknown(check(&short, &set, RevocationMode::Required).0, 0);
}

#[test]
fn distribution_point_names_must_match() {
    let idp = Some(CrlIssuingDistributionPoint {
        distribution_point: CrlDistributionPoint {
            uris: vec!["http://crl.example/a.crl".to_owned()],
        },
        scope: None,
    });
    for (uri, covered) in [
        ("http://crl.example/a.crl", true),
        ("http://crl.example/b.crl", false),
    ] {
        let pki = Pki::with_leaf(with_dp(uri));
        let mut set = CrlSet::new();
        set.add_der(&rcgen_crl(&pki.inter.issuer(), vec![], idp.clone()))
            .unwrap();
        let short = [&pki.leaf.cert, &pki.inter.cert];
        let result = check(&short, &set, RevocationMode::Required).0;
        assert_eq!(result.is_ok(), covered, "{uri}: {result:?}");
    }
}

#[test]
fn crl_with_a_named_distribution_point_does_not_cover_a_certificate_without_one() {
    let pki = Pki::new();
    let idp = Some(CrlIssuingDistributionPoint {
        distribution_point: CrlDistributionPoint {
            uris: vec!["http://crl.example/a.crl".to_owned()],
        },
        scope: None,
    });
    let mut set = CrlSet::new();
    set.add_der(&rcgen_crl(&pki.inter.issuer(), vec![], idp))
        .unwrap();
    let short = [&pki.leaf.cert, &pki.inter.cert];
    assert_unknown(check(&short, &set, RevocationMode::Required).0, 0);
}

/// onlySomeReasons: [3] BIT STRING with the given named bits.
fn some_reasons_idp(bits: &[u8]) -> Vec<u8> {
    let mut flags = 0u16;
    for bit in bits {
        flags |= 0x8000 >> bit;
    }
    let content = [0x00, (flags >> 8) as u8, flags as u8];
    extension(
        OID_ISSUING_DISTRIBUTION_POINT,
        true,
        seq(&[tlv(0x83, &content)]),
    )
}

#[test]
fn crls_for_some_reasons_must_together_cover_all_reasons() {
    let pki = Pki::new();
    let short = [&pki.leaf.cert, &pki.inter.cert];
    let compromise = crl_from(&pki.inter, &[], &[crl_number(1), some_reasons_idp(&[1, 2])]);
    let others = crl_from(
        &pki.inter,
        &[],
        &[crl_number(1), some_reasons_idp(&[3, 4, 5, 6, 7, 8])],
    );
    let mut partial = CrlSet::new();
    partial.add_der(&compromise).unwrap();
    let detail = assert_unknown(check(&short, &partial, RevocationMode::Required).0, 0);
    assert!(detail.contains("every revocation reason"), "{detail}");
    let mut full = partial.clone();
    full.add_der(&others).unwrap();
    check(&short, &full, RevocationMode::Required).0.unwrap();
}

#[test]
fn revocation_on_a_some_reasons_crl_still_revokes() {
    let pki = Pki::new();
    let short = [&pki.leaf.cert, &pki.inter.cert];
    let mut set = CrlSet::new();
    let crl = crl_from(
        &pki.inter,
        &[entry(0x11, vec![reason(1)])],
        &[crl_number(1), some_reasons_idp(&[1, 2])],
    );
    set.add_der(&crl).unwrap();
    assert_eq!(
        check(&short, &set, RevocationMode::Required).0,
        Err(CrlError::Revoked { index: 0 })
    );
}

// --- Indirect CRLs and separate CRL issuers (RFC 5280 §5.2.5, §5.3.3, §6.3.3(f)) ---

/// A leaf whose distribution point names `crl_issuer` as its cRLIssuer.
fn leaf_with_crl_issuer(inter: &Authority, crl_issuer: &Authority) -> Authority {
    let dp = seq(&[seq(&[tlv(0xa2, &tlv(0xa4, &crl_issuer.name_der()))])]);
    let mut p = params("Indirect Leaf", 0x11, false);
    p.custom_extensions = vec![CustomExtension::from_oid_content(&[2, 5, 29, 31], dp)];
    issue(p, Some(inter))
}

struct Indirect {
    pki: Pki,
    crl_issuer: Authority,
    leaf: Authority,
}

fn indirect() -> Indirect {
    let pki = Pki::new();
    let mut p = params("CRL Issuer", 3, false);
    p.key_usages = vec![KeyUsagePurpose::CrlSign];
    let crl_issuer = issue(p, Some(&pki.root));
    let leaf = leaf_with_crl_issuer(&pki.inter, &crl_issuer);
    Indirect {
        pki,
        crl_issuer,
        leaf,
    }
}

impl Indirect {
    fn path(&self) -> Vec<&Cert> {
        vec![&self.leaf.cert, &self.pki.inter.cert, &self.pki.root.cert]
    }

    /// The root CRL (covering the intermediate and the CRL issuer) and the CRL issuer
    /// certificate as a candidate.
    fn base_set(&self) -> CrlSet {
        let mut set = CrlSet::new();
        set.add_der(&rcgen_crl(&self.pki.root.issuer(), vec![], None))
            .unwrap();
        set.add_issuer(self.crl_issuer.cert.clone()).unwrap();
        set
    }
}

#[test]
fn indirect_crl_from_a_validated_crl_issuer_covers_the_leaf() {
    let ind = indirect();
    let mut set = ind.base_set();
    set.add_der(&crl_from(
        &ind.crl_issuer,
        &[],
        &[crl_number(1), indirect_idp()],
    ))
    .unwrap();
    check(&ind.path(), &set, RevocationMode::Required)
        .0
        .unwrap();
}

#[test]
fn indirect_crl_entry_with_certificate_issuer_revokes() {
    let ind = indirect();
    let mut set = ind.base_set();
    let entries = [entry(
        0x11,
        vec![certificate_issuer(&ind.pki.inter.name_der())],
    )];
    set.add_der(&crl_from(
        &ind.crl_issuer,
        &entries,
        &[crl_number(1), indirect_idp()],
    ))
    .unwrap();
    assert_eq!(
        check(&ind.path(), &set, RevocationMode::Required).0,
        Err(CrlError::Revoked { index: 0 })
    );
}

#[test]
fn indirect_crl_entry_without_certificate_issuer_belongs_to_the_crl_issuer() {
    let ind = indirect();
    let mut set = ind.base_set();
    // Serial 0x11 of the CRL issuer's own namespace is not the leaf.
    set.add_der(&crl_from(
        &ind.crl_issuer,
        &[entry(0x11, vec![])],
        &[crl_number(1), indirect_idp()],
    ))
    .unwrap();
    check(&ind.path(), &set, RevocationMode::Required)
        .0
        .unwrap();
}

#[test]
fn crl_from_the_crl_issuer_must_be_marked_indirect() {
    let ind = indirect();
    let mut set = ind.base_set();
    set.add_der(&crl_from(&ind.crl_issuer, &[], &[crl_number(1)]))
        .unwrap();
    assert_unknown(check(&ind.path(), &set, RevocationMode::Required).0, 0);
}

#[test]
fn certificate_issuer_entry_in_a_direct_crl_makes_it_unusable() {
    let pki = Pki::new();
    let mut set = CrlSet::new();
    let entries = [entry(0x12, vec![certificate_issuer(&pki.root.name_der())])];
    set.add_der(&crl_from(&pki.inter, &entries, &[crl_number(1)]))
        .unwrap();
    let short = [&pki.leaf.cert, &pki.inter.cert];
    let detail = assert_unknown(check(&short, &set, RevocationMode::Required).0, 0);
    assert!(detail.contains("not indirect"), "{detail}");
}

#[test]
fn crl_issuer_certificate_must_be_supplied() {
    let ind = indirect();
    let mut set = CrlSet::new();
    set.add_der(&rcgen_crl(&ind.pki.root.issuer(), vec![], None))
        .unwrap();
    set.add_der(&crl_from(
        &ind.crl_issuer,
        &[],
        &[crl_number(1), indirect_idp()],
    ))
    .unwrap();
    let detail = assert_unknown(check(&ind.path(), &set, RevocationMode::Required).0, 0);
    assert!(detail.contains("no valid signer"), "{detail}");
}

#[test]
fn revoked_crl_issuer_cannot_vouch_for_the_leaf() {
    let ind = indirect();
    let mut set = CrlSet::new();
    set.add_der(&rcgen_crl(
        &ind.pki.root.issuer(),
        vec![revoked(3, None)],
        None,
    ))
    .unwrap();
    set.add_issuer(ind.crl_issuer.cert.clone()).unwrap();
    set.add_der(&crl_from(
        &ind.crl_issuer,
        &[],
        &[crl_number(1), indirect_idp()],
    ))
    .unwrap();
    let detail = assert_unknown(check(&ind.path(), &set, RevocationMode::Required).0, 0);
    assert!(detail.contains("CRL issuer"), "{detail}");
}

#[test]
fn crl_issuer_not_signed_by_the_path_is_refused() {
    let ind = indirect();
    // Same name, but issued by an unrelated root.
    let stranger_root = issue(params("Stranger Root", 9, true), None);
    let mut p = params("CRL Issuer", 3, false);
    p.key_usages = vec![KeyUsagePurpose::CrlSign];
    let impostor = issue(p, Some(&stranger_root));
    let mut set = CrlSet::new();
    set.add_der(&rcgen_crl(&ind.pki.root.issuer(), vec![], None))
        .unwrap();
    set.add_issuer(impostor.cert.clone()).unwrap();
    set.add_der(&crl_from(&impostor, &[], &[crl_number(1), indirect_idp()]))
        .unwrap();
    let detail = assert_unknown(check(&ind.path(), &set, RevocationMode::Required).0, 0);
    assert!(
        detail.contains("not signed by a certificate of the path"),
        "{detail}"
    );
}

#[test]
fn separate_crl_signing_key_of_the_issuer_is_accepted() {
    // The intermediate's CRLs are signed by a second certificate with the same name and
    // another key, issued by the root (PKITS 4.4.19).
    let pki = Pki::new();
    let mut p = params("Test Issuing CA", 4, false);
    p.key_usages = vec![KeyUsagePurpose::CrlSign];
    let crl_signer = issue(p, Some(&pki.root));
    let mut set = CrlSet::new();
    set.add_der(&rcgen_crl(&pki.root.issuer(), vec![], None))
        .unwrap();
    set.add_der(&crl_from(&crl_signer, &[], &[crl_number(1)]))
        .unwrap();
    assert_unknown(check(&pki.path(), &set, RevocationMode::Required).0, 0);
    set.add_issuer(crl_signer.cert.clone()).unwrap();
    check(&pki.path(), &set, RevocationMode::Required)
        .0
        .unwrap();
}

#[test]
fn mutated_crls_never_panic_and_never_vouch() {
    // Single-bit flips of a CRL that revokes the leaf: parsing may fail, the CRL may
    // become unusable or still revoke, but a mutation can never make the leaf pass,
    // because any change to the signed bytes breaks the signature.
    let pki = Pki::new();
    let original = crl_from(
        &pki.inter,
        &[entry(0x11, vec![reason(1)])],
        &[crl_number(1)],
    );
    let short = [&pki.leaf.cert, &pki.inter.cert];
    // One bit per byte, rotating through the bit positions, keeps the test fast while
    // touching every field.
    for byte in 0..original.len() {
        let bit = byte % 8;
        let mut mutated = original.clone();
        mutated[byte] ^= 1 << bit;
        let mut set = CrlSet::new();
        if set.add_der(&mutated).is_err() {
            continue;
        }
        let result = check(&short, &set, RevocationMode::Required).0;
        assert!(
            result.is_err(),
            "flip of bit {bit} in byte {byte} passed the leaf"
        );
    }
}

#[test]
fn critical_crl_number_makes_the_crl_unusable() {
    let pki = Pki::new();
    let short = [&pki.leaf.cert, &pki.inter.cert];
    let critical = extension(OID_CRL_NUMBER, true, tlv(0x02, &[1]));
    let mut set = CrlSet::new();
    set.add_der(&crl_from(&pki.inter, &[], &[critical]))
        .unwrap();
    let detail = assert_unknown(check(&short, &set, RevocationMode::Required).0, 0);
    assert!(detail.contains("cRLNumber is marked critical"), "{detail}");
}

#[test]
fn serial_listed_twice_makes_the_crl_unusable() {
    let pki = Pki::new();
    let short = [&pki.leaf.cert, &pki.inter.cert];
    let mut twice = CrlSet::new();
    let entries = [entry(0x12, vec![]), entry(0x12, vec![])];
    twice
        .add_der(&crl_from(&pki.inter, &entries, &[crl_number(1)]))
        .unwrap();
    let detail = assert_unknown(check(&short, &twice, RevocationMode::Required).0, 0);
    assert!(detail.contains("listed twice"), "{detail}");
    let mut once = CrlSet::new();
    let entries = [entry(0x12, vec![]), entry(0x13, vec![])];
    once.add_der(&crl_from(&pki.inter, &entries, &[crl_number(1)]))
        .unwrap();
    check(&short, &once, RevocationMode::Required).0.unwrap();
}

#[test]
fn same_serial_for_two_issuers_of_an_indirect_crl_is_not_a_duplicate() {
    let ind = indirect();
    let mut set = ind.base_set();
    let entries = [
        entry(0x12, vec![]),
        entry(0x12, vec![certificate_issuer(&ind.pki.inter.name_der())]),
    ];
    set.add_der(&crl_from(
        &ind.crl_issuer,
        &entries,
        &[crl_number(1), indirect_idp()],
    ))
    .unwrap();
    check(&ind.path(), &set, RevocationMode::Required)
        .0
        .unwrap();
}

// --- CA/Browser Forum rules (off by default) ---

const PARTITION_URI: &str = "http://crl.example/partition.crl";

/// GeneralNames content: the partition URI, then optionally a dNSName.
fn partition_names(with_dns: bool) -> Vec<u8> {
    let mut names = tlv(0x86, PARTITION_URI.as_bytes());
    if with_dns {
        names.extend(tlv(0x82, b"crl.example"));
    }
    names
}

fn partition_idp(with_dns: bool, indirect: bool) -> Vec<u8> {
    let mut fields = vec![tlv(0xa0, &tlv(0xa0, &partition_names(with_dns)))];
    if indirect {
        fields.push(vec![0x84, 0x01, 0xff]);
    }
    extension(OID_ISSUING_DISTRIBUTION_POINT, true, seq(&fields))
}

fn partition_leaf(pki: &Pki, with_dns: bool) -> Authority {
    let dp = seq(&[seq(&[tlv(0xa0, &tlv(0xa0, &partition_names(with_dns)))])]);
    let mut p = params("Partitioned Leaf", 0x11, false);
    p.custom_extensions = vec![CustomExtension::from_oid_content(&[2, 5, 29, 31], dp)];
    issue(p, Some(&pki.inter))
}

/// The result without and with the CABF rules.
fn with_and_without_cabf(leaf_dns: bool, idp_dns: bool, indirect: bool) -> [bool; 2] {
    let pki = Pki::new();
    let leaf = partition_leaf(&pki, leaf_dns);
    let short = [&leaf.cert, &pki.inter.cert];
    let crl = crl_from(
        &pki.inter,
        &[],
        &[crl_number(1), partition_idp(idp_dns, indirect)],
    );
    [false, true].map(|cabf| {
        let mut set = CrlSet::new();
        set.set_cabf_rules(cabf);
        set.add_der(&crl).unwrap();
        check(&short, &set, RevocationMode::Required).0.is_ok()
    })
}

#[test]
fn cabf_rules_accept_a_uri_partition() {
    assert_eq!(with_and_without_cabf(false, false, false), [true, true]);
}

#[test]
fn cabf_rules_refuse_an_idp_naming_more_than_uris() {
    assert_eq!(with_and_without_cabf(false, true, false), [true, false]);
}

#[test]
fn cabf_rules_refuse_an_indirect_partition() {
    assert_eq!(with_and_without_cabf(false, false, true), [true, false]);
}

#[test]
fn cabf_rules_refuse_a_distribution_point_naming_more_than_uris() {
    assert_eq!(with_and_without_cabf(true, false, false), [true, false]);
}

#[test]
fn signature_budget_bounds_the_work_of_many_forged_crls() {
    let pki = Pki::new();
    let short = [&pki.leaf.cert, &pki.inter.cert];
    let impostor = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let budget = 4;
    let mut set = CrlSet::new();
    for _ in 0..budget {
        let forged = raw_crl(
            &pki.inter.name_der(),
            &impostor,
            NOW - DAY,
            NOW + DAY,
            &[],
            &[crl_number(1)],
        );
        set.add_der(&forged).unwrap();
    }
    // The genuine CRL comes last, after the budget is spent: fail closed.
    set.add_der(&crl_from(&pki.inter, &[], &[crl_number(1)]))
        .unwrap();
    let mut checks = Vec::new();
    let result = check_path_within(
        &short,
        &set,
        UnixTime(NOW),
        RevocationMode::Required,
        &mut checks,
        budget,
    );
    let detail = assert_unknown(result, 0);
    assert!(detail.contains("budget exhausted"), "{detail}");
    // With the full budget the genuine CRL is reached.
    check(&short, &set, RevocationMode::Required).0.unwrap();
}

// --- DER readers ---

#[test]
fn reads_name_relative_to_crl_issuer() {
    // [0] { [1] { SEQUENCE { OID cn, UTF8String "CRL1" } } }
    let atv = seq(&[oid("2.5.4.3"), tlv(0x0c, b"CRL1")]);
    let content = tlv(0xa1, &atv);
    match distribution_point_name(&content).unwrap() {
        DistributionPointName::RelativeToIssuer(attrs) => {
            assert_eq!(attrs.len(), 1);
            assert_eq!(attrs[0].oid, "2.5.4.3");
            assert_eq!(attrs[0].value, b"CRL1");
        }
        other => panic!("expected a relative name, got {other:?}"),
    }
}

#[test]
fn reads_reason_flags_in_named_bit_order() {
    // keyCompromise (1) and cACompromise (2): 0b0110_0000.
    assert_eq!(reason_flags(&[0x05, 0x60]).unwrap(), 0b110);
    // aACompromise (8) lives in the second byte.
    assert_eq!(reason_flags(&[0x07, 0x00, 0x80]).unwrap(), 1 << 8);
    assert!(reason_flags(&[]).is_err());
    assert!(reason_flags(&[0x08, 0x00]).is_err());
}

#[test]
fn rejects_idp_with_two_scope_flags() {
    let value = seq(&[vec![0x81, 0x01, 0xff], vec![0x82, 0x01, 0xff]]);
    assert!(issuing_distribution_point(&value).is_err());
}

#[test]
fn canonical_integers_drop_redundant_leading_octets() {
    assert_eq!(canonical_integer(&[0x00, 0x00, 0x11]), &[0x11]);
    assert_eq!(canonical_integer(&[0x00, 0x80]), &[0x00, 0x80]);
    assert_eq!(canonical_integer(&[0xff, 0xff, 0x80]), &[0x80]);
    assert_eq!(canonical_integer(&[0xff, 0x7f]), &[0xff, 0x7f]);
    assert_eq!(canonical_integer(&[0x00]), &[0x00]);
}

#[test]
fn non_minimal_serial_on_the_crl_still_revokes() {
    let pki = Pki::new();
    let short = [&pki.leaf.cert, &pki.inter.cert];
    let mut set = CrlSet::new();
    let crl = crl_from(
        &pki.inter,
        &[entry_with_serial(&[0x00, 0x11])],
        &[crl_number(1)],
    );
    set.add_der(&crl).unwrap();
    assert_eq!(
        check(&short, &set, RevocationMode::Required).0,
        Err(CrlError::Revoked { index: 0 })
    );
}

#[test]
fn compares_crl_numbers_as_unsigned_integers() {
    assert!(compare_numbers(&[0x00, 0x80], &[0x7f]).is_gt());
    assert!(compare_numbers(&[0x01], &[0x00, 0x01]).is_eq());
    assert!(compare_numbers(&[0x01, 0x00], &[0xff]).is_gt());
}
