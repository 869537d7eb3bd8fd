//! The `modelbay` CLI against a running server.

use serde_json::Value;

use crate::common::{fixture, modelbay, run_cli as run, TestServer};

#[tokio::test]
async fn push_models_and_versions_print_tables_and_json() {
    let server = TestServer::start().await;
    let file = fixture("breast_cancer_lr.onnx");
    let file = file.to_str().unwrap();
    let pushed = run(
        &server,
        &[
            "push",
            "bc",
            file,
            "--description",
            "baseline",
            "--label",
            "team=risk",
        ],
    );
    let line = pushed;
    assert!(line.starts_with("bc v1 (sha256:"), "{line}");

    let json = run(&server, &["push", "bc", file, "--json"]);
    let record: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(record["version"], 2);

    let table = run(&server, &["models"]);
    assert!(table.contains("NAME") && table.contains("bc"), "{table}");

    let table = run(&server, &["versions", "bc"]);
    assert!(
        table.contains("team=risk") && table.contains("baseline"),
        "{table}"
    );

    let versions: Value =
        serde_json::from_str(&run(&server, &["versions", "bc", "--json"])).unwrap();
    assert_eq!(versions.as_array().unwrap().len(), 2);
    assert_eq!(versions[0]["labels"]["team"], "risk");
}

#[tokio::test]
async fn errors_from_the_server_reach_the_user() {
    let server = TestServer::start().await;
    let output = modelbay()
        .args([
            "push",
            "bc",
            fixture("invalid/breast_cancer_zipmap.onnx")
                .to_str()
                .unwrap(),
        ])
        .args(["--server", &server.url])
        .env("MODELBAY_API_KEY", &server.admin_key)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("400") && stderr.contains("zipmap"),
        "{stderr}"
    );

    let output = modelbay()
        .args(["versions", "nope", "--server", &server.url])
        .env("MODELBAY_API_KEY", &server.admin_key)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("model 'nope' not found"));
}

#[tokio::test]
async fn push_param_sets_generation_defaults_and_a_bad_one_uploads_nothing() {
    let server = TestServer::start_with(&["--llm-threads", "1"]).await;
    let model = crate::clients::smollm2_path();
    let model = model.to_str().unwrap();
    run(
        &server,
        &[
            "push",
            "chat",
            model,
            "--param",
            "temperature=0.7",
            "--param",
            "top_k=40",
            "--param",
            "max_tokens=512",
        ],
    );
    let (status, settings) = server
        .get("/api/v1/models/chat/versions/1/generation")
        .await;
    assert_eq!(status, 200, "{settings}");
    assert_eq!(
        settings["publisher"],
        serde_json::json!({"temperature": 0.7, "top_k": 40, "max_tokens": 512})
    );
    let output = modelbay()
        .args(["push", "chat", model, "--param", "temp=1"])
        .args(["--server", &server.url])
        .env("MODELBAY_API_KEY", &server.admin_key)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("'temp' is not a generation parameter")
    );
    let (_, versions) = server.get("/api/v1/models/chat/versions").await;
    assert_eq!(
        versions["versions"].as_array().unwrap().len(),
        1,
        "nothing was uploaded"
    );
}
