//! What a ledger account is for. One kind serves the configuration (`kind = "customer"` in an
//! `[[account]]`), the payment store's account metadata, the ledger's account `code` and the
//! `kind` of an `AccountBalance` on the wire.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The role of an account in the node's ledger. The configuration, the payment store and the
/// API all write it as its lowercase name ([`AccountKind::as_str`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountKind {
    /// Holds the reservations of outgoing payments to one peer, posted when the peer settles
    /// (what this node owes the peer).
    Corridor,
    /// A bank's customer account; payments debit and credit these, and it may not go below
    /// zero.
    Customer,
    /// The node's cash-in account: opening balances and FundAccount come from it, so its
    /// balance is negative by the amount issued.
    Funding,
    /// Pre-funded money that credits of incoming payments from one peer come from; it may not
    /// go below zero (a payment beyond it is AM04).
    Liquidity,
}

impl AccountKind {
    /// The ledger `code` of accounts of this kind.
    pub fn ledger_code(self) -> u16 {
        match self {
            Self::Customer => 1,
            Self::Corridor => 2,
            Self::Liquidity => 3,
            Self::Funding => 4,
        }
    }

    /// The name used in the configuration, the payment store and on the wire
    /// (`AccountBalance.kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Corridor => "corridor",
            Self::Customer => "customer",
            Self::Funding => "funding",
            Self::Liquidity => "liquidity",
        }
    }
}

impl fmt::Display for AccountKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [AccountKind; 4] = [
        AccountKind::Corridor,
        AccountKind::Customer,
        AccountKind::Funding,
        AccountKind::Liquidity,
    ];

    #[test]
    fn serde_names_are_the_names_the_api_shows() {
        for kind in ALL {
            let json = serde_json::to_string(&kind).expect("serialize");
            assert_eq!(json, format!("\"{kind}\""));
            let back: AccountKind = serde_json::from_str(&json).expect("deserialize");
            assert_eq!(back, kind);
        }
    }

    #[test]
    fn ledger_codes_are_distinct_and_never_zero() {
        let codes: std::collections::BTreeSet<u16> = ALL.iter().map(|k| k.ledger_code()).collect();
        assert_eq!(codes.len(), ALL.len());
        assert!(!codes.contains(&0));
    }
}
