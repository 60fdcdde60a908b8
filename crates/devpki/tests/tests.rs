//! kakehashi-devpki's integration tests: one binary (as ripgrep's `tests/tests.rs`), one module
//! per concern, each through the public API only.

// Shared helpers: where the committed development PKI lives, and its seed.
mod util;

// The committed `certs/` is the generator's output for its seed; the agreement is signed.
mod certs;
// Every fixture of the table gets its documented verdict; openssl agrees where it can judge.
mod fixtures;
