//! Log-probabilities of generated tokens: a log-softmax of the raw logits (before any sampler
//! step), the chosen token's value and the most likely alternatives.

use crate::generation::TokenLogprob;

/// The report for `chosen` at one position; `top` alternatives, most likely first. `piece`
/// gives a token's bytes.
pub(super) fn report(
    logits: &[f32],
    chosen: i32,
    top: u32,
    piece: impl Fn(i32) -> Vec<u8>,
) -> TokenLogprob {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    let log_total = max as f64 + sum.ln();
    let logprob = |token: usize| (f64::from(logits[token]) - log_total) as f32;
    let mut best: Vec<usize> = Vec::new();
    if top > 0 {
        let mut order: Vec<usize> = (0..logits.len()).collect();
        let k = (top as usize).min(order.len());
        order.select_nth_unstable_by(k - 1, |&a, &b| logits[b].total_cmp(&logits[a]));
        order.truncate(k);
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
        best = order;
    }
    TokenLogprob {
        bytes: piece(chosen),
        logprob: logprob(chosen as usize),
        top: best
            .into_iter()
            .map(|t| (piece(t as i32), logprob(t)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_a_log_softmax_with_the_best_first() {
        let logits = [1.0f32, 3.0, 2.0, 0.0];
        let r = report(&logits, 2, 3, |t| vec![b'a' + t as u8]);
        let total: f32 = logits.iter().map(|l| l.exp()).sum();
        assert!((r.logprob - (2.0f32.exp() / total).ln()).abs() < 1e-5);
        let tokens: Vec<u8> = r.top.iter().map(|(b, _)| b[0]).collect();
        assert_eq!(tokens, b"bca");
        assert!(r.top.windows(2).all(|w| w[0].1 >= w[1].1));
        assert!(r.top.iter().all(|(_, l)| *l <= 0.0));
        assert!(report(&logits, 0, 0, |_| Vec::new()).top.is_empty());
    }
}
