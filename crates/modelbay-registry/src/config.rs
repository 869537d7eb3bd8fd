//! Where a registry keeps its metadata and its artifacts.

use std::{
    path::{Path, PathBuf},
    str::FromStr,
};

/// Local copies of remote artifacts a replica keeps by default: 20 GiB.
pub const DEFAULT_CACHE_BYTES: u64 = 20 << 30;

/// How to open a [`crate::Registry`].
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Upload staging and unpacked folders always; SQLite metadata and artifacts by default.
    pub data_dir: PathBuf,
    /// `postgres://…`: metadata in a PostgreSQL database every replica shares. `None`: SQLite
    /// in the data directory.
    pub metadata_url: Option<String>,
    pub artifacts: ArtifactLocation,
    /// Where a remote store's artifacts are copied for engines to read (default
    /// `<data-dir>/cache`).
    pub cache_dir: Option<PathBuf>,
    /// Size bound of that cache; least recently used copies go first.
    pub cache_max_bytes: u64,
}

impl RegistryConfig {
    /// The embedded single-node registry: everything under `data_dir`.
    pub fn local(data_dir: &Path) -> Self {
        Self {
            data_dir: data_dir.to_owned(),
            metadata_url: None,
            artifacts: ArtifactLocation::DataDir,
            cache_dir: None,
            cache_max_bytes: DEFAULT_CACHE_BYTES,
        }
    }
}

/// Where artifacts are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactLocation {
    /// `<data-dir>/artifacts`.
    DataDir,
    /// `file:///path`: a directory, possibly a filesystem every replica mounts.
    Directory(PathBuf),
    /// `s3://bucket/prefix`: an S3-compatible bucket; endpoint and credentials come from the
    /// usual `AWS_*` variables.
    S3 { bucket: String, prefix: String },
}

impl FromStr for ArtifactLocation {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err("an s3:// artifact location needs a bucket: s3://bucket/prefix".into());
            }
            return Ok(Self::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
            });
        }
        if let Some(path) = text.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(
                    "a file:// artifact location needs an absolute path: file:///srv/modelbay"
                        .into(),
                );
            }
            return Ok(Self::Directory(PathBuf::from(path)));
        }
        Err("artifacts live at s3://bucket/prefix or file:///absolute/path".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_locations_parse() {
        assert_eq!(
            "s3://models/prod/eu".parse::<ArtifactLocation>().unwrap(),
            ArtifactLocation::S3 {
                bucket: "models".into(),
                prefix: "prod/eu".into()
            }
        );
        assert_eq!(
            "s3://models".parse::<ArtifactLocation>().unwrap(),
            ArtifactLocation::S3 {
                bucket: "models".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            "file:///srv/blobs".parse::<ArtifactLocation>().unwrap(),
            ArtifactLocation::Directory("/srv/blobs".into())
        );
        for bad in ["s3://", "file://relative", "/srv/blobs", "gs://b"] {
            assert!(bad.parse::<ArtifactLocation>().is_err(), "{bad}");
        }
    }
}
