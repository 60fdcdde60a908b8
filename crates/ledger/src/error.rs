//! The ledger's error type. Per-event outcomes are not errors: they are the named results in
//! [`crate::result`]. An `Error` means the whole call failed and nothing was acknowledged.

use std::path::PathBuf;

use crate::codec::DecodeError;

/// Why a ledger call failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The batch holds more events than one call may carry; nothing was applied.
    #[error("batch of {len} events exceeds the limit of {len_max}")]
    BatchTooLong {
        /// Events in the batch.
        len: usize,
        /// [`crate::BATCH_LEN_MAX`].
        len_max: usize,
    },
    /// Stored bytes do not decode or do not agree with each other.
    #[error("stored {what} is corrupt: {source}")]
    Corrupt {
        /// Which stored item.
        what: String,
        /// What is wrong with its bytes.
        source: DecodeError,
    },
    /// An option passed to [`crate::Ledger::open`] is out of range.
    #[error("invalid option {name}: {detail}")]
    InvalidOption {
        /// The option's field name.
        name: &'static str,
        /// Why it is refused.
        detail: String,
    },
    /// A ledger invariant would break (for example debits would differ from credits). The
    /// writer stopped before committing anything of the batch group: fail-stop.
    #[error("ledger invariant violated, nothing of this group was written: {detail}")]
    InvariantViolated {
        /// Which invariant, with the ids involved.
        detail: String,
    },
    /// Reading or syncing a file failed.
    #[error("i/o error while {context}: {source}")]
    Io {
        /// What the ledger was doing.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The ledger was opened with a node key other than the one it was created with.
    #[error("node key {given} does not match the key {stored} this ledger was created with")]
    NodeKeyMismatch {
        /// Hex of the stored verifying key.
        stored: String,
        /// Hex of the verifying key of the signing key given.
        given: String,
    },
    /// Another process holds the database's file lock (sled's exclusive lock), most likely a
    /// running node; only this error says so.
    #[error(
        "the ledger database at {path} is held by another process (a running node?): stop it \
         first, or use another data directory"
    )]
    Locked {
        /// The data directory given.
        path: PathBuf,
    },
    /// No ledger exists at the path (offline tools never create one).
    #[error("no ledger database at {path} (expected a sled directory with a `db` file)")]
    NotFound {
        /// The data directory given.
        path: PathBuf,
    },
    /// The database was written in a storage format this build does not read (by another
    /// version of kakehashi); nothing was read from it.
    #[error(
        "ledger storage format {found} is not format {supported}, the one this build reads: \
         use the kakehashi version that wrote it"
    )]
    UnsupportedFormat {
        /// The stored format version ("none" when the database records none).
        found: String,
        /// The format version this build reads and writes.
        supported: u8,
    },
    /// A request's records were refused (too large, or the caller's closure failed): nothing
    /// of the request was applied or written, its transfers included.
    #[error("records refused, nothing of the request was applied: {detail}")]
    RecordsRefused {
        /// Why.
        detail: String,
    },
    /// sled reported an error.
    #[error("storage error while {context}: {source}")]
    Storage {
        /// What the ledger was doing.
        context: String,
        /// The underlying error.
        source: sled::Error,
    },
    /// The writer stopped after an earlier failure (or the ledger is closing); reopen it.
    #[error("ledger writer stopped: {reason}")]
    Stopped {
        /// The failure that stopped it.
        reason: String,
    },
    /// The 64-bit nanosecond timestamp space is used up (year 2554).
    #[error("timestamps exhausted: the last event already has timestamp u64::MAX")]
    TimestampExhausted,
}

impl Error {
    /// Whether retrying the same call later may succeed without an operator's help. Only
    /// interrupted or timed-out I/O qualifies: every other error is either the caller's input
    /// or a stopped writer that needs a reopen.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted | std::io::ErrorKind::TimedOut
            ),
            _ => false,
        }
    }

    pub(crate) fn storage(context: impl Into<String>) -> impl FnOnce(sled::Error) -> Self {
        let context = context.into();
        move |source| Self::Storage { context, source }
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }

    pub(crate) fn corrupt(what: impl Into<String>) -> impl FnOnce(DecodeError) -> Self {
        let what = what.into();
        move |source| Self::Corrupt { what, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_interrupted_or_timed_out_io_is_transient() {
        let interrupted = Error::Io {
            context: "syncing".into(),
            source: std::io::Error::from(std::io::ErrorKind::Interrupted),
        };
        assert!(interrupted.is_transient());
        assert!(
            !Error::BatchTooLong {
                len: 9000,
                len_max: 8190
            }
            .is_transient()
        );
        assert!(
            !Error::Stopped {
                reason: "test".into()
            }
            .is_transient()
        );
    }

    #[test]
    fn messages_are_lowercase_without_trailing_period() {
        let message = Error::BatchTooLong {
            len: 9000,
            len_max: 8190,
        }
        .to_string();
        assert_eq!(message, "batch of 9000 events exceeds the limit of 8190");
    }
}
