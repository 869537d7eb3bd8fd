//! Version control from the command line: aliases, rollback, traffic policies, lifecycle and
//! the audit trail.

use clap::Args;
use serde_json::{json, Value};

use crate::client::{decode, ClientArgs};

use super::list::{table, text};

#[derive(Args, Debug)]
pub struct PromoteArgs {
    /// Model name.
    pub name: String,
    /// Version number to point the alias at.
    pub version: u32,
    /// Alias to move.
    #[arg(long, default_value = "production")]
    pub alias: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Debug)]
pub struct RollbackArgs {
    /// Model name.
    pub name: String,
    /// Alias to move back one step.
    #[arg(long, default_value = "production")]
    pub alias: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Debug)]
pub struct ModelArgs {
    /// Model name.
    pub name: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Debug)]
pub struct VersionArgs {
    /// Model name.
    pub name: String,
    /// Version number.
    pub version: u32,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Debug)]
pub struct TrafficArgs {
    /// Model name.
    pub name: String,
    /// Arms as TARGET=WEIGHT, where TARGET is an alias or a version number.
    #[arg(value_name = "TARGET=WEIGHT", required_unless_present = "clear")]
    pub split: Vec<String>,
    /// Request header whose value pins a caller to one arm (e.g. x-user-id).
    #[arg(long)]
    pub sticky_header: Option<String>,
    /// Alias or version that receives a copy of the traffic (recorded, never returned).
    #[arg(long)]
    pub shadow: Option<String>,
    /// Remove the policy.
    #[arg(long, conflicts_with_all = ["split", "sticky_header", "shadow"])]
    pub clear: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Only this model's events.
    pub name: Option<String>,
    /// Only events after this sequence number.
    #[arg(long, default_value_t = 0)]
    pub since: i64,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub(crate) async fn send(
    client: &ClientArgs,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let mut request = client.http()?.request(method, client.url(path));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach the server at {}: {e}", client.server))?;
    if response.status() == reqwest::StatusCode::NO_CONTENT {
        return Ok(Value::Null);
    }
    decode(response).await
}

fn print_alias(client: &ClientArgs, record: &Value) -> anyhow::Result<()> {
    if client.json {
        println!("{}", serde_json::to_string_pretty(record)?);
    } else {
        println!(
            "{}@{} -> v{}",
            text(&record["model"]),
            text(&record["alias"]),
            text(&record["version"])
        );
    }
    Ok(())
}

pub async fn promote(args: PromoteArgs) -> anyhow::Result<()> {
    let path = format!("/api/v1/models/{}/aliases/{}", args.name, args.alias);
    let record = send(
        &args.client,
        reqwest::Method::PUT,
        &path,
        Some(json!({ "version": args.version })),
    )
    .await?;
    print_alias(&args.client, &record)
}

pub async fn rollback(args: RollbackArgs) -> anyhow::Result<()> {
    let path = format!(
        "/api/v1/models/{}/aliases/{}/rollback",
        args.name, args.alias
    );
    let record = send(&args.client, reqwest::Method::POST, &path, None).await?;
    print_alias(&args.client, &record)
}

pub async fn aliases(args: ModelArgs) -> anyhow::Result<()> {
    let body = send(
        &args.client,
        reqwest::Method::GET,
        &format!("/api/v1/models/{}/aliases", args.name),
        None,
    )
    .await?;
    if args.client.json {
        println!("{}", serde_json::to_string_pretty(&body["aliases"])?);
        return Ok(());
    }
    let mut t = table(&["ALIAS", "VERSION", "UPDATED", "PREVIOUS"]);
    for a in body["aliases"].as_array().into_iter().flatten() {
        let history: Vec<String> = a["history"]
            .as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect();
        t.add_row(vec![
            text(&a["alias"]),
            text(&a["version"]),
            text(&a["updated_at"]),
            history.join(", "),
        ]);
    }
    println!("{t}");
    Ok(())
}

/// Parses `TARGET=WEIGHT` arms.
fn parse_split(arms: &[String]) -> anyhow::Result<Vec<Value>> {
    arms.iter()
        .map(|arm| {
            let (target, weight) = arm.split_once('=').ok_or_else(|| {
                anyhow::anyhow!("'{arm}' must be TARGET=WEIGHT, e.g. production=90")
            })?;
            let weight: u32 = weight.parse().map_err(|_| {
                anyhow::anyhow!("weight '{weight}' in '{arm}' is not a whole number")
            })?;
            Ok(json!({ "target": target, "weight": weight }))
        })
        .collect()
}

pub async fn traffic(args: TrafficArgs) -> anyhow::Result<()> {
    let path = format!("/api/v1/models/{}/policy", args.name);
    if args.clear {
        send(&args.client, reqwest::Method::DELETE, &path, None).await?;
        println!("{}: routing policy removed", args.name);
        return Ok(());
    }
    let mut policy = json!({ "split": parse_split(&args.split)? });
    if let Some(header) = &args.sticky_header {
        policy["sticky_header"] = json!(header);
    }
    if let Some(shadow) = &args.shadow {
        policy["shadow"] = json!(shadow);
    }
    let body = send(&args.client, reqwest::Method::PUT, &path, Some(policy)).await?;
    if args.client.json {
        println!("{}", serde_json::to_string_pretty(&body["policy"])?);
    } else {
        let arms: Vec<String> = body["policy"]["split"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| format!("{}={}", text(&a["target"]), text(&a["weight"])))
            .collect();
        println!("{}: traffic {}", args.name, arms.join(" "));
    }
    Ok(())
}

pub async fn archive(args: VersionArgs) -> anyhow::Result<()> {
    let path = format!(
        "/api/v1/models/{}/versions/{}/archive",
        args.name, args.version
    );
    send(&args.client, reqwest::Method::POST, &path, None).await?;
    println!("{} v{} archived", args.name, args.version);
    Ok(())
}

pub async fn delete(args: VersionArgs) -> anyhow::Result<()> {
    let path = format!("/api/v1/models/{}/versions/{}", args.name, args.version);
    send(&args.client, reqwest::Method::DELETE, &path, None).await?;
    println!("{} v{} deleted", args.name, args.version);
    Ok(())
}

pub async fn audit(args: AuditArgs) -> anyhow::Result<()> {
    let mut path = format!("/api/v1/events?since={}", args.since);
    if let Some(name) = &args.name {
        path.push_str(&format!("&model={name}"));
    }
    let body = send(&args.client, reqwest::Method::GET, &path, None).await?;
    if args.client.json {
        println!("{}", serde_json::to_string_pretty(&body["events"])?);
        return Ok(());
    }
    let mut t = table(&["SEQ", "AT", "ACTOR", "MODEL", "EVENT", "BEFORE", "AFTER"]);
    for e in body["events"].as_array().into_iter().flatten() {
        t.add_row(vec![
            text(&e["seq"]),
            text(&e["at"]),
            text(&e["actor"]),
            text(&e["model"]),
            text(&e["kind"]),
            text(&e["before"]),
            text(&e["after"]),
        ]);
    }
    println!("{t}");
    Ok(())
}
