//! The jurisdictions of the development PKI, their banks, and the fixed dates and serial
//! numbers everything is issued with, so that the same seed gives the same bytes.

use kakehashi_pki::mra::AssuranceLevel;
use time::OffsetDateTime;
use time::macros::datetime;

/// Roots: 2025-01-01 → 2045-01-01, twenty years, so nothing rots while the project lives.
pub(crate) const ROOT_NOT_BEFORE: OffsetDateTime = datetime!(2025-01-01 00:00:00 UTC);
pub(crate) const ROOT_NOT_AFTER: OffsetDateTime = datetime!(2045-01-01 00:00:00 UTC);
/// Issuing CAs end a year before their roots, as real hierarchies nest validity.
pub(crate) const ISSUING_NOT_BEFORE: OffsetDateTime = datetime!(2025-01-01 00:00:00 UTC);
pub(crate) const ISSUING_NOT_AFTER: OffsetDateTime = datetime!(2044-01-01 00:00:00 UTC);
/// Participant and node certificates: ten years from mid-2025.
pub(crate) const LEAF_NOT_BEFORE: OffsetDateTime = datetime!(2025-06-01 00:00:00 UTC);
pub(crate) const LEAF_NOT_AFTER: OffsetDateTime = datetime!(2035-06-01 00:00:00 UTC);
/// The expired fixture ends in 2025, before any pinned validation time.
pub(crate) const EXPIRED_NOT_BEFORE: OffsetDateTime = datetime!(2025-01-01 00:00:00 UTC);
pub(crate) const EXPIRED_NOT_AFTER: OffsetDateTime = datetime!(2025-12-31 23:59:59 UTC);
/// The expired node TLS fixture: a one-year certificate that ended on 2026-02-01. Nodes check
/// their peers at the real clock, so it must already be expired on the day it was added
/// (2026-11-28) as well as at the pinned validation time.
pub(crate) const NODE_EXPIRED_NOT_BEFORE: OffsetDateTime = datetime!(2025-02-01 00:00:00 UTC);
pub(crate) const NODE_EXPIRED_NOT_AFTER: OffsetDateTime = datetime!(2026-02-01 00:00:00 UTC);
/// The not-yet-valid fixture starts in 2040.
pub(crate) const FUTURE_NOT_BEFORE: OffsetDateTime = datetime!(2040-01-01 00:00:00 UTC);
pub(crate) const FUTURE_NOT_AFTER: OffsetDateTime = datetime!(2042-01-01 00:00:00 UTC);
/// CRLs: issued mid-2025; nextUpdate far ahead so that committed CRLs stay current in tests.
pub(crate) const CRL_THIS_UPDATE: OffsetDateTime = datetime!(2025-06-01 00:00:00 UTC);
pub(crate) const CRL_NEXT_UPDATE: OffsetDateTime = datetime!(2044-01-01 00:00:00 UTC);
pub(crate) const REVOCATION_TIME: OffsetDateTime = datetime!(2025-09-01 00:00:00 UTC);
/// The agreement and its recognition rows.
pub(crate) const MRA_NOT_BEFORE: &str = "2026-01-01T00:00:00Z";
pub(crate) const MRA_NOT_AFTER: &str = "2046-01-01T00:00:00Z";
pub(crate) const ROW_NOT_BEFORE: &str = "2026-01-01T00:00:00Z";
pub(crate) const ROW_NOT_AFTER: &str = "2036-01-01T00:00:00Z";

/// Serial indices of the node fixtures under JP's issuing CA (kind 0x40, after the six bank
/// fixtures), so the CRL entry and the README name the same serial.
pub(crate) const NODE_EXPIRED_INDEX: u8 = 7;
pub(crate) const NODE_REVOKED_INDEX: u8 = 8;

/// One jurisdiction of the development PKI.
pub(crate) struct JurisdictionSpec {
    pub(crate) code: &'static str,
    pub(crate) name: &'static str,
    pub(crate) currency: &'static str,
    /// ISO 3166-1 numeric code; it names the jurisdiction's policy arc and its serials.
    pub(crate) number: u32,
    pub(crate) banks: &'static [BankSpec],
    /// Whether the jurisdiction is a party to the agreement.
    pub(crate) in_mra: bool,
    /// Whether it runs a node (node TLS and receipt-signing certificates).
    pub(crate) has_node: bool,
}

pub(crate) struct BankSpec {
    pub(crate) bic: &'static str,
    pub(crate) name: &'static str,
    pub(crate) level: AssuranceLevel,
    pub(crate) revoked: bool,
}

// BICs whose eighth character is '0' are SWIFT test-and-training codes, never live banks; the
// four-letter bank codes and names below are invented for this project.
pub(crate) const JP: JurisdictionSpec = JurisdictionSpec {
    code: "JP",
    name: "Japan",
    currency: "JPY",
    number: 392,
    banks: &[
        BankSpec {
            bic: "KKHAJPJ0",
            name: "Kakehashi Alpha Bank JP (fictitious)",
            level: AssuranceLevel::High,
            revoked: false,
        },
        BankSpec {
            bic: "KKHBJPJ0",
            name: "Kakehashi Beta Bank JP (fictitious)",
            level: AssuranceLevel::Substantial,
            revoked: false,
        },
        BankSpec {
            bic: "KKHCJPJ0",
            name: "Kakehashi Gamma Bank JP (fictitious)",
            level: AssuranceLevel::Substantial,
            revoked: true,
        },
    ],
    in_mra: true,
    has_node: true,
};

pub(crate) const SG: JurisdictionSpec = JurisdictionSpec {
    code: "SG",
    name: "Singapore",
    currency: "SGD",
    number: 702,
    banks: &[
        BankSpec {
            bic: "KKHASGS0",
            name: "Kakehashi Alpha Bank SG (fictitious)",
            level: AssuranceLevel::High,
            revoked: false,
        },
        BankSpec {
            bic: "KKHBSGS0",
            name: "Kakehashi Beta Bank SG (fictitious)",
            level: AssuranceLevel::Substantial,
            revoked: false,
        },
        BankSpec {
            bic: "KKHCSGS0",
            name: "Kakehashi Gamma Bank SG (fictitious)",
            level: AssuranceLevel::Substantial,
            revoked: true,
        },
    ],
    in_mra: true,
    has_node: true,
};

/// Thailand, the third party: recognized by JP and SG and recognizing them as they recognize
/// each other, with a node, so that three jurisdictions settle with each other from data only.
pub(crate) const TH: JurisdictionSpec = JurisdictionSpec {
    code: "TH",
    name: "Thailand",
    currency: "THB",
    number: 764,
    banks: &[BankSpec {
        bic: "KKHATHB0",
        name: "Kakehashi Alpha Bank TH (fictitious)",
        level: AssuranceLevel::High,
        revoked: false,
    }],
    in_mra: true,
    has_node: true,
};

/// A PKI the agreement does not mention at all. ISO 3166 reserves numeric codes 900–999 and
/// alpha-2 `XX` for user assignment, so neither names a real country.
pub(crate) const XX: JurisdictionSpec = JurisdictionSpec {
    code: "XX",
    name: "Unlisted",
    currency: "XXX",
    number: 999,
    banks: &[BankSpec {
        bic: "KKHAXXX0",
        name: "Kakehashi Alpha Bank XX (fictitious)",
        level: AssuranceLevel::High,
        revoked: false,
    }],
    in_mra: false,
    has_node: false,
};
