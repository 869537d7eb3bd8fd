//! The one place where errors become HTTP responses.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use modelbay_core::ErrorCode;

use crate::observe::ServedBy;

/// An error on its way to a client: a catalogue code and a message a person can act on.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
    /// The version the request had been routed to, for the request log and the metrics.
    served: Option<ServedBy>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            served: None,
        }
    }

    /// Attributes the error to the version the request had been routed to.
    pub(crate) fn served_by(mut self, served: ServedBy) -> Self {
        self.served = Some(served);
        self
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArgument, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// HTTP status for each catalogue code. Exhaustive on purpose: a new code must choose one.
pub fn http_status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UnsupportedFormat => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::Overloaded | ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::DataCorruption | ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// gRPC status for each catalogue code. Exhaustive on purpose, like [`http_status`].
pub fn grpc_code(code: ErrorCode) -> tonic::Code {
    match code {
        ErrorCode::InvalidArgument | ErrorCode::UnsupportedFormat => tonic::Code::InvalidArgument,
        ErrorCode::NotFound => tonic::Code::NotFound,
        ErrorCode::Conflict => tonic::Code::FailedPrecondition,
        ErrorCode::Unauthenticated => tonic::Code::Unauthenticated,
        ErrorCode::PermissionDenied => tonic::Code::PermissionDenied,
        ErrorCode::RequestTimeout => tonic::Code::DeadlineExceeded,
        ErrorCode::PayloadTooLarge | ErrorCode::RateLimited => tonic::Code::ResourceExhausted,
        // A full queue is transient: gRPC clients retry UNAVAILABLE.
        ErrorCode::Overloaded | ErrorCode::Unavailable => tonic::Code::Unavailable,
        ErrorCode::DataCorruption | ErrorCode::Internal => tonic::Code::Internal,
    }
}

/// Longest error message sent in gRPC trailers (clients limit metadata size); the rest is cut.
const MAX_GRPC_MESSAGE: usize = 1024;

impl From<ApiError> for tonic::Status {
    fn from(e: ApiError) -> Self {
        let (_, code, mut message, _) = e.public();
        if message.len() > MAX_GRPC_MESSAGE {
            let mut end = MAX_GRPC_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        tonic::Status::new(grpc_code(code), message)
    }
}

impl ApiError {
    /// The catalogue code, for the gRPC layer's metrics.
    pub(crate) fn code(&self) -> ErrorCode {
        self.code
    }
}

/// Whether the client should retry after a pause (sent with `Retry-After`).
fn retry_later(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::Overloaded | ErrorCode::RateLimited | ErrorCode::Unavailable
    )
}

/// Directories whose paths never reach a client (the data directory): set once at startup.
static PRIVATE_DIRS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// Names the directories whose paths error messages must not show; each is replaced by
/// `<data-dir>` in every message a client gets.
pub fn hide_paths_under(dirs: Vec<std::path::PathBuf>) {
    let mut shown: Vec<String> = Vec::new();
    for dir in dirs {
        shown.push(dir.display().to_string());
        if let Ok(real) = dir.canonicalize() {
            shown.push(real.display().to_string());
        }
    }
    // Longest first, so a path is replaced whole rather than by a prefix of it.
    shown.sort_by_key(|p| std::cmp::Reverse(p.len()));
    shown.retain(|p| !p.is_empty() && p != "/" && p != ".");
    let _ = PRIVATE_DIRS.set(shown);
}

fn without_private_paths(mut message: String) -> String {
    for dir in PRIVATE_DIRS.get().into_iter().flatten() {
        if message.contains(dir.as_str()) {
            message = message.replace(dir.as_str(), "<data-dir>");
        }
    }
    message
}

impl ApiError {
    /// The status and the message a client may see: 5xx bodies carry no internals, except
    /// for capacity and availability, which the client can act on; no message shows a path
    /// under the data directory.
    fn public(self) -> (StatusCode, ErrorCode, String, Option<ServedBy>) {
        let status = http_status(self.code);
        let message = if status.is_server_error()
            && self.code != ErrorCode::Overloaded
            && self.code != ErrorCode::Unavailable
        {
            // The cause stays in the log; the client gets no internals.
            tracing::error!(code = %self.code, error = %self.message, "request failed");
            "internal error; the server log has the details (look up this response's x-request-id)"
                .to_owned()
        } else {
            without_private_paths(self.message)
        };
        (status, self.code, message, self.served)
    }

    /// The same error in the OpenAI API's shape.
    pub fn openai(self) -> OpenAiError {
        OpenAiError(self)
    }
}

/// Adds `Retry-After` where the client should retry, and the serving version for the log.
fn finish(mut response: Response, code: ErrorCode, served: Option<ServedBy>) -> Response {
    if retry_later(code) {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    if code == ErrorCode::Unauthenticated {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"modelbay\""),
        );
    }
    if let Some(served) = served {
        response.extensions_mut().insert(served);
    }
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message, served) = self.public();
        let response = (status, Json(serde_json::json!({ "error": message }))).into_response();
        finish(response, code, served)
    }
}

impl OpenAiError {
    /// Attributes the error to the version the request had been routed to.
    pub(crate) fn served_by(self, served: ServedBy) -> Self {
        Self(self.0.served_by(served))
    }
}

/// An error rendered as the OpenAI API does: `{"error": {"message", "type", "param", "code"}}`,
/// so that OpenAI clients raise their usual exceptions.
#[derive(Debug)]
pub struct OpenAiError(ApiError);

impl From<ApiError> for OpenAiError {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let (status, code, message, served) = self.0.public();
        let kind = match code {
            ErrorCode::RateLimited | ErrorCode::Overloaded => "rate_limit_error",
            ErrorCode::Unauthenticated => "authentication_error",
            ErrorCode::PermissionDenied => "permission_error",
            _ if status.is_server_error() => "server_error",
            ErrorCode::NotFound => "not_found_error",
            _ => "invalid_request_error",
        };
        let code_name = match code {
            ErrorCode::NotFound => "model_not_found",
            ErrorCode::Unauthenticated => "invalid_api_key",
            ErrorCode::RateLimited => "rate_limit_exceeded",
            other => other.as_str(),
        };
        let body = serde_json::json!({
            "error": { "message": message, "type": kind, "param": null, "code": code_name }
        });
        finish((status, Json(body)).into_response(), code, served)
    }
}

macro_rules! from_layer_error {
    ($($t:ty),*) => {$(
        impl From<$t> for ApiError {
            fn from(e: $t) -> Self {
                Self::new(e.code(), e.to_string())
            }
        }

        impl From<$t> for OpenAiError {
            fn from(e: $t) -> Self {
                Self(e.into())
            }
        }
    )*};
}
from_layer_error!(
    modelbay_core::Error,
    modelbay_registry::Error,
    modelbay_runtime::Error
);
