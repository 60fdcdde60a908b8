//! The schema's writer lease ([`crate::Options::exclusive`]): a session-level advisory lock,
//! taken on a connection of its own when a ledger opens and held until it is dropped, and
//! checked by every group's transaction.
//!
//! Why a lease and a check, not the lock alone: a session's advisory locks end with the
//! session. If the lease's connection dies (a network cut, a server restart, a firewall
//! closing idle connections), another process can take the lease while this one's writer
//! still runs. The writer's transactions run on other connections, so the lock alone would
//! not stop them; the check, made under the head row's lock that every group takes first,
//! does. A group that finds the lease gone is not applied and stops the writer (the node
//! reopens the ledger, which takes the lease again or is refused).

use deadpool_postgres::{ClientWrapper, Object, Pool};

use crate::Error;
use crate::sql::Txn;

/// The first key of the lease's advisory lock ("kkle"); the second is the schema name's
/// `hashtext`. Two schemas whose names hash alike share a lease: the second node is refused at
/// open, never let through, and a different name fixes it.
const LEASE_CLASS: i32 = 0x6b6b_6c65;

/// What the writer checks: the session that holds the lease, and the schema it is for.
#[derive(Clone, Debug)]
pub(crate) struct Held {
    /// The backend process id of the lease's session.
    pid: i32,
    schema: String,
}

/// Takes the lease of `schema` on a connection taken out of `pool` (a pooled connection would
/// carry the lease to whoever took it next), or [`Error::Held`] while another session holds
/// it.
pub(crate) async fn take(pool: &Pool, schema: &str) -> Result<(ClientWrapper, Held), Error> {
    let object = pool.get().await.map_err(|error| Error::Pool {
        detail: error.to_string(),
    })?;
    let client = Object::take(object);
    let row = client
        .query_one(
            "SELECT pg_try_advisory_lock($1, hashtext($2)), pg_backend_pid()",
            &[&LEASE_CLASS, &schema],
        )
        .await
        .map_err(Error::database("taking the schema's writer lease"))?;
    let read = Error::database("taking the schema's writer lease");
    let taken: bool = row.try_get(0).map_err(read)?;
    let pid: i32 = row
        .try_get(1)
        .map_err(Error::database("taking the schema's writer lease"))?;
    if !taken {
        return Err(Error::Held {
            schema: schema.to_owned(),
        });
    }
    Ok((
        client,
        Held {
            pid,
            schema: schema.to_owned(),
        },
    ))
}

/// Whether the session of `held` still holds the lease, read in a writer's transaction.
pub(crate) async fn still_held(txn: &Txn<'_>, held: &Held) -> Result<bool, Error> {
    // pg_locks shows a two-key advisory lock as classid = the first key, objid = the second as
    // an unsigned 32-bit number, objsubid = 2.
    let row = txn
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = $1 \
             AND classid = ($2::int8)::oid \
             AND objid = (hashtext($3)::int8 & 4294967295)::oid \
             AND objsubid = 2 AND granted)",
            &[&held.pid, &i64::from(LEASE_CLASS), &held.schema],
        )
        .await
        .map_err(Error::database("checking the schema's writer lease"))?;
    row.try_get(0)
        .map_err(Error::database("checking the schema's writer lease"))
}
