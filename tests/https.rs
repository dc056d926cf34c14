//! The webhook over real HTTPS: `proxy-injector serve` on 127.0.0.1 with certificates from
//! `proxy-injector certs`, called by a client that trusts only the generated CA.

#[path = "support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use support::{Injector, client, pod_review};

fn start() -> (Injector, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let ns = support::meshed_namespace_file(dir.path());
    let inj = Injector::start(&["--namespaces", ns.to_str().unwrap()], &[]);
    (inj, dir)
}

fn start_with_request_timeout_ms(ms: &str) -> (Injector, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let ns = support::meshed_namespace_file(dir.path());
    let inj = Injector::start(
        &[
            "--namespaces",
            ns.to_str().unwrap(),
            "--request-timeout-ms",
            ms,
        ],
        &[],
    );
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
    let resp = inj
        .post_review(&c, &pod_review("abc-123", "shop", web_pod()))
        .await;
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
    // linkerd-init, then the proxy as a native sidecar (edge-26.8.3's default); the app
    // containers unchanged.
    assert_eq!(pod["spec"]["initContainers"][0]["name"], "linkerd-init");
    assert_eq!(pod["spec"]["initContainers"][1]["name"], "linkerd-proxy");
    assert_eq!(pod["spec"]["initContainers"][1]["restartPolicy"], "Always");
    assert_eq!(pod["spec"]["containers"], web_pod()["spec"]["containers"]);

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
    let ok = inj
        .post_review(&c, &pod_review("u", "shop", web_pod()))
        .await;
    assert_eq!(ok.status(), 200);
}

/// Writes `head` (request line and headers, no body) over TLS, then reads for up to `wait`:
/// returns the answer (empty if none came) and when its first bytes arrived.
fn send_head_only(port: u16, ca: &[u8], head: &str, wait: Duration) -> (String, Option<Duration>) {
    use std::io::{Read, Write};
    let mut s = support::tls_stream(port, ca);
    s.sock.set_read_timeout(Some(wait)).unwrap();
    let sent = Instant::now();
    s.write_all(head.as_bytes()).unwrap();
    s.flush().unwrap();
    let mut out = Vec::new();
    let mut first = None;
    let mut buf = [0u8; 4096];
    while sent.elapsed() < wait {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                first.get_or_insert(sent.elapsed());
                out.extend_from_slice(&buf[..n]);
            }
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), first)
}

#[tokio::test]
async fn body_over_the_limit_gets_413_before_it_is_sent() {
    // A request timeout of 5 s: an answer within 1 s cannot be the 408 of a server that waited
    // for the body.
    let (inj, _dir) = start_with_request_timeout_ms("5000");
    let (port, ca) = (inj.port, inj.ca_pem());
    let head = |len: usize| {
        format!(
            "POST /inject HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
        )
    };
    let declared = 4_000_000; // over the 3 MiB (3,145,728 bytes) limit
    let (text, first) = tokio::task::spawn_blocking({
        let (ca, head) = (ca.clone(), head(declared));
        move || send_head_only(port, &ca, &head, Duration::from_secs(4))
    })
    .await
    .unwrap();
    let took =
        first.unwrap_or_else(|| panic!("no answer within 4 s to the headers alone: {text:?}"));
    eprintln!(
        "Content-Length {declared}, 0 body bytes sent: {:?} after {took:?}",
        text.lines().next().unwrap_or("")
    );
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(
        took < Duration::from_secs(1),
        "413 came after {took:?}: the server waited for a body that was never sent"
    );

    // The control: a declared length within the limit, and no body: no early answer (the
    // server waits for the body), so the 413 above came from the declared length.
    let (text, first) = tokio::task::spawn_blocking({
        let head = head(1000);
        move || send_head_only(port, &ca, &head, Duration::from_secs(1))
    })
    .await
    .unwrap();
    eprintln!(
        "Content-Length 1000, 0 body bytes sent: first answer after {first:?} (none expected within 1 s)"
    );
    assert_eq!(first, None, "an answer without the body: {text}");

    // Without a declared length (chunked), the limit applies to what is read: 4 MiB in 64 KiB
    // chunks gets 413 too.
    let chunks =
        futures::stream::iter((0..64).map(|_| Ok::<_, std::io::Error>(vec![b' '; 64 * 1024])));
    let started = Instant::now();
    let resp = client(&inj.ca_pem())
        .post(inj.url("/inject"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    eprintln!(
        "chunked 4 MiB body: {} after {:?}",
        resp.status(),
        started.elapsed()
    );
    assert_eq!(resp.status(), 413);
}

/// Unfinished bodies hold a budget of bytes (8 × 3 MiB): eight requests that declare 3 MiB and
/// send nothing hold all of it, the next review gets 503 at once instead of memory growing,
/// and once they are gone reviews are answered again.
#[tokio::test]
async fn unfinished_bodies_are_held_to_a_byte_budget() {
    use std::io::Write;
    let (inj, _dir) = start_with_request_timeout_ms("20000");
    let (port, ca) = (inj.port, inj.ca_pem());
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = std::sync::Arc::new(std::sync::Mutex::new(released));
    // Each holder says when its headers are sent (or why they could not be).
    let (sent, holders_sent) = std::sync::mpsc::channel::<Result<(), String>>();
    let holders: Vec<_> = (0..8)
        .map(|_| {
            let (ca, released, sent) = (ca.clone(), released.clone(), sent.clone());
            std::thread::spawn(move || {
                let mut s = support::tls_stream(port, &ca);
                let written = s
                    .write_all(
                        b"POST /inject HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 3145728\r\n\r\n",
                    )
                    .and_then(|()| s.flush());
                let _ = sent.send(written.map_err(|e| e.to_string()));
                // Held open, body never sent, until the test lets go.
                let _ = released.lock().unwrap().recv_timeout(Duration::from_secs(30));
            })
        })
        .collect();
    for _ in 0..8 {
        holders_sent
            .recv_timeout(Duration::from_secs(20))
            .expect("the 8 holders connect within 20 s")
            .expect("a holder sent its headers");
    }
    let c = client(&ca);
    let review = pod_review("budget", "shop", web_pod());
    let busy = support::wait_for_async(
        support::Lazy(|| {
            format!(
                "a review to be refused 503 while 8 unfinished 3 MiB bodies hold the budget; the server's log:\n{}",
                inj.logs()
            )
        }),
        Duration::from_secs(20),
        async || {
            let started = Instant::now();
            let r = inj.post_review(&c, &review).await;
            (r.status() == 503).then(|| (started.elapsed(), r))
        },
    )
    .await;
    let (took, resp) = busy;
    let text = resp.text().await.unwrap();
    eprintln!("budget held by 8 unfinished 3 MiB bodies: next review 503 after {took:?}: {text:?}");
    // At once: not after the 20 s request timeout (a loaded 2-core CI machine may take a while
    // to schedule the answer, hence the margin).
    assert!(took < Duration::from_secs(5), "503 took {took:?}");
    assert!(text.contains("unfinished request bodies"), "{text}");
    let metrics = support::get_text(&c, inj.url("/metrics")).await;
    assert!(
        metrics.contains(r#"result="refused",reason="busy""#),
        "no refusal counted:\n{metrics}"
    );
    for _ in &holders {
        let _ = release.send(());
    }
    for h in holders {
        h.join().unwrap();
    }
    support::wait_until_async(
        "reviews to be answered again once the unfinished bodies are gone",
        Duration::from_secs(10),
        async || {
            let r = inj.post_review(&c, &review).await;
            r.status() == 200
        },
    )
    .await;
}

#[tokio::test]
async fn non_pod_and_update_are_allowed_unchanged() {
    let (inj, _d) = start();
    let c = client(&inj.ca_pem());
    let mut review = pod_review("u1", "shop", web_pod());
    review["request"]["operation"] = json!("UPDATE");
    let body: Value = inj.post_review(&c, &review).await.json().await.unwrap();
    assert_eq!(body["response"]["allowed"], true);
    assert!(body["response"]["patch"].is_null());
    let mut review = pod_review("u2", "shop", json!({"kind": "ConfigMap", "data": {}}));
    review["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "ConfigMap"});
    let body: Value = inj.post_review(&c, &review).await.json().await.unwrap();
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
