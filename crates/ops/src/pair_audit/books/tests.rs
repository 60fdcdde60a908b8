//! Loading books: `NodeBooks::load` on real databases.

use kakehashi_ledger::{
    AccountId, Ledger, NewAccount, NewTransfer, Options, PendingStatus, Timestamp, TransferFlags,
    TransferId,
};
use kakehashi_node::config::Config;
use kakehashi_node::store::{OutboundRecord, OutboundState, Store, Write};

use kakehashi_protocol::transfer::{codes, transfer_id};

use super::{NodeBooks, PairAuditError};
use crate::pair_audit::tests::uetr;
use crate::test_support::{certs, key, mra};

/// A JP node's data directory with a ledger and a store, written through the real APIs.
fn jp_data_dir() -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load(&certs("../crates/node/devnet/jp.toml"))
        .expect("devnet config")
        .with_data_dir(dir.path());
    let ledger = Ledger::open(
        &dir.path().join("ledger"),
        key("jp/node/receipt.key.pem"),
        Options::default(),
    )
    .unwrap();
    let now = Timestamp::from_unix_nanos(1_800_000_000_000_000_000);
    let accounts = [(1001, 1), (9001, 4), (9002, 2), (9003, 3)].map(|(id, code)| NewAccount {
        id: AccountId(id),
        ledger: 392,
        code,
        ..NewAccount::default()
    });
    assert!(
        ledger
            .create_accounts(&accounts, now)
            .unwrap()
            .iter()
            .all(|r| r.is_recorded())
    );
    let id = uetr(9);
    let transfers = [
        NewTransfer {
            id: TransferId(1),
            debit_account_id: AccountId(9001),
            credit_account_id: AccountId(1001),
            amount: 500,
            ledger: 392,
            code: codes::GENESIS,
            ..NewTransfer::default()
        },
        NewTransfer {
            id: TransferId(transfer_id(b"reserve", &id.0)),
            debit_account_id: AccountId(1001),
            credit_account_id: AccountId(9002),
            amount: 200,
            user_data_128: u128::from_be_bytes(id.0),
            ledger: 392,
            code: codes::OUTBOUND,
            flags: TransferFlags::PENDING,
            ..NewTransfer::default()
        },
    ];
    assert!(
        ledger
            .create_transfers(&transfers, now)
            .unwrap()
            .iter()
            .all(|r| r.is_recorded())
    );
    ledger.close().unwrap();
    (dir, config)
}

#[tokio::test]
async fn load_reads_the_corridor_from_the_ledger_and_store_and_runs_the_ledger_audit() {
    let (dir, config) = jp_data_dir();
    let id = uetr(9);
    {
        let store = Store::open(&dir.path().join("node")).unwrap();
        let record = OutboundRecord {
            state: OutboundState::Forwarded,
            signed_instruction: vec![1],
            instruction_sha256: "ab".into(),
            peer: "SG".into(),
            end_to_end_id: "E2E".into(),
            debtor_account: 1001,
            amount_minor: 200,
            reservation_id: transfer_id(b"reserve", &id.0),
            reason_code: None,
            reason_detail: None,
            decided_by: None,
            receipt: None,
            credited_minor: None,
            created_at: 1,
            updated_at: 1,
        };
        store.put(vec![Write::Outbound(id, record)]).await.unwrap();
        // While a node holds the store, loading refuses with what to do.
        let held = NodeBooks::load(&config, "SG", &mra()).unwrap_err();
        assert!(held.to_string().contains("stop the node"), "{held}");
    }
    // The writer thread releases the database once its queue closes.
    let books = loop {
        match NodeBooks::load(&config, "SG", &mra()) {
            Ok(books) => break books,
            Err(PairAuditError::Store { .. }) => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(other) => panic!("{other}"),
        }
    };
    assert_eq!(books.currency.alpha, "JPY");
    assert_eq!(books.outbound.len(), 1);
    assert_eq!(books.accounts[&9002].credits_pending, 200);
    // Only the corridor's accounts are kept: not the customer's, not the genesis source.
    assert_eq!(books.accounts.keys().collect::<Vec<_>>(), [&9002, &9003]);
    // The genesis transfer touches neither the corridor nor the liquidity account.
    assert_eq!(books.transfers.len(), 1);
    assert_eq!(books.transfers[0].status, Some(PendingStatus::Pending));
    let audit = books.ledger_audit.as_ref().expect("ran");
    assert!(audit.is_clean(), "{:?}", audit.discrepancies);
    assert!(matches!(
        NodeBooks::load(&config, "TH", &mra()),
        Err(PairAuditError::NotAPair(_))
    ));
}

#[test]
fn load_of_a_directory_without_a_store_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load(&certs("../crates/node/devnet/jp.toml"))
        .unwrap()
        .with_data_dir(dir.path());
    let error = NodeBooks::load(&config, "SG", &mra()).unwrap_err();
    assert!(error.to_string().contains("no payment store"), "{error}");
}
