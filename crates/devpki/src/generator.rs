//! The generator: each jurisdiction's hierarchy, leaves, CRLs and the signed agreement, as
//! files keyed by path. The negative fixtures are in [`crate::fixtures`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey as DalekSigningKey;
use kakehashi_pki::mra::{AssuranceLevel, Mra, MraError};
use kakehashi_pki::purpose::{
    EKU_CLIENT_AUTH, EKU_OPERATOR, EKU_PARTICIPANT_TLS, EKU_PAYMENT_SIGNING, EKU_RECEIPT_SIGNING,
    Purpose,
};
use rcgen::{CertificateParams, Issuer, KeyPair, SanType};
use time::OffsetDateTime;

use crate::encode::{ca_params, crl_for, leaf_params, node_tls, policies_extension, serial};
use crate::jurisdictions::{
    ISSUING_NOT_AFTER, ISSUING_NOT_BEFORE, JurisdictionSpec, LEAF_NOT_AFTER, LEAF_NOT_BEFORE,
    MRA_NOT_AFTER, MRA_NOT_BEFORE, ROOT_NOT_AFTER, ROOT_NOT_BEFORE, ROW_NOT_AFTER, ROW_NOT_BEFORE,
};
use crate::keys::{derive_key, derive_p256_scalar, p256_pkcs8_pem, pkcs8_v1_pem};
use crate::{DevPkiError, policy_oid};

/// A generated CA: what is needed to issue under it.
pub(crate) struct Ca {
    pub(crate) params: CertificateParams,
    pub(crate) key: KeyPair,
    pub(crate) pem: String,
}

/// The generated hierarchy of one jurisdiction.
pub(crate) struct Generated {
    pub(crate) spec: &'static JurisdictionSpec,
    pub(crate) root: Ca,
    pub(crate) issuing: Ca,
    pub(crate) authority: DalekSigningKey,
    /// Serials of leaves the issuing CA has revoked; its CRL is signed once all are known.
    pub(crate) revoked: Vec<u64>,
}

/// What a leaf certificate asserts.
pub(crate) struct LeafSpec<'a> {
    pub(crate) label: String,
    pub(crate) common_name: String,
    pub(crate) organization: String,
    pub(crate) serial: u64,
    pub(crate) ekus: &'a [&'a str],
    pub(crate) policy: Option<String>,
    pub(crate) not_before: OffsetDateTime,
    pub(crate) not_after: OffsetDateTime,
    pub(crate) alt_names: Vec<SanType>,
    pub(crate) key: LeafKey,
}

/// The key algorithm of a leaf's subject key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LeafKey {
    /// Ed25519 (RFC 8410): every key except node TLS keys.
    Ed25519,
    /// ECDSA on P-256 (RFC 5480): node TLS, participant TLS and operator keys, because gRPC clients built on BoringSSL
    /// (gRPC core: Python, Ruby, PHP, C#, C++) do not offer Ed25519 in the TLS
    /// signature_algorithms extension (RFC 8446 §4.2.3), so a handshake with an Ed25519 node
    /// certificate fails for them with no scheme in common.
    EcdsaP256,
}

pub(crate) struct Generator<'s> {
    pub(crate) seed: &'s str,
    pub(crate) files: BTreeMap<PathBuf, Vec<u8>>,
}

impl Generator<'_> {
    pub(crate) fn put(&mut self, path: &str, bytes: Vec<u8>) {
        self.files.insert(PathBuf::from(path), bytes);
    }

    pub(crate) fn key(&self, name: &str) -> Result<(KeyPair, String), DevPkiError> {
        self.key_of(name, LeafKey::Ed25519)
    }

    fn key_of(&self, name: &str, kind: LeafKey) -> Result<(KeyPair, String), DevPkiError> {
        let (pem, algorithm) = match kind {
            LeafKey::Ed25519 => (
                pkcs8_v1_pem(&derive_key(self.seed, name)),
                &rcgen::PKCS_ED25519,
            ),
            LeafKey::EcdsaP256 => (
                p256_pkcs8_pem(&derive_p256_scalar(self.seed, name)?, name)?,
                &rcgen::PKCS_ECDSA_P256_SHA256,
            ),
        };
        let pair = KeyPair::from_pkcs8_pem_and_sign_algo(&pem, algorithm).map_err(|cause| {
            DevPkiError::Generate {
                what: format!("key {name}"),
                cause,
            }
        })?;
        Ok((pair, pem))
    }

    /// One jurisdiction: its root and issuing CAs, its banks, its node (when it runs one) and
    /// its MRA authority key (when it is a party).
    pub(crate) fn jurisdiction(
        &mut self,
        spec: &'static JurisdictionSpec,
    ) -> Result<Generated, DevPkiError> {
        let dir = spec.code.to_ascii_lowercase();
        let (root, issuing) = self.cas(spec, &dir)?;
        let revoked = self.banks(spec, &dir, &issuing)?;
        if spec.has_node {
            self.node(spec, &dir, &issuing)?;
            self.operator(spec, &dir, &issuing)?;
        }
        let authority = derive_key(self.seed, &format!("mra-authority/{dir}"));
        if spec.in_mra {
            let pem = pkcs8_v1_pem(&authority);
            self.put(&format!("mra-keys/{dir}.key.pem"), pem.into_bytes());
        }
        Ok(Generated {
            spec,
            root,
            issuing,
            authority,
            revoked,
        })
    }

    /// The root CA and the issuing CA of a jurisdiction, written with their keys.
    fn cas(&mut self, spec: &JurisdictionSpec, dir: &str) -> Result<(Ca, Ca), DevPkiError> {
        let org = format!(
            "Kakehashi Development PKI {} (NOT FOR PRODUCTION)",
            spec.code
        );
        let all_levels: Vec<String> = AssuranceLevel::ALL
            .iter()
            .map(|l| policy_oid(spec.number, *l))
            .collect();

        // Root: pathLenConstraint 1 allows exactly one intermediate (the issuing CA).
        let (root_key, root_key_pem) = self.key(&format!("{dir}/root"))?;
        let mut root_params = ca_params(
            spec.code,
            &org,
            &format!("Kakehashi {} Root CA", spec.code),
            serial(spec.number, 0x01, 1),
            1,
        );
        root_params.not_before = ROOT_NOT_BEFORE;
        root_params.not_after = ROOT_NOT_AFTER;
        let root_cert =
            root_params
                .self_signed(&root_key)
                .map_err(|cause| DevPkiError::Generate {
                    what: format!("{dir} root"),
                    cause,
                })?;
        let root = Ca {
            pem: root_cert.pem(),
            params: root_params,
            key: root_key,
        };

        // Issuing CA: pathLenConstraint 0, it issues end entities only (RFC 5280 §4.2.1.9).
        // It asserts every policy OID of its jurisdiction so that a leaf's own policy is what
        // reaches the valid policy tree (RFC 5280 §6.1.3(d)).
        let (issuing_key, issuing_key_pem) = self.key(&format!("{dir}/issuing"))?;
        let mut issuing_params = ca_params(
            spec.code,
            &org,
            &format!("Kakehashi {} Issuing CA 1", spec.code),
            serial(spec.number, 0x02, 1),
            0,
        );
        issuing_params.not_before = ISSUING_NOT_BEFORE;
        issuing_params.not_after = ISSUING_NOT_AFTER;
        issuing_params.use_authority_key_identifier_extension = true;
        issuing_params
            .custom_extensions
            .push(policies_extension(&all_levels)?);
        let issuing_cert = issuing_params
            .signed_by(&issuing_key, &Issuer::from_params(&root.params, &root.key))
            .map_err(|cause| DevPkiError::Generate {
                what: format!("{dir} issuing CA"),
                cause,
            })?;
        let issuing = Ca {
            pem: issuing_cert.pem(),
            params: issuing_params,
            key: issuing_key,
        };

        self.put(&format!("{dir}/root.pem"), root.pem.clone().into_bytes());
        self.put(&format!("{dir}/root.key.pem"), root_key_pem.into_bytes());
        self.put(
            &format!("{dir}/issuing.pem"),
            issuing.pem.clone().into_bytes(),
        );
        self.put(
            &format!("{dir}/issuing.key.pem"),
            issuing_key_pem.into_bytes(),
        );
        Ok((root, issuing))
    }

    /// The jurisdiction's banks, each a payment-signing leaf and a participant-TLS leaf
    /// (`<BIC>-tls`, clientAuth and the participant-TLS EKU, P-256) under the issuing CA at the
    /// bank's assurance level; returns the serials of the banks marked revoked. A revoked
    /// bank's signing certificate is what is revoked; its TLS certificate is not, so a test can
    /// show that a bank that can still connect cannot sign.
    fn banks(
        &mut self,
        spec: &JurisdictionSpec,
        dir: &str,
        issuing: &Ca,
    ) -> Result<Vec<u64>, DevPkiError> {
        let mut revoked = Vec::new();
        for (i, bank) in spec.banks.iter().enumerate() {
            let index = u8::try_from(i + 1).unwrap_or(u8::MAX);
            let leaf = LeafSpec {
                label: format!("{dir}/banks/{}", bank.bic),
                common_name: bank.bic.to_owned(),
                organization: bank.name.to_owned(),
                serial: serial(spec.number, 0x10, index),
                ekus: &[EKU_PAYMENT_SIGNING],
                policy: Some(policy_oid(spec.number, bank.level)),
                not_before: LEAF_NOT_BEFORE,
                not_after: LEAF_NOT_AFTER,
                alt_names: Vec::new(),
                key: LeafKey::Ed25519,
            };
            self.leaf(issuing, &leaf, &format!("{dir}/banks/{}", bank.bic))?;
            if bank.revoked {
                revoked.push(leaf.serial);
            }
            let tls = LeafSpec {
                label: format!("{dir}/banks/{}-tls", bank.bic),
                common_name: bank.bic.to_owned(),
                organization: bank.name.to_owned(),
                serial: serial(spec.number, 0x11, index),
                ekus: &[EKU_CLIENT_AUTH, EKU_PARTICIPANT_TLS],
                policy: Some(policy_oid(spec.number, bank.level)),
                not_before: LEAF_NOT_BEFORE,
                not_after: LEAF_NOT_AFTER,
                alt_names: Vec::new(),
                key: LeafKey::EcdsaP256,
            };
            self.leaf(issuing, &tls, &format!("{dir}/banks/{}-tls", bank.bic))?;
        }
        Ok(revoked)
    }

    /// The jurisdiction's node: its TLS identity and its receipt-signing identity.
    fn node(
        &mut self,
        spec: &JurisdictionSpec,
        dir: &str,
        issuing: &Ca,
    ) -> Result<(), DevPkiError> {
        let tls = node_tls(
            spec,
            spec,
            format!("{dir}/node/tls"),
            serial(spec.number, 0x20, 1),
        )?;
        self.leaf(issuing, &tls, &format!("{dir}/node/tls"))?;
        let receipt = LeafSpec {
            label: format!("{dir}/node/receipt"),
            common_name: format!("Kakehashi {} Node receipt signing", spec.code),
            organization: format!("Kakehashi {} Node (development)", spec.code),
            serial: serial(spec.number, 0x30, 1),
            ekus: &[EKU_RECEIPT_SIGNING],
            policy: Some(policy_oid(spec.number, AssuranceLevel::High)),
            not_before: LEAF_NOT_BEFORE,
            not_after: LEAF_NOT_AFTER,
            alt_names: Vec::new(),
            key: LeafKey::Ed25519,
        };
        self.leaf(issuing, &receipt, &format!("{dir}/node/receipt"))?;
        Ok(())
    }

    /// The operator of the jurisdiction's node: a TLS client identity of its own (clientAuth
    /// and the operator EKU, P-256, kind 0x60), distinct from the node's relay identity, so
    /// that neither a node nor a bank certificate can act as operator.
    fn operator(
        &mut self,
        spec: &JurisdictionSpec,
        dir: &str,
        issuing: &Ca,
    ) -> Result<(), DevPkiError> {
        let operator = LeafSpec {
            label: format!("{dir}/operator"),
            common_name: format!("Kakehashi {} Node operator", spec.code),
            organization: format!("Kakehashi {} Node (development)", spec.code),
            serial: serial(spec.number, 0x60, 1),
            ekus: &[EKU_CLIENT_AUTH, EKU_OPERATOR],
            policy: Some(policy_oid(spec.number, AssuranceLevel::High)),
            not_before: LEAF_NOT_BEFORE,
            not_after: LEAF_NOT_AFTER,
            alt_names: Vec::new(),
            key: LeafKey::EcdsaP256,
        };
        self.leaf(issuing, &operator, &format!("{dir}/operator"))?;
        Ok(())
    }

    /// A receipt-signing leaf like the node's (same purpose, policy and validity) for another
    /// key, derived from `name`, with a serial no generated file uses (kind 0x31).
    pub(crate) fn other_receipt_leaf(
        &mut self,
        party: &Generated,
        file: &str,
        name: &str,
    ) -> Result<Vec<u8>, DevPkiError> {
        let spec = party.spec;
        let leaf = LeafSpec {
            label: file.to_owned(),
            common_name: format!("Kakehashi {} other receipt signer {name}", spec.code),
            organization: format!("Kakehashi {} Node (development)", spec.code),
            serial: serial(spec.number, 0x31, 1),
            ekus: &[EKU_RECEIPT_SIGNING],
            policy: Some(policy_oid(spec.number, AssuranceLevel::High)),
            not_before: LEAF_NOT_BEFORE,
            not_after: LEAF_NOT_AFTER,
            alt_names: Vec::new(),
            key: LeafKey::Ed25519,
        };
        self.leaf(&party.issuing, &leaf, file)
    }

    /// Writes a jurisdiction's CRLs. The issuing CA's CRL lists every leaf it revoked (the
    /// third bank, and for JP the revoked node fixture); the root's CRL covers the issuing CA
    /// and revokes nothing, so revocation can be required on every certificate.
    pub(crate) fn crls(&mut self, party: &Generated) -> Result<(), DevPkiError> {
        let dir = party.spec.code.to_ascii_lowercase();
        let crl = crl_for(
            &party.issuing,
            &party.revoked,
            &format!("{dir} issuing CRL"),
        )?;
        self.put(&format!("{dir}/crl.pem"), crl.into_bytes());
        let root_crl = crl_for(&party.root, &[], &format!("{dir} root CRL"))?;
        self.put(&format!("{dir}/root-crl.pem"), root_crl.into_bytes());
        Ok(())
    }

    /// Issues a leaf, writes `<file>.pem` (leaf then issuing CA) and `<file>.key.pem`, and
    /// returns the leaf's DER.
    pub(crate) fn leaf(
        &mut self,
        ca: &Ca,
        leaf: &LeafSpec<'_>,
        file: &str,
    ) -> Result<Vec<u8>, DevPkiError> {
        let (key, key_pem) = self.key_of(&leaf.label, leaf.key)?;
        let params = leaf_params(leaf)?;
        let cert = params
            .signed_by(&key, &Issuer::from_params(&ca.params, &ca.key))
            .map_err(|cause| DevPkiError::Generate {
                what: leaf.label.clone(),
                cause,
            })?;
        let mut chain = cert.pem();
        chain.push_str(&ca.pem);
        self.put(&format!("{file}.pem"), chain.into_bytes());
        self.put(&format!("{file}.key.pem"), key_pem.into_bytes());
        Ok(cert.der().to_vec())
    }

    pub(crate) fn mra(&mut self, parties: &[&Generated]) -> Result<(), DevPkiError> {
        let mut text = String::new();
        text.push_str(MRA_HEADER);
        let _ = writeln!(text, "version = 1");
        let _ = writeln!(text, "agreement_id = \"kakehashi-dev-jp-sg-th-2026\"");
        let _ = writeln!(
            text,
            "title = \"Development mutual-recognition agreement: Japan, Singapore, Thailand\""
        );
        let _ = writeln!(text, "not_before = \"{MRA_NOT_BEFORE}\"");
        let _ = writeln!(text, "not_after = \"{MRA_NOT_AFTER}\"");
        for party in parties {
            let spec = party.spec;
            let dir = spec.code.to_ascii_lowercase();
            let _ = writeln!(text, "\n[[jurisdiction]]");
            let _ = writeln!(text, "code = \"{}\"", spec.code);
            let _ = writeln!(text, "name = \"{}\"", spec.name);
            let _ = writeln!(text, "currency = \"{}\"", spec.currency);
            let _ = writeln!(
                text,
                "authority_key = \"{}\"",
                hex::encode(party.authority.verifying_key().as_bytes())
            );
            let _ = writeln!(text, "anchors = [\"{dir}/root.pem\"]");
            let _ = writeln!(text, "crls = [\"{dir}/crl.pem\", \"{dir}/root-crl.pem\"]");
            let _ = writeln!(text, "[jurisdiction.policies]");
            for level in AssuranceLevel::ALL {
                let _ = writeln!(
                    text,
                    "\"{}\" = \"{}\"",
                    policy_oid(spec.number, level),
                    level
                );
            }
        }
        // Every party recognizes every other for the three purposes that cross a border: node
        // TLS (the relay), payment signing and receipt signing. The rows name their purposes
        // rather than taking every purpose: participant TLS and operators are recognized by
        // each jurisdiction for its own PKI only (operators may never be in a row).
        const CROSS_BORDER: &[Purpose] = &[
            Purpose::NodeTls,
            Purpose::PaymentSigning,
            Purpose::ReceiptSigning,
        ];
        // In the order the parties acceded: JP and SG first, then TH's rows.
        let rows: [(&str, &str); 6] = [
            ("SG", "JP"),
            ("JP", "SG"),
            ("TH", "JP"),
            ("TH", "SG"),
            ("JP", "TH"),
            ("SG", "TH"),
        ];
        for (relying, issuing) in rows {
            let _ = writeln!(text, "\n[[recognition]]");
            let _ = writeln!(text, "id = \"{relying}-recognizes-{issuing}\"");
            let _ = writeln!(text, "relying = \"{relying}\"");
            let _ = writeln!(text, "issuing = \"{issuing}\"");
            let names: Vec<String> = CROSS_BORDER.iter().map(|p| format!("\"{p}\"")).collect();
            let _ = writeln!(text, "purposes = [{}]", names.join(", "));
            let _ = writeln!(text, "minimum_level = \"substantial\"");
            let _ = writeln!(text, "not_before = \"{ROW_NOT_BEFORE}\"");
            let _ = writeln!(text, "not_after = \"{ROW_NOT_AFTER}\"");
        }

        let files = &self.files;
        let mut read = |reference: &str| -> Result<Vec<u8>, MraError> {
            files
                .get(Path::new(reference))
                .cloned()
                .ok_or_else(|| MraError::Read {
                    path: PathBuf::from(reference),
                    cause: std::io::Error::from(std::io::ErrorKind::NotFound),
                })
        };
        let mut mra = Mra::parse_with(&text, Path::new("mra.toml"), &mut read)?;
        for party in parties {
            mra.sign(party.spec.code, &party.authority)?;
        }
        mra.verify_signatures()?;
        let signed = mra.with_signatures(&text)?;
        self.put("mra.toml", signed.into_bytes());
        Ok(())
    }
}

const MRA_HEADER: &str = "\
# kakehashi development mutual-recognition agreement (MRA).
# Generated by `kakehashi pki init`; DEVELOPMENT ONLY, the authority keys are in mra-keys/.
# Anchor and CRL paths are relative to this file. The signatures cover the canonical bytes
# described in README.md (not this text), so comments and layout may change freely; any change
# of meaning needs every party to sign again (`kakehashi mra sign`).
# Rule not written as a row: every jurisdiction recognizes its own PKI (MRA §self-recognition).

";
