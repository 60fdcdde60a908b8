//! A clean audit, tampering with stored bytes named precisely, and the export.

use super::*;
use kakehashi_ledger::Location;

fn populated() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = open(dir.path());
    populate(&ledger);
    ledger.close().expect("close");
    dir
}

/// Rewrites one stored value directly in sled, as an attacker with file access could.
fn tamper(path: &Path, tree: &str, key: &[u8], edit: impl FnOnce(&mut Vec<u8>)) {
    // sled releases a closed database's file lock from its background threads a few
    // milliseconds after the last handle is dropped; retry for a while, as the ledger does.
    let mut attempts = 0;
    let db = loop {
        match sled::open(path) {
            Ok(db) => break db,
            Err(error) if attempts < 200 => {
                attempts += 1;
                let _ = error;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(error) => panic!("sled opens: {error}"),
        }
    };
    let tree = db.open_tree(tree).expect("tree");
    let mut value = tree.get(key).expect("read").expect("present").to_vec();
    edit(&mut value);
    tree.insert(key, value).expect("write");
    db.flush().expect("flush");
}

/// Journal chunks live in the state tree under prefix `j`, then seq and chunk index.
fn journal_key(seq: u64, chunk: u32) -> Vec<u8> {
    let mut key = vec![b'j'];
    key.extend_from_slice(&seq.to_be_bytes());
    key.extend_from_slice(&chunk.to_be_bytes());
    key
}

#[test]
fn clean_ledger_reports_totals_and_verified_checkpoints() {
    let dir = populated();
    let report = check_clean(dir.path());
    assert_eq!(report.records, 6);
    assert_eq!(report.transfers, 7);
    assert_eq!(report.expiries, 1);
    assert!(report.checkpoints_verified >= 2, "{report:?}");
    let jpy = report
        .ledgers
        .iter()
        .find(|l| l.ledger == JPY)
        .expect("jpy totals");
    assert_eq!(jpy.debits_posted, jpy.credits_posted);
    assert_eq!(jpy.debits_posted, "1200");
}

#[test]
fn one_flipped_byte_in_a_journal_record_is_named() {
    let dir = populated();
    // Record 2 is the first transfer batch; byte 70 lies inside its first transfer's id.
    tamper(dir.path(), "ledger", &journal_key(2, 0), |value| {
        value[70] ^= 0x01
    });
    let report = kakehashi_ledger::audit(dir.path(), &AuditOptions::default()).expect("runs");
    assert!(!report.is_clean());
    let altered = report
        .discrepancies
        .iter()
        .find(|d| d.location == Location::JournalRecord { seq: 2 })
        .expect("record 2 named");
    assert!(altered.detail.contains("content altered"), "{altered}");
}

#[test]
fn altered_balance_is_named_with_expected_and_found() {
    let dir = populated();
    // Accounts live in the state tree under prefix `a`, then the big-endian id.
    let mut key = vec![b'a'];
    key.extend_from_slice(&1u128.to_be_bytes());
    // Bytes 32..48 hold debits_posted (after id and debits_pending).
    tamper(dir.path(), "ledger", &key, |value| value[32] ^= 0x04);
    let report = kakehashi_ledger::audit(dir.path(), &AuditOptions::default()).expect("runs");
    let finding = report
        .discrepancies
        .iter()
        .find(|d| d.location == Location::Account { id: "1".into() })
        .expect("account 1 named");
    assert!(
        finding
            .detail
            .contains("expected debits pending/posted 0/1000"),
        "{finding}"
    );
    assert!(
        report
            .discrepancies
            .iter()
            .any(|d| d.location == Location::Ledger { ledger: JPY })
    );
}

#[test]
fn forged_checkpoint_signature_is_named() {
    let dir = populated();
    tamper(dir.path(), "checkpoints", &2u64.to_be_bytes(), |value| {
        let last = value.len() - 1;
        value[last] ^= 0x80;
    });
    let report = kakehashi_ledger::audit(dir.path(), &AuditOptions::default()).expect("runs");
    let finding = report
        .discrepancies
        .iter()
        .find(|d| d.location == Location::Checkpoint { seq: 2 })
        .expect("checkpoint named");
    assert!(
        finding.detail.contains("signature does not verify"),
        "{finding}"
    );
}

#[test]
fn pinned_key_that_differs_is_a_discrepancy() {
    let dir = populated();
    let pinned = SigningKey::from_bytes(&[9; 32]).verifying_key();
    let options = AuditOptions {
        expected_key: Some(pinned),
    };
    let report = kakehashi_ledger::audit(dir.path(), &options).expect("runs");
    assert!(
        report
            .discrepancies
            .iter()
            .any(|d| d.location == Location::Meta)
    );
    assert_eq!(report.checkpoints_verified, 0);
    let right = AuditOptions {
        expected_key: Some(node_key().verifying_key()),
    };
    assert!(
        kakehashi_ledger::audit(dir.path(), &right)
            .expect("runs")
            .is_clean()
    );
}

#[test]
fn deleted_journal_record_is_named_as_a_gap() {
    let dir = populated();
    {
        let db = sled::open(dir.path()).expect("sled opens");
        let journal = db.open_tree("ledger").expect("tree");
        journal.remove(journal_key(3, 0)).expect("remove");
        db.flush().expect("flush");
    }
    let report = kakehashi_ledger::audit(dir.path(), &AuditOptions::default()).expect("runs");
    assert!(
        report
            .discrepancies
            .iter()
            .any(|d| d.location == Location::JournalRecord { seq: 4 }
                && d.detail.contains("expected record 3")),
        "{:#?}",
        report.discrepancies
    );
}

#[test]
fn audit_and_export_refuse_another_storage_format_before_reading_it() {
    let dir = populated();
    tamper(dir.path(), "ledger", b"mformat", |value| value[0] = 2);
    let error = kakehashi_ledger::audit(dir.path(), &AuditOptions::default()).expect_err("refused");
    assert!(
        matches!(&error, kakehashi_ledger::Error::UnsupportedFormat { found, supported: 8 } if found == "2"),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("storage format 2 is not format 8")
    );
    let mut out = Vec::new();
    let error = kakehashi_ledger::export(dir.path(), &mut out).expect_err("refused");
    assert!(matches!(
        error,
        kakehashi_ledger::Error::UnsupportedFormat { .. }
    ));
    assert!(out.is_empty(), "nothing exported");
    let opened = Ledger::open(dir.path(), node_key(), Options::default());
    assert!(matches!(
        opened.err(),
        Some(kakehashi_ledger::Error::UnsupportedFormat { .. })
    ));
}

/// A flipped byte in the second record of a shared journal chunk is named as that record,
/// not as the chunk's first one.
#[test]
fn one_flipped_byte_in_a_shared_journal_chunk_names_its_record() {
    // A one-transfer record: header, one 128-byte transfer, hash.
    const RECORD_LEN: usize = 54 + 128 + 32;
    let (dir, ledger) = with_accounts(2);
    std::thread::scope(|scope| {
        for caller in 0..64u128 {
            let ledger = &ledger;
            scope.spawn(move || {
                for n in 0..4u128 {
                    let event = transfer(1_000 + caller * 10 + n, 1, 2, 1, JPY);
                    ledger.create_transfers(&[event], NOW).expect("answered");
                }
            });
        }
    });
    ledger.close().expect("close");
    // Find a chunk holding several one-transfer records.
    let mut shared = None;
    for _ in 0..200 {
        if let Ok(db) = sled::open(dir.path()) {
            let tree = db.open_tree("ledger").expect("tree");
            shared = tree
                .scan_prefix(b"j")
                .map(|item| item.expect("read"))
                .find(|(_, value)| value.len() >= 2 * RECORD_LEN)
                .map(|(key, _)| key.to_vec());
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let key = shared.expect("64 callers share at least one journal chunk");
    let first = u64::from_be_bytes(key[1..9].try_into().expect("seq"));
    // Byte 70 of the second record lies inside its transfer's id.
    tamper(dir.path(), "ledger", &key, |value| {
        value[RECORD_LEN + 70] ^= 0x01
    });
    let report = kakehashi_ledger::audit(dir.path(), &AuditOptions::default()).expect("runs");
    let altered = report
        .discrepancies
        .iter()
        .find(|d| d.location == Location::JournalRecord { seq: first + 1 })
        .unwrap_or_else(|| panic!("record {} named: {:#?}", first + 1, report.discrepancies));
    assert!(altered.detail.contains("content altered"), "{altered}");
    assert!(
        !report
            .discrepancies
            .iter()
            .any(|d| d.location == Location::JournalRecord { seq: first }),
        "{:#?}",
        report.discrepancies
    );
}

/// A format 7 database is a format 8 one without records, a format 6 one is a format 7 one
/// without id tables and with an empty durable log, a
/// format 5 one is a format 6 one without failed transfer ids, the new flags or signed heads, a
/// format 4 one is a format 5 one without spread runs in its transfer index, and a format 3 one
/// is a format 4 one whose chunks each hold one record: the audit reads them as they are, and
/// the writer upgrades the stored version at open, then stores a batch of scattered ids as an
/// id table.
#[test]
fn formats_3_to_7_are_read_and_upgraded_by_the_writer() {
    for version in [3, 4, 5, 6, 7] {
        let dir = populated();
        tamper(dir.path(), "ledger", b"mformat", |value| value[0] = version);
        check_clean(dir.path());
        let ledger = open(dir.path());
        let results = ledger
            .create_transfers(&[transfer(50, 1, 2, 7, JPY)], NOW)
            .expect("transfers");
        assert_eq!(results, [CreateTransferResult::Ok]);
        let scattered: Vec<NewTransfer> = (0..300u128)
            .map(|i| transfer((i + 1) << 100 | 0xabc, 1, 2, 1, JPY))
            .collect();
        let results = ledger.create_transfers(&scattered, NOW).expect("transfers");
        assert!(results.iter().all(|r| *r == CreateTransferResult::Ok));
        ledger.close().expect("close");
        let report = check_clean(dir.path());
        assert_eq!(report.transfers, 308);
        let mut format = Vec::new();
        tamper(dir.path(), "ledger", b"mformat", |value| {
            format = value.clone()
        });
        assert_eq!(format, [8], "from format {version}");
        let ledger = open(dir.path());
        let found = ledger
            .lookup_transfers(&[TransferId(1 << 100 | 0xabc), TransferId(300 << 100 | 0xabc)])
            .expect("lookup");
        assert!(found.iter().all(Option::is_some), "{found:?}");
        ledger.close().expect("close");
    }
}

/// A batch of scattered ids is stored as an id table; a piece of it deleted behind the
/// ledger's back is named by the audit: the transfers it held are in the journal but not
/// stored, and the count of stored transfers falls short.
#[test]
fn a_deleted_id_table_piece_is_named_by_the_audit() {
    let dir = populated();
    let ledger = open(dir.path());
    let scattered: Vec<NewTransfer> = (0..400u128)
        .map(|i| transfer((i + 1) << 100 | 0xdef, 1, 2, 1, JPY))
        .collect();
    let results = ledger.create_transfers(&scattered, NOW).expect("transfers");
    assert!(results.iter().all(|r| *r == CreateTransferResult::Ok));
    ledger.close().expect("close");
    check_clean(dir.path());
    {
        let db = sled::open(dir.path()).expect("sled opens");
        let tree = db.open_tree("ledger").expect("tree");
        let pieces: Vec<_> = tree
            .scan_prefix(b"i")
            .keys()
            .collect::<Result<_, _>>()
            .expect("read");
        // 400 entries: three pieces of at most 146.
        assert_eq!(pieces.len(), 3, "{pieces:?}");
        tree.remove(&pieces[1]).expect("remove");
        db.flush().expect("flush");
    }
    let report = kakehashi_ledger::audit(dir.path(), &AuditOptions::default()).expect("runs");
    let missing = report
        .discrepancies
        .iter()
        .filter(|d| d.detail.contains("but not stored"))
        .count();
    assert_eq!(missing, 146, "{:#?}", report.discrepancies);
    assert!(
        report
            .discrepancies
            .iter()
            .any(|d| d.detail.contains("transfers in the journal but")),
        "{:#?}",
        report.discrepancies
    );
}

/// A format 5 database has no last account and transfer timestamps: the writer takes both to
/// be its last timestamp, so an imported transfer before it is refused with TigerBeetle's
/// `imported_event_timestamp_must_not_regress` (it cannot tell that the last event was an
/// expiry), and one after it is applied.
#[test]
fn a_format_5_database_takes_its_last_timestamp_for_the_last_account_and_transfer() {
    let dir = populated();
    tamper(dir.path(), "ledger", b"mformat", |value| value[0] = 5);
    {
        let db = sled::open(dir.path()).expect("sled opens");
        let tree = db.open_tree("ledger").expect("tree");
        tree.remove(b"mlast_event_timestamps").expect("remove");
        db.flush().expect("flush");
    }
    let ledger = open(dir.path());
    // The populated ledger's last event is the expiry at NOW + 5 s; its last transfer is at NOW.
    let imported = |id, seconds: u64| NewTransfer {
        timestamp: Timestamp(NOW.0 + seconds * 1_000_000_000),
        flags: TransferFlags::IMPORTED,
        ..transfer(id, 1, 2, 7, JPY)
    };
    let later = Timestamp(NOW.0 + 60_000_000_000);
    assert_eq!(
        ledger
            .create_transfers(&[imported(60, 3)], later)
            .expect("transfers"),
        [CreateTransferResult::ImportedEventTimestampMustNotRegress]
    );
    assert_eq!(
        ledger
            .create_transfers(&[imported(61, 6)], later)
            .expect("transfers"),
        [CreateTransferResult::Ok]
    );
    ledger.close().expect("close");
    check_clean(dir.path());
}

#[test]
fn audit_of_a_missing_directory_is_an_error_not_a_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nothing-here");
    let error = kakehashi_ledger::audit(&missing, &AuditOptions::default()).expect_err("error");
    assert!(matches!(error, kakehashi_ledger::Error::NotFound { .. }));
    assert!(!missing.exists(), "the audit must not create a database");
}

#[test]
fn audit_refuses_a_ledger_held_by_a_running_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = open(dir.path());
    let error = kakehashi_ledger::audit(dir.path(), &AuditOptions::default()).err();
    assert!(
        matches!(error, Some(kakehashi_ledger::Error::Locked { .. })),
        "{error:?}"
    );
    ledger.close().expect("close");
}

#[test]
fn export_writes_every_account_and_transfer_as_json_lines() {
    let dir = populated();
    let mut out = Vec::new();
    let summary = kakehashi_ledger::export(dir.path(), &mut out).expect("exports");
    assert_eq!((summary.accounts, summary.transfers), (4, 7));
    let text = String::from_utf8(out).expect("utf-8");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("json"))
        .collect();
    assert_eq!(lines.len(), 11);
    let first_transfer = lines
        .iter()
        .find(|l| l["type"] == "transfer")
        .expect("a transfer");
    assert_eq!(first_transfer["id"], "10");
    assert_eq!(first_transfer["amount"], "1000");
    let expired = lines
        .iter()
        .find(|l| l["id"] == "21" && l["type"] == "transfer")
        .expect("21");
    assert_eq!(expired["pending_status"], "expired");
}

/// The JSON Lines format is a contract with reconciliation tools: an account line, a pending
/// transfer's line and a posting's line, byte for byte (members in key order, u128 values as
/// decimal strings).
#[test]
fn export_lines_keep_their_exact_bytes() {
    let dir = populated();
    let mut out = Vec::new();
    kakehashi_ledger::export(dir.path(), &mut out).expect("exports");
    let text = String::from_utf8(out).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    let account_2 = concat!(
        r#"{"code":1,"credits_pending":"0","credits_posted":"1000","debits_pending":"0","#,
        r#""debits_posted":"200","flags":["debits_must_not_exceed_credits","history"],"#,
        r#""id":"2","ledger":392,"timestamp":1764000000000000001,"type":"account","#,
        r#""user_data_128":"0","user_data_32":0,"user_data_64":0}"#
    );
    let transfer_21 = concat!(
        r#"{"amount":"50","code":1,"credit_account_id":"3","debit_account_id":"4","#,
        r#""flags":["pending"],"id":"21","ledger":702,"pending_id":"0","#,
        r#""pending_status":"expired","timeout":1,"timestamp":1764000000000000007,"#,
        r#""type":"transfer","user_data_128":"0","user_data_32":0,"user_data_64":0}"#
    );
    let transfer_30 = concat!(
        r#"{"amount":"200","code":1,"credit_account_id":"1","debit_account_id":"2","#,
        r#""flags":["post_pending_transfer"],"id":"30","ledger":392,"pending_id":"20","#,
        r#""pending_status":null,"timeout":0,"timestamp":1764000000000000008,"#,
        r#""type":"transfer","user_data_128":"0","user_data_32":0,"user_data_64":0}"#
    );
    assert_eq!(lines[1], account_2);
    assert_eq!(lines[7], transfer_21);
    assert_eq!(lines[8], transfer_30);
    assert!(text.ends_with("}\n"));
}

/// The last signed checkpoint's key in the closed ledger at `path`.
fn last_checkpoint_key(path: &Path) -> Vec<u8> {
    let mut attempts = 0;
    let db = loop {
        match sled::open(path) {
            Ok(db) => break db,
            Err(_) if attempts < 200 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(error) => panic!("sled opens: {error}"),
        }
    };
    let tree = db.open_tree("checkpoints").expect("tree");
    let (key, _) = tree.last().expect("read").expect("a checkpoint");
    key.to_vec()
}

/// Opening refuses the ledger at `path` with an error naming `what`, and the audit reports a
/// discrepancy there too (issue 11, defect 10: a node must not start on books its audit
/// refuses).
#[track_caller]
fn open_refused(path: &Path, what: &str) {
    let error = Ledger::open(path, node_key(), Options::default())
        .map(|ledger| ledger.close())
        .expect_err("opening refuses altered books");
    let text = error.to_string();
    assert!(text.contains(what), "{text:?} lacks {what:?}");
    assert!(text.contains("kakehashi ledger audit"), "{text}");
    let report = kakehashi_ledger::audit(path, &AuditOptions::default()).expect("runs");
    assert!(!report.is_clean(), "the audit also finds it: {report:?}");
}

#[test]
fn open_refuses_a_forged_last_checkpoint() {
    let dir = populated();
    let key = last_checkpoint_key(dir.path());
    let seq = u64::from_be_bytes(key.as_slice().try_into().expect("8 bytes"));
    tamper(dir.path(), "checkpoints", &key, |value| {
        let last = value.len() - 1;
        value[last] ^= 0x80;
    });
    open_refused(dir.path(), &format!("checkpoint at record {seq}"));
}

#[test]
fn open_refuses_an_altered_record_after_the_last_checkpoint_or_an_altered_head() {
    let dir = populated();
    let report = check_clean(dir.path());
    let head = report.records;
    // The last record: byte 70 lies inside its first entry.
    tamper(dir.path(), "ledger", &journal_key(head, 0), |value| {
        value[70] ^= 0x01
    });
    open_refused(dir.path(), &format!("journal record {head}"));

    let dir = populated();
    // The head (meta key `m` + "head"): seq, then the hash.
    let mut key = vec![b'm'];
    key.extend_from_slice(b"head");
    tamper(dir.path(), "ledger", &key, |value| value[8] ^= 0x01);
    open_refused(dir.path(), "journal head");
}

#[test]
fn open_refuses_an_altered_balance_the_last_checkpoint_signed() {
    let dir = populated();
    let mut key = vec![b'a'];
    key.extend_from_slice(&1u128.to_be_bytes());
    tamper(dir.path(), "ledger", &key, |value| value[32] ^= 0x04);
    open_refused(dir.path(), "accounts as of record");
}

/// Issue 13, item 4: with the options a node uses, a small ledger has no checkpoint due, yet
/// its clean close signs the head, so the audit finds every record signed.
#[test]
fn a_small_ledger_closed_cleanly_has_every_record_signed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = Ledger::open(dir.path(), node_key(), Options::default()).expect("opens");
    populate(&ledger);
    ledger.close().expect("close");
    let mut report = check_clean(dir.path());
    assert_eq!(report.records, 6);
    assert_eq!((report.last_signed_seq, report.records_unsigned), (6, 0));
    assert!(report.checkpoints_verified >= 1, "{report:?}");
    report.require_signed_head();
    assert!(report.is_clean(), "{:#?}", report.discrepancies);
}

/// Options that sign the head every fourth record and never on time within a test.
fn signing_every_fourth_record() -> Options {
    Options {
        signed_head_records: 4,
        signed_head_interval: std::time::Duration::from_secs(3_600),
        ..Options::default()
    }
}

/// The state tree key of the signed head over record `seq`.
fn signed_head_key(seq: u64) -> Vec<u8> {
    let mut key = vec![b's'];
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// A ledger of six records signed at record 4 only, as a node killed after writing record 6
/// leaves it: its clean close would have signed record 6 with a checkpoint, removed here.
fn killed_after_record_6() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger =
        Ledger::open(dir.path(), node_key(), signing_every_fourth_record()).expect("opens");
    populate(&ledger);
    ledger.close().expect("close");
    let db = (0..200)
        .find_map(|_| {
            sled::open(dir.path())
                .inspect_err(|_| std::thread::sleep(std::time::Duration::from_millis(10)))
                .ok()
        })
        .expect("sled opens");
    let checkpoints = db.open_tree("checkpoints").expect("tree");
    let keys: Vec<u64> = checkpoints
        .iter()
        .map(|item| u64::from_be_bytes(item.expect("read").0.as_ref().try_into().expect("seq")))
        .collect();
    assert_eq!(keys, [6], "only the close's checkpoint");
    checkpoints.clear().expect("clear");
    let state = db.open_tree("ledger").expect("tree");
    let signed: Vec<Vec<u8>> = state
        .scan_prefix(b"s")
        .map(|item| item.expect("read").0.to_vec())
        .collect();
    assert_eq!(signed, [signed_head_key(4)]);
    db.flush().expect("flush");
    dir
}

#[test]
fn records_after_the_last_signed_head_are_counted_and_refused_when_a_signed_head_is_required() {
    let dir = killed_after_record_6();
    let mut report = check_clean(dir.path());
    assert_eq!(report.signed_heads_verified, 1);
    assert_eq!((report.last_signed_seq, report.records_unsigned), (4, 2));
    report.require_signed_head();
    assert_eq!(report.discrepancies.len(), 1, "{:#?}", report.discrepancies);
    let finding = &report.discrepancies[0];
    assert_eq!(finding.location, Location::JournalRecord { seq: 5 });
    assert!(
        finding
            .detail
            .starts_with("records 5 to 6 follow the last signed head (it covers record 4)"),
        "{finding}"
    );
    // The node restarts and closes cleanly: the new signature covers the tail too.
    open(dir.path()).close().expect("close");
    let report = check_clean(dir.path());
    assert_eq!((report.last_signed_seq, report.records_unsigned), (6, 0));
}

#[test]
fn open_and_the_audit_refuse_a_forged_last_signed_head() {
    let dir = killed_after_record_6();
    tamper(dir.path(), "ledger", &signed_head_key(4), |value| {
        let last = value.len() - 1;
        value[last] ^= 0x80;
    });
    let report = kakehashi_ledger::audit(dir.path(), &AuditOptions::default()).expect("runs");
    let finding = report
        .discrepancies
        .iter()
        .find(|d| d.location == Location::SignedHead { seq: 4 })
        .expect("signed head named");
    assert!(
        finding.detail.contains("signature does not verify"),
        "{finding}"
    );
    assert_eq!(report.last_signed_seq, 0);
    open_refused(dir.path(), "signed head at record 4");
}

#[test]
fn open_refuses_a_last_signed_head_over_another_hash() {
    let dir = killed_after_record_6();
    // Bytes 8..40 hold the signed hash: a signature over it no longer verifies either, so
    // re-sign it with the node key, as a node fooled into signing a wrong head would have.
    tamper(dir.path(), "ledger", &signed_head_key(4), |value| {
        use ed25519_dalek::Signer as _;
        value[8] ^= 0x01;
        let mut message = b"kakehashi-ledger signed head v1\0".to_vec();
        message.extend_from_slice(&value[..40]);
        let signature = node_key().sign(&message).to_bytes();
        value[40..].copy_from_slice(&signature);
    });
    let report = kakehashi_ledger::audit(dir.path(), &AuditOptions::default()).expect("runs");
    assert!(
        report
            .discrepancies
            .iter()
            .any(|d| d.location == Location::SignedHead { seq: 4 }
                && d.detail.contains("but record 4 hashes to")),
        "{:#?}",
        report.discrepancies
    );
    open_refused(dir.path(), "signed head at record 4");
}
