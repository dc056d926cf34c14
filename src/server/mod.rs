//! HTTPS server: axum over rustls (TLS 1.2+), `POST /inject`, `GET /healthz`, `GET /readyz`,
//! body limit, request timeout, certificate reload from disk, graceful shutdown.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum_server::tls_rustls::RustlsConfig;
use tower_http::timeout::TimeoutLayer;

mod body;
mod conn;
mod tls;

pub use body::{BODY_BUDGET, BODY_LIMIT, BodyRate, CONNECTION_SHARE, SMALL_BODY, SMALL_RESERVE};
pub use conn::SHED_LOG_EVERY;
pub use tls::{TlsError, tls_config};

use body::{Bodies, ReviewBody};
use tls::{load_tls, watch_certs};

use crate::admission::{Admission, Answer, Outcome, ReviewError, SharedAdmission};
use crate::events::Events;
use crate::linkerd_config::{ConfigStatus, Status};
use crate::metrics::Metrics;
use crate::namespaces::{CacheState, Namespaces};

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
    /// A connection with no request in flight for this long is closed (HTTP/2: GOAWAY).
    pub idle_timeout: Duration,
    /// Connections open at once on the TLS port; at the cap a new one makes room by closing
    /// the one that has done nothing for longest (or is refused when all are busy).
    pub max_connections: usize,
    /// How a request body must keep arriving.
    pub body_rate: BodyRate,
}

/// Connections open at once on the admin port (kubelet probes, Prometheus).
pub const ADMIN_MAX_CONNECTIONS: usize = 64;

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
            idle_timeout: Duration::from_secs(30),
            max_connections: 512,
            body_rate: BodyRate::default(),
        }
    }
}

struct AppState {
    admission: SharedAdmission,
    /// Linkerd's ConfigMaps, when followed (`--watch-linkerd-config`), for readiness.
    linkerd_config: Option<Arc<ConfigStatus>>,
    metrics: Arc<Metrics>,
    events: Option<Events>,
    namespaces: Namespaces,
    shutting_down: AtomicBool,
    /// The byte budget of unfinished bodies and how they must arrive.
    bodies: Bodies,
}

/// What the server shares with the rest of the process.
pub struct Services {
    pub metrics: Arc<Metrics>,
    /// Where events about admissions go (None: not recorded, e.g. without a cluster).
    pub events: Option<Events>,
    /// The namespace cache the admissions read, for readiness and metrics.
    pub namespaces: Namespaces,
    /// Linkerd's ConfigMaps, when followed: readiness waits for them and says when a change
    /// was refused.
    pub linkerd_config: Option<Arc<ConfigStatus>>,
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
    let admission = app.admission.load();
    match std::panic::catch_unwind(AssertUnwindSafe(|| run(&admission, body))) {
        Ok(Ok(mut answer)) => {
            let elapsed = started.elapsed();
            app.metrics.answered(
                handler,
                answer.metric_labels(handler),
                elapsed.as_secs_f64(),
            );
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

/// One review endpoint: the body read against the budget, then reviewed by `run`.
async fn review(
    app: &AppState,
    handler: &'static str,
    req: axum::extract::Request,
    run: impl FnOnce(&Admission, &[u8]) -> Result<Answer, ReviewError>,
    log: fn(&Answer, u64),
) -> Response {
    let (parts, body) = req.into_parts();
    match ReviewBody::read(app, handler, &parts, body).await {
        Ok(body) => handle(app, handler, &parts.headers, &body.bytes, run, log),
        Err(r) => r,
    }
}

async fn inject(State(app): State<Arc<AppState>>, req: axum::extract::Request) -> Response {
    review(&app, "inject", req, Admission::review, log_inject).await
}

async fn warn(State(app): State<Arc<AppState>>, req: axum::extract::Request) -> Response {
    review(&app, "warn", req, Admission::warn, log_warn).await
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(app): State<Arc<AppState>>) -> Response {
    if app.shutting_down.load(Ordering::Acquire) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n").into_response();
    }
    let config_note = match app.linkerd_config.as_ref().map(|s| s.get()) {
        None | Some(Status::Applied) => String::new(),
        Some(Status::Waiting(reason)) => {
            return (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")).into_response();
        }
        Some(Status::KeptLastGood(reason)) => format!(
            " (Linkerd's config: the last good one is in use; the current one is refused: {reason})"
        ),
    };
    if !app.namespaces.limits_synced() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "ResourceQuota and LimitRange watches not synced yet (the injector needs list and watch \
             on resourcequotas and limitranges, see manifests/base/rbac.yaml)\n",
        )
            .into_response();
    }
    match app.namespaces.state() {
        CacheState::Live => format!("ok{config_note}\n").into_response(),
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
    admission: impl Into<SharedAdmission>,
    opts: ServeOptions,
    services: Services,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_routes(admission.into(), opts, services, None, shutdown).await
}

/// Serves exactly as [`serve`] does (TLS and client certificates, certificate reload, body
/// limit, header and request timeouts, health, readiness, metrics, `POST /warn`, graceful
/// shutdown), except that `POST /inject` is answered by `inject` instead of the admission
/// review. For a server that must cost what this stack costs minus the reviewing, such as the
/// benchmark floor of `tools/` (a constant answer); never for a cluster. `inject` is any axum
/// method router without state, e.g. `axum::routing::post(handler)`; the body limit and the
/// request timeout apply to it too.
pub async fn serve_with_inject(
    admission: impl Into<SharedAdmission>,
    opts: ServeOptions,
    services: Services,
    inject: MethodRouter,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_routes(admission.into(), opts, services, Some(inject), shutdown).await
}

async fn serve_routes(
    admission: SharedAdmission,
    opts: ServeOptions,
    services: Services,
    inject_route: Option<MethodRouter>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let tls = RustlsConfig::from_config(load_tls(&opts, &services.metrics)?);
    let state = Arc::new(AppState {
        admission,
        linkerd_config: services.linkerd_config,
        metrics: services.metrics.clone(),
        events: services.events,
        namespaces: services.namespaces,
        shutting_down: AtomicBool::new(false),
        bodies: Bodies::new(opts.body_rate),
    });
    let app = router(state.clone(), opts.request_timeout, inject_route);
    let listener = listen(opts.listen, "")?;
    let addr = listener.local_addr()?;
    let handle = axum_server::Handle::new();
    let admin_handle = axum_server::Handle::new();
    if let Some(admin) = opts.admin_listen {
        let l = listen(admin, " (admin)")?;
        let admin = l.local_addr()?;
        let limits = conn::Limits::new(
            "admin",
            ADMIN_MAX_CONNECTIONS,
            opts.idle_timeout,
            opts.header_timeout,
            services.metrics.clone(),
        );
        let mut server = axum_server::from_tcp(l)?
            .acceptor(conn::Guard(limits))
            .first_request_timeout(opts.header_timeout)
            .handle(admin_handle.clone());
        server
            .http_builder()
            .http1()
            .header_read_timeout(Some(opts.header_timeout));
        let router = admin_router(state.clone());
        tracing::info!(addr = %admin, "admin endpoints listening (HTTP: /healthz /readyz /metrics)");
        tokio::spawn(async move {
            if let Err(e) = server.serve(router.into_make_service()).await {
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
    let limits = conn::Limits::new(
        "webhook",
        opts.max_connections,
        opts.idle_timeout,
        opts.header_timeout,
        services.metrics.clone(),
    );
    let mut server = axum_server::from_tcp_rustls(listener, tls)?
        .map(|a| {
            a.handshake_timeout(opts.header_timeout)
                .acceptor(conn::Guard(limits))
        })
        .first_request_timeout(opts.header_timeout)
        .handle(handle);
    server
        .http_builder()
        .http1()
        .header_read_timeout(Some(opts.header_timeout));
    server.serve(app.into_make_service()).await?;
    admin_handle.graceful_shutdown(Some(Duration::from_secs(1)));
    tracing::info!("stopped");
    Ok(())
}

/// Connections the kernel queues for `accept`. Under a flood of connections the queue is full;
/// past it a new connection's SYN is dropped and its client retries only after a second, so it
/// is longer than std's 128 (the kernel caps it at `net.core.somaxconn`, 4096 by default).
pub const LISTEN_BACKLOG: u32 = 1024;

/// A non-blocking listener on `addr` with [`LISTEN_BACKLOG`].
fn listen(addr: SocketAddr, what: &str) -> anyhow::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    };
    let listener = socket
        .and_then(|s| {
            s.set_reuseaddr(true)?;
            s.bind(addr)?;
            s.listen(LISTEN_BACKLOG)
        })
        .and_then(|l| l.into_std())
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}{what}: {e}"))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
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
            admission: Admission::new(Arc::new(Config::default()), Namespaces::empty()).into(),
            linkerd_config: None,
            metrics: Arc::new(Metrics::new()),
            events: None,
            namespaces: Namespaces::empty(),
            shutting_down: AtomicBool::new(false),
            bodies: Bodies::new(BodyRate::default()),
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
