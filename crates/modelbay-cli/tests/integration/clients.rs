//! Clients both test binaries use: a gRPC bearer-key interceptor, a typed gRPC inference, and
//! the chat model's bytes.

use modelbay_server::grpc::proto::{
    model_infer_request::InferInputTensor, InferTensorContents, ModelInferRequest,
};

use crate::common::{expected, repo_root};

/// Adds a bearer key to every request, as gRPC clients send it: `authorization` metadata.
#[derive(Clone)]
pub struct BearerKey(pub Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl BearerKey {
    pub fn new(key: &str) -> Self {
        Self((!key.is_empty()).then(|| format!("Bearer {key}").parse().unwrap()))
    }
}

impl tonic::service::Interceptor for BearerKey {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// The breast-cancer inputs as a typed (`contents`) request.
pub fn typed_request(model: &str) -> ModelInferRequest {
    let input = &expected("breast_cancer_lr")["inputs"][0];
    ModelInferRequest {
        model_name: model.into(),
        id: "typed-1".into(),
        inputs: vec![InferInputTensor {
            name: "input".into(),
            datatype: "FP32".into(),
            shape: input["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_i64().unwrap())
                .collect(),
            contents: Some(InferTensorContents {
                fp32_contents: input["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as f32)
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Where SmolLM2-135M-Instruct's GGUF is (scripts/fetch-models.sh fetches it).
pub fn smollm2_path() -> std::path::PathBuf {
    std::env::var("MODELBAY_SMOLLM2")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| repo_root().join(".cache/models/SmolLM2-135M-Instruct.Q4_1.gguf"))
}

/// SmolLM2-135M-Instruct's GGUF bytes.
pub fn smollm2() -> Vec<u8> {
    let path = smollm2_path();
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "SmolLM2 is missing at {} ({e}): run scripts/fetch-models.sh",
            path.display()
        )
    })
}
