//! Client-facing descriptions of JSON body errors that never repeat what the client sent.
//!
//! serde_json's messages quote the offending value (`invalid type: string "…", expected …`,
//! `unknown variant `…``); a body may hold a prompt or a tensor, so those parts are replaced by
//! what was expected and where.

use crate::ApiError;

/// A 400 for a body that did not parse: `what` says which body ("inference request").
pub(crate) fn invalid_json(what: &str, e: &serde_json::Error) -> ApiError {
    ApiError::invalid(format!("invalid {what}: {}", describe(e)))
}

fn describe(e: &serde_json::Error) -> String {
    let at = format!("line {} column {}", e.line(), e.column());
    match e.classify() {
        serde_json::error::Category::Syntax => format!("not valid JSON at {at}"),
        serde_json::error::Category::Eof => "the JSON ends early".to_owned(),
        serde_json::error::Category::Io => "the body could not be read".to_owned(),
        serde_json::error::Category::Data => {
            let full = e.to_string();
            let message = full.strip_suffix(&format!(" at {at}")).unwrap_or(&full);
            let expected = message.split_once(", expected ").map(|(_, x)| x);
            let kept = if message.starts_with("invalid type") {
                format!(
                    "a value of the wrong type (expected {})",
                    expected.unwrap_or("?")
                )
            } else if message.starts_with("invalid value") || message.starts_with("invalid length")
            {
                format!(
                    "a value out of range (expected {})",
                    expected.unwrap_or("?")
                )
            } else if message.starts_with("unknown variant") {
                format!("an unknown value (expected {})", expected.unwrap_or("?"))
            } else if message.starts_with("unknown field") {
                format!("an unknown field (expected {})", expected.unwrap_or("?"))
            } else {
                // `missing field `x``, `duplicate field `x`` and untagged-enum mismatches name
                // only modelbay's own fields.
                message.to_owned()
            };
            format!("{kept} at {at}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        count: u8,
        #[serde(default)]
        role: Option<Role>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Role {
        User,
    }

    fn message(json: &str) -> String {
        let e = serde_json::from_str::<Body>(json).unwrap_err();
        invalid_json("request", &e).to_string()
    }

    #[test]
    fn values_the_client_sent_are_not_repeated() {
        for (json, expected) in [
            (
                r#"{"count": "secret-1"}"#,
                "a value of the wrong type (expected u8)",
            ),
            (r#"{"count": 31337}"#, "a value out of range (expected u8)"),
            (
                r#"{"count": 1, "role": "secret-2"}"#,
                "an unknown value (expected `user`)",
            ),
            (
                r#"{"count": 1, "secret-3": 1}"#,
                "an unknown field (expected `count` or `role`)",
            ),
            (r#"{"secret-4"#, "the JSON ends early"),
            (r#"{"count": secret}"#, "not valid JSON at line 1 column 11"),
        ] {
            let m = message(json);
            assert!(!m.contains("secret") && !m.contains("31337"), "{m}");
            assert!(m.contains(expected), "{m} lacks {expected}");
        }
        assert!(message("{}").contains("missing field `count`"));
    }
}
