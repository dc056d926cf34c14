//! The command line: subcommands and their arguments.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "proxy-injector",
    version,
    about = "Mutating admission webhook that injects a Linkerd-compatible proxy into pods"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Plain,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum CheckOutput {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Output {
    Yaml,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the HTTPS admission webhook (POST /inject, POST /warn, GET /healthz, /readyz, /metrics).
    ///
    /// Examples:
    ///   proxy-injector serve --tls-cert certs/out/tls.crt --tls-key certs/out/tls.key
    ///   proxy-injector serve --listen 127.0.0.1:8443 --tls-cert tls.crt --tls-key tls.key \
    ///       --config config.yaml --namespaces namespaces.yaml --log-format json
    #[command(verbatim_doc_comment)]
    Serve(ServeArgs),
    /// Print manifests with the proxy added to their pods, exactly as the webhook would.
    ///
    /// Reads YAML or JSON (multi-document, `List`), injects Pods and the pod templates of
    /// Deployments, StatefulSets, DaemonSets, ReplicaSets, ReplicationControllers, Jobs and
    /// CronJobs, and passes every other object through unchanged.
    ///
    /// Examples:
    ///   proxy-injector inject -f app.yaml | kubectl apply -f -
    ///   kubectl get deploy web -o yaml | proxy-injector inject -f - --manual
    ///   proxy-injector inject -f app.yaml --namespaces namespaces.yaml
    ///   proxy-injector inject -f injected.yaml --uninject
    #[command(verbatim_doc_comment)]
    Inject(InjectArgs),
    /// Say whether a pod is (or would be) injected, by which rule, with which values and
    /// where each value comes from; and the mesh mistakes in any workload or namespace (the
    /// same warnings the webhook's /warn gives). For a pod in the cluster, judged by the release
    /// and trust anchors Linkerd's ConfigMaps (linkerd-config, linkerd-identity-trust-roots)
    /// hold: whether its proxy is that release's, how it is doing ("is it the proxy or my
    /// app?": one verdict from its status, its Warning Events as evidence, the fix), whether it
    /// carries the current trust anchors, and, when it runs the proxy or would get it, the
    /// NetworkPolicies that select it and whether each of the proxy's paths (control plane,
    /// DNS, inbound, metrics, tap) is allowed, with a fix for denied ones.
    ///
    /// Examples:
    ///   proxy-injector explain web-7d9c6b8f5-x2x7q -n shop     (a running pod, from the cluster)
    ///   proxy-injector explain -f deployment.yaml --namespaces namespaces.yaml
    #[command(verbatim_doc_comment)]
    Explain(ExplainArgs),
    /// Check a cluster for pods missing the proxy, outdated proxies, the webhook's health, and
    /// NetworkPolicies that cut meshed proxies off what they need.
    ///
    /// Lists pods that injection is enabled for but that run without the proxy (grouped by
    /// owner, with the command that fixes each), pods whose proxy is not the release
    /// linkerd-config names, meshed pods held up by the mesh (grouped by owner and verdict,
    /// as explain POD judges them) and pods with old trust anchors, whether the
    /// MutatingWebhookConfiguration exists, has a caBundle, points at a live endpoint whose
    /// certificate the caBundle verifies, and how long that certificate has left, and the
    /// meshed workloads whose proxy a NetworkPolicy denies the control plane, DNS, inbound,
    /// metrics or tap traffic (with the NetworkPolicies that open it; "cannot tell" paths are
    /// listed but not counted). Exits with 1 when a problem was found.
    ///
    /// Examples:
    ///   proxy-injector check
    ///   proxy-injector check -o json | jq '.missing_proxy[].fix'
    ///   proxy-injector check -o json | jq '.network.workloads[].fix[]'
    #[command(verbatim_doc_comment)]
    Check(CheckArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    ///
    /// Example: proxy-injector completions bash > /etc/bash_completion.d/proxy-injector
    Completions { shell: clap_complete::Shell },
    /// Write a CA and a serving certificate for the webhook (ca.crt, ca.key, tls.crt, tls.key).
    ///
    /// Examples:
    ///   proxy-injector certs --out certs/out --dns localhost --ip 127.0.0.1
    ///   proxy-injector certs --out certs/out --kubernetes --namespace proxy-injector
    #[command(verbatim_doc_comment)]
    Certs(CertsArgs),
}

/// Where the configuration comes from: this injector's config file, then Linkerd's chart
/// values over it.
#[derive(Args)]
pub struct ConfigArgs {
    /// This injector's YAML config file (every key optional; defaults are Linkerd's).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Linkerd's linkerd-control-plane chart values (a Helm values file, or the `values` key
    /// of the linkerd-config ConfigMap), applied over --config.
    #[arg(long)]
    pub values: Option<PathBuf>,
    /// The Linkerd release whose pods to make: an edge tag (edge-25.4.4), version-2.18,
    /// stable-2.18.x or enterprise-2.18.x; 2.16 (edge-24.8.2) to edge-26.8.3. Default: the
    /// values' linkerdVersion when it names a release, else the newest.
    #[arg(long)]
    pub linkerd_version: Option<String>,
}

#[derive(Args)]
pub struct ServeArgs {
    #[arg(long, default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    #[arg(long)]
    pub tls_cert: PathBuf,
    #[arg(long)]
    pub tls_key: PathBuf,
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Multi-document YAML of Namespace objects, instead of watching the cluster.
    #[arg(long)]
    pub namespaces: Option<PathBuf>,
    #[arg(
        long,
        value_enum,
        default_value = "plain",
        env = "PROXY_INJECTOR_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    /// Per-request timeout (reading the body, reviewing, answering), in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub request_timeout_ms: u64,
    /// Limit for the TLS handshake, for a connection's first request, and for reading
    /// request headers (also HTTP/1.1's wait for the next request), in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    pub header_timeout_ms: u64,
    /// A connection with no request in flight for this long is closed (HTTP/2: GOAWAY), in
    /// milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub idle_timeout_ms: u64,
    /// Connections open at once on the TLS port (the admin port has its own 64). At the cap a
    /// new connection closes the one that has done nothing for longest: first those that never
    /// had a request answered, then the one idle longest; never one with a request in flight.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_connections: u32,
    /// A request body with no bytes for this long is cut (408); also the time before
    /// --body-min-bytes-per-second applies. In milliseconds.
    #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub body_stall_ms: u64,
    /// A request body that arrives slower than this on average (after its first
    /// --body-stall-ms) is cut (408).
    #[arg(long, default_value_t = 65_536, value_parser = clap::value_parser!(u64).range(1..))]
    pub body_min_bytes_per_second: u64,
    /// After SIGTERM: seconds to keep serving with readiness off, so endpoints stop
    /// routing here before connections are refused.
    #[arg(long, default_value_t = 5)]
    pub shutdown_delay_seconds: u64,
    /// Then: seconds given to in-flight requests to finish.
    #[arg(long, default_value_t = 10)]
    pub drain_seconds: u64,
    /// PEM CA bundle: require API server client certificates that chain to it.
    /// Probes and Prometheus then use --admin-listen (they present no certificate).
    #[arg(long)]
    pub client_ca: Option<PathBuf>,
    /// Plain-HTTP address for /healthz, /readyz and /metrics (e.g. 0.0.0.0:9995).
    #[arg(long)]
    pub admin_listen: Option<SocketAddr>,
    /// Seconds the namespace watch may fail (answers come from the last known namespaces
    /// meanwhile) before /readyz reports not ready.
    #[arg(long, default_value_t = 300)]
    pub max_stale_seconds: u64,
    /// How often the certificate files are checked for a change, in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    pub cert_poll_ms: u64,
    /// In a Linkerd cluster: follow Linkerd's own configuration, the `values` of the
    /// linkerd-config ConfigMap and `ca-bundle.crt` of linkerd-identity-trust-roots in the
    /// control-plane namespace, applied over --config and --values without a restart. Not
    /// ready until both are read.
    #[arg(long, conflicts_with = "namespaces")]
    pub watch_linkerd_config: bool,
    /// Record Kubernetes Events on the pod's owner (Injected, InjectionSkipped, InjectionDenied).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub events: bool,
}

#[derive(Args)]
pub struct InjectArgs {
    /// Manifest file, or - for standard input.
    #[arg(short = 'f', long = "filename", default_value = "-")]
    pub file: PathBuf,
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Namespace objects to decide with, instead of reading them from the cluster.
    #[arg(long, conflicts_with = "manual")]
    pub namespaces: Option<PathBuf>,
    /// Namespace for documents that name none (default: "default").
    #[arg(long, short)]
    pub namespace: Option<String>,
    /// Inject regardless of annotations (like `linkerd inject --manual`: what was injected
    /// before is replaced); no cluster access. What Linkerd refuses (host network, another
    /// sidecar, ...) fails the command, with the reason on stderr and nothing on stdout.
    #[arg(long)]
    pub manual: bool,
    /// Remove what injection added instead.
    #[arg(long, conflicts_with_all = ["manual", "namespaces"])]
    pub uninject: bool,
    /// Only add `linkerd.io/inject: enabled` to pod templates and Namespace objects (plain
    /// `linkerd inject`), for the webhook to inject; no cluster access.
    #[arg(long, conflicts_with_all = ["manual", "uninject", "namespaces"])]
    pub annotate: bool,
    /// Add Linkerd's debug sidecar: `config.linkerd.io/enable-debug-sidecar: "true"` on each
    /// pod template injected (like `linkerd inject --enable-debug-sidecar`).
    #[arg(long, conflicts_with = "uninject")]
    pub enable_debug_sidecar: bool,
    #[arg(long, short, value_enum, default_value = "yaml")]
    pub output: Output,
}

#[derive(Args)]
pub struct ExplainArgs {
    /// A pod in the cluster.
    pub pod: Option<String>,
    /// Manifest file, or - for standard input.
    #[arg(short = 'f', long = "filename", conflicts_with = "pod")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Namespace objects to decide with, instead of reading them from the cluster.
    #[arg(long)]
    pub namespaces: Option<PathBuf>,
    #[arg(long, short)]
    pub namespace: Option<String>,
}

#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Name of the MutatingWebhookConfiguration.
    #[arg(long, default_value = "proxy-injector")]
    pub webhook: String,
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: CheckOutput,
}

#[derive(Args)]
pub struct CertsArgs {
    #[arg(long, default_value = "certs/out")]
    pub out: PathBuf,
    /// DNS names for the serving certificate (default with --kubernetes: the Service's names).
    #[arg(long)]
    pub dns: Vec<String>,
    #[arg(long)]
    pub ip: Vec<IpAddr>,
    #[arg(long, default_value_t = 365)]
    pub days: i64,
    /// Also write secret.yaml (the TLS Secret) and webhook-patch.json (sets the caBundle).
    #[arg(long)]
    pub kubernetes: bool,
    /// Namespace of the injector's Service and Secret (with --kubernetes).
    #[arg(long, default_value = "proxy-injector")]
    pub namespace: String,
    #[arg(long, default_value = "proxy-injector-tls")]
    pub secret_name: String,
    /// Also write client.crt/client.key for this common name, signed by the same CA: the
    /// API server's client certificate when the webhook runs with --client-ca ca.crt.
    #[arg(long)]
    pub client: Option<String>,
}
