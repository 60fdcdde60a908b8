//! A database failover under load (issue 15): a JP and an SG node as `kakehashi node run`
//! processes whose books live in PostgreSQL, on a primary with a synchronous streaming standby,
//! reached through one multi-host URL (`target_session_attrs=read-write`). `kakehashi replay`
//! sends payments both ways; mid-flight the primary is killed with SIGKILL (a power cut) and
//! the standby promoted. The nodes must find the new primary on their own, without a restart;
//! the replay runs go on (what the cut refused or left unanswered is sent again, or resolved by
//! the nodes' recovery); then nothing may be in doubt, every payment must be final with the
//! outcome replay saw acknowledged, a re-run must pay nothing twice, money must be conserved,
//! each schema's ledger must audit clean (chain, signatures under the node's key) and the pair
//! audit must agree (`storm::settle_and_verify`).
//!
//! Both nodes share one database, a schema each (the node's default, `kakehashi_<code>`): one
//! server, one failover and one URL for both, as the storage engine is built for (schemas keep
//! the books apart; each node's writer locks only its own schema's head row).
//!
//! The window that matters most: the primary dies after a commit reached the standby but before
//! the node heard the answer. The test makes the cut fall there rather than hope for it: it
//! holds the standby's WAL receiver until both nodes' writers wait in COMMIT, freezes the
//! primary's sessions, lets the standby catch up, and only then kills the primary. Each node's
//! ledger then stops its writer (an outcome unknown) and reopens on the promoted standby, where
//! that commit is; the payment is in doubt until recovery reads what was committed. It never
//! guesses: the re-run and the audits below would find a payment the books and the answers
//! disagree on.

use std::time::{Duration, Instant};

use kakehashi_e2e::kakehashi;
use kakehashi_e2e::pair::{self, NodeFiles, node_ports};
use kakehashi_pgcluster::{Cluster, ClusterOptions, PgBinaries, multi_host_url};
use serde_json::Value;

use crate::storm::{self, InDoubtWatch, Load, Pair};

/// Payments per direction and round: a round takes several seconds on two cores, so the kill
/// lands inside one.
const LINES: usize = 300;

/// Payments each node must have decided (its outbound counter) before the kill: the nodes are
/// warmed up and the replay is well under way, not starting.
const DECIDED_BEFORE_KILL: f64 = 40.0;

/// Longest the load may take to reach [`DECIDED_BEFORE_KILL`]: a few seconds on an idle
/// machine; this long is a hang.
const WARM_UP_PATIENCE: Duration = Duration::from_secs(180);

/// Longest both nodes may take to commit again after the promotion. A node's connections to
/// the killed primary end at once (unix sockets: the kernel closes them), its pool connects to
/// the promoted standby at the next call, and a stopped writer is reopened within a second of
/// backoff; this long is a hang (a node that never reconnects).
const RECONNECT_PATIENCE: Duration = Duration::from_secs(120);

/// Commits that must wait for the held standby before the cut: one per node's writer (each
/// commits its groups one at a time), so that both nodes lose an answer.
const HELD_COMMITS_MIN: usize = 2;

/// Longest the commits may take to pile up behind the held standby, and the standby to catch
/// up once let go: well under a second under load; this long is a hang.
const HOLD_PATIENCE: Duration = Duration::from_secs(60);

/// How long `replay` waits for a payment in doubt before reporting PDNG (the next run of the
/// round asks again).
const PENDING_WAIT_SECS: u64 = 2;

/// The database both nodes' schemas live in.
const DATABASE: &str = "books";

/// The two servers. Fields drop in order: the primary before its standby, since a running
/// primary's commits wait for a standby that is gone (when the test fails before the kill).
struct Servers {
    primary: Cluster,
    standby: Cluster,
}

impl Servers {
    fn start(binaries: &PgBinaries, dir: &std::path::Path) -> Self {
        let primary = Cluster::start(binaries, &dir.join("primary"), ClusterOptions::default())
            .expect("start the primary");
        primary
            .create_database(DATABASE)
            .expect("create the books' database");
        let standby = primary
            .start_sync_standby(&dir.join("standby"))
            .expect("start a synchronous standby");
        Self { primary, standby }
    }

    /// Makes the cut fall where an answer is lost, not the commit: holds the standby's WAL
    /// receiver (SIGSTOP) until at least [`HELD_COMMITS_MIN`] commits wait for it on the
    /// primary (both nodes' writers, each in COMMIT), freezes the primary's client sessions so
    /// that no answer leaves, lets the receiver go and waits until the standby has flushed all
    /// the primary flushed. The caller then kills the primary: those commits are on the
    /// standby, and their nodes never heard so. Returns how many commits were held.
    fn hold_commits_then_replicate(&self) -> usize {
        let receiver = self
            .standby
            .psql(DATABASE, "SELECT pid FROM pg_stat_wal_receiver;");
        let receiver = Stopped::new(pids(&receiver.expect("the standby's WAL receiver")));
        assert_eq!(receiver.pids.len(), 1, "one WAL receiver on the standby");
        let waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep';";
        let holding = Instant::now();
        let held = loop {
            let held: usize = self
                .primary
                .psql(DATABASE, waiting)
                .expect("the primary answers")
                .trim()
                .parse()
                .expect("a count");
            if held >= HELD_COMMITS_MIN {
                break held;
            }
            assert!(
                holding.elapsed() < HOLD_PATIENCE,
                "{held} commit(s) waited for the held standby after {HOLD_PATIENCE:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let sessions = self
            .primary
            .psql(
                DATABASE,
                "SELECT pid FROM pg_stat_activity \
                 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid();",
            )
            .expect("the primary's sessions");
        let frozen = Stopped::new(pids(&sessions));
        let flushed = self
            .primary
            .psql(DATABASE, "SELECT pg_current_wal_flush_lsn();")
            .expect("the primary's flushed WAL");
        drop(receiver);
        let caught_up = format!("SELECT pg_last_wal_receive_lsn() >= '{}';", flushed.trim());
        let replicating = Instant::now();
        while self
            .standby
            .psql(DATABASE, &caught_up)
            .expect("the standby answers")
            .trim()
            != "t"
        {
            assert!(
                replicating.elapsed() < HOLD_PATIENCE,
                "the standby did not receive the primary's WAL up to {flushed} within \
                 {HOLD_PATIENCE:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // Killed with the primary, never continued: an answer sent now would close the window.
        frozen.forget();
        held
    }

    /// The journal head (last seq) of each node's schema, JP then SG, read on the standby.
    fn heads(&self) -> Option<[u64; 2]> {
        let text = self
            .standby
            .psql(
                DATABASE,
                "SELECT (SELECT coalesce(max(seq), 0) FROM kakehashi_jp.journal), \
                 (SELECT coalesce(max(seq), 0) FROM kakehashi_sg.journal);",
            )
            .ok()?;
        let (jp, sg) = text.trim().split_once('|')?;
        Some([jp.parse().ok()?, sg.parse().ok()?])
    }
}

/// Server processes stopped with SIGSTOP, continued when dropped (unless forgotten).
struct Stopped {
    pids: Vec<u32>,
}

impl Stopped {
    fn new(pids: Vec<u32>) -> Self {
        signal("-STOP", &pids);
        Self { pids }
    }

    /// Leaves them stopped (the caller kills them).
    fn forget(mut self) {
        self.pids.clear();
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        signal("-CONT", &self.pids);
    }
}

/// Sends `signal` to `pids` with kill(1) (the servers run as `postgres` when the test runs
/// as root, which may signal them; otherwise as the test's own user).
fn signal(signal: &str, pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let status = std::process::Command::new("kill")
        .arg(signal)
        .args(pids.iter().map(u32::to_string))
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} {pids:?}: {status}");
}

/// The process ids psql printed, one a line.
fn pids(text: &str) -> Vec<u32> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.trim().parse().expect("a pid"))
        .collect()
}

/// Puts the node of `files` on PostgreSQL at `url`, in its default schema: its configuration's
/// `[storage]` section (the sled page cache) becomes the PostgreSQL backend's.
fn on_postgres(files: &NodeFiles, url: &str) {
    let text = std::fs::read_to_string(&files.config).expect("read the configuration");
    let mut replaced = false;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            if line.trim_start().starts_with("cache_mib") {
                replaced = true;
                format!("backend = \"postgres\"\nurl = \"{url}\"")
            } else {
                line.to_owned()
            }
        })
        .collect();
    assert!(
        replaced,
        "the devnet configuration has a [storage] cache_mib"
    );
    std::fs::write(&files.config, lines.join("\n") + "\n").expect("write the configuration");
}

/// Payments the node has decided as sender (`kakehashi_payments_total` outbound, every
/// status), or `None` when it does not answer.
fn decided_outbound(files: &NodeFiles) -> Option<f64> {
    let text = pair::scrape_metrics(files)?;
    Some(
        text.lines()
            .filter(|line| line.starts_with("kakehashi_payments_total{direction=\"outbound\""))
            .filter_map(|line| line.rsplit_once(' ')?.1.trim().parse::<f64>().ok())
            .sum(),
    )
}

/// Each node's schema, audited on the promoted standby once the nodes stopped, through
/// `kakehashi ledger audit --config`: the journal's chain and hashes, the balances, and the
/// signed heads and checkpoints under the key of the node's signing certificate, with the head
/// signed (a clean stop signs it).
fn audit_schemas(pair: &Pair) {
    for files in &pair.files {
        let config = files.config.to_str().expect("UTF-8 path");
        let audit = kakehashi(&[
            "ledger",
            "audit",
            "--config",
            config,
            "--require-signed-head",
            "--json",
        ]);
        let context = format!(
            "{}: ledger audit exit {:?}\n{}\n{}",
            files.code,
            audit.status.code(),
            String::from_utf8_lossy(&audit.stdout),
            String::from_utf8_lossy(&audit.stderr)
        );
        assert_eq!(audit.status.code(), Some(0), "{context}");
        let report: Value = serde_json::from_slice(&audit.stdout)
            .unwrap_or_else(|e| panic!("no JSON report ({e}): {context}"));
        assert_eq!(report["clean"], true, "{context}");
        assert_eq!(report["records_unsigned"], 0, "{context}");
        assert!(
            report["records"].as_u64().is_some_and(|n| n > 0),
            "{context}"
        );
    }
}

#[test]
fn nodes_on_postgres_survive_the_primary_killed_mid_replay_and_lose_no_payment() {
    let Some(binaries) = kakehashi_pgcluster::require("failover") else {
        return;
    };
    let started = Instant::now();
    // Declared in this order so that they drop in the reverse one, on every exit: the replay
    // processes, the nodes (killed if still running) and their directory, the servers (the
    // primary first), then the servers' directory.
    let pg_dir = tempfile::tempdir().expect("temp dir");
    // As root the servers run as `postgres`, who must get through the test's directory to
    // its own (a new temporary directory is 0700).
    std::fs::set_permissions(
        pg_dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("open the servers' directory to their user");
    let mut servers = Servers::start(&binaries, pg_dir.path());
    let url = multi_host_url(&[&servers.primary, &servers.standby], DATABASE);
    let (jp_ports, sg_ports) = (node_ports(), node_ports());
    let mut pair = Pair::start_configured(
        tempfile::tempdir().expect("temp dir"),
        [jp_ports, sg_ports],
        [sg_ports[1], jp_ports[1]],
        |files| on_postgres(files, &url),
    );
    let mut load = Load::start(&pair, "failover", LINES, PENDING_WAIT_SECS);
    let mut watch = InDoubtWatch::default();

    // 1. Under way: both nodes have decided payments, and more are in flight.
    let warming = Instant::now();
    let decided_at_kill = loop {
        pair.check_alive();
        load.pump(&pair, true);
        let decided = [
            decided_outbound(&pair.files[0]),
            decided_outbound(&pair.files[1]),
        ];
        if decided
            .iter()
            .all(|d| d.is_some_and(|n| n >= DECIDED_BEFORE_KILL))
        {
            break decided.map(Option::unwrap_or_default);
        }
        assert!(
            warming.elapsed() < WARM_UP_PATIENCE,
            "the nodes decided {decided:?} payments in {WARM_UP_PATIENCE:?}\n{}",
            pair.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    };

    // 2. The window that matters: commits on the standby whose answers never reach the nodes.
    let held = servers.hold_commits_then_replicate();
    let heads_at_kill = servers.heads().expect("the standby answers");

    // 3. The power cut, then the promotion.
    let killing = Instant::now();
    servers.primary.kill();
    let killed = killing.elapsed();
    let promoting = Instant::now();
    servers.standby.promote().expect("promote the standby");
    let promoted_in = promoting.elapsed();
    let promoted = Instant::now();
    let heads_at_promotion = servers.heads().expect("the promoted standby answers");

    // 4. The nodes find the new primary on their own: each schema's journal grows again.
    let mut reconnected: [Option<Duration>; 2] = [None, None];
    let mut sampled = Instant::now();
    while reconnected.iter().any(Option::is_none) {
        pair.check_alive();
        load.pump(&pair, true);
        if let Some(heads) = servers.heads() {
            for (index, head) in heads.into_iter().enumerate() {
                if head > heads_at_promotion[index] {
                    reconnected[index].get_or_insert_with(|| promoted.elapsed());
                }
            }
        }
        if sampled.elapsed() >= Duration::from_millis(100) {
            watch.sample(&pair);
            sampled = Instant::now();
        }
        assert!(
            promoted.elapsed() < RECONNECT_PATIENCE,
            "the nodes did not commit on the promoted standby within {RECONNECT_PATIENCE:?} \
             (JP, SG: {reconnected:?})\n{}",
            pair.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // 5. The replay runs under way finish (a round left unfinished by the cut runs again);
    //    recovery empties the in-doubt lists.
    while !load.idle() {
        pair.check_alive();
        load.pump(&pair, false);
        watch.sample(&pair);
        std::thread::sleep(Duration::from_millis(20));
    }
    let heal = storm::wait_in_doubt_zero(&mut pair, promoted);
    // Zero now: this closes the last stretch in doubt the watch saw.
    watch.sample(&pair);
    // The payments the cut caught in flight, as replay saw them: left undecided (PDNG) or
    // unanswered (ERROR) by their run, or decided only by asking after the submission went
    // unanswered (stage "status").
    let caught = load
        .results()
        .filter(|r| {
            matches!(r["status"].as_str(), Some("PDNG" | "ERROR")) || r["stage"] == "status"
        })
        .count();
    // Each node lost the answer to a commit (held above), so its ledger's writer stopped and
    // was opened again on the promoted standby, which holds that commit.
    let reopened = pair.files.each_ref().map(|files| {
        std::fs::read_to_string(files.log())
            .unwrap_or_default()
            .matches("the PostgreSQL ledger is open again")
            .count()
    });
    assert!(
        reopened.iter().all(|&n| n >= 1),
        "each node's ledger reopens after the commit whose answer it lost (JP, SG: \
         {reopened:?})\n{}",
        pair.logs()
    );
    let millis = |d: Duration| format!("{} ms", d.as_millis());
    storm::print_storm_report(
        "failover: primary killed mid-replay, standby promoted",
        &[
            (
                "decided before the kill (JP, SG)",
                format!("{decided_at_kill:?} outbound payments"),
            ),
            (
                "journal heads at the kill (JP, SG)",
                format!("{heads_at_kill:?} on the standby; {heads_at_promotion:?} promoted"),
            ),
            (
                "kill -9, promote",
                format!("{}, {}", millis(killed), millis(promoted_in)),
            ),
            (
                "first commit after promotion (JP, SG)",
                format!(
                    "{}, {}",
                    reconnected[0].map(millis).unwrap_or_default(),
                    reconnected[1].map(millis).unwrap_or_default()
                ),
            ),
            (
                "commits held on the standby",
                format!("{held} (on the standby at the kill, unanswered on the primary)"),
            ),
            (
                "ledger reopened (JP, SG)",
                format!("{reopened:?} times after a commit of unknown outcome"),
            ),
            (
                "caught in flight by the cut",
                format!("{caught} payments (PDNG, ERROR, or decided by a status query)"),
            ),
            (
                "payments",
                format!(
                    "{} ({} rounds of {LINES} one way, {} replay runs, {} could not reach a node)",
                    load.payments(),
                    load.rounds(),
                    load.runs,
                    load.unconnected
                ),
            ),
        ],
        &load,
        &watch,
        heal,
        "the failover",
        "the promotion",
    );

    // 6. The verdicts: re-runs, status, money, and the pair audit (which stops the nodes).
    let verdict = storm::settle_verify_and_print(&mut pair, &mut load, started);
    audit_schemas(&pair);
    assert!(verdict.settled > 0, "{verdict:?}");
}
