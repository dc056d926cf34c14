//! Evaluation: which policies select a pod (once per pod), then one side of a flow per
//! question, in three-valued logic.

use super::compile::{Peer, Policy, Port, Rule};
use super::selector::{Cause, Labels, LabelsOf, Tri};
use super::{
    Cidr, Direction, Endpoint, Evaluation, Flow, PodInfo, PolicyRef, PolicySet, Protocol, RuleRef,
    SideAnswer, Verdict,
};

/// What a pod of an unknown namespace is known to carry: nothing.
static NO_LABELS: Labels = Labels {
    known: std::collections::BTreeMap::new(),
    complete: false,
};

/// The policies that apply to one pod, found once; ask [`PodPolicies::check`] per flow.
#[derive(Debug, Clone)]
pub struct PodPolicies<'a> {
    set: &'a PolicySet,
    pod: &'a PodInfo,
    /// Per direction, the policies whose isolation of the pod is not "no", with it.
    candidates: [Vec<(usize, Tri)>; 2],
}

impl PodPolicies<'_> {
    /// Whether some policy of the set selects the pod (or may: "cannot tell" counts).
    pub fn any(&self) -> bool {
        self.candidates.iter().any(|c| !c.is_empty())
    }

    /// Whether some policy of the set isolates the pod in direction `d` (or may).
    pub fn isolates(&self, d: Direction) -> bool {
        !self.candidates[d.index()].is_empty()
    }
}

/// Where a "cannot tell" came from: a policy, and the rule when it was a rule.
type Note = (usize, Option<usize>, Cause);

impl PolicySet {
    /// Finds the policies selecting `pod` (the pod whose side is asked about).
    pub fn for_pod<'a>(&'a self, pod: &'a PodInfo) -> PodPolicies<'a> {
        let mut candidates = [Vec::new(), Vec::new()];
        let indices = pod
            .namespace
            .as_ref()
            .and_then(|ns| self.by_namespace.get(ns.name.as_str()));
        for &i in indices.into_iter().flatten() {
            let Some(p) = self.policies.get(i) else {
                continue;
            };
            let selects = p.selector.matches(&pod.labels, LabelsOf::Pod);
            if selects == Tri::No {
                continue;
            }
            for d in [Direction::Ingress, Direction::Egress] {
                let isolates = selects.and(|| p.affects(d));
                if isolates != Tri::No {
                    candidates[d.index()].push((i, isolates));
                }
            }
        }
        PodPolicies {
            set: self,
            pod,
            candidates,
        }
    }

    /// Both sides of a flow.
    pub fn evaluate(&self, flow: &Flow) -> Evaluation {
        let side = |subject: &Endpoint, peer: &Endpoint, d: Direction| match subject {
            Endpoint::Pod(pod) => self.for_pod(pod).check(d, peer, flow.protocol, flow.port),
            Endpoint::External(_) => SideAnswer {
                direction: d,
                verdict: Verdict::Allowed,
                outside_cluster: true,
                isolating: Vec::new(),
                allowing: Vec::new(),
            },
        };
        let egress = side(&flow.from, &flow.to, Direction::Egress);
        let ingress = side(&flow.to, &flow.from, Direction::Ingress);
        let verdict = match (&egress.verdict, &ingress.verdict) {
            (Verdict::Denied, _) | (_, Verdict::Denied) => Verdict::Denied,
            (Verdict::CannotTell { reason: a }, Verdict::CannotTell { reason: b }) => {
                Verdict::CannotTell {
                    reason: format!("egress: {a}; ingress: {b}"),
                }
            }
            (Verdict::CannotTell { reason }, _) => Verdict::CannotTell {
                reason: format!("egress: {reason}"),
            },
            (_, Verdict::CannotTell { reason }) => Verdict::CannotTell {
                reason: format!("ingress: {reason}"),
            },
            (Verdict::Allowed, Verdict::Allowed) => Verdict::Allowed,
        };
        Evaluation {
            verdict,
            egress,
            ingress,
        }
    }
}

impl PodPolicies<'_> {
    /// This pod's side of traffic in direction `d` with `peer` (the destination for egress,
    /// the source for ingress) on `port`/`protocol`.
    pub fn check(
        &self,
        d: Direction,
        peer: &Endpoint,
        protocol: Protocol,
        port: u16,
    ) -> SideAnswer {
        let mut answer = SideAnswer {
            direction: d,
            verdict: Verdict::Allowed,
            outside_cluster: false,
            isolating: Vec::new(),
            allowing: Vec::new(),
        };
        if self.pod.namespace.is_none() {
            if self.set.any[d.index()] {
                answer.verdict = cannot_tell(Cause::NamespaceUnknown.text().to_string());
            }
            return answer;
        }
        // Named ports resolve against the destination: this pod for ingress, the peer for
        // egress (none outside the cluster).
        let destination = match (d, peer) {
            (Direction::Ingress, _) => Some(self.pod),
            (Direction::Egress, Endpoint::Pod(p)) => Some(p),
            (Direction::Egress, Endpoint::External(_)) => None,
        };
        let q = Question {
            peer,
            destination,
            protocol,
            port,
        };
        let mut isolated = Tri::No;
        let mut allowed = Tri::No;
        let mut notes: Vec<Note> = Vec::new();
        for &(i, isolates) in &self.candidates[d.index()] {
            let Some(p) = self.set.policies.get(i) else {
                continue;
            };
            isolated = isolated.or(|| isolates);
            match isolates {
                Tri::Yes => answer.isolating.push(p.id.clone()),
                Tri::Unknown(c) => notes.push((i, None, c)),
                Tri::No => {}
            }
            let mut by_rules = Tri::No;
            for (r, rule) in p.rules(d).iter().enumerate() {
                let m = q.rule(p, rule);
                match m {
                    Tri::Yes if isolates == Tri::Yes => answer.allowing.push(RuleRef {
                        policy: p.id.clone(),
                        direction: d,
                        index: r,
                    }),
                    Tri::Unknown(c) => notes.push((i, Some(r), c)),
                    _ => {}
                }
                by_rules = by_rules.or(|| m);
            }
            allowed = allowed.or(|| isolates.and(|| by_rules));
        }
        let not_isolated = match isolated {
            Tri::Yes => Tri::No,
            Tri::No => Tri::Yes,
            u => u,
        };
        answer.verdict = match not_isolated.or(|| allowed) {
            Tri::Yes => Verdict::Allowed,
            Tri::No => Verdict::Denied,
            Tri::Unknown(_) => cannot_tell(self.reason(d, &notes)),
        };
        answer
    }

    /// The first few notes as sentences (each note is one policy or rule, so they differ),
    /// and how many more there are: only what is shown is formatted.
    fn reason(&self, d: Direction, notes: &[Note]) -> String {
        const SHOWN: usize = 3;
        let mut lines: Vec<String> = Vec::with_capacity(SHOWN);
        for &(i, rule, cause) in notes.iter().take(SHOWN) {
            let id = self.set.policies.get(i).map(|p| &p.id);
            let id = id.map_or_else(String::new, PolicyRef::to_string);
            lines.push(match rule {
                Some(r) => format!("{id} {d} rule {r}: {}", cause.text()),
                None => format!("whether {id} isolates the pod: {}", cause.text()),
            });
        }
        let mut text = lines.join("; ");
        let more = notes.len().saturating_sub(SHOWN);
        if more > 0 {
            text.push_str(&format!(" (and {more} more)"));
        }
        text
    }
}

fn cannot_tell(reason: String) -> Verdict {
    Verdict::CannotTell { reason }
}

struct Question<'q> {
    peer: &'q Endpoint,
    destination: Option<&'q PodInfo>,
    protocol: Protocol,
    port: u16,
}

impl Question<'_> {
    fn rule(&self, policy: &Policy, rule: &Rule) -> Tri {
        let peers = match &rule.peers {
            None => Tri::Yes,
            Some(list) => Tri::any(list.iter().map(|p| self.peer(policy, p))),
        };
        peers.and(|| match &rule.ports {
            None => Tri::Yes,
            Some(list) => Tri::any(list.iter().map(|p| self.port(p))),
        })
    }

    fn peer(&self, policy: &Policy, peer: &Peer) -> Tri {
        let pod = match (peer, self.peer) {
            (Peer::Invalid(c), _) => return Tri::Unknown(*c),
            (Peer::IpBlock(b), Endpoint::External(cidr)) => return b.matches(cidr),
            (Peer::IpBlock(b), Endpoint::Pod(p)) => {
                return match p.ip {
                    Some(ip) => b.matches(&Cidr::host(ip)),
                    None => Tri::Unknown(Cause::IpUnknown),
                };
            }
            (_, Endpoint::External(_)) => return Tri::No,
            (_, Endpoint::Pod(p)) => p,
        };
        match peer {
            Peer::OwnNamespace(pods) => {
                let same = match &pod.namespace {
                    Some(ns) => Tri::from_bool(*ns.name == *policy.id.namespace),
                    None => Tri::Unknown(Cause::NamespaceUnknown),
                };
                same.and(|| pods.matches(&pod.labels, LabelsOf::Pod))
            }
            Peer::Namespaces(namespaces, pods) => {
                let ns_labels = pod.namespace.as_ref().map_or(&NO_LABELS, |n| &n.labels);
                let in_ns = namespaces.matches(ns_labels, LabelsOf::Namespace);
                in_ns.and(|| match pods {
                    Some(s) => s.matches(&pod.labels, LabelsOf::Pod),
                    None => Tri::Yes,
                })
            }
            Peer::IpBlock(_) | Peer::Invalid(_) => Tri::No,
        }
    }

    fn port(&self, port: &Port) -> Tri {
        match port {
            Port::Invalid => Tri::Unknown(Cause::InvalidPort),
            Port::AllOf(p) => Tri::from_bool(*p == self.protocol),
            Port::Range(p, from, to) => {
                Tri::from_bool(*p == self.protocol && (*from..=*to).contains(&self.port))
            }
            Port::Named(p, _) if *p != self.protocol => Tri::No,
            Port::Named(p, name) => match self.destination.map(|d| d.ports.as_deref()) {
                None => Tri::No,
                Some(None) => Tri::Unknown(Cause::PortsUnknown),
                Some(Some(ports)) => Tri::from_bool(
                    ports
                        .iter()
                        .any(|c| c.name == *name && c.protocol == *p && c.port == self.port),
                ),
            },
        }
    }
}
