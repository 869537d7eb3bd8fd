//! ONNX models on ONNX Runtime, loaded at run time from `libonnxruntime.so` (the `ort` crate's
//! `load-dynamic` mode), so the binary builds without downloading anything.

mod convert;
mod external;
mod signature;

use std::{
    path::{Path, PathBuf},
    sync::OnceLock,
};

use modelbay_core::{ModelFormat, Signature, Tensor};
use ort::{environment::Environment, session::Session};

use crate::{Engine, Error, Result, SessionOptions, TensorSession};

/// Environment variable naming the ONNX Runtime shared library.
pub const DYLIB_ENV: &str = "ORT_DYLIB_PATH";

/// ONNX Runtime allows one environment per process; every engine shares it.
static ENVIRONMENT: OnceLock<std::result::Result<Environment, String>> = OnceLock::new();

/// The ONNX engine.
pub struct OnnxEngine {
    environment: &'static Environment,
}

impl OnnxEngine {
    /// Loads ONNX Runtime from `library` or, when `None`, from the path in `ORT_DYLIB_PATH`.
    /// Fails with a message naming the variable when the library is missing or unusable.
    pub fn new(library: Option<&Path>) -> Result<Self> {
        let library: PathBuf = match library {
            Some(path) => path.to_owned(),
            None => std::env::var_os(DYLIB_ENV)
                .map(PathBuf::from)
                .ok_or_else(|| {
                    Error::LibraryUnavailable(format!(
                        "ONNX Runtime library not configured: set {DYLIB_ENV} to the path of \
                     libonnxruntime.so (scripts/fetch-models.sh downloads it)"
                    ))
                })?,
        };
        let environment = ENVIRONMENT.get_or_init(|| {
            if !library.is_file() {
                return Err(format!(
                    "ONNX Runtime library not found at '{}' ({DYLIB_ENV}); run scripts/fetch-models.sh \
                     and point {DYLIB_ENV} at the libonnxruntime.so it prints",
                    library.display()
                ));
            }
            ort::init_from(&library)
                .map_err(|e| format!("cannot load ONNX Runtime from '{}' ({DYLIB_ENV}): {e}", library.display()))?
                .with_name("modelbay")
                .build()
                .map_err(|e| format!("cannot start ONNX Runtime: {e}"))
        });
        match environment {
            Ok(environment) => Ok(Self { environment }),
            Err(message) => Err(Error::LibraryUnavailable(message.clone())),
        }
    }

    pub(crate) fn session(
        &self,
        options: &SessionOptions,
    ) -> Result<ort::session::builder::SessionBuilder> {
        Session::builder(self.environment)
            .and_then(|b| {
                b.with_intra_threads(options.intra_op_threads.max(1))
                    .map_err(Into::into)
            })
            .and_then(|b| b.with_inter_threads(1).map_err(Into::into))
            .map_err(|e| {
                Error::LibraryUnavailable(format!("cannot configure an ONNX Runtime session: {e}"))
            })
    }
}

impl Engine for OnnxEngine {
    fn format(&self) -> ModelFormat {
        ModelFormat::Onnx
    }

    fn platform(&self) -> &'static str {
        "onnxruntime_onnx"
    }

    fn sniff(&self, head: &[u8]) -> bool {
        // An ONNX ModelProto starts with field 1 (ir_version, a varint): tag byte 0x08.
        head.first() == Some(&0x08)
    }

    fn inspect(&self, path: &Path) -> Result<Signature> {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::InvalidModel(format!("cannot read the uploaded file: {e}")))?;
        // Refused before ONNX Runtime sees it; and the model is opened from memory, with no
        // file path that external data could be resolved against.
        external::refuse_external_data(&bytes)?;
        let session = self
            .session(&SessionOptions::default())?
            .commit_from_memory(&bytes)
            .map_err(|e| Error::InvalidModel(format!("not a valid ONNX model: {e}")))?;
        signature::read(&session)
    }

    fn open(&self, artifact: &[u8], options: &SessionOptions) -> Result<Box<dyn TensorSession>> {
        let session = self
            .session(options)?
            .commit_from_memory(artifact)
            .map_err(|e| Error::InvalidModel(format!("not a valid ONNX model: {e}")))?;
        Ok(Box::new(OnnxSession { session }))
    }
}

struct OnnxSession {
    session: Session,
}

impl TensorSession for OnnxSession {
    fn run(&mut self, inputs: &[Tensor], outputs: &[String]) -> Result<Vec<Tensor>> {
        let values = inputs
            .iter()
            .map(|t| Ok((t.name.as_str(), convert::to_ort(t)?)))
            .collect::<Result<Vec<_>>>()?;
        let results = self
            .session
            .run(values)
            .map_err(|e| Error::Inference(e.to_string()))?;
        outputs
            .iter()
            .map(|name| {
                let value = results.get(name).ok_or_else(|| {
                    Error::Inference(format!("the model produced no output '{name}'"))
                })?;
                convert::from_ort(name, value)
            })
            .collect()
    }
}
