//! The network edges of modelbay: the HTTP router with the Open Inference Protocol v2, the
//! OpenAI API for language models and the management API. Handlers parse, call one runtime operation and format; errors become HTTP
//! responses in one place ([`error`]).

mod body;
mod connections;
pub mod error;
pub mod grpc;
mod management;
mod monitoring_api;
mod observe;
mod openai;
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

pub use error::ApiError;

/// Size limits on what clients may send.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest inference request body (413 beyond).
    pub max_request_bytes: usize,
    /// Largest model upload (413 beyond).
    pub max_upload_bytes: u64,
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub runtime: Runtime,
    pub limits: Limits,
    /// Set once startup loading is done; `/v2/health/ready` answers 503 until then.
    pub ready: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Write inference request bodies to the log (off by default: payloads can hold personal
    /// data).
    pub log_payloads: bool,
}

impl AppState {
    fn is_ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let payloads = state.log_payloads.then_some(state.limits.max_request_bytes);
    let metrics = state.runtime.metrics().clone();
    let mut app = Router::new()
        .route("/metrics", axum::routing::get(observe::metrics))
        .merge(v2::routes())
        .merge(openai::routes())
        .merge(management::routes())
        .merge(versioning_api::routes())
        .merge(monitoring_api::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state);
    if let Some(limit) = payloads {
        app = app.layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                observe::log_payload(limit, request, next)
            },
        ));
    }
    app.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            observe::log_request(metrics.clone(), request, next)
        },
    ))
    .layer(TraceLayer::new_for_http().make_span_with(observe::request_span))
    .layer(PropagateRequestIdLayer::x_request_id())
    .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
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
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = connections::CountingListener {
        inner: listener,
        metrics: state.runtime.metrics().clone(),
    };
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
