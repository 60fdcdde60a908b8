use std::collections::BTreeSet;
use std::path::Path;

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
operator_certs = ["../certs/jp/operator.pem"]
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
    assert_eq!(peer.relays.len(), 1);
    assert_eq!(peer.relays[0].port_u16(), Some(7201));
    assert_eq!(peer.corridor_account, 9002);
    assert_eq!(config.fx.mid["SGD"].as_str(), "0.0087");
    assert_eq!(
        config.fx.rate_band_bps, RATE_BAND_BPS_DEFAULT,
        "the default"
    );
    assert_eq!(config.limits.payment_max.as_str(), "5000000");
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
    assert_eq!(config.limits.message_bytes_max, MESSAGE_BYTES_MAX_DEFAULT);
    assert_eq!(config.limits.request_timeout_ms, REQUEST_TIMEOUT_MS_DEFAULT);
}

#[test]
fn limit_keys_keep_the_spelling_configurations_use() {
    let start = EXAMPLE.find("[limits]").expect("limits");
    let end = EXAMPLE.find("[sanctions]").expect("sanctions");
    let limits = r#"[limits]
max_payment = "1234"
max_message_bytes = 8192
max_concurrent_requests = 11
max_concurrent_requests_per_connection = 12
max_concurrent_streams = 13
request_timeout_ms = 4000
relay_timeout_ms = 2000
connect_timeout_ms = 1000
tls_handshake_timeout_ms = 1500
http2_keepalive_interval_secs = 14
http2_keepalive_timeout_secs = 15
clock_skew_secs = 16
instruction_max_lifetime_secs = 17
stream_queue_len = 18
max_recovery_payments_per_pass = 19
max_recovery_queries_per_peer = 20
drain_secs = 21
max_connections = 500
max_connections_per_source = 22
max_handshakes = 100
max_handshakes_per_source = 23
idle_connection_timeout_secs = 24
stream_idle_timeout_secs = 25
max_stream_lifetime_secs = 26
max_metrics_connections = 27
metrics_header_timeout_ms = 2800
refusal_log_interval_ms = 2900
max_free_quotes_per_asker = 30
"#;
    let text = format!("{}{limits}{}", &EXAMPLE[..start], &EXAMPLE[end..]);
    let l = parse(&text).expect("valid").limits;
    assert_eq!(l.payment_max.as_str(), "1234");
    assert_eq!(l.message_bytes_max, 8192);
    assert_eq!(l.concurrent_requests_max, 11);
    assert_eq!(l.concurrent_requests_per_connection_max, 12);
    assert_eq!(l.concurrent_streams_max, 13);
    assert_eq!(l.request_timeout_ms, 4000);
    assert_eq!(l.relay_timeout_ms, 2000);
    assert_eq!(l.connect_timeout_ms, 1000);
    assert_eq!(l.tls_handshake_timeout_ms, 1500);
    assert_eq!(l.http2_keepalive_interval_secs, 14);
    assert_eq!(l.http2_keepalive_timeout_secs, 15);
    assert_eq!(l.clock_skew_secs, 16);
    assert_eq!(l.instruction_lifetime_secs_max, 17);
    assert_eq!(l.stream_queue_len, 18);
    assert_eq!(l.recovery_payments_per_pass_max, 19);
    assert_eq!(l.recovery_queries_per_peer_max, 20);
    assert_eq!(l.drain_secs, 21);
    assert_eq!(l.connections_max, 500);
    assert_eq!(l.connections_per_source_max, 22);
    assert_eq!(l.handshakes_max, 100);
    assert_eq!(l.handshakes_per_source_max, 23);
    assert_eq!(l.idle_connection_timeout_secs, 24);
    assert_eq!(l.stream_idle_timeout_secs, 25);
    assert_eq!(l.stream_lifetime_secs_max, 26);
    assert_eq!(l.metrics_connections_max, 27);
    assert_eq!(l.metrics_header_timeout_ms, 2800);
    assert_eq!(l.refusal_log_interval_ms, 2900);
    assert_eq!(l.free_quotes_per_asker_max, 30);
    // The Rust spelling is not a key of the file.
    refused(
        &edited("max_message_bytes = 65536", "message_bytes_max = 65536"),
        &["message_bytes_max"],
    );
}

#[test]
fn omitted_server_name_defaults_to_the_relay_host() {
    let config = parse(&edited("server_name = \"localhost\"\n", "")).expect("valid");
    assert_eq!(config.peers[0].server_name, None);
    let addresses = config.peers[0].relay_addresses();
    assert_eq!(addresses.len(), 1);
    assert_eq!(addresses[0].server_name, "127.0.0.1");
}

#[test]
fn a_peer_may_list_several_relay_addresses_each_with_its_server_name() {
    let listed = edited(
        "relay = \"https://127.0.0.1:7201\"",
        "relay = [\"https://sg-a.example:7201\", \"https://[::1]:7211\"]",
    );
    // Without a server name, each address is checked against its own host.
    let config = parse(&listed.replace("server_name = \"localhost\"\n", "")).expect("valid");
    let names: Vec<String> = config.peers[0]
        .relay_addresses()
        .into_iter()
        .map(|address| address.server_name)
        .collect();
    assert_eq!(names, ["sg-a.example", "::1"]);
    // With one, every address must present it.
    let config = parse(&listed).expect("valid");
    let addresses = config.peers[0].relay_addresses();
    assert_eq!(addresses.len(), 2);
    assert!(addresses.iter().all(|a| a.server_name == "localhost"));
    assert_eq!(addresses[1].uri.port_u16(), Some(7211));
}

#[test]
fn relay_lists_are_refused_when_empty_repeated_too_long_or_not_uris() {
    let relay = "relay = \"https://127.0.0.1:7201\"";
    refused(&edited(relay, "relay = []"), &["peer SG", "no address"]);
    refused(
        &edited(
            relay,
            "relay = [\"https://127.0.0.1:7201\", \"https://127.0.0.1:7201\"]",
        ),
        &["peer SG", "twice"],
    );
    let many: Vec<String> = (0..=RELAYS_PER_PEER_MAX)
        .map(|i| format!("\"https://127.0.0.1:{}\"", 7300 + i))
        .collect();
    refused(
        &edited(relay, &format!("relay = [{}]", many.join(", "))),
        &["relay", &RELAYS_PER_PEER_MAX.to_string()],
    );
    refused(
        &edited(
            relay,
            "relay = [\"https://127.0.0.1:7201\", \"http://127.0.0.1:1\"]",
        ),
        &["peer SG", "https://host:port"],
    );
    refused(&edited(relay, "relay = 7201"), &["relay", "URI"]);
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
        &edited(
            "stream_queue_len = 1024",
            "stream_queue_len = 1024\nmax_recovery_queries_per_peer = 0",
        ),
        &["limits.max_recovery_queries_per_peer", "out of range"],
    );
    refused(
        &edited(
            "stream_queue_len = 1024",
            "stream_queue_len = 1024\nmax_recovery_payments_per_pass = 0",
        ),
        &["limits.max_recovery_payments_per_pass", "out of range"],
    );
    refused(
        &edited(
            "stream_queue_len = 1024",
            "stream_queue_len = 1024\ndrain_secs = 601",
        ),
        &["limits.drain_secs", "out of range"],
    );
    // A share of no quotes, or one above the node's bound on free quotes (no share at all).
    for share in ["0", "100001", "-1"] {
        refused(
            &edited(
                "stream_queue_len = 1024",
                &format!("stream_queue_len = 1024\nmax_free_quotes_per_asker = {share}"),
            ),
            &["max_free_quotes_per_asker"],
        );
    }
    assert_eq!(
        parse(&edited(
            "stream_queue_len = 1024",
            "stream_queue_len = 1024\nmax_free_quotes_per_asker = 100000",
        ))
        .expect("the node's bound is a valid share")
        .limits
        .free_quotes_per_asker_max,
        100_000
    );
    // A per-source cap above its listener's would let one source take the listener.
    refused(
        &edited(
            "stream_queue_len = 1024",
            "stream_queue_len = 1024\nmax_connections = 10\nmax_connections_per_source = 11",
        ),
        &["limits.max_connections_per_source", "max_connections (10)"],
    );
    refused(
        &edited(
            "stream_queue_len = 1024",
            "stream_queue_len = 1024\nmax_handshakes_per_source = 257",
        ),
        &["limits.max_handshakes_per_source", "max_handshakes (256)"],
    );
    refused(
        &edited(
            "stream_queue_len = 1024",
            "stream_queue_len = 1024\nidle_connection_timeout_secs = 0",
        ),
        &["limits.idle_connection_timeout_secs", "out of range"],
    );
    refused(
        &edited(
            "stream_queue_len = 1024",
            "stream_queue_len = 1024\nmetrics_header_timeout_ms = 10",
        ),
        &["limits.metrics_header_timeout_ms", "out of range"],
    );
    refused(
        &edited("spread_bps = 25", "spread_bps = 10000"),
        &["fx.spread_bps"],
    );
    refused(
        &edited("quote_ttl_secs = 60", "quote_ttl_secs = 0"),
        &["fx.quote_ttl_secs"],
    );
    for band in ["0", "10001"] {
        refused(
            &edited(
                "quote_ttl_secs = 60",
                &format!("quote_ttl_secs = 60\nrate_band_bps = {band}"),
            ),
            &["fx.rate_band_bps", "between 1 and 10000"],
        );
    }
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
fn sanctions_list_file_and_threshold() {
    let config = parse(EXAMPLE).expect("valid");
    assert_eq!(config.sanctions.list, None);
    assert_eq!(
        config.sanctions.threshold_bp,
        SANCTIONS_THRESHOLD_BP_DEFAULT
    );
    let config = parse(&edited(
        "bics = []",
        "bics = []\nlist = \"sanctions.csv\"\nthreshold = 0.85",
    ))
    .expect("valid");
    assert_eq!(
        config.sanctions.list.as_deref(),
        Some(Path::new("/etc/kakehashi/sanctions.csv")),
        "relative to the configuration's directory"
    );
    assert_eq!(config.sanctions.threshold_bp, 8500);
    for threshold in ["0.5", "1.01", "-1", "nan"] {
        refused(
            &edited("bics = []", &format!("bics = []\nthreshold = {threshold}")),
            &["sanctions.threshold", "out of range"],
        );
    }
    refused(
        &edited("bics = []", "bics = []\nlist = \"\""),
        &["sanctions.list", "is empty"],
    );
    refused(
        &edited("names = [\"Sanctioned Trading Co\"]", "names = [\"-.-\"]"),
        &["sanctions.names", "would match nothing"],
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
        config.peer("SG").map(|p| p.relays.clone()),
        Some(vec!["https://127.0.0.1:45678".parse().expect("uri")])
    );
    let two = config
        .clone()
        .with_peer_relays("SG", &["https://127.0.0.1:1", "https://127.0.0.1:2"])
        .expect("two addresses");
    assert_eq!(
        two.peer("SG").map(|p| p.relay_addresses().len()),
        Some(2),
        "the list replaces the address"
    );
    let err = config
        .clone()
        .with_peer_relays("SG", &[])
        .expect_err("an empty list");
    assert!(err.to_string().contains("no address"), "{err}");
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
fn storage_cache_mib_defaults_to_the_ledger_default_and_is_bounded() {
    let config = parse(EXAMPLE).expect("valid");
    assert_eq!(config.storage, Storage::default());
    assert_eq!(config.storage.cache_mib, 32);
    assert_eq!(
        config.storage.cache_bytes(),
        kakehashi_ledger::CACHE_CAPACITY_DEFAULT
    );
    let with = |section: &str| edited("[sanctions]\n", &format!("{section}\n[sanctions]\n"));
    let config = parse(&with("[storage]\ncache_mib = 256")).expect("valid");
    assert_eq!(config.storage.cache_mib, 256);
    assert_eq!(config.storage.cache_bytes(), 256 * 1024 * 1024);
    let least = parse(&with("[storage]\ncache_mib = 1")).expect("the least accepted");
    assert_eq!(
        least.storage.cache_bytes(),
        kakehashi_ledger::CACHE_CAPACITY_MIN
    );
    assert_eq!(
        parse(&with("[storage]")).expect("valid").storage,
        Storage::default()
    );
    refused(
        &with("[storage]\ncache_mib = 0"),
        &["storage.cache_mib", "0 is below", "1 MiB"],
    );
    refused(
        &with("[storage]\ncache_mib = 33554432"),
        &["storage.cache_mib", "mebibytes"],
    );
    // The wrong type, a negative value and an unknown key are refused by the TOML shape.
    refused(
        &with("[storage]\ncache_mib = \"32\""),
        &["cache_mib", "invalid type", "expected u64"],
    );
    refused(&with("[storage]\ncache_mib = 32.5"), &["cache_mib"]);
    refused(&with("[storage]\ncache_mib = -1"), &["cache_mib"]);
    refused(&with("[storage]\ncache_bytes = 1"), &["cache_bytes"]);
}

#[test]
fn storage_backend_postgres_takes_a_url_a_schema_and_a_pool_size() {
    let with = |section: &str| edited("[sanctions]\n", &format!("{section}\n[sanctions]\n"));
    let config = parse(&with(
        "[storage]\nbackend = \"postgres\"\nurl = \"postgresql://kk:secret@db.example/books\"",
    ))
    .expect("valid");
    let StorageBackend::Postgres(postgres) = &config.storage.backend else {
        panic!("postgres expected, got {:?}", config.storage.backend);
    };
    assert_eq!(postgres.url, "postgresql://kk:secret@db.example/books");
    assert_eq!(
        postgres.schema, "kakehashi_jp",
        "the default names the jurisdiction"
    );
    assert_eq!(postgres.pool_size, POSTGRES_POOL_SIZE_DEFAULT);
    let shown = format!("{config:?}");
    assert!(
        !shown.contains("secret"),
        "the password stays out of Debug: {shown}"
    );
    let config = parse(&with(
        "[storage]\nbackend = \"postgres\"\nurl = \"host=/run/postgresql dbname=b\"\n\
         schema = \"jp_books_2\"\npool_size = 16",
    ))
    .expect("valid");
    assert_eq!(
        config.storage.backend,
        StorageBackend::Postgres(PostgresStorage {
            url: "host=/run/postgresql dbname=b".into(),
            schema: "jp_books_2".into(),
            pool_size: 16,
        })
    );
    assert_eq!(
        parse(&with("[storage]\nbackend = \"sled\""))
            .expect("valid")
            .storage,
        Storage::default()
    );

    let postgres = "[storage]\nbackend = \"postgres\"\nurl = \"postgresql://db/b\"";
    refused(
        &with("[storage]\nbackend = \"postgres\""),
        &["storage.url", "missing"],
    );
    refused(
        &with(&format!("{postgres}\ncache_mib = 32")),
        &["storage.cache_mib", "sled"],
    );
    for key in [
        "url = \"postgresql://db/b\"",
        "schema = \"b\"",
        "pool_size = 4",
    ] {
        let name = key.split(' ').next().expect("key");
        refused(
            &with(&format!("[storage]\n{key}")),
            &[&format!("storage.{name}"), "backend = \"postgres\""],
        );
    }
    refused(
        &with("[storage]\nbackend = \"mysql\""),
        &["storage.backend", "mysql", "\"sled\" or \"postgres\""],
    );
    for schema in [
        "",
        "Books",
        "1books",
        "pg_books",
        "jp-books",
        "b\"; drop",
        &"b".repeat(64),
    ] {
        refused(
            &with(&format!(
                "{postgres}\nschema = \"{}\"",
                schema.replace('"', "\\\"")
            )),
            &["storage.schema"],
        );
    }
    assert!(schema_name_ok(&"b".repeat(63)));
    for size in [0, 1, 65] {
        refused(
            &with(&format!("{postgres}\npool_size = {size}")),
            &["storage.pool_size", "2 to 64"],
        );
    }
    refused(
        &with("[storage]\nbackend = \"postgres\"\nurl = \" \""),
        &["storage.url", "empty"],
    );
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
        assert_eq!(
            peer.relays
                .iter()
                .map(|uri| uri.port_u16())
                .collect::<Vec<_>>(),
            [Some(other.listen.relay.port())]
        );
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
        assert_eq!(node.fx.rate_band_bps, 100);
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
