//! Per-connection limits, for the TLS port and the admin port alike.
//!
//! - A cap on open connections. At the cap a new connection makes room instead of being
//!   refused: the connection that has done nothing for longest is closed (evicted), first among
//!   those that never had a request answered (oldest first: a flood of connections that
//!   handshake and then wait), then among those that have (idle longest first). A connection
//!   with a request in flight is never evicted; when every one has, the new one is refused.
//!   The API server's connections are few and busy, so a flood churns only its own.
//! - An idle timeout: a connection with no request in flight for that long is closed (GOAWAY on
//!   HTTP/2, then an abort if the client does not go). The time before the first request is
//!   bounded by the server's first-request timeout (the header timeout, 5 s by default, much
//!   shorter than the 30 s idle timeout of a connection that has served reviews), and
//!   HTTP/1.1's keep-alive wait by its header timeout; this covers the rest: an HTTP/2
//!   connection that made a request and then only keeps the connection open (answering pings
//!   costs an attacker nothing).
//!
//! Eviction works at any stage of a connection (TLS handshake, HTTP/2 preface, idle): its
//! stream fails its next read or write, and is woken to find out.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::http::{Request, Response};
use axum_server::ConnectionShutdown;
use axum_server::accept::Accept;
use futures::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

use crate::logevery::LogEvery;
use crate::metrics::Metrics;

/// Marks a connection's `in_flight` once it is chosen for eviction (with no request in flight).
const EVICTING: usize = 1 << (usize::BITS - 1);

/// Shedding decisions are logged at most once per this interval (they are all counted).
pub const SHED_LOG_EVERY: Duration = Duration::from_secs(10);

/// The limits of one listener (shared by its connections).
pub(super) struct Limits {
    /// The open connections, by id.
    open: Mutex<HashMap<u64, Arc<State>>>,
    next_id: AtomicU64,
    cap: usize,
    idle: Duration,
    /// After the graceful close of an idle connection, how long the client has to go.
    grace: Duration,
    listener: &'static str,
    metrics: Arc<Metrics>,
    epoch: Instant,
    evicted_log: LogEvery,
    refused_log: LogEvery,
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
            open: Mutex::new(HashMap::with_capacity(cap.min(4096))),
            next_id: AtomicU64::new(0),
            cap,
            idle,
            grace,
            listener,
            metrics,
            epoch: Instant::now(),
            evicted_log: LogEvery::new(SHED_LOG_EVERY),
            refused_log: LogEvery::new(SHED_LOG_EVERY),
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<State>>> {
        // The map is consistent after any panic (single inserts and removes).
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new connection, making room at the cap; `None`: every open connection has a
    /// request in flight, the new one is refused.
    fn admit(&self) -> Option<Arc<State>> {
        let now = self.now_ms();
        let mut open = self.open();
        let victim = if open.len() >= self.cap {
            // The victim is claimed (no request in flight, marked evicting in one step), so a
            // request that starts meanwhile makes it pass to the next candidate.
            let mut passed = Vec::new();
            loop {
                let id = open
                    .iter()
                    .filter(|(id, s)| {
                        s.in_flight.load(Ordering::Acquire) == 0 && !passed.contains(*id)
                    })
                    .min_by_key(|(_, s)| s.eviction_rank())
                    .map(|(id, _)| *id)?;
                let claimed = open.get(&id).is_some_and(|s| {
                    s.in_flight
                        .compare_exchange(0, EVICTING, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                });
                if claimed {
                    break open.remove(&id);
                }
                passed.push(id);
            }
        } else {
            None
        };
        let state = Arc::new(State {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            opened_ms: now,
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(now),
            answered: AtomicU64::new(0),
            evicted: AtomicBool::new(false),
            waker: AtomicWaker::new(),
            shutdown: OnceLock::new(),
            bodies: AtomicUsize::new(0),
            ended: Notify::new(),
        });
        open.insert(state.id, state.clone());
        drop(open);
        if let Some(victim) = victim {
            self.make_room(&victim, now);
        }
        Some(state)
    }

    fn make_room(&self, victim: &State, now: u64) {
        victim.evict();
        self.metrics.connection(self.listener, "evicted");
        // Out of the registry, so out of the open count now (its task ends a moment later).
        self.metrics.connection_closed(self.listener);
        if let Some(skipped) = self.evicted_log.due() {
            tracing::warn!(
                listener = self.listener,
                cap = self.cap,
                evicted_answered_requests = victim.answered.load(Ordering::Relaxed),
                evicted_open_for_ms = now.saturating_sub(victim.opened_ms),
                evicted_since_last_line = skipped,
                "connection cap reached: closed the connection that had done nothing for longest \
                 to make room (a flood of idle connections, or --max-connections too low); \
                 see proxy_injector_connections_total{{result=\"evicted\"}}"
            );
        }
    }
}

/// What a connection shares with its listener's registry: read when choosing whom to evict.
pub(super) struct State {
    id: u64,
    opened_ms: u64,
    in_flight: AtomicUsize,
    /// When the last request ended (ms since `Limits::epoch`).
    idle_since: AtomicU64,
    /// Requests answered with a status under 400.
    answered: AtomicU64,
    evicted: AtomicBool,
    /// The connection's task, woken when it is evicted.
    waker: AtomicWaker,
    /// The connection's close handle, known from its first request on.
    shutdown: OnceLock<ConnectionShutdown>,
    /// Bytes its unfinished request bodies hold (see `body.rs`).
    bodies: AtomicUsize,
    /// Notified when the connection ends (its idle watcher stops).
    ended: Notify,
}

impl State {
    /// Smaller goes first: never answered before answered; then the oldest connection (never
    /// answered) or the one idle longest (answered).
    fn eviction_rank(&self) -> (bool, u64) {
        if self.answered.load(Ordering::Relaxed) == 0 {
            (false, self.opened_ms)
        } else {
            (true, self.idle_since.load(Ordering::Acquire))
        }
    }

    fn evict(&self) {
        self.evicted.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Whether the connection was evicted; registers the task to be woken when it is.
    fn evicted(&self, cx: &Context<'_>) -> bool {
        self.waker.register(cx.waker());
        self.evicted.load(Ordering::Acquire)
    }

    /// Adds `bytes` to what this connection's unfinished bodies hold, if that stays within
    /// `share`.
    pub(super) fn hold_body(&self, bytes: usize, share: usize) -> bool {
        self.bodies
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|&n| n <= share)
            })
            .is_ok()
    }

    pub(super) fn release_body(&self, bytes: usize) {
        self.bodies.fetch_sub(bytes, Ordering::AcqRel);
    }
}

/// A connection: its registry entry, removed when the connection ends.
struct Conn {
    state: Arc<State>,
    limits: Arc<Limits>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Whoever takes the connection out of the registry takes it out of the open count: this
        // drop, or an eviction that came first.
        if self.limits.open().remove(&self.state.id).is_some() {
            self.limits.metrics.connection_closed(self.limits.listener);
        }
        self.state.ended.notify_one();
    }
}

/// The connection seen by a request, in its extensions: for its share of the body budget.
#[derive(Clone)]
pub(super) struct Connection(pub(super) Arc<State>);

/// The innermost acceptor: registers the connection (making room at the cap, or refusing it)
/// and tracks its requests.
#[derive(Clone)]
pub(super) struct Guard(pub(super) Arc<Limits>);

impl<I, S> Accept<I, S> for Guard {
    type Stream = Stream<I>;
    type Service = Tracked<S>;
    type Future = std::future::Ready<io::Result<(Stream<I>, Tracked<S>)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let limits = &self.0;
        let Some(state) = limits.admit() else {
            limits.metrics.connection(limits.listener, "refused");
            if let Some(skipped) = limits.refused_log.due() {
                tracing::warn!(
                    listener = limits.listener,
                    cap = limits.cap,
                    refused_since_last_line = skipped,
                    "connection refused: every open connection has a request in flight \
                     (raise --max-connections if this is the API server's load)"
                );
            }
            return std::future::ready(Err(io::Error::other(format!(
                "{} connections open on the {} listener, each with a request in flight: connection closed",
                limits.cap, limits.listener
            ))));
        };
        limits.metrics.connection(limits.listener, "accepted");
        let conn = Arc::new(Conn {
            state,
            limits: limits.clone(),
        });
        std::future::ready(Ok((
            Stream {
                inner: stream,
                conn: conn.clone(),
            },
            Tracked {
                inner: service,
                conn,
            },
        )))
    }
}

/// A connection's byte stream: fails once the connection is evicted.
pub(super) struct Stream<I> {
    inner: I,
    conn: Arc<Conn>,
}

fn evicted_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "evicted at the connection cap",
    )
}

impl<I: AsyncRead + Unpin> AsyncRead for Stream<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.conn.state.evicted(cx) {
            return Poll::Ready(Err(evicted_error()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Stream<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.conn.state.evicted.load(Ordering::Acquire) {
            return Poll::Ready(Err(evicted_error()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.conn.state.evicted.load(Ordering::Acquire) {
            return Poll::Ready(Err(evicted_error()));
        }
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Closes the connection once it has had no request in flight for the idle timeout. Started
/// at the connection's first request (before it, the first-request timeout applies), ended
/// with the connection.
async fn watch_idle(state: Arc<State>, limits: Arc<Limits>) {
    let mut wait = limits.idle;
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = state.ended.notified() => return,
        }
        let idle_for = Duration::from_millis(
            limits
                .now_ms()
                .saturating_sub(state.idle_since.load(Ordering::Acquire)),
        );
        if state.in_flight.load(Ordering::Acquire) > 0 || idle_for < limits.idle {
            wait = limits
                .idle
                .saturating_sub(idle_for)
                .max(Duration::from_millis(50));
            continue;
        }
        let Some(shutdown) = state.shutdown.get() else {
            return;
        };
        limits.metrics.connection(limits.listener, "idle_closed");
        shutdown.graceful_shutdown();
        tokio::select! {
            () = tokio::time::sleep(limits.grace) => shutdown.shutdown(),
            () = state.ended.notified() => {}
        }
        return;
    }
}

/// A connection's service: counts its requests in flight and those answered.
#[derive(Clone)]
pub(super) struct Tracked<S> {
    inner: S,
    conn: Arc<Conn>,
}

impl<S, B, RB> tower_service::Service<Request<B>> for Tracked<S>
where
    S: tower_service::Service<Request<B>, Response = Response<RB>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = InFlight<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let state = &self.conn.state;
        if state.shutdown.get().is_none()
            && let Some(s) = req.extensions().get::<ConnectionShutdown>()
            && state.shutdown.set(s.clone()).is_ok()
        {
            tokio::spawn(watch_idle(state.clone(), self.conn.limits.clone()));
        }
        state.in_flight.fetch_add(1, Ordering::AcqRel);
        req.extensions_mut().insert(Connection(state.clone()));
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

impl<F, RB, E> Future for InFlight<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let out = self.inner.as_mut().poll(cx);
        if let Poll::Ready(Ok(r)) = &out
            && r.status().as_u16() < 400
        {
            self.conn.state.answered.fetch_add(1, Ordering::Relaxed);
        }
        out
    }
}

impl<F> Drop for InFlight<F> {
    fn drop(&mut self) {
        let s = &self.conn.state;
        s.idle_since
            .store(self.conn.limits.now_ms(), Ordering::Release);
        s.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
pub(super) mod tests_support {
    use super::*;

    pub(in crate::server) fn limits(cap: usize) -> Arc<Limits> {
        Limits::new(
            "webhook",
            cap,
            Duration::from_secs(30),
            Duration::from_secs(5),
            Arc::new(Metrics::new()),
        )
    }

    pub(in crate::server) fn admit(limits: &Limits) -> Arc<State> {
        limits.admit().unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::limits;
    use super::*;

    #[test]
    fn at_the_cap_the_oldest_never_answered_goes_first_then_the_longest_idle() {
        let l = limits(3);
        let served_long_ago = l.admit().unwrap();
        served_long_ago.answered.store(1, Ordering::Relaxed);
        served_long_ago.idle_since.store(1, Ordering::Relaxed);
        let silent_old = l.admit().unwrap();
        let served_recently = l.admit().unwrap();
        served_recently.answered.store(5, Ordering::Relaxed);
        served_recently.idle_since.store(10, Ordering::Relaxed);

        // The silent one goes, though the connection served long ago has been idle longer.
        let fourth = l.admit().unwrap();
        assert!(silent_old.evicted.load(Ordering::Relaxed));
        assert!(!served_long_ago.evicted.load(Ordering::Relaxed));
        // Then the newest silent one, before any that has served reviews.
        l.admit().unwrap();
        assert!(fourth.evicted.load(Ordering::Relaxed));
        assert!(!served_long_ago.evicted.load(Ordering::Relaxed));
        assert_eq!(l.open().len(), 3);
    }

    #[test]
    fn a_connection_with_a_request_in_flight_is_never_evicted() {
        let l = limits(2);
        let a = l.admit().unwrap();
        let b = l.admit().unwrap();
        a.in_flight.store(1, Ordering::Relaxed);
        b.in_flight.store(2, Ordering::Relaxed);
        assert!(l.admit().is_none(), "refused: all busy");
        b.in_flight.store(0, Ordering::Relaxed);
        b.answered.store(9, Ordering::Relaxed);
        assert!(l.admit().is_some());
        assert!(b.evicted.load(Ordering::Relaxed));
        assert!(!a.evicted.load(Ordering::Relaxed));
    }

    #[test]
    fn a_connection_holds_bodies_up_to_its_share() {
        let l = limits(1);
        let s = l.admit().unwrap();
        assert!(s.hold_body(600, 1000));
        assert!(!s.hold_body(401, 1000));
        assert!(s.hold_body(400, 1000));
        s.release_body(600);
        assert!(s.hold_body(600, 1000));
    }
}
