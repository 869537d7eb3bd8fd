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
    /// Export traces over OTLP/HTTP to this collector (e.g. http://127.0.0.1:4318; spans go
    /// to {endpoint}/v1/traces) [default: no export].
    #[arg(long, env = "MODELBAY_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
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
    pub log_format: LogFormat,
    pub metrics: bool,
    pub drift_window: usize,
    pub otlp_endpoint: Option<String>,
}

impl ServeArgs {
    /// Applies the config file (if any) under the flags and environment, then the defaults.
    pub fn resolve(self) -> anyhow::Result<Settings> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => ServeArgs::default(),
        };
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Settings {
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
            data_dir: self
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./modelbay-data")),
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
            log_format: self.log_format.or(file.log_format).unwrap_or_default(),
            metrics: self.metrics.or(file.metrics).unwrap_or(true),
            drift_window: self
                .drift_window
                .or(file.drift_window)
                .unwrap_or(10_000)
                .max(1),
            otlp_endpoint: self.otlp_endpoint.or(file.otlp_endpoint),
        })
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
