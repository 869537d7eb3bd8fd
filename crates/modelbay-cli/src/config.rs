//! Server settings. Each one can come from a flag, a `MODELBAY_*` environment variable or the
//! TOML config file, in that order of precedence, then falls back to its default.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use anyhow::Context;
use clap::Args;
use modelbay_engines::{EmbeddingOptions, LanguageOptions};
use modelbay_runtime::{BatchPolicy, EmbeddingServeOptions};
use serde::Deserialize;

/// `modelbay serve` flags. Every field is optional so that "not given" can fall through to the
/// config file; [`ServeArgs::resolve`] applies the defaults.
#[derive(Args, Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (keys as the flags, with '_' for '-').
    #[arg(long, env = "MODELBAY_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on for HTTP [default: 127.0.0.1:8080].
    #[arg(long, env = "MODELBAY_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Address to listen on for gRPC (the Open Inference Protocol's GRPCInferenceService)
    /// [default: 127.0.0.1:8081].
    #[arg(long, env = "MODELBAY_GRPC_LISTEN")]
    pub grpc_listen: Option<SocketAddr>,
    /// Largest gRPC message, received or sent (OUT_OF_RANGE beyond) [default: 67108864].
    #[arg(long, env = "MODELBAY_GRPC_MAX_MESSAGE_BYTES")]
    pub grpc_max_message_bytes: Option<usize>,
    /// Directory of the embedded registry [default: ./modelbay-data].
    #[arg(long, env = "MODELBAY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Path of libonnxruntime.so [default: the ORT_DYLIB_PATH variable].
    #[arg(long, env = "ORT_DYLIB_PATH")]
    pub onnxruntime_lib: Option<PathBuf>,
    /// Largest inference request body in bytes [default: 67108864].
    #[arg(long, env = "MODELBAY_MAX_REQUEST_BYTES")]
    pub max_request_bytes: Option<usize>,
    /// Largest model upload in bytes [default: 8589934592].
    #[arg(long, env = "MODELBAY_MAX_UPLOAD_BYTES")]
    pub max_upload_bytes: Option<u64>,
    /// Sessions (engine threads) per loaded model version [default: number of CPUs].
    #[arg(long, env = "MODELBAY_WORKERS_PER_MODEL")]
    pub workers_per_model: Option<usize>,
    /// Threads one session uses for one inference [default: 1].
    #[arg(long, env = "MODELBAY_INTRA_OP_THREADS")]
    pub intra_op_threads: Option<usize>,
    /// Requests that may wait per model version before 503 [default: 1024].
    #[arg(long, env = "MODELBAY_QUEUE_CAPACITY")]
    pub queue_capacity: Option<usize>,
    /// Memory budget for loaded models in bytes; least recently used versions that no alias or
    /// policy references are unloaded to stay under it [default: no budget].
    #[arg(long, env = "MODELBAY_MAX_MODEL_MEMORY")]
    pub max_model_memory: Option<u64>,
    /// Threads each language model's decode loop uses; keep it at or below the cores the
    /// server may use [default: number of CPUs].
    #[arg(long, env = "MODELBAY_LLM_THREADS")]
    pub llm_threads: Option<u32>,
    /// Sequences a language model decodes together (continuous batching) [default: 8].
    #[arg(long, env = "MODELBAY_LLM_MAX_SEQUENCES")]
    pub llm_max_sequences: Option<u32>,
    /// Tokens (prompt and completion) one sequence may hold; capped at the model's trained
    /// context [default: 2048].
    #[arg(long, env = "MODELBAY_LLM_CONTEXT")]
    pub llm_context: Option<u32>,
    /// Sequences that may wait for a slot before requests get 429 [default: 64].
    #[arg(long, env = "MODELBAY_LLM_MAX_WAITING")]
    pub llm_max_waiting: Option<u32>,
    /// Threads one embedding batch uses [default: number of CPUs].
    #[arg(long, env = "MODELBAY_EMBED_THREADS")]
    pub embed_threads: Option<usize>,
    /// Embedding batches that run at the same time per model (ONNX Runtime sessions)
    /// [default: 1].
    #[arg(long, env = "MODELBAY_EMBED_SESSIONS")]
    pub embed_sessions: Option<usize>,
    /// Most inputs in one embedding batch [default: 32].
    #[arg(long, env = "MODELBAY_EMBED_MAX_BATCH")]
    pub embed_max_batch: Option<usize>,
    /// Most padded tokens (inputs × longest input) in one embedding batch [default: 16384].
    #[arg(long, env = "MODELBAY_EMBED_MAX_BATCH_TOKENS")]
    pub embed_max_batch_tokens: Option<usize>,
    /// Milliseconds an input may wait for a fuller batch while an engine is free; 0 runs
    /// whatever is waiting at once (batches still form while engines are busy) [default: 0].
    #[arg(long, env = "MODELBAY_EMBED_MAX_DELAY_MS")]
    pub embed_max_delay_ms: Option<u64>,
    /// Most inputs in one /v1/embeddings request [default: 2048].
    #[arg(long, env = "MODELBAY_EMBED_MAX_INPUTS")]
    pub embed_max_inputs: Option<usize>,
    /// Inputs that may wait for a batch per model before requests get 503 [default: 8192].
    #[arg(long, env = "MODELBAY_EMBED_MAX_WAITING")]
    pub embed_max_waiting: Option<usize>,
    /// Write the body of every inference request to the log (target `modelbay::payload`);
    /// payloads can hold personal data, so this is off unless asked for [default: false].
    #[arg(long, env = "MODELBAY_LOG_PAYLOADS", num_args = 0..=1, default_missing_value = "true")]
    pub log_payloads: Option<bool>,
    /// With --log-payloads: JSON fields (at any depth) and v2 input names whose values are
    /// logged as "[redacted]", comma-separated; a body that is not JSON is then logged by size
    /// only.
    #[arg(long, env = "MODELBAY_REDACT_FIELDS", value_delimiter = ',')]
    pub redact_fields: Option<Vec<String>>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "MODELBAY_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Record Prometheus metrics and serve them at /metrics; `false` records nothing and
    /// /metrics answers 404 [default: true].
    #[arg(long, env = "MODELBAY_METRICS", num_args = 0..=1, default_missing_value = "true")]
    pub metrics: Option<bool>,
    /// Live input rows per model version kept for drift detection (PSI against the version's
    /// reference data) [default: 10000].
    #[arg(long, env = "MODELBAY_DRIFT_WINDOW")]
    pub drift_window: Option<usize>,
    /// Require an API key on every request but the health probes (`on`), or serve everyone as
    /// an administrator (`off`: loopback only, unless --allow-insecure) [default: on].
    #[arg(long, env = "MODELBAY_AUTH")]
    pub auth: Option<AuthSetting>,
    /// Allow `--auth off` on an address other than loopback [default: false].
    #[arg(long, env = "MODELBAY_ALLOW_INSECURE", num_args = 0..=1, default_missing_value = "true")]
    pub allow_insecure: Option<bool>,
    /// File holding the administrator key to accept (e.g. a mounted Kubernetes Secret); without
    /// it, the first start on an empty registry writes a new key to <data-dir>/admin.key.
    #[arg(long, env = "MODELBAY_ADMIN_KEY_FILE")]
    pub admin_key_file: Option<PathBuf>,
    /// Serve /metrics without a key on this address too (for Prometheus inside a cluster)
    /// [default: /metrics only on the main listener, with a viewer key].
    #[arg(long, env = "MODELBAY_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Requests per second each API key may send, unless the key sets its own [default: no
    /// limit].
    #[arg(long, env = "MODELBAY_KEY_REQUESTS_PER_SECOND")]
    pub key_requests_per_second: Option<f64>,
    /// Tokens language models may generate per minute for each API key, unless the key sets
    /// its own [default: no limit].
    #[arg(long, env = "MODELBAY_KEY_TOKENS_PER_MINUTE")]
    pub key_tokens_per_minute: Option<u64>,
    /// Sequences (running or waiting) each API key may have at a language model at once,
    /// unless the key sets its own [default: a quarter of --llm-max-waiting, at least 1].
    #[arg(long, env = "MODELBAY_KEY_MAX_SEQUENCES")]
    pub key_max_sequences: Option<u32>,
    /// PEM certificate chain: serve HTTP and gRPC over TLS (with --tls-key); reloaded when the
    /// file changes.
    #[arg(long, env = "MODELBAY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "MODELBAY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates: clients must present a certificate issued by one (mutual TLS).
    #[arg(long, env = "MODELBAY_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Seconds a connection may take to send its first request's headers (and finish its TLS
    /// handshake) [default: 10].
    #[arg(long, env = "MODELBAY_HEADER_READ_TIMEOUT")]
    pub header_read_timeout: Option<u64>,
    /// Seconds a request body may go without sending a byte [default: 30].
    #[arg(long, env = "MODELBAY_BODY_IDLE_TIMEOUT")]
    pub body_idle_timeout: Option<u64>,
    /// Seconds a whole request body may take to arrive (model uploads included) [default: 3600].
    #[arg(long, env = "MODELBAY_REQUEST_TIMEOUT")]
    pub request_timeout: Option<u64>,
    /// Connections open at once, per listener [default: 4096].
    #[arg(long, env = "MODELBAY_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Concurrent requests on one HTTP/2 or gRPC connection [default: 256].
    #[arg(long, env = "MODELBAY_MAX_STREAMS_PER_CONNECTION")]
    pub max_streams_per_connection: Option<u32>,
    /// Bytes of request bodies the server holds at once, over all requests; beyond it requests
    /// get 503 with Retry-After [default: 1073741824].
    #[arg(long, env = "MODELBAY_MAX_INFLIGHT_BYTES")]
    pub max_inflight_bytes: Option<usize>,
    /// Export traces over OTLP/HTTP to this collector (e.g. http://127.0.0.1:4318; spans go
    /// to {endpoint}/v1/traces) [default: no export].
    #[arg(long, env = "MODELBAY_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Metadata in a PostgreSQL database every replica shares (postgres://user:pass@host/db)
    /// [default: SQLite in the data directory].
    #[arg(long, env = "MODELBAY_REGISTRY")]
    pub registry: Option<String>,
    /// Where artifacts live: s3://bucket/prefix (endpoint and credentials from the AWS_*
    /// variables) or file:///path (e.g. a shared volume) [default: <data-dir>/artifacts].
    #[arg(long, env = "MODELBAY_ARTIFACTS")]
    pub artifacts: Option<String>,
    /// Local copies of s3:// artifacts, for engines to read [default: <data-dir>/cache].
    #[arg(long, env = "MODELBAY_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Size bound of --cache-dir in bytes; least recently used copies go first
    /// [default: 21474836480].
    #[arg(long, env = "MODELBAY_CACHE_MAX_BYTES")]
    pub cache_max_bytes: Option<u64>,
    /// This replica's name in the cluster view (e.g. the pod name) [default: host name and
    /// process id].
    #[arg(long, env = "MODELBAY_REPLICA_ID")]
    pub replica_id: Option<String>,
    /// The address other replicas and operators reach this one at (e.g. the pod IP and port)
    /// [default: the HTTP listen address].
    #[arg(long, env = "MODELBAY_ADVERTISE_ADDRESS")]
    pub advertise_address: Option<String>,
    /// Milliseconds between reads of the registry's event log when no notification arrives
    /// (PostgreSQL only; notifications usually apply changes sooner) [default: 1000].
    #[arg(long, env = "MODELBAY_EVENT_POLL_MS")]
    pub event_poll_ms: Option<u64>,
    /// Apply other replicas' changes as soon as PostgreSQL notifies them (LISTEN/NOTIFY);
    /// `false` relies on --event-poll-ms alone [default: true].
    #[arg(long, env = "MODELBAY_EVENT_NOTIFY", num_args = 0..=1, default_missing_value = "true")]
    pub event_notify: Option<bool>,
    /// Seconds a replica keeps serving after SIGTERM with readiness already false, so load
    /// balancers stop sending it traffic first [default: 5].
    #[arg(long, env = "MODELBAY_SHUTDOWN_GRACE")]
    pub shutdown_grace: Option<u64>,
    /// Seconds in-flight requests and streams get to finish once the listeners close; then
    /// the process exits anyway [default: 30].
    #[arg(long, env = "MODELBAY_DRAIN_TIMEOUT")]
    pub drain_timeout: Option<u64>,
}

/// Whether API keys are required.
#[derive(clap::ValueEnum, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuthSetting {
    On,
    Off,
}

/// How log lines are written.
#[derive(clap::ValueEnum, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Settings after precedence and defaults are applied.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub grpc_listen: SocketAddr,
    pub grpc_max_message_bytes: usize,
    pub data_dir: PathBuf,
    pub onnxruntime_lib: Option<PathBuf>,
    pub max_request_bytes: usize,
    pub max_upload_bytes: u64,
    pub workers_per_model: usize,
    pub intra_op_threads: usize,
    pub queue_capacity: usize,
    pub max_model_memory: Option<u64>,
    pub language: LanguageOptions,
    pub embedding: EmbeddingServeOptions,
    pub log_payloads: bool,
    pub redact_fields: Vec<String>,
    pub log_format: LogFormat,
    pub metrics: bool,
    pub drift_window: usize,
    pub otlp_endpoint: Option<String>,
    pub auth: AuthSetting,
    pub allow_insecure: bool,
    pub admin_key_file: Option<PathBuf>,
    pub metrics_listen: Option<SocketAddr>,
    pub key_limits: modelbay_core::KeyLimits,
    pub tls: Option<modelbay_server::listen::TlsFiles>,
    pub header_read_timeout: std::time::Duration,
    pub body_idle_timeout: std::time::Duration,
    pub request_timeout: std::time::Duration,
    pub max_connections: usize,
    pub max_streams_per_connection: u32,
    pub max_inflight_bytes: usize,
    pub registry: modelbay_registry::RegistryConfig,
    pub replica_id: String,
    pub advertise_address: Option<String>,
    pub event_poll: std::time::Duration,
    pub event_notify: bool,
    pub shutdown_grace: std::time::Duration,
    pub drain_timeout: std::time::Duration,
}

impl ServeArgs {
    /// Applies the config file (if any) under the flags and environment, then the defaults.
    pub fn resolve(self) -> anyhow::Result<Settings> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => ServeArgs::default(),
        };
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let data_dir = self
            .data_dir
            .clone()
            .or(file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from("./modelbay-data"));
        let registry = modelbay_registry::RegistryConfig {
            data_dir: data_dir.clone(),
            metadata_url: match self.registry.clone().or(file.registry.clone()) {
                Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                    Some(url)
                }
                Some(_) => anyhow::bail!(
                    "--registry takes a postgres:// URL (without it the registry is SQLite in the data directory)"
                ),
                None => None,
            },
            artifacts: match self.artifacts.clone().or(file.artifacts.clone()) {
                Some(location) => location.parse().map_err(anyhow::Error::msg)?,
                None => modelbay_registry::ArtifactLocation::DataDir,
            },
            cache_dir: self.cache_dir.clone().or(file.cache_dir.clone()),
            cache_max_bytes: self
                .cache_max_bytes
                .or(file.cache_max_bytes)
                .unwrap_or(modelbay_registry::DEFAULT_CACHE_BYTES),
        };
        Ok(Settings {
            registry,
            replica_id: self
                .replica_id
                .clone()
                .or(file.replica_id.clone())
                .unwrap_or_else(default_replica_id),
            advertise_address: self
                .advertise_address
                .clone()
                .or(file.advertise_address.clone()),
            event_poll: std::time::Duration::from_millis(
                self.event_poll_ms
                    .or(file.event_poll_ms)
                    .unwrap_or(1000)
                    .max(10),
            ),
            event_notify: self.event_notify.or(file.event_notify).unwrap_or(true),
            shutdown_grace: std::time::Duration::from_secs(
                self.shutdown_grace.or(file.shutdown_grace).unwrap_or(5),
            ),
            drain_timeout: seconds(self.drain_timeout.or(file.drain_timeout), 30)?,
            listen: self
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            grpc_listen: self
                .grpc_listen
                .or(file.grpc_listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8081))),
            grpc_max_message_bytes: self
                .grpc_max_message_bytes
                .or(file.grpc_max_message_bytes)
                .unwrap_or(64 << 20),
            data_dir,
            onnxruntime_lib: self.onnxruntime_lib.or(file.onnxruntime_lib),
            max_request_bytes: self
                .max_request_bytes
                .or(file.max_request_bytes)
                .unwrap_or(64 << 20),
            max_upload_bytes: self
                .max_upload_bytes
                .or(file.max_upload_bytes)
                .unwrap_or(8 << 30),
            workers_per_model: self
                .workers_per_model
                .or(file.workers_per_model)
                .unwrap_or(cpus),
            intra_op_threads: self.intra_op_threads.or(file.intra_op_threads).unwrap_or(1),
            queue_capacity: self.queue_capacity.or(file.queue_capacity).unwrap_or(1024),
            max_model_memory: self.max_model_memory.or(file.max_model_memory),
            language: LanguageOptions {
                threads: self.llm_threads.or(file.llm_threads).unwrap_or(cpus as u32),
                max_sequences: self
                    .llm_max_sequences
                    .or(file.llm_max_sequences)
                    .unwrap_or(8),
                context_per_sequence: self.llm_context.or(file.llm_context).unwrap_or(2048),
                max_waiting: self.llm_max_waiting.or(file.llm_max_waiting).unwrap_or(64),
                ..LanguageOptions::default()
            },
            embedding: EmbeddingServeOptions {
                engine: EmbeddingOptions {
                    threads: self.embed_threads.or(file.embed_threads).unwrap_or(cpus),
                    sessions: self.embed_sessions.or(file.embed_sessions).unwrap_or(1),
                },
                batch: BatchPolicy {
                    max_batch: self.embed_max_batch.or(file.embed_max_batch).unwrap_or(32),
                    max_batch_tokens: self
                        .embed_max_batch_tokens
                        .or(file.embed_max_batch_tokens)
                        .unwrap_or(16384),
                    max_delay: std::time::Duration::from_millis(
                        self.embed_max_delay_ms
                            .or(file.embed_max_delay_ms)
                            .unwrap_or(0),
                    ),
                },
                max_inputs: self
                    .embed_max_inputs
                    .or(file.embed_max_inputs)
                    .unwrap_or(2048),
                max_waiting: self
                    .embed_max_waiting
                    .or(file.embed_max_waiting)
                    .unwrap_or(8192),
            },
            log_payloads: self.log_payloads.or(file.log_payloads).unwrap_or(false),
            redact_fields: self
                .redact_fields
                .or(file.redact_fields)
                .unwrap_or_default()
                .into_iter()
                .map(|field| field.trim().to_owned())
                .filter(|field| !field.is_empty())
                .collect(),
            log_format: self.log_format.or(file.log_format).unwrap_or_default(),
            metrics: self.metrics.or(file.metrics).unwrap_or(true),
            drift_window: self
                .drift_window
                .or(file.drift_window)
                .unwrap_or(10_000)
                .max(1),
            otlp_endpoint: self.otlp_endpoint.or(file.otlp_endpoint),
            auth: self.auth.or(file.auth).unwrap_or(AuthSetting::On),
            allow_insecure: self.allow_insecure.or(file.allow_insecure).unwrap_or(false),
            admin_key_file: self.admin_key_file.or(file.admin_key_file),
            metrics_listen: self.metrics_listen.or(file.metrics_listen),
            key_limits: modelbay_core::KeyLimits {
                requests_per_second: self
                    .key_requests_per_second
                    .or(file.key_requests_per_second),
                tokens_per_minute: self.key_tokens_per_minute.or(file.key_tokens_per_minute),
                max_sequences: Some(
                    self.key_max_sequences
                        .or(file.key_max_sequences)
                        .unwrap_or_else(|| {
                            (self.llm_max_waiting.or(file.llm_max_waiting).unwrap_or(64) / 4).max(1)
                        }),
                ),
            },
            tls: match (
                self.tls_cert.or(file.tls_cert),
                self.tls_key.or(file.tls_key),
                self.tls_client_ca.or(file.tls_client_ca),
            ) {
                (Some(cert), Some(key), client_ca) => Some(modelbay_server::listen::TlsFiles {
                    cert,
                    key,
                    client_ca,
                }),
                (None, None, None) => None,
                _ => anyhow::bail!(
                    "TLS needs both --tls-cert and --tls-key (and --tls-client-ca only with them)"
                ),
            },
            header_read_timeout: seconds(
                self.header_read_timeout.or(file.header_read_timeout),
                10,
            )?,
            body_idle_timeout: seconds(self.body_idle_timeout.or(file.body_idle_timeout), 30)?,
            request_timeout: seconds(self.request_timeout.or(file.request_timeout), 3600)?,
            max_connections: self
                .max_connections
                .or(file.max_connections)
                .unwrap_or(4096)
                .max(1),
            max_streams_per_connection: self
                .max_streams_per_connection
                .or(file.max_streams_per_connection)
                .unwrap_or(256)
                .max(1),
            max_inflight_bytes: self
                .max_inflight_bytes
                .or(file.max_inflight_bytes)
                .unwrap_or(1 << 30),
        })
    }
}

/// The host name and process id: unique per process, readable in the cluster view.
fn default_replica_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "modelbay".into());
    format!("{host}-{}", std::process::id())
}

/// A timeout in whole seconds, at least one.
fn seconds(given: Option<u64>, default: u64) -> anyhow::Result<std::time::Duration> {
    match given.unwrap_or(default) {
        0 => anyhow::bail!("timeouts are whole seconds, at least 1"),
        n => Ok(std::time::Duration::from_secs(n)),
    }
}

fn read_file(path: &Path) -> anyhow::Result<ServeArgs> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("modelbay.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9999\"\nqueue_capacity = 7\ndata_dir = \"/srv/m\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            listen: Some("127.0.0.1:1234".parse().unwrap()),
            ..ServeArgs::default()
        };
        let settings = args.resolve().unwrap();
        assert_eq!(settings.listen.port(), 1234);
        assert_eq!(settings.queue_capacity, 7);
        assert_eq!(settings.data_dir, PathBuf::from("/srv/m"));
        assert_eq!(settings.intra_op_threads, 1);
    }

    #[test]
    fn unknown_keys_in_the_file_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("modelbay.toml");
        std::fs::write(&path, "lisen = \"127.0.0.1:9999\"\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        };
        let err = format!("{:#}", args.resolve().unwrap_err());
        assert!(err.contains("lisen"), "{err}");
    }
}
