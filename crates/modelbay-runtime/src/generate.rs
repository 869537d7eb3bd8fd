//! Text generation on language-model versions: preparing prompts (chat template, tokenizer),
//! queueing one sequence per choice, and listing what can serve chat and completions.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    time::Instant,
};

use chrono::{DateTime, Utc};
use modelbay_core::{Access, Caller, ModelName, VersionRef};
use modelbay_engines::{
    generation::{
        ChatMessage, ChatPrompt, GenerationEvent, GenerationJob, GenerationParams,
        OutputConstraint, SamplingParams, TokenId, Tool, ToolChoice, ToolFormat,
    },
    LanguageModel,
};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::{metrics::ModelMetrics, Result, Routed, Runtime};

/// What to generate from.
#[derive(Debug, Clone)]
pub enum Prompt {
    /// A conversation, rendered with the model's chat template.
    Chat(Vec<ChatMessage>),
    /// Raw text, tokenized as is.
    Text(String),
    /// Token ids, used as they are.
    Tokens(Vec<TokenId>),
}

/// A generation request after protocol-level validation.
#[derive(Debug, Clone)]
pub struct GenerationRequest {
    /// One or more prompts; each gets `n` choices.
    pub prompts: Vec<Prompt>,
    pub n: u32,
    /// What the request sets; every field it leaves out takes the version's default.
    pub params: GenerationParams,
    /// Added to token logits before sampling; `f32::NEG_INFINITY` bans a token.
    pub logit_bias: Vec<(TokenId, f32)>,
    /// `None`: a random seed. The seed of choice `i` is `seed + i`.
    pub seed: Option<u32>,
    pub stop: Vec<String>,
    /// Functions the model may call (chat only).
    pub tools: Vec<Tool>,
    pub tool_choice: ToolChoice,
    pub parallel_tool_calls: bool,
    /// A grammar the output must follow (structured output).
    pub response_format: Option<OutputConstraint>,
    /// Report log-probabilities with this many alternatives per token.
    pub logprobs: Option<u32>,
    /// Further variables for the chat template (`chat_template_kwargs`).
    pub template_kwargs: serde_json::Map<String, serde_json::Value>,
}

impl GenerationRequest {
    /// A request for `prompts` with nothing else set.
    pub fn new(prompts: Vec<Prompt>) -> Self {
        Self {
            prompts,
            n: 1,
            params: GenerationParams::default(),
            logit_bias: Vec::new(),
            seed: None,
            stop: Vec::new(),
            tools: Vec::new(),
            tool_choice: ToolChoice::Auto,
            parallel_tool_calls: true,
            response_format: None,
            logprobs: None,
            template_kwargs: serde_json::Map::new(),
        }
    }
}

/// How to find tool calls in a choice's text.
#[derive(Debug, Clone)]
pub struct ToolParsing {
    pub format: ToolFormat,
    pub tools: Vec<Tool>,
    /// The output was constrained to calls (`required` or a named function).
    pub forced: bool,
}

/// A generation in progress. Dropping it cancels every sequence it started.
pub struct Generation {
    /// Events of every choice, interleaved; choice `p * n + i` is prompt `p`'s `i`-th.
    pub events: UnboundedReceiver<GenerationEvent>,
    /// Prompt tokens over all prompts (each counted once, whatever `n`).
    pub prompt_tokens: u32,
    /// How many choices will finish.
    pub choices: u32,
    /// Choices per prompt (`n`).
    pub per_prompt: u32,
    /// Set when tools were offered and may be called.
    pub tool_parsing: Option<ToolParsing>,
    /// Set when the output may hold a `<think>` reasoning block to split from the answer:
    /// whether it starts inside one.
    pub reasoning: Option<bool>,
}

/// A name under which a language model can be addressed, for `/v1/models`.
#[derive(Debug, Clone)]
pub struct ServedModel {
    /// `name` or `name@alias`.
    pub id: String,
    pub created: DateTime<Utc>,
    pub details: serde_json::Value,
}

impl Runtime {
    /// Prepares the prompts and queues one sequence per choice on the routed version.
    pub async fn generate(
        &self,
        caller: &Caller,
        routed: &Routed,
        req: GenerationRequest,
    ) -> Result<Generation> {
        let model = routed.model.language_model()?.clone();
        let choices = u32::try_from(req.prompts.len())
            .ok()
            .and_then(|p| p.checked_mul(req.n))
            .unwrap_or(u32::MAX);
        // They must all fit in the waiting queue at once.
        let most = model.limits().max_waiting.max(1);
        if choices > most {
            return Err(modelbay_engines::Error::InvalidRequest(format!(
                "{choices} sequences requested (prompts × n); this model takes at most {most} \
                 at once"
            ))
            .into());
        }
        let record = &routed.model.record;
        let publisher = self
            .publisher_defaults(&routed.name, record.version)
            .await?;
        let defaults = publisher.over(&model.file_defaults());
        let (mut sampling, default_cap) = req.params.over(&defaults).resolve();
        sampling.logit_bias = req.logit_bias.clone();
        let format = defaults
            .tool_format()
            .unwrap_or_else(|| model.tool_format());
        // Tools are described to the model (and its output parsed for them) unless it may not
        // call them; under `none` the generic format still describes them, to hold the answer
        // to its plain shape (see ToolFormat::constraint), unless a response_format does that.
        let offered = !req.tools.is_empty()
            && (req.tool_choice != ToolChoice::None
                || (format == ToolFormat::Generic && req.response_format.is_none()));
        let tool_constraint = offered
            .then(|| format.constraint(&req.tools, &req.tool_choice, req.parallel_tool_calls))
            .flatten();
        let constraint = match (tool_constraint, req.response_format.clone()) {
            (Some(_), Some(_)) => {
                return Err(modelbay_engines::Error::InvalidRequest(
                    "'response_format' cannot be combined with a tool call the model must \
                     make; set tool_choice to none or auto, or leave out response_format"
                        .into(),
                )
                .into())
            }
            (tools, format) => tools.or(format),
        };
        let tool_parsing = offered.then(|| ToolParsing {
            format,
            tools: req.tools.clone(),
            forced: matches!(
                req.tool_choice,
                ToolChoice::Required | ToolChoice::Function(_)
            ),
        });
        // The caller's own share of the queue and of generated tokens.
        let share = self.limits.admit_sequences(caller, choices)?;
        let prompts = req.prompts;
        let tokenizer = model.clone();
        let tools = if offered {
            req.tools.clone()
        } else {
            Vec::new()
        };
        let kwargs = req.template_kwargs.clone();
        let prepared = tokio::task::spawn_blocking(move || {
            prompts
                .into_iter()
                .map(|prompt| prepare(tokenizer.as_ref(), prompt, &tools, format, &kwargs))
                .collect::<Result<Vec<_>>>()
        })
        .await??;
        // Constrained output follows its grammar from the first token: no reasoning block.
        let reasoning = prepared
            .first()
            .and_then(|p| p.reasoning)
            .filter(|_| constraint.is_none());
        let prepared: Vec<Vec<TokenId>> = prepared.into_iter().map(|p| p.tokens).collect();
        // A cap the request did not set never asks for more than the context has room for.
        let context = model.limits().context_per_sequence;
        let explicit_cap = req.params.max_tokens.is_some();
        let cap = |prompt: usize| {
            if explicit_cap {
                default_cap
            } else {
                default_cap.min(context.saturating_sub(prompt as u32).max(1))
            }
        };
        let seed = req
            .seed
            .unwrap_or_else(|| RandomState::new().hash_one(std::time::SystemTime::now()) as u32);
        let (events, received) = tokio::sync::mpsc::unbounded_channel();
        let mut jobs = Vec::new();
        let mut prompt_tokens = 0u32;
        for (p, prompt) in prepared.into_iter().enumerate() {
            prompt_tokens = prompt_tokens.saturating_add(prompt.len() as u32);
            for i in 0..req.n {
                jobs.push(GenerationJob {
                    prompt: prompt.clone(),
                    max_tokens: Some(cap(prompt.len())),
                    sampling: SamplingParams {
                        seed: seed.wrapping_add(i),
                        ..sampling.clone()
                    },
                    stop: req.stop.clone(),
                    constraint: constraint.clone(),
                    logprobs: req.logprobs,
                    choice: p as u32 * req.n + i,
                    events: events.clone(),
                });
            }
        }
        // Grammars compile while jobs are submitted: off the async threads.
        let submitter = model.clone();
        tokio::task::spawn_blocking(move || submitter.submit(jobs)).await??;
        let alias = routed.route.alias.clone().unwrap_or_default();
        routed.model.metrics.record_prompt(&alias, prompt_tokens);
        let in_flight = routed.in_flight.lock().take();
        let charge = Charge {
            usage: self.limits.clone(),
            caller: caller.clone(),
            _share: share,
        };
        let events = timed(
            received,
            routed.model.metrics.clone(),
            alias,
            in_flight,
            charge,
        );
        Ok(Generation {
            events,
            prompt_tokens,
            choices,
            per_prompt: req.n,
            tool_parsing,
            reasoning,
        })
    }

    /// Every name that routes to a language or embedding model (what OpenAI clients can use):
    /// the model's name when its default route does, and `name@alias` for each alias that
    /// does.
    pub async fn served_openai_models(&self, caller: &Caller) -> Result<Vec<ServedModel>> {
        caller.require(Access::Metadata)?;
        let mut served = Vec::new();
        for summary in self.registry.models().await? {
            if !caller.covers(&summary.name) {
                continue;
            }
            let name = ModelName::new(&summary.name)?;
            let versions = self.registry.versions(&name).await?;
            let speaks_openai = |number: u32| {
                versions.iter().any(|v| {
                    v.version == number
                        && !v.archived
                        && (self.engines.is_language(v.format)
                            || self.engines.is_embedding(v.format))
                })
            };
            let routes = self.manager.routes(&name).await?;
            if let Ok(default) = routes.representative(&name, &VersionRef::Default) {
                if speaks_openai(default) {
                    served.push(entry(summary.name.clone(), &versions, default));
                }
            }
            for version in versions.iter().filter(|v| speaks_openai(v.version)) {
                for alias in &version.aliases {
                    served.push(entry(
                        format!("{}@{alias}", summary.name),
                        &versions,
                        version.version,
                    ));
                }
            }
        }
        Ok(served)
    }
}

fn entry(id: String, versions: &[modelbay_registry::VersionRecord], number: u32) -> ServedModel {
    let record = versions.iter().find(|v| v.version == number);
    ServedModel {
        id,
        created: record.map(|v| v.created_at).unwrap_or_default(),
        details: record.map(|v| v.details.clone()).unwrap_or_default(),
    }
}

/// Where a generation's tokens are charged, and the sequences it holds of its caller's share.
struct Charge {
    usage: std::sync::Arc<crate::limits::KeyUsage>,
    caller: Caller,
    _share: Option<crate::limits::SequenceShare>,
}

/// Passes generation events on while timing each sequence: time to first text, the mean gap
/// between its tokens, and its generated tokens, recorded (and charged to the caller) when it
/// ends. Stops (and so cancels the sequences) when the caller drops its receiver; the caller's
/// share of sequences is given back then.
fn timed(
    mut events: UnboundedReceiver<GenerationEvent>,
    metrics: ModelMetrics,
    alias: String,
    in_flight: Option<crate::metrics::InFlight>,
    charge: Charge,
) -> UnboundedReceiver<GenerationEvent> {
    let (forward, received) = tokio::sync::mpsc::unbounded_channel();
    let queued = Instant::now();
    tokio::spawn(async move {
        // The request stays in flight, and its sequences count against the caller's share,
        // until its last event is passed on. (Bound whole: the loop below uses only some of
        // `charge`'s fields, and a block that captured only those would drop the share at once.)
        let _in_flight = in_flight;
        let charge = charge;
        let mut first_text: HashMap<u32, Instant> = HashMap::new();
        loop {
            let event = tokio::select! {
                event = events.recv() => event,
                () = forward.closed() => return,
            };
            let Some(event) = event else { return };
            match &event {
                GenerationEvent::Text { choice, .. } => {
                    first_text.entry(*choice).or_insert_with(Instant::now);
                }
                GenerationEvent::Done {
                    choice,
                    completion_tokens,
                    cached_tokens,
                    ..
                } => {
                    let first = first_text.remove(choice);
                    let gap = first
                        .filter(|_| *completion_tokens > 1)
                        .map(|first| first.elapsed() / (*completion_tokens - 1));
                    metrics.record_sequence(
                        &alias,
                        *completion_tokens,
                        *cached_tokens,
                        first.map(|f| f - queued),
                        gap,
                    );
                    charge
                        .usage
                        .charge_tokens(&charge.caller, *completion_tokens);
                }
                GenerationEvent::Failed { choice, .. } => {
                    first_text.remove(choice);
                }
            }
            if forward.send(event).is_err() {
                return;
            }
        }
    });
    received
}

fn prepare(
    model: &dyn LanguageModel,
    prompt: Prompt,
    tools: &[Tool],
    format: ToolFormat,
    kwargs: &serde_json::Map<String, serde_json::Value>,
) -> Result<ChatPrompt> {
    let plain = |tokens| ChatPrompt {
        tokens,
        reasoning: None,
    };
    Ok(match prompt {
        Prompt::Chat(messages) => model.chat_prompt(&messages, tools, format, kwargs)?,
        Prompt::Text(text) => plain(model.tokenize(&text, true)?),
        Prompt::Tokens(tokens) => plain(tokens),
    })
}
