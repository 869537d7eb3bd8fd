//! The one place where a registry change takes effect in this process. A change committed here
//! and a change committed by another replica reach the same [`Runtime::apply`]: after a local
//! commit the runtime reads the event log from where it last stopped (which now holds that
//! commit), and the follower of a shared registry does the same when it hears of new events.
//! Events are applied one at a time, in log order, and applying one twice is harmless.

use std::sync::{
    atomic::{AtomicI64, Ordering},
    Arc,
};

use modelbay_core::{ModelName, TensorBatching};
use modelbay_registry::{Event, EventKind, MAX_EVENTS_PAGE};

use crate::{routing::Routes, Result, Runtime};

/// How far into the event log this process's state reflects.
#[derive(Default)]
pub(crate) struct LogPosition {
    /// Held while events are applied, so they are applied in order and once each.
    applying: tokio::sync::Mutex<()>,
    /// Sequence number of the last event applied.
    last: AtomicI64,
}

impl LogPosition {
    pub(crate) fn last(&self) -> i64 {
        self.last.load(Ordering::Acquire)
    }
}

impl Runtime {
    /// Starts this process's view of the registry at the newest event: what it loads next
    /// (keys, referenced versions) is read after this point, so every later change is applied
    /// on top. Call once, before loading.
    pub async fn start_from_log(&self) -> Result<()> {
        let newest = self.registry.last_event_seq().await?;
        self.position.last.store(newest, Ordering::Release);
        Ok(())
    }

    /// The sequence number of the last registry event applied here.
    pub fn last_applied_event(&self) -> i64 {
        self.position.last()
    }

    /// Applies every event after the last one applied, oldest first; returns how many.
    pub async fn sync(&self) -> Result<usize> {
        let _in_order = self.position.applying.lock().await;
        let mut applied = 0;
        loop {
            let since = self.position.last();
            let page = self.registry.events(None, since, MAX_EVENTS_PAGE).await?;
            for event in &page {
                self.apply(event).await;
                self.position.last.store(event.seq, Ordering::Release);
                applied += 1;
            }
            if page.len() < MAX_EVENTS_PAGE as usize {
                return Ok(applied);
            }
        }
    }

    /// After a local commit: applies it (and anything before it). The change is committed
    /// whatever happens here, so a failure to read the log is logged, not returned; the next
    /// sync applies what this one could not.
    pub(crate) async fn sync_after_commit(&self) {
        if let Err(e) = self.sync().await {
            tracing::error!(error = %e, "a committed change could not be applied yet");
        }
    }

    /// Makes one registry event take effect: routing changes load and warm up what the model's
    /// routing now references before switching to it, then drain what it no longer does;
    /// settings, reference data and keys are re-read.
    pub async fn apply(&self, event: &Event) {
        let model = (!event.model.is_empty())
            .then(|| ModelName::new(&event.model).ok())
            .flatten();
        match (&event.kind, model) {
            (
                EventKind::Push
                | EventKind::AliasSet
                | EventKind::AliasRollback
                | EventKind::AliasDelete
                | EventKind::PolicySet
                | EventKind::PolicyDelete
                | EventKind::VersionArchive
                | EventKind::VersionDelete,
                Some(model),
            ) => self.converge(&model, event).await,
            (EventKind::BatchingSet, Some(model)) => {
                match event
                    .after
                    .clone()
                    .map(serde_json::from_value::<TensorBatching>)
                {
                    Some(Ok(settings)) => self.manager.apply_batching(&model, &settings),
                    _ => tracing::warn!(seq = event.seq, "a batching event without settings"),
                }
            }
            (EventKind::ReferenceSet, Some(model)) => {
                // The drift window starts again from the new reference, read on next use.
                if let Some(version) = version_in(event.after.as_ref()) {
                    self.monitors.forget(model.as_str(), version);
                }
            }
            (EventKind::GenerationSet, Some(model)) => {
                if let Some(version) = version_in(event.after.as_ref()) {
                    self.forget_generation_defaults(&model, version);
                }
            }
            (EventKind::KeyCreated | EventKind::KeyRevoked, _) => {
                if let Err(e) = self.load_keys().await {
                    tracing::error!(error = %e, "could not re-read the API keys after a key change");
                }
            }
            (EventKind::Other(name), model) => {
                // Written by a newer binary: re-read what it may have changed.
                tracing::warn!(seq = event.seq, kind = %name, "unknown registry event; re-reading the model");
                if let Some(model) = model {
                    self.converge(&model, event).await;
                }
            }
            (kind, None) => {
                tracing::warn!(seq = event.seq, kind = %kind.as_str(), "a registry event names no valid model")
            }
        }
    }

    /// Brings a model's serving state to what the registry holds now.
    async fn converge(&self, model: &ModelName, event: &Event) {
        let _serialised = self.change_lock(model).await;
        match event.kind {
            EventKind::VersionArchive | EventKind::VersionDelete => {
                if let Some(version) = version_in(event.before.as_ref()) {
                    self.manager.forget(model, version);
                    self.monitors.forget(model.as_str(), version);
                    self.forget_generation_defaults(model, version);
                }
            }
            EventKind::PolicySet | EventKind::PolicyDelete => self.forget_shadows(model),
            _ => {}
        }
        let routes = match Routes::load(&self.registry, model).await {
            Ok(routes) => Arc::new(routes),
            Err(e) => {
                tracing::error!(model = %model, error = %e, "could not read a model's routing");
                self.manager.invalidate(model);
                return;
            }
        };
        // Load and warm up first: until the switch, traffic keeps its current versions.
        for version in routes.referenced(model) {
            if let Err(e) = self.manager.get(model, version).await {
                tracing::error!(model = %model, version, error = %e, "a referenced version failed to load");
            }
        }
        self.manager.install_routes(model, routes);
        self.manager.release_unreferenced(model).await;
    }
}

fn version_in(payload: Option<&serde_json::Value>) -> Option<u32> {
    payload?
        .get("version")?
        .as_u64()
        .and_then(|v| u32::try_from(v).ok())
}
