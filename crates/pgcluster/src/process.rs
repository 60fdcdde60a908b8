//! Running PostgreSQL's programs: as which user, with a time bound, and killing what they leave.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::Error;

/// How often a waiting loop looks again: short next to a server's ~2 s start, long enough
/// not to spin.
pub(crate) const POLL: Duration = Duration::from_millis(20);

/// How long to wait for a killed process group to disappear. SIGKILL cannot be caught, so
/// anything slower is a process stuck in the kernel (uninterruptible I/O).
const KILL_WAIT: Duration = Duration::from_secs(10);

/// After a tool exits, how long its output pipes may stay open. A daemon that inherited them
/// (a postmaster started without a log file would) must not make the caller wait forever.
const PIPE_DRAIN: Duration = Duration::from_secs(5);

/// What a finished tool printed.
pub(crate) struct Output {
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Who runs PostgreSQL's server-side programs. initdb, pg_ctl and postgres refuse to run as
/// root, so as root they run as the `postgres` user and the directories they write are theirs.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    runner: Runner,
}

#[derive(Clone, Debug)]
enum Runner {
    /// Not root: run programs as ourselves.
    Direct,
    /// Root: setpriv execs the program (no intermediate process that a timeout's kill would
    /// orphan the program under).
    Setpriv {
        setpriv: PathBuf,
        uid: u32,
        gid: u32,
    },
    /// Root, no setpriv: util-linux runuser.
    Runuser {
        runuser: PathBuf,
        uid: u32,
        gid: u32,
    },
    /// Root, neither: su with a shell command line.
    Su { su: PathBuf, uid: u32, gid: u32 },
}

impl Identity {
    /// Ourselves, or the `postgres` user when we are root.
    pub(crate) fn detect() -> Result<Self, Error> {
        if effective_uid() != Some(0) {
            return Ok(Self {
                runner: Runner::Direct,
            });
        }
        let (uid, gid) = postgres_user().ok_or(Error::NoPostgresUser)?;
        let runner = if let Some(setpriv) = find_program("setpriv") {
            Runner::Setpriv { setpriv, uid, gid }
        } else if let Some(runuser) = find_program("runuser") {
            Runner::Runuser { runuser, uid, gid }
        } else if let Some(su) = find_program("su") {
            Runner::Su { su, uid, gid }
        } else {
            return Err(Error::NoRunAs);
        };
        Ok(Self { runner })
    }

    /// `program args` as the server's user, its environment cleared of libpq's `PG*`
    /// variables (a `PGHOST` or `PGOPTIONS` of the caller must not redirect the tools).
    pub(crate) fn command(&self, program: &Path, args: &[OsString]) -> Command {
        let mut command = match &self.runner {
            Runner::Direct => {
                let mut command = Command::new(program);
                command.args(args);
                command
            }
            Runner::Setpriv { setpriv, uid, gid } => {
                let mut command = Command::new(setpriv);
                command
                    .arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--clear-groups")
                    .arg("--")
                    .arg(program)
                    .args(args);
                command
            }
            Runner::Runuser { runuser, .. } => {
                let mut command = Command::new(runuser);
                command
                    .args(["-u", "postgres", "--"])
                    .arg(program)
                    .args(args);
                command
            }
            Runner::Su { su, .. } => {
                let line = std::iter::once(program.as_os_str())
                    .chain(args.iter().map(OsString::as_os_str))
                    .map(shell_quote)
                    .collect::<Vec<_>>()
                    .join(" ");
                let mut command = Command::new(su);
                command.args(["-s", "/bin/sh", "postgres", "-c"]).arg(line);
                command
            }
        };
        clear_libpq_environment(&mut command);
        command
    }

    /// Makes `path` the server user's (when we are root) with `mode`.
    pub(crate) fn own(&self, path: &Path, mode: u32) -> Result<(), Error> {
        if let Runner::Setpriv { uid, gid, .. }
        | Runner::Runuser { uid, gid, .. }
        | Runner::Su { uid, gid, .. } = self.runner
        {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(|e| Error::io(format!("chown {} to postgres", path.display()), e))?;
        }
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(format!("chmod {mode:o} {}", path.display()), e))
    }

    /// Whether the server's user can create files in `dir` (as root: whether every parent
    /// lets `postgres` through).
    pub(crate) fn can_write(&self, dir: &Path) -> bool {
        if matches!(self.runner, Runner::Direct) {
            return true;
        }
        let args = [
            OsString::from("-c"),
            OsString::from(r#"test -w "$1" && test -x "$1""#),
            OsString::from("sh"),
            dir.as_os_str().to_owned(),
        ];
        let mut command = self.command(Path::new("/bin/sh"), &args);
        command.current_dir("/");
        run(&mut command, None, Duration::from_secs(30)).is_ok()
    }
}

/// Runs `command` to completion within `timeout`, feeding it `stdin`, and returns its output
/// when it exits successfully. A tool that overruns is killed: no caller waits forever.
pub(crate) fn run(
    command: &mut Command,
    stdin: Option<&str>,
    timeout: Duration,
) -> Result<Output, Error> {
    let line = command_line(command);
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|e| Error::io(format!("start `{line}`"), e))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let text = text.to_owned();
        // A writer thread: a large input must not deadlock against a child that fills its
        // stdout before reading all of stdin.
        thread::spawn(move || {
            let _ = pipe.write_all(text.as_bytes());
        });
    }
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(POLL),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Timeout {
                    command: line,
                    seconds: timeout.as_secs(),
                });
            }
            Err(e) => return Err(Error::io(format!("wait for `{line}`"), e)),
        }
    };
    let output = Output {
        stdout: stdout.recv_timeout(PIPE_DRAIN).unwrap_or_default(),
        stderr: stderr.recv_timeout(PIPE_DRAIN).unwrap_or_default(),
    };
    check_status(&line, status, output)
}

fn check_status(line: &str, status: ExitStatus, output: Output) -> Result<Output, Error> {
    if status.success() {
        return Ok(output);
    }
    Err(Error::Command {
        command: line.to_owned(),
        status: status.to_string(),
        stderr: output.stderr.trim().to_owned(),
    })
}

/// Reads a pipe to its end on a thread, and sends what it read.
fn drain(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            let _ = sender.send(String::from_utf8_lossy(&bytes).into_owned());
        });
    }
    receiver
}

/// The command line as a person would type it, for error messages.
fn command_line(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(shell_quote)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `word` quoted for a POSIX shell when it needs it.
fn shell_quote(word: &OsStr) -> String {
    let word = word.to_string_lossy();
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if plain {
        word.into_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Removes libpq's environment variables (`PGHOST`, `PGPORT`, `PGOPTIONS`, ...) from what
/// `command` inherits, so only its arguments decide where it connects.
pub(crate) fn clear_libpq_environment(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PG") {
            command.env_remove(name);
        }
    }
}

/// Our effective user id: the owner of `/proc/self` (Linux), else `id -u`.
fn effective_uid() -> Option<u32> {
    if let Ok(metadata) = fs::metadata("/proc/self") {
        return Some(metadata.uid());
    }
    id(&["-u"])
}

/// The `postgres` user's uid and gid, through the system's user database (`id`).
fn postgres_user() -> Option<(u32, u32)> {
    Some((id(&["-u", "postgres"])?, id(&["-g", "postgres"])?))
}

fn id(args: &[&str]) -> Option<u32> {
    let output = Command::new("id")
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}

/// `name` on PATH or in the system directories (root's PATH in a container often lacks
/// `/usr/sbin`, where runuser lives).
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/usr/sbin", "/bin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// Whether `path` is a regular file with an execute bit.
pub(crate) fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether process `pid` exists and is not a zombie (a dead process its parent has not reaped:
/// a postmaster whose parent is a container's init may stay one).
pub(crate) fn is_alive(pid: u32) -> bool {
    stat(pid).is_some_and(|stat| stat.state != 'Z')
}

/// The live processes whose parent is `parent`: a postmaster's server processes.
pub(crate) fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| stat(*pid).is_some_and(|stat| stat.parent == parent && stat.state != 'Z'))
        .collect()
}

/// SIGKILLs postmaster `pid` and every server process, as a power cut would, and waits until
/// none of them runs (zombies included: a zombie holds no memory, files or sockets).
///
/// Each server process leads its own process group (the postmaster's children call setsid),
/// so no one signal reaches them all. The postmaster is stopped first (SIGSTOP) so that it
/// forks nothing between the listing of its children and the kill; then each process and
/// its group (anything a server process ran, such as an archive command) gets SIGKILL.
pub(crate) fn kill_server(pid: u32, data_dir: &Path) {
    if !is_alive(pid) {
        return;
    }
    // Only the postmaster of this data directory (a postmaster's working directory is its data
    // directory): a pid from a stale postmaster.pid may since name anyone's process, another
    // cluster's server included, and that is never signalled.
    let cwd = fs::read_link(format!("/proc/{pid}/cwd"));
    let ours = data_dir
        .canonicalize()
        .is_ok_and(|dir| cwd.is_ok_and(|cwd| cwd == dir));
    if !ours {
        return;
    }
    signal("STOP", &[pid]);
    let mut victims = children(pid);
    victims.push(pid);
    signal("KILL", &victims);
    let deadline = Instant::now() + KILL_WAIT;
    while Instant::now() < deadline && victims.iter().any(|victim| is_alive(*victim)) {
        thread::sleep(POLL);
    }
}

/// Sends `signal` to each of `pids` and to the process group each leads, through the shell's
/// kill builtin (std has no kill(2)). Errors (a process already gone, a pid that leads no
/// group) are expected and ignored.
fn signal(signal: &str, pids: &[u32]) {
    let targets = pids
        .iter()
        .flat_map(|pid| [pid.to_string(), format!("-{pid}")]);
    let _ = Command::new("/bin/sh")
        .args([
            "-c",
            r#"signal=$1; shift; kill -s "$signal" -- "$@""#,
            "sh",
            signal,
        ])
        .args(targets)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

struct Stat {
    state: char,
    parent: u32,
}

/// The state and process group of `pid`, from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so the fields
    // start after the last ')'.
    let mut fields = text.get(text.rfind(')')? + 1..)?.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    Some(Stat { state, parent })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_leaves_plain_words_and_quotes_the_rest() {
        assert_eq!(shell_quote(OsStr::new("-D")), "-D");
        assert_eq!(shell_quote(OsStr::new("/a/b.conf")), "/a/b.conf");
        assert_eq!(shell_quote(OsStr::new("a b")), "'a b'");
        assert_eq!(shell_quote(OsStr::new("it's")), r"'it'\''s'");
        assert_eq!(shell_quote(OsStr::new("")), "''");
    }

    #[test]
    fn our_own_process_is_alive_and_our_parents_child() {
        let pid = std::process::id();
        assert!(is_alive(pid));
        let parent = stat(pid).expect("our own stat").parent;
        assert!(children(parent).contains(&pid));
    }

    #[test]
    fn a_failed_tool_is_an_error_with_its_stderr() {
        let mut command = Command::new("/bin/sh");
        command.args(["-c", "echo out; echo broken >&2; exit 3"]);
        let error = run(&mut command, None, Duration::from_secs(30))
            .err()
            .expect("exit 3 fails");
        let Error::Command { stderr, .. } = error else {
            panic!("not a command error: {error}");
        };
        assert_eq!(stderr, "broken");
    }

    #[test]
    fn a_tool_gets_its_stdin_and_its_stdout_is_returned() {
        let mut command = Command::new("/bin/cat");
        let output =
            run(&mut command, Some("select 1;\n"), Duration::from_secs(30)).expect("cat runs");
        assert_eq!(output.stdout, "select 1;\n");
    }

    #[test]
    fn a_tool_that_overruns_is_killed() {
        let mut command = Command::new("/bin/sleep");
        command.arg("30");
        let error = run(&mut command, None, Duration::from_millis(200))
            .err()
            .expect("sleep 30 overruns");
        assert!(matches!(error, Error::Timeout { .. }), "{error}");
    }
}
