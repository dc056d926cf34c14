//! `proxy-injector check`: against a cluster, find the quiet failures — pods that should have
//! the proxy and do not, pods with an outdated proxy — and check the webhook registration
//! (exists, has a caBundle, points at a live endpoint whose certificate that caBundle verifies,
//! and how long that certificate has left).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use serde::Serialize;

use crate::config::Config;
use crate::decision::{self, Decision, RequestFacts};
use crate::offline::{proxy_image, uninject_pod};
use crate::view::PodView;

#[derive(Debug, Serialize)]
pub struct Workload {
    pub namespace: String,
    pub kind: String,
    pub name: String,
    pub pods: Vec<String>,
    /// The command that gets the proxy into its pods.
    pub fix: String,
}

#[derive(Debug, Serialize)]
pub struct Outdated {
    pub namespace: String,
    pub pod: String,
    pub running: String,
    pub expected: String,
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
    pub missing_proxy: Vec<Workload>,
    pub outdated_proxy: Vec<Outdated>,
    pub webhook: WebhookStatus,
    pub problems: usize,
}

/// The workload a pod belongs to (following ReplicaSet → Deployment and Job → CronJob).
fn owner_of(
    pod: &Pod,
    rs: &HashMap<(String, String), ReplicaSet>,
    jobs: &HashMap<(String, String), Job>,
) -> (String, String) {
    let ns = pod.namespace().unwrap_or_default();
    let Some(o) = pod
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
    else {
        return ("Pod".into(), pod.name_any());
    };
    let lookup_owner =
        |refs: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference]| {
            refs.iter()
                .find(|r| r.controller == Some(true))
                .map(|r| (r.kind.clone(), r.name.clone()))
        };
    match o.kind.as_str() {
        "ReplicaSet" => rs
            .get(&(ns, o.name.clone()))
            .and_then(|r| lookup_owner(r.owner_references()))
            .unwrap_or(("ReplicaSet".into(), o.name.clone())),
        "Job" => jobs
            .get(&(ns, o.name.clone()))
            .and_then(|j| lookup_owner(j.owner_references()))
            .unwrap_or(("Job".into(), o.name.clone())),
        _ => (o.kind.clone(), o.name.clone()),
    }
}

fn fix_for(kind: &str, name: &str, ns: &str, pods: &[String]) -> String {
    match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" => {
            format!(
                "kubectl rollout restart {}/{name} -n {ns}",
                kind.to_ascii_lowercase()
            )
        }
        "CronJob" => format!(
            "the next run of cronjob {name} gets the proxy; to restart running pods now: kubectl delete pod -n {ns} {}",
            pods.join(" ")
        ),
        "Job" => format!(
            "kubectl delete pod -n {ns} {} (job {name} creates them again while it runs)",
            pods.join(" ")
        ),
        _ => format!(
            "kubectl delete pod -n {ns} {} (and create it again, or let its owner do it)",
            pods.join(" ")
        ),
    }
}

/// Runs every check. `webhook` is the MutatingWebhookConfiguration's name.
pub async fn run(client: Client, config: &Config, webhook: &str) -> anyhow::Result<Report> {
    let namespaces: Vec<Namespace> = Api::<Namespace>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let ns_by_name: HashMap<String, Namespace> =
        namespaces.into_iter().map(|n| (n.name_any(), n)).collect();
    let pods = Api::<Pod>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let rs: HashMap<(String, String), ReplicaSet> = Api::<ReplicaSet>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(|r| ((r.namespace().unwrap_or_default(), r.name_any()), r))
        .collect();
    let jobs: HashMap<(String, String), Job> = Api::<Job>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(|j| ((j.namespace().unwrap_or_default(), j.name_any()), j))
        .collect();

    let mut missing: BTreeMap<(String, String, String), Vec<String>> = BTreeMap::new();
    let mut outdated = Vec::new();
    for pod in &pods {
        let ns = pod.namespace().unwrap_or_default();
        let ns_obj = ns_by_name.get(&ns);
        let excluded = ns == "kube-system"
            || ns_obj.is_some_and(|n| {
                n.labels()
                    .get("config.linkerd.io/admission-webhooks")
                    .map(String::as_str)
                    == Some("disabled")
            });
        if excluded || pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let mut value = serde_json::to_value(pod)?;
        value["kind"] = "Pod".into();
        // Decided as if the pod were created now, without the proxy it may already have.
        let fresh = uninject_pod(&value).to_string();
        let Ok(view) = PodView::parse(&fresh) else {
            continue;
        };
        let info = crate::namespaces::info(Some(&ns), ns_obj);
        let Decision::Inject(plan) =
            decision::decide(&RequestFacts::POD_CREATE, &view, info, config)
        else {
            continue;
        };
        let expected = format!("{}:{}", plan.proxy.proxy_image, plan.proxy.proxy_version);
        match proxy_image(&value) {
            None => {
                let (kind, name) = owner_of(pod, &rs, &jobs);
                missing
                    .entry((ns.clone(), kind, name))
                    .or_default()
                    .push(pod.name_any());
            }
            Some(img) if img != expected => outdated.push(Outdated {
                namespace: ns.clone(),
                pod: pod.name_any(),
                running: img.to_owned(),
                expected,
            }),
            Some(_) => {}
        }
    }
    let missing_proxy: Vec<Workload> = missing
        .into_iter()
        .map(|((namespace, kind, name), pods)| Workload {
            fix: fix_for(&kind, &name, &namespace, &pods),
            namespace,
            kind,
            name,
            pods,
        })
        .collect();
    let webhook = check_webhook(&client, webhook).await;
    let webhook_problems = usize::from(
        !(webhook.exists && webhook.ca_bundle && webhook.live && webhook.cert_verified),
    ) + usize::from(webhook.cert_days_left.is_some_and(|d| d < 30));
    let problems = missing_proxy.len() + outdated.len() + webhook_problems;
    Ok(Report {
        missing_proxy,
        outdated_proxy: outdated,
        webhook,
        problems,
    })
}

async fn check_webhook(client: &Client, name: &str) -> WebhookStatus {
    let mut st = WebhookStatus {
        name: name.to_owned(),
        ..Default::default()
    };
    let mwc = match Api::<MutatingWebhookConfiguration>::all(client.clone())
        .get_opt(name)
        .await
    {
        Ok(Some(m)) => m,
        Ok(None) => {
            st.detail = format!(
                "MutatingWebhookConfiguration {name} does not exist: no pod is injected (kubectl apply -k manifests/)"
            );
            return st;
        }
        Err(e) => {
            st.detail = format!("cannot read MutatingWebhookConfiguration {name}: {e}");
            return st;
        }
    };
    st.exists = true;
    let Some(wh) = mwc.webhooks.as_ref().and_then(|w| w.first()) else {
        st.detail = "the configuration has no webhooks".into();
        return st;
    };
    let ca = wh
        .client_config
        .ca_bundle
        .as_ref()
        .map(|b| b.0.clone())
        .unwrap_or_default();
    st.ca_bundle = !ca.is_empty();
    if let Some(url) = &wh.client_config.url {
        st.endpoint = url.clone();
        match probe_url(url, &ca).await {
            Ok(days) => {
                st.live = true;
                st.cert_verified = true;
                st.cert_days_left = Some(days);
                st.detail =
                    format!("serving certificate verified by the caBundle; {days} days left");
            }
            Err(e) => st.detail = e,
        }
    } else if let Some(svc) = &wh.client_config.service {
        st.endpoint = format!(
            "service {}/{}:{}{}",
            svc.namespace,
            svc.name,
            svc.port.unwrap_or(443),
            svc.path.as_deref().unwrap_or("")
        );
        let slices = Api::<EndpointSlice>::namespaced(client.clone(), &svc.namespace)
            .list(
                &ListParams::default().labels(&format!("kubernetes.io/service-name={}", svc.name)),
            )
            .await;
        let ready = slices
            .map(|l| {
                l.items
                    .iter()
                    .flat_map(|s| s.endpoints.iter().flatten())
                    .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
                    .count()
            })
            .unwrap_or(0);
        st.live = ready > 0;
        // The serving certificate sits behind the Service; it is verified by the API server on
        // each call. Here only the endpoints can be seen.
        st.cert_verified = st.live && st.ca_bundle;
        st.detail = if st.live {
            format!(
                "{ready} ready endpoint(s); the certificate is checked by the API server on each call"
            )
        } else {
            "the Service has no ready endpoints: the injector is not running (pods are created uninjected with failurePolicy Ignore, or refused with Fail)".into()
        };
    }
    if !st.ca_bundle {
        st.detail = format!(
            "no caBundle: the API server cannot trust the injector (make deploy-certs); {}",
            st.detail
        );
    }
    st
}

/// TLS handshake with the webhook URL, trusting only `ca`; returns the days the serving
/// certificate has left.
async fn probe_url(url: &str, ca: &[u8]) -> Result<i64, String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("{url} is not an https URL"))?;
    let hostport = rest.split('/').next().unwrap_or(rest);
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (
            h.to_owned(),
            p.parse::<u16>().map_err(|_| format!("bad port in {url}"))?,
        ),
        None => (hostport.to_owned(), 443),
    };
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca).filter_map(Result::ok) {
        roots
            .add(cert)
            .map_err(|e| format!("the caBundle holds an unusable certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("the caBundle holds no PEM certificate".into());
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let server_name = rustls::pki_types::ServerName::try_from(host.clone())
        .map_err(|e| format!("{host}: {e}"))?;
    let tcp = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    .map_err(|_| format!("{url}: connection timed out"))?
    .map_err(|e| format!("{url} is not reachable: {e}"))?;
    let stream = tokio::time::timeout(Duration::from_secs(5), connector.connect(server_name, tcp))
        .await
        .map_err(|_| format!("{url}: TLS handshake timed out"))?
        .map_err(|e| {
            format!("{url}: the caBundle does not verify the serving certificate ({e})")
        })?;
    let (_, conn) = stream.get_ref();
    let cert = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or("no serving certificate")?;
    let left = crate::certs::not_after_der(cert.as_ref())?
        - time::OffsetDateTime::now_utc().unix_timestamp();
    Ok(left / 86_400)
}

impl Report {
    /// Human-readable report.
    pub fn render(&self) -> String {
        let mut s = String::new();
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
                s.push_str(&format!(
                    "  {}/{} {} ({} pod{}: {})\n    fix: {}\n",
                    m.namespace,
                    m.kind.to_ascii_lowercase(),
                    m.name,
                    m.pods.len(),
                    if m.pods.len() == 1 { "" } else { "s" },
                    m.pods.join(", "),
                    m.fix
                ));
            }
        }
        if self.outdated_proxy.is_empty() {
            s.push_str("[ok  ] no pod runs an outdated proxy\n");
        } else {
            s.push_str("[FAIL] pods with an outdated proxy (restart them to update):\n");
            for o in &self.outdated_proxy {
                s.push_str(&format!(
                    "  {}/{}: runs {}, would get {}\n",
                    o.namespace, o.pod, o.running, o.expected
                ));
            }
        }
        s.push_str(&format!("{} problem(s) found\n", self.problems));
        s
    }
}
