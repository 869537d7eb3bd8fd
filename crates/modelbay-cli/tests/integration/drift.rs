//! Reference data and drift: rows drawn from the reference keep every feature's PSI small; rows
//! with one feature shifted flag that feature and no other; the API and `/metrics` agree.

use serde_json::{json, Value};

use crate::{
    common::{fixture, run_cli, TestServer},
    prom::scrape,
};

/// The breast-cancer training rows the fixtures were trained on, with their feature names.
pub fn reference() -> (Vec<String>, Vec<Vec<f64>>) {
    let text = std::fs::read_to_string(fixture("breast_cancer.reference.csv")).unwrap();
    let mut lines = text.lines();
    let names = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_owned)
        .collect();
    let rows = lines
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    (names, rows)
}

pub fn rows_body(rows: &[Vec<f64>]) -> Value {
    let data: Vec<f64> = rows.iter().flatten().copied().collect();
    json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [rows.len(), 30], "data": data}]})
}

/// `count` rows drawn (with replacement, seeded) from the reference, with `shift` added to
/// column `column`.
fn sample(rows: &[Vec<f64>], count: usize, seed: u64, column: usize, shift: f64) -> Vec<Vec<f64>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..count)
        .map(|_| {
            let mut row = rows[rng.usize(..rows.len())].clone();
            row[column] += shift;
            row
        })
        .collect()
}

fn std_dev(rows: &[Vec<f64>], column: usize) -> f64 {
    let n = rows.len() as f64;
    let mean = rows.iter().map(|r| r[column]).sum::<f64>() / n;
    (rows.iter().map(|r| (r[column] - mean).powi(2)).sum::<f64>() / n).sqrt()
}

async fn send(server: &TestServer, rows: &[Vec<f64>]) {
    for chunk in rows.chunks(50) {
        let (status, body) = server
            .post_json("/v2/models/bc/infer", &rows_body(chunk))
            .await;
        assert_eq!(status, 200, "{body}");
    }
}

fn feature<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no feature {name} in {report}"))
}

#[tokio::test]
async fn a_shifted_feature_is_flagged_and_the_others_are_not() {
    let server = TestServer::start_with(&["--drift-window", "400"]).await;
    let csv = fixture("breast_cancer.reference.csv");
    // The reference is attached at push time by the CLI.
    let out = run_cli(
        &server,
        &[
            "push",
            "bc",
            fixture("breast_cancer_rf.onnx").to_str().unwrap(),
            "--reference",
            csv.to_str().unwrap(),
        ],
    );
    assert!(out.contains("bc v1"), "{out}");
    let (names, rows) = reference();
    let (status, summary) = server.get("/api/v1/models/bc/versions/1/reference").await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["rows"], 455);
    assert_eq!(summary["features"], json!(names));

    // Below 100 rows nothing is flagged, and the PSI gauge is not exported yet.
    send(&server, &sample(&rows, 50, 9, 0, 3.0 * std_dev(&rows, 0))).await;
    let (_, early) = server.get("/api/v1/models/bc/versions/1/drift").await;
    assert_eq!(early["observed_rows"], 50);
    assert_eq!(feature(&early, "mean radius")["drifted"], false);
    assert!(!scrape(&server).await.has("modelbay_feature_drift_psi"));

    // The window holds 400 rows: these replace the 50 above.
    send(&server, &sample(&rows, 400, 1, 0, 0.0)).await;
    let (status, report) = server.get("/api/v1/models/bc/versions/1/drift").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["observed_rows"], 400);
    assert_eq!(report["threshold"], 0.2);
    for f in report["features"].as_array().unwrap() {
        let psi = f["psi"].as_f64().unwrap();
        assert!(psi < 0.1, "{} drifted on reference rows: {psi}", f["name"]);
        assert_eq!(f["drifted"], false);
    }

    // The window holds 400 rows: these replace the ones above.
    let shift = 2.0 * std_dev(&rows, 0);
    send(&server, &sample(&rows, 400, 2, 0, shift)).await;
    let (_, report) = server.get("/api/v1/models/bc/versions/1/drift").await;
    let shifted = feature(&report, "mean radius");
    assert!(shifted["psi"].as_f64().unwrap() > 0.2, "{shifted}");
    assert_eq!(shifted["drifted"], true);
    let flagged: Vec<&Value> = report["features"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["drifted"] == true)
        .collect();
    assert_eq!(flagged.len(), 1, "only mean radius may drift: {flagged:?}");

    let metrics = scrape(&server).await;
    let labels = [
        ("model", "bc"),
        ("version", "1"),
        ("feature", "mean radius"),
    ];
    let exported = metrics.sum("modelbay_feature_drift_psi", &labels);
    assert!(
        (exported - shifted["psi"].as_f64().unwrap()).abs() < 1e-9,
        "{exported} vs {shifted}"
    );
    assert_eq!(
        metrics.sum("modelbay_drift_window_rows", &[("model", "bc")]),
        400.0
    );

    // New reference data (here as v2 JSON rows) starts the window again.
    let response = server
        .http
        .put(server.url("/api/v1/models/bc/versions/1/reference"))
        .json(&rows_body(&rows[..40]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let summary: Value = response.json().await.unwrap();
    assert_eq!(summary["rows"], 40);
    assert_eq!(
        summary["features"][0], "input[0]",
        "JSON rows have no names"
    );
    let (_, report) = server.get("/api/v1/models/bc/versions/1/drift").await;
    assert_eq!(report["observed_rows"], 0);
    let (_, events) = server.get("/api/v1/events?model=bc").await;
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "reference.set").count(),
        2,
        "{kinds:?}"
    );
}

#[tokio::test]
async fn bad_reference_data_is_refused_with_a_reason() {
    let server = TestServer::start().await;
    assert_eq!(server.push("bc", "breast_cancer_lr.onnx").await.0, 201);
    let put = |body: &'static str| {
        let request = server
            .http
            .put(server.url("/api/v1/models/bc/versions/1/reference"))
            .header("content-type", "text/csv")
            .body(body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = server.get("/api/v1/models/bc/versions/1/drift").await;
    assert_eq!(status, 404);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no reference data"),
        "{body}"
    );

    let narrow = "a,b\n1,2\n3,4\n5,6\n7,8\n9,10\n11,12\n13,14\n15,16\n17,18\n19,20\n";
    let (status, body) = put(narrow).await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("30 features"),
        "{body}"
    );
    let (status, body) = put("1,2\n3,x\n").await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("line 2"), "{body}");
    let (status, _) = put("").await;
    assert_eq!(status, 400);

    let missing = server
        .http
        .put(server.url("/api/v1/models/bc/versions/9/reference"))
        .body("1\n")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let (status, _) = server.get("/api/v1/models/nope/versions/1/drift").await;
    assert_eq!(status, 404);
    let (status, _) = server.get("/api/v1/models/bc/versions/one/drift").await;
    assert_eq!(status, 400);
}
