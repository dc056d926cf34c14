//! Kubernetes Events about admissions, recorded on the pod's owner (`kubectl describe rs/…`
//! shows "Injected" or why the proxy was left out). This module holds what an Event says
//! (pure, built off the request path); [`recorder`] publishes them through the API.

pub mod recorder;

pub use recorder::{BATCH, Events, QUEUE, QUEUE_BYTES, event, object_reference};

use crate::decision::Mode;
use crate::view::PodView;
use crate::workload;

/// The object an Event is about: the pod's controlling owner, or the pod itself when it has
/// no controller but a name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Regarding {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: Option<String>,
    pub namespace: String,
}

/// An Event to record: what happened to a pod at admission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventNote {
    pub regarding: Regarding,
    pub warning: bool,
    /// PascalCase: Injected, InjectionSkipped, InjectionDenied
    pub reason: &'static str,
    pub note: String,
}

/// What happened to the pod, as far as an Event tells it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Happened {
    Injected(Mode),
    Skipped(String),
    Denied(String),
}

/// What an Event needs, copied out of the request cheaply; the owner references are parsed
/// and the note written by `note()`, off the request path (in the events task). Two pods of
/// one template and owner with one outcome give equal seeds: one Event, counted twice.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventSeed {
    happened: Happened,
    /// `metadata.ownerReferences` as raw JSON.
    owners: Option<String>,
    /// `metadata.name`, for a pod without a controller.
    name: Option<String>,
    display: String,
    namespace: String,
}

impl EventSeed {
    /// `None` when there is nothing to attach the Event to (no namespace, no owner, no name).
    pub fn new(happened: Happened, pod: &PodView<'_>, namespace: &str) -> Option<EventSeed> {
        if namespace.is_empty() {
            return None;
        }
        let owners = pod.metadata.owner_references.map(|r| r.get().to_owned());
        let name = pod
            .metadata
            .name
            .as_ref()
            .map(|n| n.as_str().to_owned())
            .filter(|n| !n.is_empty());
        if owners.is_none() && name.is_none() {
            return None;
        }
        Some(EventSeed {
            happened,
            owners,
            name,
            display: pod.display_name().to_owned(),
            namespace: namespace.to_owned(),
        })
    }

    /// The bytes the seed holds (what a waiting note costs).
    pub fn bytes(&self) -> usize {
        let happened = match &self.happened {
            Happened::Injected(_) => 0,
            Happened::Skipped(r) | Happened::Denied(r) => r.len(),
        };
        std::mem::size_of::<Self>()
            + happened
            + self.owners.as_ref().map_or(0, String::len)
            + self.name.as_ref().map_or(0, String::len)
            + self.display.len()
            + self.namespace.len()
    }

    /// A seed for a pod (`display`) of the ReplicaSet `owner`, for tests.
    #[cfg(test)]
    pub(crate) fn for_test(
        happened: Happened,
        owner: &str,
        display: &str,
        namespace: &str,
    ) -> EventSeed {
        EventSeed {
            happened,
            owners: Some(format!(
                r#"[{{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"{owner}","uid":"u","controller":true}}]"#
            )),
            name: None,
            display: display.to_owned(),
            namespace: namespace.to_owned(),
        }
    }

    fn regarding(&self) -> Option<Regarding> {
        if let Some(o) = self
            .owners
            .as_deref()
            .and_then(workload::controller_owner)
            .filter(|o| !o.name.as_str().is_empty())
        {
            return Some(Regarding {
                api_version: o.api_version.as_str().to_owned(),
                kind: o.kind.as_str().to_owned(),
                name: o.name.as_str().to_owned(),
                uid: Some(o.uid.as_str().to_owned()).filter(|u| !u.is_empty()),
                namespace: self.namespace.clone(),
            });
        }
        Some(Regarding {
            api_version: "v1".into(),
            kind: "Pod".into(),
            name: self.name.clone()?,
            uid: None,
            namespace: self.namespace.clone(),
        })
    }

    /// The Event to record (None when neither a controller nor the pod's name can be named).
    pub fn note(&self) -> Option<EventNote> {
        let pod = &self.display;
        let (warning, reason, note) = match &self.happened {
            Happened::Injected(mode) => (
                false,
                "Injected",
                format!(
                    "proxy injected into pod {pod} (linkerd.io/inject: {})",
                    mode.as_str()
                ),
            ),
            Happened::Skipped(r) => (
                true,
                "InjectionSkipped",
                format!("pod {pod} admitted without the proxy: {r}"),
            ),
            Happened::Denied(r) => (true, "InjectionDenied", format!("pod {pod} denied: {r}")),
        };
        Some(EventNote {
            regarding: self.regarding()?,
            warning,
            reason,
            note,
        })
    }
}
