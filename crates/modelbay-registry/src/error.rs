use modelbay_core::ErrorCode;

/// Errors of the version store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Invalid(#[from] modelbay_core::Error),
    #[error("model '{0}' not found")]
    ModelNotFound(String),
    #[error("model '{model}' has no version {version}")]
    VersionNotFound { model: String, version: u32 },
    #[error("model '{model}' has no alias '{alias}'")]
    AliasNotFound { model: String, alias: String },
    #[error("API key '{0}' not found")]
    KeyNotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("upload is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// A packed folder that cannot be unpacked safely.
    #[error("invalid model folder archive: {0}")]
    InvalidBundle(String),
    #[error("upload is empty")]
    EmptyUpload,
    #[error("upload was interrupted: {0}")]
    UploadInterrupted(String),
    #[error("artifact {digest} failed its integrity check: {detail}")]
    Corrupt {
        digest: crate::Digest,
        detail: String,
    },
    #[error("stored metadata could not be decoded: {0}")]
    Decode(String),
    #[error("the registry database is unavailable or failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error("metadata migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("artifact store: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Where this error sits in the catalogue.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid(e) => e.code(),
            Self::ModelNotFound(_)
            | Self::VersionNotFound { .. }
            | Self::AliasNotFound { .. }
            | Self::KeyNotFound(_) => ErrorCode::NotFound,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::TooLarge { .. } => ErrorCode::PayloadTooLarge,
            Self::EmptyUpload | Self::UploadInterrupted(_) | Self::InvalidBundle(_) => {
                ErrorCode::InvalidArgument
            }
            Self::Corrupt { .. } => ErrorCode::DataCorruption,
            Self::Database(e) if unreachable(e) => ErrorCode::Unavailable,
            Self::Decode(_)
            | Self::Database(_)
            | Self::Migrate(_)
            | Self::ObjectStore(_)
            | Self::Io(_) => ErrorCode::Internal,
        }
    }
}

/// Whether a database error means the database cannot be reached now (a retry later may
/// succeed), rather than that the statement failed.
fn unreachable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
    )
}

impl Error {
    /// Whether the registry's database could not be reached.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Database(e) if unreachable(e))
    }
}

/// Result with the registry's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
