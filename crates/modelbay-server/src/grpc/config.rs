//! Triton's model configuration as a message, derived from the stored signature as the HTTP
//! `/config` endpoint does: the batch dimension is in the shapes, so `max_batch_size` is 0.

use modelbay_core::{DataType, TensorSpec};
use modelbay_runtime::ModelMetadata;

use super::proto;

fn data_type(datatype: DataType) -> proto::DataType {
    match datatype {
        DataType::Bool => proto::DataType::TypeBool,
        DataType::Uint8 => proto::DataType::TypeUint8,
        DataType::Uint16 => proto::DataType::TypeUint16,
        DataType::Uint32 => proto::DataType::TypeUint32,
        DataType::Uint64 => proto::DataType::TypeUint64,
        DataType::Int8 => proto::DataType::TypeInt8,
        DataType::Int16 => proto::DataType::TypeInt16,
        DataType::Int32 => proto::DataType::TypeInt32,
        DataType::Int64 => proto::DataType::TypeInt64,
        DataType::Fp16 => proto::DataType::TypeFp16,
        DataType::Bf16 => proto::DataType::TypeBf16,
        DataType::Fp32 => proto::DataType::TypeFp32,
        DataType::Fp64 => proto::DataType::TypeFp64,
        DataType::Bytes => proto::DataType::TypeString,
    }
}

pub(crate) fn model_config(meta: &ModelMetadata) -> proto::ModelConfig {
    let inputs = |specs: &[TensorSpec]| -> Vec<proto::ModelInput> {
        specs
            .iter()
            .map(|t| proto::ModelInput {
                name: t.name.clone(),
                data_type: data_type(t.datatype) as i32,
                dims: t.shape.clone(),
                ..Default::default()
            })
            .collect()
    };
    let outputs = |specs: &[TensorSpec]| -> Vec<proto::ModelOutput> {
        specs
            .iter()
            .map(|t| proto::ModelOutput {
                name: t.name.clone(),
                data_type: data_type(t.datatype) as i32,
                dims: t.shape.clone(),
                ..Default::default()
            })
            .collect()
    };
    proto::ModelConfig {
        name: meta.name.clone(),
        platform: meta.platform.to_owned(),
        backend: meta
            .platform
            .split('_')
            .next()
            .unwrap_or(meta.platform)
            .to_owned(),
        max_batch_size: 0,
        input: inputs(&meta.signature.inputs),
        output: outputs(&meta.signature.outputs),
        ..Default::default()
    }
}
