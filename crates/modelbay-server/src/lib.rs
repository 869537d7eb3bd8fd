//! The network edges of modelbay: the HTTP router with the Open Inference Protocol v2, the
//! OpenAI API for language models and the management API. Handlers parse, call one runtime operation and format; errors become HTTP
//! responses in one place ([`error`]).

pub mod access;
mod auth;
mod body;
mod console;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod grpc;
mod guarded_body;
mod json_error;
mod keys_api;
pub mod listen;
mod management;
mod monitoring_api;
mod observe;
mod openai;
mod payload_log;
mod rejections;
mod routed;
mod v2;
mod versioning_api;

use axum::{
    http::{Method, Uri},
    Router,
};
use modelbay_runtime::Runtime;
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

pub use auth::AuthMode;
pub use error::ApiError;
pub use guarded_body::BodyLimits;
pub use payload_log::PayloadLog;

/// Size limits on what clients may send.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest inference request body (413 beyond).
    pub max_request_bytes: usize,
    /// Largest model upload (413 beyond).
    pub max_upload_bytes: u64,
    /// Timeouts of request bodies and the budget of bytes they may hold.
    pub body: BodyLimits,
}

/// What every handler can reach. Cloned several times per request (the access guard, the
/// handler's extractor), so a clone is one reference count, not one per part: the parts hold
/// dozens of `Arc`s, and bumping each on every request bounced their cache lines between cores.
#[derive(Clone)]
pub struct AppState(std::sync::Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(std::sync::Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct Shared {
    pub runtime: Runtime,
    pub limits: Limits,
    /// Set once startup loading is done, cleared again on SIGTERM; `/v2/health/ready` answers
    /// 503 while it is false.
    pub ready: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Write inference request bodies to the log (`None`, the default: payloads can hold
    /// personal data).
    pub payload_log: Option<PayloadLog>,
    /// Whether requests need an API key.
    pub auth: AuthMode,
}

impl Shared {
    fn is_ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// Every route of the HTTP API, each with its access rule.
fn routes() -> access::Routes {
    access::Routes::default()
        .get("/metrics", modelbay_core::Access::Inspect, observe::metrics)
        .merge(v2::routes())
        .merge(openai::routes())
        .merge(management::routes())
        .merge(versioning_api::routes())
        .merge(monitoring_api::routes())
        .merge(keys_api::routes())
        .merge(console::routes())
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let payloads = state.payload_log.clone();
    let limit = state.limits.max_request_bytes;
    let metrics = state.runtime.metrics().clone();
    let body_limits = state.limits.body.clone();
    let mut app = routes()
        .into_router(&state)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state);
    if let Some(log) = payloads {
        app = app.layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                payload_log::log_payload(log.clone(), limit, request, next)
            },
        ));
    }
    app.layer(axum::middleware::from_fn(rejections::json_errors))
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                guarded_body::guard_body(body_limits.clone(), request, next)
            },
        ))
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                observe::log_request(metrics.clone(), request, next)
            },
        ))
        .layer(TraceLayer::new_for_http().make_span_with(observe::request_span))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        // A client's request id is kept only when it is short and printable; otherwise a new one
        // is made, so the log and the response headers never carry arbitrary client text.
        .layer(axum::middleware::from_fn(observe::drop_unusable_request_id))
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    let body = serde_json::json!({ "error": format!("{method} is not allowed on {}", uri.path()) });
    (axum::http::StatusCode::METHOD_NOT_ALLOWED, axum::Json(body)).into_response()
}

/// Serves `state` on `listener` until `shutdown` completes, then lets in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    options: listen::ConnectionOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let metrics = state.runtime.metrics().clone();
    listen::serve_http(listener, router(state), options, metrics, shutdown).await
}

/// Serves only `/metrics`, with no key, on a listener of its own (`--metrics-listen`: for a
/// Prometheus inside the cluster, on an address clients cannot reach).
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    state: AppState,
    options: listen::ConnectionOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let metrics = state.runtime.metrics().clone();
    let app = Router::new()
        .route(
            "/metrics",
            axum::routing::get(
                |axum::extract::State(state): axum::extract::State<AppState>| {
                    observe::render_metrics(state)
                },
            ),
        )
        .fallback(not_found)
        .with_state(state);
    listen::serve_http(listener, app, options, metrics, shutdown).await
}
