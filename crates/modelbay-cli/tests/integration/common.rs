//! Starts the real `modelbay` binary on 127.0.0.1 port 0 with a temporary data directory and
//! talks to it over HTTP.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::Duration,
};

use serde_json::Value;
use tempfile::TempDir;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn fixture(name: &str) -> PathBuf {
    repo_root().join("fixtures").join(name)
}

/// The expected inputs and outputs written by scripts/make_fixtures.py.
pub fn expected(model: &str) -> Value {
    let path = fixture(&format!("{model}.expected.json"));
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// Every valid fixture model.
pub const FIXTURES: &[&str] = &[
    "breast_cancer_lr",
    "breast_cancer_rf",
    "breast_cancer_mlp",
    "diabetes_gbr",
    "credit_default",
    "german_credit",
    "all_types_identity",
    "bf16_identity",
];

pub fn onnxruntime_library() -> String {
    if let Ok(path) = std::env::var("ORT_DYLIB_PATH") {
        return path;
    }
    let cached = repo_root().join(".cache/onnxruntime/lib/libonnxruntime.so");
    assert!(
        cached.exists(),
        "ONNX Runtime is missing: run scripts/fetch-models.sh (or set ORT_DYLIB_PATH)"
    );
    cached.to_string_lossy().into_owned()
}

pub fn modelbay() -> Command {
    Command::new(env!("CARGO_BIN_EXE_modelbay"))
}

/// Runs a `modelbay` client command against `server` (with its admin key), asserting success;
/// returns stdout.
pub fn run_cli(server: &TestServer, args: &[&str]) -> String {
    let output = modelbay()
        .args(args)
        .env("MODELBAY_SERVER", &server.url)
        .env("MODELBAY_API_KEY", &server.admin_key)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "modelbay {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

pub struct TestServer {
    child: Child,
    pub url: String,
    /// The gRPC endpoint, `http://127.0.0.1:PORT`.
    pub grpc_url: String,
    pub data_dir: PathBuf,
    _temp: Option<TempDir>,
    /// A client that sends the admin key with every request.
    pub http: reqwest::Client,
    /// The administrator key the server wrote to `<data-dir>/admin.key`.
    pub admin_key: String,
    /// A client that sends no key.
    pub anonymous: reqwest::Client,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    pub async fn start_with(extra: &[&str]) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_owned();
        let mut server = Self::start_in(&dir, extra).await;
        server._temp = Some(temp);
        server
    }

    /// Starts a server on an existing data directory (to test restarts).
    pub async fn start_in(data_dir: &Path, extra: &[&str]) -> Self {
        Self::launch(data_dir, extra, None).await
    }

    /// Starts a server whose clients trust `ca` (for TLS tests).
    pub async fn start_trusting(ca: &Path, extra: &[&str]) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let ca = std::fs::read(ca).unwrap();
        let mut server = Self::launch_with(temp.path(), extra, None, Some(&ca), &[]).await;
        server._temp = Some(temp);
        server
    }

    /// Starts a server whose `info` log goes to `data_dir/server.log` (read with [`Self::log`]).
    pub async fn start_logging(extra: &[&str]) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(temp.path().join("server.log")).unwrap();
        let mut server = Self::launch(temp.path(), extra, Some(log)).await;
        server._temp = Some(temp);
        server
    }

    /// The server's log so far (for servers started with [`Self::start_logging`]).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("server.log")).unwrap_or_default()
    }

    /// Starts a server with extra environment variables (e.g. `TOKIO_WORKER_THREADS`).
    pub async fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Self {
        let temp = tempfile::tempdir().unwrap();
        let mut server = Self::launch_with(temp.path(), extra, None, None, env).await;
        server._temp = Some(temp);
        server
    }

    /// Starts a server on `data_dir` with extra flags and environment (a cluster replica).
    #[allow(dead_code)] // only the cluster test binary starts replicas
    pub async fn start_replica(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        Self::launch_with(data_dir, extra, None, None, env).await
    }

    async fn launch(data_dir: &Path, extra: &[&str], log: Option<std::fs::File>) -> Self {
        Self::launch_with(data_dir, extra, log, None, &[]).await
    }

    async fn launch_with(
        data_dir: &Path,
        extra: &[&str],
        log: Option<std::fs::File>,
        ca: Option<&[u8]>,
        env: &[(&str, &str)],
    ) -> Self {
        let (level, stderr) = match log {
            Some(file) => ("info", Stdio::from(file)),
            None => ("warn", Stdio::inherit()),
        };
        // Port 0 and no grace period (tests stop servers often) unless the test says otherwise.
        let mut defaults = Vec::new();
        for (flag, value) in [
            ("--listen", "127.0.0.1:0"),
            ("--grpc-listen", "127.0.0.1:0"),
            ("--shutdown-grace", "0"),
        ] {
            if !extra.contains(&flag) {
                defaults.extend([flag, value]);
            }
        }
        let mut child = modelbay()
            .arg("serve")
            .args(defaults)
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("ORT_DYLIB_PATH", onnxruntime_library())
            .env("RUST_LOG", level)
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("the modelbay binary starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut grpc = String::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(address) = line.strip_prefix("modelbay gRPC listening on ") {
                    grpc = format!("http://{address}");
                }
                if let Some(url) = line.strip_prefix("modelbay listening on ") {
                    let _ = tx.send((url.to_owned(), grpc.clone()));
                }
            }
        });
        let (url, grpc_url) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server announced its address within 30s");
        // With --auth off there is no key; a key is sent anyway and ignored.
        let admin_key = std::fs::read_to_string(data_dir.join("admin.key"))
            .map(|k| k.trim().to_owned())
            .unwrap_or_default();
        let server = Self {
            child,
            url,
            grpc_url,
            data_dir: data_dir.to_owned(),
            _temp: None,
            http: client_trusting(&admin_key, ca),
            admin_key,
            anonymous: client_trusting("", ca),
        };
        server.wait_ready().await;
        server
    }

    /// Waits until startup loading is done (`/v2/health/ready` answers 200).
    pub async fn wait_ready(&self) {
        for _ in 0..300 {
            let response = self.http.get(self.url("/v2/health/ready")).send().await;
            if response.is_ok_and(|r| r.status() == 200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("server not ready within 30s");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM without waiting.
    pub fn signal_stop(&self) {
        terminate(self.child.id());
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn stop(&mut self) -> ExitStatus {
        terminate(self.child.id());
        self.wait()
    }

    pub fn wait(&mut self) -> ExitStatus {
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("server did not exit within 30s");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub async fn push_bytes(&self, model: &str, query: &str, bytes: Vec<u8>) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(&format!("/api/v1/models/{model}/versions{query}")))
            .body(bytes)
            .send()
            .await
            .unwrap();
        status_and_json(response).await
    }

    pub async fn push(&self, model: &str, file: &str) -> (u16, Value) {
        self.push_bytes(model, "", std::fs::read(fixture(file)).unwrap())
            .await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        status_and_json(self.http.get(self.url(path)).send().await.unwrap()).await
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> (u16, Value) {
        status_and_json(
            self.http
                .put(self.url(path))
                .json(body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Points the model's `production` alias at `version`, asserting that it moved.
    pub async fn promote(&self, model: &str, version: u32) {
        let path = format!("/api/v1/models/{model}/aliases/production");
        let (status, body) = self
            .put_json(&path, &serde_json::json!({ "version": version }))
            .await;
        assert_eq!(status, 200, "promote {model} to {version}: {body}");
    }

    /// The ids `GET /v1/models` lists, in order.
    pub async fn openai_model_ids(&self) -> Vec<String> {
        let (status, models) = self.get("/v1/models").await;
        assert_eq!(status, 200, "{models}");
        models["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    }

    pub async fn delete_json(&self, path: &str) -> (u16, Value) {
        status_and_json(self.http.delete(self.url(path)).send().await.unwrap()).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        status_and_json(
            self.http
                .post(self.url(path))
                .json(body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Pushes every valid fixture under its own name (with '_' turned into '-').
    pub async fn push_all_fixtures(&self) {
        for name in FIXTURES {
            let (status, body) = self.push(&model_name(name), &format!("{name}.onnx")).await;
            assert_eq!(status, 201, "push {name}: {body}");
        }
    }
}

/// A client that sends `key` (none when empty) as a bearer token with every request, and
/// keeps no idle connections: a server that answers an upload early (413, 400) closes the
/// connection, and a pooled client could otherwise reuse the dead socket.
pub fn client_with_key(key: &str) -> reqwest::Client {
    client_trusting(key, None)
}

/// [`client_with_key`] that also trusts the PEM CA certificate `ca`.
pub fn client_trusting(key: &str, ca: Option<&[u8]>) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if !key.is_empty() {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {key}").parse().unwrap(),
        );
    }
    let mut builder = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .default_headers(headers);
    if let Some(pem) = ca {
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(pem).unwrap());
    }
    builder.build().unwrap()
}

impl TestServer {
    /// The `/metrics` exposition, read with the admin key.
    pub async fn metrics_text(&self) -> String {
        let response = self.http.get(self.url("/metrics")).send().await.unwrap();
        response.text().await.unwrap()
    }

    /// Creates an API key with the admin key; returns its id and secret.
    pub async fn create_key(&self, body: Value) -> (String, String) {
        let (status, created) = self.post_json("/api/v1/keys", &body).await;
        assert_eq!(status, 201, "create key {body}: {created}");
        (
            created["key"]["id"].as_str().unwrap().to_owned(),
            created["secret"].as_str().unwrap().to_owned(),
        )
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn terminate(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

pub fn model_name(fixture: &str) -> String {
    fixture.replace('_', "-")
}

pub async fn status_and_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("status {status}: body is not JSON: {text:?}"));
    (status, body)
}
