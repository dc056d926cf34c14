//! Property tests (proptest): for arbitrary valid pods and namespaces, the patch applies
//! cleanly, never removes or changes the user's containers, init containers, volumes or
//! existing annotations, and reviewing the injected pod again gives no patch.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use proxy_injector::admission::{Admission, Outcome};
use proxy_injector::config::Config;
use proxy_injector::namespaces::Namespaces;
use serde_json::{Map, Value, json};

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,12}[a-z0-9]"
}

fn container() -> impl Strategy<Value = Value> {
    (
        name(),
        prop::sample::select(vec![
            "nginx:1.27",
            "busybox",
            "registry.example/app@sha256:0f",
        ]),
        prop::collection::vec(1u16..=65535, 0..3),
        prop::option::of(prop::collection::vec((name(), "[ -~]{0,20}"), 0..3)),
    )
        .prop_map(|(n, image, ports, env)| {
            let mut c = json!({"name": format!("c-{n}"), "image": image});
            if !ports.is_empty() {
                c["ports"] = ports.iter().map(|p| json!({"containerPort": p})).collect();
            }
            if let Some(env) = env {
                c["env"] = env
                    .iter()
                    .map(|(k, v)| json!({"name": k.to_uppercase().replace('-', "_"), "value": v}))
                    .collect();
            }
            c
        })
}

/// A unique-by-name list of containers.
fn containers(min: usize, max: usize) -> impl Strategy<Value = Vec<Value>> {
    prop::collection::vec(container(), min..=max).prop_map(|cs| {
        let mut seen = std::collections::HashSet::new();
        cs.into_iter()
            .filter(|c| seen.insert(c["name"].as_str().unwrap_or("").to_owned()))
            .collect()
    })
}

/// Annotations that a user could put on a pod, mesh ones included (all with valid values).
fn annotations() -> impl Strategy<Value = Map<String, Value>> {
    let mesh = prop::sample::select(vec![
        ("config.linkerd.io/proxy-cpu-request", "150m"),
        ("config.linkerd.io/proxy-memory-limit", "250Mi"),
        ("config.linkerd.io/skip-inbound-ports", "25,4000-4010"),
        ("config.linkerd.io/proxy-log-level", "warn,linkerd=info"),
        ("config.linkerd.io/opaque-ports", "3306"),
        ("config.linkerd.io/proxy-await", "disabled"),
        (
            "config.alpha.linkerd.io/proxy-enable-native-sidecar",
            "true",
        ),
    ]);
    // linkerd.io/inject on the pod: mostly absent (the namespace decides) or asking for the
    // proxy, so that most generated pods are injected and the properties below are exercised.
    let inject = prop_oneof![
        55 => Just(None),
        30 => Just(Some("enabled")),
        10 => Just(Some("ingress")),
        5 => Just(Some("disabled")),
    ];
    (
        inject,
        prop::collection::vec(mesh, 0..4),
        prop::collection::vec(("[a-z]{1,8}\\.example/[a-z~/]{1,10}", "[ -~]{0,30}"), 0..4),
    )
        .prop_map(|(inject, mesh, other)| {
            let mut m = Map::new();
            for (k, v) in other {
                m.insert(k, Value::String(v));
            }
            for (k, v) in mesh {
                m.insert(k.to_owned(), Value::String(v.to_owned()));
            }
            if let Some(v) = inject {
                m.insert("linkerd.io/inject".into(), Value::String(v.into()));
            }
            m
        })
}

fn pod() -> impl Strategy<Value = Value> {
    (
        name(),
        annotations(),
        containers(1, 4),
        containers(0, 2),
        prop::collection::vec(name(), 0..3),
        // hostNetwork pods are never injected: a few, not half.
        prop::bool::weighted(0.03),
    )
        .prop_map(|(n, annotations, cs, inits, volumes, host_network)| {
            let mut spec = json!({"containers": cs});
            if !inits.is_empty() {
                spec["initContainers"] = inits
                    .into_iter()
                    .map(|mut c| {
                        c["name"] = format!("init-{}", c["name"].as_str().unwrap_or("")).into();
                        c
                    })
                    .collect();
            }
            let volumes: std::collections::BTreeSet<_> = volumes.into_iter().collect();
            if !volumes.is_empty() {
                spec["volumes"] = volumes
                    .iter()
                    .map(|v| json!({"name": format!("v-{v}"), "emptyDir": {}}))
                    .collect();
            }
            if host_network {
                spec["hostNetwork"] = json!(true);
            }
            let mut meta = json!({"name": n, "namespace": "shop", "labels": {"app": n}});
            if !annotations.is_empty() {
                meta["annotations"] = Value::Object(annotations);
            }
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
        })
}

/// The namespace's linkerd.io/inject: mostly enabled, so that pods without their own
/// annotation are injected too.
fn namespace_annotation() -> impl Strategy<Value = Option<&'static str>> {
    prop_oneof![
        70 => Just(Some("enabled")),
        15 => Just(Some("ingress")),
        5 => Just(Some("disabled")),
        10 => Just(None),
    ]
}

fn admission(namespace_annotation: Option<&str>) -> Admission {
    let ns = match namespace_annotation {
        Some(v) => json!({"metadata": {"name": "shop", "annotations": {"linkerd.io/inject": v}}}),
        None => json!({"metadata": {"name": "shop"}}),
    };
    Admission::new(
        Arc::new(Config::default()),
        Namespaces::from_objects([serde_json::from_value(ns).unwrap()]),
    )
}

/// Reviews `pod`; returns the outcome and the patch, if any.
fn review(a: &Admission, pod: &Value) -> (Outcome, Option<json_patch::Patch>) {
    let body = serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "p", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE", "namespace": "shop", "object": pod}
    }))
    .unwrap();
    let answer = a.review(&body).expect("a valid review is answered");
    let resp: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(resp["response"]["allowed"], true);
    let patch = resp["response"]["patch"].as_str().map(|b64| {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        serde_json::from_slice(&bytes).expect("an RFC 6902 patch")
    });
    (answer.outcome, patch)
}

fn by_name<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|c| c["name"] == name)
}

const CASES: u32 = 256;

/// The properties, for one generated pod and namespace annotation; `seen` counts outcomes.
fn check(
    pod: &Value,
    ns: Option<&str>,
    seen: &Mutex<BTreeMap<String, usize>>,
) -> Result<(), TestCaseError> {
    let pod = pod.clone();
    let a = admission(ns);
    let (outcome, patch) = review(&a, &pod);
    let kind = match &outcome {
        Outcome::Injected { mode } => format!("injected ({})", mode.as_str()),
        Outcome::Skipped(r) => format!("skipped ({})", r.code()),
        Outcome::Denied(r) => format!("denied ({})", r.code()),
    };
    *seen.lock().unwrap().entry(kind).or_default() += 1;
    let Some(patch) = patch else {
        let injected = matches!(outcome, Outcome::Injected { .. });
        prop_assert!(!injected, "injected without a patch");
        return Ok(());
    };
    let injected = matches!(outcome, Outcome::Injected { .. });
    if !injected {
        // A pod not injected gets at most the opaque-ports annotation the webhook adds (the
        // default opaque ports its containers or init containers expose), as Linkerd's.
        let text = serde_json::to_string(&patch).unwrap();
        prop_assert!(
            patch.0.len() == 1
                && text.contains("opaque-ports")
                && text.contains("/metadata/annotations"),
            "a patch for a pod not injected ({:?}) that is not the opaque-ports annotation: {}",
            outcome,
            text
        );
        return Ok(());
    }
    let mut patched = pod.clone();
    json_patch::patch(&mut patched, &patch)
        .map_err(|e| TestCaseError::fail(format!("patch does not apply: {e}")))?;

    // The user's containers, init containers and volumes are all there, unchanged.
    for (field, list) in [
        ("containers", "containers"),
        ("initContainers", "initContainers"),
        ("volumes", "volumes"),
    ] {
        for item in pod["spec"][field].as_array().into_iter().flatten() {
            let name = item["name"].as_str().unwrap();
            prop_assert_eq!(
                by_name(&patched["spec"][list], name),
                Some(item),
                "{} {} changed",
                field,
                name
            );
        }
    }
    // What was added: the proxy once (a container, or a native sidecar init container)
    // and at most linkerd-init.
    let names = |p: &Value| -> Vec<String> {
        ["containers", "initContainers"]
            .iter()
            .flat_map(|f| p["spec"][*f].as_array().cloned().unwrap_or_default())
            .map(|c| c["name"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    let before = names(&pod);
    let mut added: Vec<String> = names(&patched)
        .into_iter()
        .filter(|n| !before.contains(n))
        .collect();
    added.sort();
    prop_assert!(
        added == ["linkerd-init", "linkerd-proxy"] || added == ["linkerd-proxy"],
        "added {:?}",
        added
    );
    // Existing annotations and labels keep their values (the mesh only adds its own).
    for field in ["annotations", "labels"] {
        for (k, v) in pod["metadata"][field].as_object().into_iter().flatten() {
            prop_assert_eq!(&patched["metadata"][field][k], v, "{} {} changed", field, k);
        }
    }
    prop_assert_eq!(&patched["metadata"]["name"], &pod["metadata"]["name"]);
    prop_assert_eq!(&patched["spec"]["hostNetwork"], &pod["spec"]["hostNetwork"]);

    // Reviewing the injected pod again adds nothing.
    let (again, second) = review(&a, &patched);
    prop_assert!(second.is_none(), "second review patched again: {:?}", again);
    Ok(())
}

#[test]
fn patch_applies_keeps_user_fields_and_is_idempotent() {
    let seen = Mutex::new(BTreeMap::new());
    let mut runner = TestRunner::new(ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    if let Err(e) = runner.run(&(pod(), namespace_annotation()), |(pod, ns)| {
        check(&pod, ns, &seen)
    }) {
        panic!("{e}");
    }
    let seen = seen.into_inner().unwrap();
    let total: usize = seen.values().sum();
    let injected: usize = seen
        .iter()
        .filter(|(k, _)| k.starts_with("injected"))
        .map(|(_, n)| n)
        .sum();
    eprintln!(
        "{total} generated pods: {injected} injected ({:.0}%); by outcome: {seen:?}",
        100.0 * injected as f64 / total as f64
    );
    assert_eq!(
        total, CASES as usize,
        "every generated pod was reviewed once"
    );
    assert!(
        injected * 100 >= total * 70,
        "only {injected} of {total} generated pods were injected: the properties were hardly exercised"
    );
}
