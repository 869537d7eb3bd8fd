//! OpenAI request bodies and their validation into a protocol-neutral generation request.
//! OpenAI parameters modelbay cannot honour are refused with a 400 naming them, never ignored;
//! fields it does not know at all are ignored (as llama.cpp's server and vLLM do), so a newer
//! client does not break. The common sampling extensions (`top_k`, `min_p`, `typical_p`,
//! `repetition_penalty`/`repeat_penalty`, `repeat_last_n`) and `logit_bias` are honoured; what
//! a request leaves out samples as llama.cpp's server does.

use modelbay_core::generation::{ChatMessage, SamplingParams};
use modelbay_runtime::{GenerationRequest, Prompt};
use serde::Deserialize;
use serde_json::Value;

use crate::error::ApiError;

/// Most choices one request may ask for.
const MAX_N: i64 = 64;
/// Most stop texts, and the longest one.
const MAX_STOPS: usize = 16;
const MAX_STOP_BYTES: usize = 512;

/// `POST /v1/chat/completions`.
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<MessageIn>,
    #[serde(flatten)]
    pub options: Options,
}

/// `POST /v1/completions`.
#[derive(Debug, Deserialize)]
pub struct CompletionRequest {
    pub model: String,
    pub prompt: Option<PromptIn>,
    pub echo: Option<bool>,
    pub suffix: Option<String>,
    pub best_of: Option<i64>,
    #[serde(flatten)]
    pub options: Options,
}

#[derive(Debug, Deserialize)]
pub struct MessageIn {
    pub role: String,
    pub content: Option<ContentIn>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ContentIn {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum PromptIn {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<i64>),
    TokenLists(Vec<Vec<i64>>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum StopIn {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
pub struct StreamOptions {
    pub include_usage: Option<bool>,
}

/// Parameters shared by both endpoints.
#[derive(Debug, Default, Deserialize)]
pub struct Options {
    pub max_tokens: Option<i64>,
    pub max_completion_tokens: Option<i64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub seed: Option<i64>,
    pub stop: Option<StopIn>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub n: Option<i64>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    pub logprobs: Option<Value>,
    pub top_logprobs: Option<Value>,
    pub tools: Option<Value>,
    pub tool_choice: Option<Value>,
    pub functions: Option<Value>,
    pub response_format: Option<Value>,
    pub logit_bias: Option<Value>,
    pub top_k: Option<i64>,
    pub min_p: Option<f64>,
    pub typical_p: Option<f64>,
    #[serde(alias = "repeat_penalty")]
    pub repetition_penalty: Option<f64>,
    pub repeat_last_n: Option<i64>,
}

/// The most a logit bias may move a logit (OpenAI's range); -100 bans the token.
const MAX_BIAS: f64 = 100.0;
/// Most entries in `logit_bias`.
const MAX_BIASES: usize = 1024;
/// Largest `top_k`, and the longest penalty window a request may ask for.
const MAX_TOP_K: i64 = 1 << 20;

/// OpenAI's `{"token id": bias}` map, validated.
fn logit_bias(given: Option<Value>) -> Result<Vec<(i32, f32)>, ApiError> {
    let Some(given) = given.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let Value::Object(map) = given else {
        return Err(ApiError::invalid(
            "'logit_bias' must be an object from token ids to biases",
        ));
    };
    if map.len() > MAX_BIASES {
        return Err(ApiError::invalid(format!(
            "'logit_bias' has {} entries; at most {MAX_BIASES} are allowed",
            map.len()
        )));
    }
    map.iter()
        .map(|(token, bias)| {
            let id: i32 = token.parse().map_err(|_| {
                ApiError::invalid("'logit_bias' keys must be token ids (integers as strings)")
            })?;
            match bias.as_f64() {
                Some(b) if (-MAX_BIAS..=MAX_BIAS).contains(&b) => {
                    // -100 bans the token outright, as OpenAI documents it.
                    let bias = if b <= -MAX_BIAS {
                        f32::NEG_INFINITY
                    } else {
                        b as f32
                    };
                    Ok((id, bias))
                }
                _ => Err(ApiError::invalid(format!(
                    "'logit_bias' values must be numbers between -{MAX_BIAS} and {MAX_BIAS}"
                ))),
            }
        })
        .collect()
}

fn integer_in(
    name: &str,
    value: Option<i64>,
    low: i64,
    high: i64,
) -> Result<Option<i64>, ApiError> {
    match value {
        Some(v) if !(low..=high).contains(&v) => Err(ApiError::invalid(format!(
            "'{name}' must be between {low} and {high}, got {v}"
        ))),
        other => Ok(other),
    }
}

/// Whether and how to stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Streaming {
    pub enabled: bool,
    pub include_usage: bool,
}

impl Options {
    pub fn streaming(&self) -> Streaming {
        let enabled = self.stream.unwrap_or(false);
        Streaming {
            enabled,
            include_usage: enabled
                && self
                    .stream_options
                    .as_ref()
                    .and_then(|o| o.include_usage)
                    .unwrap_or(false),
        }
    }

    fn into_request(self, prompts: Vec<Prompt>) -> Result<GenerationRequest, ApiError> {
        let set = |v: &Option<Value>| {
            v.as_ref()
                .is_some_and(|v| !v.is_null() && v != &Value::Bool(false))
        };
        for (name, given) in [
            ("logprobs", set(&self.logprobs)),
            ("top_logprobs", set(&self.top_logprobs)),
            ("tools", set(&self.tools)),
            ("tool_choice", set(&self.tool_choice)),
            ("functions", set(&self.functions)),
        ] {
            if given {
                return Err(ApiError::invalid(format!(
                    "'{name}' is not supported by this server"
                )));
            }
        }
        if let Some(format) = &self.response_format {
            let kind = format.get("type").and_then(Value::as_str);
            if !format.is_null() && kind != Some("text") {
                return Err(ApiError::invalid(
                    "'response_format' other than {\"type\": \"text\"} is not supported by this server",
                ));
            }
        }
        let max_tokens = match self.max_completion_tokens.or(self.max_tokens) {
            None => None,
            Some(n) if n >= 1 => Some(u32::try_from(n).unwrap_or(u32::MAX)),
            Some(n) => {
                return Err(ApiError::invalid(format!(
                    "'max_tokens' must be at least 1, got {n}"
                )))
            }
        };
        let defaults = SamplingParams::llama_server_defaults();
        let temperature = in_range(
            "temperature",
            self.temperature,
            0.0,
            2.0,
            defaults.temperature.into(),
        )?;
        let top_p = in_range("top_p", self.top_p, 0.0, 1.0, defaults.top_p.into())?;
        let min_p = in_range("min_p", self.min_p, 0.0, 1.0, defaults.min_p.into())?;
        let typical_p = in_range(
            "typical_p",
            self.typical_p,
            0.0,
            1.0,
            defaults.typical_p.into(),
        )?;
        if typical_p == 0.0 {
            return Err(ApiError::invalid(
                "'typical_p' must be above 0 (1 turns it off)",
            ));
        }
        let repeat_penalty = in_range(
            "repetition_penalty",
            self.repetition_penalty,
            0.0,
            10.0,
            defaults.repeat_penalty.into(),
        )?;
        if repeat_penalty == 0.0 {
            return Err(ApiError::invalid(
                "'repetition_penalty' must be above 0 (1 turns it off)",
            ));
        }
        let top_k =
            integer_in("top_k", self.top_k, 0, MAX_TOP_K)?.map_or(defaults.top_k, |k| k as i32);
        let repeat_last_n = integer_in("repeat_last_n", self.repeat_last_n, -1, MAX_TOP_K)?
            .map_or(defaults.repeat_last_n, |n| n as i32);
        let logit_bias = logit_bias(self.logit_bias)?;
        let presence_penalty = in_range("presence_penalty", self.presence_penalty, -2.0, 2.0, 0.0)?;
        let frequency_penalty =
            in_range("frequency_penalty", self.frequency_penalty, -2.0, 2.0, 0.0)?;
        let n = self.n.unwrap_or(1);
        if !(1..=MAX_N).contains(&n) {
            return Err(ApiError::invalid(format!(
                "'n' must be between 1 and {MAX_N}, got {n}"
            )));
        }
        let stop = match self.stop {
            None => Vec::new(),
            Some(StopIn::One(s)) => vec![s],
            Some(StopIn::Many(list)) => list,
        };
        if stop.len() > MAX_STOPS {
            return Err(ApiError::invalid(format!(
                "'stop' has {} entries; at most {MAX_STOPS} are allowed",
                stop.len()
            )));
        }
        if stop.iter().any(|s| s.len() > MAX_STOP_BYTES) {
            return Err(ApiError::invalid(format!(
                "each 'stop' text must be at most {MAX_STOP_BYTES} bytes"
            )));
        }
        Ok(GenerationRequest {
            prompts,
            n: n as u32,
            max_tokens,
            sampling: SamplingParams {
                temperature: temperature as f32,
                top_k,
                typical_p: typical_p as f32,
                top_p: top_p as f32,
                min_p: min_p as f32,
                seed: 0,
                repeat_penalty: repeat_penalty as f32,
                presence_penalty: presence_penalty as f32,
                frequency_penalty: frequency_penalty as f32,
                repeat_last_n,
                logit_bias,
            },
            // OpenAI seeds are 64-bit; llama.cpp's are 32: keep the low bits.
            seed: self.seed.map(|s| s as u32),
            stop: stop.into_iter().filter(|s| !s.is_empty()).collect(),
        })
    }
}

fn in_range(
    name: &str,
    value: Option<f64>,
    low: f64,
    high: f64,
    default: f64,
) -> Result<f64, ApiError> {
    match value {
        None => Ok(default),
        Some(v) if v.is_finite() && (low..=high).contains(&v) => Ok(v),
        Some(v) => Err(ApiError::invalid(format!(
            "'{name}' must be between {low} and {high}, got {v}"
        ))),
    }
}

impl ChatRequest {
    pub fn into_generation(self) -> Result<GenerationRequest, ApiError> {
        if self.messages.is_empty() {
            return Err(ApiError::invalid(
                "'messages' must contain at least one message",
            ));
        }
        let messages = self
            .messages
            .into_iter()
            .enumerate()
            .map(|(i, m)| message(i, m))
            .collect::<Result<Vec<_>, _>>()?;
        self.options.into_request(vec![Prompt::Chat(messages)])
    }
}

fn message(index: usize, m: MessageIn) -> Result<ChatMessage, ApiError> {
    let role = match m.role.as_str() {
        "system" | "developer" => "system",
        "user" => "user",
        "assistant" => "assistant",
        _ => {
            return Err(ApiError::invalid(format!(
                "messages[{index}].role is not supported; use system, user or assistant"
            )))
        }
    };
    let content = match m.content {
        Some(ContentIn::Text(text)) => text,
        Some(ContentIn::Parts(parts)) => {
            let mut text = String::new();
            for part in parts {
                match (part.kind.as_str(), part.text) {
                    ("text", Some(t)) => text.push_str(&t),
                    (kind, _) => {
                        return Err(ApiError::invalid(format!(
                            "messages[{index}] has a '{kind}' content part; only text is supported"
                        )))
                    }
                }
            }
            text
        }
        None => {
            return Err(ApiError::invalid(format!(
                "messages[{index}] has no content"
            )))
        }
    };
    Ok(ChatMessage {
        role: role.to_owned(),
        content,
    })
}

impl CompletionRequest {
    pub fn into_generation(self) -> Result<GenerationRequest, ApiError> {
        if self.echo == Some(true) {
            return Err(ApiError::invalid("'echo' is not supported by this server"));
        }
        if self.suffix.as_deref().is_some_and(|s| !s.is_empty()) {
            return Err(ApiError::invalid(
                "'suffix' is not supported by this server",
            ));
        }
        if self.best_of.is_some_and(|b| b != 1) {
            return Err(ApiError::invalid(
                "'best_of' other than 1 is not supported by this server",
            ));
        }
        let tokens = |list: Vec<i64>| -> Result<Prompt, ApiError> {
            if list.is_empty() {
                return Err(ApiError::invalid("'prompt' must not be empty"));
            }
            list.into_iter()
                .map(|t| {
                    i32::try_from(t)
                        .map_err(|_| ApiError::invalid(format!("token {t} is out of range")))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Prompt::Tokens)
        };
        let prompts = match self.prompt {
            None => return Err(ApiError::invalid("'prompt' is required")),
            Some(PromptIn::Text(text)) => vec![Prompt::Text(text)],
            Some(PromptIn::Texts(texts)) => texts.into_iter().map(Prompt::Text).collect(),
            Some(PromptIn::Tokens(list)) => vec![tokens(list)?],
            Some(PromptIn::TokenLists(lists)) => {
                lists.into_iter().map(tokens).collect::<Result<_, _>>()?
            }
        };
        if prompts.is_empty() {
            return Err(ApiError::invalid("'prompt' must not be empty"));
        }
        if prompts
            .iter()
            .any(|p| matches!(p, Prompt::Text(t) if t.is_empty()))
        {
            return Err(ApiError::invalid("'prompt' must not be an empty string"));
        }
        self.options.into_request(prompts)
    }
}
