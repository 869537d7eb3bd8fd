//! Prometheus metrics: one registry per process, every family named `modelbay_*` with its unit in
//! the name and described. Labels are model, version and (where a request came through one)
//! alias, plus route-level names (protocol, endpoint, outcome): never raw paths or user data.
//!
//! Hot paths hold pre-labelled handles ([`ModelMetrics`], made once per loaded version), so a
//! request costs a few atomic adds, not label lookups. With metrics disabled every handle is a
//! no-op and nothing is registered.

use std::{collections::HashMap, sync::Arc, time::Duration};

use prometheus::{
    core::Collector, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Seconds, from a sub-millisecond tabular inference to a long generation.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Seconds a model takes to load and warm up.
const LOAD_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Rows (tensor models) or inputs (embedding models) per executed batch.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// How a request ended, as counted in `modelbay_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    ClientError,
    ServerError,
    /// Refused for capacity (queue full, rate limit): the client should retry later.
    Rejected,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::ClientError => "client_error",
            Self::ServerError => "server_error",
            Self::Rejected => "rejected",
        }
    }
}

/// Where a finished request is counted.
#[derive(Debug, Clone, Copy)]
pub struct RequestLabels<'a> {
    /// `http` or `grpc`.
    pub protocol: &'a str,
    /// `infer`, `explain`, `chat_completions`, `completions`, `embeddings`.
    pub endpoint: &'a str,
    /// Empty when the request never reached a model (unknown model, bad path).
    pub model: &'a str,
    pub version: &'a str,
    pub alias: &'a str,
}

/// The process's metric families. Cheap to clone.
#[derive(Clone, Default)]
pub struct Metrics {
    families: Option<Arc<Families>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("enabled", &self.is_enabled())
            .finish()
    }
}

pub(crate) struct Families {
    registry: Registry,
    requests: IntCounterVec,
    request_duration: HistogramVec,
    in_flight: IntGaugeVec,
    pub(crate) queued: IntGaugeVec,
    queue_duration: HistogramVec,
    compute_duration: HistogramVec,
    batch_size: HistogramVec,
    load_duration: HistogramVec,
    load_failures: IntCounterVec,
    pub(crate) models_loaded: IntGaugeVec,
    pub(crate) model_memory: IntGaugeVec,
    prompt_tokens: IntCounterVec,
    generated_tokens: IntCounterVec,
    prefix_cache_hits: IntCounterVec,
    cached_prompt_tokens: IntCounterVec,
    time_to_first_token: HistogramVec,
    inter_token_latency: HistogramVec,
    pub(crate) running_sequences: IntGaugeVec,
    pub(crate) waiting_sequences: IntGaugeVec,
    pub(crate) kv_cache_usage: prometheus::GaugeVec,
    pub(crate) drift_psi: prometheus::GaugeVec,
    pub(crate) drift_rows: IntGaugeVec,
    open_connections: IntGauge,
    limited: IntCounterVec,
    auth_failures: IntCounterVec,
    /// The last registry event this replica applied (scrape).
    pub(crate) last_applied_event: IntGauge,
    /// 1, labelled with this replica's id and binary version (set by its heartbeats).
    pub(crate) replica_info: IntGaugeVec,
    /// Scrapes refresh the gauges that are read off the loaded models; one at a time.
    pub(crate) scrape: parking_lot::Mutex<()>,
}

const MODEL: &[&str] = &["model", "version"];
const MODEL_ALIAS: &[&str] = &["model", "version", "alias"];

fn histogram(name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )
    .expect("metric definitions are valid")
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("metric definitions are valid")
}

fn gauge(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels).expect("metric definitions are valid")
}

fn float_gauge(name: &str, help: &str, labels: &[&str]) -> prometheus::GaugeVec {
    prometheus::GaugeVec::new(Opts::new(name, help), labels).expect("metric definitions are valid")
}

impl Metrics {
    /// Metrics that record and can be scraped.
    pub fn enabled() -> Self {
        let families = Families {
            registry: Registry::new(),
            requests: counter(
                "modelbay_requests_total",
                "Inference requests answered, by protocol, endpoint, serving model version and \
                 outcome (success, client_error, server_error, rejected for capacity).",
                &[
                    "protocol", "endpoint", "model", "version", "alias", "outcome",
                ],
            ),
            request_duration: histogram(
                "modelbay_request_duration_seconds",
                "Time from a request's arrival to its response headers (streams: to the first \
                 byte), by protocol, endpoint, serving model version and outcome.",
                &[
                    "protocol", "endpoint", "model", "version", "alias", "outcome",
                ],
                LATENCY_BUCKETS,
            ),
            in_flight: gauge(
                "modelbay_requests_in_flight",
                "Requests routed to a model version and not yet answered.",
                MODEL,
            ),
            queued: gauge(
                "modelbay_queued_requests",
                "Work waiting for a model version's engine: tensor requests, embedding inputs or \
                 language-model sequences.",
                MODEL,
            ),
            queue_duration: histogram(
                "modelbay_queue_duration_seconds",
                "Time a request (or embedding input) waited before its batch started.",
                MODEL,
                LATENCY_BUCKETS,
            ),
            compute_duration: histogram(
                "modelbay_compute_duration_seconds",
                "Time the engine took for the batch a request (or embedding input) ran in.",
                MODEL,
                LATENCY_BUCKETS,
            ),
            batch_size: histogram(
                "modelbay_batch_size",
                "Rows (tensor models) or inputs (embedding models) per batch the engine ran.",
                MODEL,
                BATCH_BUCKETS,
            ),
            load_duration: histogram(
                "modelbay_model_load_duration_seconds",
                "Time to load a model version and answer its warm-up inference.",
                MODEL,
                LOAD_BUCKETS,
            ),
            load_failures: counter(
                "modelbay_model_load_failures_total",
                "Model version loads (or warm-ups) that failed.",
                MODEL,
            ),
            models_loaded: gauge(
                "modelbay_models_loaded",
                "Model versions loaded and serving, by kind (tensor, language, embedding).",
                &["kind"],
            ),
            model_memory: gauge(
                "modelbay_model_memory_bytes",
                "Estimated memory held by a loaded model version (weights, sessions, KV cache).",
                MODEL,
            ),
            prompt_tokens: counter(
                "modelbay_llm_prompt_tokens_total",
                "Prompt tokens of generation requests.",
                MODEL_ALIAS,
            ),
            generated_tokens: counter(
                "modelbay_llm_generated_tokens_total",
                "Tokens generated.",
                MODEL_ALIAS,
            ),
            prefix_cache_hits: counter(
                "modelbay_llm_prefix_cache_hits_total",
                "Sequences that reused the KV cache of a prompt prefix left by an earlier one.",
                MODEL,
            ),
            cached_prompt_tokens: counter(
                "modelbay_llm_cached_prompt_tokens_total",
                "Prompt tokens taken from the prefix cache instead of being computed.",
                MODEL,
            ),
            time_to_first_token: histogram(
                "modelbay_llm_time_to_first_token_seconds",
                "Time from queueing a sequence to its first generated text.",
                MODEL,
                LATENCY_BUCKETS,
            ),
            inter_token_latency: histogram(
                "modelbay_llm_inter_token_latency_seconds",
                "Mean time between generated tokens of one sequence (observed once per sequence \
                 that generated at least two tokens).",
                MODEL,
                LATENCY_BUCKETS,
            ),
            running_sequences: gauge(
                "modelbay_llm_running_sequences",
                "Sequences a language model is decoding.",
                MODEL,
            ),
            waiting_sequences: gauge(
                "modelbay_llm_waiting_sequences",
                "Sequences waiting for a free slot.",
                MODEL,
            ),
            kv_cache_usage: float_gauge(
                "modelbay_llm_kv_cache_usage_ratio",
                "Share of the KV cache's token cells held by running sequences (0 to 1).",
                MODEL,
            ),
            drift_psi: float_gauge(
                "modelbay_feature_drift_psi",
                "Population Stability Index of a feature's live inputs (sliding window) against \
                 the version's reference data; above 0.2 is flagged as drift.",
                &["model", "version", "feature"],
            ),
            drift_rows: gauge(
                "modelbay_drift_window_rows",
                "Live input rows in a version's drift window.",
                MODEL,
            ),
            open_connections: IntGauge::new(
                "modelbay_http_open_connections",
                "HTTP connections currently open.",
            )
            .expect("metric definitions are valid"),
            limited: counter(
                "modelbay_key_limited_requests_total",
                "Requests refused with 429 because their API key was over one of its limits, by \
                 key id and limit (requests_per_second, tokens_per_minute, max_sequences).",
                &["key_id", "limit"],
            ),
            auth_failures: counter(
                "modelbay_auth_failures_total",
                "Requests refused with 401, by reason (missing, malformed, unknown, revoked, \
                 expired, unknown_certificate).",
                &["reason"],
            ),
            last_applied_event: IntGauge::new(
                "modelbay_registry_applied_event_sequence",
                "Sequence number of the last registry event this replica applied; replicas that \
                 are current show the same value.",
            )
            .expect("metric definitions are valid"),
            replica_info: gauge(
                "modelbay_replica_info",
                "1 for this replica, labelled with its id in the cluster view and its binary \
                 version.",
                &["replica", "binary_version"],
            ),
            scrape: parking_lot::Mutex::new(()),
        };
        families.register_all();
        Self {
            families: Some(Arc::new(families)),
        }
    }

    /// Metrics that record nothing (`--metrics false`).
    pub fn disabled() -> Self {
        Self { families: None }
    }

    pub fn is_enabled(&self) -> bool {
        self.families.is_some()
    }

    pub(crate) fn families(&self) -> Option<&Families> {
        self.families.as_deref()
    }

    /// Counts a finished request and its latency.
    pub fn record_request(&self, labels: RequestLabels<'_>, outcome: Outcome, elapsed: Duration) {
        let Some(f) = &self.families else { return };
        let RequestLabels {
            protocol,
            endpoint,
            model,
            version,
            alias,
        } = labels;
        f.requests
            .with_label_values(&[protocol, endpoint, model, version, alias, outcome.as_str()])
            .inc();
        f.request_duration
            .with_label_values(&[protocol, endpoint, model, version, alias, outcome.as_str()])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a request refused because its key is over `limit`.
    pub fn record_limited(&self, key_id: &str, limit: &str) {
        if let Some(f) = &self.families {
            f.limited.with_label_values(&[key_id, limit]).inc();
        }
    }

    /// Counts a request refused for its credentials.
    pub fn record_auth_failure(&self, reason: &str) {
        if let Some(f) = &self.families {
            f.auth_failures.with_label_values(&[reason]).inc();
        }
    }

    /// One more open connection until the returned guard is dropped.
    pub fn connection_opened(&self) -> Option<ConnectionGuard> {
        self.families.as_ref().map(|f| {
            f.open_connections.inc();
            ConnectionGuard(f.open_connections.clone())
        })
    }

    /// Handles for one model version.
    pub(crate) fn model(&self, model: &str, version: u32) -> ModelMetrics {
        let Some(f) = &self.families else {
            return ModelMetrics::default();
        };
        let version = version.to_string();
        let labels = [model, version.as_str()];
        ModelMetrics {
            handles: Some(Arc::new(ModelHandles {
                in_flight: f.in_flight.with_label_values(&labels),
                queue: f.queue_duration.with_label_values(&labels),
                compute: f.compute_duration.with_label_values(&labels),
                batch: f.batch_size.with_label_values(&labels),
                time_to_first_token: f.time_to_first_token.with_label_values(&labels),
                inter_token: f.inter_token_latency.with_label_values(&labels),
                prompt_tokens: f.prompt_tokens.clone(),
                generated_tokens: f.generated_tokens.clone(),
                prefix_cache_hits: f.prefix_cache_hits.with_label_values(&labels),
                cached_prompt_tokens: f.cached_prompt_tokens.with_label_values(&labels),
                model: model.to_owned(),
                version,
            })),
        }
    }

    /// Records a load (or its failure).
    pub(crate) fn record_load(&self, model: &str, version: u32, elapsed: Duration, ok: bool) {
        let Some(f) = &self.families else { return };
        let version = version.to_string();
        let labels = [model, version.as_str()];
        if ok {
            f.load_duration
                .with_label_values(&labels)
                .observe(elapsed.as_secs_f64());
        } else {
            f.load_failures.with_label_values(&labels).inc();
        }
    }

    /// What the metrics hold for each version, for Triton's model statistics, keyed by (model,
    /// version): request counts and durations by success, queue and compute time, rows and
    /// engine runs. Each family is read once, however many versions there are.
    pub fn version_statistics(&self) -> HashMap<(String, String), VersionStatistics> {
        use prometheus::proto::{Histogram as Observed, Metric};
        fn label(m: &Metric, name: &str) -> Option<String> {
            m.get_label()
                .iter()
                .find(|l| l.name() == name)
                .map(|l| l.value().to_owned())
        }
        fn key(m: &Metric) -> Option<(String, String)> {
            Some((label(m, "model")?, label(m, "version")?))
        }
        fn add(into: &mut Timed, h: &Observed) {
            into.count += h.get_sample_count();
            into.seconds += h.get_sample_sum();
        }
        let mut all: HashMap<(String, String), VersionStatistics> = HashMap::new();
        let Some(f) = &self.families else {
            return all;
        };
        for family in f.request_duration.collect() {
            for m in family.get_metric() {
                // Explanations are not inferences.
                if label(m, "endpoint").as_deref() == Some("explain") {
                    continue;
                }
                let Some(k) = key(m) else { continue };
                let stats = all.entry(k).or_default();
                let into = if label(m, "outcome").as_deref() == Some(Outcome::Success.as_str()) {
                    &mut stats.success
                } else {
                    &mut stats.failure
                };
                add(into, m.get_histogram());
            }
        }
        for (vec, queue) in [(&f.queue_duration, true), (&f.compute_duration, false)] {
            for family in vec.collect() {
                for m in family.get_metric() {
                    let Some(k) = key(m) else { continue };
                    let stats = all.entry(k).or_default();
                    add(
                        if queue {
                            &mut stats.queue
                        } else {
                            &mut stats.compute
                        },
                        m.get_histogram(),
                    );
                }
            }
        }
        for family in f.batch_size.collect() {
            for m in family.get_metric() {
                let Some(k) = key(m) else { continue };
                let stats = all.entry(k).or_default();
                stats.executions += m.get_histogram().get_sample_count();
                stats.rows += m.get_histogram().get_sample_sum() as u64;
            }
        }
        all
    }

    /// The text exposition of every family (empty when disabled).
    pub(crate) fn encode(&self) -> String {
        let Some(f) = &self.families else {
            return String::new();
        };
        let mut out = Vec::new();
        // Encoding only fails on a write error, which a Vec cannot have.
        let _ = TextEncoder::new().encode(&f.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// One registered metric family, whether or not it has a series yet: the name, type and help
/// text of its `# TYPE` and `# HELP` lines, and its label names. (A family shows in `/metrics`
/// only once it has a series; this lists them all, e.g. for docs/METRICS.md.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyDescription {
    pub name: String,
    /// `counter`, `gauge`, `histogram`, `summary` or `untyped`.
    pub kind: &'static str,
    pub help: String,
    pub labels: Vec<String>,
}

impl Metrics {
    /// Every family the registry holds, in registration order (none when disabled).
    pub fn describe(&self) -> Vec<FamilyDescription> {
        use prometheus::proto::MetricType;
        let Some(f) = &self.families else {
            return Vec::new();
        };
        let mut all = Vec::new();
        for collector in f.collectors() {
            let kinds: HashMap<String, &'static str> = collector
                .collect()
                .iter()
                .map(|family| {
                    let kind = match family.get_field_type() {
                        MetricType::COUNTER => "counter",
                        MetricType::GAUGE => "gauge",
                        MetricType::HISTOGRAM => "histogram",
                        MetricType::SUMMARY => "summary",
                        MetricType::UNTYPED => "untyped",
                    };
                    (family.name().to_owned(), kind)
                })
                .collect();
            for desc in collector.desc() {
                all.push(FamilyDescription {
                    name: desc.fq_name.clone(),
                    kind: kinds.get(&desc.fq_name).copied().unwrap_or("untyped"),
                    help: desc.help.clone(),
                    labels: desc.variable_labels.clone(),
                });
            }
        }
        all
    }
}

impl Families {
    fn register_all(&self) {
        for collector in self.collectors() {
            self.registry
                .register(collector)
                .expect("metric names are unique");
        }
    }

    /// Every collector of the registry.
    fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.requests.clone()),
            Box::new(self.request_duration.clone()),
            Box::new(self.in_flight.clone()),
            Box::new(self.queued.clone()),
            Box::new(self.queue_duration.clone()),
            Box::new(self.compute_duration.clone()),
            Box::new(self.batch_size.clone()),
            Box::new(self.load_duration.clone()),
            Box::new(self.load_failures.clone()),
            Box::new(self.models_loaded.clone()),
            Box::new(self.model_memory.clone()),
            Box::new(self.prompt_tokens.clone()),
            Box::new(self.generated_tokens.clone()),
            Box::new(self.prefix_cache_hits.clone()),
            Box::new(self.cached_prompt_tokens.clone()),
            Box::new(self.time_to_first_token.clone()),
            Box::new(self.inter_token_latency.clone()),
            Box::new(self.running_sequences.clone()),
            Box::new(self.waiting_sequences.clone()),
            Box::new(self.kv_cache_usage.clone()),
            Box::new(self.drift_psi.clone()),
            Box::new(self.drift_rows.clone()),
            Box::new(self.open_connections.clone()),
            Box::new(self.limited.clone()),
            Box::new(self.auth_failures.clone()),
            Box::new(self.last_applied_event.clone()),
            Box::new(self.replica_info.clone()),
            Box::new(prometheus::process_collector::ProcessCollector::new(
                std::process::id() as i32,
                "modelbay",
            )),
        ]
    }
}

/// A count of observations and their total duration.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timed {
    pub count: u64,
    pub seconds: f64,
}

/// One version's numbers, as the metrics count them (all protocols and aliases together).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct VersionStatistics {
    /// Requests answered successfully, and their latency.
    pub success: Timed,
    /// Requests that failed after reaching the version, and their latency.
    pub failure: Timed,
    /// Requests' (or embedding inputs') waits before their batch ran.
    pub queue: Timed,
    /// Requests' (or embedding inputs') engine time, per batch they ran in.
    pub compute: Timed,
    /// Rows (or inputs) run.
    pub rows: u64,
    /// Engine runs (batches).
    pub executions: u64,
}

/// Decrements the open-connection gauge when the connection closes.
pub struct ConnectionGuard(IntGauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Pre-labelled handles of one model version; no-ops when metrics are disabled.
#[derive(Clone, Default)]
pub(crate) struct ModelMetrics {
    handles: Option<Arc<ModelHandles>>,
}

struct ModelHandles {
    in_flight: IntGauge,
    queue: Histogram,
    compute: Histogram,
    batch: Histogram,
    time_to_first_token: Histogram,
    inter_token: Histogram,
    prompt_tokens: IntCounterVec,
    generated_tokens: IntCounterVec,
    prefix_cache_hits: IntCounter,
    cached_prompt_tokens: IntCounter,
    model: String,
    version: String,
}

impl ModelMetrics {
    /// A batch of `size` rows or inputs ran in `compute`; `waited` holds each request's queue
    /// time.
    pub(crate) fn record_batch(
        &self,
        size: usize,
        compute: Duration,
        waited: impl IntoIterator<Item = Duration>,
    ) {
        let Some(h) = &self.handles else { return };
        h.batch.observe(size as f64);
        for wait in waited {
            h.queue.observe(wait.as_secs_f64());
            h.compute.observe(compute.as_secs_f64());
        }
    }

    /// One more request in flight until the guard is dropped.
    pub(crate) fn in_flight(&self) -> InFlight {
        InFlight(self.handles.as_ref().map(|h| {
            h.in_flight.inc();
            h.in_flight.clone()
        }))
    }

    pub(crate) fn record_prompt(&self, alias: &str, tokens: u32) {
        let Some(h) = &self.handles else { return };
        h.prompt_tokens
            .with_label_values(&[&h.model, &h.version, alias])
            .inc_by(u64::from(tokens));
    }

    /// A sequence ended: its generated tokens, prompt tokens reused from the prefix cache,
    /// time to first text and mean inter-token gap.
    pub(crate) fn record_sequence(
        &self,
        alias: &str,
        tokens: u32,
        cached: u32,
        first: Option<Duration>,
        mean_gap: Option<Duration>,
    ) {
        let Some(h) = &self.handles else { return };
        if cached > 0 {
            h.prefix_cache_hits.inc();
            h.cached_prompt_tokens.inc_by(u64::from(cached));
        }
        h.generated_tokens
            .with_label_values(&[&h.model, &h.version, alias])
            .inc_by(u64::from(tokens));
        if let Some(first) = first {
            h.time_to_first_token.observe(first.as_secs_f64());
        }
        if let Some(gap) = mean_gap {
            h.inter_token.observe(gap.as_secs_f64());
        }
    }
}

/// Counts a routed request as in flight while it lives.
#[derive(Default)]
pub struct InFlight(Option<IntGauge>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(gauge) = &self.0 {
            gauge.dec();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_described_and_named_with_a_unit() {
        let metrics = Metrics::enabled();
        metrics.model("m", 1).record_batch(2, Duration::ZERO, []);
        let text = metrics.encode();
        // The process collector's names follow Prometheus's own conventions.
        let ours = |l: &&str| l.starts_with("# HELP modelbay_") && !l.contains("modelbay_process_");
        for line in text.lines().filter(ours) {
            let name = line.split_whitespace().nth(2).unwrap_or_default();
            assert!(
                name.ends_with("_total")
                    || name.ends_with("_seconds")
                    || name.ends_with("_bytes")
                    || name.ends_with("_ratio")
                    || name.ends_with("_psi")
                    || name.ends_with("_rows")
                    || name.ends_with("_requests")
                    || name.ends_with("_in_flight")
                    || name.ends_with("_loaded")
                    || name.ends_with("_sequences")
                    || name.ends_with("_connections")
                    || name.ends_with("_size")
                    // A position in the event log, and Prometheus's info-metric convention.
                    || name.ends_with("_sequence")
                    || name.ends_with("_info"),
                "{name} has no unit"
            );
        }
        assert!(text.contains("modelbay_batch_size_count{model=\"m\",version=\"1\"} 1"));
    }

    #[test]
    fn describe_lists_every_family_with_its_type_help_and_labels() {
        let metrics = Metrics::enabled();
        metrics.model("m", 1).record_batch(2, Duration::ZERO, []);
        let described = metrics.describe();
        let requests = described
            .iter()
            .find(|d| d.name == "modelbay_requests_total")
            .unwrap();
        assert_eq!(requests.kind, "counter");
        assert_eq!(requests.labels.len(), 6);
        // Every family the exposition shows is described, with the same help and type.
        let text = metrics.encode();
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let mut words = line.split_whitespace().skip(2);
            let (name, kind) = (words.next().unwrap(), words.next().unwrap());
            let d = described.iter().find(|d| d.name == name).unwrap();
            assert_eq!(d.kind, kind, "{name}");
            assert!(
                text.contains(&format!("# HELP {name} {}\n", d.help)),
                "{name}"
            );
        }
        assert!(Metrics::disabled().describe().is_empty());
    }

    #[test]
    fn disabled_metrics_record_and_show_nothing() {
        let metrics = Metrics::disabled();
        metrics.model("m", 1).record_batch(2, Duration::ZERO, []);
        let _guard = metrics.model("m", 1).in_flight();
        assert!(metrics.encode().is_empty());
        assert!(metrics.connection_opened().is_none());
    }
}
