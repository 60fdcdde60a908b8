//! Reading CRLs (RFC 5280 §5) and the distribution-point extensions of certificates and CRLs
//! into owned values. Anything not understood is recorded as a defect that makes the CRL
//! unusable, never ignored.

use std::collections::HashSet;

use x509_parser::der_parser::asn1_rs::{Any, Class, FromDer, Tag};
use x509_parser::extensions::{GeneralName as X509GeneralName, ParsedExtension};
use x509_parser::prelude::X509Extension;
use x509_parser::revocation_list::CertificateRevocationList;
use x509_parser::x509::AttributeTypeAndValue;

use super::{CrlError, canonical_integer};
use crate::cert::{Attribute, Cert, DistributionPoint, DistributionPointName, GeneralName, Name};
use crate::signature::{SignatureAlgorithm, SignatureError};
use crate::time::UnixTime;

// CRL extensions (RFC 5280 §5.2) and CRL entry extensions (§5.3).
const OID_AUTHORITY_KEY_ID: &str = "2.5.29.35";
const OID_ISSUER_ALT_NAME: &str = "2.5.29.18";
pub(super) const OID_CRL_NUMBER: &str = "2.5.29.20";
pub(super) const OID_DELTA_CRL_INDICATOR: &str = "2.5.29.27";
pub(super) const OID_ISSUING_DISTRIBUTION_POINT: &str = "2.5.29.28";
const OID_FRESHEST_CRL: &str = "2.5.29.46";
const OID_AUTHORITY_INFO_ACCESS: &str = "1.3.6.1.5.5.7.1.1";
pub(super) const OID_REASON_CODE: &str = "2.5.29.21";
const OID_HOLD_INSTRUCTION_CODE: &str = "2.5.29.23";
const OID_INVALIDITY_DATE: &str = "2.5.29.24";
pub(super) const OID_CERTIFICATE_ISSUER: &str = "2.5.29.29";
const OID_CRL_DISTRIBUTION_POINTS: &str = "2.5.29.31";

/// CRL extensions whose content this module processes or may safely ignore; any other critical
/// one makes the CRL unusable (RFC 5280 §5.2).
const CRL_EXTENSIONS_UNDERSTOOD: &[&str] = &[
    OID_AUTHORITY_KEY_ID,
    OID_ISSUER_ALT_NAME,
    OID_CRL_NUMBER,
    OID_DELTA_CRL_INDICATOR,
    OID_ISSUING_DISTRIBUTION_POINT,
    OID_FRESHEST_CRL,
    OID_AUTHORITY_INFO_ACCESS,
];

/// CRL entry extensions this module processes or may safely ignore; any other critical one
/// makes the whole CRL unusable (RFC 5280 §5.3).
const ENTRY_EXTENSIONS_UNDERSTOOD: &[&str] = &[
    OID_REASON_CODE,
    OID_HOLD_INSTRUCTION_CODE,
    OID_INVALIDITY_DATE,
    OID_CERTIFICATE_ISSUER,
];

/// The issuing distribution point extension (RFC 5280 §5.2.5), owned.
#[derive(Clone, Debug)]
pub(super) struct IssuingDistributionPoint {
    pub(super) name: Option<DistributionPointName>,
    pub(super) only_contains_user_certs: bool,
    pub(super) only_contains_ca_certs: bool,
    pub(super) only_some_reasons: Option<u16>,
    pub(super) indirect: bool,
    pub(super) only_contains_attribute_certs: bool,
}

/// One revoked certificate.
#[derive(Clone, Debug)]
pub(super) struct Entry {
    /// The serial number's content octets, as in the certificate.
    pub(super) serial: Vec<u8>,
    /// CRLReason.
    pub(super) reason: Option<u8>,
    /// The certificate issuer in an indirect CRL; `None` means the CRL issuer.
    pub(super) issuer: Option<Vec<GeneralName>>,
}

/// One CRL, parsed once into owned values.
#[derive(Clone, Debug)]
pub(super) struct ParsedCrl {
    /// Position in the set, for the signature cache and explanations.
    pub(super) index: usize,
    pub(super) tbs: Vec<u8>,
    pub(super) signature_algorithm: Result<SignatureAlgorithm, SignatureError>,
    pub(super) signature: Vec<u8>,
    pub(super) issuer: Name,
    pub(super) this_update: UnixTime,
    pub(super) next_update: Option<UnixTime>,
    /// cRLNumber content octets.
    pub(super) crl_number: Option<Vec<u8>>,
    /// BaseCRLNumber of a delta CRL.
    pub(super) delta_base: Option<Vec<u8>>,
    pub(super) idp: Option<IssuingDistributionPoint>,
    /// The IDP extension value, compared byte for byte between a delta and its base.
    pub(super) idp_der: Option<Vec<u8>>,
    pub(super) entries: Vec<Entry>,
    /// Why the CRL may not be used at all.
    pub(super) defect: Option<String>,
}

impl ParsedCrl {
    pub(super) fn from_der(index: usize, der: &[u8]) -> Result<Self, CrlError> {
        let malformed = |detail: String| CrlError::Malformed { index, detail };
        let (rest, crl) =
            CertificateRevocationList::from_der(der).map_err(|e| malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(malformed(format!("{} trailing bytes", rest.len())));
        }
        let tbs = &crl.tbs_cert_list;
        let mut parsed = Self {
            index,
            tbs: tbs.as_ref().to_vec(),
            signature_algorithm: SignatureAlgorithm::from_x509(&crl.signature_algorithm),
            signature: crl.signature_value.data.to_vec(),
            issuer: Name::from_x509(&tbs.issuer),
            this_update: UnixTime(tbs.this_update.timestamp()),
            next_update: tbs.next_update.map(|t| UnixTime(t.timestamp())),
            crl_number: None,
            delta_base: None,
            idp: None,
            idp_der: None,
            entries: Vec::new(),
            defect: None,
        };
        let mut defects = Vec::new();
        // RFC 5280 §5.1.2.1: a CRL with extensions is version 2, and this module requires
        // the cRLNumber extension, so every usable CRL is version 2.
        if tbs.version.map(|v| v.0) != Some(1) {
            defects.push("not a version 2 CRL (RFC 5280 §5.1.2.1)".to_owned());
        }
        // RFC 5280 §5.1.1.2: the outer algorithm must equal the TBSCertList signature field.
        if crl.signature_algorithm.algorithm != tbs.signature.algorithm
            || crl.signature_algorithm.parameters.as_ref().map(|p| p.data)
                != tbs.signature.parameters.as_ref().map(|p| p.data)
        {
            defects.push("signatureAlgorithm differs from the TBSCertList signature".to_owned());
        }
        parsed.read_extensions(tbs.extensions(), &mut defects);
        if parsed.crl_number.is_none() {
            defects.push("no cRLNumber extension (RFC 5280 §5.2.3)".to_owned());
        }
        let indirect = parsed.idp.as_ref().is_some_and(|idp| idp.indirect);
        let mut current_issuer: Option<Vec<GeneralName>> = None;
        // Serials seen per run of entries that share a certificate issuer: a serial listed
        // twice for one issuer makes the CRL ambiguous (CABF servercert issue 589), so the
        // CRL is not used.
        let mut issuer_run = 0usize;
        let mut seen_serials: HashSet<(usize, Vec<u8>)> = HashSet::new();
        for revoked in &tbs.revoked_certificates {
            let mut reason = None;
            let mut seen = Vec::new();
            for ext in revoked.extensions() {
                let oid = ext.oid.to_id_string();
                if seen.contains(&oid) {
                    defects.push(format!("duplicate CRL entry extension {oid}"));
                }
                seen.push(oid.clone());
                match ext.parsed_extension() {
                    ParsedExtension::ParseError { error } => {
                        defects.push(format!("CRL entry extension {oid} is malformed: {error}"));
                    }
                    ParsedExtension::ReasonCode(code) => reason = Some(code.0),
                    _ => {}
                }
                if oid == OID_CERTIFICATE_ISSUER {
                    if !indirect {
                        // §5.3.3: only indirect CRLs name other certificate issuers.
                        defects
                            .push("certificateIssuer entry in a CRL that is not indirect".into());
                    }
                    match general_names(ext.value) {
                        Some(names) => {
                            current_issuer = Some(names);
                            issuer_run += 1;
                        }
                        None => defects.push("malformed certificateIssuer entry extension".into()),
                    }
                } else if ext.critical && !ENTRY_EXTENSIONS_UNDERSTOOD.contains(&oid.as_str()) {
                    defects.push(format!("unrecognized critical CRL entry extension {oid}"));
                }
            }
            let serial = canonical_integer(revoked.raw_serial()).to_vec();
            if !seen_serials.insert((issuer_run, serial.clone())) {
                defects.push(format!("serial {} is listed twice", hex::encode(&serial)));
            }
            parsed.entries.push(Entry {
                serial,
                reason,
                issuer: current_issuer.clone(),
            });
        }
        // One message per kind of defect, however many entries share it.
        defects.sort();
        defects.dedup();
        parsed.defect = (!defects.is_empty()).then(|| defects.join("; "));
        Ok(parsed)
    }

    fn read_extensions(&mut self, extensions: &[X509Extension<'_>], defects: &mut Vec<String>) {
        let mut seen = Vec::new();
        for ext in extensions {
            let oid = ext.oid.to_id_string();
            if seen.contains(&oid) {
                defects.push(format!("duplicate CRL extension {oid} (RFC 5280 §5.2)"));
            }
            seen.push(oid.clone());
            if let ParsedExtension::ParseError { error } = ext.parsed_extension() {
                defects.push(format!("CRL extension {oid} is malformed: {error}"));
                continue;
            }
            match oid.as_str() {
                OID_CRL_NUMBER => {
                    if ext.critical {
                        defects.push("cRLNumber is marked critical (RFC 5280 §5.2.3)".to_owned());
                    }
                    match unsigned_integer(ext.value) {
                        Some(n) => self.crl_number = Some(n),
                        None => defects.push("malformed cRLNumber".to_owned()),
                    }
                }
                OID_DELTA_CRL_INDICATOR => match unsigned_integer(ext.value) {
                    Some(n) => self.delta_base = Some(n),
                    None => defects.push("malformed deltaCRLIndicator".to_owned()),
                },
                OID_ISSUING_DISTRIBUTION_POINT => match issuing_distribution_point(ext.value) {
                    Ok(idp) => {
                        self.idp = Some(idp);
                        self.idp_der = Some(ext.value.to_vec());
                    }
                    Err(why) => defects.push(format!("malformed issuingDistributionPoint: {why}")),
                },
                _ if ext.critical && !CRL_EXTENSIONS_UNDERSTOOD.contains(&oid.as_str()) => {
                    defects.push(format!("unrecognized critical CRL extension {oid}"));
                }
                _ => {}
            }
        }
    }

    pub(super) fn describe(&self) -> String {
        let kind = if self.delta_base.is_some() {
            "delta CRL"
        } else {
            "CRL"
        };
        match &self.crl_number {
            Some(n) => format!("{kind} #{} of {}", hex::encode(n), self.issuer),
            None => format!("{kind} of {}", self.issuer),
        }
    }
}

/// Content octets of a non-negative DER INTEGER.
fn unsigned_integer(der: &[u8]) -> Option<Vec<u8>> {
    let (rest, any) = Any::from_der(der).ok()?;
    if !rest.is_empty() || any.tag() != Tag::Integer || any.class() != Class::Universal {
        return None;
    }
    let data = any.data;
    if data.is_empty() || data[0] & 0x80 != 0 {
        return None;
    }
    Some(data.to_vec())
}

/// GeneralNames (a SEQUENCE OF GeneralName), as in the certificateIssuer entry extension.
fn general_names(der: &[u8]) -> Option<Vec<GeneralName>> {
    let (seq, rest) = element(der).ok()?;
    if !rest.is_empty() || expect(&seq, Class::Universal, Tag::Sequence.0, "GeneralNames").is_err()
    {
        return None;
    }
    general_names_content(seq.data).ok()
}

/// The certificate's cRLDistributionPoints (RFC 5280 §4.2.1.13), read from its DER here
/// rather than from the certificate view: x509-parser 0.18 silently drops a
/// nameRelativeToCRLIssuer (it parses the implicitly tagged SET as if it carried its own SET
/// header), and a dropped name would make distribution point matching guess.
pub(super) fn cert_distribution_points(cert: &Cert) -> Result<Vec<DistributionPoint>, String> {
    let (_, x509) = x509_parser::parse_x509_certificate(cert.der()).map_err(|e| e.to_string())?;
    let Some(ext) = x509
        .tbs_certificate
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == OID_CRL_DISTRIBUTION_POINTS)
    else {
        return Ok(Vec::new());
    };
    let (seq, rest) = element(ext.value)?;
    expect(
        &seq,
        Class::Universal,
        Tag::Sequence.0,
        "DistributionPoints",
    )?;
    if !rest.is_empty() {
        return Err("trailing bytes after DistributionPoints".into());
    }
    let mut points = Vec::new();
    let mut input = seq.data;
    while !input.is_empty() {
        let (point, rest) = element(input)?;
        expect(
            &point,
            Class::Universal,
            Tag::Sequence.0,
            "DistributionPoint",
        )?;
        points.push(distribution_point(point.data)?);
        input = rest;
    }
    if points.is_empty() {
        return Err("empty cRLDistributionPoints".into());
    }
    Ok(points)
}

/// The fields of one DistributionPoint SEQUENCE.
fn distribution_point(mut input: &[u8]) -> Result<DistributionPoint, String> {
    let mut point = DistributionPoint {
        name: None,
        reasons: None,
        crl_issuer: None,
    };
    let mut last_tag = None;
    while !input.is_empty() {
        let (field, rest) = element(input)?;
        let tag = context_tag(&field)?;
        if last_tag.is_some_and(|last| tag <= last) {
            return Err("DistributionPoint fields out of order".into());
        }
        last_tag = Some(tag);
        match tag {
            0 => point.name = Some(distribution_point_name(field.data)?),
            1 => point.reasons = Some(reason_flags(field.data)?),
            2 => point.crl_issuer = Some(general_names_content(field.data)?),
            _ => return Err(format!("unexpected DistributionPoint field [{tag}]")),
        }
        input = rest;
    }
    if point.name.is_none() && point.crl_issuer.is_none() {
        // RFC 5280 §4.2.1.13: a DistributionPoint MUST NOT consist of only the reasons field.
        return Err("DistributionPoint without name or cRLIssuer".into());
    }
    Ok(point)
}

/// The issuingDistributionPoint extension value (RFC 5280 §5.2.5).
pub(super) fn issuing_distribution_point(der: &[u8]) -> Result<IssuingDistributionPoint, String> {
    let (seq, rest) = element(der)?;
    expect(
        &seq,
        Class::Universal,
        Tag::Sequence.0,
        "IssuingDistributionPoint",
    )?;
    if !rest.is_empty() {
        return Err("trailing bytes".into());
    }
    let mut idp = IssuingDistributionPoint {
        name: None,
        only_contains_user_certs: false,
        only_contains_ca_certs: false,
        only_some_reasons: None,
        indirect: false,
        only_contains_attribute_certs: false,
    };
    let mut input = seq.data;
    let mut last_tag = None;
    while !input.is_empty() {
        let (field, rest) = element(input)?;
        let tag = context_tag(&field)?;
        if last_tag.is_some_and(|last| tag <= last) {
            return Err("fields out of order".into());
        }
        last_tag = Some(tag);
        match tag {
            0 => idp.name = Some(distribution_point_name(field.data)?),
            1 => idp.only_contains_user_certs = boolean(field.data)?,
            2 => idp.only_contains_ca_certs = boolean(field.data)?,
            3 => idp.only_some_reasons = Some(reason_flags(field.data)?),
            4 => idp.indirect = boolean(field.data)?,
            5 => idp.only_contains_attribute_certs = boolean(field.data)?,
            _ => return Err(format!("unexpected field [{tag}]")),
        }
        input = rest;
    }
    let scopes = [
        idp.only_contains_user_certs,
        idp.only_contains_ca_certs,
        idp.only_contains_attribute_certs,
    ];
    if scopes.iter().filter(|s| **s).count() > 1 {
        // RFC 5280 §5.2.5: at most one of the three may be TRUE.
        return Err("more than one onlyContains flag".into());
    }
    Ok(idp)
}

/// The content of the explicit [0] that holds a DistributionPointName CHOICE.
pub(super) fn distribution_point_name(content: &[u8]) -> Result<DistributionPointName, String> {
    let (choice, rest) = element(content)?;
    if !rest.is_empty() {
        return Err("trailing bytes after DistributionPointName".into());
    }
    match context_tag(&choice)? {
        0 => Ok(DistributionPointName::FullName(general_names_content(
            choice.data,
        )?)),
        1 => {
            // nameRelativeToCRLIssuer [1] IMPLICIT RelativeDistinguishedName: the content is
            // the SET's content, one AttributeTypeAndValue after another.
            let mut input = choice.data;
            let mut attributes = Vec::new();
            while !input.is_empty() {
                let (rest, atv) = AttributeTypeAndValue::from_der(input)
                    .map_err(|e| format!("nameRelativeToCRLIssuer: {e}"))?;
                let value = atv.attr_value();
                attributes.push(Attribute {
                    oid: atv.attr_type().to_id_string(),
                    tag: value.tag().0,
                    universal: value.class() == Class::Universal,
                    value: value.data.to_vec(),
                });
                input = rest;
            }
            if attributes.is_empty() {
                return Err("empty nameRelativeToCRLIssuer".into());
            }
            Ok(DistributionPointName::RelativeToIssuer(attributes))
        }
        tag => Err(format!("unexpected DistributionPointName choice [{tag}]")),
    }
}

/// GeneralName after GeneralName, at least one (the content of an implicitly tagged
/// GeneralNames).
fn general_names_content(mut input: &[u8]) -> Result<Vec<GeneralName>, String> {
    let mut names = Vec::new();
    while !input.is_empty() {
        let (rest, name) =
            X509GeneralName::from_der(input).map_err(|e| format!("GeneralName: {e}"))?;
        names.push(general_name(&name));
        input = rest;
    }
    if names.is_empty() {
        return Err("empty GeneralNames".into());
    }
    Ok(names)
}

/// ReasonFlags from the content of an implicitly tagged BIT STRING: bit k of the result is
/// named bit k (0 = unused, 1 = keyCompromise, … 8 = aACompromise).
pub(super) fn reason_flags(content: &[u8]) -> Result<u16, String> {
    let Some((unused, bytes)) = content.split_first() else {
        return Err("empty ReasonFlags".into());
    };
    if *unused > 7 || bytes.len() > 2 || (bytes.is_empty() && *unused != 0) {
        return Err("malformed ReasonFlags".into());
    }
    let mut flags = 0u16;
    for (k, byte) in bytes.iter().enumerate() {
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                flags |= 1 << (k * 8 + bit);
            }
        }
    }
    Ok(flags)
}

fn boolean(content: &[u8]) -> Result<bool, String> {
    match content {
        [0x00] => Ok(false),
        [0xff] => Ok(true),
        _ => Err("malformed BOOLEAN".into()),
    }
}

/// One DER element and the bytes after it.
fn element(input: &[u8]) -> Result<(Any<'_>, &[u8]), String> {
    let (rest, any) = Any::from_der(input).map_err(|e| e.to_string())?;
    Ok((any, rest))
}

fn expect(any: &Any<'_>, class: Class, tag: u32, what: &str) -> Result<(), String> {
    if any.class() == class && any.tag().0 == tag {
        Ok(())
    } else {
        Err(format!("expected {what}"))
    }
}

fn context_tag(any: &Any<'_>) -> Result<u32, String> {
    if any.class() == Class::ContextSpecific {
        Ok(any.tag().0)
    } else {
        Err("expected a context-specific field".into())
    }
}

/// The same mapping as the certificate parser's, for names read from CRLs.
fn general_name(name: &X509GeneralName<'_>) -> GeneralName {
    match name {
        X509GeneralName::OtherName(oid, _) => GeneralName::Other {
            oid: oid.to_id_string(),
        },
        X509GeneralName::RFC822Name(s) => GeneralName::Email((*s).to_owned()),
        X509GeneralName::DNSName(s) => GeneralName::Dns((*s).to_owned()),
        X509GeneralName::X400Address(_) => GeneralName::X400,
        X509GeneralName::DirectoryName(n) => GeneralName::Directory(Name::from_x509(n)),
        X509GeneralName::EDIPartyName(_) => GeneralName::EdiParty,
        X509GeneralName::URI(s) => GeneralName::Uri((*s).to_owned()),
        X509GeneralName::IPAddress(b) => GeneralName::Ip(b.to_vec()),
        X509GeneralName::RegisteredID(oid) => GeneralName::RegisteredId(oid.to_id_string()),
        X509GeneralName::Invalid(tag, _) => GeneralName::Invalid { tag: tag.0 },
    }
}
