use std::{collections::BTreeMap, sync::Arc};

use modelbay_core::{
    InferRequest, InferResponse, LabelKey, ModelFormat, ModelName, Signature, ValidInferRequest,
    VersionRef,
};
use modelbay_engines::EngineSet;
use modelbay_registry::{NewVersion, Registry, StagedArtifact, VersionRecord};
use tokio::io::AsyncReadExt;

use crate::{manager::ModelManager, Error, LoadedModel, Result, RuntimeOptions};

const MAX_DESCRIPTION: usize = 4096;
const MAX_LABELS: usize = 64;
const MAX_LABEL_VALUE: usize = 256;

/// What a publisher sends with an artifact.
#[derive(Debug, Clone, Default)]
pub struct PushRequest {
    /// The artifact's format; detected from its first bytes when `None`.
    pub format: Option<ModelFormat>,
    pub description: String,
    pub labels: BTreeMap<String, String>,
    pub actor: String,
}

/// What v2 model metadata reports.
#[derive(Debug, Clone)]
pub struct ModelMetadata {
    pub name: String,
    /// Every version of the model.
    pub versions: Vec<u32>,
    /// The version described.
    pub version: u32,
    pub platform: &'static str,
    pub signature: Signature,
}

/// The operations every protocol handler calls. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    registry: Registry,
    engines: EngineSet,
    manager: Arc<ModelManager>,
}

impl Runtime {
    pub fn new(registry: Registry, engines: EngineSet, options: RuntimeOptions) -> Self {
        let manager = Arc::new(ModelManager::new(
            registry.clone(),
            engines.clone(),
            options,
        ));
        Self {
            registry,
            engines,
            manager,
        }
    }

    /// The registry, for read-only listings.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Validates a staged upload with its engine (format, signature, non-tensor outputs) and
    /// publishes it as the model's next version.
    pub async fn push(
        &self,
        model: &ModelName,
        staged: StagedArtifact,
        req: PushRequest,
    ) -> Result<VersionRecord> {
        let labels = validate_metadata(&req)?;
        let engine = match req.format {
            Some(format) => self.engines.get(format)?.clone(),
            None => {
                let mut head = [0u8; 16];
                let n = tokio::fs::File::open(staged.path())
                    .await
                    .map_err(modelbay_registry::Error::from)?
                    .read(&mut head)
                    .await
                    .map_err(modelbay_registry::Error::from)?;
                self.engines
                    .detect(&head[..n])
                    .ok_or_else(|| Error::UnknownFormat {
                        known: ModelFormat::ALL
                            .iter()
                            .map(|f| f.as_str())
                            .collect::<Vec<_>>()
                            .join("|"),
                    })?
                    .clone()
            }
        };
        let path = staged.path().to_owned();
        let inspector = engine.clone();
        let signature = tokio::task::spawn_blocking(move || inspector.inspect(&path)).await??;
        let record = self
            .registry
            .publish(
                model,
                &staged,
                NewVersion {
                    format: engine.format(),
                    signature,
                    description: req.description,
                    labels,
                    created_by: req.actor,
                },
            )
            .await?;
        self.manager.note_version(model, record.version);
        tracing::info!(model = %model, version = record.version, digest = %record.digest, "version pushed");
        Ok(record)
    }

    /// The loaded version a reference points at, loading it if needed. Handlers resolve the
    /// model before decoding a request body, so an unknown model is a 404 whatever the body.
    pub async fn model(&self, model: &ModelName, version: VersionRef) -> Result<Arc<LoadedModel>> {
        self.manager.get(model, version).await
    }

    /// Validates a request against the serving version's signature and runs it.
    pub async fn infer(&self, model: &LoadedModel, req: InferRequest) -> Result<InferResponse> {
        let valid = ValidInferRequest::new(req, &model.record.signature)?;
        let outputs = model.pool.run(valid.inputs, valid.outputs).await?;
        Ok(InferResponse {
            model_name: model.record.model.clone(),
            model_version: model.record.version,
            id: valid.id,
            outputs,
        })
    }

    /// Metadata of the version a reference points at.
    pub async fn metadata(&self, model: &ModelName, version: VersionRef) -> Result<ModelMetadata> {
        let number = self.manager.resolve(model, version).await?;
        let record = self.registry.version(model, number).await?;
        let versions = self
            .registry
            .versions(model)
            .await?
            .iter()
            .map(|v| v.version)
            .collect();
        Ok(ModelMetadata {
            name: record.model,
            versions,
            version: record.version,
            platform: self.engines.get(record.format)?.platform(),
            signature: record.signature,
        })
    }

    /// Loads the version (if it is not yet) so that it is ready to serve; errors say why not.
    pub async fn ready(&self, model: &ModelName, version: VersionRef) -> Result<u32> {
        Ok(self.manager.get(model, version).await?.record.version)
    }
}

fn validate_metadata(req: &PushRequest) -> Result<BTreeMap<String, String>> {
    if req.description.len() > MAX_DESCRIPTION {
        return Err(Error::InvalidMetadata(format!(
            "description is longer than {MAX_DESCRIPTION} bytes"
        )));
    }
    if req.labels.len() > MAX_LABELS {
        return Err(Error::InvalidMetadata(format!(
            "more than {MAX_LABELS} labels"
        )));
    }
    req.labels
        .iter()
        .map(|(k, v)| {
            let key = LabelKey::new(k)?.into_string();
            if v.len() > MAX_LABEL_VALUE {
                return Err(Error::InvalidMetadata(format!(
                    "label '{key}' has a value longer than {MAX_LABEL_VALUE} bytes"
                )));
            }
            Ok((key, v.clone()))
        })
        .collect()
}
