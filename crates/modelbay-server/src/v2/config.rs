//! Triton's model configuration endpoint, which `tritonclient.get_model_config` and
//! `perf_analyzer` read. Derived from the stored signature; modelbay models carry their batch
//! dimension in their shapes, so `max_batch_size` is 0 and `dims` are the full shapes.

use axum::{
    extract::{Path, State},
    response::{IntoResponse, Response},
    Json,
};
use modelbay_core::{DataType, TensorSpec};
use serde_json::{json, Value};

use super::ModelPath;
use crate::observe::{served_by, ServedBy};
use crate::{auth::Authenticated, error::ApiError, AppState};

fn triton_type(datatype: DataType) -> &'static str {
    match datatype {
        DataType::Bool => "TYPE_BOOL",
        DataType::Uint8 => "TYPE_UINT8",
        DataType::Uint16 => "TYPE_UINT16",
        DataType::Uint32 => "TYPE_UINT32",
        DataType::Uint64 => "TYPE_UINT64",
        DataType::Int8 => "TYPE_INT8",
        DataType::Int16 => "TYPE_INT16",
        DataType::Int32 => "TYPE_INT32",
        DataType::Int64 => "TYPE_INT64",
        DataType::Fp16 => "TYPE_FP16",
        DataType::Bf16 => "TYPE_BF16",
        DataType::Fp32 => "TYPE_FP32",
        DataType::Fp64 => "TYPE_FP64",
        DataType::Bytes => "TYPE_STRING",
    }
}

fn tensors(specs: &[TensorSpec]) -> Vec<Value> {
    specs
        .iter()
        .map(|t| json!({ "name": t.name, "data_type": triton_type(t.datatype), "dims": t.shape }))
        .collect()
}

pub(super) async fn model_config(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(path): Path<ModelPath>,
) -> Result<Response, ApiError> {
    let (name, version) = path.parse()?;
    let meta = state.runtime.metadata(&caller, &name, &version).await?;
    let backend = meta.platform.split('_').next().unwrap_or(meta.platform);
    let body = json!({
        "name": meta.name,
        "platform": meta.platform,
        "backend": backend,
        "max_batch_size": 0,
        "input": tensors(&meta.signature.inputs),
        "output": tensors(&meta.signature.outputs),
    });
    Ok(served_by(
        Json(body).into_response(),
        ServedBy::version(meta.name, meta.version),
    ))
}
