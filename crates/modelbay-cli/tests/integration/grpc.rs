//! The gRPC face, from a tonic client against the real server: every RPC, both tensor
//! encodings, streaming with several requests in flight, health, reflection, metrics with
//! `protocol="grpc"`, and the error catalogue as gRPC codes.

use std::collections::HashMap;

use modelbay_server::grpc::proto::{
    self,
    grpc_inference_service_client::GrpcInferenceServiceClient,
    model_infer_request::{InferInputTensor, InferRequestedOutputTensor},
    InferTensorContents, ModelInferRequest,
};
use serde_json::{json, Value};
use tonic::{transport::Channel, Code};

use crate::{
    clients::{typed_request, BearerKey},
    common::{expected, TestServer},
    prom::scrape,
    tensors::{assert_outputs_match, decode, encode},
};

pub type Client =
    GrpcInferenceServiceClient<tonic::service::interceptor::InterceptedService<Channel, BearerKey>>;

/// A client that sends `key` (none when empty).
pub async fn client_with_key(server: &TestServer, key: &str) -> Client {
    let channel = Channel::from_shared(server.grpc_url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    GrpcInferenceServiceClient::with_interceptor(channel, BearerKey::new(key))
}

/// A client with the server's admin key.
async fn client(server: &TestServer) -> Client {
    client_with_key(server, &server.admin_key).await
}

/// The fixture's v2 JSON inputs as a raw (binary) gRPC request.
fn raw_request(model: &str, inputs: &[Value]) -> ModelInferRequest {
    let mut request = ModelInferRequest {
        model_name: model.into(),
        ..Default::default()
    };
    for input in inputs {
        let datatype = input["datatype"].as_str().unwrap();
        request.inputs.push(InferInputTensor {
            name: input["name"].as_str().unwrap().into(),
            datatype: datatype.into(),
            shape: shape(input),
            ..Default::default()
        });
        request
            .raw_input_contents
            .push(encode(datatype, input["data"].as_array().unwrap()));
    }
    request
}

fn shape(tensor: &Value) -> Vec<i64> {
    tensor["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_i64().unwrap())
        .collect()
}

/// A response's outputs as v2 JSON values, from raw or typed contents.
fn outputs_json(response: &proto::ModelInferResponse) -> Vec<Value> {
    response
        .outputs
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let data: Vec<Value> = match (&o.contents, response.raw_output_contents.get(i)) {
                (_, Some(raw)) => decode(&o.datatype, raw),
                (Some(c), None) => match o.datatype.as_str() {
                    "INT64" => c.int64_contents.iter().map(|v| json!(v)).collect(),
                    "FP32" => c.fp32_contents.iter().map(|v| json!(v)).collect(),
                    other => panic!("unexpected typed output {other}"),
                },
                (None, None) => panic!("output {} has no data", o.name),
            };
            json!({"name": o.name, "datatype": o.datatype, "shape": o.shape, "data": data})
        })
        .collect()
}

async fn server_with_models(extra: &[&str]) -> TestServer {
    let server = TestServer::start_with(extra).await;
    for (name, file) in [
        ("bc", "breast_cancer_lr.onnx"),
        ("types", "all_types_identity.onnx"),
        ("bf16", "bf16_identity.onnx"),
    ] {
        assert_eq!(server.push(name, file).await.0, 201, "push {name}");
    }
    server
}

#[tokio::test]
async fn every_rpc_answers_like_the_http_api() {
    let server = server_with_models(&[]).await;
    let mut grpc = client(&server).await;

    assert!(
        grpc.server_live(proto::ServerLiveRequest {})
            .await
            .unwrap()
            .into_inner()
            .live
    );
    assert!(
        grpc.server_ready(proto::ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let metadata = grpc
        .server_metadata(proto::ServerMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(metadata.name, "modelbay");
    assert!(metadata.extensions.contains(&"model_repository".to_owned()));

    let ready = |name: &str, version: &str| proto::ModelReadyRequest {
        name: name.into(),
        version: version.into(),
    };
    assert!(
        grpc.model_ready(ready("bc", ""))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    assert!(
        grpc.model_ready(ready("bc", "1"))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    // As Triton: an unknown model is not ready, without an error.
    assert!(
        !grpc
            .model_ready(ready("nope", ""))
            .await
            .unwrap()
            .into_inner()
            .ready
    );

    let model = grpc
        .model_metadata(proto::ModelMetadataRequest {
            name: "bc".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let (_, http) = server.get("/v2/models/bc").await;
    assert_eq!(model.name, "bc");
    assert_eq!(model.versions, ["1"]);
    assert_eq!(model.platform, http["platform"].as_str().unwrap());
    assert_eq!(model.inputs[0].name, "input");
    assert_eq!(model.inputs[0].datatype, "FP32");
    assert_eq!(model.inputs[0].shape, [-1, 30]);
    assert_eq!(model.outputs.len(), 2);

    let config = grpc
        .model_config(proto::ModelConfigRequest {
            name: "bc".into(),
            version: "1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    assert_eq!(config.name, "bc");
    assert_eq!(config.max_batch_size, 0);
    assert_eq!(config.input[0].dims, [-1, 30]);
    assert_eq!(config.input[0].data_type, proto::DataType::TypeFp32 as i32);

    // Typed contents in, typed contents out; raw in, raw out; both match the fixture.
    let case = expected("breast_cancer_lr");
    let want = case["outputs"].as_array().unwrap();
    let typed = grpc
        .model_infer(typed_request("bc"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(typed.id, "typed-1");
    assert_eq!(typed.model_version, "1");
    assert!(typed.raw_output_contents.is_empty());
    assert_outputs_match("typed", &outputs_json(&typed), want);
    let raw = grpc
        .model_infer(raw_request("bc", case["inputs"].as_array().unwrap()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(raw.raw_output_contents.len(), 2);
    assert_outputs_match("raw", &outputs_json(&raw), want);

    // Every datatype, raw: FP16, BF16 and BYTES (length-prefixed) included.
    for fixture in ["all_types_identity", "bf16_identity"] {
        let case = expected(fixture);
        let model = if fixture == "bf16_identity" {
            "bf16"
        } else {
            "types"
        };
        let answer = grpc
            .model_infer(raw_request(model, case["inputs"].as_array().unwrap()))
            .await
            .unwrap()
            .into_inner();
        assert_outputs_match(
            fixture,
            &outputs_json(&answer),
            case["outputs"].as_array().unwrap(),
        );
    }

    // Requested outputs only; the version as an alias.
    server.promote("bc", 1).await;
    let mut only_label = typed_request("bc");
    only_label.model_version = "production".into();
    only_label.outputs = vec![InferRequestedOutputTensor {
        name: "label".into(),
        ..Default::default()
    }];
    let labels = grpc.model_infer(only_label).await.unwrap().into_inner();
    assert_eq!(labels.outputs.len(), 1);
    assert_eq!(labels.outputs[0].name, "label");

    // Repository and statistics.
    let index = grpc
        .repository_index(proto::RepositoryIndexRequest {
            repository_name: String::new(),
            ready: false,
        })
        .await
        .unwrap()
        .into_inner();
    let states: HashMap<String, String> = index
        .models
        .into_iter()
        .map(|m| (format!("{}@{}", m.name, m.version), m.state))
        .collect();
    assert_eq!(states["bc@1"], "READY");
    grpc.repository_model_unload(proto::RepositoryModelUnloadRequest {
        repository_name: String::new(),
        model_name: "types".into(),
        parameters: HashMap::new(),
    })
    .await
    .unwrap();
    let (_, http_index) = server.post_json("/v2/repository/index", &json!({})).await;
    let types = http_index
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "types")
        .unwrap();
    assert_eq!(types["state"], "UNAVAILABLE");
    grpc.repository_model_load(proto::RepositoryModelLoadRequest {
        repository_name: String::new(),
        model_name: "types".into(),
        parameters: HashMap::new(),
    })
    .await
    .unwrap();
    assert!(
        grpc.model_ready(ready("types", ""))
            .await
            .unwrap()
            .into_inner()
            .ready
    );

    let stats = grpc
        .model_statistics(proto::ModelStatisticsRequest {
            name: "bc".into(),
            version: "1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .model_stats;
    assert_eq!(stats.len(), 1);
    let bc = &stats[0];
    let inference = bc.inference_stats.unwrap();
    // Three successful inferences of 5 rows each (typed, raw, label only), one run each.
    assert_eq!(inference.success.unwrap().count, 3);
    assert_eq!(bc.execution_count, 3);
    assert_eq!(bc.inference_count, 15);
    assert!(inference.compute_infer.unwrap().ns > 0);
    // Aliases and name@version address statistics as they address inference.
    for (name, version) in [("bc", "production"), ("bc@1", "")] {
        let stats = grpc
            .model_statistics(proto::ModelStatisticsRequest {
                name: name.into(),
                version: version.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .model_stats;
        assert_eq!(stats.len(), 1, "{name} {version}");
        assert_eq!(stats[0].version, "1");
    }
    let unknown = grpc
        .model_statistics(proto::ModelStatisticsRequest {
            name: "bc".into(),
            version: "9".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
}

#[tokio::test]
async fn a_stream_answers_every_request_in_order_with_several_in_flight() {
    let server = server_with_models(&[]).await;
    let mut grpc = client(&server).await;
    let case = expected("breast_cancer_lr");
    let requests: Vec<ModelInferRequest> = (0..12)
        .map(|i| {
            let mut request = raw_request("bc", case["inputs"].as_array().unwrap());
            request.id = format!("req-{i}");
            if i % 4 == 3 {
                request.model_name = "nope".into();
            }
            request
        })
        .collect();
    let before = scrape(&server).await;
    let answers: Vec<proto::ModelStreamInferResponse> = {
        let mut stream = grpc
            .model_stream_infer(tokio_stream::iter(requests))
            .await
            .unwrap()
            .into_inner();
        let mut answers = Vec::new();
        while let Some(answer) = stream.message().await.unwrap() {
            answers.push(answer);
        }
        answers
    };
    assert_eq!(answers.len(), 12);
    for (i, answer) in answers.iter().enumerate() {
        if i % 4 == 3 {
            // The failed answer names its request.
            assert_eq!(
                answer.infer_response.as_ref().unwrap().id,
                format!("req-{i}")
            );
            assert!(
                answer.error_message.contains("nope"),
                "{}",
                answer.error_message
            );
        } else {
            let response = answer.infer_response.as_ref().unwrap();
            assert_eq!(response.id, format!("req-{i}"));
            assert_outputs_match(
                "stream",
                &outputs_json(response),
                case["outputs"].as_array().unwrap(),
            );
        }
    }
    let after = scrape(&server).await;
    let grpc_ok = [
        ("protocol", "grpc"),
        ("model", "bc"),
        ("outcome", "success"),
    ];
    let grpc_missing = [
        ("protocol", "grpc"),
        ("model", ""),
        ("outcome", "client_error"),
    ];
    let delta = |labels: &[(&str, &str)]| {
        after.sum("modelbay_requests_total", labels) - before.sum("modelbay_requests_total", labels)
    };
    assert_eq!(delta(&grpc_ok), 9.0);
    assert_eq!(delta(&grpc_missing), 3.0);
}

#[tokio::test]
async fn errors_map_to_grpc_codes_with_messages_a_person_can_act_on() {
    let server = server_with_models(&["--grpc-max-message-bytes", "65536"]).await;
    let mut grpc = client(&server).await;
    let case = expected("breast_cancer_lr");
    let inputs = case["inputs"].as_array().unwrap();

    let mut short_raw = raw_request("bc", inputs);
    short_raw.raw_input_contents[0].truncate(100);
    let mut extra_raw = raw_request("bc", inputs);
    extra_raw.raw_input_contents.push(vec![0; 4]);
    let mut both = raw_request("bc", inputs);
    both.inputs[0].contents = Some(InferTensorContents::default());
    let mut bad_type = raw_request("bc", inputs);
    bad_type.inputs[0].datatype = "FP128".into();
    let mut wrong_shape = typed_request("bc");
    wrong_shape.inputs[0].shape = vec![5, 29];
    let mut typed_fp16 = raw_request(
        "bf16",
        expected("bf16_identity")["inputs"].as_array().unwrap(),
    );
    typed_fp16.raw_input_contents.clear();
    typed_fp16.inputs[0].datatype = "FP16".into();
    let mut negative = typed_request("bc");
    negative.inputs[0].shape = vec![-5, 30];
    let mut both_versions = typed_request("bc@1");
    both_versions.model_version = "1".into();
    let mut too_big = typed_request("bc");
    too_big.inputs[0].shape = vec![600, 30];
    too_big.inputs[0].contents.as_mut().unwrap().fp32_contents = vec![1.0; 600 * 30];

    let cases = [
        (typed_request("nope"), Code::NotFound, "nope"),
        (short_raw, Code::InvalidArgument, "raw_input_contents"),
        (extra_raw, Code::InvalidArgument, "2 entries for 1 inputs"),
        (
            both,
            Code::InvalidArgument,
            "both contents and raw_input_contents",
        ),
        (bad_type, Code::InvalidArgument, "FP128"),
        (wrong_shape, Code::InvalidArgument, "shape"),
        (typed_fp16, Code::InvalidArgument, "raw_input_contents"),
        (negative, Code::InvalidArgument, "negative"),
        (both_versions, Code::InvalidArgument, "not both"),
        // tonic's own check of the message size answers OUT_OF_RANGE.
        (too_big, Code::OutOfRange, "too large"),
    ];
    for (request, code, message) in cases {
        let status = grpc.model_infer(request).await.unwrap_err();
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().contains(message), "{status:?}");
    }
    let archived = {
        // A version nothing serves (the first is `production`) can be archived.
        let (status, pushed) = server.push("bc", "breast_cancer_lr.onnx").await;
        assert_eq!(status, 201);
        let version = pushed["version"].to_string();
        let (status, body) = server
            .post_json(
                &format!("/api/v1/models/bc/versions/{version}/archive"),
                &json!({}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let mut request = typed_request("bc");
        request.model_version = version;
        grpc.model_infer(request).await.unwrap_err()
    };
    assert_eq!(archived.code(), Code::FailedPrecondition, "{archived:?}");
}

#[tokio::test]
async fn a_full_queue_is_unavailable_and_health_and_reflection_answer() {
    let server = server_with_models(&["--workers-per-model", "1", "--queue-capacity", "1"]).await;
    let (status, _) = server
        .put_json(
            "/api/v1/models/bc/batching",
            &json!({"max_batch_size": 8, "max_queue_delay_microseconds": 1_000_000}),
        )
        .await;
    assert_eq!(status, 200);
    let mut first = client(&server).await;
    let waiting = tokio::spawn(async move { first.model_infer(typed_request("bc")).await });
    let version = [("model", "bc"), ("version", "1")];
    let mut queued = 0.0;
    for _ in 0..200 {
        queued = scrape(&server)
            .await
            .sum("modelbay_queued_requests", &version);
        if queued == 1.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(queued, 1.0, "the first request never queued");
    let refused = client(&server)
        .await
        .model_infer(typed_request("bc"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("capacity"), "{refused:?}");
    assert!(waiting.await.unwrap().is_ok());

    let channel = Channel::from_shared(server.grpc_url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    // The whole server ("") is serving once startup loading is done, as ServerReady says.
    let whole = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        whole.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "inference.GRPCInferenceService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        serving.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient, server_reflection_request,
        server_reflection_response, ServerReflectionRequest,
    };
    let mut reflection =
        ServerReflectionClient::with_interceptor(channel, BearerKey::new(&server.admin_key));
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("not a service list: {answer:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"inference.GRPCInferenceService".to_owned()),
        "{names:?}"
    );
}

/// Sends bytes as they are, to send what no generated client would: a malformed message.
#[derive(Clone, Default)]
pub(crate) struct RawCodec;

pub(crate) struct RawEncoder;
pub(crate) struct RawDecoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf;
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

#[tokio::test]
async fn malformed_messages_and_unsupported_options_are_invalid_arguments() {
    let server = server_with_models(&[]).await;
    let channel = Channel::from_shared(server.grpc_url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut raw = tonic::client::Grpc::new(channel);
    raw.ready().await.unwrap();
    // Field 1 (model_name) claims 100 bytes and the message ends after 3.
    let mut malformed = tonic::Request::new(vec![0x0a, 100, b'b', b'c', b'x']);
    malformed.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", server.admin_key).parse().unwrap(),
    );
    let status = raw
        .unary(
            malformed,
            "/inference.GRPCInferenceService/ModelInfer"
                .parse()
                .unwrap(),
            RawCodec,
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("malformed"), "{status:?}");

    let mut grpc = client(&server).await;
    let mut classify = typed_request("bc");
    classify.outputs = vec![InferRequestedOutputTensor {
        name: "probabilities".into(),
        parameters: HashMap::from([(
            "classification".to_owned(),
            proto::InferParameter {
                parameter_choice: Some(proto::infer_parameter::ParameterChoice::Int64Param(2)),
            },
        )]),
    }];
    let status = grpc.model_infer(classify).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("classification"), "{status:?}");
    // Data in the wrong typed field: the message names the right one.
    let mut misplaced = typed_request("bc");
    let contents = misplaced.inputs[0].contents.as_mut().unwrap();
    contents.fp64_contents = contents
        .fp32_contents
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    contents.fp32_contents.clear();
    let status = grpc.model_infer(misplaced).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("contents.fp32_contents"),
        "{status:?}"
    );
    // A long name is cut in the error, so it fits in the trailers.
    let status = grpc
        .model_infer(typed_request(&"x".repeat(20_000)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().len() <= 1100, "{}", status.message().len());
}

#[tokio::test]
async fn a_stop_signal_ends_open_streams_and_the_server_exits() {
    let mut server = server_with_models(&[]).await;
    let mut grpc = client(&server).await;
    let (requests, outgoing) = tokio::sync::mpsc::channel(4);
    let mut answers = grpc
        .model_stream_infer(tokio_stream::wrappers::ReceiverStream::new(outgoing))
        .await
        .unwrap()
        .into_inner();
    requests.send(typed_request("bc")).await.unwrap();
    let first = answers.message().await.unwrap().unwrap();
    assert!(first.error_message.is_empty(), "{}", first.error_message);
    // The client keeps its stream open; the server is told to stop.
    let started = std::time::Instant::now();
    let status = tokio::task::spawn_blocking(move || server.stop())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "took {:?} to stop with a stream open",
        started.elapsed()
    );
    // The stream ended (cleanly or with the connection).
    assert!(!matches!(answers.message().await, Ok(Some(_))));
    drop(requests);
}
