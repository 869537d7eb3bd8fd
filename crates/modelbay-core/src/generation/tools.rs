//! Function calling, independent of any wire protocol: the tools a caller offers, the calls a
//! model makes, and the conventions ("formats") model families use to write calls, with the
//! parser and the grammar that constrains decoding to a valid call for each.

use serde_json::{json, Value};

use crate::{Error, Result};

/// A function the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
}

/// A call the model made, now or earlier in the conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments, as JSON text.
    pub arguments: String,
}

/// Whether and which tool the model must call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    /// Tools are offered but never called.
    None,
    /// The model decides.
    Auto,
    /// The model must call one or more tools.
    Required,
    /// The model must call this function.
    Function(String),
}

/// How a model family writes tool calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolFormat {
    /// Hermes 2 Pro, Qwen 2.5/3: `<tool_call>{"name": …, "arguments": …}</tool_call>`.
    Hermes,
    /// Llama 3.1+: a bare `{"name": …, "parameters": …}` object.
    Llama3,
    /// Mistral: `[TOOL_CALLS][{"name": …, "arguments": …}]`.
    Mistral,
    /// For templates that know no tools: the tools are described in the system turn and the
    /// model answers `{"tool_calls": [{"name": …, "arguments": …}]}` or `{"response": "…"}`.
    Generic,
}

/// A grammar the output must follow.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputConstraint {
    /// One JSON value valid against this schema.
    JsonSchema(Value),
    /// A Lark grammar in llguidance's dialect (which embeds JSON schemas as `%json {…}`).
    Lark(String),
}

impl OutputConstraint {
    /// Structured output: one JSON value of `schema`, written compactly.
    pub fn json(schema: &Value) -> Self {
        Self::JsonSchema(compact_json(schema))
    }
}

/// `schema` with llguidance's option for compact JSON: fixed separators and no free
/// whitespace between tokens, so that a small model cannot stall in endless blank space.
/// (Tool calls keep free whitespace: between parallel calls it is where small models end the
/// list.)
fn compact_json(schema: &Value) -> Value {
    let mut schema = schema.clone();
    if let Value::Object(map) = &mut schema {
        map.entry("x-guidance").or_insert_with(|| {
            json!({ "whitespace_flexible": false, "item_separator": ", ", "key_separator": ": " })
        });
    }
    schema
}

impl ToolFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hermes => "hermes",
            Self::Llama3 => "llama3",
            Self::Mistral => "mistral",
            Self::Generic => "generic",
        }
    }

    pub fn parse(name: &str) -> Result<Self> {
        Ok(match name {
            "hermes" => Self::Hermes,
            "llama3" => Self::Llama3,
            "mistral" => Self::Mistral,
            "generic" => Self::Generic,
            other => {
                return Err(Error::InvalidInput(format!(
                    "'{other}' is not a tool-call format; use hermes, llama3, mistral or generic"
                )))
            }
        })
    }

    /// The format a chat template writes, from its source text.
    pub fn detect(template: &str) -> Self {
        if template.contains("<tool_call>") {
            Self::Hermes
        } else if template.contains("[TOOL_CALLS]") {
            Self::Mistral
        } else if template.contains("<|start_header_id|>") && template.contains("tools") {
            Self::Llama3
        } else {
            Self::Generic
        }
    }

    /// Whether the chat template itself renders `tools` (else they go in the system turn).
    pub fn template_renders_tools(self) -> bool {
        self != Self::Generic
    }

    /// The grammar that forces a valid call: always for `required` or a named function, and
    /// for the generic format under `auto` too (a call or a plain answer, both as JSON). Under
    /// `none` the generic format is held to its plain-answer shape: a model that saw earlier
    /// calls written as JSON would otherwise write another one as text.
    pub fn constraint(
        self,
        tools: &[Tool],
        choice: &ToolChoice,
        parallel: bool,
    ) -> Option<OutputConstraint> {
        let allowed: Vec<&Tool> = match choice {
            ToolChoice::None if self == Self::Generic => {
                return Some(OutputConstraint::JsonSchema(generic_answer_schema()))
            }
            ToolChoice::None => return None,
            ToolChoice::Auto if self != Self::Generic => return None,
            ToolChoice::Function(name) => tools.iter().filter(|t| &t.name == name).collect(),
            ToolChoice::Auto | ToolChoice::Required => tools.iter().collect(),
        };
        let arguments_key = if self == Self::Llama3 {
            "parameters"
        } else {
            "arguments"
        };
        let calls: Vec<Value> = allowed
            .iter()
            .map(|t| {
                json!({
                    "type": "object",
                    "properties": {
                        "name": { "const": t.name },
                        arguments_key: t.parameters,
                    },
                    "required": ["name", arguments_key],
                    "additionalProperties": false,
                })
            })
            .collect();
        let call = json!({ "anyOf": calls });
        let list = if parallel {
            json!({ "type": "array", "items": call, "minItems": 1 })
        } else {
            json!({ "type": "array", "items": call, "minItems": 1, "maxItems": 1 })
        };
        Some(match self {
            Self::Generic => {
                let calls = json!({
                    "type": "object",
                    "properties": { "tool_calls": list },
                    "required": ["tool_calls"],
                    "additionalProperties": false,
                });
                if *choice == ToolChoice::Auto {
                    OutputConstraint::JsonSchema(
                        json!({ "anyOf": [calls, generic_answer_schema()]}),
                    )
                } else {
                    OutputConstraint::JsonSchema(calls)
                }
            }
            Self::Llama3 => OutputConstraint::JsonSchema(call),
            Self::Mistral => OutputConstraint::Lark(format!(
                "start: \"[TOOL_CALLS]\" calls\ncalls: %json {list}\n"
            )),
            Self::Hermes => {
                let repeat = if parallel { "+" } else { "" };
                OutputConstraint::Lark(format!(
                    "start: (\"<tool_call>\\n\" call \"\\n</tool_call>\" \"\\n\"?){repeat}\n\
                     call: %json {call}\n"
                ))
            }
        })
    }

    /// Splits a model's output into its text and the calls in it. Calls to tools not offered,
    /// and calls whose JSON does not parse, are left in the text.
    pub fn parse_output(self, text: &str, tools: &[Tool]) -> (String, Vec<ToolCall>) {
        let known = |name: &str| tools.iter().any(|t| t.name == name);
        let mut calls = Vec::new();
        let content = match self {
            Self::Hermes => {
                let mut content = String::new();
                let mut rest = text;
                while let Some(start) = rest.find("<tool_call>") {
                    content.push_str(&rest[..start]);
                    let body = &rest[start + "<tool_call>".len()..];
                    let (inner, after) = match body.find("</tool_call>") {
                        Some(end) => (&body[..end], &body[end + "</tool_call>".len()..]),
                        None => (body, ""),
                    };
                    let cut_off = after.is_empty() && !body.contains("</tool_call>");
                    match call_from(inner.trim(), "arguments", &known) {
                        Some(call) => calls.push(call),
                        // A last call cut off at max_tokens after complete ones is dropped.
                        None if cut_off && !calls.is_empty() => {}
                        None => content.push_str(&rest[start..rest.len() - after.len()]),
                    }
                    rest = after;
                }
                content.push_str(rest);
                content
            }
            Self::Llama3 => {
                let body = text.trim().trim_start_matches("<|python_tag|>").trim();
                match call_from(body, "parameters", &known)
                    .or_else(|| call_from(body, "arguments", &known))
                {
                    Some(call) => {
                        calls.push(call);
                        String::new()
                    }
                    None => text.to_owned(),
                }
            }
            Self::Mistral => {
                let trimmed = text.trim_start();
                let body = trimmed
                    .strip_prefix("[TOOL_CALLS]")
                    .unwrap_or(trimmed)
                    .trim();
                match list_from(body, &known).or_else(|| complete_calls(body, &known)) {
                    Some(list) if body.starts_with('[') => {
                        calls = list;
                        String::new()
                    }
                    _ => text.to_owned(),
                }
            }
            Self::Generic => match serde_json::from_str::<Value>(text.trim()) {
                Ok(Value::Object(map)) => match (map.get("tool_calls"), map.get("response")) {
                    (Some(list), _) => match list_from(&list.to_string(), &known) {
                        Some(list) => {
                            calls = list;
                            String::new()
                        }
                        None => text.to_owned(),
                    },
                    (None, Some(Value::String(response))) => response.clone(),
                    _ => text.to_owned(),
                },
                // Cut off (at max_tokens) inside the list: the calls written in full; inside a
                // plain answer: the text written so far.
                _ => match truncated_generic_list(text).and_then(|l| complete_calls(l, &known)) {
                    Some(list) => {
                        calls = list;
                        String::new()
                    }
                    None => truncated_generic_answer(text).unwrap_or_else(|| text.to_owned()),
                },
            },
        };
        // The same call twice in one answer (a small model repeating itself) is made once.
        let mut seen = std::collections::HashSet::new();
        calls.retain(|c| seen.insert((c.name.clone(), c.arguments.clone())));
        (content.trim().to_owned(), calls)
    }

    /// The text of a plain answer being written in the generic format (`{"response": "…`),
    /// as far as it can be decoded now; `None` for anything else. Lets a stream send the
    /// answer as it is written instead of holding it to the end.
    pub fn partial_answer(self, text: &str) -> Option<String> {
        if self != Self::Generic {
            return None;
        }
        truncated_generic_answer(text)
    }

    /// Whether text streamed so far may be the start of a call, so that it must be held back
    /// rather than sent as content.
    pub fn may_start_call(self, text: &str) -> bool {
        let text = text.trim_start();
        match self {
            Self::Hermes => text.contains("<tool_call>") || partial_suffix(text, "<tool_call>"),
            Self::Mistral => {
                text.starts_with('[') || (!text.is_empty() && "[TOOL_CALLS]".starts_with(text))
            }
            Self::Llama3 | Self::Generic => {
                text.is_empty()
                    || text.starts_with('{')
                    || text.starts_with("<|python_tag|>")
                    || "<|python_tag|>".starts_with(text)
            }
        }
    }
}

/// Whether `text` ends with a proper prefix of `marker`.
fn partial_suffix(text: &str, marker: &str) -> bool {
    (1..marker.len()).any(|n| text.ends_with(&marker[..n]))
}

fn call_from(body: &str, arguments_key: &str, known: &dyn Fn(&str) -> bool) -> Option<ToolCall> {
    let Value::Object(map) = serde_json::from_str::<Value>(body).ok()? else {
        return None;
    };
    object_call(&map, arguments_key, known)
}

fn object_call(
    map: &serde_json::Map<String, Value>,
    arguments_key: &str,
    known: &dyn Fn(&str) -> bool,
) -> Option<ToolCall> {
    let name = map.get("name")?.as_str()?;
    if !known(name) {
        return None;
    }
    let arguments = match map.get(arguments_key)? {
        // Some models write the arguments as a JSON string.
        Value::String(s) if serde_json::from_str::<Value>(s).is_ok() => s.clone(),
        Value::Object(_) => map[arguments_key].to_string(),
        _ => return None,
    };
    Some(ToolCall {
        id: map
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        name: name.to_owned(),
        arguments,
    })
}

fn list_from(body: &str, known: &dyn Fn(&str) -> bool) -> Option<Vec<ToolCall>> {
    let Value::Array(items) = serde_json::from_str::<Value>(body).ok()? else {
        return None;
    };
    let calls: Option<Vec<ToolCall>> = items
        .iter()
        .map(|item| object_call(item.as_object()?, "arguments", known))
        .collect();
    calls.filter(|c| !c.is_empty())
}

/// The list in a generic-format answer that ends before its list does:
/// `{"tool_calls": [` and what follows.
fn truncated_generic_list(text: &str) -> Option<&str> {
    let rest = text.trim_start().strip_prefix('{')?.trim_start();
    let rest = rest.strip_prefix("\"tool_calls\"")?.trim_start();
    let rest = rest.strip_prefix(':')?.trim_start();
    rest.starts_with('[').then_some(rest)
}

/// The generic format's plain answer: `{"response": "…"}`.
fn generic_answer_schema() -> Value {
    json!({
        "type": "object",
        "properties": { "response": { "type": "string" } },
        "required": ["response"],
        "additionalProperties": false,
    })
}

/// The text of a generic `{"response": "…` answer whose end was cut off, unescaped up to the
/// last character written in full.
fn truncated_generic_answer(text: &str) -> Option<String> {
    let rest = text.trim_start().strip_prefix('{')?.trim_start();
    let rest = rest.strip_prefix("\"response\"")?.trim_start();
    let rest = rest.strip_prefix(':')?.trim_start();
    let body = rest.strip_prefix('"')?;
    // A cut inside an escape (`\`, `\u00`, a surrogate pair's `\ud83d\ude0`) leaves up to 11
    // characters that do not parse yet; one after the closing quote leaves the quote.
    (0..=body.len().min(12)).find_map(|keep_off| {
        let end = body.len() - keep_off;
        let head = body.get(..end)?;
        serde_json::from_str::<String>(&format!("\"{head}\"")).ok()
    })
}

/// The calls written in full at the start of a JSON list whose end was cut off.
fn complete_calls(list: &str, known: &dyn Fn(&str) -> bool) -> Option<Vec<ToolCall>> {
    let mut rest = list.trim_start().strip_prefix('[')?;
    let mut calls = Vec::new();
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
        if !rest.starts_with('{') {
            break;
        }
        let mut items = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
        let Some(Ok(Value::Object(item))) = items.next() else {
            break;
        };
        calls.push(object_call(&item, "arguments", known)?);
        rest = &rest[items.byte_offset()..];
    }
    (!calls.is_empty()).then_some(calls)
}

/// The system-turn text that describes tools to a model whose template knows none.
pub fn generic_tool_prompt(tools: &[Tool]) -> String {
    let described: Vec<Value> = tools
        .iter()
        .map(
            |t| json!({ "name": t.name, "description": t.description, "parameters": t.parameters }),
        )
        .collect();
    format!(
        "You can call these functions (each with a JSON Schema of its arguments):\n{}\n\
         To call functions, reply with only {{\"tool_calls\": [{{\"name\": \"<function name>\", \
         \"arguments\": {{<arguments>}}}}]}}. To answer without calling one, reply with \
         {{\"response\": \"<your answer>\"}}.",
        serde_json::to_string_pretty(&described).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools() -> Vec<Tool> {
        vec![Tool {
            name: "get_weather".into(),
            description: Some("Weather in a city".into()),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
        }]
    }

    #[test]
    fn formats_are_detected_from_the_template_text() {
        assert_eq!(
            ToolFormat::detect("{% if tools %}<tool_call>{% endif %}"),
            ToolFormat::Hermes
        );
        assert_eq!(ToolFormat::detect("[TOOL_CALLS]"), ToolFormat::Mistral);
        assert_eq!(
            ToolFormat::detect("<|start_header_id|>{% if tools %}{% endif %}"),
            ToolFormat::Llama3
        );
        assert_eq!(ToolFormat::detect("<|im_start|>"), ToolFormat::Generic);
    }

    #[test]
    fn each_format_parses_its_calls_and_keeps_the_rest_as_text() {
        let t = tools();
        let (text, calls) = ToolFormat::Hermes.parse_output(
            "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
            &t,
        );
        assert_eq!(text, "Let me check.");
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].name, "get_weather");
        assert_eq!(
            serde_json::from_str::<Value>(&calls[0].arguments).unwrap(),
            json!({"city": "Paris"})
        );
        let (_, calls) = ToolFormat::Llama3.parse_output(
            "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}",
            &t,
        );
        assert_eq!(calls[0].name, "get_weather");
        let (_, calls) = ToolFormat::Mistral.parse_output(
            "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}, {\"name\": \"get_weather\", \"arguments\": {\"city\": \"Bern\"}}]",
            &t,
        );
        assert_eq!(calls.len(), 2);
        let (_, calls) = ToolFormat::Generic.parse_output(
            "{\"tool_calls\": [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Lima\"}}]}",
            &t,
        );
        assert_eq!(calls.len(), 1);
        let (text, calls) = ToolFormat::Generic.parse_output("{\"response\": \"Hello\"}", &t);
        assert_eq!((text.as_str(), calls.len()), ("Hello", 0));
        // A call to a tool that was not offered is text.
        let (text, calls) = ToolFormat::Hermes.parse_output(
            "<tool_call>{\"name\": \"rm_rf\", \"arguments\": {}}</tool_call>",
            &t,
        );
        assert!(calls.is_empty());
        assert!(text.contains("rm_rf"));
    }

    #[test]
    fn an_answer_cut_off_keeps_its_complete_calls_and_repeats_are_made_once() {
        let t = tools();
        let paris = "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}";
        let rome = "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}";
        let cut = "{\"name\": \"get_weather\", \"argu";
        let (text, calls) = ToolFormat::Generic.parse_output(
            &format!("{{\"tool_calls\": [{paris},\n {rome}, {paris}, {cut}"),
            &t,
        );
        let cities: Vec<Value> = calls
            .iter()
            .map(|c| serde_json::from_str::<Value>(&c.arguments).unwrap()["city"].clone())
            .collect();
        assert_eq!(cities, [json!("Paris"), json!("Rome")]);
        assert_eq!(text, "");
        let (_, calls) =
            ToolFormat::Mistral.parse_output(&format!("[TOOL_CALLS][{rome}, {cut}"), &t);
        assert_eq!(calls.len(), 1);
        let (text, calls) = ToolFormat::Hermes.parse_output(
            &format!("<tool_call>\n{rome}\n</tool_call>\n<tool_call>\n{cut}"),
            &t,
        );
        assert_eq!((text.as_str(), calls.len()), ("", 1));
        // Nothing complete: the text stays text.
        let (text, calls) =
            ToolFormat::Generic.parse_output(&format!("{{\"tool_calls\": [{cut}"), &t);
        assert!(calls.is_empty() && text.starts_with("{\"tool_calls\""));
    }

    #[test]
    fn forced_choices_get_a_grammar_and_auto_only_for_generic() {
        let t = tools();
        assert!(ToolFormat::Hermes
            .constraint(&t, &ToolChoice::Auto, true)
            .is_none());
        assert!(ToolFormat::Hermes
            .constraint(&t, &ToolChoice::None, true)
            .is_none());
        match ToolFormat::Generic.constraint(&t, &ToolChoice::None, true) {
            Some(OutputConstraint::JsonSchema(schema)) => {
                assert_eq!(schema["required"], json!(["response"]))
            }
            other => panic!("{other:?}"),
        }
        match ToolFormat::Hermes.constraint(&t, &ToolChoice::Required, false) {
            Some(OutputConstraint::Lark(grammar)) => {
                assert!(grammar.contains("<tool_call>"), "{grammar}");
                assert!(grammar.contains("get_weather"), "{grammar}");
            }
            other => panic!("{other:?}"),
        }
        match ToolFormat::Generic.constraint(&t, &ToolChoice::Auto, true) {
            Some(OutputConstraint::JsonSchema(schema)) => {
                assert_eq!(schema["anyOf"].as_array().unwrap().len(), 2)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_cut_off_generic_answer_keeps_its_text() {
        let t = tools();
        for (cut, text) in [
            ("{\"response\": \"It is sunny in Par", "It is sunny in Par"),
            ("{\"response\":\"line\\nnext\\", "line\nnext"),
            ("{\"response\": \"caf\\u00", "caf"),
            ("{\"response\": \"", ""),
            ("{\"response\": \"ok \\ud83d\\ude0", "ok"),
            ("{\"response\": \"ok \\ud83d\\ude00\"}", "ok \u{1f600}"),
        ] {
            assert_eq!(
                ToolFormat::Generic.parse_output(cut, &t),
                (text.into(), vec![])
            );
        }
        // Not an answer: the text stays as it is.
        let (text, _) = ToolFormat::Generic.parse_output("{\"other\": \"x", &t);
        assert_eq!(text, "{\"other\": \"x");
    }

    #[test]
    fn held_back_text_is_only_what_may_start_a_call() {
        assert!(ToolFormat::Hermes.may_start_call("Sure <tool_"));
        assert!(!ToolFormat::Hermes.may_start_call("Sure, the weather"));
        assert!(ToolFormat::Generic.may_start_call("{\"tool"));
        assert!(!ToolFormat::Llama3.may_start_call("The answer"));
    }
}
