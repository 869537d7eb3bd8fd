//! Logging and, when an OTLP endpoint is configured, OpenTelemetry trace export: every request's
//! span (method, path, request id) and the spans inside it go to the collector over OTLP/HTTP.

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::{trace::SdkTracerProvider, Resource};
use tracing::Level;
use tracing_subscriber::{
    filter::Targets, layer::SubscriberExt, util::SubscriberInitExt, EnvFilter, Layer,
};

use crate::config::LogFormat;

/// Flushes and stops trace export when dropped (at shutdown).
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("could not flush traces to the OTLP endpoint: {e}");
            }
        }
    }
}

/// Installs the global subscriber: log lines to stderr (text or JSON, filtered by `RUST_LOG`)
/// and, with `otlp_endpoint` (e.g. `http://127.0.0.1:4318`), spans exported to
/// `{endpoint}/v1/traces` in batches. The two are filtered apart: a quiet log (`RUST_LOG=warn`)
/// still exports every request's span (`info` and above; llama.cpp's chatter from `warn`).
pub fn init(format: LogFormat, otlp_endpoint: Option<&str>) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,llama-cpp-2=warn"));
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = match format {
        LogFormat::Text => logs.with_filter(filter).boxed(),
        LogFormat::Json => logs.json().with_filter(filter).boxed(),
    };
    let provider = otlp_endpoint.map(provider).transpose()?;
    let traces = provider.as_ref().map(|p| {
        let spans = Targets::new()
            .with_default(Level::INFO)
            .with_target("llama-cpp-2", Level::WARN);
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("modelbay"))
            .with_filter(spans)
    });
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()
        .context("cannot install the log subscriber")?;
    Ok(Telemetry { provider })
}

fn provider(endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = SpanExporter::builder()
        .with_http()
        .with_endpoint(&url)
        .build()
        .with_context(|| format!("cannot export traces to {url}"))?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name("modelbay").build())
        .build())
}
