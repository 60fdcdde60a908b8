//! Why a payment, quote or signed object was refused: an ISO 20022 `ExternalStatusReason1Code`
//! (the pacs.002 `StsRsnInf/Rsn/Cd` values kakehashi uses) plus a detail a person can act on.
//!
//! Every check in the node's domain modules ends in a [`Rejection`]; the service layer maps it to
//! the wire (`status_reason_code` / `status_reason_detail`) in one place.

use serde::Serialize;

/// An ISO 20022 external status reason code (ExternalStatusReason1Code).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum ReasonCode {
    /// AB05 TimeoutCreditorAgent: the quote or instruction expired before it could settle.
    #[serde(rename = "AB05")]
    Ab05,
    /// AC01 IncorrectAccountNumber: the account does not exist.
    #[serde(rename = "AC01")]
    Ac01,
    /// AC04 ClosedAccountNumber: the account is closed.
    #[serde(rename = "AC04")]
    Ac04,
    /// AM04 InsufficientFunds: the debtor's funds or the corridor's liquidity do not cover it.
    #[serde(rename = "AM04")]
    Am04,
    /// DS0B: the data signature or the signer's certificate is not valid or not recognized.
    #[serde(rename = "DS0B")]
    Ds0b,
    /// DUPL DuplicatePayment: this UETR was already used for a different instruction.
    #[serde(rename = "DUPL")]
    Dupl,
    /// FF01 InvalidFileFormat: the message is malformed or a field is out of range.
    #[serde(rename = "FF01")]
    Ff01,
    /// RR04 RegulatoryReason: sanctions screening or a regulatory limit refused it.
    #[serde(rename = "RR04")]
    Rr04,
}

impl ReasonCode {
    /// Every code, in alphabetical order.
    pub const ALL: [Self; 8] = [
        Self::Ab05,
        Self::Ac01,
        Self::Ac04,
        Self::Am04,
        Self::Ds0b,
        Self::Dupl,
        Self::Ff01,
        Self::Rr04,
    ];

    /// The four-character code as ISO 20022 writes it, e.g. `"AC01"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ab05 => "AB05",
            Self::Ac01 => "AC01",
            Self::Ac04 => "AC04",
            Self::Am04 => "AM04",
            Self::Ds0b => "DS0B",
            Self::Dupl => "DUPL",
            Self::Ff01 => "FF01",
            Self::Rr04 => "RR04",
        }
    }

    /// Parses the exact four-character code (upper case, as on the wire).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// A short English meaning, for status tables and logs.
    pub fn meaning(self) -> &'static str {
        match self {
            Self::Ab05 => "timeout: the quote or instruction expired",
            Self::Ac01 => "incorrect account number: no such account",
            Self::Ac04 => "closed account number",
            Self::Am04 => "insufficient funds or corridor liquidity",
            Self::Ds0b => "signature or signer certificate not valid or not recognized",
            Self::Dupl => "duplicate payment",
            Self::Ff01 => "invalid format",
            Self::Rr04 => "regulatory reason (sanctions or limits)",
        }
    }
}

impl std::fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal: the reason code and a detail that names the field or rule and the limit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct Rejection {
    /// The ISO 20022 reason code.
    pub code: ReasonCode,
    /// What was wrong, for a person to act on.
    pub detail: String,
}

impl Rejection {
    /// A rejection with `code` and `detail`.
    pub fn new(code: ReasonCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }

    /// An FF01 (invalid format) rejection.
    pub fn format(detail: impl Into<String>) -> Self {
        Self::new(ReasonCode::Ff01, detail)
    }

    /// A DS0B (signature or certificate) rejection.
    pub fn signature(detail: impl Into<String>) -> Self {
        Self::new(ReasonCode::Ds0b, detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_their_text() {
        for code in ReasonCode::ALL {
            assert_eq!(code.as_str().len(), 4);
            assert_eq!(ReasonCode::parse(code.as_str()), Some(code));
            assert_eq!(code.to_string(), code.as_str());
            assert!(!code.meaning().is_empty());
        }
    }

    #[test]
    fn parse_refuses_unknown_and_lower_case_codes() {
        assert_eq!(ReasonCode::parse("ac01"), None);
        assert_eq!(ReasonCode::parse("AC02"), None);
        assert_eq!(ReasonCode::parse(""), None);
        assert_eq!(ReasonCode::parse("AC01 "), None);
    }

    #[test]
    fn codes_serialize_as_their_iso_text() {
        for code in ReasonCode::ALL {
            let json = serde_json::to_string(&code).expect("a unit variant serializes");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn rejection_displays_code_then_detail() {
        let r = Rejection::new(ReasonCode::Am04, "debtor account 1001 has 5 JPY, needs 10");
        assert_eq!(
            r.to_string(),
            "AM04: debtor account 1001 has 5 JPY, needs 10"
        );
        assert_eq!(Rejection::format("x").code, ReasonCode::Ff01);
        assert_eq!(Rejection::signature("x").code, ReasonCode::Ds0b);
    }
}
