//! kakehashi-pki: the mutual-recognition certificate verifier.
//!
//! It owns X.509 path validation to RFC 5280 §6 (path building, signatures, validity, name
//! chaining, basic constraints, key usage, extended key usage, name constraints, certificate
//! policies, CRLs), the mutual-recognition agreement (MRA) that says which foreign anchors are
//! recognized for which purposes, the explanation of every verdict, and rustls verifier
//! adapters. The development PKI generator and the x509-limbo conformance harness live in
//! `kakehashi-devpki`, which depends on this crate.
//!
//! It takes DER bytes, trust anchors and the validation time as arguments. It must not depend
//! on tokio, tonic, sled, tracing, the ledger or the wire types, nor on a certificate generator
//! (rcgen, p256): `cargo tree -e normal -p kakehashi-pki` shows none of them.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cache;
pub mod cert;
pub mod crl;
pub mod error;
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
