//! The content digest that names every artifact: `sha256:` and 64 lowercase hex digits.

use std::fmt;

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::{Error, Result};

const PREFIX: &str = "sha256:";

/// A SHA-256 content digest, always well formed: the only way to get one is to hash bytes or
/// to parse a string that has the exact shape, so a digest never smuggles a path.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Digest(String);

impl Digest {
    /// The digest of a finished SHA-256 hash.
    pub fn from_hasher(hasher: Sha256) -> Self {
        Self(format!("{PREFIX}{}", hex::encode(hasher.finalize())))
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(bytes);
        Self::from_hasher(hasher)
    }

    /// Parses `sha256:<64 lowercase hex>`.
    pub fn parse(text: &str) -> Result<Self> {
        let hex = text
            .strip_prefix(PREFIX)
            .filter(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .ok_or_else(|| Error::Decode("a stored digest is not sha256:<64 hex digits>".into()))?;
        Ok(Self(format!("{PREFIX}{hex}")))
    }

    /// `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 hex digits alone (object keys, cache file names).
    pub fn hex(&self) -> &str {
        &self.0[PREFIX.len()..]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_only_the_canonical_shape() {
        let good = Digest::of(b"abc");
        assert_eq!(Digest::parse(good.as_str()).unwrap(), good);
        assert_eq!(good.hex().len(), 64);
        for bad in [
            "",
            "sha256:",
            "md5:900150983cd24fb0d6963f7d28e17f72",
            &good.as_str().to_uppercase(),
            &format!("{}0", good.as_str()),
            &format!("sha256:../../{}", &good.hex()[6..]),
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad}");
        }
    }
}
