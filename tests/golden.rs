//! Golden fixtures: the project's spec. Each directory under tests/fixtures/ holds an input pod
//! (pod.yaml), optionally its namespace (namespace.yaml) and an injector config (config.yaml),
//! what to expect (case.yaml), and for injected pods the expected patched pod (expected.yaml).
//!
//! For every case the AdmissionReview goes through `Admission::review`; the returned patch is
//! applied with the json-patch crate and compared with expected.yaml, and with the offline
//! `inject` result. Set UPDATE_GOLDEN=1 to (re)write expected.yaml files, then review the diff.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use proxy_injector::admission::{Admission, Outcome};
use proxy_injector::config::Config;
use proxy_injector::namespaces::Namespaces;
use proxy_injector::offline;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    description: String,
    expect: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    warning: Option<String>,
    #[serde(default)]
    operation: Option<String>,
    #[serde(default)]
    kind: Option<Value>,
}

fn read_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn admission_for(dir: &Path) -> Admission {
    let config_path = dir.join("config.yaml");
    let config = Config::load(config_path.exists().then_some(config_path.as_path()))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let ns_path = dir.join("namespace.yaml");
    let ns = if ns_path.exists() {
        Namespaces::from_file(&ns_path).unwrap()
    } else {
        Namespaces::empty()
    };
    Admission::new(Arc::new(config), ns)
}

fn review_for(pod: &Value, case: &Case, uid: &str) -> Value {
    let namespace = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": case.kind.clone().unwrap_or(json!({"group": "", "version": "v1", "kind": "Pod"})),
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": case.operation.clone().unwrap_or_else(|| "CREATE".into()),
            "namespace": namespace,
            "userInfo": {"username": "golden"},
            "object": pod,
            "dryRun": false
        }
    })
}

fn decode_patch(resp: &Value) -> Option<json_patch::Patch> {
    let b64 = resp["patch"].as_str()?;
    assert_eq!(resp["patchType"], "JSONPatch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("patch is base64");
    Some(serde_json::from_slice(&bytes).expect("patch is an RFC 6902 patch"))
}

fn case_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("case.yaml").exists())
        .collect();
    dirs.sort();
    dirs
}

fn run_case(dir: &Path, update: bool) -> Result<(), String> {
    let case: Case = serde_json::from_value(read_yaml(&dir.join("case.yaml")))
        .map_err(|e| format!("case.yaml: {e}"))?;
    let pod = read_yaml(&dir.join("pod.yaml"));
    let admission = admission_for(dir);
    let uid = format!("uid-{}", dir.file_name().unwrap().to_string_lossy());
    let body = serde_json::to_vec(&review_for(&pod, &case, &uid)).unwrap();
    let answer = admission
        .review(&body)
        .map_err(|e| format!("review failed: {e}"))?;
    let out: Value =
        serde_json::from_slice(&answer.body).map_err(|e| format!("response is not JSON: {e}"))?;
    let resp = &out["response"];
    if out["apiVersion"] != "admission.k8s.io/v1" || out["kind"] != "AdmissionReview" {
        return Err(format!("response envelope wrong: {out}"));
    }
    if resp["uid"] != uid.as_str() {
        return Err(format!("uid not echoed: {}", resp["uid"]));
    }
    let reason_text = match &answer.outcome {
        Outcome::Injected { .. } => String::new(),
        Outcome::Skipped(r) | Outcome::Denied(r) => r.to_string(),
    };
    let warnings: Vec<String> = resp["warnings"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|w| w.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if let Some(want) = &case.reason {
        let text = format!(
            "{reason_text} {}",
            resp["status"]["message"].as_str().unwrap_or("")
        );
        if !text.contains(want.as_str()) {
            return Err(format!("reason {reason_text:?} does not contain {want:?}"));
        }
    }
    if let Some(want) = &case.warning
        && !warnings.iter().any(|w| w.contains(want.as_str()))
    {
        return Err(format!("warnings {warnings:?} do not contain {want:?}"));
    }
    match case.expect.as_str() {
        "skipped" => {
            if resp["allowed"] != true || !resp["patch"].is_null() {
                return Err(format!("expected allowed without patch, got {resp}"));
            }
            if !matches!(answer.outcome, Outcome::Skipped(_)) {
                return Err(format!("expected a skip, got {:?}", answer.outcome));
            }
        }
        "denied" => {
            if resp["allowed"] != false || !resp["patch"].is_null() {
                return Err(format!("expected a denial, got {resp}"));
            }
            if resp["status"]["message"].as_str().unwrap_or("").is_empty() {
                return Err("a denial must carry a message".into());
            }
        }
        "injected" => {
            if resp["allowed"] != true {
                return Err(format!("expected allowed, got {resp}"));
            }
            let patch = decode_patch(resp).ok_or("expected a patch, got none")?;
            let mut patched = pod.clone();
            json_patch::patch(&mut patched, &patch)
                .map_err(|e| format!("patch does not apply: {e}"))?;
            // The user's containers, volumes and annotations are never changed or removed.
            check_preserved(&pod, &patched)?;
            let expected_path = dir.join("expected.yaml");
            if update {
                std::fs::write(
                    &expected_path,
                    proxy_injector::offline::to_yaml(&patched).unwrap(),
                )
                .unwrap();
            }
            let expected = read_yaml(&expected_path);
            if patched != expected {
                return Err(format!(
                    "patched pod differs from expected.yaml\n--- got\n{}",
                    proxy_injector::offline::to_yaml(&patched).unwrap()
                ));
            }
            // The offline `inject` command gives exactly the same pod.
            let off = offline::inject_pod(&admission, 0, &pod, None).map_err(|e| e.to_string())?;
            if off.pod != expected {
                return Err("offline inject differs from the webhook's result".into());
            }
            // Idempotence: a second pass over the injected pod changes nothing.
            let again = serde_json::to_vec(&review_for(&patched, &case, "again")).unwrap();
            let again = admission.review(&again).map_err(|e| e.to_string())?;
            let again: Value = serde_json::from_slice(&again.body).unwrap();
            if !again["response"]["patch"].is_null() {
                return Err("a second pass over the injected pod produced a patch".into());
            }
        }
        other => return Err(format!("unknown expect {other:?}")),
    }
    let _ = &case.description;
    Ok(())
}

/// Every original container, init container, volume, annotation and label is still there, unchanged.
fn check_preserved(before: &Value, after: &Value) -> Result<(), String> {
    for path in ["/spec/containers", "/spec/initContainers", "/spec/volumes"] {
        if let Some(items) = before.pointer(path).and_then(Value::as_array) {
            let now = after
                .pointer(path)
                .and_then(Value::as_array)
                .ok_or(format!("{path} disappeared"))?;
            for item in items {
                if !now.contains(item) {
                    return Err(format!("{path} item changed or removed: {item}"));
                }
            }
        }
    }
    for path in ["/metadata/annotations", "/metadata/labels"] {
        if let Some(map) = before.pointer(path).and_then(Value::as_object) {
            for (k, v) in map {
                if after.pointer(path).and_then(|m| m.get(k)) != Some(v) {
                    return Err(format!("{path} entry {k} changed or removed"));
                }
            }
        }
    }
    Ok(())
}

#[test]
fn golden_fixtures() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let dirs = case_dirs();
    assert!(
        dirs.len() >= 25,
        "expected at least 25 golden cases, found {}",
        dirs.len()
    );
    let mut failures = Vec::new();
    for dir in &dirs {
        if let Err(e) = run_case(dir, update) {
            failures.push(format!(
                "{}: {e}",
                dir.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} golden cases failed:\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n\n")
    );
}
