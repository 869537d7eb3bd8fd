//! OpenAI's function-calling and structured-output fields, validated into the protocol-neutral
//! tool and constraint types: `tools`, `tool_choice`, assistant `tool_calls`, `tool_call_id`,
//! `response_format`. Every malformed value is a 400 that names the field.

use modelbay_core::generation::{OutputConstraint, Tool, ToolCall, ToolChoice};
use serde_json::{json, Value};

use crate::error::ApiError;

/// Most tools one request may offer.
const MAX_TOOLS: usize = 128;
/// Longest function name (OpenAI's limit) and call id.
const MAX_NAME: usize = 64;
const MAX_ID: usize = 128;

/// Whether `name` is a valid function name: letters, digits, `_` and `-`, at most 64.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The `tools` list: function tools only.
pub(crate) fn tools(given: Option<&Value>) -> Result<Vec<Tool>, ApiError> {
    let Some(given) = given.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let Value::Array(items) = given else {
        return Err(ApiError::invalid("'tools' must be an array"));
    };
    if items.len() > MAX_TOOLS {
        return Err(ApiError::invalid(format!(
            "'tools' has {} entries; at most {MAX_TOOLS} are allowed",
            items.len()
        )));
    }
    let mut tools: Vec<Tool> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let kind = item.get("type").and_then(Value::as_str);
        if kind != Some("function") {
            return Err(ApiError::invalid(format!(
                "tools[{i}].type must be \"function\" (the only tool type this server runs)"
            )));
        }
        // Chat Completions nests the function; the Responses API does not.
        let function = item.get("function").unwrap_or(item);
        tools.push(function_tool(&format!("tools[{i}]"), function)?);
    }
    for (i, tool) in tools.iter().enumerate() {
        if tools[..i].iter().any(|t| t.name == tool.name) {
            return Err(ApiError::invalid(format!(
                "tools[{i}] repeats the function name '{}'",
                tool.name
            )));
        }
    }
    Ok(tools)
}

/// One function's `name`, `description` and `parameters` (a JSON Schema object).
pub(crate) fn function_tool(at: &str, function: &Value) -> Result<Tool, ApiError> {
    let name = function.get("name").and_then(Value::as_str).unwrap_or("");
    if !valid_name(name) {
        return Err(ApiError::invalid(format!(
            "{at}: the function name must be 1 to {MAX_NAME} letters, digits, '_' or '-'"
        )));
    }
    let description = match function.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(d)) => Some(d.clone()),
        Some(_) => {
            return Err(ApiError::invalid(format!(
                "{at}: 'description' must be a string"
            )))
        }
    };
    let parameters = match function.get("parameters") {
        None | Some(Value::Null) => json!({ "type": "object", "properties": {} }),
        Some(p @ Value::Object(_)) => p.clone(),
        Some(_) => {
            return Err(ApiError::invalid(format!(
                "{at}: 'parameters' must be a JSON Schema object"
            )))
        }
    };
    Ok(Tool {
        name: name.to_owned(),
        description,
        parameters,
    })
}

/// `tool_choice`: `none`, `auto`, `required` or `{"type": "function", "function": {"name"}}`
/// (or the Responses API's flat `{"type": "function", "name"}`). Defaults to `auto`.
pub(crate) fn tool_choice(given: Option<&Value>, tools: &[Tool]) -> Result<ToolChoice, ApiError> {
    let choice = match given.filter(|v| !v.is_null()) {
        None => ToolChoice::Auto,
        Some(Value::String(s)) => match s.as_str() {
            "none" => ToolChoice::None,
            "auto" => ToolChoice::Auto,
            "required" => ToolChoice::Required,
            _ => {
                return Err(ApiError::invalid(
                    "'tool_choice' must be none, auto, required or a named function",
                ))
            }
        },
        Some(object @ Value::Object(_)) => {
            let name = object
                .pointer("/function/name")
                .or_else(|| object.get("name"))
                .and_then(Value::as_str);
            match (object.get("type").and_then(Value::as_str), name) {
                (Some("function"), Some(name)) => ToolChoice::Function(name.to_owned()),
                _ => {
                    return Err(ApiError::invalid(
                        "'tool_choice' as an object must be {\"type\": \"function\", \
                         \"function\": {\"name\": …}}",
                    ))
                }
            }
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "'tool_choice' must be a string or an object",
            ))
        }
    };
    match &choice {
        ToolChoice::Required if tools.is_empty() => Err(ApiError::invalid(
            "'tool_choice' is required but 'tools' is empty",
        )),
        ToolChoice::Function(name) if !tools.iter().any(|t| &t.name == name) => Err(
            ApiError::invalid("'tool_choice' names a function that is not in 'tools'"),
        ),
        _ => Ok(choice),
    }
}

/// The `tool_calls` of an assistant message earlier in the conversation.
pub(crate) fn message_calls(index: usize, calls: Vec<Value>) -> Result<Vec<ToolCall>, ApiError> {
    calls
        .into_iter()
        .enumerate()
        .map(|(j, call)| {
            let at = format!("messages[{index}].tool_calls[{j}]");
            let id = call.get("id").and_then(Value::as_str).unwrap_or_default();
            let function = call.get("function").unwrap_or(&Value::Null);
            let name = function.get("name").and_then(Value::as_str).unwrap_or("");
            if !valid_name(name) {
                return Err(ApiError::invalid(format!(
                    "{at}.function.name must be 1 to {MAX_NAME} letters, digits, '_' or '-'"
                )));
            }
            let arguments = match function.get("arguments") {
                Some(Value::String(a)) => a.clone(),
                Some(a @ Value::Object(_)) => a.to_string(),
                None | Some(Value::Null) => "{}".to_owned(),
                Some(_) => {
                    return Err(ApiError::invalid(format!(
                        "{at}.function.arguments must be a JSON string"
                    )))
                }
            };
            Ok(ToolCall {
                id: call_id(index, id.to_owned())?,
                name: name.to_owned(),
                arguments,
            })
        })
        .collect()
}

/// A call id as clients send it back: short and printable.
pub(crate) fn call_id(index: usize, id: String) -> Result<String, ApiError> {
    if id.len() > MAX_ID || id.chars().any(|c| c.is_control() || c == '<' || c == '>') {
        return Err(ApiError::invalid(format!(
            "messages[{index}] has a tool call id that is not 1 to {MAX_ID} printable characters"
        )));
    }
    Ok(id)
}

/// `response_format`: `text`, `json_object` or `json_schema` (with `json_schema.schema`).
pub(crate) fn response_format(given: Option<&Value>) -> Result<Option<OutputConstraint>, ApiError> {
    let Some(format) = given.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(OutputConstraint::json(&json!({"type": "object"})))),
        Some("json_schema") => {
            let spec = format.get("json_schema").unwrap_or(&Value::Null);
            schema_constraint("response_format.json_schema", spec).map(Some)
        }
        _ => Err(ApiError::invalid(
            "'response_format.type' must be text, json_object or json_schema",
        )),
    }
}

/// A `{name, schema, strict}` object as the output's JSON Schema.
pub(crate) fn schema_constraint(at: &str, spec: &Value) -> Result<OutputConstraint, ApiError> {
    match spec.get("schema") {
        Some(schema @ Value::Object(_)) => Ok(OutputConstraint::json(schema)),
        // A schema of `true` (or none at all) allows any JSON value; keep it an object, as
        // OpenAI's structured outputs always are.
        None | Some(Value::Bool(true)) if spec.is_object() => {
            Ok(OutputConstraint::json(&json!({"type": "object"})))
        }
        _ => Err(ApiError::invalid(format!(
            "'{at}.schema' must be a JSON Schema object"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_tool_fields_are_refused_by_name() {
        let err = |v: Value| tools(Some(&v)).unwrap_err().to_string();
        assert!(err(json!({})).contains("'tools' must be an array"));
        assert!(err(json!([{"type": "code_interpreter"}])).contains("tools[0].type"));
        assert!(
            err(json!([{"type": "function", "function": {"name": "a b"}}]))
                .contains("function name")
        );
        assert!(
            err(json!([{"type": "function", "function": {"name": "f", "parameters": 3}}]))
                .contains("'parameters'")
        );
        assert!(err(json!([
            {"type": "function", "function": {"name": "f"}},
            {"type": "function", "function": {"name": "f"}}
        ]))
        .contains("repeats"));
        let offered = tools(Some(
            &json!([{"type": "function", "function": {"name": "f"}}]),
        ))
        .unwrap();
        assert_eq!(
            tool_choice(
                Some(&json!({"type": "function", "function": {"name": "f"}})),
                &offered
            )
            .unwrap(),
            ToolChoice::Function("f".into())
        );
        assert!(tool_choice(Some(&json!("sometimes")), &offered).is_err());
        assert!(tool_choice(
            Some(&json!({"type": "function", "function": {"name": "g"}})),
            &offered
        )
        .is_err());
        assert!(tool_choice(Some(&json!("required")), &[]).is_err());
    }

    #[test]
    fn response_formats_become_schemas() {
        assert_eq!(
            response_format(Some(&json!({"type": "text"}))).unwrap(),
            None
        );
        assert!(matches!(
            response_format(Some(&json!({"type": "json_object"}))).unwrap(),
            Some(OutputConstraint::JsonSchema(_))
        ));
        assert!(response_format(Some(&json!({"type": "json_schema"}))).is_err());
        assert!(response_format(Some(&json!({"type": "yaml"}))).is_err());
        assert!(response_format(Some(
            &json!({"type": "json_schema", "json_schema": {"name": "x", "schema": []}})
        ))
        .is_err());
    }
}
