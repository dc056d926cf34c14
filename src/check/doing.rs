//! How the meshed pods are doing, across the cluster: each pod's verdict (`triage`), grouped
//! by owner and verdict (a count, the fix once), and the pods that carry trust anchors other
//! than the current ones. Pure: a function of one cluster snapshot.

use std::collections::BTreeMap;

use kube::ResourceExt;
use serde::Serialize;

use super::classify::{Cluster, workload_of};
use super::{Workload, owner_line};
use crate::config::Config;
use crate::containers::proxy_image;
use crate::mesh::TRUST_ROOT_ANNOTATION;

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

/// The SHA-256 a pod injected now carries: of the cluster's current trust roots when the
/// snapshot has them, else of the config's.
fn current_trust_root(cluster: &Cluster, config: &Config) -> Option<String> {
    match &cluster.trust_roots {
        Some(pem) => {
            let c = Config {
                trust_anchors_pem: Some(pem.clone()),
                ..Config::default()
            };
            Some(crate::patch::trust_root_sha256(&c))
        }
        None => config
            .trust_anchors_pem
            .is_some()
            .then(|| crate::patch::trust_root_sha256(config)),
    }
}

pub fn doing(cluster: &Cluster, config: &Config) -> Doing {
    let mut groups: BTreeMap<(String, String, String, &'static str), Group> = BTreeMap::new();
    let mut old: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
    let trust = current_trust_root(cluster, config);
    for pod in &cluster.pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Ok(value) = serde_json::to_value(pod) else {
            continue;
        };
        if proxy_image(&value).is_none() {
            continue;
        }
        let ns = pod.namespace().unwrap_or_default();
        let (kind, name) = workload_of(pod, cluster);
        if let Some(v) = crate::triage::how_it_is_doing(pod).filter(|v| v.code != "ready") {
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
            format!(
                "{}: {}\n    fix: {}\n",
                owner_line(&g.namespace, &g.kind, &g.name, &g.pods),
                g.says,
                g.fix
            )
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
            trust_roots: Some("the current anchors".into()),
            ..Cluster::default()
        };
        let d = doing(&cluster, &Config::default());
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
