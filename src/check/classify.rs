//! What `check` finds among the pods: the pure classification ([`classify`]) of one cluster
//! snapshot ([`Cluster`]), which decides each pod as if it were created now (with the
//! webhook's own decision code) and compares with what it runs.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;

pub use super::cluster::Cluster;
use super::{Outdated, Workload};
use crate::config::Config;
use crate::containers::proxy_image;
use crate::decision::{self, Decision, NamespaceInfo, RequestFacts};
use crate::mesh::{DEBUG_CONTAINER, INIT_CONTAINER, PROXY_CONTAINER, VALIDATOR_CONTAINER};
use crate::uninject::strip_injected;
use crate::view::PodView;
use crate::workload::is_controller;

fn controller(refs: &[OwnerReference]) -> Option<(String, String)> {
    refs.iter()
        .find(|r| is_controller(r.controller))
        .map(|r| (r.kind.clone(), r.name.clone()))
}

/// The workload a pod belongs to (following ReplicaSet → Deployment and Job → CronJob).
pub(crate) fn workload_of(pod: &Pod, cluster: &Cluster) -> (String, String) {
    let ns = pod.namespace().unwrap_or_default();
    let Some((kind, name)) = controller(pod.owner_references()) else {
        return ("Pod".into(), pod.name_any());
    };
    let parent = match kind.as_str() {
        "ReplicaSet" => cluster
            .replica_sets
            .get(&(ns, name.clone()))
            .and_then(|r| controller(r.owner_references())),
        "Job" => cluster
            .jobs
            .get(&(ns, name.clone()))
            .and_then(|j| controller(j.owner_references())),
        _ => None,
    };
    parent.unwrap_or((kind, name))
}

/// Pods left alone by `check`: kube-system, namespaces the webhook excludes, pods going away.
fn excluded(pod: &Pod, ns: &str, ns_obj: Option<&Namespace>) -> bool {
    ns == "kube-system"
        || pod.metadata.deletion_timestamp.is_some()
        || ns_obj.is_some_and(|n| {
            n.labels()
                .get("config.linkerd.io/admission-webhooks")
                .map(String::as_str)
                == Some("disabled")
        })
}

/// Workloads whose pods lack the proxy although a pod created now would get it, and pods whose
/// proxy image differs from what a pod created now would get.
pub fn classify(cluster: &Cluster, config: &Config) -> (Vec<Workload>, Vec<Outdated>) {
    let mut missing: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
    let mut outdated = Vec::new();
    for pod in &cluster.pods {
        let ns = pod.namespace().unwrap_or_default();
        let ns_obj = cluster.namespaces.get(&ns);
        if excluded(pod, &ns, ns_obj) {
            continue;
        }
        let Ok(mut value) = serde_json::to_value(pod) else {
            continue;
        };
        value["kind"] = "Pod".into();
        // Decided as if the pod were created now, without the proxy it may already have.
        let fresh = strip_injected(&value).to_string();
        let Ok(view) = PodView::parse(&fresh) else {
            continue;
        };
        let limits = cluster.limits.get(&ns).cloned().unwrap_or_default();
        // Pods the API server's admission keeps from the mesh are the blocked section's, not
        // "missing the proxy" (a restart would not give it to them).
        let info = NamespaceInfo::of(Some(&ns), ns_obj).with_limits(&limits);
        let Decision::Inject(plan) =
            decision::decide(&RequestFacts::POD_CREATE, &view, info, config)
        else {
            continue;
        };
        let expected = format!("{}:{}", plan.proxy.proxy_image, plan.proxy.proxy_version);
        match proxy_image(&value) {
            None => {
                let (kind, name) = workload_of(pod, cluster);
                missing
                    .entry((ns.clone(), kind, name))
                    .or_default()
                    .push(pod.name_any());
            }
            Some(img) if img != expected => {
                let (kind, name) = workload_of(pod, cluster);
                outdated.push(Outdated {
                    fix: crate::workload::restart_command(&kind, &name, &ns, &[pod.name_any()]),
                    namespace: ns.clone(),
                    pod: pod.name_any(),
                    running: img.to_owned(),
                    expected,
                })
            }
            Some(_) => {}
        }
    }
    let workloads = missing
        .into_iter()
        .map(|((namespace, kind, name), pods)| Workload::restarted(namespace, kind, name, pods))
        .collect();
    (workloads, outdated)
}

/// Where the API server's own admission stops injection: namespaces whose PodSecurity level,
/// ResourceQuotas or LimitRanges refuse the containers injection adds (their pods are admitted
/// without the proxy), and workloads whose pods it refuses now (FailedCreate Events that name
/// an injected container: an injector that does not check, or `apiServerRefusal: off`).
pub fn blocked(cluster: &Cluster, config: &Config) -> Vec<super::Blocked> {
    let mut out = Vec::new();
    for (name, ns) in &cluster.namespaces {
        let limits = cluster.limits.get(name).cloned().unwrap_or_default();
        let info = NamespaceInfo::of(Some(name), Some(ns)).with_limits(&limits);
        if let Some(reason) = decision::namespace_blocked(info, config) {
            out.push(super::Blocked {
                namespace: name.clone(),
                what: format!("namespace {name}"),
                detail: "its pods are admitted without the proxy".into(),
                fix: reason.to_string(),
            });
        }
    }
    let injected = [
        PROXY_CONTAINER,
        INIT_CONTAINER,
        VALIDATOR_CONTAINER,
        DEBUG_CONTAINER,
    ];
    let mut seen = std::collections::BTreeSet::new();
    for e in &cluster.failed_creates {
        let message = e.message.as_deref().unwrap_or("");
        let names_ours = injected.iter().any(|c| message.contains(c));
        let admission = [
            "violates PodSecurity",
            "failed quota",
            "usage per Container",
            "must be less than or equal to",
        ];
        if !admission.iter().any(|a| message.contains(a)) || !names_ours {
            continue;
        }
        let ns = e.involved_object.namespace.clone().unwrap_or_default();
        let owner = (
            e.involved_object.kind.clone().unwrap_or_default(),
            e.involved_object.name.clone().unwrap_or_default(),
        );
        // A ReplicaSet's Deployment, as the fix restarts it.
        let (kind, name) = match owner.0.as_str() {
            "ReplicaSet" => cluster
                .replica_sets
                .get(&(ns.clone(), owner.1.clone()))
                .and_then(|r| controller(r.owner_references()))
                .unwrap_or(owner),
            _ => owner,
        };
        if !seen.insert((ns.clone(), kind.clone(), name.clone())) {
            continue;
        }
        out.push(super::Blocked {
            what: format!("{ns}/{} {name}", kind.to_ascii_lowercase()),
            namespace: ns,
            detail: format!("its pods are refused now: {}", refusal(message)),
            fix: "run the injector with apiServerRefusal: admit-uninjected (the default), so \
                  that its pods are created without the proxy, or install linkerd-cni and set \
                  cniEnabled: true; then the controller creates them"
                .into(),
        });
    }
    out.sort_by(|a, b| (&a.namespace, &a.what).cmp(&(&b.namespace, &b.what)));
    out
}

/// The API server's words from "violates PodSecurity" on, at most 400 characters.
fn refusal(message: &str) -> String {
    let from = message.find("violates PodSecurity").unwrap_or(0);
    let mut words: String = message[from..].chars().take(400).collect();
    if words.len() < message.len() - from {
        words.push('…');
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::api::batch::v1::Job;
    use serde_json::json;

    fn ns(name: &str, inject: Option<&str>, webhooks_disabled: bool) -> Namespace {
        let mut v = json!({"metadata": {"name": name}});
        if let Some(i) = inject {
            v["metadata"]["annotations"] = json!({"linkerd.io/inject": i});
        }
        if webhooks_disabled {
            v["metadata"]["labels"] = json!({"config.linkerd.io/admission-webhooks": "disabled"});
        }
        serde_json::from_value(v).unwrap()
    }

    fn owner(kind: &str, name: &str, controller: Option<bool>) -> serde_json::Value {
        json!({"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": "u", "controller": controller})
    }

    /// A pod in `ns`, with `proxy` as its linkerd-proxy image (None: no proxy).
    fn pod(ns: &str, name: &str, proxy: Option<&str>, owners: Vec<serde_json::Value>) -> Pod {
        let mut containers = vec![json!({"name": "app", "image": "app:1"})];
        if let Some(img) = proxy {
            containers.insert(0, json!({"name": "linkerd-proxy", "image": img}));
        }
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns,
            "ownerReferences": owners}, "spec": {"containers": containers}}))
        .unwrap()
    }

    fn cluster(pods: Vec<Pod>, extra: Vec<serde_json::Value>) -> Cluster {
        let mut c = Cluster {
            namespaces: [
                ns("shop", Some("enabled"), false),
                ns("plain", None, false),
                ns("off", Some("enabled"), true),
                ns("kube-system", Some("enabled"), false),
            ]
            .into_iter()
            .map(|n| (n.name_any(), n))
            .collect(),
            pods,
            ..Default::default()
        };
        for o in extra {
            match o["kind"].as_str() {
                Some("ReplicaSet") => {
                    let rs: ReplicaSet = serde_json::from_value(o).unwrap();
                    c.replica_sets
                        .insert((rs.namespace().unwrap(), rs.name_any()), rs);
                }
                _ => {
                    let j: Job = serde_json::from_value(o).unwrap();
                    c.jobs.insert((j.namespace().unwrap(), j.name_any()), j);
                }
            }
        }
        c
    }

    const CURRENT: &str = "cr.l5d.io/linkerd/proxy:edge-26.8.3";

    #[test]
    fn table() {
        let rs = json!({"kind": "ReplicaSet", "metadata": {"name": "web-5d9", "namespace": "shop",
            "ownerReferences": [owner("Deployment", "web", Some(true))]}});
        let job = json!({"kind": "Job", "metadata": {"name": "nightly-1", "namespace": "shop",
            "ownerReferences": [owner("CronJob", "nightly", Some(true))]}});
        // (pod, expected missing workload "ns/kind/name", expected outdated pod)
        let cases: Vec<(&str, Pod, Option<&str>, Option<&str>)> = vec![
            (
                "meshed, current",
                pod("shop", "a", Some(CURRENT), vec![]),
                None,
                None,
            ),
            (
                "bare pod without proxy",
                pod("shop", "b", None, vec![]),
                Some("shop/Pod/b"),
                None,
            ),
            (
                "ReplicaSet followed to its Deployment",
                pod(
                    "shop",
                    "web-5d9-x",
                    None,
                    vec![owner("ReplicaSet", "web-5d9", Some(true))],
                ),
                Some("shop/Deployment/web"),
                None,
            ),
            (
                "ReplicaSet not listed: the ReplicaSet itself",
                pod(
                    "shop",
                    "api-1-x",
                    None,
                    vec![owner("ReplicaSet", "api-1", Some(true))],
                ),
                Some("shop/ReplicaSet/api-1"),
                None,
            ),
            (
                "Job followed to its CronJob",
                pod(
                    "shop",
                    "nightly-1-x",
                    None,
                    vec![owner("Job", "nightly-1", Some(true))],
                ),
                Some("shop/CronJob/nightly"),
                None,
            ),
            (
                "an owner that is not the controller does not count",
                pod(
                    "shop",
                    "c",
                    None,
                    vec![owner("ReplicaSet", "web-5d9", None)],
                ),
                Some("shop/Pod/c"),
                None,
            ),
            (
                "outdated proxy",
                pod("shop", "d", Some("cr.l5d.io/linkerd/proxy:old"), vec![]),
                None,
                Some("d"),
            ),
            (
                "namespace not meshed",
                pod("plain", "e", None, vec![]),
                None,
                None,
            ),
            (
                "webhooks disabled on the namespace",
                pod("off", "f", None, vec![]),
                None,
                None,
            ),
            (
                "kube-system is never checked",
                pod("kube-system", "g", None, vec![]),
                None,
                None,
            ),
        ];
        for (what, p, want_missing, want_outdated) in cases {
            let c = cluster(vec![p], vec![rs.clone(), job.clone()]);
            let (missing, outdated) = classify(&c, &Config::default());
            let got: Vec<String> = missing
                .iter()
                .map(|w| format!("{}/{}/{}", w.namespace, w.kind, w.name))
                .collect();
            assert_eq!(
                got,
                want_missing
                    .into_iter()
                    .map(String::from)
                    .collect::<Vec<_>>(),
                "{what}"
            );
            let got: Vec<&str> = outdated.iter().map(|o| o.pod.as_str()).collect();
            assert_eq!(got, want_outdated.into_iter().collect::<Vec<_>>(), "{what}");
        }
    }

    #[test]
    fn injection_blocked_by_pod_security_is_listed_per_namespace_and_per_refused_workload() {
        let labelled: Namespace = serde_json::from_value(json!({"metadata": {"name": "shop",
            "annotations": {"linkerd.io/inject": "enabled"},
            "labels": {"pod-security.kubernetes.io/enforce": "baseline"}}}))
        .unwrap();
        let rs: ReplicaSet = serde_json::from_value(json!({"metadata": {"name": "web-1",
            "namespace": "batch", "ownerReferences": [owner("Deployment", "web", Some(true))]}}))
        .unwrap();
        let refused = |n: u32| -> k8s_openapi::api::core::v1::Event {
            serde_json::from_value(json!({"metadata": {"name": format!("e{n}"), "namespace": "batch"},
                "reason": "FailedCreate",
                "involvedObject": {"kind": "ReplicaSet", "name": "web-1", "namespace": "batch"},
                "message": format!("Error creating: pods \"web-1-{n}\" is forbidden: violates PodSecurity \"baseline:latest\": non-default capabilities (container \"linkerd-init\" must not include \"NET_ADMIN\", \"NET_RAW\" in securityContext.capabilities.add)")}))
            .unwrap()
        };
        // The app's own refusal is not the mesh's.
        let app: k8s_openapi::api::core::v1::Event = serde_json::from_value(json!({
            "metadata": {"name": "app", "namespace": "batch"}, "reason": "FailedCreate",
            "involvedObject": {"kind": "ReplicaSet", "name": "other", "namespace": "batch"},
            "message": "pods \"x\" is forbidden: violates PodSecurity \"baseline:latest\": privileged (container \"app\" must not set securityContext.privileged=true)"}))
        .unwrap();
        let c = Cluster {
            namespaces: [
                ("shop".to_owned(), labelled),
                ("batch".to_owned(), ns("batch", Some("enabled"), false)),
            ]
            .into_iter()
            .collect(),
            replica_sets: [(("batch".to_owned(), "web-1".to_owned()), rs)]
                .into_iter()
                .collect(),
            failed_creates: vec![refused(1), refused(2), app],
            ..Cluster::default()
        };
        let b = blocked(&c, &Config::default());
        let what: Vec<&str> = b.iter().map(|b| b.what.as_str()).collect();
        assert_eq!(what, ["batch/deployment web", "namespace shop"]);
        assert!(b[0].detail.contains("linkerd-init"), "{:?}", b[0]);
        assert!(b[1].fix.contains("cniEnabled: true"), "{:?}", b[1]);
        // With CNI the namespace is fine.
        let cni = Config {
            cni_enabled: true,
            ..Config::default()
        };
        assert_eq!(blocked(&c, &cni).len(), 1);
    }

    #[test]
    fn injection_blocked_by_a_quota_is_listed_per_namespace_and_per_refused_workload() {
        let q: k8s_openapi::api::core::v1::ResourceQuota = serde_json::from_value(json!({
            "metadata": {"name": "compute", "namespace": "shop"},
            "spec": {"hard": {"limits.cpu": "4"}}}))
        .unwrap();
        let mut limits = crate::quota::NamespaceLimits::default();
        std::sync::Arc::make_mut(limits.quotas.get_or_insert_default())
            .insert("compute".into(), crate::quota::QuotaDigest::of(&q));
        let refused: k8s_openapi::api::core::v1::Event = serde_json::from_value(json!({
            "metadata": {"name": "e", "namespace": "shop"}, "reason": "FailedCreate",
            "involvedObject": {"kind": "StatefulSet", "name": "db", "namespace": "shop"},
            "message": "create Pod db-0 in StatefulSet db failed error: pods \"db-0\" is forbidden: failed quota: compute: must specify limits.cpu for: linkerd-init,linkerd-proxy"}))
        .unwrap();
        let c = Cluster {
            namespaces: [("shop".to_owned(), ns("shop", Some("enabled"), false))]
                .into_iter()
                .collect(),
            limits: [("shop".to_owned(), limits)].into_iter().collect(),
            failed_creates: vec![refused],
            ..Cluster::default()
        };
        let b = blocked(&c, &Config::default());
        let what: Vec<&str> = b.iter().map(|b| b.what.as_str()).collect();
        assert_eq!(what, ["namespace shop", "shop/statefulset db"]);
        assert!(
            b[0].fix.contains("ResourceQuota compute tracks limits.cpu"),
            "{:?}",
            b[0]
        );
        assert!(b[1].detail.contains("failed quota: compute"), "{:?}", b[1]);
    }

    #[test]
    fn pods_of_one_workload_are_grouped_with_one_fix() {
        let rs = json!({"kind": "ReplicaSet", "metadata": {"name": "web-5d9", "namespace": "shop",
            "ownerReferences": [owner("Deployment", "web", Some(true))]}});
        let pods = ["web-5d9-a", "web-5d9-b"].map(|n| {
            pod(
                "shop",
                n,
                None,
                vec![owner("ReplicaSet", "web-5d9", Some(true))],
            )
        });
        let (missing, _) = classify(&cluster(pods.to_vec(), vec![rs]), &Config::default());
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].pods, ["web-5d9-a", "web-5d9-b"]);
        assert_eq!(
            missing[0].fix,
            "kubectl rollout restart deployment/web -n shop"
        );
    }
}
