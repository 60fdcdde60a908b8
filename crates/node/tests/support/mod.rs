//! Shared by the node's integration tests: start JP/SG nodes from the devnet configurations on
//! free loopback ports and temporary data directories, connect as a participant over TLS, and
//! build signed instructions with the committed bank keys.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use kakehashi_node::config::{Config, Limits, RelayAddress};
use kakehashi_node::engine::{Clock as _, SystemClock};
use kakehashi_node::node::{Node, RunningNode};
use kakehashi_node::tls::{TlsIdentity, install_crypto_provider, relay_endpoint};
use kakehashi_pki::mra::Mra;
use kakehashi_pki::tls::NodeServerCertVerifier;
use kakehashi_pki::{UnixTime, pem};
use kakehashi_proto::SIGNING_DOMAIN_INSTRUCTION;
use kakehashi_proto::pb;
use kakehashi_proto::pb::payments_client::PaymentsClient;
use kakehashi_proto::pb::relay_client::RelayClient;
use kakehashi_protocol::instruction::{Uetr, to_timestamp};
use kakehashi_protocol::signed;
use prost::Message;
use tonic::Status;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

mod proxy;

pub(crate) use proxy::{
    PATIENCE, Proxy, all_answered, decided_but_held, jp_config_via, jp_to_sg_settles, proxy, until,
};

pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A loopback port free right now, below the kernel's ephemeral range (32768–60999 on Linux)
/// so no outgoing connection can take it before the node binds it, and never handed out twice
/// in one test process; the start is offset by the process id so concurrent test processes
/// rarely meet. (The e2e crate has the same allocator for its process-level tests.)
pub(crate) fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const FLOOR: u32 = 20_000;
    const SPAN: u32 = 12_000;
    let seed = std::process::id().wrapping_mul(7919);
    for _ in 0..SPAN {
        let port = FLOOR + seed.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN;
        let port = u16::try_from(port).expect("below 32768");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!(
        "no free port on 127.0.0.1 between {FLOOR} and {}",
        FLOOR + SPAN
    );
}

pub(crate) struct Ports {
    pub(crate) jp: [u16; 3],
    pub(crate) sg: [u16; 3],
}

impl Ports {
    pub(crate) fn new() -> Self {
        Self {
            jp: [free_port(), free_port(), free_port()],
            sg: [free_port(), free_port(), free_port()],
        }
    }
}

pub(crate) fn config(jurisdiction: &str, dir: &Path, ports: &Ports) -> Config {
    let (own, peer, peer_code) = match jurisdiction {
        "JP" => (ports.jp, ports.sg, "SG"),
        _ => (ports.sg, ports.jp, "JP"),
    };
    let file = repo().join(format!(
        "crates/node/devnet/{}.toml",
        jurisdiction.to_lowercase()
    ));
    Config::load(&file)
        .expect("devnet config")
        .with_data_dir(dir.join(jurisdiction.to_lowercase()))
        .with_ports(own[0], own[1], own[2])
        .with_peer_relay(peer_code, &format!("https://127.0.0.1:{}", peer[1]))
        .expect("peer relay address")
}

pub(crate) async fn start(jurisdiction: &str, dir: &Path, ports: &Ports) -> RunningNode {
    Node::start(config(jurisdiction, dir, ports))
        .await
        .unwrap_or_else(|e| panic!("{jurisdiction} node: {e}"))
}

pub(crate) fn mra() -> Arc<Mra> {
    Arc::new(Mra::load(&repo().join("certs/mra.toml")).expect("certs/mra.toml"))
}

/// A participant's connection to a node's public listener: server verified as a node of a
/// jurisdiction `relying` recognizes; optionally a client identity (a stem under certs/: a
/// bank's `<j>/banks/<BIC>-tls`, or `<j>/operator`).
pub(crate) async fn client(
    addr: SocketAddr,
    relying: &str,
    identity: Option<&str>,
) -> PaymentsClient<Channel> {
    PaymentsClient::new(channel(addr, relying, identity).await)
}

/// A bank as a participant: its signing key and chain (DER, leaf first).
pub(crate) struct Bank {
    pub(crate) bic: &'static str,
    pub(crate) key: SigningKey,
    pub(crate) chain: Vec<Vec<u8>>,
}

pub(crate) fn bank(jurisdiction: &str, bic: &'static str) -> Bank {
    let dir = repo().join("certs").join(jurisdiction).join("banks");
    let key_pem = std::fs::read_to_string(dir.join(format!("{bic}.key.pem"))).expect("key");
    let chain_pem = std::fs::read(dir.join(format!("{bic}.pem"))).expect("chain");
    Bank {
        bic,
        key: SigningKey::from_pkcs8_pem(&key_pem).expect("pkcs8"),
        chain: pem::blocks_or_der(&chain_pem, "CERTIFICATE").expect("pem"),
    }
}

pub(crate) fn now() -> UnixTime {
    SystemClock.now().1
}

pub(crate) struct Payment<'a> {
    pub(crate) bank: &'a Bank,
    pub(crate) debtor_account: u128,
    pub(crate) debtor_name: &'a str,
    pub(crate) creditor_bic: &'a str,
    pub(crate) creditor_account: u128,
    pub(crate) creditor_name: &'a str,
    pub(crate) quote: pb::Signed,
    pub(crate) amount: pb::ActiveCurrencyAndAmount,
}

/// The devnet's usual JP→SG payment: Aoki Kenji (1001, a customer of `bank`, normally
/// KKHAJPJ0) to Tan Wei Ming (2001 at KKHASGS0). Tests change single fields with struct update
/// syntax (`Payment { creditor_account: 2999, ..jp_to_sg(..) }`).
pub(crate) fn jp_to_sg<'a>(
    bank: &'a Bank,
    quote: pb::Signed,
    amount: pb::ActiveCurrencyAndAmount,
) -> Payment<'a> {
    Payment {
        bank,
        debtor_account: 1001,
        debtor_name: "Aoki Kenji",
        creditor_bic: "KKHASGS0",
        creditor_account: 2001,
        creditor_name: "Tan Wei Ming",
        quote,
        amount,
    }
}

/// The devnet's usual SG→JP payment: Nur Aisyah (2101 at KKHBSGS0) to Suzuki Yui (1101 at
/// KKHBJPJ0).
pub(crate) fn sg_to_jp<'a>(
    bank: &'a Bank,
    quote: pb::Signed,
    amount: pb::ActiveCurrencyAndAmount,
) -> Payment<'a> {
    Payment {
        bank,
        debtor_account: 2101,
        debtor_name: "Nur Aisyah",
        creditor_bic: "KKHBJPJ0",
        creditor_account: 1101,
        creditor_name: "Suzuki Yui",
        quote,
        amount,
    }
}

/// JP→TH (the third jurisdiction's tests): Aoki Kenji (1001 at KKHAJPJ0) to Siam Rice Export
/// Co (3002 at KKHATHB0).
pub(crate) fn jp_to_th<'a>(
    bank: &'a Bank,
    quote: pb::Signed,
    amount: pb::ActiveCurrencyAndAmount,
) -> Payment<'a> {
    Payment {
        creditor_bic: "KKHATHB0",
        creditor_account: 3002,
        creditor_name: "Siam Rice Export Co",
        ..jp_to_sg(bank, quote, amount)
    }
}

/// TH→JP: Somchai Jaidee (3001 at KKHATHB0) to Suzuki Yui (1101 at KKHBJPJ0).
pub(crate) fn th_to_jp<'a>(
    bank: &'a Bank,
    quote: pb::Signed,
    amount: pb::ActiveCurrencyAndAmount,
) -> Payment<'a> {
    Payment {
        debtor_account: 3001,
        debtor_name: "Somchai Jaidee",
        ..sg_to_jp(bank, quote, amount)
    }
}

/// Asks `client` for a quote of `source` towards `to`, signs the payment `order` makes of that
/// quote and amount, and submits it under `uetr`.
pub(crate) async fn quote_and_submit<'a>(
    client: &mut PaymentsClient<Channel>,
    to: &str,
    source: pb::ActiveCurrencyAndAmount,
    order: impl FnOnce(pb::Signed, pb::ActiveCurrencyAndAmount) -> Payment<'a>,
    uetr: Uetr,
) -> pb::PaymentStatusReport {
    let q = quote(client, to, &source).await;
    submit(client, instruction(&order(q, source), uetr)).await
}

/// `p` as a signed instruction under `uetr`, created now and expiring in five minutes.
pub(crate) fn instruction(p: &Payment<'_>, uetr: Uetr) -> pb::Signed {
    sign_payload(p.bank, instruction_body(p, uetr).encode_to_vec())
}

pub(crate) fn new_uetr() -> Uetr {
    Uetr::new_v4(&ring::rand::SystemRandom::new()).expect("randomness")
}

pub(crate) fn amount(currency: &str, value: &str) -> pb::ActiveCurrencyAndAmount {
    pb::ActiveCurrencyAndAmount {
        currency: currency.into(),
        value: value.into(),
    }
}

pub(crate) async fn quote(
    client: &mut PaymentsClient<Channel>,
    to: &str,
    source: &pb::ActiveCurrencyAndAmount,
) -> pb::Signed {
    client
        .get_quote(pb::QuoteRequest {
            counterparty_jurisdiction: to.into(),
            source_amount: Some(source.clone()),
        })
        .await
        .expect("quote")
        .into_inner()
}

pub(crate) async fn submit(
    client: &mut PaymentsClient<Channel>,
    signed: pb::Signed,
) -> pb::PaymentStatusReport {
    client
        .submit_payment(pb::SubmitPaymentRequest {
            instruction: Some(signed),
        })
        .await
        .expect("submit")
        .into_inner()
}

/// Every balance `client` may see (all of them for an operator), page after page.
pub(crate) async fn all_balances(client: &mut PaymentsClient<Channel>) -> Vec<pb::AccountBalance> {
    kakehashi_node::participant::balances(client, &[])
        .await
        .expect("balances")
}

/// FundAccount of `value` JPY into `account` (a JP node's operator call).
pub(crate) async fn fund(
    client: &mut PaymentsClient<Channel>,
    account: &str,
    value: &str,
) -> Result<pb::AccountBalance, Status> {
    client
        .fund_account(pb::FundAccountRequest {
            account: account.into(),
            amount: Some(amount("JPY", value)),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// Posted balance and pending debits of every account `client` may see (every account of the
/// node for an operator client), by account id.
pub(crate) async fn balances(
    client: &mut PaymentsClient<Channel>,
) -> BTreeMap<String, (String, String)> {
    all_balances(client)
        .await
        .into_iter()
        .map(|b| {
            (
                b.account,
                (
                    b.posted_balance.map(|a| a.value).unwrap_or_default(),
                    b.pending_debits.map(|a| a.value).unwrap_or_default(),
                ),
            )
        })
        .collect()
}

pub(crate) fn posted(map: &BTreeMap<String, (String, String)>, account: &str) -> String {
    map.get(account).map(|b| b.0.clone()).unwrap_or_default()
}

pub(crate) struct Pair {
    /// The nodes' data directories, removed when the pair is dropped.
    _dir: tempfile::TempDir,
    pub(crate) jp: RunningNode,
    pub(crate) sg: RunningNode,
    /// JP's public listener as bank KKHAJPJ0 (its participant-TLS identity).
    pub(crate) jp_client: PaymentsClient<Channel>,
    /// SG's public listener as bank KKHASGS0.
    pub(crate) sg_client: PaymentsClient<Channel>,
    /// JP's public listener as JP's operator: every account, the operator RPCs.
    pub(crate) jp_operator: PaymentsClient<Channel>,
    /// SG's public listener as SG's operator.
    pub(crate) sg_operator: PaymentsClient<Channel>,
}

/// The participant-TLS identity (stem under certs/) of bank `bic`: `<j>/banks/<BIC>-tls`, the
/// jurisdiction read off the BIC's country characters.
pub(crate) fn bank_tls(bic: &str) -> String {
    let country = bic.get(4..6).unwrap_or("JP").to_ascii_lowercase();
    format!("{country}/banks/{bic}-tls")
}

/// A client of the public listener at `addr` (of jurisdiction `relying`) as bank `bic`.
pub(crate) async fn bank_client(
    addr: SocketAddr,
    relying: &str,
    bic: &str,
) -> PaymentsClient<Channel> {
    client(addr, relying, Some(&bank_tls(bic))).await
}

/// A client of the public listener at `addr` as the operator of `relying`'s node.
pub(crate) async fn operator_client(addr: SocketAddr, relying: &str) -> PaymentsClient<Channel> {
    let stem = format!("{}/operator", relying.to_ascii_lowercase());
    client(addr, relying, Some(&stem)).await
}

pub(crate) async fn pair() -> Pair {
    pair_with(|_| {}).await
}

/// A pair whose configurations `edit` changes first (both of them).
pub(crate) async fn pair_with(edit: impl Fn(&mut Config)) -> Pair {
    let dir = tempfile::tempdir().expect("tempdir");
    let ports = Ports::new();
    let mut jp_config = config("JP", dir.path(), &ports);
    edit(&mut jp_config);
    let jp = Node::start(jp_config).await.expect("JP node");
    let mut sg_config = config("SG", dir.path(), &ports);
    edit(&mut sg_config);
    let sg = Node::start(sg_config).await.expect("SG node");
    let jp_client = bank_client(jp.public_addr, "JP", "KKHAJPJ0").await;
    let sg_client = bank_client(sg.public_addr, "SG", "KKHASGS0").await;
    let jp_operator = operator_client(jp.public_addr, "JP").await;
    let sg_operator = operator_client(sg.public_addr, "SG").await;
    Pair {
        _dir: dir,
        jp,
        sg,
        jp_client,
        sg_client,
        jp_operator,
        sg_operator,
    }
}

impl Pair {
    pub(crate) async fn snapshot(
        &mut self,
    ) -> (
        BTreeMap<String, (String, String)>,
        BTreeMap<String, (String, String)>,
    ) {
        (
            balances(&mut self.jp_operator).await,
            balances(&mut self.sg_operator).await,
        )
    }

    pub(crate) async fn shutdown(self) {
        self.jp.shutdown().await.expect("JP shutdown");
        self.sg.shutdown().await.expect("SG shutdown");
    }
}

/// A TLS channel to a node's public listener (as [`client`] builds it), for tests that speak
/// gRPC below the generated client (raw request bytes) or need several clients on one channel.
pub(crate) async fn channel(addr: SocketAddr, relying: &str, identity: Option<&str>) -> Channel {
    install_crypto_provider();
    let verifier = NodeServerCertVerifier::new(mra(), relying).expect("verifier");
    let mut tls = ClientTlsConfig::new().domain_name("localhost");
    if let Some(stem) = identity {
        let certs = repo().join("certs");
        let id = TlsIdentity::load(
            &certs.join(format!("{stem}.pem")),
            &certs.join(format!("{stem}.key.pem")),
        )
        .expect("identity");
        tls = tls.identity(id.tonic_identity());
    }
    Endpoint::from_shared(format!("https://{addr}"))
        .expect("uri")
        .tls_config_with_verifier(tls, Arc::new(verifier))
        .expect("tls")
        .connect()
        .await
        .expect("connect")
}

/// A relay client to `addr` presenting the node TLS identity `stem` (under certs/) and checking
/// the server as `relying` does.
pub(crate) async fn relay_client_as(
    stem: &str,
    relying: &str,
    addr: SocketAddr,
) -> RelayClient<Channel> {
    let certs = repo().join("certs");
    let identity = TlsIdentity::load(
        &certs.join(format!("{stem}.pem")),
        &certs.join(format!("{stem}.key.pem")),
    )
    .expect("identity");
    let address = RelayAddress {
        uri: format!("https://{addr}").parse().expect("uri"),
        server_name: "localhost".to_owned(),
    };
    let endpoint = relay_endpoint(
        relying,
        &address,
        &identity,
        mra(),
        relying,
        &Limits::default(),
    )
    .expect("endpoint");
    let channel = endpoint
        .connect()
        .await
        .expect("the handshake succeeds: the caller's chain is recognized for node TLS");
    RelayClient::new(channel)
}

/// Prepare of `instruction` on `relay`.
pub(crate) async fn prepare(
    relay: &mut RelayClient<Channel>,
    instruction: &pb::Signed,
) -> Result<pb::RelayDecision, Status> {
    relay
        .prepare(pb::PrepareRequest {
            instruction: Some(instruction.clone()),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// The unsigned body [`instruction`] would sign, for tests that alter a field first.
pub(crate) fn instruction_body(p: &Payment<'_>, uetr: Uetr) -> pb::CreditTransferInstruction {
    let t = now();
    pb::CreditTransferInstruction {
        uetr: uetr.to_string(),
        end_to_end_id: format!("E2E-{}", &uetr.to_string()[..8]),
        instruction_id: format!("I-{}", &uetr.to_string()[..8]),
        creation_date_time: Some(to_timestamp(t)),
        expiry_date_time: Some(to_timestamp(UnixTime(t.0 + 300))),
        interbank_settlement_amount: Some(p.amount.clone()),
        charge_bearer: "SHAR".into(),
        debtor_agent_bic: p.bank.bic.into(),
        debtor_account: p.debtor_account.to_string(),
        debtor_name: p.debtor_name.into(),
        creditor_agent_bic: p.creditor_bic.into(),
        creditor_account: p.creditor_account.to_string(),
        creditor_name: p.creditor_name.into(),
        remittance_information: "invoice 42".into(),
        quote: Some(p.quote.clone()),
    }
}

/// `payload` signed by `bank` in the instruction domain, whatever it holds.
pub(crate) fn sign_payload(bank: &Bank, payload: Vec<u8>) -> pb::Signed {
    signed::sign(SIGNING_DOMAIN_INSTRUCTION, payload, &bank.key, &bank.chain)
}

/// Polls `GetPaymentStatus` until the payment leaves PDNG (bounded: 10 s).
pub(crate) async fn settled_status(
    client: &mut PaymentsClient<Channel>,
    uetr: &str,
) -> pb::PaymentStatusReport {
    for _ in 0..100 {
        let status = client
            .get_payment_status(pb::PaymentStatusRequest { uetr: uetr.into() })
            .await
            .expect("status")
            .into_inner();
        if status.transaction_status() != pb::TransactionStatus::Pdng {
            return status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("payment {uetr} still PDNG after 10 s");
}

/// Writes `dir/mra.toml`: the committed agreement, unsigned, with anchor and CRL paths made
/// absolute and `edit` applied to its text, then signed again by every party with the
/// committed dev keys (certs/mra-keys/). Panics unless the result verifies.
pub(crate) fn agreement_variant(dir: &Path, edit: impl FnOnce(String) -> String) -> PathBuf {
    let certs = repo().join("certs").canonicalize().expect("certs dir");
    let text = std::fs::read_to_string(certs.join("mra.toml")).expect("certs/mra.toml");
    let unsigned = &text[..text.find("[[signature]]").expect("signed agreement")];
    let mut text = unsigned.to_owned();
    // Anchor and CRL paths are relative to the agreement's file; this copy lives elsewhere.
    for code in ["jp", "sg", "th"] {
        text = text.replace(
            &format!("\"{code}/"),
            &format!("\"{}/{code}/", certs.display()),
        );
    }
    let text = edit(text);
    let path = dir.join("mra.toml");
    std::fs::write(&path, text).expect("write agreement");
    let mut mra = Mra::load(&path).expect("the edited agreement parses");
    assert!(
        mra.verify_signatures().is_err(),
        "unsigned until every party signs"
    );
    let parties: Vec<String> = mra.jurisdictions().iter().map(|j| j.code.clone()).collect();
    for code in parties {
        let pem = std::fs::read_to_string(
            certs.join(format!("mra-keys/{}.key.pem", code.to_lowercase())),
        )
        .expect("authority key");
        let key = SigningKey::from_pkcs8_pem(&pem).expect("pkcs8");
        mra.sign(&code, &key).expect("sign");
    }
    mra.save_signatures().expect("save signatures");
    Mra::load(&path)
        .expect("reload")
        .verify_signatures()
        .expect("signed by every party");
    path
}

/// Agreement `text` (unsigned) without the recognition rows whose issuing party is `issuing`:
/// the committed agreement has a row for every pair of parties, so a test that needs a party
/// nobody recognizes takes them out ([`agreement_variant`] signs the result again).
pub(crate) fn without_rows_recognizing(text: &str, issuing: &str) -> String {
    let marker = "[[recognition]]\n";
    let mut rows = text.split(marker);
    let mut kept = rows.next().unwrap_or_default().to_owned();
    let mut dropped = 0;
    for row in rows {
        if row.contains(&format!("issuing = \"{issuing}\"\n")) {
            dropped += 1;
        } else {
            kept.push_str(marker);
            kept.push_str(row);
        }
    }
    assert!(dropped > 0, "no row recognizes {issuing}");
    kept
}

/// The body of `GET /metrics` on `addr` over plain HTTP/1.1, without an Accept header (the
/// Prometheus text format; the samples are the same in both formats).
pub(crate) async fn scrape_metrics(addr: SocketAddr) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("response");
    response
}

/// The value of the sample line that starts with `series` followed by a space, if any.
pub(crate) fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Submits `signed` to the public listener at `addr` (of jurisdiction `relying`) over a
/// connection of the bank the instruction names as debtor agent, as that bank would: a node
/// takes an instruction only from its debtor agent's participant-TLS connection.
pub(crate) async fn submit_as(
    addr: SocketAddr,
    relying: &str,
    signed: pb::Signed,
) -> pb::PaymentStatusReport {
    let body = pb::CreditTransferInstruction::decode(signed.payload.as_slice())
        .expect("an instruction payload");
    let mut client = bank_client(addr, relying, &body.debtor_agent_bic).await;
    submit(&mut client, signed).await
}

/// `signed`'s instruction with `edit` applied to the payload, under the same signature.
pub(crate) fn edited(
    signed: &pb::Signed,
    edit: impl FnOnce(&mut pb::CreditTransferInstruction),
) -> Vec<u8> {
    let mut body =
        pb::CreditTransferInstruction::decode(signed.payload.as_slice()).expect("instruction");
    edit(&mut body);
    body.encode_to_vec()
}
