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
}

impl Error {
    /// Where this error sits in the catalogue.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::LibraryUnavailable(_) => ErrorCode::Unavailable,
            Self::FormatNotEnabled(_) => ErrorCode::UnsupportedFormat,
            Self::InvalidModel(_) | Self::UnsupportedModel(_) | Self::Inference(_) => {
                ErrorCode::InvalidArgument
            }
        }
    }
}

/// Result with the engines' error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
