//! The settings table: one row per setting (see [`Setting`] for the columns). Kept one row per
//! line so that a setting reads as one line and a new one is one added line.

use super::settings::{
    Derived, Field, Parser, Setting, Slot, Value, named_ports, opt, ports, text,
};
use crate::overrides;
use crate::release::Change;

const CPU_REQUEST: &str = "config.linkerd.io/proxy-cpu-request";
const CPU_LIMIT: &str = "config.linkerd.io/proxy-cpu-limit";

/// A CPU quantity as whole cores, rounded up (0 when it does not fit: Linkerd's
/// `ToWholeCPUCores` fails and leaves 0).
fn whole_cores(raw: &str) -> i64 {
    overrides::parse_quantity(raw)
        .ok()
        .and_then(|q| q.ceil_i64())
        .unwrap_or(0)
}

macro_rules! setting {
    ($field:ident, [$($ann:literal),*], $values_key:literal, $label:literal, $join:literal,
     $parser:expr, $doc:literal, |$c:ident| $default:expr) => {
        Setting {
            annotations: &[$($ann),*],
            derived: None,
            values_key: $values_key,
            label: $label,
            join: $join,
            parser: $parser,
            doc: $doc,
            default: |$c| $default,
            slot: Some(Slot {
                set: |v, x| Field::assign(&mut v.$field, x),
                get: |v| Field::value(&v.$field),
            }),
        }
    };
}

/// Every setting, in `explain`'s order: field of `ProxyValues`, annotation keys (Linkerd's
/// first; none for a chart value Linkerd has no annotation for), Linkerd values key, explain
/// label and joiner, parser, README's description, default. Defaults are the config's, whose
/// own defaults are Linkerd's values.yaml.
#[rustfmt::skip]
pub static SETTINGS: &[Setting] = &[
    setting!(proxy_image, ["config.linkerd.io/proxy-image"], "proxy.image.name", "proxy image", "", Parser::Text(overrides::parse_image), "image name", |c| text(&c.proxy.image.name)),
    setting!(proxy_version, ["config.linkerd.io/proxy-version"], "proxy.image.version", "proxy image", ":", Parser::Text(overrides::parse_tag), "image tag", |c| text(&c.proxy.image.version)),
    setting!(init_image, ["config.linkerd.io/init-image"], "proxyInit.image.name", "init image", "", Parser::Text(overrides::parse_image), "image name; read (on the pod or its namespace) by releases before edge-25.11.3 (2.19 and older), whose `linkerd-init` runs from its own image", |c| text(c.proxy_init.image.as_ref().map_or(&c.proxy.image.name, |i| &i.name))),
    setting!(init_version, ["config.linkerd.io/init-image-version"], "proxyInit.image.version", "init image", ":", Parser::Text(overrides::parse_tag), "image tag; as `config.linkerd.io/init-image`", |c| text(c.proxy_init.image.as_ref().map_or(&c.proxy.image.version, |i| &i.version))),
    Setting { derived: Some(Derived { from: "config.linkerd.io/image-pull-policy", value: |raw| Value::Text(raw.to_owned().into()), applies: |_| true }), ..setting!(init_pull_policy, [], "proxyInit.image.pullPolicy", "init image pull policy", "", Parser::Text(overrides::parse_pull_policy), "", |c| text(&c.proxy_init.image_pull_policy)) },
    setting!(debug_image, ["config.linkerd.io/debug-image"], "debugContainer.image.name", "debug image", "", Parser::Text(overrides::parse_image), "image name", |c| text(&c.debug.image.name)),
    setting!(debug_version, ["config.linkerd.io/debug-image-version"], "debugContainer.image.version", "debug image", ":", Parser::Text(overrides::parse_tag), "image tag", |c| text(&c.debug.image.version)),
    setting!(debug_pull_policy, ["config.linkerd.io/debug-image-pull-policy"], "debugContainer.image.pullPolicy", "debug image pull policy", "", Parser::Text(overrides::parse_pull_policy), "`Always`, `IfNotPresent`, `Never`", |c| text(&c.debug.image_pull_policy)),
    setting!(pull_policy, ["config.linkerd.io/image-pull-policy"], "proxy.image.pullPolicy", "image pull policy", "", Parser::Text(overrides::parse_pull_policy), "`Always`, `IfNotPresent`, `Never`", |c| text(&c.proxy.image_pull_policy)),
    setting!(cpu_request, ["config.linkerd.io/proxy-cpu-request"], "proxy.resources.cpu.request", "proxy cpu request", "", Parser::Quantity, "Kubernetes quantity; as an annotation also the proxy's minimum cores, rounded up", |c| opt(&c.proxy.resources.cpu.request)),
    setting!(cpu_limit, ["config.linkerd.io/proxy-cpu-limit"], "proxy.resources.cpu.limit", "proxy cpu limit", "", Parser::Quantity, "Kubernetes quantity; as an annotation also the proxy's maximum cores, rounded up", |c| opt(&c.proxy.resources.cpu.limit)),
    setting!(memory_request, ["config.linkerd.io/proxy-memory-request"], "proxy.resources.memory.request", "proxy memory request", "", Parser::Quantity, "", |c| opt(&c.proxy.resources.memory.request)),
    setting!(memory_limit, ["config.linkerd.io/proxy-memory-limit"], "proxy.resources.memory.limit", "proxy memory limit", "", Parser::Quantity, "", |c| opt(&c.proxy.resources.memory.limit)),
    setting!(ephemeral_request, ["config.linkerd.io/proxy-ephemeral-storage-request"], "proxy.resources.ephemeral-storage.request", "proxy storage request", "", Parser::Quantity, "", |c| opt(&c.proxy.resources.ephemeral_storage.request)),
    setting!(ephemeral_limit, ["config.linkerd.io/proxy-ephemeral-storage-limit"], "proxy.resources.ephemeral-storage.limit", "proxy storage limit", "", Parser::Quantity, "", |c| opt(&c.proxy.resources.ephemeral_storage.limit)),
    setting!(log_level, ["config.linkerd.io/proxy-log-level"], "proxy.logLevel", "proxy log level", "", Parser::Text(overrides::parse_log_level), "`tracing` filter: `level`, `target=level`, `target[span{field}]=level` list", |c| text(&c.proxy.log_level)),
    setting!(log_format, ["config.linkerd.io/proxy-log-format"], "proxy.logFormat", "proxy log format", "", Parser::Text(overrides::parse_log_format), "`plain`, `json`", |c| text(&c.proxy.log_format)),
    setting!(log_http_headers, ["config.linkerd.io/proxy-log-http-headers"], "proxy.logHTTPHeaders", "proxy log HTTP headers", "", Parser::Text(overrides::parse_log_http_headers), "`off`, `insecure` (headers are not filtered out of the log)", |c| text(&c.proxy.log_http_headers)),
    setting!(uid, ["config.linkerd.io/proxy-uid"], "proxy.uid", "proxy uid", "", Parser::Id, "", |c| Value::Id(c.proxy.uid)),
    setting!(gid, ["config.linkerd.io/proxy-gid"], "proxy.gid", "proxy gid", "", Parser::OptId, "", |c| Value::OptId(c.proxy.gid)),
    setting!(inbound_port, ["config.linkerd.io/inbound-port"], "proxy.ports.inbound", "ports in/out/admin/control", "", Parser::Port, "", |c| Value::Port(c.proxy.ports.inbound)),
    setting!(outbound_port, ["config.linkerd.io/outbound-port"], "proxy.ports.outbound", "ports in/out/admin/control", "/", Parser::Port, "", |c| Value::Port(c.proxy.ports.outbound)),
    setting!(admin_port, ["config.linkerd.io/admin-port"], "proxy.ports.admin", "ports in/out/admin/control", "/", Parser::Port, "", |c| Value::Port(c.proxy.ports.admin)),
    setting!(control_port, ["config.linkerd.io/control-port"], "proxy.ports.control", "ports in/out/admin/control", "/", Parser::Port, "", |c| Value::Port(c.proxy.ports.control)),
    setting!(skip_inbound_ports, ["config.linkerd.io/skip-inbound-ports"], "proxyInit.ignoreInboundPorts", "skip inbound ports", "", Parser::Ports, "", |c| ports(&c.proxy_init.skip_inbound_ports)),
    setting!(skip_outbound_ports, ["config.linkerd.io/skip-outbound-ports"], "proxyInit.ignoreOutboundPorts", "skip outbound ports", "", Parser::Ports, "", |c| ports(&c.proxy_init.skip_outbound_ports)),
    setting!(skip_subnets, ["config.linkerd.io/skip-subnets"], "proxyInit.skipSubnets", "skip subnets", "", Parser::Text(overrides::parse_subnets), "CIDR list", |c| text(&c.proxy_init.skip_subnets)),
    setting!(await_ready, ["config.linkerd.io/proxy-await"], "proxy.await", "proxy await", "", Parser::Switch, "", |c| Value::Bool(c.proxy.await_ready)),
    setting!(native_sidecar, ["config.linkerd.io/proxy-enable-native-sidecar", "config.beta.linkerd.io/proxy-enable-native-sidecar", "config.alpha.linkerd.io/proxy-enable-native-sidecar"], "proxy.nativeSidecar", "native sidecar", "", Parser::GoBool, "", |c| Value::Bool(c.proxy.native_sidecar)),
    setting!(debug_sidecar, ["config.linkerd.io/enable-debug-sidecar"], "", "debug sidecar", "", Parser::GoBool, "", |_c| Value::Bool(false)),
    setting!(shutdown_grace_period, ["config.linkerd.io/shutdown-grace-period"], "proxy.shutdownGracePeriod", "shutdown grace period", "", Parser::Millis, "", |c| opt(&c.proxy.shutdown_grace_period)),
    setting!(default_inbound_policy, ["config.linkerd.io/default-inbound-policy"], "proxy.defaultInboundPolicy", "default inbound policy", "", Parser::Text(overrides::parse_inbound_policy), "`all-unauthenticated`, `all-authenticated`, `cluster-unauthenticated`, `cluster-authenticated`, `deny`, `audit`", |c| text(&c.proxy.default_inbound_policy)),
    setting!(access_log, ["config.linkerd.io/access-log"], "proxy.accessLog", "access log", "", Parser::OptText(overrides::parse_access_log), "`apache`, `json`", |c| opt(&c.proxy.access_log)),
    setting!(wait_before_exit_seconds, ["config.alpha.linkerd.io/proxy-wait-before-exit-seconds"], "proxy.waitBeforeExitSeconds", "wait before exit (s)", "", Parser::Uint, "seconds the proxy waits (preStop `sleep`) before it stops", |c| Value::Id(i64::from(c.proxy.wait_before_exit_seconds))),
    Setting { derived: Some(Derived { from: CPU_LIMIT, value: |raw| Value::OptId(Some(whole_cores(raw))), applies: |r| !r.has(Change::Workers) }), ..setting!(cores, [], "proxy.cores", "proxy cores (deprecated)", "", Parser::OptId, "", |c| Value::OptId(c.proxy.cores.map(i64::from))) },
    Setting { derived: Some(Derived { from: CPU_REQUEST, value: |raw| Value::Id(whole_cores(raw)), applies: |r| r.has(Change::Workers) }), ..setting!(cores_min, [], "proxy.runtime.workers.minimum", "proxy cores min/max/ratio", "", Parser::Uint, "", |c| Value::Id(c.proxy.runtime.workers.minimum.into())) },
    Setting { derived: Some(Derived { from: CPU_LIMIT, value: |raw| Value::OptId(Some(whole_cores(raw))), applies: |r| r.has(Change::Workers) }), ..setting!(cores_max, [], "proxy.runtime.workers.maximum", "proxy cores min/max/ratio", "/", Parser::OptId, "", |c| Value::OptId(c.proxy.runtime.workers.maximum.map(i64::from))) },
    setting!(cores_max_ratio, ["config.linkerd.io/proxy-cpu-ratio-limit"], "proxy.runtime.workers.maximumCPURatio", "proxy cores min/max/ratio", "/", Parser::Ratio, "", |c| opt(&c.proxy.runtime.workers.maximum_cpu_ratio)),
    setting!(shutdown_endpoint, ["config.linkerd.io/proxy-admin-shutdown"], "proxy.enableShutdownEndpoint", "shutdown endpoint", "", Parser::Switch, "", |c| Value::Bool(c.proxy.enable_shutdown_endpoint)),
    setting!(inbound_connect_timeout, ["config.linkerd.io/proxy-inbound-connect-timeout"], "proxy.inboundConnectTimeout", "connect timeout in/out", "", Parser::Millis, "", |c| opt(&c.proxy.inbound_connect_timeout)),
    setting!(outbound_connect_timeout, ["config.linkerd.io/proxy-outbound-connect-timeout"], "proxy.outboundConnectTimeout", "connect timeout in/out", "/", Parser::Millis, "", |c| opt(&c.proxy.outbound_connect_timeout)),
    setting!(inbound_discovery_idle_timeout, ["config.linkerd.io/proxy-inbound-discovery-cache-unused-timeout"], "proxy.inboundDiscoveryCacheUnusedTimeout", "discovery idle in/out", "", Parser::Seconds, "", |c| opt(&c.proxy.inbound_discovery_cache_unused_timeout)),
    setting!(outbound_discovery_idle_timeout, ["config.linkerd.io/proxy-outbound-discovery-cache-unused-timeout"], "proxy.outboundDiscoveryCacheUnusedTimeout", "discovery idle in/out", "/", Parser::Seconds, "", |c| opt(&c.proxy.outbound_discovery_cache_unused_timeout)),
    setting!(disable_inbound_detect_timeout, ["config.linkerd.io/proxy-disable-inbound-protocol-detect-timeout"], "proxy.disableInboundProtocolDetectTimeout", "no detect timeout in/out", "", Parser::GoBool, "", |c| Value::Bool(c.proxy.disable_inbound_protocol_detect_timeout)),
    setting!(disable_outbound_detect_timeout, ["config.linkerd.io/proxy-disable-outbound-protocol-detect-timeout"], "proxy.disableOutboundProtocolDetectTimeout", "no detect timeout in/out", "/", Parser::GoBool, "", |c| Value::Bool(c.proxy.disable_outbound_protocol_detect_timeout)),
    setting!(hostname_labels, ["config.linkerd.io/proxy-metrics-hostname-labels"], "proxy.metrics.hostnameLabels", "metrics hostname labels", "", Parser::GoBool, "", |c| Value::Bool(c.proxy.metrics.hostname_labels)),
    setting!(require_identity_ports, ["config.linkerd.io/proxy-require-identity-inbound-ports"], "proxy.requireIdentityOnInboundPorts", "require identity on ports", "", Parser::Text(overrides::parse_port_list), "ports and ranges, e.g. `25,4000-4010`", |c| text(&c.proxy.require_identity_on_inbound_ports)),
    setting!(external_profiles, ["config.linkerd.io/enable-external-profiles"], "proxy.enableExternalProfiles", "external profiles", "", Parser::GoBool, "", |c| Value::Bool(c.proxy.enable_external_profiles)),
    setting!(gateway, ["config.linkerd.io/enable-gateway"], "proxy.isGateway", "gateway", "", Parser::GoBool, "", |c| Value::Bool(c.proxy.is_gateway)),
    setting!(close_wait_seconds, ["config.linkerd.io/close-wait-timeout"], "proxyInit.closeWaitTimeoutSecs", "init close-wait timeout (s)", "", Parser::WholeSeconds, "Go duration: linkerd-init's `--timeout-close-wait-secs` (makes it privileged; needs `proxyInit.runAsRoot`)", |c| Value::Id(i64::from(c.proxy_init.close_wait_timeout_secs))),
    setting!(additional_env, ["config.linkerd.io/proxy-additional-env"], "", "additional env", "", Parser::Text(overrides::check_env_list), "JSON list of env entries (`[{\"name\":\"A\",\"value\":\"1\"}]`), added to the proxy's after `proxy.additionalEnv`; the namespace's and the pod's merged by name", |_c| text("")),
    setting!(stream_initial_timeout, [], "proxy.control.streams.initialTimeout", "control stream timeouts", "", Parser::Text(overrides::parse_duration_or_empty), "", |c| text(&c.proxy.control.streams.initial_timeout)),
    setting!(stream_idle_timeout, [], "proxy.control.streams.idleTimeout", "control stream timeouts", "/", Parser::Text(overrides::parse_duration_or_empty), "", |c| text(&c.proxy.control.streams.idle_timeout)),
    setting!(stream_lifetime, [], "proxy.control.streams.lifetime", "control stream timeouts", "/", Parser::Text(overrides::parse_duration_or_empty), "", |c| text(&c.proxy.control.streams.lifetime)),
    setting!(inbound_keep_alive_interval, [], "proxy.inbound.server.http2.keepAliveInterval", "inbound HTTP/2 keep-alive", "", Parser::Text(overrides::parse_duration_or_empty), "", |c| text(&c.proxy.inbound.server.http2.keep_alive_interval)),
    setting!(inbound_keep_alive_timeout, [], "proxy.inbound.server.http2.keepAliveTimeout", "inbound HTTP/2 keep-alive", "/", Parser::Text(overrides::parse_duration_or_empty), "", |c| text(&c.proxy.inbound.server.http2.keep_alive_timeout)),
    setting!(outbound_keep_alive_interval, [], "proxy.outbound.server.http2.keepAliveInterval", "outbound HTTP/2 keep-alive", "", Parser::Text(overrides::parse_duration_or_empty), "", |c| text(&c.proxy.outbound.server.http2.keep_alive_interval)),
    setting!(outbound_keep_alive_timeout, [], "proxy.outbound.server.http2.keepAliveTimeout", "outbound HTTP/2 keep-alive", "/", Parser::Text(overrides::parse_duration_or_empty), "", |c| text(&c.proxy.outbound.server.http2.keep_alive_timeout)),
    Setting {
        annotations: &[super::OPAQUE_PORTS_ANNOTATION],
        derived: None,
        values_key: "proxy.opaquePorts",
        label: "opaque ports",
        join: "",
        parser: Parser::NamedPorts,
        doc: "",
        default: |c| named_ports(&c.proxy.opaque_ports),
        slot: None,
    },
];
