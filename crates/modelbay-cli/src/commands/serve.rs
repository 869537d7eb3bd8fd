//! `modelbay serve`: builds the engines, registry and runtime, then serves HTTP until SIGINT or
//! SIGTERM, letting in-flight requests finish.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use anyhow::Context;
use modelbay_engines::EngineSet;
use modelbay_registry::Registry;
use modelbay_runtime::{Metrics, ReplicaIdentity, Runtime, RuntimeOptions};
use modelbay_server::{AppState, AuthMode, Limits, Shared};

use crate::config::{AuthSetting, ServeArgs, Settings};

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = args.resolve()?;
    // The OTLP exporter's HTTP client blocks: it is built, and later flushed, off the runtime.
    let (format, endpoint) = (settings.log_format, settings.otlp_endpoint.clone());
    let telemetry =
        tokio::task::spawn_blocking(move || crate::telemetry::init(format, endpoint.as_deref()))
            .await??;
    let engines = engines(&settings)?;
    modelbay_server::error::hide_paths_under(vec![settings.data_dir.clone()]);
    let registry = open_registry(&settings).await?;
    let runtime = Runtime::new(
        registry.clone(),
        engines,
        RuntimeOptions {
            workers_per_model: settings.workers_per_model,
            intra_op_threads: settings.intra_op_threads,
            queue_capacity: settings.queue_capacity,
            max_model_memory: settings.max_model_memory,
            language: settings.language.clone(),
            embedding: settings.embedding.clone(),
            drift_window: settings.drift_window,
            key_limits: settings.key_limits,
            metrics: if settings.metrics {
                Metrics::enabled()
            } else {
                Metrics::disabled()
            },
        },
    );
    // Everything read from here on (keys, referenced versions) is at least this new; changes
    // after it are applied on top as they commit.
    runtime
        .start_from_log()
        .await
        .context("cannot read the registry's event log")?;
    let auth = secure(&settings, &runtime).await?;
    let ready = Arc::new(AtomicBool::new(false));
    // A shared registry: changes other replicas commit take effect here too. (The embedded one
    // has no other writer; each local commit applies itself.)
    if registry.backend() == modelbay_registry::Backend::Postgres {
        let hints = settings
            .event_notify
            .then(|| registry.event_hints())
            .flatten();
        let runtime = runtime.clone();
        let poll = settings.event_poll;
        tokio::spawn(async move { runtime.follow(hints, poll).await });
    }
    // Versions that aliases and policies reference load in the background; readiness waits.
    tokio::spawn({
        let (runtime, ready) = (runtime.clone(), ready.clone());
        async move {
            if let Err(e) = runtime.load_referenced().await {
                tracing::error!(error = %e, "loading referenced versions failed");
            }
            ready.store(true, Ordering::Release);
        }
    });
    let state = AppState::new(Shared {
        runtime,
        limits: Limits {
            max_request_bytes: settings.max_request_bytes,
            max_upload_bytes: settings.max_upload_bytes,
            body: modelbay_server::BodyLimits::new(
                settings.body_idle_timeout,
                settings.request_timeout,
                settings.max_inflight_bytes,
            ),
        },
        ready,
        payload_log: settings
            .log_payloads
            .then(|| modelbay_server::PayloadLog::new(settings.redact_fields.clone())),
        auth,
    });
    let tls = settings
        .tls
        .clone()
        .map(|files| {
            modelbay_server::listen::Tls::load(files, &[b"h2", b"http/1.1"])
                .map_err(anyhow::Error::msg)
        })
        .transpose()?;
    let grpc_tls = settings
        .tls
        .clone()
        .map(|files| {
            modelbay_server::listen::Tls::load(files, &[b"h2"]).map_err(anyhow::Error::msg)
        })
        .transpose()?;
    for tls in tls.iter().chain(grpc_tls.iter()) {
        tls.watch();
    }
    let connections = |tls: Option<Arc<modelbay_server::listen::Tls>>| {
        modelbay_server::listen::ConnectionOptions {
            tls,
            header_read_timeout: settings.header_read_timeout,
            max_connections: settings.max_connections,
            max_streams_per_connection: settings.max_streams_per_connection,
        }
    };
    let grpc_listener = tokio::net::TcpListener::bind(settings.grpc_listen)
        .await
        .with_context(|| format!("cannot listen on {} for gRPC", settings.grpc_listen))?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let address = listener.local_addr()?;
    let grpc_address = grpc_listener.local_addr()?;
    tracing::info!(%address, %grpc_address, data_dir = %settings.data_dir.display(), "modelbay listening");
    // Lines on stdout that scripts and tests can wait for (the ports may have been 0); the
    // HTTP line comes last.
    let scheme = if tls.is_some() { "https" } else { "http" };
    let metrics_listener = match settings.metrics_listen {
        Some(at) => Some(
            tokio::net::TcpListener::bind(at)
                .await
                .with_context(|| format!("cannot listen on {at} for metrics"))?,
        ),
        None => None,
    };
    if let Some(listener) = &metrics_listener {
        println!(
            "modelbay metrics listening on http://{}",
            listener.local_addr()?
        );
    }
    spawn_heartbeats(
        &state.runtime,
        ReplicaIdentity {
            id: settings.replica_id.clone(),
            address: settings
                .advertise_address
                .clone()
                .unwrap_or_else(|| format!("{scheme}://{address}")),
            started_at: chrono::Utc::now(),
        },
        state.ready.clone(),
    );
    println!("modelbay gRPC listening on {grpc_address}");
    println!("modelbay listening on {scheme}://{address}");
    // One signal stops both servers. Readiness turns false at once and the listeners stay
    // open for the grace period, so load balancers stop sending traffic before connections
    // are refused; then in-flight requests and streams get the drain timeout to finish.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let stop_now = stop.clone();
    tokio::spawn({
        let ready = state.ready.clone();
        let (grace, drain) = (settings.shutdown_grace, settings.drain_timeout);
        async move {
            shutdown_signal().await;
            ready.store(false, Ordering::Release);
            tracing::info!(
                grace_s = grace.as_secs(),
                "not ready; serving through the grace period"
            );
            tokio::time::sleep(grace).await;
            tracing::info!("closing the listeners; finishing in-flight requests");
            let _ = stop.send(true);
            tokio::time::sleep(drain).await;
            tracing::warn!(
                drain_s = drain.as_secs(),
                "requests still in flight after the drain timeout; exiting"
            );
            std::process::exit(0);
        }
    });
    let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|&s| s).await;
    };
    let mut grpc = tokio::spawn(modelbay_server::grpc::serve(
        grpc_listener,
        state.clone(),
        modelbay_server::grpc::GrpcOptions {
            max_message_bytes: settings.grpc_max_message_bytes,
            connections: connections(grpc_tls),
        },
        stopped.clone(),
    ));
    if let Some(listener) = metrics_listener {
        let plain = modelbay_server::listen::ConnectionOptions {
            tls: None,
            ..connections(None)
        };
        tokio::spawn(modelbay_server::serve_metrics(
            listener,
            state.clone(),
            plain,
            until_stopped(stopped.clone()),
        ));
    }
    let http = modelbay_server::serve(
        listener,
        state,
        connections(tls),
        until_stopped(stopped.clone()),
    );
    tokio::pin!(http);
    // Either server ending (a failure, or the stop signal) stops the other.
    let (served, grpc_served) = tokio::select! {
        served = &mut http => {
            let _ = stop_now.send(true);
            // Open gRPC streams and health watches get a while to finish, then are cut.
            let grpc_served = match tokio::time::timeout(settings.drain_timeout, &mut grpc).await {
                Ok(joined) => joined.map_err(|e| anyhow::anyhow!("gRPC server task: {e}")),
                Err(_) => {
                    tracing::warn!("gRPC connections still open after the drain timeout; closing them");
                    grpc.abort();
                    Ok(Ok(()))
                }
            };
            (served, grpc_served)
        }
        joined = &mut grpc => {
            if !*stopped.borrow() {
                tracing::error!("the gRPC server stopped; stopping HTTP too");
            }
            let _ = stop_now.send(true);
            // HTTP always drains: requests in flight (uploads too) finish.
            let served = http.await;
            (served, joined.map_err(|e| anyhow::anyhow!("gRPC server task: {e}")))
        }
    };
    tracing::info!("modelbay stopped");
    // Flushes the spans still buffered for export.
    tokio::task::spawn_blocking(move || drop(telemetry)).await?;
    served.context("server failed")?;
    grpc_served?.map_err(|e| anyhow::anyhow!("gRPC server failed: {e}"))
}

/// Turns authentication on (the default) with a first administrator key, or checks that
/// turning it off is safe: only on loopback addresses, unless the operator insists.
async fn secure(settings: &Settings, runtime: &Runtime) -> anyhow::Result<AuthMode> {
    if settings.auth == AuthSetting::Off {
        let exposed = [
            Some(settings.listen),
            Some(settings.grpc_listen),
            settings.metrics_listen,
        ]
        .into_iter()
        .flatten()
        .find(|a| !a.ip().is_loopback());
        if let Some(address) = exposed {
            if !settings.allow_insecure {
                anyhow::bail!(
                    "refusing to serve without authentication on {address}, which is not a \
                     loopback address: anyone who can reach it could push, promote and delete \
                     models; drop --auth off, or add --allow-insecure if a gateway in front \
                     authenticates every request"
                );
            }
        }
        tracing::warn!(
            "authentication is off (--auth off): every request acts as an administrator"
        );
        return Ok(AuthMode::Off);
    }
    runtime
        .load_keys()
        .await
        .context("cannot read the API keys")?;
    let secret = match &settings.admin_key_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the admin key file {}", path.display()))?
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    if let Some(created) = runtime.bootstrap_admin(secret).await? {
        let path = settings.data_dir.join("admin.key");
        write_secret(&path, &created)
            .with_context(|| format!("cannot write the admin key to {}", path.display()))?;
        println!("modelbay admin key written to {}", path.display());
    }
    Ok(AuthMode::Keys)
}

/// Writes a secret to a file only its owner can read: into a temporary file, renamed into
/// place, so the file is never seen half-written.
fn write_secret(path: &std::path::Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    // tempfile creates its files readable by their owner only.
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// How often a replica reports itself to the registry.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(2);

/// Replicas not heard from for this long are dropped from the cluster view at startup.
const FORGET_REPLICAS_AFTER: chrono::Duration = chrono::Duration::hours(24);

/// Opens the registry. A database that cannot be reached (PostgreSQL still starting, a
/// network partition) is retried with backoff, saying why each time; anything else fails.
async fn open_registry(settings: &Settings) -> anyhow::Result<Registry> {
    let mut delay = std::time::Duration::from_millis(500);
    loop {
        match Registry::open(&settings.registry).await {
            Ok(registry) => return Ok(registry),
            Err(e) if e.is_unavailable() && settings.registry.metadata_url.is_some() => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "cannot reach the registry database; retrying");
                eprintln!(
                    "modelbay: cannot reach the registry database ({e}); retrying in {delay:?}"
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(10));
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "cannot open the registry (data directory {})",
                    settings.data_dir.display()
                )))
            }
        }
    }
}

/// Reports this replica (state, loaded versions, last event applied) every few seconds; a
/// registry outage only skips reports.
fn spawn_heartbeats(runtime: &Runtime, me: ReplicaIdentity, ready: Arc<AtomicBool>) {
    let runtime = runtime.clone();
    tokio::spawn(async move {
        if let Err(e) = runtime
            .forget_replicas(chrono::Utc::now() - FORGET_REPLICAS_AFTER)
            .await
        {
            tracing::debug!(error = %e, "could not forget old replicas");
        }
        // The first report waits one period: startup (loading, a first push) has the
        // registry's write lock to itself.
        let mut ticks =
            tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
        loop {
            ticks.tick().await;
            if let Err(e) = runtime.heartbeat(&me, ready.load(Ordering::Acquire)).await {
                tracing::debug!(error = %e, "heartbeat not recorded");
            }
        }
    });
}

fn engines(settings: &Settings) -> anyhow::Result<EngineSet> {
    #[allow(unused_mut)]
    let mut engines = EngineSet::default();
    #[cfg(feature = "onnx")]
    let onnx = Arc::new(modelbay_engines::onnx::OnnxEngine::new(
        settings.onnxruntime_lib.as_deref(),
    )?);
    #[cfg(feature = "onnx")]
    {
        engines = engines.with(onnx.clone());
    }
    #[cfg(all(feature = "embed", feature = "onnx"))]
    {
        let sentence = modelbay_engines::sentence::SentenceTransformersEngine::new(Some(onnx));
        engines = engines.with_embedding(Arc::new(sentence));
    }
    #[cfg(all(feature = "embed", not(feature = "onnx")))]
    {
        let sentence = modelbay_engines::sentence::SentenceTransformersEngine::new();
        engines = engines.with_embedding(Arc::new(sentence));
    }
    #[cfg(feature = "llm")]
    {
        engines = engines.with_language(Arc::new(modelbay_engines::llama::LlamaEngine));
    }
    let _ = settings;
    Ok(engines)
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
