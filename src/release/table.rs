//! The data: each change to the injected pod between Linkerd 2.16 and edge-26.8.3, with the
//! first edge tag that has it (read from each tag's chart templates, values and injector), and
//! the annotation keys that came or went with one.

use super::Edge;

/// One change to the injected pod. A release has every change whose break point is not after
/// its edge tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Change {
    /// The proxy's `LINKERD2_PROXY_INBOUND_ACCEPT_USER_TIMEOUT` and
    /// `..._OUTBOUND_CONNECT_USER_TIMEOUT`.
    UserTimeouts,
    /// `_pod_uid` and `_pod_containerName` in the proxy's env; proxy-init v2.4.2; a close-wait
    /// timeout needs `proxyInit.runAsRoot`.
    PodUid,
    /// `proxy.runtime.workers` (`LINKERD2_PROXY_CORES`/`_MIN` always, `_MAX`, `_MAX_RATIO`; the
    /// CPU limit annotation sets the maximum, no longer the cores); the CPU ratio and debug
    /// image annotations.
    Workers,
    /// `LINKERD2_PROXY_OUTBOUND_METRICS_HOSTNAME_LABELS` and its annotation.
    HostnameLabels,
    /// `_pod_ip` in the proxy's env.
    PodIp,
    /// Opt-in proxy tracing (`proxy.tracing.enable`).
    Tracing,
    /// proxy-init v2.4.3.
    ProxyInit243,
    /// `proxyInit.iptablesMode` defaults to `nft`.
    IptablesNft,
    /// Tracing's key is `proxy.tracing.enabled`, the collector's identity names its namespace
    /// (both required).
    TracingEnabled,
    /// The beta native-sidecar annotation; tracing attributes from `proxy.tracing.labels`
    /// and `LINKERD2_PROXY_TRACE_ANNOTATIONS_PATH`.
    BetaNative,
    /// Tracing's `linkerd-podinfo` volume and mount follow `proxy.tracing.enabled` (missing
    /// from edge-25.10.1 to edge-25.10.7, 2.19 included).
    TracingVolume,
    /// `linkerd-init` runs `/usr/lib/linkerd/linkerd2-proxy-init` from the proxy image;
    /// `proxyInit.image` and the init-image annotations are gone.
    InitFromProxyImage,
    /// Init containers' ports count for the inbound ports, the default opaque ports and
    /// port names.
    InitPorts,
    /// The `config.linkerd.io/proxy-additional-env` annotation.
    AdditionalEnv,
    /// Native sidecars by default (`proxy.nativeSidecar: true`), the GA annotation; a native
    /// sidecar with `waitBeforeExitSeconds` is no longer refused.
    NativeDefault,
    /// The trace collector's identity ends with the trust domain (was the cluster domain).
    CollectorTrustDomain,
}

/// The break points: the first edge tag with each change, and what it changes (README's
/// table is this list).
pub static BREAKS: &[(Edge, Change, &str)] = &[
    (
        Edge(24, 10, 1),
        Change::UserTimeouts,
        "proxy env: `LINKERD2_PROXY_INBOUND_ACCEPT_USER_TIMEOUT`, `LINKERD2_PROXY_OUTBOUND_CONNECT_USER_TIMEOUT` (30s)",
    ),
    (
        Edge(25, 1, 1),
        Change::PodUid,
        "proxy env: `_pod_uid`, `_pod_containerName`; `linkerd-init` from `proxy-init:v2.4.2`; a close-wait timeout needs `proxyInit.runAsRoot`",
    ),
    (
        Edge(25, 3, 3),
        Change::Workers,
        "`proxy.runtime.workers` (`LINKERD2_PROXY_CORES`/`_MIN` on every proxy, `_MAX` from the CPU limit, `_MAX_RATIO`); `config.linkerd.io/proxy-cpu-ratio-limit`; the debug image annotations are read",
    ),
    (
        Edge(25, 3, 4),
        Change::HostnameLabels,
        "proxy env: `LINKERD2_PROXY_OUTBOUND_METRICS_HOSTNAME_LABELS`; `config.linkerd.io/proxy-metrics-hostname-labels`",
    ),
    (Edge(25, 5, 5), Change::PodIp, "proxy env: `_pod_ip`"),
    (
        Edge(25, 6, 4),
        Change::Tracing,
        "opt-in proxy tracing (`proxy.tracing.enable`)",
    ),
    (
        Edge(25, 7, 2),
        Change::ProxyInit243,
        "`linkerd-init` from `proxy-init:v2.4.3`",
    ),
    (
        Edge(25, 8, 2),
        Change::IptablesNft,
        "`proxyInit.iptablesMode` defaults to `nft` (`linkerd-init` runs `iptables-nft`)",
    ),
    (
        Edge(25, 10, 1),
        Change::TracingEnabled,
        "tracing key `proxy.tracing.enabled`; the collector's identity names its namespace",
    ),
    (
        Edge(25, 10, 2),
        Change::BetaNative,
        "`config.beta.linkerd.io/proxy-enable-native-sidecar`; tracing attributes from `proxy.tracing.labels`",
    ),
    (
        Edge(25, 11, 1),
        Change::TracingVolume,
        "tracing's `linkerd-podinfo` volume and mount (absent in 2.19)",
    ),
    (
        Edge(25, 11, 3),
        Change::InitFromProxyImage,
        "`linkerd-init` runs `/usr/lib/linkerd/linkerd2-proxy-init` from the proxy image; `proxyInit.image` and the init-image annotations are gone",
    ),
    (
        Edge(25, 12, 2),
        Change::InitPorts,
        "init containers' ports count for the inbound ports, the default opaque ports and port names",
    ),
    (
        Edge(26, 4, 3),
        Change::AdditionalEnv,
        "`config.linkerd.io/proxy-additional-env`",
    ),
    (
        Edge(26, 5, 2),
        Change::NativeDefault,
        "native sidecars by default (`proxy.nativeSidecar: true`); `config.linkerd.io/proxy-enable-native-sidecar`",
    ),
    (
        Edge(26, 7, 1),
        Change::CollectorTrustDomain,
        "the trace collector's identity ends with the trust domain",
    ),
];

/// Announced versions and the edge tag each was cut from (2.20 is edge-26.6.3 and a
/// dependency update).
pub static RELEASES: &[(u32, Edge)] = &[
    (16, Edge(24, 8, 2)),
    (17, Edge(24, 11, 8)),
    (18, Edge(25, 4, 4)),
    (19, Edge(25, 10, 7)),
    (20, Edge(26, 6, 3)),
];

/// The changes of an edge tag, as a bit set.
pub(super) fn changes_at(edge: Edge) -> u32 {
    BREAKS
        .iter()
        .filter(|(since, _, _)| *since <= edge)
        .fold(0, |set, (_, c, _)| set | 1 << *c as u32)
}

/// The proxy config annotations a namespace passes on to its pods in the newest release, as
/// Linkerd's injector does
/// (its list, whether this injector reads the key or not): they apply to the namespace's pods
/// that lack them, and are copied onto the injected pod (the opaque-ports one apart, see
/// the pod values). Any other key on a namespace is ignored, as by Linkerd.
pub static NAMESPACE_KEYS: &[&str] = &[
    "config.linkerd.io/opaque-ports",
    "config.linkerd.io/admin-port",
    "config.linkerd.io/control-port",
    "config.linkerd.io/enable-debug-sidecar",
    "config.linkerd.io/enable-external-profiles",
    "config.linkerd.io/image-pull-policy",
    "config.linkerd.io/inbound-port",
    "config.linkerd.io/outbound-port",
    "config.linkerd.io/pod-inbound-ports",
    "config.linkerd.io/proxy-cpu-limit",
    "config.linkerd.io/proxy-cpu-request",
    "config.linkerd.io/proxy-image",
    "config.linkerd.io/proxy-admin-shutdown",
    "config.linkerd.io/proxy-log-format",
    "config.linkerd.io/proxy-log-level",
    "config.linkerd.io/proxy-log-http-headers",
    "config.linkerd.io/proxy-memory-limit",
    "config.linkerd.io/proxy-memory-request",
    "config.linkerd.io/proxy-ephemeral-storage-limit",
    "config.linkerd.io/proxy-ephemeral-storage-request",
    "config.linkerd.io/proxy-uid",
    "config.linkerd.io/proxy-gid",
    "config.linkerd.io/proxy-version",
    "config.linkerd.io/proxy-require-identity-inbound-ports",
    "config.linkerd.io/skip-inbound-ports",
    "config.linkerd.io/skip-outbound-ports",
    "config.linkerd.io/proxy-metrics-hostname-labels",
    "config.linkerd.io/proxy-outbound-connect-timeout",
    "config.linkerd.io/proxy-inbound-connect-timeout",
    "config.linkerd.io/proxy-await",
    "config.linkerd.io/default-inbound-policy",
    "config.linkerd.io/skip-subnets",
    "config.linkerd.io/access-log",
    "config.linkerd.io/shutdown-grace-period",
    "config.linkerd.io/proxy-outbound-discovery-cache-unused-timeout",
    "config.linkerd.io/proxy-inbound-discovery-cache-unused-timeout",
    "config.linkerd.io/proxy-disable-outbound-protocol-detect-timeout",
    "config.linkerd.io/proxy-disable-inbound-protocol-detect-timeout",
    "config.linkerd.io/proxy-enable-native-sidecar",
    "config.linkerd.io/proxy-additional-env",
    "config.alpha.linkerd.io/proxy-wait-before-exit-seconds",
    "config.alpha.linkerd.io/proxy-enable-native-sidecar",
];

pub(super) const BETA_NATIVE: &str = "config.beta.linkerd.io/proxy-enable-native-sidecar";
pub(super) const INIT_IMAGE: &str = "config.linkerd.io/init-image";
pub(super) const INIT_IMAGE_VERSION: &str = "config.linkerd.io/init-image-version";

/// Annotations read only by some releases: the key, the change that brought it, the change
/// that removed it.
pub(super) static ANNOTATIONS: &[(&str, Option<Change>, Option<Change>)] = &[
    (INIT_IMAGE, None, Some(Change::InitFromProxyImage)),
    (INIT_IMAGE_VERSION, None, Some(Change::InitFromProxyImage)),
    (
        "config.linkerd.io/proxy-cpu-ratio-limit",
        Some(Change::Workers),
        None,
    ),
    ("config.linkerd.io/debug-image", Some(Change::Workers), None),
    (
        "config.linkerd.io/debug-image-version",
        Some(Change::Workers),
        None,
    ),
    (
        "config.linkerd.io/debug-image-pull-policy",
        Some(Change::Workers),
        None,
    ),
    (
        "config.linkerd.io/proxy-metrics-hostname-labels",
        Some(Change::HostnameLabels),
        None,
    ),
    (BETA_NATIVE, Some(Change::BetaNative), None),
    (
        "config.linkerd.io/proxy-enable-native-sidecar",
        Some(Change::NativeDefault),
        None,
    ),
    (
        "config.linkerd.io/proxy-additional-env",
        Some(Change::AdditionalEnv),
        None,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn break_points_are_in_order_and_each_change_once() {
        for w in BREAKS.windows(2) {
            assert!(w[0].0 < w[1].0, "{:?} before {:?}", w[0].0, w[1].0);
            assert!((w[0].1 as u32) < (w[1].1 as u32));
        }
        assert_eq!(BREAKS.len(), Change::CollectorTrustDomain as usize + 1);
        assert!(BREAKS.iter().all(|(e, _, _)| *e > super::super::OLDEST));
        assert!(BREAKS.iter().all(|(e, _, _)| *e <= super::super::NEWEST));
    }
}
