//! `POST /v1/responses`, OpenAI's Responses API, stateless: `input` as text or items
//! (messages, `function_call`, `function_call_output`), `instructions`, function `tools`,
//! `tool_choice`, `text.format` and sampling fields, answered whole or streamed as the
//! `response.*` events the openai SDK and the Agents SDK read. Nothing is stored, so
//! `previous_response_id` and `store: true` are refused.

use std::{collections::VecDeque, convert::Infallible};

use axum::response::sse::Event;
use futures::Stream;
use modelbay_core::generation::{
    ChatMessage, GenerationEvent, GenerationParams, OutputConstraint, ToolCall, ToolChoice,
};
use modelbay_runtime::{Generation, GenerationRequest, Prompt};
use serde::Deserialize;
use serde_json::{json, Value};

use super::collect::{self, Choice, Holder, Reasoning, Usage};
use crate::error::ApiError;

/// Most input items one request may hold.
const MAX_ITEMS: usize = 4096;

/// The request body; fields the API has and modelbay ignores (`user`, `metadata`,
/// `service_tier`, `truncation`, `include`, `reasoning`) are left to serde to skip.
#[derive(Debug, Deserialize)]
pub struct ResponsesRequest {
    pub model: String,
    pub input: Option<Value>,
    pub instructions: Option<String>,
    pub tools: Option<Value>,
    pub tool_choice: Option<Value>,
    pub parallel_tool_calls: Option<bool>,
    pub text: Option<Value>,
    pub max_output_tokens: Option<i64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_logprobs: Option<Value>,
    pub stream: Option<bool>,
    pub store: Option<bool>,
    pub previous_response_id: Option<String>,
    pub metadata: Option<Value>,
}

/// What the response object repeats from the request.
#[derive(Debug, Clone)]
pub struct Echo {
    pub model: String,
    pub instructions: Option<String>,
    pub tools: Value,
    pub tool_choice: Value,
    pub parallel_tool_calls: bool,
    pub text: Value,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub max_output_tokens: Option<i64>,
    pub metadata: Value,
}

impl ResponsesRequest {
    pub fn streaming(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// The generation to run and what the response repeats.
    pub fn into_generation(self) -> Result<(GenerationRequest, Echo), ApiError> {
        if self.previous_response_id.is_some() {
            return Err(ApiError::invalid(
                "'previous_response_id' is not supported: this server keeps no responses; send \
                 the whole conversation as 'input'",
            ));
        }
        if self.store == Some(true) {
            return Err(ApiError::invalid(
                "'store' must be false: this server keeps no responses",
            ));
        }
        let mut messages = Vec::new();
        if let Some(instructions) = &self.instructions {
            messages.push(ChatMessage::new("system", instructions.clone()));
        }
        messages.extend(input_messages(self.input.as_ref())?);
        if messages.iter().all(|m| m.role == "system") {
            return Err(ApiError::invalid("'input' must hold at least one message"));
        }
        let tools = super::tools::tools(self.tools.as_ref())?;
        let tool_choice = super::tools::tool_choice(self.tool_choice.as_ref(), &tools)?;
        let format = self
            .text
            .as_ref()
            .and_then(|t| t.get("format"))
            .filter(|f| !f.is_null());
        let response_format = match format {
            None => None,
            Some(f) => match f.get("type").and_then(Value::as_str) {
                Some("text") => None,
                Some("json_object") => Some(OutputConstraint::json(&json!({ "type": "object" }))),
                // The Responses API puts name, schema and strict beside the type.
                Some("json_schema") => Some(super::tools::schema_constraint("text.format", f)?),
                _ => {
                    return Err(ApiError::invalid(
                        "'text.format.type' must be text, json_object or json_schema",
                    ))
                }
            },
        };
        let max_tokens = match self.max_output_tokens {
            None => None,
            Some(n) if n >= 1 => Some(u32::try_from(n).unwrap_or(u32::MAX)),
            Some(n) => {
                return Err(ApiError::invalid(format!(
                    "'max_output_tokens' must be at least 1, got {n}"
                )))
            }
        };
        let params = GenerationParams {
            temperature: self.temperature.map(|t| t as f32),
            top_p: self.top_p.map(|t| t as f32),
            max_tokens,
            ..GenerationParams::default()
        };
        params.validate()?;
        let logprobs = super::request::logprobs(
            super::request::Endpoint::Chat,
            self.top_logprobs.as_ref().map(|_| &Value::Bool(true)),
            self.top_logprobs.as_ref(),
        )?;
        let echo = Echo {
            model: self.model.clone(),
            instructions: self.instructions.clone(),
            tools: tools
                .iter()
                .map(|t| {
                    json!({ "type": "function", "name": t.name, "description": t.description,
                            "parameters": t.parameters, "strict": true })
                })
                .collect(),
            tool_choice: match &tool_choice {
                ToolChoice::None => json!("none"),
                ToolChoice::Auto => json!("auto"),
                ToolChoice::Required => json!("required"),
                ToolChoice::Function(name) => json!({ "type": "function", "name": name }),
            },
            parallel_tool_calls: self.parallel_tool_calls.unwrap_or(true),
            text: json!({ "format": format.cloned().unwrap_or(json!({ "type": "text" })) }),
            temperature: self.temperature,
            top_p: self.top_p,
            max_output_tokens: self.max_output_tokens,
            metadata: self.metadata.clone().unwrap_or(json!({})),
        };
        let request = GenerationRequest {
            params,
            tools,
            tool_choice,
            parallel_tool_calls: echo.parallel_tool_calls,
            response_format,
            logprobs,
            ..GenerationRequest::new(vec![Prompt::Chat(messages)])
        };
        Ok((request, echo))
    }
}

/// The text of a message's content: a string, or parts of type `input_text`/`output_text`.
fn content_text(at: &str, content: Option<&Value>) -> Result<String, ApiError> {
    match content {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for part in parts {
                match (
                    part.get("type").and_then(Value::as_str),
                    part.get("text").and_then(Value::as_str),
                ) {
                    (Some("input_text" | "output_text" | "text"), Some(t)) => text.push_str(t),
                    (kind, _) => {
                        return Err(ApiError::invalid(format!(
                            "{at} has a '{}' content part; only text is supported",
                            kind.unwrap_or("untyped")
                        )))
                    }
                }
            }
            Ok(text)
        }
        _ => Err(ApiError::invalid(format!("{at} has no text content"))),
    }
}

/// `input` as chat messages: consecutive `function_call` items become one assistant turn.
fn input_messages(input: Option<&Value>) -> Result<Vec<ChatMessage>, ApiError> {
    let items = match input {
        None | Some(Value::Null) => return Err(ApiError::invalid("'input' is required")),
        Some(Value::String(text)) => return Ok(vec![ChatMessage::new("user", text.clone())]),
        Some(Value::Array(items)) => items,
        Some(_) => {
            return Err(ApiError::invalid(
                "'input' must be a string or an array of items",
            ))
        }
    };
    if items.len() > MAX_ITEMS {
        return Err(ApiError::invalid(format!(
            "'input' has {} items; at most {MAX_ITEMS} are allowed",
            items.len()
        )));
    }
    let mut messages: Vec<ChatMessage> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("input[{i}]");
        let kind = item
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("message");
        let text_field = |name: &str| {
            item.get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| ApiError::invalid(format!("{at}.{name} must be a string")))
        };
        match kind {
            "message" => {
                let role = match item.get("role").and_then(Value::as_str) {
                    Some("system" | "developer") => "system",
                    Some("user") => "user",
                    Some("assistant") => "assistant",
                    _ => {
                        return Err(ApiError::invalid(format!(
                            "{at}.role must be system, developer, user or assistant"
                        )))
                    }
                };
                messages.push(ChatMessage::new(
                    role,
                    content_text(&at, item.get("content"))?,
                ));
            }
            "function_call" => {
                let call = ToolCall {
                    id: super::tools::call_id(i, text_field("call_id")?)?,
                    name: text_field("name")?,
                    arguments: text_field("arguments")?,
                };
                match messages.last_mut() {
                    Some(last) if last.role == "assistant" && last.content.is_empty() => {
                        last.tool_calls.push(call)
                    }
                    _ => messages.push(ChatMessage {
                        role: "assistant".into(),
                        tool_calls: vec![call],
                        ..ChatMessage::default()
                    }),
                }
            }
            "function_call_output" => {
                let output = match item.get("output") {
                    Some(Value::String(s)) => s.clone(),
                    Some(other @ Value::Array(_)) => content_text(&at, Some(other))?,
                    _ => return Err(ApiError::invalid(format!("{at}.output must be a string"))),
                };
                messages.push(ChatMessage {
                    role: "tool".into(),
                    content: output,
                    tool_call_id: Some(super::tools::call_id(i, text_field("call_id")?)?),
                    ..ChatMessage::default()
                });
            }
            // Reasoning summaries from another model carry nothing this one can use.
            "reasoning" => {}
            other => {
                return Err(ApiError::invalid(format!(
                    "{at}.type '{other}' is not supported; use message, function_call or \
                     function_call_output"
                )))
            }
        }
    }
    Ok(messages)
}

/// Identifiers of one response and its output items.
#[derive(Debug, Clone)]
pub struct Ids {
    pub response: String,
    pub message: String,
    pub reasoning: String,
    pub created: u64,
}

impl Ids {
    pub fn new() -> Self {
        let id = || uuid::Uuid::new_v4().simple().to_string();
        Self {
            response: format!("resp_{}", id()),
            message: format!("msg_{}", id()),
            reasoning: format!("rs_{}", id()),
            created: super::response::now(),
        }
    }
}

fn message_item(ids: &Ids, text: &str, status: &str, logprobs: Value) -> Value {
    let content = if status == "in_progress" {
        json!([])
    } else {
        json!([{ "type": "output_text", "text": text, "annotations": [], "logprobs": logprobs }])
    };
    json!({ "type": "message", "id": ids.message, "status": status, "role": "assistant",
            "content": content })
}

/// A reasoning model's `<think>` text, as a `reasoning` item with `reasoning_text` content.
fn reasoning_item(ids: &Ids, text: &str, status: &str) -> Value {
    let content = if status == "in_progress" {
        json!([])
    } else {
        json!([{ "type": "reasoning_text", "text": text }])
    };
    json!({ "type": "reasoning", "id": ids.reasoning, "status": status, "summary": [],
            "content": content })
}

fn call_item(call: &ToolCall, arguments: &str, status: &str) -> Value {
    json!({ "type": "function_call", "id": format!("fc_{}", &call.id), "call_id": call.id,
            "name": call.name, "arguments": arguments, "status": status })
}

/// The response object around `output`.
fn response_object(
    ids: &Ids,
    echo: &Echo,
    status: &str,
    output: Vec<Value>,
    usage: Option<&Usage>,
    incomplete: bool,
) -> Value {
    json!({
        "id": ids.response,
        "object": "response",
        "created_at": ids.created,
        "status": status,
        "error": null,
        "incomplete_details": if incomplete { json!({ "reason": "max_output_tokens" }) } else { Value::Null },
        "instructions": echo.instructions,
        "max_output_tokens": echo.max_output_tokens,
        "model": echo.model,
        "output": output,
        "parallel_tool_calls": echo.parallel_tool_calls,
        "previous_response_id": null,
        "reasoning": { "effort": null, "summary": null },
        "store": false,
        "temperature": echo.temperature,
        "text": echo.text,
        "tool_choice": echo.tool_choice,
        "tools": echo.tools,
        "top_p": echo.top_p,
        "truncation": "disabled",
        "usage": usage.map(Usage::responses_json),
        "metadata": echo.metadata,
    })
}

fn logprobs_json(choice: &Choice) -> Value {
    collect::chat_logprobs(&choice.logprobs)["content"].clone()
}

/// The output items of a finished choice: its reasoning (if any), its text as a message (if
/// any), then its calls.
fn output_items(ids: &Ids, choice: &Choice) -> Vec<Value> {
    let mut output = Vec::new();
    if !choice.reasoning.is_empty() {
        output.push(reasoning_item(ids, &choice.reasoning, "completed"));
    }
    if !choice.content.is_empty() || choice.tool_calls.is_empty() {
        output.push(message_item(
            ids,
            &choice.content,
            "completed",
            logprobs_json(choice),
        ));
    }
    output.extend(
        choice
            .tool_calls
            .iter()
            .map(|c| call_item(c, &c.arguments, "completed")),
    );
    output
}

/// Waits for the generation and builds the whole response object.
pub async fn collect(
    ids: &Ids,
    echo: &Echo,
    mut generation: Generation,
) -> Result<Value, ApiError> {
    let collected = collect::gather(&mut generation).await?;
    let choice = collected.choices.into_iter().next().unwrap_or_default();
    let incomplete = choice.finish_reason == "length";
    let status = if incomplete {
        "incomplete"
    } else {
        "completed"
    };
    Ok(response_object(
        ids,
        echo,
        status,
        output_items(ids, &choice),
        Some(&collected.usage),
        incomplete,
    ))
}

/// State of a streamed response.
struct Streamer {
    ids: Ids,
    echo: Echo,
    generation: Generation,
    ready: VecDeque<Event>,
    sequence: u64,
    holder: Holder,
    reasoning: Reasoning,
    /// The reasoning item is open (its text streams as deltas).
    reasoning_open: bool,
    reasoning_text: String,
    /// The message item is open (its text streams as deltas), at this output index.
    message_open: bool,
    message_index: usize,
    text: String,
    output: Vec<Value>,
    done: bool,
}

impl Streamer {
    fn emit(&mut self, kind: &str, mut data: Value) {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        self.ready
            .push_back(Event::default().event(kind).data(data.to_string()));
    }

    fn reasoning_delta(&mut self, delta: &str) {
        if delta.is_empty() {
            return;
        }
        if !self.reasoning_open {
            self.reasoning_open = true;
            let item = reasoning_item(&self.ids, "", "in_progress");
            self.emit(
                "response.output_item.added",
                json!({ "output_index": 0, "item": item }),
            );
        }
        self.reasoning_text.push_str(delta);
        self.emit(
            "response.reasoning_text.delta",
            json!({ "item_id": self.ids.reasoning, "output_index": 0, "content_index": 0,
                    "delta": delta }),
        );
    }

    fn close_reasoning(&mut self) {
        if !std::mem::take(&mut self.reasoning_open) {
            return;
        }
        let text = std::mem::take(&mut self.reasoning_text);
        self.emit(
            "response.reasoning_text.done",
            json!({ "item_id": self.ids.reasoning, "output_index": 0, "content_index": 0,
                    "text": text }),
        );
        let item = reasoning_item(&self.ids, &text, "completed");
        self.emit(
            "response.output_item.done",
            json!({ "output_index": 0, "item": item }),
        );
        self.output.push(item);
    }

    /// The answer's text, unless it may be the start of a tool call.
    fn content(&mut self, text: String) {
        let send = match &self.generation.tool_parsing {
            Some(tools) => self.holder.push(&text, tools),
            None => Some(text),
        };
        if let Some(text) = send.filter(|t| !t.is_empty()) {
            self.text_delta(&text);
        }
    }

    fn open_message(&mut self) {
        if self.message_open {
            return;
        }
        self.close_reasoning();
        self.message_open = true;
        self.message_index = self.output.len();
        let item = message_item(&self.ids, "", "in_progress", json!([]));
        self.emit(
            "response.output_item.added",
            json!({ "output_index": self.message_index, "item": item }),
        );
        self.emit(
            "response.content_part.added",
            json!({ "item_id": self.ids.message, "output_index": self.message_index,
                    "content_index": 0,
                    "part": { "type": "output_text", "text": "", "annotations": [] } }),
        );
    }

    fn text_delta(&mut self, delta: &str) {
        self.open_message();
        self.text.push_str(delta);
        self.emit(
            "response.output_text.delta",
            json!({ "item_id": self.ids.message, "output_index": self.message_index,
                    "content_index": 0, "delta": delta, "logprobs": [] }),
        );
    }

    fn close_message(&mut self) {
        self.close_reasoning();
        if !self.message_open {
            return;
        }
        let index = self.message_index;
        let text = self.text.clone();
        let part =
            json!({ "type": "output_text", "text": text, "annotations": [], "logprobs": [] });
        self.emit(
            "response.output_text.done",
            json!({ "item_id": self.ids.message, "output_index": index, "content_index": 0,
                    "text": text, "logprobs": [] }),
        );
        self.emit(
            "response.content_part.done",
            json!({ "item_id": self.ids.message, "output_index": index, "content_index": 0,
                    "part": part }),
        );
        let item = message_item(&self.ids, &text, "completed", json!([]));
        self.emit(
            "response.output_item.done",
            json!({ "output_index": index, "item": item }),
        );
        self.output.push(item);
    }
}

/// The response as `response.*` Server-Sent Events, from `response.created` to
/// `response.completed` (or `response.incomplete` / `response.failed`).
pub fn stream(
    ids: Ids,
    echo: Echo,
    generation: Generation,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let reasoning = Reasoning::new(&generation);
    let mut streamer = Streamer {
        ids,
        echo,
        generation,
        ready: VecDeque::new(),
        sequence: 0,
        holder: Holder::default(),
        reasoning,
        reasoning_open: false,
        reasoning_text: String::new(),
        message_open: false,
        message_index: 0,
        text: String::new(),
        output: Vec::new(),
        done: false,
    };
    let created = response_object(
        &streamer.ids,
        &streamer.echo,
        "in_progress",
        Vec::new(),
        None,
        false,
    );
    streamer.emit("response.created", json!({ "response": created.clone() }));
    streamer.emit("response.in_progress", json!({ "response": created }));
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
            GenerationEvent::Text { text, .. } => {
                let split = self.reasoning.push(&text);
                self.reasoning_delta(&split.reasoning);
                if !split.content.is_empty() {
                    self.content(split.content);
                }
            }
            GenerationEvent::Done {
                reason,
                completion_tokens,
                cached_tokens,
                ..
            } => {
                let split = self.reasoning.finish();
                self.reasoning_delta(&split.reasoning);
                if !split.content.is_empty() {
                    self.content(split.content);
                }
                let choice = match self.generation.tool_parsing.clone() {
                    Some(tools) => {
                        let (rest, choice) =
                            std::mem::take(&mut self.holder).finish(reason, &tools);
                        if !rest.is_empty() {
                            self.text_delta(&rest);
                        }
                        choice
                    }
                    None => collect::finish(String::new(), reason, Vec::new(), None),
                };
                if choice.tool_calls.is_empty() {
                    self.open_message();
                }
                self.close_message();
                for call in &choice.tool_calls {
                    let index = self.output.len();
                    let item_id = format!("fc_{}", call.id);
                    self.emit(
                        "response.output_item.added",
                        json!({ "output_index": index, "item": call_item(call, "", "in_progress") }),
                    );
                    self.emit(
                        "response.function_call_arguments.delta",
                        json!({ "item_id": item_id, "output_index": index, "delta": call.arguments }),
                    );
                    self.emit(
                        "response.function_call_arguments.done",
                        json!({ "item_id": item_id, "output_index": index, "arguments": call.arguments }),
                    );
                    let item = call_item(call, &call.arguments, "completed");
                    self.emit(
                        "response.output_item.done",
                        json!({ "output_index": index, "item": item }),
                    );
                    self.output.push(item);
                }
                let usage = Usage {
                    prompt_tokens: self.generation.prompt_tokens,
                    completion_tokens,
                    cached_tokens,
                };
                let incomplete = choice.finish_reason == "length";
                let (kind, status) = if incomplete {
                    ("response.incomplete", "incomplete")
                } else {
                    ("response.completed", "completed")
                };
                let response = response_object(
                    &self.ids,
                    &self.echo,
                    status,
                    std::mem::take(&mut self.output),
                    Some(&usage),
                    incomplete,
                );
                self.emit(kind, json!({ "response": response }));
                self.done = true;
            }
            GenerationEvent::Failed { message, .. } => {
                tracing::error!(error = %message, "generation failed mid-stream");
                let mut response =
                    response_object(&self.ids, &self.echo, "failed", Vec::new(), None, false);
                response["error"] = json!({
                    "code": "server_error",
                    "message": "internal error; the server log has the details",
                });
                self.emit("response.failed", json!({ "response": response }));
                self.done = true;
            }
        }
    }
}
