//! Who may see and do what on the public listener (issue 12), over real TLS: a bank sees only
//! its own accounts and payments, an anonymous caller nothing, the operator every account,
//! page after page; a payment is taken only from its debtor agent's connection; the operator
//! funds only customer accounts, under a ceiling, and names accounts by the instructions' rules.

use kakehashi_node::AccountKind;
use kakehashi_node::store::AccountMeta;
use kakehashi_proto::pb::payments_client::PaymentsClient;
use kakehashi_proto::pb::{self as pb, TransactionStatus};
use tonic::Code;
use tonic::transport::Channel;

use crate::support::*;

fn ids(balances: &[pb::AccountBalance]) -> Vec<String> {
    balances.iter().map(|b| b.account.clone()).collect()
}

async fn status_of(
    client: &mut PaymentsClient<Channel>,
    uetr: &str,
) -> Result<pb::PaymentStatusReport, tonic::Status> {
    client
        .get_payment_status(pb::PaymentStatusRequest { uetr: uetr.into() })
        .await
        .map(tonic::Response::into_inner)
}

async fn balances_of(
    client: &mut PaymentsClient<Channel>,
    accounts: &[&str],
) -> Result<Vec<pb::AccountBalance>, tonic::Status> {
    client
        .get_balances(pb::BalancesRequest {
            accounts: accounts.iter().map(|a| (*a).to_owned()).collect(),
            ..pb::BalancesRequest::default()
        })
        .await
        .map(|r| r.into_inner().balances)
}

/// Before issue 12, `GetBalances {}` without a client certificate listed every customer of the
/// node, and `GetPaymentStatus` answered anyone who knew a UETR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_caller_reads_neither_balances_nor_payments() {
    let mut p = pair().await;
    let alpha = bank("jp", "KKHAJPJ0");
    let uetr = new_uetr();
    let report = quote_and_submit(
        &mut p.jp_client,
        "SG",
        amount("JPY", "1000"),
        |q, a| jp_to_sg(&alpha, q, a),
        uetr,
    )
    .await;
    assert_eq!(report.transaction_status(), TransactionStatus::Acsc);

    let mut anonymous = client(p.jp.public_addr, "JP", None).await;
    let listing = anonymous
        .get_balances(pb::BalancesRequest::default())
        .await
        .expect_err("no identity, no balances");
    assert_eq!(listing.code(), Code::Unauthenticated, "{listing:?}");
    let one = balances_of(&mut anonymous, &["1001"])
        .await
        .expect_err("one");
    assert_eq!(one.code(), Code::Unauthenticated, "{one:?}");
    let status = status_of(&mut anonymous, &uetr.to_string())
        .await
        .expect_err("no identity, no payment");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    // Nor may it submit: a stranger cannot even probe how far an instruction would get.
    let q = quote(&mut anonymous, "SG", &amount("JPY", "1000")).await;
    let signed = instruction(&jp_to_sg(&alpha, q, amount("JPY", "1000")), new_uetr());
    let submitted = anonymous
        .submit_payment(pb::SubmitPaymentRequest {
            instruction: Some(signed),
        })
        .await
        .expect_err("no identity, no payment");
    assert_eq!(submitted.code(), Code::Unauthenticated, "{submitted:?}");
    p.shutdown().await;
}

/// A bank's listing holds exactly its own accounts; another bank's account asked by id is
/// NOT_FOUND in the words of an account that does not exist; the operator sees every account.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bank_sees_its_own_accounts_only_and_the_operator_sees_all() {
    let mut p = pair().await;
    let own = all_balances(&mut p.jp_client).await;
    assert_eq!(ids(&own), ["1001", "1002"]);
    assert!(own.iter().all(|b| b.owner_bic == "KKHAJPJ0"), "{own:?}");
    let mut beta = bank_client(p.jp.public_addr, "JP", "KKHBJPJ0").await;
    assert_eq!(ids(&all_balances(&mut beta).await), ["1101", "1102"]);

    let theirs = balances_of(&mut p.jp_client, &["1101"])
        .await
        .expect_err("another bank's account");
    let none = balances_of(&mut p.jp_client, &["1999"])
        .await
        .expect_err("no such account");
    assert_eq!(theirs.code(), Code::NotFound, "{theirs:?}");
    assert_eq!(
        theirs.message().replace("1101", "<id>"),
        none.message().replace("1999", "<id>"),
        "the same words: existence is not revealed"
    );
    let corridor = balances_of(&mut p.jp_client, &["9002"])
        .await
        .expect_err("a node account is no bank's");
    assert_eq!(corridor.code(), Code::NotFound, "{corridor:?}");

    let everything = ids(&all_balances(&mut p.jp_operator).await);
    for id in ["1001", "1002", "1101", "1102", "9001", "9002", "9003"] {
        assert!(everything.iter().any(|e| e == id), "{id} in {everything:?}");
    }
    p.shutdown().await;
}

/// A bank's connection takes only the instructions whose debtor agent it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_is_taken_only_from_its_debtor_agents_connection() {
    let mut p = pair().await;
    let before = p.snapshot().await;
    let beta = bank("jp", "KKHBJPJ0");
    let source = amount("JPY", "1000");
    let q = quote(&mut p.jp_client, "SG", &source).await;
    let payment = Payment {
        debtor_account: 1101,
        debtor_name: "Suzuki Yui",
        ..jp_to_sg(&beta, q, source)
    };
    let uetr = new_uetr();
    let signed = instruction(&payment, uetr);
    let refused = p
        .jp_client
        .submit_payment(pb::SubmitPaymentRequest {
            instruction: Some(signed.clone()),
        })
        .await
        .expect_err("KKHAJPJ0 submits KKHBJPJ0's instruction");
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    let operator = p
        .jp_operator
        .submit_payment(pb::SubmitPaymentRequest {
            instruction: Some(signed.clone()),
        })
        .await
        .expect_err("the operator submits no payment");
    assert_eq!(operator.code(), Code::PermissionDenied, "{operator:?}");
    assert_eq!(p.snapshot().await, before, "nothing moved");

    // The same instruction from its own bank settles, and the bank sees its status.
    let mut beta_client = bank_client(p.jp.public_addr, "JP", "KKHBJPJ0").await;
    let report = submit(&mut beta_client, signed).await;
    assert_eq!(report.transaction_status(), TransactionStatus::Acsc);
    let seen = status_of(&mut beta_client, &uetr.to_string())
        .await
        .expect("its own payment");
    assert_eq!(seen.uetr, uetr.to_string());
    let hidden = status_of(&mut p.jp_client, &uetr.to_string())
        .await
        .expect_err("not KKHAJPJ0's");
    assert_eq!(hidden.code(), Code::NotFound, "{hidden:?}");
    status_of(&mut p.jp_operator, &uetr.to_string())
        .await
        .expect("the operator sees every payment");
    p.shutdown().await;
}

/// Before issue 12 `GetBalances {}` failed once a node had about 710 accounts: the answer
/// exceeded the message limit. Pages of at most `page_size` entries, each under the limit,
/// walk more than 10,000 accounts, each exactly once and in order, for the operator and for
/// the bank that holds them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balances_page_through_more_than_ten_thousand_accounts() {
    let mut p = pair().await;
    const MANY: u128 = 10_050;
    // Opened in bulk through the engine (the operator API would take one call per account).
    let accounts: Vec<(u128, AccountMeta, u128)> = (0..MANY)
        .map(|i| {
            (
                100_000 + i,
                AccountMeta {
                    kind: AccountKind::Customer,
                    owner_bic: Some("KKHBJPJ0".to_owned()),
                    name: format!("Customer number {i} with a name long enough to weigh"),
                    closed: false,
                },
                0,
            )
        })
        .collect();
    for chunk in accounts.chunks(2000) {
        p.jp.engine()
            .genesis(chunk.to_vec())
            .await
            .expect("accounts opened");
    }

    // The operator: every page is under the message limit, the default page size applies.
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = p
            .jp_operator
            .get_balances(pb::BalancesRequest {
                page_token: std::mem::take(&mut token),
                ..pb::BalancesRequest::default()
            })
            .await
            .expect("a page")
            .into_inner();
        pages += 1;
        assert!(page.balances.len() <= 500, "{}", page.balances.len());
        seen.extend(ids(&page.balances));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    // Besides them, the nine accounts of jp.toml: four customers, funding, and a corridor and a
    // liquidity account for each of its two peers.
    let total = usize::try_from(MANY).expect("small") + 9;
    assert_eq!(seen.len(), total, "every account once");
    let numbers: Vec<u128> = seen.iter().map(|s| s.parse().expect("id")).collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "in id order");
    assert!(pages >= total / 500, "{pages} pages");

    // The holding bank, with its own page size: its 10,052 accounts and nobody else's.
    let mut beta = bank_client(p.jp.public_addr, "JP", "KKHBJPJ0").await;
    let mut count = 0;
    let mut token = String::new();
    loop {
        let page = beta
            .get_balances(pb::BalancesRequest {
                page_size: 1000,
                page_token: std::mem::take(&mut token),
                ..pb::BalancesRequest::default()
            })
            .await
            .expect("a page")
            .into_inner();
        assert!(page.balances.len() <= 1000);
        assert!(page.balances.iter().all(|b| b.owner_bic == "KKHBJPJ0"));
        count += page.balances.len();
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(count, usize::try_from(MANY).expect("small") + 2);

    // A page size above the maximum and a token the node did not issue are FF01.
    for request in [
        pb::BalancesRequest {
            page_size: 1001,
            ..pb::BalancesRequest::default()
        },
        pb::BalancesRequest {
            page_token: "not-a-token".into(),
            ..pb::BalancesRequest::default()
        },
    ] {
        let refused = beta.get_balances(request).await.expect_err("refused");
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert!(refused.message().starts_with("FF01"), "{refused:?}");
    }
    p.shutdown().await;
}

/// Before issue 12 the operator could fund corridor and liquidity accounts, fund without a
/// ceiling, and name accounts with NUL and bidirectional-override characters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_funds_customers_only_under_the_ceiling_with_clean_names() {
    let mut p = pair().await;
    let before = p.snapshot().await;
    for account in ["9002", "9003"] {
        let refused = fund(&mut p.jp_operator, account, "1000")
            .await
            .expect_err("a node account");
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert!(refused.message().contains("only customer"), "{refused:?}");
    }
    // The devnet's ceiling is [limits] max_payment, 5,000,000 JPY.
    let refused = fund(&mut p.jp_operator, "1001", "5000001")
        .await
        .expect_err("above the ceiling");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("max_funding"), "{refused:?}");
    for name in ["Aoki\0Kenji", "Sato \u{202E}KK"] {
        let refused = p
            .jp_operator
            .open_account(pb::OpenAccountRequest {
                account: "1003".into(),
                owner_bic: "KKHAJPJ0".into(),
                name: name.into(),
            })
            .await
            .expect_err("a name instructions refuse");
        assert_eq!(
            refused.code(),
            Code::InvalidArgument,
            "{name:?}: {refused:?}"
        );
    }
    assert_eq!(p.snapshot().await, before, "nothing moved or opened");
    fund(&mut p.jp_operator, "1001", "5000000")
        .await
        .expect("at the ceiling");
    p.shutdown().await;
}

/// Before issue 12 the devnet's operator credential was the node's own relay TLS key. A node
/// now refuses to start when `[admin] operator_certs` names a certificate that is not an
/// operator's (its node TLS or a bank's), naming the key and the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_an_operator_entry_that_is_no_operator_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    for stem in ["jp/node/tls", "jp/banks/KKHAJPJ0-tls", "sg/operator"] {
        let ports = Ports::new();
        let mut config = config("JP", dir.path(), &ports);
        config.admin.operator_certs = vec![repo().join(format!("certs/{stem}.pem"))];
        let refused = match kakehashi_node::node::Node::start(config).await {
            Ok(node) => {
                node.shutdown().await.expect("shutdown");
                panic!("{stem} was taken as an operator certificate");
            }
            Err(e) => e.to_string(),
        };
        assert!(
            refused.contains("admin.operator_certs"),
            "{stem}: {refused}"
        );
        assert!(refused.contains(stem), "{stem}: {refused}");
    }
}
