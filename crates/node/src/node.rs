//! Assembling and running a node: configuration in, three listeners, a ledger, a payment store,
//! a settlement engine and its recovery loop out.
//!
//! Start-up order matters for recovery: the ledger and the store are opened (and checked: a
//! node refuses books that fail its start-up checks) and the genesis accounts made sure of
//! before anything listens, and the recovery loop starts with the
//! servers, so payments left in doubt by a crash are resolved as soon as the peer answers.
//!
//! A stop is graceful ([`RunningNode::shutdown`]): the node takes no new payment, keeps serving
//! everything else (relay calls included, so that the peer's payments in flight end too), waits
//! at most `[limits] drain_secs` for its own payments in flight, then stops recovery and the
//! listeners and closes the ledger. Only what is still unanswered is left to recovery.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use kakehashi_ledger::{Ledger, Options};
use kakehashi_pki::mra::Mra;
use kakehashi_pki::{Purpose, UnixTime, pem};
use kakehashi_proto::pb::relay_client::RelayClient;
use kakehashi_proto::{SIGNING_DOMAIN_RECEIPT, pb};
use kakehashi_protocol::money::{self, Currency, Rate};
use kakehashi_protocol::reason::Rejection;
use kakehashi_protocol::signed;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::AccountKind;
use crate::config::{self, Config, PostgresStorage, StorageBackend};
use crate::engine::{
    Books, Clock, Engine, EngineError, EngineLimits, EngineParts, Entropy, FailoverPeer, GrpcPeer,
    PeerLink, PeerTransport, PgBooks, PgHandle, RECOVERY_BACKOFF_INITIAL, RECOVERY_BACKOFF_MAX,
    RecoveryLimits, Sanctions, SledBooks, SystemClock, SystemEntropy,
};
use crate::metrics::Metrics;
use crate::screening::{ListEntry, ListError, ListSource, Reloaded};
use crate::server::{self, ServeError};
use crate::service::{PaymentsService, RelayService, StreamLimits};
use crate::store::{AccountMeta, Store, StoreError};
use crate::tls::{self, TlsIdentity};

/// How long a stopping node waits for the last connection tasks to drop their copies of the
/// engine before closing the ledger and the payment store. They are dropping already (the
/// listeners have stopped and every connection is closed), so this is a race of milliseconds;
/// the bound only keeps a stuck task from holding up the stop.
const ENGINE_RELEASE_WAIT: Duration = Duration::from_secs(5);

/// How often the recovery loop looks for payments in doubt. Short, because a payment in doubt
/// holds its debtor's funds reserved; each pass costs one store scan when nothing is in doubt,
/// and a peer that does not answer is left alone for its backoff rather than asked each time.
pub const RECOVERY_INTERVAL: Duration = Duration::from_secs(2);

/// Why a node could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The agreement does not load or verify.
    #[error("mutual-recognition agreement {path}: {message}")]
    Mra {
        /// The agreement file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A key or certificate file is unusable.
    #[error("{what} {path}: {message}")]
    Key {
        /// Which file.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The data directory is unusable.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The ledger failed to open or close.
    #[error("ledger: {0}")]
    Ledger(#[from] kakehashi_ledger::Error),
    /// The PostgreSQL ledger (`[storage] backend = "postgres"`) failed to open or close.
    #[error(
        "ledger in PostgreSQL schema {schema}: {source}. Check [storage] url and that the server \
         runs; to see the books, run `kakehashi ledger audit --config <this node's TOML>`"
    )]
    Postgres {
        /// The node's schema.
        schema: String,
        /// The ledger's error.
        #[source]
        source: Box<kakehashi_ledger_pg::Error>,
    },
    /// The ledger or the payment store fails the start-up checks (a record that does not
    /// decode or does not match its hash, a checkpoint that does not verify, a read error):
    /// the node refuses to serve those books. One message names the directory and the fix.
    #[error(
        "the {what} in {path} fails the node's start-up checks, so the node will not serve \
         it: {detail}. Restore {path} from a backup; to see the damage, run `{inspect}`"
    )]
    Books {
        /// "ledger" or "payment store".
        what: &'static str,
        /// Its directory.
        path: PathBuf,
        /// What the check found.
        detail: String,
        /// The command that shows the damage.
        inspect: String,
    },
    /// Another process holds the database's lock, most likely a running node; only this error
    /// says so.
    #[error(
        "the {what} in {path} is held by another process (a running node?): stop it first, or \
         use another data directory"
    )]
    Locked {
        /// "ledger" or "payment store".
        what: &'static str,
        /// Its directory.
        path: PathBuf,
    },
    /// The payment store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine failed (genesis).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// TLS set-up failed.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// A listener failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// A task was lost.
    #[error("internal task failed: {0}")]
    Task(String),
}

/// A running node.
#[derive(Debug)]
pub struct RunningNode {
    /// Its jurisdiction.
    pub jurisdiction: String,
    /// Where Payments (and health, reflection) listen.
    pub public_addr: SocketAddr,
    /// Where Relay listens.
    pub relay_addr: SocketAddr,
    /// Where GET /metrics answers.
    pub metrics_addr: Option<SocketAddr>,
    engine: Arc<Engine>,
    /// Stops the listeners.
    stop: watch::Sender<bool>,
    /// Stops the recovery loop.
    stop_recovery: watch::Sender<bool>,
    /// Longest wait for the payments in flight at a stop (`[limits] drain_secs`).
    drain: Duration,
    server: JoinHandle<Result<(), ServeError>>,
    recovery: JoinHandle<()>,
    /// Reloads the sanctions list on each SIGHUP; aborted at shutdown.
    hangup: JoinHandle<()>,
}

/// Starts nodes.
#[derive(Debug)]
pub struct Node;

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, NodeError> {
    std::fs::read(path).map_err(|e| NodeError::Key {
        what,
        path: path.to_owned(),
        message: e.to_string(),
    })
}

fn chain_der(what: &'static str, path: &Path) -> Result<Vec<Vec<u8>>, NodeError> {
    let bytes = read(what, path)?;
    let chain = pem::blocks_or_der(&bytes, "CERTIFICATE").map_err(|message| NodeError::Key {
        what,
        path: path.to_owned(),
        message,
    })?;
    if chain.is_empty() {
        return Err(NodeError::Key {
            what,
            path: path.to_owned(),
            message: "no CERTIFICATE block".into(),
        });
    }
    Ok(chain)
}

fn signing_key(path: &Path) -> Result<SigningKey, NodeError> {
    let bytes = read("signing key", path)?;
    let text = String::from_utf8(bytes).map_err(|_| NodeError::Key {
        what: "signing key",
        path: path.to_owned(),
        message: "not PEM text".into(),
    })?;
    SigningKey::from_pkcs8_pem(&text).map_err(|e| NodeError::Key {
        what: "signing key",
        path: path.to_owned(),
        message: format!("not an Ed25519 PKCS#8 key: {e}"),
    })
}

impl Node {
    /// Opens the node's storage, makes sure of its genesis accounts, binds its listeners and
    /// starts serving and recovering. Returns once every listener is bound.
    pub async fn start(config: Config) -> Result<RunningNode, NodeError> {
        Self::start_inner(config, None).await
    }

    /// [`Node::start`] on listeners the caller bound already ([`server::bind`]), instead of
    /// those of `config.listen`. Two nodes that are each other's peer can then run on ports the
    /// kernel picked (port 0): both are bound first, each configuration is given the other's
    /// relay address, and no other process can take a port between its choice and the bind
    /// (the test kit starts its pairs this way).
    pub async fn start_on(
        config: Config,
        listeners: server::Bound,
    ) -> Result<RunningNode, NodeError> {
        Self::start_inner(config, Some(listeners)).await
    }

    async fn start_inner(
        config: Config,
        listeners: Option<server::Bound>,
    ) -> Result<RunningNode, NodeError> {
        tls::install_crypto_provider();
        // Each connection the listeners admit is a descriptor; a soft limit below the caps
        // would make accept fail (EMFILE) before any cap refuses cleanly.
        let wanted = server::open_files_wanted(&config.limits);
        let open_files = server::raise_open_files_limit(wanted);
        if open_files.is_some_and(|limit| limit < wanted) {
            tracing::warn!(
                open_files_limit = open_files,
                wanted,
                "the open-file limit is below what the [limits] connection caps need; \
                 raise the hard limit (ulimit -Hn, LimitNOFILE=) or lower max_connections"
            );
        }
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let assembly = Assembly::read(&config, clock.now().1)?;
        let (books, store) = open_storage(&config, &assembly.signing_key).await?;
        let identity = TlsIdentity::load(&config.tls.cert, &config.tls.key)?;
        let transports = grpc_peers(&config, &assembly.mra, &identity)?;
        let metrics = Arc::new(Metrics::new());
        let mra = Arc::clone(&assembly.mra);
        let genesis = assembly.genesis.clone();
        let parts = assembly.engine_parts(
            books,
            store,
            (clock, Arc::new(SystemEntropy)),
            Arc::clone(&metrics),
            |jurisdiction| transports.get(jurisdiction).cloned(),
        )?;
        let engine = Arc::new(Engine::new(parts));
        engine.genesis(genesis).await?;
        serve(config, mra, engine, metrics, listeners).await
    }
}

/// Everything a node's engine is made of that its configuration decides: the agreement, the
/// receipt signer, the corridors and their rates, the limits, the screening lists and the
/// genesis accounts. [`Node::start`] adds sled storage, the system clock and gRPC peers; the
/// deterministic simulator (issue 11) adds storage, a clock and a network of its own, so the
/// engines it drives are assembled from the committed configurations by this same code.
#[derive(Clone, Debug)]
pub struct Assembly {
    /// The node's jurisdiction.
    pub jurisdiction: String,
    /// Its ledger currency.
    pub currency: &'static Currency,
    /// The verified agreement.
    pub mra: Arc<Mra>,
    /// The receipt- and quote-signing key.
    pub signing_key: SigningKey,
    /// Its chain (DER, leaf first).
    pub signing_chain: Vec<Vec<u8>>,
    /// Each peer's corridor, by jurisdiction.
    pub corridors: BTreeMap<String, Corridor>,
    /// The per-payment, time and lifetime limits.
    pub limits: EngineLimits,
    /// How recovery paces itself.
    pub recovery: RecoveryLimits,
    /// Screening lists.
    pub sanctions: Sanctions,
    /// The configured accounts with their opening balances (minor units).
    pub genesis: Vec<(u128, AccountMeta, u128)>,
    /// The funding account.
    pub funding_account: u128,
    /// `[fx] spread_bps`.
    pub spread_bps: u32,
    /// `[fx] rate_band_bps`.
    pub rate_band_bps: u32,
    /// `[fx] quote_ttl_secs`.
    pub quote_ttl_secs: u64,
}

/// One corridor as configured: a [`PeerLink`] without its transport.
#[derive(Clone, Debug)]
pub struct Corridor {
    /// The peer's ledger currency.
    pub currency: &'static Currency,
    /// Mid rate: units of the peer's currency per unit of ours.
    pub mid: Rate,
    /// Where payments to the peer are reserved.
    pub corridor_account: u128,
    /// Where payments from the peer are credited from.
    pub liquidity_account: u128,
}

impl Assembly {
    /// Reads and checks what `config` decides, at `now` (the receipt signer must be
    /// recognized then). Touches no storage and no network.
    pub fn read(config: &Config, now: UnixTime) -> Result<Self, NodeError> {
        let mra = Mra::load(&config.mra).map_err(|e| NodeError::Mra {
            path: config.mra.clone(),
            message: e.to_string(),
        })?;
        Self::read_under(config, Arc::new(mra), now)
    }

    /// As [`Assembly::read`], under `mra` instead of the agreement `config.mra` names: the
    /// deterministic simulator derives an agreement in memory (see `kakehashi-sim`). It must be
    /// signed by every party and name `config`'s jurisdiction, as a loaded one must.
    pub fn read_under(config: &Config, mra: Arc<Mra>, now: UnixTime) -> Result<Self, NodeError> {
        let currency = agreement(config, &mra)?;
        let (signing_key, signing_chain) = receipt_signer(config, &mra, now)?;
        let corridors = corridors(config, &mra)?;
        let limits = engine_limits(config, currency)?;
        let genesis = genesis_accounts(config, currency)?;
        Ok(Self {
            jurisdiction: config.jurisdiction.clone(),
            currency,
            mra,
            signing_key,
            signing_chain,
            corridors,
            limits,
            recovery: recovery_limits(config),
            sanctions: sanctions(config)?,
            genesis: genesis.accounts,
            funding_account: genesis.funding_account,
            spread_bps: config.fx.spread_bps,
            rate_band_bps: config.fx.rate_band_bps,
            quote_ttl_secs: config.fx.quote_ttl_secs,
        })
    }

    /// The engine's parts over `books`, `store` and `clock`, each peer reached through
    /// `transport(jurisdiction)` (a configuration error if a corridor has none).
    pub fn engine_parts(
        self,
        books: Arc<dyn Books>,
        store: Store,
        (clock, entropy): (Arc<dyn Clock>, Arc<dyn Entropy>),
        metrics: Arc<Metrics>,
        transport: impl Fn(&str) -> Option<Arc<dyn PeerTransport>>,
    ) -> Result<EngineParts, NodeError> {
        let mut peers = BTreeMap::new();
        for (jurisdiction, corridor) in self.corridors {
            let transport = transport(&jurisdiction).ok_or_else(|| {
                invalid(
                    "peer",
                    format!("no transport to the configured peer {jurisdiction}"),
                )
            })?;
            peers.insert(
                jurisdiction.clone(),
                PeerLink {
                    jurisdiction,
                    currency: corridor.currency,
                    mid: corridor.mid,
                    corridor_account: corridor.corridor_account,
                    liquidity_account: corridor.liquidity_account,
                    transport,
                },
            );
        }
        Ok(EngineParts {
            jurisdiction: self.jurisdiction,
            currency: self.currency,
            mra: self.mra,
            books,
            store,
            signing_key: self.signing_key,
            signing_chain: self.signing_chain,
            peers,
            spread_bps: self.spread_bps,
            rate_band_bps: self.rate_band_bps,
            quote_ttl_secs: self.quote_ttl_secs,
            limits: self.limits,
            recovery: self.recovery,
            sanctions: self.sanctions,
            funding_account: self.funding_account,
            metrics,
            clock,
            entropy,
            planted: None,
        })
    }
}

/// Checks that `mra` (read from `config.mra`, or derived by the simulator) is signed by every
/// party and names this node's jurisdiction; returns that jurisdiction's currency.
fn agreement(config: &Config, mra: &Mra) -> Result<&'static Currency, NodeError> {
    let mra_error = |message: String| NodeError::Mra {
        path: config.mra.clone(),
        message,
    };
    mra.verify_signatures()
        .map_err(|e| mra_error(e.to_string()))?;
    let own = mra.jurisdiction(&config.jurisdiction).ok_or_else(|| {
        mra_error(format!(
            "{} is not a party to the agreement",
            config.jurisdiction
        ))
    })?;
    let currency = money::currency(&own.currency).ok_or_else(|| {
        mra_error(format!(
            "{}'s currency {} is not an ISO 4217 code kakehashi knows",
            own.code, own.currency
        ))
    })?;
    Ok(currency)
}

/// The receipt- and quote-signing key and its chain. The key must match its certificate, and
/// the node's own jurisdiction must recognize that certificate for receipts at `now`, or every
/// peer would refuse them.
fn receipt_signer(
    config: &Config,
    mra: &Mra,
    now: UnixTime,
) -> Result<(SigningKey, Vec<Vec<u8>>), NodeError> {
    let key = signing_key(&config.signing.key)?;
    let chain = chain_der("signing certificate", &config.signing.cert)?;
    let probe = signed::sign(SIGNING_DOMAIN_RECEIPT, b"probe".to_vec(), &key, &chain);
    signed::verify(
        &probe,
        SIGNING_DOMAIN_RECEIPT,
        mra,
        &config.jurisdiction,
        Purpose::ReceiptSigning,
        now,
        &[],
    )
    .map_err(|rejection| NodeError::Key {
        what: "signing certificate",
        path: config.signing.cert.clone(),
        message: format!(
            "unusable for receipts with key {}: {rejection}",
            config.signing.key.display()
        ),
    })?;
    Ok((key, chain))
}

/// Opens (creating if needed) the ledger (`<data_dir>/ledger`, its checkpoints signed with
/// `key`) and the payment store over its records, and checks what start-up can check cheaply
/// before anything listens (issue 11, defect 10). The ledger's open checks its format, its
/// head, the hash chain from its last signed checkpoint and that checkpoint's signature (and
/// balances, when it is the head), and replays what follows its account snapshot. A payment
/// store from before the records moved into the ledger (`<data_dir>/node`) is copied into the
/// ledger's records and moved aside first (see [`crate::store::migrate_legacy`]). Then the
/// payment records the node loads at start (account metadata, payments in doubt) must read and
/// decode. Books that fail are refused with [`NodeError::Books`].
async fn open_storage(
    config: &Config,
    key: &SigningKey,
) -> Result<(Arc<dyn Books>, Store), NodeError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| NodeError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let (books, store, where_): (Arc<dyn Books>, Store, PathBuf) = match &config.storage.backend {
        StorageBackend::Sled => {
            let (ledger, store) = open_sled(config, key).await?;
            let books = Arc::new(SledBooks::new(ledger, store.encoder()));
            (books, store, ledger_path_for_store(config))
        }
        StorageBackend::Postgres(postgres) => {
            let options = postgres_options(postgres);
            let handle = PgHandle::open(options, key.clone())
                .await
                .map_err(|source| NodeError::Postgres {
                    schema: postgres.schema.clone(),
                    source: Box::new(source),
                })?;
            let handle = Arc::new(handle);
            let store = Store::over_postgres(Arc::clone(&handle));
            let books = Arc::new(PgBooks::new(handle, store.encoder()));
            let where_ = PathBuf::from(format!("PostgreSQL schema {}", postgres.schema));
            (books, store, where_)
        }
    };
    // Every account record and every payment in doubt decodes, or the node does not start.
    let loaded = async {
        store.accounts().await?;
        store.unresolved_outbound().await?;
        Ok::<_, StoreError>(())
    };
    loaded.await.map_err(|error| store_error(&where_, error))?;
    Ok((books, store))
}

/// The PostgreSQL ledger's options for `[storage]`.
pub fn postgres_options(postgres: &PostgresStorage) -> kakehashi_ledger_pg::Options {
    kakehashi_ledger_pg::Options {
        pool_size: postgres.pool_size,
        ..kakehashi_ledger_pg::Options::new(postgres.url.clone(), postgres.schema.clone())
    }
}

/// The sled ledger in `<data_dir>/ledger` and the payment store over its records, a payment
/// store of an older build moved in first.
async fn open_sled(config: &Config, key: &SigningKey) -> Result<(Arc<Ledger>, Store), NodeError> {
    let ledger_dir = config.data_dir.join("ledger");
    let ledger_path = ledger_dir.clone();
    let ledger_key = key.clone();
    let options = Options {
        cache_capacity_bytes: config.storage.cache_bytes(),
        ..Options::default()
    };
    let ledger =
        tokio::task::spawn_blocking(move || Ledger::open(&ledger_dir, ledger_key, options))
            .await
            .map_err(|e| NodeError::Task(e.to_string()))?
            .map_err(|error| ledger_open_error(&ledger_path, error))?;
    let ledger = Arc::new(ledger);
    let store_dir = config.data_dir.join(crate::store::LEGACY_DIR);
    let data_dir = config.data_dir.clone();
    let migrating = Arc::clone(&ledger);
    tokio::task::spawn_blocking(move || crate::store::migrate_legacy(&data_dir, &migrating))
        .await
        .map_err(|e| NodeError::Task(e.to_string()))?
        .map_err(|error| store_error(&store_dir, error))?;
    Ok((Arc::clone(&ledger), Store::over_ledger(ledger)))
}

/// Where the payment store's records are: in the ledger.
fn ledger_path_for_store(config: &Config) -> PathBuf {
    config.data_dir.join("ledger")
}

/// What a failed ledger open means for the operator: corrupt or unreadable books, a lock held
/// by another process, or another error (format, key, options) that says what to change.
fn ledger_open_error(path: &Path, error: kakehashi_ledger::Error) -> NodeError {
    use kakehashi_ledger::Error;
    match error {
        Error::Locked { .. } => NodeError::Locked {
            what: "ledger",
            path: path.to_owned(),
        },
        Error::Corrupt { .. } | Error::InvariantViolated { .. } | Error::Storage { .. } => {
            NodeError::Books {
                what: "ledger",
                path: path.to_owned(),
                detail: error.to_string(),
                inspect: format!("kakehashi ledger audit --data-dir {}", path.display()),
            }
        }
        other => NodeError::Ledger(other),
    }
}

/// The same for the payment store: sled's lock failure is the only "held by another process";
/// a record that does not decode, or any other read error, is books the node will not serve.
fn store_error(path: &Path, error: StoreError) -> NodeError {
    let unreadable_records = matches!(
        &error,
        StoreError::Ledger { source, .. }
            if matches!(
                **source,
                kakehashi_ledger::Error::Corrupt { .. } | kakehashi_ledger::Error::Storage { .. }
            )
    );
    match &error {
        StoreError::Sled {
            source: sled::Error::Io(io),
            ..
        } if io.to_string().contains("could not acquire lock") => NodeError::Locked {
            what: "payment store",
            path: path.to_owned(),
        },
        StoreError::Sled { .. } | StoreError::Corrupt { .. } | StoreError::Ledger { .. }
            if !matches!(error, StoreError::Ledger { .. }) || unreadable_records =>
        {
            NodeError::Books {
                what: "payment store",
                path: path.to_owned(),
                detail: error.to_string(),
                inspect: "kakehashi ledger pair-audit --config <this node's TOML> --config \
                          <its peer's TOML>"
                    .to_owned(),
            }
        }
        _ => NodeError::Store(error),
    }
}

/// Each configured peer's corridor: its currency from the agreement, its mid rate from
/// `[fx.mid]`, its accounts.
fn corridors(config: &Config, mra: &Mra) -> Result<BTreeMap<String, Corridor>, NodeError> {
    let mra_error = |message: String| NodeError::Mra {
        path: config.mra.clone(),
        message,
    };
    let mut corridors = BTreeMap::new();
    for peer in &config.peers {
        let party = mra.jurisdiction(&peer.jurisdiction).ok_or_else(|| {
            mra_error(format!(
                "peer {} is not a party to the agreement",
                peer.jurisdiction
            ))
        })?;
        let peer_currency = money::currency(&party.currency).ok_or_else(|| {
            mra_error(format!(
                "{}'s currency {} is unknown",
                party.code, party.currency
            ))
        })?;
        let mid_key = || format!("fx.mid.{}", peer_currency.alpha);
        let mid_text = config.fx.mid.get(peer_currency.alpha).ok_or_else(|| {
            invalid(
                mid_key(),
                format!(
                    "no mid rate for {} (the currency of peer {})",
                    peer_currency.alpha, peer.jurisdiction
                ),
            )
        })?;
        let mid = Rate::parse(mid_text.as_str()).map_err(|r| invalid(mid_key(), r.detail))?;
        corridors.insert(
            peer.jurisdiction.clone(),
            Corridor {
                currency: peer_currency,
                mid,
                corridor_account: peer.corridor_account,
                liquidity_account: peer.liquidity_account,
            },
        );
    }
    Ok(corridors)
}

/// A Relay client over mutual TLS to each configured peer, each call bounded by the relay
/// timeout; a peer with several relay addresses gets one client per address, tried in turn
/// ([`FailoverPeer`]).
fn grpc_peers(
    config: &Config,
    mra: &Arc<Mra>,
    identity: &TlsIdentity,
) -> Result<BTreeMap<String, Arc<dyn PeerTransport>>, NodeError> {
    let relay_timeout = Duration::from_millis(config.limits.relay_timeout_ms);
    let mut peers = BTreeMap::new();
    for peer in &config.peers {
        let mut addresses = Vec::new();
        for address in peer.relay_addresses() {
            let endpoint = tls::relay_endpoint(
                &peer.jurisdiction,
                &address,
                identity,
                Arc::clone(mra),
                &config.jurisdiction,
                &config.limits,
            )?;
            let client = RelayClient::new(endpoint.connect_lazy())
                .max_decoding_message_size(config.limits.message_bytes_max)
                .max_encoding_message_size(config.limits.message_bytes_max);
            let transport: Arc<dyn PeerTransport> = Arc::new(GrpcPeer::batching(
                client,
                relay_timeout,
                config.limits.message_bytes_max,
            ));
            addresses.push(transport);
        }
        let transport = if addresses.len() == 1 {
            addresses.swap_remove(0)
        } else {
            Arc::new(FailoverPeer::new(addresses, relay_timeout))
        };
        peers.insert(peer.jurisdiction.clone(), transport);
    }
    Ok(peers)
}

/// An amount of the configuration (major units, decimal text) in minor units of `currency`.
fn minor_units(currency: &'static Currency, value: &str) -> Result<u128, Rejection> {
    money::parse_amount(&pb::ActiveCurrencyAndAmount {
        currency: currency.alpha.to_owned(),
        value: value.to_owned(),
    })
    .map(|(_, minor)| minor)
}

/// The configured accounts, as the engine's genesis takes them.
struct Genesis {
    /// Each account's id, metadata and opening balance (minor units).
    accounts: Vec<(u128, AccountMeta, u128)>,
    /// The funding account's id.
    funding_account: u128,
}

/// The configured accounts with their opening balances, and the funding account.
fn genesis_accounts(config: &Config, currency: &'static Currency) -> Result<Genesis, NodeError> {
    let mut accounts = Vec::new();
    let mut funding_account = None;
    for account in &config.accounts {
        let kind = account.kind;
        if kind == AccountKind::Funding {
            funding_account = Some(account.id);
        }
        let opening = minor_units(currency, account.opening_balance.as_str())
            .map_err(|r| invalid(format!("account {}: opening_balance", account.id), r.detail))?;
        accounts.push((
            account.id,
            AccountMeta {
                kind,
                owner_bic: (!account.owner_bic.is_empty()).then(|| account.owner_bic.clone()),
                name: account.name.clone(),
                closed: false,
            },
            opening,
        ));
    }
    let funding_account =
        funding_account.ok_or_else(|| invalid("account", "no account of kind \"funding\""))?;
    Ok(Genesis {
        accounts,
        funding_account,
    })
}

/// The limits the engine enforces, from `[limits]`.
fn engine_limits(config: &Config, currency: &'static Currency) -> Result<EngineLimits, NodeError> {
    let payment_minor_max = minor_units(currency, config.limits.payment_max.as_str())
        .map_err(|r| invalid("limits.max_payment", r.detail))?;
    let funding_minor_max = match &config.admin.funding_max {
        Some(max) => minor_units(currency, max.as_str())
            .map_err(|r| invalid("admin.max_funding", r.detail))?,
        None => payment_minor_max,
    };
    Ok(EngineLimits {
        payment_minor_max,
        funding_minor_max,
        clock_skew_secs: config.limits.clock_skew_secs,
        instruction_lifetime_secs_max: config.limits.instruction_lifetime_secs_max,
        free_quotes_per_asker_max: config.limits.free_quotes_per_asker_max,
    })
}

/// How recovery paces itself: its bounds from `[limits]`, the backoff's defaults.
fn recovery_limits(config: &Config) -> RecoveryLimits {
    RecoveryLimits {
        payments_per_pass: config.limits.recovery_payments_per_pass_max,
        queries_per_peer: config.limits.recovery_queries_per_peer_max,
        backoff_initial: RECOVERY_BACKOFF_INITIAL,
        backoff_max: RECOVERY_BACKOFF_MAX,
    }
}

/// The sanctions list of `[sanctions]`: its inline entries and its list file, loaded (a list
/// file that does not load stops the start, with its reason code).
fn sanctions(config: &Config) -> Result<Sanctions, NodeError> {
    let s = &config.sanctions;
    let entry = |e: ListEntry| ListEntry {
        origin: "config".to_owned(),
        ..e
    };
    let inline = s
        .names
        .iter()
        .map(|name| {
            entry(ListEntry {
                name: Some(name.clone()),
                ..ListEntry::default()
            })
        })
        .chain(s.bics.iter().map(|bic| {
            entry(ListEntry {
                bic: Some(bic.clone()),
                ..ListEntry::default()
            })
        }))
        .chain(s.accounts.iter().map(|&account| {
            entry(ListEntry {
                account: Some(account),
                ..ListEntry::default()
            })
        }))
        .collect();
    Sanctions::load(ListSource {
        inline,
        file: s.list.clone(),
        threshold: f64::from(s.threshold_bp) / 10_000.0,
    })
    .map_err(|e| invalid("sanctions.list", e.to_string()))
}

/// A configuration error found while assembling the node.
fn invalid(key: impl Into<String>, message: impl Into<String>) -> NodeError {
    NodeError::Config(config::ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    })
}

/// Refuses to start with an `[admin] operator_certs` entry that could never act as operator:
/// its leaf must assert clientAuth and the operator EKU, and be recognized by this node's
/// jurisdiction for the operator purpose now. The node's own TLS certificate (the operator
/// credential before issue 12) and a bank's are refused here, by name.
fn check_operator_cert(engine: &Engine, path: &Path, chain: &[Vec<u8>]) -> Result<(), NodeError> {
    use kakehashi_pki::cert::Cert;
    use kakehashi_pki::purpose::{EKU_CLIENT_AUTH, EKU_OPERATOR};
    let key = "admin.operator_certs";
    let refuse = |why: String| invalid(key, format!("{}: {why}", path.display()));
    let parsed = chain
        .iter()
        .map(|der| Cert::from_der(der))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| refuse(format!("does not parse: {e}")))?;
    let Some((leaf, intermediates)) = parsed.split_first() else {
        return Err(refuse("holds no certificate".into()));
    };
    let ekus = leaf.extended_key_usage().unwrap_or(&[]);
    if !ekus.iter().any(|e| e == EKU_OPERATOR) || !ekus.iter().any(|e| e == EKU_CLIENT_AUTH) {
        return Err(refuse(format!(
            "{} is not an operator certificate (it needs clientAuth and the operator EKU \
             {EKU_OPERATOR}; `kakehashi pki init` issues one per node as <j>/operator.pem)",
            leaf.subject_display()
        )));
    }
    let verdict = engine.trust().recognize(
        engine.jurisdiction(),
        Purpose::Operator,
        leaf,
        intermediates,
        &[],
        engine.clock().now().1,
    );
    if !verdict.recognized() {
        return Err(refuse(format!(
            "{} is not recognized by {} for the operator purpose",
            leaf.subject_display(),
            engine.jurisdiction()
        )));
    }
    Ok(())
}

/// Binds the listeners (unless the caller did) and starts serving `engine` and its recovery
/// loop.
async fn serve(
    config: Config,
    mra: Arc<Mra>,
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
    listeners: Option<server::Bound>,
) -> Result<RunningNode, NodeError> {
    let mut operators = Vec::new();
    for path in &config.admin.operator_certs {
        let chain = chain_der("operator certificate", path)?;
        check_operator_cert(&engine, path, &chain)?;
        operators.extend(chain.into_iter().next());
    }

    let bound = match listeners {
        Some(bound) => bound,
        None => server::bind(&config.listen).await?,
    };
    let addresses = bound.addresses();
    let drain = Duration::from_secs(config.limits.drain_secs);
    let (stop, stopped) = watch::channel(false);
    let (stop_recovery, recovery_stopped) = watch::channel(false);
    let streams = StreamLimits {
        queue_len: config.limits.stream_queue_len,
        idle: Duration::from_secs(config.limits.stream_idle_timeout_secs),
        lifetime: Duration::from_secs(config.limits.stream_lifetime_secs_max),
    };
    let payments = PaymentsService::new(
        Arc::clone(&engine),
        operators,
        streams,
        config.limits.message_bytes_max,
    );
    let relay = RelayService::new(Arc::clone(&engine), streams, stopped.clone());
    let mut server_stop = stopped;
    let draining = engine.stopping_signal();
    let server = tokio::spawn(async move {
        let shutdown = async move {
            let _ = server_stop.wait_for(|stop| *stop).await;
        };
        bound
            .run_draining(&config, mra, payments, relay, metrics, draining, shutdown)
            .await
    });
    let recovery = tokio::spawn(recovery_loop(Arc::clone(&engine), recovery_stopped));
    let hangup = reload_on_hangup(engine.sanctions().clone());
    tracing::info!(
        jurisdiction = %engine.jurisdiction(),
        public = %addresses.public,
        relay = %addresses.relay,
        metrics = %addresses.metrics,
        "node started"
    );
    Ok(RunningNode {
        jurisdiction: engine.jurisdiction().to_owned(),
        public_addr: addresses.public,
        relay_addr: addresses.relay,
        metrics_addr: Some(addresses.metrics),
        engine,
        stop,
        stop_recovery,
        drain,
        server,
        recovery,
        hangup,
    })
}

/// Reloads `sanctions` at each SIGHUP (the operator's way to put a new list file in force
/// without a restart); a list that does not load is logged with its reason code and leaves the
/// list in force ([`Sanctions::reload`]). The handler is installed before this returns, so a
/// SIGHUP that arrives once the node has started never takes the default action (ending the
/// process). Without SIGHUP (not Unix, or the handler cannot be installed) the task waits
/// forever, and the list reloads only through [`RunningNode::reload_sanctions`].
fn reload_on_hangup(sanctions: Sanctions) -> JoinHandle<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hangup) => tokio::spawn(async move {
                while hangup.recv().await.is_some() {
                    tracing::info!("SIGHUP: reloading the sanctions list");
                    // Preparing a long list takes a while (about 250 ms for 10,000 entries):
                    // off the runtime's threads. Reload logs its outcome, a refusal with its
                    // reason code.
                    let sanctions = sanctions.clone();
                    let _ = tokio::task::spawn_blocking(move || sanctions.reload()).await;
                }
            }),
            Err(error) => {
                tracing::warn!(
                    %error,
                    "cannot listen for SIGHUP; the sanctions list will not reload on it"
                );
                tokio::spawn(std::future::pending())
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = sanctions;
        tokio::spawn(std::future::pending())
    }
}

/// Runs recovery passes until `stopped` turns true; a pass in progress then ends at its next
/// wait. A pass that its bound cut short and that resolved something is followed at once by
/// the next (a backlog drains at the pace the peers answer); otherwise the loop waits
/// [`RECOVERY_INTERVAL`], so payments that stay in doubt are never asked about in a busy loop.
async fn recovery_loop(engine: Arc<Engine>, mut stopped: watch::Receiver<bool>) {
    loop {
        let more = match engine.recover(&stopped).await {
            Ok(pass) if pass.stopped => return,
            Ok(pass) => {
                if pass.in_doubt > 0 {
                    tracing::info!(
                        in_doubt = pass.in_doubt,
                        resolved = pass.resolved,
                        unanswered = pass.unanswered,
                        failed = pass.failed,
                        deferred = pass.deferred,
                        "payments still in doubt; retrying"
                    );
                }
                pass.more && pass.resolved > 0
            }
            Err(error) => {
                tracing::error!(%error, "recovery could not list the payments in doubt");
                false
            }
        };
        if more {
            // Let the services run between passes of a long backlog.
            tokio::task::yield_now().await;
            if *stopped.borrow() {
                return;
            }
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(RECOVERY_INTERVAL) => {}
            _ = stopped.wait_for(|stop| *stop) => return,
        }
    }
}

impl RunningNode {
    /// The engine (for tests and embedding).
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Reads the sanctions list file again and puts it in force for the payments screened
    /// from then on, as SIGHUP does; a list that does not load leaves the one in force and
    /// answers why ([`crate::screening::ListErrorReason`]). It reads and prepares the whole
    /// list on the calling thread (about 250 ms for 10,000 entries; from async code, through
    /// `spawn_blocking`).
    pub fn reload_sanctions(&self) -> Result<Reloaded, ListError> {
        self.engine.sanctions().reload()
    }

    /// Stops gracefully (issue 11, defect 11): takes no new payment (submissions are answered
    /// UNAVAILABLE) while serving everything else, relay calls included; waits at most
    /// `[limits] drain_secs` for the payments in flight; stops recovery; abandons what is still
    /// in flight, which recovery ends after the restart; stops the listeners (requests in
    /// progress finish) and closes the ledger.
    pub async fn shutdown(self) -> Result<(), NodeError> {
        self.shutdown_or_sooner(std::future::pending()).await
    }

    /// [`RunningNode::shutdown`], whose wait for the payments in flight also ends when
    /// `sooner` completes (an operator's second Ctrl-C).
    pub async fn shutdown_or_sooner(
        self,
        sooner: impl Future<Output = ()>,
    ) -> Result<(), NodeError> {
        self.hangup.abort();
        self.engine.stop_admitting();
        let in_flight = self.engine.in_flight();
        if in_flight > 0 {
            tracing::info!(
                in_flight,
                drain_secs = self.drain.as_secs(),
                "stopping: waiting for the payments in flight"
            );
        }
        let drained = tokio::select! {
            drained = tokio::time::timeout(self.drain, self.engine.drained()) => drained.is_ok(),
            () = sooner => {
                tracing::warn!("asked again to stop; not waiting for the payments in flight");
                false
            }
        };
        // Recovery stops before anything in flight is abandoned: then nothing else in this
        // process takes a UETR's lock, and a submission abandoned halfway is left exactly as
        // a crash there would leave it (recovery after the restart relies on that).
        let _ = self.stop_recovery.send(true);
        let recovered = self.recovery.await;
        if !drained {
            tracing::warn!(
                in_flight = self.engine.in_flight(),
                "the drain ran out of time; the payments still in flight are left to recovery"
            );
            self.engine.abandon_in_flight();
        }
        let _ = self.stop.send(true);
        let served = self
            .server
            .await
            .map_err(|e| NodeError::Task(e.to_string()))?;
        recovered.map_err(|e| NodeError::Task(e.to_string()))?;
        // The services held the last other references to the engine; with them gone the
        // ledger can be closed cleanly (its writer thread joined) and the payment store's
        // lock released. A connection's task may still be dropping its copy of the services
        // just after the server has counted the connection closed, so wait for it, briefly:
        // a restart in the same process (tests, an embedding application) must find both
        // databases free.
        let mut engine = self.engine;
        let deadline = tokio::time::Instant::now() + ENGINE_RELEASE_WAIT;
        loop {
            match Arc::try_unwrap(engine) {
                Ok(owned) => {
                    owned.close().await?;
                    break;
                }
                Err(shared) if tokio::time::Instant::now() < deadline => {
                    engine = shared;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(shared) => {
                    tracing::warn!(
                        references = Arc::strong_count(&shared),
                        "the engine is still referenced after the listeners stopped; the \
                         ledger and the payment store close when the last reference goes"
                    );
                    break;
                }
            }
        }
        served.map_err(NodeError::from)
    }

    /// Runs until Ctrl-C, SIGTERM or a listener failure, then shuts down gracefully
    /// ([`RunningNode::shutdown`]); a second Ctrl-C or SIGTERM ends the wait for the payments
    /// in flight at once.
    pub async fn wait(self) -> Result<(), NodeError> {
        tokio::select! {
            () = stop_signal() => tracing::info!("asked to stop; stopping gracefully"),
            () = wait_finished(&self.server) => tracing::error!("a listener stopped; shutting down"),
        }
        self.shutdown_or_sooner(stop_signal()).await
    }
}

/// Completes at the next Ctrl-C or SIGTERM.
async fn stop_signal() {
    let terminate = async {
        #[cfg(unix)]
        {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        }
        #[cfg(not(unix))]
        std::future::pending::<()>().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

async fn wait_finished<T>(handle: &JoinHandle<T>) {
    while !handle.is_finished() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
