//! Per-connection limits, for the TLS port and the admin port alike: a cap on open
//! connections (one over it is closed at once, before its TLS handshake), and an idle timeout
//! (a connection with no request in flight for that long is closed: GOAWAY on HTTP/2, then
//! an abort if the client does not go). The time before the first request is bounded by the
//! server's first-request timeout, and HTTP/1.1's keep-alive wait by its header timeout; this
//! covers the rest: an HTTP/2 connection that made a request and then only keeps the
//! connection open (answering pings costs an attacker nothing).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::http::Request;
use axum_server::ConnectionShutdown;
use axum_server::accept::Accept;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;

/// The limits of one listener (shared by its connections).
pub(super) struct Limits {
    /// Permits are open connections.
    open: Arc<Semaphore>,
    cap: usize,
    idle: Duration,
    /// After the graceful close of an idle connection, how long the client has to go.
    grace: Duration,
    listener: &'static str,
    metrics: Arc<Metrics>,
    epoch: Instant,
}

impl Limits {
    pub(super) fn new(
        listener: &'static str,
        cap: usize,
        idle: Duration,
        grace: Duration,
        metrics: Arc<Metrics>,
    ) -> Arc<Limits> {
        Arc::new(Limits {
            open: Arc::new(Semaphore::new(cap)),
            cap,
            idle,
            grace,
            listener,
            metrics,
            epoch: Instant::now(),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

/// What one connection shares between its requests and its idle watchdog.
struct Conn {
    _slot: OwnedSemaphorePermit,
    limits: Arc<Limits>,
    in_flight: AtomicUsize,
    /// When the last request ended (ms since `Limits::epoch`).
    idle_since: AtomicU64,
    /// The connection's close handle, known from its first request on.
    shutdown: OnceLock<ConnectionShutdown>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.limits.metrics.connection_closed(self.limits.listener);
    }
}

/// The innermost acceptor: takes a slot (or refuses the connection) and tracks requests.
#[derive(Clone)]
pub(super) struct Guard(pub(super) Arc<Limits>);

impl<I, S> Accept<I, S> for Guard {
    type Stream = I;
    type Service = Tracked<S>;
    type Future = std::future::Ready<io::Result<(I, Tracked<S>)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let limits = &self.0;
        let Ok(slot) = limits.open.clone().try_acquire_owned() else {
            limits.metrics.connection(limits.listener, "refused");
            return std::future::ready(Err(io::Error::other(format!(
                "{} connections open on the {} listener, the limit: connection closed",
                limits.cap, limits.listener
            ))));
        };
        limits.metrics.connection(limits.listener, "accepted");
        let conn = Arc::new(Conn {
            _slot: slot,
            limits: limits.clone(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(limits.now_ms()),
            shutdown: OnceLock::new(),
        });
        tokio::spawn(watch_idle(Arc::downgrade(&conn)));
        std::future::ready(Ok((
            stream,
            Tracked {
                inner: service,
                conn,
            },
        )))
    }
}

/// Closes the connection once it has had no request in flight for the idle timeout.
async fn watch_idle(conn: Weak<Conn>) {
    let mut wait = match conn.upgrade() {
        Some(c) => c.limits.idle,
        None => return,
    };
    loop {
        tokio::time::sleep(wait).await;
        let Some(c) = conn.upgrade() else { return };
        let idle_for = Duration::from_millis(
            c.limits
                .now_ms()
                .saturating_sub(c.idle_since.load(Ordering::Acquire)),
        );
        if c.in_flight.load(Ordering::Acquire) > 0 || idle_for < c.limits.idle {
            wait = c
                .limits
                .idle
                .saturating_sub(idle_for)
                .max(Duration::from_millis(50));
            continue;
        }
        // Before its first request a connection is the first-request timeout's; it has no
        // close handle yet and is dropped by the server at that timeout.
        let Some(shutdown) = c.shutdown.get().cloned() else {
            wait = c.limits.idle;
            continue;
        };
        let (grace, limits) = (c.limits.grace, c.limits.clone());
        drop(c);
        limits.metrics.connection(limits.listener, "idle_closed");
        shutdown.graceful_shutdown();
        tokio::time::sleep(grace).await;
        if conn.upgrade().is_some() {
            shutdown.shutdown();
        }
        return;
    }
}

/// A connection's service: counts its requests in flight.
#[derive(Clone)]
pub(super) struct Tracked<S> {
    inner: S,
    conn: Arc<Conn>,
}

impl<S, B> tower_service::Service<Request<B>> for Tracked<S>
where
    S: tower_service::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = InFlight<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if self.conn.shutdown.get().is_none()
            && let Some(s) = req.extensions().get::<ConnectionShutdown>()
        {
            let _ = self.conn.shutdown.set(s.clone());
        }
        self.conn.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight {
            inner: Box::pin(self.inner.call(req)),
            conn: self.conn.clone(),
        }
    }
}

/// A request in flight; its end (answered, failed or dropped) restarts the idle clock.
pub(super) struct InFlight<F> {
    inner: Pin<Box<F>>,
    conn: Arc<Conn>,
}

impl<F: Future> Future for InFlight<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<F> Drop for InFlight<F> {
    fn drop(&mut self) {
        let c = &self.conn;
        c.idle_since.store(c.limits.now_ms(), Ordering::Release);
        c.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}
