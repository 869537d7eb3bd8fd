//! API keys: creation (the secret is shown once and only its SHA-256 digest is stored),
//! revocation, listing, and authentication against an in-memory cache of every key that the
//! operations here update after each commit, so a revocation takes effect at once.
//!
//! A key's secret is 256 random bits, so a plain SHA-256 of it cannot be reversed or guessed;
//! a slow password hash would only cost time on every request.

use std::{collections::HashMap, net::SocketAddr, sync::Arc};

use chrono::{DateTime, Utc};
use modelbay_core::{Access, Caller, KeyLimits, ModelPattern, Role};
use modelbay_registry::{KeyRecord, NewKey};
use parking_lot::RwLock;
use sha2::{Digest, Sha256};

use crate::{Error, Result, Runtime};

/// What every secret starts with, so that leaked keys are easy to recognise (and to scan for).
pub const SECRET_PREFIX: &str = "mbk_";
/// Longest label accepted.
const MAX_LABEL: usize = 128;
/// Most model patterns on one key.
const MAX_PATTERNS: usize = 32;
/// Shortest secret accepted from an operator's file (`--admin-key-file`).
pub const MIN_SECRET_LEN: usize = 32;
/// Longest credential looked at.
const MAX_SECRET_LEN: usize = 512;

/// What a new key should be.
#[derive(Debug, Clone)]
pub struct KeySpec {
    pub label: String,
    pub role: Role,
    pub models: Vec<ModelPattern>,
    pub limits: KeyLimits,
    pub expires_at: Option<DateTime<Utc>>,
    /// A client certificate that also stands for the key on an mTLS connection.
    pub client_cert: Option<CertificateFingerprint>,
}

/// The SHA-256 of a client certificate's DER bytes: what binds a certificate to a key, and
/// what `openssl x509 -noout -fingerprint -sha256` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertificateFingerprint([u8; 32]);

impl CertificateFingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// Lowercase hex, as stored.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::str::FromStr for CertificateFingerprint {
    type Err = Error;

    /// 64 hex digits, either case, colons between bytes allowed (openssl's form).
    fn from_str(text: &str) -> Result<Self> {
        let digits: String = text.trim().chars().filter(|c| *c != ':').collect();
        let mut out = [0u8; 32];
        hex::decode_to_slice(&digits, &mut out).map_err(|_| {
            Error::InvalidMetadata(
                "a client certificate fingerprint is a SHA-256 in hex (64 digits, colons \
                 allowed), as 'openssl x509 -noout -fingerprint -sha256' prints it"
                    .into(),
            )
        })?;
        Ok(Self(out))
    }
}

/// A key just created: its record and the secret, which is never available again.
#[derive(Debug, Clone)]
pub struct CreatedKey {
    pub record: KeyRecord,
    pub secret: String,
}

/// Why a credential does not authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    Missing,
    Malformed,
    Unknown,
    Revoked,
    Expired,
    /// A verified client certificate, no bearer key, and no live key bound to the certificate.
    UnknownCertificate,
}

impl Rejection {
    pub fn message(self) -> &'static str {
        match self {
            Self::Missing => {
                "an API key is required: send it as 'Authorization: Bearer <key>' (gRPC: \
                 'authorization' metadata)"
            }
            Self::Malformed => "the Authorization header must be 'Bearer <key>'",
            Self::Unknown => "invalid API key",
            Self::Revoked => "this API key has been revoked",
            Self::Expired => "this API key has expired",
            Self::UnknownCertificate => {
                "no API key is bound to this client certificate: send an API key as \
                 'Authorization: Bearer <key>'"
            }
        }
    }

    /// The reason as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::Unknown => "unknown",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::UnknownCertificate => "unknown_certificate",
        }
    }
}

/// A key as requests need it: its record, and what its callers carry, made once.
struct CachedKey {
    record: KeyRecord,
    id: Arc<str>,
    label: Arc<str>,
    models: Arc<[ModelPattern]>,
}

impl CachedKey {
    fn new(record: KeyRecord) -> Arc<Self> {
        Arc::new(Self {
            id: record.id.as_str().into(),
            label: record.label.as_str().into(),
            models: record.models.clone().into(),
            record,
        })
    }
}

/// Every key by the digest of its secret, and every live key bound to a client certificate by
/// the certificate's fingerprint.
#[derive(Default)]
struct KeyMaps {
    by_digest: HashMap<[u8; 32], Arc<CachedKey>>,
    by_cert: HashMap<CertificateFingerprint, Arc<CachedKey>>,
}

impl KeyMaps {
    fn put(&mut self, key: KeyRecord) -> Result<()> {
        let digest = parse_digest(&key.digest)?;
        let cert = key
            .client_cert
            .as_deref()
            .map(str::parse::<CertificateFingerprint>)
            .transpose()?;
        let revoked = key.revoked_at.is_some();
        let id = key.id.clone();
        let cached = CachedKey::new(key);
        if let Some(cert) = cert {
            if !revoked {
                self.by_cert.insert(cert, cached.clone());
            } else if self.by_cert.get(&cert).is_some_and(|k| k.record.id == id) {
                self.by_cert.remove(&cert);
            }
        }
        self.by_digest.insert(digest, cached);
        Ok(())
    }
}

/// The keys as requests need them, updated after every commit.
#[derive(Default)]
pub(crate) struct KeyCache {
    maps: RwLock<KeyMaps>,
}

impl KeyCache {
    fn replace_all(&self, keys: Vec<KeyRecord>) -> Result<()> {
        let mut maps = KeyMaps::default();
        for key in keys {
            maps.put(key)?;
        }
        *self.maps.write() = maps;
        Ok(())
    }

    fn is_empty(&self) -> bool {
        self.maps.read().by_digest.is_empty()
    }

    fn find_certificate(&self, cert: &CertificateFingerprint) -> Option<Arc<CachedKey>> {
        self.maps.read().by_cert.get(cert).cloned()
    }

    fn find(&self, digest: &[u8; 32]) -> Option<Arc<CachedKey>> {
        let (stored, found) = {
            let maps = self.maps.read();
            let (stored, found) = maps.by_digest.get_key_value(digest)?;
            (*stored, found.clone())
        };
        // The map found the entry by its digest; comparing again in constant time keeps the
        // final decision free of timing differences whatever the map does.
        constant_time_eq(&stored, digest).then_some(found)
    }
}

fn parse_digest(hex_digest: &str) -> Result<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_digest, &mut out).map_err(|_| {
        modelbay_registry::Error::Decode("a stored key digest is not 64 hex digits".into())
    })?;
    Ok(out)
}

fn digest_of(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Unsupported(format!("the system random source failed: {e}")))?;
    Ok(bytes)
}

/// A fresh secret: the prefix and 256 random bits in hex.
fn new_secret() -> Result<String> {
    Ok(format!(
        "{SECRET_PREFIX}{}",
        hex::encode(random_bytes::<32>()?)
    ))
}

fn validate(spec: &KeySpec) -> Result<()> {
    if spec.label.is_empty()
        || spec.label.len() > MAX_LABEL
        || spec.label.chars().any(char::is_control)
    {
        return Err(Error::InvalidMetadata(format!(
            "a key's label must be 1 to {MAX_LABEL} bytes of printable text"
        )));
    }
    if !spec.models.is_empty() && !spec.role.scopable() {
        return Err(Error::InvalidMetadata(format!(
            "{} keys cannot be limited to models; only publisher and consumer keys can",
            spec.role
        )));
    }
    if spec.models.len() > MAX_PATTERNS {
        return Err(Error::InvalidMetadata(format!(
            "at most {MAX_PATTERNS} model patterns per key"
        )));
    }
    if spec.expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(Error::InvalidMetadata(
            "the expiry must be in the future".into(),
        ));
    }
    spec.limits.validate()?;
    Ok(())
}

impl Runtime {
    /// Reads every key into the cache (at startup).
    pub async fn load_keys(&self) -> Result<()> {
        self.keys.replace_all(self.registry.keys().await?)
    }

    /// Resolves a bearer credential to its caller; the server's per-key defaults fill the
    /// limits a key (other than an administrator's) does not set itself.
    pub fn authenticate(
        &self,
        secret: &str,
        remote: Option<SocketAddr>,
    ) -> std::result::Result<Caller, Rejection> {
        if secret.is_empty() || secret.len() > MAX_SECRET_LEN {
            return Err(Rejection::Unknown);
        }
        let cached = self
            .keys
            .find(&digest_of(secret))
            .ok_or(Rejection::Unknown)?;
        self.caller_of(&cached, remote)
    }

    /// Resolves a verified client certificate (mTLS, no bearer key) to the caller of the live
    /// key bound to it.
    pub fn authenticate_certificate(
        &self,
        cert: &CertificateFingerprint,
        remote: Option<SocketAddr>,
    ) -> std::result::Result<Caller, Rejection> {
        let cached = self
            .keys
            .find_certificate(cert)
            .ok_or(Rejection::UnknownCertificate)?;
        self.caller_of(&cached, remote)
    }

    fn caller_of(
        &self,
        cached: &CachedKey,
        remote: Option<SocketAddr>,
    ) -> std::result::Result<Caller, Rejection> {
        let key = &cached.record;
        if key.revoked_at.is_some() {
            return Err(Rejection::Revoked);
        }
        if key.expires_at.is_some_and(|at| at <= Utc::now()) {
            return Err(Rejection::Expired);
        }
        Ok(Caller {
            key_id: Some(cached.id.clone()),
            label: cached.label.clone(),
            role: key.role,
            models: cached.models.clone(),
            remote,
            // The server's defaults protect clients from each other; administrators (the
            // operator) are held only to limits set on their own key.
            limits: if key.role == Role::Admin {
                key.limits
            } else {
                key.limits.or(self.limits.defaults())
            },
        })
    }

    /// Creates a key; the secret in the answer is the only copy there will ever be.
    pub async fn create_key(&self, caller: &Caller, spec: KeySpec) -> Result<CreatedKey> {
        caller.require(Access::Keys)?;
        self.create_key_with_secret(caller, spec, new_secret()?)
            .await
    }

    async fn create_key_with_secret(
        &self,
        caller: &Caller,
        spec: KeySpec,
        secret: String,
    ) -> Result<CreatedKey> {
        validate(&spec)?;
        let new = NewKey {
            id: hex::encode(random_bytes::<6>()?),
            label: spec.label,
            role: spec.role,
            models: spec.models,
            digest: hex::encode(digest_of(&secret)),
            limits: spec.limits,
            expires_at: spec.expires_at,
            client_cert: spec.client_cert.map(|cert| cert.to_hex()),
        };
        let record = self.registry.create_key(new, &caller.actor()).await?;
        self.sync_after_commit().await;
        tracing::info!(key = %record.id, role = %record.role, "API key created");
        Ok(CreatedKey { record, secret })
    }

    /// Revokes a key: from this moment it authenticates no request.
    pub async fn revoke_key(&self, caller: &Caller, id: &str) -> Result<KeyRecord> {
        caller.require(Access::Keys)?;
        let record = self.registry.revoke_key(id, &caller.actor()).await?;
        self.sync_after_commit().await;
        tracing::info!(key = %record.id, "API key revoked");
        Ok(record)
    }

    /// Every key, revoked ones too; never a secret.
    pub async fn keys(&self, caller: &Caller) -> Result<Vec<KeyRecord>> {
        caller.require(Access::Keys)?;
        Ok(self.registry.keys().await?)
    }

    /// The first administrator key of a server, at startup: with `secret` (from the
    /// operator's file) a key with that secret is ensured to exist; without, a key is created
    /// only when the registry has none at all. Returns the secret of a key it created.
    pub async fn bootstrap_admin(&self, secret: Option<String>) -> Result<Option<String>> {
        let operator = Caller {
            label: "bootstrap".into(),
            ..Caller::local()
        };
        let spec = KeySpec {
            label: "bootstrap admin".into(),
            role: Role::Admin,
            models: Vec::new(),
            limits: KeyLimits::default(),
            expires_at: None,
            client_cert: None,
        };
        match secret {
            Some(secret) => {
                if secret.len() < MIN_SECRET_LEN || secret.len() > MAX_SECRET_LEN {
                    return Err(Error::InvalidMetadata(format!(
                        "the admin key must be {MIN_SECRET_LEN} to {MAX_SECRET_LEN} bytes"
                    )));
                }
                match self
                    .keys
                    .find(&digest_of(&secret))
                    .map(|k| k.record.clone())
                {
                    Some(key) if key.revoked_at.is_none() && key.role == Role::Admin => Ok(None),
                    Some(_) => Err(Error::InvalidMetadata(
                        "the admin key file holds a key that is revoked or not an admin key".into(),
                    )),
                    None => {
                        match self.create_key_with_secret(&operator, spec, secret).await {
                            Ok(_) => Ok(None),
                            // Another replica starting with the same file created it first.
                            Err(Error::Registry(modelbay_registry::Error::Conflict(_))) => {
                                self.load_keys().await?;
                                Ok(None)
                            }
                            Err(e) => Err(e),
                        }
                    }
                }
            }
            None if self.keys.is_empty() => {
                let created = self
                    .create_key_with_secret(&operator, spec, new_secret()?)
                    .await?;
                Ok(Some(created.secret))
            }
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_random_and_recognisable() {
        let (a, b) = (new_secret().unwrap(), new_secret().unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with(SECRET_PREFIX));
        assert_eq!(a.len(), SECRET_PREFIX.len() + 64);
    }

    #[test]
    fn certificate_fingerprints_read_openssl_form() {
        let cert = CertificateFingerprint::of_der(b"a certificate");
        let hex = cert.to_hex();
        let openssl: String = hex
            .to_uppercase()
            .as_bytes()
            .chunks(2)
            .map(|pair| std::str::from_utf8(pair).unwrap())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(openssl.parse::<CertificateFingerprint>().unwrap(), cert);
        assert_eq!(hex.parse::<CertificateFingerprint>().unwrap(), cert);
        assert!("abc".parse::<CertificateFingerprint>().is_err());
        assert!(format!("{hex}00")
            .parse::<CertificateFingerprint>()
            .is_err());
    }

    #[test]
    fn a_revoked_key_frees_its_certificate_for_a_new_key() {
        let cert = CertificateFingerprint::of_der(b"client");
        let record = |id: &str, revoked: bool| KeyRecord {
            id: id.into(),
            label: id.into(),
            role: Role::Consumer,
            models: Vec::new(),
            digest: hex::encode(digest_of(id)),
            limits: KeyLimits::default(),
            created_at: Utc::now(),
            created_by: "test".into(),
            expires_at: None,
            revoked_at: revoked.then(Utc::now),
            client_cert: Some(cert.to_hex()),
        };
        let cache = KeyCache::default();
        cache.replace_all(vec![record("old", false)]).unwrap();
        assert_eq!(cache.find_certificate(&cert).unwrap().record.id, "old");
        // Keys come oldest first; the revoked old key must not unbind the new one.
        cache
            .replace_all(vec![record("old", true), record("new", false)])
            .unwrap();
        assert_eq!(cache.find_certificate(&cert).unwrap().record.id, "new");
        cache
            .replace_all(vec![record("old", true), record("new", true)])
            .unwrap();
        assert!(cache.find_certificate(&cert).is_none());
        cache
            .replace_all(vec![record("new", false), record("old", true)])
            .unwrap();
        assert_eq!(cache.find_certificate(&cert).unwrap().record.id, "new");
    }

    #[test]
    fn digests_compare_whole() {
        let d = digest_of("mbk_x");
        let mut other = d;
        other[31] ^= 1;
        assert!(constant_time_eq(&d, &d));
        assert!(!constant_time_eq(&d, &other));
    }
}
