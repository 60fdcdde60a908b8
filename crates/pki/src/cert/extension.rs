//! The certificate extensions path validation reads (RFC 5280 §4.2), as owned values, and the
//! reading of them from x509-parser's parse, recording every RFC 5280 MUST it breaks.

use std::collections::HashSet;

use x509_parser::extensions::{
    CRLDistributionPoints, DistributionPointName as X509DistributionPointName, ExtendedKeyUsage,
    GeneralSubtree, NameConstraints as X509NameConstraints, ParsedExtension,
    SubjectAlternativeName,
};
use x509_parser::prelude::X509Certificate;

use super::name::{GeneralName, rdn_attributes};
use super::{Attribute, Cert, EKU_ANY, oid_string};

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

impl Cert {
    /// Reads every extension of `x` into `self`, recording duplicates, unprocessed critical
    /// extensions and every RFC 5280 MUST an extension breaks.
    pub(super) fn read_extensions(&mut self, x: &X509Certificate<'_>) {
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
            self.read_extension(&oid, ext.parsed_extension(), ext.critical);
        }
    }

    /// Reads one extension's value.
    fn read_extension(&mut self, oid: &str, parsed: &ParsedExtension<'_>, critical: bool) {
        match parsed {
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
                    critical,
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
                let oids = extended_key_usage_oids(eku);
                if oids.is_empty() {
                    self.defects
                        .push("empty extendedKeyUsage (RFC 5280 §4.2.1.12)".into());
                }
                self.extended_key_usage = Some(oids);
            }
            ParsedExtension::SubjectAlternativeName(san) => {
                self.read_subject_alt_names(san, critical);
            }
            ParsedExtension::NameConstraints(nc) => self.read_name_constraints(nc, critical),
            ParsedExtension::CertificatePolicies(_)
            | ParsedExtension::PolicyMappings(_)
            | ParsedExtension::PolicyConstraints(_)
            | ParsedExtension::InhibitAnyPolicy(_) => self.read_policy_extension(parsed),
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
                self.crl_distribution_points = distribution_points(dps);
            }
            _ => {}
        }
    }

    /// subjectAltName (RFC 5280 §4.2.1.6): it MUST NOT be empty, and every entry must decode.
    fn read_subject_alt_names(&mut self, san: &SubjectAlternativeName<'_>, critical: bool) {
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
        self.san_critical = critical;
    }

    /// nameConstraints (RFC 5280 §4.2.1.10): the subtrees' bases.
    fn read_name_constraints(&mut self, nc: &X509NameConstraints<'_>, critical: bool) {
        let read = |subtrees: &Option<Vec<GeneralSubtree<'_>>>| {
            subtrees
                .as_ref()
                .map(|v| v.iter().map(|s| GeneralName::from_x509(&s.base)).collect())
        };
        let constraints = NameConstraints {
            permitted: read(&nc.permitted_subtrees),
            excluded: read(&nc.excluded_subtrees),
            critical,
        };
        if constraints.permitted.is_none() && constraints.excluded.is_none() {
            // RFC 5280 §4.2.1.10: "either the permittedSubtrees field or the
            // excludedSubtrees MUST be present".
            self.defects
                .push("empty nameConstraints (RFC 5280 §4.2.1.10)".into());
        }
        self.name_constraints = Some(constraints);
    }

    /// The policy extensions (RFC 5280 §4.2.1.4, §4.2.1.5, §4.2.1.11, §4.2.1.14), the inputs
    /// of policy processing.
    fn read_policy_extension(&mut self, parsed: &ParsedExtension<'_>) {
        match parsed {
            ParsedExtension::CertificatePolicies(policies) => {
                let oids: Vec<String> = policies.iter().map(|p| oid_string(&p.policy_id)).collect();
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
                self.policy_info.inhibit_policy_mapping = pc.inhibit_policy_mapping.map(u64::from);
            }
            ParsedExtension::InhibitAnyPolicy(iap) => {
                self.policy_info.inhibit_any_policy = Some(u64::from(iap.skip_certs));
            }
            _ => {}
        }
    }
}

/// The extendedKeyUsage purposes (RFC 5280 §4.2.1.12) as dotted OIDs: the ones x509-parser
/// names first, in a fixed order, then the others in certificate order.
fn extended_key_usage_oids(eku: &ExtendedKeyUsage<'_>) -> Vec<String> {
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
    oids
}

/// cRLDistributionPoints (RFC 5280 §4.2.1.13) as owned values.
fn distribution_points(dps: &CRLDistributionPoints<'_>) -> Vec<DistributionPoint> {
    dps.points
        .iter()
        .map(|p| DistributionPoint {
            name: p.distribution_point.as_ref().map(|n| match n {
                X509DistributionPointName::FullName(v) => {
                    DistributionPointName::FullName(v.iter().map(GeneralName::from_x509).collect())
                }
                X509DistributionPointName::NameRelativeToCRLIssuer(rdn) => {
                    DistributionPointName::RelativeToIssuer(rdn_attributes(rdn))
                }
            }),
            reasons: p.reasons.as_ref().map(|r| r.flags),
            crl_issuer: p
                .crl_issuer
                .as_ref()
                .map(|v| v.iter().map(GeneralName::from_x509).collect()),
        })
        .collect()
}
