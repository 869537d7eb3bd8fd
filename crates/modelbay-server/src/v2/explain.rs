//! `POST /v2/models/{model}[/versions/{version}]/explain`: a v2 inference request body in,
//! KernelSHAP attributions per row, output column and feature out. Options come in the query:
//! `link` (`identity` or `logit`), `samples` (coalitions per row), `seed`, `background`
//! (`sample` or `mean`) and `background_rows`.

use axum::{
    body::Body,
    extract::{Path, RawQuery, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
    Json,
};
use modelbay_runtime::{Background, ExplainOptions, Link};

use super::{read_request, ModelPath};
use crate::{auth::Authenticated, error::ApiError, routed::serve_routed, AppState};

pub(super) async fn explain(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(path): Path<ModelPath>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let address = path.parse()?;
    let options = options(query.as_deref().unwrap_or_default())?;
    serve_routed(&state, &caller, address, &headers, async |routed| {
        let decoded = read_request(&state, &headers, body).await?;
        let explanation = state
            .runtime
            .explain(&caller, routed, decoded.request, options)
            .await?;
        Ok(Json(explanation).into_response())
    })
    .await
}

fn options(query: &str) -> Result<ExplainOptions, ApiError> {
    let mut options = ExplainOptions::default();
    let mut mean = false;
    let mut rows = None;
    let number = |key: &str, value: &str| {
        value
            .parse::<u64>()
            .map_err(|_| ApiError::invalid(format!("{key} '{value}' is not a whole number")))
    };
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "link" => {
                options.link = match value.as_ref() {
                    "identity" => Link::Identity,
                    "logit" => Link::Logit,
                    other => {
                        return Err(ApiError::invalid(format!(
                            "link '{other}' is not one of identity, logit"
                        )))
                    }
                }
            }
            "samples" => options.samples = Some(number("samples", &value)? as usize),
            "seed" => options.seed = number("seed", &value)?,
            "background" => {
                mean = match value.as_ref() {
                    "sample" => false,
                    "mean" => true,
                    other => {
                        return Err(ApiError::invalid(format!(
                            "background '{other}' is not one of sample, mean"
                        )))
                    }
                }
            }
            "background_rows" => rows = Some(number("background_rows", &value)? as usize),
            other => {
                return Err(ApiError::invalid(format!(
                    "unknown explain option '{other}'; the options are link, samples, seed, \
                     background, background_rows"
                )))
            }
        }
    }
    options.background = match (mean, rows) {
        (true, Some(_)) => {
            return Err(ApiError::invalid(
                "background_rows applies to background=sample, not background=mean",
            ))
        }
        (true, None) => Background::Mean,
        (false, rows) => Background::Sample(rows),
    };
    Ok(options)
}
