use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use modelbay_core::{ModelFormat, Signature};
use serde::Serialize;

/// What the caller of a push supplies besides the bytes.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub format: ModelFormat,
    pub signature: Signature,
    pub description: String,
    pub labels: BTreeMap<String, String>,
    /// Who pushed it (`local` until API keys exist).
    pub created_by: String,
}

/// One immutable version of a model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionRecord {
    pub model: String,
    pub version: u32,
    /// `sha256:<hex>` of the artifact.
    pub digest: String,
    /// Artifact size in bytes.
    pub size: u64,
    pub format: ModelFormat,
    pub signature: Signature,
    pub description: String,
    pub labels: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

/// A model and a summary of its versions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelSummary {
    pub name: String,
    /// Newest version number.
    pub latest_version: u32,
    /// How many versions exist.
    pub version_count: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
