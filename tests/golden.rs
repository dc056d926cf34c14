//! Golden fixtures: the project's spec. Each directory under tests/fixtures/ holds an input pod
//! (pod.yaml), optionally its namespace (namespace.yaml), an injector config (config.yaml,
//! with the trust anchors file it names) and Linkerd chart values over it (values.yaml), what to expect (case.yaml), and for injected pods the
//! expected patched pod (expected.yaml). `expect: annotated` is an object not injected that
//! gets only the opaque-ports annotation (a skipped pod, a Service: `kind:` in case.yaml),
//! compared with expected.yaml too.
//!
//! Each directory is its own test, named after it (`cargo test --test golden 17-escaped-keys`
//! runs one): the AdmissionReview goes through `Admission::review`; the returned patch is
//! applied with the json-patch crate and compared with expected.yaml, and with the offline
//! `inject` result. A file in a fixture directory that the case does not read (an expected.yaml
//! for a pod that is not injected, an unknown name) fails the case, and so does a directory
//! without case.yaml or a stray file in tests/fixtures/ (test `fixtures-root-holds-only-cases`).
//!
//! A case with `command: inject --manual`, `inject --uninject`, `inject --annotate` or `inject
//! --namespaces` (the webhook's handler offline, with the case's namespace.yaml) runs that
//! offline command on pod.yaml (which may then hold any object, a Namespace or a Deployment)
//! instead: `expect: changed` compares the printed document with expected.yaml, `expect:
//! unchanged` wants the input back, `expect: refused` wants the command to fail on it, and
//! `reason` must appear in the notes or errors `inject` prints on stderr.
//!
//! UPDATE_GOLDEN=1 rewrites the expected.yaml files whose contents differ from the result, and
//! then FAILS, naming them: review `git diff tests/fixtures` and run again without
//! UPDATE_GOLDEN. With nothing to rewrite it passes as usual.
//!
//! The harness is libtest-mimic (`harness = false` in Cargo.toml), so the usual arguments work:
//! a name filter, `--exact`, `--list`, `--test-threads=N`, `--nocapture` (output is never
//! captured).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use base64::Engine;
use libtest_mimic::{Arguments, Failed, Trial};
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
    /// An offline command instead of an admission review: `inject --manual` or
    /// `inject --uninject`, run on pod.yaml (any object). `expect: changed` compares the
    /// output with expected.yaml, `expect: unchanged` wants the input back.
    #[serde(default)]
    command: Option<String>,
}

fn read_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn admission_for(dir: &Path) -> Admission {
    let config_path = dir.join("config.yaml");
    let values_path = dir.join("values.yaml");
    let (config, notes) = Config::load_with_values(
        config_path.exists().then_some(config_path.as_path()),
        values_path.exists().then_some(values_path.as_path()),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    assert!(notes.is_empty(), "{}: {notes:?}", dir.display());
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

fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// `tests/fixtures/…/FILE`, as a user would type it (for messages).
fn shown(path: &Path) -> String {
    path.strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap_or(path)
        .display()
        .to_string()
}

fn case_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures_root())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("case.yaml").exists())
        .collect();
    dirs.sort();
    dirs
}

/// Every entry of tests/fixtures/ is a case directory (one with a case.yaml): a directory
/// without one, or a stray file, would be skipped by `case_dirs` without a word.
fn check_fixture_root(root: &Path) -> Result<(), String> {
    let mut stray = Vec::new();
    for entry in std::fs::read_dir(root).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if !path.join("case.yaml").is_file() {
            stray.push(shown(&path));
        }
    }
    stray.sort();
    if stray.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "not a fixture directory (no case.yaml), so never read by this runner: {}",
            stray.join(", ")
        ))
    }
}

/// The files the runner reads for this case; any other file in the directory is stale.
fn check_no_stale_files(dir: &Path, case: &Case) -> Result<(), String> {
    let mut read = vec!["case.yaml".to_owned(), "pod.yaml".to_owned()];
    for optional in ["namespace.yaml", "config.yaml", "values.yaml"] {
        if dir.join(optional).exists() {
            read.push(optional.to_owned());
        }
    }
    if ["injected", "changed", "annotated"].contains(&case.expect.as_str()) {
        read.push("expected.yaml".to_owned());
    }
    // The config names its trust anchors file, relative to itself.
    if dir.join("config.yaml").exists()
        && let Some(anchors) = read_yaml(&dir.join("config.yaml"))["trustAnchorsFile"].as_str()
    {
        read.push(anchors.to_owned());
    }
    let mut stale = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if read.contains(&name) {
            continue;
        }
        let why = if name == "expected.yaml" {
            format!(
                "case.yaml says `expect: {}`, so no patched pod is compared with it: delete it, or fix case.yaml",
                case.expect
            )
        } else {
            format!(
                "not a file this runner reads (it reads {}): delete or rename it",
                read.join(", ")
            )
        };
        stale.push(format!("stale file {}: {why}", shown(&entry.path())));
    }
    stale.sort();
    if stale.is_empty() {
        Ok(())
    } else {
        Err(stale.join("\n"))
    }
}

/// The first line where `want` and `got` differ, for the failure message.
fn first_difference(want: &str, got: &str) -> String {
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    for i in 0..w.len().max(g.len()) {
        let (a, b) = (w.get(i).copied(), g.get(i).copied());
        if a != b {
            return format!(
                "first difference at line {}:\n  expected.yaml: {}\n  got:           {}",
                i + 1,
                a.unwrap_or("(end of file)"),
                b.unwrap_or("(end of file)")
            );
        }
    }
    "the YAML texts are equal line by line but parse differently".into()
}

fn rewrote_message(file: &str) -> String {
    format!(
        "UPDATE_GOLDEN=1 rewrote {file}: review `git diff tests/fixtures`, then run again without UPDATE_GOLDEN"
    )
}

/// Compares `got` with the case's expected.yaml (as values: an update rewrites only what
/// differs, not formatting). Differs: an error, or with `update` the file rewritten and its
/// name returned (the case must then fail, so the diff is reviewed).
fn compare_or_update(
    dir: &Path,
    got: &Value,
    update: bool,
    rewritten: &Rewritten,
) -> Result<Option<String>, String> {
    let expected_path = dir.join("expected.yaml");
    let got_text = proxy_injector::offline::to_yaml(got).unwrap();
    let existing = std::fs::read_to_string(&expected_path).ok();
    let expected = existing
        .as_deref()
        .map(|t| serde_saphyr::from_str::<Value>(t).map_err(|e| e.to_string()));
    if matches!(&expected, Some(Ok(v)) if v == got) {
        return Ok(None);
    }
    if !update {
        return Err(match (&existing, &expected) {
            (Some(text), Some(Ok(_))) => format!(
                "result differs from {}\n{}\n--- got\n{got_text}",
                shown(&expected_path),
                first_difference(text, &got_text)
            ),
            (_, Some(Err(e))) => format!("{}: {e}", shown(&expected_path)),
            _ => format!(
                "{} is missing; UPDATE_GOLDEN=1 writes it (then review it)",
                shown(&expected_path)
            ),
        });
    }
    std::fs::write(&expected_path, &got_text)
        .map_err(|e| format!("{}: {e}", shown(&expected_path)))?;
    rewritten.lock().unwrap().push(shown(&expected_path));
    Ok(Some(shown(&expected_path)))
}

/// Files rewritten by UPDATE_GOLDEN=1 in this run.
type Rewritten = Arc<Mutex<Vec<String>>>;

fn run_case(dir: &Path, update: bool, rewritten: &Rewritten) -> Result<(), String> {
    let case: Case = serde_json::from_value(read_yaml(&dir.join("case.yaml")))
        .map_err(|e| format!("case.yaml: {e}"))?;
    check_no_stale_files(dir, &case)?;
    let pod = read_yaml(&dir.join("pod.yaml"));
    let admission = admission_for(dir);
    if let Some(command) = &case.command {
        return run_command_case(dir, &case, command, &pod, &admission, update, rewritten);
    }
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
            let rewrote = compare_or_update(dir, &patched, update, rewritten)?;
            // The offline `inject` command gives exactly the same pod.
            let off = offline::inject_pod(&admission, 0, &pod, None).map_err(|e| e.to_string())?;
            if off.pod != patched {
                return Err("offline inject differs from the webhook's result".into());
            }
            // Idempotence: a second pass over the injected pod changes nothing.
            second_pass_changes_nothing(&admission, &patched, &case, "injected pod")?;
            if let Some(file) = rewrote {
                return Err(rewrote_message(&file));
            }
        }
        "annotated" => {
            // Not injected, but given the opaque-ports annotation (a skipped pod, a Service).
            if resp["allowed"] != true || !matches!(answer.outcome, Outcome::Skipped(_)) {
                return Err(format!("expected allowed and not injected, got {resp}"));
            }
            let patch = decode_patch(resp).ok_or("expected a patch, got none")?;
            let mut patched = pod.clone();
            json_patch::patch(&mut patched, &patch)
                .map_err(|e| format!("patch does not apply: {e}"))?;
            let rewrote = compare_or_update(dir, &patched, update, rewritten)?;
            second_pass_changes_nothing(&admission, &patched, &case, "annotated object")?;
            if let Some(file) = rewrote {
                return Err(rewrote_message(&file));
            }
        }
        other => return Err(format!("unknown expect {other:?}")),
    }
    let _ = &case.description;
    Ok(())
}

/// The review of `patched` (the object as the API server stores it) answers without a patch.
fn second_pass_changes_nothing(
    admission: &Admission,
    patched: &Value,
    case: &Case,
    what: &str,
) -> Result<(), String> {
    let again = serde_json::to_vec(&review_for(patched, case, "again")).unwrap();
    let again = admission.review(&again).map_err(|e| e.to_string())?;
    let again: Value = serde_json::from_slice(&again.body).unwrap();
    if again["response"]["patch"].is_null() {
        Ok(())
    } else {
        Err(format!("a second pass over the {what} produced a patch"))
    }
}

/// A case of an offline command (`command:` in case.yaml): the document `inject` prints.
fn run_command_case(
    dir: &Path,
    case: &Case,
    command: &str,
    input: &Value,
    admission: &Admission,
    update: bool,
    rewritten: &Rewritten,
) -> Result<(), String> {
    let mode = match command {
        "inject --manual" => offline::InjectMode::Manual,
        "inject --uninject" => offline::InjectMode::Uninject,
        "inject --annotate" => offline::InjectMode::Annotate,
        "inject --namespaces" => offline::InjectMode::Webhook,
        other => {
            return Err(format!(
                "unknown command {other:?} (inject --manual, inject --uninject, inject --annotate, inject --namespaces)"
            ));
        }
    };
    let result =
        offline::inject_document(admission, 0, input, None, mode).map_err(|e| e.to_string())?;
    if let Some(want) = &case.reason {
        let notes = result
            .notes
            .iter()
            .chain(&result.errors)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n");
        if !notes.contains(want.as_str()) {
            return Err(format!(
                "notes and errors {notes:?} do not contain {want:?}"
            ));
        }
    }
    if (case.expect == "refused") == result.errors.is_empty() {
        return Err(format!(
            "expect {}, errors {:?}",
            case.expect, result.errors
        ));
    }
    match case.expect.as_str() {
        "refused" => Ok(()),
        "unchanged" if result.doc == *input => Ok(()),
        "unchanged" => Err(format!(
            "expected the input back, got\n{}",
            proxy_injector::offline::to_yaml(&result.doc).unwrap()
        )),
        "changed" => {
            if result.doc == *input {
                return Err("expected a change, got the input back".into());
            }
            match compare_or_update(dir, &result.doc, update, rewritten)? {
                None => Ok(()),
                Some(file) => Err(rewrote_message(&file)),
            }
        }
        other => Err(format!(
            "unknown expect {other:?} for a command case (changed, unchanged)"
        )),
    }
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

/// The runner itself, on a copy of one fixture: an update rewrites and fails, an update with
/// nothing to change passes, stale files and stray directories fail naming the file.
fn runner_self_check() -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let root = tmp.path();
    let case = root.join("01-namespace-enabled");
    std::fs::create_dir(&case).map_err(|e| e.to_string())?;
    let original = fixtures_root().join("01-namespace-enabled");
    for f in ["case.yaml", "pod.yaml", "namespace.yaml", "expected.yaml"] {
        std::fs::copy(original.join(f), case.join(f)).map_err(|e| format!("{f}: {e}"))?;
    }
    let expected = case.join("expected.yaml");
    let good = std::fs::read_to_string(&expected).map_err(|e| e.to_string())?;
    let rewritten: Rewritten = Arc::default();
    let passed = std::cell::Cell::new(0);
    let check = |what: &str, ok: bool| {
        if ok {
            passed.set(passed.get() + 1);
            Ok(())
        } else {
            Err(format!("runner self-check: {what}"))
        }
    };

    check(
        "the copy passes",
        run_case(&case, false, &rewritten).is_ok(),
    )?;
    check(
        "an update with nothing to change passes",
        run_case(&case, true, &rewritten).is_ok(),
    )?;
    check(
        "... and rewrites nothing",
        rewritten.lock().unwrap().is_empty(),
    )?;

    std::fs::write(&expected, good.replace("edge-26.8.3", "edge-old"))
        .map_err(|e| e.to_string())?;
    let plain = run_case(&case, false, &rewritten);
    check(
        "a differing expected.yaml fails",
        plain.as_ref().is_err_and(|e| e.contains("differs")),
    )?;
    let update = run_case(&case, true, &rewritten);
    check(
        "an update that rewrites fails and says so",
        update
            .as_ref()
            .is_err_and(|e| e.contains("rewrote") && e.contains("git diff tests/fixtures")),
    )?;
    check(
        "the rewrite is recorded",
        rewritten.lock().unwrap().len() == 1,
    )?;
    let now: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(&expected).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    let good_value: Value = serde_saphyr::from_str(&good).map_err(|e| e.to_string())?;
    check("the rewritten file is the result", now == good_value)?;
    check(
        "after the update the case passes",
        run_case(&case, false, &rewritten).is_ok(),
    )?;

    std::fs::write(case.join("notes.txt"), "").map_err(|e| e.to_string())?;
    let stale = run_case(&case, false, &rewritten);
    check(
        "an unknown file fails, named",
        stale.as_ref().is_err_and(|e| e.contains("notes.txt")),
    )?;
    std::fs::remove_file(case.join("notes.txt")).map_err(|e| e.to_string())?;
    std::fs::write(case.join("case.yaml"), "description: d\nexpect: skipped\n")
        .map_err(|e| e.to_string())?;
    let stale = run_case(&case, false, &rewritten);
    check(
        "an expected.yaml of a case that is not injected fails, named",
        stale
            .as_ref()
            .is_err_and(|e| e.contains("expected.yaml") && e.contains("expect: skipped")),
    )?;
    check(
        "a directory of cases only passes",
        check_fixture_root(root).is_ok(),
    )?;
    std::fs::create_dir(root.join("99-draft")).map_err(|e| e.to_string())?;
    let stray = check_fixture_root(root);
    check(
        "a directory without case.yaml fails, named",
        stray.as_ref().is_err_and(|e| e.contains("99-draft")),
    )?;
    eprintln!("runner self-check: {} checks passed", passed.get());
    Ok(())
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let rewritten: Rewritten = Arc::default();
    let dirs = case_dirs();
    let count = dirs.len();
    let mut trials = vec![Trial::test("fixtures-root-holds-only-cases", move || {
        if count < 25 {
            return Err(format!("expected at least 25 golden cases, found {count}").into());
        }
        check_fixture_root(&fixtures_root()).map_err(Failed::from)
    })];
    trials.push(Trial::test("runner-self-check", || {
        runner_self_check().map_err(Failed::from)
    }));
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let rewritten = rewritten.clone();
        trials.push(Trial::test(name, move || {
            run_case(&dir, update, &rewritten).map_err(Failed::from)
        }));
    }
    if update {
        eprintln!(
            "UPDATE_GOLDEN is set: expected.yaml files that differ from the result are rewritten, and their cases fail"
        );
    }
    let conclusion = libtest_mimic::run(&args, trials);
    let rewritten = rewritten.lock().unwrap();
    if !rewritten.is_empty() {
        eprintln!(
            "\nUPDATE_GOLDEN=1 rewrote {} file(s):\n  {}\nReview them with `git diff tests/fixtures`, then run again \
             without UPDATE_GOLDEN. This run fails so that an update is never a silent pass.",
            rewritten.len(),
            rewritten.join("\n  ")
        );
        return ExitCode::FAILURE;
    }
    conclusion.exit_code()
}
