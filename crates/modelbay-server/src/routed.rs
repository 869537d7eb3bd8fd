//! The path every inference request takes, whatever its protocol: route the address to a
//! version (the runtime checks the caller there), run the request on it, and say which version
//! served it — on success and on failure alike, for the response headers, the request log and
//! the metrics.

use modelbay_core::{Caller, ModelName, VersionRef};
use modelbay_runtime::Routed;

use crate::{error::ApiError, observe::ServedBy, AppState};

/// A request header (or gRPC metadata entry) by name, for sticky routing.
pub(crate) type HeaderLookup<'a> = dyn Fn(&str) -> Option<Vec<u8>> + Sync + 'a;

/// Routes and runs; the version that served is `None` only when routing itself failed.
pub(crate) async fn route_and_run<T, E>(
    state: &AppState,
    caller: &Caller,
    (model, version): (ModelName, VersionRef),
    header: &HeaderLookup<'_>,
    run: impl AsyncFnOnce(&Routed) -> Result<T, E>,
) -> (Result<T, E>, Option<ServedBy>)
where
    E: From<ApiError>,
{
    let routed = match state.runtime.route(caller, &model, &version, header).await {
        Ok(routed) => routed,
        Err(e) => return (Err(ApiError::from(e).into()), None),
    };
    let served = served_by(&routed);
    (run(&routed).await, Some(served))
}

/// Something an HTTP answer can be attributed to a version with.
pub(crate) trait Attribute {
    fn attribute(self, served: ServedBy) -> Self;
}

impl Attribute for axum::response::Response {
    fn attribute(self, served: ServedBy) -> Self {
        crate::observe::served_by(self, served)
    }
}

impl Attribute for ApiError {
    fn attribute(self, served: ServedBy) -> Self {
        self.served_by(served)
    }
}

impl Attribute for crate::error::OpenAiError {
    fn attribute(self, served: ServedBy) -> Self {
        self.served_by(served)
    }
}

/// [`route_and_run`] for HTTP: the answer or the error carries the version that served it.
pub(crate) async fn serve_routed<E>(
    state: &AppState,
    caller: &Caller,
    address: (ModelName, VersionRef),
    headers: &axum::http::HeaderMap,
    run: impl AsyncFnOnce(&Routed) -> Result<axum::response::Response, E>,
) -> Result<axum::response::Response, E>
where
    E: From<ApiError> + Attribute,
{
    let header = |key: &str| headers.get(key).map(|v| v.as_bytes().to_vec());
    let (result, served) = route_and_run(state, caller, address, &header, run).await;
    match (result, served) {
        (Ok(response), Some(served)) => Ok(response.attribute(served)),
        (Err(e), Some(served)) => Err(e.attribute(served)),
        (result, None) => result,
    }
}

/// What the log and the response headers say about the version a routed request reached.
pub(crate) fn served_by(routed: &Routed) -> ServedBy {
    ServedBy {
        model: routed.model.record.model.clone(),
        version: routed.model.record.version,
        alias: routed.route.alias.clone(),
    }
}
