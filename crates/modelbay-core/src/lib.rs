//! Types shared by every modelbay crate, with no I/O: validated names, tensors and their data
//! types, model signatures, inference requests and the error-code catalogue that every layer
//! maps its errors onto.

mod batching;
mod caller;
mod datatype;
mod error;
mod format;
pub mod generation;
mod infer;
mod name;
mod routing;
mod signature;
mod tensor;

pub use batching::{unbatchable_reason, TensorBatching};
pub use caller::{Access, Caller, KeyLimits, ModelPattern, Role};
pub use datatype::DataType;
pub use error::{Error, ErrorCode, Result};
pub use format::ModelFormat;
pub use infer::{InferRequest, InferResponse, ValidInferRequest};
pub use name::{parse_address, parse_model_ref, validate_alias, LabelKey, ModelName, VersionRef};
pub use routing::{RoutingPolicy, Target, WeightedTarget};
pub use signature::{Signature, TensorSpec};
pub use tensor::{
    decode_json_data, element_count, parse_shape, JsonDataError, JsonDataSeed, Tensor, TensorData,
    MAX_TENSOR_ELEMENTS,
};
