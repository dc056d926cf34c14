//! The install path against the real control plane: the kustomize manifests render, apply
//! (server dry-run, then for real), carry the expected webhook configuration, RBAC and Secret,
//! and the service account's RBAC is enough for `serve` and no more.

#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::Api;
use kube::api::{DeleteParams, ListParams};
use serde_json::{Value, json};
use support::Injector;
use support::cluster::control_plane;

fn ok(out: &std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn manifests_render_apply_and_grant_least_privilege() {
    let cp = control_plane();
    let client = cp.client().await;
    let manifests = support::repo().join("manifests");
    let m = manifests.to_str().unwrap();

    // Renders, with every object the install needs.
    let rendered = ok(
        &cp.kubectl(&["kustomize", m], None),
        "kubectl kustomize manifests/",
    );
    let kinds: Vec<String> = serde_saphyr::from_multiple::<Value>(&rendered)
        .unwrap()
        .into_iter()
        .map(|v| {
            format!(
                "{}/{}",
                v["kind"].as_str().unwrap(),
                v["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    for want in [
        "Namespace/proxy-injector",
        "ServiceAccount/proxy-injector",
        "ClusterRole/proxy-injector",
        "ClusterRoleBinding/proxy-injector",
        "ConfigMap/proxy-injector-config",
        "Deployment/proxy-injector",
        "Service/proxy-injector",
        "PodDisruptionBudget/proxy-injector",
        "MutatingWebhookConfiguration/proxy-injector",
        "ValidatingWebhookConfiguration/proxy-injector-warnings",
    ] {
        assert!(
            kinds.iter().any(|k| k == want),
            "{want} missing from {kinds:?}"
        );
    }
    let rendered_cm = ok(
        &cp.kubectl(
            &[
                "kustomize",
                manifests.join("overlays/cert-manager").to_str().unwrap(),
            ],
            None,
        ),
        "kubectl kustomize overlays/cert-manager",
    );
    assert!(rendered_cm.contains("cert-manager.io/inject-ca-from: proxy-injector/proxy-injector"));
    assert!(rendered_cm.contains("kind: Certificate"));

    // Server-side dry run: accepted, nothing stored. (A dry run creates no namespace, so the
    // namespaced objects need it to exist: create it first, as `kubectl apply` users do.)
    let ns_file = manifests.join("base/namespace.yaml");
    ok(
        &cp.kubectl(&["apply", "-f", ns_file.to_str().unwrap()], None),
        "apply namespace",
    );
    ok(
        &cp.kubectl(&["apply", "--dry-run=server", "-k", m], None),
        "apply --dry-run=server",
    );
    let mwcs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    assert!(
        mwcs.get_opt("proxy-injector").await.unwrap().is_none(),
        "dry run stored the webhook"
    );

    // For real, then the certificates the way `make deploy-certs` does it.
    ok(&cp.kubectl(&["apply", "-k", m], None), "apply -k manifests");
    let dir = tempfile::tempdir().unwrap();
    let st = std::process::Command::new(support::bin())
        .args(["certs", "--kubernetes", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    ok(&st, "proxy-injector certs --kubernetes");
    let secret_file = dir.path().join("secret.yaml");
    ok(
        &cp.kubectl(&["apply", "-f", secret_file.to_str().unwrap()], None),
        "apply secret.yaml",
    );
    let patch = dir.path().join("webhook-patch.json");
    ok(
        &cp.kubectl(
            &[
                "patch",
                "mutatingwebhookconfiguration",
                "proxy-injector",
                "--type=json",
                "--patch-file",
                patch.to_str().unwrap(),
            ],
            None,
        ),
        "patch caBundle",
    );
    ok(
        &cp.kubectl(
            &[
                "patch",
                "validatingwebhookconfiguration",
                "proxy-injector-warnings",
                "--type=json",
                "--patch-file",
                patch.to_str().unwrap(),
            ],
            None,
        ),
        "patch caBundle (warnings)",
    );
    // The warnings webhook: /warn, never blocking, the same CA.
    let vwc = Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .get("proxy-injector-warnings")
        .await
        .unwrap();
    let vw = &vwc.webhooks.as_ref().unwrap()[0];
    assert_eq!(vw.failure_policy.as_deref(), Some("Ignore"));
    assert_eq!(
        vw.client_config.service.as_ref().unwrap().path.as_deref(),
        Some("/warn")
    );
    assert_eq!(
        vw.client_config.ca_bundle.as_ref().unwrap().0,
        std::fs::read(dir.path().join("ca.crt")).unwrap()
    );

    // The webhook configuration.
    let mwc = mwcs.get("proxy-injector").await.unwrap();
    let wh = &mwc.webhooks.as_ref().unwrap()[0];
    let ca = std::fs::read(dir.path().join("ca.crt")).unwrap();
    assert_eq!(
        wh.client_config.ca_bundle.as_ref().unwrap().0,
        ca,
        "caBundle is the generated CA"
    );
    let svc = wh.client_config.service.as_ref().unwrap();
    assert_eq!(
        (
            svc.namespace.as_str(),
            svc.name.as_str(),
            svc.path.as_deref(),
            svc.port
        ),
        (
            "proxy-injector",
            "proxy-injector",
            Some("/inject"),
            Some(443)
        )
    );
    assert_eq!(wh.failure_policy.as_deref(), Some("Ignore"));
    assert_eq!(wh.side_effects, "NoneOnDryRun");
    assert_eq!(wh.admission_review_versions, ["v1"]);
    assert!(wh.timeout_seconds.unwrap() <= 10);
    let rule = &wh.rules.as_ref().unwrap()[0];
    assert_eq!(
        rule.operations.as_deref(),
        Some(&["CREATE".to_string()][..])
    );
    assert_eq!(
        rule.resources.as_deref(),
        Some(&["pods".to_string(), "services".to_string()][..])
    );
    let sel = serde_json::to_value(&wh.namespace_selector)
        .unwrap()
        .to_string();
    for needle in [
        "kube-system",
        "\"proxy-injector\"",
        "config.linkerd.io/admission-webhooks",
        "disabled",
    ] {
        assert!(
            sel.contains(needle),
            "namespaceSelector lacks {needle}: {sel}"
        );
    }

    // RBAC: exactly namespaces get/list/watch, NetworkPolicies and pods list/watch, events
    // create/patch.
    let role = Api::<ClusterRole>::all(client.clone())
        .get("proxy-injector")
        .await
        .unwrap();
    let mut rules: Vec<String> = role
        .rules
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{:?} {:?} {:?}",
                r.api_groups.clone().unwrap_or_default(),
                r.resources.clone().unwrap_or_default(),
                r.verbs
            )
        })
        .collect();
    rules.sort();
    assert_eq!(
        rules,
        [
            r#"[""] ["events"] ["create", "patch"]"#,
            r#"[""] ["namespaces"] ["get", "list", "watch"]"#,
            r#"[""] ["pods"] ["list", "watch"]"#,
            r#"[""] ["resourcequotas", "limitranges"] ["list", "watch"]"#,
            r#"["events.k8s.io"] ["events"] ["create", "patch"]"#,
            r#"["networking.k8s.io"] ["networkpolicies"] ["list", "watch"]"#,
        ]
    );

    // The TLS Secret.
    let secret = Api::<Secret>::namespaced(client.clone(), "proxy-injector")
        .get("proxy-injector-tls")
        .await
        .unwrap();
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    let data = secret.data.unwrap();
    assert!(data.contains_key("tls.crt") && data.contains_key("tls.key"));

    // The Deployment is accepted, and its pods pass the namespace's `restricted` Pod Security
    // level (the controller-manager could create them; no kubelet runs them here).
    let deploy = Api::<Deployment>::namespaced(client.clone(), "proxy-injector")
        .get("proxy-injector")
        .await
        .unwrap();
    assert_eq!(deploy.spec.as_ref().unwrap().replicas, Some(2));
    // Probes go to the plain-HTTP admin port (so --client-ca can guard 8443).
    let container = &deploy
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0];
    let args = container.args.clone().unwrap_or_default();
    assert!(
        args.contains(&"--admin-listen=0.0.0.0:9995".to_string()),
        "{args:?}"
    );
    for probe in [&container.readiness_probe, &container.liveness_probe] {
        let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(
            serde_json::to_value(&get.port).unwrap(),
            json!("admin-http")
        );
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), "proxy-injector");
    support::wait_until_async(
        "the Deployment's 2 pods to be created (if not: Pod Security?)",
        Duration::from_secs(60),
        async || pods.list(&ListParams::default()).await.unwrap().items.len() >= 2,
    )
    .await;

    // Run `serve` as the manifests' service account: enough to become ready (namespace watch)...
    let token = ok(
        &cp.kubectl(
            &["-n", "proxy-injector", "create", "token", "proxy-injector"],
            None,
        ),
        "create token",
    );
    let admin: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(&cp.kubeconfig).unwrap()).unwrap();
    let cluster = &admin["clusters"][0]["cluster"];
    let sa_kubeconfig = dir.path().join("sa.kubeconfig");
    std::fs::write(
        &sa_kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: {}\n    certificate-authority: {}\n\
             users:\n- name: sa\n  user:\n    token: {}\ncontexts:\n- name: sa\n  context: {{cluster: local, user: sa}}\ncurrent-context: sa\n",
            cluster["server"].as_str().unwrap(),
            cluster["certificate-authority"].as_str().unwrap(),
            token.trim()
        ),
    )
    .unwrap();
    let inj = Injector::start(&[], &[("KUBECONFIG", sa_kubeconfig.to_str().unwrap())]);
    inj.wait_ready(Duration::from_secs(30), "serve as the service account")
        .await;
    // ...and no more.
    let sa = sa_kubeconfig.to_str().unwrap();
    let can = |verb: &str, what: &str| {
        let out = cp.kubectl(
            &["--kubeconfig", sa, "auth", "can-i", verb, what, "-A"],
            None,
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(can("watch", "namespaces"), "yes");
    assert_eq!(can("create", "events"), "yes");
    // The NetworkPolicy warnings: list and watch policies and (meshed) pods.
    assert_eq!(can("watch", "networkpolicies.networking.k8s.io"), "yes");
    assert_eq!(can("list", "pods"), "yes");
    // What the API server would refuse of the injected containers.
    assert_eq!(can("watch", "resourcequotas"), "yes");
    assert_eq!(can("watch", "limitranges"), "yes");
    for (verb, what) in [
        ("create", "resourcequotas"),
        ("list", "secrets"),
        ("get", "secrets"),
        ("create", "pods"),
        ("get", "pods"),
        ("create", "networkpolicies.networking.k8s.io"),
        ("delete", "namespaces"),
        ("update", "mutatingwebhookconfigurations"),
    ] {
        assert_eq!(
            can(verb, what),
            "no",
            "the service account may {verb} {what}"
        );
    }
    // The service account records Events: an injected pod's ReplicaSet gets one.
    let review = support::pod_review(
        "sa-event",
        "proxy-injector",
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"generateName": "web-5d9-", "namespace": "proxy-injector",
                   "annotations": {"linkerd.io/inject": "enabled"},
                   "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d9",
                       "uid": "6f1c3a52-0000-4000-8000-000000000001", "controller": true}]},
               "spec": {"containers": [{"name": "app", "image": "nginx"}]}}),
    );
    let c = support::client(&inj.ca_pem());
    let r = inj.post_review(&c, &review).await;
    assert_eq!(r.status(), 200);
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), "proxy-injector");
    support::wait_until_async(
        support::Lazy(|| format!("an Injected event on ReplicaSet web-5d9:\n{}", inj.logs())),
        Duration::from_secs(15),
        async || {
            let list = events.list(&ListParams::default()).await.unwrap();
            list.items.iter().any(|e| {
                e.reason.as_deref() == Some("Injected")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("web-5d9")
            })
        },
    )
    .await;
    let denied = cp.kubectl(
        &["--kubeconfig", sa, "get", "secrets", "-n", "proxy-injector"],
        None,
    );
    assert!(!denied.status.success());
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("Forbidden"),
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );

    // The Linkerd overlay: Linkerd's selectors, --watch-linkerd-config, and a Role that is
    // enough to follow Linkerd's two ConfigMaps (serve becomes ready only once it read both)
    // and no more.
    let overlay = manifests.join("overlays/linkerd");
    let rendered = ok(
        &cp.kubectl(&["kustomize", overlay.to_str().unwrap()], None),
        "kubectl kustomize overlays/linkerd",
    );
    for needle in [
        "--watch-linkerd-config",
        "objectSelector",
        "linkerd.io/control-plane-component",
        "cert-manager",
    ] {
        assert!(rendered.contains(needle), "overlay lacks {needle}");
    }
    let rbac: Vec<Value> = serde_saphyr::from_multiple::<Value>(&rendered)
        .unwrap()
        .into_iter()
        .filter(|d| d["metadata"]["namespace"] == "linkerd")
        .collect();
    assert_eq!(rbac.len(), 2, "a Role and its RoleBinding in linkerd");
    ok(
        &cp.kubectl(&["create", "namespace", "linkerd"], None),
        "create namespace linkerd",
    );
    let rbac_yaml: String = rbac
        .iter()
        .map(|d| format!("---\n{}\n", serde_json::to_string(d).unwrap()))
        .collect();
    ok(
        &cp.kubectl(&["apply", "-f", "-"], Some(&rbac_yaml)),
        "apply the overlay's Role",
    );
    let configmaps = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: linkerd-config, namespace: linkerd}\n\
        data:\n  values: |\n    proxy:\n      logLevel: info\n---\n\
        apiVersion: v1\nkind: ConfigMap\nmetadata: {name: linkerd-identity-trust-roots, namespace: linkerd}\n\
        data:\n  ca-bundle.crt: |\n    root\n";
    ok(
        &cp.kubectl(&["apply", "-f", "-"], Some(configmaps)),
        "create Linkerd's ConfigMaps",
    );
    let follower = Injector::start(
        &["--watch-linkerd-config"],
        &[("KUBECONFIG", sa_kubeconfig.to_str().unwrap())],
    );
    follower
        .wait_ready(
            Duration::from_secs(30),
            "serve --watch-linkerd-config as the service account",
        )
        .await;
    let can_in_linkerd = |verb: &str, what: &str| {
        let out = cp.kubectl(
            &[
                "--kubeconfig",
                sa,
                "auth",
                "can-i",
                verb,
                what,
                "-n",
                "linkerd",
            ],
            None,
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(can_in_linkerd("get", "configmaps/linkerd-config"), "yes");
    assert_eq!(can_in_linkerd("get", "configmaps/other"), "no");
    assert_eq!(can_in_linkerd("get", "secrets"), "no");
    drop(follower);

    // Clean up: the webhook first (it would otherwise be called for every pod).
    let _ = mwcs
        .delete("proxy-injector", &DeleteParams::default())
        .await;
    ok(
        &cp.kubectl(
            &["delete", "-k", m, "--wait=false", "--ignore-not-found"],
            None,
        ),
        "delete -k manifests",
    );
}
