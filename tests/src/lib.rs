//! Shared helpers for the end-to-end tests: locating the built `kakehashi` binary and the repository.
#![forbid(unsafe_code)]
