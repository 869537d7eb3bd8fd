//! `modelbay push NAME PATH`: streams a model file to the server with a progress bar. A folder
//! (a sentence-transformers model) is first packed into one archive, deterministically, so the
//! same folder always becomes the same content-addressed artifact.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use futures::TryStreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use tokio_util::io::ReaderStream;

use crate::client::{decode, ClientArgs};

#[derive(Args, Debug)]
pub struct PushArgs {
    /// Model name.
    pub name: String,
    /// Model file, or a model folder (packed into one archive before upload).
    pub file: PathBuf,
    /// Model format (detected from the file when omitted).
    #[arg(long)]
    pub format: Option<String>,
    /// Free-text description of this version.
    #[arg(long)]
    pub description: Option<String>,
    /// Label as key=value; repeatable.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Dynamic batching for the model (tensor models): most rows one run may merge. Sets the
    /// model's batching settings after the push.
    #[arg(long)]
    pub max_batch_size: Option<u32>,
    /// Dynamic batching: how long a request may wait for others, in microseconds.
    #[arg(long, requires = "max_batch_size")]
    pub max_queue_delay_us: Option<u64>,
    /// Dynamic batching: batch sizes that run at once, comma-separated (e.g. 8,16).
    #[arg(long, value_delimiter = ',', requires = "max_batch_size")]
    pub preferred_batch_sizes: Vec<u32>,
    /// Reference data for drift detection and explanations (CSV with an optional header of
    /// feature names, or a v2 JSON request body), attached to the new version.
    #[arg(long, value_name = "FILE")]
    pub reference: Option<PathBuf>,
    /// Generation default of a language model as key=value (temperature, top_k, top_p, min_p,
    /// typical_p, repetition_penalty, repeat_last_n, presence_penalty, frequency_penalty,
    /// max_tokens, tool_format); repeatable. Set on the new version after the push, like an
    /// Ollama Modelfile's PARAMETER lines.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Serve the new version at once: point `production` at it (a model's first version is
    /// `production` anyway; later pushes are served only once promoted).
    #[arg(long)]
    pub promote: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub async fn run(args: PushArgs) -> anyhow::Result<()> {
    // Checked before anything is uploaded.
    let generation = (!args.params.is_empty())
        .then(|| {
            modelbay_core::generation::GenerationParams::from_pairs(
                args.params.iter().map(String::as_str),
            )
        })
        .transpose()?;
    // Kept alive until the upload ends: the packed archive of a folder.
    let packed = if args.file.is_dir() {
        Some(pack(args.file.clone()).await?)
    } else {
        None
    };
    let path = packed.as_ref().map_or(args.file.as_path(), |p| p.path());
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("cannot open {}", args.file.display()))?;
    let size = file.metadata().await?.len();
    let mut query: Vec<(&str, &str)> = args.labels.iter().map(|l| ("label", l.as_str())).collect();
    if let Some(format) = &args.format {
        query.push(("format", format));
    }
    if let Some(description) = &args.description {
        query.push(("description", description));
    }
    if args.promote {
        query.push(("promote", "true"));
    }

    let progress = ProgressBar::new(size).with_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    progress.set_message(format!("pushing {}", args.name));
    let counter = progress.clone();
    let stream = ReaderStream::new(file).inspect_ok(move |chunk| counter.inc(chunk.len() as u64));
    let response = args
        .client
        .http()?
        .post(
            args.client
                .url(&format!("/api/v1/models/{}/versions", args.name)),
        )
        .query(&query)
        .header(reqwest::header::CONTENT_LENGTH, size)
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .with_context(|| format!("cannot reach the server at {}", args.client.server))?;
    progress.finish_and_clear();
    let record: Value = decode(response).await?;
    if args.client.json {
        println!("{}", serde_json::to_string_pretty(&record)?);
    } else {
        println!(
            "{} v{} ({}, {} bytes, {})",
            record["model"].as_str().unwrap_or_default(),
            record["version"],
            record["digest"].as_str().unwrap_or_default(),
            record["size"],
            record["format"].as_str().unwrap_or_default(),
        );
    }
    if let Some(max_batch_size) = args.max_batch_size {
        let settings = serde_json::json!({
            "max_batch_size": max_batch_size,
            "max_queue_delay_microseconds": args.max_queue_delay_us.unwrap_or(0),
            "preferred_batch_sizes": args.preferred_batch_sizes,
        });
        let response = args
            .client
            .http()?
            .put(
                args.client
                    .url(&format!("/api/v1/models/{}/batching", args.name)),
            )
            .json(&settings)
            .send()
            .await?;
        let _: Value = decode(response).await.context("setting dynamic batching")?;
        eprintln!("dynamic batching: {settings}");
    }
    if let Some(params) = &generation {
        let version = record["version"].as_u64().unwrap_or_default();
        let response = args
            .client
            .http()?
            .put(args.client.url(&format!(
                "/api/v1/models/{}/versions/{version}/generation",
                args.name
            )))
            .json(params)
            .send()
            .await?;
        let settings: Value = decode(response)
            .await
            .context("setting generation defaults")?;
        eprintln!("generation defaults: {}", settings["publisher"]);
    }
    if let Some(path) = &args.reference {
        let version = record["version"].as_u64().unwrap_or_default();
        let data = tokio::fs::read(path)
            .await
            .with_context(|| format!("cannot read {}", path.display()))?;
        let content_type = if path.extension().is_some_and(|e| e == "json") {
            "application/json"
        } else {
            "text/csv"
        };
        let response = args
            .client
            .http()?
            .put(args.client.url(&format!(
                "/api/v1/models/{}/versions/{version}/reference",
                args.name
            )))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(data)
            .send()
            .await?;
        let summary: Value = decode(response).await.context("attaching reference data")?;
        eprintln!(
            "reference data: {} rows, {} features",
            summary["rows"],
            summary["features"].as_array().map_or(0, Vec::len)
        );
    }
    Ok(())
}

/// Packs a folder into a temporary archive, saying what was left out.
async fn pack(dir: PathBuf) -> anyhow::Result<tempfile::NamedTempFile> {
    tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let archive = tempfile::Builder::new()
            .prefix("modelbay-push-")
            .suffix(".tar")
            .tempfile()?;
        let writer = std::io::BufWriter::new(archive.reopen()?);
        let summary = modelbay_registry::bundle::pack(&dir, writer)
            .with_context(|| format!("cannot pack {}", dir.display()))?;
        for skipped in &summary.skipped {
            eprintln!("not packed (no engine reads it): {skipped}");
        }
        eprintln!(
            "packed {} files from {}",
            summary.files.len(),
            dir.display()
        );
        Ok(archive)
    })
    .await?
}
