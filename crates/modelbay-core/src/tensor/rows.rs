//! Joining tensors along their first dimension and splitting them back: what the dynamic
//! batcher does with the inputs and outputs of merged requests.

use super::{Tensor, TensorData};
use crate::{error::invalid, Result};

/// Applies `$body` to the vectors of two values of the same variant, binding `$a` and `$b`;
/// `$mismatch` when the variants differ.
macro_rules! same_variant {
    ($x:expr, $y:expr, $a:ident, $b:ident => $body:expr, else $mismatch:expr) => {
        match ($x, $y) {
            (TensorData::Bool($a), TensorData::Bool($b)) => $body,
            (TensorData::Uint8($a), TensorData::Uint8($b)) => $body,
            (TensorData::Uint16($a), TensorData::Uint16($b)) => $body,
            (TensorData::Uint32($a), TensorData::Uint32($b)) => $body,
            (TensorData::Uint64($a), TensorData::Uint64($b)) => $body,
            (TensorData::Int8($a), TensorData::Int8($b)) => $body,
            (TensorData::Int16($a), TensorData::Int16($b)) => $body,
            (TensorData::Int32($a), TensorData::Int32($b)) => $body,
            (TensorData::Int64($a), TensorData::Int64($b)) => $body,
            (TensorData::Fp16($a), TensorData::Fp16($b)) => $body,
            (TensorData::Bf16($a), TensorData::Bf16($b)) => $body,
            (TensorData::Fp32($a), TensorData::Fp32($b)) => $body,
            (TensorData::Fp64($a), TensorData::Fp64($b)) => $body,
            (TensorData::Bytes($a), TensorData::Bytes($b)) => $body,
            _ => $mismatch,
        }
    };
}

impl Tensor {
    /// Joins `parts` along the first dimension into one tensor named `name`. Every part must
    /// have the same datatype and the same inner dimensions.
    pub fn concat_rows(name: impl Into<String>, parts: &[Tensor]) -> Result<Tensor> {
        let name = name.into();
        let Some(first) = parts.first() else {
            return Err(invalid!("no tensors to join into '{name}'"));
        };
        if first.shape.is_empty() {
            return Err(invalid!(
                "tensor '{name}' has no first dimension to join along"
            ));
        }
        let mut rows = 0usize;
        let mut data = first.data.clone();
        for (i, part) in parts.iter().enumerate() {
            if part.shape.len() != first.shape.len() || part.shape[1..] != first.shape[1..] {
                return Err(invalid!(
                    "part {i} of '{name}' has shape {:?}, which does not stack on {:?}",
                    part.shape,
                    first.shape
                ));
            }
            rows += part.shape[0];
            if i > 0 {
                same_variant!(&mut data, &part.data, out, more => out.extend_from_slice(more),
                else return Err(invalid!(
                    "part {i} of '{name}' is {}, not {}",
                    part.datatype(),
                    first.datatype()
                )));
            }
        }
        let mut shape = first.shape.clone();
        shape[0] = rows;
        Tensor::new(name, shape, data)
    }

    /// Splits the tensor along its first dimension into pieces of `rows` rows each; the counts
    /// must add up to the first dimension.
    pub fn split_rows(self, rows: &[usize]) -> Result<Vec<Tensor>> {
        let total: usize = rows.iter().sum();
        if self.shape.first() != Some(&total) {
            return Err(invalid!(
                "tensor '{}' has shape {:?}; it cannot be split into {total} rows",
                self.name,
                self.shape
            ));
        }
        let per_row: usize = self.shape[1..].iter().product();
        let (name, shape, data) = self.into_parts();
        let mut pieces = Vec::with_capacity(rows.len());
        let mut start = 0;
        for &n in rows {
            let range = start * per_row..(start + n) * per_row;
            let piece = with_fixed!(&data, v => TensorData::from_slice_of(v, range),
                bytes b => TensorData::from_slice_of(b, range));
            let mut piece_shape = shape.clone();
            piece_shape[0] = n;
            pieces.push(Tensor::new(name.clone(), piece_shape, piece)?);
            start += n;
        }
        Ok(pieces)
    }
}

/// A vector of elements that can become tensor data.
trait Elements: Clone {
    fn wrap(values: Vec<Self>) -> TensorData;
}

macro_rules! elements {
    ($($t:ty => $variant:ident),*) => {$(
        impl Elements for $t {
            fn wrap(values: Vec<Self>) -> TensorData {
                TensorData::$variant(values)
            }
        }
    )*};
}
elements!(bool => Bool, u8 => Uint8, u16 => Uint16, u32 => Uint32, u64 => Uint64, i8 => Int8,
    i16 => Int16, i32 => Int32, i64 => Int64, half::f16 => Fp16, half::bf16 => Bf16,
    f32 => Fp32, f64 => Fp64, Vec<u8> => Bytes);

impl TensorData {
    fn from_slice_of<T: Elements>(values: &[T], range: std::ops::Range<usize>) -> TensorData {
        T::wrap(values[range].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(shape: Vec<usize>, data: TensorData) -> Tensor {
        Tensor::new("x", shape, data).unwrap()
    }

    #[test]
    fn concat_then_split_gives_the_parts_back() {
        let a = t(vec![1, 2], TensorData::Fp32(vec![1.0, 2.0]));
        let b = t(vec![2, 2], TensorData::Fp32(vec![3.0, 4.0, 5.0, 6.0]));
        let joined = Tensor::concat_rows("x", &[a.clone(), b.clone()]).unwrap();
        assert_eq!(joined.shape(), &[3, 2]);
        assert_eq!(joined.split_rows(&[1, 2]).unwrap(), vec![a, b]);
        let s = t(
            vec![2],
            TensorData::Bytes(vec![b"a".to_vec(), b"bc".to_vec()]),
        );
        let joined = Tensor::concat_rows("x", &[s.clone(), s.clone()]).unwrap();
        assert_eq!(joined.split_rows(&[2, 2]).unwrap(), vec![s.clone(), s]);
    }

    #[test]
    fn parts_that_do_not_stack_are_refused() {
        let a = t(vec![1, 2], TensorData::Fp32(vec![1.0, 2.0]));
        let wide = t(vec![1, 3], TensorData::Fp32(vec![1.0; 3]));
        let ints = t(vec![1, 2], TensorData::Int64(vec![1, 2]));
        let scalar = t(vec![], TensorData::Fp32(vec![1.0]));
        assert!(Tensor::concat_rows("x", &[a.clone(), wide]).is_err());
        assert!(Tensor::concat_rows("x", &[a.clone(), ints]).is_err());
        assert!(Tensor::concat_rows("x", &[scalar]).is_err());
        assert!(Tensor::concat_rows("x", &[]).is_err());
        assert!(a.split_rows(&[2]).is_err());
    }
}
