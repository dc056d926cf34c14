//! Publishes the Events of admissions through the API, without ever delaying an answer.
//!
//! The handler offers its note to a pending set (a lock, a hash, no I/O). A note equal to one
//! already pending (same pod template, owner and outcome: the pods of one ReplicaSet) only
//! adds to that note's count, so pending notes follow the number of owners, not of pods. A
//! background task takes the whole set at most once per [`BATCH`] and writes one Event per
//! note: created the first time, then patched with the added count (`series.count`) while it
//! is recent, as `kubectl describe` shows ("x300 over 20s"). When the pending set is full
//! ([`QUEUE`] distinct notes or [`QUEUE_BYTES`]), a new note is dropped, counted, and said in
//! a log line (at most one per [`DROP_LOG_EVERY`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use tokio::sync::Notify;

use super::{EventNote, EventSeed, Regarding};
use crate::logevery::LogEvery;
use crate::metrics::Metrics;

/// Distinct notes that may wait to be written before new ones are dropped.
pub const QUEUE: usize = 1024;
/// Bytes the waiting notes may hold (each is bounded, but an owner list is the pod's own).
pub const QUEUE_BYTES: usize = 4 * 1024 * 1024;
/// The pending notes are written at most once per this interval.
pub const BATCH: Duration = Duration::from_secs(1);
/// At most one log line about dropped notes per this interval.
pub const DROP_LOG_EVERY: Duration = Duration::from_secs(10);
/// An Event is added to (patched) while its last write is this recent; then a new one starts.
const SERIES_TTL: Duration = Duration::from_secs(300);
/// Events remembered for patching; past that the memory is cleared (new Events start).
const WRITTEN_MAX: usize = 4096;

pub fn object_reference(note: &EventNote) -> ObjectReference {
    let r = &note.regarding;
    ObjectReference {
        api_version: Some(r.api_version.clone()),
        kind: Some(r.kind.clone()),
        name: Some(r.name.clone()),
        namespace: Some(r.namespace.clone()),
        uid: r.uid.clone(),
        ..Default::default()
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The events.k8s.io/v1 Event for `note` seen `count` times (`series` from two on).
pub fn event(note: &EventNote, count: u32, controller: &str, instance: &str) -> Event {
    let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
    Event {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}.{:x}",
                note.regarding.name,
                k8s_openapi::jiff::Timestamp::now().as_nanosecond()
            )),
            namespace: Some(note.regarding.namespace.clone()),
            ..Default::default()
        },
        event_time: Some(now.clone()),
        series: (count >= 2).then(|| EventSeries {
            count: count.min(i32::MAX as u32) as i32,
            last_observed_time: now,
        }),
        type_: Some(if note.warning { "Warning" } else { "Normal" }.into()),
        reason: Some(note.reason.to_owned()),
        // The Events API limits a note to 1 kB.
        note: Some(truncate(&note.note, 1000)),
        action: Some("Admit".into()),
        regarding: Some(object_reference(note)),
        reporting_controller: Some(controller.to_owned()),
        reporting_instance: Some(instance.to_owned()),
        ..Default::default()
    }
}

/// The notes waiting to be written, with their counts.
#[derive(Default)]
struct Pending {
    notes: HashMap<EventSeed, u32>,
    bytes: usize,
}

/// What offering a note did.
#[derive(Debug, PartialEq, Eq)]
enum Offered {
    New,
    Counted,
    Dropped,
}

impl Pending {
    fn offer(&mut self, seed: EventSeed) -> Offered {
        if let Some(n) = self.notes.get_mut(&seed) {
            *n = n.saturating_add(1);
            return Offered::Counted;
        }
        let size = seed.bytes();
        if self.notes.len() >= QUEUE || self.bytes + size > QUEUE_BYTES {
            return Offered::Dropped;
        }
        self.bytes += size;
        self.notes.insert(seed, 1);
        Offered::New
    }

    fn take(&mut self) -> HashMap<EventSeed, u32> {
        self.bytes = 0;
        std::mem::take(&mut self.notes)
    }
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Notify,
    metrics: Arc<Metrics>,
    /// Dropped since the last drop log line.
    dropped: AtomicU64,
    drop_log: LogEvery,
}

impl Shared {
    fn log_drops(&self) {
        if self.drop_log.due().is_none() {
            return;
        }
        let n = self.dropped.swap(0, Ordering::AcqRel);
        tracing::warn!(
            dropped = n,
            limit_notes = QUEUE,
            limit_bytes = QUEUE_BYTES,
            "Events dropped: the notes waiting to be written hold their limit (the API server is slow \
             or refusing Event writes, or pods of more distinct owners than the limit arrived at once); \
             admissions are not affected; see proxy_injector_events_total{{result=\"dropped\"}}"
        );
    }
}

/// Writes Events through the API: one per note, then patches of its count while recent.
struct Writer {
    client: Client,
    metrics: Arc<Metrics>,
    controller: String,
    instance: String,
    /// Event name, count so far and last write, by (regarding, reason, type).
    written: HashMap<(Regarding, &'static str, bool), (String, u32, Instant)>,
}

impl Writer {
    async fn write(&mut self, note: &EventNote, count: u32) -> Result<(), kube::Error> {
        let now = Instant::now();
        self.written
            .retain(|_, (_, _, last)| now.duration_since(*last) < SERIES_TTL);
        if self.written.len() >= WRITTEN_MAX {
            self.written.clear();
        }
        let key = (note.regarding.clone(), note.reason, note.warning);
        let api: Api<Event> = Api::namespaced(self.client.clone(), &note.regarding.namespace);
        if let Some((name, so_far, last)) = self.written.get_mut(&key) {
            let total = so_far.saturating_add(count);
            let patch = serde_json::json!({"series": {
                "count": total.min(i32::MAX as u32),
                "lastObservedTime": MicroTime(k8s_openapi::jiff::Timestamp::now()),
            }});
            match api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    self.metrics.event_write("patched");
                    *so_far = total;
                    *last = now;
                    return Ok(());
                }
                // Gone (expired or deleted): start a new one.
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    self.written.remove(&key);
                }
                Err(e) => return Err(e),
            }
        }
        let ev = event(note, count, &self.controller, &self.instance);
        let created = api.create(&PostParams::default(), &ev).await?;
        self.metrics.event_write("created");
        let name = created
            .metadata
            .name
            .or(ev.metadata.name)
            .unwrap_or_default();
        self.written.insert(key, (name, count, now));
        Ok(())
    }
}

#[derive(Clone)]
pub struct Events {
    shared: Arc<Shared>,
}

impl Events {
    /// Starts the publishing task. `instance` names this replica (the pod name) in events.
    pub fn start(client: Client, instance: Option<String>, metrics: Arc<Metrics>) -> Events {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            wake: Notify::new(),
            metrics: metrics.clone(),
            dropped: AtomicU64::new(0),
            drop_log: LogEvery::new(DROP_LOG_EVERY),
        });
        let controller = "proxy-injector".to_owned();
        let writer = Writer {
            client,
            metrics: metrics.clone(),
            instance: instance.unwrap_or_else(|| controller.clone()),
            controller,
            written: HashMap::new(),
        };
        tokio::spawn(publish(shared.clone(), writer));
        Events { shared }
    }

    /// Offers a note; never waits (a lock held for one hash-map operation).
    pub fn send(&self, seed: EventSeed) {
        let s = &self.shared;
        let offered = match s.pending.lock() {
            Ok(mut p) => p.offer(seed),
            Err(_) => Offered::Dropped,
        };
        match offered {
            Offered::New => s.wake.notify_one(),
            Offered::Counted => s.metrics.event("coalesced"),
            Offered::Dropped => {
                s.metrics.event("dropped");
                s.dropped.fetch_add(1, Ordering::AcqRel);
                s.log_drops();
            }
        }
    }
}

async fn publish(shared: Arc<Shared>, mut writer: Writer) {
    loop {
        shared.wake.notified().await;
        let started = tokio::time::Instant::now();
        let batch = match shared.pending.lock() {
            Ok(mut p) => p.take(),
            Err(_) => return,
        };
        for (seed, count) in batch {
            let Some(note) = seed.note() else { continue };
            match writer.write(&note, count).await {
                Ok(()) => shared.metrics.events("sent", count),
                Err(e) => {
                    shared.metrics.events("failed", count);
                    tracing::warn!(error = %e, kind = %note.regarding.kind,
                        name = %note.regarding.name, namespace = %note.regarding.namespace, count,
                        "could not record an event (check the events.k8s.io create/patch permission)");
                }
            }
        }
        tokio::time::sleep_until(started + BATCH).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Happened;

    fn note() -> EventNote {
        EventNote {
            regarding: Regarding {
                api_version: "apps/v1".into(),
                kind: "ReplicaSet".into(),
                name: "web-5d9".into(),
                uid: Some("u1".into()),
                namespace: "shop".into(),
            },
            warning: true,
            reason: "InjectionSkipped",
            note: "é".repeat(700),
        }
    }

    #[test]
    fn event_fields() {
        let n = note();
        let r = object_reference(&n);
        assert_eq!(r.kind.as_deref(), Some("ReplicaSet"));
        assert_eq!(r.uid.as_deref(), Some("u1"));
        let e = event(&n, 1, "proxy-injector", "pod-1");
        assert_eq!(e.type_.as_deref(), Some("Warning"));
        assert!(e.note.as_ref().unwrap().len() <= 1003);
        assert!(e.series.is_none(), "one occurrence: no series");
        assert!(e.metadata.name.unwrap().starts_with("web-5d9."));
        assert_eq!(e.reporting_instance.as_deref(), Some("pod-1"));
        let e = event(&n, 300, "proxy-injector", "pod-1");
        assert_eq!(e.series.map(|s| s.count), Some(300));
    }

    fn seed(owner: &str, pod: &str) -> EventSeed {
        EventSeed::for_test(Happened::Skipped("bad".into()), owner, pod, "shop")
    }

    #[test]
    fn equal_notes_are_counted_not_queued_and_new_ones_past_the_limit_dropped() {
        let mut p = Pending::default();
        assert_eq!(p.offer(seed("rs-a", "web-a-")), Offered::New);
        for _ in 0..2999 {
            assert_eq!(p.offer(seed("rs-a", "web-a-")), Offered::Counted);
        }
        assert_eq!(p.offer(seed("rs-b", "web-b-")), Offered::New);
        for i in 2..QUEUE {
            assert_eq!(p.offer(seed(&format!("rs-{i}"), "web-")), Offered::New);
        }
        assert_eq!(p.offer(seed("rs-new", "web-")), Offered::Dropped);
        // A note already pending is still counted when the set is full.
        assert_eq!(p.offer(seed("rs-a", "web-a-")), Offered::Counted);
        let batch = p.take();
        assert_eq!(batch.len(), QUEUE);
        assert_eq!(batch[&seed("rs-a", "web-a-")], 3001);
        assert_eq!(batch[&seed("rs-b", "web-b-")], 1);
        assert_eq!(p.offer(seed("rs-new", "web-")), Offered::New, "room again");
    }

    #[test]
    fn pending_notes_are_bounded_in_bytes() {
        let mut p = Pending::default();
        let big = "x".repeat(1024 * 1024);
        let mut held = 0;
        for i in 0..8 {
            if p.offer(seed(&format!("{big}{i}"), "web-")) == Offered::New {
                held += 1;
            }
        }
        assert!(held < 4, "{held} notes of 1 MiB held");
        assert!(p.bytes <= QUEUE_BYTES);
    }
}
