//! Three replicas sharing one PostgreSQL registry and one S3 bucket (moto), behind nginx, all on
//! loopback: a promote on one replica is served by all three within a second; a rolling restart,
//! a PostgreSQL outage and a SIGKILLed replica under continuous HTTP, gRPC and LLM-stream load
//! fail no request; three replicas pushing and promoting one model leave a consistent registry.

use std::{
    path::Path,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use futures::StreamExt;
use modelbay_core::ModelName;
use modelbay_registry::{ArtifactLocation, EventKind, Registry, RegistryConfig};
use serde_json::{json, Value};

use crate::{
    clients::{smollm2, typed_request, BearerKey},
    common::{client_with_key, expected, fixture, status_and_json, TestServer},
    services::{free_port, replica_dir, Moto, Nginx, Postgres, BUCKET},
};

const ADMIN_KEY: &str = "mbk_clustertestclustertestclustertestclustertest0001";

struct Replica {
    index: usize,
    dir: std::path::PathBuf,
    http_port: u16,
    grpc_port: u16,
    server: Option<TestServer>,
}

struct Cluster {
    _root: tempfile::TempDir,
    postgres: Postgres,
    moto: Moto,
    replicas: Vec<Replica>,
    extra: Vec<String>,
}

impl Cluster {
    async fn start(n: usize) -> Self {
        Self::start_with(n, &[]).await
    }

    /// A cluster whose replicas all get `extra` flags too.
    async fn start_with(n: usize, extra: &[&str]) -> Self {
        let root = tempfile::tempdir().unwrap();
        let postgres = Postgres::start();
        let moto = Moto::start().await;
        let key_file = root.path().join("admin.key");
        std::fs::write(&key_file, ADMIN_KEY).unwrap();
        let mut cluster = Self {
            replicas: (0..n)
                .map(|index| Replica {
                    index,
                    dir: replica_dir(root.path(), index),
                    http_port: free_port(),
                    grpc_port: free_port(),
                    server: None,
                })
                .collect(),
            _root: root,
            postgres,
            moto,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        let starts: Vec<_> = (0..n).map(|i| cluster.launch(i)).collect();
        let started = futures::future::join_all(starts).await;
        for (replica, server) in cluster.replicas.iter_mut().zip(started) {
            replica.server = Some(server);
        }
        cluster
    }

    fn launch(&self, index: usize) -> impl std::future::Future<Output = TestServer> + 'static {
        let replica = &self.replicas[index];
        let dir = replica.dir.clone();
        // The test client reads the key where a first start would write it.
        std::fs::write(dir.join("admin.key"), ADMIN_KEY).unwrap();
        let mut args: Vec<String> = vec![
            "--listen".into(),
            format!("127.0.0.1:{}", replica.http_port),
            "--grpc-listen".into(),
            format!("127.0.0.1:{}", replica.grpc_port),
            "--registry".into(),
            self.postgres.url(),
            "--artifacts".into(),
            format!("s3://{BUCKET}/models"),
            "--admin-key-file".into(),
            dir.join("admin.key").to_string_lossy().into_owned(),
            "--replica-id".into(),
            format!("replica-{index}"),
            "--shutdown-grace".into(),
            "1".into(),
            "--drain-timeout".into(),
            "20".into(),
            "--workers-per-model".into(),
            "1".into(),
            "--llm-threads".into(),
            "1".into(),
            "--llm-max-sequences".into(),
            "2".into(),
        ];
        args.extend(self.extra.iter().cloned());
        let env = self.moto.env();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            TestServer::start_replica(&dir, &args, &env).await
        }
    }

    fn server(&self, index: usize) -> &TestServer {
        self.replicas[index].server.as_ref().unwrap()
    }

    fn stop(&mut self, index: usize) {
        let mut server = self.replicas[index].server.take().unwrap();
        assert!(
            server.stop().success(),
            "replica {index} exited with a failure"
        );
    }

    fn kill(&mut self, index: usize) {
        let mut server = self.replicas[index].server.take().unwrap();
        drop(
            std::process::Command::new("kill")
                .args(["-9", &server.pid().to_string()])
                .status(),
        );
        server.wait();
    }

    async fn restart(&mut self, index: usize) {
        let server = self.launch(index).await;
        self.replicas[index].server = Some(server);
    }

    fn http_ports(&self) -> Vec<u16> {
        self.replicas.iter().map(|r| r.http_port).collect()
    }

    fn grpc_ports(&self) -> Vec<u16> {
        self.replicas.iter().map(|r| r.grpc_port).collect()
    }
}

fn bc_inputs() -> Value {
    json!({ "inputs": expected("breast_cancer_lr")["inputs"] })
}

/// The version of `model` that `server` routes unpinned traffic to, from an inference.
async fn served_version(server: &TestServer, model: &str) -> Option<u32> {
    let response = server
        .http
        .post(server.url(&format!("/v2/models/{model}/infer")))
        .json(&bc_inputs())
        .send()
        .await
        .ok()?;
    let (status, body) = status_and_json(response).await;
    (status == 200).then(|| body["model_version"].as_str()?.parse().ok())?
}

async fn wait_served(cluster: &Cluster, model: &str, version: u32, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let mut all = true;
        for r in &cluster.replicas {
            if let Some(server) = &r.server {
                all &= served_version(server, model).await == Some(version);
            }
        }
        if all {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "not every replica served {model}@{version} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// Requests through nginx until stopped, counting successes and keeping the failures.
#[derive(Default)]
struct Load {
    stop: AtomicBool,
    http_ok: AtomicUsize,
    grpc_ok: AtomicUsize,
    streams_ok: AtomicUsize,
    failures: Mutex<Vec<String>>,
    /// Set around a SIGKILL: what was in flight on the killed replica (a gRPC call or an LLM
    /// stream whose body was already sent) is lost with it, and counted apart.
    killing: AtomicBool,
    lost_in_kill: Mutex<Vec<String>>,
}

impl Load {
    fn fail(&self, what: String) {
        if self.killing.load(Ordering::Acquire) {
            self.lost_in_kill.lock().unwrap().push(what);
        } else {
            self.failures.lock().unwrap().push(what);
        }
    }

    fn start(nginx: &Nginx) -> (Arc<Self>, Vec<tokio::task::JoinHandle<()>>) {
        let load = Arc::new(Self::default());
        let mut tasks = Vec::new();
        let http_url = format!("http://127.0.0.1:{}", nginx.http_port);
        for _ in 0..4 {
            let (load, url) = (load.clone(), http_url.clone());
            tasks.push(tokio::spawn(async move {
                let client = client_with_key(ADMIN_KEY);
                while !load.stop.load(Ordering::Acquire) {
                    let sent = client
                        .post(format!("{url}/v2/models/bc/infer"))
                        .json(&bc_inputs())
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status() == 200 => {
                            let _ = r.bytes().await;
                            load.http_ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => {
                            let status = r.status();
                            load.fail(format!(
                                "HTTP {status}: {}",
                                r.text().await.unwrap_or_default()
                            ))
                        }
                        Err(e) => load.fail(format!("HTTP: {e}")),
                    }
                }
            }));
        }
        for _ in 0..2 {
            let (load, port) = (load.clone(), nginx.grpc_port);
            tasks.push(tokio::spawn(async move {
                let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
                    .unwrap()
                    .connect()
                    .await
                    .unwrap();
                let mut client = modelbay_server::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient::with_interceptor(
                    channel,
                    BearerKey::new(ADMIN_KEY),
                );
                while !load.stop.load(Ordering::Acquire) {
                    match client.model_infer(typed_request("bc")).await {
                        Ok(_) => {
                            load.grpc_ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(status) => load.fail(format!("gRPC: {status}")),
                    }
                }
            }));
        }
        {
            let (load, url) = (load.clone(), http_url);
            tasks.push(tokio::spawn(async move {
                let client = client_with_key(ADMIN_KEY);
                while !load.stop.load(Ordering::Acquire) {
                    let body = json!({
                        "model": "chat",
                        "messages": [{ "role": "user", "content": "Say hello." }],
                        "max_tokens": 8,
                        "temperature": 0,
                        "stream": true,
                    });
                    let sent = client
                        .post(format!("{url}/v1/chat/completions"))
                        .json(&body)
                        .send()
                        .await;
                    let response = match sent {
                        Ok(r) if r.status() == 200 => r,
                        Ok(r) => {
                            load.fail(format!("stream {}", r.status()));
                            continue;
                        }
                        Err(e) => {
                            load.fail(format!("stream: {e}"));
                            continue;
                        }
                    };
                    let mut text = String::new();
                    let mut chunks = response.bytes_stream();
                    let mut broken = None;
                    while let Some(chunk) = chunks.next().await {
                        match chunk {
                            Ok(bytes) => text.push_str(&String::from_utf8_lossy(&bytes)),
                            Err(e) => {
                                broken = Some(e.to_string());
                                break;
                            }
                        }
                    }
                    match broken {
                        None if text.trim_end().ends_with("data: [DONE]") => {
                            load.streams_ok.fetch_add(1, Ordering::Relaxed);
                        }
                        None => load.fail(format!("stream ended without [DONE]: {text}")),
                        Some(e) => load.fail(format!("stream cut: {e}")),
                    }
                }
            }));
        }
        (load, tasks)
    }

    fn totals(&self) -> (usize, usize, usize) {
        (
            self.http_ok.load(Ordering::Relaxed),
            self.grpc_ok.load(Ordering::Relaxed),
            self.streams_ok.load(Ordering::Relaxed),
        )
    }
}

/// Points `production` at `version` through `server`.
async fn promote(server: &TestServer, model: &str, version: u32) -> reqwest::Response {
    server
        .http
        .put(server.url(&format!("/api/v1/models/{model}/aliases/production")))
        .json(&json!({ "version": version }))
        .send()
        .await
        .unwrap()
}

async fn promote_via(server: &TestServer, model: &str, version: u32) -> (u16, Value) {
    status_and_json(promote(server, model, version).await).await
}

/// The status and `Retry-After` of a promote.
async fn promote_retry_after(
    server: &TestServer,
    model: &str,
    version: u32,
) -> (u16, Option<String>) {
    let response = promote(server, model, version).await;
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (response.status().as_u16(), retry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_converge_and_survive_restarts_outages_and_kills() {
    let mut cluster = Cluster::start(3).await;
    let a = cluster.server(0);
    // Two versions of a tabular model and a language model, pushed through replica 0; the
    // others download the artifacts from S3 into their caches when they load them.
    let lr = std::fs::read(fixture("breast_cancer_lr.onnx")).unwrap();
    assert_eq!(a.push_bytes("bc", "", lr.clone()).await.0, 201);
    assert_eq!(a.push_bytes("bc", "", lr).await.0, 201);
    assert_eq!(a.push_bytes("chat", "", smollm2()).await.0, 201);
    wait_served(&cluster, "bc", 1, Duration::from_secs(30)).await;

    // 1. Convergence: a promote through replica 0, served by all three.
    let (p50, p99) = convergence(&cluster, 20).await;
    println!("promote → all 3 replicas serving: p50 {p50:?}, p99 {p99:?} over 20 promotions");
    assert!(p99 < Duration::from_secs(1), "p99 convergence {p99:?}");

    let nginx = Nginx::start(&cluster.http_ports(), &cluster.grpc_ports());
    let (load, tasks) = Load::start(&nginx);
    let load_started = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 2. A rolling restart of all three under load.
    for index in 0..3 {
        cluster.stop(index);
        cluster.restart(index).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    wait_served(&cluster, "bc", 1, Duration::from_secs(10)).await;
    println!(
        "rolling restart done: {:?} (HTTP, gRPC, streams) so far",
        load.totals()
    );

    // 3. PostgreSQL stopped for 10 s: inference goes on, writes get a clear 503, readiness
    //    stays true, and everything resumes when it is back.
    cluster.postgres.stop();
    let outage = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let write = Instant::now();
    let (status, body) = promote_via(cluster.server(1), "bc", 2).await;
    assert_eq!(status, 503, "a write during the outage: {body}");
    assert!(
        body["error"].as_str().unwrap().contains("unavailable"),
        "{body}"
    );
    assert!(
        write.elapsed() < Duration::from_secs(5),
        "the write took {:?}",
        write.elapsed()
    );
    assert!(
        write.elapsed() < Duration::from_secs(8),
        "the write took {:?}",
        write.elapsed()
    );
    assert_eq!(
        promote_retry_after(cluster.server(0), "bc", 2).await,
        (503, Some("1".to_owned()))
    );
    for r in &cluster.replicas {
        let (status, _) = r.server.as_ref().unwrap().get("/v2/health/ready").await;
        assert_eq!(
            status, 200,
            "replica {} left the load balancer during the outage",
            r.index
        );
    }
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(outage.elapsed())).await;
    cluster.postgres.start_again();
    let back = Instant::now();
    loop {
        let (status, body) = promote_via(cluster.server(1), "bc", 2).await;
        if status == 200 {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(20),
            "writes did not resume: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_served(&cluster, "bc", 2, Duration::from_secs(10)).await;

    // 4. A replica SIGKILLed under load: nginx routes around it; restarted, it catches up.
    load.killing.store(true, Ordering::Release);
    cluster.kill(2);
    tokio::time::sleep(Duration::from_secs(1)).await;
    load.killing.store(false, Ordering::Release);
    let (status, body) = promote_via(cluster.server(0), "bc", 1).await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.restart(2).await;
    assert_eq!(served_version(cluster.server(2), "bc").await, Some(1));
    wait_served(&cluster, "bc", 1, Duration::from_secs(10)).await;

    load.stop.store(true, Ordering::Release);
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = load_started.elapsed().as_secs_f64();
    let (http, grpc, streams) = load.totals();
    let rate = (http + grpc) as f64 / elapsed;
    println!(
        "under load for {elapsed:.1} s: {http} HTTP + {grpc} gRPC inferences ({rate:.0}/s), {streams} LLM streams"
    );
    let failures = load.failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} failed requests, e.g. {:?}\nnginx: {}",
        failures.len(),
        &failures[..failures.len().min(5)],
        nginx.error_log()
    );
    assert!(rate >= 200.0, "only {rate:.0} inferences/s through nginx");
    // At most what the load's seven clients had in flight on the killed replica.
    let lost = load.lost_in_kill.lock().unwrap().clone();
    println!(
        "lost with the SIGKILLed replica: {} requests {lost:?}",
        lost.len()
    );
    assert!(
        lost.len() <= 7,
        "{} requests failed around the kill: {lost:?}",
        lost.len()
    );
    assert!(streams >= 3, "only {streams} LLM streams finished");

    // 5. The cluster view: three replicas, ready and current.
    let started = Instant::now();
    loop {
        let (status, view) = cluster.server(1).get("/api/v1/cluster").await;
        assert_eq!(status, 200, "{view}");
        let current: Vec<&Value> = view["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["state"] == "ready" && r["behind"] == 0)
            .collect();
        if current.len() == 3 {
            assert!(current.iter().all(|r| r["loaded"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l["model"] == "bc")));
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "cluster view: {view}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // 6. Three replicas pushing and promoting one model at once.
    let bytes = std::fs::read(fixture("breast_cancer_lr.onnx")).unwrap();
    let writers = (0..3).map(|i| {
        let server = cluster.server(i);
        let bytes = bytes.clone();
        async move {
            for _ in 0..3 {
                let (status, body) = server.push_bytes("race", "", bytes.clone()).await;
                assert_eq!(status, 201, "{body}");
                let version = body["version"].as_u64().unwrap() as u32;
                let (status, body) = promote_via(server, "race", version).await;
                assert_eq!(status, 200, "{body}");
            }
        }
    });
    futures::future::join_all(writers).await;
    check_registry(&cluster, cluster._root.path()).await;
}

/// Reads the shared registry directly: contiguous versions, aliases equal to their last event,
/// every blob intact.
async fn check_registry(cluster: &Cluster, root: &Path) {
    for (k, v) in cluster.moto.env() {
        std::env::set_var(k, v);
    }
    let mut config = RegistryConfig::local(&root.join("checker"));
    config.metadata_url = Some(cluster.postgres.url());
    config.artifacts = ArtifactLocation::S3 {
        bucket: BUCKET.into(),
        prefix: "models".into(),
    };
    let registry = Registry::open(&config).await.unwrap();
    let race = ModelName::new("race").unwrap();
    let versions = registry.versions(&race).await.unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        (1..=9).collect::<Vec<_>>()
    );
    for v in &versions {
        registry.read_artifact(v).await.unwrap();
    }
    for model in ["race", "bc", "chat"] {
        let name = ModelName::new(model).unwrap();
        let events = registry.events(Some(model), 0, 1000).await.unwrap();
        for alias in registry.aliases(Some(&name)).await.unwrap() {
            let last = events
                .iter()
                .rev()
                .find(|e| {
                    matches!(e.kind, EventKind::AliasSet | EventKind::AliasRollback)
                        && e.after.as_ref().unwrap()["alias"] == alias.alias.as_str()
                })
                .unwrap();
            assert_eq!(
                u64::from(alias.version),
                last.after.as_ref().unwrap()["version"].as_u64().unwrap(),
                "{model}:{}",
                alias.alias
            );
        }
    }
}

/// Promotes through replica 0 `runs` times and returns p50 and p99 of the time until every
/// replica serves the new version.
async fn convergence(cluster: &Cluster, runs: u32) -> (Duration, Duration) {
    let mut times = Vec::new();
    for i in 0..runs {
        let version = if i % 2 == 0 { 2 } else { 1 };
        let started = Instant::now();
        let (status, body) = promote_via(cluster.server(0), "bc", version).await;
        assert_eq!(status, 200, "{body}");
        wait_served(cluster, "bc", version, Duration::from_secs(10)).await;
        times.push(started.elapsed());
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

/// v2 inferences per second that `clients` concurrent clients get from one server in `span`.
async fn throughput(server: &TestServer, clients: usize, span: Duration) -> f64 {
    let done = Arc::new(AtomicUsize::new(0));
    let until = Instant::now() + span;
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (url, done) = (server.url("/v2/models/bc/infer"), done.clone());
            let client = server.http.clone();
            tokio::spawn(async move {
                while Instant::now() < until {
                    let r = client.post(&url).json(&bc_inputs()).send().await.unwrap();
                    assert_eq!(r.status(), 200);
                    let _ = r.bytes().await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / span.as_secs_f64()
}

/// The figures in docs/BENCHMARKS.md ("Cluster mode"). Run with
/// `cargo test -p modelbay-cli --test cluster benchmark -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a benchmark: prints a table"]
async fn benchmark() {
    let mut rows = Vec::new();
    for (label, extra) in [
        ("LISTEN/NOTIFY + 1 s polling", vec![]),
        ("polling only, every 1 s", vec!["--event-notify", "false"]),
        (
            "polling only, every 100 ms",
            vec!["--event-notify", "false", "--event-poll-ms", "100"],
        ),
    ] {
        let cluster = Cluster::start_with(3, &extra).await;
        let lr = std::fs::read(fixture("breast_cancer_lr.onnx")).unwrap();
        cluster.server(0).push_bytes("bc", "", lr.clone()).await;
        cluster.server(0).push_bytes("bc", "", lr).await;
        wait_served(&cluster, "bc", 1, Duration::from_secs(30)).await;
        let (p50, p99) = convergence(&cluster, 20).await;
        rows.push(format!(
            "| convergence, {label} | p50 {:.0} ms | p99 {:.0} ms |",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3
        ));
    }

    let mut cluster = Cluster::start(3).await;
    let lr = std::fs::read(fixture("breast_cancer_lr.onnx")).unwrap();
    cluster.server(0).push_bytes("bc", "", lr.clone()).await;
    cluster.server(0).push_bytes("bc", "", lr).await;
    wait_served(&cluster, "bc", 1, Duration::from_secs(30)).await;
    // One replica on PostgreSQL against one on SQLite, same model, same load.
    let sqlite = TestServer::start_with(&["--workers-per-model", "1"]).await;
    sqlite.push("bc", "breast_cancer_lr.onnx").await;
    for _ in 0..2 {
        let on_postgres = throughput(cluster.server(1), 4, Duration::from_secs(5)).await;
        let on_sqlite = throughput(&sqlite, 4, Duration::from_secs(5)).await;
        rows.push(format!("| v2 JSON, 1 replica, 4 clients | PostgreSQL {on_postgres:.0}/s | SQLite {on_sqlite:.0}/s ({:.3}×) |", on_postgres / on_sqlite));
    }
    drop(sqlite);

    // A replica down while 1,000 events are written, then restarted.
    cluster.stop(2);
    let writes = Instant::now();
    for i in 0..1000u32 {
        let (status, body) = cluster
            .server(0)
            .put_json(
                "/api/v1/models/bc/aliases/staging",
                &json!({ "version": 1 + i % 2 }),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let written = writes.elapsed();
    let (_, moved) = promote_via(cluster.server(0), "bc", 2).await;
    assert!(moved["version"].is_number());
    let restarted = Instant::now();
    cluster.restart(2).await;
    let ready = restarted.elapsed();
    assert_eq!(served_version(cluster.server(2), "bc").await, Some(2));
    rows.push(format!("| restart with 1,000 pending events (written in {:.1} s) | ready and serving current aliases after {:.2} s | |", written.as_secs_f64(), ready.as_secs_f64()));

    println!("| measurement | result | |\n|---|---|---|");
    for row in rows {
        println!("{row}");
    }
}
