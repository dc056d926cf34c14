//! The offline commands: `explain` says what the webhook would (decision and warnings), and
//! `inject` prints the same pod the webhook's patch gives.

use std::process::Command;

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_proxy-injector"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn explain_gives_the_webhooks_warnings_and_decisions() {
    let (ok, out, err) = run(&[
        "explain",
        "tests/warnings/bad/01-annotation-on-workload-metadata.yaml",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("deployment/web:"), "{out}");
    assert!(
        out.contains(
            "warning: metadata.annotations[linkerd.io/inject] on Deployment web has no effect"
        ),
        "{out}"
    );
    let (ok, out, _) = run(&[
        "explain",
        "tests/warnings/ok/01-deployment-template-annotated.yaml",
    ]);
    assert!(ok);
    assert!(out.contains("no mistakes found"), "{out}");
    let dir = "tests/fixtures/05-not-annotated";
    let (ok, out, _) = run(&[
        "explain",
        &format!("{dir}/pod.yaml"),
        "--namespaces",
        &format!("{dir}/namespace.yaml"),
    ]);
    assert!(ok);
    assert!(out.contains("pod/web: not injected: neither the pod nor namespace shop has the linkerd.io/inject annotation"), "{out}");
}

#[test]
fn inject_prints_the_patched_pod() {
    let dir = "tests/fixtures/01-namespace-enabled";
    let (ok, out, err) = run(&[
        "inject",
        &format!("{dir}/pod.yaml"),
        "--namespaces",
        &format!("{dir}/namespace.yaml"),
    ]);
    assert!(ok, "{err}");
    let got: serde_json::Value = serde_yaml::from_str(out.trim_start_matches("---\n")).unwrap();
    let want: serde_json::Value = serde_yaml::from_str(
        &std::fs::read_to_string(format!(
            "{}/{dir}/expected.yaml",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(got, want);
}
