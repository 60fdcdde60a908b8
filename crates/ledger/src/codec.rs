//! Fixed-width little-endian encodings of stored values.
//!
//! Hand-written rather than serde-derived so that the bytes the journal hashes are specified
//! here, field by field, and cannot change with a serializer upgrade. Decoding never panics:
//! short or trailing bytes are a [`DecodeError`].

use crate::model::{
    Account, AccountBalance, AccountFlags, AccountId, PendingStatus, Timestamp, Transfer,
    TransferFlags, TransferId,
};

/// Encoded length of an [`Account`]: 6 × u128, u64, u32, u32, u16, u16, u64.
pub(crate) const ACCOUNT_LEN: usize = 6 * 16 + 8 + 4 + 4 + 2 + 2 + 8;
/// Encoded length of a [`Transfer`]: 6 × u128, u64, u32, u32, u32, u16, u16, u64.
pub(crate) const TRANSFER_LEN: usize = 6 * 16 + 8 + 4 + 4 + 4 + 2 + 2 + 8;
/// Encoded length of an [`AccountBalance`]: u64 and 4 × u128.
pub(crate) const BALANCE_LEN: usize = 8 + 4 * 16;

/// Bytes that do not decode as the value they should hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {detail}")]
pub struct DecodeError {
    /// What was being decoded.
    pub what: &'static str,
    /// What was wrong with it.
    pub detail: String,
}

/// Reads fixed-width fields off a byte slice, failing (not panicking) on short input.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Self { bytes, what }
    }

    pub(crate) fn take<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let Some((head, rest)) = self.bytes.split_first_chunk::<N>() else {
            return Err(DecodeError {
                what: self.what,
                detail: format!("needs {N} more bytes, {} left", self.bytes.len()),
            });
        };
        self.bytes = rest;
        Ok(*head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.take()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take()?))
    }

    pub(crate) fn u128(&mut self) -> Result<u128, DecodeError> {
        Ok(u128::from_le_bytes(self.take()?))
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len()
    }

    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(DecodeError {
                what: self.what,
                detail: format!("{} trailing bytes", self.bytes.len()),
            })
        }
    }
}

pub(crate) fn encode_account(account: &Account, out: &mut Vec<u8>) {
    out.extend_from_slice(&account.id.0.to_le_bytes());
    out.extend_from_slice(&account.debits_pending.to_le_bytes());
    out.extend_from_slice(&account.debits_posted.to_le_bytes());
    out.extend_from_slice(&account.credits_pending.to_le_bytes());
    out.extend_from_slice(&account.credits_posted.to_le_bytes());
    out.extend_from_slice(&account.user_data_128.to_le_bytes());
    out.extend_from_slice(&account.user_data_64.to_le_bytes());
    out.extend_from_slice(&account.user_data_32.to_le_bytes());
    out.extend_from_slice(&account.ledger.to_le_bytes());
    out.extend_from_slice(&account.code.to_le_bytes());
    out.extend_from_slice(&account.flags.0.to_le_bytes());
    out.extend_from_slice(&account.timestamp.0.to_le_bytes());
}

pub(crate) fn read_account(cursor: &mut Cursor<'_>) -> Result<Account, DecodeError> {
    Ok(Account {
        id: AccountId(cursor.u128()?),
        debits_pending: cursor.u128()?,
        debits_posted: cursor.u128()?,
        credits_pending: cursor.u128()?,
        credits_posted: cursor.u128()?,
        user_data_128: cursor.u128()?,
        user_data_64: cursor.u64()?,
        user_data_32: cursor.u32()?,
        ledger: cursor.u32()?,
        code: cursor.u16()?,
        flags: AccountFlags(cursor.u16()?),
        timestamp: Timestamp(cursor.u64()?),
    })
}

pub(crate) fn account_bytes(account: &Account) -> Vec<u8> {
    let mut out = Vec::with_capacity(ACCOUNT_LEN);
    encode_account(account, &mut out);
    out
}

pub(crate) fn decode_account(bytes: &[u8]) -> Result<Account, DecodeError> {
    let mut cursor = Cursor::new(bytes, "account");
    let account = read_account(&mut cursor)?;
    cursor.finish()?;
    Ok(account)
}

pub(crate) fn encode_transfer(transfer: &Transfer, out: &mut Vec<u8>) {
    out.extend_from_slice(&transfer.id.0.to_le_bytes());
    out.extend_from_slice(&transfer.debit_account_id.0.to_le_bytes());
    out.extend_from_slice(&transfer.credit_account_id.0.to_le_bytes());
    out.extend_from_slice(&transfer.amount.to_le_bytes());
    out.extend_from_slice(&transfer.pending_id.0.to_le_bytes());
    out.extend_from_slice(&transfer.user_data_128.to_le_bytes());
    out.extend_from_slice(&transfer.user_data_64.to_le_bytes());
    out.extend_from_slice(&transfer.user_data_32.to_le_bytes());
    out.extend_from_slice(&transfer.timeout.to_le_bytes());
    out.extend_from_slice(&transfer.ledger.to_le_bytes());
    out.extend_from_slice(&transfer.code.to_le_bytes());
    out.extend_from_slice(&transfer.flags.0.to_le_bytes());
    out.extend_from_slice(&transfer.timestamp.0.to_le_bytes());
}

pub(crate) fn read_transfer(cursor: &mut Cursor<'_>) -> Result<Transfer, DecodeError> {
    Ok(Transfer {
        id: TransferId(cursor.u128()?),
        debit_account_id: AccountId(cursor.u128()?),
        credit_account_id: AccountId(cursor.u128()?),
        amount: cursor.u128()?,
        pending_id: TransferId(cursor.u128()?),
        user_data_128: cursor.u128()?,
        user_data_64: cursor.u64()?,
        user_data_32: cursor.u32()?,
        timeout: cursor.u32()?,
        ledger: cursor.u32()?,
        code: cursor.u16()?,
        flags: TransferFlags(cursor.u16()?),
        timestamp: Timestamp(cursor.u64()?),
    })
}

/// Bytes of a stored run of transfer ids: record seq (u64), entry index of the run's first id
/// (u32), ids in the run (u32).
pub(crate) const TRANSFER_RUN_LEN: usize = 16;

/// Where a run of consecutive transfer ids sits in the journal: ids `first ..first + len`
/// are entries `index ..index + len` of record `seq`. Sixteen bytes fit sled's inline value
/// (22 bytes), so storing and copying it allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TransferRun {
    pub(crate) seq: u64,
    pub(crate) index: u32,
    pub(crate) len: u32,
}

pub(crate) fn transfer_run_bytes(run: &TransferRun) -> [u8; TRANSFER_RUN_LEN] {
    let mut out = [0; TRANSFER_RUN_LEN];
    out[..8].copy_from_slice(&run.seq.to_le_bytes());
    out[8..12].copy_from_slice(&run.index.to_le_bytes());
    out[12..].copy_from_slice(&run.len.to_le_bytes());
    out
}

/// Decodes a packed run; a run is never empty and never longer than a record can be.
fn decode_packed_run(bytes: &[u8]) -> Result<TransferRun, DecodeError> {
    let mut cursor = Cursor::new(bytes, "transfer run");
    let run = TransferRun {
        seq: cursor.u64()?,
        index: cursor.u32()?,
        len: cursor.u32()?,
    };
    cursor.finish()?;
    let fits = run.len >= 1
        && usize::try_from(run.index)
            .ok()
            .zip(usize::try_from(run.len).ok())
            .and_then(|(index, len)| index.checked_add(len))
            .is_some_and(|end| end <= crate::BATCH_LEN_MAX);
    if !fits {
        return Err(DecodeError {
            what: "transfer run",
            detail: format!(
                "entries {} + {} do not fit a record of at most {} entries",
                run.index,
                run.len,
                crate::BATCH_LEN_MAX
            ),
        });
    }
    Ok(run)
}

/// First byte of a spread run's value. A packed run is exactly [`TRANSFER_RUN_LEN`] bytes and a
/// spread run `9 + 4 × n` bytes (never 16), so the length alone tells them apart; the tag makes
/// a spread run's bytes say what they are.
const SPREAD_RUN_TAG: u8 = 0x53;
/// Ids in one spread run at most: its value stays near a kilobyte.
pub(crate) const SPREAD_RUN_MAX: usize = 256;

/// Consecutive ids journaled one or a few at a time by the records of one group commit (many
/// callers, each with its own batch): id `first + i` is entry `entries[i].1` of record
/// `base_seq + entries[i].0`. One key for the lot instead of one per transfer; offsets fit
/// u16 because a group's records are counted in tens of thousands at most, and the writer
/// leaves any that do not fit in packed runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SpreadRun {
    pub(crate) base_seq: u64,
    pub(crate) entries: Vec<(u16, u16)>,
}

/// A stored value of the transfer index (see `PREFIX_TRANSFER` in `ledger`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StoredRun {
    Packed(TransferRun),
    Spread(SpreadRun),
}

impl StoredRun {
    /// Ids in the run (at least one).
    pub(crate) fn len(&self) -> u32 {
        match self {
            Self::Packed(run) => run.len,
            // At most SPREAD_RUN_MAX.
            Self::Spread(run) => u32::try_from(run.entries.len()).unwrap_or(u32::MAX),
        }
    }

    /// Record seq and entry index of the id `offset` places after the run's first.
    pub(crate) fn location(&self, offset: u32) -> Option<(u64, u32)> {
        match self {
            Self::Packed(run) => {
                (offset < run.len).then(|| (run.seq, run.index.saturating_add(offset)))
            }
            Self::Spread(run) => {
                let (seq_offset, index) = run.entries.get(usize::try_from(offset).ok()?)?;
                let seq = run.base_seq.checked_add(u64::from(*seq_offset))?;
                Some((seq, u32::from(*index)))
            }
        }
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::Packed(run) => transfer_run_bytes(run).to_vec(),
            Self::Spread(run) => {
                let mut out = Vec::with_capacity(9 + 4 * run.entries.len());
                out.push(SPREAD_RUN_TAG);
                out.extend_from_slice(&run.base_seq.to_le_bytes());
                for (seq_offset, index) in &run.entries {
                    out.extend_from_slice(&seq_offset.to_le_bytes());
                    out.extend_from_slice(&index.to_le_bytes());
                }
                out
            }
        }
    }
}

/// Decodes a stored run of either kind. A spread run has two ids or more (one id is a packed
/// run), at most [`SPREAD_RUN_MAX`], each at an entry a record can have, in records whose
/// numbers do not overflow.
pub(crate) fn decode_transfer_run(bytes: &[u8]) -> Result<StoredRun, DecodeError> {
    if bytes.len() == TRANSFER_RUN_LEN {
        return decode_packed_run(bytes).map(StoredRun::Packed);
    }
    let invalid = |detail: String| DecodeError {
        what: "transfer run",
        detail,
    };
    let mut cursor = Cursor::new(bytes, "transfer run");
    let tag = cursor.u8()?;
    if tag != SPREAD_RUN_TAG {
        return Err(invalid(format!(
            "{} bytes starting with {tag:#04x} are neither a packed nor a spread run",
            bytes.len()
        )));
    }
    let base_seq = cursor.u64()?;
    if !cursor.remaining().is_multiple_of(4) {
        return Err(invalid(format!(
            "{} bytes of entries are not whole (record, entry) pairs",
            cursor.remaining()
        )));
    }
    let len = cursor.remaining() / 4;
    if !(2..=SPREAD_RUN_MAX).contains(&len) {
        return Err(invalid(format!(
            "a spread run of {len} ids (2 to {SPREAD_RUN_MAX})"
        )));
    }
    let mut entries = Vec::with_capacity(len);
    let mut last_seq_offset = 0;
    for _ in 0..len {
        let (seq_offset, index) = (cursor.u16()?, cursor.u16()?);
        if usize::from(index) >= crate::BATCH_LEN_MAX {
            return Err(invalid(format!(
                "entry {index} is past a record of at most {} entries",
                crate::BATCH_LEN_MAX
            )));
        }
        last_seq_offset = last_seq_offset.max(seq_offset);
        entries.push((seq_offset, index));
    }
    cursor.finish()?;
    if base_seq.checked_add(u64::from(last_seq_offset)).is_none() {
        return Err(invalid(format!(
            "record {base_seq} + {last_seq_offset} overflows"
        )));
    }
    Ok(StoredRun::Spread(SpreadRun { base_seq, entries }))
}

/// One entry of an id table (see `PREFIX_ID_TABLE` in `ledger`): transfer `id` is entry
/// `index` of journal record `seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TableEntry {
    pub(crate) id: u128,
    pub(crate) seq: u64,
    pub(crate) index: u32,
}

/// Bytes of one [`TableEntry`]: id (u128), record seq (u64), entry index (u32).
pub(crate) const TABLE_ENTRY_LEN: usize = 16 + 8 + 4;
/// Entries in one piece of an id table at most: a piece stays within 4 KiB, so a lookup reads
/// one small value and sled never splits a piece over blob files.
pub(crate) const TABLE_PIECE_ENTRIES_MAX: usize = (4096 - 1) / TABLE_ENTRY_LEN;
/// First byte of a piece of an id table: says what the bytes are.
const TABLE_PIECE_TAG: u8 = 0x49;

/// The bytes of one piece of an id table: entries sorted by id, at most
/// [`TABLE_PIECE_ENTRIES_MAX`] (the writer never builds another kind).
pub(crate) fn table_piece_bytes(entries: &[TableEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + TABLE_ENTRY_LEN * entries.len());
    out.push(TABLE_PIECE_TAG);
    for entry in entries {
        out.extend_from_slice(&entry.id.to_le_bytes());
        out.extend_from_slice(&entry.seq.to_le_bytes());
        out.extend_from_slice(&entry.index.to_le_bytes());
    }
    out
}

/// Decodes one piece of an id table: one entry or more, at most
/// [`TABLE_PIECE_ENTRIES_MAX`], ids strictly increasing, each at an entry a record can have.
pub(crate) fn decode_table_piece(bytes: &[u8]) -> Result<Vec<TableEntry>, DecodeError> {
    let invalid = |detail: String| DecodeError {
        what: "id table piece",
        detail,
    };
    let mut cursor = Cursor::new(bytes, "id table piece");
    let tag = cursor.u8()?;
    if tag != TABLE_PIECE_TAG {
        return Err(invalid(format!(
            "starts with {tag:#04x}, not a piece's tag"
        )));
    }
    if !cursor.remaining().is_multiple_of(TABLE_ENTRY_LEN) {
        return Err(invalid(format!(
            "{} bytes of entries are not whole entries",
            cursor.remaining()
        )));
    }
    let len = cursor.remaining() / TABLE_ENTRY_LEN;
    if !(1..=TABLE_PIECE_ENTRIES_MAX).contains(&len) {
        return Err(invalid(format!(
            "{len} entries (1 to {TABLE_PIECE_ENTRIES_MAX})"
        )));
    }
    let mut entries: Vec<TableEntry> = Vec::with_capacity(len);
    for _ in 0..len {
        let entry = TableEntry {
            id: cursor.u128()?,
            seq: cursor.u64()?,
            index: cursor.u32()?,
        };
        if usize::try_from(entry.index).map_or(true, |index| index >= crate::BATCH_LEN_MAX) {
            return Err(invalid(format!(
                "entry {} is past a record of at most {} entries",
                entry.index,
                crate::BATCH_LEN_MAX
            )));
        }
        if entries.last().is_some_and(|last| last.id >= entry.id) {
            return Err(invalid(format!("id {} is out of order", entry.id)));
        }
        entries.push(entry);
    }
    cursor.finish()?;
    Ok(entries)
}

pub(crate) fn transfer_bytes(transfer: &Transfer) -> Vec<u8> {
    let mut out = Vec::with_capacity(TRANSFER_LEN);
    encode_transfer(transfer, &mut out);
    out
}

pub(crate) fn decode_transfer(bytes: &[u8]) -> Result<Transfer, DecodeError> {
    let mut cursor = Cursor::new(bytes, "transfer");
    let transfer = read_transfer(&mut cursor)?;
    cursor.finish()?;
    Ok(transfer)
}

pub(crate) fn balance_bytes(balance: &AccountBalance) -> Vec<u8> {
    let mut out = Vec::with_capacity(BALANCE_LEN);
    out.extend_from_slice(&balance.timestamp.0.to_le_bytes());
    out.extend_from_slice(&balance.debits_pending.to_le_bytes());
    out.extend_from_slice(&balance.debits_posted.to_le_bytes());
    out.extend_from_slice(&balance.credits_pending.to_le_bytes());
    out.extend_from_slice(&balance.credits_posted.to_le_bytes());
    out
}

pub(crate) fn decode_balance(bytes: &[u8]) -> Result<AccountBalance, DecodeError> {
    let mut cursor = Cursor::new(bytes, "account balance");
    let balance = AccountBalance {
        timestamp: Timestamp(cursor.u64()?),
        debits_pending: cursor.u128()?,
        debits_posted: cursor.u128()?,
        credits_pending: cursor.u128()?,
        credits_posted: cursor.u128()?,
    };
    cursor.finish()?;
    Ok(balance)
}

pub(crate) fn decode_pending_status(bytes: &[u8]) -> Result<PendingStatus, DecodeError> {
    match bytes {
        [byte] => PendingStatus::from_byte(*byte).ok_or_else(|| DecodeError {
            what: "pending status",
            detail: format!("unknown status byte {byte}"),
        }),
        _ => Err(DecodeError {
            what: "pending status",
            detail: format!("expected 1 byte, found {}", bytes.len()),
        }),
    }
}

/// Sled keys are compared bytewise, so ids and sequence numbers are stored big-endian to make
/// key order equal numeric order.
pub(crate) fn id_key(id: u128) -> [u8; 16] {
    id.to_be_bytes()
}

pub(crate) fn key_u128(bytes: &[u8], what: &'static str) -> Result<u128, DecodeError> {
    let array: [u8; 16] = bytes.try_into().map_err(|_| DecodeError {
        what,
        detail: format!("key of {} bytes, expected 16", bytes.len()),
    })?;
    Ok(u128::from_be_bytes(array))
}

/// Expiry index key: expiry time then id, so a range scan up to `now` finds what is due.
pub(crate) fn expiry_key(expires_at: Timestamp, id: TransferId) -> [u8; 24] {
    let mut key = [0; 24];
    key[..8].copy_from_slice(&expires_at.0.to_be_bytes());
    key[8..].copy_from_slice(&id.0.to_be_bytes());
    key
}

pub(crate) fn decode_expiry_key(bytes: &[u8]) -> Result<(Timestamp, TransferId), DecodeError> {
    let array: [u8; 24] = bytes.try_into().map_err(|_| DecodeError {
        what: "expiry key",
        detail: format!("key of {} bytes, expected 24", bytes.len()),
    })?;
    let mut cursor = Cursor::new(&array, "expiry key");
    let at = u64::from_be_bytes(cursor.take()?);
    let id = u128::from_be_bytes(cursor.take()?);
    Ok((Timestamp(at), TransferId(id)))
}

/// History key: account then timestamp, so one account's history is one ordered range.
pub(crate) fn history_key(account: AccountId, timestamp: Timestamp) -> [u8; 24] {
    let mut key = [0; 24];
    key[..16].copy_from_slice(&account.0.to_be_bytes());
    key[16..].copy_from_slice(&timestamp.0.to_be_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_run_round_trips_and_rejects_empty_or_oversized_runs() {
        let run = TransferRun {
            seq: 9,
            index: 8000,
            len: 190,
        };
        assert_eq!(
            decode_transfer_run(&transfer_run_bytes(&run)),
            Ok(StoredRun::Packed(run))
        );
        let empty = TransferRun { len: 0, ..run };
        assert!(decode_transfer_run(&transfer_run_bytes(&empty)).is_err());
        let past_a_record = TransferRun { len: 191, ..run };
        assert!(decode_transfer_run(&transfer_run_bytes(&past_a_record)).is_err());
        let huge = TransferRun {
            index: u32::MAX,
            len: u32::MAX,
            ..run
        };
        assert!(decode_transfer_run(&transfer_run_bytes(&huge)).is_err());
        assert!(decode_transfer_run(&[0; TRANSFER_RUN_LEN - 1]).is_err());
    }

    #[test]
    fn spread_run_round_trips_and_rejects_malformed_values() {
        let run = StoredRun::Spread(SpreadRun {
            base_seq: 40,
            entries: vec![(0, 0), (3, 1), (1, 8189)],
        });
        let bytes = run.to_bytes();
        assert_eq!(bytes.len(), 9 + 3 * 4);
        assert_eq!(decode_transfer_run(&bytes), Ok(run.clone()));
        assert_eq!(run.len(), 3);
        assert_eq!(run.location(1), Some((43, 1)));
        assert_eq!(run.location(2), Some((41, 8189)));
        assert_eq!(run.location(3), None);

        let spread = |base_seq, entries: &[(u16, u16)]| {
            StoredRun::Spread(SpreadRun {
                base_seq,
                entries: entries.to_vec(),
            })
            .to_bytes()
        };
        // One id is a packed run's job; more than the cap, or an entry past a record, is not
        // something the writer makes.
        assert!(decode_transfer_run(&spread(1, &[(0, 0)])).is_err());
        assert!(decode_transfer_run(&spread(1, &vec![(0, 0); SPREAD_RUN_MAX + 1])).is_err());
        assert!(decode_transfer_run(&spread(1, &[(0, 0), (0, 8190)])).is_err());
        assert!(decode_transfer_run(&spread(u64::MAX, &[(0, 0), (1, 0)])).is_err());
        let mut wrong_tag = bytes.clone();
        wrong_tag[0] ^= 1;
        assert!(decode_transfer_run(&wrong_tag).is_err());
        assert!(decode_transfer_run(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode_transfer_run(&[]).is_err());
    }

    #[test]
    fn a_table_piece_round_trips_and_refuses_what_the_writer_never_makes() {
        let entry = |id, seq, index| TableEntry { id, seq, index };
        let entries = [
            entry(3, 9, 0),
            entry(7, 1, 8189),
            entry(u128::MAX - 1, 2, 5),
        ];
        let bytes = table_piece_bytes(&entries);
        assert_eq!(bytes.len(), 1 + 3 * TABLE_ENTRY_LEN);
        assert_eq!(decode_table_piece(&bytes), Ok(entries.to_vec()));
        let full = vec![entry(1, 1, 1); TABLE_PIECE_ENTRIES_MAX]
            .iter()
            .zip(1u128..)
            .map(|(entry, id)| TableEntry { id, ..*entry })
            .collect::<Vec<_>>();
        assert!(table_piece_bytes(&full).len() <= 4096);
        assert!(decode_table_piece(&table_piece_bytes(&full)).is_ok());
        // Too many entries, none, ids out of order or repeated, an entry past a record, a
        // wrong tag, a torn entry.
        let mut too_many = full.clone();
        too_many.push(entry(u128::MAX, 1, 1));
        assert!(decode_table_piece(&table_piece_bytes(&too_many)).is_err());
        assert!(decode_table_piece(&table_piece_bytes(&[])).is_err());
        assert!(decode_table_piece(&table_piece_bytes(&[entry(7, 1, 1), entry(3, 1, 2)])).is_err());
        assert!(decode_table_piece(&table_piece_bytes(&[entry(7, 1, 1), entry(7, 1, 2)])).is_err());
        assert!(decode_table_piece(&table_piece_bytes(&[entry(7, 1, 8190)])).is_err());
        let mut wrong_tag = bytes.clone();
        wrong_tag[0] ^= 1;
        assert!(decode_table_piece(&wrong_tag).is_err());
        assert!(decode_table_piece(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode_table_piece(&[]).is_err());
    }

    #[test]
    fn account_round_trips_and_has_its_declared_length() {
        let account = Account {
            id: AccountId(u128::MAX - 3),
            debits_pending: 1,
            debits_posted: 2,
            credits_pending: 3,
            credits_posted: u128::MAX,
            user_data_128: 5,
            user_data_64: 6,
            user_data_32: 7,
            ledger: 392,
            code: 9,
            flags: AccountFlags::HISTORY,
            timestamp: Timestamp(11),
        };
        let bytes = account_bytes(&account);
        assert_eq!(bytes.len(), ACCOUNT_LEN);
        assert_eq!(decode_account(&bytes), Ok(account));
    }

    #[test]
    fn transfer_round_trips_and_has_its_declared_length() {
        let transfer = Transfer {
            id: TransferId(1),
            debit_account_id: AccountId(2),
            credit_account_id: AccountId(3),
            amount: 4,
            pending_id: TransferId(5),
            user_data_128: 6,
            user_data_64: 7,
            user_data_32: 8,
            timeout: 9,
            ledger: 702,
            code: 11,
            flags: TransferFlags::PENDING,
            timestamp: Timestamp(13),
        };
        let bytes = transfer_bytes(&transfer);
        assert_eq!(bytes.len(), TRANSFER_LEN);
        assert_eq!(decode_transfer(&bytes), Ok(transfer));
    }

    #[test]
    fn short_or_long_input_is_an_error_not_a_panic() {
        let bytes = account_bytes(&Account::default());
        assert!(decode_account(&bytes[..ACCOUNT_LEN - 1]).is_err());
        let mut long = bytes.clone();
        long.push(0);
        assert!(decode_account(&long).is_err());
        assert!(decode_transfer(&[]).is_err());
        assert!(decode_balance(&[1, 2, 3]).is_err());
        assert!(decode_pending_status(&[]).is_err());
        assert!(decode_pending_status(&[9]).is_err());
        assert!(decode_expiry_key(&[0; 23]).is_err());
        assert!(key_u128(&[0; 15], "id").is_err());
    }

    #[test]
    fn big_endian_keys_sort_numerically() {
        assert!(id_key(255) < id_key(256));
        assert!(
            expiry_key(Timestamp(1), TransferId(u128::MAX))
                < expiry_key(Timestamp(2), TransferId(0))
        );
        let key = expiry_key(Timestamp(7), TransferId(9));
        assert_eq!(decode_expiry_key(&key), Ok((Timestamp(7), TransferId(9))));
    }
}
