//! The OpenAI API: `/v1/models`, `/v1/chat/completions`, `/v1/completions` and
//! `/v1/responses` (with streaming) for language models, `/v1/embeddings` for embedding models. Handlers validate, route the `model` field (a name,
//! `name@alias` or `name@version`) like any other request, and run one runtime operation.
//! Errors use OpenAI's shape so that OpenAI clients raise their usual exceptions.

mod collect;
pub(crate) mod embeddings;
pub(crate) mod request;
mod response;
mod responses;
mod tools;

use axum::{
    body::Body,
    extract::State,
    http::{header, HeaderMap},
    response::{sse::Sse, IntoResponse, Response},
    Json,
};
use modelbay_core::{parse_address, Access, Caller};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::{
    access::Routes, auth::Authenticated, body::read_limited, error::OpenAiError,
    routed::serve_routed, AppState,
};
use request::{ChatRequest, CompletionRequest, Streaming};
use response::{Envelope, Kind};

pub(crate) fn routes() -> Routes {
    use Access::*;
    Routes::default()
        .get("/v1/models", Metadata, models)
        .post("/v1/chat/completions", Infer, chat)
        .post("/v1/completions", Infer, completions)
        .post("/v1/responses", Infer, responses_api)
        .post("/v1/embeddings", Infer, embed)
}

async fn models(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<serde_json::Value>, OpenAiError> {
    let data: Vec<_> = state
        .runtime
        .served_openai_models(&caller)
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
    serde_json::from_slice(&bytes)
        .map_err(|e| crate::json_error::invalid_json("request body", &e).into())
}

async fn chat(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OpenAiError> {
    let req: ChatRequest = parse(&state, &headers, body).await?;
    let streaming = req.options.streaming();
    let model = req.model.clone();
    let generation = req.into_generation()?;
    run(
        state,
        caller,
        headers,
        Kind::Chat,
        model,
        generation,
        streaming,
    )
    .await
}

async fn completions(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OpenAiError> {
    let req: CompletionRequest = parse(&state, &headers, body).await?;
    let streaming = req.options.streaming();
    let model = req.model.clone();
    let generation = req.into_generation()?;
    run(
        state,
        caller,
        headers,
        Kind::Completion,
        model,
        generation,
        streaming,
    )
    .await
}

async fn responses_api(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OpenAiError> {
    let req: responses::ResponsesRequest = parse(&state, &headers, body).await?;
    let streaming = req.streaming();
    let address = parse_address(&req.model, None)?;
    let (request, echo) = req.into_generation()?;
    serve_routed(&state, &caller, address, &headers, async |routed| {
        let generation = state.runtime.generate(&caller, routed, request).await?;
        let ids = responses::Ids::new();
        let http = if streaming {
            Sse::new(responses::stream(ids, echo, generation)).into_response()
        } else {
            Json(responses::collect(&ids, &echo, generation).await?).into_response()
        };
        Ok(http)
    })
    .await
}

async fn embed(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OpenAiError> {
    let req: embeddings::EmbeddingRequest = parse(&state, &headers, body).await?;
    let (inputs, encoding) = req.validate()?;
    let address = parse_address(&req.model, None)?;
    serve_routed(&state, &caller, address, &headers, async |routed| {
        let produced = state.runtime.embedding_dimensions(routed)?;
        embeddings::check_dimensions(req.dimensions, produced)?;
        let result = state.runtime.embed(routed, inputs).await?;
        Ok(Json(embeddings::body(&req.model, result, encoding)).into_response())
    })
    .await
}

/// Routes the request, starts the generation and answers whole or as a stream.
async fn run(
    state: AppState,
    caller: Caller,
    headers: HeaderMap,
    kind: Kind,
    model: String,
    request: modelbay_runtime::GenerationRequest,
    streaming: Streaming,
) -> Result<Response, OpenAiError> {
    let address = parse_address(&model, None)?;
    serve_routed(&state, &caller, address, &headers, async |routed| {
        generate_routed(&state, &caller, routed, kind, model, request, streaming).await
    })
    .await
}

/// Starts the generation on a routed version and answers whole or as a stream.
async fn generate_routed(
    state: &AppState,
    caller: &Caller,
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
        &record.digest.hex()[..12]
    );
    let envelope = Envelope::new(kind, model, fingerprint, request.logprobs.is_some());
    let generation = state.runtime.generate(caller, routed, request).await?;
    let http = if streaming.enabled {
        let events = response::stream(envelope, generation, streaming.include_usage);
        Sse::new(events).into_response()
    } else {
        Json(response::collect(&envelope, generation).await?).into_response()
    };
    Ok(http)
}
