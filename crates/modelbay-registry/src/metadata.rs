use std::{collections::HashMap, path::Path, str::FromStr, time::Duration};

use chrono::{DateTime, Utc};
use modelbay_core::{ModelFormat, ModelName};
use sqlx::{
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
    },
    Row, SqlitePool,
};

use crate::{Error, ModelSummary, NewVersion, Result, StagedArtifact, VersionRecord};

/// The alias a model's first version gets.
const PRODUCTION: &str = "production";

static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

const VERSION_COLUMNS: &str = "model, version, digest, size, format, signature, description, \
                               labels, created_at, created_by, archived_at, details";

/// Models, versions and events in SQL.
#[derive(Clone)]
pub(crate) struct MetadataStore {
    pub(crate) pool: SqlitePool,
}

impl MetadataStore {
    pub(crate) async fn open_sqlite(path: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        MIGRATIONS.run(&pool).await?;
        Ok(Self { pool })
    }

    /// Allocates the next version number and records the version and its event in one
    /// transaction. The first statement writes, so SQLite takes the write lock at once and
    /// concurrent pushes queue up instead of failing.
    pub(crate) async fn insert_version(
        &self,
        model: &ModelName,
        staged: &StagedArtifact,
        new: NewVersion,
    ) -> Result<VersionRecord> {
        let now = Utc::now();
        let mut tx = self.pool.begin().await?;
        let version: i64 = sqlx::query_scalar(
            "INSERT INTO models (name, last_version, created_at, updated_at) VALUES (?1, 1, ?2, ?2)
             ON CONFLICT (name) DO UPDATE SET last_version = last_version + 1, updated_at = ?2
             RETURNING last_version",
        )
        .bind(model.as_str())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let record = VersionRecord {
            model: model.to_string(),
            version: u32::try_from(version)
                .map_err(|_| Error::Decode(format!("version {version}")))?,
            digest: staged.digest().to_owned(),
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
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .bind(&record.model)
        .bind(version)
        .bind(&record.digest)
        .bind(record.size as i64)
        .bind(record.format.as_str())
        .bind(to_json(&record.signature))
        .bind(&record.description)
        .bind(to_json(&record.labels))
        .bind(now)
        .bind(&record.created_by)
        .bind(to_json(&record.details))
        .execute(&mut *tx)
        .await?;
        let after = serde_json::json!({ "version": record.version, "digest": record.digest });
        crate::events::append(
            &mut tx,
            &record.created_by,
            "push",
            &record.model,
            None,
            Some(after),
        )
        .await?;
        let mut record = record;
        if version == 1 {
            // A model's first version is what it serves, as `production`; later pushes serve
            // only once promoted. In the same transaction: never a first version without it.
            crate::versioning::write_alias(&mut tx, model, PRODUCTION, 1).await?;
            crate::events::append(
                &mut tx,
                &record.created_by,
                "alias.set",
                &record.model,
                None,
                Some(serde_json::json!({ "alias": PRODUCTION, "version": 1 })),
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
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ModelSummary {
                    name: row.try_get("name")?,
                    latest_version: row.try_get::<i64, _>("latest")? as u32,
                    version_count: row.try_get::<i64, _>("count")? as u32,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                })
            })
            .collect()
    }

    pub(crate) async fn versions(&self, model: &ModelName) -> Result<Vec<VersionRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM versions WHERE model = ?1 ORDER BY version"
        ))
        .bind(model.as_str())
        .fetch_all(&self.pool)
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
            "SELECT {VERSION_COLUMNS} FROM versions WHERE model = ?1 AND version = ?2"
        ))
        .bind(model.as_str())
        .bind(version as i64)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => decode_version(&row, &self.alias_map(model).await?),
            None => Err(self.missing(model, version).await),
        }
    }

    pub(crate) async fn latest_version(&self, model: &ModelName) -> Result<VersionRecord> {
        let row = sqlx::query(&format!(
            "SELECT {VERSION_COLUMNS} FROM versions WHERE model = ?1 AND archived_at IS NULL \
             ORDER BY version DESC LIMIT 1"
        ))
        .bind(model.as_str())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => decode_version(&row, &self.alias_map(model).await?),
            None => Err(Error::ModelNotFound(model.to_string())),
        }
    }

    /// Aliases of a model by the version they point at.
    async fn alias_map(&self, model: &ModelName) -> Result<HashMap<u32, Vec<String>>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT alias, version FROM aliases WHERE model = ?1 ORDER BY alias")
                .bind(model.as_str())
                .fetch_all(&self.pool)
                .await?;
        let mut map: HashMap<u32, Vec<String>> = HashMap::new();
        for (alias, version) in rows {
            map.entry(version as u32).or_default().push(alias);
        }
        Ok(map)
    }

    /// Says whether the model or only the version is missing.
    pub(crate) async fn missing(&self, model: &ModelName, version: u32) -> Error {
        let exists = sqlx::query("SELECT 1 FROM models WHERE name = ?1")
            .bind(model.as_str())
            .fetch_optional(&self.pool)
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

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("registry records serialize to JSON")
}

fn decode_version(row: &SqliteRow, aliases: &HashMap<u32, Vec<String>>) -> Result<VersionRecord> {
    let version = row.try_get::<i64, _>("version")? as u32;
    let archived_at: Option<DateTime<Utc>> = row.try_get("archived_at")?;
    let format: String = row.try_get("format")?;
    let signature: String = row.try_get("signature")?;
    let labels: String = row.try_get("labels")?;
    let details: String = row.try_get("details")?;
    let created_at: DateTime<Utc> = row.try_get("created_at")?;
    Ok(VersionRecord {
        model: row.try_get("model")?,
        version,
        digest: row.try_get("digest")?,
        size: row.try_get::<i64, _>("size")? as u64,
        format: ModelFormat::from_str(&format).map_err(|e| Error::Decode(e.to_string()))?,
        signature: serde_json::from_str(&signature).map_err(|e| Error::Decode(e.to_string()))?,
        details: serde_json::from_str(&details).map_err(|e| Error::Decode(e.to_string()))?,
        description: row.try_get("description")?,
        labels: serde_json::from_str(&labels).map_err(|e| Error::Decode(e.to_string()))?,
        created_at,
        created_by: row.try_get("created_by")?,
        archived: archived_at.is_some(),
        aliases: aliases.get(&version).cloned().unwrap_or_default(),
    })
}
