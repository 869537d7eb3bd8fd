//! The append-only event log, a leaf the other tables' writers call: every registry mutation
//! appends its event in the same transaction as the mutation itself, so the log and the state
//! never disagree. Replicas follow the log by sequence number.

use serde_json::Value;
use sqlx::{any::AnyRow, AnyPool, Row};

use crate::{
    db::{get_time, time, Tx},
    Error, Event, EventKind, Result,
};

/// Largest page of events one call returns.
pub const MAX_EVENTS_PAGE: u32 = 1000;

/// An event about to be appended.
pub(crate) struct NewEvent<'a> {
    pub(crate) actor: &'a str,
    pub(crate) kind: EventKind,
    /// The model it concerns; empty for events about no model (keys).
    pub(crate) model: &'a str,
    pub(crate) before: Option<Value>,
    pub(crate) after: Option<Value>,
}

/// Appends an event in the writer's transaction and returns it with its sequence number.
pub(crate) async fn append(tx: &mut Tx<'_>, new: NewEvent<'_>) -> Result<Event> {
    crate::db::Db::order_appends(tx).await?;
    let at = chrono::Utc::now();
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO events (at, actor, kind, model, before, after) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq",
    )
    .bind(time(at))
    .bind(new.actor)
    .bind(new.kind.as_str())
    .bind(new.model)
    .bind(new.before.as_ref().map(Value::to_string))
    .bind(new.after.as_ref().map(Value::to_string))
    .fetch_one(&mut **tx)
    .await?;
    Ok(Event {
        seq,
        at,
        actor: new.actor.to_owned(),
        kind: new.kind,
        model: new.model.to_owned(),
        before: new.before,
        after: new.after,
    })
}

/// Events after `since` (a sequence number), oldest first, optionally for one model.
pub(crate) async fn page(
    pool: &AnyPool,
    model: Option<&str>,
    since: i64,
    limit: u32,
) -> Result<Vec<Event>> {
    let rows = sqlx::query(
        "SELECT seq, at, actor, kind, model, before, after FROM events \
         WHERE seq > $1 AND ($2 IS NULL OR model = $2) ORDER BY seq LIMIT $3",
    )
    .bind(since)
    .bind(model)
    .bind(i64::from(limit.min(MAX_EVENTS_PAGE)))
    .fetch_all(pool)
    .await?;
    rows.iter().map(decode).collect()
}

/// The sequence number of the newest event; 0 for an empty log.
pub(crate) async fn last_seq(pool: &AnyPool) -> Result<i64> {
    let seq: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM events")
        .fetch_one(pool)
        .await?;
    Ok(seq.unwrap_or(0))
}

fn json(text: Option<String>) -> Result<Option<Value>> {
    text.map(|t| serde_json::from_str(&t).map_err(|e| Error::Decode(e.to_string())))
        .transpose()
}

fn decode(row: &AnyRow) -> Result<Event> {
    let kind: String = row.try_get("kind")?;
    Ok(Event {
        seq: row.try_get("seq")?,
        at: get_time(row, "at")?,
        actor: row.try_get("actor")?,
        kind: EventKind::parse(&kind),
        model: row.try_get("model")?,
        before: json(row.try_get("before")?)?,
        after: json(row.try_get("after")?)?,
    })
}
