//! A closed-loop gRPC load generator for `bench/grpc.sh`: N connections, each sending
//! `ModelInfer` requests one after another for a fixed time, the first rows of a fixture as raw
//! FP32 contents. Works against any server of `inference.GRPCInferenceService` (modelbay,
//! MLServer, Triton). Prints one `BENCH_RESULT` line like `bench/post.lua`.
//!
//! cargo run --release --example grpc_load -- URL MODEL CONNECTIONS SECONDS EXPECTED.json ROWS

use std::time::{Duration, Instant};

use modelbay_server::grpc::proto::{
    grpc_inference_service_client::GrpcInferenceServiceClient,
    model_infer_request::InferInputTensor, ModelInferRequest,
};

fn request(model: &str, expected: &serde_json::Value, rows: usize) -> ModelInferRequest {
    let input = &expected["inputs"][0];
    let width = input["shape"][1].as_u64().expect("a [rows, width] input") as usize;
    let raw: Vec<u8> = input["data"]
        .as_array()
        .expect("flat data")
        .iter()
        .take(rows * width)
        .flat_map(|v| (v.as_f64().expect("numbers") as f32).to_le_bytes())
        .collect();
    ModelInferRequest {
        model_name: model.into(),
        inputs: vec![InferInputTensor {
            name: input["name"].as_str().expect("a name").into(),
            datatype: "FP32".into(),
            shape: vec![rows as i64, width as i64],
            ..Default::default()
        }],
        raw_input_contents: vec![raw],
        ..Default::default()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> u128 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_micros()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, model, connections, seconds, expected, rows] = args.as_slice() else {
        return Err("usage: grpc_load URL MODEL CONNECTIONS SECONDS EXPECTED.json ROWS".into());
    };
    let expected: serde_json::Value = serde_json::from_slice(&std::fs::read(expected)?)?;
    let request = request(model, &expected, rows.parse()?);
    let duration = Duration::from_secs_f64(seconds.parse()?);
    let mut tasks = Vec::new();
    for _ in 0..connections.parse::<usize>()? {
        let mut client = GrpcInferenceServiceClient::connect(url.clone())
            .await?
            .max_decoding_message_size(64 << 20);
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let (mut latencies, mut errors) = (Vec::new(), 0u64);
            let end = Instant::now() + duration;
            while Instant::now() < end {
                let sent = Instant::now();
                match client.model_infer(request.clone()).await {
                    Ok(_) => latencies.push(sent.elapsed()),
                    Err(_) => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await?;
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    println!(
        "BENCH_RESULT requests={} duration_us={} p50_us={} p90_us={} p99_us={} errors={errors}",
        latencies.len(),
        elapsed.as_micros(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.90),
        percentile(&latencies, 0.99),
    );
    Ok(())
}
