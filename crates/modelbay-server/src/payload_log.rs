//! `--log-payloads`: the opt-in log of inference request bodies, with `--redact-fields` for
//! the JSON fields and v2 inputs an operator must never see even then.

use std::sync::Arc;

use axum::{body::Body, extract::Request, middleware::Next, response::IntoResponse};
use serde_json::Value;

/// Most bytes of a payload written to the log; the rest is elided.
const MAX_LOGGED_PAYLOAD: usize = 64 << 10;

/// What replaces a redacted value.
const REDACTED: &str = "[redacted]";

/// How request bodies are written to the log (target `modelbay::payload`).
#[derive(Clone, Debug, Default)]
pub struct PayloadLog {
    /// Names of JSON fields (at any depth) and of v2 inputs whose values are replaced.
    redact: Arc<[String]>,
}

impl PayloadLog {
    /// A payload log that redacts `fields`: any JSON object member with one of these names,
    /// and the `data` of any object whose `name` is one of them (a v2 input or output).
    pub fn new(fields: Vec<String>) -> Self {
        Self {
            redact: fields.into(),
        }
    }

    /// The text logged for a body sent with `encoding` (`None` when not compressed).
    fn render(&self, bytes: &[u8], encoding: Option<&str>) -> String {
        if let Some(encoding) = encoding {
            return format!("<{} bytes, {encoding}>", bytes.len());
        }
        if self.redact.is_empty() {
            return elide(String::from_utf8_lossy(bytes).into_owned());
        }
        // Redaction needs the structure; a body that is not JSON is shown by size only, since
        // nothing in it could be told apart.
        match serde_json::from_slice::<Value>(bytes) {
            Ok(mut value) => {
                self.redact_in(&mut value);
                elide(value.to_string())
            }
            Err(_) => format!("<{} bytes, not JSON>", bytes.len()),
        }
    }

    fn is_redacted(&self, name: &str) -> bool {
        self.redact.iter().any(|field| field == name)
    }

    fn redact_in(&self, value: &mut Value) {
        match value {
            Value::Object(members) => {
                let named = members
                    .get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|name| self.is_redacted(name));
                for (key, member) in members.iter_mut() {
                    if self.is_redacted(key) || (named && key == "data") {
                        *member = Value::String(REDACTED.to_owned());
                    } else {
                        self.redact_in(member);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| self.redact_in(item)),
            _ => {}
        }
    }
}

/// Cuts `text` to at most [`MAX_LOGGED_PAYLOAD`] bytes on a character boundary.
fn elide(mut text: String) -> String {
    if text.len() > MAX_LOGGED_PAYLOAD {
        let mut end = MAX_LOGGED_PAYLOAD;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// Whether a request carries an inference payload (v2 infer, the OpenAI endpoints).
fn is_inference(method: &axum::http::Method, path: &str) -> bool {
    method == axum::http::Method::POST
        && ((path.starts_with("/v2/models/") && path.ends_with("/infer"))
            || path.starts_with("/v1/"))
}

/// Logs the body of every inference request (compressed bodies by size only), tagged with the
/// request id, before it is handled. Bodies are read up to `limit` bytes.
pub(crate) async fn log_payload(
    log: PayloadLog,
    limit: usize,
    request: Request,
    next: Next,
) -> axum::response::Response {
    if !is_inference(request.method(), request.uri().path()) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return crate::ApiError::new(
                modelbay_core::ErrorCode::PayloadTooLarge,
                format!("the request body could not be read whole within {limit} bytes"),
            )
            .into_response()
        }
    };
    let header = |name| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let request_id = header("x-request-id").unwrap_or_default();
    let encoding = header("content-encoding").filter(|e| *e != "identity");
    tracing::info!(
        target: "modelbay::payload",
        request_id,
        path = parts.uri.path(),
        bytes = bytes.len(),
        body = %log.render(&bytes, encoding),
        "request payload"
    );
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_redaction_the_body_is_logged_as_sent_up_to_64_kib() {
        let log = PayloadLog::default();
        assert_eq!(log.render(br#"{"a": 1}"#, None), r#"{"a": 1}"#);
        assert_eq!(log.render(b"xyz", Some("gzip")), "<3 bytes, gzip>");
        let long = "é".repeat(MAX_LOGGED_PAYLOAD);
        let shown = log.render(long.as_bytes(), None);
        assert!(shown.len() <= MAX_LOGGED_PAYLOAD + '…'.len_utf8());
        assert!(shown.ends_with("é…"), "cut on a character boundary");
    }

    #[test]
    fn named_fields_and_inputs_are_redacted_at_any_depth() {
        let log = PayloadLog::new(vec!["ssn".into(), "content".into(), "income".into()]);
        let body = serde_json::json!({
            "ssn": "123-45-6789",
            "messages": [{"role": "user", "content": "my card is 4111"}],
            "inputs": [
                {"name": "income", "datatype": "FP32", "shape": [1], "data": [91000.5]},
                {"name": "age", "datatype": "FP32", "shape": [1], "data": [42]}
            ]
        });
        let shown: Value =
            serde_json::from_str(&log.render(body.to_string().as_bytes(), None)).unwrap();
        assert_eq!(shown["ssn"], REDACTED);
        assert_eq!(shown["messages"][0]["content"], REDACTED);
        assert_eq!(shown["messages"][0]["role"], "user");
        assert_eq!(shown["inputs"][0]["data"], REDACTED);
        assert_eq!(shown["inputs"][0]["name"], "income");
        assert_eq!(shown["inputs"][1]["data"], serde_json::json!([42]));
    }

    #[test]
    fn a_body_that_is_not_json_is_logged_by_size_when_redacting() {
        let log = PayloadLog::new(vec!["ssn".into()]);
        assert_eq!(log.render(b"ssn=123-45-6789", None), "<15 bytes, not JSON>");
    }
}
