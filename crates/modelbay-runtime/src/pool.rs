use std::sync::Arc;

use crossbeam_channel::{bounded, Sender, TrySendError};
use modelbay_core::Tensor;
use modelbay_engines::{Engine, SessionOptions, TensorSession};
use tokio::sync::oneshot;

use crate::{Error, Result};

struct Job {
    inputs: Vec<Tensor>,
    outputs: Vec<String>,
    reply: oneshot::Sender<Result<Vec<Tensor>>>,
}

/// Sessions of one model version, each owned by its own thread, fed from one bounded queue.
/// Async callers never block: a full queue is an immediate [`Error::Overloaded`].
pub(crate) struct SessionPool {
    queue: Sender<Job>,
    label: (String, u32),
}

impl SessionPool {
    /// Opens `workers` sessions (blocking; call from a blocking context) and starts their threads.
    pub(crate) fn start(
        engine: &Arc<dyn Engine>,
        artifact: &[u8],
        options: &SessionOptions,
        workers: usize,
        queue_capacity: usize,
        label: (String, u32),
    ) -> Result<Self> {
        let sessions = (0..workers.max(1))
            .map(|_| engine.open(artifact, options))
            .collect::<modelbay_engines::Result<Vec<_>>>()?;
        let (queue, jobs) = bounded::<Job>(queue_capacity.max(1));
        for (i, session) in sessions.into_iter().enumerate() {
            let jobs = jobs.clone();
            std::thread::Builder::new()
                .name(format!("engine-{}-{}-{i}", label.0, label.1))
                .spawn(move || serve(session, jobs))
                .map_err(|e| Error::WorkerLost(format!("{}: cannot start thread: {e}", label.0)))?;
        }
        Ok(Self { queue, label })
    }

    /// Runs one request on the next free session.
    pub(crate) async fn run(
        &self,
        inputs: Vec<Tensor>,
        outputs: Vec<String>,
    ) -> Result<Vec<Tensor>> {
        let (reply, answer) = oneshot::channel();
        match self.queue.try_send(Job {
            inputs,
            outputs,
            reply,
        }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(Error::Overloaded {
                    model: self.label.0.clone(),
                    version: self.label.1,
                    queued: self.queue.len(),
                })
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(Error::WorkerLost(self.label.0.clone()))
            }
        }
        answer
            .await
            .map_err(|_| Error::WorkerLost(self.label.0.clone()))?
    }
}

/// A worker thread's loop: it ends when the pool (the only sender) is dropped.
fn serve(mut session: Box<dyn TensorSession>, jobs: crossbeam_channel::Receiver<Job>) {
    for job in jobs {
        if job.reply.is_closed() {
            continue; // the caller gave up (client disconnected); skip the work
        }
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            session.run(&job.inputs, &job.outputs)
        }));
        let result = match run {
            Ok(result) => result.map_err(Error::from),
            Err(_) => Err(Error::WorkerLost("engine panicked".into())),
        };
        let _ = job.reply.send(result);
    }
}
