//! proxy-injector CLI: serve, inject, explain, certs.

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use proxy_injector::admission::Admission;
use proxy_injector::config::Config;
use proxy_injector::events::Events;
use proxy_injector::metrics::Metrics;
use proxy_injector::namespaces::Namespaces;
use proxy_injector::{certs, offline, server};

#[derive(Parser)]
#[command(
    name = "proxy-injector",
    version,
    about = "Mutating admission webhook that injects a Linkerd-compatible proxy into pods"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Plain,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum CheckOutput {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum Output {
    Yaml,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTPS admission webhook (POST /inject, POST /warn, GET /healthz, /readyz, /metrics).
    ///
    /// Examples:
    ///   proxy-injector serve --tls-cert certs/out/tls.crt --tls-key certs/out/tls.key
    ///   proxy-injector serve --listen 127.0.0.1:8443 --tls-cert tls.crt --tls-key tls.key \
    ///       --config config.yaml --namespaces namespaces.yaml --log-format json
    #[command(verbatim_doc_comment)]
    Serve {
        #[arg(long, default_value = "0.0.0.0:8443")]
        listen: SocketAddr,
        #[arg(long)]
        tls_cert: PathBuf,
        #[arg(long)]
        tls_key: PathBuf,
        /// YAML config file (defaults are Linkerd's).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Multi-document YAML of Namespace objects, instead of watching the cluster.
        #[arg(long)]
        namespaces: Option<PathBuf>,
        #[arg(
            long,
            value_enum,
            default_value = "plain",
            env = "PROXY_INJECTOR_LOG_FORMAT"
        )]
        log_format: LogFormat,
        /// Per-request timeout (reading the body, reviewing, answering), in milliseconds.
        #[arg(long, default_value_t = 10_000)]
        request_timeout_ms: u64,
        /// Limit for the TLS handshake and for reading request headers, in milliseconds.
        #[arg(long, default_value_t = 5_000)]
        header_timeout_ms: u64,
        /// After SIGTERM: seconds to keep serving with readiness off, so endpoints stop
        /// routing here before connections are refused.
        #[arg(long, default_value_t = 5)]
        shutdown_delay_seconds: u64,
        /// Then: seconds given to in-flight requests to finish.
        #[arg(long, default_value_t = 10)]
        drain_seconds: u64,
        /// PEM CA bundle: require API server client certificates that chain to it.
        /// Probes and Prometheus then use --admin-listen (they present no certificate).
        #[arg(long)]
        client_ca: Option<PathBuf>,
        /// Plain-HTTP address for /healthz, /readyz and /metrics (e.g. 0.0.0.0:9995).
        #[arg(long)]
        admin_listen: Option<SocketAddr>,
        /// Seconds the namespace watch may fail (answers come from the last known namespaces
        /// meanwhile) before /readyz reports not ready.
        #[arg(long, default_value_t = 300)]
        max_stale_seconds: u64,
        /// How often the certificate files are checked for a change, in milliseconds.
        #[arg(long, default_value_t = 5_000)]
        cert_poll_ms: u64,
        /// Record Kubernetes Events on the pod's owner (Injected, InjectionSkipped, InjectionDenied).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        events: bool,
    },
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
    Inject {
        /// Manifest file, or - for standard input.
        #[arg(short = 'f', long = "filename", default_value = "-")]
        file: PathBuf,
        #[arg(long)]
        config: Option<PathBuf>,
        /// Namespace objects to decide with, instead of reading them from the cluster.
        #[arg(long, conflicts_with = "manual")]
        namespaces: Option<PathBuf>,
        /// Namespace for documents that name none (default: "default").
        #[arg(long, short)]
        namespace: Option<String>,
        /// Inject regardless of annotations (like `linkerd inject --manual`); no cluster access.
        #[arg(long)]
        manual: bool,
        /// Remove what injection added instead.
        #[arg(long, conflicts_with_all = ["manual", "namespaces"])]
        uninject: bool,
        #[arg(long, short, value_enum, default_value = "yaml")]
        output: Output,
    },
    /// Say whether a pod is (or would be) injected, by which rule, with which values and
    /// where each value comes from; and the mesh mistakes in any workload or namespace (the
    /// same warnings the webhook's /warn gives).
    ///
    /// Examples:
    ///   proxy-injector explain web-7d9c6b8f5-x2x7q -n shop     (a running pod, from the cluster)
    ///   proxy-injector explain -f deployment.yaml --namespaces namespaces.yaml
    #[command(verbatim_doc_comment)]
    Explain {
        /// A pod in the cluster.
        pod: Option<String>,
        /// Manifest file, or - for standard input.
        #[arg(short = 'f', long = "filename", conflicts_with = "pod")]
        file: Option<PathBuf>,
        #[arg(long)]
        config: Option<PathBuf>,
        /// Namespace objects to decide with, instead of reading them from the cluster.
        #[arg(long)]
        namespaces: Option<PathBuf>,
        #[arg(long, short)]
        namespace: Option<String>,
    },
    /// Check a cluster for pods missing the proxy, outdated proxies, and the webhook's health.
    ///
    /// Lists pods that injection is enabled for but that run without the proxy (grouped by
    /// owner, with the command that fixes each), pods with an outdated proxy, and whether the
    /// MutatingWebhookConfiguration exists, has a caBundle, points at a live endpoint whose
    /// certificate the caBundle verifies, and how long that certificate has left.
    /// Exits with 1 when a problem was found.
    ///
    /// Examples:
    ///   proxy-injector check
    ///   proxy-injector check -o json | jq '.missing_proxy[].fix'
    #[command(verbatim_doc_comment)]
    Check {
        #[arg(long)]
        config: Option<PathBuf>,
        /// Name of the MutatingWebhookConfiguration.
        #[arg(long, default_value = "proxy-injector")]
        webhook: String,
        #[arg(long, short, value_enum, default_value = "text")]
        output: CheckOutput,
    },
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
    Certs {
        #[arg(long, default_value = "certs/out")]
        out: PathBuf,
        /// DNS names for the serving certificate (default with --kubernetes: the Service's names).
        #[arg(long)]
        dns: Vec<String>,
        #[arg(long)]
        ip: Vec<IpAddr>,
        #[arg(long, default_value_t = 365)]
        days: i64,
        /// Also write secret.yaml (the TLS Secret) and webhook-patch.json (sets the caBundle).
        #[arg(long)]
        kubernetes: bool,
        /// Namespace of the injector's Service and Secret (with --kubernetes).
        #[arg(long, default_value = "proxy-injector")]
        namespace: String,
        #[arg(long, default_value = "proxy-injector-tls")]
        secret_name: String,
        /// Also write client.crt/client.key for this common name, signed by the same CA: the
        /// API server's client certificate when the webhook runs with --client-ca ca.crt.
        #[arg(long)]
        client: Option<String>,
    },
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Plain => builder.init(),
    }
}

fn read_input(file: &Path) -> anyhow::Result<String> {
    if file == Path::new("-") {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        Ok(s)
    } else {
        std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            listen,
            tls_cert,
            tls_key,
            config,
            namespaces,
            log_format,
            request_timeout_ms,
            header_timeout_ms,
            shutdown_delay_seconds,
            drain_seconds,
            client_ca,
            admin_listen,
            max_stale_seconds,
            cert_poll_ms,
            events,
        } => {
            init_logs(log_format);
            let cfg = Config::load(config.as_deref())?;
            if cfg.trust_anchors_pem.is_none() {
                tracing::warn!(
                    "no trustAnchorsFile in the config: proxies get no LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS"
                );
            }
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let metrics = Arc::new(Metrics::new());
                let (ns, events) = match namespaces {
                    Some(p) => (Namespaces::from_file(&p)?, None),
                    None => {
                        let client = kube::Client::try_default().await.map_err(|e| {
                            anyhow::anyhow!(
                                "cannot reach the Kubernetes API to watch namespaces ({e}); set KUBECONFIG, \
                                 run in-cluster, or pass --namespaces FILE"
                            )
                        })?;
                        let events = events.then(|| {
                            Events::start(
                                client.clone(),
                                std::env::var("POD_NAME").ok(),
                                metrics.clone(),
                            )
                        });
                        let ns = Namespaces::watch(client, Duration::from_secs(max_stale_seconds));
                        (ns, events)
                    }
                };
                let admission = Admission::new(Arc::new(cfg), ns).with_events(events.is_some());
                let opts = server::ServeOptions {
                    client_ca,
                    admin_listen,
                    request_timeout: Duration::from_millis(request_timeout_ms),
                    header_timeout: Duration::from_millis(header_timeout_ms),
                    shutdown_delay: Duration::from_secs(shutdown_delay_seconds),
                    drain: Duration::from_secs(drain_seconds),
                    cert_poll: Duration::from_millis(cert_poll_ms),
                    ..server::ServeOptions::new(listen, tls_cert, tls_key)
                };
                let services = server::Services { metrics, events };
                server::serve(admission, opts, services, server::shutdown_signal()).await
            })
        }
        Command::Inject {
            file,
            config,
            namespaces,
            namespace,
            manual,
            uninject,
            output,
        } => {
            let docs = offline::read_documents(&read_input(&file)?)?;
            let cfg = Config::load(config.as_deref())?;
            let ns = match (&namespaces, manual || uninject) {
                (Some(p), _) => Namespaces::from_file(p)?,
                (None, true) => Namespaces::empty(),
                (None, false) => namespaces_from_cluster(&docs, namespace.as_deref())?,
            };
            let admission = Admission::new(Arc::new(cfg), ns);
            let mode = if uninject {
                offline::InjectMode::Uninject
            } else if manual {
                offline::InjectMode::Manual
            } else {
                offline::InjectMode::Webhook
            };
            let mut out = String::new();
            for (i, doc) in docs.iter().enumerate() {
                let r = offline::inject_document(&admission, i, doc, namespace.as_deref(), mode)?;
                for note in &r.notes {
                    eprintln!("{note}");
                }
                match output {
                    Output::Yaml => {
                        out.push_str("---\n");
                        out.push_str(&offline::to_yaml(&r.doc)?);
                    }
                    Output::Json => {
                        out.push_str(&serde_json::to_string_pretty(&r.doc)?);
                        out.push('\n');
                    }
                }
            }
            print!("{out}");
            Ok(())
        }
        Command::Explain {
            pod,
            file,
            config,
            namespaces,
            namespace,
        } => {
            let cfg = Arc::new(Config::load(config.as_deref())?);
            if let Some(pod_name) = pod {
                let ns = namespace.clone().unwrap_or_else(|| "default".to_owned());
                let pod = fetch_pod(&pod_name, &ns)?;
                let nss = match &namespaces {
                    Some(p) => Namespaces::from_file(p)?,
                    None => namespaces_from_cluster(std::slice::from_ref(&pod), Some(&ns))?,
                };
                let admission = Admission::new(cfg, nss);
                for line in offline::explain_pod(&admission, &pod, Some(&ns), true) {
                    println!("{line}");
                }
                return Ok(());
            }
            let file = file.unwrap_or_else(|| PathBuf::from("-"));
            let docs = offline::read_documents(&read_input(&file)?)?;
            let nss = match &namespaces {
                Some(p) => Namespaces::from_file(p)?,
                None => namespaces_from_cluster(&docs, namespace.as_deref()).unwrap_or_else(|e| {
                    eprintln!("note: {e}; deciding without namespace annotations");
                    Namespaces::empty()
                }),
            };
            let admission = Admission::new(cfg, nss);
            for (i, doc) in docs.iter().enumerate() {
                for line in offline::explain(&admission, i, doc, namespace.as_deref())? {
                    println!("{line}");
                }
            }
            Ok(())
        }
        Command::Check {
            config,
            webhook,
            output,
        } => {
            let cfg = Config::load(config.as_deref())?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let report = rt.block_on(async {
                let client = kube::Client::try_default().await.map_err(|e| {
                    anyhow::anyhow!("cannot reach the cluster ({e}); set KUBECONFIG")
                })?;
                proxy_injector::check::run(client, &cfg, &webhook).await
            })?;
            match output {
                CheckOutput::Text => print!("{}", report.render()),
                CheckOutput::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            }
            if report.problems > 0 {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "proxy-injector",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Certs {
            out,
            mut dns,
            ip,
            days,
            kubernetes,
            namespace,
            secret_name,
            client,
        } => {
            if kubernetes && dns.is_empty() {
                dns = certs::service_dns_names("proxy-injector", &namespace);
            }
            let g = certs::generate(&dns, &ip, days)?;
            certs::write(&out, &g)?;
            println!(
                "wrote {0}/ca.crt, {0}/ca.key, {0}/tls.crt, {0}/tls.key",
                out.display()
            );
            if let Some(cn) = client {
                let (cert, key) = certs::client_certificate(&g, &cn, days)?;
                certs::write_files(
                    &out,
                    &[("client.crt", &cert, false), ("client.key", &key, true)],
                )?;
                println!(
                    "wrote {0}/client.crt, {0}/client.key (CN={cn}, for --client-ca {0}/ca.crt)",
                    out.display()
                );
            }
            if kubernetes {
                let (secret, patch) = certs::kubernetes_objects(&g, &namespace, &secret_name);
                std::fs::write(out.join("secret.yaml"), secret)?;
                std::fs::write(out.join("webhook-patch.json"), patch)?;
                println!(
                    "wrote {0}/secret.yaml (Secret {namespace}/{secret_name}) and {0}/webhook-patch.json (caBundle)",
                    out.display()
                );
            }
            Ok(())
        }
    }
}

/// Reads one pod from the cluster.
fn fetch_pod(name: &str, namespace: &str) -> anyhow::Result<serde_json::Value> {
    use k8s_openapi::api::core::v1::Pod;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = kube::Client::try_default().await.map_err(|e| {
            anyhow::anyhow!("cannot reach the cluster ({e}); use -f FILE to explain a manifest")
        })?;
        let pod = kube::Api::<Pod>::namespaced(client, namespace)
            .get_opt(name)
            .await?
            .ok_or_else(|| anyhow::anyhow!("pod {name} not found in namespace {namespace}"))?;
        let mut v = serde_json::to_value(pod)?;
        v["apiVersion"] = "v1".into();
        v["kind"] = "Pod".into();
        Ok(v)
    })
}

/// Reads, once, the namespaces the documents live in, from the cluster (kubeconfig or
/// in-cluster), for `inject`'s default mode.
fn namespaces_from_cluster(
    docs: &[serde_json::Value],
    default_ns: Option<&str>,
) -> anyhow::Result<Namespaces> {
    use k8s_openapi::api::core::v1::Namespace;
    let mut names: Vec<String> = docs
        .iter()
        .map(|d| {
            d["metadata"]["namespace"]
                .as_str()
                .or(default_ns)
                .unwrap_or("default")
                .to_owned()
        })
        .collect();
    names.sort();
    names.dedup();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = kube::Client::try_default().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot reach the cluster to read namespace annotations ({e}); \
                 pass --namespaces FILE, or --manual to inject regardless of annotations"
            )
        })?;
        let api: kube::Api<Namespace> = kube::Api::all(client);
        let mut found = Vec::new();
        for n in &names {
            match api.get_opt(n).await {
                Ok(Some(ns)) => found.push(ns),
                Ok(None) => eprintln!("namespace {n} does not exist in the cluster; deciding on the pods' own annotations"),
                Err(e) => anyhow::bail!("cannot read namespace {n} from the cluster: {e}"),
            }
        }
        Ok(Namespaces::from_objects(found))
    })
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
