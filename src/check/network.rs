//! `check`'s network section and `explain`'s network lines (pure): which of a meshed pod's
//! proxy paths (`netpol::proxy`) NetworkPolicies deny or may deny, on the pod's side and, for
//! egress to peers that run in the cluster (the control plane, DNS), on the peer's ingress
//! side; and the NetworkPolicies that open the denied paths.
//!
//! One entry per workload (grouped as `classify` groups pods), evaluated on one of its pods;
//! "cannot tell" is reported as such and is not a problem, "denied" is.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;
use serde::Serialize;

use super::classify::{Cluster, workload_of};
use crate::config::Config;
use crate::mesh::{CONTROL_PLANE_NS_LABEL, PROXY_CONTAINER, WORKLOAD_NS_LABEL};
use crate::netpol::proxy::{PathKind, ProxyNeeds, ProxyPath, ProxyPaths, fix};
use crate::netpol::review;
use crate::netpol::{
    Direction, Endpoint, PodInfo, PolicyRef, PolicySet, Protocol, SideAnswer, Verdict,
};

mod render;
#[cfg(test)]
mod tests;

pub use render::{fix_block, path_line};

/// A pod's labels without the per-revision ones ([`review::PER_POD_LABELS`]): a fix's
/// selector keeps selecting the workload's next pods.
pub fn stable_labels(pod: &Pod) -> BTreeMap<String, String> {
    review::workload_labels(pod.metadata.labels.as_ref())
}

/// Whether the pod runs the proxy (a container, or a sidecar init container, named
/// `linkerd-proxy`).
pub fn meshed(pod: &Pod) -> bool {
    pod.spec.as_ref().is_some_and(|s| {
        let mut names = s.containers.iter().map(|c| &c.name);
        let mut init = s.init_containers.iter().flatten().map(|c| &c.name);
        names.any(|n| n == PROXY_CONTAINER) || init.any(|n| n == PROXY_CONTAINER)
    })
}

/// Pods whose network is looked at: not going away, not finished, not on the host's network
/// (NetworkPolicies do not apply to those).
fn live(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    let host = pod.spec.as_ref().and_then(|s| s.host_network) == Some(true);
    pod.metadata.deletion_timestamp.is_none()
        && !matches!(phase, Some("Succeeded" | "Failed"))
        && !host
}

/// A peer pod at the far end of an egress path (a control-plane or DNS pod).
#[derive(Debug, Clone)]
struct FarPod {
    /// `namespace/name`.
    name: String,
    namespace: String,
    info: PodInfo,
    labels: BTreeMap<String, String>,
}

/// The far end's side of a path when it is not plainly allowed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FarSide {
    /// `namespace/name` of the peer pod.
    pub pod: String,
    /// The peer pod's ingress side.
    pub answer: SideAnswer,
}

/// One proxy path of one pod.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathReport {
    pub kind: PathKind,
    /// e.g. "the destination controller (TCP 8086 to linkerd)".
    pub label: String,
    pub direction: Direction,
    pub protocol: Protocol,
    pub port: u16,
    /// Both sides together: denied when a side denies, else cannot tell when a side cannot.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// The policies that deny it (those isolating a side that denies); empty unless denied.
    pub blocked_by: Vec<PolicyRef>,
    /// The pod's own side.
    pub pod_side: SideAnswer,
    /// The peer's ingress side, when a peer pod runs in the cluster and its side is not
    /// plainly allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub far_side: Option<FarSide>,
}

/// Every proxy path of one pod and the NetworkPolicies that open the denied ones.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PodNetwork {
    pub paths: Vec<PathReport>,
    /// One NetworkPolicy per denied side of a path (`kubectl apply -f -`).
    pub fix: Vec<NetworkPolicy>,
    /// Why a denied path has no fix, when one has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix_note: Option<String>,
}

/// A meshed workload with a path that is not allowed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkloadNetwork {
    pub namespace: String,
    pub kind: String,
    pub name: String,
    pub pods: Vec<String>,
    /// The pod evaluated for the workload.
    pub evaluated_pod: String,
    /// Only the paths that are denied or cannot be told.
    #[serde(flatten)]
    pub network: PodNetwork,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NetworkReport {
    /// How many meshed workloads were evaluated.
    pub meshed_workloads: usize,
    /// Workloads with at least one path denied or that cannot be told.
    pub workloads: Vec<WorkloadNetwork>,
    /// Parts of policies the API server would reject (treated as "cannot tell").
    pub policy_problems: Vec<String>,
    /// Paths not evaluated and why (ingress from a namespace that does not exist).
    pub not_checked: Vec<String>,
    /// Denied paths, one per workload and path.
    pub problems: usize,
}

/// The cluster's policies and proxy paths, ready to evaluate pods.
#[derive(Debug)]
pub struct Network {
    set: PolicySet,
    paths: ProxyPaths,
    control_plane_namespace: String,
    /// Per path (same order as `paths`), the pods at its far end (egress paths only).
    far: Vec<Vec<FarPod>>,
    /// Per path, why it is not evaluated (ingress from a namespace that does not exist).
    skipped: Vec<Option<String>>,
    /// "Meshed pods in any namespace": whom a fix on a peer's ingress lets in.
    meshed_peer: NetworkPolicyPeer,
}

impl Network {
    /// From what `check` lists (or what `explain` reads for one pod: its namespace's
    /// policies, and the control-plane and DNS namespaces' policies and pods).
    pub fn new(cluster: &Cluster, config: &Config) -> Network {
        let mut needs = ProxyNeeds::from_config(config);
        needs.namespace_labels = cluster
            .namespaces
            .iter()
            .map(|(name, ns)| (name.clone(), ns.labels().clone()))
            .collect();
        let paths = needs.paths();
        let far = paths
            .as_slice()
            .iter()
            .map(|path| far_pods(path, cluster))
            .collect();
        // The scraper and tap come from namespaces that may not exist (linkerd-viz not
        // installed): nothing needs those paths then. Namespaces not listed at all (an empty
        // map) are not known, so every path is evaluated.
        let skipped = paths
            .as_slice()
            .iter()
            .map(|path| match (&path.peer, path.direction) {
                (
                    Endpoint::Pod(PodInfo {
                        namespace: Some(ns),
                        ..
                    }),
                    Direction::Ingress,
                ) if !cluster.namespaces.is_empty()
                    && !cluster.namespaces.contains_key(&ns.name) =>
                {
                    Some(format!(
                        "ingress from {}: not checked, namespace {} does not exist",
                        path.label, ns.name
                    ))
                }
                _ => None,
            })
            .collect();
        let meshed_peer = paths
            .get(PathKind::Inbound)
            .map(|p| p.peer_selector.clone())
            .unwrap_or_default();
        Network {
            set: PolicySet::new(&cluster.network_policies),
            paths,
            control_plane_namespace: needs.control_plane_namespace,
            far,
            skipped,
            meshed_peer,
        }
    }

    /// The paths not evaluated and why, e.g. "ingress from tap (TCP 4190 from linkerd-viz):
    /// not checked, namespace linkerd-viz does not exist".
    pub fn not_checked(&self) -> Vec<String> {
        self.skipped.iter().flatten().cloned().collect()
    }

    pub fn policy_problems(&self) -> &[String] {
        self.set.problems()
    }

    /// Every proxy path of `pod`, as the pod answers once meshed (the proxy's ports and the
    /// labels injection adds are taken as there), and the fixes for the denied ones.
    pub fn evaluate(&self, pod: &Pod, namespace: Option<&Namespace>) -> PodNetwork {
        let mut info = PodInfo::from_pod(pod, namespace);
        let ns = info.namespace.as_ref().map(|n| n.name.clone());
        let added = [
            (
                CONTROL_PLANE_NS_LABEL,
                Some(self.control_plane_namespace.clone()),
            ),
            (WORKLOAD_NS_LABEL, ns.clone()),
        ];
        for (key, value) in added {
            if let Some(v) = value {
                info.labels.known.entry(key.into()).or_insert(v);
            }
        }
        let me = Endpoint::Pod(info.clone());
        let mut out = PodNetwork {
            paths: Vec::new(),
            fix: Vec::new(),
            fix_note: None,
        };
        let selector = stable_labels(pod);
        let verdicts = self.paths.evaluate(&self.set, &info);
        for (i, pv) in verdicts.into_iter().enumerate() {
            if self.skipped.get(i).is_some_and(Option::is_some) {
                continue;
            }
            let path = pv.path;
            let far = self.far.get(i).map_or(&[][..], Vec::as_slice);
            let far_side = far_answer(&self.set, far, &me, path);
            let mut blocked_by = Vec::new();
            if pv.answer.verdict == Verdict::Denied {
                blocked_by.extend(pv.answer.isolating.iter().cloned());
                match (&ns, selector.is_empty()) {
                    (Some(ns), false) => out.fix.push(fix(path, ns, &select(&selector))),
                    _ => {
                        out.fix_note = Some(
                            "the pod has no labels (or no namespace) a NetworkPolicy could \
                             select it by without selecting other pods; label the workload's \
                             pod template, then run this again"
                                .into(),
                        )
                    }
                }
            }
            if let Some((far_pod, side)) = &far_side
                && side.verdict == Verdict::Denied
            {
                blocked_by.extend(side.isolating.iter().cloned());
                let labels = &far_pod.labels;
                if labels.is_empty() {
                    out.fix_note = Some(format!(
                        "{} has no labels a NetworkPolicy could select it by alone",
                        far_pod.name
                    ));
                } else {
                    // The peer lets every meshed pod in, so one policy serves every workload.
                    let inward = ProxyPath {
                        direction: Direction::Ingress,
                        peer_selector: self.meshed_peer.clone(),
                        ..path.clone()
                    };
                    out.fix
                        .push(fix(&inward, &far_pod.namespace, &select(labels)));
                }
            }
            out.paths.push(PathReport {
                kind: path.kind,
                label: path.label.clone(),
                direction: path.direction,
                protocol: path.protocol,
                port: path.port,
                verdict: combine(&pv.answer.verdict, far_side.as_ref()),
                blocked_by,
                pod_side: pv.answer,
                far_side: far_side.map(|(p, answer)| FarSide {
                    pod: p.name.clone(),
                    answer,
                }),
            });
        }
        let mut seen = BTreeSet::new();
        out.fix
            .retain(|np| seen.insert((np.metadata.namespace.clone(), np.metadata.name.clone())));
        out
    }
}

fn select(labels: &BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels.clone()),
        match_expressions: None,
    }
}

/// The pods of the cluster at the far end of an egress path: in the peer's namespace, with
/// the peer's labels (e.g. `linkerd.io/control-plane-component=identity`).
fn far_pods(path: &ProxyPath, cluster: &Cluster) -> Vec<FarPod> {
    let Endpoint::Pod(peer) = &path.peer else {
        return Vec::new();
    };
    let Some(peer_ns) = &peer.namespace else {
        return Vec::new();
    };
    if path.direction != Direction::Egress {
        return Vec::new();
    }
    let wanted = &peer.labels.known;
    cluster
        .pods
        .iter()
        .filter(|p| p.namespace().as_deref() == Some(peer_ns.name.as_str()) && live(p))
        .filter(|p| wanted.iter().all(|(k, v)| p.labels().get(k) == Some(v)))
        .map(|p| FarPod {
            name: format!("{}/{}", peer_ns.name, p.name_any()),
            namespace: peer_ns.name.clone(),
            info: PodInfo::from_pod(p, cluster.namespaces.get(&peer_ns.name)),
            labels: stable_labels(p),
        })
        .collect()
}

/// The far end's ingress side for `me`: the first peer pod that denies, else the first that
/// cannot tell; `None` when every peer pod allows (or none runs in the cluster).
fn far_answer<'f>(
    set: &PolicySet,
    far: &'f [FarPod],
    me: &Endpoint,
    path: &ProxyPath,
) -> Option<(&'f FarPod, SideAnswer)> {
    let mut unsure = None;
    for p in far {
        let side = set
            .for_pod(&p.info)
            .check(Direction::Ingress, me, path.protocol, path.port);
        match side.verdict {
            Verdict::Denied => return Some((p, side)),
            Verdict::CannotTell { .. } if unsure.is_none() => unsure = Some((p, side)),
            _ => {}
        }
    }
    unsure
}

/// Denied when a side denies, else cannot tell when a side cannot, else allowed.
fn combine(mine: &Verdict, far: Option<&(&FarPod, SideAnswer)>) -> Verdict {
    let far_verdict = far.map(|(p, s)| (p, &s.verdict));
    match (mine, far_verdict) {
        (Verdict::Denied, _) | (_, Some((_, Verdict::Denied))) => Verdict::Denied,
        (Verdict::CannotTell { reason: a }, Some((p, Verdict::CannotTell { reason: b }))) => {
            Verdict::CannotTell {
                reason: format!("{a}; at {}'s ingress: {b}", p.name),
            }
        }
        (Verdict::CannotTell { reason }, _) => Verdict::CannotTell {
            reason: reason.clone(),
        },
        (_, Some((p, Verdict::CannotTell { reason }))) => Verdict::CannotTell {
            reason: format!("at {}'s ingress: {reason}", p.name),
        },
        _ => Verdict::Allowed,
    }
}

/// `check`'s network section: every meshed workload whose proxy paths a NetworkPolicy denies
/// or may deny, evaluated on one of its pods (one with an IP when there is one).
pub fn report(cluster: &Cluster, config: &Config) -> NetworkReport {
    let network = Network::new(cluster, config);
    let mut groups: BTreeMap<(String, String, String), Vec<&Pod>> = BTreeMap::new();
    for pod in cluster.pods.iter().filter(|p| meshed(p) && live(p)) {
        let (kind, name) = workload_of(pod, cluster);
        let ns = pod.namespace().unwrap_or_default();
        groups.entry((ns, kind, name)).or_default().push(pod);
    }
    let mut out = NetworkReport {
        meshed_workloads: groups.len(),
        policy_problems: network.policy_problems().to_vec(),
        not_checked: network.not_checked(),
        ..NetworkReport::default()
    };
    for ((namespace, kind, name), pods) in groups {
        let has_ip = |p: &&&Pod| p.status.as_ref().is_some_and(|s| s.pod_ip.is_some());
        let Some(pod) = pods.iter().find(has_ip).or(pods.first()) else {
            continue;
        };
        let mut net = network.evaluate(pod, cluster.namespaces.get(&namespace));
        net.paths.retain(|p| p.verdict != Verdict::Allowed);
        if net.paths.is_empty() {
            continue;
        }
        out.problems += net
            .paths
            .iter()
            .filter(|p| p.verdict == Verdict::Denied)
            .count();
        out.workloads.push(WorkloadNetwork {
            evaluated_pod: pod.name_any(),
            pods: pods.iter().map(|p| p.name_any()).collect(),
            namespace,
            kind,
            name,
            network: net,
        });
    }
    out
}
