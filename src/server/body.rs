//! Review bodies: read into one buffer while their bytes are held against a budget shared by
//! every connection and stream, so that stalled, slow or never-ending senders can neither grow
//! memory nor take the budget from complete reviews.
//!
//! - A body is charged before any of it is read: its declared length, or [`BODY_LIMIT`] when
//!   it declares none (the API server always declares it).
//! - Large bodies (over [`SMALL_BODY`]) may hold the budget but for [`SMALL_RESERVE`], which is
//!   kept for small ones: pods are a few kB, so a review the API server sends is small and is
//!   never refused because large ones are pending.
//! - One connection's unfinished bodies hold at most [`CONNECTION_SHARE`] (HTTP/2 multiplexes
//!   any number of streams on one connection).
//! - A body must keep arriving: it is cut (408) after `stall` without a byte, or when, after its
//!   first `stall`, it has arrived at under `min_rate` bytes per second on average.
//! - When the budget is full, a new body makes room by cutting (503) the pending bodies that
//!   have had no bytes for longest, if they have had none for [`EVICTABLE_AFTER`]: a review is
//!   refused only while every body holding the budget is still arriving.
//!
//! Every refusal is counted (`proxy_injector_admissions_total{result="refused",reason}`) and
//! logged at most once per [`SHED_LOG_EVERY`](super::conn::SHED_LOG_EVERY) for each reason.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::AppState;
use super::conn::{Connection, SHED_LOG_EVERY, State};
use crate::logevery::LogEvery;

/// The API server never sends more than 3 MiB (its own request limit).
pub const BODY_LIMIT: usize = 3 * 1024 * 1024;

/// Bytes that unfinished review bodies may hold at once, over all connections and streams:
/// thousands of ordinary reviews, or 5 maximal ones and the small reviews' reserve.
pub const BODY_BUDGET: usize = 8 * BODY_LIMIT;

/// A body of at most this many bytes is small (a pod with hundreds of containers).
pub const SMALL_BODY: usize = 256 * 1024;

/// The part of [`BODY_BUDGET`] that only small bodies may hold: 32 maximal small ones, or
/// hundreds of ordinary reviews.
pub const SMALL_RESERVE: usize = 8 * 1024 * 1024;

/// What one connection's unfinished bodies may hold together.
pub const CONNECTION_SHARE: usize = 2 * BODY_LIMIT;

/// A pending body with no bytes for this long may be cut to make room for a new one.
pub const EVICTABLE_AFTER: Duration = Duration::from_millis(250);

/// How a body must keep arriving.
#[derive(Debug, Clone, Copy)]
pub struct BodyRate {
    /// The longest wait for the next bytes, and the time before `min_rate` applies.
    pub stall: Duration,
    /// Bytes per second, on average over the body's time past its first `stall`.
    pub min_rate: u64,
}

impl Default for BodyRate {
    fn default() -> BodyRate {
        BodyRate {
            stall: Duration::from_secs(2),
            min_rate: 64 * 1024,
        }
    }
}

impl BodyRate {
    /// When more bytes must have come, for a body started at `started` that got `received`
    /// bytes, the last at `last`; and the reason it is cut if they have not.
    fn due(&self, started: Instant, last: Instant, received: usize) -> (Instant, Cut) {
        let stalled = last + self.stall;
        let at_rate = Duration::from_secs_f64(received as f64 / self.min_rate.max(1) as f64);
        let slow = started + self.stall + at_rate;
        if stalled <= slow {
            (stalled, Cut::Stalled)
        } else {
            (slow, Cut::Slow)
        }
    }
}

/// Why a body was refused or cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    TooLarge,
    Longer,
    Busy,
    ConnectionShare,
    Stalled,
    Slow,
    Evicted,
    Unreadable,
}

impl Cut {
    /// The `reason` label of the refusal.
    fn code(self) -> &'static str {
        match self {
            Cut::TooLarge | Cut::Longer => "too_large",
            Cut::Busy => "busy",
            Cut::ConnectionShare => "connection_share",
            Cut::Stalled => "stalled",
            Cut::Slow => "slow",
            Cut::Evicted => "evicted",
            Cut::Unreadable => "unreadable",
        }
    }

    fn answer(self) -> Response {
        let (status, message) = match self {
            Cut::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "the body is over 3 MiB, more than the API server ever sends\n",
            ),
            Cut::Longer => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "the body is longer than declared or over 3 MiB\n",
            ),
            Cut::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "too many unfinished request bodies; retry\n",
            ),
            Cut::ConnectionShare => (
                StatusCode::SERVICE_UNAVAILABLE,
                "this connection's unfinished request bodies hold its share of the body budget; retry\n",
            ),
            Cut::Stalled => (
                StatusCode::REQUEST_TIMEOUT,
                "the request body stopped arriving; send the whole body at once\n",
            ),
            Cut::Slow => (
                StatusCode::REQUEST_TIMEOUT,
                "the request body arrived too slowly; send the whole body at once\n",
            ),
            Cut::Evicted => (
                StatusCode::SERVICE_UNAVAILABLE,
                "the request body stopped arriving and was cut to make room for other reviews; retry\n",
            ),
            Cut::Unreadable => (
                StatusCode::BAD_REQUEST,
                "the request body could not be read\n",
            ),
        };
        (status, message).into_response()
    }

    /// The index of its log throttle, for the shedding decisions that are logged.
    fn logged(self) -> Option<usize> {
        match self {
            Cut::Busy => Some(0),
            Cut::ConnectionShare => Some(1),
            Cut::Stalled => Some(2),
            Cut::Slow => Some(3),
            Cut::Evicted => Some(4),
            Cut::TooLarge | Cut::Longer | Cut::Unreadable => None,
        }
    }
}

/// The budget of bytes and how bodies must arrive, shared by a server's reviews.
pub(super) struct Bodies {
    /// Permits are bytes of [`BODY_BUDGET`].
    total: Arc<Semaphore>,
    /// Permits are bytes large bodies may hold: [`BODY_BUDGET`] - [`SMALL_RESERVE`].
    large: Arc<Semaphore>,
    rate: BodyRate,
    logs: [LogEvery; 5],
    /// The bodies being read, by id: those that may be cut to make room.
    pending: Registry,
    next_id: AtomicU64,
    epoch: Instant,
}

type Registry = Arc<Mutex<HashMap<u64, Arc<Pending>>>>;

fn lock(r: &Registry) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Pending>>> {
    // Consistent after any panic: single inserts and removes.
    r.lock().unwrap_or_else(|e| e.into_inner())
}

/// A body being read, as its budget sees it.
struct Pending {
    id: u64,
    bytes: usize,
    large: bool,
    /// When its last bytes came (ms since `Bodies::epoch`).
    last_ms: AtomicU64,
    /// Notified when it is cut to make room.
    cut: Notify,
}

impl Bodies {
    pub(super) fn new(rate: BodyRate) -> Bodies {
        Bodies {
            total: Arc::new(Semaphore::new(BODY_BUDGET)),
            large: Arc::new(Semaphore::new(BODY_BUDGET - SMALL_RESERVE)),
            rate,
            logs: std::array::from_fn(|_| LogEvery::new(SHED_LOG_EVERY)),
            pending: Registry::default(),
            next_id: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    fn ms(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// `permits` bytes of `pool`; when it is short, cuts pending bodies (large ones only, for
    /// the large pool) that have had no bytes for [`EVICTABLE_AFTER`], those stalled longest
    /// first, if together they hold what is missing, and waits for their bytes.
    async fn acquire(
        &self,
        pool: &Arc<Semaphore>,
        permits: u32,
        large_only: bool,
    ) -> Result<OwnedSemaphorePermit, Cut> {
        if let Ok(p) = pool.clone().try_acquire_many_owned(permits) {
            return Ok(p);
        }
        let missing = (permits as usize).saturating_sub(pool.available_permits());
        let stalled_since = self
            .ms(Instant::now())
            .saturating_sub(EVICTABLE_AFTER.as_millis() as u64);
        {
            let mut pending = lock(&self.pending);
            let mut stalled: Vec<_> = pending
                .values()
                .filter(|p| {
                    (p.large || !large_only) && p.last_ms.load(Ordering::Acquire) <= stalled_since
                })
                .cloned()
                .collect();
            stalled.sort_by_key(|p| p.last_ms.load(Ordering::Acquire));
            let (mut freed, mut victims) = (0, 0);
            while freed < missing && victims < stalled.len() {
                freed += stalled[victims].bytes;
                victims += 1;
            }
            if freed < missing {
                return Err(Cut::Busy);
            }
            for victim in &stalled[..victims] {
                pending.remove(&victim.id);
                victim.cut.notify_one();
            }
        }
        match tokio::time::timeout(EVICTABLE_AFTER, pool.clone().acquire_many_owned(permits)).await
        {
            Ok(Ok(p)) => Ok(p),
            _ => Err(Cut::Busy),
        }
    }

    /// Charges `bytes` to the connection's share and the budget, all or nothing.
    async fn charge(&self, conn: Option<&Connection>, bytes: usize) -> Result<Charge, Cut> {
        let bytes = bytes.max(1);
        let mut charge = Charge::default();
        if let Some(Connection(state)) = conn {
            if !state.hold_body(bytes, CONNECTION_SHARE) {
                return Err(Cut::ConnectionShare);
            }
            charge.share = Some((state.clone(), bytes));
        }
        let permits = u32::try_from(bytes).unwrap_or(u32::MAX);
        let large = bytes > SMALL_BODY;
        if large {
            charge.large = Some(self.acquire(&self.large, permits, true).await?);
        }
        charge.total = Some(self.acquire(&self.total, permits, false).await?);
        let pending = Arc::new(Pending {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            bytes,
            large,
            last_ms: AtomicU64::new(self.ms(Instant::now())),
            cut: Notify::new(),
        });
        lock(&self.pending).insert(pending.id, pending.clone());
        charge.pending = Some((self.pending.clone(), pending));
        Ok(charge)
    }

    fn refuse(
        &self,
        handler: &'static str,
        metrics: &crate::metrics::Metrics,
        cut: Cut,
        bytes: usize,
    ) -> Response {
        metrics.refused(handler, cut.code());
        if let Some(skipped) = cut.logged().and_then(|i| self.logs[i].due()) {
            tracing::warn!(
                handler,
                reason = cut.code(),
                bytes,
                refused_since_last_line = skipped,
                budget = BODY_BUDGET,
                small_reserve = SMALL_RESERVE,
                connection_share = CONNECTION_SHARE,
                stall_ms = self.rate.stall.as_millis() as u64,
                min_bytes_per_second = self.rate.min_rate,
                "refused or cut a review body (slow, stalled or too many unfinished bodies); \
                 see proxy_injector_admissions_total{{result=\"refused\"}}"
            );
        }
        cut.answer()
    }
}

/// Bytes held for one body, given back when it is dropped.
#[derive(Default)]
struct Charge {
    share: Option<(Arc<State>, usize)>,
    large: Option<OwnedSemaphorePermit>,
    total: Option<OwnedSemaphorePermit>,
    pending: Option<(Registry, Arc<Pending>)>,
}

impl Drop for Charge {
    fn drop(&mut self) {
        if let Some((state, bytes)) = self.share.take() {
            state.release_body(bytes);
        }
        if let Some((registry, pending)) = self.pending.take() {
            lock(&registry).remove(&pending.id);
        }
    }
}

/// A review's body, read into one buffer while its bytes are held against the budget.
pub(super) struct ReviewBody {
    pub(super) bytes: Vec<u8>,
    _held: Charge,
}

impl ReviewBody {
    /// Charges the budget, then reads the body frame by frame into one buffer (so a body sent
    /// in tiny chunks costs its bytes, not a list of chunks), cutting it if it stops arriving.
    pub(super) async fn read(
        app: &AppState,
        handler: &'static str,
        parts: &axum::http::request::Parts,
        body: axum::body::Body,
    ) -> Result<ReviewBody, Response> {
        let bodies = &app.bodies;
        let refuse = |cut: Cut, bytes: usize| bodies.refuse(handler, &app.metrics, cut, bytes);
        let conn = parts.extensions.get::<Connection>();
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|d| d > BODY_LIMIT as u64) {
            return Err(refuse(Cut::TooLarge, BODY_LIMIT));
        }
        let cost = declared.map_or(BODY_LIMIT, |d| d as usize);
        let held = bodies
            .charge(conn, cost)
            .await
            .map_err(|cut| refuse(cut, cost))?;
        let Some((_, pending)) = &held.pending else {
            return Err(refuse(Cut::Busy, cost));
        };
        let mut bytes = Vec::with_capacity(declared.map_or(0, |d| d as usize));
        let mut frames = body.into_data_stream();
        let started = Instant::now();
        let mut last = started;
        // One timer, moved only when it fires before the body's real deadline (cheap per frame).
        let timer = tokio::time::sleep_until(bodies.rate.due(started, last, 0).0);
        tokio::pin!(timer);
        loop {
            let frame = tokio::select! {
                biased;
                frame = frames.next() => frame,
                () = &mut timer => {
                    let (due, cut) = bodies.rate.due(started, last, bytes.len());
                    if Instant::now() >= due {
                        return Err(refuse(cut, bytes.len()));
                    }
                    timer.as_mut().reset(due);
                    continue;
                }
                () = pending.cut.notified() => return Err(refuse(Cut::Evicted, bytes.len())),
            };
            let Some(frame) = frame else { break };
            let Ok(frame) = frame else {
                return Err(refuse(Cut::Unreadable, bytes.len()));
            };
            last = Instant::now();
            pending.last_ms.store(bodies.ms(last), Ordering::Release);
            let len = bytes.len() + frame.len();
            if len > cost {
                return Err(refuse(Cut::Longer, len));
            }
            bytes.extend_from_slice(&frame);
        }
        // Complete: its bytes stay held while it is reviewed, but it can no longer be cut.
        let mut held = held;
        if let Some((registry, pending)) = held.pending.take() {
            lock(&registry).remove(&pending.id);
        }
        Ok(ReviewBody { bytes, _held: held })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn charges(bodies: &Bodies, n: usize, bytes: usize) -> Vec<Charge> {
        let mut held = Vec::new();
        for _ in 0..n {
            held.push(bodies.charge(None, bytes).await.unwrap());
        }
        held
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_budget_makes_room_by_cutting_the_bodies_stalled_longest() {
        let bodies = Bodies::new(BodyRate::default());
        // Five large bodies hold the large pool, started 100 ms apart; each gives its bytes
        // back when it is cut, as a reader does.
        let (mut readers, mut pending) = (Vec::new(), Vec::new());
        for i in 0..5 {
            let charge = bodies.charge(None, BODY_LIMIT).await.unwrap();
            let p = charge.pending.as_ref().unwrap().1.clone();
            pending.push(p.clone());
            readers.push(tokio::spawn(async move {
                p.cut.notified().await;
                drop(charge);
                i
            }));
            tokio::time::advance(Duration::from_millis(100)).await;
        }
        // The first has just had bytes: the second is the one stalled longest.
        pending[0]
            .last_ms
            .store(bodies.ms(Instant::now()), Ordering::Release);
        let _sixth = bodies.charge(None, BODY_LIMIT).await.unwrap();
        tokio::task::yield_now().await;
        let done: Vec<_> = readers.iter().map(|r| r.is_finished()).collect();
        assert_eq!(done, [false, true, false, false, false]);
        // Every body has just had bytes: nothing to cut, the next large one is refused.
        for p in &pending {
            p.last_ms
                .store(bodies.ms(Instant::now()), Ordering::Release);
        }
        assert_eq!(bodies.charge(None, BODY_LIMIT).await.err(), Some(Cut::Busy));
        // A small one fits in the reserve whatever large ones hold.
        bodies.charge(None, 10_000).await.unwrap();
    }

    #[test]
    fn a_body_must_keep_arriving_and_at_the_minimum_rate_after_its_first_stall() {
        let rate = BodyRate {
            stall: Duration::from_secs(2),
            min_rate: 1000,
        };
        let t0 = Instant::now();
        let s = Duration::from_secs;
        // Nothing yet: 2 s for the first bytes.
        assert_eq!(rate.due(t0, t0, 0), (t0 + s(2), Cut::Stalled));
        // Fast bytes, then a stop: cut 2 s after the last.
        assert_eq!(rate.due(t0, t0 + s(1), 50_000), (t0 + s(3), Cut::Stalled));
        // A trickle: each byte in time for the stall, but under 1000 B/s past the first 2 s.
        assert_eq!(rate.due(t0, t0 + s(5), 3000), (t0 + s(5), Cut::Slow));
    }

    #[tokio::test]
    async fn large_bodies_leave_the_small_reserve_and_a_connection_its_share() {
        let bodies = Bodies::new(BodyRate::default());
        let large = charges(&bodies, 5, BODY_LIMIT).await;
        assert_eq!(
            bodies.charge(None, BODY_LIMIT).await.err(),
            Some(Cut::Busy),
            "a 6th large body"
        );
        // The small reserve is whole (32 bodies of SMALL_BODY), and what large ones left.
        let fit = (BODY_BUDGET - 5 * BODY_LIMIT) / SMALL_BODY;
        assert!(fit >= SMALL_RESERVE / SMALL_BODY);
        let small = charges(&bodies, fit, SMALL_BODY).await;
        assert_eq!(bodies.charge(None, SMALL_BODY).await.err(), Some(Cut::Busy));
        drop((large, small));

        let limits = super::super::conn::tests_support::limits(1);
        let conn = Connection(super::super::conn::tests_support::admit(&limits));
        let a = bodies.charge(Some(&conn), BODY_LIMIT).await.unwrap();
        let _b = bodies.charge(Some(&conn), BODY_LIMIT).await.unwrap();
        assert_eq!(
            bodies.charge(Some(&conn), 10).await.err(),
            Some(Cut::ConnectionShare)
        );
        drop(a);
        bodies.charge(Some(&conn), 10).await.unwrap();
    }

    #[tokio::test]
    async fn a_refused_charge_gives_back_what_it_took() {
        let bodies = Bodies::new(BodyRate::default());
        let limits = super::super::conn::tests_support::limits(1);
        let conn = Connection(super::super::conn::tests_support::admit(&limits));
        // The total is held by small bodies: a large one takes from `large` and the share,
        // then fails on the total, and must give both back.
        let small = charges(&bodies, BODY_BUDGET / SMALL_BODY, SMALL_BODY).await;
        assert_eq!(
            bodies.charge(Some(&conn), BODY_LIMIT).await.err(),
            Some(Cut::Busy)
        );
        drop(small);
        let _a = bodies.charge(Some(&conn), BODY_LIMIT).await.unwrap();
        let _b = bodies.charge(Some(&conn), BODY_LIMIT).await.unwrap();
        assert_eq!(
            bodies.large.available_permits(),
            BODY_BUDGET - SMALL_RESERVE - 2 * BODY_LIMIT
        );
    }
}
