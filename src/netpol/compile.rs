//! NetworkPolicy objects compiled once into what the evaluator reads: selectors, peers, port
//! ranges, the effective policyTypes. Anything the API server would reject is kept as an
//! "invalid" part that answers "cannot tell" and is listed in `PolicySet::problems`.

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::cidr::Block;
use super::selector::{Cause, Selector, Tri};
use super::{Direction, PolicyRef, Protocol};

#[derive(Debug, Clone)]
pub(crate) enum Peer {
    /// podSelector alone: pods of the policy's own namespace (the selector may be empty).
    OwnNamespace(Selector),
    /// namespaceSelector, with a podSelector when both are in the peer.
    Namespaces(Selector, Option<Selector>),
    IpBlock(Block),
    Invalid(Cause),
}

#[derive(Debug, Clone)]
pub(crate) enum Port {
    /// Any port of this protocol (`port` absent).
    AllOf(Protocol),
    Range(Protocol, u16, u16),
    Named(Protocol, String),
    Invalid,
}

/// One ingress or egress rule; `None` is "all" (the field absent or an empty list).
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) peers: Option<Vec<Peer>>,
    pub(crate) ports: Option<Vec<Port>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub(crate) id: PolicyRef,
    pub(crate) selector: Selector,
    /// Whether the effective policyTypes hold Ingress / Egress.
    pub(crate) types: [Tri; 2],
    pub(crate) rules: [Vec<Rule>; 2],
}

impl Policy {
    pub(crate) fn affects(&self, d: Direction) -> Tri {
        self.types[d.index()]
    }

    pub(crate) fn rules(&self, d: Direction) -> &[Rule] {
        &self.rules[d.index()]
    }
}

/// Compiles one policy; `problems` gets a sentence per part the API server would reject.
pub(crate) fn policy(np: &NetworkPolicy, problems: &mut Vec<String>) -> Policy {
    let namespace = np.metadata.namespace.as_deref().unwrap_or("default");
    let name = np.metadata.name.as_deref().unwrap_or("");
    let id = PolicyRef::new(namespace, name);
    let mut note = |what: String| problems.push(format!("{id}: {what}"));
    if np.metadata.namespace.is_none() {
        note("no metadata.namespace; taken as \"default\"".into());
    }
    let default_spec = NetworkPolicySpec::default();
    let spec = np.spec.as_ref().unwrap_or(&default_spec);
    let selector = spec
        .pod_selector
        .as_ref()
        .map(Selector::compile)
        .unwrap_or_default();
    if let Some(why) = selector.invalid() {
        note(format!("podSelector: {why}"));
    }
    let types = policy_types(spec, &mut note);
    let ingress = spec.ingress.iter().flatten().enumerate().map(|(i, r)| {
        rule(r.from.as_deref(), r.ports.as_deref(), &mut |w| {
            note(format!("ingress rule {i}: {w}"))
        })
    });
    let ingress: Vec<Rule> = ingress.collect();
    let egress = spec.egress.iter().flatten().enumerate().map(|(i, r)| {
        rule(r.to.as_deref(), r.ports.as_deref(), &mut |w| {
            note(format!("egress rule {i}: {w}"))
        })
    });
    let egress: Vec<Rule> = egress.collect();
    Policy {
        id,
        selector,
        types,
        rules: [ingress, egress],
    }
}

/// The effective policyTypes: as written, or (absent or empty) Ingress, plus Egress when the
/// spec has an `egress` field, even an empty list. An unknown value leaves a direction that
/// is not listed as "cannot tell".
fn policy_types(spec: &NetworkPolicySpec, note: &mut dyn FnMut(String)) -> [Tri; 2] {
    match spec.policy_types.as_deref() {
        None | Some([]) => [Tri::Yes, Tri::from_bool(spec.egress.is_some())],
        Some(list) => {
            let mut types = [Tri::No, Tri::No];
            let mut unknown = false;
            for t in list {
                match t.as_str() {
                    "Ingress" => types[Direction::Ingress.index()] = Tri::Yes,
                    "Egress" => types[Direction::Egress.index()] = Tri::Yes,
                    other => {
                        unknown = true;
                        note(format!("policyTypes: unknown value {other:?}"));
                    }
                }
            }
            if unknown {
                for t in &mut types {
                    if *t == Tri::No {
                        *t = Tri::Unknown(Cause::UnknownPolicyType);
                    }
                }
            }
            types
        }
    }
}

fn rule(
    peers: Option<&[NetworkPolicyPeer]>,
    ports: Option<&[NetworkPolicyPort]>,
    note: &mut dyn FnMut(String),
) -> Rule {
    let peers = match peers {
        None | Some([]) => None,
        Some(list) => Some(list.iter().map(|p| peer(p, note)).collect()),
    };
    let ports = match ports {
        None | Some([]) => None,
        Some(list) => Some(list.iter().map(|p| port(p, note)).collect()),
    };
    Rule { peers, ports }
}

fn peer(p: &NetworkPolicyPeer, note: &mut dyn FnMut(String)) -> Peer {
    let mut compile = |s, what: &str| {
        let s = Selector::compile(s);
        if let Some(why) = s.invalid() {
            note(format!("{what}: {why}"));
        }
        s
    };
    match (&p.ip_block, &p.namespace_selector, &p.pod_selector) {
        (Some(b), None, None) => match Block::compile(b) {
            Ok(b) => Peer::IpBlock(b),
            Err(why) => {
                note(format!("ipBlock: {why}"));
                Peer::Invalid(Cause::InvalidCidr)
            }
        },
        (None, Some(ns), pods) => Peer::Namespaces(
            compile(ns, "namespaceSelector"),
            pods.as_ref().map(|s| compile(s, "podSelector")),
        ),
        (None, None, Some(pods)) => Peer::OwnNamespace(compile(pods, "podSelector")),
        (None, None, None) => {
            note("a peer with neither a selector nor an ipBlock".into());
            Peer::Invalid(Cause::InvalidPeer)
        }
        (Some(_), _, _) => {
            note("a peer with an ipBlock and a selector".into());
            Peer::Invalid(Cause::InvalidPeer)
        }
    }
}

fn port(p: &NetworkPolicyPort, note: &mut dyn FnMut(String)) -> Port {
    let text = p.protocol.as_deref().unwrap_or("TCP");
    let Some(protocol) = Protocol::parse(text) else {
        note(format!("unknown protocol {text:?}"));
        return Port::Invalid;
    };
    let number = |n: i32| u16::try_from(n).ok().filter(|n| *n > 0);
    match (&p.port, p.end_port) {
        (None, None) => Port::AllOf(protocol),
        (Some(IntOrString::Int(n)), end) => {
            let (Some(from), Some(to)) = (number(*n), number(end.unwrap_or(*n))) else {
                note(format!("port {n} / endPort {end:?} outside 1-65535"));
                return Port::Invalid;
            };
            if to < from {
                note(format!("endPort {to} is below port {from}"));
                return Port::Invalid;
            }
            Port::Range(protocol, from, to)
        }
        (Some(IntOrString::String(name)), None) => Port::Named(protocol, name.clone()),
        (Some(IntOrString::String(name)), Some(_)) => {
            note(format!("endPort with the named port {name:?}"));
            Port::Invalid
        }
        (None, Some(_)) => {
            note("endPort without a port".into());
            Port::Invalid
        }
    }
}
