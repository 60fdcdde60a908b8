//! Finding the machine's PostgreSQL programs, and what a test does when there are none.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::Error;
use crate::process::{self, is_executable};

/// Names a directory holding the PostgreSQL programs to use, taking precedence over the search.
pub const BINDIR_ENV: &str = "KAKEHASHI_PG_BINDIR";

/// Set to `1`, a test that needs PostgreSQL fails when it is missing instead of skipping (CI
/// sets it).
pub const REQUIRE_ENV: &str = "KAKEHASHI_REQUIRE_PG";

/// The programs a cluster needs, all from one installation (a server and tools of different
/// versions would not agree on the data directory's format).
const PROGRAMS: [&str; 5] = ["initdb", "pg_ctl", "postgres", "psql", "pg_basebackup"];

/// The oldest major version that works: `pg_basebackup -R` writes `standby.signal` and
/// `postgresql.auto.conf` since PostgreSQL 12.
const MAJOR_MIN: u32 = 12;

/// How to get PostgreSQL, for messages.
const INSTALL_HINT: &str = "install it (Debian: `apt-get install postgresql`) or set \
                            KAKEHASHI_PG_BINDIR to the directory holding initdb and pg_ctl";

/// One PostgreSQL installation's program directory (`initdb`, `pg_ctl`, `postgres`, `psql`,
/// `pg_basebackup`) and its version.
#[derive(Clone, Debug)]
pub struct PgBinaries {
    bindir: PathBuf,
    version: String,
}

impl PgBinaries {
    /// The first directory holding every program a cluster needs, looked for in order:
    /// `$KAKEHASHI_PG_BINDIR` (when set, it must be right: it is not searched past), the
    /// output of `pg_config --bindir`, the directory of the `initdb` on PATH (through its
    /// symlinks), then the highest `/usr/lib/postgresql/<v>/bin` (Debian's layout, whose
    /// programs are not on PATH).
    pub fn find() -> Result<Self, Unavailable> {
        if let Some(bindir) = std::env::var_os(BINDIR_ENV).filter(|v| !v.is_empty()) {
            let bindir = PathBuf::from(bindir);
            return Self::at(&bindir).map_err(|why| Unavailable {
                tried: vec![format!("{BINDIR_ENV}={}: {why}", bindir.display())],
            });
        }
        let mut tried = Vec::new();
        for (source, bindir) in candidates() {
            match Self::at(&bindir) {
                Ok(found) => return Ok(found),
                Err(why) => tried.push(format!("{source} {}: {why}", bindir.display())),
            }
        }
        if tried.is_empty() {
            tried.push(
                "no pg_config or initdb on PATH and no /usr/lib/postgresql/<version>/bin".into(),
            );
        }
        Err(Unavailable { tried })
    }

    /// The programs in `bindir`, when all are there and the server says its version.
    pub fn at(bindir: &Path) -> Result<Self, String> {
        let missing: Vec<&str> = PROGRAMS
            .into_iter()
            .filter(|program| !is_executable(&bindir.join(program)))
            .collect();
        if !missing.is_empty() {
            return Err(format!("no {}", missing.join(", ")));
        }
        let version = server_version(&bindir.join("postgres"))?;
        let major: u32 = version
            .split('.')
            .next()
            .and_then(|major| major.parse().ok())
            .ok_or_else(|| format!("unreadable version {version:?}"))?;
        if major < MAJOR_MIN {
            return Err(format!(
                "PostgreSQL {version} is older than {MAJOR_MIN} (pg_basebackup -R)"
            ));
        }
        Ok(Self {
            bindir: bindir.to_owned(),
            version,
        })
    }

    /// The directory holding the programs.
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// The server's version, as `postgres --version` prints it (`15.18`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The path of program `name` in the directory.
    pub(crate) fn program(&self, name: &str) -> PathBuf {
        self.bindir.join(name)
    }

    /// Runs SQL through psql against any connection URL (for example a [`crate::multi_host_url`]),
    /// returning its unaligned, tuples-only output. psql stops at the first error.
    pub fn psql_url(&self, url: &str, sql: &str) -> Result<String, Error> {
        psql(self, url, sql)
    }
}

/// Why no usable PostgreSQL was found: each place looked at and what was wrong there.
#[derive(Clone, Debug)]
pub struct Unavailable {
    tried: Vec<String>,
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.tried.join("; "))
    }
}

impl std::error::Error for Unavailable {}

/// For tests: the PostgreSQL programs when this machine has them.
///
/// When it has none: with `KAKEHASHI_REQUIRE_PG=1` (CI) this panics, naming what is missing
/// and how to install it; otherwise it prints `<test>: PostgreSQL not found (<why>): not run;
/// set KAKEHASHI_REQUIRE_PG=1 to make this a failure` to stderr and returns `None`, and the
/// test returns without running — visibly, never passing silently.
pub fn require(test: &str) -> Option<PgBinaries> {
    match PgBinaries::find() {
        Ok(binaries) => Some(binaries),
        Err(why) if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") => panic!(
            "{test}: PostgreSQL is required ({REQUIRE_ENV}=1) but not found ({why}): \
             {INSTALL_HINT}"
        ),
        Err(why) => {
            eprintln!(
                "{test}: PostgreSQL not found ({why}): not run; set {REQUIRE_ENV}=1 to make \
                 this a failure"
            );
            None
        }
    }
}

/// The directories to try after the environment variable, each with where it came from.
fn candidates() -> Vec<(&'static str, PathBuf)> {
    let mut candidates = Vec::new();
    if let Some(bindir) = pg_config_bindir() {
        candidates.push(("pg_config --bindir", bindir));
    }
    if let Some(initdb) = process::find_program("initdb") {
        // Debian links single programs into /usr/local/bin or /usr/bin; the rest of the
        // installation is where the link points.
        let real = initdb.canonicalize().unwrap_or(initdb);
        if let Some(bindir) = real.parent() {
            candidates.push(("initdb on PATH in", bindir.to_owned()));
        }
    }
    if let Some(bindir) = highest_debian_bindir(Path::new("/usr/lib/postgresql")) {
        candidates.push(("Debian's", bindir));
    }
    candidates
}

fn pg_config_bindir() -> Option<PathBuf> {
    let pg_config = process::find_program("pg_config")?;
    let mut command = Command::new(pg_config);
    command.arg("--bindir");
    let output = process::run(&mut command, None, Duration::from_secs(30)).ok()?;
    let bindir = output.stdout.trim();
    (!bindir.is_empty()).then(|| PathBuf::from(bindir))
}

/// `<root>/<v>/bin` for the highest version `v` (compared as numbers: 9.6 < 15 < 16).
fn highest_debian_bindir(root: &Path) -> Option<PathBuf> {
    std::fs::read_dir(root)
        .ok()?
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            let key: Vec<u32> = name
                .split('.')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            Some((key, root.join(name).join("bin")))
        })
        .filter(|(_, bindir)| bindir.is_dir())
        .max()
        .map(|(_, bindir)| bindir)
}

/// `15.18` from `postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)`. `--version` runs
/// as root too (only starting a server refuses root).
fn server_version(postgres: &Path) -> Result<String, String> {
    let mut command = Command::new(postgres);
    command.arg("--version");
    let output = process::run(&mut command, None, Duration::from_secs(30))
        .map_err(|e| format!("{} --version: {e}", postgres.display()))?;
    output
        .stdout
        .split_whitespace()
        .skip_while(|word| *word != "(PostgreSQL)")
        .nth(1)
        .map(str::to_owned)
        .ok_or_else(|| format!("unexpected version line {:?}", output.stdout.trim()))
}

/// Runs `sql` with psql against `url` (as ourselves: psql does not refuse root), `-X` (no
/// `~/.psqlrc`), `-At` (bare values), stopping at the first error.
pub(crate) fn psql(binaries: &PgBinaries, url: &str, sql: &str) -> Result<String, Error> {
    let mut command = Command::new(binaries.program("psql"));
    process::clear_libpq_environment(&mut command);
    command
        .args([
            "-X",
            "-At",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-f",
            "-",
        ])
        // A server that is gone must not leave psql waiting for TCP timeouts.
        .env("PGCONNECT_TIMEOUT", "10");
    Ok(process::run(&mut command, Some(sql), PSQL_TIMEOUT)?.stdout)
}

/// The longest a psql call may take: tests and setup run small statements, and a statement
/// waiting on a synchronous standby that is gone would otherwise wait forever.
const PSQL_TIMEOUT: Duration = Duration::from_secs(120);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_version_directory_wins_numerically() {
        let root = std::env::temp_dir().join(format!("pgcluster-bindirs-{}", std::process::id()));
        for version in ["9.6", "15", "16", "not-a-version"] {
            std::fs::create_dir_all(root.join(version).join("bin")).expect("mkdir");
        }
        let found = highest_debian_bindir(&root);
        std::fs::remove_dir_all(&root).expect("cleanup");
        assert_eq!(found, Some(root.join("16").join("bin")));
    }

    #[test]
    fn a_directory_without_the_programs_is_refused_naming_them() {
        let why = PgBinaries::at(Path::new("/nonexistent")).expect_err("no programs");
        assert!(why.contains("initdb"), "{why}");
        assert!(why.contains("pg_basebackup"), "{why}");
    }

    #[test]
    fn unavailable_lists_every_place_looked_at() {
        let unavailable = Unavailable {
            tried: vec!["a: no initdb".into(), "b: no psql".into()],
        };
        assert_eq!(unavailable.to_string(), "a: no initdb; b: no psql");
    }
}
