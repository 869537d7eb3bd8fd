//! The warm-up request a version must answer before it is ready: zeros of every input, with
//! each dynamic dimension set to 1.

use half::{bf16, f16};
use modelbay_core::{DataType, Signature, Tensor, TensorData};

use crate::{Error, Result};

/// Most elements a warm-up request may hold over all inputs: a pushed model's static shapes
/// decide its size, and a pushed model is untrusted (16 Mi elements is 128 MiB of FP64).
pub(crate) const MAX_WARMUP_ELEMENTS: usize = 1 << 24;

pub(crate) fn request(signature: &Signature) -> Result<Vec<Tensor>> {
    let mut total = 0usize;
    signature
        .inputs
        .iter()
        .map(|spec| {
            let shape: Vec<usize> = spec
                .shape
                .iter()
                .map(|&d| if d < 0 { 1 } else { d as usize })
                .collect();
            let n = modelbay_core::element_count(&shape)?;
            total = total.saturating_add(n);
            if total > MAX_WARMUP_ELEMENTS {
                return Err(Error::Unsupported(format!(
                    "the model's fixed input shapes need more than {MAX_WARMUP_ELEMENTS} elements \
                     for one request (input '{}' has shape {shape:?}); modelbay serves models \
                     whose smallest request is at most that",
                    spec.name
                )));
            }
            let data = match spec.datatype {
                DataType::Bool => TensorData::Bool(vec![false; n]),
                DataType::Uint8 => TensorData::Uint8(vec![0; n]),
                DataType::Uint16 => TensorData::Uint16(vec![0; n]),
                DataType::Uint32 => TensorData::Uint32(vec![0; n]),
                DataType::Uint64 => TensorData::Uint64(vec![0; n]),
                DataType::Int8 => TensorData::Int8(vec![0; n]),
                DataType::Int16 => TensorData::Int16(vec![0; n]),
                DataType::Int32 => TensorData::Int32(vec![0; n]),
                DataType::Int64 => TensorData::Int64(vec![0; n]),
                DataType::Fp16 => TensorData::Fp16(vec![f16::ZERO; n]),
                DataType::Bf16 => TensorData::Bf16(vec![bf16::ZERO; n]),
                DataType::Fp32 => TensorData::Fp32(vec![0.0; n]),
                DataType::Fp64 => TensorData::Fp64(vec![0.0; n]),
                DataType::Bytes => TensorData::Bytes(vec![Vec::new(); n]),
            };
            Tensor::new(spec.name.clone(), shape, data).map_err(Error::from)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use modelbay_core::TensorSpec;

    use super::*;

    fn signature(shape: Vec<i64>) -> Signature {
        Signature {
            inputs: vec![TensorSpec {
                name: "x".into(),
                datatype: DataType::Fp64,
                shape,
            }],
            outputs: Vec::new(),
        }
    }

    #[test]
    fn a_warm_up_is_bounded_whatever_the_model_declares() {
        assert_eq!(
            request(&signature(vec![-1, 30])).unwrap()[0].shape(),
            [1, 30]
        );
        // 2^31 FP64 elements would be 16 GiB.
        let err = request(&signature(vec![1 << 16, 1 << 15])).unwrap_err();
        assert!(err.to_string().contains("input 'x'"), "{err}");
    }
}
