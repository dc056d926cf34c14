//! What a namespace's ResourceQuotas and LimitRanges demand of the containers injection adds,
//! as the API server checks it after the mutating webhooks: its LimitRanger sets the
//! LimitRanges' defaults on containers that lack a value, then refuses a container outside a
//! LimitRange's `min`, `max` or `maxLimitRequestRatio`; its ResourceQuota admission refuses a
//! pod any of whose containers lacks a request or limit that a quota tracks (`requests.cpu`,
//! `limits.memory`, ...; `cpu` and `memory` mean requests). Pure: each object is cut to a
//! digest of what is read, kept per namespace by the caller (a reflector, or a file).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota, ResourceRequirements};

use crate::overrides::{Quantity, parse_quantity};

/// The compute resources a quota makes every container specify (the API server's quota
/// evaluator: only cpu and memory, a "backward compatibility requirement").
const TRACKED: [(&str, Kind, &str); 6] = [
    ("cpu", Kind::Request, "cpu"),
    ("memory", Kind::Request, "memory"),
    ("requests.cpu", Kind::Request, "cpu"),
    ("requests.memory", Kind::Request, "memory"),
    ("limits.cpu", Kind::Limit, "cpu"),
    ("limits.memory", Kind::Limit, "memory"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Request,
    Limit,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Request => "requests",
            Kind::Limit => "limits",
        }
    }
}

/// A ResourceQuota, as read: the (kind, resource) pairs every container must specify (none for
/// a quota with scopes: see [`QuotaDigest::of`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QuotaDigest {
    pub required: Vec<(Kind, String)>,
}

impl QuotaDigest {
    pub fn of(q: &ResourceQuota) -> QuotaDigest {
        let spec = q.spec.as_ref();
        // A scoped quota applies to the pods its scopes select (terminating or not, best
        // effort or not, a priority class); which those are is not judged here, so it is not
        // taken to apply: the pod is injected as Linkerd injects it.
        let scoped = spec.is_some_and(|s| {
            s.scopes.as_ref().is_some_and(|v| !v.is_empty()) || s.scope_selector.is_some()
        });
        if scoped {
            return QuotaDigest::default();
        }
        let hard = spec.and_then(|s| s.hard.as_ref());
        let mut required: Vec<(Kind, String)> = TRACKED
            .iter()
            .filter(|(key, _, _)| hard.is_some_and(|h| h.contains_key(*key)))
            .map(|(_, kind, res)| (*kind, (*res).to_owned()))
            .collect();
        required.sort();
        required.dedup();
        QuotaDigest { required }
    }
}

/// A LimitRange's `Container` items, as read (quantities as written; the API server has
/// filled its defaults: `default` from `max`, `defaultRequest` from `default` and `min`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RangeDigest {
    pub items: Vec<ContainerRange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerRange {
    pub default: BTreeMap<String, String>,
    pub default_request: BTreeMap<String, String>,
    pub min: BTreeMap<String, String>,
    pub max: BTreeMap<String, String>,
    pub max_limit_request_ratio: BTreeMap<String, String>,
}

impl RangeDigest {
    pub fn of(l: &LimitRange) -> RangeDigest {
        let strings = |m: &Option<
            BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
        >| {
            m.iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect()
        };
        let items = l
            .spec
            .as_ref()
            .map(|s| s.limits.as_slice())
            .unwrap_or_default()
            .iter()
            .filter(|i| i.type_ == "Container")
            .map(|i| {
                let mut r = ContainerRange {
                    default: strings(&i.default),
                    default_request: strings(&i.default_request),
                    min: strings(&i.min),
                    max: strings(&i.max),
                    max_limit_request_ratio: strings(&i.max_limit_request_ratio),
                };
                // The API server's defaulting of a stored LimitRange (a no-op on one read from
                // the API): a default limit from max, a default request from the default
                // limit, then from min.
                for (k, v) in &r.max {
                    r.default.entry(k.clone()).or_insert_with(|| v.clone());
                }
                for (k, v) in r.default.iter().chain(&r.min) {
                    r.default_request
                        .entry(k.clone())
                        .or_insert_with(|| v.clone());
                }
                r
            })
            .collect();
        RangeDigest { items }
    }
}

/// A namespace's quotas and limit ranges, by name.
#[derive(Debug, Clone, Default)]
pub struct NamespaceLimits {
    pub quotas: Option<Arc<BTreeMap<String, QuotaDigest>>>,
    pub ranges: Option<Arc<BTreeMap<String, RangeDigest>>>,
}

impl NamespaceLimits {
    pub fn is_empty(&self) -> bool {
        self.quotas.as_ref().is_none_or(|q| q.is_empty())
            && self.ranges.as_ref().is_none_or(|r| r.is_empty())
    }
}

/// One refusal the API server would give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Quota `quota` tracks `kind.resource`; these containers do not specify it.
    Unspecified {
        quota: String,
        kind: Kind,
        resource: String,
        containers: Vec<String>,
    },
    /// LimitRange `range` refuses container `container`: its words.
    Range {
        range: String,
        container: String,
        why: String,
    },
}

impl Refusal {
    /// The (kind, resource) a fix must give the proxy, for the quota refusals.
    pub fn wanted(&self) -> Option<(Kind, &str)> {
        match self {
            Refusal::Unspecified { kind, resource, .. } => Some((*kind, resource)),
            Refusal::Range { .. } => None,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Unspecified {
                quota,
                kind,
                resource,
                containers,
            } => write!(
                f,
                "ResourceQuota {quota} tracks {}.{resource}, which {} must specify",
                kind.word(),
                containers.join(", ")
            ),
            Refusal::Range {
                range,
                container,
                why,
            } => write!(f, "LimitRange {range}: container {container}: {why}"),
        }
    }
}

/// A container's requests and limits, as quantities written.
type Resources = (BTreeMap<String, String>, BTreeMap<String, String>);

fn resources_of(r: Option<&ResourceRequirements>) -> Resources {
    let map =
        |m: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>| {
            m.into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect::<BTreeMap<_, _>>()
        };
    let limits = map(r.and_then(|r| r.limits.as_ref()));
    let mut requests = map(r.and_then(|r| r.requests.as_ref()));
    // The API server's defaulting of the patched pod: a limit without a request is also the
    // request.
    for (k, v) in &limits {
        requests.entry(k.clone()).or_insert_with(|| v.clone());
    }
    (requests, limits)
}

fn q(s: &str) -> Option<Quantity> {
    parse_quantity(s).ok()
}

/// What the LimitRanges refuse of a container with `requests` and `limits` (defaults set).
fn range_refusals(
    c: &ContainerRange,
    requests: &BTreeMap<String, String>,
    limits: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (res, min) in &c.min {
        let (Some(req), lim) = (requests.get(res), limits.get(res)) else {
            out.push(format!(
                "minimum {res} usage per Container is {min}; no request is specified"
            ));
            continue;
        };
        if q(req) < q(min) {
            out.push(format!(
                "minimum {res} usage per Container is {min}, but request is {req}"
            ));
        }
        if let Some(lim) = lim
            && q(lim) < q(min)
        {
            out.push(format!(
                "minimum {res} usage per Container is {min}, but limit is {lim}"
            ));
        }
    }
    for (res, max) in &c.max {
        let Some(lim) = limits.get(res) else {
            out.push(format!(
                "maximum {res} usage per Container is {max}; no limit is specified"
            ));
            continue;
        };
        if q(lim) > q(max) {
            out.push(format!(
                "maximum {res} usage per Container is {max}, but limit is {lim}"
            ));
        }
        if let Some(req) = requests.get(res)
            && q(req) > q(max)
        {
            out.push(format!(
                "maximum {res} usage per Container is {max}, but request is {req}"
            ));
        }
    }
    for (res, ratio) in &c.max_limit_request_ratio {
        let (req, lim) = (requests.get(res), limits.get(res));
        let (Some(req), Some(lim)) = (req.and_then(|r| q(r)), lim.and_then(|l| q(l))) else {
            out.push(format!(
                "{res} max limit to request ratio per Container is {ratio}; a request and a limit must be specified"
            ));
            continue;
        };
        if let Some(ratio_q) = q(ratio)
            && lim > req.times(&ratio_q)
        {
            out.push(format!(
                "{res} max limit to request ratio per Container is {ratio}, but the limit {} is more than that times the request {}",
                limits[res], requests[res]
            ));
        }
    }
    out
}

/// What the namespace's quotas and limit ranges refuse of the `containers` injection adds
/// (name, resources as injected): LimitRange defaults first, then their bounds, then the
/// quotas' requirements.
pub fn check(
    limits: &NamespaceLimits,
    containers: &[(&str, Option<ResourceRequirements>)],
) -> Vec<Refusal> {
    let ranges: Vec<(&String, &RangeDigest)> =
        limits.ranges.iter().flat_map(|r| r.iter()).collect();
    let mut out = Vec::new();
    let mut after: Vec<(&str, Resources)> = Vec::new();
    for (name, r) in containers {
        let (mut requests, mut limits) = resources_of(r.as_ref());
        // LimitRanger: each range's defaults, for what is still missing.
        for (range_name, range) in &ranges {
            for item in &range.items {
                for (k, v) in &item.default {
                    if limits.contains_key(k) {
                        continue;
                    }
                    // A default limit under the request the container has: the API server's
                    // validation refuses the pod (request > limit).
                    if let Some(req) = requests.get(k)
                        && q(req) > q(v)
                    {
                        out.push(Refusal::Range {
                            range: (*range_name).clone(),
                            container: (*name).to_owned(),
                            why: format!(
                                "its {k} request {req} would be more than the limit {v} the range sets by default"
                            ),
                        });
                    }
                    limits.insert(k.clone(), v.clone());
                }
                for (k, v) in &item.default_request {
                    requests.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
        for (range_name, range) in &ranges {
            for item in &range.items {
                for why in range_refusals(item, &requests, &limits) {
                    out.push(Refusal::Range {
                        range: (*range_name).clone(),
                        container: (*name).to_owned(),
                        why,
                    });
                }
            }
        }
        after.push((name, (requests, limits)));
    }
    for (quota, digest) in limits.quotas.iter().flat_map(|q| q.iter()) {
        for (kind, resource) in &digest.required {
            let containers: Vec<String> = after
                .iter()
                .filter(|(_, (req, lim))| {
                    let m = match kind {
                        Kind::Request => req,
                        Kind::Limit => lim,
                    };
                    !m.contains_key(resource)
                })
                .map(|(n, _)| (*n).to_owned())
                .collect();
            if !containers.is_empty() {
                out.push(Refusal::Unspecified {
                    quota: quota.clone(),
                    kind: *kind,
                    resource: resource.clone(),
                    containers,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn quota(hard: serde_json::Value) -> QuotaDigest {
        QuotaDigest::of(
            &serde_json::from_value(json!({"metadata": {"name": "q"}, "spec": {"hard": hard}}))
                .unwrap(),
        )
    }

    fn range(item: serde_json::Value) -> RangeDigest {
        let mut item = item;
        item["type"] = json!("Container");
        RangeDigest::of(
            &serde_json::from_value(json!({"metadata": {"name": "l"}, "spec": {"limits": [item]}}))
                .unwrap(),
        )
    }

    fn limits(quotas: Vec<QuotaDigest>, ranges: Vec<RangeDigest>) -> NamespaceLimits {
        NamespaceLimits {
            quotas: Some(Arc::new(
                quotas
                    .into_iter()
                    .enumerate()
                    .map(|(i, q)| (format!("q{i}"), q))
                    .collect(),
            )),
            ranges: Some(Arc::new(
                ranges
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| (format!("l{i}"), r))
                    .collect(),
            )),
        }
    }

    fn res(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Option<ResourceRequirements> {
        let m = |p: &[(&str, &str)]| {
            (!p.is_empty()).then(|| {
                p.iter()
                    .map(|(k, v)| {
                        (
                            (*k).to_owned(),
                            k8s_openapi::apimachinery::pkg::api::resource::Quantity(
                                (*v).to_owned(),
                            ),
                        )
                    })
                    .collect()
            })
        };
        Some(ResourceRequirements {
            requests: m(requests),
            limits: m(limits),
            ..Default::default()
        })
    }

    #[test]
    fn a_quota_tracks_cpu_and_memory_requests_and_limits_only() {
        let d = quota(
            json!({"requests.cpu": "1", "limits.memory": "1Gi", "pods": "10", "requests.storage": "1Gi", "memory": "2Gi"}),
        );
        assert_eq!(
            d.required,
            [
                (Kind::Request, "memory".to_owned()),
                (Kind::Request, "cpu".to_owned()),
                (Kind::Limit, "memory".to_owned())
            ]
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
        );
        assert!(
            quota(json!({"pods": "10", "count/services": "3"}))
                .required
                .is_empty()
        );
    }

    #[test]
    fn containers_without_what_a_quota_tracks_are_named() {
        let l = limits(
            vec![quota(json!({"requests.cpu": "1", "limits.cpu": "2"}))],
            vec![],
        );
        let r = check(
            &l,
            &[
                ("linkerd-init", None),
                ("linkerd-proxy", res(&[("cpu", "100m")], &[])),
            ],
        );
        let text: Vec<String> = r.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "ResourceQuota q0 tracks requests.cpu, which linkerd-init must specify",
                "ResourceQuota q0 tracks limits.cpu, which linkerd-init, linkerd-proxy must specify",
            ]
        );
        // A limit alone is also the request (the API server's defaulting).
        assert!(check(&l, &[("linkerd-proxy", res(&[], &[("cpu", "1")]))]).is_empty());
    }

    #[test]
    fn limit_range_defaults_count_as_specified() {
        let l = limits(
            vec![quota(
                json!({"requests.cpu": "1", "limits.cpu": "2", "requests.memory": "1Gi", "limits.memory": "1Gi"}),
            )],
            vec![range(
                json!({"default": {"cpu": "500m", "memory": "128Mi"}, "defaultRequest": {"cpu": "100m", "memory": "64Mi"}}),
            )],
        );
        assert!(check(&l, &[("linkerd-init", None), ("linkerd-proxy", None)]).is_empty());
    }

    #[test]
    fn limit_range_min_max_and_ratio_refuse_what_is_out_of_bounds() {
        let max = limits(
            vec![],
            vec![range(
                json!({"max": {"cpu": "50m"}, "default": {"cpu": "50m"}}),
            )],
        );
        let r = check(&max, &[("linkerd-proxy", res(&[("cpu", "100m")], &[]))]);
        let text: Vec<String> = r.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                // What the API server's validation says first: the defaulted limit.
                "LimitRange l0: container linkerd-proxy: its cpu request 100m would be more than the limit 50m the range sets by default",
                "LimitRange l0: container linkerd-proxy: maximum cpu usage per Container is 50m, but request is 100m",
            ]
        );
        assert!(check(&max, &[("linkerd-proxy", res(&[("cpu", "20m")], &[]))]).is_empty());

        let min = limits(vec![], vec![range(json!({"min": {"memory": "64Mi"}}))]);
        let r = check(&min, &[("linkerd-proxy", res(&[("memory", "20Mi")], &[]))]);
        assert!(
            r[0].to_string()
                .contains("minimum memory usage per Container is 64Mi, but request is 20Mi"),
            "{r:?}"
        );
        // No request: the range's default request is its min (the API server's defaulting).
        assert!(check(&min, &[("linkerd-proxy", None)]).is_empty());

        let ratio = limits(
            vec![],
            vec![range(json!({"maxLimitRequestRatio": {"cpu": "2"}}))],
        );
        let r = check(
            &ratio,
            &[("linkerd-proxy", res(&[("cpu", "100m")], &[("cpu", "1")]))],
        );
        assert!(
            r[0].to_string()
                .contains("max limit to request ratio per Container is 2"),
            "{r:?}"
        );
        assert!(
            check(
                &ratio,
                &[("linkerd-proxy", res(&[("cpu", "500m")], &[("cpu", "1")]))]
            )
            .is_empty()
        );
    }
}
