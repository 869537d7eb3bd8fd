//! Chat Completions and Completions response bodies: a whole response built from the
//! collected choices, or the events turned into Server-Sent Event chunks as they arrive
//! (with tool calls sent as OpenAI's `tool_calls` deltas once a choice ends).

use std::{collections::VecDeque, convert::Infallible};

use axum::response::sse::Event;
use futures::Stream;
use modelbay_core::generation::{GenerationEvent, TokenLogprob};
use modelbay_runtime::Generation;
use serde_json::{json, Value};

use super::collect::{self, Choice, Holder, Reasoning, Usage};
use crate::error::ApiError;

/// Which endpoint a response is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Chat,
    Completion,
}

/// Fields every response and chunk of one request repeats.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub kind: Kind,
    pub id: String,
    pub created: u64,
    pub model: String,
    pub fingerprint: String,
    /// Log-probabilities were asked for (else `logprobs` is null).
    pub logprobs: bool,
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Envelope {
    pub fn new(kind: Kind, model: String, fingerprint: String, logprobs: bool) -> Self {
        let prefix = match kind {
            Kind::Chat => "chatcmpl",
            Kind::Completion => "cmpl",
        };
        Self {
            kind,
            id: format!("{prefix}-{}", uuid::Uuid::new_v4().simple()),
            created: now(),
            model,
            fingerprint,
            logprobs,
        }
    }

    fn object(&self, chunk: bool) -> &'static str {
        match (self.kind, chunk) {
            (Kind::Chat, false) => "chat.completion",
            (Kind::Chat, true) => "chat.completion.chunk",
            (Kind::Completion, _) => "text_completion",
        }
    }

    fn body(&self, chunk: bool, choices: Vec<Value>) -> Value {
        json!({
            "id": self.id,
            "object": self.object(chunk),
            "created": self.created,
            "model": self.model,
            "system_fingerprint": self.fingerprint,
            "choices": choices,
        })
    }

    fn logprobs_json(&self, logprobs: &[TokenLogprob], offset: usize) -> Value {
        match (self.logprobs, self.kind) {
            (false, _) => Value::Null,
            (true, Kind::Chat) => collect::chat_logprobs(logprobs),
            (true, Kind::Completion) => collect::completion_logprobs(logprobs, offset),
        }
    }
}

/// OpenAI's `tool_calls` entries of a message.
fn calls_json(choice: &Choice) -> Value {
    choice
        .tool_calls
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "type": "function",
                "function": { "name": c.name, "arguments": c.arguments },
            })
        })
        .collect()
}

/// Waits for every choice to finish and builds the whole response.
pub async fn collect(envelope: &Envelope, mut generation: Generation) -> Result<Value, ApiError> {
    let collected = collect::gather(&mut generation).await?;
    let choices = collected
        .choices
        .iter()
        .enumerate()
        .map(|(index, choice)| {
            let logprobs = envelope.logprobs_json(&choice.logprobs, 0);
            match envelope.kind {
                Kind::Chat => {
                    let mut message = json!({
                        "role": "assistant",
                        "content": choice.content,
                        "refusal": null,
                    });
                    if !choice.reasoning.is_empty() {
                        message["reasoning_content"] = json!(choice.reasoning);
                    }
                    if !choice.tool_calls.is_empty() {
                        message["tool_calls"] = calls_json(choice);
                        if choice.content.is_empty() {
                            message["content"] = Value::Null;
                        }
                    }
                    json!({
                        "index": index,
                        "message": message,
                        "logprobs": logprobs,
                        "finish_reason": choice.finish_reason,
                    })
                }
                Kind::Completion => json!({
                    "index": index,
                    "text": choice.content,
                    "logprobs": logprobs,
                    "finish_reason": choice.finish_reason,
                }),
            }
        })
        .collect();
    let mut body = envelope.body(false, choices);
    body["usage"] = collected.usage.chat_json();
    Ok(body)
}

/// State of a streamed response.
struct Streamer {
    envelope: Envelope,
    generation: Generation,
    include_usage: bool,
    /// Chunks ready to send.
    ready: VecDeque<Event>,
    /// Choices whose first chunk (the role, for chat) has been sent.
    opened: Vec<bool>,
    /// Per choice, with tools offered: text held back as a possible call.
    holders: Vec<Holder>,
    /// Per choice: its reasoning split from its answer.
    reasoning: Vec<Reasoning>,
    /// Per choice: log-probabilities of text not sent yet, and bytes of text sent.
    pending_logprobs: Vec<Vec<TokenLogprob>>,
    sent_bytes: Vec<usize>,
    remaining: usize,
    usage: Usage,
    done: bool,
}

impl Streamer {
    fn chunk(&self, choice: Value) -> Event {
        let mut body = self.envelope.body(true, vec![choice]);
        if self.include_usage {
            body["usage"] = Value::Null;
        }
        Event::default().data(body.to_string())
    }

    /// A chunk for `index` with `delta` fields (chat) or text (completions).
    fn push_choice(&mut self, index: u32, text: Option<&str>, extra: Value, reason: Option<&str>) {
        let i = index as usize;
        let logprobs = std::mem::take(&mut self.pending_logprobs[i]);
        let logprobs = self.envelope.logprobs_json(&logprobs, self.sent_bytes[i]);
        self.sent_bytes[i] += text.map_or(0, str::len);
        let choice = match self.envelope.kind {
            Kind::Chat => {
                let mut delta = extra;
                if !self.opened[i] {
                    delta["role"] = json!("assistant");
                }
                if let Some(text) = text {
                    delta["content"] = json!(text);
                }
                json!({ "index": index, "delta": delta, "logprobs": logprobs, "finish_reason": reason })
            }
            Kind::Completion => json!({
                "index": index,
                "text": text.unwrap_or(""),
                "logprobs": logprobs,
                "finish_reason": reason,
            }),
        };
        let chunk = self.chunk(choice);
        self.opened[i] = true;
        self.ready.push_back(chunk);
    }

    /// Reasoning goes out at once, as `delta.reasoning_content`.
    fn send_reasoning(&mut self, choice: u32, reasoning: &str) {
        if !reasoning.is_empty() {
            let delta = json!({ "reasoning_content": reasoning });
            self.push_choice(choice, None, delta, None);
        }
    }

    /// Answer text goes out unless it may be the start of a tool call.
    fn send_content(&mut self, choice: u32, text: String) {
        let send = match &self.generation.tool_parsing {
            Some(tools) => self.holders[choice as usize].push(&text, tools),
            None => Some(text),
        };
        if let Some(text) = send.filter(|t| !t.is_empty()) {
            self.push_choice(choice, Some(&text), json!({}), None);
        }
    }

    fn finish(&mut self) {
        if self.include_usage {
            let mut body = self.envelope.body(true, Vec::new());
            body["usage"] = self.usage.chat_json();
            self.ready
                .push_back(Event::default().data(body.to_string()));
        }
        self.ready.push_back(Event::default().data("[DONE]"));
        self.done = true;
    }
}

/// The response as a stream of SSE events, ending with `data: [DONE]`. Dropping the stream
/// (the client went away) drops the generation, which cancels it.
pub fn stream(
    envelope: Envelope,
    generation: Generation,
    include_usage: bool,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let n = generation.choices as usize;
    let reasoning = (0..n).map(|_| Reasoning::new(&generation)).collect();
    let streamer = Streamer {
        envelope,
        generation,
        include_usage,
        ready: VecDeque::new(),
        opened: vec![false; n],
        holders: (0..n).map(|_| Holder::default()).collect(),
        reasoning,
        pending_logprobs: vec![Vec::new(); n],
        sent_bytes: vec![0; n],
        remaining: n,
        usage: Usage::default(),
        done: false,
    };
    collect::event_stream(streamer)
}

impl collect::EventStreamer for Streamer {
    fn generation(&mut self) -> &mut Generation {
        &mut self.generation
    }
    fn ready(&mut self) -> &mut VecDeque<Event> {
        &mut self.ready
    }
    fn done(&self) -> bool {
        self.done
    }
    fn handle(&mut self, event: GenerationEvent) {
        match event {
            GenerationEvent::Text {
                choice,
                text,
                logprobs,
            } => {
                let split = self.reasoning[choice as usize].push(&text);
                self.send_reasoning(choice, &split.reasoning);
                // Tokens of a reasoning block are not reported.
                if !split.content.is_empty() {
                    self.pending_logprobs[choice as usize].extend(logprobs);
                    self.send_content(choice, split.content);
                }
            }
            GenerationEvent::Done {
                choice,
                reason,
                completion_tokens,
                cached_tokens,
            } => {
                let i = choice as usize;
                let split = self.reasoning[i].finish();
                self.send_reasoning(choice, &split.reasoning);
                if !split.content.is_empty() {
                    self.send_content(choice, split.content);
                }
                let mut finish_reason = reason.as_str();
                if let Some(tools) = self.generation.tool_parsing.clone() {
                    let (rest, finished) =
                        std::mem::take(&mut self.holders[i]).finish(reason, &tools);
                    if !rest.is_empty() {
                        self.push_choice(choice, Some(&rest), json!({}), None);
                    }
                    for (k, call) in finished.tool_calls.iter().enumerate() {
                        let opening = json!({ "tool_calls": [{
                            "index": k, "id": call.id, "type": "function",
                            "function": { "name": call.name, "arguments": "" },
                        }]});
                        self.push_choice(choice, None, opening, None);
                        let arguments = json!({ "tool_calls": [{
                            "index": k, "function": { "arguments": call.arguments },
                        }]});
                        self.push_choice(choice, None, arguments, None);
                    }
                    finish_reason = finished.finish_reason;
                }
                let text = (!self.opened[i] && self.envelope.kind == Kind::Chat).then_some("");
                self.push_choice(choice, text, json!({}), Some(finish_reason));
                self.usage.prompt_tokens = self.generation.prompt_tokens;
                self.usage.add(
                    choice,
                    self.generation.per_prompt,
                    completion_tokens,
                    cached_tokens,
                );
                self.remaining -= 1;
                if self.remaining == 0 {
                    self.finish();
                }
            }
            GenerationEvent::Failed { message, .. } => {
                tracing::error!(error = %message, "generation failed mid-stream");
                let body = json!({ "error": {
                    "message": "internal error; the server log has the details",
                    "type": "server_error", "param": null, "code": "internal",
                }});
                self.ready
                    .push_back(Event::default().data(body.to_string()));
                self.ready.push_back(Event::default().data("[DONE]"));
                self.done = true;
            }
        }
    }
}
