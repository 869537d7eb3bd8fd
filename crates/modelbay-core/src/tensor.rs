use half::{bf16, f16};
use serde::{ser::SerializeSeq, Serialize, Serializer};

use crate::{error::invalid, DataType, Error, Result};

/// Upper bound on the element count of one tensor: a request that claims more is refused before
/// anything is allocated.
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 31;

/// The elements of a tensor, flat and row-major, one variant per datatype.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    Bool(Vec<bool>),
    Uint8(Vec<u8>),
    Uint16(Vec<u16>),
    Uint32(Vec<u32>),
    Uint64(Vec<u64>),
    Int8(Vec<i8>),
    Int16(Vec<i16>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Fp16(Vec<f16>),
    Bf16(Vec<bf16>),
    Fp32(Vec<f32>),
    Fp64(Vec<f64>),
    Bytes(Vec<Vec<u8>>),
}

/// Applies `$body` to the vector inside any fixed-size variant, binding it to `$v`.
macro_rules! with_fixed {
    ($data:expr, $v:ident => $body:expr, bytes $b:ident => $bytes_body:expr) => {
        match $data {
            TensorData::Bool($v) => $body,
            TensorData::Uint8($v) => $body,
            TensorData::Uint16($v) => $body,
            TensorData::Uint32($v) => $body,
            TensorData::Uint64($v) => $body,
            TensorData::Int8($v) => $body,
            TensorData::Int16($v) => $body,
            TensorData::Int32($v) => $body,
            TensorData::Int64($v) => $body,
            TensorData::Fp16($v) => $body,
            TensorData::Bf16($v) => $body,
            TensorData::Fp32($v) => $body,
            TensorData::Fp64($v) => $body,
            TensorData::Bytes($b) => $bytes_body,
        }
    };
}

mod json;
mod rows;

pub use json::{decode_json_data, JsonDataError, JsonDataSeed};

/// Little-endian encoding of one fixed-size element.
trait LeBytes: Sized + Copy {
    const SIZE: usize;
    fn read(b: &[u8]) -> Self;
    fn write(self, out: &mut Vec<u8>);
}

macro_rules! impl_le {
    ($($t:ty),*) => {$(
        impl LeBytes for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn read(b: &[u8]) -> Self {
                <$t>::from_le_bytes(b.try_into().expect("chunk has the element size"))
            }
            fn write(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
impl_le!(u8, u16, u32, u64, i8, i16, i32, i64, f16, bf16, f32, f64);

impl LeBytes for bool {
    const SIZE: usize = 1;
    fn read(b: &[u8]) -> Self {
        b[0] != 0
    }
    fn write(self, out: &mut Vec<u8>) {
        out.push(self as u8);
    }
}

fn decode_fixed<T: LeBytes>(raw: &[u8]) -> Vec<T> {
    raw.chunks_exact(T::SIZE).map(T::read).collect()
}

fn encode_fixed<T: LeBytes>(values: &[T], out: &mut Vec<u8>) {
    out.reserve(values.len() * T::SIZE);
    for v in values {
        v.write(out);
    }
}

impl TensorData {
    /// The datatype of these elements.
    pub fn datatype(&self) -> DataType {
        match self {
            Self::Bool(_) => DataType::Bool,
            Self::Uint8(_) => DataType::Uint8,
            Self::Uint16(_) => DataType::Uint16,
            Self::Uint32(_) => DataType::Uint32,
            Self::Uint64(_) => DataType::Uint64,
            Self::Int8(_) => DataType::Int8,
            Self::Int16(_) => DataType::Int16,
            Self::Int32(_) => DataType::Int32,
            Self::Int64(_) => DataType::Int64,
            Self::Fp16(_) => DataType::Fp16,
            Self::Bf16(_) => DataType::Bf16,
            Self::Fp32(_) => DataType::Fp32,
            Self::Fp64(_) => DataType::Fp64,
            Self::Bytes(_) => DataType::Bytes,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        with_fixed!(self, v => v.len(), bytes b => b.len())
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decodes `count` elements of `dt` from the binary tensor encoding (little-endian; BYTES as
    /// 4-byte length-prefixed strings). The byte length must match exactly.
    pub fn from_raw(dt: DataType, raw: &[u8], count: usize) -> Result<Self> {
        if let Some(size) = dt.element_size() {
            let expected = count.saturating_mul(size);
            if raw.len() != expected {
                return Err(invalid!(
                    "binary data holds {} bytes but {count} {dt} elements need {expected}",
                    raw.len()
                ));
            }
        }
        Ok(match dt {
            DataType::Bool => Self::Bool(decode_fixed(raw)),
            DataType::Uint8 => Self::Uint8(raw.to_vec()),
            DataType::Uint16 => Self::Uint16(decode_fixed(raw)),
            DataType::Uint32 => Self::Uint32(decode_fixed(raw)),
            DataType::Uint64 => Self::Uint64(decode_fixed(raw)),
            DataType::Int8 => Self::Int8(decode_fixed(raw)),
            DataType::Int16 => Self::Int16(decode_fixed(raw)),
            DataType::Int32 => Self::Int32(decode_fixed(raw)),
            DataType::Int64 => Self::Int64(decode_fixed(raw)),
            DataType::Fp16 => Self::Fp16(decode_fixed(raw)),
            DataType::Bf16 => Self::Bf16(decode_fixed(raw)),
            DataType::Fp32 => Self::Fp32(decode_fixed(raw)),
            DataType::Fp64 => Self::Fp64(decode_fixed(raw)),
            DataType::Bytes => Self::Bytes(decode_length_prefixed(raw, count)?),
        })
    }

    /// Encodes the elements in the binary tensor encoding.
    pub fn to_raw(&self) -> Vec<u8> {
        let mut out = Vec::new();
        with_fixed!(self, v => encode_fixed(v, &mut out), bytes b => {
            for s in b {
                out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                out.extend_from_slice(s);
            }
        });
        out
    }
}

fn decode_length_prefixed(mut raw: &[u8], count: usize) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::with_capacity(count.min(raw.len() / 4));
    while !raw.is_empty() {
        let Some((len, rest)) = raw.split_first_chunk::<4>() else {
            return Err(invalid!(
                "BYTES element {} has a truncated 4-byte length prefix",
                out.len()
            ));
        };
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err(invalid!(
                "BYTES element {} claims {len} bytes but only {} remain",
                out.len(),
                rest.len()
            ));
        }
        out.push(rest[..len].to_vec());
        raw = &rest[len..];
    }
    if out.len() != count {
        return Err(invalid!(
            "binary BYTES data holds {} elements but the shape needs {count}",
            out.len()
        ));
    }
    Ok(out)
}

impl Serialize for TensorData {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        fn seq<S: Serializer, T, U: Serialize>(
            s: S,
            items: &[T],
            f: impl Fn(&T) -> U,
        ) -> std::result::Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(items.len()))?;
            for item in items {
                seq.serialize_element(&f(item))?;
            }
            seq.end()
        }
        match self {
            Self::Fp16(v) => seq(s, v, |x| x.to_f32()),
            Self::Bf16(v) => seq(s, v, |x| x.to_f32()),
            Self::Bytes(v) => seq(s, v, |b| String::from_utf8_lossy(b).into_owned()),
            Self::Bool(v) => v.serialize(s),
            Self::Uint8(v) => v.serialize(s),
            Self::Uint16(v) => v.serialize(s),
            Self::Uint32(v) => v.serialize(s),
            Self::Uint64(v) => v.serialize(s),
            Self::Int8(v) => v.serialize(s),
            Self::Int16(v) => v.serialize(s),
            Self::Int32(v) => v.serialize(s),
            Self::Int64(v) => v.serialize(s),
            Self::Fp32(v) => v.serialize(s),
            Self::Fp64(v) => v.serialize(s),
        }
    }
}

/// A named tensor whose element count always matches its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub name: String,
    shape: Vec<usize>,
    data: TensorData,
}

impl Tensor {
    /// Builds a tensor, checking that `data` holds exactly as many elements as `shape` claims.
    pub fn new(name: impl Into<String>, shape: Vec<usize>, data: TensorData) -> Result<Self> {
        let name = name.into();
        let expected = element_count(&shape)?;
        if data.len() != expected {
            return Err(invalid!(
                "tensor '{name}' has {} elements but its shape {shape:?} needs {expected}",
                data.len()
            ));
        }
        Ok(Self { name, shape, data })
    }

    /// Dimensions, outermost first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The elements, flat and row-major.
    pub fn data(&self) -> &TensorData {
        &self.data
    }

    /// Element type.
    pub fn datatype(&self) -> DataType {
        self.data.datatype()
    }

    /// Splits the tensor into its parts.
    pub fn into_parts(self) -> (String, Vec<usize>, TensorData) {
        (self.name, self.shape, self.data)
    }
}

/// Checks wire-format dimensions (no negatives, bounded product) and returns them as sizes.
pub fn parse_shape(name: &str, dims: &[i64]) -> Result<Vec<usize>, Error> {
    let shape = dims
        .iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| {
                invalid!("tensor '{name}' has a negative dimension {d} in shape {dims:?}")
            })
        })
        .collect::<Result<Vec<_>>>()?;
    element_count(&shape).map_err(|_| {
        invalid!("tensor '{name}' shape {dims:?} claims more than {MAX_TENSOR_ELEMENTS} elements")
    })?;
    Ok(shape)
}

/// Product of the dimensions, refusing overflow and absurd sizes.
pub fn element_count(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_TENSOR_ELEMENTS)
        .ok_or_else(|| invalid!("shape {shape:?} has more than {MAX_TENSOR_ELEMENTS} elements"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_round_trip_for_every_datatype() {
        let cases = [
            TensorData::Bool(vec![true, false]),
            TensorData::Uint8(vec![0, 255]),
            TensorData::Uint16(vec![1, u16::MAX]),
            TensorData::Uint32(vec![2, u32::MAX]),
            TensorData::Uint64(vec![3, u64::MAX]),
            TensorData::Int8(vec![-128, 127]),
            TensorData::Int16(vec![-1, i16::MAX]),
            TensorData::Int32(vec![-2, i32::MIN]),
            TensorData::Int64(vec![-3, i64::MIN]),
            TensorData::Fp16(vec![f16::from_f32(0.5), f16::from_f32(-2.25)]),
            TensorData::Bf16(vec![bf16::from_f32(1.0), bf16::from_f32(-8.0)]),
            TensorData::Fp32(vec![1.5, -0.25]),
            TensorData::Fp64(vec![1e300, -1e-300]),
            TensorData::Bytes(vec![b"h\xc3\xa9llo".to_vec(), Vec::new()]),
        ];
        for data in cases {
            let raw = data.to_raw();
            let back = TensorData::from_raw(data.datatype(), &raw, 2).unwrap();
            assert_eq!(back, data);
        }
    }

    #[test]
    fn raw_length_must_match_exactly() {
        assert!(TensorData::from_raw(DataType::Fp32, &[0; 7], 2).is_err());
        assert!(TensorData::from_raw(DataType::Fp32, &[0; 9], 2).is_err());
        // BYTES: a length prefix that runs past the end, a truncated prefix, a wrong count.
        assert!(TensorData::from_raw(DataType::Bytes, &[5, 0, 0, 0, b'a'], 1).is_err());
        assert!(TensorData::from_raw(DataType::Bytes, &[1, 0], 1).is_err());
        assert!(TensorData::from_raw(DataType::Bytes, &[1, 0, 0, 0, b'a'], 2).is_err());
    }

    #[test]
    fn shapes_refuse_negative_and_overflowing_dims() {
        assert!(parse_shape("x", &[-1, 3]).is_err());
        assert!(parse_shape("x", &[1 << 40, 1 << 40]).is_err());
        assert_eq!(parse_shape("x", &[2, 3]).unwrap(), vec![2, 3]);
        assert!(Tensor::new("x", vec![2, 2], TensorData::Fp32(vec![1.0; 3])).is_err());
    }
}
