//! The offline side of the CLI (`inject`, `explain`): the same decision and patch as the
//! webhook, applied to pods read from files.

use serde_json::Value;

use crate::admission::Admission;
use crate::decision::{self, Decision, NamespaceInfo, RequestFacts};
use crate::view::PodView;

/// What happened to one input document.
#[derive(Debug)]
pub struct Injected {
    /// The pod after the patch (unchanged when skipped).
    pub pod: Value,
    /// `None` when injected; the reason otherwise.
    pub skipped: Option<decision::SkipReason>,
    /// The JSON patch the webhook would return (empty array when skipped).
    pub patch: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error("document {index} is not valid YAML or JSON: {message}")]
    Parse { index: usize, message: String },
    #[error("document {index} is a {kind}; give Pod objects (pods only are injected)")]
    NotAPod { index: usize, kind: String },
    #[error("the patch does not apply to document {index}: {message}")]
    Apply { index: usize, message: String },
}

/// Reads every YAML/JSON document in `text` as a JSON value.
pub fn read_documents(text: &str) -> Result<Vec<Value>, OfflineError> {
    let mut docs = Vec::new();
    for (index, doc) in serde_saphyr::read::<_, Value>(&mut text.as_bytes()).enumerate() {
        let v = doc.map_err(|e| OfflineError::Parse {
            index,
            message: e.to_string(),
        })?;
        if v.is_null() {
            continue;
        }
        docs.push(v);
    }
    Ok(docs)
}

/// Writes `value` as YAML, as every command prints it: block style; strings that need quotes
/// in double quotes; multi-line strings as literal blocks (`|`); long lines kept whole.
pub fn to_yaml<T: serde::Serialize>(value: &T) -> Result<String, serde_saphyr::SerializeError> {
    let options = serde_saphyr::ser_options! { folded_wrap_chars: usize::MAX };
    serde_saphyr::to_string_with_options(value, options)
}

/// Decides and patches one pod, exactly as the webhook would on CREATE.
pub fn inject_pod(
    admission: &Admission,
    index: usize,
    pod: &Value,
    namespace: Option<&str>,
) -> Result<Injected, OfflineError> {
    let kind = pod.get("kind").and_then(Value::as_str).unwrap_or("Pod");
    let api_version = pod
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("v1");
    if kind != "Pod" || api_version != "v1" {
        return Err(OfflineError::NotAPod {
            index,
            kind: format!("{api_version} {kind}"),
        });
    }
    let text = pod.to_string();
    let view = PodView::parse(&text).map_err(|e| OfflineError::Parse {
        index,
        message: e.to_string(),
    })?;
    let namespace = namespace
        .map(str::to_owned)
        .or_else(|| {
            view.metadata
                .namespace
                .as_ref()
                .map(|n| n.as_str().to_owned())
        })
        .unwrap_or_else(|| "default".to_owned());
    let ns_obj = admission.namespaces().get(&namespace);
    let info = crate::namespaces::info(Some(&namespace), ns_obj.as_deref());
    match decision::decide(&RequestFacts::POD_CREATE, &view, info, admission.config()) {
        Decision::Inject(plan) => {
            let mut bytes = Vec::new();
            admission.write_patch(&view, &plan, &mut bytes);
            let patch: json_patch::Patch =
                serde_json::from_slice(&bytes).map_err(|e| OfflineError::Apply {
                    index,
                    message: e.to_string(),
                })?;
            let mut out = pod.clone();
            json_patch::patch(&mut out, &patch).map_err(|e| OfflineError::Apply {
                index,
                message: e.to_string(),
            })?;
            let patch = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            Ok(Injected {
                pod: out,
                skipped: None,
                patch,
            })
        }
        Decision::Skip(reason) => Ok(Injected {
            pod: pod.clone(),
            skipped: Some(reason),
            patch: Value::Array(vec![]),
        }),
    }
}

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
        crate::namespaces::info(Some(&ns_name), ns_obj.as_deref())
    };
    let warnings = crate::warnings::check(kind, doc, None, info, admission.config());
    if warnings.is_empty() {
        lines.push("  no mistakes found".to_owned());
    }
    lines.extend(warnings.into_iter().map(|w| format!("  warning: {w}")));
    Ok(lines)
}

pub use crate::warnings::pod_template_path;

/// How `inject` treats each document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectMode {
    /// Decide as the webhook would (pod and namespace annotations).
    Webhook,
    /// Inject regardless of annotations (`--manual`); `ingress` on the pod is kept.
    Manual,
    /// Remove what injection added (`--uninject`).
    Uninject,
}

/// One document after `inject`: the new document, and a note per pod template not injected.
pub struct DocumentResult {
    pub doc: Value,
    pub notes: Vec<String>,
}

fn describe(doc: &Value) -> String {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("object");
    let m = &doc["metadata"];
    let name = m["name"]
        .as_str()
        .or(m["generateName"].as_str())
        .unwrap_or("(unnamed)");
    format!("{}/{name}", kind.to_ascii_lowercase())
}

/// Injects (or un-injects) a document: a Pod, the pod template of a workload, every item of a
/// `List`; any other object passes through unchanged.
pub fn inject_document(
    admission: &Admission,
    index: usize,
    doc: &Value,
    namespace: Option<&str>,
    mode: InjectMode,
) -> Result<DocumentResult, OfflineError> {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind == "List" || kind.ends_with("List") && doc.get("items").is_some() {
        let mut out = doc.clone();
        let mut notes = Vec::new();
        if let Some(items) = out.get_mut("items").and_then(Value::as_array_mut) {
            for item in items.iter_mut() {
                let r = inject_document(admission, index, item, namespace, mode)?;
                *item = r.doc;
                notes.extend(r.notes);
            }
        }
        return Ok(DocumentResult { doc: out, notes });
    }
    let Some(tpath) = pod_template_path(kind) else {
        return Ok(DocumentResult {
            doc: doc.clone(),
            notes: Vec::new(),
        });
    };
    let Some(template) = doc.pointer(tpath) else {
        return Ok(DocumentResult {
            doc: doc.clone(),
            notes: vec![format!("{}: has no pod template", describe(doc))],
        });
    };
    let ns = namespace
        .map(str::to_owned)
        .or_else(|| doc["metadata"]["namespace"].as_str().map(str::to_owned));
    let mut pod = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": template.get("metadata").cloned().unwrap_or_else(|| serde_json::json!({})),
        "spec": template.get("spec").cloned().unwrap_or_else(|| serde_json::json!({})),
    });
    let had_ns = pod["metadata"].get("namespace").is_some();
    if let (Some(n), false) = (&ns, had_ns) {
        pod["metadata"]["namespace"] = Value::String(n.clone());
    }
    let mut notes = Vec::new();
    let new_pod = match mode {
        InjectMode::Uninject => uninject_pod(&pod),
        InjectMode::Webhook | InjectMode::Manual => {
            if mode == InjectMode::Manual {
                let current = pod["metadata"]["annotations"][decision::INJECT_ANNOTATION].as_str();
                if current != Some("ingress") {
                    pod["metadata"]["annotations"][decision::INJECT_ANNOTATION] =
                        Value::String("enabled".into());
                }
            }
            let r = inject_pod(admission, index, &pod, ns.as_deref())?;
            if let Some(reason) = &r.skipped {
                notes.push(format!("{}: not injected: {reason}", describe(doc)));
            }
            r.pod
        }
    };
    let mut new_pod = new_pod;
    // The namespace was only borrowed for the decision: the document keeps what it had.
    if !had_ns && let Some(m) = new_pod["metadata"].as_object_mut() {
        m.remove("namespace");
    }
    let mut out = doc.clone();
    if tpath.is_empty() {
        if let (Some(o), Some(p)) = (out.as_object_mut(), new_pod.as_object()) {
            o.insert(
                "metadata".into(),
                p.get("metadata").cloned().unwrap_or(Value::Null),
            );
            o.insert("spec".into(), p.get("spec").cloned().unwrap_or(Value::Null));
        }
    } else if let Some(t) = out.pointer_mut(tpath).and_then(Value::as_object_mut) {
        t.insert("metadata".into(), new_pod["metadata"].clone());
        t.insert("spec".into(), new_pod["spec"].clone());
    }
    Ok(DocumentResult { doc: out, notes })
}

/// The image of a pod's `linkerd-proxy` container (in `containers` or, as a native sidecar,
/// in `initContainers`).
pub fn proxy_image(pod: &Value) -> Option<&str> {
    ["containers", "initContainers"].iter().find_map(|l| {
        pod["spec"][l]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == decision::PROXY_CONTAINER))
            .and_then(|c| c["image"].as_str())
    })
}

/// What injection adds, removed: the proxy, init and debug containers, the injector's volumes,
/// its status annotations and labels. The user's own fields are left as they are.
pub fn uninject_pod(pod: &Value) -> Value {
    use crate::decision::{DEBUG_CONTAINER, INIT_CONTAINER, PROXY_CONTAINER};
    let mut out = pod.clone();
    for list in ["/spec/containers", "/spec/initContainers"] {
        if let Some(items) = out.pointer_mut(list).and_then(Value::as_array_mut) {
            items.retain(|c| {
                !matches!(
                    c["name"].as_str(),
                    Some(PROXY_CONTAINER | INIT_CONTAINER | DEBUG_CONTAINER)
                )
            });
        }
    }
    let injected_volumes = [
        crate::patch::END_ENTITY_VOLUME,
        crate::patch::TOKEN_VOLUME,
        crate::patch::XTABLES_VOLUME,
    ];
    if let Some(items) = out
        .pointer_mut("/spec/volumes")
        .and_then(Value::as_array_mut)
    {
        items.retain(|v| {
            !v["name"]
                .as_str()
                .is_some_and(|n| injected_volumes.contains(&n))
        });
    }
    for (path, keys) in [
        (
            "/metadata/annotations",
            &[
                "linkerd.io/created-by",
                "linkerd.io/proxy-version",
                "linkerd.io/identity-mode",
                "linkerd.io/trust-root-sha256",
            ][..],
        ),
        (
            "/metadata/labels",
            &["linkerd.io/control-plane-ns", "linkerd.io/workload-ns"][..],
        ),
    ] {
        if let Some(m) = out.pointer_mut(path).and_then(Value::as_object_mut) {
            for k in keys {
                m.remove(*k);
            }
        }
    }
    // Arrays and maps that only held what injection added go away with it.
    for (parent, key) in [
        ("/spec", "initContainers"),
        ("/spec", "volumes"),
        ("/metadata", "annotations"),
        ("/metadata", "labels"),
    ] {
        let empty = match out.pointer(parent).and_then(|p| p.get(key)) {
            Some(Value::Array(a)) => a.is_empty(),
            Some(Value::Object(o)) => o.is_empty(),
            _ => false,
        };
        if empty && let Some(p) = out.pointer_mut(parent).and_then(Value::as_object_mut) {
            p.remove(key);
        }
    }
    out
}

type Field = (
    &'static str,
    &'static [&'static str],
    fn(&decision::ProxyValues<'_>) -> String,
);

fn opt(v: &Option<std::borrow::Cow<'_, str>>) -> String {
    v.as_deref().unwrap_or("(none)").to_owned()
}

/// The effective values `explain` shows, with the annotation keys that can set them.
const FIELDS: &[Field] = &[
    (
        "proxy image",
        &[
            "config.linkerd.io/proxy-image",
            "config.linkerd.io/proxy-version",
        ],
        |v| format!("{}:{}", v.proxy_image, v.proxy_version),
    ),
    (
        "init image",
        &[
            "config.linkerd.io/init-image",
            "config.linkerd.io/init-image-version",
        ],
        |v| format!("{}:{}", v.init_image, v.init_version),
    ),
    (
        "image pull policy",
        &["config.linkerd.io/image-pull-policy"],
        |v| v.pull_policy.to_string(),
    ),
    (
        "proxy cpu request",
        &["config.linkerd.io/proxy-cpu-request"],
        |v| opt(&v.cpu_request),
    ),
    (
        "proxy cpu limit",
        &["config.linkerd.io/proxy-cpu-limit"],
        |v| opt(&v.cpu_limit),
    ),
    (
        "proxy memory request",
        &["config.linkerd.io/proxy-memory-request"],
        |v| opt(&v.memory_request),
    ),
    (
        "proxy memory limit",
        &["config.linkerd.io/proxy-memory-limit"],
        |v| opt(&v.memory_limit),
    ),
    (
        "proxy log level",
        &["config.linkerd.io/proxy-log-level"],
        |v| v.log_level.to_string(),
    ),
    (
        "proxy log format",
        &["config.linkerd.io/proxy-log-format"],
        |v| v.log_format.to_string(),
    ),
    ("proxy uid", &["config.linkerd.io/proxy-uid"], |v| {
        v.uid.to_string()
    }),
    (
        "ports in/out/admin/control",
        &[
            "config.linkerd.io/inbound-port",
            "config.linkerd.io/outbound-port",
            "config.linkerd.io/admin-port",
            "config.linkerd.io/control-port",
            "config.linkerd.io/proxy-inbound-port",
            "config.linkerd.io/proxy-outbound-port",
            "config.linkerd.io/proxy-admin-port",
            "config.linkerd.io/proxy-control-port",
        ],
        |v| {
            format!(
                "{}/{}/{}/{}",
                v.inbound_port, v.outbound_port, v.admin_port, v.control_port
            )
        },
    ),
    (
        "skip inbound ports",
        &["config.linkerd.io/skip-inbound-ports"],
        |v| v.skip_inbound_ports.clone(),
    ),
    (
        "skip outbound ports",
        &["config.linkerd.io/skip-outbound-ports"],
        |v| v.skip_outbound_ports.clone(),
    ),
    ("skip subnets", &["config.linkerd.io/skip-subnets"], |v| {
        v.skip_subnets.to_string()
    }),
    ("proxy await", &["config.linkerd.io/proxy-await"], |v| {
        v.await_ready.to_string()
    }),
    (
        "native sidecar",
        &["config.alpha.linkerd.io/proxy-enable-native-sidecar"],
        |v| v.native_sidecar.to_string(),
    ),
    (
        "debug sidecar",
        &["config.linkerd.io/enable-debug-sidecar"],
        |v| v.debug_sidecar.to_string(),
    ),
    (
        "shutdown grace period",
        &["config.linkerd.io/shutdown-grace-period"],
        |v| opt(&v.shutdown_grace_period),
    ),
    (
        "default inbound policy",
        &["config.linkerd.io/default-inbound-policy"],
        |v| v.default_inbound_policy.to_string(),
    ),
];

/// The full explanation of one pod: decision, the rule that made it, every effective value
/// with where it came from, the warnings, and (for a running pod) whether its proxy is stale.
pub fn explain_pod(
    admission: &Admission,
    pod: &Value,
    namespace: Option<&str>,
    running: bool,
) -> Vec<String> {
    let meta = &pod["metadata"];
    let name = meta["name"]
        .as_str()
        .or(meta["generateName"].as_str())
        .unwrap_or("(unnamed)");
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
    let info = crate::namespaces::info(Some(&ns_name), ns_obj.as_deref());
    let mut lines = Vec::new();
    // A running pod is judged as if it were created now (minus the proxy it may already have).
    let fresh = uninject_pod(pod);
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
                    decision::INJECT_ANNOTATION,
                    plan.mode.as_str()
                ),
                decision::Source::Namespace => format!(
                    "namespace {ns_name}'s {}: {} (the pod does not set it)",
                    decision::INJECT_ANNOTATION,
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
            let builtin = decision::values_without_overrides(
                &crate::config::Config::default(),
                decision::Mode::Enabled,
            );
            for (label, keys, get) in FIELDS {
                let value = get(&plan.proxy);
                let pod_key = keys.iter().find(|k| decided_view.has_annotation(k));
                let ns_key = keys
                    .iter()
                    .find(|k| ns_ann.is_some_and(|a| a.contains_key(**k)));
                let source = match (pod_key, ns_key) {
                    (Some(k), _) => format!("pod annotation {k}"),
                    (None, Some(k)) => format!("namespace annotation {k}"),
                    _ if builtin.as_ref().map(|b| get(b)) == Some(value.clone()) => {
                        "default".to_owned()
                    }
                    _ => "config file".to_owned(),
                };
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
