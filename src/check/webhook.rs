//! The webhook registration: exists, has a caBundle, points at a live endpoint whose
//! certificate that caBundle verifies, and how long that certificate has left.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::ListParams;
use kube::{Api, Client};

use super::WebhookStatus;

/// Checks the MutatingWebhookConfiguration `name`.
pub async fn check(client: &Client, name: &str) -> WebhookStatus {
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
