//! Every error answer is JSON: the few that axum's own extractors produce as plain text (a body
//! over the management limit, a path segment that is not valid percent-encoded UTF-8) are
//! rewritten here into the API's shape (OpenAI's under `/v1/`), keeping their status.

use axum::{
    body::Body,
    extract::Request,
    http::{header, HeaderValue},
    middleware::Next,
    response::{IntoResponse, Response},
};

/// Longest plain-text error body carried over.
const MAX_TEXT: usize = 4096;

pub(crate) async fn json_errors(request: Request, next: Next) -> Response {
    let openai = request.uri().path().starts_with("/v1/");
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, MAX_TEXT).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() || status.is_server_error() {
        status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
    } else {
        text
    };
    let body = if openai {
        serde_json::json!({ "error": {
            "message": message,
            "type": if status.is_server_error() { "server_error" } else { "invalid_request_error" },
            "param": null,
            "code": null,
        }})
    } else {
        serde_json::json!({ "error": message })
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let mut response = Response::from_parts(parts, Body::from(body.to_string()));
    // Keep extensions (the serving version) but nothing from the old body.
    response.headers_mut().remove(header::TRANSFER_ENCODING);
    response.into_response()
}
