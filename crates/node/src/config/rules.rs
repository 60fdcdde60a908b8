//! The rules a configuration must keep beyond its TOML shape. Each error names the key and
//! says what to change.

use std::collections::{BTreeMap, BTreeSet};

use tonic::transport::Uri;

use super::{
    ACCOUNTS_MAX, AccountKind, CLOCK_SKEW_SECS_MAX, CONCURRENCY_MAX, Config, ConfigError,
    DRAIN_SECS_MAX, INSTRUCTION_LIFETIME_SECS_MAX_MAX, LIFETIME_SECS_MAX, Listen,
    MESSAGE_BYTES_MAX_MAX, MESSAGE_BYTES_MAX_MIN, NAME_CHARS_MAX, PEERS_MAX,
    POSTGRES_POOL_SIZE_MAX, POSTGRES_POOL_SIZE_MIN, Peer, QUOTE_TTL_SECS_MAX,
    RATE_BAND_BPS_DEFAULT, RATE_BAND_BPS_MAX, RECOVERY_QUERIES_PER_PEER_MAX_MAX,
    RELAYS_PER_PEER_MAX, SANCTIONS_ENTRIES_MAX, SCHEMA_NAME_LEN_MAX, SPREAD_BPS_MAX,
    STORAGE_CACHE_MIB_DEFAULT, STORAGE_CACHE_MIB_MAX, STORAGE_CACHE_MIB_MIN, StorageBackend,
    TIMEOUT_MS_MAX, TIMEOUT_MS_MIN, invalid, schema_name_ok,
};

impl Config {
    /// Checks every cross-field rule. [`Config::parse`] calls it; call it again after changing
    /// fields by hand.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_jurisdiction("jurisdiction", &self.jurisdiction)?;
        self.validate_listen()?;
        self.validate_accounts()?;
        self.validate_peers()?;
        self.validate_fx()?;
        self.validate_limits()?;
        self.validate_storage()?;
        self.validate_sanctions()?;
        Ok(())
    }
    fn validate_storage(&self) -> Result<(), ConfigError> {
        if let StorageBackend::Postgres(postgres) = &self.storage.backend {
            if !schema_name_ok(&postgres.schema) {
                return Err(invalid(
                    "storage.schema",
                    format!(
                        "`{}` is not a schema name the node accepts: 1 to {SCHEMA_NAME_LEN_MAX} \
                         lower-case letters, digits and _, starting with a letter, not pg_…",
                        postgres.schema
                    ),
                ));
            }
            if !(POSTGRES_POOL_SIZE_MIN..=POSTGRES_POOL_SIZE_MAX).contains(&postgres.pool_size) {
                return Err(invalid(
                    "storage.pool_size",
                    format!(
                        "{} is outside {POSTGRES_POOL_SIZE_MIN} to {POSTGRES_POOL_SIZE_MAX} \
                         (the writer holds one connection, reads need another)",
                        postgres.pool_size
                    ),
                ));
            }
            if postgres.url.trim().is_empty() {
                return Err(invalid("storage.url", "is empty; name the database"));
            }
            return Ok(());
        }
        let mib = self.storage.cache_mib;
        if mib < STORAGE_CACHE_MIB_MIN {
            return Err(invalid(
                "storage.cache_mib",
                format!(
                    "{mib} is below the least page cache of {STORAGE_CACHE_MIB_MIN} MiB the \
                     ledger accepts (a smaller one would read nearly every page from disk); \
                     give {STORAGE_CACHE_MIB_MIN} or more, or leave it out for \
                     {STORAGE_CACHE_MIB_DEFAULT}"
                ),
            ));
        }
        if mib > STORAGE_CACHE_MIB_MAX {
            return Err(invalid(
                "storage.cache_mib",
                format!(
                    "{mib} MiB is more than the {STORAGE_CACHE_MIB_MAX} accepted; the key is in \
                     mebibytes (32 is 32 MiB), not bytes"
                ),
            ));
        }
        Ok(())
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
            check_relays(&key, peer)?;
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
        if !(1..=RATE_BAND_BPS_MAX).contains(&self.fx.rate_band_bps) {
            return Err(invalid(
                "fx.rate_band_bps",
                format!(
                    "must be between 1 and {RATE_BAND_BPS_MAX} basis points (the default is \
                     {RATE_BAND_BPS_DEFAULT}); 0 would refuse every peer quote that carries a \
                     spread"
                ),
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
        if l.payment_max.is_zero() {
            return Err(invalid(
                "limits.max_payment",
                "zero would refuse every payment",
            ));
        }
        check_range(
            "limits.max_message_bytes",
            l.message_bytes_max as u64,
            MESSAGE_BYTES_MAX_MIN as u64,
            MESSAGE_BYTES_MAX_MAX as u64,
        )?;
        for (key, value) in [
            ("limits.max_concurrent_requests", l.concurrent_requests_max),
            (
                "limits.max_concurrent_requests_per_connection",
                l.concurrent_requests_per_connection_max,
            ),
            (
                "limits.max_concurrent_streams",
                l.concurrent_streams_max as usize,
            ),
            ("limits.stream_queue_len", l.stream_queue_len),
            ("limits.max_connections", l.connections_max),
            (
                "limits.max_connections_per_source",
                l.connections_per_source_max,
            ),
            ("limits.max_handshakes", l.handshakes_max),
            (
                "limits.max_handshakes_per_source",
                l.handshakes_per_source_max,
            ),
            ("limits.max_metrics_connections", l.metrics_connections_max),
            (
                "limits.max_recovery_payments_per_pass",
                l.recovery_payments_per_pass_max,
            ),
        ] {
            check_range(key, value as u64, 1, CONCURRENCY_MAX as u64)?;
        }
        check_range(
            "limits.max_recovery_queries_per_peer",
            l.recovery_queries_per_peer_max as u64,
            1,
            RECOVERY_QUERIES_PER_PEER_MAX_MAX as u64,
        )?;
        for (key, value) in [
            ("limits.request_timeout_ms", l.request_timeout_ms),
            ("limits.relay_timeout_ms", l.relay_timeout_ms),
            ("limits.connect_timeout_ms", l.connect_timeout_ms),
            (
                "limits.tls_handshake_timeout_ms",
                l.tls_handshake_timeout_ms,
            ),
            (
                "limits.metrics_header_timeout_ms",
                l.metrics_header_timeout_ms,
            ),
            ("limits.refusal_log_interval_ms", l.refusal_log_interval_ms),
        ] {
            check_range(key, value, TIMEOUT_MS_MIN, TIMEOUT_MS_MAX)?;
        }
        // A per-source cap at or above the listener's would let one source take it whole.
        for (key, per_source, global, global_key) in [
            (
                "limits.max_connections_per_source",
                l.connections_per_source_max,
                l.connections_max,
                "max_connections",
            ),
            (
                "limits.max_handshakes_per_source",
                l.handshakes_per_source_max,
                l.handshakes_max,
                "max_handshakes",
            ),
        ] {
            if per_source > global {
                return Err(invalid(
                    key,
                    format!(
                        "{per_source} is above {global_key} ({global}); one source could take \
                         the whole listener"
                    ),
                ));
            }
        }
        for (key, value) in [
            (
                "limits.idle_connection_timeout_secs",
                l.idle_connection_timeout_secs,
            ),
            (
                "limits.stream_idle_timeout_secs",
                l.stream_idle_timeout_secs,
            ),
            (
                "limits.max_stream_lifetime_secs",
                l.stream_lifetime_secs_max,
            ),
        ] {
            check_range(key, value, 1, LIFETIME_SECS_MAX)?;
        }
        // A share above the node's bound on free quotes would be no share at all.
        check_range(
            "limits.max_free_quotes_per_asker",
            u64::try_from(l.free_quotes_per_asker_max).unwrap_or(u64::MAX),
            1,
            crate::engine::QUOTES_HELD_MAX as u64,
        )?;
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
        check_range("limits.drain_secs", l.drain_secs, 0, DRAIN_SECS_MAX)?;
        check_range(
            "limits.instruction_max_lifetime_secs",
            l.instruction_lifetime_secs_max,
            1,
            INSTRUCTION_LIFETIME_SECS_MAX_MAX,
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
            if crate::screening::normalize(name).is_empty() {
                return Err(invalid(
                    "sanctions.names",
                    format!("{name:?} has no letter or digit; it would match nothing"),
                ));
            }
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
                "`{code}` is not a jurisdiction code; use the agreement's party code, two \
                 upper-case letters (ISO 3166-1 alpha-2)"
            ),
        ))
    }
}

/// ISO 9362: 4 letters (institution), 2 letters (country), 2 alphanumerics (location), and
/// optionally 3 alphanumerics (branch).
fn check_bic(key: &str, bic: &str) -> Result<(), ConfigError> {
    match kakehashi_protocol::instruction::bic_problem(bic) {
        None => Ok(()),
        Some(problem) => Err(invalid(
            key,
            format!(
                "`{bic}` is not a BIC: it {problem}; use 8 or 11 upper-case characters \
                 A-Z/0-9, letters in the first six (ISO 9362), e.g. \"KKHAJPJ0\""
            ),
        )),
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

/// A peer's relay addresses: at least one, at most [`RELAYS_PER_PEER_MAX`], none twice, each
/// with a server name rustls can check.
pub(super) fn check_relays(key: &str, peer: &Peer) -> Result<(), ConfigError> {
    let relays = peer.relay_addresses();
    if relays.is_empty() {
        return Err(invalid(
            key,
            "relay lists no address; write relay = \"https://host:port\" or a list of them",
        ));
    }
    if relays.len() > RELAYS_PER_PEER_MAX {
        return Err(invalid(
            key,
            format!(
                "relay lists {} addresses, more than the {RELAYS_PER_PEER_MAX} accepted",
                relays.len()
            ),
        ));
    }
    let mut seen = BTreeSet::new();
    for address in &relays {
        if !seen.insert(address.uri.to_string()) {
            return Err(invalid(
                key,
                format!("relay lists {} twice; keep each address once", address.uri),
            ));
        }
        rustls::pki_types::ServerName::try_from(address.server_name.as_str()).map_err(|_| {
            invalid(
                key,
                format!(
                    "server_name `{}` is neither a DNS name nor an IP address; use a name from \
                     the peer certificate's subjectAltName",
                    address.server_name
                ),
            )
        })?;
    }
    Ok(())
}

pub(super) fn parse_relay_uri(key: &str, text: &str) -> Result<Uri, ConfigError> {
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
