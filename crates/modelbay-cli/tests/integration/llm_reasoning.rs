//! Reasoning models: a chat template that opens a `<think>` block, the block split into
//! `reasoning_content` (whole and streamed, and as a `reasoning` item of the Responses API),
//! and `chat_template_kwargs` reaching the template. SmolLM2's weights serve behind a template
//! shaped like Qwen 3's.

use serde_json::{json, Value};

use super::{
    gguf_edit::with_chat_template,
    llm::{post, stream},
};
use crate::{clients::smollm2, common::TestServer};

/// SmolLM2's template, ending the prompt inside a `<think>` block unless `enable_thinking` is
/// false (then with an empty, closed block), as Qwen 3's does.
const THINKING_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% if enable_thinking is defined and enable_thinking is false %}{{ '<think>\n\n</think>\n\n' }}{% else %}{{ '<think>\n' }}{% endif %}{% endif %}";

async fn thinker() -> TestServer {
    let server = TestServer::start_with(&["--llm-threads", "1"]).await;
    let gguf = with_chat_template(&smollm2(), THINKING_TEMPLATE);
    let (status, body) = server.push_bytes("thinker", "", gguf).await;
    assert_eq!(status, 201, "{body}");
    server
}

fn ask(extra: Value) -> Value {
    let mut body = json!({
        "model": "thinker",
        "messages": [{"role": "user", "content": "What is 2 + 2?"}],
        "max_tokens": 16,
        "temperature": 0,
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

/// The concatenated `delta` field `field` of a streamed chat completion.
fn streamed(events: &[(std::time::Duration, String)], field: &str) -> String {
    events
        .iter()
        .filter(|(_, d)| d != "[DONE]")
        .filter_map(|(_, d)| {
            let chunk: Value = serde_json::from_str(d).unwrap();
            chunk["choices"][0]["delta"][field]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test]
async fn a_think_block_is_split_into_reasoning_content_and_template_kwargs_reach_the_template() {
    let server = thinker().await;
    // The prompt opens the block; the model never closes it in 16 tokens: all reasoning.
    let (status, thinking) = post(&server, "/v1/chat/completions", &ask(json!({}))).await;
    assert_eq!(status, 200, "{thinking}");
    let message = &thinking["choices"][0]["message"];
    let reasoning = message["reasoning_content"].as_str().unwrap().to_owned();
    assert!(!reasoning.trim().is_empty(), "{thinking}");
    let content = message["content"].as_str().unwrap();
    assert!(!content.contains("<think>") && !content.contains("</think>"));

    // Streamed: the same split, as delta.reasoning_content.
    let events = stream(
        &server,
        "/v1/chat/completions",
        &ask(json!({"stream": true})),
    )
    .await;
    assert_eq!(streamed(&events, "reasoning_content"), reasoning);
    assert_eq!(streamed(&events, "content"), content);

    // enable_thinking=false through chat_template_kwargs: the template closes the block
    // itself, so the prompt is longer and the answer is all content.
    let (status, plain) = post(
        &server,
        "/v1/chat/completions",
        &ask(json!({"chat_template_kwargs": {"enable_thinking": false}})),
    )
    .await;
    assert_eq!(status, 200, "{plain}");
    assert!(
        plain["usage"]["prompt_tokens"].as_u64() > thinking["usage"]["prompt_tokens"].as_u64(),
        "{plain} {thinking}"
    );
    let message = &plain["choices"][0]["message"];
    assert!(message.get("reasoning_content").is_none(), "{plain}");
    assert!(!message["content"].as_str().unwrap().trim().is_empty());

    // Structured output follows its grammar from the first token: nothing is reasoning.
    let (status, json_answer) = post(
        &server,
        "/v1/chat/completions",
        &ask(json!({"response_format": {"type": "json_object"}, "max_tokens": 60})),
    )
    .await;
    assert_eq!(status, 200, "{json_answer}");
    assert!(json_answer["choices"][0]["message"]
        .get("reasoning_content")
        .is_none());

    // The Responses API: a reasoning item before the message, whole and streamed.
    let body = json!({"model": "thinker", "input": "What is 2 + 2?", "max_output_tokens": 16, "temperature": 0});
    let (status, response) = post(&server, "/v1/responses", &body).await;
    assert_eq!(status, 200, "{response}");
    let output = response["output"].as_array().unwrap();
    assert_eq!(output[0]["type"], "reasoning", "{response}");
    let text = output[0]["content"][0]["text"].as_str().unwrap();
    assert_eq!(text, reasoning, "{response}");
    let mut streamed_body = body.clone();
    streamed_body["stream"] = json!(true);
    let events = stream(&server, "/v1/responses", &streamed_body).await;
    let events: Vec<Value> = events
        .iter()
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect();
    let deltas: String = events
        .iter()
        .filter(|e| e["type"] == "response.reasoning_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, reasoning);
    let last = events.last().unwrap();
    assert_eq!(last["response"]["output"][0]["type"], "reasoning", "{last}");
    let numbers: Vec<u64> = events
        .iter()
        .map(|e| e["sequence_number"].as_u64().unwrap())
        .collect();
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1));

    // Bad kwargs are refused, naming the field.
    for (kwargs, needle) in [
        (json!({"messages": []}), "cannot set 'messages'"),
        (json!("enable_thinking"), "must be an object"),
        (json!({"x": "y".repeat(20_000)}), "over 16 KiB"),
    ] {
        let (status, answer) = post(
            &server,
            "/v1/chat/completions",
            &ask(json!({ "chat_template_kwargs": kwargs })),
        )
        .await;
        assert_eq!(status, 400, "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("chat_template_kwargs") && message.contains(needle),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn a_model_without_think_blocks_has_no_reasoning_content() {
    let server = TestServer::start_with(&["--llm-threads", "1"]).await;
    let (status, body) = server.push_bytes("thinker", "", smollm2()).await;
    assert_eq!(status, 201, "{body}");
    let (status, answer) = post(&server, "/v1/chat/completions", &ask(json!({}))).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["choices"][0]["message"]
        .get("reasoning_content")
        .is_none());
    // Kwargs a template does not read change nothing.
    let (_, with_kwargs) = post(
        &server,
        "/v1/chat/completions",
        &ask(json!({"chat_template_kwargs": {"enable_thinking": false}})),
    )
    .await;
    assert_eq!(
        with_kwargs["choices"][0]["message"]["content"],
        answer["choices"][0]["message"]["content"]
    );
    assert_eq!(
        with_kwargs["usage"]["prompt_tokens"],
        answer["usage"]["prompt_tokens"]
    );
}
