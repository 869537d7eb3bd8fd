use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use bytes::Bytes;
use futures::StreamExt;
use object_store::{local::LocalFileSystem, path::Path as ObjectPath, ObjectStore, WriteMultipart};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncReadExt;

use crate::{cache::ArtifactCache, Digest, Error, Result, StagedArtifact};

const CHUNK: usize = 8 << 20;

/// Content-addressed blobs in an object store, under `blobs/sha256/<hex>`. The key is derived
/// only from a digest we computed, so no user input ever becomes a path.
#[derive(Clone)]
pub(crate) struct ArtifactStore {
    store: Arc<dyn ObjectStore>,
    /// Root directory when the store is the local filesystem, for durability (fsync) and the
    /// startup sweep of incomplete uploads; its blobs are files engines can read in place.
    local_root: Option<Arc<Path>>,
    /// Local copies of a remote store's blobs.
    cache: Option<Arc<ArtifactCache>>,
}

pub(crate) fn blob_path(digest: &Digest) -> ObjectPath {
    ObjectPath::from(format!("blobs/sha256/{}", digest.hex()))
}

impl ArtifactStore {
    pub(crate) fn local(root: &Path) -> Result<Self> {
        let blobs = root.join("blobs/sha256");
        std::fs::create_dir_all(&blobs)?;
        // A crash during an upload leaves `<hex>#<n>` part files behind; they are never read.
        for entry in std::fs::read_dir(&blobs)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().contains('#') {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(Self {
            store: Arc::new(LocalFileSystem::new_with_prefix(root)?),
            local_root: Some(root.into()),
            cache: None,
        })
    }

    /// A remote store (S3 and the like), read through a local cache.
    pub(crate) fn remote(store: Arc<dyn ObjectStore>, cache: ArtifactCache) -> Self {
        Self {
            store,
            local_root: None,
            cache: Some(Arc::new(cache)),
        }
    }

    /// A local file holding a blob, verified against its recorded size and digest: the blob
    /// itself on a filesystem store, else the cache's copy.
    pub(crate) async fn file(&self, digest: &Digest, size: u64) -> Result<PathBuf> {
        match &self.cache {
            Some(cache) => cache.file(self.store.as_ref(), digest, size).await,
            None => self.local_file_verified(digest, size).await,
        }
    }

    /// Makes a published local blob durable before metadata points at it: the file's data and
    /// the directory entry that the store's rename created. Runs off the async workers.
    async fn sync_local(&self, digest: &Digest) -> Result<()> {
        let Some(root) = self.local_root.clone() else {
            return Ok(());
        };
        let hex = digest.hex().to_owned();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let dir = root.join("blobs/sha256");
            std::fs::File::open(dir.join(hex))?.sync_all()?;
            std::fs::File::open(&dir)?.sync_all()
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))??;
        Ok(())
    }

    /// Whether the stored blob still hashes to `digest`, read as a stream (never whole).
    async fn intact(&self, digest: &Digest) -> Result<bool> {
        let mut stream = self.store.get(&blob_path(digest)).await?.into_stream();
        let mut hasher = Sha256::new();
        while let Some(chunk) = stream.next().await {
            hasher.update(&chunk?);
        }
        Ok(Digest::from_hasher(hasher) == *digest)
    }

    /// Stores the staged file under its digest unless an intact copy is already there. A
    /// multipart upload only becomes visible when complete, so readers never see half a blob.
    pub(crate) async fn put_staged(&self, staged: &StagedArtifact) -> Result<()> {
        let path = blob_path(staged.digest());
        match self.store.head(&path).await {
            // Reuse a stored copy only if it is intact; a damaged one is replaced.
            Ok(meta) if meta.size == staged.size() => {
                if self.intact(staged.digest()).await? {
                    return Ok(());
                }
                tracing::warn!(
                    digest = %staged.digest(),
                    "stored blob is damaged; replacing it"
                );
            }
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let upload = self.store.put_multipart(&path).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, CHUNK);
        let mut file = tokio::fs::File::open(staged.path()).await?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            writer.wait_for_capacity(2).await?;
            writer.write(&buf[..n]);
        }
        writer.finish().await?;
        let stored = self.store.head(&path).await?;
        if stored.size != staged.size() {
            return Err(Error::Corrupt {
                digest: staged.digest().clone(),
                detail: format!(
                    "the store holds {} bytes after the upload of {}",
                    stored.size,
                    staged.size()
                ),
            });
        }
        self.sync_local(staged.digest()).await
    }

    /// The path of a blob on the local filesystem, for engines that map a file rather than
    /// read bytes, after checking (streamed) that it still has its recorded size and digest.
    async fn local_file_verified(&self, digest: &Digest, size: u64) -> Result<PathBuf> {
        let Some(root) = &self.local_root else {
            return Err(Error::Io(std::io::Error::other(
                "this artifact store has no local files",
            )));
        };
        let path = root.join("blobs/sha256").join(digest.hex());
        let corrupt = |detail: String| Error::Corrupt {
            digest: digest.clone(),
            detail,
        };
        match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.len() == size => {}
            Ok(meta) => {
                return Err(corrupt(format!(
                    "expected {size} bytes, found {}",
                    meta.len()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(corrupt(
                    "the blob is missing from the artifact store".into(),
                ))
            }
            Err(e) => return Err(e.into()),
        }
        if !self.intact(digest).await? {
            return Err(corrupt("its content no longer hashes to its digest".into()));
        }
        Ok(path)
    }

    /// Removes a blob (no version uses it any more).
    pub(crate) async fn delete(&self, digest: &Digest) -> Result<()> {
        match self.store.delete(&blob_path(digest)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads a blob and checks it still has the size and digest recorded at push time.
    pub(crate) async fn read_verified(&self, digest: &Digest, size: u64) -> Result<Bytes> {
        if self.cache.is_some() {
            let path = self.file(digest, size).await?;
            return Ok(tokio::fs::read(path).await?.into());
        }
        let bytes = match self.store.get(&blob_path(digest)).await {
            Ok(got) => got.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Error::Corrupt {
                    digest: digest.clone(),
                    detail: "the blob is missing from the artifact store".into(),
                })
            }
            Err(e) => return Err(e.into()),
        };
        if bytes.len() as u64 != size {
            return Err(Error::Corrupt {
                digest: digest.clone(),
                detail: format!("expected {size} bytes, found {}", bytes.len()),
            });
        }
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(Error::Corrupt {
                digest: digest.clone(),
                detail: format!("content hashes to {actual}"),
            });
        }
        Ok(bytes)
    }
}
