//! `inference.GRPCInferenceService`: every RPC converts its message, calls the same runtime
//! operation as the HTTP handler, and converts back; errors map to gRPC codes in one place
//! (`error::grpc_code`).

use std::{pin::Pin, time::Instant};

use futures::{Stream, StreamExt};
use modelbay_core::{parse_address, Caller, ModelName, VersionRef};
use modelbay_runtime::{Outcome, RequestLabels};
use tonic::{Request, Response, Status, Streaming};

use super::{
    convert::{decode_request, encode_response},
    proto::{self, grpc_inference_service_server::GrpcInferenceService},
};
use crate::{error::ApiError, routed::route_and_run, AppState};

/// The gRPC face of the runtime.
pub(crate) struct InferenceService {
    pub(crate) state: AppState,
    /// Turns true when the server stops: open streams then stop reading requests.
    pub(crate) stopping: tokio::sync::watch::Receiver<bool>,
}

/// Request metadata as the router's header lookup (sticky routing reads it).
fn lookup(metadata: &tonic::metadata::MetadataMap) -> impl Fn(&str) -> Option<Vec<u8>> + Sync + '_ {
    move |key: &str| {
        metadata
            .get(key.to_ascii_lowercase().as_str())
            .map(|v| v.as_bytes().to_vec())
    }
}

/// The model and version a request names: the name may carry `@version` or `@alias`, and the
/// `version` field takes a number or an alias (empty: the model's default route).
pub(super) fn address(name: &str, version: &str) -> Result<(ModelName, VersionRef), ApiError> {
    Ok(parse_address(name, Some(version))?)
}

/// The caller the authentication layer attached to a request.
pub(super) fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| {
            Status::internal("the request reached a handler without passing authentication")
        })
}

/// How a failed request counts, by the same rule as HTTP: capacity refusals are `rejected`.
fn outcome(error: &ApiError) -> Outcome {
    use modelbay_core::ErrorCode;
    match error.code() {
        ErrorCode::Overloaded | ErrorCode::RateLimited => Outcome::Rejected,
        code if crate::error::http_status(code).is_server_error() => Outcome::ServerError,
        _ => Outcome::ClientError,
    }
}

/// Requests of one stream that run at once; answers keep the requests' order.
const STREAM_IN_FLIGHT: usize = 16;

impl InferenceService {
    /// The metadata of the version a name and version field point at.
    async fn metadata(
        &self,
        caller: &Caller,
        name: &str,
        version: &str,
    ) -> Result<modelbay_runtime::ModelMetadata, ApiError> {
        let (name, version) = address(name, version)?;
        Ok(self.state.runtime.metadata(caller, &name, &version).await?)
    }

    /// Routes, runs and encodes one inference request, and counts it in the metrics with
    /// `protocol="grpc"`.
    async fn infer(
        &self,
        caller: &Caller,
        request: proto::ModelInferRequest,
        metadata: &tonic::metadata::MetadataMap,
    ) -> Result<proto::ModelInferResponse, ApiError> {
        let started = Instant::now();
        let (result, served) = match address(&request.model_name, &request.model_version) {
            Ok(address) => {
                route_and_run(
                    &self.state,
                    caller,
                    address,
                    &lookup(metadata),
                    async |routed| {
                        let (decoded, encoding) = decode_request(request)?;
                        let response = self.state.runtime.infer(routed, decoded).await?;
                        Ok::<_, ApiError>(encode_response(response, encoding))
                    },
                )
                .await
            }
            Err(e) => (Err(e), None),
        };
        let (model, version, alias) = served
            .map(|s| (s.model, s.version.to_string(), s.alias.unwrap_or_default()))
            .unwrap_or_default();
        let outcome = match &result {
            Ok(_) => Outcome::Success,
            Err(e) => outcome(e),
        };
        self.state.runtime.metrics().record_request(
            RequestLabels {
                protocol: "grpc",
                endpoint: "infer",
                model: &model,
                version: &version,
                alias: &alias,
            },
            outcome,
            started.elapsed(),
        );
        result
    }
}

type InferStream =
    Pin<Box<dyn Stream<Item = Result<proto::ModelStreamInferResponse, Status>> + Send>>;

#[tonic::async_trait]
impl GrpcInferenceService for InferenceService {
    async fn server_live(
        &self,
        _: Request<proto::ServerLiveRequest>,
    ) -> Result<Response<proto::ServerLiveResponse>, Status> {
        Ok(Response::new(proto::ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: Request<proto::ServerReadyRequest>,
    ) -> Result<Response<proto::ServerReadyResponse>, Status> {
        Ok(Response::new(proto::ServerReadyResponse {
            ready: self.state.is_ready(),
        }))
    }

    async fn model_ready(
        &self,
        request: Request<proto::ModelReadyRequest>,
    ) -> Result<Response<proto::ModelReadyResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let (name, version) = address(&request.name, &request.version)?;
        // As Triton: a version that does not exist or cannot serve is "not ready"; only a
        // malformed name or version, or a caller without access, is an error.
        let ready = match self.state.runtime.ready(&caller, &name, &version).await {
            Ok(_) => true,
            Err(e) if e.code() == modelbay_core::ErrorCode::PermissionDenied => {
                return Err(ApiError::from(e).into())
            }
            Err(_) => false,
        };
        Ok(Response::new(proto::ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: Request<proto::ServerMetadataRequest>,
    ) -> Result<Response<proto::ServerMetadataResponse>, Status> {
        Ok(Response::new(proto::ServerMetadataResponse {
            name: "modelbay".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            extensions: crate::v2::EXTENSIONS
                .iter()
                .map(|e| e.to_string())
                .collect(),
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<proto::ModelMetadataRequest>,
    ) -> Result<Response<proto::ModelMetadataResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let meta = self
            .metadata(&caller, &request.name, &request.version)
            .await?;
        let tensors = |specs: &[modelbay_core::TensorSpec]| {
            specs
                .iter()
                .map(|t| proto::model_metadata_response::TensorMetadata {
                    name: t.name.clone(),
                    datatype: t.datatype.as_str().to_owned(),
                    shape: t.shape.clone(),
                })
                .collect()
        };
        Ok(Response::new(proto::ModelMetadataResponse {
            name: meta.name,
            versions: meta.versions.iter().map(u32::to_string).collect(),
            platform: meta.platform.to_owned(),
            inputs: tensors(&meta.signature.inputs),
            outputs: tensors(&meta.signature.outputs),
        }))
    }

    async fn model_infer(
        &self,
        request: Request<proto::ModelInferRequest>,
    ) -> Result<Response<proto::ModelInferResponse>, Status> {
        let caller = caller(&request)?;
        let metadata = request.metadata().clone();
        Ok(Response::new(
            self.infer(&caller, request.into_inner(), &metadata).await?,
        ))
    }

    type ModelStreamInferStream = InferStream;

    /// Each request on the stream is answered on it, in order; a failed request is answered
    /// with its `error_message` and the stream goes on.
    async fn model_stream_infer(
        &self,
        request: Request<Streaming<proto::ModelInferRequest>>,
    ) -> Result<Response<InferStream>, Status> {
        let caller = std::sync::Arc::new(caller(&request)?);
        let state = self.state.clone();
        let stopping = self.stopping.clone();
        // The stream's metadata (e.g. a sticky-routing header) applies to all its requests.
        let metadata = std::sync::Arc::new(request.metadata().clone());
        let mut stop = self.stopping.clone();
        let stopped = async move {
            let _ = stop.wait_for(|&s| s).await;
        };
        let answers = request
            .into_inner()
            // When the server stops, the stream stops reading; what was read is answered.
            .take_until(stopped)
            .map(move |request| {
                let service = InferenceService {
                    state: state.clone(),
                    stopping: stopping.clone(),
                };
                let (metadata, caller) = (metadata.clone(), caller.clone());
                async move {
                    let request = request?;
                    // A failed answer still names its request, so the client can match it.
                    let failed = proto::ModelInferResponse {
                        model_name: request.model_name.clone(),
                        model_version: request.model_version.clone(),
                        id: request.id.clone(),
                        ..Default::default()
                    };
                    Ok(match service.infer(&caller, request, &metadata).await {
                        Ok(response) => proto::ModelStreamInferResponse {
                            error_message: String::new(),
                            infer_response: Some(response),
                        },
                        Err(e) => proto::ModelStreamInferResponse {
                            error_message: tonic::Status::from(e).message().to_owned(),
                            infer_response: Some(failed),
                        },
                    })
                }
            })
            .buffered(STREAM_IN_FLIGHT);
        Ok(Response::new(Box::pin(answers)))
    }

    async fn model_config(
        &self,
        request: Request<proto::ModelConfigRequest>,
    ) -> Result<Response<proto::ModelConfigResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let meta = self
            .metadata(&caller, &request.name, &request.version)
            .await?;
        Ok(Response::new(proto::ModelConfigResponse {
            config: Some(super::config::model_config(&meta)),
        }))
    }

    async fn model_statistics(
        &self,
        request: Request<proto::ModelStatisticsRequest>,
    ) -> Result<Response<proto::ModelStatisticsResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let stats =
            super::statistics::collect(&self.state, &caller, &request.name, &request.version)
                .await?;
        Ok(Response::new(proto::ModelStatisticsResponse {
            model_stats: stats,
        }))
    }

    async fn repository_index(
        &self,
        request: Request<proto::RepositoryIndexRequest>,
    ) -> Result<Response<proto::RepositoryIndexResponse>, Status> {
        let caller = caller(&request)?;
        let ready_only = request.into_inner().ready;
        let entries = self
            .state
            .runtime
            .repository_index(&caller)
            .await
            .map_err(ApiError::from)?;
        let models = entries
            .into_iter()
            .filter(|e| !ready_only || e.state == "READY")
            .map(|e| proto::repository_index_response::ModelIndex {
                name: e.name,
                version: e.version,
                state: e.state.to_owned(),
                reason: e.reason,
            })
            .collect();
        Ok(Response::new(proto::RepositoryIndexResponse { models }))
    }

    async fn repository_model_load(
        &self,
        request: Request<proto::RepositoryModelLoadRequest>,
    ) -> Result<Response<proto::RepositoryModelLoadResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        if !request.parameters.is_empty() {
            return Err(ApiError::invalid(
                "load parameters (config overrides, files) are not supported: models come from \
                 the registry",
            )
            .into());
        }
        let name = ModelName::new(&request.model_name).map_err(ApiError::from)?;
        self.state
            .runtime
            .load_model(&caller, &name)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(proto::RepositoryModelLoadResponse {}))
    }

    async fn repository_model_unload(
        &self,
        request: Request<proto::RepositoryModelUnloadRequest>,
    ) -> Result<Response<proto::RepositoryModelUnloadResponse>, Status> {
        let caller = caller(&request)?;
        let request = request.into_inner();
        let name = ModelName::new(&request.model_name).map_err(ApiError::from)?;
        self.state
            .runtime
            .unload_model(&caller, &name)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(proto::RepositoryModelUnloadResponse {}))
    }
}
