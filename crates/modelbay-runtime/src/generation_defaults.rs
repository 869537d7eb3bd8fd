//! Per-version generation defaults: what the publisher set (a `generation.set` event) over
//! what the GGUF file recommends, used for every field a request leaves out.

use modelbay_core::{generation::GenerationParams, Access, Caller, ModelName};
use serde::Serialize;

use crate::{Error, Result, Runtime};

/// A version's generation defaults, layer by layer.
#[derive(Debug, Clone, Serialize)]
pub struct GenerationSettings {
    pub model: String,
    pub version: u32,
    /// Set by the publisher (`PUT …/generation`, `modelbay push --param`).
    pub publisher: GenerationParams,
    /// Recommended by the model file (`general.sampling.*`).
    pub file: GenerationParams,
    /// What a request that sets nothing gets: the publisher's, else the file's, else
    /// llama.cpp's server defaults.
    pub effective: GenerationParams,
}

impl Runtime {
    /// A version's generation defaults (any role that may inspect the model).
    pub async fn generation_settings(
        &self,
        caller: &Caller,
        model: &ModelName,
        version: u32,
    ) -> Result<GenerationSettings> {
        caller.authorize(Access::Inspect, model)?;
        self.settings_of(model, version).await
    }

    /// Replaces what the publisher set for a version; takes effect on every replica for the
    /// next request.
    pub async fn set_generation_defaults(
        &self,
        caller: &Caller,
        model: &ModelName,
        version: u32,
        params: GenerationParams,
    ) -> Result<GenerationSettings> {
        caller.authorize(Access::Publish, model)?;
        params.validate()?;
        self.require_language(model, version).await?;
        self.registry
            .set_generation_defaults(model, version, &params, &caller.actor())
            .await?;
        self.sync_after_commit().await;
        self.settings_of(model, version).await
    }

    async fn require_language(
        &self,
        model: &ModelName,
        version: u32,
    ) -> Result<modelbay_registry::VersionRecord> {
        let record = self.registry.version(model, version).await?;
        if !self.engines.is_language(record.format) {
            return Err(Error::WrongKind(format!(
                "version {version} of model '{model}' is a {} model; generation defaults apply \
                 to language models",
                record.format
            )));
        }
        Ok(record)
    }

    async fn settings_of(&self, model: &ModelName, version: u32) -> Result<GenerationSettings> {
        let record = self.require_language(model, version).await?;
        let publisher = self.publisher_defaults(model, version).await?;
        let file = record
            .details
            .get("sampling")
            .cloned()
            .and_then(|v| serde_json::from_value::<GenerationParams>(v).ok())
            .unwrap_or_default();
        let (sampling, max_tokens) = publisher.over(&file).resolve();
        let effective = GenerationParams {
            temperature: Some(sampling.temperature),
            top_k: Some(sampling.top_k),
            top_p: Some(sampling.top_p),
            min_p: Some(sampling.min_p),
            typical_p: Some(sampling.typical_p),
            repeat_penalty: Some(sampling.repeat_penalty),
            repeat_last_n: Some(sampling.repeat_last_n),
            presence_penalty: Some(sampling.presence_penalty),
            frequency_penalty: Some(sampling.frequency_penalty),
            max_tokens: Some(max_tokens),
            tool_format: publisher.tool_format.clone(),
        };
        Ok(GenerationSettings {
            model: model.to_string(),
            version,
            publisher,
            file,
            effective,
        })
    }

    /// What the publisher set for a version, read once and kept until a `generation.set`
    /// event for it is applied.
    pub(crate) async fn publisher_defaults(
        &self,
        model: &ModelName,
        version: u32,
    ) -> Result<GenerationParams> {
        let key = (model.clone(), version);
        if let Some(known) = self.generation_defaults.lock().get(&key) {
            return Ok(known.clone());
        }
        let params = self
            .registry
            .generation_defaults(model, version)
            .await?
            .unwrap_or_default();
        self.generation_defaults.lock().insert(key, params.clone());
        Ok(params)
    }

    /// Forgets what was read for a version (its defaults changed, or it is gone).
    pub(crate) fn forget_generation_defaults(&self, model: &ModelName, version: u32) {
        self.generation_defaults
            .lock()
            .remove(&(model.clone(), version));
    }
}
