//! `modelbay models` and `modelbay versions NAME`: tables (or JSON) from the management API.

use clap::Args;
use comfy_table::{presets::UTF8_BORDERS_ONLY, Table};
use serde_json::Value;

use crate::client::{decode, ClientArgs};

#[derive(Args, Debug)]
pub struct ModelsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Debug)]
pub struct VersionsArgs {
    /// Model name.
    pub name: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

async fn get(client: &ClientArgs, path: &str) -> anyhow::Result<Value> {
    let response = client
        .http()?
        .get(client.url(path))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the server at {}: {e}", client.server))?;
    decode(response).await
}

pub fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_BORDERS_ONLY)
        .set_header(header.to_vec());
    table
}

pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub async fn models(args: ModelsArgs) -> anyhow::Result<()> {
    let body = get(&args.client, "/api/v1/models").await?;
    if args.client.json {
        println!("{}", serde_json::to_string_pretty(&body["models"])?);
        return Ok(());
    }
    let mut t = table(&["NAME", "LATEST", "VERSIONS", "UPDATED"]);
    for m in body["models"].as_array().into_iter().flatten() {
        t.add_row(vec![
            text(&m["name"]),
            text(&m["latest_version"]),
            text(&m["version_count"]),
            text(&m["updated_at"]),
        ]);
    }
    println!("{t}");
    Ok(())
}

pub async fn versions(args: VersionsArgs) -> anyhow::Result<()> {
    let body = get(
        &args.client,
        &format!("/api/v1/models/{}/versions", args.name),
    )
    .await?;
    if args.client.json {
        println!("{}", serde_json::to_string_pretty(&body["versions"])?);
        return Ok(());
    }
    let mut t = table(&[
        "VERSION",
        "ALIASES",
        "DIGEST",
        "SIZE",
        "FORMAT",
        "CREATED",
        "LABELS",
        "DESCRIPTION",
    ]);
    for v in body["versions"].as_array().into_iter().flatten() {
        let digest = text(&v["digest"]);
        let labels = v["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}={}", text(v)))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default();
        let mut aliases: Vec<String> = v["aliases"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
        if v["archived"] == Value::Bool(true) {
            aliases.push("(archived)".into());
        }
        t.add_row(vec![
            text(&v["version"]),
            aliases.join(","),
            digest.chars().take(19).collect(),
            text(&v["size"]),
            text(&v["format"]),
            text(&v["created_at"]),
            labels,
            text(&v["description"]),
        ]);
    }
    println!("{t}");
    Ok(())
}

#[derive(Args, Debug)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `modelbay cluster`: every replica sharing the registry.
pub async fn cluster(args: ClusterArgs) -> anyhow::Result<()> {
    let body = get(&args.client, "/api/v1/cluster").await?;
    if args.client.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    let mut t = table(&[
        "REPLICA",
        "ADDRESS",
        "STATE",
        "BINARY",
        "LAST EVENT",
        "BEHIND",
        "LOADED",
        "HEARTBEAT",
    ]);
    for r in body["replicas"].as_array().into_iter().flatten() {
        let loaded: Vec<String> = r["loaded"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| format!("{}@{}", text(&l["model"]), text(&l["version"])))
            .collect();
        t.add_row(vec![
            text(&r["id"]),
            text(&r["address"]),
            text(&r["state"]),
            text(&r["binary_version"]),
            text(&r["last_event"]),
            text(&r["behind"]),
            loaded.join(" "),
            text(&r["heartbeat_at"]),
        ]);
    }
    println!("{t}");
    println!("newest registry event: {}", text(&body["newest_event"]));
    Ok(())
}
