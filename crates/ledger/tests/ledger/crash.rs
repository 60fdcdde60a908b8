//! The parent runs this same test binary as a child writer (selected by an environment
//! variable), kills it with SIGKILL after a random delay, reopens the ledger and checks
//! that every transfer the child saw acknowledged is there, that every batch is there
//! whole or not at all, and that the audit is clean. Repeated on the same database.

use std::io::{BufRead, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::*;
use kakehashi_ledger::RecordWrite;

const CHILD_DIR_ENV: &str = "KAKEHASHI_LEDGER_CRASH_CHILD_DIR";
const CHILD_FIRST_ID_ENV: &str = "KAKEHASHI_LEDGER_CRASH_CHILD_FIRST_ID";
/// Set for a child that writes scattered ids (see [`Ids::Scattered`]).
const CHILD_SCATTERED_ENV: &str = "KAKEHASHI_LEDGER_CRASH_CHILD_SCATTERED";
/// Kill rounds: enough to hit every phase of the commit path many times, few enough to
/// finish in seconds.
const ROUNDS: u64 = 12;
/// Transfer ids each round may use, so rounds never collide.
const IDS_PER_ROUND: u128 = 1_000_000;
const CHILD_THREADS: u128 = 4;
const CHILD_ACCOUNTS: u128 = 10;
/// Longest the parent waits for a child's first submission before killing it anyway: a child
/// opens a small ledger in milliseconds, and in under a second on a machine loaded ten deep.
const CHILD_START_TIMEOUT: Duration = Duration::from_secs(30);

/// xorshift64*: the delays only need to vary, not to be unpredictable.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// Held by a test while it runs its kill rounds (see [`kill_rounds`]).
static KILL_ROUNDS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// How a child turns its counter into transfer ids.
#[derive(Clone, Copy)]
enum Ids {
    /// The counter itself: batches of consecutive ids, stored as runs.
    Ordered,
    /// The counter in the low half and a multiple of it in the high half: unique, never
    /// consecutive, so batches of 128 or more are stored as id tables, which the writer
    /// merges while the kills land.
    Scattered,
}

impl Ids {
    fn id(self, counter: u128) -> u128 {
        match self {
            Self::Ordered => counter,
            // Counters stay far below 2^64: the truncation keeps all of one.
            Self::Scattered => {
                u128::from((counter as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)) << 64 | counter
            }
        }
    }

    /// Transfers in the child's batch number `round` of thread `thread`.
    fn batch_len(self, round: u128, thread: u128) -> u128 {
        match self {
            // From 1 to 200, so commits range from tiny to large.
            Self::Ordered => 1 + (round * 37 + thread * 11) % 200,
            // From 100 to 699: most make a table, some stay runs of one.
            Self::Scattered => 100 + (round * 137 + thread * 71) % 600,
        }
    }
}

fn run_child(dir: &str, first_id: u128, ids: Ids) {
    let ledger = open(Path::new(dir));
    let accounts: Vec<NewAccount> = (1..=CHILD_ACCOUNTS)
        .map(|id| account(id, JPY, AccountFlags::NONE))
        .collect();
    ledger.create_accounts(&accounts, NOW).expect("accounts");
    let stdout = std::sync::Mutex::new(std::io::stdout());
    std::thread::scope(|scope| {
        for thread in 0..CHILD_THREADS {
            let (ledger, stdout) = (&ledger, &stdout);
            scope.spawn(move || {
                let mut id = first_id + thread * (IDS_PER_ROUND / CHILD_THREADS);
                for round in 0u128.. {
                    let len = ids.batch_len(round, thread);
                    let batch: Vec<NewTransfer> = (0..len)
                        .map(|n| {
                            let debit = 1 + (id + n) % CHILD_ACCOUNTS;
                            let credit = 1 + (id + n + 1) % CHILD_ACCOUNTS;
                            transfer(ids.id(id + n), debit, credit, 1 + n, JPY)
                        })
                        .collect();
                    {
                        let mut out = stdout.lock().expect("stdout");
                        writeln!(out, "submit {} {}", id, id + len - 1).expect("write");
                        out.flush().expect("flush");
                    }
                    // Each batch keeps a record with it, made durable by the same commit.
                    let last = id + len - 1;
                    let results = ledger
                        .create_transfers_with(&batch, NOW, move |_| {
                            Ok(vec![RecordWrite::Put {
                                key: batch_record_key(id),
                                value: last.to_be_bytes().to_vec(),
                            }])
                        })
                        .expect("answered");
                    assert!(results.iter().all(|r| *r == CreateTransferResult::Ok));
                    let mut out = stdout.lock().expect("stdout");
                    writeln!(out, "ack {} {}", id, id + len - 1).expect("write");
                    out.flush().expect("flush");
                    id += len;
                }
            });
        }
    });
}

/// The key of the record kept with the batch whose first id is `first`.
fn batch_record_key(first: u128) -> Vec<u8> {
    [&b"batch"[..], &first.to_be_bytes()].concat()
}

fn parse_ranges(output: &str, tag: &str) -> Vec<(u128, u128)> {
    output
        .lines()
        .filter_map(|line| line.strip_prefix(tag))
        .filter_map(|rest| {
            let mut parts = rest.split_whitespace().map(str::parse::<u128>);
            Some((parts.next()?.ok()?, parts.next()?.ok()?))
        })
        .collect()
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_transfer() {
    kill_rounds(
        "crash::sigkill_at_random_moments_loses_no_acknowledged_transfer",
        Ids::Ordered,
    );
}

/// The same with scattered ids: kills land while groups write id tables and while the
/// committer merges them (issue 13, item 5).
#[test]
fn sigkill_while_id_tables_are_written_and_merged_loses_no_acknowledged_transfer() {
    kill_rounds(
        "crash::sigkill_while_id_tables_are_written_and_merged_loses_no_acknowledged_transfer",
        Ids::Scattered,
    );
}

/// Runs the kill rounds of test `name` with children writing `ids`, or, in a child, the
/// child's writer.
fn kill_rounds(name: &str, ids: Ids) {
    if let (Ok(dir), Ok(first_id)) = (
        std::env::var(CHILD_DIR_ENV),
        std::env::var(CHILD_FIRST_ID_ENV),
    ) {
        let ids = match std::env::var(CHILD_SCATTERED_ENV) {
            Ok(_) => Ids::Scattered,
            Err(_) => Ids::Ordered,
        };
        run_child(&dir, first_id.parse().expect("first id"), ids);
        return;
    }
    // One test's kill rounds at a time: each times its kills from its child's first
    // submission, and another test's child flushing large batches to the same disk could
    // delay every first acknowledgement past the kill.
    let _alone = KILL_ROUNDS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary path");
    let mut random = 0x9E37_79B9_7F4A_7C15_u64 ^ u64::from(std::process::id());
    let mut acknowledged_total = 0usize;
    for round in 0..ROUNDS {
        let first_id = 1_000 + u128::from(round) * IDS_PER_ROUND;
        let mut command = Command::new(&exe);
        command
            .args([name, "--exact", "--nocapture"])
            .env(CHILD_DIR_ENV, dir.path())
            .env(CHILD_FIRST_ID_ENV, first_id.to_string());
        if matches!(ids, Ids::Scattered) {
            command.env(CHILD_SCATTERED_ENV, "1");
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("child starts");
        let stdout = child.stdout.take().expect("piped");
        let (first_submission, writing) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            let mut submitted = false;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The test harness prints lines of its own first ("running 1 test").
                if !submitted && line.starts_with("submit ") {
                    submitted = true;
                    // The parent may be waiting for this; a closed channel means it is not.
                    let _ = first_submission.send(());
                }
                text.push_str(&line);
                text.push('\n');
            }
            text
        });
        // Odd rounds count the delay from the start, so some kills land while sled is still
        // opening; even rounds count it from the child's first submission, so the kills land
        // in the commit path however long a loaded machine takes to start the child.
        if round % 2 == 0 {
            // A child that never writes has failed: its output (none) fails the checks below.
            let _ = writing.recv_timeout(CHILD_START_TIMEOUT);
        }
        // 20–400 ms: from "still opening sled" (or "first batch in flight") to "hundreds of
        // commits in".
        let delay = 20 + next_random(&mut random) % 380;
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        let output = reader.join().expect("reader");
        let acknowledged = parse_ranges(&output, "ack ");
        let submitted = parse_ranges(&output, "submit ");
        acknowledged_total += acknowledged.len();

        let ledger = open(dir.path());
        for (first, last) in &acknowledged {
            let batch: Vec<TransferId> = (*first..=*last).map(|n| TransferId(ids.id(n))).collect();
            let found = ledger.lookup_transfers(&batch).expect("lookup");
            assert!(
                found.iter().all(Option::is_some),
                "round {round}: acknowledged {first}..={last} lost"
            );
        }
        for (first, last) in &submitted {
            let batch: Vec<TransferId> = (*first..=*last).map(|n| TransferId(ids.id(n))).collect();
            let present = ledger
                .lookup_transfers(&batch)
                .expect("lookup")
                .iter()
                .filter(|t| t.is_some())
                .count();
            assert!(
                present == 0 || present == batch.len(),
                "round {round}: batch {first}..={last} is partly present ({present} of {})",
                batch.len()
            );
            // Its record is there exactly when the batch is.
            let record = ledger.record(&batch_record_key(*first)).expect("record");
            let expected = (present > 0).then(|| last.to_be_bytes().to_vec());
            assert_eq!(
                record, expected,
                "round {round}: batch {first}..={last} and its record disagree"
            );
        }
        ledger.close().expect("close");
        check_clean(dir.path());
    }
    assert!(
        acknowledged_total > 0,
        "no child ever got a batch acknowledged"
    );
}

const SIGNING_CHILD_DIR_ENV: &str = "KAKEHASHI_LEDGER_SIGNING_CHILD_DIR";

/// Issue 13, item 4, with a real kill: a writer that signs every fourth record is killed with
/// SIGKILL after six records. The records after its last signature are what the audit counts
/// and what `require_signed_head` refuses; a restart and a clean close sign them.
#[test]
fn a_writer_killed_after_its_last_signature_leaves_the_records_after_it_unsigned() {
    if let Ok(dir) = std::env::var(SIGNING_CHILD_DIR_ENV) {
        let options = Options {
            signed_head_records: 4,
            // Time never signs within the test: only the count does.
            signed_head_interval: Duration::from_secs(3_600),
            ..Options::default()
        };
        let ledger = Ledger::open(Path::new(&dir), node_key(), options).expect("opens");
        populate(&ledger);
        println!("written");
        std::io::stdout().flush().expect("flush");
        // Wait to be killed, holding the ledger open.
        loop {
            std::thread::park();
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(std::env::current_exe().expect("test binary path"))
        .args([
            "crash::a_writer_killed_after_its_last_signature_leaves_the_records_after_it_unsigned",
            "--exact",
            "--nocapture",
        ])
        .env(SIGNING_CHILD_DIR_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("child starts");
    let stdout = child.stdout.take().expect("piped");
    let written = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line == "written");
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    assert!(written, "the child did not write its records");

    let mut report = check_clean(dir.path());
    assert_eq!(report.records, 6);
    assert_eq!(report.checkpoints_verified, 0);
    assert_eq!(report.signed_heads_verified, 1);
    assert_eq!((report.last_signed_seq, report.records_unsigned), (4, 2));
    report.require_signed_head();
    assert_eq!(
        report
            .discrepancies
            .iter()
            .map(|d| d.location.to_string())
            .collect::<Vec<_>>(),
        ["journal record 5"]
    );
    open(dir.path()).close().expect("close");
    let report = check_clean(dir.path());
    assert_eq!((report.last_signed_seq, report.records_unsigned), (6, 0));
}
