//! The cluster's ResourceQuotas and LimitRanges, per namespace, each cut to the digest the
//! verdict reads (`quota`), from two watches: no API call per admission, and no object kept
//! whole.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};

use crate::quota::{NamespaceLimits, QuotaDigest, RangeDigest};

type Index = Arc<RwLock<HashMap<String, NamespaceLimits>>>;

/// The digests of every namespace's quotas and limit ranges.
#[derive(Clone, Default)]
pub struct LimitsIndex {
    index: Index,
    quotas_synced: Arc<AtomicBool>,
    ranges_synced: Arc<AtomicBool>,
}

/// Where a kind's digests live in a namespace's entry.
type Slot<D> = fn(&mut NamespaceLimits) -> &mut Option<Arc<BTreeMap<String, D>>>;

impl LimitsIndex {
    /// Starts the two watches (list and watch ResourceQuotas and LimitRanges in all
    /// namespaces).
    pub fn watch(client: Client) -> LimitsIndex {
        let me = LimitsIndex::default();
        tokio::spawn(follow(
            Api::<ResourceQuota>::all(client.clone()),
            me.index.clone(),
            me.quotas_synced.clone(),
            |l| &mut l.quotas,
            QuotaDigest::of,
        ));
        tokio::spawn(follow(
            Api::<LimitRange>::all(client),
            me.index.clone(),
            me.ranges_synced.clone(),
            |l| &mut l.ranges,
            RangeDigest::of,
        ));
        me
    }

    /// A namespace's digests (shared, not copied).
    pub fn get(&self, namespace: &str) -> NamespaceLimits {
        self.index
            .read()
            .map(|i| i.get(namespace).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Whether both watches have listed once.
    pub fn synced(&self) -> bool {
        self.quotas_synced.load(Ordering::Acquire) && self.ranges_synced.load(Ordering::Acquire)
    }

    /// (ResourceQuotas, LimitRanges) held.
    pub fn len(&self) -> (usize, usize) {
        let Ok(i) = self.index.read() else {
            return (0, 0);
        };
        i.values().fold((0, 0), |(q, r), l| {
            (
                q + l.quotas.as_ref().map_or(0, |m| m.len()),
                r + l.ranges.as_ref().map_or(0, |m| m.len()),
            )
        })
    }

    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }
}

fn key<K: ResourceExt>(o: &K) -> (String, String) {
    (o.namespace().unwrap_or_default(), o.name_any())
}

async fn follow<K, D>(
    api: Api<K>,
    index: Index,
    synced: Arc<AtomicBool>,
    slot: Slot<D>,
    digest: fn(&K) -> D,
) where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default,
    D: Clone + Send + Sync + 'static,
{
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    let stream = watcher(api, watcher::Config::default()).default_backoff();
    let mut stream = std::pin::pin!(stream);
    // A re-list is gathered whole, then replaces what was held.
    let mut relist: HashMap<String, BTreeMap<String, D>> = HashMap::new();
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(kind = %kind, error = %e, "watch failed; retrying with backoff, the last known objects are used meanwhile");
                continue;
            }
        };
        // Digests are made before the index is locked, and only a change locks it.
        let change = match event {
            watcher::Event::Init => {
                relist.clear();
                continue;
            }
            watcher::Event::InitApply(o) => {
                let (ns, name) = key(&o);
                relist.entry(ns).or_default().insert(name, digest(&o));
                continue;
            }
            watcher::Event::InitDone => None,
            watcher::Event::Apply(o) => Some((key(&o), Some(digest(&o)))),
            watcher::Event::Delete(o) => Some((key(&o), None)),
        };
        let Ok(mut i) = index.write() else { return };
        match change {
            None => {
                let mut fresh = std::mem::take(&mut relist);
                for (ns, entry) in i.iter_mut() {
                    *slot(entry) = fresh.remove(ns).map(Arc::new);
                }
                for (ns, m) in fresh {
                    *slot(i.entry(ns).or_default()) = Some(Arc::new(m));
                }
                i.retain(|_, l| !l.is_empty());
                if !synced.swap(true, Ordering::AcqRel) {
                    tracing::info!(kind = %kind, "listed: the API server's quota and limit checks are judged before injecting");
                }
            }
            Some(((ns, name), Some(d))) => {
                Arc::make_mut(slot(i.entry(ns).or_default()).get_or_insert_default())
                    .insert(name, d);
            }
            Some(((ns, name), None)) => {
                if let Some(entry) = i.get_mut(&ns) {
                    if let Some(m) = slot(entry) {
                        Arc::make_mut(m).remove(&name);
                    }
                    if entry.is_empty() {
                        i.remove(&ns);
                    }
                }
            }
        }
    }
}
