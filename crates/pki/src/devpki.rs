//! The development PKI generator behind `kakehashi pki init`.
