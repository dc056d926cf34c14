//! The serving certificate: loaded (with an optional client CA that API server certificates
//! must chain to), and re-read when the files change (a bad new pair is refused, the old kept).

use std::path::Path;
use std::sync::Arc;

use axum_server::tls_rustls::RustlsConfig;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::ServeOptions;
use crate::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCert { path: String },
    #[error("{path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey { path: String },
    #[error("the certificate and key do not form a usable TLS identity: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client CA {path} is not usable: {message}")]
    ClientCa { path: String, message: String },
}

fn read_file(p: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(p).map_err(|source| TlsError::Read {
        path: p.display().to_string(),
        source,
    })
}

fn pem_certs(p: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file(p)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCert {
            path: p.display().to_string(),
        });
    }
    Ok(certs)
}

fn client_verifier(
    ca: &Path,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let bad = |message: String| TlsError::ClientCa {
        path: ca.display().to_string(),
        message,
    };
    let mut roots = rustls::RootCertStore::empty();
    for c in pem_certs(ca)? {
        roots.add(c).map_err(|e| bad(e.to_string()))?;
    }
    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| bad(e.to_string()))
}

/// Builds the rustls config (TLS 1.2 and 1.3, ALPN h2 and http/1.1) from PEM files; with
/// `client_ca`, clients must present a certificate that chains to it.
pub fn tls_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = pem_certs(cert)?;
    let key_pem = read_file(key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::NoKey {
        path: key.display().to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match client_ca {
        Some(ca) => builder.with_client_cert_verifier(client_verifier(ca, provider)?),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The contents of the cert, key (and client CA) files: a change in any of them is a
/// rotation. Contents, not modification times: two versions written within one clock tick
/// (or copied with their times kept) would look the same by mtime.
pub(super) fn cert_files(opts: &ServeOptions) -> Vec<Option<Vec<u8>>> {
    let mut files = vec![&opts.tls_cert, &opts.tls_key];
    files.extend(&opts.client_ca);
    files.into_iter().map(|p| std::fs::read(p).ok()).collect()
}

pub(super) fn load_tls(
    opts: &ServeOptions,
    metrics: &Metrics,
) -> Result<Arc<ServerConfig>, TlsError> {
    let config = tls_config(&opts.tls_cert, &opts.tls_key, opts.client_ca.as_deref())?;
    metrics.cert_loaded(
        std::fs::read(&opts.tls_cert)
            .ok()
            .and_then(|pem| crate::certs::not_after_pem(&pem)),
    );
    Ok(config)
}

/// Polls the cert, key (and client CA) files (Secret volumes change them by swapping a
/// symlink); on change, swaps in the new TLS config
/// atomically (connections already open keep theirs), or keeps the old one, with an error
/// log and metric, when the new files do not load.
pub(super) async fn watch_certs(config: RustlsConfig, opts: ServeOptions, metrics: Arc<Metrics>) {
    let mut seen = cert_files(&opts);
    loop {
        tokio::time::sleep(opts.cert_poll).await;
        let now = cert_files(&opts);
        if now == seen {
            continue;
        }
        seen = now;
        match load_tls(&opts, &metrics) {
            Ok(c) => {
                config.reload_from_config(c);
                metrics.cert_reload(true);
                tracing::info!(cert = %opts.tls_cert.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                metrics.cert_reload(false);
                tracing::error!(error = %e, "new TLS certificate not loaded; keeping the previous one")
            }
        }
    }
}
