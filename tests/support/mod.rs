//! Helpers shared by the integration tests: certificates, a running `proxy-injector serve`,
//! and an HTTPS client that trusts only the generated CA.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_proxy-injector"))
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A `kB` field of `/proc/PID/status` (e.g. `VmRSS:`, `VmHWM:`), in KiB.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// A port on 127.0.0.1 that was free a moment ago. Another process may take it before it is
/// used: only for a server that must come back on the same port (a restart); otherwise
/// listen on port 0 and read the port from the server's log (`Injector::start`).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The port of the last 127.0.0.1 address on a log line containing `marker`.
fn logged_port(log: &str, marker: &str) -> Option<u16> {
    let line = log.lines().rev().find(|l| l.contains(marker))?;
    let rest = &line[line.find("127.0.0.1:")? + "127.0.0.1:".len()..];
    let digits = rest.split(|c: char| !c.is_ascii_digit()).next()?;
    digits.parse().ok()
}

/// Runs `proxy-injector certs` into `dir` for 127.0.0.1 and localhost.
pub fn make_certs(dir: &Path) {
    let st = Command::new(bin())
        .args(["certs", "--out"])
        .arg(dir)
        .args(["--dns", "localhost", "--ip", "127.0.0.1"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "proxy-injector certs failed");
}

/// A `proxy-injector serve` child process, killed on drop (also when a test panics).
pub struct Injector {
    pub child: Option<Child>,
    pub port: u16,
    pub certs: PathBuf,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Injector {
    /// Starts serve with fresh certs; `extra` are more serve flags; `env` extra env vars.
    pub fn start(extra: &[&str], env: &[(&str, &str)]) -> Injector {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        make_certs(&certs);
        Self::start_with(dir, certs, 0, extra, env)
    }

    /// Starts serve on `port`; 0 lets the system choose a free port, read back from the
    /// server's "listening" log line (no window in which another process can take it).
    pub fn start_with(
        dir: tempfile::TempDir,
        certs: PathBuf,
        port: u16,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Injector {
        let log = dir.path().join("serve.log");
        let logfile = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(bin());
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--tls-cert")
            .arg(certs.join("tls.crt"))
            .arg("--tls-key")
            .arg(certs.join("tls.key"))
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(logfile);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let mut inj = Injector {
            child: Some(child),
            port,
            certs,
            log,
            _dir: dir,
        };
        inj.wait_healthy();
        inj
    }

    /// Waits until this server logs that it listens (HTTPS) and accepts a TCP connection
    /// there; with port 0, learns its port from that log line.
    fn wait_healthy(&mut self) {
        let wanted = self.port;
        let log = self.log.clone();
        let child = self.child.as_mut().expect("running");
        let mut port = 0;
        wait_until(
            Lazy(|| {
                format!(
                    "proxy-injector serve to listen on 127.0.0.1:{wanted}:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            }),
            Duration::from_secs(20),
            || {
                if let Ok(Some(st)) = child.try_wait() {
                    panic!(
                        "proxy-injector serve exited with {st}:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                match logged_port(&text, "proxy-injector listening (HTTPS)") {
                    Some(p) => port = p,
                    None => return false,
                }
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            },
        );
        assert!(
            wanted == 0 || wanted == port,
            "serve listens on {port}, not {wanted}"
        );
        self.port = port;
    }

    /// The admin port this server logged (start it with `--admin-listen 127.0.0.1:0`).
    pub fn admin_port(&self) -> u16 {
        let text = self.logs();
        logged_port(&text, "admin endpoints listening")
            .unwrap_or_else(|| panic!("no admin listener in the server's log:\n{text}"))
    }

    /// Waits until `/readyz` answers 200 (the namespace cache has synced); panics after
    /// `within`, with the server's log and `what` in the message.
    pub async fn wait_ready(&self, within: Duration, what: &str) {
        let c = client(&self.ca_pem());
        let took = wait_until_async(
            Lazy(|| format!("{what} to be ready (/readyz 200):\n{}", self.logs())),
            within,
            async || {
                c.get(self.url("/readyz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200)
            },
        )
        .await;
        eprintln!("{what}: ready after {took:.1?}");
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `POST /inject` with `review` as JSON.
    pub async fn post_review(
        &self,
        c: &reqwest::Client,
        review: &serde_json::Value,
    ) -> reqwest::Response {
        c.post(self.url("/inject"))
            .json(review)
            .send()
            .await
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// `GET /metrics`, over HTTPS.
    pub async fn metrics_text(&self) -> String {
        client(&self.ca_pem())
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.certs.join("ca.crt")).unwrap()
    }

    /// Sends SIGTERM and waits for the exit status (killed, by `Drop`, if it takes over 20 s).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.as_ref().expect("running").id();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
        let mut status = None;
        let child = self.child.as_mut().expect("running");
        wait_until(
            "serve to exit after SIGTERM",
            Duration::from_secs(20),
            || {
                status = child.try_wait().ok().flatten();
                status.is_some()
            },
        );
        self.child = None;
        status.expect("exited")
    }
}

impl Drop for Injector {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// An HTTPS client that trusts only `ca_pem`.
pub fn client(ca_pem: &[u8]) -> reqwest::Client {
    client_trusting(&[ca_pem], false)
}

/// An HTTPS client trusting each of `cas`; `fresh` opens a new connection (a new TLS
/// handshake) for every request.
pub fn client_trusting(cas: &[&[u8]], fresh: bool) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .timeout(Duration::from_secs(10));
    for ca in cas {
        b = b.add_root_certificate(reqwest::Certificate::from_pem(ca).unwrap());
    }
    if fresh {
        b = b.pool_max_idle_per_host(0);
    }
    b.build().unwrap()
}

/// Writes `dir/ns.yaml`: namespace `shop`, annotated `linkerd.io/inject: enabled`.
pub fn meshed_namespace_file(dir: &Path) -> PathBuf {
    let p = dir.join("ns.yaml");
    std::fs::write(
        &p,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  annotations:\n    linkerd.io/inject: enabled\n",
    )
    .unwrap();
    p
}

/// The value of the sample `name_and_labels` (exactly as exposed) in a metrics text.
pub fn metric(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(name_and_labels)?
            .strip_prefix(' ')?
            .parse()
            .ok()
    })
}

pub fn pod_review(uid: &str, namespace: &str, pod: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": namespace,
            "object": pod,
        }
    })
}
/// Opens a TLS connection to the server and returns it after the handshake.
pub fn tls_stream(
    port: u16,
    ca: &[u8],
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    tls_stream_with(port, ca, rustls::DEFAULT_VERSIONS)
}

/// `tls_stream`, offering only `versions` (e.g. `&[&rustls::version::TLS12]`).
pub fn tls_stream_with(
    port: u16,
    ca: &[u8],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    for c in CertificateDer::pem_slice_iter(ca) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(std::sync::Arc::new(config), "127.0.0.1".try_into().unwrap())
            .unwrap();
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut s = rustls::StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).unwrap();
    }
    s
}

/// Reads until the peer closes (or 10 s pass); returns what came and how long it took.
pub fn read_until_closed(s: &mut impl std::io::Read) -> (String, Duration) {
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    (
        String::from_utf8_lossy(&out).into_owned(),
        started.elapsed(),
    )
}

/// How often the `wait_*` helpers check their condition.
pub const POLL: Duration = Duration::from_millis(50);

/// A failure message computed only when it is needed (e.g. one that includes a server's log).
pub struct Lazy<F: Fn() -> String>(pub F);

impl<F: Fn() -> String> std::fmt::Display for Lazy<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&(self.0)())
    }
}

fn timed_out(what: &dyn std::fmt::Display, waited: Duration, polls: u32) -> ! {
    panic!("timed out after {waited:.1?} ({polls} checks) waiting for {what}")
}

/// Polls `ready` every `POLL` until it returns true; returns how long that took. Panics after
/// `timeout`, naming `what` and the time waited.
pub fn wait_until(
    what: impl std::fmt::Display,
    timeout: Duration,
    mut ready: impl FnMut() -> bool,
) -> Duration {
    let started = Instant::now();
    let mut polls = 0;
    loop {
        polls += 1;
        if ready() {
            return started.elapsed();
        }
        if started.elapsed() >= timeout {
            timed_out(&what, started.elapsed(), polls);
        }
        std::thread::sleep(POLL);
    }
}

/// `wait_until` for async conditions (API calls, HTTP requests).
pub async fn wait_until_async(
    what: impl std::fmt::Display,
    timeout: Duration,
    mut ready: impl AsyncFnMut() -> bool,
) -> Duration {
    let started = Instant::now();
    wait_for_async(what, timeout, async || ready().await.then_some(())).await;
    started.elapsed()
}

/// `GET url`, its body as text.
pub async fn get_text(c: &reqwest::Client, url: String) -> String {
    c.get(url).send().await.unwrap().text().await.unwrap()
}

/// Polls `GET url` until it answers 503 (readiness off) and returns what it said.
pub async fn wait_for_not_ready(
    what: impl std::fmt::Display,
    timeout: Duration,
    c: &reqwest::Client,
    url: String,
) -> String {
    wait_for_async(what, timeout, async || {
        let r = c.get(&url).send().await.unwrap();
        if r.status() == 503 {
            Some(r.text().await.unwrap())
        } else {
            None
        }
    })
    .await
}

/// Polls `get` every `POLL` until it returns a value, and returns it. Panics after `timeout`,
/// naming `what` and the time waited.
pub async fn wait_for_async<T>(
    what: impl std::fmt::Display,
    timeout: Duration,
    mut get: impl AsyncFnMut() -> Option<T>,
) -> T {
    let started = Instant::now();
    let mut polls = 0;
    loop {
        polls += 1;
        if let Some(v) = get().await {
            return v;
        }
        if started.elapsed() >= timeout {
            timed_out(&what, started.elapsed(), polls);
        }
        tokio::time::sleep(POLL).await;
    }
}

pub mod cluster;
