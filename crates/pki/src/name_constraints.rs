//! Name constraints (RFC 5280 §4.2.1.10, §6.1.3(b)-(c), §6.1.4(g)) over DNS, IP, email,
//! directoryName and URI.
//!
//! The permitted subtrees of the path are kept as one set per constraining CA rather than as a
//! computed intersection: a name is permitted when, for every CA that constrains the name's
//! form, it lies inside at least one of that CA's subtrees of the form. That is the RFC's
//! intersection without having to compute it. Excluded subtrees accumulate as a union.
//!
//! Forms the verifier cannot process (otherName, x400Address, ediPartyName, registeredID) are
//! rejected only when an instance of the form actually appears in a later certificate, as
//! §4.2.1.10 requires ("MUST either process the constraint or reject the certificate").

use std::net::IpAddr;

use crate::cert::{Cert, GeneralName, Name, NameConstraints, OID_COMMON_NAME, OID_EMAIL_ADDRESS};
use crate::error::Error;

/// Most name-versus-subtree comparisons one path validation may make: a certificate with
/// thousands of names under a CA with thousands of constraints is quadratic work (the
/// pathological `nc-dos` shape), and no real chain comes near this bound.
pub(crate) const NAME_CONSTRAINT_CHECKS_MAX: usize = 250_000;

/// A name to check, taken from a certificate's subject or subjectAltName.
#[derive(Clone, Debug)]
pub(crate) enum SubjectName<'a> {
    /// A name from subjectAltName.
    Alt(&'a GeneralName),
    /// The subject distinguished name.
    Directory(&'a Name),
    /// An emailAddress attribute of the subject DN.
    EmailAttribute(String),
    /// A commonName that reads as a DNS name, checked as one under the web-PKI profile.
    CommonNameDns(String),
    /// A commonName that reads as an IP address, checked as one under the web-PKI profile.
    CommonNameIp(IpAddr),
}

impl std::fmt::Display for SubjectName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Alt(n) => write!(f, "{n}"),
            Self::Directory(n) => write!(f, "subject {n}"),
            Self::EmailAttribute(e) => write!(f, "subject emailAddress {e}"),
            Self::CommonNameDns(d) => write!(f, "subject CN {d} (as dNSName)"),
            Self::CommonNameIp(ip) => write!(f, "subject CN {ip} (as iPAddress)"),
        }
    }
}

/// The names of `cert` that name constraints apply to. `common_name_as_dns` adds commonName
/// values that read as host names or IP addresses (web-PKI clients treat them as such).
pub(crate) fn subject_names(cert: &Cert, common_name_as_dns: bool) -> Vec<SubjectName<'_>> {
    let mut names = Vec::new();
    if !cert.subject().is_empty() {
        names.push(SubjectName::Directory(cert.subject()));
    }
    // RFC 5280 §4.2.1.10: rfc822Name constraints apply to emailAddress attributes of the
    // subject when there is no rfc822Name in subjectAltName; checking them always is stricter.
    for attr in cert.subject().attributes(OID_EMAIL_ADDRESS) {
        names.push(SubjectName::EmailAttribute(attr.text().unwrap_or_default()));
    }
    if common_name_as_dns {
        for attr in cert.subject().attributes(OID_COMMON_NAME) {
            let Some(text) = attr.text() else { continue };
            if let Ok(ip) = text.parse::<IpAddr>() {
                names.push(SubjectName::CommonNameIp(ip));
            } else if looks_like_host_name(&text) {
                names.push(SubjectName::CommonNameDns(text));
            }
        }
    }
    if let Some(alt) = cert.subject_alt_names() {
        names.extend(alt.iter().map(SubjectName::Alt));
    }
    names
}

/// True for a dotted name of LDH labels (optionally with a leading `*.`), the shape a CN
/// that was meant as a host name has.
fn looks_like_host_name(text: &str) -> bool {
    let body = text.strip_prefix("*.").unwrap_or(text);
    body.contains('.')
        && body.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The name constraints accumulated along a path (RFC 5280 §6.1.2(b)-(c) state).
#[derive(Clone, Debug, Default)]
pub(crate) struct ConstraintState {
    permitted: Vec<Vec<GeneralName>>,
    excluded: Vec<GeneralName>,
    checks: usize,
}

impl ConstraintState {
    /// No constraints.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// True when no constraint has been added.
    pub(crate) fn is_unconstrained(&self) -> bool {
        self.permitted.is_empty() && self.excluded.is_empty()
    }

    /// Adds a CA's nameConstraints (§6.1.4(g)). Malformed subtree bases reject the path: a
    /// constraint we cannot read cannot be honoured.
    pub(crate) fn add(&mut self, nc: &NameConstraints) -> Result<(), Error> {
        for base in nc
            .permitted
            .iter()
            .flatten()
            .chain(nc.excluded.iter().flatten())
        {
            validate_base(base)?;
        }
        if let Some(permitted) = &nc.permitted {
            self.permitted.push(permitted.clone());
        }
        if let Some(excluded) = &nc.excluded {
            self.excluded.extend(excluded.iter().cloned());
        }
        Ok(())
    }

    /// Checks one name against the accumulated constraints (§6.1.3(b)-(c)).
    pub(crate) fn check(&mut self, name: &SubjectName<'_>) -> Result<(), Error> {
        for base in &self.excluded {
            self.checks += 1;
            if self.checks > NAME_CONSTRAINT_CHECKS_MAX {
                return Err(budget());
            }
            if let Some(Match::Inside | Match::Overlaps) = relate(name, base)? {
                return Err(Error::NameConstraintViolation {
                    name: name.to_string(),
                    detail: format!("inside excluded subtree {base}"),
                });
            }
        }
        for set in &self.permitted {
            let mut constrained = false;
            let mut inside = false;
            for base in set {
                self.checks += 1;
                if self.checks > NAME_CONSTRAINT_CHECKS_MAX {
                    return Err(budget());
                }
                match relate(name, base)? {
                    None => {}
                    Some(Match::Inside) => {
                        constrained = true;
                        inside = true;
                        break;
                    }
                    Some(Match::Overlaps | Match::Outside) => constrained = true,
                }
            }
            if constrained && !inside {
                return Err(Error::NameConstraintViolation {
                    name: name.to_string(),
                    detail: "outside every permitted subtree of its form".to_owned(),
                });
            }
        }
        Ok(())
    }
}

fn budget() -> Error {
    Error::BudgetExceeded {
        what: "name constraint comparisons",
        limit: NAME_CONSTRAINT_CHECKS_MAX,
    }
}

/// How a name relates to a subtree of the same form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Match {
    /// Every name the presented name stands for lies inside the subtree.
    Inside,
    /// A wildcard name could stand for names both inside and outside the subtree.
    Overlaps,
    /// No name it stands for lies inside the subtree.
    Outside,
}

impl Match {
    fn from_bool(inside: bool) -> Self {
        if inside { Self::Inside } else { Self::Outside }
    }
}

/// Relates `name` to `base`; `None` when the base is of another form (it does not constrain
/// this name). An unprocessable form that meets an instance of itself is an error.
fn relate(name: &SubjectName<'_>, base: &GeneralName) -> Result<Option<Match>, Error> {
    let unsupported = |form: &str| Error::UnsupportedNameConstraint {
        form: form.to_owned(),
    };
    Ok(match (name, base) {
        (SubjectName::Directory(n), GeneralName::Directory(b)) => {
            Some(Match::from_bool(n.starts_with(b)))
        }
        (SubjectName::Alt(GeneralName::Directory(n)), GeneralName::Directory(b)) => {
            Some(Match::from_bool(n.starts_with(b)))
        }
        (SubjectName::Alt(GeneralName::Dns(n)), GeneralName::Dns(b))
        | (SubjectName::CommonNameDns(n), GeneralName::Dns(b)) => Some(dns_relate(n, b)?),
        (SubjectName::Alt(GeneralName::Ip(n)), GeneralName::Ip(b)) => {
            Some(Match::from_bool(ip_in_subnet(n, b)?))
        }
        (SubjectName::CommonNameIp(ip), GeneralName::Ip(b)) => {
            let bytes = match ip {
                IpAddr::V4(v4) => v4.octets().to_vec(),
                IpAddr::V6(v6) => v6.octets().to_vec(),
            };
            Some(Match::from_bool(ip_in_subnet(&bytes, b)?))
        }
        (SubjectName::Alt(GeneralName::Email(n)), GeneralName::Email(b)) => {
            Some(Match::from_bool(email_in_subtree(n, b)?))
        }
        (SubjectName::EmailAttribute(n), GeneralName::Email(b)) => {
            Some(Match::from_bool(email_in_subtree(n, b)?))
        }
        (SubjectName::Alt(GeneralName::Uri(n)), GeneralName::Uri(b)) => {
            Some(Match::from_bool(uri_in_subtree(n, b)?))
        }
        (SubjectName::Alt(GeneralName::Other { oid }), GeneralName::Other { oid: base_oid })
            if oid == base_oid =>
        {
            return Err(unsupported("otherName"));
        }
        (SubjectName::Alt(GeneralName::X400), GeneralName::X400) => {
            return Err(unsupported("x400Address"));
        }
        (SubjectName::Alt(GeneralName::EdiParty), GeneralName::EdiParty) => {
            return Err(unsupported("ediPartyName"));
        }
        (SubjectName::Alt(GeneralName::RegisteredId(_)), GeneralName::RegisteredId(_)) => {
            return Err(unsupported("registeredID"));
        }
        (SubjectName::Alt(GeneralName::Invalid { .. }), _) => {
            return Err(Error::Malformed {
                what: "subjectAltName".into(),
                detail: "an entry cannot be decoded, so name constraints cannot be checked".into(),
            });
        }
        _ => None,
    })
}

/// Checks that a subtree base is well formed for its form.
fn validate_base(base: &GeneralName) -> Result<(), Error> {
    let bad = |detail: String| {
        Err(Error::Malformed {
            what: "nameConstraints".into(),
            detail,
        })
    };
    match base {
        // RFC 5280 §4.2.1.10 gives the form as `host.example.com`: no wildcard, and a leading
        // period is not part of the dNSName syntax (it is for URIs and emails).
        GeneralName::Dns(b) if !b.is_empty() && !is_dns_name(b, false) => {
            return bad(format!("dNSName subtree {b:?} is not a valid DNS name"));
        }
        GeneralName::Ip(b) => {
            if b.len() != 8 && b.len() != 32 {
                return bad(format!(
                    "iPAddress subtree of {} octets (need 8 or 32)",
                    b.len()
                ));
            }
            let mask = &b[b.len() / 2..];
            if !is_contiguous_mask(mask) {
                return bad("iPAddress subtree mask is not a CIDR prefix".to_owned());
            }
        }
        GeneralName::Email(b) => {
            let ok = match b.split_once('@') {
                Some((local, host)) => {
                    !local.is_empty() && !host.contains('@') && is_dns_name(host, false)
                }
                None => {
                    let host = b.strip_prefix('.').unwrap_or(b);
                    b.is_empty() || is_dns_name(host, false)
                }
            };
            if !ok {
                return bad(format!(
                    "rfc822Name subtree {b:?} is not a mailbox, host or domain"
                ));
            }
        }
        GeneralName::Uri(b) => {
            let host = b.strip_prefix('.').unwrap_or(b);
            if !b.is_empty() && !is_dns_name(host, false) {
                return bad(format!("URI subtree {b:?} is not a host or domain"));
            }
        }
        GeneralName::Invalid { tag } => {
            return bad(format!("subtree [{tag}] cannot be decoded"));
        }
        _ => {}
    }
    Ok(())
}

/// A DNS name of LDH labels (underscores tolerated, as real names carry them), optionally
/// with a leading `*.` wildcard label when `wildcard` is allowed.
pub(crate) fn is_dns_name(name: &str, wildcard: bool) -> bool {
    let body = match name.strip_prefix("*.") {
        Some(rest) if wildcard => rest,
        _ => name,
    };
    let body = body.strip_suffix('.').unwrap_or(body);
    !body.is_empty()
        && body.len() <= 253
        && body.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn labels(name: &str) -> Vec<String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    name.split('.').map(str::to_ascii_lowercase).collect()
}

/// True when `name`'s labels end with all of `base`'s (the dNSName subtree test).
fn dns_within(name: &[String], base: &[String]) -> bool {
    name.len() >= base.len() && name[name.len() - base.len()..] == *base
}

/// Relates a presented DNS name (possibly a `*.` wildcard) to a dNSName subtree.
fn dns_relate(name: &str, base: &str) -> Result<Match, Error> {
    if base.is_empty() {
        // An empty base is the whole DNS namespace.
        return Ok(Match::Inside);
    }
    if !is_dns_name(name, true) {
        return Err(Error::Malformed {
            what: "dNSName".into(),
            detail: format!(
                "{name:?} is not a valid DNS name, so name constraints cannot be checked"
            ),
        });
    }
    let base = labels(base);
    match name.strip_prefix("*.") {
        None => Ok(Match::from_bool(dns_within(&labels(name), &base))),
        Some(rest) => {
            // `*.rest` stands for every name of exactly one more label than `rest`.
            let rest = labels(rest);
            if dns_within(&rest, &base) {
                Ok(Match::Inside)
            } else if base.len() == rest.len() + 1 && dns_within(&base, &rest) {
                // The base is one of the names the wildcard stands for.
                Ok(Match::Overlaps)
            } else {
                Ok(Match::Outside)
            }
        }
    }
}

fn is_contiguous_mask(mask: &[u8]) -> bool {
    let mut seen_zero = false;
    for byte in mask {
        for bit in (0..8).rev() {
            let one = byte & (1 << bit) != 0;
            if one && seen_zero {
                return false;
            }
            seen_zero |= !one;
        }
    }
    true
}

fn ip_in_subnet(addr: &[u8], subnet: &[u8]) -> Result<bool, Error> {
    if addr.len() != 4 && addr.len() != 16 {
        return Err(Error::Malformed {
            what: "iPAddress".into(),
            detail: format!("{} octets (need 4 or 16)", addr.len()),
        });
    }
    if subnet.len() != addr.len() * 2 {
        // IPv4 names are not constrained by IPv6 subtrees and vice versa.
        return Ok(false);
    }
    let (net, mask) = subnet.split_at(addr.len());
    Ok(addr
        .iter()
        .zip(net)
        .zip(mask)
        .all(|((a, n), m)| a & m == n & m))
}

fn email_in_subtree(email: &str, base: &str) -> Result<bool, Error> {
    let Some((local, host)) = email.split_once('@') else {
        return Err(malformed_email(email));
    };
    if local.is_empty() || host.contains('@') || !is_dns_name(host, false) {
        return Err(malformed_email(email));
    }
    Ok(match base.split_once('@') {
        // A whole mailbox: the local part is compared exactly, the host case-insensitively.
        Some((base_local, base_host)) => {
            local == base_local && host.eq_ignore_ascii_case(base_host)
        }
        None => match base.strip_prefix('.') {
            // `.example.com`: any mailbox at a host below example.com.
            Some(domain) => {
                let h = labels(host);
                let d = labels(domain);
                h.len() > d.len() && dns_within(&h, &d)
            }
            // `example.com`: any mailbox at exactly that host.
            None => base.is_empty() || host.eq_ignore_ascii_case(base),
        },
    })
}

fn malformed_email(email: &str) -> Error {
    Error::Malformed {
        what: "rfc822Name".into(),
        detail: format!("{email:?} is not a mailbox, so name constraints cannot be checked"),
    }
}

/// RFC 5280 §4.2.1.10: URI constraints apply to the host part; a base with a leading period
/// covers hosts below it, otherwise exactly that host.
fn uri_in_subtree(uri: &str, base: &str) -> Result<bool, Error> {
    let host = uri_host(uri).ok_or_else(|| Error::Malformed {
        what: "uniformResourceIdentifier".into(),
        detail: format!("{uri:?} has no host, so name constraints cannot be checked"),
    })?;
    Ok(if base.is_empty() {
        true
    } else if let Some(domain) = base.strip_prefix('.') {
        let h = labels(&host);
        let d = labels(domain);
        h.len() > d.len() && dns_within(&h, &d)
    } else {
        host.eq_ignore_ascii_case(base)
    })
}

fn uri_host(uri: &str) -> Option<String> {
    let (_, rest) = uri.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host_port.starts_with('[') {
        // An IP literal cannot satisfy a host-name constraint.
        return None;
    } else {
        host_port.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_owned())
}

#[cfg(test)]
mod tests;
