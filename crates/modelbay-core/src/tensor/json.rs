//! Decoding of a v2 JSON `data` array straight into a typed buffer.
//!
//! The elements are read by a serde visitor while the JSON is parsed, so no `serde_json::Value`
//! tree is ever built: a request costs its body plus its typed tensor, and a shape that lies is
//! caught at the first element past what it claims. [`JsonDataSeed`] does this inside the parse
//! of the whole request (one pass over the body); [`decode_json_data`] does it for a `data`
//! value kept raw. Errors name positions and datatypes, never the values a client sent.

use std::fmt;

use half::{bf16, f16};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, SeqAccess, Visitor};

use super::TensorData;
use crate::DataType;

/// Why a `data` array could not be decoded. None of the variants carries a client's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonDataError {
    /// The array holds a different number of elements than the shape needs: `found` is the
    /// count, or `None` when there were more than the shape needs (reading stopped there).
    Count { found: Option<usize> },
    /// The element at this flat, row-major position is not a value of the datatype.
    Element { index: usize, datatype: DataType },
    /// The JSON itself is not usable (nested beyond serde_json's recursion limit, say).
    Malformed,
}

impl fmt::Display for JsonDataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Count { found: Some(n) } => write!(f, "'data' holds {n} elements"),
            Self::Count { found: None } => write!(f, "'data' holds more elements than that"),
            Self::Element { index, datatype } => {
                write!(f, "element {index} is not a valid {datatype} value")?;
                match datatype {
                    DataType::Bool => write!(f, " (use true or false)"),
                    DataType::Bytes => write!(f, " (use a string)"),
                    _ => Ok(()),
                }
            }
            Self::Malformed => write!(f, "'data' is not a (nested) JSON array of elements"),
        }
    }
}

impl std::error::Error for JsonDataError {}

/// Decodes `json` (a JSON value: nested arrays of elements, or one element) into exactly
/// `count` elements of `dt`, flattened row-major. Integers are range-checked; floats accept
/// any JSON number; BOOL takes only `true`/`false` and BYTES only strings.
pub fn decode_json_data(
    dt: DataType,
    json: &[u8],
    count: usize,
) -> Result<TensorData, JsonDataError> {
    Ok(match dt {
        DataType::Bool => TensorData::Bool(decode(json, count)?),
        DataType::Uint8 => TensorData::Uint8(decode(json, count)?),
        DataType::Uint16 => TensorData::Uint16(decode(json, count)?),
        DataType::Uint32 => TensorData::Uint32(decode(json, count)?),
        DataType::Uint64 => TensorData::Uint64(decode(json, count)?),
        DataType::Int8 => TensorData::Int8(decode(json, count)?),
        DataType::Int16 => TensorData::Int16(decode(json, count)?),
        DataType::Int32 => TensorData::Int32(decode(json, count)?),
        DataType::Int64 => TensorData::Int64(decode(json, count)?),
        DataType::Fp16 => TensorData::Fp16(decode(json, count)?),
        DataType::Bf16 => TensorData::Bf16(decode(json, count)?),
        DataType::Fp32 => TensorData::Fp32(decode(json, count)?),
        DataType::Fp64 => TensorData::Fp64(decode(json, count)?),
        DataType::Bytes => TensorData::Bytes(decode(json, count)?),
    })
}

/// Reads a `data` value while the JSON around it is parsed, into exactly `count` elements of
/// `datatype` (the rules of [`decode_json_data`]). A value that does not fit the datatype or
/// the count is read to its end and reported in the inner `Result`, so the enclosing document
/// still parses; only JSON that is not well-formed is an error of the deserializer.
#[derive(Debug, Clone, Copy)]
pub struct JsonDataSeed {
    pub datatype: DataType,
    pub count: usize,
    /// At most this many elements are reserved up front, whatever `count` claims (the body's
    /// length bounds how many elements it can hold).
    pub reserve: usize,
}

impl<'de> DeserializeSeed<'de> for JsonDataSeed {
    type Value = Result<TensorData, JsonDataError>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        let (count, reserve) = (self.count, self.reserve);
        Ok(match self.datatype {
            DataType::Bool => read(d, count, reserve)?.map(TensorData::Bool),
            DataType::Uint8 => read(d, count, reserve)?.map(TensorData::Uint8),
            DataType::Uint16 => read(d, count, reserve)?.map(TensorData::Uint16),
            DataType::Uint32 => read(d, count, reserve)?.map(TensorData::Uint32),
            DataType::Uint64 => read(d, count, reserve)?.map(TensorData::Uint64),
            DataType::Int8 => read(d, count, reserve)?.map(TensorData::Int8),
            DataType::Int16 => read(d, count, reserve)?.map(TensorData::Int16),
            DataType::Int32 => read(d, count, reserve)?.map(TensorData::Int32),
            DataType::Int64 => read(d, count, reserve)?.map(TensorData::Int64),
            DataType::Fp16 => read(d, count, reserve)?.map(TensorData::Fp16),
            DataType::Bf16 => read(d, count, reserve)?.map(TensorData::Bf16),
            DataType::Fp32 => read(d, count, reserve)?.map(TensorData::Fp32),
            DataType::Fp64 => read(d, count, reserve)?.map(TensorData::Fp64),
            DataType::Bytes => read(d, count, reserve)?.map(TensorData::Bytes),
        })
    }
}

fn read<'de, T: Element, D: Deserializer<'de>>(
    d: D,
    count: usize,
    reserve: usize,
) -> Result<Result<Vec<T>, JsonDataError>, D::Error> {
    let mut sink = Sink::new(count, reserve);
    Level(&mut sink).deserialize(d)?;
    Ok(sink.finish())
}

/// One element type and the JSON scalars it accepts; `None` refuses the scalar.
trait Element: Sized {
    const DATATYPE: DataType;
    fn from_bool(_: bool) -> Option<Self> {
        None
    }
    fn from_i64(_: i64) -> Option<Self> {
        None
    }
    fn from_u64(_: u64) -> Option<Self> {
        None
    }
    fn from_f64(_: f64) -> Option<Self> {
        None
    }
    fn from_str(_: &str) -> Option<Self> {
        None
    }
}

impl Element for bool {
    const DATATYPE: DataType = DataType::Bool;
    fn from_bool(b: bool) -> Option<Self> {
        Some(b)
    }
}

macro_rules! integer_elements {
    ($($t:ty => $dt:ident),*) => {$(
        impl Element for $t {
            const DATATYPE: DataType = DataType::$dt;
            fn from_i64(v: i64) -> Option<Self> {
                Self::try_from(v).ok()
            }
            fn from_u64(v: u64) -> Option<Self> {
                Self::try_from(v).ok()
            }
        }
    )*};
}
integer_elements!(u8 => Uint8, u16 => Uint16, u32 => Uint32, u64 => Uint64,
    i8 => Int8, i16 => Int16, i32 => Int32, i64 => Int64);

macro_rules! float_elements {
    ($($t:ty => $dt:ident, $from:expr),*) => {$(
        impl Element for $t {
            const DATATYPE: DataType = DataType::$dt;
            fn from_i64(v: i64) -> Option<Self> {
                Some($from(v as f64))
            }
            fn from_u64(v: u64) -> Option<Self> {
                Some($from(v as f64))
            }
            fn from_f64(v: f64) -> Option<Self> {
                Some($from(v))
            }
        }
    )*};
}
/// JSON numbers are read as f64 and rounded to the nearest FP32.
fn narrow_f32(v: f64) -> f32 {
    v as f32
}

fn same_f64(v: f64) -> f64 {
    v
}

float_elements!(f16 => Fp16, f16::from_f64, bf16 => Bf16, bf16::from_f64,
    f32 => Fp32, narrow_f32, f64 => Fp64, same_f64);

impl Element for Vec<u8> {
    const DATATYPE: DataType = DataType::Bytes;
    fn from_str(s: &str) -> Option<Self> {
        Some(s.as_bytes().to_vec())
    }
}

/// Where elements go while the JSON is read, and the first reason they do not fit, if any
/// (after which the rest of the value is read and dropped).
struct Sink<T> {
    out: Vec<T>,
    count: usize,
    failure: Option<JsonDataError>,
}

impl<T: Element> Sink<T> {
    fn new(count: usize, reserve: usize) -> Self {
        Self {
            out: Vec::with_capacity(count.min(reserve)),
            count,
            failure: None,
        }
    }

    fn push(&mut self, element: Option<T>) {
        if self.failure.is_some() {
            return;
        }
        if self.out.len() == self.count {
            self.failure = Some(JsonDataError::Count { found: None });
        } else if let Some(element) = element {
            self.out.push(element);
        } else {
            self.failure = Some(JsonDataError::Element {
                index: self.out.len(),
                datatype: T::DATATYPE,
            });
        }
    }

    fn finish(self) -> Result<Vec<T>, JsonDataError> {
        if let Some(failure) = self.failure {
            return Err(failure);
        }
        if self.out.len() != self.count {
            return Err(JsonDataError::Count {
                found: Some(self.out.len()),
            });
        }
        Ok(self.out)
    }
}

fn decode<T: Element>(json: &[u8], count: usize) -> Result<Vec<T>, JsonDataError> {
    // Each element takes at least two bytes ("0,"), so the body bounds the reservation even
    // when the shape claims far more.
    let mut sink = Sink::new(count, json.len() / 2 + 1);
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let parsed = Level(&mut sink)
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end());
    if parsed.is_err() {
        return Err(sink.failure.unwrap_or(JsonDataError::Malformed));
    }
    sink.finish()
}

/// One level of nesting: an array recurses, a scalar becomes the next element.
struct Level<'s, T>(&'s mut Sink<T>);

impl<'de, T: Element> DeserializeSeed<'de> for Level<'_, T> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, T: Element> Visitor<'de> for Level<'_, T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a nested array of {} elements", T::DATATYPE)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Level(&mut *self.0))?.is_some() {}
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.0.push(T::from_bool(v));
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.0.push(T::from_i64(v));
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.0.push(T::from_u64(v));
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.0.push(T::from_f64(v));
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.push(T::from_str(v));
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.0.push(None);
        Ok(())
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.0.push(None);
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_str(dt: DataType, json: &str, count: usize) -> Result<TensorData, JsonDataError> {
        decode_json_data(dt, json.as_bytes(), count)
    }

    #[test]
    fn nested_arrays_flatten_row_major() {
        let data = decode_str(DataType::Fp32, "[[1, 2.5], [-3, 4e2]]", 4).unwrap();
        assert_eq!(data, TensorData::Fp32(vec![1.0, 2.5, -3.0, 400.0]));
        let data = decode_str(DataType::Int64, " 7 ", 1).unwrap();
        assert_eq!(data, TensorData::Int64(vec![7]));
        let data = decode_str(DataType::Bytes, r#"["a\u00e9", ""]"#, 2).unwrap();
        assert_eq!(data, TensorData::Bytes(vec!["aé".into(), Vec::new()]));
        let data = decode_str(DataType::Bool, "[[true], [false]]", 2).unwrap();
        assert_eq!(data, TensorData::Bool(vec![true, false]));
    }

    #[test]
    fn integers_are_range_checked() {
        let err = decode_str(DataType::Uint8, "[1, 300]", 2).unwrap_err();
        assert_eq!(
            err,
            JsonDataError::Element {
                index: 1,
                datatype: DataType::Uint8
            }
        );
        assert!(decode_str(DataType::Uint16, "[1, 300]", 2).is_ok());
        assert!(decode_str(DataType::Uint64, "[-1]", 1).is_err());
        assert!(decode_str(DataType::Int32, "[1.0]", 1).is_err());
        assert_eq!(
            decode_str(DataType::Uint64, "[18446744073709551615]", 1).unwrap(),
            TensorData::Uint64(vec![u64::MAX])
        );
        assert_eq!(
            decode_str(DataType::Int8, "[-128, 127]", 2).unwrap(),
            TensorData::Int8(vec![-128, 127])
        );
    }

    #[test]
    fn wrong_kinds_of_scalar_are_refused_by_position() {
        for (dt, json) in [
            (DataType::Fp32, r#"[1, "2"]"#),
            (DataType::Fp32, "[1, null]"),
            (DataType::Fp32, "[1, {}]"),
            (DataType::Bool, "[true, 1]"),
            (DataType::Bytes, r#"["a", 1]"#),
        ] {
            let err = decode_str(dt, json, 2).unwrap_err();
            assert_eq!(
                err,
                JsonDataError::Element {
                    index: 1,
                    datatype: dt
                },
                "{json}"
            );
        }
    }

    #[test]
    fn counts_that_differ_from_the_shape_are_refused() {
        assert_eq!(
            decode_str(DataType::Fp32, "[1, 2]", 3).unwrap_err(),
            JsonDataError::Count { found: Some(2) }
        );
        assert_eq!(
            decode_str(DataType::Fp32, "[[1, 2], [3]]", 2).unwrap_err(),
            JsonDataError::Count { found: None }
        );
        assert_eq!(
            decode_str(DataType::Fp32, "[]", 0).unwrap(),
            TensorData::Fp32(Vec::new())
        );
    }

    #[test]
    fn a_huge_claimed_count_reserves_only_what_the_body_can_hold() {
        let err = decode_str(DataType::Fp64, "[1]", 1 << 31).unwrap_err();
        assert_eq!(err, JsonDataError::Count { found: Some(1) });
    }

    #[test]
    fn deep_nesting_and_trailing_bytes_are_malformed() {
        let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(
            decode_str(DataType::Fp32, &deep, 1).unwrap_err(),
            JsonDataError::Malformed
        );
        assert_eq!(
            decode_str(DataType::Fp32, "[1] [2]", 1).unwrap_err(),
            JsonDataError::Malformed
        );
    }

    #[test]
    fn error_messages_never_contain_the_values() {
        let err = decode_str(DataType::Bytes, r#"["secret-value", 31337]"#, 2).unwrap_err();
        let message = err.to_string();
        assert!(!message.contains("31337"), "{message}");
        assert_eq!(
            message,
            "element 1 is not a valid BYTES value (use a string)"
        );
    }
}
