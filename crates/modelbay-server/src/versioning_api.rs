//! Version control under `/api/v1`: aliases (promote, rollback, remove), routing policies,
//! shadow reports, archiving and deleting versions, and the event log.

use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post, put},
    Json, Router,
};
use modelbay_core::{ModelName, RoutingPolicy, VersionRef};
use serde::Deserialize;
use serde_json::json;

use crate::{error::ApiError, AppState};

/// Who made a change (API keys will name the caller; until then every change is `local`).
const ACTOR: &str = "local";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/models/{model}/aliases", get(list_aliases))
        .route(
            "/api/v1/models/{model}/aliases/{alias}",
            put(promote).delete(delete_alias).get(show_alias),
        )
        .route(
            "/api/v1/models/{model}/aliases/{alias}/rollback",
            post(rollback),
        )
        .route(
            "/api/v1/models/{model}/policy",
            get(show_policy).put(set_policy).delete(delete_policy),
        )
        .route("/api/v1/models/{model}/shadow", get(shadow))
        .route(
            "/api/v1/models/{model}/versions/{version}/archive",
            post(archive),
        )
        .route("/api/v1/events", get(events))
}

/// Parses a JSON body with our own error message instead of axum's plain-text rejection.
fn json_body<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))
}

async fn list_aliases(
    State(state): State<AppState>,
    Path(model): Path<String>,
) -> Result<Response, ApiError> {
    let name = ModelName::new(&model)?;
    let aliases = state.runtime.registry().aliases(Some(&name)).await?;
    if aliases.is_empty() {
        state.runtime.registry().versions(&name).await?; // 404 for an unknown model
    }
    Ok(Json(json!({ "model": name, "aliases": aliases })).into_response())
}

async fn show_alias(
    State(state): State<AppState>,
    Path((model, alias)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let record = state
        .runtime
        .alias(&ModelName::new(&model)?, &alias)
        .await?;
    Ok(Json(record).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromoteBody {
    version: u32,
}

async fn promote(
    State(state): State<AppState>,
    Path((model, alias)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let name = ModelName::new(&model)?;
    let PromoteBody { version } = json_body(&body)?;
    let record = state.runtime.promote(&name, &alias, version, ACTOR).await?;
    Ok(Json(record).into_response())
}

async fn rollback(
    State(state): State<AppState>,
    Path((model, alias)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let record = state
        .runtime
        .rollback(&ModelName::new(&model)?, &alias, ACTOR)
        .await?;
    Ok(Json(record).into_response())
}

async fn delete_alias(
    State(state): State<AppState>,
    Path((model, alias)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    state
        .runtime
        .delete_alias(&ModelName::new(&model)?, &alias, ACTOR)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn show_policy(
    State(state): State<AppState>,
    Path(model): Path<String>,
) -> Result<Response, ApiError> {
    let name = ModelName::new(&model)?;
    state.runtime.registry().versions(&name).await?;
    let policy = state.runtime.registry().policy(&name).await?;
    Ok(Json(json!({ "model": name, "policy": policy })).into_response())
}

async fn set_policy(
    State(state): State<AppState>,
    Path(model): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let name = ModelName::new(&model)?;
    let policy: RoutingPolicy = json_body(&body)?;
    state
        .runtime
        .set_policy(&name, Some(policy.clone()), ACTOR)
        .await?;
    Ok(Json(json!({ "model": name, "policy": policy })).into_response())
}

async fn delete_policy(
    State(state): State<AppState>,
    Path(model): Path<String>,
) -> Result<Response, ApiError> {
    state
        .runtime
        .set_policy(&ModelName::new(&model)?, None, ACTOR)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn shadow(
    State(state): State<AppState>,
    Path(model): Path<String>,
) -> Result<Response, ApiError> {
    let name = ModelName::new(&model)?;
    let report = state.runtime.shadow_report(&name).await?;
    Ok(Json(json!({ "model": name, "shadow": report })).into_response())
}

async fn archive(
    State(state): State<AppState>,
    Path((model, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let name = ModelName::new(&model)?;
    let number = VersionRef::parse_number(&version)?;
    state
        .runtime
        .retire_version(&name, number, false, ACTOR)
        .await?;
    Ok(Json(state.runtime.registry().version(&name, number).await?).into_response())
}

/// Deletes a version (`DELETE /api/v1/models/{m}/versions/{v}`).
pub async fn delete_version(
    State(state): State<AppState>,
    Path((model, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let name = ModelName::new(&model)?;
    let number = VersionRef::parse_number(&version)?;
    state
        .runtime
        .retire_version(&name, number, true, ACTOR)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn events(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let (mut model, mut since, mut limit) = (None, 0i64, modelbay_registry::MAX_EVENTS_PAGE);
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "model" => model = Some(ModelName::new(&value)?.to_string()),
            "since" => {
                since = value.parse().map_err(|_| {
                    ApiError::invalid(format!("since '{value}' is not an event sequence number"))
                })?
            }
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=modelbay_registry::MAX_EVENTS_PAGE).contains(n))
                    .ok_or_else(|| {
                        ApiError::invalid(format!(
                            "limit must be 1 to {}",
                            modelbay_registry::MAX_EVENTS_PAGE
                        ))
                    })?
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown query parameter '{other}'; use model, since or limit"
                )))
            }
        }
    }
    let events = state
        .runtime
        .registry()
        .events(model.as_deref(), since, limit)
        .await?;
    Ok(Json(json!({ "events": events })).into_response())
}
