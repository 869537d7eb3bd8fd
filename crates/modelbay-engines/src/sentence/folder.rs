//! What a sentence-transformers folder says about its model: which files hold the encoder, how
//! token embeddings are pooled, whether the result is normalised, how long an input may be.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::pooling::Pooling;
use crate::{Error, Result};

/// Largest configuration file read (they are a few hundred bytes).
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The encoder's weights, in the order they are preferred.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Weights {
    /// An ONNX export (`onnx/model.onnx` as sentence-transformers and Optimum lay it out, or
    /// `model.onnx`), run by ONNX Runtime.
    Onnx(PathBuf),
    /// `model.safetensors`, run by candle.
    Safetensors(PathBuf),
}

/// The facts of one folder.
#[derive(Debug, Clone)]
pub(crate) struct SentenceFolder {
    pub weights: Weights,
    pub tokenizer: PathBuf,
    /// The encoder's `config.json`.
    pub config: EncoderConfig,
    pub pooling: Vec<Pooling>,
    pub normalize: bool,
    /// Tokens per input, special tokens included.
    pub max_tokens: usize,
}

/// The parts of a Hugging Face `config.json` this engine needs.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub(crate) struct EncoderConfig {
    pub model_type: Option<String>,
    pub hidden_size: usize,
    pub max_position_embeddings: Option<usize>,
    pub num_hidden_layers: Option<usize>,
    pub vocab_size: Option<usize>,
}

#[derive(Deserialize)]
struct Module {
    #[serde(default)]
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct SentenceConfig {
    max_seq_length: Option<usize>,
}

#[derive(Deserialize)]
struct TokenizerConfig {
    model_max_length: Option<f64>,
}

impl SentenceFolder {
    /// Reads and checks the folder; every problem is an [`Error::InvalidModel`] naming the file.
    pub(crate) fn read(dir: &Path) -> Result<Self> {
        let config: EncoderConfig = read_json(dir, "config.json")?.ok_or_else(|| {
            invalid("config.json is missing: push the folder of a sentence-transformers model")
        })?;
        if config.hidden_size == 0 {
            return Err(invalid("config.json: hidden_size must be positive"));
        }
        let tokenizer = dir.join("tokenizer.json");
        if !tokenizer.is_file() {
            return Err(invalid(
                "tokenizer.json is missing (a fast tokenizer file is required)",
            ));
        }
        let weights = find_weights(dir)?;
        let (pooling, normalize) = read_modules(dir, config.hidden_size)?;
        let sentence: Option<SentenceConfig> = read_json(dir, "sentence_bert_config.json")?;
        // What the tokenizer was trained to take (RoBERTa-style models reserve position slots,
        // so their position table is longer than this); huge values mean "no limit".
        let tokenizer_limit = read_json::<TokenizerConfig>(dir, "tokenizer_config.json")?
            .and_then(|t| t.model_max_length)
            .filter(|n| (2.0..1e6).contains(n))
            .map(|n| n as usize);
        let position_limit = config.max_position_embeddings.unwrap_or(512);
        let limit = tokenizer_limit.map_or(position_limit, |t| t.min(position_limit));
        let max_tokens = sentence
            .and_then(|s| s.max_seq_length)
            .unwrap_or(limit)
            .min(limit);
        if max_tokens < 2 {
            return Err(invalid(
                "sentence_bert_config.json: max_seq_length is too small",
            ));
        }
        Ok(Self {
            weights,
            tokenizer,
            config,
            pooling,
            normalize,
            max_tokens,
        })
    }

    /// Length of the pooled embedding (several pooling modes are concatenated).
    pub(crate) fn dimensions(&self) -> usize {
        self.config.hidden_size * self.pooling.len()
    }
}

fn find_weights(dir: &Path) -> Result<Weights> {
    for candidate in ["onnx/model.onnx", "model.onnx"] {
        let path = dir.join(candidate);
        if path.is_file() {
            return Ok(Weights::Onnx(path));
        }
    }
    let safetensors = dir.join("model.safetensors");
    if safetensors.is_file() {
        return Ok(Weights::Safetensors(safetensors));
    }
    Err(invalid(
        "no encoder weights: the folder needs model.safetensors or an ONNX export \
         (onnx/model.onnx or model.onnx)",
    ))
}

/// The pooling and normalisation steps from `modules.json`. A folder without it is a plain
/// encoder: mean pooling, no normalisation (what sentence-transformers assumes).
fn read_modules(dir: &Path, hidden_size: usize) -> Result<(Vec<Pooling>, bool)> {
    let Some(modules) = read_json::<Vec<Module>>(dir, "modules.json")? else {
        return Ok((vec![Pooling::Mean], false));
    };
    let mut pooling = None;
    let mut normalize = false;
    for (i, module) in modules.iter().enumerate() {
        let kind = module.kind.rsplit('.').next().unwrap_or_default();
        match kind {
            "Transformer" if i == 0 => {}
            "Pooling" if pooling.is_none() => {
                pooling = Some(read_pooling(dir, &module.path, hidden_size)?);
            }
            "Normalize" => normalize = true,
            _ => {
                return Err(Error::UnsupportedModel(format!(
                    "modules.json: module {i} ({}) is not supported; modelbay serves \
                     Transformer → Pooling → optional Normalize",
                    module.kind
                )))
            }
        }
    }
    let pooling = pooling.unwrap_or_else(|| vec![Pooling::Mean]);
    Ok((pooling, normalize))
}

fn read_pooling(dir: &Path, module: &str, hidden_size: usize) -> Result<Vec<Pooling>> {
    let plain = Path::new(module)
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if !plain {
        return Err(invalid(
            "modules.json: a module path must be a folder inside the model's folder",
        ));
    }
    let file = match module.trim_end_matches('/') {
        "" => "config.json".to_owned(),
        folder => format!("{folder}/config.json"),
    };
    let Some(config) = read_json::<serde_json::Value>(dir, &file)? else {
        return Ok(vec![Pooling::Mean]);
    };
    if let Some(dimension) = config
        .get("word_embedding_dimension")
        .and_then(|d| d.as_u64())
    {
        if dimension as usize != hidden_size {
            return Err(invalid(&format!(
                "{file}: word_embedding_dimension {dimension} differs from the encoder's \
                 hidden_size {hidden_size}"
            )));
        }
    }
    Pooling::from_config(&config).map_err(|e| invalid(&format!("{file}: {e}")))
}

/// Reads a small JSON file of the folder; `None` when it does not exist.
fn read_json<T: serde::de::DeserializeOwned>(dir: &Path, name: &str) -> Result<Option<T>> {
    let path = dir.join(name);
    let meta = match std::fs::metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(invalid(&format!("{name}: {e}"))),
    };
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(invalid(&format!(
            "{name} is larger than {MAX_CONFIG_BYTES} bytes"
        )));
    }
    let bytes = std::fs::read(&path).map_err(|e| invalid(&format!("{name}: {e}")))?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| invalid(&format!("{name} is not valid: {e}")))
}

fn invalid(message: &str) -> Error {
    Error::InvalidModel(message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, content) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        dir
    }

    const CONFIG: &str = r#"{"model_type":"bert","hidden_size":8,"max_position_embeddings":512}"#;

    #[test]
    fn reads_a_minilm_style_folder() {
        let dir = folder(&[
            ("config.json", CONFIG),
            ("tokenizer.json", "{}"),
            ("model.safetensors", ""),
            (
                "modules.json",
                r#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
                   {"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"},
                   {"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.models.Normalize"}]"#,
            ),
            (
                "1_Pooling/config.json",
                r#"{"word_embedding_dimension":8,"pooling_mode_cls_token":true,"pooling_mode_mean_tokens":false}"#,
            ),
            ("sentence_bert_config.json", r#"{"max_seq_length":256}"#),
        ]);
        let read = SentenceFolder::read(dir.path()).unwrap();
        assert_eq!(read.pooling, vec![Pooling::Cls]);
        assert!(read.normalize);
        assert_eq!(read.max_tokens, 256);
        assert_eq!(read.dimensions(), 8);
        assert!(matches!(read.weights, Weights::Safetensors(_)));
    }

    #[test]
    fn prefers_onnx_and_defaults_to_mean_pooling() {
        let dir = folder(&[
            ("config.json", CONFIG),
            ("tokenizer.json", "{}"),
            ("model.safetensors", ""),
            ("onnx/model.onnx", ""),
        ]);
        let read = SentenceFolder::read(dir.path()).unwrap();
        assert!(matches!(read.weights, Weights::Onnx(_)));
        assert_eq!(read.pooling, vec![Pooling::Mean]);
        assert!(!read.normalize);
        assert_eq!(read.max_tokens, 512);
    }

    #[test]
    fn the_tokenizer_limit_caps_the_sequence_length() {
        let dir = folder(&[
            (
                "config.json",
                r#"{"model_type":"xlm-roberta","hidden_size":8,"max_position_embeddings":514}"#,
            ),
            ("tokenizer.json", "{}"),
            ("model.safetensors", ""),
            ("tokenizer_config.json", r#"{"model_max_length":512}"#),
        ]);
        assert_eq!(SentenceFolder::read(dir.path()).unwrap().max_tokens, 512);
    }

    #[test]
    fn refuses_incomplete_or_unsupported_folders() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            (
                "no config",
                &[("tokenizer.json", "{}"), ("model.safetensors", "")],
            ),
            (
                "no tokenizer",
                &[("config.json", CONFIG), ("model.safetensors", "")],
            ),
            (
                "no weights",
                &[("config.json", CONFIG), ("tokenizer.json", "{}")],
            ),
            (
                "dense module",
                &[
                    ("config.json", CONFIG),
                    ("tokenizer.json", "{}"),
                    ("model.safetensors", ""),
                    (
                        "modules.json",
                        r#"[{"path":"","type":"sentence_transformers.models.Transformer"},
                           {"path":"2_Dense","type":"sentence_transformers.models.Dense"}]"#,
                    ),
                ],
            ),
            (
                "escaping pooling path",
                &[
                    ("config.json", CONFIG),
                    ("tokenizer.json", "{}"),
                    ("model.safetensors", ""),
                    (
                        "modules.json",
                        r#"[{"path":"","type":"sentence_transformers.models.Transformer"},
                           {"path":"../x","type":"sentence_transformers.models.Pooling"}]"#,
                    ),
                ],
            ),
            (
                "absolute pooling path",
                &[
                    ("config.json", CONFIG),
                    ("tokenizer.json", "{}"),
                    ("model.safetensors", ""),
                    (
                        "modules.json",
                        r#"[{"path":"","type":"sentence_transformers.models.Transformer"},
                           {"path":"/etc","type":"sentence_transformers.models.Pooling"}]"#,
                    ),
                ],
            ),
            (
                "bad json",
                &[
                    ("config.json", "{"),
                    ("tokenizer.json", "{}"),
                    ("model.safetensors", ""),
                ],
            ),
        ];
        for (what, files) in cases {
            let dir = folder(files);
            assert!(SentenceFolder::read(dir.path()).is_err(), "{what}");
        }
    }
}
