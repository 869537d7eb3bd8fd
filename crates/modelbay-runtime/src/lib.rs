//! Everything between a valid request and an engine: the model manager (which versions are
//! loaded, loading each once), the session pools that run engines on threads of their own, and
//! the operations the HTTP (and later gRPC) handlers call — one implementation per operation.

mod apply;
mod batching;
mod cluster;
mod drift;
mod embed;
mod error;
mod explain;
mod features;
mod generate;
mod generation_defaults;
mod inspect;
mod keys;
mod limits;
mod manager;
mod metrics;
mod operations;
mod pool;
mod routing;
mod scrape;
mod shadow;
mod validation;
mod warmup;

pub use batching::{BatchingStatus, LoadedBatching};
pub use cluster::{ClusterView, ReplicaIdentity, ReplicaView, GONE_AFTER};
pub use drift::{DriftReport, FeatureDrift, ReferenceData, ReferenceSummary};
pub use embed::{
    BatchPolicy, EmbedInput, EmbeddingServeOptions, Embeddings, EMBEDDING_OUTPUT, TEXT_INPUT,
};
pub use error::{Error, Result};
pub use explain::{
    Background, ExplainOptions, Explanation, Link, OutputAttribution, RowExplanation,
};
pub use generate::{Generation, GenerationRequest, Prompt, ServedModel, ToolParsing};
pub use generation_defaults::GenerationSettings;
pub use keys::{
    CertificateFingerprint, CreatedKey, KeySpec, Rejection, MIN_SECRET_LEN, SECRET_PREFIX,
};
pub use manager::{LoadedModel, RuntimeOptions};
pub use metrics::{
    ConnectionGuard, FamilyDescription, Metrics, Outcome, RequestLabels, Timed, VersionStatistics,
};
pub use operations::{ModelMetadata, PushRequest, RepositoryEntry, Routed, Runtime};
pub use routing::{Route, PRODUCTION};
pub use shadow::{OutputAgreement, ShadowReport};
