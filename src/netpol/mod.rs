//! NetworkPolicy evaluation (pure): may traffic go from one endpoint to another on a port,
//! and which policies decide it. Written from the Kubernetes API reference:
//!
//! - A pod is isolated for a direction when a policy of its namespace selects it (an empty
//!   podSelector selects all its pods) and the policy's effective policyTypes hold that
//!   direction. policyTypes absent (or empty): Ingress, plus Egress when the spec has an
//!   `egress` field, even an empty list.
//! - A->B on a port is allowed when A's egress side allows it (A not egress-isolated, or an
//!   egress rule of a policy selecting A matches B and the port) AND B's ingress side does.
//!   Policies add up; nothing denies explicitly.
//! - A rule's `from`/`to`/`ports` absent or empty means "all". A peer's podSelector alone is
//!   the policy's own namespace; namespaceSelector alone is every pod of the namespaces it
//!   selects; both in one peer are the pods matching both. ipBlock (`cidr` minus `except`)
//!   is matched against pod IPs too.
//! - Named ports are looked up in the destination pod's container ports (name and protocol),
//!   for ingress and egress alike; an endpoint outside the cluster has no named ports.
//!
//! Answers are three-valued: what is not known (a pod's IP, the labels of a class of pods,
//! a namespace's labels) or what the API server would reject (an unknown selector operator
//! or protocol, an endPort with a named port, an unparsable CIDR) gives
//! [`Verdict::CannotTell`] with the reason, never "allowed", and only where it changes the
//! answer (another rule that allows regardless still allows). Those invalid parts are also
//! listed once by [`PolicySet::problems`].
//!
//! `proxy` names what a meshed pod's proxy needs, evaluates it, and writes the
//! NetworkPolicy that would allow a blocked path.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde::{Serialize, Serializer};

mod cidr;
mod compile;
mod eval;
pub mod proxy;
pub mod review;
mod selector;

pub use cidr::Cidr;
pub use eval::PodPolicies;
pub use selector::Labels;

/// The label Kubernetes sets on every namespace to its name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// The API's spelling (`TCP`, `UDP`, `SCTP`); anything else is `None`.
    pub fn parse(s: &str) -> Option<Protocol> {
        match s {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub(crate) fn index(self) -> usize {
        match self {
            Direction::Ingress => 0,
            Direction::Egress => 1,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A container port a named NetworkPolicy port can resolve to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamedPort {
    pub name: String,
    pub port: u16,
    pub protocol: Protocol,
}

/// A namespace: its name and labels. [`PodNamespace::new`] adds `kubernetes.io/metadata.name`
/// (which the API server sets on every namespace) when the labels lack it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodNamespace {
    pub name: String,
    pub labels: Labels,
}

impl PodNamespace {
    pub fn new(name: &str, mut labels: Labels) -> PodNamespace {
        labels
            .known
            .entry(NAMESPACE_NAME_LABEL.to_string())
            .or_insert_with(|| name.to_string());
        PodNamespace {
            name: name.to_string(),
            labels,
        }
    }
}

/// A pod, or a class of pods, as NetworkPolicies see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodInfo {
    /// `None`: any namespace (a class of pods such as "meshed pods in any namespace").
    pub namespace: Option<PodNamespace>,
    pub labels: Labels,
    /// `None`: not known (a pod not yet scheduled, a class of pods); ipBlock rules then
    /// cannot tell.
    pub ip: Option<IpAddr>,
    /// Container ports that named ports resolve to; `None`: not known.
    pub ports: Option<Vec<NamedPort>>,
}

impl PodInfo {
    /// A pod with exactly these labels, no known IP and no container ports.
    pub fn new(namespace: PodNamespace, labels: BTreeMap<String, String>) -> PodInfo {
        PodInfo {
            namespace: Some(namespace),
            labels: Labels::exactly(labels),
            ip: None,
            ports: Some(Vec::new()),
        }
    }

    pub fn with_ip(mut self, ip: IpAddr) -> PodInfo {
        self.ip = Some(ip);
        self
    }

    pub fn with_ports(mut self, ports: Vec<NamedPort>) -> PodInfo {
        self.ports = Some(ports);
        self
    }

    /// From a Pod object and, when known, its Namespace object: labels, `status.podIP`, and
    /// the named ports of its containers and of its sidecar (restartPolicy Always) init
    /// containers. Without the Namespace, the namespace's labels other than its name are not
    /// known.
    pub fn from_pod(pod: &Pod, namespace: Option<&Namespace>) -> PodInfo {
        let ns_name = namespace
            .and_then(|n| n.metadata.name.as_deref())
            .or(pod.metadata.namespace.as_deref());
        let ns_labels = match namespace {
            Some(n) => Labels::exactly(n.metadata.labels.clone().unwrap_or_default()),
            None => Labels::at_least(BTreeMap::new()),
        };
        let ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse().ok());
        let mut ports = Vec::new();
        if let Some(spec) = &pod.spec {
            let sidecars = spec.init_containers.iter().flatten();
            let sidecars = sidecars.filter(|c| c.restart_policy.as_deref() == Some("Always"));
            for c in spec.containers.iter().chain(sidecars) {
                for p in c.ports.iter().flatten() {
                    let protocol = Protocol::parse(p.protocol.as_deref().unwrap_or("TCP"));
                    let port = u16::try_from(p.container_port).ok();
                    if let (Some(name), Some(protocol), Some(port)) = (&p.name, protocol, port) {
                        ports.push(NamedPort {
                            name: name.clone(),
                            port,
                            protocol,
                        });
                    }
                }
            }
        }
        PodInfo {
            namespace: ns_name.map(|n| PodNamespace::new(n, ns_labels)),
            labels: Labels::exactly(pod.metadata.labels.clone().unwrap_or_default()),
            ip,
            ports: Some(ports),
        }
    }
}

/// One end of a flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Endpoint {
    Pod(PodInfo),
    /// Addresses outside the cluster (one IP is a /32 or /128). No policy applies on this side.
    External(Cidr),
}

/// The question: may `from` open a connection to `to` on `port`/`protocol`?
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flow {
    pub from: Endpoint,
    pub to: Endpoint,
    pub protocol: Protocol,
    pub port: u16,
}

/// A policy by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PolicyRef {
    pub namespace: Arc<str>,
    pub name: Arc<str>,
}

impl PolicyRef {
    pub fn new(namespace: &str, name: &str) -> PolicyRef {
        PolicyRef {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for PolicyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl Serialize for PolicyRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One rule of a policy: `index` counts from 0 in the policy's `ingress` or `egress` list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleRef {
    pub policy: PolicyRef,
    pub direction: Direction,
    pub index: usize,
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} rule {}", self.policy, self.direction, self.index)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Verdict {
    Allowed,
    /// Isolated and no rule allows it: nothing but a new rule (or policy) opens it.
    Denied,
    /// The answer depends on something not known or invalid (see the module docs); never
    /// given where the answer is the same either way.
    CannotTell {
        reason: String,
    },
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Allowed => f.write_str("allowed"),
            Verdict::Denied => f.write_str("denied"),
            Verdict::CannotTell { reason } => write!(f, "cannot tell: {reason}"),
        }
    }
}

/// One side of a flow: the source's egress or the destination's ingress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SideAnswer {
    pub direction: Direction,
    #[serde(flatten)]
    pub verdict: Verdict,
    /// The endpoint on this side is outside the cluster: no policy applies.
    pub outside_cluster: bool,
    /// The policies that select the pod for this direction. Empty with `Allowed`: the pod is
    /// not isolated. With `Denied`: the policies a fix must add a rule to (or a policy next
    /// to).
    pub isolating: Vec<PolicyRef>,
    /// The rules that allow the traffic (when isolated and allowed).
    pub allowing: Vec<RuleRef>,
}

impl SideAnswer {
    pub fn not_isolated(&self) -> bool {
        !self.outside_cluster && self.verdict == Verdict::Allowed && self.isolating.is_empty()
    }
}

impl fmt::Display for SideAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |items: &mut dyn Iterator<Item = String>| items.collect::<Vec<_>>().join(", ");
        let isolating = list(&mut self.isolating.iter().map(ToString::to_string));
        let d = self.direction;
        match &self.verdict {
            _ if self.outside_cluster => write!(f, "{d}: outside the cluster, no policy applies"),
            Verdict::Allowed if self.isolating.is_empty() => write!(f, "{d}: not isolated"),
            Verdict::Allowed => {
                let by = list(&mut self.allowing.iter().map(ToString::to_string));
                write!(f, "{d}: allowed by {by}")
            }
            Verdict::Denied => write!(
                f,
                "{d}: denied, isolated by {isolating} and no rule allows it"
            ),
            Verdict::CannotTell { reason } if isolating.is_empty() => {
                write!(f, "{d}: cannot tell: {reason}")
            }
            Verdict::CannotTell { reason } => {
                write!(f, "{d}: cannot tell (isolated by {isolating}): {reason}")
            }
        }
    }
}

/// The answer for a flow: both sides and the overall verdict (denied when a side denies,
/// else cannot tell when a side cannot tell, else allowed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evaluation {
    #[serde(flatten)]
    pub verdict: Verdict,
    pub egress: SideAnswer,
    pub ingress: SideAnswer,
}

/// NetworkPolicies compiled once (selectors, CIDRs, port ranges) and indexed by namespace.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    policies: Vec<compile::Policy>,
    by_namespace: HashMap<Arc<str>, Vec<usize>>,
    /// Whether any policy may isolate for ingress / egress.
    any: [bool; 2],
    problems: Vec<String>,
}

impl PolicySet {
    /// A policy without `metadata.namespace` is taken as in `default` (noted in `problems`).
    pub fn new(policies: &[NetworkPolicy]) -> PolicySet {
        PolicySet::of(policies)
    }

    /// [`PolicySet::new`] from borrowed policies (e.g. a cache's shared objects).
    pub fn of<'a>(policies: impl IntoIterator<Item = &'a NetworkPolicy>) -> PolicySet {
        let mut set = PolicySet::default();
        for np in policies {
            let p = compile::policy(np, &mut set.problems);
            for d in [Direction::Ingress, Direction::Egress] {
                set.any[d.index()] |= p.affects(d) != selector::Tri::No;
            }
            let index = set.policies.len();
            let ns = p.id.namespace.clone();
            set.by_namespace.entry(ns).or_default().push(index);
            set.policies.push(p);
        }
        set
    }

    pub fn len(&self) -> usize {
        self.policies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// One sentence per part of a policy that the API server would reject ("ns/name: ..."),
    /// which the evaluator treats as "cannot tell".
    pub fn problems(&self) -> &[String] {
        &self.problems
    }
}

#[cfg(test)]
mod tests;
