use std::path::Path;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use sha2::{Digest as _, Sha256};
use tempfile::NamedTempFile;
use tokio::io::AsyncWriteExt;

use crate::{Digest, Error, Result};

/// An upload written to a private staging file and hashed. The file is deleted when this value
/// is dropped, so an abandoned or failed push leaves nothing behind.
#[derive(Debug)]
pub struct StagedArtifact {
    file: NamedTempFile,
    digest: Digest,
    size: u64,
}

impl StagedArtifact {
    /// Path of the staging file (for engines that inspect the artifact before it is published).
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// `sha256:<hex>` of the content.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
}

pub(crate) async fn stage<S, E>(dir: &Path, mut body: S, max_bytes: u64) -> Result<StagedArtifact>
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let file = tempfile::Builder::new()
        .prefix("upload-")
        .tempfile_in(dir)?;
    let mut writer = tokio::io::BufWriter::new(tokio::fs::File::from_std(file.reopen()?));
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| Error::UploadInterrupted(e.to_string()))?;
        size += chunk.len() as u64;
        if size > max_bytes {
            return Err(Error::TooLarge { limit: max_bytes });
        }
        hasher.update(&chunk);
        writer.write_all(&chunk).await?;
    }
    if size == 0 {
        return Err(Error::EmptyUpload);
    }
    writer.flush().await?;
    writer.into_inner().sync_all().await?;
    Ok(StagedArtifact {
        file,
        digest: Digest::from_hasher(hasher),
        size,
    })
}

/// Removes staging files and half-unpacked folders left by a crash.
pub(crate) async fn clear_leftovers(dir: &Path) -> Result<()> {
    let mut entries = tokio::fs::read_dir(dir).await?;
    while let Some(entry) = entries.next_entry().await? {
        if entry.file_name().to_string_lossy().starts_with("upload-") {
            if entry.file_type().await?.is_dir() {
                tokio::fs::remove_dir_all(entry.path()).await?;
            } else {
                tokio::fs::remove_file(entry.path()).await?;
            }
        }
    }
    Ok(())
}
