//! The differential property test: the same random event sequences (the mixed-feature
//! workload of the sled ledger's own tests) through the sled ledger and the PostgreSQL one
//! must give identical results per event, identical balances, lookups, pending statuses,
//! history and records, and identical journals (equal head hashes: the chain hashes every
//! record's bytes).

use kakehashi_ledger::{
    AccountId, Error as LedgerError, Ledger, MemoryLedger, RecordWrite, Timestamp, TransferId,
    TransferOutcome,
};
use kakehashi_ledger_pg::{Error, PgLedger};
use proptest::prelude::*;

use super::workload::{
    self, ACCOUNTS, Call, IDS, SECOND, call, funding, opening_accounts, opening_flags,
};
use super::*;

/// A records closure: one record per transfer created; with `refuse`, the request is refused
/// when any event failed.
fn records_fn(
    step: usize,
    refuse: bool,
) -> impl FnOnce(&[TransferOutcome]) -> Result<Vec<RecordWrite>, String> + Send + 'static {
    move |outcomes: &[TransferOutcome]| {
        if refuse && outcomes.iter().any(|outcome| outcome.timestamp.is_none()) {
            return Err("an event failed".into());
        }
        Ok(outcomes
            .iter()
            .enumerate()
            .filter_map(|(index, outcome)| {
                outcome.timestamp.map(|at| RecordWrite::Put {
                    key: format!("p{step:03}-{index}").into_bytes(),
                    value: at.0.to_le_bytes().to_vec(),
                })
            })
            .collect())
    }
}

#[test]
fn sled_and_postgres_give_identical_results_books_and_journals() {
    let Some(server) = server("sled_and_postgres_give_identical_results_books_and_journals") else {
        return;
    };
    let url = server.url.clone();
    let runtime = runtime();
    // 24 sequences by default; PROPTEST_CASES asks for more (a longer search).
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(24);
    let config = ProptestConfig {
        cases,
        ..ProptestConfig::default()
    };
    let strategy = (
        prop::collection::vec(
            (
                prop_oneof![9 => Just(JPY), 1 => Just(702u32)],
                opening_flags(),
            ),
            ACCOUNTS as usize,
        ),
        prop::collection::vec((call(), 0u8..4), 1..28),
    );
    proptest::test_runner::TestRunner::new(config)
        .run(&strategy, |(opening, calls)| {
            runtime.block_on(one_sequence(&url, opening, calls))
        })
        .expect("sled and PostgreSQL agree");
}

async fn one_sequence(
    url: &str,
    opening: Vec<(u32, kakehashi_ledger::AccountFlags)>,
    calls: Vec<(Call, u8)>,
) -> Result<(), TestCaseError> {
    let schema = fresh_schema(url, "diff").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let sled = Ledger::open(dir.path(), node_key(), kakehashi_ledger::Options::default())
        .expect("open sled");
    // Signed heads and checkpoints mid-journal, so that the audit checks them there too.
    let pg_options = Options {
        signed_head_records: 3,
        checkpoint_records: 7,
        ..options(url, &schema)
    };
    let pg = PgLedger::open(&pg_options, node_key())
        .await
        .expect("open pg");
    // The memory ledger only chooses the workload's post and void targets (as in mixed.rs).
    let mut memory = MemoryLedger::new();
    let accounts = opening_accounts(&opening);
    let results = sled.create_accounts(&accounts, NOW).expect("sled");
    prop_assert_eq!(
        &results,
        &pg.create_accounts(&accounts, NOW).await.expect("pg")
    );
    memory.create_accounts(&accounts, NOW).expect("memory");
    let funding = funding(&opening);
    let results = sled.create_transfers(&funding, NOW).expect("sled");
    prop_assert_eq!(
        &results,
        &pg.create_transfers(&funding, NOW).await.expect("pg")
    );
    memory.create_transfers(&funding, NOW).expect("memory");
    let mut sent = Vec::new();
    for (step, (call, records)) in calls.iter().enumerate() {
        let now = Timestamp(NOW.0 + (step as u64 + 1) * SECOND);
        if let Call::Expire = call {
            let on_sled = sled.expire_pending(now).expect("sled");
            let on_pg = pg.expire_pending(now).await.expect("pg");
            prop_assert_eq!(on_sled, on_pg, "expiry at call {}", step);
            memory.expire_pending(now).expect("memory");
            continue;
        }
        let Some(batch) = workload::batch(call, now, &memory, &mut sent) else {
            continue;
        };
        match records {
            // Records with the transfers; 3: refused when an event failed.
            1 | 3 => {
                let refuse = *records == 3;
                let on_sled = sled.create_transfers_with(&batch, now, records_fn(step, refuse));
                let on_pg = pg
                    .create_transfers_with(&batch, now, records_fn(step, refuse))
                    .await;
                match (&on_sled, &on_pg) {
                    (Ok(a), Ok(b)) => prop_assert_eq!(a, b, "call {}", step),
                    (
                        Err(LedgerError::RecordsRefused { .. }),
                        Err(Error::Ledger(LedgerError::RecordsRefused { .. })),
                    ) => {}
                    other => prop_assert!(false, "call {}: sled and pg differ: {:?}", step, other),
                }
                if on_sled.is_ok() {
                    memory.create_transfers(&batch, now).expect("memory");
                }
            }
            _ => {
                let on_sled = sled.create_transfers(&batch, now).expect("sled");
                let on_pg = pg.create_transfers(&batch, now).await.expect("pg");
                prop_assert_eq!(&on_sled, &on_pg, "call {}", step);
                prop_assert_eq!(
                    &on_sled,
                    &memory.create_transfers(&batch, now).expect("memory")
                );
            }
        }
    }
    let account_ids: Vec<AccountId> = (0..=ACCOUNTS).map(AccountId).collect();
    prop_assert_eq!(
        sled.lookup_accounts(&account_ids).expect("sled"),
        pg.lookup_accounts(&account_ids).await.expect("pg")
    );
    let transfer_ids: Vec<TransferId> = (0..IDS)
        .chain(1_000..1_000 + ACCOUNTS + 1)
        .map(TransferId)
        .collect();
    prop_assert_eq!(
        sled.lookup_transfers(&transfer_ids).expect("sled"),
        pg.lookup_transfers(&transfer_ids).await.expect("pg")
    );
    for id in &transfer_ids {
        prop_assert_eq!(
            sled.pending_status(*id).expect("sled"),
            pg.pending_status(*id).await.expect("pg")
        );
    }
    for id in &account_ids {
        prop_assert_eq!(
            sled.account_history(*id).expect("sled"),
            pg.account_history(*id).await.expect("pg")
        );
    }
    prop_assert_eq!(
        sled.records(b"p", None, 4096).expect("sled"),
        pg.records(b"p", None, 4096).await.expect("pg")
    );
    let head = pg.head().await.expect("pg head");
    sled.close().expect("close sled");
    pg.close().await.expect("close pg");
    let report = kakehashi_ledger::audit(dir.path(), &Default::default()).expect("sled audit");
    prop_assert!(report.is_clean(), "sled audit: {:?}", report.discrepancies);
    prop_assert_eq!(report.records, head.seq);
    prop_assert_eq!(&report.head, &hex::encode(head.hash));
    let options = options(url, &schema);
    let on_pg = kakehashi_ledger_pg::audit(&options, &Default::default())
        .await
        .expect("pg audit");
    prop_assert!(on_pg.is_clean(), "pg audit: {:?}", on_pg.discrepancies);
    prop_assert_eq!(on_pg.records_unsigned, 0);
    prop_assert!(on_pg.checkpoints_verified >= 1);
    prop_assert_eq!(
        (
            report.records,
            report.transfers,
            report.expiries,
            &report.head,
            &report.ledgers
        ),
        (
            on_pg.records,
            on_pg.transfers,
            on_pg.expiries,
            &on_pg.head,
            &on_pg.ledgers
        )
    );
    // The exports are the same lines.
    let mut sled_lines = Vec::new();
    kakehashi_ledger::export(dir.path(), &mut sled_lines).expect("sled export");
    let mut pg_lines = Vec::new();
    kakehashi_ledger_pg::export(&options, &mut pg_lines)
        .await
        .expect("pg export");
    prop_assert!(sled_lines == pg_lines, "the exports differ");
    // The typed export and the records, offline, as the pair audit reads them.
    let sled_export = kakehashi_ledger::LedgerExport::open(dir.path()).expect("sled export");
    let sled_transfers: Vec<_> = sled_export
        .transfers()
        .collect::<Result<_, _>>()
        .expect("sled transfers");
    let (pg_accounts, pg_transfers) = kakehashi_ledger_pg::export_typed(&options)
        .await
        .expect("pg typed export");
    prop_assert_eq!(sled_export.accounts().collect::<Vec<_>>(), pg_accounts);
    prop_assert_eq!(sled_transfers, pg_transfers);
    drop(sled_export);
    let sled_records: Vec<_> = kakehashi_ledger::LedgerRecords::open(dir.path())
        .expect("sled records")
        .records(b"p")
        .collect::<Result<_, _>>()
        .expect("sled records");
    prop_assert_eq!(
        sled_records,
        kakehashi_ledger_pg::records_offline(&options, b"p", None, 4096)
            .await
            .expect("pg records")
    );
    Ok(())
}
