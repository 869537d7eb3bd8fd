use std::collections::HashSet;

use crate::{error::invalid, Result, Signature, Tensor, TensorSpec};

/// An inference request as a client sent it, decoded from its wire format but not yet checked
/// against any model.
#[derive(Debug, Clone, Default)]
pub struct InferRequest {
    /// Client-chosen id, echoed in the response.
    pub id: Option<String>,
    pub inputs: Vec<Tensor>,
    /// Names of the outputs wanted; empty means all of them.
    pub outputs: Vec<String>,
}

/// A request checked against a model's signature: every input present once with the right
/// datatype and a compatible shape, every requested output known. Only this type reaches an
/// engine.
#[derive(Debug, Clone)]
pub struct ValidInferRequest {
    pub id: Option<String>,
    /// Inputs in the order of the signature.
    pub inputs: Vec<Tensor>,
    /// Outputs to return, in the order requested (all, in signature order, when none were).
    pub outputs: Vec<String>,
}

impl ValidInferRequest {
    /// Checks `req` against `signature`.
    pub fn new(req: InferRequest, signature: &Signature) -> Result<Self> {
        let mut seen = HashSet::new();
        for t in &req.inputs {
            if !seen.insert(t.name.as_str()) {
                return Err(invalid!("input '{}' is given more than once", t.name));
            }
            let Some(spec) = signature.input(&t.name) else {
                return Err(invalid!(
                    "unknown input '{}'; the model's inputs are: {}",
                    t.name,
                    describe_all(&signature.inputs)
                ));
            };
            check_tensor(t, spec)?;
        }
        let mut inputs = req.inputs;
        let mut ordered = Vec::with_capacity(signature.inputs.len());
        for spec in &signature.inputs {
            let pos = inputs
                .iter()
                .position(|t| t.name == spec.name)
                .ok_or_else(|| invalid!("missing input {}", spec.describe()))?;
            ordered.push(inputs.swap_remove(pos));
        }

        let mut seen = HashSet::new();
        for name in &req.outputs {
            if !seen.insert(name.as_str()) {
                return Err(invalid!("output '{name}' is requested more than once"));
            }
            if signature.output(name).is_none() {
                return Err(invalid!(
                    "unknown output '{name}'; the model's outputs are: {}",
                    describe_all(&signature.outputs)
                ));
            }
        }
        let outputs = if req.outputs.is_empty() {
            signature.outputs.iter().map(|o| o.name.clone()).collect()
        } else {
            req.outputs
        };
        Ok(Self {
            id: req.id,
            inputs: ordered,
            outputs,
        })
    }
}

fn describe_all(specs: &[TensorSpec]) -> String {
    specs
        .iter()
        .map(TensorSpec::describe)
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_tensor(t: &Tensor, spec: &TensorSpec) -> Result<()> {
    if t.datatype() != spec.datatype {
        return Err(invalid!(
            "input '{}' has datatype {} but the model expects {}",
            t.name,
            t.datatype(),
            spec.describe()
        ));
    }
    let fits = t.shape().len() == spec.shape.len()
        && t.shape()
            .iter()
            .zip(&spec.shape)
            .all(|(&got, &want)| want < 0 || got as i64 == want);
    if !fits {
        return Err(invalid!(
            "input '{}' has shape {:?} but the model expects {}",
            t.name,
            t.shape(),
            spec.describe()
        ));
    }
    Ok(())
}

/// The outcome of an inference: which version answered, and the outputs asked for.
#[derive(Debug, Clone)]
pub struct InferResponse {
    pub model_name: String,
    pub model_version: u32,
    pub id: Option<String>,
    pub outputs: Vec<Tensor>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DataType, TensorData};

    fn signature() -> Signature {
        Signature {
            inputs: vec![
                TensorSpec {
                    name: "a".into(),
                    datatype: DataType::Fp32,
                    shape: vec![-1, 2],
                },
                TensorSpec {
                    name: "b".into(),
                    datatype: DataType::Int64,
                    shape: vec![-1],
                },
            ],
            outputs: vec![
                TensorSpec {
                    name: "y".into(),
                    datatype: DataType::Fp32,
                    shape: vec![-1],
                },
                TensorSpec {
                    name: "z".into(),
                    datatype: DataType::Fp32,
                    shape: vec![-1],
                },
            ],
        }
    }

    fn a(shape: Vec<usize>) -> Tensor {
        let n = shape.iter().product();
        Tensor::new("a", shape, TensorData::Fp32(vec![0.0; n])).unwrap()
    }

    fn b() -> Tensor {
        Tensor::new("b", vec![1], TensorData::Int64(vec![1])).unwrap()
    }

    fn check(inputs: Vec<Tensor>, outputs: &[&str]) -> Result<ValidInferRequest> {
        let req = InferRequest {
            id: None,
            inputs,
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
        };
        ValidInferRequest::new(req, &signature())
    }

    #[test]
    fn orders_inputs_by_signature_and_defaults_to_all_outputs() {
        let v = check(vec![b(), a(vec![1, 2])], &[]).unwrap();
        assert_eq!(v.inputs[0].name, "a");
        assert_eq!(v.outputs, vec!["y", "z"]);
        assert_eq!(
            check(vec![a(vec![3, 2]), b()], &["z"]).unwrap().outputs,
            vec!["z"]
        );
    }

    #[test]
    fn refuses_what_does_not_fit_the_signature() {
        let cases = [
            (check(vec![a(vec![1, 2])], &[]), "missing input b"),
            (check(vec![a(vec![1, 3]), b()], &[]), "has shape [1, 3]"),
            (check(vec![a(vec![2]), b()], &[]), "has shape [2]"),
            (check(vec![a(vec![1, 2]), b(), b()], &[]), "more than once"),
            (
                check(vec![a(vec![1, 2]), b()], &["nope"]),
                "unknown output 'nope'",
            ),
            (
                check(
                    vec![
                        a(vec![1, 2]),
                        Tensor::new("b", vec![1], TensorData::Fp32(vec![1.0])).unwrap(),
                    ],
                    &[],
                ),
                "datatype FP32",
            ),
            (
                check(
                    vec![
                        a(vec![1, 2]),
                        b(),
                        Tensor::new("c", vec![0], TensorData::Fp32(vec![])).unwrap(),
                    ],
                    &[],
                ),
                "unknown input 'c'",
            ),
        ];
        for (result, needle) in cases {
            let err = result.unwrap_err().to_string();
            assert!(err.contains(needle), "{err:?} should contain {needle:?}");
        }
    }
}
