//! Which keys of Linkerd's chart values are of which kind for a release: ignored (they do not
//! shape injected pods), fixed (this injector writes only the chart's default), read as one
//! value, or not the release's own.

use serde_json::Value as Json;

use crate::release::{Change, Release};

/// Whether `path` is a key of the release's chart (a key of a later release, or one an
/// earlier release renamed, is not read by that release's injector).
pub(super) fn of_release(path: &str, r: &Release) -> bool {
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
pub(super) const IGNORED: &[&str] = &[
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
pub(super) fn fixed(path: &str, release: &Release) -> Option<Json> {
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

/// Subtrees read as one value (maps or lists compared whole with `fixed`, or whose keys
/// are free-form).
pub(super) const LEAF_MAPS: &[&str] = &[
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
