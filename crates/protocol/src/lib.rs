//! kakehashi-protocol: the objects and rules both sides of a payment share.
//!
//! Money and FX rates ([`money`]), ISO 20022 reason codes ([`reason`]), signed envelopes and
//! the trust that verifies them under the mutual-recognition agreement ([`signed`]),
//! pacs.008-style instructions and UETRs ([`instruction`]), FX quotes ([`quote`]), settlement
//! receipts and receipt files ([`receipt`]), pacs.002 status names ([`status`]), what a node's
//! ledger transfers are for and their ids ([`transfer`]), a bank's identity with the
//! instruction builder ([`bank`]), and ISO 20022 XML messages at the edge ([`iso20022`]).
//!
//! The sending node, the receiving node, participants and auditors all apply these same
//! functions, so a rule cannot differ between them. The crate has no runtime: it must not
//! depend on tokio, sled or tonic (it takes the wire messages from `kakehashi-proto` without
//! that crate's gRPC services).
#![forbid(unsafe_code)]

pub mod bank;
pub mod instruction;
pub mod iso20022;
pub mod money;
pub mod quote;
pub mod reason;
pub mod receipt;
pub mod signed;
pub mod status;
pub mod transfer;
