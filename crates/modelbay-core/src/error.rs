use std::fmt;

/// The catalogue of error kinds every modelbay layer maps onto. The server turns a code into an
/// HTTP status (and later a gRPC status) in exactly one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request is malformed or does not fit the model (400).
    InvalidArgument,
    /// A model, version or route does not exist (404).
    NotFound,
    /// The request conflicts with the registry's current state (409).
    Conflict,
    /// The request did not arrive in time: a body that stalled or took too long (408).
    RequestTimeout,
    /// The request body is larger than the configured limit (413).
    PayloadTooLarge,
    /// The artifact's format is not one this server can serve (415).
    UnsupportedFormat,
    /// The request carries no valid credentials: no key, a malformed one, or one that is
    /// unknown, revoked or expired (401).
    Unauthenticated,
    /// The caller is known but its role or model scopes do not allow this (403).
    PermissionDenied,
    /// The server is at capacity (a shared queue is full); retry later (503 with
    /// `Retry-After`).
    Overloaded,
    /// This caller is over its own limits (requests per second, tokens per minute, waiting
    /// sequences); retry later (429 with `Retry-After`).
    RateLimited,
    /// A dependency (engine library, storage) is unavailable (503).
    Unavailable,
    /// Stored data failed an integrity check (500; never the caller's fault).
    DataCorruption,
    /// Anything else: a bug or an unexpected failure (500).
    Internal,
}

impl ErrorCode {
    /// Short machine-readable name, used in logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidArgument => "invalid_argument",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::RequestTimeout => "request_timeout",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedFormat => "unsupported_format",
            Self::Unauthenticated => "unauthenticated",
            Self::PermissionDenied => "permission_denied",
            Self::Overloaded => "overloaded",
            Self::RateLimited => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::DataCorruption => "data_corruption",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors raised while validating names, tensors and requests.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A model name, alias or label key does not follow the naming rules.
    #[error("{0}")]
    InvalidName(String),
    /// A tensor or request does not fit its declared shape, type or the model's signature.
    #[error("{0}")]
    InvalidInput(String),
    /// The caller's role or model scopes do not allow the operation.
    #[error("{0}")]
    PermissionDenied(String),
}

impl Error {
    /// Where this error sits in the catalogue.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidName(_) | Self::InvalidInput(_) => ErrorCode::InvalidArgument,
            Self::PermissionDenied(_) => ErrorCode::PermissionDenied,
        }
    }
}

/// Result with this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Builds an [`Error::InvalidInput`] from format arguments.
macro_rules! invalid {
    ($($arg:tt)*) => { $crate::error::Error::InvalidInput(format!($($arg)*)) };
}
pub(crate) use invalid;
