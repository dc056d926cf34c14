//! HTTPS server: axum over rustls (TLS 1.2+), `POST /inject`, `GET /healthz`, `GET /readyz`,
//! body limit, request timeout, certificate reload from disk, graceful shutdown.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum_server::tls_rustls::RustlsConfig;
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tower_http::timeout::TimeoutLayer;

use crate::admission::{Admission, Outcome};

/// The API server never sends more than 3 MiB (its own request limit).
pub const BODY_LIMIT: usize = 3 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    pub request_timeout: Duration,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub drain: Duration,
    /// How often the certificate files are checked for a change.
    pub cert_poll: Duration,
    /// Benchmark floor: answer every `POST /inject` with one constant, pre-serialised
    /// AdmissionReview, through the same stack (TLS, limits, timeout) without reviewing.
    pub constant_response: bool,
}

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
}

/// Builds the rustls config (TLS 1.2 and 1.3, ALPN h2 and http/1.1) from PEM files.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsError::Read {
            path: p.display().to_string(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCert {
            path: cert.display().to_string(),
        });
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .ok()
        .flatten()
        .ok_or_else(|| TlsError::NoKey {
            path: key.display().to_string(),
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

struct AppState {
    admission: Admission,
    shutting_down: AtomicBool,
}

async fn warn(
    State(app): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = json_content_type(&headers) {
        return *r;
    }
    match std::panic::catch_unwind(AssertUnwindSafe(|| app.admission.warn(&body))) {
        Ok(Ok(answer)) => {
            if !answer.warnings.is_empty() {
                tracing::info!(object = %answer.pod, namespace = %answer.namespace,
                    warnings = ?answer.warnings, "mesh mistakes reported");
            }
            ([(header::CONTENT_TYPE, "application/json")], answer.body).into_response()
        }
        Ok(Err(e)) => (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
        Err(_) => {
            tracing::error!(
                bytes = body.len(),
                "the warnings handler panicked; answered 500"
            );
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error while reviewing the request\n",
            )
                .into_response()
        }
    }
}

/// The API server always sends `application/json`; anything else is a client mistake.
fn json_content_type(headers: &axum::http::HeaderMap) -> Result<(), Box<Response>> {
    match headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("")) {
        None => Ok(()),
        Some(ct) if ct.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")) => Ok(()),
        Some(ct) => Err(Box::new(
            (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Type {ct:?} is not supported: send an AdmissionReview as application/json\n"),
            )
                .into_response(),
        )),
    }
}

async fn inject(
    State(app): State<Arc<AppState>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = json_content_type(&headers) {
        return *r;
    }
    let started = std::time::Instant::now();
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| app.admission.review(&body)));
    match result {
        Ok(Ok(answer)) => {
            let elapsed_us = started.elapsed().as_micros() as u64;
            match &answer.outcome {
                Outcome::Injected { mode } => tracing::info!(
                    pod = %answer.pod, namespace = %answer.namespace, dry_run = answer.dry_run,
                    mode = mode.as_str(), elapsed_us, "injected"
                ),
                Outcome::Skipped(reason) if !answer.warnings.is_empty() => tracing::warn!(
                    pod = %answer.pod, namespace = %answer.namespace, reason = reason.code(),
                    detail = %reason, elapsed_us, "not injected"
                ),
                Outcome::Skipped(reason) => tracing::info!(
                    pod = %answer.pod, namespace = %answer.namespace, reason = reason.code(),
                    detail = %reason, elapsed_us, "not injected"
                ),
                Outcome::Denied(reason) => tracing::warn!(
                    pod = %answer.pod, namespace = %answer.namespace, reason = reason.code(),
                    detail = %reason, elapsed_us, "denied"
                ),
            }
            ([(header::CONTENT_TYPE, "application/json")], answer.body).into_response()
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, bytes = body.len(), "rejected a request that is not an AdmissionReview");
            (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response()
        }
        Err(_) => {
            tracing::error!(
                bytes = body.len(),
                "the admission handler panicked; answered 500"
            );
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error while reviewing the request\n",
            )
                .into_response()
        }
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(app): State<Arc<AppState>>) -> Response {
    if app.shutting_down.load(Ordering::Acquire) {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response()
    } else if !app.admission.namespaces().is_ready() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "namespace cache not synced yet\n",
        )
            .into_response()
    } else {
        "ok\n".into_response()
    }
}

static CONSTANT_RESPONSE: &[u8] = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"00000000-0000-4000-8000-000000000000","allowed":true}}"#;

async fn constant(_body: Bytes) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        Bytes::from_static(CONSTANT_RESPONSE),
    )
        .into_response()
}

fn router(state: Arc<AppState>, timeout: Duration, constant_response: bool) -> Router {
    let inject_route = if constant_response {
        post(constant)
    } else {
        post(inject)
    };
    Router::new()
        .route("/inject", inject_route)
        .route("/warn", post(warn))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .with_state(state)
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Polls the cert and key files; on change, swaps in the new TLS config, or keeps the old
/// one (with an error log) when the new files do not load.
async fn watch_certs(config: RustlsConfig, opts: ServeOptions) {
    let mut seen = (mtime(&opts.tls_cert), mtime(&opts.tls_key));
    loop {
        tokio::time::sleep(opts.cert_poll).await;
        let now = (mtime(&opts.tls_cert), mtime(&opts.tls_key));
        if now == seen {
            continue;
        }
        seen = now;
        match tls_config(&opts.tls_cert, &opts.tls_key) {
            Ok(c) => {
                config.reload_from_config(c);
                tracing::info!(cert = %opts.tls_cert.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "new TLS certificate not loaded; keeping the previous one")
            }
        }
    }
}

/// Serves until `shutdown` resolves, then drains.
pub async fn serve(
    admission: Admission,
    opts: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let tls = RustlsConfig::from_config(tls_config(&opts.tls_cert, &opts.tls_key)?);
    let state = Arc::new(AppState {
        admission,
        shutting_down: AtomicBool::new(false),
    });
    let app = router(state.clone(), opts.request_timeout, opts.constant_response);
    let listener = std::net::TcpListener::bind(opts.listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", opts.listen))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let handle = axum_server::Handle::new();
    let h = handle.clone();
    let drain = opts.drain;
    tokio::spawn(async move {
        shutdown.await;
        state.shutting_down.store(true, Ordering::Release);
        tracing::info!(
            drain_s = drain.as_secs(),
            "shutting down: finishing in-flight requests"
        );
        h.graceful_shutdown(Some(drain));
    });
    tokio::spawn(watch_certs(tls.clone(), opts.clone()));
    tracing::info!(%addr, "proxy-injector listening (HTTPS)");
    axum_server::from_tcp_rustls(listener, tls)?
        .handle(handle)
        .serve(app.into_make_service())
        .await?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
