//! This replica in the cluster: following the shared event log, heartbeats, and the view of
//! every replica.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use modelbay_core::{Access, Caller};
use modelbay_registry::{LoadedVersion, ReplicaRecord};
use serde::Serialize;
use tokio::sync::Notify;

use crate::{Result, Runtime};

/// A replica that has not reported for this long is gone.
pub const GONE_AFTER: Duration = Duration::from_secs(10);

/// Who this replica is, for its heartbeats.
#[derive(Debug, Clone)]
pub struct ReplicaIdentity {
    pub id: String,
    /// Where it serves HTTP, as others reach it.
    pub address: String,
    pub started_at: DateTime<Utc>,
}

/// Every replica, as the registry last heard from it.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterView {
    /// The newest event in the registry: a replica that has applied it is current.
    pub newest_event: i64,
    pub replicas: Vec<ReplicaView>,
}

/// One replica and what its report means now.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaView {
    #[serde(flatten)]
    pub report: ReplicaRecord,
    /// `ready`, `not_ready` or `gone` (no heartbeat for a while).
    pub state: &'static str,
    /// Events it has still to apply.
    pub behind: i64,
}

impl Runtime {
    /// Applies other replicas' changes as they commit: on every hint, and every `poll` in any
    /// case (a missed hint only delays a change). Runs for as long as the process does.
    pub async fn follow(&self, hints: Option<Arc<Notify>>, poll: Duration) {
        let mut failing = false;
        loop {
            match &hints {
                Some(hints) => {
                    let _ = tokio::time::timeout(poll, hints.notified()).await;
                }
                None => tokio::time::sleep(poll).await,
            }
            match self.sync().await {
                Ok(_) if failing => {
                    failing = false;
                    tracing::info!("the registry is reachable again; caught up with its events");
                }
                Ok(_) => {}
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "cannot read the registry's events; serving what is loaded and retrying");
                }
                Err(_) => {}
            }
        }
    }

    /// The versions loaded here, by model and version.
    pub fn loaded_summary(&self) -> Vec<LoadedVersion> {
        let mut loaded: Vec<LoadedVersion> = self
            .manager
            .loaded_models()
            .iter()
            .map(|m| LoadedVersion {
                model: m.record.model.clone(),
                version: m.record.version,
                kind: m.kind().to_owned(),
            })
            .collect();
        loaded.sort_by(|a, b| (&a.model, a.version).cmp(&(&b.model, b.version)));
        loaded
    }

    /// Reports this replica to the registry.
    pub async fn heartbeat(&self, me: &ReplicaIdentity, ready: bool) -> Result<()> {
        if let Some(f) = self.manager.metrics().families() {
            f.replica_info.reset();
            f.replica_info
                .with_label_values(&[me.id.as_str(), env!("CARGO_PKG_VERSION")])
                .set(1);
        }
        let report = ReplicaRecord {
            id: me.id.clone(),
            address: me.address.clone(),
            binary_version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at: me.started_at,
            heartbeat_at: Utc::now(),
            last_event: self.last_applied_event(),
            ready,
            loaded: self.loaded_summary(),
        };
        Ok(self.registry.heartbeat(&report).await?)
    }

    /// Drops replicas not heard from since `before` from the cluster view.
    pub async fn forget_replicas(&self, before: DateTime<Utc>) -> Result<u64> {
        Ok(self.registry.forget_replicas(before).await?)
    }

    /// Every replica that has reported, and whether it is current.
    pub async fn cluster(&self, caller: &Caller) -> Result<ClusterView> {
        caller.require(Access::Inspect)?;
        let newest_event = self.registry.last_event_seq().await?;
        let gone_before = Utc::now() - chrono::Duration::from_std(GONE_AFTER).unwrap_or_default();
        let replicas = self
            .registry
            .replicas()
            .await?
            .into_iter()
            .map(|report| ReplicaView {
                state: if report.heartbeat_at < gone_before {
                    "gone"
                } else if report.ready {
                    "ready"
                } else {
                    "not_ready"
                },
                behind: (newest_event - report.last_event).max(0),
                report,
            })
            .collect();
        Ok(ClusterView {
            newest_event,
            replicas,
        })
    }
}
