//! The gRPC method table: the [`Access`] each method needs, checked by a tower layer in front of
//! every service before a message is read; a method without a rule is refused. The caller goes
//! to the handlers in the request's extensions, as over HTTP.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use modelbay_core::Access;
use tonic::{body::Body, Status};

use crate::{
    auth::{authorize, Peer},
    AppState,
};

/// Every gRPC method with the access it needs, by its full path.
pub const METHODS: &[(&str, Access)] = &[
    ("/inference.GRPCInferenceService/ServerLive", Access::Open),
    ("/inference.GRPCInferenceService/ServerReady", Access::Open),
    (
        "/inference.GRPCInferenceService/ModelReady",
        Access::Metadata,
    ),
    (
        "/inference.GRPCInferenceService/ServerMetadata",
        Access::Metadata,
    ),
    (
        "/inference.GRPCInferenceService/ModelMetadata",
        Access::Metadata,
    ),
    ("/inference.GRPCInferenceService/ModelInfer", Access::Infer),
    (
        "/inference.GRPCInferenceService/ModelStreamInfer",
        Access::Infer,
    ),
    (
        "/inference.GRPCInferenceService/ModelConfig",
        Access::Metadata,
    ),
    (
        "/inference.GRPCInferenceService/ModelStatistics",
        Access::Inspect,
    ),
    (
        "/inference.GRPCInferenceService/RepositoryIndex",
        Access::Metadata,
    ),
    (
        "/inference.GRPCInferenceService/RepositoryModelLoad",
        Access::Publish,
    ),
    (
        "/inference.GRPCInferenceService/RepositoryModelUnload",
        Access::Publish,
    ),
    ("/grpc.health.v1.Health/Check", Access::Open),
    ("/grpc.health.v1.Health/Watch", Access::Open),
    (
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        Access::Metadata,
    ),
];

/// The access a method needs; `None` for a method with no rule.
pub fn rule(path: &str) -> Option<Access> {
    METHODS.iter().find(|(p, _)| *p == path).map(|(_, a)| *a)
}

/// The layer that authorizes every gRPC request.
#[derive(Clone)]
pub(crate) struct AuthorizeLayer {
    pub(crate) state: AppState,
}

impl<S> tower::Layer<S> for AuthorizeLayer {
    type Service = Authorize<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authorize {
            inner,
            state: self.state.clone(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct Authorize<S> {
    inner: S,
    state: AppState,
}

type Answer<E> = Pin<Box<dyn Future<Output = Result<axum::http::Response<Body>, E>> + Send>>;

impl<S, B> tower::Service<axum::http::Request<B>> for Authorize<S>
where
    S: tower::Service<axum::http::Request<B>, Response = axum::http::Response<Body>> + Send,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = axum::http::Response<Body>;
    type Error = S::Error;
    type Future = Answer<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: axum::http::Request<B>) -> Self::Future {
        let refused =
            |status: Status| -> Self::Future { Box::pin(async move { Ok(status.into_http()) }) };
        let Some(access) = rule(request.uri().path()) else {
            return refused(Status::permission_denied(
                "this method has no access rule; it is not served",
            ));
        };
        if access != Access::Open {
            let peer = request.extensions().get::<Peer>().copied();
            match authorize(&self.state, access, request.headers(), peer.as_ref()) {
                Ok(caller) => {
                    request.extensions_mut().insert(caller);
                }
                Err(e) => return refused(e.into()),
            }
        }
        Box::pin(self.inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::rule;

    /// Every method of every service the server registers has an access rule: a new RPC in
    /// the protos (or a new service) fails here until it gets one.
    #[test]
    fn every_served_method_has_a_rule() {
        let sets = [
            super::super::proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        ];
        let mut methods = 0;
        for set in sets {
            let set = prost_types::FileDescriptorSet::decode(set).unwrap();
            for file in set.file {
                for service in &file.service {
                    for method in &service.method {
                        let path =
                            format!("/{}.{}/{}", file.package(), service.name(), method.name());
                        assert!(rule(&path).is_some(), "{path} has no access rule");
                        methods += 1;
                    }
                }
            }
        }
        assert_eq!(
            methods,
            super::METHODS.len(),
            "every rule names a served method"
        );
    }
}
