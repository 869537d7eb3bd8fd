//! Text embeddings, independent of the engine that computes them: the traits an embedding
//! engine implements and the settings the operator chooses.

use std::{path::Path, sync::Arc};

use modelbay_core::ModelFormat;

use crate::Result;

/// A token id in an embedding model's vocabulary.
pub type EmbeddingToken = u32;

/// A loaded embedding model: its tokenizer and an encoder that embeds a batch at a time.
///
/// `embed` blocks; callers run it on threads of their own. It takes `&self`: a model serves
/// several batches at once when it was loaded with more than one session.
pub trait EmbeddingModel: Send + Sync {
    /// Length of each embedding.
    fn dimensions(&self) -> usize;

    /// Tokens of `text`, with the model's special tokens, truncated to [`Self::max_tokens`].
    fn tokenize(&self, text: &str) -> Result<Vec<EmbeddingToken>>;

    /// Token ids a caller tokenized itself: checked against the vocabulary, given the model's
    /// special tokens and truncated, exactly as text would be.
    fn tokens_from_ids(&self, ids: &[EmbeddingToken]) -> Result<Vec<EmbeddingToken>>;

    /// Embeds a batch of tokenized inputs, one embedding per input, in order. Inputs of
    /// different lengths are padded together; padding never changes an embedding.
    fn embed(&self, batch: &[Vec<EmbeddingToken>]) -> Result<Vec<Vec<f32>>>;

    /// Estimated memory held (weights per session).
    fn memory_bytes(&self) -> u64;

    /// The engine doing the work (`onnxruntime` or `candle`), for logs and metadata.
    fn backend(&self) -> &'static str;
}

/// How embedding models run, chosen by the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddingOptions {
    /// Threads one batch may use.
    pub threads: usize,
    /// Batches that may run at the same time (ONNX Runtime sessions).
    pub sessions: usize,
}

impl Default for EmbeddingOptions {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            sessions: 1,
        }
    }
}

/// Knows one embedding-model format: recognises it, validates an unpacked folder at push time
/// and loads it.
pub trait EmbeddingEngine: Send + Sync {
    fn format(&self) -> ModelFormat;

    /// The platform name reported in v2 model metadata.
    fn platform(&self) -> &'static str;

    /// Whether the first bytes of an artifact look like this engine's format.
    fn sniff(&self, head: &[u8]) -> bool;

    /// Validates the unpacked folder and reads the facts kept with the version in the registry
    /// (which engine serves it, dimensions, pooling, sequence length).
    fn inspect(&self, dir: &Path) -> Result<serde_json::Value>;

    /// Loads the model from the unpacked folder (blocking).
    fn load(&self, dir: &Path, options: &EmbeddingOptions) -> Result<Arc<dyn EmbeddingModel>>;
}
