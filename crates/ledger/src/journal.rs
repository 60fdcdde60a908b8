//! The hash-chained journal and its signed checkpoints.
//!
//! Every committed batch becomes one record: its sequence number, the SHA-256 hash of the
//! record before it, the `now` the caller passed, and what the batch changed (accounts
//! created, transfers applied, pending transfers expired). The record ends with its own hash,
//! over a domain tag and every byte before it, so an edit anywhere breaks both that hash and
//! the next record's `prev_hash`. Records are stored in chunks of at most
//! [`JOURNAL_CHUNK_LEN`] bytes because sled writes values larger than a quarter of a segment
//! (128 KiB by default) to separate blob files that it does not fsync; small chunks keep the
//! whole journal in sled's log, under the same flush and fdatasync as the balances.
//!
//! A chunk holds either one piece of a record longer than a chunk, or one or more whole
//! records of the same group commit (a *frame*), keyed by the first record's sequence number.
//! Packing matters when many callers submit small batches: one sled key per single-transfer
//! record was about a fifth of the commit time with 64 callers. Records are self-delimiting
//! (their header gives their length), so a frame splits back into records without an index.
//!
//! Two signed statements vouch for the chain, both with the node's Ed25519 key, so an auditor
//! holding the node's public key can tell that the journal up to them is the one the node
//! wrote:
//!
//! - a [`Checkpoint`], taken every `checkpoint_interval` records (at the next group-commit
//!   boundary) and when the ledger closes, binds the chain head to a digest of every account;
//!   the digest scans every account (tens of milliseconds for 100,000), so checkpoints are
//!   rare while records arrive;
//! - a [`SignedHead`] binds only the sequence number and hash of the head record: one
//!   signature (about 20 µs) and one small key, so the writer takes one every few seconds or
//!   few thousand records (see `Options::signed_head_interval`), in the same crash-atomic
//!   batch as the group whose head it signs. The chain it signs fixes every balance the
//!   audit's replay derives, so it leaves a journal rewritten with fresh hashes detectable
//!   without the digest; what it does not give is the start-up check of the stored balances
//!   against a signed digest, which the checkpoint at close does.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::codec::{
    Cursor, DecodeError, encode_account, encode_transfer, read_account, read_transfer,
};
use crate::model::{Account, Timestamp, Transfer, TransferId};

/// Journal record format version, the first byte of every record.
pub(crate) const JOURNAL_FORMAT_VERSION: u8 = 1;
/// Largest chunk of a record stored under one sled key. 4 KiB keeps a full sled leaf (16
/// entries before a split) at 64 KiB, half of sled's 128 KiB blob threshold.
pub(crate) const JOURNAL_CHUNK_LEN: usize = 4096;
/// Bytes before a record's first entry: version, kind, seq, prev_hash, now, count.
pub(crate) const RECORD_HEADER_LEN: usize = 1 + 1 + 8 + 32 + 8 + 4;
/// The hash before the first record.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

const RECORD_HASH_DOMAIN: &[u8] = b"kakehashi-ledger journal record v1\0";
const CHECKPOINT_DOMAIN: &[u8] = b"kakehashi-ledger checkpoint v1\0";
const BALANCES_DOMAIN: &[u8] = b"kakehashi-ledger balances v1\0";
const SIGNED_HEAD_DOMAIN: &[u8] = b"kakehashi-ledger signed head v1\0";

const KIND_ACCOUNTS: u8 = 1;
const KIND_TRANSFERS: u8 = 2;
const KIND_EXPIRIES: u8 = 3;
/// An expiry entry: the transfer id (16 bytes) and the expiry's timestamp (8).
const EXPIRY_LEN: usize = 16 + 8;

/// What one committed batch changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Entries {
    /// Accounts created, as stored (zero balances).
    Accounts(Vec<Account>),
    /// Transfers applied, as stored (post/void with their gaps filled in).
    Transfers(Vec<Transfer>),
    /// Pending transfers released because their timeout passed, each with the timestamp of
    /// its expiry event.
    Expiries(Vec<(TransferId, Timestamp)>),
}

impl Entries {
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Accounts(accounts) => accounts.len(),
            Self::Transfers(transfers) => transfers.len(),
            Self::Expiries(expiries) => expiries.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One journal record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) seq: u64,
    pub(crate) prev_hash: [u8; 32],
    pub(crate) now: Timestamp,
    pub(crate) entries: Entries,
}

/// A decoded record with its stored hash and the hash recomputed from its bytes.
pub(crate) struct DecodedRecord {
    pub(crate) record: Record,
    pub(crate) stored_hash: [u8; 32],
    pub(crate) computed_hash: [u8; 32],
}

impl Record {
    /// The record's bytes (ending with its hash) and that hash.
    pub(crate) fn encode(&self) -> (Vec<u8>, [u8; 32]) {
        let entry_len = match &self.entries {
            Entries::Accounts(_) => crate::codec::ACCOUNT_LEN,
            Entries::Transfers(_) => crate::codec::TRANSFER_LEN,
            Entries::Expiries(_) => EXPIRY_LEN,
        };
        let mut out = Vec::with_capacity(RECORD_HEADER_LEN + entry_len * self.entries.len() + 32);
        out.push(JOURNAL_FORMAT_VERSION);
        out.push(match self.entries {
            Entries::Accounts(_) => KIND_ACCOUNTS,
            Entries::Transfers(_) => KIND_TRANSFERS,
            Entries::Expiries(_) => KIND_EXPIRIES,
        });
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.prev_hash);
        out.extend_from_slice(&self.now.0.to_le_bytes());
        // Batches hold at most `BATCH_LEN_MAX` (8,190) events, far below u32::MAX.
        let count = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&count.to_le_bytes());
        match &self.entries {
            Entries::Accounts(accounts) => {
                accounts.iter().for_each(|a| encode_account(a, &mut out))
            }
            Entries::Transfers(transfers) => {
                transfers.iter().for_each(|t| encode_transfer(t, &mut out));
            }
            Entries::Expiries(expiries) => {
                for (id, at) in expiries {
                    out.extend_from_slice(&id.0.to_le_bytes());
                    out.extend_from_slice(&at.0.to_le_bytes());
                }
            }
        }
        let hash = record_hash(&out);
        out.extend_from_slice(&hash);
        (out, hash)
    }

    /// Decodes a record's bytes (as produced by [`Record::encode`]).
    pub(crate) fn decode(bytes: &[u8]) -> Result<DecodedRecord, DecodeError> {
        let body_len = bytes.len().checked_sub(32).ok_or_else(|| DecodeError {
            what: "journal record",
            detail: format!("{} bytes is shorter than its hash", bytes.len()),
        })?;
        let (body, hash) = bytes.split_at(body_len);
        let mut stored_hash = [0; 32];
        stored_hash.copy_from_slice(hash);
        let computed_hash = record_hash(body);
        let mut cursor = Cursor::new(body, "journal record");
        let version = cursor.u8()?;
        if version != JOURNAL_FORMAT_VERSION {
            return Err(DecodeError {
                what: "journal record",
                detail: format!("unknown format version {version}"),
            });
        }
        let kind = cursor.u8()?;
        let seq = cursor.u64()?;
        let prev_hash = cursor.take::<32>()?;
        let now = Timestamp(cursor.u64()?);
        let count = cursor.u32()? as usize;
        let entry_len = entry_len(kind, "journal record")?;
        // Check the count against the bytes present before allocating for it, so a corrupt
        // count cannot make us reserve gigabytes.
        if count.checked_mul(entry_len) != Some(cursor.remaining()) {
            return Err(DecodeError {
                what: "journal record",
                detail: format!(
                    "{count} entries of {entry_len} bytes do not fill the {} bytes present",
                    cursor.remaining()
                ),
            });
        }
        let entries = match kind {
            KIND_ACCOUNTS => Entries::Accounts(
                (0..count)
                    .map(|_| read_account(&mut cursor))
                    .collect::<Result<_, _>>()?,
            ),
            KIND_TRANSFERS => Entries::Transfers(
                (0..count)
                    .map(|_| read_transfer(&mut cursor))
                    .collect::<Result<_, _>>()?,
            ),
            _ => Entries::Expiries(
                (0..count)
                    .map(|_| Ok((TransferId(cursor.u128()?), Timestamp(cursor.u64()?))))
                    .collect::<Result<_, DecodeError>>()?,
            ),
        };
        cursor.finish()?;
        Ok(DecodedRecord {
            record: Self {
                seq,
                prev_hash,
                now,
                entries,
            },
            stored_hash,
            computed_hash,
        })
    }
}

fn record_hash(body: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(RECORD_HASH_DOMAIN);
    hasher.update(body);
    hasher.finalize().into()
}

/// The encoded length of one entry of a record of `kind`.
fn entry_len(kind: u8, what: &'static str) -> Result<usize, DecodeError> {
    match kind {
        KIND_ACCOUNTS => Ok(crate::codec::ACCOUNT_LEN),
        KIND_TRANSFERS => Ok(crate::codec::TRANSFER_LEN),
        KIND_EXPIRIES => Ok(EXPIRY_LEN),
        _ => Err(DecodeError {
            what,
            detail: format!("unknown record kind {kind}"),
        }),
    }
}

/// The length of the record whose encoding starts with `header` (at least
/// [`RECORD_HEADER_LEN`] bytes), from its kind and entry count.
pub(crate) fn record_len(header: &[u8]) -> Result<usize, DecodeError> {
    let mut cursor = Cursor::new(header, "journal record header");
    let _version = cursor.u8()?;
    let kind = cursor.u8()?;
    let _seq = cursor.u64()?;
    let _prev_hash = cursor.take::<32>()?;
    let _now = cursor.u64()?;
    let count = cursor.u32()? as usize;
    let entry_len = entry_len(kind, "journal record header")?;
    count
        .checked_mul(entry_len)
        .and_then(|entries| entries.checked_add(RECORD_HEADER_LEN + 32))
        .ok_or_else(|| DecodeError {
            what: "journal record header",
            detail: format!("{count} entries overflow the record length"),
        })
}

/// Splits a frame's bytes into its records. What cannot be split (a header that does not
/// decode, or a length running past the end) is returned as the rest, for the caller to
/// report; a sound frame has an empty rest.
pub(crate) fn frame_records(bytes: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let mut records = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        match record_len(rest) {
            Ok(len) if len <= rest.len() => {
                let (record, after) = rest.split_at(len);
                records.push(record);
                rest = after;
            }
            _ => break,
        }
    }
    (records, rest)
}

/// Groups a group commit's encoded records, in order, into the frames stored under one key
/// sequence each: consecutive records that fit in one chunk together share it; a longer
/// record is a frame of its own (stored over several chunks).
pub(crate) fn frames(records: Vec<(u64, Vec<u8>)>) -> Vec<(u64, Vec<u8>)> {
    let mut frames: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut open = false;
    for (seq, bytes) in records {
        let fits = bytes.len() <= JOURNAL_CHUNK_LEN;
        match frames.last_mut() {
            Some((_, frame)) if open && fits && frame.len() + bytes.len() <= JOURNAL_CHUNK_LEN => {
                frame.extend_from_slice(&bytes);
            }
            _ => {
                frames.push((seq, bytes));
                open = fits;
            }
        }
    }
    frames
}

/// Key of chunk `index` of record `seq`: both big-endian so sled's order is journal order.
pub(crate) fn chunk_key(seq: u64, index: u32) -> [u8; 12] {
    let mut key = [0; 12];
    key[..8].copy_from_slice(&seq.to_be_bytes());
    key[8..].copy_from_slice(&index.to_be_bytes());
    key
}

pub(crate) fn decode_chunk_key(key: &[u8]) -> Result<(u64, u32), DecodeError> {
    let array: [u8; 12] = key.try_into().map_err(|_| DecodeError {
        what: "journal key",
        detail: format!("key of {} bytes, expected 12", key.len()),
    })?;
    let mut cursor = Cursor::new(&array, "journal key");
    Ok((
        u64::from_be_bytes(cursor.take()?),
        u32::from_be_bytes(cursor.take()?),
    ))
}

/// SHA-256 over every account in id order (full stored encoding, balances included).
pub struct BalancesDigest {
    hasher: Sha256,
    accounts: u64,
    buffer: Vec<u8>,
}

impl Default for BalancesDigest {
    fn default() -> Self {
        Self::new()
    }
}

impl BalancesDigest {
    /// An empty digest.
    pub fn new() -> Self {
        let mut hasher = Sha256::new();
        hasher.update(BALANCES_DOMAIN);
        Self {
            hasher,
            accounts: 0,
            buffer: Vec::with_capacity(crate::codec::ACCOUNT_LEN),
        }
    }

    /// Adds the next account; callers feed accounts in ascending id order.
    pub fn add(&mut self, account: &Account) {
        self.buffer.clear();
        encode_account(account, &mut self.buffer);
        self.hasher.update(&self.buffer);
        self.accounts = self.accounts.saturating_add(1);
    }

    /// The digest and the number of accounts added.
    pub fn finish(self) -> ([u8; 32], u64) {
        (self.hasher.finalize().into(), self.accounts)
    }
}

/// A signed statement: after record `seq`, whose hash is `head`, the accounts hash to
/// `balances_digest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The journal record it covers.
    pub seq: u64,
    /// That record's hash.
    pub head: [u8; 32],
    /// The [`BalancesDigest`] of every account after it.
    pub balances_digest: [u8; 32],
    /// How many accounts the digest covers.
    pub accounts: u64,
    /// The node key's Ed25519 signature.
    pub signature: [u8; 64],
}

/// Encoded length of a checkpoint.
const CHECKPOINT_LEN: usize = 8 + 32 + 32 + 8 + 64;

impl Checkpoint {
    /// Signs record `seq` (hash `head`) and the balances digest with the node key.
    pub fn sign(
        key: &SigningKey,
        seq: u64,
        head: [u8; 32],
        balances_digest: [u8; 32],
        accounts: u64,
    ) -> Self {
        let message = checkpoint_message(seq, &head, &balances_digest, accounts);
        let signature = key.sign(&message).to_bytes();
        Self {
            seq,
            head,
            balances_digest,
            accounts,
            signature,
        }
    }

    /// Whether the signature is a valid (strict) Ed25519 signature by `key`.
    pub fn verify(&self, key: &VerifyingKey) -> bool {
        let message =
            checkpoint_message(self.seq, &self.head, &self.balances_digest, self.accounts);
        key.verify_strict(&message, &Signature::from_bytes(&self.signature))
            .is_ok()
    }

    /// The stored encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CHECKPOINT_LEN);
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.head);
        out.extend_from_slice(&self.balances_digest);
        out.extend_from_slice(&self.accounts.to_le_bytes());
        out.extend_from_slice(&self.signature);
        out
    }

    /// Decodes [`Checkpoint::encode`]'s bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut cursor = Cursor::new(bytes, "checkpoint");
        let checkpoint = Self {
            seq: cursor.u64()?,
            head: cursor.take()?,
            balances_digest: cursor.take()?,
            accounts: cursor.u64()?,
            signature: cursor.take()?,
        };
        cursor.finish()?;
        Ok(checkpoint)
    }
}

fn checkpoint_message(seq: u64, head: &[u8; 32], digest: &[u8; 32], accounts: u64) -> Vec<u8> {
    let mut message = Vec::with_capacity(CHECKPOINT_DOMAIN.len() + 8 + 32 + 32 + 8);
    message.extend_from_slice(CHECKPOINT_DOMAIN);
    message.extend_from_slice(&seq.to_le_bytes());
    message.extend_from_slice(head);
    message.extend_from_slice(digest);
    message.extend_from_slice(&accounts.to_le_bytes());
    message
}

/// A signed statement lighter than a [`Checkpoint`]: record `seq` hashes to `head`. It binds
/// the hash chain up to `seq` (and through it every balance the replay derives) without the
/// balances digest, whose scan of every account is what makes a checkpoint expensive, so the
/// writer can take one every few seconds. Its own domain tag keeps a signed head's signature
/// from passing as a checkpoint's, and the other way round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedHead {
    /// The journal record it covers.
    pub seq: u64,
    /// That record's hash.
    pub head: [u8; 32],
    /// The node key's Ed25519 signature.
    pub signature: [u8; 64],
}

/// Encoded length of a signed head.
const SIGNED_HEAD_LEN: usize = 8 + 32 + 64;

impl SignedHead {
    /// Signs record `seq` (hash `head`) with the node key.
    pub fn sign(key: &SigningKey, seq: u64, head: [u8; 32]) -> Self {
        let signature = key.sign(&signed_head_message(seq, &head)).to_bytes();
        Self {
            seq,
            head,
            signature,
        }
    }

    /// Whether the signature is a valid (strict) Ed25519 signature by `key`.
    pub fn verify(&self, key: &VerifyingKey) -> bool {
        let message = signed_head_message(self.seq, &self.head);
        key.verify_strict(&message, &Signature::from_bytes(&self.signature))
            .is_ok()
    }

    /// The stored encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SIGNED_HEAD_LEN);
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.head);
        out.extend_from_slice(&self.signature);
        out
    }

    /// Decodes [`SignedHead::encode`]'s bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut cursor = Cursor::new(bytes, "signed head");
        let signed = Self {
            seq: cursor.u64()?,
            head: cursor.take()?,
            signature: cursor.take()?,
        };
        cursor.finish()?;
        Ok(signed)
    }
}

fn signed_head_message(seq: u64, head: &[u8; 32]) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNED_HEAD_DOMAIN.len() + 8 + 32);
    message.extend_from_slice(SIGNED_HEAD_DOMAIN);
    message.extend_from_slice(&seq.to_le_bytes());
    message.extend_from_slice(head);
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AccountId, TransferFlags};

    fn sample_record() -> Record {
        Record {
            seq: 3,
            prev_hash: [7; 32],
            now: Timestamp(99),
            entries: Entries::Transfers(vec![Transfer {
                id: TransferId(1),
                debit_account_id: AccountId(2),
                credit_account_id: AccountId(3),
                amount: 500,
                ledger: 392,
                code: 1,
                flags: TransferFlags::NONE,
                timestamp: Timestamp(100),
                ..Transfer::default()
            }]),
        }
    }

    #[test]
    fn record_round_trips_with_matching_hashes() {
        let record = sample_record();
        let (bytes, hash) = record.encode();
        let decoded = Record::decode(&bytes).expect("decodes");
        assert_eq!(decoded.record, record);
        assert_eq!(decoded.stored_hash, hash);
        assert_eq!(decoded.computed_hash, hash);
    }

    #[test]
    fn flipping_any_byte_changes_the_computed_hash_or_fails_decoding() {
        let (bytes, hash) = sample_record().encode();
        for index in 0..bytes.len() {
            let mut tampered = bytes.clone();
            tampered[index] ^= 0x01;
            if let Ok(decoded) = Record::decode(&tampered) {
                assert!(
                    decoded.computed_hash != decoded.stored_hash || decoded.stored_hash != hash,
                    "byte {index} flipped unnoticed"
                );
            }
        }
    }

    #[test]
    fn decode_rejects_a_count_larger_than_the_bytes() {
        let (mut bytes, _) = sample_record().encode();
        // The count sits after version, kind, seq, prev_hash and now.
        let count_at = 1 + 1 + 8 + 32 + 8;
        bytes[count_at..count_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Record::decode(&bytes).is_err());
        assert!(Record::decode(&[]).is_err());
    }

    #[test]
    fn checkpoint_signature_verifies_only_under_its_key_and_content() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let other = SigningKey::from_bytes(&[2; 32]);
        let checkpoint = Checkpoint::sign(&key, 5, [3; 32], [4; 32], 10);
        assert!(checkpoint.verify(&key.verifying_key()));
        assert!(!checkpoint.verify(&other.verifying_key()));
        let altered = Checkpoint {
            accounts: 11,
            ..checkpoint.clone()
        };
        assert!(!altered.verify(&key.verifying_key()));
        assert_eq!(Checkpoint::decode(&checkpoint.encode()), Ok(checkpoint));
    }

    #[test]
    fn signed_head_verifies_only_under_its_key_and_content_and_never_as_a_checkpoint() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let other = SigningKey::from_bytes(&[2; 32]);
        let signed = SignedHead::sign(&key, 5, [3; 32]);
        assert!(signed.verify(&key.verifying_key()));
        assert!(!signed.verify(&other.verifying_key()));
        for altered in [
            SignedHead {
                seq: 6,
                ..signed.clone()
            },
            SignedHead {
                head: [4; 32],
                ..signed.clone()
            },
        ] {
            assert!(!altered.verify(&key.verifying_key()));
        }
        assert_eq!(SignedHead::decode(&signed.encode()), Ok(signed.clone()));
        assert!(SignedHead::decode(&signed.encode()[1..]).is_err());
        // The domain tags differ: a signed head's signature does not make a checkpoint.
        let forged = Checkpoint {
            seq: 5,
            head: [3; 32],
            balances_digest: [0; 32],
            accounts: 0,
            signature: signed.signature,
        };
        assert!(!forged.verify(&key.verifying_key()));
    }

    fn transfer_record(seq: u64, entries: u128) -> Vec<u8> {
        let transfers = (0..entries)
            .map(|n| Transfer {
                id: TransferId(u128::from(seq) * 1_000 + n),
                ..Transfer::default()
            })
            .collect();
        Record {
            seq,
            prev_hash: [0; 32],
            now: Timestamp(1),
            entries: Entries::Transfers(transfers),
        }
        .encode()
        .0
    }

    #[test]
    fn short_records_of_a_group_share_a_frame_and_long_ones_stand_alone() {
        // 1 entry: 214 bytes; 40 entries: 5,206 bytes, longer than a chunk.
        let records: Vec<(u64, Vec<u8>)> = [(1, 1), (2, 1), (3, 1), (4, 40), (5, 1), (6, 1)]
            .map(|(seq, entries)| (seq, transfer_record(seq, entries)))
            .into();
        let frames = frames(records.clone());
        let firsts: Vec<u64> = frames.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(firsts, [1, 4, 5]);
        let split: Vec<Vec<&[u8]>> = frames
            .iter()
            .map(|(_, bytes)| {
                let (records, rest) = frame_records(bytes);
                assert!(rest.is_empty());
                records
            })
            .collect();
        let flat: Vec<&[u8]> = split.into_iter().flatten().collect();
        let original: Vec<&[u8]> = records.iter().map(|(_, bytes)| bytes.as_slice()).collect();
        assert_eq!(flat, original);
    }

    #[test]
    fn a_frame_never_outgrows_one_chunk() {
        let records: Vec<(u64, Vec<u8>)> =
            (1..=40).map(|seq| (seq, transfer_record(seq, 1))).collect();
        for (_, frame) in frames(records) {
            assert!(frame.len() <= JOURNAL_CHUNK_LEN, "{}", frame.len());
        }
    }

    #[test]
    fn a_frame_that_does_not_split_returns_the_rest() {
        let mut frame = transfer_record(1, 1);
        let second = transfer_record(2, 1);
        frame.extend_from_slice(&second[..100]);
        let (records, rest) = frame_records(&frame);
        assert_eq!(records.len(), 1);
        assert_eq!(rest.len(), 100);
        // An unknown kind byte stops the split at once.
        let mut bad = transfer_record(1, 1);
        bad[1] = 9;
        let (records, rest) = frame_records(&bad);
        assert!(records.is_empty());
        assert_eq!(rest.len(), bad.len());
        assert!(record_len(&[1, 2]).is_err());
        assert_eq!(frame_records(&[]).0.len(), 0);
    }

    #[test]
    fn chunk_keys_sort_by_record_then_chunk() {
        assert!(chunk_key(1, u32::MAX) < chunk_key(2, 0));
        assert_eq!(decode_chunk_key(&chunk_key(9, 4)), Ok((9, 4)));
        assert!(decode_chunk_key(&[0; 11]).is_err());
    }
}
