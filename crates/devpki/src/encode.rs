//! Certificate, CRL and extension parameters for rcgen, and the DER and PEM written by hand
//! where rcgen cannot express a value (OIDs under a 128-bit UUID arc).

use std::net::{IpAddr, Ipv4Addr};

use base64::Engine as _;
use kakehashi_pki::mra::AssuranceLevel;
use kakehashi_pki::purpose::{EKU_CLIENT_AUTH, EKU_SERVER_AUTH};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CustomExtension,
    DistinguishedName, DnType, IsCa, Issuer, KeyIdMethod, KeyUsagePurpose, RevocationReason,
    RevokedCertParams, SanType, SerialNumber,
};

use crate::generator::{Ca, LeafKey, LeafSpec};
use crate::jurisdictions::{
    CRL_NEXT_UPDATE, CRL_THIS_UPDATE, JurisdictionSpec, LEAF_NOT_AFTER, LEAF_NOT_BEFORE,
    REVOCATION_TIME,
};
use crate::{DevPkiError, policy_oid};

/// id-ce-certificatePolicies (RFC 5280 §4.2.1.4).
const OID_CERTIFICATE_POLICIES: &[u64] = &[2, 5, 29, 32];
/// id-ce-extKeyUsage (RFC 5280 §4.2.1.12).
const OID_EXT_KEY_USAGE: &[u64] = &[2, 5, 29, 37];

/// A serial number: the ISO numeric jurisdiction code, a kind byte (0x01 root, 0x02 issuing
/// CA, 0x10 bank, 0x20 node TLS, 0x30 receipt, 0x40 fixture, 0x50 fixture sub-CA) and an
/// index. Positive and unique within each issuer, as RFC 5280 §4.1.2.2 requires.
pub(crate) fn serial(number: u32, kind: u8, index: u8) -> u64 {
    (u64::from(number) << 16) | (u64::from(kind) << 8) | u64::from(index)
}

fn serial_number(value: u64) -> SerialNumber {
    let bytes = value.to_be_bytes();
    let first = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len() - 1);
    SerialNumber::from_slice(&bytes[first..])
}

pub(crate) fn name(country: &str, organization: &str, common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, country);
    dn.push(DnType::OrganizationName, organization);
    dn.push(DnType::CommonName, common_name);
    dn
}

pub(crate) fn ca_params(
    country: &str,
    organization: &str,
    common_name: &str,
    serial: u64,
    path_len: u8,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(country, organization, common_name);
    params.serial_number = Some(serial_number(serial));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.key_identifier_method = KeyIdMethod::Sha256;
    params
}

pub(crate) fn leaf_params(leaf: &LeafSpec<'_>) -> Result<CertificateParams, DevPkiError> {
    let country = leaf
        .label
        .split('/')
        .next()
        .filter(|d| d.len() == 2)
        .map(str::to_ascii_uppercase)
        .unwrap_or_else(|| "JP".to_owned());
    let mut params = CertificateParams::default();
    params.distinguished_name = name(&country, &leaf.organization, &leaf.common_name);
    params.serial_number = Some(serial_number(leaf.serial));
    params.not_before = leaf.not_before;
    params.not_after = leaf.not_after;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    params.subject_alt_names = leaf.alt_names.clone();
    let ekus: Vec<String> = leaf.ekus.iter().map(|s| (*s).to_owned()).collect();
    params.custom_extensions.push(eku_extension(&ekus)?);
    if let Some(policy) = &leaf.policy {
        params
            .custom_extensions
            .push(policies_extension(std::slice::from_ref(policy))?);
    }
    Ok(params)
}

/// A node TLS leaf: serverAuth and clientAuth (either end of mutual TLS), SAN DNS `localhost`
/// and `<code>-node.kakehashi.test` and IP `127.0.0.1` (nodes listen on loopback in
/// development), valid 2025-06-01 → 2035-06-01, with an ECDSA P-256 key ([`LeafKey`] says
/// why). `named` gives the names, `issuer` the substantial policy OID; they differ only for
/// the unknown-PKI impostor fixture.
pub(crate) fn node_tls(
    named: &JurisdictionSpec,
    issuer: &JurisdictionSpec,
    label: String,
    serial: u64,
) -> Result<LeafSpec<'static>, DevPkiError> {
    let node_name = format!("{}-node.kakehashi.test", named.code.to_ascii_lowercase());
    Ok(LeafSpec {
        label,
        common_name: node_name.clone(),
        organization: format!("Kakehashi {} Node (development)", named.code),
        serial,
        ekus: &[EKU_SERVER_AUTH, EKU_CLIENT_AUTH],
        policy: Some(policy_oid(issuer.number, AssuranceLevel::Substantial)),
        not_before: LEAF_NOT_BEFORE,
        not_after: LEAF_NOT_AFTER,
        alt_names: vec![
            dns("localhost")?,
            dns(&node_name)?,
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        ],
        key: LeafKey::EcdsaP256,
    })
}

pub(crate) fn dns(name: &str) -> Result<SanType, DevPkiError> {
    let ia5 = rcgen::string::Ia5String::try_from(name.to_owned()).map_err(|cause| {
        DevPkiError::Generate {
            what: format!("DNS name {name}"),
            cause,
        }
    })?;
    Ok(SanType::DnsName(ia5))
}

/// extKeyUsage written by hand: kakehashi's EKUs sit under a 128-bit UUID arc, which rcgen's
/// `u64` OID components cannot hold.
fn eku_extension(oids: &[String]) -> Result<CustomExtension, DevPkiError> {
    let mut body = Vec::new();
    for oid in oids {
        body.extend(der_tlv(0x06, &oid_content(oid)?));
    }
    Ok(CustomExtension::from_oid_content(
        OID_EXT_KEY_USAGE,
        der_tlv(0x30, &body),
    ))
}

/// certificatePolicies (RFC 5280 §4.2.1.4): a SEQUENCE of PolicyInformation, each holding
/// only its policyIdentifier. Non-critical, as the RFC recommends for interoperability.
pub(crate) fn policies_extension(oids: &[String]) -> Result<CustomExtension, DevPkiError> {
    let mut body = Vec::new();
    for oid in oids {
        body.extend(der_tlv(0x30, &der_tlv(0x06, &oid_content(oid)?)));
    }
    Ok(CustomExtension::from_oid_content(
        OID_CERTIFICATE_POLICIES,
        der_tlv(0x30, &body),
    ))
}

/// The content octets of an OBJECT IDENTIFIER (X.690 §8.19): the first two arcs combined as
/// 40·a + b, then base-128 with continuation bits. Arcs up to 128 bits (UUID arcs) fit.
pub(crate) fn oid_content(dotted: &str) -> Result<Vec<u8>, DevPkiError> {
    let bad = || DevPkiError::Key {
        what: dotted.to_owned(),
        reason: "not a dotted object identifier".into(),
    };
    let arcs: Vec<u128> = dotted
        .split('.')
        .map(|a| a.parse::<u128>().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let [first, second, rest @ ..] = arcs.as_slice() else {
        return Err(bad());
    };
    if *first > 2 || (*first < 2 && *second >= 40) {
        return Err(bad());
    }
    let head = first
        .checked_mul(40)
        .and_then(|v| v.checked_add(*second))
        .ok_or_else(bad)?;
    let mut out = Vec::new();
    for arc in std::iter::once(head).chain(rest.iter().copied()) {
        let mut groups = vec![(arc & 0x7f) as u8];
        let mut value = arc >> 7;
        while value > 0 {
            groups.push(((value & 0x7f) as u8) | 0x80);
            value >>= 7;
        }
        out.extend(groups.iter().rev());
    }
    Ok(out)
}

/// A DER tag-length-value with a definite length (X.690 §8.1.3).
pub(crate) fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let first = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len() - 1);
        out.push(0x80 | (bytes.len() - first) as u8);
        out.extend_from_slice(&bytes[first..]);
    }
    out.extend_from_slice(content);
    out
}

pub(crate) fn crl_for(ca: &Ca, revoked: &[u64], what: &str) -> Result<String, DevPkiError> {
    let params = CertificateRevocationListParams {
        this_update: CRL_THIS_UPDATE,
        next_update: CRL_NEXT_UPDATE,
        crl_number: SerialNumber::from_slice(&[1]),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|s| RevokedCertParams {
                serial_number: serial_number(*s),
                revocation_time: REVOCATION_TIME,
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let crl = params
        .signed_by(&Issuer::from_params(&ca.params, &ca.key))
        .map_err(|cause| DevPkiError::Generate {
            what: what.to_owned(),
            cause,
        })?;
    crl.pem().map_err(|cause| DevPkiError::Generate {
        what: what.to_owned(),
        cause,
    })
}

/// PEM with 64-character lines (RFC 7468 §2).
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
