//! A tabular model's inputs seen as rows of numeric features: each numeric input of shape
//! `[-1]`, `[-1, 1]` or `[-1, F]` contributes its columns, in signature order. Drift statistics
//! and explanations work on these rows; [`FeatureLayout::tensors`] turns rows back into the
//! model's input tensors.

use modelbay_core::{DataType, Signature, Tensor, TensorData};

use crate::{Error, Result};

/// Most features a layout may have.
pub(crate) const MAX_FEATURES: usize = 1024;

/// One input's place in a row.
#[derive(Debug, Clone, PartialEq)]
struct Column {
    input: String,
    datatype: DataType,
    /// Shape after the batch dimension (`[]` or `[F]`).
    inner: Vec<usize>,
    width: usize,
}

/// How a model's inputs map to feature rows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FeatureLayout {
    columns: Vec<Column>,
}

fn numeric(datatype: DataType) -> bool {
    !matches!(datatype, DataType::Bytes | DataType::Bool)
}

impl FeatureLayout {
    /// The layout of a signature, or why it has none (a text input, an image, a fixed batch).
    pub(crate) fn of(signature: &Signature) -> Result<Self> {
        let refuse = |why: String| {
            Err(Error::Unsupported(format!(
                "{why}; reference data, drift and explanations need numeric inputs of shape \
                 [-1], [-1, 1] or [-1, F] (one row per request row)"
            )))
        };
        let mut columns = Vec::new();
        for spec in &signature.inputs {
            if !numeric(spec.datatype) {
                return refuse(format!("input {} is not numeric", spec.describe()));
            }
            let inner: Vec<usize> = match spec.shape.as_slice() {
                [-1] => Vec::new(),
                [-1, width] if *width > 0 => vec![*width as usize],
                _ => return refuse(format!("input {} is not tabular", spec.describe())),
            };
            let width = inner.first().copied().unwrap_or(1);
            columns.push(Column {
                input: spec.name.clone(),
                datatype: spec.datatype,
                inner,
                width,
            });
        }
        let layout = Self { columns };
        if layout.width() == 0 || layout.width() > MAX_FEATURES {
            return refuse(format!(
                "the model has {} features (at most {MAX_FEATURES})",
                layout.width()
            ));
        }
        Ok(layout)
    }

    /// Features per row.
    pub(crate) fn width(&self) -> usize {
        self.columns.iter().map(|c| c.width).sum()
    }

    /// Feature names: `input` for a one-column input, `input[j]` otherwise.
    pub(crate) fn default_names(&self) -> Vec<String> {
        self.columns
            .iter()
            .flat_map(|c| {
                (0..c.width).map(move |j| {
                    if c.inner.is_empty() || c.width == 1 {
                        c.input.clone()
                    } else {
                        format!("{}[{j}]", c.input)
                    }
                })
            })
            .collect()
    }

    /// The rows of validated inputs (in signature order).
    pub(crate) fn rows(&self, inputs: &[Tensor]) -> Result<Vec<Vec<f64>>> {
        self.rows_from(inputs, 0)
    }

    /// The rows of validated inputs from row `start` on.
    pub(crate) fn rows_from(&self, inputs: &[Tensor], start: usize) -> Result<Vec<Vec<f64>>> {
        let count = inputs
            .first()
            .and_then(|t| t.shape().first().copied())
            .unwrap_or(0);
        let start = start.min(count);
        let mut rows = vec![Vec::with_capacity(self.width()); count - start];
        for (column, tensor) in self.columns.iter().zip(inputs) {
            if tensor.name != column.input || tensor.shape().first() != Some(&count) {
                return Err(Error::Unsupported(format!(
                    "input '{}' does not have {count} rows like the first input",
                    tensor.name
                )));
            }
            let values = as_f64(tensor.data());
            let tail = values.get(start * column.width..).unwrap_or_default();
            for (row, chunk) in rows.iter_mut().zip(tail.chunks(column.width)) {
                row.extend_from_slice(chunk);
            }
        }
        Ok(rows)
    }

    /// Input tensors holding `rows` (values are cast to each input's datatype; integers are
    /// rounded).
    pub(crate) fn tensors(&self, rows: &[Vec<f64>]) -> Result<Vec<Tensor>> {
        let mut offset = 0;
        let mut tensors = Vec::with_capacity(self.columns.len());
        for column in &self.columns {
            let values: Vec<f64> = rows
                .iter()
                .flat_map(|row| row[offset..offset + column.width].iter().copied())
                .collect();
            offset += column.width;
            let mut shape = vec![rows.len()];
            shape.extend_from_slice(&column.inner);
            tensors.push(Tensor::new(
                column.input.clone(),
                shape,
                from_f64(column.datatype, values),
            )?);
        }
        Ok(tensors)
    }
}

/// Numeric tensor elements as f64 (empty for BYTES and BOOL, which layouts exclude).
pub(crate) fn as_f64(data: &TensorData) -> Vec<f64> {
    match data {
        TensorData::Uint8(v) => v.iter().map(|&x| f64::from(x)).collect(),
        TensorData::Uint16(v) => v.iter().map(|&x| f64::from(x)).collect(),
        TensorData::Uint32(v) => v.iter().map(|&x| f64::from(x)).collect(),
        TensorData::Uint64(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::Int8(v) => v.iter().map(|&x| f64::from(x)).collect(),
        TensorData::Int16(v) => v.iter().map(|&x| f64::from(x)).collect(),
        TensorData::Int32(v) => v.iter().map(|&x| f64::from(x)).collect(),
        TensorData::Int64(v) => v.iter().map(|&x| x as f64).collect(),
        TensorData::Fp16(v) => v.iter().map(|x| x.to_f64()).collect(),
        TensorData::Bf16(v) => v.iter().map(|x| x.to_f64()).collect(),
        TensorData::Fp32(v) => v.iter().map(|&x| f64::from(x)).collect(),
        TensorData::Fp64(v) => v.clone(),
        TensorData::Bool(_) | TensorData::Bytes(_) => Vec::new(),
    }
}

fn from_f64(datatype: DataType, values: Vec<f64>) -> TensorData {
    let ints = || values.iter().map(|x| x.round());
    match datatype {
        DataType::Uint8 => TensorData::Uint8(ints().map(|x| x as u8).collect()),
        DataType::Uint16 => TensorData::Uint16(ints().map(|x| x as u16).collect()),
        DataType::Uint32 => TensorData::Uint32(ints().map(|x| x as u32).collect()),
        DataType::Uint64 => TensorData::Uint64(ints().map(|x| x as u64).collect()),
        DataType::Int8 => TensorData::Int8(ints().map(|x| x as i8).collect()),
        DataType::Int16 => TensorData::Int16(ints().map(|x| x as i16).collect()),
        DataType::Int32 => TensorData::Int32(ints().map(|x| x as i32).collect()),
        DataType::Int64 => TensorData::Int64(ints().map(|x| x as i64).collect()),
        DataType::Fp16 => {
            TensorData::Fp16(values.iter().map(|&x| half::f16::from_f64(x)).collect())
        }
        DataType::Bf16 => {
            TensorData::Bf16(values.iter().map(|&x| half::bf16::from_f64(x)).collect())
        }
        DataType::Fp32 => TensorData::Fp32(values.iter().map(|&x| x as f32).collect()),
        DataType::Fp64 => TensorData::Fp64(values),
        // Layouts hold numeric inputs only.
        DataType::Bool | DataType::Bytes => TensorData::Fp64(values),
    }
}

#[cfg(test)]
mod tests {
    use modelbay_core::TensorSpec;

    use super::*;

    fn spec(name: &str, datatype: DataType, shape: &[i64]) -> TensorSpec {
        TensorSpec {
            name: name.into(),
            datatype,
            shape: shape.to_vec(),
        }
    }

    #[test]
    fn rows_and_tensors_round_trip_over_several_inputs() {
        let signature = Signature {
            inputs: vec![
                spec("a", DataType::Fp32, &[-1, 2]),
                spec("b", DataType::Int64, &[-1]),
            ],
            outputs: vec![],
        };
        let layout = FeatureLayout::of(&signature).unwrap();
        assert_eq!(layout.width(), 3);
        assert_eq!(layout.default_names(), ["a[0]", "a[1]", "b"]);
        let rows = vec![vec![1.5, 2.0, 3.0], vec![4.0, 5.5, 6.0]];
        let tensors = layout.tensors(&rows).unwrap();
        assert_eq!(tensors[0].shape(), &[2, 2]);
        assert_eq!(tensors[1].data(), &TensorData::Int64(vec![3, 6]));
        assert_eq!(layout.rows(&tensors).unwrap(), rows);
    }

    #[test]
    fn non_tabular_signatures_have_no_layout() {
        for input in [
            spec("t", DataType::Bytes, &[-1]),
            spec("img", DataType::Fp32, &[-1, 3, 224, 224]),
            spec("x", DataType::Fp32, &[1, 30]),
        ] {
            let signature = Signature {
                inputs: vec![input],
                outputs: vec![],
            };
            assert!(FeatureLayout::of(&signature).is_err());
        }
    }
}
