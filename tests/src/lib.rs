//! Shared helpers for the end-to-end tests: the path of the built `kakehashi` binary and of the
//! repository, so tests drive the real program as a user would.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The repository root (the workspace that holds `certs/`).
pub fn repo_root() -> PathBuf {
    // This package lives in `tests/` directly under the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The `kakehashi` binary of the same profile as the running test, built once per test process.
///
/// Cargo only sets `CARGO_BIN_EXE_*` for tests of the package that owns the binary, so the e2e
/// package builds it through cargo itself (as escargot does). The build is a no-op when
/// `cargo test --workspace` already built it.
pub fn kakehashi_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test executable path");
        // target/<profile>/deps/<test-binary>: the binary sits in target/<profile>/.
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target profile directory");
        let release = profile_dir
            .file_name()
            .is_some_and(|name| name == "release");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build.current_dir(repo_root()).args([
            "build",
            "--quiet",
            "-p",
            "kakehashi",
            "--bin",
            "kakehashi",
        ]);
        if release {
            build.arg("--release");
        }
        let status = build
            .status()
            .expect("run cargo build for the kakehashi binary");
        assert!(status.success(), "cargo build -p kakehashi failed");
        let bin = profile_dir.join(format!("kakehashi{}", std::env::consts::EXE_SUFFIX));
        assert!(
            bin.is_file(),
            "kakehashi binary not found at {}",
            bin.display()
        );
        bin
    })
}

/// Runs `kakehashi` with `args` from the repository root and returns its output.
pub fn kakehashi(args: &[&str]) -> Output {
    Command::new(kakehashi_bin())
        .current_dir(repo_root())
        .args(args)
        .env_remove("KAKEHASHI_LOG")
        .output()
        .expect("run kakehashi")
}
