//! The NetworkPolicy review of `POST /warn`: a policy being created or updated is evaluated
//! with the other policies of its namespace against the meshed pods there (one per workload),
//! and each proxy path it would cut off becomes a warning naming the policy, the path and the
//! fix. Pure: the cluster's policies and meshed pods come through [`NetworkLookup`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
pub use kube::core::PartialObjectMeta;

use super::proxy::{PathKind, ProxyNeeds};
use super::{Direction, Labels, PodInfo, PodNamespace, PolicyRef, PolicySet, Verdict};
use crate::quote::quote;

/// A meshed pod as the review knows it: its metadata (a metadata-only watch; its IP and
/// named ports are not known, so rules that depend on them "cannot tell").
pub type MeshedPod = Arc<PartialObjectMeta<Pod>>;

/// What the review knows of the cluster: the NetworkPolicies and the meshed pods (pods the
/// injector's labels mark) of a namespace. The shell's reflectors in a cluster; maps in tests.
pub trait NetworkLookup: Send + Sync {
    fn policies(&self, namespace: &str) -> Vec<Arc<NetworkPolicy>>;
    fn meshed_pods(&self, namespace: &str) -> Vec<MeshedPod>;
}

/// No cluster: no policies, no pods (the review then only speaks of meshed namespaces).
impl NetworkLookup for () {
    fn policies(&self, _: &str) -> Vec<Arc<NetworkPolicy>> {
        Vec::new()
    }
    fn meshed_pods(&self, _: &str) -> Vec<MeshedPod> {
        Vec::new()
    }
}

/// Labels that change with every rollout or pod (or revision): not part of what makes a
/// workload. The review's workloads, the pod cache and `check`'s fix selectors leave them out.
pub const PER_POD_LABELS: [&str; 10] = [
    "pod-template-hash",
    "controller-revision-hash",
    "pod-template-generation",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
    "controller-uid",
    "batch.kubernetes.io/controller-uid",
    "job-name",
    "batch.kubernetes.io/job-name",
    "batch.kubernetes.io/job-completion-index",
];

/// Labels without the per-pod ones: pods with equal workload labels are one workload.
pub fn workload_labels(labels: Option<&BTreeMap<String, String>>) -> BTreeMap<String, String> {
    labels
        .into_iter()
        .flatten()
        .filter(|(k, _)| !PER_POD_LABELS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The warnings for `policy` (being created or updated in `namespace`). `meshed_namespace`:
/// pods created in the namespace get the proxy (its annotation), so a policy there matters
/// even before any meshed pod exists.
pub fn review(
    policy: &NetworkPolicy,
    namespace: &str,
    ns: Option<&Namespace>,
    meshed_namespace: bool,
    lookup: &dyn NetworkLookup,
    needs: &ProxyNeeds,
) -> Vec<String> {
    let name = policy.metadata.name.as_deref().unwrap_or("");
    let mut reviewed = policy.clone();
    reviewed.metadata.namespace = Some(namespace.to_owned());
    let this = PolicyRef::new(namespace, name);

    // One subject per workload (its pods share their workload labels), and only those this
    // policy selects: it cannot cut off a pod it does not select.
    let alone = PolicySet::new(std::slice::from_ref(&reviewed));
    let mut directions = [false; 2];
    let pods = lookup.meshed_pods(namespace);
    let ns_labels = || match ns {
        Some(n) => Labels::exactly(n.metadata.labels.clone().unwrap_or_default()),
        None => Labels::at_least(BTreeMap::new()),
    };
    // Workloads: pods of one carry equal labels once the per-pod ones are left out (the pod
    // cache leaves them out already).
    let mut seen: BTreeSet<BTreeMap<&str, &str>> = BTreeSet::new();
    let mut subjects: BTreeMap<BTreeMap<String, String>, PodInfo> = BTreeMap::new();
    for pod in &pods {
        let key: BTreeMap<&str, &str> = pod
            .metadata
            .labels
            .iter()
            .flatten()
            .filter(|(k, _)| !PER_POD_LABELS.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if seen.contains(&key) {
            continue;
        }
        seen.insert(key);
        let labels = workload_labels(pod.metadata.labels.as_ref());
        let mut info = PodInfo::new(PodNamespace::new(namespace, ns_labels()), labels.clone());
        // Known from metadata only: its IP and named ports are not.
        info.ports = None;
        let selected = alone.for_pod(&info);
        if selected.any() {
            for d in [Direction::Ingress, Direction::Egress] {
                directions[d.index()] |= selected.isolates(d);
            }
            subjects.insert(labels, info);
        }
    }
    let mut anonymous = false;
    if subjects.is_empty() && meshed_namespace {
        // Pods injected later: any labels.
        let mut any = PodInfo::new(PodNamespace::new(namespace, ns_labels()), BTreeMap::new());
        any.labels = Labels::unknown();
        any.ports = None;
        let selected = alone.for_pod(&any);
        for d in [Direction::Ingress, Direction::Egress] {
            directions[d.index()] |= selected.isolates(d);
        }
        subjects.insert(BTreeMap::new(), any);
        anonymous = true;
    }
    if subjects.is_empty() {
        return Vec::new();
    }
    let others = lookup.policies(namespace);
    let set = PolicySet::of(
        others
            .iter()
            .map(|p| &**p)
            .filter(|p| p.metadata.name.as_deref() != Some(name))
            .chain(std::iter::once(&reviewed)),
    );

    let paths = needs.paths();
    // Per path: how many workloads this policy cuts off it.
    let mut cut: BTreeMap<PathKind, BTreeSet<&BTreeMap<String, String>>> = BTreeMap::new();
    for (labels, pod) in &subjects {
        let verdicts = paths.evaluate_where(&set, pod, |p| directions[p.direction.index()]);
        for v in verdicts {
            if v.answer.verdict == Verdict::Denied && v.answer.isolating.contains(&this) {
                cut.entry(v.path.kind).or_default().insert(labels);
            }
        }
    }
    cut.into_iter()
        .filter_map(|(kind, workloads)| {
            let path = paths.get(kind)?;
            let whose = if anonymous {
                "the pods injected in this namespace".to_owned()
            } else if workloads.len() == 1 {
                "1 meshed workload".to_owned()
            } else {
                format!("{} meshed workloads", workloads.len())
            };
            let (verb, fix) = match path.direction {
                Direction::Egress => ("from", "egress to it"),
                Direction::Ingress => ("from being reached by", "ingress from it"),
            };
            Some(format!(
                "NetworkPolicy {} in {namespace} blocks the linkerd-proxy of {whose} {verb} {}: \
                 add a NetworkPolicy that allows {fix} (`proxy-injector check` prints one, \
                 ready for `kubectl apply -f -`)",
                quote(name),
                path.label
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Cluster {
        policies: Vec<Arc<NetworkPolicy>>,
        pods: Vec<MeshedPod>,
    }

    impl NetworkLookup for Cluster {
        fn policies(&self, ns: &str) -> Vec<Arc<NetworkPolicy>> {
            self.policies
                .iter()
                .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
                .cloned()
                .collect()
        }
        fn meshed_pods(&self, ns: &str) -> Vec<MeshedPod> {
            self.pods
                .iter()
                .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
                .cloned()
                .collect()
        }
    }

    fn policy(v: serde_json::Value) -> NetworkPolicy {
        serde_json::from_value(v).unwrap()
    }

    fn deny_egress(name: &str) -> NetworkPolicy {
        policy(json!({"metadata": {"name": name, "namespace": "shop"},
            "spec": {"podSelector": {}, "policyTypes": ["Egress"]}}))
    }

    fn pod(name: &str, app: &str, hash: &str) -> MeshedPod {
        Arc::new(PartialObjectMeta {
            metadata: serde_json::from_value(json!({"name": name, "namespace": "shop",
                "labels": {"app": app, "pod-template-hash": hash,
                           "linkerd.io/control-plane-ns": "linkerd"}}))
            .unwrap(),
            ..Default::default()
        })
    }

    fn shop() -> Namespace {
        serde_json::from_value(json!({"metadata": {"name": "shop",
            "labels": {"kubernetes.io/metadata.name": "shop"}}}))
        .unwrap()
    }

    #[test]
    fn default_deny_egress_names_every_control_plane_path_and_counts_workloads() {
        let cluster = Cluster {
            policies: vec![],
            pods: vec![
                pod("web-1", "web", "a"),
                pod("web-2", "web", "b"),
                pod("db-1", "db", "c"),
            ],
        };
        let w = review(
            &deny_egress("default-deny-egress"),
            "shop",
            Some(&shop()),
            false,
            &cluster,
            &ProxyNeeds::default(),
        );
        assert_eq!(w.len(), 5, "{w:#?}");
        assert!(w[0].starts_with(
            r#"NetworkPolicy "default-deny-egress" in shop blocks the linkerd-proxy of 2 meshed workloads from the identity controller (TCP 8080 to linkerd)"#
        ), "{w:#?}");
        assert!(
            w.iter()
                .any(|l| l.contains("the destination controller (TCP 8086 to linkerd)"))
        );
        assert!(w.iter().any(|l| l.contains("DNS (UDP 53")), "{w:#?}");
    }

    #[test]
    fn the_fix_applied_is_silent_and_a_dns_only_policy_still_reports_the_control_plane() {
        let needs = ProxyNeeds::default();
        let paths = needs.paths();
        let selector = Default::default();
        let fixes: Vec<Arc<NetworkPolicy>> = paths
            .as_slice()
            .iter()
            .filter(|p| p.direction == Direction::Egress)
            .map(|p| {
                let mut f = super::super::proxy::fix(p, "shop", &selector);
                f.metadata.namespace = Some("shop".into());
                Arc::new(f)
            })
            .collect();
        let cluster = Cluster {
            policies: fixes.clone(),
            pods: vec![pod("web-1", "web", "a")],
        };
        let w = review(
            &deny_egress("deny"),
            "shop",
            Some(&shop()),
            false,
            &cluster,
            &needs,
        );
        assert!(w.is_empty(), "{w:#?}");
        // Each fix itself, reviewed when the others are there: silent too.
        let w = review(&fixes[0], "shop", Some(&shop()), false, &cluster, &needs);
        assert!(w.is_empty(), "{w:#?}");

        let dns_only = policy(
            json!({"metadata": {"name": "dns-only", "namespace": "shop"},
            "spec": {"podSelector": {}, "policyTypes": ["Egress"],
                     "egress": [{"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}]}}),
        );
        let cluster = Cluster {
            policies: vec![],
            pods: vec![pod("web-1", "web", "a")],
        };
        let w = review(&dns_only, "shop", Some(&shop()), false, &cluster, &needs);
        assert_eq!(w.len(), 3, "identity, destination, policy: {w:#?}");
        assert!(w.iter().all(|l| !l.contains("DNS")), "{w:#?}");
    }

    #[test]
    fn unmeshed_namespaces_are_silent_and_meshed_ones_speak_before_their_first_pod() {
        let none = Cluster {
            policies: vec![],
            pods: vec![],
        };
        let needs = ProxyNeeds::default();
        let p = deny_egress("deny");
        assert!(review(&p, "shop", Some(&shop()), false, &none, &needs).is_empty());
        let w = review(&p, "shop", Some(&shop()), true, &none, &needs);
        assert_eq!(w.len(), 5, "{w:#?}");
        assert!(
            w[0].contains("the pods injected in this namespace"),
            "{w:#?}"
        );
        // A policy selecting only other pods says nothing about pods it does not select.
        let other = policy(json!({"metadata": {"name": "only-db", "namespace": "shop"},
            "spec": {"podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Egress"]}}));
        let web = Cluster {
            policies: vec![],
            pods: vec![pod("web-1", "web", "a")],
        };
        assert!(review(&other, "shop", Some(&shop()), true, &web, &needs).is_empty());
    }

    #[test]
    fn ingress_deny_names_the_inbound_admin_and_control_ports() {
        let p = policy(json!({"metadata": {"name": "deny-in", "namespace": "shop"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}));
        let cluster = Cluster {
            policies: vec![],
            pods: vec![pod("web-1", "web", "a")],
        };
        let w = review(
            &p,
            "shop",
            Some(&shop()),
            false,
            &cluster,
            &ProxyNeeds::default(),
        );
        assert_eq!(w.len(), 3, "{w:#?}");
        assert!(
            w.iter().all(|l| l.contains("from being reached by")),
            "{w:#?}"
        );
        assert!(w.iter().any(|l| l.contains("TCP 4143")), "{w:#?}");
        assert!(w.iter().any(|l| l.contains("TCP 4191")), "{w:#?}");
    }
}
