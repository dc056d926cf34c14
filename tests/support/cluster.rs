//! The local control plane for e2e tests: started once per test binary by
//! tests/controlplane/cluster.sh, with a watchdog that stops it when the test binary exits
//! (also when a test panics or the binary is killed).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

pub struct ControlPlane {
    pub kubeconfig: PathBuf,
    pub kubectl: PathBuf,
    /// The CA of the client certificate the API server presents to webhooks.
    pub webhook_client_ca: PathBuf,
}

static CP: OnceLock<ControlPlane> = OnceLock::new();

/// The shared control plane; the first caller starts it (several minutes on a new machine,
/// while the binaries are built; seconds afterwards).
pub fn control_plane() -> &'static ControlPlane {
    control_plane_with(&[])
}

/// `control_plane`, started (if this is the first call) with `env` for cluster.sh, e.g.
/// `CP_CM_QPS` and `CP_CM_BURST` for the controller-manager's client limits.
pub fn control_plane_with(env: &[(&str, &str)]) -> &'static ControlPlane {
    CP.get_or_init(|| {
        let repo = super::repo();
        let script = repo.join("tests/controlplane/cluster.sh");
        let state = repo.join("target/e2e-controlplane");
        // build.sh prints its progress on stderr (inherited: visible during a long first build).
        let build = Command::new(repo.join("tests/controlplane/build.sh"))
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("run build.sh");
        assert!(
            build.status.success(),
            "building the control plane failed (see the output above)"
        );
        let bin = PathBuf::from(
            String::from_utf8_lossy(&build.stdout)
                .trim()
                .lines()
                .last()
                .unwrap_or_default(),
        );
        let st = Command::new(&script)
            .args(["up", "--until-exit", &std::process::id().to_string()])
            .env("PROXY_INJECTOR_STATE", &state)
            .env("CP_ETCD_PORT", "23890")
            .env("CP_APISERVER_PORT", "16543")
            .envs(env.iter().copied())
            .status()
            .expect("run cluster.sh");
        assert!(
            st.success(),
            "the control plane did not start (see the output above)"
        );
        ControlPlane {
            kubeconfig: state.join("kubeconfig"),
            kubectl: bin.join("kubectl"),
            webhook_client_ca: state.join("controlplane/pki/webhook-client-ca.crt"),
        }
    })
}

impl ControlPlane {
    pub async fn client(&self) -> Client {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig");
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("kube config");
        Client::try_from(cfg).expect("kube client")
    }

    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        use std::io::Write;
        let mut child = Command::new(&self.kubectl)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kubectl");
        if let Some(s) = stdin {
            child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        }
        drop(child.stdin.take());
        child.wait_with_output().unwrap()
    }
}

/// Label that ties a test's namespaces to that test's webhook registration.
pub const TEST_LABEL: &str = "e2e.proxy-injector.dev/test";

/// Creates a namespace labelled for `test`, and waits for its default ServiceAccount
/// (the ServiceAccount admission plugin needs it before pods can be created).
pub async fn create_namespace(
    client: &Client,
    name: &str,
    test: &str,
    annotations: &[(&str, &str)],
) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ann: serde_json::Map<String, serde_json::Value> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {TEST_LABEL: test}, "annotations": ann}
    }))
    .unwrap();
    api.create(&PostParams::default(), &ns)
        .await
        .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
    let sa: Api<ServiceAccount> = Api::namespaced(client.clone(), name);
    super::wait_until_async(
        format!("the default ServiceAccount in {name}"),
        Duration::from_secs(60),
        async || sa.get_opt("default").await.ok().flatten().is_some(),
    )
    .await;
}

pub async fn delete_namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let _ = api.delete(name, &DeleteParams::default()).await;
}

/// Registers a MutatingWebhookConfiguration that sends pods and services of `test`'s namespaces to
/// https://127.0.0.1:PORT/inject. Returns once it is stored: the API server's admission chain
/// picks it up through an informer a moment later, so callers wait for a sign that it is
/// called (e.g. a dry-run pod that comes back injected, or refused while the injector is
/// down), with `support::wait_until_async`.
pub async fn register_webhook(
    client: &Client,
    test: &str,
    port: u16,
    ca_pem: &[u8],
    failure_policy: &str,
) -> String {
    use base64::Engine;
    let name = format!("e2e-{test}");
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let wh: MutatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": {"name": name},
        "webhooks": [{
            "name": "inject.proxy-injector.dev",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "NoneOnDryRun",
            "failurePolicy": failure_policy,
            "timeoutSeconds": 5,
            "reinvocationPolicy": "Never",
            "clientConfig": {
                "url": format!("https://127.0.0.1:{port}/inject"),
                "caBundle": base64::engine::general_purpose::STANDARD.encode(ca_pem),
            },
            "namespaceSelector": {"matchLabels": {TEST_LABEL: test}},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                       "resources": ["pods", "services"], "scope": "Namespaced"}],
        }]
    }))
    .unwrap();
    let _ = api.delete(&name, &DeleteParams::default()).await;
    api.create(&PostParams::default(), &wh)
        .await
        .unwrap_or_else(|e| panic!("register webhook: {e}"));
    name
}

pub async fn unregister_webhook(client: &Client, name: &str) {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let _ = api.delete(name, &DeleteParams::default()).await;
}

/// Registers a ValidatingWebhookConfiguration sending `test`'s namespaces' workloads (and
/// namespaces labelled for `test`) to https://127.0.0.1:PORT/warn.
pub async fn register_warn_webhook(
    client: &Client,
    test: &str,
    port: u16,
    ca_pem: &[u8],
) -> String {
    use base64::Engine;
    use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
    let name = format!("e2e-warn-{test}");
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let wh: ValidatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": {"name": name},
        "webhooks": [{
            "name": "warn.proxy-injector.dev",
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": "Ignore",
            "timeoutSeconds": 3,
            "clientConfig": {
                "url": format!("https://127.0.0.1:{port}/warn"),
                "caBundle": base64::engine::general_purpose::STANDARD.encode(ca_pem),
            },
            "namespaceSelector": {"matchLabels": {TEST_LABEL: test}},
            "rules": [
                {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                 "resources": ["deployments", "statefulsets", "daemonsets", "replicasets"], "scope": "Namespaced"},
                {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                 "resources": ["namespaces"], "scope": "*"},
                {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                 "resources": ["resourcequotas", "limitranges"], "scope": "Namespaced"},
                {"apiGroups": ["networking.k8s.io"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                 "resources": ["networkpolicies"], "scope": "Namespaced"},
            ],
        }]
    }))
    .unwrap();
    let _ = api.delete(&name, &DeleteParams::default()).await;
    api.create(&PostParams::default(), &wh)
        .await
        .unwrap_or_else(|e| panic!("register warnings webhook: {e}"));
    name
}

pub async fn unregister_warn_webhook(client: &Client, name: &str) {
    use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let _ = api.delete(name, &DeleteParams::default()).await;
}
