//! Who sent a request, and whether it may. Every HTTP route and gRPC method declares the
//! [`Access`] it needs (see [`crate::access`] and `grpc::access`); before a handler runs, the
//! request's bearer key is resolved to a [`Caller`], its role is checked against that access and
//! its requests-per-second budget is charged. Handlers take the caller with the
//! [`Authenticated`] extractor and pass it to the runtime operation, which checks the model
//! scopes.

use std::net::SocketAddr;

use axum::{
    extract::FromRequestParts,
    http::{header, request::Parts, HeaderMap},
};
use modelbay_core::{Access, Caller, ErrorCode};
use modelbay_runtime::{CertificateFingerprint, Rejection};

use crate::{error::ApiError, AppState};

/// Whether requests must carry an API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Every route but the health probes needs a key (the default).
    Keys,
    /// Every request acts as the local operator, an administrator (`--auth off`).
    Off,
}

/// Who is at the other end of a connection: its address and, over mTLS, the fingerprint of the
/// client certificate it presented (verified against `--tls-client-ca` by the handshake).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer {
    pub remote: SocketAddr,
    pub client_cert: Option<CertificateFingerprint>,
}

/// The caller of a request, as [`authorize`] resolved it.
pub(crate) struct Authenticated(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .map(Self)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::Internal,
                    "the request reached a handler without passing authentication",
                )
            })
    }
}

/// The bearer credential of a request: `Authorization: Bearer <key>` (HTTP, and gRPC's
/// `authorization` metadata, which is the same header).
fn bearer(headers: &HeaderMap) -> Result<&str, Rejection> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(Rejection::Missing);
    };
    let value = value.to_str().map_err(|_| Rejection::Malformed)?;
    let (scheme, token) = value.split_once(' ').ok_or(Rejection::Malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(Rejection::Malformed);
    }
    Ok(token)
}

/// Resolves the request's caller and checks that its role grants `access`, then charges its
/// requests-per-second budget: 401 without valid credentials, 403 for a role that does not
/// grant it, 429 over the budget. A bearer key decides when one is sent; without one, a client
/// certificate bound to a key stands for that key.
pub(crate) fn authorize(
    state: &AppState,
    access: Access,
    headers: &HeaderMap,
    peer: Option<&Peer>,
) -> Result<Caller, ApiError> {
    let remote = peer.map(|p| p.remote);
    let caller = match state.auth {
        AuthMode::Off => Caller {
            remote,
            ..Caller::local()
        },
        AuthMode::Keys => match (bearer(headers), peer.and_then(|p| p.client_cert)) {
            (Err(Rejection::Missing), Some(cert)) => {
                state.runtime.authenticate_certificate(&cert, remote)
            }
            (credential, _) => {
                credential.and_then(|secret| state.runtime.authenticate(secret, remote))
            }
        }
        .map_err(|rejection| {
            state
                .runtime
                .metrics()
                .record_auth_failure(rejection.as_str());
            ApiError::new(ErrorCode::Unauthenticated, rejection.message())
        })?,
    };
    caller.require(access)?;
    state.runtime.admit(&caller)?;
    Ok(caller)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn bearer_credentials_are_read_strictly() {
        assert_eq!(bearer(&headers("Bearer mbk_1")), Ok("mbk_1"));
        assert_eq!(bearer(&headers("bearer  mbk_1 ")), Ok("mbk_1"));
        assert_eq!(bearer(&HeaderMap::new()), Err(Rejection::Missing));
        for bad in ["mbk_1", "Basic dXNlcjpwYXNz", "Bearer", "Bearer  "] {
            assert_eq!(bearer(&headers(bad)), Err(Rejection::Malformed), "{bad}");
        }
    }
}
