//! Input drift: a version's reference data (uploaded as CSV or v2 JSON rows) is summarised per
//! feature; live inputs fill a sliding window per version; the Population Stability Index of
//! each feature compares the two. Windows are kept per process (each replica sees its own
//! traffic) and start empty when the server starts or the reference changes.

mod reference;
mod window;

use std::{collections::HashMap, sync::Arc};

use modelbay_core::{Access, Caller, InferRequest, ModelName, ValidInferRequest};
use parking_lot::{Mutex, RwLock};
use serde_json::json;

pub(crate) use reference::ReferenceStats;
pub use window::{DriftReport, FeatureDrift};

use crate::{features::FeatureLayout, Error, LoadedModel, Result, Runtime};
use window::DriftWindow;

/// Reference data as uploaded.
#[derive(Debug, Clone)]
pub enum ReferenceData {
    /// Comma-separated numeric rows, optionally under a header of feature names.
    Csv(String),
    /// A v2 inference request body (already decoded): its inputs' rows are the reference.
    Rows(InferRequest),
}

/// What a version's reference data holds, as the API reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReferenceSummary {
    pub rows: u64,
    pub features: Vec<String>,
    pub background_rows: usize,
}

/// A version's window and how its inputs become rows.
pub(crate) struct Monitor {
    layout: FeatureLayout,
    pub(crate) stats: Arc<ReferenceStats>,
    window: Mutex<DriftWindow>,
    capacity: usize,
}

impl Monitor {
    fn new(layout: FeatureLayout, stats: ReferenceStats, capacity: usize) -> Self {
        let stats = Arc::new(stats);
        Self {
            layout,
            window: Mutex::new(DriftWindow::new(stats.clone(), capacity)),
            stats,
            capacity,
        }
    }

    /// Adds a request's rows to the window: only its last `capacity` rows, since the window
    /// would drop the others at once.
    pub(crate) fn observe(&self, valid: &ValidInferRequest) {
        let count = valid
            .inputs
            .first()
            .and_then(|t| t.shape().first().copied())
            .unwrap_or(0);
        let start = count.saturating_sub(self.capacity);
        if let Ok(rows) = self.layout.rows_from(&valid.inputs, start) {
            self.window.lock().observe(rows);
        }
    }

    pub(crate) fn report(&self) -> DriftReport {
        self.window.lock().report()
    }
}

/// A version's monitor, or `None` when it is known to have no reference data.
type Known = Option<Arc<Monitor>>;

/// The monitors of every version seen since the server started: `None` for a version known to
/// have no reference data, so the registry is asked once per version, not per request. Read on
/// every inference (by model name, without allocating), written rarely.
#[derive(Default)]
pub(crate) struct Monitors {
    by_model: RwLock<HashMap<String, HashMap<u32, Known>>>,
}

impl Monitors {
    fn get(&self, model: &str, version: u32) -> Option<Known> {
        self.by_model.read().get(model)?.get(&version).cloned()
    }

    /// Records what was read from the registry, unless something newer is there already.
    fn remember(&self, model: &str, version: u32, known: Known) -> Known {
        self.by_model
            .write()
            .entry(model.to_owned())
            .or_default()
            .entry(version)
            .or_insert(known)
            .clone()
    }

    /// Drops a version's window (the version was archived or deleted, or has new reference
    /// data that the next use reads).
    pub(crate) fn forget(&self, model: &str, version: u32) {
        if let Some(versions) = self.by_model.write().get_mut(model) {
            versions.remove(&version);
        }
    }

    pub(crate) fn all(&self) -> Vec<(String, u32, Arc<Monitor>)> {
        let map = self.by_model.read();
        map.iter()
            .flat_map(|(model, versions)| {
                versions
                    .iter()
                    .filter_map(|(v, m)| m.clone().map(|m| (model.clone(), *v, m)))
            })
            .collect()
    }
}

fn summary(stats: &ReferenceStats) -> ReferenceSummary {
    ReferenceSummary {
        rows: stats.rows,
        features: stats.features.iter().map(|f| f.name.clone()).collect(),
        background_rows: stats.background.len(),
    }
}

impl Runtime {
    /// Sets a version's reference data: rows are checked against the signature, summarised
    /// and stored; the version's drift window starts again.
    pub async fn set_reference(
        &self,
        caller: &Caller,
        model: &ModelName,
        version: u32,
        data: ReferenceData,
    ) -> Result<ReferenceSummary> {
        caller.authorize(Access::Publish, model)?;
        let _one_at_a_time = self
            .reference_uploads
            .clone()
            .try_acquire_owned()
            .map_err(|_| {
                Error::Busy(
                    "another reference-data upload is being processed; retry shortly".into(),
                )
            })?;
        let record = self.registry.version(model, version).await?;
        if self.engines.is_language(record.format) || self.engines.is_embedding(record.format) {
            return Err(Error::Unsupported(format!(
                "model '{model}' version {version} is not a tensor model; reference data is \
                 for tabular models"
            )));
        }
        let layout = FeatureLayout::of(&record.signature)?;
        let signature = record.signature.clone();
        let stats = tokio::task::spawn_blocking({
            let layout = layout.clone();
            move || reference_stats(&layout, &signature, data)
        })
        .await??;
        let stored = serde_json::to_value(&stats)
            .map_err(|e| Error::Unsupported(format!("reference statistics: {e}")))?;
        let summary = summary(&stats);
        self.registry
            .set_reference(
                model,
                version,
                &stored,
                json!({ "rows": summary.rows, "features": summary.features.len() }),
                &caller.actor(),
            )
            .await?;
        // The version's drift window starts again from the new reference.
        self.sync_after_commit().await;
        Ok(summary)
    }

    /// What a version's reference data holds.
    pub async fn reference(
        &self,
        caller: &Caller,
        model: &ModelName,
        version: u32,
    ) -> Result<ReferenceSummary> {
        caller.authorize(Access::Inspect, model)?;
        let monitor = self.monitor(model, version).await?;
        Ok(summary(&monitor.stats))
    }

    /// The drift of a version's live inputs against its reference data.
    pub async fn drift(
        &self,
        caller: &Caller,
        model: &ModelName,
        version: u32,
    ) -> Result<DriftReport> {
        caller.authorize(Access::Inspect, model)?;
        Ok(self.monitor(model, version).await?.report())
    }

    /// The version's monitor; an error when it has no reference data.
    pub(crate) async fn monitor(&self, model: &ModelName, version: u32) -> Result<Arc<Monitor>> {
        if self.registry.version(model, version).await?.archived {
            return Err(modelbay_registry::Error::Conflict(format!(
                "version {version} of model '{model}' is archived"
            ))
            .into());
        }
        self.monitor_if_any(model, version)
            .await?
            .ok_or_else(|| Error::NoReference {
                model: model.to_string(),
                version,
            })
    }

    /// The monitor of a version with reference data; read from the registry once per version.
    async fn monitor_if_any(
        &self,
        model: &ModelName,
        version: u32,
    ) -> Result<Option<Arc<Monitor>>> {
        if let Some(known) = self.monitors.get(model.as_str(), version) {
            return Ok(known);
        }
        let Some(stored) = self.registry.reference(model, version).await? else {
            return Ok(self.monitors.remember(model.as_str(), version, None));
        };
        let record = self.registry.version(model, version).await?;
        let layout = FeatureLayout::of(&record.signature)?;
        let stats: ReferenceStats = serde_json::from_value(stored).map_err(|e| {
            modelbay_registry::Error::Decode(format!("reference data of {model}@{version}: {e}"))
        })?;
        let monitor = Arc::new(Monitor::new(layout, stats, self.manager.drift_window()));
        Ok(self
            .monitors
            .remember(model.as_str(), version, Some(monitor)))
    }

    /// Adds a validated request to its version's drift window, if the version has reference
    /// data.
    pub(crate) async fn observe_drift(&self, model: &LoadedModel, valid: &ValidInferRequest) {
        let version = model.record.version;
        if let Some(known) = self.monitors.get(&model.record.model, version) {
            if let Some(monitor) = known {
                monitor.observe(valid);
            }
            return;
        }
        let Ok(name) = ModelName::new(&model.record.model) else {
            return;
        };
        match self.monitor_if_any(&name, version).await {
            Ok(Some(monitor)) => monitor.observe(valid),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(model = %name, version = model.record.version, error = %e, "drift monitoring unavailable")
            }
        }
    }
}

/// Parses and summarises uploaded reference data (blocking: it can be a million rows).
fn reference_stats(
    layout: &FeatureLayout,
    signature: &modelbay_core::Signature,
    data: ReferenceData,
) -> Result<ReferenceStats> {
    let (header, rows) = match data {
        ReferenceData::Csv(text) => reference::parse_csv(&text).map_err(Error::Unsupported)?,
        ReferenceData::Rows(request) => {
            let valid = ValidInferRequest::new(request, signature)?;
            let count = valid
                .inputs
                .first()
                .and_then(|t| t.shape().first().copied())
                .unwrap_or(0);
            if count > reference::MAX_CSV_ROWS {
                return Err(Error::Unsupported(format!(
                    "{count} reference rows; at most {} are accepted",
                    reference::MAX_CSV_ROWS
                )));
            }
            (None, layout.rows(&valid.inputs)?)
        }
    };
    let width = layout.width();
    if let Some(first) = rows.first() {
        if first.len() != width {
            return Err(Error::Unsupported(format!(
                "the reference rows have {} columns; the model takes {width} features ({})",
                first.len(),
                layout.default_names().join(", ")
            )));
        }
    }
    let names = header.unwrap_or_else(|| layout.default_names());
    ReferenceStats::from_rows(names, &rows).map_err(Error::Unsupported)
}
