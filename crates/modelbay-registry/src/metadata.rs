//! Models and their immutable versions.

use std::{collections::HashMap, path::Path, str::FromStr};

use chrono::Utc;
use modelbay_core::{ModelFormat, ModelName};
use serde_json::json;
use sqlx::{any::AnyRow, Row};

use crate::{
    db::{get_json, get_optional_time, get_time, get_u32, time, to_json, Db},
    events::{self, NewEvent},
    Digest, Error, EventKind, ModelSummary, NewVersion, Result, StagedArtifact, VersionRecord,
};

/// The alias a model's first version gets.
const PRODUCTION: &str = "production";

const VERSION_COLUMNS: &str = "model, version, digest, size, format, signature, description, \
                               labels, created_at, created_by, archived_at, details";

/// Models, versions, aliases, policies, settings, keys and the event log in SQL.
#[derive(Clone)]
pub(crate) struct MetadataStore {
    pub(crate) db: Db,
}

impl MetadataStore {
    pub(crate) async fn open_sqlite(path: &Path) -> Result<Self> {
        Ok(Self {
            db: Db::open_sqlite(path).await?,
        })
    }

    pub(crate) async fn open_postgres(url: &str) -> Result<Self> {
        Ok(Self {
            db: Db::open_postgres(url).await?,
        })
    }

    /// Allocates the next version number and records the version and its events in one
    /// transaction. The first statement writes the model's row, which locks it: concurrent
    /// pushes of one model queue up behind each other instead of failing, and a rolled-back
    /// push gives its number back, so numbers stay contiguous.
    pub(crate) async fn insert_version(
        &self,
        model: &ModelName,
        staged: &StagedArtifact,
        new: NewVersion,
    ) -> Result<VersionRecord> {
        let now = Utc::now();
        let mut tx = self.db.begin_write().await?;
        let version: i64 = sqlx::query_scalar(
            "INSERT INTO models (name, last_version, created_at, updated_at) VALUES ($1, 1, $2, $2) \
             ON CONFLICT (name) DO UPDATE SET last_version = models.last_version + 1, updated_at = $2 \
             RETURNING last_version",
        )
        .bind(model.as_str())
        .bind(time(now))
        .fetch_one(&mut *tx)
        .await?;
        let mut record = VersionRecord {
            model: model.to_string(),
            version: u32::try_from(version)
                .map_err(|_| Error::Decode(format!("version {version}")))?,
            digest: staged.digest().clone(),
            size: staged.size(),
            format: new.format,
            signature: new.signature,
            details: new.details,
            description: new.description,
            labels: new.labels,
            created_at: now,
            created_by: new.created_by,
            archived: false,
            aliases: Vec::new(),
        };
        sqlx::query(
            "INSERT INTO versions (model, version, digest, size, format, signature, description, \
             labels, created_at, created_by, details) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&record.model)
        .bind(version)
        .bind(record.digest.as_str())
        .bind(record.size as i64)
        .bind(record.format.as_str())
        .bind(to_json(&record.signature))
        .bind(&record.description)
        .bind(to_json(&record.labels))
        .bind(time(now))
        .bind(&record.created_by)
        .bind(to_json(&record.details))
        .execute(&mut *tx)
        .await?;
        events::append(
            &mut tx,
            NewEvent {
                actor: &record.created_by,
                kind: EventKind::Push,
                model: &record.model,
                before: None,
                after: Some(json!({ "version": record.version, "digest": record.digest })),
            },
        )
        .await?;
        if version == 1 {
            // A model's first version is what it serves, as `production`; later pushes serve
            // only once promoted. In the same transaction: never a first version without it.
            crate::versioning::write_alias(&mut tx, model, PRODUCTION, 1).await?;
            events::append(
                &mut tx,
                NewEvent {
                    actor: &record.created_by,
                    kind: EventKind::AliasSet,
                    model: &record.model,
                    before: None,
                    after: Some(json!({ "alias": PRODUCTION, "version": 1 })),
                },
            )
            .await?;
            record.aliases.push(PRODUCTION.to_owned());
        }
        tx.commit().await?;
        Ok(record)
    }

    pub(crate) async fn models(&self) -> Result<Vec<ModelSummary>> {
        let rows = sqlx::query(
            "SELECT m.name, m.created_at, m.updated_at,
                    (SELECT COALESCE(MAX(version), 0) FROM versions v WHERE v.model = m.name) AS latest,
                    (SELECT COUNT(*) FROM versions v WHERE v.model = m.name) AS count
             FROM models m ORDER BY m.name",
        )
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ModelSummary {
                    name: row.try_get("name")?,
                    latest_version: get_u32(row, "latest")?,
                    version_count: get_u32(row, "count")?,
                    created_at: get_time(row, "created_at")?,
                    updated_at: get_time(row, "updated_at")?,
                })
            })
            .collect()
    }

    pub(crate) async fn versions(&self, model: &ModelName) -> Result<Vec<VersionRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM versions WHERE model = $1 ORDER BY version"
        ))
        .bind(model.as_str())
        .fetch_all(&self.db.pool)
        .await?;
        if rows.is_empty() {
            // A model whose versions were all deleted still exists, with none.
            return match self.missing(model, 0).await {
                Error::VersionNotFound { .. } => Ok(Vec::new()),
                other => Err(other),
            };
        }
        let aliases = self.alias_map(model).await?;
        rows.iter()
            .map(|row| decode_version(row, &aliases))
            .collect()
    }

    pub(crate) async fn version(&self, model: &ModelName, version: u32) -> Result<VersionRecord> {
        let row = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM versions WHERE model = $1 AND version = $2"
        ))
        .bind(model.as_str())
        .bind(i64::from(version))
        .fetch_optional(&self.db.pool)
        .await?;
        match row {
            Some(row) => decode_version(&row, &self.alias_map(model).await?),
            None => Err(self.missing(model, version).await),
        }
    }

    pub(crate) async fn latest_version(&self, model: &ModelName) -> Result<VersionRecord> {
        let row = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM versions WHERE model = $1 AND archived_at IS NULL \
             ORDER BY version DESC LIMIT 1"
        ))
        .bind(model.as_str())
        .fetch_optional(&self.db.pool)
        .await?;
        match row {
            Some(row) => decode_version(&row, &self.alias_map(model).await?),
            None => Err(Error::ModelNotFound(model.to_string())),
        }
    }

    /// Aliases of a model by the version they point at.
    async fn alias_map(&self, model: &ModelName) -> Result<HashMap<u32, Vec<String>>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT alias, version FROM aliases WHERE model = $1 ORDER BY alias")
                .bind(model.as_str())
                .fetch_all(&self.db.pool)
                .await?;
        let mut map: HashMap<u32, Vec<String>> = HashMap::new();
        for (alias, version) in rows {
            map.entry(version as u32).or_default().push(alias);
        }
        Ok(map)
    }

    /// Says whether the model or only the version is missing.
    pub(crate) async fn missing(&self, model: &ModelName, version: u32) -> Error {
        let exists = sqlx::query("SELECT name FROM models WHERE name = $1")
            .bind(model.as_str())
            .fetch_optional(&self.db.pool)
            .await;
        match exists {
            Ok(Some(_)) => Error::VersionNotFound {
                model: model.to_string(),
                version,
            },
            Ok(None) => Error::ModelNotFound(model.to_string()),
            Err(e) => e.into(),
        }
    }
}

fn decode_version(row: &AnyRow, aliases: &HashMap<u32, Vec<String>>) -> Result<VersionRecord> {
    let version = get_u32(row, "version")?;
    let format: String = row.try_get("format")?;
    let digest: String = row.try_get("digest")?;
    Ok(VersionRecord {
        model: row.try_get("model")?,
        version,
        digest: Digest::parse(&digest)?,
        size: row.try_get::<i64, _>("size")? as u64,
        format: ModelFormat::from_str(&format).map_err(|e| Error::Decode(e.to_string()))?,
        signature: get_json(row, "signature")?,
        details: get_json(row, "details")?,
        description: row.try_get("description")?,
        labels: get_json(row, "labels")?,
        created_at: get_time(row, "created_at")?,
        created_by: row.try_get("created_by")?,
        archived: get_optional_time(row, "archived_at")?.is_some(),
        aliases: aliases.get(&version).cloned().unwrap_or_default(),
    })
}
