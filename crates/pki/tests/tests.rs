//! kakehashi-pki's integration tests: one binary (as ripgrep's `tests/tests.rs`), one module
//! per concern, each through the public API only.

// Shared helpers: where the committed development PKI lives.
mod util;

// The rustls adapters in real handshakes on 127.0.0.1, under the committed agreement.
mod tls;
// The path validator's RFC 5280 rules, a positive and a negative case each, on rcgen chains.
mod verifier;
