//! Freeing the tree nodes sled replaced, on a helper thread (see [`Reclaimer`]).

use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

use crate::Error;

/// Old tree-node versions one collection step can free: crossbeam-epoch frees up to 8 bags of
/// 64 deferred destructions per step (`COLLECT_STEPS`, `MAX_OBJECTS` in crossbeam-epoch 0.9).
const GARBAGE_FREED_PER_STEP: usize = 8 * 64;
/// Collection steps added to every commit beyond the estimate, so that a backlog left by
/// earlier commits (or by sled's own threads) shrinks instead of holding steady.
const GARBAGE_STEPS_EXTRA: usize = 16;

/// Drives the epoch-based reclamation that frees the node versions sled replaced.
///
/// sled 0.34 retires every replaced tree node to crossbeam-epoch's global collector, which
/// frees a bounded amount only when some thread pins (about every 128th pin). The writer
/// writes about one key per transfer and (thanks to the id filter) reads almost none, so
/// garbage arrived faster than pins collected it: measured, peak RSS grew by about 2 KiB per
/// transfer (3 GB after a million transfers). Flushing a pinned guard after each commit runs
/// a collection step each time, enough steps to free at least what the commit retired.
///
/// Freeing is a large part of a commit's CPU, so a helper thread does it (any thread's
/// collection step frees the global backlog), using the second core while the writer goes
/// on. Its queue is bounded: a writer that outpaces it waits rather than letting garbage grow.
fn collect_garbage(writes: usize) {
    // Each write retires a few node versions (the leaf and, on a split, its parents).
    let steps = writes
        .saturating_mul(4)
        .div_ceil(GARBAGE_FREED_PER_STEP)
        .saturating_add(GARBAGE_STEPS_EXTRA);
    for _ in 0..steps {
        sled::pin().flush();
    }
}

/// Commits the reclaimer may lag behind the writer before the writer waits for it.
const RECLAIM_QUEUE_LEN_MAX: usize = 2;

/// The helper thread that runs [`collect_garbage`] for the writer's commits.
pub(super) struct Reclaimer {
    sender: Option<SyncSender<usize>>,
    thread: Option<JoinHandle<()>>,
}

impl Reclaimer {
    pub(super) fn start() -> Result<Self, Error> {
        let (sender, receiver) = sync_channel::<usize>(RECLAIM_QUEUE_LEN_MAX);
        let thread = std::thread::Builder::new()
            .name("ledger-reclaim".into())
            .spawn(move || receiver.iter().for_each(collect_garbage))
            .map_err(Error::io("starting the ledger reclaim thread"))?;
        Ok(Self {
            sender: Some(sender),
            thread: Some(thread),
        })
    }

    /// Asks for the garbage of a commit of `writes` writes to be freed.
    pub(super) fn after_commit(&self, writes: usize) {
        let sent = self
            .sender
            .as_ref()
            .is_some_and(|sender| sender.send(writes).is_ok());
        if !sent {
            // The helper is gone (it cannot fail, but if it did): free here instead.
            collect_garbage(writes);
        }
    }
}

impl Drop for Reclaimer {
    fn drop(&mut self) {
        self.sender = None;
        if let Some(thread) = self.thread.take() {
            // A panicked helper only means less memory was freed.
            let _ = thread.join();
        }
    }
}
