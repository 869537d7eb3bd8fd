//! What a text generation is asked for and what it reports, independent of any engine and of
//! any wire protocol: handlers build these from OpenAI's shapes, engines consume them.

mod params;
mod reasoning;
mod tools;

pub use params::{GenerationParams, DEFAULT_MAX_TOKENS};
pub use reasoning::{prompt_opens_reasoning, template_reasons, ReasoningSplitter, Split};
pub use tools::{generic_tool_prompt, OutputConstraint, Tool, ToolCall, ToolChoice, ToolFormat};

/// A token id in the model's vocabulary.
pub type TokenId = i32;

/// Most alternatives a token's log-probability report may list (OpenAI's limit).
pub const MAX_TOP_LOGPROBS: u32 = 20;

/// One turn of a conversation, as the chat template sees it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatMessage {
    pub role: String,
    /// Empty for an assistant turn that only calls tools.
    pub content: String,
    /// The calls an assistant turn made.
    pub tool_calls: Vec<ToolCall>,
    /// The call a `tool` turn answers.
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        Self {
            role: role.to_owned(),
            content: content.into(),
            ..Self::default()
        }
    }
}

/// A generated token's log-probability and, if asked for, the most likely alternatives.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    /// The token's bytes (a token may hold part of a UTF-8 character).
    pub bytes: Vec<u8>,
    /// Natural log of its probability under the model's raw distribution.
    pub logprob: f32,
    /// The most likely tokens at this position, most likely first.
    pub top: Vec<(Vec<u8>, f32)>,
}

/// How the next token is chosen, as llama.cpp's sampler chain applies it: logit biases, then
/// penalties, then top-k, typical, top-p and min-p filtering, then temperature and a seeded draw
/// (greedy at temperature 0). A field at its neutral value leaves its step out.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 picks the most likely token every time (deterministic).
    pub temperature: f32,
    /// Only the `top_k` most likely tokens; 0: no limit.
    pub top_k: i32,
    /// Locally typical sampling; 1: off.
    pub typical_p: f32,
    /// Nucleus sampling: only the most likely tokens whose probabilities add up to `top_p`.
    pub top_p: f32,
    /// Only tokens at least `min_p` times as likely as the most likely one; 0: off.
    pub min_p: f32,
    pub seed: u32,
    /// Divides the logit of every token among the last `repeat_last_n` (1: off).
    pub repeat_penalty: f32,
    /// Subtracted once from the logit of every token among the last `repeat_last_n`.
    pub presence_penalty: f32,
    /// Subtracted from a token's logit for each time it is among the last `repeat_last_n`.
    pub frequency_penalty: f32,
    /// How many of the latest tokens the penalties look at; -1: the whole sequence.
    pub repeat_last_n: i32,
    /// Added to a token's logit before anything else; `f32::NEG_INFINITY` bans the token.
    pub logit_bias: Vec<(TokenId, f32)>,
}

impl Default for SamplingParams {
    /// Greedy, with every other step off.
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            typical_p: 1.0,
            top_p: 1.0,
            min_p: 0.0,
            seed: 0,
            repeat_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            repeat_last_n: 64,
            logit_bias: Vec::new(),
        }
    }
}

impl SamplingParams {
    /// What llama.cpp's own server samples with when a request sets nothing: temperature 0.8,
    /// top-k 40, top-p 0.95, min-p 0.05, a penalty window of 64 tokens.
    pub fn llama_server_defaults() -> Self {
        Self {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            ..Self::default()
        }
    }
}

/// Why a generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model ended its turn or a stop text was reached.
    Stop,
    /// `max_tokens` (or the context) was reached.
    Length,
}

impl FinishReason {
    /// The name OpenAI's API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
        }
    }
}

/// What a running generation reports, in order: text pieces, then exactly one `Done` or
/// `Failed`.
#[derive(Debug, Clone, PartialEq)]
pub enum GenerationEvent {
    /// New text: always whole UTF-8 characters, never part of a stop text. With log
    /// probabilities asked for, `logprobs` has one entry per token whose text this piece
    /// completes.
    Text {
        choice: u32,
        text: String,
        logprobs: Vec<TokenLogprob>,
    },
    Done {
        choice: u32,
        reason: FinishReason,
        completion_tokens: u32,
        /// Prompt tokens whose KV cache was reused from an earlier sequence.
        cached_tokens: u32,
    },
    Failed {
        choice: u32,
        message: String,
    },
}
