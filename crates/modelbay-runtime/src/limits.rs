//! Limits per API key, so that one client cannot take a shared server's capacity: requests per
//! second, and for language models generated tokens per minute and sequences at once. Each is a
//! small map keyed by key id (bounded by the number of keys); the local operator (no key) is
//! never limited. Over a limit is a 429 with `Retry-After`, counted by key id.

use std::{collections::HashMap, sync::Arc, time::Instant};

use modelbay_core::{Caller, KeyLimits};
use parking_lot::Mutex;

use crate::{Error, Metrics, Result};

/// A token bucket: `capacity` tokens at most, refilled at `rate` per second.
struct Bucket {
    level: f64,
    last: Instant,
}

impl Bucket {
    fn full(capacity: f64) -> Self {
        Self {
            level: capacity,
            last: Instant::now(),
        }
    }

    fn refill(&mut self, capacity: f64, rate: f64) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.level = (self.level + elapsed * rate).min(capacity);
        self.last = now;
    }
}

/// What each key has used.
pub(crate) struct KeyUsage {
    defaults: KeyLimits,
    metrics: Metrics,
    requests: Mutex<HashMap<Arc<str>, Bucket>>,
    tokens: Mutex<HashMap<Arc<str>, Bucket>>,
    sequences: Mutex<HashMap<Arc<str>, u32>>,
}

/// Sequences a key holds at a language model until this is dropped.
pub(crate) struct SequenceShare {
    usage: Arc<KeyUsage>,
    key: Arc<str>,
    count: u32,
}

impl Drop for SequenceShare {
    fn drop(&mut self) {
        let mut sequences = self.usage.sequences.lock();
        if let Some(held) = sequences.get_mut(&self.key) {
            *held = held.saturating_sub(self.count);
            if *held == 0 {
                sequences.remove(&self.key);
            }
        }
    }
}

impl KeyUsage {
    pub(crate) fn new(defaults: KeyLimits, metrics: Metrics) -> Self {
        Self {
            defaults,
            metrics,
            requests: Mutex::default(),
            tokens: Mutex::default(),
            sequences: Mutex::default(),
        }
    }

    /// The limits of keys that set none of their own.
    pub(crate) fn defaults(&self) -> KeyLimits {
        self.defaults
    }

    fn refuse(&self, key: &str, limit: &str, message: String) -> Error {
        self.metrics.record_limited(key, limit);
        Error::RateLimited(message)
    }

    /// Takes one request from the caller's requests-per-second bucket.
    pub(crate) fn admit_request(&self, caller: &Caller) -> Result<()> {
        let (Some(key), Some(rate)) = (&caller.key_id, caller.limits.requests_per_second) else {
            return Ok(());
        };
        // One second of burst, and at least one request.
        let capacity = rate.max(1.0);
        let mut buckets = self.requests.lock();
        let bucket = buckets
            .entry(key.clone())
            .or_insert_with(|| Bucket::full(capacity));
        bucket.refill(capacity, rate);
        if bucket.level >= 1.0 {
            bucket.level -= 1.0;
            return Ok(());
        }
        drop(buckets);
        Err(self.refuse(
            key,
            "requests_per_second",
            format!("this API key is limited to {rate} requests per second; retry shortly"),
        ))
    }

    /// Admits `count` new sequences for the caller: within its sequences at once, and with
    /// some of its tokens-per-minute budget left.
    pub(crate) fn admit_sequences(
        self: &Arc<Self>,
        caller: &Caller,
        count: u32,
    ) -> Result<Option<SequenceShare>> {
        let Some(key) = &caller.key_id else {
            return Ok(None);
        };
        if let Some(per_minute) = caller.limits.tokens_per_minute {
            let capacity = per_minute as f64;
            let mut buckets = self.tokens.lock();
            let bucket = buckets
                .entry(key.clone())
                .or_insert_with(|| Bucket::full(capacity));
            bucket.refill(capacity, capacity / 60.0);
            if bucket.level < 1.0 {
                drop(buckets);
                return Err(self.refuse(
                    key,
                    "tokens_per_minute",
                    format!(
                        "this API key has used its {per_minute} generated tokens per minute; \
                         retry shortly"
                    ),
                ));
            }
        }
        let Some(most) = caller.limits.max_sequences else {
            return Ok(None);
        };
        let mut sequences = self.sequences.lock();
        let held = sequences.entry(key.clone()).or_default();
        if held.saturating_add(count) > most {
            let held = *held;
            if held == 0 {
                sequences.remove(key);
            }
            drop(sequences);
            return Err(self.refuse(
                key,
                "max_sequences",
                format!(
                    "this API key may have {most} sequences at a language model at once; it \
                     has {held} and asked for {count} more"
                ),
            ));
        }
        *held += count;
        Ok(Some(SequenceShare {
            usage: self.clone(),
            key: key.clone(),
            count,
        }))
    }

    /// Charges generated tokens to the key's tokens-per-minute budget (which may go below
    /// zero: the next generation then waits for it to refill).
    pub(crate) fn charge_tokens(&self, caller: &Caller, tokens: u32) {
        let (Some(key), Some(per_minute)) = (&caller.key_id, caller.limits.tokens_per_minute)
        else {
            return;
        };
        let capacity = per_minute as f64;
        let mut buckets = self.tokens.lock();
        let bucket = buckets
            .entry(key.clone())
            .or_insert_with(|| Bucket::full(capacity));
        bucket.refill(capacity, capacity / 60.0);
        bucket.level -= f64::from(tokens);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(limits: KeyLimits) -> Caller {
        Caller {
            key_id: Some("k".into()),
            limits,
            ..Caller::local()
        }
    }

    #[test]
    fn requests_per_second_allow_a_burst_then_refuse() {
        let usage = KeyUsage::new(KeyLimits::default(), Metrics::disabled());
        let limited = caller(KeyLimits {
            requests_per_second: Some(3.0),
            ..KeyLimits::default()
        });
        for _ in 0..3 {
            usage.admit_request(&limited).unwrap();
        }
        assert!(matches!(
            usage.admit_request(&limited),
            Err(Error::RateLimited(_))
        ));
        // The local operator and unlimited keys are never refused.
        for _ in 0..100 {
            usage.admit_request(&Caller::local()).unwrap();
            usage.admit_request(&caller(KeyLimits::default())).unwrap();
        }
    }

    #[test]
    fn sequences_are_held_until_released() {
        let usage = Arc::new(KeyUsage::new(KeyLimits::default(), Metrics::disabled()));
        let limited = caller(KeyLimits {
            max_sequences: Some(4),
            ..KeyLimits::default()
        });
        let first = usage.admit_sequences(&limited, 3).unwrap();
        assert!(usage.admit_sequences(&limited, 2).is_err());
        let second = usage.admit_sequences(&limited, 1).unwrap();
        drop(first);
        let third = usage.admit_sequences(&limited, 3).unwrap();
        drop((second, third));
        assert!(usage.sequences.lock().is_empty());
    }

    #[test]
    fn spent_tokens_refuse_the_next_generation() {
        let usage = Arc::new(KeyUsage::new(KeyLimits::default(), Metrics::disabled()));
        let limited = caller(KeyLimits {
            tokens_per_minute: Some(100),
            ..KeyLimits::default()
        });
        drop(usage.admit_sequences(&limited, 1).unwrap());
        usage.charge_tokens(&limited, 150);
        assert!(matches!(
            usage.admit_sequences(&limited, 1),
            Err(Error::RateLimited(_))
        ));
    }
}
