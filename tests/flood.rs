//! Floods that cost an attacker almost nothing, against a running `serve` with its defaults,
//! while legitimate reviews are sent at 5 per second, alternately over a fresh connection and
//! over one kept alive: at least 95% of each kind must be answered (200) within 1 s, and the
//! server's peak RSS stays under the bound RELIABILITY.md documents. The attacker runs on its
//! own thread and runtime, so that the legitimate client is not queued behind it. Each test
//! prints what it measured. All traffic is to 127.0.0.1, bounded in count and time.

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde_json::json;
use support::{Injector, client, meshed_namespace_file, metric, pod_review};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long each flood is held while legitimate reviews are sent.
const HOLD: Duration = Duration::from_secs(20);
/// Legitimate reviews per second.
const RATE: u32 = 5;
/// The answer a legitimate review must get within.
const WITHIN: Duration = Duration::from_secs(1);
/// The server's peak RSS bound under a flood (RELIABILITY.md, "Memory under hostile input").
const PEAK_RSS_KIB: u64 = 112 * 1024;

/// The floods run one at a time: each measures what the machine serves while it is held.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn review(uid: &str) -> serde_json::Value {
    pod_review(
        uid,
        "shop",
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "shop"},
               "spec": {"containers": [{"name": "app", "image": "nginx"}]}}),
    )
}

/// `serve` with its defaults and an admin port (where the test reads the metrics, as Prometheus
/// does: a connection to the flooded TLS port may be evicted), warmed by one review over
/// `kept`, the connection kept alive for the legitimate traffic; `before` is its peak RSS
/// (KiB) then.
struct Target {
    inj: Injector,
    pid: u32,
    kept: reqwest::Client,
    before: u64,
    _dir: tempfile::TempDir,
}

async fn target() -> Target {
    let dir = tempfile::tempdir().unwrap();
    let ns = meshed_namespace_file(dir.path());
    let inj = Injector::start(
        &[
            "--namespaces",
            ns.to_str().unwrap(),
            "--admin-listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    let pid = inj.child.as_ref().unwrap().id();
    let kept = client(&inj.ca_pem());
    assert_eq!(inj.post_review(&kept, &review("warm")).await.status(), 200);
    let before = support::status_kib(pid, "VmHWM:");
    Target {
        inj,
        pid,
        kept,
        before,
        _dir: dir,
    }
}

/// The attacker: `tasks` concurrent loops of `attack` on a thread and runtime of its own,
/// until [`Attacker::stop`].
struct Attacker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Attacker {
    fn start<F, Fut>(tasks: usize, attack: F) -> Attacker
    where
        F: Fn(usize) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                for i in 0..tasks {
                    tokio::spawn(attack(i));
                }
                while !flag.load(Ordering::Acquire) {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
            rt.shutdown_background();
        });
        Attacker {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Makes sure the test process may open `n` more files (sockets).
fn raise_fd_limit(n: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < n {
            assert!(
                lim.rlim_max >= n,
                "this test needs {n} open files; the hard limit is {} (raise `ulimit -Hn`)",
                lim.rlim_max
            );
            lim.rlim_cur = n;
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
    }
}

/// Legitimate reviews at [`RATE`] per second for [`HOLD`], alternately over a fresh
/// connection and over `kept` (connected before); returns for each kind how many were answered
/// 200 within [`WITHIN`], of how many, and the slowest answer.
async fn legitimate_reviews(
    inj: &Injector,
    kept: &reqwest::Client,
) -> [(usize, usize, Duration); 2] {
    let n = (HOLD.as_secs() as u32 * RATE) as usize;
    // Built before they are needed: a client's TLS setup is the test's cost, not the server's.
    let fresh: Vec<_> = (0..n / 2 + 1).map(|_| client(&inj.ca_pem())).collect();
    let mut sent = Vec::new();
    let started = tokio::time::Instant::now();
    for i in 0..n {
        tokio::time::sleep_until(started + Duration::from_secs(1) / RATE * i as u32).await;
        let c = if i % 2 == 0 {
            fresh[i / 2].clone()
        } else {
            kept.clone()
        };
        let (url, body) = (inj.url("/inject"), review(&format!("legit-{i}")));
        sent.push(tokio::spawn(async move {
            let t = Instant::now();
            let r =
                tokio::time::timeout(Duration::from_secs(10), c.post(url).json(&body).send()).await;
            let ok = matches!(&r, Ok(Ok(r)) if r.status() == 200);
            (i % 2, ok, t.elapsed())
        }));
    }
    let mut kinds = [(0, 0, Duration::ZERO); 2];
    for s in sent {
        let (kind, ok, took) = s.await.unwrap();
        let k = &mut kinds[kind];
        k.1 += 1;
        k.2 = k.2.max(took);
        if ok && took <= WITHIN {
            k.0 += 1;
        }
    }
    kinds
}

fn report_and_check(what: &str, kinds: [(usize, usize, Duration); 2]) {
    for (name, (ok, of, slowest)) in ["fresh connections", "a kept-alive connection"]
        .iter()
        .zip(kinds)
    {
        eprintln!(
            "{what}: legitimate reviews over {name}: {ok} of {of} answered within {WITHIN:?} (slowest {slowest:?})"
        );
        assert!(
            ok * 100 >= of * 95,
            "{what}: only {ok} of {of} legitimate reviews over {name} answered within {WITHIN:?}"
        );
    }
}

/// `GET /metrics` on the admin port.
async fn admin_metrics(inj: &Injector) -> String {
    support::get_text(
        &reqwest::Client::new(),
        format!("http://127.0.0.1:{}/metrics", inj.admin_port()),
    )
    .await
}

fn count(text: &str, name_and_labels: &str) -> f64 {
    metric(text, name_and_labels).unwrap_or(0.0)
}

fn tls_connector(ca: &[u8]) -> tokio_rustls::TlsConnector {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// 3,000 connections that do the TLS handshake, send the HTTP/2 preface and SETTINGS, then
/// nothing, each re-opened as soon as the server closes it (the cap is 512).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviews_are_answered_during_a_flood_of_idle_connections() {
    const FLOOD: usize = 3_000;
    raise_fd_limit(FLOOD as u64 + 1_024);
    let _alone = ONE_AT_A_TIME.lock().await;
    let Target {
        inj,
        pid,
        kept,
        before,
        _dir,
    } = target().await;

    let (opened, closed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (port, tls) = (inj.port, tls_connector(&inj.ca_pem()));
    let (o, c) = (opened.clone(), closed.clone());
    let mut attacker = Attacker::start(FLOOD, move |_| {
        let (tls, opened, closed) = (tls.clone(), o.clone(), c.clone());
        async move {
            loop {
                let Ok(tcp) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
                if let Ok(mut s) = tls.connect(name, tcp).await {
                    opened.fetch_add(1, Ordering::Relaxed);
                    let _ = s
                        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
                        .await;
                    let mut buf = [0u8; 4096];
                    while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
                }
                closed.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    // The flood fills the cap before the legitimate traffic starts.
    support::wait_until_async(
        "the attacker to fill the connection cap (1,000 evictions)",
        Duration::from_secs(60),
        async || {
            let text = admin_metrics(&inj).await;
            count(
                &text,
                r#"proxy_injector_connections_total{listener="webhook",result="evicted"}"#,
            ) >= 1_000.0
        },
    )
    .await;
    let kinds = legitimate_reviews(&inj, &kept).await;
    let (o, c) = (
        opened.load(Ordering::Relaxed),
        closed.load(Ordering::Relaxed),
    );
    let text = admin_metrics(&inj).await;
    attacker.stop();
    let peak = support::status_kib(pid, "VmHWM:");
    let evicted = count(
        &text,
        r#"proxy_injector_connections_total{listener="webhook",result="evicted"}"#,
    );
    let open = count(
        &text,
        r#"proxy_injector_open_connections{listener="webhook"}"#,
    );
    eprintln!(
        "{FLOOD} idle TLS+HTTP/2 connections re-opened as they were closed: {o} opened, {c} closed \
         during the test; server: {evicted} evicted, {open} open; peak RSS {before} KiB before, {peak} KiB"
    );
    report_and_check("idle-connection flood", kinds);
    assert!(
        evicted >= 1_000.0,
        "the flood did not reach the cap: {text}"
    );
    assert!(open <= 512.0, "{open} open over the cap of 512");
    assert!(peak < PEAK_RSS_KIB, "peak RSS {peak} KiB");
    // The kept-alive connection served reviews throughout: it was never the one evicted.
    assert_eq!(inj.post_review(&kept, &review("after")).await.status(), 200);
}

/// 100 HTTP/2 streams, 10 on each of 10 connections, each sending 2.9 MB of a body that never
/// ends (half declaring 3,000,000 bytes, half without a length), each re-sent as soon as the
/// server ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviews_are_answered_during_never_ending_bodies() {
    const STREAMS: usize = 100;
    const PER_CONNECTION: usize = 10;
    const SENT: usize = 2_900_000;
    let _alone = ONE_AT_A_TIME.lock().await;
    let Target {
        inj,
        pid,
        kept,
        before,
        _dir,
    } = target().await;

    let clients: Vec<_> = (0..STREAMS / PER_CONNECTION)
        .map(|_| client(&inj.ca_pem()))
        .collect();
    let statuses = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<
        String,
        u64,
    >::new()));
    let (url, seen) = (inj.url("/inject"), statuses.clone());
    let mut attacker = Attacker::start(STREAMS, move |i| {
        let (c, url, seen) = (
            clients[i % clients.len()].clone(),
            url.clone(),
            seen.clone(),
        );
        async move {
            let chunk = bytes_of(64 * 1024);
            loop {
                let chunks = std::iter::repeat_n(chunk.clone(), SENT / chunk.len())
                    .map(Ok::<_, std::io::Error>);
                let never_ending = futures::stream::iter(chunks).chain(futures::stream::pending());
                let mut req = c
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(reqwest::Body::wrap_stream(never_ending));
                if i % 2 == 0 {
                    req = req.header("content-length", "3000000");
                }
                let outcome = match req.send().await {
                    Ok(r) => r.status().as_str().to_owned(),
                    Err(_) => "error".to_owned(),
                };
                *seen.lock().unwrap().entry(outcome).or_default() += 1;
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let kinds = legitimate_reviews(&inj, &kept).await;
    let text = admin_metrics(&inj).await;
    attacker.stop();
    let peak = support::status_kib(pid, "VmHWM:");
    let refused = |reason: &str| {
        count(
            &text,
            &format!(
                r#"proxy_injector_admissions_total{{handler="inject",result="refused",reason="{reason}"}}"#
            ),
        )
    };
    eprintln!(
        "{STREAMS} never-ending HTTP/2 bodies of {SENT} bytes: the attacker saw {:?}; server refused \
         busy {}, connection_share {}, cut to make room {}, stalled {}, slow {}; peak RSS {before} KiB before, {peak} KiB",
        statuses.lock().unwrap(),
        refused("busy"),
        refused("connection_share"),
        refused("evicted"),
        refused("stalled"),
        refused("slow"),
    );
    report_and_check("never-ending bodies", kinds);
    assert!(
        refused("evicted") + refused("stalled") >= 5.0,
        "the bodies that stopped were not cut: {text}"
    );
    assert!(
        refused("busy") + refused("connection_share") >= 1.0,
        "the budget was never full: {text}"
    );
    assert!(peak < PEAK_RSS_KIB, "peak RSS {peak} KiB");
}

fn bytes_of(n: usize) -> Vec<u8> {
    vec![b' '; n]
}
