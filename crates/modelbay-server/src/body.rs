//! Reading request bodies under a size limit, with our own errors instead of axum's plain text.

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use crate::error::ApiError;
use modelbay_core::ErrorCode;

/// Collects a body of at most `limit` bytes; larger bodies get 413 before being read whole.
pub async fn read_limited(
    body: Body,
    declared_len: Option<u64>,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("request body is larger than the limit of {limit} bytes"),
        )
    };
    if declared_len.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut buf = BytesMut::with_capacity(declared_len.unwrap_or(0).min(limit as u64) as usize);
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| body_error(&e))?;
        if buf.len() + chunk.len() > limit {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// The answer to a body that could not be read: 408 for a slow body, 503 when the server's
/// budget of buffered bytes is spent, else 400.
pub(crate) fn body_error(e: &axum::Error) -> ApiError {
    match crate::guarded_body::limit_of(e) {
        Some(limit @ crate::guarded_body::BodyLimit::Budget) => {
            ApiError::new(ErrorCode::Overloaded, limit.to_string())
        }
        Some(limit) => ApiError::new(ErrorCode::RequestTimeout, limit.to_string()),
        None => ApiError::invalid(format!("could not read the request body: {e}")),
    }
}

/// A request body's `Content-Encoding`: what tritonclient's `request_compression_algorithm`
/// sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
    /// zlib-wrapped deflate, as HTTP defines it.
    Deflate,
}

impl Encoding {
    pub fn from_header(value: Option<&axum::http::HeaderValue>) -> Result<Self, ApiError> {
        let value = value.map(|v| v.as_bytes().to_ascii_lowercase());
        match value.as_deref() {
            None | Some(b"identity") => Ok(Self::Identity),
            Some(b"gzip") => Ok(Self::Gzip),
            Some(b"deflate") => Ok(Self::Deflate),
            Some(other) => Err(ApiError::new(
                ErrorCode::UnsupportedFormat,
                format!(
                    "Content-Encoding '{}' is not supported; use gzip, deflate or none",
                    String::from_utf8_lossy(other)
                ),
            )),
        }
    }
}

/// Decompresses a body off the async workers, refusing (413) one that inflates beyond `limit`
/// bytes.
pub async fn decompress(encoding: Encoding, body: Bytes, limit: usize) -> Result<Bytes, ApiError> {
    if encoding == Encoding::Identity {
        return Ok(body);
    }
    tokio::task::spawn_blocking(move || inflate(encoding, &body, limit))
        .await
        .map_err(|e| {
            ApiError::new(
                ErrorCode::Internal,
                format!("decompression task failed: {e}"),
            )
        })?
}

fn inflate(encoding: Encoding, body: &[u8], limit: usize) -> Result<Bytes, ApiError> {
    use std::io::Read;
    let reader: Box<dyn Read + '_> = match encoding {
        Encoding::Identity => return Ok(Bytes::copy_from_slice(body)),
        // Multi-member gzip streams are legal; every member is part of the body.
        Encoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(body)),
        Encoding::Deflate => Box::new(flate2::read::ZlibDecoder::new(body)),
    };
    let mut out = Vec::new();
    reader
        .take((limit as u64).saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| ApiError::invalid(format!("could not decompress the request body: {e}")))?;
    if out.len() > limit {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("request body inflates to more than the limit of {limit} bytes"),
        ));
    }
    Ok(out.into())
}
