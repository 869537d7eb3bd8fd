//! A BERT encoder on candle's tensor operations: embeddings, then self-attention blocks, as in
//! Hugging Face's `BertModel` (post-layer-norm, absolute positions, right padding masked out).
//! Only what sentence embeddings need: the last hidden state.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{embedding, layer_norm, linear, Embedding, LayerNorm, Linear, VarBuilder};
use serde::Deserialize;

/// The parts of a BERT `config.json` the encoder reads.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_activation")]
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocabulary")]
    pub type_vocab_size: usize,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
}

fn default_activation() -> String {
    "gelu".into()
}

fn default_type_vocabulary() -> usize {
    2
}

fn default_layer_norm_eps() -> f64 {
    1e-12
}

#[derive(Debug, Clone, Copy)]
enum Activation {
    /// The exact GELU, with erf.
    Gelu,
    /// The tanh approximation (`gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
    Relu,
}

impl BertConfig {
    fn activation(&self) -> std::result::Result<Activation, String> {
        match self.hidden_act.as_str() {
            "gelu" => Ok(Activation::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" => Ok(Activation::GeluTanh),
            "relu" => Ok(Activation::Relu),
            other => Err(format!("activation '{other}' is not supported")),
        }
    }

    /// Checks what loading cannot: the heads divide the hidden size, the activation is known.
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        self.activation().map(|_| ())
    }
}

struct Embeddings {
    words: Embedding,
    positions: Embedding,
    token_types: Embedding,
    norm: LayerNorm,
}

impl Embeddings {
    fn load(vb: VarBuilder, config: &BertConfig) -> Result<Self> {
        Ok(Self {
            words: embedding(
                config.vocab_size,
                config.hidden_size,
                vb.pp("word_embeddings"),
            )?,
            positions: embedding(
                config.max_position_embeddings,
                config.hidden_size,
                vb.pp("position_embeddings"),
            )?,
            token_types: embedding(
                config.type_vocab_size,
                config.hidden_size,
                vb.pp("token_type_embeddings"),
            )?,
            norm: layer_norm(
                config.hidden_size,
                config.layer_norm_eps,
                vb.pp("LayerNorm"),
            )?,
        })
    }

    fn forward(&self, ids: &Tensor, types: &Tensor) -> Result<Tensor> {
        let (_, length) = ids.dims2()?;
        let positions = Tensor::arange(0u32, length as u32, ids.device())?;
        let summed = self
            .words
            .forward(ids)?
            .add(&self.token_types.forward(types)?)?
            .broadcast_add(&self.positions.forward(&positions)?)?;
        self.norm.forward(&summed)
    }
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
    heads: usize,
    activation: Activation,
}

impl Layer {
    fn load(vb: VarBuilder, config: &BertConfig, activation: Activation) -> Result<Self> {
        let hidden = config.hidden_size;
        let attention = vb.pp("attention");
        let own = attention.pp("self");
        Ok(Self {
            query: linear(hidden, hidden, own.pp("query"))?,
            key: linear(hidden, hidden, own.pp("key"))?,
            value: linear(hidden, hidden, own.pp("value"))?,
            attention_out: linear(hidden, hidden, attention.pp("output").pp("dense"))?,
            attention_norm: layer_norm(
                hidden,
                config.layer_norm_eps,
                attention.pp("output").pp("LayerNorm"),
            )?,
            intermediate: linear(
                hidden,
                config.intermediate_size,
                vb.pp("intermediate").pp("dense"),
            )?,
            output: linear(
                config.intermediate_size,
                hidden,
                vb.pp("output").pp("dense"),
            )?,
            output_norm: layer_norm(
                hidden,
                config.layer_norm_eps,
                vb.pp("output").pp("LayerNorm"),
            )?,
            heads: config.num_attention_heads,
            activation,
        })
    }

    /// `(batch, length, hidden)` → `(batch, heads, length, head_dim)`.
    fn split_heads(&self, xs: &Tensor) -> Result<Tensor> {
        let (batch, length, hidden) = xs.dims3()?;
        xs.reshape((batch, length, self.heads, hidden / self.heads))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// `mask_bias`: `(batch, 1, 1, length)`, 0 for real tokens and a large negative number
    /// for padding, added to the attention scores.
    fn forward(&self, xs: &Tensor, mask_bias: &Tensor) -> Result<Tensor> {
        let (batch, length, hidden) = xs.dims3()?;
        let head_dim = hidden / self.heads;
        let query = self.split_heads(&self.query.forward(xs)?)?;
        let key = self.split_heads(&self.key.forward(xs)?)?;
        let value = self.split_heads(&self.value.forward(xs)?)?;
        let scores = (query.matmul(&key.t()?)? / (head_dim as f64).sqrt())?;
        let weights = candle_nn::ops::softmax_last_dim(&scores.broadcast_add(mask_bias)?)?;
        let context = weights
            .matmul(&value)?
            .transpose(1, 2)?
            .reshape((batch, length, hidden))?;
        let attended = self
            .attention_norm
            .forward(&(self.attention_out.forward(&context)? + xs)?)?;
        let inner = self.intermediate.forward(&attended)?;
        let inner = match self.activation {
            Activation::Gelu => inner.gelu_erf()?,
            Activation::GeluTanh => inner.gelu()?,
            Activation::Relu => inner.relu()?,
        };
        self.output_norm
            .forward(&(self.output.forward(&inner)? + attended)?)
    }
}

/// The encoder: token ids and an attention mask in, the last hidden state out.
pub(crate) struct Bert {
    embeddings: Embeddings,
    layers: Vec<Layer>,
}

impl Bert {
    /// Loads the weights under `bert.` or at the root, as Hugging Face saves them.
    pub(crate) fn load(vb: VarBuilder, config: &BertConfig) -> Result<Self> {
        let activation = config.activation().map_err(candle_core::Error::msg)?;
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else {
            vb
        };
        let layers = (0..config.num_hidden_layers)
            .map(|i| Layer::load(vb.pp("encoder.layer").pp(i), config, activation))
            .collect::<Result<_>>()?;
        Ok(Self {
            embeddings: Embeddings::load(vb.pp("embeddings"), config)?,
            layers,
        })
    }

    /// `ids` and `mask`: `(batch, length)` u32, mask 1 for real tokens and 0 for padding.
    /// Returns `(batch, length, hidden)`.
    pub(crate) fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let types = ids.zeros_like()?;
        let mut xs = self.embeddings.forward(ids, &types)?;
        // 0 where attended, the most negative float where padded.
        let mask_bias = ((mask.to_dtype(DType::F32)? - 1.0)? * f32::MAX as f64)?
            .unsqueeze(1)?
            .unsqueeze(1)?;
        for layer in &self.layers {
            xs = layer.forward(&xs, &mask_bias)?;
        }
        Ok(xs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(heads: usize, activation: &str) -> BertConfig {
        serde_json::from_value(serde_json::json!({
            "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
            "num_attention_heads": heads, "intermediate_size": 16,
            "hidden_act": activation, "max_position_embeddings": 16
        }))
        .unwrap()
    }

    #[test]
    fn configurations_it_cannot_run_are_refused() {
        assert!(config(2, "gelu").check().is_ok());
        assert!(config(2, "gelu_new").check().is_ok());
        assert!(
            config(3, "gelu").check().is_err(),
            "8 is not a multiple of 3"
        );
        assert!(config(0, "gelu").check().is_err());
        assert!(config(2, "swish").check().is_err());
    }
}
