//! `POST /v1/embeddings`: OpenAI's request and response shapes over the runtime's batched
//! embedding operation. `encoding_format` `base64` packs each vector as little-endian float32
//! bytes, as OpenAI does (the `openai` Python client asks for it by default).

use base64::Engine as _;
use modelbay_runtime::{EmbedInput, Embeddings};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;

/// `POST /v1/embeddings`.
#[derive(Debug, Deserialize)]
pub struct EmbeddingRequest {
    pub model: String,
    pub input: Value,
    pub encoding_format: Option<String>,
    pub dimensions: Option<i64>,
    /// An end-user id; accepted and ignored.
    #[allow(dead_code)]
    pub user: Option<String>,
}

/// How vectors are written in the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Float,
    Base64,
}

impl EmbeddingRequest {
    /// The inputs and output encoding, or a 400 naming the first problem.
    pub fn validate(&self) -> Result<(Vec<EmbedInput>, Encoding), ApiError> {
        let encoding = match self.encoding_format.as_deref() {
            None | Some("float") => Encoding::Float,
            Some("base64") => Encoding::Base64,
            Some(other) => {
                return Err(invalid(format!(
                    "encoding_format '{other}' is not supported; use 'float' or 'base64'"
                )))
            }
        };
        if let Some(d) = self.dimensions {
            if d < 1 {
                return Err(invalid(format!("dimensions must be positive, got {d}")));
            }
        }
        Ok((inputs(&self.input)?, encoding))
    }
}

/// `input`: a string, a list of strings, a list of token ids, or a list of token-id lists.
fn inputs(input: &Value) -> Result<Vec<EmbedInput>, ApiError> {
    let inputs = match input {
        Value::String(text) => vec![text_input(text, "input")?],
        Value::Array(items) if items.is_empty() => {
            return Err(invalid("input must not be an empty list".into()))
        }
        Value::Array(items) if items.iter().all(Value::is_number) => vec![tokens(items, "input")?],
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let place = format!("input[{i}]");
                match item {
                    Value::String(text) => text_input(text, &place),
                    Value::Array(ids) => tokens(ids, &place),
                    other => Err(invalid(format!(
                        "{place} must be a string or a list of token ids, not {}",
                        kind(other)
                    ))),
                }
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(invalid(format!(
                "input must be a string or a list of strings, not {}",
                kind(other)
            )))
        }
    };
    Ok(inputs)
}

fn text_input(text: &str, place: &str) -> Result<EmbedInput, ApiError> {
    if text.is_empty() {
        return Err(invalid(format!("{place} is an empty string")));
    }
    Ok(EmbedInput::Text(text.to_owned()))
}

fn tokens(ids: &[Value], place: &str) -> Result<EmbedInput, ApiError> {
    if ids.is_empty() {
        return Err(invalid(format!("{place} is an empty list of tokens")));
    }
    ids.iter()
        .map(|id| {
            id.as_u64()
                .and_then(|id| u32::try_from(id).ok())
                .ok_or_else(|| invalid(format!("{place} holds {id}, which is not a token id")))
        })
        .collect::<Result<_, _>>()
        .map(EmbedInput::Tokens)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn invalid(message: String) -> ApiError {
    ApiError::invalid(message)
}

/// Checks `dimensions` against what the model produces: modelbay never truncates a vector the
/// model was not trained to shorten.
pub fn check_dimensions(requested: Option<i64>, produced: usize) -> Result<(), ApiError> {
    match requested {
        Some(d) if d as usize != produced => Err(invalid(format!(
            "this model produces {produced}-dimensional embeddings and cannot return {d}"
        ))),
        _ => Ok(()),
    }
}

/// The response body.
pub fn body(model: &str, embeddings: Embeddings, encoding: Encoding) -> Value {
    let data: Vec<Value> = embeddings
        .vectors
        .into_iter()
        .enumerate()
        .map(|(index, vector)| {
            let embedding = match encoding {
                Encoding::Float => json!(vector),
                Encoding::Base64 => {
                    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                    json!(base64::engine::general_purpose::STANDARD.encode(bytes))
                }
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {
            "prompt_tokens": embeddings.prompt_tokens,
            "total_tokens": embeddings.prompt_tokens,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: Value) -> Result<Vec<EmbedInput>, ApiError> {
        inputs(&input)
    }

    #[test]
    fn accepts_every_input_shape() {
        assert_eq!(parse(json!("hi")).unwrap(), [EmbedInput::Text("hi".into())]);
        assert_eq!(parse(json!(["a", "b"])).unwrap().len(), 2);
        assert_eq!(
            parse(json!([1, 2, 3])).unwrap(),
            [EmbedInput::Tokens(vec![1, 2, 3])]
        );
        assert_eq!(
            parse(json!([[1], [2, 3]])).unwrap(),
            [EmbedInput::Tokens(vec![1]), EmbedInput::Tokens(vec![2, 3])]
        );
    }

    #[test]
    fn refuses_bad_inputs_with_their_place() {
        for (input, expected) in [
            (json!(""), "input is an empty string"),
            (json!([]), "empty list"),
            (json!(["a", ""]), "input[1] is an empty string"),
            (json!(["a", 3]), "input[1] must be a string"),
            (json!([-1]), "not a token id"),
            (json!([[1], []]), "input[1] is an empty list of tokens"),
            (json!({"text": "a"}), "not an object"),
            (json!(null), "not null"),
            (json!([1.5]), "not a token id"),
        ] {
            let err = parse(input.clone()).expect_err(&input.to_string());
            let message = err.to_string();
            assert!(message.contains(expected), "{input}: {message}");
        }
    }

    #[test]
    fn base64_is_little_endian_float32() {
        let embeddings = Embeddings {
            vectors: vec![vec![1.0, -2.5]],
            prompt_tokens: 3,
            dimensions: 2,
        };
        let out = body("m", embeddings, Encoding::Base64);
        let text = out["data"][0]["embedding"].as_str().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap();
        let floats: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(floats, [1.0, -2.5]);
        assert_eq!(out["usage"]["total_tokens"], 3);
    }
}
