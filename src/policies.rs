//! The cluster's NetworkPolicies and meshed pods, for `/warn`'s NetworkPolicy review: two
//! `kube::runtime` reflectors (list and watch only), each object cut down to what the review
//! reads. Meshed pods are the ones carrying the injector's `linkerd.io/control-plane-ns`
//! label (a label selector on the watch: other pods are never sent), and only their metadata
//! is watched (the API server sends no spec or status, and the cache holds no pod body).

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};

use crate::mesh::CONTROL_PLANE_NS_LABEL;
use crate::netpol::review::{MeshedPod, NetworkLookup, PER_POD_LABELS};

#[derive(Clone)]
pub struct Policies {
    policies: Store<NetworkPolicy>,
    pods: Store<PartialObjectMeta<Pod>>,
}

/// A NetworkPolicy keeps its name, namespace and spec.
fn slim_policy(p: &mut NetworkPolicy) {
    p.metadata = ObjectMeta {
        name: p.metadata.name.take(),
        namespace: p.metadata.namespace.take(),
        ..Default::default()
    };
}

/// A meshed pod keeps its name, namespace and labels but the per-pod ones (pod-template-hash
/// and the like: the pods of one workload then carry equal labels).
fn slim_pod(p: &mut PartialObjectMeta<Pod>) {
    p.metadata = ObjectMeta {
        name: p.metadata.name.take(),
        namespace: p.metadata.namespace.take(),
        labels: p.metadata.labels.take().map(|mut l| {
            l.retain(|k, _| !PER_POD_LABELS.contains(&k.as_str()));
            l
        }),
        ..Default::default()
    };
    p.types = None;
}

/// Follows a reflector's stream, logging when it fails and when it recovers.
fn follow<E: std::fmt::Display>(
    stream: impl futures::Stream<Item = Result<E, watcher::Error>> + Send + 'static,
    what: &'static str,
) {
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        let mut failing = false;
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) if failing => {
                    failing = false;
                    tracing::info!(what, "watch recovered");
                }
                Ok(_) => {}
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, what,
                        "watch failed, retrying with backoff; NetworkPolicy warnings use what was seen last \
                         (the injector needs list and watch on networkpolicies and pods)");
                }
                Err(_) => {}
            }
        }
    });
}

impl Policies {
    /// Starts the two reflectors.
    pub fn watch(client: Client) -> Policies {
        let (policies, writer) = reflector::store();
        follow(
            watcher(
                Api::<NetworkPolicy>::all(client.clone()),
                watcher::Config::default(),
            )
            .default_backoff()
            .modify(slim_policy)
            .reflect(writer),
            "networkpolicies",
        );
        let (pods, writer) = reflector::store();
        follow(
            // `PartialObjectMeta`: metadata-only list and watch requests.
            watcher(
                Api::<PartialObjectMeta<Pod>>::all(client),
                watcher::Config::default().labels(CONTROL_PLANE_NS_LABEL),
            )
            .default_backoff()
            .modify(slim_pod)
            .reflect(writer),
            "meshed pods",
        );
        Policies { policies, pods }
    }

    /// Objects cached now: (NetworkPolicies, meshed pods).
    pub fn len(&self) -> (usize, usize) {
        (self.policies.len(), self.pods.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }
}

fn in_namespace<K>(store: &Store<K>, namespace: &str) -> Vec<Arc<K>>
where
    K: Resource + Clone,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    store
        .state()
        .into_iter()
        .filter(|o| o.meta().namespace.as_deref() == Some(namespace))
        .collect()
}

impl NetworkLookup for Policies {
    fn policies(&self, namespace: &str) -> Vec<Arc<NetworkPolicy>> {
        in_namespace(&self.policies, namespace)
    }

    fn meshed_pods(&self, namespace: &str) -> Vec<MeshedPod> {
        in_namespace(&self.pods, namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pod_keeps_its_name_namespace_and_workload_labels() {
        let mut p: PartialObjectMeta<Pod> = serde_json::from_value(json!({
            "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
            "metadata": {"name": "web-1", "namespace": "shop",
                "labels": {"app": "web", "pod-template-hash": "5d9"},
                "annotations": {"big": "x".repeat(10_000)}, "uid": "u",
                "managedFields": [{"manager": "kubectl"}]}
        }))
        .unwrap();
        slim_pod(&mut p);
        assert_eq!(
            serde_json::to_value(&p.metadata).unwrap(),
            json!({"name": "web-1", "namespace": "shop", "labels": {"app": "web"}})
        );
        assert!(p.types.is_none());
    }

    #[test]
    fn a_policy_keeps_its_name_namespace_and_spec() {
        let mut p: NetworkPolicy = serde_json::from_value(json!({
            "metadata": {"name": "deny", "namespace": "shop", "uid": "u",
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
            "spec": {"podSelector": {}, "policyTypes": ["Egress"]}
        }))
        .unwrap();
        slim_policy(&mut p);
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": "deny", "namespace": "shop"},
                "spec": {"podSelector": {}, "policyTypes": ["Egress"]}})
        );
    }
}
