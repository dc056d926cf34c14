//! Property tests (proptest): for arbitrary valid pods and namespaces, the patch applies
//! cleanly, never removes or changes the user's containers, init containers, volumes or
//! existing annotations, and reviewing the injected pod again gives no patch.

use std::sync::Arc;

use base64::Engine;
use proptest::prelude::*;
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
        ("linkerd.io/inject", "enabled"),
        ("linkerd.io/inject", "disabled"),
        ("linkerd.io/inject", "ingress"),
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
    (
        prop::collection::vec(mesh, 0..4),
        prop::collection::vec(("[a-z]{1,8}\\.example/[a-z~/]{1,10}", "[ -~]{0,30}"), 0..4),
    )
        .prop_map(|(mesh, other)| {
            let mut m = Map::new();
            for (k, v) in other {
                m.insert(k, Value::String(v));
            }
            for (k, v) in mesh {
                m.insert(k.to_owned(), Value::String(v.to_owned()));
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
        any::<bool>(),
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn patch_applies_keeps_user_fields_and_is_idempotent(
        pod in pod(),
        ns in prop::option::of(prop::sample::select(vec!["enabled", "disabled", "ingress"])),
    ) {
        let a = admission(ns);
        let (outcome, patch) = review(&a, &pod);
        let Some(patch) = patch else {
            let injected = matches!(outcome, Outcome::Injected { .. });
            prop_assert!(!injected, "injected without a patch");
            return Ok(());
        };
        let injected = matches!(outcome, Outcome::Injected { .. });
        prop_assert!(injected, "a patch for a pod not injected: {:?}", outcome);
        let mut patched = pod.clone();
        json_patch::patch(&mut patched, &patch).map_err(|e| TestCaseError::fail(format!("patch does not apply: {e}")))?;

        // The user's containers, init containers and volumes are all there, unchanged.
        for (field, list) in [("containers", "containers"), ("initContainers", "initContainers"), ("volumes", "volumes")] {
            for item in pod["spec"][field].as_array().into_iter().flatten() {
                let name = item["name"].as_str().unwrap();
                prop_assert_eq!(by_name(&patched["spec"][list], name), Some(item), "{} {} changed", field, name);
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
        let mut added: Vec<String> = names(&patched).into_iter().filter(|n| !before.contains(n)).collect();
        added.sort();
        prop_assert!(
            added == ["linkerd-init", "linkerd-proxy"] || added == ["linkerd-proxy"],
            "added {:?}", added
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
    }
}
