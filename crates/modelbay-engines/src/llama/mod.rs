//! GGUF language models on llama.cpp (through `llama-cpp-2`): tokenizer and chat template from
//! the file, and a scheduler thread per model that owns its context and decodes every running
//! sequence together (continuous batching).

mod constraint;
mod logprobs;
mod sampling;
mod scheduler;

use std::{
    path::Path,
    sync::{atomic::Ordering, Arc, OnceLock},
};

use crossbeam_channel::{Sender, TrySendError};
use llama_cpp_2::{
    llama_backend::LlamaBackend,
    model::{params::LlamaModelParams, LlamaModel},
    token::LlamaToken,
    LogOptions,
};
use modelbay_core::{generation::prompt_opens_reasoning, ModelFormat};

use crate::{
    chat_template::{ChatTemplate, PromptPiece},
    generation::{
        ChatMessage, ChatPrompt, GenerationJob, GenerationParams, LanguageEngine, LanguageModel,
        LanguageModelLimits, LanguageOptions, SchedulerLoad, TokenId, Tool, ToolFormat,
    },
    gguf::GgufHeader,
    Error, Result,
};

/// The llama.cpp engine for GGUF files.
#[derive(Debug, Default)]
pub struct LlamaEngine;

/// llama.cpp's process-wide initialisation, done once.
fn backend() -> Result<&'static LlamaBackend> {
    static BACKEND: OnceLock<std::result::Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            let backend = LlamaBackend::init().map_err(|e| e.to_string())?;
            llama_cpp_2::send_logs_to_tracing(LogOptions::default());
            Ok(backend)
        })
        .as_ref()
        .map_err(|e| Error::LibraryUnavailable(format!("llama.cpp failed to initialise: {e}")))
}

impl LanguageEngine for LlamaEngine {
    fn format(&self) -> ModelFormat {
        ModelFormat::Gguf
    }

    fn platform(&self) -> &'static str {
        "llama.cpp"
    }

    fn sniff(&self, head: &[u8]) -> bool {
        crate::gguf::sniff(head)
    }

    fn inspect(&self, path: &Path) -> Result<serde_json::Value> {
        let header = GgufHeader::read(path)?;
        let details = header.details()?;
        if let Some(source) = header.string("tokenizer.chat_template") {
            ChatTemplate::new(source, String::new(), String::new())?;
        }
        serde_json::to_value(details).map_err(|e| Error::Generation(e.to_string()))
    }

    fn load(&self, path: &Path, options: &LanguageOptions) -> Result<Arc<dyn LanguageModel>> {
        let backend = backend()?;
        let header = GgufHeader::read(path)?;
        let model = LlamaModel::load_from_file(backend, path, &LlamaModelParams::default())
            .map_err(|e| Error::InvalidModel(format!("llama.cpp could not load the model: {e}")))?;
        let model = Arc::new(model);
        let trained = model.n_ctx_train();
        let limits = LanguageModelLimits {
            context_per_sequence: options.context_per_sequence.clamp(1, trained.max(1)),
            max_sequences: options.max_sequences.max(1),
            max_waiting: options.max_waiting,
        };
        let template = match header.string("tokenizer.chat_template") {
            Some(source) => {
                let vocab = model.vocab();
                let text = |t: LlamaToken| {
                    String::from_utf8_lossy(&vocab.token_to_piece(t, true, None)).into_owned()
                };
                Some(ChatTemplate::new(
                    source,
                    text(vocab.bos()),
                    text(vocab.eos()),
                )?)
            }
            None => None,
        };
        let file_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let kv_bytes = kv_cache_bytes(&model, &limits);
        let occupancy = Arc::new(scheduler::Occupancy::default());
        let jobs = scheduler::start(backend, model.clone(), options, &limits, occupancy.clone())?;
        Ok(Arc::new(LlamaLanguageModel {
            grammars: constraint::Grammars::new(model.clone()),
            file_defaults: header.sampling_defaults(),
            model,
            template,
            limits,
            jobs,
            admission: parking_lot::Mutex::new(()),
            memory_bytes: file_bytes + kv_bytes,
            occupancy,
        }))
    }
}

/// The text of a special token, or nothing when the model has none (llama.cpp reports -1, and
/// asking for the text of -1 would abort the process).
fn special_text(model: &LlamaModel, token: LlamaToken) -> String {
    if token.0 < 0 || token.0 >= model.n_vocab() {
        return String::new();
    }
    String::from_utf8_lossy(&model.vocab().token_to_piece(token, true, None)).into_owned()
}

/// Bytes of an f16 KV cache for every sequence's full context.
fn kv_cache_bytes(model: &LlamaModel, limits: &LanguageModelLimits) -> u64 {
    let heads = u64::from(model.n_head().max(1));
    let head_dim = model.n_embd() as u64 / heads;
    let per_token = 2 * 2 * u64::from(model.n_layer()) * u64::from(model.n_head_kv()) * head_dim;
    per_token * u64::from(limits.context_per_sequence) * u64::from(limits.max_sequences)
}

struct LlamaLanguageModel {
    model: Arc<LlamaModel>,
    template: Option<ChatTemplate>,
    grammars: constraint::Grammars,
    file_defaults: GenerationParams,
    limits: LanguageModelLimits,
    jobs: Sender<scheduler::Queued>,
    /// Held while a request's jobs are queued, so that they go in all together or not at all.
    admission: parking_lot::Mutex<()>,
    memory_bytes: u64,
    occupancy: Arc<scheduler::Occupancy>,
}

impl LanguageModel for LlamaLanguageModel {
    fn limits(&self) -> &LanguageModelLimits {
        &self.limits
    }

    fn tokenize(&self, text: &str, add_special: bool) -> Result<Vec<TokenId>> {
        Ok(self
            .model
            .vocab()
            .tokenize(text.as_bytes(), add_special, true)
            .into_iter()
            .map(|t| t.0)
            .collect())
    }

    fn tool_format(&self) -> ToolFormat {
        self.template
            .as_ref()
            .map_or(ToolFormat::Generic, ChatTemplate::detected_format)
    }

    fn file_defaults(&self) -> GenerationParams {
        self.file_defaults.clone()
    }

    fn chat_prompt(
        &self,
        messages: &[ChatMessage],
        tools: &[Tool],
        format: ToolFormat,
        kwargs: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<ChatPrompt> {
        let template = self.template.as_ref().ok_or_else(|| {
            Error::InvalidRequest(
                "this model has no chat template; use /v1/completions with a prompt".into(),
            )
        })?;
        let pieces = template.render_pieces(messages, tools, format, kwargs)?;
        // A template that writes the begin-of-text token itself must not get a second one.
        let bos = special_text(&self.model, self.model.vocab().bos());
        let writes_bos = !bos.is_empty()
            && matches!(pieces.first(), Some(PromptPiece::Markup(m)) if m.starts_with(&bos));
        let mut tokens = Vec::new();
        for (i, piece) in pieces.iter().enumerate() {
            let add_bos = i == 0 && !writes_bos;
            // Only the template's markup may become control tokens; what a message says is
            // tokenized as text.
            let (text, parse_special) = match piece {
                PromptPiece::Markup(text) => (text, true),
                PromptPiece::Content(text) => (text, false),
            };
            tokens.extend(
                self.model
                    .vocab()
                    .tokenize(text.as_bytes(), add_bos, parse_special)
                    .into_iter()
                    .map(|t| t.0),
            );
        }
        // Whether the output starts inside a reasoning block: the template's own last words
        // say so (message content cannot open one).
        let reasoning = template.reasons().then(
            || matches!(pieces.last(), Some(PromptPiece::Markup(m)) if prompt_opens_reasoning(m)),
        );
        Ok(ChatPrompt { tokens, reasoning })
    }

    fn submit(&self, jobs: Vec<GenerationJob>) -> Result<()> {
        let context = self.limits.context_per_sequence as usize;
        let vocabulary = self.model.n_vocab();
        for job in &jobs {
            if job.prompt.is_empty() {
                return Err(Error::InvalidRequest("the prompt is empty".into()));
            }
            if let Some((bad, _)) = job
                .sampling
                .logit_bias
                .iter()
                .find(|&&(t, _)| t < 0 || t >= vocabulary)
            {
                return Err(Error::InvalidRequest(format!(
                    "'logit_bias' names token {bad}, which is not in the model's vocabulary \
                     (0..{vocabulary})"
                )));
            }
            if let Some(bad) = job.prompt.iter().find(|&&t| t < 0 || t >= vocabulary) {
                return Err(Error::InvalidRequest(format!(
                    "token {bad} is not in the model's vocabulary (0..{vocabulary})"
                )));
            }
            let prompt = job.prompt.len();
            if prompt >= context {
                return Err(Error::InvalidRequest(format!(
                    "the prompt is {prompt} tokens long; this model's context per sequence is \
                     {context} tokens, which must hold the prompt and at least one generated token"
                )));
            }
            if let Some(max) = job.max_tokens {
                if prompt + max as usize > context {
                    return Err(Error::InvalidRequest(format!(
                        "this model's context per sequence is {context} tokens, but {} were \
                         requested ({prompt} in the prompt, {max} to generate); lower max_tokens \
                         or shorten the prompt",
                        prompt + max as usize
                    )));
                }
            }
        }
        // Grammars compile before anything is queued: a schema that cannot be enforced fails
        // the whole request.
        let queued = jobs
            .into_iter()
            .map(|job| {
                let grammar = job
                    .constraint
                    .as_ref()
                    .map(|c| self.grammars.matcher(c))
                    .transpose()?;
                Ok(scheduler::Queued { job, grammar })
            })
            .collect::<Result<Vec<_>>>()?;
        // Only submitters add to the queue, and they take turns: the room seen here cannot
        // shrink before the sends below.
        let _turn = self.admission.lock();
        let free = self
            .jobs
            .capacity()
            .unwrap_or(usize::MAX)
            .saturating_sub(self.jobs.len());
        if queued.len() > free {
            return Err(Error::QueueFull {
                waiting: self.jobs.len(),
            });
        }
        for job in queued {
            match self.jobs.try_send(job) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => {
                    return Err(Error::QueueFull {
                        waiting: self.jobs.len(),
                    })
                }
                Err(TrySendError::Disconnected(_)) => {
                    return Err(Error::Generation(
                        "the model's scheduler has stopped".into(),
                    ))
                }
            }
        }
        Ok(())
    }

    fn memory_bytes(&self) -> u64 {
        self.memory_bytes
    }

    fn load(&self) -> SchedulerLoad {
        SchedulerLoad {
            running: self.occupancy.running.load(Ordering::Relaxed),
            waiting: self.jobs.len() as u32,
            kv_used: self.occupancy.kv_used.load(Ordering::Relaxed),
            kv_capacity: u64::from(self.limits.context_per_sequence)
                * u64::from(self.limits.max_sequences),
        }
    }
}
