//! Serving settings and monitoring under `/api/v1`: a model's dynamic-batching settings, a
//! language-model version's generation defaults, a version's reference data and the drift of
//! its live inputs.

use axum::{
    body::{Body, Bytes},
    extract::{Path, State},
    http::{header, HeaderMap},
    response::{IntoResponse, Response},
    Json,
};
use modelbay_core::{Access, ModelName, TensorBatching, VersionRef};
use modelbay_runtime::ReferenceData;

use crate::{access::Routes, auth::Authenticated, body::read_limited, error::ApiError, AppState};

/// Largest reference-data upload: 256 MiB (about a million rows of 30 features), or the upload
/// limit if that is lower.
const MAX_REFERENCE_BYTES: u64 = 256 << 20;

pub(crate) fn routes() -> Routes {
    use Access::*;
    const BATCHING: &str = "/api/v1/models/{model}/batching";
    const REFERENCE: &str = "/api/v1/models/{model}/versions/{version}/reference";
    const GENERATION: &str = "/api/v1/models/{model}/versions/{version}/generation";
    Routes::default()
        .get(BATCHING, Inspect, show_batching)
        .put(BATCHING, Publish, set_batching)
        .get(GENERATION, Inspect, show_generation)
        .put(GENERATION, Publish, set_generation)
        .get(REFERENCE, Inspect, show_reference)
        .put(REFERENCE, Publish, set_reference)
        .get(
            "/api/v1/models/{model}/versions/{version}/drift",
            Inspect,
            drift,
        )
}

async fn show_batching(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(model): Path<String>,
) -> Result<Response, ApiError> {
    let status = state
        .runtime
        .batching(&caller, &ModelName::new(&model)?)
        .await?;
    Ok(Json(status).into_response())
}

async fn set_batching(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(model): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let name = ModelName::new(&model)?;
    let settings: TensorBatching = serde_json::from_slice(&body)
        .map_err(|e| crate::json_error::invalid_json("batching settings", &e))?;
    let status = state.runtime.set_batching(&caller, &name, settings).await?;
    Ok(Json(status).into_response())
}

async fn show_generation(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((model, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let settings = state
        .runtime
        .generation_settings(&caller, &ModelName::new(&model)?, version_number(&version)?)
        .await?;
    Ok(Json(settings).into_response())
}

/// Replaces the publisher's generation defaults with the body's fields (all optional:
/// `temperature`, `top_k`, `top_p`, `min_p`, `typical_p`, `repetition_penalty`,
/// `repeat_last_n`, `presence_penalty`, `frequency_penalty`, `max_tokens`, `tool_format`).
async fn set_generation(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((model, version)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let name = ModelName::new(&model)?;
    let value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| crate::json_error::invalid_json("generation defaults", &e))?;
    let params = modelbay_core::generation::GenerationParams::from_json(value)?;
    let settings = state
        .runtime
        .set_generation_defaults(&caller, &name, version_number(&version)?, params)
        .await?;
    Ok(Json(settings).into_response())
}

fn version_number(version: &str) -> Result<u32, ApiError> {
    Ok(VersionRef::parse_number(version)?)
}

async fn show_reference(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((model, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let summary = state
        .runtime
        .reference(&caller, &ModelName::new(&model)?, version_number(&version)?)
        .await?;
    Ok(Json(summary).into_response())
}

/// Reference data as CSV (`text/csv`, an optional header row of feature names) or as a v2
/// inference request body (`application/json`) whose inputs hold the rows.
async fn set_reference(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((model, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let name = ModelName::new(&model)?;
    let version = version_number(&version)?;
    let limit = MAX_REFERENCE_BYTES.min(state.limits.max_upload_bytes) as usize;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let bytes = read_limited(body, declared, limit).await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let json = content_type.starts_with("application/json")
        || (!content_type.starts_with("text/")
            && bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{'));
    let data = if json {
        ReferenceData::Rows(crate::v2::decode_json_request(&bytes)?)
    } else {
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|_| ApiError::invalid("the reference CSV is not UTF-8 text"))?;
        ReferenceData::Csv(text)
    };
    let summary = state
        .runtime
        .set_reference(&caller, &name, version, data)
        .await?;
    Ok(Json(summary).into_response())
}

async fn drift(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((model, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let report = state
        .runtime
        .drift(&caller, &ModelName::new(&model)?, version_number(&version)?)
        .await?;
    Ok(Json(report).into_response())
}
