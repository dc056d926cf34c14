//! End to end through the local kube-apiserver: NetworkPolicies that cut meshed proxies off
//! what they need are warned about at `kubectl apply` time (the warnings webhook reviews
//! NetworkPolicies) and reported by `check` with a fix that, applied, makes `check` clean.

#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, PostParams};
use proxy_injector::check::network::meshed;
use serde_json::{Value, json};
use support::cluster::{self, control_plane, create_namespace, delete_namespace, register_webhook};
use support::{Injector, Lazy, wait_until_async};

const DENY_EGRESS: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: default-deny-egress\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n";

const DNS_ONLY: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: dns-only\nspec:\n  podSelector: {}\n  policyTypes: [Egress]\n  egress:\n  - ports:\n    - {port: 53, protocol: UDP}\n    - {port: 53, protocol: TCP}\n";

/// `kubectl apply -n ns -f -` of `manifest`: its stderr (where kubectl prints warnings).
fn apply(ns: &str, manifest: &str) -> String {
    let out = control_plane().kubectl(&["apply", "-n", ns, "-f", "-"], Some(manifest));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "kubectl apply in {ns}: {stderr}");
    stderr
}

fn delete(ns: &str, what: &str) {
    let out = control_plane().kubectl(&["delete", "-n", ns, what, "--ignore-not-found"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn warnings(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("Warning:"))
        .collect()
}

/// `proxy-injector check` against the local control plane: its text output.
fn check_text() -> String {
    let cp = control_plane();
    let out = std::process::Command::new(support::bin())
        .args(["check", "--webhook", "e2e-netpol"])
        .env("KUBECONFIG", &cp.kubeconfig)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The network section's lines about workloads in `ns`, and the fix printed for them (the
/// text between the heredoc lines).
fn network_of(text: &str, ns: &str) -> (Vec<String>, String) {
    let mut lines = Vec::new();
    let mut fix = String::new();
    let mut ours = false;
    let mut in_fix = false;
    for l in text.lines() {
        if in_fix {
            if l == "EOF" {
                in_fix = false;
            } else if ours {
                fix.push_str(l);
                fix.push('\n');
            }
            continue;
        }
        if l.starts_with("  ") && !l.starts_with("    ") {
            ours = l.trim_start().starts_with(&format!("{ns}/"));
            if ours {
                lines.push(l.trim().to_owned());
            }
        } else if l
            .trim_start()
            .starts_with("fix: kubectl apply -f - <<'EOF'")
        {
            in_fix = true;
        } else if !l.starts_with(' ') {
            ours = false;
        }
    }
    (lines, fix)
}

/// `proxy-injector check -o json` against the local control plane.
fn check_json() -> Value {
    let cp = control_plane();
    let out = std::process::Command::new(support::bin())
        .args(["check", "-o", "json", "--webhook", "e2e-netpol"])
        .env("KUBECONFIG", &cp.kubeconfig)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "check -o json: {e}\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[tokio::test]
async fn network_policies_that_cut_the_proxy_off_are_warned_about_and_checked() {
    let test = "netpol";
    let (ns, plain) = ("e2e-netpol", "e2e-netpol-plain");
    let client = control_plane().client().await;
    create_namespace(&client, ns, test, &[("linkerd.io/inject", "enabled")]).await;
    create_namespace(&client, plain, test, &[]).await;
    let cp = control_plane();
    let inj = Injector::start(&[], &[("KUBECONFIG", cp.kubeconfig.to_str().unwrap())]);
    inj.wait_ready(Duration::from_secs(30), "injector").await;
    let wh = register_webhook(&client, test, inj.port, &inj.ca_pem(), "Fail").await;
    let vwh = cluster::register_warn_webhook(&client, test, inj.port, &inj.ca_pem()).await;

    // A meshed workload: the pods the controller-manager makes get the proxy (once the API
    // server calls the new registration).
    let deploy: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}
    }))
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    wait_until_async(
        Lazy(|| format!("the API server to call the webhook:\n{}", inj.logs())),
        Duration::from_secs(30),
        async || {
            let dry = PostParams {
                dry_run: true,
                ..Default::default()
            };
            let probe: Pod = serde_json::from_value(json!({"metadata": {"name": "probe"},
                "spec": {"containers": [{"name": "a", "image": "nginx:1.27"}]}}))
            .unwrap();
            pods.create(&dry, &probe).await.is_ok_and(|p| meshed(&p))
        },
    )
    .await;
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &deploy)
        .await
        .unwrap();
    wait_until_async("2 meshed pods", Duration::from_secs(60), async || {
        let list = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap();
        list.items.len() == 2 && list.items.iter().all(meshed)
    })
    .await;

    // The default-deny egress policy: warned, once the warnings webhook is called and the
    // injector's watch has seen the meshed pods ("1 meshed workload").
    let deny_warning = "Warning: NetworkPolicy \"default-deny-egress\" in e2e-netpol blocks the \
        linkerd-proxy of 1 meshed workload from the destination controller (TCP 8086 to linkerd)";
    let said = std::cell::RefCell::new(String::new());
    wait_until_async(
        Lazy(|| {
            format!(
                "the warning for default-deny-egress; kubectl said {:?}\n{}",
                said.borrow(),
                inj.logs()
            )
        }),
        Duration::from_secs(30),
        async || {
            let out = cp.kubectl(
                &["apply", "--dry-run=server", "-n", ns, "-f", "-"],
                Some(DENY_EGRESS),
            );
            *said.borrow_mut() = String::from_utf8_lossy(&out.stderr).into_owned();
            said.borrow().contains(deny_warning)
        },
    )
    .await;
    let stderr = apply(ns, DENY_EGRESS);
    let w = warnings(&stderr);
    eprintln!("kubectl apply of default-deny-egress:\n{stderr}");
    assert_eq!(
        w.len(),
        5,
        "identity, destination, policy, DNS UDP and TCP: {w:#?}"
    );
    assert!(w.iter().any(|l| l.contains(deny_warning)), "{w:#?}");
    assert!(
        w.iter().any(|l| l.contains("proxy-injector check")),
        "{w:#?}"
    );

    // The same policy in a namespace without meshed pods: no warning.
    let stderr = apply(plain, DENY_EGRESS);
    assert!(warnings(&stderr).is_empty(), "unmeshed namespace: {stderr}");

    // `check` names the policy and each path, and prints a fix.
    let text = check_text();
    let (lines, fix) = network_of(&text, ns);
    eprintln!(
        "check, the network section for {ns}:\n{}\nfix:\n{fix}",
        lines.join("\n")
    );
    assert_eq!(lines.len(), 5, "{text}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("blocked by e2e-netpol/default-deny-egress")),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("e2e-netpol/deployment web (2 pods): egress to the destination controller (TCP 8086 to linkerd)")),
        "{text}"
    );
    let json = check_json();
    let ours: Vec<&Value> = json["network"]["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["namespace"] == ns)
        .collect();
    assert_eq!(ours.len(), 1, "{json}");
    assert_eq!(ours[0]["fix"].as_array().unwrap().len(), 5, "{json}");
    assert!(json["problems"].as_u64().unwrap() >= 5, "{json}");

    // The fix, applied as printed, makes `check` clean for the namespace; with it in place a
    // default-deny egress policy created again is silent.
    let out = cp.kubectl(&["apply", "-f", "-"], Some(&fix));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = check_text();
    let (lines, _) = network_of(&text, ns);
    assert!(lines.is_empty(), "after the fix: {lines:?}\n{text}");
    delete(ns, "networkpolicy/default-deny-egress");
    let stderr = apply(ns, DENY_EGRESS);
    assert!(
        warnings(&stderr).is_empty(),
        "with the fix in place: {stderr}"
    );

    // A policy allowing only DNS (the fix gone): the control-plane paths are still cut.
    let out = cp.kubectl(&["delete", "-n", ns, "networkpolicy", "--all"], None);
    assert!(out.status.success());
    let stderr = apply(ns, DNS_ONLY);
    let w = warnings(&stderr);
    assert_eq!(w.len(), 3, "identity, destination, policy: {stderr}");
    assert!(w.iter().all(|l| !l.contains("DNS")), "{stderr}");
    let (lines, _) = network_of(&check_text(), ns);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines.iter().all(|l| l.contains("controller")), "{lines:?}");

    cluster::unregister_warn_webhook(&client, &vwh).await;
    cluster::unregister_webhook(&client, &wh).await;
    delete_namespace(&client, ns).await;
    delete_namespace(&client, plain).await;
}
