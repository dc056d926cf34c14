//! Connections that hold the injector's memory and file descriptors without sending work:
//! silent ones and HTTP/2 ones that idle after a request are closed within their timeouts,
//! and at the cap a new connection makes room by closing the one idle longest (or is refused
//! when every connection has a request in flight), on the TLS port and the admin port.
//! Each test prints what it measured.

#[path = "support/mod.rs"]
mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{
    Injector, client, meshed_namespace_file, metric, pod_review, read_until_closed, tls_stream,
    wait_for_async,
};

fn review() -> serde_json::Value {
    pod_review(
        "c1",
        "shop",
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "shop"},
               "spec": {"containers": [{"name": "app", "image": "nginx"}]}}),
    )
}

/// `serve` with a meshed namespace, an admin port, and `extra` flags; returns the admin port.
fn start(dir: &std::path::Path, extra: &[&str]) -> (Injector, u16) {
    let ns = meshed_namespace_file(dir);
    let mut args = vec![
        "--namespaces",
        ns.to_str().unwrap(),
        "--admin-listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    let inj = Injector::start(&args, &[]);
    let admin = inj.admin_port();
    (inj, admin)
}

async fn admin_metrics(admin: u16) -> String {
    reqwest::get(format!("http://127.0.0.1:{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn count(text: &str, listener: &str, result: &str) -> f64 {
    metric(
        text,
        &format!(r#"proxy_injector_connections_total{{listener="{listener}",result="{result}"}}"#),
    )
    .unwrap_or(0.0)
}

fn open(text: &str, listener: &str) -> f64 {
    metric(
        text,
        &format!(r#"proxy_injector_open_connections{{listener="{listener}"}}"#),
    )
    .unwrap_or(0.0)
}

/// A client with its own connection (one reqwest client per connection).
async fn connected_client(inj: &Injector) -> Result<reqwest::Client, reqwest::Error> {
    let c = client(&inj.ca_pem());
    let r = c.post(inj.url("/inject")).json(&review()).send().await?;
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2, "ALPN gives HTTP/2");
    Ok(c)
}

/// The admin port's answer to `GET /healthz`.
async fn admin_healthz(admin: u16) -> reqwest::StatusCode {
    reqwest::get(format!("http://127.0.0.1:{admin}/healthz"))
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn silent_connections_are_closed_within_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (inj, admin) = start(dir.path(), &["--header-timeout-ms", "800"]);
    let (port, ca) = (inj.port, inj.ca_pem());
    let took = tokio::task::spawn_blocking(move || {
        let mut took = Vec::new();
        // TLS done, then nothing: no HTTP at all.
        let mut s = tls_stream(port, &ca);
        took.push(("TLS port: TLS, then silence", read_until_closed(&mut s)));
        // TLS done, the HTTP/2 preface and an empty SETTINGS frame, then no request.
        let mut s = tls_stream(port, &ca);
        s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
            .unwrap();
        s.flush().unwrap();
        took.push((
            "TLS port: HTTP/2 preface, then no request",
            read_until_closed(&mut s),
        ));
        // The admin port (plain HTTP): silence, and half a request line.
        let mut s = TcpStream::connect(("127.0.0.1", admin)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        took.push(("admin port: silence", read_until_closed(&mut s)));
        let mut s = TcpStream::connect(("127.0.0.1", admin)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        took.push(("admin port: half a request", read_until_closed(&mut s)));
        // Keep-alive on the admin port: a request answered, then silence.
        let mut s = TcpStream::connect(("127.0.0.1", admin)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        took.push((
            "admin port: keep-alive after a request",
            read_until_closed(&mut s),
        ));
        took
    })
    .await
    .unwrap();
    for (what, (text, t)) in took {
        eprintln!("{what}: closed after {t:?}");
        assert!(
            t >= Duration::from_millis(600) && t < Duration::from_secs(3),
            "{what}: closed after {t:?} (header timeout 800 ms): {text:?}"
        );
        assert!(
            !text.contains("200 OK") || what.contains("keep-alive"),
            "{what}: {text:?}"
        );
    }
    // The server is fine.
    let c = client(&inj.ca_pem());
    assert_eq!(inj.post_review(&c, &review()).await.status(), 200);
}

#[tokio::test]
async fn at_the_cap_the_longest_idle_connection_makes_room_and_idle_ones_let_go() {
    const CAP: usize = 16;
    let dir = tempfile::tempdir().unwrap();
    let (inj, admin) = start(
        dir.path(),
        &[
            "--max-connections",
            "16",
            // Long enough that no held connection idles out while the 17 connect on a slow,
            // busy machine.
            "--idle-timeout-ms",
            "5000",
            "--header-timeout-ms",
            "800",
            "--body-stall-ms",
            "30000",
        ],
    );
    let mut held = Vec::new();
    for _ in 0..CAP {
        held.push(connected_client(&inj).await.unwrap());
    }
    // One more is served: the connection idle longest (the first) is closed to make room. Its
    // client is kept, so that its connection stays open while the count is read.
    let _extra = connected_client(&inj).await.unwrap();
    let text = admin_metrics(admin).await;
    assert_eq!(open(&text, "webhook"), CAP as f64, "{text}");
    assert_eq!(count(&text, "webhook", "evicted"), 1.0, "{text}");
    assert_eq!(count(&text, "webhook", "refused"), 0.0, "{text}");
    // The admin port has its own cap: probes get through.
    assert_eq!(admin_healthz(admin).await, 200);
    // The evicted client reconnects on its next request (making room in turn).
    assert_eq!(inj.post_review(&held[0], &review()).await.status(), 200);
    let last_request = Instant::now();

    // No request for the idle timeout: every connection is closed (GOAWAY).
    let text = wait_for_async(
        "the idle connections to be closed",
        Duration::from_secs(20),
        async || {
            let text = admin_metrics(admin).await;
            (open(&text, "webhook") == 0.0).then_some(text)
        },
    )
    .await;
    let idle_for = last_request.elapsed();
    eprintln!(
        "{CAP} idle HTTP/2 connections closed {idle_for:?} after their last request (idle timeout 5 s)"
    );
    assert!(
        idle_for >= Duration::from_millis(4900),
        "closed after {idle_for:?}"
    );
    assert_eq!(count(&text, "webhook", "idle_closed"), CAP as f64, "{text}");

    // Every connection with a request in flight (a body that has not come): the next one is
    // refused at once, before its TLS handshake, since none can make room.
    let (port, ca) = (inj.port, inj.ca_pem());
    let busy = tokio::task::spawn_blocking(move || {
        (0..CAP)
            .map(|_| {
                let mut s = tls_stream(port, &ca);
                s.write_all(
                    b"POST /inject HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n",
                )
                .unwrap();
                s.flush().unwrap();
                s
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    wait_for_async(
        "the requests of the busy connections to be in flight",
        Duration::from_secs(10),
        async || {
            let started = Instant::now();
            let refused = connected_client(&inj).await;
            eprintln!(
                "a connection while {CAP} have a request in flight: {:?} after {:?}",
                refused.as_ref().err(),
                started.elapsed()
            );
            (refused.is_err() && started.elapsed() < Duration::from_secs(1)).then_some(())
        },
    )
    .await;
    let text = admin_metrics(admin).await;
    assert!(count(&text, "webhook", "refused") >= 1.0, "{text}");
    assert_eq!(admin_healthz(admin).await, 200);
    drop(busy);
}

/// The worst idle connection an attacker can hold open: TLS done, HTTP/2, one request made (so
/// past the first-request timeout), then idle. 600 of them against the default cap of 512:
/// each new one is served, closing the one idle longest, and memory stays bounded.
#[tokio::test]
async fn a_flood_of_idle_connections_is_held_to_the_cap() {
    const CAP: usize = 512;
    const FLOOD: usize = 600;
    let dir = tempfile::tempdir().unwrap();
    let (inj, admin) = start(dir.path(), &[]);
    let pid = inj.child.as_ref().unwrap().id();
    // Warm up (the first requests allocate the runtime's and the allocator's pools).
    for _ in 0..8 {
        connected_client(&inj).await.unwrap();
    }
    let before = support::status_kib(pid, "VmRSS:");
    let mut held = Vec::new();
    let started = Instant::now();
    for _ in 0..FLOOD {
        held.push(
            connected_client(&inj)
                .await
                .expect("a new connection is served"),
        );
    }
    let opened_in = started.elapsed();
    let during = support::status_kib(pid, "VmRSS:");
    let text = admin_metrics(admin).await;
    let peak = support::status_kib(pid, "VmHWM:");
    let (evicted, open_now) = (count(&text, "webhook", "evicted"), open(&text, "webhook"));
    eprintln!(
        "{FLOOD} idle HTTP/2 connections offered in {opened_in:?}: all served, {open_now} open, \
         {evicted} evicted; RSS {before} KiB before, {during} KiB with them open ({} KiB per open \
         connection), peak {peak} KiB",
        (during.saturating_sub(before)) / (open_now as u64).max(1)
    );
    assert_eq!(open_now, CAP as f64, "{text}");
    // The 8 warm-up connections may have closed, or been evicted.
    assert!(
        evicted >= (FLOOD - CAP) as f64 && evicted <= (FLOOD + 8 - CAP) as f64,
        "{text}"
    );
    assert_eq!(count(&text, "webhook", "refused"), 0.0, "{text}");
    assert!(
        peak < 96 * 1024,
        "peak RSS {peak} KiB with the webhook port full of idle connections"
    );
    // The admin port still answers probes.
    assert_eq!(admin_healthz(admin).await, 200);
}
