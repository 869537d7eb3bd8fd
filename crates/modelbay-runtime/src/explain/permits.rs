//! How many explanations run at once: a few per caller, so one client cannot take every turn,
//! and a bound for the whole process, since each one runs the model on millions of rows.

use std::{collections::HashMap, sync::Arc};

use modelbay_core::Caller;
use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{Error, Result};

/// Explanations one caller may run at once; more get 429.
pub(crate) const PER_CALLER: usize = 2;
/// Explanations the process runs at once, across callers; more get 503.
pub(crate) const PER_PROCESS: usize = 8;

/// Turns to run an explanation.
pub(crate) struct ExplainPermits {
    process: Arc<Semaphore>,
    callers: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// A turn: both permits are held until it is dropped.
pub(crate) struct Turn {
    _caller: OwnedSemaphorePermit,
    _process: OwnedSemaphorePermit,
}

impl Default for ExplainPermits {
    fn default() -> Self {
        Self {
            process: Arc::new(Semaphore::new(PER_PROCESS)),
            callers: Mutex::default(),
        }
    }
}

impl ExplainPermits {
    /// A turn for `caller` now, or the reason there is none.
    pub(crate) fn try_turn(&self, caller: &Caller) -> Result<Turn> {
        let mine = {
            let mut callers = self.callers.lock();
            // Callers with nothing running are forgotten, so the map stays small.
            callers.retain(|_, s| Arc::strong_count(s) > 1 || s.available_permits() < PER_CALLER);
            callers
                .entry(caller.actor())
                .or_insert_with(|| Arc::new(Semaphore::new(PER_CALLER)))
                .clone()
        };
        let caller_permit = mine.try_acquire_owned().map_err(|_| {
            Error::RateLimited(format!(
                "this caller already runs {PER_CALLER} explanations; retry when one finishes"
            ))
        })?;
        let process_permit = self.process.clone().try_acquire_owned().map_err(|_| {
            Error::Busy(format!(
                "{PER_PROCESS} explanations are running; retry shortly"
            ))
        })?;
        Ok(Turn {
            _caller: caller_permit,
            _process: process_permit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(id: &str) -> Caller {
        Caller {
            key_id: Some(id.into()),
            ..Caller::local()
        }
    }

    #[test]
    fn one_caller_cannot_take_every_turn() {
        let permits = ExplainPermits::default();
        let first: Vec<_> = (0..PER_CALLER)
            .map(|_| permits.try_turn(&caller("a")).unwrap())
            .collect();
        assert!(matches!(
            permits.try_turn(&caller("a")),
            Err(Error::RateLimited(_))
        ));
        // Another caller still gets its turns.
        let second: Vec<_> = (0..PER_CALLER)
            .map(|_| permits.try_turn(&caller("b")).unwrap())
            .collect();
        drop(first);
        assert!(permits.try_turn(&caller("a")).is_ok());
        drop(second);
    }

    #[test]
    fn the_process_bound_holds_across_callers() {
        let permits = ExplainPermits::default();
        let turns: Vec<_> = (0..PER_PROCESS)
            .map(|i| permits.try_turn(&caller(&format!("k{i}"))).unwrap())
            .collect();
        assert!(matches!(
            permits.try_turn(&caller("late")),
            Err(Error::Busy(_))
        ));
        drop(turns);
        assert!(permits.callers.lock().len() <= PER_PROCESS + 1);
    }
}
