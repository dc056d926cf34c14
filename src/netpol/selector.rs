//! Three-valued answers, what is known of a label set, and label selectors compiled once.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Serialize;

/// Why a part of the question has no yes/no answer. Small and `Copy`, so the evaluator
/// carries it for free and writes the sentence only when the verdict is "cannot tell".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// A selector with an unknown operator (or In/NotIn without values, Exists/DoesNotExist
    /// with values): the API server rejects it, so it is never guessed at.
    InvalidSelector,
    /// The pod's namespace is not known (a class of pods "in any namespace").
    NamespaceUnknown,
    /// The selector reads a namespace label that is not known.
    NamespaceLabelsUnknown,
    /// The selector reads a pod label that is not known.
    PodLabelsUnknown,
    /// Only an ipBlock could match and the pod's IP is not known.
    IpUnknown,
    /// The ipBlock covers part of the peer's CIDR.
    CidrPartial,
    /// A named port and the destination's container ports are not known.
    PortsUnknown,
    /// A port entry the API server would reject (bad protocol, endPort with a named port or
    /// without a port, endPort < port, a number outside 1-65535).
    InvalidPort,
    /// A peer with no selector and no ipBlock, or an ipBlock next to a selector.
    InvalidPeer,
    /// An ipBlock cidr or except that does not parse.
    InvalidCidr,
    /// policyTypes holds a value other than Ingress and Egress.
    UnknownPolicyType,
}

impl Cause {
    pub(crate) fn text(self) -> &'static str {
        match self {
            Cause::InvalidSelector => {
                "a label selector is invalid (unknown operator or bad values)"
            }
            Cause::NamespaceUnknown => "the pod's namespace is not known",
            Cause::NamespaceLabelsUnknown => "the namespace labels it selects on are not known",
            Cause::PodLabelsUnknown => "the pod labels it selects on are not known",
            Cause::IpUnknown => "only an ipBlock could match and the pod's IP is not known",
            Cause::CidrPartial => "the ipBlock covers only part of the peer's addresses",
            Cause::PortsUnknown => {
                "a named port and the destination's container ports are not known"
            }
            Cause::InvalidPort => "a port entry is invalid",
            Cause::InvalidPeer => "a peer is invalid (no selector and no ipBlock, or both)",
            Cause::InvalidCidr => "an ipBlock CIDR does not parse",
            Cause::UnknownPolicyType => "policyTypes holds an unknown value",
        }
    }
}

/// Kleene's three-valued logic: `Unknown` only where the answer depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tri {
    Yes,
    No,
    Unknown(Cause),
}

impl Tri {
    pub(crate) fn from_bool(b: bool) -> Tri {
        if b { Tri::Yes } else { Tri::No }
    }

    /// `self AND other`; `other` is not computed when `self` is `No`.
    pub(crate) fn and(self, other: impl FnOnce() -> Tri) -> Tri {
        match self {
            Tri::No => Tri::No,
            Tri::Yes => other(),
            Tri::Unknown(c) => match other() {
                Tri::No => Tri::No,
                _ => Tri::Unknown(c),
            },
        }
    }

    /// `self OR other`; `other` is not computed when `self` is `Yes`.
    pub(crate) fn or(self, other: impl FnOnce() -> Tri) -> Tri {
        match self {
            Tri::Yes => Tri::Yes,
            Tri::No => other(),
            Tri::Unknown(c) => match other() {
                Tri::Yes => Tri::Yes,
                _ => Tri::Unknown(c),
            },
        }
    }

    /// OR over an iterator (`No` when empty).
    pub(crate) fn any<I: IntoIterator<Item = Tri>>(items: I) -> Tri {
        let mut acc = Tri::No;
        for t in items {
            match t {
                Tri::Yes => return Tri::Yes,
                Tri::Unknown(c) if acc == Tri::No => acc = Tri::Unknown(c),
                _ => {}
            }
        }
        acc
    }
}

/// The labels of a pod or namespace as far as they are known. `complete: false` describes a
/// class ("meshed pods in any namespace", "any pod in linkerd-viz"): `known` holds what every
/// member has, and a selector reading any other key cannot tell.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Labels {
    pub known: BTreeMap<String, String>,
    pub complete: bool,
}

impl Labels {
    /// Exactly these labels (a real pod or namespace).
    pub fn exactly(known: BTreeMap<String, String>) -> Labels {
        Labels {
            known,
            complete: true,
        }
    }

    /// At least these labels; others may exist.
    pub fn at_least(known: BTreeMap<String, String>) -> Labels {
        Labels {
            known,
            complete: false,
        }
    }

    /// Nothing known.
    pub fn unknown() -> Labels {
        Labels::default()
    }

    /// `Yes(value)` / `No` (absent) / `Unknown` for one key.
    fn get(&self, key: &str) -> Option<Option<&str>> {
        match self.known.get(key) {
            Some(v) => Some(Some(v.as_str())),
            None if self.complete => Some(None),
            None => None,
        }
    }
}

/// Whose labels a selector reads (for the "cannot tell" reason).
#[derive(Debug, Clone, Copy)]
pub(crate) enum LabelsOf {
    Pod,
    Namespace,
}

#[derive(Debug, Clone)]
enum Req {
    Eq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A `LabelSelector` compiled once: its requirements ANDed; empty matches everything.
#[derive(Debug, Clone, Default)]
pub(crate) struct Selector {
    reqs: Vec<Req>,
    /// Set when a requirement is invalid: the selector then matches nothing known, and the
    /// evaluator answers "cannot tell" wherever it matters.
    invalid: Option<String>,
}

impl Selector {
    pub(crate) fn compile(sel: &LabelSelector) -> Selector {
        let mut reqs = Vec::new();
        let mut invalid = None;
        for (k, v) in sel.match_labels.iter().flatten() {
            reqs.push(Req::Eq(k.clone(), v.clone()));
        }
        for e in sel.match_expressions.iter().flatten() {
            let values = e.values.clone().unwrap_or_default();
            let key = e.key.clone();
            let req = match e.operator.as_str() {
                "In" if !values.is_empty() => Req::In(key, values),
                "NotIn" if !values.is_empty() => Req::NotIn(key, values),
                "Exists" if values.is_empty() => Req::Exists(key),
                "DoesNotExist" if values.is_empty() => Req::DoesNotExist(key),
                op => {
                    invalid.get_or_insert_with(|| {
                        format!(
                            "operator {op:?} on key {:?} with {} value(s)",
                            e.key,
                            values.len()
                        )
                    });
                    continue;
                }
            };
            reqs.push(req);
        }
        Selector { reqs, invalid }
    }

    pub(crate) fn invalid(&self) -> Option<&str> {
        self.invalid.as_deref()
    }

    pub(crate) fn matches(&self, labels: &Labels, of: LabelsOf) -> Tri {
        let unknown = Tri::Unknown(match of {
            LabelsOf::Pod => Cause::PodLabelsUnknown,
            LabelsOf::Namespace => Cause::NamespaceLabelsUnknown,
        });
        let mut acc = if self.invalid.is_some() {
            Tri::Unknown(Cause::InvalidSelector)
        } else {
            Tri::Yes
        };
        for r in &self.reqs {
            let key = match r {
                Req::Eq(k, _)
                | Req::In(k, _)
                | Req::NotIn(k, _)
                | Req::Exists(k)
                | Req::DoesNotExist(k) => k,
            };
            let t = match labels.get(key) {
                None => unknown,
                Some(value) => Tri::from_bool(match (r, value) {
                    (Req::Eq(_, want), Some(v)) => want == v,
                    (Req::In(_, vals), Some(v)) => vals.iter().any(|w| w == v),
                    (Req::NotIn(_, vals), Some(v)) => !vals.iter().any(|w| w == v),
                    (Req::NotIn(..), None) => true,
                    (Req::Exists(_), v) => v.is_some(),
                    (Req::DoesNotExist(_), v) => v.is_none(),
                    (Req::Eq(..) | Req::In(..), None) => false,
                }),
            };
            acc = acc.and(|| t);
            if acc == Tri::No {
                return Tri::No;
            }
        }
        acc
    }
}
