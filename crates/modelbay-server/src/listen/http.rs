//! Serving the HTTP router on accepted connections with hyper: HTTP/1.1 (with the header-read
//! timeout armed) and HTTP/2 (with a per-connection stream cap and keepalives), both over TLS
//! when configured, and a graceful stop that lets every in-flight request finish.

use std::{future::Future, time::Duration};

use axum::{extract::ConnectInfo, Router};

use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use modelbay_runtime::Metrics;
use tokio::net::TcpListener;
use tower::ServiceExt;

use super::{incoming, ConnectionOptions};

/// Serves `router` on `listener` until `shutdown` completes, then lets in-flight requests
/// finish.
pub(crate) async fn serve_http(
    listener: TcpListener,
    router: Router,
    options: ConnectionOptions,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Some(options.header_read_timeout));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(Some(options.max_streams_per_connection))
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(10));
    let mut connections = incoming(listener, options, Some(metrics));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let connection = tokio::select! {
            connection = connections.recv() => connection,
            () = &mut shutdown => break,
        };
        let Some(connection) = connection else { break };
        let peer = connection.peer;
        let remote = peer.remote;
        let service = router.clone().map_request(
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(remote));
                request.extensions_mut().insert(peer);
                request
            },
        );
        let served = builder
            .serve_connection_with_upgrades(
                TokioIo::new(connection),
                TowerToHyperService::new(service),
            )
            .into_owned();
        let served = graceful.watch(served);
        tokio::spawn(async move {
            if let Err(e) = served.await {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
        });
    }
    // No new connections; the ones open finish what they have started.
    drop(connections);
    graceful.shutdown().await;
    Ok(())
}
