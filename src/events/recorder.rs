//! Publishes the Events of admissions through the API. Sending never delays an admission answer:
//! the handler hands the note to a bounded queue and a background task publishes it; when the
//! queue is full the note is dropped and counted.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::mpsc;

use super::{EventNote, EventSeed};
use crate::metrics::Metrics;

/// How many events may wait to be sent before new ones are dropped.
pub const QUEUE: usize = 1024;

#[derive(Clone)]
pub struct Events {
    tx: mpsc::Sender<EventSeed>,
    metrics: Arc<Metrics>,
}

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

pub fn event(note: &EventNote) -> Event {
    Event {
        type_: if note.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: note.reason.to_owned(),
        // The Events API limits a note to 1 kB.
        note: Some(truncate(&note.note, 1000)),
        action: "Admit".into(),
        secondary: None,
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

impl Events {
    /// Starts the publishing task. `instance` names this replica (the pod name) in events.
    pub fn start(client: Client, instance: Option<String>, metrics: Arc<Metrics>) -> Events {
        let (tx, mut rx) = mpsc::channel::<EventSeed>(QUEUE);
        let recorder = Recorder::new(
            client,
            Reporter {
                controller: "proxy-injector".into(),
                instance,
            },
        );
        let m = metrics.clone();
        tokio::spawn(async move {
            while let Some(seed) = rx.recv().await {
                let Some(note) = seed.note() else {
                    continue;
                };
                match recorder
                    .publish(&event(&note), &object_reference(&note))
                    .await
                {
                    Ok(()) => m.event("sent"),
                    Err(e) => {
                        m.event("failed");
                        tracing::warn!(error = %e, kind = %note.regarding.kind,
                            name = %note.regarding.name, namespace = %note.regarding.namespace,
                            "could not record an event (check the events.k8s.io create/patch permission)");
                    }
                }
            }
        });
        Events { tx, metrics }
    }

    /// Queues an event; never waits.
    pub fn send(&self, seed: EventSeed) {
        if self.tx.try_send(seed).is_err() {
            self.metrics.event("dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Regarding;

    #[test]
    fn event_fields() {
        let note = EventNote {
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
        };
        let r = object_reference(&note);
        assert_eq!(r.kind.as_deref(), Some("ReplicaSet"));
        assert_eq!(r.uid.as_deref(), Some("u1"));
        let e = event(&note);
        assert_eq!(e.type_, EventType::Warning);
        assert!(e.note.as_ref().unwrap().len() <= 1003);
    }
}
