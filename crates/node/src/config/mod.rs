//! The node's TOML configuration: jurisdiction, listeners, identities, the agreement, peers,
//! FX, limits, sanctions and genesis accounts.
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
//! to `money.rs`, which knows the currency table.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use tonic::transport::Uri;

/// Largest configuration file read: a node with thousands of genesis accounts and a long
/// sanctions list stays far below this, and the bound keeps a wrong path (a disk image, a log)
/// from being read into memory.
pub const CONFIG_BYTES_MAX: u64 = 4 * 1024 * 1024;

/// Most `[[account]]` entries: genesis accounts for a development or test node. Production
/// accounts are opened through the operator API, not the configuration.
pub const ACCOUNTS_MAX: usize = 10_000;

/// Most `[[peer]]` entries: one per counterparty jurisdiction; ASEAN has ten members.
pub const PEERS_MAX: usize = 64;

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

/// Default `[limits] max_payment` in major units of the local currency: a high-value ceiling
/// that still bounds a mistyped amount.
pub const MAX_PAYMENT_DEFAULT: &str = "100000000";
/// Default `[limits] max_message_bytes`: a signed instruction with a two-certificate chain is
/// about 3 KiB; 64 KiB leaves room for long chains and names while bounding decode work.
pub const MAX_MESSAGE_BYTES_DEFAULT: usize = 64 * 1024;
/// Smallest `max_message_bytes` accepted: below 4 KiB a normal signed instruction would not fit.
pub const MAX_MESSAGE_BYTES_MIN: usize = 4 * 1024;
/// Largest `max_message_bytes` accepted: tonic's own default ceiling is 4 MiB; 16 MiB is the
/// most any kakehashi message could need (a balance listing of every genesis account).
pub const MAX_MESSAGE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Default `[limits] max_concurrent_requests`, across all connections of one listener: two
/// cores verify about ten thousand Ed25519 signatures a second, so 256 in flight keeps the
/// queue under a few tens of milliseconds.
pub const MAX_CONCURRENT_REQUESTS_DEFAULT: usize = 256;
/// Default `[limits] max_concurrent_requests_per_connection`: one client cannot take the
/// whole node.
pub const MAX_CONCURRENT_REQUESTS_PER_CONNECTION_DEFAULT: usize = 64;
/// Default `[limits] max_concurrent_streams`: HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS
/// (RFC 9113 §6.5.2) advertised per connection.
pub const MAX_CONCURRENT_STREAMS_DEFAULT: u32 = 128;
/// Upper bound for every concurrency limit.
pub const CONCURRENCY_MAX: usize = 65_536;
/// Default `[limits] request_timeout_ms`: a participant's call, including the relay round trip.
pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 5_000;
/// Default `[limits] relay_timeout_ms`: the node-to-node Prepare; shorter than the request
/// timeout so the sender can still answer PDNG before its caller gives up.
pub const RELAY_TIMEOUT_MS_DEFAULT: u64 = 3_000;
/// Default `[limits] connect_timeout_ms`: TCP connect to a peer node.
pub const CONNECT_TIMEOUT_MS_DEFAULT: u64 = 2_000;
/// Default `[limits] tls_handshake_timeout_ms`: a peer that opens TCP and stalls the TLS
/// handshake holds a slot no longer than this.
pub const TLS_HANDSHAKE_TIMEOUT_MS_DEFAULT: u64 = 5_000;
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
pub const INSTRUCTION_MAX_LIFETIME_SECS_DEFAULT: u64 = 600;
/// Longest instruction lifetime accepted: a day.
pub const INSTRUCTION_MAX_LIFETIME_SECS_MAX: u64 = 86_400;
/// Default `[limits] stream_queue_len`: reports buffered per SubmitPayments stream.
pub const STREAM_QUEUE_LEN_DEFAULT: usize = 1_024;

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
    /// CloseAccount (compared byte for byte with the connection's client leaf).
    pub operator_certs: Vec<PathBuf>,
}

/// `[[peer]]`: a counterparty node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// The peer's jurisdiction code.
    pub jurisdiction: String,
    /// The peer's relay listener, an `https://host:port` URI.
    pub relay: Uri,
    /// The name the peer's TLS certificate must carry (DNS name or IP address); defaults to the
    /// relay URI's host.
    pub server_name: String,
    /// Local account the sender reserves into for payments to this peer (kind `corridor`).
    pub corridor_account: u128,
    /// Local account that funds credits for payments from this peer (kind `liquidity`).
    pub liquidity_account: u128,
}

/// `[fx]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fx {
    /// The node's margin below the mid rate, in basis points (≤ [`SPREAD_BPS_MAX`]).
    pub spread_bps: u32,
    /// How long a quote stays valid, in seconds.
    pub quote_ttl_secs: u64,
    /// Mid rates: one unit of the local currency expressed in the keyed currency (ISO 4217
    /// alphabetic code), e.g. `SGD = "0.0087"` on a JPY node.
    pub mid: BTreeMap<String, Decimal>,
}

/// `[limits]`. Every field has a default (the `*_DEFAULT` constants of this module).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest single payment, in major units of the local currency.
    pub max_payment: Decimal,
    /// Largest encoded gRPC message, either direction, on every service.
    pub max_message_bytes: usize,
    /// Requests in flight across all connections of one listener.
    pub max_concurrent_requests: usize,
    /// Requests in flight on one connection.
    pub max_concurrent_requests_per_connection: usize,
    /// HTTP/2 streams a client may open on one connection.
    pub max_concurrent_streams: u32,
    /// Deadline of one participant call on the public listener (and of relay calls served).
    pub request_timeout_ms: u64,
    /// Deadline of one outgoing relay call (Prepare, GetStatus); less than `request_timeout_ms`.
    pub relay_timeout_ms: u64,
    /// TCP connect timeout towards a peer.
    pub connect_timeout_ms: u64,
    /// TLS handshake timeout on accepted connections.
    pub tls_handshake_timeout_ms: u64,
    /// HTTP/2 keepalive PING interval.
    pub http2_keepalive_interval_secs: u64,
    /// HTTP/2 keepalive PING timeout.
    pub http2_keepalive_timeout_secs: u64,
    /// Clock difference tolerated between nodes and participants.
    pub clock_skew_secs: u64,
    /// Longest `expiry − created` of an instruction.
    pub instruction_max_lifetime_secs: u64,
    /// Reports buffered per SubmitPayments stream.
    pub stream_queue_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_payment: Decimal(MAX_PAYMENT_DEFAULT.to_owned()),
            max_message_bytes: MAX_MESSAGE_BYTES_DEFAULT,
            max_concurrent_requests: MAX_CONCURRENT_REQUESTS_DEFAULT,
            max_concurrent_requests_per_connection: MAX_CONCURRENT_REQUESTS_PER_CONNECTION_DEFAULT,
            max_concurrent_streams: MAX_CONCURRENT_STREAMS_DEFAULT,
            request_timeout_ms: REQUEST_TIMEOUT_MS_DEFAULT,
            relay_timeout_ms: RELAY_TIMEOUT_MS_DEFAULT,
            connect_timeout_ms: CONNECT_TIMEOUT_MS_DEFAULT,
            tls_handshake_timeout_ms: TLS_HANDSHAKE_TIMEOUT_MS_DEFAULT,
            http2_keepalive_interval_secs: HTTP2_KEEPALIVE_INTERVAL_SECS_DEFAULT,
            http2_keepalive_timeout_secs: HTTP2_KEEPALIVE_TIMEOUT_SECS_DEFAULT,
            clock_skew_secs: CLOCK_SKEW_SECS_DEFAULT,
            instruction_max_lifetime_secs: INSTRUCTION_MAX_LIFETIME_SECS_DEFAULT,
            stream_queue_len: STREAM_QUEUE_LEN_DEFAULT,
        }
    }
}

/// `[sanctions]`: parties a payment may not involve (regulatory reason RR04).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sanctions {
    /// Party names (debtor or creditor) a payment may not carry.
    pub names: Vec<String>,
    /// Agent BICs (8 or 11 characters).
    pub bics: Vec<String>,
    /// Account ids, on either ledger.
    pub accounts: Vec<u128>,
}

/// What a ledger account is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountKind {
    /// Holds reservations of outgoing payments to one peer.
    Corridor,
    /// A bank's customer account; payments debit and credit these.
    Customer,
    /// The node's cash-in account (FundAccount and opening balances come from it).
    Funding,
    /// Funds credits of incoming payments from one peer.
    Liquidity,
}

impl AccountKind {
    /// The name used in the configuration and on the wire (`AccountBalance.kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Corridor => "corridor",
            Self::Customer => "customer",
            Self::Funding => "funding",
            Self::Liquidity => "liquidity",
        }
    }
}

impl fmt::Display for AccountKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    /// Reads and validates the configuration at `path`; relative paths in it resolve against
    /// the file's directory.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let read = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        let len = std::fs::metadata(path).map_err(read)?.len();
        if len > CONFIG_BYTES_MAX {
            return Err(ConfigError::TooLarge {
                path: path.to_owned(),
                len,
                max: CONFIG_BYTES_MAX,
            });
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        let base = path.parent().unwrap_or_else(|| Path::new(""));
        Self::parse(&text, base).map_err(|source| ConfigError::InFile {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// Parses and validates configuration text; relative paths resolve against `base_dir`.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            message: e.to_string(),
        })?;
        let config = raw.resolve(base_dir)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every cross-field rule. [`Config::parse`] calls it; call it again after changing
    /// fields by hand.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_jurisdiction("jurisdiction", &self.jurisdiction)?;
        self.validate_listen()?;
        self.validate_accounts()?;
        self.validate_peers()?;
        self.validate_fx()?;
        self.validate_limits()?;
        self.validate_sanctions()?;
        Ok(())
    }

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

    /// The same configuration with the relay URI of the peer of `jurisdiction` replaced (after
    /// the peer was started on a port chosen at run time). The server name is kept.
    pub fn with_peer_relay(mut self, jurisdiction: &str, relay: &str) -> Result<Self, ConfigError> {
        let key = format!("peer {jurisdiction}");
        let uri = parse_relay_uri(&key, relay)?;
        let peer = self
            .peers
            .iter_mut()
            .find(|p| p.jurisdiction == jurisdiction)
            .ok_or_else(|| invalid(&key, "no [[peer]] has this jurisdiction"))?;
        peer.relay = uri;
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

    fn validate_listen(&self) -> Result<(), ConfigError> {
        let Listen {
            public,
            relay,
            metrics,
        } = self.listen;
        let named = [
            ("listen.public", public),
            ("listen.relay", relay),
            ("listen.metrics", metrics),
        ];
        for (i, (key, addr)) in named.iter().enumerate() {
            for (other_key, other) in &named[i + 1..] {
                if addr.port() != 0 && addr == other {
                    return Err(invalid(
                        *key,
                        format!("{addr} is also {other_key}; give each listener its own port"),
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_accounts(&self) -> Result<(), ConfigError> {
        if self.accounts.len() > ACCOUNTS_MAX {
            return Err(invalid(
                "account",
                format!(
                    "{} accounts, more than the {ACCOUNTS_MAX} accepted; open the rest through \
                     the operator API",
                    self.accounts.len()
                ),
            ));
        }
        let mut seen = BTreeSet::new();
        for account in &self.accounts {
            let key = format!("account {}", account.id);
            if account.id == 0 {
                return Err(invalid(
                    "account",
                    "id 0 is not a valid account id; use 1 or more",
                ));
            }
            if !seen.insert(account.id) {
                return Err(invalid(
                    key,
                    "declared twice; give each [[account]] its own id",
                ));
            }
            check_name(&key, &account.name)?;
            match account.kind {
                AccountKind::Customer => {
                    check_bic(&format!("{key}.owner_bic"), &account.owner_bic)?;
                    let country = account.owner_bic.get(4..6).unwrap_or_default();
                    if country != self.jurisdiction {
                        return Err(invalid(
                            format!("{key}.owner_bic"),
                            format!(
                                "{} is a bank of {country} (BIC characters 5-6), but this node's \
                                 jurisdiction is {}; customer accounts belong to local banks",
                                account.owner_bic, self.jurisdiction
                            ),
                        ));
                    }
                }
                kind if !account.owner_bic.is_empty() => {
                    return Err(invalid(
                        format!("{key}.owner_bic"),
                        format!(
                            "a {kind} account is node-internal and has no owner bank; remove \
                             owner_bic"
                        ),
                    ));
                }
                _ => {}
            }
        }
        let funding = self
            .accounts
            .iter()
            .filter(|a| a.kind == AccountKind::Funding)
            .count();
        if funding != 1 {
            return Err(invalid(
                "account",
                format!(
                    "{funding} accounts have kind = \"funding\"; declare exactly one (the node's \
                     cash-in account)"
                ),
            ));
        }
        Ok(())
    }

    fn validate_peers(&self) -> Result<(), ConfigError> {
        if self.peers.len() > PEERS_MAX {
            return Err(invalid(
                "peer",
                format!(
                    "{} peers, more than the {PEERS_MAX} accepted",
                    self.peers.len()
                ),
            ));
        }
        let mut jurisdictions = BTreeSet::new();
        // Which peer already uses an account, so no account serves two roles.
        let mut used: BTreeMap<u128, String> = BTreeMap::new();
        for peer in &self.peers {
            check_jurisdiction("peer.jurisdiction", &peer.jurisdiction)?;
            let key = format!("peer {}", peer.jurisdiction);
            if peer.jurisdiction == self.jurisdiction {
                return Err(invalid(
                    key,
                    "is this node's own jurisdiction; a peer is another jurisdiction's node",
                ));
            }
            if !jurisdictions.insert(peer.jurisdiction.as_str()) {
                return Err(invalid(
                    key,
                    "declared twice; keep one [[peer]] per jurisdiction",
                ));
            }
            rustls::pki_types::ServerName::try_from(peer.server_name.as_str()).map_err(|_| {
                invalid(
                    &key,
                    format!(
                        "server_name `{}` is neither a DNS name nor an IP address; use a name \
                         from the peer certificate's subjectAltName",
                        peer.server_name
                    ),
                )
            })?;
            for (field, id, kind) in [
                (
                    "corridor_account",
                    peer.corridor_account,
                    AccountKind::Corridor,
                ),
                (
                    "liquidity_account",
                    peer.liquidity_account,
                    AccountKind::Liquidity,
                ),
            ] {
                let account = self.account(id).ok_or_else(|| {
                    invalid(
                        &key,
                        format!(
                            "{field} {id} is not declared in [[account]]; add an [[account]] \
                             with id = {id} and kind = \"{kind}\""
                        ),
                    )
                })?;
                if account.kind != kind {
                    return Err(invalid(
                        &key,
                        format!(
                            "{field} {id} is declared with kind = \"{}\"; it must be \"{kind}\"",
                            account.kind
                        ),
                    ));
                }
                if let Some(other) = used.insert(id, format!("{key}.{field}")) {
                    return Err(invalid(
                        &key,
                        format!("{field} {id} is also {other}; give each its own account"),
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_fx(&self) -> Result<(), ConfigError> {
        if self.fx.spread_bps > SPREAD_BPS_MAX {
            return Err(invalid(
                "fx.spread_bps",
                format!(
                    "{} basis points is not below 100 %; use at most {SPREAD_BPS_MAX}",
                    self.fx.spread_bps
                ),
            ));
        }
        if !(1..=QUOTE_TTL_SECS_MAX).contains(&self.fx.quote_ttl_secs) {
            return Err(invalid(
                "fx.quote_ttl_secs",
                format!("must be between 1 and {QUOTE_TTL_SECS_MAX} seconds"),
            ));
        }
        for (code, rate) in &self.fx.mid {
            let key = format!("fx.mid.{code}");
            if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(invalid(
                    key,
                    "is not an ISO 4217 alphabetic code; use three upper-case letters like SGD",
                ));
            }
            if rate.is_zero() {
                return Err(invalid(
                    key,
                    "a mid rate of zero would quote nothing; give the rate",
                ));
            }
        }
        if self.fx.mid.is_empty() && !self.peers.is_empty() {
            return Err(invalid(
                "fx.mid",
                "no mid rate is configured; add one per peer currency, e.g. SGD = \"0.0087\"",
            ));
        }
        Ok(())
    }

    fn validate_limits(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        if l.max_payment.is_zero() {
            return Err(invalid(
                "limits.max_payment",
                "zero would refuse every payment",
            ));
        }
        check_range(
            "limits.max_message_bytes",
            l.max_message_bytes as u64,
            MAX_MESSAGE_BYTES_MIN as u64,
            MAX_MESSAGE_BYTES_MAX as u64,
        )?;
        for (key, value) in [
            ("limits.max_concurrent_requests", l.max_concurrent_requests),
            (
                "limits.max_concurrent_requests_per_connection",
                l.max_concurrent_requests_per_connection,
            ),
            (
                "limits.max_concurrent_streams",
                l.max_concurrent_streams as usize,
            ),
            ("limits.stream_queue_len", l.stream_queue_len),
        ] {
            check_range(key, value as u64, 1, CONCURRENCY_MAX as u64)?;
        }
        for (key, value) in [
            ("limits.request_timeout_ms", l.request_timeout_ms),
            ("limits.relay_timeout_ms", l.relay_timeout_ms),
            ("limits.connect_timeout_ms", l.connect_timeout_ms),
            (
                "limits.tls_handshake_timeout_ms",
                l.tls_handshake_timeout_ms,
            ),
        ] {
            check_range(key, value, TIMEOUT_MS_MIN, TIMEOUT_MS_MAX)?;
        }
        if l.relay_timeout_ms >= l.request_timeout_ms {
            return Err(invalid(
                "limits.relay_timeout_ms",
                format!(
                    "{} ms is not below request_timeout_ms ({} ms); the sender must be able to \
                     answer PDNG before its caller's deadline",
                    l.relay_timeout_ms, l.request_timeout_ms
                ),
            ));
        }
        check_range(
            "limits.http2_keepalive_interval_secs",
            l.http2_keepalive_interval_secs,
            1,
            3_600,
        )?;
        check_range(
            "limits.http2_keepalive_timeout_secs",
            l.http2_keepalive_timeout_secs,
            1,
            3_600,
        )?;
        check_range(
            "limits.clock_skew_secs",
            l.clock_skew_secs,
            0,
            CLOCK_SKEW_SECS_MAX,
        )?;
        check_range(
            "limits.instruction_max_lifetime_secs",
            l.instruction_max_lifetime_secs,
            1,
            INSTRUCTION_MAX_LIFETIME_SECS_MAX,
        )?;
        Ok(())
    }

    fn validate_sanctions(&self) -> Result<(), ConfigError> {
        let s = &self.sanctions;
        for (key, len) in [
            ("sanctions.names", s.names.len()),
            ("sanctions.bics", s.bics.len()),
            ("sanctions.accounts", s.accounts.len()),
        ] {
            if len > SANCTIONS_ENTRIES_MAX {
                return Err(invalid(
                    key,
                    format!("{len} entries, more than the {SANCTIONS_ENTRIES_MAX} accepted"),
                ));
            }
        }
        for name in &s.names {
            if name.trim().is_empty() {
                return Err(invalid(
                    "sanctions.names",
                    "an empty name would match nothing; remove it",
                ));
            }
            check_name("sanctions.names", name)?;
        }
        for bic in &s.bics {
            check_bic("sanctions.bics", bic)?;
        }
        if s.accounts.contains(&0) {
            return Err(invalid(
                "sanctions.accounts",
                "0 is not an account id; remove it",
            ));
        }
        Ok(())
    }
}

fn check_range(key: &str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!("{value} is out of range; use a value from {min} to {max}"),
        ))
    }
}

fn check_jurisdiction(key: &str, code: &str) -> Result<(), ConfigError> {
    if code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!(
                "`{code}` is not a jurisdiction code; use the agreement's two upper-case letters, \
                 e.g. \"JP\""
            ),
        ))
    }
}

/// ISO 9362: 4 letters (institution), 2 letters (country), 2 alphanumerics (location), and
/// optionally 3 alphanumerics (branch).
fn check_bic(key: &str, bic: &str) -> Result<(), ConfigError> {
    let b = bic.as_bytes();
    let well_formed = (b.len() == 8 || b.len() == 11)
        && b[..6].iter().all(u8::is_ascii_uppercase)
        && b[6..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    if well_formed {
        Ok(())
    } else {
        Err(invalid(
            key,
            format!(
                "`{bic}` is not a BIC; use 8 or 11 upper-case characters, letters in the first \
                 six (ISO 9362), e.g. \"KKHAJPJ0\""
            ),
        ))
    }
}

fn check_name(key: &str, name: &str) -> Result<(), ConfigError> {
    let chars = name.chars().count();
    if chars > NAME_CHARS_MAX {
        return Err(invalid(
            key,
            format!("name has {chars} characters; ISO 20022 allows {NAME_CHARS_MAX}"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid(key, "name contains a control character; remove it"));
    }
    Ok(())
}

fn parse_relay_uri(key: &str, text: &str) -> Result<Uri, ConfigError> {
    let uri: Uri = text.parse().map_err(|e| {
        invalid(
            key,
            format!("relay `{text}` is not a URI ({e}); write https://host:port"),
        )
    })?;
    if uri.scheme_str() != Some("https") || uri.host().is_none() || uri.port_u16().is_none() {
        return Err(invalid(
            key,
            format!("relay `{text}` must be https://host:port (the relay is always TLS)"),
        ));
    }
    if uri.path() != "/" && !uri.path().is_empty() {
        return Err(invalid(
            key,
            format!("relay `{text}` has a path; write only https://host:port"),
        ));
    }
    Ok(uri)
}

/// `path` relative to `base` (an absolute `path` stays as it is).
fn resolve(base: &Path, key: &str, path: &str) -> Result<PathBuf, ConfigError> {
    if path.trim().is_empty() {
        return Err(invalid(key, "is empty; give a file or directory path"));
    }
    Ok(base.join(path))
}

// ---- the TOML shape --------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    jurisdiction: String,
    data_dir: String,
    mra: String,
    listen: RawListen,
    tls: RawKeyPair,
    signing: RawKeyPair,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default, rename = "peer")]
    peers: Vec<RawPeer>,
    fx: RawFx,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    sanctions: RawSanctions,
    #[serde(default, rename = "account")]
    accounts: Vec<RawAccount>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListen {
    public: String,
    relay: String,
    metrics: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeyPair {
    cert: String,
    key: String,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    #[serde(default)]
    operator_certs: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    jurisdiction: String,
    relay: String,
    server_name: Option<String>,
    corridor_account: AccountIdRepr,
    liquidity_account: AccountIdRepr,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFx {
    spread_bps: u32,
    #[serde(default = "quote_ttl_default")]
    quote_ttl_secs: u64,
    #[serde(default)]
    mid: BTreeMap<String, String>,
}

fn quote_ttl_default() -> u64 {
    QUOTE_TTL_SECS_DEFAULT
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_payment: Option<String>,
    max_message_bytes: Option<usize>,
    max_concurrent_requests: Option<usize>,
    max_concurrent_requests_per_connection: Option<usize>,
    max_concurrent_streams: Option<u32>,
    request_timeout_ms: Option<u64>,
    relay_timeout_ms: Option<u64>,
    connect_timeout_ms: Option<u64>,
    tls_handshake_timeout_ms: Option<u64>,
    http2_keepalive_interval_secs: Option<u64>,
    http2_keepalive_timeout_secs: Option<u64>,
    clock_skew_secs: Option<u64>,
    instruction_max_lifetime_secs: Option<u64>,
    stream_queue_len: Option<usize>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSanctions {
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    bics: Vec<String>,
    #[serde(default)]
    accounts: Vec<AccountIdRepr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    id: AccountIdRepr,
    kind: AccountKind,
    #[serde(default)]
    owner_bic: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    opening_balance: Option<String>,
}

/// An account id written as a TOML integer (up to 2^63 − 1) or a decimal string (up to
/// 2^128 − 1, for ids beyond TOML's 64-bit integers).
struct AccountIdRepr(u128);

impl<'de> Deserialize<'de> for AccountIdRepr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdVisitor;
        impl Visitor<'_> for IdVisitor {
            type Value = AccountIdRepr;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-zero account id: an integer, or a decimal string up to 2^128-1")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                match u128::try_from(v) {
                    Ok(id) if id != 0 => Ok(AccountIdRepr(id)),
                    _ => Err(E::custom(format!(
                        "account id {v} is not positive; use 1 or more"
                    ))),
                }
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                if v == 0 {
                    return Err(E::custom("account id 0 is not valid; use 1 or more"));
                }
                Ok(AccountIdRepr(u128::from(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                let digits_only = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
                match v.parse::<u128>() {
                    Ok(id) if digits_only && id != 0 => Ok(AccountIdRepr(id)),
                    _ => Err(E::custom(format!(
                        "account id \"{v}\" is not a non-zero decimal number below 2^128"
                    ))),
                }
            }
        }
        deserializer.deserialize_any(IdVisitor)
    }
}

impl RawConfig {
    fn resolve(self, base: &Path) -> Result<Config, ConfigError> {
        let addr = |key: &str, text: &str| -> Result<SocketAddr, ConfigError> {
            text.parse().map_err(|_| {
                invalid(
                    key,
                    format!(
                        "`{text}` is not a socket address; write ip:port, e.g. \"127.0.0.1:7100\""
                    ),
                )
            })
        };
        let listen = Listen {
            public: addr("listen.public", &self.listen.public)?,
            relay: addr("listen.relay", &self.listen.relay)?,
            metrics: addr("listen.metrics", &self.listen.metrics)?,
        };
        let mut peers = Vec::with_capacity(self.peers.len());
        for p in self.peers {
            let key = format!("peer {}", p.jurisdiction);
            let relay = parse_relay_uri(&key, &p.relay)?;
            let server_name = match p.server_name {
                Some(name) => name,
                // The URI was checked to have a host; strip IPv6 brackets for ServerName.
                None => relay
                    .host()
                    .unwrap_or_default()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
            };
            peers.push(Peer {
                jurisdiction: p.jurisdiction,
                relay,
                server_name,
                corridor_account: p.corridor_account.0,
                liquidity_account: p.liquidity_account.0,
            });
        }
        let mut mid = BTreeMap::new();
        for (code, text) in self.fx.mid {
            let rate = Decimal::parse(&text, RATE_FRACTION_DIGITS_MAX)
                .map_err(|m| invalid(format!("fx.mid.{code}"), m))?;
            mid.insert(code, rate);
        }
        let defaults = Limits::default();
        let l = self.limits;
        let limits = Limits {
            max_payment: match l.max_payment {
                Some(text) => Decimal::parse(&text, AMOUNT_FRACTION_DIGITS_MAX)
                    .map_err(|m| invalid("limits.max_payment", m))?,
                None => defaults.max_payment,
            },
            max_message_bytes: l.max_message_bytes.unwrap_or(defaults.max_message_bytes),
            max_concurrent_requests: l
                .max_concurrent_requests
                .unwrap_or(defaults.max_concurrent_requests),
            max_concurrent_requests_per_connection: l
                .max_concurrent_requests_per_connection
                .unwrap_or(defaults.max_concurrent_requests_per_connection),
            max_concurrent_streams: l
                .max_concurrent_streams
                .unwrap_or(defaults.max_concurrent_streams),
            request_timeout_ms: l.request_timeout_ms.unwrap_or(defaults.request_timeout_ms),
            relay_timeout_ms: l.relay_timeout_ms.unwrap_or(defaults.relay_timeout_ms),
            connect_timeout_ms: l.connect_timeout_ms.unwrap_or(defaults.connect_timeout_ms),
            tls_handshake_timeout_ms: l
                .tls_handshake_timeout_ms
                .unwrap_or(defaults.tls_handshake_timeout_ms),
            http2_keepalive_interval_secs: l
                .http2_keepalive_interval_secs
                .unwrap_or(defaults.http2_keepalive_interval_secs),
            http2_keepalive_timeout_secs: l
                .http2_keepalive_timeout_secs
                .unwrap_or(defaults.http2_keepalive_timeout_secs),
            clock_skew_secs: l.clock_skew_secs.unwrap_or(defaults.clock_skew_secs),
            instruction_max_lifetime_secs: l
                .instruction_max_lifetime_secs
                .unwrap_or(defaults.instruction_max_lifetime_secs),
            stream_queue_len: l.stream_queue_len.unwrap_or(defaults.stream_queue_len),
        };
        let mut accounts = Vec::with_capacity(self.accounts.len());
        for a in self.accounts {
            let opening_balance = match a.opening_balance {
                Some(text) => Decimal::parse(&text, AMOUNT_FRACTION_DIGITS_MAX)
                    .map_err(|m| invalid(format!("account {}.opening_balance", a.id.0), m))?,
                None => Decimal("0".to_owned()),
            };
            accounts.push(Account {
                id: a.id.0,
                kind: a.kind,
                owner_bic: a.owner_bic,
                name: a.name,
                opening_balance,
            });
        }
        Ok(Config {
            jurisdiction: self.jurisdiction,
            data_dir: resolve(base, "data_dir", &self.data_dir)?,
            mra: resolve(base, "mra", &self.mra)?,
            listen,
            tls: KeyPairPaths {
                cert: resolve(base, "tls.cert", &self.tls.cert)?,
                key: resolve(base, "tls.key", &self.tls.key)?,
            },
            signing: KeyPairPaths {
                cert: resolve(base, "signing.cert", &self.signing.cert)?,
                key: resolve(base, "signing.key", &self.signing.key)?,
            },
            admin: Admin {
                operator_certs: self
                    .admin
                    .operator_certs
                    .iter()
                    .map(|p| resolve(base, "admin.operator_certs", p))
                    .collect::<Result<_, _>>()?,
            },
            peers,
            fx: Fx {
                spread_bps: self.fx.spread_bps,
                quote_ttl_secs: self.fx.quote_ttl_secs,
                mid,
            },
            limits,
            sanctions: Sanctions {
                names: self.sanctions.names,
                bics: self.sanctions.bics,
                accounts: self.sanctions.accounts.into_iter().map(|a| a.0).collect(),
            },
            accounts,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The example of the relay design note, trimmed to what each test changes.
    const EXAMPLE: &str = r#"
jurisdiction = "JP"
data_dir = "data/jp"
mra = "../certs/mra.toml"
[listen]
public = "127.0.0.1:7100"
relay = "127.0.0.1:7101"
metrics = "127.0.0.1:7102"
[tls]
cert = "../certs/jp/node/tls.pem"
key = "../certs/jp/node/tls.key.pem"
[signing]
cert = "../certs/jp/node/receipt.pem"
key = "../certs/jp/node/receipt.key.pem"
[admin]
operator_certs = ["../certs/jp/node/tls.pem"]
[[peer]]
jurisdiction = "SG"
relay = "https://127.0.0.1:7201"
server_name = "localhost"
corridor_account = 9002
liquidity_account = 9003
[fx]
spread_bps = 25
quote_ttl_secs = 60
[fx.mid]
SGD = "0.0087"
[limits]
max_payment = "5000000"
max_message_bytes = 65536
max_concurrent_requests = 256
request_timeout_ms = 5000
relay_timeout_ms = 3000
clock_skew_secs = 30
instruction_max_lifetime_secs = 600
stream_queue_len = 1024
[sanctions]
names = ["Sanctioned Trading Co"]
bics = []
accounts = []
[[account]]
id = 1001
kind = "customer"
owner_bic = "KKHAJPJ0"
name = "Alpha Bank JP customer"
opening_balance = "10000000"
[[account]]
id = 9001
kind = "funding"
[[account]]
id = 9002
kind = "corridor"
[[account]]
id = 9003
kind = "liquidity"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/kakehashi"))
    }

    /// The example with `from` replaced by `to` (which must occur exactly once).
    #[track_caller]
    fn edited(from: &str, to: &str) -> String {
        assert_eq!(EXAMPLE.matches(from).count(), 1, "{from} occurs once");
        EXAMPLE.replace(from, to)
    }

    /// Asserts the text is refused and the message contains every fragment.
    #[track_caller]
    fn refused(text: &str, fragments: &[&str]) {
        let err = parse(text).expect_err("config must be refused");
        let message = err.to_string();
        for fragment in fragments {
            assert!(
                message.contains(fragment),
                "{fragment:?} not in {message:?}"
            );
        }
    }

    fn devnet(name: &str) -> Config {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("devnet")
            .join(name);
        Config::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    #[test]
    fn example_parses_with_paths_resolved_against_the_config_directory() {
        let config = parse(EXAMPLE).expect("the design note's example is valid");
        assert_eq!(config.jurisdiction, "JP");
        assert_eq!(config.data_dir, Path::new("/etc/kakehashi/data/jp"));
        assert_eq!(config.mra, Path::new("/etc/kakehashi/../certs/mra.toml"));
        assert_eq!(
            config.tls.key,
            Path::new("/etc/kakehashi/../certs/jp/node/tls.key.pem")
        );
        assert_eq!(config.admin.operator_certs.len(), 1);
        assert_eq!(config.listen.relay, "127.0.0.1:7101".parse().expect("addr"));
        let peer = config.peer("SG").expect("peer SG");
        assert_eq!(peer.relay.port_u16(), Some(7201));
        assert_eq!(peer.corridor_account, 9002);
        assert_eq!(config.fx.mid["SGD"].as_str(), "0.0087");
        assert_eq!(config.limits.max_payment.as_str(), "5000000");
        assert_eq!(config.funding_account().map(|a| a.id), Some(9001));
        assert_eq!(
            config.account(9002).map(|a| a.kind),
            Some(AccountKind::Corridor)
        );
        assert_eq!(
            config.account(9003).map(|a| a.opening_balance.as_str()),
            Some("0")
        );
    }

    #[test]
    fn absolute_paths_stay_absolute() {
        let config = parse(&edited(
            r#"data_dir = "data/jp""#,
            r#"data_dir = "/var/lib/jp""#,
        ))
        .expect("valid");
        assert_eq!(config.data_dir, Path::new("/var/lib/jp"));
    }

    #[test]
    fn omitted_limits_take_the_documented_defaults() {
        let start = EXAMPLE.find("[limits]").expect("limits");
        let end = EXAMPLE.find("[sanctions]").expect("sanctions");
        let text = format!("{}{}", &EXAMPLE[..start], &EXAMPLE[end..]);
        let config = parse(&text).expect("valid");
        assert_eq!(config.limits, Limits::default());
        assert_eq!(config.limits.max_message_bytes, MAX_MESSAGE_BYTES_DEFAULT);
        assert_eq!(config.limits.request_timeout_ms, REQUEST_TIMEOUT_MS_DEFAULT);
    }

    #[test]
    fn omitted_server_name_defaults_to_the_relay_host() {
        let config = parse(&edited("server_name = \"localhost\"\n", "")).expect("valid");
        assert_eq!(config.peers[0].server_name, "127.0.0.1");
    }

    #[test]
    fn account_ids_accept_integers_and_decimal_strings_up_to_u128_max() {
        let text = edited("id = 1001", &format!("id = \"{}\"", u128::MAX));
        let config = parse(&text).expect("valid");
        assert!(config.account(u128::MAX).is_some());
        let text = edited("corridor_account = 9002", "corridor_account = \"9002\"");
        assert_eq!(parse(&text).expect("valid").peers[0].corridor_account, 9002);
    }

    #[test]
    fn refuses_zero_negative_and_overflowing_account_ids() {
        refused(&edited("id = 1001", "id = 0"), &["account id 0"]);
        refused(&edited("id = 1001", "id = -3"), &["not positive"]);
        let too_big = "340282366920938463463374607431768211456"; // 2^128
        refused(
            &edited("id = 1001", &format!("id = \"{too_big}\"")),
            &["below 2^128"],
        );
        refused(
            &edited("id = 1001", "id = \"+7\""),
            &["not a non-zero decimal"],
        );
        refused(&edited("id = 1001", "id = 1.5"), &["account id"]);
    }

    #[test]
    fn refuses_unknown_keys() {
        refused(
            &edited("stream_queue_len = 1024", "stream_queue_length = 1024"),
            &["stream_queue_length"],
        );
        refused(&edited("[admin]", "colour = \"red\"\n[admin]"), &["colour"]);
    }

    #[test]
    fn refuses_a_peer_corridor_that_is_not_declared() {
        refused(
            &edited("corridor_account = 9002", "corridor_account = 9005"),
            &[
                "peer SG: corridor_account 9005 is not declared in [[account]]",
                "kind = \"corridor\"",
            ],
        );
    }

    #[test]
    fn refuses_a_peer_account_of_the_wrong_kind() {
        refused(
            &edited("liquidity_account = 9003", "liquidity_account = 9002"),
            &["peer SG", "liquidity_account 9002", "must be \"liquidity\""],
        );
        refused(
            &edited("liquidity_account = 9003", "liquidity_account = 1001"),
            &["kind = \"customer\""],
        );
    }

    #[test]
    fn refuses_duplicate_account_ids() {
        refused(
            &edited("id = 9003", "id = 9002"),
            &["account 9002", "declared twice"],
        );
    }

    #[test]
    fn refuses_anything_but_exactly_one_funding_account() {
        refused(
            &edited(
                "kind = \"funding\"",
                "kind = \"customer\"\nowner_bic = \"KKHBJPJ0\"",
            ),
            &["0 accounts have kind = \"funding\""],
        );
        let two = format!("{EXAMPLE}[[account]]\nid = 9009\nkind = \"funding\"\n");
        refused(&two, &["2 accounts have kind = \"funding\""]);
    }

    #[test]
    fn refuses_jurisdiction_codes_that_are_not_two_upper_case_letters() {
        refused(
            &edited("jurisdiction = \"JP\"", "jurisdiction = \"jp\""),
            &["jurisdiction", "`jp`"],
        );
        refused(
            &edited("jurisdiction = \"JP\"", "jurisdiction = \"JPN\""),
            &["`JPN`"],
        );
        refused(
            &edited("jurisdiction = \"SG\"", "jurisdiction = \"JP\""),
            &["own jurisdiction"],
        );
    }

    #[test]
    fn refuses_customer_accounts_without_a_local_bank_bic() {
        refused(
            &edited("owner_bic = \"KKHAJPJ0\"", "owner_bic = \"kkhajpj0\""),
            &["not a BIC"],
        );
        refused(
            &edited("owner_bic = \"KKHAJPJ0\"", ""),
            &["account 1001.owner_bic"],
        );
        refused(
            &edited("owner_bic = \"KKHAJPJ0\"", "owner_bic = \"KKHASGS0\""),
            &["bank of SG", "jurisdiction is JP"],
        );
        refused(
            &edited(
                "kind = \"corridor\"",
                "kind = \"corridor\"\nowner_bic = \"KKHAJPJ0\"",
            ),
            &["account 9002.owner_bic", "remove owner_bic"],
        );
    }

    #[test]
    fn refuses_listen_addresses_that_do_not_parse_or_collide() {
        refused(
            &edited("public = \"127.0.0.1:7100\"", "public = \"localhost:7100\""),
            &["listen.public", "not a socket address"],
        );
        refused(
            &edited(
                "metrics = \"127.0.0.1:7102\"",
                "metrics = \"127.0.0.1:7101\"",
            ),
            &["listen.relay", "listen.metrics"],
        );
    }

    #[test]
    fn refuses_relay_uris_that_are_not_https_host_port() {
        refused(
            &edited("https://127.0.0.1:7201", "http://127.0.0.1:7201"),
            &["peer SG", "https://host:port"],
        );
        refused(
            &edited("https://127.0.0.1:7201", "https://127.0.0.1"),
            &["https://host:port"],
        );
        refused(
            &edited("https://127.0.0.1:7201", "https://127.0.0.1:7201/x"),
            &["path"],
        );
        refused(
            &edited(
                "server_name = \"localhost\"",
                "server_name = \"not a name\"",
            ),
            &["server_name"],
        );
    }

    #[test]
    fn refuses_malformed_decimals_naming_the_key() {
        for bad in [
            "1e5", "-5", "1.", ".5", "05", " 5", "5,000", "", "1.00001", "٣",
        ] {
            refused(
                &edited(
                    "max_payment = \"5000000\"",
                    &format!("max_payment = \"{bad}\""),
                ),
                &["limits.max_payment"],
            );
        }
        refused(
            &edited(
                "opening_balance = \"10000000\"",
                "opening_balance = \"ten\"",
            ),
            &["account 1001.opening_balance"],
        );
        refused(
            &edited("SGD = \"0.0087\"", "SGD = \"0\""),
            &["fx.mid.SGD", "zero"],
        );
        refused(
            &edited("SGD = \"0.0087\"", "SGD = \"0.0000000000001\""),
            &["fx.mid.SGD"],
        );
        refused(
            &edited("SGD = \"0.0087\"", "sgd = \"0.0087\""),
            &["fx.mid.sgd"],
        );
        refused(
            &edited("max_payment = \"5000000\"", "max_payment = \"0\""),
            &["limits.max_payment"],
        );
    }

    #[test]
    fn refuses_limits_out_of_range() {
        refused(
            &edited("relay_timeout_ms = 3000", "relay_timeout_ms = 5000"),
            &["limits.relay_timeout_ms", "request_timeout_ms"],
        );
        refused(
            &edited("max_message_bytes = 65536", "max_message_bytes = 10"),
            &["limits.max_message_bytes", "out of range"],
        );
        refused(
            &edited(
                "max_concurrent_requests = 256",
                "max_concurrent_requests = 0",
            ),
            &["limits.max_concurrent_requests"],
        );
        refused(
            &edited("spread_bps = 25", "spread_bps = 10000"),
            &["fx.spread_bps"],
        );
        refused(
            &edited("quote_ttl_secs = 60", "quote_ttl_secs = 0"),
            &["fx.quote_ttl_secs"],
        );
    }

    #[test]
    fn refuses_empty_paths_and_sanction_entries() {
        refused(
            &edited("mra = \"../certs/mra.toml\"", "mra = \"\""),
            &["mra", "is empty"],
        );
        refused(
            &edited("bics = []", "bics = [\"BAD\"]"),
            &["sanctions.bics"],
        );
        refused(
            &edited("accounts = []", "accounts = [0]"),
            &["account id 0"],
        );
        refused(
            &edited("names = [\"Sanctioned Trading Co\"]", "names = [\" \"]"),
            &["sanctions.names"],
        );
    }

    #[test]
    fn builders_override_ports_data_dir_and_peer_relay() {
        let config = parse(EXAMPLE)
            .expect("valid")
            .with_ports(0, 0, 0)
            .with_data_dir("/tmp/devnet/jp")
            .with_peer_relay("SG", "https://127.0.0.1:45678")
            .expect("peer SG exists");
        assert_eq!(config.listen.public.port(), 0);
        assert_eq!(
            config.listen.relay.ip(),
            "127.0.0.1".parse::<std::net::IpAddr>().expect("ip")
        );
        assert_eq!(config.data_dir, Path::new("/tmp/devnet/jp"));
        assert_eq!(
            config.peer("SG").and_then(|p| p.relay.port_u16()),
            Some(45678)
        );
        config
            .validate()
            .expect("ports 0 on every listener are allowed");
        let err = config
            .with_peer_relay("TH", "https://127.0.0.1:1")
            .expect_err("no TH peer");
        assert!(err.to_string().contains("peer TH"), "{err}");
    }

    #[test]
    fn load_names_the_file_in_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.toml");
        std::fs::write(&path, edited("id = 9003", "id = 9002")).expect("write");
        let err = Config::load(&path).expect_err("duplicate id");
        let message = err.to_string();
        assert!(message.contains("node.toml"), "{message}");
        assert!(message.contains("declared twice"), "{message}");
        let err = Config::load(&dir.path().join("missing.toml")).expect_err("missing file");
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    }

    #[test]
    fn devnet_configs_validate_and_point_at_each_other() {
        let jp = devnet("jp.toml");
        let sg = devnet("sg.toml");
        assert_eq!(
            (jp.jurisdiction.as_str(), sg.jurisdiction.as_str()),
            ("JP", "SG")
        );
        for (node, other) in [(&jp, &sg), (&sg, &jp)] {
            let peer = node
                .peer(&other.jurisdiction)
                .expect("each names the other as peer");
            assert_eq!(peer.relay.port_u16(), Some(other.listen.relay.port()));
            assert_eq!(
                node.account(peer.corridor_account).map(|a| a.kind),
                Some(AccountKind::Corridor)
            );
            assert_eq!(
                node.account(peer.liquidity_account).map(|a| a.kind),
                Some(AccountKind::Liquidity)
            );
            for path in [
                &node.mra,
                &node.tls.cert,
                &node.tls.key,
                &node.signing.cert,
                &node.signing.key,
            ]
            .into_iter()
            .chain(&node.admin.operator_certs)
            {
                assert!(path.is_file(), "{} exists", path.display());
            }
            assert_eq!(node.fx.spread_bps, 25);
            let customers: BTreeSet<&str> = node
                .accounts
                .iter()
                .filter(|a| a.kind == AccountKind::Customer)
                .map(|a| a.owner_bic.as_str())
                .collect();
            assert_eq!(
                customers.len(),
                2,
                "two banks with customers on {}",
                node.jurisdiction
            );
        }
        assert_eq!(jp.fx.mid["SGD"].as_str(), "0.0087");
        assert_eq!(sg.fx.mid["JPY"].as_str(), "114.9");
        let ports = |c: &Config| {
            [
                c.listen.public.port(),
                c.listen.relay.port(),
                c.listen.metrics.port(),
            ]
        };
        assert_eq!(ports(&jp), [7100, 7101, 7102]);
        assert_eq!(ports(&sg), [7200, 7201, 7202]);
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
            let _ = parse(&text);
        }

        #[test]
        fn mutated_example_never_panics(at in 0usize..EXAMPLE.len(), byte in any::<u8>()) {
            let mut bytes = EXAMPLE.as_bytes().to_vec();
            bytes[at] = byte;
            if let Ok(text) = String::from_utf8(bytes) {
                let _ = parse(&text);
            }
        }
    }
}
