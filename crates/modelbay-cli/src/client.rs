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
    /// API key sent as a bearer token.
    #[arg(long, env = "MODELBAY_API_KEY", global = true, hide_env_values = true)]
    pub api_key: Option<String>,
    /// PEM CA certificate to trust for an https server (besides the system's roots).
    #[arg(long, env = "MODELBAY_CA_CERT", global = true)]
    pub ca_cert: Option<std::path::PathBuf>,
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

impl ClientArgs {
    /// The HTTP client for the server: the API key on every request, the CA trusted.
    pub fn http(&self) -> anyhow::Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder();
        if let Some(key) = &self.api_key {
            let mut value =
                reqwest::header::HeaderValue::from_str(&format!("Bearer {}", key.trim()))
                    .context("the API key is not valid header text")?;
            value.set_sensitive(true);
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(reqwest::header::AUTHORIZATION, value);
            builder = builder.default_headers(headers);
        }
        if let Some(path) = &self.ca_cert {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read the CA certificate {}", path.display()))?;
            let certificate = reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("{} is not a PEM certificate", path.display()))?;
            builder = builder.add_root_certificate(certificate);
        }
        builder.build().context("cannot build the HTTP client")
    }
}
