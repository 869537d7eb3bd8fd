//! A `/metrics` scrape: gauges read off the loaded models at that moment (memory, queues,
//! language-model occupancy, drift), then every family in the text format.

use modelbay_engines::generation::SchedulerLoad;

use crate::{manager::Serving, Metrics, Runtime};

impl Runtime {
    /// The process's metrics.
    pub fn metrics(&self) -> &Metrics {
        self.manager.metrics()
    }

    /// The Prometheus text exposition; empty when metrics are disabled.
    pub fn render_metrics(&self) -> String {
        let metrics = self.manager.metrics();
        let Some(f) = metrics.families() else {
            return String::new();
        };
        let _one_at_a_time = f.scrape.lock();
        for gauge in [
            &f.model_memory,
            &f.queued,
            &f.running_sequences,
            &f.waiting_sequences,
            &f.drift_rows,
        ] {
            gauge.reset();
        }
        f.kv_cache_usage.reset();
        f.last_applied_event.set(self.last_applied_event());
        f.drift_psi.reset();
        let mut kinds = [("tensor", 0), ("language", 0), ("embedding", 0)];
        for loaded in self.manager.loaded_models() {
            let version = loaded.record.version.to_string();
            let labels = [loaded.record.model.as_str(), version.as_str()];
            if let Some(count) = kinds.iter_mut().find(|(k, _)| *k == loaded.kind()) {
                count.1 += 1;
            }
            f.model_memory
                .with_label_values(&labels)
                .set(loaded.bytes as i64);
            let queued = match &loaded.serving {
                Serving::Tensor(pool) => pool.queued(),
                Serving::Embedding(embedder) => embedder.queued(),
                Serving::Language(model) => {
                    let SchedulerLoad {
                        running,
                        waiting,
                        kv_used,
                        kv_capacity,
                    } = model.load();
                    f.running_sequences
                        .with_label_values(&labels)
                        .set(i64::from(running));
                    f.waiting_sequences
                        .with_label_values(&labels)
                        .set(i64::from(waiting));
                    f.kv_cache_usage
                        .with_label_values(&labels)
                        .set(kv_used as f64 / kv_capacity.max(1) as f64);
                    waiting as usize
                }
            };
            f.queued.with_label_values(&labels).set(queued as i64);
        }
        for (kind, count) in kinds {
            f.models_loaded.with_label_values(&[kind]).set(count);
        }
        for (model, version, monitor) in self.monitors.all() {
            let version = version.to_string();
            let report = monitor.report();
            f.drift_rows
                .with_label_values(&[model.as_str(), version.as_str()])
                .set(report.observed_rows as i64);
            // Below the minimum sample the API flags nothing; neither do the metrics.
            if report.observed_rows < report.min_rows {
                continue;
            }
            for feature in report.features {
                if let Some(psi) = feature.psi {
                    f.drift_psi
                        .with_label_values(&[model.as_str(), version.as_str(), &feature.name])
                        .set(psi);
                }
            }
        }
        metrics.encode()
    }
}
