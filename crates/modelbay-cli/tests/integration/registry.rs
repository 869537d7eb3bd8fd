//! The registry through the management API: pushes, listings, rejections, restarts, concurrency,
//! deduplication, integrity checks and graceful shutdown.

use std::{path::Path, time::Duration};

use futures::StreamExt;
use serde_json::{json, Value};

use crate::common::{expected, fixture, modelbay, onnxruntime_library, TestServer};

fn blob_count(data_dir: &Path) -> usize {
    std::fs::read_dir(data_dir.join("artifacts/blobs/sha256"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn push_records_metadata_and_lists_models_and_versions() {
    let server = TestServer::start().await;
    let (status, v1) = server
        .push_bytes(
            "credit-risk",
            "?description=first%20cut&label=team=risk&label=stage=dev",
            std::fs::read(fixture("credit_default.onnx")).unwrap(),
        )
        .await;
    assert_eq!(status, 201, "{v1}");
    assert_eq!(v1["model"], "credit-risk");
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["format"], "onnx");
    assert_eq!(v1["description"], "first cut");
    assert_eq!(v1["labels"], json!({ "team": "risk", "stage": "dev" }));
    assert_eq!(
        v1["size"],
        std::fs::metadata(fixture("credit_default.onnx"))
            .unwrap()
            .len()
    );
    assert!(v1["digest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(
        v1["signature"]["inputs"],
        json!([{ "name": "input", "datatype": "FP32", "shape": [-1, 3] }])
    );
    let (status, _) = server
        .push_bytes(
            "credit-risk",
            "?format=onnx",
            std::fs::read(fixture("credit_default.onnx")).unwrap(),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(server.push("diabetes", "diabetes_gbr.onnx").await.0, 201);

    let (status, models) = server.get("/api/v1/models").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = models["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["credit-risk", "diabetes"]);
    assert_eq!(models["models"][0]["latest_version"], 2);
    assert_eq!(models["models"][0]["version_count"], 2);

    let (status, versions) = server.get("/api/v1/models/credit-risk/versions").await;
    assert_eq!(status, 200);
    assert_eq!(versions["versions"].as_array().unwrap().len(), 2);
    assert_eq!(versions["versions"][0], v1);

    let (status, shown) = server.get("/api/v1/models/credit-risk/versions/1").await;
    assert_eq!((status, shown), (200, v1));
    assert_eq!(
        server.get("/api/v1/models/credit-risk/versions/3").await.0,
        404
    );
    assert_eq!(server.get("/api/v1/models/nope/versions").await.0, 404);
    assert_eq!(server.get("/api/v1/models/Nope/versions").await.0, 400);

    let (status, spec) = server.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(
        spec["openapi"]
            .as_str()
            .unwrap_or_default()
            .starts_with("3."),
        "{spec}"
    );
}

#[tokio::test]
async fn invalid_pushes_are_refused_and_leave_no_version() {
    let server = TestServer::start_with(&["--max-upload-bytes", "20000"]).await;
    let read = |name: &str| std::fs::read(fixture(name)).unwrap();
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (
            "zipmap",
            "",
            read("invalid/breast_cancer_zipmap.onnx"),
            400,
            "'zipmap': False",
        ),
        (
            "not onnx",
            "?format=onnx",
            read("invalid/not_onnx.onnx"),
            400,
            "not a valid ONNX model",
        ),
        (
            "undetectable",
            "",
            read("invalid/not_onnx.onnx"),
            400,
            "could not recognise the model format",
        ),
        (
            "truncated",
            "",
            read("invalid/truncated.onnx"),
            400,
            "not a valid ONNX model",
        ),
        ("empty", "", vec![], 400, "upload is empty"),
        (
            "too large",
            "",
            read("breast_cancer_rf.onnx"),
            413,
            "larger than the limit of 20000 bytes",
        ),
        (
            "unknown format",
            "?format=pickle",
            read("breast_cancer_lr.onnx"),
            400,
            "unknown model format 'pickle'",
        ),
        (
            "unknown parameter",
            "?colour=red",
            read("breast_cancer_lr.onnx"),
            400,
            "unknown query parameter 'colour'",
        ),
        (
            "bad label",
            "?label=Team=x",
            read("breast_cancer_lr.onnx"),
            400,
            "invalid label key 'Team'",
        ),
        (
            "label without value",
            "?label=team",
            read("breast_cancer_lr.onnx"),
            400,
            "must be written key=value",
        ),
    ];
    for (what, query, bytes, status, message) in cases {
        let (got, body) = server.push_bytes("m", query, bytes).await;
        assert_eq!(got, status, "{what}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains(message),
            "{what}: {error:?} should contain {message:?}"
        );
        assert!(
            !error.contains(server.data_dir.to_str().unwrap()),
            "{what}: leaks a server path: {error}"
        );
    }
    let (status, body) = server
        .push_bytes("Bad_Name", "", read("breast_cancer_lr.onnx"))
        .await;
    assert_eq!(status, 400, "{body}");
    // HTTP clients normalise `..` away before it reaches the server (ModelName's unit tests
    // cover the name itself); whatever arrives, nothing is created.
    let (status, body) = server
        .push_bytes("..", "", read("breast_cancer_lr.onnx"))
        .await;
    assert_ne!(status, 201, "'..' must never be accepted as a name: {body}");

    assert_eq!(server.get("/api/v1/models/m/versions").await.0, 404);
    assert_eq!(
        server.get("/api/v1/models").await.1,
        json!({ "models": [] })
    );
    assert_eq!(blob_count(&server.data_dir), 0);
    let leftovers = std::fs::read_dir(server.data_dir.join("tmp"))
        .unwrap()
        .count();
    assert_eq!(leftovers, 0, "failed uploads leave no staging files");
}

#[tokio::test]
async fn versions_survive_a_restart_on_the_same_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = TestServer::start_in(dir.path(), &[]).await;
    assert_eq!(first.push("bc", "breast_cancer_lr.onnx").await.0, 201);
    assert_eq!(first.push("bc", "breast_cancer_mlp.onnx").await.0, 201);
    first.promote("bc", 2).await;
    let (_, before) = first.get("/api/v1/models/bc/versions").await;
    assert!(first.stop().success());

    let second = TestServer::start_in(dir.path(), &[]).await;
    let (_, after) = second.get("/api/v1/models/bc/versions").await;
    assert_eq!(before, after);
    let (status, body) = second
        .post_json(
            "/v2/models/bc/infer",
            &json!({ "inputs": expected("breast_cancer_mlp")["inputs"] }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model_version"], "2");
    // Numbers are never reused: the next push is 3.
    assert_eq!(
        second.push("bc", "breast_cancer_lr.onnx").await.1["version"],
        3
    );
}

#[tokio::test]
async fn concurrent_pushes_get_distinct_versions_and_identical_bytes_are_stored_once() {
    let server = TestServer::start().await;
    let bytes = std::fs::read(fixture("breast_cancer_rf.onnx")).unwrap();
    let pushes = (0..8).map(|_| server.push_bytes("rf", "", bytes.clone()));
    let results = futures::future::join_all(pushes).await;
    let mut versions: Vec<u64> = results
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, 201, "{body}");
            body["version"].as_u64().unwrap()
        })
        .collect();
    versions.sort();
    assert_eq!(versions, (1..=8).collect::<Vec<_>>());
    let digests: std::collections::HashSet<&Value> =
        results.iter().map(|(_, b)| &b["digest"]).collect();
    assert_eq!(digests.len(), 1);
    assert_eq!(blob_count(&server.data_dir), 1);

    assert_eq!(server.push("lr", "breast_cancer_lr.onnx").await.0, 201);
    assert_eq!(blob_count(&server.data_dir), 2);
}

#[tokio::test]
async fn a_tampered_artifact_is_detected_when_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = TestServer::start_in(dir.path(), &[]).await;
    let (_, record) = first.push("bc", "breast_cancer_lr.onnx").await;
    assert!(first.stop().success());
    let hex = record["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let blob = dir.path().join("artifacts/blobs/sha256").join(hex);
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();

    let second = TestServer::start_in(dir.path(), &[]).await;
    let inputs = json!({ "inputs": expected("breast_cancer_lr")["inputs"] });
    let (status, body) = second.post_json("/v2/models/bc/infer", &inputs).await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("internal error"),
        "{body}"
    );
    let (status, body) = second.get("/v2/models/bc/ready").await;
    assert_eq!(status, 500, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("internal error") && !error.contains("sha256"),
        "no internals leak: {body}"
    );
    assert_eq!(second.get("/v2/health/live").await.0, 200);
}

/// Pushes the RandomForest fixture in four slow chunks, sending `signal` to the server just
/// before the third chunk, i.e. while the upload is half sent.
async fn upload_interrupted_by(
    server: &TestServer,
    signal: &'static str,
) -> reqwest::Result<reqwest::Response> {
    let bytes = std::fs::read(fixture("breast_cancer_rf.onnx")).unwrap();
    let chunks: Vec<Vec<u8>> = bytes
        .chunks(bytes.len() / 4 + 1)
        .map(<[u8]>::to_vec)
        .collect();
    let pid = server.pid().to_string();
    let body = futures::stream::iter(chunks.into_iter().enumerate()).then(move |(i, chunk)| {
        let pid = pid.clone();
        async move {
            if i == 2 {
                let sent = std::process::Command::new("kill")
                    .args([signal, &pid])
                    .status();
                assert!(sent.unwrap().success());
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
            Ok::<_, std::io::Error>(chunk)
        }
    });
    server
        .http
        .post(server.url("/api/v1/models/rf/versions"))
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_upload_finish() {
    let mut server = TestServer::start().await;
    let response = upload_interrupted_by(&server, "-TERM").await.unwrap();
    assert_eq!(response.status(), 201);
    assert!(
        server.wait().success(),
        "server exits cleanly after draining"
    );
}

#[tokio::test]
async fn startup_names_the_variable_when_onnx_runtime_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let output = modelbay()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ORT_DYLIB_PATH") && stderr.contains("/nonexistent"),
        "{stderr}"
    );

    let output = modelbay()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env_remove("ORT_DYLIB_PATH")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("set ORT_DYLIB_PATH"));
    let _ = onnxruntime_library();
}

#[tokio::test]
async fn a_crash_during_an_upload_leaves_no_version_and_no_debris() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = TestServer::start_in(dir.path(), &[]).await;
    assert_eq!(server.push("rf", "breast_cancer_rf.onnx").await.0, 201);
    let result = upload_interrupted_by(&server, "-KILL").await;
    assert!(result.is_err(), "the connection dies with the server");
    server.wait();
    let staged = std::fs::read_dir(dir.path().join("tmp")).unwrap().count();
    assert!(staged > 0, "the crash left a partial upload behind");

    let restarted = TestServer::start_in(dir.path(), &[]).await;
    let (_, versions) = restarted.get("/api/v1/models/rf/versions").await;
    assert_eq!(
        versions["versions"].as_array().unwrap().len(),
        1,
        "only the complete push exists"
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0,
        "startup clears partial uploads"
    );
    assert_eq!(
        restarted.push("rf", "breast_cancer_rf.onnx").await.1["version"],
        2
    );
}

#[tokio::test]
async fn deleting_the_last_version_of_some_bytes_reclaims_its_blob() {
    let server = TestServer::start().await;
    assert_eq!(server.push("a", "breast_cancer_lr.onnx").await.0, 201);
    let (_, rf) = server.push("a", "breast_cancer_rf.onnx").await;
    assert_eq!(server.push("b", "breast_cancer_rf.onnx").await.0, 201);
    let hex = rf["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_owned();
    let blob = server.data_dir.join("artifacts/blobs/sha256").join(&hex);
    assert!(blob.exists());
    let delete = |path: &'static str| {
        let (http, url) = (server.http.clone(), server.url(path));
        async move { http.delete(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(delete("/api/v1/models/a/versions/2").await, 204);
    assert!(blob.exists(), "model b still uses the same bytes");
    assert_eq!(delete("/api/v1/models/b/aliases/production").await, 204);
    assert_eq!(delete("/api/v1/models/b/versions/1").await, 204);
    assert!(!blob.exists(), "no version uses the blob any more");
    // The same bytes pushed again are stored again and serve.
    let (status, again) = server.push("c", "breast_cancer_rf.onnx").await;
    assert_eq!(status, 201, "{again}");
    assert!(blob.exists());
    assert_eq!(server.get("/v2/models/c/ready").await.0, 200);
}
