//! The offline side of the CLI (`inject`, `explain`): the same decision and patch as the
//! webhook, applied to pods read from files.

use serde_json::Value;

use crate::admission::Admission;
use crate::decision::{self, Decision, NamespaceInfo, RequestFacts};
use crate::mesh::INJECT_ANNOTATION;
use crate::uninject::uninject_document;
use crate::view::PodView;
use crate::workload::{display_name, pod_template_path};

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

/// Sets `value` at `keys` under `obj`, creating absent (or null) maps on the way; an error
/// names the first key that holds something else than a map (`metadata: "x"`).
fn put(obj: &mut Value, keys: &[&str], value: Value, index: usize) -> Result<(), OfflineError> {
    let mut at = obj;
    for (i, k) in keys.iter().enumerate() {
        if at.is_null() {
            *at = Value::Object(serde_json::Map::new());
        }
        let Some(map) = at.as_object_mut() else {
            return Err(OfflineError::Parse {
                index,
                message: format!("{} is not a map", keys[..i].join(".")),
            });
        };
        if i + 1 == keys.len() {
            map.insert((*k).to_owned(), value);
            return Ok(());
        }
        at = map.entry((*k).to_owned()).or_insert(Value::Null);
    }
    Ok(())
}

/// Sets the string annotation `key` of an object or pod template ([`put`]).
fn annotate(obj: &mut Value, key: &str, value: &str, index: usize) -> Result<(), OfflineError> {
    put(
        obj,
        &["metadata", "annotations", key],
        Value::String(value.to_owned()),
        index,
    )
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
    inject_pod_as(admission, index, pod, namespace, &RequestFacts::POD_CREATE)
}

/// [`inject_pod`] as `facts` say (`RequestFacts::CLI_POD_CREATE`: as Linkerd's CLI).
fn inject_pod_as(
    admission: &Admission,
    index: usize,
    pod: &Value,
    namespace: Option<&str>,
    facts: &RequestFacts<'_>,
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
    // The document's own namespace, else the one given for documents that name none.
    let namespace = view
        .metadata
        .namespace
        .as_ref()
        .map(|n| n.as_str().to_owned())
        .or_else(|| namespace.map(str::to_owned))
        .unwrap_or_else(|| "default".to_owned());
    let ns_obj = admission.namespaces().get(&namespace);
    let limits = admission.namespaces().limits(&namespace);
    let info = NamespaceInfo::of(Some(&namespace), ns_obj.as_deref()).with_limits(&limits);
    match decision::decide(facts, &view, info, admission.config()) {
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

/// The opaque-ports annotation the webhook adds to `obj` (a pod or Service it does not
/// inject), in `namespace` (else the object's own, else `default`).
fn opaque_annotation(
    admission: &Admission,
    obj: &Value,
    namespace: Option<&str>,
) -> Option<String> {
    let text = obj.to_string();
    let view = PodView::parse(&text).ok()?;
    let namespace = obj["metadata"]["namespace"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| namespace.map(str::to_owned))
        .unwrap_or_else(|| "default".to_owned());
    let ns_obj = admission.namespaces().get(&namespace);
    let info = NamespaceInfo::of(Some(&namespace), ns_obj.as_deref());
    crate::values::added_opaque_annotation(&view, info, admission.config())
}

/// What `inject` adds to each pod template before deciding (Linkerd's CLI flags).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InjectFlags {
    /// `--enable-debug-sidecar`.
    pub debug_sidecar: bool,
}

/// How `inject` treats each document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectMode {
    /// Decide as the webhook would (pod and namespace annotations).
    Webhook,
    /// Inject regardless of annotations (`--manual`); `ingress` on the pod is kept.
    Manual,
    /// Remove what injection added (`--uninject`).
    Uninject,
    /// Only annotate (`--annotate`, plain `linkerd inject`): `linkerd.io/inject: enabled` on
    /// pod templates and Namespace objects, for the webhook to act on.
    Annotate,
}

/// One document after `inject`: the new document, a note per pod template not injected, and
/// what makes the command fail (`--manual` and `--annotate` refuse what Linkerd's CLI refuses:
/// host network, another sidecar, a control-plane component without `--manual`...).
pub struct DocumentResult {
    pub doc: Value,
    pub notes: Vec<String>,
    pub errors: Vec<String>,
}

/// Skips that `linkerd inject` reports as errors (the workload cannot be meshed as written);
/// the others (disabled, not annotated) leave the document as it is.
fn refuses(reason: &decision::SkipReason) -> bool {
    use decision::SkipReason as R;
    matches!(
        reason,
        R::HostNetwork
            | R::NoServiceAccountToken
            | R::OtherMesh(_)
            | R::AlreadyInjected
            | R::NameClash(_)
            | R::InvalidOverrides(_)
    )
}

/// `kind/name` of a document, for messages.
pub fn describe(doc: &Value) -> String {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("object");
    let m = &doc["metadata"];
    let name = display_name(m["name"].as_str(), m["generateName"].as_str());
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
    inject_document_with(
        admission,
        index,
        doc,
        namespace,
        mode,
        InjectFlags::default(),
    )
}

/// [`inject_document`] with Linkerd's CLI flags.
pub fn inject_document_with(
    admission: &Admission,
    index: usize,
    doc: &Value,
    namespace: Option<&str>,
    mode: InjectMode,
    flags: InjectFlags,
) -> Result<DocumentResult, OfflineError> {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
    let unchanged = |doc: &Value, notes: Vec<String>| DocumentResult {
        doc: doc.clone(),
        notes,
        errors: Vec::new(),
    };
    if kind == "List" || kind.ends_with("List") && doc.get("items").is_some() {
        let mut out = unchanged(doc, Vec::new());
        if let Some(items) = out.doc.get_mut("items").and_then(Value::as_array_mut) {
            for item in items.iter_mut() {
                let r = inject_document_with(admission, index, item, namespace, mode, flags)?;
                *item = r.doc;
                out.notes.extend(r.notes);
                out.errors.extend(r.errors);
            }
        }
        return Ok(out);
    }
    if mode == InjectMode::Uninject {
        return Ok(unchanged(
            &uninject_document(doc).unwrap_or_else(|| doc.clone()),
            Vec::new(),
        ));
    }
    if mode == InjectMode::Annotate && kind == "Namespace" {
        let mut out = doc.clone();
        annotate(&mut out, INJECT_ANNOTATION, "enabled", index)?;
        return Ok(unchanged(&out, Vec::new()));
    }
    let service = kind == "Service" && doc.get("apiVersion").and_then(Value::as_str) == Some("v1");
    if mode == InjectMode::Webhook && service {
        // As the webhook answers a Service: the opaque-ports annotation it would add.
        let mut out = doc.clone();
        if let Some(v) = opaque_annotation(admission, doc, namespace) {
            annotate(&mut out, crate::mesh::OPAQUE_PORTS_ANNOTATION, &v, index)?;
        }
        return Ok(unchanged(&out, Vec::new()));
    }
    let Some(tpath) = pod_template_path(kind) else {
        return Ok(unchanged(doc, Vec::new()));
    };
    // As `linkerd inject`: what injection added is removed first, so an outdated proxy is
    // replaced (`--manual`) and an injected workload is annotated afresh (`--annotate`).
    // An `ingress` switch is kept through that (the mode of the proxy to write).
    let fresh;
    let doc = match mode {
        InjectMode::Manual | InjectMode::Annotate => {
            let ingress = doc
                .pointer(tpath)
                .and_then(|t| t.pointer("/metadata/annotations"))
                .and_then(|a| a.get(INJECT_ANNOTATION))
                .is_some_and(|v| v == "ingress");
            let mut d = uninject_document(doc).unwrap_or_else(|| doc.clone());
            if ingress && let Some(t) = d.pointer_mut(tpath) {
                annotate(t, INJECT_ANNOTATION, "ingress", index)?;
            }
            fresh = d;
            &fresh
        }
        _ => doc,
    };
    let Some(template) = doc.pointer(tpath) else {
        return Ok(unchanged(
            doc,
            vec![format!("{}: has no pod template", describe(doc))],
        ));
    };
    let ns = doc["metadata"]["namespace"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| namespace.map(str::to_owned));
    let mut pod = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": template.get("metadata").cloned().unwrap_or_else(|| serde_json::json!({})),
        "spec": template.get("spec").cloned().unwrap_or_else(|| serde_json::json!({})),
    });
    let had_ns = pod["metadata"].get("namespace").is_some();
    if let (Some(n), false) = (&ns, had_ns) {
        put(
            &mut pod,
            &["metadata", "namespace"],
            Value::String(n.clone()),
            index,
        )?;
    }
    let mut notes = Vec::new();
    let mut errors = Vec::new();
    let forced = matches!(mode, InjectMode::Manual | InjectMode::Annotate)
        && !matches!(
            pod["metadata"]["annotations"][INJECT_ANNOTATION].as_str(),
            Some("ingress" | "disabled")
        );
    if forced {
        // As `linkerd inject`: every template but one that opts out (`disabled`, which the
        // decision then reports) and keeping `ingress`.
        annotate(&mut pod, INJECT_ANNOTATION, "enabled", index)?;
    }
    if flags.debug_sidecar {
        annotate(&mut pod, crate::mesh::DEBUG_ANNOTATION, "true", index)?;
    }
    let control_plane = pod["metadata"]["labels"]
        .get("linkerd.io/control-plane-component")
        .is_some();
    if mode == InjectMode::Annotate && control_plane {
        errors.push(format!(
            "{}: a Linkerd control-plane component is injected only with --manual",
            describe(doc)
        ));
    }
    let facts = match mode {
        InjectMode::Manual => RequestFacts::CLI_POD_CREATE,
        _ => RequestFacts::MANIFEST_POD_CREATE,
    };
    let r = inject_pod_as(admission, index, &pod, ns.as_deref(), &facts)?;
    if let Some(reason) = &r.skipped {
        if mode != InjectMode::Webhook && refuses(reason) {
            errors.push(format!("failed to inject {}: {reason}", describe(doc)));
        } else {
            notes.push(format!("{}: not injected: {reason}", describe(doc)));
        }
    }
    if mode == InjectMode::Annotate {
        // Only the annotation, on the template (or the pod) that could be injected.
        let mut out = doc.clone();
        if r.skipped.is_none()
            && let Some(t) = out.pointer_mut(tpath)
        {
            annotate(t, INJECT_ANNOTATION, "enabled", index)?;
            if flags.debug_sidecar {
                annotate(t, crate::mesh::DEBUG_ANNOTATION, "true", index)?;
            }
        }
        return Ok(DocumentResult {
            doc: out,
            notes,
            errors,
        });
    }
    let mut new_pod = r.pod;
    // As the webhook answers a pod it does not inject (unless it denies it): the opaque-ports
    // annotation it would add.
    let denied = r
        .skipped
        .as_ref()
        .is_some_and(|s| s.warns() && s.denies(admission.config()));
    if mode == InjectMode::Webhook
        && r.skipped.is_some()
        && !denied
        && let Some(v) = opaque_annotation(admission, &new_pod, ns.as_deref())
    {
        annotate(
            &mut new_pod,
            crate::mesh::OPAQUE_PORTS_ANNOTATION,
            &v,
            index,
        )?;
    }
    if forced
        && mode == InjectMode::Manual
        && let Some(a) = new_pod["metadata"]["annotations"].as_object_mut()
    {
        // The proxy is in the manifest: the switch that forced it is not (as Linkerd prints it).
        a.remove(INJECT_ANNOTATION);
    }
    // A manifest that names no namespace: Linkerd's CLI writes the workload's (empty) one.
    if mode == InjectMode::Manual && ns.is_none() && r.skipped.is_none() {
        put(
            &mut new_pod,
            &["metadata", "labels", crate::mesh::WORKLOAD_NS_LABEL],
            Value::String(String::new()),
            index,
        )?;
    }
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
        let name = doc["metadata"]["name"].as_str().unwrap_or("");
        let owner = crate::values::workload_owner_label(kind, name);
        if let (None, Some((k, v))) = (&r.skipped, owner) {
            put(
                &mut new_pod,
                &["metadata", "labels", k],
                Value::String(v),
                index,
            )?;
        }
        t.insert("metadata".into(), new_pod["metadata"].clone());
        t.insert("spec".into(), new_pod["spec"].clone());
    }
    Ok(DocumentResult {
        doc: out,
        notes,
        errors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_of_the_wrong_shape_is_an_error_not_a_panic() {
        let a = Admission::new(
            std::sync::Arc::new(crate::config::Config::default()),
            crate::namespaces::Namespaces::empty(),
        );
        for doc in [
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": "x"}),
            serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"},
                "spec": {"template": {"metadata": {"annotations": []},
                    "spec": {"containers": [{"name": "a", "image": "b"}]}}}}),
        ] {
            for mode in [
                InjectMode::Annotate,
                InjectMode::Manual,
                InjectMode::Webhook,
            ] {
                let r = inject_document(&a, 0, &doc, Some("shop"), mode);
                if let Ok(r) = r {
                    assert!(r.doc.is_object());
                }
            }
        }
    }
}
