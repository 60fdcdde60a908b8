//! The node's durable payment state: what it sent and how each payment ended, what it
//! decided for each payment it received, which UETRs it fenced, and the metadata of its
//! accounts (owner bank, name, kind, closed).
//!
//! The records live in the node's ledger, as its records (see `kakehashi_ledger::records`):
//! keys prefixed by record kind, outbound records keyed by UETR, inbound records by the
//! sending jurisdiction and the UETR, so that a corridor peer can only ever occupy, fence or
//! read keys in its own namespace. Why in the ledger rather than in a database of its own (as
//! before issue 14): a payment's record and its ledger transfer are then made durable by one
//! group commit (see [`crate::engine::Books::create_transfers_recorded`]), so a step of the
//! settlement protocol pays one `fdatasync`, shared by everything in its group, instead of
//! two in sequence. [`Store::put`] writes records alone (fences, account metadata, rejections
//! without a transfer) with `Ledger::write_records`, in the ledger's next group commit with
//! whatever else is waiting. A caller that got `Ok` holds a durable record; the settlement
//! protocol relies on that before it answers anyone or moves money on the other side.
//!
//! Readers see only durable state (issue 11, defect 5): the ledger shows a group's records
//! only once the group is durable (its visibility lock), as it does its transfers. A failed
//! group commit stops the ledger's writer (fail-stop): every later write fails, and a restart
//! reopens the books from what the disk holds.
//!
//! A data directory written before the records moved into the ledger still has the old
//! payment store, a sled database of its own in `<data_dir>/node`; the node copies its
//! records into the ledger at start (see [`migrate_legacy`]) and moves the directory aside.
//!
//! Records are written in a compact binary format (a format byte, then a protobuf message; see
//! `compact`), with the certificate chains of their signed envelopes stored once each in a
//! content-addressed certificate table (key `c` + SHA-256 of the DER), written in the same
//! batch as the first record that refers to a certificate. Records written as JSON (serde,
//! byte fields in base64) by earlier builds are read forever.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kakehashi_ledger::{Ledger, LedgerRecords, RECORDS_PAGE_MAX, Record, RecordWrite};
use kakehashi_protocol::instruction::Uetr;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

pub use self::compact::Undecodable;
use self::compact::{CertificateSink, CertificateSource, Digest};

mod compact;

/// The kind of an account ([`AccountMeta::kind`]).
pub use crate::account::AccountKind;

const PREFIX_OUTBOUND: u8 = b'o';
const PREFIX_INBOUND: u8 = b'i';
const PREFIX_ACCOUNT: u8 = b'a';
/// UETRs of outbound payments without a final outcome: the recovery loop's work list, kept in
/// the same batch as the record so it never disagrees with it, and small whatever the history.
const PREFIX_UNRESOLVED: u8 = b'u';
/// The certificate table: each DER certificate a compact record refers to, under `c` and its
/// SHA-256, written in the batch of the first record that refers to it and never removed.
const PREFIX_CERTIFICATE: u8 = b'c';

/// Why the store failed. Every variant is an operational fault (disk, corruption), never a
/// property of a payment: callers turn it into `Unavailable`/`Internal`, not a rejection.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled refused an operation.
    #[error("payment store: {what}: {source}")]
    Sled {
        /// What was being done.
        what: &'static str,
        /// The sled error.
        #[source]
        source: sled::Error,
    },
    /// A file operation failed.
    #[error("payment store: {what} ({path}): {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A stored record does not decode, or a certificate it refers to is missing or altered:
    /// the database was altered or written by another version.
    #[error("payment store: record {key} does not decode: {source}")]
    Corrupt {
        /// The record's key, hex.
        key: String,
        /// Why (boxed: every store call returns this type).
        #[source]
        source: Box<Undecodable>,
    },
    /// The group commit that carried this write failed (the writer logged the cause).
    #[error("payment store: group commit failed: {0}")]
    Commit(String),
    /// The writer is gone: the node is shutting down, or an earlier group commit failed and
    /// the ledger's writer stopped (fail-stop, see [`Store`]), or the store was opened for
    /// reading only; a restart reopens the store.
    #[error("payment store: the writer has stopped")]
    WriterStopped,
    /// The PostgreSQL ledger that holds the records failed.
    #[error("payment store: {what}: {source}")]
    Postgres {
        /// What was being done.
        what: &'static str,
        /// The ledger's error (boxed, as for [`StoreError::Ledger`]).
        #[source]
        source: Box<kakehashi_ledger_pg::Error>,
    },
    /// The ledger that holds the records failed.
    #[error("payment store: {what}: {source}")]
    Ledger {
        /// What was being done.
        what: &'static str,
        /// The ledger's error (boxed: it is large, and every store call returns this type).
        #[source]
        source: Box<kakehashi_ledger::Error>,
    },
    /// The data directory still holds a payment store from before the records moved into the
    /// ledger; a node start copies it in (see [`migrate_legacy`]).
    #[error(
        "{} holds a payment store that was not yet moved into the ledger: start the node once \
         (it copies the records into its ledger and moves the directory aside), then retry",
        path.display()
    )]
    NotUpgraded {
        /// The old store's directory.
        path: PathBuf,
    },
}

impl StoreError {
    /// Whether the failure is operational and a later attempt may succeed (disk, sled, a
    /// failed or stopped commit), as opposed to stored bytes that do not decode, which stay
    /// corrupt whatever the retry.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Sled { source, .. } => !matches!(source, sled::Error::Corruption { .. }),
            Self::Io { .. } | Self::Commit(_) | Self::WriterStopped => true,
            Self::Ledger { source, .. } => !matches!(
                **source,
                kakehashi_ledger::Error::Corrupt { .. }
                    | kakehashi_ledger::Error::RecordsRefused { .. }
                    | kakehashi_ledger::Error::UnsupportedFormat { .. }
            ),
            Self::Postgres { source, .. } => match &**source {
                kakehashi_ledger_pg::Error::Ledger(source) => !matches!(
                    source,
                    kakehashi_ledger::Error::Corrupt { .. }
                        | kakehashi_ledger::Error::RecordsRefused { .. }
                ),
                source => !matches!(
                    source,
                    kakehashi_ledger_pg::Error::Corrupt { .. }
                        | kakehashi_ledger_pg::Error::NodeKeyMismatch { .. }
                        | kakehashi_ledger_pg::Error::SchemaTooNew { .. }
                        | kakehashi_ledger_pg::Error::NotDurable { .. }
                        | kakehashi_ledger_pg::Error::InvalidOption { .. }
                ),
            },
            Self::Corrupt { .. } | Self::NotUpgraded { .. } => false,
        }
    }
}

/// Byte fields as base64 strings: serde_json would otherwise write a `Vec<u8>` as an array of
/// numbers, about four times the size, and every record is rewritten at each step of a payment.
mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// `Option<Vec<u8>>` as an optional base64 string (see [`base64_bytes`]).
mod base64_opt {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    #[allow(clippy::ref_option)] // serde's `with` passes `&Option<T>`
    pub(super) fn serialize<S: Serializer>(
        bytes: &Option<Vec<u8>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => s.serialize_some(&STANDARD.encode(bytes)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| STANDARD.decode(text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Where a payment this node sent stands. The order of the variants is the order of the
/// protocol; a record only moves forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboundState {
    /// Accepted locally and recorded; the reservation may or may not exist yet and nothing
    /// has been sent. Written only by nodes from before issue 14 (a node now records
    /// `Forwarded` in the reservation's own commit); still read and recovered: recovery voids
    /// the reservation if the ledger holds one and records the payment rejected, naming the
    /// reservation only if it existed.
    Reserving,
    /// The reservation is durable (recorded in the same commit) and Prepare may have reached
    /// the receiver: only the receiver's decision (answer or status query) may end it.
    Forwarded,
    /// The receiver settled; the reservation is posted.
    Settled,
    /// Rejected (locally before anything was reserved, or by the receiver, or fenced); any
    /// reservation is voided.
    Rejected,
}

impl OutboundState {
    /// Whether the payment has its final outcome.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Settled | Self::Rejected)
    }
}

/// A payment this node sent (or refused to send), keyed by UETR.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundRecord {
    /// Where it stands.
    pub state: OutboundState,
    /// The encoded `pb::Signed` instruction exactly as the participant submitted it.
    #[serde(with = "base64_bytes")]
    pub signed_instruction: Vec<u8>,
    /// SHA-256 of the instruction payload, hex.
    pub instruction_sha256: String,
    /// The receiving jurisdiction.
    pub peer: String,
    /// The participant's end-to-end reference.
    pub end_to_end_id: String,
    /// The debited account and amount (minor units of this node's currency).
    pub debtor_account: u128,
    /// Minor units.
    pub amount_minor: u128,
    /// The pending ledger transfer that reserves the amount (0 when nothing was reserved).
    pub reservation_id: u128,
    /// Reason code when rejected.
    pub reason_code: Option<String>,
    /// Reason detail when rejected, or a note on the outcome.
    pub reason_detail: Option<String>,
    /// Who decided: this node's or the receiver's jurisdiction.
    pub decided_by: Option<String>,
    /// The receiver's encoded `pb::Signed` receipt (settled only).
    #[serde(with = "base64_opt")]
    pub receipt: Option<Vec<u8>>,
    /// The amount credited on the other side, minor units of its currency (settled only).
    pub credited_minor: Option<u128>,
    /// Unix seconds when the record was created and last changed.
    pub created_at: u64,
    /// Unix seconds of the last change.
    pub updated_at: u64,
}

/// What this node decided for a payment it received.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InboundState {
    /// Checks passed and the credit is being applied; whether it was is in the ledger (the
    /// credit transfer's id derives from the UETR).
    Accepting,
    /// Credited; the receipt is stored.
    Settled,
    /// Refused; nothing credited.
    Rejected,
    /// A status query found no decision: the UETR can never settle here.
    Fenced,
}

/// A payment this node received (or fenced), keyed by UETR.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboundRecord {
    /// The decision.
    pub state: InboundState,
    /// SHA-256 of the instruction payload decided on, hex (empty for a fence set before any
    /// instruction arrived).
    pub instruction_sha256: String,
    /// The sending jurisdiction (the TLS peer).
    pub sender: String,
    /// Reason code and detail when rejected or fenced.
    pub reason_code: Option<String>,
    /// Reason detail.
    pub reason_detail: Option<String>,
    /// The encoded signed receipt (settled only).
    #[serde(with = "base64_opt")]
    pub receipt: Option<Vec<u8>>,
    /// The creditor account and the amount credited (minor units).
    pub creditor_account: u128,
    /// Minor units credited.
    pub credited_minor: u128,
    /// The ledger transfer that credits the creditor.
    pub credit_transfer_id: u128,
    /// The encoded signed instruction (kept so a receipt can be rebuilt after a crash between
    /// the credit and the record of the decision).
    #[serde(with = "base64_bytes")]
    pub signed_instruction: Vec<u8>,
    /// Unix seconds.
    pub updated_at: u64,
}

/// The node's own facts about an account, beside its balances in the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountMeta {
    /// Its role.
    pub kind: AccountKind,
    /// The bank that holds it (customer accounts).
    pub owner_bic: Option<String>,
    /// A display name.
    pub name: String,
    /// Closed by a node from before accounts were closed in the ledger (by a closing
    /// transfer): such an account is closed in the ledger at the next start and the flag
    /// cleared; until then the checks honour it (AC04). Nodes since never set it: whether an
    /// account is closed is the ledger's account flag.
    pub closed: bool,
}

/// One write of a group.
#[derive(Debug)]
pub enum Write {
    /// Insert or replace the outbound record of a UETR.
    Outbound(Uetr, OutboundRecord),
    /// Insert or replace the inbound record of a UETR from the record's sender
    /// ([`InboundRecord::sender`]): the key is (sender, UETR), so the record and its key never
    /// disagree about who sent it.
    Inbound(Uetr, InboundRecord),
    /// Insert or replace an account's metadata.
    Account(u128, AccountMeta),
}

/// The payment store. Cheap to clone; a view over the ledger's records (every node), over a
/// ledger opened offline (the tools), or over memory (the simulator).
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// What this store knows of the certificate table (shared with the books that write
    /// records in the same ledger, see [`Store::encoder`]).
    encoder: Encoder,
    /// Faults the unit tests inject.
    #[cfg(test)]
    faults: Arc<faults::Faults>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// Where the records live.
#[derive(Clone)]
enum Backend {
    /// The node's ledger: its records, read and written through its visibility lock and its
    /// group commit.
    Ledger(Arc<Ledger>),
    /// A ledger opened offline, for reading only.
    Offline(Arc<LedgerRecords>),
    /// The simulator's disk.
    Memory(MemoryPayments),
    /// The node's PostgreSQL ledger: its records table, written in its group commits.
    Postgres(Arc<crate::engine::PgHandle>),
    /// A PostgreSQL ledger read offline, for reading only (each read its own connection).
    PostgresOffline(Arc<kakehashi_ledger_pg::Options>),
}

/// The records of a store held in memory: the deterministic simulator's disk (issue 11). The
/// keys, the encoding, the unresolved index and the atomicity of a batch are the ledger's
/// records'; only the medium differs. A [`Store::put`] yields once to its executor (the moment
/// a real put spends in its group commit, when a simulated crash can fall) and then applies
/// its whole batch at once, so a crash leaves either none of it or all of it, as the ledger's
/// group commit does. The simulator's books apply transfers and the records computed from
/// them in one step with [`MemoryPayments::apply_records`]. The simulator keeps a clone across a
/// node's crash and restart: it is the durable state.
#[derive(Clone, Debug, Default)]
pub struct MemoryPayments(Arc<Mutex<MemoryState>>, Encoder);

/// What a [`MemoryPayments`] holds.
#[derive(Debug, Default)]
pub struct MemoryState {
    /// Every durable entry, by key.
    pub entries: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Puts still to fail (transiently, nothing applied), as the simulator injects them.
    pub failures_due: u32,
    /// Puts failed so far.
    pub failures_served: u64,
}

impl MemoryPayments {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The state, locked (one thread: never contended).
    pub fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The encoder of these records, which the simulator's books encode with (see
    /// [`Encoder`]): it must learn of the certificates durable here, and of none elsewhere.
    pub fn encoder(&self) -> &Encoder {
        &self.1
    }

    async fn put(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let encoded = self.1.encode(&writes);
        YieldOnce::default().await;
        let mut state = self.lock();
        if state.failures_due > 0 {
            state.failures_due -= 1;
            state.failures_served += 1;
            return Err(StoreError::Commit(
                "a transient failure the simulator injected; nothing was applied".to_owned(),
            ));
        }
        apply_encoded(&mut state, encoded.writes);
        drop(state);
        self.1.stored(encoded.certificates);
        Ok(())
    }

    /// Applies encoded records at once (no yield, no injected failure): the simulator's books
    /// call it in the same step as the transfers the records go with (see
    /// [`Encoder::encode`]), as the ledger's group commit makes both durable together.
    pub fn apply_records(&self, records: Encoded) {
        apply_encoded(&mut self.lock(), records.writes);
        self.1.stored(records.certificates);
    }

    /// At most `limit` entries under `prefix` after the key `after`, in key order.
    fn page(&self, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Vec<Record> {
        use std::ops::Bound;
        let from = match after {
            Some(after) => Bound::Excluded(after.to_vec()),
            None => Bound::Included(prefix.to_vec()),
        };
        self.lock()
            .entries
            .range((from, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

fn apply_encoded(state: &mut MemoryState, encoded: Vec<RecordWrite>) {
    for write in encoded {
        match write {
            RecordWrite::Put { key, value } => state.entries.insert(key, value),
            RecordWrite::Delete { key } => state.entries.remove(&key),
        };
    }
}

/// The answer of a store read that never waits: the memory backend (the simulator's) and the
/// sled backends read inline, so their reads are ready at the first poll. For callers outside
/// any executor: the simulator's oracles and tests' polled conditions.
///
/// # Panics
///
/// When the future is not ready at once (a read of a backend that waits: await it instead).
pub fn read_now<T>(future: impl Future<Output = T>) -> T {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(value) => value,
        std::task::Poll::Pending => panic!("a store read waited: await it instead"),
    }
}

/// A future that yields once to its executor, then is ready: the point where a simulated
/// durable write waits for its sync, when other tasks run and a simulated crash can fall.
///
/// The in-memory stand-ins for durable storage use it so that a write keeps the contract of
/// the real one (answered only after its group commit): [`MemoryPayments`] here, and the
/// deterministic simulator's books over a memory ledger. The first poll wakes its own task
/// and returns `Pending`; the next returns `Ready`, so no timer or runtime is involved and the
/// executor alone decides what runs in between.
#[derive(Debug, Default)]
pub struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

fn postgres_error(what: &'static str) -> impl FnOnce(kakehashi_ledger_pg::Error) -> StoreError {
    move |source| match source {
        kakehashi_ledger_pg::Error::Ledger(source) => ledger_error(what)(source),
        source => StoreError::Postgres {
            what,
            source: Box::new(source),
        },
    }
}

fn ledger_error(what: &'static str) -> impl FnOnce(kakehashi_ledger::Error) -> StoreError {
    move |source| match source {
        kakehashi_ledger::Error::Stopped { .. } => StoreError::WriterStopped,
        source => StoreError::Ledger {
            what,
            source: Box::new(source),
        },
    }
}

impl Store {
    /// The store over `ledger`'s records: the node's.
    pub fn over_ledger(ledger: Arc<Ledger>) -> Self {
        Self {
            backend: Backend::Ledger(ledger),
            encoder: Encoder::default(),
            #[cfg(test)]
            faults: Arc::default(),
        }
    }

    /// The store over the records of the node's PostgreSQL ledger behind `handle` (shared with
    /// the node's [`crate::engine::PgBooks`]).
    pub fn over_postgres(handle: Arc<crate::engine::PgHandle>) -> Self {
        Self {
            backend: Backend::Postgres(handle),
            encoder: Encoder::default(),
            #[cfg(test)]
            faults: Arc::default(),
        }
    }

    /// The payment store of the PostgreSQL ledger of `options`, for reading only (the offline
    /// tools): nothing is started or migrated, every read is one committed view, and every
    /// [`Store::put`] fails with [`StoreError::WriterStopped`].
    pub fn open_postgres_read_only(options: kakehashi_ledger_pg::Options) -> Self {
        Self {
            backend: Backend::PostgresOffline(Arc::new(options)),
            encoder: Encoder::default(),
            #[cfg(test)]
            faults: Arc::default(),
        }
    }

    /// A store whose records are `payments`, in memory: the simulator's (see
    /// [`MemoryPayments`]).
    pub fn in_memory(payments: MemoryPayments) -> Self {
        Self {
            encoder: payments.encoder().clone(),
            backend: Backend::Memory(payments),
            #[cfg(test)]
            faults: Arc::default(),
        }
    }

    /// Opens the payment store of the node whose data directory is `data_dir` for reading
    /// only, for offline tools (the pair audit, statements): the records of its ledger
    /// (`<data_dir>/ledger`), opened as the audit opens it (refused while a node holds it; the
    /// groups only the durable log holds applied). Every [`Store::put`] fails with
    /// [`StoreError::WriterStopped`]. A data directory that still holds a payment store from
    /// before the records moved into the ledger is refused ([`StoreError::NotUpgraded`]): its
    /// records are not in the ledger yet, and a node start moves them there.
    pub fn open_read_only(data_dir: &Path) -> Result<Self, StoreError> {
        let legacy = data_dir.join(LEGACY_DIR);
        if legacy.join("db").is_file() {
            return Err(StoreError::NotUpgraded { path: legacy });
        }
        let ledger = data_dir.join("ledger");
        let records = LedgerRecords::open(&ledger).map_err(|error| match error {
            kakehashi_ledger::Error::NotFound { .. } => StoreError::Io {
                what: "no payment store here (expected a node's data directory, whose ledger \
                       holds its payment records)",
                path: data_dir.to_owned(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            },
            error => ledger_error("opening the ledger's records")(error),
        })?;
        Ok(Self {
            backend: Backend::Offline(Arc::new(records)),
            encoder: Encoder::default(),
            #[cfg(test)]
            faults: Arc::default(),
        })
    }

    /// Applies `writes` atomically and durably, returning once they are on disk (in the
    /// ledger's next group commit).
    pub async fn put(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let ledger = match &self.backend {
            Backend::Ledger(ledger) => ledger,
            Backend::Offline(_) | Backend::PostgresOffline(_) => {
                return Err(StoreError::WriterStopped);
            }
            Backend::Memory(payments) => return payments.put(writes).await,
            Backend::Postgres(handle) => {
                let encoded = self.encoder.encode(&writes);
                let ledger = handle
                    .ledger()
                    .await
                    .map_err(postgres_error("writing records"))?;
                ledger
                    .write_records(encoded.writes)
                    .await
                    .map_err(postgres_error("writing records"))?;
                self.encoder.stored(encoded.certificates);
                return Ok(());
            }
        };
        // Encoded here, in the caller's task, not in the ledger's writer.
        let encoded = self.encoder.encode(&writes);
        // Awaited: the ledger's commit thread completes the call once the group is durable,
        // and no thread waits meanwhile. Dropped, the call is applied all the same.
        ledger
            .write_records_async(encoded.writes)
            .await
            .map_err(ledger_error("writing records"))?;
        self.encoder.stored(encoded.certificates);
        Ok(())
    }

    /// The encoder of this store's records: the books that write records into the same ledger
    /// encode with it, so that the certificates either learns are durable spare the other's
    /// writes and reads.
    pub fn encoder(&self) -> Encoder {
        self.encoder.clone()
    }

    /// The outbound record of `uetr`.
    pub async fn outbound(&self, uetr: &Uetr) -> Result<Option<OutboundRecord>, StoreError> {
        self.get(&key(PREFIX_OUTBOUND, &uetr.0), OUTBOUND).await
    }

    /// The inbound record of `uetr` from the jurisdiction `sender`. Another jurisdiction's
    /// record of the same UETR is another key: a peer can neither see nor block it.
    pub async fn inbound(
        &self,
        sender: &str,
        uetr: &Uetr,
    ) -> Result<Option<InboundRecord>, StoreError> {
        self.get(&inbound_key(sender, uetr), INBOUND).await
    }

    /// The metadata of `account`.
    pub async fn account(&self, account: u128) -> Result<Option<AccountMeta>, StoreError> {
        self.get(&key(PREFIX_ACCOUNT, &account.to_be_bytes()), ACCOUNT)
            .await
    }

    /// Every account the node knows, in id order.
    pub async fn accounts(&self) -> Result<Vec<(u128, AccountMeta)>, StoreError> {
        let mut out = Vec::new();
        let mut pages = Pages::new(&[PREFIX_ACCOUNT], "scanning accounts");
        while let Some(page) = pages.next(self).await? {
            for (k, v) in page {
                let id_bytes: [u8; 16] = k
                    .get(1..)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| corrupt_key(&k))?;
                out.push((
                    u128::from_be_bytes(id_bytes),
                    self.decode(&k, &v, ACCOUNT).await?,
                ));
            }
        }
        Ok(out)
    }

    /// Every outbound payment that has no final outcome yet (for recovery). Reads the
    /// unresolved index, so its cost follows the payments in doubt, not the history.
    pub async fn unresolved_outbound(&self) -> Result<Vec<(Uetr, OutboundRecord)>, StoreError> {
        // The index first, then each record: a record may have moved on meanwhile, which the
        // state filter below allows for.
        let mut index = Vec::new();
        let mut pages = Pages::new(&[PREFIX_UNRESOLVED], "scanning unresolved payments");
        while let Some(page) = pages.next(self).await? {
            index.extend(page.into_iter().map(|(k, _)| k));
        }
        let mut out = Vec::new();
        for k in index {
            let id: [u8; 16] = k
                .get(1..)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| corrupt_key(&k))?;
            let uetr = Uetr(id);
            if let Some(record) = self.outbound(&uetr).await?
                && !record.state.is_final()
            {
                out.push((uetr, record));
            }
        }
        Ok(out)
    }

    /// How many outbound payments have no final outcome (durably; an entry that cannot be
    /// read counts, as an entry of the index).
    pub async fn unresolved_count(&self) -> usize {
        let mut count = 0;
        let mut pages = Pages::new(&[PREFIX_UNRESOLVED], "counting unresolved payments");
        loop {
            match pages.next(self).await {
                Ok(Some(page)) => count += page.len(),
                Ok(None) => return count,
                // The entries a failed read would have given are not known: count the failure
                // as one, as the iterator this replaced did.
                Err(_) => return count + 1,
            }
        }
    }

    async fn get<T>(&self, k: &[u8], kind: Kind<T>) -> Result<Option<T>, StoreError> {
        match self.value(k).await? {
            Some(v) => Ok(Some(self.decode(k, &v, kind).await?)),
            None => Ok(None),
        }
    }

    /// The durable value under `k`, as stored.
    async fn value(&self, k: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        #[cfg(test)]
        self.faults.read(k)?;
        Ok(match &self.backend {
            Backend::Ledger(ledger) => {
                ledger.record(k).map_err(ledger_error("reading a record"))?
            }
            Backend::Offline(records) => records
                .record(k)
                .map_err(ledger_error("reading a record"))?,
            Backend::Memory(payments) => payments.lock().entries.get(k).cloned(),
            Backend::Postgres(handle) => {
                let ledger = handle
                    .ledger()
                    .await
                    .map_err(postgres_error("reading a record"))?;
                ledger
                    .record(k)
                    .await
                    .map_err(postgres_error("reading a record"))?
            }
            Backend::PostgresOffline(options) => {
                // The first record under the prefix `k` is `k` itself when it exists.
                kakehashi_ledger_pg::records_offline(options, k, None, 1)
                    .await
                    .map_err(postgres_error("reading a record"))?
                    .into_iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, value)| value)
            }
        })
    }

    /// The record stored under `k` as `value`, in either format.
    ///
    /// A compact record refers to certificates by digest. Those the encoder knows durable are
    /// taken from its memory; one it does not know is read from the certificate table (an
    /// awaited read, which a database backend needs), checked against its digest, learned, and
    /// the record decoded again. Each pass learns a certificate the record names, and a record
    /// names a bounded number of them, so the passes are bounded.
    async fn decode<T>(&self, k: &[u8], value: &[u8], kind: Kind<T>) -> Result<T, StoreError> {
        let corrupt = |source| StoreError::Corrupt {
            key: hex::encode(k),
            source: Box::new(source),
        };
        let mut lookup = Lookup {
            encoder: &self.encoder,
            fetched: HashMap::new(),
            missing: None,
        };
        loop {
            let source = match (kind.0)(value, &mut lookup) {
                Ok(decoded) => return Ok(decoded),
                Err(source) => source,
            };
            let Some(digest) = lookup.missing.take() else {
                return Err(corrupt(source));
            };
            if lookup.fetched.len() >= CERTIFICATES_PER_RECORD_MAX {
                return Err(corrupt(source));
            }
            let Some(der) = self.value(&key(PREFIX_CERTIFICATE, &digest)).await? else {
                return Err(corrupt(source));
            };
            // Content-addressed: a certificate that does not hash to its key was altered.
            if <[u8; 32]>::from(Sha256::digest(&der)) != digest {
                return Err(corrupt(Undecodable::CertificateMismatch(hex::encode(
                    digest,
                ))));
            }
            let der = Arc::new(der);
            // Read back, it is durable (a reader sees only durable records).
            self.encoder.learn(digest, Arc::clone(&der));
            lookup.fetched.insert(digest, der);
        }
    }

    /// A page of the durable entries under `prefix` after the key `after`, in key order: the
    /// ledger's as one consistent, durable view (records are replaced, never removed, except
    /// the unresolved index, whose readers allow for entries that moved on).
    async fn page(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        what: &'static str,
    ) -> Result<Vec<Record>, StoreError> {
        #[cfg(test)]
        self.faults.read(prefix)?;
        match &self.backend {
            Backend::Memory(payments) => Ok(payments.page(prefix, after, RECORDS_PAGE_MAX)),
            Backend::Offline(records) => records
                .records_after(prefix, after, RECORDS_PAGE_MAX)
                .map_err(ledger_error(what)),
            Backend::Ledger(ledger) => ledger
                .records(prefix, after, RECORDS_PAGE_MAX)
                .map_err(ledger_error(what)),
            Backend::Postgres(handle) => handle
                .ledger()
                .await
                .map_err(postgres_error(what))?
                .records(prefix, after, RECORDS_PAGE_MAX)
                .await
                .map_err(postgres_error(what)),
            Backend::PostgresOffline(options) => {
                kakehashi_ledger_pg::records_offline(options, prefix, after, RECORDS_PAGE_MAX)
                    .await
                    .map_err(postgres_error(what))
            }
        }
    }

    /// Outbound records in UETR order: the page after `after` (from the first when `None`).
    /// An empty page is the end.
    pub async fn outbound_page(
        &self,
        after: Option<&Uetr>,
    ) -> Result<Vec<(Uetr, OutboundRecord)>, StoreError> {
        self.records_page(
            &[PREFIX_OUTBOUND],
            after,
            OUTBOUND,
            "scanning outbound payments",
        )
        .await
    }

    /// Inbound records (decisions and fences) from the jurisdiction `sender`, in UETR order:
    /// the page after `after` (from the first when `None`). An empty page is the end.
    pub async fn inbound_page(
        &self,
        sender: &str,
        after: Option<&Uetr>,
    ) -> Result<Vec<(Uetr, InboundRecord)>, StoreError> {
        self.records_page(
            &inbound_prefix(sender),
            after,
            INBOUND,
            "scanning inbound payments",
        )
        .await
    }

    /// Every outbound record, in UETR order (read a page at a time; the tools that audit a
    /// node's history hold it whole anyway).
    pub async fn outbound_all(&self) -> Result<Vec<(Uetr, OutboundRecord)>, StoreError> {
        let mut all: Vec<(Uetr, OutboundRecord)> = Vec::new();
        loop {
            let page = self.outbound_page(all.last().map(|(uetr, _)| uetr)).await?;
            if page.is_empty() {
                return Ok(all);
            }
            all.extend(page);
        }
    }

    /// Every inbound record from the jurisdiction `sender`, in UETR order (as
    /// [`Store::outbound_all`]).
    pub async fn inbound_all(
        &self,
        sender: &str,
    ) -> Result<Vec<(Uetr, InboundRecord)>, StoreError> {
        let mut all: Vec<(Uetr, InboundRecord)> = Vec::new();
        loop {
            let page = self
                .inbound_page(sender, all.last().map(|(uetr, _)| uetr))
                .await?;
            if page.is_empty() {
                return Ok(all);
            }
            all.extend(page);
        }
    }

    /// A page of the records under `prefix`, keyed by the UETR that ends their key.
    async fn records_page<T>(
        &self,
        prefix: &[u8],
        after: Option<&Uetr>,
        kind: Kind<T>,
        what: &'static str,
    ) -> Result<Vec<(Uetr, T)>, StoreError> {
        let after = after.map(|uetr| [prefix, &uetr.0[..]].concat());
        let page = self.page(prefix, after.as_deref(), what).await?;
        let mut out = Vec::with_capacity(page.len());
        for (k, v) in page {
            let id: [u8; 16] = k
                .get(prefix.len()..)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| corrupt_key(&k))?;
            out.push((Uetr(id), self.decode(&k, &v, kind).await?));
        }
        Ok(out)
    }
}

/// A scan of a store's entries under one prefix, a page at a time.
struct Pages {
    prefix: Vec<u8>,
    /// The last key returned.
    after: Option<Vec<u8>>,
    done: bool,
    what: &'static str,
}

impl Pages {
    fn new(prefix: &[u8], what: &'static str) -> Self {
        Self {
            prefix: prefix.to_vec(),
            after: None,
            done: false,
            what,
        }
    }

    /// The next page, or `None` after the last.
    async fn next(&mut self, store: &Store) -> Result<Option<Vec<Record>>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let page = store
            .page(&self.prefix, self.after.as_deref(), self.what)
            .await?;
        self.done = page.len() < RECORDS_PAGE_MAX;
        match page.last() {
            Some((k, _)) => {
                self.after = Some(k.clone());
                Ok(Some(page))
            }
            None => Ok(None),
        }
    }
}

/// How one kind of record decodes from a stored value (either format).
struct Kind<T>(fn(&[u8], &mut dyn CertificateSource) -> Result<T, Undecodable>);

impl<T> Clone for Kind<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Kind<T> {}

const OUTBOUND: Kind<OutboundRecord> = Kind(compact::decode_outbound);
const INBOUND: Kind<InboundRecord> = Kind(compact::decode_inbound);
const ACCOUNT: Kind<AccountMeta> = Kind(compact::decode_account);

/// The certificates of a record being decoded: those the encoder knows durable, and those
/// read for this record; the first one neither has is noted for [`Store::decode`] to read.
struct Lookup<'a> {
    encoder: &'a Encoder,
    fetched: HashMap<Digest, Arc<Vec<u8>>>,
    missing: Option<Digest>,
}

impl CertificateSource for Lookup<'_> {
    fn certificate(&mut self, digest: &Digest) -> Result<Arc<Vec<u8>>, Undecodable> {
        if let Some(der) = self.fetched.get(digest) {
            return Ok(Arc::clone(der));
        }
        if let Some(der) = self.encoder.known(digest) {
            return Ok(der);
        }
        self.missing = Some(*digest);
        Err(Undecodable::MissingCertificate(hex::encode(digest)))
    }
}

fn key(prefix: u8, id: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + id.len());
    k.push(prefix);
    k.extend_from_slice(id);
    k
}

/// The start of every inbound key from `sender`: the inbound prefix, the length of the
/// jurisdiction code (two bytes, big-endian) and the code, so that no sender's keys are a prefix
/// of another's.
fn inbound_prefix(sender: &str) -> Vec<u8> {
    let code = sender.as_bytes();
    // Agreement codes are two letters (the agreement's schema), far below the length field's
    // bound; the bound only keeps this function total.
    let code = &code[..code.len().min(usize::from(u16::MAX))];
    let len = u16::try_from(code.len()).unwrap_or(u16::MAX);
    let mut k = Vec::with_capacity(3 + code.len() + 16);
    k.push(PREFIX_INBOUND);
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(code);
    k
}

/// The key of the inbound record of `uetr` from `sender`.
fn inbound_key(sender: &str, uetr: &Uetr) -> Vec<u8> {
    let mut k = inbound_prefix(sender);
    k.extend_from_slice(&uetr.0);
    k
}

fn corrupt_key(k: &[u8]) -> StoreError {
    StoreError::Corrupt {
        key: hex::encode(k),
        source: Box::new(Undecodable::Key),
    }
}

/// Most certificates an [`Encoder`] remembers in each of its maps. A node meets the chains of
/// its banks, its own and its peers' node keys: a few dozen certificates. The bound keeps a
/// flood of distinct chains (every rejected submission is recorded with its envelope) from
/// growing memory: a full map is emptied and refilled, which costs only rewrites and rereads.
const CERTIFICATES_KNOWN_MAX: usize = 1024;

/// Longest chain whose certificates go to the certificate table; an envelope with a longer one
/// is stored verbatim. The verifier accepts at most five certificates (leaf, three
/// intermediates, root); the bound keeps a hostile envelope (recorded when rejected) from
/// turning into thousands of writes in one batch.
const CHAIN_LEN_TABLED_MAX: usize = 8;

/// Most certificates a record read back may name (see [`Store::decode`]): an outbound record
/// holds three envelopes (instruction, quote, receipt), each with a tabled chain of at most
/// [`CHAIN_LEN_TABLED_MAX`]; more means a record that was not written by this encoder.
const CERTIFICATES_PER_RECORD_MAX: usize = 4 * CHAIN_LEN_TABLED_MAX;

/// Encodes records in the compact format and remembers which certificates of the certificate
/// table are durable, so that a record refers to a known certificate without writing it again,
/// and a read finds it without reading it again. Cheap to clone (shared state).
///
/// Invariant: a digest is marked durable only after the batch that wrote its certificate is
/// durable ([`Encoder::stored`]), or after the certificate was read back (a reader sees only
/// durable records). So a record encoded without its certificates refers only to certificates
/// already durable, and a crash can never leave a record whose certificate is missing. Until
/// then, concurrent batches may each write the same certificate: the same key and value, no
/// harm.
#[derive(Clone, Debug, Default)]
pub struct Encoder(Arc<Mutex<Known>>);

/// What an [`Encoder`] knows.
#[derive(Debug, Default)]
struct Known {
    /// SHA-256 of certificates seen, by DER: spares hashing the same chains in every record.
    digests: HashMap<Vec<u8>, Digest>,
    /// Certificates durable in the table, by digest.
    durable: HashMap<Digest, Arc<Vec<u8>>>,
}

/// Records encoded by [`Encoder::encode`], with the certificates the batch writes.
#[derive(Debug)]
pub struct Encoded {
    /// The ledger's writes: the certificates first, then each record and its index entry.
    pub writes: Vec<RecordWrite>,
    /// The certificates among the writes, to pass to [`Encoder::stored`] once the writes are
    /// durable.
    pub certificates: Written,
}

/// The certificates a batch of [`Encoded`] records writes.
#[derive(Debug, Default)]
pub struct Written(Vec<(Digest, Arc<Vec<u8>>)>);

impl Encoder {
    /// The records of `writes`, encoded as the ledger stores them: each record under its key,
    /// for outbound records the matching change to the unresolved index, and before them the
    /// certificates the records refer to that are not known durable. The engine's books use it
    /// to write a step's records in the commit of its transfers (see
    /// [`crate::engine::Books::create_transfers_recorded`]).
    pub fn encode(&self, writes: &[Write]) -> Encoded {
        let mut sink = Sink {
            encoder: self,
            new: Vec::new(),
        };
        let mut records = Vec::with_capacity(writes.len() + 1);
        for write in writes {
            encode_write(write, &mut sink, &mut records);
        }
        let mut out = Vec::with_capacity(sink.new.len() + records.len());
        let mut certificates = Vec::with_capacity(sink.new.len());
        for (digest, der) in sink.new {
            out.push(RecordWrite::Put {
                key: key(PREFIX_CERTIFICATE, &digest),
                value: der.as_ref().clone(),
            });
            certificates.push((digest, der));
        }
        out.extend(records);
        Encoded {
            writes: out,
            certificates: Written(certificates),
        }
    }

    /// Marks `certificates` durable: the batch that wrote them is (see [`Encoded`]).
    pub fn stored(&self, certificates: Written) {
        if certificates.0.is_empty() {
            return;
        }
        let mut known = self.lock();
        for (digest, der) in certificates.0 {
            bounded_insert(&mut known.durable, digest, der);
        }
    }

    /// A certificate known durable, by digest.
    fn known(&self, digest: &Digest) -> Option<Arc<Vec<u8>>> {
        self.lock().durable.get(digest).cloned()
    }

    /// Learns a certificate read back from the table (durable, then).
    fn learn(&self, digest: Digest, der: Arc<Vec<u8>>) {
        let mut known = self.lock();
        bounded_insert(&mut known.digests, der.as_ref().clone(), digest);
        bounded_insert(&mut known.durable, digest, der);
    }

    /// The digest of `der`, and whether it is durable in the table.
    fn digest(&self, der: &[u8]) -> (Digest, bool) {
        let remembered = {
            let known = self.lock();
            known
                .digests
                .get(der)
                .map(|digest| (*digest, known.durable.contains_key(digest)))
        };
        if let Some(answer) = remembered {
            return answer;
        }
        // Hashed outside the lock.
        let digest: Digest = Sha256::digest(der).into();
        let mut known = self.lock();
        bounded_insert(&mut known.digests, der.to_vec(), digest);
        (digest, known.durable.contains_key(&digest))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Known> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Inserts into a map of at most [`CERTIFICATES_KNOWN_MAX`] entries, emptying it when full.
fn bounded_insert<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, key: K, value: V) {
    if map.len() >= CERTIFICATES_KNOWN_MAX && !map.contains_key(&key) {
        map.clear();
    }
    map.insert(key, value);
}

/// The certificates of one batch being encoded.
struct Sink<'a> {
    encoder: &'a Encoder,
    /// Certificates to write with the batch (not known durable), each once.
    new: Vec<(Digest, Arc<Vec<u8>>)>,
}

impl CertificateSink for Sink<'_> {
    fn tabled(&self, chain: &[Vec<u8>]) -> bool {
        chain.len() <= CHAIN_LEN_TABLED_MAX
            && chain
                .iter()
                .all(|der| !der.is_empty() && der.len() <= kakehashi_ledger::RECORD_VALUE_LEN_MAX)
    }

    fn refer(&mut self, der: &[u8]) -> Digest {
        let (digest, durable) = self.encoder.digest(der);
        if !durable && !self.new.iter().any(|(d, _)| *d == digest) {
            self.new.push((digest, Arc::new(der.to_vec())));
        }
        digest
    }
}

fn encode_write(write: &Write, sink: &mut Sink<'_>, out: &mut Vec<RecordWrite>) {
    match write {
        Write::Outbound(uetr, record) => {
            out.push(RecordWrite::Put {
                key: key(PREFIX_OUTBOUND, &uetr.0),
                value: compact::encode_outbound(record, sink),
            });
            let index = key(PREFIX_UNRESOLVED, &uetr.0);
            if record.state.is_final() {
                out.push(RecordWrite::Delete { key: index });
            } else {
                out.push(RecordWrite::Put {
                    key: index,
                    value: Vec::new(),
                });
            }
        }
        Write::Inbound(uetr, record) => out.push(RecordWrite::Put {
            key: inbound_key(&record.sender, uetr),
            value: compact::encode_inbound(record, sink),
        }),
        Write::Account(id, meta) => out.push(RecordWrite::Put {
            key: key(PREFIX_ACCOUNT, &id.to_be_bytes()),
            value: compact::encode_account(meta),
        }),
    }
}

/// The directory of the payment store under a data directory before the records moved into
/// the ledger.
pub const LEGACY_DIR: &str = "node";

/// Where [`migrate_legacy`] moves that directory once its records are in the ledger.
pub const LEGACY_MOVED_DIR: &str = "node.moved-into-ledger";

/// Records copied into the ledger per call: a few megabytes per group commit.
const MIGRATE_CHUNK: usize = 1024;

/// How long opening the old store waits for sled's file lock.
const LOCK_WAIT_MAX: Duration = Duration::from_secs(2);
/// Pause between attempts to take the lock.
const LOCK_RETRY_PAUSE: Duration = Duration::from_millis(10);

/// Moves the payment store of a data directory written before the records moved into the
/// ledger (`<data_dir>/node`, a sled database of its own) into `ledger`'s records: copies every
/// entry as it is (the keys and encodings did not change), each copy durable, then renames the
/// directory to [`LEGACY_MOVED_DIR`] (or that name with a number, if taken) and syncs the data
/// directory. Returns how many records were copied, or `None` when there is no old store (a
/// second start does nothing).
///
/// Called at start before anything is served: nothing else writes records meanwhile, so a
/// crash before the rename only means the next start copies the same values again (the copy is
/// idempotent), and a crash after it finds nothing to do.
pub fn migrate_legacy(data_dir: &Path, ledger: &Ledger) -> Result<Option<usize>, StoreError> {
    let legacy = data_dir.join(LEGACY_DIR);
    if !legacy.join("db").is_file() {
        return Ok(None);
    }
    let copied = {
        let (_db, tree) = open_legacy(&legacy)?;
        let mut copied = 0;
        let mut chunk = Vec::with_capacity(MIGRATE_CHUNK);
        for item in tree.iter() {
            let (k, v) = item.map_err(|source| StoreError::Sled {
                what: "reading the old payment store",
                source,
            })?;
            chunk.push(RecordWrite::Put {
                key: k.to_vec(),
                value: v.to_vec(),
            });
            if chunk.len() == MIGRATE_CHUNK {
                copied += chunk.len();
                ledger
                    .write_records(std::mem::take(&mut chunk))
                    .map_err(ledger_error("copying the old payment store"))?;
            }
        }
        copied += chunk.len();
        ledger
            .write_records(chunk)
            .map_err(ledger_error("copying the old payment store"))?;
        copied
    };
    let mut target = data_dir.join(LEGACY_MOVED_DIR);
    let mut n = 1;
    while target.exists() {
        n += 1;
        target = data_dir.join(format!("{LEGACY_MOVED_DIR}.{n}"));
    }
    let io = |what: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| StoreError::Io { what, path, source }
    };
    std::fs::rename(&legacy, &target).map_err(io("moving the old payment store aside", &legacy))?;
    std::fs::File::open(data_dir)
        .and_then(|dir| dir.sync_all())
        .map_err(io("syncing the data directory", data_dir))?;
    tracing::info!(records = copied, from = %legacy.display(), moved_to = %target.display(),
        "moved the payment store into the ledger's records");
    Ok(Some(copied))
}

/// Opens the old payment store's sled database and its tree, waiting for sled's file lock as
/// the ledger does (sled releases it from background threads a few milliseconds after the last
/// handle goes).
fn open_legacy(dir: &Path) -> Result<(sled::Db, sled::Tree), StoreError> {
    let config = sled::Config::new().path(dir).flush_every_ms(None);
    let mut waited = Duration::ZERO;
    let db = loop {
        match config.open() {
            Ok(db) => break db,
            Err(sled::Error::Io(error))
                if error.to_string().contains("could not acquire lock")
                    && waited < LOCK_WAIT_MAX =>
            {
                std::thread::sleep(LOCK_RETRY_PAUSE);
                waited += LOCK_RETRY_PAUSE;
            }
            Err(source) => {
                return Err(StoreError::Sled {
                    what: "opening the old payment store",
                    source,
                });
            }
        }
    };
    let tree = db
        .open_tree("payments")
        .map_err(|source| StoreError::Sled {
            what: "opening the old payments tree",
            source,
        })?;
    Ok((db, tree))
}

/// Faults the unit tests inject into the store: failing reads. Compiled into test builds only.
#[cfg(test)]
pub(crate) mod faults {
    use std::sync::atomic::{AtomicU8, Ordering};

    use super::StoreError;

    #[derive(Default)]
    pub(crate) struct Faults {
        /// Reads of keys starting with this byte fail (0: none).
        failing_prefix: AtomicU8,
    }

    impl Faults {
        pub(super) fn read(&self, k: &[u8]) -> Result<(), StoreError> {
            let failing = self.failing_prefix.load(Ordering::SeqCst);
            if failing != 0 && k.first() == Some(&failing) {
                return Err(StoreError::Io {
                    what: "reading a record",
                    path: "/secret/path".into(),
                    source: std::io::Error::other("injected read failure in /secret/path"),
                });
            }
            Ok(())
        }

        pub(super) fn fail_reads(&self, prefix: u8, fail: bool) {
            self.failing_prefix
                .store(if fail { prefix } else { 0 }, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
impl Store {
    /// Makes every read of account metadata fail (`fail`) or succeed again, as a failing disk
    /// would: for the tests that a failed read is never turned into a refusal.
    pub(crate) fn fail_account_reads(&self, fail: bool) {
        self.faults.fail_reads(PREFIX_ACCOUNT, fail);
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use kakehashi_ledger::Options;
    use kakehashi_proto::pb;
    use prost::Message as _;

    use super::*;

    /// A store over a new ledger in `dir`.
    fn ledger_store(dir: &Path) -> Store {
        Store::over_ledger(Arc::new(open_ledger(dir)))
    }

    fn open_ledger(dir: &Path) -> Ledger {
        Ledger::open(
            &dir.join("ledger"),
            SigningKey::from_bytes(&[4; 32]),
            Options::default(),
        )
        .unwrap()
    }

    fn record(state: OutboundState) -> OutboundRecord {
        OutboundRecord {
            state,
            signed_instruction: vec![1, 2, 3],
            instruction_sha256: "ab".into(),
            peer: "SG".into(),
            end_to_end_id: "E2E".into(),
            debtor_account: 1001,
            amount_minor: 5000,
            reservation_id: 77,
            reason_code: None,
            reason_detail: None,
            decided_by: None,
            receipt: None,
            credited_minor: None,
            created_at: 1,
            updated_at: 1,
        }
    }

    /// Everything a reader can ask of a store, for comparing two of them.
    async fn view(store: &Store) -> String {
        let outbound = store.outbound_all().await.unwrap();
        let mut inbound = Vec::new();
        for sender in ["JP", "TH"] {
            inbound.push(store.inbound_all(sender).await.unwrap());
        }
        format!(
            "{outbound:?}\n{inbound:?}\n{:?}\n{:?}\n{}\n{:?}\n{:?}",
            store.accounts().await.unwrap(),
            store.unresolved_outbound().await.unwrap(),
            store.unresolved_count().await,
            store.outbound(&Uetr([2; 16])).await.unwrap(),
            store.inbound("TH", &Uetr([5; 16])).await.unwrap(),
        )
    }

    /// The simulator's store keeps the ledger store's keys, index and answers: the same puts
    /// read back the same through every accessor.
    #[tokio::test]
    async fn a_memory_store_answers_as_the_ledger_store_does() {
        let dir = tempfile::tempdir().unwrap();
        let stores = [
            ledger_store(dir.path()),
            Store::in_memory(MemoryPayments::new()),
        ];
        let batches = || {
            vec![
                vec![
                    Write::Outbound(Uetr([1; 16]), record(OutboundState::Forwarded)),
                    Write::Outbound(Uetr([2; 16]), record(OutboundState::Reserving)),
                    Write::Inbound(Uetr([5; 16]), inbound("TH", InboundState::Fenced)),
                    Write::Account(1001, meta("Alpha")),
                ],
                vec![
                    Write::Outbound(Uetr([1; 16]), record(OutboundState::Settled)),
                    Write::Inbound(Uetr([5; 16]), inbound("JP", InboundState::Settled)),
                    Write::Inbound(Uetr([6; 16]), inbound("JP", InboundState::Rejected)),
                    Write::Account(1000, meta("Zero")),
                ],
            ]
        };
        let mut views = Vec::new();
        for store in &stores {
            for batch in batches() {
                store.put(batch).await.unwrap();
            }
            views.push(view(store).await);
        }
        assert_eq!(views[0], views[1]);
        assert!(views[0].contains("Settled") && views[0].contains("Fenced"));
    }

    /// A put dropped at its sync point (the simulator crashing the node there) leaves nothing;
    /// an injected failure applies nothing and is transient.
    #[tokio::test]
    async fn a_memory_put_applies_whole_at_its_sync_point_or_not_at_all() {
        let payments = MemoryPayments::new();
        let store = Store::in_memory(payments.clone());
        let batch = || {
            vec![
                Write::Outbound(Uetr([1; 16]), record(OutboundState::Forwarded)),
                Write::Account(1001, meta("Alpha")),
            ]
        };
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut put = Box::pin(store.put(batch()));
        assert!(put.as_mut().poll(&mut cx).is_pending());
        drop(put);
        assert!(
            payments.lock().entries.is_empty(),
            "a crash at the sync point"
        );
        payments.lock().failures_due = 1;
        let failed = store.put(batch()).await.expect_err("injected");
        assert!(failed.is_transient());
        assert!(payments.lock().entries.is_empty());
        store.put(batch()).await.unwrap();
        assert_eq!(store.unresolved_count().await, 1);
        assert_eq!(store.account(1001).await.unwrap(), Some(meta("Alpha")));
    }

    #[tokio::test]
    async fn a_put_is_readable_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let uetr = Uetr([7; 16]);
        {
            let store = ledger_store(dir.path());
            store
                .put(vec![
                    Write::Outbound(uetr, record(OutboundState::Forwarded)),
                    Write::Account(
                        1001,
                        AccountMeta {
                            kind: AccountKind::Customer,
                            owner_bic: Some("KKHAJPJ0".into()),
                            name: "Alpha".into(),
                            closed: false,
                        },
                    ),
                ])
                .await
                .unwrap();
        }
        // Offline, as the tools read it, then reopened by a node.
        for offline in [true, false] {
            // One at a time: each holds the ledger's file lock.
            let store = if offline {
                Store::open_read_only(dir.path()).unwrap()
            } else {
                ledger_store(dir.path())
            };
            assert_eq!(
                store.outbound(&uetr).await.unwrap(),
                Some(record(OutboundState::Forwarded))
            );
            assert_eq!(store.accounts().await.unwrap().len(), 1);
            assert_eq!(store.unresolved_outbound().await.unwrap().len(), 1);
            let written = store.put(vec![Write::Account(1002, meta("Beta"))]).await;
            assert_eq!(written.is_err(), offline, "{written:?}");
        }
    }

    /// A put the ledger refuses (a record beyond its size bound) is an error, never a
    /// decision, and writes nothing of its batch; the store goes on serving.
    #[tokio::test]
    async fn a_refused_put_writes_nothing_of_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = ledger_store(dir.path());
        let mut huge = record(OutboundState::Forwarded);
        huge.signed_instruction = vec![7; kakehashi_ledger::RECORD_VALUE_LEN_MAX];
        let failed = store
            .put(vec![
                Write::Account(1001, meta("Alpha")),
                Write::Outbound(Uetr([1; 16]), huge),
            ])
            .await
            .expect_err("refused");
        assert!(matches!(failed, StoreError::Ledger { .. }), "{failed:?}");
        assert_eq!(store.account(1001).await.unwrap(), None);
        assert_eq!(store.unresolved_count().await, 0);
        store
            .put(vec![Write::Account(1001, meta("Alpha"))])
            .await
            .unwrap();
        assert_eq!(store.account(1001).await.unwrap(), Some(meta("Alpha")));
    }

    /// A data directory written before the records moved into the ledger: the offline tools
    /// refuse it with the fix, a start copies its records into the ledger and moves it aside,
    /// and a second start does nothing.
    #[tokio::test]
    async fn an_old_payment_store_is_moved_into_the_ledger_once() {
        let dir = tempfile::tempdir().unwrap();
        let uetr = Uetr([3; 16]);
        let mut entries = Vec::new();
        for write in [
            Write::Outbound(uetr, record(OutboundState::Reserving)),
            Write::Inbound(Uetr([5; 16]), inbound("JP", InboundState::Settled)),
            Write::Account(1001, meta("Alpha")),
        ] {
            legacy_json(&write, &mut entries);
        }
        {
            // As a node before issue 14 left it.
            let (db, tree) = open_legacy(&dir.path().join(LEGACY_DIR)).unwrap();
            for entry in &entries {
                if let RecordWrite::Put { key, value } = entry {
                    tree.insert(key.as_slice(), value.as_slice()).unwrap();
                }
            }
            db.flush().unwrap();
        }
        drop(open_ledger(dir.path()));
        let refused = Store::open_read_only(dir.path()).expect_err("not upgraded");
        assert!(
            matches!(refused, StoreError::NotUpgraded { .. }),
            "{refused:?}"
        );
        assert!(
            refused.to_string().contains("start the node once"),
            "{refused}"
        );

        let ledger = Arc::new(open_ledger(dir.path()));
        assert_eq!(migrate_legacy(dir.path(), &ledger).unwrap(), Some(4));
        assert!(!dir.path().join(LEGACY_DIR).exists());
        assert!(dir.path().join(LEGACY_MOVED_DIR).join("db").is_file());
        assert_eq!(migrate_legacy(dir.path(), &ledger).unwrap(), None);
        let store = Store::over_ledger(Arc::clone(&ledger));
        assert_eq!(
            store.outbound(&uetr).await.unwrap().map(|r| r.state),
            Some(OutboundState::Reserving)
        );
        assert_eq!(store.unresolved_outbound().await.unwrap().len(), 1);
        assert_eq!(store.account(1001).await.unwrap(), Some(meta("Alpha")));
        assert_eq!(
            store
                .inbound("JP", &Uetr([5; 16]))
                .await
                .unwrap()
                .map(|r| r.state),
            Some(InboundState::Settled)
        );
    }

    #[test]
    fn byte_fields_are_stored_as_base64_text() {
        let mut r = record(OutboundState::Settled);
        r.receipt = Some(vec![0xff; 30]);
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"signed_instruction\":\"AQID\""), "{json}");
        assert!(json.contains("\"receipt\":\"////"), "{json}");
        assert_eq!(serde_json::from_str::<OutboundRecord>(&json).unwrap(), r);
    }

    #[tokio::test]
    async fn final_records_are_not_unresolved() {
        let dir = tempfile::tempdir().unwrap();
        let store = ledger_store(dir.path());
        store
            .put(vec![
                Write::Outbound(Uetr([1; 16]), record(OutboundState::Settled)),
                Write::Outbound(Uetr([2; 16]), record(OutboundState::Rejected)),
                Write::Outbound(Uetr([3; 16]), record(OutboundState::Reserving)),
            ])
            .await
            .unwrap();
        let unresolved = store.unresolved_outbound().await.unwrap();
        assert_eq!(unresolved.len(), 1);
        assert_eq!(unresolved[0].0, Uetr([3; 16]));
        // Resolving it removes it from the index in the same batch.
        store
            .put(vec![Write::Outbound(
                Uetr([3; 16]),
                record(OutboundState::Settled),
            )])
            .await
            .unwrap();
        assert_eq!(store.unresolved_count().await, 0);
        assert!(store.unresolved_outbound().await.unwrap().is_empty());
    }

    fn inbound(sender: &str, state: InboundState) -> InboundRecord {
        InboundRecord {
            state,
            instruction_sha256: "cd".into(),
            sender: sender.into(),
            reason_code: None,
            reason_detail: None,
            receipt: None,
            creditor_account: 2001,
            credited_minor: 0,
            credit_transfer_id: 0,
            signed_instruction: Vec::new(),
            updated_at: 1,
        }
    }

    /// One UETR from two senders is two records: a peer can neither overwrite nor read the
    /// record another peer's payment holds under the same UETR.
    #[tokio::test]
    async fn inbound_records_are_kept_apart_by_sender() {
        let dir = tempfile::tempdir().unwrap();
        let store = ledger_store(dir.path());
        let uetr = Uetr([5; 16]);
        store
            .put(vec![
                Write::Inbound(uetr, inbound("JP", InboundState::Settled)),
                Write::Inbound(uetr, inbound("TH", InboundState::Fenced)),
                Write::Inbound(Uetr([6; 16]), inbound("JP", InboundState::Rejected)),
            ])
            .await
            .unwrap();
        assert_eq!(
            store.inbound("JP", &uetr).await.unwrap().map(|r| r.state),
            Some(InboundState::Settled)
        );
        assert_eq!(
            store.inbound("TH", &uetr).await.unwrap().map(|r| r.state),
            Some(InboundState::Fenced)
        );
        assert_eq!(store.inbound("SG", &uetr).await.unwrap(), None);
        let from_jp: Vec<_> = store
            .inbound_all("JP")
            .await
            .unwrap()
            .into_iter()
            .map(|(uetr, record)| (uetr, record.state))
            .collect();
        assert_eq!(
            from_jp,
            vec![
                (uetr, InboundState::Settled),
                (Uetr([6; 16]), InboundState::Rejected)
            ]
        );
        assert_eq!(
            store.inbound_all("T").await.unwrap().len(),
            0,
            "no prefix match"
        );
    }

    fn meta(name: &str) -> AccountMeta {
        AccountMeta {
            kind: AccountKind::Customer,
            owner_bic: Some("KKHAJPJ0".into()),
            name: name.into(),
            closed: false,
        }
    }

    #[tokio::test]
    async fn only_corrupt_records_are_not_transient() {
        let store = Store::in_memory(MemoryPayments::new());
        let corrupt = store
            .decode(b"a", b"not json", ACCOUNT)
            .await
            .expect_err("corrupt");
        assert!(!corrupt.is_transient());
        assert!(StoreError::WriterStopped.is_transient());
        assert!(StoreError::Commit("fdatasync: EIO".into()).is_transient());
        let sled_io = StoreError::Sled {
            what: "reading a record",
            source: sled::Error::Io(std::io::Error::other("EIO")),
        };
        assert!(sled_io.is_transient());
        let stopped = ledger_error("writing records")(kakehashi_ledger::Error::Stopped {
            reason: "fdatasync: EIO".into(),
        });
        assert!(matches!(stopped, StoreError::WriterStopped), "{stopped:?}");
        let refused = ledger_error("writing records")(kakehashi_ledger::Error::RecordsRefused {
            detail: "too large".into(),
        });
        assert!(!refused.is_transient());
    }

    /// `count` puts of a forwarded outbound record, each from its own task, all awaited.
    async fn put_forwarded_concurrently(store: &Store, count: u8) {
        let tasks: Vec<_> = (0..count)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .put(vec![Write::Outbound(
                            Uetr([i; 16]),
                            record(OutboundState::Forwarded),
                        )])
                        .await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
    }

    #[tokio::test]
    async fn concurrent_puts_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let store = ledger_store(dir.path());
        put_forwarded_concurrently(&store, 64).await;
        assert_eq!(store.unresolved_outbound().await.unwrap().len(), 64);
    }

    /// `write` as a node before issue 14's compact records stored it: JSON, byte fields in
    /// base64, and the unresolved index beside outbound records.
    fn legacy_json(write: &Write, out: &mut Vec<RecordWrite>) {
        let (k, value) = match write {
            Write::Outbound(uetr, record) => {
                if !record.state.is_final() {
                    out.push(RecordWrite::Put {
                        key: key(PREFIX_UNRESOLVED, &uetr.0),
                        value: Vec::new(),
                    });
                }
                (
                    key(PREFIX_OUTBOUND, &uetr.0),
                    serde_json::to_vec(record).unwrap(),
                )
            }
            Write::Inbound(uetr, record) => (
                inbound_key(&record.sender, uetr),
                serde_json::to_vec(record).unwrap(),
            ),
            Write::Account(id, meta) => (
                key(PREFIX_ACCOUNT, &id.to_be_bytes()),
                serde_json::to_vec(meta).unwrap(),
            ),
        };
        out.push(RecordWrite::Put { key: k, value });
    }

    /// A certificate chain as the tests' envelopes carry it: `n` distinct "certificates" (the
    /// store never parses them).
    fn chain(tag: u8, n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| vec![tag.wrapping_add(u8::try_from(i).unwrap()); 500 + i])
            .collect()
    }

    /// A canonical signed instruction with a signed quote inside, as a bank submits it.
    fn signed_instruction(remittance: &str) -> Vec<u8> {
        let quote = pb::Signed {
            payload: vec![9; 95],
            signature: vec![8; 64],
            signer_chain: chain(0x40, 2),
        };
        let instruction = pb::CreditTransferInstruction {
            uetr: "8c1f0a9e-0000-4000-8000-000000000001".into(),
            end_to_end_id: "E2E".into(),
            debtor_agent_bic: "KKHAJPJ0".into(),
            remittance_information: remittance.into(),
            quote: Some(quote),
            ..Default::default()
        };
        pb::Signed {
            payload: instruction.encode_to_vec(),
            signature: vec![7; 64],
            signer_chain: chain(0x10, 2),
        }
        .encode_to_vec()
    }

    /// A canonical signed receipt.
    fn signed_receipt() -> Vec<u8> {
        pb::Signed {
            payload: vec![6; 200],
            signature: vec![5; 64],
            signer_chain: chain(0x70, 2),
        }
        .encode_to_vec()
    }

    fn settled(instruction: Vec<u8>) -> OutboundRecord {
        OutboundRecord {
            signed_instruction: instruction,
            receipt: Some(signed_receipt()),
            credited_minor: Some(u128::MAX),
            reason_detail: Some("settled".into()),
            decided_by: Some("SG".into()),
            reservation_id: u128::MAX - 5,
            ..record(OutboundState::Settled)
        }
    }

    /// The raw entries under `prefix`.
    fn raw(store: &Store, prefix: u8) -> Vec<Record> {
        read_now(store.page(&[prefix], None, "test")).unwrap()
    }

    /// `uetr`'s outbound record as a fresh store over the same ledger reads it (no certificate
    /// in memory).
    async fn read_fresh(store: &Store, uetr: Uetr) -> OutboundRecord {
        let Backend::Ledger(ledger) = &store.backend else {
            panic!("a ledger store");
        };
        Store::over_ledger(Arc::clone(ledger))
            .outbound(&uetr)
            .await
            .unwrap()
            .unwrap()
    }

    /// Records are written compact, their chains once each in the certificate table, and read
    /// back exactly, by the node, offline and after reopening; a second record with the same
    /// chains writes no certificate again.
    #[tokio::test]
    async fn compact_records_round_trip_and_store_each_certificate_once() {
        let dir = tempfile::tempdir().unwrap();
        let first = settled(signed_instruction("first"));
        let second = settled(signed_instruction("second"));
        let received = InboundRecord {
            receipt: Some(signed_receipt()),
            signed_instruction: signed_instruction("first"),
            credit_transfer_id: 1 << 100,
            ..inbound("JP", InboundState::Settled)
        };
        {
            let store = ledger_store(dir.path());
            let encoded = store
                .encoder
                .encode(&[Write::Outbound(Uetr([1; 16]), first.clone())]);
            assert_eq!(
                encoded.certificates.0.len(),
                6,
                "three chains of two: the bank's, the quote's, the receipt's"
            );
            store
                .put(vec![Write::Outbound(Uetr([1; 16]), first.clone())])
                .await
                .unwrap();
            let again = store
                .encoder
                .encode(&[Write::Outbound(Uetr([2; 16]), second.clone())]);
            assert!(again.certificates.0.is_empty(), "all known durable");
            store
                .put(vec![
                    Write::Outbound(Uetr([2; 16]), second.clone()),
                    Write::Inbound(Uetr([3; 16]), received.clone()),
                    Write::Account(1001, meta("Alpha")),
                ])
                .await
                .unwrap();
            assert_eq!(raw(&store, PREFIX_CERTIFICATE).len(), 6);
            let (_, value) = &raw(&store, PREFIX_OUTBOUND)[0];
            assert_eq!(value[0], compact::FORMAT_COMPACT);
            let json = serde_json::to_vec(&first).unwrap().len();
            assert!(value.len() * 3 < json, "{} of {json} bytes", value.len());
            assert_eq!(raw(&store, PREFIX_ACCOUNT)[0].1[0], compact::FORMAT_COMPACT);
            assert_eq!(read_fresh(&store, Uetr([2; 16])).await, second);
        }
        for offline in [true, false] {
            // A new store: nothing in memory, every certificate read from the table.
            let store = if offline {
                Store::open_read_only(dir.path()).unwrap()
            } else {
                ledger_store(dir.path())
            };
            assert_eq!(
                store.outbound(&Uetr([1; 16])).await.unwrap(),
                Some(first.clone())
            );
            let scanned = store.outbound_all().await.unwrap();
            assert_eq!(
                scanned,
                vec![
                    (Uetr([1; 16]), first.clone()),
                    (Uetr([2; 16]), second.clone())
                ]
            );
            assert_eq!(
                store.inbound("JP", &Uetr([3; 16])).await.unwrap(),
                Some(received.clone())
            );
            assert_eq!(store.account(1001).await.unwrap(), Some(meta("Alpha")));
        }
    }

    /// Records an earlier build wrote as JSON read as they did, beside compact ones, in the
    /// ledger, offline and in memory.
    #[tokio::test]
    async fn legacy_json_records_stay_readable() {
        let dir = tempfile::tempdir().unwrap();
        let old = settled(signed_instruction("old"));
        let mut entries = Vec::new();
        for write in [
            Write::Outbound(Uetr([1; 16]), old.clone()),
            Write::Outbound(Uetr([2; 16]), record(OutboundState::Forwarded)),
            Write::Inbound(Uetr([5; 16]), inbound("JP", InboundState::Fenced)),
            Write::Account(1001, meta("Alpha")),
        ] {
            legacy_json(&write, &mut entries);
        }
        assert!(entries.iter().all(|write| match write {
            RecordWrite::Put { value, .. } => value.is_empty() || value[0] == b'{',
            RecordWrite::Delete { .. } => false,
        }));
        {
            let ledger = open_ledger(dir.path());
            ledger.write_records(entries.clone()).unwrap();
            let store = Store::over_ledger(Arc::new(ledger));
            // A new write beside them, compact.
            store
                .put(vec![Write::Outbound(Uetr([3; 16]), old.clone())])
                .await
                .unwrap();
        }
        let memory = MemoryPayments::new();
        memory.apply_records(Encoded {
            writes: entries,
            certificates: Written::default(),
        });
        for store in [
            Store::open_read_only(dir.path()).unwrap(),
            Store::in_memory(memory),
        ] {
            assert_eq!(
                store.outbound(&Uetr([1; 16])).await.unwrap(),
                Some(old.clone())
            );
            assert_eq!(
                store.unresolved_outbound().await.unwrap(),
                vec![(Uetr([2; 16]), record(OutboundState::Forwarded))]
            );
            assert_eq!(
                store.inbound("JP", &Uetr([5; 16])).await.unwrap(),
                Some(inbound("JP", InboundState::Fenced))
            );
            assert_eq!(store.accounts().await.unwrap(), vec![(1001, meta("Alpha"))]);
        }
        let store = ledger_store(dir.path());
        assert_eq!(store.outbound(&Uetr([3; 16])).await.unwrap(), Some(old));
    }

    /// Envelopes a re-encoding would not reproduce (a foreign client's field order, a field this
    /// build does not know, bytes that are not an envelope) are stored verbatim and returned
    /// exactly; an instruction whose payload alone is non-canonical keeps its quote inside.
    #[tokio::test]
    async fn envelopes_that_do_not_re_encode_exactly_are_stored_verbatim() {
        let canonical = signed_instruction("x");
        let signed = pb::Signed::decode(canonical.as_slice()).unwrap();
        // The signature (field 2) before the payload (field 1): valid protobuf, not canonical.
        let mut reordered = Vec::new();
        prost::encoding::bytes::encode(2, &signed.signature, &mut reordered);
        prost::encoding::bytes::encode(1, &signed.payload, &mut reordered);
        for der in &signed.signer_chain {
            prost::encoding::bytes::encode(3, der, &mut reordered);
        }
        assert_eq!(pb::Signed::decode(reordered.as_slice()).unwrap(), signed);
        assert_ne!(reordered, canonical);
        // An unknown field (99) after the envelope's fields.
        let mut unknown = canonical.clone();
        prost::encoding::string::encode(99, &"future".to_owned(), &mut unknown);
        // A canonical envelope around a payload with an unknown field.
        let mut payload = signed.payload.clone();
        prost::encoding::string::encode(99, &"future".to_owned(), &mut payload);
        let odd_payload = pb::Signed {
            payload,
            ..signed.clone()
        }
        .encode_to_vec();

        let dir = tempfile::tempdir().unwrap();
        let store = ledger_store(dir.path());
        let cases = [
            reordered,
            unknown,
            odd_payload,
            b"not protobuf \xff".to_vec(),
        ];
        for (i, bytes) in cases.iter().enumerate() {
            let uetr = Uetr([u8::try_from(i).unwrap() + 1; 16]);
            let mut sent = settled(bytes.clone());
            sent.receipt = Some(bytes.clone());
            store
                .put(vec![Write::Outbound(uetr, sent.clone())])
                .await
                .unwrap();
            let read = read_fresh(&store, uetr).await;
            assert_eq!(read.signed_instruction, *bytes, "case {i}");
            assert_eq!(read.receipt.as_deref(), Some(bytes.as_slice()), "case {i}");
        }
        // Only the third kept certificates in the table: its envelope's chain (the quote
        // stayed inside the payload, whole).
        assert_eq!(raw(&store, PREFIX_CERTIFICATE).len(), 2);
    }

    /// A record whose certificate is missing from the table, or altered there, is `Corrupt`
    /// naming the record, never a panic and never a transient failure.
    #[tokio::test]
    async fn a_missing_or_altered_certificate_is_a_corrupt_record() {
        let dir = tempfile::tempdir().unwrap();
        let uetr = Uetr([1; 16]);
        let ledger = Arc::new(open_ledger(dir.path()));
        let store = Store::over_ledger(Arc::clone(&ledger));
        store
            .put(vec![Write::Outbound(
                uetr,
                settled(signed_instruction("x")),
            )])
            .await
            .unwrap();
        let (first, _) = raw(&store, PREFIX_CERTIFICATE).remove(0);
        for altered in [false, true] {
            let write = if altered {
                RecordWrite::Put {
                    key: first.clone(),
                    value: vec![0; 10],
                }
            } else {
                RecordWrite::Delete { key: first.clone() }
            };
            ledger.write_records(vec![write]).unwrap();
            let fresh = Store::over_ledger(Arc::clone(&ledger));
            let error = fresh.outbound(&uetr).await.expect_err("corrupt");
            let record_key = hex::encode(key(PREFIX_OUTBOUND, &uetr.0));
            assert!(
                matches!(&error, StoreError::Corrupt { key, .. } if *key == record_key),
                "{error:?}"
            );
            assert!(!error.is_transient());
            let text = format!("{error}");
            let expected = if altered {
                "does not match its digest"
            } else {
                "is missing"
            };
            assert!(text.contains(expected), "{text}");
            assert!(text.contains(&record_key), "{text}");
            assert!(fresh.outbound_all().await.is_err());
        }
    }

    /// A batch the ledger refuses teaches the encoder nothing: the certificates it would have
    /// written are written with the next record that refers to them (a record never relies on
    /// a certificate that is not durable).
    #[tokio::test]
    async fn certificates_of_a_refused_batch_are_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = ledger_store(dir.path());
        let mut huge = settled(signed_instruction("x"));
        huge.reason_detail = Some("x".repeat(kakehashi_ledger::RECORD_VALUE_LEN_MAX));
        store
            .put(vec![Write::Outbound(Uetr([1; 16]), huge)])
            .await
            .expect_err("refused");
        assert!(raw(&store, PREFIX_CERTIFICATE).is_empty());
        let next = || Write::Outbound(Uetr([2; 16]), settled(signed_instruction("y")));
        assert_eq!(store.encoder.encode(&[next()]).certificates.0.len(), 6);
        store.put(vec![next()]).await.unwrap();
        assert_eq!(raw(&store, PREFIX_CERTIFICATE).len(), 6);
        assert_eq!(
            read_fresh(&store, Uetr([2; 16])).await,
            settled(signed_instruction("y"))
        );
    }

    /// The devnet's real envelopes (a bank's instruction with the node's quote inside, the
    /// receiver's receipt) are canonical: both nodes store their records compact, about a sixth
    /// of the JSON, and give back exactly what was submitted and signed.
    #[tokio::test]
    async fn devnet_payment_records_are_stored_compact() {
        let pair = crate::testing::pair().await;
        let (jp, sg) = (pair.jp.engine(), pair.sg.engine());
        let uetr = crate::testing::new_uetr();
        let signed = crate::testing::jp_to_sg(jp, uetr);
        jp.submit(signed.clone()).await.unwrap();
        let sent = jp.store().outbound(&uetr).await.unwrap().unwrap();
        assert_eq!(sent.state, OutboundState::Settled);
        assert_eq!(sent.signed_instruction, signed.encode_to_vec());
        let received = sg.store().inbound("JP", &uetr).await.unwrap().unwrap();
        assert_eq!(received.receipt, sent.receipt);
        let outbound_key = key(PREFIX_OUTBOUND, &uetr.0);
        let inbound_key = inbound_key("JP", &uetr);
        for (store, k, json) in [
            (jp.store(), outbound_key, serde_json::to_vec(&sent).unwrap()),
            (
                sg.store(),
                inbound_key,
                serde_json::to_vec(&received).unwrap(),
            ),
        ] {
            let value = store.value(&k).await.unwrap().unwrap();
            assert_eq!(value[0], compact::FORMAT_COMPACT);
            assert!(
                value.len() * 4 < json.len(),
                "{} of {}",
                value.len(),
                json.len()
            );
        }
        // Each distinct certificate of the bank's chain, the quote's and the receipt's, once.
        let quote = pb::CreditTransferInstruction::decode(signed.payload.as_slice())
            .unwrap()
            .quote
            .unwrap();
        let receipt = pb::Signed::decode(sent.receipt.as_deref().unwrap()).unwrap();
        let distinct: std::collections::BTreeSet<_> = [signed, quote, receipt]
            .into_iter()
            .flat_map(|s| s.signer_chain)
            .collect();
        let tabled: std::collections::BTreeSet<_> = raw(jp.store(), PREFIX_CERTIFICATE)
            .into_iter()
            .map(|(_, der)| der)
            .collect();
        assert_eq!(tabled, distinct);
    }

    /// A value of no known format, an empty one, a compact record with an unknown state or an
    /// integer beyond 128 bits: each is `Corrupt`, never a panic.
    #[tokio::test]
    async fn values_of_no_known_shape_are_corrupt() {
        let store = Store::in_memory(MemoryPayments::new());
        let written = store.encoder.encode(&[Write::Outbound(
            Uetr([1; 16]),
            record(OutboundState::Settled),
        )]);
        let RecordWrite::Put { value: good, .. } = &written.writes[0] else {
            panic!("a put");
        };
        assert_eq!(
            store.decode(b"o", good, OUTBOUND).await.unwrap(),
            record(OutboundState::Settled)
        );
        let mut unknown_state = good.clone();
        // Field 1 (state), varint: the record's first field after the format byte.
        assert_eq!(&unknown_state[1..3], &[0x08, 3]);
        unknown_state[2] = 9;
        // The debtor account (field 6) again, 17 bytes long: the last occurrence wins.
        let mut long_integer = good.clone();
        prost::encoding::bytes::encode(6, &vec![1u8; 17], &mut long_integer);
        for (value, why) in [
            (Vec::new(), "empty value"),
            (b"\x02abc".to_vec(), "unknown record format 0x02"),
            (b"[1]".to_vec(), "unknown record format 0x5b"),
            (unknown_state, "unknown outbound state"),
            (long_integer, "longer than 16 bytes"),
            (vec![compact::FORMAT_COMPACT, 0xff], "compact record"),
        ] {
            let error = store.decode(b"o", &value, OUTBOUND).await.expect_err(why);
            assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
            assert!(error.to_string().contains(why), "{error} lacks {why}");
        }
    }
}
