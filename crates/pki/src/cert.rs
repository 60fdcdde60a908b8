//! An owned, parsed view of one X.509 certificate: the fields path validation reads.
//!
//! Bootstrap placeholder; the module's owner replaces it.

/// One parsed certificate.
#[derive(Clone, Debug)]
pub struct Cert {
    /// The certificate's DER encoding.
    pub der: Vec<u8>,
}
