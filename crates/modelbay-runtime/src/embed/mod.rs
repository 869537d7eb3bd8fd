//! Text embeddings: tokenizing off the async workers, batching across requests, and the v2
//! view of an embedding model (a BYTES input `text`, an FP32 output `embedding`).

mod batching;
mod embedder;

use std::time::Duration;

use modelbay_core::{DataType, Signature, Tensor, TensorData, TensorSpec};
use modelbay_engines::{embedding::EmbeddingToken, EmbeddingOptions};

pub use batching::BatchPolicy;
pub(crate) use embedder::Embedder;

use crate::{Error, Result, Routed, Runtime};

/// The v2 input of an embedding model: one string per embedding.
pub const TEXT_INPUT: &str = "text";
/// The v2 output of an embedding model: `[inputs, dimensions]`.
pub const EMBEDDING_OUTPUT: &str = "embedding";

/// How embedding models are served, chosen by the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddingServeOptions {
    pub engine: EmbeddingOptions,
    pub batch: BatchPolicy,
    /// Most inputs in one request.
    pub max_inputs: usize,
    /// Inputs that may wait for a batch before new requests are refused.
    pub max_waiting: usize,
}

impl Default for EmbeddingServeOptions {
    fn default() -> Self {
        Self {
            engine: EmbeddingOptions::default(),
            batch: BatchPolicy {
                max_batch: 32,
                max_batch_tokens: 16384,
                max_delay: Duration::ZERO,
            },
            max_inputs: 2048,
            max_waiting: 8192,
        }
    }
}

/// One input to embed.
#[derive(Debug, Clone, PartialEq)]
pub enum EmbedInput {
    Text(String),
    /// Token ids of the model's own vocabulary, without special tokens.
    Tokens(Vec<EmbeddingToken>),
}

/// Embeddings of a request's inputs, in order.
#[derive(Debug, Clone)]
pub struct Embeddings {
    pub vectors: Vec<Vec<f32>>,
    /// Tokens the model read (after truncation, special tokens included).
    pub prompt_tokens: usize,
    pub dimensions: usize,
}

/// The v2 signature of an embedding model with `dimensions`-long vectors.
pub(crate) fn signature(dimensions: usize) -> Signature {
    Signature {
        inputs: vec![TensorSpec {
            name: TEXT_INPUT.into(),
            datatype: DataType::Bytes,
            shape: vec![-1],
        }],
        outputs: vec![TensorSpec {
            name: EMBEDDING_OUTPUT.into(),
            datatype: DataType::Fp32,
            shape: vec![-1, dimensions as i64],
        }],
    }
}

impl Runtime {
    /// Length of the vectors the routed version produces (an error if it does not embed).
    pub fn embedding_dimensions(&self, routed: &Routed) -> Result<usize> {
        Ok(routed.model.embedder()?.model.dimensions())
    }

    /// Embeds `inputs` with the routed version, batched with other requests.
    pub async fn embed(&self, routed: &Routed, inputs: Vec<EmbedInput>) -> Result<Embeddings> {
        embed_with(routed.model.embedder()?, inputs).await
    }
}

/// Checks the request's size and the queue's room, tokenizes (on a blocking thread; every
/// input is checked here, so one bad input fails only its own request) and embeds.
pub(crate) async fn embed_with(embedder: &Embedder, inputs: Vec<EmbedInput>) -> Result<Embeddings> {
    embedder.check_room(inputs.len())?;
    let model = embedder.model.clone();
    let tokens = tokio::task::spawn_blocking(move || {
        inputs
            .iter()
            .map(|input| match input {
                EmbedInput::Text(text) => model.tokenize(text),
                EmbedInput::Tokens(ids) => model.tokens_from_ids(ids),
            })
            .collect::<modelbay_engines::Result<Vec<_>>>()
    })
    .await??;
    let prompt_tokens = tokens.iter().map(Vec::len).sum();
    let vectors = embedder.embed(tokens).await?;
    Ok(Embeddings {
        vectors,
        prompt_tokens,
        dimensions: embedder.model.dimensions(),
    })
}

/// v2 inference on an embedding model: the `text` input's strings in, `embedding` out.
pub(crate) async fn infer_v2(embedder: &Embedder, inputs: Vec<Tensor>) -> Result<Vec<Tensor>> {
    // The request was validated against `signature`: one BYTES input named `text`.
    let Some(TensorData::Bytes(strings)) = inputs.first().map(Tensor::data) else {
        return Err(Error::WrongKind(format!(
            "an embedding model takes one BYTES input '{TEXT_INPUT}'"
        )));
    };
    let texts = strings
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            String::from_utf8(bytes.clone())
                .map(EmbedInput::Text)
                .map_err(|_| {
                    modelbay_core::Error::InvalidInput(format!(
                        "element {i} of input '{TEXT_INPUT}' is not valid UTF-8 text"
                    ))
                    .into()
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let n = texts.len();
    let embeddings = embed_with(embedder, texts).await?;
    let flat = embeddings.vectors.into_iter().flatten().collect();
    Ok(vec![Tensor::new(
        EMBEDDING_OUTPUT,
        vec![n, embeddings.dimensions],
        TensorData::Fp32(flat),
    )?])
}
