//! What a push must pass before it becomes a version: the engine reads the file fully and the
//! model answers a warm-up request, so that a push can never put an unservable version on a
//! model's default route.

use std::{path::PathBuf, sync::Arc};

use modelbay_core::Signature;
use modelbay_engines::{Engine, LanguageEngine, LanguageOptions, SessionOptions};

use crate::{Error, Result};

/// A tensor model: its signature, and one inference on zeros (dynamic dimensions set to 1).
pub(crate) async fn tensor(engine: Arc<dyn Engine>, path: PathBuf) -> Result<Signature> {
    tokio::task::spawn_blocking(move || -> Result<Signature> {
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
    .await?
}

/// A language model: its header's facts, and one generated token from a small context.
pub(crate) async fn language(
    engine: Arc<dyn LanguageEngine>,
    path: PathBuf,
) -> Result<serde_json::Value> {
    let (details, model) = tokio::task::spawn_blocking(move || -> Result<_> {
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
    .await??;
    crate::manager::warm_up_language(&model)
        .await
        .map_err(|e| {
            Error::InvalidMetadata(format!("the model failed to generate a token: {e}"))
        })?;
    Ok(details)
}
