//! Request bodies under the server's limits: each must keep arriving (a frame at least every
//! `idle`), must arrive whole before the request's deadline, and the bytes of bodies the
//! server buffers count against one budget for all requests in flight, so slow or greedy
//! clients cannot hold connections or memory for ever.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    body::{Body, Bytes},
    extract::Request,
    middleware::Next,
    response::Response,
};
use http_body::{Frame, SizeHint};
use parking_lot::Mutex;
use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore},
    time::{Instant, Sleep},
};

/// Why a body stopped arriving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BodyLimit {
    #[error("the request body sent nothing for {0:?}")]
    Idle(Duration),
    #[error("the request body did not arrive within {0:?}")]
    Deadline(Duration),
    #[error("the server holds as many request bytes as it may; retry shortly")]
    Budget,
}

/// The limits every request body is read under.
#[derive(Debug, Clone)]
pub struct BodyLimits {
    pub idle: Duration,
    pub deadline: Duration,
    /// Bytes of buffered request bodies held at once, over all requests.
    pub budget: Arc<Semaphore>,
}

impl BodyLimits {
    pub fn new(idle: Duration, deadline: Duration, max_inflight_bytes: usize) -> Self {
        Self {
            idle,
            deadline,
            budget: Arc::new(Semaphore::new(
                max_inflight_bytes.min(Semaphore::MAX_PERMITS),
            )),
        }
    }
}

/// The bytes a request has charged to the budget, given back when the request is answered.
type Held = Arc<Mutex<Option<OwnedSemaphorePermit>>>;

struct Guarded {
    inner: Body,
    idle: Duration,
    deadline: Instant,
    total: Duration,
    timer: Pin<Box<Sleep>>,
    /// Where charged bytes are held, `None` for bodies streamed to disk (uploads).
    budget: Option<(Arc<Semaphore>, Held)>,
}

impl http_body::Body for Guarded {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some((budget, held))) = (frame.data_ref(), &this.budget) {
                    let bytes = u32::try_from(data.len()).unwrap_or(u32::MAX);
                    match budget.clone().try_acquire_many_owned(bytes) {
                        Ok(permit) => {
                            let mut held = held.lock();
                            match held.as_mut() {
                                Some(all) => all.merge(permit),
                                None => *held = Some(permit),
                            }
                        }
                        Err(_) => return Poll::Ready(Some(Err(BodyLimit::Budget.into()))),
                    }
                }
                let next = (Instant::now() + this.idle).min(this.deadline);
                this.timer.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => Poll::Ready(other.map(|r| r.map_err(Into::into))),
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    let limit = if Instant::now() >= this.deadline {
                        BodyLimit::Deadline(this.total)
                    } else {
                        BodyLimit::Idle(this.idle)
                    };
                    Poll::Ready(Some(Err(limit.into())))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Model uploads are streamed to disk, not held: they get the timeouts but not the budget.
fn is_upload(request: &Request) -> bool {
    request.method() == axum::http::Method::POST
        && request.uri().path().starts_with("/api/v1/models/")
        && request.uri().path().ends_with("/versions")
}

/// The middleware: wraps the body, and gives the bytes it charged back when the answer is
/// ready.
pub(crate) async fn guard_body(limits: BodyLimits, request: Request, next: Next) -> Response {
    let charged = !is_upload(&request);
    let (parts, body) = request.into_parts();
    let now = Instant::now();
    let deadline = now + limits.deadline;
    let held: Held = Arc::new(Mutex::new(None));
    let guarded = Guarded {
        inner: body,
        idle: limits.idle,
        deadline,
        total: limits.deadline,
        timer: Box::pin(tokio::time::sleep_until((now + limits.idle).min(deadline))),
        budget: charged.then(|| (limits.budget.clone(), held.clone())),
    };
    let response = next
        .run(Request::from_parts(parts, Body::new(guarded)))
        .await;
    drop(held.lock().take());
    response
}

/// The limit behind a body-read error, if one was.
pub(crate) fn limit_of(error: &(dyn std::error::Error + 'static)) -> Option<BodyLimit> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if let Some(limit) = e.downcast_ref::<BodyLimit>() {
            return Some(*limit);
        }
        cause = e.source();
    }
    None
}
