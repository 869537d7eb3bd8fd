//! Version control under `/api/v1`: aliases (promote, rollback, remove), routing policies,
//! shadow reports, archiving and deleting versions, and the event log.

use axum::{
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use modelbay_core::{Access, ModelName, RoutingPolicy, VersionRef};
use serde::Deserialize;
use serde_json::json;

use crate::{access::Routes, auth::Authenticated, error::ApiError, AppState};

pub(crate) fn routes() -> Routes {
    use Access::*;
    const ALIAS: &str = "/api/v1/models/{model}/aliases/{alias}";
    const POLICY: &str = "/api/v1/models/{model}/policy";
    Routes::default()
        .get("/api/v1/models/{model}/aliases", Inspect, list_aliases)
        .get(ALIAS, Inspect, show_alias)
        .put(ALIAS, Publish, promote)
        .delete(ALIAS, Publish, delete_alias)
        .post(
            "/api/v1/models/{model}/aliases/{alias}/rollback",
            Publish,
            rollback,
        )
        .get(POLICY, Inspect, show_policy)
        .put(POLICY, Publish, set_policy)
        .delete(POLICY, Publish, delete_policy)
        .get("/api/v1/models/{model}/shadow", Inspect, shadow)
        .post(
            "/api/v1/models/{model}/versions/{version}/archive",
            Publish,
            archive,
        )
        .get("/api/v1/events", Inspect, events)
}

/// Parses a JSON body with our own error message instead of axum's plain-text rejection.
fn json_body<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| crate::json_error::invalid_json("JSON body", &e))
}

async fn list_aliases(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(model): Path<String>,
) -> Result<Response, ApiError> {
    let name = ModelName::new(&model)?;
    let aliases = state.runtime.aliases(&caller, &name).await?;
    Ok(Json(json!({ "model": name, "aliases": aliases })).into_response())
}

async fn show_alias(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((model, alias)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let record = state
        .runtime
        .alias(&caller, &ModelName::new(&model)?, &alias)
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
    Authenticated(caller): Authenticated,
    Path((model, alias)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let name = ModelName::new(&model)?;
    let PromoteBody { version } = json_body(&body)?;
    let record = state
        .runtime
        .promote(&caller, &name, &alias, version)
        .await?;
    Ok(Json(record).into_response())
}

async fn rollback(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((model, alias)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let record = state
        .runtime
        .rollback(&caller, &ModelName::new(&model)?, &alias)
        .await?;
    Ok(Json(record).into_response())
}

async fn delete_alias(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((model, alias)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    state
        .runtime
        .delete_alias(&caller, &ModelName::new(&model)?, &alias)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn show_policy(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(model): Path<String>,
) -> Result<Response, ApiError> {
    let name = ModelName::new(&model)?;
    let policy = state.runtime.policy(&caller, &name).await?;
    Ok(Json(json!({ "model": name, "policy": policy })).into_response())
}

async fn set_policy(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(model): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let name = ModelName::new(&model)?;
    let policy: RoutingPolicy = json_body(&body)?;
    state
        .runtime
        .set_policy(&caller, &name, Some(policy.clone()))
        .await?;
    Ok(Json(json!({ "model": name, "policy": policy })).into_response())
}

async fn delete_policy(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(model): Path<String>,
) -> Result<Response, ApiError> {
    state
        .runtime
        .set_policy(&caller, &ModelName::new(&model)?, None)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn shadow(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(model): Path<String>,
) -> Result<Response, ApiError> {
    let name = ModelName::new(&model)?;
    let report = state.runtime.shadow_report(&caller, &name).await?;
    Ok(Json(json!({ "model": name, "shadow": report })).into_response())
}

async fn archive(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((model, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let name = ModelName::new(&model)?;
    let number = VersionRef::parse_number(&version)?;
    state
        .runtime
        .retire_version(&caller, &name, number, false)
        .await?;
    Ok(Json(state.runtime.version(&caller, &name, number).await?).into_response())
}

/// Deletes a version (`DELETE /api/v1/models/{m}/versions/{v}`).
pub async fn delete_version(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((model, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let name = ModelName::new(&model)?;
    let number = VersionRef::parse_number(&version)?;
    state
        .runtime
        .retire_version(&caller, &name, number, true)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn events(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let (mut model, mut since, mut limit) = (None, 0i64, modelbay_registry::MAX_EVENTS_PAGE);
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "model" => model = Some(ModelName::new(&value)?),
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
        .events(&caller, model.as_ref(), since, limit)
        .await?;
    Ok(Json(json!({ "events": events })).into_response())
}
