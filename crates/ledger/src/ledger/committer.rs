//! The writer's second thread (see [`Committer`]).

use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;

use super::CHECKPOINT_SMALL_RECORDS_FACTOR;
use super::durable_log::{self, DurableLog, crash_point};
use super::idtables;
use super::reclaimer::Reclaimer;
use super::sequencer::{Commit, GroupWrite, record_stop, refuse};
use super::trees::{
    META_ACCOUNTS_SEQ, META_LOG_SEQ, PREFIX_ACCOUNT, PREFIX_META, PREFIX_SIGNED_HEAD, Trees,
    Writes, make_durable,
};
use crate::Error;
use crate::codec::{account_bytes, id_key};
use crate::idhash::{IdMap, IdSet};
use crate::journal::{Checkpoint, SignedHead};
use crate::model::{Account, AccountId};
use crate::recovery;

/// The writer's second thread: makes each group durable and writes it to sled (a small group:
/// its durable log record first, then sled key by key; a large one: one crash-atomic sled
/// batch, then sled's flush; see [`super::durable_log`]), publishes its accounts, takes
/// snapshots, checkpoints and signed heads, and only then answers its callers. Groups are committed one at a time in sequence order, so a
/// group is answered only once it and every group before it are durable. When the sequencer
/// hangs up (the ledger closes), it signs the head with a checkpoint.
pub(super) struct Committer {
    /// The sequencer's thread, unparked whenever a group is committed (see
    /// [`BUSY_POLL`](super::sequencer::BUSY_POLL)).
    pub(super) sequencer: Option<std::thread::Thread>,
    pub(super) trees: Trees,
    pub(super) node_key: SigningKey,
    /// The head of the last group written to sled.
    pub(super) head_seq: u64,
    pub(super) head_hash: [u8; 32],
    pub(super) last_checkpoint_seq: u64,
    pub(super) checkpoint_interval: u64,
    pub(super) log_file: File,
    /// Where small groups are made durable (see [`super::durable_log`]).
    pub(super) durable_log: DurableLog,
    /// The last group commit written to sled (each writes its number, see [`META_LOG_SEQ`]).
    pub(super) log_seq: u64,
    pub(super) visibility: Arc<RwLock<()>>,
    /// Shared with [`Ledger`](super::Ledger) for lookups and with the sequencer; only the
    /// committer changes it, and only with what it writes to sled in the same step.
    pub(super) accounts: Arc<RwLock<IdMap<AccountId, Account>>>,
    /// Accounts changed since the stored snapshot.
    pub(super) dirty: IdSet<AccountId>,
    /// The journal record the stored snapshot is exact for.
    pub(super) accounts_seq: u64,
    /// The number of the last group written and published (see `Sequencer::groups`).
    pub(super) published_group: Arc<AtomicU64>,
    pub(super) halted: Arc<AtomicBool>,
    pub(super) commits_pending: Arc<AtomicUsize>,
    pub(super) reclaimer: Reclaimer,
    /// See [`Options::checkpoint_events_min`](super::Options::checkpoint_events_min).
    pub(super) checkpoint_events_min: u64,
    /// Events journaled since the last snapshot and since the last checkpoint (counted from
    /// this open; the records cap bounds both across restarts).
    pub(super) events_since_snapshot: u64,
    pub(super) events_since_checkpoint: u64,
    /// See [`Options::signed_head_interval`](super::Options::signed_head_interval).
    pub(super) signed_head_interval: Duration,
    /// See [`Options::signed_head_records`](super::Options::signed_head_records).
    pub(super) signed_head_records: u64,
    /// The last record a signature (checkpoint or signed head) covers, and when it was taken
    /// (the writer's monotonic clock; at open, the open).
    pub(super) last_signed_seq: u64,
    pub(super) last_signed_at: Instant,
    /// `last_signed_seq` for the sequencer, which asks for a signature when records stay
    /// unsigned while no request comes.
    pub(super) signed_seq: Arc<AtomicU64>,
    /// Tests only: set, the next group's commit fails as a failed write or sync would.
    #[cfg(test)]
    pub(super) fail_commit: Arc<AtomicBool>,
}

impl Committer {
    pub(super) fn run(mut self, receiver: &Receiver<Commit>, stopped: &Mutex<Option<String>>) {
        while let Ok(commit) = receiver.recv() {
            let merge_due = commit.write.as_ref().is_some_and(|write| write.id_table);
            let written = match commit.write {
                #[cfg(test)]
                _ if self.fail_commit.swap(false, Ordering::AcqRel) => {
                    Err(Error::InvariantViolated {
                        detail: "a commit failure injected by a test".into(),
                    })
                }
                Some(write) => self.commit(write),
                None if commit.sign_head => self.sign_head(),
                None => Ok(()),
            };
            // Free for the next group from here on (answering takes a little while, and the
            // next group can be gathered meanwhile): wake the sequencer if it is gathering.
            self.commits_pending.fetch_sub(1, Ordering::AcqRel);
            if let Some(sequencer) = &self.sequencer {
                sequencer.unpark();
            }
            match written {
                Ok(()) => {
                    for (request, reply) in commit.group.into_iter().zip(commit.replies) {
                        // A caller that gave up waiting is not an error of the ledger (see
                        // `ReplyTo::answer`).
                        request.reply.answer(reply);
                    }
                    // Between groups, after the callers are answered (see `super::idtables`).
                    if merge_due && let Err(error) = self.merge_id_tables() {
                        let reason = error.to_string();
                        record_stop(stopped, &reason);
                        self.halted.store(true, Ordering::Release);
                        for commit in receiver.iter() {
                            self.commits_pending.fetch_sub(1, Ordering::AcqRel);
                            refuse(commit.group, None, &reason);
                        }
                        return;
                    }
                }
                Err(error) => {
                    // Fail-stop: nothing of this group is acknowledged, and no later group
                    // (already sequenced on top of it) is written.
                    let reason = error.to_string();
                    record_stop(stopped, &reason);
                    self.halted.store(true, Ordering::Release);
                    refuse(commit.group, Some(error), &reason);
                    for commit in receiver.iter() {
                        self.commits_pending.fetch_sub(1, Ordering::AcqRel);
                        refuse(commit.group, None, &reason);
                    }
                    return;
                }
            }
        }
        // The sequencer hung up: the ledger is closing, and every group is written. A failure
        // here loses no data (everything is durable already) but is reported by `close`.
        if let Err(error) = self.close_checkpoint() {
            record_stop(stopped, &format!("signing the head at close: {error}"));
        }
    }

    /// Takes a checkpoint of the head when the writer stops, unless one covers it already (or
    /// there is no record): the clean close vouches for every record, and its balances digest
    /// lets the next open check the stored balances against a signature. A checkpoint rather
    /// than a signed head because closing is rare and its account scan (tens of milliseconds
    /// for 100,000 accounts) does not delay any caller.
    fn close_checkpoint(&mut self) -> Result<(), Error> {
        if self.head_seq == 0 || self.last_checkpoint_seq >= self.head_seq {
            return Ok(());
        }
        self.checkpoint()?;
        self.make_durable()
    }

    /// Signs the head on the sequencer's request (records stayed unsigned and no request came
    /// for a [`signed_head_interval`](Self::signed_head_interval)): a signed head in a batch of
    /// its own, made durable. Nothing to do when a group commit signed it meanwhile.
    fn sign_head(&mut self) -> Result<(), Error> {
        if self.last_signed_seq >= self.head_seq {
            return Ok(());
        }
        let mut writes = Writes::default();
        self.sign_head_into(&mut writes, self.head_seq, self.head_hash);
        self.trees.apply(writes, "writing a signed head")?;
        self.make_durable()?;
        self.signed(self.head_seq);
        Ok(())
    }

    /// Adds a signed head over record `seq`, whose hash is `hash`, to `writes`.
    fn sign_head_into(&self, writes: &mut Writes, seq: u64, hash: [u8; 32]) {
        let signed = SignedHead::sign(&self.node_key, seq, hash);
        writes.insert(PREFIX_SIGNED_HEAD, &seq.to_be_bytes(), signed.encode());
    }

    /// Whether the group ending at record `seq` should sign its head: enough records or
    /// enough time since the last signature.
    fn signed_head_due(&self, seq: u64) -> bool {
        seq > self.last_signed_seq
            && (seq - self.last_signed_seq >= self.signed_head_records
                || self.last_signed_at.elapsed() >= self.signed_head_interval)
    }

    /// Notes that a signature now covers record `seq`.
    fn signed(&mut self, seq: u64) {
        self.last_signed_seq = seq;
        self.last_signed_at = Instant::now();
        self.signed_seq.store(seq, Ordering::Release);
    }

    /// Takes the snapshot and the checkpoint that are due at open. A crash between a group
    /// commit and its checkpoint leaves the checkpoint missing, and repeated crashes could
    /// keep the snapshot from advancing; catching up at open keeps the interval (and the
    /// replay length at the next open) across restarts.
    pub(super) fn catch_up(&mut self) -> Result<(), Error> {
        let head_seq = self.head_seq;
        let snapshot_due = self.snapshot_due(head_seq);
        if snapshot_due {
            let mut writes = Writes::default();
            self.snapshot_into(&mut writes, &IdMap::default(), head_seq);
            self.trees.apply(writes, "writing the account snapshot")?;
            self.snapshot_done(head_seq);
        }
        let checkpoint_due = self.checkpoint_due(head_seq);
        if checkpoint_due {
            self.checkpoint()?;
        }
        if snapshot_due || checkpoint_due {
            self.make_durable()?;
        }
        Ok(())
    }

    /// Writes one group, publishes it and makes it durable.
    fn commit(&mut self, write: GroupWrite) -> Result<(), Error> {
        let GroupWrite {
            changes,
            mut writes,
            head_seq,
            head_hash,
            events,
            group,
            id_table: _,
        } = write;
        self.events_since_snapshot = self.events_since_snapshot.saturating_add(events);
        self.events_since_checkpoint = self.events_since_checkpoint.saturating_add(events);
        let snapshot_due = self.snapshot_due(head_seq)
            && (self.events_since_snapshot >= self.checkpoint_events_min
                || self.records_cap_reached(head_seq, self.accounts_seq));
        if snapshot_due {
            self.snapshot_into(&mut writes, &changes.accounts, head_seq);
        }
        let checkpoint_due = self.checkpoint_due(head_seq)
            && (self.events_since_checkpoint >= self.checkpoint_events_min
                || self.records_cap_reached(head_seq, self.last_checkpoint_seq));
        // A checkpoint signs the head too; otherwise a signed head goes into the group's own
        // batch, durable with the records it covers.
        let sign_head = !checkpoint_due && self.signed_head_due(head_seq);
        if sign_head {
            self.sign_head_into(&mut writes, head_seq, head_hash);
        }
        let log_seq = self.log_seq.saturating_add(1);
        writes.insert(PREFIX_META, META_LOG_SEQ, &log_seq.to_le_bytes());
        // A small group is durable once its record is: one write and one fdatasync. A large
        // one, or one that takes a checkpoint (whose sled flush comes anyway), is made durable
        // by that flush instead (see `super::durable_log`).
        let writes_len = writes.len;
        let log = !checkpoint_due
            && writes
                .record()
                .is_some_and(|record| self.durable_log.can_hold(record.len()));
        let staged = if log {
            writes.into_logged()
        } else {
            Err(writes)
        };
        if let Ok((record, _)) = &staged {
            self.log_group(log_seq, record)?;
        }
        let visibility = Arc::clone(&self.visibility);
        let _hidden = visibility.write().unwrap_or_else(PoisonError::into_inner);
        let logged = staged.is_ok();
        match staged {
            Ok((_, ordered)) => durable_log::apply_in_order(&self.trees, ordered)?,
            Err(writes) => self.trees.apply(writes, "committing a batch group")?,
        }
        self.log_seq = log_seq;
        self.reclaimer.after_commit(writes_len);
        self.accounts
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(changes.accounts.iter().map(|(id, account)| (*id, *account)));
        self.published_group.store(group, Ordering::Release);
        if snapshot_due {
            self.snapshot_done(head_seq);
        } else {
            self.dirty.extend(changes.accounts.keys().copied());
        }
        self.head_seq = head_seq;
        self.head_hash = head_hash;
        if sign_head {
            self.signed(head_seq);
        }
        if checkpoint_due {
            self.checkpoint()?;
        }
        if logged {
            return Ok(());
        }
        self.make_durable()
    }

    /// Makes group `seq` durable through the durable log: when the log is full, sled takes
    /// every group so far durably first, and the log starts over.
    fn log_group(&mut self, seq: u64, record: &[u8]) -> Result<(), Error> {
        if !self.durable_log.fits(record.len()) {
            self.make_durable()?;
            crash_point("log_restarted");
        }
        self.durable_log.append(seq, record)?;
        crash_point("log_synced");
        Ok(())
    }

    fn snapshot_due(&self, head_seq: u64) -> bool {
        head_seq.saturating_sub(self.accounts_seq) >= self.checkpoint_interval
    }

    /// Adds to `writes` every account changed since the last snapshot (their values after
    /// this group: `changed` first, then memory) and moves the snapshot position to `seq`.
    fn snapshot_into(&self, writes: &mut Writes, changed: &IdMap<AccountId, Account>, seq: u64) {
        let accounts = self.accounts.read().unwrap_or_else(PoisonError::into_inner);
        let ids = self
            .dirty
            .iter()
            .chain(changed.keys().filter(|id| !self.dirty.contains(id)));
        for id in ids {
            if let Some(account) = changed.get(id).or_else(|| accounts.get(id)) {
                writes.insert(PREFIX_ACCOUNT, &id_key(id.0), account_bytes(account));
            }
        }
        writes.insert(PREFIX_META, META_ACCOUNTS_SEQ, &seq.to_le_bytes());
    }

    fn snapshot_done(&mut self, seq: u64) {
        self.dirty.clear();
        self.accounts_seq = seq;
        self.events_since_snapshot = 0;
    }

    /// Whether `seq` is so far past `since` that a snapshot or checkpoint is taken however
    /// few events the records hold.
    fn records_cap_reached(&self, seq: u64, since: u64) -> bool {
        seq.saturating_sub(since)
            >= self
                .checkpoint_interval
                .saturating_mul(CHECKPOINT_SMALL_RECORDS_FACTOR)
    }

    fn checkpoint_due(&self, head_seq: u64) -> bool {
        head_seq.saturating_sub(self.last_checkpoint_seq) >= self.checkpoint_interval
    }

    /// Signs the current head and balances. Only the writer changes accounts, so the scan sees
    /// exactly the state after record `head_seq`.
    fn checkpoint(&mut self) -> Result<(), Error> {
        let (digest, accounts) =
            recovery::digest(&self.accounts.read().unwrap_or_else(PoisonError::into_inner));
        let checkpoint = Checkpoint::sign(
            &self.node_key,
            self.head_seq,
            self.head_hash,
            digest,
            accounts,
        );
        self.trees
            .checkpoints
            .insert(self.head_seq.to_be_bytes(), checkpoint.encode())
            .map_err(Error::storage("writing a checkpoint"))?;
        self.last_checkpoint_seq = self.head_seq;
        self.events_since_checkpoint = 0;
        self.signed(self.head_seq);
        Ok(())
    }

    /// Merges the newest id tables if they are due (see [`idtables::merge_plan`]), in one
    /// atomic batch, hidden from public lookups until whole. Not made durable on its own and not
    /// in the durable log: sled recovers a prefix of its log, so a merge lost in a crash takes
    /// only later writes with it, which the durable log applies again at open (a group's writes
    /// never depend on a merge), and it loses nothing.
    fn merge_id_tables(&self) -> Result<(), Error> {
        let tables = self.trees.id_table_list()?;
        let Some(from) = idtables::merge_plan(&tables) else {
            return Ok(());
        };
        let writes = idtables::merge(&self.trees, tables.get(from..).unwrap_or_default())?;
        let writes_len = writes.len;
        {
            let _hidden = self
                .visibility
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            self.trees.apply(writes, "merging id tables")?;
        }
        self.reclaimer.after_commit(writes_len);
        Ok(())
    }

    /// Makes everything written to sled durable; the durable log's records are then no longer
    /// needed, and it starts over.
    fn make_durable(&mut self) -> Result<(), Error> {
        make_durable(&self.trees, &self.log_file)?;
        self.durable_log.restart();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
