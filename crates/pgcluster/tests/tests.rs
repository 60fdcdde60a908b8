//! Throwaway clusters against the machine's PostgreSQL: each test says so and returns when
//! there is none (`require`), and fails instead with `KAKEHASHI_REQUIRE_PG=1`, as in CI.

use std::fs;
use std::path::Path;

use kakehashi_pgcluster::{Cluster, ClusterOptions, Error, PgBinaries, multi_host_url, require};
use tempfile::TempDir;

/// A scratch directory under the target directory. 0755, not tempfile's 0700: as root the
/// servers run as `postgres`, who must pass through it to their own directories.
fn scratch() -> TempDir {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .prefix("pg")
        .permissions(fs::Permissions::from_mode(0o755))
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("a scratch directory")
}

#[track_caller]
fn start(binaries: &PgBinaries, dir: &Path) -> Cluster {
    Cluster::start(binaries, dir, ClusterOptions::default())
        .unwrap_or_else(|e| panic!("start a cluster in {}: {e}", dir.display()))
}

#[track_caller]
fn psql(cluster: &Cluster, database: &str, sql: &str) -> String {
    cluster
        .psql(database, sql)
        .unwrap_or_else(|e| panic!("psql {sql:?}: {e}"))
        .trim()
        .to_owned()
}

/// Whether process `pid` is alive (present and not a zombie), from `/proc`.
fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        let fields = &stat[stat.rfind(')').expect("comm ends") + 1..];
        !fields.trim_start().starts_with('Z')
    })
}

/// The live processes whose parent is `parent` (a postmaster's server processes).
fn children(parent: u32) -> Vec<u32> {
    fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                let Some(end) = stat.rfind(')') else {
                    return false;
                };
                let fields: Vec<&str> = stat[end + 1..].split_whitespace().collect();
                fields.get(1) == Some(&parent.to_string().as_str()) && fields[0] != "Z"
            })
        })
        .collect()
}

#[test]
fn a_cluster_starts_creates_a_database_and_answers() {
    let Some(binaries) = require("a_cluster_starts_creates_a_database_and_answers") else {
        return;
    };
    let tmp = scratch();
    let cluster = start(&binaries, &tmp.path().join("primary"));
    let url = cluster
        .create_database("ledger")
        .expect("create a database");
    assert_eq!(url, cluster.url("ledger"));
    assert!(
        url.starts_with("postgresql://kakehashi@/ledger?host=/"),
        "{url}"
    );
    assert!(url.ends_with(&format!("&port={}", cluster.port())), "{url}");
    assert_eq!(psql(&cluster, "ledger", "SELECT 1;"), "1");
    assert_eq!(
        psql(&cluster, "ledger", "SELECT current_database();"),
        "ledger"
    );
    // The configuration the crate promises: durable, ready for standbys, socket only.
    let settings = psql(
        &cluster,
        "ledger",
        "SELECT name || '=' || setting FROM pg_settings WHERE name IN ('fsync', \
         'synchronous_commit', 'full_page_writes', 'wal_level', 'listen_addresses') ORDER BY name;",
    );
    assert_eq!(
        settings,
        "fsync=on\nfull_page_writes=on\nlisten_addresses=\nsynchronous_commit=on\nwal_level=replica"
    );
    // The psql of the URL is the same server (not some other on the machine).
    let url_answer = binaries
        .psql_url(&url, "SHOW port;")
        .expect("psql through the URL");
    assert_eq!(url_answer.trim(), cluster.port().to_string());
}

#[test]
fn a_database_name_that_is_not_plain_is_refused() {
    let Some(binaries) = require("a_database_name_that_is_not_plain_is_refused") else {
        return;
    };
    let tmp = scratch();
    let cluster = start(&binaries, &tmp.path().join("primary"));
    let error = cluster
        .create_database("x\"; DROP DATABASE postgres; --")
        .expect_err("not a plain name");
    assert!(matches!(error, Error::InvalidName { .. }), "{error}");
    assert_eq!(
        psql(
            &cluster,
            "postgres",
            "SELECT count(*) FROM pg_database WHERE datname = 'postgres';"
        ),
        "1"
    );
}

#[test]
fn a_sync_standby_serves_what_the_primary_committed() {
    let Some(binaries) = require("a_sync_standby_serves_what_the_primary_committed") else {
        return;
    };
    let tmp = scratch();
    let primary = start(&binaries, &tmp.path().join("primary"));
    let standby = primary
        .start_sync_standby(&tmp.path().join("standby"))
        .expect("a synchronous standby");
    assert_eq!(standby.socket_dir(), primary.socket_dir());
    assert_ne!(standby.port(), primary.port());
    assert_eq!(
        psql(
            &primary,
            "postgres",
            &format!(
                "SELECT sync_state FROM pg_stat_replication WHERE application_name = '{}';",
                standby.name()
            )
        ),
        "sync"
    );
    assert_eq!(
        psql(&standby, "postgres", "SELECT pg_is_in_recovery();"),
        "t"
    );
    primary
        .create_database("ledger")
        .expect("create a database");
    // remote_apply: the commit returns once the standby has applied it, so the read below
    // sees it without polling.
    psql(
        &primary,
        "ledger",
        "SET synchronous_commit = remote_apply;\n\
         CREATE TABLE payment (id int PRIMARY KEY, amount bigint NOT NULL);\n\
         INSERT INTO payment VALUES (1, 25000);",
    );
    assert_eq!(
        psql(
            &standby,
            "ledger",
            "SELECT amount FROM payment WHERE id = 1;"
        ),
        "25000"
    );
    let refused = standby
        .psql("ledger", "INSERT INTO payment VALUES (2, 1);")
        .expect_err("a standby is read-only");
    assert!(refused.to_string().contains("read-only"), "{refused}");
}

#[test]
fn the_standby_takes_over_when_the_primary_is_killed() {
    let Some(binaries) = require("the_standby_takes_over_when_the_primary_is_killed") else {
        return;
    };
    let tmp = scratch();
    let mut primary = start(&binaries, &tmp.path().join("primary"));
    let standby = primary
        .start_sync_standby(&tmp.path().join("standby"))
        .expect("a synchronous standby");
    primary
        .create_database("ledger")
        .expect("create a database");
    psql(
        &primary,
        "ledger",
        "CREATE TABLE payment (id int PRIMARY KEY);\nINSERT INTO payment VALUES (1);",
    );
    let url = multi_host_url(&[&primary, &standby], "ledger");
    assert!(url.contains("target_session_attrs=read-write"), "{url}");
    let answer = |sql: &str| {
        binaries
            .psql_url(&url, sql)
            .map(|out| out.trim().to_owned())
    };
    assert_eq!(
        answer("SHOW port;").expect("the primary"),
        primary.port().to_string()
    );

    let pid = primary.pid().expect("the primary runs");
    let server_processes = children(pid);
    assert!(
        !server_processes.is_empty(),
        "a postmaster has server processes"
    );
    primary.kill();
    assert!(!primary.is_running());
    for process in server_processes.iter().chain([&pid]) {
        assert!(!alive(*process), "process {process} survived the kill");
    }
    // With no primary, the read-write URL finds no server to write to.
    assert!(
        answer("SELECT 1;").is_err(),
        "no read-write server while none is promoted"
    );

    standby.promote().expect("promote the standby");
    assert_eq!(psql(&standby, "ledger", "SELECT pg_is_in_recovery();"), "f");
    // The write committed on the killed primary was on the synchronous standby.
    assert_eq!(
        answer("INSERT INTO payment VALUES (2);\nSELECT string_agg(id::text, ',' ORDER BY id) FROM payment;")
            .expect("write through the URL"),
        "1,2"
    );
    assert_eq!(
        answer("SHOW port;").expect("the new primary"),
        standby.port().to_string()
    );
}

#[test]
fn a_killed_server_restarts_with_every_committed_row() {
    let Some(binaries) = require("a_killed_server_restarts_with_every_committed_row") else {
        return;
    };
    let tmp = scratch();
    let mut cluster = start(&binaries, &tmp.path().join("primary"));
    let port = cluster.port();
    psql(
        &cluster,
        "postgres",
        "CREATE TABLE t (x int);\nINSERT INTO t SELECT generate_series(1, 1000);",
    );
    cluster.kill();
    assert!(matches!(
        cluster.psql("postgres", "SELECT 1;"),
        Err(Error::NotRunning { .. })
    ));
    cluster.restart().expect("crash recovery");
    assert_eq!(cluster.port(), port, "the same port after a restart");
    assert_eq!(
        psql(&cluster, "postgres", "SELECT count(*) FROM t;"),
        "1000"
    );
    cluster.stop().expect("stop");
    assert!(!cluster.is_running());
}

#[test]
fn dropping_a_cluster_leaves_no_server_process() {
    let Some(binaries) = require("dropping_a_cluster_leaves_no_server_process") else {
        return;
    };
    let tmp = scratch();
    let primary = start(&binaries, &tmp.path().join("primary"));
    let standby = primary
        .start_sync_standby(&tmp.path().join("standby"))
        .expect("a synchronous standby");
    let mut pids = Vec::new();
    for postmaster in [
        primary.pid().expect("running"),
        standby.pid().expect("running"),
    ] {
        assert!(alive(postmaster));
        let server_processes = children(postmaster);
        assert!(
            !server_processes.is_empty(),
            "a postmaster has server processes"
        );
        pids.push(postmaster);
        pids.extend(server_processes);
    }
    drop(primary);
    drop(standby);
    for pid in pids {
        assert!(!alive(pid), "server process {pid} outlived its Cluster");
    }
}

#[test]
fn a_long_directory_gets_a_short_socket_directory() {
    let Some(binaries) = require("a_long_directory_gets_a_short_socket_directory") else {
        return;
    };
    let tmp = scratch();
    let deep = tmp.path().join("d".repeat(60)).join("e".repeat(60));
    let cluster = start(&binaries, &deep);
    let socket_dir = cluster.socket_dir().to_owned();
    assert!(!socket_dir.starts_with(&deep), "{}", socket_dir.display());
    assert!(
        socket_dir.as_os_str().len() < 80,
        "{}",
        socket_dir.display()
    );
    assert_eq!(psql(&cluster, "postgres", "SELECT 1;"), "1");
    drop(cluster);
    assert!(
        !socket_dir.exists(),
        "the made-up socket directory is removed"
    );
}

#[test]
fn tcp_needs_the_password_the_socket_does_not() {
    let Some(binaries) = require("tcp_needs_the_password_the_socket_does_not") else {
        return;
    };
    let tmp = scratch();
    let options = ClusterOptions {
        tcp: Some([127, 0, 0, 1].into()),
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start(&binaries, &tmp.path().join("primary"), options).expect("start");
    let url = cluster.tcp_url("postgres").expect("a TCP URL");
    assert_eq!(
        binaries
            .psql_url(&url, "SELECT 1;")
            .expect("over TCP")
            .trim(),
        "1"
    );
    let without = format!(
        "postgresql://kakehashi@127.0.0.1:{}/postgres",
        cluster.port()
    );
    assert!(
        binaries.psql_url(&without, "SELECT 1;").is_err(),
        "TCP without the password is refused"
    );
    assert_eq!(psql(&cluster, "postgres", "SELECT 1;"), "1");
}

#[test]
fn a_directory_with_files_is_refused() {
    let Some(binaries) = require("a_directory_with_files_is_refused") else {
        return;
    };
    let tmp = scratch();
    fs::write(tmp.path().join("keep.txt"), "not a cluster").expect("write");
    let error =
        Cluster::start(&binaries, tmp.path(), ClusterOptions::default()).expect_err("not empty");
    assert!(matches!(error, Error::DirectoryNotEmpty { .. }), "{error}");
    assert_eq!(
        fs::read_to_string(tmp.path().join("keep.txt")).expect("untouched"),
        "not a cluster"
    );
}
