//! Language models through the OpenAI API, with the real SmolLM2-135M-Instruct (Q4_1 GGUF).

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};

use crate::{
    clients::smollm2,
    common::{client_with_key, TestServer},
};

/// A server (one decode thread, so parallel tests share the cores) with SmolLM2 as `chat`.
pub(crate) async fn llm_server(extra: &[&str]) -> TestServer {
    let mut args = vec!["--llm-threads", "1"];
    args.extend_from_slice(extra);
    let server = TestServer::start_with(&args).await;
    let (status, body) = server.push_bytes("chat", "", smollm2()).await;
    assert_eq!(status, 201, "{body}");
    server
}

pub(crate) fn chat_body(content: &str, max_tokens: u32) -> Value {
    json!({
        "model": "chat",
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "temperature": 0,
    })
}

pub(crate) async fn post(server: &TestServer, path: &str, body: &Value) -> (u16, Value) {
    server.post_json(path, body).await
}

/// The content of a whole chat completion.
pub(crate) fn content(body: &Value) -> String {
    body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_else(|| panic!("no content in {body}"))
        .to_owned()
}

/// A streamed response: every `data:` payload, with when it arrived.
pub(crate) async fn stream(
    server: &TestServer,
    path: &str,
    body: &Value,
) -> Vec<(Duration, String)> {
    let started = Instant::now();
    let response = server
        .http
        .post(server.url(path))
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut events = Vec::new();
    let mut buffer = String::new();
    let mut bytes = response.bytes_stream();
    while let Some(chunk) = bytes.next().await {
        buffer.push_str(std::str::from_utf8(&chunk.unwrap()).expect("chunks are UTF-8"));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            for line in event.lines() {
                if let Some(data) = line.strip_prefix("data: ") {
                    events.push((started.elapsed(), data.to_owned()));
                }
            }
        }
    }
    events
}

pub(crate) fn streamed_text(events: &[(Duration, String)], chat: bool) -> String {
    events
        .iter()
        .filter(|(_, data)| data != "[DONE]")
        .map(|(_, data)| serde_json::from_str::<Value>(data).unwrap())
        .filter_map(|chunk| {
            let choice = chunk["choices"].get(0)?.clone();
            let text = if chat {
                choice["delta"]["content"].as_str()
            } else {
                choice["text"].as_str()
            };
            text.map(str::to_owned)
        })
        .collect()
}

#[tokio::test]
async fn gguf_push_records_header_details_and_models_lists_aliases() {
    let server = llm_server(&[]).await;
    let (status, version) = server.get("/api/v1/models/chat/versions/1").await;
    assert_eq!(status, 200, "{version}");
    assert_eq!(version["format"], "gguf");
    let details = &version["details"];
    assert_eq!(details["architecture"], "llama");
    assert_eq!(details["quantization"], "Q4_1");
    assert_eq!(details["context_length"], 8192);
    assert_eq!(details["chat_template"], true);
    assert_eq!(details["parameters"], 134_515_008);

    server.promote("chat", 1).await;
    let (status, models) = server.get("/v1/models").await;
    assert_eq!(status, 200);
    assert_eq!(models["object"], "list");
    assert_eq!(server.openai_model_ids().await, ["chat", "chat@production"]);
    assert_eq!(models["data"][0]["object"], "model");

    // Addressed through its alias, the response says which version served it.
    let mut body = chat_body("Hi", 2);
    body["model"] = json!("chat@production");
    let response = server
        .http
        .post(server.url("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-modelbay-model-version"], "1");
    assert_eq!(response.headers()["x-modelbay-alias"], "production");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["model"], "chat@production");

    // A GGUF file cut short is refused at push, not at first use.
    let mut cut = smollm2();
    cut.truncate(4096);
    let (status, body) = server.push_bytes("broken", "", cut).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("GGUF"), "{body}");
}

#[tokio::test]
async fn chat_and_completions_answer_in_openai_shape_with_usage() {
    let server = llm_server(&[]).await;
    let (status, body) = post(
        &server,
        "/v1/chat/completions",
        &chat_body("What is the capital of France?", 24),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "chat");
    assert!(body["created"].as_u64().unwrap() > 1_700_000_000);
    let choice = &body["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert!(!content(&body).is_empty());
    let usage = &body["usage"];
    let (prompt, completion) = (
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["completion_tokens"].as_u64().unwrap(),
    );
    // SmolLM2's template adds its default system prompt: the prompt is well over the question.
    assert!(prompt > 20, "{usage}");
    assert!((1..=24).contains(&completion), "{usage}");
    assert_eq!(usage["total_tokens"].as_u64().unwrap(), prompt + completion);
    match choice["finish_reason"].as_str().unwrap() {
        "length" => assert_eq!(completion, 24),
        "stop" => assert!(completion < 24),
        other => panic!("finish_reason {other}"),
    }

    // max_tokens reached → "length", with exactly that many tokens.
    let (status, body) = post(
        &server,
        "/v1/completions",
        &json!({"model": "chat", "prompt": "One, two, three, four,", "max_tokens": 6, "temperature": 0}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["id"].as_str().unwrap().starts_with("cmpl-"));
    assert_eq!(body["object"], "text_completion");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(body["usage"]["completion_tokens"], 6);
    assert!(!body["choices"][0]["text"].as_str().unwrap().is_empty());
    // `max_completion_tokens` is the newer name of the same limit.
    let mut newer = chat_body("Count to ten.", 0);
    newer.as_object_mut().unwrap().remove("max_tokens");
    newer["max_completion_tokens"] = json!(3);
    let (status, body) = post(&server, "/v1/chat/completions", &newer).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["usage"]["completion_tokens"], 3);

    // Penalties change a repetitive continuation.
    let repetitive = json!({"model": "chat", "prompt": "ha ha ha ha ha ha ha ha", "max_tokens": 12, "temperature": 0});
    let (_, plain) = post(&server, "/v1/completions", &repetitive).await;
    let mut penalised = repetitive.clone();
    penalised["frequency_penalty"] = json!(2.0);
    penalised["presence_penalty"] = json!(2.0);
    let (status, penalised) = post(&server, "/v1/completions", &penalised).await;
    assert_eq!(status, 200, "{penalised}");
    assert_ne!(
        plain["choices"][0]["text"], penalised["choices"][0]["text"],
        "penalties made no difference"
    );

    // Several prompts, several choices each: indices follow prompt order.
    let (status, body) = post(
        &server,
        "/v1/completions",
        &json!({"model": "chat", "prompt": ["Red, green,", "Monday, Tuesday,"], "n": 2,
                "max_tokens": 3, "temperature": 0.8, "seed": 7}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let indices: Vec<u64> = body["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indices, [0, 1, 2, 3]);
    assert_eq!(body["usage"]["completion_tokens"], 12);
}

#[tokio::test]
async fn streaming_sends_tokens_as_they_come_then_usage_then_done() {
    let server = llm_server(&[]).await;
    let mut body = chat_body("Write a short story about a robot.", 48);
    let (status, whole) = post(&server, "/v1/chat/completions", &body).await;
    assert_eq!(status, 200, "{whole}");

    body["stream"] = json!(true);
    body["stream_options"] = json!({ "include_usage": true });
    let events = stream(&server, "/v1/chat/completions", &body).await;
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|(_, data)| serde_json::from_str(data).unwrap())
        .collect();
    assert!(chunks.len() > 10, "{} chunks", chunks.len());
    let id = chunks[0]["id"].as_str().unwrap();
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], id);
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    // The streamed text is the text of the same request unstreamed (temperature 0).
    assert_eq!(streamed_text(&events, true), content(&whole));
    // Then one chunk with the finish reason, then usage with no choices.
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(
        finish["choices"][0]["finish_reason"],
        whole["choices"][0]["finish_reason"]
    );
    let usage = &chunks[chunks.len() - 1];
    assert_eq!(usage["choices"], json!([]));
    for field in ["prompt_tokens", "completion_tokens", "total_tokens"] {
        assert_eq!(usage["usage"][field], whole["usage"][field], "{field}");
    }
    // The same prompt again reused its KV cache (all of it but the last token).
    assert_eq!(whole["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(
        usage["usage"]["prompt_tokens_details"]["cached_tokens"],
        json!(whole["usage"]["prompt_tokens"].as_u64().unwrap() - 1)
    );
    // Tokens reach the client while the rest is still being generated.
    let first = events[0].0;
    let last = events.last().unwrap().0;
    assert!(
        first * 2 < last,
        "first chunk at {first:?}, last at {last:?}: the response was buffered"
    );

    // Completions stream too, and without include_usage there is no usage chunk.
    let events = stream(
        &server,
        "/v1/completions",
        &json!({"model": "chat", "prompt": "Once upon a time", "max_tokens": 8,
                "temperature": 0, "stream": true}),
    )
    .await;
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|(_, data)| serde_json::from_str(data).unwrap())
        .collect();
    assert!(chunks.iter().all(|c| c["object"] == "text_completion"));
    assert!(chunks.iter().all(|c| c.get("usage").is_none()));
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "length"
    );
}

#[tokio::test]
async fn multibyte_characters_are_never_split_in_a_stream() {
    let server = llm_server(&[]).await;
    let body = json!({"model": "chat", "prompt": "Emoji and accents: 😀 😃 😄 café, naïve, 東京,",
                      "max_tokens": 40, "temperature": 0, "stream": true});
    let events = stream(&server, "/v1/completions", &body).await;
    let text = streamed_text(&events, false);
    let mut whole = body.clone();
    whole["stream"] = json!(false);
    let (_, whole) = post(&server, "/v1/completions", &whole).await;
    assert_eq!(text, whole["choices"][0]["text"].as_str().unwrap());
    // Only a character that max_tokens cut off at the very end may be incomplete.
    let complete = match whole["choices"][0]["finish_reason"].as_str() {
        Some("length") => text.trim_end_matches('\u{fffd}'),
        _ => &text,
    };
    assert!(
        !complete.contains('\u{fffd}'),
        "a character was broken: {text:?}"
    );
    assert!(!text.is_ascii(), "the model wrote only ASCII: {text:?}");
}

#[tokio::test]
async fn stop_sequences_end_generation_before_the_stop_text() {
    let server = llm_server(&[]).await;
    let prompt = "List the days of the week: Monday, Tuesday,";
    let request = |stop: Value| json!({"model": "chat", "prompt": prompt, "max_tokens": 30, "temperature": 0, "stop": stop});
    let (status, free) = post(&server, "/v1/completions", &request(Value::Null)).await;
    assert_eq!(status, 200, "{free}");
    let free_text = free["choices"][0]["text"].as_str().unwrap().to_owned();
    // Stop at the first word of length > 3 that the free run wrote after its first characters.
    let word = free_text
        .split(|c: char| !c.is_alphanumeric())
        .find(|w| w.len() > 3)
        .unwrap_or_else(|| panic!("no word to stop at in {free_text:?}"))
        .to_owned();
    let expected = &free_text[..free_text.find(&word).unwrap()];
    for stop in [json!(word), json!(["#never#", word])] {
        let (status, body) = post(&server, "/v1/completions", &request(stop)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body["choices"][0]["text"], expected,
            "free run: {free_text:?}"
        );
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
    }
    // Streamed, the stop text is cut the same way.
    let mut streamed = request(json!([word]));
    streamed["stream"] = json!(true);
    let events = stream(&server, "/v1/completions", &streamed).await;
    assert_eq!(streamed_text(&events, false), expected);
}

#[tokio::test]
async fn temperature_zero_is_deterministic_alone_and_batched() {
    let server = llm_server(&["--llm-max-sequences", "4"]).await;
    let target = chat_body("Explain what a neural network is.", 32);
    let (_, alone) = post(&server, "/v1/chat/completions", &target).await;
    let alone = content(&alone);
    let others = [
        "Tell me a joke about cats.",
        "What is the boiling point of water?",
        "Name three colours.",
    ];
    // The others start first and are longer, so the target joins a running batch.
    let mut bodies: Vec<Value> = others.iter().map(|q| chat_body(q, 48)).collect();
    bodies.push(target.clone());
    let results = futures::future::join_all(
        bodies
            .iter()
            .map(|body| post(&server, "/v1/chat/completions", body)),
    )
    .await;
    for (status, body) in &results {
        assert_eq!(*status, 200, "{body}");
    }
    assert_eq!(content(&results[3].1), alone);

    // Sampling with a seed is repeatable too.
    let mut seeded = target.clone();
    seeded["temperature"] = json!(0.9);
    seeded["seed"] = json!(1234);
    let (_, a) = post(&server, "/v1/chat/completions", &seeded).await;
    let (_, b) = post(&server, "/v1/chat/completions", &seeded).await;
    assert_eq!(content(&a), content(&b));
}

#[tokio::test]
async fn a_disconnected_stream_frees_its_slot_and_a_full_queue_gets_503() {
    let server = llm_server(&[
        "--llm-max-sequences",
        "1",
        "--llm-max-waiting",
        "1",
        "--llm-context",
        "2048",
    ])
    .await;
    // A long generation takes the only slot; read one chunk, then hang up.
    let long = json!({"model": "chat", "prompt": "Write a very long essay about the sea.",
                      "max_tokens": 2000, "temperature": 0, "stream": true});
    let response = server
        .http
        .post(server.url("/v1/completions"))
        .json(&long)
        .send()
        .await
        .unwrap();
    let mut chunks = response.bytes_stream();
    chunks.next().await.unwrap().unwrap();

    // While it runs, one request may wait; the next one is refused with 503 and Retry-After.
    let waiting = tokio::spawn({
        let (http, url) = (server.http.clone(), server.url("/v1/completions"));
        async move {
            let body = json!({"model": "chat", "prompt": "Hi", "max_tokens": 2});
            http.post(url).json(&body).send().await
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused = server
        .http
        .post(server.url("/v1/completions"))
        .json(&json!({"model": "chat", "prompt": "Hi", "max_tokens": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("capacity"));

    // Hanging up frees the slot: the waiting request runs long before 2000 tokens could have.
    drop(chunks);
    let started = Instant::now();
    let waited = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("the waiting request finished once the stream was cancelled")
        .unwrap()
        .unwrap();
    assert_eq!(waited.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(20));
    let (status, body) = post(&server, "/v1/chat/completions", &chat_body("Hi", 3)).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn bad_requests_get_openai_errors_never_a_5xx() {
    let server = llm_server(&["--llm-context", "256", "--llm-max-waiting", "8"]).await;
    let (status, body) = server.push("tabular", "breast_cancer_lr.onnx").await;
    assert_eq!(status, 201, "{body}");
    let long_prompt = "word ".repeat(400);
    let user = |content: &str| json!([{"role": "user", "content": content}]);
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "unknown model",
            json!({"model": "nope", "messages": user("hi")}),
            404,
            "not found",
        ),
        (
            "bad model name",
            json!({"model": "No Such!", "messages": user("hi")}),
            400,
            "name",
        ),
        (
            "prompt longer than the context",
            json!({"model": "chat", "prompt": long_prompt}),
            400,
            "context",
        ),
        (
            "prompt and max_tokens over the context",
            json!({"model": "chat", "prompt": "hi", "max_tokens": 1000}),
            400,
            "max_tokens",
        ),
        (
            "negative max_tokens",
            json!({"model": "chat", "messages": user("hi"), "max_tokens": -1}),
            400,
            "max_tokens",
        ),
        (
            "zero max_tokens",
            json!({"model": "chat", "messages": user("hi"), "max_tokens": 0}),
            400,
            "max_tokens",
        ),
        (
            "temperature too high",
            json!({"model": "chat", "messages": user("hi"), "temperature": 2.5}),
            400,
            "temperature",
        ),
        (
            "temperature negative",
            json!({"model": "chat", "messages": user("hi"), "temperature": -0.1}),
            400,
            "temperature",
        ),
        (
            "top_p above 1",
            json!({"model": "chat", "messages": user("hi"), "top_p": 1.5}),
            400,
            "top_p",
        ),
        (
            "presence_penalty out of range",
            json!({"model": "chat", "messages": user("hi"), "presence_penalty": 3}),
            400,
            "presence_penalty",
        ),
        (
            "frequency_penalty out of range",
            json!({"model": "chat", "messages": user("hi"), "frequency_penalty": -9}),
            400,
            "frequency_penalty",
        ),
        (
            "empty messages",
            json!({"model": "chat", "messages": []}),
            400,
            "at least one message",
        ),
        (
            "wrong role",
            json!({"model": "chat", "messages": [{"role": "wizard", "content": "hi"}]}),
            400,
            "role",
        ),
        (
            "message without content",
            json!({"model": "chat", "messages": [{"role": "user"}]}),
            400,
            "no content",
        ),
        (
            "image content",
            json!({"model": "chat", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}),
            400,
            "image_url",
        ),
        (
            "n zero",
            json!({"model": "chat", "messages": user("hi"), "n": 0}),
            400,
            "'n'",
        ),
        (
            "n too large for the model",
            json!({"model": "chat", "messages": user("hi"), "n": 10}),
            400,
            "at most",
        ),
        (
            "messages not a list",
            json!({"model": "chat", "messages": "hi"}),
            400,
            "wrong type (expected a sequence)",
        ),
        (
            "missing model",
            json!({"messages": user("hi")}),
            400,
            "model",
        ),
        ("missing prompt", json!({"model": "chat"}), 400, "prompt"),
        (
            "empty prompt",
            json!({"model": "chat", "prompt": ""}),
            400,
            "prompt",
        ),
        (
            "token out of vocabulary",
            json!({"model": "chat", "prompt": [1, 99999999]}),
            400,
            "vocabulary",
        ),
        (
            "negative top_k",
            json!({"model": "chat", "prompt": "hi", "top_k": -1}),
            400,
            "'top_k'",
        ),
        (
            "min_p above 1",
            json!({"model": "chat", "prompt": "hi", "min_p": 2}),
            400,
            "'min_p'",
        ),
        (
            "typical_p zero",
            json!({"model": "chat", "prompt": "hi", "typical_p": 0}),
            400,
            "'typical_p'",
        ),
        (
            "repeat_penalty zero",
            json!({"model": "chat", "prompt": "hi", "repeat_penalty": 0}),
            400,
            "'repetition_penalty'",
        ),
        (
            "repeat_last_n below -1",
            json!({"model": "chat", "prompt": "hi", "repeat_last_n": -2}),
            400,
            "'repeat_last_n'",
        ),
        (
            "logit_bias key not a token id",
            json!({"model": "chat", "prompt": "hi", "logit_bias": {"hello": 1}}),
            400,
            "'logit_bias' keys",
        ),
        (
            "logit_bias beyond 100",
            json!({"model": "chat", "prompt": "hi", "logit_bias": {"5": 500}}),
            400,
            "'logit_bias' values",
        ),
        (
            "logit_bias token out of vocabulary",
            json!({"model": "chat", "prompt": "hi", "logit_bias": {"99999999": 1}}),
            400,
            "vocabulary",
        ),
        (
            "too many stops",
            json!({"model": "chat", "prompt": "hi", "stop": vec!["x"; 17]}),
            400,
            "stop",
        ),
        (
            "logprobs not a boolean",
            json!({"model": "chat", "messages": user("hi"), "logprobs": 3}),
            400,
            "'logprobs' must be true or false",
        ),
        (
            "top_logprobs over 20",
            json!({"model": "chat", "messages": user("hi"), "logprobs": true, "top_logprobs": 21}),
            400,
            "'top_logprobs' must be an integer between 0 and 20",
        ),
        (
            "top_logprobs without logprobs",
            json!({"model": "chat", "messages": user("hi"), "top_logprobs": 2}),
            400,
            "needs 'logprobs'",
        ),
        (
            "completion logprobs over 20",
            json!({"model": "chat", "prompt": "hi", "logprobs": 50}),
            400,
            "'logprobs' must be an integer",
        ),
        (
            "a tool without a name",
            json!({"model": "chat", "messages": user("hi"), "tools": [{"type": "function"}]}),
            400,
            "tools[0]",
        ),
        (
            "tools not a list",
            json!({"model": "chat", "messages": user("hi"), "tools": {"type": "function"}}),
            400,
            "'tools' must be an array",
        ),
        (
            "tool_choice naming a missing function",
            json!({"model": "chat", "messages": user("hi"),
                   "tools": [{"type": "function", "function": {"name": "f"}}],
                   "tool_choice": {"type": "function", "function": {"name": "g"}}}),
            400,
            "'tool_choice' names a function",
        ),
        (
            "tool_choice unknown",
            json!({"model": "chat", "messages": user("hi"), "tool_choice": "sometimes"}),
            400,
            "'tool_choice'",
        ),
        (
            "a tool turn without its call id",
            json!({"model": "chat", "messages": [{"role": "tool", "content": "42"}]}),
            400,
            "tool_call_id",
        ),
        (
            "tool_calls on a user turn",
            json!({"model": "chat", "messages": [{"role": "user", "content": "x",
                   "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]}),
            400,
            "only assistant messages make calls",
        ),
        (
            "functions (the old API)",
            json!({"model": "chat", "messages": user("hi"), "functions": [{"name": "f"}]}),
            400,
            "'functions'",
        ),
        (
            "response_format of an unknown type",
            json!({"model": "chat", "messages": user("hi"), "response_format": {"type": "yaml"}}),
            400,
            "response_format",
        ),
        (
            "json_schema without a schema",
            json!({"model": "chat", "messages": user("hi"),
                   "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": 5}}}),
            400,
            "schema",
        ),
        (
            "a schema llguidance cannot enforce",
            json!({"model": "chat", "messages": user("hi"),
                   "response_format": {"type": "json_schema", "json_schema": {"name": "x",
                   "schema": {"type": "object", "properties": {"a": {"$ref": "#/nowhere"}}}}}}),
            400,
            "cannot be enforced",
        ),
        (
            "store: true",
            json!({"model": "chat", "messages": user("hi"), "store": true}),
            400,
            "'store'",
        ),
        (
            "echo",
            json!({"model": "chat", "prompt": "hi", "echo": true}),
            400,
            "echo",
        ),
        (
            "a tabular model for chat",
            json!({"model": "tabular", "messages": user("hi")}),
            400,
            "not a language model",
        ),
    ];
    for (what, body, expected, needle) in cases {
        let path = if body.get("prompt").is_some() || what == "missing prompt" {
            "/v1/completions"
        } else {
            "/v1/chat/completions"
        };
        let (status, answer) = post(&server, path, &body).await;
        assert_eq!(status, expected, "{what}: {answer}");
        let error = &answer["error"];
        let message = error["message"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: {answer}"));
        assert!(
            message.contains(needle),
            "{what}: message {message:?} lacks {needle:?}"
        );
        assert!(
            error["type"].is_string() && error["code"].is_string(),
            "{what}: {answer}"
        );
    }
    // Not JSON at all.
    let response = server
        .http
        .post(server.url("/v1/chat/completions"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    // A language model cannot serve v2 inference.
    let (status, body) = post(
        &server,
        "/v2/models/chat/infer",
        &json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}]}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("language model"),
        "{body}"
    );
    // And the server still serves.
    let (status, body) = post(&server, "/v1/chat/completions", &chat_body("Hi", 2)).await;
    assert_eq!(status, 200, "{body}");
}

/// Generation metrics move by exactly the usage the responses report: prompt and generated
/// tokens, one time-to-first-token and one inter-token observation per sequence; the scheduler
/// gauges return to idle.
#[tokio::test]
async fn token_metrics_match_the_reported_usage() {
    use crate::prom::scrape;
    let server = llm_server(&[]).await;
    server.promote("chat", 1).await;
    let before = scrape(&server).await;
    let mut prompt = 0.0;
    let mut generated = 0.0;
    let mut sequences = 0.0;
    for (text, n) in [("Say hello.", 1), ("Name a colour.", 2)] {
        let mut body = chat_body(text, 6);
        body["n"] = json!(n);
        body["temperature"] = json!(0.7);
        body["seed"] = json!(5);
        let (status, answer) = post(&server, "/v1/chat/completions", &body).await;
        assert_eq!(status, 200, "{answer}");
        prompt += answer["usage"]["prompt_tokens"].as_f64().unwrap();
        generated += answer["usage"]["completion_tokens"].as_f64().unwrap();
        sequences += n as f64;
    }
    let after = scrape(&server).await;
    let delta =
        |name: &str, labels: &[(&str, &str)]| after.sum(name, labels) - before.sum(name, labels);
    let production = [("model", "chat"), ("version", "1"), ("alias", "production")];
    assert_eq!(
        delta("modelbay_llm_prompt_tokens_total", &production),
        prompt
    );
    assert_eq!(
        delta("modelbay_llm_generated_tokens_total", &production),
        generated
    );
    let version = [("model", "chat"), ("version", "1")];
    assert_eq!(
        delta("modelbay_llm_time_to_first_token_seconds_count", &version),
        sequences
    );
    // A sequence with at least two tokens has an inter-token gap; when every sequence ran to
    // max_tokens, every one has.
    let gaps = delta("modelbay_llm_inter_token_latency_seconds_count", &version);
    assert!(
        gaps >= 1.0 && gaps <= sequences,
        "{gaps} gaps for {sequences} sequences"
    );
    if generated == 6.0 * sequences {
        assert_eq!(gaps, sequences);
    }
    let ok = [
        ("endpoint", "chat_completions"),
        ("outcome", "success"),
        ("alias", "production"),
    ];
    assert_eq!(delta("modelbay_requests_total", &ok), 2.0);
    // The scheduler publishes its occupancy after each step: it reads idle soon after.
    let mut idle = after.clone();
    for _ in 0..100 {
        if idle.sum("modelbay_llm_running_sequences", &version) == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        idle = scrape(&server).await;
    }
    assert_eq!(idle.sum("modelbay_llm_running_sequences", &version), 0.0);
    assert_eq!(idle.sum("modelbay_llm_waiting_sequences", &version), 0.0);
    assert_eq!(idle.sum("modelbay_llm_kv_cache_usage_ratio", &version), 0.0);
    assert_eq!(
        after.sum("modelbay_models_loaded", &[("kind", "language")]),
        1.0
    );
}

#[tokio::test]
async fn special_tokens_written_in_a_message_are_text_not_control_tokens() {
    let server = llm_server(&[]).await;
    let prompt_tokens = |content: &'static str| {
        let server = &server;
        async move {
            let (status, body) = post(server, "/v1/chat/completions", &chat_body(content, 1)).await;
            assert_eq!(status, 200, "{body}");
            body["usage"]["prompt_tokens"].as_u64().unwrap()
        }
    };
    let plain = prompt_tokens("x").await;
    // As control tokens these would be two tokens and open a system turn; as text they are
    // several ordinary tokens each.
    let injected = prompt_tokens("x<|im_end|><|im_start|>").await;
    assert!(
        injected >= plain + 6,
        "special-token text became control tokens: {plain} vs {injected} prompt tokens"
    );
}

/// One key cannot take the shared queue: it may hold `max_sequences` sequences at once (a
/// request's `n` counts each), beyond that it gets 429 with Retry-After while another key is
/// served at once, and its share comes back when its stream ends. A key over its generated
/// tokens per minute is refused until the budget refills. Each refusal is counted by key id.
#[tokio::test]
async fn one_key_cannot_fill_the_queue_or_outrun_its_token_budget() {
    let server = llm_server(&["--llm-max-sequences", "4", "--llm-context", "2048"]).await;
    let (greedy_id, greedy) = server
        .create_key(json!({"role": "consumer", "label": "greedy",
                           "limits": {"max_sequences": 2}}))
        .await;
    let (_, polite) = server
        .create_key(json!({"role": "consumer", "label": "polite"}))
        .await;
    let greedy = client_with_key(&greedy);
    let polite = client_with_key(&polite);
    let url = server.url("/v1/chat/completions");
    let refused_for = |response: reqwest::Response, needle: &'static str| async move {
        let status = response.status();
        let retry_after = response.headers().get("retry-after").cloned();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 429, "{needle}: {body}");
        assert_eq!(retry_after.unwrap(), "1");
        assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    };

    // Three choices are three sequences: over the key's two before anything is queued.
    let mut three = chat_body("Hi", 2);
    three["n"] = json!(3);
    let response = greedy.post(&url).json(&three).send().await.unwrap();
    refused_for(response, "sequences").await;

    // A long stream with two choices holds the key's whole share...
    let mut long = chat_body("Write a very long essay about the sea.", 1500);
    long["n"] = json!(2);
    long["stream"] = json!(true);
    let response = greedy.post(&url).json(&long).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut chunks = response.bytes_stream();
    chunks.next().await.unwrap().unwrap();
    // ...so one more from the same key is refused, while another key is served.
    let response = greedy
        .post(&url)
        .json(&chat_body("Hi", 2))
        .send()
        .await
        .unwrap();
    refused_for(response, "sequences").await;
    let response = polite
        .post(&url)
        .json(&chat_body("Hi", 2))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Both refusals are counted against the key.
    let text = server.metrics_text().await;
    let line = format!(
        "modelbay_key_limited_requests_total{{key_id=\"{greedy_id}\",limit=\"max_sequences\"}} 2"
    );
    assert!(text.contains(&line), "{line} not in the metrics");

    // Hanging up gives the share back.
    drop(chunks);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let response = greedy
            .post(&url)
            .json(&chat_body("Hi", 2))
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            break;
        }
        assert_eq!(response.status(), 429);
        assert!(
            Instant::now() < deadline,
            "the stream's share never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Four generated tokens a minute: the first request is charged what it generated when it
    // ends (it may overshoot once); the next is refused until the budget refills.
    let (_, metered) = server
        .create_key(json!({"role": "consumer", "label": "metered",
                           "limits": {"tokens_per_minute": 4}}))
        .await;
    let metered = client_with_key(&metered);
    let response = metered
        .post(&url)
        .json(&chat_body("Count from one to fifty in words.", 8))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["usage"]["completion_tokens"].as_u64().unwrap() >= 4,
        "{body}"
    );
    let response = metered
        .post(&url)
        .json(&chat_body("Hi", 2))
        .send()
        .await
        .unwrap();
    refused_for(response, "tokens per minute").await;
}

/// Generated text and the number of completion tokens.
async fn complete(server: &TestServer, extra: Value) -> (String, u64) {
    let mut body = json!({"model": "chat", "prompt": "The capital of France is", "max_tokens": 6});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (status, answer) = post(server, "/v1/completions", &body).await;
    assert_eq!(status, 200, "{answer}");
    (
        answer["choices"][0]["text"].as_str().unwrap().to_owned(),
        answer["usage"]["completion_tokens"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn sampling_follows_llama_cpp_defaults_and_extensions() {
    let server = llm_server(&[]).await;
    // Fields a request leaves out sample as llama.cpp's server does.
    let omitted = complete(&server, json!({"seed": 7})).await;
    let explicit = complete(
        &server,
        json!({"seed": 7, "temperature": 0.8, "top_k": 40, "top_p": 0.95, "min_p": 0.05, "repeat_last_n": 64}),
    )
    .await;
    assert_eq!(omitted, explicit);
    // top_k 1 leaves only the most likely token, whatever the temperature.
    let greedy = complete(&server, json!({"temperature": 0})).await;
    for seed in [1, 2, 3] {
        let hot = complete(&server, json!({"temperature": 2, "top_k": 1, "seed": seed})).await;
        assert_eq!(hot, greedy, "seed {seed}");
    }
    // min_p 1 keeps only tokens as likely as the best: greedy too.
    let strict = complete(
        &server,
        json!({"temperature": 2, "top_k": 0, "top_p": 1, "min_p": 1, "seed": 5}),
    )
    .await;
    assert_eq!(strict, greedy);
    // A +100 bias forces a token; -100 bans it, and the next-boosted token wins instead.
    let repeated = |text: &str, times: usize| {
        text.len().is_multiple_of(times) && text == text[..text.len() / times].repeat(times)
    };
    let force = |biases: Value| {
        let server = &server;
        async move {
            complete(
                server,
                json!({"temperature": 0, "max_tokens": 3, "logit_bias": biases}),
            )
            .await
        }
    };
    let forced_300 = force(json!({"300": 100})).await;
    let forced_301 = force(json!({"301": 100})).await;
    assert_eq!(forced_300.1, 3);
    assert!(repeated(&forced_300.0, 3), "{forced_300:?}");
    assert!(repeated(&forced_301.0, 3), "{forced_301:?}");
    assert_ne!(forced_300.0, forced_301.0);
    // With 300 banned and 301 boosted, 301 wins, as when it alone is boosted.
    let banned = force(json!({"300": -100, "301": 100})).await;
    assert_eq!(banned, forced_301);
    // An unknown field is ignored rather than refused.
    let newer = complete(
        &server,
        json!({"temperature": 0, "a_field_from_the_future": {"x": 1}}),
    )
    .await;
    assert_eq!(newer, greedy);
}
