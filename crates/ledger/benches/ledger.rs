//! Ledger benchmarks. Run with `cargo bench -p kakehashi-ledger`.
//!
//! - `fsync/append_4k`: the machine's raw durability cost (append 4 KiB, `fdatasync`), the
//!   yardstick for the next one.
//! - `fsync/overwrite_4k`: overwrite 4 KiB of a file written with zeros beforehand, then
//!   `fdatasync`: what the ledger's durable log pays per small group commit (no metadata to
//!   commit), its floor.
//! - `durable/single_transfer`: one caller, one transfer per call; costs one group commit.
//! - `durable/batch_8190`: throughput of full batches, one durable commit per batch, with ids
//!   allocated in order (a counter, as TigerBeetle advises): the transfer index stores each
//!   batch as one run.
//! - `durable/batch_8190_scattered_ids`: the same with ids scattered over the id space, so
//!   that every transfer is a run of its own: each batch is stored as one id table, which the
//!   writer merges with the earlier ones between batches.
//! - `group_commit/{1,64}_callers`: single-transfer calls from 1 vs 64 threads that live
//!   across samples; the ratio of their throughputs is what group commit buys.

// The same allocator as the `kakehashi` binary (see ARCHITECTURE.md, "Allocation").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::SigningKey;
use kakehashi_ledger::{
    AccountId, BATCH_LEN_MAX, CreateTransferResult, Ledger, NewAccount, NewTransfer, Options,
    Timestamp, TransferId,
};

const JPY: u32 = 392;
/// Accounts the transfers spread over: enough that a full batch touches thousands of them.
const ACCOUNTS: u64 = 10_000;
const NOW: Timestamp = Timestamp(1_764_000_000_000_000_000);
/// A 4 KiB block, the unit of the raw fsync comparison.
const BLOCK_LEN: usize = 4096;
/// The pre-zeroed file `fsync/overwrite_4k` cycles through (the durable log's size).
const OVERWRITE_FILE_LEN: u64 = 4 * 1024 * 1024;

struct Fixture {
    _dir: tempfile::TempDir,
    ledger: Ledger,
    next_id: AtomicU64,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = Ledger::open(
        dir.path(),
        SigningKey::from_bytes(&[1; 32]),
        Options::default(),
    )
    .expect("ledger opens");
    let ids: Vec<u64> = (1..=ACCOUNTS).collect();
    for chunk in ids.chunks(BATCH_LEN_MAX) {
        let accounts: Vec<NewAccount> = chunk
            .iter()
            .map(|id| NewAccount {
                id: AccountId(u128::from(*id)),
                ledger: JPY,
                code: 1,
                ..NewAccount::default()
            })
            .collect();
        ledger.create_accounts(&accounts, NOW).expect("accounts");
    }
    Fixture {
        _dir: dir,
        ledger,
        next_id: AtomicU64::new(1),
    }
}

fn transfer(id: u64) -> NewTransfer {
    let debit = 1 + id % ACCOUNTS;
    let credit = 1 + (id.wrapping_mul(7_919) + 1) % ACCOUNTS;
    let credit = if credit == debit {
        1 + debit % ACCOUNTS
    } else {
        credit
    };
    NewTransfer {
        id: TransferId(u128::from(id)),
        debit_account_id: AccountId(u128::from(debit)),
        credit_account_id: AccountId(u128::from(credit)),
        amount: u128::from(1 + id % 1_000),
        ledger: JPY,
        code: 1,
        ..NewTransfer::default()
    }
}

fn submit(fixture: &Fixture, len: u64) {
    submit_ids(fixture, len, u128::from);
}

/// A bijection of the counter (an odd multiplier modulo 2^64, moved to the high half), so the
/// ids are unique but never consecutive.
fn scattered(n: u64) -> u128 {
    u128::from(n.wrapping_mul(0x9e37_79b9_7f4a_7c15)) << 64 | 1
}

fn submit_ids(fixture: &Fixture, len: u64, id: impl Fn(u64) -> u128) {
    let first = fixture.next_id.fetch_add(len, Ordering::Relaxed);
    let batch: Vec<NewTransfer> = (first..first + len)
        .map(|n| NewTransfer {
            id: TransferId(id(n)),
            ..transfer(n)
        })
        .collect();
    let results = fixture
        .ledger
        .create_transfers(&batch, NOW)
        .expect("answered");
    assert!(results.iter().all(|r| *r == CreateTransferResult::Ok));
}

fn raw_fsync(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("append.log"))
        .expect("file");
    let block = [0x5a_u8; BLOCK_LEN];
    let mut group = c.benchmark_group("fsync");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    group.bench_function("append_4k", |b| {
        b.iter(|| {
            file.write_all(&block).expect("write");
            file.sync_data().expect("fdatasync");
        });
    });
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(dir.path().join("overwrite.log"))
        .expect("file");
    file.write_all(&vec![0; OVERWRITE_FILE_LEN as usize])
        .expect("zeroes");
    file.sync_all().expect("fsync");
    let mut offset = 0;
    group.bench_function("overwrite_4k", |b| {
        b.iter(|| {
            file.write_all_at(&block, offset).expect("write");
            file.sync_data().expect("fdatasync");
            offset = (offset + BLOCK_LEN as u64) % OVERWRITE_FILE_LEN;
        });
    });
    group.finish();
}

fn durable(c: &mut Criterion) {
    let fixture = fixture();
    let mut group = c.benchmark_group("durable");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(1));
    group.bench_function("single_transfer", |b| b.iter(|| submit(&fixture, 1)));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(BATCH_LEN_MAX as u64));
    group.bench_function("batch_8190", |b| {
        b.iter(|| submit(&fixture, BATCH_LEN_MAX as u64))
    });
    group.bench_function("batch_8190_scattered_ids", |b| {
        b.iter(|| submit_ids(&fixture, BATCH_LEN_MAX as u64, scattered))
    });
    group.finish();
}

/// Caller threads that live across samples, so that a sample times transfers, not thread
/// start-up and tear-down: each round, every caller submits `per_caller` single transfers.
struct Callers {
    rounds: Vec<std::sync::mpsc::Sender<u64>>,
    done: std::sync::mpsc::Receiver<()>,
}

impl Callers {
    fn start<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        fixture: &'scope Fixture,
        callers: u64,
    ) -> Self {
        let (done_sender, done) = std::sync::mpsc::channel();
        let rounds = (0..callers)
            .map(|_| {
                let (round, work) = std::sync::mpsc::channel::<u64>();
                let done_sender = done_sender.clone();
                scope.spawn(move || {
                    for per_caller in work {
                        (0..per_caller).for_each(|_| submit(fixture, 1));
                        done_sender.send(()).expect("bench waits");
                    }
                });
                round
            })
            .collect();
        Self { rounds, done }
    }

    /// Runs one round; returns the time per transfer submitted.
    fn round(&self, iters: u64) -> Duration {
        let callers = self.rounds.len() as u64;
        let per_caller = iters.div_ceil(callers).max(1);
        let start = Instant::now();
        for round in &self.rounds {
            round.send(per_caller).expect("caller runs");
        }
        for _ in &self.rounds {
            // A caller that panicked never answers: fail rather than wait forever.
            self.done
                .recv_timeout(Duration::from_secs(120))
                .expect("caller answers");
        }
        start
            .elapsed()
            .mul_f64(iters as f64 / (per_caller * callers) as f64)
    }
}

fn group_commit(c: &mut Criterion) {
    let fixture = fixture();
    let mut group = c.benchmark_group("group_commit");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(6));
    group.throughput(Throughput::Elements(1));
    for callers in [1u64, 64] {
        std::thread::scope(|scope| {
            let pool = Callers::start(scope, &fixture, callers);
            group.bench_function(format!("{callers}_callers"), |b| {
                b.iter_custom(|iters| pool.round(iters));
            });
            // Dropping the pool's senders ends its threads before the scope joins them.
            drop(pool);
        });
    }
    // Full batches from several callers: groups fill up, so the sequencer runs one group
    // while the committer writes and flushes the one before (each batch still gets its own
    // journal record; groups share flushes).
    group.throughput(Throughput::Elements(BATCH_LEN_MAX as u64));
    group.bench_function("4_callers_full_batches", |b| {
        b.iter_custom(|iters| {
            let per_caller = iters.div_ceil(4);
            let start = Instant::now();
            std::thread::scope(|scope| {
                for _ in 0..4 {
                    scope.spawn(|| {
                        (0..per_caller).for_each(|_| submit(&fixture, BATCH_LEN_MAX as u64))
                    });
                }
            });
            // Report time per batch actually submitted.
            start
                .elapsed()
                .mul_f64(iters as f64 / (per_caller * 4) as f64)
        });
    });
    group.finish();
}

criterion_group!(benches, raw_fsync, durable, group_commit);
criterion_main!(benches);
