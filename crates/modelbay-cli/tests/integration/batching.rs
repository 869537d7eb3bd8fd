//! Dynamic batching of tensor models: per-model settings through the API (kept across a
//! restart), concurrent requests merged into one engine run and split back with the answers
//! each would have had alone, and settings the batcher cannot honour refused.

use futures::future::join_all;
use serde_json::{json, Value};

use crate::{
    common::{expected, TestServer},
    drift::{reference, rows_body},
    prom::scrape,
    tensors::assert_outputs_match,
};

async fn infer_each_alone(server: &TestServer, rows: &[Vec<f64>]) -> Vec<Value> {
    let mut answers = Vec::new();
    for row in rows {
        let (status, body) = server
            .post_json(
                "/v2/models/mlp/infer",
                &rows_body(std::slice::from_ref(row)),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        answers.push(body["outputs"].clone());
    }
    answers
}

#[tokio::test]
async fn concurrent_requests_run_as_one_batch_with_unchanged_answers() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), &[]).await;
    assert_eq!(server.push("mlp", "breast_cancer_mlp.onnx").await.0, 201);
    let (status, off) = server.get("/api/v1/models/mlp/batching").await;
    assert_eq!(status, 200, "{off}");
    assert_eq!(off["settings"]["max_batch_size"], 0);
    assert_eq!(off["loaded"], json!([{"version": 1, "batching": false}]));

    let (_, rows) = reference();
    let rows = &rows[..8];
    let alone = infer_each_alone(&server, rows).await;

    // Up to a second's wait, but 8 rows is a preferred size: the batch runs as soon as the
    // eighth request arrives.
    let settings = json!({
        "max_batch_size": 16,
        "max_queue_delay_microseconds": 1_000_000,
        "preferred_batch_sizes": [8],
    });
    let (status, on) = server
        .put_json("/api/v1/models/mlp/batching", &settings)
        .await;
    assert_eq!(status, 200, "{on}");
    assert_eq!(on["settings"], settings);
    assert_eq!(on["loaded"], json!([{"version": 1, "batching": true}]));

    let before = scrape(&server).await;
    let started = std::time::Instant::now();
    let bodies: Vec<Value> = rows
        .iter()
        .map(|row| rows_body(std::slice::from_ref(row)))
        .collect();
    let answers = join_all(
        bodies
            .iter()
            .map(|b| server.post_json("/v2/models/mlp/infer", b)),
    )
    .await;
    assert!(
        started.elapsed().as_millis() < 900,
        "the preferred size did not dispatch early"
    );
    let after = scrape(&server).await;
    for ((status, body), single) in answers.iter().zip(&alone) {
        assert_eq!(*status, 200, "{body}");
        let (got, want) = (
            body["outputs"].as_array().unwrap(),
            single.as_array().unwrap(),
        );
        assert_outputs_match("batched", got, want);
    }
    let version = [("model", "mlp"), ("version", "1")];
    let runs = after.sum("modelbay_batch_size_count", &version)
        - before.sum("modelbay_batch_size_count", &version);
    let merged_rows = after.sum("modelbay_batch_size_sum", &version)
        - before.sum("modelbay_batch_size_sum", &version);
    assert_eq!(
        (runs, merged_rows),
        (1.0, 8.0),
        "8 requests, one engine run"
    );

    // Requests for different outputs, or with more rows than a batch, never merge wrongly.
    let label_only = |row: &Vec<f64>| {
        let mut body = rows_body(std::slice::from_ref(row));
        body["outputs"] = json!([{"name": "label"}]);
        body
    };
    let big: Vec<Vec<f64>> = rows.iter().cycle().take(20).cloned().collect();
    let bodies: Vec<Value> = rows[..3]
        .iter()
        .map(label_only)
        .chain(
            rows[3..6]
                .iter()
                .map(|r| rows_body(std::slice::from_ref(r))),
        )
        .chain([rows_body(&big)])
        .collect();
    let mixed = join_all(
        bodies
            .iter()
            .map(|b| server.post_json("/v2/models/mlp/infer", b)),
    )
    .await;
    for (i, (status, body)) in mixed.iter().enumerate() {
        assert_eq!(*status, 200, "{body}");
        let outputs = body["outputs"].as_array().unwrap();
        if i < 3 {
            assert_eq!(outputs.len(), 1);
            assert_eq!(outputs[0], alone[i][0], "label of row {i}");
        } else if i < 6 {
            let want = alone[i].as_array().unwrap();
            assert_outputs_match("mixed", outputs, want);
        } else {
            assert_eq!(outputs[0]["shape"], json!([20]));
        }
    }

    // The settings are part of the registry: a restarted server batches the same way.
    drop(server);
    let server = TestServer::start_in(dir.path(), &[]).await;
    let (_, kept) = server.get("/api/v1/models/mlp/batching").await;
    assert_eq!(kept["settings"], settings);
    let (_, events) = server.get("/api/v1/events?model=mlp").await;
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "batching.set" && e["after"] == settings),
        "{events}"
    );
}

#[tokio::test]
async fn batching_settings_are_validated() {
    let server = TestServer::start().await;
    assert_eq!(server.push("mlp", "breast_cancer_mlp.onnx").await.0, 201);
    let cases = [
        (
            json!({"max_batch_size": 8, "preferred_batch_sizes": [16]}),
            "preferred batch size 16",
        ),
        (
            json!({"max_batch_size": 8, "preferred_batch_sizes": [4, 2]}),
            "strictly increasing",
        ),
        (json!({"max_batch_size": 100000}), "max_batch_size"),
        (
            json!({"max_batch_size": 8, "max_queue_delay_microseconds": 5000000}),
            "one second",
        ),
        (json!({"max_batch_size": 8, "delay": 1}), "unknown field"),
        (json!({"max_queue_delay_microseconds": 5}), "max_batch_size"),
    ];
    for (settings, message) in cases {
        let (status, body) = server
            .put_json("/api/v1/models/mlp/batching", &settings)
            .await;
        assert_eq!(status, 400, "{settings}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(message), "{settings}: {error}");
    }
    let (status, _) = server
        .put_json(
            "/api/v1/models/nope/batching",
            &json!({"max_batch_size": 8}),
        )
        .await;
    assert_eq!(status, 404);
    // Requests still answer as before: nothing was changed.
    let case = expected("breast_cancer_mlp");
    let (status, body) = server
        .post_json("/v2/models/mlp/infer", &json!({"inputs": case["inputs"]}))
        .await;
    assert_eq!(status, 200, "{body}");
}
