use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Instant,
};

use modelbay_core::{
    Access, Caller, InferRequest, InferResponse, LabelKey, ModelFormat, ModelName, RoutingPolicy,
    Signature, Target, ValidInferRequest, VersionRef,
};
use modelbay_engines::EngineSet;
use modelbay_registry::{AliasRecord, NewVersion, Registry, StagedArtifact, VersionRecord};
use parking_lot::Mutex;
use tokio::io::AsyncReadExt;

use crate::{
    manager::ModelManager, routing::Route, shadow::ShadowReport, Error, LoadedModel, Result,
    RuntimeOptions,
};

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
    /// Point `production` at the new version once it is pushed (the first version of a model
    /// is `production` anyway).
    pub promote: bool,
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

/// A request's destination: the route taken and the loaded version at its end.
pub struct Routed {
    pub route: Route,
    pub model: Arc<LoadedModel>,
    pub(crate) name: ModelName,
    /// Counts the request in `modelbay_requests_in_flight` while it lives, or, for a
    /// generation, until its last event (a stream outlives its response headers).
    pub(crate) in_flight: Mutex<Option<crate::metrics::InFlight>>,
}

/// One row of the Triton-style repository index.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RepositoryEntry {
    pub name: String,
    pub version: String,
    /// `READY` when loaded, else `UNAVAILABLE`.
    pub state: &'static str,
    pub reason: String,
}

/// The operations every protocol handler calls. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) registry: Registry,
    pub(crate) engines: EngineSet,
    pub(crate) manager: Arc<ModelManager>,
    /// Shadow reports by model and shadow target, so a late result from a previous policy's
    /// target never lands in the current report.
    shadows: Arc<Mutex<HashMap<(ModelName, Target), ShadowReport>>>,
    /// One lock per model, held by every routing change from preload to release, so two
    /// changes to one model never unload what the other has just warmed up.
    changes: Arc<Mutex<HashMap<ModelName, Arc<tokio::sync::Mutex<()>>>>>,
    /// Drift windows of versions with reference data.
    pub(crate) monitors: Arc<crate::drift::Monitors>,
    /// Generation defaults publishers set, by version, as read from the registry.
    pub(crate) generation_defaults:
        Arc<Mutex<HashMap<(ModelName, u32), modelbay_core::generation::GenerationParams>>>,
    /// Turns for explanations running at once.
    pub(crate) explains: Arc<crate::explain::ExplainPermits>,
    /// Every API key, by the digest of its secret.
    pub(crate) keys: Arc<crate::keys::KeyCache>,
    /// What each API key has used of its limits.
    pub(crate) limits: Arc<crate::limits::KeyUsage>,
    /// One reference-data upload at a time (each can hold hundreds of MB while parsed).
    pub(crate) reference_uploads: Arc<tokio::sync::Semaphore>,
    /// How far into the registry's event log this process has applied.
    pub(crate) position: Arc<crate::apply::LogPosition>,
}

impl Runtime {
    pub fn new(registry: Registry, engines: EngineSet, options: RuntimeOptions) -> Self {
        let limits = Arc::new(crate::limits::KeyUsage::new(
            options.key_limits,
            options.metrics.clone(),
        ));
        let manager = Arc::new(ModelManager::new(
            registry.clone(),
            engines.clone(),
            options,
        ));
        Self {
            registry,
            engines,
            manager,
            shadows: Arc::default(),
            changes: Arc::default(),
            monitors: Arc::default(),
            generation_defaults: Arc::default(),
            explains: Arc::default(),
            keys: Arc::default(),
            limits,
            reference_uploads: Arc::new(tokio::sync::Semaphore::new(1)),
            position: Arc::default(),
        }
    }

    /// Takes one request from the caller's requests-per-second budget (429 beyond).
    pub fn admit(&self, caller: &Caller) -> Result<()> {
        self.limits.admit_request(caller)
    }

    /// Loads every version an alias or a routing policy references (at startup).
    pub async fn load_referenced(&self) -> Result<()> {
        let models = self.registry.models().await?;
        let loads = models.iter().map(|m| async move {
            let name = ModelName::new(&m.name)?;
            let routes = self.manager.routes(&name).await?;
            for version in routes.referenced(&name) {
                if let Err(e) = self.manager.get(&name, version).await {
                    tracing::error!(model = %name, version, error = %e, "could not load a referenced version");
                }
            }
            Ok::<_, Error>(())
        });
        for result in futures::future::join_all(loads).await {
            result?;
        }
        Ok(())
    }

    pub(crate) async fn change_lock(&self, model: &ModelName) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .changes
            .lock()
            .entry(model.clone())
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    /// Runs a change and the cache invalidation that follows it on a task of its own: a client
    /// that disconnects half-way must not leave a change committed but not applied.
    async fn to_completion<T, F, Fut>(&self, change: F) -> Result<T>
    where
        F: FnOnce(Runtime) -> Fut,
        Fut: std::future::Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        tokio::spawn(change(self.clone())).await?
    }

    /// Streams an upload for `model` into the registry's staging area (hashed on the way,
    /// never whole in memory), refusing more than `max_bytes`; the caller is checked before a
    /// byte is read.
    pub async fn stage_upload<S, E>(
        &self,
        caller: &Caller,
        model: &ModelName,
        body: S,
        max_bytes: u64,
    ) -> Result<StagedArtifact>
    where
        S: futures::Stream<Item = std::result::Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        caller.authorize(Access::Publish, model)?;
        Ok(self.registry.stage(body, max_bytes).await?)
    }

    /// Validates a staged upload with its engine (format, signature, non-tensor outputs, a
    /// warm-up inference) and publishes it as the model's next version.
    pub async fn push(
        &self,
        caller: &Caller,
        model: &ModelName,
        staged: StagedArtifact,
        req: PushRequest,
    ) -> Result<VersionRecord> {
        caller.authorize(Access::Publish, model)?;
        let (model, actor) = (model.clone(), caller.actor());
        self.to_completion(move |rt| async move {
            let promote = req.promote;
            let record = rt.push_now(&model, staged, req, actor.clone()).await?;
            if !promote || record.aliases.iter().any(|a| a == crate::PRODUCTION) {
                return Ok(record);
            }
            rt.promote_now(&model, crate::PRODUCTION, record.version, &actor)
                .await?;
            Ok(rt.registry.version(&model, record.version).await?)
        })
        .await
    }

    /// Points `alias` at `version` with no failed request: the version is loaded and warmed up
    /// first (a failure leaves the alias where it was), then the alias moves, then versions no
    /// longer referenced are drained and unloaded.
    pub async fn promote(
        &self,
        caller: &Caller,
        model: &ModelName,
        alias: &str,
        version: u32,
    ) -> Result<AliasRecord> {
        caller.authorize(Access::Publish, model)?;
        let (model, alias, actor) = (model.clone(), alias.to_owned(), caller.actor());
        self.to_completion(move |rt| async move {
            rt.promote_now(&model, &alias, version, &actor).await
        })
        .await
    }

    /// Moves `alias` back to where it pointed before its last move (loaded and warmed first).
    pub async fn rollback(
        &self,
        caller: &Caller,
        model: &ModelName,
        alias: &str,
    ) -> Result<AliasRecord> {
        caller.authorize(Access::Publish, model)?;
        let (model, alias, actor) = (model.clone(), alias.to_owned(), caller.actor());
        self.to_completion(move |rt| async move { rt.rollback_now(&model, &alias, &actor).await })
            .await
    }

    /// Removes an alias.
    pub async fn delete_alias(
        &self,
        caller: &Caller,
        model: &ModelName,
        alias: &str,
    ) -> Result<()> {
        caller.authorize(Access::Publish, model)?;
        let (model, alias, actor) = (model.clone(), alias.to_owned(), caller.actor());
        self.to_completion(
            move |rt| async move { rt.delete_alias_now(&model, &alias, &actor).await },
        )
        .await
    }

    /// Sets or (with `None`) removes the routing policy; every target is loaded and warmed
    /// before traffic moves.
    pub async fn set_policy(
        &self,
        caller: &Caller,
        model: &ModelName,
        policy: Option<RoutingPolicy>,
    ) -> Result<()> {
        caller.authorize(Access::Publish, model)?;
        let (model, actor) = (model.clone(), caller.actor());
        self.to_completion(move |rt| async move { rt.set_policy_now(&model, policy, &actor).await })
            .await
    }

    /// Archives (`delete` false) or deletes a version that nothing references.
    pub async fn retire_version(
        &self,
        caller: &Caller,
        model: &ModelName,
        version: u32,
        delete: bool,
    ) -> Result<()> {
        caller.authorize(Access::Publish, model)?;
        let (model, actor) = (model.clone(), caller.actor());
        self.to_completion(move |rt| async move {
            rt.retire_version_now(&model, version, delete, &actor).await
        })
        .await
    }

    /// The work of [`Self::push`].
    async fn push_now(
        &self,
        model: &ModelName,
        staged: StagedArtifact,
        req: PushRequest,
        actor: String,
    ) -> Result<VersionRecord> {
        let labels = validate_metadata(&req)?;
        let format = match req.format {
            Some(format) => format,
            None => self.detect_format(&staged).await?,
        };
        let path = staged.path().to_owned();
        let (signature, details) = if self.engines.is_language(format) {
            let engine = self.engines.language(format)?.clone();
            let details = crate::validation::language(engine, path).await?;
            (Signature::default(), details)
        } else if self.engines.is_embedding(format) {
            let engine = self.engines.embedding(format)?.clone();
            crate::validation::embedding(engine, path).await?
        } else {
            let engine = self.engines.tensor(format)?.clone();
            let signature = crate::validation::tensor(engine, path).await?;
            (signature, serde_json::json!({}))
        };
        let record = self
            .registry
            .publish(
                model,
                &staged,
                NewVersion {
                    format,
                    signature,
                    details,
                    description: req.description,
                    labels,
                    created_by: actor,
                },
            )
            .await?;
        tracing::info!(model = %model, version = record.version, digest = %record.digest, "version pushed");
        // A version that serves at once (the first, or the newest of a model without
        // `production` or a policy) is loaded before traffic switches to it.
        self.sync_after_commit().await;
        Ok(record)
    }

    /// The format of a staged upload, recognised from its first bytes.
    async fn detect_format(&self, staged: &StagedArtifact) -> Result<ModelFormat> {
        // Tar archives (packed folders) are recognised at offset 257.
        let mut head = Vec::with_capacity(512);
        tokio::fs::File::open(staged.path())
            .await
            .map_err(modelbay_registry::Error::from)?
            .take(512)
            .read_to_end(&mut head)
            .await
            .map_err(modelbay_registry::Error::from)?;
        self.engines
            .detect(&head)
            .ok_or_else(|| Error::UnknownFormat {
                known: ModelFormat::ALL
                    .iter()
                    .map(|f| f.as_str())
                    .collect::<Vec<_>>()
                    .join("|"),
            })
    }

    /// Routes a request (pinned version, alias or the model's default route) to a loaded
    /// version. `header` looks up a request header, for sticky routing. Handlers call this
    /// before decoding a body, so an unknown model is a 404 whatever the body.
    pub async fn route(
        &self,
        caller: &Caller,
        model: &ModelName,
        version: &VersionRef,
        header: &(dyn Fn(&str) -> Option<Vec<u8>> + Sync),
    ) -> Result<Routed> {
        caller.authorize(Access::Infer, model)?;
        let (route, loaded) = self.manager.route(model, version, header).await?;
        Ok(Routed {
            route,
            in_flight: Mutex::new(Some(loaded.metrics.in_flight())),
            model: loaded,
            name: model.clone(),
        })
    }

    /// Validates a request against the serving version's signature and runs it; when the route
    /// has a shadow target, a copy runs there in the background and is only recorded.
    pub async fn infer(&self, routed: &Routed, req: InferRequest) -> Result<InferResponse> {
        let model = &routed.model;
        model.serves_v2()?;
        let valid = ValidInferRequest::new(req, &model.record.signature)?;
        self.observe_drift(model, &valid).await;
        let shadow_copy = routed
            .route
            .shadow
            .as_ref()
            .map(|t| (t.clone(), valid.clone()));
        let started = Instant::now();
        let outputs = model.run_tensors(valid.inputs, valid.outputs).await?;
        if let Some((target, copy)) = shadow_copy {
            let primary_ms = started.elapsed().as_secs_f64() * 1e3;
            self.spawn_shadow(
                routed.name.clone(),
                target,
                copy,
                outputs.clone(),
                primary_ms,
            );
        }
        Ok(InferResponse {
            model_name: model.record.model.clone(),
            model_version: model.record.version,
            id: valid.id,
            outputs,
        })
    }

    fn spawn_shadow(
        &self,
        model: ModelName,
        target: Target,
        req: ValidInferRequest,
        primary: Vec<modelbay_core::Tensor>,
        primary_ms: f64,
    ) {
        let this = self.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let result = async {
                let version = this.manager.resolve_target(&model, &target).await?;
                let loaded = this.manager.get(&model, version).await?;
                loaded.serves_v2()?;
                let valid = ValidInferRequest::new(
                    InferRequest {
                        id: None,
                        inputs: req.inputs,
                        outputs: req.outputs,
                    },
                    &loaded.record.signature,
                )?;
                loaded.run_tensors(valid.inputs, valid.outputs).await
            }
            .await;
            let shadow_ms = started.elapsed().as_secs_f64() * 1e3;
            let mut shadows = this.shadows.lock();
            let report = shadows
                .entry((model.clone(), target.clone()))
                .or_insert_with(|| ShadowReport::new(target.clone()));
            match result {
                Ok(outputs) => report.record(&primary, &outputs, primary_ms, shadow_ms),
                Err(e) => {
                    tracing::warn!(model = %model, shadow = %target, error = %e, "shadow request failed");
                    report.record_error();
                }
            }
        });
    }

    /// What the shadow target has done since the routing policy was last set.
    pub async fn shadow_report(
        &self,
        caller: &Caller,
        model: &ModelName,
    ) -> Result<Option<ShadowReport>> {
        caller.authorize(Access::Inspect, model)?;
        let routes = self.manager.routes(model).await?;
        let Some(target) = routes.policy.as_ref().and_then(|p| p.shadow.clone()) else {
            return Ok(None);
        };
        let report = self
            .shadows
            .lock()
            .get(&(model.clone(), target.clone()))
            .cloned();
        Ok(Some(report.unwrap_or_else(|| ShadowReport::new(target))))
    }

    /// The work of [`Self::promote`].
    async fn promote_now(
        &self,
        model: &ModelName,
        alias: &str,
        version: u32,
        actor: &str,
    ) -> Result<AliasRecord> {
        {
            let _serialised = self.change_lock(model).await;
            modelbay_core::validate_alias(alias)?;
            self.manager.get(model, version).await?;
            self.registry
                .set_alias(model, alias, version, actor)
                .await?;
        }
        self.sync_after_commit().await;
        self.find_alias(model, alias).await
    }

    /// The work of [`Self::rollback`].
    async fn rollback_now(
        &self,
        model: &ModelName,
        alias: &str,
        actor: &str,
    ) -> Result<AliasRecord> {
        {
            let _serialised = self.change_lock(model).await;
            let record = self.find_alias(model, alias).await?;
            // Preload where the rollback will land: the newest history entry that can serve.
            for &previous in &record.history {
                if previous == record.version {
                    continue;
                }
                if self
                    .registry
                    .version(model, previous)
                    .await
                    .is_ok_and(|v| !v.archived)
                {
                    self.manager.get(model, previous).await?;
                    break;
                }
            }
            self.registry.rollback_alias(model, alias, actor).await?;
        }
        self.sync_after_commit().await;
        self.find_alias(model, alias).await
    }

    /// The work of [`Self::delete_alias`].
    async fn delete_alias_now(&self, model: &ModelName, alias: &str, actor: &str) -> Result<()> {
        {
            let _serialised = self.change_lock(model).await;
            self.registry.delete_alias(model, alias, actor).await?;
        }
        self.sync_after_commit().await;
        Ok(())
    }

    /// One alias with its rollback history.
    pub async fn alias(
        &self,
        caller: &Caller,
        model: &ModelName,
        alias: &str,
    ) -> Result<AliasRecord> {
        caller.authorize(Access::Inspect, model)?;
        self.find_alias(model, alias).await
    }

    async fn find_alias(&self, model: &ModelName, alias: &str) -> Result<AliasRecord> {
        self.registry
            .aliases(Some(model))
            .await?
            .into_iter()
            .find(|a| a.alias == alias)
            .ok_or_else(|| {
                modelbay_registry::Error::AliasNotFound {
                    model: model.to_string(),
                    alias: alias.to_owned(),
                }
                .into()
            })
    }

    /// The work of [`Self::set_policy`].
    async fn set_policy_now(
        &self,
        model: &ModelName,
        policy: Option<RoutingPolicy>,
        actor: &str,
    ) -> Result<()> {
        {
            let _serialised = self.change_lock(model).await;
            if let Some(policy) = &policy {
                policy.validate()?;
                let routes = self.manager.routes(model).await?;
                for target in policy.targets() {
                    let version = routes.target(model, target)?;
                    self.manager.get(model, version).await?;
                }
            }
            self.registry
                .set_policy(model, policy.as_ref(), actor)
                .await?;
        }
        self.sync_after_commit().await;
        Ok(())
    }

    /// The work of [`Self::retire_version`].
    async fn retire_version_now(
        &self,
        model: &ModelName,
        version: u32,
        delete: bool,
        actor: &str,
    ) -> Result<()> {
        {
            let _serialised = self.change_lock(model).await;
            if delete {
                self.registry.delete_version(model, version, actor).await?;
            } else {
                self.registry.archive_version(model, version, actor).await?;
            }
        }
        self.sync_after_commit().await;
        Ok(())
    }

    /// Drops the shadow reports of a model whose policy changed.
    pub(crate) fn forget_shadows(&self, model: &ModelName) {
        self.shadows.lock().retain(|(m, _), _| m != model);
    }

    /// Every version of every model, with whether it is loaded (Triton's repository index).
    pub async fn repository_index(&self, caller: &Caller) -> Result<Vec<RepositoryEntry>> {
        caller.require(Access::Metadata)?;
        let loaded = self.manager.loaded_versions();
        let mut entries = Vec::new();
        for model in self.registry.models().await? {
            if !caller.covers(&model.name) {
                continue;
            }
            let name = ModelName::new(&model.name)?;
            for v in self.registry.versions(&name).await? {
                if v.archived {
                    continue;
                }
                let ready = loaded.contains(&(name.clone(), v.version));
                entries.push(RepositoryEntry {
                    name: model.name.clone(),
                    version: v.version.to_string(),
                    state: if ready { "READY" } else { "UNAVAILABLE" },
                    reason: if ready {
                        String::new()
                    } else {
                        "not loaded".into()
                    },
                });
            }
        }
        Ok(entries)
    }

    /// Loads the version(s) that serve the model's traffic (Triton's repository load).
    pub async fn load_model(&self, caller: &Caller, model: &ModelName) -> Result<()> {
        caller.authorize(Access::Publish, model)?;
        self.manager.invalidate(model);
        let routes = self.manager.routes(model).await?;
        for version in routes.referenced(model) {
            self.manager.get(model, version).await?;
        }
        Ok(())
    }

    /// Unloads every loaded version of the model (Triton's repository unload); in-flight
    /// requests finish, and the next request loads it again.
    pub async fn unload_model(&self, caller: &Caller, model: &ModelName) -> Result<()> {
        caller.authorize(Access::Publish, model)?;
        self.manager.routes(model).await?;
        self.manager.unload(model, &[]);
        Ok(())
    }

    /// Loads every version the reference can be served by (each arm of a policy), so that it
    /// is ready; errors say why not. Returns the representative version.
    pub async fn ready(
        &self,
        caller: &Caller,
        model: &ModelName,
        version: &VersionRef,
    ) -> Result<u32> {
        caller.authorize(Access::Metadata, model)?;
        let routes = self.manager.routes(model).await?;
        for number in routes.serving(model, version)? {
            self.manager.get(model, number).await?;
        }
        routes.representative(model, version)
    }

    /// Metadata of the version a reference points at.
    pub async fn metadata(
        &self,
        caller: &Caller,
        model: &ModelName,
        version: &VersionRef,
    ) -> Result<ModelMetadata> {
        caller.authorize(Access::Metadata, model)?;
        let number = self
            .manager
            .routes(model)
            .await?
            .representative(model, version)?;
        let record = self.registry.version(model, number).await?;
        let versions = self
            .registry
            .versions(model)
            .await?
            .iter()
            .filter(|v| !v.archived)
            .map(|v| v.version)
            .collect();
        Ok(ModelMetadata {
            name: record.model,
            versions,
            version: record.version,
            platform: self.engines.platform(record.format)?,
            signature: record.signature,
        })
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
