//! The Open Inference Protocol v2 inference wire format over HTTP: JSON, and the binary tensor
//! extension (a JSON header followed by raw tensor bytes) in both directions.

use bytes::Bytes;
use modelbay_core::{
    decode_json_data, parse_shape, DataType, InferRequest, InferResponse, JsonDataError,
    JsonDataSeed, Tensor, TensorData,
};
use serde::{
    de::{self, MapAccess, Visitor},
    Deserialize, Serialize,
};
use serde_json::{value::RawValue, Map, Value};

use crate::error::ApiError;

/// Response header carrying the JSON header's length when binary data follows it.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

/// The request as parsed. An input's `data` is decoded while the body is parsed when its
/// `datatype` and `shape` come before it (what clients send); otherwise it stays raw JSON,
/// borrowed from the body, until it is decoded against them.
#[derive(Deserialize)]
struct RequestJson<'a> {
    id: Option<String>,
    #[serde(default)]
    parameters: Map<String, Value>,
    #[serde(borrow)]
    inputs: Vec<InputJson<'a>>,
    #[serde(default)]
    outputs: Vec<OutputJson>,
}

struct InputJson<'a> {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    parameters: Map<String, Value>,
    data: Option<Data<'a>>,
}

/// An input's `data`: decoded during the parse, or kept to be decoded after it.
enum Data<'a> {
    Decoded(Result<TensorData, JsonDataError>),
    Raw(&'a RawValue),
}

impl<'de: 'a, 'a> Deserialize<'de> for InputJson<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(InputVisitor(std::marker::PhantomData))
    }
}

struct InputVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for InputVisitor<'a> {
    type Value = InputJson<'a>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an input tensor object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<InputJson<'a>, A::Error> {
        let (mut name, mut shape, mut datatype, mut parameters, mut data) =
            (None, None::<Vec<i64>>, None::<String>, None, None);
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let once = |seen: bool| {
                if seen {
                    Err(de::Error::duplicate_field(match key.as_ref() {
                        "name" => "name",
                        "shape" => "shape",
                        "datatype" => "datatype",
                        "parameters" => "parameters",
                        _ => "data",
                    }))
                } else {
                    Ok(())
                }
            };
            match key.as_ref() {
                "name" => {
                    once(name.is_some())?;
                    name = Some(map.next_value::<String>()?);
                }
                "shape" => {
                    once(shape.is_some())?;
                    shape = Some(map.next_value()?);
                }
                "datatype" => {
                    once(datatype.is_some())?;
                    datatype = Some(map.next_value()?);
                }
                "parameters" => {
                    once(parameters.is_some())?;
                    parameters = Some(map.next_value::<Map<String, Value>>()?);
                }
                "data" => {
                    once(data.is_some())?;
                    data = Some(match seed_for(datatype.as_deref(), shape.as_deref()) {
                        Some(seed) => Data::Decoded(map.next_value_seed(seed)?),
                        None => Data::Raw(map.next_value()?),
                    });
                }
                _ => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        Ok(InputJson {
            name: name.ok_or_else(|| de::Error::missing_field("name"))?,
            shape: shape.ok_or_else(|| de::Error::missing_field("shape"))?,
            datatype: datatype.ok_or_else(|| de::Error::missing_field("datatype"))?,
            parameters: parameters.unwrap_or_default(),
            data,
        })
    }
}

/// How to decode `data` during the parse, when the datatype and shape before it are valid (an
/// invalid one is reported after the parse, with the same message either way).
fn seed_for(datatype: Option<&str>, shape: Option<&[i64]>) -> Option<JsonDataSeed> {
    let datatype: DataType = datatype?.parse().ok()?;
    let shape = parse_shape("", shape?).ok()?;
    let count = modelbay_core::element_count(&shape).ok()?;
    Some(JsonDataSeed {
        datatype,
        count,
        // Nothing up front: how many elements the body really holds is not known until they
        // arrive (a shape may claim far more), so the buffer grows as they do.
        reserve: 0,
    })
}

#[derive(Deserialize)]
struct OutputJson {
    name: String,
    #[serde(default)]
    parameters: Map<String, Value>,
}

/// A decoded request plus how each output should be encoded.
pub struct DecodedRequest {
    pub request: InferRequest,
    pub encoding: OutputEncoding,
}

/// Which outputs go back as raw binary instead of JSON.
pub struct OutputEncoding {
    all_binary: bool,
    /// Per-output overrides from `outputs[].parameters.binary_data`.
    overrides: Vec<(String, bool)>,
}

impl OutputEncoding {
    fn is_binary(&self, name: &str) -> bool {
        self.overrides
            .iter()
            .find(|(n, _)| n == name)
            .map_or(self.all_binary, |(_, b)| *b)
    }
}

fn bool_param(
    params: &Map<String, Value>,
    key: &str,
    owner: &str,
) -> Result<Option<bool>, ApiError> {
    match params.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ApiError::invalid(format!(
            "parameter '{key}' of {owner} must be true or false"
        ))),
    }
}

/// Decodes a request body. `header_length` is the `Inference-Header-Content-Length` value when
/// the client used the binary extension.
pub fn decode_request(
    body: &Bytes,
    header_length: Option<&str>,
) -> Result<DecodedRequest, ApiError> {
    let (json, mut binary) = match header_length {
        None => (&body[..], &body[body.len()..]),
        Some(raw) => {
            let n: usize = raw.trim().parse().map_err(|_| {
                ApiError::invalid(format!(
                    "Inference-Header-Content-Length '{raw}' is not a byte count"
                ))
            })?;
            if n > body.len() {
                return Err(ApiError::invalid(format!(
                    "Inference-Header-Content-Length is {n} but the body has only {} bytes",
                    body.len()
                )));
            }
            body.split_at(n)
        }
    };
    if json.is_empty() {
        return Err(ApiError::invalid(
            "request body is empty; expected a JSON inference request",
        ));
    }
    let mut parsed: RequestJson = serde_json::from_slice(json)
        .map_err(|e| crate::json_error::invalid_json("inference request JSON", &e))?;

    let mut inputs = Vec::with_capacity(parsed.inputs.len());
    for input in std::mem::take(&mut parsed.inputs) {
        inputs.push(decode_input(input, &mut binary)?);
    }
    if !binary.is_empty() {
        return Err(ApiError::invalid(format!(
            "{} bytes of binary data follow the JSON header but no input claims them (binary_data_size)",
            binary.len()
        )));
    }

    let all_binary =
        bool_param(&parsed.parameters, "binary_data_output", "the request")?.unwrap_or(false);
    let mut overrides = Vec::new();
    for output in &parsed.outputs {
        let owner = format!("output '{}'", output.name);
        if output.parameters.contains_key("classification") {
            return Err(ApiError::invalid(format!(
                "{owner} asks for the classification extension, which this server does not implement"
            )));
        }
        if let Some(b) = bool_param(&output.parameters, "binary_data", &owner)? {
            overrides.push((output.name.clone(), b));
        }
    }
    Ok(DecodedRequest {
        request: InferRequest {
            id: parsed.id,
            inputs,
            outputs: parsed.outputs.into_iter().map(|o| o.name).collect(),
        },
        encoding: OutputEncoding {
            all_binary,
            overrides,
        },
    })
}

fn decode_input(input: InputJson<'_>, binary: &mut &[u8]) -> Result<Tensor, ApiError> {
    let datatype: DataType = input
        .datatype
        .parse()
        .map_err(|e| ApiError::invalid(format!("input '{}': {e}", input.name)))?;
    let shape = parse_shape(&input.name, &input.shape)?;
    let count = modelbay_core::element_count(&shape)?;
    let data = match (input.parameters.get("binary_data_size"), input.data) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(format!(
                "input '{}' has both 'data' and binary_data_size; send one",
                input.name
            )))
        }
        (Some(size), None) => {
            let size = size.as_u64().ok_or_else(|| {
                ApiError::invalid(format!(
                    "input '{}': binary_data_size must be a non-negative integer",
                    input.name
                ))
            })?;
            if size > binary.len() as u64 {
                return Err(ApiError::invalid(format!(
                    "input '{}' claims {size} bytes of binary data but only {} remain",
                    input.name,
                    binary.len()
                )));
            }
            let (raw, rest) = binary.split_at(size as usize);
            *binary = rest;
            TensorData::from_raw(datatype, raw, count)
                .map_err(|e| ApiError::invalid(format!("input '{}': {e}", input.name)))?
        }
        (None, Some(data)) => {
            let decoded = match data {
                Data::Decoded(decoded) => decoded,
                Data::Raw(raw) => decode_json_data(datatype, raw.get().as_bytes(), count),
            };
            decoded.map_err(|e| match e {
                JsonDataError::Count { found } => ApiError::invalid(format!(
                    "input '{}' has {} elements in 'data' but its shape {:?} needs {count}",
                    input.name,
                    found.map_or_else(|| format!("more than {count}"), |n| n.to_string()),
                    input.shape
                )),
                other => ApiError::invalid(format!("input '{}': {other}", input.name)),
            })?
        }
        (None, None) => {
            return Err(ApiError::invalid(format!(
                "input '{}' has neither 'data' nor binary_data_size",
                input.name
            )))
        }
    };
    Ok(Tensor::new(input.name, shape, data)?)
}

#[derive(Serialize)]
struct ResponseJson<'a> {
    model_name: &'a str,
    model_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    outputs: Vec<OutputBody<'a>>,
}

#[derive(Serialize)]
struct OutputBody<'a> {
    name: &'a str,
    datatype: DataType,
    shape: &'a [usize],
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a TensorData>,
}

/// An encoded response: the bytes and, when binary data follows the JSON, the header length.
pub struct EncodedResponse {
    pub body: Vec<u8>,
    pub header_length: Option<usize>,
}

/// Encodes a response, putting each output in JSON or after the header as raw bytes.
pub fn encode_response(resp: &InferResponse, encoding: &OutputEncoding) -> EncodedResponse {
    let mut raw_parts = Vec::new();
    let outputs = resp
        .outputs
        .iter()
        .map(|t| {
            if encoding.is_binary(&t.name) {
                let raw = t.data().to_raw();
                let params = serde_json::json!({ "binary_data_size": raw.len() });
                raw_parts.push(raw);
                OutputBody {
                    name: &t.name,
                    datatype: t.datatype(),
                    shape: t.shape(),
                    parameters: Some(params),
                    data: None,
                }
            } else {
                OutputBody {
                    name: &t.name,
                    datatype: t.datatype(),
                    shape: t.shape(),
                    parameters: None,
                    data: Some(t.data()),
                }
            }
        })
        .collect();
    let header = ResponseJson {
        model_name: &resp.model_name,
        model_version: resp.model_version.to_string(),
        id: resp.id.as_deref(),
        outputs,
    };
    let mut body = serde_json::to_vec(&header).expect("responses serialize to JSON");
    if raw_parts.is_empty() {
        return EncodedResponse {
            body,
            header_length: None,
        };
    }
    let header_length = body.len();
    for raw in raw_parts {
        body.extend_from_slice(&raw);
    }
    EncodedResponse {
        body,
        header_length: Some(header_length),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(json: &str) -> Result<InferRequest, String> {
        decode_request(&Bytes::from(json.to_owned()), None)
            .map(|d| d.request)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn data_decodes_the_same_before_and_after_its_datatype() {
        let usual = r#"{"inputs": [{"name": "x", "datatype": "INT32", "shape": [2, 2],
                        "data": [[1, 2], [3, 4]], "extra": {"ignored": [1]}}]}"#;
        let data_first = r#"{"inputs": [{"data": [[1, 2], [3, 4]], "shape": [2, 2],
                             "name": "x", "datatype": "INT32"}]}"#;
        let a = decode(usual).unwrap();
        let b = decode(data_first).unwrap();
        assert_eq!(a.inputs, b.inputs);
        assert_eq!(a.inputs[0].data(), &TensorData::Int32(vec![1, 2, 3, 4]));
    }

    #[test]
    fn errors_are_the_same_whichever_order_and_name_no_values() {
        for (body, needle) in [
            (
                r#""datatype": "UINT8", "shape": [2], "data": [1, 31337]"#,
                "element 1 is not a valid UINT8",
            ),
            (
                r#""datatype": "FP32", "shape": [3], "data": [1, 2]"#,
                "has 2 elements in 'data' but its shape [3] needs 3",
            ),
            (
                r#""datatype": "FP32", "shape": [1], "data": [1, 2]"#,
                "has more than 1 elements",
            ),
            (
                r#""datatype": "BOOL", "shape": [2], "data": [true, {"k": 31337}]"#,
                "element 1 is not a valid BOOL",
            ),
        ] {
            let (fields, data) = body.split_at(body.find(r#""data""#).unwrap());
            let usual = format!(r#"{{"inputs": [{{"name": "x", {fields}{data}}}]}}"#);
            let fields = fields.trim_end().trim_end_matches(',');
            let data_first = format!(r#"{{"inputs": [{{{data}, "name": "x", {fields}}}]}}"#);
            for json in [usual, data_first] {
                let message = decode(&json).unwrap_err();
                assert!(message.contains(needle), "{json}: {message}");
                assert!(!message.contains("31337"), "{json}: {message}");
            }
        }
    }

    #[test]
    fn a_repeated_field_is_refused() {
        let json = r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1],
                       "data": [1], "data": [2]}]}"#;
        let message = decode(json).unwrap_err();
        assert!(message.contains("duplicate field `data`"), "{message}");
        let json = r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1]}]}"#;
        let message = decode(json).unwrap_err();
        assert!(
            message.contains("neither 'data' nor binary_data_size"),
            "{message}"
        );
        let json = r#"{"inputs": [{"datatype": "FP32", "shape": [1], "data": [1]}]}"#;
        let message = decode(json).unwrap_err();
        assert!(message.contains("missing field `name`"), "{message}");
    }
}
