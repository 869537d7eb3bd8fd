//! Finds tensors stored outside an ONNX file ("external data"). A pushed model is untrusted: an
//! external-data reference names a file that ONNX Runtime would read next to the model, so a
//! crafted model could pull server files into its weights. modelbay refuses such models itself,
//! whatever ONNX Runtime version is loaded, by walking the protobuf wire format of the parts of
//! a `ModelProto` that can hold tensors.

use crate::{Error, Result};

/// The message kinds that lead to tensors.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Model,
    Graph,
    Node,
    Attribute,
    Tensor,
    SparseTensor,
    Function,
    TrainingInfo,
}

/// Nesting (subgraphs in attributes in nodes in graphs) deeper than this is refused.
const MAX_DEPTH: usize = 64;

/// The sub-messages of `kind` worth entering, by field number.
fn child(kind: Kind, field: u64) -> Option<Kind> {
    use Kind::*;
    match (kind, field) {
        (Model, 7) => Some(Graph),
        (Model, 20) => Some(TrainingInfo),
        (Model, 25) => Some(Function),
        (TrainingInfo, 1) | (TrainingInfo, 2) => Some(Graph),
        (Graph, 1) => Some(Node),
        (Graph, 5) => Some(Tensor),
        (Graph, 15) => Some(SparseTensor),
        (Node, 5) => Some(Attribute),
        (Attribute, 5) | (Attribute, 10) => Some(Tensor),
        (Attribute, 6) | (Attribute, 11) => Some(Graph),
        (Attribute, 22) | (Attribute, 23) => Some(SparseTensor),
        (SparseTensor, 1) | (SparseTensor, 2) => Some(Tensor),
        (Function, 7) => Some(Node),
        (Function, 11) => Some(Attribute),
        _ => None,
    }
}

fn malformed() -> Error {
    Error::InvalidModel("not a valid ONNX model: the protobuf encoding is malformed".into())
}

fn varint(bytes: &[u8], at: &mut usize) -> Result<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at).ok_or_else(malformed)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(malformed())
}

/// Whether the message `bytes` of `kind` (or anything inside it) keeps data externally.
fn external(bytes: &[u8], kind: Kind, depth: usize) -> Result<bool> {
    if depth > MAX_DEPTH {
        return Err(Error::InvalidModel(
            "the ONNX model nests subgraphs too deeply".into(),
        ));
    }
    let mut at = 0;
    while at < bytes.len() {
        let key = varint(bytes, &mut at)?;
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                let value = varint(bytes, &mut at)?;
                // TensorProto.data_location = EXTERNAL (1).
                if matches!(kind, Kind::Tensor) && field == 14 && value == 1 {
                    return Ok(true);
                }
            }
            1 => at = at.checked_add(8).ok_or_else(malformed)?,
            5 => at = at.checked_add(4).ok_or_else(malformed)?,
            2 => {
                let len = usize::try_from(varint(bytes, &mut at)?).map_err(|_| malformed())?;
                let end = at
                    .checked_add(len)
                    .filter(|&e| e <= bytes.len())
                    .ok_or_else(malformed)?;
                // TensorProto.external_data entries.
                if matches!(kind, Kind::Tensor) && field == 13 {
                    return Ok(true);
                }
                if let Some(inner) = child(kind, field) {
                    if external(&bytes[at..end], inner, depth + 1)? {
                        return Ok(true);
                    }
                }
                at = end;
            }
            _ => return Err(malformed()),
        }
        if at > bytes.len() {
            return Err(malformed());
        }
    }
    Ok(false)
}

/// Refuses a model that keeps any tensor outside the file.
pub(crate) fn refuse_external_data(model: &[u8]) -> Result<()> {
    if external(model, Kind::Model, 0)? {
        return Err(Error::UnsupportedModel(
            "the ONNX model keeps tensors in external data files; modelbay serves self-contained \
             models only: save it with all tensors inside (onnx.save_model(m, path, \
             save_as_external_data=False))"
                .into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(number: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![((number << 3) | 2) as u8];
        out.push(payload.len() as u8);
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn external_tensors_are_found_anywhere_a_tensor_can_be() {
        let external_tensor =
            [field(13, &field(1, b"location")), vec![(14 << 3) as u8, 1]].concat();
        let in_graph = field(7, &field(5, &external_tensor));
        assert!(external(&in_graph, Kind::Model, 0).unwrap());
        // A tensor attribute of a node in a subgraph of a node.
        let nested = field(
            7,
            &field(
                1,
                &field(
                    5,
                    &field(6, &field(1, &field(5, &field(5, &external_tensor)))),
                ),
            ),
        );
        assert!(external(&nested, Kind::Model, 0).unwrap());
        let inline = field(7, &field(5, &field(9, b"weights")));
        assert!(!external(&inline, Kind::Model, 0).unwrap());
        assert!(
            external(&[0x3a, 0x7f], Kind::Model, 0).is_err(),
            "a length past the end"
        );
    }

    #[test]
    fn the_fixtures_are_self_contained() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
        for name in [
            "breast_cancer_lr.onnx",
            "diabetes_gbr.onnx",
            "all_types_identity.onnx",
        ] {
            let bytes = std::fs::read(dir.join(name)).unwrap();
            refuse_external_data(&bytes).unwrap();
        }
    }
}
