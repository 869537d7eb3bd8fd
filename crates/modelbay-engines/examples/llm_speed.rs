//! In-process speed of the llama.cpp engine and its scheduler, without HTTP: single-stream
//! decode tokens/s and aggregate tokens/s with 1, 4 and 8 concurrent sequences (greedy, fixed
//! token counts). Used by bench/llm.sh to separate engine time from serving overhead.
//!
//! Usage: cargo run --release -p modelbay-engines --example llm_speed -- MODEL.gguf [THREADS]

use std::time::Instant;

use modelbay_engines::{
    generation::{GenerationEvent, GenerationJob, SamplingParams},
    llama::LlamaEngine,
    LanguageEngine, LanguageModel, LanguageOptions,
};

const TOKENS: u32 = 128;

/// Runs `streams` sequences of `TOKENS` tokens together; returns (tokens, seconds from the
/// first generated token to the last).
fn run(model: &dyn LanguageModel, streams: u32) -> (u32, f64) {
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
    let jobs = (0..streams)
        .map(|i| GenerationJob {
            prompt: model
                .tokenize(
                    &format!("Story {i}: once upon a time in a town by the sea,"),
                    true,
                )
                .unwrap(),
            max_tokens: Some(TOKENS),
            sampling: SamplingParams::default(),
            stop: Vec::new(),
            constraint: None,
            logprobs: None,
            choice: i,
            events: events.clone(),
        })
        .collect();
    drop(events);
    let started = Instant::now();
    model.submit(jobs).unwrap();
    let mut first = None;
    let mut tokens = 0;
    while let Some(event) = received.blocking_recv() {
        match event {
            GenerationEvent::Text { .. } => {
                first.get_or_insert_with(Instant::now);
            }
            GenerationEvent::Done {
                completion_tokens, ..
            } => tokens += completion_tokens,
            GenerationEvent::Failed { message, .. } => panic!("{message}"),
        }
    }
    let from = if streams == 1 {
        first.unwrap_or(started)
    } else {
        started
    };
    (tokens, from.elapsed().as_secs_f64())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: llm_speed MODEL.gguf [THREADS]");
    let threads = args
        .next()
        .map_or(2, |t| t.parse().expect("THREADS is a number"));
    let model = LlamaEngine
        .load(
            path.as_ref(),
            &LanguageOptions {
                threads,
                max_sequences: 8,
                context_per_sequence: 2048,
                max_waiting: 64,
                batch_tokens: 512,
            },
        )
        .expect("the model loads");
    run(model.as_ref(), 1); // warm-up
    let (tokens, seconds) = run(model.as_ref(), 1);
    println!(
        "decode, 1 stream: {:.0} tok/s",
        f64::from(tokens - 1) / seconds
    );
    for streams in [1, 4, 8] {
        let (tokens, seconds) = run(model.as_ref(), streams);
        println!(
            "aggregate, {streams} streams: {:.0} tok/s",
            f64::from(tokens) / seconds
        );
    }
}
