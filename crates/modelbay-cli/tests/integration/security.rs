//! Secure by default: a fresh server refuses everything but the health probes without a key;
//! every HTTP route and gRPC method answers every kind of credential exactly as its access rule
//! says (the table comes from the server's own route table, so a new route without a rule
//! cannot slip through); keys are created, listed without secrets, revoked at once, expire,
//! and are audited; per-key limits answer 429; a push never changes what is served but the
//! first.

use std::time::Duration;

use modelbay_core::{Access, Role};
use serde_json::{json, Value};

use crate::{
    common::{client_with_key, run_cli, status_and_json, TestServer},
    grpc::client_with_key as grpc_client,
};

/// The kinds of credentials every route is tried with.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Credential {
    None,
    Malformed,
    Wrong,
    Revoked,
    Expired,
    Role(Role),
    /// A consumer key limited to models the test model does not match.
    OtherModels,
}

/// What a credential should get for an access rule on a route: `Some(401 | 403)` or `None`
/// for "let through" (any other answer).
fn expected(credential: Credential, access: Access, concerns_model: bool) -> Option<u16> {
    if access == Access::Open {
        return None;
    }
    match credential {
        Credential::None
        | Credential::Malformed
        | Credential::Wrong
        | Credential::Revoked
        | Credential::Expired => Some(401),
        Credential::Role(role) => (!role.allows(access)).then_some(403),
        Credential::OtherModels => {
            if !Role::Consumer.allows(access) {
                Some(403)
            } else if concerns_model {
                // The role allows it, the key's model patterns do not.
                Some(403)
            } else {
                None
            }
        }
    }
}

struct Keys {
    secrets: Vec<(Credential, String)>,
    revoked_id: String,
}

/// A key of every kind, plus a revoked and an expired one.
async fn keys(server: &TestServer) -> Keys {
    let mut secrets = vec![
        (Credential::None, String::new()),
        (Credential::Malformed, "not-a-bearer".into()),
        (Credential::Wrong, format!("mbk_{}", "0".repeat(64))),
        (Credential::Role(Role::Admin), server.admin_key.clone()),
    ];
    for role in ["publisher", "consumer", "viewer"] {
        let (_, secret) = server
            .create_key(json!({ "role": role, "label": format!("{role} key") }))
            .await;
        secrets.push((Credential::Role(role.parse().unwrap()), secret));
    }
    let (_, other) = server
        .create_key(json!({ "role": "consumer", "label": "other", "models": ["other-*"] }))
        .await;
    secrets.push((Credential::OtherModels, other));
    let (revoked_id, revoked) = server
        .create_key(json!({ "role": "admin", "label": "revoked" }))
        .await;
    let (status, _) = server
        .delete_json(&format!("/api/v1/keys/{revoked_id}"))
        .await;
    assert_eq!(status, 200);
    secrets.push((Credential::Revoked, revoked));
    let (_, expired) = server
        .create_key(json!({ "role": "admin", "label": "expired", "expires_in": "1s" }))
        .await;
    secrets.push((Credential::Expired, expired));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    Keys {
        secrets,
        revoked_id,
    }
}

fn concrete(pattern: &str, revoked_id: &str) -> String {
    pattern
        .replace("{model}", "bc")
        .replace("{version}", "1")
        .replace("{alias}", "production")
        .replace("{id}", revoked_id)
}

fn header_for(credential: Credential, secret: &str) -> Option<String> {
    match credential {
        Credential::None => None,
        Credential::Malformed => Some(secret.to_owned()),
        _ => Some(format!("Bearer {secret}")),
    }
}

#[tokio::test]
async fn every_http_route_answers_every_credential_as_its_rule_says() {
    let server = TestServer::start().await;
    let (status, body) = server.push("bc", "breast_cancer_lr.onnx").await;
    assert_eq!(status, 201, "{body}");
    let keys = keys(&server).await;
    let table = modelbay_server::access::route_table();
    assert!(table.len() > 40, "the route table lists every route");
    // Only the health probes and the console's files (the page logs in itself) need no key.
    let open: Vec<&str> = table
        .iter()
        .filter(|r| r.access == Access::Open)
        .map(|r| r.path)
        .collect();
    assert_eq!(
        open,
        [
            "/v2/health/live",
            "/v2/health/ready",
            "/ui",
            "/ui/",
            "/ui/{file}"
        ]
    );
    let http = client_with_key("");
    let mut checked = 0;
    for rule in &table {
        let path = concrete(rule.path, &keys.revoked_id);
        let concerns_model = rule.path.contains("{model}");
        for (credential, secret) in &keys.secrets {
            let mut request = http.request(rule.method.clone(), server.url(&path));
            if let Some(value) = header_for(*credential, secret) {
                request = request.header("authorization", value);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let openai = path.starts_with("/v1/");
            let text = response.text().await.unwrap();
            match expected(*credential, rule.access, concerns_model) {
                Some(want) => {
                    assert_eq!(
                        status, want,
                        "{} {path} with {credential:?}: {text}",
                        rule.method
                    );
                    let body: Value = serde_json::from_str(&text).unwrap();
                    if openai {
                        let kind = if want == 401 {
                            "authentication_error"
                        } else {
                            "permission_error"
                        };
                        assert_eq!(body["error"]["type"], kind, "{path}: {body}");
                    } else {
                        assert!(body["error"].is_string(), "{path}: {body}");
                    }
                }
                None => assert!(
                    status != 401 && status != 403,
                    "{} {path} with {credential:?} was refused: {status} {text}",
                    rule.method
                ),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, table.len() * keys.secrets.len());
}

#[tokio::test]
async fn every_grpc_method_answers_every_credential_as_its_rule_says() {
    use tonic::Code;
    let server = TestServer::start().await;
    let (status, body) = server.push("bc", "breast_cancer_lr.onnx").await;
    assert_eq!(status, 201, "{body}");
    let keys = keys(&server).await;
    let channel = tonic::transport::Channel::from_shared(server.grpc_url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    for (method, access) in modelbay_server::grpc::access::METHODS {
        // Every method's request names the test model where it names one (field 1).
        let message = b"\x0a\x02bc".to_vec();
        for (credential, secret) in &keys.secrets {
            let mut raw = tonic::client::Grpc::new(channel.clone());
            raw.ready().await.unwrap();
            let mut request = tonic::Request::new(message.clone());
            if let Some(value) = header_for(*credential, secret) {
                request
                    .metadata_mut()
                    .insert("authorization", value.parse().unwrap());
            }
            let call = raw.unary(request, method.parse().unwrap(), crate::grpc::RawCodec);
            // Streams that stay open (health watches) count as let through.
            let code = match tokio::time::timeout(Duration::from_secs(3), call).await {
                Ok(Ok(_)) | Err(_) => Code::Ok,
                Ok(Err(status)) => status.code(),
            };
            // A stream's requests are refused one by one, in its answers' error_message (as
            // Triton reports failed stream requests), not by the call's status.
            let concerns_model = !method.contains("Server")
                && !method.contains("Repository")
                && !method.ends_with("ModelStreamInfer");
            match expected(*credential, *access, concerns_model) {
                Some(401) => assert_eq!(code, Code::Unauthenticated, "{method} {credential:?}"),
                Some(_) => assert_eq!(code, Code::PermissionDenied, "{method} {credential:?}"),
                None => assert!(
                    code != Code::Unauthenticated && code != Code::PermissionDenied,
                    "{method} with {credential:?} was refused: {code:?}"
                ),
            }
        }
    }
    // The typed client with a consumer key infers; without a key it is refused.
    let consumer = &keys
        .secrets
        .iter()
        .find(|(c, _)| *c == Credential::Role(Role::Consumer))
        .unwrap()
        .1;
    let mut client = grpc_client(&server, consumer).await;
    let ready = client
        .model_ready(modelbay_server::grpc::proto::ModelReadyRequest {
            name: "bc".into(),
            version: String::new(),
        })
        .await
        .unwrap();
    assert!(ready.into_inner().ready);
    let refused = grpc_client(&server, "")
        .await
        .model_ready(modelbay_server::grpc::proto::ModelReadyRequest {
            name: "bc".into(),
            version: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_fresh_server_writes_an_admin_key_and_refuses_requests_without_one() {
    let server = TestServer::start().await;
    let path = server.data_dir.join("admin.key");
    assert!(server.admin_key.starts_with("mbk_"), "{}", server.admin_key);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the key file is the owner's alone");
    }
    let refused = server
        .anonymous
        .get(server.url("/api/v1/models"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    for open in ["/v2/health/live", "/v2/health/ready"] {
        let response = server.anonymous.get(server.url(open)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{open}");
    }
    let metrics = server
        .anonymous
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 401);

    // A restart keeps the key and writes no new one.
    let data_dir = server.data_dir.clone();
    let key = server.admin_key.clone();
    let mut server = server;
    server.stop();
    let restarted = TestServer::start_in(&data_dir, &[]).await;
    assert_eq!(restarted.admin_key, key);
    let (status, _) = restarted.get("/api/v1/models").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn keys_are_created_listed_revoked_at_once_and_audited() {
    let server = TestServer::start().await;
    let created = run_cli(
        &server,
        &[
            "keys",
            "create",
            "--role",
            "consumer",
            "--models",
            "credit-*",
            "--label",
            "app",
            "--expires",
            "30d",
        ],
    );
    let secret = created.trim().to_owned();
    assert!(
        secret.starts_with("mbk_") && secret.len() == 68,
        "{created}"
    );
    let listed = run_cli(&server, &["keys", "list", "--json"]);
    assert!(
        !listed.contains(&secret) && !listed.contains("digest"),
        "{listed}"
    );
    let keys: Value = serde_json::from_str(&listed).unwrap();
    let app = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["label"] == "app")
        .unwrap();
    assert_eq!(app["role"], "consumer");
    assert_eq!(app["models"], json!(["credit-*"]));
    assert!(app["expires_at"].is_string());
    let id = app["id"].as_str().unwrap().to_owned();

    // The key works for its models, and who it is shows.
    let client = client_with_key(&secret);
    let (status, whoami) = status_and_json(
        client
            .get(server.url("/api/v1/whoami"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(whoami["key_id"], id.as_str());
    assert_eq!(whoami["role"], "consumer");
    // A push by a consumer is refused before a byte is read.
    let push = client
        .post(server.url("/api/v1/models/credit-risk/versions"))
        .body(vec![0u8; 16])
        .send()
        .await
        .unwrap();
    assert_eq!(push.status(), 403);

    // Revoked: refused on the next request.
    run_cli(&server, &["keys", "revoke", &id]);
    let refused = client
        .get(server.url("/api/v1/whoami"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("revoked"),
        "{body}"
    );

    // Both changes are in the audit trail, by the admin key.
    let (status, events) = server.get("/api/v1/events").await;
    assert_eq!(status, 200);
    let kinds: Vec<(&str, &str)> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    // The bootstrap key was made by the server's operator; the others by the admin key.
    assert_eq!(kinds[0], ("key.created", "local"), "{kinds:?}");
    let by_admin = |kind: &str| {
        kinds.iter().any(|(k, actor)| {
            *k == kind && actor.starts_with("key:") && actor.ends_with("(bootstrap admin)")
        })
    };
    assert!(
        by_admin("key.created") && by_admin("key.revoked"),
        "{kinds:?}"
    );
    assert!(!events.to_string().contains(&secret));

    // Only administrators manage keys.
    let (_, publisher) = server
        .create_key(json!({"role": "publisher", "label": "ci"}))
        .await;
    let refused = client_with_key(&publisher)
        .get(server.url("/api/v1/keys"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    // Bad key requests are 400s.
    for bad in [
        json!({"role": "root", "label": "x"}),
        json!({"role": "viewer", "label": "x", "models": ["a-*"]}),
        json!({"role": "consumer", "label": ""}),
        json!({"role": "consumer", "label": "x", "expires_in": "0d"}),
        json!({"role": "consumer", "label": "x", "limits": {"requests_per_second": -1}}),
    ] {
        let (status, body) = server.post_json("/api/v1/keys", &bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

#[tokio::test]
async fn the_audit_trail_names_the_key_that_made_a_change() {
    let server = TestServer::start().await;
    let (id, publisher) = server
        .create_key(json!({"role": "publisher", "label": "release-bot", "models": ["bc*"]}))
        .await;
    let client = client_with_key(&publisher);
    let bytes = std::fs::read(crate::common::fixture("breast_cancer_lr.onnx")).unwrap();
    let (status, record) = status_and_json(
        client
            .post(server.url("/api/v1/models/bc/versions"))
            .body(bytes.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{record}");
    let actor = format!("key:{id} (release-bot)");
    assert_eq!(record["created_by"], actor.as_str());
    // Outside its patterns the publisher is refused.
    let refused = client
        .post(server.url("/api/v1/models/credit/versions"))
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let (_, events) = server.get("/api/v1/events?model=bc").await;
    assert!(events["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["actor"] == actor.as_str()));
}

#[tokio::test]
async fn a_push_serves_only_the_first_version_unless_promoted() {
    let server = TestServer::start().await;
    let (status, first) = server.push("bc", "breast_cancer_lr.onnx").await;
    assert_eq!(status, 201);
    assert_eq!(first["aliases"], json!(["production"]));
    let served = |server: &TestServer| {
        let url = server.url("/v2/models/bc");
        let http = server.http.clone();
        async move {
            let response = http.get(url).send().await.unwrap();
            response.headers()["x-modelbay-model-version"]
                .to_str()
                .unwrap()
                .to_owned()
        }
    };
    assert_eq!(served(&server).await, "1");
    let (status, second) = server.push("bc", "breast_cancer_rf.onnx").await;
    assert_eq!(status, 201);
    assert_eq!(second["aliases"], json!([]));
    assert_eq!(
        served(&server).await,
        "1",
        "a second push changes nothing served"
    );
    let (status, third) = server
        .push_bytes(
            "bc",
            "?promote=true",
            std::fs::read(crate::common::fixture("breast_cancer_mlp.onnx")).unwrap(),
        )
        .await;
    assert_eq!(status, 201, "{third}");
    assert_eq!(third["aliases"], json!(["production"]));
    assert_eq!(served(&server).await, "3");
}

#[tokio::test]
async fn requests_over_a_keys_rate_are_refused_with_429() {
    let server = TestServer::start().await;
    let (id, secret) = server
        .create_key(json!({"role": "consumer", "label": "burst",
                           "limits": {"requests_per_second": 2}}))
        .await;
    let client = client_with_key(&secret);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let response = client.get(server.url("/v1/models")).send().await.unwrap();
        if response.status() == 429 {
            assert_eq!(response.headers()["retry-after"], "1");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
            statuses.push(429);
        } else {
            statuses.push(response.status().as_u16());
        }
    }
    assert_eq!(statuses, [200, 200, 429, 429]);
    // Other keys are not affected.
    let (status, _) = server.get("/v1/models").await;
    assert_eq!(status, 200);
    let text = server.metrics_text().await;
    let line = format!(
        "modelbay_key_limited_requests_total{{key_id=\"{id}\",limit=\"requests_per_second\"}} 2"
    );
    assert!(text.contains(&line), "{line} not in the metrics");
}

#[test]
fn auth_off_is_refused_on_a_public_address_unless_insisted() {
    let dir = tempfile::tempdir().unwrap();
    let output = crate::common::modelbay()
        .args([
            "serve",
            "--auth",
            "off",
            "--listen",
            "0.0.0.0:0",
            "--grpc-listen",
        ])
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(dir.path())
        .env("ORT_DYLIB_PATH", crate::common::onnxruntime_library())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--allow-insecure"), "{stderr}");
}

#[tokio::test]
async fn an_admin_key_file_bootstraps_from_an_existing_secret() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "a-secret-from-a-kubernetes-secret-0123456789";
    let file = dir.path().join("mounted.key");
    std::fs::write(&file, format!("{secret}\n")).unwrap();
    let data = dir.path().join("data");
    let server = TestServer::start_in(&data, &["--admin-key-file", file.to_str().unwrap()]).await;
    assert!(!data.join("admin.key").exists(), "no key is generated");
    let (status, whoami) = status_and_json(
        client_with_key(secret)
            .get(server.url("/api/v1/whoami"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(whoami["role"], "admin");
}

#[tokio::test]
async fn only_short_printable_request_ids_are_kept() {
    let server = TestServer::start().await;
    let id_for = |sent: String| {
        let (http, url) = (server.http.clone(), server.url("/v2/health/live"));
        async move {
            let response = http
                .get(url)
                .header("x-request-id", sent)
                .send()
                .await
                .unwrap();
            response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned()
        }
    };
    assert_eq!(id_for("req-42.a:b_c".into()).await, "req-42.a:b_c");
    for unusable in [
        "<script>alert(1)</script>".to_owned(),
        "a b".into(),
        "x".repeat(129),
    ] {
        let answered = id_for(unusable.clone()).await;
        assert_ne!(answered, unusable);
        assert_eq!(answered.len(), 36, "a fresh UUID: {answered}");
    }
}

#[tokio::test]
async fn every_error_is_json_even_the_routers_own() {
    let server = TestServer::start().await;
    assert_eq!(server.push("bc", "breast_cancer_lr.onnx").await.0, 201);
    // A management body over axum's 2 MiB limit.
    let big = server
        .http
        .put(server.url("/api/v1/models/bc/policy"))
        .header("content-type", "application/json")
        .body(vec![b' '; 3 << 20])
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(big).await;
    assert_eq!(status, 413);
    assert!(body["error"].is_string(), "{body}");
    // A path segment that is not UTF-8 once decoded.
    let (status, body) = server.get("/api/v1/models/%FF/versions").await;
    assert_eq!(status, 400);
    assert!(body["error"].is_string(), "{body}");
    // A bad tensor names the tensor, not its values.
    let (status, body) = server
        .post_json(
            "/v2/models/bc/infer",
            &json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 30],
                                "data": [123456.789]}]}),
        )
        .await;
    assert_eq!(status, 400);
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("input") && !message.contains("123456"),
        "{message}"
    );
}
