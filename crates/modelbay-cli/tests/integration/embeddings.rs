//! Embedding models through `/v1/embeddings` and v2, with the real all-MiniLM-L6-v2 served by
//! both engines: candle (the safetensors folder) and ONNX Runtime (the same folder with an ONNX
//! export instead). Embeddings are compared with an independent float64 numpy implementation
//! (scripts/minilm_reference.py).

use std::path::PathBuf;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::common::{repo_root, run_cli, TestServer};

fn cached(variable: &str, default: &str) -> PathBuf {
    let path = std::env::var(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".cache/models").join(default));
    assert!(
        path.exists(),
        "{} is missing ({variable}): run scripts/fetch-models.sh",
        path.display()
    );
    path
}

/// The safetensors-only folder (served by candle).
fn minilm() -> String {
    cached("MODELBAY_MINILM", "all-MiniLM-L6-v2")
        .to_string_lossy()
        .into_owned()
}

/// The folder with `onnx/model.onnx` and no safetensors (served by ONNX Runtime).
pub fn minilm_onnx() -> String {
    cached("MODELBAY_MINILM_ONNX", "all-MiniLM-L6-v2-onnx")
        .to_string_lossy()
        .into_owned()
}

fn reference() -> Value {
    let path = cached("MODELBAY_MINILM_REFERENCE", "minilm-reference.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A server with both folders pushed through the CLI (which packs them): `minilm` (candle) and
/// `minilm-onnx` (ONNX Runtime).
async fn embedding_server(extra: &[&str]) -> TestServer {
    let mut args = vec!["--embed-threads", "1"];
    args.extend_from_slice(extra);
    let server = TestServer::start_with(&args).await;
    for (name, folder) in [("minilm", minilm()), ("minilm-onnx", minilm_onnx())] {
        let out = run_cli(&server, &["push", name, &folder]);
        assert!(out.contains("sentence-transformers"), "{out}");
    }
    server
}

fn vectors(body: &Value) -> Vec<Vec<f64>> {
    body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data in {body}"))
        .iter()
        .enumerate()
        .map(|(i, item)| {
            assert_eq!(item["object"], "embedding");
            assert_eq!(item["index"], i);
            item["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect()
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

async fn embed(server: &TestServer, model: &str, input: Value) -> Value {
    let (status, body) = server
        .post_json("/v1/embeddings", &json!({"model": model, "input": input}))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn both_engines_match_the_reference_implementation() {
    let server = embedding_server(&[]).await;
    let reference = reference();
    let sentences = reference["sentences"].clone();
    let expected: Vec<Vec<f64>> = serde_json::from_value(reference["embeddings"].clone()).unwrap();
    let token_counts: Vec<usize> =
        serde_json::from_value(reference["token_counts"].clone()).unwrap();
    assert!(expected.len() >= 20);

    for (model, engine) in [("minilm", "candle"), ("minilm-onnx", "onnxruntime")] {
        let (status, version) = server
            .get(&format!("/api/v1/models/{model}/versions/1"))
            .await;
        assert_eq!(status, 200, "{version}");
        assert_eq!(version["format"], "sentence-transformers");
        assert_eq!(version["details"]["engine"], engine);
        assert_eq!(version["details"]["dimensions"], 384);
        assert_eq!(version["details"]["max_tokens"], 256);
        assert_eq!(version["details"]["pooling"], json!(["mean"]));
        assert_eq!(version["details"]["normalize"], true);

        let body = embed(&server, model, sentences.clone()).await;
        assert_eq!(body["object"], "list");
        assert_eq!(body["model"], model);
        let got = vectors(&body);
        assert_eq!(got.len(), expected.len());
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert_eq!(g.len(), 384);
            let similarity = cosine(g, e);
            assert!(
                similarity >= 0.9999,
                "{model}: sentence {i} has cosine {similarity} with the reference"
            );
            let norm = g.iter().map(|x| x * x).sum::<f64>().sqrt();
            assert!(
                (norm - 1.0).abs() < 1e-4,
                "{model}: not normalised ({norm})"
            );
        }
        // Usage counts every token read, after truncation (one text has 334 and reads 256).
        let tokens: usize = token_counts.iter().sum();
        assert_eq!(body["usage"]["prompt_tokens"], tokens, "{model}");
        assert_eq!(body["usage"]["total_tokens"], tokens, "{model}");

        // Related sentences are closer than unrelated ones.
        let pairs = |key: &str| -> Vec<f64> {
            reference[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    let (a, b) = (p[0].as_u64().unwrap(), p[1].as_u64().unwrap());
                    cosine(&got[a as usize], &got[b as usize])
                })
                .collect()
        };
        let related = pairs("related_pairs");
        let unrelated = pairs("unrelated_pairs");
        let weakest = related.iter().cloned().fold(f64::INFINITY, f64::min);
        let strongest = unrelated.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        assert!(
            weakest > strongest + 0.2,
            "{model}: related {related:?} vs unrelated {unrelated:?}"
        );
    }
}

#[tokio::test]
async fn encodings_token_inputs_dimensions_and_v2_agree() {
    let server = embedding_server(&[]).await;
    let text = embed(&server, "minilm-onnx", json!("hello world")).await;
    let float = vectors(&text).remove(0);

    // base64: little-endian float32, the same numbers.
    let (status, body) = server
        .post_json(
            "/v1/embeddings",
            &json!({"model": "minilm-onnx", "input": ["hello world"], "encoding_format": "base64"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f64> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
        .collect();
    assert_eq!(decoded, float);

    // Token ids of the model's vocabulary ("hello" 7592, "world" 2088) get the same special
    // tokens as text.
    let tokens = embed(&server, "minilm-onnx", json!([7592, 2088])).await;
    assert!(cosine(&vectors(&tokens)[0], &float) > 0.999999);
    assert_eq!(
        tokens["usage"]["prompt_tokens"],
        text["usage"]["prompt_tokens"]
    );

    // The model's own dimensions may be asked for; others cannot be honoured.
    let (status, _) = server
        .post_json(
            "/v1/embeddings",
            &json!({"model": "minilm-onnx", "input": "hello world", "dimensions": 384}),
        )
        .await;
    assert_eq!(status, 200);

    // v2: a BYTES input `text`, an FP32 output `embedding` [n, 384].
    let (status, metadata) = server.get("/v2/models/minilm").await;
    assert_eq!(status, 200, "{metadata}");
    assert_eq!(metadata["platform"], "sentence_transformers");
    assert_eq!(metadata["inputs"][0]["name"], "text");
    assert_eq!(metadata["inputs"][0]["datatype"], "BYTES");
    assert_eq!(metadata["outputs"][0]["shape"], json!([-1, 384]));
    let (status, v2) = server
        .post_json(
            "/v2/models/minilm/infer",
            &json!({"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES",
                                "data": ["hello world", "A man is playing a guitar."]}]}),
        )
        .await;
    assert_eq!(status, 200, "{v2}");
    assert_eq!(v2["outputs"][0]["name"], "embedding");
    assert_eq!(v2["outputs"][0]["shape"], json!([2, 384]));
    let flat: Vec<f64> = serde_json::from_value(v2["outputs"][0]["data"].clone()).unwrap();
    let candle = vectors(&embed(&server, "minilm", json!("hello world")).await).remove(0);
    assert!(cosine(&flat[..384], &candle) > 0.999999);
    // The two engines agree with each other as well.
    assert!(cosine(&candle, &float) > 0.9999);

    // /v1/models lists embedding models.
    let ids = server.openai_model_ids().await;
    assert!(
        ids.iter().any(|id| id == "minilm") && ids.iter().any(|id| id == "minilm-onnx"),
        "{ids:?}"
    );
}

#[tokio::test]
async fn concurrent_requests_are_batched_without_changing_results() {
    // A delay makes requests from different clients share batches; lengths vary so batches
    // are padded.
    let server = embedding_server(&["--embed-max-delay-ms", "30"]).await;
    let reference = reference();
    let sentences: Vec<String> = serde_json::from_value(reference["sentences"].clone()).unwrap();
    for model in ["minilm", "minilm-onnx"] {
        let mut alone = Vec::new();
        for sentence in &sentences {
            alone.push(vectors(&embed(&server, model, json!(sentence)).await).remove(0));
        }
        let together = futures::future::join_all(
            sentences
                .iter()
                .map(|sentence| embed(&server, model, json!([sentence]))),
        )
        .await;
        for (i, body) in together.iter().enumerate() {
            let similarity = cosine(&vectors(body)[0], &alone[i]);
            assert!(
                similarity > 0.99999,
                "{model}: sentence {i} changed when batched ({similarity})"
            );
        }
    }
}

#[tokio::test]
async fn bad_requests_get_openai_errors() {
    let server = embedding_server(&["--embed-max-inputs", "4"]).await;
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({"model": "minilm", "input": ""}), 400, "empty string"),
        (json!({"model": "minilm", "input": []}), 400, "empty list"),
        (
            json!({"model": "minilm", "input": ["a", ""]}),
            400,
            "input[1]",
        ),
        (
            json!({"model": "minilm", "input": ["a", 7]}),
            400,
            "input[1]",
        ),
        (
            json!({"model": "minilm", "input": [[1], [true]]}),
            400,
            "token id",
        ),
        (
            json!({"model": "minilm", "input": [99999999]}),
            400,
            "vocabulary",
        ),
        (
            json!({"model": "minilm", "input": {"text": "a"}}),
            400,
            "object",
        ),
        (json!({"model": "minilm", "input": null}), 400, "null"),
        (json!({"model": "minilm"}), 400, "input"),
        (json!({"input": "a"}), 400, "model"),
        (
            json!({"model": "minilm", "input": ["a", "b", "c", "d", "e"]}),
            400,
            "limit is 4",
        ),
        (
            json!({"model": "minilm", "input": "a", "dimensions": 128}),
            400,
            "384-dimensional",
        ),
        (
            json!({"model": "minilm", "input": "a", "dimensions": 0}),
            400,
            "positive",
        ),
        (
            json!({"model": "minilm", "input": "a", "encoding_format": "int8"}),
            400,
            "encoding_format",
        ),
        (json!({"model": "nope", "input": "a"}), 404, "nope"),
        (json!({"model": "minilm@7", "input": "a"}), 404, "version"),
        (json!({"model": "bad name!", "input": "a"}), 400, ""),
    ];
    for (body, status, needle) in cases {
        let (got, error) = server.post_json("/v1/embeddings", &body).await;
        assert_eq!(got, status, "{body} -> {error}");
        let message = error["error"]["message"].as_str().unwrap_or_else(|| {
            panic!("{body}: not OpenAI's error shape: {error}");
        });
        assert!(error["error"]["type"].is_string(), "{error}");
        assert!(
            message.contains(needle),
            "{body}: '{message}' should mention '{needle}'"
        );
    }

    // An embedding model cannot chat; a tabular model cannot embed.
    let (status, error) = server
        .post_json(
            "/v1/chat/completions",
            &json!({"model": "minilm", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(status, 400, "{error}");
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("/v1/embeddings"));
    let (status, _) = server.push("lr", "breast_cancer_lr.onnx").await;
    assert_eq!(status, 201);
    let (status, error) = server
        .post_json("/v1/embeddings", &json!({"model": "lr", "input": "hi"}))
        .await;
    assert_eq!(status, 400, "{error}");
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not an embedding model"));

    // v2: a wrong datatype, and (binary extension) BYTES that are not UTF-8, are refused.
    let (status, error) = server
        .post_json(
            "/v2/models/minilm/infer",
            &json!({"inputs": [{"name": "text", "shape": [1], "datatype": "FP32", "data": [1.0]}]}),
        )
        .await;
    assert_eq!(status, 400, "{error}");
    let raw: &[u8] = &[2, 0, 0, 0, 0xff, 0xfe];
    let header = json!({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES",
                                    "parameters": {"binary_data_size": raw.len()}}]})
    .to_string();
    let mut body = header.clone().into_bytes();
    body.extend_from_slice(raw);
    let response = server
        .http
        .post(server.url("/v2/models/minilm/infer"))
        .header("inference-header-content-length", header.len())
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, error) = crate::common::status_and_json(response).await;
    assert_eq!(status, 400, "{error}");
    assert!(
        error["error"].as_str().unwrap().contains("UTF-8"),
        "{error}"
    );
    // v2 has the same limit on inputs per request as /v1/embeddings.
    let (status, error) = server
        .post_json(
            "/v2/models/minilm/infer",
            &json!({"inputs": [{"name": "text", "shape": [5], "datatype": "BYTES",
                                "data": ["a", "b", "c", "d", "e"]}]}),
        )
        .await;
    assert_eq!(status, 400, "{error}");
    assert!(
        error["error"].as_str().unwrap().contains("limit is 4"),
        "{error}"
    );
    embed(&server, "minilm", json!("still serving")).await;
}

/// A folder that is not a servable model, or an archive that tries to escape, is refused at
/// push and leaves no version behind.
#[tokio::test]
async fn unservable_folders_and_hostile_archives_are_refused_at_push() {
    let server = TestServer::start().await;
    let work = tempfile::tempdir().unwrap();
    let source = PathBuf::from(minilm());
    // A copy of the folder without its tokenizer.
    let broken = work.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    for name in ["config.json", "modules.json", "model.safetensors"] {
        std::fs::copy(source.join(name), broken.join(name)).unwrap();
    }
    let mut archive = Vec::new();
    modelbay_registry::bundle::pack(&broken, &mut archive).unwrap();
    let (status, body) = server.push_bytes("broken", "", archive).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("tokenizer.json"),
        "{body}"
    );
    // The refusal names the file, never where the server keeps it.
    let data_dir = server.data_dir.canonicalize().unwrap();
    assert!(
        !body.to_string().contains(data_dir.to_str().unwrap())
            && !body.to_string().contains(server.data_dir.to_str().unwrap()),
        "{body}"
    );

    // A tar entry that climbs out of the folder.
    let mut hostile = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(1);
    header.set_entry_type(tar::EntryType::Regular);
    header.as_gnu_mut().unwrap().name[..12].copy_from_slice(b"../escape.js");
    header.set_cksum();
    hostile.append(&header, &b"x"[..]).unwrap();
    let hostile = hostile.into_inner().unwrap();
    let (status, body) = server.push_bytes("hostile", "", hostile).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("outside"),
        "{body}"
    );
    let (status, _) = server.get("/api/v1/models/broken").await;
    assert_eq!(status, 404);
    let (status, _) = server.get("/api/v1/models/hostile").await;
    assert_eq!(status, 404);
}
