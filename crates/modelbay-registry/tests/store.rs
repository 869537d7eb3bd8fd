//! One registry test suite, run against both metadata backends: SQLite in a temporary data
//! directory, and a PostgreSQL database each test creates and drops (the server at
//! `MODELBAY_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432/postgres`).
//! "Replicas" are separate `Registry` values sharing one database and one artifact directory,
//! as separate processes would.

use std::{collections::BTreeMap, sync::Arc};

use bytes::Bytes;
use modelbay_core::{ModelFormat, ModelName, RoutingPolicy, Signature, Target, WeightedTarget};
use modelbay_registry::{
    ArtifactLocation, Backend, Error, EventKind, NewVersion, Registry, RegistryConfig,
};
use sqlx::{Connection, Executor};

fn admin_url() -> String {
    std::env::var("MODELBAY_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh registry location: its own data directories, and for PostgreSQL its own database,
/// dropped when the fixture is.
struct Fixture {
    backend: Backend,
    dirs: Vec<tempfile::TempDir>,
    shared_artifacts: tempfile::TempDir,
    database: Option<String>,
}

impl Fixture {
    async fn new(backend: Backend) -> Self {
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let name = format!("modelbay_test_{}", uuid::Uuid::new_v4().simple());
                let mut admin = sqlx::PgConnection::connect(&admin_url())
                    .await
                    .expect("PostgreSQL for the registry tests (MODELBAY_TEST_POSTGRES)");
                admin
                    .execute(format!("CREATE DATABASE {name}").as_str())
                    .await
                    .unwrap();
                Some(name)
            }
        };
        Self {
            backend,
            dirs: Vec::new(),
            shared_artifacts: tempfile::tempdir().unwrap(),
            database,
        }
    }

    fn url(&self) -> Option<String> {
        self.database.as_ref().map(|name| {
            let admin = admin_url();
            let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
            format!("{base}/{name}")
        })
    }

    /// Another replica of the same registry (for SQLite: the same one, which is a single
    /// process's store).
    async fn replica(&mut self) -> Registry {
        if self.backend == Backend::Sqlite {
            if self.dirs.is_empty() {
                self.dirs.push(tempfile::tempdir().unwrap());
            }
            return Registry::open_local(self.dirs[0].path()).await.unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let mut config = RegistryConfig::local(dir.path());
        config.metadata_url = self.url();
        config.artifacts = ArtifactLocation::Directory(self.shared_artifacts.path().to_owned());
        self.dirs.push(dir);
        Registry::open(&config).await.unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let Some(name) = self.database.take() else {
            return;
        };
        // Drop runs outside any async context we could await in: a thread with its own
        // runtime drops the database.
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url()).await {
                    let _ = admin
                        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                        .await;
                }
            });
        })
        .join()
        .unwrap();
    }
}

fn name(text: &str) -> ModelName {
    ModelName::new(text).unwrap()
}

fn new_version(by: &str) -> NewVersion {
    NewVersion {
        format: ModelFormat::Onnx,
        signature: Signature::default(),
        details: serde_json::json!({}),
        description: String::new(),
        labels: BTreeMap::new(),
        created_by: by.into(),
    }
}

async fn push(registry: &Registry, model: &ModelName, content: &[u8]) -> u32 {
    let body = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::copy_from_slice(content))]);
    let staged = registry.stage(body, 1 << 20).await.unwrap();
    registry
        .publish(model, &staged, new_version("test"))
        .await
        .unwrap()
        .version
}

/// The kinds of the first events, of one model or all.
async fn event_kinds(registry: &Registry, model: Option<&str>) -> Vec<EventKind> {
    registry
        .events(model, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

/// Runs a test body against each backend.
macro_rules! both_backends {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test(super::Fixture::new(super::Backend::Sqlite).await).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test(super::Fixture::new(super::Backend::Postgres).await).await
                }
            )*
        }
    };
}

both_backends!(
    first_version_is_production_and_later_ones_are_not,
    concurrent_pushes_from_replicas_get_contiguous_numbers,
    concurrent_alias_moves_end_where_the_last_event_says,
    rollback_policy_and_retirement_keep_their_rules,
    a_follower_reading_by_sequence_number_misses_no_event,
    keys_settings_and_reference_data_round_trip,
    deleting_a_version_keeps_a_blob_another_version_shares,
    writes_that_read_first_survive_a_concurrent_writer,
);

/// A write transaction that reads before it writes (a key's revocation, an alias move) must
/// wait for a concurrent writer (the replica's heartbeat), not fail: on SQLite a deferred
/// transaction that upgrades from reading to writing after another connection committed gets
/// "database is locked" at once, whatever the busy timeout.
async fn writes_that_read_first_survive_a_concurrent_writer(mut fx: Fixture) {
    let registry = fx.replica().await;
    let beating = {
        let registry = registry.clone();
        tokio::spawn(async move {
            for i in 0..300 {
                let now = chrono::Utc::now();
                registry
                    .heartbeat(&modelbay_registry::ReplicaRecord {
                        id: "r1".into(),
                        address: "127.0.0.1:1".into(),
                        binary_version: "test".into(),
                        started_at: now,
                        heartbeat_at: now,
                        last_event: i,
                        ready: true,
                        loaded: Vec::new(),
                    })
                    .await
                    .unwrap();
            }
        })
    };
    let writes = (0..24).map(|i| {
        let registry = registry.clone();
        async move {
            let id = format!("k{i}");
            registry
                .create_key(
                    modelbay_registry::NewKey {
                        id: id.clone(),
                        label: "concurrent".into(),
                        role: modelbay_core::Role::Viewer,
                        models: Vec::new(),
                        digest: format!("{i:064x}"),
                        limits: Default::default(),
                        expires_at: None,
                        client_cert: None,
                    },
                    "admin",
                )
                .await?;
            registry.revoke_key(&id, "admin").await
        }
    });
    for result in futures::future::join_all(writes).await {
        result.unwrap();
    }
    beating.await.unwrap();
    assert!(registry
        .keys()
        .await
        .unwrap()
        .iter()
        .all(|k| k.revoked_at.is_some()));
}

async fn first_version_is_production_and_later_ones_are_not(mut fx: Fixture) {
    let registry = fx.replica().await;
    let model = name("risk");
    assert_eq!(push(&registry, &model, b"one").await, 1);
    assert_eq!(push(&registry, &model, b"two").await, 2);
    let versions = registry.versions(&model).await.unwrap();
    assert_eq!(versions[0].aliases, ["production"]);
    assert!(versions[1].aliases.is_empty());
    assert_eq!(versions[1].digest, modelbay_registry::Digest::of(b"two"));
    let bytes = registry.read_artifact(&versions[1]).await.unwrap();
    assert_eq!(&bytes[..], b"two");
    let kinds = event_kinds(&registry, Some("risk")).await;
    assert_eq!(
        kinds,
        [EventKind::Push, EventKind::AliasSet, EventKind::Push]
    );
    assert!(matches!(
        registry.version(&model, 9).await,
        Err(Error::VersionNotFound { .. })
    ));
    assert!(matches!(
        registry.versions(&name("nope")).await,
        Err(Error::ModelNotFound(_))
    ));
}

async fn concurrent_pushes_from_replicas_get_contiguous_numbers(mut fx: Fixture) {
    let replicas = [fx.replica().await, fx.replica().await, fx.replica().await];
    let model = name("shared");
    let mut tasks = Vec::new();
    for (r, registry) in replicas.iter().enumerate() {
        for i in 0..8 {
            let (registry, model) = (registry.clone(), model.clone());
            tasks.push(tokio::spawn(async move {
                push(
                    &registry,
                    &model,
                    format!("replica {r} push {i}").as_bytes(),
                )
                .await
            }));
        }
    }
    let mut numbers = Vec::new();
    for task in tasks {
        numbers.push(task.await.unwrap());
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=24).collect::<Vec<u32>>());
    // Every replica sees the same versions, each blob intact.
    for registry in &replicas {
        let versions = registry.versions(&model).await.unwrap();
        assert_eq!(versions.len(), 24);
        for v in &versions {
            registry.read_artifact(v).await.unwrap();
        }
    }
    let pushes = replicas[0]
        .events(Some("shared"), 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EventKind::Push)
        .count();
    assert_eq!(pushes, 24);
}

async fn concurrent_alias_moves_end_where_the_last_event_says(mut fx: Fixture) {
    let replicas = [fx.replica().await, fx.replica().await, fx.replica().await];
    let model = name("moves");
    for i in 0..4 {
        push(&replicas[0], &model, format!("v{i}").as_bytes()).await;
    }
    let mut tasks = Vec::new();
    for (r, registry) in replicas.iter().enumerate() {
        let (registry, model) = (registry.clone(), model.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..10u32 {
                let version = 1 + (i + r as u32) % 4;
                registry
                    .set_alias(&model, "staging", version, "test")
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let events = replicas[1].events(Some("moves"), 0, 1000).await.unwrap();
    let last_move = events
        .iter()
        .rev()
        .find(|e| e.kind == EventKind::AliasSet && e.after.as_ref().unwrap()["alias"] == "staging")
        .unwrap();
    let alias = replicas[2]
        .aliases(Some(&model))
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.alias == "staging")
        .unwrap();
    assert_eq!(
        u64::from(alias.version),
        last_move.after.as_ref().unwrap()["version"]
            .as_u64()
            .unwrap()
    );
    // Each recorded move started where the previous one ended: no lost update.
    let mut at: Option<u64> = None;
    for e in events.iter().filter(|e| {
        e.kind == EventKind::AliasSet && e.after.as_ref().unwrap()["alias"] == "staging"
    }) {
        let before = e.before.as_ref().map(|b| b["version"].as_u64().unwrap());
        assert_eq!(before, at, "event {} started from a stale alias", e.seq);
        at = Some(e.after.as_ref().unwrap()["version"].as_u64().unwrap());
    }
}

async fn rollback_policy_and_retirement_keep_their_rules(mut fx: Fixture) {
    let registry = fx.replica().await;
    let model = name("rules");
    for i in 0..3 {
        push(&registry, &model, format!("r{i}").as_bytes()).await;
    }
    registry
        .set_alias(&model, "production", 2, "a")
        .await
        .unwrap();
    registry
        .set_alias(&model, "production", 3, "a")
        .await
        .unwrap();
    assert_eq!(
        registry
            .rollback_alias(&model, "production", "a")
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        registry
            .rollback_alias(&model, "production", "a")
            .await
            .unwrap(),
        1
    );
    assert!(matches!(
        registry.rollback_alias(&model, "production", "a").await,
        Err(Error::Conflict(_))
    ));
    registry.set_alias(&model, "canary", 3, "a").await.unwrap();
    let policy = RoutingPolicy {
        split: vec![
            WeightedTarget {
                target: Target::Alias("production".into()),
                weight: 90,
            },
            WeightedTarget {
                target: Target::Alias("canary".into()),
                weight: 10,
            },
        ],
        sticky_header: None,
        shadow: None,
    };
    registry
        .set_policy(&model, Some(&policy), "a")
        .await
        .unwrap();
    assert_eq!(registry.policy(&model).await.unwrap(), Some(policy));
    assert!(matches!(
        registry.delete_alias(&model, "canary", "a").await,
        Err(Error::Conflict(_))
    ));
    assert!(matches!(
        registry.archive_version(&model, 3, "a").await,
        Err(Error::Conflict(_))
    ));
    registry.set_policy(&model, None, "a").await.unwrap();
    registry.delete_alias(&model, "canary", "a").await.unwrap();
    registry.archive_version(&model, 3, "a").await.unwrap();
    assert!(registry.version(&model, 3).await.unwrap().archived);
    assert!(matches!(
        registry.set_alias(&model, "production", 3, "a").await,
        Err(Error::Conflict(_))
    ));
    let snapshot = registry.routing_snapshot(&model).await.unwrap().unwrap();
    assert_eq!(snapshot.newest, Some(2));
    assert_eq!(snapshot.aliases, [("production".to_owned(), 1)]);
}

async fn a_follower_reading_by_sequence_number_misses_no_event(mut fx: Fixture) {
    let replicas = [fx.replica().await, fx.replica().await, fx.replica().await];
    let follower = fx.replica().await;
    let writers: Vec<_> = replicas
        .iter()
        .enumerate()
        .map(|(r, registry)| {
            let registry = registry.clone();
            tokio::spawn(async move {
                let model = name(&format!("feed-{r}"));
                for i in 0..6 {
                    push(&registry, &model, format!("{r}/{i}").as_bytes()).await;
                }
            })
        })
        .collect();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (follower, done) = (follower.clone(), done.clone());
        tokio::spawn(async move {
            let (mut seen, mut last) = (Vec::new(), 0);
            loop {
                let finished = done.load(std::sync::atomic::Ordering::Acquire);
                let page = follower.events(None, last, 1000).await.unwrap();
                for e in page {
                    assert!(e.seq > last);
                    last = e.seq;
                    seen.push(e.seq);
                }
                if finished {
                    return seen;
                }
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
        })
    };
    for writer in writers {
        writer.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    let seen = reader.await.unwrap();
    let all: Vec<i64> = follower
        .events(None, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seen, all, "the follower skipped events that committed late");
    assert_eq!(all.len(), 3 * 7); // six pushes and one alias.set per model
    assert_eq!(
        follower.last_event_seq().await.unwrap(),
        *all.last().unwrap()
    );
}

async fn keys_settings_and_reference_data_round_trip(mut fx: Fixture) {
    let registry = fx.replica().await;
    let other = fx.replica().await;
    let key = registry
        .create_key(
            modelbay_registry::NewKey {
                id: "k1".into(),
                label: "ci".into(),
                role: modelbay_core::Role::Consumer,
                models: Vec::new(),
                digest: "00".repeat(32),
                limits: Default::default(),
                expires_at: Some(chrono::Utc::now() + chrono::Duration::days(1)),
                client_cert: None,
            },
            "admin",
        )
        .await
        .unwrap();
    assert_eq!(other.keys().await.unwrap(), [key]);
    let revoked = registry.revoke_key("k1", "admin").await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(other.keys().await.unwrap()[0].revoked_at.is_some());
    assert!(matches!(
        registry.revoke_key("k2", "admin").await,
        Err(Error::KeyNotFound(_))
    ));
    let model = name("tabular");
    push(&registry, &model, b"t").await;
    let batching = modelbay_core::TensorBatching {
        max_batch_size: 16,
        ..Default::default()
    };
    registry.set_batching(&model, &batching, "a").await.unwrap();
    assert_eq!(other.batching(&model).await.unwrap(), Some(batching));
    let stats = serde_json::json!({ "rows": 3 });
    registry
        .set_reference(&model, 1, &stats, serde_json::json!({ "rows": 3 }), "a")
        .await
        .unwrap();
    assert_eq!(other.reference(&model, 1).await.unwrap(), Some(stats));
    let kinds = event_kinds(&other, None).await;
    assert_eq!(
        kinds,
        [
            EventKind::KeyCreated,
            EventKind::KeyRevoked,
            EventKind::Push,
            EventKind::AliasSet,
            EventKind::BatchingSet,
            EventKind::ReferenceSet
        ]
    );
}

async fn deleting_a_version_keeps_a_blob_another_version_shares(mut fx: Fixture) {
    let a = fx.replica().await;
    let b = fx.replica().await;
    let (x, y) = (name("x"), name("y"));
    push(&a, &x, b"same").await;
    push(&a, &x, b"other").await;
    push(&b, &y, b"same").await;
    a.delete_version(&x, 2, "t").await.unwrap();
    // Version 1 of x is production: refused.
    assert!(matches!(
        a.delete_version(&x, 1, "t").await,
        Err(Error::Conflict(_))
    ));
    push(&b, &y, b"more").await;
    b.set_alias(&y, "production", 2, "t").await.unwrap();
    b.delete_version(&y, 1, "t").await.unwrap();
    // x@1 still holds "same".
    let v = a.version(&x, 1).await.unwrap();
    assert_eq!(&a.read_artifact(&v).await.unwrap()[..], b"same");
    // A deleted number is never reused.
    assert_eq!(push(&b, &y, b"again").await, 3);
}
