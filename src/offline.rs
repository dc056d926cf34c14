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
    use serde::Deserialize;
    let mut docs = Vec::new();
    for (index, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let v = Value::deserialize(doc).map_err(|e| OfflineError::Parse {
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
    let info = match &ns_obj {
        Some(o) => NamespaceInfo::Known {
            name: &namespace,
            annotations: o.metadata.annotations.as_ref(),
        },
        None => NamespaceInfo::NotCached { name: &namespace },
    };
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

/// `explain` for one document: the decision (for pods), and the same warnings `POST /warn` gives.
pub fn explain(
    admission: &Admission,
    index: usize,
    doc: &Value,
    namespace: Option<&str>,
) -> Result<Vec<String>, OfflineError> {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("Pod");
    let meta = &doc["metadata"];
    let name = meta["name"]
        .as_str()
        .or(meta["generateName"].as_str())
        .unwrap_or("(unnamed)");
    let mut lines = Vec::new();
    if kind == "Pod" {
        let r = inject_pod(admission, index, doc, namespace)?;
        lines.push(match &r.skipped {
            None => format!("pod/{name}: injected"),
            Some(reason) => format!("pod/{name}: not injected: {reason}"),
        });
    } else {
        lines.push(format!("{}/{name}:", kind.to_ascii_lowercase()));
    }
    let ns_name = namespace
        .map(str::to_owned)
        .or_else(|| meta["namespace"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "default".to_owned());
    let ns_obj = admission.namespaces().get(&ns_name);
    let info = match (&ns_obj, kind) {
        (_, "Namespace") => NamespaceInfo::None,
        (Some(o), _) => NamespaceInfo::Known {
            name: &ns_name,
            annotations: o.metadata.annotations.as_ref(),
        },
        (None, _) => NamespaceInfo::NotCached { name: &ns_name },
    };
    let warnings = crate::warnings::check(kind, doc, None, info, admission.config());
    if warnings.is_empty() && kind != "Pod" {
        lines.push("  no mistakes found".to_owned());
    }
    lines.extend(warnings.into_iter().map(|w| format!("  warning: {w}")));
    Ok(lines)
}
