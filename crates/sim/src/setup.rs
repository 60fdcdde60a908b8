//! What a run simulates, read once per batch: the nodes of the configurations it is given
//! (every node's jurisdiction comes from its file; no code here names one), each with a
//! corridor to every other, under an agreement in which every party recognizes every other.
//!
//! # The derived agreement and corridors
//!
//! The committed agreement (certs/mra.toml) and configurations already let every pair of the
//! committed nodes relay (JP, SG and TH recognize each other and have corridors to each
//! other), and then the derivation changes nothing. Other configurations or agreements may
//! not: an agreement in which a party has acceded one way, or nodes without a corridor between
//! them. The simulator wants every direction between every pair, so at set-up it derives, in
//! memory and without writing anything:
//!
//! - **an agreement**: the committed text, without its signatures, in which every pair of the
//!   loaded jurisdictions recognizes each other for node TLS, payment signing and receipt
//!   signing (purposes added to an existing row, or a new row with the validity and level of
//!   the first existing one), signed again by every party with the committed development
//!   authority keys (`mra-keys/` beside the agreement, public by design) and verified, as
//!   `kakehashi mra sign` would; the committed file is not changed;
//! - **corridors**: for each pair without one, a `[[peer]]` on each side (the other node's relay
//!   address), a corridor and a liquidity account (the next free ids; the liquidity account
//!   opens with the balance of the node's first configured one) and a mid rate, the inverse
//!   of the peer's mid for this currency when it has one, else a cross rate through the mids
//!   that are configured, so that each side's rate band accepts the other's quotes. A
//!   configured `[[peer]]` whose node is not simulated is left out.
//!
//! Each derived configuration goes through the node's own parsing and validation
//! ([`Config::parse`]), and each node is assembled by [`Assembly::read_under`], the code
//! `Node::start` uses, under the derived agreement.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey as _;
use kakehashi_node::AccountKind;
use kakehashi_node::config::{Config, Peer};
use kakehashi_node::node::Assembly;
use kakehashi_pki::UnixTime;
use kakehashi_pki::mra::{Mra, MraError};
use kakehashi_protocol::bank::Bank;
use kakehashi_protocol::money::Currency;
use toml::{Table, Value};

use crate::world::{EPOCH_SECS, SimError};

/// The purposes every pair of simulated jurisdictions recognizes each other for.
const PURPOSES: [&str; 3] = ["node-tls", "payment-signing", "receipt-signing"];

/// A bank of the workload and the customer accounts it holds.
#[derive(Clone, Debug)]
pub(crate) struct Holder {
    pub(crate) bank: Bank,
    pub(crate) accounts: Vec<u128>,
}

/// One node as a run starts it.
#[derive(Clone, Debug)]
pub(crate) struct NodeSetup {
    /// Its jurisdiction (from its configuration).
    pub(crate) code: String,
    /// Its configuration with the derived corridors.
    pub(crate) config: Config,
    /// Its engine's parts but storage, clock and network, under the derived agreement.
    pub(crate) assembly: Assembly,
    /// Its ledger currency.
    pub(crate) currency: &'static Currency,
    /// The banks holding its customer accounts.
    pub(crate) banks: Vec<Holder>,
}

/// The simulated nodes, read and derived once and shared by every seed of a batch.
#[derive(Clone, Debug)]
pub struct Setup {
    pub(crate) nodes: Vec<NodeSetup>,
    /// The derived agreement (see the module documentation).
    pub(crate) mra: Arc<Mra>,
}

impl Setup {
    /// Every `*.toml` in `dir`, in file-name order (the devnet directory holds one per node).
    pub fn from_dir(dir: &Path) -> Result<Self, SimError> {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| SimError::Setup(format!("{}: {e}", dir.display())))?;
        let mut files = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|e| SimError::Setup(format!("{}: {e}", dir.display())))?
                .path();
            if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        Self::load(&files)
    }

    /// The nodes of the configuration files `files` (at least two, of different
    /// jurisdictions, naming one agreement), with the derived agreement and corridors.
    pub fn load(files: &[PathBuf]) -> Result<Self, SimError> {
        let mut configs = Vec::new();
        for file in files {
            let config = Config::load(file).map_err(|e| setup(file, e))?;
            configs.push((file.clone(), config));
        }
        if configs.len() < 2 {
            return Err(SimError::Setup(format!(
                "the simulator needs at least two node configurations, got {}",
                configs.len()
            )));
        }
        for (i, (file, config)) in configs.iter().enumerate() {
            if configs[..i]
                .iter()
                .any(|(_, c)| c.jurisdiction == config.jurisdiction)
            {
                return Err(SimError::Setup(format!(
                    "{}: a second node for {}",
                    file.display(),
                    config.jurisdiction
                )));
            }
        }
        let agreement = configs[0].1.mra.clone();
        let same = |path: &Path| {
            path.canonicalize()
                .ok()
                .zip(agreement.canonicalize().ok())
                .is_some_and(|(a, b)| a == b)
        };
        if let Some((file, _)) = configs.iter().find(|(_, c)| !same(&c.mra)) {
            return Err(SimError::Setup(format!(
                "{}: names another agreement than {}",
                file.display(),
                agreement.display()
            )));
        }
        let codes: Vec<String> = configs
            .iter()
            .map(|(_, c)| c.jurisdiction.clone())
            .collect();
        let mra = Arc::new(derive_agreement(&agreement, &codes)?);
        let currencies: BTreeMap<String, String> = mra
            .jurisdictions()
            .iter()
            .map(|j| (j.code.clone(), j.currency.clone()))
            .collect();
        let rates = Rates::of(&configs, &currencies)?;
        let certs = agreement
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .to_owned();
        let mut nodes = Vec::new();
        for (file, config) in &configs {
            let config = with_corridors(file, config, &configs, &currencies, &rates)?;
            let assembly = Assembly::read_under(
                &config,
                Arc::clone(&mra),
                UnixTime(i64::try_from(EPOCH_SECS).unwrap_or(0)),
            )
            .map_err(|e| setup(file, e))?;
            nodes.push(NodeSetup {
                code: config.jurisdiction.clone(),
                currency: assembly.currency,
                banks: holders(&certs, &config)?,
                assembly,
                config,
            });
        }
        Ok(Self { nodes, mra })
    }

    /// The simulated jurisdictions, in the order of their configuration files.
    pub fn jurisdictions(&self) -> Vec<&str> {
        self.nodes.iter().map(|n| n.code.as_str()).collect()
    }

    /// The derived agreement every simulated node runs under.
    pub fn agreement(&self) -> &Mra {
        &self.mra
    }
}

fn setup(file: &Path, error: impl std::fmt::Display) -> SimError {
    SimError::Setup(format!("{}: {error}", file.display()))
}

/// The agreement at `path` with every pair of `codes` recognizing each other for
/// [`PURPOSES`], signed by every party with the authority keys in `mra-keys/` beside it.
fn derive_agreement(path: &Path, codes: &[String]) -> Result<Mra, SimError> {
    let text = std::fs::read_to_string(path).map_err(|e| setup(path, e))?;
    let mut table: Table = toml::from_str(&text).map_err(|e| setup(path, e))?;
    table.remove("signature");
    let Value::Array(rows) = table
        .entry("recognition")
        .or_insert_with(|| Value::Array(Vec::new()))
    else {
        return Err(setup(path, "`recognition` is not an array of tables"));
    };
    let template = rows.first().and_then(Value::as_table).cloned();
    for relying in codes {
        for issuing in codes.iter().filter(|c| *c != relying) {
            let existing = rows.iter_mut().filter_map(Value::as_table_mut).find(|row| {
                row.get("relying").and_then(Value::as_str) == Some(relying.as_str())
                    && row.get("issuing").and_then(Value::as_str) == Some(issuing.as_str())
            });
            let row = match existing {
                Some(row) => row,
                None => {
                    let mut row = template.clone().ok_or_else(|| {
                        setup(path, "no recognition row to take validity and level from")
                    })?;
                    row.insert(
                        "id".into(),
                        format!("{relying}-recognizes-{issuing}").into(),
                    );
                    row.insert("relying".into(), relying.as_str().into());
                    row.insert("issuing".into(), issuing.as_str().into());
                    row.insert("purposes".into(), Value::Array(Vec::new()));
                    rows.push(Value::Table(row));
                    rows.last_mut()
                        .and_then(Value::as_table_mut)
                        .ok_or_else(|| setup(path, "a recognition row vanished"))?
                }
            };
            let Some(Value::Array(purposes)) = row.get_mut("purposes") else {
                return Err(setup(path, "a recognition row without purposes"));
            };
            for purpose in PURPOSES {
                if !purposes.iter().any(|p| p.as_str() == Some(purpose)) {
                    purposes.push(purpose.into());
                }
            }
        }
    }
    let derived = toml::to_string(&table).map_err(|e| setup(path, e))?;
    let base = path.parent().unwrap_or_else(|| Path::new(".")).to_owned();
    let mut read = |reference: &str| {
        let file = base.join(reference);
        std::fs::read(&file).map_err(|cause| MraError::Read { path: file, cause })
    };
    let mut mra = Mra::parse_with(&derived, path, &mut read).map_err(|e| setup(path, e))?;
    let parties: Vec<String> = mra.jurisdictions().iter().map(|j| j.code.clone()).collect();
    for code in parties {
        let key_file = base
            .join("mra-keys")
            .join(format!("{}.key.pem", code.to_lowercase()));
        let pem = std::fs::read_to_string(&key_file).map_err(|e| setup(&key_file, e))?;
        let key = SigningKey::from_pkcs8_pem(&pem).map_err(|e| setup(&key_file, e))?;
        mra.sign(&code, &key).map_err(|e| setup(&key_file, e))?;
    }
    mra.verify_signatures().map_err(|e| setup(path, e))?;
    Ok(mra)
}

/// What one unit of each currency is worth in one of them: every configured mid rate (and its
/// inverse) is an edge, walked breadth-first from the first node's currency.
struct Rates {
    value: BTreeMap<String, f64>,
    /// Configured mids: (from currency, to currency) → units of `to` per unit of `from`.
    mids: BTreeMap<(String, String), f64>,
}

impl Rates {
    fn of(
        configs: &[(PathBuf, Config)],
        currencies: &BTreeMap<String, String>,
    ) -> Result<Self, SimError> {
        let mut mids = BTreeMap::new();
        for (file, config) in configs {
            let own = currency_of(currencies, &config.jurisdiction, file)?;
            for (to, rate) in &config.fx.mid {
                let rate: f64 = rate.as_str().parse().map_err(|e| setup(file, e))?;
                if rate > 0.0 {
                    mids.insert((own.clone(), to.clone()), rate);
                }
            }
        }
        let mut value = BTreeMap::new();
        let start = currency_of(currencies, &configs[0].1.jurisdiction, &configs[0].0)?;
        value.insert(start.clone(), 1.0);
        let mut queue = VecDeque::from([start]);
        while let Some(from) = queue.pop_front() {
            let worth = value[&from];
            for ((a, b), rate) in &mids {
                // One unit of `a` is `rate` units of `b`.
                let next = if *a == from {
                    (b, worth / rate)
                } else if *b == from {
                    (a, worth * rate)
                } else {
                    continue;
                };
                if !value.contains_key(next.0) {
                    value.insert(next.0.clone(), next.1);
                    queue.push_back(next.0.clone());
                }
            }
        }
        Ok(Self { value, mids })
    }

    /// Units of `to` per unit of `from`, as a configuration decimal.
    fn mid(&self, from: &str, to: &str) -> Option<String> {
        let rate = match self.mids.get(&(to.to_owned(), from.to_owned())) {
            Some(inverse) => 1.0 / inverse,
            None => self.value.get(from)? / self.value.get(to)?,
        };
        decimal(rate)
    }
}

/// `x` with eight significant digits as a plain decimal ("0.23148148", "26.597222").
fn decimal(x: f64) -> Option<String> {
    if !(x.is_finite() && x > 0.0) {
        return None;
    }
    let magnitude = x.log10().floor();
    let fraction = usize::try_from((7.0 - magnitude).max(0.0) as i64)
        .unwrap_or(0)
        .min(12);
    let text = format!("{x:.fraction$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    };
    (text != "0").then_some(text)
}

fn currency_of(
    currencies: &BTreeMap<String, String>,
    code: &str,
    file: &Path,
) -> Result<String, SimError> {
    currencies
        .get(code)
        .cloned()
        .ok_or_else(|| setup(file, format!("{code} is not a party to the agreement")))
}

/// `config` with a corridor to every other node of `configs` it has none to (see the module
/// documentation), parsed and validated as the node would.
fn with_corridors(
    file: &Path,
    config: &Config,
    configs: &[(PathBuf, Config)],
    currencies: &BTreeMap<String, String>,
    rates: &Rates,
) -> Result<Config, SimError> {
    let text = std::fs::read_to_string(file).map_err(|e| setup(file, e))?;
    let mut table: Table = toml::from_str(&text).map_err(|e| setup(file, e))?;
    let own = currency_of(currencies, &config.jurisdiction, file)?;
    let liquidity_opening = table
        .get("account")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_table)
        .find(|a| a.get("kind").and_then(Value::as_str) == Some(AccountKind::Liquidity.as_str()))
        .and_then(|a| a.get("opening_balance").cloned())
        .ok_or_else(|| setup(file, "no liquidity account to fund a derived corridor like"))?;
    let server_name = config
        .peers
        .first()
        .map_or_else(|| "localhost".to_owned(), Peer::server_name);
    // A corridor to a node that is not simulated has no one at its other end: it is left
    // out (its accounts stay, unused), as a node would run without that peer.
    if let Some(Value::Array(peers)) = table.get_mut("peer") {
        peers.retain(|peer| {
            let code = peer.get("jurisdiction").and_then(Value::as_str);
            configs
                .iter()
                .any(|(_, c)| Some(c.jurisdiction.as_str()) == code)
        });
    }
    let mut next_id = config.accounts.iter().map(|a| a.id).max().unwrap_or(0) + 1;
    for (_, other) in configs {
        let peer = &other.jurisdiction;
        if *peer == config.jurisdiction || config.peer(peer).is_some() {
            continue;
        }
        let theirs = currency_of(currencies, peer, file)?;
        let (corridor, liquidity) = (next_id, next_id + 1);
        next_id += 2;
        let mut link = Table::new();
        link.insert("jurisdiction".into(), peer.as_str().into());
        link.insert(
            "relay".into(),
            format!("https://{}", other.listen.relay).into(),
        );
        link.insert("server_name".into(), server_name.as_str().into());
        link.insert("corridor_account".into(), toml_id(corridor, file)?);
        link.insert("liquidity_account".into(), toml_id(liquidity, file)?);
        push(&mut table, "peer", link, file)?;
        let me = &config.jurisdiction;
        for (id, kind, name) in [
            (
                corridor,
                AccountKind::Corridor,
                format!("{me} -> {peer} corridor"),
            ),
            (
                liquidity,
                AccountKind::Liquidity,
                format!("{peer} -> {me} liquidity"),
            ),
        ] {
            let mut account = Table::new();
            account.insert("id".into(), toml_id(id, file)?);
            account.insert("kind".into(), kind.as_str().into());
            account.insert("name".into(), name.into());
            if kind == AccountKind::Liquidity {
                account.insert("opening_balance".into(), liquidity_opening.clone());
            }
            push(&mut table, "account", account, file)?;
        }
        if !config.fx.mid.contains_key(&theirs) {
            let rate = rates.mid(&own, &theirs).ok_or_else(|| {
                setup(
                    file,
                    format!("no configured rate connects {own} and {theirs}"),
                )
            })?;
            let mid = table
                .get_mut("fx")
                .and_then(Value::as_table_mut)
                .map(|fx| {
                    fx.entry("mid")
                        .or_insert_with(|| Value::Table(Table::new()))
                })
                .and_then(Value::as_table_mut)
                .ok_or_else(|| setup(file, "no [fx] table"))?;
            mid.insert(theirs, rate.into());
        }
    }
    let derived = toml::to_string(&table).map_err(|e| setup(file, e))?;
    Config::parse(&derived, file.parent().unwrap_or_else(|| Path::new(".")))
        .map_err(|e| setup(file, format!("with the derived corridors: {e}")))
}

fn toml_id(id: u128, file: &Path) -> Result<Value, SimError> {
    i64::try_from(id).map(Value::Integer).map_err(|_| {
        setup(
            file,
            format!("account id {id} does not fit the file format"),
        )
    })
}

/// Appends `item` to the array of tables `key`.
fn push(table: &mut Table, key: &str, item: Table, file: &Path) -> Result<(), SimError> {
    match table.entry(key).or_insert_with(|| Value::Array(Vec::new())) {
        Value::Array(items) => {
            items.push(Value::Table(item));
            Ok(())
        }
        _ => Err(setup(file, format!("`{key}` is not an array of tables"))),
    }
}

/// The banks of `config` (customer account owners) with their committed keys, from
/// `<certs>/<jurisdiction>/banks/<BIC>.pem` and `.key.pem` (the development PKI's layout,
/// certs/README.md).
fn holders(certs: &Path, config: &Config) -> Result<Vec<Holder>, SimError> {
    let mut by_bic: BTreeMap<String, Vec<u128>> = BTreeMap::new();
    for account in &config.accounts {
        if account.kind == AccountKind::Customer && !account.owner_bic.is_empty() {
            by_bic
                .entry(account.owner_bic.clone())
                .or_default()
                .push(account.id);
        }
    }
    let dir = certs.join(config.jurisdiction.to_lowercase()).join("banks");
    by_bic
        .into_iter()
        .map(|(bic, accounts)| {
            let bank = Bank::load(
                &dir.join(format!("{bic}.pem")),
                &dir.join(format!("{bic}.key.pem")),
            )
            .map_err(|e| SimError::Setup(e.to_string()))?;
            Ok(Holder { bank, accounts })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use kakehashi_pki::Purpose;

    use super::*;
    use crate::world::tests::setup;

    fn devnet() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../node/devnet")
    }

    /// Whether `relying` recognizes `issuing` for `purpose` in `mra`.
    fn recognizes(mra: &Mra, relying: &str, issuing: &str, purpose: Purpose) -> bool {
        mra.rows().iter().any(|row| {
            row.relying == relying && row.issuing == issuing && row.purposes.contains(&purpose)
        })
    }

    #[test]
    fn every_pair_relays_under_the_derived_agreement_and_the_committed_one_is_not_changed() {
        let setup = setup();
        let codes = setup.jurisdictions();
        assert_eq!(
            codes,
            ["JP", "SG", "TH"],
            "the devnet's nodes, from their files"
        );
        let committed_path = setup.nodes[0].config.mra.clone();
        let committed = Mra::load(&committed_path).expect("the committed agreement");
        committed.verify_signatures().expect("signed");
        // The derived agreement lets every pair relay, for every purpose, signed again by every
        // party.
        let derived = setup.agreement();
        derived.verify_signatures().expect("signed by every party");
        assert_eq!(derived.agreement_id(), committed.agreement_id());
        for relying in &codes {
            for issuing in codes.iter().filter(|c| *c != relying) {
                for purpose in [
                    Purpose::NodeTls,
                    Purpose::PaymentSigning,
                    Purpose::ReceiptSigning,
                ] {
                    assert!(
                        recognizes(derived, relying, issuing, purpose),
                        "{relying} recognizes {issuing} for {purpose:?}"
                    );
                }
            }
        }
        // The committed agreement already has every row: deriving added nothing to it.
        assert_eq!(derived.canonical_bytes(), committed.canonical_bytes());
        // Deriving wrote nothing: the committed file still reads as it did.
        let again = Mra::load(&committed_path).expect("the committed agreement");
        assert_eq!(again.canonical_bytes(), committed.canonical_bytes());
        assert_eq!(again.signature_statuses(), committed.signature_statuses());
    }

    #[test]
    fn an_agreement_a_party_acceded_to_one_way_is_completed() {
        // The committed agreement without the rows that recognize TH (TH recognizes JP and SG,
        // nobody recognizes TH), its anchors named by absolute path, beside the committed
        // authority keys, in a directory of its own.
        let certs = devnet()
            .join("../../../certs")
            .canonicalize()
            .expect("certs");
        let text = std::fs::read_to_string(certs.join("mra.toml")).expect("mra.toml");
        let unsigned = &text[..text.find("[[signature]]").expect("signed")];
        let marker = "[[recognition]]\n";
        let mut rows = unsigned.split(marker);
        let mut one_way = rows.next().expect("the parties").to_owned();
        for row in rows.filter(|row| !row.contains("issuing = \"TH\"\n")) {
            one_way.push_str(marker);
            one_way.push_str(row);
        }
        for code in ["jp", "sg", "th"] {
            one_way = one_way.replace(
                &format!("\"{code}/"),
                &format!("\"{}/{code}/", certs.display()),
            );
        }
        let dir = std::env::temp_dir().join(format!("kakehashi-sim-derive-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("mra-keys")).expect("mkdir");
        for code in ["jp", "sg", "th"] {
            let key = format!("mra-keys/{code}.key.pem");
            std::fs::copy(certs.join(&key), dir.join(&key)).expect("copy an authority key");
        }
        let path = dir.join("mra.toml");
        std::fs::write(&path, one_way).expect("write the agreement");
        let before = Mra::parse_with(
            &std::fs::read_to_string(&path).expect("read"),
            &path,
            &mut |r: &str| {
                std::fs::read(r).map_err(|cause| MraError::Read {
                    path: r.into(),
                    cause,
                })
            },
        )
        .expect("the one-way agreement parses");
        assert!(!recognizes(&before, "JP", "TH", Purpose::NodeTls));
        assert!(!recognizes(&before, "SG", "TH", Purpose::PaymentSigning));

        let codes = ["JP", "SG", "TH"].map(str::to_owned);
        let derived = derive_agreement(&path, &codes);
        let _ = std::fs::remove_dir_all(&dir);
        let derived = derived.expect("derived");
        derived.verify_signatures().expect("signed by every party");
        // The rows it adds are the committed ones: the same agreement, byte for byte.
        let committed = Mra::load(&certs.join("mra.toml")).expect("the committed agreement");
        assert_eq!(derived.canonical_bytes(), committed.canonical_bytes());
    }

    #[test]
    fn each_node_gets_a_corridor_to_every_other_with_consistent_mids() {
        let setup = setup();
        for node in &setup.nodes {
            let committed =
                Config::load(&devnet().join(format!("{}.toml", node.code.to_lowercase())))
                    .expect("committed configuration");
            for other in setup.nodes.iter().filter(|o| o.code != node.code) {
                let link = node.config.peer(&other.code).expect("a corridor");
                // A committed corridor is kept as it is.
                if let Some(kept) = committed.peer(&other.code) {
                    assert_eq!(
                        (link.corridor_account, link.liquidity_account),
                        (kept.corridor_account, kept.liquidity_account)
                    );
                }
                for id in [link.corridor_account, link.liquidity_account] {
                    assert!(node.config.account(id).is_some(), "{}: {id}", node.code);
                }
                // Each side's mid is within 10 bps of the inverse of the other's (the committed
                // JP and SG mids are 4 bps apart; a derived one is its peer's inverse), well
                // inside the rate band (100 bps) the receiver enforces.
                let mid = |from: &NodeSetup, to: &NodeSetup| -> f64 {
                    from.config.fx.mid[to.currency.alpha]
                        .as_str()
                        .parse()
                        .expect("decimal")
                };
                let product = mid(node, other) * mid(other, node);
                assert!(
                    (product - 1.0).abs() < 0.001,
                    "{} <-> {}: {product}",
                    node.code,
                    other.code
                );
            }
        }
    }

    #[test]
    fn a_corridor_to_a_node_not_simulated_is_left_out() {
        let setup = Setup::load(&[devnet().join("sg.toml"), devnet().join("th.toml")])
            .expect("SG and TH alone");
        assert_eq!(setup.jurisdictions(), ["SG", "TH"]);
        for node in &setup.nodes {
            let peers: Vec<&str> = node
                .config
                .peers
                .iter()
                .map(|p| p.jurisdiction.as_str())
                .collect();
            let other = if node.code == "SG" { "TH" } else { "SG" };
            assert_eq!(peers, [other], "{}: JP is not simulated", node.code);
        }
    }

    #[test]
    fn a_single_configuration_or_two_of_one_jurisdiction_is_refused() {
        let jp = devnet().join("jp.toml");
        let one = Setup::load(std::slice::from_ref(&jp)).expect_err("one node");
        assert!(one.to_string().contains("at least two"), "{one}");
        let twice = Setup::load(&[jp.clone(), jp]).expect_err("two JP nodes");
        assert!(
            twice.to_string().contains("a second node for JP"),
            "{twice}"
        );
    }

    #[test]
    fn decimals_are_plain_with_eight_significant_digits() {
        assert_eq!(decimal(1.0 / 4.32).as_deref(), Some("0.23148148"));
        assert_eq!(decimal(114.9 / 4.32).as_deref(), Some("26.597222"));
        assert_eq!(decimal(4.0).as_deref(), Some("4"));
        assert_eq!(decimal(0.0), None);
        assert_eq!(decimal(f64::NAN), None);
    }
}
