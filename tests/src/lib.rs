//! Shared helpers for the end-to-end tests: one `kakehashi devnet --demo` run whose books
//! several tests read or copy, [`proxy`], a TCP fault proxy for the relay links, and a seeded
//! PRNG. The process helpers (the built `kakehashi` binary and the repository, free ports, a
//! devnet process, [`pair`]: a JP and an SG node as separate processes) are the test kit's
//! (`kakehashi_testkit::process`), re-exported here under the names the tests use.
#![forbid(unsafe_code)]

pub mod proxy;

mod prng;

pub use kakehashi_testkit::process::{
    DevnetProcess, SG_PORT_OFFSET, free_ports, kakehashi, kakehashi_bin, repo_root,
};

/// Node processes (the test kit's), and the PRNG the storms schedule faults with.
pub mod pair {
    pub use crate::prng::SplitMix64;
    pub use kakehashi_testkit::process::pair::*;
}

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

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
