//! Accepting connections for both listeners: at most `max_connections` open at once, TLS when
//! configured (the handshake under a deadline), and a connection that sends nothing within the
//! header-read timeout is closed before any protocol sees it. Each accepted connection is
//! counted in `modelbay_http_open_connections` (HTTP) while it lives.

mod http;
pub mod tls;

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use modelbay_runtime::{CertificateFingerprint, ConnectionGuard, Metrics};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{mpsc, OwnedSemaphorePermit, Semaphore},
};

pub(crate) use http::serve_http;

use crate::auth::Peer;
pub use tls::{Tls, TlsFiles};

/// How a listener treats its connections.
#[derive(Debug, Clone)]
pub struct ConnectionOptions {
    /// TLS, when configured.
    pub tls: Option<Arc<Tls>>,
    /// A connection must send its first bytes (and finish a TLS handshake, and, over HTTP/1,
    /// a request's headers) within this.
    pub header_read_timeout: Duration,
    /// Connections open at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Concurrent streams (requests) on one HTTP/2 connection.
    pub max_streams_per_connection: u32,
}

/// One accepted connection, after TLS.
pub(crate) struct Connection {
    stream: Stream,
    pub(crate) peer: Peer,
    _permit: OwnedSemaphorePermit,
    _counted: Option<ConnectionGuard>,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// Accepts connections on `listener` until the receiver is dropped; `metrics` counts them.
pub(crate) fn incoming(
    listener: TcpListener,
    options: ConnectionOptions,
    metrics: Option<Metrics>,
) -> mpsc::Receiver<Connection> {
    let (ready, receiver) = mpsc::channel(64);
    let permits = Arc::new(Semaphore::new(options.max_connections.max(1)));
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = ready.closed() => return,
            };
            let (tcp, remote) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before accept: wait a
                    // little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                tracing::debug!(%remote, "connection refused: at --max-connections");
                drop(tcp);
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let (ready, options) = (ready.clone(), options.clone());
            let counted = metrics.as_ref().and_then(Metrics::connection_opened);
            tokio::spawn(async move {
                let deadline = options.header_read_timeout;
                let opened =
                    tokio::time::timeout(deadline, open(tcp, options.tls.as_deref())).await;
                match opened {
                    Ok(Ok(stream)) => {
                        let peer = Peer {
                            remote,
                            client_cert: stream.client_cert(),
                        };
                        let _ = ready
                            .send(Connection {
                                stream,
                                peer,
                                _permit: permit,
                                _counted: counted,
                            })
                            .await;
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(%remote, error = %e, "connection closed before a request")
                    }
                    Err(_) => {
                        tracing::debug!(%remote, "connection closed: nothing sent within the header-read timeout")
                    }
                }
            });
        }
    });
    receiver
}

/// Waits for the first bytes (so an idle connection holds nothing beyond its socket), then
/// runs the TLS handshake when configured.
async fn open(tcp: TcpStream, tls: Option<&Tls>) -> io::Result<Stream> {
    let mut first = [0u8; 1];
    if tcp.peek(&mut first).await? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "closed by the client",
        ));
    }
    match tls {
        None => Ok(Stream::Plain(tcp)),
        Some(tls) => Ok(Stream::Tls(Box::new(tls.acceptor().accept(tcp).await?))),
    }
}

impl Stream {
    /// The fingerprint of the certificate a TLS client presented, if it did; with
    /// `--tls-client-ca` the handshake has verified it against that CA.
    fn client_cert(&self) -> Option<CertificateFingerprint> {
        match self {
            Self::Plain(_) => None,
            Self::Tls(s) => s
                .get_ref()
                .1
                .peer_certificates()
                .and_then(<[_]>::first)
                .map(|cert| CertificateFingerprint::of_der(cert.as_ref())),
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().stream {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.stream {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }
}

impl tonic::transport::server::Connected for Connection {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.peer
    }
}
