use modelbay_core::{Tensor, TensorData};
use ort::value::{DynValue, TensorElementType, ValueType};

use crate::{Error, Result};

fn shape_of(t: &Tensor) -> Vec<i64> {
    t.shape().iter().map(|&d| d as i64).collect()
}

fn ort_err(e: ort::Error) -> Error {
    Error::Inference(e.to_string())
}

/// Copies a validated tensor into an ONNX Runtime value.
pub(super) fn to_ort(t: &Tensor) -> Result<DynValue> {
    macro_rules! owned {
        ($v:expr) => {
            ort::value::Tensor::from_array((shape_of(t), $v.clone()))
                .map(|x| x.into_dyn())
                .map_err(ort_err)
        };
    }
    match t.data() {
        TensorData::Bool(v) => owned!(v),
        TensorData::Uint8(v) => owned!(v),
        TensorData::Uint16(v) => owned!(v),
        TensorData::Uint32(v) => owned!(v),
        TensorData::Uint64(v) => owned!(v),
        TensorData::Int8(v) => owned!(v),
        TensorData::Int16(v) => owned!(v),
        TensorData::Int32(v) => owned!(v),
        TensorData::Int64(v) => owned!(v),
        TensorData::Fp16(v) => owned!(v),
        TensorData::Bf16(v) => owned!(v),
        TensorData::Fp32(v) => owned!(v),
        TensorData::Fp64(v) => owned!(v),
        TensorData::Bytes(v) => {
            let strings = v
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    String::from_utf8(b.clone()).map_err(|_| {
                        Error::Inference(format!(
                            "element {i} of input '{}' is not valid UTF-8; ONNX string tensors hold text",
                            t.name
                        ))
                    })
                })
                .collect::<Result<Vec<String>>>()?;
            ort::value::Tensor::from_string_array((shape_of(t), strings.as_slice()))
                .map(|x| x.into_dyn())
                .map_err(ort_err)
        }
    }
}

/// Copies an ONNX Runtime output into a tensor.
pub(super) fn from_ort(name: &str, value: &DynValue) -> Result<Tensor> {
    let ty = match value.dtype() {
        ValueType::Tensor { ty, .. } => *ty,
        other => {
            return Err(Error::UnsupportedModel(format!(
                "output '{name}' is a {other}, not a tensor"
            )))
        }
    };
    macro_rules! extract {
        ($t:ty, $variant:ident) => {{
            let (shape, data) = value.try_extract_tensor::<$t>().map_err(ort_err)?;
            (shape.to_vec(), TensorData::$variant(data.to_vec()))
        }};
    }
    let (shape, data) = match ty {
        TensorElementType::Bool => extract!(bool, Bool),
        TensorElementType::Uint8 => extract!(u8, Uint8),
        TensorElementType::Uint16 => extract!(u16, Uint16),
        TensorElementType::Uint32 => extract!(u32, Uint32),
        TensorElementType::Uint64 => extract!(u64, Uint64),
        TensorElementType::Int8 => extract!(i8, Int8),
        TensorElementType::Int16 => extract!(i16, Int16),
        TensorElementType::Int32 => extract!(i32, Int32),
        TensorElementType::Int64 => extract!(i64, Int64),
        TensorElementType::Float16 => extract!(half::f16, Fp16),
        TensorElementType::Bfloat16 => extract!(half::bf16, Bf16),
        TensorElementType::Float32 => extract!(f32, Fp32),
        TensorElementType::Float64 => extract!(f64, Fp64),
        TensorElementType::String => {
            let (shape, strings) = value.try_extract_strings().map_err(ort_err)?;
            (
                shape.to_vec(),
                TensorData::Bytes(strings.into_iter().map(String::into_bytes).collect()),
            )
        }
        other => {
            return Err(Error::UnsupportedModel(format!(
                "output '{name}' has element type {other}, which the Open Inference Protocol cannot carry"
            )))
        }
    };
    let shape = shape.iter().map(|&d| d.max(0) as usize).collect();
    Tensor::new(name, shape, data).map_err(|e| Error::Inference(e.to_string()))
}
