//! One loaded embedding model serving many requests: a scheduler thread gathers the inputs of
//! every waiting request into batches (see [`super::batching`]) and hands each batch to the next
//! free worker thread; each input's embedding goes back to the request it came from.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Instant,
};

use crossbeam_channel::{select, unbounded, Receiver, Sender};
use modelbay_engines::{embedding::EmbeddingToken, EmbeddingModel};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::batching::{BatchPolicy, BatchQueue};
use crate::{metrics::ModelMetrics, Error, Result};

type Reply = oneshot::Sender<Result<Vec<Vec<f32>>>>;

/// One request's inputs, filled in as batches finish.
struct Request {
    results: Mutex<Vec<Option<Vec<f32>>>>,
    remaining: AtomicUsize,
    reply: Mutex<Option<Reply>>,
}

impl Request {
    /// Whether nobody waits for the answer any more (the client went away, or it failed).
    fn abandoned(&self) -> bool {
        self.reply.lock().as_ref().is_none_or(|r| r.is_closed())
    }

    fn deliver(&self, index: usize, vector: Vec<f32>) {
        self.results.lock()[index] = Some(vector);
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some(reply) = self.reply.lock().take() {
                let vectors = std::mem::take(&mut *self.results.lock())
                    .into_iter()
                    .map(Option::unwrap_or_default)
                    .collect();
                let _ = reply.send(Ok(vectors));
            }
        }
    }

    fn fail(&self, error: Error) {
        if let Some(reply) = self.reply.lock().take() {
            let _ = reply.send(Err(error));
        }
    }
}

/// One input waiting for a batch.
struct Item {
    tokens: Vec<EmbeddingToken>,
    arrived: Instant,
    index: usize,
    request: Arc<Request>,
}

/// The batching front of a loaded embedding model.
pub(crate) struct Embedder {
    pub(crate) model: Arc<dyn EmbeddingModel>,
    /// A request's inputs arrive together, so they can share a batch.
    submit: Sender<Vec<Item>>,
    /// Inputs admitted and not yet handed to a worker.
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
    /// Most inputs in one request.
    pub(crate) max_inputs: usize,
    label: (String, u32),
}

impl Embedder {
    /// Starts the scheduler and `workers` worker threads. The waiting queue holds at least one
    /// request of `max_inputs`.
    pub(crate) fn start(
        model: Arc<dyn EmbeddingModel>,
        policy: BatchPolicy,
        workers: usize,
        limits: (usize, usize),
        label: (String, u32),
        metrics: ModelMetrics,
    ) -> Result<Self> {
        let (max_inputs, max_waiting) = (limits.0.max(1), limits.1.max(limits.0).max(1));
        let (submit, submitted) = unbounded::<Vec<Item>>();
        let (work, batches) = unbounded::<Vec<Item>>();
        let (done, finished) = unbounded::<()>();
        let waiting = Arc::new(AtomicUsize::new(0));
        let thread_error =
            |e: std::io::Error| Error::WorkerLost(format!("{}: cannot start thread: {e}", label.0));
        let workers = workers.max(1);
        for i in 0..workers {
            let (model, batches, done) = (model.clone(), batches.clone(), done.clone());
            let metrics = metrics.clone();
            std::thread::Builder::new()
                .name(format!("embed-{}-{}-{i}", label.0, label.1))
                .spawn(move || run_batches(&*model, batches, done, &metrics))
                .map_err(thread_error)?;
        }
        let scheduler = Scheduler {
            queue: BatchQueue::new(policy),
            idle: workers,
            waiting: waiting.clone(),
            max_waiting,
        };
        std::thread::Builder::new()
            .name(format!("embed-{}-{}-batcher", label.0, label.1))
            .spawn(move || scheduler.run(submitted, work, finished))
            .map_err(thread_error)?;
        Ok(Self {
            model,
            submit,
            waiting,
            max_waiting,
            max_inputs,
            label,
        })
    }

    /// Inputs admitted and not yet in a batch.
    pub(crate) fn queued(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Refuses a request of `n` inputs that could not be admitted now, before any work is done
    /// for it (tokenizing).
    pub(crate) fn check_room(&self, n: usize) -> Result<()> {
        if n > self.max_inputs {
            return Err(Error::TooManyInputs {
                given: n,
                limit: self.max_inputs,
            });
        }
        let queued = self.waiting.load(Ordering::Acquire);
        if queued + n > self.max_waiting {
            return Err(self.overloaded(queued));
        }
        Ok(())
    }

    fn overloaded(&self, queued: usize) -> Error {
        Error::Overloaded {
            model: self.label.0.clone(),
            version: self.label.1,
            queued,
        }
    }

    /// Embeds tokenized inputs, batched with whatever else is waiting. All of them are admitted
    /// or none: a request that would overflow the waiting queue is refused with
    /// [`Error::Overloaded`].
    pub(crate) async fn embed(&self, inputs: Vec<Vec<EmbeddingToken>>) -> Result<Vec<Vec<f32>>> {
        let n = inputs.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        self.check_room(n)?;
        let admitted = self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (w + n <= self.max_waiting).then_some(w + n)
            });
        if let Err(queued) = admitted {
            return Err(self.overloaded(queued));
        }
        let (reply, answer) = oneshot::channel();
        let arrived = Instant::now();
        let request = Arc::new(Request {
            results: Mutex::new(vec![None; n]),
            remaining: AtomicUsize::new(n),
            reply: Mutex::new(Some(reply)),
        });
        let items = inputs
            .into_iter()
            .enumerate()
            .map(|(index, tokens)| Item {
                tokens,
                arrived,
                index,
                request: request.clone(),
            })
            .collect();
        if self.submit.send(items).is_err() {
            self.waiting.fetch_sub(n, Ordering::AcqRel);
            return Err(Error::WorkerLost(self.label.0.clone()));
        }
        answer
            .await
            .map_err(|_| Error::WorkerLost(self.label.0.clone()))?
    }
}

struct Scheduler {
    queue: BatchQueue<Item>,
    /// Workers with nothing to do.
    idle: usize,
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
}

impl Scheduler {
    /// Runs until the embedder is dropped; then the workers stop too.
    fn run(mut self, submitted: Receiver<Vec<Item>>, work: Sender<Vec<Item>>, done: Receiver<()>) {
        loop {
            self.drop_abandoned();
            self.dispatch(&work);
            let deadline = match (self.idle > 0, self.queue.deadline()) {
                (true, Some(deadline)) => crossbeam_channel::at(deadline),
                _ => crossbeam_channel::never(),
            };
            select! {
                recv(submitted) -> items => match items {
                    Ok(items) => {
                        let now = Instant::now();
                        for item in items {
                            let tokens = item.tokens.len();
                            self.queue.push(item, tokens, now);
                        }
                    }
                    Err(_) => return,
                },
                recv(done) -> _ => self.idle += 1,
                recv(deadline) -> _ => {}
            }
        }
    }

    /// Forgets inputs whose request nobody waits for any more, so they neither run nor hold
    /// places in the queue: before batches are formed (a worker is free), and whenever the
    /// queue is more than half full. Not on every event: the scan is linear in the queue.
    fn drop_abandoned(&mut self) {
        let before = self.queue.len();
        if before > 0 && (self.idle > 0 || before > self.max_waiting / 2) {
            self.queue.retain(|item| !item.request.abandoned());
            self.waiting
                .fetch_sub(before - self.queue.len(), Ordering::AcqRel);
        }
    }

    /// Hands batches to idle workers while batches are due.
    fn dispatch(&mut self, work: &Sender<Vec<Item>>) {
        while self.idle > 0 {
            let Some(batch) = self.queue.next_batch(Instant::now()) else {
                break;
            };
            self.waiting.fetch_sub(batch.len(), Ordering::AcqRel);
            if work.send(batch).is_err() {
                return;
            }
            self.idle -= 1;
        }
    }
}

/// A worker: embeds each batch it is given and sends every input's vector to its request.
/// Inputs were checked when their request was admitted, so a failing batch is the server's
/// fault (500), never a caller's.
fn run_batches(
    model: &dyn EmbeddingModel,
    batches: Receiver<Vec<Item>>,
    done: Sender<()>,
    metrics: &ModelMetrics,
) {
    for batch in batches {
        let started = Instant::now();
        let waits: Vec<_> = batch.iter().map(|item| started - item.arrived).collect();
        let (tokens, targets): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .map(|item| (item.tokens, (item.index, item.request)))
            .unzip();
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| model.embed(&tokens)));
        // Counted before the answers go out: a client that has its vectors sees its batch.
        metrics.record_batch(targets.len(), started.elapsed(), waits);
        match run {
            Ok(Ok(vectors)) if vectors.len() == targets.len() => {
                for ((index, request), vector) in targets.into_iter().zip(vectors) {
                    request.deliver(index, vector);
                }
            }
            Ok(Ok(vectors)) => {
                let message = format!(
                    "the engine returned {} embeddings for {} inputs",
                    vectors.len(),
                    targets.len()
                );
                fail_all(&targets, || Error::Batch {
                    code: modelbay_core::ErrorCode::Internal,
                    message: message.clone(),
                });
            }
            Ok(Err(e)) => {
                let message = format!("the embedding engine failed: {e}");
                fail_all(&targets, || Error::Batch {
                    code: modelbay_core::ErrorCode::Internal,
                    message: message.clone(),
                });
            }
            Err(_) => fail_all(&targets, || Error::Batch {
                code: modelbay_core::ErrorCode::Internal,
                message: "the embedding engine panicked".into(),
            }),
        }
        if done.send(()).is_err() {
            return;
        }
    }
}

fn fail_all(targets: &[(usize, Arc<Request>)], error: impl Fn() -> Error) {
    for (_, request) in targets {
        request.fail(error());
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{Condvar, Mutex as StdMutex},
        time::Duration,
    };

    use super::*;

    /// An engine that records the size of each batch and can be held busy, to watch the
    /// scheduler (the real engines are tested end to end in the integration tests).
    #[derive(Default)]
    struct Recording {
        batches: StdMutex<Vec<usize>>,
        open: StdMutex<bool>,
        opened: Condvar,
    }

    impl Recording {
        fn open(&self) {
            *self.open.lock().unwrap() = true;
            self.opened.notify_all();
        }
    }

    impl EmbeddingModel for Recording {
        fn dimensions(&self) -> usize {
            1
        }
        fn tokenize(&self, text: &str) -> modelbay_engines::Result<Vec<EmbeddingToken>> {
            Ok(vec![1; text.len()])
        }
        fn tokens_from_ids(
            &self,
            ids: &[EmbeddingToken],
        ) -> modelbay_engines::Result<Vec<EmbeddingToken>> {
            Ok(ids.to_vec())
        }
        fn embed(&self, batch: &[Vec<EmbeddingToken>]) -> modelbay_engines::Result<Vec<Vec<f32>>> {
            self.batches.lock().unwrap().push(batch.len());
            let mut open = self.open.lock().unwrap();
            while !*open {
                open = self.opened.wait(open).unwrap();
            }
            Ok(batch.iter().map(|row| vec![row.len() as f32]).collect())
        }
        fn memory_bytes(&self) -> u64 {
            0
        }
        fn backend(&self) -> &'static str {
            "test"
        }
    }

    fn start(model: &Arc<Recording>, max_waiting: usize) -> Arc<Embedder> {
        let policy = BatchPolicy {
            max_batch: 32,
            max_batch_tokens: 16384,
            max_delay: Duration::ZERO,
        };
        Arc::new(
            Embedder::start(
                model.clone(),
                policy,
                1,
                (4, max_waiting),
                ("test".into(), 1),
                ModelMetrics::default(),
            )
            .unwrap(),
        )
    }

    async fn until(condition: impl Fn() -> bool) {
        for _ in 0..500 {
            if condition() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("condition not reached");
    }

    #[tokio::test]
    async fn requests_waiting_for_a_busy_engine_share_one_batch() {
        let model = Arc::new(Recording::default());
        let embedder = start(&model, 100);
        let first = tokio::spawn({
            let embedder = embedder.clone();
            async move { embedder.embed(vec![vec![1; 2]]).await }
        });
        until(|| model.batches.lock().unwrap().len() == 1).await;
        // The engine is busy: five requests from different callers wait together.
        let waiting: Vec<_> = (3..8)
            .map(|len| {
                let embedder = embedder.clone();
                tokio::spawn(async move { embedder.embed(vec![vec![1; len]]).await })
            })
            .collect();
        until(|| embedder.waiting.load(Ordering::Acquire) == 5).await;
        model.open();
        assert_eq!(first.await.unwrap().unwrap(), vec![vec![2.0]]);
        for (task, len) in waiting.into_iter().zip(3..8) {
            assert_eq!(task.await.unwrap().unwrap(), vec![vec![len as f32]]);
        }
        assert_eq!(*model.batches.lock().unwrap(), [1, 5]);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_whole_requests_and_cancelled_ones_are_dropped() {
        let model = Arc::new(Recording::default());
        let embedder = start(&model, 4);
        let busy = tokio::spawn({
            let embedder = embedder.clone();
            async move { embedder.embed(vec![vec![1]]).await }
        });
        until(|| model.batches.lock().unwrap().len() == 1).await;
        let admitted = tokio::spawn({
            let embedder = embedder.clone();
            async move { embedder.embed(vec![vec![1]; 3]).await }
        });
        until(|| embedder.waiting.load(Ordering::Acquire) == 3).await;
        // Two more inputs do not fit: none of them is queued.
        let refused = embedder.embed(vec![vec![1]; 2]).await;
        assert!(
            matches!(refused, Err(Error::Overloaded { .. })),
            "{refused:?}"
        );
        assert_eq!(embedder.waiting.load(Ordering::Acquire), 3);
        // A caller that gives up is not run.
        admitted.abort();
        let _ = admitted.await;
        model.open();
        busy.await.unwrap().unwrap();
        assert_eq!(
            embedder.embed(vec![vec![1; 4]]).await.unwrap(),
            vec![vec![4.0]]
        );
        assert_eq!(*model.batches.lock().unwrap(), [1, 1]);
        assert_eq!(embedder.waiting.load(Ordering::Acquire), 0);
    }
}
