//! Linkerd's linkerd-control-plane chart values (`--values FILE`, and the `values` key of the
//! `linkerd-config` ConfigMap) applied over a [`Config`], Helm style: a key given replaces the
//! value under it, a key set to `null` removes the default (the setting becomes empty or
//! unset), a key absent keeps it. Linkerd's own conventions are followed: an empty image
//! version means `linkerdVersion`, an empty pull policy means `imagePullPolicy`, `gid: -1`
//! means no group, an empty `identityTrustDomain` means `clusterDomain`, empty resources and
//! timeouts mean unset.
//!
//! Every key of Linkerd's chart is known here, in one of three kinds: applied (it shapes the
//! injected pod and this injector writes it as Linkerd does), fixed (it shapes the pod, this
//! injector writes only the chart's default: another value is named in a warning), or ignored
//! (it does not shape injected pods: controller replicas, webhooks' own settings...). A key
//! unknown to the chart gets a warning naming it.

use serde_json::Value as Json;

use super::{Config, ConfigError, RequestLimit};
use crate::release::{Change, Release};

/// Whether `path` is a key of the release's chart (a key of a later release, or one an
/// earlier release renamed, is not read by that release's injector).
fn of_release(path: &str, r: &Release) -> bool {
    let under = |p: &str| path == p || path.starts_with(&format!("{p}."));
    if under("proxy.tracing") {
        if !r.has(Change::Tracing) {
            return false;
        }
        // `enable` until edge-25.10.1, then `enabled` (and the collector's namespace).
        let old_key = under("proxy.tracing.enable");
        let new_key = under("proxy.tracing.enabled")
            || under("proxy.tracing.collector.meshIdentity.namespace");
        if (old_key && r.has(Change::TracingEnabled)) || (new_key && !r.has(Change::TracingEnabled))
        {
            return false;
        }
        if under("proxy.tracing.labels") && !r.has(Change::BetaNative) {
            return false;
        }
        return true;
    }
    if under("proxy.runtime") {
        return r.has(Change::Workers);
    }
    if under("proxy.metrics") {
        return r.has(Change::HostnameLabels);
    }
    true
}

/// Top-level chart keys that do not shape an injected pod (whole subtrees).
const IGNORED: &[&str] = &[
    "revisionHistoryLimit",
    "controllerLogLevel",
    "controllerLogFormat",
    "deploymentStrategy",
    "enableEndpointSlices",
    "enablePodAntiAffinity",
    "enablePprof",
    "enablePodDisruptionBudget",
    "controller",
    "kubeAPI",
    "podAnnotations",
    "podLabels",
    "commonLabels",
    "priorityClassName",
    "runtimeClassName",
    "policyController",
    "networkValidator.enableSecurityContext",
    "imagePullSecrets",
    "enableH2Upgrade",
    "enablePSP",
    "webhookFailurePolicy",
    "controllerImage",
    "controllerImageVersion",
    "controllerReplicas",
    "controllerUID",
    "controllerGID",
    "destinationController",
    "destinationResources",
    "destinationProxyResources",
    "heartbeat",
    "heartbeatResources",
    "heartbeatSchedule",
    "disableHeartBeat",
    "identityResources",
    "identityProxyResources",
    "proxyInjector",
    "proxyInjectorResources",
    "proxyInjectorProxyResources",
    "profileValidator",
    "policyValidator",
    "spValidator",
    "spValidatorResources",
    "nodeSelector",
    "nodeAffinity",
    "tolerations",
    "prometheusUrl",
    "podMonitor",
    "egress",
    "configReaders",
    "highAvailability",
    "cliVersion",
    "configs",
    "partials",
    "stage",
    "installNamespace",
    "namespace",
    "enableHeadlessServices",
    "identity.externalCA",
    "identity.issuer",
    "identity.kubeAPI",
    "identity.podAnnotations",
    "identity.additionalEnv",
    "identity.experimentalEnv",
    "identity.livenessProbe",
    "identity.readinessProbe",
    "proxyInit.kubeAPIServerPorts",
    // Computed per pod, not configured.
    "proxy.podInboundPorts",
    "proxy.component",
    "proxy.loadTrustBundleFromConfigMap",
    // The control plane's own tracing (before edge-25.10.1; `controller.tracing` after).
    "controlPlaneTracing",
    "controlPlaneTracingNamespace",
];

/// Keys that shape the injected pod where this injector writes only the chart's default: the
/// default as JSON (`null`: absent or empty). Any other value is named in a warning.
fn fixed(path: &str, release: &Release) -> Option<Json> {
    use serde_json::json;
    Some(match path {
        // Before edge-25.11.3, linkerd-init's own image (applied).
        "proxyInit.image" if !release.has(Change::InitFromProxyImage) => return None,
        "proxyContainerName" => json!("linkerd-proxy"),
        "proxy.securityContext" | "proxy.capabilities" | "proxy.saMountPath" => json!(null),
        "proxy.outboundTransportMode" => json!("transport-header"),
        "proxy.livenessProbe.initialDelaySeconds" => json!(10),
        "proxy.livenessProbe.timeoutSeconds" => json!(1),
        "proxy.readinessProbe.initialDelaySeconds" => json!(2),
        "proxy.readinessProbe.timeoutSeconds" => json!(1),
        "proxy.startupProbe.initialDelaySeconds" => json!(0),
        "proxy.startupProbe.periodSeconds" => json!(1),
        "proxy.startupProbe.failureThreshold" => json!(120),
        "proxyInit.capabilities" | "proxyInit.saMountPath" => json!(null),
        "proxyInit.xtMountPath.mountPath" => json!("/run"),
        "proxyInit.xtMountPath.name" => json!("linkerd-proxy-init-xtables-lock"),
        "proxyInit.xtMountPath.readOnly" => json!(false),
        "networkValidator.securityContext" => json!({
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": true,
            "runAsGroup": 65534,
            "runAsNonRoot": true,
            "runAsUser": 65534,
            "seccompProfile": {"type": "RuntimeDefault"},
        }),
        // From edge-25.11.3 linkerd-init runs from the proxy image; its resources are the
        // proxy's in every release: these keys have no effect there.
        "proxyInit.image" | "proxyInit.resources" => json!(null),
        _ => return None,
    })
}

/// Subtrees read as one value (maps or lists compared whole with [`fixed`], or whose keys
/// are free-form).
const LEAF_MAPS: &[&str] = &[
    "proxy.securityContext",
    "proxy.capabilities",
    "proxy.saMountPath",
    "proxy.tracing.labels",
    "proxyInit.capabilities",
    "proxyInit.saMountPath",
    "networkValidator.securityContext",
    "proxyInit.image",
    "proxyInit.resources",
];

/// What applying a values document found that the user should know: keys unknown to
/// Linkerd's chart, and values this injector does not write as Linkerd would.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Notes {
    pub unknown: Vec<String>,
    pub unsupported: Vec<String>,
    /// The release whose chart the keys were read as (`Linkerd 2.18 (edge-25.4.4)`).
    pub release: String,
}

impl Notes {
    /// Nothing to say.
    pub fn is_empty(&self) -> bool {
        self.unknown.is_empty() && self.unsupported.is_empty()
    }

    /// One line per note, for logs and the CLI's stderr.
    pub fn lines(&self, source: &str) -> Vec<String> {
        let mut out = Vec::new();
        for k in &self.unknown {
            out.push(format!(
                "{source}: {k} is not a key of {}'s linkerd-control-plane chart values; it is ignored (check its spelling, and the release: --linkerd-version or linkerdVersion)",
                self.release
            ));
        }
        for k in &self.unsupported {
            out.push(format!(
                "{source}: {k} differs from Linkerd's default, which is all this injector writes; injected pods differ from Linkerd's here"
            ));
        }
        out
    }
}

/// Values resolved after every key is read (Linkerd's fallbacks between keys).
#[derive(Default)]
struct Pending {
    linkerd_version: Option<String>,
    pull_policy: Option<String>,
    proxy_version: Option<String>,
    proxy_pull_policy: Option<String>,
    debug_version: Option<String>,
    debug_pull_policy: Option<String>,
    init_pull_policy: Option<String>,
    trust_domain: Option<String>,
}

/// Applies a YAML values document over `config`; `source` names it in errors.
pub fn apply(config: &mut Config, text: &str, source: &str) -> Result<Notes, ConfigError> {
    apply_tree(config, &parse(text, source)?, source)
}

/// A YAML values document as a tree (`null` when empty).
pub fn parse(text: &str, source: &str) -> Result<Json, ConfigError> {
    if text.trim().is_empty() {
        return Ok(Json::Null);
    }
    serde_saphyr::from_str(text).map_err(|e: serde_saphyr::Error| ConfigError::Values {
        source_name: source.to_owned(),
        message: e.without_snippet().to_string(),
    })
}

/// The release a values document's `linkerdVersion` names: `None` when it names none (absent,
/// empty, or not a release name, such as a development build's); an error when it names a
/// release outside the supported range.
pub fn release_of(tree: &Json, source: &str) -> Result<Option<Release>, ConfigError> {
    let Some(v) = tree.get("linkerdVersion").and_then(Json::as_str) else {
        return Ok(None);
    };
    if !Release::is_release_name(v) {
        return Ok(None);
    }
    Release::parse(v)
        .map(Some)
        .map_err(|e| ConfigError::Values {
            source_name: source.to_owned(),
            message: format!("linkerdVersion: {e}"),
        })
}

/// Applies a parsed values document over `config`, as the chart of `config.release` reads it.
pub fn apply_tree(config: &mut Config, tree: &Json, source: &str) -> Result<Notes, ConfigError> {
    let mut notes = Notes {
        release: config.release.describe(),
        ..Notes::default()
    };
    let mut pending = Pending::default();
    match tree {
        Json::Null => {}
        Json::Object(_) => walk(config, &mut pending, &mut notes, "", tree, source)?,
        _ => {
            return Err(ConfigError::Values {
                source_name: source.to_owned(),
                message: "expected a map of Linkerd chart values at the top".into(),
            });
        }
    }
    resolve(config, pending);
    config.validate().map_err(|e| match e {
        ConfigError::Invalid { key, value, reason } => ConfigError::Values {
            source_name: source.to_owned(),
            message: format!("{key} = {value:?} is not valid: {reason}"),
        },
        other => other,
    })?;
    Ok(notes)
}

fn walk(
    config: &mut Config,
    pending: &mut Pending,
    notes: &mut Notes,
    prefix: &str,
    node: &Json,
    source: &str,
) -> Result<(), ConfigError> {
    let Json::Object(map) = node else {
        return Ok(());
    };
    for (k, v) in map {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        if IGNORED.contains(&path.as_str()) {
            continue;
        }
        if !of_release(&path, &config.release) {
            notes.unknown.push(path);
            continue;
        }
        if let Some(default) = fixed(&path, &config.release) {
            let given = match v {
                Json::Object(m) if m.is_empty() => &Json::Null,
                Json::Array(a) if a.is_empty() => &Json::Null,
                Json::String(s) if s.is_empty() => &Json::Null,
                other => other,
            };
            if *given != default && !(default.is_null() && given.is_null()) {
                notes.unsupported.push(format!("{path} = {}", short(given)));
            }
            continue;
        }
        if path == "proxy.inbound" || path == "proxy.outbound" {
            // Linkerd renders exactly the parameters its values hold: a given map (or null)
            // replaces the defaults (the HTTP/2 keep-alive ones included).
            let inbound = path == "proxy.inbound";
            let h = match inbound {
                true => &mut config.proxy.inbound.server.http2,
                false => &mut config.proxy.outbound.server.http2,
            };
            h.keep_alive_interval.clear();
            h.keep_alive_timeout.clear();
            let prefix = if inbound {
                "LINKERD2_PROXY_INBOUND_"
            } else {
                "LINKERD2_PROXY_OUTBOUND_"
            };
            config.proxy.params.retain(|(n, _)| !n.starts_with(prefix));
            walk(config, pending, notes, &path, v, source)?;
            continue;
        }
        if v.is_null()
            && (path.starts_with("proxy.inbound.") || path.starts_with("proxy.outbound."))
        {
            continue;
        }
        // Before edge-25.11.3 `proxyInit.image` is read key by key.
        let leaf = LEAF_MAPS.contains(&path.as_str())
            && (path != "proxyInit.image" || config.release.has(Change::InitFromProxyImage));
        if v.is_object() && !leaf {
            walk(config, pending, notes, &path, v, source)?;
            continue;
        }
        if path == "proxy.tracing.labels" {
            // A map merged into the default one, Helm style (a key set to null removes it).
            let labels = &mut config.proxy.tracing.labels;
            match v {
                Json::Null => labels.clear(),
                Json::Object(m) => {
                    for (k, lv) in m {
                        if lv.is_null() {
                            labels.remove(k);
                            continue;
                        }
                        let t = text(lv).map_err(|reason| ConfigError::Values {
                            source_name: source.to_owned(),
                            message: format!("{path}.{k}: {reason}"),
                        })?;
                        labels.insert(k.clone(), t);
                    }
                }
                _ => {
                    return Err(ConfigError::Values {
                        source_name: source.to_owned(),
                        message: format!("{path} must be a map of attribute names to values"),
                    });
                }
            }
            continue;
        }
        match set(config, pending, &path, v) {
            Ok(true) => {}
            Ok(false) => notes.unknown.push(path),
            Err(reason) => {
                return Err(ConfigError::Values {
                    source_name: source.to_owned(),
                    message: format!("{path} = {} is not valid: {reason}", short(v)),
                });
            }
        }
    }
    Ok(())
}

/// A value as a warning quotes it: compact JSON, at most 64 characters.
fn short(v: &Json) -> String {
    let s = v.to_string();
    match s.char_indices().nth(64) {
        Some((i, _)) => format!("{}… ({} bytes)", &s[..i], s.len()),
        None => s,
    }
}

/// A scalar as text (`null`: empty), as Helm prints it into the template.
fn text(v: &Json) -> Result<String, String> {
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
fn set(c: &mut Config, p: &mut Pending, path: &str, v: &Json) -> Result<bool, String> {
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
        x.image.clone().unwrap_or_else(|| super::Image {
            name: super::PROXY_INIT_IMAGE.into(),
            version: String::new(),
        })
    };
    match path {
        // Before edge-25.11.3 (else `fixed`): linkerd-init's own image.
        "image.name" => {
            let version = image().version;
            x.image = Some(super::Image {
                name: text(v)?,
                version,
            })
        }
        "image.version" => {
            let name = image().name;
            x.image = Some(super::Image {
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
fn resolve(c: &mut Config, p: Pending) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(yaml: &str) -> (Config, Notes) {
        let mut c = Config::default();
        let notes = apply(&mut c, yaml, "values.yaml").unwrap();
        (c, notes)
    }

    #[test]
    fn the_charts_defaults_change_nothing() {
        let yaml = "clusterDomain: cluster.local\nimagePullPolicy: IfNotPresent\n\
            linkerdVersion: edge-26.8.3\ndisableIPv6: true\ncniEnabled: false\n\
            identityTrustDomain: \"\"\nproxy:\n  image:\n    name: cr.l5d.io/linkerd/proxy\n\
            \x20   pullPolicy: \"\"\n    version: \"\"\n  gid: -1\n  uid: 2102\n  cores:\n\
            \x20 resources:\n    cpu:\n      limit: \"\"\n      request: \"\"\n  securityContext: {}\n\
            \x20 shutdownGracePeriod: \"\"\n  nativeSidecar: true\n  tracing:\n    enabled: false\n\
            \x20   labels:\n      k8s.pod.ip: \"$(_pod_ip)\"\nproxyInit:\n  iptablesMode: nft\n\
            \x20 runAsUser: 65534\n  runAsGroup: 65534\n  xtMountPath:\n    mountPath: /run\n\
            \x20   name: linkerd-proxy-init-xtables-lock\nproxyInjector:\n  timeoutSeconds: 10\n\
            debugContainer:\n  image:\n    name: cr.l5d.io/linkerd/debug\n    pullPolicy: \"\"\n\
            \x20   version: \"\"\nidentity:\n  serviceAccountTokenProjection: true\n  issuer:\n\
            \x20   scheme: linkerd.io/tls\n";
        let (c, notes) = applied(yaml);
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(c, Config::default());
    }

    #[test]
    fn keys_set_replace_defaults_and_fallbacks_follow_linkerd() {
        let (c, _) = applied(
            "linkerdVersion: stable-2.14.10\nimagePullPolicy: Always\nclusterDomain: example.org\n\
             identityTrustDomain: \"\"\nproxy:\n  ports:\n    admin: 5191\n  gid: 3000\n\
             \x20 resources:\n    ephemeral-storage:\n      limit: 1Gi\nproxyInit:\n\
             \x20 ignoreInboundPorts: \"4567\"\n",
        );
        assert_eq!(c.proxy.image.version, "stable-2.14.10");
        assert_eq!(c.debug.image.version, "stable-2.14.10");
        assert_eq!(c.proxy.image_pull_policy, "Always");
        assert_eq!(c.identity_trust_domain, "example.org");
        assert_eq!(c.proxy.ports.admin, 5191);
        assert_eq!(c.proxy.gid, Some(3000));
        assert_eq!(
            c.proxy.resources.ephemeral_storage.limit.as_deref(),
            Some("1Gi")
        );
        assert_eq!(c.proxy_init.skip_inbound_ports, "4567");
    }

    #[test]
    fn null_removes_a_default() {
        let (c, _) = applied("proxy:\n  opaquePorts: null\n  inboundConnectTimeout: null\n");
        assert_eq!(c.proxy.opaque_ports, "");
        assert_eq!(c.proxy.inbound_connect_timeout, None);
    }

    #[test]
    fn unknown_and_unsupported_keys_are_named() {
        let (_, notes) = applied(
            "proxy:\n  logLevl: debug\n  securityContext:\n    runAsUser: 5\nfoo: 1\n\
             proxyInit:\n  xtMountPath:\n    mountPath: /xt\n",
        );
        assert_eq!(notes.unknown, vec!["foo", "proxy.logLevl"]);
        assert_eq!(
            notes.unsupported,
            vec![
                "proxy.securityContext = {\"runAsUser\":5}",
                "proxyInit.xtMountPath.mountPath = \"/xt\""
            ]
        );
        let lines = notes.lines("values.yaml");
        assert!(lines[0].contains("foo"), "{lines:?}");
    }

    #[test]
    fn keys_edge_26_8_3_ignores_or_defaults_to_are_not_reported() {
        let (_, notes) = applied(
            "networkValidator:\n  securityContext:\n    allowPrivilegeEscalation: false\n\
             \x20   capabilities:\n      drop: [ALL]\n    readOnlyRootFilesystem: true\n\
             \x20   runAsGroup: 65534\n    runAsNonRoot: true\n    runAsUser: 65534\n\
             \x20   seccompProfile:\n      type: RuntimeDefault\n",
        );
        assert!(notes.is_empty(), "{notes:?}");
        // An older chart's separate proxy-init image has no effect in edge-26.8.3: named.
        let (c, notes) = applied(
            "proxyInit:\n  image:\n    name: cr.l5d.io/linkerd/proxy-init\n    version: v2.2.3\n",
        );
        assert_eq!(c.proxy_init.image, None);
        assert_eq!(notes.unsupported.len(), 1, "{notes:?}");
        assert!(
            notes.unsupported[0].starts_with("proxyInit.image"),
            "{notes:?}"
        );
    }

    #[test]
    fn inbound_and_outbound_parameters_become_env_names() {
        let (c, notes) = applied(
            "proxy:\n  outbound:\n    server:\n      http1:\n        maxConnsPerHost: 5\n\
             \x20 inbound:\n    HTTPServer:\n      http2:\n        keepAlive-x: a\n",
        );
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(
            c.proxy.params,
            [
                (
                    "LINKERD2_PROXY_INBOUND_HTTP_SERVER_HTTP2_KEEP_ALIVE_X".to_owned(),
                    "a".to_owned()
                ),
                (
                    "LINKERD2_PROXY_OUTBOUND_SERVER_HTTP1_MAX_CONNS_PER_HOST".to_owned(),
                    "5".to_owned()
                ),
            ]
        );
        let mut c = Config::default();
        let e = apply(
            &mut c,
            "proxy:\n  inbound:\n    a b:\n      c:\n        d: 1\n",
            "v",
        )
        .unwrap_err();
        assert!(e.to_string().contains("env name"), "{e}");
        let e = apply(
            &mut c,
            "proxy:\n  additionalEnv:\n  - {name: A, value: 1}\n",
            "v",
        )
        .unwrap_err();
        assert!(e.to_string().contains("proxy.additionalEnv"), "{e}");
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let mut c = Config::default();
        let e = apply(&mut c, "proxy:\n  ports:\n    admin: 70000\n", "v.yaml").unwrap_err();
        assert!(e.to_string().contains("proxy.ports.admin"), "{e}");
        let e = apply(&mut c, "proxy:\n  logFormat: xml\n", "v.yaml").unwrap_err();
        assert!(e.to_string().contains("proxy.logFormat"), "{e}");
        let e = apply(&mut c, "- a\n", "v.yaml").unwrap_err();
        assert!(e.to_string().contains("v.yaml"), "{e}");
    }

    #[test]
    fn yaml_anchors_as_in_linkerds_values_are_read() {
        let (_, notes) =
            applied("kubeAPI: &kubeapi\n  clientQPS: 100\nidentity:\n  kubeAPI: *kubeapi\n");
        assert!(notes.is_empty(), "{notes:?}");
    }
}
