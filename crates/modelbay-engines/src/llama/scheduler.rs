//! Continuous batching: one thread owns a llama.cpp context holding up to `max_sequences`
//! sequences. Every step it admits waiting jobs into free slots, puts one token of every
//! decoding sequence and chunks of new prompts into one batch, decodes it, and samples each
//! sequence's next token. A sequence that finishes or whose client went away frees its slot
//! at once, and the next waiting job takes it at the following step.
//!
//! Prefix caching: a finished sequence's KV cells stay in its slot. A new job goes to the free
//! slot whose cached tokens share the longest prefix with its prompt; only what differs is
//! dropped and only the rest of the prompt is decoded. Without a shared prefix it takes the
//! free slot used least recently, whose cache it replaces.

use std::{
    num::NonZeroU32,
    sync::{
        atomic::{AtomicU32, AtomicU64, Ordering},
        Arc,
    },
};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TryRecvError};
use llama_cpp_2::{
    context::{params::LlamaContextParams, LlamaContext},
    llama_backend::LlamaBackend,
    llama_batch::LlamaBatch,
    model::LlamaModel,
    sampling::LlamaSampler,
    token::LlamaToken,
};

use std::collections::VecDeque;

use crate::{
    generation::{
        FinishReason, GenerationEvent, GenerationJob, LanguageModelLimits, LanguageOptions,
        TextAssembler, TokenLogprob,
    },
    Error, Result,
};

/// A job on its way to the scheduler, with its grammar compiled by the submitter.
pub(super) struct Queued {
    pub(super) job: GenerationJob,
    pub(super) grammar: Option<llguidance::Matcher>,
}

/// How long an idle scheduler waits before checking again whether it is still needed.
const IDLE_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// What the scheduler thread publishes after every step, for metrics.
#[derive(Default)]
pub(super) struct Occupancy {
    pub(super) running: AtomicU32,
    /// KV-cache cells held by running sequences (the sum of their positions).
    pub(super) kv_used: AtomicU64,
}

/// Starts the scheduler thread for `model` and returns the queue that feeds it. Fails if the
/// context cannot be created.
pub(super) fn start(
    backend: &'static LlamaBackend,
    model: Arc<LlamaModel>,
    options: &LanguageOptions,
    limits: &LanguageModelLimits,
    occupancy: Arc<Occupancy>,
) -> Result<Sender<Queued>> {
    let (jobs, queue) = bounded::<Queued>(limits.max_waiting.max(1) as usize);
    let (started, outcome) = std::sync::mpsc::channel::<Result<()>>();
    let threads = options.threads.max(1) as i32;
    let slots = limits.max_sequences;
    let per_sequence = limits.context_per_sequence;
    let batch_tokens = options.batch_tokens.max(slots).max(1);
    std::thread::Builder::new()
        .name("llm-scheduler".into())
        .spawn(move || {
            // A KV stream per sequence: a sequence's attention then runs over its own cells
            // only, in its own order, so greedy output does not depend on what else is decoding
            // or on where the prefix cache left other sequences' cells (with one shared cache
            // the masked cells of others change the summation order, and near-ties flip).
            // Each sequence stays within its own context: submit and the budget below enforce
            // it.
            let params = LlamaContextParams::default()
                .with_n_ctx(NonZeroU32::new(slots.saturating_mul(per_sequence)))
                .with_n_batch(batch_tokens)
                .with_n_ubatch(batch_tokens)
                .with_n_seq_max(slots)
                .with_kv_unified(false)
                .with_n_threads(threads)
                .with_n_threads_batch(threads);
            let context = match model.new_context(backend, params) {
                Ok(context) => context,
                Err(e) => {
                    let _ = started.send(Err(Error::InvalidModel(format!(
                        "llama.cpp could not create a context of {slots}×{per_sequence} tokens: {e}"
                    ))));
                    return;
                }
            };
            let _ = started.send(Ok(()));
            let scheduler = Scheduler {
                model: &model,
                context,
                batch: LlamaBatch::new(batch_tokens as usize, 1),
                batch_tokens: batch_tokens as usize,
                per_sequence,
                slots: (0..slots).map(|_| None).collect(),
                cache: (0..slots).map(|_| SlotCache::default()).collect(),
                clock: 0,
                queue: queue.clone(),
                occupancy,
            };
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scheduler.run()));
            if run.is_err() {
                // Running sequences lost their senders in the unwind (their clients get an
                // error); everything queued now or later fails at once instead of waiting.
                tracing::error!("the language model's scheduler panicked; failing its requests");
                for Queued { job, .. } in queue {
                    let _ = job.events.send(GenerationEvent::Failed {
                        choice: job.choice,
                        message: "the model's scheduler stopped unexpectedly".into(),
                    });
                }
            }
        })
        .map_err(|e| Error::Generation(format!("cannot start the scheduler thread: {e}")))?;
    outcome
        .recv()
        .map_err(|_| Error::Generation("the scheduler thread stopped while starting".into()))??;
    Ok(jobs)
}

/// One running sequence.
struct Sequence {
    job: GenerationJob,
    sampler: LlamaSampler,
    text: TextAssembler,
    /// Tokens to feed the model next: the prompt's remainder, or the last sampled token.
    pending: Vec<LlamaToken>,
    /// Position of the next token fed.
    position: i32,
    /// Tokens generated so far.
    generated: u32,
    /// `max_tokens`, or what is left of the context after the prompt.
    budget: u32,
    /// Prompt tokens whose KV cells were reused from the slot's cache.
    cached: u32,
    /// Log-probabilities of tokens whose text has not been sent yet, with their end offsets
    /// in the generated bytes.
    logprobs: VecDeque<(usize, TokenLogprob)>,
    /// Bytes generated so far, and bytes of text sent so far.
    generated_bytes: usize,
    sent_bytes: usize,
}

impl Sequence {
    /// Sends text and the log-probabilities of the tokens it completes.
    fn send_text(&mut self, text: String) {
        self.sent_bytes += text.len();
        let mut completed = Vec::new();
        while self
            .logprobs
            .front()
            .is_some_and(|(end, _)| *end <= self.sent_bytes)
        {
            completed.extend(self.logprobs.pop_front().map(|(_, l)| l));
        }
        if text.is_empty() && completed.is_empty() {
            return;
        }
        let _ = self.job.events.send(GenerationEvent::Text {
            choice: self.job.choice,
            text,
            logprobs: completed,
        });
    }
}

/// The tokens whose KV cells a slot holds, for prefix reuse.
#[derive(Default)]
struct SlotCache {
    tokens: Vec<LlamaToken>,
    /// When the slot last took a job (a step counter).
    last_used: u64,
}

struct Scheduler<'m> {
    model: &'m LlamaModel,
    context: LlamaContext<'m>,
    batch: LlamaBatch<'static>,
    batch_tokens: usize,
    /// Tokens one sequence may hold.
    per_sequence: u32,
    /// Slot `i` is sequence id `i` in the context.
    slots: Vec<Option<Sequence>>,
    /// What each slot's KV cells hold.
    cache: Vec<SlotCache>,
    clock: u64,
    queue: Receiver<Queued>,
    occupancy: Arc<Occupancy>,
}

impl Scheduler<'_> {
    fn run(mut self) {
        loop {
            if !self.admit() {
                return;
            }
            self.drop_cancelled();
            self.publish();
            if self.slots.iter().all(Option::is_none) {
                continue;
            }
            self.step();
            self.publish();
        }
    }

    /// Publishes how many sequences run and how much of the KV cache they hold.
    fn publish(&self) {
        let running = self.slots.iter().flatten();
        let cells: u64 = running.clone().map(|s| s.position.max(0) as u64).sum();
        self.occupancy
            .running
            .store(running.count() as u32, Ordering::Relaxed);
        self.occupancy.kv_used.store(cells, Ordering::Relaxed);
    }

    /// Moves waiting jobs into free slots. Blocks while nothing runs; returns false once the
    /// model is unloaded (its queue closed) and nothing is left to finish.
    fn admit(&mut self) -> bool {
        while self.slots.iter().any(Option::is_none) {
            let idle = self.slots.iter().all(Option::is_none);
            let Queued { job, grammar } = if idle {
                match self.queue.recv_timeout(IDLE_WAIT) {
                    Ok(queued) => queued,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return false,
                }
            } else {
                match self.queue.try_recv() {
                    Ok(queued) => queued,
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => return true,
                }
            };
            if job.events.is_closed() {
                continue; // the client left while it waited
            }
            let prompt: Vec<LlamaToken> = job.prompt.iter().map(|&t| LlamaToken(t)).collect();
            let (slot, kept) = self.reuse(&prompt);
            let budget = job
                .max_tokens
                .unwrap_or(u32::MAX)
                .min(self.per_sequence.saturating_sub(prompt.len() as u32));
            let sequence = Sequence {
                sampler: super::sampling::chain(&job.sampling, self.model.n_vocab(), grammar),
                text: TextAssembler::new(job.stop.clone()),
                pending: prompt[kept..].to_vec(),
                position: kept as i32,
                generated: 0,
                budget,
                cached: kept as u32,
                logprobs: VecDeque::new(),
                generated_bytes: 0,
                sent_bytes: 0,
                job,
            };
            self.slots[slot] = Some(sequence);
        }
        true
    }

    /// Picks the free slot for `prompt` and trims its cache to what the prompt shares with
    /// it; returns the slot and how many prompt tokens are already in its KV cells. At least
    /// one prompt token is always decoded again, for the logits of the first new token.
    fn reuse(&mut self, prompt: &[LlamaToken]) -> (usize, usize) {
        let free = (0..self.slots.len()).filter(|&i| self.slots[i].is_none());
        let shared = |i: usize| {
            self.cache[i]
                .tokens
                .iter()
                .zip(prompt)
                .take_while(|(a, b)| a == b)
                .count()
        };
        let (slot, common) = free
            .map(|i| (i, shared(i)))
            .max_by_key(|&(i, common)| (common, std::cmp::Reverse(self.cache[i].last_used)))
            .expect("a free slot exists");
        let kept = common.min(prompt.len().saturating_sub(1));
        self.clock += 1;
        self.cache[slot].last_used = self.clock;
        let trimmed = self
            .context
            .clear_kv_cache_seq(Some(slot as u32), Some(kept as u32), None)
            .unwrap_or(false);
        if trimmed {
            self.cache[slot].tokens.truncate(kept);
            (slot, kept)
        } else {
            self.clear(slot);
            (slot, 0)
        }
    }

    /// Frees the slots of sequences whose client went away.
    fn drop_cancelled(&mut self) {
        for slot in 0..self.slots.len() {
            if self.slots[slot]
                .as_ref()
                .is_some_and(|s| s.job.events.is_closed())
            {
                self.slots[slot] = None;
                self.clear(slot);
            }
        }
    }

    /// Empties a slot's KV cells and cache.
    fn clear(&mut self, slot: usize) {
        let _ = self
            .context
            .clear_kv_cache_seq(Some(slot as u32), None, None);
        self.cache[slot].tokens.clear();
    }

    /// One decode step over every running sequence.
    fn step(&mut self) {
        self.batch.clear();
        // Batch rows whose logits are sampled, by slot.
        let mut sampled: Vec<(usize, i32)> = Vec::new();
        // Decoding sequences first (one token each), then prompt chunks in the space left.
        let mut order: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].is_some())
            .collect();
        order.sort_by_key(|&i| self.slots[i].as_ref().map_or(0, |s| s.pending.len()));
        for slot in order {
            let room = self.batch_tokens - self.batch.n_tokens() as usize;
            if room == 0 {
                break;
            }
            let Some(sequence) = self.slots[slot].as_mut() else {
                continue;
            };
            let take = sequence.pending.len().min(room);
            let completes = take == sequence.pending.len();
            for (i, token) in sequence.pending.drain(..take).enumerate() {
                let last = completes && i + 1 == take;
                if self
                    .batch
                    .add(token, sequence.position, &[slot as i32], last)
                    .is_err()
                {
                    break; // cannot happen: room was checked
                }
                sequence.position += 1;
                self.cache[slot].tokens.push(token);
            }
            if completes {
                sampled.push((slot, self.batch.n_tokens() - 1));
            }
        }
        if let Err(e) = self.context.decode(&mut self.batch) {
            tracing::error!(error = %e, "llama.cpp decode failed; failing the running sequences");
            for slot in 0..self.slots.len() {
                if let Some(sequence) = self.slots[slot].take() {
                    let _ = sequence.job.events.send(GenerationEvent::Failed {
                        choice: sequence.job.choice,
                        message: format!("the model failed to decode: {e}"),
                    });
                    self.clear(slot);
                }
            }
            return;
        }
        for (slot, row) in sampled {
            if let Some(reason) = self.sample(slot, row) {
                // The slot's KV cells stay for the next prompt that shares their prefix.
                if let Some(mut sequence) = self.slots[slot].take() {
                    // Text held back as a possible stop's start is the model's output after all
                    // (after a stop text was found nothing is held, and the log-probabilities
                    // of the stop's tokens are dropped).
                    let rest = sequence.text.finish();
                    if reason != FinishReason::Stop || !rest.is_empty() {
                        sequence.sent_bytes = sequence.generated_bytes.max(sequence.sent_bytes);
                    }
                    sequence.send_text(rest);
                    let _ = sequence.job.events.send(GenerationEvent::Done {
                        choice: sequence.job.choice,
                        reason,
                        completion_tokens: sequence.generated,
                        cached_tokens: sequence.cached,
                    });
                }
            }
        }
    }

    /// Samples a sequence's next token from batch row `row`; returns why it ended, if it did.
    fn sample(&mut self, slot: usize, row: i32) -> Option<FinishReason> {
        let sequence = self.slots[slot].as_mut()?;
        let token = sequence.sampler.sample(&self.context, row);
        sequence.generated += 1;
        let vocab = self.model.vocab();
        if vocab.is_eog(token) {
            return Some(FinishReason::Stop);
        }
        let bytes = vocab.token_to_piece(token, false, None);
        sequence.generated_bytes += bytes.len();
        if let Some(top) = sequence.job.logprobs {
            let report =
                super::logprobs::report(self.context.get_logits_ith(row), token.0, top, |t| {
                    vocab.token_to_piece(LlamaToken(t), false, None)
                });
            sequence
                .logprobs
                .push_back((sequence.generated_bytes, report));
        }
        let piece = sequence.text.push(&bytes);
        sequence.send_text(piece.text);
        if piece.stopped {
            return Some(FinishReason::Stop);
        }
        if sequence.generated >= sequence.budget {
            return Some(FinishReason::Length);
        }
        sequence.pending.push(token);
        None
    }
}
