//! The cluster view: each serving process writes a heartbeat row; reading them shows who
//! serves what.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{any::AnyRow, Row};

use crate::{
    db::{get_json, get_time, time, to_json},
    metadata::MetadataStore,
    Result,
};

/// A version loaded on a replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadedVersion {
    pub model: String,
    pub version: u32,
    /// `tensor`, `language` or `embedding`.
    pub kind: String,
}

/// What one replica last reported.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplicaRecord {
    pub id: String,
    /// Where it serves HTTP, as it advertises itself.
    pub address: String,
    pub binary_version: String,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    /// Sequence number of the last registry event it applied.
    pub last_event: i64,
    pub ready: bool,
    pub loaded: Vec<LoadedVersion>,
}

impl MetadataStore {
    pub(crate) async fn heartbeat(&self, replica: &ReplicaRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO replicas (id, address, binary_version, started_at, heartbeat_at, \
             last_event, ready, loaded) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (id) DO UPDATE SET address = $2, binary_version = $3, started_at = $4, \
             heartbeat_at = $5, last_event = $6, ready = $7, loaded = $8",
        )
        .bind(&replica.id)
        .bind(&replica.address)
        .bind(&replica.binary_version)
        .bind(time(replica.started_at))
        .bind(time(replica.heartbeat_at))
        .bind(replica.last_event)
        .bind(i64::from(replica.ready))
        .bind(to_json(&replica.loaded))
        .execute(&self.db.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn replicas(&self) -> Result<Vec<ReplicaRecord>> {
        let rows = sqlx::query(
            "SELECT id, address, binary_version, started_at, heartbeat_at, last_event, ready, \
             loaded FROM replicas ORDER BY id",
        )
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Forgets replicas whose last heartbeat is older than `before`.
    pub(crate) async fn forget_replicas(&self, before: DateTime<Utc>) -> Result<u64> {
        let rows = self.replicas().await?;
        let mut forgotten = 0;
        for gone in rows.iter().filter(|r| r.heartbeat_at < before) {
            forgotten += sqlx::query("DELETE FROM replicas WHERE id = $1 AND heartbeat_at = $2")
                .bind(&gone.id)
                .bind(time(gone.heartbeat_at))
                .execute(&self.db.pool)
                .await?
                .rows_affected();
        }
        Ok(forgotten)
    }
}

fn decode(row: &AnyRow) -> Result<ReplicaRecord> {
    Ok(ReplicaRecord {
        id: row.try_get("id")?,
        address: row.try_get("address")?,
        binary_version: row.try_get("binary_version")?,
        started_at: get_time(row, "started_at")?,
        heartbeat_at: get_time(row, "heartbeat_at")?,
        last_event: row.try_get("last_event")?,
        ready: row.try_get::<i64, _>("ready")? != 0,
        loaded: get_json(row, "loaded")?,
    })
}
