//! Open Inference Protocol v2 (KServe / Triton) over HTTP: health, metadata, readiness and
//! inference. Handlers only translate; every decision is a runtime operation.

pub(crate) mod codec;
mod config;
mod explain;
mod repository;

use axum::{
    body::Body,
    extract::{Path, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use modelbay_core::{parse_address, Access, ErrorCode, ModelName, VersionRef};
use serde::Deserialize;
use serde_json::json;

use crate::{
    access::Routes,
    auth::Authenticated,
    body::{self, read_limited},
    error::ApiError,
    observe::{served_by, ServedBy},
    routed::serve_routed,
    AppState,
};

/// Extensions of the protocol this server implements, as reported in server metadata.
pub(crate) const EXTENSIONS: &[&str] = &["binary_tensor_data", "model_repository"];

pub(crate) fn routes() -> Routes {
    use Access::*;
    Routes::default()
        .get("/v2", Metadata, server_metadata)
        .get("/v2/health/live", Open, live)
        .get("/v2/health/ready", Open, ready)
        .get("/v2/models/{model}", Metadata, model_metadata)
        .get("/v2/models/{model}/ready", Metadata, model_ready)
        .post("/v2/models/{model}/infer", Infer, infer)
        .get(
            "/v2/models/{model}/versions/{version}",
            Metadata,
            model_metadata,
        )
        .get(
            "/v2/models/{model}/versions/{version}/ready",
            Metadata,
            model_ready,
        )
        .post("/v2/models/{model}/versions/{version}/infer", Infer, infer)
        .post("/v2/models/{model}/explain", Infer, explain::explain)
        .post(
            "/v2/models/{model}/versions/{version}/explain",
            Infer,
            explain::explain,
        )
        .get("/v2/models/{model}/config", Metadata, config::model_config)
        .get(
            "/v2/models/{model}/versions/{version}/config",
            Metadata,
            config::model_config,
        )
        .post("/v2/repository/index", Metadata, repository::index)
        .post(
            "/v2/repository/models/{model}/load",
            Publish,
            repository::load,
        )
        .post(
            "/v2/repository/models/{model}/unload",
            Publish,
            repository::unload,
        )
}

#[derive(Deserialize)]
pub(super) struct ModelPath {
    model: String,
    version: Option<String>,
}

impl ModelPath {
    /// The model segment may carry `@version` or `@alias`; the `versions/{v}` segment takes a
    /// number or an alias. Giving both is ambiguous.
    pub(super) fn parse(&self) -> Result<(ModelName, VersionRef), ApiError> {
        Ok(parse_address(&self.model, self.version.as_deref())?)
    }
}

async fn live() -> Json<serde_json::Value> {
    Json(json!({ "live": true }))
}

/// Ready once the versions that aliases and policies reference are loaded.
async fn ready(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    if state.is_ready() {
        Ok(Json(json!({ "ready": true })))
    } else {
        Err(ApiError::new(
            ErrorCode::Unavailable,
            "not ready: starting (loading referenced model versions) or shutting down",
        ))
    }
}

async fn server_metadata() -> Json<serde_json::Value> {
    Json(json!({
        "name": "modelbay",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": EXTENSIONS,
    }))
}

async fn model_metadata(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(path): Path<ModelPath>,
) -> Result<Response, ApiError> {
    let (name, version) = path.parse()?;
    let meta = state.runtime.metadata(&caller, &name, &version).await?;
    let body = json!({
        "name": meta.name,
        "versions": meta.versions.iter().map(u32::to_string).collect::<Vec<_>>(),
        "platform": meta.platform,
        "inputs": meta.signature.inputs,
        "outputs": meta.signature.outputs,
    });
    Ok(served_by(
        Json(body).into_response(),
        ServedBy::version(meta.name, meta.version),
    ))
}

async fn model_ready(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(path): Path<ModelPath>,
) -> Result<Response, ApiError> {
    let (name, version) = path.parse()?;
    // A version that cannot load answers with its error's own status: 503 for a failed load
    // or warm-up, 500 (details only in the log) for a corrupt artifact.
    let number = state.runtime.ready(&caller, &name, &version).await?;
    let body = json!({ "name": name.as_str(), "version": number.to_string(), "ready": true });
    Ok(served_by(
        Json(body).into_response(),
        ServedBy::version(name.to_string(), number),
    ))
}

async fn infer(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(path): Path<ModelPath>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let address = path.parse()?;
    serve_routed(&state, &caller, address, &headers, async |routed| {
        infer_routed(&state, routed, &headers, body).await
    })
    .await
}

/// Decodes, runs and encodes a request already routed to a version.
async fn infer_routed(
    state: &AppState,
    routed: &modelbay_runtime::Routed,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let decoded = read_request(state, headers, body).await?;
    let response = state.runtime.infer(routed, decoded.request).await?;
    let encoded = codec::encode_response(&response, &decoded.encoding);
    let mut http = (StatusCode::OK, encoded.body).into_response();
    let headers = http.headers_mut();
    match encoded.header_length {
        Some(n) => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            headers.insert(codec::HEADER_LENGTH, HeaderValue::from(n));
        }
        None => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
    }
    Ok(http)
}

/// Reads a v2 request body: size limit, compression, JSON or the binary extension.
async fn read_request(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<codec::DecodedRequest, ApiError> {
    let encoding = body::Encoding::from_header(headers.get(header::CONTENT_ENCODING))?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let limit = state.limits.max_request_bytes;
    let bytes =
        body::decompress(encoding, read_limited(body, declared, limit).await?, limit).await?;
    let header_length = headers
        .get(codec::HEADER_LENGTH)
        .map(|v| {
            v.to_str()
                .map_err(|_| ApiError::invalid("Inference-Header-Content-Length is not text"))
        })
        .transpose()?;
    codec::decode_request(&bytes, header_length)
}

/// A v2 request body in JSON form (no binary extension), e.g. reference data rows.
pub(crate) fn decode_json_request(
    bytes: &bytes::Bytes,
) -> Result<modelbay_core::InferRequest, ApiError> {
    Ok(codec::decode_request(bytes, None)?.request)
}
