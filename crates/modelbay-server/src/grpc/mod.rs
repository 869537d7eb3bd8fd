//! The Open Inference Protocol over gRPC: `inference.GRPCInferenceService` (KServe v2 plus the
//! Triton additions clients use), the standard `grpc.health.v1` service and server reflection,
//! on a port of its own. The RPCs call the same runtime operations as the HTTP handlers.

mod config;
mod convert;
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
}

/// Serves gRPC on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    options: GrpcOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ApiError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_serving::<proto::grpc_inference_service_server::GrpcInferenceServiceServer<service::InferenceService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("reflection: {e}")))?;
    let inference = proto::grpc_inference_service_server::GrpcInferenceServiceServer::new(
        service::InferenceService { state },
    )
    .max_decoding_message_size(options.max_message_bytes)
    .max_encoding_message_size(options.max_message_bytes)
    // As over HTTP, clients may compress their requests (tritonclient's compression_algorithm).
    .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
    .accept_compressed(tonic::codec::CompressionEncoding::Deflate);
    tonic::transport::Server::builder()
        .add_service(health)
        .add_service(reflection)
        .add_service(inference)
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            shutdown,
        )
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("gRPC server: {e}")))
}
