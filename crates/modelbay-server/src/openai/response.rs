//! OpenAI response bodies: a whole completion collected from a generation's events, or the
//! events turned into Server-Sent Event chunks as they arrive.

use std::{collections::VecDeque, convert::Infallible};

use axum::response::sse::Event;
use futures::Stream;
use modelbay_core::generation::GenerationEvent;
use modelbay_runtime::Generation;
use serde_json::{json, Value};

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
}

impl Envelope {
    pub fn new(kind: Kind, model: String, fingerprint: String) -> Self {
        let prefix = match kind {
            Kind::Chat => "chatcmpl",
            Kind::Completion => "cmpl",
        };
        Self {
            kind,
            id: format!("{prefix}-{}", uuid::Uuid::new_v4().simple()),
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            model,
            fingerprint,
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
}

fn usage(prompt_tokens: u32, completion_tokens: u32) -> Value {
    json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    })
}

/// Waits for every choice to finish and builds the whole response.
pub async fn collect(envelope: &Envelope, mut generation: Generation) -> Result<Value, ApiError> {
    let n = generation.choices as usize;
    let mut texts = vec![String::new(); n];
    let mut finished: Vec<Option<&'static str>> = vec![None; n];
    let mut completion_tokens = 0u32;
    let mut remaining = n;
    while remaining > 0 {
        let Some(event) = generation.events.recv().await else {
            return Err(ApiError::new(
                modelbay_core::ErrorCode::Internal,
                "the generation ended without finishing every choice",
            ));
        };
        match event {
            GenerationEvent::Text { choice, text } => texts[choice as usize].push_str(&text),
            GenerationEvent::Done {
                choice,
                reason,
                completion_tokens: tokens,
            } => {
                finished[choice as usize] = Some(reason.as_str());
                completion_tokens += tokens;
                remaining -= 1;
            }
            GenerationEvent::Failed { message, .. } => {
                return Err(ApiError::new(modelbay_core::ErrorCode::Internal, message))
            }
        }
    }
    let choices = texts
        .into_iter()
        .zip(finished)
        .enumerate()
        .map(|(index, (text, reason))| match envelope.kind {
            Kind::Chat => json!({
                "index": index,
                "message": { "role": "assistant", "content": text },
                "logprobs": null,
                "finish_reason": reason,
            }),
            Kind::Completion => json!({
                "index": index,
                "text": text,
                "logprobs": null,
                "finish_reason": reason,
            }),
        })
        .collect();
    let mut body = envelope.body(false, choices);
    body["usage"] = usage(generation.prompt_tokens, completion_tokens);
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
    remaining: usize,
    completion_tokens: u32,
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

    fn choice(&self, index: u32, text: Option<&str>, reason: Option<&str>) -> Value {
        match self.envelope.kind {
            Kind::Chat => {
                let mut delta = json!({});
                if !self.opened[index as usize] {
                    delta["role"] = json!("assistant");
                }
                if let Some(text) = text {
                    delta["content"] = json!(text);
                }
                json!({ "index": index, "delta": delta, "logprobs": null, "finish_reason": reason })
            }
            Kind::Completion => json!({
                "index": index,
                "text": text.unwrap_or(""),
                "logprobs": null,
                "finish_reason": reason,
            }),
        }
    }

    fn handle(&mut self, event: GenerationEvent) {
        match event {
            GenerationEvent::Text { choice, text } => {
                let chunk = self.chunk(self.choice(choice, Some(&text), None));
                self.opened[choice as usize] = true;
                self.ready.push_back(chunk);
            }
            GenerationEvent::Done {
                choice,
                reason,
                completion_tokens,
            } => {
                let text = (!self.opened[choice as usize] && self.envelope.kind == Kind::Chat)
                    .then_some("");
                let chunk = self.chunk(self.choice(choice, text, Some(reason.as_str())));
                self.opened[choice as usize] = true;
                self.ready.push_back(chunk);
                self.completion_tokens += completion_tokens;
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

    fn finish(&mut self) {
        if self.include_usage {
            let mut body = self.envelope.body(true, Vec::new());
            body["usage"] = usage(self.generation.prompt_tokens, self.completion_tokens);
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
    let streamer = Streamer {
        envelope,
        generation,
        include_usage,
        ready: VecDeque::new(),
        opened: vec![false; n],
        remaining: n,
        completion_tokens: 0,
        done: false,
    };
    futures::stream::unfold(streamer, |mut s| async move {
        loop {
            if let Some(event) = s.ready.pop_front() {
                return Some((Ok(event), s));
            }
            if s.done {
                return None;
            }
            match s.generation.events.recv().await {
                Some(event) => s.handle(event),
                None => {
                    s.handle(GenerationEvent::Failed {
                        choice: 0,
                        message: "the generation ended without finishing every choice".into(),
                    });
                }
            }
        }
    })
}
