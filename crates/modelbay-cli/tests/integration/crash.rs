//! SIGKILL at random moments during pushes and alias moves, many times over; after each restart
//! the registry must be consistent: every version complete with a verifying digest, every alias
//! on an existing version, and the event log in agreement with the state.

use std::{
    collections::HashMap,
    path::Path,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
    time::Duration,
};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common::{fixture, TestServer};

const ROUNDS: usize = 50;
const ALIASES: [&str; 2] = ["production", "canary"];

/// Versions the server has acknowledged with 201 and the highest number among them.
#[derive(Default)]
struct Acknowledged {
    pushes: AtomicU32,
    newest: AtomicU32,
}

/// Pushes, promotes and rolls back as fast as it can until the server dies under it.
async fn churn(url: String, key: String, files: Arc<Vec<Vec<u8>>>, acked: Arc<Acknowledged>) {
    let http = crate::common::client_with_key(&key);
    loop {
        let step = fastrand::u8(..4);
        let result = if step == 0 {
            let body = files[fastrand::usize(..files.len())].clone();
            match http
                .post(format!("{url}/api/v1/models/crash/versions"))
                .body(body)
                .send()
                .await
            {
                Ok(r) if r.status() == 201 => {
                    let record: Value = r.json().await.unwrap_or_default();
                    if let Some(v) = record["version"].as_u64() {
                        acked.newest.fetch_max(v as u32, Ordering::SeqCst);
                        acked.pushes.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(())
                }
                other => other.map(|_| ()),
            }
        } else {
            let alias = ALIASES[fastrand::usize(..2)];
            let newest = acked.newest.load(Ordering::SeqCst);
            if newest == 0 {
                continue;
            }
            let request = if step == 3 {
                http.post(format!(
                    "{url}/api/v1/models/crash/aliases/{alias}/rollback"
                ))
            } else {
                http.put(format!("{url}/api/v1/models/crash/aliases/{alias}"))
                    .json(&json!({ "version": fastrand::u32(1..=newest) }))
            };
            request.send().await.map(|_| ())
        };
        if result.is_err() {
            return; // the server is gone
        }
    }
}

fn verify_blob(data_dir: &Path, digest: &str, size: u64) {
    let hex = digest.strip_prefix("sha256:").expect("digest format");
    let bytes = std::fs::read(data_dir.join("artifacts/blobs/sha256").join(hex))
        .unwrap_or_else(|e| panic!("blob {digest} missing: {e}"));
    assert_eq!(bytes.len() as u64, size, "blob {digest} size");
    assert_eq!(
        hex::encode(Sha256::digest(&bytes)),
        hex,
        "blob {digest} content"
    );
}

async fn check_consistency(server: &TestServer) -> usize {
    let (status, versions) = server.get("/api/v1/models/crash/versions").await;
    if status == 404 {
        return 0; // no push committed yet
    }
    let versions = versions["versions"].as_array().unwrap().clone();
    let numbers: Vec<u64> = versions
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(
        numbers,
        (1..=numbers.len() as u64).collect::<Vec<_>>(),
        "versions are complete and contiguous"
    );
    for v in &versions {
        verify_blob(
            &server.data_dir,
            v["digest"].as_str().unwrap(),
            v["size"].as_u64().unwrap(),
        );
    }

    let (_, events) = server.get("/api/v1/events?model=crash").await;
    let events = events["events"].as_array().unwrap();
    let pushes = events.iter().filter(|e| e["kind"] == "push").count();
    assert_eq!(pushes, versions.len(), "one push event per version");

    let (_, aliases) = server.get("/api/v1/models/crash/aliases").await;
    let mut last_move: HashMap<&str, &Value> = HashMap::new();
    for e in events
        .iter()
        .filter(|e| e["kind"].as_str().unwrap().starts_with("alias."))
    {
        last_move.insert(
            e["after"]["alias"].as_str().unwrap(),
            &e["after"]["version"],
        );
    }
    let aliases = aliases["aliases"].as_array().unwrap();
    assert_eq!(
        aliases.len(),
        last_move.len(),
        "every alias has its events and no more"
    );
    for a in aliases {
        assert!(
            numbers.contains(&a["version"].as_u64().unwrap()),
            "alias {a} points at a missing version"
        );
        assert_eq!(
            last_move[a["alias"].as_str().unwrap()],
            &a["version"],
            "event log disagrees with alias {a}"
        );
    }
    assert_eq!(
        std::fs::read_dir(server.data_dir.join("tmp"))
            .unwrap()
            .count(),
        0
    );
    versions.len()
}

#[tokio::test]
async fn the_registry_is_consistent_after_repeated_sigkills() {
    let dir = tempfile::tempdir().unwrap();
    let files: Arc<Vec<Vec<u8>>> = Arc::new(
        [
            "breast_cancer_lr.onnx",
            "breast_cancer_rf.onnx",
            "breast_cancer_mlp.onnx",
        ]
        .iter()
        .map(|f| std::fs::read(fixture(f)).unwrap())
        .collect(),
    );
    let acked = Arc::new(Acknowledged::default());
    for _ in 0..ROUNDS {
        let mut server = TestServer::start_in(dir.path(), &["--workers-per-model", "1"]).await;
        check_consistency(&server).await;
        let writers: Vec<_> = (0..3)
            .map(|_| {
                tokio::spawn(churn(
                    server.url.clone(),
                    server.admin_key.clone(),
                    files.clone(),
                    acked.clone(),
                ))
            })
            .collect();
        // Each round kills only after one push of its own is acknowledged, so progress does not
        // depend on how fast a loaded machine lets the writers run.
        let before = acked.pushes.load(Ordering::SeqCst);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while acked.pushes.load(Ordering::SeqCst) == before {
            assert!(
                std::time::Instant::now() < deadline,
                "no push acknowledged within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(fastrand::u64(0..150))).await;
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &server.pid().to_string()])
            .status();
        assert!(killed.unwrap().success());
        server.wait();
        for writer in writers {
            writer.await.unwrap();
        }
    }
    let server = TestServer::start_in(dir.path(), &[]).await;
    let versions = check_consistency(&server).await;
    let acknowledged = acked.pushes.load(Ordering::SeqCst) as usize;
    assert!(
        versions >= acknowledged && acknowledged >= ROUNDS,
        "every acknowledged push survived ({versions} versions, {acknowledged} acknowledged)"
    );
}
