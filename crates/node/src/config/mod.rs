//! The node's TOML configuration: jurisdiction, listeners, identities, the agreement, peers,
//! FX, limits, storage, sanctions and genesis accounts.
//!
//! [`Config::parse`] is pure (text and the directory relative paths resolve against);
//! [`Config::load`] reads a file and resolves paths against the file's directory. Unknown keys
//! are refused (a misspelt limit must not silently fall back to its default). Every check that
//! can be made without the agreement or the key files is made here, and each error names the
//! key and says what to change. The agreement, certificates and keys are read later by the
//! code that uses them ([`crate::tls`], the service), whose errors name the file.
//!
//! Amounts and FX rates stay decimal strings ([`Decimal`]) whose syntax is checked here; the
//! currency-specific checks (fraction digits of the node's currency, u128 minor units) belong
//! to `kakehashi_protocol::money`, which knows the currency table.
//!
//! This module holds the schema (the validated types, their bounds and defaults); `loading`
//! reads the file and resolves its TOML shape into a [`Config`]; `rules` holds
//! [`Config::validate`] and the checks it makes.

mod loading;
mod rules;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use tonic::transport::Uri;

use rules::parse_relay_uri;

/// The kind of an `[[account]]` ([`Account::kind`]).
pub use crate::account::AccountKind;

/// Largest configuration file read: a node with thousands of genesis accounts and a long
/// sanctions list stays far below this, and the bound keeps a wrong path (a disk image, a log)
/// from being read into memory.
pub const CONFIG_BYTES_MAX: u64 = 4 * 1024 * 1024;

/// Most `[[account]]` entries: genesis accounts for a development or test node. Production
/// accounts are opened through the operator API, not the configuration.
pub const ACCOUNTS_MAX: usize = 10_000;

/// Most `[[peer]]` entries: one per counterparty jurisdiction; ASEAN has ten members.
pub const PEERS_MAX: usize = 64;

/// Most relay addresses of one peer (`[[peer]] relay` as a list).
pub const RELAYS_PER_PEER_MAX: usize = 16;

/// Most entries in each sanctions list (`names`, `bics`, `accounts`).
pub const SANCTIONS_ENTRIES_MAX: usize = 100_000;

/// Most digits in a configured decimal: u128 holds every 38-digit number.
pub const DECIMAL_DIGITS_MAX: usize = 38;

/// Most fraction digits in a configured amount: ISO 4217's largest minor-unit exponent is 4
/// (CLF, UYW). Whether the node's own currency allows that many is checked by `money.rs`.
pub const AMOUNT_FRACTION_DIGITS_MAX: usize = 4;

/// Most fraction digits in an FX mid rate: `money::Rate` is scaled by 10^12.
pub const RATE_FRACTION_DIGITS_MAX: usize = 12;

/// Most characters in an account or party name: ISO 20022 `Max140Text`.
pub const NAME_CHARS_MAX: usize = 140;

/// Largest spread: 10,000 basis points is 100 %, which would quote a rate of zero.
pub const SPREAD_BPS_MAX: u32 = 9_999;

/// Default `[fx] quote_ttl_secs`: a minute is long enough for a participant to sign and
/// submit, short enough that the node does not carry FX risk on stale rates.
pub const QUOTE_TTL_SECS_DEFAULT: u64 = 60;
/// Longest quote lifetime accepted: an hour.
pub const QUOTE_TTL_SECS_MAX: u64 = 3_600;

/// Default `[fx] rate_band_bps`: a peer's quote may be 1 % from the inverse of this node's own
/// mid rate. That covers the peer's spread (25 bps in the devnet) and the drift between two
/// nodes' configured mids, and still refuses a rate no FX desk would give.
pub const RATE_BAND_BPS_DEFAULT: u32 = 100;
/// Widest rate band accepted: 100 %, from zero to twice the mid rate.
pub const RATE_BAND_BPS_MAX: u32 = 10_000;

/// Default `[limits] max_payment` in major units of the local currency: a high-value ceiling
/// that still bounds a mistyped amount.
pub const PAYMENT_MAX_DEFAULT: &str = "100000000";
/// One mebibyte, the unit of `[storage] cache_mib`.
const MIB: u64 = 1024 * 1024;

/// Default `[storage] cache_mib`: the ledger's default page-cache budget
/// ([`kakehashi_ledger::CACHE_CAPACITY_DEFAULT`], 32 MiB; ARCHITECTURE.md "Memory" says what it
/// holds and what sled's real use is).
pub const STORAGE_CACHE_MIB_DEFAULT: u64 = kakehashi_ledger::CACHE_CAPACITY_DEFAULT / MIB;
/// Least `[storage] cache_mib`: the ledger refuses a budget under
/// [`kakehashi_ledger::CACHE_CAPACITY_MIN`] (1 MiB); the configuration says so first, naming
/// the key.
pub const STORAGE_CACHE_MIB_MIN: u64 = kakehashi_ledger::CACHE_CAPACITY_MIN.div_ceil(MIB);
/// Largest `[storage] cache_mib`: 64 GiB, past any memory this node is meant to run in; the
/// bound catches a value given in bytes or KiB by mistake.
pub const STORAGE_CACHE_MIB_MAX: u64 = 64 * 1024;

/// Default `[limits] max_message_bytes`: a signed instruction with a two-certificate chain is
/// about 3 KiB; 64 KiB leaves room for long chains and names while bounding decode work.
pub const MESSAGE_BYTES_MAX_DEFAULT: usize = 64 * 1024;
/// Smallest `[limits] max_message_bytes` accepted: below 4 KiB a normal signed instruction would not fit.
pub const MESSAGE_BYTES_MAX_MIN: usize = 4 * 1024;
/// Largest `[limits] max_message_bytes` accepted: tonic's own default ceiling is 4 MiB; 16 MiB is the
/// most any kakehashi message could need (a balance listing of every genesis account).
pub const MESSAGE_BYTES_MAX_MAX: usize = 16 * 1024 * 1024;
/// Default `[limits] max_concurrent_requests`, across all connections of one listener: two
/// cores verify about ten thousand Ed25519 signatures a second, so 256 in flight keeps the
/// queue under a few tens of milliseconds.
pub const CONCURRENT_REQUESTS_MAX_DEFAULT: usize = 256;
/// Default `[limits] max_concurrent_requests_per_connection`: one client cannot take the
/// whole node.
pub const CONCURRENT_REQUESTS_PER_CONNECTION_MAX_DEFAULT: usize = 64;
/// Default `[limits] max_concurrent_streams`: HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS
/// (RFC 9113 §6.5.2) advertised per connection.
pub const CONCURRENT_STREAMS_MAX_DEFAULT: u32 = 128;
/// Upper bound for every concurrency limit.
pub const CONCURRENCY_MAX: usize = 65_536;
/// Default `[limits] request_timeout_ms`: a participant's call, including the relay round trip.
pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 5_000;
/// Default `[limits] relay_timeout_ms`: the node-to-node Prepare; shorter than the request
/// timeout so the sender can still answer PDNG before its caller gives up.
pub const RELAY_TIMEOUT_MS_DEFAULT: u64 = 3_000;
/// Default `[limits] connect_timeout_ms`: TCP connect to a peer node.
pub const CONNECT_TIMEOUT_MS_DEFAULT: u64 = 2_000;
/// Default `[limits] tls_handshake_timeout_ms`: a client that opens TCP and stalls the TLS
/// handshake holds a slot no longer than this. The clock starts once TCP is established; a
/// TLS 1.3 handshake then needs 1.5 round trips (ClientHello in, the server's flight out, the
/// client's Finished in): 0.9 s over a 600 ms geostationary-satellite round trip, which leaves
/// room for one lost segment retransmitted after TCP's initial 1 s RTO (RFC 6298 §2.1).
pub const TLS_HANDSHAKE_TIMEOUT_MS_DEFAULT: u64 = 2_000;
/// Default `[limits] max_connections`: connections open at once on one listener (public or
/// relay), TLS established or in handshake. Each costs a file descriptor and an HTTP/2
/// connection's buffers; the node raises its descriptor limit at start for three listeners'
/// worth (`fdlimit`, ARCHITECTURE.md "Listeners").
pub const CONNECTIONS_MAX_DEFAULT: usize = 1_024;
/// Default `[limits] max_connections_per_source`: connections one source (an IPv4 address, an
/// IPv6 /64) may hold on one listener. Well below [`CONNECTIONS_MAX_DEFAULT`], so one source
/// cannot take the listener: sixteen sources at the cap would be needed to fill it. A bank's
/// clients behind one NAT address each hold one HTTP/2 connection.
pub const CONNECTIONS_PER_SOURCE_MAX_DEFAULT: usize = 64;
/// Default `[limits] max_handshakes`: TLS handshakes in flight at once on one listener. A
/// handshake costs one signature and a chain recognition, well under a millisecond of CPU; the
/// bound caps the memory of half-open connections.
pub const HANDSHAKES_MAX_DEFAULT: usize = 256;
/// Default `[limits] max_handshakes_per_source`: handshakes one source may have in flight on
/// one listener; more are refused at once, not queued, so a source stalling handshakes never
/// delays another's.
pub const HANDSHAKES_PER_SOURCE_MAX_DEFAULT: usize = 16;
/// Default `[limits] idle_connection_timeout_secs`: a connection with no request or stream
/// open for this long is closed (a client reconnects on its next call, one handshake). Longer
/// than the HTTP/2 keepalive interval, so an idle peer connection between two nodes is kept
/// across a few quiet minutes.
pub const IDLE_CONNECTION_TIMEOUT_SECS_DEFAULT: u64 = 300;
/// Default `[limits] stream_idle_timeout_secs`: a `SubmitPayments` stream on which no
/// instruction arrives and none is in progress for this long is ended (DEADLINE_EXCEEDED).
pub const STREAM_IDLE_TIMEOUT_SECS_DEFAULT: u64 = 60;
/// Default `[limits] max_stream_lifetime_secs`: a `SubmitPayments` stream older than this
/// takes no new instruction; what it accepted is reported, then it ends (DEADLINE_EXCEEDED).
/// An hour is far longer than any replay file needs per stream; clients open a new one.
pub const STREAM_LIFETIME_SECS_MAX_DEFAULT: u64 = 3_600;
/// Default `[limits] max_metrics_connections`: connections open at once on the metrics
/// listener (a scraper holds one).
pub const METRICS_CONNECTIONS_MAX_DEFAULT: usize = 64;
/// Default `[limits] metrics_header_timeout_ms`: a metrics client must send its request
/// headers within this long after connecting (or after its previous response).
pub const METRICS_HEADER_TIMEOUT_MS_DEFAULT: u64 = 5_000;
/// Default `[limits] refusal_log_interval_ms`: listener refusals (over a cap, a failed or
/// timed-out handshake, an idle connection closed) are logged as one summary line per listener
/// per interval, with counts by reason, instead of a line per connection.
pub const REFUSAL_LOG_INTERVAL_MS_DEFAULT: u64 = 10_000;
/// Longest `[limits]` idle timeout or stream lifetime accepted: a day.
pub const LIFETIME_SECS_MAX: u64 = 86_400;
/// Default `[limits] http2_keepalive_interval_secs`: HTTP/2 PING interval (RFC 9113 §6.7), so a
/// dead peer connection is noticed within a minute.
pub const HTTP2_KEEPALIVE_INTERVAL_SECS_DEFAULT: u64 = 30;
/// Default `[limits] http2_keepalive_timeout_secs`: how long a PING may go unanswered.
pub const HTTP2_KEEPALIVE_TIMEOUT_SECS_DEFAULT: u64 = 10;
/// Shortest timeout accepted (milliseconds): below this a loaded 2-core node times out healthy
/// calls.
pub const TIMEOUT_MS_MIN: u64 = 100;
/// Longest timeout accepted (milliseconds): ten minutes.
pub const TIMEOUT_MS_MAX: u64 = 600_000;
/// Default `[limits] clock_skew_secs`: NTP-synchronised hosts stay within a second; 30 s
/// tolerates a badly synchronised one.
pub const CLOCK_SKEW_SECS_DEFAULT: u64 = 30;
/// Largest clock skew accepted: an hour.
pub const CLOCK_SKEW_SECS_MAX: u64 = 3_600;
/// Default `[limits] instruction_max_lifetime_secs`: how far after `created` an instruction's
/// `expiry` may lie.
pub const INSTRUCTION_LIFETIME_SECS_MAX_DEFAULT: u64 = 600;
/// Longest instruction lifetime accepted: a day.
pub const INSTRUCTION_LIFETIME_SECS_MAX_MAX: u64 = 86_400;
/// Default `[limits] stream_queue_len`: reports buffered per SubmitPayments stream.
pub const STREAM_QUEUE_LEN_DEFAULT: usize = 1_024;
/// Default `[limits] max_recovery_payments_per_pass`: a pass over payments in doubt works on at
/// most this many, oldest first, and the next pass starts at once with the rest; the bound
/// keeps each pass short, so the in-doubt gauge is updated and a stop is noticed often.
pub const RECOVERY_PAYMENTS_PER_PASS_MAX_DEFAULT: usize = 256;
/// Default `[limits] max_recovery_queries_per_peer`: status queries in flight to one peer at
/// once during recovery. A few in parallel hide the round trip; more would only add load on a
/// peer that may be struggling.
pub const RECOVERY_QUERIES_PER_PEER_MAX_DEFAULT: usize = 8;
/// Largest `[limits] max_recovery_queries_per_peer` accepted.
pub const RECOVERY_QUERIES_PER_PEER_MAX_MAX: usize = 256;
/// Default `[limits] drain_secs`: on SIGTERM or Ctrl-C the node takes no new payment and waits
/// this long for those in flight (longer than the relay timeout, so a Prepare in flight gets
/// its answer or its timeout), then stops; what is still unanswered is left to recovery.
pub const DRAIN_SECS_DEFAULT: u64 = 10;
/// Longest `[limits] drain_secs` accepted: ten minutes (service managers stop waiting long
/// before).
pub const DRAIN_SECS_MAX: u64 = 600;

/// A validated node configuration. Paths are absolute or relative to the process's working
/// directory (already resolved against the configuration file's directory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This node's jurisdiction, an agreement party code such as `JP` (two upper-case letters).
    pub jurisdiction: String,
    /// Where the node keeps its sled ledger and payment store.
    pub data_dir: PathBuf,
    /// The signed mutual-recognition agreement (`mra.toml`).
    pub mra: PathBuf,
    /// Listening addresses.
    pub listen: Listen,
    /// The node's TLS identity, presented on both listeners and to peers.
    pub tls: KeyPairPaths,
    /// The receipt- and quote-signing identity.
    pub signing: KeyPairPaths,
    /// Who may call the operator RPCs.
    pub admin: Admin,
    /// Counterparty nodes, one per jurisdiction.
    pub peers: Vec<Peer>,
    /// FX quoting.
    pub fx: Fx,
    /// Resource and protocol limits.
    pub limits: Limits,
    /// How the node's books are stored.
    pub storage: Storage,
    /// Screening lists.
    pub sanctions: Sanctions,
    /// Genesis accounts of the local ledger.
    pub accounts: Vec<Account>,
}

/// `[listen]`: the three listening sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listen {
    /// Payments + health + reflection, TLS with an optional client certificate.
    pub public: SocketAddr,
    /// Relay + health, mutual TLS under the agreement.
    pub relay: SocketAddr,
    /// Prometheus text at `GET /metrics`, plain HTTP (bind it to loopback).
    pub metrics: SocketAddr,
}

/// A certificate chain file (PEM, leaf first) and its PKCS#8 private key file (PEM).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyPairPaths {
    /// The chain, leaf first.
    pub cert: PathBuf,
    /// The leaf's private key.
    pub key: PathBuf,
}

/// `[admin]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Admin {
    /// PEM files whose first certificate is a leaf allowed to call OpenAccount, FundAccount and
    /// CloseAccount (compared byte for byte with the connection's client leaf). The leaf must
    /// also be recognized by this node's jurisdiction for the operator purpose (its own
    /// certificate with the operator EKU: neither the node's TLS certificate nor a bank's can
    /// be one), or the node refuses to start.
    pub operator_certs: Vec<PathBuf>,
    /// `max_funding`: the largest amount one FundAccount call may credit, in major units of
    /// the local currency; `[limits] max_payment` when not set. A ceiling per call bounds what
    /// one mistyped or stolen operator call can create; a ceiling per account would also cap
    /// what payments bring in and need a read-then-write race guard.
    pub funding_max: Option<Decimal>,
}

/// `[[peer]]`: a counterparty node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The peer's jurisdiction code.
    pub jurisdiction: String,
    /// The peer's relay listeners, `https://host:port` URIs, at least one and at most
    /// [`RELAYS_PER_PEER_MAX`]: the processes that serve the peer's node, all over the same
    /// books (see [`RelayAddress`]). Calls go to one of them and move on to the next when it
    /// cannot be reached.
    pub relays: Vec<Uri>,
    /// The name the peer's TLS certificates must carry (DNS name or IP address), when
    /// configured; otherwise each relay URI's host.
    pub server_name: Option<String>,
    /// Local account the sender reserves into for payments to this peer (kind `corridor`).
    pub corridor_account: u128,
    /// Local account that funds credits for payments from this peer (kind `liquidity`).
    pub liquidity_account: u128,
}

/// One relay listener of a peer (`[[peer]] relay`, one URI or a list of them).
///
/// Several addresses name processes of one node that share its books (issue 15: several
/// processes per jurisdiction over one database). A Prepare or a status query that could not
/// reach one is sent again to the next; that is safe only because the peer decides a payment
/// once, in its books, whichever process is asked. Listing processes that keep separate books
/// would let one payment be decided twice: that is the peer operator's promise to keep.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayAddress {
    /// The listener, an `https://host:port` URI.
    pub uri: Uri,
    /// The name its TLS certificate must carry (DNS name or IP address): the peer's
    /// `server_name` when set, else the URI's host.
    pub server_name: String,
}

impl Peer {
    /// The relay addresses in the configured order, each with the server name its
    /// certificate must carry.
    pub fn relay_addresses(&self) -> Vec<RelayAddress> {
        self.relays
            .iter()
            .map(|uri| RelayAddress {
                uri: uri.clone(),
                server_name: self.server_name_of(uri),
            })
            .collect()
    }

    /// The name the peer's first relay address must carry in its certificate (the name a tool
    /// that knows this node's configuration expects of the peer).
    pub fn server_name(&self) -> String {
        self.relays
            .first()
            .map(|uri| self.server_name_of(uri))
            .unwrap_or_default()
    }

    fn server_name_of(&self, uri: &Uri) -> String {
        match &self.server_name {
            Some(name) => name.clone(),
            // A checked relay URI has a host; strip IPv6 brackets for ServerName.
            None => uri
                .host()
                .unwrap_or_default()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
        }
    }
}

/// `[fx]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fx {
    /// The node's margin below the mid rate, in basis points (≤ [`SPREAD_BPS_MAX`]).
    pub spread_bps: u32,
    /// How long a quote stays valid, in seconds.
    pub quote_ttl_secs: u64,
    /// How far, in basis points, the rate of a peer's quote may be from the inverse of this
    /// node's mid rate for that peer's currency (1 to [`RATE_BAND_BPS_MAX`]); a Prepare at a
    /// rate outside the band is refused (RR04).
    pub rate_band_bps: u32,
    /// Mid rates: one unit of the local currency expressed in the keyed currency (ISO 4217
    /// alphabetic code), e.g. `SGD = "0.0087"` on a JPY node.
    pub mid: BTreeMap<String, Decimal>,
}

/// `[limits]`. Every field has a default (the `*_DEFAULT` constants of this module). The TOML
/// keys of the bounds read `max_*` (`max_payment`, `max_message_bytes`,
/// `instruction_max_lifetime_secs`, ...), as node configurations have always written them; the
/// fields put the qualifier last (`payment_max`, `message_bytes_max`,
/// `instruction_lifetime_secs_max`), and errors name the TOML key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest single payment, in major units of the local currency.
    pub payment_max: Decimal,
    /// Largest encoded gRPC message, either direction, on every service.
    pub message_bytes_max: usize,
    /// Requests in flight across all connections of one listener.
    pub concurrent_requests_max: usize,
    /// Requests in flight on one connection.
    pub concurrent_requests_per_connection_max: usize,
    /// HTTP/2 streams a client may open on one connection.
    pub concurrent_streams_max: u32,
    /// Deadline of one participant call on the public listener (and of relay calls served).
    pub request_timeout_ms: u64,
    /// Deadline of one outgoing relay call (Prepare, GetStatus); less than `request_timeout_ms`.
    pub relay_timeout_ms: u64,
    /// TCP connect timeout towards a peer.
    pub connect_timeout_ms: u64,
    /// TLS handshake timeout on accepted connections.
    pub tls_handshake_timeout_ms: u64,
    /// Connections open at once on the public listener, and on the relay listener.
    pub connections_max: usize,
    /// Connections one source (IPv4 address, IPv6 /64) may hold on one listener.
    pub connections_per_source_max: usize,
    /// TLS handshakes in flight at once on one listener.
    pub handshakes_max: usize,
    /// TLS handshakes one source may have in flight on one listener.
    pub handshakes_per_source_max: usize,
    /// A connection with no request or stream open for this long is closed.
    pub idle_connection_timeout_secs: u64,
    /// A `SubmitPayments` or `Prepares` stream with nothing arriving or in progress for this
    /// long is ended.
    pub stream_idle_timeout_secs: u64,
    /// A `SubmitPayments` or `Prepares` stream older than this takes no new instruction and
    /// ends.
    pub stream_lifetime_secs_max: u64,
    /// Connections open at once on the metrics listener.
    pub metrics_connections_max: usize,
    /// Time a metrics client has to send its request headers.
    pub metrics_header_timeout_ms: u64,
    /// Interval of the listeners' refusal summary lines.
    pub refusal_log_interval_ms: u64,
    /// HTTP/2 keepalive PING interval.
    pub http2_keepalive_interval_secs: u64,
    /// HTTP/2 keepalive PING timeout.
    pub http2_keepalive_timeout_secs: u64,
    /// Clock difference tolerated between nodes and participants.
    pub clock_skew_secs: u64,
    /// Longest `expiry − created` of an instruction.
    pub instruction_lifetime_secs_max: u64,
    /// Reports buffered per SubmitPayments stream (answers per Prepares stream).
    pub stream_queue_len: usize,
    /// Most payments in doubt one recovery pass works on.
    pub recovery_payments_per_pass_max: usize,
    /// Most recovery status queries in flight to one peer.
    pub recovery_queries_per_peer_max: usize,
    /// Longest wait, at a graceful stop, for the payments in flight (0: none).
    pub drain_secs: u64,
    /// Most free quotes (issued, not yet taken) one asker holds: each bank by its
    /// participant-TLS identity, and everyone without one together.
    pub free_quotes_per_asker_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            payment_max: Decimal(PAYMENT_MAX_DEFAULT.to_owned()),
            message_bytes_max: MESSAGE_BYTES_MAX_DEFAULT,
            concurrent_requests_max: CONCURRENT_REQUESTS_MAX_DEFAULT,
            concurrent_requests_per_connection_max: CONCURRENT_REQUESTS_PER_CONNECTION_MAX_DEFAULT,
            concurrent_streams_max: CONCURRENT_STREAMS_MAX_DEFAULT,
            request_timeout_ms: REQUEST_TIMEOUT_MS_DEFAULT,
            relay_timeout_ms: RELAY_TIMEOUT_MS_DEFAULT,
            connect_timeout_ms: CONNECT_TIMEOUT_MS_DEFAULT,
            tls_handshake_timeout_ms: TLS_HANDSHAKE_TIMEOUT_MS_DEFAULT,
            connections_max: CONNECTIONS_MAX_DEFAULT,
            connections_per_source_max: CONNECTIONS_PER_SOURCE_MAX_DEFAULT,
            handshakes_max: HANDSHAKES_MAX_DEFAULT,
            handshakes_per_source_max: HANDSHAKES_PER_SOURCE_MAX_DEFAULT,
            idle_connection_timeout_secs: IDLE_CONNECTION_TIMEOUT_SECS_DEFAULT,
            stream_idle_timeout_secs: STREAM_IDLE_TIMEOUT_SECS_DEFAULT,
            stream_lifetime_secs_max: STREAM_LIFETIME_SECS_MAX_DEFAULT,
            metrics_connections_max: METRICS_CONNECTIONS_MAX_DEFAULT,
            metrics_header_timeout_ms: METRICS_HEADER_TIMEOUT_MS_DEFAULT,
            refusal_log_interval_ms: REFUSAL_LOG_INTERVAL_MS_DEFAULT,
            http2_keepalive_interval_secs: HTTP2_KEEPALIVE_INTERVAL_SECS_DEFAULT,
            http2_keepalive_timeout_secs: HTTP2_KEEPALIVE_TIMEOUT_SECS_DEFAULT,
            clock_skew_secs: CLOCK_SKEW_SECS_DEFAULT,
            instruction_lifetime_secs_max: INSTRUCTION_LIFETIME_SECS_MAX_DEFAULT,
            stream_queue_len: STREAM_QUEUE_LEN_DEFAULT,
            recovery_payments_per_pass_max: RECOVERY_PAYMENTS_PER_PASS_MAX_DEFAULT,
            recovery_queries_per_peer_max: RECOVERY_QUERIES_PER_PEER_MAX_DEFAULT,
            drain_secs: DRAIN_SECS_DEFAULT,
            free_quotes_per_asker_max: crate::engine::QUOTES_PER_ASKER_MAX,
        }
    }
}

/// `[storage]`: how the node's books (ledger and payment records) are stored: an embedded sled
/// database under `data_dir` (the default), or a schema of a PostgreSQL database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Storage {
    /// `cache_mib`: the ledger's sled page-cache budget in MiB ([`STORAGE_CACHE_MIB_MIN`] to
    /// [`STORAGE_CACHE_MIB_MAX`], default [`STORAGE_CACHE_MIB_DEFAULT`]). sled's memory is a
    /// multiple of it (ARCHITECTURE.md, "Memory"). Only for the sled backend.
    pub cache_mib: u64,
    /// `backend` and its keys.
    pub backend: StorageBackend,
}

impl Default for Storage {
    fn default() -> Self {
        Self {
            cache_mib: STORAGE_CACHE_MIB_DEFAULT,
            backend: StorageBackend::Sled,
        }
    }
}

impl Storage {
    /// The page-cache budget in bytes, as the ledger's options take it.
    pub fn cache_bytes(&self) -> u64 {
        // At most STORAGE_CACHE_MIB_MAX MiB once validated, far from overflowing.
        self.cache_mib.saturating_mul(MIB)
    }
}

/// `[storage] backend`: where the books live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageBackend {
    /// `"sled"`: an embedded sled database in `<data_dir>/ledger`, held by one process.
    Sled,
    /// `"postgres"`: a schema of a PostgreSQL database, which several node processes of one
    /// jurisdiction may share.
    Postgres(PostgresStorage),
}

/// `[storage] backend = "postgres"` and its keys.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresStorage {
    /// `url`: the database, as a libpq-style URL or key=value string
    /// (`postgresql://kakehashi@db.example/kakehashi`, `host=/run/postgresql dbname=kakehashi`).
    /// It may carry a password; `Debug` does not show it.
    pub url: String,
    /// `schema`: the node's schema in that database, created when missing ([`schema_name_ok`]);
    /// default `kakehashi_` and the jurisdiction in lower case, so the nodes of several
    /// jurisdictions can share a database.
    pub schema: String,
    /// `pool_size`: connections this process opens ([`POSTGRES_POOL_SIZE_MIN`] to
    /// [`POSTGRES_POOL_SIZE_MAX`], default [`POSTGRES_POOL_SIZE_DEFAULT`]); one is the
    /// writer's.
    pub pool_size: usize,
}

impl fmt::Debug for PostgresStorage {
    // The URL may hold a password: logs and error messages show the schema and pool only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStorage")
            .field("url", &"<not shown>")
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// Default `[storage] pool_size`.
pub const POSTGRES_POOL_SIZE_DEFAULT: usize = 8;
/// Least `[storage] pool_size`: the writer's connection and one for reads.
pub const POSTGRES_POOL_SIZE_MIN: usize = 2;
/// Largest `[storage] pool_size`: beyond it a process would hold more of the server's
/// connections (100 by default) than one node process can use.
pub const POSTGRES_POOL_SIZE_MAX: usize = 64;
/// Longest schema name: PostgreSQL's identifier limit (NAMEDATALEN − 1).
pub const SCHEMA_NAME_LEN_MAX: usize = 63;

/// Whether `name` is a schema name the node accepts: 1 to [`SCHEMA_NAME_LEN_MAX`] lower-case
/// ASCII letters, digits and `_`, starting with a letter, so that it never needs quoting and
/// never names a system schema (`pg_…` is refused too).
pub fn schema_name_ok(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && name.len() <= SCHEMA_NAME_LEN_MAX
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
        && !name.starts_with("pg_")
}

/// The default schema of a node of `jurisdiction`.
pub fn default_schema(jurisdiction: &str) -> String {
    format!("kakehashi_{}", jurisdiction.to_ascii_lowercase())
}

/// `[sanctions]`: parties a payment may not involve (regulatory reason RR04). The inline
/// lists and the list file add up; [`crate::screening`] says how names are matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sanctions {
    /// Party names (debtor or creditor) a payment may not carry.
    pub names: Vec<String>,
    /// Agent BICs (8 or 11 characters).
    pub bics: Vec<String>,
    /// Account ids, on either ledger.
    pub accounts: Vec<u128>,
    /// The list file (CSV, [`crate::screening::list`]), read at start and again on each
    /// reload (SIGHUP).
    pub list: Option<PathBuf>,
    /// The similarity a name must reach to match a listed one, in ten-thousandths
    /// (`threshold = 0.90` is 9000).
    pub threshold_bp: u16,
}

impl Default for Sanctions {
    fn default() -> Self {
        Self {
            names: Vec::new(),
            bics: Vec::new(),
            accounts: Vec::new(),
            list: None,
            threshold_bp: SANCTIONS_THRESHOLD_BP_DEFAULT,
        }
    }
}

/// Default `[sanctions] threshold`, in ten-thousandths: [`crate::screening::THRESHOLD_DEFAULT`]
/// says why 0.90.
pub const SANCTIONS_THRESHOLD_BP_DEFAULT: u16 = 9000;
/// Lowest `[sanctions] threshold` accepted, in ten-thousandths
/// ([`crate::screening::THRESHOLD_MIN`]).
pub const SANCTIONS_THRESHOLD_BP_MIN: u16 = 7500;

/// `[[account]]`: a genesis account of the local ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// Non-zero account id.
    pub id: u128,
    /// What the account is for.
    pub kind: AccountKind,
    /// The BIC of the bank holding a customer account; empty for node-internal accounts.
    pub owner_bic: String,
    /// A human-readable name (≤ [`NAME_CHARS_MAX`] characters; may be empty).
    pub name: String,
    /// Balance at genesis, in major units of the local currency.
    pub opening_balance: Decimal,
}

/// A non-negative decimal number as written in the configuration (`"5000000"`, `"0.0087"`),
/// syntax-checked: ASCII digits, at most one point with digits on both sides, no sign, no
/// exponent, no superfluous leading zero, at most [`DECIMAL_DIGITS_MAX`] digits.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Decimal(String);

impl Decimal {
    /// The text, exactly as configured.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks `text` with at most `fraction_max` fraction digits.
    fn parse(text: &str, fraction_max: usize) -> Result<Self, String> {
        let (int, frac) = match text.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (text, None),
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(int) || frac.is_some_and(|f| !all_digits(f)) {
            return Err(format!(
                "`{text}` is not a plain decimal; write digits with an optional fraction, \
                 e.g. \"1500\" or \"0.0087\""
            ));
        }
        if int.len() > 1 && int.starts_with('0') {
            return Err(format!("`{text}` has a leading zero; write it without"));
        }
        let fraction = frac.map_or(0, str::len);
        if fraction > fraction_max {
            return Err(format!(
                "`{text}` has {fraction} fraction digits; at most {fraction_max} are allowed"
            ));
        }
        if int.len() + fraction > DECIMAL_DIGITS_MAX {
            return Err(format!(
                "`{text}` has more than {DECIMAL_DIGITS_MAX} digits"
            ));
        }
        Ok(Self(text.to_owned()))
    }

    fn is_zero(&self) -> bool {
        self.0.bytes().all(|b| b == b'0' || b == b'.')
    }
}

impl std::str::FromStr for Decimal {
    type Err = String;

    /// An amount as the configuration writes one (at most [`AMOUNT_FRACTION_DIGITS_MAX`]
    /// fraction digits), for configurations built in code.
    fn from_str(text: &str) -> Result<Self, String> {
        Self::parse(text, AMOUNT_FRACTION_DIGITS_MAX)
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is larger than [`CONFIG_BYTES_MAX`].
    #[error("config {path} is {len} bytes, more than the {max} accepted; is this the right file?")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
        /// The bound.
        max: u64,
    },
    /// The text is not TOML, or has an unknown key, a missing key or a value of the wrong type
    /// (the message gives line and column).
    #[error("config is not a valid node configuration: {message}")]
    Syntax {
        /// The TOML deserializer's message.
        message: String,
    },
    /// A value breaks a rule; `key` names it, `message` says what to change.
    #[error("{key}: {message}")]
    Invalid {
        /// The key or section, e.g. `listen.relay`, `peer SG`, `account 1001`.
        key: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// An error in the named file.
    #[error("config {path}: {source}")]
    InFile {
        /// The file.
        path: PathBuf,
        /// The error.
        source: Box<Self>,
    },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

impl Config {
    /// The same configuration with another data directory (the devnet runs nodes under a
    /// directory of its choice).
    pub fn with_data_dir(mut self, data_dir: impl Into<PathBuf>) -> Self {
        self.data_dir = data_dir.into();
        self
    }

    /// The same configuration with other ports on the configured addresses (0 lets the
    /// operating system choose; the server reports the bound addresses).
    pub fn with_ports(mut self, public: u16, relay: u16, metrics: u16) -> Self {
        self.listen.public.set_port(public);
        self.listen.relay.set_port(relay);
        self.listen.metrics.set_port(metrics);
        self
    }

    /// The same configuration with the relay URI of the peer of `jurisdiction` replaced by
    /// `relay` alone (after the peer was started on a port chosen at run time). A configured
    /// server name is kept.
    pub fn with_peer_relay(self, jurisdiction: &str, relay: &str) -> Result<Self, ConfigError> {
        self.with_peer_relays(jurisdiction, &[relay])
    }

    /// The same configuration with the relay URIs of the peer of `jurisdiction` replaced by
    /// `relays`, in order. A configured server name is kept.
    pub fn with_peer_relays(
        mut self,
        jurisdiction: &str,
        relays: &[&str],
    ) -> Result<Self, ConfigError> {
        let key = format!("peer {jurisdiction}");
        let peer = self
            .peers
            .iter_mut()
            .find(|p| p.jurisdiction == jurisdiction)
            .ok_or_else(|| invalid(&key, "no [[peer]] has this jurisdiction"))?;
        peer.relays = relays
            .iter()
            .map(|relay| parse_relay_uri(&key, relay))
            .collect::<Result<_, ConfigError>>()?;
        rules::check_relays(&key, peer)?;
        Ok(self)
    }

    /// The peer of `jurisdiction`, if configured.
    pub fn peer(&self, jurisdiction: &str) -> Option<&Peer> {
        self.peers.iter().find(|p| p.jurisdiction == jurisdiction)
    }

    /// The genesis account `id`, if configured.
    pub fn account(&self, id: u128) -> Option<&Account> {
        self.accounts.iter().find(|a| a.id == id)
    }

    /// The funding account (exactly one exists in a validated configuration).
    pub fn funding_account(&self) -> Option<&Account> {
        self.accounts
            .iter()
            .find(|a| a.kind == AccountKind::Funding)
    }
}

#[cfg(test)]
mod tests;
