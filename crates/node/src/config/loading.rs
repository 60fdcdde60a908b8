//! Reading a configuration: the file (bounded), the TOML shape it must have, and its
//! resolution into a [`Config`] (defaults filled in, decimals checked, paths resolved against
//! the file's directory).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::rules::parse_relay_uri;
use super::{
    AMOUNT_FRACTION_DIGITS_MAX, Account, AccountKind, Admin, CONFIG_BYTES_MAX, Config, ConfigError,
    Decimal, Fx, KeyPairPaths, Limits, Listen, POSTGRES_POOL_SIZE_DEFAULT, Peer, PostgresStorage,
    QUOTE_TTL_SECS_DEFAULT, RATE_BAND_BPS_DEFAULT, RATE_FRACTION_DIGITS_MAX, RELAYS_PER_PEER_MAX,
    SANCTIONS_THRESHOLD_BP_DEFAULT, SANCTIONS_THRESHOLD_BP_MIN, STORAGE_CACHE_MIB_DEFAULT,
    Sanctions, Storage, StorageBackend, default_schema, invalid,
};

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
}

/// `path` relative to `base` (an absolute `path` stays as it is).
fn resolve(base: &Path, key: &str, path: &str) -> Result<PathBuf, ConfigError> {
    if path.trim().is_empty() {
        return Err(invalid(key, "is empty; give a file or directory path"));
    }
    Ok(base.join(path))
}

/// `[sanctions] threshold` (a similarity from 0.75 to 1) in ten-thousandths.
fn threshold_bp(threshold: Option<f64>) -> Result<u16, ConfigError> {
    let Some(t) = threshold else {
        return Ok(SANCTIONS_THRESHOLD_BP_DEFAULT);
    };
    let min = f64::from(SANCTIONS_THRESHOLD_BP_MIN) / 10_000.0;
    if !(min..=1.0).contains(&t) {
        return Err(invalid(
            "sanctions.threshold",
            format!(
                "{t} is out of range; use a similarity from {min} to 1 (1 matches only names \
                 equal after normalization)"
            ),
        ));
    }
    // In range, so the product is from 7500 to 10000 and fits.
    Ok((t * 10_000.0).round() as u16)
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
    storage: RawStorage,
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
    max_funding: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    jurisdiction: String,
    relay: RelayList,
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
    #[serde(default = "rate_band_default")]
    rate_band_bps: u32,
    #[serde(default)]
    mid: BTreeMap<String, String>,
}

fn quote_ttl_default() -> u64 {
    QUOTE_TTL_SECS_DEFAULT
}

fn rate_band_default() -> u32 {
    RATE_BAND_BPS_DEFAULT
}

/// `[limits]`. Users write the keys as they always have (`max_payment`); the fields follow
/// the crate's `*_max` naming.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    #[serde(rename = "max_payment")]
    payment_max: Option<String>,
    #[serde(rename = "max_message_bytes")]
    message_bytes_max: Option<usize>,
    #[serde(rename = "max_concurrent_requests")]
    concurrent_requests_max: Option<usize>,
    #[serde(rename = "max_concurrent_requests_per_connection")]
    concurrent_requests_per_connection_max: Option<usize>,
    #[serde(rename = "max_concurrent_streams")]
    concurrent_streams_max: Option<u32>,
    request_timeout_ms: Option<u64>,
    relay_timeout_ms: Option<u64>,
    connect_timeout_ms: Option<u64>,
    tls_handshake_timeout_ms: Option<u64>,
    #[serde(rename = "max_connections")]
    connections_max: Option<usize>,
    #[serde(rename = "max_connections_per_source")]
    connections_per_source_max: Option<usize>,
    #[serde(rename = "max_handshakes")]
    handshakes_max: Option<usize>,
    #[serde(rename = "max_handshakes_per_source")]
    handshakes_per_source_max: Option<usize>,
    idle_connection_timeout_secs: Option<u64>,
    stream_idle_timeout_secs: Option<u64>,
    #[serde(rename = "max_free_quotes_per_asker")]
    free_quotes_per_asker_max: Option<usize>,
    #[serde(rename = "max_stream_lifetime_secs")]
    stream_lifetime_secs_max: Option<u64>,
    #[serde(rename = "max_metrics_connections")]
    metrics_connections_max: Option<usize>,
    metrics_header_timeout_ms: Option<u64>,
    refusal_log_interval_ms: Option<u64>,
    http2_keepalive_interval_secs: Option<u64>,
    http2_keepalive_timeout_secs: Option<u64>,
    clock_skew_secs: Option<u64>,
    #[serde(rename = "instruction_max_lifetime_secs")]
    instruction_lifetime_secs_max: Option<u64>,
    stream_queue_len: Option<usize>,
    #[serde(rename = "max_recovery_payments_per_pass")]
    recovery_payments_per_pass_max: Option<usize>,
    #[serde(rename = "max_recovery_queries_per_peer")]
    recovery_queries_per_peer_max: Option<usize>,
    drain_secs: Option<u64>,
}

/// `[storage]`: the backend and the keys of each.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    backend: Option<String>,
    cache_mib: Option<u64>,
    url: Option<String>,
    schema: Option<String>,
    pool_size: Option<usize>,
}

impl RawStorage {
    /// The section with its defaults; `jurisdiction` names the default schema. A key of the
    /// other backend is refused rather than ignored: a node configured for PostgreSQL that
    /// quietly ran on sled would keep books nobody else sees.
    fn resolve(self, jurisdiction: &str) -> Result<Storage, ConfigError> {
        let backend = match self.backend.as_deref().unwrap_or("sled") {
            "sled" => {
                for (key, set) in [
                    ("storage.url", self.url.is_some()),
                    ("storage.schema", self.schema.is_some()),
                    ("storage.pool_size", self.pool_size.is_some()),
                ] {
                    if set {
                        return Err(invalid(
                            key,
                            "is a key of backend = \"postgres\"; set that backend or remove \
                             the key",
                        ));
                    }
                }
                StorageBackend::Sled
            }
            "postgres" => {
                if self.cache_mib.is_some() {
                    return Err(invalid(
                        "storage.cache_mib",
                        "is the sled backend's page cache; remove it with backend = \
                         \"postgres\"",
                    ));
                }
                let url = self.url.ok_or_else(|| {
                    invalid(
                        "storage.url",
                        "is missing; backend = \"postgres\" needs the database, e.g. \
                         url = \"postgresql://kakehashi@db.example/kakehashi\"",
                    )
                })?;
                StorageBackend::Postgres(PostgresStorage {
                    url,
                    schema: self.schema.unwrap_or_else(|| default_schema(jurisdiction)),
                    pool_size: self.pool_size.unwrap_or(POSTGRES_POOL_SIZE_DEFAULT),
                })
            }
            other => {
                return Err(invalid(
                    "storage.backend",
                    format!("`{other}` is not a backend; use \"sled\" or \"postgres\""),
                ));
            }
        };
        Ok(Storage {
            cache_mib: self.cache_mib.unwrap_or(STORAGE_CACHE_MIB_DEFAULT),
            backend,
        })
    }
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
    list: Option<String>,
    threshold: Option<f64>,
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

/// `[[peer]] relay`: one URI, or a list of them (the processes of one peer node).
struct RelayList(Vec<String>);

impl<'de> Deserialize<'de> for RelayList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RelayVisitor;
        impl<'de> Visitor<'de> for RelayVisitor {
            type Value = RelayList;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an https://host:port URI, or a list of them")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RelayList(vec![v.to_owned()]))
            }

            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut relays = Vec::new();
                while let Some(relay) = seq.next_element::<String>()? {
                    // Bounded while reading: the rules refuse more than the maximum anyway,
                    // and a list of a million entries should not be built first.
                    if relays.len() == RELAYS_PER_PEER_MAX {
                        return Err(de::Error::custom(format!(
                            "more than the {RELAYS_PER_PEER_MAX} relay addresses accepted"
                        )));
                    }
                    relays.push(relay);
                }
                Ok(RelayList(relays))
            }
        }
        deserializer.deserialize_any(RelayVisitor)
    }
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
    /// The configuration this text describes, defaults filled in and paths resolved against
    /// `base`; the rules are checked afterwards ([`Config::validate`]).
    fn resolve(self, base: &Path) -> Result<Config, ConfigError> {
        let listen = self.listen.resolve()?;
        let peers = self
            .peers
            .into_iter()
            .map(RawPeer::resolve)
            .collect::<Result<Vec<_>, _>>()?;
        let fx = self.fx.resolve()?;
        let limits = self.limits.resolve()?;
        let storage = self.storage.resolve(&self.jurisdiction)?;
        let accounts = self
            .accounts
            .into_iter()
            .map(RawAccount::resolve)
            .collect::<Result<Vec<_>, _>>()?;
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
                funding_max: self
                    .admin
                    .max_funding
                    .map(|text| {
                        Decimal::parse(&text, AMOUNT_FRACTION_DIGITS_MAX)
                            .map_err(|m| invalid("admin.max_funding", m))
                    })
                    .transpose()?,
            },
            peers,
            fx,
            limits,
            storage,
            sanctions: Sanctions {
                names: self.sanctions.names,
                bics: self.sanctions.bics,
                accounts: self.sanctions.accounts.into_iter().map(|a| a.0).collect(),
                list: self
                    .sanctions
                    .list
                    .map(|p| resolve(base, "sanctions.list", &p))
                    .transpose()?,
                threshold_bp: threshold_bp(self.sanctions.threshold)?,
            },
            accounts,
        })
    }
}

impl RawListen {
    fn resolve(self) -> Result<Listen, ConfigError> {
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
        Ok(Listen {
            public: addr("listen.public", &self.public)?,
            relay: addr("listen.relay", &self.relay)?,
            metrics: addr("listen.metrics", &self.metrics)?,
        })
    }
}

impl RawPeer {
    fn resolve(self) -> Result<Peer, ConfigError> {
        let key = format!("peer {}", self.jurisdiction);
        let relays = self
            .relay
            .0
            .iter()
            .map(|text| parse_relay_uri(&key, text))
            .collect::<Result<Vec<_>, ConfigError>>()?;
        Ok(Peer {
            jurisdiction: self.jurisdiction,
            relays,
            server_name: self.server_name,
            corridor_account: self.corridor_account.0,
            liquidity_account: self.liquidity_account.0,
        })
    }
}

impl RawFx {
    fn resolve(self) -> Result<Fx, ConfigError> {
        let mut mid = BTreeMap::new();
        for (code, text) in self.mid {
            let rate = Decimal::parse(&text, RATE_FRACTION_DIGITS_MAX)
                .map_err(|m| invalid(format!("fx.mid.{code}"), m))?;
            mid.insert(code, rate);
        }
        Ok(Fx {
            spread_bps: self.spread_bps,
            quote_ttl_secs: self.quote_ttl_secs,
            rate_band_bps: self.rate_band_bps,
            mid,
        })
    }
}

impl RawLimits {
    /// The limits, each one not configured at its default.
    fn resolve(self) -> Result<Limits, ConfigError> {
        let defaults = Limits::default();
        Ok(Limits {
            payment_max: match self.payment_max {
                Some(text) => Decimal::parse(&text, AMOUNT_FRACTION_DIGITS_MAX)
                    .map_err(|m| invalid("limits.max_payment", m))?,
                None => defaults.payment_max,
            },
            message_bytes_max: self.message_bytes_max.unwrap_or(defaults.message_bytes_max),
            concurrent_requests_max: self
                .concurrent_requests_max
                .unwrap_or(defaults.concurrent_requests_max),
            concurrent_requests_per_connection_max: self
                .concurrent_requests_per_connection_max
                .unwrap_or(defaults.concurrent_requests_per_connection_max),
            concurrent_streams_max: self
                .concurrent_streams_max
                .unwrap_or(defaults.concurrent_streams_max),
            request_timeout_ms: self
                .request_timeout_ms
                .unwrap_or(defaults.request_timeout_ms),
            relay_timeout_ms: self.relay_timeout_ms.unwrap_or(defaults.relay_timeout_ms),
            connect_timeout_ms: self
                .connect_timeout_ms
                .unwrap_or(defaults.connect_timeout_ms),
            tls_handshake_timeout_ms: self
                .tls_handshake_timeout_ms
                .unwrap_or(defaults.tls_handshake_timeout_ms),
            connections_max: self.connections_max.unwrap_or(defaults.connections_max),
            connections_per_source_max: self
                .connections_per_source_max
                .unwrap_or(defaults.connections_per_source_max),
            handshakes_max: self.handshakes_max.unwrap_or(defaults.handshakes_max),
            handshakes_per_source_max: self
                .handshakes_per_source_max
                .unwrap_or(defaults.handshakes_per_source_max),
            idle_connection_timeout_secs: self
                .idle_connection_timeout_secs
                .unwrap_or(defaults.idle_connection_timeout_secs),
            stream_idle_timeout_secs: self
                .stream_idle_timeout_secs
                .unwrap_or(defaults.stream_idle_timeout_secs),
            stream_lifetime_secs_max: self
                .stream_lifetime_secs_max
                .unwrap_or(defaults.stream_lifetime_secs_max),
            free_quotes_per_asker_max: self
                .free_quotes_per_asker_max
                .unwrap_or(defaults.free_quotes_per_asker_max),
            metrics_connections_max: self
                .metrics_connections_max
                .unwrap_or(defaults.metrics_connections_max),
            metrics_header_timeout_ms: self
                .metrics_header_timeout_ms
                .unwrap_or(defaults.metrics_header_timeout_ms),
            refusal_log_interval_ms: self
                .refusal_log_interval_ms
                .unwrap_or(defaults.refusal_log_interval_ms),
            http2_keepalive_interval_secs: self
                .http2_keepalive_interval_secs
                .unwrap_or(defaults.http2_keepalive_interval_secs),
            http2_keepalive_timeout_secs: self
                .http2_keepalive_timeout_secs
                .unwrap_or(defaults.http2_keepalive_timeout_secs),
            clock_skew_secs: self.clock_skew_secs.unwrap_or(defaults.clock_skew_secs),
            instruction_lifetime_secs_max: self
                .instruction_lifetime_secs_max
                .unwrap_or(defaults.instruction_lifetime_secs_max),
            stream_queue_len: self.stream_queue_len.unwrap_or(defaults.stream_queue_len),
            recovery_payments_per_pass_max: self
                .recovery_payments_per_pass_max
                .unwrap_or(defaults.recovery_payments_per_pass_max),
            recovery_queries_per_peer_max: self
                .recovery_queries_per_peer_max
                .unwrap_or(defaults.recovery_queries_per_peer_max),
            drain_secs: self.drain_secs.unwrap_or(defaults.drain_secs),
        })
    }
}

impl RawAccount {
    fn resolve(self) -> Result<Account, ConfigError> {
        let opening_balance = match self.opening_balance {
            Some(text) => Decimal::parse(&text, AMOUNT_FRACTION_DIGITS_MAX)
                .map_err(|m| invalid(format!("account {}.opening_balance", self.id.0), m))?,
            None => Decimal("0".to_owned()),
        };
        Ok(Account {
            id: self.id.0,
            kind: self.kind,
            owner_bic: self.owner_bic,
            name: self.name,
            opening_balance,
        })
    }
}
