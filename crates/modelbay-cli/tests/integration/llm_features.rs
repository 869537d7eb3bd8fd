//! What OpenAI clients and agent frameworks rely on beyond plain chat, with the real SmolLM2:
//! tool calls (forced by a grammar), structured output, log-probabilities, the Responses API,
//! per-version generation defaults and prefix caching.

use serde_json::{json, Value};

use super::llm::{chat_body, content, llm_server, post, stream};
use crate::common::TestServer;

/// A function with a required string, an enum and a bounded integer.
fn weather_tool() -> Value {
    json!({"type": "function", "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "minLength": 1, "maxLength": 40},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "unit", "days"],
            "additionalProperties": false,
        },
    }})
}

fn time_tool() -> Value {
    json!({"type": "function", "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]},
    }})
}

/// Checks arguments against `weather_tool`'s schema by hand.
fn assert_weather_arguments(arguments: &str) {
    let args: Value = serde_json::from_str(arguments)
        .unwrap_or_else(|e| panic!("arguments {arguments:?} do not parse: {e}"));
    let object = args.as_object().unwrap();
    let mut keys: Vec<&String> = object.keys().collect();
    keys.sort();
    assert_eq!(keys, ["city", "days", "unit"], "{arguments}");
    let city = args["city"].as_str().unwrap();
    assert!((1..=40).contains(&city.chars().count()), "{arguments}");
    assert!(["celsius", "fahrenheit"].contains(&args["unit"].as_str().unwrap()));
    assert!(
        (1..=7).contains(&args["days"].as_i64().unwrap()),
        "{arguments}"
    );
}

fn weather_request(choice: Value) -> Value {
    json!({
        "model": "chat",
        "messages": [{"role": "user", "content": "What is the weather in Paris for the next 3 days?"}],
        "tools": [weather_tool(), time_tool()],
        "tool_choice": choice,
        "max_tokens": 120,
        "temperature": 0,
    })
}

/// Reassembles streamed tool-call deltas: (id, name, arguments) per index.
fn streamed_calls(
    events: &[(std::time::Duration, String)],
) -> (Vec<(String, String, String)>, String) {
    let mut calls: Vec<(String, String, String)> = Vec::new();
    let mut finish = String::new();
    for (_, data) in events.iter().filter(|(_, d)| d != "[DONE]") {
        let chunk: Value = serde_json::from_str(data).unwrap();
        let Some(choice) = chunk["choices"].get(0) else {
            continue;
        };
        if let Some(reason) = choice["finish_reason"].as_str() {
            finish = reason.to_owned();
        }
        for delta in choice["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let index = delta["index"].as_u64().unwrap() as usize;
            if calls.len() <= index {
                calls.resize(index + 1, Default::default());
            }
            let call = &mut calls[index];
            if let Some(id) = delta["id"].as_str() {
                call.0 = id.to_owned();
            }
            if let Some(name) = delta["function"]["name"].as_str() {
                call.1.push_str(name);
            }
            if let Some(arguments) = delta["function"]["arguments"].as_str() {
                call.2.push_str(arguments);
            }
        }
    }
    (calls, finish)
}

async fn check_forced_calls(server: &TestServer, model: &str) {
    for choice in [
        json!("required"),
        json!({"type": "function", "function": {"name": "get_weather"}}),
    ] {
        let mut body = weather_request(choice.clone());
        body["model"] = json!(model);
        body["parallel_tool_calls"] = json!(false);
        let (status, answer) = post(server, "/v1/chat/completions", &body).await;
        assert_eq!(status, 200, "{answer}");
        let choice0 = &answer["choices"][0];
        assert_eq!(
            choice0["finish_reason"], "tool_calls",
            "{model} {choice}: {answer}"
        );
        let calls = choice0["message"]["tool_calls"].as_array().unwrap();
        assert_eq!(calls.len(), 1, "{answer}");
        assert_eq!(calls[0]["type"], "function");
        assert!(calls[0]["id"].as_str().unwrap().starts_with("call_"));
        let name = calls[0]["function"]["name"].as_str().unwrap();
        if name == "get_weather" {
            assert_weather_arguments(calls[0]["function"]["arguments"].as_str().unwrap());
        } else {
            assert_eq!(name, "get_time", "{answer}");
            assert_eq!(choice, json!("required"), "a named choice called {name}");
        }
        // Streamed: the deltas reassemble into the same call.
        body["stream"] = json!(true);
        let events = stream(server, "/v1/chat/completions", &body).await;
        let (streamed, finish) = streamed_calls(&events);
        assert_eq!(finish, "tool_calls");
        assert_eq!(streamed.len(), 1);
        assert_eq!(streamed[0].1, name);
        assert_eq!(
            serde_json::from_str::<Value>(&streamed[0].2).unwrap(),
            serde_json::from_str::<Value>(calls[0]["function"]["arguments"].as_str().unwrap())
                .unwrap(),
            "temperature 0: the stream calls what the whole answer did"
        );
    }
}

#[tokio::test]
async fn forced_tool_calls_match_the_function_schema_in_every_format() {
    let server = llm_server(&[]).await;
    // SmolLM2's template knows no tools: the generic JSON format.
    check_forced_calls(&server, "chat").await;
    // The same model told to write Hermes-style <tool_call> blocks.
    let (status, body) = server
        .put_json(
            "/api/v1/models/chat/versions/1/generation",
            &json!({"tool_format": "hermes"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    check_forced_calls(&server, "chat").await;
    // Parallel calls may be several, each valid.
    let mut body = weather_request(json!("required"));
    body["messages"] =
        json!([{"role": "user", "content": "Weather in Paris and in Rome, 2 days each?"}]);
    body["tools"] = json!([weather_tool()]);
    let (status, answer) = post(&server, "/v1/chat/completions", &body).await;
    assert_eq!(status, 200, "{answer}");
    let calls = answer["choices"][0]["message"]["tool_calls"]
        .as_array()
        .unwrap();
    assert!(!calls.is_empty());
    for call in calls {
        assert_weather_arguments(call["function"]["arguments"].as_str().unwrap());
    }
    // tool_choice none: plain text, no calls.
    let (status, answer) = post(
        &server,
        "/v1/chat/completions",
        &weather_request(json!("none")),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_ne!(
        answer["choices"][0]["finish_reason"], "tool_calls",
        "{answer}"
    );
    assert!(
        answer["choices"][0]["message"].get("tool_calls").is_none(),
        "{answer}"
    );
}

#[tokio::test]
async fn a_tool_result_turn_round_trips() {
    let server = llm_server(&[]).await;
    let (status, first) = post(
        &server,
        "/v1/chat/completions",
        &weather_request(json!("required")),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let message = first["choices"][0]["message"].clone();
    assert!(message["content"].is_null(), "{message}");
    let call_id = message["tool_calls"][0]["id"].as_str().unwrap().to_owned();
    let body = json!({
        "model": "chat",
        "messages": [
            {"role": "user", "content": "What is the weather in Paris for the next 3 days?"},
            message,
            {"role": "tool", "tool_call_id": call_id, "content": "{\"forecast\": \"sunny, 21 C\"}"},
        ],
        "tools": [weather_tool(), time_tool()],
        "max_tokens": 40,
        "temperature": 0,
    });
    let (status, answer) = post(&server, "/v1/chat/completions", &body).await;
    assert_eq!(status, 200, "{answer}");
    let choice = &answer["choices"][0];
    // Under `auto` the generic format still answers in JSON; the server unwraps plain answers.
    assert!(
        choice["message"]["content"].is_string() || choice["message"]["tool_calls"].is_array(),
        "{answer}"
    );
}

#[tokio::test]
async fn after_a_tool_result_tool_choice_none_answers_in_text() {
    let server = llm_server(&[]).await;
    let lookup = json!({"type": "function", "function": {
        "name": "lookup_order", "description": "Find an order by its number",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}},
                       "required": ["order_id"]}}});
    let body = json!({
        "model": "chat",
        "messages": [
            {"role": "system", "content": "You are the support assistant of an online shop. \
                Be brief and friendly. Use the lookup_order tool to answer questions about an order."},
            {"role": "user", "content": "Hi! Where is my order A1234? I need the tent by Friday."},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "lookup_order", "arguments": "{\"order_id\": \"A1234\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1",
             "content": "{\"status\": \"shipped\", \"expected\": \"Thursday 10 December\"}"},
        ],
        "tools": [lookup],
        "tool_choice": "none",
        "temperature": 0,
    });
    // The answer is text, never a call written out as JSON (the generic format writes earlier
    // calls as JSON, which this model imitates at temperature 0), also when cut off.
    for max_tokens in [80, 6] {
        let mut body = body.clone();
        body["max_tokens"] = json!(max_tokens);
        let (status, answer) = post(&server, "/v1/chat/completions", &body).await;
        assert_eq!(status, 200, "{answer}");
        let message = &answer["choices"][0]["message"];
        let text = message["content"]
            .as_str()
            .unwrap_or_else(|| panic!("{answer}"));
        assert!(message.get("tool_calls").is_none(), "{answer}");
        assert!(!text.trim_start().starts_with('{'), "{answer}");

        // Streamed, the same text arrives piece by piece as it is written, not in one piece
        // at the end.
        body["stream"] = json!(true);
        let events = crate::llm::stream(&server, "/v1/chat/completions", &body).await;
        let pieces = events
            .iter()
            .filter(|(_, data)| data.contains("\"content\":\""))
            .count();
        assert_eq!(crate::llm::streamed_text(&events, true), text, "{events:?}");
        assert!(pieces >= 2, "{pieces} content events: {events:?}");
    }
}

/// The output of `response_format` `json_schema` with `schema`, parsed.
async fn structured(server: &TestServer, prompt: &str, schema: Value) -> Value {
    let body = json!({
        "model": "chat",
        "messages": [{"role": "user", "content": prompt}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "strict": true, "schema": schema}},
        "max_tokens": 200,
        "temperature": 0,
    });
    let (status, answer) = post(server, "/v1/chat/completions", &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["choices"][0]["finish_reason"], "stop", "{answer}");
    let text = content(&answer);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text:?} is not JSON: {e}"))
}

#[tokio::test]
async fn json_schema_output_always_validates() {
    let server = llm_server(&[]).await;
    // Nested objects.
    let person = structured(
        &server,
        "Describe a person who lives in Paris.",
        json!({"type": "object", "properties": {
            "name": {"type": "string", "maxLength": 30},
            "address": {"type": "object", "properties": {
                "city": {"type": "string", "maxLength": 30},
                "zip": {"type": "string", "pattern": "^[0-9]{5}$"},
            }, "required": ["city", "zip"], "additionalProperties": false},
        }, "required": ["name", "address"], "additionalProperties": false}),
    )
    .await;
    assert!(person["name"].as_str().unwrap().chars().count() <= 30);
    let zip = person["address"]["zip"].as_str().unwrap();
    assert!(
        zip.len() == 5 && zip.bytes().all(|b| b.is_ascii_digit()),
        "{person}"
    );
    // Enums.
    let mood = structured(
        &server,
        "How do you feel today?",
        json!({"type": "object", "properties": {
            "mood": {"enum": ["happy", "sad", "neutral"]},
            "score": {"type": "integer", "minimum": 0, "maximum": 10},
        }, "required": ["mood", "score"], "additionalProperties": false}),
    )
    .await;
    assert!(["happy", "sad", "neutral"].contains(&mood["mood"].as_str().unwrap()));
    assert!((0..=10).contains(&mood["score"].as_i64().unwrap()));
    // Arrays with bounds.
    let list = structured(
        &server,
        "List some colours.",
        json!({"type": "object", "properties": {
            "colours": {"type": "array", "minItems": 2, "maxItems": 4,
                        "items": {"type": "string", "maxLength": 12}},
        }, "required": ["colours"], "additionalProperties": false}),
    )
    .await;
    let colours = list["colours"].as_array().unwrap();
    assert!((2..=4).contains(&colours.len()), "{list}");
    // json_object: any object.
    let body = json!({"model": "chat", "messages": [{"role": "user", "content": "Give me a JSON object about cats."}],
                      "response_format": {"type": "json_object"}, "max_tokens": 200, "temperature": 0});
    let (status, answer) = post(&server, "/v1/chat/completions", &body).await;
    assert_eq!(status, 200, "{answer}");
    if answer["choices"][0]["finish_reason"] == "stop" {
        assert!(serde_json::from_str::<Value>(&content(&answer))
            .unwrap()
            .is_object());
    }
}

#[tokio::test]
async fn logprobs_are_sorted_non_positive_and_the_greedy_token_leads() {
    let server = llm_server(&[]).await;
    let mut body = chat_body("Name a fruit.", 12);
    body["logprobs"] = json!(true);
    body["top_logprobs"] = json!(20);
    let (status, answer) = post(&server, "/v1/chat/completions", &body).await;
    assert_eq!(status, 200, "{answer}");
    let entries = answer["choices"][0]["logprobs"]["content"]
        .as_array()
        .unwrap();
    assert!(!entries.is_empty());
    let text: String = entries
        .iter()
        .map(|e| e["token"].as_str().unwrap())
        .collect();
    assert_eq!(text, content(&answer), "the tokens spell the text");
    for entry in entries {
        let top = entry["top_logprobs"].as_array().unwrap();
        assert_eq!(top.len(), 20, "20 is what was asked for");
        let values: Vec<f64> = top.iter().map(|t| t["logprob"].as_f64().unwrap()).collect();
        assert!(
            values.windows(2).all(|w| w[0] >= w[1]),
            "sorted: {values:?}"
        );
        assert!(values.iter().all(|v| *v <= 0.0));
        // Greedy: the chosen token is the most likely one.
        assert_eq!(top[0]["token"], entry["token"]);
        assert!(
            (top[0]["logprob"].as_f64().unwrap() - entry["logprob"].as_f64().unwrap()).abs() < 1e-6
        );
        assert!(entry["bytes"].is_array());
    }
    // Completions: OpenAI's legacy shape.
    let (status, answer) = post(
        &server,
        "/v1/completions",
        &json!({"model": "chat", "prompt": "The capital of France is", "max_tokens": 5, "temperature": 0, "logprobs": 3}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let logprobs = &answer["choices"][0]["logprobs"];
    let tokens = logprobs["tokens"].as_array().unwrap();
    assert_eq!(
        tokens.len(),
        logprobs["token_logprobs"].as_array().unwrap().len()
    );
    assert_eq!(logprobs["top_logprobs"][0].as_object().unwrap().len(), 3);
    assert_eq!(logprobs["text_offset"][0], 0);
    // Streamed logprobs spell the streamed text.
    body["stream"] = json!(true);
    body["top_logprobs"] = json!(1);
    let events = stream(&server, "/v1/chat/completions", &body).await;
    let mut streamed = String::new();
    for (_, data) in events.iter().filter(|(_, d)| d != "[DONE]") {
        let chunk: Value = serde_json::from_str(data).unwrap();
        for entry in chunk["choices"][0]["logprobs"]["content"]
            .as_array()
            .into_iter()
            .flatten()
        {
            streamed.push_str(entry["token"].as_str().unwrap());
        }
    }
    assert_eq!(streamed, text);
}

#[tokio::test]
async fn the_responses_api_answers_plain_streamed_with_tools_and_with_a_format() {
    let server = llm_server(&[]).await;
    let plain =
        json!({"model": "chat", "input": "Say hello.", "max_output_tokens": 16, "temperature": 0});
    let (status, answer) = post(&server, "/v1/responses", &plain).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["object"], "response");
    assert!(answer["id"].as_str().unwrap().starts_with("resp_"));
    let text = answer["output"][0]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!text.is_empty());
    assert!(answer["usage"]["input_tokens"].as_u64().unwrap() > 0);
    // Streamed: response.* events whose deltas spell the same text.
    let mut streamed_body = plain.clone();
    streamed_body["stream"] = json!(true);
    let events = stream(&server, "/v1/responses", &streamed_body).await;
    let parsed: Vec<Value> = events
        .iter()
        .map(|(_, d)| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(parsed[0]["type"], "response.created");
    let last = parsed.last().unwrap();
    assert!(["response.completed", "response.incomplete"].contains(&last["type"].as_str().unwrap()));
    let deltas: String = parsed
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, text);
    let numbers: Vec<u64> = parsed
        .iter()
        .map(|e| e["sequence_number"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, (0..numbers.len() as u64).collect::<Vec<_>>());
    // A function tool, forced: a function_call item, then its output sent back.
    let tools = json!([{"type": "function", "name": "get_weather",
                        "parameters": weather_tool()["function"]["parameters"]}]);
    let body = json!({"model": "chat", "input": "Weather in Oslo for 2 days?", "tools": tools,
                      "tool_choice": "required", "max_output_tokens": 120, "temperature": 0});
    let (status, answer) = post(&server, "/v1/responses", &body).await;
    assert_eq!(status, 200, "{answer}");
    let call = answer["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "function_call")
        .unwrap_or_else(|| panic!("no function_call in {answer}"))
        .clone();
    assert_eq!(call["name"], "get_weather");
    assert_weather_arguments(call["arguments"].as_str().unwrap());
    let follow_up = json!({"model": "chat", "tools": tools, "max_output_tokens": 30, "temperature": 0,
    "input": [
        {"role": "user", "content": "Weather in Oslo for 2 days?"},
        {"type": "function_call", "call_id": call["call_id"], "name": "get_weather", "arguments": call["arguments"]},
        {"type": "function_call_output", "call_id": call["call_id"], "output": "rain, 9 C"},
    ]});
    let (status, answer) = post(&server, "/v1/responses", &follow_up).await;
    assert_eq!(status, 200, "{answer}");
    // text.format json_schema.
    let body = json!({"model": "chat", "input": "Pick a colour.", "max_output_tokens": 60, "temperature": 0,
        "text": {"format": {"type": "json_schema", "name": "pick", "strict": true,
                 "schema": {"type": "object", "properties": {"colour": {"enum": ["red", "green", "blue"]}},
                            "required": ["colour"], "additionalProperties": false}}}});
    let (status, answer) = post(&server, "/v1/responses", &body).await;
    assert_eq!(status, 200, "{answer}");
    let picked: Value =
        serde_json::from_str(answer["output"][0]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert!(["red", "green", "blue"].contains(&picked["colour"].as_str().unwrap()));
    // No server-side state.
    for (field, value) in [
        ("previous_response_id", json!("resp_1")),
        ("store", json!(true)),
    ] {
        let mut body = plain.clone();
        body[field] = value;
        let (status, answer) = post(&server, "/v1/responses", &body).await;
        assert_eq!(status, 400, "{answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains(field));
    }
}

#[tokio::test]
async fn version_defaults_fill_what_a_request_omits_and_lose_to_what_it_sets() {
    let server = llm_server(&[]).await;
    let (status, settings) = server
        .get("/api/v1/models/chat/versions/1/generation")
        .await;
    assert_eq!(status, 200, "{settings}");
    assert_eq!(
        settings["effective"]["temperature"].as_f64().unwrap() as f32,
        0.8
    );
    assert_eq!(settings["effective"]["max_tokens"], 1024);
    let ask = json!({"model": "chat", "messages": [{"role": "user", "content": "Tell me a long story."}]});
    let (status, set) = server
        .put_json(
            "/api/v1/models/chat/versions/1/generation",
            &json!({"temperature": 0, "max_tokens": 6}),
        )
        .await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(
        set["publisher"],
        json!({"temperature": 0.0, "max_tokens": 6})
    );
    // Omitted fields take the defaults: 6 tokens, and greedy (the same text twice).
    let (_, a) = post(&server, "/v1/chat/completions", &ask).await;
    let (_, b) = post(&server, "/v1/chat/completions", &ask).await;
    assert_eq!(a["usage"]["completion_tokens"], 6, "{a}");
    assert_eq!(a["choices"][0]["finish_reason"], "length");
    assert_eq!(content(&a), content(&b));
    // The request's own value wins.
    let mut own = ask.clone();
    own["max_tokens"] = json!(9);
    let (_, c) = post(&server, "/v1/chat/completions", &own).await;
    assert_eq!(c["usage"]["completion_tokens"], 9, "{c}");
    // Audited, with what it replaced.
    let (_, events) = server.get("/api/v1/events?model=chat").await;
    let event = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "generation.set")
        .unwrap_or_else(|| panic!("no generation.set event in {events}"))
        .clone();
    assert_eq!(event["after"]["params"]["max_tokens"], 6);
    assert!(event["actor"].is_string());
    // Bad settings are refused by name; unknown ones too.
    for (body, needle) in [
        (json!({"temperature": 5}), "'temperature'"),
        (json!({"temp": 1}), "temp"),
        (json!({"tool_format": "xml"}), "tool-call format"),
    ] {
        let (status, answer) = server
            .put_json("/api/v1/models/chat/versions/1/generation", &body)
            .await;
        assert_eq!(status, 400, "{answer}");
        assert!(answer.to_string().contains(needle), "{answer}");
    }
    let (status, _) = server
        .put_json("/api/v1/models/chat/versions/9/generation", &json!({}))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_cached_prefix_gives_identical_greedy_text_and_counts_its_tokens() {
    // One sequence slot: the second request must reuse the first one's cells.
    let server = llm_server(&["--llm-max-sequences", "1"]).await;
    let long = "The history of the city goes back many centuries. ".repeat(12);
    let body = chat_body(&format!("{long}Summarise this."), 24);
    let (status, first) = post(&server, "/v1/chat/completions", &body).await;
    assert_eq!(status, 200, "{first}");
    let (_, second) = post(&server, "/v1/chat/completions", &body).await;
    assert_eq!(
        content(&first),
        content(&second),
        "a cache hit changes nothing"
    );
    let prompt = first["usage"]["prompt_tokens"].as_u64().unwrap();
    assert_eq!(first["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(
        second["usage"]["prompt_tokens_details"]["cached_tokens"],
        prompt - 1
    );
    // A prompt that shares only the beginning reuses only that.
    let other = chat_body(&format!("{long}List three facts."), 8);
    let (_, third) = post(&server, "/v1/chat/completions", &other).await;
    let cached = third["usage"]["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap();
    assert!(cached > 100 && cached < prompt, "{third}");
    let metrics = server.metrics_text().await;
    let value = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    assert_eq!(value("modelbay_llm_prefix_cache_hits_total"), 2.0);
    assert_eq!(
        value("modelbay_llm_cached_prompt_tokens_total"),
        (prompt - 1 + cached) as f64
    );
}
