//! The proxy's part of the config (`proxy:`): image, ports, logs, resources, and the settings
//! the proxy's environment is written from (newer keys named as Linkerd's chart values).

use serde::Deserialize;

use super::{DEFAULT_PROXY_VERSION, Image, Resources};
use crate::overrides;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Ports {
    pub inbound: u16,
    pub outbound: u16,
    pub admin: u16,
    pub control: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ProxyConfig {
    pub image: Image,
    pub image_pull_policy: String,
    pub uid: i64,
    pub gid: Option<i64>,
    pub ports: Ports,
    pub log_level: String,
    pub log_format: String,
    /// `off` (Linkerd's default): the proxy's log filter gets `,[{headers}]=off,[{request}]=off`
    /// so HTTP headers are never logged; `insecure`: the filter is used as given.
    #[serde(rename = "logHTTPHeaders")]
    pub log_http_headers: String,
    pub resources: Resources,
    /// Hold the application containers until the proxy is ready (`linkerd-await` postStart hook).
    pub await_ready: bool,
    /// Add the proxy as a native sidecar (init container with `restartPolicy: Always`).
    pub native_sidecar: bool,
    /// Ports whose traffic is not protocol-detected, as a Linkerd port list.
    pub opaque_ports: String,
    pub default_inbound_policy: String,
    pub shutdown_grace_period: Option<String>,
    /// The proxy's access log (`apache`, `json`; `null`: none).
    pub access_log: Option<String>,
    /// Seconds the proxy waits (preStop `sleep`) before it stops.
    pub wait_before_exit_seconds: u32,
    /// CIDRs of the cluster's pod and service networks (proxy discovery and policy).
    pub cluster_networks: String,
    /// The proxy's `/shutdown` admin endpoint.
    pub enable_shutdown_endpoint: bool,
    /// Service profiles for names outside the cluster (the proxy's profile suffixes become `.`).
    pub enable_external_profiles: bool,
    /// Inbound ports on which the proxy refuses clients without a mesh identity.
    pub require_identity_on_inbound_ports: String,
    /// Proxy timeouts as Go durations, written to the proxy as given (`null`: not set).
    pub inbound_connect_timeout: Option<String>,
    pub outbound_connect_timeout: Option<String>,
    pub inbound_discovery_cache_unused_timeout: Option<String>,
    pub outbound_discovery_cache_unused_timeout: Option<String>,
    /// Protocol detection never times out (the proxy gets 365 days).
    pub disable_inbound_protocol_detect_timeout: bool,
    pub disable_outbound_protocol_detect_timeout: bool,
    /// Deprecated in Linkerd (use `runtime.workers.minimum`): a fixed number of proxy cores.
    pub cores: Option<u32>,
    pub runtime: Runtime,
    pub control: Control,
    pub metrics: Metrics,
    /// HTTP/2 server parameters of the proxy's inbound and outbound sides.
    pub inbound: Side,
    pub outbound: Side,
    /// Linkerd's `proxy.additionalEnv` and `proxy.experimentalEnv`: env entries (Kubernetes
    /// `EnvVar` objects) added to the proxy's, after its own.
    pub additional_env: Vec<serde_json::Value>,
    pub experimental_env: Vec<serde_json::Value>,
    /// Every pod in ingress mode (Linkerd's `proxy.isIngress`; per pod: `linkerd.io/inject:
    /// ingress`).
    pub is_ingress: bool,
    /// Every pod a gateway (Linkerd's `proxy.isGateway`; per pod:
    /// `config.linkerd.io/enable-gateway`).
    pub is_gateway: bool,
    /// Distributed tracing (Linkerd's `proxy.tracing`): off by default.
    pub tracing: Tracing,
    /// Other `proxy.inbound`/`proxy.outbound` parameters of Linkerd's values
    /// (`<side>.<scope>.<protocol>.<param>`), as (env name, value): read from `--values` only.
    #[serde(skip)]
    pub params: Vec<(String, String)>,
}

/// The proxy's worker threads (`LINKERD2_PROXY_CORES*`); the CPU request and limit annotations
/// set the minimum and maximum per workload.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Runtime {
    pub workers: Workers,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Workers {
    pub minimum: u32,
    pub maximum: Option<u32>,
    /// A number between 0 and 1, kept as Linkerd's chart prints it.
    #[serde(rename = "maximumCPURatio", deserialize_with = "ratio")]
    pub maximum_cpu_ratio: Option<String>,
}

/// A YAML number, printed as Linkerd's chart prints it (`0.5`, `5e-05`).
fn ratio<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.map(overrides::go::float))
}

/// `proxy.tracing`: the proxy exports spans to a collector (`LINKERD2_PROXY_TRACE_*`, the
/// pod's labels mounted from a downward-API volume).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Tracing {
    pub enabled: bool,
    /// `opentelemetry` when empty.
    pub protocol: String,
    pub trace_service_name: String,
    /// Collector address (`host:port`), required when enabled.
    pub collector_endpoint: String,
    /// The collector's mesh identity: service account and namespace, required when enabled.
    pub collector_service_account: String,
    pub collector_namespace: String,
    /// Extra span attributes (`LINKERD2_PROXY_TRACE_EXTRA_ATTRIBUTES`), key order.
    pub labels: std::collections::BTreeMap<String, String>,
}

impl Default for Tracing {
    fn default() -> Self {
        Tracing {
            enabled: false,
            protocol: String::new(),
            trace_service_name: "linkerd-proxy".into(),
            collector_endpoint: String::new(),
            collector_service_account: String::new(),
            collector_namespace: String::new(),
            labels: [
                ("k8s.pod.ip", "$(_pod_ip)"),
                ("k8s.pod.uid", "$(_pod_uid)"),
                ("k8s.container.name", "$(_pod_containerName)"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        }
    }
}

/// Limits on the proxy's control-plane response streams (`LINKERD2_PROXY_CONTROL_STREAM_*`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Control {
    pub streams: Streams,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Streams {
    pub initial_timeout: String,
    pub idle_timeout: String,
    pub lifetime: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Metrics {
    /// Hostname labels on outbound request metrics.
    pub hostname_labels: bool,
}

/// `proxy.inbound` / `proxy.outbound`: the server's HTTP/2 keep-alive
/// (`LINKERD2_PROXY_{INBOUND,OUTBOUND}_SERVER_HTTP2_KEEP_ALIVE_*`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Side {
    pub server: Server,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Server {
    pub http2: Http2,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Http2 {
    pub keep_alive_interval: String,
    pub keep_alive_timeout: String,
}

impl Default for Workers {
    fn default() -> Self {
        Workers {
            minimum: 1,
            maximum: None,
            maximum_cpu_ratio: None,
        }
    }
}

impl Default for Streams {
    fn default() -> Self {
        Streams {
            initial_timeout: "3s".into(),
            idle_timeout: "5m".into(),
            lifetime: "1h".into(),
        }
    }
}

impl Default for Http2 {
    fn default() -> Self {
        Http2 {
            keep_alive_interval: "10s".into(),
            keep_alive_timeout: "3s".into(),
        }
    }
}

impl Default for Ports {
    fn default() -> Self {
        Ports {
            inbound: 4143,
            outbound: 4140,
            admin: 4191,
            control: 4190,
        }
    }
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            image: Image {
                name: "cr.l5d.io/linkerd/proxy".into(),
                version: DEFAULT_PROXY_VERSION.into(),
            },
            image_pull_policy: "IfNotPresent".into(),
            uid: 2102,
            gid: None,
            ports: Ports::default(),
            log_level: "warn,linkerd=info,hickory=error".into(),
            log_format: "plain".into(),
            log_http_headers: "off".into(),
            resources: Resources::default(),
            await_ready: true,
            native_sidecar: true,
            opaque_ports: "25,587,3306,4444,5432,6379,9300,11211".into(),
            default_inbound_policy: "all-unauthenticated".into(),
            shutdown_grace_period: None,
            access_log: None,
            wait_before_exit_seconds: 0,
            cluster_networks: "10.0.0.0/8,100.64.0.0/10,172.16.0.0/12,192.168.0.0/16,fd00::/8"
                .into(),
            enable_shutdown_endpoint: false,
            enable_external_profiles: false,
            require_identity_on_inbound_ports: String::new(),
            inbound_connect_timeout: Some("100ms".into()),
            outbound_connect_timeout: Some("1000ms".into()),
            inbound_discovery_cache_unused_timeout: Some("90s".into()),
            outbound_discovery_cache_unused_timeout: Some("5s".into()),
            disable_inbound_protocol_detect_timeout: false,
            disable_outbound_protocol_detect_timeout: false,
            cores: None,
            runtime: Runtime::default(),
            control: Control::default(),
            metrics: Metrics::default(),
            inbound: Side::default(),
            outbound: Side::default(),
            is_ingress: false,
            is_gateway: false,
            tracing: Tracing::default(),
            additional_env: Vec::new(),
            experimental_env: Vec::new(),
            params: Vec::new(),
        }
    }
}
