//! Everything between a valid request and an engine: the model manager (which versions are
//! loaded, loading each once), the session pools that run engines on threads of their own, and
//! the operations the HTTP (and later gRPC) handlers call — one implementation per operation.

mod embed;
mod error;
mod generate;
mod manager;
mod operations;
mod pool;
mod routing;
mod shadow;
mod validation;
mod warmup;

pub use embed::{
    BatchPolicy, EmbedInput, EmbeddingServeOptions, Embeddings, EMBEDDING_OUTPUT, TEXT_INPUT,
};
pub use error::{Error, Result};
pub use generate::{Generation, GenerationRequest, Prompt, ServedModel};
pub use manager::{LoadedModel, RuntimeOptions};
pub use operations::{ModelMetadata, PushRequest, RepositoryEntry, Routed, Runtime};
pub use routing::{Route, PRODUCTION};
pub use shadow::{OutputAgreement, ShadowReport};
