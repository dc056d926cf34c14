//! End to end through a real kube-apiserver (with etcd and kube-controller-manager) built from
//! source: the API server calls `proxy-injector serve` and we check what it stores.
//!
//! Each test has its own namespaces and its own webhook registration (selected by a label on
//! the test's namespaces), so tests are independent and can run in parallel.

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use proxy_injector::check::network::meshed;
use serde_json::{Value, json};
use support::cluster::{self, control_plane, create_namespace, delete_namespace, register_webhook};
use support::{Injector, Lazy, wait_for_async, wait_until_async};

/// An injector watching the control plane's namespaces, registered for `test`'s namespaces;
/// returns once the API server is seen calling it for pods in `probe_ns`.
async fn injector_for(test: &str, probe_ns: &str, client: &Client) -> (Injector, String) {
    injector_with(test, probe_ns, client, &[]).await
}

/// [`injector_for`], with more arguments to `serve`.
async fn injector_with(
    test: &str,
    probe_ns: &str,
    client: &Client,
    args: &[&str],
) -> (Injector, String) {
    let cp = control_plane();
    let inj = Injector::start(args, &[("KUBECONFIG", cp.kubeconfig.to_str().unwrap())]);
    // Ready only once the namespace cache has synced.
    inj.wait_ready(Duration::from_secs(30), "injector").await;
    let wh = register_webhook(client, test, inj.port, &inj.ca_pem(), "Fail").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), probe_ns);
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let probe = pod("probe", json!({"linkerd.io/inject": "enabled"}));
    let took = wait_until_async(
        Lazy(|| format!("the API server to call the webhook:\n{}", inj.logs())),
        Duration::from_secs(30),
        async || pods.create(&dry, &probe).await.is_ok_and(|p| meshed(&p)),
    )
    .await;
    eprintln!("{test}: the API server called the new webhook after {took:?}");
    (inj, wh)
}

fn pod(name: &str, annotations: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": name}, "annotations": annotations},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27", "ports": [{"containerPort": 8080, "name": "http"}]}]}
    }))
    .unwrap()
}

/// `linkerd-init` then the native-sidecar proxy, before the app's own init containers.
fn injected_init() -> Vec<String> {
    vec!["linkerd-init".to_string(), "linkerd-proxy".to_string()]
}

fn container_names(p: &Pod) -> (Vec<String>, Vec<String>) {
    let spec = p.spec.as_ref().unwrap();
    (
        spec.init_containers
            .iter()
            .flatten()
            .map(|c| c.name.clone())
            .collect(),
        spec.containers.iter().map(|c| c.name.clone()).collect(),
    )
}

/// `expected` is contained in `actual`: the API server adds defaults (e.g. protocol: TCP) and
/// its ServiceAccount admission appends the kube-api-access mount to every container.
fn subset(expected: &Value, actual: &Value, path: &str) -> Result<(), String> {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, v) in e {
                subset(v, a.get(k).unwrap_or(&Value::Null), &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(a)) if e.len() <= a.len() => {
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                subset(ev, av, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        _ if expected == actual => Ok(()),
        // The API server stores pods in protobuf and omits integer fields that are 0
        // (`omitempty`), e.g. the native sidecar's `startupProbe.initialDelaySeconds: 0`,
        // which Linkerd's template writes too.
        (Value::Number(n), Value::Null) if n.as_i64() == Some(0) => Ok(()),
        _ => Err(format!(
            "{path}: expected {expected}, API server stored {actual}"
        )),
    }
}

/// Waits up to 15 s for an events.k8s.io Event in `ns` that `want` accepts.
async fn wait_for_event(
    client: &Client,
    ns: &str,
    want: impl Fn(&k8s_openapi::api::events::v1::Event) -> bool,
) -> k8s_openapi::api::events::v1::Event {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    let last = std::cell::RefCell::new(Vec::new());
    wait_for_async(
        Lazy(|| format!("the event in {ns}; events there: {:?}", last.borrow())),
        Duration::from_secs(15),
        async || {
            let list = events.list(&ListParams::default()).await.unwrap();
            *last.borrow_mut() = list
                .items
                .iter()
                .map(|e| {
                    let r = e.regarding.as_ref();
                    let kind = r.and_then(|r| r.kind.clone());
                    (e.reason.clone(), kind, r.and_then(|r| r.name.clone()))
                })
                .collect();
            list.items.into_iter().find(|e| want(e))
        },
    )
    .await
}

fn find<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no {name} in {list}"))
}

#[tokio::test]
async fn pod_in_enabled_namespace_is_stored_as_the_golden_fixture_says() {
    let test = "golden";
    let ns = "e2e-golden";
    let client = control_plane().client().await;
    create_namespace(&client, ns, test, &[("linkerd.io/inject", "enabled")]).await;
    let (_inj, wh) = injector_for(test, ns, &client).await;

    let fixture = support::repo().join("tests/fixtures/01-namespace-enabled");
    let read = |f: &str| -> Value {
        let text = std::fs::read_to_string(fixture.join(f))
            .unwrap()
            .replace("namespace: shop", &format!("namespace: {ns}"));
        serde_saphyr::from_str(&text).unwrap()
    };
    let input: Pod = serde_json::from_value(read("pod.yaml")).unwrap();
    let mut expected = read("expected.yaml");
    expected["metadata"]["labels"]["linkerd.io/workload-ns"] = json!(ns);

    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    pods.create(&PostParams::default(), &input).await.unwrap();
    let stored = serde_json::to_value(pods.get("web").await.unwrap()).unwrap();

    for (list, c) in [
        ("initContainers", "linkerd-init"),
        ("initContainers", "linkerd-proxy"),
        ("containers", "app"),
    ] {
        subset(
            find(&expected["spec"][list], c),
            find(&stored["spec"][list], c),
            c,
        )
        .unwrap();
    }
    assert_eq!(
        (
            &stored["spec"]["initContainers"][0]["name"],
            &stored["spec"]["initContainers"][1]["name"]
        ),
        (&json!("linkerd-init"), &json!("linkerd-proxy")),
        "linkerd-init, then the proxy as a native sidecar, go first"
    );
    for v in [
        "linkerd-identity-end-entity",
        "linkerd-identity-token",
        "linkerd-proxy-init-xtables-lock",
    ] {
        subset(
            find(&expected["spec"]["volumes"], v),
            find(&stored["spec"]["volumes"], v),
            v,
        )
        .unwrap();
    }
    subset(
        &expected["metadata"]["annotations"],
        &stored["metadata"]["annotations"],
        "annotations",
    )
    .unwrap();
    subset(
        &expected["metadata"]["labels"],
        &stored["metadata"]["labels"],
        "labels",
    )
    .unwrap();

    cluster::unregister_webhook(&client, &wh).await;
    delete_namespace(&client, ns).await;
}

/// 300 replicas from the controller-manager: every pod injected, and the injections noted in
/// a few Events on the ReplicaSet whose counts add up to 300 (equal notes are counted on one
/// Event, not written one per pod).
#[tokio::test]
async fn deployment_pods_from_the_controller_manager_are_injected() {
    const REPLICAS: usize = 300;
    let test = "deploy";
    let ns = "e2e-deploy";
    let client = control_plane().client().await;
    create_namespace(&client, ns, test, &[("linkerd.io/inject", "enabled")]).await;
    let (inj, wh) = injector_for(test, ns, &client).await;

    let deploy: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "shop"},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": {"app": "shop"}},
            "template": {
                "metadata": {"labels": {"app": "shop"}},
                "spec": {"containers": [{"name": "shop", "image": "nginx:1.27"}]}
            }
        }
    }))
    .unwrap();
    let started = Instant::now();
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &deploy)
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let made = std::cell::Cell::new(0);
    let list = wait_for_async(
        Lazy(|| {
            format!(
                "the controller-manager to make {REPLICAS} pods (made {})",
                made.get()
            )
        }),
        Duration::from_secs(120),
        async || {
            let list = pods
                .list(&ListParams::default().labels("app=shop"))
                .await
                .unwrap();
            made.set(list.items.len());
            (list.items.len() == REPLICAS).then_some(list)
        },
    )
    .await;
    eprintln!("{REPLICAS} pods made in {:?}", started.elapsed());
    for p in &list.items {
        let (init, containers) = container_names(p);
        let name = p.metadata.name.as_deref().unwrap_or("");
        assert_eq!(init, ["linkerd-init", "linkerd-proxy"], "{name}");
        assert_eq!(containers, ["shop"], "{name}");
        assert!(
            p.metadata.owner_references.is_some(),
            "made by the ReplicaSet"
        );
    }
    // The injections are noted on the ReplicaSet: a few Events, counts adding up to 300.
    let rs_name = list.items[0].metadata.owner_references.as_ref().unwrap()[0]
        .name
        .clone();
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    let counts = std::cell::RefCell::new(Vec::new());
    let about_rs = wait_for_async(
        Lazy(|| {
            format!(
                "Injected Events on {rs_name} counting {REPLICAS} (counts so far {:?})\n{}",
                counts.borrow(),
                inj.logs()
            )
        }),
        Duration::from_secs(30),
        async || {
            let about: Vec<_> = events
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .filter(|e| {
                    e.reason.as_deref() == Some("Injected")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref())
                            == Some(rs_name.as_str())
                })
                .collect();
            let c: Vec<i32> = about
                .iter()
                .map(|e| e.series.as_ref().map_or(1, |s| s.count))
                .collect();
            let done = c.iter().sum::<i32>() as usize == REPLICAS;
            *counts.borrow_mut() = c;
            done.then_some(about)
        },
    )
    .await;
    eprintln!(
        "{REPLICAS} injections noted in {} Event object(s) on {rs_name}, counts {:?}",
        about_rs.len(),
        counts.borrow()
    );
    assert!(
        about_rs.len() <= 3,
        "{} Event objects for one ReplicaSet",
        about_rs.len()
    );
    let ev = &about_rs[0];
    assert_eq!(ev.type_.as_deref(), Some("Normal"));
    assert_eq!(ev.reporting_controller.as_deref(), Some("proxy-injector"));
    assert_eq!(
        ev.regarding.as_ref().and_then(|r| r.kind.as_deref()),
        Some("ReplicaSet")
    );
    assert!(
        ev.note.as_deref().unwrap_or("").contains("proxy injected"),
        "{:?}",
        ev.note
    );
    let text = inj.metrics_text().await;
    let m = |s: &str| support::metric(&text, s).unwrap_or(0.0);
    let writes = m(r#"proxy_injector_event_writes_total{result="created"}"#)
        + m(r#"proxy_injector_event_writes_total{result="patched"}"#);
    eprintln!(
        "injector: {writes} Event API writes for {REPLICAS} injections ({} noted, {} of them added to a waiting note)",
        m(r#"proxy_injector_events_total{result="sent"}"#),
        m(r#"proxy_injector_events_total{result="coalesced"}"#)
    );
    assert!(
        writes < REPLICAS as f64,
        "{writes} Event writes for {REPLICAS} pods"
    );
    cluster::unregister_webhook(&client, &wh).await;
    delete_namespace(&client, ns).await;
}

#[tokio::test]
async fn decisions_and_namespace_overrides() {
    let test = "decide";
    let client = control_plane().client().await;
    create_namespace(&client, "e2e-decide-plain", test, &[]).await;
    create_namespace(
        &client,
        "e2e-decide-on",
        test,
        &[
            ("linkerd.io/inject", "enabled"),
            ("config.linkerd.io/proxy-cpu-request", "150m"),
            ("config.linkerd.io/proxy-log-level", "debug"),
        ],
    )
    .await;
    let (_inj, wh) = injector_for(test, "e2e-decide-plain", &client).await;
    let plain: Api<Pod> = Api::namespaced(client.clone(), "e2e-decide-plain");
    let on: Api<Pod> = Api::namespaced(client.clone(), "e2e-decide-on");
    let pp = PostParams::default();

    // Plain namespace, no annotation: untouched.
    let p = plain
        .create(&pp, &pod("untouched", json!({})))
        .await
        .unwrap();
    assert_eq!(container_names(&p), (vec![], vec!["app".to_string()]));
    // Pod-level enabled in a plain namespace: injected.
    let p = plain
        .create(&pp, &pod("opt-in", json!({"linkerd.io/inject": "enabled"})))
        .await
        .unwrap();
    assert_eq!(
        container_names(&p),
        (injected_init(), vec!["app".to_string()])
    );
    // Pod-level disabled in an enabled namespace: untouched.
    let p = on
        .create(
            &pp,
            &pod("opt-out", json!({"linkerd.io/inject": "disabled"})),
        )
        .await
        .unwrap();
    assert_eq!(container_names(&p), (vec![], vec!["app".to_string()]));
    // Namespace overrides apply to the proxy.
    let p = on.create(&pp, &pod("tuned", json!({}))).await.unwrap();
    let proxy = &p.spec.as_ref().unwrap().init_containers.as_ref().unwrap()[1];
    assert_eq!(proxy.name, "linkerd-proxy");
    let requests = proxy.resources.as_ref().unwrap().requests.as_ref().unwrap();
    assert_eq!(requests["cpu"].0, "150m");
    let log = proxy
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "LINKERD2_PROXY_LOG")
        .unwrap();
    // The namespace's level, with Linkerd's rule that HTTP headers are never logged.
    assert_eq!(
        log.value.as_deref(),
        Some("debug,[{headers}]=off,[{request}]=off")
    );
    // A bad override: admitted uninjected, with the warning on the response.
    let out = control_plane().kubectl(
        &[
            "-n",
            "e2e-decide-on",
            "run",
            "bad",
            "--image=nginx",
            "--annotations=config.linkerd.io/proxy-memory-limit=huge",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("config.linkerd.io/proxy-memory-limit"),
        "kubectl stderr: {stderr}"
    );
    let p = on.get("bad").await.unwrap();
    assert_eq!(container_names(&p).1, ["bad"]);

    cluster::unregister_webhook(&client, &wh).await;
    delete_namespace(&client, "e2e-decide-plain").await;
    delete_namespace(&client, "e2e-decide-on").await;
}

#[tokio::test]
async fn server_side_dry_run_is_injected_and_not_stored() {
    let test = "dryrun";
    let ns = "e2e-dryrun";
    let client = control_plane().client().await;
    create_namespace(&client, ns, test, &[("linkerd.io/inject", "enabled")]).await;
    let (_inj, wh) = injector_for(test, ns, &client).await;
    let manifest = serde_json::to_string(&json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "preview", "namespace": ns},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}
    }))
    .unwrap();
    let out = control_plane().kubectl(
        &["create", "--dry-run=server", "-o", "json", "-f", "-"],
        Some(&manifest),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let returned: Pod = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        container_names(&returned),
        (injected_init(), vec!["app".to_string()])
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    assert!(
        pods.get_opt("preview").await.unwrap().is_none(),
        "a dry run must store nothing"
    );
    // No Event for a dry run: once the Event of a real pod created afterwards is there
    // (events are sent in order), none may name the dry-run pods.
    pods.create(&PostParams::default(), &pod("real", json!({})))
        .await
        .unwrap();
    wait_for_event(&client, ns, |e| {
        e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("real")
    })
    .await;
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    let named: Vec<_> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.regarding.and_then(|r| r.name))
        .collect();
    assert_eq!(named, ["real"], "events for dry runs");
    cluster::unregister_webhook(&client, &wh).await;
    delete_namespace(&client, ns).await;
}

#[tokio::test]
async fn injector_down_fail_blocks_and_ignore_admits_uninjected() {
    let client = control_plane().client().await;
    // A stopped injector: its certs exist, nothing listens on its port.
    let dir = tempfile::tempdir().unwrap();
    support::make_certs(dir.path());
    let ca = std::fs::read(dir.path().join("ca.crt")).unwrap();
    let port = support::free_port();

    create_namespace(
        &client,
        "e2e-down-fail",
        "down-fail",
        &[("linkerd.io/inject", "enabled")],
    )
    .await;
    let wh = register_webhook(&client, "down-fail", port, &ca, "Fail").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "e2e-down-fail");
    // Until the API server's webhook informer has the new registration, creation succeeds:
    // retry with fresh names until it is refused (it must be, within 10 s).
    let t0 = Instant::now();
    let err = wait_for_async(
        "pod creation to be refused (Fail, injector down)",
        Duration::from_secs(10),
        async || {
            let name = format!("blocked-{}", t0.elapsed().as_millis());
            pods.create(&PostParams::default(), &pod(&name, json!({})))
                .await
                .err()
        },
    )
    .await;
    eprintln!(
        "Fail: creation refused {:?} after registering",
        t0.elapsed()
    );
    let msg = err.to_string();
    assert!(
        msg.contains("failed calling webhook") && msg.contains("inject.proxy-injector.dev"),
        "{msg}"
    );
    cluster::unregister_webhook(&client, &wh).await;

    create_namespace(
        &client,
        "e2e-down-ignore",
        "down-ignore",
        &[("linkerd.io/inject", "enabled")],
    )
    .await;
    // Registered with Fail first, so that a refusal shows the API server calls it; then
    // switched to Ignore: once creation succeeds again, the pod went through a failed call.
    let wh = register_webhook(&client, "down-ignore", port, &ca, "Fail").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "e2e-down-ignore");
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    wait_until_async(
        "the API server to call the down-ignore webhook (refused while Fail)",
        Duration::from_secs(10),
        async || pods.create(&dry, &pod("probe", json!({}))).await.is_err(),
    )
    .await;
    let out = control_plane().kubectl(
        &[
            "patch",
            "mutatingwebhookconfiguration",
            &wh,
            "--type=json",
            "-p",
            r#"[{"op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Ignore"}]"#,
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t0 = Instant::now();
    wait_until_async(
        "creation to be admitted with failurePolicy Ignore",
        Duration::from_secs(10),
        async || pods.create(&dry, &pod("probe", json!({}))).await.is_ok(),
    )
    .await;
    eprintln!("Ignore: admitted again {:?} after the switch", t0.elapsed());
    let p = pods
        .create(&PostParams::default(), &pod("through", json!({})))
        .await
        .unwrap();
    assert_eq!(container_names(&p), (vec![], vec!["app".to_string()]));
    cluster::unregister_webhook(&client, &wh).await;
    delete_namespace(&client, "e2e-down-fail").await;
    delete_namespace(&client, "e2e-down-ignore").await;
}

#[tokio::test]
async fn namespace_annotated_after_start_is_seen_within_2s() {
    let test = "late";
    let ns = "e2e-late";
    let client = control_plane().client().await;
    create_namespace(&client, ns, test, &[]).await;
    let (_inj, wh) = injector_for(test, ns, &client).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let p = pods.create(&dry, &pod("before", json!({}))).await.unwrap();
    assert_eq!(
        container_names(&p).1,
        ["app"],
        "not injected before the annotation"
    );

    let nss: Api<Namespace> = Api::all(client.clone());
    let patch = json!({"metadata": {"annotations": {"linkerd.io/inject": "enabled"}}});
    nss.patch(ns, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let seen = wait_until_async(
        "the injector to see the namespace annotation",
        Duration::from_secs(2),
        async || {
            let p = pods.create(&dry, &pod("after", json!({}))).await.unwrap();
            meshed(&p)
        },
    )
    .await;
    eprintln!("namespace annotation seen by the injector after {seen:?}");
    assert!(seen < Duration::from_secs(2));
    cluster::unregister_webhook(&client, &wh).await;
    delete_namespace(&client, ns).await;
}

#[tokio::test]
async fn kubectl_prints_the_warning_for_an_annotation_on_the_wrong_level() {
    let test = "warn";
    let ns = "e2e-warn";
    let client = control_plane().client().await;
    create_namespace(&client, ns, test, &[]).await;
    let (inj, wh) = injector_for(test, ns, &client).await;
    let vwh = cluster::register_warn_webhook(&client, test, inj.port, &inj.ca_pem()).await;
    let manifest = |name: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {ns}\n  annotations:\n    linkerd.io/inject: enabled\n\
             spec:\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - {{name: web, image: nginx:1.27}}\n"
        )
    };
    // Wait until the API server calls the new registration (server-side dry runs store nothing).
    wait_until_async(
        Lazy(|| {
            format!(
                "the API server to call the warnings webhook:\n{}",
                inj.logs()
            )
        }),
        Duration::from_secs(30),
        async || {
            let out = control_plane().kubectl(
                &["apply", "--dry-run=server", "-f", "-"],
                Some(&manifest("probe")),
            );
            String::from_utf8_lossy(&out.stderr).contains("Warning:")
        },
    )
    .await;
    let out = control_plane().kubectl(&["apply", "-f", "-"], Some(&manifest("web")));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "Warning: metadata.annotations[linkerd.io/inject] on Deployment web has no effect: \
             the injector reads the pod template; move it to spec.template.metadata.annotations"
        ),
        "kubectl stderr: {stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("deployment.apps/web created"));
    let deploy = Api::<Deployment>::namespaced(client.clone(), ns)
        .get_opt("web")
        .await
        .unwrap();
    assert!(deploy.is_some(), "the object is still created");

    // Turning injection on for the namespace says how to restart what already runs.
    let out = control_plane().kubectl(
        &["annotate", "namespace", ns, "linkerd.io/inject=enabled"],
        None,
    );
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "kubectl rollout restart deployment,statefulset,daemonset -n {ns}"
        )),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cluster::unregister_warn_webhook(&client, &vwh).await;
    cluster::unregister_webhook(&client, &wh).await;
    delete_namespace(&client, ns).await;
}

#[tokio::test]
async fn check_names_pods_started_before_the_namespace_was_annotated_and_its_fix_works() {
    let test = "check";
    let ns = "e2e-check";
    let cp = control_plane();
    let client = cp.client().await;
    create_namespace(&client, ns, test, &[]).await;
    let (inj, wh) = injector_for(test, ns, &client).await;
    // A Deployment whose pods start while the namespace is not annotated: no proxy.
    let deploy: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &deploy)
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    wait_until_async(
        "a pod from the Deployment",
        Duration::from_secs(60),
        async || {
            !pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .unwrap()
                .items
                .is_empty()
        },
    )
    .await;
    let nss: Api<Namespace> = Api::all(client.clone());
    let patch = json!({"metadata": {"annotations": {"linkerd.io/inject": "enabled"}}});
    nss.patch(ns, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();

    let run_check = |format: &str| {
        std::process::Command::new(support::bin())
            .args(["check", "--webhook", &wh, "-o", format])
            .env("KUBECONFIG", &cp.kubeconfig)
            .output()
            .unwrap()
    };
    let out = run_check("text");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "problems found means exit 1:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("{ns}/deployment web (1 pod:")),
        "{text}"
    );
    let fix = format!("kubectl rollout restart deployment/web -n {ns}");
    assert!(text.contains(&format!("fix: {fix}")), "{text}");
    assert!(text.contains("[ok  ] registered"), "{text}");
    assert!(
        text.contains("serving certificate verified by the caBundle"),
        "{text}"
    );
    let json: Value = serde_json::from_slice(&run_check("json").stdout).unwrap();
    let entry = json["missing_proxy"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["namespace"] == ns)
        .unwrap();
    assert_eq!(entry["fix"], fix.as_str());
    assert!(json["webhook"]["cert_days_left"].as_i64().unwrap() > 300);

    // explain, on the running pod: it would be injected today, and it has no proxy.
    let old_pod = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items[0]
        .metadata
        .name
        .clone()
        .unwrap();
    let explain = |pod: &str| {
        let out = std::process::Command::new(support::bin())
            .args(["explain", pod, "-n", ns])
            .env("KUBECONFIG", &cp.kubeconfig)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = explain(&old_pod);
    assert!(
        text.contains(&format!(
            "pod/{old_pod} in namespace {ns}: a pod created now is injected (enabled)"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "rule: namespace {ns}'s linkerd.io/inject: enabled"
        )),
        "{text}"
    );
    assert!(text.contains("running pod: has NO proxy"), "{text}");

    // Run the printed fix: the restarted Deployment's new pods get the proxy.
    let args: Vec<&str> = fix.split_whitespace().skip(1).collect();
    let out = cp.kubectl(&args, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new_pod = wait_for_async(
        Lazy(|| {
            format!(
                "the restarted Deployment's pods to be injected:\n{}",
                inj.logs()
            )
        }),
        Duration::from_secs(60),
        async || {
            let list = pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .unwrap();
            list.items
                .into_iter()
                .find(meshed)
                .and_then(|p| p.metadata.name)
        },
    )
    .await;
    let text = explain(&new_pod);
    assert!(
        text.contains("running pod: proxy cr.l5d.io/linkerd/proxy:edge-26.8.3 is current"),
        "{text}"
    );
    cluster::unregister_webhook(&client, &wh).await;
    delete_namespace(&client, ns).await;
}

/// A TCP proxy from `listener` to the API server; aborting the task closes the listener and
/// every proxied connection, as an API server outage would.
fn api_proxy(listener: std::net::TcpListener, upstream: u16) -> tokio::task::JoinHandle<()> {
    listener.set_nonblocking(true).unwrap();
    tokio::spawn(async move {
        let l = tokio::net::TcpListener::from_std(listener).unwrap();
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((mut inbound, _)) = l.accept().await {
            conns.spawn(async move {
                if let Ok(mut out) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                }
            });
        }
    })
}

async fn metric(inj: &Injector, name: &str) -> f64 {
    let text = inj.metrics_text().await;
    support::metric(&text, name).unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[tokio::test]
async fn api_server_outage_keeps_answering_from_the_cache_and_readiness_tells() {
    let ns = "e2e-outage";
    let cp = control_plane();
    let client = cp.client().await;
    create_namespace(&client, ns, "outage", &[("linkerd.io/inject", "enabled")]).await;
    // The injector reaches the API server through a proxy that the test can cut.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let proxy = api_proxy(listener, 16543);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        std::fs::read_to_string(&cp.kubeconfig).unwrap().replace(
            "https://127.0.0.1:16543",
            &format!("https://127.0.0.1:{port}"),
        ),
    )
    .unwrap();
    let inj = Injector::start(
        &["--max-stale-seconds", "2"],
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
    );
    inj.wait_ready(Duration::from_secs(30), "injector").await;
    assert_eq!(
        metric(&inj, "proxy_injector_namespace_cache_stale_seconds").await,
        0.0
    );

    proxy.abort();
    let _ = proxy.await;
    let c = support::client(&inj.ca_pem());
    let cut = Instant::now();
    let says = support::wait_for_not_ready(
        Lazy(|| format!("readiness to turn off during the outage:\n{}", inj.logs())),
        Duration::from_secs(30),
        &c,
        inj.url("/readyz"),
    )
    .await;
    eprintln!(
        "readiness off {:?} into the outage (--max-stale-seconds 2)",
        cut.elapsed()
    );
    assert!(says.contains("past the staleness limit"), "{says}");
    // Admissions are still answered, from the last known namespaces.
    let review = support::pod_review(
        "during-outage",
        ns,
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": ns},
               "spec": {"containers": [{"name": "app", "image": "nginx"}]}}),
    );
    let answer: Value = inj.post_review(&c, &review).await.json().await.unwrap();
    assert!(answer["response"]["patch"].is_string(), "{answer}");
    assert!(metric(&inj, "proxy_injector_namespace_cache_stale_seconds").await > 2.0);
    assert!(metric(&inj, "proxy_injector_namespace_watch_errors").await >= 1.0);
    assert!(
        inj.logs()
            .contains("namespace watch failed; retrying with backoff"),
        "{}",
        inj.logs()
    );

    // The API server comes back on the same address: the watch recovers by itself.
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let proxy = api_proxy(listener, 16543);
    inj.wait_ready(Duration::from_secs(60), "injector after the outage")
        .await;
    assert_eq!(
        metric(&inj, "proxy_injector_namespace_cache_stale_seconds").await,
        0.0
    );
    assert!(
        inj.logs().contains("namespace watch recovered"),
        "{}",
        inj.logs()
    );
    proxy.abort();
    delete_namespace(&client, ns).await;
}

#[tokio::test]
async fn api_server_presents_its_client_certificate_to_a_webhook_with_client_ca() {
    let cp = control_plane();
    let client = cp.client().await;
    let kubeconfig = cp.kubeconfig.to_str().unwrap();
    let pods_in = |ns: &str| Api::<Pod>::namespaced(client.clone(), ns);
    // Accepts the API server's client certificate: pods are injected.
    create_namespace(
        &client,
        "e2e-mtls",
        "mtls",
        &[("linkerd.io/inject", "enabled")],
    )
    .await;
    let inj = Injector::start(
        &[
            "--client-ca",
            cp.webhook_client_ca.to_str().unwrap(),
            "--admin-listen",
            "127.0.0.1:0",
        ],
        &[("KUBECONFIG", kubeconfig)],
    );
    let admin = inj.admin_port();
    wait_until_async(
        Lazy(|| format!("readiness on the admin port:\n{}", inj.logs())),
        Duration::from_secs(30),
        async || {
            reqwest::get(format!("http://127.0.0.1:{admin}/readyz"))
                .await
                .is_ok_and(|r| r.status() == 200)
        },
    )
    .await;
    let wh = register_webhook(&client, "mtls", inj.port, &inj.ca_pem(), "Fail").await;
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    wait_until_async(
        Lazy(|| format!("a probe pod injected through mTLS:\n{}", inj.logs())),
        Duration::from_secs(30),
        async || {
            pods_in("e2e-mtls")
                .create(&dry, &pod("probe", json!({})))
                .await
                .is_ok_and(|p| meshed(&p))
        },
    )
    .await;
    let p = pods_in("e2e-mtls")
        .create(&PostParams::default(), &pod("mtls", json!({})))
        .await
        .unwrap();
    assert_eq!(
        container_names(&p),
        (injected_init(), vec!["app".to_string()])
    );

    // Trusts another CA only: the API server's calls fail the handshake (Fail: denied).
    create_namespace(
        &client,
        "e2e-mtls-other",
        "mtls-other",
        &[("linkerd.io/inject", "enabled")],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let st = std::process::Command::new(support::bin())
        .args(["certs", "--out"])
        .arg(dir.path())
        .args(["--dns", "localhost", "--client", "someone-else"])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let strict = Injector::start(
        &["--client-ca", dir.path().join("ca.crt").to_str().unwrap()],
        &[("KUBECONFIG", kubeconfig)],
    );
    let wh2 = register_webhook(&client, "mtls-other", strict.port, &strict.ca_pem(), "Fail").await;
    let err = wait_for_async(
        "the API server to call the webhook that trusts another CA (and be refused)",
        Duration::from_secs(30),
        async || match pods_in("e2e-mtls-other")
            .create(&dry, &pod("refused", json!({})))
            .await
        {
            Err(e) => Some(e),
            Ok(p) => {
                assert_eq!(
                    container_names(&p).1,
                    ["app"],
                    "injected without a trusted client certificate"
                );
                None
            }
        },
    )
    .await;
    assert!(err.to_string().contains("failed calling webhook"), "{err}");
    cluster::unregister_webhook(&client, &wh).await;
    cluster::unregister_webhook(&client, &wh2).await;
    delete_namespace(&client, "e2e-mtls").await;
    delete_namespace(&client, "e2e-mtls-other").await;
}

/// A ConfigMap named `name` holding `key: value`.
fn configmap(name: &str, key: &str, value: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {key: value}})).unwrap()
}

/// Replaces the values of Linkerd's `linkerd-config` with `values` and waits until the
/// injector has refused a change (its rejected-reload metric counts one); `what` names the
/// change in the failure message.
async fn refuse_linkerd_values(cms: &Api<ConfigMap>, inj: &Injector, values: &str, what: &str) {
    cms.replace(
        "linkerd-config",
        &PostParams::default(),
        &configmap("linkerd-config", "values", values),
    )
    .await
    .unwrap();
    wait_until_async(
        Lazy(|| format!("{what} to be refused:\n{}", inj.logs())),
        Duration::from_secs(10),
        async || {
            let text = inj.metrics_text().await;
            let name = r#"proxy_injector_linkerd_config_reloads_total{result="rejected"}"#;
            support::metric(&text, name).unwrap_or(0.0) >= 1.0
        },
    )
    .await;
}

/// `serve --watch-linkerd-config`: not ready until Linkerd's two ConfigMaps exist; then pods
/// get their values and trust roots; a trust-root rotation reaches the next pod without a
/// restart; a bad change is refused and the last good config stays in use.
#[tokio::test]
async fn linkerd_configmaps_are_followed_without_a_restart() {
    let test = "l5dcfg";
    let (cp_ns, ns) = ("e2e-l5dcfg-cp", "e2e-l5dcfg");
    let cp = control_plane();
    let client = cp.client().await;
    create_namespace(&client, cp_ns, "l5dcfg-cp", &[]).await;
    create_namespace(
        &client,
        ns,
        test,
        &[
            ("linkerd.io/inject", "enabled"),
            ("config.linkerd.io/opaque-ports", "4000"),
        ],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, format!("controlPlaneNamespace: {cp_ns}\n")).unwrap();
    let inj = Injector::start(
        &[
            "--config",
            config.to_str().unwrap(),
            "--watch-linkerd-config",
        ],
        &[("KUBECONFIG", cp.kubeconfig.to_str().unwrap())],
    );
    let c = support::client(&inj.ca_pem());
    let readyz = async || {
        let r = c.get(inj.url("/readyz")).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    // Not ready while Linkerd's ConfigMaps are missing, and saying which.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, text) = readyz().await;
    assert_eq!(status, 503, "{text}");
    assert!(
        text.contains("linkerd-config") && text.contains(cp_ns),
        "{text}"
    );

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), cp_ns);
    let roots =
        |n: u8| format!("-----BEGIN CERTIFICATE-----\nroot-{n}\n-----END CERTIFICATE-----\n");
    let sha = |pem: &str| {
        let c = proxy_injector::config::Config {
            trust_anchors_pem: Some(pem.to_owned()),
            ..Default::default()
        };
        proxy_injector::patch::trust_root_sha256(&c)
    };
    let values = "linkerdVersion: edge-26.8.3\nidentityTrustAnchorsPEM: ignored\nproxy:\n  logLevel: debug\ncontrollerReplicas: 1\n";
    cms.create(
        &PostParams::default(),
        &configmap("linkerd-config", "values", values),
    )
    .await
    .unwrap();
    cms.create(
        &PostParams::default(),
        &configmap("linkerd-identity-trust-roots", "ca-bundle.crt", &roots(1)),
    )
    .await
    .unwrap();
    inj.wait_ready(
        Duration::from_secs(30),
        "injector with Linkerd's ConfigMaps",
    )
    .await;

    let wh = register_webhook(&client, test, inj.port, &inj.ca_pem(), "Fail").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let trust_root = |p: &Pod| {
        p.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("linkerd.io/trust-root-sha256").cloned())
    };
    let first = wait_for_async(
        "a pod injected with Linkerd's config",
        Duration::from_secs(30),
        async || {
            let p = pods.create(&dry, &pod("first", json!({}))).await.ok()?;
            meshed(&p).then_some(p)
        },
    )
    .await;
    assert_eq!(trust_root(&first), Some(sha(&roots(1))));
    let proxy = serde_json::to_value(&first).unwrap();
    let env = &find(&proxy["spec"]["initContainers"], "linkerd-proxy")["env"];
    assert_eq!(
        find(env, "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS")["value"],
        roots(1)
    );
    assert!(
        find(env, "LINKERD2_PROXY_LOG")["value"]
            .as_str()
            .unwrap()
            .starts_with("debug"),
        "{env}"
    );

    // Linkerd's trust-anchor rotation: the ConfigMap changes, the injector does not restart.
    let pid = inj.child.as_ref().unwrap().id();
    let started = Instant::now();
    cms.replace(
        "linkerd-identity-trust-roots",
        &PostParams::default(),
        &configmap("linkerd-identity-trust-roots", "ca-bundle.crt", &roots(2)),
    )
    .await
    .unwrap();
    wait_until_async(
        Lazy(|| format!("the next pod to carry the new trust root:\n{}", inj.logs())),
        Duration::from_secs(10),
        async || {
            let p = pods.create(&dry, &pod("rotated", json!({}))).await.unwrap();
            trust_root(&p) == Some(sha(&roots(2)))
        },
    )
    .await;
    eprintln!(
        "trust roots rotated: the next pod carried them {:?} after the change",
        started.elapsed()
    );
    assert_eq!(inj.child.as_ref().unwrap().id(), pid);
    assert!(inj.logs().contains("Linkerd's config applied"));

    // A bad change is refused: the last good config stays, readiness says so, a metric counts.
    refuse_linkerd_values(
        &cms,
        &inj,
        "proxy:\n  ports:\n    admin: 0\n",
        "the bad config",
    )
    .await;
    let (status, text) = readyz().await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("last good") && text.contains("proxy.ports.admin"),
        "{text}"
    );
    let p = pods
        .create(&dry, &pod("after-bad", json!({})))
        .await
        .unwrap();
    assert!(meshed(&p));
    assert_eq!(trust_root(&p), Some(sha(&roots(2))));

    // A Service in the opaque-ports namespace comes out annotated (the webhook sees services).
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(client.clone(), ns);
    let svc = serde_json::from_value(json!({"metadata": {"name": "db"},
        "spec": {"selector": {"app": "db"}, "ports": [{"port": 4000}]}}))
    .unwrap();
    let svc = services.create(&PostParams::default(), &svc).await.unwrap();
    assert_eq!(
        svc.metadata
            .annotations
            .unwrap_or_default()
            .get("config.linkerd.io/opaque-ports"),
        Some(&"4000".to_string())
    );
    cluster::unregister_webhook(&client, &wh).await;
    delete_namespace(&client, ns).await;
    delete_namespace(&client, cp_ns).await;
}

/// `serve --watch-linkerd-config` follows the release Linkerd's `linkerd-config` names: on
/// 2.18 values `linkerd-init` runs from `proxy-init:v2.4.2`; after an upgrade of the ConfigMap
/// to edge-26.8.3 the next pod's runs from the proxy image, without a restart; values naming
/// a release outside the supported range are refused and the last good config stays.
#[tokio::test]
async fn linkerd_upgrade_changes_the_next_pods_release() {
    let test = "l5dup";
    let (cp_ns, ns) = ("e2e-l5dup-cp", "e2e-l5dup");
    let cp = control_plane();
    let client = cp.client().await;
    create_namespace(&client, cp_ns, "l5dup-cp", &[]).await;
    create_namespace(&client, ns, test, &[("linkerd.io/inject", "enabled")]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, format!("controlPlaneNamespace: {cp_ns}\n")).unwrap();
    let inj = Injector::start(
        &[
            "--config",
            config.to_str().unwrap(),
            "--watch-linkerd-config",
        ],
        &[("KUBECONFIG", cp.kubeconfig.to_str().unwrap())],
    );
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), cp_ns);
    let values = |release: &str| format!("linkerdVersion: {release}\nproxy:\n  logLevel: info\n");
    cms.create(
        &PostParams::default(),
        &configmap("linkerd-config", "values", &values("edge-25.4.4")),
    )
    .await
    .unwrap();
    cms.create(
        &PostParams::default(),
        &configmap(
            "linkerd-identity-trust-roots",
            "ca-bundle.crt",
            "-----BEGIN CERTIFICATE-----\nroot\n-----END CERTIFICATE-----\n",
        ),
    )
    .await
    .unwrap();
    inj.wait_ready(Duration::from_secs(30), "injector on Linkerd 2.18's values")
        .await;
    let wh = register_webhook(&client, test, inj.port, &inj.ca_pem(), "Fail").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let init_of = |p: &Pod| {
        let v = serde_json::to_value(p).unwrap();
        find(&v["spec"]["initContainers"], "linkerd-init").clone()
    };
    let first = wait_for_async(
        "a pod injected as Linkerd 2.18 injects it",
        Duration::from_secs(30),
        async || {
            let p = pods.create(&dry, &pod("first", json!({}))).await.ok()?;
            meshed(&p).then_some(p)
        },
    )
    .await;
    let init = init_of(&first);
    assert_eq!(
        init["image"], "cr.l5d.io/linkerd/proxy-init:v2.4.2",
        "{init}"
    );
    assert!(init.get("command").is_none(), "{init}");
    // 2.18's proxy is a classic sidecar, first in containers.
    assert_eq!(
        first.spec.as_ref().unwrap().containers[0].name,
        "linkerd-proxy"
    );

    // `linkerd upgrade` rewrites linkerd-config: the next pod has the new release's shape.
    let pid = inj.child.as_ref().unwrap().id();
    cms.replace(
        "linkerd-config",
        &PostParams::default(),
        &configmap("linkerd-config", "values", &values("edge-26.8.3")),
    )
    .await
    .unwrap();
    let upgraded = wait_for_async(
        Lazy(|| format!("the next pod in edge-26.8.3's shape:\n{}", inj.logs())),
        Duration::from_secs(10),
        async || {
            let p = pods.create(&dry, &pod("upgraded", json!({}))).await.ok()?;
            (init_of(&p)["image"] == "cr.l5d.io/linkerd/proxy:edge-26.8.3").then_some(p)
        },
    )
    .await;
    let init = init_of(&upgraded);
    assert_eq!(
        init["command"],
        json!(["/usr/lib/linkerd/linkerd2-proxy-init"]),
        "{init}"
    );
    assert_eq!(inj.child.as_ref().unwrap().id(), pid);

    // A release outside the range is refused; the last good config stays in use.
    refuse_linkerd_values(&cms, &inj, &values("edge-23.1.1"), "edge-23.1.1").await;
    let c = support::client(&inj.ca_pem());
    let r = c.get(inj.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("edge-23.1.1") && text.contains("edge-24.8.2"),
        "readiness names the refused release and the range: {text}"
    );
    let p = pods
        .create(&dry, &pod("after-refusal", json!({})))
        .await
        .unwrap();
    assert_eq!(init_of(&p)["image"], "cr.l5d.io/linkerd/proxy:edge-26.8.3");
    cluster::unregister_webhook(&client, &wh).await;
    delete_namespace(&client, ns).await;
    delete_namespace(&client, cp_ns).await;
}

/// For each PodSecurity level enforced on an injected namespace, with linkerd-init and in CNI
/// mode: the webhook's verdict agrees with the API server's own (`kubectl create
/// --dry-run=server` of the pod `inject --manual` makes), a pod the API server would refuse
/// once injected is created uninjected with the warning that says why and how to fix it, a pod
/// it accepts is injected, and a Deployment's pods are all created (no FailedCreate).
#[tokio::test]
async fn pod_security_verdicts_agree_with_the_api_server() {
    let client = control_plane().client().await;
    let dir = tempfile::tempdir().unwrap();
    let cni_config = dir.path().join("cni.yaml");
    std::fs::write(&cni_config, "cniEnabled: true\n").unwrap();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    // A pod that complies with restricted as it is.
    let app = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "app", "labels": {"app": "app"}},
        "spec": {
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "app", "image": "nginx:1.27", "securityContext": {
                "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}, "runAsUser": 1000}}]
        }
    });
    for (test, cni) in [("pss", false), ("psscni", true)] {
        let probe = format!("e2e-{test}-probe");
        create_namespace(&client, &probe, test, &[("linkerd.io/inject", "enabled")]).await;
        let args: Vec<&str> = if cni {
            vec!["--config", cni_config.to_str().unwrap()]
        } else {
            vec![]
        };
        let (inj, wh) = injector_with(test, &probe, &client, &args).await;
        for level in ["privileged", "baseline", "restricted"] {
            let ns = format!("e2e-{test}-{level}");
            create_namespace(&client, &ns, test, &[("linkerd.io/inject", "enabled")]).await;
            enforce(&namespaces, &ns, level).await;
            let config: &[&str] = if cni {
                &["--config", cni_config.to_str().unwrap()]
            } else {
                &[]
            };
            let v = verdicts(&ns, &app, config, &inj, &format!("{test} {level}"));
            let (api_accepts, stderr) = (v.api_accepts, v.warning);
            let expected = level == "privileged" || cni;
            assert_eq!(api_accepts, expected, "{test} {level}");
            if !api_accepts {
                assert!(
                    stderr.contains(&format!("enforces PodSecurity {level}:latest"))
                        && stderr.contains("linkerd-init")
                        && stderr.contains("cniEnabled: true"),
                    "{test} {level}: the warning: {stderr}"
                );
            }
        }
        cluster::unregister_webhook(&client, &wh).await;
        drop(inj);
    }

    // A Deployment in the namespace that would refuse its injected pods: every pod is created
    // (uninjected), none refused.
    let test = "pssdeploy";
    let ns = "e2e-pssdeploy";
    create_namespace(
        &client,
        "e2e-pssdeploy-probe",
        test,
        &[("linkerd.io/inject", "enabled")],
    )
    .await;
    let (inj, wh) = injector_for(test, "e2e-pssdeploy-probe", &client).await;
    create_namespace(&client, ns, test, &[("linkerd.io/inject", "enabled")]).await;
    enforce(&namespaces, ns, "baseline").await;
    let deploy: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": app["spec"].clone()}}
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &deploy)
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let created = wait_for_async(
        Lazy(|| format!("the Deployment's 3 pods in {ns}:\n{}", inj.logs())),
        Duration::from_secs(60),
        async || {
            let list = pods.list(&ListParams::default()).await.unwrap().items;
            (list.len() == 3).then_some(list)
        },
    )
    .await;
    assert!(
        created.iter().all(|p| !meshed(p)),
        "injected in a baseline namespace"
    );
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    let failed = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("FailedCreate"))
        .count();
    assert_eq!(failed, 0, "FailedCreate events in {ns}");
    // The skip is an Event on the ReplicaSet, with the fix.
    let e = wait_for_event(&client, ns, |e| {
        e.note.as_deref().is_some_and(|n| n.contains("PodSecurity"))
    })
    .await;
    eprintln!("the Event: {:?}", e.note);
    assert!(e.note.unwrap().contains("cniEnabled: true"));
    cluster::unregister_webhook(&client, &wh).await;
    drop(inj);

    // The same Deployment with an injector that does not check (apiServerRefusal: off, as
    // Linkerd): the API server refuses every pod (FailedCreate naming linkerd-init). `check`
    // lists both: the namespace where injection is blocked, and the workload refused now.
    let test = "pssoff";
    let off_ns = "e2e-pssoff";
    let off_config = dir.path().join("off.yaml");
    std::fs::write(&off_config, "apiServerRefusal: \"off\"\n").unwrap();
    create_namespace(
        &client,
        "e2e-pssoff-probe",
        test,
        &[("linkerd.io/inject", "enabled")],
    )
    .await;
    let (inj, wh) = injector_with(
        test,
        "e2e-pssoff-probe",
        &client,
        &["--config", off_config.to_str().unwrap()],
    )
    .await;
    create_namespace(&client, off_ns, test, &[("linkerd.io/inject", "enabled")]).await;
    enforce(&namespaces, off_ns, "baseline").await;
    Api::<Deployment>::namespaced(client.clone(), off_ns)
        .create(&PostParams::default(), &deploy)
        .await
        .unwrap();
    let core_events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(client.clone(), off_ns);
    let refused = wait_for_async(
        Lazy(|| format!("a FailedCreate in {off_ns}:\n{}", inj.logs())),
        Duration::from_secs(60),
        async || {
            let list = core_events
                .list(&ListParams::default().fields("reason=FailedCreate"))
                .await
                .unwrap();
            list.items.into_iter().find_map(|e| e.message)
        },
    )
    .await;
    eprintln!("with apiServerRefusal off: {refused}");
    assert!(refused.contains("linkerd-init"), "{refused}");
    let blocked = blocked_by_admission(&wh);
    let blocked: Vec<&str> = blocked.iter().map(String::as_str).collect();
    eprintln!("check, injection blocked by the API server's admission: {blocked:?}");
    assert!(blocked.contains(&"namespace e2e-pssdeploy"), "{blocked:?}");
    assert!(
        blocked.contains(&"e2e-pssoff/deployment web"),
        "{blocked:?}"
    );
    // The injector that does not check: `check` uses its own config, the default.
    assert!(blocked.contains(&"namespace e2e-pssoff"), "{blocked:?}");
    cluster::unregister_webhook(&client, &wh).await;
    drop(inj);
    for ns in [
        "e2e-pss-probe",
        "e2e-psscni-probe",
        "e2e-pssdeploy-probe",
        "e2e-pssdeploy",
        "e2e-pss-privileged",
        "e2e-pss-baseline",
        "e2e-pss-restricted",
        "e2e-psscni-privileged",
        "e2e-psscni-baseline",
        "e2e-psscni-restricted",
    ] {
        delete_namespace(&client, ns).await;
    }
}

/// A ResourceQuota without a LimitRange, with one, a LimitRange whose max is below the proxy's
/// request, and the fix the warning gives: the webhook's verdict agrees with the API server's
/// own on the pod `inject --manual` makes (`kubectl create --dry-run=server`), a pod that can be
/// injected is, and one that cannot is created without the proxy, with the warning.
#[tokio::test]
async fn quota_and_limit_range_verdicts_agree_with_the_api_server() {
    let test = "quota";
    let client = control_plane().client().await;
    let quota = |ns: &str| {
        json!({"apiVersion": "v1", "kind": "ResourceQuota",
               "metadata": {"name": "compute", "namespace": ns},
               "spec": {"hard": {"requests.cpu": "4", "requests.memory": "4Gi",
                                 "limits.cpu": "8", "limits.memory": "8Gi"}}})
    };
    let range = |ns: &str, item: Value| {
        json!({"apiVersion": "v1", "kind": "LimitRange",
               "metadata": {"name": "range", "namespace": ns},
               "spec": {"limits": [item]}})
    };
    let resources = json!({
        "config.linkerd.io/proxy-cpu-request": "100m", "config.linkerd.io/proxy-cpu-limit": "1",
        "config.linkerd.io/proxy-memory-request": "20Mi", "config.linkerd.io/proxy-memory-limit": "250Mi"});
    // (namespace, its quota and range, the pod's annotations, whether injection is possible)
    let cases = [
        (
            "e2e-quota-alone",
            vec![quota("e2e-quota-alone")],
            json!({}),
            false,
        ),
        (
            "e2e-quota-defaults",
            vec![
                quota("e2e-quota-defaults"),
                range(
                    "e2e-quota-defaults",
                    json!({"type": "Container", "default": {"cpu": "500m", "memory": "256Mi"},
                           "defaultRequest": {"cpu": "50m", "memory": "64Mi"}}),
                ),
            ],
            json!({}),
            true,
        ),
        (
            "e2e-quota-max",
            vec![range(
                "e2e-quota-max",
                json!({"type": "Container", "max": {"cpu": "50m"}}),
            )],
            json!({"config.linkerd.io/proxy-cpu-request": "100m"}),
            false,
        ),
        (
            "e2e-quota-fixed",
            vec![quota("e2e-quota-fixed")],
            resources,
            true,
        ),
    ];
    for (ns, objects, _, _) in &cases {
        create_namespace(&client, ns, test, &[("linkerd.io/inject", "enabled")]).await;
        for o in objects {
            let out = control_plane().kubectl(&["create", "-f", "-"], Some(&o.to_string()));
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    // The quota admission refuses every pod until the quota controller has computed the
    // quota's status.
    for (ns, objects, _, _) in &cases {
        if objects.iter().any(|o| o["kind"] == "ResourceQuota") {
            let quotas: Api<k8s_openapi::api::core::v1::ResourceQuota> =
                Api::namespaced(client.clone(), ns);
            wait_until_async(
                format!("the quota in {ns} to have a status"),
                Duration::from_secs(60),
                async || {
                    quotas
                        .get("compute")
                        .await
                        .is_ok_and(|q| q.status.and_then(|s| s.hard).is_some())
                },
            )
            .await;
        }
    }
    create_namespace(
        &client,
        "e2e-quota-probe",
        test,
        &[("linkerd.io/inject", "enabled")],
    )
    .await;
    let (inj, wh) = injector_for(test, "e2e-quota-probe", &client).await;
    for (ns, _, annotations, injectable) in &cases {
        let app = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "app", "annotations": annotations},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.27", "resources": {
                "requests": {"cpu": "20m", "memory": "64Mi"},
                "limits": {"cpu": "40m", "memory": "128Mi"}}}]}
        });
        let v = verdicts(ns, &app, &[], &inj, ns);
        let (api_accepts, stderr) = (v.api_accepts, v.warning);
        assert_eq!(api_accepts, *injectable, "{ns}");
        if !api_accepts {
            assert!(
                stderr.contains("the proxy was not added because the API server would refuse"),
                "{ns}: {stderr}"
            );
        }
    }
    // check lists the namespaces whose quota or LimitRange keeps their pods from the mesh, and
    // explain says it of the uninjected pod.
    let blocked = blocked_by_admission(&wh);
    let blocked: Vec<&str> = blocked.iter().map(String::as_str).collect();
    eprintln!("check, injection blocked by the API server's admission: {blocked:?}");
    // The namespace verdict is for a pod with the namespace's own settings: the quota alone
    // blocks it (and in e2e-quota-fixed the fix is on the pod, not the namespace); the
    // LimitRange's defaults satisfy it.
    assert!(
        blocked.contains(&"namespace e2e-quota-alone"),
        "{blocked:?}"
    );
    assert!(
        blocked.contains(&"namespace e2e-quota-fixed"),
        "{blocked:?}"
    );
    assert!(
        !blocked.contains(&"namespace e2e-quota-defaults"),
        "{blocked:?}"
    );
    let out = std::process::Command::new(support::bin())
        .args(["explain", "app", "-n", "e2e-quota-alone"])
        .env("KUBECONFIG", &control_plane().kubeconfig)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ResourceQuota compute tracks limits.cpu"),
        "explain: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // At the moment of the mistake: kubectl prints /warn's warning for a quota created in an
    // injected namespace, and for a PodSecurity level put on one.
    let vwh = cluster::register_warn_webhook(&client, test, inj.port, &inj.ca_pem()).await;
    let warn_ns = "e2e-quota-warn";
    create_namespace(&client, warn_ns, test, &[("linkerd.io/inject", "enabled")]).await;
    let stderr = wait_for_async(
        Lazy(|| format!("kubectl to print the quota warning:\n{}", inj.logs())),
        Duration::from_secs(30),
        async || {
            let _ = control_plane().kubectl(
                &[
                    "delete",
                    "resourcequota",
                    "compute",
                    "-n",
                    warn_ns,
                    "--ignore-not-found",
                ],
                None,
            );
            let out =
                control_plane().kubectl(&["create", "-f", "-"], Some(&quota(warn_ns).to_string()));
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            stderr
                .contains("pods created in this namespace will be admitted without the proxy")
                .then_some(stderr)
        },
    )
    .await;
    eprintln!("kubectl create resourcequota: {}", stderr.trim());
    assert!(
        stderr.contains("kubectl annotate namespace e2e-quota-warn"),
        "{stderr}"
    );
    let out = control_plane().kubectl(
        &[
            "label",
            "namespace",
            warn_ns,
            "pod-security.kubernetes.io/enforce=baseline",
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("kubectl label namespace: {}", stderr.trim());
    assert!(
        stderr.contains(
            "pods created in namespace e2e-quota-warn will be admitted without the proxy"
        ) && stderr.contains("PodSecurity baseline:latest"),
        "{stderr}"
    );
    cluster::unregister_warn_webhook(&client, &vwh).await;
    cluster::unregister_webhook(&client, &wh).await;
    for (ns, _, _, _) in &cases {
        delete_namespace(&client, ns).await;
    }
    delete_namespace(&client, "e2e-quota-probe").await;
    delete_namespace(&client, warn_ns).await;
}

/// "Is it the proxy or my app?": meshed pods (made by hand, no kubelet) whose status is written
/// through the status subresource to each state a meshed pod gets stuck in, with Warning
/// Events as a kubelet writes them and a NetworkPolicy that cuts the proxies' egress; `explain`
/// gives each its verdict with the Events and NetworkPolicy verdicts as evidence, `check`
/// groups and counts them; `linkerd-config` names an older release than the pods' proxies, so
/// both say the proxies are not that release's, with the restart; after a trust-anchor
/// rotation in `linkerd-identity-trust-roots` `check` lists the pods injected before it.
#[tokio::test]
async fn meshed_pods_are_triaged_from_their_status() {
    let cp = control_plane();
    let client = cp.client().await;
    let ns = "e2e-triage";
    let cp_ns = "e2e-triage-linkerd";
    create_namespace(&client, ns, "triage", &[]).await;
    create_namespace(&client, cp_ns, "triage", &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, format!("controlPlaneNamespace: {cp_ns}\n")).unwrap();
    let roots = |pem: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "linkerd-identity-trust-roots", "namespace": cp_ns},
               "data": {"ca-bundle.crt": pem}})
        .to_string()
    };
    let sha = |pem: &str| {
        let d = ring::digest::digest(&ring::digest::SHA256, pem.as_bytes());
        d.as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let out = cp.kubectl(&["apply", "-f", "-"], Some(&roots("anchors A")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Linkerd's values name an older release than the pods' proxies run; the namespace is
    // meshed (no webhook selects it here: the pods below are made by hand).
    let apply = |doc: Value| {
        let out = cp.kubectl(&["apply", "-f", "-"], Some(&doc.to_string()));
        assert!(
            out.status.success(),
            "{doc}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "linkerd-config", "namespace": cp_ns},
        "data": {"values": "linkerdVersion: edge-25.4.4\n"}}));
    apply(json!({"apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": ns, "annotations": {"linkerd.io/inject": "enabled"}}}));
    // Egress cut but for DNS: the proxies cannot reach identity or destination.
    apply(
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "deny-egress", "namespace": ns},
        "spec": {"podSelector": {}, "policyTypes": ["Egress"],
                 "egress": [{"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]}}),
    );
    let cs = |name: &str, ready: bool, restarts: i32, state: Value, last: Value| {
        json!({"name": name, "ready": ready, "restartCount": restarts, "image": format!("cr.l5d.io/linkerd/{name}:edge-26.8.3"),
               "imageID": "", "state": state, "lastState": last})
    };
    // Long ago: a proxy not ready since then is not still starting.
    let t = "2020-01-01T00:00:00Z";
    let ok = |name: &str| {
        cs(
            name,
            true,
            0,
            json!({"running": {"startedAt": t}}),
            json!({}),
        )
    };
    let init_done = || {
        cs(
            "linkerd-init",
            true,
            0,
            json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": t, "finishedAt": t}}),
            json!({}),
        )
    };
    // Waiting for the init containers before it.
    let initializing = |name: &str| {
        cs(
            name,
            false,
            0,
            json!({"waiting": {"reason": "PodInitializing"}}),
            json!({}),
        )
    };
    let crashed = |code: i32, reason: &str| json!({"terminated": {"exitCode": code, "reason": reason, "startedAt": t, "finishedAt": t}});
    let backoff = json!({"waiting": {"reason": "CrashLoopBackOff"}});
    // (pod, linkerd-init, proxy, app, what explain must say)
    let cases = [
        (
            "init-failed",
            cs(
                "linkerd-init",
                false,
                3,
                backoff.clone(),
                crashed(1, "Error"),
            ),
            initializing("linkerd-proxy"),
            initializing("app"),
            "linkerd-init failed (exit code 1, Error; 3 restarts)",
        ),
        (
            "proxy-image",
            init_done(),
            cs(
                "linkerd-proxy",
                false,
                0,
                json!({"waiting": {"reason": "ImagePullBackOff", "message": "not found"}}),
                json!({}),
            ),
            initializing("app"),
            "its image cr.l5d.io/linkerd/linkerd-proxy:edge-26.8.3 cannot be pulled",
        ),
        (
            "proxy-oom",
            init_done(),
            cs(
                "linkerd-proxy",
                false,
                4,
                backoff.clone(),
                crashed(137, "OOMKilled"),
            ),
            ok("app"),
            "the proxy was OOM-killed under its memory limit 64Mi (4 restarts)",
        ),
        (
            "proxy-crash",
            init_done(),
            cs(
                "linkerd-proxy",
                false,
                6,
                backoff.clone(),
                crashed(101, "Error"),
            ),
            ok("app"),
            "the proxy keeps crashing (exit code 101, Error; 6 restarts)",
        ),
        (
            "proxy-unready",
            init_done(),
            cs(
                "linkerd-proxy",
                false,
                0,
                json!({"running": {"startedAt": t}}),
                json!({}),
            ),
            ok("app"),
            "the proxy is running but not ready",
        ),
        (
            "app-crash",
            init_done(),
            ok("linkerd-proxy"),
            cs("app", false, 5, backoff.clone(), crashed(2, "Error")),
            "the mesh is up (the proxy is ready); the app is not: app crash-loops (exit code 2, Error)",
        ),
        (
            "all-ready",
            init_done(),
            ok("linkerd-proxy"),
            ok("app"),
            "the proxy and the app are ready",
        ),
    ];
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    for (name, init, proxy, app, _) in &cases {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": {"linkerd.io/trust-root-sha256": sha("anchors A")}},
            "spec": {
                "initContainers": [
                    {"name": "linkerd-init", "image": "cr.l5d.io/linkerd/proxy:edge-26.8.3"},
                    {"name": "linkerd-proxy", "image": "cr.l5d.io/linkerd/proxy:edge-26.8.3", "restartPolicy": "Always",
                     "resources": {"limits": {"memory": "64Mi"}}}],
                "containers": [{"name": "app", "image": "nginx:1.27"}]}
        }))
        .unwrap();
        pods.create(&PostParams::default(), &p).await.unwrap();
        let status = json!({"status": {"phase": "Pending",
            "initContainerStatuses": [init, proxy], "containerStatuses": [app]}});
        let out = cp.kubectl(
            &[
                "patch",
                "pod",
                name,
                "-n",
                ns,
                "--subresource=status",
                "--type=merge",
                "-p",
                &status.to_string(),
            ],
            None,
        );
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Warning Events as the kubelet writes them: the evidence of the verdicts.
    let event = |n: u32, pod: &str, field: &str, reason: &str, count: i32, message: &str| {
        json!({"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": format!("{pod}.{n}"), "namespace": ns},
            "involvedObject": {"kind": "Pod", "apiVersion": "v1", "namespace": ns, "name": pod,
                               "fieldPath": field},
            "reason": reason, "message": message, "type": "Warning", "count": count,
            "source": {"component": "kubelet"}, "firstTimestamp": t, "lastTimestamp": t})
    };
    let proxy_field = "spec.initContainers{linkerd-proxy}";
    apply(event(
        1,
        "proxy-unready",
        proxy_field,
        "Unhealthy",
        12,
        "Startup probe failed: HTTP probe failed with statuscode: 503",
    ));
    apply(event(
        2,
        "proxy-unready",
        "spec.containers{app}",
        "Unhealthy",
        2,
        "Readiness probe failed: the app's own probe",
    ));
    apply(event(
        1,
        "proxy-image",
        proxy_field,
        "Failed",
        5,
        "Failed to pull image \"cr.l5d.io/linkerd/proxy:edge-26.8.3\": not found",
    ));
    let evidence = [
        (
            "proxy-unready",
            "evidence: Event Unhealthy (×12, linkerd-proxy): Startup probe failed: HTTP probe failed with statuscode: 503",
        ),
        (
            "proxy-unready",
            "evidence: identity path: egress to the identity controller",
        ),
        (
            "proxy-unready",
            "NetworkPolicies deny its identity and destination paths",
        ),
        (
            "proxy-image",
            "evidence: Event Failed (×5, linkerd-proxy): Failed to pull image",
        ),
    ];
    let run = |args: &[&str]| {
        let out = std::process::Command::new(support::bin())
            .args(args)
            .env("KUBECONFIG", &cp.kubeconfig)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for (name, _, _, _, says) in &cases {
        let text = run(&[
            "explain",
            name,
            "-n",
            ns,
            "--config",
            config.to_str().unwrap(),
        ]);
        let line = text
            .lines()
            .find(|l| l.contains("how it is doing"))
            .unwrap_or_else(|| panic!("{name}: no verdict:\n{text}"));
        eprintln!("{name}: {}", line.trim());
        assert!(line.contains(says), "{name}: {line}");
        for (_, want) in evidence.iter().filter(|(p, _)| p == name) {
            assert!(text.contains(want), "{name}: {want:?} missing:\n{text}");
        }
        // Only the containers at fault are quoted: not the app's probe behind the proxy's.
        assert!(!text.contains("the app's own probe"), "{name}:\n{text}");
        // The release linkerd-config names, and the proxy that is not its.
        assert!(
            text.starts_with(&format!(
                "release: Linkerd 2.18 (edge-25.4.4) (from this injector's config with the values of ConfigMap {cp_ns}/linkerd-config)"
            )),
            "{name}:\n{text}"
        );
        let stale = format!(
            "running pod: proxy cr.l5d.io/linkerd/proxy:edge-26.8.3 is not Linkerd 2.18 (edge-25.4.4)'s: \
             a new pod would get cr.l5d.io/linkerd/proxy:edge-25.4.4; restart needed: kubectl delete pod -n {ns} {name}"
        );
        assert!(text.contains(&stale), "{name}:\n{text}");
    }
    let check = |cfg: &str| -> Value {
        serde_json::from_str(&run(&["check", "-o", "json", "--config", cfg])).unwrap()
    };
    let report = check(config.to_str().unwrap());
    let groups: Vec<(String, bool)> = report["meshed_pods"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["namespace"] == ns)
        .map(|g| {
            (
                format!(
                    "{} {}",
                    g["name"].as_str().unwrap(),
                    g["verdict"].as_str().unwrap()
                ),
                g["mesh"].as_bool().unwrap(),
            )
        })
        .collect();
    eprintln!("check: {groups:?}");
    let want: Vec<(String, bool)> = [
        ("app-crash app_not_ready", false),
        ("init-failed init_failed", true),
        ("proxy-crash proxy_crash_loop", true),
        ("proxy-image proxy_image", true),
        ("proxy-oom proxy_oom_killed", true),
        ("proxy-unready proxy_not_ready", true),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_owned(), b))
    .collect();
    assert_eq!(groups, want);
    let unready = report["meshed_pods"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["namespace"] == ns && g["verdict"] == "proxy_not_ready")
        .unwrap();
    assert!(
        unready["fix"]
            .as_str()
            .unwrap()
            .contains("allow-linkerd-identity, allow-linkerd-destination"),
        "{unready}"
    );
    assert!(
        unready["evidence"]
            .to_string()
            .contains("Startup probe failed"),
        "{unready}"
    );
    // Every pod runs another release's proxy than linkerd-config's: listed with the restart.
    let outdated: Vec<&str> = report["outdated_proxy"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["namespace"] == ns)
        .map(|o| o["fix"].as_str().unwrap())
        .collect();
    assert_eq!(outdated.len(), cases.len(), "{report}");
    assert!(
        outdated[0].starts_with(&format!("kubectl delete pod -n {ns} ")),
        "{outdated:?}"
    );
    assert!(
        report["release"] == "Linkerd 2.18 (edge-25.4.4)"
            && report["release_from"]
                .as_str()
                .unwrap()
                .ends_with(&format!("values of ConfigMap {cp_ns}/linkerd-config")),
        "{report}"
    );
    let stale = |r: &Value| -> Vec<String> {
        r["meshed_pods"]["old_trust_anchors"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w["namespace"] == ns)
            .map(|w| w["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(stale(&report).is_empty(), "{report}");
    // The trust anchors rotate: every pod injected before carries the old ones.
    let out = cp.kubectl(&["apply", "-f", "-"], Some(&roots("anchors B")));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = check(config.to_str().unwrap());
    let mut listed = stale(&report);
    listed.sort();
    let mut all: Vec<String> = cases.iter().map(|c| c.0.to_owned()).collect();
    all.sort();
    assert_eq!(listed, all, "{report}");
    let fix = report["meshed_pods"]["old_trust_anchors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["namespace"] == ns)
        .unwrap()["fix"]
        .as_str()
        .unwrap()
        .to_owned();
    eprintln!(
        "after the rotation: {} pods listed; fix: {fix}",
        listed.len()
    );
    assert!(fix.starts_with("kubectl delete pod -n e2e-triage"), "{fix}");
    delete_namespace(&client, ns).await;
    delete_namespace(&client, cp_ns).await;
}

/// The webhook's verdict and the API server's own on one pod.
struct Verdicts {
    /// Whether the API server accepts the pod `inject --manual` makes
    /// (`kubectl create --dry-run=server`).
    api_accepts: bool,
    /// What kubectl printed when the pod as it is was created through the webhook.
    warning: String,
}

/// Both verdicts on `pod` in namespace `ns` (`manual_args`: more arguments to `inject
/// --manual`, such as its config); the pod is created for real, must be admitted, and must be
/// injected exactly when the API server accepts the injected pod.
fn verdicts(ns: &str, pod: &Value, manual_args: &[&str], inj: &Injector, what: &str) -> Verdicts {
    let mut manual = std::process::Command::new(support::bin());
    manual.args(["inject", "--manual", "-o", "json", "-f", "-"]);
    manual.args(manual_args);
    let injected = run_with_stdin(manual, &pod.to_string());
    let api_says = control_plane().kubectl(
        &[
            "create",
            "--dry-run=server",
            "-n",
            ns,
            "-o",
            "json",
            "-f",
            "-",
        ],
        Some(&injected),
    );
    let api_accepts = api_says.status.success();
    let created = control_plane().kubectl(
        &["create", "-n", ns, "-o", "json", "-f", "-"],
        Some(&pod.to_string()),
    );
    let warning = String::from_utf8_lossy(&created.stderr).into_owned();
    assert!(
        created.status.success(),
        "{what}: the pod was refused: {warning}\n{}",
        inj.logs()
    );
    let created: Pod = serde_json::from_slice(&created.stdout).unwrap();
    eprintln!(
        "{what}: the API server {} the injected pod{}; the webhook {} it{}",
        if api_accepts { "accepts" } else { "refuses" },
        if api_accepts {
            String::new()
        } else {
            format!(" ({})", String::from_utf8_lossy(&api_says.stderr).trim())
        },
        if meshed(&created) {
            "injected"
        } else {
            "did not inject"
        },
        if warning.is_empty() {
            String::new()
        } else {
            format!(" ({})", warning.trim())
        }
    );
    assert_eq!(
        meshed(&created),
        api_accepts,
        "{what}: the webhook and the API server disagree; the API server said: {}",
        String::from_utf8_lossy(&api_says.stderr)
    );
    Verdicts {
        api_accepts,
        warning,
    }
}

/// Labels namespace `ns` to enforce PodSecurity `level`.
async fn enforce(namespaces: &Api<Namespace>, ns: &str, level: &str) {
    namespaces
        .patch(
            ns,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {
                "pod-security.kubernetes.io/enforce": level}}})),
        )
        .await
        .unwrap();
}

/// What `check -o json` lists as blocked by the API server's admission.
fn blocked_by_admission(webhook: &str) -> Vec<String> {
    let out = std::process::Command::new(support::bin())
        .args(["check", "--webhook", webhook, "-o", "json"])
        .env("KUBECONFIG", &control_plane().kubeconfig)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let blocked = report["blocked_by_api_server"].as_array().unwrap();
    blocked
        .iter()
        .filter_map(|b| b["what"].as_str().map(str::to_owned))
        .collect()
}

/// Runs `cmd` with `stdin`, and returns its standard output (panics on failure).
fn run_with_stdin(mut cmd: std::process::Command, stdin: &str) -> String {
    use std::io::Write;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
