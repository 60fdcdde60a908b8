//! Chain verification speed: kakehashi's `verify_chain` against rustls-webpki 0.103 on the same
//! depth-3 chains (root → intermediate → serverAuth leaf with a DNS SAN), for Ed25519 and ECDSA
//! P-256, plus kakehashi's repeat-verification cache.
//!
//! Both verifiers start from DER for the leaf and the intermediate (parsing is part of the cost:
//! webpki parses too) and from trust anchors prepared once outside the loop. Both check the
//! serverAuth EKU and the DNS name. Run with `cargo bench -p kakehashi-pki --bench verify`.
//!
//! On a shared machine wall time includes the time other processes hold the CPU, and it does so
//! unevenly between benchmarks that run one after another. With `KAKEHASHI_BENCH_CLOCK=cpu` the
//! same benchmarks (as `verify_cpu/...`) measure the thread's own time on a CPU instead, read
//! from Linux's `/proc/thread-self/schedstat`, so the comparison holds under load.

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{Criterion, Throughput};
use kakehashi_pki::UnixTime;
use kakehashi_pki::cache::CachingVerifier;
use kakehashi_pki::cert::Cert;
use kakehashi_pki::crl::CrlSet;
use kakehashi_pki::purpose::EKU_SERVER_AUTH;
use kakehashi_pki::validate::{PeerName, ValidationOptions, verify_chain};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SignatureAlgorithm, date_time_ymd,
};
use rustls::pki_types::{self, CertificateDer, ServerName};
use webpki::{EndEntityCert, KeyUsage, anchor_from_trusted_cert};

/// The name the leaf carries and both verifiers are asked to match.
const DNS_NAME: &str = "node.example.jp";
/// 2030-06-01T00:00:00Z, inside every certificate's validity.
const NOW_SECONDS: u64 = 1_906_502_400;
/// Each benchmark measures for this long: enough for a stable median of microsecond-scale
/// work, short enough that the whole run fits in a minute on a shared machine.
const MEASUREMENT_TIME: Duration = Duration::from_secs(3);
/// Warm-up per benchmark.
const WARM_UP_TIME: Duration = Duration::from_secs(1);

struct Chain {
    root: Vec<u8>,
    intermediate: Vec<u8>,
    leaf: Vec<u8>,
}

fn ca_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("no SANs to parse");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = date_time_ymd(2025, 1, 1);
    params.not_after = date_time_ymd(2040, 1, 1);
    params
}

fn chain(alg: &'static SignatureAlgorithm) -> Chain {
    let key = || KeyPair::generate_for(alg).expect("rcgen generates keys for its own algorithms");
    let root = CertifiedIssuer::self_signed(ca_params("Bench Root"), key()).expect("root");
    let intermediate =
        CertifiedIssuer::signed_by(ca_params("Bench Issuing CA"), key(), &root).expect("issuer");
    let mut params = CertificateParams::new(vec![DNS_NAME.to_owned()]).expect("valid SAN");
    params.distinguished_name.push(DnType::CommonName, DNS_NAME);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.not_before = date_time_ymd(2026, 1, 1);
    params.not_after = date_time_ymd(2031, 1, 1);
    let leaf = params.signed_by(&key(), &intermediate).expect("leaf");
    Chain {
        root: root.der().to_vec(),
        intermediate: intermediate.der().to_vec(),
        leaf: leaf.der().to_vec(),
    }
}

fn options() -> ValidationOptions {
    let mut opts = ValidationOptions::new(UnixTime(NOW_SECONDS as i64));
    opts.required_ekus = vec![EKU_SERVER_AUTH.to_owned()];
    opts.peer_name = Some(PeerName::Dns(DNS_NAME.to_owned()));
    opts
}

fn kakehashi_once(chain: &Chain, anchors: &[Cert], crls: &CrlSet, opts: &ValidationOptions) {
    let leaf = Cert::from_der(&chain.leaf).expect("leaf parses");
    let intermediates = [Cert::from_der(&chain.intermediate).expect("intermediate parses")];
    let path = verify_chain(&leaf, &intermediates, anchors, crls, opts).expect("chain verifies");
    black_box(path);
}

fn webpki_once(chain: &Chain, anchors: &[pki_types::TrustAnchor<'_>], now: pki_types::UnixTime) {
    let leaf_der = CertificateDer::from(chain.leaf.as_slice());
    let intermediates = [CertificateDer::from(chain.intermediate.as_slice())];
    let leaf = EndEntityCert::try_from(&leaf_der).expect("leaf parses");
    let path = leaf
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            anchors,
            &intermediates,
            now,
            KeyUsage::server_auth(),
            None,
            None,
        )
        .expect("chain verifies");
    black_box(path);
    let name = ServerName::try_from(DNS_NAME).expect("valid DNS name");
    leaf.verify_is_valid_for_subject_name(&name)
        .expect("name matches");
}

fn bench_algorithm<M: Measurement>(
    c: &mut Criterion<M>,
    prefix: &str,
    label: &str,
    alg: &'static SignatureAlgorithm,
) {
    let chain = chain(alg);
    let opts = options();
    let anchors = vec![Cert::from_der(&chain.root).expect("root parses")];
    let crls = CrlSet::new();
    let root_der = CertificateDer::from(chain.root.as_slice());
    let webpki_anchors = [anchor_from_trusted_cert(&root_der).expect("root is an anchor")];
    let now = pki_types::UnixTime::since_unix_epoch(Duration::from_secs(NOW_SECONDS));
    let cached = CachingVerifier::new(anchors.clone(), &[]).expect("no CRLs to reject");
    let intermediates: [&[u8]; 1] = [&chain.intermediate];

    // Both verifiers must accept before their speed means anything.
    kakehashi_once(&chain, &anchors, &crls, &opts);
    webpki_once(&chain, &webpki_anchors, now);
    let first = cached
        .verify_der(&chain.leaf, &intermediates, &opts)
        .expect("certificates parse");
    assert!(
        first.is_ok(),
        "cached verifier accepts: {:?}",
        first.as_ref().as_ref().err()
    );

    let mut group = c.benchmark_group(format!("{prefix}/{label}"));
    group
        .measurement_time(MEASUREMENT_TIME)
        .warm_up_time(WARM_UP_TIME);
    group.bench_function("kakehashi", |b| {
        b.iter(|| kakehashi_once(&chain, &anchors, &crls, &opts));
    });
    group.bench_function("webpki", |b| {
        b.iter(|| webpki_once(&chain, &webpki_anchors, now));
    });
    group.bench_function("kakehashi_cached", |b| {
        b.iter(|| {
            let verdict = cached
                .verify_der(black_box(&chain.leaf), black_box(&intermediates), &opts)
                .expect("certificates parse");
            assert!(verdict.is_ok());
        });
    });
    group.finish();
}

fn verify<M: Measurement>(c: &mut Criterion<M>, prefix: &str) {
    bench_algorithm(c, prefix, "ed25519", &rcgen::PKCS_ED25519);
    bench_algorithm(c, prefix, "p256", &rcgen::PKCS_ECDSA_P256_SHA256);
}

fn main() {
    if std::env::var("KAKEHASHI_BENCH_CLOCK").is_ok_and(|v| v == "cpu") {
        let mut c = Criterion::default()
            .with_measurement(OnCpuTime)
            .configure_from_args();
        verify(&mut c, "verify_cpu");
        c.final_summary();
    } else {
        let mut c = Criterion::default().configure_from_args();
        verify(&mut c, "verify");
        c.final_summary();
    }
}

/// Time the current thread has spent running on a CPU.
struct OnCpuTime;

/// Nanoseconds the current thread has spent running on a CPU: the first field of
/// `/proc/thread-self/schedstat` (Linux, `Documentation/scheduler/sched-stats.rst`).
fn thread_on_cpu_ns() -> u64 {
    // The kernel brings a running thread's total up to date only when it passes through the
    // scheduler (otherwise the figure lags by up to a timer tick); sched_yield does that. Its
    // fixed cost per sample lands in the intercept of criterion's regression, not the slope.
    std::thread::yield_now();
    let text = std::fs::read_to_string("/proc/thread-self/schedstat")
        .expect("KAKEHASHI_BENCH_CLOCK=cpu needs Linux's /proc/thread-self/schedstat");
    text.split_whitespace()
        .next()
        .and_then(|field| field.parse().ok())
        .expect("schedstat starts with the on-CPU time in nanoseconds")
}

impl Measurement for OnCpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_on_cpu_ns()
    }

    fn end(&self, start: u64) -> u64 {
        thread_on_cpu_ns().saturating_sub(start)
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &NanosecondFormatter
    }
}

/// Formats nanoseconds as criterion's wall-time output does (ns, µs, ms, s).
struct NanosecondFormatter;

impl ValueFormatter for NanosecondFormatter {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if typical < 1e3 {
            (1.0, "ns")
        } else if typical < 1e6 {
            (1e-3, "µs")
        } else if typical < 1e9 {
            (1e-6, "ms")
        } else {
            (1e-9, "s")
        };
        for value in values {
            *value *= factor;
        }
        unit
    }

    fn scale_throughputs(
        &self,
        _typical: f64,
        _throughput: &Throughput,
        _: &mut [f64],
    ) -> &'static str {
        // These benchmarks declare no throughput; values stay in nanoseconds.
        "ns"
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}
