//! Bounded memory per request: a small gzip body that inflates to megabytes of JSON costs the
//! server a small multiple of its tensor, not a tree of JSON values per element.

use std::io::Write;

use crate::common::TestServer;

const ROWS: usize = 140_000;
const FEATURES: usize = 30;
const CONCURRENT: usize = 64;

/// `name:` line of /proc/PID/status, in KiB.
fn proc_status_kib(pid: u32, name: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// `{"inputs": [... "data": [0,0,...]]}` for ROWS x FEATURES FP32 zeros, gzip-compressed.
fn zeros_body() -> (Vec<u8>, usize) {
    let mut json = String::with_capacity(ROWS * FEATURES * 2 + 128);
    json.push_str(&format!(
        r#"{{"inputs":[{{"name":"input","datatype":"FP32","shape":[{ROWS},{FEATURES}],"data":["#
    ));
    for i in 0..ROWS * FEATURES {
        json.push_str(if i == 0 { "0" } else { ",0" });
    }
    json.push_str("]}]}");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(json.as_bytes()).unwrap();
    (gz.finish().unwrap(), json.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_inflating_json_bodies_keep_resident_memory_bounded() {
    // As many request threads as requests, so that every body is decoded at the same moment
    // (as on a machine with many cores): what each decode holds then adds up.
    let threads = CONCURRENT.to_string();
    let server = TestServer::start_with_env(
        &["--max-inflight-bytes", "1073741824"],
        &[("TOKIO_WORKER_THREADS", &threads)],
    )
    .await;
    assert_eq!(server.push("bc", "breast_cancer_lr.onnx").await.0, 201);
    let (body, inflated) = zeros_body();
    assert!(body.len() < 64 << 10, "{} bytes compressed", body.len());

    let send = |body: Vec<u8>| {
        let request = server
            .http
            .post(server.url("/v2/models/bc/infer"))
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (status, text.len())
        }
    };
    // One request first, so that the session, its arenas and the thread pools exist before the
    // baseline is read.
    let (status, _) = send(body.clone()).await;
    assert_eq!(status, 200);
    let baseline = proc_status_kib(server.pid(), "VmRSS:");

    let answers = futures::future::join_all((0..CONCURRENT).map(|_| send(body.clone()))).await;
    for (status, len) in &answers {
        assert_eq!(*status, 200, "{len} bytes of error");
    }
    let peak = proc_status_kib(server.pid(), "VmHWM:");
    let grown_mib = peak.saturating_sub(baseline) / 1024;

    // Per request the server holds the inflated body, the FP32 tensor and the model's
    // outputs; allow three times body plus tensor for every request at once (measured: about
    // 1.5 times). A `serde_json::Value` per element, as decoded before, took 12 GiB here.
    let tensor_mib = (ROWS * FEATURES * 4) >> 20;
    let body_mib = inflated >> 20;
    let bound_mib = (CONCURRENT * 3 * (body_mib + tensor_mib)) as u64;
    eprintln!(
        "resident memory grew by {grown_mib} MiB for {CONCURRENT} requests of {} KiB gzip / \
         {body_mib} MiB JSON / {tensor_mib} MiB FP32 (bound {bound_mib} MiB)",
        body.len() >> 10
    );
    assert!(
        grown_mib < bound_mib,
        "resident memory grew by {grown_mib} MiB, more than {bound_mib} MiB"
    );
}
