//! Triton's model repository extension: index, load and unload.

use axum::{
    body::Bytes,
    extract::{Path, State},
    response::{IntoResponse, Response},
    Json,
};
use modelbay_core::ModelName;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::{auth::Authenticated, error::ApiError, AppState};

#[derive(Deserialize, Default)]
struct IndexRequest {
    #[serde(default)]
    ready: bool,
}

/// Every version with its state; `{"ready": true}` keeps only loaded ones.
pub(super) async fn index(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: IndexRequest = if body.is_empty() {
        IndexRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| crate::json_error::invalid_json("index request", &e))?
    };
    let mut entries = state.runtime.repository_index(&caller).await?;
    if request.ready {
        entries.retain(|e| e.state == "READY");
    }
    Ok(Json(entries).into_response())
}

#[derive(Deserialize, Default)]
struct LoadRequest {
    #[serde(default)]
    parameters: Map<String, Value>,
}

/// Loads the versions that serve the model's traffic. Triton's `config` and file overrides
/// would change a model outside the registry, so they are refused rather than ignored.
pub(super) async fn load(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(model): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let name = ModelName::new(&model)?;
    if !body.is_empty() {
        let request: LoadRequest = serde_json::from_slice(&body)
            .map_err(|e| crate::json_error::invalid_json("load request", &e))?;
        if let Some(key) = request.parameters.keys().next() {
            return Err(ApiError::invalid(format!(
                "load parameter '{key}' is not supported: models change only by pushing a new version"
            )));
        }
    }
    state.runtime.load_model(&caller, &name).await?;
    Ok(Json(json!({})).into_response())
}

/// Unloads every loaded version; in-flight requests finish and the next request loads again.
pub(super) async fn unload(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(model): Path<String>,
) -> Result<Response, ApiError> {
    state
        .runtime
        .unload_model(&caller, &ModelName::new(&model)?)
        .await?;
    Ok(Json(json!({})).into_response())
}
