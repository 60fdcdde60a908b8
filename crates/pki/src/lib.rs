//! kakehashi-pki: the mutual-recognition certificate verifier.
//!
//! It owns X.509 path validation to RFC 5280 §6 (path building, signatures, validity, name
//! chaining, basic constraints, key usage, extended key usage, name constraints, certificate
//! policies, CRLs), the mutual-recognition agreement (MRA) that says which foreign anchors are
//! recognized for which purposes, the explanation of every verdict, the x509-limbo conformance
//! harness, the development PKI generator, and rustls verifier adapters.
//!
//! It takes DER bytes, trust anchors and the validation time as arguments. It must not depend
//! on tokio, tonic, sled or the wire types: `cargo tree -p kakehashi-pki` shows none of them.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cache;
pub mod cert;
pub mod crl;
pub mod devpki;
pub mod error;
pub mod limbo;
pub mod mra;
pub mod name_constraints;
pub mod path;
pub mod pem;
pub mod policy;
pub mod profile;
pub mod purpose;
pub mod signature;
pub mod time;
pub mod tls;
pub mod validate;
pub mod verdict;

pub use crate::purpose::Purpose;
pub use crate::time::UnixTime;
pub use crate::verdict::{CertRef, Check, Outcome};
