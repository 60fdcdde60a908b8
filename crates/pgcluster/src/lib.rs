//! kakehashi-pgcluster: throwaway PostgreSQL clusters for tests and CI.
//!
//! The node's second storage engine is PostgreSQL (issue 15). Its tests need real servers:
//! a primary, a synchronous streaming standby, a SIGKILL in the middle of a write, a
//! promotion. This crate makes them from the machine's own PostgreSQL programs (`initdb`,
//! `pg_ctl`, `pg_basebackup`, `psql`), each cluster in a directory of the test's choosing, on
//! a unix socket, and never leaves a server running behind a test.
//!
//! - [`PgBinaries::find`] looks for the programs (`$KAKEHASHI_PG_BINDIR`, `pg_config
//!   --bindir`, `initdb` on PATH, Debian's `/usr/lib/postgresql/<v>/bin`); [`require`] is
//!   what a test calls first: it skips the test saying so when PostgreSQL is missing, or fails
//!   it when `KAKEHASHI_REQUIRE_PG=1` (as CI sets).
//! - [`Cluster::start`] creates and starts a durable primary; [`Cluster::start_sync_standby`]
//!   adds a synchronous standby; [`Cluster::kill`], [`Cluster::promote`] and
//!   [`multi_host_url`] make a failover.
//!
//! ```no_run
//! use kakehashi_pgcluster::{Cluster, ClusterOptions, multi_host_url, require};
//!
//! # fn example(dir: &std::path::Path) -> Result<(), kakehashi_pgcluster::Error> {
//! let Some(binaries) = require("failover") else { return Ok(()) };
//! let mut primary = Cluster::start(&binaries, &dir.join("primary"), ClusterOptions::default())?;
//! let standby = primary.start_sync_standby(&dir.join("standby"))?;
//! primary.create_database("ledger")?;
//! let url = multi_host_url(&[&primary, &standby], "ledger"); // for the node
//! primary.kill(); // SIGKILL, as a power cut
//! standby.promote()?;
//! standby.psql("ledger", "CREATE TABLE t (x int); INSERT INTO t VALUES (1);")?;
//! # drop(url);
//! # Ok(())
//! # }
//! ```
//!
//! As root (CI, containers) the server's programs run as the `postgres` user, since initdb
//! and postgres refuse root; the cluster's directories become that user's, so their parents
//! must be searchable by it (a `tempfile` directory is 0700: create it with 0755).
//!
//! Tests and tooling only: no library crate of the workspace may depend on it (the e2e
//! `dependencies` test checks). Standard library only, besides `thiserror`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod binaries;
mod cluster;
mod error;
mod process;
mod test_database;

pub use binaries::{BINDIR_ENV, PgBinaries, REQUIRE_ENV, Unavailable, require};
pub use cluster::{Cluster, ClusterOptions, SUPERUSER, multi_host_url};
pub use error::Error;
pub use test_database::TestDatabase;
