//! Taking injection off again, two ways:
//!
//! - [`strip_injected`]: the pod as it was before this injector's patch (its containers,
//!   volumes, status annotations and labels gone; the user's `linkerd.io/inject` kept), so
//!   `explain` and `check` can decide a running pod as if it were created now;
//! - [`uninject_document`]: `inject --uninject`, which does what `linkerd uninject` does.
//!   Linkerd removes `linkerd-proxy` (from containers and init containers), `linkerd-init`
//!   (from init containers), the three volumes, and every `linkerd.io*` annotation and label of
//!   the pod template and of the workload itself, except `linkerd.io/inject: disabled`; on a
//!   Namespace or a Service only those annotations and labels. Objects labelled
//!   `linkerd.io/control-plane-component` keep their metadata (Linkerd leaves the control
//!   plane's alone), and `config.linkerd.io/*` annotations stay (they are not `linkerd.io*`).

use serde_json::Value;

use crate::mesh::{
    CONTAINERS, INIT_CONTAINER, INJECT_ANNOTATION, PROXY_CONTAINER, STATUS_ANNOTATIONS,
    STATUS_LABELS, VALIDATOR_CONTAINER, VOLUMES,
};
use crate::workload::pod_template_path;

/// What this injector's patch added, removed: the proxy, init and debug containers, the
/// volumes, the status annotations and labels. The user's own fields are left as they are.
pub fn strip_injected(pod: &Value) -> Value {
    let mut out = pod.clone();
    for list in ["/spec/containers", "/spec/initContainers"] {
        retain_named(&mut out, list, |n| !CONTAINERS.contains(&n));
    }
    retain_named(&mut out, "/spec/volumes", |n| !VOLUMES.contains(&n));
    for (path, keys) in [
        ("/metadata/annotations", &STATUS_ANNOTATIONS[..]),
        ("/metadata/labels", &STATUS_LABELS[..]),
    ] {
        if let Some(m) = out.pointer_mut(path).and_then(Value::as_object_mut) {
            for k in keys {
                m.remove(*k);
            }
        }
    }
    drop_empty(&mut out);
    out
}

/// The label that marks Linkerd's own control plane, whose metadata uninject leaves alone.
const CONTROL_PLANE_COMPONENT_LABEL: &str = "linkerd.io/control-plane-component";

/// The prefix of the keys uninject removes (a plain prefix, as Linkerd checks it).
const LINKERD_PREFIX: &str = "linkerd.io";

/// `inject --uninject` on one document (not a `List`): a Namespace or Service loses its
/// `linkerd.io*` annotations and labels; a Pod or workload loses the proxy and those keys
/// (see the module's documentation). Returns `None` for an object uninject does not change.
pub fn uninject_document(doc: &Value) -> Option<Value> {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
    let mut out = doc.clone();
    if kind == "Namespace" || kind == "Service" {
        uninject_meta(&mut out);
        return Some(out);
    }
    let tpath = pod_template_path(kind)?;
    let template = out.pointer_mut(tpath)?;
    if template.get("spec").is_none_or(Value::is_null) {
        return None;
    }
    retain_named(template, "/spec/initContainers", |n| {
        n != INIT_CONTAINER && n != PROXY_CONTAINER && n != VALIDATOR_CONTAINER
    });
    retain_named(template, "/spec/containers", |n| n != PROXY_CONTAINER);
    retain_named(template, "/spec/volumes", |n| !VOLUMES.contains(&n));
    uninject_meta(template);
    drop_empty(template);
    if !tpath.is_empty() {
        uninject_meta(&mut out);
    }
    Some(out)
}

/// Removes the `linkerd.io*` annotations (but `linkerd.io/inject: disabled`) and labels of
/// `obj`'s metadata, unless it is a control plane component.
fn uninject_meta(obj: &mut Value) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let control_plane = meta
        .get("labels")
        .and_then(Value::as_object)
        .is_some_and(|l| l.contains_key(CONTROL_PLANE_COMPONENT_LABEL));
    if control_plane {
        return;
    }
    if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
        a.retain(|k, v| {
            !k.starts_with(LINKERD_PREFIX) || (k == INJECT_ANNOTATION && v == "disabled")
        });
    }
    if let Some(l) = meta.get_mut("labels").and_then(Value::as_object_mut) {
        l.retain(|k, _| !k.starts_with(LINKERD_PREFIX));
    }
    for key in ["annotations", "labels"] {
        if meta
            .get(key)
            .and_then(Value::as_object)
            .is_some_and(serde_json::Map::is_empty)
        {
            meta.remove(key);
        }
    }
}

/// Keeps the items of the array at `path` whose `name` passes `keep` (unnamed items stay).
fn retain_named(obj: &mut Value, path: &str, keep: impl Fn(&str) -> bool) {
    if let Some(items) = obj.pointer_mut(path).and_then(Value::as_array_mut) {
        items.retain(|c| c["name"].as_str().is_none_or(&keep));
    }
}

/// Arrays and maps that only held what injection added go away with it.
fn drop_empty(out: &mut Value) {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn namespace_loses_its_inject_annotation_unless_disabled() {
        let ns = json!({"kind": "Namespace", "metadata": {"name": "shop",
            "annotations": {"linkerd.io/inject": "enabled", "config.linkerd.io/proxy-cpu-request": "1", "team": "a"}}});
        let out = uninject_document(&ns).unwrap();
        assert_eq!(
            out["metadata"]["annotations"],
            json!({"config.linkerd.io/proxy-cpu-request": "1", "team": "a"})
        );
        let ns = json!({"kind": "Namespace", "metadata": {"name": "shop",
            "annotations": {"linkerd.io/inject": "disabled"}}});
        assert_eq!(uninject_document(&ns).unwrap(), ns);
        let ns = json!({"kind": "Namespace", "metadata": {"name": "shop",
            "annotations": {"linkerd.io/inject": "enabled"}}});
        assert_eq!(
            uninject_document(&ns).unwrap(),
            json!({"kind": "Namespace", "metadata": {"name": "shop"}})
        );
    }

    #[test]
    fn control_plane_metadata_is_kept() {
        let pod = json!({"kind": "Pod", "metadata": {"annotations": {"linkerd.io/created-by": "x"},
            "labels": {"linkerd.io/control-plane-component": "identity"}},
            "spec": {"containers": [{"name": "linkerd-proxy"}, {"name": "identity"}]}});
        let out = uninject_document(&pod).unwrap();
        assert_eq!(out["metadata"], pod["metadata"]);
        assert_eq!(out["spec"]["containers"], json!([{"name": "identity"}]));
    }

    #[test]
    fn objects_without_a_pod_template_are_not_changed() {
        assert!(uninject_document(&json!({"kind": "ConfigMap", "metadata": {}})).is_none());
        assert!(uninject_document(&json!({"kind": "Deployment", "spec": {}})).is_none());
    }
}
