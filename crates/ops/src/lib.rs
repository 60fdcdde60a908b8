//! kakehashi-ops: the tools an operator or an auditor runs around a node pair.
//!
//! - [`pair_audit`]: reads two nodes' books offline and checks that they agree on every
//!   payment (`kakehashi ledger pair-audit`).
//! - [`replay`]: the transaction-file format of `kakehashi replay` and its validation.
//! - [`load`]: the relay load generator behind `kakehashi bench`.
//!
//! It uses only the public API of the node, protocol, ledger and pki crates; nothing in a
//! running node depends on it.
#![forbid(unsafe_code)]

pub mod load;
pub mod pair_audit;
pub mod replay;

/// Fixtures for the unit tests: the committed development PKI and agreement.
#[cfg(test)]
mod test_support {
    use std::path::PathBuf;

    use ed25519_dalek::SigningKey;
    use ed25519_dalek::pkcs8::DecodePrivateKey as _;
    use kakehashi_pki::UnixTime;
    use kakehashi_pki::mra::Mra;

    /// `certs/<relative>` at the repository root, two levels above this crate.
    pub(crate) fn certs(relative: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../certs")
            .join(relative)
    }

    /// The committed agreement, signed by JP, SG and TH.
    pub(crate) fn mra() -> Mra {
        Mra::load(&certs("mra.toml")).expect("certs/mra.toml loads")
    }

    /// The DER certificates of a PEM chain file under certs/, leaf first.
    pub(crate) fn chain(relative: &str) -> Vec<Vec<u8>> {
        let bytes = std::fs::read(certs(relative)).expect("chain file");
        kakehashi_pki::pem::blocks_or_der(&bytes, "CERTIFICATE").expect("PEM chain")
    }

    /// A PKCS#8 PEM Ed25519 key under certs/.
    pub(crate) fn key(relative: &str) -> SigningKey {
        let text = std::fs::read_to_string(certs(relative)).expect("key file");
        SigningKey::from_pkcs8_pem(&text).expect("PKCS#8 Ed25519 key")
    }

    /// Inside every dev certificate's validity and the agreement's window.
    pub(crate) fn at_2027() -> UnixTime {
        UnixTime::parse_rfc3339("2027-01-01T00:00:00Z").expect("time")
    }
}
