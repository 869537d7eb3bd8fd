//! The warm-up request a version must answer before it is ready: zeros of every input, with
//! each dynamic dimension set to 1.

use half::{bf16, f16};
use modelbay_core::{DataType, Signature, Tensor, TensorData};

use crate::{Error, Result};

pub(crate) fn request(signature: &Signature) -> Result<Vec<Tensor>> {
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
