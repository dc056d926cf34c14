//! The cluster's NetworkPolicies and meshed pods, for `/warn`'s NetworkPolicy review: two
//! `kube::runtime` reflectors (list and watch only), each object cut down to what the review
//! reads. Meshed pods are the ones carrying the injector's `linkerd.io/control-plane-ns`
//! label (a label selector on the watch: other pods are never sent).

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Container, ContainerPort, Pod, PodSpec, PodStatus};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};

use crate::mesh::CONTROL_PLANE_NS_LABEL;
use crate::netpol::review::{NetworkLookup, PER_POD_LABELS};

#[derive(Clone)]
pub struct Policies {
    policies: Store<NetworkPolicy>,
    pods: Store<Pod>,
}

/// A NetworkPolicy keeps its name, namespace and spec.
fn slim_policy(p: &mut NetworkPolicy) {
    p.metadata = ObjectMeta {
        name: p.metadata.name.take(),
        namespace: p.metadata.namespace.take(),
        ..Default::default()
    };
}

/// A meshed pod keeps its name, namespace, labels but the per-pod ones (pod-template-hash...:
/// the pods of one workload then carry equal labels), named container ports (named ports in
/// policies resolve to them) and IP (ipBlock rules).
fn slim_pod(p: &mut Pod) {
    let named = |c: &Container| Container {
        name: c.name.clone(),
        ports: c.ports.as_ref().map(|ports| {
            ports
                .iter()
                .filter(|p| p.name.is_some())
                .map(|p| ContainerPort {
                    name: p.name.clone(),
                    container_port: p.container_port,
                    protocol: p.protocol.clone(),
                    ..Default::default()
                })
                .collect()
        }),
        restart_policy: c.restart_policy.clone(),
        ..Default::default()
    };
    let spec = p.spec.take().map(|s| PodSpec {
        containers: s.containers.iter().map(named).collect(),
        init_containers: s.init_containers.as_ref().map(|cs| {
            cs.iter()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"))
                .map(named)
                .collect()
        }),
        ..Default::default()
    });
    let ip = p.status.take().and_then(|s| s.pod_ip);
    p.metadata = ObjectMeta {
        name: p.metadata.name.take(),
        namespace: p.metadata.namespace.take(),
        labels: p.metadata.labels.take().map(|mut l| {
            l.retain(|k, _| !PER_POD_LABELS.contains(&k.as_str()));
            l
        }),
        ..Default::default()
    };
    p.spec = spec;
    p.status = ip.map(|ip| PodStatus {
        pod_ip: Some(ip),
        ..Default::default()
    });
}

fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    slim: fn(&mut K),
    what: &'static str,
) -> Store<K>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (store, writer) = reflector::store();
    let stream = watcher(api, config)
        .default_backoff()
        .modify(slim)
        .reflect(writer);
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
    store
}

impl Policies {
    /// Starts the two reflectors.
    pub fn watch(client: Client) -> Policies {
        let policies = reflect(
            Api::<NetworkPolicy>::all(client.clone()),
            watcher::Config::default(),
            slim_policy,
            "networkpolicies",
        );
        let pods = reflect(
            Api::<Pod>::all(client),
            watcher::Config::default().labels(CONTROL_PLANE_NS_LABEL),
            slim_pod,
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

    fn meshed_pods(&self, namespace: &str) -> Vec<Arc<Pod>> {
        in_namespace(&self.pods, namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pod_keeps_only_what_the_review_reads() {
        let mut p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web", "pod-template-hash": "5d9"},
                "annotations": {"big": "x".repeat(10_000)}, "uid": "u"},
            "spec": {"containers": [{"name": "app", "image": "nginx", "env": [{"name": "A", "value": "1"}],
                "ports": [{"containerPort": 8080, "name": "http"}, {"containerPort": 9090}]}],
                "initContainers": [{"name": "linkerd-init", "image": "x"},
                    {"name": "linkerd-proxy", "image": "p", "restartPolicy": "Always",
                     "ports": [{"containerPort": 4143, "name": "linkerd-proxy"}]}]},
            "status": {"podIP": "10.0.0.7", "phase": "Running"}
        }))
        .unwrap();
        slim_pod(&mut p);
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "ports": [{"containerPort": 8080, "name": "http"}]}],
                    "initContainers": [{"name": "linkerd-proxy", "restartPolicy": "Always",
                        "ports": [{"containerPort": 4143, "name": "linkerd-proxy"}]}]},
                "status": {"podIP": "10.0.0.7"}})
        );
    }
}
