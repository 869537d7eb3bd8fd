//! Every kind of bad request gets a clear JSON error with the right status, and the server stays
//! healthy afterwards.

use serde_json::{json, Value};

use crate::common::{expected, TestServer};

const HEADER_LENGTH: &str = "inference-header-content-length";

struct Case {
    what: &'static str,
    method: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
    message: &'static str,
}

fn json_case(what: &'static str, body: Value, status: u16, message: &'static str) -> Case {
    Case {
        what,
        method: "POST",
        path: "/v2/models/bc/infer",
        headers: vec![],
        body: serde_json::to_vec(&body).unwrap(),
        status,
        message,
    }
}

fn raw_case(
    what: &'static str,
    path: &'static str,
    body: &[u8],
    status: u16,
    message: &'static str,
) -> Case {
    Case {
        what,
        method: "POST",
        path,
        headers: vec![],
        body: body.to_vec(),
        status,
        message,
    }
}

fn binary_case(
    what: &'static str,
    header: Value,
    raw: &[u8],
    header_len: Option<String>,
    message: &'static str,
) -> Case {
    let mut body = serde_json::to_vec(&header).unwrap();
    let len = header_len.unwrap_or_else(|| body.len().to_string());
    body.extend_from_slice(raw);
    Case {
        what,
        method: "POST",
        path: "/v2/models/bc/infer",
        headers: vec![(HEADER_LENGTH, len)],
        body,
        status: 400,
        message,
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn input(name: &str, datatype: &str, shape: Value, data: Value) -> Value {
    json!({ "inputs": [{ "name": name, "datatype": datatype, "shape": shape, "data": data }] })
}

fn cases() -> Vec<Case> {
    let row: Vec<f32> = vec![0.5; 30];
    let f32_bytes: Vec<u8> = row.iter().flat_map(|x| x.to_le_bytes()).collect();
    let gc = expected("german_credit");
    vec![
        raw_case("empty body", "/v2/models/bc/infer", b"", 400, "empty"),
        raw_case("garbage", "/v2/models/bc/infer", b"\x00\xffnot json", 400, "invalid inference request JSON"),
        raw_case("truncated JSON", "/v2/models/bc/infer", br#"{"inputs": [{"name": "input", "#, 400, "invalid inference request JSON"),
        raw_case("JSON array", "/v2/models/bc/infer", b"[]", 400, "invalid inference request JSON"),
        raw_case("no inputs field", "/v2/models/bc/infer", b"{}", 400, "missing field `inputs`"),
        json_case("no inputs", json!({ "inputs": [] }), 400, "missing input input (FP32 [-1, 30])"),
        json_case("wrong shape", input("input", "FP32", json!([1, 29]), json!(vec![0.5; 29])), 400, "has shape [1, 29]"),
        json_case("wrong rank", input("input", "FP32", json!([30]), json!(row)), 400, "has shape [30]"),
        json_case("too few values", input("input", "FP32", json!([1, 30]), json!(vec![0.5; 29])), 400, "has 29 elements in 'data' but its shape [1, 30] needs 30"),
        json_case("too many values", input("input", "FP32", json!([1, 30]), json!(vec![0.5; 31])), 400, "more than 30 elements"),
        json_case("wrong datatype", input("input", "INT64", json!([1, 30]), json!(vec![1; 30])), 400, "has datatype INT64 but the model expects"),
        json_case("unknown datatype", input("input", "FP33", json!([1, 30]), json!(row)), 400, "unknown datatype 'FP33'"),
        json_case("value of the wrong type", input("input", "FP32", json!([1, 1]), json!(["secret-value"])), 400, "element 0 is not a valid FP32 value"),
        json_case("unknown input", input("nope", "FP32", json!([1, 30]), json!(row)), 400, "unknown input 'nope'"),
        json_case(
            "duplicate input",
            json!({ "inputs": [
                { "name": "input", "datatype": "FP32", "shape": [1, 30], "data": row },
                { "name": "input", "datatype": "FP32", "shape": [1, 30], "data": row }
            ]}),
            400,
            "more than once",
        ),
        json_case(
            "unknown output",
            json!({ "inputs": [{ "name": "input", "datatype": "FP32", "shape": [1, 30], "data": row }], "outputs": [{ "name": "nope" }] }),
            400,
            "unknown output 'nope'",
        ),
        json_case("huge shape claim", input("input", "FP32", json!([4_000_000_000u64, 4_000_000_000u64]), json!(row)), 400, "claims more than"),
        json_case("negative dimension", input("input", "FP32", json!([-1, 30]), json!(row)), 400, "negative dimension -1"),
        json_case("fractional dimension", input("input", "FP32", json!([1.5, 30]), json!(row)), 400, "invalid inference request JSON"),
        json_case("no data", json!({ "inputs": [{ "name": "input", "datatype": "FP32", "shape": [1, 30] }] }), 400, "neither 'data' nor binary_data_size"),
        json_case("numeric id", json!({ "id": 7, "inputs": [] }), 400, "a value of the wrong type (expected a string)"),
        json_case(
            "classification extension",
            json!({ "inputs": [{ "name": "input", "datatype": "FP32", "shape": [1, 30], "data": row }], "outputs": [{ "name": "label", "parameters": { "classification": 2 } }] }),
            400,
            "classification extension",
        ),
        json_case(
            "inputs whose batch sizes disagree",
            json!({ "inputs": [
                { "name": "categorical", "datatype": "BYTES", "shape": [1, 5], "data": gc["inputs"][0]["data"].as_array().unwrap()[..5] },
                { "name": "numeric", "datatype": "FP32", "shape": [2, 4], "data": gc["inputs"][1]["data"].as_array().unwrap()[..8] }
            ]}),
            400,
            "the model failed on this input",
        )
        .at("/v2/models/gc/infer"),
        json_case("UINT8 out of range", input("in_uint8", "UINT8", json!([1, 1]), json!([300])), 400, "element 0 is not a valid UINT8 value")
            .at("/v2/models/types/infer"),
        json_case("BOOL given as a number", input("in_bool", "BOOL", json!([1, 1]), json!([1])), 400, "not a valid BOOL value")
            .at("/v2/models/types/infer"),
        binary_case(
            "header length beyond the body",
            json!({ "inputs": [] }),
            b"",
            Some("100000".into()),
            "Inference-Header-Content-Length is 100000",
        ),
        binary_case("header length not a number", json!({ "inputs": [] }), b"", Some("ten".into()), "is not a byte count"),
        binary_case(
            "binary size not matching the shape",
            json!({ "inputs": [{ "name": "input", "datatype": "FP32", "shape": [2, 30], "parameters": { "binary_data_size": 120 } }] }),
            &f32_bytes,
            None,
            "binary data holds 120 bytes but 60 FP32 elements need 240",
        ),
        binary_case(
            "binary size beyond the data",
            json!({ "inputs": [{ "name": "input", "datatype": "FP32", "shape": [1, 30], "parameters": { "binary_data_size": 240 } }] }),
            &f32_bytes,
            None,
            "claims 240 bytes of binary data but only 120 remain",
        ),
        binary_case(
            "trailing binary bytes",
            json!({ "inputs": [{ "name": "input", "datatype": "FP32", "shape": [1, 30], "parameters": { "binary_data_size": 120 } }] }),
            &[f32_bytes.clone(), vec![0; 8]].concat(),
            None,
            "8 bytes of binary data follow the JSON header but no input claims them",
        ),
        binary_case(
            "binary and JSON data together",
            json!({ "inputs": [{ "name": "input", "datatype": "FP32", "shape": [1, 30], "data": row, "parameters": { "binary_data_size": 120 } }] }),
            &f32_bytes,
            None,
            "has both 'data' and binary_data_size",
        ),
        binary_case(
            "negative binary size",
            json!({ "inputs": [{ "name": "input", "datatype": "FP32", "shape": [1, 30], "parameters": { "binary_data_size": -1 } }] }),
            &f32_bytes,
            None,
            "binary_data_size must be a non-negative integer",
        ),
        Case {
            what: "non-UTF-8 string",
            method: "POST",
            path: "/v2/models/gc/infer",
            headers: vec![],
            body: vec![],
            status: 400,
            message: "is not valid UTF-8",
        }
        .binary_bytes_input(),
        raw_case("oversized body", "/v2/models/bc/infer", &vec![b' '; 70_000], 413, "larger than the limit of 65536 bytes"),
        raw_case("unknown model", "/v2/models/nope/infer", b"{}", 404, "model 'nope' not found"),
        raw_case("unknown version", "/v2/models/bc/versions/7/infer", b"{}", 404, "model 'bc' has no version 7"),
        raw_case("invalid model name", "/v2/models/Bad.Name/infer", b"{}", 400, "invalid model name 'Bad.Name'"),
        raw_case("unknown alias", "/v2/models/bc/versions/one/infer", b"{}", 404, "model 'bc' has no alias 'one'"),
        raw_case("unknown inline alias", "/v2/models/bc@one/infer", b"{}", 404, "model 'bc' has no alias 'one'"),
        raw_case("invalid version", "/v2/models/bc/versions/-1/infer", b"{}", 400, "invalid version or alias '-1'"),
        raw_case("version given twice", "/v2/models/bc@1/versions/1/infer", b"{}", 400, "not both"),
        raw_case("version zero", "/v2/models/bc/versions/0/infer", b"{}", 400, "invalid model version '0'"),
        raw_case("unknown route", "/v2/nothing/here", b"", 404, "no route for POST /v2/nothing/here"),
        Case {
            what: "wrong method",
            method: "GET",
            path: "/v2/models/bc/infer",
            headers: vec![],
            body: vec![],
            status: 405,
            message: "GET is not allowed on /v2/models/bc/infer",
        },
        Case {
            what: "unsupported compression",
            method: "POST",
            path: "/v2/models/bc/infer",
            headers: vec![("content-encoding", "br".into())],
            body: b"\x1f\x8b".to_vec(),
            status: 415,
            message: "Content-Encoding 'br' is not supported",
        },
        Case {
            what: "corrupt gzip",
            method: "POST",
            path: "/v2/models/bc/infer",
            headers: vec![("content-encoding", "gzip".into())],
            body: b"\x1f\x8bnot really gzip".to_vec(),
            status: 400,
            message: "could not decompress the request body",
        },
        Case {
            what: "gzip that inflates past the limit",
            method: "POST",
            path: "/v2/models/bc/infer",
            headers: vec![("content-encoding", "gzip".into())],
            body: gzip(&vec![b' '; 1_000_000]),
            status: 413,
            message: "inflates to more than the limit of 65536 bytes",
        },
    ]
}

impl Case {
    fn at(mut self, path: &'static str) -> Self {
        self.path = path;
        self
    }

    /// A BYTES element that is not UTF-8, which ONNX string tensors cannot hold.
    fn binary_bytes_input(mut self) -> Self {
        let gc = expected("german_credit");
        let mut raw = Vec::new();
        for i in 0..5 {
            let s: &[u8] = if i == 2 { b"\xff\xfe" } else { b"x" };
            raw.extend((s.len() as u32).to_le_bytes());
            raw.extend(s);
        }
        let numeric: Vec<Value> = gc["inputs"][1]["data"].as_array().unwrap()[..4].to_vec();
        let header = json!({ "inputs": [
            { "name": "categorical", "datatype": "BYTES", "shape": [1, 5], "parameters": { "binary_data_size": raw.len() } },
            { "name": "numeric", "datatype": "FP32", "shape": [1, 4], "data": numeric }
        ]});
        let mut body = serde_json::to_vec(&header).unwrap();
        self.headers = vec![(HEADER_LENGTH, body.len().to_string())];
        body.extend(raw);
        self.body = body;
        self
    }
}

#[tokio::test]
async fn bad_requests_get_clear_json_errors_and_the_server_stays_healthy() {
    let server = TestServer::start_with(&["--max-request-bytes", "65536"]).await;
    assert_eq!(server.push("bc", "breast_cancer_lr.onnx").await.0, 201);
    assert_eq!(server.push("gc", "german_credit.onnx").await.0, 201);
    assert_eq!(server.push("types", "all_types_identity.onnx").await.0, 201);

    for case in cases() {
        let mut request = server
            .http
            .request(case.method.parse().unwrap(), server.url(case.path))
            .body(case.body.clone());
        for (name, value) in &case.headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{}: error body is not JSON: {text:?}", case.what));
        let message = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no error field in {body}", case.what));
        assert_eq!(status, case.status, "{}: {message}", case.what);
        assert!(
            message.contains(case.message),
            "{}: {message:?} should contain {:?}",
            case.what,
            case.message
        );
        // Error bodies name tensors and positions, never the values a client sent.
        assert!(!text.contains("secret"), "{}: {text}", case.what);
    }

    assert_eq!(server.get("/v2/health/live").await.0, 200);
    let (status, body) = server
        .post_json(
            "/v2/models/bc/infer",
            &json!({ "inputs": expected("breast_cancer_lr")["inputs"] }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}
