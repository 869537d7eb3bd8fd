//! The HTTP client the management commands share.

use anyhow::{anyhow, Context};
use clap::Args;
use serde::de::DeserializeOwned;

/// Where the server is, and how to print answers.
#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// Base URL of the modelbay server.
    #[arg(
        long,
        env = "MODELBAY_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

impl ClientArgs {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.trim_end_matches('/'))
    }
}

/// Turns a response into its JSON body, or an error carrying the server's message.
pub async fn decode<T: DeserializeOwned>(response: reqwest::Response) -> anyhow::Result<T> {
    let status = response.status();
    let text = response
        .text()
        .await
        .context("cannot read the server's answer")?;
    if !status.is_success() {
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or(text);
        return Err(anyhow!("server answered {status}: {message}"));
    }
    serde_json::from_str(&text).context("the server's answer is not the expected JSON")
}

pub fn http() -> reqwest::Client {
    reqwest::Client::new()
}
