//! Inference engines behind one trait. Each engine is a cargo feature; only the binary chooses
//! which engines exist, and the runtime sees nothing but [`Engine`] and [`TensorSession`].
//!
//! Engines are blocking: the runtime runs every session on threads of its own, never on the async
//! workers.

mod error;
#[cfg(feature = "onnx")]
pub mod onnx;

use std::{path::Path, sync::Arc};

use modelbay_core::{ModelFormat, Signature, Tensor};

pub use error::{Error, Result};

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
    engines: Vec<Arc<dyn Engine>>,
}

impl EngineSet {
    /// Adds an engine.
    pub fn with(mut self, engine: Arc<dyn Engine>) -> Self {
        self.engines.push(engine);
        self
    }

    /// The engine for `format`.
    pub fn get(&self, format: ModelFormat) -> Result<&Arc<dyn Engine>> {
        self.engines
            .iter()
            .find(|e| e.format() == format)
            .ok_or(Error::FormatNotEnabled(format))
    }

    /// The engine whose format the file starting with `head` appears to be in.
    pub fn detect(&self, head: &[u8]) -> Option<&Arc<dyn Engine>> {
        self.engines.iter().find(|e| e.sniff(head))
    }
}
