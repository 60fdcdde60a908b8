//! Signature verification: Ed25519 through ed25519-dalek, ECDSA and RSA through ring.
