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
        // The node's store: a view over its ledger's records.
        let ledger = Ledger::open(
            &dir.path().join("ledger"),
            key("jp/node/receipt.key.pem"),
            Options::default(),
        )
        .unwrap();
        let store = Store::over_ledger(std::sync::Arc::new(ledger));
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
        // While a node holds the ledger, loading refuses with what to do.
        let held = NodeBooks::load(&config, "SG", &mra()).await.unwrap_err();
        assert!(held.to_string().contains("stop the node"), "{held}");
    }
    // The ledger's threads release the database once the last handle is gone.
    let books = loop {
        match NodeBooks::load(&config, "SG", &mra()).await {
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
    // A jurisdiction JP has no corridor with: not a pair.
    let mut without_th = config.clone();
    without_th.peers.retain(|peer| peer.jurisdiction != "TH");
    assert!(matches!(
        NodeBooks::load(&without_th, "TH", &mra()).await,
        Err(PairAuditError::NotAPair(_))
    ));
}

#[tokio::test]
async fn load_of_a_directory_without_a_store_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load(&certs("../crates/node/devnet/jp.toml"))
        .unwrap()
        .with_data_dir(dir.path());
    let error = NodeBooks::load(&config, "SG", &mra()).await.unwrap_err();
    assert!(error.to_string().contains("no payment store"), "{error}");
}

/// Issue 13, item 3, on real books: a JP/SG pair whose JP node closed one customer account
/// (its balance swept to another in the closing chain) and reopened and closed another, with
/// payments settled before, refused after (AC04) and settled again: the ledger audit of both
/// is clean and the pair audit agrees and reconciles, the closing transfers moving nothing it
/// reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_with_closed_accounts_agrees_and_reconciles() {
    use kakehashi_node::engine::{Engine, QuoteAsker, Submitted};
    use kakehashi_node::node::Node;
    use kakehashi_proto::pb::TransactionStatus;
    use kakehashi_protocol::bank::{self, Bank, InstructionOptions, Order};
    use kakehashi_protocol::money;
    use kakehashi_protocol::quote::{QuoteAsk, verify_quote_for};

    async fn pay(jp: &Engine, debtor: u128, n: u8) -> (String, String) {
        let bank = Bank::load(
            &certs("jp/banks/KKHAJPJ0.pem"),
            &certs("jp/banks/KKHAJPJ0.key.pem"),
        )
        .expect("bank files");
        let jpy = money::currency("JPY").expect("JPY");
        let quote = jp
            .quote(
                &QuoteAsker::Anonymous,
                "SG",
                &money::format_amount(jpy, 10_000),
            )
            .expect("quote");
        let now = jp.clock().now().1;
        let ask = QuoteAsk {
            source: (jpy, 10_000),
            counterparty: "SG".into(),
            target_currency: money::currency("SGD").expect("SGD"),
        };
        let quote = verify_quote_for(quote, &ask, jp.mra(), "JP", now, 30).expect("JP's quote");
        let order = Order {
            debtor_account: debtor,
            debtor_name: "Aoki Kenji".into(),
            creditor_agent_bic: "KKHASGS0".into(),
            creditor_account: 2001,
            creditor_name: "Tan Wei Ming".into(),
            remittance_information: String::new(),
        };
        let signed = bank::instruction(
            &bank,
            &order,
            &quote,
            uetr(n),
            now,
            &InstructionOptions::default(),
        );
        match jp.submit(signed).await.expect("no fault") {
            Submitted::Report(report) => (
                format!("{:?}", report.transaction_status()),
                report.status_reason_code,
            ),
            Submitted::Invalid(rejection) => panic!("invalid: {rejection}"),
        }
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let config = |code: &str| {
        Config::load(&certs(&format!(
            "../crates/node/devnet/{}.toml",
            code.to_lowercase()
        )))
        .expect("devnet config")
        .with_data_dir(dir.path().join(code.to_lowercase()))
        .with_ports(0, 0, 0)
    };
    let sg = Node::start(config("SG")).await.expect("SG node");
    let jp_config = config("JP")
        .with_peer_relay("SG", &format!("https://127.0.0.1:{}", sg.relay_addr.port()))
        .expect("SG relay address");
    let jp = Node::start(jp_config.clone()).await.expect("JP node");
    let engine = jp.engine();
    let settled = (format!("{:?}", TransactionStatus::Acsc), String::new());
    assert_eq!(pay(engine, 1001, 1).await, settled);
    engine
        .close_account(1001, None)
        .await
        .expect("no fault")
        .expect("closed");
    let refused = pay(engine, 1001, 2).await;
    assert_eq!(refused.1, "AC04", "{refused:?}");
    engine
        .reopen_account(1001)
        .await
        .expect("no fault")
        .expect("reopened");
    assert_eq!(pay(engine, 1001, 3).await, settled);
    engine
        .close_account(1002, Some(1001))
        .await
        .expect("no fault")
        .expect("closed with a sweep");
    engine
        .close_account(1001, None)
        .await
        .expect("no fault")
        .expect("closed again");
    jp.shutdown().await.expect("JP stops");
    sg.shutdown().await.expect("SG stops");

    let sg_config = config("SG");
    let (jp_books, sg_books) = super::load_pair(&jp_config, &sg_config, &mra())
        .await
        .expect("loaded");
    for books in [&jp_books, &sg_books] {
        let audit = books.ledger_audit.as_ref().expect("ran");
        assert!(audit.is_clean(), "{:?}", audit.discrepancies);
    }
    let report = crate::pair_audit::audit_pair(&jp_books, &sg_books, &mra());
    assert!(report.agrees(), "{:#?}", report.discrepancies);
    assert!(
        report.directions.iter().all(|d| d.position.reconciled),
        "{:?}",
        report.directions
    );
    let jp_sg = &report.directions[0];
    assert_eq!((jp_sg.settled, jp_sg.rejected), (2, 1), "{jp_sg:?}");
}
