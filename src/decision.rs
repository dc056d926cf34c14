//! Pure decision: (namespace annotations, pod view, operation, config) → inject or skip, and
//! the effective values (pod annotation > namespace annotation > config).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use crate::config::Config;
use crate::overrides::{self, PortList};
use crate::view::PodView;

pub const INJECT_ANNOTATION: &str = "linkerd.io/inject";
pub const PROXY_CONTAINER: &str = "linkerd-proxy";
pub const INIT_CONTAINER: &str = "linkerd-init";
pub const DEBUG_CONTAINER: &str = "linkerd-debug";
pub const ISTIO_STATUS_ANNOTATION: &str = "sidecar.istio.io/status";
pub const OPAQUE_PORTS_ANNOTATION: &str = "config.linkerd.io/opaque-ports";

/// Every `config.*` override key the injector reads (Linkerd's names, then accepted aliases).
pub const OVERRIDE_KEYS: &[&str] = &[
    "config.linkerd.io/proxy-image",
    "config.linkerd.io/proxy-version",
    "config.linkerd.io/init-image",
    "config.linkerd.io/init-image-version",
    "config.linkerd.io/debug-image",
    "config.linkerd.io/debug-image-version",
    "config.linkerd.io/image-pull-policy",
    "config.linkerd.io/proxy-cpu-request",
    "config.linkerd.io/proxy-cpu-limit",
    "config.linkerd.io/proxy-memory-request",
    "config.linkerd.io/proxy-memory-limit",
    "config.linkerd.io/proxy-ephemeral-storage-request",
    "config.linkerd.io/proxy-ephemeral-storage-limit",
    "config.linkerd.io/proxy-log-level",
    "config.linkerd.io/proxy-log-format",
    "config.linkerd.io/proxy-uid",
    "config.linkerd.io/proxy-gid",
    "config.linkerd.io/inbound-port",
    "config.linkerd.io/outbound-port",
    "config.linkerd.io/admin-port",
    "config.linkerd.io/control-port",
    "config.linkerd.io/skip-inbound-ports",
    "config.linkerd.io/skip-outbound-ports",
    "config.linkerd.io/skip-subnets",
    "config.linkerd.io/proxy-await",
    "config.linkerd.io/enable-debug-sidecar",
    "config.alpha.linkerd.io/proxy-enable-native-sidecar",
    "config.linkerd.io/shutdown-grace-period",
    "config.linkerd.io/default-inbound-policy",
    "config.linkerd.io/access-log",
    OPAQUE_PORTS_ANNOTATION,
    "config.linkerd.io/proxy-inbound-port",
    "config.linkerd.io/proxy-outbound-port",
    "config.linkerd.io/proxy-admin-port",
    "config.linkerd.io/proxy-control-port",
];

/// Linkerd settings this injector does not support yet (they have no effect here).
pub const UNSUPPORTED_KEYS: &[&str] = &[
    "config.linkerd.io/enable-external-profiles",
    "config.linkerd.io/close-wait-timeout",
    "config.linkerd.io/proxy-outbound-connect-timeout",
    "config.linkerd.io/proxy-inbound-connect-timeout",
    "config.linkerd.io/proxy-disable-outbound-protocol-detect-timeout",
    "config.linkerd.io/proxy-disable-inbound-protocol-detect-timeout",
    "config.linkerd.io/trace-collector",
    "config.alpha.linkerd.io/trace-collector-service-account",
    "config.linkerd.io/proxy-require-identity-inbound-ports",
    "config.linkerd.io/proxy-outbound-discovery-cache-unused-timeout",
    "config.linkerd.io/proxy-inbound-discovery-cache-unused-timeout",
    "config.alpha.linkerd.io/proxy-wait-before-exit-seconds",
];

/// `linkerd.io/*` keys that are not settings: the inject switch and what injection writes.
pub const STATUS_KEYS: &[&str] = &[
    INJECT_ANNOTATION,
    "linkerd.io/created-by",
    "linkerd.io/proxy-version",
    "linkerd.io/identity-mode",
    "linkerd.io/control-plane-ns",
    "linkerd.io/workload-ns",
    "linkerd.io/trust-root-sha256",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `linkerd.io/inject: enabled`
    Enabled,
    /// `linkerd.io/inject: ingress`: the proxy runs in ingress mode.
    Ingress,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enabled => "enabled",
            Mode::Ingress => "ingress",
        }
    }
}

/// Where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Pod,
    Namespace,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Pod => "pod",
            Source::Namespace => "namespace",
        })
    }
}

/// What the injector knows about the pod's namespace.
#[derive(Debug, Clone, Copy)]
pub enum NamespaceInfo<'a> {
    /// Found in the cache, with these annotations.
    Known {
        name: &'a str,
        annotations: Option<&'a BTreeMap<String, String>>,
    },
    /// The request names a namespace the cache does not hold.
    NotCached { name: &'a str },
    /// The request names no namespace.
    None,
}

impl<'a> NamespaceInfo<'a> {
    fn annotation(&self, key: &str) -> Option<&'a str> {
        match self {
            NamespaceInfo::Known {
                annotations: Some(a),
                ..
            } => a.get(key).map(String::as_str),
            _ => None,
        }
    }
}

/// An override annotation whose value does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideError {
    pub key: String,
    pub value: String,
    pub source: Source,
    pub reason: String,
}

impl fmt::Display for OverrideError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "annotation {} = {:?} on the {} is not valid: {}",
            self.key, self.value, self.source, self.reason
        )
    }
}

/// Why a pod is not injected. Every variant reads as a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    NotAPod {
        group: String,
        version: String,
        kind: String,
    },
    NotCreate {
        operation: String,
    },
    NoObject,
    UnreadablePod {
        error: String,
    },
    AlreadyInjected,
    OtherMesh,
    DisabledOnPod,
    DisabledOnNamespace {
        namespace: String,
    },
    NotAnnotated {
        namespace: Option<String>,
        namespace_cached: bool,
    },
    UnknownValue {
        value: String,
        source: Source,
    },
    HostNetwork,
    InvalidOverrides(Vec<OverrideError>),
}

impl SkipReason {
    /// A short stable name for metrics and logs.
    pub fn code(&self) -> &'static str {
        match self {
            SkipReason::NotAPod { .. } => "not_a_pod",
            SkipReason::NotCreate { .. } => "not_create",
            SkipReason::NoObject => "no_object",
            SkipReason::UnreadablePod { .. } => "unreadable_pod",
            SkipReason::AlreadyInjected => "already_injected",
            SkipReason::OtherMesh => "other_mesh",
            SkipReason::DisabledOnPod => "disabled_on_pod",
            SkipReason::DisabledOnNamespace { .. } => "disabled_on_namespace",
            SkipReason::NotAnnotated { .. } => "not_annotated",
            SkipReason::UnknownValue { .. } => "unknown_inject_value",
            SkipReason::HostNetwork => "host_network",
            SkipReason::InvalidOverrides(_) => "invalid_override",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::NotAPod {
                group,
                version,
                kind,
            } => {
                let gv = if group.is_empty() {
                    version.clone()
                } else {
                    format!("{group}/{version}")
                };
                write!(
                    f,
                    "the object is a {gv} {kind}, not a v1 Pod; only pods are injected"
                )
            }
            SkipReason::NotCreate { operation } => write!(
                f,
                "the operation is {operation}; the proxy is only added when a pod is created"
            ),
            SkipReason::NoObject => f.write_str("the admission request carries no pod object"),
            SkipReason::UnreadablePod { error } => {
                write!(f, "the pod in the request could not be read ({error})")
            }
            SkipReason::AlreadyInjected => write!(
                f,
                "the pod already has a container named {PROXY_CONTAINER}; it is not injected twice"
            ),
            SkipReason::OtherMesh => write!(
                f,
                "the pod belongs to another mesh (it has the {ISTIO_STATUS_ANNOTATION} annotation)"
            ),
            SkipReason::DisabledOnPod => {
                write!(f, "the pod has {INJECT_ANNOTATION}: disabled")
            }
            SkipReason::DisabledOnNamespace { namespace } => {
                write!(
                    f,
                    "namespace {namespace} has {INJECT_ANNOTATION}: disabled and the pod does not override it"
                )
            }
            SkipReason::NotAnnotated {
                namespace: Some(ns),
                namespace_cached: true,
            } => write!(
                f,
                "neither the pod nor namespace {ns} has the {INJECT_ANNOTATION} annotation; \
                 set it to enabled on one of them to inject"
            ),
            SkipReason::NotAnnotated {
                namespace: Some(ns),
                namespace_cached: false,
            } => write!(
                f,
                "namespace {ns} is not in the injector's namespace cache, so only the pod's own \
                 annotations were considered, and the pod has no {INJECT_ANNOTATION} annotation"
            ),
            SkipReason::NotAnnotated {
                namespace: None, ..
            } => write!(
                f,
                "the request names no namespace and the pod has no {INJECT_ANNOTATION} annotation"
            ),
            SkipReason::UnknownValue { value, source } => write!(
                f,
                "{INJECT_ANNOTATION}: {value:?} on the {source} is not understood \
                 (expected enabled, disabled or ingress)"
            ),
            SkipReason::HostNetwork => f.write_str(
                "the pod uses hostNetwork: true; the proxy cannot redirect the host's traffic",
            ),
            SkipReason::InvalidOverrides(errors) => {
                f.write_str("the proxy was not added because ")?;
                for (i, e) in errors.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{e}")?;
                }
                Ok(())
            }
        }
    }
}

/// Values that shape the added containers. Two pods with equal `ProxyValues` get byte-identical
/// containers, so the serialised fragments are cached per distinct value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProxyValues<'a> {
    pub ingress: bool,
    pub proxy_image: Cow<'a, str>,
    pub proxy_version: Cow<'a, str>,
    pub init_image: Cow<'a, str>,
    pub init_version: Cow<'a, str>,
    pub debug_image: Cow<'a, str>,
    pub debug_version: Cow<'a, str>,
    pub pull_policy: Cow<'a, str>,
    pub cpu_request: Option<Cow<'a, str>>,
    pub cpu_limit: Option<Cow<'a, str>>,
    pub memory_request: Option<Cow<'a, str>>,
    pub memory_limit: Option<Cow<'a, str>>,
    pub ephemeral_request: Option<Cow<'a, str>>,
    pub ephemeral_limit: Option<Cow<'a, str>>,
    pub log_level: Cow<'a, str>,
    pub log_format: Cow<'a, str>,
    pub uid: i64,
    pub gid: Option<i64>,
    pub inbound_port: u16,
    pub outbound_port: u16,
    pub admin_port: u16,
    pub control_port: u16,
    pub skip_inbound_ports: String,
    pub skip_outbound_ports: String,
    pub skip_subnets: Cow<'a, str>,
    pub await_ready: bool,
    pub debug_sidecar: bool,
    pub native_sidecar: bool,
    pub shutdown_grace_period: Option<Cow<'a, str>>,
    pub default_inbound_policy: Cow<'a, str>,
    pub access_log: Option<Cow<'a, str>>,
}

impl ProxyValues<'_> {
    pub fn into_owned(self) -> ProxyValues<'static> {
        fn o(c: Cow<'_, str>) -> Cow<'static, str> {
            Cow::Owned(c.into_owned())
        }
        fn oo(c: Option<Cow<'_, str>>) -> Option<Cow<'static, str>> {
            c.map(o)
        }
        ProxyValues {
            ingress: self.ingress,
            proxy_image: o(self.proxy_image),
            proxy_version: o(self.proxy_version),
            init_image: o(self.init_image),
            init_version: o(self.init_version),
            debug_image: o(self.debug_image),
            debug_version: o(self.debug_version),
            pull_policy: o(self.pull_policy),
            cpu_request: oo(self.cpu_request),
            cpu_limit: oo(self.cpu_limit),
            memory_request: oo(self.memory_request),
            memory_limit: oo(self.memory_limit),
            ephemeral_request: oo(self.ephemeral_request),
            ephemeral_limit: oo(self.ephemeral_limit),
            log_level: o(self.log_level),
            log_format: o(self.log_format),
            uid: self.uid,
            gid: self.gid,
            inbound_port: self.inbound_port,
            outbound_port: self.outbound_port,
            admin_port: self.admin_port,
            control_port: self.control_port,
            skip_inbound_ports: self.skip_inbound_ports,
            skip_outbound_ports: self.skip_outbound_ports,
            skip_subnets: o(self.skip_subnets),
            await_ready: self.await_ready,
            debug_sidecar: self.debug_sidecar,
            native_sidecar: self.native_sidecar,
            shutdown_grace_period: oo(self.shutdown_grace_period),
            default_inbound_policy: o(self.default_inbound_policy),
            access_log: oo(self.access_log),
        }
    }
}

/// The pod-specific part of the patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodValues {
    /// Ports the pod's containers expose, for `LINKERD2_PROXY_INBOUND_PORTS`.
    pub inbound_ports: String,
    /// Effective opaque ports, for the proxy's env.
    pub opaque_ports: String,
    /// `Some` when the injector adds the opaque-ports annotation (neither pod nor namespace set it).
    pub opaque_annotation: Option<String>,
    /// The pod's namespace, for the `linkerd.io/workload-ns` label.
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan<'a> {
    pub mode: Mode,
    /// Whether `linkerd.io/inject` came from the pod or its namespace.
    pub source: Source,
    pub proxy: ProxyValues<'a>,
    pub pod: PodValues,
    /// True when no `config.linkerd.io/*` value changed a container (cache-friendly fast path).
    pub defaults_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // built once per request, never stored
pub enum Decision<'a> {
    Inject(Plan<'a>),
    Skip(SkipReason),
}

/// The request-level facts the decision needs besides the pod.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub group: &'a str,
    pub version: &'a str,
    pub kind: &'a str,
    pub operation: &'a str,
}

impl RequestFacts<'_> {
    pub const POD_CREATE: RequestFacts<'static> = RequestFacts {
        group: "",
        version: "v1",
        kind: "Pod",
        operation: "CREATE",
    };
}

/// Checks the request before the pod is read (cheap early exits).
pub fn precheck(req: &RequestFacts<'_>) -> Option<SkipReason> {
    if !(req.group.is_empty() && req.version == "v1" && req.kind == "Pod") {
        return Some(SkipReason::NotAPod {
            group: req.group.to_owned(),
            version: req.version.to_owned(),
            kind: req.kind.to_owned(),
        });
    }
    if req.operation != "CREATE" {
        return Some(SkipReason::NotCreate {
            operation: req.operation.to_owned(),
        });
    }
    None
}

/// The whole decision for a pod. Pure.
pub fn decide<'a>(
    req: &RequestFacts<'_>,
    pod: &PodView<'a>,
    ns: NamespaceInfo<'a>,
    config: &'a Config,
) -> Decision<'a> {
    if let Some(r) = precheck(req) {
        return Decision::Skip(r);
    }
    let has_proxy = |cs: &[crate::view::ContainerView<'_>]| {
        cs.iter().any(|c| c.name.as_str() == PROXY_CONTAINER)
    };
    if has_proxy(pod.containers()) || has_proxy(pod.init_containers()) {
        return Decision::Skip(SkipReason::AlreadyInjected);
    }
    if pod.has_annotation(ISTIO_STATUS_ANNOTATION) {
        return Decision::Skip(SkipReason::OtherMesh);
    }
    let (value, source): (Cow<'a, str>, Source) = match pod.annotation(INJECT_ANNOTATION) {
        Some(v) => (v, Source::Pod),
        None => match ns.annotation(INJECT_ANNOTATION) {
            Some(v) => (Cow::Borrowed(v), Source::Namespace),
            None => {
                return Decision::Skip(SkipReason::NotAnnotated {
                    namespace: match ns {
                        NamespaceInfo::Known { name, .. } | NamespaceInfo::NotCached { name } => {
                            Some(name.to_owned())
                        }
                        NamespaceInfo::None => None,
                    },
                    namespace_cached: matches!(ns, NamespaceInfo::Known { .. }),
                });
            }
        },
    };
    let mode = match value.as_ref() {
        "enabled" => Mode::Enabled,
        "ingress" => Mode::Ingress,
        "disabled" => {
            return Decision::Skip(match (source, ns) {
                (Source::Namespace, NamespaceInfo::Known { name, .. }) => {
                    SkipReason::DisabledOnNamespace {
                        namespace: name.to_owned(),
                    }
                }
                _ => SkipReason::DisabledOnPod,
            });
        }
        other => {
            return Decision::Skip(SkipReason::UnknownValue {
                value: other.to_owned(),
                source,
            });
        }
    };
    if pod.spec.as_ref().and_then(|s| s.host_network) == Some(true) {
        return Decision::Skip(SkipReason::HostNetwork);
    }
    match resolve(pod, ns, config, mode) {
        Ok((proxy, defaults_only, opaque)) => {
            let podv = pod_values(pod, ns, config, opaque);
            Decision::Inject(Plan {
                mode,
                source,
                proxy,
                pod: podv,
                defaults_only,
            })
        }
        Err(errors) => Decision::Skip(SkipReason::InvalidOverrides(errors)),
    }
}

/// The proxy values for a pod that overrides nothing, in `mode`: the config's own values.
/// `None` only if the config's defaults do not resolve, which `Config::validate` rules out.
pub fn values_without_overrides(config: &Config, mode: Mode) -> Option<ProxyValues<'static>> {
    let json = format!(
        r#"{{"metadata":{{"annotations":{{"{INJECT_ANNOTATION}":"{}"}}}}}}"#,
        mode.as_str()
    );
    let pod = PodView::parse(&json).ok()?;
    match decide(&RequestFacts::POD_CREATE, &pod, NamespaceInfo::None, config) {
        Decision::Inject(plan) => Some(plan.proxy.into_owned()),
        Decision::Skip(_) => None,
    }
}

/// One `config.linkerd.io/*` key (with Linkerd's name first and accepted aliases after).
struct Lookup<'p, 'a> {
    pod: &'p PodView<'a>,
    ns: NamespaceInfo<'a>,
    errors: Vec<OverrideError>,
    overridden: bool,
}

impl<'a> Lookup<'_, 'a> {
    fn raw(&self, keys: &[&'static str]) -> Option<(&'static str, Cow<'a, str>, Source)> {
        for k in keys {
            if let Some(v) = self.pod.annotation(k) {
                return Some((k, v, Source::Pod));
            }
        }
        for k in keys {
            if let Some(v) = self.ns.annotation(k) {
                return Some((k, Cow::Borrowed(v), Source::Namespace));
            }
        }
        None
    }

    /// Returns the parsed override if present and valid; records an error if it is invalid.
    fn get<T>(
        &mut self,
        keys: &[&'static str],
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<(T, Cow<'a, str>)> {
        let (key, value, source) = self.raw(keys)?;
        match parse(value.trim()) {
            Ok(t) => {
                self.overridden = true;
                Some((t, value))
            }
            Err(reason) => {
                self.errors.push(OverrideError {
                    key: key.to_owned(),
                    value: value.into_owned(),
                    source,
                    reason,
                });
                None
            }
        }
    }

    fn string(
        &mut self,
        keys: &[&'static str],
        parse: impl Fn(&str) -> Result<(), String>,
        default: &'a str,
    ) -> Cow<'a, str> {
        self.get(keys, parse)
            .map(|(_, v)| v)
            .unwrap_or(Cow::Borrowed(default))
    }

    fn opt_string(
        &mut self,
        keys: &[&'static str],
        parse: impl Fn(&str) -> Result<(), String>,
        default: Option<&'a str>,
    ) -> Option<Cow<'a, str>> {
        self.get(keys, parse)
            .map(|(_, v)| v)
            .or(default.map(Cow::Borrowed))
    }

    fn quantity(&mut self, key: &'static str, default: Option<&'a str>) -> Option<Cow<'a, str>> {
        self.get(&[key], |s| overrides::parse_quantity(s).map(|_| ()))
            .map(|(_, v)| Cow::Owned(v.trim().to_owned()))
            .or(default.map(Cow::Borrowed))
    }

    fn port(&mut self, keys: &[&'static str], default: u16) -> u16 {
        self.get(keys, overrides::parse_port)
            .map(|(p, _)| p)
            .unwrap_or(default)
    }

    fn bool(&mut self, keys: &[&'static str], default: bool) -> bool {
        self.get(keys, overrides::parse_bool)
            .map(|(b, _)| b)
            .unwrap_or(default)
    }

    fn ports(&mut self, key: &'static str, default: &str) -> PortList {
        self.get(&[key], PortList::parse)
            .map(|(p, _)| p)
            .unwrap_or_else(|| PortList::parse(default).unwrap_or_default())
    }
}

/// Resolves every override. Returns the proxy values, whether they equal the config's
/// defaults, and the explicit opaque-ports list when the pod or its namespace sets one.
#[allow(clippy::type_complexity)]
fn resolve<'a>(
    pod: &PodView<'a>,
    ns: NamespaceInfo<'a>,
    config: &'a Config,
    mode: Mode,
) -> Result<(ProxyValues<'a>, bool, Option<PortList>), Vec<OverrideError>> {
    let p = &config.proxy;
    let init = &config.proxy_init;
    let mut l = Lookup {
        pod,
        ns,
        errors: Vec::new(),
        overridden: false,
    };
    let r = &p.resources;
    let proxy = ProxyValues {
        ingress: mode == Mode::Ingress,
        proxy_image: l.string(
            &["config.linkerd.io/proxy-image"],
            overrides::parse_image,
            &p.image.name,
        ),
        proxy_version: l.string(
            &["config.linkerd.io/proxy-version"],
            overrides::parse_tag,
            &p.image.version,
        ),
        init_image: l.string(
            &["config.linkerd.io/init-image"],
            overrides::parse_image,
            &init.image.name,
        ),
        init_version: l.string(
            &["config.linkerd.io/init-image-version"],
            overrides::parse_tag,
            &init.image.version,
        ),
        debug_image: l.string(
            &["config.linkerd.io/debug-image"],
            overrides::parse_image,
            &config.debug.image.name,
        ),
        debug_version: l.string(
            &["config.linkerd.io/debug-image-version"],
            overrides::parse_tag,
            &config.debug.image.version,
        ),
        pull_policy: l.string(
            &["config.linkerd.io/image-pull-policy"],
            overrides::parse_pull_policy,
            &p.image_pull_policy,
        ),
        cpu_request: l.quantity(
            "config.linkerd.io/proxy-cpu-request",
            r.cpu.request.as_deref(),
        ),
        cpu_limit: l.quantity("config.linkerd.io/proxy-cpu-limit", r.cpu.limit.as_deref()),
        memory_request: l.quantity(
            "config.linkerd.io/proxy-memory-request",
            r.memory.request.as_deref(),
        ),
        memory_limit: l.quantity(
            "config.linkerd.io/proxy-memory-limit",
            r.memory.limit.as_deref(),
        ),
        ephemeral_request: l.quantity(
            "config.linkerd.io/proxy-ephemeral-storage-request",
            r.ephemeral_storage.request.as_deref(),
        ),
        ephemeral_limit: l.quantity(
            "config.linkerd.io/proxy-ephemeral-storage-limit",
            r.ephemeral_storage.limit.as_deref(),
        ),
        log_level: l.string(
            &["config.linkerd.io/proxy-log-level"],
            overrides::parse_log_level,
            &p.log_level,
        ),
        log_format: l.string(
            &["config.linkerd.io/proxy-log-format"],
            overrides::parse_log_format,
            &p.log_format,
        ),
        uid: l
            .get(&["config.linkerd.io/proxy-uid"], overrides::parse_uid)
            .map(|(u, _)| u)
            .unwrap_or(p.uid),
        gid: l
            .get(&["config.linkerd.io/proxy-gid"], overrides::parse_uid)
            .map(|(g, _)| g)
            .or(p.gid),
        inbound_port: l.port(
            &[
                "config.linkerd.io/inbound-port",
                "config.linkerd.io/proxy-inbound-port",
            ],
            p.ports.inbound,
        ),
        outbound_port: l.port(
            &[
                "config.linkerd.io/outbound-port",
                "config.linkerd.io/proxy-outbound-port",
            ],
            p.ports.outbound,
        ),
        admin_port: l.port(
            &[
                "config.linkerd.io/admin-port",
                "config.linkerd.io/proxy-admin-port",
            ],
            p.ports.admin,
        ),
        control_port: l.port(
            &[
                "config.linkerd.io/control-port",
                "config.linkerd.io/proxy-control-port",
            ],
            p.ports.control,
        ),
        skip_inbound_ports: l
            .ports(
                "config.linkerd.io/skip-inbound-ports",
                &init.skip_inbound_ports,
            )
            .render(),
        skip_outbound_ports: l
            .ports(
                "config.linkerd.io/skip-outbound-ports",
                &init.skip_outbound_ports,
            )
            .render(),
        skip_subnets: l.string(
            &["config.linkerd.io/skip-subnets"],
            overrides::parse_subnets,
            &init.skip_subnets,
        ),
        await_ready: l.bool(&["config.linkerd.io/proxy-await"], p.await_ready),
        debug_sidecar: l.bool(&["config.linkerd.io/enable-debug-sidecar"], false),
        native_sidecar: l.bool(
            &["config.alpha.linkerd.io/proxy-enable-native-sidecar"],
            p.native_sidecar,
        ),
        shutdown_grace_period: l.opt_string(
            &["config.linkerd.io/shutdown-grace-period"],
            overrides::parse_duration,
            p.shutdown_grace_period.as_deref(),
        ),
        default_inbound_policy: l.string(
            &["config.linkerd.io/default-inbound-policy"],
            overrides::parse_inbound_policy,
            &p.default_inbound_policy,
        ),
        access_log: l.opt_string(
            &["config.linkerd.io/access-log"],
            overrides::parse_access_log,
            None,
        ),
    };
    let defaults_only = !l.overridden;
    // Opaque ports only change the pod-specific part of the patch, not the cached containers.
    let opaque = l
        .get(&[OPAQUE_PORTS_ANNOTATION], PortList::parse)
        .map(|(p, _)| p);
    for (req_key, req, lim_key, lim) in [
        (
            "config.linkerd.io/proxy-cpu-request",
            &proxy.cpu_request,
            "config.linkerd.io/proxy-cpu-limit",
            &proxy.cpu_limit,
        ),
        (
            "config.linkerd.io/proxy-memory-request",
            &proxy.memory_request,
            "config.linkerd.io/proxy-memory-limit",
            &proxy.memory_limit,
        ),
    ] {
        if let (Some(rq), Some(lm)) = (req, lim)
            && let (Ok(a), Ok(b)) = (overrides::parse_quantity(rq), overrides::parse_quantity(lm))
            && a > b
        {
            let (key, value, source) = l
                .raw(&[req_key])
                .or_else(|| l.raw(&[lim_key]))
                .map(|(k, v, s)| (k.to_owned(), v.into_owned(), s))
                .unwrap_or((req_key.to_owned(), rq.to_string(), Source::Pod));
            l.errors.push(OverrideError {
                key,
                value,
                source,
                reason: format!("the request {rq} is larger than the limit {lm}"),
            });
        }
    }
    if l.errors.is_empty() {
        Ok((proxy, defaults_only, opaque))
    } else {
        Err(l.errors)
    }
}

fn pod_values(
    pod: &PodView<'_>,
    ns: NamespaceInfo<'_>,
    config: &Config,
    explicit_opaque: Option<PortList>,
) -> PodValues {
    let mut exposed: Vec<u16> = pod
        .containers()
        .iter()
        .flat_map(|c| c.ports.as_deref().unwrap_or(&[]))
        .filter_map(|p| u16::try_from(p.container_port).ok().filter(|p| *p > 0))
        .collect();
    let inbound_ports = join_ports(&exposed);
    exposed.sort_unstable();
    exposed.dedup();
    let (opaque_ports, opaque_annotation) = match explicit_opaque {
        Some(list) => (list.render(), None),
        None => {
            let defaults = PortList::parse(&config.proxy.opaque_ports).unwrap_or_default();
            let matched: Vec<u16> = exposed
                .iter()
                .copied()
                .filter(|p| defaults.contains(*p))
                .collect();
            let s = join_ports(&matched);
            let ann = if s.is_empty() { None } else { Some(s.clone()) };
            (s, ann)
        }
    };
    let namespace = match ns {
        NamespaceInfo::Known { name, .. } | NamespaceInfo::NotCached { name } => {
            Some(name.to_owned())
        }
        NamespaceInfo::None => pod
            .metadata
            .namespace
            .as_ref()
            .map(|n| n.as_str().to_owned()),
    };
    PodValues {
        inbound_ports,
        opaque_ports,
        opaque_annotation,
        namespace,
    }
}

fn join_ports(ports: &[u16]) -> String {
    let mut s = String::with_capacity(ports.len() * 5);
    for (i, p) in ports.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&p.to_string());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns_with(ann: &[(&str, &str)]) -> BTreeMap<String, String> {
        ann.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn decide_json<'a>(json: &'a str, ns: NamespaceInfo<'a>, config: &'a Config) -> Decision<'a> {
        let pod = PodView::parse(json).unwrap();
        // Leak-free: the decision borrows the pod view only through Cow values copied below.
        let d = decide(&RequestFacts::POD_CREATE, &pod, ns, config);
        match d {
            Decision::Inject(p) => Decision::Inject(Plan {
                proxy: p.proxy.into_owned(),
                ..p
            }),
            Decision::Skip(r) => Decision::Skip(r),
        }
    }

    const PLAIN: &str = r#"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"app"}]}}"#;

    #[test]
    fn namespace_enabled_injects() {
        let c = Config::default();
        let a = ns_with(&[("linkerd.io/inject", "enabled")]);
        let d = decide_json(
            PLAIN,
            NamespaceInfo::Known {
                name: "x",
                annotations: Some(&a),
            },
            &c,
        );
        let Decision::Inject(p) = d else {
            panic!("{d:?}")
        };
        assert_eq!(p.mode, Mode::Enabled);
        assert_eq!(p.source, Source::Namespace);
        assert!(p.defaults_only);
    }

    #[test]
    fn pod_wins_over_namespace() {
        let c = Config::default();
        let a = ns_with(&[
            ("linkerd.io/inject", "enabled"),
            ("config.linkerd.io/proxy-log-level", "debug"),
        ]);
        let pod = r#"{"metadata":{"annotations":{"linkerd.io/inject":"disabled"}},"spec":{"containers":[]}}"#;
        let d = decide_json(
            pod,
            NamespaceInfo::Known {
                name: "x",
                annotations: Some(&a),
            },
            &c,
        );
        assert_eq!(d, Decision::Skip(SkipReason::DisabledOnPod));
        let pod = r#"{"metadata":{"annotations":{"config.linkerd.io/proxy-log-level":"trace"}},"spec":{}}"#;
        let Decision::Inject(p) = decide_json(
            pod,
            NamespaceInfo::Known {
                name: "x",
                annotations: Some(&a),
            },
            &c,
        ) else {
            panic!()
        };
        assert_eq!(p.proxy.log_level, "trace");
        assert!(!p.defaults_only);
    }

    #[test]
    fn not_cached_namespace_says_so() {
        let c = Config::default();
        let d = decide_json(PLAIN, NamespaceInfo::NotCached { name: "ghost" }, &c);
        let Decision::Skip(r) = d else { panic!() };
        assert!(
            r.to_string()
                .contains("not in the injector's namespace cache"),
            "{r}"
        );
    }

    #[test]
    fn bad_values_are_all_reported() {
        let c = Config::default();
        let pod = r#"{"metadata":{"annotations":{"linkerd.io/inject":"enabled",
            "config.linkerd.io/proxy-cpu-request":"lots","config.linkerd.io/admin-port":"70000"}},"spec":{}}"#;
        let Decision::Skip(SkipReason::InvalidOverrides(e)) =
            decide_json(pod, NamespaceInfo::None, &c)
        else {
            panic!()
        };
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].key, "config.linkerd.io/proxy-cpu-request");
        assert_eq!(e[1].key, "config.linkerd.io/admin-port");
    }

    #[test]
    fn request_above_limit_is_an_error() {
        let c = Config::default();
        let pod = r#"{"metadata":{"annotations":{"linkerd.io/inject":"enabled",
            "config.linkerd.io/proxy-cpu-request":"2","config.linkerd.io/proxy-cpu-limit":"500m"}},"spec":{}}"#;
        let d = decide_json(pod, NamespaceInfo::None, &c);
        assert!(
            matches!(d, Decision::Skip(SkipReason::InvalidOverrides(_))),
            "{d:?}"
        );
    }

    #[test]
    fn every_listed_override_key_is_parsed() {
        let c = Config::default();
        for key in OVERRIDE_KEYS {
            let pod = serde_json::json!({"metadata": {"annotations": {
                "linkerd.io/inject": "enabled", *key: "\u{1} not valid"}}, "spec": {}})
            .to_string();
            let d = decide_json(&pod, NamespaceInfo::None, &c);
            let Decision::Skip(SkipReason::InvalidOverrides(e)) = d else {
                panic!("{key}: a bad value was not reported: {d:?}")
            };
            assert_eq!(e[0].key, *key);
        }
    }

    #[test]
    fn non_pod_and_non_create() {
        let facts = RequestFacts {
            group: "apps",
            version: "v1",
            kind: "Deployment",
            operation: "CREATE",
        };
        assert!(matches!(precheck(&facts), Some(SkipReason::NotAPod { .. })));
        let facts = RequestFacts {
            operation: "UPDATE",
            ..RequestFacts::POD_CREATE
        };
        assert!(matches!(
            precheck(&facts),
            Some(SkipReason::NotCreate { .. })
        ));
    }
}
