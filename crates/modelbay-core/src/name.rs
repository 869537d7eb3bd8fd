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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VersionRef {
    /// The newest version.
    Latest,
    /// A pinned version number (starting at 1).
    Number(u32),
}

impl VersionRef {
    /// Parses the `{v}` segment of a v2 URL: a positive version number.
    pub fn parse(s: &str) -> Result<Self, Error> {
        Self::parse_number(s).map(Self::Number)
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
            Self::Latest => f.write_str("latest"),
            Self::Number(n) => write!(f, "{n}"),
        }
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
    fn version_refs_are_positive_numbers() {
        assert_eq!(VersionRef::parse("3").unwrap(), VersionRef::Number(3));
        for bad in ["0", "-1", "+1", "x", "", "99999999999"] {
            assert!(VersionRef::parse(bad).is_err(), "{bad}");
        }
    }
}
