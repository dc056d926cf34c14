//! The leaves of Linkerd's chart values: each key applied to the [`Config`] (as Helm prints a
//! scalar into the chart's templates), and Linkerd's fallbacks between keys once all are read.

use serde_json::Value as Json;

use crate::config::{Config, RequestLimit};

/// Values resolved after every key is read (Linkerd's fallbacks between keys).
#[derive(Default)]
pub(super) struct Pending {
    linkerd_version: Option<String>,
    pull_policy: Option<String>,
    proxy_version: Option<String>,
    proxy_pull_policy: Option<String>,
    debug_version: Option<String>,
    debug_pull_policy: Option<String>,
    init_pull_policy: Option<String>,
    trust_domain: Option<String>,
}

/// A scalar as text (`null`: empty), as Helm prints it into the template.
pub(super) fn text(v: &Json) -> Result<String, String> {
    match v {
        Json::Null => Ok(String::new()),
        Json::String(s) => Ok(s.clone()),
        Json::Number(n) => Ok(n.to_string()),
        Json::Bool(b) => Ok(b.to_string()),
        _ => Err("expected a text value".into()),
    }
}

/// Text, with empty meaning unset.
fn opt_text(v: &Json) -> Result<Option<String>, String> {
    text(v).map(|t| (!t.trim().is_empty()).then(|| t.trim().to_owned()))
}

fn boolean(v: &Json) -> Result<bool, String> {
    match v {
        Json::Null => Ok(false),
        Json::Bool(b) => Ok(*b),
        Json::String(s) => crate::overrides::parse_go_bool(s.trim()),
        _ => Err("expected true or false".into()),
    }
}

fn int(v: &Json) -> Result<i64, String> {
    match v {
        Json::Null => Ok(0),
        Json::Number(n) => n
            .as_i64()
            .ok_or_else(|| "expected a whole number".to_owned()),
        Json::String(s) => s
            .trim()
            .parse()
            .map_err(|_| "expected a whole number".to_owned()),
        _ => Err("expected a whole number".into()),
    }
}

fn port(v: &Json) -> Result<u16, String> {
    let n = int(v)?;
    u16::try_from(n)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| "a port must be in 1-65535".to_owned())
}

fn uint(v: &Json) -> Result<u32, String> {
    u32::try_from(int(v)?).map_err(|_| "expected a whole number, 0 or more".to_owned())
}

fn quantity(rl: &mut RequestLimit, which: &str, v: &Json) -> Result<bool, String> {
    let q = opt_text(v)?;
    match which {
        "request" => rl.request = q,
        "limit" => rl.limit = q,
        _ => return Ok(false),
    }
    Ok(true)
}

/// Applies one leaf; `Ok(false)`: not a key of Linkerd's chart.
pub(super) fn set(c: &mut Config, p: &mut Pending, path: &str, v: &Json) -> Result<bool, String> {
    let (head, rest) = path.split_once('.').unwrap_or((path, ""));
    match (head, rest) {
        ("clusterDomain", "") => c.cluster_domain = text(v)?,
        ("clusterNetworks", "") => c.proxy.cluster_networks = text(v)?,
        ("imagePullPolicy", "") => p.pull_policy = Some(text(v)?),
        ("linkerdVersion", "") => p.linkerd_version = Some(text(v)?),
        ("cniEnabled", "") => c.cni_enabled = boolean(v)?,
        ("identity", "serviceAccountTokenProjection") => {
            c.service_account_token_projection = boolean(v)?
        }
        ("disableIPv6", "") => c.disable_ipv6 = boolean(v)?,
        // Kept as written: its SHA-256 is the pod's `linkerd.io/trust-root-sha256`.
        ("identityTrustAnchorsPEM", "") => {
            c.trust_anchors_pem = Some(text(v)?).filter(|t| !t.trim().is_empty())
        }
        ("identityTrustDomain", "") => p.trust_domain = Some(text(v)?),
        ("proxy", rest) => return set_proxy(c, p, rest, v),
        ("proxyInit", rest) => return set_init(c, p, rest, v),
        ("debugContainer", "image.name") => c.debug.image.name = text(v)?,
        ("debugContainer", "image.version") => p.debug_version = Some(text(v)?),
        ("debugContainer", "image.pullPolicy") => p.debug_pull_policy = Some(text(v)?),
        ("networkValidator", "logLevel") => c.network_validator.log_level = text(v)?,
        ("networkValidator", "logFormat") => c.network_validator.log_format = text(v)?,
        ("networkValidator", "connectAddr") => c.network_validator.connect_addr = text(v)?,
        ("networkValidator", "listenAddr") => c.network_validator.listen_addr = text(v)?,
        ("networkValidator", "timeout") => c.network_validator.timeout = text(v)?,
        _ => return Ok(false),
    }
    Ok(true)
}

fn set_proxy(c: &mut Config, p: &mut Pending, path: &str, v: &Json) -> Result<bool, String> {
    let x = &mut c.proxy;
    match path {
        "image.name" => x.image.name = text(v)?,
        "image.version" => p.proxy_version = Some(text(v)?),
        "image.pullPolicy" => p.proxy_pull_policy = Some(text(v)?),
        "enableExternalProfiles" => x.enable_external_profiles = boolean(v)?,
        "outboundConnectTimeout" => x.outbound_connect_timeout = opt_text(v)?,
        "inboundConnectTimeout" => x.inbound_connect_timeout = opt_text(v)?,
        "outboundDiscoveryCacheUnusedTimeout" => {
            x.outbound_discovery_cache_unused_timeout = opt_text(v)?
        }
        "inboundDiscoveryCacheUnusedTimeout" => {
            x.inbound_discovery_cache_unused_timeout = opt_text(v)?
        }
        "disableOutboundProtocolDetectTimeout" => {
            x.disable_outbound_protocol_detect_timeout = boolean(v)?
        }
        "disableInboundProtocolDetectTimeout" => {
            x.disable_inbound_protocol_detect_timeout = boolean(v)?
        }
        "enableShutdownEndpoint" => x.enable_shutdown_endpoint = boolean(v)?,
        "logLevel" => x.log_level = text(v)?,
        "logFormat" => x.log_format = text(v)?,
        "logHTTPHeaders" => x.log_http_headers = text(v)?,
        "ports.admin" => x.ports.admin = port(v)?,
        "ports.control" => x.ports.control = port(v)?,
        "ports.inbound" => x.ports.inbound = port(v)?,
        "ports.outbound" => x.ports.outbound = port(v)?,
        "uid" => x.uid = int(v)?,
        "gid" => x.gid = Some(int(v)?).filter(|g| *g >= 0),
        "waitBeforeExitSeconds" => x.wait_before_exit_seconds = uint(v)?,
        "await" => x.await_ready = boolean(v)?,
        "requireIdentityOnInboundPorts" => x.require_identity_on_inbound_ports = text(v)?,
        "opaquePorts" => x.opaque_ports = text(v)?,
        "shutdownGracePeriod" => x.shutdown_grace_period = opt_text(v)?,
        "defaultInboundPolicy" => x.default_inbound_policy = text(v)?,
        "accessLog" => x.access_log = opt_text(v)?,
        "nativeSidecar" => x.native_sidecar = boolean(v)?,
        "isIngress" => x.is_ingress = boolean(v)?,
        "isGateway" => x.is_gateway = boolean(v)?,
        "cores" => {
            x.cores = match int(v)? {
                0 => None,
                n => Some(u32::try_from(n).map_err(|_| "expected a whole number, 0 or more")?),
            }
        }
        "runtime.workers.minimum" => x.runtime.workers.minimum = uint(v)?,
        "runtime.workers.maximum" => x.runtime.workers.maximum = Some(uint(v)?).filter(|m| *m > 0),
        "runtime.workers.maximumCPURatio" => {
            x.runtime.workers.maximum_cpu_ratio = match v {
                Json::Null => None,
                Json::Number(n) => n.as_f64().map(crate::overrides::go::float),
                other => opt_text(other)?,
            }
        }
        "control.streams.initialTimeout" => x.control.streams.initial_timeout = text(v)?,
        "control.streams.idleTimeout" => x.control.streams.idle_timeout = text(v)?,
        "control.streams.lifetime" => x.control.streams.lifetime = text(v)?,
        "metrics.hostnameLabels" => x.metrics.hostname_labels = boolean(v)?,
        "inbound.server.http2.keepAliveInterval" => {
            x.inbound.server.http2.keep_alive_interval = text(v)?
        }
        "inbound.server.http2.keepAliveTimeout" => {
            x.inbound.server.http2.keep_alive_timeout = text(v)?
        }
        "outbound.server.http2.keepAliveInterval" => {
            x.outbound.server.http2.keep_alive_interval = text(v)?
        }
        "outbound.server.http2.keepAliveTimeout" => {
            x.outbound.server.http2.keep_alive_timeout = text(v)?
        }
        "additionalEnv" | "experimentalEnv" => {
            let list = match v {
                Json::Null => Vec::new(),
                Json::Array(a) => a.clone(),
                _ => return Err("expected a list of env entries".into()),
            };
            for e in &list {
                crate::overrides::check_env(e)?;
            }
            match path {
                "additionalEnv" => x.additional_env = list,
                _ => x.experimental_env = list,
            }
        }
        p if (p.starts_with("inbound.") || p.starts_with("outbound."))
            && p.split('.').count() == 4 =>
        {
            // `<side>.<scope>.<protocol>.<param>`: LINKERD2_PROXY_<SIDE>_<SCOPE>_<PROTOCOL>_<PARAM>.
            let mut name = String::from("LINKERD2_PROXY");
            for seg in p.split('.') {
                if seg.is_empty()
                    || !seg
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    return Err(format!("{seg:?} cannot be part of an env name"));
                }
                name.push('_');
                name.push_str(&upper_snake(seg));
            }
            let value = text(v)?;
            match x.params.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = value,
                None => x.params.push((name, value)),
            }
            x.params.sort();
        }
        "tracing.enabled" | "tracing.enable" => x.tracing.enabled = boolean(v)?,
        "tracing.protocol" => x.tracing.protocol = text(v)?,
        "tracing.traceServiceName" => x.tracing.trace_service_name = text(v)?,
        "tracing.collector.endpoint" => x.tracing.collector_endpoint = text(v)?,
        "tracing.collector.meshIdentity.serviceAccountName" => {
            x.tracing.collector_service_account = text(v)?
        }
        "tracing.collector.meshIdentity.namespace" => x.tracing.collector_namespace = text(v)?,
        p => {
            let Some((kind, which)) = p.strip_prefix("resources.").and_then(|r| r.split_once('.'))
            else {
                return Ok(false);
            };
            let r = &mut x.resources;
            let rl = match kind {
                "cpu" => &mut r.cpu,
                "memory" => &mut r.memory,
                "ephemeral-storage" => &mut r.ephemeral_storage,
                _ => return Ok(false),
            };
            return quantity(rl, which, v);
        }
    }
    Ok(true)
}

fn set_init(c: &mut Config, p: &mut Pending, path: &str, v: &Json) -> Result<bool, String> {
    let x = &mut c.proxy_init;
    let image = || {
        x.image.clone().unwrap_or_else(|| crate::config::Image {
            name: crate::config::PROXY_INIT_IMAGE.into(),
            version: String::new(),
        })
    };
    match path {
        // Before edge-25.11.3 (else `fixed`): linkerd-init's own image.
        "image.name" => {
            let version = image().version;
            x.image = Some(crate::config::Image {
                name: text(v)?,
                version,
            })
        }
        "image.version" => {
            let name = image().name;
            x.image = Some(crate::config::Image {
                name,
                version: text(v)?,
            })
        }
        "image.pullPolicy" => p.init_pull_policy = Some(text(v)?),
        "iptablesMode" => x.iptables_mode = opt_text(v)?.unwrap_or_else(|| "legacy".into()),
        "ignoreInboundPorts" => x.skip_inbound_ports = text(v)?,
        "ignoreOutboundPorts" => x.skip_outbound_ports = text(v)?,
        "skipSubnets" => x.skip_subnets = text(v)?,
        "logLevel" => x.log_level = text(v)?,
        "logFormat" => x.log_format = text(v)?,
        "closeWaitTimeoutSecs" => x.close_wait_timeout_secs = uint(v)?,
        "privileged" => x.privileged = boolean(v)?,
        "runAsRoot" => x.run_as_root = boolean(v)?,
        "runAsUser" => x.run_as_user = int(v)?,
        "runAsGroup" => x.run_as_group = int(v)?,
        _ => return Ok(false),
    }
    Ok(true)
}

/// Sprig's `snakecase | upper`: `keepAliveInterval` → `KEEP_ALIVE_INTERVAL`, `HTTPServer` →
/// `HTTP_SERVER`, `http2` → `HTTP2`.
fn upper_snake(s: &str) -> String {
    let c: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() + 4);
    for (i, ch) in c.iter().enumerate() {
        if *ch == '-' {
            out.push('_');
            continue;
        }
        if ch.is_ascii_uppercase() && i > 0 {
            let prev = c[i - 1];
            let next_lower = c.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower)
            {
                out.push('_');
            }
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

/// Linkerd's fallbacks: empty versions follow `linkerdVersion`, empty pull policies follow
/// `imagePullPolicy`, an empty trust domain follows `clusterDomain`.
pub(super) fn resolve(c: &mut Config, p: Pending) {
    let version_given = p.linkerd_version.as_ref().is_some_and(|v| !v.is_empty());
    let linkerd_version = p
        .linkerd_version
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| c.release.image_version());
    // The chart's image versions are empty (follow `linkerdVersion`) unless set.
    let version = |given: Option<String>, current: &str| match given {
        Some(v) if !v.is_empty() => v,
        Some(_) => linkerd_version.clone(),
        None if version_given || current.is_empty() => linkerd_version.clone(),
        None => current.to_owned(),
    };
    c.proxy.image.version = version(p.proxy_version, &c.proxy.image.version);
    c.debug.image.version = version(p.debug_version, &c.debug.image.version);
    let global = p.pull_policy.filter(|v| !v.is_empty());
    for (given, current) in [
        (p.proxy_pull_policy, &mut c.proxy.image_pull_policy),
        (p.debug_pull_policy, &mut c.debug.image_pull_policy),
        (p.init_pull_policy, &mut c.proxy_init.image_pull_policy),
    ] {
        match given.filter(|v| !v.is_empty()) {
            Some(pp) => *current = pp,
            None => {
                if let Some(g) = &global {
                    *current = g.clone();
                }
            }
        }
    }
    if let Some(d) = p.trust_domain {
        c.identity_trust_domain = if d.is_empty() {
            c.cluster_domain.clone()
        } else {
            d
        };
    }
}
