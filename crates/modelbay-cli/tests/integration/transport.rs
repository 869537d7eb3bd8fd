//! The connections themselves: TLS and mutual TLS on both ports with real clients (reqwest,
//! tonic, openssl s_client), certificates reloaded without a restart, and slow clients cut off
//! (a connection that sends nothing or half a header, a body that stalls, a gRPC connection
//! that never sends its preface).

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use crate::common::TestServer;

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 named `cn`, and a client certificate, all signed
/// by the CA.
fn certificates(dir: &Path, cn: &str) {
    if !dir.join("ca.pem").exists() {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=modelbay test CA",
            ],
        );
    }
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (name, subject) in [("server", cn), ("client", "a client")] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{name}.new.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={subject}"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &format!("{name}.new.pem"),
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
        // Key and certificate change together, as a renewal does.
        std::fs::rename(
            dir.join(format!("{name}.new.key")),
            dir.join(format!("{name}.key")),
        )
        .unwrap();
        std::fs::rename(
            dir.join(format!("{name}.new.pem")),
            dir.join(format!("{name}.pem")),
        )
        .unwrap();
    }
}

/// The subject of the certificate a fresh TLS handshake with `address` gets.
fn served_subject(address: &str, dir: &Path) -> String {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", address, "-CAfile"])
        .arg(dir.join("ca.pem"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.lines()
        .find(|l| l.starts_with("subject="))
        .unwrap_or_default()
        .to_owned()
}

fn tls_args(dir: &Path) -> Vec<String> {
    let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
    vec![
        "--tls-cert".into(),
        path("server.pem"),
        "--tls-key".into(),
        path("server.key"),
    ]
}

#[tokio::test]
async fn https_and_grpc_over_tls_serve_real_clients_and_reload_certificates() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path(), "first");
    let args = tls_args(dir.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = TestServer::start_trusting(&dir.path().join("ca.pem"), &args).await;
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let (status, body) = server.push("bc", "breast_cancer_lr.onnx").await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = server.get("/v2/models/bc").await;
    assert_eq!(status, 200);
    // Plain HTTP on the TLS port gets no answer.
    let plain = reqwest::Client::new()
        .get(server.url("/v2/health/live").replace("https://", "http://"))
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);

    // gRPC over TLS with tonic.
    let ca = std::fs::read(dir.path().join("ca.pem")).unwrap();
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&ca))
        .domain_name("localhost");
    let grpc_url = server.grpc_url.replace("http://", "https://");
    let channel = tonic::transport::Channel::from_shared(grpc_url)
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = modelbay_server::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient::with_interceptor(
        channel,
        crate::clients::BearerKey::new(&server.admin_key),
    );
    let ready = client
        .model_ready(modelbay_server::grpc::proto::ModelReadyRequest {
            name: "bc".into(),
            version: String::new(),
        })
        .await
        .unwrap();
    assert!(ready.into_inner().ready);

    // A renewed certificate is served to new handshakes; the server keeps running.
    let address = server.url.trim_start_matches("https://").to_owned();
    let subject = tokio::task::spawn_blocking({
        let (address, dir) = (address.clone(), dir.path().to_owned());
        move || served_subject(&address, &dir)
    })
    .await
    .unwrap();
    assert!(subject.contains("first"), "{subject}");
    certificates(dir.path(), "second");
    let mut renewed = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let subject = tokio::task::spawn_blocking({
            let (address, dir) = (address.clone(), dir.path().to_owned());
            move || served_subject(&address, &dir)
        })
        .await
        .unwrap();
        if subject.contains("second") {
            renewed = true;
            break;
        }
    }
    assert!(
        renewed,
        "the renewed certificate was not served within 10 s"
    );
    let (status, _) = server.get("/v2/models/bc").await;
    assert_eq!(status, 200);
}

/// The SHA-256 fingerprint of a PEM certificate, as openssl prints it (`AB:CD:…`).
fn fingerprint(dir: &Path, pem: &str) -> String {
    let output = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in", pem])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    text.trim().rsplit('=').next().unwrap().to_owned()
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_and_a_bound_one_stands_for_its_key() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path(), "mtls");
    let mut args = tls_args(dir.path());
    args.push("--tls-client-ca".into());
    args.push(dir.path().join("ca.pem").to_string_lossy().into_owned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // The harness's own clients have no certificate: its readiness wait cannot pass, so
    // this test starts the server itself.
    let data = tempfile::tempdir().unwrap();
    let mut child = crate::common::modelbay()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--grpc-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data.path())
        .args(&args)
        .env("ORT_DYLIB_PATH", crate::common::onnxruntime_library())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (mut url, mut grpc) = (None, None);
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)).map_while(Result::ok) {
        if let Some(address) = line.strip_prefix("modelbay gRPC listening on ") {
            grpc = Some(format!(
                "https://127.0.0.1:{}",
                address.rsplit(':').next().unwrap()
            ));
        }
        if let Some(found) = line.strip_prefix("modelbay listening on ") {
            url = Some(found.to_owned());
        }
        if url.is_some() && grpc.is_some() {
            break;
        }
    }
    let (url, grpc) = (url.unwrap(), grpc.unwrap());
    let key = std::fs::read_to_string(data.path().join("admin.key")).unwrap();
    let ca_pem = std::fs::read(dir.path().join("ca.pem")).unwrap();
    let ca = reqwest::Certificate::from_pem(&ca_pem).unwrap();
    let without = reqwest::Client::builder()
        .add_root_certificate(ca.clone())
        .build()
        .unwrap();
    assert!(without
        .get(format!("{url}/v2/health/live"))
        .send()
        .await
        .is_err());
    let client_pem = std::fs::read(dir.path().join("client.pem")).unwrap();
    let client_key = std::fs::read(dir.path().join("client.key")).unwrap();
    let identity = [client_pem.clone(), client_key.clone()].concat();
    let with = reqwest::Client::builder()
        .add_root_certificate(ca)
        .identity(reqwest::Identity::from_pem(&identity).unwrap())
        .build()
        .unwrap();
    let whoami = || with.get(format!("{url}/api/v1/whoami")).send();
    let response = with
        .get(format!("{url}/api/v1/whoami"))
        .bearer_auth(key.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // A certificate from the CA is not a key by itself.
    let response = whoami().await.unwrap();
    assert_eq!(response.status(), 401);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no API key is bound"),
        "{body}"
    );

    // Bound to a consumer key, the certificate stands for that key on both ports.
    let created = with
        .post(format!("{url}/api/v1/keys"))
        .bearer_auth(key.trim())
        .json(&serde_json::json!({
            "role": "consumer",
            "label": "cert-app",
            "client_cert_sha256": fingerprint(dir.path(), "client.pem"),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: serde_json::Value = created.json().await.unwrap();
    let id = created["key"]["id"].as_str().unwrap().to_owned();
    assert!(
        created["key"]["client_cert_sha256"].is_string(),
        "{created}"
    );
    let response = whoami().await.unwrap();
    assert_eq!(response.status(), 200);
    let me: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        (me["role"].as_str(), me["label"].as_str()),
        (Some("consumer"), Some("cert-app"))
    );
    let keys = with.get(format!("{url}/api/v1/keys")).send().await.unwrap();
    assert_eq!(
        keys.status(),
        403,
        "a consumer's certificate cannot manage keys"
    );

    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&ca_pem))
        .identity(tonic::transport::Identity::from_pem(
            &client_pem,
            &client_key,
        ))
        .domain_name("localhost");
    let channel = tonic::transport::Channel::from_shared(grpc)
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc_client =
        modelbay_server::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient::new(
            channel,
        );
    grpc_client
        .server_metadata(modelbay_server::grpc::proto::ServerMetadataRequest {})
        .await
        .expect("the bound certificate authenticates gRPC calls without metadata");

    // Revoked, the key no longer answers for the certificate, on either port.
    let revoked = with
        .delete(format!("{url}/api/v1/keys/{id}"))
        .bearer_auth(key.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    assert_eq!(whoami().await.unwrap().status(), 401);
    let refused = grpc_client
        .server_metadata(modelbay_server::grpc::proto::ServerMetadataRequest {})
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    let _ = child.kill();
    let _ = child.wait();
}

/// Whether the server closes `stream` within `within` (reads end or fail).
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return started.elapsed() <= within,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[tokio::test]
async fn slow_clients_are_cut_off() {
    let server =
        TestServer::start_with(&["--header-read-timeout", "1", "--body-idle-timeout", "1"]).await;
    let address = server.url.trim_start_matches("http://").to_owned();
    let grpc = server.grpc_url.trim_start_matches("http://").to_owned();
    let key = server.admin_key.clone();
    tokio::task::spawn_blocking(move || {
        // Nothing at all.
        let mut idle = TcpStream::connect(&address).unwrap();
        assert!(
            closed_within(&mut idle, Duration::from_secs(5)),
            "idle connection kept"
        );
        // Half a header.
        let mut half = TcpStream::connect(&address).unwrap();
        half.write_all(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        assert!(
            closed_within(&mut half, Duration::from_secs(5)),
            "half a header kept"
        );
        // A body that stalls after one byte: 408.
        let mut stalled = TcpStream::connect(&address).unwrap();
        write!(
            stalled,
            "POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
        )
        .unwrap();
        stalled
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut answer = vec![0u8; 1024];
        let n = stalled.read(&mut answer).expect("an answer within 5 s");
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        // A gRPC connection that never sends its preface.
        let mut silent = TcpStream::connect(&grpc).unwrap();
        assert!(
            closed_within(&mut silent, Duration::from_secs(5)),
            "silent gRPC connection kept"
        );
    })
    .await
    .unwrap();
    // The server still serves.
    let (status, _) = server.get("/v2/health/ready").await;
    assert_eq!(status, 200);
}

/// Sends a whole request on a raw connection and reads the status line of the answer; `None`
/// when the server closes the connection without one.
fn status_of(stream: &mut TcpStream, request: &str) -> Option<String> {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = vec![0u8; 4096];
    match stream.read(&mut answer) {
        Ok(n) if n > 0 => {
            let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
            Some(answer.lines().next().unwrap_or_default().to_owned())
        }
        _ => None,
    }
}

#[tokio::test]
async fn a_trickling_body_meets_the_request_deadline() {
    let server =
        TestServer::start_with(&["--body-idle-timeout", "2", "--request-timeout", "2"]).await;
    let address = server.url.trim_start_matches("http://").to_owned();
    let key = server.admin_key.clone();
    tokio::task::spawn_blocking(move || {
        // One byte every 300 ms never trips the idle timeout, but the whole body is late.
        let mut trickle = TcpStream::connect(&address).unwrap();
        write!(
            trickle,
            "POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        )
        .unwrap();
        trickle.set_nonblocking(true).unwrap();
        let started = Instant::now();
        let mut answer = Vec::new();
        while started.elapsed() < Duration::from_secs(8) {
            let mut buf = [0u8; 1024];
            match trickle.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
            let _ = trickle.write_all(b" ");
            std::thread::sleep(Duration::from_millis(300));
        }
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
        assert!(answer.contains("did not arrive within"), "{answer}");
        assert!(started.elapsed() < Duration::from_secs(5));
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn connections_and_buffered_bytes_are_bounded() {
    let server = TestServer::start_with(&[
        "--max-connections",
        "4",
        "--max-inflight-bytes",
        "65536",
        "--body-idle-timeout",
        "30",
    ])
    .await;
    let (status, body) = server.push("bc", "breast_cancer_lr.onnx").await;
    assert_eq!(status, 201, "{body}");
    let address = server.url.trim_start_matches("http://").to_owned();
    let key = server.admin_key.clone();
    let live = "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n";
    let answered = tokio::task::spawn_blocking(move || {
        // Eight connections, each kept open after its answer: at most four are served (the
        // test's own client may hold one of them), the rest are closed unanswered.
        let mut open: Vec<TcpStream> = Vec::new();
        let mut answered = 0;
        for _ in 0..8 {
            let mut stream = TcpStream::connect(&address).unwrap();
            if let Some(line) = status_of(&mut stream, live) {
                assert!(line.contains("200"), "{line}");
                answered += 1;
            }
            open.push(stream);
        }
        drop(open);
        answered
    })
    .await
    .unwrap();
    assert!(
        (3..=4).contains(&answered),
        "{answered} of 8 connections served"
    );

    // Closed connections give their places back.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server
        .http
        .get(server.url("/v2/health/live"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "no place came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A body that has sent 60 KB of its 200 KB holds 60 KB of the 64 KiB budget...
    let address = server.url.trim_start_matches("http://").to_owned();
    let held = tokio::task::spawn_blocking(move || {
        let mut slow = TcpStream::connect(&address).unwrap();
        write!(
            slow,
            "POST /v2/models/bc/infer HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/json\r\nContent-Length: 200000\r\n\r\n"
        )
        .unwrap();
        slow.write_all(&[b' '; 60_000]).unwrap();
        slow
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // ...so an 8 KB request is refused with 503 and Retry-After...
    let rows =
        std::fs::read_to_string(crate::common::fixture("breast_cancer_lr.expected.json")).unwrap();
    let expected: serde_json::Value = serde_json::from_str(&rows).unwrap();
    let input = expected["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "input")
        .unwrap()
        .clone();
    let mut body = serde_json::to_string(&serde_json::json!({"inputs": [input]})).unwrap();
    body.push_str(&" ".repeat(8192));
    let infer = || {
        server
            .http
            .post(server.url("/v2/models/bc/infer"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
    };
    let refused = infer().await.unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let answer: serde_json::Value = refused.json().await.unwrap();
    assert!(
        answer["error"].as_str().unwrap().contains("request bytes"),
        "{answer}"
    );
    // ...until the slow client goes away and its bytes are given back.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = infer().await.unwrap();
        if response.status() == 200 {
            break;
        }
        assert_eq!(response.status(), 503);
        assert!(Instant::now() < deadline, "the held bytes never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
