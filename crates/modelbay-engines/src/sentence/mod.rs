//! Sentence-transformer models: a Hugging Face folder (encoder, tokenizer, pooling and
//! normalisation settings) pushed as one archive. The folder's contents choose the encoder:
//! ONNX Runtime when it holds an ONNX export, candle when it holds only `model.safetensors`.
//! Tokenizing, padding and pooling are shared, so both give the same embeddings.

mod bert;
mod candle_encoder;
mod folder;
#[cfg(feature = "onnx")]
mod onnx_encoder;
mod pooling;
mod tokenizer;

use std::{path::Path, sync::Arc};

use modelbay_core::ModelFormat;

use crate::{
    embedding::{EmbeddingEngine, EmbeddingModel, EmbeddingOptions, EmbeddingToken},
    Error, Result,
};
use folder::{SentenceFolder, Weights};
use pooling::Pooling;
use tokenizer::TextTokenizer;

/// A batch padded on the right to its longest input.
pub(crate) struct Padded {
    /// `rows × padded_len` token ids (0 after each row's end).
    pub ids: Vec<u32>,
    /// 1 for real tokens, 0 for padding.
    pub mask: Vec<u32>,
    pub lengths: Vec<usize>,
    pub padded_len: usize,
}

impl Padded {
    fn new(batch: &[Vec<EmbeddingToken>]) -> Self {
        let padded_len = batch.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut ids = Vec::with_capacity(batch.len() * padded_len);
        let mut mask = Vec::with_capacity(batch.len() * padded_len);
        for row in batch {
            ids.extend_from_slice(row);
            ids.resize(ids.len() + padded_len - row.len(), 0);
            mask.extend(std::iter::repeat_n(1, row.len()));
            mask.resize(mask.len() + padded_len - row.len(), 0);
        }
        Self {
            ids,
            mask,
            lengths: batch.iter().map(Vec::len).collect(),
            padded_len,
        }
    }
}

/// What an encoder returns for a padded batch.
pub(crate) enum Encoded {
    /// `rows × padded_len × hidden` token embeddings, to be pooled.
    TokenStates(Vec<f32>),
    /// `rows × dimensions`, already pooled by the graph.
    Pooled(Vec<f32>),
}

/// Runs the transformer on a padded batch.
pub(crate) trait Encoder: Send + Sync {
    fn encode(&self, padded: &Padded) -> Result<Encoded>;
}

/// The sentence-transformers engine.
pub struct SentenceTransformersEngine {
    #[cfg(feature = "onnx")]
    onnx: Option<Arc<crate::onnx::OnnxEngine>>,
}

impl SentenceTransformersEngine {
    /// An engine that serves safetensors folders with candle and, when ONNX Runtime is given,
    /// folders with an ONNX export with it.
    #[cfg(feature = "onnx")]
    pub fn new(onnx: Option<Arc<crate::onnx::OnnxEngine>>) -> Self {
        Self { onnx }
    }

    /// An engine that serves safetensors folders with candle.
    #[cfg(not(feature = "onnx"))]
    pub fn new() -> Self {
        Self {}
    }

    fn encoder(
        &self,
        dir: &Path,
        folder: &SentenceFolder,
        options: &EmbeddingOptions,
    ) -> Result<Box<dyn Encoder>> {
        match &folder.weights {
            Weights::Safetensors(path) => Ok(Box::new(candle_encoder::CandleEncoder::load(
                dir,
                path,
                options.threads,
            )?)),
            #[cfg(feature = "onnx")]
            Weights::Onnx(path) => {
                let onnx = self.onnx.as_ref().ok_or_else(|| {
                    Error::LibraryUnavailable(
                        "this folder holds an ONNX export, but ONNX Runtime is not loaded \
                         (set ORT_DYLIB_PATH)"
                            .into(),
                    )
                })?;
                Ok(Box::new(onnx_encoder::OnnxEncoder::load(
                    onnx,
                    path,
                    folder.config.hidden_size,
                    options.threads,
                    options.sessions,
                )?))
            }
            #[cfg(not(feature = "onnx"))]
            Weights::Onnx(_) => Err(Error::FormatNotEnabled(ModelFormat::Onnx)),
        }
    }
}

fn backend_of(folder: &SentenceFolder) -> &'static str {
    match folder.weights {
        Weights::Onnx(_) => "onnxruntime",
        Weights::Safetensors(_) => "candle",
    }
}

impl EmbeddingEngine for SentenceTransformersEngine {
    fn format(&self) -> ModelFormat {
        ModelFormat::SentenceTransformers
    }

    fn platform(&self) -> &'static str {
        "sentence_transformers"
    }

    fn sniff(&self, head: &[u8]) -> bool {
        // A tar archive: "ustar" at offset 257 of the first header.
        head.get(257..262) == Some(b"ustar")
    }

    fn inspect(&self, dir: &Path) -> Result<serde_json::Value> {
        let folder = SentenceFolder::read(dir)?;
        if matches!(folder.weights, Weights::Safetensors(_)) {
            candle_encoder::config(dir)?;
        }
        TextTokenizer::load(&folder.tokenizer, folder.max_tokens)?;
        Ok(serde_json::json!({
            "engine": backend_of(&folder),
            "architecture": folder.config.model_type,
            "dimensions": folder.dimensions(),
            "max_tokens": folder.max_tokens,
            "pooling": folder.pooling.iter().map(Pooling::to_string).collect::<Vec<_>>(),
            "normalize": folder.normalize,
            "layers": folder.config.num_hidden_layers,
        }))
    }

    fn load(&self, dir: &Path, options: &EmbeddingOptions) -> Result<Arc<dyn EmbeddingModel>> {
        let folder = SentenceFolder::read(dir)?;
        let tokenizer = TextTokenizer::load(&folder.tokenizer, folder.max_tokens)?;
        let encoder = self.encoder(dir, &folder, options)?;
        let weights = match &folder.weights {
            Weights::Onnx(path) | Weights::Safetensors(path) => path,
        };
        let weight_bytes = std::fs::metadata(weights).map(|m| m.len()).unwrap_or(0);
        let copies = match folder.weights {
            Weights::Onnx(_) => options.sessions.max(1) as u64,
            Weights::Safetensors(_) => 1,
        };
        Ok(Arc::new(SentenceModel {
            backend: backend_of(&folder),
            memory: weight_bytes * copies,
            tokenizer,
            encoder,
            folder,
        }))
    }
}

struct SentenceModel {
    folder: SentenceFolder,
    tokenizer: TextTokenizer,
    encoder: Box<dyn Encoder>,
    backend: &'static str,
    memory: u64,
}

impl SentenceModel {
    /// Token ids must be below this: the tokenizer's vocabulary, or the encoder's embedding
    /// table when that is smaller.
    fn vocabulary_size(&self) -> usize {
        let encoder = self.folder.config.vocab_size.unwrap_or(usize::MAX);
        self.tokenizer.vocabulary_size().min(encoder)
    }

    /// Tokens the encoder can run: at least one, each inside the encoder's embedding table
    /// (a tokenizer may know more tokens than the encoder has embeddings for).
    fn checked(&self, tokens: Vec<EmbeddingToken>) -> Result<Vec<EmbeddingToken>> {
        if tokens.is_empty() {
            return Err(Error::InvalidRequest(
                "the input has no tokens for this model".into(),
            ));
        }
        let vocabulary = self.vocabulary_size();
        if let Some(&id) = tokens.iter().find(|&&id| id as usize >= vocabulary) {
            return Err(Error::InvalidRequest(format!(
                "token id {id} is not in the model's vocabulary of {vocabulary} tokens"
            )));
        }
        Ok(tokens)
    }
}

impl EmbeddingModel for SentenceModel {
    fn dimensions(&self) -> usize {
        self.folder.dimensions()
    }

    fn tokenize(&self, text: &str) -> Result<Vec<EmbeddingToken>> {
        self.checked(self.tokenizer.tokenize(text)?)
    }

    fn tokens_from_ids(&self, ids: &[EmbeddingToken]) -> Result<Vec<EmbeddingToken>> {
        self.checked(self.tokenizer.tokenize_ids(ids)?)
    }

    fn embed(&self, batch: &[Vec<EmbeddingToken>]) -> Result<Vec<Vec<f32>>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(i) = batch.iter().position(|row| row.is_empty()) {
            return Err(Error::InvalidRequest(format!("input {i} has no tokens")));
        }
        let padded = Padded::new(batch);
        let rows = batch.len();
        let dimensions = self.dimensions();
        let hidden = self.folder.config.hidden_size;
        match self.encoder.encode(&padded)? {
            Encoded::TokenStates(states) => {
                let expected = rows * padded.padded_len * hidden;
                if states.len() != expected {
                    return Err(Error::Inference(format!(
                        "the encoder returned {} values for a {rows}×{}×{hidden} batch",
                        states.len(),
                        padded.padded_len
                    )));
                }
                Ok(pooling::pool(
                    &states,
                    &padded.lengths,
                    padded.padded_len,
                    hidden,
                    &self.folder.pooling,
                    self.folder.normalize,
                ))
            }
            Encoded::Pooled(flat) => {
                if flat.len() != rows * dimensions {
                    return Err(Error::Inference(format!(
                        "the encoder returned {} values for {rows} embeddings of {dimensions}",
                        flat.len()
                    )));
                }
                Ok(flat
                    .chunks_exact(dimensions)
                    .map(|row| {
                        let mut row = row.to_vec();
                        if self.folder.normalize {
                            pooling::normalize_in_place(&mut row);
                        }
                        row
                    })
                    .collect())
            }
        }
    }

    fn memory_bytes(&self) -> u64 {
        self.memory
    }

    fn backend(&self) -> &'static str {
        self.backend
    }
}
