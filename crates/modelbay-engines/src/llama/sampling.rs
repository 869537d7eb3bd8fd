//! The sampler chain for one sequence, built from OpenAI-style parameters.

use llama_cpp_2::sampling::LlamaSampler;

use crate::generation::SamplingParams;

/// Penalties look at every token the sequence has generated (up to this many).
const PENALTY_WINDOW: i32 = 4096;
/// Below this temperature dividing the logits overflows; such a temperature means greedy.
const GREEDY_BELOW: f32 = 1e-3;

/// A fresh chain: penalties first, then greedy choice (temperature 0) or nucleus filtering,
/// temperature and a seeded draw.
pub(super) fn chain(params: &SamplingParams, vocabulary: i32) -> LlamaSampler {
    let mut samplers = Vec::new();
    if params.presence_penalty != 0.0 || params.frequency_penalty != 0.0 {
        samplers.push(LlamaSampler::penalties(
            vocabulary,
            PENALTY_WINDOW,
            1.0,
            params.frequency_penalty,
            params.presence_penalty,
        ));
    }
    if params.temperature < GREEDY_BELOW {
        samplers.push(LlamaSampler::greedy());
    } else {
        if params.top_p < 1.0 {
            samplers.push(LlamaSampler::top_p(params.top_p, 1));
        }
        samplers.push(LlamaSampler::temp(params.temperature));
        samplers.push(LlamaSampler::dist(params.seed));
    }
    LlamaSampler::chain_simple(samplers)
}
