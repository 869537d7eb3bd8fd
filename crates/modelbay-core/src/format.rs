use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::{error::invalid, Error};

/// The file format of a model artifact; it decides which engine serves the version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelFormat {
    /// An ONNX graph, served by ONNX Runtime.
    Onnx,
    /// A GGUF language model, served by llama.cpp.
    Gguf,
    /// A sentence-transformers folder packed into one tar archive, served as an embedding
    /// model (ONNX Runtime when the folder holds an ONNX export, candle otherwise).
    #[serde(rename = "sentence-transformers")]
    SentenceTransformers,
}

impl ModelFormat {
    /// Every format, for error messages and documentation.
    pub const ALL: &'static [ModelFormat] = &[
        ModelFormat::Onnx,
        ModelFormat::Gguf,
        ModelFormat::SentenceTransformers,
    ];

    /// The lowercase name used in the API and the registry.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Onnx => "onnx",
            Self::Gguf => "gguf",
            Self::SentenceTransformers => "sentence-transformers",
        }
    }
}

impl fmt::Display for ModelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ModelFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        ModelFormat::ALL
            .iter()
            .copied()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| {
                let known: Vec<_> = ModelFormat::ALL.iter().map(|f| f.as_str()).collect();
                invalid!(
                    "unknown model format '{s}'; known formats: {}",
                    known.join(", ")
                )
            })
    }
}
