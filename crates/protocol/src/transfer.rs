//! What a node's ledger transfers are for, and their ids: shared by the engine that writes them
//! and the audits that read them back.

use sha2::{Digest, Sha256};

/// Ledger transfer codes: what a transfer was for, as the audit and export show it.
pub mod codes {
    /// Genesis funding from the configuration.
    pub const GENESIS: u16 = 100;
    /// Operator cash-in (FundAccount).
    pub const FUNDING: u16 = 101;
    /// The operator closes a customer account (CloseAccount): a pending transfer of 0 with
    /// `closing_debit` from the account to the funding account, which moves nothing and
    /// closes the account in the ledger; voiding it (ReopenAccount) reopens the account.
    pub const CLOSING: u16 = 102;
    /// The balance of an account being closed, moved to another account in the same linked
    /// chain as its closing transfer (`balancing_debit`: whatever the account holds).
    pub const SWEEP: u16 = 103;
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

/// The id of the receiver's credit of the payment `uetr` sent by the jurisdiction `sender`: the
/// `credit` step over the sender's code (length first) and the UETR. A UETR is chosen by the
/// paying bank, so two corridors may carry the same one; deriving the credit from both keeps
/// one peer's payment from ever taking the credit id of another peer's payment.
pub fn credit_transfer_id(sender: &str, uetr: &[u8; 16]) -> u128 {
    let code = sender.as_bytes();
    // Agreement codes are two letters; the bound only keeps this function total.
    let code = &code[..code.len().min(usize::from(u16::MAX))];
    let len = u16::try_from(code.len()).unwrap_or(u16::MAX);
    let mut subject = Vec::with_capacity(2 + code.len() + uetr.len());
    subject.extend_from_slice(&len.to_be_bytes());
    subject.extend_from_slice(code);
    subject.extend_from_slice(uetr);
    transfer_id(b"credit", &subject)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credit_ids_differ_by_sender_and_uetr() {
        let uetr = [7; 16];
        let jp = credit_transfer_id("JP", &uetr);
        assert_eq!(jp, credit_transfer_id("JP", &uetr));
        assert_ne!(jp, credit_transfer_id("TH", &uetr));
        assert_ne!(jp, credit_transfer_id("JP", &[8; 16]));
        // Not the UETR-only derivation of earlier versions, nor another step's id.
        assert_ne!(jp, transfer_id(b"credit", &uetr));
        assert_ne!(jp, transfer_id(b"reserve", &uetr));
    }
}
