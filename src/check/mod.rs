//! `proxy-injector check`: against a cluster, find the quiet failures — pods that should have
//! the proxy and do not, pods with an outdated proxy — and check the webhook registration
//! (exists, has a caBundle, points at a live endpoint whose certificate that caBundle verifies,
//! and how long that certificate has left), and find the NetworkPolicies that cut meshed
//! proxies off what they need (`network`).

pub mod classify;
pub mod cluster;
pub mod doing;
pub mod network;
mod webhook;

use kube::Client;
use serde::Serialize;

use crate::load::Sources;

#[derive(Debug, Serialize)]
pub struct Workload {
    pub namespace: String,
    pub kind: String,
    pub name: String,
    pub pods: Vec<String>,
    /// The command that gets the proxy into its pods.
    pub fix: String,
}

/// A namespace or workload whose pods the API server's own admission keeps from the mesh.
#[derive(Debug, Serialize)]
pub struct Blocked {
    pub namespace: String,
    /// "namespace NAME", or "NAMESPACE/KIND NAME".
    pub what: String,
    pub detail: String,
    pub fix: String,
}

impl Workload {
    /// A workload's pods, with the command that restarts them (so that new pods replace them).
    pub fn restarted(namespace: String, kind: String, name: String, pods: Vec<String>) -> Workload {
        Workload {
            fix: crate::workload::restart_command(&kind, &name, &namespace, &pods),
            namespace,
            kind,
            name,
            pods,
        }
    }

    /// Its line in a section, and the fix.
    fn render(&self) -> String {
        format!(
            "{}\n    fix: {}\n",
            owner_line(&self.namespace, &self.kind, &self.name, &self.pods),
            self.fix
        )
    }
}

/// "  NS/kind NAME (N pods: a, b)": a workload and its pods, as `check`'s sections list them.
/// Pods named in a line, at most (`-o json` has them all).
const NAMED_PODS: usize = 10;

pub(crate) fn owner_line(namespace: &str, kind: &str, name: &str, pods: &[String]) -> String {
    let named = match pods.len().checked_sub(NAMED_PODS) {
        Some(more) if more > 0 => format!("{}, … (+{more} more)", pods[..NAMED_PODS].join(", ")),
        _ => pods.join(", "),
    };
    format!(
        "  {namespace}/{} {name} ({} pod{}: {named})",
        kind.to_ascii_lowercase(),
        pods.len(),
        if pods.len() == 1 { "" } else { "s" },
    )
}

#[derive(Debug, Serialize)]
pub struct Outdated {
    pub namespace: String,
    pub pod: String,
    pub running: String,
    pub expected: String,
    /// The command that replaces the pod (its owner's restart).
    pub fix: String,
}

#[derive(Debug, Serialize, Default)]
pub struct WebhookStatus {
    pub name: String,
    pub exists: bool,
    pub ca_bundle: bool,
    pub endpoint: String,
    pub live: bool,
    pub cert_verified: bool,
    pub cert_days_left: Option<i64>,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct Report {
    /// The release pods are judged by, and what the config was built from.
    pub release: String,
    pub release_from: String,
    /// The notes of the values (unknown keys, unsupported values).
    pub config_notes: Vec<String>,
    pub missing_proxy: Vec<Workload>,
    pub outdated_proxy: Vec<Outdated>,
    /// Injection blocked by the API server's admission (PodSecurity, ResourceQuota, LimitRange).
    pub blocked_by_api_server: Vec<Blocked>,
    /// How the meshed pods are doing, and those with old trust anchors.
    pub meshed_pods: doing::Doing,
    pub webhook: WebhookStatus,
    pub network: network::NetworkReport,
    pub problems: usize,
}

/// Runs every check: one snapshot of the cluster, and the config the pods are judged by (the
/// injector's `sources` with Linkerd's ConfigMaps, as `serve --watch-linkerd-config` would use
/// them). `webhook` is the MutatingWebhookConfiguration's name.
pub async fn run(client: Client, sources: &Sources, webhook: &str) -> anyhow::Result<Report> {
    let base = sources.build()?.0;
    let state = cluster::Cluster::list(&client, &base.control_plane_namespace).await?;
    let (config, notes, release_from) = state.config(sources)?;
    let config = &config;
    let (missing_proxy, outdated_proxy) = classify::classify(&state, config);
    let network = network::report(&state, config);
    let blocked_by_api_server = classify::blocked(&state, config);
    let meshed_pods = doing::doing(&state, config);
    let webhook = webhook::check(&client, webhook).await;
    let webhook_problems = usize::from(
        !(webhook.exists && webhook.ca_bundle && webhook.live && webhook.cert_verified),
    ) + usize::from(webhook.cert_days_left.is_some_and(|d| d < 30));
    let problems = missing_proxy.len()
        + outdated_proxy.len()
        + blocked_by_api_server.len()
        + meshed_pods.problems()
        + webhook_problems
        + network.problems;
    Ok(Report {
        release: config.release.to_string(),
        release_from,
        config_notes: notes,
        missing_proxy,
        outdated_proxy,
        blocked_by_api_server,
        meshed_pods,
        webhook,
        network,
        problems,
    })
}

impl Report {
    /// Human-readable report.
    pub fn render(&self) -> String {
        let mut s = format!("release: {} (from {})\n", self.release, self.release_from);
        for n in &self.config_notes {
            s.push_str(&format!("  note: {n}\n"));
        }
        let w = &self.webhook;
        let mark = |ok: bool| if ok { "ok  " } else { "FAIL" };
        s.push_str(&format!("webhook {}:\n", w.name));
        s.push_str(&format!("  [{}] registered\n", mark(w.exists)));
        if w.exists {
            s.push_str(&format!("  [{}] caBundle present\n", mark(w.ca_bundle)));
            s.push_str(&format!(
                "  [{}] endpoint live: {}\n",
                mark(w.live),
                w.endpoint
            ));
            s.push_str(&format!(
                "  [{}] certificate: {}\n",
                mark(w.cert_verified && w.cert_days_left.is_none_or(|d| d >= 30)),
                w.detail
            ));
        } else {
            s.push_str(&format!("         {}\n", w.detail));
        }
        if self.missing_proxy.is_empty() {
            s.push_str("[ok  ] every pod that should have the proxy has it\n");
        } else {
            s.push_str("[FAIL] pods without the proxy although injection is enabled for them:\n");
            for m in &self.missing_proxy {
                s.push_str(&m.render());
            }
        }
        if self.outdated_proxy.is_empty() {
            s.push_str("[ok  ] no pod runs an outdated proxy\n");
        } else {
            s.push_str("[FAIL] pods whose proxy is not the release's (restart them to update):\n");
            for o in &self.outdated_proxy {
                s.push_str(&format!(
                    "  {}/{}: runs {}, would get {}\n    fix: {}\n",
                    o.namespace, o.pod, o.running, o.expected, o.fix
                ));
            }
        }
        if self.blocked_by_api_server.is_empty() {
            s.push_str("[ok  ] no injection blocked by the API server's admission (PodSecurity, ResourceQuota, LimitRange)\n");
        } else {
            s.push_str("[FAIL] injection blocked by the API server's admission (PodSecurity, ResourceQuota, LimitRange):\n");
            for b in &self.blocked_by_api_server {
                s.push_str(&format!("  {}: {}\n    fix: {}\n", b.what, b.detail, b.fix));
            }
        }
        s.push_str(&self.meshed_pods.render());
        s.push_str(&self.network.render());
        s.push_str(&format!("{} problem(s) found\n", self.problems));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_owner_line_names_at_most_ten_pods() {
        let pods: Vec<String> = (0..25).map(|i| format!("web-{i}")).collect();
        let line = owner_line("shop", "Deployment", "web", &pods);
        assert!(
            line.starts_with("  shop/deployment web (25 pods: web-0, web-1,"),
            "{line}"
        );
        assert!(line.ends_with("web-9, … (+15 more))"), "{line}");
        let line = owner_line("shop", "Pod", "x", &pods[..1]);
        assert_eq!(line, "  shop/pod x (1 pod: web-0)");
    }
}
