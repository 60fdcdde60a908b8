//! Helpers shared by the test modules.

use std::path::{Path, PathBuf};

/// The committed development PKI and agreement (`certs/` at the repository root).
pub(crate) fn certs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../certs")
}

/// The seed `certs/` was generated from (`certs/dev-seed.txt`).
pub(crate) fn committed_seed() -> String {
    std::fs::read_to_string(certs_dir().join("dev-seed.txt"))
        .expect("certs/dev-seed.txt")
        .trim_end()
        .to_owned()
}
