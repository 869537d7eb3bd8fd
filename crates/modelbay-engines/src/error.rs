use modelbay_core::{ErrorCode, ModelFormat};

/// Errors of the inference engines.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The engine's native library could not be loaded.
    #[error("{0}")]
    LibraryUnavailable(String),
    /// The server was built without the engine for this format.
    #[error("this server was built without the {0} engine")]
    FormatNotEnabled(ModelFormat),
    /// The artifact is corrupt or not in the claimed format.
    #[error("{0}")]
    InvalidModel(String),
    /// The artifact is valid but uses something the protocol cannot carry.
    #[error("{0}")]
    UnsupportedModel(String),
    /// The model failed while running on a (validated) request.
    #[error("the model failed on this input: {0}")]
    Inference(String),
    /// A generation request cannot be served as asked (too long for the context, bad tokens).
    #[error("{0}")]
    InvalidRequest(String),
    /// Every sequence slot is busy and the waiting queue is full.
    #[error("the model is at capacity ({waiting} requests waiting); retry shortly")]
    QueueFull { waiting: usize },
    /// Text generation failed inside the engine.
    #[error("generation failed: {0}")]
    Generation(String),
}

impl Error {
    /// Where this error sits in the catalogue.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::LibraryUnavailable(_) => ErrorCode::Unavailable,
            Self::FormatNotEnabled(_) => ErrorCode::UnsupportedFormat,
            Self::InvalidModel(_)
            | Self::UnsupportedModel(_)
            | Self::Inference(_)
            | Self::InvalidRequest(_) => ErrorCode::InvalidArgument,
            // A full shared queue is the server's capacity, not this caller's limit: 503.
            Self::QueueFull { .. } => ErrorCode::Overloaded,
            Self::Generation(_) => ErrorCode::Internal,
        }
    }
}

/// Result with the engines' error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
