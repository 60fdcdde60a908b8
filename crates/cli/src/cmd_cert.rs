//! `kakehashi cert inspect` (print what a certificate file holds) and `kakehashi cert verify`
//! (decide whether a chain is recognized under the mutual-recognition agreement, and explain
//! every check). The decisions are made by `kakehashi_pki`; this module reads files, reads the
//! clock (the one place that does), formats output and picks exit codes.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use kakehashi_pki::cert::{Cert, DistributionPointName, GeneralName};
use kakehashi_pki::mra::{Mra, Reason, RecognitionVerdict};
use kakehashi_pki::purpose::{
    EKU_CLIENT_AUTH, EKU_PAYMENT_SIGNING, EKU_RECEIPT_SIGNING, EKU_SERVER_AUTH, KAKEHASHI_ARC,
};
use kakehashi_pki::signature::KeyAlgorithm;
use kakehashi_pki::{CertRef, Check, Purpose, UnixTime};
use serde::Serialize;

use crate::client;
use crate::output::{CHECKS_HEADING, check_line, write_stdout};

mod anchors;

/// What every PEM block starts with (RFC 7468 §2).
const PEM_BEGIN: &[u8] = b"-----BEGIN ";

#[derive(clap::Subcommand)]
pub(crate) enum CertCommand {
    /// Print every certificate in a file (PEM, DER, or a PEM bundle): names, serial, validity,
    /// key, signature algorithm, fingerprint and extensions with their critical flags.
    Inspect {
        /// The certificate file.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Decide whether a chain is recognized by a jurisdiction for a purpose under the
    /// mutual-recognition agreement (`--mra`), or whether it is valid against a plain bundle of
    /// trust anchors (`--anchors`, for auditors: a foreign CA, a bank's public TLS chain), and
    /// explain every check.
    ///
    /// Exit 0 recognized (valid), 1 not recognized (not valid), 2 usage or input error.
    Verify(Box<VerifyArgs>),
}

/// Arguments of `kakehashi cert verify`: the chain and what it is judged against, either the
/// agreement (`--mra`, `--relying`, `--purpose`) or a bundle of anchors (`--anchors` with its
/// own options).
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("trust").required(true).args(["mra", "anchors"])))]
pub(crate) struct VerifyArgs {
    /// The chain (PEM or DER): the first certificate is the leaf, the rest are untrusted
    /// intermediates.
    chain: PathBuf,
    /// More untrusted intermediates (repeatable).
    #[arg(long = "untrusted", value_name = "FILE")]
    untrusted: Vec<PathBuf>,
    /// CRLs to check (repeatable; PEM or DER): besides those the agreement lists under
    /// `--mra`; with `--anchors`, giving any makes revocation required on every certificate
    /// below the anchor.
    #[arg(long = "crl", value_name = "FILE")]
    crls: Vec<PathBuf>,
    /// The mutual-recognition agreement, e.g. `certs/mra.toml`.
    #[arg(long)]
    mra: Option<PathBuf>,
    /// With `--mra`: the relying jurisdiction's code, e.g. `SG`.
    #[arg(long, required_unless_present = "anchors", conflicts_with = "anchors")]
    relying: Option<String>,
    /// With `--mra`: what the certificate is relied on for: payment-signing, node-tls,
    /// receipt-signing, participant-tls or operator.
    #[arg(long, required_unless_present = "anchors", conflicts_with = "anchors")]
    purpose: Option<String>,
    /// A bundle of trust anchors (PEM `CERTIFICATE` blocks, like a system CA bundle, or DER):
    /// validate to one of them outside any agreement. Certificates of the bundle that do not
    /// parse are skipped and listed.
    #[arg(long, value_name = "BUNDLE")]
    anchors: Option<PathBuf>,
    /// With `--anchors`: the web-PKI profile (CA/Browser Forum rules) and this DNS name or IP
    /// address matched against the leaf's subjectAltName; without it, the RFC 5280 profile.
    #[arg(
        long,
        value_name = "NAME",
        requires = "anchors",
        conflicts_with = "mra"
    )]
    server_name: Option<String>,
    /// With `--anchors`: the extended key usage the leaf must permit: serverAuth, clientAuth or
    /// a dotted OID (default: serverAuth with `--server-name`, none otherwise).
    #[arg(long, value_name = "EKU", requires = "anchors", conflicts_with = "mra")]
    eku: Option<String>,
    /// With `--anchors`: a policy OID of the user-initial-policy-set (repeatable; RFC 5280
    /// §6.1.1(c)); when given, an explicit policy is required: the path must be valid for one
    /// of them.
    #[arg(
        long = "policy",
        value_name = "OID",
        requires = "anchors",
        conflicts_with = "mra"
    )]
    policies: Vec<String>,
    /// Validation time (RFC 3339, e.g. `2027-01-01T00:00:00Z`); default: now.
    #[arg(long, value_name = "RFC3339")]
    at: Option<String>,
    /// Print the verdict as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// With `--mra`: accept an agreement that a party has not signed (for experiments only).
    #[arg(long, requires = "mra", conflicts_with = "anchors")]
    allow_unsigned_mra: bool,
}

pub(crate) fn run(cmd: CertCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        CertCommand::Inspect { file, json } => inspect(&file, json),
        CertCommand::Verify(args) => verify(&args),
    }
}

// ---------------------------------------------------------------------------------------------
// cert inspect

fn inspect(file: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let certs = read_certs(file)?;
    let infos: Vec<CertInfo> = certs
        .iter()
        .enumerate()
        .map(|(i, c)| CertInfo::new(i, c))
        .collect();
    let mut out = String::new();
    if json {
        let doc = serde_json::json!({
            "file": file.display().to_string(),
            "certificates": infos,
        });
        out.push_str(&serde_json::to_string_pretty(&doc)?);
        out.push('\n');
    } else {
        for (i, info) in infos.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            info.write_text(&mut out, infos.len(), file);
        }
    }
    write_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// Reads a certificate file (one DER certificate or PEM `CERTIFICATE` blocks); errors name the
/// file, the certificate and what failed to parse.
fn read_certs(path: &Path) -> anyhow::Result<Vec<Cert>> {
    let bytes = client::read_bounded(path, "certificate file")?;
    if bytes.is_empty() {
        bail!(
            "{} is empty; give a certificate file in PEM or DER form",
            path.display()
        );
    }
    let is_pem = bytes.windows(PEM_BEGIN.len()).any(|w| w == PEM_BEGIN);
    // A DER certificate is an ASN.1 SEQUENCE (tag 0x30, RFC 5280 §4.1).
    if !is_pem && bytes.first() != Some(&0x30) {
        bail!(
            "{}: neither PEM (no -----BEGIN line) nor DER (does not start with an ASN.1 \
             SEQUENCE); give a certificate file in PEM or DER form",
            path.display()
        );
    }
    Cert::parse_pem_or_der_bundle(&bytes).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e} (expected PEM CERTIFICATE blocks or one DER certificate)",
            path.display()
        )
    })
}

/// Everything `inspect` shows about one certificate, in a form both the text and the JSON
/// output use.
#[derive(Serialize)]
struct CertInfo {
    index: usize,
    subject: String,
    issuer: String,
    serial: String,
    version: u32,
    not_before: String,
    not_after: String,
    key_algorithm: String,
    key_bits: Option<usize>,
    signature_algorithm: String,
    sha256: String,
    self_issued: bool,
    extensions: Vec<ExtensionInfo>,
    basic_constraints: Option<BasicConstraintsInfo>,
    key_usage: Option<Vec<&'static str>>,
    extended_key_usage: Option<Vec<OidInfo>>,
    subject_alt_names: Option<Vec<String>>,
    policies: Option<Vec<OidInfo>>,
    policy_mappings: Vec<(String, String)>,
    require_explicit_policy: Option<u64>,
    inhibit_policy_mapping: Option<u64>,
    inhibit_any_policy: Option<u64>,
    name_constraints: Option<NameConstraintsInfo>,
    authority_key_id: Option<AuthorityKeyIdInfo>,
    subject_key_id: Option<String>,
    crl_distribution_points: Vec<String>,
    unrecognized_critical_extensions: Vec<String>,
    defects: Vec<String>,
}

#[derive(Serialize)]
struct ExtensionInfo {
    oid: String,
    name: Option<&'static str>,
    critical: bool,
}

#[derive(Serialize)]
struct BasicConstraintsInfo {
    ca: bool,
    path_len: Option<u32>,
}

#[derive(Serialize)]
struct OidInfo {
    oid: String,
    name: Option<String>,
}

impl OidInfo {
    fn new(oid: &str, name: Option<String>) -> Self {
        Self {
            oid: oid.to_owned(),
            name,
        }
    }

    fn text(&self) -> String {
        match &self.name {
            Some(name) => format!("{name} ({})", self.oid),
            None => self.oid.clone(),
        }
    }
}

#[derive(Serialize)]
struct NameConstraintsInfo {
    permitted: Option<Vec<String>>,
    excluded: Option<Vec<String>>,
}

#[derive(Serialize)]
struct AuthorityKeyIdInfo {
    key_id: Option<String>,
    issuer: Option<Vec<String>>,
    serial: Option<String>,
}

/// Extensions named in the output (RFC 5280 §4.2 and the ones common in the web PKI).
const EXTENSION_NAMES: &[(&str, &str)] = &[
    ("2.5.29.14", "subjectKeyIdentifier"),
    ("2.5.29.15", "keyUsage"),
    ("2.5.29.17", "subjectAltName"),
    ("2.5.29.18", "issuerAltName"),
    ("2.5.29.19", "basicConstraints"),
    ("2.5.29.30", "nameConstraints"),
    ("2.5.29.31", "cRLDistributionPoints"),
    ("2.5.29.32", "certificatePolicies"),
    ("2.5.29.33", "policyMappings"),
    ("2.5.29.35", "authorityKeyIdentifier"),
    ("2.5.29.36", "policyConstraints"),
    ("2.5.29.37", "extKeyUsage"),
    ("2.5.29.46", "freshestCRL"),
    ("2.5.29.54", "inhibitAnyPolicy"),
    ("1.3.6.1.5.5.7.1.1", "authorityInfoAccess"),
    ("1.3.6.1.5.5.7.1.11", "subjectInfoAccess"),
    ("1.3.6.1.4.1.11129.2.4.2", "signedCertificateTimestampList"),
];

/// Extended key usages named in the output (RFC 5280 §4.2.1.12 and kakehashi's own).
const EKU_NAMES: &[(&str, &str)] = &[
    (EKU_SERVER_AUTH, "serverAuth"),
    (EKU_CLIENT_AUTH, "clientAuth"),
    ("1.3.6.1.5.5.7.3.3", "codeSigning"),
    ("1.3.6.1.5.5.7.3.4", "emailProtection"),
    ("1.3.6.1.5.5.7.3.8", "timeStamping"),
    ("1.3.6.1.5.5.7.3.9", "OCSPSigning"),
    ("2.5.29.37.0", "anyExtendedKeyUsage"),
    (EKU_PAYMENT_SIGNING, "kakehashi payment-signing"),
    (EKU_RECEIPT_SIGNING, "kakehashi receipt-signing"),
];

/// keyUsage bit names, indexed by bit number (RFC 5280 §4.2.1.3).
const KEY_USAGE_NAMES: [&str; 9] = [
    "digitalSignature",
    "contentCommitment",
    "keyEncipherment",
    "dataEncipherment",
    "keyAgreement",
    "keyCertSign",
    "cRLSign",
    "encipherOnly",
    "decipherOnly",
];

fn extension_name(oid: &str) -> Option<&'static str> {
    EXTENSION_NAMES
        .iter()
        .find(|(o, _)| *o == oid)
        .map(|(_, n)| *n)
}

fn eku_name(oid: &str) -> Option<String> {
    EKU_NAMES
        .iter()
        .find(|(o, _)| *o == oid)
        .map(|(_, n)| (*n).to_owned())
}

/// Names anyPolicy and kakehashi's assurance-level policies, `KAKEHASHI_ARC.2.<ISO 3166
/// numeric>.<level number>` (the levels are numbered low 1, substantial 2, high 3).
fn policy_name(oid: &str) -> Option<String> {
    if oid == kakehashi_pki::policy::ANY_POLICY {
        return Some("anyPolicy".into());
    }
    let rest = oid.strip_prefix(KAKEHASHI_ARC)?.strip_prefix(".2.")?;
    let (country, level) = rest.split_once('.')?;
    let level = match level {
        "1" => "low",
        "2" => "substantial",
        "3" => "high",
        _ => return None,
    };
    let country = match country {
        "392" => "JP",
        "702" => "SG",
        "764" => "TH",
        other => other,
    };
    Some(format!("kakehashi {country} assurance {level}"))
}

fn key_bits(alg: &KeyAlgorithm) -> Option<usize> {
    match alg {
        KeyAlgorithm::EcP256 | KeyAlgorithm::Ed25519 => Some(256),
        KeyAlgorithm::EcP384 => Some(384),
        KeyAlgorithm::Rsa { bits } => Some(*bits),
        KeyAlgorithm::Unsupported { .. } => None,
    }
}

fn fingerprint(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn names(list: &[GeneralName]) -> Vec<String> {
    list.iter().map(ToString::to_string).collect()
}

impl CertInfo {
    fn new(index: usize, cert: &Cert) -> Self {
        let policy = cert.policy_info();
        let key = cert.spki().algorithm();
        Self {
            index,
            subject: cert.subject_display().to_owned(),
            issuer: cert.issuer_display().to_owned(),
            serial: cert.serial_hex(),
            version: cert.version() + 1,
            not_before: cert.not_before().to_rfc3339(),
            not_after: cert.not_after().to_rfc3339(),
            key_algorithm: key.name(),
            key_bits: key_bits(key),
            signature_algorithm: cert
                .signature_algorithm()
                .map_or_else(|e| format!("unreadable ({e})"), |a| a.name()),
            sha256: fingerprint(&cert.sha256()),
            self_issued: cert.is_self_issued(),
            extensions: cert
                .extensions()
                .iter()
                .map(|(oid, critical)| ExtensionInfo {
                    oid: oid.clone(),
                    name: extension_name(oid),
                    critical: *critical,
                })
                .collect(),
            basic_constraints: cert.basic_constraints().map(|bc| BasicConstraintsInfo {
                ca: bc.ca,
                path_len: bc.path_len,
            }),
            key_usage: cert.key_usage().map(|ku| {
                KEY_USAGE_NAMES
                    .iter()
                    .enumerate()
                    .filter(|(bit, _)| ku.has(1 << bit))
                    .map(|(_, n)| *n)
                    .collect()
            }),
            extended_key_usage: cert
                .extended_key_usage()
                .map(|ekus| ekus.iter().map(|o| OidInfo::new(o, eku_name(o))).collect()),
            subject_alt_names: cert.subject_alt_names().map(names),
            policies: policy
                .policies
                .as_ref()
                .map(|ps| ps.iter().map(|o| OidInfo::new(o, policy_name(o))).collect()),
            policy_mappings: policy.mappings.clone(),
            require_explicit_policy: policy.require_explicit_policy,
            inhibit_policy_mapping: policy.inhibit_policy_mapping,
            inhibit_any_policy: policy.inhibit_any_policy,
            name_constraints: cert.name_constraints().map(|nc| NameConstraintsInfo {
                permitted: nc.permitted.as_deref().map(names),
                excluded: nc.excluded.as_deref().map(names),
            }),
            authority_key_id: cert.authority_key_id().map(|aki| AuthorityKeyIdInfo {
                key_id: aki.key_id.as_deref().map(hex::encode),
                issuer: aki.issuer.as_deref().map(names),
                serial: aki.serial.as_deref().map(hex::encode),
            }),
            subject_key_id: cert.subject_key_id().map(hex::encode),
            crl_distribution_points: cert
                .crl_distribution_points()
                .iter()
                .map(|dp| {
                    let mut parts = Vec::new();
                    match &dp.name {
                        Some(DistributionPointName::FullName(full)) => {
                            parts.push(names(full).join(", "));
                        }
                        Some(DistributionPointName::RelativeToIssuer(rdn)) => {
                            let attrs: Vec<String> = rdn
                                .iter()
                                .map(|a| {
                                    format!("{}={}", a.oid, a.text().unwrap_or_else(|| "?".into()))
                                })
                                .collect();
                            parts.push(format!("relative to issuer: {}", attrs.join("+")));
                        }
                        None => {}
                    }
                    if let Some(issuer) = &dp.crl_issuer {
                        parts.push(format!("cRLIssuer {}", names(issuer).join(", ")));
                    }
                    if let Some(reasons) = dp.reasons {
                        parts.push(format!("reasons 0x{reasons:04x}"));
                    }
                    if parts.is_empty() {
                        "(empty distribution point)".to_owned()
                    } else {
                        parts.join("; ")
                    }
                })
                .collect(),
            unrecognized_critical_extensions: cert.unrecognized_critical_extensions().to_vec(),
            defects: cert.defects().to_vec(),
        }
    }

    /// " (critical)" when the extension with this OID is marked critical.
    fn critical(&self, oid: &str) -> &'static str {
        if self.extensions.iter().any(|e| e.oid == oid && e.critical) {
            " (critical)"
        } else {
            ""
        }
    }

    fn write_text(&self, out: &mut String, total: usize, file: &Path) {
        // Writing to a String cannot fail; the results are ignored for that reason.
        let _ = writeln!(
            out,
            "certificate {} of {total} in {}",
            self.index,
            file.display()
        );
        self.write_identity(out);
        self.write_usage(out);
        self.write_policies(out);
        self.write_constraints_and_ids(out);
        self.write_other_extensions(out);
    }

    /// Names, validity, key and fingerprint.
    fn write_identity(&self, out: &mut String) {
        field(out, "subject", &self.subject);
        field(out, "issuer", &self.issuer);
        field(out, "serial", &self.serial);
        field(out, "version", &format!("v{}", self.version));
        field(
            out,
            "validity",
            &format!("{} to {}", self.not_before, self.not_after),
        );
        let key = match self.key_bits {
            Some(bits) => format!("{} ({bits} bits)", self.key_algorithm),
            None => self.key_algorithm.clone(),
        };
        field(out, "public key", &key);
        field(out, "signature", &self.signature_algorithm);
        field(out, "sha256", &self.sha256);
        if self.self_issued {
            field(out, "self-issued", "yes");
        }
    }

    /// What the certificate may be used for: CA or not, key usages, names.
    fn write_usage(&self, out: &mut String) {
        if let Some(bc) = &self.basic_constraints {
            let mut v = if bc.ca {
                "CA".to_owned()
            } else {
                "not a CA".to_owned()
            };
            if let Some(p) = bc.path_len {
                let _ = write!(v, ", pathLen {p}");
            }
            v.push_str(self.critical("2.5.29.19"));
            field(out, "basicConstraints", &v);
        }
        if let Some(ku) = &self.key_usage {
            field(
                out,
                "keyUsage",
                &format!("{}{}", ku.join(", "), self.critical("2.5.29.15")),
            );
        }
        if let Some(eku) = &self.extended_key_usage {
            let list: Vec<String> = eku.iter().map(OidInfo::text).collect();
            field(
                out,
                "extKeyUsage",
                &format!("{}{}", list.join(", "), self.critical("2.5.29.37")),
            );
        }
        if let Some(sans) = &self.subject_alt_names {
            field(
                out,
                "subjectAltName",
                &format!("{}{}", sans.join(", "), self.critical("2.5.29.17")),
            );
        }
    }

    /// Certificate policies, their mappings and constraints.
    fn write_policies(&self, out: &mut String) {
        if let Some(policies) = &self.policies {
            let list: Vec<String> = policies.iter().map(OidInfo::text).collect();
            field(
                out,
                "certificatePolicies",
                &format!("{}{}", list.join(", "), self.critical("2.5.29.32")),
            );
        }
        if !self.policy_mappings.is_empty() {
            let list: Vec<String> = self
                .policy_mappings
                .iter()
                .map(|(i, s)| format!("{i} -> {s}"))
                .collect();
            field(
                out,
                "policyMappings",
                &format!("{}{}", list.join(", "), self.critical("2.5.29.33")),
            );
        }
        if self.require_explicit_policy.is_some() || self.inhibit_policy_mapping.is_some() {
            let mut parts = Vec::new();
            if let Some(n) = self.require_explicit_policy {
                parts.push(format!("requireExplicitPolicy {n}"));
            }
            if let Some(n) = self.inhibit_policy_mapping {
                parts.push(format!("inhibitPolicyMapping {n}"));
            }
            field(
                out,
                "policyConstraints",
                &format!("{}{}", parts.join(", "), self.critical("2.5.29.36")),
            );
        }
        if let Some(n) = self.inhibit_any_policy {
            field(
                out,
                "inhibitAnyPolicy",
                &format!("{n}{}", self.critical("2.5.29.54")),
            );
        }
    }

    /// Name constraints, key identifiers and CRL distribution points.
    fn write_constraints_and_ids(&self, out: &mut String) {
        if let Some(nc) = &self.name_constraints {
            let show = |list: &Option<Vec<String>>| match list {
                Some(l) if l.is_empty() => "(empty)".to_owned(),
                Some(l) => l.join(", "),
                None => "(none)".to_owned(),
            };
            field(
                out,
                "nameConstraints",
                &format!(
                    "permitted: {}; excluded: {}{}",
                    show(&nc.permitted),
                    show(&nc.excluded),
                    self.critical("2.5.29.30")
                ),
            );
        }
        if let Some(aki) = &self.authority_key_id {
            let mut parts = Vec::new();
            if let Some(id) = &aki.key_id {
                parts.push(id.clone());
            }
            if let Some(issuer) = &aki.issuer {
                parts.push(format!("issuer {}", issuer.join(", ")));
            }
            if let Some(serial) = &aki.serial {
                parts.push(format!("serial {serial}"));
            }
            field(
                out,
                "authorityKeyId",
                &format!("{}{}", parts.join(", "), self.critical("2.5.29.35")),
            );
        }
        if let Some(ski) = &self.subject_key_id {
            field(
                out,
                "subjectKeyId",
                &format!("{ski}{}", self.critical("2.5.29.14")),
            );
        }
        for (i, dp) in self.crl_distribution_points.iter().enumerate() {
            let label = if i == 0 { "cRLDistributionPoints" } else { "" };
            field(out, label, &format!("{dp}{}", self.critical("2.5.29.31")));
        }
    }

    /// Every other extension, and warnings for what makes paths through it invalid.
    fn write_other_extensions(&self, out: &mut String) {
        let shown = [
            "2.5.29.14",
            "2.5.29.15",
            "2.5.29.17",
            "2.5.29.19",
            "2.5.29.30",
            "2.5.29.31",
            "2.5.29.32",
            "2.5.29.33",
            "2.5.29.35",
            "2.5.29.36",
            "2.5.29.37",
            "2.5.29.54",
        ];
        for ext in self
            .extensions
            .iter()
            .filter(|e| !shown.contains(&e.oid.as_str()))
        {
            let name = ext
                .name
                .map_or_else(|| ext.oid.clone(), |n| format!("{n} ({})", ext.oid));
            let crit = if ext.critical {
                "critical"
            } else {
                "not critical"
            };
            field(out, "other extension", &format!("{name}, {crit}"));
        }
        for oid in &self.unrecognized_critical_extensions {
            field(
                out,
                "WARNING",
                &format!(
                    "critical extension {oid} is not processed: paths through this certificate are rejected"
                ),
            );
        }
        for defect in &self.defects {
            field(
                out,
                "WARNING",
                &format!("{defect} (paths through this certificate are rejected)"),
            );
        }
    }
}

/// One labelled line of `cert inspect`.
fn field(out: &mut String, label: &str, value: &str) {
    // Writing to a String cannot fail; the result is ignored for that reason.
    let _ = writeln!(out, "  {label:<20} {value}");
}

// ---------------------------------------------------------------------------------------------
// cert verify

fn verify(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let time = validation_time(args.at.as_deref())?;
    let (leaf, pool) = read_chain(&args.chain, &args.untrusted)?;
    let mut crls = Vec::new();
    for file in &args.crls {
        crls.extend(read_crls(file)?);
    }
    let input = ChainInput {
        leaf,
        pool,
        crls,
        time,
    };
    match (&args.mra, &args.anchors) {
        (Some(mra), _) => verify_mra(args, mra, &input),
        (None, Some(bundle)) => anchors::verify(args, bundle, &input),
        // clap's `trust` group requires one of them.
        (None, None) => bail!("give --mra FILE or --anchors BUNDLE"),
    }
}

/// The validation time and where it came from (`--at` or the system clock).
fn validation_time(at: Option<&str>) -> anyhow::Result<(UnixTime, &'static str)> {
    match at {
        Some(text) => {
            let time = UnixTime::parse_rfc3339(text).map_err(|e| {
                anyhow::anyhow!(
                    "bad --at `{text}`: {e}; give an RFC 3339 time with an offset, \
                     e.g. 2027-01-01T00:00:00Z"
                )
            })?;
            Ok((time, "--at"))
        }
        None => Ok((now()?, "the system clock")),
    }
}

/// The chain file's leaf, and its other certificates with those of the `--untrusted` files as
/// the pool.
fn read_chain(chain: &Path, untrusted: &[PathBuf]) -> anyhow::Result<(Cert, Vec<Cert>)> {
    let mut certs = read_certs(chain)?.into_iter();
    // `read_certs` never returns an empty list: a bundle without certificates is an error.
    let leaf = certs
        .next()
        .with_context(|| format!("{}: no certificate", chain.display()))?;
    let mut pool: Vec<Cert> = certs.collect();
    for file in untrusted {
        pool.extend(read_certs(file)?);
    }
    Ok((leaf, pool))
}

/// What both modes of `cert verify` read before judging: the chain, the CRLs (DER) and the
/// time with its source.
struct ChainInput {
    leaf: Cert,
    pool: Vec<Cert>,
    crls: Vec<Vec<u8>>,
    time: (UnixTime, &'static str),
}

/// `cert verify --mra`: recognition under the agreement.
fn verify_mra(args: &VerifyArgs, mra_path: &Path, input: &ChainInput) -> anyhow::Result<ExitCode> {
    // clap requires both unless `--anchors` is given.
    let (Some(relying), Some(purpose)) = (&args.relying, &args.purpose) else {
        bail!("--mra needs --relying and --purpose");
    };
    let purpose = Purpose::parse(purpose).with_context(|| {
        let known: Vec<&str> = Purpose::ALL.iter().map(|p| p.as_str()).collect();
        format!(
            "unknown purpose `{purpose}`; use one of: {}",
            known.join(", ")
        )
    })?;
    let (time, time_source) = input.time;
    let mut mra = Mra::load(mra_path).map_err(|e| {
        anyhow::anyhow!(
            "cannot use the agreement {}: {e} (check the path and the file; \
             `kakehashi mra verify --mra FILE` explains its signatures)",
            mra_path.display()
        )
    })?;
    if args.allow_unsigned_mra {
        if let Err(e) = mra.verify_signatures() {
            eprintln!(
                "WARNING: {e}; continuing because --allow-unsigned-mra was given \
                 (for experiments only)"
            );
        }
        kakehashi_pki::danger::allow_unsigned_agreement(&mut mra, true);
    } else {
        mra.verify_signatures().map_err(|e| {
            anyhow::anyhow!(
                "refusing the agreement {}: {e}. Have every party sign it \
                 (`kakehashi mra sign`), or pass --allow-unsigned-mra for experiments",
                mra_path.display()
            )
        })?;
    }
    if mra.jurisdiction(relying).is_none() {
        let parties: Vec<&str> = mra
            .jurisdictions()
            .iter()
            .map(|j| j.code.as_str())
            .collect();
        bail!(
            "--relying {relying}: not a party to agreement {}; use one of: {}",
            mra.agreement_id(),
            parties.join(", ")
        );
    }

    let verdict = mra.recognize(
        relying,
        purpose,
        &input.leaf,
        &input.pool,
        &input.crls,
        time,
    );
    let mut out = String::new();
    if args.json {
        let mut doc = serde_json::to_value(&verdict)?;
        if let Some(obj) = doc.as_object_mut() {
            obj.insert("chain_file".into(), args.chain.display().to_string().into());
            obj.insert("time_source".into(), time_source.into());
        }
        out.push_str(&serde_json::to_string_pretty(&doc)?);
        out.push('\n');
    } else {
        write_verdict(&mut out, &verdict, &mra, args, time_source);
    }
    write_stdout(&out)?;
    Ok(if verdict.recognized() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The current time: the CLI is the one place that reads the clock (the library takes time as
/// an argument, RFC 5280 §6.1.1(b)).
fn now() -> anyhow::Result<UnixTime> {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the system clock is before 1970; pass --at")?;
    let seconds = i64::try_from(since.as_secs()).context("the system clock is out of range")?;
    Ok(UnixTime(seconds))
}

/// Reads CRLs from a file: one DER CRL, or PEM `X509 CRL` blocks (RFC 7468 §6; other blocks
/// are skipped).
fn read_crls(path: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let bytes = client::read_bounded(path, "CRL file")?;
    if !bytes.windows(PEM_BEGIN.len()).any(|w| w == PEM_BEGIN) && bytes.first() != Some(&0x30) {
        bail!(
            "{}: neither PEM (no -----BEGIN line) nor DER (does not start with an ASN.1 \
             SEQUENCE); give a CRL in PEM or DER form",
            path.display()
        );
    }
    let crls = kakehashi_pki::pem::blocks_or_der(&bytes, "X509 CRL")
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if crls.is_empty() {
        bail!(
            "{}: no `-----BEGIN X509 CRL-----` block; give a CRL in PEM or DER form",
            path.display()
        );
    }
    Ok(crls)
}

/// Every check of a verdict, one line each, between blank lines.
fn write_checks(out: &mut String, checks: &[Check]) {
    let _ = writeln!(out);
    let _ = writeln!(out, "{CHECKS_HEADING}");
    for check in checks {
        let _ = writeln!(out, "{}", check_line(check));
    }
    let _ = writeln!(out);
}

fn cert_line(c: &CertRef) -> String {
    format!("{} (serial {})", c.subject, c.serial)
}

fn write_verdict(
    out: &mut String,
    verdict: &RecognitionVerdict,
    mra: &Mra,
    args: &VerifyArgs,
    time_source: &str,
) {
    // Writing to a String cannot fail; the results are ignored for that reason.
    let _ = writeln!(out, "chain      {}", args.chain.display());
    let _ = writeln!(
        out,
        "agreement  {} ({})",
        verdict.agreement_id(),
        mra.path().display()
    );
    let _ = writeln!(out, "relying    {}", verdict.relying());
    let _ = writeln!(out, "purpose    {}", verdict.purpose());
    let _ = writeln!(out, "time       {} (from {time_source})", verdict.time());

    let _ = writeln!(out);
    let anchor = verdict
        .anchor_jurisdiction()
        .map(|j| format!("trust anchor of {j}"));
    write_path(out, verdict.path(), anchor.as_deref());
    write_checks(out, verdict.checks());
    write_recognition(out, verdict, mra);
}

/// The path built, leaf first, as a tree (or the closest candidate when none validated).
/// `anchor` names the last certificate's role when the path validated (`trust anchor of JP`).
fn write_path(out: &mut String, path: &[CertRef], anchor: Option<&str>) {
    if path.is_empty() {
        let _ = writeln!(out, "path       (none built)");
        return;
    }
    let heading = if anchor.is_some() {
        "path"
    } else {
        "path (closest candidate; it did not validate)"
    };
    let _ = writeln!(out, "{heading}");
    let last = path.len() - 1;
    for (i, c) in path.iter().enumerate() {
        let indent = "   ".repeat(i);
        let branch = if i == 0 { "" } else { "└─ " };
        let role = match anchor {
            Some(anchor) if i == last && i == 0 => format!("leaf, itself the {anchor}"),
            Some(anchor) if i == last => anchor.to_owned(),
            _ if i == 0 => "leaf".to_owned(),
            _ => "intermediate".to_owned(),
        };
        let _ = writeln!(
            out,
            "  {indent}{branch}[{}] {}  <{role}>",
            c.position,
            cert_line(c)
        );
    }
}

/// The deciding failure: its rule, the certificate and why.
fn write_reason(out: &mut String, reason: &Reason) {
    let _ = writeln!(out, "  rule         {}", reason.rule);
    if let Some(c) = &reason.cert {
        let _ = writeln!(out, "  certificate  [{}] {}", c.position, cert_line(c));
    }
    let _ = writeln!(out, "  why          {}", reason.message);
}

/// The verdict: recognized under which row, or not and why.
fn write_recognition(out: &mut String, verdict: &RecognitionVerdict, mra: &Mra) {
    if verdict.recognized() {
        let clause = verdict.clause().unwrap_or("?");
        let level = match (verdict.level_reached(), verdict.level_required()) {
            (Some(reached), Some(required)) => {
                format!("; assurance level {reached} reached, {required} required")
            }
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "RECOGNIZED by {} for {}: chain to the {} anchor, under {clause}{level}",
            verdict.relying(),
            verdict.purpose(),
            verdict.anchor_jurisdiction().unwrap_or("?")
        );
        if let Some(row) = verdict
            .clause()
            .and_then(|c| c.strip_prefix("MRA §recognition."))
            .and_then(|id| mra.rows().iter().find(|r| r.id == id))
        {
            let purposes: Vec<&str> = row.purposes.iter().map(|p| p.as_str()).collect();
            let _ = writeln!(
                out,
                "  row {}: {} recognizes {} for {} at level {} or above, {} to {}",
                row.id,
                row.relying,
                row.issuing,
                purposes.join(", "),
                row.minimum_level,
                row.not_before,
                row.not_after
            );
        }
    } else {
        let _ = writeln!(
            out,
            "NOT RECOGNIZED by {} for {}",
            verdict.relying(),
            verdict.purpose()
        );
        if let Some(reason) = verdict.reason() {
            write_reason(out, reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_kakehashi_assurance_policies_and_any_policy() {
        let high = format!("{KAKEHASHI_ARC}.2.392.3");
        assert_eq!(
            policy_name(&high).as_deref(),
            Some("kakehashi JP assurance high")
        );
        let sg_low = format!("{KAKEHASHI_ARC}.2.702.1");
        assert_eq!(
            policy_name(&sg_low).as_deref(),
            Some("kakehashi SG assurance low")
        );
        assert_eq!(policy_name("2.5.29.32.0").as_deref(), Some("anyPolicy"));
        assert_eq!(policy_name(&format!("{KAKEHASHI_ARC}.2.392.9")), None);
        assert_eq!(policy_name("1.2.3"), None);
    }

    #[test]
    fn names_tls_and_kakehashi_extended_key_usages() {
        assert_eq!(eku_name(EKU_SERVER_AUTH).as_deref(), Some("serverAuth"));
        assert_eq!(
            eku_name(EKU_PAYMENT_SIGNING).as_deref(),
            Some("kakehashi payment-signing")
        );
        assert_eq!(eku_name("1.2.3.4"), None);
    }
}
