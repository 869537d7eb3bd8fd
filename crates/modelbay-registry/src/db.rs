//! The SQL connection behind the metadata store. Queries are written once, in the dialect both
//! backends accept (`$n` placeholders, `ON CONFLICT`, `RETURNING`), and run through sqlx's
//! `Any` driver; timestamps and JSON are stored as text so that both backends read them alike.

use std::{path::Path, time::Duration};

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::{any::AnyRow, pool::PoolOptions, Any, AnyPool, Executor, Row};

use crate::{Error, Result};

/// A transaction on the metadata store.
pub(crate) type Tx<'a> = sqlx::Transaction<'a, Any>;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a statement waits for a connection: during a database outage, management writes
/// fail with 503 after this, instead of hanging.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Connections each replica keeps to PostgreSQL (the listener's is extra).
const POSTGRES_CONNECTIONS: u32 = 8;

/// Which database holds the metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded single-node store, one file under the data directory.
    Sqlite,
    /// A PostgreSQL database shared by every replica.
    Postgres,
}

/// The pool and what it talks to.
#[derive(Clone)]
pub(crate) struct Db {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
}

impl Db {
    /// Opens (creating if needed) a SQLite file: write-ahead log, full fsync, foreign keys on,
    /// writers wait up to 10 s for the lock instead of failing.
    pub(crate) async fn open_sqlite(path: &Path) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let url = format!("sqlite://{}?mode=rwc", percent_encode_path(path)?);
        let pool = PoolOptions::<Any>::new()
            .max_connections(4)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    for pragma in [
                        "PRAGMA journal_mode = WAL",
                        "PRAGMA synchronous = FULL",
                        "PRAGMA foreign_keys = ON",
                        "PRAGMA busy_timeout = 10000",
                    ] {
                        conn.execute(pragma).await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        SQLITE_MIGRATIONS.run(&pool).await?;
        Ok(Self {
            pool,
            backend: Backend::Sqlite,
        })
    }
}

impl Db {
    /// Begins a transaction that will write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), waiting up to the busy timeout for another writer: a plain
    /// (deferred) transaction that reads first and writes later cannot wait when another
    /// connection commits in between, and fails with "database is locked". PostgreSQL's row
    /// locks need no such thing.
    pub(crate) async fn begin_write(&self) -> Result<Tx<'static>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }
}

/// A path as the percent-encoded part of a `sqlite://` URL.
impl Db {
    /// Connects to PostgreSQL and brings its schema up to date. Replicas starting together
    /// migrate one at a time: sqlx holds an advisory lock while it migrates.
    pub(crate) async fn open_postgres(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let pool = PoolOptions::<Any>::new()
            .max_connections(POSTGRES_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await?;
        POSTGRES_MIGRATIONS.run(&pool).await?;
        Ok(Self {
            pool,
            backend: Backend::Postgres,
        })
    }

    /// Takes the lock that orders event appends (PostgreSQL only: SQLite has one writer at a
    /// time anyway). Held until the transaction ends, so events commit in sequence order and
    /// a follower that has read up to `n` never later finds a smaller number appear.
    pub(crate) async fn order_appends(tx: &mut Tx<'_>) -> Result<()> {
        if tx.backend_name() == "PostgreSQL" {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(EVENT_LOG_LOCK)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }
}

/// A lock on one digest across every replica (PostgreSQL only; one process uses its own
/// mutex), held while its blob is published and recorded and while an unused blob is removed,
/// so a push of the same bytes on another replica never finds the blob deleted under it.
pub(crate) struct DigestLock {
    conn: Option<sqlx::pool::PoolConnection<Any>>,
    key: i64,
}

impl Db {
    pub(crate) async fn lock_digest(&self, digest: &crate::Digest) -> Result<DigestLock> {
        if self.backend != Backend::Postgres {
            return Ok(DigestLock { conn: None, key: 0 });
        }
        // The first 60 bits of the digest (it is uniformly random), kept clear of the
        // event-log lock's key by the top bits.
        let key = i64::from_str_radix(&digest.hex()[..15], 16).unwrap_or(0);
        let mut conn = self.pool.acquire().await?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(key)
            .execute(&mut *conn)
            .await?;
        Ok(DigestLock {
            conn: Some(conn),
            key,
        })
    }
}

impl DigestLock {
    pub(crate) async fn release(mut self) {
        if let Some(mut conn) = self.conn.take() {
            let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(self.key)
                .execute(&mut *conn)
                .await;
            if unlocked.is_err() {
                // Closing the session releases every lock it holds.
                drop(conn.detach());
            }
        }
    }
}

impl Drop for DigestLock {
    fn drop(&mut self) {
        // Not released (a failure or cancellation on the way): end the session rather than
        // return a connection that still holds the lock to the pool.
        if let Some(conn) = self.conn.take() {
            drop(conn.detach());
        }
    }
}

/// The advisory-lock key that serialises event appends ("modelbay" in ASCII).
const EVENT_LOG_LOCK: i64 = 0x6d6f_6465_6c62_6179;

fn percent_encode_path(path: &Path) -> Result<String> {
    let text = path
        .to_str()
        .ok_or_else(|| Error::Decode("the data directory's path is not UTF-8".into()))?;
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    Ok(out)
}

/// A timestamp as stored: RFC 3339 in UTC, as sqlx's SQLite driver always wrote it, so
/// registries written by earlier versions read back unchanged.
pub(crate) fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, false)
}

fn parse_time(text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::Decode(format!("a stored timestamp: {e}")))
}

/// A timestamp column.
pub(crate) fn get_time(row: &AnyRow, column: &str) -> Result<DateTime<Utc>> {
    parse_time(&row.try_get::<String, _>(column)?)
}

/// A nullable timestamp column.
pub(crate) fn get_optional_time(row: &AnyRow, column: &str) -> Result<Option<DateTime<Utc>>> {
    row.try_get::<Option<String>, _>(column)?
        .as_deref()
        .map(parse_time)
        .transpose()
}

/// A JSON text column.
pub(crate) fn get_json<T: serde::de::DeserializeOwned>(row: &AnyRow, column: &str) -> Result<T> {
    let text: String = row.try_get(column)?;
    from_json(&text)
}

/// Decodes stored JSON.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::Decode(e.to_string()))
}

/// Encodes a record for a JSON text column.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("registry records serialize to JSON")
}

/// An unsigned number column (versions, sizes).
pub(crate) fn get_u32(row: &AnyRow, column: &str) -> Result<u32> {
    let value: i64 = row.try_get(column)?;
    u32::try_from(value).map_err(|_| Error::Decode(format!("{column} {value}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_and_read_what_sqlx_wrote() {
        let now = Utc::now();
        assert_eq!(parse_time(&time(now)).unwrap(), now);
        // The shape sqlx's SQLite driver stored before the metadata moved to text columns.
        let old = parse_time("2026-11-30T09:41:07.123456789+00:00").unwrap();
        assert_eq!(old.timestamp(), 1_796_031_667);
    }

    #[test]
    fn paths_are_percent_encoded() {
        assert_eq!(
            percent_encode_path(Path::new("/tmp/a b?c#d/registry.db")).unwrap(),
            "/tmp/a%20b%3Fc%23d/registry.db"
        );
    }
}
