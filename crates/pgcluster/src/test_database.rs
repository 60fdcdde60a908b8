//! [`TestDatabase`]: a throwaway cluster with one database, the unit most tests want.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::{Cluster, ClusterOptions, require};

/// A throwaway durable cluster with one database, for one test: started in a directory of its
/// own under the given parent, stopped and removed when dropped (the cluster first).
pub struct TestDatabase {
    url: String,
    database: String,
    cluster: Option<Cluster>,
    dir: PathBuf,
}

impl TestDatabase {
    /// Starts a cluster under `parent` (a directory the `postgres` user can search when the
    /// tests run as root, such as the target directory's `CARGO_TARGET_TMPDIR`) and creates
    /// `database` in it; `None`, after [`require`] said why, when PostgreSQL is missing.
    ///
    /// # Panics
    ///
    /// When the cluster cannot be started or the database created: for tests, where that is a
    /// failure to report, not a case to handle.
    pub fn start(test: &str, parent: &Path, database: &str) -> Option<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let binaries = require(test)?;
        let dir = parent.join(format!(
            "pg-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        // A leftover of an earlier process with the same id: not ours to keep.
        let _ = std::fs::remove_dir_all(&dir);
        let cluster = Cluster::start(&binaries, &dir, ClusterOptions::default())
            .unwrap_or_else(|error| panic!("{test}: cannot start PostgreSQL: {error}"));
        let url = cluster
            .create_database(database)
            .unwrap_or_else(|error| panic!("{test}: cannot create database {database}: {error}"));
        Some(Self {
            url,
            database: database.to_owned(),
            cluster: Some(cluster),
            dir,
        })
    }

    /// The database's URL ([`Cluster::url`]).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The cluster, to kill, restart or query it.
    pub fn cluster(&mut self) -> &mut Cluster {
        self.cluster
            .as_mut()
            .unwrap_or_else(|| unreachable!("the cluster lives until drop"))
    }

    /// Runs `sql` in the database through psql ([`Cluster::psql`]), returning its output.
    ///
    /// # Panics
    ///
    /// When psql fails.
    pub fn psql(&self, sql: &str) -> String {
        self.cluster
            .as_ref()
            .unwrap_or_else(|| unreachable!("the cluster lives until drop"))
            .psql(&self.database, sql)
            .unwrap_or_else(|error| panic!("psql: {error}"))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // The server first: its files go only once nothing writes them.
        drop(self.cluster.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
