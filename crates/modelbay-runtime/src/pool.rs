//! The sessions of one tensor model version behind a dynamic batcher. Each session is owned by
//! a worker thread; requests wait in one bounded queue. When a worker is free it takes the
//! oldest request and, if the model's batching settings and signature allow, the compatible
//! requests queued behind it (same inner dimensions, same outputs) up to `max_batch_size` rows;
//! their inputs are joined along the first dimension, run once, and the outputs split back.

use std::{collections::VecDeque, sync::Arc, time::Instant};

use modelbay_core::{Tensor, TensorBatching};
use modelbay_engines::{Engine, SessionOptions, TensorSession};
use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;

use crate::{metrics::ModelMetrics, Error, Result};

/// What makes two requests mergeable: the inner dimensions of every input (in signature order)
/// and the outputs requested.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MergeKey {
    inner: Vec<Vec<usize>>,
    outputs: Vec<String>,
}

struct Job {
    inputs: Vec<Tensor>,
    outputs: Vec<String>,
    /// First-dimension entries (0 when the request has no common first dimension).
    rows: usize,
    /// `None`: this request always runs alone.
    key: Option<MergeKey>,
    arrived: Instant,
    reply: oneshot::Sender<Result<Vec<Tensor>>>,
    /// Whether the run counts in the metrics (the warm-up at load does not).
    counted: bool,
}

impl Job {
    fn new(
        inputs: Vec<Tensor>,
        outputs: Vec<String>,
        reply: oneshot::Sender<Result<Vec<Tensor>>>,
    ) -> Self {
        let rows = inputs
            .first()
            .and_then(|t| t.shape().first().copied())
            .unwrap_or(0);
        let same_rows = inputs.iter().all(|t| t.shape().first() == Some(&rows));
        let key = (rows > 0 && same_rows).then(|| MergeKey {
            inner: inputs.iter().map(|t| t.shape()[1..].to_vec()).collect(),
            outputs: outputs.clone(),
        });
        Self {
            inputs,
            outputs,
            rows,
            key,
            arrived: Instant::now(),
            reply,
            counted: true,
        }
    }
}

struct State {
    queue: VecDeque<Job>,
    policy: TensorBatching,
    /// Set when the pool is dropped: workers finish what is queued, then stop.
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when a job arrives, the policy changes or the pool closes.
    changed: Condvar,
    metrics: ModelMetrics,
}

/// Sessions of one model version and the queue in front of them. Async callers never block: a
/// full queue is an immediate [`Error::Overloaded`].
pub(crate) struct SessionPool {
    shared: Arc<Shared>,
    capacity: usize,
    /// Whether the signature lets requests merge along the first dimension.
    batchable: bool,
    label: (String, u32),
}

/// How a pool is built.
pub(crate) struct PoolSpec {
    pub workers: usize,
    pub queue_capacity: usize,
    pub batchable: bool,
    pub policy: TensorBatching,
    pub metrics: ModelMetrics,
    pub label: (String, u32),
}

impl SessionPool {
    /// Opens the sessions (blocking; call from a blocking context) and starts their threads.
    pub(crate) fn start(
        engine: &Arc<dyn Engine>,
        artifact: &[u8],
        options: &SessionOptions,
        spec: PoolSpec,
    ) -> Result<Self> {
        let sessions = (0..spec.workers.max(1))
            .map(|_| engine.open(artifact, options))
            .collect::<modelbay_engines::Result<Vec<_>>>()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                policy: spec.policy,
                closed: false,
            }),
            changed: Condvar::new(),
            metrics: spec.metrics,
        });
        let label = spec.label;
        let batchable = spec.batchable;
        // Built first, so that if a thread cannot start, dropping it stops those that did.
        let pool = Self {
            shared,
            capacity: spec.queue_capacity.max(1),
            batchable,
            label,
        };
        for (i, session) in sessions.into_iter().enumerate() {
            let shared = pool.shared.clone();
            std::thread::Builder::new()
                .name(format!("engine-{}-{}-{i}", pool.label.0, pool.label.1))
                .spawn(move || serve(session, &shared, batchable))
                .map_err(|e| {
                    Error::WorkerLost(format!("{}: cannot start thread: {e}", pool.label.0))
                })?;
        }
        Ok(pool)
    }

    /// Runs one request, merged with others when batching is on.
    pub(crate) async fn run(
        &self,
        inputs: Vec<Tensor>,
        outputs: Vec<String>,
    ) -> Result<Vec<Tensor>> {
        self.submit(Job::new(inputs, outputs, oneshot::channel().0), true)
            .await
    }

    /// Runs the warm-up inference at load, which the metrics do not count.
    pub(crate) async fn warm_up(
        &self,
        inputs: Vec<Tensor>,
        outputs: Vec<String>,
    ) -> Result<Vec<Tensor>> {
        self.submit(Job::new(inputs, outputs, oneshot::channel().0), false)
            .await
    }

    async fn submit(&self, mut job: Job, counted: bool) -> Result<Vec<Tensor>> {
        let (reply, answer) = oneshot::channel();
        job.reply = reply;
        job.counted = counted;
        {
            let mut state = self.shared.state.lock();
            if state.queue.len() >= self.capacity {
                // Requests whose client left must not hold places while every session is busy.
                state.queue.retain(|job| !job.reply.is_closed());
            }
            if state.queue.len() >= self.capacity {
                return Err(Error::Overloaded {
                    model: self.label.0.clone(),
                    version: self.label.1,
                    queued: state.queue.len(),
                });
            }
            state.queue.push_back(job);
        }
        self.shared.changed.notify_all();
        answer
            .await
            .map_err(|_| Error::WorkerLost(self.label.0.clone()))?
    }

    /// Applies new batching settings to the requests that are queued and to come.
    pub(crate) fn set_policy(&self, policy: TensorBatching) {
        self.shared.state.lock().policy = policy;
        self.shared.changed.notify_all();
    }

    /// The batching settings in force, and whether the signature allows merging at all.
    pub(crate) fn policy(&self) -> (TensorBatching, bool) {
        (self.shared.state.lock().policy.clone(), self.batchable)
    }

    /// Requests waiting for a session.
    pub(crate) fn queued(&self) -> usize {
        self.shared.state.lock().queue.len()
    }
}

impl Drop for SessionPool {
    fn drop(&mut self) {
        self.shared.state.lock().closed = true;
        self.shared.changed.notify_all();
    }
}

/// What a free worker does next.
#[derive(Debug, PartialEq)]
enum Plan {
    /// Run the jobs at these queue positions (ascending) as one batch.
    Take(Vec<usize>),
    /// Nothing is due before this instant (unless more work arrives).
    WaitUntil(Instant),
}

/// Chooses the next batch: the oldest job plus compatible jobs behind it, in arrival order, up
/// to `max_batch_size` rows. The batch runs at once when it is full (or the next compatible job
/// would overflow it), when the oldest job has waited the queue delay, or when the pool is
/// closing. Otherwise, if a prefix of it reaches a preferred size (the largest such prefix), that
/// prefix runs now; if not, the worker waits for the deadline or for more work.
fn plan(
    queue: &VecDeque<Job>,
    policy: &TensorBatching,
    batchable: bool,
    now: Instant,
    closing: bool,
) -> Plan {
    let Some(front) = queue.front() else {
        return Plan::Take(Vec::new());
    };
    let key = match &front.key {
        Some(key) if batchable && policy.enabled() => key,
        _ => return Plan::Take(vec![0]),
    };
    let max = policy.max_batch_size as usize;
    let preferred = |rows: usize| {
        policy
            .preferred_batch_sizes
            .iter()
            .any(|&p| p as usize == rows)
    };
    let mut picked = vec![0];
    let mut rows = front.rows;
    let mut full = rows >= max;
    let mut preferred_prefix = preferred(rows).then_some(1);
    for (i, job) in queue.iter().enumerate().skip(1) {
        if full {
            break;
        }
        if job.key.as_ref() != Some(key) {
            continue;
        }
        if rows + job.rows > max {
            full = true;
            break;
        }
        picked.push(i);
        rows += job.rows;
        full = rows >= max;
        if preferred(rows) {
            preferred_prefix = Some(picked.len());
        }
    }
    let deadline =
        front.arrived + std::time::Duration::from_micros(policy.max_queue_delay_microseconds);
    if full || closing || deadline <= now {
        return Plan::Take(picked);
    }
    // Waiting for company: a batch that already reaches a preferred size need not wait.
    match preferred_prefix {
        Some(n) => {
            picked.truncate(n);
            Plan::Take(picked)
        }
        None => Plan::WaitUntil(deadline),
    }
}

/// Waits for the next batch; `None` once the pool is closed and drained.
fn next_batch(shared: &Shared, batchable: bool) -> Option<Vec<Job>> {
    let mut state = shared.state.lock();
    loop {
        // Requests whose caller gave up (client disconnected) neither run nor hold places.
        state.queue.retain(|job| !job.reply.is_closed());
        if state.queue.is_empty() {
            if state.closed {
                return None;
            }
            shared.changed.wait(&mut state);
            continue;
        }
        match plan(
            &state.queue,
            &state.policy,
            batchable,
            Instant::now(),
            state.closed,
        ) {
            Plan::Take(positions) => {
                let mut batch = Vec::with_capacity(positions.len());
                for (taken, position) in positions.into_iter().enumerate() {
                    if let Some(job) = state.queue.remove(position - taken) {
                        batch.push(job);
                    }
                }
                return Some(batch);
            }
            Plan::WaitUntil(deadline) => {
                shared.changed.wait_until(&mut state, deadline);
            }
        }
    }
}

/// A worker thread's loop. Metrics are recorded before the answers go out, so a client that
/// has its answer sees its batch counted.
fn serve(mut session: Box<dyn TensorSession>, shared: &Shared, batchable: bool) {
    while let Some(batch) = next_batch(shared, batchable) {
        let started = Instant::now();
        let rows = batch.iter().map(|j| j.rows.max(1)).sum();
        let waits: Vec<_> = batch.iter().map(|j| started - j.arrived).collect();
        let counted = batch.iter().any(|j| j.counted);
        let answers = run_batch(session.as_mut(), batch);
        if counted {
            shared.metrics.record_batch(rows, started.elapsed(), waits);
        }
        for (reply, result) in answers {
            let _ = reply.send(result);
        }
    }
}

type Reply = oneshot::Sender<Result<Vec<Tensor>>>;

fn run_one(
    session: &mut dyn TensorSession,
    inputs: &[Tensor],
    outputs: &[String],
) -> Result<Vec<Tensor>> {
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        session.run(inputs, outputs)
    }));
    match run {
        Ok(result) => result.map_err(Error::from),
        Err(_) => Err(Error::WorkerLost("engine panicked".into())),
    }
}

/// Runs a batch: alone when it holds one job; else merged, falling back to one run per job if
/// the merged run fails or its outputs cannot be split by rows (so that one bad request fails
/// alone). Returns each job's answer with where it goes.
fn run_batch(
    session: &mut dyn TensorSession,
    batch: Vec<Job>,
) -> Vec<(Reply, Result<Vec<Tensor>>)> {
    let merged = match batch.len() {
        1 => None,
        _ => {
            let rows: Vec<usize> = batch.iter().map(|j| j.rows).collect();
            run_merged(session, &batch, &rows)
        }
    };
    match merged {
        Some(per_job) => batch
            .into_iter()
            .zip(per_job)
            .map(|(job, outputs)| (job.reply, Ok(outputs)))
            .collect(),
        None => batch
            .into_iter()
            .map(|job| {
                let result = run_one(session, &job.inputs, &job.outputs);
                (job.reply, result)
            })
            .collect(),
    }
}

/// The outputs of each job from one merged run, or `None` if that did not work.
fn run_merged(
    session: &mut dyn TensorSession,
    batch: &[Job],
    rows: &[usize],
) -> Option<Vec<Vec<Tensor>>> {
    let first = batch.first()?;
    let mut merged = Vec::with_capacity(first.inputs.len());
    for (i, input) in first.inputs.iter().enumerate() {
        let parts: Vec<Tensor> = batch.iter().map(|j| j.inputs[i].clone()).collect();
        merged.push(Tensor::concat_rows(input.name.clone(), &parts).ok()?);
    }
    let outputs = match run_one(session, &merged, &first.outputs) {
        Ok(outputs) => outputs,
        Err(e) => {
            tracing::debug!(error = %e, "merged batch failed; running its requests one by one");
            return None;
        }
    };
    let mut per_job: Vec<Vec<Tensor>> = batch.iter().map(|_| Vec::new()).collect();
    for output in outputs {
        for (job, piece) in per_job.iter_mut().zip(output.split_rows(rows).ok()?) {
            job.push(piece);
        }
    }
    Some(per_job)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use modelbay_core::TensorData;

    fn job(rows: usize, width: usize, arrived: Instant) -> Job {
        let (reply, _answer) = oneshot::channel();
        let input = Tensor::new(
            "x",
            vec![rows, width],
            TensorData::Fp32(vec![0.0; rows * width]),
        )
        .unwrap();
        Job {
            arrived,
            ..Job::new(vec![input], vec!["y".into()], reply)
        }
    }

    fn policy(max: u32, delay_us: u64, preferred: &[u32]) -> TensorBatching {
        TensorBatching {
            max_batch_size: max,
            max_queue_delay_microseconds: delay_us,
            preferred_batch_sizes: preferred.to_vec(),
        }
    }

    #[test]
    fn without_batching_the_oldest_job_runs_alone() {
        let now = Instant::now();
        let queue: VecDeque<Job> = (0..3).map(|_| job(1, 4, now)).collect();
        assert_eq!(
            plan(&queue, &policy(0, 0, &[]), true, now, false),
            Plan::Take(vec![0])
        );
        assert_eq!(
            plan(&queue, &policy(8, 0, &[]), false, now, false),
            Plan::Take(vec![0])
        );
    }

    #[test]
    fn compatible_jobs_merge_up_to_the_row_limit_in_arrival_order() {
        let now = Instant::now();
        let queue: VecDeque<Job> = [(2, 4), (3, 5), (3, 4), (4, 4), (1, 4)]
            .into_iter()
            .map(|(rows, width)| job(rows, width, now))
            .collect();
        // The width-5 job cannot join; 2 + 3 fit in 6, the 4-row job does not: full.
        assert_eq!(
            plan(&queue, &policy(6, 0, &[]), true, now, false),
            Plan::Take(vec![0, 2])
        );
        // With room for everything compatible and no delay, all of it runs now.
        assert_eq!(
            plan(&queue, &policy(64, 0, &[]), true, now, false),
            Plan::Take(vec![0, 2, 3, 4])
        );
    }

    #[test]
    fn a_delay_waits_for_more_unless_full_preferred_due_or_closing() {
        let now = Instant::now();
        let delay = 1000;
        let queue: VecDeque<Job> = (0..3).map(|_| job(1, 4, now)).collect();
        let waiting = plan(&queue, &policy(8, delay, &[]), true, now, false);
        assert_eq!(waiting, Plan::WaitUntil(now + Duration::from_micros(delay)));
        let later = now + Duration::from_micros(delay);
        assert_eq!(
            plan(&queue, &policy(8, delay, &[]), true, later, false),
            Plan::Take(vec![0, 1, 2])
        );
        assert_eq!(
            plan(&queue, &policy(8, delay, &[]), true, now, true),
            Plan::Take(vec![0, 1, 2])
        );
        assert_eq!(
            plan(&queue, &policy(3, delay, &[]), true, now, false),
            Plan::Take(vec![0, 1, 2])
        );
        assert_eq!(
            plan(&queue, &policy(8, delay, &[2, 4]), true, now, false),
            Plan::Take(vec![0, 1])
        );
        // Without a delay nothing waits, so preferred sizes do not cut the batch short.
        assert_eq!(
            plan(&queue, &policy(8, 0, &[2]), true, now, false),
            Plan::Take(vec![0, 1, 2])
        );
    }

    /// Doubles its input; fails a run that holds a negative value. Counts its runs.
    struct Doubler {
        runs: usize,
    }

    impl TensorSession for Doubler {
        fn run(
            &mut self,
            inputs: &[Tensor],
            _outputs: &[String],
        ) -> modelbay_engines::Result<Vec<Tensor>> {
            self.runs += 1;
            let TensorData::Fp32(values) = inputs[0].data() else {
                unreachable!("the tests send FP32")
            };
            if values.iter().any(|v| *v < 0.0) {
                return Err(modelbay_engines::Error::InvalidRequest("negative".into()));
            }
            let doubled = values.iter().map(|v| v * 2.0).collect();
            Ok(vec![Tensor::new(
                "y",
                inputs[0].shape().to_vec(),
                TensorData::Fp32(doubled),
            )
            .unwrap()])
        }
    }

    fn valued(rows: usize, value: f32) -> Job {
        let (reply, _answer) = oneshot::channel();
        let input =
            Tensor::new("x", vec![rows, 2], TensorData::Fp32(vec![value; rows * 2])).unwrap();
        Job::new(vec![input], vec!["y".into()], reply)
    }

    fn doubled(result: &Result<Vec<Tensor>>) -> Vec<f32> {
        match result.as_ref().unwrap()[0].data() {
            TensorData::Fp32(v) => v.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_merged_batch_runs_once_and_splits_back_by_rows() {
        let mut session = Doubler { runs: 0 };
        let answers = run_batch(&mut session, vec![valued(1, 1.0), valued(2, 3.0)]);
        assert_eq!(session.runs, 1);
        assert_eq!(doubled(&answers[0].1), [2.0; 2]);
        assert_eq!(doubled(&answers[1].1), [6.0; 4]);
    }

    #[test]
    fn a_bad_request_in_a_batch_fails_alone() {
        let mut session = Doubler { runs: 0 };
        let batch = vec![valued(1, 1.0), valued(1, -1.0), valued(2, 2.0)];
        let answers = run_batch(&mut session, batch);
        // The merged run failed, then each request ran alone.
        assert_eq!(session.runs, 4);
        assert_eq!(doubled(&answers[0].1), [2.0; 2]);
        assert!(answers[1].1.is_err());
        assert_eq!(doubled(&answers[2].1), [4.0; 4]);
    }

    #[test]
    fn a_job_larger_than_the_limit_runs_alone() {
        let now = Instant::now();
        let queue: VecDeque<Job> = [job(10, 4, now), job(1, 4, now)].into_iter().collect();
        assert_eq!(
            plan(&queue, &policy(8, 1000, &[]), true, now, false),
            Plan::Take(vec![0])
        );
    }
}
