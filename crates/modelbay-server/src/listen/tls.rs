//! TLS for both listeners, with rustls: the certificate chain and key (and, for mutual TLS, the
//! CA that client certificates must chain to) are read from PEM files and read again when the
//! files change, without dropping a connection: each handshake takes the configuration current
//! at that moment, and a change that fails to load keeps the previous one.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime},
};

use parking_lot::RwLock;
use rustls::{server::WebPkiClientVerifier, RootCertStore, ServerConfig};
use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};

/// Where the certificate and key come from.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// With a CA, every client must present a certificate that chains to it (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

/// The live TLS configuration of a listener.
pub struct Tls {
    files: TlsFiles,
    /// Protocols offered in ALPN, most preferred first.
    alpn: Vec<Vec<u8>>,
    current: RwLock<Arc<ServerConfig>>,
    stamps: RwLock<Vec<Option<SystemTime>>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish()
    }
}

/// How often the files are checked for changes.
const RELOAD_EVERY: Duration = Duration::from_secs(2);

fn read_error(what: &str, path: &Path, e: impl std::fmt::Display) -> String {
    format!("cannot read the TLS {what} {}: {e}", path.display())
}

fn load(files: &TlsFiles, alpn: &[Vec<u8>]) -> Result<ServerConfig, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| read_error("certificate", &files.cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| read_error("certificate", &files.cert, e))?;
    if chain.is_empty() {
        return Err(read_error(
            "certificate",
            &files.cert,
            "no certificate in the file",
        ));
    }
    let key =
        PrivateKeyDer::from_pem_file(&files.key).map_err(|e| read_error("key", &files.key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS protocol versions: {e}"))?;
    let builder = match &files.client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for cert in
                CertificateDer::pem_file_iter(ca).map_err(|e| read_error("client CA", ca, e))?
            {
                roots
                    .add(cert.map_err(|e| read_error("client CA", ca, e))?)
                    .map_err(|e| read_error("client CA", ca, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| read_error("client CA", ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("the TLS certificate and key do not make a pair: {e}"))?;
    config.alpn_protocols = alpn.to_vec();
    Ok(config)
}

fn stamps(files: &TlsFiles) -> Vec<Option<SystemTime>> {
    let mut paths = vec![&files.cert, &files.key];
    paths.extend(files.client_ca.as_ref());
    paths
        .into_iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

impl Tls {
    /// Loads the files (an error names the file that failed), offering `alpn`.
    pub fn load(files: TlsFiles, alpn: &[&[u8]]) -> Result<Arc<Self>, String> {
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        let config = load(&files, &alpn)?;
        Ok(Arc::new(Self {
            stamps: RwLock::new(stamps(&files)),
            files,
            alpn,
            current: RwLock::new(Arc::new(config)),
        }))
    }

    /// The configuration for the next handshake.
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.read().clone())
    }

    /// Reads the files again if any changed since the last look.
    pub fn reload_if_changed(&self) {
        let now = stamps(&self.files);
        if *self.stamps.read() == now {
            return;
        }
        *self.stamps.write() = now;
        match load(&self.files, &self.alpn) {
            Ok(config) => {
                *self.current.write() = Arc::new(config);
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS files changed but could not be loaded; keeping the previous certificate")
            }
        }
    }

    /// Watches the files until the process ends.
    pub fn watch(self: &Arc<Self>) {
        let tls = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RELOAD_EVERY).await;
                let Some(tls) = tls.upgrade() else { return };
                tokio::task::spawn_blocking(move || tls.reload_if_changed())
                    .await
                    .ok();
            }
        });
    }
}
