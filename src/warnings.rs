//! Pure: the classic mesh mistakes, found in a Namespace or a workload as it is created or
//! updated, each as one sentence that names the field and the fix. Served by `POST /warn`
//! (kubectl prints the warnings) and used by `explain`, so both always say the same.
//!
//! Override values are checked by the injector's own decision code (never a second parser).

use serde_json::{Value, json};

use crate::config::Config;
use crate::decision::{self, Decision, NamespaceInfo, RequestFacts, SkipReason};
use crate::mesh::{self, INJECT_ANNOTATION, UNSUPPORTED_KEYS, is_mesh_key};
use crate::overrides::PortList;
use crate::quote::Quoted;
use crate::view::PodView;
use crate::workload::pod_template_path;

/// The kinds `POST /warn` looks at.
pub fn is_checked_kind(kind: &str) -> bool {
    kind == "Namespace" || pod_template_path(kind).is_some()
}

fn map<'v>(v: &'v Value, pointer: &str) -> Vec<(&'v str, &'v str)> {
    v.pointer(pointer)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.as_str(), s)))
                .collect()
        })
        .unwrap_or_default()
}

fn field(template: &str, rest: &str) -> String {
    let t = template.trim_start_matches('/').replace('/', ".");
    if t.is_empty() {
        rest.to_owned()
    } else {
        format!("{t}.{rest}")
    }
}

fn closest<'k>(word: &str, candidates: impl IntoIterator<Item = &'k str>) -> Option<&'k str> {
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::levenshtein(&word.to_ascii_lowercase(), &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(d, c)| *d <= 3.max(c.len() / 5))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Unknown keys and values among mesh annotations, with a "did you mean" when one is close.
fn check_keys(annotations: &[(&str, &str)], at: &str, out: &mut Vec<String>) {
    let known = || mesh::override_keys().chain(mesh::status_keys());
    for (k, v) in annotations {
        if *k == INJECT_ANNOTATION {
            if !matches!(*v, "enabled" | "disabled" | "ingress") {
                let hint = closest(v, ["enabled", "disabled", "ingress"])
                    .map(|c| format!(" (did you mean {c:?}?)"))
                    .unwrap_or_default();
                out.push(format!(
                    "{at}[{INJECT_ANNOTATION}] is {}, which is not understood{hint}: use enabled, disabled or ingress",
                    Quoted(v)
                ));
            }
            continue;
        }
        if UNSUPPORTED_KEYS.contains(k) {
            out.push(format!("{at}[{k}] is a Linkerd setting this injector does not support yet; it has no effect"));
            continue;
        }
        let near_miss = !is_mesh_key(k) && closest(k, known()).is_some() && k.contains("linkerd");
        if (is_mesh_key(k) && !known().any(|n| n == *k)) || near_miss {
            let hint = closest(k, known())
                .map(|c| format!("; did you mean {c}?"))
                .unwrap_or_default();
            out.push(format!(
                "{at}[{k}] is not an annotation the injector knows, so it has no effect{hint}"
            ));
        }
    }
}

/// Values that do not parse, checked by the injector's own decision: the pod is decided as if
/// injection were on, and every invalid override is reported.
fn check_values(
    template: &Value,
    ns: NamespaceInfo<'_>,
    config: &Config,
    at: &str,
    out: &mut Vec<String>,
) {
    let mut pod = json!({"metadata": template.get("metadata").cloned().unwrap_or(json!({})),
                         "spec": template.get("spec").cloned().unwrap_or(json!({}))});
    pod["metadata"]["annotations"][INJECT_ANNOTATION] = json!("enabled");
    // A pod view never fails on a real template; if it did, there is nothing to check.
    let text = pod.to_string();
    let Ok(view) = PodView::parse(&text) else {
        return;
    };
    let mut view = view;
    if let Some(spec) = view.spec.as_mut() {
        // Decide the overrides even for hostNetwork pods (reported separately).
        spec.host_network = None;
    }
    match decision::decide(&RequestFacts::POD_CREATE, &view, ns, config) {
        Decision::Skip(SkipReason::InvalidOverrides(errors)) => {
            for e in errors {
                let place = match e.source {
                    decision::Source::Pod => format!("{at}[{}]", e.key),
                    decision::Source::Namespace => {
                        format!("the namespace's annotation {}", e.key)
                    }
                };
                out.push(format!(
                    "{place} = {} is not valid ({}); pods would be admitted without the proxy",
                    e.value, e.reason
                ));
            }
        }
        Decision::Skip(SkipReason::NameClash(names)) => out.push(format!(
            "the pod template already has {}, which injection adds; pods would be admitted \
             without the proxy (rename it)",
            names.join(", ")
        )),
        Decision::Skip(
            reason @ (SkipReason::PodSecurity { .. } | SkipReason::ResourceLimits { .. }),
        ) => out.push(format!(
            "{reason}; pods would be admitted without the proxy"
        )),
        _ => {}
    }
}

/// Skip-port lists that include the proxy's own listener for that direction: skipping the
/// inbound port (4143) inbound or the outbound port (4140) outbound would send traffic around
/// the proxy's own listener. (Admin and control are always skipped inbound, by design.)
fn check_skip_ports(
    annotations: &[(&str, &str)],
    config: &Config,
    at: &str,
    out: &mut Vec<String>,
) {
    let p = &config.proxy.ports;
    for (key, port, name) in [
        ("config.linkerd.io/skip-inbound-ports", p.inbound, "inbound"),
        (
            "config.linkerd.io/skip-outbound-ports",
            p.outbound,
            "outbound",
        ),
    ] {
        let Some((_, v)) = annotations.iter().find(|(k, _)| *k == key) else {
            continue;
        };
        let Ok(list) = PortList::parse(v) else {
            continue;
        };
        if list.contains(port) {
            out.push(format!(
                "{at}[{key}] includes {port}, the proxy's own {name} port; traffic on it would bypass or break the proxy: remove it"
            ));
        }
    }
}

/// Warnings for one object. `old` is the object before an UPDATE; `ns` what the injector knows
/// of the object's namespace.
pub fn check(
    kind: &str,
    obj: &Value,
    old: Option<&Value>,
    ns: NamespaceInfo<'_>,
    config: &Config,
) -> Vec<String> {
    let mut out = Vec::new();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if kind == "Namespace" {
        check_namespace(name, obj, old, config, &mut out);
        return out;
    }
    let Some(tpath) = pod_template_path(kind) else {
        return out;
    };
    let Some(template) = obj.pointer(tpath) else {
        return out;
    };
    let own = map(obj, "/metadata/annotations");
    let tann = map(template, "/metadata/annotations");
    let t_at = field(tpath, "metadata.annotations");

    if !tpath.is_empty() {
        // Mesh annotations on the workload's own metadata: the injector never sees them.
        for (k, _) in own.iter().filter(|(k, _)| {
            is_mesh_key(k) && (*k == INJECT_ANNOTATION || !mesh::status_keys().any(|s| s == *k))
        }) {
            if !tann.iter().any(|(tk, _)| tk == k) {
                out.push(format!(
                    "metadata.annotations[{k}] on {kind} {name} has no effect: the injector reads the pod template; \
                     move it to {t_at}"
                ));
            }
        }
        for (k, _) in map(obj, "/metadata/labels")
            .iter()
            .filter(|(k, _)| *k == INJECT_ANNOTATION)
        {
            out.push(format!(
                "metadata.labels[{k}] on {kind} {name} is a label, and labels are not read: set it as an annotation in {t_at}"
            ));
        }
    }
    for (k, _) in map(template, "/metadata/labels")
        .iter()
        .filter(|(k, _)| *k == INJECT_ANNOTATION)
    {
        out.push(format!(
            "{}[{k}] is a label, and labels are not read: make it an annotation ({t_at})",
            field(tpath, "metadata.labels")
        ));
    }
    check_keys(&tann, &t_at, &mut out);
    check_skip_ports(&tann, config, &t_at, &mut out);

    let pod_value = tann
        .iter()
        .find(|(k, _)| *k == INJECT_ANNOTATION)
        .map(|(_, v)| *v);
    let ns_value = match ns {
        NamespaceInfo::Known {
            annotations: Some(a),
            ..
        } => a.get(INJECT_ANNOTATION).map(String::as_str),
        _ => None,
    };
    let enabled = matches!(pod_value.or(ns_value), Some("enabled" | "ingress"));
    if enabled {
        check_values(template, ns, config, &t_at, &mut out);
        if template.pointer("/spec/hostNetwork") == Some(&Value::Bool(true)) {
            out.push(format!(
                "{} is true, so pods of {kind} {name} will not be injected although {INJECT_ANNOTATION} is enabled",
                field(tpath, "spec.hostNetwork")
            ));
        }
    }
    out
}

fn check_namespace(
    name: &str,
    obj: &Value,
    old: Option<&Value>,
    config: &Config,
    out: &mut Vec<String>,
) {
    let ann = map(obj, "/metadata/annotations");
    for (k, v) in map(obj, "/metadata/labels")
        .iter()
        .filter(|(k, _)| *k == INJECT_ANNOTATION)
    {
        if !ann.iter().any(|(ak, _)| ak == k) {
            out.push(format!(
                "metadata.labels[{k}] on namespace {name} is a label, and labels are not read: \
                 kubectl annotate namespace {name} {k}={v}"
            ));
        }
    }
    check_keys(&ann, "metadata.annotations", out);
    for (k, _) in &ann {
        if mesh::settings::by_annotation(k).is_some() && !mesh::namespace_applies(k) {
            out.push(format!(
                "metadata.annotations[{k}] on namespace {name} has no effect: it is read on the \
                 pod only (as Linkerd reads it); set it on the workloads' pod templates"
            ));
        }
    }
    check_skip_ports(&ann, config, "metadata.annotations", out);
    let before = old.map(|o| map(o, "/metadata/annotations")).and_then(|a| {
        a.iter()
            .find(|(k, _)| *k == INJECT_ANNOTATION)
            .map(|(_, v)| v.to_string())
    });
    let after = ann
        .iter()
        .find(|(k, _)| *k == INJECT_ANNOTATION)
        .map(|(_, v)| v.to_string());
    // Injection on a namespace whose PodSecurity level refuses the injected containers (or such
    // a level on an injected namespace): said when the combination appears.
    if let Some(reason) = blocked_by_pod_security(name, obj, config)
        && old.is_none_or(|o| blocked_by_pod_security(name, o, config).is_none())
    {
        out.push(format!(
            "pods created in namespace {name} will be admitted without the proxy: {reason}"
        ));
    }
    let on = |v: &Option<String>| matches!(v.as_deref(), Some("enabled" | "ingress"));
    if old.is_some() && on(&before) != on(&after) {
        let state = if on(&after) {
            "turned on"
        } else {
            "turned off"
        };
        out.push(format!(
            "injection was {state} for namespace {name}: pods already running keep their current state until restarted: \
             kubectl rollout restart deployment,statefulset,daemonset -n {name}"
        ));
    }
}

/// A ResourceQuota or LimitRange (`kind`, as JSON) created or changed in a namespace (`ns`,
/// with the quotas and ranges it has now): when the namespace's pods would be injected before
/// and, with this object, the API server would refuse the containers injection adds, a warning
/// that says so and how to fix it. Returns the object's name and the warnings.
pub fn limits_added(
    kind: &str,
    json: &str,
    ns: NamespaceInfo<'_>,
    config: &Config,
) -> (String, Vec<String>) {
    use crate::quota::{NamespaceLimits, QuotaDigest, RangeDigest};
    let mut limits: NamespaceLimits = ns.limits().cloned().unwrap_or_default();
    let name = match kind {
        "ResourceQuota" => {
            let Ok(q) = serde_json::from_str::<k8s_openapi::api::core::v1::ResourceQuota>(json)
            else {
                return (String::new(), Vec::new());
            };
            let name = q.metadata.name.clone().unwrap_or_default();
            std::sync::Arc::make_mut(limits.quotas.get_or_insert_default())
                .insert(name.clone(), QuotaDigest::of(&q));
            name
        }
        _ => {
            let Ok(l) = serde_json::from_str::<k8s_openapi::api::core::v1::LimitRange>(json) else {
                return (String::new(), Vec::new());
            };
            let name = l.metadata.name.clone().unwrap_or_default();
            std::sync::Arc::make_mut(limits.ranges.get_or_insert_default())
                .insert(name.clone(), RangeDigest::of(&l));
            name
        }
    };
    // The namespace's pods with its limits as they are, and as they would be.
    if !matches!(ns, NamespaceInfo::Known { .. }) {
        return (name, Vec::new());
    }
    let blocked = |info| {
        decision::namespace_blocked(info, config)
            .filter(|r| matches!(r, SkipReason::ResourceLimits { .. }))
    };
    let mut out = Vec::new();
    if blocked(ns).is_none()
        && let Some(reason) = blocked(ns.with_limits(&limits))
    {
        out.push(format!(
            "with {kind} {}, pods created in this namespace will be admitted without the proxy: {reason}",
            Quoted(&name)
        ));
    }
    (name, out)
}

/// Whether the namespace `obj` turns injection on and enforces a PodSecurity level that
/// refuses the containers injection adds.
fn blocked_by_pod_security(name: &str, obj: &Value, config: &Config) -> Option<SkipReason> {
    let ns: k8s_openapi::api::core::v1::Namespace =
        serde_json::from_value(serde_json::json!({"metadata": obj.get("metadata")?})).ok()?;
    decision::namespace_blocked(NamespaceInfo::of(Some(name), Some(&ns)), config)
        .filter(|r| matches!(r, SkipReason::PodSecurity { .. }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injection_and_a_pod_security_level_that_refuses_it_are_said_when_they_meet() {
        let ns = |labels: &str, ann: &str| -> Value {
            serde_saphyr::from_str(&format!(
                "kind: Namespace\nmetadata:\n  name: shop\n  labels: {{{labels}}}\n  annotations: {{{ann}}}\n"
            ))
            .unwrap()
        };
        let c = Config::default();
        let both = ns(
            "pod-security.kubernetes.io/enforce: baseline",
            "linkerd.io/inject: enabled",
        );
        let w = check("Namespace", &both, None, NamespaceInfo::None, &c);
        assert!(
            w.iter().any(|x| x
                .starts_with("pods created in namespace shop will be admitted without the proxy")
                && x.contains("NET_ADMIN")
                && x.contains("cniEnabled: true")),
            "{w:?}"
        );
        // Labelling an injected namespace, and annotating a labelled one, both say it.
        let injected = ns("", "linkerd.io/inject: enabled");
        let labelled = ns("pod-security.kubernetes.io/enforce: restricted", "");
        for old in [&injected, &labelled] {
            let w = check("Namespace", &both, Some(old), NamespaceInfo::None, &c);
            assert!(w.iter().any(|x| x.contains("PodSecurity")), "{w:?}");
        }
        // Once said, an unrelated update says nothing more; privileged, or CNI, say nothing.
        let w = check("Namespace", &both, Some(&both), NamespaceInfo::None, &c);
        assert!(!w.iter().any(|x| x.contains("PodSecurity")), "{w:?}");
        let privileged = ns(
            "pod-security.kubernetes.io/enforce: privileged",
            "linkerd.io/inject: enabled",
        );
        assert!(check("Namespace", &privileged, None, NamespaceInfo::None, &c).is_empty());
        let cni = Config {
            cni_enabled: true,
            ..Config::default()
        };
        assert!(check("Namespace", &both, None, NamespaceInfo::None, &cni).is_empty());
    }

    fn warn(yaml: &str) -> Vec<String> {
        let v: Value = serde_saphyr::from_str(yaml).unwrap();
        let kind = v["kind"].as_str().unwrap().to_owned();
        check(&kind, &v, None, NamespaceInfo::None, &Config::default())
    }

    #[test]
    fn closest_suggests_near_words() {
        assert_eq!(
            closest("enable", ["enabled", "disabled", "ingress"]),
            Some("enabled")
        );
        assert_eq!(
            closest("Enabled", ["enabled", "disabled", "ingress"]),
            Some("enabled")
        );
        assert_eq!(closest("banana", ["enabled", "disabled", "ingress"]), None);
    }

    #[test]
    fn pod_only_key_on_a_namespace() {
        let w = warn(
            "kind: Namespace\nmetadata:\n  name: shop\n  annotations:\n    config.linkerd.io/proxy-cpu-ratio-limit: \"0.5\"\n    config.linkerd.io/proxy-cpu-limit: \"1\"\n",
        );
        assert_eq!(
            w,
            [
                "metadata.annotations[config.linkerd.io/proxy-cpu-ratio-limit] on namespace shop \
              has no effect: it is read on the pod only (as Linkerd reads it); set it on the \
              workloads' pod templates"
            ]
        );
    }

    #[test]
    fn annotation_on_workload_metadata() {
        let w = warn(
            "kind: Deployment\nmetadata:\n  name: web\n  annotations:\n    linkerd.io/inject: enabled\nspec:\n  template:\n    spec:\n      containers: []\n",
        );
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("has no effect") && w[0].contains("spec.template.metadata.annotations"),
            "{w:?}"
        );
    }
}
