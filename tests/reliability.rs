//! Faults a webhook meets in production, against a running `proxy-injector serve`: slow
//! clients, certificate rotation and a bad new certificate under load, SIGTERM under load,
//! client-certificate checks, and the metrics that tell about all of it.
//!
//! The load runs last `RELIABILITY_LOAD_SECONDS` (default 3 s per run); `make load-faults`
//! runs them longer and prints the totals.

#[path = "support/mod.rs"]
mod support;

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{
    Injector, client, client_trusting, free_port, make_certs, meshed_namespace_file, metric,
    pod_review, read_until_closed, tls_stream,
};

fn load_seconds() -> f64 {
    std::env::var("RELIABILITY_LOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0)
}

fn ns_file(dir: &Path) -> String {
    meshed_namespace_file(dir).display().to_string()
}

fn review_body(uid: &str) -> Vec<u8> {
    serde_json::to_vec(&pod_review(
        uid,
        "shop",
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "shop"},
               "spec": {"containers": [{"name": "app", "image": "nginx"}]}}),
    ))
    .unwrap()
}

/// Totals of a load run.
#[derive(Default)]
struct Totals {
    ok: AtomicU64,
    failed: AtomicU64,
    errors: std::sync::Mutex<Vec<String>>,
}

impl Totals {
    fn fail(&self, e: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut errs = self.errors.lock().unwrap();
        if errs.len() < 5 {
            errs.push(e);
        }
    }
    fn report(&self, what: &str) -> (u64, u64) {
        let (ok, failed) = (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        );
        println!("{what}: requests {}, failed {failed}", ok + failed);
        (ok, failed)
    }
}

/// Sends injected-pod reviews from `clients` (one task each) until `stop`; every answer must
/// be 200 with a patch.
async fn load(
    url: String,
    clients: Vec<reqwest::Client>,
    stop: Arc<AtomicBool>,
    totals: Arc<Totals>,
) {
    let mut tasks = Vec::new();
    for (i, c) in clients.into_iter().enumerate() {
        let (url, stop, totals) = (url.clone(), stop.clone(), totals.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Acquire) {
                n += 1;
                let uid = format!("c{i}-{n}");
                let r = c
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(review_body(&uid))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => {
                        let v: serde_json::Value = match r.json().await {
                            Ok(v) => v,
                            Err(e) => {
                                totals.fail(format!("body: {e}"));
                                continue;
                            }
                        };
                        if v["response"]["uid"] == uid.as_str()
                            && v["response"]["patch"].is_string()
                        {
                            totals.ok.fetch_add(1, Ordering::Relaxed);
                        } else {
                            totals.fail(format!("unexpected answer {v}"));
                        }
                    }
                    Ok(r) => totals.fail(format!("status {}", r.status())),
                    Err(e) => totals.fail(format!("{e:?}")),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn metrics_count_admissions_and_describe_state() {
    let dir = tempfile::tempdir().unwrap();
    let inj = Injector::start(&["--namespaces", &ns_file(dir.path())], &[]);
    let c = client(&inj.ca_pem());
    for uid in ["a", "b"] {
        let r = c
            .post(inj.url("/inject"))
            .body(review_body(uid))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = c
        .post(inj.url("/inject"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c.get(inj.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = r.text().await.unwrap();
    let get = |k: &str| metric(&text, k).unwrap_or_else(|| panic!("no {k} in\n{text}"));
    assert_eq!(
        get(
            r#"proxy_injector_admissions_total{handler="inject",result="injected",reason="enabled"}"#
        ),
        2.0
    );
    assert_eq!(
        get(
            r#"proxy_injector_admissions_total{handler="inject",result="rejected",reason="bad_request"}"#
        ),
        1.0
    );
    assert_eq!(
        get(r#"proxy_injector_review_duration_seconds_count{handler="inject"}"#),
        2.0
    );
    assert_eq!(get("proxy_injector_namespace_cache_size"), 1.0);
    assert_eq!(get("proxy_injector_namespace_cache_stale_seconds"), 0.0);
    let expiry = get("proxy_injector_tls_cert_expiry_timestamp_seconds");
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as f64;
    assert!(
        expiry > now + 300.0 * 86_400.0,
        "expiry {expiry} vs now {now}"
    );
    assert!(
        text.trim_end().ends_with("# EOF"),
        "OpenMetrics text ends with # EOF"
    );
}

#[tokio::test]
async fn slow_clients_are_cut_off_and_others_still_served() {
    let dir = tempfile::tempdir().unwrap();
    let inj = Injector::start(
        &[
            "--namespaces",
            &ns_file(dir.path()),
            "--header-timeout-ms",
            "600",
            "--request-timeout-ms",
            "1500",
        ],
        &[],
    );
    let (port, ca) = (inj.port, inj.ca_pem());
    // Each slow client says when it has sent what it is going to send.
    let (in_place, slow_clients) = std::sync::mpsc::channel::<()>();
    // Slow headers: half a request line, then nothing.
    let tx = in_place.clone();
    let headers = std::thread::spawn(move || {
        let mut s = tls_stream(port, &ca);
        s.write_all(b"POST /inject HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            .unwrap();
        s.flush().unwrap();
        tx.send(()).unwrap();
        read_until_closed(&mut s)
    });
    // Slow body: complete headers, 10 bytes of a declared 5000, then nothing.
    let ca = inj.ca_pem();
    let tx = in_place.clone();
    let body = std::thread::spawn(move || {
        let mut s = tls_stream(port, &ca);
        s.write_all(b"POST /inject HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{\"apiVersi")
            .unwrap();
        s.flush().unwrap();
        tx.send(()).unwrap();
        read_until_closed(&mut s)
    });
    // A TCP connection that never starts TLS.
    let silent = std::thread::spawn(move || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        in_place.send(()).unwrap();
        read_until_closed(&mut s)
    });
    // Meanwhile (once all three are in place), ordinary requests are answered at once.
    for _ in 0..3 {
        slow_clients
            .recv_timeout(Duration::from_secs(5))
            .expect("the three slow clients connect within 5 s");
    }
    let c = client(&inj.ca_pem());
    let started = Instant::now();
    for uid in ["x1", "x2", "x3"] {
        let r = c
            .post(inj.url("/inject"))
            .body(review_body(uid))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "others waited {:?}",
        started.elapsed()
    );

    let (text, took) = headers.join().unwrap();
    assert!(
        took < Duration::from_secs(3),
        "slow headers held the connection for {took:?}"
    );
    assert!(!text.contains("200 OK"), "{text}");
    let (text, took) = body.join().unwrap();
    assert!(text.starts_with("HTTP/1.1 408"), "slow body: {text:?}");
    assert!(
        took < Duration::from_secs(4),
        "slow body held the connection for {took:?}"
    );
    let (text, took) = silent.join().unwrap();
    assert!(
        text.is_empty() && took < Duration::from_secs(3),
        "silent: {text:?} after {took:?}"
    );
}

fn symlink(target: &str, link: &Path) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

/// Points `dir/..data` at `version` atomically, as the kubelet updates a Secret volume.
fn switch(dir: &Path, version: &str) {
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    symlink(version, &tmp);
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
}

#[tokio::test]
async fn cert_rotation_and_a_bad_cert_under_load_fail_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let ns = ns_file(dir.path());
    // A Secret-volume layout: tls.crt -> ..data/tls.crt, ..data -> v1.
    let certs = dir.path().join("certs");
    make_certs(&certs.join("v1"));
    make_certs(&certs.join("v2"));
    std::fs::create_dir_all(certs.join("v3")).unwrap();
    std::fs::write(
        certs.join("v3/tls.crt"),
        "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::copy(certs.join("v2/tls.key"), certs.join("v3/tls.key")).unwrap();
    std::fs::copy(certs.join("v2/ca.crt"), certs.join("v3/ca.crt")).unwrap();
    symlink("v1", &certs.join("..data"));
    for f in ["tls.crt", "tls.key", "ca.crt"] {
        symlink(&format!("..data/{f}"), &certs.join(f));
    }
    let inj = Injector::start_with(
        tempfile::tempdir().unwrap(),
        certs.clone(),
        0,
        &["--namespaces", &ns, "--cert-poll-ms", "100"],
        &[],
    );
    let ca1 = std::fs::read(certs.join("v1/ca.crt")).unwrap();
    let ca2 = std::fs::read(certs.join("v2/ca.crt")).unwrap();
    let only_v2 = client_trusting(&[&ca2], true);
    assert!(
        only_v2.get(inj.url("/healthz")).send().await.is_err(),
        "v2 is not served yet"
    );
    let expiry_before = metric(
        &inj.metrics_text().await,
        "proxy_injector_tls_cert_expiry_timestamp_seconds",
    );

    let stop = Arc::new(AtomicBool::new(false));
    let totals = Arc::new(Totals::default());
    // Two clients on kept-alive connections, two with a new handshake per request.
    let clients = vec![
        client_trusting(&[&ca1, &ca2], false),
        client_trusting(&[&ca1, &ca2], false),
        client_trusting(&[&ca1, &ca2], true),
        client_trusting(&[&ca1, &ca2], true),
    ];
    let run = tokio::spawn(load(
        inj.url("/inject"),
        clients,
        stop.clone(),
        totals.clone(),
    ));
    let third = Duration::from_secs_f64(load_seconds() / 3.0);
    tokio::time::sleep(third).await;
    switch(&certs, "v2");
    tokio::time::sleep(third).await;
    // New handshakes get the new certificate (polled every 100 ms; a busy machine may take longer).
    let took = support::wait_until_async(
        support::Lazy(|| {
            format!(
                "new handshakes to get the rotated certificate:\n{}",
                inj.logs()
            )
        }),
        Duration::from_secs(5),
        async || only_v2.get(inj.url("/healthz")).send().await.is_ok(),
    )
    .await;
    eprintln!(
        "new handshakes got the rotated certificate by {:?} after the switch (first checked at {third:?})",
        third + took
    );
    switch(&certs, "v3");
    tokio::time::sleep(third).await;
    stop.store(true, Ordering::Release);
    run.await.unwrap();

    let (ok, failed) = totals.report("rotation under load");
    assert_eq!(
        failed,
        0,
        "failed requests: {:?}",
        totals.errors.lock().unwrap()
    );
    assert!(ok > 20, "too few requests to mean anything: {ok}");
    // The broken v3 certificate was refused; v2 is still served.
    assert_eq!(
        only_v2
            .get(inj.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let text = inj.metrics_text().await;
    assert_eq!(
        metric(
            &text,
            r#"proxy_injector_tls_cert_reloads_total{result="ok"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            r#"proxy_injector_tls_cert_reloads_total{result="error"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert!(metric(&text, "proxy_injector_tls_cert_expiry_timestamp_seconds") >= expiry_before);
    let logs = inj.logs();
    assert!(logs.contains("TLS certificate reloaded"), "{logs}");
    assert!(
        logs.contains("new TLS certificate not loaded; keeping the previous one"),
        "{logs}"
    );
}

#[tokio::test]
async fn sigterm_under_load_drops_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let mut inj = Injector::start(
        &[
            "--namespaces",
            &ns_file(dir.path()),
            "--shutdown-delay-seconds",
            "2",
            "--drain-seconds",
            "5",
        ],
        &[],
    );
    let ca = inj.ca_pem();
    let stop = Arc::new(AtomicBool::new(false));
    let totals = Arc::new(Totals::default());
    let clients = (0..4)
        .map(|i| client_trusting(&[&ca], i % 2 == 1))
        .collect();
    let run = tokio::spawn(load(
        inj.url("/inject"),
        clients,
        stop.clone(),
        totals.clone(),
    ));
    tokio::time::sleep(Duration::from_secs_f64(load_seconds() / 2.0)).await;

    // SIGTERM (without waiting for the exit), as the kubelet sends it.
    let pid = inj.child.as_ref().unwrap().id();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let signalled = Instant::now();
    let before = totals.ok.load(Ordering::Relaxed);
    // Readiness turns false while requests are still answered; the load stops once the
    // "endpoints controller" (this loop) has seen readiness off, as the API server would.
    let c = client(&ca);
    let said = support::wait_for_not_ready(
        "readiness to turn off (/readyz 503) after SIGTERM",
        Duration::from_secs(1),
        &c,
        inj.url("/readyz"),
    )
    .await;
    eprintln!("readiness off {:?} after SIGTERM", signalled.elapsed());
    assert_eq!(said, "shutting down\n");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Release);
    run.await.unwrap();
    let after = totals.ok.load(Ordering::Relaxed) - before;

    let (ok, failed) = totals.report("SIGTERM under load");
    assert_eq!(
        failed,
        0,
        "failed requests: {:?}",
        totals.errors.lock().unwrap()
    );
    assert!(ok > 20 && after > 0, "ok {ok}, after SIGTERM {after}");
    let st = inj.terminate();
    assert!(st.success(), "exit status {st}; logs:\n{}", inj.logs());
    assert!(
        signalled.elapsed() >= Duration::from_secs(2),
        "stopped before the shutdown delay"
    );
    assert!(
        TcpStream::connect(("127.0.0.1", inj.port)).is_err(),
        "still accepting after exit"
    );
    let logs = inj.logs();
    assert!(logs.contains("no longer accepting connections"), "{logs}");
}

#[tokio::test]
async fn client_ca_requires_an_api_server_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let st = std::process::Command::new(support::bin())
        .args(["certs", "--out"])
        .arg(&certs)
        .args([
            "--dns",
            "localhost",
            "--ip",
            "127.0.0.1",
            "--client",
            "kube-apiserver",
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let inj = Injector::start_with(
        tempfile::tempdir().unwrap(),
        certs.clone(),
        0,
        &[
            "--namespaces",
            &ns_file(dir.path()),
            "--client-ca",
            certs.join("ca.crt").to_str().unwrap(),
            "--admin-listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    let admin = inj.admin_port();
    let ca = inj.ca_pem();
    // Without a client certificate: the handshake is refused.
    let anonymous = client(&ca);
    assert!(
        anonymous
            .post(inj.url("/inject"))
            .body(review_body("a"))
            .send()
            .await
            .is_err()
    );
    // With one from another CA: refused too.
    let other = dir.path().join("other");
    let st = std::process::Command::new(support::bin())
        .args(["certs", "--out"])
        .arg(&other)
        .args(["--dns", "localhost", "--client", "intruder"])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let with_identity = |dir: &Path| {
        let mut pem = std::fs::read(dir.join("client.crt")).unwrap();
        pem.extend(std::fs::read(dir.join("client.key")).unwrap());
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .identity(reqwest::Identity::from_pem(&pem).unwrap())
            .build()
            .unwrap()
    };
    assert!(
        with_identity(&other)
            .post(inj.url("/inject"))
            .body(review_body("b"))
            .send()
            .await
            .is_err()
    );
    // With the API server's certificate: answered.
    let r = with_identity(&certs)
        .post(inj.url("/inject"))
        .body(review_body("c"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Probes and Prometheus use the plain-HTTP admin port.
    let plain = reqwest::Client::new();
    for path in ["/healthz", "/readyz"] {
        let r = plain
            .get(format!("http://127.0.0.1:{admin}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let text = support::get_text(&plain, format!("http://127.0.0.1:{admin}/metrics")).await;
    assert_eq!(
        metric(
            &text,
            r#"proxy_injector_admissions_total{handler="inject",result="injected",reason="enabled"}"#
        ),
        Some(1.0),
        "{text}"
    );
    // The admin port serves nothing else.
    let r = plain
        .post(format!("http://127.0.0.1:{admin}/inject"))
        .body(review_body("d"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// A stand-in for the Kubernetes API that accepts connections and reads requests but never
/// answers: an Event write to it stalls for good. Returns its port and the request lines seen.
fn stalled_api_server() -> (u16, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match std::io::Read::read(&mut conn, &mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            let line = String::from_utf8_lossy(&head)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned();
            log.lock().unwrap().push(line);
            held.push(conn); // never answered, never closed
        }
    });
    (port, seen)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// RELIABILITY.md, "many pods at once": equal Event notes (pods of one owner) are counted on
/// one waiting note; distinct ones wait up to a limit (1024), past which they are dropped,
/// counted and logged, and the answer never waits. The Kubernetes API here never answers, so
/// the publishing task is stuck on its first write and notes pile up; the server runs
/// in-process with that Events sender.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_event_queue_drops_and_counts_and_never_delays_answers() {
    use proxy_injector::admission::Admission;
    use proxy_injector::config::Config;
    use proxy_injector::events::{Events, QUEUE};
    use proxy_injector::metrics::Metrics;
    use proxy_injector::namespaces::Namespaces;
    use proxy_injector::server::{self, ServeOptions, Services};

    let log = Captured::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .try_init()
        .expect("the only tracing subscriber of this test binary");
    let (api_port, api_requests) = stalled_api_server();
    let kube = kube::Client::try_from(kube::Config::new(
        format!("http://127.0.0.1:{api_port}").parse().unwrap(),
    ))
    .unwrap();
    let metrics = Arc::new(Metrics::new());
    let events = Events::start(kube, Some("queue-test".into()), metrics.clone());

    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    make_certs(&certs);
    let ns = Namespaces::from_file(&meshed_namespace_file(dir.path())).unwrap();
    let admission = Admission::new(Arc::new(Config::default()), ns.clone()).with_events(true);
    let port = free_port();
    let opts = ServeOptions {
        shutdown_delay: Duration::ZERO,
        drain: Duration::from_secs(1),
        ..ServeOptions::new(
            format!("127.0.0.1:{port}").parse().unwrap(),
            certs.join("tls.crt"),
            certs.join("tls.key"),
        )
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let services = Services {
        metrics: metrics.clone(),
        events: Some(events.clone()),
        namespaces: ns.clone(),
        linkerd_config: None,
    };
    let serving = tokio::spawn(server::serve(admission, opts, services, async move {
        let _ = stopped.await;
    }));
    support::wait_until_async(
        "the in-process server to listen",
        Duration::from_secs(10),
        async || {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        },
    )
    .await;

    // Phase 1: 4 clients, 400 pods each, each client's pods from one ReplicaSet: equal notes,
    // counted on the one waiting (or being written), never queued one per pod.
    let ca = std::fs::read(certs.join("ca.crt")).unwrap();
    let url = format!("https://127.0.0.1:{port}/inject");
    let per_client = 400;
    let mut tasks = Vec::new();
    for t in 0..4 {
        let (c, url) = (client(&ca), url.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..per_client {
                let pod = json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"generateName": format!("web-{t}-"), "namespace": "shop",
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                            "name": format!("web-{t}"), "uid": format!("u{t}"), "controller": true}]},
                    "spec": {"containers": [{"name": "app", "image": "nginx"}]}});
                post_injected(&c, &url, &format!("rs{t}-{i}"), pod).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let text = support::get_text(&client(&ca), format!("https://127.0.0.1:{port}/metrics")).await;
    let coalesced =
        metric(&text, r#"proxy_injector_events_total{result="coalesced"}"#).unwrap_or(0.0);
    let dropped = metric(&text, r#"proxy_injector_events_total{result="dropped"}"#).unwrap_or(0.0);
    eprintln!(
        "1,600 pods of 4 ReplicaSets: {coalesced} notes added to a waiting one, {dropped} dropped"
    );
    // 4 notes, each new at most twice (before and after the writer took its one batch).
    assert!(coalesced >= 1592.0, "coalesced {coalesced}\n{text}");
    assert_eq!(dropped, 0.0, "{text}");

    // Phase 2: 1,100 pods with no owner, each its own note: the waiting notes reach QUEUE
    // and the rest are dropped, counted, and said in a log line, while answers do not wait.
    let total = 1100;
    let order = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..4 {
        let (c, url, order) = (client(&ca), url.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let mut timings = Vec::new();
            for i in 0..total / 4 {
                let pod = json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("solo-{t}-{i}"), "namespace": "shop"},
                    "spec": {"containers": [{"name": "app", "image": "nginx"}]}});
                let started = Instant::now();
                post_injected(&c, &url, &format!("solo{t}-{i}"), pod).await;
                timings.push((order.fetch_add(1, Ordering::Relaxed), started.elapsed()));
            }
            timings
        }));
    }
    let mut timings = Vec::new();
    for t in tasks {
        timings.extend(t.await.unwrap());
    }
    timings.sort();
    // Latencies while there was room (the first 800 answers) and once full (the last 200).
    let mut before: Vec<Duration> = timings[..800].iter().map(|t| t.1).collect();
    let mut after: Vec<Duration> = timings[total - 200..].iter().map(|t| t.1).collect();
    before.sort();
    after.sort();
    eprintln!(
        "answers while the waiting notes had room: p50 {:?}, p99 {:?}, max {:?}; once full: p50 {:?}, p99 {:?}, max {:?}",
        percentile(&before, 0.5),
        percentile(&before, 0.99),
        before[before.len() - 1],
        percentile(&after, 0.5),
        percentile(&after, 0.99),
        after[after.len() - 1],
    );
    assert!(
        after[after.len() - 1] < Duration::from_secs(2),
        "an answer waited {:?} with the Event notes full",
        after[after.len() - 1]
    );
    let text = support::get_text(&client(&ca), format!("https://127.0.0.1:{port}/metrics")).await;
    let dropped = metric(&text, r#"proxy_injector_events_total{result="dropped"}"#)
        .unwrap_or_else(|| panic!("no dropped count in\n{text}")) as usize;
    eprintln!(
        "{total} distinct notes offered with up to 8 of phase 1 taken or waiting, limit {QUEUE}: {dropped} dropped and counted; the API saw {:?}",
        api_requests.lock().unwrap()
    );
    assert!(
        (total + 4 - QUEUE - 4..=total + 4 - QUEUE).contains(&dropped),
        "dropped {dropped} of {total} with a limit of {QUEUE}"
    );
    for result in ["sent", "failed"] {
        let n = metric(
            &text,
            &format!(r#"proxy_injector_events_total{{result="{result}"}}"#),
        );
        assert!(
            n.unwrap_or(0.0) == 0.0,
            "{result}: {n:?} with an API that never answers"
        );
    }
    let seen = api_requests.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "one Event write in flight: {seen:?}");
    assert!(
        seen[0].starts_with("POST /apis/events.k8s.io/v1/namespaces/shop/events"),
        "{seen:?}"
    );
    // The drop is said once per 10 s, not once per note.
    let logged = String::from_utf8_lossy(&log.0.lock().unwrap()).into_owned();
    let drop_lines: Vec<&str> = logged
        .lines()
        .filter(|l| l.contains("Events dropped"))
        .collect();
    eprintln!("drop log lines: {drop_lines:?}");
    assert!(
        (1..=2).contains(&drop_lines.len()),
        "{} drop log lines for {dropped} drops:\n{logged}",
        drop_lines.len()
    );

    // `send` itself when full: a lock, a hash and a counter, nothing that waits.
    let seed = Admission::new(Arc::new(Config::default()), ns)
        .with_events(true)
        .review(&review_body("direct"))
        .unwrap()
        .event
        .expect("an injected, named pod makes an Event");
    let n = 10_000;
    let started = Instant::now();
    for _ in 0..n {
        events.send(seed.clone());
    }
    let took = started.elapsed();
    let text = metrics.render(&Namespaces::empty());
    let dropped_now = metric(&text, r#"proxy_injector_events_total{result="dropped"}"#).unwrap();
    eprintln!(
        "{n} sends when full took {took:?} ({:?} each), all dropped and counted",
        took / n as u32
    );
    assert_eq!(dropped_now as usize, dropped + n);
    assert!(took < Duration::from_secs(1), "{n} sends took {took:?}");

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
}

/// POSTs one review of `pod` and checks that it was injected.
async fn post_injected(c: &reqwest::Client, url: &str, uid: &str, pod: serde_json::Value) {
    let r = c
        .post(url)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&pod_review(uid, "shop", pod)).unwrap())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{uid}: {e:?}"));
    let status = r.status();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{uid}: {v}");
    assert!(v["response"]["patch"].is_string(), "{uid}: {v}");
}

/// Log lines of the in-process server, kept for the test to read.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
