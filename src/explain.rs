//! `explain`: for a pod or the pod template of a workload, the decision, the rule that made it,
//! every effective value (from the settings registry) with where it came from, the warnings
//! `POST /warn` gives, and for a running pod whether its proxy is current and what
//! NetworkPolicies do to its proxy's paths.

use std::cell::OnceCell;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use serde_json::Value;

use crate::admission::Admission;
use crate::check::classify::Cluster;
use crate::check::doing::{current_trust_root, pod_verdict};
use crate::check::network::{Network, fix_block, path_line};
use crate::config::Config;
use crate::containers::proxy_image;
use crate::decision::{self, Decision, Mode, NamespaceInfo, RequestFacts};
use crate::mesh::{INJECT_ANNOTATION, SETTINGS, Setting};
use crate::netpol::{Direction, PolicyRef};
use crate::offline::{OfflineError, describe};
use crate::uninject::strip_injected;
use crate::values::ProxyValues;
use crate::view::PodView;
use crate::workload::{display_name, pod_template_path};

/// `explain` for one document: the decision for its pod (a Pod, or a workload's pod template),
/// and the same warnings `POST /warn` gives.
pub fn explain(
    admission: &Admission,
    _index: usize,
    doc: &Value,
    namespace: Option<&str>,
) -> Result<Vec<String>, OfflineError> {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("Pod");
    let meta = &doc["metadata"];
    let ns_name = namespace
        .or(meta["namespace"].as_str())
        .unwrap_or("default")
        .to_owned();
    if kind == "Pod" {
        return Ok(explain_pod(admission, doc, Some(&ns_name)));
    }
    let mut lines = vec![format!("{}:", describe(doc))];
    if let Some(template) = pod_template_path(kind).and_then(|p| doc.pointer(p)) {
        let mut pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": template.get("metadata").cloned().unwrap_or_else(|| serde_json::json!({})),
            "spec": template.get("spec").cloned().unwrap_or_else(|| serde_json::json!({}))});
        pod["metadata"]["name"] = Value::String(format!(
            "{} (template)",
            meta["name"].as_str().unwrap_or("")
        ));
        // Its own warnings are reported below for the workload, with the workload's field names.
        lines.extend(
            explain_pod(admission, &pod, Some(&ns_name))
                .into_iter()
                .filter(|l| !l.starts_with("  warning:"))
                .map(|l| format!("  {l}")),
        );
    }
    let ns_obj = admission.namespaces().get(&ns_name);
    let limits = admission.namespaces().limits(&ns_name);
    // A Namespace is not in a namespace.
    let info = if kind == "Namespace" {
        NamespaceInfo::None
    } else {
        NamespaceInfo::of(Some(&ns_name), ns_obj.as_deref()).with_limits(&limits)
    };
    let warnings = crate::warnings::check(kind, doc, None, info, admission.config());
    if warnings.is_empty() {
        lines.push("  no mistakes found".to_owned());
    }
    lines.extend(warnings.into_iter().map(|w| format!("  warning: {w}")));
    Ok(lines)
}

/// The full explanation of one pod of a manifest: decision, the rule that made it, every
/// effective value with where it came from, and the warnings.
pub fn explain_pod(admission: &Admission, pod: &Value, namespace: Option<&str>) -> Vec<String> {
    explain_decided(admission, pod, namespace, None).0
}

/// [`explain_pod`] for a pod read from the cluster (judged as if it were created now, and
/// whether its proxy is the one the config's release gives), then, when it runs the proxy,
/// how it is doing and whether it carries the current trust anchors ([`doing_lines`]), and
/// when it runs the proxy or a pod created now would get it, [`network_lines`]. Everything is
/// read from `cluster`, the snapshot `Cluster::for_pod` reads (or a test builds); the
/// admission's config is the one `Cluster::config` gives.
pub fn explain_running_pod(
    admission: &Admission,
    pod: &Value,
    namespace: Option<&str>,
    cluster: &Cluster,
) -> Vec<String> {
    let typed = serde_json::from_value::<Pod>(pod.clone()).map_err(|e| e.to_string());
    let restart = typed.as_ref().map_or_else(
        |_| "kubectl delete pod (and let its owner create it again)".to_owned(),
        |p| restart_of(p, cluster),
    );
    let (mut lines, injected) = explain_decided(admission, pod, namespace, Some(&restart));
    let meshed = proxy_image(pod).is_some();
    if let (true, Ok(typed)) = (meshed, &typed) {
        lines.extend(doing_lines(typed, cluster, admission.config(), &restart));
    }
    if injected || meshed {
        let typed = typed.as_ref().map_err(String::as_str);
        lines.extend(network_lines(typed, cluster, admission.config()));
    }
    lines
}

/// The command that replaces a pod with a new one: its owner's restart.
fn restart_of(pod: &Pod, cluster: &Cluster) -> String {
    let (kind, name) = crate::check::classify::workload_of(pod, cluster);
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    crate::workload::restart_command(&kind, &name, ns, &[pod.name_any()])
}

/// How a meshed pod is doing (`check::doing::pod_verdict`: its status, its Events, and for a
/// proxy that does not get ready the NetworkPolicy verdicts of its control-plane paths), and
/// whether it carries the current trust anchors.
fn doing_lines(pod: &Pod, cluster: &Cluster, config: &Config, restart: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let events = cluster.pod_events().of(pod);
    if let Some(v) = pod_verdict(pod, &events, cluster, config, &OnceCell::new()) {
        let whose = if v.mesh { "the mesh" } else { "not the mesh" };
        lines.push(format!("  how it is doing ({whose}): {}", v.says));
        lines.extend(v.evidence.iter().map(|e| format!("    evidence: {e}")));
        if !v.fix.is_empty() {
            lines.push(format!("    fix: {}", v.fix));
        }
    }
    let carried = pod.annotations().get(crate::mesh::TRUST_ROOT_ANNOTATION);
    if let (Some(current), Some(carried)) = (current_trust_root(config), carried)
        && *carried != current
    {
        lines.push(format!(
            "  trust anchors: the pod carries {}… but the current ones are {}…: it will fail mTLS once \
             the old anchor is removed; restart needed: {restart}",
            carried.chars().take(12).collect::<String>(),
            current.chars().take(12).collect::<String>()
        ));
    }
    lines
}

/// The NetworkPolicies that isolate the pod, per direction, and the verdict of each of its
/// proxy's paths (both sides when the peer's pods were read), with the fix for denied ones.
/// `pod`: the pod, or why it cannot be read as one.
pub fn network_lines(pod: Result<&Pod, &str>, cluster: &Cluster, config: &Config) -> Vec<String> {
    if let Some(e) = &cluster.network_unread {
        return vec![format!("  network policies: not checked: {e}")];
    }
    let pod = match pod {
        Ok(p) => p,
        Err(e) => {
            return vec![format!(
                "  network policies: not checked: the pod cannot be read as a Pod ({e})"
            )];
        }
    };
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let network = Network::new(cluster, config);
    let net = network.evaluate(pod, cluster.namespaces.get(ns));
    let isolating = |d: Direction| {
        let mut found: Vec<&PolicyRef> = Vec::new();
        let sides = net.paths.iter().map(|p| &p.pod_side);
        for p in sides
            .filter(|s| s.direction == d)
            .flat_map(|s| &s.isolating)
        {
            if !found.contains(&p) {
                found.push(p);
            }
        }
        match found.len() {
            0 => "none".to_owned(),
            _ => found
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        }
    };
    let mut lines = vec![
        format!(
            "  network policies selecting the pod: ingress: {}; egress: {}",
            isolating(Direction::Ingress),
            isolating(Direction::Egress)
        ),
        "  proxy paths:".to_owned(),
    ];
    lines.extend(net.paths.iter().map(|p| format!("    {}", path_line(p))));
    lines.extend(network.not_checked().iter().map(|p| format!("    {p}")));
    lines.extend(fix_block(&net.fix, "  ").lines().map(str::to_owned));
    if let Some(note) = net.fix_note {
        lines.push(format!("  no fix for every denied path: {note}"));
    }
    for p in network.policy_problems() {
        lines.push(format!(
            "  note: a NetworkPolicy part the API server would reject: {p}"
        ));
    }
    lines
}

/// The explanation, and whether a pod created now would get the proxy.
/// `restart`: for a pod read from the cluster, the command that replaces it.
fn explain_decided(
    admission: &Admission,
    pod: &Value,
    namespace: Option<&str>,
    restart: Option<&str>,
) -> (Vec<String>, bool) {
    let running = restart.is_some();
    let meta = &pod["metadata"];
    let name = display_name(meta["name"].as_str(), meta["generateName"].as_str());
    let ns_name = namespace
        .or(meta["namespace"].as_str())
        .unwrap_or("default")
        .to_owned();
    let text = pod.to_string();
    let Ok(view) = PodView::parse(&text) else {
        return (vec![format!("pod/{name}: cannot be read as a pod")], false);
    };
    let ns_obj = admission.namespaces().get(&ns_name);
    let ns_ann = ns_obj
        .as_ref()
        .and_then(|o| o.metadata.annotations.as_ref());
    let limits = admission.namespaces().limits(&ns_name);
    let info = NamespaceInfo::of(Some(&ns_name), ns_obj.as_deref()).with_limits(&limits);
    let mut lines = Vec::new();
    // A running pod is judged as if it were created now (minus the proxy it may already have).
    let fresh = strip_injected(pod);
    let fresh_text = fresh.to_string();
    let fresh_view = PodView::parse(&fresh_text).unwrap_or_default();
    let decided_view = if running { &fresh_view } else { &view };
    let decision = decision::decide(
        &RequestFacts::POD_CREATE,
        decided_view,
        info,
        admission.config(),
    );
    let injected = matches!(decision, Decision::Inject(_));
    match decision {
        Decision::Inject(plan) => {
            let rule = match plan.source {
                decision::Source::Pod => format!(
                    "the pod's own {}: {}",
                    INJECT_ANNOTATION,
                    plan.mode.as_str()
                ),
                decision::Source::Namespace => format!(
                    "namespace {ns_name}'s {}: {} (the pod does not set it)",
                    INJECT_ANNOTATION,
                    plan.mode.as_str()
                ),
            };
            let verdict = if running {
                "a pod created now is injected"
            } else {
                "injected"
            };
            lines.push(format!(
                "pod/{name} in namespace {ns_name}: {verdict} ({})",
                plan.mode.as_str()
            ));
            lines.push(format!("  rule: {rule}"));
            let release = &admission.config().release;
            lines.push(format!("  rendered as: {release}'s injector renders it"));
            lines.push("  values:".to_owned());
            let builtin_config = Config::for_release(release);
            let builtin = ProxyValues::from_config(&builtin_config, Mode::Enabled);
            let rows: Vec<&Setting> = SETTINGS.iter().filter(|s| s.slot.is_some()).collect();
            for group in rows.chunk_by(|a, b| a.label == b.label) {
                let value = shown(group, &plan.proxy);
                // The group's annotations, and those its values are derived from.
                let keys = || {
                    group.iter().flat_map(|s| {
                        let derived = s.derived.map(|d| d.from);
                        s.annotations
                            .iter()
                            .copied()
                            .chain(derived)
                            .filter(|k| release.reads(k))
                            .map(|k| (k, release.namespace_applies(k)))
                    })
                };
                let pod_key = keys()
                    .map(|(k, _)| k)
                    .find(|k| decided_view.has_annotation(k));
                let ns_key = keys()
                    .filter(|(_, inherit)| *inherit)
                    .map(|(k, _)| k)
                    .find(|k| ns_ann.is_some_and(|a| a.contains_key(*k)));
                let source = match (pod_key, ns_key) {
                    (Some(k), _) => format!("pod annotation {k}"),
                    (None, Some(k)) => format!("namespace annotation {k}"),
                    _ if shown(group, &builtin) == value => "default".to_owned(),
                    _ => "configured".to_owned(),
                };
                let label = group[0].label;
                lines.push(format!("    {label:<27} {value:<45} ({source})"));
            }
            if let Some(restart) = restart {
                let want = format!("{}:{}", plan.proxy.proxy_image, plan.proxy.proxy_version);
                lines.push(match proxy_image(pod) {
                    None => format!("  running pod: has NO proxy; restart needed: {restart}"),
                    Some(img) if img == want => format!("  running pod: proxy {img} is current"),
                    Some(img) => format!(
                        "  running pod: proxy {img} is not {release}'s: a new pod would get {want}; restart needed: {restart}"
                    ),
                });
            }
        }
        Decision::Skip(reason) => {
            let verdict = if running {
                "a pod created now is not injected"
            } else {
                "not injected"
            };
            lines.push(format!("pod/{name} in namespace {ns_name}: {verdict}"));
            lines.push(format!("  rule: {} ({reason})", reason.code()));
        }
    }
    for w in crate::warnings::check("Pod", pod, None, info, admission.config()) {
        lines.push(format!("  warning: {w}"));
    }
    (lines, injected)
}

/// One `explain` line's value: the group's values, joined as the registry says.
fn shown(group: &[&Setting], v: &ProxyValues<'_>) -> String {
    let mut out = String::new();
    for s in group {
        if let Some(slot) = s.slot {
            out.push_str(s.join);
            out.push_str(&(slot.get)(v).display());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::namespaces::Namespaces;

    fn pod(meshed: bool) -> Value {
        let mut containers = vec![json!({"name": "app", "image": "app:1"})];
        if meshed {
            containers.push(json!({"name": "linkerd-proxy", "image": "proxy:1"}));
        }
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1",
            "namespace": "shop", "labels": {"app": "web", "pod-template-hash": "5d9"}},
            "spec": {"containers": containers}, "status": {"podIP": "10.1.0.1"}})
    }

    fn admission() -> Admission {
        Admission::new(Arc::new(Config::default()), Namespaces::empty())
    }

    #[test]
    fn a_meshed_pod_says_how_it_is_doing_and_whether_its_trust_anchors_are_current() {
        let mut p = pod(true);
        p["status"]["containerStatuses"] = json!([
            {"name": "linkerd-proxy", "ready": false, "restartCount": 3, "image": "proxy:1", "imageID": "",
             "state": {"waiting": {"reason": "CrashLoopBackOff"}},
             "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}},
            {"name": "app", "ready": true, "restartCount": 0, "image": "app:1", "imageID": "",
             "state": {"running": {}}}]);
        p["metadata"]["annotations"] =
            json!({"linkerd.io/trust-root-sha256": "0123456789abcdef0123"});
        p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "name": "web-5d9", "uid": "u", "controller": true}]);
        let rs =
            serde_json::from_value(json!({"metadata": {"name": "web-5d9", "namespace": "shop",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                "uid": "d", "controller": true}]}}))
            .unwrap();
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let cluster = Cluster {
            replica_sets: [(("shop".into(), "web-5d9".into()), rs)]
                .into_iter()
                .collect(),
            network_unread: Some("not read".into()),
            ..Cluster::default()
        };
        // The current anchors (the cluster's, as `Cluster::config` puts them in the config).
        let config = Config {
            trust_anchors_pem: Some(pem.into()),
            ..Config::default()
        };
        let with_anchors = Admission::new(Arc::new(config.clone()), Namespaces::empty());
        let lines = |p: &Value| explain_running_pod(&with_anchors, p, Some("shop"), &cluster);
        let text = lines(&p).join("\n");
        assert!(
            text.contains("how it is doing (the mesh): the proxy was OOM-killed under no memory limit of its own (3 restarts)"),
            "{text}"
        );
        assert!(
            text.contains("trust anchors: the pod carries 0123456789ab…"),
            "{text}"
        );
        assert!(
            text.contains("restart needed: kubectl rollout restart deployment/web -n shop"),
            "{text}"
        );
        // The same anchors: nothing said of them.
        p["metadata"]["annotations"]["linkerd.io/trust-root-sha256"] =
            json!(crate::patch::trust_root_sha256(&config));
        assert!(!lines(&p).join("\n").contains("trust anchors"));
    }

    #[test]
    fn a_meshed_pod_gets_its_policies_and_path_verdicts() {
        let deny: k8s_openapi::api::networking::v1::NetworkPolicy = serde_json::from_value(
            json!({"metadata": {"name": "deny-egress", "namespace": "shop"},
                "spec": {"podSelector": {}, "policyTypes": ["Egress"]}}),
        )
        .unwrap();
        let cluster = Cluster {
            network_policies: vec![deny],
            ..Cluster::default()
        };
        let lines = explain_running_pod(&admission(), &pod(true), Some("shop"), &cluster);
        let text = lines.join("\n");
        for want in [
            "  network policies selecting the pod: ingress: none; egress: shop/deny-egress",
            "  proxy paths:",
            "    egress to the identity controller (TCP 8080 to linkerd): blocked by shop/deny-egress",
            "    egress to DNS (UDP 53 to k8s-app=kube-dns in kube-system): blocked by shop/deny-egress",
            "    ingress from meshed clients (TCP 4143 from meshed pods in any namespace): allowed (no policy isolates the pod for ingress)",
            "  fix: kubectl apply -f - <<'EOF'",
            "  name: allow-linkerd-dns-tcp-",
        ] {
            assert!(text.contains(want), "{want:?} missing:\n{text}");
        }
        assert_eq!(lines.last().map(String::as_str), Some("EOF"));
    }

    #[test]
    fn derived_values_name_the_annotation_they_come_from() {
        let ns = Namespaces::from_yaml(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  annotations:\n    \
             config.linkerd.io/proxy-cpu-request: \"2\"\n    \
             config.linkerd.io/proxy-cpu-ratio-limit: \"0.5\"\n",
            "test",
        )
        .unwrap();
        let admission = Admission::new(Arc::new(Config::default()), ns);
        let mut p = pod(false);
        p["metadata"]["annotations"] = json!({"linkerd.io/inject": "enabled"});
        let lines = explain_pod(&admission, &p, Some("shop"));
        let line = lines
            .iter()
            .find(|l| l.contains("proxy cores min/max/ratio"))
            .unwrap();
        // The namespace's CPU request sets the minimum; its ratio limit is not read.
        assert!(line.contains(" 2/(none)/(none) "), "{line}");
        assert!(
            line.ends_with("(namespace annotation config.linkerd.io/proxy-cpu-request)"),
            "{line}"
        );
    }

    #[test]
    fn network_lines_only_for_a_pod_with_the_proxy_or_that_would_get_it() {
        let unread = Cluster {
            network_unread: Some("cannot list NetworkPolicies".into()),
            ..Cluster::default()
        };
        let lines = explain_running_pod(&admission(), &pod(false), Some("shop"), &unread);
        assert!(!lines.iter().any(|l| l.contains("network")), "{lines:?}");
        let lines = explain_running_pod(&admission(), &pod(true), Some("shop"), &unread);
        assert!(
            lines.contains(&"  network policies: not checked: cannot list NetworkPolicies".into()),
            "{lines:?}"
        );
        // The offline form says nothing about NetworkPolicies.
        let lines = explain_pod(&admission(), &pod(true), Some("shop"));
        assert!(!lines.iter().any(|l| l.contains("network")), "{lines:?}");
    }
}
