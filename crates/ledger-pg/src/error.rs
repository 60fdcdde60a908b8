//! The PostgreSQL ledger's error type.

/// Why a call failed as a whole. Per-event outcomes are not errors: they are the ledger's
/// named results, exactly as on sled.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The ledger itself refused the call (a batch too long, records refused, an invariant
    /// the group would break): the same errors as the sled ledger's.
    #[error(transparent)]
    Ledger(#[from] kakehashi_ledger::Error),
    /// A statement failed. When this answers a change, nothing of its group was committed.
    #[error("database error while {context}: {source}")]
    Database {
        /// What the ledger was doing.
        context: String,
        /// The client's error.
        source: tokio_postgres::Error,
    },
    /// The group of this change failed before its commit (a statement failed or the
    /// connection dropped before COMMIT was sent): nothing of it was applied, and the same
    /// request may be sent again.
    #[error("the change was not applied (its group failed before commit): {detail}")]
    NotApplied {
        /// Why.
        detail: String,
    },
    /// The connection was lost while COMMIT was in flight: the group may or may not have been
    /// committed, and nothing here can tell. The writer stopped (fail-stop); reopen the ledger
    /// and read what is stored to learn what happened.
    #[error(
        "the commit's outcome is unknown (the connection was lost during COMMIT): {detail}; the \
         ledger writer stopped, reopen it and look up what was stored"
    )]
    OutcomeUnknown {
        /// The client's error.
        detail: String,
    },
    /// No connection could be had from the pool.
    #[error("database connection pool: {detail}")]
    Pool {
        /// The pool's error.
        detail: String,
    },
    /// The writer stopped earlier (fail-stop) or the ledger is closing.
    #[error("ledger writer stopped: {reason}")]
    Stopped {
        /// Why it stopped.
        reason: String,
    },
    /// Another ledger (another process, most likely another node process on this schema)
    /// holds the schema's writer lease ([`crate::Options::exclusive`]).
    #[error(
        "schema {schema} is written by another process (its writer lease is held): stop the \
         other node process, or give this one another schema"
    )]
    Held {
        /// The schema.
        schema: String,
    },
    /// This ledger's writer lease was lost (its connection ended) and its writer stopped:
    /// nothing of the group was applied. Reopen the ledger, which takes the lease again.
    #[error(
        "the schema's writer lease was lost ({detail}); nothing was applied, reopen the ledger"
    )]
    LeaseLost {
        /// Why.
        detail: String,
    },
    /// The ledger was created with another node key.
    #[error("node key {given} does not match the key {stored} this ledger was created with")]
    NodeKeyMismatch {
        /// Hex of the stored verifying key.
        stored: String,
        /// Hex of the given key's verifying key.
        given: String,
    },
    /// The schema was migrated by a newer build: this one does not know its tables.
    #[error(
        "the ledger schema is at version {found}, newer than this build's {known}; run a newer \
         build"
    )]
    SchemaTooNew {
        /// The version stored.
        found: i32,
        /// The newest version this build knows.
        known: i32,
    },
    /// A server setting would let an acknowledged commit be lost.
    #[error(
        "the database's {name} is {value}: commits would be acknowledged before they are durable"
    )]
    NotDurable {
        /// The setting.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// Stored bytes do not decode or do not agree with each other.
    #[error("stored {what} is corrupt: {detail}")]
    Corrupt {
        /// Which stored item.
        what: String,
        /// What is wrong.
        detail: String,
    },
    /// An option is out of range.
    #[error("invalid option {name}: {detail}")]
    InvalidOption {
        /// The option.
        name: &'static str,
        /// Why it is refused.
        detail: String,
    },
}

impl Error {
    /// Whether the same request may simply be sent again: nothing of it was applied and the
    /// writer goes on (the group failed before or at a COMMIT the server refused, or no
    /// connection could be had). An unknown outcome is not transient: the caller must reopen
    /// the ledger and look up what was stored before anything else.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::NotApplied { .. } | Self::Pool { .. })
    }

    pub(crate) fn database(
        context: impl Into<String>,
    ) -> impl FnOnce(tokio_postgres::Error) -> Self {
        let context = context.into();
        move |source| Self::Database { context, source }
    }

    pub(crate) fn corrupt(what: impl Into<String>, detail: impl ToString) -> Self {
        Self::Corrupt {
            what: what.into(),
            detail: detail.to_string(),
        }
    }
}
