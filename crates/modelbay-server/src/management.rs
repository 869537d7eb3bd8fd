//! The management API under `/api/v1`: push versions (streamed), list models and versions.

use std::collections::BTreeMap;

use axum::{
    body::Body,
    extract::{Path, RawQuery, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use modelbay_core::{Access, ModelFormat, ModelName, VersionRef};
use modelbay_runtime::PushRequest;
use serde_json::json;

use crate::{access::Routes, auth::Authenticated, error::ApiError, AppState};

/// The OpenAPI description of this API, kept beside the code it describes.
const OPENAPI: &str = include_str!("../assets/openapi.json");

pub(crate) fn routes() -> Routes {
    use Access::*;
    Routes::default()
        .get("/api/v1/openapi.json", Metadata, openapi)
        .get("/api/v1/whoami", Metadata, whoami)
        .get("/api/v1/cluster", Inspect, cluster)
        .get("/api/v1/models", Metadata, list_models)
        .get("/api/v1/models/{model}/versions", Metadata, list_versions)
        .post("/api/v1/models/{model}/versions", Publish, push)
        .get(
            "/api/v1/models/{model}/versions/{version}",
            Metadata,
            show_version,
        )
        .delete(
            "/api/v1/models/{model}/versions/{version}",
            Publish,
            crate::versioning_api::delete_version,
        )
}

/// Who the request's key says the caller is: its id, label, role and model patterns.
async fn whoami(Authenticated(caller): Authenticated) -> Json<serde_json::Value> {
    Json(json!({
        "key_id": caller.key_id.as_deref(),
        "label": &*caller.label,
        "role": caller.role,
        "models": &*caller.models,
        "limits": caller.limits,
    }))
}

/// Every replica sharing this registry: address, binary version, last event applied, loaded
/// versions and state (`ready`, `not_ready`, or `gone` once its heartbeats stop).
async fn cluster(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<modelbay_runtime::ClusterView>, ApiError> {
    Ok(Json(state.runtime.cluster(&caller).await?))
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn list_models(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Response, ApiError> {
    let models = state.runtime.models(&caller).await?;
    Ok(Json(json!({ "models": models })).into_response())
}

async fn list_versions(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(model): Path<String>,
) -> Result<Response, ApiError> {
    let name = ModelName::new(&model)?;
    let versions = state.runtime.versions(&caller, &name).await?;
    Ok(Json(json!({ "model": name, "versions": versions })).into_response())
}

async fn show_version(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((model, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let name = ModelName::new(&model)?;
    let number = VersionRef::parse_number(&version)?;
    let record = state.runtime.version(&caller, &name, number).await?;
    Ok(Json(record).into_response())
}

/// Query parameters of a push: `format`, `description` and any number of `label=key=value`.
fn parse_push_query(query: Option<&str>) -> Result<PushRequest, ApiError> {
    let mut req = PushRequest::default();
    let mut labels = BTreeMap::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "format" => req.format = Some(value.parse::<ModelFormat>()?),
            "description" => req.description = value.into_owned(),
            "promote" => {
                req.promote = match value.as_ref() {
                    "true" | "1" | "" => true,
                    "false" | "0" => false,
                    other => {
                        return Err(ApiError::invalid(format!(
                            "promote '{}' must be true or false",
                            other.escape_default()
                        )))
                    }
                }
            }
            "label" => {
                let (k, v) = value.split_once('=').ok_or_else(|| {
                    ApiError::invalid(format!("label '{value}' must be written key=value"))
                })?;
                if labels.insert(k.to_owned(), v.to_owned()).is_some() {
                    return Err(ApiError::invalid(format!(
                        "label '{k}' is given more than once"
                    )));
                }
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown query parameter '{other}'; use format, description, label or promote"
                )))
            }
        }
    }
    req.labels = labels;
    Ok(req)
}

/// Streams the body into the registry's staging area (never whole in memory), validates it with
/// its engine and publishes it as the next version.
async fn push(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(model): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let name = ModelName::new(&model)?;
    let req = parse_push_query(query.as_deref())?;
    let limit = state.limits.max_upload_bytes;
    let declared: Option<u64> = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(modelbay_registry::Error::TooLarge { limit }.into());
    }
    let staged = state
        .runtime
        .stage_upload(&caller, &name, body.into_data_stream(), limit)
        .await?;
    let record = state.runtime.push(&caller, &name, staged, req).await?;
    Ok((StatusCode::CREATED, Json(record)).into_response())
}
