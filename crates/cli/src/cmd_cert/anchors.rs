//! `kakehashi cert verify --anchors BUNDLE`: a chain judged against a plain bundle of trust
//! anchors, outside the agreement, for auditors (a foreign CA before it is proposed for the
//! agreement, a bank's public TLS chain against a system CA bundle). The decision is
//! `kakehashi_pki::anchors::verify_with_anchors`; this module turns the options into
//! validation inputs and prints the same explained verdict as recognition, without the
//! recognition part.
//!
//! The inputs, in RFC 5280 §6.1.1 terms: the trust anchors are the bundle's certificates (d);
//! the time is `--at` or now (b); `--policy` gives the user-initial-policy-set (c) and then
//! sets initial-explicit-policy (f), so the path must be valid for one of the policies asked
//! for (without `--policy` the set is anyPolicy and no explicit policy is required); policy
//! mapping and anyPolicy stay allowed (e), (g). Revocation is checked, on every certificate
//! below the anchor, when CRLs are given, and not otherwise (the conformance harness's
//! convention, x509-limbo's).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;
use kakehashi_pki::anchors::{AnchorBundle, ChainVerdict, verify_with_anchors};
use kakehashi_pki::crl::RevocationMode;
use kakehashi_pki::policy::PolicySettings;
use kakehashi_pki::purpose::{EKU_CLIENT_AUTH, EKU_SERVER_AUTH};
use kakehashi_pki::validate::{PeerName, Profile, ValidationOptions};

use super::{ChainInput, VerifyArgs, eku_name, write_checks, write_path, write_reason};
use crate::client;
use crate::output::write_stdout;

/// Longest dotted OID accepted: UUID OIDs (`2.25.` and 39 digits) are among the longest in
/// use, and the bound keeps a pasted blob out of the output.
const OID_TEXT_LEN_MAX: usize = 256;

/// Skipped bundle certificates listed one by one in the text output; more are counted.
const SKIPPED_LISTED_MAX: usize = 20;

/// What the options ask, resolved and checked, for the validation and for the output.
struct Asked {
    opts: ValidationOptions,
    /// The EKU required, as given (`serverAuth`, an OID) and resolved, if any.
    eku: Option<String>,
}

pub(super) fn verify(
    args: &VerifyArgs,
    bundle_path: &Path,
    input: &ChainInput,
) -> anyhow::Result<ExitCode> {
    let (time, time_source) = input.time;
    let asked = options(args, time, !input.crls.is_empty())?;
    let bytes = client::read_bounded(bundle_path, "anchor bundle")?;
    let bundle = AnchorBundle::parse(&bytes).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e}; give a bundle of trust anchors as PEM CERTIFICATE blocks (a system CA \
             bundle, for example) or DER",
            bundle_path.display()
        )
    })?;
    let verdict = verify_with_anchors(&input.leaf, &input.pool, &bundle, &input.crls, &asked.opts);
    let mut out = String::new();
    if args.json {
        let mut doc = serde_json::to_value(&verdict)?;
        if let Some(obj) = doc.as_object_mut() {
            obj.insert("chain_file".into(), args.chain.display().to_string().into());
            obj.insert("time_source".into(), time_source.into());
            obj.insert(
                "anchors".into(),
                serde_json::json!({
                    "file": bundle_path.display().to_string(),
                    "certificates": bundle.total(),
                    "trust_anchors": bundle.anchors().len(),
                    "skipped": bundle.skipped(),
                }),
            );
            obj.insert("server_name".into(), args.server_name.clone().into());
            obj.insert("required_eku".into(), asked.eku.clone().into());
            obj.insert(
                "initial_policy_set".into(),
                asked.opts.policy.initial_policy_set.clone().into(),
            );
            obj.insert(
                "initial_explicit_policy".into(),
                asked.opts.policy.initial_explicit_policy.into(),
            );
            obj.insert("crls".into(), input.crls.len().into());
        }
        out.push_str(&serde_json::to_string_pretty(&doc)?);
        out.push('\n');
    } else {
        write_text(
            &mut out,
            args,
            bundle_path,
            &bundle,
            &asked,
            input,
            &verdict,
        );
    }
    write_stdout(&out)?;
    Ok(if verdict.valid() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The validation options the flags ask for; a bad name, EKU or OID is an input error.
fn options(args: &VerifyArgs, time: kakehashi_pki::UnixTime, crls: bool) -> anyhow::Result<Asked> {
    let mut opts = ValidationOptions::new(time);
    if let Some(name) = &args.server_name {
        opts.profile = Profile::WebPki;
        opts.peer_name = Some(peer_name(name)?);
    }
    let eku = match (&args.eku, &args.server_name) {
        (Some(eku), _) => Some(eku_oid(eku)?),
        // A server name means a TLS server is being checked, as web-PKI verifiers assume.
        (None, Some(_)) => Some(EKU_SERVER_AUTH.to_owned()),
        (None, None) => None,
    };
    opts.required_ekus = eku.iter().cloned().collect();
    if !args.policies.is_empty() {
        let mut set = Vec::new();
        for text in &args.policies {
            set.push(checked_oid(text).map_err(|why| {
                anyhow::anyhow!(
                    "bad --policy `{text}`: {why}; give a dotted OID such as 2.23.140.1.2.1"
                )
            })?);
        }
        opts.policy = PolicySettings {
            initial_policy_set: set,
            initial_explicit_policy: true,
            ..PolicySettings::default()
        };
    }
    opts.revocation = if crls {
        RevocationMode::Required
    } else {
        RevocationMode::Off
    };
    Ok(Asked { opts, eku })
}

/// An IP address, or a DNS name in ASCII (A-labels for internationalized names).
fn peer_name(name: &str) -> anyhow::Result<PeerName> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(PeerName::Ip(ip));
    }
    let host = name.strip_suffix('.').unwrap_or(name);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        bail!(
            "bad --server-name `{name}`: not an IP address or a DNS name (letters, digits, \
             hyphens, dots; an internationalized name in its xn-- A-label form; no wildcard)"
        );
    }
    Ok(PeerName::Dns(host.to_owned()))
}

/// `serverAuth`, `clientAuth` or a dotted OID, as an OID.
fn eku_oid(text: &str) -> anyhow::Result<String> {
    match text {
        "serverAuth" => Ok(EKU_SERVER_AUTH.to_owned()),
        "clientAuth" => Ok(EKU_CLIENT_AUTH.to_owned()),
        _ => checked_oid(text).map_err(|why| {
            anyhow::anyhow!(
                "bad --eku `{text}`: {why}; give serverAuth, clientAuth or a dotted OID"
            )
        }),
    }
}

/// A dotted OID as X.660 allows it: at least two arcs of decimal digits without leading
/// zeros, the first 0, 1 or 2, the second below 40 under 0 and 1.
fn checked_oid(text: &str) -> Result<String, &'static str> {
    if text.len() > OID_TEXT_LEN_MAX {
        return Err("longer than any real OID");
    }
    let arcs: Vec<&str> = text.split('.').collect();
    if arcs.len() < 2 {
        return Err("an OID has at least two arcs");
    }
    for arc in &arcs {
        if arc.is_empty() || !arc.bytes().all(|b| b.is_ascii_digit()) {
            return Err("every arc is a decimal number");
        }
        if arc.len() > 1 && arc.starts_with('0') {
            return Err("an arc has no leading zero");
        }
    }
    match (arcs[0], arcs[1].parse::<u128>()) {
        ("0" | "1", Ok(second)) if second < 40 => Ok(text.to_owned()),
        ("0" | "1", _) => Err("under 0 and 1 the second arc is below 40"),
        ("2", _) => Ok(text.to_owned()),
        _ => Err("the first arc is 0, 1 or 2"),
    }
}

fn write_text(
    out: &mut String,
    args: &VerifyArgs,
    bundle_path: &Path,
    bundle: &AnchorBundle,
    asked: &Asked,
    input: &ChainInput,
    verdict: &ChainVerdict,
) {
    // Writing to a String cannot fail; the results are ignored for that reason.
    let _ = writeln!(out, "chain      {}", args.chain.display());
    let skipped = match bundle.skipped().len() {
        0 => String::new(),
        n => format!(", {n} skipped (see the notes below)"),
    };
    let _ = writeln!(
        out,
        "anchors    {} ({} trust anchor(s) of {} certificate(s){skipped})",
        bundle_path.display(),
        bundle.anchors().len(),
        bundle.total()
    );
    let profile = match &asked.opts.peer_name {
        Some(name) => format!("{} (CABF BR), for {name}", verdict.profile()),
        None => verdict.profile().to_owned(),
    };
    let _ = writeln!(out, "profile    {profile}");
    let eku = asked.eku.as_deref().map_or_else(
        || "none required".to_owned(),
        |oid| match eku_name(oid) {
            Some(name) => format!("{name} ({oid})"),
            None => oid.to_owned(),
        },
    );
    let _ = writeln!(out, "eku        {eku}");
    let policy = if asked.opts.policy.initial_explicit_policy {
        format!(
            "{}; an explicit policy is required",
            asked.opts.policy.initial_policy_set.join(", ")
        )
    } else {
        "any (none required)".to_owned()
    };
    let _ = writeln!(out, "policy     {policy}");
    let revocation = match input.crls.len() {
        0 => "not checked (no --crl)".to_owned(),
        n => format!("{n} CRL(s); required on every certificate below the anchor"),
    };
    let _ = writeln!(out, "revocation {revocation}");
    let _ = writeln!(out, "time       {} (from {})", verdict.time(), input.time.1);
    let _ = writeln!(out);

    let anchor = verdict
        .anchor_index()
        .map(|i| format!("trust anchor, bundle certificate {i}"));
    write_path(out, verdict.path(), anchor.as_deref());
    write_checks(out, verdict.checks());
    if verdict.valid() {
        let anchor = verdict.path().last().map_or("?", |c| c.subject.as_str());
        let policies = if verdict.policies().is_empty() {
            String::new()
        } else {
            format!("; valid for policies {}", verdict.policies().join(", "))
        };
        let _ = writeln!(
            out,
            "VALID under the {} profile: chain to the trust anchor {anchor}{policies}",
            verdict.profile()
        );
    } else {
        let _ = writeln!(out, "NOT VALID under the {} profile", verdict.profile());
        if let Some(reason) = verdict.reason() {
            write_reason(out, reason);
        }
    }
    if !bundle.skipped().is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "notes: {} certificate(s) of the bundle do not parse and are not used as anchors",
            bundle.skipped().len()
        );
        for skipped in bundle.skipped().iter().take(SKIPPED_LISTED_MAX) {
            let _ = writeln!(
                out,
                "  bundle certificate {}: {}",
                skipped.index, skipped.reason
            );
        }
        if bundle.skipped().len() > SKIPPED_LISTED_MAX {
            let _ = writeln!(
                out,
                "  … and {} more (--json lists every one)",
                bundle.skipped().len() - SKIPPED_LISTED_MAX
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_are_checked_as_x660_allows() {
        assert!(checked_oid("2.23.140.1.2.1").is_ok());
        assert!(checked_oid("1.3.6.1.5.5.7.3.1").is_ok());
        assert!(checked_oid("2.999").is_ok());
        assert!(checked_oid("1").is_err());
        assert!(checked_oid("1..2").is_err());
        assert!(checked_oid("1.3.06").is_err());
        assert!(checked_oid("3.1").is_err());
        assert!(checked_oid("1.40").is_err());
        assert!(checked_oid("1.3.x").is_err());
        assert!(checked_oid("serverAuth").is_err());
        assert!(checked_oid("2.25.128136148999515510376338397963583368341.2.392.3").is_ok());
    }

    #[test]
    fn server_names_are_ip_addresses_or_ascii_dns_names() {
        assert_eq!(
            peer_name("127.0.0.1").unwrap(),
            PeerName::Ip("127.0.0.1".parse().unwrap())
        );
        assert_eq!(
            peer_name("bank.example.").unwrap(),
            PeerName::Dns("bank.example".into())
        );
        assert!(peer_name("xn--r8jz45g.jp").is_ok());
        assert!(peer_name("*.example").is_err());
        assert!(peer_name("例え.jp").is_err());
        assert!(peer_name("a..b").is_err());
        assert!(peer_name("").is_err());
    }

    #[test]
    fn ekus_by_name_or_oid() {
        assert_eq!(eku_oid("serverAuth").unwrap(), EKU_SERVER_AUTH);
        assert_eq!(eku_oid("clientAuth").unwrap(), EKU_CLIENT_AUTH);
        assert_eq!(eku_oid("1.3.6.1.5.5.7.3.3").unwrap(), "1.3.6.1.5.5.7.3.3");
        assert!(eku_oid("codeSigning").is_err());
    }
}
