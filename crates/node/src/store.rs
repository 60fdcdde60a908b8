//! The node's durable payment state, beside (not inside) its ledger: what it sent and how each
//! payment ended, what it decided for each payment it received, which UETRs it fenced, and the
//! metadata of its accounts (owner bank, name, kind, closed).
//!
//! One sled database (`<data_dir>/node`), one tree, keys prefixed by record kind. Outbound
//! records are keyed by UETR; inbound records by the sending jurisdiction and the UETR, so that
//! a corridor peer can only ever occupy, fence or read keys in its own namespace. Every write
//! goes through one writer thread that applies whatever is queued as one crash-atomic sled
//! batch, then `Db::flush` and an `fdatasync` of sled's log, and only then answers its callers
//! (group commit, as in the ledger: sled's own flush ends in `sync_file_range`, which survives a
//! killed process but not necessarily a power loss). A caller that got `Ok` from [`Store::put`]
//! therefore holds a durable record; the settlement protocol relies on that before it answers
//! anyone or moves money on the other side.
//!
//! Records are JSON (serde): small, few per payment, and readable with any sled tool when an
//! operator has to look.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::thread;

use kakehashi_protocol::instruction::Uetr;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

/// The kind of an account ([`AccountMeta::kind`]).
pub use crate::account::AccountKind;

/// Most writes one group commit applies; bounds the batch and the latency of its first caller.
const GROUP_WRITES_MAX: usize = 4096;

/// Bound of the writer's queue: callers wait (backpressure) rather than grow memory.
const QUEUE_LEN: usize = 8192;

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
    /// The writer thread is gone (the node is shutting down).
    #[error("payment store: the writer has stopped")]
    WriterStopped,
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
    /// has been sent. Recovery asks the receiver anyway (which fences), then voids.
    Reserving,
    /// The reservation is durable and Prepare may have reached the receiver: only the
    /// receiver's decision (answer or status query) may end it.
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
    /// Closed accounts neither send nor receive (AC04).
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

type Reply = oneshot::Sender<Result<(), String>>;

/// The payment store. Cheap to clone; reads go straight to sled, writes through the writer.
#[derive(Clone, Debug)]
pub struct Store {
    tree: sled::Tree,
    /// The writer's queue. An async-aware bounded channel: a caller waits for room without
    /// holding a runtime worker, so a write costs no hop to the blocking pool (the writer, a
    /// plain thread, takes from it with `blocking_recv`).
    writes: mpsc::Sender<(Vec<Write>, Reply)>,
}

/// Opens (creating if needed) the sled database in `dir` and its payments tree, with the same
/// settings for the node and the offline tools.
fn open_payments(dir: &Path) -> Result<(sled::Db, sled::Tree), StoreError> {
    let db = sled::Config::new()
        .path(dir)
        // Durability comes from the writer's explicit flush and fdatasync; sled's periodic
        // background flush would only add writes.
        .flush_every_ms(None)
        .open()
        .map_err(|source| StoreError::Sled {
            what: "opening the database",
            source,
        })?;
    let tree = db
        .open_tree("payments")
        .map_err(|source| StoreError::Sled {
            what: "opening the payments tree",
            source,
        })?;
    Ok((db, tree))
}

impl Store {
    /// Opens (creating if needed) the store in `dir` and starts its writer thread.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with_queue(dir, QUEUE_LEN)
    }

    /// [`Store::open`] with a writer queue of `queue_len` requests (at least one).
    fn open_with_queue(dir: &Path, queue_len: usize) -> Result<Self, StoreError> {
        let (db, tree) = open_payments(dir)?;
        let log_path = dir.join("db");
        let log = File::open(&log_path).map_err(|source| StoreError::Io {
            what: "opening sled's log for fdatasync",
            path: log_path.clone(),
            source,
        })?;
        let (writes, queue) = mpsc::channel(queue_len.max(1));
        let writer_tree = tree.clone();
        thread::Builder::new()
            .name("kakehashi-store-writer".into())
            .spawn(move || writer(db, writer_tree, log, queue))
            .map_err(|source| StoreError::Io {
                what: "starting the store writer thread",
                path: dir.to_owned(),
                source,
            })?;
        Ok(Self { tree, writes })
    }

    /// Applies `writes` atomically and durably, returning once they are on disk.
    pub async fn put(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        // When the queue is full this waits (backpressure) without blocking the runtime.
        self.writes
            .send((writes, reply))
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        match answer.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(StoreError::Commit(message)),
            Err(_) => Err(StoreError::WriterStopped),
        }
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
        for item in self.tree.scan_prefix([PREFIX_ACCOUNT]) {
            let (k, v) = item.map_err(|source| StoreError::Sled {
                what: "scanning accounts",
                source,
            })?;
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
        for item in self.tree.scan_prefix([PREFIX_UNRESOLVED]) {
            let (k, _) = item.map_err(|source| StoreError::Sled {
                what: "scanning unresolved payments",
                source,
            })?;
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

    /// How many outbound payments have no final outcome.
    pub fn unresolved_count(&self) -> usize {
        self.tree.scan_prefix([PREFIX_UNRESOLVED]).count()
    }

    fn get<T: DeserializeOwned>(&self, k: &[u8]) -> Result<Option<T>, StoreError> {
        let value = self.tree.get(k).map_err(|source| StoreError::Sled {
            what: "reading a record",
            source,
        })?;
        value.map(|v| decode(k, &v)).transpose()
    }

    /// Opens an existing store for reading only, for offline tools (the pair audit): refuses a
    /// directory without a store, starts no writer (every [`Store::put`] fails with
    /// [`StoreError::WriterStopped`]) and, like any sled open, fails while a node holds it. As on
    /// a node restart, sled may discard a torn, never-acknowledged tail of its log on open.
    pub fn open_read_only(dir: &Path) -> Result<Self, StoreError> {
        let log_path = dir.join("db");
        if !log_path.is_file() {
            return Err(StoreError::Io {
                what: "no payment store here (expected a sled directory with a `db` file)",
                path: dir.to_owned(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        let (_db, tree) = open_payments(dir)?;
        // No writer: the receiving end is dropped at once, so a `put` finds the queue closed.
        let (writes, _) = mpsc::channel(1);
        Ok(Self { tree, writes })
    }

    /// Every outbound record, in UETR order.
    pub fn outbound_records(
        &self,
    ) -> impl Iterator<Item = Result<(Uetr, OutboundRecord), StoreError>> + '_ {
        self.records(PREFIX_OUTBOUND, "scanning outbound payments")
    }

    /// Every inbound record (decisions and fences) from the jurisdiction `sender`, in UETR
    /// order.
    pub fn inbound_records(
        &self,
        sender: &str,
    ) -> impl Iterator<Item = Result<(Uetr, InboundRecord), StoreError>> + '_ {
        let prefix = inbound_prefix(sender);
        self.tree.scan_prefix(&prefix).map(move |item| {
            let (k, v) = item.map_err(|source| StoreError::Sled {
                what: "scanning inbound payments",
                source,
            })?;
            let id: [u8; 16] = k
                .get(prefix.len()..)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| corrupt_key(&k))?;
            Ok((Uetr(id), decode(&k, &v)?))
        })
    }

    fn records<T: DeserializeOwned>(
        &self,
        prefix: u8,
        what: &'static str,
    ) -> impl Iterator<Item = Result<(Uetr, T), StoreError>> + '_ {
        self.tree.scan_prefix([prefix]).map(move |item| {
            let (k, v) = item.map_err(|source| StoreError::Sled { what, source })?;
            let id: [u8; 16] = k
                .get(1..)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| corrupt_key(&k))?;
            Ok((Uetr(id), decode(&k, &v)?))
        })
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

/// The sled operations of one write: the record, and for outbound records the matching change
/// to the unresolved index.
fn encode_write(write: &Write, batch: &mut sled::Batch) -> Result<(), serde_json::Error> {
    match write {
        Write::Outbound(uetr, record) => {
            batch.insert(key(PREFIX_OUTBOUND, &uetr.0), serde_json::to_vec(record)?);
            let index = key(PREFIX_UNRESOLVED, &uetr.0);
            if record.state.is_final() {
                batch.remove(index);
            } else {
                batch.insert(index, Vec::new());
            }
        }
        Write::Inbound(uetr, record) => {
            batch.insert(
                inbound_key(&record.sender, uetr),
                serde_json::to_vec(record)?,
            );
        }
        Write::Account(id, meta) => batch.insert(
            key(PREFIX_ACCOUNT, &id.to_be_bytes()),
            serde_json::to_vec(meta)?,
        ),
    }
    Ok(())
}

/// The writer loop: take one request, gather whatever else is queued, apply all as one batch,
/// make it durable, answer everyone. Ends when every `Store` handle is dropped.
fn writer(
    db: sled::Db,
    tree: sled::Tree,
    log: File,
    mut queue: mpsc::Receiver<(Vec<Write>, Reply)>,
) {
    while let Some(first) = queue.blocking_recv() {
        let mut group = vec![first];
        let mut count = group[0].0.len();
        while count < GROUP_WRITES_MAX {
            match queue.try_recv() {
                Ok(next) => {
                    count += next.0.len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        let mut batch = sled::Batch::default();
        let mut outcome = Ok(());
        'encode: for (writes, _) in &group {
            for write in writes {
                match encode_write(write, &mut batch) {
                    Ok(()) => {}
                    Err(e) => {
                        outcome = Err(format!("encoding a record: {e}"));
                        break 'encode;
                    }
                }
            }
        }
        if outcome.is_ok() {
            outcome = tree
                .apply_batch(batch)
                .map_err(|e| format!("applying the batch: {e}"))
                .and_then(|()| db.flush().map(drop).map_err(|e| format!("flush: {e}")))
                .and_then(|()| log.sync_data().map_err(|e| format!("fdatasync: {e}")));
        }
        if let Err(message) = &outcome {
            tracing::error!(%message, "payment store group commit failed");
        }
        for (_, reply) in group {
            // A caller that gave up (dropped its receiver) needs no answer.
            let _ = reply.send(outcome.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[tokio::test]
    async fn a_put_is_readable_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let uetr = Uetr([7; 16]);
        {
            let store = Store::open(dir.path()).unwrap();
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
        // The writer thread holds the database until its queue closes; give it a moment.
        let store = loop {
            match Store::open(dir.path()) {
                Ok(store) => break store,
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        };
        assert_eq!(
            store.outbound(&uetr).unwrap(),
            Some(record(OutboundState::Forwarded))
        );
        assert_eq!(store.accounts().unwrap().len(), 1);
        assert_eq!(store.unresolved_outbound().unwrap().len(), 1);
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
        let store = Store::open(dir.path()).unwrap();
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
        let store = Store::open(dir.path()).unwrap();
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
        let store = Store::open(dir.path()).unwrap();
        put_forwarded_concurrently(&store, 64).await;
        assert_eq!(store.unresolved_outbound().unwrap().len(), 64);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn puts_beyond_a_full_queue_wait_for_room_and_all_land() {
        let dir = tempfile::tempdir().unwrap();
        // One slot: nearly every put finds the queue full and must wait for the writer.
        let store = Store::open_with_queue(dir.path(), 1).unwrap();
        put_forwarded_concurrently(&store, 200).await;
        assert_eq!(store.unresolved_outbound().unwrap().len(), 200);
    }

    /// A write needs no thread of the blocking pool: with its only thread held, a put still
    /// completes (and is durable: its answer comes after the writer's flush and fdatasync).
    #[test]
    fn a_put_does_not_wait_for_the_blocking_pool() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .max_blocking_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (release, held) = std::sync::mpsc::channel::<()>();
        let blocker = runtime.spawn_blocking(move || held.recv());
        let uetr = Uetr([9; 16]);
        let put = runtime.block_on(async {
            tokio::time::timeout(
                std::time::Duration::from_secs(10),
                store.put(vec![Write::Outbound(
                    uetr,
                    record(OutboundState::Forwarded),
                )]),
            )
            .await
        });
        release.send(()).unwrap();
        runtime.block_on(blocker).unwrap().unwrap();
        put.expect("the put finished while the blocking pool was busy")
            .unwrap();
        assert_eq!(
            store.outbound(&uetr).unwrap().unwrap().state,
            OutboundState::Forwarded
        );
    }
}
