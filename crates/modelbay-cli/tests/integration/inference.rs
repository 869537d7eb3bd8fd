//! Every fixture model pushed through the API and run over HTTP, in JSON and binary form,
//! compared with the outputs Python onnxruntime gave for the same rows.

use reqwest::header::CONTENT_TYPE;
use serde_json::{json, Value};

use crate::{
    common::{expected, model_name, status_and_json, TestServer, FIXTURES},
    tensors::{assert_outputs_match, decode, encode, nest},
};

const HEADER_LENGTH: &str = "inference-header-content-length";

#[tokio::test]
async fn every_fixture_matches_its_expected_outputs_over_json() {
    let server = TestServer::start().await;
    server.push_all_fixtures().await;
    for name in FIXTURES {
        let fixture = expected(name);
        let request = json!({ "id": format!("req-{name}"), "inputs": fixture["inputs"] });
        let (status, body) = server
            .post_json(&format!("/v2/models/{}/infer", model_name(name)), &request)
            .await;
        assert_eq!(status, 200, "{name}: {body}");
        assert_eq!(body["model_name"], model_name(name));
        assert_eq!(body["model_version"], "1");
        assert_eq!(body["id"], format!("req-{name}"));
        assert_outputs_match(
            name,
            body["outputs"].as_array().unwrap(),
            fixture["outputs"].as_array().unwrap(),
        );
    }
}

#[tokio::test]
async fn nested_data_is_accepted_row_major() {
    let server = TestServer::start().await;
    let (status, _) = server.push("bc", "breast_cancer_lr.onnx").await;
    assert_eq!(status, 201);
    let fixture = expected("breast_cancer_lr");
    let mut input = fixture["inputs"][0].clone();
    input["data"] = nest(input["data"].as_array().unwrap(), &[5, 30]);
    let (status, body) = server
        .post_json(
            "/v2/models/bc/versions/1/infer",
            &json!({ "inputs": [input] }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_outputs_match(
        "nested",
        body["outputs"].as_array().unwrap(),
        fixture["outputs"].as_array().unwrap(),
    );
}

/// Builds a binary-extension request: JSON header, then each input's raw bytes.
fn binary_request(inputs: &[Value], header_extra: Value) -> (Vec<u8>, usize) {
    let mut raw = Vec::new();
    let described: Vec<Value> = inputs
        .iter()
        .map(|t| {
            let bytes = encode(
                t["datatype"].as_str().unwrap(),
                t["data"].as_array().unwrap(),
            );
            let entry = json!({
                "name": t["name"], "datatype": t["datatype"], "shape": t["shape"],
                "parameters": { "binary_data_size": bytes.len() },
            });
            raw.extend(bytes);
            entry
        })
        .collect();
    let mut header = json!({ "inputs": described });
    for (k, v) in header_extra.as_object().unwrap() {
        header[k] = v.clone();
    }
    let mut body = serde_json::to_vec(&header).unwrap();
    let header_len = body.len();
    body.extend(raw);
    (body, header_len)
}

/// Splits a binary-extension response into its JSON header and outputs with decoded data.
fn parse_binary_response(header_len: Option<usize>, body: &[u8]) -> (Value, Vec<Value>) {
    let header_len = header_len.unwrap_or(body.len());
    let mut header: Value = serde_json::from_slice(&body[..header_len]).unwrap();
    let mut rest = &body[header_len..];
    let outputs = header["outputs"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .map(|o| {
            if let Some(size) = o["parameters"]["binary_data_size"].as_u64() {
                let (raw, tail) = rest.split_at(size as usize);
                rest = tail;
                o["data"] = Value::Array(decode(o["datatype"].as_str().unwrap(), raw));
            }
            o.clone()
        })
        .collect();
    assert!(rest.is_empty(), "trailing bytes after binary outputs");
    (header, outputs)
}

async fn post_binary(
    server: &TestServer,
    path: &str,
    body: Vec<u8>,
    header_len: usize,
) -> (u16, Option<usize>, Vec<u8>) {
    let response = server
        .http
        .post(server.url(path))
        .header(HEADER_LENGTH, header_len)
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let header_len = response
        .headers()
        .get(HEADER_LENGTH)
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (status, header_len, response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn every_fixture_matches_its_expected_outputs_over_the_binary_extension() {
    let server = TestServer::start().await;
    server.push_all_fixtures().await;
    for name in FIXTURES {
        let fixture = expected(name);
        let (body, header_len) = binary_request(
            fixture["inputs"].as_array().unwrap(),
            json!({ "parameters": { "binary_data_output": true } }),
        );
        let path = format!("/v2/models/{}/infer", model_name(name));
        let (status, response_header_len, bytes) =
            post_binary(&server, &path, body, header_len).await;
        assert_eq!(status, 200, "{name}: {}", String::from_utf8_lossy(&bytes));
        assert!(
            response_header_len.is_some(),
            "{name}: binary outputs were asked for"
        );
        let (header, outputs) = parse_binary_response(response_header_len, &bytes);
        assert_eq!(header["model_name"], model_name(name));
        assert_outputs_match(name, &outputs, fixture["outputs"].as_array().unwrap());
    }
}

#[tokio::test]
async fn outputs_can_be_selected_and_mixed_between_json_and_binary() {
    let server = TestServer::start().await;
    assert_eq!(server.push("bc", "breast_cancer_lr.onnx").await.0, 201);
    let fixture = expected("breast_cancer_lr");
    let want = fixture["outputs"].as_array().unwrap();

    // Only `probabilities`, as JSON.
    let (status, body) = server
        .post_json(
            "/v2/models/bc/infer",
            &json!({ "inputs": fixture["inputs"], "outputs": [{ "name": "probabilities" }] }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_outputs_match("selected", body["outputs"].as_array().unwrap(), &want[1..]);

    // JSON input, `label` as binary and `probabilities` as JSON.
    let request = json!({
        "inputs": fixture["inputs"],
        "outputs": [
            { "name": "label", "parameters": { "binary_data": true } },
            { "name": "probabilities", "parameters": { "binary_data": false } }
        ]
    });
    let response = server
        .http
        .post(server.url("/v2/models/bc/infer"))
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-modelbay-model-version"], "1");
    let header_len = response
        .headers()
        .get(HEADER_LENGTH)
        .map(|v| v.to_str().unwrap().parse().unwrap());
    let bytes = response.bytes().await.unwrap();
    let (header, outputs) = parse_binary_response(header_len, &bytes);
    assert!(header["outputs"][0]["parameters"]["binary_data_size"].is_u64());
    assert!(header["outputs"][1]["data"].is_array());
    assert_outputs_match("mixed", &outputs, want);
}

#[tokio::test]
async fn health_metadata_and_readiness_follow_the_protocol() {
    let server = TestServer::start().await;
    assert_eq!(server.push("gc", "german_credit.onnx").await.0, 201);
    assert_eq!(server.push("gc", "german_credit.onnx").await.0, 201);

    assert_eq!(server.get("/v2/health/live").await.0, 200);
    assert_eq!(server.get("/v2/health/ready").await.0, 200);
    let (status, meta) = server.get("/v2").await;
    assert_eq!(status, 200);
    assert_eq!(meta["name"], "modelbay");
    assert!(meta["extensions"]
        .as_array()
        .unwrap()
        .contains(&json!("binary_tensor_data")));

    let (status, meta) = server.get("/v2/models/gc").await;
    assert_eq!(status, 200, "{meta}");
    assert_eq!(meta["versions"], json!(["1", "2"]));
    assert_eq!(meta["platform"], "onnxruntime_onnx");
    assert_eq!(
        meta["inputs"],
        json!([
            { "name": "categorical", "datatype": "BYTES", "shape": [-1, 5] },
            { "name": "numeric", "datatype": "FP32", "shape": [-1, 4] }
        ])
    );
    assert_eq!(
        meta["outputs"][0],
        json!({ "name": "label", "datatype": "INT64", "shape": [-1] })
    );
    assert_eq!(server.get("/v2/models/gc/versions/1").await.0, 200);

    let (status, ready) = server.get("/v2/models/gc/versions/2/ready").await;
    assert_eq!((status, ready["ready"].clone()), (200, json!(true)));
    assert_eq!(server.get("/v2/models/gc/ready").await.0, 200);
    assert_eq!(server.get("/v2/models/gc/versions/3/ready").await.0, 404);
    assert_eq!(server.get("/v2/models/nope/ready").await.0, 404);
}

#[tokio::test]
async fn requests_without_a_version_go_to_the_promoted_one_and_pinned_ones_stay_pinned() {
    let server = TestServer::start().await;
    assert_eq!(server.push("m", "breast_cancer_lr.onnx").await.0, 201);
    assert_eq!(server.push("m", "breast_cancer_rf.onnx").await.0, 201);
    // A second push serves nothing until it is promoted.
    server.promote("m", 2).await;
    let inputs = expected("breast_cancer_rf")["inputs"].clone();
    let (_, latest) = server
        .post_json("/v2/models/m/infer", &json!({ "inputs": inputs }))
        .await;
    assert_eq!(latest["model_version"], "2");
    assert_outputs_match(
        "latest",
        latest["outputs"].as_array().unwrap(),
        expected("breast_cancer_rf")["outputs"].as_array().unwrap(),
    );
    let (_, pinned) = server
        .post_json(
            "/v2/models/m/versions/1/infer",
            &json!({ "inputs": expected("breast_cancer_lr")["inputs"] }),
        )
        .await;
    assert_eq!(pinned["model_version"], "1");
    assert_outputs_match(
        "pinned",
        pinned["outputs"].as_array().unwrap(),
        expected("breast_cancer_lr")["outputs"].as_array().unwrap(),
    );
    let (status, _) = status_and_json(
        server
            .http
            .post(server.url("/v2/models/m/versions/9/infer"))
            .json(&json!({ "inputs": inputs }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn gzip_and_deflate_request_bodies_are_accepted() {
    use std::io::Write;
    let server = TestServer::start().await;
    assert_eq!(server.push("bc", "breast_cancer_lr.onnx").await.0, 201);
    let fixture = expected("breast_cancer_lr");
    let body = serde_json::to_vec(&json!({ "inputs": fixture["inputs"] })).unwrap();
    let gzip = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&body).unwrap();
        e.finish().unwrap()
    };
    let deflate = {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&body).unwrap();
        e.finish().unwrap()
    };
    for (encoding, compressed) in [("gzip", gzip.clone()), ("deflate", deflate), ("GZIP", gzip)] {
        let response = server
            .http
            .post(server.url("/v2/models/bc/infer"))
            .header("content-encoding", encoding)
            .body(compressed)
            .send()
            .await
            .unwrap();
        let (status, body) = status_and_json(response).await;
        assert_eq!(status, 200, "{encoding}: {body}");
        assert_outputs_match(
            encoding,
            body["outputs"].as_array().unwrap(),
            fixture["outputs"].as_array().unwrap(),
        );
    }
}

#[tokio::test]
async fn model_config_describes_the_signature_in_tritons_terms() {
    let server = TestServer::start().await;
    assert_eq!(server.push("gc", "german_credit.onnx").await.0, 201);
    let (status, config) = server.get("/v2/models/gc/config").await;
    assert_eq!(status, 200, "{config}");
    assert_eq!(config["platform"], "onnxruntime_onnx");
    assert_eq!(config["max_batch_size"], 0);
    assert_eq!(
        config["input"][0],
        json!({ "name": "categorical", "data_type": "TYPE_STRING", "dims": [-1, 5] })
    );
    assert_eq!(config["output"][1]["data_type"], "TYPE_FP32");
    assert_eq!(server.get("/v2/models/gc/versions/1/config").await.0, 200);
    assert_eq!(server.get("/v2/models/nope/config").await.0, 404);
}
