use modelbay_core::{DataType, Signature, TensorSpec};
use ort::{
    session::Session,
    value::{Outlet, TensorElementType, ValueType},
};

use crate::{Error, Result};

/// The v2 datatype for an ONNX element type, if the protocol can carry it.
pub(super) fn datatype(ty: TensorElementType) -> Option<DataType> {
    Some(match ty {
        TensorElementType::Bool => DataType::Bool,
        TensorElementType::Uint8 => DataType::Uint8,
        TensorElementType::Uint16 => DataType::Uint16,
        TensorElementType::Uint32 => DataType::Uint32,
        TensorElementType::Uint64 => DataType::Uint64,
        TensorElementType::Int8 => DataType::Int8,
        TensorElementType::Int16 => DataType::Int16,
        TensorElementType::Int32 => DataType::Int32,
        TensorElementType::Int64 => DataType::Int64,
        TensorElementType::Float16 => DataType::Fp16,
        TensorElementType::Bfloat16 => DataType::Bf16,
        TensorElementType::Float32 => DataType::Fp32,
        TensorElementType::Float64 => DataType::Fp64,
        TensorElementType::String => DataType::Bytes,
        _ => return None,
    })
}

fn spec(outlet: &Outlet, role: &str) -> Result<TensorSpec> {
    match outlet.dtype() {
        ValueType::Tensor { ty, shape, .. } => {
            let datatype = datatype(*ty).ok_or_else(|| {
                Error::UnsupportedModel(format!(
                    "{role} '{}' has element type {ty}, which the Open Inference Protocol cannot carry",
                    outlet.name()
                ))
            })?;
            Ok(TensorSpec {
                name: outlet.name().to_owned(),
                datatype,
                shape: shape.iter().map(|&d| if d < 0 { -1 } else { d }).collect(),
            })
        }
        ValueType::Sequence(_) | ValueType::Map { .. } => Err(Error::UnsupportedModel(format!(
            "{role} '{}' is a {}, not a tensor; the Open Inference Protocol carries only tensors. \
             If this is a scikit-learn classifier exported with skl2onnx, re-export it with ZipMap \
             disabled: convert_sklearn(model, ..., options={{'zipmap': False}})",
            outlet.name(),
            outlet.dtype()
        ))),
        other => Err(Error::UnsupportedModel(format!(
            "{role} '{}' has type {other}, which the Open Inference Protocol cannot carry",
            outlet.name()
        ))),
    }
}

/// Reads the model's inputs and outputs, refusing any that are not tensors.
pub(super) fn read(session: &Session) -> Result<Signature> {
    Ok(Signature {
        inputs: session
            .inputs()
            .iter()
            .map(|o| spec(o, "input"))
            .collect::<Result<_>>()?,
        outputs: session
            .outputs()
            .iter()
            .map(|o| spec(o, "output"))
            .collect::<Result<_>>()?,
    })
}
