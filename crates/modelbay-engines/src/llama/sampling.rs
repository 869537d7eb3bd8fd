//! The sampler chain for one sequence, in llama.cpp's order.

use llama_cpp_2::{sampling::LlamaSampler, token::logit_bias::LlamaLogitBias, token::LlamaToken};

use crate::generation::SamplingParams;

/// The penalty window when a request asks for the whole sequence (`repeat_last_n` -1).
const WHOLE_SEQUENCE: i32 = 1 << 20;
/// Below this temperature dividing the logits overflows; such a temperature means greedy.
const GREEDY_BELOW: f32 = 1e-3;

/// A fresh chain: the grammar's mask (if the output is constrained), logit biases,
/// penalties, then greedy choice (temperature 0) or top-k, typical, top-p and min-p
/// filtering, temperature and a seeded draw. The mask comes first so that every later step
/// chooses among valid tokens only.
pub(super) fn chain(
    params: &SamplingParams,
    vocabulary: i32,
    grammar: Option<llguidance::Matcher>,
) -> LlamaSampler {
    let mut samplers = Vec::new();
    if let Some(matcher) = grammar {
        samplers.push(LlamaSampler::from(matcher));
    }
    if !params.logit_bias.is_empty() {
        let biases: Vec<LlamaLogitBias> = params
            .logit_bias
            .iter()
            .map(|&(token, bias)| LlamaLogitBias::new(LlamaToken(token), bias))
            .collect();
        samplers.push(LlamaSampler::logit_bias(vocabulary, &biases));
    }
    if params.repeat_penalty != 1.0
        || params.presence_penalty != 0.0
        || params.frequency_penalty != 0.0
    {
        let window = if params.repeat_last_n < 0 {
            WHOLE_SEQUENCE
        } else {
            params.repeat_last_n
        };
        samplers.push(LlamaSampler::penalties(
            vocabulary,
            window,
            params.repeat_penalty,
            params.frequency_penalty,
            params.presence_penalty,
        ));
    }
    if params.temperature < GREEDY_BELOW {
        samplers.push(LlamaSampler::greedy());
    } else {
        if params.top_k > 0 {
            samplers.push(LlamaSampler::top_k(params.top_k));
        }
        if params.typical_p < 1.0 {
            samplers.push(LlamaSampler::typical(params.typical_p, 1));
        }
        if params.top_p < 1.0 {
            samplers.push(LlamaSampler::top_p(params.top_p, 1));
        }
        if params.min_p > 0.0 {
            samplers.push(LlamaSampler::min_p(params.min_p, 1));
        }
        samplers.push(LlamaSampler::temp(params.temperature));
        samplers.push(LlamaSampler::dist(params.seed));
    }
    LlamaSampler::chain_simple(samplers)
}
