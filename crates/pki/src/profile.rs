//! The web-PKI server profile: serverAuth EKU, peer-name matching with wildcards, and the
//! certificate-profile rules of RFC 5280 and the CA/Browser Forum Baseline Requirements
//! (CABF BR §7.1) that web-PKI verifiers enforce.

use std::net::IpAddr;

use crate::cert::{Cert, EKU_ANY, GeneralName, KeyUsage, OID_COMMON_NAME};
use crate::error::Error;
use crate::name_constraints::is_dns_name;
use crate::signature::{HashAlgorithm, KeyAlgorithm, SignatureAlgorithm};

/// Which rule set validation applies on top of RFC 5280 §6.1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Profile {
    /// RFC 5280 path validation only (PKITS, the mutual-recognition PKIs).
    #[default]
    Rfc5280,
    /// RFC 5280 plus the web-PKI certificate profile (CABF BR, x509-limbo's SERVER/CLIENT).
    WebPki,
}

/// The identity a relying party expects the end-entity certificate to carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerName {
    /// A DNS host name (A-labels for internationalized names), matched against dNSName.
    Dns(String),
    /// An email address, matched against rfc822Name.
    Email(String),
    /// An IP address, matched against iPAddress.
    Ip(IpAddr),
}

impl std::fmt::Display for PeerName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dns(d) => write!(f, "DNS name {d}"),
            Self::Email(e) => write!(f, "email {e}"),
            Self::Ip(ip) => write!(f, "IP address {ip}"),
        }
    }
}

/// The rule CABF BR key checks cite.
const RULE_KEYS: &str = "CABF BR §6.1.5, §7.1.3.1";

/// Checks the peer name against the leaf's subjectAltName (RFC 6125 §6.4, RFC 9525 §6.3).
/// There is no fallback to the subject commonName: RFC 9525 §6.3 removed it and the BRs put
/// every identity in subjectAltName.
pub(crate) fn check_peer_name(leaf: &Cert, peer: &PeerName) -> Result<(), Error> {
    let alt = leaf.subject_alt_names().unwrap_or(&[]);
    let found = alt.iter().any(|name| match (peer, name) {
        (PeerName::Dns(reference), GeneralName::Dns(presented)) => {
            dns_name_matches(presented, reference)
        }
        (PeerName::Ip(ip), GeneralName::Ip(bytes)) => match ip {
            IpAddr::V4(v4) => bytes.as_slice() == v4.octets(),
            IpAddr::V6(v6) => bytes.as_slice() == v6.octets(),
        },
        (PeerName::Email(reference), GeneralName::Email(presented)) => {
            email_matches(presented, reference)
        }
        _ => false,
    });
    if found {
        Ok(())
    } else {
        Err(Error::PeerNameMismatch {
            expected: peer.to_string(),
            presented: alt.iter().map(ToString::to_string).collect(),
        })
    }
}

/// True when the presented dNSName (possibly a wildcard) matches the reference host name.
///
/// RFC 6125 §6.4.3 and CABF BR §1.6.1 ("Wildcard Domain Name"): the wildcard is a whole
/// left-most label `*`, it matches exactly one non-empty label, and it may not stand for a
/// label directly under a public suffix (CABF BR §3.2.2.6), so `*.com`, `*.co.uk` and a bare
/// `*` match nothing. Partial wildcards (`f*o`, `xn--*`) match nothing. Comparison is
/// case-insensitive over ASCII; internationalized names must be A-labels.
pub(crate) fn dns_name_matches(presented: &str, reference: &str) -> bool {
    let reference = reference.strip_suffix('.').unwrap_or(reference);
    let presented = presented.strip_suffix('.').unwrap_or(presented);
    if !reference.is_ascii() || !presented.is_ascii() || reference.contains('*') {
        return false;
    }
    match presented.strip_prefix("*.") {
        None => !presented.contains('*') && presented.eq_ignore_ascii_case(reference),
        Some(parent) => {
            if parent.contains('*') || !is_dns_name(parent, false) || is_public_suffix(parent) {
                return false;
            }
            match reference.split_once('.') {
                Some((first, rest)) => !first.is_empty() && rest.eq_ignore_ascii_case(parent),
                None => false,
            }
        }
    }
}

/// True when `domain` is itself a public suffix (a TLD such as `com`, or a registry suffix
/// such as `co.uk`), or a single label, which the public suffix list's default rule makes one.
fn is_public_suffix(domain: &str) -> bool {
    let lower = domain.to_ascii_lowercase();
    if !lower.contains('.') {
        return true;
    }
    psl::suffix(lower.as_bytes()).is_some_and(|s| s.as_bytes() == lower.as_bytes())
}

fn email_matches(presented: &str, reference: &str) -> bool {
    match (presented.rsplit_once('@'), reference.rsplit_once('@')) {
        (Some((pl, ph)), Some((rl, rh))) => pl == rl && ph.eq_ignore_ascii_case(rh),
        _ => false,
    }
}

/// Checks the extended key usage of the end-entity certificate (RFC 5280 §4.2.1.12): absent
/// means unrestricted; present, it must list one of `required` (anyExtendedKeyUsage counts only
/// under the RFC 5280 profile: the BRs forbid it in subscriber certificates).
pub(crate) fn check_leaf_eku(
    leaf: &Cert,
    required: &[String],
    profile: Profile,
) -> Result<(), Error> {
    let Some(present) = leaf.extended_key_usage() else {
        return Ok(());
    };
    if required.is_empty() {
        return Ok(());
    }
    let any_ok = profile == Profile::Rfc5280 && present.iter().any(|o| o == EKU_ANY);
    if any_ok || present.iter().any(|o| required.contains(o)) {
        Ok(())
    } else {
        Err(Error::EkuMismatch {
            required: required.to_vec(),
            present: present.to_vec(),
        })
    }
}

/// The position of a certificate on the path, for the profile rules that differ by role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// The end-entity certificate.
    Leaf,
    /// A CA certificate between the leaf and the trust anchor.
    Intermediate,
    /// The trust anchor certificate.
    Anchor,
}

fn profile_error(rule: &'static str, detail: impl Into<String>) -> Error {
    Error::Profile {
        rule,
        detail: detail.into(),
    }
}

/// The web-PKI certificate-profile rules for one certificate on the path.
pub(crate) fn check_webpki_cert(
    cert: &Cert,
    role: Role,
    required_ekus: &[String],
) -> Result<(), Error> {
    let subject = cert.subject_display();
    if cert.version() != 2 {
        return Err(profile_error(
            "CABF BR §7.1.1",
            format!(
                "{subject} is a version {} certificate; v3 is required",
                cert.version() + 1
            ),
        ));
    }
    check_key(cert)?;
    if let Some(defect) = cert.validity_encoding_defect() {
        return Err(profile_error(
            "RFC 5280 §4.1.2.5",
            format!("{subject}: {defect}"),
        ));
    }
    if role != Role::Leaf {
        check_ca_extensions(cert)?;
    }
    check_extension_criticality(cert)?;
    match role {
        Role::Anchor => check_webpki_anchor(cert)?,
        Role::Intermediate => check_webpki_intermediate(cert, required_ekus)?,
        Role::Leaf => check_webpki_leaf(cert)?,
    }
    // The authorityKeyIdentifier rule (RFC 5280 §4.2.1.1) is checked under both profiles, in
    // `validate`.
    Ok(())
}

/// RFC 5280 §4.2.1.9: CAs MUST include basicConstraints and mark it critical; §4.2.1.2:
/// subjectKeyIdentifier MUST appear in all conforming CA certificates.
fn check_ca_extensions(ca: &Cert) -> Result<(), Error> {
    let subject = ca.subject_display();
    if !ca.basic_constraints().is_some_and(|bc| bc.critical) {
        return Err(profile_error(
            "RFC 5280 §4.2.1.9",
            format!("CA {subject}: basicConstraints is absent or not critical"),
        ));
    }
    if ca.subject_key_id().is_none() {
        return Err(profile_error(
            "RFC 5280 §4.2.1.2",
            format!("CA {subject} has no subjectKeyIdentifier"),
        ));
    }
    Ok(())
}

/// Key identifiers MUST NOT be critical (RFC 5280 §4.2.1.1, §4.2.1.2); policyConstraints and
/// nameConstraints MUST be (§4.2.1.10, §4.2.1.11).
fn check_extension_criticality(cert: &Cert) -> Result<(), Error> {
    let subject = cert.subject_display();
    for (oid, critical) in cert.extensions() {
        let must_not_be_critical = matches!(oid.as_str(), "2.5.29.14" | "2.5.29.35");
        if *critical && must_not_be_critical {
            return Err(profile_error(
                "RFC 5280 §4.2.1.1, §4.2.1.2",
                format!("{subject}: key identifier extension {oid} is marked critical"),
            ));
        }
        let must_be_critical = matches!(oid.as_str(), "2.5.29.36" | "2.5.29.30");
        if !*critical && must_be_critical {
            return Err(profile_error(
                "RFC 5280 §4.2.1.10, §4.2.1.11",
                format!("{subject}: extension {oid} must be marked critical"),
            ));
        }
    }
    Ok(())
}

/// CABF BR §7.1.2.1: a root carries no extKeyUsage, and its authorityKeyIdentifier, if any,
/// is only a keyIdentifier, its own subject key id when it is self-signed.
fn check_webpki_anchor(anchor: &Cert) -> Result<(), Error> {
    let subject = anchor.subject_display();
    if anchor.extended_key_usage().is_some() {
        return Err(profile_error(
            "CABF BR §7.1.2.1.2",
            format!("root {subject} carries extKeyUsage"),
        ));
    }
    let Some(aki) = anchor.authority_key_id() else {
        return Ok(());
    };
    if aki.issuer.is_some() || aki.serial.is_some() {
        return Err(profile_error(
            "CABF BR §7.1.2.1.3",
            format!("root {subject}: authorityCertIssuer/SerialNumber present"),
        ));
    }
    let Some(key_id) = &aki.key_id else {
        return Err(profile_error(
            "CABF BR §7.1.2.1.3",
            format!("root {subject}: authorityKeyIdentifier without keyIdentifier"),
        ));
    };
    if anchor.is_self_issued() && anchor.subject_key_id() != Some(key_id.as_slice()) {
        return Err(profile_error(
            "CABF BR §7.1.2.1.3",
            format!("root {subject}: authority key id differs from its subject key id"),
        ));
    }
    Ok(())
}

/// A subordinate CA carries keyUsage (RFC 5280 §4.2.1.3, CABF BR §7.1.2.10.7), and an
/// extKeyUsage, if it has one, that allows one of the required purposes.
fn check_webpki_intermediate(ca: &Cert, required_ekus: &[String]) -> Result<(), Error> {
    if ca.key_usage().is_none() {
        return Err(profile_error(
            "RFC 5280 §4.2.1.3, CABF BR §7.1.2.10.7",
            format!("CA {} has no keyUsage", ca.subject_display()),
        ));
    }
    if let Some(ekus) = ca.extended_key_usage()
        && !required_ekus.is_empty()
        && !ekus.iter().any(|o| required_ekus.contains(o))
    {
        return Err(Error::EkuMismatch {
            required: required_ekus.to_vec(),
            present: ekus.to_vec(),
        });
    }
    Ok(())
}

fn check_webpki_leaf(leaf: &Cert) -> Result<(), Error> {
    let subject = leaf.subject_display();
    if leaf.is_ca()
        || leaf
            .key_usage()
            .is_some_and(|ku| ku.has(KeyUsage::KEY_CERT_SIGN))
    {
        return Err(profile_error(
            "CABF BR §7.1.2.7.8, §7.1.2.7.11",
            format!("end-entity {subject} is a CA certificate"),
        ));
    }
    if leaf.extended_key_usage().is_none() {
        return Err(profile_error(
            "CABF BR §7.1.2.7.10",
            format!("end-entity {subject} has no extKeyUsage"),
        ));
    }
    // CABF BR §7.1.2.7.10: in a subscriber certificate anyExtendedKeyUsage "MUST NOT" be
    // present, alone or next to the purposes it would widen.
    if leaf
        .extended_key_usage()
        .is_some_and(|ekus| ekus.iter().any(|o| o == EKU_ANY))
    {
        return Err(profile_error(
            "CABF BR §7.1.2.7.10",
            format!(
                "end-entity {subject}: extKeyUsage contains anyExtendedKeyUsage, which a \
                 subscriber certificate must not carry"
            ),
        ));
    }
    if leaf.name_constraints().is_some() {
        return Err(profile_error(
            "RFC 5280 §4.2.1.10",
            format!("end-entity {subject} carries nameConstraints"),
        ));
    }
    if leaf
        .extensions()
        .iter()
        .any(|(oid, critical)| oid == "2.5.29.37" && *critical)
    {
        return Err(profile_error(
            "CABF BR §7.1.2.7.6",
            format!("end-entity {subject}: extKeyUsage is marked critical"),
        ));
    }
    if leaf.subject_alt_names().is_some()
        && !leaf.subject().is_empty()
        && leaf.subject_alt_names_critical()
    {
        return Err(profile_error(
            "CABF BR §7.1.2.7.12",
            format!("end-entity {subject}: subjectAltName is critical with a non-empty subject"),
        ));
    }
    let alt = leaf.subject_alt_names().unwrap_or(&[]);
    for name in alt {
        if let GeneralName::Dns(d) = name
            && !is_ldh_dns_name(d)
        {
            return Err(profile_error(
                "RFC 5280 §4.2.1.6, CABF BR §7.1.2.7.12",
                format!("dNSName {d:?} is not in preferred name syntax"),
            ));
        }
    }
    Ok(())
}

/// CABF BR §7.1.4.3: a commonName, if present, repeats one subjectAltName value character
/// for character (a dNSName, or the RFC 3986 / RFC 5952 text of an iPAddress). Legacy clients
/// match host names against the commonName, so a host-like commonName that is not a SAN value
/// is a second identity nothing validated.
///
/// When name constraints are in force on the path the rule is relaxed, as a compatibility
/// concession rather than a BR rule: name-constraint suites (BetterTLS) issue leaves whose
/// commonName lies outside the constrained namespace next to a subjectAltName inside it and
/// expect them to validate, since RFC 6125 §6.4.4 clients ignore the commonName once a DNS-ID
/// is present. A leaf with no subjectAltName has its host-like commonName checked against the
/// constraints instead (see [`crate::name_constraints::subject_names`]); one with a
/// subjectAltName is then held only to the respelling rule below (a commonName that names a
/// SAN value in another case, another IP notation or as a U-label is always refused).
pub(crate) fn check_common_name(leaf: &Cert, constrained: bool) -> Result<(), Error> {
    let alt = leaf.subject_alt_names().unwrap_or(&[]);
    for attr in leaf.subject().attributes(OID_COMMON_NAME) {
        let text = attr.text().unwrap_or_default();
        let listed = alt.iter().any(|name| match name {
            GeneralName::Dns(d) => *d == text,
            GeneralName::Ip(bytes) => canonical_ip(bytes).is_some_and(|ip| ip == text),
            _ => false,
        });
        if listed {
            continue;
        }
        let respelled = alt.iter().any(|name| match name {
            GeneralName::Dns(d) => d.eq_ignore_ascii_case(&text),
            GeneralName::Ip(bytes) => lenient_ip(&text).is_some_and(|ip| match ip {
                IpAddr::V4(v4) => bytes.as_slice() == v4.octets(),
                IpAddr::V6(v6) => bytes.as_slice() == v6.octets(),
            }),
            _ => false,
        });
        let host_like = lenient_ip(&text).is_some() || is_host_like(&text);
        if respelled || (host_like && !constrained) || (!text.is_ascii() && host_like) {
            return Err(profile_error(
                "CABF BR §7.1.4.3",
                format!("commonName {text:?} is not a copy of a subjectAltName value"),
            ));
        }
    }
    Ok(())
}

/// A dotted name whose labels are letters (any script), digits, hyphens or underscores.
fn is_host_like(text: &str) -> bool {
    text.contains('.')
        && text.split('.').all(|l| {
            !l.is_empty()
                && l.chars()
                    .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
        })
}

/// Parses an IP address in canonical text or in the lenient notations some resolvers accept
/// (inet_aton's hexadecimal and single-number IPv4, upper-case IPv6).
fn lenient_ip(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(ip) = text.to_ascii_lowercase().parse::<IpAddr>() {
        return Some(ip);
    }
    let lower = text.to_ascii_lowercase();
    let value = match lower.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
        None if !lower.is_empty() && lower.bytes().all(|b| b.is_ascii_digit()) => {
            lower.parse::<u32>().ok()?
        }
        None => return None,
    };
    Some(IpAddr::V4(std::net::Ipv4Addr::from(value)))
}

/// Preferred name syntax (RFC 1034 §3.5 as relaxed by RFC 1123 §2.1): letters, digits and
/// hyphens, with an optional wildcard left-most label.
fn is_ldh_dns_name(name: &str) -> bool {
    is_dns_name(name, true) && !name.contains('_')
}

/// RFC 5952 text for IPv6 (lowercase, compressed) and dotted decimal for IPv4, which is how
/// the standard library formats them.
fn canonical_ip(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => Some(std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).to_string()),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(bytes);
            Some(std::net::Ipv6Addr::from(a).to_string())
        }
        _ => None,
    }
}

/// CABF BR §7.1.3.2.2: an ECDSA signature uses the hash that matches the issuer's curve
/// (SHA-256 with P-256, SHA-384 with P-384).
pub(crate) fn check_signature_pairing(cert: &Cert, issuer: &Cert) -> Result<(), Error> {
    let Ok(SignatureAlgorithm::Ecdsa(hash)) = cert.signature_algorithm() else {
        return Ok(());
    };
    let fits = matches!(
        (issuer.spki().algorithm(), hash),
        (KeyAlgorithm::EcP256, HashAlgorithm::Sha256)
            | (KeyAlgorithm::EcP384, HashAlgorithm::Sha384)
    );
    if fits {
        Ok(())
    } else {
        Err(profile_error(
            "CABF BR §7.1.3.2.2",
            format!(
                "{}: ECDSA with {hash:?} under a {} key",
                cert.subject_display(),
                issuer.spki().algorithm().name()
            ),
        ))
    }
}

/// CABF BR §6.1.5 and §7.1.3.1: RSA keys of at least 2048 bits whose size is a multiple of 8,
/// ECDSA on P-256 or P-384 with a named curve; Ed25519 is accepted as well (RFC 8410), as
/// rustls-webpki does.
fn check_key(cert: &Cert) -> Result<(), Error> {
    match cert.spki().algorithm() {
        KeyAlgorithm::EcP256 | KeyAlgorithm::EcP384 | KeyAlgorithm::Ed25519 => Ok(()),
        KeyAlgorithm::Rsa { bits } if *bits >= 2048 && *bits <= 8192 && bits % 8 == 0 => Ok(()),
        // The BRs permit P-521; signatures by it are refused elsewhere (undecided), but a
        // P-521 end-entity key is no reason to reject.
        KeyAlgorithm::Unsupported { name } if name == "P-521" => Ok(()),
        other => Err(profile_error(
            RULE_KEYS,
            format!(
                "{}: {} keys are not permitted",
                cert.subject_display(),
                other.name()
            ),
        )),
    }
}

#[cfg(test)]
mod tests;
