//! The proxy's environment: every variable Linkerd's proxy template writes, for the resolved
//! values and the config.

use std::borrow::Cow;

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector};

use crate::config::Config;
use crate::mesh::{
    END_ENTITY_PATH, PODINFO_PATH, PROXY_CONTAINER, SERVICE_ACCOUNT_TOKEN, TOKEN_DIR, TOKEN_VOLUME,
};
use crate::overrides::go;
use crate::release::{Change, Release};
use crate::values::ProxyValues;

/// The proxy's env entries that depend on the pod, not on the values: the ports its containers
/// expose and its opaque ports. [`super::proxy_container`] takes them in this order.
pub const POD_ENV: [&str; 2] = [
    "LINKERD2_PROXY_INBOUND_PORTS",
    "LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION",
];

pub fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn env_field(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The proxy's log filter: HTTP headers and requests are never logged unless the config or an
/// annotation says `insecure` (Linkerd's rule).
fn log_filter(level: &str, log_http_headers: &str) -> String {
    if log_http_headers == "insecure" {
        level.to_owned()
    } else {
        format!("{level},[{{headers}}]=off,[{{request}}]=off")
    }
}

/// `LINKERD2_PROXY_CORES*`, chosen as Linkerd's template chooses them: the deprecated fixed
/// count when set, else the worker threads when any of minimum, maximum and ratio is set (a
/// minimum of 0 is then written as 1). Numbers are printed as the chart prints them.
fn cores_env(v: &ProxyValues<'_>, release: &Release) -> Vec<(&'static str, String)> {
    if !release.has(Change::Workers) {
        // Before `proxy.runtime.workers`: the fixed count only (the CPU limit's, rounded up).
        return match v.cores.filter(|n| *n != 0) {
            Some(n) => vec![("LINKERD2_PROXY_CORES", go::number(n))],
            None => Vec::new(),
        };
    }
    if let Some(n) = v.cores.filter(|n| *n != 0) {
        let n = go::number(n);
        return vec![
            ("LINKERD2_PROXY_CORES", n.clone()),
            ("LINKERD2_PROXY_CORES_MIN", n),
        ];
    }
    let max = v.cores_max.filter(|n| *n != 0);
    let ratio = v.cores_max_ratio.as_deref().filter(|r| !r.is_empty());
    if v.cores_min == 0 && max.is_none() && ratio.is_none() {
        return Vec::new();
    }
    let min = go::number(if v.cores_min == 0 { 1 } else { v.cores_min });
    let mut out = vec![
        ("LINKERD2_PROXY_CORES", min.clone()),
        ("LINKERD2_PROXY_CORES_MIN", min),
    ];
    if let Some(m) = max {
        out.push(("LINKERD2_PROXY_CORES_MAX", go::number(m)));
    }
    if let Some(r) = ratio {
        out.push(("LINKERD2_PROXY_CORES_MAX_RATIO", r.to_owned()));
    }
    out
}

/// An optional value, written only when set and not empty (Linkerd's `if`).
fn set(o: &Option<Cow<'_, str>>) -> Option<String> {
    o.as_deref().filter(|t| !t.is_empty()).map(str::to_owned)
}

/// The trust anchors as Linkerd's template writes them: trimmed, as the lines of a YAML block
/// (which end with a newline, `\n` only).
fn anchors(pem: &str) -> String {
    let mut out = pem.trim().replace("\r\n", "\n").replace('\r', "\n");
    out.push('\n');
    out
}

/// A text value, omitted when empty (a parameter the values do not hold).
fn set_text(t: &str) -> Option<String> {
    (!t.is_empty()).then(|| t.to_owned())
}

/// What the proxy gets for "no protocol detection timeout".
const NO_DETECT_TIMEOUT: &str = "365d";
/// The proxy's TCP user timeout on accepted and opened connections (fixed in Linkerd's
/// template).
const TCP_USER_TIMEOUT: &str = "30s";

/// The proxy's environment: every variable Linkerd's proxy template writes for these values
/// (in another order, and with `$(VAR)` references where it writes the expanded text);
/// `pod_env` are the entries named by [`POD_ENV`].
pub(super) fn proxy_env(v: &ProxyValues<'_>, config: &Config, pod_env: [EnvVar; 2]) -> Vec<EnvVar> {
    let cp = &config.control_plane_namespace;
    let domain = &config.cluster_domain;
    let networks = config.proxy.cluster_networks.as_str();
    // Every address (`disableIPv6`, Linkerd's default: IPv4 only).
    let any = if config.disable_ipv6 {
        "0.0.0.0"
    } else {
        "[::]"
    };
    let identity = |sa: &str| {
        format!("{sa}.$(_l5d_ns).serviceaccount.identity.$(_l5d_ns).$(_l5d_trustdomain)")
    };
    let r = &config.release;
    let mut e = Vec::with_capacity(64);
    for (name, path, since) in [
        ("_pod_name", "metadata.name", None),
        ("_pod_ns", "metadata.namespace", None),
        ("_pod_uid", "metadata.uid", Some(Change::PodUid)),
        ("_pod_ip", "status.podIP", Some(Change::PodIp)),
        ("_pod_nodeName", "spec.nodeName", None),
        ("_pod_sa", "spec.serviceAccountName", None),
    ] {
        if since.is_none_or(|c| r.has(c)) {
            e.push(env_field(name, path));
        }
    }
    let mut vars: Vec<(&str, Option<String>)> = vec![
        (
            "_pod_containerName",
            r.has(Change::PodUid).then(|| PROXY_CONTAINER.to_owned()),
        ),
        ("_l5d_ns", Some(cp.clone())),
        (
            "_l5d_trustdomain",
            Some(config.identity_trust_domain.clone()),
        ),
    ];
    vars.extend(cores_env(v, r).into_iter().map(|(n, x)| (n, Some(x))));
    vars.extend([
        (
            "LINKERD2_PROXY_INBOUND_PORTS_REQUIRE_IDENTITY",
            Some(v.require_identity_ports.to_string()).filter(|p| !p.is_empty()),
        ),
        (
            "LINKERD2_PROXY_SHUTDOWN_ENDPOINT_ENABLED",
            Some(v.shutdown_endpoint.to_string()),
        ),
        (
            "LINKERD2_PROXY_LOG",
            Some(log_filter(&v.log_level, &v.log_http_headers)),
        ),
        ("LINKERD2_PROXY_LOG_FORMAT", Some(v.log_format.to_string())),
        (
            "LINKERD2_PROXY_DESTINATION_SVC_ADDR",
            Some(format!("linkerd-dst-headless.{cp}.svc.{domain}.:8086")),
        ),
        (
            "LINKERD2_PROXY_DESTINATION_PROFILE_NETWORKS",
            Some(networks.to_owned()),
        ),
        (
            "LINKERD2_PROXY_POLICY_SVC_ADDR",
            Some(format!("linkerd-policy.{cp}.svc.{domain}.:8090")),
        ),
        (
            "LINKERD2_PROXY_POLICY_WORKLOAD",
            Some(r#"{"ns":"$(_pod_ns)", "pod":"$(_pod_name)"}"#.to_owned() + "\n"),
        ),
        (
            "LINKERD2_PROXY_INBOUND_DEFAULT_POLICY",
            Some(v.default_inbound_policy.to_string()),
        ),
        (
            "LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS",
            Some(networks.to_owned()),
        ),
        (
            "LINKERD2_PROXY_CONTROL_STREAM_INITIAL_TIMEOUT",
            Some(v.stream_initial_timeout.to_string()),
        ),
        (
            "LINKERD2_PROXY_CONTROL_STREAM_IDLE_TIMEOUT",
            Some(v.stream_idle_timeout.to_string()),
        ),
        (
            "LINKERD2_PROXY_CONTROL_STREAM_LIFETIME",
            Some(v.stream_lifetime.to_string()),
        ),
        (
            "LINKERD2_PROXY_INBOUND_CONNECT_TIMEOUT",
            set(&v.inbound_connect_timeout),
        ),
        (
            "LINKERD2_PROXY_OUTBOUND_CONNECT_TIMEOUT",
            set(&v.outbound_connect_timeout),
        ),
        (
            "LINKERD2_PROXY_OUTBOUND_DISCOVERY_IDLE_TIMEOUT",
            set(&v.outbound_discovery_idle_timeout),
        ),
        (
            "LINKERD2_PROXY_INBOUND_DISCOVERY_IDLE_TIMEOUT",
            set(&v.inbound_discovery_idle_timeout),
        ),
        (
            "LINKERD2_PROXY_OUTBOUND_DETECT_TIMEOUT",
            v.disable_outbound_detect_timeout
                .then(|| NO_DETECT_TIMEOUT.to_owned()),
        ),
        (
            "LINKERD2_PROXY_INBOUND_DETECT_TIMEOUT",
            v.disable_inbound_detect_timeout
                .then(|| NO_DETECT_TIMEOUT.to_owned()),
        ),
        (
            "LINKERD2_PROXY_CONTROL_LISTEN_ADDR",
            Some(format!("{any}:{}", v.control_port)),
        ),
        (
            "LINKERD2_PROXY_ADMIN_LISTEN_ADDR",
            Some(format!("{any}:{}", v.admin_port)),
        ),
        (
            "LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR",
            Some(format!("127.0.0.1:{}", v.outbound_port)),
        ),
        (
            "LINKERD2_PROXY_OUTBOUND_LISTEN_ADDRS",
            Some(match config.disable_ipv6 {
                true => format!("127.0.0.1:{}", v.outbound_port),
                false => format!("127.0.0.1:{0},[::1]:{0}", v.outbound_port),
            }),
        ),
        (
            "LINKERD2_PROXY_INBOUND_LISTEN_ADDR",
            Some(format!("{any}:{}", v.inbound_port)),
        ),
    ]);
    e.extend(vars.drain(..).filter_map(|(n, x)| x.map(|x| env(n, x))));
    e.push(env_field("LINKERD2_PROXY_INBOUND_IPS", "status.podIPs"));
    e.extend(pod_env);
    let profile_suffixes = if v.external_profiles {
        ".".to_owned()
    } else {
        format!("svc.{domain}.")
    };
    vars.extend([
        (
            "LINKERD2_PROXY_DESTINATION_PROFILE_SUFFIXES",
            Some(profile_suffixes),
        ),
        (
            "LINKERD2_PROXY_INBOUND_ACCEPT_KEEPALIVE",
            Some("10000ms".to_owned()),
        ),
        (
            "LINKERD2_PROXY_OUTBOUND_CONNECT_KEEPALIVE",
            Some("10000ms".to_owned()),
        ),
        (
            "LINKERD2_PROXY_INGRESS_MODE",
            v.ingress.then(|| "true".to_owned()),
        ),
        (
            "LINKERD2_PROXY_INBOUND_GATEWAY_SUFFIXES",
            v.gateway.then(|| format!("svc.{domain}.")),
        ),
        (
            "LINKERD2_PROXY_INBOUND_ACCEPT_USER_TIMEOUT",
            r.has(Change::UserTimeouts)
                .then(|| TCP_USER_TIMEOUT.to_owned()),
        ),
        (
            "LINKERD2_PROXY_OUTBOUND_CONNECT_USER_TIMEOUT",
            r.has(Change::UserTimeouts)
                .then(|| TCP_USER_TIMEOUT.to_owned()),
        ),
        (
            "LINKERD2_PROXY_OUTBOUND_METRICS_HOSTNAME_LABELS",
            r.has(Change::HostnameLabels)
                .then(|| v.hostname_labels.to_string()),
        ),
        (
            "LINKERD2_PROXY_INBOUND_SERVER_HTTP2_KEEP_ALIVE_INTERVAL",
            set_text(&v.inbound_keep_alive_interval),
        ),
        (
            "LINKERD2_PROXY_INBOUND_SERVER_HTTP2_KEEP_ALIVE_TIMEOUT",
            set_text(&v.inbound_keep_alive_timeout),
        ),
        (
            "LINKERD2_PROXY_OUTBOUND_SERVER_HTTP2_KEEP_ALIVE_INTERVAL",
            set_text(&v.outbound_keep_alive_interval),
        ),
        (
            "LINKERD2_PROXY_OUTBOUND_SERVER_HTTP2_KEEP_ALIVE_TIMEOUT",
            set_text(&v.outbound_keep_alive_timeout),
        ),
        (
            "LINKERD2_PROXY_DESTINATION_CONTEXT",
            Some(
                r#"{"ns":"$(_pod_ns)", "nodeName":"$(_pod_nodeName)", "pod":"$(_pod_name)"}"#
                    .to_owned()
                    + "\n",
            ),
        ),
        (
            "LINKERD2_PROXY_SHUTDOWN_GRACE_PERIOD",
            set(&v.shutdown_grace_period),
        ),
        ("LINKERD2_PROXY_ACCESS_LOG", set(&v.access_log)),
        (
            "LINKERD2_PROXY_IDENTITY_DIR",
            Some(END_ENTITY_PATH.to_owned()),
        ),
        (
            "LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS",
            config.trust_anchors_pem.as_deref().map(anchors),
        ),
        (
            "LINKERD2_PROXY_IDENTITY_TOKEN_FILE",
            Some(match config.service_account_token_projection {
                true => format!("{TOKEN_DIR}/{TOKEN_VOLUME}"),
                false => SERVICE_ACCOUNT_TOKEN.to_owned(),
            }),
        ),
        (
            "LINKERD2_PROXY_IDENTITY_SVC_ADDR",
            Some(format!("linkerd-identity-headless.{cp}.svc.{domain}.:8080")),
        ),
        (
            "LINKERD2_PROXY_IDENTITY_LOCAL_NAME",
            Some(
                "$(_pod_sa).$(_pod_ns).serviceaccount.identity.$(_l5d_ns).$(_l5d_trustdomain)"
                    .to_owned(),
            ),
        ),
        (
            "LINKERD2_PROXY_IDENTITY_SVC_NAME",
            Some(identity("linkerd-identity")),
        ),
        (
            "LINKERD2_PROXY_DESTINATION_SVC_NAME",
            Some(identity("linkerd-destination")),
        ),
        (
            "LINKERD2_PROXY_POLICY_SVC_NAME",
            Some(identity("linkerd-destination")),
        ),
    ]);
    e.extend(vars.into_iter().filter_map(|(n, x)| x.map(|x| env(n, x))));
    if config.tracing() {
        e.extend(tracing_env(config));
    }
    // Linkerd's `proxy.inbound`/`proxy.outbound` parameters besides the HTTP/2 keep-alive.
    e.extend(config.proxy.params.iter().map(|(n, x)| env(n, x.clone())));
    // The additional env: the values', then the namespace's and the pod's annotation merged
    // by name over it; then the experimental env. Every entry was checked when it was read.
    let mut extra = config.proxy.additional_env.clone();
    if let Ok(list) = crate::overrides::parse_env_list(&v.additional_env) {
        crate::overrides::merge_env(&mut extra, list);
    }
    extra.extend(config.proxy.experimental_env.iter().cloned());
    e.extend(
        extra
            .into_iter()
            .filter_map(|x| serde_json::from_value::<EnvVar>(x).ok()),
    );
    e
}

/// `LINKERD2_PROXY_TRACE_*`, as the release's chart writes them.
fn tracing_env(config: &Config) -> Vec<EnvVar> {
    let (t, r) = (&config.proxy.tracing, &config.release);
    let cp = &config.control_plane_namespace;
    // Before edge-25.10.2 the attributes were fixed; then the sorted `proxy.tracing.labels`.
    let attributes: String = match r.has(Change::BetaNative) {
        true => t.labels.iter().map(|(k, v)| format!("{k}={v}\n")).collect(),
        false => "k8s.pod.ip=$(_pod_ip)\nk8s.pod.uid=$(_pod_uid)\nk8s.container.name=$(_pod_containerName)\n".to_owned(),
    };
    let protocol = if t.protocol.is_empty() {
        "opentelemetry"
    } else {
        &t.protocol
    };
    let domain = match r.has(Change::CollectorTrustDomain) {
        true => &config.identity_trust_domain,
        false => &config.cluster_domain,
    };
    let sa = &t.collector_service_account;
    // Until edge-25.10.1 the identity was optional and named no namespace.
    let collector_name = match r.has(Change::TracingEnabled) {
        true => Some(format!(
            "{sa}.{}.serviceaccount.identity.{cp}.{domain}",
            t.collector_namespace
        )),
        false => (!sa.is_empty()).then(|| format!("{sa}.serviceaccount.identity.{cp}.{domain}")),
    };
    [
        (
            "LINKERD2_PROXY_TRACE_ATTRIBUTES_PATH",
            Some(format!("{PODINFO_PATH}/labels")),
        ),
        (
            "LINKERD2_PROXY_TRACE_ANNOTATIONS_PATH",
            r.has(Change::BetaNative)
                .then(|| format!("{PODINFO_PATH}/annotations")),
        ),
        ("LINKERD2_PROXY_TRACE_PROTOCOL", Some(protocol.to_owned())),
        (
            "LINKERD2_PROXY_TRACE_SERVICE_NAME",
            Some(t.trace_service_name.clone()),
        ),
        (
            "LINKERD2_PROXY_TRACE_COLLECTOR_SVC_ADDR",
            Some(t.collector_endpoint.clone()),
        ),
        ("LINKERD2_PROXY_TRACE_COLLECTOR_SVC_NAME", collector_name),
        ("LINKERD2_PROXY_TRACE_EXTRA_ATTRIBUTES", Some(attributes)),
    ]
    .into_iter()
    .filter_map(|(n, x)| x.map(|x| env(n, x)))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Mode;

    fn cores(f: impl FnOnce(&mut ProxyValues<'_>)) -> Vec<(&'static str, String)> {
        let c = Config::default();
        let mut v = ProxyValues::from_config(&c, Mode::Enabled);
        f(&mut v);
        cores_env(&v, &c.release)
    }

    #[test]
    fn trust_anchors_as_a_yaml_block() {
        let pem = "-----BEGIN CERTIFICATE-----\r\nMIIB\r\n-----END CERTIFICATE-----\r\n\r\n";
        assert_eq!(
            anchors(pem),
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
        );
        assert_eq!(anchors("\n  A\nB"), "A\nB\n");
    }

    #[test]
    fn cores_follow_linkerds_template() {
        let pair = |n: &str| {
            vec![
                ("LINKERD2_PROXY_CORES", n.to_owned()),
                ("LINKERD2_PROXY_CORES_MIN", n.to_owned()),
            ]
        };
        assert_eq!(cores(|_| {}), pair("1"));
        // No minimum, maximum or ratio: no variable at all.
        assert_eq!(cores(|v| v.cores_min = 0), vec![]);
        // A maximum with a minimum of 0: the minimum is written as 1.
        let mut want = pair("1");
        want.push(("LINKERD2_PROXY_CORES_MAX", "2".into()));
        assert_eq!(
            cores(|v| {
                v.cores_min = 0;
                v.cores_max = Some(2);
            }),
            want
        );
        // A maximum of 0 is no maximum.
        assert_eq!(cores(|v| v.cores_max = Some(0)), pair("1"));
        // The deprecated fixed count wins over everything else.
        assert_eq!(
            cores(|v| {
                v.cores = Some(3);
                v.cores_max = Some(8);
                v.cores_max_ratio = Some("0.5".into());
            }),
            pair("3")
        );
        // Numbers go through a float64 in Linkerd's chart.
        assert_eq!(cores(|v| v.cores_min = 2_000_000), pair("2e+06"));
    }
}
