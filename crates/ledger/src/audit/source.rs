//! What the audit reads, whatever the storage engine: [`AuditSource`], and its sled
//! implementation. Every stored value comes as the bytes the sled ledger stores (an engine
//! that stores other bytes re-encodes them with [`crate::engine::encoding`]), so the audit's
//! decoding and checks are the same code for every engine.

use std::collections::VecDeque;

use super::Location;
use crate::error::Error;
use crate::journal::{decode_chunk_key, frame_records};
use crate::ledger::trees::Trees;
use crate::model::{AccountId, Timestamp, Transfer, TransferId};

/// One item of the journal, in order: a record, or something wrong with how the engine stores
/// the journal (a missing chunk, an unreadable key), which the audit reports.
pub enum JournalItem<'a> {
    /// Record `seq` (as the engine stores it; the audit checks that it is numbered so), and its
    /// bytes.
    Record {
        /// The sequence number it is stored under.
        seq: u64,
        /// Its encoding (the engine's journal bytes).
        bytes: &'a [u8],
    },
    /// A finding about the journal's storage.
    Finding {
        /// Where.
        location: Location,
        /// What is wrong.
        detail: String,
    },
}

/// A stored ledger as the audit reads it (see the module documentation). Keys are those of the
/// sled ledger: ids as 16 big-endian bytes, sequence numbers as 8, expiry entries as the
/// expiry time's 8 then the id's 16; values are the ledger's encodings. Entries are visited in
/// key order.
pub trait AuditSource {
    /// Findings about the store itself, made before the audit ran (for example an index that
    /// could not be listed).
    fn findings(&self) -> Vec<(Location, String)> {
        Vec::new()
    }
    /// The node's verifying key as stored.
    fn verifying_key(&self) -> Result<Option<[u8; 32]>, Error>;
    /// The journal record at which the stored accounts were taken (0: before the first).
    fn snapshot_seq(&self) -> Result<u64, Error>;
    /// The stored journal head (`None`: none stored).
    fn head(&self) -> Result<Option<(u64, [u8; 32])>, Error>;
    /// Every checkpoint: key (its record, 8 bytes) and encoding.
    fn checkpoints(&self, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), Error>;
    /// Every signed head: key (its record, 8 bytes) and encoding.
    fn signed_heads(&self, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), Error>;
    /// Every journal record in order.
    fn journal(
        &self,
        visit: &mut dyn FnMut(JournalItem<'_>) -> Result<(), Error>,
    ) -> Result<(), Error>;
    /// The transfer stored under `id`, as a lookup would find it.
    fn transfer(&self, id: TransferId) -> Result<Option<Transfer>, Error>;
    /// The balance history entry of `account` at `at`, encoded.
    fn history(&self, account: AccountId, at: Timestamp) -> Result<Option<Vec<u8>>, Error>;
    /// Every stored account: key and encoding.
    fn accounts(&self, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), Error>;
    /// Every pending status: key and status byte.
    fn pending(&self, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), Error>;
    /// Every expiry index key.
    fn expiry(&self, visit: &mut dyn FnMut(&[u8])) -> Result<(), Error>;
    /// How many transfers are stored (with a finding for each index entry that does not
    /// decode).
    fn transfers_stored(&self, flag: &mut dyn FnMut(Location, String)) -> Result<u64, Error>;
    /// How many history entries are stored.
    fn history_entries(&self) -> Result<u64, Error>;
}

/// The sled ledger's trees as an [`AuditSource`].
pub(crate) struct SledSource<'a> {
    pub(crate) trees: &'a Trees,
    /// The id tables of the transfer index, listed once: nothing writes beside the audit.
    id_tables: Vec<(u64, u64)>,
    id_tables_error: Option<String>,
}

impl<'a> SledSource<'a> {
    pub(crate) fn new(trees: &'a Trees) -> Self {
        let (id_tables, id_tables_error) = match trees.id_table_list() {
            Ok(tables) => (tables, None),
            // Reported; the transfers in the tables are then reported as not stored.
            Err(error) => (Vec::new(), Some(error.to_string())),
        };
        Self {
            trees,
            id_tables,
            id_tables_error,
        }
    }
}

impl AuditSource for SledSource<'_> {
    fn findings(&self) -> Vec<(Location, String)> {
        self.id_tables_error
            .iter()
            .map(|error| (Location::Meta, format!("id table list: {error}")))
            .collect()
    }

    fn verifying_key(&self) -> Result<Option<[u8; 32]>, Error> {
        self.trees.verifying_key()
    }

    fn snapshot_seq(&self) -> Result<u64, Error> {
        crate::recovery::accounts_seq(self.trees)
    }

    fn head(&self) -> Result<Option<(u64, [u8; 32])>, Error> {
        self.trees.head()
    }

    fn checkpoints(&self, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), Error> {
        for item in &self.trees.checkpoints {
            let (key, value) = item.map_err(Error::storage("scanning checkpoints"))?;
            visit(&key, &value);
        }
        Ok(())
    }

    fn signed_heads(&self, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), Error> {
        for item in self.trees.signed_heads.iter() {
            let (key, value) = item.map_err(Error::storage("scanning signed heads"))?;
            visit(&key, &value);
        }
        Ok(())
    }

    /// Gathers each record's chunks (a chunk holds a piece of one long record or a frame of
    /// whole short records of one group) and splits frames into records; bytes that do not
    /// split into records are visited as one more record, which the audit reports.
    fn journal(
        &self,
        visit: &mut dyn FnMut(JournalItem<'_>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        // The key being gathered: its first record, its bytes so far, the chunk expected next.
        let mut current: Option<(u64, Vec<u8>, u32)> = None;
        for item in self.trees.journal.iter() {
            let (key_bytes, chunk) = item.map_err(Error::storage("scanning the journal"))?;
            let (seq, index) = match decode_chunk_key(&key_bytes) {
                Ok(parsed) => parsed,
                Err(error) => {
                    visit(JournalItem::Finding {
                        location: Location::Meta,
                        detail: format!("journal key: {error}"),
                    })?;
                    continue;
                }
            };
            match current.as_mut() {
                Some((current_seq, bytes, next_index)) if *current_seq == seq => {
                    if index != *next_index {
                        visit(JournalItem::Finding {
                            location: Location::JournalRecord { seq },
                            detail: format!("chunk {} missing (found chunk {index})", *next_index),
                        })?;
                    }
                    *next_index = index.saturating_add(1);
                    bytes.extend_from_slice(&chunk);
                }
                _ => {
                    if let Some((done_seq, bytes, _)) = current.take() {
                        frame(done_seq, &bytes, visit)?;
                    }
                    if index != 0 {
                        visit(JournalItem::Finding {
                            location: Location::JournalRecord { seq },
                            detail: format!("chunk 0 missing (first chunk found is {index})"),
                        })?;
                    }
                    current = Some((seq, chunk.to_vec(), index.saturating_add(1)));
                }
            }
        }
        if let Some((done_seq, bytes, _)) = current.take() {
            frame(done_seq, &bytes, visit)?;
        }
        Ok(())
    }

    fn transfer(&self, id: TransferId) -> Result<Option<Transfer>, Error> {
        self.trees.transfer_in_tables(id, &self.id_tables)
    }

    fn history(&self, account: AccountId, at: Timestamp) -> Result<Option<Vec<u8>>, Error> {
        Ok(self
            .trees
            .history
            .get(crate::codec::history_key(account, at))
            .map_err(Error::storage("reading history"))?
            .map(|bytes| bytes.to_vec()))
    }

    fn accounts(&self, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), Error> {
        for item in self.trees.accounts.iter() {
            let (key, value) = item.map_err(Error::storage("scanning accounts"))?;
            visit(&key, &value);
        }
        Ok(())
    }

    fn pending(&self, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), Error> {
        for item in self.trees.pending.iter() {
            let (key, value) = item.map_err(Error::storage("scanning pending statuses"))?;
            visit(&key, &value);
        }
        Ok(())
    }

    fn expiry(&self, visit: &mut dyn FnMut(&[u8])) -> Result<(), Error> {
        for item in self.trees.expiry.iter() {
            let (key, _) = item.map_err(Error::storage("scanning the expiry index"))?;
            visit(&key);
        }
        Ok(())
    }

    fn transfers_stored(&self, flag: &mut dyn FnMut(Location, String)) -> Result<u64, Error> {
        use crate::codec::{decode_table_piece, decode_transfer_run};
        let mut stored = 0u64;
        for item in self.trees.transfers.iter() {
            let (key, value) = item.map_err(Error::storage("counting transfers"))?;
            match decode_transfer_run(&value) {
                Ok(run) => stored = stored.saturating_add(u64::from(run.len())),
                Err(error) => flag(
                    Location::Meta,
                    format!("transfer index entry {}: {error}", hex::encode(&key)),
                ),
            }
        }
        for item in self.trees.id_tables.iter() {
            let (key, value) = item.map_err(Error::storage("counting transfers"))?;
            match decode_table_piece(&value) {
                Ok(piece) => {
                    stored = stored.saturating_add(u64::try_from(piece.len()).unwrap_or(u64::MAX));
                }
                Err(error) => flag(
                    Location::Meta,
                    format!("id table piece {}: {error}", hex::encode(&key)),
                ),
            }
        }
        Ok(stored)
    }

    fn history_entries(&self) -> Result<u64, Error> {
        self.trees.history.count()
    }
}

/// Visits the records of one frame, which holds one record or several whole ones; bytes that
/// do not split into records are visited as one more record.
fn frame(
    first: u64,
    bytes: &[u8],
    visit: &mut dyn FnMut(JournalItem<'_>) -> Result<(), Error>,
) -> Result<(), Error> {
    let (records, rest) = frame_records(bytes);
    let mut parts: VecDeque<&[u8]> = records.into();
    if !rest.is_empty() {
        parts.push_back(rest);
    }
    for (index, part) in parts.into_iter().enumerate() {
        let seq = first.saturating_add(u64::try_from(index).unwrap_or(u64::MAX));
        visit(JournalItem::Record { seq, bytes: part })?;
    }
    Ok(())
}
