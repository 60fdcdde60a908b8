//! Connecting (the pool, each connection's `search_path` and durability settings) and the
//! versioned migrations.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use ed25519_dalek::VerifyingKey;
use kakehashi_ledger::engine::GENESIS_HASH;
use tokio_postgres::NoTls;

use crate::{Error, Options, codec};

/// The migrations, in order: version n is `MIGRATIONS[n - 1]`. A migration is never edited
/// once released; a change is a new file.
pub(crate) const MIGRATIONS: &[(i32, &str)] = &[(1, include_str!("../migrations/0001_ledger.sql"))];

/// The schema version this build knows (the last migration's).
pub(crate) const SCHEMA_VERSION: i32 = 1;

/// The ledger's storage format: the journal encoding of `kakehashi-ledger` (format 8).
pub(crate) const FORMAT_VERSION: i32 = 8;

/// The advisory lock key under which migrations run (one per database; a schema name is in the
/// transaction, so two nodes migrating their own schemas at once only wait for each other).
const MIGRATION_LOCK: i64 = 0x6b61_6b65_6861_7368; // "kakehash"

/// Longest a new connection (or the check of a pooled one) may take: a server that does not
/// answer within it is treated as down, and the request fails as not applied rather than
/// hanging its caller.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Idle time before the first TCP keepalive probe of a database connection.
const DEAD_PEER_IDLE: Duration = Duration::from_secs(10);

/// Time between keepalive probes.
const DEAD_PEER_INTERVAL: Duration = Duration::from_secs(5);

/// Unanswered probes before the connection is declared dead: with the two above, a vanished
/// server is noticed within about 25 s, well inside a failover's time to promote a standby.
const DEAD_PEER_PROBES: u32 = 3;

/// Longest a caller waits for a free pooled connection while every one is busy; beyond it the
/// call fails (`Error::Pool`) instead of queueing without bound.
const POOL_WAIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Checks a schema name: lower-case letters, digits and `_`, starting with a letter, at most
/// 63 bytes (PostgreSQL's identifier length), so that it needs no quoting anywhere.
pub(crate) fn check_schema_name(schema: &str) -> Result<(), Error> {
    let valid = !schema.is_empty()
        && schema.len() <= 63
        && schema.starts_with(|c: char| c.is_ascii_lowercase())
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !schema.starts_with("pg_");
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidOption {
            name: "schema",
            detail: format!(
                "{schema:?}: use 1 to 63 lower-case letters, digits and _, starting with a \
                 letter (and not pg_)"
            ),
        })
    }
}

/// A pool whose every connection runs in `schema` with `synchronous_commit` on.
pub(crate) fn pool(options: &Options) -> Result<Pool, Error> {
    check_schema_name(&options.schema)?;
    let mut config: tokio_postgres::Config =
        options
            .url
            .parse()
            .map_err(|error: tokio_postgres::Error| Error::InvalidOption {
                name: "url",
                detail: error.to_string(),
            })?;
    // Startup options, sent with every new connection: the schema (and nothing else) on its
    // search path, and commits acknowledged only once durable (on the standbys too when the
    // server has synchronous_standby_names: `on` waits for their flush).
    let mut startup = config.get_options().unwrap_or_default().to_string();
    startup.push_str(&format!(
        " -c search_path={} -c synchronous_commit=on",
        options.schema
    ));
    config.options(startup.trim());
    // Over TCP, a server that vanishes without closing the connection (a host lost, a link
    // cut) must not leave a COMMIT waiting for hours on the kernel's defaults: probes after
    // DEAD_PEER_IDLE, then every DEAD_PEER_INTERVAL, DEAD_PEER_PROBES times, and unanswered
    // data for as long, end the connection (an unknown outcome for a COMMIT in flight).
    // Unix sockets ignore these.
    config
        .connect_timeout(CONNECT_TIMEOUT)
        .keepalives(true)
        .keepalives_idle(DEAD_PEER_IDLE)
        .keepalives_interval(DEAD_PEER_INTERVAL)
        .keepalives_retries(DEAD_PEER_PROBES)
        .tcp_user_timeout(DEAD_PEER_IDLE + DEAD_PEER_INTERVAL * DEAD_PEER_PROBES);
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(options.pool_size)
        .runtime(Runtime::Tokio1)
        .create_timeout(Some(CONNECT_TIMEOUT))
        .wait_timeout(Some(POOL_WAIT_TIMEOUT))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .map_err(|error| Error::Pool {
            detail: error.to_string(),
        })
}

/// Refuses a server on which a commit could be acknowledged before it is durable.
pub(crate) async fn check_durability(
    client: &tokio_postgres::Client,
    require_fsync: bool,
) -> Result<(), Error> {
    let show = |name: &'static str| async move {
        client
            .query_one(&format!("SHOW {name}"), &[])
            .await
            .map_err(Error::database(format!("reading {name}")))
            .and_then(|row| {
                row.try_get::<_, String>(0)
                    .map_err(Error::database(format!("reading {name}")))
            })
    };
    let synchronous_commit = show("synchronous_commit").await?;
    if synchronous_commit != "on" && synchronous_commit != "remote_apply" {
        return Err(Error::NotDurable {
            name: "synchronous_commit",
            value: synchronous_commit,
        });
    }
    if require_fsync {
        let fsync = show("fsync").await?;
        if fsync != "on" {
            return Err(Error::NotDurable {
                name: "fsync",
                value: fsync,
            });
        }
    }
    Ok(())
}

/// Creates the schema when missing and applies the migrations it lacks, in one transaction
/// under an advisory lock (so that processes opening the same database at once apply each
/// migration once); refuses a schema a newer build migrated. Then creates the ledger's
/// metadata row on first use, or checks the stored node key.
pub(crate) async fn migrate(
    client: &mut tokio_postgres::Client,
    schema: &str,
    key: &VerifyingKey,
) -> Result<(), Error> {
    let txn = client
        .transaction()
        .await
        .map_err(Error::database("starting the migration"))?;
    txn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(Error::database("taking the migration lock"))?;
    // The name was checked: letters, digits and _ only.
    txn.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {schema}.schema_version (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .await
    .map_err(Error::database("creating the schema"))?;
    let row = txn
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {schema}.schema_version"),
            &[],
        )
        .await
        .map_err(Error::database("reading the schema version"))?;
    let found: i32 = row
        .try_get(0)
        .map_err(Error::database("reading the schema version"))?;
    if found > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > found) {
        txn.batch_execute(&format!("SET LOCAL search_path = {schema};\n{sql}"))
            .await
            .map_err(Error::database(format!("applying migration {version}")))?;
        txn.execute(
            &format!("INSERT INTO {schema}.schema_version (version) VALUES ($1)"),
            &[version],
        )
        .await
        .map_err(Error::database(format!("recording migration {version}")))?;
    }
    let stored = txn
        .query_opt(
            &format!("SELECT verifying_key, format_version FROM {schema}.ledger_meta"),
            &[],
        )
        .await
        .map_err(Error::database("reading the ledger's metadata"))?;
    match stored {
        Some(row) => {
            let stored: Vec<u8> = row
                .try_get(0)
                .map_err(Error::database("reading the node key"))?;
            let format: i32 = row
                .try_get(1)
                .map_err(Error::database("reading the format version"))?;
            if stored != key.to_bytes() {
                return Err(Error::NodeKeyMismatch {
                    stored: hex::encode(stored),
                    given: hex::encode(key.to_bytes()),
                });
            }
            if format != FORMAT_VERSION {
                return Err(Error::Ledger(kakehashi_ledger::Error::UnsupportedFormat {
                    found: format.to_string(),
                    supported: u8::try_from(FORMAT_VERSION).unwrap_or(u8::MAX),
                }));
            }
        }
        None => {
            let zero = codec::timestamp(kakehashi_ledger::Timestamp(0));
            txn.execute(
                &format!(
                    "INSERT INTO {schema}.ledger_meta (format_version, verifying_key, head_seq, \
                     head_hash, clock_last, clock_account, clock_transfer, signed_seq) VALUES \
                     ($1, $2, 0, $3, $4, $4, $4, 0)"
                ),
                &[
                    &FORMAT_VERSION,
                    &key.to_bytes().as_slice(),
                    &GENESIS_HASH.as_slice(),
                    &zero,
                ],
            )
            .await
            .map_err(Error::database("creating the ledger's metadata"))?;
        }
    }
    txn.commit()
        .await
        .map_err(Error::database("committing the migration"))
}

/// Checks, without changing anything, that `schema` holds a ledger of a version this build
/// knows (for the offline tools).
pub(crate) async fn check_version(
    client: &tokio_postgres::Client,
    schema: &str,
) -> Result<(), Error> {
    let exists = client
        .query_opt(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = $1 \
             AND table_name = 'schema_version'",
            &[&schema],
        )
        .await
        .map_err(Error::database("looking for the ledger's schema"))?
        .is_some();
    if !exists {
        return Err(Error::InvalidOption {
            name: "schema",
            detail: format!("no ledger in schema {schema}"),
        });
    }
    let row = client
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {schema}.schema_version"),
            &[],
        )
        .await
        .map_err(Error::database("reading the schema version"))?;
    let found: i32 = row
        .try_get(0)
        .map_err(Error::database("reading the schema version"))?;
    if found > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    Ok(())
}
