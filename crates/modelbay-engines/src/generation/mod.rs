//! Text generation, independent of the engine that does it: what a caller asks for, the events
//! a generation streams back, and the traits a language-model engine implements.

mod text;

use std::{path::Path, sync::Arc};

use modelbay_core::ModelFormat;
use tokio::sync::mpsc::UnboundedSender;

pub use modelbay_core::generation::{
    generic_tool_prompt, ChatMessage, FinishReason, GenerationEvent, GenerationParams,
    OutputConstraint, SamplingParams, TokenId, TokenLogprob, Tool, ToolCall, ToolChoice,
    ToolFormat,
};
pub use text::TextAssembler;

use crate::Result;

/// One sequence to generate.
#[derive(Debug)]
pub struct GenerationJob {
    pub prompt: Vec<TokenId>,
    /// Most tokens to generate; `None`: up to the sequence's context.
    pub max_tokens: Option<u32>,
    pub sampling: SamplingParams,
    /// Generation stops before any of these texts, which are not returned.
    pub stop: Vec<String>,
    /// The grammar the output must follow, if any.
    pub constraint: Option<OutputConstraint>,
    /// Report each token's log-probability and this many alternatives (at most
    /// [`modelbay_core::generation::MAX_TOP_LOGPROBS`]); `None`: no log-probabilities.
    pub logprobs: Option<u32>,
    /// Tags this job's events (the choice index of an OpenAI response).
    pub choice: u32,
    /// Where the events go. When the receiver is dropped the generation is cancelled and its
    /// slot freed at the next step.
    pub events: UnboundedSender<GenerationEvent>,
}

/// Serving limits of a loaded language model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanguageModelLimits {
    /// Tokens (prompt and completion) one sequence may hold.
    pub context_per_sequence: u32,
    /// Sequences decoded together.
    pub max_sequences: u32,
    /// Sequences that may wait for a slot before new ones are refused.
    pub max_waiting: u32,
}

/// What a language model's scheduler holds at one moment, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedulerLoad {
    /// Sequences being decoded.
    pub running: u32,
    /// Sequences waiting for a free slot.
    pub waiting: u32,
    /// KV-cache token cells held by running sequences.
    pub kv_used: u64,
    /// KV-cache token cells in all.
    pub kv_capacity: u64,
}

/// A conversation rendered and tokenized.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatPrompt {
    pub tokens: Vec<TokenId>,
    /// Set when the template writes `<think>` reasoning blocks: whether the prompt leaves one
    /// open, so that the output starts as reasoning.
    pub reasoning: Option<bool>,
}

/// A loaded language model: tokenizer, chat template and a scheduler that decodes many
/// sequences together.
pub trait LanguageModel: Send + Sync {
    fn limits(&self) -> &LanguageModelLimits;

    /// Tokens of `text`; `add_special` adds the model's begin-of-text token if it uses one.
    /// Special-token texts in `text` (e.g. `<|im_start|>`) become their tokens.
    fn tokenize(&self, text: &str, add_special: bool) -> Result<Vec<TokenId>>;

    /// The prompt for a conversation, rendered with the model's own chat template; `tools`
    /// are offered the way `format` writes them, and `kwargs` are further variables the
    /// template may read.
    fn chat_prompt(
        &self,
        messages: &[ChatMessage],
        tools: &[Tool],
        format: ToolFormat,
        kwargs: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<ChatPrompt>;

    /// The tool-call format of the model's chat template.
    fn tool_format(&self) -> ToolFormat;

    /// The sampling the model file recommends.
    fn file_defaults(&self) -> GenerationParams;

    /// Queues jobs for generation. Fails without queueing any of them when the queue cannot
    /// take them all, or when one cannot fit in a sequence's context.
    fn submit(&self, jobs: Vec<GenerationJob>) -> Result<()>;

    /// Estimated memory held: weights plus KV cache.
    fn memory_bytes(&self) -> u64;

    /// Running and waiting sequences and KV-cache use now.
    fn load(&self) -> SchedulerLoad;
}

/// Serving settings for language models, chosen by the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanguageOptions {
    /// Threads each model's decode loop uses; keep it at or below the cores it may have.
    pub threads: u32,
    pub max_sequences: u32,
    pub context_per_sequence: u32,
    pub max_waiting: u32,
    /// Largest number of tokens one decode step processes (prompt chunks and decode tokens).
    pub batch_tokens: u32,
}

impl Default for LanguageOptions {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1),
            max_sequences: 8,
            context_per_sequence: 2048,
            max_waiting: 64,
            batch_tokens: 512,
        }
    }
}

/// Knows one language-model format: recognises it, validates a file at push time, loads it.
pub trait LanguageEngine: Send + Sync {
    fn format(&self) -> ModelFormat;

    /// The platform name reported in v2 model metadata.
    fn platform(&self) -> &'static str;

    fn sniff(&self, head: &[u8]) -> bool;

    /// Validates the file and reads the facts kept with the version in the registry.
    fn inspect(&self, path: &Path) -> Result<serde_json::Value>;

    /// Loads the model and starts its scheduler (blocking).
    fn load(&self, path: &Path, options: &LanguageOptions) -> Result<Arc<dyn LanguageModel>>;
}
