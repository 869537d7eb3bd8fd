//! A reader for the header of a GGUF file: its key/value metadata and tensor table, read with
//! bounds on every length so that a damaged or hostile file is refused, never trusted.

use std::{
    collections::BTreeMap,
    fs::File,
    io::{BufReader, Cursor, Read, Seek, SeekFrom},
    path::Path,
};

use modelbay_core::generation::GenerationParams;
use serde::Serialize;

use crate::{Error, Result};

const MAGIC: &[u8; 4] = b"GGUF";
/// Longest metadata string kept in memory (chat templates are a few KiB; 1 MiB is generous).
const MAX_STRING: u64 = 1 << 20;
/// Most dimensions a tensor may have (ggml has 4).
const MAX_DIMS: u32 = 8;
/// Most metadata entries (real files have a few dozen; a vocabulary is one array entry). The
/// file's size alone is no bound: each entry kept costs ~10 times the 14 bytes it can take on
/// disk, so a multi-GiB upload of tiny entries would take tens of GiB of memory.
const MAX_METADATA: u64 = 1 << 16;
/// Most bytes of metadata keys and string values kept in memory together.
const MAX_METADATA_BYTES: usize = 16 << 20;

/// Whether a file starts like a GGUF file.
pub fn sniff(head: &[u8]) -> bool {
    head.starts_with(MAGIC)
}

/// A metadata value that was kept (arrays are skipped: they hold vocabularies).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i128),
    Float(f64),
    Bool(bool),
    String(String),
    /// An array: only its element count is kept.
    Array(u64),
}

impl Value {
    fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Int(i) => u64::try_from(*i).ok(),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

/// What a GGUF header says about its model.
#[derive(Debug, Clone)]
pub struct GgufHeader {
    pub version: u32,
    pub metadata: BTreeMap<String, Value>,
    /// Total number of weights over every tensor.
    pub parameters: u64,
    /// The most common tensor type, for files that do not state `general.file_type`.
    predominant_tensor_type: Option<u32>,
}

/// The facts about a language model shown in the registry and in `/v1/models`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LanguageModelDetails {
    pub architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub parameters: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_length: Option<u64>,
    pub quantization: String,
    pub chat_template: bool,
    pub gguf_version: u32,
    /// The file's recommended sampling (`general.sampling.*`), if it has any.
    #[serde(skip_serializing_if = "GenerationParams::is_empty")]
    pub sampling: GenerationParams,
}

impl GgufHeader {
    /// Reads and validates the header of the file at `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| invalid(format!("cannot open the file: {e}")))?;
        let len = file
            .metadata()
            .map_err(|e| invalid(format!("cannot read the file: {e}")))?
            .len();
        let mut reader = Reader {
            inner: BufReader::new(file),
            len,
        };
        reader.header()
    }

    /// Reads and validates a header from the bytes of a whole (or truncated) GGUF file.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let mut reader = Reader {
            inner: Cursor::new(bytes),
            len: bytes.len() as u64,
        };
        reader.header()
    }

    /// A string metadata value.
    pub fn string(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(Value::as_str)
    }

    /// An unsigned integer metadata value.
    pub fn uint(&self, key: &str) -> Option<u64> {
        self.metadata.get(key).and_then(Value::as_u64)
    }

    /// A numeric metadata value, whatever its stored width.
    pub fn number(&self, key: &str) -> Option<f64> {
        match self.metadata.get(key)? {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The sampling the file recommends (`general.sampling.*`, written by llama.cpp's
    /// converter from a model's `generation_config.json`). Values out of range are ignored.
    pub fn sampling_defaults(&self) -> GenerationParams {
        let float = |key: &str| {
            self.number(&format!("general.sampling.{key}"))
                .map(|v| v as f32)
        };
        let int = |key: &str| {
            self.number(&format!("general.sampling.{key}"))
                .filter(|v| v.fract() == 0.0 && v.abs() < f64::from(i32::MAX))
                .map(|v| v as i32)
        };
        let params = GenerationParams {
            temperature: float("temp"),
            top_k: int("top_k"),
            top_p: float("top_p"),
            min_p: float("min_p"),
            repeat_penalty: float("penalty_repeat"),
            repeat_last_n: int("penalty_last_n"),
            ..GenerationParams::default()
        };
        // Each field alone, so one bad value does not discard the others.
        let fields = [
            GenerationParams {
                temperature: params.temperature,
                ..Default::default()
            },
            GenerationParams {
                top_k: params.top_k,
                ..Default::default()
            },
            GenerationParams {
                top_p: params.top_p,
                ..Default::default()
            },
            GenerationParams {
                min_p: params.min_p,
                ..Default::default()
            },
            GenerationParams {
                repeat_penalty: params.repeat_penalty,
                ..Default::default()
            },
            GenerationParams {
                repeat_last_n: params.repeat_last_n,
                ..Default::default()
            },
        ];
        fields
            .iter()
            .filter(|f| f.validate().is_ok())
            .fold(GenerationParams::default(), |acc, f| f.over(&acc))
    }

    /// The summary kept with the version in the registry.
    pub fn details(&self) -> Result<LanguageModelDetails> {
        let architecture = self
            .string("general.architecture")
            .ok_or_else(|| invalid("the GGUF file has no general.architecture".into()))?
            .to_owned();
        let quantization = self
            .uint("general.file_type")
            .and_then(file_type_name)
            .or_else(|| self.predominant_tensor_type.and_then(tensor_type_name))
            .unwrap_or("unknown")
            .to_owned();
        Ok(LanguageModelDetails {
            context_length: self.uint(&format!("{architecture}.context_length")),
            name: self.string("general.name").map(str::to_owned),
            architecture,
            parameters: self.parameters,
            quantization,
            chat_template: self.string("tokenizer.chat_template").is_some(),
            gguf_version: self.version,
            sampling: self.sampling_defaults(),
        })
    }
}

fn invalid(detail: String) -> Error {
    Error::InvalidModel(format!("not a valid GGUF file: {detail}"))
}

struct Reader<R> {
    inner: R,
    len: u64,
}

impl<R: Read + Seek> Reader<R> {
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut buf = [0u8; N];
        self.inner
            .read_exact(&mut buf)
            .map_err(|_| invalid("the header is truncated".into()))?;
        Ok(buf)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }

    /// A count of items that each take at least one byte: it cannot exceed the file's length.
    fn count(&mut self, what: &str) -> Result<u64> {
        let n = self.u64()?;
        if n > self.len {
            return Err(invalid(format!("{what} count {n} exceeds the file's size")));
        }
        Ok(n)
    }

    fn skip(&mut self, n: u64) -> Result<()> {
        if n > self.len {
            return Err(invalid("a length exceeds the file's size".into()));
        }
        let n = i64::try_from(n).map_err(|_| invalid("a length is out of range".into()))?;
        self.inner
            .seek(SeekFrom::Current(n))
            .map_err(|e| invalid(e.to_string()))?;
        Ok(())
    }

    fn string(&mut self) -> Result<String> {
        let n = self.count("string byte")?;
        if n > MAX_STRING {
            return Err(invalid(format!("a metadata string is {n} bytes long")));
        }
        let mut buf = vec![0u8; n as usize];
        self.inner
            .read_exact(&mut buf)
            .map_err(|_| invalid("the header is truncated".into()))?;
        String::from_utf8(buf).map_err(|_| invalid("a metadata string is not UTF-8".into()))
    }

    fn header(&mut self) -> Result<GgufHeader> {
        if &self.bytes::<4>()? != MAGIC {
            return Err(invalid("it does not start with the GGUF magic".into()));
        }
        let version = self.u32()?;
        if !(2..=3).contains(&version) {
            return Err(invalid(format!(
                "GGUF version {version} is not supported (2 and 3 are)"
            )));
        }
        let tensor_count = self.count("tensor")?;
        let kv_count = self.count("metadata")?;
        if kv_count > MAX_METADATA {
            return Err(invalid(format!(
                "{kv_count} metadata entries are more than the {MAX_METADATA} accepted"
            )));
        }
        let mut metadata = BTreeMap::new();
        let mut kept = 0usize;
        for _ in 0..kv_count {
            let key = self.string()?;
            let kind = self.u32()?;
            let value = self.value(kind, 0)?;
            kept += key.len() + value.as_str().map_or(0, str::len);
            if kept > MAX_METADATA_BYTES {
                return Err(invalid(format!(
                    "the metadata holds more than {MAX_METADATA_BYTES} bytes of keys and strings"
                )));
            }
            metadata.insert(key, value);
        }
        let mut parameters: u64 = 0;
        let mut type_counts: BTreeMap<u32, u64> = BTreeMap::new();
        for _ in 0..tensor_count {
            let name = self.string()?;
            let dims = self.u32()?;
            if dims == 0 || dims > MAX_DIMS {
                return Err(invalid(format!("tensor '{name}' has {dims} dimensions")));
            }
            let mut elements: u64 = 1;
            for _ in 0..dims {
                elements = elements
                    .checked_mul(self.u64()?)
                    .ok_or_else(|| invalid(format!("tensor '{name}' is impossibly large")))?;
            }
            let kind = self.u32()?;
            let _offset = self.u64()?;
            parameters = parameters
                .checked_add(elements)
                .ok_or_else(|| invalid("the parameter count overflows".into()))?;
            *type_counts.entry(kind).or_default() += elements;
        }
        let predominant_tensor_type = type_counts
            .into_iter()
            .max_by_key(|&(_, n)| n)
            .map(|(t, _)| t);
        Ok(GgufHeader {
            version,
            metadata,
            parameters,
            predominant_tensor_type,
        })
    }

    fn value(&mut self, kind: u32, depth: u32) -> Result<Value> {
        Ok(match kind {
            0 => Value::Int(self.bytes::<1>()?[0].into()),
            1 => Value::Int(i8::from_le_bytes(self.bytes()?).into()),
            2 => Value::Int(u16::from_le_bytes(self.bytes()?).into()),
            3 => Value::Int(i16::from_le_bytes(self.bytes()?).into()),
            4 => Value::Int(self.u32()?.into()),
            5 => Value::Int(i32::from_le_bytes(self.bytes()?).into()),
            6 => Value::Float(f32::from_le_bytes(self.bytes()?).into()),
            7 => Value::Bool(self.bytes::<1>()?[0] != 0),
            8 => Value::String(self.string()?),
            9 => {
                if depth > 0 {
                    return Err(invalid("nested metadata arrays are not supported".into()));
                }
                let element = self.u32()?;
                let n = self.count("array element")?;
                match fixed_size(element) {
                    Some(size) => self.skip(
                        n.checked_mul(size)
                            .ok_or_else(|| invalid("an array is impossibly large".into()))?,
                    )?,
                    None => {
                        for _ in 0..n {
                            self.value(element, depth + 1)?;
                        }
                    }
                }
                Value::Array(n)
            }
            10 => Value::Int(self.u64()?.into()),
            11 => Value::Int(i64::from_le_bytes(self.bytes()?).into()),
            12 => Value::Float(f64::from_le_bytes(self.bytes()?)),
            other => return Err(invalid(format!("unknown metadata value type {other}"))),
        })
    }
}

/// Byte size of a fixed-size metadata type.
fn fixed_size(kind: u32) -> Option<u64> {
    match kind {
        0 | 1 | 7 => Some(1),
        2 | 3 => Some(2),
        4..=6 => Some(4),
        10..=12 => Some(8),
        _ => None,
    }
}

/// llama.cpp's `llama_ftype` names.
fn file_type_name(t: u64) -> Option<&'static str> {
    Some(match t {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4",
        _ => return None,
    })
}

/// ggml tensor type names, for files without `general.file_type`.
fn tensor_type_name(t: u32) -> Option<&'static str> {
    Some(match t {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        6 => "Q5_0",
        7 => "Q5_1",
        8 => "Q8_0",
        10 => "Q2_K",
        11 => "Q3_K",
        12 => "Q4_K",
        13 => "Q5_K",
        14 => "Q6_K",
        30 => "BF16",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend((s.len() as u64).to_le_bytes());
        out.extend(s.as_bytes());
    }

    fn kv_string(out: &mut Vec<u8>, key: &str, value: &str) {
        string(out, key);
        out.extend(8u32.to_le_bytes());
        string(out, value);
    }

    /// A small but well-formed GGUF header: two tensors, a few keys, one string array.
    fn sample() -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(MAGIC);
        out.extend(3u32.to_le_bytes());
        out.extend(2u64.to_le_bytes()); // tensors
        out.extend(8u64.to_le_bytes()); // metadata entries
        kv_string(&mut out, "general.architecture", "llama");
        // Recommended sampling: a float32, an int32 and an out-of-range top-p (ignored).
        string(&mut out, "general.sampling.temp");
        out.extend(6u32.to_le_bytes());
        out.extend(0.5f32.to_le_bytes());
        string(&mut out, "general.sampling.top_k");
        out.extend(5u32.to_le_bytes());
        out.extend(20i32.to_le_bytes());
        string(&mut out, "general.sampling.top_p");
        out.extend(6u32.to_le_bytes());
        out.extend(5.0f32.to_le_bytes());
        kv_string(&mut out, "tokenizer.chat_template", "{{ messages }}");
        string(&mut out, "llama.context_length");
        out.extend(4u32.to_le_bytes());
        out.extend(8192u32.to_le_bytes());
        string(&mut out, "general.file_type");
        out.extend(4u32.to_le_bytes());
        out.extend(3u32.to_le_bytes());
        string(&mut out, "tokenizer.ggml.tokens");
        out.extend(9u32.to_le_bytes());
        out.extend(8u32.to_le_bytes());
        out.extend(2u64.to_le_bytes());
        string(&mut out, "a");
        string(&mut out, "b");
        for (name, dims) in [("w", vec![4u64, 8]), ("b", vec![8u64])] {
            string(&mut out, name);
            out.extend((dims.len() as u32).to_le_bytes());
            for d in dims {
                out.extend(d.to_le_bytes());
            }
            out.extend(3u32.to_le_bytes());
            out.extend(0u64.to_le_bytes());
        }
        out
    }

    fn read(bytes: &[u8]) -> Result<GgufHeader> {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(bytes).unwrap();
        GgufHeader::read(file.path())
    }

    #[test]
    fn reads_the_details_of_a_well_formed_header() {
        let header = read(&sample()).unwrap();
        assert_eq!(
            header.details().unwrap(),
            LanguageModelDetails {
                architecture: "llama".into(),
                name: None,
                parameters: 40,
                context_length: Some(8192),
                quantization: "Q4_1".into(),
                chat_template: true,
                gguf_version: 3,
                sampling: GenerationParams {
                    temperature: Some(0.5),
                    top_k: Some(20),
                    ..GenerationParams::default()
                },
            }
        );
        assert_eq!(header.metadata["tokenizer.ggml.tokens"], Value::Array(2));
    }

    #[test]
    fn every_truncation_is_refused_without_panicking() {
        let bytes = sample();
        for cut in 0..bytes.len() {
            assert!(read(&bytes[..cut]).is_err(), "accepted a cut at {cut}");
        }
    }

    /// Every input kept by the fuzzer (`fuzz/corpus/gguf_header`) or that once made it fail
    /// (`fuzz/artifacts/gguf_header`) is read or refused without a panic, the same way from bytes
    /// and from a file.
    #[test]
    fn fuzz_corpus_and_artifacts_are_read_or_refused() {
        let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
        let mut inputs = 0;
        for dir in ["corpus/gguf_header", "artifacts/gguf_header"] {
            let Ok(entries) = std::fs::read_dir(fuzz.join(dir)) else {
                assert!(dir.starts_with("artifacts"), "{dir} is missing");
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                let bytes = std::fs::read(&path).unwrap();
                let parsed = GgufHeader::parse(&bytes);
                let from_file = read(&bytes);
                match (&parsed, &from_file) {
                    (Ok(a), Ok(b)) => {
                        assert_eq!(a.version, b.version, "{path:?}");
                        assert_eq!(a.metadata, b.metadata, "{path:?}");
                        assert_eq!(a.parameters, b.parameters, "{path:?}");
                        let _ = a.details();
                    }
                    (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string(), "{path:?}"),
                    _ => panic!("{path:?}: parse and read disagree"),
                }
                inputs += 1;
            }
        }
        assert!(inputs > 0, "the fuzz corpus is empty");
    }

    #[test]
    fn absurd_lengths_are_refused() {
        let mut bytes = sample();
        // The first key's length, just after magic, version and the two counts.
        bytes[24..32].copy_from_slice(&u64::MAX.to_le_bytes());
        let err = read(&bytes).unwrap_err().to_string();
        assert!(err.contains("exceeds the file's size"), "{err}");
        let mut bytes = sample();
        bytes[4..8].copy_from_slice(&1u32.to_le_bytes());
        assert!(read(&bytes).unwrap_err().to_string().contains("version 1"));
    }

    /// A file's size bounds every count, but a big upload of tiny entries must not be kept
    /// whole: entry counts and the bytes of kept strings have their own caps.
    #[test]
    fn metadata_is_bounded_apart_from_the_file_size() {
        let mut bytes = sample();
        bytes[16..24].copy_from_slice(&(MAX_METADATA + 1).to_le_bytes());
        bytes.resize(MAX_METADATA as usize * 2, 0);
        let err = GgufHeader::parse(&bytes).unwrap_err().to_string();
        assert!(err.contains("metadata entries"), "{err}");

        let big = "x".repeat(MAX_STRING as usize - 16);
        let entries = MAX_METADATA_BYTES / big.len() + 1;
        let mut bytes = Vec::new();
        bytes.extend(MAGIC);
        bytes.extend(3u32.to_le_bytes());
        bytes.extend(0u64.to_le_bytes());
        bytes.extend((entries as u64).to_le_bytes());
        for i in 0..entries {
            kv_string(&mut bytes, &format!("k{i}"), &big);
        }
        let err = GgufHeader::parse(&bytes).unwrap_err().to_string();
        assert!(err.contains("bytes of keys and strings"), "{err}");
        // One entry fewer fits.
        bytes[16..24].copy_from_slice(&(entries as u64 - 1).to_le_bytes());
        assert_eq!(
            GgufHeader::parse(&bytes).unwrap().metadata.len(),
            entries - 1
        );
    }
}
