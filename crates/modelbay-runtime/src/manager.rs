use std::{collections::HashMap, sync::Arc};

use modelbay_core::{ModelName, VersionRef};
use modelbay_engines::{EngineSet, SessionOptions};
use modelbay_registry::{Registry, VersionRecord};
use parking_lot::Mutex;
use tokio::sync::OnceCell;

use crate::{pool::SessionPool, Result};

/// How the runtime runs models.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Sessions (threads) per loaded model version.
    pub workers_per_model: usize,
    /// Threads one session uses for one inference.
    pub intra_op_threads: usize,
    /// Requests that may wait per loaded version before new ones are refused.
    pub queue_capacity: usize,
}

/// A model version that is loaded and can serve.
pub struct LoadedModel {
    pub record: VersionRecord,
    /// Platform name reported in v2 metadata.
    pub platform: &'static str,
    pub(crate) pool: SessionPool,
}

type Slot = Arc<OnceCell<Arc<LoadedModel>>>;

/// Decides which version serves a request and keeps loaded versions, loading each one once
/// however many requests ask for it at the same time.
///
/// Lock order: `latest` and `loaded` are never held together, and never across an await.
pub(crate) struct ModelManager {
    registry: Registry,
    engines: EngineSet,
    options: RuntimeOptions,
    /// Newest version number per model, so routing a request needs no database round trip.
    latest: Mutex<HashMap<ModelName, u32>>,
    loaded: Mutex<HashMap<(ModelName, u32), Slot>>,
}

impl ModelManager {
    pub(crate) fn new(registry: Registry, engines: EngineSet, options: RuntimeOptions) -> Self {
        Self {
            registry,
            engines,
            options,
            latest: Mutex::default(),
            loaded: Mutex::default(),
        }
    }

    /// The version number a reference points at.
    pub(crate) async fn resolve(&self, model: &ModelName, version: VersionRef) -> Result<u32> {
        match version {
            VersionRef::Number(n) => Ok(n),
            VersionRef::Latest => {
                if let Some(&n) = self.latest.lock().get(model) {
                    return Ok(n);
                }
                let record = self.registry.latest_version(model).await?;
                self.note_version(model, record.version);
                Ok(record.version)
            }
        }
    }

    /// Records that `version` of `model` exists (after a push), keeping the newest.
    pub(crate) fn note_version(&self, model: &ModelName, version: u32) {
        let mut latest = self.latest.lock();
        let entry = latest.entry(model.clone()).or_insert(version);
        *entry = (*entry).max(version);
    }

    /// The loaded model for a reference, loading it first if needed.
    pub(crate) async fn get(
        &self,
        model: &ModelName,
        version: VersionRef,
    ) -> Result<Arc<LoadedModel>> {
        let number = self.resolve(model, version).await?;
        let slot = self
            .loaded
            .lock()
            .entry((model.clone(), number))
            .or_default()
            .clone();
        slot.get_or_try_init(|| self.load(model, number))
            .await
            .cloned()
    }

    async fn load(&self, model: &ModelName, number: u32) -> Result<Arc<LoadedModel>> {
        let record = self.registry.version(model, number).await?;
        let engine = self.engines.get(record.format)?.clone();
        let artifact = self.registry.read_artifact(&record).await?;
        let options = self.options.clone();
        let label = (record.model.clone(), record.version);
        let started = std::time::Instant::now();
        let pool = tokio::task::spawn_blocking(move || {
            SessionPool::start(
                &engine,
                &artifact,
                &SessionOptions {
                    intra_op_threads: options.intra_op_threads,
                },
                options.workers_per_model,
                options.queue_capacity,
                label,
            )
        })
        .await??;
        tracing::info!(
            model = %record.model,
            version = record.version,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "model loaded"
        );
        let platform = self.engines.get(record.format)?.platform();
        Ok(Arc::new(LoadedModel {
            record,
            platform,
            pool,
        }))
    }
}
