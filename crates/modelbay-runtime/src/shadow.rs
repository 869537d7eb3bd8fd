//! Shadow traffic: a copy of each routed request runs on the shadow target; its answers are
//! compared with the primary's and counted, never returned.

use std::collections::BTreeMap;

use modelbay_core::{Target, Tensor, TensorData};
use serde::Serialize;

/// Comparison of one output across primary and shadow.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OutputAgreement {
    /// Requests where this output matched (exactly for integers, booleans and strings; within
    /// 1e-6 relative for floats).
    pub agreed: u64,
    pub compared: u64,
    pub agreement_rate: f64,
    /// Mean over requests of the largest absolute element difference (floats only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_max_abs_diff: Option<f64>,
    #[serde(skip)]
    diff_sum: f64,
}

/// What the shadow target has done since the policy was set.
#[derive(Debug, Clone, Serialize)]
pub struct ShadowReport {
    pub target: Target,
    pub requests: u64,
    pub errors: u64,
    pub primary_mean_latency_ms: f64,
    pub shadow_mean_latency_ms: f64,
    pub outputs: BTreeMap<String, OutputAgreement>,
    #[serde(skip)]
    primary_ms_sum: f64,
    #[serde(skip)]
    shadow_ms_sum: f64,
}

impl ShadowReport {
    pub(crate) fn new(target: Target) -> Self {
        Self {
            target,
            requests: 0,
            errors: 0,
            primary_mean_latency_ms: 0.0,
            shadow_mean_latency_ms: 0.0,
            outputs: BTreeMap::new(),
            primary_ms_sum: 0.0,
            shadow_ms_sum: 0.0,
        }
    }

    pub(crate) fn record_error(&mut self) {
        self.requests += 1;
        self.errors += 1;
    }

    pub(crate) fn record(
        &mut self,
        primary: &[Tensor],
        shadow: &[Tensor],
        primary_ms: f64,
        shadow_ms: f64,
    ) {
        self.requests += 1;
        let ok = (self.requests - self.errors) as f64;
        self.primary_ms_sum += primary_ms;
        self.shadow_ms_sum += shadow_ms;
        self.primary_mean_latency_ms = self.primary_ms_sum / ok;
        self.shadow_mean_latency_ms = self.shadow_ms_sum / ok;
        for p in primary {
            let entry = self.outputs.entry(p.name.clone()).or_default();
            let s = shadow.iter().find(|s| s.name == p.name);
            let (agree, diff) = match s {
                Some(s) if s.shape() == p.shape() => compare(p.data(), s.data()),
                _ => (false, None),
            };
            entry.compared += 1;
            entry.agreed += u64::from(agree);
            entry.agreement_rate = entry.agreed as f64 / entry.compared as f64;
            if let Some(diff) = diff {
                entry.diff_sum += diff;
                entry.mean_max_abs_diff = Some(entry.diff_sum / entry.compared as f64);
            }
        }
    }
}

fn float_diff(a: impl Iterator<Item = f64>, b: impl Iterator<Item = f64>) -> (bool, Option<f64>) {
    let mut max = 0f64;
    let mut agree = true;
    for (x, y) in a.zip(b) {
        let d = (x - y).abs();
        max = max.max(d);
        agree &= d <= 1e-6 * y.abs().max(1.0);
    }
    (agree, Some(max))
}

fn compare(a: &TensorData, b: &TensorData) -> (bool, Option<f64>) {
    match (a, b) {
        (TensorData::Fp32(a), TensorData::Fp32(b)) => float_diff(
            a.iter().map(|&x| f64::from(x)),
            b.iter().map(|&x| f64::from(x)),
        ),
        (TensorData::Fp64(a), TensorData::Fp64(b)) => {
            float_diff(a.iter().copied(), b.iter().copied())
        }
        (TensorData::Fp16(a), TensorData::Fp16(b)) => {
            float_diff(a.iter().map(|x| x.to_f64()), b.iter().map(|x| x.to_f64()))
        }
        (TensorData::Bf16(a), TensorData::Bf16(b)) => {
            float_diff(a.iter().map(|x| x.to_f64()), b.iter().map(|x| x.to_f64()))
        }
        (a, b) => (a == b, None),
    }
}
