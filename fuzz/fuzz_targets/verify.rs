//! Arbitrary bytes as a leaf, intermediates, anchors, CRLs, options and an MRA with the files it
//! references, through every parsing and verification entry point of kakehashi-pki: bundle
//! parsing, `CrlSet::add_der`, `verify_chain`, the repeat-verification cache and
//! `Mra::parse_with` / `verify_signatures` / `recognize`. Nothing may panic.
//!
//! The cache is also checked against the verifier: a repeat must hit, and a verdict the cache
//! returns for another time must decide as a fresh verification at that time does.
//!
//! Input layout: sections separated by `#%#`, each starting with a kind byte (see `Kind`);
//! `fuzz/README.md` shows how to build seeds from the committed dev PKI.
#![no_main]

use std::mem::discriminant;
use std::path::Path;
use std::sync::Arc;

use kakehashi_pki::UnixTime;
use kakehashi_pki::cache::CachingVerifier;
use kakehashi_pki::cert::Cert;
use kakehashi_pki::crl::{CrlSet, RevocationMode};
use kakehashi_pki::mra::{Mra, MraError};
use kakehashi_pki::purpose::{EKU_SERVER_AUTH, Purpose};
use kakehashi_pki::validate::{PeerName, Profile, ValidationOptions, verify_chain};
use libfuzzer_sys::fuzz_target;

/// Separates sections; three bytes, so the fuzzer finds it easily and it rarely occurs in DER.
const SEPARATOR: &[u8] = b"#%#";
/// Sections read per input: enough for a chain, anchors, CRLs, an MRA and its files, while
/// keeping one execution in the milliseconds.
const SECTIONS_MAX: usize = 32;
/// 2030-01-01T00:00:00Z, the validation time when no options section gives one.
const DEFAULT_TIME: i64 = 1_893_456_000;

struct Input<'a> {
    leaf: Option<Cert>,
    intermediates: Vec<Cert>,
    anchors: Vec<Cert>,
    crls: Vec<&'a [u8]>,
    mra: Option<&'a str>,
    files: Vec<&'a [u8]>,
    flags: u8,
    purpose: Purpose,
    time: i64,
    later: i64,
    peer: Option<&'a str>,
    relying: &'a str,
}

fuzz_target!(|data: &[u8]| run(data));

fn run(data: &[u8]) {
    let input = read(data);
    let mut crls = CrlSet::new();
    for der in &input.crls {
        let _ = crls.add_der(der);
    }
    for cert in &input.intermediates {
        let _ = crls.add_issuer(cert.clone());
    }
    if let Some(leaf) = &input.leaf {
        check_chain(&input, leaf, &crls);
    }
    if let Some(text) = input.mra {
        check_mra(&input, text);
    }
}

/// Splits the input into sections and parses each by its kind byte.
fn read(data: &[u8]) -> Input<'_> {
    let mut input = Input {
        leaf: None,
        intermediates: Vec::new(),
        anchors: Vec::new(),
        crls: Vec::new(),
        mra: None,
        files: Vec::new(),
        flags: 0,
        purpose: Purpose::NodeTls,
        time: DEFAULT_TIME,
        later: 0,
        peer: None,
        relying: "SG",
    };
    for section in split(data).take(SECTIONS_MAX) {
        let Some((&kind, body)) = section.split_first() else {
            continue;
        };
        match kind {
            // A chain: the leaf, then intermediates, PEM or DER.
            b'C' => {
                if let Ok(certs) = Cert::parse_pem_or_der_bundle(body) {
                    let mut certs = certs.into_iter();
                    input.leaf = certs.next();
                    input.intermediates.extend(certs);
                }
            }
            b'I' => {
                if let Ok(certs) = Cert::parse_pem_or_der_bundle(body) {
                    input.intermediates.extend(certs);
                }
            }
            b'A' => {
                if let Ok(certs) = Cert::parse_pem_or_der_bundle(body) {
                    input.anchors.extend(certs);
                }
            }
            // A single DER certificate, through the strict single-certificate parser.
            b'D' => {
                if let Ok(cert) = Cert::from_der(body) {
                    input.intermediates.push(cert);
                }
            }
            b'R' => input.crls.push(body),
            b'M' => input.mra = std::str::from_utf8(body).ok(),
            b'F' => input.files.push(body),
            b'O' => options(&mut input, body),
            _ => {}
        }
    }
    input
}

fn split(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let current = rest?;
        match current
            .windows(SEPARATOR.len())
            .position(|w| w == SEPARATOR)
        {
            Some(at) => {
                rest = Some(&current[at + SEPARATOR.len()..]);
                Some(&current[..at])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

/// Options: flags, purpose, time, a second time offset, then `peer|relying` as text.
fn options<'a>(input: &mut Input<'a>, body: &'a [u8]) {
    let byte = |i: usize| body.get(i).copied().unwrap_or(0);
    input.flags = byte(0);
    input.purpose = Purpose::ALL[usize::from(byte(1)) % Purpose::ALL.len()];
    if let Some(time) = body.get(2..10) {
        input.time = i64::from_be_bytes(time.try_into().unwrap_or_default());
    }
    if let Some(later) = body.get(10..14) {
        input.later = i64::from(i32::from_be_bytes(later.try_into().unwrap_or_default()));
    }
    if let Some(text) = body.get(14..).and_then(|t| std::str::from_utf8(t).ok()) {
        let mut parts = text.splitn(2, '|');
        input.peer = parts.next().filter(|p| !p.is_empty());
        input.relying = parts.next().unwrap_or("SG");
    }
}

fn validation_options(input: &Input<'_>, time: i64) -> ValidationOptions {
    let mut opts = ValidationOptions::new(UnixTime(time));
    if input.flags & 1 != 0 {
        opts.required_ekus = vec![EKU_SERVER_AUTH.to_owned()];
    }
    if input.flags & 2 != 0 {
        opts.profile = Profile::WebPki;
    }
    opts.revocation = match (input.flags >> 2) & 3 {
        0 => RevocationMode::Off,
        1 => RevocationMode::Required,
        _ => RevocationMode::IfAvailable,
    };
    opts.policy.initial_explicit_policy = input.flags & 16 != 0;
    opts.policy.initial_policy_mapping_inhibit = input.flags & 32 != 0;
    opts.policy.initial_any_policy_inhibit = input.flags & 64 != 0;
    opts.peer_name = input.peer.map(|p| match p.parse() {
        Ok(ip) => PeerName::Ip(ip),
        Err(_) if p.contains('@') => PeerName::Email(p.to_owned()),
        Err(_) => PeerName::Dns(p.to_owned()),
    });
    opts
}

fn check_chain(input: &Input<'_>, leaf: &Cert, crls: &CrlSet) {
    let opts = validation_options(input, input.time);
    let fresh = verify_chain(leaf, &input.intermediates, &input.anchors, crls, &opts);
    match &fresh {
        Ok(path) => {
            assert!(!path.path().is_empty());
            assert!(path.anchor_index() < input.anchors.len());
        }
        Err(err) => {
            let _ = err.to_string();
        }
    }

    let Ok(cached) = CachingVerifier::new(input.anchors.clone(), &input.crls) else {
        return;
    };
    let first = cached.verify(leaf, &input.intermediates, &opts);
    assert_eq!(
        first.is_ok(),
        fresh.is_ok(),
        "the cache layer must not change a verdict"
    );
    let again = cached.verify(leaf, &input.intermediates, &opts);
    assert!(
        Arc::ptr_eq(&first, &again),
        "a repeat at the same time must hit"
    );

    // At another time, a verdict from the cache must decide as a fresh verification does.
    let later = input.time.saturating_add(input.later);
    let later_opts = validation_options(input, later);
    let answer = cached.verify(leaf, &input.intermediates, &later_opts);
    if Arc::ptr_eq(&first, &answer) {
        let truth = verify_chain(
            leaf,
            &input.intermediates,
            &input.anchors,
            crls,
            &later_opts,
        );
        match (answer.as_ref(), &truth) {
            (Ok(_), Ok(_)) => {}
            (Err(a), Err(b)) => assert_eq!(
                discriminant(a.error()),
                discriminant(b.error()),
                "cached {a} at {} but fresh {b} at {later}",
                input.time
            ),
            _ => panic!(
                "cached verdict from {} differs from a fresh one at {later}",
                input.time
            ),
        }
    }
}

fn check_mra(input: &Input<'_>, text: &str) {
    let mut next_file = 0usize;
    let mut read = |reference: &str| -> Result<Vec<u8>, MraError> {
        // References are answered by the file sections in order, whatever their names.
        let file = input.files.get(next_file).ok_or_else(|| MraError::Read {
            path: reference.into(),
            cause: std::io::Error::new(std::io::ErrorKind::NotFound, "no such fuzz file"),
        })?;
        next_file += 1;
        Ok(file.to_vec())
    };
    let Ok(mut mra) = Mra::parse_with(text, Path::new("fuzz-mra.toml"), &mut read) else {
        return;
    };
    let _ = mra.verify_signatures();
    let _ = mra.canonical_bytes();
    kakehashi_pki::danger::allow_unsigned_agreement(&mut mra, input.flags & 128 != 0);
    if let Some(leaf) = &input.leaf {
        let crls: Vec<Vec<u8>> = input.crls.iter().map(|c| c.to_vec()).collect();
        let verdict = mra.recognize(
            input.relying,
            input.purpose,
            leaf,
            &input.intermediates,
            &crls,
            UnixTime(input.time),
        );
        if verdict.recognized() {
            assert!(verdict.anchor_jurisdiction().is_some());
        }
    }
}
