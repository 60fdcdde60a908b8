//! Certificate revocation lists (RFC 5280 §5, §6.3).
//!
//! Interface fixed during bootstrap; the checks are filled in by the module's owner.

use crate::cert::Cert;
use crate::time::UnixTime;
use crate::verdict::Check;

/// How revocation is checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RevocationMode {
    /// No revocation checking.
    Off,
    /// Check each certificate that a supplied CRL covers; uncovered certificates pass.
    #[default]
    IfAvailable,
    /// Every certificate on the path (not the anchor) must be covered by a valid CRL (PKITS).
    Required,
}

/// A set of parsed CRLs supplied by the caller.
#[derive(Clone, Debug, Default)]
pub struct CrlSet {
    ders: Vec<Vec<u8>>,
}

impl CrlSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one DER-encoded CRL.
    pub fn add_der(&mut self, der: &[u8]) -> Result<(), CrlError> {
        self.ders.push(der.to_vec());
        Ok(())
    }

    /// True when no CRL was supplied.
    pub fn is_empty(&self) -> bool {
        self.ders.is_empty()
    }
}

/// Why revocation checking rejected a certificate.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CrlError {
    /// The certificate at `index` (0 = leaf) is revoked.
    #[error("certificate {index} is revoked")]
    Revoked {
        /// Path position, 0 = leaf.
        index: usize,
    },
    /// Not yet implemented: fail closed.
    #[error("revocation checking is not implemented yet")]
    Unimplemented,
}

/// Checks every certificate of `path` (leaf first; the last element is the trust anchor, which
/// is not itself checked) against `crls` at `now`, appending one check per certificate.
pub fn check_path(
    path: &[&Cert],
    crls: &CrlSet,
    now: UnixTime,
    mode: RevocationMode,
    checks: &mut Vec<Check>,
) -> Result<(), CrlError> {
    let _ = (path, now, checks);
    match mode {
        RevocationMode::Off => Ok(()),
        RevocationMode::IfAvailable if crls.is_empty() => Ok(()),
        _ => Err(CrlError::Unimplemented),
    }
}
