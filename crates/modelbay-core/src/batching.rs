//! The dynamic batcher's settings for a tensor model: how many rows one engine run may take and
//! how long a request may wait for others to join it.

use serde::{Deserialize, Serialize};

use crate::{error::invalid, Result, Signature};

/// Largest `max_batch_size` accepted.
pub const MAX_BATCH_ROWS: u32 = 4096;

/// Longest queue delay accepted: one second.
pub const MAX_QUEUE_DELAY_MICROSECONDS: u64 = 1_000_000;

/// Per-model dynamic batching, as Triton's `dynamic_batching` block. `max_batch_size` 0 or 1
/// turns batching off: every request runs alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorBatching {
    /// Most rows (first-dimension entries, summed over the merged requests) in one run.
    pub max_batch_size: u32,
    /// How long the oldest waiting request may wait for others before its batch runs anyway.
    /// 0: never wait (batches still form from requests that queue while the engine is busy).
    #[serde(default)]
    pub max_queue_delay_microseconds: u64,
    /// Batch sizes the model runs best at: a batch whose rows reach one of them runs at once
    /// instead of waiting out the delay.
    #[serde(default)]
    pub preferred_batch_sizes: Vec<u32>,
}

impl TensorBatching {
    /// Whether requests may be merged at all.
    pub fn enabled(&self) -> bool {
        self.max_batch_size > 1
    }

    /// Refuses settings the batcher could not honour, saying which field is wrong.
    pub fn validate(&self) -> Result<()> {
        if self.max_batch_size > MAX_BATCH_ROWS {
            return Err(invalid!(
                "max_batch_size {} is above the limit of {MAX_BATCH_ROWS}",
                self.max_batch_size
            ));
        }
        if self.max_queue_delay_microseconds > MAX_QUEUE_DELAY_MICROSECONDS {
            return Err(invalid!(
                "max_queue_delay_microseconds {} is above the limit of \
                 {MAX_QUEUE_DELAY_MICROSECONDS} (one second)",
                self.max_queue_delay_microseconds
            ));
        }
        let mut previous = 0;
        for &size in &self.preferred_batch_sizes {
            if size == 0 || size > self.max_batch_size {
                return Err(invalid!(
                    "preferred batch size {size} must be between 1 and max_batch_size ({})",
                    self.max_batch_size
                ));
            }
            if size <= previous {
                return Err(invalid!(
                    "preferred_batch_sizes must be strictly increasing, got {:?}",
                    self.preferred_batch_sizes
                ));
            }
            previous = size;
        }
        Ok(())
    }
}

/// Why a signature cannot be batched along its first dimension, or `None` when it can: every
/// input and output must have a variable first dimension.
pub fn unbatchable_reason(signature: &Signature) -> Option<String> {
    signature
        .inputs
        .iter()
        .map(|t| ("input", t))
        .chain(signature.outputs.iter().map(|t| ("output", t)))
        .find(|(_, t)| t.shape.first() != Some(&-1))
        .map(|(kind, t)| {
            format!(
                "{kind} {} has no variable first (batch) dimension",
                t.describe()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DataType, TensorSpec};

    fn spec(name: &str, shape: &[i64]) -> TensorSpec {
        TensorSpec {
            name: name.into(),
            datatype: DataType::Fp32,
            shape: shape.to_vec(),
        }
    }

    #[test]
    fn settings_are_validated() {
        let ok = TensorBatching {
            max_batch_size: 32,
            max_queue_delay_microseconds: 500,
            preferred_batch_sizes: vec![8, 16],
        };
        assert!(ok.validate().is_ok() && ok.enabled());
        let bad = [
            TensorBatching {
                max_batch_size: 5000,
                ..ok.clone()
            },
            TensorBatching {
                max_queue_delay_microseconds: 2_000_000,
                ..ok.clone()
            },
            TensorBatching {
                preferred_batch_sizes: vec![64],
                ..ok.clone()
            },
            TensorBatching {
                preferred_batch_sizes: vec![16, 8],
                ..ok.clone()
            },
            TensorBatching {
                preferred_batch_sizes: vec![0],
                ..ok.clone()
            },
        ];
        for settings in bad {
            assert!(settings.validate().is_err(), "{settings:?}");
        }
        assert!(!TensorBatching::default().enabled());
    }

    #[test]
    fn only_signatures_with_a_batch_dimension_batch() {
        let batchable = Signature {
            inputs: vec![spec("x", &[-1, 30])],
            outputs: vec![spec("y", &[-1])],
        };
        assert_eq!(unbatchable_reason(&batchable), None);
        let fixed = Signature {
            inputs: vec![spec("x", &[1, 30])],
            outputs: vec![spec("y", &[-1])],
        };
        assert!(unbatchable_reason(&fixed).unwrap().contains("input x"));
        let scalar_out = Signature {
            inputs: vec![spec("x", &[-1, 30])],
            outputs: vec![spec("y", &[])],
        };
        assert!(unbatchable_reason(&scalar_out)
            .unwrap()
            .contains("output y"));
    }
}
