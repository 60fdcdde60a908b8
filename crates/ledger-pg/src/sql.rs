//! Statements through the connection's statement cache: each SQL text is prepared once per
//! connection, so a statement costs one round trip (bind and execute), not two.

use deadpool_postgres::Object;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

/// Parameters of a statement.
pub(crate) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// A transaction whose statements go through the statement cache.
pub(crate) struct Txn<'a>(pub(crate) deadpool_postgres::Transaction<'a>);

impl Txn<'_> {
    pub(crate) async fn begin(client: &mut Object) -> Result<Txn<'_>, tokio_postgres::Error> {
        Ok(Txn(client.transaction().await?))
    }

    pub(crate) async fn query(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let statement = self.0.prepare_cached(sql).await?;
        self.0.query(&statement, params).await
    }

    pub(crate) async fn query_one(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Row, tokio_postgres::Error> {
        let statement = self.0.prepare_cached(sql).await?;
        self.0.query_one(&statement, params).await
    }

    pub(crate) async fn query_opt(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Option<Row>, tokio_postgres::Error> {
        let statement = self.0.prepare_cached(sql).await?;
        self.0.query_opt(&statement, params).await
    }

    pub(crate) async fn execute(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<u64, tokio_postgres::Error> {
        let statement = self.0.prepare_cached(sql).await?;
        self.0.execute(&statement, params).await
    }

    pub(crate) async fn commit(self) -> Result<(), tokio_postgres::Error> {
        self.0.commit().await
    }
}

/// A query outside a transaction (a reader's), through the statement cache.
pub(crate) async fn query(
    client: &Object,
    sql: &str,
    params: Params<'_>,
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let statement = client.prepare_cached(sql).await?;
    client.query(&statement, params).await
}
