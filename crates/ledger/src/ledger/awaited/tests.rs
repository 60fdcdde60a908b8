//! Awaited calls: answered only once their group is durable, applied once whether or not
//! their caller still waits, held by a full queue without blocking their thread, and answered
//! `Stopped` when the writer stops. Driven by [`block_on`] and [`drive`], a minimal executor:
//! the crate has no async runtime, and needs none.

use std::future::Future;
use std::path::Path;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use ed25519_dalek::SigningKey;

use super::super::durable_log;
use crate::model::{AccountId, NewAccount, NewTransfer, Timestamp, TransferId};
use crate::result::CreateTransferResult;
use crate::{Error, Ledger, Options, RecordWrite};

const NOW: Timestamp = Timestamp(1_764_000_000_000_000_000);
const JPY: u32 = 392;

/// Wakes a thread parked in [`block_on`] or [`drive`].
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

fn waker() -> Waker {
    Waker::from(Arc::new(Unpark(std::thread::current())))
}

/// Runs `future` to its end on this thread, parked while it is pending.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    let waker = waker();
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}

/// Polls `future` once.
fn poll_once<F: Future + ?Sized>(future: Pin<&mut F>) -> Poll<F::Output> {
    let waker = waker();
    future.poll(&mut Context::from_waker(&waker))
}

/// Marks one task of [`drive`] woken and wakes the thread.
struct Woken {
    woken: AtomicBool,
    thread: std::thread::Thread,
}

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// Runs every future of `futures` to its end on this thread, each as a task of its own: a
/// future is polled again only once its own waker was woken (so a caller waiting for room is
/// polled only when the ledger wakes it). Returns their outputs in order.
fn drive<T>(mut futures: Vec<Pin<Box<dyn Future<Output = T> + '_>>>) -> Vec<T> {
    let tasks: Vec<Arc<Woken>> = futures
        .iter()
        .map(|_| {
            Arc::new(Woken {
                woken: AtomicBool::new(true),
                thread: std::thread::current(),
            })
        })
        .collect();
    let mut outputs: Vec<Option<T>> = futures.iter().map(|_| None).collect();
    while outputs.iter().any(Option::is_none) {
        for ((future, output), task) in futures.iter_mut().zip(&mut outputs).zip(&tasks) {
            if output.is_none() && task.woken.swap(false, Ordering::SeqCst) {
                let waker = Waker::from(Arc::clone(task));
                if let Poll::Ready(value) = future.as_mut().poll(&mut Context::from_waker(&waker)) {
                    *output = Some(value);
                }
            }
        }
        // Park only while a future is pending and none was woken meanwhile (a wake after this
        // check unparks the thread, so the park returns at once).
        let mut pending = outputs
            .iter()
            .zip(&tasks)
            .filter(|(output, _)| output.is_none())
            .peekable();
        if pending.peek().is_some() && pending.all(|(_, task)| !task.woken.load(Ordering::SeqCst)) {
            std::thread::park();
        }
    }
    outputs.into_iter().flatten().collect()
}

/// Only the groups the tests make: no signature by time and no checkpoint, so that every
/// small group goes through the durable log.
fn options(queue_len: usize) -> Options {
    Options {
        queue_len,
        signed_head_interval: Duration::from_secs(3_600),
        checkpoint_interval: 1 << 20,
        ..Options::default()
    }
}

/// A new ledger with accounts 1 and 2.
fn ledger(options: Options) -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger =
        Ledger::open(dir.path(), SigningKey::from_bytes(&[5; 32]), options).expect("opens");
    let accounts = [1, 2].map(|id| NewAccount {
        id: AccountId(id),
        ledger: JPY,
        code: 1,
        ..NewAccount::default()
    });
    let results = block_on(ledger.create_accounts_async(&accounts, NOW)).expect("accounts");
    assert!(results.iter().all(|r| r.is_recorded()), "{results:?}");
    (dir, ledger)
}

/// One unit from account 1 to account 2.
fn transfer(id: u128) -> NewTransfer {
    NewTransfer {
        id: TransferId(id),
        debit_account_id: AccountId(1),
        credit_account_id: AccountId(2),
        amount: 1,
        ledger: JPY,
        code: 1,
        ..NewTransfer::default()
    }
}

fn record(id: u128) -> RecordWrite {
    RecordWrite::Put {
        key: id.to_be_bytes().to_vec(),
        value: b"kept".to_vec(),
    }
}

/// Units account 2 has received.
fn credited(ledger: &Ledger) -> u128 {
    let found = ledger.lookup_accounts(&[AccountId(2)]).expect("lookup");
    found[0].expect("account 2").credits_posted
}

/// The first 64 KiB of the durable log: a small group's record lands there in these tests.
fn log_head(dir: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(durable_log::log_path(dir)).expect("log");
    bytes.truncate(64 * 1024);
    bytes
}

/// Waits until the committer has written and synced a new record to the durable log (it then
/// takes the visibility lock, which the caller holds, and stops there).
fn wait_until_logged(dir: &Path, before: &[u8]) {
    while log_head(dir) == before {
        std::thread::yield_now();
    }
}

#[test]
fn an_awaited_call_is_answered_only_once_its_group_is_visible_and_durable() {
    let (dir, ledger) = ledger(options(16));
    let before = log_head(dir.path());
    // Holding the visibility lock stops the committer between the group's durable log record
    // and its sled write: the group is on disk but not yet published.
    let hidden = ledger
        .visibility
        .write()
        .unwrap_or_else(PoisonError::into_inner);
    let mut call = Box::pin(
        ledger.create_transfers_with_async(&[transfer(10)], NOW, |_| Ok(vec![record(10)])),
    );
    assert!(poll_once(call.as_mut()).is_pending());
    wait_until_logged(dir.path(), &before);
    assert!(
        poll_once(call.as_mut()).is_pending(),
        "answered before the group was published"
    );
    drop(hidden);
    let results = block_on(call).expect("answered");
    assert_eq!(results, vec![CreateTransferResult::Ok]);
    // Lookups see only durable state: what was answered is there.
    assert!(ledger.lookup_transfers(&[TransferId(10)]).expect("lookup")[0].is_some());
    assert_eq!(
        ledger.record(&10u128.to_be_bytes()).expect("record"),
        Some(b"kept".to_vec())
    );
    ledger.close().expect("closes");
    // And it survives a reopen.
    let ledger =
        Ledger::open(dir.path(), SigningKey::from_bytes(&[5; 32]), options(16)).expect("reopens");
    assert!(ledger.lookup_transfers(&[TransferId(10)]).expect("lookup")[0].is_some());
    assert_eq!(credited(&ledger), 1);
}

#[test]
fn a_dropped_call_is_still_applied_once_with_its_records() {
    let (_dir, ledger) = ledger(options(16));
    let mut call = Box::pin(
        ledger.create_transfers_with_async(&[transfer(10)], NOW, |outcomes| {
            assert_eq!(outcomes.len(), 1);
            Ok(vec![record(10)])
        }),
    );
    // First poll: queued. The caller then goes away.
    let _ = poll_once(call.as_mut());
    drop(call);
    // Groups are answered in order: once a later call is answered, the dropped one's group is
    // durable too.
    let later = block_on(ledger.create_transfers_async(&[transfer(11)], NOW)).expect("answered");
    assert_eq!(later, vec![CreateTransferResult::Ok]);
    assert!(ledger.lookup_transfers(&[TransferId(10)]).expect("lookup")[0].is_some());
    assert_eq!(
        ledger.record(&10u128.to_be_bytes()).expect("record"),
        Some(b"kept".to_vec())
    );
    assert_eq!(credited(&ledger), 2);
    // Retried, it is not applied again.
    let retried = block_on(ledger.create_transfers_async(&[transfer(10)], NOW)).expect("answered");
    assert_eq!(retried, vec![CreateTransferResult::Exists]);
    assert_eq!(credited(&ledger), 2);
    ledger.close().expect("closes");
}

/// An awaited call in flight.
type Call<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + 'a>>;

/// A transfer that the committer holds in flight (the caller holds the visibility lock and
/// waits until its group is logged), then `len` expiry calls polled once each. A group holds
/// eight of them ([`EXPIRE_BATCH_LEN_MAX`] events each), so with a queue of one, the sequencer
/// can absorb at most seventeen (one group handed over, one gathered, one queued): the rest
/// find the queue full. Had they blocked their thread as a blocking call does, this thread,
/// which holds the lock the committer waits for, would never return.
///
/// [`EXPIRE_BATCH_LEN_MAX`]: super::super::EXPIRE_BATCH_LEN_MAX
/// With `fail_next`, the group after the transfer's fails to commit (fail-stop).
fn fill_the_queue<'a>(
    dir: &Path,
    ledger: &'a Ledger,
    len: usize,
    fail_next: bool,
) -> (
    Call<'a, Vec<CreateTransferResult>>,
    Vec<Call<'a, crate::Expired>>,
) {
    let before = log_head(dir);
    let hidden = ledger
        .visibility
        .write()
        .unwrap_or_else(PoisonError::into_inner);
    let mut first: Pin<Box<dyn Future<Output = _>>> =
        Box::pin(ledger.create_transfers_async(&[transfer(10)], NOW));
    assert!(poll_once(first.as_mut()).is_pending());
    wait_until_logged(dir, &before);
    let mut expiries: Vec<Pin<Box<dyn Future<Output = _>>>> = Vec::new();
    for _ in 0..len {
        let mut expiry: Pin<Box<dyn Future<Output = _>>> =
            Box::pin(ledger.expire_pending_async(NOW));
        assert!(
            poll_once(expiry.as_mut()).is_pending(),
            "answered while the group before it is not durable"
        );
        expiries.push(expiry);
    }
    // Set while the committer is inside the transfer's group: the next group takes it.
    ledger.fail_commit.store(fail_next, Ordering::Release);
    drop(hidden);
    (first, expiries)
}

#[test]
fn a_full_queue_holds_awaited_callers_without_blocking_their_thread() {
    let (dir, ledger) = ledger(options(1));
    let (first, expiries) = fill_the_queue(dir.path(), &ledger, 40, false);
    assert_eq!(
        block_on(first).expect("answered"),
        vec![CreateTransferResult::Ok]
    );
    for expired in drive(expiries) {
        assert_eq!(expired.expect("answered").count, 0);
    }
    assert_eq!(credited(&ledger), 1);
    ledger.close().expect("closes");
}

#[test]
fn a_stopped_writer_answers_every_awaited_caller_stopped() {
    let (dir, ledger) = ledger(options(1));
    // The group after the transfer's fails to commit: fail-stop.
    let (first, expiries) = fill_the_queue(dir.path(), &ledger, 40, true);
    assert_eq!(
        block_on(first).expect("answered"),
        vec![CreateTransferResult::Ok]
    );
    let answers = drive(expiries);
    // The failed group's first caller hears the failure; every other caller, queued, waiting
    // for room, or sequenced behind the failure, hears that the ledger stopped.
    let failed = answers
        .iter()
        .filter(|a| matches!(a, Err(Error::InvariantViolated { .. })))
        .count();
    let stopped = answers
        .iter()
        .filter(|a| matches!(a, Err(Error::Stopped { .. })))
        .count();
    assert_eq!((failed, stopped), (1, answers.len() - 1), "{answers:?}");
    // And so does every later one, awaited or blocking.
    let later = block_on(ledger.create_transfers_async(&[transfer(11)], NOW));
    assert!(matches!(later, Err(Error::Stopped { .. })), "{later:?}");
    let later = block_on(ledger.write_records_async(vec![record(11)]));
    assert!(matches!(later, Err(Error::Stopped { .. })), "{later:?}");
    let later = ledger.create_transfers(&[transfer(12)], NOW);
    assert!(matches!(later, Err(Error::Stopped { .. })), "{later:?}");
    // What was answered is there; nothing after it.
    assert!(ledger.lookup_transfers(&[TransferId(10)]).expect("lookup")[0].is_some());
    assert_eq!(credited(&ledger), 1);
    assert!(matches!(ledger.close(), Err(Error::Stopped { .. })));
}
