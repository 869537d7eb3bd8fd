//! Tensors between the gRPC messages and modelbay's types, in both encodings: typed `contents`
//! and `raw_input_contents` / `raw_output_contents` (little-endian elements; BYTES as 4-byte
//! length prefixes). FP16 and BF16 travel only raw, as the protocol has no typed field for them.

use modelbay_core::{
    element_count, parse_shape, DataType, InferRequest, InferResponse, Tensor, TensorData,
};

use super::proto::{
    model_infer_request::InferInputTensor, model_infer_response::InferOutputTensor,
    InferTensorContents, ModelInferRequest, ModelInferResponse,
};
use crate::error::ApiError;

/// How the response's tensors are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Typed,
    Raw,
}

/// A decoded request and the encoding its answer should use (the request's own).
pub(crate) fn decode_request(
    request: ModelInferRequest,
) -> Result<(InferRequest, Encoding), ApiError> {
    let raw = !request.raw_input_contents.is_empty();
    if raw && request.raw_input_contents.len() != request.inputs.len() {
        return Err(ApiError::invalid(format!(
            "raw_input_contents has {} entries for {} inputs; give one per input, in order",
            request.raw_input_contents.len(),
            request.inputs.len()
        )));
    }
    let mut raw_contents = request.raw_input_contents.into_iter();
    let inputs = request
        .inputs
        .into_iter()
        .map(|input| {
            let contents = raw_contents.next();
            decode_input(input, contents)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = request
        .outputs
        .into_iter()
        .map(|o| {
            if o.parameters.contains_key("classification") {
                return Err(ApiError::invalid(format!(
                    "output '{}' asks for classification, which is not supported; request the \
                     scores and take the top classes on the client",
                    o.name
                )));
            }
            Ok(o.name)
        })
        .collect::<Result<_, _>>()?;
    let id = Some(request.id).filter(|id| !id.is_empty());
    let encoding = if raw { Encoding::Raw } else { Encoding::Typed };
    Ok((
        InferRequest {
            id,
            inputs,
            outputs,
        },
        encoding,
    ))
}

fn decode_input(input: InferInputTensor, raw: Option<Vec<u8>>) -> Result<Tensor, ApiError> {
    let name = input.name;
    let datatype: DataType = input.datatype.parse().map_err(|_| {
        ApiError::invalid(format!(
            "input '{name}' has an unknown datatype '{}'",
            input.datatype
        ))
    })?;
    let shape = parse_shape(&name, &input.shape)?;
    let count = element_count(&shape)?;
    let data = match raw {
        Some(bytes) => {
            if input.contents.is_some() {
                return Err(ApiError::invalid(format!(
                    "input '{name}' has both contents and raw_input_contents; use one"
                )));
            }
            TensorData::from_raw(datatype, &bytes, count)
                .map_err(|e| ApiError::invalid(format!("input '{name}' raw_input_contents: {e}")))?
        }
        None => typed(&name, datatype, count, input.contents.unwrap_or_default())?,
    };
    Ok(Tensor::new(name, shape, data)?)
}

/// Narrows 32-bit protocol integers to the input's type, refusing values out of range.
fn narrow<T: TryFrom<i64>>(
    name: &str,
    datatype: DataType,
    values: Vec<i64>,
) -> Result<Vec<T>, ApiError> {
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            T::try_from(v).map_err(|_| {
                ApiError::invalid(format!(
                    "input '{name}' element {i} is not a valid {datatype} value"
                ))
            })
        })
        .collect()
}

/// The typed field a datatype travels in, and how many elements it holds.
fn field_of(datatype: DataType, c: &InferTensorContents) -> (&'static str, usize) {
    match datatype {
        DataType::Bool => ("bool_contents", c.bool_contents.len()),
        DataType::Int8 | DataType::Int16 | DataType::Int32 => {
            ("int_contents", c.int_contents.len())
        }
        DataType::Int64 => ("int64_contents", c.int64_contents.len()),
        DataType::Uint8 | DataType::Uint16 | DataType::Uint32 => {
            ("uint_contents", c.uint_contents.len())
        }
        DataType::Uint64 => ("uint64_contents", c.uint64_contents.len()),
        DataType::Fp32 => ("fp32_contents", c.fp32_contents.len()),
        DataType::Fp64 => ("fp64_contents", c.fp64_contents.len()),
        DataType::Bytes => ("bytes_contents", c.bytes_contents.len()),
        DataType::Fp16 | DataType::Bf16 => ("raw_input_contents", 0),
    }
}

fn typed(
    name: &str,
    datatype: DataType,
    count: usize,
    c: InferTensorContents,
) -> Result<TensorData, ApiError> {
    // Checked before anything is converted, so a short shape cannot make a long field costly.
    let (field, given) = field_of(datatype, &c);
    if given != count && !matches!(datatype, DataType::Fp16 | DataType::Bf16) {
        return Err(ApiError::invalid(format!(
            "input '{name}' ({datatype}) has {given} values in contents.{field} but its shape \
             needs {count}; send {datatype} data in contents.{field} or in raw_input_contents"
        )));
    }
    let ints = |v: Vec<i32>| v.into_iter().map(i64::from).collect::<Vec<_>>();
    let uints = |v: Vec<u32>| v.into_iter().map(i64::from).collect::<Vec<_>>();
    Ok(match datatype {
        DataType::Bool => TensorData::Bool(c.bool_contents),
        DataType::Int8 => TensorData::Int8(narrow(name, datatype, ints(c.int_contents))?),
        DataType::Int16 => TensorData::Int16(narrow(name, datatype, ints(c.int_contents))?),
        DataType::Int32 => TensorData::Int32(c.int_contents),
        DataType::Int64 => TensorData::Int64(c.int64_contents),
        DataType::Uint8 => TensorData::Uint8(narrow(name, datatype, uints(c.uint_contents))?),
        DataType::Uint16 => TensorData::Uint16(narrow(name, datatype, uints(c.uint_contents))?),
        DataType::Uint32 => TensorData::Uint32(c.uint_contents),
        DataType::Uint64 => TensorData::Uint64(c.uint64_contents),
        DataType::Fp32 => TensorData::Fp32(c.fp32_contents),
        DataType::Fp64 => TensorData::Fp64(c.fp64_contents),
        DataType::Bytes => TensorData::Bytes(c.bytes_contents),
        DataType::Fp16 | DataType::Bf16 => {
            return Err(ApiError::invalid(format!(
                "input '{name}' is {datatype}, which has no typed contents field: send it in \
                 raw_input_contents"
            )))
        }
    })
}

/// The response in the request's encoding; typed only when every output has a typed field.
pub(crate) fn encode_response(response: InferResponse, encoding: Encoding) -> ModelInferResponse {
    let typed = encoding == Encoding::Typed
        && response
            .outputs
            .iter()
            .all(|t| !matches!(t.datatype(), DataType::Fp16 | DataType::Bf16));
    let mut outputs = Vec::with_capacity(response.outputs.len());
    let mut raw = Vec::new();
    for tensor in response.outputs {
        let datatype = tensor.datatype().as_str().to_owned();
        let shape = tensor.shape().iter().map(|&d| d as i64).collect();
        let (name, _, data) = tensor.into_parts();
        let contents = if typed {
            Some(contents_of(data))
        } else {
            raw.push(data.to_raw());
            None
        };
        outputs.push(InferOutputTensor {
            name,
            datatype,
            shape,
            parameters: Default::default(),
            contents,
        });
    }
    ModelInferResponse {
        model_name: response.model_name,
        model_version: response.model_version.to_string(),
        id: response.id.unwrap_or_default(),
        parameters: Default::default(),
        outputs,
        raw_output_contents: raw,
    }
}

fn contents_of(data: TensorData) -> InferTensorContents {
    let mut c = InferTensorContents::default();
    match data {
        TensorData::Bool(v) => c.bool_contents = v,
        TensorData::Int8(v) => c.int_contents = v.into_iter().map(i32::from).collect(),
        TensorData::Int16(v) => c.int_contents = v.into_iter().map(i32::from).collect(),
        TensorData::Int32(v) => c.int_contents = v,
        TensorData::Int64(v) => c.int64_contents = v,
        TensorData::Uint8(v) => c.uint_contents = v.into_iter().map(u32::from).collect(),
        TensorData::Uint16(v) => c.uint_contents = v.into_iter().map(u32::from).collect(),
        TensorData::Uint32(v) => c.uint_contents = v,
        TensorData::Uint64(v) => c.uint64_contents = v,
        TensorData::Fp32(v) => c.fp32_contents = v,
        TensorData::Fp64(v) => c.fp64_contents = v,
        TensorData::Bytes(v) => c.bytes_contents = v,
        // Callers send these raw.
        TensorData::Fp16(_) | TensorData::Bf16(_) => {}
    }
    c
}
