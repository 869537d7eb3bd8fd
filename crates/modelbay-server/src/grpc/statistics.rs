//! Triton's model statistics, read from the same numbers as `/metrics` (all protocols and
//! aliases of a version together), for every loaded version of a model or of all models.

use modelbay_core::{Access, Caller, VersionRef};
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
    caller: &Caller,
    name: &str,
    version: &str,
) -> Result<Vec<proto::ModelStatistics>, ApiError> {
    caller.require(Access::Inspect)?;
    let entries = state.runtime.repository_index(caller).await?;
    // A model name (with `@version`/`@alias`, or a version field) narrows the answer as every
    // other RPC reads it; a reference to one version resolves to its number.
    let wanted: Option<(String, Option<String>)> = if name.is_empty() {
        None
    } else {
        let (model, reference) = super::service::address(name, version)?;
        let number = match reference {
            VersionRef::Default => None,
            reference => Some(
                state
                    .runtime
                    .metadata(caller, &model, &reference)
                    .await?
                    .version
                    .to_string(),
            ),
        };
        if !entries.iter().any(|e| e.name == model.as_str()) {
            return Err(ApiError::not_found(format!("model '{model}' not found")));
        }
        Some((model.to_string(), number))
    };
    let selected = |e: &&modelbay_runtime::RepositoryEntry| match &wanted {
        None => true,
        Some((model, number)) => {
            e.name == *model && number.as_ref().is_none_or(|n| e.version == *n)
        }
    };
    let all = state.runtime.metrics().version_statistics();
    Ok(entries
        .iter()
        .filter(selected)
        .map(|e| {
            let s = all
                .get(&(e.name.clone(), e.version.clone()))
                .copied()
                .unwrap_or_default();
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
