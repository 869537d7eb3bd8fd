//! What a push must pass before it becomes a version: the engine reads the file fully and the
//! model answers a warm-up request, so that a push can never put an unservable version on a
//! model's default route.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use modelbay_core::Signature;
use modelbay_engines::{
    EmbeddingEngine, EmbeddingOptions, Engine, LanguageEngine, LanguageOptions, SessionOptions,
};
use modelbay_registry::bundle::{self, BundleLimits};

use crate::{Error, Result};

/// How long a push's checks (reading the model, its warm-up) may take. A pushed model is
/// untrusted: one that takes longer is refused (its thread finishes in the background).
const VALIDATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// Runs a push's blocking check under [`VALIDATION_TIMEOUT`].
async fn bounded<T: Send + 'static>(
    check: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::time::timeout(VALIDATION_TIMEOUT, tokio::task::spawn_blocking(check)).await {
        Ok(joined) => joined?,
        Err(_) => Err(Error::InvalidMetadata(format!(
            "the model's checks (reading it and its warm-up inference) took longer than {} s",
            VALIDATION_TIMEOUT.as_secs()
        ))),
    }
}

/// A tensor model: its signature, and one inference on zeros (dynamic dimensions set to 1).
pub(crate) async fn tensor(engine: Arc<dyn Engine>, path: PathBuf) -> Result<Signature> {
    bounded(move || -> Result<Signature> {
        let signature = engine.inspect(&path)?;
        let bytes = std::fs::read(&path).map_err(modelbay_registry::Error::from)?;
        let mut session = engine.open(&bytes, &SessionOptions::default())?;
        let outputs: Vec<String> = signature.outputs.iter().map(|o| o.name.clone()).collect();
        session
            .run(&crate::warmup::request(&signature)?, &outputs)
            .map_err(|e| {
                Error::InvalidMetadata(format!(
                    "the model failed its warm-up inference (zeros, dynamic dimensions set to 1): {e}"
                ))
            })?;
        Ok(signature)
    })
    .await
}

/// A language model: its header's facts, and one generated token from a small context.
pub(crate) async fn language(
    engine: Arc<dyn LanguageEngine>,
    path: PathBuf,
) -> Result<serde_json::Value> {
    let (details, model) = bounded(move || -> Result<_> {
        let details = engine.inspect(&path)?;
        let options = LanguageOptions {
            threads: 1,
            max_sequences: 1,
            context_per_sequence: 64,
            max_waiting: 1,
            batch_tokens: 64,
        };
        Ok((details, engine.load(&path, &options)?))
    })
    .await?;
    tokio::time::timeout(VALIDATION_TIMEOUT, crate::manager::warm_up_language(&model))
        .await
        .map_err(|_| {
            Error::InvalidMetadata(format!(
                "the model did not generate a token within {} s",
                VALIDATION_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| {
            Error::InvalidMetadata(format!("the model failed to generate a token: {e}"))
        })?;
    Ok(details)
}

/// An embedding model: the packed folder unpacks safely, the engine reads it, and the model
/// embeds a text into a finite vector of the length it claims.
pub(crate) async fn embedding(
    engine: Arc<dyn EmbeddingEngine>,
    archive: PathBuf,
) -> Result<(Signature, serde_json::Value)> {
    bounded(move || -> Result<_> {
        let staging = archive.parent().unwrap_or(Path::new("."));
        let work = tempfile::Builder::new()
            .prefix("upload-")
            .tempdir_in(staging)
            .map_err(modelbay_registry::Error::from)?;
        let dir = work.path().join("folder");
        bundle::unpack(&archive, &dir, &BundleLimits::default())?;
        let details = engine.inspect(&dir)?;
        let options = EmbeddingOptions {
            threads: 1,
            sessions: 1,
        };
        let model = engine.load(&dir, &options)?;
        let tokens = model.tokenize("modelbay checks that this model embeds text")?;
        let vectors = model.embed(&[tokens]).map_err(|e| {
            Error::InvalidMetadata(format!("the model failed to embed a test sentence: {e}"))
        })?;
        let vector = vectors.first().map(Vec::as_slice).unwrap_or_default();
        if vector.len() != model.dimensions() || !vector.iter().all(|x| x.is_finite()) {
            return Err(Error::InvalidMetadata(format!(
                "the model's test embedding has {} values (expected {}) or is not finite",
                vector.len(),
                model.dimensions()
            )));
        }
        Ok((crate::embed::signature(model.dimensions()), details))
    })
    .await
}
