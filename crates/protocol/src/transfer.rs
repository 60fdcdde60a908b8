//! What a node's ledger transfers are for, and their ids: shared by the engine that writes them
//! and the audits that read them back.

use sha2::{Digest, Sha256};

/// Ledger transfer codes: what a transfer was for, as the audit and export show it.
pub mod codes {
    /// Genesis funding from the configuration.
    pub const GENESIS: u16 = 100;
    /// Operator cash-in (FundAccount).
    pub const FUNDING: u16 = 101;
    /// Outbound reservation (pending), posted or voided by the receiver's decision.
    pub const OUTBOUND: u16 = 201;
    /// Inbound credit from a corridor's liquidity account.
    pub const INBOUND: u16 = 301;
}

/// A ledger transfer id derived from the payment: SHA-256 of a domain, the step and the UETR,
/// first 16 bytes. Zero and `u128::MAX` are reserved by the ledger and are 2^-127 likely.
pub fn transfer_id(step: &[u8], subject: &[u8]) -> u128 {
    let mut hash = Sha256::new();
    hash.update(b"kakehashi-transfer-v1\n");
    hash.update(step);
    hash.update(b"\n");
    hash.update(subject);
    let digest = hash.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    match u128::from_be_bytes(first) {
        0 | u128::MAX => 1,
        id => id,
    }
}
