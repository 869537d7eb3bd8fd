//! One log line per request: its id (the client's `x-request-id`, or the one generated for it),
//! method, path, status, latency and, once the request was routed, the model, version and alias
//! that served it. Bodies are never logged.

use std::time::Instant;

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderValue, Response, StatusCode},
    middleware::Next,
    response::IntoResponse,
};
use modelbay_runtime::{Metrics, Outcome, RequestLabels};

use crate::{ApiError, AppState};

/// Which version answered a request; handlers attach it to their response (it is not sent).
#[derive(Debug, Clone)]
pub(crate) struct ServedBy {
    pub model: String,
    pub version: u32,
    pub alias: Option<String>,
}

impl ServedBy {
    /// A version addressed directly (metadata, readiness, configuration): no alias.
    pub(crate) fn version(model: impl Into<String>, version: u32) -> Self {
        Self {
            model: model.into(),
            version,
            alias: None,
        }
    }
}

/// Response header naming the version that served a request.
const VERSION_HEADER: &str = "x-modelbay-model-version";

/// Response header naming the alias a request was routed through, when there was one.
const ALIAS_HEADER: &str = "x-modelbay-alias";

/// Names the version (and alias) that answered: in response headers for the client, and in a
/// response extension for the request log.
pub(crate) fn served_by<B>(mut response: Response<B>, served: ServedBy) -> Response<B> {
    let headers = response.headers_mut();
    headers.insert(VERSION_HEADER, HeaderValue::from(served.version));
    if let Some(alias) = &served.alias {
        if let Ok(value) = HeaderValue::from_str(alias) {
            headers.insert(ALIAS_HEADER, value);
        }
    }
    response.extensions_mut().insert(served);
    response
}

/// The endpoint an inference request is counted under; `None` for everything else.
fn endpoint(method: &axum::http::Method, path: &str) -> Option<&'static str> {
    if method != axum::http::Method::POST {
        return None;
    }
    match path {
        "/v1/chat/completions" => Some("chat_completions"),
        "/v1/completions" => Some("completions"),
        "/v1/embeddings" => Some("embeddings"),
        _ if path.starts_with("/v2/models/") && path.ends_with("/infer") => Some("infer"),
        _ if path.starts_with("/v2/models/") && path.ends_with("/explain") => Some("explain"),
        _ => None,
    }
}

/// How a response counts: a refusal for capacity (429, or 503 with `Retry-After`) is
/// `rejected`, not a server error.
fn outcome<B>(response: &Response<B>) -> Outcome {
    let status = response.status();
    let retry = response
        .headers()
        .contains_key(axum::http::header::RETRY_AFTER);
    if status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::SERVICE_UNAVAILABLE && retry)
    {
        Outcome::Rejected
    } else if status.is_server_error() {
        Outcome::ServerError
    } else if status.is_client_error() {
        Outcome::ClientError
    } else {
        Outcome::Success
    }
}

/// `GET /metrics`: the Prometheus text format; 404 when metrics are disabled.
pub(crate) async fn metrics(
    State(state): State<AppState>,
    crate::auth::Authenticated(caller): crate::auth::Authenticated,
) -> Result<Response<Body>, ApiError> {
    // Metrics name every model: keys limited to some models cannot read them.
    caller.require_unscoped(modelbay_core::Access::Inspect)?;
    render_metrics(state).await
}

/// The metrics text, for `/metrics` here and on the `--metrics-listen` listener.
pub(crate) async fn render_metrics(state: AppState) -> Result<Response<Body>, ApiError> {
    if !state.runtime.metrics().is_enabled() {
        return Err(ApiError::not_found(
            "metrics are disabled on this server (--metrics false)",
        ));
    }
    let runtime = state.runtime.clone();
    let text = tokio::task::spawn_blocking(move || runtime.render_metrics())
        .await
        .map_err(|e| ApiError::new(modelbay_core::ErrorCode::Internal, e.to_string()))?;
    let mut response = Response::new(Body::from(text));
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

/// Longest client request id kept.
const MAX_REQUEST_ID: usize = 128;

/// Whether a client's `x-request-id` may be used as it is: 1 to 128 characters of letters,
/// digits and `-_.:`.
fn usable_request_id(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= MAX_REQUEST_ID
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Removes an `x-request-id` that is not [`usable_request_id`] (a new one is generated).
pub(crate) async fn drop_unusable_request_id(
    mut request: Request,
    next: Next,
) -> axum::response::Response {
    let unusable = request
        .headers()
        .get_all("x-request-id")
        .iter()
        .any(|v| !usable_request_id(v.as_bytes()))
        || request.headers().get_all("x-request-id").iter().count() > 1;
    if unusable {
        request.headers_mut().remove("x-request-id");
    }
    next.run(request).await
}

/// The span every request runs in (exported as a trace when OTLP export is on): method, path
/// (never the query) and request id.
pub(crate) fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = request.uri().path(),
        request_id,
    )
}

/// The request-log and request-metrics middleware.
pub(crate) async fn log_request(
    metrics: Metrics,
    request: Request,
    next: Next,
) -> impl IntoResponse {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let response = next.run(request).await;
    let latency_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    let status = response.status().as_u16();
    let served = response.extensions().get::<ServedBy>();
    let model = served.map(|s| s.model.as_str()).unwrap_or_default();
    let version = served.map(|s| s.version);
    let alias = served.and_then(|s| s.alias.as_deref()).unwrap_or_default();
    if let Some(endpoint) = endpoint(&method, &path) {
        let version = version.map(|v| v.to_string()).unwrap_or_default();
        metrics.record_request(
            RequestLabels {
                protocol: "http",
                endpoint,
                model,
                version: &version,
                alias,
            },
            outcome(&response),
            started.elapsed(),
        );
    }
    if path.starts_with("/v2/health/") {
        // Probes arrive every few seconds; they are not worth a line each.
        tracing::debug!(target: "modelbay::request", request_id, %method, path, status, latency_ms, "request");
    } else {
        tracing::info!(
            target: "modelbay::request",
            request_id,
            %method,
            path,
            status,
            latency_ms,
            model,
            version,
            alias,
            "request"
        );
    }
    response
}
