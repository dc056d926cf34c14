//! What a meshed pod's proxy needs from the network, as data: its paths, evaluated against a
//! [`PolicySet`], and the NetworkPolicy that allows one blocked path.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use super::{
    Direction, Endpoint, Labels, NAMESPACE_NAME_LABEL, NamedPort, PodInfo, PodNamespace, PolicySet,
    Protocol, SideAnswer,
};
use crate::config::Config;
use crate::mesh::{ADMIN_PORT_NAME, CONTROL_PLANE_NS_LABEL, INBOUND_PORT_NAME};

/// The label control-plane pods carry (`identity`, `destination`; the policy controller runs
/// in the destination pod).
pub const CONTROL_PLANE_COMPONENT_LABEL: &str = "linkerd.io/control-plane-component";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PathKind {
    Identity,
    Destination,
    Policy,
    DnsUdp,
    DnsTcp,
    Inbound,
    Admin,
    Control,
}

impl PathKind {
    /// The fix's name is `allow-linkerd-<slug>`.
    pub fn slug(self) -> &'static str {
        match self {
            PathKind::Identity => "identity",
            PathKind::Destination => "destination",
            PathKind::Policy => "policy",
            PathKind::DnsUdp => "dns-udp",
            PathKind::DnsTcp => "dns-tcp",
            PathKind::Inbound => "inbound",
            PathKind::Admin => "admin",
            PathKind::Control => "control",
        }
    }
}

/// Where the proxy's peers live and on which ports. `Default` is Linkerd's defaults;
/// [`ProxyNeeds::from_config`] takes the control-plane namespace and proxy ports from the
/// injector's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyNeeds {
    pub control_plane_namespace: String,
    pub identity_port: u16,
    pub destination_port: u16,
    pub policy_port: u16,
    pub dns_namespace: String,
    pub dns_labels: BTreeMap<String, String>,
    pub dns_port: u16,
    pub inbound_port: u16,
    pub admin_port: u16,
    pub control_port: u16,
    /// Where the metrics scraper (Prometheus) runs: it reaches the admin port.
    pub metrics_namespace: String,
    /// Where tap runs: it reaches the control port.
    pub tap_namespace: String,
    /// The labels of the namespaces above when known (e.g. from the cluster); a namespace
    /// not here is known only by its `kubernetes.io/metadata.name` label.
    pub namespace_labels: BTreeMap<String, BTreeMap<String, String>>,
}

impl Default for ProxyNeeds {
    fn default() -> ProxyNeeds {
        ProxyNeeds {
            control_plane_namespace: "linkerd".into(),
            identity_port: 8080,
            destination_port: 8086,
            policy_port: 8090,
            dns_namespace: "kube-system".into(),
            dns_labels: BTreeMap::from([("k8s-app".into(), "kube-dns".into())]),
            dns_port: 53,
            inbound_port: 4143,
            admin_port: 4191,
            control_port: 4190,
            metrics_namespace: "linkerd-viz".into(),
            tap_namespace: "linkerd-viz".into(),
            namespace_labels: BTreeMap::new(),
        }
    }
}

/// One thing the proxy needs: a direction, a port, and who is on the other end.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProxyPath {
    pub kind: PathKind,
    pub direction: Direction,
    pub protocol: Protocol,
    pub port: u16,
    /// e.g. "the destination controller (TCP 8086 to linkerd)".
    pub label: String,
    /// The other end as the evaluator sees it: a class of pods whose labels are known only
    /// in part and whose IPs are not known.
    #[serde(skip)]
    pub peer: Endpoint,
    /// The same peer as a NetworkPolicy peer, which a fix allows.
    #[serde(skip)]
    pub peer_selector: NetworkPolicyPeer,
}

/// A path and this pod's side of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathVerdict<'p> {
    pub path: &'p ProxyPath,
    pub answer: SideAnswer,
}

/// The proxy paths of one configuration, built once and evaluated per pod.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyPaths {
    paths: Vec<ProxyPath>,
    /// The proxy container's named ports, which a meshed pod has.
    proxy_ports: [NamedPort; 2],
}

fn selector(labels: &BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels.clone()),
        match_expressions: None,
    }
}

fn in_namespace(ns: &str) -> LabelSelector {
    selector(&BTreeMap::from([(NAMESPACE_NAME_LABEL.into(), ns.into())]))
}

fn show(labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(",")
}

impl ProxyNeeds {
    pub fn from_config(config: &Config) -> ProxyNeeds {
        let ports = &config.proxy.ports;
        ProxyNeeds {
            control_plane_namespace: config.control_plane_namespace.clone(),
            inbound_port: ports.inbound,
            admin_port: ports.admin,
            control_port: ports.control,
            ..ProxyNeeds::default()
        }
    }

    fn namespace(&self, name: &str) -> PodNamespace {
        let labels = match self.namespace_labels.get(name) {
            Some(l) => Labels::exactly(l.clone()),
            None => Labels::at_least(BTreeMap::new()),
        };
        PodNamespace::new(name, labels)
    }

    /// Egress to the identity, destination and policy controllers, DNS over UDP and TCP;
    /// ingress to the inbound port from meshed pods of any namespace, to the admin port from
    /// the metrics namespace, to the control port from the tap namespace.
    pub fn paths(&self) -> ProxyPaths {
        let cp = self.control_plane_namespace.as_str();
        let component = |kind, what: &str, component: &str, port| {
            let labels = BTreeMap::from([(CONTROL_PLANE_COMPONENT_LABEL.into(), component.into())]);
            let exists = LabelSelectorRequirement {
                key: CONTROL_PLANE_COMPONENT_LABEL.into(),
                operator: "Exists".into(),
                values: None,
            };
            ProxyPath {
                kind,
                direction: Direction::Egress,
                protocol: Protocol::Tcp,
                port,
                label: format!("the {what} controller (TCP {port} to {cp})"),
                peer: class(Some(self.namespace(cp)), Labels::at_least(labels)),
                peer_selector: NetworkPolicyPeer {
                    namespace_selector: Some(in_namespace(cp)),
                    pod_selector: Some(LabelSelector {
                        match_labels: None,
                        match_expressions: Some(vec![exists]),
                    }),
                    ip_block: None,
                },
            }
        };
        let dns = |kind, protocol: Protocol| ProxyPath {
            kind,
            direction: Direction::Egress,
            protocol,
            port: self.dns_port,
            label: format!(
                "DNS ({protocol} {} to {} in {})",
                self.dns_port,
                show(&self.dns_labels),
                self.dns_namespace
            ),
            peer: class(
                Some(self.namespace(&self.dns_namespace)),
                Labels::at_least(self.dns_labels.clone()),
            ),
            peer_selector: NetworkPolicyPeer {
                namespace_selector: Some(in_namespace(&self.dns_namespace)),
                pod_selector: Some(selector(&self.dns_labels)),
                ip_block: None,
            },
        };
        let from_namespace = |kind, what: &str, ns: &str, port| ProxyPath {
            kind,
            direction: Direction::Ingress,
            protocol: Protocol::Tcp,
            port,
            label: format!("{what} (TCP {port} from {ns})"),
            peer: class(Some(self.namespace(ns)), Labels::unknown()),
            peer_selector: NetworkPolicyPeer {
                namespace_selector: Some(in_namespace(ns)),
                pod_selector: None,
                ip_block: None,
            },
        };
        let meshed = BTreeMap::from([(CONTROL_PLANE_NS_LABEL.into(), cp.into())]);
        let inbound = ProxyPath {
            kind: PathKind::Inbound,
            direction: Direction::Ingress,
            protocol: Protocol::Tcp,
            port: self.inbound_port,
            label: format!(
                "meshed clients (TCP {} from meshed pods in any namespace)",
                self.inbound_port
            ),
            peer: class(None, Labels::at_least(meshed.clone())),
            peer_selector: NetworkPolicyPeer {
                namespace_selector: Some(LabelSelector::default()),
                pod_selector: Some(selector(&meshed)),
                ip_block: None,
            },
        };
        let paths = vec![
            component(
                PathKind::Identity,
                "identity",
                "identity",
                self.identity_port,
            ),
            component(
                PathKind::Destination,
                "destination",
                "destination",
                self.destination_port,
            ),
            component(PathKind::Policy, "policy", "destination", self.policy_port),
            dns(PathKind::DnsUdp, Protocol::Udp),
            dns(PathKind::DnsTcp, Protocol::Tcp),
            inbound,
            from_namespace(
                PathKind::Admin,
                "metrics scraping",
                &self.metrics_namespace,
                self.admin_port,
            ),
            from_namespace(
                PathKind::Control,
                "tap",
                &self.tap_namespace,
                self.control_port,
            ),
        ];
        let named = |name: &str, port| NamedPort {
            name: name.into(),
            port,
            protocol: Protocol::Tcp,
        };
        ProxyPaths {
            paths,
            proxy_ports: [
                named(INBOUND_PORT_NAME, self.inbound_port),
                named(ADMIN_PORT_NAME, self.admin_port),
            ],
        }
    }
}

fn class(namespace: Option<PodNamespace>, labels: Labels) -> Endpoint {
    Endpoint::Pod(PodInfo {
        namespace,
        labels,
        ip: None,
        ports: None,
    })
}

impl ProxyPaths {
    pub fn as_slice(&self) -> &[ProxyPath] {
        &self.paths
    }

    pub fn get(&self, kind: PathKind) -> Option<&ProxyPath> {
        self.paths.iter().find(|p| p.kind == kind)
    }

    /// `pod`'s side of every path: its egress to the control plane and DNS, its ingress from
    /// meshed pods, the scraper and tap. The other end's policies (e.g. ingress policies in
    /// the control-plane namespace) are not part of it: ask [`PolicySet::evaluate`] with a
    /// flow from `pod` to [`ProxyPath::peer`] for both sides. The proxy's named ports
    /// (`linkerd-proxy`, `linkerd-admin`) are added to the pod's known ports when no port
    /// has that name, so a pod before injection answers as it will after.
    pub fn evaluate<'p>(&'p self, set: &PolicySet, pod: &PodInfo) -> Vec<PathVerdict<'p>> {
        self.evaluate_where(set, pod, |_| true)
    }

    /// [`ProxyPaths::evaluate`] for the paths `keep` accepts only.
    pub fn evaluate_where<'p>(
        &'p self,
        set: &PolicySet,
        pod: &PodInfo,
        keep: impl Fn(&ProxyPath) -> bool,
    ) -> Vec<PathVerdict<'p>> {
        let lacks = |ports: &[NamedPort], p: &NamedPort| !ports.iter().any(|q| q.name == p.name);
        let pod = match &pod.ports {
            Some(ports) if self.proxy_ports.iter().any(|p| lacks(ports, p)) => {
                let mut meshed = pod.clone();
                let ports = meshed.ports.get_or_insert_with(Vec::new);
                for p in &self.proxy_ports {
                    if lacks(ports, p) {
                        ports.push(p.clone());
                    }
                }
                Cow::Owned(meshed)
            }
            _ => Cow::Borrowed(pod),
        };
        let policies = set.for_pod(&pod);
        self.paths
            .iter()
            .filter(|p| keep(p))
            .map(|path| PathVerdict {
                path,
                answer: policies.check(path.direction, &path.peer, path.protocol, path.port),
            })
            .collect()
    }
}

/// The NetworkPolicy that allows exactly `path` for the pods `pod_selector` selects in
/// `namespace`: one rule, one peer, one port, policyTypes of that direction only. Apply it
/// with `kubectl apply -f -` (it serialises with apiVersion and kind).
///
/// A policy isolates every pod it selects in its direction, so pass a selector of pods
/// already isolated in that direction (the workload's own labels), never a wider one: pods
/// it selects that were not isolated would lose everything else in that direction. Its name
/// is `allow-linkerd-<path>`, with a hash of the selector appended when the selector is not
/// empty, so fixes for two workloads of one namespace do not overwrite each other.
pub fn fix(path: &ProxyPath, namespace: &str, pod_selector: &LabelSelector) -> NetworkPolicy {
    let mut name = format!("allow-linkerd-{}", path.kind.slug());
    if *pod_selector != LabelSelector::default() {
        let key = serde_json::to_string(pod_selector).unwrap_or_default();
        name.push_str(&format!("-{:08x}", fnv1a(key.as_bytes()) as u32));
    }
    let peers = Some(vec![path.peer_selector.clone()]);
    let ports = Some(vec![NetworkPolicyPort {
        port: Some(IntOrString::Int(i32::from(path.port))),
        protocol: Some(path.protocol.as_str().into()),
        end_port: None,
    }]);
    let (ingress, egress) = match path.direction {
        Direction::Ingress => (
            Some(vec![NetworkPolicyIngressRule { from: peers, ports }]),
            None,
        ),
        Direction::Egress => (
            None,
            Some(vec![NetworkPolicyEgressRule { to: peers, ports }]),
        ),
    };
    let policy_type = match path.direction {
        Direction::Ingress => "Ingress",
        Direction::Egress => "Egress",
    };
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace.into()),
            ..ObjectMeta::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(pod_selector.clone()),
            policy_types: Some(vec![policy_type.into()]),
            ingress,
            egress,
        }),
    }
}

/// FNV-1a, 64-bit: a stable short hash for names (not for security).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
