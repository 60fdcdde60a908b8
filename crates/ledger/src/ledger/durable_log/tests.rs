//! The durable log: torn and stale tails, and processes killed at every step of its path.

/// Makes new logs this many bytes long (so that a test reaches the end of the log soon).
pub(crate) const LOG_LEN_ENV: &str = "KAKEHASHI_LEDGER_TEST_DURABLE_LOG_LEN";
/// `name:count`: the process aborts at the `count`th time it reaches crash point `name`.
const CRASH_POINT_ENV: &str = "KAKEHASHI_LEDGER_TEST_CRASH_POINT";

/// Aborts the process (no destructor runs, no buffer is flushed: what a SIGKILL leaves) when
/// [`CRASH_POINT_ENV`] names this point and this is its `count`th visit, after running
/// `before`.
pub(crate) fn crash_point(name: &str, before: impl FnOnce()) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static VISITS: AtomicU64 = AtomicU64::new(0);
    let Ok(wanted) = std::env::var(CRASH_POINT_ENV) else {
        return;
    };
    let Some((point, count)) = wanted.split_once(':') else {
        return;
    };
    if point != name {
        return;
    }
    let visits = VISITS.fetch_add(1, Ordering::SeqCst) + 1;
    if count.parse::<u64>().is_ok_and(|count| count == visits) {
        before();
        std::process::abort();
    }
}

use std::io::{BufRead, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use ed25519_dalek::SigningKey;

use super::super::awaited::tests::block_on;
use super::super::trees::{META_LOG_SEQ, PREFIX_META, Trees, Writes, open_db};
use super::{encode_record, encode_record_into, records, replay};
use crate::model::{AccountId, NewAccount, NewTransfer, Timestamp, TransferId};
use crate::result::CreateTransferResult;
use crate::{AuditOptions, Error, Ledger, Options, RecordWrite};

const NOW: Timestamp = Timestamp(1_764_000_000_000_000_000);
const KEY: &[u8] = b"test_key";

// ---- Reading the log: torn and stale tails -------------------------------------------------

/// The payload of group `seq`: it names itself and sets `KEY` to `value`.
fn payload(seq: u64, value: &[u8]) -> Vec<u8> {
    let mut writes = Writes::default();
    writes.insert(PREFIX_META, META_LOG_SEQ, &seq.to_le_bytes());
    writes.insert(PREFIX_META, KEY, value);
    writes.record().expect("small").to_vec()
}

/// A log holding `records` back to back (each padded to its pages) in a zeroed file.
fn log(records: &[(u64, &[u8])]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (seq, value) in records {
        bytes.extend(encode_record(*seq, &payload(*seq, value)).expect("encodes"));
    }
    bytes.resize(bytes.len() + 64 * 1024, 0);
    bytes
}

#[test]
fn a_record_encoded_over_a_longer_one_is_the_record_alone() {
    // The log reuses one buffer for every append: what an earlier, longer record left in it
    // must not reach the file (its padding would then not be zeros).
    let long = payload(1, &[0xAB; 9000]);
    let short = payload(2, b"v");
    let mut buffer = Vec::new();
    encode_record_into(&mut buffer, 1, &long).expect("encodes");
    assert_eq!(buffer.len(), 3 * 4096);
    encode_record_into(&mut buffer, 2, &short).expect("encodes");
    assert_eq!(buffer, encode_record(2, &short).expect("encodes"));
    assert_eq!(buffer.len(), 4096);
    assert!(buffer[20 + short.len()..].iter().all(|b| *b == 0));
    let read: Vec<_> = records(&buffer).collect();
    assert_eq!(read, vec![(2, short.as_slice())]);
}

fn trees() -> (tempfile::TempDir, Trees) {
    let dir = tempfile::tempdir().expect("tempdir");
    let trees = Trees::open(open_db(dir.path(), 1024 * 1024).expect("sled opens")).expect("trees");
    (dir, trees)
}

fn key_value(trees: &Trees) -> Option<Vec<u8>> {
    trees
        .meta
        .get(KEY)
        .expect("reads")
        .map(|value| value.to_vec())
}

#[test]
fn replay_applies_the_records_after_sled_and_stops_at_a_torn_one() {
    let (_dir, trees) = trees();
    let mut bytes = log(&[(1, b"one"), (2, b"two"), (3, b"three")]);
    // Tear record 3: one payload byte differs from what its checksum covers.
    let third = 2 * 4096 + super::HEADER_LEN + 3;
    bytes[third] ^= 0x40;
    assert_eq!(replay(&trees, &bytes).expect("replays"), 2);
    assert_eq!(trees.log_seq().expect("reads"), 2);
    assert_eq!(key_value(&trees).as_deref(), Some(&b"two"[..]));
}

#[test]
fn replay_stops_at_a_record_of_an_earlier_pass_over_the_file() {
    let (_dir, trees) = trees();
    // Records 7 and 8 overwrote the start of a file whose next page still holds record 3 of
    // an earlier pass, followed by record 4: neither continues the sequence.
    let bytes = log(&[(7, b"seven"), (8, b"eight"), (3, b"three"), (4, b"four")]);
    let mut writes = Writes::default();
    writes.insert(PREFIX_META, META_LOG_SEQ, &6u64.to_le_bytes());
    trees.apply(writes, "test").expect("applies");
    assert_eq!(replay(&trees, &bytes).expect("replays"), 8);
    assert_eq!(key_value(&trees).as_deref(), Some(&b"eight"[..]));
}

#[test]
fn replay_skips_the_records_sled_holds_already() {
    let (_dir, trees) = trees();
    let mut writes = Writes::default();
    writes.insert(PREFIX_META, META_LOG_SEQ, &3u64.to_le_bytes());
    writes.insert(PREFIX_META, KEY, b"three");
    trees.apply(writes, "test").expect("applies");
    let bytes = log(&[(1, b"one"), (2, b"two"), (3, b"three")]);
    assert_eq!(replay(&trees, &bytes).expect("replays"), 3);
    // Record 1 would have set the key back.
    assert_eq!(key_value(&trees).as_deref(), Some(&b"three"[..]));
    // A zeroed log (a new one) holds nothing.
    assert_eq!(replay(&trees, &vec![0; 8192]).expect("replays"), 3);
}

#[test]
fn a_log_that_skips_groups_sled_lacks_is_refused() {
    let (_dir, trees) = trees();
    let bytes = log(&[(2, b"two"), (3, b"three")]);
    let error = replay(&trees, &bytes).expect_err("refused");
    assert!(
        matches!(&error, Error::Corrupt { what, .. } if what == "durable log"),
        "{error:?}"
    );
    assert_eq!(key_value(&trees), None);
}

// ---- Processes killed inside the durable path -----------------------------------------------

const CHILD_DIR_ENV: &str = "KAKEHASHI_LEDGER_TEST_DURABLE_CHILD_DIR";
const CHILD_FIRST_ID_ENV: &str = "KAKEHASHI_LEDGER_TEST_DURABLE_CHILD_FIRST_ID";
/// Set: the child only opens and closes the ledger (a replay at open is what is tested).
const CHILD_OPEN_ONLY_ENV: &str = "KAKEHASHI_LEDGER_TEST_DURABLE_CHILD_OPEN_ONLY";
const CHILD_THREADS: u128 = 2;
const CHILD_ACCOUNTS: u128 = 4;
/// Batches each child thread submits at most; a crash point is reached long before.
const CHILD_BATCHES_MAX: u128 = 2_000;
const IDS_PER_CHILD: u128 = 1_000_000;
const JPY: u32 = 392;

fn key() -> SigningKey {
    SigningKey::from_bytes(&[9; 32])
}

/// Options under which only the durable log's path and its restarts flush sled: no signature
/// by time, no checkpoint within a test.
fn options() -> Options {
    Options {
        signed_head_interval: Duration::from_secs(3_600),
        checkpoint_interval: 1 << 20,
        ..Options::default()
    }
}

/// The child's part when the parent started it; `false` in the parent.
fn child_role() -> bool {
    let Ok(dir) = std::env::var(CHILD_DIR_ENV) else {
        return false;
    };
    let ledger = Ledger::open(Path::new(&dir), key(), options()).expect("opens");
    let stdout = std::sync::Mutex::new(std::io::stdout());
    let say = |line: String| {
        let mut out = stdout.lock().expect("stdout");
        writeln!(out, "{line}").expect("write");
        out.flush().expect("flush");
    };
    say("opened".into());
    if std::env::var(CHILD_OPEN_ONLY_ENV).is_ok() {
        ledger.close().expect("closes");
        return true;
    }
    let first_id: u128 = std::env::var(CHILD_FIRST_ID_ENV)
        .expect("first id")
        .parse()
        .expect("number");
    let accounts: Vec<NewAccount> = (1..=CHILD_ACCOUNTS)
        .map(|id| NewAccount {
            id: AccountId(id),
            ledger: JPY,
            code: 1,
            ..NewAccount::default()
        })
        .collect();
    // Already there after the first child: `exists`, which is fine.
    ledger.create_accounts(&accounts, NOW).expect("accounts");
    std::thread::scope(|scope| {
        for thread in 0..CHILD_THREADS {
            let (ledger, say) = (&ledger, &say);
            scope.spawn(move || {
                let mut id = first_id + thread * (IDS_PER_CHILD / CHILD_THREADS);
                for round in 0..CHILD_BATCHES_MAX {
                    // One to three transfers: small groups, which go through the log.
                    let len = 1 + (round + thread) % 3;
                    let batch: Vec<NewTransfer> = (0..len)
                        .map(|n| NewTransfer {
                            id: TransferId(id + n),
                            debit_account_id: AccountId(1 + (id + n) % CHILD_ACCOUNTS),
                            credit_account_id: AccountId(1 + (id + n + 1) % CHILD_ACCOUNTS),
                            amount: 1 + n,
                            ledger: JPY,
                            code: 1,
                            ..NewTransfer::default()
                        })
                        .collect();
                    say(format!("submit {} {}", id, id + len - 1));
                    // Every batch keeps a record with it (see `crate::records`): its key
                    // names the batch's first id, its value the last.
                    let last = id + len - 1;
                    let records = move |outcomes: &[crate::TransferOutcome]| {
                        assert!(outcomes.iter().all(|o| o.timestamp.is_some()));
                        Ok(vec![RecordWrite::Put {
                            key: batch_record_key(id),
                            value: last.to_be_bytes().to_vec(),
                        }])
                    };
                    // Thread 0 blocks on its calls, thread 1 awaits them: both are answered
                    // only once durable.
                    let results = if thread == 0 {
                        ledger.create_transfers_with(&batch, NOW, records)
                    } else {
                        block_on(ledger.create_transfers_with_async(&batch, NOW, records))
                    }
                    .expect("answered");
                    assert!(results.iter().all(|r| *r == CreateTransferResult::Ok));
                    say(format!("ack {} {}", id, id + len - 1));
                    if round % 4 == 0 {
                        // A record alone, in whatever group is next.
                        say(format!("submit-record {id} {id}"));
                        let writes = vec![RecordWrite::Put {
                            key: solo_record_key(id),
                            value: vec![1],
                        }];
                        if thread == 0 {
                            ledger.write_records(writes)
                        } else {
                            block_on(ledger.write_records_async(writes))
                        }
                        .expect("answered");
                        say(format!("ack-record {id} {id}"));
                    }
                    id += len;
                }
            });
        }
    });
    say("done".into());
    ledger.close().expect("closes");
    true
}

/// Runs test `test` of this binary as a child on `dir`, with `env`, to its end; returns its
/// output and whether it succeeded.
fn run_child(test: &str, dir: &Path, env: &[(&str, String)]) -> (String, bool) {
    let mut command = Command::new(std::env::current_exe().expect("test binary path"));
    command
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("child starts");
    let stdout = child.stdout.take().expect("piped");
    let output: String = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .map(|line| line + "\n")
        .collect();
    let status = child.wait().expect("reaped");
    (output, status.success())
}

/// The key of the record kept with the batch whose first id is `first`.
fn batch_record_key(first: u128) -> Vec<u8> {
    [&b"batch"[..], &first.to_be_bytes()].concat()
}

/// The key of a record written alone after the batch whose first id is `first`.
fn solo_record_key(first: u128) -> Vec<u8> {
    [&b"solo"[..], &first.to_be_bytes()].concat()
}

fn ranges(output: &str, tag: &str) -> Vec<(u128, u128)> {
    output
        .lines()
        .filter_map(|line| line.strip_prefix(tag))
        .filter_map(|rest| {
            let mut parts = rest.split_whitespace().map(str::parse::<u128>);
            Some((parts.next()?.ok()?, parts.next()?.ok()?))
        })
        .collect()
}

/// Reopens the ledger the killed child left: every batch it saw acknowledged is there, every
/// batch it submitted is there whole or not at all, with its record exactly when its transfers
/// are there, every record written alone and acknowledged is there, and the audit is clean
/// (records are not ledger state). Returns how many batches were acknowledged.
fn check_after_kill(dir: &Path, output: &str) -> usize {
    let acknowledged = ranges(output, "ack ");
    let ledger = Ledger::open(dir, key(), options()).expect("reopens");
    for (first, last) in &acknowledged {
        let ids: Vec<TransferId> = (*first..=*last).map(TransferId).collect();
        let found = ledger.lookup_transfers(&ids).expect("lookup");
        assert!(
            found.iter().all(Option::is_some),
            "acknowledged {first}..={last} lost"
        );
    }
    for (first, last) in ranges(output, "submit ") {
        let ids: Vec<TransferId> = (first..=last).map(TransferId).collect();
        let present = ledger
            .lookup_transfers(&ids)
            .expect("lookup")
            .iter()
            .filter(|t| t.is_some())
            .count();
        assert!(
            present == 0 || present == ids.len(),
            "batch {first}..={last} is partly present ({present} of {})",
            ids.len()
        );
        let record = ledger.record(&batch_record_key(first)).expect("record");
        if present == 0 {
            assert_eq!(
                record, None,
                "batch {first}..={last}: a record without its batch"
            );
        } else {
            assert_eq!(
                record,
                Some(last.to_be_bytes().to_vec()),
                "batch {first}..={last}: present without its record"
            );
        }
    }
    for (first, _) in ranges(output, "ack-record ") {
        let record = ledger.record(&solo_record_key(first)).expect("record");
        assert_eq!(record, Some(vec![1]), "acknowledged record {first} lost");
    }
    ledger.close().expect("closes");
    // The offline reader sees the same records as the node.
    let records = crate::LedgerRecords::open(dir).expect("opens offline");
    for (first, last) in &acknowledged {
        let record = records.record(&batch_record_key(*first)).expect("record");
        assert_eq!(record, Some(last.to_be_bytes().to_vec()));
    }
    drop(records);
    let report = crate::audit(dir, &AuditOptions::default()).expect("audit runs");
    assert!(report.is_clean(), "{:#?}", report.discrepancies);
    acknowledged.len()
}

/// Kills a writer at `point` (`name:count`) on a fresh ledger whose log is `log_len` bytes,
/// three times in a row on the same ledger, checking after each kill.
fn kill_writer_at(test: &str, point: &str, log_len: u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut acknowledged = 0;
    for round in 0..3u128 {
        let (output, success) = run_child(
            test,
            dir.path(),
            &[
                (
                    CHILD_FIRST_ID_ENV,
                    (1_000 + round * IDS_PER_CHILD).to_string(),
                ),
                (CRASH_POINT_ENV, point.to_string()),
                (LOG_LEN_ENV, log_len.to_string()),
            ],
        );
        assert!(
            !success && !output.contains("done"),
            "round {round}: the child never reached {point}:\n{output}"
        );
        acknowledged += check_after_kill(dir.path(), &output);
    }
    assert!(acknowledged > 0, "no batch was ever acknowledged");
}

#[test]
fn killed_after_the_record_is_written_before_its_fdatasync() {
    let test =
        "ledger::durable_log::tests::killed_after_the_record_is_written_before_its_fdatasync";
    if child_role() {
        return;
    }
    kill_writer_at(test, "log_written:40", super::LOG_LEN_DEFAULT);
}

#[test]
fn killed_after_the_fdatasync_before_sled_has_the_group() {
    let test = "ledger::durable_log::tests::killed_after_the_fdatasync_before_sled_has_the_group";
    if child_role() {
        return;
    }
    kill_writer_at(test, "log_synced:40", super::LOG_LEN_DEFAULT);
}

#[test]
fn killed_with_half_a_logged_group_on_disk_in_sled() {
    let test = "ledger::durable_log::tests::killed_with_half_a_logged_group_on_disk_in_sled";
    if child_role() {
        return;
    }
    kill_writer_at(test, "half_applied:40", super::LOG_LEN_DEFAULT);
}

#[test]
fn killed_when_the_full_log_starts_over() {
    let test = "ledger::durable_log::tests::killed_when_the_full_log_starts_over";
    if child_role() {
        return;
    }
    // 16 pages: the log starts over every 16 or fewer groups; killed at its second restart,
    // after sled's flush and before the first record of the new pass.
    kill_writer_at(test, "log_restarted:2", 16 * 4096);
    // And killed just after that first record of a new pass is synced: the rest of the file
    // holds the previous pass, which must not be replayed.
    kill_writer_at(test, "log_synced:20", 16 * 4096);
}

#[test]
fn killed_during_the_replay_at_open() {
    let test = "ledger::durable_log::tests::killed_during_the_replay_at_open";
    if child_role() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // A writer killed after 30 groups, none of which sled flushed: the log holds them all.
    let (written, success) = run_child(
        test,
        dir.path(),
        &[
            (CHILD_FIRST_ID_ENV, "1000".to_string()),
            (CRASH_POINT_ENV, "log_synced:30".to_string()),
        ],
    );
    assert!(!success && !written.contains("done"), "{written}");
    // The next open is killed after re-applying two of them, and the one after that after
    // re-applying one (the first two again, or none if sled kept them).
    for point in ["replay_applied:2", "replay_applied:1"] {
        let (opened, success) = run_child(
            test,
            dir.path(),
            &[
                (CHILD_OPEN_ONLY_ENV, String::new()),
                (CRASH_POINT_ENV, point.to_string()),
            ],
        );
        assert!(
            !success && !opened.contains("opened"),
            "the open at {point} replayed nothing: {opened}"
        );
    }
    assert!(check_after_kill(dir.path(), &written) > 0);
}
