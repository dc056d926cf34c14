//! How the meshed pods are doing, across the cluster: each pod's verdict (`triage`, with its
//! Events as evidence and, for a proxy that does not get ready, the NetworkPolicy verdicts of
//! its identity and destination paths), grouped by owner and verdict (a count, the fix once),
//! and the pods that carry trust anchors other than the current ones. Pure: a function of one
//! cluster snapshot. `explain POD` gives one pod's verdict from the same functions.

use std::cell::OnceCell;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use serde::Serialize;

use super::classify::{Cluster, workload_of};
use super::network::{Network, meshed, path_line};
use super::{Workload, owner_line};
use crate::config::Config;
use crate::mesh::TRUST_ROOT_ANNOTATION;
use crate::netpol::Verdict as PathVerdict;
use crate::netpol::proxy::PathKind;
use crate::triage::Verdict;

/// The pods of one owner with one verdict.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Group {
    pub namespace: String,
    pub kind: String,
    pub name: String,
    /// The verdict's code (`triage::Verdict::code`).
    pub verdict: String,
    /// Whether the mesh is at fault (counted as a problem) or the app (a note).
    pub mesh: bool,
    pub pods: Vec<String>,
    /// What the first of them shows.
    pub says: String,
    pub fix: String,
    /// The first one's evidence (Events, NetworkPolicy verdicts).
    pub evidence: Vec<String>,
}

#[derive(Debug, Serialize, Default)]
pub struct Doing {
    /// Meshed pods not doing well, by owner and verdict.
    pub groups: Vec<Group>,
    /// Workloads whose pods carry trust anchors other than the current ones.
    pub old_trust_anchors: Vec<Workload>,
}

impl Doing {
    /// Problems: each owner with a verdict that is the mesh's, and each with old anchors.
    pub fn problems(&self) -> usize {
        self.groups.iter().filter(|g| g.mesh).count() + self.old_trust_anchors.len()
    }
}

/// Verdicts that are not trouble: not listed by `check`.
const NOT_TROUBLE: [&str; 3] = ["ready", "proxy_starting", "finished"];

/// One meshed pod's verdict (`triage`) with its Warning Events (`events`) as evidence; for a
/// running proxy that does not get ready, also the NetworkPolicy evaluator's verdicts of its
/// identity and destination paths when a policy selects the pod (a denied one becomes the
/// verdict's fix). `network` is built from the snapshot on first use.
pub fn pod_verdict(
    pod: &Pod,
    events: &[&k8s_openapi::api::core::v1::Event],
    cluster: &Cluster,
    config: &Config,
    network: &OnceCell<Network>,
) -> Option<Verdict> {
    let mut v = crate::triage::how_it_is_doing(pod, events, cluster.read_at)?;
    if let Some(e) = cluster.events_unread.as_ref().filter(|_| v.mesh) {
        v.evidence.push(format!("no Events: {e}"));
    }
    if v.code != "proxy_not_ready" || cluster.network_unread.is_some() {
        return Some(v);
    }
    let network = network.get_or_init(|| Network::new(cluster, config));
    let ns = pod.namespace().unwrap_or_default();
    let paths = network.evaluate(pod, cluster.namespaces.get(&ns)).paths;
    let control: Vec<_> = paths
        .iter()
        .filter(|p| matches!(p.kind, PathKind::Identity | PathKind::Destination))
        .filter(|p| {
            p.verdict != PathVerdict::Allowed
                || !p.pod_side.isolating.is_empty()
                || p.far_side.is_some()
        })
        .collect();
    if control.is_empty() {
        v.fix = "no NetworkPolicy selects the pod: look at the control plane (linkerd check) and \
                 the proxy's log (kubectl logs POD -c linkerd-proxy)"
            .to_owned();
        return Some(v);
    }
    let denied: Vec<&str> = control
        .iter()
        .filter(|p| p.verdict == PathVerdict::Denied)
        .map(|p| p.kind.slug())
        .collect();
    let unknown = control
        .iter()
        .any(|p| matches!(p.verdict, PathVerdict::CannotTell { .. }));
    if denied.is_empty() && unknown {
        v.says.push_str(
            "; NetworkPolicies select it: whether they allow its identity and destination paths \
             cannot be told (the evidence says why)",
        );
    } else if denied.is_empty() {
        v.says
            .push_str("; NetworkPolicies select it but allow its identity and destination paths");
    } else {
        v.says.push_str(&format!(
            "; NetworkPolicies deny its {} path{}",
            denied.join(" and "),
            if denied.len() == 1 { "" } else { "s" }
        ));
        v.fix = format!(
            "open the denied path{}: `proxy-injector explain {} -n {ns}` prints the NetworkPolicies \
             that do (allow-linkerd-{}); then restart the pod",
            if denied.len() == 1 { "" } else { "s" },
            pod.name_any(),
            denied.join(", allow-linkerd-")
        );
    }
    let lines = control
        .iter()
        .map(|p| format!("{} path: {}", p.kind.slug(), path_line(p)));
    v.evidence = lines.chain(v.evidence.drain(..)).collect();
    Some(v)
}

/// The SHA-256 a pod injected now carries: of the config's trust anchors (the cluster's
/// `linkerd-identity-trust-roots` when `Cluster::config` read them), when there are any.
pub fn current_trust_root(config: &Config) -> Option<String> {
    config
        .trust_anchors_pem
        .as_ref()
        .filter(|p| !p.trim().is_empty())
        .map(|_| crate::patch::trust_root_sha256(config))
}

pub fn doing(cluster: &Cluster, config: &Config) -> Doing {
    let mut groups: BTreeMap<(String, String, String, &'static str), Group> = BTreeMap::new();
    let mut old: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
    let trust = current_trust_root(config);
    let network = OnceCell::new();
    let events = cluster.pod_events();
    for pod in &cluster.pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if !meshed(pod) {
            continue;
        }
        let ns = pod.namespace().unwrap_or_default();
        let (kind, name) = workload_of(pod, cluster);
        if let Some(v) = pod_verdict(pod, &events.of(pod), cluster, config, &network)
            .filter(|v| !NOT_TROUBLE.contains(&v.code))
        {
            groups
                .entry((ns.clone(), kind.clone(), name.clone(), v.code))
                .or_insert_with(|| Group {
                    namespace: ns.clone(),
                    kind: kind.clone(),
                    name: name.clone(),
                    verdict: v.code.to_owned(),
                    mesh: v.mesh,
                    pods: Vec::new(),
                    says: v.says.clone(),
                    fix: v.fix.clone(),
                    evidence: v.evidence.clone(),
                })
                .pods
                .push(pod.name_any());
        }
        let carried = pod.annotations().get(TRUST_ROOT_ANNOTATION);
        if let (Some(current), Some(carried)) = (&trust, carried)
            && carried != current
        {
            old.entry((ns, kind, name))
                .or_default()
                .push(pod.name_any());
        }
    }
    Doing {
        groups: groups.into_values().collect(),
        old_trust_anchors: old
            .into_iter()
            .map(|((namespace, kind, name), pods)| Workload::restarted(namespace, kind, name, pods))
            .collect(),
    }
}

impl Doing {
    pub fn render(&self) -> String {
        let mut s = String::new();
        let line = |g: &Group| {
            let mut l = format!(
                "{}: {}\n",
                owner_line(&g.namespace, &g.kind, &g.name, &g.pods),
                g.says
            );
            for e in &g.evidence {
                l.push_str(&format!("    evidence: {e}\n"));
            }
            l.push_str(&format!("    fix: {}\n", g.fix));
            l
        };
        let (mesh, app): (Vec<&Group>, Vec<&Group>) = self.groups.iter().partition(|g| g.mesh);
        if mesh.is_empty() {
            s.push_str("[ok  ] every meshed pod's proxy and init container are doing well\n");
        } else {
            s.push_str("[FAIL] meshed pods held up by the mesh (per owner and verdict):\n");
            mesh.iter().for_each(|g| s.push_str(&line(g)));
        }
        if !app.is_empty() {
            s.push_str(
                "[note] meshed pods whose app is not ready behind a ready proxy (not the mesh):\n",
            );
            app.iter().for_each(|g| s.push_str(&line(g)));
        }
        if self.old_trust_anchors.is_empty() {
            s.push_str("[ok  ] every meshed pod carries the current trust anchors\n");
        } else {
            s.push_str(
                "[FAIL] pods with old trust anchors (they fail mTLS once the old anchor is removed):\n",
            );
            for w in &self.old_trust_anchors {
                s.push_str(&w.render());
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::{Value, json};

    fn pod(
        name: &str,
        rs: &str,
        proxy_state: Value,
        proxy_last: Value,
        ready: bool,
        anchors: &str,
    ) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "shop",
                "annotations": {"linkerd.io/trust-root-sha256": anchors},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs, "uid": "u", "controller": true}]},
            "spec": {"initContainers": [{"name": "linkerd-proxy", "image": "cr.l5d.io/linkerd/proxy:edge-26.8.3"}],
                     "containers": [{"name": "app", "image": "app:1"}]},
            "status": {"initContainerStatuses": [{"name": "linkerd-proxy", "ready": ready, "restartCount": 2,
                    "image": "cr.l5d.io/linkerd/proxy:edge-26.8.3", "imageID": "", "state": proxy_state, "lastState": proxy_last}],
                "containerStatuses": [{"name": "app", "ready": false, "restartCount": 0, "image": "app:1", "imageID": "",
                    "state": {"running": {}}}]}
        }))
        .unwrap()
    }

    #[test]
    fn a_proxy_that_is_not_ready_gets_the_verdicts_of_its_control_plane_paths() {
        let mut p = pod(
            "web-1",
            "web-5d9",
            json!({"running": {}}),
            json!({}),
            false,
            "x",
        );
        p.status
            .as_mut()
            .unwrap()
            .init_container_statuses
            .as_mut()
            .unwrap()[0]
            .restart_count = 0;
        let deny: k8s_openapi::api::networking::v1::NetworkPolicy = serde_json::from_value(
            json!({"metadata": {"name": "deny-egress", "namespace": "shop"},
                   "spec": {"podSelector": {}, "policyTypes": ["Egress"]}}),
        )
        .unwrap();
        let verdict = |policies: Vec<_>| {
            let cluster = Cluster {
                pods: vec![p.clone()],
                network_policies: policies,
                ..Cluster::default()
            };
            pod_verdict(&p, &[], &cluster, &Config::default(), &OnceCell::new()).unwrap()
        };
        // No policy selects it: the status alone.
        let v = verdict(vec![]);
        assert_eq!(v.code, "proxy_not_ready");
        assert!(v.evidence.is_empty(), "{v:?}");
        assert!(
            v.fix.starts_with("no NetworkPolicy selects the pod"),
            "{v:?}"
        );
        let v = verdict(vec![deny]);
        assert!(
            v.says
                .ends_with("; NetworkPolicies deny its identity and destination paths"),
            "{v:?}"
        );
        assert!(
            v.evidence[0].starts_with("identity path: egress to the identity controller")
                && v.evidence[0].contains("blocked by shop/deny-egress"),
            "{v:?}"
        );
        assert!(v.evidence[1].starts_with("destination path: "), "{v:?}");
        assert_eq!(
            v.fix,
            "open the denied paths: `proxy-injector explain web-1 -n shop` prints the NetworkPolicies \
             that do (allow-linkerd-identity, allow-linkerd-destination); then restart the pod"
        );
    }

    #[test]
    fn a_starting_proxy_and_a_finished_pod_are_not_listed() {
        let starting = pod(
            "web-1",
            "web-5d9",
            json!({"running": {"startedAt": "2026-12-07T00:00:00Z"}}),
            json!({}),
            false,
            "x",
        );
        let mut finished = pod(
            "job-1",
            "job-x",
            json!({"terminated": {"exitCode": 0, "reason": "Completed"}}),
            json!({}),
            false,
            "x",
        );
        finished.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let mut cluster = Cluster {
            pods: vec![starting, finished],
            read_at: Some("2026-12-07T00:00:10Z".parse().unwrap()),
            ..Cluster::default()
        };
        let d = doing(&cluster, &Config::default());
        assert!(d.groups.is_empty(), "{:?}", d.groups);
        // A minute later the proxy that is still not ready is listed; the finished pod is not.
        cluster.read_at = Some("2026-12-07T00:02:00Z".parse().unwrap());
        let d = doing(&cluster, &Config::default());
        let got: Vec<(&str, &str)> = d
            .groups
            .iter()
            .map(|g| (g.pods[0].as_str(), g.verdict.as_str()))
            .collect();
        assert_eq!(got, [("web-1", "proxy_not_ready")]);
    }

    #[test]
    fn verdicts_are_grouped_per_owner_and_old_anchors_listed_with_the_restart() {
        let oom = |n: &str| {
            pod(
                n,
                "web-5d9",
                json!({"waiting": {"reason": "CrashLoopBackOff"}}),
                json!({"terminated": {"exitCode": 137, "reason": "OOMKilled"}}),
                false,
                "old",
            )
        };
        let app_down = pod(
            "api-1",
            "api-7c4",
            json!({"running": {}}),
            json!({}),
            true,
            "new",
        );
        let rs = |n: &str, d: &str| -> k8s_openapi::api::apps::v1::ReplicaSet {
            serde_json::from_value(json!({"metadata": {"name": n, "namespace": "shop",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": d, "uid": "d", "controller": true}]}}))
            .unwrap()
        };
        let cluster = Cluster {
            pods: vec![oom("web-5d9-a"), oom("web-5d9-b"), app_down],
            replica_sets: [
                (
                    ("shop".to_owned(), "web-5d9".to_owned()),
                    rs("web-5d9", "web"),
                ),
                (
                    ("shop".to_owned(), "api-7c4".to_owned()),
                    rs("api-7c4", "api"),
                ),
            ]
            .into_iter()
            .collect(),
            ..Cluster::default()
        };
        let config = Config {
            trust_anchors_pem: Some("the current anchors".into()),
            ..Config::default()
        };
        let d = doing(&cluster, &config);
        let got: Vec<(&str, &str, bool, usize)> = d
            .groups
            .iter()
            .map(|g| (g.name.as_str(), g.verdict.as_str(), g.mesh, g.pods.len()))
            .collect();
        assert_eq!(
            got,
            [
                ("api", "app_not_ready", false, 1),
                ("web", "proxy_oom_killed", true, 2)
            ]
        );
        // Every pod's hash differs from the current anchors' ("old", "new" are not hashes).
        let old: Vec<(&str, &str)> = d
            .old_trust_anchors
            .iter()
            .map(|w| (w.name.as_str(), w.fix.as_str()))
            .collect();
        assert_eq!(
            old,
            [
                ("api", "kubectl rollout restart deployment/api -n shop"),
                ("web", "kubectl rollout restart deployment/web -n shop")
            ]
        );
        // The app's trouble is a note, not a problem.
        assert_eq!(d.problems(), 1 + 2);
        let text = d.render();
        assert!(
            text.contains("[FAIL] meshed pods held up by the mesh"),
            "{text}"
        );
        assert!(
            text.contains(
                "shop/deployment web (2 pods: web-5d9-a, web-5d9-b): the proxy was OOM-killed"
            ),
            "{text}"
        );
        assert!(
            text.contains("[note] meshed pods whose app is not ready"),
            "{text}"
        );
    }
}
