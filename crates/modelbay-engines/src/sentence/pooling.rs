//! From token embeddings to one sentence embedding, as sentence-transformers' Pooling and
//! Normalize modules do it. Rows are right-padded: row `i` has `lengths[i]` real tokens.

use std::fmt;

/// One pooling mode; several are concatenated in sentence-transformers' order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pooling {
    Cls,
    Max,
    Mean,
    MeanSqrtLen,
    LastToken,
}

impl Pooling {
    /// The modes switched on in a `1_Pooling/config.json`, in concatenation order.
    pub(crate) fn from_config(config: &serde_json::Value) -> Result<Vec<Pooling>, String> {
        if let Some(mode) = config.get("pooling_mode").and_then(|m| m.as_str()) {
            return Self::named(mode).map(|p| vec![p]);
        }
        let on = |key: &str| config.get(key).and_then(|v| v.as_bool()) == Some(true);
        if on("pooling_mode_weightedmean_tokens") {
            return Err("weighted-mean pooling is not supported".into());
        }
        let modes: Vec<Pooling> = [
            ("pooling_mode_cls_token", Pooling::Cls),
            ("pooling_mode_max_tokens", Pooling::Max),
            ("pooling_mode_mean_tokens", Pooling::Mean),
            ("pooling_mode_mean_sqrt_len_tokens", Pooling::MeanSqrtLen),
            ("pooling_mode_lasttoken", Pooling::LastToken),
        ]
        .into_iter()
        .filter(|(key, _)| on(key))
        .map(|(_, mode)| mode)
        .collect();
        if modes.is_empty() {
            return Err("no pooling mode is switched on".into());
        }
        Ok(modes)
    }

    fn named(mode: &str) -> Result<Pooling, String> {
        match mode {
            "cls" => Ok(Pooling::Cls),
            "max" => Ok(Pooling::Max),
            "mean" => Ok(Pooling::Mean),
            "mean_sqrt_len_tokens" => Ok(Pooling::MeanSqrtLen),
            "lasttoken" => Ok(Pooling::LastToken),
            other => Err(format!("pooling mode '{other}' is not supported")),
        }
    }

    /// Appends this mode's vector for one row (`tokens`: `len × hidden`, real tokens only).
    fn pool_into(self, tokens: &[f32], hidden: usize, out: &mut Vec<f32>) {
        let len = tokens.len() / hidden;
        let start = out.len();
        match self {
            Pooling::Cls => out.extend_from_slice(&tokens[..hidden]),
            Pooling::LastToken => out.extend_from_slice(&tokens[(len - 1) * hidden..]),
            Pooling::Max => {
                out.extend_from_slice(&tokens[..hidden]);
                for token in tokens.chunks_exact(hidden).skip(1) {
                    for (o, &t) in out[start..].iter_mut().zip(token) {
                        *o = o.max(t);
                    }
                }
            }
            Pooling::Mean | Pooling::MeanSqrtLen => {
                // Sum in f64: long inputs add hundreds of terms.
                let mut sum = vec![0f64; hidden];
                for token in tokens.chunks_exact(hidden) {
                    for (s, &t) in sum.iter_mut().zip(token) {
                        *s += t as f64;
                    }
                }
                let divisor = if self == Pooling::Mean {
                    len as f64
                } else {
                    (len as f64).sqrt()
                };
                out.extend(sum.into_iter().map(|s| (s / divisor) as f32));
            }
        }
    }
}

impl fmt::Display for Pooling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pooling::Cls => "cls",
            Pooling::Max => "max",
            Pooling::Mean => "mean",
            Pooling::MeanSqrtLen => "mean_sqrt_len_tokens",
            Pooling::LastToken => "lasttoken",
        })
    }
}

/// Pools a padded batch of token embeddings (`rows × padded_len × hidden`, row-major) into one
/// vector per row, normalised to unit length when `normalize`.
pub(crate) fn pool(
    hidden_states: &[f32],
    lengths: &[usize],
    padded_len: usize,
    hidden: usize,
    modes: &[Pooling],
    normalize: bool,
) -> Vec<Vec<f32>> {
    lengths
        .iter()
        .enumerate()
        .map(|(row, &len)| {
            let start = row * padded_len * hidden;
            let tokens = &hidden_states[start..start + len.max(1) * hidden];
            let mut out = Vec::with_capacity(hidden * modes.len());
            for mode in modes {
                mode.pool_into(tokens, hidden, &mut out);
            }
            if normalize {
                normalize_in_place(&mut out);
            }
            out
        })
        .collect()
}

/// Scales `v` to unit L2 length (a zero vector stays zero).
pub(crate) fn normalize_in_place(v: &mut [f32]) {
    let norm = v
        .iter()
        .map(|&x| (x as f64) * (x as f64))
        .sum::<f64>()
        .sqrt();
    if norm > 0.0 {
        for x in v {
            *x = (*x as f64 / norm) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two rows, padded to 3 tokens of 2 dimensions; row 1 has one real token.
    const STATES: [f32; 12] = [
        1.0, 2.0, 3.0, 4.0, 5.0, 0.0, //
        7.0, -1.0, 99.0, 99.0, 99.0, 99.0,
    ];

    #[test]
    fn each_mode_ignores_padding() {
        let cases = [
            (Pooling::Mean, vec![vec![3.0, 2.0], vec![7.0, -1.0]]),
            (Pooling::Cls, vec![vec![1.0, 2.0], vec![7.0, -1.0]]),
            (Pooling::Max, vec![vec![5.0, 4.0], vec![7.0, -1.0]]),
            (Pooling::LastToken, vec![vec![5.0, 0.0], vec![7.0, -1.0]]),
        ];
        for (mode, expected) in cases {
            assert_eq!(
                pool(&STATES, &[3, 1], 3, 2, &[mode], false),
                expected,
                "{mode}"
            );
        }
        let sqrt = pool(&STATES, &[3, 1], 3, 2, &[Pooling::MeanSqrtLen], false);
        assert!((sqrt[0][0] - 9.0 / 3f32.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn modes_concatenate_and_normalise() {
        let out = pool(&STATES, &[3, 1], 3, 2, &[Pooling::Cls, Pooling::Mean], true);
        assert_eq!(out[0].len(), 4);
        let norm: f32 = out[1].iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-6);
    }

    #[test]
    fn reads_pooling_configs() {
        let config = serde_json::json!({
            "pooling_mode_cls_token": true, "pooling_mode_mean_tokens": true
        });
        assert_eq!(
            Pooling::from_config(&config).unwrap(),
            [Pooling::Cls, Pooling::Mean]
        );
        let named = serde_json::json!({"pooling_mode": "lasttoken"});
        assert_eq!(Pooling::from_config(&named).unwrap(), [Pooling::LastToken]);
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"pooling_mode_weightedmean_tokens": true}),
            serde_json::json!({"pooling_mode": "median"}),
        ] {
            assert!(Pooling::from_config(&bad).is_err(), "{bad}");
        }
    }
}
