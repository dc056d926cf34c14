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
        "-f",
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
        "-f",
        "tests/warnings/ok/01-deployment-template-annotated.yaml",
    ]);
    assert!(ok);
    assert!(out.contains("no mistakes found"), "{out}");
    let dir = "tests/fixtures/05-not-annotated";
    let (ok, out, _) = run(&[
        "explain",
        "-f",
        &format!("{dir}/pod.yaml"),
        "--namespaces",
        &format!("{dir}/namespace.yaml"),
    ]);
    assert!(ok);
    assert!(
        out.contains("pod/web in namespace shop: not injected"),
        "{out}"
    );
    assert!(
        out.contains("rule: not_annotated (neither the pod nor namespace shop has the linkerd.io/inject annotation"),
        "{out}"
    );
    // Every effective value says where it comes from.
    let dir = "tests/fixtures/22-namespace-overrides";
    let (ok, out, _) = run(&[
        "explain",
        "-f",
        &format!("{dir}/pod.yaml"),
        "--namespaces",
        &format!("{dir}/namespace.yaml"),
    ]);
    assert!(ok);
    assert!(
        out.contains("rule: namespace shop's linkerd.io/inject: enabled (the pod does not set it)"),
        "{out}"
    );
    for needle in [
        "rendered as: Linkerd edge-26.8.3's injector renders it",
        "200m",
        "(namespace annotation config.linkerd.io/proxy-cpu-request)",
        "(pod annotation config.linkerd.io/proxy-log-level)",
        "cr.l5d.io/linkerd/proxy:edge-26.8.3",
    ] {
        assert!(out.contains(needle), "{needle:?} missing:\n{out}");
    }
    let log_line = out.lines().find(|l| l.contains("proxy log level")).unwrap();
    assert!(
        log_line.contains("debug"),
        "the pod's value wins: {log_line}"
    );
}

#[test]
fn inject_prints_the_patched_pod() {
    let dir = "tests/fixtures/01-namespace-enabled";
    let (ok, out, err) = run(&[
        "inject",
        "-f",
        &format!("{dir}/pod.yaml"),
        "--namespaces",
        &format!("{dir}/namespace.yaml"),
    ]);
    assert!(ok, "{err}");
    let got: serde_json::Value = serde_saphyr::from_str(out.trim_start_matches("---\n")).unwrap();
    let want: serde_json::Value = serde_saphyr::from_str(
        &std::fs::read_to_string(format!(
            "{}/{dir}/expected.yaml",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(got, want);
}

fn yaml_docs(text: &str) -> Vec<serde_json::Value> {
    serde_saphyr::from_multiple::<serde_json::Value>(text).unwrap()
}

fn template(doc: &serde_json::Value) -> &serde_json::Value {
    let kind = doc["kind"].as_str().unwrap();
    let path = proxy_injector::workload::pod_template_path(kind).unwrap();
    doc.pointer(path).unwrap()
}

/// `linkerd-proxy` is in the pod template: a native sidecar in `initContainers` (the default)
/// or a classic one in `containers`.
fn meshed(doc: &serde_json::Value) -> bool {
    ["initContainers", "containers"].iter().any(|l| {
        template(doc)["spec"][l]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["name"] == "linkerd-proxy"))
    })
}

fn first_container(doc: &serde_json::Value) -> String {
    template(doc)["spec"]["containers"][0]["name"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Golden test of `inject` over a multi-document file with every workload kind, a List, and
/// objects that pass through. UPDATE_GOLDEN=1 rewrites tests/inject/expected.yaml when it
/// differs, and then fails (review `git diff tests/inject`, run again without it).
#[test]
fn inject_every_workload_kind() {
    let (ok, out, err) = run(&[
        "inject",
        "-f",
        "tests/inject/workloads.yaml",
        "--namespaces",
        "tests/inject/namespaces.yaml",
    ]);
    assert!(ok, "{err}");
    let expected_path = format!("{}/tests/inject/expected.yaml", env!("CARGO_MANIFEST_DIR"));
    let got = yaml_docs(&out);
    let expected = std::fs::read_to_string(&expected_path).map(|t| yaml_docs(&t));
    if std::env::var_os("UPDATE_GOLDEN").is_some() && expected.as_ref().ok() != Some(&got) {
        std::fs::write(&expected_path, &out).unwrap();
        panic!(
            "UPDATE_GOLDEN=1 rewrote tests/inject/expected.yaml: review `git diff tests/inject`, \
             then run again without UPDATE_GOLDEN"
        );
    }
    assert_eq!(got, expected.unwrap());
    let by_name = |n: &str| got.iter().find(|d| d["metadata"]["name"] == n).unwrap();
    for injected in ["web", "db", "cache", "legacy", "migrate", "report", "shell"] {
        assert!(meshed(by_name(injected)), "{injected}");
    }
    assert_eq!(first_container(by_name("agent")), "agent", "opted out");
    assert!(
        err.contains("daemonset/agent: not injected: the pod has linkerd.io/inject: disabled"),
        "{err}"
    );
    let list = got.iter().find(|d| d["kind"] == "List").unwrap();
    assert_eq!(
        first_container(&list["items"][0]),
        "l",
        "plain namespace, no annotation"
    );
    assert_eq!(list["items"][1]["data"]["a"], "b");
    let input = yaml_docs(
        &std::fs::read_to_string(format!(
            "{}/tests/inject/workloads.yaml",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    );
    assert_eq!(by_name("web").get("spec").unwrap().get("ports"), None);
    let svc_in = input.iter().find(|d| d["kind"] == "Service").unwrap();
    let svc_out = got.iter().find(|d| d["kind"] == "Service").unwrap();
    assert_eq!(svc_in, svc_out, "other objects pass through unchanged");
    let report = by_name("report");
    let proxy = template(report)["spec"]["initContainers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == "linkerd-proxy"))
        .unwrap();
    let env = proxy["env"].as_array().unwrap();
    assert!(
        env.iter()
            .any(|e| e["name"] == "LINKERD2_PROXY_INGRESS_MODE"),
        "ingress mode for the CronJob"
    );
}

#[test]
fn uninject_removes_what_inject_added() {
    let (ok, injected, err) = run(&[
        "inject",
        "-f",
        "tests/inject/workloads.yaml",
        "--namespaces",
        "tests/inject/namespaces.yaml",
    ]);
    assert!(ok, "{err}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("injected.yaml");
    std::fs::write(&file, injected).unwrap();
    let (ok, out, err) = run(&["inject", "-f", file.to_str().unwrap(), "--uninject"]);
    assert!(ok, "{err}");
    let input = yaml_docs(
        &std::fs::read_to_string(format!(
            "{}/tests/inject/workloads.yaml",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    );
    let mut back = yaml_docs(&out);
    // As `linkerd uninject`: every `linkerd.io*` annotation goes, the user's
    // `linkerd.io/inject: enabled` included (`disabled` stays); the opaque-ports annotation
    // injection added stays (it is a `config.linkerd.io/` key).
    let mut input = input;
    for (orig, new) in input.iter_mut().zip(back.iter_mut()) {
        if orig["kind"] == "List" {
            continue;
        }
        let path = proxy_injector::workload::pod_template_path(orig["kind"].as_str().unwrap());
        let Some(path) = path else { continue };
        let ann_path = format!("{path}/metadata/annotations");
        let had = orig.pointer(&ann_path).cloned();
        if let Some(ann) = orig.pointer_mut(&ann_path).and_then(|a| a.as_object_mut()) {
            ann.retain(|k, v| !k.starts_with("linkerd.io") || v == "disabled");
            if ann.is_empty() {
                orig.pointer_mut(&format!("{path}/metadata"))
                    .unwrap()
                    .as_object_mut()
                    .unwrap()
                    .remove("annotations");
            }
        }
        if let Some(ann) = new.pointer_mut(&ann_path).and_then(|a| a.as_object_mut()) {
            let k = "config.linkerd.io/opaque-ports";
            if had.as_ref().and_then(|h| h.get(k)).is_none() {
                ann.remove(k);
            }
            if ann.is_empty() {
                new.pointer_mut(&format!("{path}/metadata"))
                    .unwrap()
                    .as_object_mut()
                    .unwrap()
                    .remove("annotations");
            }
        }
    }
    for (a, b) in input.iter().zip(&back) {
        assert_eq!(
            a, b,
            "uninject(inject(x)) != x for {}",
            a["metadata"]["name"]
        );
    }
}

#[test]
fn manual_injects_all_but_templates_that_opt_out() {
    let (ok, out, err) = run(&["inject", "-f", "tests/inject/workloads.yaml", "--manual"]);
    assert!(ok, "{err}");
    let got = yaml_docs(&out);
    let agent = got
        .iter()
        .find(|d| d["metadata"]["name"] == "agent")
        .unwrap();
    // A template that opts out stays out, as with `linkerd inject --manual`.
    assert_eq!(first_container(agent), "agent");
    assert!(
        err.contains("daemonset/agent: not injected: the pod has linkerd.io/inject: disabled"),
        "{err}"
    );
    let input = yaml_docs(
        &std::fs::read_to_string(format!(
            "{}/tests/inject/workloads.yaml",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    );
    let agent_in = input
        .iter()
        .find(|d| d["metadata"]["name"] == "agent")
        .unwrap();
    assert_eq!(agent, agent_in, "left exactly as it was");
    let list = got.iter().find(|d| d["kind"] == "List").unwrap();
    assert!(meshed(&list["items"][0]));
}

/// `inject --manual` fails as a whole on a document Linkerd refuses: the reason on stderr,
/// nothing on stdout (so `| kubectl apply -f -` applies nothing half-done); `--annotate` adds
/// only the switch; `--values` takes Linkerd's chart values.
#[test]
fn inject_modes_refuse_annotate_and_take_linkerd_values() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs.yaml");
    std::fs::write(
        &docs,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\n\
         spec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n\
         \x20   spec: {containers: [{name: app, image: nginx}]}\n---\n\
         apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent, namespace: ops}\n\
         spec:\n  selector: {matchLabels: {app: agent}}\n  template:\n    metadata: {labels: {app: agent}}\n\
         \x20   spec: {hostNetwork: true, containers: [{name: agent, image: busybox}]}\n",
    )
    .unwrap();
    let path = docs.to_str().unwrap();
    let (ok, out, err) = run(&["inject", "-f", path, "--manual"]);
    assert!(!ok, "{out}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("daemonset/agent") && err.contains("hostNetwork"),
        "{err}"
    );

    let (ok, out, err) = run(&["inject", "-f", path, "--annotate"]);
    assert!(!ok, "a host-network workload fails --annotate too: {out}");
    assert!(err.contains("hostNetwork"), "{err}");

    let web = dir.path().join("web.yaml");
    std::fs::write(
        &web,
        std::fs::read_to_string(&docs)
            .unwrap()
            .split("---")
            .next()
            .unwrap(),
    )
    .unwrap();
    let (ok, out, err) = run(&["inject", "-f", web.to_str().unwrap(), "--annotate"]);
    assert!(ok, "{err}");
    let doc = &yaml_docs(&out)[0];
    assert_eq!(
        doc["spec"]["template"]["metadata"]["annotations"]["linkerd.io/inject"],
        "enabled"
    );
    assert!(!meshed(doc));

    let values = dir.path().join("values.yaml");
    std::fs::write(
        &values,
        "linkerdVersion: enterprise-2.18.2\nproxy:\n  logLevl: debug\n",
    )
    .unwrap();
    let (ok, out, err) = run(&[
        "inject",
        "-f",
        web.to_str().unwrap(),
        "--manual",
        "--values",
        values.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(
        err.contains("proxy.logLevl"),
        "an unknown key is named: {err}"
    );
    let doc = &yaml_docs(&out)[0];
    assert!(meshed(doc));
    assert_eq!(
        doc["spec"]["template"]["metadata"]["annotations"]["linkerd.io/proxy-version"],
        "enterprise-2.18.2"
    );
    // The values name Linkerd 2.18: its linkerd-init, from the separate proxy-init image.
    let init = &doc["spec"]["template"]["spec"]["initContainers"][0];
    assert_eq!(init["name"], "linkerd-init");
    assert_eq!(init["image"], "cr.l5d.io/linkerd/proxy-init:v2.4.2");
    assert!(init.get("command").is_none(), "{init}");
    assert!(
        err.contains("Linkerd enterprise-2.18.2 (2.18, edge-25.4.4)"),
        "the note names the release the keys were read as: {err}"
    );

    // --linkerd-version wins over the values' linkerdVersion; one outside the range fails
    // with the supported range and prints nothing.
    let (ok, out, err) = run(&[
        "inject",
        "-f",
        web.to_str().unwrap(),
        "--manual",
        "--values",
        values.to_str().unwrap(),
        "--linkerd-version",
        "version-2.20",
    ]);
    assert!(ok, "{err}");
    let init = &yaml_docs(&out)[0]["spec"]["template"]["spec"]["initContainers"][0];
    assert_eq!(init["image"], "cr.l5d.io/linkerd/proxy:enterprise-2.18.2");
    for bad in ["edge-23.1.1", "latest"] {
        let (ok, out, err) = run(&[
            "inject",
            "-f",
            web.to_str().unwrap(),
            "--manual",
            "--linkerd-version",
            bad,
        ]);
        assert!(!ok && out.is_empty(), "{bad}: {out}");
        assert!(
            err.contains("edge-24.8.2") && err.contains("edge-26.8.3"),
            "{bad}: the supported range is said: {err}"
        );
    }
}

/// `inject --enable-debug-sidecar`, as Linkerd's flag: the annotation on the template, and the
/// debug sidecar with `--manual`.
#[test]
fn inject_enable_debug_sidecar_flag() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yaml");
    std::fs::write(
        &web,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\n\
         spec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n\
         \x20   spec: {containers: [{name: app, image: nginx}]}\n",
    )
    .unwrap();
    let w = web.to_str().unwrap();
    let (ok, out, err) = run(&["inject", "-f", w, "--manual", "--enable-debug-sidecar"]);
    assert!(ok, "{err}");
    let doc = &yaml_docs(&out)[0];
    let template = &doc["spec"]["template"];
    assert_eq!(
        template["metadata"]["annotations"]["config.linkerd.io/enable-debug-sidecar"],
        "true"
    );
    let names: Vec<&str> = template["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app", "linkerd-debug"]);
    let (ok, out, err) = run(&["inject", "-f", w, "--annotate", "--enable-debug-sidecar"]);
    assert!(ok, "{err}");
    let doc = &yaml_docs(&out)[0];
    assert_eq!(
        doc["spec"]["template"]["metadata"]["annotations"]["config.linkerd.io/enable-debug-sidecar"],
        "true"
    );
}
