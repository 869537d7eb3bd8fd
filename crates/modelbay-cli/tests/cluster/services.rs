//! The services a cluster test runs on loopback, each started by the test itself: a private
//! PostgreSQL (so it can be stopped and started again), moto's S3 server, and nginx in front of
//! the replicas (HTTP/1.1 upstreams and gRPC over h2c).

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use tempfile::TempDir;

/// A free loopback port (bound, then released for the service to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn wait_for_port(port: u16, what: &str) {
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on port {port} within 15 s");
}

/// A PostgreSQL server of the test's own, in a temporary directory.
pub struct Postgres {
    dir: TempDir,
    bin: PathBuf,
    pub port: u16,
}

impl Postgres {
    pub fn start() -> Self {
        let bin = std::env::var_os("MODELBAY_PG_BIN")
            .map(PathBuf::from)
            .or_else(|| {
                let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                    .ok()?
                    .flatten()
                    .map(|e| e.path().join("bin"))
                    .filter(|b| b.join("initdb").exists())
                    .collect();
                found.sort();
                found.pop()
            })
            .expect("PostgreSQL's server binaries (initdb, pg_ctl) under /usr/lib/postgresql");
        let dir = tempfile::tempdir().unwrap();
        if running_as_root() {
            // PostgreSQL refuses to run as root: its files belong to the postgres user.
            assert!(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap()
                .success());
        }
        let postgres = Self {
            dir,
            bin,
            port: free_port(),
        };
        postgres.run(
            "initdb",
            &[
                "-D",
                &postgres.data(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
            ],
        );
        postgres.start_again();
        postgres
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_string_lossy().into_owned()
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let path = self.bin.join(tool);
        let mut command = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let output = command
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn start_again(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log.to_string_lossy(),
                "-w",
                "start",
            ],
        );
    }

    pub fn stop(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
        if running_as_root() {
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"))
                .args(["-D", &self.data(), "-m", "immediate", "stop"])
                .output();
        }
    }
}

/// moto's S3-compatible server with one bucket.
pub struct Moto {
    child: Child,
    pub port: u16,
}

pub const BUCKET: &str = "modelbay";

impl Moto {
    pub async fn start() -> Self {
        let program =
            std::env::var("MODELBAY_MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        let port = free_port();
        let child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("moto_server ({program}; pip install 'moto[server]', or set MODELBAY_MOTO_SERVER): {e}")
            });
        wait_for_port(port, "moto_server");
        let created = reqwest::Client::new()
            .put(format!("http://127.0.0.1:{port}/{BUCKET}"))
            .send()
            .await
            .unwrap();
        assert!(created.status().is_success(), "create bucket: {created:?}");
        Self { child, port }
    }

    /// What a replica needs to reach the bucket.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT", format!("http://127.0.0.1:{}", self.port)),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx balancing HTTP and gRPC over the replicas; a request that finds a replica gone
/// (refused, reset) is sent to the next one.
pub struct Nginx {
    child: Child,
    _dir: TempDir,
    pub http_port: u16,
    pub grpc_port: u16,
}

impl Nginx {
    pub fn start(http_upstreams: &[u16], grpc_upstreams: &[u16]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (http_port, grpc_port) = (free_port(), free_port());
        let servers = |ports: &[u16]| -> String {
            ports
                .iter()
                .map(|p| format!("    server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;\n"))
                .collect()
        };
        let d = dir.path().display();
        let user = if running_as_root() {
            "user root root;"
        } else {
            ""
        };
        let config = format!(
            r#"{user}
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  client_max_body_size 512m;
  # nginx closes a client connection after 1,000 requests by default (GOAWAY); a request the
  # client sent as that happens is cancelled on the client's side. The load runs longer than
  # that on one connection, and a real deployment would raise it too.
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  upstream http_replicas {{
{http}    keepalive 64;
  }}
  upstream grpc_replicas {{
{grpc}    keepalive 64;
  }}
  server {{
    listen 127.0.0.1:{http_port};
    location / {{
      proxy_pass http://http_replicas;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization $http_authorization;
      proxy_buffering off;
      proxy_request_buffering on;
      proxy_read_timeout 120s;
      proxy_next_upstream error timeout non_idempotent;
      proxy_next_upstream_tries 3;
    }}
  }}
  server {{
    listen 127.0.0.1:{grpc_port} http2;
    location / {{
      grpc_pass grpc://grpc_replicas;
      grpc_next_upstream error timeout non_idempotent;
      grpc_next_upstream_tries 3;
    }}
  }}
}}
"#,
            http = servers(http_upstreams),
            grpc = servers(grpc_upstreams),
        );
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config).unwrap();
        let program = std::env::var("MODELBAY_NGINX").unwrap_or_else(|_| "/usr/sbin/nginx".into());
        let child = Command::new(&program)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("nginx ({program}; apt install nginx): {e}"));
        wait_for_port(http_port, "nginx");
        wait_for_port(grpc_port, "nginx (gRPC)");
        Self {
            child,
            _dir: dir,
            http_port,
            grpc_port,
        }
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory that outlives restarts of the replica using it.
pub fn replica_dir(root: &Path, index: usize) -> PathBuf {
    let dir = root.join(format!("replica-{index}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
