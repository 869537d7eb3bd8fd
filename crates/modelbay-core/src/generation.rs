//! What a text generation is asked for and what it reports, independent of any engine and of
//! any wire protocol: handlers build these from OpenAI's shapes, engines consume them.

use serde::Serialize;

/// A token id in the model's vocabulary.
pub type TokenId = i32;

/// One turn of a conversation, as the chat template sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

/// How the next token is chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 picks the most likely token every time (deterministic).
    pub temperature: f32,
    /// Nucleus sampling: only the most likely tokens whose probabilities add up to `top_p`.
    pub top_p: f32,
    pub seed: u32,
    /// Subtracted once from the logit of every token already generated.
    pub presence_penalty: f32,
    /// Subtracted from a token's logit for each time it was generated.
    pub frequency_penalty: f32,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
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
    /// New text: always whole UTF-8 characters, never part of a stop text.
    Text {
        choice: u32,
        text: String,
    },
    Done {
        choice: u32,
        reason: FinishReason,
        completion_tokens: u32,
    },
    Failed {
        choice: u32,
        message: String,
    },
}
