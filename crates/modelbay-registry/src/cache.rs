//! The local copies a replica keeps of artifacts that live in a remote object store: engines
//! map files, so a version is read from here. Keyed by digest, and versions are immutable, so
//! nothing is ever invalidated; a copy is downloaded to a temporary name, verified, then
//! renamed into place, and the least recently used copies are removed to stay under the size
//! bound.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::SystemTime,
};

use futures::StreamExt;
use object_store::ObjectStore;
use parking_lot::Mutex;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

use crate::{artifacts::blob_path, Digest, Error, Result};

/// Name prefix of downloads in progress (removed at startup: a crash leaves them behind).
const PARTIAL: &str = ".partial-";

/// A size-bounded, least-recently-used directory of verified artifact copies.
pub(crate) struct ArtifactCache {
    dir: PathBuf,
    max_bytes: u64,
    /// One download per digest at a time; other loads of it wait and reuse the copy.
    downloads: Mutex<HashMap<Digest, Arc<tokio::sync::Mutex<()>>>>,
}

impl ArtifactCache {
    pub(crate) fn open(dir: &Path, max_bytes: u64) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(PARTIAL) {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(Self {
            dir: dir.to_owned(),
            max_bytes,
            downloads: Mutex::default(),
        })
    }

    /// The verified local copy of a blob, downloaded first if needed.
    pub(crate) async fn file(
        &self,
        store: &dyn ObjectStore,
        digest: &Digest,
        size: u64,
    ) -> Result<PathBuf> {
        let lock = self
            .downloads
            .lock()
            .entry(digest.clone())
            .or_default()
            .clone();
        let _one_download = lock.lock().await;
        let path = self.dir.join(digest.hex());
        if self.cached_copy_is_good(&path, digest, size).await? {
            touch(&path);
            return Ok(path);
        }
        self.download(store, digest, size, &path).await?;
        self.evict(&path);
        Ok(path)
    }

    async fn cached_copy_is_good(&self, path: &Path, digest: &Digest, size: u64) -> Result<bool> {
        match tokio::fs::metadata(path).await {
            Ok(meta) if meta.len() == size => {}
            Ok(_) => {
                tokio::fs::remove_file(path).await?;
                return Ok(false);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        if hash_file(path.to_owned()).await? == *digest {
            return Ok(true);
        }
        tracing::warn!(%digest, "a cached artifact copy is damaged; downloading it again");
        tokio::fs::remove_file(path).await?;
        Ok(false)
    }

    async fn download(
        &self,
        store: &dyn ObjectStore,
        digest: &Digest,
        size: u64,
        dest: &Path,
    ) -> Result<()> {
        let corrupt = |detail: String| Error::Corrupt {
            digest: digest.clone(),
            detail,
        };
        let partial = self.dir.join(format!(
            "{PARTIAL}{}-{}",
            digest.hex(),
            uuid::Uuid::new_v4().simple()
        ));
        let result = async {
            let mut stream = match store.get(&blob_path(digest)).await {
                Ok(got) => got.into_stream(),
                Err(object_store::Error::NotFound { .. }) => {
                    return Err(corrupt(
                        "the blob is missing from the artifact store".into(),
                    ))
                }
                Err(e) => return Err(e.into()),
            };
            let mut file = tokio::fs::File::create(&partial).await?;
            let (mut hasher, mut written) = (Sha256::new(), 0u64);
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                written += chunk.len() as u64;
                if written > size {
                    return Err(corrupt(format!("expected {size} bytes, found more")));
                }
                hasher.update(&chunk);
                file.write_all(&chunk).await?;
            }
            if written != size {
                return Err(corrupt(format!("expected {size} bytes, found {written}")));
            }
            let actual = Digest::from_hasher(hasher);
            if actual != *digest {
                return Err(corrupt(format!("content hashes to {actual}")));
            }
            file.sync_all().await?;
            tokio::fs::rename(&partial, dest).await?;
            Ok(())
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&partial).await;
        }
        result
    }

    /// Removes the least recently used copies (never `keep`) while over the size bound.
    /// Engines that opened or mapped a removed file keep reading it: the data stays until
    /// they close it.
    fn evict(&self, keep: &Path) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut copies: Vec<(SystemTime, u64, PathBuf)> = entries
            .flatten()
            .filter(|e| !e.file_name().to_string_lossy().starts_with(PARTIAL))
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                Some((meta.modified().ok()?, meta.len(), e.path()))
            })
            .collect();
        let mut total: u64 = copies.iter().map(|(_, len, _)| len).sum();
        copies.sort();
        for (_, len, path) in copies {
            if total <= self.max_bytes {
                break;
            }
            if path == keep {
                continue;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    total -= len;
                    tracing::info!(
                        bytes = len,
                        "artifact cache: least recently used copy removed"
                    );
                }
                Err(e) => tracing::warn!(error = %e, "artifact cache: could not remove a copy"),
            }
        }
    }
}

/// Marks a copy as just used (its modification time orders eviction).
fn touch(path: &Path) {
    if let Ok(file) = std::fs::File::options().append(true).open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}

/// The digest of a file, read in chunks off the async workers.
pub(crate) async fn hash_file(path: PathBuf) -> Result<Digest> {
    tokio::task::spawn_blocking(move || -> Result<Digest> {
        use std::io::Read;
        let mut file = std::fs::File::open(path)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                return Ok(Digest::from_hasher(hasher));
            }
            hasher.update(&buf[..n]);
        }
    })
    .await
    .map_err(|e| Error::Io(std::io::Error::other(e)))?
}
