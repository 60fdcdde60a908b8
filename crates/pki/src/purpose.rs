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
}

impl Purpose {
    /// Every purpose, in a stable order for listings.
    pub const ALL: [Self; 3] = [Self::NodeTls, Self::PaymentSigning, Self::ReceiptSigning];

    /// The name used in the MRA file and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NodeTls => "node-tls",
            Self::PaymentSigning => "payment-signing",
            Self::ReceiptSigning => "receipt-signing",
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
        }
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
        assert_ne!(EKU_PAYMENT_SIGNING, EKU_RECEIPT_SIGNING);
    }
}
