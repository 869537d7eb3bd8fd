//! Generation parameters in layers: what a request sets, over what the publisher set for the
//! version, over what the GGUF file recommends, over llama.cpp's server defaults. Each layer
//! sets only some fields; [`GenerationParams::over`] stacks two, [`GenerationParams::resolve`]
//! fills the rest.

use serde::{Deserialize, Serialize};

use super::{SamplingParams, ToolFormat};
use crate::{Error, Result};

/// The cap on generated tokens when neither the request nor the version sets `max_tokens`: a
/// forgotten limit must not silently fill the whole context.
pub const DEFAULT_MAX_TOKENS: u32 = 1024;
/// Largest `top_k`, and the longest penalty window.
const MAX_WINDOW: i64 = 1 << 20;

/// Sampling fields and the generated-token cap, each optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub typical_p: Option<f32>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        alias = "repeat_penalty",
        rename = "repetition_penalty"
    )]
    pub repeat_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeat_last_n: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// How the model writes tool calls (`hermes`, `llama3`, `mistral`, `generic`), where the
    /// chat template's text does not show it; publisher setting only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_format: Option<String>,
}

fn check(name: &str, value: Option<f64>, low: f64, high: f64) -> Result<()> {
    match value {
        Some(v) if !(v.is_finite() && (low..=high).contains(&v)) => Err(Error::InvalidInput(
            format!("'{name}' must be between {low} and {high}, got {v}"),
        )),
        _ => Ok(()),
    }
}

fn above_zero(name: &str, value: Option<f32>, off: &str) -> Result<()> {
    match value {
        Some(v) if v <= 0.0 => Err(Error::InvalidInput(format!(
            "'{name}' must be above 0 ({off} turns it off)"
        ))),
        _ => Ok(()),
    }
}

impl GenerationParams {
    /// Field names a publisher may set, for error messages and `--param` help.
    pub const FIELDS: &'static [&'static str] = &[
        "temperature",
        "top_k",
        "top_p",
        "min_p",
        "typical_p",
        "repetition_penalty",
        "repeat_last_n",
        "presence_penalty",
        "frequency_penalty",
        "max_tokens",
        "tool_format",
    ];

    /// Refuses values outside each field's range, naming the field.
    pub fn validate(&self) -> Result<()> {
        let f = |v: Option<f32>| v.map(f64::from);
        check("temperature", f(self.temperature), 0.0, 2.0)?;
        check("top_p", f(self.top_p), 0.0, 1.0)?;
        check("min_p", f(self.min_p), 0.0, 1.0)?;
        check("typical_p", f(self.typical_p), 0.0, 1.0)?;
        above_zero("typical_p", self.typical_p, "1")?;
        check("repetition_penalty", f(self.repeat_penalty), 0.0, 10.0)?;
        above_zero("repetition_penalty", self.repeat_penalty, "1")?;
        check("presence_penalty", f(self.presence_penalty), -2.0, 2.0)?;
        check("frequency_penalty", f(self.frequency_penalty), -2.0, 2.0)?;
        let i = |v: Option<i32>| v.map(f64::from);
        check("top_k", i(self.top_k), 0.0, MAX_WINDOW as f64)?;
        check(
            "repeat_last_n",
            i(self.repeat_last_n),
            -1.0,
            MAX_WINDOW as f64,
        )?;
        if self.max_tokens == Some(0) {
            return Err(Error::InvalidInput(
                "'max_tokens' must be at least 1".into(),
            ));
        }
        if let Some(format) = &self.tool_format {
            ToolFormat::parse(format)?;
        }
        Ok(())
    }

    /// `self` where it sets a field, `lower` elsewhere.
    pub fn over(&self, lower: &Self) -> Self {
        Self {
            temperature: self.temperature.or(lower.temperature),
            top_k: self.top_k.or(lower.top_k),
            top_p: self.top_p.or(lower.top_p),
            min_p: self.min_p.or(lower.min_p),
            typical_p: self.typical_p.or(lower.typical_p),
            repeat_penalty: self.repeat_penalty.or(lower.repeat_penalty),
            repeat_last_n: self.repeat_last_n.or(lower.repeat_last_n),
            presence_penalty: self.presence_penalty.or(lower.presence_penalty),
            frequency_penalty: self.frequency_penalty.or(lower.frequency_penalty),
            max_tokens: self.max_tokens.or(lower.max_tokens),
            tool_format: self
                .tool_format
                .clone()
                .or_else(|| lower.tool_format.clone()),
        }
    }

    /// The sampler settings and token cap, each field left unset taking llama.cpp's server
    /// default ([`SamplingParams::llama_server_defaults`], [`DEFAULT_MAX_TOKENS`]).
    pub fn resolve(&self) -> (SamplingParams, u32) {
        let d = SamplingParams::llama_server_defaults();
        let sampling = SamplingParams {
            temperature: self.temperature.unwrap_or(d.temperature),
            top_k: self.top_k.unwrap_or(d.top_k),
            typical_p: self.typical_p.unwrap_or(d.typical_p),
            top_p: self.top_p.unwrap_or(d.top_p),
            min_p: self.min_p.unwrap_or(d.min_p),
            repeat_penalty: self.repeat_penalty.unwrap_or(d.repeat_penalty),
            presence_penalty: self.presence_penalty.unwrap_or(d.presence_penalty),
            frequency_penalty: self.frequency_penalty.unwrap_or(d.frequency_penalty),
            repeat_last_n: self.repeat_last_n.unwrap_or(d.repeat_last_n),
            ..d
        };
        (sampling, self.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS))
    }

    /// Parses `key=value` settings (`modelbay push --param`), validated.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        let mut map = serde_json::Map::new();
        for pair in pairs {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| Error::InvalidInput(format!("'{pair}' is not key=value")))?;
            let key = key.trim();
            if !Self::FIELDS.contains(&key) && key != "repeat_penalty" {
                return Err(Error::InvalidInput(format!(
                    "'{key}' is not a generation parameter; use one of {}",
                    Self::FIELDS.join(", ")
                )));
            }
            let value = if key == "tool_format" {
                serde_json::Value::String(value.trim().to_owned())
            } else {
                let number: serde_json::Number = value.trim().parse().map_err(|_| {
                    Error::InvalidInput(format!("'{key}' must be a number, got '{value}'"))
                })?;
                serde_json::Value::Number(number)
            };
            map.insert(key.to_owned(), value);
        }
        Self::from_json(serde_json::Value::Object(map))
    }

    /// Parses and validates a JSON object of settings; unknown fields are refused by name.
    pub fn from_json(value: serde_json::Value) -> Result<Self> {
        let params: Self = serde_json::from_value(value)
            .map_err(|e| Error::InvalidInput(format!("invalid generation parameters: {e}")))?;
        params.validate()?;
        Ok(params)
    }

    /// The tool-call format set, if any and valid.
    pub fn tool_format(&self) -> Option<ToolFormat> {
        self.tool_format
            .as_deref()
            .and_then(|f| ToolFormat::parse(f).ok())
    }

    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_stack_field_by_field_and_resolve_to_llama_server_defaults() {
        let request = GenerationParams {
            temperature: Some(0.0),
            ..Default::default()
        };
        let publisher = GenerationParams {
            temperature: Some(0.7),
            top_k: Some(5),
            max_tokens: Some(64),
            ..Default::default()
        };
        let file = GenerationParams {
            top_k: Some(20),
            top_p: Some(0.8),
            ..Default::default()
        };
        let (sampling, cap) = request.over(&publisher.over(&file)).resolve();
        assert_eq!(sampling.temperature, 0.0);
        assert_eq!(sampling.top_k, 5);
        assert_eq!(sampling.top_p, 0.8);
        assert_eq!(sampling.min_p, 0.05);
        assert_eq!(cap, 64);
        assert_eq!(GenerationParams::default().resolve().1, DEFAULT_MAX_TOKENS);
    }

    #[test]
    fn pairs_are_parsed_validated_and_named_when_wrong() {
        let p = GenerationParams::from_pairs(["temperature=0.7", "top_k=40", "max_tokens=512"])
            .unwrap();
        assert_eq!(p.temperature, Some(0.7));
        assert_eq!(p.top_k, Some(40));
        assert_eq!(p.max_tokens, Some(512));
        let err = |pairs: &[&str]| {
            GenerationParams::from_pairs(pairs.iter().copied())
                .unwrap_err()
                .to_string()
        };
        assert!(err(&["temp=1"]).contains("'temp' is not a generation parameter"));
        assert!(err(&["temperature=3"]).contains("'temperature' must be between 0 and 2"));
        assert!(err(&["top_k=x"]).contains("'top_k' must be a number"));
        assert!(err(&["max_tokens=0"]).contains("'max_tokens'"));
        assert!(err(&["top_k"]).contains("not key=value"));
    }
}
