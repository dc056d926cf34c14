//! Load generator for `make bench`: starts the injector (`proxy-injector serve`) and the floor
//! server (the `floor` binary: the same server library, TLS and limits, answering a constant
//! response as large as the injector's answer for the corpus), sends the same corpus of
//! AdmissionReviews to each over keep-alive HTTPS connections on 127.0.0.1, and prints
//! throughput, latency percentiles, CPU time per request, peak RSS and the injector/floor ratio.
//!
//! Every run is bounded in requests and in time, and targets 127.0.0.1 only.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use proxy_injector_tools::corpus::{self, Size};
use proxy_injector_tools::procs::{
    cpu_seconds, rss_mib, sibling_binary, start_floor, start_injector,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
enum CorpusKind {
    Small,
    #[value(name = "10kb")]
    Medium,
    #[value(name = "100kb")]
    Large,
    Mixed,
}

#[derive(Parser, Debug)]
#[command(
    about = "Benchmark proxy-injector against a constant-answer floor server (127.0.0.1 only)"
)]
struct Args {
    /// The proxy-injector binary to start (release build for real numbers); default: the
    /// `proxy-injector` next to this program (`cargo build --release --workspace --bins`).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// The floor server binary; default: the `floor` next to this program.
    #[arg(long)]
    floor_bin: Option<PathBuf>,
    /// Write the corpus bodies (AdmissionReview JSON) into this directory and exit, e.g. to
    /// drive another load tool (wrk) with the same requests.
    #[arg(long)]
    dump_corpus: Option<PathBuf>,
    /// Corpora to run, in order.
    #[arg(long, value_delimiter = ',', default_value = "10kb,mixed")]
    corpus: Vec<CorpusKind>,
    /// Closed loop: this many connections, each sending its next request when the last answer came.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Requests per closed-loop run (per server, per corpus).
    #[arg(long, default_value_t = 100_000)]
    requests: u64,
    /// Upper bound on each run's duration, in seconds.
    #[arg(long, default_value_t = 30)]
    max_seconds: u64,
    /// Open loop: requests per second (0 = skip the open-loop run).
    #[arg(long, default_value_t = 2000)]
    rate: u64,
    /// Open-loop duration in seconds.
    #[arg(long, default_value_t = 10)]
    rate_seconds: u64,
    /// Requests to send before measuring (warm-up).
    #[arg(long, default_value_t = 2000)]
    warmup: u64,
    /// Print results as JSON lines too.
    #[arg(long)]
    json: bool,
}

type HttpsClient = Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

fn https_client(ca_pem: &[u8], pool: usize) -> anyhow::Result<HttpsClient> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(pool)
        .build(https))
}

#[derive(Debug, Clone, Copy)]
struct RunResult {
    requests: u64,
    errors: u64,
    seconds: f64,
    p50_us: u64,
    p99_us: u64,
    p999_us: u64,
    cpu_us_per_req: f64,
}

/// Sends `body` once and returns the size of the answer's body.
async fn answer_len(client: &HttpsClient, url: &hyper::Uri, body: &Bytes) -> anyhow::Result<usize> {
    let req = hyper::Request::post(url.clone())
        .header("content-type", "application/json")
        .body(Full::new(body.clone()))?;
    let resp = client.request(req).await?;
    anyhow::ensure!(
        resp.status() == 200,
        "the injector answered {} to a corpus request",
        resp.status()
    );
    Ok(resp.into_body().collect().await?.to_bytes().len())
}

async fn send(client: &HttpsClient, url: &hyper::Uri, body: &Bytes) -> bool {
    let req = hyper::Request::post(url.clone())
        .header("content-type", "application/json")
        .body(Full::new(body.clone()));
    let Ok(req) = req else { return false };
    match client.request(req).await {
        Ok(resp) => {
            let ok = resp.status() == 200;
            ok && resp.into_body().collect().await.is_ok()
        }
        Err(_) => false,
    }
}

/// Closed loop: `concurrency` workers, each sending back to back, until `requests` or `max`.
async fn closed_loop(
    client: &HttpsClient,
    url: &hyper::Uri,
    bodies: &[Bytes],
    concurrency: usize,
    requests: u64,
    max: Duration,
    pid: u32,
) -> RunResult {
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let cpu0 = cpu_seconds(pid);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, bodies) = (client.clone(), url.clone(), bodies.to_vec());
        let (next, errors) = (next.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut hist = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
                .expect("histogram bounds");
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests || start.elapsed() > max {
                    break;
                }
                let body = &bodies[(i as usize) % bodies.len()];
                let t = Instant::now();
                if !send(&client, &url, body).await {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                let _ = hist.record(t.elapsed().as_micros().max(1) as u64);
            }
            hist
        }));
    }
    let mut hist = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
        .expect("histogram bounds");
    for t in tasks {
        if let Ok(h) = t.await {
            let _ = hist.add(h);
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    let done = hist.len();
    RunResult {
        requests: done,
        errors: errors.load(Ordering::Relaxed),
        seconds,
        p50_us: hist.value_at_quantile(0.50),
        p99_us: hist.value_at_quantile(0.99),
        p999_us: hist.value_at_quantile(0.999),
        cpu_us_per_req: if done > 0 {
            cpu * 1e6 / done as f64
        } else {
            0.0
        },
    }
}

/// Open loop: requests sent on a fixed schedule whatever the answers do, so a slow server
/// cannot slow the sender down (no coordinated omission). Latency runs from the moment a
/// request is sent; the sender's own lateness against its schedule (tokio's timer ticks in
/// 1 ms steps) is reported separately as `max send lag`.
async fn open_loop(
    client: &HttpsClient,
    url: &hyper::Uri,
    bodies: &[Bytes],
    rate: u64,
    secs: u64,
    pid: u32,
) -> RunResult {
    let total = rate * secs;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let errors = Arc::new(AtomicU64::new(0));
    let inflight = Arc::new(AtomicUsize::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let cpu0 = cpu_seconds(pid);
    let start = tokio::time::Instant::now();
    let mut max_lag = Duration::ZERO;
    for i in 0..total {
        let at = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(at).await;
        let (client, url, body, tx, errors, inflight) = (
            client.clone(),
            url.clone(),
            bodies[(i as usize) % bodies.len()].clone(),
            tx.clone(),
            errors.clone(),
            inflight.clone(),
        );
        inflight.fetch_add(1, Ordering::Relaxed);
        max_lag = max_lag.max(at.elapsed());
        tokio::spawn(async move {
            let sent = Instant::now();
            let ok = tokio::time::timeout(Duration::from_secs(10), send(&client, &url, &body))
                .await
                .unwrap_or(false);
            if !ok {
                errors.fetch_add(1, Ordering::Relaxed);
            }
            let _ = tx.send(sent.elapsed().as_micros().max(1) as u64);
            inflight.fetch_sub(1, Ordering::Relaxed);
        });
    }
    drop(tx);
    let mut hist = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
        .expect("histogram bounds");
    while let Some(v) = rx.recv().await {
        let _ = hist.record(v);
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    println!(
        "  (open loop: max send lag behind schedule {:.1} ms)",
        max_lag.as_secs_f64() * 1e3
    );
    RunResult {
        requests: hist.len(),
        errors: errors.load(Ordering::Relaxed),
        seconds,
        p50_us: hist.value_at_quantile(0.50),
        p99_us: hist.value_at_quantile(0.99),
        p999_us: hist.value_at_quantile(0.999),
        cpu_us_per_req: if !hist.is_empty() {
            cpu * 1e6 / hist.len() as f64
        } else {
            0.0
        },
    }
}

fn corpus_bodies(kind: CorpusKind) -> Vec<Bytes> {
    match kind {
        CorpusKind::Small => vec![Bytes::from(corpus::injected_review_bytes(Size::Small))],
        CorpusKind::Medium => vec![Bytes::from(corpus::injected_review_bytes(Size::Medium))],
        CorpusKind::Large => vec![Bytes::from(corpus::injected_review_bytes(Size::Large))],
        CorpusKind::Mixed => corpus::mixed()
            .into_iter()
            .map(|(_, b)| Bytes::from(b))
            .collect(),
    }
}

fn corpus_name(kind: CorpusKind) -> &'static str {
    match kind {
        CorpusKind::Small => "small",
        CorpusKind::Medium => "10KB",
        CorpusKind::Large => "100KB",
        CorpusKind::Mixed => "mixed",
    }
}

fn row(name: &str, server: &str, r: &RunResult, rss: (f64, f64)) -> String {
    format!(
        "| {name:<22} | {server:<8} | {:>9.0} | {:>7} | {:>7} | {:>8} | {:>9.1} | {:>8.1} | {:>6} |",
        r.requests as f64 / r.seconds,
        r.p50_us,
        r.p99_us,
        r.p999_us,
        r.cpu_us_per_req,
        rss.1,
        r.errors
    )
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(dir) = &args.dump_corpus {
        std::fs::create_dir_all(dir)?;
        for size in Size::ALL {
            std::fs::write(
                dir.join(format!("review-{}.json", size.name())),
                corpus::injected_review_bytes(size),
            )?;
        }
        for (name, body) in corpus::mixed() {
            std::fs::write(dir.join(format!("mixed-{name}.json")), body)?;
        }
        println!("corpus written to {}", dir.display());
        return Ok(());
    }
    let server_bin = sibling_binary(args.server_bin.clone(), "proxy-injector", "--server-bin")?;
    let floor_bin = sibling_binary(args.floor_bin.clone(), "floor", "--floor-bin")?;
    let dir = tempfile::tempdir()?;
    let certs = dir.path().join("certs");
    let st = Command::new(&server_bin)
        .args(["certs", "--dns", "localhost", "--ip", "127.0.0.1", "--out"])
        .arg(&certs)
        .stdout(Stdio::null())
        .status()?;
    anyhow::ensure!(st.success(), "proxy-injector certs failed");
    let ns_file = dir.path().join("ns.yaml");
    std::fs::write(
        &ns_file,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n",
    )?;
    let ca = std::fs::read(certs.join("ca.crt"))?;

    let injector = start_injector(&server_bin, &certs, &ns_file)?;
    let injector_url: hyper::Uri = format!("https://127.0.0.1:{}/inject", injector.port).parse()?;
    let max = Duration::from_secs(args.max_seconds);
    println!(
        "closed loop: {} connections, up to {} requests or {}s per run; open loop: {} req/s for {}s; 127.0.0.1 only",
        args.concurrency, args.requests, args.max_seconds, args.rate, args.rate_seconds
    );
    println!(
        "| corpus / mode          | server   |     req/s | p50 µs  | p99 µs  | p99.9 µs | CPU µs/req | peak RSS MiB | errors |"
    );
    println!(
        "|------------------------|----------|-----------|---------|---------|----------|------------|--------------|--------|"
    );
    let mut total_errors = 0;
    let mut rss_lines = Vec::new();
    let mut floor_lines = Vec::new();
    for kind in &args.corpus {
        let bodies = corpus_bodies(*kind);
        // The floor answers as many bytes as the injector does for this corpus (the mean over
        // its bodies, for a corpus of several).
        let probe = https_client(&ca, 1)?;
        let mut sizes = Vec::new();
        for body in &bodies {
            sizes.push(answer_len(&probe, &injector_url, body).await?);
        }
        let answer_bytes = sizes.iter().sum::<usize>() / sizes.len().max(1);
        let floor = start_floor(&floor_bin, &certs, answer_bytes)?;
        floor_lines.push(format!(
            "{} floor: constant answer of {answer_bytes} bytes (the injector's answers: {}–{} bytes)",
            corpus_name(*kind),
            sizes.iter().min().unwrap_or(&0),
            sizes.iter().max().unwrap_or(&0),
        ));
        let mut ratio = Vec::new();
        for (label, server) in [("injector", &injector), ("floor", &floor)] {
            let url: hyper::Uri = format!("https://127.0.0.1:{}/inject", server.port).parse()?;
            let client = https_client(&ca, args.concurrency)?;
            let pid = server.child.id();
            // Warm-up (connections, TLS sessions, caches).
            let _ = closed_loop(
                &client,
                &url,
                &bodies,
                args.concurrency,
                args.warmup,
                max,
                pid,
            )
            .await;
            let rss_before = rss_mib(pid).0;
            let r = closed_loop(
                &client,
                &url,
                &bodies,
                args.concurrency,
                args.requests,
                max,
                pid,
            )
            .await;
            rss_lines.push(format!(
                "{} {label}: RSS {:.1} MiB after warm-up, {:.1} MiB after {} more requests",
                corpus_name(*kind),
                rss_before,
                rss_mib(pid).0,
                r.requests
            ));
            total_errors += r.errors;
            println!(
                "{}",
                row(
                    &format!("{} closed", corpus_name(*kind)),
                    label,
                    &r,
                    rss_mib(pid)
                )
            );
            if args.json {
                println!(
                    "{{\"corpus\":\"{}\",\"mode\":\"closed\",\"server\":\"{label}\",\"rps\":{:.0},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\"cpu_us_per_req\":{:.2},\"peak_rss_mib\":{:.1},\"errors\":{}}}",
                    corpus_name(*kind),
                    r.requests as f64 / r.seconds,
                    r.p50_us,
                    r.p99_us,
                    r.p999_us,
                    r.cpu_us_per_req,
                    rss_mib(pid).1,
                    r.errors
                );
            }
            ratio.push(r.requests as f64 / r.seconds);
            if args.rate > 0 {
                let r = open_loop(&client, &url, &bodies, args.rate, args.rate_seconds, pid).await;
                total_errors += r.errors;
                println!(
                    "{}",
                    row(
                        &format!("{} open {}/s", corpus_name(*kind), args.rate),
                        label,
                        &r,
                        rss_mib(pid)
                    )
                );
            }
        }
        if let [inj, fl] = ratio[..] {
            println!(
                "| {:<22} | ratio    | {:>8.0}% | injector throughput / floor throughput",
                corpus_name(*kind),
                100.0 * inj / fl
            );
        }
    }
    for l in floor_lines.iter().chain(&rss_lines) {
        println!("{l}");
    }
    println!("errors: {total_errors}");
    anyhow::ensure!(total_errors == 0, "{total_errors} requests failed");
    Ok(())
}
