//! Loading one node's books offline: its ledger's own audit, the corridor's accounts and
//! transfers from the ledger's typed export, and the payment store's records of the corridor,
//! from whichever storage its configuration's `[storage]` names: the sled ledger in its data
//! directory, or its schema of a PostgreSQL database (read in committed views, never created
//! or migrated: a missing schema is an error).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use ed25519_dalek::pkcs8::DecodePublicKey as _;
use kakehashi_ledger::{
    Account, AuditOptions, AuditReport, ExportedTransfer, LedgerExport, PendingStatus, Transfer,
};
use kakehashi_node::config::{Config, Peer, PostgresStorage, StorageBackend};
use kakehashi_node::node::postgres_options;
use kakehashi_node::store::{InboundRecord, OutboundRecord, Store, StoreError};
use kakehashi_pki::cert::Cert;
use kakehashi_pki::mra::Mra;
use kakehashi_pki::pem;

use kakehashi_protocol::instruction::Uetr;
use kakehashi_protocol::money::{self, Currency};

/// Why the audit could not run (as opposed to what it found, which is in the report).
#[derive(Debug, thiserror::Error)]
pub enum PairAuditError {
    /// The two configurations are not the two ends of one corridor.
    #[error("the two configurations are not a pair: {0}")]
    NotAPair(String),
    /// The agreement does not name a jurisdiction or its currency.
    #[error("agreement: {0}")]
    Agreement(String),
    /// A file the audit needs is unusable (the node's signing certificate).
    #[error("{jurisdiction}: {what} {path}: {message}")]
    File {
        /// The node.
        jurisdiction: String,
        /// Which file.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The ledger could not be audited or exported.
    #[error("{jurisdiction}'s ledger {path}: {error}")]
    Ledger {
        /// The node.
        jurisdiction: String,
        /// The ledger directory.
        path: PathBuf,
        /// The ledger's error (in the message, so it is not a `source` too: a chain printer
        /// would show it twice).
        error: kakehashi_ledger::Error,
    },
    /// The PostgreSQL ledger could not be audited or exported (the database cannot be
    /// reached, the schema holds no ledger, …).
    #[error("{jurisdiction}'s ledger in PostgreSQL schema {schema}: {error}{hint}")]
    Postgres {
        /// The node.
        jurisdiction: String,
        /// The node's schema (the URL is not shown: it may hold a password).
        schema: String,
        /// The ledger's error (in the message only, as for `Ledger`).
        error: Box<kakehashi_ledger_pg::Error>,
        /// What to do, when known.
        hint: &'static str,
    },
    /// The payment store could not be read.
    #[error("{jurisdiction}'s payment store {path}: {error}{hint}")]
    Store {
        /// The node.
        jurisdiction: String,
        /// The store directory.
        path: PathBuf,
        /// The store's error (in the message only, as for `Ledger`).
        error: StoreError,
        /// What to do, when known.
        hint: &'static str,
    },
}

/// A ledger account's balances as the export gives them (as of the last journal record).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountView {
    /// Currency ledger (ISO 4217 numeric).
    pub ledger: u32,
    /// Account code (the node's
    /// [`AccountKind::ledger_code`](kakehashi_node::store::AccountKind::ledger_code)).
    pub code: u16,
    /// Minor units.
    pub debits_pending: u128,
    /// Minor units.
    pub debits_posted: u128,
    /// Minor units.
    pub credits_pending: u128,
    /// Minor units.
    pub credits_posted: u128,
}

/// A ledger transfer and, for a pending one, how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Booked {
    /// The transfer as stored.
    pub transfer: Transfer,
    /// For a pending transfer, its status.
    pub status: Option<PendingStatus>,
}

/// One node's books for one corridor, as read offline.
#[derive(Clone, Debug)]
pub struct NodeBooks {
    /// The node's jurisdiction.
    pub jurisdiction: String,
    /// Its ledger currency.
    pub currency: &'static Currency,
    /// Where its books are, for the report: its data directory, or `PostgreSQL schema <name>`
    /// for a node whose books are in PostgreSQL.
    pub data_dir: PathBuf,
    /// The other end of the corridor.
    pub peer: String,
    /// Where payments to `peer` are reserved and posted.
    pub corridor_account: u128,
    /// Where payments from `peer` are credited from.
    pub liquidity_account: u128,
    /// The receiver's allowance for clock differences when it checked quotes and instructions.
    pub clock_skew_secs: u64,
    /// The corridor and liquidity accounts, when they exist.
    pub accounts: BTreeMap<u128, AccountView>,
    /// Every transfer that moves the corridor or the liquidity account.
    pub transfers: Vec<Booked>,
    /// Payments this node sent to `peer`.
    pub outbound: BTreeMap<Uetr, OutboundRecord>,
    /// Payments this node received (or fenced) from `peer`.
    pub inbound: BTreeMap<Uetr, InboundRecord>,
    /// The ledger's own audit, when it was run.
    pub ledger_audit: Option<AuditReport>,
}

impl NodeBooks {
    /// Reads the books of the node configured by `config` for its corridor with `peer`:
    /// runs the ledger audit (checkpoints pinned to the key of the node's signing
    /// certificate), reads the ledger export and the payment store, from the sled ledger in
    /// its data directory or from its PostgreSQL schema, as `[storage]` says. Read-only: on
    /// sled it fails while a node holds the database; on PostgreSQL nothing is created (a
    /// missing schema is an error) and nothing refuses the books of a running node, whose
    /// payments moving between the reads would show as discrepancies, so stop it first.
    pub async fn load(config: &Config, peer: &str, mra: &Mra) -> Result<Self, PairAuditError> {
        let jurisdiction = &config.jurisdiction;
        let link = config.peer(peer).ok_or_else(|| {
            PairAuditError::NotAPair(format!(
                "{jurisdiction}'s configuration has no [[peer]] {peer}"
            ))
        })?;
        let currency = currency_of(mra, jurisdiction)?;
        let (where_, Records { outbound, inbound }, ledger_audit, (accounts, transfers)) =
            match &config.storage.backend {
                StorageBackend::Sled => {
                    // The payment records first (the ledger's, opened offline): a data
                    // directory not yet upgraded is named before anything else is read.
                    let store_dir = ledger_dir(config);
                    let store = Store::open_read_only(&config.data_dir)
                        .map_err(|error| store_error(config, &store_dir, error))?;
                    let records = read_store(config, &store_dir, &store, peer).await?;
                    drop(store);
                    let ledger_audit = audit_ledger(config)?;
                    let corridor = read_corridor(config, link)?;
                    (config.data_dir.clone(), records, ledger_audit, corridor)
                }
                StorageBackend::Postgres(postgres) => {
                    // The audit first: a database that cannot be reached or a schema without
                    // a ledger is named as the ledger's, before the store reads it.
                    let options = postgres_options(postgres);
                    let expected_key = ledger_key(config)?;
                    let pg_error = |error| postgres_error(config, postgres, error);
                    let ledger_audit = kakehashi_ledger_pg::audit(
                        &options,
                        &AuditOptions {
                            expected_key: Some(expected_key),
                        },
                    )
                    .await
                    .map_err(pg_error)?;
                    let (all_accounts, all_transfers) = kakehashi_ledger_pg::export_typed(&options)
                        .await
                        .map_err(pg_error)?;
                    let corridor = (
                        corridor_accounts(link, all_accounts.into_iter()),
                        all_transfers
                            .into_iter()
                            .filter(|item| moves_corridor(link, &item.transfer))
                            .map(Booked::from)
                            .collect(),
                    );
                    let where_ = PathBuf::from(format!("PostgreSQL schema {}", postgres.schema));
                    let store = Store::open_postgres_read_only(options);
                    let records = read_store(config, &where_, &store, peer).await?;
                    (where_, records, ledger_audit, corridor)
                }
            };
        Ok(Self {
            jurisdiction: jurisdiction.clone(),
            currency,
            data_dir: where_,
            peer: peer.to_owned(),
            corridor_account: link.corridor_account,
            liquidity_account: link.liquidity_account,
            clock_skew_secs: config.limits.clock_skew_secs,
            accounts,
            transfers,
            outbound,
            inbound,
            ledger_audit: Some(ledger_audit),
        })
    }
}

/// A node's payment records of one corridor.
struct Records {
    outbound: BTreeMap<Uetr, OutboundRecord>,
    inbound: BTreeMap<Uetr, InboundRecord>,
}

/// A payment store error of the node of `config`, whose store is at `path`.
fn store_error(config: &Config, path: &Path, error: StoreError) -> PairAuditError {
    let held = matches!(
        &error,
        StoreError::Ledger { source, .. }
            if matches!(**source, kakehashi_ledger::Error::Locked { .. })
    );
    let hint = if held || error.to_string().contains("lock") {
        " (a running node holds it: stop the node, then audit)"
    } else {
        ""
    };
    PairAuditError::Store {
        jurisdiction: config.jurisdiction.clone(),
        path: path.to_owned(),
        error,
        hint,
    }
}

/// A PostgreSQL ledger error of the node of `config`, with what to do when it is clear.
fn postgres_error(
    config: &Config,
    postgres: &PostgresStorage,
    error: kakehashi_ledger_pg::Error,
) -> PairAuditError {
    let hint = match &error {
        kakehashi_ledger_pg::Error::Pool { .. } => {
            " (is the server running, and does [storage] url name it and a role that may \
             log in?)"
        }
        kakehashi_ledger_pg::Error::InvalidOption { name: "schema", .. } => {
            " (the node creates it when it first starts: check [storage] schema, or start the \
             node once)"
        }
        _ => "",
    };
    PairAuditError::Postgres {
        jurisdiction: config.jurisdiction.clone(),
        schema: postgres.schema.clone(),
        error: Box::new(error),
        hint,
    }
}

/// The payment records of payments to and from `peer` in `store` (at `path`, for errors).
async fn read_store(
    config: &Config,
    path: &Path,
    store: &Store,
    peer: &str,
) -> Result<Records, PairAuditError> {
    let store_error = |error| store_error(config, path, error);
    let outbound = store
        .outbound_all()
        .await
        .map_err(store_error)?
        .into_iter()
        .filter(|(_, record)| record.peer == peer)
        .collect();
    // Inbound records are keyed by their sender: these are all of `peer`'s, and only its.
    let inbound = store
        .inbound_all(peer)
        .await
        .map_err(store_error)?
        .into_iter()
        .collect();
    Ok(Records { outbound, inbound })
}

fn ledger_dir(config: &Config) -> PathBuf {
    config.data_dir.join("ledger")
}

fn ledger_error(config: &Config, path: &Path, error: kakehashi_ledger::Error) -> PairAuditError {
    PairAuditError::Ledger {
        jurisdiction: config.jurisdiction.clone(),
        path: path.to_owned(),
        error,
    }
}

/// The ledger's own audit, its checkpoints pinned to the key of the node's signing
/// certificate.
fn audit_ledger(config: &Config) -> Result<AuditReport, PairAuditError> {
    let dir = ledger_dir(config);
    let expected_key = ledger_key(config)?;
    kakehashi_ledger::audit(
        &dir,
        &AuditOptions {
            expected_key: Some(expected_key),
        },
    )
    .map_err(|error| ledger_error(config, &dir, error))
}

/// The corridor's accounts and every transfer that moves one of them, from the sled ledger's
/// typed export (the transfers streamed: only the corridor's are kept).
fn read_corridor(config: &Config, link: &Peer) -> Result<Corridor, PairAuditError> {
    let dir = ledger_dir(config);
    let ledger_error = |error| ledger_error(config, &dir, error);
    let export = LedgerExport::open(&dir).map_err(ledger_error)?;
    let mut transfers = Vec::new();
    for item in export.transfers() {
        let item = item.map_err(ledger_error)?;
        if moves_corridor(link, &item.transfer) {
            transfers.push(Booked::from(item));
        }
    }
    Ok((corridor_accounts(link, export.accounts()), transfers))
}

/// The corridor's accounts and transfers.
type Corridor = (BTreeMap<u128, AccountView>, Vec<Booked>);

/// The corridor and liquidity accounts of `link` among `accounts`.
fn corridor_accounts(
    link: &Peer,
    accounts: impl Iterator<Item = Account>,
) -> BTreeMap<u128, AccountView> {
    let wanted = [link.corridor_account, link.liquidity_account];
    accounts
        .filter(|account| wanted.contains(&account.id.0))
        .map(|account| (account.id.0, AccountView::from(&account)))
        .collect()
}

/// Whether `transfer` moves the corridor or the liquidity account of `link`.
fn moves_corridor(link: &Peer, transfer: &Transfer) -> bool {
    let wanted = [link.corridor_account, link.liquidity_account];
    wanted.contains(&transfer.debit_account_id.0) || wanted.contains(&transfer.credit_account_id.0)
}

impl From<ExportedTransfer> for Booked {
    fn from(item: ExportedTransfer) -> Self {
        Self {
            transfer: item.transfer,
            status: item.pending_status,
        }
    }
}

impl From<&Account> for AccountView {
    fn from(account: &Account) -> Self {
        Self {
            ledger: account.ledger,
            code: account.code,
            debits_pending: account.debits_pending,
            debits_posted: account.debits_posted,
            credits_pending: account.credits_pending,
            credits_posted: account.credits_posted,
        }
    }
}

/// Loads both ends of the corridor between `a` and `b` (see [`NodeBooks::load`]) after
/// checking that they are one: two jurisdictions, each the other's peer, two sets of books
/// (two data directories on sled, two schemas on one PostgreSQL database).
pub async fn load_pair(
    a: &Config,
    b: &Config,
    mra: &Mra,
) -> Result<(NodeBooks, NodeBooks), PairAuditError> {
    if a.jurisdiction == b.jurisdiction {
        return Err(PairAuditError::NotAPair(format!(
            "both are {} nodes; give the configurations of the two ends of a corridor",
            a.jurisdiction
        )));
    }
    match (&a.storage.backend, &b.storage.backend) {
        (StorageBackend::Sled, StorageBackend::Sled) if a.data_dir == b.data_dir => {
            return Err(PairAuditError::NotAPair(format!(
                "both use the data directory {}",
                a.data_dir.display()
            )));
        }
        (StorageBackend::Postgres(x), StorageBackend::Postgres(y))
            if x.url == y.url && x.schema == y.schema =>
        {
            return Err(PairAuditError::NotAPair(format!(
                "both use the PostgreSQL schema {} of one database",
                x.schema
            )));
        }
        _ => {}
    }
    for (from, to) in [(a, b), (b, a)] {
        if from.peer(&to.jurisdiction).is_none() {
            return Err(PairAuditError::NotAPair(format!(
                "{}'s configuration has no [[peer]] {}",
                from.jurisdiction, to.jurisdiction
            )));
        }
    }
    Ok((
        NodeBooks::load(a, &b.jurisdiction, mra).await?,
        NodeBooks::load(b, &a.jurisdiction, mra).await?,
    ))
}

/// The ledger currency of `jurisdiction`, from the agreement and the ISO 4217 table.
fn currency_of(mra: &Mra, jurisdiction: &str) -> Result<&'static Currency, PairAuditError> {
    let party = mra.jurisdiction(jurisdiction).ok_or_else(|| {
        PairAuditError::Agreement(format!("{jurisdiction} is not a party to the agreement"))
    })?;
    money::currency(&party.currency).ok_or_else(|| {
        PairAuditError::Agreement(format!(
            "{jurisdiction}'s currency {} is not an ISO 4217 code kakehashi knows",
            party.currency
        ))
    })
}

/// The key the node's ledger checkpoints must be signed with: the node signs them with its
/// receipt-signing key (`node.rs`), whose certificate the configuration names.
pub fn ledger_key(config: &Config) -> Result<VerifyingKey, PairAuditError> {
    let path = &config.signing.cert;
    let error = |message: String| PairAuditError::File {
        jurisdiction: config.jurisdiction.clone(),
        what: "signing certificate",
        path: path.clone(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| error(e.to_string()))?;
    let chain = pem::blocks_or_der(&bytes, "CERTIFICATE").map_err(error)?;
    let leaf = chain
        .first()
        .ok_or_else(|| error("no CERTIFICATE block".into()))?;
    let cert = Cert::from_der(leaf).map_err(|e| error(e.to_string()))?;
    VerifyingKey::from_public_key_der(cert.spki().der())
        .map_err(|e| error(format!("not an Ed25519 key: {e}")))
}

#[cfg(test)]
mod tests;
