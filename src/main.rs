//! proxy-injector CLI: one function per subcommand (serve, inject, explain, check,
//! completions, certs), one runtime, one way to reach the cluster. The arguments are in `cli`.

mod cli;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use cli::{
    CertsArgs, CheckArgs, CheckOutput, Cli, Command, ExplainArgs, InjectArgs, LogFormat, Output,
    ServeArgs,
};
use proxy_injector::admission::{Admission, SharedAdmission};
use proxy_injector::check::cluster::Cluster;
use proxy_injector::config::Config;
use proxy_injector::events::Events;
use proxy_injector::linkerd_config::ConfigStatus;
use proxy_injector::load::Sources;
use proxy_injector::metrics::Metrics;
use proxy_injector::namespaces::Namespaces;
use proxy_injector::{certs, explain, offline, server};
use tokio::runtime::Runtime;

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

/// The Kubernetes client, from the kubeconfig (`KUBECONFIG`, `~/.kube/config`) or the
/// in-cluster service account; `instead` says what the user can do without a cluster.
async fn cluster_client(purpose: &str, instead: &str) -> anyhow::Result<kube::Client> {
    kube::Client::try_default().await.map_err(|e| {
        anyhow::anyhow!("cannot reach the Kubernetes API to {purpose} ({e}); {instead}")
    })
}

/// The configuration a command runs with; notes about the values go to stderr.
fn sources(a: &cli::ConfigArgs) -> anyhow::Result<Sources> {
    Ok(Sources::read(
        a.config.as_deref(),
        a.values.as_deref(),
        a.linkerd_version.as_deref(),
    )?)
}

fn load_config(a: &cli::ConfigArgs) -> anyhow::Result<Config> {
    let (cfg, notes) = sources(a)?.build()?;
    for n in notes {
        eprintln!("warning: {n}");
    }
    Ok(cfg)
}

fn serve(rt: &Runtime, a: ServeArgs) -> anyhow::Result<ExitCode> {
    init_logs(a.log_format);
    let sources = sources(&a.config)?;
    let (cfg, notes) = sources.build()?;
    tracing::info!(release = %cfg.release, "making the pods of this Linkerd release");
    for n in notes {
        tracing::warn!(note = %n, "Linkerd values");
    }
    if cfg.trust_anchors_pem.is_none() {
        tracing::warn!(
            "no trust anchors (trustAnchorsFile in --config, identityTrustAnchorsPEM in --values): proxies get no LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS"
        );
    }
    rt.block_on(async move {
        let metrics = Arc::new(Metrics::new());
        let mut client_for_config = None;
        let (ns, events, policies) = match a.namespaces {
            Some(p) => (Namespaces::from_file(&p)?, None, None),
            None => {
                let client = cluster_client(
                    "watch namespaces",
                    "set KUBECONFIG, run in-cluster, or pass --namespaces FILE",
                )
                .await?;
                let events = a.events.then(|| {
                    Events::start(
                        client.clone(),
                        std::env::var("POD_NAME").ok(),
                        metrics.clone(),
                    )
                });
                let policies = proxy_injector::policies::Policies::watch(client.clone());
                client_for_config = Some(client.clone());
                let limits = proxy_injector::limits::LimitsIndex::watch(client.clone());
                let ns = Namespaces::watch(client, Duration::from_secs(a.max_stale_seconds))
                    .with_limits(limits);
                (ns, events, Some(policies))
            }
        };
        let base = cfg.clone();
        let mut admission = Admission::new(Arc::new(cfg), ns.clone()).with_events(events.is_some());
        if let Some(p) = policies {
            admission = admission.with_network(p);
        }
        let admission = SharedAdmission::from(admission);
        let linkerd_config = match (a.watch_linkerd_config, client_for_config) {
            (true, Some(client)) => {
                let status = Arc::new(ConfigStatus::new(&base.control_plane_namespace));
                proxy_injector::linkerd_config::watch(
                    client,
                    &base,
                    sources,
                    admission.clone(),
                    metrics.clone(),
                    status.clone(),
                );
                Some(status)
            }
            _ => None,
        };
        let opts = server::ServeOptions {
            client_ca: a.client_ca,
            admin_listen: a.admin_listen,
            request_timeout: Duration::from_millis(a.request_timeout_ms),
            header_timeout: Duration::from_millis(a.header_timeout_ms),
            idle_timeout: Duration::from_millis(a.idle_timeout_ms),
            max_connections: a.max_connections as usize,
            body_rate: server::BodyRate {
                stall: Duration::from_millis(a.body_stall_ms),
                min_rate: a.body_min_bytes_per_second,
            },
            shutdown_delay: Duration::from_secs(a.shutdown_delay_seconds),
            drain: Duration::from_secs(a.drain_seconds),
            cert_poll: Duration::from_millis(a.cert_poll_ms),
            ..server::ServeOptions::new(a.listen, a.tls_cert, a.tls_key)
        };
        let services = server::Services {
            metrics,
            events,
            namespaces: ns,
            linkerd_config,
        };
        server::serve(admission, opts, services, server::shutdown_signal()).await
    })?;
    Ok(ExitCode::SUCCESS)
}

fn inject(rt: &Runtime, a: InjectArgs) -> anyhow::Result<ExitCode> {
    let docs = offline::read_documents(&read_input(&a.file)?)?;
    let cfg = load_config(&a.config)?;
    let ns = match (&a.namespaces, a.manual || a.uninject || a.annotate) {
        (Some(p), _) => Namespaces::from_file(p)?,
        (None, true) => Namespaces::empty(),
        (None, false) => namespaces_from_cluster(rt, &docs, a.namespace.as_deref())?,
    };
    let admission = Admission::new(Arc::new(cfg), ns);
    let mode = if a.uninject {
        offline::InjectMode::Uninject
    } else if a.annotate {
        offline::InjectMode::Annotate
    } else if a.manual {
        offline::InjectMode::Manual
    } else {
        offline::InjectMode::Webhook
    };
    let mut out = String::new();
    let mut errors = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        let flags = offline::InjectFlags {
            debug_sidecar: a.enable_debug_sidecar,
        };
        let r =
            offline::inject_document_with(&admission, i, doc, a.namespace.as_deref(), mode, flags)?;
        for note in &r.notes {
            eprintln!("{note}");
        }
        errors.extend(r.errors);
        match a.output {
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
    if !errors.is_empty() {
        eprintln!(
            "error: nothing printed: {} document(s) cannot be injected:",
            errors.len()
        );
        for e in &errors {
            eprintln!("  {e}");
        }
        return Ok(ExitCode::from(1));
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn explain(rt: &Runtime, a: ExplainArgs) -> anyhow::Result<ExitCode> {
    if let Some(pod_name) = a.pod {
        let sources = sources(&a.config)?;
        let base = sources.build()?.0;
        let ns = a.namespace.unwrap_or_else(|| "default".to_owned());
        // One snapshot: the pod, its Events and owner, Linkerd's ConfigMaps, its network facts.
        let (pod, cluster) = rt.block_on(async {
            let client =
                cluster_client("read the pod", "use -f FILE to explain a manifest").await?;
            Cluster::for_pod(&client, &ns, &pod_name, &base).await
        })?;
        let (cfg, notes, from) = cluster.config(&sources)?;
        for n in notes {
            eprintln!("warning: {n}");
        }
        let release = format!("release: {} (from {from})", cfg.release);
        let mut pod = serde_json::to_value(&pod)?;
        pod["apiVersion"] = "v1".into();
        pod["kind"] = "Pod".into();
        let nss = match &a.namespaces {
            Some(p) => Namespaces::from_file(p)?,
            None => namespaces_from_cluster(rt, std::slice::from_ref(&pod), Some(&ns))?,
        };
        let admission = Admission::new(Arc::new(cfg), nss);
        println!("{release}");
        for line in explain::explain_running_pod(&admission, &pod, Some(&ns), &cluster) {
            println!("{line}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let cfg = Arc::new(load_config(&a.config)?);
    let file = a.file.unwrap_or_else(|| PathBuf::from("-"));
    let docs = offline::read_documents(&read_input(&file)?)?;
    let nss = match &a.namespaces {
        Some(p) => Namespaces::from_file(p)?,
        None => namespaces_from_cluster(rt, &docs, a.namespace.as_deref()).unwrap_or_else(|e| {
            eprintln!("note: {e}; deciding without namespace annotations");
            Namespaces::empty()
        }),
    };
    let admission = Admission::new(cfg, nss);
    for (i, doc) in docs.iter().enumerate() {
        for line in explain::explain(&admission, i, doc, a.namespace.as_deref())? {
            println!("{line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn check(rt: &Runtime, a: CheckArgs) -> anyhow::Result<ExitCode> {
    let sources = sources(&a.config)?;
    let report = rt.block_on(async {
        let client = cluster_client("check the cluster", "set KUBECONFIG").await?;
        proxy_injector::check::run(client, &sources, &a.webhook).await
    })?;
    match a.output {
        CheckOutput::Text => print!("{}", report.render()),
        CheckOutput::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(if report.problems > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    use clap::CommandFactory;
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "proxy-injector",
        &mut std::io::stdout(),
    );
    Ok(ExitCode::SUCCESS)
}

fn certs(a: CertsArgs) -> anyhow::Result<ExitCode> {
    let CertsArgs {
        out,
        mut dns,
        ip,
        days,
        kubernetes,
        namespace,
        secret_name,
        client,
    } = a;
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
    Ok(ExitCode::SUCCESS)
}

/// Reads, once, the namespaces the documents live in, from the cluster, for the decisions of
/// `inject` and `explain`.
/// A namespace's ResourceQuotas and LimitRanges, as the webhook reads them.
async fn namespace_limits(
    client: &kube::Client,
    ns: &str,
) -> Result<proxy_injector::quota::NamespaceLimits, kube::Error> {
    use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota};
    use proxy_injector::quota::{QuotaDigest, RangeDigest};
    let lp = kube::api::ListParams::default();
    let quotas = kube::Api::<ResourceQuota>::namespaced(client.clone(), ns)
        .list(&lp)
        .await?
        .items;
    let ranges = kube::Api::<LimitRange>::namespaced(client.clone(), ns)
        .list(&lp)
        .await?
        .items;
    let name = |m: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
        m.name.clone().unwrap_or_default()
    };
    Ok(proxy_injector::quota::NamespaceLimits {
        quotas: Some(Arc::new(
            quotas
                .iter()
                .map(|q| (name(&q.metadata), QuotaDigest::of(q)))
                .collect(),
        )),
        ranges: Some(Arc::new(
            ranges
                .iter()
                .map(|l| (name(&l.metadata), RangeDigest::of(l)))
                .collect(),
        )),
    })
}

fn namespaces_from_cluster(
    rt: &Runtime,
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
    rt.block_on(async {
        let client = cluster_client(
            "read namespace annotations",
            "pass --namespaces FILE, or --manual to inject regardless of annotations",
        )
        .await?;
        let api: kube::Api<Namespace> = kube::Api::all(client.clone());
        let mut found = Vec::new();
        let mut limits = std::collections::HashMap::new();
        for n in &names {
            match api.get_opt(n).await {
                Ok(Some(ns)) => found.push(ns),
                Ok(None) => eprintln!("namespace {n} does not exist in the cluster; deciding on the pods' own annotations"),
                Err(e) => anyhow::bail!("cannot read namespace {n} from the cluster: {e}"),
            }
            match namespace_limits(&client, n).await {
                Ok(l) => {
                    limits.insert(n.clone(), l);
                }
                Err(e) => eprintln!(
                    "note: cannot list the ResourceQuotas and LimitRanges of namespace {n} ({e}); \
                     deciding without them"
                ),
            }
        }
        Ok(Namespaces::from_objects(found).with_static_limits(limits))
    })
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // One runtime for every subcommand that talks to the network.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Serve(a) => serve(&rt, a),
        Command::Inject(a) => inject(&rt, a),
        Command::Explain(a) => explain(&rt, a),
        Command::Check(a) => check(&rt, a),
        Command::Completions { shell } => completions(shell),
        Command::Certs(a) => certs(a),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
