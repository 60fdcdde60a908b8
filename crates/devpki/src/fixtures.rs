//! The fixture table (what verifying each committed chain must conclude, and why) and the
//! generation of the negative fixtures it lists.

use std::path::{Path, PathBuf};

use kakehashi_pki::mra::AssuranceLevel;
use kakehashi_pki::purpose::{EKU_CLIENT_AUTH, EKU_PAYMENT_SIGNING, Purpose};
use rcgen::Issuer;

use crate::encode::{ca_params, node_tls, pem_encode, policies_extension, serial};
use crate::generator::{Ca, Generated, Generator, LeafKey, LeafSpec};
use crate::jurisdictions::{
    EXPIRED_NOT_AFTER, EXPIRED_NOT_BEFORE, FUTURE_NOT_AFTER, FUTURE_NOT_BEFORE, JP, LEAF_NOT_AFTER,
    LEAF_NOT_BEFORE, NODE_EXPIRED_INDEX, NODE_EXPIRED_NOT_AFTER, NODE_EXPIRED_NOT_BEFORE,
    NODE_REVOKED_INDEX, TH, XX,
};
use crate::{DevPkiError, VALIDATION_TIME, policy_oid};

/// What verifying a fixture must conclude.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// Recognized.
    Recognized,
    /// Not recognized: the leaf's notAfter is before the validation time.
    Expired,
    /// Not recognized: the leaf's notBefore is after the validation time.
    NotYetValid,
    /// Not recognized: the issuing CA's CRL lists the leaf.
    Revoked,
    /// Not recognized: the leaf lacks the purpose's extended key usage.
    WrongPurpose,
    /// Not recognized: the chain validates to a party the relying jurisdiction recognizes, but
    /// its row does not carry the purpose.
    PurposeNotRecognized,
    /// Not recognized: the chain leads to no anchor of the agreement.
    UnknownIssuer,
    /// Not recognized: the leaf's policy maps to a level below the row's minimum.
    LevelBelowMinimum,
    /// Not recognized: the leaf's signature does not verify.
    BadSignature,
    /// Not recognized: a CA with pathLenConstraint 0 issued another CA.
    PathLength,
}

impl Expected {
    /// The verdict's one-word form for the fixture table.
    pub fn verdict(self) -> &'static str {
        match self {
            Self::Recognized => "recognized",
            _ => "not recognized",
        }
    }

    /// The rule that decides, as cited in the fixture table.
    pub fn rule(self) -> &'static str {
        match self {
            Self::Recognized => "MRA §recognition.<row> or MRA §self-recognition",
            Self::Expired | Self::NotYetValid => "RFC 5280 §6.1.3(a)(2)",
            Self::Revoked => "RFC 5280 §6.3",
            Self::WrongPurpose => "RFC 5280 §4.2.1.12",
            Self::PurposeNotRecognized => "MRA §recognition.<row>",
            Self::UnknownIssuer => "RFC 5280 §6.1 (path to a trust anchor)",
            Self::LevelBelowMinimum => "MRA §level",
            Self::BadSignature => "RFC 5280 §6.1.3(a)(1)",
            Self::PathLength => "RFC 5280 §6.1.4(l)",
        }
    }
}

/// One entry of the fixture table: a chain file, how it is verified, and the verdict.
#[derive(Clone, Copy, Debug)]
pub struct Fixture {
    /// Short name (the fixture directory for negative fixtures).
    pub name: &'static str,
    /// The chain file (leaf first, then intermediates), relative to the PKI directory.
    pub chain: &'static str,
    /// The jurisdiction whose anchor the chain leads to; empty when none of the agreement's.
    pub anchor: &'static str,
    /// The relying jurisdiction.
    pub relying: &'static str,
    /// The purpose verified for.
    pub purpose: Purpose,
    /// The expected verdict.
    pub expected: Expected,
    /// Why, in a sentence.
    pub why: &'static str,
}

impl Fixture {
    /// The clause (when recognized) or rule (when not) that decides the verdict.
    pub fn rule(&self) -> String {
        match self.expected {
            Expected::Recognized if self.anchor == self.relying => {
                "MRA §self-recognition".to_owned()
            }
            Expected::Recognized | Expected::PurposeNotRecognized => {
                format!(
                    "MRA §recognition.{}-recognizes-{}",
                    self.relying, self.anchor
                )
            }
            other => other.rule().to_owned(),
        }
    }
}

/// The fixture table documented in the generated README, verified at [`VALIDATION_TIME`].
pub const FIXTURES: &[Fixture] = &[
    Fixture {
        name: "jp-bank-high",
        chain: "jp/banks/KKHAJPJ0.pem",
        anchor: "JP",
        relying: "SG",
        purpose: Purpose::PaymentSigning,
        expected: Expected::Recognized,
        why: "JP anchor; row SG-recognizes-JP; level high >= substantial",
    },
    Fixture {
        name: "jp-bank-substantial",
        chain: "jp/banks/KKHBJPJ0.pem",
        anchor: "JP",
        relying: "SG",
        purpose: Purpose::PaymentSigning,
        expected: Expected::Recognized,
        why: "JP anchor; row SG-recognizes-JP; level substantial >= substantial",
    },
    Fixture {
        name: "sg-bank-own",
        chain: "sg/banks/KKHASGS0.pem",
        anchor: "SG",
        relying: "SG",
        purpose: Purpose::PaymentSigning,
        expected: Expected::Recognized,
        why: "SG anchor; SG always recognizes itself",
    },
    Fixture {
        name: "jp-node-tls",
        chain: "jp/node/tls.pem",
        anchor: "JP",
        relying: "SG",
        purpose: Purpose::NodeTls,
        expected: Expected::Recognized,
        why: "JP anchor; row SG-recognizes-JP covers node-tls",
    },
    Fixture {
        name: "jp-receipt",
        chain: "jp/node/receipt.pem",
        anchor: "JP",
        relying: "SG",
        purpose: Purpose::ReceiptSigning,
        expected: Expected::Recognized,
        why: "JP anchor; row SG-recognizes-JP covers receipt-signing",
    },
    Fixture {
        name: "sg-bank-to-jp",
        chain: "sg/banks/KKHBSGS0.pem",
        anchor: "SG",
        relying: "JP",
        purpose: Purpose::PaymentSigning,
        expected: Expected::Recognized,
        why: "SG anchor; row JP-recognizes-SG",
    },
    Fixture {
        name: "th-node-tls-own",
        chain: "th/node/tls.pem",
        anchor: "TH",
        relying: "TH",
        purpose: Purpose::NodeTls,
        expected: Expected::Recognized,
        why: "TH anchor; TH always recognizes itself",
    },
    Fixture {
        name: "expired",
        chain: "fixtures/expired/chain.pem",
        anchor: "JP",
        relying: "SG",
        purpose: Purpose::PaymentSigning,
        expected: Expected::Expired,
        why: "leaf notAfter 2025-12-31T23:59:59Z is before the validation time",
    },
    Fixture {
        name: "not-yet-valid",
        chain: "fixtures/not-yet-valid/chain.pem",
        anchor: "JP",
        relying: "SG",
        purpose: Purpose::PaymentSigning,
        expected: Expected::NotYetValid,
        why: "leaf notBefore 2040-01-01T00:00:00Z is after the validation time",
    },
    Fixture {
        name: "revoked",
        chain: "fixtures/revoked/chain.pem",
        anchor: "JP",
        relying: "SG",
        purpose: Purpose::PaymentSigning,
        expected: Expected::Revoked,
        why: "jp/crl.pem lists KKHCJPJ0's serial (keyCompromise, 2025-09-01)",
    },
    Fixture {
        name: "wrong-purpose",
        chain: "fixtures/wrong-purpose/chain.pem",
        anchor: "JP",
        relying: "SG",
        purpose: Purpose::PaymentSigning,
        expected: Expected::WrongPurpose,
        why: "leaf EKU is clientAuth only, not payment-signing",
    },
    Fixture {
        name: "th-bank-tls-abroad",
        chain: "fixtures/th-bank-tls-abroad/chain.pem",
        anchor: "TH",
        relying: "SG",
        purpose: Purpose::ParticipantTls,
        expected: Expected::PurposeNotRecognized,
        why: "a TH bank's participant-TLS identity validates to the TH anchor, but row \
              SG-recognizes-TH does not carry participant-tls: banks connect to their own \
              jurisdiction's node only",
    },
    Fixture {
        name: "unknown-root",
        chain: "fixtures/unknown-root/chain.pem",
        anchor: "",
        relying: "SG",
        purpose: Purpose::PaymentSigning,
        expected: Expected::UnknownIssuer,
        why: "the XX root is not an anchor of any party",
    },
    Fixture {
        name: "policy-below-level",
        chain: "fixtures/policy-below-level/chain.pem",
        anchor: "JP",
        relying: "SG",
        purpose: Purpose::PaymentSigning,
        expected: Expected::LevelBelowMinimum,
        why: "leaf policy maps to low; row SG-recognizes-JP needs substantial",
    },
    Fixture {
        name: "broken-signature",
        chain: "fixtures/broken-signature/chain.pem",
        anchor: "JP",
        relying: "SG",
        purpose: Purpose::PaymentSigning,
        expected: Expected::BadSignature,
        why: "last byte of the leaf's signature flipped",
    },
    Fixture {
        name: "path-length",
        chain: "fixtures/path-length/chain.pem",
        anchor: "JP",
        relying: "SG",
        purpose: Purpose::PaymentSigning,
        expected: Expected::PathLength,
        why: "JP issuing CA (pathLenConstraint 0) issued a sub-CA that issued the leaf",
    },
    // Node TLS certificates for the relay's handshake tests: each is like `jp/node/tls.pem`
    // (both TLS usages, the same names, the substantial policy) except for one defect.
    Fixture {
        name: "node-expired",
        chain: "fixtures/node-expired/chain.pem",
        anchor: "JP",
        relying: "SG",
        purpose: Purpose::NodeTls,
        expected: Expected::Expired,
        why: "JP node TLS leaf valid 2025-02-01 → 2026-02-01, expired at the validation time \
              and at any clock after 2026-02-01",
    },
    Fixture {
        name: "node-revoked",
        chain: "fixtures/node-revoked/chain.pem",
        anchor: "JP",
        relying: "SG",
        purpose: Purpose::NodeTls,
        expected: Expected::Revoked,
        why: "JP node TLS leaf whose serial jp/crl.pem lists (keyCompromise, 2025-09-01)",
    },
    Fixture {
        name: "node-unknown-pki",
        chain: "fixtures/node-unknown-pki/chain.pem",
        anchor: "",
        relying: "SG",
        purpose: Purpose::NodeTls,
        expected: Expected::UnknownIssuer,
        why: "node TLS leaf issued by the XX issuing CA (fixtures/unknown-root/pki), which \
              leads to no anchor of any party",
    },
    Fixture {
        name: "th-node-tls",
        chain: "th/node/tls.pem",
        anchor: "TH",
        relying: "SG",
        purpose: Purpose::NodeTls,
        expected: Expected::Recognized,
        why: "TH anchor; row SG-recognizes-TH covers node-tls",
    },
];

impl Generator<'_> {
    /// Node TLS fixtures for the relay's handshake tests. Each has exactly one defect and is
    /// otherwise what `jp/node/tls.pem` is: serverAuth and clientAuth, SAN DNS `localhost` and
    /// `jp-node.kakehashi.test` and IP `127.0.0.1`, the issuer's substantial policy, and the
    /// same subject apart from a common name that says which fixture it is.
    pub(crate) fn node_fixtures(
        &mut self,
        jp: &mut Generated,
        xx: &Generated,
    ) -> Result<(), DevPkiError> {
        let n = jp.spec.number;

        // Expired before the day it was made, so a node on the real clock refuses it too.
        let mut expired = node_tls(
            jp.spec,
            jp.spec,
            "fixtures/node-expired".into(),
            serial(n, 0x40, NODE_EXPIRED_INDEX),
        )?;
        expired.common_name = "jp-node.kakehashi.test (expired fixture)".into();
        expired.not_before = NODE_EXPIRED_NOT_BEFORE;
        expired.not_after = NODE_EXPIRED_NOT_AFTER;
        self.leaf(&jp.issuing, &expired, "fixtures/node-expired/chain")?;

        // Revoked: JP's issuing CA lists this serial in jp/crl.pem (RFC 5280 §5.3.1
        // keyCompromise), the same entry shape as the revoked bank's.
        let mut revoked = node_tls(
            jp.spec,
            jp.spec,
            "fixtures/node-revoked".into(),
            serial(n, 0x40, NODE_REVOKED_INDEX),
        )?;
        revoked.common_name = "jp-node.kakehashi.test (revoked fixture)".into();
        self.leaf(&jp.issuing, &revoked, "fixtures/node-revoked/chain")?;
        jp.revoked.push(revoked.serial);

        // An impostor: it names itself a JP node, but the unlisted XX PKI issued it under XX's
        // substantial policy. The chain ends at XX's issuing CA, whose root is no party's
        // anchor (it is in fixtures/unknown-root/pki for inspection).
        let mut unknown = node_tls(
            jp.spec,
            xx.spec,
            "fixtures/node-unknown-pki".into(),
            serial(xx.spec.number, 0x20, 1),
        )?;
        unknown.common_name = "jp-node.kakehashi.test (unknown PKI fixture)".into();
        self.leaf(&xx.issuing, &unknown, "fixtures/node-unknown-pki/chain")?;
        Ok(())
    }

    /// The negative fixtures under JP's issuing CA, the ones taken from other jurisdictions,
    /// and a one-line README in each fixture directory.
    pub(crate) fn fixtures(&mut self, jp: &Generated) -> Result<(), DevPkiError> {
        self.bank_fixtures(jp)?;
        self.broken_signature_fixture(jp)?;
        self.path_length_fixture(jp)?;
        self.foreign_fixtures();
        self.fixture_readmes();
        Ok(())
    }

    /// Bank leaves with one defect each: expired, not yet valid, the wrong purpose, a policy
    /// below the row's level; and the revoked bank's chain.
    fn bank_fixtures(&mut self, jp: &Generated) -> Result<(), DevPkiError> {
        let n = jp.spec.number;
        let mut expired = fixture_bank(n, "expired", "KKHEJPJ0 expired", 1);
        expired.not_before = EXPIRED_NOT_BEFORE;
        expired.not_after = EXPIRED_NOT_AFTER;
        self.leaf(&jp.issuing, &expired, "fixtures/expired/chain")?;

        let mut future = fixture_bank(n, "not-yet-valid", "KKHFJPJ0 not yet valid", 2);
        future.not_before = FUTURE_NOT_BEFORE;
        future.not_after = FUTURE_NOT_AFTER;
        self.leaf(&jp.issuing, &future, "fixtures/not-yet-valid/chain")?;

        let mut wrong = fixture_bank(n, "wrong-purpose", "KKHWJPJ0 TLS client only", 3);
        wrong.ekus = &[EKU_CLIENT_AUTH];
        self.leaf(&jp.issuing, &wrong, "fixtures/wrong-purpose/chain")?;

        let mut low = fixture_bank(n, "policy-below-level", "KKHDJPJ0 low assurance", 4);
        low.organization = "Kakehashi Delta Bank JP (fictitious)".to_owned();
        low.policy = Some(policy_oid(n, AssuranceLevel::Low));
        self.leaf(&jp.issuing, &low, "fixtures/policy-below-level/chain")?;

        // The revoked fixture is the revoked JP bank's own chain, copied for convenience.
        let revoked_bank = JP.banks.iter().find(|b| b.revoked).map(|b| b.bic);
        if let Some(bic) = revoked_bank {
            for (from, to) in [
                (format!("jp/banks/{bic}.pem"), "fixtures/revoked/chain.pem"),
                (
                    format!("jp/banks/{bic}.key.pem"),
                    "fixtures/revoked/chain.key.pem",
                ),
            ] {
                if let Some(bytes) = self.files.get(Path::new(&from)).cloned() {
                    self.put(to, bytes);
                }
            }
        }
        Ok(())
    }

    /// Broken signature: a valid leaf whose last signature byte is flipped. An Ed25519
    /// signature is the last 64 bytes of the DER (RFC 8410 §6), so the flip stays inside it.
    fn broken_signature_fixture(&mut self, jp: &Generated) -> Result<(), DevPkiError> {
        let n = jp.spec.number;
        let good = fixture_bank(n, "broken-signature", "KKHXJPJ0 broken signature", 5);
        let der = self.leaf(&jp.issuing, &good, "fixtures/broken-signature/chain")?;
        let mut broken = der;
        if let Some(last) = broken.last_mut() {
            *last ^= 0x01;
        }
        let mut chain = pem_encode("CERTIFICATE", &broken);
        chain.push_str(&jp.issuing.pem);
        self.put("fixtures/broken-signature/chain.pem", chain.into_bytes());
        Ok(())
    }

    /// Path length: the JP issuing CA (pathLenConstraint 0) issues a sub-CA, which issues a
    /// leaf. RFC 5280 §6.1.4(l) rejects the sub-CA.
    fn path_length_fixture(&mut self, jp: &Generated) -> Result<(), DevPkiError> {
        let n = jp.spec.number;
        let (sub_key, sub_key_pem) = self.key("fixtures/path-length/sub-ca")?;
        let mut sub_params = ca_params(
            "JP",
            "Kakehashi Development PKI JP (NOT FOR PRODUCTION)",
            "Kakehashi JP Rogue Sub CA",
            serial(n, 0x50, 1),
            0,
        );
        sub_params.not_before = LEAF_NOT_BEFORE;
        sub_params.not_after = LEAF_NOT_AFTER;
        sub_params.use_authority_key_identifier_extension = true;
        let all_levels: Vec<String> = AssuranceLevel::ALL
            .iter()
            .map(|l| policy_oid(n, *l))
            .collect();
        sub_params
            .custom_extensions
            .push(policies_extension(&all_levels)?);
        let sub_cert = sub_params
            .signed_by(
                &sub_key,
                &Issuer::from_params(&jp.issuing.params, &jp.issuing.key),
            )
            .map_err(|cause| DevPkiError::Generate {
                what: "path-length sub-CA".into(),
                cause,
            })?;
        let sub = Ca {
            pem: sub_cert.pem(),
            params: sub_params,
            key: sub_key,
        };
        self.put(
            "fixtures/path-length/sub-ca.key.pem",
            sub_key_pem.into_bytes(),
        );
        let deep = fixture_bank(n, "path-length", "KKHPJPJ0 under a sub-CA", 6);
        self.leaf(&sub, &deep, "fixtures/path-length/leaf")?;
        let leaf_chain = self
            .files
            .remove(Path::new("fixtures/path-length/leaf.pem"))
            .unwrap_or_default();
        let leaf_key = self
            .files
            .remove(Path::new("fixtures/path-length/leaf.key.pem"))
            .unwrap_or_default();
        let mut chain = leaf_chain;
        chain.extend_from_slice(jp.issuing.pem.as_bytes());
        self.put("fixtures/path-length/chain.pem", chain);
        self.put("fixtures/path-length/chain.key.pem", leaf_key);
        Ok(())
    }

    /// Chains the relying party does not recognize for their purpose: a TH bank's
    /// participant-TLS identity abroad, and the XX PKI.
    fn foreign_fixtures(&mut self) {
        // A foreign bank's participant-TLS identity: every party recognizes TH, but no row
        // carries participant-tls.
        let th_bank = &TH.banks[0];
        for suffix in ["pem", "key.pem"] {
            let from = format!("th/banks/{}-tls.{suffix}", th_bank.bic);
            if let Some(bytes) = self.files.get(Path::new(&from)).cloned() {
                self.put(
                    &format!("fixtures/th-bank-tls-abroad/chain.{suffix}"),
                    bytes,
                );
            }
        }

        // An unlisted PKI: move XX's files under the fixture, keeping its root for inspection.
        let xx_files: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| p.starts_with("xx"))
            .cloned()
            .collect();
        for path in xx_files {
            if let Some(bytes) = self.files.remove(&path) {
                let relative = path.strip_prefix("xx").unwrap_or(&path);
                let target = Path::new("fixtures/unknown-root/pki").join(relative);
                self.files.insert(target, bytes);
            }
        }
        let xx_bank = &XX.banks[0];
        for suffix in ["pem", "key.pem"] {
            let from = format!("fixtures/unknown-root/pki/banks/{}.{suffix}", xx_bank.bic);
            if let Some(bytes) = self.files.get(Path::new(&from)).cloned() {
                self.put(&format!("fixtures/unknown-root/chain.{suffix}"), bytes);
            }
        }
    }

    /// A one-line README in each fixture directory: the verdict the table documents.
    fn fixture_readmes(&mut self) {
        for fixture in FIXTURES {
            if let Some(dir) = fixture.chain.strip_suffix("/chain.pem") {
                let line = format!(
                    "# {}\n\nVerified by {} for {} at {VALIDATION_TIME}: **{}** ({}) — {}.\n",
                    fixture.name,
                    fixture.relying,
                    fixture.purpose,
                    fixture.expected.verdict(),
                    fixture.rule(),
                    fixture.why
                );
                self.put(&format!("{dir}/README.md"), line.into_bytes());
            }
        }
    }
}

/// A payment-signing bank leaf under JP's issuing CA (ISO 3166 numeric code `number`) at the
/// high level, valid like the real banks: the base that each bank fixture changes in one respect.
fn fixture_bank(number: u32, label: &str, common_name: &str, index: u8) -> LeafSpec<'static> {
    LeafSpec {
        label: format!("fixtures/{label}"),
        common_name: common_name.to_owned(),
        organization: "Kakehashi Fixture Bank JP (fictitious)".to_owned(),
        serial: serial(number, 0x40, index),
        ekus: &[EKU_PAYMENT_SIGNING],
        policy: Some(policy_oid(number, AssuranceLevel::High)),
        not_before: LEAF_NOT_BEFORE,
        not_after: LEAF_NOT_AFTER,
        alt_names: Vec::new(),
        key: LeafKey::Ed25519,
    }
}
