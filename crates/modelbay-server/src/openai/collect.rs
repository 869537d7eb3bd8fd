//! What the generation endpoints share: collecting a generation's events into finished
//! choices, finding tool calls in a choice's text, holding back streamed text that may be the
//! start of a call, and OpenAI's shapes for log-probabilities and usage.

use std::{collections::VecDeque, convert::Infallible};

use axum::response::sse::Event;
use futures::Stream;
use modelbay_core::generation::{
    FinishReason, GenerationEvent, ReasoningSplitter, Split, TokenLogprob, ToolCall,
};
use modelbay_runtime::{Generation, ToolParsing};
use serde_json::{json, Value};

use crate::error::ApiError;

/// One finished choice.
#[derive(Debug, Default)]
pub(crate) struct Choice {
    /// The text to return (without the tool calls found in it).
    pub content: String,
    /// The text of a `<think>` block before it, for reasoning models.
    pub reasoning: String,
    pub tool_calls: Vec<ToolCall>,
    pub logprobs: Vec<TokenLogprob>,
    /// OpenAI's name: `stop`, `length` or `tool_calls`.
    pub finish_reason: &'static str,
}

/// Every choice of a generation, with its token counts.
pub(crate) struct Collected {
    pub choices: Vec<Choice>,
    pub usage: Usage,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub cached_tokens: u32,
}

impl Usage {
    /// Chat Completions' and Completions' `usage`.
    pub fn chat_json(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "prompt_tokens_details": { "cached_tokens": self.cached_tokens },
        })
    }

    /// The Responses API's `usage`.
    pub fn responses_json(&self) -> Value {
        json!({
            "input_tokens": self.prompt_tokens,
            "input_tokens_details": { "cached_tokens": self.cached_tokens },
            "output_tokens": self.completion_tokens,
            "output_tokens_details": { "reasoning_tokens": 0 },
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        })
    }

    /// Adds a finished sequence; prompt tokens reused from the cache count once per prompt
    /// (its first choice), as the prompt itself does.
    pub fn add(&mut self, choice: u32, per_prompt: u32, completion: u32, cached: u32) {
        self.completion_tokens += completion;
        if choice.is_multiple_of(per_prompt.max(1)) {
            self.cached_tokens += cached;
        }
    }
}

/// A fresh call id, as OpenAI writes them.
pub(crate) fn call_id() -> String {
    format!("call_{}", &uuid::Uuid::new_v4().simple().to_string()[..24])
}

/// Splits a finished choice's text into content and tool calls.
pub(crate) fn finish(
    text: String,
    reason: FinishReason,
    logprobs: Vec<TokenLogprob>,
    tools: Option<&ToolParsing>,
) -> Choice {
    let (content, mut tool_calls) = match tools {
        Some(parsing) => parsing.format.parse_output(&text, &parsing.tools),
        None => (text, Vec::new()),
    };
    for call in &mut tool_calls {
        if call.id.is_empty() {
            call.id = call_id();
        }
    }
    let finish_reason = if tool_calls.is_empty() {
        reason.as_str()
    } else {
        "tool_calls"
    };
    Choice {
        content,
        reasoning: String::new(),
        tool_calls,
        logprobs,
        finish_reason,
    }
}

/// A choice's text split into reasoning and answer as it arrives (everything is answer for a
/// model that does not reason).
pub(crate) struct Reasoning(Option<ReasoningSplitter>);

impl Reasoning {
    pub fn new(generation: &Generation) -> Self {
        Self(generation.reasoning.map(ReasoningSplitter::new))
    }

    pub fn push(&mut self, text: &str) -> Split {
        match &mut self.0 {
            Some(splitter) => splitter.push(text),
            None => Split {
                reasoning: String::new(),
                content: text.to_owned(),
            },
        }
    }

    pub fn finish(&mut self) -> Split {
        self.0
            .as_mut()
            .map(ReasoningSplitter::finish)
            .unwrap_or_default()
    }
}

/// Waits for every choice to finish.
pub(crate) async fn gather(generation: &mut Generation) -> Result<Collected, ApiError> {
    let n = generation.choices as usize;
    let mut splitters: Vec<Reasoning> = (0..n).map(|_| Reasoning::new(generation)).collect();
    let mut reasoning = vec![String::new(); n];
    let mut texts = vec![String::new(); n];
    let mut logprobs: Vec<Vec<TokenLogprob>> = vec![Vec::new(); n];
    let mut reasons: Vec<Option<FinishReason>> = vec![None; n];
    let mut usage = Usage {
        prompt_tokens: generation.prompt_tokens,
        ..Usage::default()
    };
    let mut remaining = n;
    while remaining > 0 {
        let Some(event) = generation.events.recv().await else {
            return Err(ApiError::new(
                modelbay_core::ErrorCode::Internal,
                "the generation ended without finishing every choice",
            ));
        };
        match event {
            GenerationEvent::Text {
                choice,
                text,
                logprobs: l,
            } => {
                let i = choice as usize;
                let split = splitters[i].push(&text);
                reasoning[i].push_str(&split.reasoning);
                // Tokens of a reasoning block are not reported.
                if !split.content.is_empty() {
                    texts[i].push_str(&split.content);
                    logprobs[i].extend(l);
                }
            }
            GenerationEvent::Done {
                choice,
                reason,
                completion_tokens,
                cached_tokens,
            } => {
                let i = choice as usize;
                let split = splitters[i].finish();
                reasoning[i].push_str(&split.reasoning);
                texts[i].push_str(&split.content);
                reasons[i] = Some(reason);
                usage.add(
                    choice,
                    generation.per_prompt,
                    completion_tokens,
                    cached_tokens,
                );
                remaining -= 1;
            }
            GenerationEvent::Failed { message, .. } => {
                return Err(ApiError::new(modelbay_core::ErrorCode::Internal, message))
            }
        }
    }
    let choices = texts
        .into_iter()
        .zip(logprobs)
        .zip(reasons)
        .zip(reasoning)
        .map(|(((text, logprobs), reason), reasoning)| Choice {
            reasoning,
            ..finish(
                text,
                reason.unwrap_or(FinishReason::Stop),
                logprobs,
                generation.tool_parsing.as_ref(),
            )
        })
        .collect();
    Ok(Collected { choices, usage })
}

/// A token's text as OpenAI shows it (invalid UTF-8 of a partial character replaced).
fn token_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Chat's `logprobs.content` entries.
pub(crate) fn chat_logprobs(logprobs: &[TokenLogprob]) -> Value {
    let entry = |bytes: &[u8], logprob: f32| json!({ "token": token_text(bytes), "logprob": logprob, "bytes": bytes });
    let content: Vec<Value> = logprobs
        .iter()
        .map(|l| {
            let mut value = entry(&l.bytes, l.logprob);
            value["top_logprobs"] = l.top.iter().map(|(b, p)| entry(b, *p)).collect();
            value
        })
        .collect();
    json!({ "content": content, "refusal": null })
}

/// Completions' `logprobs`: parallel lists of tokens, their log-probabilities, the top
/// alternatives as maps, and each token's offset in the text (`start` before the first).
pub(crate) fn completion_logprobs(logprobs: &[TokenLogprob], start: usize) -> Value {
    let mut offset = start;
    let mut offsets = Vec::with_capacity(logprobs.len());
    for l in logprobs {
        offsets.push(offset);
        offset += token_text(&l.bytes).len();
    }
    json!({
        "tokens": logprobs.iter().map(|l| token_text(&l.bytes)).collect::<Vec<_>>(),
        "token_logprobs": logprobs.iter().map(|l| l.logprob).collect::<Vec<_>>(),
        "top_logprobs": logprobs
            .iter()
            .map(|l| {
                l.top
                    .iter()
                    .map(|(b, p)| (token_text(b), json!(p)))
                    .collect::<serde_json::Map<_, _>>()
            })
            .collect::<Vec<_>>(),
        "text_offset": offsets,
    })
}

/// A choice's streamed text while tools may be called: text that cannot start a call goes out
/// at once; from the first sign of a call it is held until the choice ends. A plain answer in
/// the generic format (`{"response": "…"}`) goes out as it is written, unwrapped.
#[derive(Default)]
pub(crate) struct Holder {
    held: String,
    /// The whole output so far (the parser needs it all at the end).
    all: String,
    /// Set once text was held as a possible call: nothing more is sent before the end.
    holding: bool,
    /// The generic answer's text sent so far, once the output is known to be one.
    answer_sent: Option<String>,
}

impl Holder {
    /// Text to send now, if any.
    pub fn push(&mut self, text: &str, tools: &ToolParsing) -> Option<String> {
        self.all.push_str(text);
        self.held.push_str(text);
        if !tools.forced && self.all.len() == self.held.len() {
            if let Some(answer) = tools.format.partial_answer(&self.all) {
                // The final content is trimmed: whitespace at either end waits for more text.
                let answer = answer.trim();
                let sent = self.answer_sent.get_or_insert_with(String::new);
                let new = answer.strip_prefix(sent.as_str())?.to_owned();
                sent.push_str(&new);
                return (!new.is_empty()).then_some(new);
            }
        }
        if tools.forced || self.holding || tools.format.may_start_call(&self.held) {
            self.holding |= tools.forced || !self.held.trim().is_empty();
            return None;
        }
        Some(std::mem::take(&mut self.held))
    }

    /// At the end: the content not yet sent and the calls.
    pub fn finish(self, reason: FinishReason, tools: &ToolParsing) -> (String, Choice) {
        let sent = self.all.len() - self.held.len();
        let sent_text = self.all[..sent].trim_start().to_owned();
        let answer_sent = self.answer_sent;
        let choice = finish(self.all, reason, Vec::new(), Some(tools));
        // Content is everything not part of a call; what was sent already is its start.
        let rest = match answer_sent {
            // A generic answer went out unwrapped: the rest is what its final text adds.
            Some(answer) => choice
                .content
                .strip_prefix(answer.as_str())
                .unwrap_or_default(),
            None => match choice.content.strip_prefix(sent_text.as_str()) {
                Some(rest) => rest,
                None => choice.content.get(sent..).unwrap_or_default(),
            },
        }
        .to_owned();
        (rest, choice)
    }
}

/// A streamed response's state: the events ready to send, and what turns a generation's
/// events into more of them.
pub(crate) trait EventStreamer: Send + 'static {
    fn generation(&mut self) -> &mut Generation;
    fn ready(&mut self) -> &mut VecDeque<Event>;
    /// Nothing more will be sent once `ready` is empty.
    fn done(&self) -> bool;
    fn handle(&mut self, event: GenerationEvent);
}

/// Sends what `streamer` makes ready until it is done. A generation that ends without
/// finishing is handled as a failure. Dropping the stream (the client went away) drops the
/// generation, which cancels it.
pub(crate) fn event_stream<S: EventStreamer>(
    streamer: S,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(streamer, |mut s| async move {
        loop {
            if let Some(event) = s.ready().pop_front() {
                return Some((Ok(event), s));
            }
            if s.done() {
                return None;
            }
            match s.generation().events.recv().await {
                Some(event) => s.handle(event),
                None => s.handle(GenerationEvent::Failed {
                    choice: 0,
                    message: "the generation ended without finishing every choice".into(),
                }),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use modelbay_core::generation::ToolFormat;

    use super::*;

    fn generic() -> ToolParsing {
        ToolParsing {
            format: ToolFormat::Generic,
            tools: Vec::new(),
            forced: false,
        }
    }

    /// Streams `pieces` through a holder; returns what went out as it came, and the rest.
    fn streamed(pieces: &[&str], tools: &ToolParsing) -> (Vec<String>, String) {
        let mut holder = Holder::default();
        let sent: Vec<String> = pieces
            .iter()
            .filter_map(|p| holder.push(p, tools))
            .collect();
        let (rest, _) = holder.finish(FinishReason::Stop, tools);
        (sent, rest)
    }

    #[test]
    fn a_generic_answer_streams_unwrapped_as_it_is_written() {
        let pieces = [
            "{\"",
            "response",
            "\": \"",
            " Your order",
            " has",
            " shipped",
            ". ",
            "\\n",
            "\"}",
        ];
        let (sent, rest) = streamed(&pieces, &generic());
        assert_eq!(sent, ["Your order", " has", " shipped", "."]);
        // Trailing whitespace waited for more text; the answer ended, so it is dropped, as in
        // the answer that is not streamed.
        assert_eq!(rest, "");
    }

    #[test]
    fn a_generic_answer_cut_inside_an_escape_sends_it_once_complete() {
        let pieces = ["{\"response\": \"caf", "\\u00", "e9 ok", "\"}"];
        let (sent, rest) = streamed(&pieces, &generic());
        assert_eq!(sent.concat() + &rest, "café ok");
        assert_eq!(sent[0], "caf");
    }

    #[test]
    fn a_generic_call_is_held_to_the_end() {
        let (sent, _) = streamed(&["{\"tool_calls\": [", "]}"], &generic());
        assert!(sent.is_empty());
    }
}
