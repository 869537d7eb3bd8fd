//! `modelbay keys create | list | revoke`: API keys, through `/api/v1/keys` (an admin key is
//! needed). The secret of a new key is printed once; nothing can show it again.

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::{
    list::{table, text},
    versioning::send,
};
use crate::client::ClientArgs;

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create a key and print its secret (shown this once).
    Create(CreateArgs),
    /// List every key (never a secret).
    List(ListArgs),
    /// Revoke a key: it stops working at once.
    Revoke(RevokeArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// admin, publisher, consumer or viewer.
    #[arg(long)]
    pub role: String,
    /// Who or what the key is for (shown in lists and the audit trail).
    #[arg(long)]
    pub label: String,
    /// Model-name patterns the key is limited to, comma-separated (`credit-*`); publisher
    /// and consumer keys only.
    #[arg(long, value_delimiter = ',')]
    pub models: Vec<String>,
    /// Lifetime: 90s, 15m, 12h or 30d [default: no expiry].
    #[arg(long)]
    pub expires: Option<String>,
    /// Requests per second the key may send [default: the server's].
    #[arg(long)]
    pub requests_per_second: Option<f64>,
    /// Tokens per minute language models may generate for the key [default: the server's].
    #[arg(long)]
    pub tokens_per_minute: Option<u64>,
    /// Sequences at a language model at once [default: the server's].
    #[arg(long)]
    pub max_sequences: Option<u32>,
    /// SHA-256 fingerprint of a client certificate that also stands for the key over mTLS
    /// (`openssl x509 -noout -fingerprint -sha256 -in client.pem` prints it).
    #[arg(long)]
    pub client_cert_sha256: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Debug)]
pub struct RevokeArgs {
    /// The key's id (from `keys list`).
    pub id: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub async fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create(args) => create(args).await,
        KeysCommand::List(args) => list(args).await,
        KeysCommand::Revoke(args) => revoke(args).await,
    }
}

async fn create(args: CreateArgs) -> anyhow::Result<()> {
    let mut limits = serde_json::Map::new();
    if let Some(r) = args.requests_per_second {
        limits.insert("requests_per_second".into(), json!(r));
    }
    if let Some(t) = args.tokens_per_minute {
        limits.insert("tokens_per_minute".into(), json!(t));
    }
    if let Some(s) = args.max_sequences {
        limits.insert("max_sequences".into(), json!(s));
    }
    let mut body = json!({
        "role": args.role,
        "label": args.label,
        "models": args.models,
        "limits": limits,
    });
    if let Some(expires) = &args.expires {
        body["expires_in"] = json!(expires);
    }
    if let Some(fingerprint) = &args.client_cert_sha256 {
        // openssl prints `sha256 Fingerprint=AB:CD:…`; the part after '=' is the fingerprint.
        let fingerprint = fingerprint.rsplit('=').next().unwrap_or(fingerprint);
        body["client_cert_sha256"] = json!(fingerprint.trim());
    }
    let created = send(
        &args.client,
        reqwest::Method::POST,
        "/api/v1/keys",
        Some(body),
    )
    .await?;
    if args.client.json {
        println!("{}", serde_json::to_string_pretty(&created)?);
    } else {
        let key = &created["key"];
        eprintln!(
            "created key {} ({}, role {}); its secret is shown only now:",
            text(&key["id"]),
            text(&key["label"]),
            text(&key["role"])
        );
        println!("{}", text(&created["secret"]));
    }
    Ok(())
}

fn expiry(key: &Value) -> String {
    match (&key["revoked_at"], &key["expires_at"]) {
        (Value::String(at), _) => format!("revoked {at}"),
        (_, Value::String(at)) => format!("expires {at}"),
        _ => String::new(),
    }
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let body = send(&args.client, reqwest::Method::GET, "/api/v1/keys", None).await?;
    if args.client.json {
        println!("{}", serde_json::to_string_pretty(&body["keys"])?);
        return Ok(());
    }
    let mut t = table(&["ID", "LABEL", "ROLE", "MODELS", "CREATED", "STATE"]);
    for key in body["keys"].as_array().into_iter().flatten() {
        let models: Vec<String> = key["models"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
        t.add_row(vec![
            text(&key["id"]),
            text(&key["label"]),
            text(&key["role"]),
            if models.is_empty() {
                "*".into()
            } else {
                models.join(",")
            },
            text(&key["created_at"]),
            expiry(key),
        ]);
    }
    println!("{t}");
    Ok(())
}

async fn revoke(args: RevokeArgs) -> anyhow::Result<()> {
    let path = format!("/api/v1/keys/{}", args.id);
    let body = send(&args.client, reqwest::Method::DELETE, &path, None).await?;
    if args.client.json {
        println!("{}", serde_json::to_string_pretty(&body["key"])?);
    } else {
        println!("revoked key {}", text(&body["key"]["id"]));
    }
    Ok(())
}
