//! Encoders exported to ONNX (`onnx/model.onnx`), run by ONNX Runtime through the same
//! environment as tabular models. A session runs one batch at a time (`Session::run` takes
//! `&mut self`), so the encoder keeps a pool of sessions and a batch borrows one.

use std::path::Path;

use crossbeam_channel::{bounded, Receiver, Sender};
use ort::{
    session::Session,
    value::{DynValue, TensorElementType, ValueType},
};

use super::{Encoded, Encoder, Padded};
use crate::{onnx::OnnxEngine, Error, Result, SessionOptions};

/// What the graph expects in one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feed {
    Ids,
    Mask,
    TokenTypes,
    Positions,
}

pub(crate) struct OnnxEncoder {
    idle: Receiver<Session>,
    returned: Sender<Session>,
    inputs: Vec<(String, Feed, TensorElementType)>,
    output: String,
    /// Whether the output is already one vector per input (`sentence_embedding`).
    pooled: bool,
}

impl OnnxEncoder {
    pub(crate) fn load(
        engine: &OnnxEngine,
        model: &Path,
        hidden_size: usize,
        threads: usize,
        sessions: usize,
    ) -> Result<Self> {
        let options = SessionOptions {
            intra_op_threads: threads,
        };
        let sessions = (0..sessions.max(1))
            .map(|_| {
                engine
                    .session(&options)?
                    .commit_from_file(model)
                    .map_err(|e| {
                        let detail = e
                            .to_string()
                            .replace(&model.display().to_string(), "onnx/model.onnx");
                        Error::InvalidModel(format!("the ONNX export cannot be loaded: {detail}"))
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let first = &sessions[0];
        let inputs = first
            .inputs()
            .iter()
            .map(|input| {
                let feed = match input.name() {
                    "input_ids" => Feed::Ids,
                    "attention_mask" => Feed::Mask,
                    "token_type_ids" => Feed::TokenTypes,
                    "position_ids" => Feed::Positions,
                    other => {
                        return Err(Error::UnsupportedModel(format!(
                            "the ONNX export has an input '{other}'; an encoder takes input_ids, \
                             attention_mask and optionally token_type_ids and position_ids"
                        )))
                    }
                };
                let ty = match input.dtype() {
                    ValueType::Tensor { ty, .. }
                        if matches!(ty, TensorElementType::Int64 | TensorElementType::Int32) =>
                    {
                        *ty
                    }
                    other => {
                        return Err(Error::UnsupportedModel(format!(
                            "the ONNX export's input '{}' is {other}; token inputs must be int64 \
                             or int32 tensors",
                            input.name()
                        )))
                    }
                };
                Ok((input.name().to_owned(), feed, ty))
            })
            .collect::<Result<Vec<_>>>()?;
        // Without a mask, padding would change the embeddings of shorter inputs in a batch.
        for (needed, what) in [(Feed::Ids, "input_ids"), (Feed::Mask, "attention_mask")] {
            if !inputs.iter().any(|(_, feed, _)| *feed == needed) {
                return Err(Error::UnsupportedModel(format!(
                    "the ONNX export has no '{what}' input; an encoder needs input_ids and \
                     attention_mask"
                )));
            }
        }
        let (output, pooled) = pick_output(first, hidden_size)?;
        let (returned, idle) = bounded(sessions.len());
        for session in sessions {
            returned
                .send(session)
                .map_err(|_| Error::Inference("session pool closed".into()))?;
        }
        Ok(Self {
            idle,
            returned,
            inputs,
            output,
            pooled,
        })
    }

    fn feed(&self, padded: &Padded, feed: Feed, ty: TensorElementType) -> Result<DynValue> {
        let shape = vec![padded.lengths.len() as i64, padded.padded_len as i64];
        let values: Vec<i64> = match feed {
            Feed::Ids => padded.ids.iter().map(|&x| x as i64).collect(),
            Feed::Mask => padded.mask.iter().map(|&x| x as i64).collect(),
            Feed::TokenTypes => vec![0; padded.ids.len()],
            Feed::Positions => (0..padded.ids.len())
                .map(|i| (i % padded.padded_len) as i64)
                .collect(),
        };
        let value = if ty == TensorElementType::Int32 {
            let narrow: Vec<i32> = values.into_iter().map(|x| x as i32).collect();
            ort::value::Tensor::from_array((shape, narrow)).map(|t| t.into_dyn())
        } else {
            ort::value::Tensor::from_array((shape, values)).map(|t| t.into_dyn())
        };
        value.map_err(|e| Error::Inference(e.to_string()))
    }

    fn run(&self, session: &mut Session, padded: &Padded) -> Result<Vec<f32>> {
        let values = self
            .inputs
            .iter()
            .map(|(name, feed, ty)| Ok((name.as_str(), self.feed(padded, *feed, *ty)?)))
            .collect::<Result<Vec<_>>>()?;
        let outputs = session
            .run(values)
            .map_err(|e| Error::Inference(e.to_string()))?;
        let value = outputs
            .get(&self.output)
            .ok_or_else(|| Error::Inference(format!("no output '{}'", self.output)))?;
        let (_, data) = value
            .try_extract_tensor::<f32>()
            .map_err(|e| Error::Inference(e.to_string()))?;
        Ok(data.to_vec())
    }
}

/// The output holding the embeddings: `sentence_embedding` when the export includes pooling,
/// else the token embeddings (`last_hidden_state`, `token_embeddings` or the first float
/// output of rank 3), which are pooled here.
fn pick_output(session: &Session, hidden_size: usize) -> Result<(String, bool)> {
    let float_rank = |dtype: &ValueType| match dtype {
        ValueType::Tensor {
            ty: TensorElementType::Float32,
            shape,
            ..
        } => Some(shape.len()),
        _ => None,
    };
    let outputs = session.outputs();
    for output in outputs {
        if output.name() == "sentence_embedding" && float_rank(output.dtype()) == Some(2) {
            return Ok((output.name().to_owned(), true));
        }
    }
    let by_name = outputs.iter().find(|o| {
        matches!(o.name(), "last_hidden_state" | "token_embeddings")
            && float_rank(o.dtype()) == Some(3)
    });
    let chosen = by_name.or_else(|| outputs.iter().find(|o| float_rank(o.dtype()) == Some(3)));
    let chosen = chosen.ok_or_else(|| {
        Error::UnsupportedModel(
            "the ONNX export has no float32 output of token embeddings [batch, sequence, hidden] \
             nor a 'sentence_embedding' output"
                .into(),
        )
    })?;
    if let ValueType::Tensor { shape, .. } = chosen.dtype() {
        let last = shape.last().copied().unwrap_or(-1);
        if last > 0 && last as usize != hidden_size {
            return Err(Error::InvalidModel(format!(
                "the ONNX export's output '{}' has {last} dimensions per token but config.json \
                 says hidden_size {hidden_size}",
                chosen.name()
            )));
        }
    }
    Ok((chosen.name().to_owned(), false))
}

/// A session taken from the pool; it goes back when dropped, even if the run panicked.
struct Borrowed<'a> {
    session: Option<Session>,
    home: &'a Sender<Session>,
}

impl Drop for Borrowed<'_> {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            let _ = self.home.send(session);
        }
    }
}

impl Encoder for OnnxEncoder {
    fn encode(&self, padded: &Padded) -> Result<Encoded> {
        let session = self
            .idle
            .recv()
            .map_err(|_| Error::Inference("session pool closed".into()))?;
        let mut borrowed = Borrowed {
            session: Some(session),
            home: &self.returned,
        };
        let session = borrowed.session.as_mut().expect("a borrowed session");
        let data = self.run(session, padded)?;
        Ok(if self.pooled {
            Encoded::Pooled(data)
        } else {
            Encoded::TokenStates(data)
        })
    }
}
