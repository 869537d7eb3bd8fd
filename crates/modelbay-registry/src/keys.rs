//! API keys: created and revoked in one transaction with their audit event each. Only a digest
//! of a key's secret is stored; the secret itself never reaches the registry.

use chrono::{DateTime, Utc};
use modelbay_core::{KeyLimits, ModelPattern, Role};
use serde::Serialize;
use serde_json::json;
use sqlx::{any::AnyRow, Row};

use crate::{
    db::{get_json, get_optional_time, get_time, time, to_json},
    events::{self, NewEvent},
    metadata::MetadataStore,
    Error, EventKind, Result,
};

/// The event log's model column for events that concern no model.
const NO_MODEL: &str = "";

/// A key to create: everything but the secret, whose digest stands in for it.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub id: String,
    pub label: String,
    pub role: Role,
    pub models: Vec<ModelPattern>,
    /// Hex SHA-256 of the secret.
    pub digest: String,
    pub limits: KeyLimits,
    pub expires_at: Option<DateTime<Utc>>,
    /// Hex SHA-256 of the DER client certificate that also stands for the key, if any.
    pub client_cert: Option<String>,
}

/// A stored key. The digest is never serialised.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyRecord {
    pub id: String,
    pub label: String,
    pub role: Role,
    pub models: Vec<ModelPattern>,
    #[serde(skip)]
    pub digest: String,
    /// The key's own limits; each one left out is the server's default.
    pub limits: KeyLimits,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Hex SHA-256 of the client certificate bound to the key (mTLS), if any.
    #[serde(rename = "client_cert_sha256", skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<String>,
}

const KEY_COLUMNS: &str = "id, label, role, models, digest, limits, created_at, created_by, \
                           expires_at, revoked_at, client_cert";

fn key_from_row(row: &AnyRow) -> Result<KeyRecord> {
    let role: String = row.try_get("role")?;
    Ok(KeyRecord {
        id: row.try_get("id")?,
        label: row.try_get("label")?,
        role: role
            .parse()
            .map_err(|e: modelbay_core::Error| Error::Decode(e.to_string()))?,
        models: get_json(row, "models")?,
        digest: row.try_get("digest")?,
        limits: get_json(row, "limits")?,
        created_at: get_time(row, "created_at")?,
        created_by: row.try_get("created_by")?,
        expires_at: get_optional_time(row, "expires_at")?,
        revoked_at: get_optional_time(row, "revoked_at")?,
        client_cert: row.try_get("client_cert")?,
    })
}

/// What the audit trail says about a key (never its digest).
fn described(key: &KeyRecord) -> serde_json::Value {
    json!(key)
}

impl MetadataStore {
    /// Every key, revoked ones too, oldest first.
    pub(crate) async fn keys(&self) -> Result<Vec<KeyRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"
        ))
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    pub(crate) async fn create_key(&self, new: NewKey, actor: &str) -> Result<KeyRecord> {
        let mut tx = self.db.begin_write().await?;
        let row = sqlx::query(&format!(
            "INSERT INTO api_keys (id, label, role, models, digest, limits, created_at,
                                   created_by, expires_at, client_cert)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {KEY_COLUMNS}"
        ))
        .bind(&new.id)
        .bind(&new.label)
        .bind(new.role.as_str())
        .bind(to_json(&new.models))
        .bind(&new.digest)
        .bind(to_json(&new.limits))
        .bind(time(Utc::now()))
        .bind(actor)
        .bind(new.expires_at.map(time))
        .bind(&new.client_cert)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(d) if d.is_unique_violation() => Error::Conflict(
                "a key with this id, secret or client certificate exists already".into(),
            ),
            other => other.into(),
        })?;
        let key = key_from_row(&row)?;
        events::append(
            &mut tx,
            NewEvent {
                actor,
                kind: EventKind::KeyCreated,
                model: NO_MODEL,
                before: None,
                after: Some(described(&key)),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(key)
    }

    /// Revokes a key; revoking a revoked key changes nothing and records nothing.
    pub(crate) async fn revoke_key(&self, id: &str, actor: &str) -> Result<KeyRecord> {
        let mut tx = self.db.begin_write().await?;
        let before = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| key_from_row(&row))
            .transpose()?
            .ok_or_else(|| Error::KeyNotFound(id.to_owned()))?;
        if before.revoked_at.is_some() {
            return Ok(before);
        }
        let row = sqlx::query(&format!(
            "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 RETURNING {KEY_COLUMNS}"
        ))
        .bind(time(Utc::now()))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let after = key_from_row(&row)?;
        events::append(
            &mut tx,
            NewEvent {
                actor,
                kind: EventKind::KeyRevoked,
                model: NO_MODEL,
                before: Some(described(&before)),
                after: Some(described(&after)),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(after)
    }
}
