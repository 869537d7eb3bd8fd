//! The tensor dynamic batcher's per-model settings: read, changed (applied at once to the
//! loaded versions), and reported with whether each loaded version can merge requests.

use modelbay_core::{Access, Caller, ModelName, TensorBatching};
use serde::Serialize;

use crate::{manager::Serving, Error, Result, Runtime};

/// A model's batching settings and how its loaded versions apply them.
#[derive(Debug, Clone, Serialize)]
pub struct BatchingStatus {
    pub model: String,
    pub settings: TensorBatching,
    /// Loaded tensor versions.
    pub loaded: Vec<LoadedBatching>,
}

/// How one loaded version batches.
#[derive(Debug, Clone, Serialize)]
pub struct LoadedBatching {
    pub version: u32,
    /// Whether requests to this version are merged now.
    pub batching: bool,
    /// Why not, when the settings ask for batching but the signature has no batch dimension.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Runtime {
    /// The model's batching settings (off when never set).
    pub async fn batching(&self, caller: &Caller, model: &ModelName) -> Result<BatchingStatus> {
        caller.authorize(Access::Inspect, model)?;
        self.batching_status(model).await
    }

    async fn batching_status(&self, model: &ModelName) -> Result<BatchingStatus> {
        let settings = self.registry.batching(model).await?;
        if settings.is_none() {
            self.registry.versions(model).await?; // 404 for an unknown model
        }
        let settings = settings.unwrap_or_default();
        let mut loaded: Vec<LoadedBatching> = self
            .manager
            .loaded_models()
            .into_iter()
            .filter(|m| m.record.model == model.as_str())
            .filter_map(|m| match &m.serving {
                Serving::Tensor(pool) => {
                    let (policy, batchable) = pool.policy();
                    let reason = (policy.enabled() && !batchable)
                        .then(|| modelbay_core::unbatchable_reason(&m.record.signature))
                        .flatten();
                    Some(LoadedBatching {
                        version: m.record.version,
                        batching: policy.enabled() && batchable,
                        reason,
                    })
                }
                _ => None,
            })
            .collect();
        loaded.sort_by_key(|l| l.version);
        Ok(BatchingStatus {
            model: model.to_string(),
            settings,
            loaded,
        })
    }

    /// Replaces the model's batching settings; loaded versions apply them to the requests that
    /// are queued and to come, without a reload. Only tensor models batch this way (embedding
    /// models are batched by the server-wide `--embed-*` settings; language models always
    /// batch continuously).
    pub async fn set_batching(
        &self,
        caller: &Caller,
        model: &ModelName,
        settings: TensorBatching,
    ) -> Result<BatchingStatus> {
        caller.authorize(Access::Publish, model)?;
        settings.validate()?;
        let latest = self.registry.latest_version(model).await?;
        if self.engines.is_language(latest.format) || self.engines.is_embedding(latest.format) {
            return Err(Error::WrongKind(format!(
                "model '{model}' is a {} model; dynamic batching settings apply to tensor \
                 models (embedding models use the server's --embed-max-batch and \
                 --embed-max-delay-ms; language models batch continuously)",
                latest.format
            )));
        }
        self.registry
            .set_batching(model, &settings, &caller.actor())
            .await?;
        self.sync_after_commit().await;
        self.batching_status(model).await
    }
}
