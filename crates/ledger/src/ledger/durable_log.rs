//! The ledger's own durable log: what makes a small group commit durable with one write and one
//! `fdatasync`, instead of sled's flush.
//!
//! Why: sled 0.34's `Db::flush` writes its buffer and waits for it with `sync_file_range`, and
//! the `fdatasync` that must follow it (see [`super`]) also commits the growth of sled's log
//! file, a metadata change. Measured on this machine, one durable transfer cost 1.8–1.9 times
//! a raw 4 KiB append-and-`fdatasync`, most of it in that growth. This log is a file of fixed
//! size, zeroed when it is created, so that writing a record overwrites blocks the file already
//! has and its `fdatasync` changes no metadata: one data write and one device cache flush.
//!
//! What a record holds: the group's sled writes, exactly as the committer applies them (see
//! [`Writes`]), with a sequence number and a checksum. The committer writes and syncs the
//! record, then applies the same writes to sled without flushing sled (and without a sled
//! batch, see [`apply_in_order`]), then answers. sled is flushed (and its log file synced)
//! only when a group is too large for a record ([`RECORD_PAYLOAD_MAX`], full batches: for them
//! the log would double what is written, and a flush's fixed cost is small beside their size),
//! at a checkpoint, when the log is full, and at open and close. After every such flush the
//! log starts again at offset 0: the log holds, from its start, exactly the groups since sled
//! was last made durable.
//!
//! Every group also writes its sequence number ([`META_LOG_SEQ`]), last, so sled itself says
//! which groups it holds. sled recovers a prefix of its log after a crash (its batches whole);
//! opening the ledger re-applies, in order, every record of the log after the last group sled
//! holds, then makes sled durable, before anything else reads the state.
//! A record is recognised by its checksum and its sequence: a torn record (the process or the
//! machine stopped while it was written, so it was never acknowledged) fails the checksum,
//! and the records of an earlier pass over the file carry lower sequence numbers than the
//! ones that overwrote the start of the file, so reading stops at the first record that does
//! not continue the sequence. Records start on a page boundary and fill whole pages, so a
//! write never touches the pages of a record acknowledged before it.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::trees::{FORMAT_VERSION_DURABLE_LOG, KeyWrite, META_LOG_SEQ, Trees, Writes};
use crate::Error;
use crate::codec::DecodeError;

/// The durable log's file in the ledger's directory, beside sled's.
pub(crate) const DURABLE_LOG_FILE: &str = "durable.log";

/// The log's size when created: 1,024 single-transfer groups (one page each) between two
/// sled flushes, whose cost (a few milliseconds) is then spread over them; small enough to
/// zero at creation in milliseconds.
const LOG_LEN_DEFAULT: u64 = 4 * 1024 * 1024;

/// Largest group (its encoded writes) that goes through the log. Larger ones (full batches:
/// about a megabyte of journal) are made durable by a sled flush, as before the log existed:
/// through the log they would be written twice.
pub(crate) const RECORD_PAYLOAD_MAX: usize = 256 * 1024;

/// Records start on page boundaries and are padded to whole pages (see the module
/// documentation).
const PAGE_LEN: usize = 4096;

/// Record header: magic, payload length (u32), sequence number (u64), CRC-32 of the length,
/// the sequence number and the payload (u32); all little-endian.
const MAGIC: [u8; 4] = *b"KHDL";
const HEADER_LEN: usize = 4 + 4 + 8 + 4;

/// An operation in a record's payload.
const OP_REMOVE: u8 = 0;
const OP_INSERT: u8 = 1;

/// The writer's handle on the log: where the next record goes.
pub(crate) struct DurableLog {
    file: File,
    len: u64,
    /// Offset of the next record; 0 right after sled was made durable.
    position: u64,
    /// The record being written, kept between appends: a fresh buffer per group (up to a
    /// quarter of a megabyte) cost the commit thread a fifth of its time in allocation and
    /// in the kernel zeroing the new pages (a profile of `kakehashi bench` at concurrency 64).
    buffer: Vec<u8>,
}

/// The path of the durable log of the ledger in `dir`.
pub(crate) fn log_path(dir: &Path) -> PathBuf {
    dir.join(DURABLE_LOG_FILE)
}

/// The size a new log gets (tests shrink it to reach the end of the file quickly).
fn log_len_new() -> u64 {
    #[cfg(test)]
    if let Some(len) = std::env::var(tests::LOG_LEN_ENV)
        .ok()
        .and_then(|len| len.parse().ok())
    {
        return len;
    }
    LOG_LEN_DEFAULT
}

impl DurableLog {
    /// Creates the zeroed log in `dir` (where there is none): written under a temporary name,
    /// synced and renamed, the directory synced, so the log either exists whole or not at all.
    pub(crate) fn create(dir: &Path) -> Result<(), Error> {
        let path = log_path(dir);
        let temporary = dir.join(format!("{DURABLE_LOG_FILE}.new"));
        let mut file = File::create(&temporary)
            .map_err(Error::io(format!("creating {}", temporary.display())))?;
        let zeros = vec![0u8; 1024 * 1024];
        let mut left = log_len_new();
        while left > 0 {
            let step = usize::try_from(left.min(zeros.len() as u64)).unwrap_or(zeros.len());
            file.write_all(zeros.get(..step).unwrap_or_default())
                .map_err(Error::io("zeroing the durable log"))?;
            left -= step as u64;
        }
        file.sync_all()
            .map_err(Error::io("syncing the new durable log"))?;
        drop(file);
        std::fs::rename(&temporary, &path)
            .map_err(Error::io(format!("renaming to {}", path.display())))?;
        sync_dir(dir)
    }

    /// Opens the log of the ledger in `dir` for writing, from its start.
    pub(crate) fn open(dir: &Path) -> Result<Self, Error> {
        let path = log_path(dir);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(Error::io(format!("opening {}", path.display())))?;
        let len = file
            .metadata()
            .map_err(Error::io(format!("reading the size of {}", path.display())))?
            .len();
        Ok(Self {
            file,
            len,
            position: 0,
            buffer: Vec::new(),
        })
    }

    /// Whether a record of `payload_len` bytes fits in the log at all.
    pub(crate) fn can_hold(&self, payload_len: usize) -> bool {
        record_len(payload_len) as u64 <= self.len
    }

    /// Whether a record of `payload_len` bytes fits between the current position and the end.
    pub(crate) fn fits(&self, payload_len: usize) -> bool {
        let needed = record_len(payload_len) as u64;
        self.position
            .checked_add(needed)
            .is_some_and(|end| end <= self.len)
    }

    /// Writes record `seq` holding `payload` at the current position and syncs it
    /// (`fdatasync`). The caller checked [`fits`](Self::fits).
    pub(crate) fn append(&mut self, seq: u64, payload: &[u8]) -> Result<(), Error> {
        encode_record_into(&mut self.buffer, seq, payload)?;
        let record = &self.buffer;
        self.file
            .write_all_at(record, self.position)
            .map_err(Error::io("writing to the durable log"))?;
        crash_point("log_written");
        self.file
            .sync_data()
            .map_err(Error::io("fdatasync of the durable log"))?;
        self.position = self.position.saturating_add(record.len() as u64);
        Ok(())
    }

    /// Starts the log again from its start: only once sled holds, durably, every group
    /// written so far.
    pub(crate) fn restart(&mut self) {
        self.position = 0;
    }
}

/// Syncs directory `dir`, so that a file created or renamed in it stays.
fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(Error::io(format!("syncing directory {}", dir.display())))
}

/// A record of `payload_len` bytes with its header, padded to whole pages.
fn record_len(payload_len: usize) -> usize {
    HEADER_LEN
        .saturating_add(payload_len)
        .div_ceil(PAGE_LEN)
        .saturating_mul(PAGE_LEN)
}

fn checksum(len: u32, seq: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len.to_le_bytes());
    hasher.update(&seq.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// Record `seq` holding `payload`, as a new buffer.
#[cfg(test)]
fn encode_record(seq: u64, payload: &[u8]) -> Result<Vec<u8>, Error> {
    let mut record = Vec::new();
    encode_record_into(&mut record, seq, payload)?;
    Ok(record)
}

/// Replaces the contents of `record` with record `seq` holding `payload`.
fn encode_record_into(record: &mut Vec<u8>, seq: u64, payload: &[u8]) -> Result<(), Error> {
    let len = u32::try_from(payload.len()).map_err(|_| Error::InvariantViolated {
        detail: format!(
            "a durable log record of {} bytes is too long",
            payload.len()
        ),
    })?;
    record.clear();
    record.reserve(record_len(payload.len()));
    record.extend_from_slice(&MAGIC);
    record.extend_from_slice(&len.to_le_bytes());
    record.extend_from_slice(&seq.to_le_bytes());
    record.extend_from_slice(&checksum(len, seq, payload).to_le_bytes());
    record.extend_from_slice(payload);
    // Zeros to the page end also wipe what an earlier pass left there.
    record.resize(record_len(payload.len()), 0);
    Ok(())
}

/// The whole records of `bytes` (a log file's contents) from its start, in file order, up to
/// the first place that holds none (zeros, a torn record, or the end).
pub(crate) fn records(bytes: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    let mut offset = 0usize;
    std::iter::from_fn(move || {
        let header = bytes.get(offset..offset.checked_add(HEADER_LEN)?)?;
        let (magic, rest) = header.split_at(4);
        if magic != MAGIC {
            return None;
        }
        let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?);
        let seq = u64::from_le_bytes(rest.get(4..12)?.try_into().ok()?);
        let sum = u32::from_le_bytes(rest.get(12..16)?.try_into().ok()?);
        let start = offset + HEADER_LEN;
        let payload = bytes.get(start..start.checked_add(usize::try_from(len).ok()?)?)?;
        if checksum(len, seq, payload) != sum {
            return None;
        }
        offset = offset.checked_add(record_len(payload.len()))?;
        Some((seq, payload))
    })
}

/// Appends an insert of `key` → `value` to a record payload.
pub(crate) fn encode_insert(payload: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    payload.push(OP_INSERT);
    push_bytes(payload, key);
    push_bytes(payload, value);
}

/// Appends a removal of `key` to a record payload.
pub(crate) fn encode_remove(payload: &mut Vec<u8>, key: &[u8]) {
    payload.push(OP_REMOVE);
    push_bytes(payload, key);
}

/// Bytes an insert adds to a payload.
pub(crate) fn insert_len(key: &[u8], value: &[u8]) -> usize {
    1 + 4 + key.len() + 4 + value.len()
}

fn push_bytes(payload: &mut Vec<u8>, bytes: &[u8]) {
    // Keys and values of one group are far below 4 GiB (a record is at most
    // `RECORD_PAYLOAD_MAX`).
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    payload.extend_from_slice(&len.to_le_bytes());
    payload.extend_from_slice(bytes);
}

/// The writes of a record's payload, in order: key, and value (`None`: a removal).
fn operations(payload: &[u8]) -> impl Iterator<Item = Result<(&[u8], Option<&[u8]>), DecodeError>> {
    let mut rest = payload;
    std::iter::from_fn(move || {
        let (&op, after) = rest.split_first()?;
        let decoded = take_bytes(after).and_then(|(key, after)| match op {
            OP_INSERT => take_bytes(after).map(|(value, after)| ((key, Some(value)), after)),
            OP_REMOVE => Ok(((key, None), after)),
            other => Err(DecodeError {
                what: "durable log record",
                detail: format!("unknown operation {other}"),
            }),
        });
        Some(match decoded {
            Ok((operation, after)) => {
                rest = after;
                Ok(operation)
            }
            Err(error) => {
                // Nothing after a bad operation can be read.
                rest = &[];
                Err(error)
            }
        })
    })
}

/// The writes a record's payload holds, as one batch.
fn decode_payload(payload: &[u8]) -> Result<Writes, DecodeError> {
    let mut writes = Writes::without_record();
    for operation in operations(payload) {
        match operation? {
            (key, Some(value)) => writes.insert_full(key.to_vec(), sled::IVec::from(value)),
            (key, None) => writes.remove_full(key.to_vec()),
        }
    }
    Ok(writes)
}

/// Applies a group the log holds durably (its writes, `ordered` as the group made them, which
/// end with its sequence number, [`META_LOG_SEQ`]) to sled key by key.
///
/// Why not one sled batch: sled's `apply_batch` seals its I/O buffer twice (before and after
/// its batch manifest), and its I/O threads write and `sync_file_range` each buffer, two
/// device writes per group beside the log's own. Without the batch, sled writes its buffer
/// when it is full. The group stays whole after a crash all the same: sled recovers a prefix
/// of its log, so if it recovered the group's sequence number it recovered every write before
/// it, and if not, opening re-applies the record (see [`replay`]).
pub(crate) fn apply_in_order(trees: &Trees, ordered: Vec<KeyWrite>) -> Result<(), Error> {
    let marker = trees.meta.key(META_LOG_SEQ);
    if ordered.last().map(|(key, _)| key.as_slice()) != Some(marker.as_slice()) {
        return Err(Error::InvariantViolated {
            detail: "a logged group does not end with its sequence number".into(),
        });
    }
    let half = ordered.len() / 2;
    for (index, (key, value)) in ordered.into_iter().enumerate() {
        if index == half {
            // A crash test stops here with the first half of the group on disk, as if sled's
            // buffer had filled in the middle of the group.
            crash_point_after("half_applied", || {
                let _ = trees.db.flush();
            });
        }
        match value {
            Some(value) => trees.state.insert(key, value).map(drop),
            None => trees.state.remove(key).map(drop),
        }
        .map_err(Error::storage("committing a logged group"))?;
    }
    Ok(())
}

/// A length-prefixed byte string off the front of `bytes`, and what follows it.
fn take_bytes(bytes: &[u8]) -> Result<(&[u8], &[u8]), DecodeError> {
    let short = || DecodeError {
        what: "durable log record",
        detail: format!("a field runs past the end ({} bytes left)", bytes.len()),
    };
    let (len, rest) = bytes.split_first_chunk::<4>().ok_or_else(short)?;
    let len = usize::try_from(u32::from_le_bytes(*len)).map_err(|_| short())?;
    if len > rest.len() {
        return Err(short());
    }
    Ok(rest.split_at(len))
}

/// Reads the log of the ledger in `dir` (`None` if there is none).
pub(crate) fn read(dir: &Path) -> Result<Option<Vec<u8>>, Error> {
    let path = log_path(dir);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(None),
        Err(error) => Err(Error::io(format!("reading {}", path.display()))(error)),
    }
}

/// Brings sled up to date with the log of the ledger in `dir` (see [`replay`]) and returns
/// the last group sled then holds. A ledger of `version` 7 or later always has a log (the writer
/// creates it before it stores that version), so a missing one means acknowledged groups may
/// be missing too: refused. An older ledger has none, or an empty one.
pub(crate) fn recover(trees: &Trees, dir: &Path, version: u8) -> Result<u64, Error> {
    match read(dir)? {
        Some(bytes) => replay(trees, &bytes),
        None if version >= FORMAT_VERSION_DURABLE_LOG => Err(Error::Corrupt {
            what: "durable log".into(),
            source: DecodeError {
                what: "durable log",
                detail: format!("{} is missing", log_path(dir).display()),
            },
        }),
        None => trees.log_seq(),
    }
}

/// Applies to sled, in order, every record of the log (`bytes`) after the last group sled
/// holds (see the module documentation); returns the sequence number of the last group sled
/// holds afterwards. Applying a record again is harmless (its writes set keys to the values
/// they already have), so a crash during the replay only means the next open replays again.
pub(crate) fn replay(trees: &Trees, bytes: &[u8]) -> Result<u64, Error> {
    let held = trees.log_seq()?;
    let mut last = held;
    for (seq, payload) in records(bytes) {
        if seq <= last {
            if last == held {
                // A record sled held already (made durable since), or one of an earlier pass
                // over the file.
                continue;
            }
            // An earlier pass's record behind the last one written: the end of the log.
            break;
        }
        if seq != last.saturating_add(1) {
            if last == held {
                return Err(Error::Corrupt {
                    what: "durable log".into(),
                    source: DecodeError {
                        what: "durable log sequence",
                        detail: format!(
                            "the ledger holds group {held} but the log continues with {seq}"
                        ),
                    },
                });
            }
            break;
        }
        let writes =
            decode_payload(payload).map_err(Error::corrupt(format!("durable log record {seq}")))?;
        trees.apply(writes, "replaying the durable log")?;
        crash_point("replay_applied");
        last = seq;
    }
    if last != held && trees.log_seq()? != last {
        return Err(Error::Corrupt {
            what: "durable log".into(),
            source: DecodeError {
                what: "durable log sequence",
                detail: format!("record {last} does not name itself"),
            },
        });
    }
    Ok(last)
}

/// Stops the process at the named point of the durable path when a crash test asks for it
/// (only in this crate's own tests; see `tests`).
#[cfg(test)]
pub(crate) fn crash_point(name: &str) {
    tests::crash_point(name, || {});
}

#[cfg(not(test))]
#[inline(always)]
pub(crate) fn crash_point(_name: &str) {}

/// [`crash_point`], running `before` first when it stops the process.
#[cfg(test)]
fn crash_point_after(name: &str, before: impl FnOnce()) {
    tests::crash_point(name, before);
}

#[cfg(not(test))]
#[inline(always)]
fn crash_point_after(_name: &str, _before: impl FnOnce()) {}

#[cfg(test)]
pub(crate) mod tests;
