use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CertifiedIssuer, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, SerialNumber,
    date_time_ymd,
};

use super::*;
use crate::purpose::EKU_SERVER_AUTH;
use crate::validate::PeerName;

/// 2030-06-01T00:00:00Z, inside every test certificate's validity.
const NOW: UnixTime = UnixTime(1_906_502_400);
/// 2031-01-01T00:00:00Z, the test leaves' notAfter.
const LEAF_NOT_AFTER: UnixTime = UnixTime(1_924_992_000);

struct Pki {
    root: CertifiedIssuer<'static, KeyPair>,
    intermediate: CertifiedIssuer<'static, KeyPair>,
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = date_time_ymd(2025, 1, 1);
    params.not_after = date_time_ymd(2040, 1, 1);
    // RFC 5280 §4.2.1.1: every certificate but a self-signed one carries the authority key
    // identifier (ignored by rcgen for self-signed ones).
    params.use_authority_key_identifier_extension = true;
    params
}

fn pki() -> Pki {
    let root_key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let root = CertifiedIssuer::self_signed(ca_params("Test Root"), root_key).unwrap();
    Pki {
        intermediate: intermediate(&root),
        root,
    }
}

/// A fresh intermediate under `root` (a new key each call, same name).
fn intermediate(root: &CertifiedIssuer<'static, KeyPair>) -> CertifiedIssuer<'static, KeyPair> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    CertifiedIssuer::signed_by(ca_params("Test Issuing CA"), key, root).unwrap()
}

fn leaf(issuer: &CertifiedIssuer<'static, KeyPair>, dns: &str) -> Vec<u8> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let mut params = CertificateParams::new(vec![dns.to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, dns);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.not_before = date_time_ymd(2026, 1, 1);
    params.not_after = date_time_ymd(2031, 1, 1);
    params.use_authority_key_identifier_extension = true;
    params.signed_by(&key, issuer).unwrap().der().to_vec()
}

fn verifier(pki: &Pki, crls: &[&[u8]], capacity: usize) -> CachingVerifier {
    let root = Cert::from_der(pki.root.der()).unwrap();
    CachingVerifier::with_capacity(vec![root], crls, capacity).unwrap()
}

fn opts(now: UnixTime) -> ValidationOptions {
    let mut opts = ValidationOptions::new(now);
    opts.required_ekus = vec![EKU_SERVER_AUTH.to_owned()];
    opts.peer_name = Some(PeerName::Dns("node.example.jp".into()));
    opts
}

#[test]
fn repeat_inside_the_window_returns_the_same_verdict() {
    let pki = pki();
    let v = verifier(&pki, &[], CACHE_ENTRIES_MAX);
    let leaf = leaf(&pki.intermediate, "node.example.jp");
    let chain: [&[u8]; 1] = [pki.intermediate.der()];
    let first = v.verify_der(&leaf, &chain, &opts(NOW)).unwrap();
    let path_len = first.as_ref().as_ref().map(|p| p.path().len());
    assert_eq!(
        path_len.ok(),
        Some(3),
        "{:?}",
        first.as_ref().as_ref().err()
    );
    let again = v
        .verify_der(&leaf, &chain, &opts(UnixTime(NOW.0 + 60)))
        .unwrap();
    assert!(
        Arc::ptr_eq(&first, &again),
        "a repeat must be answered from the cache"
    );
    assert_eq!(v.cache().len(), 1);
}

#[test]
fn a_failing_verdict_is_cached_too() {
    let pki = pki();
    let v = verifier(&pki, &[], CACHE_ENTRIES_MAX);
    let leaf = leaf(&pki.intermediate, "other.example.sg");
    let chain: [&[u8]; 1] = [pki.intermediate.der()];
    let first = v.verify_der(&leaf, &chain, &opts(NOW)).unwrap();
    assert!(first.is_err(), "the peer name does not match");
    let again = v.verify_der(&leaf, &chain, &opts(NOW)).unwrap();
    assert!(Arc::ptr_eq(&first, &again));
}

#[test]
fn a_time_past_the_leaf_not_after_misses() {
    let pki = pki();
    let v = verifier(&pki, &[], CACHE_ENTRIES_MAX);
    let leaf = leaf(&pki.intermediate, "node.example.jp");
    let chain: [&[u8]; 1] = [pki.intermediate.der()];
    let before = UnixTime(LEAF_NOT_AFTER.0 - 10);
    assert!(v.verify_der(&leaf, &chain, &opts(before)).unwrap().is_ok());
    let after = UnixTime(LEAF_NOT_AFTER.0 + 10);
    let expired = v.verify_der(&leaf, &chain, &opts(after)).unwrap();
    let err = expired.as_ref().as_ref().unwrap_err();
    assert!(
        matches!(err.error(), Error::Expired { .. }),
        "expected expiry, got {err}"
    );
    // Re-entering the first window after the expired verdict replaced it misses again and
    // recomputes the valid verdict.
    assert!(v.verify_der(&leaf, &chain, &opts(before)).unwrap().is_ok());
}

#[test]
fn a_time_beyond_the_window_cap_misses() {
    let pki = pki();
    let v = verifier(&pki, &[], CACHE_ENTRIES_MAX);
    let leaf = leaf(&pki.intermediate, "node.example.jp");
    let chain: [&[u8]; 1] = [pki.intermediate.der()];
    let first = v.verify_der(&leaf, &chain, &opts(NOW)).unwrap();
    let later = UnixTime(NOW.0 + CACHE_WINDOW_SECONDS_MAX + 1);
    let second = v.verify_der(&leaf, &chain, &opts(later)).unwrap();
    assert!(!Arc::ptr_eq(&first, &second));
    assert!(second.is_ok());
}

#[test]
fn a_changed_intermediate_misses() {
    let pki = pki();
    let v = verifier(&pki, &[], CACHE_ENTRIES_MAX);
    let leaf = leaf(&pki.intermediate, "node.example.jp");
    let good: [&[u8]; 1] = [pki.intermediate.der()];
    assert!(v.verify_der(&leaf, &good, &opts(NOW)).unwrap().is_ok());
    // Same name, another key: the leaf's signature no longer verifies, and the cache must
    // not answer with the verdict of the first intermediate.
    let impostor = intermediate(&pki.root);
    let bad: [&[u8]; 1] = [impostor.der()];
    assert!(v.verify_der(&leaf, &bad, &opts(NOW)).unwrap().is_err());
    assert_eq!(v.cache().len(), 2);
}

#[test]
fn changed_options_miss() {
    let pki = pki();
    let v = verifier(&pki, &[], CACHE_ENTRIES_MAX);
    let leaf = leaf(&pki.intermediate, "node.example.jp");
    let chain: [&[u8]; 1] = [pki.intermediate.der()];
    assert!(v.verify_der(&leaf, &chain, &opts(NOW)).unwrap().is_ok());
    let mut other = opts(NOW);
    other.peer_name = Some(PeerName::Dns("elsewhere.example.jp".into()));
    assert!(v.verify_der(&leaf, &chain, &other).unwrap().is_err());
}

#[test]
fn parsed_and_der_entry_points_share_entries() {
    let pki = pki();
    let v = verifier(&pki, &[], CACHE_ENTRIES_MAX);
    let leaf_der = leaf(&pki.intermediate, "node.example.jp");
    let chain: [&[u8]; 1] = [pki.intermediate.der()];
    let first = v.verify_der(&leaf_der, &chain, &opts(NOW)).unwrap();
    let leaf = Cert::from_der(&leaf_der).unwrap();
    let intermediate = Cert::from_der(pki.intermediate.der()).unwrap();
    let again = v.verify(&leaf, &[intermediate], &opts(NOW));
    assert!(Arc::ptr_eq(&first, &again));
}

#[test]
fn eviction_keeps_the_cache_at_its_bound() {
    let pki = pki();
    let v = verifier(&pki, &[], 2);
    let chain: [&[u8]; 1] = [pki.intermediate.der()];
    let leaves: Vec<Vec<u8>> = (0..3)
        .map(|_| leaf(&pki.intermediate, "node.example.jp"))
        .collect();
    let verdicts: Vec<_> = leaves
        .iter()
        .map(|l| v.verify_der(l, &chain, &opts(NOW)).unwrap())
        .collect();
    assert_eq!(v.cache().len(), 2);
    // The newest is still cached; the oldest was evicted and is recomputed.
    let newest = v.verify_der(&leaves[2], &chain, &opts(NOW)).unwrap();
    assert!(Arc::ptr_eq(&verdicts[2], &newest));
    let oldest = v.verify_der(&leaves[0], &chain, &opts(NOW)).unwrap();
    assert!(!Arc::ptr_eq(&verdicts[0], &oldest));
    assert!(oldest.is_ok());
    assert_eq!(v.cache().len(), 2);
}

#[test]
fn crl_update_times_bound_the_window() {
    let pki = pki();
    let half_hour = time::Duration::minutes(30);
    let now = date_time_ymd(2030, 6, 1);
    let params = CertificateRevocationListParams {
        this_update: now - half_hour,
        next_update: now + half_hour,
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: Vec::new(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(&pki.intermediate).unwrap().der().to_vec();
    let v = verifier(&pki, &[&crl], CACHE_ENTRIES_MAX);
    let leaf_der = leaf(&pki.intermediate, "node.example.jp");
    let chain: [&[u8]; 1] = [pki.intermediate.der()];
    let verdict = v.verify_der(&leaf_der, &chain, &opts(NOW)).unwrap();
    assert!(verdict.is_ok(), "{:?}", verdict.as_ref().as_ref().err());
    let key = v.key(
        &Sha256::digest(&leaf_der).into(),
        &[Sha256::digest(pki.intermediate.der()).into()],
        &opts(NOW),
    );
    let at = |offset: i64| v.cache().get(&key, UnixTime(NOW.0 + offset)).is_some();
    assert!(at(1799), "still inside thisUpdate..nextUpdate");
    assert!(!at(1801), "past nextUpdate the CRL is stale");
    assert!(at(-1799), "still inside thisUpdate..nextUpdate");
    assert!(!at(-1801), "before thisUpdate the CRL is not yet issued");
}

#[test]
fn window_stops_at_the_nearest_boundary_on_each_side() {
    let w = TimeWindow::around(
        UnixTime(1000),
        [UnixTime(900), UnixTime(1500), UnixTime(100), UnixTime(5000)],
    );
    assert_eq!(w.from, UnixTime(901));
    assert_eq!(w.until, UnixTime(1500));
    assert!(w.contains(UnixTime(901)));
    assert!(!w.contains(UnixTime(900)));
    assert!(w.contains(UnixTime(1499)));
    assert!(!w.contains(UnixTime(1500)));
}

#[test]
fn window_at_a_boundary_is_that_one_second() {
    let w = TimeWindow::around(UnixTime(1000), [UnixTime(1000)]);
    assert_eq!((w.from, w.until), (UnixTime(1000), UnixTime(1001)));
}

#[test]
fn window_without_boundaries_is_capped() {
    let w = TimeWindow::around(UnixTime(0), []);
    assert_eq!(w.from, UnixTime(-CACHE_WINDOW_SECONDS_MAX));
    assert_eq!(w.until, UnixTime(CACHE_WINDOW_SECONDS_MAX));
    // At the end of representable time the window is empty (nothing is cached) rather
    // than overflowing.
    let edge = TimeWindow::around(UnixTime(i64::MAX), [UnixTime(i64::MAX)]);
    assert_eq!(edge.from, edge.until);
    assert!(!edge.contains(UnixTime(i64::MAX)));
}

#[test]
fn keys_separate_the_split_between_items() {
    let mut a = CacheKey::builder("t");
    a.bytes(b"ab").bytes(b"c");
    let mut b = CacheKey::builder("t");
    b.bytes(b"a").bytes(b"bc");
    assert_ne!(a.finish(), b.finish());
    let mut c = CacheKey::builder("u");
    c.bytes(b"ab").bytes(b"c");
    assert_ne!(a.finish(), c.finish());
}

#[test]
fn signature_cache_remembers_good_signatures_only() {
    let pki = pki();
    let root = Cert::from_der(pki.root.der()).unwrap();
    let impostor = Cert::from_der(intermediate(&pki.root).der()).unwrap();
    let issuer = Cert::from_der(pki.intermediate.der()).unwrap();
    let leaf = Cert::from_der(&leaf(&pki.intermediate, "node.example.jp")).unwrap();
    let cache = SignatureCache::with_capacity(2);
    cache.verify_cert_signed_by(&issuer, &root).unwrap();
    cache.verify_cert_signed_by(&issuer, &root).unwrap();
    assert_eq!(cache.len(), 1);
    // Same issuer name, other key: not answered from the entry of the real issuer.
    assert!(cache.verify_cert_signed_by(&leaf, &impostor).is_err());
    assert!(cache.verify_cert_signed_by(&leaf, &impostor).is_err());
    assert_eq!(cache.len(), 1);
    cache.verify_cert_signed_by(&leaf, &issuer).unwrap();
    cache.verify_cert_signed_by(&impostor, &root).unwrap();
    assert_eq!(cache.len(), 2, "the oldest entry is evicted at the bound");
}

fn committed_mra() -> Mra {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../certs");
    Mra::load(&root.join("mra.toml")).unwrap()
}

fn committed_chain(path: &str) -> Vec<Cert> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../certs");
    Cert::parse_pem_or_der_bundle(&std::fs::read(root.join(path)).unwrap()).unwrap()
}

#[test]
fn recognition_cache_answers_repeats_with_the_first_verdict_and_keys_on_every_input() {
    let mra = committed_mra();
    let cache = RecognitionCache::new(&mra).unwrap();
    let chain = committed_chain("sg/banks/KKHASGS0.pem");
    let (leaf, rest) = chain.split_first().unwrap();
    let first = cache.recognize(&mra, "JP", Purpose::PaymentSigning, leaf, rest, &[], NOW);
    assert!(first.recognized);
    assert_eq!(
        *first,
        mra.recognize("JP", Purpose::PaymentSigning, leaf, rest, &[], NOW),
        "the cache returns what the agreement decides"
    );
    let again = cache.recognize(&mra, "JP", Purpose::PaymentSigning, leaf, rest, &[], NOW);
    assert!(
        Arc::ptr_eq(&first, &again),
        "a repeat is served from the cache"
    );
    // Another purpose or relying party is another question.
    let tls = cache.recognize(&mra, "JP", Purpose::NodeTls, leaf, rest, &[], NOW);
    assert!(!tls.recognized);
    let th = cache.recognize(&mra, "TH", Purpose::PaymentSigning, leaf, rest, &[], NOW);
    assert!(!Arc::ptr_eq(&first, &th));
    // After the leaf expires (2035-06-01) the cached verdict is not reused.
    let later = UnixTime(2_100_000_000);
    let expired = cache.recognize(&mra, "JP", Purpose::PaymentSigning, leaf, rest, &[], later);
    assert!(!expired.recognized);
}

#[test]
fn shared_intermediates_are_the_same_question_with_the_same_answer() {
    let mra = committed_mra();
    let chain = committed_chain("sg/banks/KKHASGS0.pem");
    let (leaf, rest) = chain.split_first().unwrap();
    let shared: Vec<Arc<Cert>> = rest.iter().cloned().map(Arc::new).collect();
    // A miss through the shared form decides what the agreement decides, and the owned
    // form's repeat is answered from that entry: one key for both forms.
    let cache = RecognitionCache::new(&mra).unwrap();
    let first = cache.recognize(&mra, "JP", Purpose::PaymentSigning, leaf, &shared, &[], NOW);
    assert!(first.recognized);
    assert_eq!(
        *first,
        mra.recognize("JP", Purpose::PaymentSigning, leaf, rest, &[], NOW)
    );
    let owned = cache.recognize(&mra, "JP", Purpose::PaymentSigning, leaf, rest, &[], NOW);
    assert!(Arc::ptr_eq(&first, &owned));
    let again = cache.recognize(&mra, "JP", Purpose::PaymentSigning, leaf, &shared, &[], NOW);
    assert!(Arc::ptr_eq(&first, &again));
    // The chain is part of the question: without its intermediate, another answer.
    let bare =
        cache.recognize::<Arc<Cert>>(&mra, "JP", Purpose::PaymentSigning, leaf, &[], &[], NOW);
    assert!(!Arc::ptr_eq(&first, &bare));
    assert_eq!(
        *bare,
        mra.recognize("JP", Purpose::PaymentSigning, leaf, &[], &[], NOW)
    );
    // And expiry still ends the reuse.
    let later = UnixTime(2_100_000_000);
    let expired = cache.recognize(
        &mra,
        "JP",
        Purpose::PaymentSigning,
        leaf,
        &shared,
        &[],
        later,
    );
    assert!(!expired.recognized);
}

#[test]
fn recognition_cache_window_stops_at_the_clause_dates() {
    let mra = committed_mra();
    let cache = RecognitionCache::new(&mra).unwrap();
    let chain = committed_chain("sg/banks/KKHASGS0.pem");
    let (leaf, rest) = chain.split_first().unwrap();
    // JP-recognizes-SG ends 2036-01-01: a verdict from one second before must not be
    // reused one second after.
    let end = UnixTime(2_082_758_400);
    let before = cache.recognize(
        &mra,
        "JP",
        Purpose::PaymentSigning,
        leaf,
        rest,
        &[],
        UnixTime(end.0 - 1),
    );
    let after = cache.recognize(
        &mra,
        "JP",
        Purpose::PaymentSigning,
        leaf,
        rest,
        &[],
        UnixTime(end.0 + 1),
    );
    assert!(!Arc::ptr_eq(&before, &after));
    assert_eq!(
        *after,
        mra.recognize(
            "JP",
            Purpose::PaymentSigning,
            leaf,
            rest,
            &[],
            UnixTime(end.0 + 1)
        )
    );
}
