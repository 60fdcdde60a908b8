//! Helpers shared by the test modules.

use std::path::{Path, PathBuf};

/// The committed development PKI and agreement (`certs/` at the repository root).
pub(crate) fn certs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../certs")
}
