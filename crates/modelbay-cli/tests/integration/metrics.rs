//! `/metrics`: known traffic moves every counter and histogram count by exactly the expected
//! amount per label set; the exposition passes `promtool check metrics`; the Grafana dashboard
//! only uses metric names the server exports.

use std::{collections::BTreeSet, process::Stdio, time::Duration};

use serde_json::{json, Value};

use crate::{
    common::{repo_root, run_cli, TestServer},
    prom::{scrape, Scrape},
};

fn rows(n: usize) -> Value {
    json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [n, 30], "data": vec![1.0; n * 30]}]})
}

fn delta(before: &Scrape, after: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    after.sum(name, labels) - before.sum(name, labels)
}

/// A server with `risk` (the breast-cancer LR) at version 1, aliased `production`.
async fn risk_server(extra: &[&str]) -> TestServer {
    let server = TestServer::start_with(extra).await;
    assert_eq!(server.push("risk", "breast_cancer_lr.onnx").await.0, 201);
    server.promote("risk", 1).await;
    server
}

#[tokio::test]
async fn tensor_traffic_moves_counters_and_histograms_by_exactly_what_was_sent() {
    let server = risk_server(&[]).await;
    let before = scrape(&server).await;
    for _ in 0..5 {
        let (status, body) = server.post_json("/v2/models/risk/infer", &rows(2)).await;
        assert_eq!(status, 200, "{body}");
    }
    for _ in 0..3 {
        let (status, _) = server
            .post_json("/v2/models/risk/versions/1/infer", &rows(1))
            .await;
        assert_eq!(status, 200);
    }
    let wrong_shape = json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]});
    for _ in 0..2 {
        let (status, _) = server
            .post_json("/v2/models/risk/infer", &wrong_shape)
            .await;
        assert_eq!(status, 400);
    }
    let (status, _) = server.post_json("/v2/models/nope/infer", &rows(1)).await;
    assert_eq!(status, 404);
    let after = scrape(&server).await;

    let infer = [("protocol", "http"), ("endpoint", "infer")];
    let by = |alias: &'static str, outcome: &'static str| {
        let mut labels = infer.to_vec();
        labels.extend([
            ("model", "risk"),
            ("version", "1"),
            ("alias", alias),
            ("outcome", outcome),
        ]);
        labels
    };
    let requests = "modelbay_requests_total";
    assert_eq!(
        delta(&before, &after, requests, &by("production", "success")),
        5.0
    );
    assert_eq!(delta(&before, &after, requests, &by("", "success")), 3.0);
    // Errors after routing are still attributed to the version that was asked.
    assert_eq!(
        delta(&before, &after, requests, &by("production", "client_error")),
        2.0
    );
    let unknown = [("model", ""), ("version", ""), ("outcome", "client_error")];
    assert_eq!(delta(&before, &after, requests, &unknown), 1.0);
    assert_eq!(delta(&before, &after, requests, &[]), 11.0);
    let latency = "modelbay_request_duration_seconds_count";
    let production = [("model", "risk"), ("alias", "production")];
    assert_eq!(delta(&before, &after, latency, &production), 7.0);
    assert_eq!(delta(&before, &after, latency, &[]), 11.0);

    // Only the 8 valid requests reached the engine, one batch each (batching is off).
    let version = [("model", "risk"), ("version", "1")];
    for name in [
        "modelbay_queue_duration_seconds_count",
        "modelbay_compute_duration_seconds_count",
        "modelbay_batch_size_count",
    ] {
        assert_eq!(delta(&before, &after, name, &version), 8.0, "{name}");
    }
    assert_eq!(
        delta(&before, &after, "modelbay_batch_size_sum", &version),
        13.0
    );
    // Histogram buckets are cumulative: the +Inf bucket equals the count.
    assert_eq!(
        after.sum(
            "modelbay_batch_size_bucket",
            &[("model", "risk"), ("le", "+Inf")]
        ),
        after.sum("modelbay_batch_size_count", &version)
    );
    assert_eq!(
        after.sum(
            "modelbay_batch_size_bucket",
            &[("model", "risk"), ("le", "1")]
        ),
        before.sum(
            "modelbay_batch_size_bucket",
            &[("model", "risk"), ("le", "1")]
        ) + 3.0
    );

    assert_eq!(after.sum("modelbay_requests_in_flight", &version), 0.0);
    assert_eq!(after.sum("modelbay_queued_requests", &version), 0.0);
    assert_eq!(
        after.sum("modelbay_models_loaded", &[("kind", "tensor")]),
        1.0
    );
    assert!(after.sum("modelbay_model_memory_bytes", &version) > 0.0);
    assert_eq!(
        after.sum("modelbay_model_load_duration_seconds_count", &version),
        1.0
    );
    assert_eq!(after.sum("modelbay_model_load_failures_total", &[]), 0.0);
    assert!(after.sum("modelbay_http_open_connections", &[]) >= 1.0);
    assert!(after.sum("modelbay_registry_applied_event_sequence", &[]) >= 1.0);
    assert!(after.sum("modelbay_process_resident_memory_bytes", &[]) > 0.0);
    assert!(after.has("modelbay_process_cpu_seconds_total"));

    check_exposition(&after.text);
}

/// Every family is described; `promtool check metrics` (Debian's `prometheus` package) accepts
/// the exposition. CI sets MODELBAY_REQUIRE_PROMTOOL so a missing promtool fails there.
fn check_exposition(text: &str) {
    let families: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for family in &families {
        assert!(
            family.starts_with("modelbay_"),
            "{family} is not namespaced"
        );
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "{family} has no description"
        );
    }
    let promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match promtool {
        Ok(child) => child,
        Err(e) => {
            assert!(
                std::env::var_os("MODELBAY_REQUIRE_PROMTOOL").is_none(),
                "promtool is required but could not run: {e}"
            );
            eprintln!("promtool not installed; skipping `promtool check metrics`");
            return;
        }
    };
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn a_full_queue_counts_as_rejected_not_as_an_error() {
    let server = risk_server(&["--workers-per-model", "1", "--queue-capacity", "1"]).await;
    // Batches of up to 4 rows wait up to a second for company: the first request sits in the
    // queue, so the second finds it full.
    let (status, body) = server
        .put_json(
            "/api/v1/models/risk/batching",
            &json!({"max_batch_size": 4, "max_queue_delay_microseconds": 1_000_000}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let before = scrape(&server).await;
    let waiting = tokio::spawn({
        let (http, url) = (server.http.clone(), server.url("/v2/models/risk/infer"));
        async move { http.post(url).json(&rows(1)).send().await.unwrap().status() }
    });
    // Wait until the first request sits in the queue.
    let version = [("model", "risk"), ("version", "1")];
    for _ in 0..200 {
        if scrape(&server)
            .await
            .sum("modelbay_queued_requests", &version)
            == 1.0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let refused = server
        .http
        .post(server.url("/v2/models/risk/infer"))
        .json(&rows(1))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(waiting.await.unwrap(), 200);
    let after = scrape(&server).await;
    let outcome = |o: &'static str| [("model", "risk"), ("outcome", o)];
    let requests = "modelbay_requests_total";
    assert_eq!(delta(&before, &after, requests, &outcome("rejected")), 1.0);
    assert_eq!(delta(&before, &after, requests, &outcome("success")), 1.0);
    assert_eq!(
        delta(&before, &after, requests, &outcome("server_error")),
        0.0
    );
    // The request that waited for company shows its wait in the queue histogram.
    let waited = delta(
        &before,
        &after,
        "modelbay_queue_duration_seconds_sum",
        &version,
    );
    assert!(waited >= 0.9, "queued for {waited} s");
}

#[tokio::test]
async fn embedding_inputs_are_counted_per_batch() {
    let server = TestServer::start_with(&["--embed-threads", "1"]).await;
    let out = run_cli(
        &server,
        &["push", "minilm", &crate::embeddings::minilm_onnx()],
    );
    assert!(out.contains("sentence-transformers"), "{out}");
    let before = scrape(&server).await;
    let (status, body) = server
        .post_json(
            "/v1/embeddings",
            &json!({"model": "minilm", "input": ["one", "two", "three"]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let after = scrape(&server).await;
    let version = [("model", "minilm"), ("version", "1")];
    // Three inputs ran, in one or more batches; each input's wait was observed.
    assert_eq!(
        delta(&before, &after, "modelbay_batch_size_sum", &version),
        3.0
    );
    assert_eq!(
        delta(
            &before,
            &after,
            "modelbay_queue_duration_seconds_count",
            &version
        ),
        3.0
    );
    let ok = [
        ("endpoint", "embeddings"),
        ("model", "minilm"),
        ("outcome", "success"),
    ];
    assert_eq!(delta(&before, &after, "modelbay_requests_total", &ok), 1.0);
    assert_eq!(
        after.sum("modelbay_models_loaded", &[("kind", "embedding")]),
        1.0
    );
}

#[tokio::test]
async fn disabled_metrics_are_not_served() {
    let server = TestServer::start_with(&["--metrics", "false"]).await;
    let (status, body) = server.get("/metrics").await;
    assert_eq!(status, 404);
    assert!(
        body["error"].as_str().unwrap().contains("disabled"),
        "{body}"
    );
}

/// Every `modelbay_*` name the dashboard queries is one the server defines (families without
/// samples yet are left out of a scrape, so the definitions in the source count too); histograms
/// by their `_bucket`, `_sum` or `_count` series.
#[tokio::test]
async fn the_grafana_dashboard_uses_only_exported_metrics() {
    let path = repo_root().join("deploy/grafana/modelbay.json");
    let dashboard: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let mut expressions = Vec::new();
    collect_expressions(&dashboard, &mut expressions);
    assert!(expressions.len() >= 8, "only {} queries", expressions.len());
    let server = TestServer::start().await;
    let text = scrape(&server).await.text;
    let source =
        std::fs::read_to_string(repo_root().join("crates/modelbay-runtime/src/metrics.rs"))
            .unwrap();
    let mut exported: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    exported.extend(
        source
            .split('"')
            .filter(|s| s.starts_with("modelbay_") && !s.contains(' '))
            .map(str::to_owned),
    );
    // Only histograms have `_bucket`, `_sum` and `_count` series: the ones made with
    // `histogram(` in the source, and any the scrape types so.
    let mut histograms: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter(|l| l.ends_with(" histogram"))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    histograms.extend(source.split("histogram(").skip(1).filter_map(|rest| {
        let name = rest.split('"').nth(1)?;
        name.starts_with("modelbay_").then(|| name.to_owned())
    }));
    assert!(histograms.contains("modelbay_request_duration_seconds"));
    for expression in &expressions {
        for name in metric_names(expression) {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    name.strip_suffix(suffix)
                        .filter(|f| histograms.contains(*f))
                })
                .unwrap_or(&name);
            assert!(
                exported.contains(family),
                "the dashboard queries {name}, which the server does not export ({expression})"
            );
        }
    }
}

fn collect_expressions(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", Value::String(expr)) => out.push(expr.clone()),
                    _ => collect_expressions(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_expressions(v, out)),
        _ => {}
    }
}

fn metric_names(expression: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expression;
    while let Some(start) = rest.find("modelbay_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[tokio::test]
async fn a_failed_load_is_counted() {
    let server = TestServer::start().await;
    let (status, record) = server.push("bc", "breast_cancer_lr.onnx").await;
    assert_eq!(status, 201);
    let (status, _) = server
        .post_json("/v2/repository/models/bc/unload", &json!({}))
        .await;
    assert_eq!(status, 200);
    let hex = record["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let blob = server.data_dir.join("artifacts/blobs/sha256").join(hex);
    std::fs::write(&blob, b"not the model any more").unwrap();
    let (status, _) = server.post_json("/v2/models/bc/infer", &rows(1)).await;
    assert_eq!(status, 500);
    let after = scrape(&server).await;
    let version = [("model", "bc"), ("version", "1")];
    assert_eq!(
        after.sum("modelbay_model_load_failures_total", &version),
        1.0
    );
    // The load at push time succeeded; the failed one is not a load duration.
    assert_eq!(
        after.sum("modelbay_model_load_duration_seconds_count", &version),
        1.0
    );
    assert_eq!(
        after.sum("modelbay_models_loaded", &[("kind", "tensor")]),
        0.0
    );
    // The version never loaded, so the request is counted without a model label.
    let failed = [("model", ""), ("outcome", "server_error")];
    assert_eq!(after.sum("modelbay_requests_total", &failed), 1.0);
}
