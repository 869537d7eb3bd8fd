//! BERT encoders in pure Rust on candle, for folders that hold only `model.safetensors`.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::{
    bert::{Bert, BertConfig},
    Encoded, Encoder, Padded,
};
use crate::{Error, Result};

pub(crate) struct CandleEncoder {
    model: Bert,
    /// Candle's matrix kernels run on rayon; each model gets a pool of its configured size.
    threads: rayon::ThreadPool,
}

/// The candle configuration of the folder's `config.json`, if candle can run it.
pub(crate) fn config(dir: &Path) -> Result<BertConfig> {
    let bytes = std::fs::read(dir.join("config.json"))
        .map_err(|e| Error::InvalidModel(format!("config.json: {e}")))?;
    let raw: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::InvalidModel(format!("config.json is not valid: {e}")))?;
    let model_type = raw.get("model_type").and_then(|t| t.as_str()).unwrap_or("");
    if model_type != "bert" {
        return Err(Error::UnsupportedModel(format!(
            "the candle engine runs BERT encoders, and this model is '{model_type}'; add an ONNX \
             export (onnx/model.onnx) to the folder to serve it with ONNX Runtime"
        )));
    }
    let config: BertConfig = serde_json::from_value(raw).map_err(|e| {
        Error::InvalidModel(format!("config.json is not a BERT configuration: {e}"))
    })?;
    config
        .check()
        .map_err(|e| Error::UnsupportedModel(format!("config.json: {e}")))?;
    Ok(config)
}

impl CandleEncoder {
    pub(crate) fn load(dir: &Path, weights: &Path, threads: usize) -> Result<Self> {
        let config = config(dir)?;
        let tensors = candle_core::safetensors::load(weights, &Device::Cpu)
            .map_err(|e| Error::InvalidModel(format!("model.safetensors cannot be read: {e}")))?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        let model = Bert::load(vb, &config).map_err(|e| {
            Error::InvalidModel(format!(
                "model.safetensors does not hold the BERT weights config.json describes: {e}"
            ))
        })?;
        let threads = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("candle-{i}"))
            .build()
            .map_err(|e| Error::LibraryUnavailable(format!("cannot start candle threads: {e}")))?;
        Ok(Self { model, threads })
    }

    fn forward(&self, padded: &Padded) -> candle_core::Result<Vec<f32>> {
        let shape = (padded.lengths.len(), padded.padded_len);
        let ids = Tensor::from_vec(padded.ids.clone(), shape, &Device::Cpu)?;
        let mask = Tensor::from_vec(padded.mask.clone(), shape, &Device::Cpu)?;
        let states = self.model.forward(&ids, &mask)?;
        states.flatten_all()?.to_vec1::<f32>()
    }
}

impl Encoder for CandleEncoder {
    fn encode(&self, padded: &Padded) -> Result<Encoded> {
        self.threads
            .install(|| self.forward(padded))
            .map(Encoded::TokenStates)
            .map_err(|e| Error::Inference(e.to_string()))
    }
}
