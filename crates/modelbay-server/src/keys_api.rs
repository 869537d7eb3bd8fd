//! API keys under `/api/v1/keys` (administrators only): create (the secret is in the answer,
//! once), list (never a secret) and revoke.

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use chrono::{Duration, Utc};
use modelbay_core::{Access, KeyLimits, ModelPattern, Role};
use modelbay_runtime::{CertificateFingerprint, KeySpec};
use serde::Deserialize;
use serde_json::json;

use crate::{access::Routes, auth::Authenticated, error::ApiError, AppState};

pub(crate) fn routes() -> Routes {
    Routes::default()
        .get("/api/v1/keys", Access::Keys, list)
        .post("/api/v1/keys", Access::Keys, create)
        .delete("/api/v1/keys/{id}", Access::Keys, revoke)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    role: Role,
    label: String,
    #[serde(default)]
    models: Vec<ModelPattern>,
    /// How long the key lives: `90s`, `15m`, `12h` or `30d`.
    #[serde(default)]
    expires_in: Option<String>,
    #[serde(default)]
    limits: KeyLimits,
    /// SHA-256 of a client certificate (hex, colons allowed) that also stands for the key on
    /// an mTLS connection that sends no bearer key.
    #[serde(default)]
    client_cert_sha256: Option<String>,
}

/// Longest lifetime `expires_in` takes: ten years.
const MAX_LIFETIME_DAYS: i64 = 3650;

/// Parses `90s`, `15m`, `12h` or `30d`.
pub(crate) fn parse_lifetime(text: &str) -> Result<Duration, ApiError> {
    let invalid = || {
        ApiError::invalid(format!(
            "expires_in '{}' is not a lifetime such as 90s, 15m, 12h or 30d",
            text.escape_default()
        ))
    };
    let split = text.len().checked_sub(1).ok_or_else(invalid)?;
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().ok().filter(|n| *n > 0).ok_or_else(invalid)?;
    let seconds = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        _ => None,
    }
    .filter(|s| *s <= MAX_LIFETIME_DAYS * 86_400)
    .ok_or_else(invalid)?;
    Ok(Duration::seconds(seconds))
}

async fn create(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: CreateBody = serde_json::from_slice(&body)
        .map_err(|e| crate::json_error::invalid_json("key request", &e))?;
    let expires_at = body
        .expires_in
        .as_deref()
        .map(parse_lifetime)
        .transpose()?
        .map(|lifetime| Utc::now() + lifetime);
    let client_cert = body
        .client_cert_sha256
        .as_deref()
        .map(str::parse::<CertificateFingerprint>)
        .transpose()?;
    let created = state
        .runtime
        .create_key(
            &caller,
            KeySpec {
                label: body.label,
                role: body.role,
                models: body.models,
                limits: body.limits,
                expires_at,
                client_cert,
            },
        )
        .await?;
    let answer = json!({ "key": created.record, "secret": created.secret });
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Response, ApiError> {
    let keys = state.runtime.keys(&caller).await?;
    Ok(Json(json!({ "keys": keys })).into_response())
}

async fn revoke(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let record = state.runtime.revoke_key(&caller, &id).await?;
    Ok(Json(json!({ "key": record })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_take_one_unit() {
        assert_eq!(parse_lifetime("90s").unwrap(), Duration::seconds(90));
        assert_eq!(parse_lifetime("30d").unwrap(), Duration::days(30));
        assert_eq!(parse_lifetime("12h").unwrap(), Duration::hours(12));
        for bad in ["", "d", "0d", "-1d", "1w", "1.5h", "99999999999d", "3651d"] {
            assert!(parse_lifetime(bad).is_err(), "{bad}");
        }
    }
}
