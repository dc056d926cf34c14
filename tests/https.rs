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
    start_with(&["--request-timeout-ms", ms])
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

/// Starts `serve` with `extra` flags.
fn start_with(extra: &[&str]) -> (Injector, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let ns = support::meshed_namespace_file(dir.path());
    let mut args = vec!["--namespaces", ns.to_str().unwrap()];
    args.extend_from_slice(extra);
    (Injector::start(&args, &[]), dir)
}

/// Unfinished bodies hold a budget of bytes (8 × 3 MiB), of which large bodies may hold all
/// but the small reviews' reserve. Eight requests that declare 3 MiB and trickle their bodies
/// hold what large bodies may: the next large one gets 503 at once instead of memory growing,
/// while an ordinary review is still answered. Once they stop arriving, the next large body
/// makes room by cutting one of them.
#[tokio::test]
async fn unfinished_bodies_are_held_to_a_byte_budget() {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};
    let (inj, _dir) = start_with(&[
        "--request-timeout-ms",
        "60000",
        "--body-stall-ms",
        "60000",
        "--body-min-bytes-per-second",
        "1",
    ]);
    let (port, ca) = (inj.port, inj.ca_pem());
    let large_head = "POST /inject HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 3145728\r\n\r\n";
    let (trickle, release) = (
        std::sync::Arc::new(AtomicBool::new(true)),
        std::sync::Arc::new(AtomicBool::new(false)),
    );
    let (sent, holders_sent) = std::sync::mpsc::channel::<()>();
    let holders: Vec<_> = (0..8)
        .map(|_| {
            let (ca, trickle, release) = (ca.clone(), trickle.clone(), release.clone());
            let sent = sent.clone();
            std::thread::spawn(move || {
                let mut s = support::tls_stream(port, &ca);
                s.write_all(large_head.as_bytes()).unwrap();
                s.flush().unwrap();
                let _ = sent.send(());
                // A byte every 50 ms while `trickle`, then nothing until `release`.
                let started = Instant::now();
                while !release.load(Ordering::Acquire)
                    && started.elapsed() < Duration::from_secs(50)
                {
                    if trickle.load(Ordering::Acquire)
                        && s.write_all(b" ").and_then(|()| s.flush()).is_err()
                    {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        })
        .collect();
    for _ in 0..8 {
        holders_sent
            .recv_timeout(Duration::from_secs(20))
            .expect("the 8 holders send their headers within 20 s");
    }
    let c = client(&inj.ca_pem());
    let review = pod_review("budget", "shop", web_pod());
    let (port, ca) = (inj.port, inj.ca_pem());
    let (busy, took) = support::wait_for_async(
        support::Lazy(|| {
            format!(
                "a large body to be refused 503 while 8 unfinished 3 MiB bodies arrive; the server's log:\n{}",
                inj.logs()
            )
        }),
        Duration::from_secs(20),
        async || {
            let ca = ca.clone();
            let (answer, first) = tokio::task::spawn_blocking(move || {
                send_head_only(port, &ca, large_head, Duration::from_secs(5))
            })
            .await
            .unwrap();
            answer
                .starts_with("HTTP/1.1 503")
                .then(|| (answer, first.unwrap_or_default()))
        },
    )
    .await;
    eprintln!(
        "large bodies hold their part of the budget: the next large one 503 after {took:?}: {busy:?}"
    );
    // At once: not after the body's stall or the request timeout (a loaded 2-core CI machine
    // may take a while to schedule the answer, hence the margin).
    assert!(took < Duration::from_secs(5), "503 took {took:?}");
    assert!(busy.contains("unfinished request bodies"), "{busy}");
    // A small review is answered meanwhile: the reserve is the small bodies'.
    let started = Instant::now();
    assert_eq!(inj.post_review(&c, &review).await.status(), 200);
    eprintln!(
        "an ordinary review meanwhile: 200 after {:?}",
        started.elapsed()
    );
    let metrics = support::get_text(&c, inj.url("/metrics")).await;
    assert!(
        metrics.contains(r#"result="refused",reason="busy""#),
        "no refusal counted:\n{metrics}"
    );
    // They stop arriving: a large body (2 MB: more than the large pool has left) is read
    // (answered 400: not JSON) once one of them has had no bytes for 250 ms, by cutting it.
    trickle.store(false, Ordering::Release);
    support::wait_until_async(
        "a large body to make room by cutting one that stopped arriving",
        Duration::from_secs(10),
        async || {
            let r = c
                .post(inj.url("/inject"))
                .header("content-type", "application/json")
                .body(vec![b' '; 2_000_000])
                .send()
                .await
                .unwrap();
            r.status() == 400
        },
    )
    .await;
    let metrics = support::get_text(&c, inj.url("/metrics")).await;
    assert!(
        metrics.contains(r#"result="refused",reason="evicted"} 1"#),
        "one stalled body cut to make room:\n{metrics}"
    );
    release.store(true, Ordering::Release);
    for h in holders {
        h.join().unwrap();
    }
}

/// A body that stops arriving is cut after `--body-stall-ms`, and one that trickles in after
/// its first `--body-stall-ms` at under `--body-min-bytes-per-second`: 408 with the reason,
/// counted, and the server goes on.
#[tokio::test]
async fn bodies_that_stop_or_trickle_are_cut() {
    use std::io::{Read, Write};
    let (inj, _dir) = start_with(&[
        "--body-stall-ms",
        "600",
        "--body-min-bytes-per-second",
        "1000",
    ]);
    let (port, ca) = (inj.port, inj.ca_pem());
    let head = "POST /inject HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n";
    let stalled = {
        let ca = ca.clone();
        tokio::task::spawn_blocking(move || {
            send_head_only(
                port,
                &ca,
                &format!("{head}{{\"apiVersion\""),
                Duration::from_secs(8),
            )
        })
    };
    let trickled = tokio::task::spawn_blocking(move || {
        let mut s = support::tls_stream(port, &ca);
        s.write_all(head.as_bytes()).unwrap();
        s.flush().unwrap();
        let sent = Instant::now();
        s.sock
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        // A byte every 200 ms (5 B/s): never a stall, far under the rate.
        while sent.elapsed() < Duration::from_secs(8) {
            if s.write_all(b" ").and_then(|()| s.flush()).is_err() {
                break;
            }
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
            if out.ends_with(b"\n") && out.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
            std::thread::sleep(Duration::from_millis(150));
        }
        (String::from_utf8_lossy(&out).into_owned(), sent.elapsed())
    });
    let (stalled, stalled_after) = stalled.await.unwrap();
    let (trickled, trickled_after) = trickled.await.unwrap();
    eprintln!("a body that stopped: {stalled:?} after {stalled_after:?}");
    eprintln!("a body at 5 B/s: {trickled:?} after {trickled_after:?}");
    assert!(stalled.starts_with("HTTP/1.1 408"), "{stalled}");
    assert!(stalled.contains("stopped arriving"), "{stalled}");
    let stalled_after = stalled_after.unwrap();
    assert!(
        stalled_after >= Duration::from_millis(550) && stalled_after < Duration::from_secs(5),
        "cut after {stalled_after:?} (stall 600 ms)"
    );
    assert!(trickled.starts_with("HTTP/1.1 408"), "{trickled}");
    assert!(trickled.contains("too slowly"), "{trickled}");
    assert!(
        trickled_after < Duration::from_secs(5),
        "{trickled_after:?}"
    );
    let c = client(&inj.ca_pem());
    let metrics = support::get_text(&c, inj.url("/metrics")).await;
    for reason in ["stalled", "slow"] {
        assert!(
            metrics.contains(&format!(r#"result="refused",reason="{reason}"}} 1"#)),
            "{reason} not counted:\n{metrics}"
        );
    }
    assert_eq!(
        inj.post_review(&c, &pod_review("after", "shop", web_pod()))
            .await
            .status(),
        200
    );
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
