use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::Error;

const MAX_NAME_LEN: usize = 63;

/// Checks the naming rule shared by models, aliases and label keys:
/// `[a-z0-9][a-z0-9._-]{0,62}`. Such a name can never be a path (`..` is impossible because a
/// name must start with a letter or digit, and `/` is not allowed).
fn check_name(kind: &str, s: &str) -> Result<(), Error> {
    let valid_first = s
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let valid_rest = s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
    if valid_first && valid_rest && s.len() <= MAX_NAME_LEN {
        Ok(())
    } else {
        Err(Error::InvalidName(format!(
            "invalid {kind} '{}': use 1 to 63 characters from a-z, 0-9, '.', '_' and '-', starting with a letter or digit",
            s.escape_default()
        )))
    }
}

/// A validated model name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ModelName(String);

impl ModelName {
    /// Validates `s` as a model name.
    pub fn new(s: &str) -> Result<Self, Error> {
        check_name("model name", s)?;
        Ok(Self(s.to_owned()))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ModelName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::new(s)
    }
}

impl<'de> Deserialize<'de> for ModelName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

/// A validated label key (same rules as model names).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LabelKey(String);

impl LabelKey {
    /// Validates `s` as a label key.
    pub fn new(s: &str) -> Result<Self, Error> {
        check_name("label key", s)?;
        Ok(Self(s.to_owned()))
    }

    /// Consumes the key, returning its string.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// Which version of a model a request asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VersionRef {
    /// Whatever the model's routing decides: its `production` alias, else its policy, else its
    /// newest version.
    Default,
    /// A pinned version number (starting at 1).
    Number(u32),
    /// An alias such as `staging`.
    Alias(String),
}

impl VersionRef {
    /// Parses a version segment (`3`) or an alias (`staging`).
    pub fn parse(s: &str) -> Result<Self, Error> {
        if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() {
            return Self::parse_number(s).map(Self::Number);
        }
        check_name("version or alias", s)?;
        Ok(Self::Alias(s.to_owned()))
    }

    /// Parses a positive version number.
    pub fn parse_number(s: &str) -> Result<u32, Error> {
        match s.parse::<u32>() {
            Ok(n) if n >= 1 && s.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
            _ => Err(Error::InvalidName(format!(
                "invalid model version '{}': expected a version number starting at 1",
                s.escape_default()
            ))),
        }
    }
}

impl fmt::Display for VersionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::Number(n) => write!(f, "{n}"),
            Self::Alias(a) => f.write_str(a),
        }
    }
}

/// Parses `name`, `name@3` or `name@alias`, the model syntax used wherever a model is named.
pub fn parse_model_ref(s: &str) -> Result<(ModelName, VersionRef), Error> {
    match s.split_once('@') {
        Some((name, version)) => Ok((ModelName::new(name)?, VersionRef::parse(version)?)),
        None => Ok((ModelName::new(s)?, VersionRef::Default)),
    }
}

/// Parses a model address as every protocol carries it: the model segment (`name`, `name@3` or
/// `name@alias`) and, where the protocol has one, a separate version segment (v2's
/// `versions/{v}`, gRPC's `version` field; `None` or empty when absent). Giving both is
/// ambiguous.
pub fn parse_address(model: &str, version: Option<&str>) -> Result<(ModelName, VersionRef), Error> {
    let (name, inline) = parse_model_ref(model)?;
    match (version.filter(|v| !v.is_empty()), inline) {
        (None, inline) => Ok((name, inline)),
        (Some(v), VersionRef::Default) => Ok((name, VersionRef::parse(v)?)),
        (Some(_), _) => Err(Error::InvalidName(
            "give the version either as name@version or in the version segment, not both".into(),
        )),
    }
}

/// Validates an alias name (same rules as model names; it must not be all digits).
pub fn validate_alias(s: &str) -> Result<(), Error> {
    match VersionRef::parse(s)? {
        VersionRef::Alias(_) => Ok(()),
        _ => Err(Error::InvalidName(format!(
            "invalid alias '{s}': an alias cannot be a number"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_following_the_rule() {
        for ok in ["a", "credit-risk", "bc.v2_x", "0model", &"a".repeat(63)] {
            assert!(ModelName::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_names_that_could_reach_the_filesystem_or_break_urls() {
        for bad in [
            "",
            "..",
            ".hidden",
            "-x",
            "_x",
            "A",
            "a/b",
            "a\\b",
            "a b",
            "é",
            "a\0",
            "../etc",
            &"a".repeat(64),
        ] {
            assert!(ModelName::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn version_refs_are_positive_numbers_or_aliases() {
        assert_eq!(VersionRef::parse("3").unwrap(), VersionRef::Number(3));
        assert_eq!(
            VersionRef::parse("staging").unwrap(),
            VersionRef::Alias("staging".into())
        );
        for bad in ["0", "-1", "+1", "X", "", "99999999999", "a/b"] {
            assert!(VersionRef::parse(bad).is_err(), "{bad}");
        }
        assert!(validate_alias("2").is_err());
    }

    #[test]
    fn model_refs_carry_an_optional_version_or_alias() {
        let (name, v) = parse_model_ref("bc@7").unwrap();
        assert_eq!((name.as_str(), v), ("bc", VersionRef::Number(7)));
        assert_eq!(
            parse_model_ref("bc@canary").unwrap().1,
            VersionRef::Alias("canary".into())
        );
        assert_eq!(parse_model_ref("bc").unwrap().1, VersionRef::Default);
        assert!(parse_model_ref("bc@").is_err());
        assert!(parse_model_ref("@1").is_err());
    }

    #[test]
    fn addresses_take_the_version_inline_or_in_its_segment_but_not_both() {
        let parse = |m, v| parse_address(m, v).map(|(n, v)| (n.to_string(), v));
        assert_eq!(parse("bc", None).unwrap().1, VersionRef::Default);
        assert_eq!(parse("bc", Some("")).unwrap().1, VersionRef::Default);
        assert_eq!(parse("bc", Some("2")).unwrap().1, VersionRef::Number(2));
        assert_eq!(
            parse("bc@canary", None).unwrap().1,
            VersionRef::Alias("canary".into())
        );
        assert!(parse("bc@1", Some("2")).is_err());
        assert!(parse("bc", Some("0")).is_err());
    }
}
