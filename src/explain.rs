//! `explain`: for a pod or the pod template of a workload, the decision, the rule that made it,
//! every effective value (from the settings registry) with where it came from, the warnings
//! `POST /warn` gives, and for a running pod whether its proxy is current.

use serde_json::Value;

use crate::admission::Admission;
use crate::config::Config;
use crate::containers::proxy_image;
use crate::decision::{self, Decision, Mode, NamespaceInfo, RequestFacts};
use crate::mesh::{INJECT_ANNOTATION, SETTINGS, Setting};
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
        return Ok(explain_pod(admission, doc, Some(&ns_name), false));
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
            explain_pod(admission, &pod, Some(&ns_name), false)
                .into_iter()
                .filter(|l| !l.starts_with("  warning:"))
                .map(|l| format!("  {l}")),
        );
    }
    let ns_obj = admission.namespaces().get(&ns_name);
    // A Namespace is not in a namespace.
    let info = if kind == "Namespace" {
        NamespaceInfo::None
    } else {
        NamespaceInfo::of(Some(&ns_name), ns_obj.as_deref())
    };
    let warnings = crate::warnings::check(kind, doc, None, info, admission.config());
    if warnings.is_empty() {
        lines.push("  no mistakes found".to_owned());
    }
    lines.extend(warnings.into_iter().map(|w| format!("  warning: {w}")));
    Ok(lines)
}

/// The full explanation of one pod: decision, the rule that made it, every effective value
/// with where it came from, the warnings, and (for a running pod) whether its proxy is stale.
pub fn explain_pod(
    admission: &Admission,
    pod: &Value,
    namespace: Option<&str>,
    running: bool,
) -> Vec<String> {
    let meta = &pod["metadata"];
    let name = display_name(meta["name"].as_str(), meta["generateName"].as_str());
    let ns_name = namespace
        .or(meta["namespace"].as_str())
        .unwrap_or("default")
        .to_owned();
    let text = pod.to_string();
    let Ok(view) = PodView::parse(&text) else {
        return vec![format!("pod/{name}: cannot be read as a pod")];
    };
    let ns_obj = admission.namespaces().get(&ns_name);
    let ns_ann = ns_obj
        .as_ref()
        .and_then(|o| o.metadata.annotations.as_ref());
    let info = NamespaceInfo::of(Some(&ns_name), ns_obj.as_deref());
    let mut lines = Vec::new();
    // A running pod is judged as if it were created now (minus the proxy it may already have).
    let fresh = strip_injected(pod);
    let fresh_text = fresh.to_string();
    let fresh_view = PodView::parse(&fresh_text).unwrap_or_default();
    let decided_view = if running { &fresh_view } else { &view };
    match decision::decide(
        &RequestFacts::POD_CREATE,
        decided_view,
        info,
        admission.config(),
    ) {
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
            lines.push("  values:".to_owned());
            let builtin_config = Config::default();
            let builtin = ProxyValues::from_config(&builtin_config, Mode::Enabled);
            let rows: Vec<&Setting> = SETTINGS.iter().filter(|s| s.slot.is_some()).collect();
            for group in rows.chunk_by(|a, b| a.label == b.label) {
                let value = shown(group, &plan.proxy);
                let keys = || group.iter().flat_map(|s| s.annotations.iter());
                let pod_key = keys().find(|k| decided_view.has_annotation(k));
                let ns_key = keys().find(|k| ns_ann.is_some_and(|a| a.contains_key(**k)));
                let source = match (pod_key, ns_key) {
                    (Some(k), _) => format!("pod annotation {k}"),
                    (None, Some(k)) => format!("namespace annotation {k}"),
                    _ if shown(group, &builtin) == value => "default".to_owned(),
                    _ => "config file".to_owned(),
                };
                let label = group[0].label;
                lines.push(format!("    {label:<27} {value:<45} ({source})"));
            }
            if running {
                let want = format!("{}:{}", plan.proxy.proxy_image, plan.proxy.proxy_version);
                lines.push(match proxy_image(pod) {
                    None => "  running pod: has NO proxy; restart it (or its owner) to get one".to_owned(),
                    Some(img) if img == want => format!("  running pod: proxy {img} is current"),
                    Some(img) => format!("  running pod: proxy {img} is stale: a new pod would get {want}; restart it"),
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
    lines
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
