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
//!
//! # Public API
//!
//! The entry points are re-exported here: [`verify_chain`] with [`ValidationOptions`] for one
//! chain, [`Mra`] and [`Mra::recognize`] for recognition under the agreement, [`Cert`] for
//! parsing. The modules group the rest:
//!
//! - [`cert`], [`pem`]: parsing certificates, bundles and PEM-or-DER files;
//! - [`validate`]: RFC 5280 §6.1 path validation, its options, bounds and results;
//! - [`crl`], [`policy`], [`signature`], [`purpose`]: revocation, certificate policies,
//!   signature algorithms and the purposes with their extended key usages;
//! - [`mra`]: the agreement and recognition verdicts; [`cache`]: repeat-verification caches;
//! - [`anchors`]: a chain judged against a plain bundle of trust anchors (a system CA bundle),
//!   outside any agreement, with the same explained verdict ([`anchors::ChainVerdict`]);
//! - [`tls`]: the rustls verifiers for node mutual TLS; [`error`]: the path-validation error;
//! - [`danger`]: what switches a safeguard off (recognition under an agreement not signed by
//!   every party), kept apart and named so every use stands out.
//!
//! What the verifier concludes is a proof type: a [`RecognitionVerdict`] is made only by
//! [`Mra::recognize`] (fields private to the crate, no public constructor, `Default` or
//! `Deserialize`), so a caller holding one knows the verifier produced it.
//!
//! Path building, name constraints and the web-PKI profile rules are internal; the search
//! bounds ([`validate::Budget`]) and the profile choice ([`validate::Profile`],
//! [`validate::PeerName`]) are options in [`validate`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod anchors;
pub mod cache;
pub mod cert;
pub mod crl;
pub mod danger;
pub mod error;
pub mod mra;
pub mod pem;
pub mod policy;
pub mod purpose;
pub mod signature;
pub mod tls;
pub mod validate;

mod name_constraints;
mod path;
mod profile;
mod time;
mod verdict;

pub use crate::cert::Cert;
pub use crate::mra::{Mra, RecognitionVerdict};
pub use crate::purpose::Purpose;
pub use crate::time::UnixTime;
pub use crate::validate::{ValidatedPath, ValidationOptions, verify_chain};
pub use crate::verdict::{CertRef, Check, Outcome};
