//! The OpenAI API: `/v1/models`, `/v1/chat/completions` and `/v1/completions` (with streaming)
//! for language models, `/v1/embeddings` for embedding models. Handlers validate, route the `model` field (a name,
//! `name@alias` or `name@version`) like any other request, and run one runtime operation.
//! Errors use OpenAI's shape so that OpenAI clients raise their usual exceptions.

mod embeddings;
mod request;
mod response;

use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderMap},
    response::{sse::Sse, IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use modelbay_core::parse_model_ref;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::{body::read_limited, error::OpenAiError, AppState};
use request::{ChatRequest, CompletionRequest, Streaming};
use response::{Envelope, Kind};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embed))
}

async fn models(State(state): State<AppState>) -> Result<Json<serde_json::Value>, OpenAiError> {
    let data: Vec<_> = state
        .runtime
        .served_openai_models()
        .await?
        .into_iter()
        .map(|m| {
            json!({
                "id": m.id,
                "object": "model",
                "created": m.created.timestamp(),
                "owned_by": "modelbay",
                "details": m.details,
            })
        })
        .collect();
    Ok(Json(json!({ "object": "list", "data": data })))
}

async fn parse<T: DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, OpenAiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let bytes = read_limited(body, declared, state.limits.max_request_bytes).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        crate::ApiError::invalid(format!("the request body is not a valid request: {e}")).into()
    })
}

async fn chat(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OpenAiError> {
    let req: ChatRequest = parse(&state, &headers, body).await?;
    let streaming = req.options.streaming();
    let model = req.model.clone();
    let generation = req.into_generation()?;
    run(state, headers, Kind::Chat, model, generation, streaming).await
}

async fn completions(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OpenAiError> {
    let req: CompletionRequest = parse(&state, &headers, body).await?;
    let streaming = req.options.streaming();
    let model = req.model.clone();
    let generation = req.into_generation()?;
    run(
        state,
        headers,
        Kind::Completion,
        model,
        generation,
        streaming,
    )
    .await
}

async fn embed(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OpenAiError> {
    let req: embeddings::EmbeddingRequest = parse(&state, &headers, body).await?;
    let (inputs, encoding) = req.validate()?;
    let (name, version) = parse_model_ref(&req.model)?;
    let header = |key: &str| headers.get(key).map(|v| v.as_bytes().to_vec());
    let routed = state.runtime.route(&name, &version, &header).await?;
    let embedded = async {
        let produced = state.runtime.embedding_dimensions(&routed)?;
        embeddings::check_dimensions(req.dimensions, produced)?;
        let result = state.runtime.embed(&routed, inputs).await?;
        Ok::<_, OpenAiError>(Json(embeddings::body(&req.model, result, encoding)).into_response())
    };
    annotate(embedded.await, &routed)
}

/// Routes the request, starts the generation and answers whole or as a stream.
async fn run(
    state: AppState,
    headers: HeaderMap,
    kind: Kind,
    model: String,
    request: modelbay_runtime::GenerationRequest,
    streaming: Streaming,
) -> Result<Response, OpenAiError> {
    let (name, version) = parse_model_ref(&model)?;
    let header = |key: &str| headers.get(key).map(|v| v.as_bytes().to_vec());
    let routed = state.runtime.route(&name, &version, &header).await?;
    annotate(
        generate_routed(&state, &routed, kind, model, request, streaming).await,
        &routed,
    )
}

/// Starts the generation on a routed version and answers whole or as a stream.
async fn generate_routed(
    state: &AppState,
    routed: &modelbay_runtime::Routed,
    kind: Kind,
    model: String,
    request: modelbay_runtime::GenerationRequest,
    streaming: Streaming,
) -> Result<Response, OpenAiError> {
    let record = &routed.model.record;
    let fingerprint = format!(
        "{}-v{}-{}",
        record.model,
        record.version,
        record
            .digest
            .trim_start_matches("sha256:")
            .get(..12)
            .unwrap_or("")
    );
    let envelope = Envelope::new(kind, model, fingerprint);
    let generation = state.runtime.generate(routed, request).await?;
    let http = if streaming.enabled {
        let events = response::stream(envelope, generation, streaming.include_usage);
        Sse::new(events).into_response()
    } else {
        Json(response::collect(&envelope, generation).await?).into_response()
    };
    Ok(http)
}

/// Names the version (and alias) that answered or failed, in response headers (on success) and
/// for the request log and metrics.
fn annotate(
    result: Result<Response, OpenAiError>,
    routed: &modelbay_runtime::Routed,
) -> Result<Response, OpenAiError> {
    let served = crate::v2::routed_by(routed);
    match result {
        Ok(http) => Ok(crate::observe::served_by(http, served)),
        Err(e) => Err(e.served_by(served)),
    }
}
