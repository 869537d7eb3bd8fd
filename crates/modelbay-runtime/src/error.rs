use modelbay_core::ErrorCode;

/// Errors of the runtime layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Invalid(#[from] modelbay_core::Error),
    #[error(transparent)]
    Registry(#[from] modelbay_registry::Error),
    #[error(transparent)]
    Engine(#[from] modelbay_engines::Error),
    /// The model's request queue is full.
    #[error("model '{model}' version {version} is at capacity ({queued} requests queued); retry shortly")]
    Overloaded {
        model: String,
        version: u32,
        queued: usize,
    },
    /// The file's format could not be recognised.
    #[error("could not recognise the model format; pass one explicitly (format={known})")]
    UnknownFormat { known: String },
    /// A stored version could not be opened by its engine (it passed validation at push, so
    /// this is the server's problem, not the caller's).
    #[error("version {version} of model '{model}' could not be loaded: {reason}")]
    LoadFailed {
        model: String,
        version: u32,
        reason: String,
    },
    /// A version loaded but failed its warm-up inference.
    #[error("version {version} of model '{model}' failed its warm-up inference: {reason}")]
    WarmUp {
        model: String,
        version: u32,
        reason: String,
    },
    /// The request was sent to the wrong kind of model (a chat request to a tensor model, or
    /// v2 inference to a language model).
    #[error("{0}")]
    WrongKind(String),
    /// A push carried invalid metadata.
    #[error("{0}")]
    InvalidMetadata(String),
    /// An engine thread went away (it panicked or the pool was shut down).
    #[error("the inference worker for model '{0}' stopped unexpectedly")]
    WorkerLost(String),
    /// An engine error shared by every request of a failed batch.
    #[error("{message}")]
    Batch { code: ErrorCode, message: String },
    /// More inputs in one request than the operator allows.
    #[error("{given} inputs in one request; the limit is {limit}")]
    TooManyInputs { given: usize, limit: usize },
    /// A request the model or its data cannot serve (a non-tabular model asked for drift,
    /// malformed reference data, explanation options out of range).
    #[error("{0}")]
    Unsupported(String),
    /// A bounded kind of work (explanations, reference uploads) is at its limit.
    #[error("{0}")]
    Busy(String),
    /// The caller is over one of its own limits.
    #[error("{0}")]
    RateLimited(String),
    /// The version has no reference data (drift and explanations need it).
    #[error(
        "version {version} of model '{model}' has no reference data; upload it with \
         PUT /api/v1/models/{model}/versions/{version}/reference (CSV or v2 JSON rows)"
    )]
    NoReference { model: String, version: u32 },
    #[error("background task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl Error {
    /// Where this error sits in the catalogue.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid(e) => e.code(),
            Self::Registry(e) => e.code(),
            Self::Engine(e) => e.code(),
            Self::Overloaded { .. } | Self::Busy(_) => ErrorCode::Overloaded,
            Self::RateLimited(_) => ErrorCode::RateLimited,
            Self::UnknownFormat { .. }
            | Self::InvalidMetadata(_)
            | Self::WrongKind(_)
            | Self::TooManyInputs { .. }
            | Self::Unsupported(_) => ErrorCode::InvalidArgument,
            Self::NoReference { .. } => ErrorCode::NotFound,
            Self::Batch { code, .. } => *code,
            Self::WorkerLost(_) | Self::Join(_) => ErrorCode::Internal,
            Self::WarmUp { .. } | Self::LoadFailed { .. } => ErrorCode::Unavailable,
        }
    }
}

/// Result with the runtime's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
