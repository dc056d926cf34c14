//! The benchmark floor: proxy-injector's own HTTPS server (`proxy_injector::server`: rustls,
//! TLS 1.2+, body limit, header and request timeouts, health endpoints, graceful shutdown)
//! answering every `POST /inject` with one constant AdmissionReview of `--answer-bytes` bytes,
//! without reviewing. `loadgen` starts it next to the injector; what the injector costs beyond
//! it is the cost of reviewing. Never for a cluster: it admits every pod unchanged.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::header;
use clap::Parser;
use proxy_injector::admission::Admission;
use proxy_injector::config::Config;
use proxy_injector::metrics::Metrics;
use proxy_injector::namespaces::Namespaces;
use proxy_injector::server::{self, ServeOptions, Services};
use proxy_injector_tools::floor;

#[derive(Parser, Debug)]
#[command(
    about = "Constant-answer HTTPS server on proxy-injector's server stack (benchmark floor, 127.0.0.1)"
)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    #[arg(long)]
    tls_cert: PathBuf,
    #[arg(long)]
    tls_key: PathBuf,
    /// Size of the constant answer in bytes (at least the minimal answer's size); loadgen sets
    /// it to the size of the injector's answer for the corpus under test.
    #[arg(long, default_value_t = 0)]
    answer_bytes: usize,
    /// After SIGTERM: seconds to keep serving with readiness off (as `serve`).
    #[arg(long, default_value_t = 0)]
    shutdown_delay_seconds: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let answer = Bytes::from(floor::answer(args.answer_bytes));
    let opts = ServeOptions {
        shutdown_delay: Duration::from_secs(args.shutdown_delay_seconds),
        ..ServeOptions::new(args.listen, args.tls_cert, args.tls_key)
    };
    // The body is read (and limited) as the injector reads it, then ignored.
    let inject = axum::routing::post(move |_body: Bytes| {
        let answer = answer.clone();
        async move { ([(header::CONTENT_TYPE, "application/json")], answer) }
    });
    // Namespaces and config are only there for /readyz and /metrics; nothing is reviewed.
    let admission = Admission::new(Arc::new(Config::default()), Namespaces::empty());
    let services = Services {
        metrics: Arc::new(Metrics::new()),
        events: None,
        namespaces: Namespaces::empty(),
        linkerd_config: None,
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(server::serve_with_inject(
            admission,
            opts,
            services,
            inject,
            server::shutdown_signal(),
        ))
}
