//! Shared helpers for the end-to-end tests: the path of the built `kakehashi` binary and of the
//! repository, so tests drive the real program as a user would; free ports; a devnet process;
//! and one `kakehashi devnet --demo` run whose books several tests read or copy. [`pair`] runs
//! a JP and an SG node as separate processes; [`proxy`] is a TCP fault proxy for their relay
//! links.
#![forbid(unsafe_code)]

pub mod pair;
pub mod proxy;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

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

/// How long one `kakehashi devnet --demo` may take before it is killed: starting two nodes and
/// sending nine payments takes a few seconds; a run this long is a hang, not slowness.
pub const DEMO_DEADLINE: Duration = Duration::from_secs(90);

/// What one `kakehashi devnet --demo` run printed and how it ended.
#[derive(Debug)]
pub struct DemoRun {
    /// How it ended (a kill's status when it outlived [`DEMO_DEADLINE`]).
    pub status: ExitStatus,
    /// Its standard output: the payments table, balances and receipts.
    pub stdout: String,
    /// Its standard error, with a last line saying so when the deadline killed it.
    pub stderr: String,
}

/// Runs `kakehashi devnet --demo` on `data_dir`, its output in files under `scratch`, and kills
/// it after [`DEMO_DEADLINE`]. It never panics on the demo's outcome: the callers assert on it,
/// with its output as context.
pub fn devnet_demo(data_dir: &Path, scratch: &Path) -> DemoRun {
    let mut process = DevnetProcess::spawn(data_dir, scratch, &["--demo"], |command| {
        command.env_remove(kakehashi_node::fault::ENV);
    });
    let started = Instant::now();
    let mut killed = false;
    let status = loop {
        if let Some(status) = process.child.try_wait().expect("wait for kakehashi devnet") {
            break status;
        }
        if started.elapsed() > DEMO_DEADLINE {
            let _ = process.child.kill();
            killed = true;
            break process.child.wait().expect("reap kakehashi devnet");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = process.stderr();
    if killed {
        stderr.push_str(&format!(
            "\n(killed: kakehashi devnet --demo still running after {DEMO_DEADLINE:?})\n"
        ));
    }
    DemoRun {
        status,
        stdout: process.stdout(),
        stderr,
    }
}

/// One `kakehashi devnet --demo` run on fresh books, made once per test process and shared:
/// the demo takes a good part of a minute on a loaded two-core machine, and several tests
/// only need its output and the books it leaves. Its data directory is for reading; a test
/// that changes books works on a copy ([`SharedDemo::copy_data_to`]).
#[derive(Debug)]
pub struct SharedDemo {
    /// The run's outcome and output (the tests that rely on it assert that it exited 0).
    pub run: DemoRun,
    data_dir: PathBuf,
}

impl SharedDemo {
    /// Runs the demo in a new directory under `parent`. The directory is kept after the
    /// process ends (a static is never dropped); give a directory that is cleaned elsewhere,
    /// such as cargo's `CARGO_TARGET_TMPDIR`, which `cargo clean` removes.
    pub fn run_in(parent: &Path) -> Self {
        std::fs::create_dir_all(parent).expect("create the shared demo's parent directory");
        let scratch = tempfile::Builder::new()
            .prefix("devnet-demo-")
            .tempdir_in(parent)
            .expect("shared demo directory")
            .keep();
        let data_dir = scratch.join("devnet-data");
        let run = devnet_demo(&data_dir, &scratch);
        Self { run, data_dir }
    }

    /// The books the demo left (`jp/`, `sg/`, `receipts/`), not to be changed: other tests
    /// read them at the same time.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Copies the demo's books to `dest` (which must not exist yet), for a test that changes
    /// them. The nodes stopped when the demo exited, so the databases are closed and whole.
    pub fn copy_data_to(&self, dest: &Path) {
        assert!(
            !dest.exists(),
            "{} exists already: copy the demo's books to a new directory",
            dest.display()
        );
        copy_dir(&self.data_dir, dest);
    }
}

/// Copies the directory tree `from` to `to` (files and directories; nothing else is expected).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy's directory");
    for entry in std::fs::read_dir(from).expect("read the directory to copy") {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        let kind = entry.file_type().expect("file type");
        if kind.is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            assert!(kind.is_file(), "{}: not a file", entry.path().display());
            std::fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}
