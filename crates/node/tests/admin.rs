//! The operator RPCs (OpenAccount, FundAccount, CloseAccount) on real nodes over real TLS:
//! refused without a client certificate (Unauthenticated) and with a recognized certificate
//! that is not an operator's (PermissionDenied); with the operator's certificate an account is
//! opened, funded and paid from, a closed account is AC04 on both sides and settles again
//! once reopened, a close (with or without a sweep of its balance) survives restarts and an
//! older node's store-closed account is closed in the ledger at start, and a corridor whose
//! liquidity is too small is AM04 decided by the receiver, the sender's reservation voided.

use kakehashi_node::config::Config;
use kakehashi_node::node::Node;
use kakehashi_proto::pb::payments_client::PaymentsClient;
use kakehashi_proto::pb::{self as pb, TransactionStatus};
use tonic::Code;
use tonic::transport::Channel;

use crate::support::*;

async fn open(
    client: &mut PaymentsClient<Channel>,
    account: &str,
    bic: &str,
) -> Result<pb::AccountBalance, tonic::Status> {
    client
        .open_account(pb::OpenAccountRequest {
            account: account.into(),
            owner_bic: bic.into(),
            name: "Kobayashi Mei".into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn close(
    client: &mut PaymentsClient<Channel>,
    account: &str,
) -> Result<pb::AccountBalance, tonic::Status> {
    client
        .close_account(pb::CloseAccountRequest {
            account: account.into(),
            sweep_to: String::new(),
        })
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_calls_need_the_operators_certificate() {
    let mut p = pair().await;
    let before = p.snapshot().await;

    // No client certificate at all.
    let anonymous = &mut client(p.jp.public_addr, "JP", None).await;
    for (what, result) in [
        ("open", open(anonymous, "1003", "KKHAJPJ0").await.map(drop)),
        ("fund", fund(anonymous, "1001", "1000").await.map(drop)),
        ("close", close(anonymous, "1001").await.map(drop)),
    ] {
        let err = result.expect_err(what);
        assert_eq!(err.code(), Code::Unauthenticated, "{what}: {err:?}");
    }

    // A bank's participant-TLS certificate: recognized, but not the operator.
    let bank = &mut p.jp_client;
    for (what, result) in [
        ("open", open(bank, "1003", "KKHAJPJ0").await.map(drop)),
        ("fund", fund(bank, "1001", "1000").await.map(drop)),
        ("close", close(bank, "1001").await.map(drop)),
    ] {
        let err = result.expect_err(what);
        assert_eq!(err.code(), Code::PermissionDenied, "{what}: {err:?}");
    }

    // Issue 12: node TLS certificates are no client identity of the public listener — not the
    // node's own (the operator credential before), not a recognized peer's (SG's, TH's). The
    // listener refuses them at the handshake (TLS 1.3 reports that on the first call, when
    // the server's alert arrives).
    for stem in ["jp/node/tls", "sg/node/tls", "th/node/tls", "sg/operator"] {
        let refusal = handshake_refusal(p.jp.public_addr, stem).await;
        // The server's TLS alert, surfaced by hyper as a transport error. Under TLS 1.3 the
        // client finishes its side of the handshake before the server has checked the client
        // certificate, so the refusal can also reach the client as the connection closing
        // under its first request (hyper: "connection closed"), the same refusal seen later.
        assert!(
            refusal.contains("received fatal alert")
                || refusal.contains("transport error")
                || refusal.contains("connection closed"),
            "{stem}: a handshake refusal: {refusal}"
        );
    }

    assert_eq!(p.snapshot().await, before, "nothing changed");
    let err = p
        .jp_client
        .get_balances(pb::BalancesRequest {
            accounts: vec!["1003".into()],
            ..pb::BalancesRequest::default()
        })
        .await;
    // The account was never opened.
    match err {
        Err(status) => assert_eq!(status.code(), Code::NotFound, "{status:?}"),
        Ok(found) => panic!("account 1003 exists: {found:?}"),
    }
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_opens_funds_and_closes_accounts_and_payments_follow() {
    let mut p = pair().await;
    let mut jp_operator = operator_client(p.jp.public_addr, "JP").await;
    let mut sg_operator = operator_client(p.sg.public_addr, "SG").await;

    // Open 1003 for KKHAJPJ0 and fund it with 250,000 JPY from JP's funding account 9001.
    let opened = open(&mut jp_operator, "1003", "KKHAJPJ0")
        .await
        .expect("open");
    assert_eq!(
        (opened.account.as_str(), opened.owner_bic.as_str()),
        ("1003", "KKHAJPJ0")
    );
    assert_eq!(opened.kind, "customer");
    assert_eq!(opened.posted_balance.map(|a| a.value), Some("0".to_owned()));
    // Opening it again is refused and changes nothing.
    let again = open(&mut jp_operator, "1003", "KKHAJPJ0")
        .await
        .expect_err("already open");
    assert_eq!(again.code(), Code::FailedPrecondition, "{again:?}");
    // Malformed operator requests are FF01 InvalidArgument; unknown accounts are AC01.
    let snapshot = p.snapshot().await;
    for (what, result) in [
        (
            "open id 0",
            open(&mut jp_operator, "0", "KKHAJPJ0").await.map(drop),
        ),
        (
            "open id text",
            open(&mut jp_operator, "abc", "KKHAJPJ0").await.map(drop),
        ),
        (
            "open bad BIC",
            open(&mut jp_operator, "1004", "kkhajpj0").await.map(drop),
        ),
        (
            "fund zero",
            fund(&mut jp_operator, "1003", "0").await.map(drop),
        ),
        (
            "fund negative",
            fund(&mut jp_operator, "1003", "-5").await.map(drop),
        ),
        (
            "fund decimals",
            fund(&mut jp_operator, "1003", "1.5").await.map(drop),
        ),
        (
            "fund 40 digits",
            fund(&mut jp_operator, "1003", &"9".repeat(40))
                .await
                .map(drop),
        ),
    ] {
        let err = result.expect_err(what);
        assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err:?}");
        assert!(err.message().starts_with("FF01"), "{what}: {err:?}");
    }
    let sgd = jp_operator
        .fund_account(pb::FundAccountRequest {
            account: "1003".into(),
            amount: Some(amount("SGD", "10.00")),
        })
        .await
        .expect_err("JP's ledger is in JPY");
    assert_eq!(sgd.code(), Code::InvalidArgument, "{sgd:?}");
    let unknown = fund(&mut jp_operator, "1999", "1000")
        .await
        .expect_err("no such account");
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
    let corridor = close(&mut jp_operator, "9002")
        .await
        .expect_err("only customer accounts close");
    assert_eq!(corridor.code(), Code::InvalidArgument, "{corridor:?}");
    let funding = open(&mut jp_operator, "9001", "KKHAJPJ0")
        .await
        .expect_err("the funding account exists");
    assert_eq!(funding.code(), Code::FailedPrecondition, "{funding:?}");
    assert_eq!(
        p.snapshot().await,
        snapshot,
        "refused operator calls change nothing"
    );

    let jp_funding_before = posted(&balances(&mut p.jp_operator).await, "9001");
    let funded = fund(&mut jp_operator, "1003", "250000")
        .await
        .expect("fund");
    assert_eq!(
        funded.posted_balance.map(|a| a.value),
        Some("250000".to_owned())
    );
    let funding_after = posted(&balances(&mut p.jp_operator).await, "9001");
    assert_eq!(
        funding_after.parse::<i128>().expect("decimal")
            - jp_funding_before.parse::<i128>().expect("decimal"),
        -250_000,
        "funding comes out of the funding account"
    );

    // Pay 100,000 JPY from the new account to Tan Wei Ming: 100,000 × 0.0087 × 0.9975 =
    // 867.825 SGD, floored to 867.82.
    let alpha = bank("jp", "KKHAJPJ0");
    let source = amount("JPY", "100000");
    let q = quote(&mut p.jp_client, "SG", &source).await;
    let payment = Payment {
        debtor_account: 1003,
        debtor_name: "Kobayashi Mei",
        ..jp_to_sg(&alpha, q, source.clone())
    };
    let report = submit(&mut p.jp_client, instruction(&payment, new_uetr())).await;
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Acsc,
        "{report:?}"
    );
    assert_eq!(
        report.credited_amount.map(|a| a.value),
        Some("867.82".to_owned())
    );
    let (jp, sg) = p.snapshot().await;
    assert_eq!(posted(&jp, "1003"), "150000");
    assert_eq!(posted(&sg, "2001"), "100867.82");

    // SG's operator closes Lim Logistics (2002); a payment to it is AC04, decided by SG, and
    // JP's reservation is voided.
    let closed = close(&mut sg_operator, "2002").await.expect("close");
    assert!(closed.closed);
    let before = p.snapshot().await;
    let q = quote(&mut p.jp_client, "SG", &source).await;
    let to_closed = Payment {
        creditor_account: 2002,
        creditor_name: "Lim Logistics Pte Ltd",
        quote: q,
        ..payment
    };
    let uetr = new_uetr();
    let report = submit(&mut p.jp_client, instruction(&to_closed, uetr)).await;
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Rjct,
        "{report:?}"
    );
    assert_eq!(report.status_reason_code, "AC04", "{report:?}");
    assert_eq!(report.decided_by, "SG");
    assert_eq!(p.snapshot().await, before, "nothing moved on either side");
    // The rejection is recorded under its UETR.
    let status = settled_status(&mut p.jp_client, &uetr.to_string()).await;
    assert_eq!(status.status_reason_code, "AC04");

    // JP's operator closes the debtor's own account: the sender refuses with AC04 itself.
    close(&mut jp_operator, "1003").await.expect("close 1003");
    let q = quote(&mut p.jp_client, "SG", &source).await;
    let from_closed = Payment {
        creditor_account: 2001,
        creditor_name: "Tan Wei Ming",
        quote: q,
        ..to_closed
    };
    let report = submit(&mut p.jp_client, instruction(&from_closed, new_uetr())).await;
    assert_eq!(report.status_reason_code, "AC04", "{report:?}");
    assert_eq!(report.decided_by, "JP");
    // A closed account cannot be funded either.
    let err = fund(&mut jp_operator, "1003", "1")
        .await
        .expect_err("closed");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().starts_with("AC04"), "{err:?}");
    assert_eq!(p.snapshot().await, before, "nothing moved on either side");

    // Both reopened: the same payments settle.
    let reopened = reopen(&mut sg_operator, "2002").await.expect("reopen 2002");
    assert!(!reopened.closed);
    let reopened = reopen(&mut jp_operator, "1003").await.expect("reopen 1003");
    assert!(!reopened.closed);
    // 1003 holds 150,000 JPY: two payments of 10,000.
    let small = amount("JPY", "10000");
    for creditor in [(2002, "Lim Logistics Pte Ltd"), (2001, "Tan Wei Ming")] {
        let q = quote(&mut p.jp_client, "SG", &small).await;
        let again = Payment {
            creditor_account: creditor.0,
            creditor_name: creditor.1,
            quote: q,
            amount: small.clone(),
            ..from_closed
        };
        let report = submit(&mut p.jp_client, instruction(&again, new_uetr())).await;
        assert_eq!(
            report.transaction_status(),
            TransactionStatus::Acsc,
            "{report:?}"
        );
    }
    p.shutdown().await;
}

async fn reopen(
    client: &mut PaymentsClient<Channel>,
    account: &str,
) -> Result<pb::AccountBalance, tonic::Status> {
    client
        .reopen_account(pb::ReopenAccountRequest {
            account: account.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn close_sweeping(
    client: &mut PaymentsClient<Channel>,
    account: &str,
    sweep_to: &str,
) -> Result<pb::AccountBalance, tonic::Status> {
    client
        .close_account(pb::CloseAccountRequest {
            account: account.into(),
            sweep_to: sweep_to.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// The operator's view of account `id`.
async fn account_balance(client: &mut PaymentsClient<Channel>, id: &str) -> pb::AccountBalance {
    client
        .get_balances(pb::BalancesRequest {
            accounts: vec![id.into()],
            ..pb::BalancesRequest::default()
        })
        .await
        .expect("balances")
        .into_inner()
        .balances
        .remove(0)
}

/// Issue 13, item 3: an account closed in the ledger (with and without a sweep of its
/// balance; the close retried) stays closed across a restart, AC04 with nothing moved; an
/// account an older node closed with the payment store's flag is closed in the ledger at
/// start; reopened, payments settle; and the ledger's audit of books with closed accounts is
/// clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_accounts_survive_a_restart_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = Ports::new();
    let jp = start("JP", dir.path(), &ports).await;
    let sg = start("SG", dir.path(), &ports).await;
    let mut operator = operator_client(jp.public_addr, "JP").await;

    let closed = close(&mut operator, "1001").await.expect("close 1001");
    assert!(closed.closed);
    assert_eq!(
        closed.posted_balance.as_ref().map(|a| a.value.as_str()),
        Some("10000000"),
        "the balance stays and is reported"
    );
    let retried = close(&mut operator, "1001")
        .await
        .expect("the same close again");
    assert_eq!(retried.posted_balance, closed.posted_balance);
    // Sato Trading's 50,000,000 JPY paid out to the funding account as it closes.
    let funding = account_balance(&mut operator, "9001").await;
    let swept = close_sweeping(&mut operator, "1002", "9001")
        .await
        .expect("close 1002 with a sweep");
    assert!(swept.closed);
    assert_eq!(swept.posted_balance.map(|a| a.value), Some("0".to_owned()));
    let funded = |b: &pb::AccountBalance| -> i128 {
        b.posted_balance
            .as_ref()
            .map(|a| a.value.parse().expect("decimal"))
            .unwrap_or_default()
    };
    assert_eq!(
        funded(&account_balance(&mut operator, "9001").await) - funded(&funding),
        50_000_000
    );
    // A sweep asked of a closed account whose balance stayed is refused, nothing moved.
    let refused = close_sweeping(&mut operator, "1001", "9001")
        .await
        .expect_err("reopen first");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    jp.shutdown().await.expect("JP");
    sg.shutdown().await.expect("SG");

    // Suzuki Yui's account (1101), closed by an older node's flag in its payment store: a
    // store of its own beside the ledger, which the next start moves into the ledger.
    {
        let store =
            kakehashi_node::store::Store::open_read_only(&dir.path().join("jp")).expect("store");
        let mut meta = store.account(1101).await.expect("read").expect("known");
        drop(store);
        meta.closed = true;
        let db = sled::open(dir.path().join("jp/node")).expect("old store");
        let tree = db.open_tree("payments").expect("tree");
        let key = [&b"a"[..], &1101u128.to_be_bytes()].concat();
        tree.insert(key, serde_json::to_vec(&meta).expect("JSON"))
            .expect("flagged");
        db.flush().expect("flushed");
    }

    let jp = start("JP", dir.path(), &ports).await;
    let sg = start("SG", dir.path(), &ports).await;
    let mut operator = operator_client(jp.public_addr, "JP").await;
    let mut jp_client = bank_client(jp.public_addr, "JP", "KKHAJPJ0").await;
    let mut sg_operator = operator_client(sg.public_addr, "SG").await;
    for id in ["1001", "1002", "1101"] {
        assert!(
            account_balance(&mut operator, id).await.closed,
            "{id} closed after the restart"
        );
    }
    let alpha = bank("jp", "KKHAJPJ0");
    let source = amount("JPY", "10000");
    let before = (
        balances(&mut operator).await,
        balances(&mut sg_operator).await,
    );
    let report = quote_and_submit(
        &mut jp_client,
        "SG",
        source.clone(),
        |q, a| jp_to_sg(&alpha, q, a),
        new_uetr(),
    )
    .await;
    assert_eq!(
        (
            report.status_reason_code.as_str(),
            report.decided_by.as_str()
        ),
        ("AC04", "JP"),
        "{report:?}"
    );
    assert_eq!(
        (
            balances(&mut operator).await,
            balances(&mut sg_operator).await
        ),
        before,
        "nothing moved"
    );

    let reopened = reopen(&mut operator, "1001").await.expect("reopen");
    assert!(!reopened.closed);
    assert!(!reopen(&mut operator, "1001").await.expect("again").closed);
    let report = quote_and_submit(
        &mut jp_client,
        "SG",
        source,
        |q, a| jp_to_sg(&alpha, q, a),
        new_uetr(),
    )
    .await;
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Acsc,
        "{report:?}"
    );
    jp.shutdown().await.expect("JP");
    sg.shutdown().await.expect("SG");

    // The store's flag was carried over once and cleared; the ledger holds the closes.
    let store =
        kakehashi_node::store::Store::open_read_only(&dir.path().join("jp")).expect("store");
    assert!(
        dir.path().join("jp/node.moved-into-ledger").is_dir()
            && !dir.path().join("jp/node").exists(),
        "the old store was moved aside"
    );
    assert!(
        !store
            .account(1101)
            .await
            .expect("read")
            .expect("known")
            .closed
    );
    // The store's records are the ledger's: one reader of the database at a time.
    drop(store);
    let report = kakehashi_ledger::audit(
        &dir.path().join("jp/ledger"),
        &kakehashi_ledger::AuditOptions::default(),
    )
    .expect("audit runs");
    assert!(report.is_clean(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_beyond_the_receivers_liquidity_is_am04_and_the_reservation_is_voided() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = Ports::new();
    let jp = start("JP", dir.path(), &ports).await;
    // SG with only 50.00 SGD in its JP -> SG liquidity account (9103), instead of 10 M.
    let sg_file = repo().join("crates/node/devnet/sg.toml");
    let text = std::fs::read_to_string(&sg_file).expect("sg.toml");
    let liquidity = "opening_balance = \"10000000.00\"";
    assert_eq!(
        text.matches(liquidity).count(),
        1,
        "sg.toml's liquidity line"
    );
    let text = text.replace(liquidity, "opening_balance = \"50.00\"");
    let sg_config = Config::parse(&text, sg_file.parent().expect("devnet dir"))
        .expect("the variant parses")
        .with_data_dir(dir.path().join("sg"))
        .with_ports(ports.sg[0], ports.sg[1], ports.sg[2])
        .with_peer_relay("JP", &format!("https://127.0.0.1:{}", ports.jp[1]))
        .expect("peer");
    let sg = Node::start(sg_config).await.expect("SG node");
    let mut jp_client = bank_client(jp.public_addr, "JP", "KKHAJPJ0").await;
    let mut jp_operator = operator_client(jp.public_addr, "JP").await;
    let mut sg_operator = operator_client(sg.public_addr, "SG").await;
    let jp_before = balances(&mut jp_operator).await;
    let sg_before = balances(&mut sg_operator).await;
    assert_eq!(posted(&sg_before, "9103"), "50.00");

    // 10,000 JPY → 86.78 SGD: within SG's max_payment (50,000 SGD), beyond its liquidity.
    let alpha = bank("jp", "KKHAJPJ0");
    let source = amount("JPY", "10000");
    let uetr = new_uetr();
    let report = quote_and_submit(
        &mut jp_client,
        "SG",
        source,
        |q, a| jp_to_sg(&alpha, q, a),
        uetr,
    )
    .await;
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Rjct,
        "{report:?}"
    );
    assert_eq!(report.status_reason_code, "AM04", "{report:?}");
    assert_eq!(report.decided_by, "SG", "the receiver decides liquidity");
    assert_eq!(
        balances(&mut jp_operator).await,
        jp_before,
        "JP's reservation is voided (no pending debit left) and nothing posted"
    );
    assert_eq!(
        balances(&mut sg_operator).await,
        sg_before,
        "nothing credited"
    );

    // A payment that fits the liquidity still settles: 5,000 JPY → 43.39 SGD
    // (5,000 × 0.0087 × 0.9975 = 43.39125).
    let source = amount("JPY", "5000");
    let report = quote_and_submit(
        &mut jp_client,
        "SG",
        source,
        |q, a| jp_to_sg(&alpha, q, a),
        new_uetr(),
    )
    .await;
    assert_eq!(
        report.transaction_status(),
        TransactionStatus::Acsc,
        "{report:?}"
    );
    assert_eq!(posted(&balances(&mut sg_operator).await, "9103"), "6.61");
    jp.shutdown().await.expect("JP");
    sg.shutdown().await.expect("SG");
}

/// Funding beyond what the ledger's balances can hold is the operator's error, FF01 in plain
/// words: the ledger's result name is an internal detail the answer no longer carries (issue
/// 11, defect 4), and nothing moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn funding_beyond_the_ledgers_range_is_ff01_without_the_ledgers_words() {
    // A ceiling of one call above what the ledger can hold, so the ledger's range is reached.
    let mut p = pair_with(|config| {
        if config.jurisdiction == "JP" {
            config.admin.funding_max = Some("9".repeat(38).parse().expect("a decimal"));
        }
    })
    .await;
    let mut jp_operator = operator_client(p.jp.public_addr, "JP").await;
    open(&mut jp_operator, "1003", "KKHAJPJ0")
        .await
        .expect("open");
    // Each call is the most digits an amount may have; u128 holds about 3.4 of them.
    let most = "9".repeat(38);
    let mut funded = 0;
    let refused = loop {
        match fund(&mut jp_operator, "1003", &most).await {
            Ok(_) => funded += 1,
            Err(refused) => break refused,
        }
        assert!(funded < 4, "u128 cannot hold four of them");
    };
    assert_eq!(funded, 3, "{refused:?}");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().starts_with("FF01"), "{refused:?}");
    for internal in ["ledger", "overflows_"] {
        assert!(!refused.message().contains(internal), "{refused:?}");
    }
    let before = p.snapshot().await;
    fund(&mut jp_operator, "1003", &most)
        .await
        .expect_err("still too large");
    assert_eq!(p.snapshot().await, before, "nothing moved");
    p.shutdown().await;
}

/// What a client presenting the TLS identity `stem` (under certs/) gets from the public
/// listener at `addr` when it asks to open an account: the handshake's refusal, as text.
async fn handshake_refusal(addr: std::net::SocketAddr, stem: &str) -> String {
    let identity = kakehashi_node::tls::TlsIdentity::load(
        &repo().join(format!("certs/{stem}.pem")),
        &repo().join(format!("certs/{stem}.key.pem")),
    )
    .expect("identity");
    let verifier = kakehashi_pki::tls::NodeServerCertVerifier::new(mra(), "JP").expect("verifier");
    let tls = tonic::transport::ClientTlsConfig::new()
        .domain_name("localhost")
        .identity(identity.tonic_identity());
    let connected = tonic::transport::Endpoint::from_shared(format!("https://{addr}"))
        .expect("uri")
        .tls_config_with_verifier(tls, std::sync::Arc::new(verifier))
        .expect("tls")
        .connect()
        .await;
    match connected {
        Ok(channel) => open(&mut PaymentsClient::new(channel), "1003", "KKHAJPJ0")
            .await
            .map(drop)
            .expect_err("an unrecognized client certificate is never served")
            .to_string(),
        Err(e) => format!("{e:?}"),
    }
}
