//! OpenAI request bodies and their validation into a protocol-neutral generation request.
//! OpenAI parameters modelbay cannot honour are refused with a 400 naming them, never ignored;
//! fields it does not know at all are ignored (as llama.cpp's server and vLLM do), so a newer
//! client does not break. The common sampling extensions (`top_k`, `min_p`, `typical_p`,
//! `repetition_penalty`/`repeat_penalty`, `repeat_last_n`) and `logit_bias` are honoured; what
//! a request leaves out samples as llama.cpp's server does.

use modelbay_core::generation::{ChatMessage, GenerationParams, MAX_TOP_LOGPROBS};
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
    pub tool_calls: Option<Vec<Value>>,
    pub tool_call_id: Option<String>,
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
    pub parallel_tool_calls: Option<bool>,
    /// Accepted for compatibility; nothing is stored (`true` is refused).
    pub store: Option<bool>,
    /// Further variables for the model's chat template (vLLM's and llama.cpp's field).
    pub chat_template_kwargs: Option<Value>,
}

/// Variables a chat template gets from the server, which `chat_template_kwargs` cannot set.
const RESERVED_TEMPLATE_VARIABLES: &[&str] = &[
    "messages",
    "tools",
    "add_generation_prompt",
    "bos_token",
    "eos_token",
];
/// Most bytes `chat_template_kwargs` may take as JSON.
const MAX_TEMPLATE_KWARGS_BYTES: usize = 16 * 1024;

/// `chat_template_kwargs`, validated: an object of at most 16 KiB that sets none of the
/// variables the server sets.
fn template_kwargs(given: Option<Value>) -> Result<serde_json::Map<String, Value>, ApiError> {
    let Some(given) = given.filter(|v| !v.is_null()) else {
        return Ok(serde_json::Map::new());
    };
    let Value::Object(map) = given else {
        return Err(ApiError::invalid(
            "'chat_template_kwargs' must be an object of template variables",
        ));
    };
    if let Some(key) = map
        .keys()
        .find(|k| RESERVED_TEMPLATE_VARIABLES.contains(&k.as_str()))
    {
        return Err(ApiError::invalid(format!(
            "'chat_template_kwargs' cannot set '{key}': the server sets it"
        )));
    }
    if Value::Object(map.clone()).to_string().len() > MAX_TEMPLATE_KWARGS_BYTES {
        return Err(ApiError::invalid(format!(
            "'chat_template_kwargs' is over {} KiB",
            MAX_TEMPLATE_KWARGS_BYTES / 1024
        )));
    }
    Ok(map)
}

/// The most a logit bias may move a logit (OpenAI's range); -100 bans the token.
const MAX_BIAS: f64 = 100.0;
/// Most entries in `logit_bias`.
const MAX_BIASES: usize = 1024;

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

    /// The fields a request sets, validated; the rest is left to the version's defaults.
    fn params(&self) -> Result<GenerationParams, ApiError> {
        let max_tokens = match self.max_completion_tokens.or(self.max_tokens) {
            None => None,
            Some(n) if n >= 1 => Some(u32::try_from(n).unwrap_or(u32::MAX)),
            Some(n) => {
                return Err(ApiError::invalid(format!(
                    "'max_tokens' must be at least 1, got {n}"
                )))
            }
        };
        let float = |v: Option<f64>| v.map(|v| v as f32);
        let int = |name: &str, v: Option<i64>| {
            v.map(|v| {
                i32::try_from(v).map_err(|_| ApiError::invalid(format!("'{name}' is out of range")))
            })
            .transpose()
        };
        let params = GenerationParams {
            temperature: float(self.temperature),
            top_k: int("top_k", self.top_k)?,
            top_p: float(self.top_p),
            min_p: float(self.min_p),
            typical_p: float(self.typical_p),
            repeat_penalty: float(self.repetition_penalty),
            repeat_last_n: int("repeat_last_n", self.repeat_last_n)?,
            presence_penalty: float(self.presence_penalty),
            frequency_penalty: float(self.frequency_penalty),
            max_tokens,
            tool_format: None,
        };
        params.validate()?;
        Ok(params)
    }

    fn into_request(
        self,
        prompts: Vec<Prompt>,
        endpoint: Endpoint,
    ) -> Result<GenerationRequest, ApiError> {
        if set(&self.functions) {
            return Err(ApiError::invalid(
                "'functions' is not supported by this server; use 'tools'",
            ));
        }
        if self.store == Some(true) {
            return Err(ApiError::invalid(
                "'store' is not supported by this server (it keeps no responses)",
            ));
        }
        let params = self.params()?;
        let logit_bias = logit_bias(self.logit_bias.clone())?;
        let logprobs = logprobs(endpoint, self.logprobs.as_ref(), self.top_logprobs.as_ref())?;
        let tools = super::tools::tools(self.tools.as_ref())?;
        let tool_choice = super::tools::tool_choice(self.tool_choice.as_ref(), &tools)?;
        let response_format = super::tools::response_format(self.response_format.as_ref())?;
        if endpoint == Endpoint::Completion && !tools.is_empty() {
            return Err(ApiError::invalid(
                "'tools' needs a conversation; use /v1/chat/completions",
            ));
        }
        let template_kwargs = template_kwargs(self.chat_template_kwargs.clone())?;
        if endpoint == Endpoint::Completion && !template_kwargs.is_empty() {
            return Err(ApiError::invalid(
                "'chat_template_kwargs' needs a conversation; use /v1/chat/completions",
            ));
        }
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
            n: n as u32,
            params,
            logit_bias,
            // OpenAI seeds are 64-bit; llama.cpp's are 32: keep the low bits.
            seed: self.seed.map(|s| s as u32),
            stop: stop.into_iter().filter(|s| !s.is_empty()).collect(),
            tools,
            tool_choice,
            parallel_tool_calls: self.parallel_tool_calls.unwrap_or(true),
            response_format,
            logprobs,
            template_kwargs,
            ..GenerationRequest::new(prompts)
        })
    }
}

/// Whether an optional field is given (not absent, `null` or `false`).
fn set(v: &Option<Value>) -> bool {
    v.as_ref()
        .is_some_and(|v| !v.is_null() && v != &Value::Bool(false))
}

/// Which endpoint a request came to: their `logprobs` fields differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completion,
}

/// How many alternatives to report per token, if log-probabilities are asked for: chat has
/// `logprobs: true` with `top_logprobs` 0 to 20, completions `logprobs` 0 to 20.
pub(crate) fn logprobs(
    endpoint: Endpoint,
    logprobs: Option<&Value>,
    top: Option<&Value>,
) -> Result<Option<u32>, ApiError> {
    let most = MAX_TOP_LOGPROBS;
    let count = |name: &str, v: &Value| match v.as_u64() {
        Some(n) if n <= u64::from(most) => Ok(n as u32),
        _ => Err(ApiError::invalid(format!(
            "'{name}' must be an integer between 0 and {most}"
        ))),
    };
    let top = top.filter(|v| !v.is_null());
    match endpoint {
        Endpoint::Chat => {
            let on = match logprobs {
                None | Some(Value::Null) | Some(Value::Bool(false)) => false,
                Some(Value::Bool(true)) => true,
                Some(_) => return Err(ApiError::invalid("'logprobs' must be true or false")),
            };
            match (on, top) {
                (false, None) => Ok(None),
                (false, Some(_)) => Err(ApiError::invalid("'top_logprobs' needs 'logprobs': true")),
                (true, None) => Ok(Some(0)),
                (true, Some(v)) => count("top_logprobs", v).map(Some),
            }
        }
        Endpoint::Completion => match logprobs.filter(|v| !v.is_null()) {
            None => Ok(None),
            Some(v) => count("logprobs", v).map(Some),
        },
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
        self.options
            .into_request(vec![Prompt::Chat(messages)], Endpoint::Chat)
    }
}

fn message(index: usize, m: MessageIn) -> Result<ChatMessage, ApiError> {
    let role = match m.role.as_str() {
        "system" | "developer" => "system",
        "user" => "user",
        "assistant" => "assistant",
        "tool" => "tool",
        _ => {
            return Err(ApiError::invalid(format!(
                "messages[{index}].role is not supported; use system, user, assistant or tool"
            )))
        }
    };
    let tool_calls = match m.tool_calls {
        Some(calls) if role == "assistant" => super::tools::message_calls(index, calls)?,
        Some(_) => {
            return Err(ApiError::invalid(format!(
                "messages[{index}] has 'tool_calls'; only assistant messages make calls"
            )))
        }
        None => Vec::new(),
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
        // An assistant turn that only calls tools has no content.
        None if !tool_calls.is_empty() => String::new(),
        None => {
            return Err(ApiError::invalid(format!(
                "messages[{index}] has no content"
            )))
        }
    };
    let tool_call_id = match (role, m.tool_call_id) {
        ("tool", Some(id)) => Some(super::tools::call_id(index, id)?),
        ("tool", None) => {
            return Err(ApiError::invalid(format!(
                "messages[{index}] is a tool result without 'tool_call_id'"
            )))
        }
        _ => None,
    };
    Ok(ChatMessage {
        role: role.to_owned(),
        content,
        tool_calls,
        tool_call_id,
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
        self.options.into_request(prompts, Endpoint::Completion)
    }
}
