//! The Open Inference Protocol over gRPC: `inference.GRPCInferenceService` (KServe v2 plus the
//! Triton additions clients use), the standard `grpc.health.v1` service and server reflection,
//! on a port of its own. The RPCs call the same runtime operations as the HTTP handlers.

pub mod access;
pub mod codec;
mod config;
pub(crate) mod convert;
mod service;
mod statistics;

use modelbay_core::ErrorCode;

use crate::{error::ApiError, AppState};

/// The generated messages, service and client.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("inference");

    /// The encoded descriptors of `proto/`, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/inference_descriptor.bin"));
}

/// How the gRPC server runs.
#[derive(Debug, Clone)]
pub struct GrpcOptions {
    /// Largest message received or sent.
    pub max_message_bytes: usize,
    /// TLS, connection limits and timeouts, as for HTTP.
    pub connections: crate::listen::ConnectionOptions,
}

type Inference =
    proto::grpc_inference_service_server::GrpcInferenceServiceServer<service::InferenceService>;

/// Keeps `grpc.health.v1` in step with the server: NOT_SERVING (the whole server, `""`, and the
/// inference service) until startup loading is done, SERVING then, NOT_SERVING once stopping.
async fn follow_readiness(
    reporter: tonic_health::server::HealthReporter,
    state: AppState,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    use tonic_health::ServingStatus;
    let set = |status: ServingStatus| {
        let reporter = reporter.clone();
        async move {
            reporter.set_service_status("", status).await;
            reporter
                .set_service_status(<Inference as tonic::server::NamedService>::NAME, status)
                .await;
        }
    };
    set(ServingStatus::NotServing).await;
    while !state.is_ready() && !*stopping.borrow() {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    if !*stopping.borrow() {
        set(ServingStatus::Serving).await;
    }
    let _ = stopping.wait_for(|&stop| stop).await;
    set(ServingStatus::NotServing).await;
}

/// Serves gRPC on `listener` until `stopping` turns true; open streams then end after the
/// requests already received are answered.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    options: GrpcOptions,
    stopping: tokio::sync::watch::Receiver<bool>,
) -> Result<(), ApiError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    tokio::spawn(follow_readiness(reporter, state.clone(), stopping.clone()));
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("reflection: {e}")))?;
    let inference = Inference::new(service::InferenceService {
        state: state.clone(),
        stopping: stopping.clone(),
    })
    .max_decoding_message_size(options.max_message_bytes)
    .max_encoding_message_size(options.max_message_bytes)
    // As over HTTP, clients may compress their requests (tritonclient's compression_algorithm).
    .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
    .accept_compressed(tonic::codec::CompressionEncoding::Deflate);
    let mut stopped = stopping;
    let shutdown = async move {
        let _ = stopped.wait_for(|&stop| stop).await;
    };
    tonic::transport::Server::builder()
        .layer(access::AuthorizeLayer {
            state: state.clone(),
        })
        .max_concurrent_streams(Some(options.connections.max_streams_per_connection))
        // Connections to peers that vanished are noticed and closed.
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(10)))
        .add_service(health)
        .add_service(reflection)
        .add_service(inference)
        .serve_with_incoming_shutdown(
            tokio_stream::StreamExt::map(
                tokio_stream::wrappers::ReceiverStream::new(crate::listen::incoming(
                    listener,
                    options.connections.clone(),
                    None,
                )),
                Ok::<_, std::io::Error>,
            ),
            shutdown,
        )
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("gRPC server: {e}")))
}
