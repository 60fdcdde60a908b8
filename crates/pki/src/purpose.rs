//! The purposes a mutual-recognition agreement recognizes a foreign PKI for, and the extended
//! key usages (RFC 5280 §4.2.1.12) a leaf must carry for each.
//!
//! kakehashi's own OIDs live under a UUID arc (ITU-T X.667, `2.25.<uuid>`), which needs no
//! registration and cannot collide with another organisation's arc.

use serde::{Deserialize, Serialize};

/// The root of kakehashi's private OID arc: `2.25.` followed by a UUID as an integer.
pub const KAKEHASHI_ARC: &str = "2.25.128136148999515510376338397963583368341";

/// id-kp-serverAuth (RFC 5280 §4.2.1.12).
pub const EKU_SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";
/// id-kp-clientAuth (RFC 5280 §4.2.1.12).
pub const EKU_CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";
/// kakehashi payment-instruction signing: `KAKEHASHI_ARC.1.1`.
pub const EKU_PAYMENT_SIGNING: &str = "2.25.128136148999515510376338397963583368341.1.1";
/// kakehashi receipt signing: `KAKEHASHI_ARC.1.2`.
pub const EKU_RECEIPT_SIGNING: &str = "2.25.128136148999515510376338397963583368341.1.2";
/// kakehashi participant TLS (a bank's client identity on a node's public listener):
/// `KAKEHASHI_ARC.1.3`, asserted next to clientAuth.
pub const EKU_PARTICIPANT_TLS: &str = "2.25.128136148999515510376338397963583368341.1.3";
/// kakehashi node operator (the client identity allowed the operator RPCs):
/// `KAKEHASHI_ARC.1.4`, asserted next to clientAuth.
pub const EKU_OPERATOR: &str = "2.25.128136148999515510376338397963583368341.1.4";

/// What a certificate is being relied on for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Purpose {
    /// A node's TLS identity, as server or client of mutual TLS.
    NodeTls,
    /// A participant bank signing payment instructions.
    PaymentSigning,
    /// A node signing payment receipts.
    ReceiptSigning,
    /// A participant bank's TLS client identity on a node's public listener; the bank's BIC is
    /// the subject common name, as for payment signing.
    ParticipantTls,
    /// A node operator's TLS client identity. Recognized only by the operator's own
    /// jurisdiction: an agreement row may not carry it ([`Purpose::foreign_recognition_allowed`]).
    Operator,
}

impl Purpose {
    /// Every purpose, in a stable order for listings.
    pub const ALL: [Self; 5] = [
        Self::NodeTls,
        Self::PaymentSigning,
        Self::ReceiptSigning,
        Self::ParticipantTls,
        Self::Operator,
    ];

    /// The name used in the MRA file and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NodeTls => "node-tls",
            Self::PaymentSigning => "payment-signing",
            Self::ReceiptSigning => "receipt-signing",
            Self::ParticipantTls => "participant-tls",
            Self::Operator => "operator",
        }
    }

    /// Parses the MRA / command-line name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == text)
    }

    /// The extended key usages a leaf must assert for this purpose; any one suffices. Node TLS
    /// certificates serve both ends of mutual TLS, so either TLS usage is accepted here and the
    /// TLS adapters ask for the one their side needs.
    pub fn required_ekus(self) -> &'static [&'static str] {
        match self {
            Self::NodeTls => &[EKU_SERVER_AUTH, EKU_CLIENT_AUTH],
            Self::PaymentSigning => &[EKU_PAYMENT_SIGNING],
            Self::ReceiptSigning => &[EKU_RECEIPT_SIGNING],
            Self::ParticipantTls => &[EKU_PARTICIPANT_TLS],
            Self::Operator => &[EKU_OPERATOR],
        }
    }

    /// The EKU a leaf must assert *literally* for this purpose, beyond what path validation
    /// accepts (which lets a leaf without an EKU extension, or one asserting
    /// anyExtendedKeyUsage under the RFC 5280 profile, through). Set for the two client
    /// identities, so that neither a node nor a bank certificate can ever pass for an operator,
    /// nor a node certificate for a bank. `None` for the older purposes, which keep their rules.
    pub fn marker_eku(self) -> Option<&'static str> {
        match self {
            Self::ParticipantTls => Some(EKU_PARTICIPANT_TLS),
            Self::Operator => Some(EKU_OPERATOR),
            Self::NodeTls | Self::PaymentSigning | Self::ReceiptSigning => None,
        }
    }

    /// Whether a recognition row of the agreement (one jurisdiction relying on another's PKI)
    /// may carry this purpose. An operator is a local identity: only its own jurisdiction
    /// recognizes it (MRA §self-recognition), so no foreign PKI can mint operators of a node.
    /// A foreign bank's participant TLS may be recognized (a bank that holds accounts at a
    /// foreign node directly); what it may see is decided by its BIC, not by the row.
    pub fn foreign_recognition_allowed(self) -> bool {
        !matches!(self, Self::Operator)
    }
}

impl std::fmt::Display for Purpose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purpose_names_round_trip() {
        for p in Purpose::ALL {
            assert_eq!(Purpose::parse(p.as_str()), Some(p));
        }
        assert_eq!(Purpose::parse("server-auth"), None);
    }

    #[test]
    fn private_ekus_sit_under_the_kakehashi_arc() {
        assert!(EKU_PAYMENT_SIGNING.starts_with(KAKEHASHI_ARC));
        assert!(EKU_RECEIPT_SIGNING.starts_with(KAKEHASHI_ARC));
        assert!(EKU_PARTICIPANT_TLS.starts_with(KAKEHASHI_ARC));
        assert!(EKU_OPERATOR.starts_with(KAKEHASHI_ARC));
        let all = [
            EKU_PAYMENT_SIGNING,
            EKU_RECEIPT_SIGNING,
            EKU_PARTICIPANT_TLS,
            EKU_OPERATOR,
        ];
        let distinct: std::collections::BTreeSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), all.len());
    }

    #[test]
    fn only_the_client_identities_need_a_literal_marker_and_operators_stay_local() {
        for p in Purpose::ALL {
            let marker = p.marker_eku();
            assert_eq!(
                marker.is_some(),
                matches!(p, Purpose::ParticipantTls | Purpose::Operator)
            );
            if let Some(m) = marker {
                assert_eq!(p.required_ekus(), &[m]);
            }
            assert_eq!(p.foreign_recognition_allowed(), p != Purpose::Operator);
        }
    }
}
