//! A journal rewritten end to end with fresh hashes: consistent in every stored byte the audit
//! replays, so only the node's signatures can tell (issue 13, item 4).

use std::path::Path;

use ed25519_dalek::SigningKey;

use super::{AuditOptions, Location, audit};
use crate::journal::{Entries, GENESIS_HASH, Record, decode_chunk_key, frame_records};
use crate::ledger::trees::{META_HEAD, PREFIX_JOURNAL, PREFIX_META, Writes, open_offline};
use crate::model::{AccountId, NewAccount, NewTransfer, Timestamp, TransferId};
use crate::{Ledger, Options};

const NOW: Timestamp = Timestamp(1_764_000_000_000_000_000);

/// A small ledger as a node leaves it after a clean close, with default options: records 1
/// (two accounts) to 4 (one transfer each), no checkpoint due on the way.
fn small_ledger(path: &Path) {
    let ledger =
        Ledger::open(path, SigningKey::from_bytes(&[5; 32]), Options::default()).expect("opens");
    let accounts = [1, 2].map(|id| NewAccount {
        id: AccountId(id),
        ledger: 392,
        code: 1,
        ..NewAccount::default()
    });
    ledger.create_accounts(&accounts, NOW).expect("accounts");
    for id in 10..13 {
        let transfer = NewTransfer {
            id: TransferId(id),
            debit_account_id: AccountId(1),
            credit_account_id: AccountId(2),
            amount: 100,
            ledger: 392,
            code: 1,
            ..NewTransfer::default()
        };
        ledger.create_transfers(&[transfer], NOW).expect("transfer");
    }
    ledger.close().expect("close");
}

/// Rewrites every journal record, as someone with the files but not the node key could: the
/// reference (`user_data_128`) of transfer 10 changed, every record re-chained to its new
/// predecessor with a fresh hash, and the head moved to the new last hash. Balances, the
/// transfer index and the snapshot are untouched, so they still agree with the journal.
fn rewrite_journal(path: &Path) {
    let trees = open_offline(path).expect("opens");
    let mut writes = Writes::default();
    let mut prev_hash = GENESIS_HASH;
    let mut last_seq = 0;
    for item in trees.journal.iter() {
        let (key, frame) = item.expect("read");
        let (first, chunk) = decode_chunk_key(&key).expect("key");
        assert_eq!(chunk, 0, "a small ledger's records fit in one chunk each");
        let (records, rest) = frame_records(&frame);
        assert!(rest.is_empty());
        let mut rewritten = Vec::with_capacity(frame.len());
        for bytes in records {
            let mut record = Record::decode(bytes).expect("decodes").record;
            record.prev_hash = prev_hash;
            if let Entries::Transfers(transfers) = &mut record.entries {
                for transfer in transfers.iter_mut().filter(|t| t.id == TransferId(10)) {
                    transfer.user_data_128 = 0xBAD;
                }
            }
            let (encoded, hash) = record.encode();
            rewritten.extend_from_slice(&encoded);
            prev_hash = hash;
            last_seq = record.seq;
        }
        assert!(first <= last_seq);
        writes.insert(PREFIX_JOURNAL, &key, rewritten);
    }
    let mut head = last_seq.to_le_bytes().to_vec();
    head.extend_from_slice(&prev_hash);
    writes.insert(PREFIX_META, META_HEAD, head);
    trees
        .apply(writes, "rewriting the journal")
        .expect("written");
    trees.db.flush().expect("flushed");
}

#[test]
fn a_journal_rewritten_with_fresh_hashes_fails_on_the_signature_of_its_head() {
    let dir = tempfile::tempdir().expect("tempdir");
    small_ledger(dir.path());
    let report = audit(dir.path(), &AuditOptions::default()).expect("runs");
    assert!(report.is_clean(), "{:#?}", report.discrepancies);
    assert_eq!((report.records, report.records_unsigned), (4, 0));

    rewrite_journal(dir.path());
    let report = audit(dir.path(), &AuditOptions::default()).expect("runs");
    // The close signed record 4 with a checkpoint; its hash is no longer record 4's. Nothing
    // but signatures is found (a slow run may also have signed heads on the way): without
    // them the rewrite would pass.
    assert!(!report.discrepancies.is_empty());
    for finding in &report.discrepancies {
        assert!(
            matches!(
                finding.location,
                Location::Checkpoint { seq: 4 } | Location::SignedHead { .. }
            ),
            "{finding}"
        );
    }
    assert!(
        report
            .discrepancies
            .iter()
            .any(|d| d.detail.contains("but record 4 hashes to")),
        "{:#?}",
        report.discrepancies
    );
    assert_eq!((report.last_signed_seq, report.records_unsigned), (0, 4));
}

#[test]
fn a_rewritten_journal_stripped_of_its_signatures_fails_when_a_signed_head_is_required() {
    let dir = tempfile::tempdir().expect("tempdir");
    small_ledger(dir.path());
    rewrite_journal(dir.path());
    {
        let trees = open_offline(dir.path()).expect("opens");
        trees.checkpoints.clear().expect("cleared");
        for item in trees.signed_heads.iter() {
            let (key, _) = item.expect("read");
            trees
                .state
                .remove(trees.signed_heads.key(&key))
                .expect("removed");
        }
        trees.db.flush().expect("flushed");
    }
    let mut report = audit(dir.path(), &AuditOptions::default()).expect("runs");
    // Consistent in every byte, so clean; but nothing vouches for any record.
    assert!(report.is_clean(), "{:#?}", report.discrepancies);
    assert_eq!((report.last_signed_seq, report.records_unsigned), (0, 4));
    report.require_signed_head();
    assert_eq!(report.discrepancies.len(), 1, "{:#?}", report.discrepancies);
    let finding = &report.discrepancies[0];
    assert_eq!(finding.location, Location::JournalRecord { seq: 1 });
    assert!(
        finding
            .detail
            .starts_with("records 1 to 4 follow the last signed head (no record is signed)"),
        "{finding}"
    );
}
