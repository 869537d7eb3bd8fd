use std::{collections::HashSet, fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{error::invalid, Error, LabelKey, VersionRef};

/// What an alias or a policy arm points at: a version number or an alias name. On the wire it is
/// a string, `"3"` or `"production"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Version(u32),
    Alias(String),
}

impl Target {
    /// As a version reference, for resolution.
    pub fn as_version_ref(&self) -> VersionRef {
        match self {
            Self::Version(n) => VersionRef::Number(*n),
            Self::Alias(a) => VersionRef::Alias(a.clone()),
        }
    }
}

impl FromStr for Target {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match VersionRef::parse(s)? {
            VersionRef::Number(n) => Ok(Self::Version(n)),
            VersionRef::Alias(a) => Ok(Self::Alias(a)),
            VersionRef::Default => Err(invalid!("a target must be a version number or an alias")),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Version(n) => write!(f, "{n}"),
            Self::Alias(a) => f.write_str(a),
        }
    }
}

impl Serialize for Target {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Number(n) => n.to_string(),
            Raw::Text(s) => s,
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One arm of a weighted split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedTarget {
    pub target: Target,
    pub weight: u32,
}

/// How a model's unpinned traffic is spread over its versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingPolicy {
    /// Weighted arms; each request goes to one of them.
    pub split: Vec<WeightedTarget>,
    /// A request header whose value pins a caller to one arm (e.g. `x-user-id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky_header: Option<String>,
    /// Receives a copy of the traffic; its answers are compared and recorded, never returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<Target>,
}

const MAX_ARMS: usize = 16;
const MAX_TOTAL_WEIGHT: u64 = 1_000_000;

impl RoutingPolicy {
    /// Checks the policy's shape (the registry checks that its targets exist).
    pub fn validate(&self) -> Result<(), Error> {
        if self.split.is_empty() || self.split.len() > MAX_ARMS {
            return Err(invalid!("a routing policy needs 1 to {MAX_ARMS} arms"));
        }
        let mut seen = HashSet::new();
        for arm in &self.split {
            if !seen.insert(&arm.target) {
                return Err(invalid!(
                    "target '{}' appears twice in the split",
                    arm.target
                ));
            }
        }
        let total: u64 = self.split.iter().map(|a| u64::from(a.weight)).sum();
        if total == 0 || total > MAX_TOTAL_WEIGHT {
            return Err(invalid!(
                "split weights must add up to between 1 and {MAX_TOTAL_WEIGHT}"
            ));
        }
        if let Some(header) = &self.sticky_header {
            LabelKey::new(header).map_err(|_| {
                invalid!(
                    "sticky header '{}' must be a lowercase header name",
                    header.escape_default()
                )
            })?;
        }
        Ok(())
    }

    /// Every target the policy references.
    pub fn targets(&self) -> impl Iterator<Item = &Target> {
        self.split
            .iter()
            .map(|a| &a.target)
            .chain(self.shadow.as_ref())
    }

    /// Picks an arm: by a stable hash of the sticky key when there is one, else by `random`.
    pub fn pick(&self, sticky_key: Option<&[u8]>, random: u64) -> &Target {
        let total: u64 = self.split.iter().map(|a| u64::from(a.weight)).sum();
        let point = sticky_key.map_or(random, fnv1a) % total.max(1);
        let mut acc = 0;
        for arm in &self.split {
            acc += u64::from(arm.weight);
            if point < acc {
                return &arm.target;
            }
        }
        &self.split[self.split.len() - 1].target
    }
}

/// FNV-1a: stable across processes and releases, so every replica pins a caller to the same arm.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(json: &str) -> RoutingPolicy {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn targets_parse_from_numbers_and_names() {
        let p = policy(
            r#"{"split":[{"target":"production","weight":90},{"target":3,"weight":10}],"shadow":"2"}"#,
        );
        assert_eq!(p.split[0].target, Target::Alias("production".into()));
        assert_eq!(p.split[1].target, Target::Version(3));
        assert_eq!(p.shadow, Some(Target::Version(2)));
        assert!(p.validate().is_ok());
        assert_eq!(serde_json::to_value(&p.split[1].target).unwrap(), "3");
    }

    #[test]
    fn invalid_policies_are_refused() {
        for bad in [
            r#"{"split":[]}"#,
            r#"{"split":[{"target":"a","weight":0}]}"#,
            r#"{"split":[{"target":"a","weight":1},{"target":"a","weight":1}]}"#,
            r#"{"split":[{"target":"a","weight":1}],"sticky_header":"X User"}"#,
        ] {
            assert!(policy(bad).validate().is_err(), "{bad}");
        }
        assert!(
            serde_json::from_str::<RoutingPolicy>(r#"{"split":[{"target":"0","weight":1}]}"#)
                .is_err()
        );
    }

    #[test]
    fn picks_follow_the_weights_and_sticky_keys_are_stable() {
        let p = policy(r#"{"split":[{"target":"a","weight":3},{"target":"b","weight":1}]}"#);
        let a = (0..4000u64)
            .filter(|r| p.pick(None, *r) == &Target::Alias("a".into()))
            .count();
        assert_eq!(a, 3000);
        let first = p.pick(Some(b"user-42"), 0).clone();
        assert!((0..100).all(|r| p.pick(Some(b"user-42"), r) == &first));
    }
}
