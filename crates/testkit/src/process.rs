//! Child processes of the built `kakehashi` binary, for the tests that need real processes
//! (killed with SIGKILL, stopped with SIGTERM, restarted, run from the command line as a user
//! would): the binary built through cargo and run from the repository root, free loopback
//! ports, a `kakehashi devnet` process, and [`pair`], a JP and an SG `kakehashi node run`
//! process with configurations rewritten from the committed devnet ones.
//!
//! These are test helpers: they panic, with what went wrong, when the set-up fails. Ports are
//! chosen ahead here (a process binds them itself), from a range below the kernel's ephemeral
//! range; the in-process [`crate::TestPair`] needs no choice at all.

pub mod pair;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;

/// The repository root (the workspace that holds `certs/`).
pub fn repo_root() -> PathBuf {
    // This package lives in `crates/testkit` under the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The `kakehashi` binary of the same profile as the running test, built once per test process.
///
/// Cargo only sets `CARGO_BIN_EXE_*` for tests of the package that owns the binary, so this
/// builds it through cargo itself (as escargot does), from a test binary of this workspace. The build is a no-op when
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

/// Lowest port handed to test listeners. `[PORT_FLOOR, PORT_FLOOR + PORT_SPAN)` lies below the
/// kernel's ephemeral range (32768–60999 on Linux by default), so no outgoing connection can be
/// given one of these ports between the check here and the node's own bind.
const PORT_FLOOR: u32 = 20_000;
/// How many ports the test range spans.
const PORT_SPAN: u32 = 12_000;

/// A block of `len` consecutive loopback ports that are free right now, never handed out twice
/// in one test process (concurrent tests of one binary cannot collide), and starting at an
/// offset derived from the process id (concurrent test processes rarely do).
pub fn free_ports(len: u16) -> u16 {
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let len = u32::from(len.max(1));
    let seed = std::process::id().wrapping_mul(7919);
    for _ in 0..PORT_SPAN {
        let offset = NEXT.fetch_add(len, Ordering::Relaxed);
        let base = PORT_FLOOR + seed.wrapping_add(offset) % (PORT_SPAN - len);
        let all_free = (base..base + len).all(|port| {
            u16::try_from(port).is_ok_and(|port| TcpListener::bind(("127.0.0.1", port)).is_ok())
        });
        if all_free {
            return u16::try_from(base).expect("below 32768");
        }
    }
    panic!(
        "no {len} free consecutive ports on 127.0.0.1 between {PORT_FLOOR} and {}",
        PORT_FLOOR + PORT_SPAN
    );
}

/// How far above `--base-port` the SG node of `kakehashi devnet` listens (`kakehashi devnet
/// --help`).
pub const SG_PORT_OFFSET: u16 = 100;

/// A `kakehashi devnet` process on free ports, its output in files under a scratch directory.
/// The tests that use it decide how it ends (wait, signal, kill).
pub struct DevnetProcess {
    /// The process.
    pub child: Child,
    /// Its `--base-port`: JP's public port; SG's is [`SG_PORT_OFFSET`] above.
    pub base: u16,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl DevnetProcess {
    /// Starts `kakehashi devnet --base-port N --data-dir DATA_DIR [extra...]` from the
    /// repository root, without the caller's `KAKEHASHI_LOG`, after `configure` had its say
    /// (environment for fault injection, for instance).
    pub fn spawn(
        data_dir: &Path,
        scratch: &Path,
        extra: &[&str],
        configure: impl FnOnce(&mut Command),
    ) -> Self {
        let base = free_ports(SG_PORT_OFFSET + 3);
        let stdout = scratch.join("devnet.stdout");
        let stderr = scratch.join("devnet.stderr");
        let mut command = Command::new(kakehashi_bin());
        command
            .current_dir(repo_root())
            .args(["devnet", "--base-port", &base.to_string(), "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env_remove("KAKEHASHI_LOG")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        configure(&mut command);
        let child = command.spawn().expect("start kakehashi devnet");
        Self {
            child,
            base,
            stdout,
            stderr,
        }
    }

    /// The public address of the node of `jurisdiction` (`JP` or `SG`).
    pub fn url(&self, jurisdiction: &str) -> String {
        let port = if jurisdiction == "JP" {
            self.base
        } else {
            self.base + SG_PORT_OFFSET
        };
        format!("https://127.0.0.1:{port}")
    }

    /// What it printed so far, for assertion messages.
    pub fn logs(&self) -> String {
        format!(
            "devnet stdout:\n{}\ndevnet stderr:\n{}",
            std::fs::read_to_string(&self.stdout).unwrap_or_default(),
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        )
    }

    /// Its standard output so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// Its standard error so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}
