//! Inference engines behind two traits: [`Engine`] for tensor models (sessions that run a batch
//! at a time) and [`LanguageEngine`] for text generation. Each engine is a cargo feature; only
//! the binary chooses which engines exist, and the runtime sees nothing but the traits.
//!
//! Engines are blocking: the runtime runs every session on threads of its own, never on the async
//! workers.

pub mod chat_template;
pub mod embedding;
mod error;
pub mod generation;
pub mod gguf;
#[cfg(feature = "llm")]
pub mod llama;
#[cfg(feature = "onnx")]
pub mod onnx;
#[cfg(feature = "embed")]
pub mod sentence;

use std::{path::Path, sync::Arc};

use modelbay_core::{ModelFormat, Signature, Tensor};

pub use embedding::{EmbeddingEngine, EmbeddingModel, EmbeddingOptions};
pub use error::{Error, Result};
pub use generation::{LanguageEngine, LanguageModel, LanguageOptions};

/// Per-session settings chosen by the operator.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Threads one session may use for one inference.
    pub intra_op_threads: usize,
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            intra_op_threads: 1,
        }
    }
}

/// Knows one model format: recognises it, validates an artifact at push time and opens sessions
/// that run it.
pub trait Engine: Send + Sync {
    /// The format this engine serves.
    fn format(&self) -> ModelFormat;

    /// The platform name reported in v2 model metadata (e.g. `onnxruntime_onnx`).
    fn platform(&self) -> &'static str;

    /// Whether the first bytes of a file look like this engine's format.
    fn sniff(&self, head: &[u8]) -> bool;

    /// Fully validates the artifact at `path` and reads its signature. A file that passes can be
    /// served; one that fails is refused at push time, not at first inference.
    fn inspect(&self, path: &Path) -> Result<Signature>;

    /// Opens one session over the artifact's bytes.
    fn open(&self, artifact: &[u8], options: &SessionOptions) -> Result<Box<dyn TensorSession>>;
}

/// One loaded instance of a model that runs a batch at a time on the calling thread.
pub trait TensorSession: Send {
    /// Runs the model on `inputs` (already validated against the signature, in signature order)
    /// and returns the named `outputs` in that order.
    fn run(&mut self, inputs: &[Tensor], outputs: &[String]) -> Result<Vec<Tensor>>;
}

/// The engines compiled into this binary.
#[derive(Clone, Default)]
pub struct EngineSet {
    tensor: Vec<Arc<dyn Engine>>,
    language: Vec<Arc<dyn LanguageEngine>>,
    embedding: Vec<Arc<dyn EmbeddingEngine>>,
}

impl EngineSet {
    /// Adds a tensor engine.
    pub fn with(mut self, engine: Arc<dyn Engine>) -> Self {
        self.tensor.push(engine);
        self
    }

    /// Adds a language-model engine.
    pub fn with_language(mut self, engine: Arc<dyn LanguageEngine>) -> Self {
        self.language.push(engine);
        self
    }

    /// Adds an embedding engine.
    pub fn with_embedding(mut self, engine: Arc<dyn EmbeddingEngine>) -> Self {
        self.embedding.push(engine);
        self
    }

    /// The tensor engine for `format`.
    pub fn tensor(&self, format: ModelFormat) -> Result<&Arc<dyn Engine>> {
        self.tensor
            .iter()
            .find(|e| e.format() == format)
            .ok_or(Error::FormatNotEnabled(format))
    }

    /// The language-model engine for `format`.
    pub fn language(&self, format: ModelFormat) -> Result<&Arc<dyn LanguageEngine>> {
        self.language
            .iter()
            .find(|e| e.format() == format)
            .ok_or(Error::FormatNotEnabled(format))
    }

    /// The embedding engine for `format`.
    pub fn embedding(&self, format: ModelFormat) -> Result<&Arc<dyn EmbeddingEngine>> {
        self.embedding
            .iter()
            .find(|e| e.format() == format)
            .ok_or(Error::FormatNotEnabled(format))
    }

    /// Whether versions in `format` embed text.
    pub fn is_embedding(&self, format: ModelFormat) -> bool {
        self.embedding.iter().any(|e| e.format() == format)
    }

    /// Whether versions in `format` generate text (rather than run tensors).
    pub fn is_language(&self, format: ModelFormat) -> bool {
        self.language.iter().any(|e| e.format() == format)
    }

    /// The platform name reported in v2 model metadata for `format`.
    pub fn platform(&self, format: ModelFormat) -> Result<&'static str> {
        if let Ok(engine) = self.language(format) {
            return Ok(engine.platform());
        }
        if let Ok(engine) = self.embedding(format) {
            return Ok(engine.platform());
        }
        Ok(self.tensor(format)?.platform())
    }

    /// The format of the file starting with `head` (its first 512 bytes or all of it), if an
    /// engine recognises it.
    pub fn detect(&self, head: &[u8]) -> Option<ModelFormat> {
        let language = self.language.iter().find(|e| e.sniff(head));
        let embedding = self.embedding.iter().find(|e| e.sniff(head));
        let tensor = self.tensor.iter().find(|e| e.sniff(head));
        language
            .map(|e| e.format())
            .or_else(|| embedding.map(|e| e.format()))
            .or_else(|| tensor.map(|e| e.format()))
    }
}
