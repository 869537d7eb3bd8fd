//! OpenTelemetry export: with `--otlp-endpoint`, request spans reach an OTLP/HTTP collector
//! (here a plain HTTP listener on loopback that records what it is sent) as protobuf, carrying
//! the service name, the path and the request id.

use std::time::Duration;

use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    sync::mpsc,
};

use crate::common::TestServer;

/// One HTTP request as received: the head (request line and headers) and the body.
struct Received {
    head: String,
    body: Vec<u8>,
}

/// Accepts HTTP/1.1 requests, answers 200 to each, and passes them on.
async fn collector() -> (String, mpsc::UnboundedReceiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let (sender, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let sender = sender.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
                    let length = head
                        .lines()
                        .find_map(|l| {
                            let (name, value) = l.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    while buffer.len() < end + 4 + length {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body = buffer[end + 4..end + 4 + length].to_vec();
                    buffer.drain(..end + 4 + length);
                    let _ = sender.send(Received { head, body });
                    let reply = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                    if socket.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (address, received)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

// Two runtime threads: the collector must keep answering while the test blocks on the server's
// exit (the flush at shutdown waits for the collector's reply).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_are_exported_to_the_otlp_endpoint() {
    let (endpoint, mut received) = collector().await;
    let mut server = TestServer::start_with(&["--otlp-endpoint", &endpoint]).await;
    assert_eq!(server.push("bc", "breast_cancer_lr.onnx").await.0, 201);
    let body = json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 30], "data": vec![1.0; 30]}]});
    let response = server
        .http
        .post(server.url("/v2/models/bc/infer"))
        .header("x-request-id", "trace-me-7")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // A graceful stop flushes the spans still buffered.
    assert!(server.stop().success());
    let mut exported = Vec::new();
    while let Ok(Some(request)) =
        tokio::time::timeout(Duration::from_secs(10), received.recv()).await
    {
        assert!(
            request.head.starts_with("POST /v1/traces "),
            "{}",
            request.head
        );
        assert!(
            request
                .head
                .to_ascii_lowercase()
                .contains("content-type: application/x-protobuf"),
            "{}",
            request.head
        );
        exported.extend(request.body);
        if contains(&exported, b"trace-me-7") {
            break;
        }
    }
    assert!(
        contains(&exported, b"modelbay"),
        "no service name in the export"
    );
    assert!(
        contains(&exported, b"/v2/models/bc/infer"),
        "no request path in the export"
    );
    assert!(
        contains(&exported, b"trace-me-7"),
        "no request id in the export"
    );
}
