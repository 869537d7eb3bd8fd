//! An independent, test-side encoding of v2 tensors: JSON values to the binary tensor format and
//! back, and a comparison with a tolerance for floating-point outputs.

use half::{bf16, f16};
use serde_json::{json, Value};

/// Encodes the JSON `data` of a tensor in the binary tensor format.
pub fn encode(datatype: &str, data: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in data {
        match datatype {
            "BOOL" => out.push(v.as_bool().unwrap() as u8),
            "INT8" => out.extend((v.as_i64().unwrap() as i8).to_le_bytes()),
            "INT16" => out.extend((v.as_i64().unwrap() as i16).to_le_bytes()),
            "INT32" => out.extend((v.as_i64().unwrap() as i32).to_le_bytes()),
            "INT64" => out.extend(v.as_i64().unwrap().to_le_bytes()),
            "UINT8" => out.extend((v.as_u64().unwrap() as u8).to_le_bytes()),
            "UINT16" => out.extend((v.as_u64().unwrap() as u16).to_le_bytes()),
            "UINT32" => out.extend((v.as_u64().unwrap() as u32).to_le_bytes()),
            "UINT64" => out.extend(v.as_u64().unwrap().to_le_bytes()),
            "FP16" => out.extend(f16::from_f64(v.as_f64().unwrap()).to_le_bytes()),
            "BF16" => out.extend(bf16::from_f64(v.as_f64().unwrap()).to_le_bytes()),
            "FP32" => out.extend((v.as_f64().unwrap() as f32).to_le_bytes()),
            "FP64" => out.extend(v.as_f64().unwrap().to_le_bytes()),
            "BYTES" => {
                let s = v.as_str().unwrap().as_bytes();
                out.extend((s.len() as u32).to_le_bytes());
                out.extend(s);
            }
            other => panic!("unknown datatype {other}"),
        }
    }
    out
}

/// Decodes binary tensor data back to JSON values.
pub fn decode(datatype: &str, raw: &[u8]) -> Vec<Value> {
    fn chunks<const N: usize>(raw: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
        assert_eq!(
            raw.len() % N,
            0,
            "binary length {} is not a multiple of {N}",
            raw.len()
        );
        raw.chunks_exact(N).map(|c| c.try_into().unwrap())
    }
    match datatype {
        "BOOL" => raw.iter().map(|&b| json!(b != 0)).collect(),
        "INT8" => raw.iter().map(|&b| json!(b as i8)).collect(),
        "UINT8" => raw.iter().map(|&b| json!(b)).collect(),
        "INT16" => chunks::<2>(raw)
            .map(|c| json!(i16::from_le_bytes(c)))
            .collect(),
        "UINT16" => chunks::<2>(raw)
            .map(|c| json!(u16::from_le_bytes(c)))
            .collect(),
        "INT32" => chunks::<4>(raw)
            .map(|c| json!(i32::from_le_bytes(c)))
            .collect(),
        "UINT32" => chunks::<4>(raw)
            .map(|c| json!(u32::from_le_bytes(c)))
            .collect(),
        "INT64" => chunks::<8>(raw)
            .map(|c| json!(i64::from_le_bytes(c)))
            .collect(),
        "UINT64" => chunks::<8>(raw)
            .map(|c| json!(u64::from_le_bytes(c)))
            .collect(),
        "FP16" => chunks::<2>(raw)
            .map(|c| json!(f16::from_le_bytes(c).to_f64()))
            .collect(),
        "BF16" => chunks::<2>(raw)
            .map(|c| json!(bf16::from_le_bytes(c).to_f64()))
            .collect(),
        "FP32" => chunks::<4>(raw)
            .map(|c| json!(f32::from_le_bytes(c) as f64))
            .collect(),
        "FP64" => chunks::<8>(raw)
            .map(|c| json!(f64::from_le_bytes(c)))
            .collect(),
        "BYTES" => {
            let mut out = Vec::new();
            let mut rest = raw;
            while !rest.is_empty() {
                let len = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
                out.push(json!(String::from_utf8(rest[4..4 + len].to_vec()).unwrap()));
                rest = &rest[4 + len..];
            }
            out
        }
        other => panic!("unknown datatype {other}"),
    }
}

/// Asserts that `actual` outputs match `expected` ones: same names, datatypes and shapes; integers,
/// booleans and strings exactly; floats within 1e-5 (relative for large magnitudes).
pub fn assert_outputs_match(context: &str, actual: &[Value], expected: &[Value]) {
    assert_eq!(
        actual.len(),
        expected.len(),
        "{context}: output count in {actual:?}"
    );
    for want in expected {
        let name = want["name"].as_str().unwrap();
        let got = actual
            .iter()
            .find(|o| o["name"] == want["name"])
            .unwrap_or_else(|| panic!("{context}: output {name} missing"));
        assert_eq!(
            got["datatype"], want["datatype"],
            "{context}: {name} datatype"
        );
        assert_eq!(got["shape"], want["shape"], "{context}: {name} shape");
        let (got, want_data) = (
            got["data"].as_array().unwrap(),
            want["data"].as_array().unwrap(),
        );
        assert_eq!(got.len(), want_data.len(), "{context}: {name} length");
        let float = matches!(
            want["datatype"].as_str().unwrap(),
            "FP16" | "BF16" | "FP32" | "FP64"
        );
        for (i, (g, w)) in got.iter().zip(want_data).enumerate() {
            if float {
                let (g, w) = (g.as_f64().unwrap(), w.as_f64().unwrap());
                let tolerance = 1e-5 * w.abs().max(1.0);
                assert!(
                    (g - w).abs() <= tolerance,
                    "{context}: {name}[{i}] = {g}, expected {w}"
                );
            } else {
                assert_eq!(g, w, "{context}: {name}[{i}]");
            }
        }
    }
}

/// Reshapes flat data into nested arrays following `shape` (to exercise nested `data`).
pub fn nest(data: &[Value], shape: &[usize]) -> Value {
    match shape {
        [] | [_] => Value::Array(data.to_vec()),
        [_, inner @ ..] => {
            let step: usize = inner.iter().product();
            Value::Array(data.chunks(step.max(1)).map(|c| nest(c, inner)).collect())
        }
    }
}
