//! The registry: every name injection adds to a pod, and (in [`settings`]) every setting with
//! its Linkerd values key, annotation keys, default, parser and explain label. Everything else
//! (the decision's override keys, value resolution, `explain`, `/warn`'s key checks, uninject,
//! README's annotation table) is derived from here.

mod proxy_values;
pub mod settings;
mod table;

pub use proxy_values::ProxyValues;

pub use settings::{SETTINGS, Setting, override_keys};

/// The switch: `linkerd.io/inject: enabled | disabled | ingress`.
pub const INJECT_ANNOTATION: &str = "linkerd.io/inject";
/// How a pod is injected: the value of [`INJECT_ANNOTATION`] that asks for it.
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

/// Opaque ports: a setting whose value lands in the pod-specific part of the patch.
pub const OPAQUE_PORTS_ANNOTATION: &str = "config.linkerd.io/opaque-ports";
/// Another mesh's mark: a pod carrying it is left alone.
pub const ISTIO_STATUS_ANNOTATION: &str = "sidecar.istio.io/status";
/// Linkerd's proxy and proxy-init images, by which Linkerd recognises a pod already injected
/// (under any container name).
pub const LINKERD_PROXY_IMAGE: &str = "cr.l5d.io/linkerd/proxy:";
pub const LINKERD_PROXY_INIT_IMAGE: &str = "cr.l5d.io/linkerd/proxy-init:";
/// Istio's sidecar and init container, by name and image (as Linkerd recognises them).
pub const ISTIO_PROXY_CONTAINER: &str = "istio-proxy";
pub const ISTIO_INIT_CONTAINER: &str = "istio-init";
pub const ISTIO_PROXY_IMAGE: &str = "gcr.io/istio-release/proxyv2:";
pub const ISTIO_INIT_IMAGE: &str = "gcr.io/istio-release/proxy_init:";

/// Containers injection adds.
pub const PROXY_CONTAINER: &str = "linkerd-proxy";
pub const INIT_CONTAINER: &str = "linkerd-init";
pub const DEBUG_CONTAINER: &str = "linkerd-debug";
/// The pod annotation that adds the debug sidecar.
pub const DEBUG_ANNOTATION: &str = "config.linkerd.io/enable-debug-sidecar";
/// CNI mode's first init container: checks that the CNI plugin's redirect works.
pub const VALIDATOR_CONTAINER: &str = "linkerd-network-validator";
pub const CONTAINERS: [&str; 4] = [
    PROXY_CONTAINER,
    INIT_CONTAINER,
    DEBUG_CONTAINER,
    VALIDATOR_CONTAINER,
];
/// The proxy container's named ports: inbound and admin.
pub const INBOUND_PORT_NAME: &str = "linkerd-proxy";
pub const ADMIN_PORT_NAME: &str = "linkerd-admin";

/// Volumes injection adds, and where the proxy mounts them.
pub const END_ENTITY_VOLUME: &str = "linkerd-identity-end-entity";
pub const END_ENTITY_PATH: &str = "/var/run/linkerd/identity/end-entity";
pub const TOKEN_VOLUME: &str = "linkerd-identity-token";
pub const TOKEN_DIR: &str = "/var/run/secrets/tokens";
pub const TOKEN_AUDIENCE: &str = "identity.l5d.io";
pub const XTABLES_VOLUME: &str = "linkerd-proxy-init-xtables-lock";
/// Tracing: the pod's labels, for the proxy's span attributes.
pub const PODINFO_VOLUME: &str = "linkerd-podinfo";
pub const PODINFO_PATH: &str = "/var/run/linkerd/podinfo";
/// The pod's own service-account token (the proxy's identity when token projection is off).
pub const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
pub const VOLUMES: [&str; 4] = [
    END_ENTITY_VOLUME,
    TOKEN_VOLUME,
    XTABLES_VOLUME,
    PODINFO_VOLUME,
];

/// Annotations injection writes (besides `linkerd.io/inject` when it came from the namespace,
/// and the opaque-ports annotation it may add).
pub const CREATED_BY_ANNOTATION: &str = "linkerd.io/created-by";
pub const PROXY_VERSION_ANNOTATION: &str = "linkerd.io/proxy-version";
pub const IDENTITY_MODE_ANNOTATION: &str = "linkerd.io/identity-mode";
/// Written by Linkerd's injector; removed by uninject so a Linkerd-injected pod comes out clean.
pub const TRUST_ROOT_ANNOTATION: &str = "linkerd.io/trust-root-sha256";
pub const STATUS_ANNOTATIONS: [&str; 4] = [
    CREATED_BY_ANNOTATION,
    PROXY_VERSION_ANNOTATION,
    IDENTITY_MODE_ANNOTATION,
    TRUST_ROOT_ANNOTATION,
];
/// The value of `linkerd.io/created-by`.
pub const CREATED_BY: &str = concat!("proxy-injector/", env!("CARGO_PKG_VERSION"));

/// The proxy config annotations a namespace passes on (the newest release's list; see
/// [`crate::release::Release::namespace_keys`] for each release's).
pub use crate::release::NAMESPACE_KEYS;

/// Whether a namespace's annotation `key` applies to its pods.
pub fn namespace_applies(key: &str) -> bool {
    NAMESPACE_KEYS.contains(&key)
}

/// Labels injection writes.
pub const CONTROL_PLANE_NS_LABEL: &str = "linkerd.io/control-plane-ns";
pub const WORKLOAD_NS_LABEL: &str = "linkerd.io/workload-ns";
pub const STATUS_LABELS: [&str; 2] = [CONTROL_PLANE_NS_LABEL, WORKLOAD_NS_LABEL];

/// `linkerd.io/*` keys that are not settings: the switch and what injection writes.
pub fn status_keys() -> impl Iterator<Item = &'static str> {
    std::iter::once(INJECT_ANNOTATION)
        .chain(STATUS_ANNOTATIONS)
        .chain(STATUS_LABELS)
}

/// Whether a key belongs to the mesh (`linkerd.io/*`, `config.linkerd.io/*`,
/// `config.alpha.linkerd.io/*`).
pub fn is_mesh_key(key: &str) -> bool {
    key.starts_with("linkerd.io/")
        || key.starts_with("config.linkerd.io/")
        || key.starts_with("config.alpha.linkerd.io/")
        || key.starts_with("config.beta.linkerd.io/")
}

/// Linkerd settings this injector does not support yet (they have no effect here).
pub const UNSUPPORTED_KEYS: &[&str] = &[
    "config.linkerd.io/trace-collector",
    "config.alpha.linkerd.io/trace-collector-service-account",
];
