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
//! Records are JSON (serde): small, few per payment, and readable when an operator has to
//! look.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kakehashi_ledger::{Ledger, LedgerRecords, RECORDS_PAGE_MAX, Record, RecordWrite};
use kakehashi_protocol::instruction::Uetr;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The kind of an account ([`AccountMeta::kind`]).
pub use crate::account::AccountKind;

const PREFIX_OUTBOUND: u8 = b'o';
const PREFIX_INBOUND: u8 = b'i';
const PREFIX_ACCOUNT: u8 = b'a';
/// UETRs of outbound payments without a final outcome: the recovery loop's work list, kept in
/// the same batch as the record so it never disagrees with it, and small whatever the history.
const PREFIX_UNRESOLVED: u8 = b'u';

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
    /// A stored record does not decode: the database was altered or written by another version.
    #[error("payment store: record {key} does not decode: {source}")]
    Corrupt {
        /// The record's key, hex.
        key: String,
        /// The decoding error.
        #[source]
        source: serde_json::Error,
    },
    /// The group commit that carried this write failed (the writer logged the cause).
    #[error("payment store: group commit failed: {0}")]
    Commit(String),
    /// The writer is gone: the node is shutting down, or an earlier group commit failed and
    /// the ledger's writer stopped (fail-stop, see [`Store`]), or the store was opened for
    /// reading only; a restart reopens the store.
    #[error("payment store: the writer has stopped")]
    WriterStopped,
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
pub struct MemoryPayments(Arc<Mutex<MemoryState>>);

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

    async fn put(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let encoded = encode_writes(&writes)?;
        YieldOnce::default().await;
        let mut state = self.lock();
        if state.failures_due > 0 {
            state.failures_due -= 1;
            state.failures_served += 1;
            return Err(StoreError::Commit(
                "a transient failure the simulator injected; nothing was applied".to_owned(),
            ));
        }
        apply_encoded(&mut state, encoded);
        Ok(())
    }

    /// Applies encoded records at once (no yield, no injected failure): the simulator's books
    /// call it in the same step as the transfers the records go with (see
    /// [`encode_writes`]), as the ledger's group commit makes both durable together.
    pub fn apply_records(&self, records: Vec<RecordWrite>) {
        apply_encoded(&mut self.lock(), records);
    }

    /// The entries under `prefix`, in key order.
    fn scan(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.lock()
            .entries
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
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
            #[cfg(test)]
            faults: Arc::default(),
        }
    }

    /// A store whose records are `payments`, in memory: the simulator's (see
    /// [`MemoryPayments`]).
    pub fn in_memory(payments: MemoryPayments) -> Self {
        Self {
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
            #[cfg(test)]
            faults: Arc::default(),
        })
    }

    /// Applies `writes` atomically and durably, returning once they are on disk (in the
    /// ledger's next group commit).
    pub async fn put(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let ledger = match &self.backend {
            Backend::Ledger(ledger) => ledger,
            Backend::Offline(_) => return Err(StoreError::WriterStopped),
            Backend::Memory(payments) => return payments.put(writes).await,
        };
        let encoded = encode_writes(&writes)?;
        // Awaited: the ledger's commit thread completes the call once the group is durable,
        // and no thread waits meanwhile. Dropped, the call is applied all the same.
        ledger
            .write_records_async(encoded)
            .await
            .map_err(ledger_error("writing records"))
    }

    /// The outbound record of `uetr`.
    pub fn outbound(&self, uetr: &Uetr) -> Result<Option<OutboundRecord>, StoreError> {
        self.get(&key(PREFIX_OUTBOUND, &uetr.0))
    }

    /// The inbound record of `uetr` from the jurisdiction `sender`. Another jurisdiction's
    /// record of the same UETR is another key: a peer can neither see nor block it.
    pub fn inbound(&self, sender: &str, uetr: &Uetr) -> Result<Option<InboundRecord>, StoreError> {
        self.get(&inbound_key(sender, uetr))
    }

    /// The metadata of `account`.
    pub fn account(&self, account: u128) -> Result<Option<AccountMeta>, StoreError> {
        self.get(&key(PREFIX_ACCOUNT, &account.to_be_bytes()))
    }

    /// Every account the node knows, in id order.
    pub fn accounts(&self) -> Result<Vec<(u128, AccountMeta)>, StoreError> {
        let mut out = Vec::new();
        for item in self.entries(vec![PREFIX_ACCOUNT], "scanning accounts") {
            let (k, v) = item?;
            let id_bytes: [u8; 16] = k
                .get(1..)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| corrupt_key(&k))?;
            out.push((u128::from_be_bytes(id_bytes), decode(&k, &v)?));
        }
        Ok(out)
    }

    /// Every outbound payment that has no final outcome yet (for recovery). Reads the
    /// unresolved index, so its cost follows the payments in doubt, not the history.
    pub fn unresolved_outbound(&self) -> Result<Vec<(Uetr, OutboundRecord)>, StoreError> {
        let mut out = Vec::new();
        // The index first, then each record: a record may have moved on meanwhile, which the
        // state filter below allows for.
        let index: Vec<_> = self
            .entries(vec![PREFIX_UNRESOLVED], "scanning unresolved payments")
            .collect::<Result<_, _>>()?;
        for (k, _) in index {
            let id: [u8; 16] = k
                .get(1..)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| corrupt_key(&k))?;
            let uetr = Uetr(id);
            if let Some(record) = self.outbound(&uetr)?
                && !record.state.is_final()
            {
                out.push((uetr, record));
            }
        }
        Ok(out)
    }

    /// How many outbound payments have no final outcome (durably; an entry that cannot be
    /// read counts, as an entry of the index).
    pub fn unresolved_count(&self) -> usize {
        self.entries(vec![PREFIX_UNRESOLVED], "counting unresolved payments")
            .count()
    }

    fn get<T: DeserializeOwned>(&self, k: &[u8]) -> Result<Option<T>, StoreError> {
        #[cfg(test)]
        self.faults.read(k)?;
        let value = match &self.backend {
            Backend::Ledger(ledger) => {
                ledger.record(k).map_err(ledger_error("reading a record"))?
            }
            Backend::Offline(records) => records
                .record(k)
                .map_err(ledger_error("reading a record"))?,
            Backend::Memory(payments) => payments.lock().entries.get(k).cloned(),
        };
        value.map(|v| decode(k, &v)).transpose()
    }

    /// The durable entries under `prefix`, in key order, lazily: the ledger's a page at a time
    /// (each page one consistent, durable view; records are replaced, never removed, except the
    /// unresolved index, whose readers allow for entries that moved on).
    fn entries(
        &self,
        prefix: Vec<u8>,
        what: &'static str,
    ) -> Box<dyn Iterator<Item = Result<Record, StoreError>> + '_> {
        #[cfg(test)]
        if let Err(error) = self.faults.read(&prefix) {
            return Box::new(std::iter::once(Err(error)));
        }
        match &self.backend {
            Backend::Memory(payments) => Box::new(payments.scan(&prefix).into_iter().map(Ok)),
            Backend::Offline(records) => Box::new(
                records
                    .records(&prefix)
                    .map(move |item| item.map_err(ledger_error(what))),
            ),
            Backend::Ledger(ledger) => Box::new(Pages {
                ledger,
                prefix,
                after: None,
                page: Vec::new().into_iter(),
                done: false,
                what,
            }),
        }
    }

    /// Every outbound record, in UETR order.
    pub fn outbound_records(
        &self,
    ) -> Box<dyn Iterator<Item = Result<(Uetr, OutboundRecord), StoreError>> + '_> {
        self.records(vec![PREFIX_OUTBOUND], "scanning outbound payments")
    }

    /// Every inbound record (decisions and fences) from the jurisdiction `sender`, in UETR
    /// order.
    pub fn inbound_records(
        &self,
        sender: &str,
    ) -> Box<dyn Iterator<Item = Result<(Uetr, InboundRecord), StoreError>> + '_> {
        self.records(inbound_prefix(sender), "scanning inbound payments")
    }

    /// The records under `prefix`, keyed by the UETR that ends their key, lazily (the history
    /// may be long).
    fn records<T: DeserializeOwned>(
        &self,
        prefix: Vec<u8>,
        what: &'static str,
    ) -> Box<dyn Iterator<Item = Result<(Uetr, T), StoreError>> + '_> {
        let len = prefix.len();
        Box::new(self.entries(prefix, what).map(move |item| {
            let (k, v) = item?;
            let id: [u8; 16] = k
                .get(len..)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| corrupt_key(&k))?;
            Ok((Uetr(id), decode(&k, &v)?))
        }))
    }
}

/// A scan of the ledger's records, a page at a time.
struct Pages<'a> {
    ledger: &'a Ledger,
    prefix: Vec<u8>,
    /// The last key returned.
    after: Option<Vec<u8>>,
    page: std::vec::IntoIter<Record>,
    done: bool,
    what: &'static str,
}

impl Iterator for Pages<'_> {
    type Item = Result<Record, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(entry) = self.page.next() {
            self.after = Some(entry.0.clone());
            return Some(Ok(entry));
        }
        if self.done {
            return None;
        }
        let page = match self
            .ledger
            .records(&self.prefix, self.after.as_deref(), RECORDS_PAGE_MAX)
        {
            Ok(page) => page,
            Err(error) => {
                self.done = true;
                return Some(Err(ledger_error(self.what)(error)));
            }
        };
        self.done = page.len() < RECORDS_PAGE_MAX;
        self.page = page.into_iter();
        let entry = self.page.next()?;
        self.after = Some(entry.0.clone());
        Some(Ok(entry))
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

fn decode<T: DeserializeOwned>(k: &[u8], v: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(v).map_err(|source| StoreError::Corrupt {
        key: hex::encode(k),
        source,
    })
}

fn corrupt_key(k: &[u8]) -> StoreError {
    StoreError::Corrupt {
        key: hex::encode(k),
        source: serde_json::Error::io(std::io::Error::other("malformed key")),
    }
}

/// The records of `writes`, encoded as the ledger stores them: each record under its key, and
/// for outbound records the matching change to the unresolved index. The engine's books use it
/// to write a step's records in the commit of its transfers (see
/// [`crate::engine::Books::create_transfers_recorded`]).
pub fn encode_writes(writes: &[Write]) -> Result<Vec<RecordWrite>, StoreError> {
    let mut encoded = Vec::with_capacity(writes.len() + 1);
    for write in writes {
        encode_write(write, &mut encoded).map_err(|e| StoreError::Commit(e.to_string()))?;
    }
    Ok(encoded)
}

fn encode_write(write: &Write, out: &mut Vec<RecordWrite>) -> Result<(), serde_json::Error> {
    match write {
        Write::Outbound(uetr, record) => {
            out.push(RecordWrite::Put {
                key: key(PREFIX_OUTBOUND, &uetr.0),
                value: serde_json::to_vec(record)?,
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
            value: serde_json::to_vec(record)?,
        }),
        Write::Account(id, meta) => out.push(RecordWrite::Put {
            key: key(PREFIX_ACCOUNT, &id.to_be_bytes()),
            value: serde_json::to_vec(meta)?,
        }),
    }
    Ok(())
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
    fn view(store: &Store) -> String {
        let outbound: Vec<_> = store.outbound_records().map(Result::unwrap).collect();
        let inbound: Vec<_> = ["JP", "TH"]
            .iter()
            .map(|sender| {
                store
                    .inbound_records(sender)
                    .map(Result::unwrap)
                    .collect::<Vec<_>>()
            })
            .collect();
        format!(
            "{outbound:?}\n{inbound:?}\n{:?}\n{:?}\n{}\n{:?}\n{:?}",
            store.accounts().unwrap(),
            store.unresolved_outbound().unwrap(),
            store.unresolved_count(),
            store.outbound(&Uetr([2; 16])).unwrap(),
            store.inbound("TH", &Uetr([5; 16])).unwrap(),
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
            views.push(view(store));
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
        assert_eq!(store.unresolved_count(), 1);
        assert_eq!(store.account(1001).unwrap(), Some(meta("Alpha")));
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
                store.outbound(&uetr).unwrap(),
                Some(record(OutboundState::Forwarded))
            );
            assert_eq!(store.accounts().unwrap().len(), 1);
            assert_eq!(store.unresolved_outbound().unwrap().len(), 1);
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
        assert_eq!(store.account(1001).unwrap(), None);
        assert_eq!(store.unresolved_count(), 0);
        store
            .put(vec![Write::Account(1001, meta("Alpha"))])
            .await
            .unwrap();
        assert_eq!(store.account(1001).unwrap(), Some(meta("Alpha")));
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
            encode_write(&write, &mut entries).unwrap();
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
            store.outbound(&uetr).unwrap().map(|r| r.state),
            Some(OutboundState::Reserving)
        );
        assert_eq!(store.unresolved_outbound().unwrap().len(), 1);
        assert_eq!(store.account(1001).unwrap(), Some(meta("Alpha")));
        assert_eq!(
            store
                .inbound("JP", &Uetr([5; 16]))
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
        let unresolved = store.unresolved_outbound().unwrap();
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
        assert_eq!(store.unresolved_count(), 0);
        assert!(store.unresolved_outbound().unwrap().is_empty());
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
            store.inbound("JP", &uetr).unwrap().map(|r| r.state),
            Some(InboundState::Settled)
        );
        assert_eq!(
            store.inbound("TH", &uetr).unwrap().map(|r| r.state),
            Some(InboundState::Fenced)
        );
        assert_eq!(store.inbound("SG", &uetr).unwrap(), None);
        let from_jp: Vec<_> = store
            .inbound_records("JP")
            .map(|item| item.map(|(uetr, record)| (uetr, record.state)))
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            from_jp,
            vec![
                (uetr, InboundState::Settled),
                (Uetr([6; 16]), InboundState::Rejected)
            ]
        );
        assert_eq!(store.inbound_records("T").count(), 0, "no prefix match");
    }

    fn meta(name: &str) -> AccountMeta {
        AccountMeta {
            kind: AccountKind::Customer,
            owner_bic: Some("KKHAJPJ0".into()),
            name: name.into(),
            closed: false,
        }
    }

    #[test]
    fn only_corrupt_records_are_not_transient() {
        let corrupt = decode::<AccountMeta>(b"a", b"not json").expect_err("corrupt");
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
        assert_eq!(store.unresolved_outbound().unwrap().len(), 64);
    }
}
