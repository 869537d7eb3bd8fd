//! A replica's life for rolling updates: on SIGTERM readiness turns false at once while
//! requests are still served through the grace period, in-flight streams finish, then the
//! process exits; a registry database that cannot be reached at startup is retried, saying why;
//! the cluster view lists a single node too.

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use futures::StreamExt;
use serde_json::json;

use crate::{
    clients::smollm2,
    common::{expected, modelbay, onnxruntime_library, TestServer},
};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn sigterm_turns_readiness_off_serves_through_the_grace_period_then_drains() {
    let mut server =
        TestServer::start_with(&["--shutdown-grace", "2", "--drain-timeout", "20"]).await;
    assert_eq!(server.push("bc", "breast_cancer_lr.onnx").await.0, 201);
    assert_eq!(server.push_bytes("chat", "", smollm2()).await.0, 201);
    let infer = |server: &TestServer| {
        server
            .http
            .post(server.url("/v2/models/bc/infer"))
            .json(&json!({ "inputs": expected("breast_cancer_lr")["inputs"] }))
            .send()
    };
    // A stream that is still generating when the signal comes.
    let stream = server
        .http
        .post(server.url("/v1/chat/completions"))
        .json(&json!({
            "model": "chat",
            "messages": [{ "role": "user", "content": "Count from one to fifty." }],
            "max_tokens": 96,
            "temperature": 0,
            "stream": true,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let signalled = Instant::now();
    server.signal_stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _) = server.get("/v2/health/ready").await;
    assert_eq!(status, 503, "readiness must turn false at once");
    let (status, _) = server.get("/v2/health/live").await;
    assert_eq!(status, 200);
    // Still serving new requests during the grace period.
    assert_eq!(infer(&server).await.unwrap().status(), 200);
    assert!(signalled.elapsed() < Duration::from_secs(2));
    let mut body = String::new();
    let mut chunks = stream.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        body.push_str(&String::from_utf8_lossy(
            &chunk.expect("the stream finishes whole"),
        ));
    }
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    assert!(server.wait().success());
    assert!(
        signalled.elapsed() >= Duration::from_secs(2),
        "exited before the grace period ended"
    );
    // After the grace period the listener is closed.
    assert!(infer(&server).await.is_err());
}

#[tokio::test]
async fn an_unreachable_registry_database_is_retried_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = modelbay()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--grpc-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .args([
            "--registry",
            &format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        ])
        .env("ORT_DYLIB_PATH", onnxruntime_library())
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines.send(line);
        }
    });
    let mut retries = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while retries.len() < 2 {
        let line = seen
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("two retry messages within 30 s");
        if line.contains("cannot reach the registry database") {
            retries.push(line);
        }
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "gave up instead of retrying"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let stderr = retries.join("\n");
    assert!(stderr.contains("retrying in"), "{stderr}");
    assert!(
        !stderr.contains("postgres@"),
        "the URL (it may hold a password) was printed: {stderr}"
    );
}

#[tokio::test]
async fn a_single_node_lists_itself_in_the_cluster_view() {
    let server = TestServer::start().await;
    assert_eq!(server.push("bc", "breast_cancer_lr.onnx").await.0, 201);
    let started = Instant::now();
    loop {
        let (status, view) = server.get("/api/v1/cluster").await;
        assert_eq!(status, 200, "{view}");
        let replicas = view["replicas"].as_array().unwrap();
        if replicas.len() == 1
            && replicas[0]["state"] == "ready"
            && replicas[0]["behind"] == 0
            && replicas[0]["loaded"][0]["model"] == "bc"
        {
            assert_eq!(replicas[0]["address"], server.url.as_str());
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{view}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = crate::common::run_cli(&server, &["cluster"]);
    assert!(out.contains("ready") && out.contains("bc@1"), "{out}");
}
