//! Explanations: on the logistic-regression fixture, KernelSHAP on the logit equals the exact
//! linear SHAP values coefficient × (x − background mean); attributions always add up to the
//! prediction minus the base value; the same seed gives the same answer.

use serde_json::{json, Value};

use crate::{
    common::{fixture, TestServer},
    drift::{reference, rows_body},
};

/// Largest difference allowed between KernelSHAP's and the exact linear SHAP values on the
/// logit, relative to the largest exact value of the row (at least 1). The model computes in
/// float32, so its probabilities (and their logits) carry rounding; the deviations seen are
/// about 2e-6.
const LINEAR_TOLERANCE: f64 = 1e-4;

fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

async fn server_with(model: &str, file: &str) -> TestServer {
    let server = TestServer::start().await;
    assert_eq!(server.push(model, file).await.0, 201);
    let csv = std::fs::read(fixture("breast_cancer.reference.csv")).unwrap();
    let response = server
        .http
        .put(server.url(&format!("/api/v1/models/{model}/versions/1/reference")))
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    server
}

/// P(class 1) for each row, from plain inference.
async fn probabilities(server: &TestServer, model: &str, rows: &[Vec<f64>]) -> Vec<f64> {
    let (status, body) = server
        .post_json(&format!("/v2/models/{model}/infer"), &rows_body(rows))
        .await;
    assert_eq!(status, 200, "{body}");
    let output = body["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "probabilities")
        .unwrap();
    output["data"]
        .as_array()
        .unwrap()
        .chunks(2)
        .map(|pair| pair[1].as_f64().unwrap())
        .collect()
}

fn attributions(row: &Value, output: &str, index: usize) -> (Vec<f64>, f64, f64) {
    let explained = row["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["output"] == output && o["index"] == index)
        .unwrap_or_else(|| panic!("no {output}[{index}] in {row}"));
    let phi = explained["attributions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    (
        phi,
        explained["value"].as_f64().unwrap(),
        explained["base_value"].as_f64().unwrap(),
    )
}

#[tokio::test]
async fn logistic_regression_attributions_on_the_logit_are_the_exact_linear_shap_values() {
    let server = server_with("lr", "breast_cancer_lr.onnx").await;
    let (names, rows) = reference();
    let n = rows.len() as f64;
    let mean: Vec<f64> = (0..30)
        .map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n)
        .collect();
    let spread: Vec<f64> = (0..30)
        .map(|j| (rows.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n).sqrt())
        .collect();
    // The model's coefficients on the raw features, measured independently of the explainer:
    // the logit is linear in x, so one step along each feature from the mean row gives its
    // coefficient.
    let at_mean = logit(probabilities(&server, "lr", std::slice::from_ref(&mean)).await[0]);
    assert!(
        at_mean.abs() < 8.0,
        "the mean row's logit {at_mean} is too extreme to probe"
    );
    let steps: Vec<Vec<f64>> = (0..30)
        .map(|j| {
            let mut row = mean.clone();
            row[j] += 0.25 * spread[j];
            row
        })
        .collect();
    let stepped = probabilities(&server, "lr", &steps).await;
    let coefficients: Vec<f64> = (0..30)
        .map(|j| (logit(stepped[j]) - at_mean) / (0.25 * spread[j]))
        .collect();

    // Rows the model is not too sure about, so their float32 probabilities keep a precise logit.
    let predicted = probabilities(&server, "lr", &rows).await;
    let explained: Vec<Vec<f64>> = rows
        .iter()
        .zip(&predicted)
        .filter(|(_, p)| logit(**p).abs() < 4.0)
        .map(|(r, _)| r.clone())
        .take(3)
        .collect();
    assert_eq!(explained.len(), 3);
    let (status, body) = server
        .post_json(
            "/v2/models/lr/explain?link=logit&background=mean&seed=7",
            &rows_body(&explained),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["method"], "kernel_shap");
    assert_eq!(body["features"], json!(names));
    assert_eq!(body["background_rows"], 1);
    for (row, x) in body["rows"].as_array().unwrap().iter().zip(&explained) {
        let (phi, value, base) = attributions(row, "probabilities", 1);
        let exact: Vec<f64> = (0..30)
            .map(|j| coefficients[j] * (x[j] - mean[j]))
            .collect();
        let scale = exact.iter().fold(1.0f64, |m, e| m.max(e.abs()));
        let worst = (0..30)
            .map(|j| (phi[j] - exact[j]).abs())
            .fold(0.0, f64::max);
        eprintln!("largest deviation from exact linear SHAP: {worst:.2e} (scale {scale:.2})");
        for j in 0..30 {
            assert!(
                (phi[j] - exact[j]).abs() <= LINEAR_TOLERANCE * scale,
                "feature {} ({j}): KernelSHAP {} vs exact {}",
                names[j],
                phi[j],
                exact[j]
            );
        }
        let total: f64 = phi.iter().sum();
        assert!(
            (total - (value - base)).abs() < 1e-9,
            "{total} vs {value} - {base}"
        );
        assert!(
            (base - at_mean).abs() < 1e-6,
            "base {base} is the mean row's logit"
        );
    }
}

#[tokio::test]
async fn attributions_add_up_and_are_reproducible_for_a_seed() {
    let server = server_with("rf", "breast_cancer_rf.onnx").await;
    let (_, rows) = reference();
    let two = rows_body(&rows[..2]);
    let path = "/v2/models/rf/versions/1/explain?seed=3&samples=300&background_rows=20";
    let (status, first) = server.post_json(path, &two).await;
    assert_eq!(status, 200, "{first}");
    let (_, again) = server.post_json(path, &two).await;
    assert_eq!(first, again, "the same seed must give the same explanation");
    assert!(first["coalitions"].as_u64().unwrap() <= 300);
    assert_eq!(first["exact"], false);
    assert_eq!(first["background_rows"], 20);
    let predicted = probabilities(&server, "rf", &rows[..2]).await;
    for (row, p) in first["rows"].as_array().unwrap().iter().zip(predicted) {
        for index in [0, 1] {
            let (phi, value, base) = attributions(row, "probabilities", index);
            assert_eq!(phi.len(), 30);
            let total: f64 = phi.iter().sum();
            assert!(
                (total - (value - base)).abs() < 1e-9,
                "{total} vs {value} - {base}"
            );
        }
        let (_, value, _) = attributions(row, "probabilities", 1);
        assert!(
            (value - p).abs() < 1e-6,
            "explained value {value} is the prediction {p}"
        );
        // The integer label is not a score: it is left out unless asked for by name.
        assert!(row["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["output"] != "label"));
    }
    let (_, other) = server
        .post_json(&path.replace("seed=3", "seed=4"), &two)
        .await;
    assert_ne!(
        first["rows"], other["rows"],
        "another seed samples other coalitions"
    );
}

#[tokio::test]
async fn explain_refuses_what_it_cannot_do() {
    let server = server_with("lr", "breast_cancer_lr.onnx").await;
    assert_eq!(server.push("plain", "breast_cancer_lr.onnx").await.0, 201);
    let (_, rows) = reference();
    let one = rows_body(&rows[..1]);
    let cases = [
        (
            "/v2/models/plain/explain",
            one.clone(),
            404,
            "no reference data",
        ),
        (
            "/v2/models/lr/explain",
            rows_body(&rows[..33]),
            400,
            "1 to 32 rows",
        ),
        (
            "/v2/models/lr/explain?link=probit",
            one.clone(),
            400,
            "link 'probit'",
        ),
        (
            "/v2/models/lr/explain?samples=1",
            one.clone(),
            400,
            "samples",
        ),
        (
            "/v2/models/lr/explain?background_rows=500",
            one.clone(),
            400,
            "background_rows",
        ),
        (
            "/v2/models/lr/explain?colour=red",
            one.clone(),
            400,
            "unknown explain option",
        ),
        (
            "/v2/models/lr/explain",
            json!({"inputs": one["inputs"], "outputs": [{"name": "label"}]}),
            400,
            "not a float output",
        ),
        (
            "/v2/models/lr/explain",
            json!({"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}]}),
            400,
            "shape",
        ),
        ("/v2/models/nope/explain", one.clone(), 404, "nope"),
    ];
    for (path, body, status, message) in cases {
        let (got, answer) = server.post_json(path, &body).await;
        assert_eq!(got, status, "{path}: {answer}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(message), "{path}: {error}");
    }
}
