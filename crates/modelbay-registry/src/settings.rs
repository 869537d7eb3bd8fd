//! Per-model serving settings (the tensor dynamic batcher) and per-version reference data.
//! Every change is one transaction with its event.

use chrono::Utc;
use modelbay_core::{generation::GenerationParams, ModelName, TensorBatching};
use serde_json::{json, Value};

use crate::{
    db::{time, to_json},
    events::{self, NewEvent},
    metadata::MetadataStore,
    versioning::{begin_write, require_servable},
    Error, EventKind, Result,
};

fn decode<T: serde::de::DeserializeOwned>(text: Option<String>) -> Result<Option<T>> {
    text.map(|t| serde_json::from_str(&t).map_err(|e| Error::Decode(e.to_string())))
        .transpose()
}

impl MetadataStore {
    /// The model's batching settings; `None` when never set (batching off).
    pub(crate) async fn batching(&self, model: &ModelName) -> Result<Option<TensorBatching>> {
        let text: Option<String> =
            sqlx::query_scalar("SELECT batching FROM model_settings WHERE model = $1")
                .bind(model.as_str())
                .fetch_optional(&self.db.pool)
                .await?;
        decode(text)
    }

    /// Replaces the model's batching settings.
    pub(crate) async fn set_batching(
        &self,
        model: &ModelName,
        batching: &TensorBatching,
        actor: &str,
    ) -> Result<()> {
        batching.validate()?;
        let mut tx = begin_write(self, model).await?;
        let before: Option<String> =
            sqlx::query_scalar("SELECT batching FROM model_settings WHERE model = $1")
                .bind(model.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO model_settings (model, batching, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (model) DO UPDATE SET batching = $2, updated_at = $3",
        )
        .bind(model.as_str())
        .bind(to_json(batching))
        .bind(time(Utc::now()))
        .execute(&mut *tx)
        .await?;
        let before = decode::<Value>(before)?;
        events::append(
            &mut tx,
            NewEvent {
                actor,
                kind: EventKind::BatchingSet,
                model: model.as_str(),
                before,
                after: Some(json!(batching)),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The statistics of a version's reference data, if it has any.
    pub(crate) async fn reference(&self, model: &ModelName, version: u32) -> Result<Option<Value>> {
        let text: Option<String> = sqlx::query_scalar(
            "SELECT stats FROM reference_data WHERE model = $1 AND version = $2",
        )
        .bind(model.as_str())
        .bind(i64::from(version))
        .fetch_optional(&self.db.pool)
        .await?;
        decode(text)
    }

    /// Sets (replaces) the statistics of a version's reference data; `summary` goes in the
    /// event (the statistics themselves can be large).
    pub(crate) async fn set_reference(
        &self,
        model: &ModelName,
        version: u32,
        stats: &Value,
        summary: Value,
        actor: &str,
    ) -> Result<()> {
        let mut tx = begin_write(self, model).await?;
        require_servable(&mut tx, model, version).await?;
        let replaced: Option<String> = sqlx::query_scalar(
            "SELECT created_at FROM reference_data WHERE model = $1 AND version = $2",
        )
        .bind(model.as_str())
        .bind(i64::from(version))
        .fetch_optional(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO reference_data (model, version, stats, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (model, version) DO UPDATE SET stats = $3, created_at = $4",
        )
        .bind(model.as_str())
        .bind(i64::from(version))
        .bind(stats.to_string())
        .bind(time(Utc::now()))
        .execute(&mut *tx)
        .await?;
        events::append(
            &mut tx,
            NewEvent {
                actor,
                kind: EventKind::ReferenceSet,
                model: model.as_str(),
                before: replaced.map(|at| json!({ "version": version, "reference_set_at": at })),
                after: Some(json!({ "version": version, "reference": summary })),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The generation defaults a publisher set for a version, if any.
    pub(crate) async fn generation_defaults(
        &self,
        model: &ModelName,
        version: u32,
    ) -> Result<Option<GenerationParams>> {
        let text: Option<String> = sqlx::query_scalar(
            "SELECT params FROM generation_defaults WHERE model = $1 AND version = $2",
        )
        .bind(model.as_str())
        .bind(i64::from(version))
        .fetch_optional(&self.db.pool)
        .await?;
        decode(text)
    }

    /// Replaces a version's generation defaults; the event records the old and new values.
    pub(crate) async fn set_generation_defaults(
        &self,
        model: &ModelName,
        version: u32,
        params: &GenerationParams,
        actor: &str,
    ) -> Result<()> {
        params.validate()?;
        let mut tx = begin_write(self, model).await?;
        require_servable(&mut tx, model, version).await?;
        let before: Option<String> = sqlx::query_scalar(
            "SELECT params FROM generation_defaults WHERE model = $1 AND version = $2",
        )
        .bind(model.as_str())
        .bind(i64::from(version))
        .fetch_optional(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO generation_defaults (model, version, params, updated_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (model, version) DO UPDATE SET params = $3, updated_at = $4",
        )
        .bind(model.as_str())
        .bind(i64::from(version))
        .bind(to_json(params))
        .bind(time(Utc::now()))
        .execute(&mut *tx)
        .await?;
        let before = decode::<Value>(before)?;
        events::append(
            &mut tx,
            NewEvent {
                actor,
                kind: EventKind::GenerationSet,
                model: model.as_str(),
                before: before.map(|params| json!({ "version": version, "params": params })),
                after: Some(json!({ "version": version, "params": params })),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
