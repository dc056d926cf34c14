//! HTTPS server: axum over rustls (TLS 1.2+), `POST /inject`, `GET /healthz`, `GET /readyz`,
//! body limit, request timeout, certificate reload from disk, graceful shutdown.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum_server::tls_rustls::RustlsConfig;
use futures::StreamExt;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower_http::timeout::TimeoutLayer;

use crate::admission::{Admission, Answer, Outcome, ReviewError};
use crate::events::Events;
use crate::metrics::Metrics;
use crate::namespaces::{CacheState, Namespaces};

/// The API server never sends more than 3 MiB (its own request limit).
pub const BODY_LIMIT: usize = 3 * 1024 * 1024;

/// Bytes that unfinished review bodies may hold at once, over all connections and streams.
/// A body is charged its declared length (a chunked one the full [`BODY_LIMIT`], since its
/// cost is known only once read) before any of it is read; past the budget a request gets 503
/// at once. Pods are a few kB: this is thousands of ordinary reviews, or 8 maximal ones.
pub const BODY_BUDGET: usize = 8 * BODY_LIMIT;

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: SocketAddr,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// CA bundle that API server client certificates must chain to; none: no client check.
    pub client_ca: Option<PathBuf>,
    /// Plain-HTTP listener for /healthz, /readyz and /metrics (kubelet probes, Prometheus),
    /// which do not present a client certificate.
    pub admin_listen: Option<SocketAddr>,
    pub request_timeout: Duration,
    /// Limit for the TLS handshake and for the request headers (slow clients are cut off).
    pub header_timeout: Duration,
    /// After SIGTERM: how long to keep accepting, with readiness false, so that endpoints
    /// stop routing here before connections are refused.
    pub shutdown_delay: Duration,
    /// How long in-flight requests may take to finish once accepting stops.
    pub drain: Duration,
    /// How often the certificate files are checked for a change.
    pub cert_poll: Duration,
}

impl ServeOptions {
    /// Defaults for everything but the addresses and files.
    pub fn new(listen: SocketAddr, tls_cert: PathBuf, tls_key: PathBuf) -> ServeOptions {
        ServeOptions {
            listen,
            tls_cert,
            tls_key,
            client_ca: None,
            admin_listen: None,
            request_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(5),
            shutdown_delay: Duration::from_secs(5),
            drain: Duration::from_secs(10),
            cert_poll: Duration::from_secs(5),
        }
    }
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

struct AppState {
    admission: Admission,
    metrics: Arc<Metrics>,
    events: Option<Events>,
    namespaces: Namespaces,
    shutting_down: AtomicBool,
    /// Permits are bytes of [`BODY_BUDGET`].
    body_budget: Arc<Semaphore>,
}

/// A review's body, read into one buffer while its bytes are held against the budget.
struct ReviewBody {
    bytes: Vec<u8>,
    _held: OwnedSemaphorePermit,
}

fn refuse(status: StatusCode, message: &'static str) -> Response {
    (status, message).into_response()
}

impl ReviewBody {
    /// Charges the budget, then reads the body frame by frame into one buffer (so a body sent
    /// in tiny chunks costs its bytes, not a list of chunks).
    async fn read(
        app: &AppState,
        handler: &'static str,
        req: axum::extract::Request,
    ) -> Result<ReviewBody, Response> {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|d| d > BODY_LIMIT as u64) {
            app.metrics.refused(handler, "too_large");
            return Err(refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the body is over 3 MiB, more than the API server ever sends\n",
            ));
        }
        let cost = declared.map_or(BODY_LIMIT, |d| d as usize).max(1);
        let Ok(held) = app
            .body_budget
            .clone()
            .try_acquire_many_owned(u32::try_from(cost).unwrap_or(u32::MAX))
        else {
            app.metrics.refused(handler, "busy");
            tracing::warn!(
                handler,
                bytes = cost,
                budget = BODY_BUDGET,
                "refused a review: unfinished request bodies already hold the byte budget (503)"
            );
            return Err(refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many unfinished request bodies; retry\n",
            ));
        };
        let mut bytes = Vec::with_capacity(declared.map_or(0, |d| d as usize));
        let mut frames = req.into_body().into_data_stream();
        while let Some(frame) = frames.next().await {
            let Ok(frame) = frame else {
                app.metrics.refused(handler, "unreadable");
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "the request body could not be read\n",
                ));
            };
            if bytes.len() + frame.len() > cost {
                app.metrics.refused(handler, "too_large");
                return Err(refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the body is longer than declared or over 3 MiB\n",
                ));
            }
            bytes.extend_from_slice(&frame);
        }
        Ok(ReviewBody { bytes, _held: held })
    }
}

/// What the server shares with the rest of the process.
pub struct Services {
    pub metrics: Arc<Metrics>,
    /// Where events about admissions go (None: not recorded, e.g. without a cluster).
    pub events: Option<Events>,
    /// The namespace cache the admissions read, for readiness and metrics.
    pub namespaces: Namespaces,
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

fn log_inject(answer: &Answer, elapsed_us: u64) {
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
}

fn log_warn(answer: &Answer, _elapsed_us: u64) {
    if !answer.warnings.is_empty() {
        tracing::info!(object = %answer.pod, namespace = %answer.namespace,
            warnings = ?answer.warnings, "mesh mistakes reported");
    }
}

/// Runs one review handler: content type, panic catching, metrics, logs, event hand-off.
fn handle(
    app: &AppState,
    handler: &'static str,
    headers: &axum::http::HeaderMap,
    body: &[u8],
    run: impl FnOnce(&Admission, &[u8]) -> Result<Answer, ReviewError>,
    log: fn(&Answer, u64),
) -> Response {
    if let Err(r) = json_content_type(headers) {
        return *r;
    }
    let started = std::time::Instant::now();
    match std::panic::catch_unwind(AssertUnwindSafe(|| run(&app.admission, body))) {
        Ok(Ok(mut answer)) => {
            let elapsed = started.elapsed();
            app.metrics
                .answered(handler, &answer, elapsed.as_secs_f64());
            log(&answer, elapsed.as_micros() as u64);
            if let (Some(note), Some(events)) = (answer.event.take(), &app.events) {
                events.send(note);
            }
            ([(header::CONTENT_TYPE, "application/json")], answer.body).into_response()
        }
        Ok(Err(e)) => {
            app.metrics.rejected(handler);
            tracing::warn!(error = %e, bytes = body.len(), handler, "rejected a request that is not an AdmissionReview");
            (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response()
        }
        Err(_) => {
            app.metrics.panic(handler);
            tracing::error!(
                bytes = body.len(),
                handler,
                "the review handler panicked; answered 500"
            );
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error while reviewing the request\n",
            )
                .into_response()
        }
    }
}

async fn inject(State(app): State<Arc<AppState>>, req: axum::extract::Request) -> Response {
    let headers = req.headers().clone();
    match ReviewBody::read(&app, "inject", req).await {
        Ok(body) => handle(
            &app,
            "inject",
            &headers,
            &body.bytes,
            Admission::review,
            log_inject,
        ),
        Err(r) => r,
    }
}

async fn warn(State(app): State<Arc<AppState>>, req: axum::extract::Request) -> Response {
    let headers = req.headers().clone();
    match ReviewBody::read(&app, "warn", req).await {
        Ok(body) => handle(
            &app,
            "warn",
            &headers,
            &body.bytes,
            Admission::warn,
            log_warn,
        ),
        Err(r) => r,
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(app): State<Arc<AppState>>) -> Response {
    if app.shutting_down.load(Ordering::Acquire) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    match app.namespaces.state() {
        CacheState::Live => "ok\n".into_response(),
        CacheState::Stale(d) => format!(
            "ok (namespace watch failing for {:.0}s; answering from the last known namespaces)\n",
            d.as_secs_f64()
        )
        .into_response(),
        CacheState::NotSynced => (
            StatusCode::SERVICE_UNAVAILABLE,
            "namespace cache not synced yet\n",
        )
            .into_response(),
        CacheState::TooStale(d) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "namespace watch failing for {:.0}s, past the staleness limit; check the API server and the injector's RBAC\n",
                d.as_secs_f64()
            ),
        )
            .into_response(),
    }
}

async fn metrics(State(app): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(&app.namespaces),
    )
        .into_response()
}

/// `inject_route`: what answers `POST /inject` instead of the review (see [`serve_with_inject`]).
fn router(state: Arc<AppState>, timeout: Duration, inject_route: Option<MethodRouter>) -> Router {
    let inject_route = match inject_route {
        Some(route) => route.with_state(()),
        None => post(inject),
    };
    Router::new()
        .route("/inject", inject_route)
        .route("/warn", post(warn))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        // Reviews read their bodies through `ReviewBody` (413 on a declared length over the
        // limit before any of the body is read, the byte budget, one buffer); this limit is
        // for any other handler that extracts a body.
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .with_state(state)
}

/// The contents of the cert, key (and client CA) files: a change in any of them is a
/// rotation. Contents, not modification times: two versions written within one clock tick
/// (or copied with their times kept) would look the same by mtime.
fn cert_files(opts: &ServeOptions) -> Vec<Option<Vec<u8>>> {
    let mut files = vec![&opts.tls_cert, &opts.tls_key];
    files.extend(&opts.client_ca);
    files.into_iter().map(|p| std::fs::read(p).ok()).collect()
}

fn load_tls(opts: &ServeOptions, metrics: &Metrics) -> Result<Arc<ServerConfig>, TlsError> {
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
async fn watch_certs(config: RustlsConfig, opts: ServeOptions, metrics: Arc<Metrics>) {
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

fn admin_router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Serves until `shutdown` resolves; then readiness turns false while new requests are
/// still served for `shutdown_delay`, then accepting stops and in-flight requests get
/// `drain` to finish.
pub async fn serve(
    admission: Admission,
    opts: ServeOptions,
    services: Services,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_routes(admission, opts, services, None, shutdown).await
}

/// Serves exactly as [`serve`] does (TLS and client certificates, certificate reload, body
/// limit, header and request timeouts, health, readiness, metrics, `POST /warn`, graceful
/// shutdown), except that `POST /inject` is answered by `inject` instead of the admission
/// review. For a server that must cost what this stack costs minus the reviewing, such as the
/// benchmark floor of `tools/` (a constant answer); never for a cluster. `inject` is any axum
/// method router without state, e.g. `axum::routing::post(handler)`; the body limit and the
/// request timeout apply to it too.
pub async fn serve_with_inject(
    admission: Admission,
    opts: ServeOptions,
    services: Services,
    inject: MethodRouter,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_routes(admission, opts, services, Some(inject), shutdown).await
}

async fn serve_routes(
    admission: Admission,
    opts: ServeOptions,
    services: Services,
    inject_route: Option<MethodRouter>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let tls = RustlsConfig::from_config(load_tls(&opts, &services.metrics)?);
    let state = Arc::new(AppState {
        admission,
        metrics: services.metrics.clone(),
        events: services.events,
        namespaces: services.namespaces,
        shutting_down: AtomicBool::new(false),
        body_budget: Arc::new(Semaphore::new(BODY_BUDGET)),
    });
    let app = router(state.clone(), opts.request_timeout, inject_route);
    let listener = std::net::TcpListener::bind(opts.listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", opts.listen))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let handle = axum_server::Handle::new();
    let admin_stop = Arc::new(tokio::sync::Notify::new());
    if let Some(admin) = opts.admin_listen {
        let l = tokio::net::TcpListener::bind(admin)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {admin} (admin): {e}"))?;
        let stop = admin_stop.clone();
        let router = admin_router(state.clone());
        tracing::info!(addr = %admin, "admin endpoints listening (HTTP: /healthz /readyz /metrics)");
        tokio::spawn(async move {
            let served = axum::serve(l, router)
                .with_graceful_shutdown(async move { stop.notified().await })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "admin listener failed");
            }
        });
    }
    let h = handle.clone();
    let (delay, drain) = (opts.shutdown_delay, opts.drain);
    let st = state.clone();
    tokio::spawn(async move {
        shutdown.await;
        st.shutting_down.store(true, Ordering::Release);
        tracing::info!(
            delay_s = delay.as_secs_f64(),
            drain_s = drain.as_secs_f64(),
            "shutting down: readiness off, still serving until endpoints are updated"
        );
        tokio::time::sleep(delay).await;
        tracing::info!("no longer accepting connections; finishing in-flight requests");
        h.graceful_shutdown(Some(drain));
    });
    tokio::spawn(watch_certs(
        tls.clone(),
        opts.clone(),
        services.metrics.clone(),
    ));
    tracing::info!(%addr, client_ca = opts.client_ca.is_some(), "proxy-injector listening (HTTPS)");
    let mut server = axum_server::from_tcp_rustls(listener, tls)?
        .map(|a| a.handshake_timeout(opts.header_timeout))
        .handle(handle);
    server
        .http_builder()
        .http1()
        .header_read_timeout(Some(opts.header_timeout));
    server.serve(app.into_make_service()).await?;
    admin_stop.notify_waiters();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn app() -> AppState {
        AppState {
            admission: Admission::new(Arc::new(Config::default()), Namespaces::empty()),
            metrics: Arc::new(Metrics::new()),
            events: None,
            namespaces: Namespaces::empty(),
            shutting_down: AtomicBool::new(false),
            body_budget: Arc::new(Semaphore::new(BODY_BUDGET)),
        }
    }

    #[test]
    fn a_panic_in_review_is_answered_500_and_counted() {
        let app = app();
        let headers = axum::http::HeaderMap::new();
        let r = handle(
            &app,
            "inject",
            &headers,
            b"{}",
            |_, _| panic!("a bug in review"),
            log_inject,
        );
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let text = app.metrics.render(&app.namespaces);
        assert!(
            text.contains(r#"proxy_injector_panics_total{handler="inject"} 1"#),
            "{text}"
        );
        // The server goes on answering.
        let r = handle(
            &app,
            "inject",
            &headers,
            b"{}",
            Admission::review,
            log_inject,
        );
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let text = app.metrics.render(&app.namespaces);
        assert!(
            text.contains(
                r#"proxy_injector_admissions_total{handler="inject",result="rejected",reason="bad_request"} 1"#
            ),
            "{text}"
        );
    }
}
