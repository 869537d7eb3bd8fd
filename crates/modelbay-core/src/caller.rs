//! Who is asking: the caller an API key stands for (or the local operator when authentication
//! is off), with its role and the model names it may touch. A `Caller` travels from the edge
//! into every runtime operation, which checks it, and becomes the audit trail's actor.

use std::{fmt, net::SocketAddr, str::FromStr, sync::Arc};

use serde::{Deserialize, Serialize};

use crate::{Error, ModelName};

/// What a key may do. Roles are fixed sets of [`Access`] kinds; see [`Role::allows`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, keys included.
    Admin,
    /// Changes to models (push, promote, rollback, traffic, settings, archive, delete,
    /// load/unload) and reading them.
    Publisher,
    /// Inference of every kind and read-only model metadata.
    Consumer,
    /// Metrics, read-only management and the audit trail.
    Viewer,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Publisher, Role::Consumer, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Publisher => "publisher",
            Self::Consumer => "consumer",
            Self::Viewer => "viewer",
        }
    }

    /// Whether the role grants `access` (model scopes are checked apart, by the caller).
    pub fn allows(self, access: Access) -> bool {
        use Access::*;
        match self {
            Self::Admin => true,
            Self::Publisher => matches!(access, Open | Metadata | Inspect | Publish),
            Self::Consumer => matches!(access, Open | Metadata | Infer),
            Self::Viewer => matches!(access, Open | Metadata | Inspect),
        }
    }

    /// Whether keys of this role may be limited to model-name patterns.
    pub fn scopable(self) -> bool {
        matches!(self, Self::Publisher | Self::Consumer)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "unknown role '{}'; use admin, publisher, consumer or viewer",
                    s.escape_default()
                ))
            })
    }
}

/// What a route or operation needs. Every HTTP route and gRPC method declares one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// No key needed: liveness and readiness probes.
    Open,
    /// Read-only metadata of the models a caller may use (signatures, lists, readiness).
    Metadata,
    /// Running a model: inference, explanations, embeddings, generation.
    Infer,
    /// Read-only management and monitoring: versions, aliases, policies, settings, drift,
    /// shadow reports, the audit trail and metrics.
    Inspect,
    /// Changing a model: push, promote, rollback, traffic, settings, archive, delete,
    /// load/unload.
    Publish,
    /// API keys.
    Keys,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Metadata => "metadata",
            Self::Infer => "infer",
            Self::Inspect => "inspect",
            Self::Publish => "publish",
            Self::Keys => "keys",
        }
    }
}

/// A model-name pattern: a model name in which `*` stands for any run of characters
/// (`credit-*`, `*-eu`, `*`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ModelPattern(String);

/// Longest pattern accepted.
const MAX_PATTERN: usize = 64;

impl ModelPattern {
    pub fn new(s: &str) -> Result<Self, Error> {
        let valid = !s.is_empty()
            && s.len() <= MAX_PATTERN
            && s.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'-' | b'_' | b'.' | b'*')
            });
        if !valid {
            return Err(Error::InvalidInput(format!(
                "invalid model pattern '{}': use model-name characters (a-z 0-9 - _ .) and *",
                s.escape_default()
            )));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `name` matches: each `*` matches any run of characters, the rest literally.
    pub fn matches(&self, name: &str) -> bool {
        let mut parts = self.0.split('*');
        let first = parts.next().unwrap_or_default();
        let Some(mut rest) = name.strip_prefix(first) else {
            return false;
        };
        let parts: Vec<&str> = parts.collect();
        let Some((last, middle)) = parts.split_last() else {
            // No `*`: the whole name must match.
            return rest.is_empty();
        };
        for part in middle {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
        rest.len() >= last.len() && rest.ends_with(last)
    }
}

impl TryFrom<String> for ModelPattern {
    type Error = Error;

    fn try_from(s: String) -> Result<Self, Error> {
        Self::new(&s)
    }
}

impl From<ModelPattern> for String {
    fn from(p: ModelPattern) -> Self {
        p.0
    }
}

impl fmt::Display for ModelPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Limits on what one key may ask for, so that one client cannot take a shared server's
/// capacity. `None` means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyLimits {
    /// Requests per second (a token bucket with one second of burst).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<f64>,
    /// Tokens a language model may generate for the key per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
    /// Sequences (running or waiting) a key may have at a language model at once; a request
    /// with `n` choices counts `n`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sequences: Option<u32>,
}

impl KeyLimits {
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(r) = self.requests_per_second {
            if !(r.is_finite() && r > 0.0 && r <= 1e6) {
                return Err(Error::InvalidInput(
                    "requests_per_second must be above 0 and at most 1000000".into(),
                ));
            }
        }
        if self.tokens_per_minute == Some(0) || self.max_sequences == Some(0) {
            return Err(Error::InvalidInput(
                "tokens_per_minute and max_sequences must be at least 1 (leave one out for no \
                 limit)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// These limits, with each one left out taken from `defaults`.
    pub fn or(self, defaults: KeyLimits) -> KeyLimits {
        KeyLimits {
            requests_per_second: self.requests_per_second.or(defaults.requests_per_second),
            tokens_per_minute: self.tokens_per_minute.or(defaults.tokens_per_minute),
            max_sequences: self.max_sequences.or(defaults.max_sequences),
        }
    }
}

/// The one who sends a request. Cheap to clone: it travels with every request.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    /// The API key's id; `None` for the local operator (authentication off).
    pub key_id: Option<Arc<str>>,
    /// The key's label, for people reading the audit trail.
    pub label: Arc<str>,
    pub role: Role,
    /// Model-name patterns the caller is limited to; empty: every model.
    pub models: Arc<[ModelPattern]>,
    /// Where the request came from, when known.
    pub remote: Option<SocketAddr>,
    /// The limits in force for this caller (the key's own, else the server's defaults).
    pub limits: KeyLimits,
}

impl Caller {
    /// The local operator of a server running with authentication off: an administrator
    /// recorded as `local`.
    pub fn local() -> Self {
        Self {
            key_id: None,
            label: "local".into(),
            role: Role::Admin,
            models: Arc::new([]),
            remote: None,
            limits: KeyLimits::default(),
        }
    }

    /// How the audit trail names this caller: `key:<id> (<label>)`, or `local`.
    pub fn actor(&self) -> String {
        match &self.key_id {
            Some(id) => format!("key:{id} ({})", self.label),
            None => "local".into(),
        }
    }

    /// Whether the caller may see or use the model `name` at all (its scopes).
    pub fn covers(&self, name: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|p| p.matches(name))
    }

    /// Whether the caller is limited to some models.
    pub fn is_scoped(&self) -> bool {
        !self.models.is_empty()
    }

    /// Checks the role grants `access` (for operations that concern no single model).
    pub fn require(&self, access: Access) -> Result<(), Error> {
        if self.role.allows(access) {
            Ok(())
        } else {
            Err(Error::PermissionDenied(format!(
                "a {} key cannot {}",
                self.role,
                describe(access)
            )))
        }
    }

    /// Checks the role grants `access` and the caller's scopes cover `model`.
    pub fn authorize(&self, access: Access, model: &ModelName) -> Result<(), Error> {
        self.require(access)?;
        if self.covers(model.as_str()) {
            Ok(())
        } else {
            Err(Error::PermissionDenied(format!(
                "this key is not allowed to use model '{model}'"
            )))
        }
    }

    /// Checks the role grants `access` over every model (scoped keys are refused).
    pub fn require_unscoped(&self, access: Access) -> Result<(), Error> {
        self.require(access)?;
        if self.is_scoped() {
            return Err(Error::PermissionDenied(
                "this key is limited to some models; this request concerns all of them".into(),
            ));
        }
        Ok(())
    }
}

fn describe(access: Access) -> &'static str {
    match access {
        Access::Open => "do this",
        Access::Metadata => "read model metadata",
        Access::Infer => "run models",
        Access::Inspect => "read management data, metrics or the audit trail",
        Access::Publish => "change models",
        Access::Keys => "manage API keys",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(s: &str) -> ModelPattern {
        ModelPattern::new(s).unwrap()
    }

    #[test]
    fn patterns_match_with_stars_anywhere() {
        assert!(pattern("credit-*").matches("credit-risk"));
        assert!(pattern("credit-*").matches("credit-"));
        assert!(!pattern("credit-*").matches("credit"));
        assert!(!pattern("credit-*").matches("xcredit-risk"));
        assert!(pattern("*-eu").matches("risk-eu"));
        assert!(!pattern("*-eu").matches("risk-eux"));
        assert!(pattern("a*b*c").matches("a-b-c"));
        assert!(pattern("a*b*c").matches("abc"));
        assert!(!pattern("a*b*c").matches("acb"));
        assert!(
            !pattern("ab*ba").matches("aba"),
            "the parts must not overlap"
        );
        assert!(pattern("*").matches("anything"));
        assert!(pattern("exact").matches("exact"));
        assert!(!pattern("exact").matches("exactly"));
        for bad in ["", "A*", "a/b", "a b", &"a".repeat(65)] {
            assert!(ModelPattern::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn roles_grant_their_access_kinds() {
        use Access::*;
        let table = [
            (Role::Admin, [true, true, true, true, true, true]),
            (Role::Publisher, [true, true, false, true, true, false]),
            (Role::Consumer, [true, true, true, false, false, false]),
            (Role::Viewer, [true, true, false, true, false, false]),
        ];
        for (role, expected) in table {
            let got = [Open, Metadata, Infer, Inspect, Publish, Keys].map(|a| role.allows(a));
            assert_eq!(got, expected, "{role}");
        }
    }

    #[test]
    fn scoped_callers_reach_only_their_models() {
        let caller = Caller {
            key_id: Some("k1".into()),
            label: "app".into(),
            role: Role::Consumer,
            models: vec![pattern("credit-*")].into(),
            remote: None,
            limits: KeyLimits::default(),
        };
        let credit = ModelName::new("credit-risk").unwrap();
        let other = ModelName::new("chat").unwrap();
        assert!(caller.authorize(Access::Infer, &credit).is_ok());
        assert!(caller.authorize(Access::Infer, &other).is_err());
        assert!(caller.authorize(Access::Publish, &credit).is_err());
        assert!(caller.require_unscoped(Access::Metadata).is_err());
        assert_eq!(caller.actor(), "key:k1 (app)");
        assert_eq!(Caller::local().actor(), "local");
    }
}
