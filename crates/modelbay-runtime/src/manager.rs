use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Instant,
};

use modelbay_core::{ModelName, Target, Tensor, VersionRef};
use modelbay_engines::{
    generation::{GenerationEvent, GenerationJob, SamplingParams},
    EngineSet, LanguageModel, LanguageOptions, SessionOptions,
};
use modelbay_registry::{Registry, VersionRecord};
use parking_lot::Mutex;
use tokio::sync::OnceCell;

use crate::{
    embed::{Embedder, EmbeddingServeOptions},
    metrics::{Metrics, ModelMetrics},
    pool::{PoolSpec, SessionPool},
    routing::{Route, Routes},
    warmup, Error, Result,
};

/// How the runtime runs models.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Sessions (threads) per loaded model version.
    pub workers_per_model: usize,
    /// Threads one session uses for one inference.
    pub intra_op_threads: usize,
    /// Requests that may wait per loaded version before new ones are refused.
    pub queue_capacity: usize,
    /// Memory budget for loaded models in bytes; least recently used unreferenced versions are
    /// unloaded to stay under it. `None`: no budget.
    pub max_model_memory: Option<u64>,
    /// How language models are served.
    pub language: LanguageOptions,
    /// How embedding models are served.
    pub embedding: EmbeddingServeOptions,
    /// Where loads, batches and generations are counted.
    pub metrics: Metrics,
    /// Live input rows each version's drift window holds.
    pub drift_window: usize,
    /// Limits of API keys that set none of their own.
    pub key_limits: modelbay_core::KeyLimits,
}

/// A model version that is loaded, warmed up and can serve.
pub struct LoadedModel {
    pub record: VersionRecord,
    /// Platform name reported in v2 metadata.
    pub platform: &'static str,
    /// Estimated memory held (artifact size × sessions, or weights and KV cache).
    pub bytes: u64,
    pub(crate) serving: Serving,
    pub(crate) metrics: ModelMetrics,
}

/// What runs a loaded version.
pub(crate) enum Serving {
    /// Tensor sessions on worker threads.
    Tensor(SessionPool),
    /// A language model with its continuous-batching scheduler.
    Language(Arc<dyn LanguageModel>),
    /// An embedding model behind its batcher.
    Embedding(Embedder),
}

impl LoadedModel {
    /// Whether this version answers v2 inference (tensor and embedding models do, language
    /// models do not): checked before a request is validated against the signature.
    pub(crate) fn serves_v2(&self) -> Result<()> {
        match &self.serving {
            Serving::Language(_) => Err(self.not_v2()),
            Serving::Tensor(_) | Serving::Embedding(_) => Ok(()),
        }
    }

    fn not_v2(&self) -> Error {
        Error::WrongKind(format!(
            "model '{}' version {} is a language model; {}",
            self.record.model,
            self.record.version,
            self.serves()
        ))
    }

    /// Runs v2 inference: a tensor model on its sessions, an embedding model on the strings of
    /// its `text` input.
    pub(crate) async fn run_tensors(
        &self,
        inputs: Vec<Tensor>,
        outputs: Vec<String>,
    ) -> Result<Vec<Tensor>> {
        match &self.serving {
            Serving::Tensor(pool) => pool.run(inputs, outputs).await,
            Serving::Embedding(embedder) => crate::embed::infer_v2(embedder, inputs).await,
            Serving::Language(_) => Err(self.not_v2()),
        }
    }

    /// The language model; other models cannot generate text.
    pub fn language_model(&self) -> Result<&Arc<dyn LanguageModel>> {
        match &self.serving {
            Serving::Language(model) => Ok(model),
            _ => Err(Error::WrongKind(format!(
                "model '{}' version {} is not a language model; {}",
                self.record.model,
                self.record.version,
                self.serves()
            ))),
        }
    }

    /// The embedding model's batcher; other models cannot embed.
    pub(crate) fn embedder(&self) -> Result<&Embedder> {
        match &self.serving {
            Serving::Embedding(embedder) => Ok(embedder),
            _ => Err(Error::WrongKind(format!(
                "model '{}' version {} is not an embedding model; {}",
                self.record.model,
                self.record.version,
                self.serves()
            ))),
        }
    }

    /// `tensor`, `language` or `embedding`.
    pub fn kind(&self) -> &'static str {
        match &self.serving {
            Serving::Tensor(_) => "tensor",
            Serving::Language(_) => "language",
            Serving::Embedding(_) => "embedding",
        }
    }

    /// Where this model is served, for errors that send a caller elsewhere.
    fn serves(&self) -> String {
        match &self.serving {
            Serving::Tensor(_) => format!(
                "it serves v2 inference at /v2/models/{}/infer",
                self.record.model
            ),
            Serving::Language(_) => "use /v1/chat/completions or /v1/completions".into(),
            Serving::Embedding(_) => "it serves /v1/embeddings".into(),
        }
    }
}

/// One (model, version) entry: loaded at most once, however many requests ask at the same time.
#[derive(Default)]
struct Slot {
    cell: OnceCell<Arc<LoadedModel>>,
    last_used: AtomicU64,
}

/// Routes requests to versions and keeps loaded versions within the memory budget.
///
/// Lock order: `routes`, `loaded` and `batching_changes` are never held together with each
/// other except `loaded` then a pool's own lock (in `apply_batching`), and none across an await.
pub(crate) struct ModelManager {
    registry: Registry,
    engines: EngineSet,
    options: RuntimeOptions,
    started: Instant,
    routes: Mutex<RouteCache>,
    loaded: Mutex<HashMap<(ModelName, u32), Arc<Slot>>>,
    /// Batching settings changed through this process, by model, for loads that read the
    /// registry before the change.
    batching_changes: Mutex<HashMap<ModelName, modelbay_core::TensorBatching>>,
}

/// Cached routing state plus a generation per model: a read that started before an
/// invalidation must not put its (older) answer back in the cache.
#[derive(Default)]
struct RouteCache {
    entries: HashMap<ModelName, Arc<Routes>>,
    generation: HashMap<ModelName, u64>,
}

impl ModelManager {
    pub(crate) fn new(registry: Registry, engines: EngineSet, options: RuntimeOptions) -> Self {
        Self {
            registry,
            engines,
            options,
            started: Instant::now(),
            routes: Mutex::default(),
            loaded: Mutex::default(),
            batching_changes: Mutex::default(),
        }
    }

    pub(crate) fn drift_window(&self) -> usize {
        self.options.drift_window
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.options.metrics
    }

    /// The model's routing state (cached).
    pub(crate) async fn routes(&self, model: &ModelName) -> Result<Arc<Routes>> {
        let generation = {
            let cache = self.routes.lock();
            if let Some(routes) = cache.entries.get(model) {
                return Ok(routes.clone());
            }
            cache.generation.get(model).copied().unwrap_or(0)
        };
        let routes = Arc::new(Routes::load(&self.registry, model).await?);
        let mut cache = self.routes.lock();
        if cache.generation.get(model).copied().unwrap_or(0) == generation {
            cache.entries.insert(model.clone(), routes.clone());
        }
        Ok(routes)
    }

    /// Forgets the cached routing state after a change, so the next request reads it again;
    /// reads already in flight will not cache what they found.
    pub(crate) fn invalidate(&self, model: &ModelName) {
        let mut cache = self.routes.lock();
        cache.entries.remove(model);
        *cache.generation.entry(model.clone()).or_default() += 1;
    }

    /// Switches the model's traffic to routing state read after a change (whose versions the
    /// caller has loaded); reads already in flight will not cache what they found.
    pub(crate) fn install_routes(&self, model: &ModelName, routes: Arc<Routes>) {
        let mut cache = self.routes.lock();
        *cache.generation.entry(model.clone()).or_default() += 1;
        cache.entries.insert(model.clone(), routes);
    }

    /// Routes a request and returns the loaded version that serves it.
    pub(crate) async fn route(
        &self,
        model: &ModelName,
        version: &VersionRef,
        sticky: &(dyn Fn(&str) -> Option<Vec<u8>> + Sync),
    ) -> Result<(Route, Arc<LoadedModel>)> {
        let route = self.routes(model).await?.route(model, version, sticky)?;
        let loaded = self.get(model, route.version).await?;
        Ok((route, loaded))
    }

    /// The version a target points at now.
    pub(crate) async fn resolve_target(&self, model: &ModelName, target: &Target) -> Result<u32> {
        self.routes(model).await?.target(model, target)
    }

    /// The loaded version, loading and warming it first if needed.
    pub(crate) async fn get(&self, model: &ModelName, version: u32) -> Result<Arc<LoadedModel>> {
        let slot = self
            .loaded
            .lock()
            .entry((model.clone(), version))
            .or_default()
            .clone();
        slot.last_used
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
        let mut fresh = false;
        let loaded = slot
            .cell
            .get_or_try_init(|| {
                fresh = true;
                self.timed_load(model, version)
            })
            .await;
        if loaded.is_err() {
            // Drop the failed slot unless someone replaced it meanwhile; the next request retries.
            let mut map = self.loaded.lock();
            if map
                .get(&(model.clone(), version))
                .is_some_and(|s| Arc::ptr_eq(s, &slot))
            {
                map.remove(&(model.clone(), version));
            }
        }
        let loaded = loaded?.clone();
        if fresh {
            self.enforce_budget(model, version).await;
        }
        Ok(loaded)
    }

    /// Loads a version and counts the load (or its failure) in the metrics.
    async fn timed_load(&self, model: &ModelName, number: u32) -> Result<Arc<LoadedModel>> {
        let started = Instant::now();
        let loaded = self.load(model, number).await;
        // A version that does not exist, or is archived, is refused, not a failed load.
        if !matches!(
            loaded,
            Err(Error::Registry(
                modelbay_registry::Error::VersionNotFound { .. }
                    | modelbay_registry::Error::ModelNotFound(_)
                    | modelbay_registry::Error::Conflict(_)
            ))
        ) {
            self.options.metrics.record_load(
                model.as_str(),
                number,
                started.elapsed(),
                loaded.is_ok(),
            );
        }
        loaded
    }

    async fn load(&self, model: &ModelName, number: u32) -> Result<Arc<LoadedModel>> {
        let record = self.registry.version(model, number).await?;
        if record.archived {
            return Err(modelbay_registry::Error::Conflict(format!(
                "version {number} of model '{model}' is archived and cannot serve"
            ))
            .into());
        }
        if self.engines.is_language(record.format) {
            return self.load_language(record).await;
        }
        if self.engines.is_embedding(record.format) {
            return self.load_embedding(record).await;
        }
        let engine = self.engines.tensor(record.format)?.clone();
        let artifact = self.registry.read_artifact(&record).await?;
        let options = self.options.clone();
        let started = Instant::now();
        let workers = options.workers_per_model.max(1);
        let bytes = artifact.len() as u64 * workers as u64;
        let platform = engine.platform();
        let metrics = self.options.metrics.model(model.as_str(), number);
        let spec = PoolSpec {
            workers,
            queue_capacity: options.queue_capacity,
            batchable: modelbay_core::unbatchable_reason(&record.signature).is_none(),
            policy: self.registry.batching(model).await?.unwrap_or_default(),
            metrics: metrics.clone(),
            label: (record.model.clone(), record.version),
        };
        let pool = tokio::task::spawn_blocking(move || {
            SessionPool::start(
                &engine,
                &artifact,
                &SessionOptions {
                    intra_op_threads: options.intra_op_threads,
                },
                spec,
            )
        })
        .await?
        .map_err(|e| load_failed(&record, e))?;
        let request = warmup::request(&record.signature)?;
        let outputs = record
            .signature
            .outputs
            .iter()
            .map(|o| o.name.clone())
            .collect();
        pool.warm_up(request, outputs)
            .await
            .map_err(|e| warm_up_failed(&record, e))?;
        // Settings changed while this version loaded reached no pool of it: apply them now.
        if let Some(policy) = self.batching_changes.lock().get(model).cloned() {
            pool.set_policy(policy);
        }
        Ok(ready(
            record,
            platform,
            bytes,
            (Serving::Tensor(pool), metrics),
            started,
        ))
    }

    /// Loads a language model from its (re-verified) file and warms it up by generating one
    /// token.
    async fn load_language(&self, record: VersionRecord) -> Result<Arc<LoadedModel>> {
        let engine = self.engines.language(record.format)?.clone();
        let path = self.registry.artifact_file(&record).await?;
        let options = self.options.language.clone();
        let started = Instant::now();
        let platform = engine.platform();
        let model = tokio::task::spawn_blocking(move || engine.load(&path, &options))
            .await?
            .map_err(|e| load_failed(&record, e))?;
        warm_up_language(&model)
            .await
            .map_err(|e| warm_up_failed(&record, e))?;
        let bytes = model.memory_bytes();
        let metrics = self.options.metrics.model(&record.model, record.version);
        Ok(ready(
            record,
            platform,
            bytes,
            (Serving::Language(model), metrics),
            started,
        ))
    }

    /// Loads an embedding model from its (re-verified, unpacked) folder and warms it up by
    /// embedding one text.
    async fn load_embedding(&self, record: VersionRecord) -> Result<Arc<LoadedModel>> {
        let engine = self.engines.embedding(record.format)?.clone();
        let dir = self.registry.artifact_dir(&record).await?;
        let options = self.options.embedding.clone();
        let started = Instant::now();
        let platform = engine.platform();
        let engine_options = options.engine.clone();
        let model = tokio::task::spawn_blocking(move || engine.load(&dir, &engine_options))
            .await?
            .map_err(|e| load_failed(&record, e))?;
        let bytes = model.memory_bytes();
        let metrics = self.options.metrics.model(&record.model, record.version);
        let embedder = Embedder::start(
            model,
            options.batch,
            options.engine.sessions,
            (options.max_inputs, options.max_waiting),
            (record.model.clone(), record.version),
            metrics.clone(),
        )?;
        crate::embed::embed_with(&embedder, vec![crate::EmbedInput::Text("warm up".into())])
            .await
            .map_err(|e| warm_up_failed(&record, e))?;
        Ok(ready(
            record,
            platform,
            bytes,
            (Serving::Embedding(embedder), metrics),
            started,
        ))
    }

    /// Every loaded version (for the metrics' gauges).
    pub(crate) fn loaded_models(&self) -> Vec<Arc<LoadedModel>> {
        let map = self.loaded.lock();
        map.values()
            .filter_map(|slot| slot.cell.get().cloned())
            .collect()
    }

    /// Applies new batching settings to the model's loaded tensor versions (and, through
    /// `batching_changes`, to versions still loading).
    pub(crate) fn apply_batching(&self, model: &ModelName, policy: &modelbay_core::TensorBatching) {
        self.batching_changes
            .lock()
            .insert(model.clone(), policy.clone());
        let map = self.loaded.lock();
        for ((name, _), slot) in map.iter() {
            if let Some(Serving::Tensor(pool)) = slot.cell.get().map(|l| &l.serving) {
                if name == model {
                    pool.set_policy(policy.clone());
                }
            }
        }
    }

    /// Loaded versions with their state, for the repository index.
    pub(crate) fn loaded_versions(&self) -> Vec<(ModelName, u32)> {
        let map = self.loaded.lock();
        map.iter()
            .filter(|(_, slot)| slot.cell.initialized())
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Unloads versions of `model` (all, or those not in `keep`). In-flight requests hold their
    /// own reference and finish; the sessions close when the last one does.
    pub(crate) fn unload(&self, model: &ModelName, keep: &[u32]) -> Vec<u32> {
        let mut map = self.loaded.lock();
        // A slot still loading stays: whoever is loading it is about to use it.
        let gone: Vec<u32> = map
            .iter()
            .filter(|((m, v), slot)| m == model && !keep.contains(v) && slot.cell.initialized())
            .map(|((_, v), _)| *v)
            .collect();
        for v in &gone {
            map.remove(&(model.clone(), *v));
        }
        gone
    }

    /// Unloads one version (after it is archived or deleted).
    pub(crate) fn forget(&self, model: &ModelName, version: u32) {
        self.loaded.lock().remove(&(model.clone(), version));
    }

    /// Unloads versions of `model` that its routing no longer references.
    pub(crate) async fn release_unreferenced(&self, model: &ModelName) {
        if let Ok(routes) = self.routes(model).await {
            for v in self.unload(model, &routes.referenced(model)) {
                tracing::info!(model = %model, version = v, "unloaded: no longer referenced");
            }
        }
    }

    /// Evicts least recently used unreferenced versions while over the memory budget.
    async fn enforce_budget(&self, just_loaded: &ModelName, just_version: u32) {
        let Some(budget) = self.options.max_model_memory else {
            return;
        };
        let models: Vec<ModelName> = {
            let map = self.loaded.lock();
            let mut names: Vec<ModelName> = map.keys().map(|(m, _)| m.clone()).collect();
            names.sort();
            names.dedup();
            names
        };
        let mut referenced = Vec::new();
        for m in models {
            if let Ok(routes) = self.routes(&m).await {
                referenced.extend(routes.referenced(&m).into_iter().map(|v| (m.clone(), v)));
            }
        }
        let mut map = self.loaded.lock();
        let used = |map: &HashMap<(ModelName, u32), Arc<Slot>>| -> u64 {
            map.values()
                .filter_map(|s| s.cell.get())
                .map(|l| l.bytes)
                .sum()
        };
        while used(&map) > budget {
            let victim = map
                .iter()
                .filter(|(key, slot)| {
                    slot.cell.initialized()
                        && !referenced.contains(key)
                        && !(key.0 == *just_loaded && key.1 == just_version)
                })
                .min_by_key(|(_, slot)| slot.last_used.load(Ordering::Relaxed))
                .map(|(key, _)| key.clone());
            let Some(victim) = victim else {
                tracing::warn!(
                    budget,
                    used = used(&map),
                    "model memory budget exceeded by referenced versions"
                );
                break;
            };
            tracing::info!(model = %victim.0, version = victim.1, "evicted to stay within the memory budget");
            map.remove(&victim);
        }
    }
}

/// A version that loaded and answered its warm-up.
fn ready(
    record: VersionRecord,
    platform: &'static str,
    bytes: u64,
    (serving, metrics): (Serving, ModelMetrics),
    started: Instant,
) -> Arc<LoadedModel> {
    let kind = match &serving {
        Serving::Tensor(_) => "tensor",
        Serving::Language(_) => "language",
        Serving::Embedding(embedder) => embedder.model.backend(),
    };
    tracing::info!(
        model = %record.model,
        version = record.version,
        kind,
        bytes,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "model loaded and warmed up"
    );
    Arc::new(LoadedModel {
        record,
        platform,
        bytes,
        serving,
        metrics,
    })
}

fn load_failed(record: &VersionRecord, e: impl std::fmt::Display) -> Error {
    Error::LoadFailed {
        model: record.model.clone(),
        version: record.version,
        reason: e.to_string(),
    }
}

fn warm_up_failed(record: &VersionRecord, e: impl std::fmt::Display) -> Error {
    Error::WarmUp {
        model: record.model.clone(),
        version: record.version,
        reason: e.to_string(),
    }
}

/// Generates one token greedily from a one-word prompt: the model decodes before it serves.
pub(crate) async fn warm_up_language(model: &Arc<dyn LanguageModel>) -> Result<()> {
    let prompt = model.tokenize("Hello", true)?;
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
    model.submit(vec![GenerationJob {
        prompt,
        max_tokens: Some(1),
        sampling: SamplingParams::default(),
        stop: Vec::new(),
        constraint: None,
        logprobs: None,
        choice: 0,
        events,
    }])?;
    while let Some(event) = received.recv().await {
        match event {
            GenerationEvent::Text { .. } => {}
            GenerationEvent::Done { .. } => return Ok(()),
            GenerationEvent::Failed { message, .. } => {
                return Err(modelbay_engines::Error::Generation(message).into())
            }
        }
    }
    Err(Error::WorkerLost("the language model's scheduler".into()))
}
