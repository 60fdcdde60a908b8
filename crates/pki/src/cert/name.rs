//! Names in certificates: distinguished names (RFC 5280 §4.1.2.4) with their RFC 5280 §7.1
//! comparison form and RFC 4514 text, and general names (RFC 5280 §4.2.1.6).

use std::fmt::Write as _;

use x509_parser::der_parser::asn1_rs::{Class, Tag};
use x509_parser::extensions::GeneralName as X509GeneralName;
use x509_parser::prelude::FromDer as _;
use x509_parser::x509::{AttributeTypeAndValue, RelativeDistinguishedName, X509Name};

use super::{OID_COMMON_NAME, OID_EMAIL_ADDRESS, oid_string};
use crate::error::Error;

/// One AttributeTypeAndValue of a distinguished name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Attribute {
    /// The attribute type, dotted.
    pub oid: String,
    /// The ASN.1 universal tag of the value (e.g. 19 PrintableString, 12 UTF8String).
    pub tag: u32,
    /// Whether the value has the universal class (anything else is compared as raw bytes).
    pub universal: bool,
    /// The value's content octets.
    pub value: Vec<u8>,
}

impl Attribute {
    fn from_x509(atv: &AttributeTypeAndValue<'_>) -> Self {
        let any = atv.attr_value();
        Self {
            oid: oid_string(atv.attr_type()),
            tag: any.tag().0,
            universal: any.class() == Class::Universal,
            value: any.data.to_vec(),
        }
    }

    /// The value as text, for the string types RFC 5280 §7.1 compares as text.
    pub fn text(&self) -> Option<String> {
        if !self.universal {
            return None;
        }
        match Tag(self.tag) {
            Tag::PrintableString | Tag::Utf8String | Tag::Ia5String | Tag::NumericString => {
                String::from_utf8(self.value.clone()).ok()
            }
            Tag::BmpString => {
                if !self.value.len().is_multiple_of(2) {
                    return None;
                }
                let units: Vec<u16> = self
                    .value
                    .chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect();
                String::from_utf16(&units).ok()
            }
            Tag::UniversalString => {
                if !self.value.len().is_multiple_of(4) {
                    return None;
                }
                self.value
                    .chunks_exact(4)
                    .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                    .collect()
            }
            _ => None,
        }
    }

    fn normalized(&self) -> NormalizedAttribute {
        let value = match self.text() {
            // RFC 5280 §7.1 (RFC 4518 simplified): case-insensitive, leading and trailing
            // whitespace removed, internal runs of whitespace folded to one space.
            Some(text) => NormalizedValue::Text(
                text.split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .to_lowercase(),
            ),
            None => NormalizedValue::Raw {
                tag: self.tag,
                universal: self.universal,
                value: self.value.clone(),
            },
        };
        NormalizedAttribute {
            oid: self.oid.clone(),
            value,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum NormalizedValue {
    Text(String),
    Raw {
        tag: u32,
        universal: bool,
        value: Vec<u8>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct NormalizedAttribute {
    oid: String,
    value: NormalizedValue,
}

/// A distinguished name: its DER, its attributes per RDN, and a comparison form per RFC 5280
/// §7.1. Equality (`==`) compares the normalized form.
#[derive(Clone, Debug)]
pub struct Name {
    der: Vec<u8>,
    rdns: Vec<Vec<Attribute>>,
    normalized: Vec<Vec<NormalizedAttribute>>,
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        self.normalized == other.normalized
    }
}

impl Eq for Name {}

impl std::hash::Hash for Name {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.normalized.hash(state);
    }
}

impl Name {
    pub(super) fn from_rdns(der: Vec<u8>, rdns: Vec<Vec<Attribute>>) -> Self {
        let normalized = rdns
            .iter()
            .map(|rdn| {
                // Attributes of one RDN form a SET: their order carries no meaning.
                let mut set: Vec<_> = rdn.iter().map(Attribute::normalized).collect();
                set.sort();
                set
            })
            .collect();
        Self {
            der,
            rdns,
            normalized,
        }
    }

    /// Reads a name parsed by x509-parser.
    pub fn from_x509(name: &X509Name<'_>) -> Self {
        let rdns = name.iter_rdn().map(rdn_attributes).collect();
        Self::from_rdns(name.as_raw().to_vec(), rdns)
    }

    /// Parses a DER Name.
    pub fn from_der(der: &[u8]) -> Result<Self, Error> {
        let (rest, name) = X509Name::from_der(der).map_err(|e| Error::Malformed {
            what: "name".into(),
            detail: e.to_string(),
        })?;
        if !rest.is_empty() {
            return Err(Error::Malformed {
                what: "name".into(),
                detail: "trailing bytes".into(),
            });
        }
        Ok(Self::from_x509(&name))
    }

    /// This name with one more RDN appended (RFC 5280 §4.2.1.13: a distribution point's
    /// nameRelativeToCRLIssuer is appended to the CRL issuer's name).
    pub fn with_rdn_appended(&self, rdn: &[Attribute]) -> Self {
        let mut rdns = self.rdns.clone();
        rdns.push(rdn.to_vec());
        let der = encode_name(&rdns);
        Self::from_rdns(der, rdns)
    }

    /// The DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The RDNs in encoding order (most significant first), each a set of attributes.
    pub fn rdns(&self) -> &[Vec<Attribute>] {
        &self.rdns
    }

    /// True for the empty sequence.
    pub fn is_empty(&self) -> bool {
        self.rdns.is_empty()
    }

    /// All attributes of the given type, in order.
    pub fn attributes<'a>(&'a self, oid: &'a str) -> impl Iterator<Item = &'a Attribute> + 'a {
        self.rdns.iter().flatten().filter(move |a| a.oid == oid)
    }

    /// True when `self`'s normalized RDNs begin with all of `prefix`'s (the directoryName
    /// subtree test of RFC 5280 §4.2.1.10).
    pub fn starts_with(&self, prefix: &Self) -> bool {
        self.normalized.len() >= prefix.normalized.len()
            && self
                .normalized
                .iter()
                .zip(&prefix.normalized)
                .all(|(a, b)| a == b)
    }

    /// The RFC 4514 string form (least significant RDN first).
    pub fn to_rfc4514(&self) -> String {
        let mut out = String::new();
        for (i, rdn) in self.rdns.iter().rev().enumerate() {
            if i > 0 {
                out.push(',');
            }
            for (j, attr) in rdn.iter().enumerate() {
                if j > 0 {
                    out.push('+');
                }
                out.push_str(short_name(&attr.oid));
                out.push('=');
                match attr.text() {
                    Some(text) => escape_rfc4514(&text, &mut out),
                    None => {
                        out.push('#');
                        out.push_str(&hex::encode(encode_tlv(attr.tag as u8, &attr.value)));
                    }
                }
            }
        }
        out
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_rfc4514())
    }
}

pub(super) fn rdn_attributes(rdn: &RelativeDistinguishedName<'_>) -> Vec<Attribute> {
    rdn.iter().map(Attribute::from_x509).collect()
}

fn short_name(oid: &str) -> &str {
    match oid {
        OID_COMMON_NAME => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        OID_EMAIL_ADDRESS => "emailAddress",
        "2.5.4.5" => "serialNumber",
        other => other,
    }
}

fn escape_rfc4514(text: &str, out: &mut String) {
    let last = text.chars().count().saturating_sub(1);
    for (i, c) in text.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && matches!(c, '#' | ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
            out.push(c);
        } else if c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "\\{b:02x}");
            }
        } else {
            out.push(c);
        }
    }
}

fn encode_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len() - 1);
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend(&bytes[skip..]);
    }
}

fn encode_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    encode_len(content.len(), &mut out);
    out.extend(content);
    out
}

pub(super) fn encode_oid(dotted: &str) -> Vec<u8> {
    let arcs: Vec<u128> = dotted.split('.').filter_map(|s| s.parse().ok()).collect();
    let mut content = Vec::new();
    let mut push_arc = |mut v: u128| {
        let mut tmp = vec![(v & 0x7f) as u8];
        v >>= 7;
        while v > 0 {
            tmp.push(0x80 | (v & 0x7f) as u8);
            v >>= 7;
        }
        tmp.reverse();
        content.extend(tmp);
    };
    if arcs.len() >= 2 {
        push_arc(arcs[0] * 40 + arcs[1]);
        for a in &arcs[2..] {
            push_arc(*a);
        }
    }
    encode_tlv(0x06, &content)
}

/// Re-encodes a name (used only for names built from a relative distinguished name).
fn encode_name(rdns: &[Vec<Attribute>]) -> Vec<u8> {
    let mut seq = Vec::new();
    for rdn in rdns {
        let mut set = Vec::new();
        for attr in rdn {
            let mut atv = encode_oid(&attr.oid);
            // Tags of attribute values are small universal tags (below 31).
            atv.extend(encode_tlv(attr.tag as u8, &attr.value));
            set.extend(encode_tlv(0x30, &atv));
        }
        seq.extend(encode_tlv(0x31, &set));
    }
    encode_tlv(0x30, &seq)
}

/// A GeneralName (RFC 5280 §4.2.1.6), owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GeneralName {
    /// directoryName.
    Directory(Name),
    /// dNSName.
    Dns(String),
    /// ediPartyName (not processed).
    EdiParty,
    /// rfc822Name.
    Email(String),
    /// A name x509-parser could not decode (wrong string type, bad encoding).
    Invalid {
        /// The context tag.
        tag: u32,
    },
    /// iPAddress: 4 or 16 octets in a SAN; 8 or 32 (address and mask) in a name constraint.
    Ip(Vec<u8>),
    /// otherName (not processed).
    Other {
        /// The type-id.
        oid: String,
    },
    /// registeredID (not processed).
    RegisteredId(String),
    /// uniformResourceIdentifier.
    Uri(String),
    /// x400Address (not processed).
    X400,
}

impl GeneralName {
    pub(super) fn from_x509(name: &X509GeneralName<'_>) -> Self {
        match name {
            X509GeneralName::OtherName(oid, _) => Self::Other {
                oid: oid_string(oid),
            },
            X509GeneralName::RFC822Name(s) => Self::Email((*s).to_owned()),
            X509GeneralName::DNSName(s) => Self::Dns((*s).to_owned()),
            X509GeneralName::X400Address(_) => Self::X400,
            X509GeneralName::DirectoryName(n) => Self::Directory(Name::from_x509(n)),
            X509GeneralName::EDIPartyName(_) => Self::EdiParty,
            X509GeneralName::URI(s) => Self::Uri((*s).to_owned()),
            X509GeneralName::IPAddress(b) => Self::Ip(b.to_vec()),
            X509GeneralName::RegisteredID(oid) => Self::RegisteredId(oid_string(oid)),
            X509GeneralName::Invalid(tag, _) => Self::Invalid { tag: tag.0 },
        }
    }

    /// The form's name as RFC 5280 spells it (`dNSName`, `iPAddress`…).
    pub fn form(&self) -> &'static str {
        match self {
            Self::Directory(_) => "directoryName",
            Self::Dns(_) => "dNSName",
            Self::EdiParty => "ediPartyName",
            Self::Email(_) => "rfc822Name",
            Self::Invalid { .. } => "invalid",
            Self::Ip(_) => "iPAddress",
            Self::Other { .. } => "otherName",
            Self::RegisteredId(_) => "registeredID",
            Self::Uri(_) => "uniformResourceIdentifier",
            Self::X400 => "x400Address",
        }
    }
}

impl std::fmt::Display for GeneralName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Directory(n) => write!(f, "directoryName {n}"),
            Self::Dns(s) => write!(f, "dNSName {s}"),
            Self::Email(s) => write!(f, "rfc822Name {s}"),
            Self::Ip(b) => write!(f, "iPAddress {}", format_ip(b)),
            Self::Other { oid } => write!(f, "otherName {oid}"),
            Self::RegisteredId(oid) => write!(f, "registeredID {oid}"),
            Self::Uri(s) => write!(f, "URI {s}"),
            Self::Invalid { tag } => write!(f, "invalid GeneralName [{tag}]"),
            Self::EdiParty | Self::X400 => f.write_str(self.form()),
        }
    }
}

/// Formats an iPAddress value: an address, or an address/mask pair from a name constraint.
pub fn format_ip(bytes: &[u8]) -> String {
    match bytes.len() {
        4 => std::net::Ipv4Addr::from([bytes[0], bytes[1], bytes[2], bytes[3]]).to_string(),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(bytes);
            std::net::Ipv6Addr::from(a).to_string()
        }
        8 | 32 => {
            let half = bytes.len() / 2;
            format!(
                "{}/{}",
                format_ip(&bytes[..half]),
                format_ip(&bytes[half..])
            )
        }
        _ => format!("0x{}", hex::encode(bytes)),
    }
}
