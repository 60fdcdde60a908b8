//! An owned, parsed view of one X.509 certificate: the fields path validation reads.
//!
//! A certificate is parsed once with x509-parser and copied into owned values, so the rest of
//! the verifier never re-parses DER. Structural errors fail [`Cert::from_der`]; a violation of
//! a MUST of RFC 5280 §4 inside a parsed certificate (a malformed or duplicated extension, for
//! instance) is recorded in [`Cert::defects`] and rejects every path that uses the certificate.

use std::collections::HashSet;
use std::fmt::Write as _;

use sha2::{Digest, Sha256};
use x509_parser::der_parser::asn1_rs::{Any, Class, Oid, Tag};
use x509_parser::extensions::{GeneralName as X509GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer as _, X509Certificate};
use x509_parser::x509::{AttributeTypeAndValue, RelativeDistinguishedName, X509Name};

use crate::error::Error;
use crate::policy::PolicyCertInfo;
use crate::signature::{SignatureAlgorithm, SignatureError, Spki};
use crate::time::UnixTime;
use crate::verdict::CertRef;

/// Most certificates accepted in one PEM or DER bundle: far above any real chain, and it bounds
/// the work a hostile file can cause.
pub const BUNDLE_LEN_MAX: usize = 1024;

// Extension OIDs (RFC 5280 §4.2).
const OID_SUBJECT_KEY_ID: &str = "2.5.29.14";
const OID_KEY_USAGE: &str = "2.5.29.15";
const OID_SUBJECT_ALT_NAME: &str = "2.5.29.17";
const OID_BASIC_CONSTRAINTS: &str = "2.5.29.19";
const OID_NAME_CONSTRAINTS: &str = "2.5.29.30";
const OID_CRL_DISTRIBUTION_POINTS: &str = "2.5.29.31";
const OID_CERTIFICATE_POLICIES: &str = "2.5.29.32";
const OID_POLICY_MAPPINGS: &str = "2.5.29.33";
const OID_AUTHORITY_KEY_ID: &str = "2.5.29.35";
const OID_POLICY_CONSTRAINTS: &str = "2.5.29.36";
const OID_EXTENDED_KEY_USAGE: &str = "2.5.29.37";
const OID_INHIBIT_ANY_POLICY: &str = "2.5.29.54";

/// Extensions whose semantics this verifier processes; any other critical extension rejects
/// the certificate (RFC 5280 §4.2: "A certificate-using system MUST reject the certificate if
/// it encounters a critical extension it does not recognize").
const PROCESSED_EXTENSIONS: &[&str] = &[
    OID_SUBJECT_KEY_ID,
    OID_KEY_USAGE,
    OID_SUBJECT_ALT_NAME,
    OID_BASIC_CONSTRAINTS,
    OID_NAME_CONSTRAINTS,
    OID_CRL_DISTRIBUTION_POINTS,
    OID_CERTIFICATE_POLICIES,
    OID_POLICY_MAPPINGS,
    OID_AUTHORITY_KEY_ID,
    OID_POLICY_CONSTRAINTS,
    OID_EXTENDED_KEY_USAGE,
    OID_INHIBIT_ANY_POLICY,
];

/// anyExtendedKeyUsage (RFC 5280 §4.2.1.12).
pub const EKU_ANY: &str = "2.5.29.37.0";

/// commonName (X.520).
pub const OID_COMMON_NAME: &str = "2.5.4.3";
/// emailAddress (PKCS #9), which RFC 5280 §4.2.1.10 subjects to rfc822Name constraints.
pub const OID_EMAIL_ADDRESS: &str = "1.2.840.113549.1.9.1";

/// keyUsage bits (RFC 5280 §4.2.1.3), numbered as in the ASN.1 BIT STRING.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyUsage(pub u16);

impl KeyUsage {
    /// digitalSignature (bit 0).
    pub const DIGITAL_SIGNATURE: u16 = 1 << 0;
    /// keyCertSign (bit 5).
    pub const KEY_CERT_SIGN: u16 = 1 << 5;
    /// cRLSign (bit 6).
    pub const CRL_SIGN: u16 = 1 << 6;

    /// True when `bit` (one of the constants) is set.
    pub fn has(self, bit: u16) -> bool {
        self.0 & bit != 0
    }
}

/// basicConstraints (RFC 5280 §4.2.1.9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BasicConstraints {
    /// cA.
    pub ca: bool,
    /// pathLenConstraint.
    pub path_len: Option<u32>,
    /// Whether the extension was marked critical.
    pub critical: bool,
}

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
    fn from_rdns(der: Vec<u8>, rdns: Vec<Vec<Attribute>>) -> Self {
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

fn rdn_attributes(rdn: &RelativeDistinguishedName<'_>) -> Vec<Attribute> {
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

fn encode_oid(dotted: &str) -> Vec<u8> {
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
    fn from_x509(name: &X509GeneralName<'_>) -> Self {
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

/// nameConstraints (RFC 5280 §4.2.1.10).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameConstraints {
    /// permittedSubtrees bases; `None` when absent.
    pub permitted: Option<Vec<GeneralName>>,
    /// excludedSubtrees bases; `None` when absent.
    pub excluded: Option<Vec<GeneralName>>,
    /// Whether the extension was marked critical.
    pub critical: bool,
}

/// authorityKeyIdentifier (RFC 5280 §4.2.1.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorityKeyId {
    /// keyIdentifier.
    pub key_id: Option<Vec<u8>>,
    /// authorityCertIssuer.
    pub issuer: Option<Vec<GeneralName>>,
    /// authorityCertSerialNumber (content octets).
    pub serial: Option<Vec<u8>>,
}

/// The name part of a distribution point (RFC 5280 §4.2.1.13).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DistributionPointName {
    /// fullName.
    FullName(Vec<GeneralName>),
    /// nameRelativeToCRLIssuer: one RDN to append to the CRL issuer's name.
    RelativeToIssuer(Vec<Attribute>),
}

/// One cRLDistributionPoints entry (RFC 5280 §4.2.1.13).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistributionPoint {
    /// distributionPoint.
    pub name: Option<DistributionPointName>,
    /// reasons, as the ReasonFlags bits (bit 0 = unused, 1 = keyCompromise, ...).
    pub reasons: Option<u16>,
    /// cRLIssuer.
    pub crl_issuer: Option<Vec<GeneralName>>,
}

/// One parsed certificate.
#[derive(Clone, Debug)]
pub struct Cert {
    der: Vec<u8>,
    tbs: Vec<u8>,
    version: u32,
    serial: Vec<u8>,
    signature_algorithm: Result<SignatureAlgorithm, SignatureError>,
    signature: Vec<u8>,
    issuer: Name,
    subject: Name,
    issuer_display: String,
    subject_display: String,
    not_before: UnixTime,
    not_after: UnixTime,
    spki: Spki,
    extension_oids: Vec<(String, bool)>,
    basic_constraints: Option<BasicConstraints>,
    key_usage: Option<KeyUsage>,
    extended_key_usage: Option<Vec<String>>,
    subject_alt_names: Option<Vec<GeneralName>>,
    san_critical: bool,
    name_constraints: Option<NameConstraints>,
    policy_info: PolicyCertInfo,
    subject_key_id: Option<Vec<u8>>,
    authority_key_id: Option<AuthorityKeyId>,
    crl_distribution_points: Vec<DistributionPoint>,
    unrecognized_critical: Vec<String>,
    defects: Vec<String>,
    validity_encoding_defect: Option<String>,
    sha256: [u8; 32],
}

impl Cert {
    /// Parses one DER certificate. Trailing bytes after the certificate are an error.
    pub fn from_der(der: &[u8]) -> Result<Self, Error> {
        let malformed = |detail: String| Error::Malformed {
            what: "certificate".into(),
            detail,
        };
        let (rest, x) =
            x509_parser::parse_x509_certificate(der).map_err(|e| malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(malformed(format!("{} trailing bytes", rest.len())));
        }
        Self::from_x509(&x)
    }

    fn from_x509(x: &X509Certificate<'_>) -> Result<Self, Error> {
        let tbs = &x.tbs_certificate;
        let mut defects = Vec::new();
        let spki = Spki::from_x509(tbs.public_key()).map_err(|e| Error::Malformed {
            what: "certificate public key".into(),
            detail: e.to_string(),
        })?;
        // RFC 5280 §4.1.1.2: signatureAlgorithm MUST be the same as the TBS `signature` field.
        if !same_algorithm(&x.signature_algorithm, &tbs.signature) {
            defects.push(
                "signatureAlgorithm differs from the TBSCertificate signature field (RFC 5280 \
                 §4.1.1.2)"
                    .to_owned(),
            );
        }
        if x.signature_value.unused_bits != 0 {
            defects.push("signature BIT STRING has unused bits".to_owned());
        }
        let issuer = Name::from_x509(tbs.issuer());
        let subject = Name::from_x509(tbs.subject());
        let der = x.as_raw().to_vec();
        let mut cert = Self {
            sha256: Sha256::digest(&der).into(),
            tbs: tbs.as_ref().to_vec(),
            version: tbs.version.0,
            serial: tbs.raw_serial().to_vec(),
            signature_algorithm: SignatureAlgorithm::from_x509(&x.signature_algorithm),
            signature: x.signature_value.data.to_vec(),
            issuer_display: issuer.to_rfc4514(),
            subject_display: subject.to_rfc4514(),
            issuer,
            subject,
            not_before: UnixTime(tbs.validity.not_before.timestamp()),
            not_after: UnixTime(tbs.validity.not_after.timestamp()),
            spki,
            extension_oids: Vec::new(),
            basic_constraints: None,
            key_usage: None,
            extended_key_usage: None,
            subject_alt_names: None,
            san_critical: false,
            name_constraints: None,
            policy_info: PolicyCertInfo::default(),
            subject_key_id: None,
            authority_key_id: None,
            crl_distribution_points: Vec::new(),
            unrecognized_critical: Vec::new(),
            defects,
            validity_encoding_defect: validity_encoding_defect(&tbs.validity),
            der,
        };
        cert.read_extensions(x);
        cert.policy_info.self_issued = cert.issuer == cert.subject;
        Ok(cert)
    }

    fn read_extensions(&mut self, x: &X509Certificate<'_>) {
        let tbs = &x.tbs_certificate;
        let mut seen = HashSet::new();
        if !tbs.extensions().is_empty() && self.version != 2 {
            // RFC 5280 §4.1.2.9: extensions appear only in v3 certificates.
            self.defects.push(format!(
                "extensions in a version {} certificate (RFC 5280 §4.1.2.9)",
                self.version + 1
            ));
        }
        for ext in tbs.extensions() {
            let oid = oid_string(&ext.oid);
            if !seen.insert(oid.clone()) {
                // RFC 5280 §4.2: a certificate MUST NOT include more than one instance of a
                // particular extension.
                self.defects
                    .push(format!("duplicate extension {oid} (RFC 5280 §4.2)"));
            }
            self.extension_oids.push((oid.clone(), ext.critical));
            if ext.critical && !PROCESSED_EXTENSIONS.contains(&oid.as_str()) {
                self.unrecognized_critical.push(oid.clone());
            }
            match ext.parsed_extension() {
                ParsedExtension::ParseError { error } => {
                    self.defects
                        .push(format!("extension {oid} is malformed: {error}"));
                }
                ParsedExtension::BasicConstraints(bc) => {
                    if bc.path_len_constraint.is_some() && !bc.ca {
                        // RFC 5280 §4.2.1.9: "CAs MUST NOT include the pathLenConstraint field
                        // unless the cA boolean is asserted".
                        self.defects
                            .push("pathLenConstraint without cA (RFC 5280 §4.2.1.9)".to_owned());
                    }
                    self.basic_constraints = Some(BasicConstraints {
                        ca: bc.ca,
                        path_len: bc.path_len_constraint,
                        critical: ext.critical,
                    });
                }
                ParsedExtension::KeyUsage(ku) => {
                    if ku.flags == 0 {
                        // RFC 5280 §4.2.1.3: "at least one of the bits MUST be set to 1".
                        self.defects
                            .push("keyUsage with no bit set (RFC 5280 §4.2.1.3)".into());
                    }
                    self.key_usage = Some(KeyUsage(ku.flags));
                }
                ParsedExtension::ExtendedKeyUsage(eku) => {
                    let mut oids = Vec::new();
                    let known = [
                        (eku.any, EKU_ANY),
                        (eku.server_auth, "1.3.6.1.5.5.7.3.1"),
                        (eku.client_auth, "1.3.6.1.5.5.7.3.2"),
                        (eku.code_signing, "1.3.6.1.5.5.7.3.3"),
                        (eku.email_protection, "1.3.6.1.5.5.7.3.4"),
                        (eku.time_stamping, "1.3.6.1.5.5.7.3.8"),
                        (eku.ocsp_signing, "1.3.6.1.5.5.7.3.9"),
                    ];
                    for (set, o) in known {
                        if set {
                            oids.push(o.to_owned());
                        }
                    }
                    oids.extend(eku.other.iter().map(oid_string));
                    if oids.is_empty() {
                        self.defects
                            .push("empty extendedKeyUsage (RFC 5280 §4.2.1.12)".into());
                    }
                    self.extended_key_usage = Some(oids);
                }
                ParsedExtension::SubjectAlternativeName(san) => {
                    let names: Vec<_> = san
                        .general_names
                        .iter()
                        .map(GeneralName::from_x509)
                        .collect();
                    if names.is_empty() {
                        self.defects
                            .push("empty subjectAltName (RFC 5280 §4.2.1.6)".into());
                    }
                    if let Some(GeneralName::Invalid { tag }) = names
                        .iter()
                        .find(|n| matches!(n, GeneralName::Invalid { .. }))
                    {
                        self.defects
                            .push(format!("subjectAltName entry [{tag}] is malformed"));
                    }
                    self.subject_alt_names = Some(names);
                    self.san_critical = ext.critical;
                }
                ParsedExtension::NameConstraints(nc) => {
                    let read =
                        |subtrees: &Option<Vec<x509_parser::extensions::GeneralSubtree<'_>>>| {
                            subtrees.as_ref().map(|v| {
                                v.iter().map(|s| GeneralName::from_x509(&s.base)).collect()
                            })
                        };
                    let constraints = NameConstraints {
                        permitted: read(&nc.permitted_subtrees),
                        excluded: read(&nc.excluded_subtrees),
                        critical: ext.critical,
                    };
                    if constraints.permitted.is_none() && constraints.excluded.is_none() {
                        // RFC 5280 §4.2.1.10: "either the permittedSubtrees field or the
                        // excludedSubtrees MUST be present".
                        self.defects
                            .push("empty nameConstraints (RFC 5280 §4.2.1.10)".into());
                    }
                    self.name_constraints = Some(constraints);
                }
                ParsedExtension::CertificatePolicies(policies) => {
                    let oids: Vec<String> =
                        policies.iter().map(|p| oid_string(&p.policy_id)).collect();
                    let unique: HashSet<_> = oids.iter().collect();
                    if unique.len() != oids.len() {
                        // RFC 5280 §4.2.1.4: a policy OID MUST NOT appear more than once.
                        self.defects
                            .push("duplicate policy in certificatePolicies".into());
                    }
                    self.policy_info.policies = Some(oids);
                }
                ParsedExtension::PolicyMappings(pm) => {
                    self.policy_info.mappings = pm
                        .mappings
                        .iter()
                        .map(|m| {
                            (
                                oid_string(&m.issuer_domain_policy),
                                oid_string(&m.subject_domain_policy),
                            )
                        })
                        .collect();
                }
                ParsedExtension::PolicyConstraints(pc) => {
                    if pc.require_explicit_policy.is_none() && pc.inhibit_policy_mapping.is_none() {
                        // RFC 5280 §4.2.1.11: the sequence MUST NOT be empty.
                        self.defects
                            .push("empty policyConstraints (RFC 5280 §4.2.1.11)".into());
                    }
                    self.policy_info.require_explicit_policy =
                        pc.require_explicit_policy.map(u64::from);
                    self.policy_info.inhibit_policy_mapping =
                        pc.inhibit_policy_mapping.map(u64::from);
                }
                ParsedExtension::InhibitAnyPolicy(iap) => {
                    self.policy_info.inhibit_any_policy = Some(u64::from(iap.skip_certs));
                }
                ParsedExtension::SubjectKeyIdentifier(ki) => {
                    self.subject_key_id = Some(ki.0.to_vec());
                }
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    self.authority_key_id = Some(AuthorityKeyId {
                        key_id: aki.key_identifier.as_ref().map(|k| k.0.to_vec()),
                        issuer: aki
                            .authority_cert_issuer
                            .as_ref()
                            .map(|v| v.iter().map(GeneralName::from_x509).collect()),
                        serial: aki.authority_cert_serial.map(<[u8]>::to_vec),
                    });
                }
                ParsedExtension::CRLDistributionPoints(dps) => {
                    self.crl_distribution_points = dps
                        .points
                        .iter()
                        .map(|p| DistributionPoint {
                            name: p.distribution_point.as_ref().map(|n| match n {
                                x509_parser::extensions::DistributionPointName::FullName(v) => {
                                    DistributionPointName::FullName(
                                        v.iter().map(GeneralName::from_x509).collect(),
                                    )
                                }
                                x509_parser::extensions::DistributionPointName::NameRelativeToCRLIssuer(
                                    rdn,
                                ) => DistributionPointName::RelativeToIssuer(rdn_attributes(rdn)),
                            }),
                            reasons: p.reasons.as_ref().map(|r| r.flags),
                            crl_issuer: p
                                .crl_issuer
                                .as_ref()
                                .map(|v| v.iter().map(GeneralName::from_x509).collect()),
                        })
                        .collect();
                }
                _ => {}
            }
        }
    }

    /// Parses a bundle: one DER certificate, or any number of PEM `CERTIFICATE` blocks (other
    /// PEM blocks are skipped). Errors say which certificate failed and why.
    pub fn parse_pem_or_der_bundle(bytes: &[u8]) -> Result<Vec<Self>, Error> {
        const BEGIN: &[u8] = b"-----BEGIN ";
        if !contains(bytes, BEGIN) {
            return Self::parse_der_sequence(bytes);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| Error::Malformed {
            what: "PEM bundle".into(),
            detail: "not UTF-8 text".into(),
        })?;
        let mut certs = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("-----BEGIN ") {
            let after = &rest[start + 11..];
            let label_end = after.find("-----").ok_or_else(|| Error::Malformed {
                what: format!("PEM block {}", certs.len()),
                detail: "unterminated BEGIN line".into(),
            })?;
            let label = &after[..label_end];
            let body_start = &after[label_end + 5..];
            let end_marker = format!("-----END {label}-----");
            let body_end = body_start
                .find(&end_marker)
                .ok_or_else(|| Error::Malformed {
                    what: format!("PEM block {}", certs.len()),
                    detail: format!("no {end_marker} line"),
                })?;
            let body = &body_start[..body_end];
            rest = &body_start[body_end + end_marker.len()..];
            if label != "CERTIFICATE" {
                continue;
            }
            if certs.len() >= BUNDLE_LEN_MAX {
                return Err(Error::Malformed {
                    what: "PEM bundle".into(),
                    detail: format!("more than {BUNDLE_LEN_MAX} certificates"),
                });
            }
            let index = certs.len();
            let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            use base64::Engine as _;
            let der = base64::engine::general_purpose::STANDARD
                .decode(compact.as_bytes())
                .map_err(|e| Error::Malformed {
                    what: format!("certificate {index} of the bundle"),
                    detail: format!("bad base64: {e}"),
                })?;
            certs.push(Self::from_der(&der).map_err(|e| bundle_error(index, &e))?);
        }
        if certs.is_empty() {
            return Err(Error::Malformed {
                what: "PEM bundle".into(),
                detail: "no CERTIFICATE block".into(),
            });
        }
        Ok(certs)
    }

    /// One or more DER certificates, back to back.
    fn parse_der_sequence(mut bytes: &[u8]) -> Result<Vec<Self>, Error> {
        let mut certs = Vec::new();
        while !bytes.is_empty() {
            let index = certs.len();
            if index >= BUNDLE_LEN_MAX {
                return Err(Error::Malformed {
                    what: "DER bundle".into(),
                    detail: format!("more than {BUNDLE_LEN_MAX} certificates"),
                });
            }
            let (rest, x) = x509_parser::parse_x509_certificate(bytes).map_err(|e| {
                bundle_error(
                    index,
                    &Error::Malformed {
                        what: "certificate".into(),
                        detail: e.to_string(),
                    },
                )
            })?;
            certs.push(Self::from_x509(&x).map_err(|e| bundle_error(index, &e))?);
            bytes = rest;
        }
        if certs.is_empty() {
            return Err(Error::Malformed {
                what: "bundle".into(),
                detail: "empty input".into(),
            });
        }
        Ok(certs)
    }

    /// How an explanation names this certificate at `position` on a path (0 = leaf).
    pub fn cert_ref(&self, position: usize) -> CertRef {
        CertRef {
            position,
            subject: self.subject_display.clone(),
            serial: self.serial_hex(),
            sha256: hex::encode(self.sha256),
        }
    }

    /// The whole certificate DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The TBSCertificate DER: the bytes the issuer signed.
    pub fn tbs(&self) -> &[u8] {
        &self.tbs
    }

    /// The X.509 version as encoded (0 = v1, 2 = v3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The signature algorithm, or why it could not be read.
    pub fn signature_algorithm(&self) -> Result<&SignatureAlgorithm, SignatureError> {
        self.signature_algorithm.as_ref().map_err(Clone::clone)
    }

    /// The signature BIT STRING contents.
    pub fn signature_value(&self) -> &[u8] {
        &self.signature
    }

    /// The serial number's content octets as encoded (two's complement, may start with 0x00).
    pub fn serial(&self) -> &[u8] {
        &self.serial
    }

    /// The serial number as lowercase hex without leading zero bytes.
    pub fn serial_hex(&self) -> String {
        let first = self
            .serial
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(self.serial.len());
        let hex = hex::encode(&self.serial[first..]);
        if hex.is_empty() { "00".into() } else { hex }
    }

    /// The issuer name (compare with `==`, which follows RFC 5280 §7.1).
    pub fn issuer(&self) -> &Name {
        &self.issuer
    }

    /// The subject name (compare with `==`, which follows RFC 5280 §7.1).
    pub fn subject(&self) -> &Name {
        &self.subject
    }

    /// The subject in RFC 4514 form.
    pub fn subject_display(&self) -> &str {
        &self.subject_display
    }

    /// The issuer in RFC 4514 form.
    pub fn issuer_display(&self) -> &str {
        &self.issuer_display
    }

    /// True when subject and issuer names match (RFC 5280 §6.1: a self-issued certificate).
    pub fn is_self_issued(&self) -> bool {
        self.policy_info.self_issued
    }

    /// notBefore.
    pub fn not_before(&self) -> UnixTime {
        self.not_before
    }

    /// notAfter.
    pub fn not_after(&self) -> UnixTime {
        self.not_after
    }

    /// The subject public key.
    pub fn spki(&self) -> &Spki {
        &self.spki
    }

    /// Every extension's OID and criticality, in order.
    pub fn extensions(&self) -> &[(String, bool)] {
        &self.extension_oids
    }

    /// basicConstraints, if present.
    pub fn basic_constraints(&self) -> Option<BasicConstraints> {
        self.basic_constraints
    }

    /// True when basicConstraints asserts cA.
    pub fn is_ca(&self) -> bool {
        self.basic_constraints.is_some_and(|bc| bc.ca)
    }

    /// keyUsage, if present.
    pub fn key_usage(&self) -> Option<KeyUsage> {
        self.key_usage
    }

    /// True when the key may sign CRLs: keyUsage is absent or asserts cRLSign (RFC 5280
    /// §6.3.3(f)).
    pub fn may_sign_crls(&self) -> bool {
        self.key_usage.is_none_or(|ku| ku.has(KeyUsage::CRL_SIGN))
    }

    /// extendedKeyUsage OIDs, if the extension is present.
    pub fn extended_key_usage(&self) -> Option<&[String]> {
        self.extended_key_usage.as_deref()
    }

    /// subjectAltName entries, if the extension is present.
    pub fn subject_alt_names(&self) -> Option<&[GeneralName]> {
        self.subject_alt_names.as_deref()
    }

    /// Whether subjectAltName was marked critical.
    pub fn subject_alt_names_critical(&self) -> bool {
        self.san_critical
    }

    /// nameConstraints, if present.
    pub fn name_constraints(&self) -> Option<&NameConstraints> {
        self.name_constraints.as_ref()
    }

    /// The policy-related content for `crate::policy::process`.
    pub fn policy_info(&self) -> PolicyCertInfo {
        self.policy_info.clone()
    }

    /// True when any of the policy extensions is present.
    pub fn has_policy_extensions(&self) -> bool {
        let p = &self.policy_info;
        p.policies.is_some()
            || !p.mappings.is_empty()
            || p.require_explicit_policy.is_some()
            || p.inhibit_policy_mapping.is_some()
            || p.inhibit_any_policy.is_some()
    }

    /// subjectKeyIdentifier, if present.
    pub fn subject_key_id(&self) -> Option<&[u8]> {
        self.subject_key_id.as_deref()
    }

    /// authorityKeyIdentifier, if present.
    pub fn authority_key_id(&self) -> Option<&AuthorityKeyId> {
        self.authority_key_id.as_ref()
    }

    /// cRLDistributionPoints entries (empty when the extension is absent).
    pub fn crl_distribution_points(&self) -> &[DistributionPoint] {
        &self.crl_distribution_points
    }

    /// Critical extensions this verifier does not process.
    pub fn unrecognized_critical_extensions(&self) -> &[String] {
        &self.unrecognized_critical
    }

    /// Violations of RFC 5280 MUSTs found while parsing; any one rejects paths through this
    /// certificate.
    pub fn defects(&self) -> &[String] {
        &self.defects
    }

    /// A validity date encoded with the wrong time type for its year (RFC 5280 §4.1.2.5), a
    /// profile violation that the web-PKI profile rejects; the RFC 5280 profile reads such
    /// dates, as PKITS expects.
    pub fn validity_encoding_defect(&self) -> Option<&str> {
        self.validity_encoding_defect.as_deref()
    }

    /// SHA-256 of the DER.
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }
}

/// Year from which RFC 5280 §4.1.2.5 requires GeneralizedTime instead of UTCTime.
const GENERALIZED_TIME_FROM_YEAR: i32 = 2050;

/// RFC 5280 §4.1.2.5: validity dates through 2049 MUST be UTCTime, from 2050 GeneralizedTime.
fn validity_encoding_defect(validity: &x509_parser::certificate::Validity) -> Option<String> {
    [
        ("notBefore", &validity.not_before),
        ("notAfter", &validity.not_after),
    ]
    .into_iter()
    .find_map(|(field, t)| {
        let year = time::OffsetDateTime::from_unix_timestamp(t.timestamp())
            .map_or(GENERALIZED_TIME_FROM_YEAR, |d| d.year());
        let want_utc = year < GENERALIZED_TIME_FROM_YEAR;
        (want_utc != t.is_utctime()).then(|| {
            format!(
                "{field} in {year} is encoded as {} (RFC 5280 §4.1.2.5)",
                if t.is_utctime() {
                    "UTCTime"
                } else {
                    "GeneralizedTime"
                }
            )
        })
    })
}

fn same_algorithm(
    a: &x509_parser::x509::AlgorithmIdentifier<'_>,
    b: &x509_parser::x509::AlgorithmIdentifier<'_>,
) -> bool {
    let params = |p: Option<&Any<'_>>| p.map(|a| (a.tag(), a.data.to_vec()));
    a.algorithm == b.algorithm && params(a.parameters.as_ref()) == params(b.parameters.as_ref())
}

/// Dotted-decimal text of an OID. Arcs that fit in 64 bits (all but UUID arcs) are formatted
/// directly, which is far cheaper than the big-integer path `to_id_string` takes for every arc.
pub fn oid_string(oid: &Oid<'_>) -> String {
    match oid.iter() {
        Some(arcs) => {
            let mut out = String::with_capacity(oid.as_bytes().len() * 3);
            for (i, arc) in arcs.enumerate() {
                if i > 0 {
                    out.push('.');
                }
                let _ = write!(out, "{arc}");
            }
            out
        }
        None => oid.to_id_string(),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn bundle_error(index: usize, err: &Error) -> Error {
    Error::Malformed {
        what: format!("certificate {index} of the bundle"),
        detail: err.to_string(),
    }
}

#[cfg(test)]
mod tests;
