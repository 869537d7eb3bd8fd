//! The request log: one JSON line per request with its id, status, latency and the version that
//! served it; never the payload.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::TestServer;

/// The `modelbay::request` lines of the log, as JSON.
fn request_lines(server: &TestServer) -> Vec<Value> {
    server
        .log()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "modelbay::request")
        .collect()
}

async fn post_with_id(
    server: &TestServer,
    path: &str,
    id: &str,
    body: &Value,
) -> reqwest::Response {
    server
        .http
        .post(server.url(path))
        .header("x-request-id", id)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_request_is_logged_with_its_id_version_status_and_latency() {
    let server = TestServer::start_logging(&["--log-format", "json"]).await;
    assert_eq!(server.push("bc", "breast_cancer_lr.onnx").await.0, 201);
    server.promote("bc", 1).await;
    // A distinctive input value, to show that payloads stay out of the log.
    let mut row = vec![0.0; 30];
    row[0] = 98765.43;
    let body =
        json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 30], "data": row}]});
    let response = post_with_id(&server, "/v2/models/bc/infer", "req-served", &body).await;
    assert_eq!(response.headers()["x-request-id"], "req-served");
    assert_eq!(response.status(), 200);
    let missing = post_with_id(&server, "/v2/models/nope/infer", "req-missing", &body).await;
    assert_eq!(missing.status(), 404);
    let generated = server
        .http
        .get(server.url("/api/v1/models"))
        .send()
        .await
        .unwrap();
    let generated_id = generated.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(!generated_id.is_empty());

    let mut lines = Vec::new();
    for _ in 0..50 {
        lines = request_lines(&server);
        if lines
            .iter()
            .any(|l| l["fields"]["request_id"] == generated_id.as_str())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let find = |id: &str| -> Value {
        lines
            .iter()
            .find(|l| l["fields"]["request_id"] == id)
            .unwrap_or_else(|| panic!("no request line for {id} in {lines:?}"))
            .clone()
    };
    let served = &find("req-served")["fields"];
    assert_eq!(served["status"], 200);
    assert_eq!(served["method"], "POST");
    assert_eq!(served["path"], "/v2/models/bc/infer");
    assert_eq!(served["model"], "bc");
    assert_eq!(served["version"], 1);
    assert_eq!(served["alias"], "production");
    assert!(served["latency_ms"].as_f64().unwrap() > 0.0, "{served}");
    let missing = &find("req-missing")["fields"];
    assert_eq!(missing["status"], 404);
    assert_eq!(missing["model"], "", "an unknown model is not a label");
    assert_eq!(find(&generated_id)["fields"]["status"], 200);
    assert!(
        !server.log().contains("98765"),
        "the request payload reached the log"
    );
}

#[tokio::test]
async fn payloads_are_logged_only_when_asked_for() {
    let server = TestServer::start_logging(&["--log-format", "json", "--log-payloads"]).await;
    assert_eq!(server.push("bc", "breast_cancer_lr.onnx").await.0, 201);
    let mut row = vec![0.0; 30];
    row[0] = 24680.5;
    let body =
        json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 30], "data": row}]});
    let response = post_with_id(&server, "/v2/models/bc/infer", "req-payload", &body).await;
    assert_eq!(
        response.status(),
        200,
        "the logged body still reaches the handler"
    );
    let payload = payload_line(&server, "req-payload").await;
    assert!(
        payload["fields"]["body"]
            .as_str()
            .unwrap()
            .contains("24680.5"),
        "{payload}"
    );
    // Management calls (model uploads) are not inference payloads.
    let logged_paths: Vec<Value> = server
        .log()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "modelbay::payload")
        .map(|line| line["fields"]["path"].clone())
        .collect();
    assert_eq!(logged_paths, [json!("/v2/models/bc/infer")]);
}

/// The `modelbay::payload` line logged for `request_id`, waiting for it a little.
async fn payload_line(server: &TestServer, request_id: &str) -> Value {
    for _ in 0..50 {
        let line = server
            .log()
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|line| {
                line["target"] == "modelbay::payload" && line["fields"]["request_id"] == request_id
            });
        if let Some(line) = line {
            return line;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no payload line for {request_id}");
}

#[tokio::test]
async fn redacted_fields_and_inputs_never_reach_the_payload_log() {
    let server = TestServer::start_logging(&[
        "--log-format",
        "json",
        "--log-payloads",
        "--redact-fields",
        "input,content",
    ])
    .await;
    assert_eq!(server.push("bc", "breast_cancer_lr.onnx").await.0, 201);
    let mut row = vec![0.0; 30];
    row[0] = 24680.5;
    let body =
        json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 30], "data": row}]});
    let response = post_with_id(&server, "/v2/models/bc/infer", "req-v2", &body).await;
    assert_eq!(response.status(), 200);
    let logged = payload_line(&server, "req-v2").await["fields"]["body"].clone();
    let logged: Value = serde_json::from_str(logged.as_str().unwrap()).unwrap();
    assert_eq!(logged["inputs"][0]["data"], "[redacted]");
    assert_eq!(
        logged["inputs"][0]["name"], "input",
        "the input's name is kept"
    );

    let chat = json!({
        "model": "no-such-model",
        "messages": [{"role": "user", "content": "my account is 13579"}]
    });
    let response = post_with_id(&server, "/v1/chat/completions", "req-chat", &chat).await;
    assert_eq!(response.status(), 404);
    let logged = payload_line(&server, "req-chat").await["fields"]["body"].clone();
    let logged = logged.as_str().unwrap();
    assert!(
        logged.contains("[redacted]") && logged.contains("\"role\":\"user\""),
        "{logged}"
    );
    assert!(
        !server.log().contains("24680.5") && !server.log().contains("13579"),
        "a redacted value reached the log"
    );
}
