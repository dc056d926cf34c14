//! Namespace annotations, from a `kube::runtime` reflector cache (one watch, no API call per
//! admission) or, for tests and offline use, from a file of Namespace objects.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;

use crate::decision::NamespaceLookup;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

#[derive(Clone)]
pub enum Namespaces {
    /// Fixed set, from `--namespaces FILE` (or empty).
    Static(Arc<StaticSet>),
    /// Live reflector cache.
    Watch {
        store: Store<Namespace>,
        health: Arc<WatchHealth>,
        /// The namespaces' ResourceQuotas and LimitRanges, when followed.
        limits: Option<crate::limits::LimitsIndex>,
    },
}

/// Namespaces, and their ResourceQuotas and LimitRanges, from a file.
#[derive(Default)]
pub struct StaticSet {
    namespaces: HashMap<String, Arc<Namespace>>,
    limits: HashMap<String, crate::quota::NamespaceLimits>,
}

/// How the namespace watch is doing. While the watch is broken, lookups keep answering from
/// the last known state; past `max_stale` the injector reports itself not ready.
#[derive(Debug)]
pub struct WatchHealth {
    synced: AtomicBool,
    /// When the watch last failed without having recovered since (None: healthy).
    broken_since: Mutex<Option<Instant>>,
    errors: AtomicU64,
    max_stale: Duration,
}

/// What readiness and metrics say of the namespace cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheState {
    /// Not yet listed once: no answer can be trusted.
    NotSynced,
    /// Synced, and the watch is live.
    Live,
    /// Synced, but the watch has been failing for this long; still within the limit.
    Stale(Duration),
    /// The watch has been failing for longer than the limit.
    TooStale(Duration),
}

impl WatchHealth {
    pub fn new(max_stale: Duration) -> WatchHealth {
        WatchHealth {
            synced: AtomicBool::new(false),
            broken_since: Mutex::new(None),
            errors: AtomicU64::new(0),
            max_stale,
        }
    }

    /// The watch delivered an event: it works.
    pub fn ok(&self) {
        if let Ok(mut b) = self.broken_since.lock()
            && let Some(since) = b.take()
        {
            tracing::info!(
                broken_for_s = since.elapsed().as_secs_f64(),
                "namespace watch recovered"
            );
        }
    }

    /// The watch failed (the reflector retries with backoff).
    pub fn failed(&self, error: &dyn std::fmt::Display) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let since = match self.broken_since.lock() {
            Ok(mut b) => *b.get_or_insert_with(Instant::now),
            Err(_) => Instant::now(),
        };
        tracing::warn!(
            error = %error,
            broken_for_s = since.elapsed().as_secs_f64(),
            "namespace watch failed; retrying with backoff, admissions answered from the last known namespaces"
        );
    }

    pub fn set_synced(&self) {
        self.synced.store(true, Ordering::Release);
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    pub fn state(&self) -> CacheState {
        if !self.synced.load(Ordering::Acquire) {
            return CacheState::NotSynced;
        }
        let since = self.broken_since.lock().ok().and_then(|b| *b);
        match since.map(|s| s.elapsed()) {
            None => CacheState::Live,
            Some(d) if d > self.max_stale => CacheState::TooStale(d),
            Some(d) => CacheState::Stale(d),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NamespacesError {
    #[error("cannot read namespaces file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("namespaces file {path}, document {index}: {message}")]
    Parse {
        path: String,
        index: usize,
        message: String,
    },
}

/// Keeps only what the decision and the NetworkPolicy review read: the name, the labels
/// (namespace selectors) and the mesh annotations. A cluster's
/// namespaces often carry large annotations (kubectl's last-applied-configuration) and
/// managed fields; with 10,000 namespaces that would be most of the injector's memory.
fn slim(ns: &mut Namespace) {
    let annotations = ns
        .metadata
        .annotations
        .take()
        .map(|a| {
            a.into_iter()
                .filter(|(k, _)| crate::mesh::is_mesh_key(k))
                .collect::<std::collections::BTreeMap<_, _>>()
        })
        .filter(|a| !a.is_empty());
    ns.metadata = ObjectMeta {
        name: ns.metadata.name.take(),
        labels: ns.metadata.labels.take(),
        annotations,
        ..Default::default()
    };
    ns.spec = None;
    ns.status = None;
}

impl Namespaces {
    pub fn empty() -> Namespaces {
        Namespaces::Static(Arc::default())
    }

    /// A fixed set of Namespace objects (e.g. fetched once by the CLI).
    pub fn from_objects(objects: impl IntoIterator<Item = Namespace>) -> Namespaces {
        Namespaces::Static(Arc::new(StaticSet {
            namespaces: objects
                .into_iter()
                .map(|ns| (ns.name_any(), Arc::new(ns)))
                .collect(),
            limits: HashMap::new(),
        }))
    }

    /// A fixed set with these namespaces' quotas and limit ranges (e.g. fetched once by the
    /// CLI); no effect on a watch.
    pub fn with_static_limits(
        self,
        limits: HashMap<String, crate::quota::NamespaceLimits>,
    ) -> Namespaces {
        match self {
            Namespaces::Static(set) => Namespaces::Static(Arc::new(StaticSet {
                namespaces: set.namespaces.clone(),
                limits,
            })),
            other => other,
        }
    }

    /// Reads a multi-document YAML (or JSON) file of Namespace objects (a `List` also works),
    /// with the ResourceQuotas and LimitRanges of those namespaces among them.
    pub fn from_file(path: &Path) -> Result<Namespaces, NamespacesError> {
        let text = std::fs::read_to_string(path).map_err(|source| NamespacesError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml(&text, &path.display().to_string())
    }

    pub fn from_yaml(text: &str, origin: &str) -> Result<Namespaces, NamespacesError> {
        let mut map = HashMap::new();
        let mut limits: HashMap<String, crate::quota::NamespaceLimits> = HashMap::new();
        // Documents are numbered from 0, empty ones not counted.
        let mut bytes = text.as_bytes();
        for (index, doc) in serde_saphyr::read::<_, serde_json::Value>(&mut bytes).enumerate() {
            let value = doc.map_err(|e| NamespacesError::Parse {
                path: origin.to_owned(),
                index,
                message: e.to_string(),
            })?;
            if value.is_null() {
                continue;
            }
            let items = match value.get("items") {
                Some(serde_json::Value::Array(items)) => items.clone(),
                _ => vec![value],
            };
            for item in items {
                let kind = item
                    .get("kind")
                    .and_then(|k| k.as_str())
                    .unwrap_or("")
                    .to_owned();
                if matches!(kind.as_str(), "ResourceQuota" | "LimitRange") {
                    let ns = item
                        .pointer("/metadata/namespace")
                        .and_then(|n| n.as_str())
                        .unwrap_or("")
                        .to_owned();
                    let name = item
                        .pointer("/metadata/name")
                        .and_then(|n| n.as_str())
                        .unwrap_or("")
                        .to_owned();
                    let parse = |e: serde_json::Error| NamespacesError::Parse {
                        path: origin.to_owned(),
                        index,
                        message: format!("not a {kind}: {e}"),
                    };
                    if ns.is_empty() || name.is_empty() {
                        return Err(NamespacesError::Parse {
                            path: origin.to_owned(),
                            index,
                            message: format!("a {kind} needs metadata.name and metadata.namespace"),
                        });
                    }
                    let entry: &mut crate::quota::NamespaceLimits = limits.entry(ns).or_default();
                    if kind == "ResourceQuota" {
                        let q = serde_json::from_value(item).map_err(parse)?;
                        Arc::make_mut(entry.quotas.get_or_insert_default())
                            .insert(name, crate::quota::QuotaDigest::of(&q));
                    } else {
                        let l = serde_json::from_value(item).map_err(parse)?;
                        Arc::make_mut(entry.ranges.get_or_insert_default())
                            .insert(name, crate::quota::RangeDigest::of(&l));
                    }
                    continue;
                }
                let ns: Namespace =
                    serde_json::from_value(item).map_err(|e| NamespacesError::Parse {
                        path: origin.to_owned(),
                        index,
                        message: format!("not a Namespace: {e}"),
                    })?;
                let name = ns.name_any();
                if name.is_empty() {
                    return Err(NamespacesError::Parse {
                        path: origin.to_owned(),
                        index,
                        message: "a Namespace has no metadata.name".into(),
                    });
                }
                map.insert(name, Arc::new(ns));
            }
        }
        Ok(Namespaces::Static(Arc::new(StaticSet {
            namespaces: map,
            limits,
        })))
    }

    /// Starts a reflector over all Namespaces. The returned value serves lookups at once;
    /// `state` turns `Live` when the first list has been received. When the watch breaks,
    /// the reflector retries with backoff and lookups keep answering from the last known
    /// state; after `max_stale` of failure the cache counts as too stale (not ready).
    pub fn watch(client: Client, max_stale: Duration) -> Namespaces {
        let api: Api<Namespace> = Api::all(client);
        let (store, writer) = reflector::store();
        let health = Arc::new(WatchHealth::new(max_stale));
        let stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(slim)
            .reflect(writer);
        let h = health.clone();
        tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                match event {
                    Ok(_) => h.ok(),
                    Err(e) => h.failed(&e),
                }
            }
        });
        let ready_store = store.clone();
        let h = health.clone();
        tokio::spawn(async move {
            if ready_store.wait_until_ready().await.is_ok() {
                h.set_synced();
                tracing::info!(namespaces = ready_store.len(), "namespace cache synced");
            }
        });
        Namespaces::Watch {
            store,
            health,
            limits: None,
        }
    }

    /// Follows the cluster's ResourceQuotas and LimitRanges too (`serve`), for the verdict of
    /// the API server's own admission on the injected containers.
    pub fn with_limits(self, index: crate::limits::LimitsIndex) -> Namespaces {
        match self {
            Namespaces::Watch { store, health, .. } => Namespaces::Watch {
                store,
                health,
                limits: Some(index),
            },
            other => other,
        }
    }

    pub fn lookup(&self, name: &str) -> Option<Arc<Namespace>> {
        match self {
            Namespaces::Static(set) => set.namespaces.get(name).cloned(),
            Namespaces::Watch { store, .. } => store.get(&ObjectRef::new(name)),
        }
    }

    /// Whether the ResourceQuota and LimitRange watches (when followed) have listed once.
    pub fn limits_synced(&self) -> bool {
        match self {
            Namespaces::Watch {
                limits: Some(l), ..
            } => l.synced(),
            _ => true,
        }
    }

    pub fn state(&self) -> CacheState {
        match self {
            Namespaces::Static(_) => CacheState::Live,
            Namespaces::Watch { health, .. } => health.state(),
        }
    }

    /// Failed watch attempts since start (0 for a fixed set).
    pub fn watch_errors(&self) -> u64 {
        match self {
            Namespaces::Static(_) => 0,
            Namespaces::Watch { health, .. } => health.errors(),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Namespaces::Static(set) => set.namespaces.len(),
            Namespaces::Watch { store, .. } => store.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl NamespaceLookup for Namespaces {
    fn get(&self, name: &str) -> Option<Arc<Namespace>> {
        self.lookup(name)
    }

    fn limits(&self, name: &str) -> crate::quota::NamespaceLimits {
        match self {
            Namespaces::Static(set) => set.limits.get(name).cloned().unwrap_or_default(),
            Namespaces::Watch { limits, .. } => {
                limits.as_ref().map(|l| l.get(name)).unwrap_or_default()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_multi_doc_and_lists() {
        let ns = Namespaces::from_yaml(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n  annotations:\n    linkerd.io/inject: enabled\n---\n\
             apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata:\n    name: b\n",
            "t",
        )
        .unwrap();
        assert_eq!(ns.len(), 2);
        let a = ns.get("a").unwrap();
        assert_eq!(a.annotations()["linkerd.io/inject"], "enabled");
        assert!(ns.get("b").unwrap().metadata.annotations.is_none());
        assert!(ns.get("c").is_none());
    }

    #[test]
    fn cache_keeps_only_name_labels_and_mesh_annotations() {
        let mut ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "shop", "uid": "u", "labels": {"a": "b"},
                "annotations": {"linkerd.io/inject": "enabled", "config.linkerd.io/proxy-cpu-request": "1",
                    "config.alpha.linkerd.io/proxy-enable-native-sidecar": "true",
                    "kubectl.kubernetes.io/last-applied-configuration": "{...}"},
                "managedFields": [{"manager": "kubectl"}]},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}
        }))
        .unwrap();
        slim(&mut ns);
        assert_eq!(ns.metadata.name.as_deref(), Some("shop"));
        let a = ns.metadata.annotations.unwrap();
        assert_eq!(a.len(), 3);
        assert!(!a.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
        // Labels: for NetworkPolicy namespace selectors.
        assert_eq!(ns.metadata.labels.unwrap()["a"], "b");
        assert!(ns.metadata.uid.is_none() && ns.metadata.managed_fields.is_none());
        assert!(ns.spec.is_none() && ns.status.is_none());
    }

    #[test]
    fn health_goes_stale_then_recovers() {
        let h = WatchHealth::new(Duration::from_millis(30));
        assert_eq!(h.state(), CacheState::NotSynced);
        h.failed(&"connection refused");
        assert_eq!(
            h.state(),
            CacheState::NotSynced,
            "never synced stays not synced"
        );
        h.set_synced();
        assert!(matches!(h.state(), CacheState::Stale(_)));
        std::thread::sleep(Duration::from_millis(40));
        h.failed(&"connection refused");
        assert!(matches!(h.state(), CacheState::TooStale(d) if d >= Duration::from_millis(30)));
        assert_eq!(h.errors(), 2);
        h.ok();
        assert_eq!(h.state(), CacheState::Live);
    }

    #[test]
    fn bad_file_says_which_document() {
        let Err(err) =
            Namespaces::from_yaml("metadata:\n  name: a\n---\nmetadata: [1]\n", "f.yaml")
        else {
            panic!("a bad document must fail")
        };
        assert!(err.to_string().contains("document 1"), "{err}");
    }
}
