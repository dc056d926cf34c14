//! The mistakes `POST /warn` reports: every file under tests/warnings/bad/ must produce the
//! warnings in its `# expect:` lines; every realistic workload under tests/warnings/ok/ must
//! produce none (no false alarms). Both through `Admission::warn`, as the API server calls it.

use std::path::Path;
use std::sync::Arc;

use proxy_injector::admission::Admission;
use proxy_injector::config::Config;
use proxy_injector::namespaces::Namespaces;
use serde_json::{Value, json};

fn review(obj: &Value, old: Option<&Value>, operation: &str) -> Vec<u8> {
    let kind = obj["kind"].as_str().unwrap();
    let group = obj["apiVersion"]
        .as_str()
        .unwrap()
        .rsplit_once('/')
        .map(|(g, _)| g)
        .unwrap_or("");
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "w", "kind": {"group": group, "version": "v1", "kind": kind},
                    "operation": operation, "namespace": if kind == "Namespace" { "" } else { "shop" },
                    "object": obj, "oldObject": old}
    }))
    .unwrap()
}

fn warnings_of(admission: &Admission, obj: &Value, old: Option<&Value>, op: &str) -> Vec<String> {
    let a = admission.warn(&review(obj, old, op)).unwrap();
    let resp: Value = serde_json::from_slice(&a.body).unwrap();
    assert_eq!(resp["response"]["allowed"], true);
    assert!(
        resp["response"]["patch"].is_null(),
        "the warnings path never patches"
    );
    resp["response"]["warnings"]
        .as_array()
        .map(|w| w.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

fn files(dir: &str) -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/warnings")
        .join(dir);
    let mut out: Vec<(String, String)> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn admission() -> Admission {
    Admission::new(Arc::new(Config::default()), Namespaces::empty())
}

#[test]
fn no_false_alarms_on_ordinary_workloads() {
    let a = admission();
    let ok = files("ok");
    assert!(
        ok.len() >= 15,
        "at least 15 realistic workloads, found {}",
        ok.len()
    );
    for (name, text) in ok {
        let obj: Value = serde_saphyr::from_str(&text).unwrap();
        let w = warnings_of(&a, &obj, None, "CREATE");
        assert!(w.is_empty(), "{name}: unexpected warnings {w:?}");
    }
}

#[test]
fn every_mistake_is_named_with_its_fix() {
    let a = admission();
    let bad = files("bad");
    for (name, text) in bad {
        let expects: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(!expects.is_empty(), "{name} has no # expect: line");
        let obj: Value = serde_saphyr::from_str(&text).unwrap();
        let w = warnings_of(&a, &obj, None, "CREATE");
        for e in expects {
            assert!(
                w.iter().any(|x| x.contains(e)),
                "{name}: no warning contains {e:?}; got {w:?}"
            );
        }
        assert_eq!(
            w.len(),
            text.lines().filter(|l| l.starts_with("# expect: ")).count(),
            "{name}: {w:?}"
        );
    }
}

#[test]
fn namespace_update_that_switches_injection_says_how_to_restart() {
    let a = admission();
    let before = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}});
    let after = json!({"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"name": "shop", "annotations": {"linkerd.io/inject": "enabled"}}});
    let w = warnings_of(&a, &after, Some(&before), "UPDATE");
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("injection was turned on for namespace shop"),
        "{w:?}"
    );
    assert!(
        w[0].contains("kubectl rollout restart deployment,statefulset,daemonset -n shop"),
        "{w:?}"
    );
    let w = warnings_of(&a, &before, Some(&after), "UPDATE");
    assert!(w[0].contains("turned off"), "{w:?}");
    // An update that keeps the state says nothing; neither does a CREATE.
    assert!(warnings_of(&a, &after, Some(&after), "UPDATE").is_empty());
    assert!(warnings_of(&a, &after, None, "CREATE").is_empty());
}

#[test]
fn namespace_override_errors_reach_workloads_in_it() {
    let ns = Namespaces::from_yaml(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  annotations:\n    linkerd.io/inject: enabled\n    config.linkerd.io/proxy-uid: root\n",
        "t",
    )
    .unwrap();
    let a = Admission::new(Arc::new(Config::default()), ns);
    let deploy: Value = serde_saphyr::from_str(&files("ok")[1].1).unwrap(); // the plain StatefulSet
    let w = warnings_of(&a, &deploy, None, "CREATE");
    assert!(
        w.iter().any(|x| x.contains(
            "the namespace's annotation config.linkerd.io/proxy-uid = \"root\" is not valid"
        )),
        "{w:?}"
    );
}

/// A workload applied in a namespace whose PodSecurity level would refuse its injected pods
/// hears it at `kubectl apply` time, with the fix; with CNI (restricted-compliant injected
/// containers) a compliant workload hears nothing.
#[test]
fn workloads_in_a_pod_security_namespace_hear_that_their_pods_would_not_be_meshed() {
    let ns = || {
        Namespaces::from_yaml(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  annotations:\n    linkerd.io/inject: enabled\n  labels:\n    pod-security.kubernetes.io/enforce: restricted\n",
            "t",
        )
        .unwrap()
    };
    let deploy = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                     "containers": [{"name": "web", "image": "nginx", "securityContext": {
                        "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}]}}}});
    let a = Admission::new(Arc::new(Config::default()), ns());
    let w = warnings_of(&a, &deploy, None, "CREATE");
    assert!(
        w.iter()
            .any(|x| x.contains("enforces PodSecurity restricted:latest")
                && x.contains("linkerd-init")
                && x.contains("cniEnabled: true")
                && x.contains("pods would be admitted without the proxy")),
        "{w:?}"
    );
    let cni = Config {
        cni_enabled: true,
        ..Config::default()
    };
    let a = Admission::new(Arc::new(cni), ns());
    assert_eq!(
        warnings_of(&a, &deploy, None, "CREATE"),
        Vec::<String>::new()
    );
}

/// A ResourceQuota or LimitRange created in an injected namespace, under which the API server
/// would refuse the containers injection adds, is said at `kubectl apply` time with the fix;
/// one the injected containers satisfy, or one in a namespace whose pods are not injected, is
/// not.
#[test]
fn a_quota_that_would_refuse_the_injected_containers_is_said_when_created() {
    let ns = |ann: &str| {
        Namespaces::from_yaml(
            &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  annotations: {{{ann}}}\n"),
            "t",
        )
        .unwrap()
    };
    let quota = json!({"apiVersion": "v1", "kind": "ResourceQuota",
        "metadata": {"name": "compute", "namespace": "shop"},
        "spec": {"hard": {"limits.cpu": "8", "limits.memory": "8Gi"}}});
    let a = Admission::new(
        Arc::new(Config::default()),
        ns("linkerd.io/inject: enabled"),
    );
    let w = warnings_of(&a, &quota, None, "CREATE");
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("with ResourceQuota \"compute\", pods created in this namespace will be admitted without the proxy")
            && w[0].contains("ResourceQuota compute tracks limits.cpu, which linkerd-proxy, linkerd-init must specify")
            && w[0].contains("kubectl annotate namespace shop config.linkerd.io/proxy-cpu-limit=1 config.linkerd.io/proxy-memory-limit=250Mi"),
        "{w:?}"
    );
    // The namespace already gives the proxy limits: nothing to say.
    let a = Admission::new(
        Arc::new(Config::default()),
        ns(
            "linkerd.io/inject: enabled, config.linkerd.io/proxy-cpu-limit: \"1\", config.linkerd.io/proxy-memory-limit: 250Mi",
        ),
    );
    assert_eq!(
        warnings_of(&a, &quota, None, "CREATE"),
        Vec::<String>::new()
    );
    // Not injected: not the mesh's business.
    let a = Admission::new(Arc::new(Config::default()), ns(""));
    assert_eq!(
        warnings_of(&a, &quota, None, "CREATE"),
        Vec::<String>::new()
    );
    // A LimitRange whose max is under the proxy's request.
    let a = Admission::new(
        Arc::new(Config::default()),
        ns("linkerd.io/inject: enabled, config.linkerd.io/proxy-cpu-request: 100m"),
    );
    let range = json!({"apiVersion": "v1", "kind": "LimitRange",
        "metadata": {"name": "small", "namespace": "shop"},
        "spec": {"limits": [{"type": "Container", "max": {"cpu": "50m"}}]}});
    let w = warnings_of(&a, &range, None, "CREATE");
    assert!(
        w.len() == 1
            && w[0].contains("maximum cpu usage per Container is 50m, but request is 100m"),
        "{w:?}"
    );
}

#[test]
fn strict_mode_denies() {
    let config = Config {
        strict_warnings: true,
        ..Config::default()
    };
    let a = Admission::new(Arc::new(config), Namespaces::empty());
    let obj: Value = serde_saphyr::from_str(&files("bad")[0].1).unwrap();
    let resp: Value =
        serde_json::from_slice(&a.warn(&review(&obj, None, "CREATE")).unwrap().body).unwrap();
    assert_eq!(resp["response"]["allowed"], false);
    assert!(
        resp["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("has no effect")
    );
}
