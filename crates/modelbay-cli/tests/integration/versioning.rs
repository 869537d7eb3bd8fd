//! Version control through the API: aliases and rollback, addressing, routing policies (split,
//! sticky, shadow), lifecycle, the event log, hot swap under load, loading and eviction.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use serde_json::{json, Value};

use crate::common::{expected, run_cli, status_and_json, TestServer};

fn bc_inputs() -> Value {
    json!({ "inputs": expected("breast_cancer_lr")["inputs"] })
}

/// Sends one inference and returns (status, serving version from the header, alias header).
async fn infer(
    server: &TestServer,
    path: &str,
    user: Option<&str>,
) -> (u16, Option<u32>, Option<String>) {
    let mut request = server.http.post(server.url(path)).json(&bc_inputs());
    if let Some(user) = user {
        request = request.header("x-user-id", user);
    }
    let response = request.send().await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let version = header("x-modelbay-model-version").map(|v| v.parse().unwrap());
    let alias = header("x-modelbay-alias");
    let status = response.status().as_u16();
    if status == 200 {
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["model_version"]
                .as_str()
                .map(|v| v.parse::<u32>().unwrap()),
            version
        );
    }
    (status, version, alias)
}

async fn send(server: &TestServer, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = server
        .http
        .request(method.parse().unwrap(), server.url(path));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    if response.status() == 204 {
        return (204, Value::Null);
    }
    status_and_json(response).await
}

async fn promote(server: &TestServer, model: &str, alias: &str, version: u32) -> (u16, Value) {
    send(
        server,
        "PUT",
        &format!("/api/v1/models/{model}/aliases/{alias}"),
        Some(json!({ "version": version })),
    )
    .await
}

/// Archives version `version` of `bc`.
async fn archive(server: &TestServer, version: u32) -> (u16, Value) {
    send(
        server,
        "POST",
        &format!("/api/v1/models/bc/versions/{version}/archive"),
        None,
    )
    .await
}

/// Rolls `bc`'s production alias back one step.
async fn rollback_production(server: &TestServer) -> (u16, Value) {
    send(
        server,
        "POST",
        "/api/v1/models/bc/aliases/production/rollback",
        None,
    )
    .await
}

/// Pushes LR, RF and MLP breast-cancer models as versions 1, 2, 3 of `bc`.
async fn three_versions(server: &TestServer) {
    for file in [
        "breast_cancer_lr.onnx",
        "breast_cancer_rf.onnx",
        "breast_cancer_mlp.onnx",
    ] {
        assert_eq!(server.push("bc", file).await.0, 201);
    }
}

#[tokio::test]
async fn aliases_promote_roll_back_and_address_versions() {
    let server = TestServer::start().await;
    three_versions(&server).await;

    assert_eq!(
        infer(&server, "/v2/models/bc/infer", None).await,
        (200, Some(1), Some("production".into())),
        "the first version is production; later pushes serve only once promoted"
    );
    assert_eq!(promote(&server, "bc", "staging", 2).await.0, 200);
    assert_eq!(
        infer(&server, "/v2/models/bc/versions/staging/infer", None)
            .await
            .1,
        Some(2)
    );
    assert_eq!(
        infer(&server, "/v2/models/bc@staging/infer", None).await.1,
        Some(2)
    );
    assert_eq!(
        infer(&server, "/v2/models/bc@1/infer", None).await.1,
        Some(1)
    );

    let (status, record) = promote(&server, "bc", "production", 1).await;
    assert_eq!((status, record["version"].clone()), (200, json!(1)));
    assert_eq!(
        infer(&server, "/v2/models/bc/infer", None).await,
        (200, Some(1), Some("production".into())),
        "production serves unpinned traffic"
    );
    promote(&server, "bc", "production", 2).await;
    let (_, record) = promote(&server, "bc", "production", 3).await;
    assert_eq!(record["history"], json!([2, 1]));

    let rollback = |server: &TestServer| {
        let path = server.url("/api/v1/models/bc/aliases/production/rollback");
        let http = server.http.clone();
        async move { status_and_json(http.post(path).send().await.unwrap()).await }
    };
    assert_eq!(rollback(&server).await.1["version"], 2);
    assert_eq!(
        rollback(&server).await.1["version"],
        1,
        "rolling back twice goes back two steps"
    );
    let (status, body) = rollback(&server).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(infer(&server, "/v2/models/bc/infer", None).await.1, Some(1));

    let (_, versions) = server.get("/api/v1/models/bc/versions").await;
    assert_eq!(versions["versions"][0]["aliases"], json!(["production"]));
    assert_eq!(versions["versions"][1]["aliases"], json!(["staging"]));

    // Lifecycle: referenced versions are protected; archived ones never serve.
    let (status, body) = send(&server, "DELETE", "/api/v1/models/bc/versions/1", None).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("production"));
    assert_eq!(archive(&server, 3).await.0, 200);
    assert_eq!(
        infer(&server, "/v2/models/bc/versions/3/infer", None)
            .await
            .0,
        409
    );
    assert_eq!(promote(&server, "bc", "canary", 3).await.0, 409);
    assert_eq!(
        send(&server, "DELETE", "/api/v1/models/bc/aliases/staging", None)
            .await
            .0,
        204
    );
    assert_eq!(
        infer(&server, "/v2/models/bc@staging/infer", None).await.0,
        404
    );
    assert_eq!(
        send(&server, "DELETE", "/api/v1/models/bc/versions/2", None)
            .await
            .0,
        204
    );
    assert_eq!(server.get("/api/v1/models/bc/versions/2").await.0, 404);
    assert_eq!(
        server.push("bc", "breast_cancer_lr.onnx").await.1["version"],
        4,
        "numbers are never reused"
    );

    // Invalid requests.
    assert_eq!(promote(&server, "bc", "production", 99).await.0, 404);
    assert_eq!(promote(&server, "bc", "42", 1).await.0, 400);
    assert_eq!(promote(&server, "nope", "production", 1).await.0, 404);
    let (status, body) = send(
        &server,
        "PUT",
        "/api/v1/models/bc/aliases/production",
        Some(json!({ "v": 1 })),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    // The audit trail records every change, in order, with before and after.
    let (_, events) = server.get("/api/v1/events?model=bc").await;
    let events = events["events"].as_array().unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "push",
            // The first version becomes `production` with its push.
            "alias.set",
            "push",
            "push",
            "alias.set",
            "alias.set",
            "alias.set",
            "alias.rollback",
            "alias.rollback",
            "version.archive",
            "alias.delete",
            "version.delete",
            "push"
        ]
    );
    assert!(events
        .windows(2)
        .all(|w| w[0]["seq"].as_i64() < w[1]["seq"].as_i64()));
    assert_eq!(
        events[7]["before"],
        json!({ "alias": "production", "version": 3 })
    );
    assert_eq!(
        events[7]["after"],
        json!({ "alias": "production", "version": 2 })
    );
    // Every change names the key that made it.
    let actor = &events[0]["actor"];
    assert!(
        actor.as_str().unwrap().starts_with("key:")
            && actor.as_str().unwrap().ends_with("(bootstrap admin)"),
        "{actor}"
    );
    assert!(events.iter().all(|e| &e["actor"] == actor));
    let since = events[10]["seq"].as_i64().unwrap();
    let (_, later) = server.get(&format!("/api/v1/events?since={since}")).await;
    assert_eq!(later["events"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn the_cli_promotes_rolls_back_and_shows_the_audit_trail() {
    let server = TestServer::start().await;
    three_versions(&server).await;
    let run = |args: &[&str]| run_cli(&server, args);
    assert_eq!(run(&["promote", "bc", "1"]).trim(), "bc@production -> v1");
    assert_eq!(run(&["promote", "bc", "2"]).trim(), "bc@production -> v2");
    assert_eq!(
        run(&["promote", "bc", "3", "--alias", "canary"]).trim(),
        "bc@canary -> v3"
    );
    assert_eq!(run(&["rollback", "bc"]).trim(), "bc@production -> v1");
    let versions = run(&["versions", "bc"]);
    let header: Vec<&str> = versions
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect();
    let row_v1: Vec<&str> = versions
        .lines()
        .find(|l| l.contains("sha256:"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(header[1..3], ["VERSION", "ALIASES"], "{versions}");
    assert_eq!(
        row_v1[..3],
        ["│", "1", "production"],
        "columns line up: {versions}"
    );
    let aliases = run(&["aliases", "bc"]);
    assert!(
        aliases.contains("canary") && aliases.contains("production"),
        "{aliases}"
    );
    run(&["delete", "bc", "2"]);
    assert!(
        run(&["traffic", "bc", "production=90", "canary=10"]).contains("production=90 canary=10")
    );
    run(&["traffic", "bc", "--clear"]);
    let audit = run(&["audit", "bc"]);
    for kind in [
        "push",
        "alias.set",
        "alias.rollback",
        "version.delete",
        "policy.set",
        "policy.delete",
    ] {
        assert!(audit.contains(kind), "{kind} missing from\n{audit}");
    }
}

#[tokio::test]
async fn a_weighted_split_matches_its_weights_over_10000_requests() {
    let server = Arc::new(TestServer::start().await);
    three_versions(&server).await;
    promote(&server, "bc", "production", 1).await;
    promote(&server, "bc", "canary", 2).await;
    // The policy routes unpinned traffic even though `production` exists: this is the
    // `modelbay traffic bc production=90 canary=10` canary.
    let policy = json!({ "split": [{ "target": "production", "weight": 90 }, { "target": "canary", "weight": 10 }] });
    let (status, body) = send(&server, "PUT", "/api/v1/models/bc/policy", Some(policy)).await;
    assert_eq!(status, 200, "{body}");

    // Metadata and readiness describe the heaviest arm, every time.
    for _ in 0..10 {
        let response = server
            .http
            .get(server.url("/v2/models/bc"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["x-modelbay-model-version"], "1");
    }
    assert_eq!(server.get("/v2/models/bc/ready").await.1["version"], "1");

    let counts: Arc<parking_lot_free::Counts> = Arc::default();
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (server, counts, next) = (server.clone(), counts.clone(), next.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < 10_000 {
                    let (status, version, _) = infer(&server, "/v2/models/bc/infer", None).await;
                    assert_eq!(status, 200);
                    counts.add(version.unwrap());
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let counts = counts.snapshot();
    let total: usize = counts.values().sum();
    assert_eq!(total, 10_000);
    let canary = *counts.get(&2).unwrap_or(&0) as f64 / total as f64 * 100.0;
    assert!(
        (canary - 10.0).abs() <= 2.0,
        "canary got {canary:.2}% of traffic: {counts:?}"
    );
    assert_eq!(counts.len(), 2, "{counts:?}");

    // Without the policy, `production` takes all unpinned traffic again.
    assert_eq!(
        send(&server, "DELETE", "/api/v1/models/bc/policy", None)
            .await
            .0,
        204
    );
    for _ in 0..20 {
        assert_eq!(infer(&server, "/v2/models/bc/infer", None).await.1, Some(1));
    }
}

#[tokio::test]
async fn a_model_whose_versions_are_all_deleted_is_listed_and_not_served() {
    let server = TestServer::start().await;
    assert_eq!(server.push("gone", "breast_cancer_lr.onnx").await.0, 201);
    // The first version is `production`: the alias goes first.
    assert_eq!(
        send(
            &server,
            "DELETE",
            "/api/v1/models/gone/aliases/production",
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        send(&server, "DELETE", "/api/v1/models/gone/versions/1", None)
            .await
            .0,
        204
    );
    let (status, models) = server.get("/api/v1/models").await;
    assert_eq!(status, 200, "{models}");
    assert_eq!(models["models"][0]["version_count"], 0);
    assert_eq!(infer(&server, "/v2/models/gone/infer", None).await.0, 404);
    assert_eq!(
        send(&server, "POST", "/v2/repository/index", None).await.0,
        200
    );
    assert_eq!(
        server.push("gone", "breast_cancer_lr.onnx").await.1["version"],
        2
    );
}

/// A tiny thread-safe counter map, so the test needs no extra lock crate.
mod parking_lot_free {
    use std::{collections::HashMap, sync::Mutex};

    #[derive(Default)]
    pub struct Counts(Mutex<HashMap<u32, usize>>);

    impl Counts {
        pub fn add(&self, version: u32) {
            *self.0.lock().unwrap().entry(version).or_default() += 1;
        }
        pub fn snapshot(&self) -> HashMap<u32, usize> {
            self.0.lock().unwrap().clone()
        }
    }
}

#[tokio::test]
async fn a_sticky_header_pins_each_caller_to_one_arm() {
    let server = TestServer::start().await;
    three_versions(&server).await;
    let policy = json!({ "split": [{ "target": 1, "weight": 50 }, { "target": 2, "weight": 50 }], "sticky_header": "x-user-id" });
    assert_eq!(
        send(&server, "PUT", "/api/v1/models/bc/policy", Some(policy))
            .await
            .0,
        200
    );
    let mut seen = HashMap::new();
    for user in 0..24 {
        let user = format!("user-{user}");
        let (_, first, _) = infer(&server, "/v2/models/bc/infer", Some(&user)).await;
        for _ in 0..8 {
            assert_eq!(
                infer(&server, "/v2/models/bc/infer", Some(&user)).await.1,
                first,
                "{user} moved arms"
            );
        }
        *seen.entry(first.unwrap()).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2, "users spread over both arms: {seen:?}");
}

#[tokio::test]
async fn shadow_traffic_is_recorded_and_never_returned() {
    let server = TestServer::start().await;
    three_versions(&server).await;
    promote(&server, "bc", "stable", 1).await;
    promote(&server, "bc", "candidate", 2).await;
    let policy = json!({ "split": [{ "target": "stable", "weight": 1 }], "shadow": "candidate" });
    assert_eq!(
        send(&server, "PUT", "/api/v1/models/bc/policy", Some(policy))
            .await
            .0,
        200
    );
    for _ in 0..40 {
        assert_eq!(
            infer(&server, "/v2/models/bc/infer", None).await.1,
            Some(1),
            "only the primary answers"
        );
    }
    let mut report = Value::Null;
    for _ in 0..100 {
        report = server.get("/api/v1/models/bc/shadow").await.1["shadow"].clone();
        if report["requests"] == 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(report["requests"], 40, "{report}");
    assert_eq!(report["errors"], 0);
    assert_eq!(report["target"], "candidate");
    // LR and RF agree on these rows' labels but not on the exact probabilities.
    assert_eq!(
        report["outputs"]["label"]["agreement_rate"], 1.0,
        "{report}"
    );
    assert_eq!(report["outputs"]["label"]["compared"], 40);
    assert!(
        report["outputs"]["probabilities"]["agreement_rate"]
            .as_f64()
            .unwrap()
            < 1.0
    );
    assert!(
        report["outputs"]["probabilities"]["mean_max_abs_diff"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(report["shadow_mean_latency_ms"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn promote_and_rollback_under_load_fail_no_request() {
    let server = Arc::new(TestServer::start().await);
    three_versions(&server).await;
    promote(&server, "bc", "production", 1).await;
    let stop = Arc::new(AtomicBool::new(false));
    let served: Arc<parking_lot_free::Counts> = Arc::default();
    let failures = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let (server, stop, served, failures) = (
                server.clone(),
                stop.clone(),
                served.clone(),
                failures.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let (status, version, _) = infer(&server, "/v2/models/bc/infer", None).await;
                    if status == 200 {
                        served.add(version.unwrap());
                    } else {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let started = std::time::Instant::now();
    for version in [2, 3, 1, 2] {
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(promote(&server, "bc", "production", version).await.0, 200);
        assert_eq!(
            infer(&server, "/v2/models/bc/infer", None).await.1,
            Some(version),
            "traffic follows the alias as soon as promote returns"
        );
    }
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let path = server.url("/api/v1/models/bc/aliases/production/rollback");
        assert_eq!(server.http.post(path).send().await.unwrap().status(), 200);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let served = served.snapshot();
    let total: usize = served.values().sum();
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "failed requests during hot swaps"
    );
    // The swaps happened under real load: a count, not a rate, so a busy machine (a parallel
    // build, the other tests) does not fail the test.
    assert!(
        total >= 100,
        "only {total} requests were served in {elapsed:.1} s of swaps"
    );
    assert_eq!(
        served.len(),
        3,
        "every version served at some point: {served:?}"
    );
}

#[tokio::test]
async fn a_version_that_fails_to_load_leaves_the_alias_where_it_was() {
    let server = TestServer::start().await;
    three_versions(&server).await;
    promote(&server, "bc", "production", 1).await;
    let (_, v2) = server.get("/api/v1/models/bc/versions/2").await;
    let hex = v2["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_owned();
    let blob = server.data_dir.join("artifacts/blobs/sha256").join(hex);
    std::fs::write(&blob, b"not the model any more").unwrap();
    let (status, body) = promote(&server, "bc", "production", 2).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(
        server.get("/api/v1/models/bc/aliases/production").await.1["version"],
        1
    );
    assert_eq!(infer(&server, "/v2/models/bc/infer", None).await.1, Some(1));
    let (_, events) = server.get("/api/v1/events?model=bc").await;
    assert_eq!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "alias.set")
            .count(),
        1
    );
}

async fn repository_state(server: &TestServer) -> HashMap<String, String> {
    let (status, index) = send(server, "POST", "/v2/repository/index", None).await;
    assert_eq!(status, 200);
    index
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                format!(
                    "{}@{}",
                    e["name"].as_str().unwrap(),
                    e["version"].as_str().unwrap()
                ),
                e["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn unreferenced_versions_are_evicted_to_stay_within_the_memory_budget() {
    // One session per version; RF is 61 kB and GBR 51 kB, so both do not fit in 100 kB
    // beside v1 (LR, `production`, which is never evicted).
    let server =
        TestServer::start_with(&["--max-model-memory", "100000", "--workers-per-model", "1"]).await;
    for file in [
        "breast_cancer_lr.onnx",
        "breast_cancer_rf.onnx",
        "diabetes_gbr.onnx",
    ] {
        assert_eq!(server.push("m", file).await.0, 201);
    }
    assert_eq!(
        server
            .post_json("/v2/models/m/versions/2/infer", &bc_inputs())
            .await
            .0,
        200
    );
    let state = repository_state(&server).await;
    assert_eq!(state["m@2"], "READY");
    let diabetes = json!({ "inputs": expected("diabetes_gbr")["inputs"] });
    assert_eq!(
        server
            .post_json("/v2/models/m/versions/3/infer", &diabetes)
            .await
            .0,
        200
    );
    let state = repository_state(&server).await;
    assert_eq!(
        (
            state["m@1"].as_str(),
            state["m@2"].as_str(),
            state["m@3"].as_str()
        ),
        ("READY", "UNAVAILABLE", "READY"),
        "v2 was least recently used; v1 is referenced"
    );
    // Evicted versions load again on demand.
    assert_eq!(
        server
            .post_json("/v2/models/m/versions/2/infer", &bc_inputs())
            .await
            .0,
        200
    );
    let state = repository_state(&server).await;
    assert_eq!(
        (state["m@2"].as_str(), state["m@3"].as_str()),
        ("READY", "UNAVAILABLE")
    );
}

#[tokio::test]
async fn the_repository_extension_loads_and_unloads_models() {
    let server = TestServer::start().await;
    three_versions(&server).await;
    promote(&server, "bc", "production", 2).await;
    let state = repository_state(&server).await;
    assert_eq!(state["bc@2"], "READY", "promote loads the version");
    assert_eq!(state["bc@1"], "UNAVAILABLE");
    assert_eq!(
        send(&server, "POST", "/v2/repository/models/bc/unload", None)
            .await
            .0,
        200
    );
    assert_eq!(repository_state(&server).await["bc@2"], "UNAVAILABLE");
    assert_eq!(
        send(&server, "POST", "/v2/repository/models/bc/load", None)
            .await
            .0,
        200
    );
    assert_eq!(repository_state(&server).await["bc@2"], "READY");
    assert_eq!(
        send(&server, "POST", "/v2/repository/models/nope/load", None)
            .await
            .0,
        404
    );
    let config_override = json!({ "parameters": { "config": "{}" } });
    let (status, body) = send(
        &server,
        "POST",
        "/v2/repository/models/bc/load",
        Some(config_override),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (_, ready_only) = send(
        &server,
        "POST",
        "/v2/repository/index",
        Some(json!({ "ready": true })),
    )
    .await;
    assert_eq!(
        ready_only,
        json!([{ "name": "bc", "version": "2", "state": "READY", "reason": "" }])
    );
}

#[tokio::test]
async fn referenced_versions_load_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = TestServer::start_in(dir.path(), &[]).await;
    three_versions(&first).await;
    promote(&first, "bc", "production", 1).await;
    promote(&first, "bc", "canary", 2).await;
    assert!(first.stop().success());
    let second = TestServer::start_in(dir.path(), &[]).await; // waits for /v2/health/ready
    let state = repository_state(&second).await;
    assert_eq!(
        (
            state["bc@1"].as_str(),
            state["bc@2"].as_str(),
            state["bc@3"].as_str()
        ),
        ("READY", "READY", "UNAVAILABLE")
    );
}

#[tokio::test]
async fn concurrent_first_requests_load_a_version_once() {
    let server = Arc::new(TestServer::start_logging(&[]).await);
    three_versions(&server).await;
    let loads_of_v2 = |log: &str| {
        log.lines()
            .filter(|l| l.contains("model loaded and warmed up") && l.contains("version=2"))
            .count()
    };
    // Only the first version (production) loaded at its push; v2 is not loaded.
    assert_eq!(repository_state(&server).await["bc@2"], "UNAVAILABLE");
    let before = loads_of_v2(&server.log());
    let requests: Vec<_> = (0..24)
        .map(|_| {
            let server = server.clone();
            tokio::spawn(async move {
                infer(&server, "/v2/models/bc/versions/2/infer", None)
                    .await
                    .0
            })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap(), 200);
    }
    let log = server.log();
    assert_eq!(loads_of_v2(&log) - before, 1, "{log}");
}

#[tokio::test]
async fn rollback_skips_versions_archived_since() {
    let server = TestServer::start().await;
    three_versions(&server).await;
    for v in [1, 2, 3] {
        assert_eq!(promote(&server, "bc", "production", v).await.0, 200);
    }
    // History is [2, 1]; archive 2, then roll back: production lands on 1.
    assert_eq!(archive(&server, 2).await.0, 200);
    let (status, record) = rollback_production(&server).await;
    assert_eq!(
        (status, record["version"].clone()),
        (200, json!(1)),
        "{record}"
    );
    assert_eq!(infer(&server, "/v2/models/bc/infer", None).await.1, Some(1));
}

#[tokio::test]
async fn rollback_never_lands_on_the_current_version() {
    let server = TestServer::start().await;
    three_versions(&server).await;
    for v in [1, 2, 1] {
        assert_eq!(promote(&server, "bc", "production", v).await.0, 200);
    }
    // History is [2, 1] with production on 1; once 2 is archived nothing earlier can serve.
    assert_eq!(archive(&server, 2).await.0, 200);
    let (status, body) = rollback_production(&server).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        server.get("/api/v1/models/bc/aliases/production").await.1["version"],
        1
    );
    let (_, events) = server.get("/api/v1/events?model=bc").await;
    assert!(events["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["kind"] != "alias.rollback"));
}
