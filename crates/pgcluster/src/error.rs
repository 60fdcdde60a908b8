//! What can go wrong while running a throwaway cluster.

use std::io;
use std::path::PathBuf;

/// A cluster operation that failed, with what was being done and what the tools said.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A PostgreSQL tool (initdb, pg_ctl, psql, pg_basebackup) exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line, for a person to rerun.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr (trimmed).
        stderr: String,
    },
    /// The directory given for a new cluster already holds files.
    #[error("{dir} is not empty: a cluster is created in a new or empty directory")]
    DirectoryNotEmpty {
        /// The directory.
        dir: PathBuf,
    },
    /// A database name that is not a plain lowercase identifier.
    #[error(
        "database name {name:?} is not a plain identifier (lowercase ASCII letters, digits and \
         underscores, not starting with a digit, at most 63 bytes)"
    )]
    InvalidName {
        /// The refused name.
        name: String,
    },
    /// An extra setting in [`crate::ClusterOptions::settings`] that cannot be written safely.
    #[error("setting {name:?}: {reason}")]
    InvalidSetting {
        /// The setting's name.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A file or directory operation failed.
    #[error("{action}: {source}")]
    Io {
        /// What was being done, with the path.
        action: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Running as root, but no tool was found to run PostgreSQL's programs as another user.
    #[error(
        "running as root, and none of setpriv, runuser or su was found to run PostgreSQL as the \
         `postgres` user (initdb and postgres refuse to run as root)"
    )]
    NoRunAs,
    /// Running as root, but there is no `postgres` user to run PostgreSQL's programs as.
    #[error(
        "running as root, and there is no `postgres` user to run PostgreSQL as (initdb and \
         postgres refuse to run as root): install Debian's postgresql package, which creates it"
    )]
    NoPostgresUser,
    /// The operation needs a running server, and this one was stopped or killed.
    #[error("the server of {data_dir} is not running")]
    NotRunning {
        /// Its data directory.
        data_dir: PathBuf,
    },
    /// A standby that did not reach `sync` in `pg_stat_replication` in time.
    #[error(
        "standby {name} did not become a synchronous standby within {seconds} s (its \
         pg_stat_replication sync_state was {state:?})"
    )]
    NotSynchronous {
        /// Its application name.
        name: String,
        /// The last state seen (empty when it was not connected).
        state: String,
        /// How long was waited.
        seconds: u64,
    },
    /// The server did not start; the end of its log says why.
    #[error("the server of {data_dir} did not start: {reason}\n--- end of {log} ---\n{log_tail}")]
    Start {
        /// Its data directory.
        data_dir: PathBuf,
        /// What pg_ctl said.
        reason: String,
        /// The server log.
        log: PathBuf,
        /// The log's last lines.
        log_tail: String,
    },
    /// A tool that did not finish in time (and was killed).
    #[error("`{command}` did not finish within {seconds} s and was killed")]
    Timeout {
        /// The command line.
        command: String,
        /// The time it was given.
        seconds: u64,
    },
    /// The `postgres` user cannot reach the cluster's directory.
    #[error(
        "the postgres user cannot write {dir}: as root the server runs as `postgres`, so every \
         parent directory must be searchable by it (choose a directory under the target \
         directory or the system's temporary directory)"
    )]
    Unreachable {
        /// The directory.
        dir: PathBuf,
    },
}

impl Error {
    /// An [`Error::Io`] for `action` (which names the path).
    pub(crate) fn io(action: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            action: action.into(),
            source,
        }
    }
}
