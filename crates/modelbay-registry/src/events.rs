//! The append-only event log: every registry mutation writes one row in the same transaction as
//! the mutation itself, so the log and the state never disagree.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{Row, Sqlite, Transaction};

use crate::{metadata::MetadataStore, Error, Event, Result};

/// Largest page of events one call returns.
pub const MAX_EVENTS_PAGE: u32 = 1000;

pub(crate) async fn append(
    tx: &mut Transaction<'_, Sqlite>,
    actor: &str,
    kind: &str,
    model: &str,
    before: Option<Value>,
    after: Option<Value>,
) -> Result<()> {
    sqlx::query("INSERT INTO events (at, actor, kind, model, before, after) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
        .bind(Utc::now())
        .bind(actor)
        .bind(kind)
        .bind(model)
        .bind(before.map(|v| v.to_string()))
        .bind(after.map(|v| v.to_string()))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn parse(text: Option<String>) -> Result<Option<Value>> {
    text.map(|t| serde_json::from_str(&t).map_err(|e| Error::Decode(e.to_string())))
        .transpose()
}

impl MetadataStore {
    /// Events after `since` (a sequence number), oldest first, optionally for one model.
    pub(crate) async fn events(
        &self,
        model: Option<&str>,
        since: i64,
        limit: u32,
    ) -> Result<Vec<Event>> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, kind, model, before, after FROM events
             WHERE seq > ?1 AND (?2 IS NULL OR model = ?2) ORDER BY seq LIMIT ?3",
        )
        .bind(since)
        .bind(model)
        .bind(i64::from(limit.min(MAX_EVENTS_PAGE)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let at: DateTime<Utc> = row.try_get("at")?;
                Ok(Event {
                    seq: row.try_get("seq")?,
                    at,
                    actor: row.try_get("actor")?,
                    kind: row.try_get("kind")?,
                    model: row.try_get("model")?,
                    before: parse(row.try_get("before")?)?,
                    after: parse(row.try_get("after")?)?,
                })
            })
            .collect()
    }
}
