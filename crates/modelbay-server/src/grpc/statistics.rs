//! Triton's model statistics, read from the same numbers as `/metrics` (all protocols and
//! aliases of a version together), for every loaded version of a model or of all models.

use modelbay_core::ModelName;
use modelbay_runtime::Timed;

use super::proto;
use crate::{error::ApiError, AppState};

fn duration(t: Timed) -> proto::StatisticDuration {
    proto::StatisticDuration {
        count: t.count,
        ns: (t.seconds * 1e9) as u64,
    }
}

/// Statistics of the versions named: a model's (all its versions, or `version`), or, with an
/// empty name, every model's.
pub(crate) async fn collect(
    state: &AppState,
    name: &str,
    version: &str,
) -> Result<Vec<proto::ModelStatistics>, ApiError> {
    let entries = state.runtime.repository_index().await?;
    if !name.is_empty() {
        let model = ModelName::new(name)?;
        if !entries.iter().any(|e| e.name == model.as_str()) {
            return Err(ApiError::not_found(format!("model '{name}' not found")));
        }
    }
    let wanted = |e: &&modelbay_runtime::RepositoryEntry| {
        (name.is_empty() || e.name == name) && (version.is_empty() || e.version == version)
    };
    let metrics = state.runtime.metrics();
    Ok(entries
        .iter()
        .filter(wanted)
        .map(|e| {
            let number = e.version.parse().unwrap_or(0);
            let s = metrics.version_statistics(&e.name, number);
            proto::ModelStatistics {
                name: e.name.clone(),
                version: e.version.clone(),
                inference_count: s.rows,
                execution_count: s.executions,
                inference_stats: Some(proto::InferStatistics {
                    success: Some(duration(s.success)),
                    fail: Some(duration(s.failure)),
                    queue: Some(duration(s.queue)),
                    compute_infer: Some(duration(s.compute)),
                    ..Default::default()
                }),
                ..Default::default()
            }
        })
        .collect())
}
