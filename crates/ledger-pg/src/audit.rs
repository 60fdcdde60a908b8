//! `ledger audit` and `ledger export` on a PostgreSQL ledger: its tables read in one
//! consistent snapshot (a read-only REPEATABLE READ transaction, so writers may keep running)
//! and handed to the ledger crate's own audit ([`kakehashi_ledger::audit_source`]) and export
//! writer ([`kakehashi_ledger::export_lines`]) as the bytes the sled ledger stores: the checks
//! and the lines are the same code as on sled.
//!
//! The snapshot is loaded into memory whole (journal included), which bounds the books this
//! audits to what fits in memory; streaming it is future work.

use std::collections::HashMap;

use kakehashi_ledger::engine::decode_journal_record;
use kakehashi_ledger::{
    Account, AccountId, AuditSource, ExportedTransfer, JournalItem, Location, Timestamp, Transfer,
    TransferFlags, TransferId,
};
use tokio_postgres::IsolationLevel;

use crate::{Error, codec};

/// One snapshot of a PostgreSQL ledger's tables, as the audit reads them.
pub(crate) struct Snapshot {
    verifying_key: Option<[u8; 32]>,
    head: (u64, [u8; 32]),
    checkpoints: Vec<(Vec<u8>, Vec<u8>)>,
    signed_heads: Vec<(Vec<u8>, Vec<u8>)>,
    /// (seq, stored hash column, record bytes), in order.
    journal: Vec<(u64, Vec<u8>, Vec<u8>)>,
    /// Transfers with the journal record that holds each, in id order.
    transfers: Vec<(Vec<u8>, Vec<u8>, u64)>,
    transfer_index: HashMap<u128, usize>,
    history: HashMap<(u128, Vec<u8>), Vec<u8>>,
    accounts: Vec<(Vec<u8>, Vec<u8>)>,
    pending: Vec<(Vec<u8>, Vec<u8>)>,
    expiry: Vec<Vec<u8>>,
}

fn rows<T>(
    rows: Vec<tokio_postgres::Row>,
    what: &'static str,
    read: impl Fn(&tokio_postgres::Row) -> Result<T, tokio_postgres::Error>,
) -> Result<Vec<T>, Error> {
    rows.iter()
        .map(|row| read(row).map_err(Error::database(format!("reading {what}"))))
        .collect()
}

impl Snapshot {
    /// Reads every table of the ledger in one consistent snapshot.
    pub(crate) async fn load(client: &mut tokio_postgres::Client) -> Result<Self, Error> {
        let txn = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(Error::database("starting the audit's snapshot"))?;
        let query = |sql: &'static str| {
            let txn = &txn;
            async move {
                txn.query(sql, &[])
                    .await
                    .map_err(Error::database(format!("reading for the audit: {sql}")))
            }
        };
        let meta = query("SELECT verifying_key, head_seq, head_hash FROM ledger_meta").await?;
        let (verifying_key, head) = match meta.first() {
            Some(row) => {
                let key: Vec<u8> = row.try_get(0).map_err(Error::database("reading meta"))?;
                let seq: i64 = row.try_get(1).map_err(Error::database("reading meta"))?;
                let hash: Vec<u8> = row.try_get(2).map_err(Error::database("reading meta"))?;
                (
                    <[u8; 32]>::try_from(key.as_slice()).ok(),
                    (codec::seq(seq)?, codec::hash(&hash)?),
                )
            }
            None => (None, (0, kakehashi_ledger::engine::GENESIS_HASH)),
        };
        let seq_key = |seq: i64| (seq as u64).to_be_bytes().to_vec();
        let checkpoints: Vec<(Vec<u8>, Vec<u8>)> = rows(
            query("SELECT seq, checkpoint FROM checkpoints ORDER BY seq").await?,
            "checkpoints",
            |row| Ok((seq_key(row.try_get(0)?), row.try_get(1)?)),
        )?;
        let signed_heads: Vec<(Vec<u8>, Vec<u8>)> = rows(
            query("SELECT seq, signed_head FROM signed_heads ORDER BY seq").await?,
            "signed heads",
            |row| Ok((seq_key(row.try_get(0)?), row.try_get(1)?)),
        )?;
        let journal: Vec<(u64, Vec<u8>, Vec<u8>)> = rows(
            query("SELECT seq, hash, record FROM journal ORDER BY seq").await?,
            "the journal",
            |row| {
                Ok((
                    row.try_get::<_, i64>(0)? as u64,
                    row.try_get(1)?,
                    row.try_get(2)?,
                ))
            },
        )?;
        let transfers: Vec<(Vec<u8>, Vec<u8>, u64)> = rows(
            query("SELECT id, transfer, seq FROM transfers ORDER BY id").await?,
            "transfers",
            |row| {
                Ok((
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get::<_, i64>(2)? as u64,
                ))
            },
        )?;
        let mut transfer_index = HashMap::with_capacity(transfers.len());
        for (index, (id, _, _)) in transfers.iter().enumerate() {
            if let Ok(id) = codec::decode_id(id) {
                transfer_index.insert(id, index);
            }
        }
        let history_rows: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> = rows(
            query("SELECT account_id, at, balance FROM history").await?,
            "history",
            |row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)),
        )?;
        let mut history = HashMap::with_capacity(history_rows.len());
        for (account, at, balance) in history_rows {
            let account = codec::decode_id(&account).unwrap_or_default();
            history.insert((account, at), balance);
        }
        let accounts: Vec<(Vec<u8>, Vec<u8>)> = rows(
            query("SELECT id, account FROM accounts ORDER BY id").await?,
            "accounts",
            |row| Ok((row.try_get(0)?, row.try_get(1)?)),
        )?;
        let pending: Vec<(Vec<u8>, Vec<u8>)> = rows(
            query("SELECT id, status FROM pending ORDER BY id").await?,
            "pending statuses",
            |row| {
                let status: i16 = row.try_get(1)?;
                // Out of range: a byte no status has, which the audit reports.
                Ok((
                    row.try_get(0)?,
                    vec![u8::try_from(status).unwrap_or(u8::MAX)],
                ))
            },
        )?;
        let expiry: Vec<Vec<u8>> = rows(
            query("SELECT expires_at, id FROM expiry ORDER BY expires_at, id").await?,
            "the expiry index",
            |row| {
                let mut key: Vec<u8> = row.try_get(0)?;
                key.extend_from_slice(row.try_get::<_, &[u8]>(1)?);
                Ok(key)
            },
        )?;
        txn.commit()
            .await
            .map_err(Error::database("ending the audit's snapshot"))?;
        Ok(Self {
            verifying_key,
            head,
            checkpoints,
            signed_heads,
            journal,
            transfers,
            transfer_index,
            history,
            accounts,
            pending,
            expiry,
        })
    }

    /// Every account, in id order (the accounts table holds them as of the head).
    pub(crate) fn export_accounts(&self) -> Result<Vec<Account>, Error> {
        self.accounts
            .iter()
            .map(|(_, bytes)| codec::account(bytes))
            .collect()
    }

    /// Every transfer, in id order, with its pending status and journal record.
    pub(crate) fn export_transfers(
        &self,
    ) -> Vec<Result<ExportedTransfer, kakehashi_ledger::Error>> {
        let statuses: HashMap<&[u8], u8> = self
            .pending
            .iter()
            .map(|(id, status)| (id.as_slice(), status.first().copied().unwrap_or(u8::MAX)))
            .collect();
        self.transfers
            .iter()
            .map(|(id, bytes, seq)| {
                let transfer = kakehashi_ledger::engine::encoding::decode_transfer(bytes).map_err(
                    |source| kakehashi_ledger::Error::Corrupt {
                        what: "transfer".into(),
                        source,
                    },
                )?;
                let pending_status = if transfer.flags.contains(TransferFlags::PENDING) {
                    statuses.get(id.as_slice()).and_then(|byte| {
                        kakehashi_ledger::engine::encoding::decode_pending_status(*byte)
                    })
                } else {
                    None
                };
                Ok(ExportedTransfer {
                    transfer,
                    pending_status,
                    journal_seq: *seq,
                })
            })
            .collect()
    }
}

impl AuditSource for Snapshot {
    fn verifying_key(&self) -> Result<Option<[u8; 32]>, kakehashi_ledger::Error> {
        Ok(self.verifying_key)
    }

    /// The accounts table always holds the accounts as of the head.
    fn snapshot_seq(&self) -> Result<u64, kakehashi_ledger::Error> {
        Ok(self.head.0)
    }

    fn head(&self) -> Result<Option<(u64, [u8; 32])>, kakehashi_ledger::Error> {
        Ok(Some(self.head))
    }

    fn checkpoints(
        &self,
        visit: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<(), kakehashi_ledger::Error> {
        for (key, value) in &self.checkpoints {
            visit(key, value);
        }
        Ok(())
    }

    fn signed_heads(
        &self,
        visit: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<(), kakehashi_ledger::Error> {
        for (key, value) in &self.signed_heads {
            visit(key, value);
        }
        Ok(())
    }

    fn journal(
        &self,
        visit: &mut dyn FnMut(JournalItem<'_>) -> Result<(), kakehashi_ledger::Error>,
    ) -> Result<(), kakehashi_ledger::Error> {
        for (seq, hash, bytes) in &self.journal {
            // The hash column must be the record's own (the chain itself is the audit's).
            if let Ok(header) = decode_journal_record(bytes)
                && header.stored_hash.as_slice() != hash.as_slice()
            {
                visit(JournalItem::Finding {
                    location: Location::JournalRecord { seq: *seq },
                    detail: format!(
                        "hash column {} differs from the record's hash {}",
                        hex::encode(hash),
                        hex::encode(header.stored_hash)
                    ),
                })?;
            }
            visit(JournalItem::Record { seq: *seq, bytes })?;
        }
        Ok(())
    }

    fn transfer(&self, id: TransferId) -> Result<Option<Transfer>, kakehashi_ledger::Error> {
        self.transfer_index
            .get(&id.0)
            .and_then(|index| self.transfers.get(*index))
            .map(|(_, bytes, _)| {
                kakehashi_ledger::engine::encoding::decode_transfer(bytes).map_err(|source| {
                    kakehashi_ledger::Error::Corrupt {
                        what: format!("transfer {}", id.0),
                        source,
                    }
                })
            })
            .transpose()
    }

    fn history(
        &self,
        account: AccountId,
        at: Timestamp,
    ) -> Result<Option<Vec<u8>>, kakehashi_ledger::Error> {
        Ok(self
            .history
            .get(&(account.0, codec::timestamp(at)))
            .cloned())
    }

    fn accounts(&self, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), kakehashi_ledger::Error> {
        for (key, value) in &self.accounts {
            visit(key, value);
        }
        Ok(())
    }

    fn pending(&self, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), kakehashi_ledger::Error> {
        for (key, value) in &self.pending {
            visit(key, value);
        }
        Ok(())
    }

    fn expiry(&self, visit: &mut dyn FnMut(&[u8])) -> Result<(), kakehashi_ledger::Error> {
        for key in &self.expiry {
            visit(key);
        }
        Ok(())
    }

    fn transfers_stored(
        &self,
        _flag: &mut dyn FnMut(Location, String),
    ) -> Result<u64, kakehashi_ledger::Error> {
        Ok(self.transfers.len() as u64)
    }

    fn history_entries(&self) -> Result<u64, kakehashi_ledger::Error> {
        Ok(self.history.len() as u64)
    }
}
