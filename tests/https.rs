//! The webhook over real HTTPS: `proxy-injector serve` on 127.0.0.1 with certificates from
//! `proxy-injector certs`, called by a client that trusts only the generated CA.

#[path = "support/mod.rs"]
mod support;

use base64::Engine;
use serde_json::{Value, json};
use support::{Injector, client, pod_review};

fn start() -> (Injector, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let ns = support::meshed_namespace_file(dir.path());
    let inj = Injector::start(&["--namespaces", ns.to_str().unwrap()], &[]);
    (inj, dir)
}

fn web_pod() -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "shop"},
           "spec": {"containers": [{"name": "app", "image": "nginx", "ports": [{"containerPort": 80}]}]}})
}

#[tokio::test]
async fn injects_over_https_and_answers_health() {
    let (inj, _d) = start();
    let c = client(&inj.ca_pem());
    let resp = c
        .post(inj.url("/inject"))
        .json(&pod_review("abc-123", "shop", web_pod()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["response"]["uid"], "abc-123");
    assert_eq!(body["response"]["allowed"], true);
    assert_eq!(body["response"]["patchType"], "JSONPatch");
    let patch = base64::engine::general_purpose::STANDARD
        .decode(body["response"]["patch"].as_str().unwrap())
        .unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&patch).unwrap();
    let mut pod = web_pod();
    json_patch::patch(&mut pod, &patch).unwrap();
    assert_eq!(pod["spec"]["containers"][0]["name"], "linkerd-proxy");
    assert_eq!(pod["spec"]["initContainers"][0]["name"], "linkerd-init");

    assert_eq!(
        c.get(inj.url("/healthz")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        c.get(inj.url("/readyz")).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn garbage_gets_400_with_a_message() {
    let (inj, _d) = start();
    let c = client(&inj.ca_pem());
    for (body, needle) in [
        ("not json at all", "not an AdmissionReview"),
        (
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionRevi"#,
            "not an AdmissionReview",
        ),
        (
            r#"{"apiVersion":"v1","kind":"Pod"}"#,
            "expected apiVersion admission.k8s.io/v1",
        ),
        (
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
            "has no request",
        ),
        (
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":""}}"#,
            "empty uid",
        ),
        (r#"[1,2,3]"#, "not an AdmissionReview"),
    ] {
        let resp = c.post(inj.url("/inject")).body(body).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{body}");
        let text = resp.text().await.unwrap();
        assert!(text.contains(needle), "{body} -> {text}");
    }
    // The server is still fine afterwards.
    let ok = c
        .post(inj.url("/inject"))
        .json(&pod_review("u", "shop", web_pod()))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn body_over_the_limit_gets_413() {
    let (inj, _d) = start();
    let c = client(&inj.ca_pem());
    // Declare 4 MiB, send the first 64 KiB, then pause: the answer must come from the declared
    // length, before the body is read whole.
    let total: usize = 4 * 1024 * 1024;
    let chunks = futures::stream::unfold(0usize, move |sent| async move {
        if sent >= total {
            return None;
        }
        if sent > 0 {
            tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        }
        let n = if sent == 0 { 64 * 1024 } else { total - sent };
        Some((Ok::<_, std::io::Error>(vec![b' '; n]), sent + n))
    });
    let resp = c
        .post(inj.url("/inject"))
        .header("content-length", total.to_string())
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
}

#[tokio::test]
async fn non_pod_and_update_are_allowed_unchanged() {
    let (inj, _d) = start();
    let c = client(&inj.ca_pem());
    let mut review = pod_review("u1", "shop", web_pod());
    review["request"]["operation"] = json!("UPDATE");
    let body: Value = c
        .post(inj.url("/inject"))
        .json(&review)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["response"]["allowed"], true);
    assert!(body["response"]["patch"].is_null());
    let mut review = pod_review("u2", "shop", json!({"kind": "ConfigMap", "data": {}}));
    review["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "ConfigMap"});
    let body: Value = c
        .post(inj.url("/inject"))
        .json(&review)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["response"]["uid"], "u2");
    assert_eq!(body["response"]["allowed"], true);
    assert!(body["response"]["patch"].is_null());
}

#[tokio::test]
async fn untrusted_client_fails_and_tls12_works() {
    let (inj, _d) = start();
    // A client that trusts some other CA cannot talk to the webhook.
    let other = tempfile::tempdir().unwrap();
    support::make_certs(other.path());
    let stranger = client(&std::fs::read(other.path().join("ca.crt")).unwrap());
    assert!(stranger.get(inj.url("/healthz")).send().await.is_err());
    // TLS 1.2 is accepted.
    let tls12 = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&inj.ca_pem()).unwrap())
        .max_tls_version(reqwest::tls::Version::TLS_1_2)
        .build()
        .unwrap();
    assert_eq!(
        tls12
            .get(inj.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn sigterm_stops_cleanly() {
    let (mut inj, _d) = start();
    let c = client(&inj.ca_pem());
    assert_eq!(
        c.get(inj.url("/healthz")).send().await.unwrap().status(),
        200
    );
    let st = inj.terminate();
    assert!(st.success(), "exit status {st}; logs:\n{}", inj.logs());
    assert!(inj.logs().contains("shutting down"), "{}", inj.logs());
}
