use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use modelbay_core::{ModelFormat, Signature};
use serde::Serialize;

use crate::Digest;

/// What the caller of a push supplies besides the bytes.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub format: ModelFormat,
    pub signature: Signature,
    /// Facts the engine read from the artifact (a JSON object; empty for tensor models).
    pub details: serde_json::Value,
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
    pub digest: Digest,
    /// Artifact size in bytes.
    pub size: u64,
    pub format: ModelFormat,
    pub signature: Signature,
    /// Facts the engine read from the artifact (a JSON object; empty for tensor models).
    pub details: serde_json::Value,
    pub description: String,
    pub labels: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    /// Archived versions are kept but never served.
    pub archived: bool,
    /// Aliases pointing at this version now.
    pub aliases: Vec<String>,
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

/// An alias and the version it points at.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AliasRecord {
    pub model: String,
    pub alias: String,
    pub version: u32,
    pub updated_at: DateTime<Utc>,
    /// Versions it pointed at before, most recent first (where rollback goes).
    pub history: Vec<u32>,
}

/// One entry of the append-only event log: the audit trail and the change feed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Monotonically increasing sequence number.
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    /// `push`, `alias.set`, `alias.delete`, `alias.rollback`, `policy.set`, `policy.delete`,
    /// `version.archive`, `version.delete`.
    pub kind: EventKind,
    pub model: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// What routing needs to know about a model, read consistently in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingSnapshot {
    /// Alias names and the versions they point at.
    pub aliases: Vec<(String, u32)>,
    pub policy: Option<modelbay_core::RoutingPolicy>,
    /// Newest version that is not archived.
    pub newest: Option<u32>,
}

/// What a registry change was. Stored as its dotted name; a name this binary does not know
/// (written by a newer one during a rolling upgrade) reads as [`EventKind::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventKind {
    Push,
    AliasSet,
    AliasRollback,
    AliasDelete,
    PolicySet,
    PolicyDelete,
    VersionArchive,
    VersionDelete,
    BatchingSet,
    ReferenceSet,
    GenerationSet,
    KeyCreated,
    KeyRevoked,
    Other(String),
}

impl EventKind {
    const NAMED: [(EventKind, &'static str); 13] = [
        (Self::Push, "push"),
        (Self::AliasSet, "alias.set"),
        (Self::AliasRollback, "alias.rollback"),
        (Self::AliasDelete, "alias.delete"),
        (Self::PolicySet, "policy.set"),
        (Self::PolicyDelete, "policy.delete"),
        (Self::VersionArchive, "version.archive"),
        (Self::VersionDelete, "version.delete"),
        (Self::BatchingSet, "batching.set"),
        (Self::ReferenceSet, "reference.set"),
        (Self::GenerationSet, "generation.set"),
        (Self::KeyCreated, "key.created"),
        (Self::KeyRevoked, "key.revoked"),
    ];

    /// The stored name.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Other(name) => name,
            known => Self::NAMED
                .iter()
                .find(|(kind, _)| kind == known)
                .map(|(_, name)| *name)
                .expect("every named kind is in the table"),
        }
    }

    /// The kind a stored name stands for.
    pub fn parse(name: &str) -> Self {
        Self::NAMED
            .iter()
            .find(|(_, known)| *known == name)
            .map(|(kind, _)| kind.clone())
            .unwrap_or_else(|| Self::Other(name.to_owned()))
    }
}

impl Serialize for EventKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_kinds_round_trip_through_their_names() {
        for (kind, name) in EventKind::NAMED {
            assert_eq!(kind.as_str(), name);
            assert_eq!(EventKind::parse(name), kind);
        }
        assert_eq!(
            EventKind::parse("quota.set"),
            EventKind::Other("quota.set".into())
        );
        assert_eq!(EventKind::parse("quota.set").as_str(), "quota.set");
    }
}
