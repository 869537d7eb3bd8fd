//! Artifacts in an S3-compatible bucket (moto's server on loopback, started here), read through
//! the replica's local cache: uploads land whole under their digest, copies are verified, a
//! damaged copy is fetched again, and the cache stays under its size bound by dropping the least
//! recently used copies.

use std::{
    collections::BTreeMap,
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::Duration,
};

use bytes::Bytes;
use modelbay_core::{ModelFormat, ModelName, Signature};
use modelbay_registry::{ArtifactLocation, Digest, NewVersion, Registry, RegistryConfig};

struct Moto(Child, u16);

impl Moto {
    async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let program =
            std::env::var("MODELBAY_MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        let child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("moto_server ({program}; pip install 'moto[server]'): {e}"));
        for _ in 0..300 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let client = reqwest_put(port, "/bucket").await;
        assert!(client, "could not create the bucket");
        Self(child, port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An unsigned PUT (moto accepts it) over a plain TCP connection.
async fn reqwest_put(port: u16, path: &str) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request = format!("PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer.starts_with("HTTP/1.1 200")
}

async fn registry(moto: &Moto, dir: &std::path::Path, cache_max_bytes: u64) -> Registry {
    for (k, v) in [
        ("AWS_ENDPOINT", format!("http://127.0.0.1:{}", moto.1)),
        ("AWS_ALLOW_HTTP", "true".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
    ] {
        std::env::set_var(k, v);
    }
    let mut config = RegistryConfig::local(dir);
    config.artifacts = ArtifactLocation::S3 {
        bucket: "bucket".into(),
        prefix: "models".into(),
    };
    config.cache_max_bytes = cache_max_bytes;
    Registry::open(&config).await.unwrap()
}

async fn push(
    registry: &Registry,
    model: &str,
    content: Vec<u8>,
) -> modelbay_registry::VersionRecord {
    let body = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from(content))]);
    let staged = registry.stage(body, 64 << 20).await.unwrap();
    registry
        .publish(
            &ModelName::new(model).unwrap(),
            &staged,
            NewVersion {
                format: ModelFormat::Onnx,
                signature: Signature::default(),
                details: serde_json::json!({}),
                description: String::new(),
                labels: BTreeMap::new(),
                created_by: "test".into(),
            },
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn s3_artifacts_are_read_through_a_verified_lru_cache() {
    let moto = Moto::start().await;
    let publisher_dir = tempfile::tempdir().unwrap();
    let publisher = registry(&moto, publisher_dir.path(), 1 << 30).await;
    // Larger than one multipart chunk (8 MiB), so the upload is multipart.
    let big: Vec<u8> = (0..(9u32 << 20)).map(|i| (i % 251) as u8).collect();
    let a = push(&publisher, "a", big.clone()).await;
    let b = push(&publisher, "b", vec![7u8; 3 << 20]).await;
    let c = push(&publisher, "c", vec![9u8; 3 << 20]).await;
    assert_eq!(a.digest, Digest::of(&big));

    // Another replica, whose cache holds about two of the three.
    let reader_dir = tempfile::tempdir().unwrap();
    let reader = registry(&moto, reader_dir.path(), (9 << 20) + (4 << 20)).await;
    let cache = reader_dir.path().join("cache");
    let path_a = reader.artifact_file(&a).await.unwrap();
    assert!(path_a.starts_with(&cache));
    assert_eq!(std::fs::read(&path_a).unwrap(), big);
    assert_eq!(
        &reader.read_artifact(&b).await.unwrap()[..],
        &vec![7u8; 3 << 20][..]
    );
    // Reading c goes over the bound: a, the least recently used, goes.
    std::thread::sleep(Duration::from_millis(20));
    reader.artifact_file(&c).await.unwrap();
    assert!(!path_a.exists(), "the least recently used copy stays");
    assert!(cache.join(b.digest.hex()).exists() && cache.join(c.digest.hex()).exists());

    // A damaged copy is noticed and fetched again.
    let path_b = cache.join(b.digest.hex());
    std::fs::write(&path_b, vec![0u8; 3 << 20]).unwrap();
    assert_eq!(
        &reader.read_artifact(&b).await.unwrap()[..],
        &vec![7u8; 3 << 20][..]
    );
    // No partial downloads are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty());
}
