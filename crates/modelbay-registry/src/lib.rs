//! The modelbay version store. Metadata (models, immutable versions, the event log) lives in SQL
//! through sqlx; artifacts live in an object store, content-addressed by sha256 and stored once.
//!
//! A push is crash-safe: the upload is streamed into a staging file while it is hashed, the blob
//! is published to the object store under its digest (atomically: the store renames a complete
//! upload into place), and only then is the version's metadata written in one transaction. A
//! crash at any point leaves either no new version or a complete one.

mod artifacts;
pub mod bundle;
mod cache;
mod config;
mod db;
mod digest;
mod error;
mod events;
mod keys;
mod listen;
mod metadata;
mod records;
mod replicas;
mod settings;
mod staging;
mod versioning;

use std::{path::Path, sync::Arc};

use object_store::ObjectStore;

use bytes::Bytes;
use modelbay_core::{ModelName, RoutingPolicy, TensorBatching};
use serde_json::Value;

pub use config::{ArtifactLocation, RegistryConfig, DEFAULT_CACHE_BYTES};
pub use db::Backend;
pub use digest::Digest;
pub use error::{Error, Result};
pub use events::MAX_EVENTS_PAGE;
pub use keys::{KeyRecord, NewKey};
pub use records::{
    AliasRecord, Event, EventKind, ModelSummary, NewVersion, RoutingSnapshot, VersionRecord,
};
pub use replicas::{LoadedVersion, ReplicaRecord};
pub use staging::StagedArtifact;

use artifacts::ArtifactStore;
use metadata::MetadataStore;

/// The registry: metadata plus artifacts. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    metadata: MetadataStore,
    artifacts: ArtifactStore,
    staging_dir: Arc<Path>,
    /// Folder artifacts unpacked for their engines, one directory per digest.
    unpacked_dir: Arc<Path>,
    /// Held while a blob is published and its version recorded, and while a blob no version
    /// uses is removed: a push of the same bytes never finds its blob deleted under it.
    blobs: Arc<tokio::sync::Mutex<()>>,
    postgres_url: Option<Arc<str>>,
}

impl Registry {
    /// Opens (creating if needed) the embedded registry under `data_dir`: SQLite metadata in
    /// `registry.db`, artifacts under `artifacts/`, upload staging under `tmp/`.
    pub async fn open_local(data_dir: &Path) -> Result<Self> {
        Self::open(&RegistryConfig::local(data_dir)).await
    }

    /// Opens a registry: metadata in SQLite under the data directory or in PostgreSQL,
    /// artifacts under the data directory, in a shared directory or in an S3 bucket (read
    /// through a local cache). Upload staging and unpacked folders are always local.
    pub async fn open(config: &RegistryConfig) -> Result<Self> {
        let data_dir = config.data_dir.as_path();
        let staging_dir = data_dir.join("tmp");
        let unpacked_dir = data_dir.join("unpacked");
        for dir in [data_dir, &staging_dir, &unpacked_dir] {
            tokio::fs::create_dir_all(dir).await?;
        }
        staging::clear_leftovers(&staging_dir).await?;
        staging::clear_leftovers(&unpacked_dir).await?;
        let metadata = match &config.metadata_url {
            Some(url) => MetadataStore::open_postgres(url).await?,
            None => MetadataStore::open_sqlite(&data_dir.join("registry.db")).await?,
        };
        let artifacts = match &config.artifacts {
            ArtifactLocation::DataDir => ArtifactStore::local(&data_dir.join("artifacts"))?,
            ArtifactLocation::Directory(dir) => ArtifactStore::local(dir)?,
            ArtifactLocation::S3 { bucket, prefix } => {
                let s3 = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .build()?;
                let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
                    Arc::new(s3)
                } else {
                    Arc::new(object_store::prefix::PrefixStore::new(s3, prefix.as_str()))
                };
                let cache_dir = config
                    .cache_dir
                    .clone()
                    .unwrap_or_else(|| data_dir.join("cache"));
                let cache = cache::ArtifactCache::open(&cache_dir, config.cache_max_bytes)?;
                ArtifactStore::remote(store, cache)
            }
        };
        Ok(Self {
            metadata,
            artifacts,
            staging_dir: staging_dir.into(),
            unpacked_dir: unpacked_dir.into(),
            blobs: Arc::default(),
            postgres_url: config.metadata_url.as_deref().map(Arc::from),
        })
    }

    /// Streams an upload into a staging file, hashing it on the way, refusing more than
    /// `max_bytes`. Nothing is visible in the registry until [`Registry::publish`].
    pub async fn stage<S, E>(&self, body: S, max_bytes: u64) -> Result<StagedArtifact>
    where
        S: futures::Stream<Item = std::result::Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        staging::stage(&self.staging_dir, body, max_bytes).await
    }

    /// Publishes a staged artifact as the next version of `model`: stores the blob under its
    /// digest (once, however often it is pushed), then records the version in one transaction.
    pub async fn publish(
        &self,
        model: &ModelName,
        staged: &StagedArtifact,
        new: NewVersion,
    ) -> Result<VersionRecord> {
        let _blobs = self.blobs.lock().await;
        let shared = self.metadata.db.lock_digest(staged.digest()).await?;
        let published = async {
            self.artifacts.put_staged(staged).await?;
            self.metadata.insert_version(model, staged, new).await
        }
        .await;
        shared.release().await;
        published
    }

    /// Every model with a summary of its versions, by name.
    pub async fn models(&self) -> Result<Vec<ModelSummary>> {
        self.metadata.models().await
    }

    /// Every version of `model`, oldest first.
    pub async fn versions(&self, model: &ModelName) -> Result<Vec<VersionRecord>> {
        self.metadata.versions(model).await
    }

    /// One version of `model`.
    pub async fn version(&self, model: &ModelName, version: u32) -> Result<VersionRecord> {
        self.metadata.version(model, version).await
    }

    /// The newest version of `model`.
    pub async fn latest_version(&self, model: &ModelName) -> Result<VersionRecord> {
        self.metadata.latest_version(model).await
    }

    /// Aliases of `model`, or of every model when `None`.
    pub async fn aliases(&self, model: Option<&ModelName>) -> Result<Vec<AliasRecord>> {
        self.metadata.aliases(model).await
    }

    /// Points `alias` at `version` (an audited move; the old target goes on the rollback stack).
    pub async fn set_alias(
        &self,
        model: &ModelName,
        alias: &str,
        version: u32,
        actor: &str,
    ) -> Result<()> {
        modelbay_core::validate_alias(alias)?;
        self.metadata.set_alias(model, alias, version, actor).await
    }

    /// Moves `alias` back one step; returns the version it now points at.
    pub async fn rollback_alias(&self, model: &ModelName, alias: &str, actor: &str) -> Result<u32> {
        self.metadata.rollback_alias(model, alias, actor).await
    }

    /// Removes `alias`.
    pub async fn delete_alias(&self, model: &ModelName, alias: &str, actor: &str) -> Result<()> {
        self.metadata.delete_alias(model, alias, actor).await
    }

    /// Aliases, policy and newest version of `model` as of one instant; `None` if the model
    /// does not exist.
    pub async fn routing_snapshot(&self, model: &ModelName) -> Result<Option<RoutingSnapshot>> {
        self.metadata.routing_snapshot(model).await
    }

    /// The model's routing policy, if it has one.
    pub async fn policy(&self, model: &ModelName) -> Result<Option<RoutingPolicy>> {
        self.metadata.policy(model).await
    }

    /// Sets the routing policy (`None` removes it).
    pub async fn set_policy(
        &self,
        model: &ModelName,
        policy: Option<&RoutingPolicy>,
        actor: &str,
    ) -> Result<()> {
        self.metadata.set_policy(model, policy, actor).await
    }

    /// The model's dynamic-batching settings; `None` when never set.
    pub async fn batching(&self, model: &ModelName) -> Result<Option<TensorBatching>> {
        self.metadata.batching(model).await
    }

    /// Replaces the model's dynamic-batching settings.
    pub async fn set_batching(
        &self,
        model: &ModelName,
        batching: &TensorBatching,
        actor: &str,
    ) -> Result<()> {
        self.metadata.set_batching(model, batching, actor).await
    }

    /// Statistics of a version's reference data (drift, explanations), if it has any.
    pub async fn reference(&self, model: &ModelName, version: u32) -> Result<Option<Value>> {
        self.metadata.reference(model, version).await
    }

    /// Sets a version's reference-data statistics; `summary` is what the event records.
    pub async fn set_reference(
        &self,
        model: &ModelName,
        version: u32,
        stats: &Value,
        summary: Value,
        actor: &str,
    ) -> Result<()> {
        self.metadata
            .set_reference(model, version, stats, summary, actor)
            .await
    }

    /// The generation defaults a publisher set for a version, if any.
    pub async fn generation_defaults(
        &self,
        model: &ModelName,
        version: u32,
    ) -> Result<Option<modelbay_core::generation::GenerationParams>> {
        self.metadata.generation_defaults(model, version).await
    }

    /// Replaces a version's generation defaults (a `generation.set` event).
    pub async fn set_generation_defaults(
        &self,
        model: &ModelName,
        version: u32,
        params: &modelbay_core::generation::GenerationParams,
        actor: &str,
    ) -> Result<()> {
        self.metadata
            .set_generation_defaults(model, version, params, actor)
            .await
    }

    /// Archives a version: kept, never served. Refused while referenced.
    pub async fn archive_version(
        &self,
        model: &ModelName,
        version: u32,
        actor: &str,
    ) -> Result<()> {
        self.metadata
            .retire_version(model, version, false, actor)
            .await?;
        Ok(())
    }

    /// Deletes a version's metadata, then its blob and unpacked folder when no other version
    /// is stored as the same bytes. Refused while referenced. Its number is never reused. A
    /// crash between the two steps leaves only an unused blob, which a push of the same bytes
    /// reuses.
    pub async fn delete_version(&self, model: &ModelName, version: u32, actor: &str) -> Result<()> {
        let digest = self
            .metadata
            .retire_version(model, version, true, actor)
            .await?;
        let _blobs = self.blobs.lock().await;
        let shared = self.metadata.db.lock_digest(&digest).await?;
        let unused = match self.metadata.digest_in_use(&digest).await {
            Ok(in_use) => !in_use,
            Err(e) => {
                shared.release().await;
                return Err(e);
            }
        };
        if unused {
            if let Err(e) = self.artifacts.delete(&digest).await {
                tracing::warn!(%digest, error = %e, "could not delete an unused blob");
            }
        }
        shared.release().await;
        if !unused {
            return Ok(());
        }
        let unpacked = self.unpacked_dir.join(digest.hex());
        if unpacked.is_dir() {
            if let Err(e) = tokio::fs::remove_dir_all(&unpacked).await {
                tracing::warn!(%digest, error = %e, "could not delete an unused unpacked folder");
            }
        }
        tracing::info!(%digest, "unused blob deleted");
        Ok(())
    }

    /// Every API key, revoked ones too (digests included, for the key cache).
    pub async fn keys(&self) -> Result<Vec<KeyRecord>> {
        self.metadata.keys().await
    }

    /// Creates an API key (an audited event).
    pub async fn create_key(&self, new: NewKey, actor: &str) -> Result<KeyRecord> {
        self.metadata.create_key(new, actor).await
    }

    /// Revokes an API key (an audited event); it never authenticates again.
    pub async fn revoke_key(&self, id: &str, actor: &str) -> Result<KeyRecord> {
        self.metadata.revoke_key(id, actor).await
    }

    /// Events after sequence number `since`, oldest first, optionally for one model.
    pub async fn events(&self, model: Option<&str>, since: i64, limit: u32) -> Result<Vec<Event>> {
        events::page(&self.metadata.db.pool, model, since, limit).await
    }

    /// The sequence number of the newest event (0 when there is none).
    pub async fn last_event_seq(&self) -> Result<i64> {
        events::last_seq(&self.metadata.db.pool).await
    }

    /// Records a replica's heartbeat.
    pub async fn heartbeat(&self, replica: &ReplicaRecord) -> Result<()> {
        self.metadata.heartbeat(replica).await
    }

    /// Every replica that has reported, with what it reported last.
    pub async fn replicas(&self) -> Result<Vec<ReplicaRecord>> {
        self.metadata.replicas().await
    }

    /// Removes replicas not heard from since `before`; returns how many.
    pub async fn forget_replicas(&self, before: chrono::DateTime<chrono::Utc>) -> Result<u64> {
        self.metadata.forget_replicas(before).await
    }

    /// For a shared (PostgreSQL) registry: a wake-up that fires when other replicas append
    /// events, from a listener on a connection of its own, started here. `None` for the
    /// embedded registry, which only this process writes.
    pub fn event_hints(&self) -> Option<Arc<tokio::sync::Notify>> {
        let url = self.postgres_url.clone()?;
        let hints = Arc::new(tokio::sync::Notify::new());
        tokio::spawn(listen::listen(url, hints.clone()));
        Some(hints)
    }

    /// Which database holds the metadata.
    pub fn backend(&self) -> Backend {
        self.metadata.db.backend
    }

    /// Reads a version's artifact, re-verifying its size and digest.
    pub async fn read_artifact(&self, version: &VersionRecord) -> Result<Bytes> {
        self.artifacts
            .read_verified(&version.digest, version.size)
            .await
    }

    /// The local file of a version's artifact (for engines that map files), re-verified.
    pub async fn artifact_file(&self, version: &VersionRecord) -> Result<std::path::PathBuf> {
        self.artifacts.file(&version.digest, version.size).await
    }

    /// The directory a folder artifact (a [`bundle`]) unpacks to, after re-verifying the blob.
    /// Unpacked once per digest, into a temporary directory renamed into place, so a crash
    /// never leaves a half-unpacked folder that looks complete.
    pub async fn artifact_dir(&self, version: &VersionRecord) -> Result<std::path::PathBuf> {
        let archive = self.artifact_file(version).await?;
        let hex = version.digest.hex().to_owned();
        let root = self.unpacked_dir.clone();
        tokio::task::spawn_blocking(move || -> Result<std::path::PathBuf> {
            let dest = root.join(&hex);
            if dest.is_dir() {
                return Ok(dest);
            }
            let temp = tempfile::Builder::new()
                .prefix("upload-")
                .tempdir_in(&root)?;
            let work = temp.path().join("folder");
            bundle::unpack(&archive, &work, &bundle::BundleLimits::default())?;
            match std::fs::rename(&work, &dest) {
                Ok(()) => {}
                // Another load unpacked the same digest first; theirs is as good as ours.
                Err(_) if dest.is_dir() => {}
                Err(e) => return Err(e.into()),
            }
            std::fs::File::open(&*root)?.sync_all()?;
            Ok(dest)
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?
    }
}
