//! Pure decision: (namespace annotations, pod view, operation, config) → inject or skip, and
//! why. The effective values come from `values`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;

use crate::config::{Config, RefusalPolicy};
use crate::containers;
use crate::mesh::{
    INJECT_ANNOTATION, ISTIO_INIT_CONTAINER, ISTIO_INIT_IMAGE, ISTIO_PROXY_CONTAINER,
    ISTIO_PROXY_IMAGE, LINKERD_PROXY_IMAGE, LINKERD_PROXY_INIT_IMAGE, PROXY_CONTAINER,
};
use crate::podsecurity::{self, Enforced};
use crate::quote::Quoted;
use crate::values::{self, PodValues, ProxyValues};
use crate::view::PodView;
use k8s_openapi::api::core::v1::SecurityContext;

mod skip;
pub use skip::SkipReason;

pub use crate::mesh::Mode;
pub use crate::view::{NamespaceInfo, Source};

/// Where the admission core finds a pod's namespace: the reflector's store in a cluster, a
/// file offline, a map in tests.
pub trait NamespaceLookup: Send + Sync {
    fn get(&self, name: &str) -> Option<Arc<Namespace>>;

    /// The namespace's ResourceQuotas and LimitRanges (none when the lookup does not follow
    /// them).
    fn limits(&self, _name: &str) -> crate::quota::NamespaceLimits {
        crate::quota::NamespaceLimits::default()
    }
}

impl NamespaceLookup for HashMap<String, Arc<Namespace>> {
    fn get(&self, name: &str) -> Option<Arc<Namespace>> {
        HashMap::get(self, name).cloned()
    }
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
    /// `inject --manual` (Linkerd's CLI), not the webhook: no opaque-ports annotation is
    /// computed from the pod's ports (Linkerd's webhook adds it, its CLI does not).
    pub cli: bool,
    /// A manifest (offline `inject`), not an object the API server admits: it carries no
    /// service-account token mount (the API server adds it at create time), so only
    /// `automountServiceAccountToken: false` tells that the proxy would have no token, as
    /// Linkerd's CLI judges it.
    pub manifest: bool,
}

impl RequestFacts<'_> {
    pub const POD_CREATE: RequestFacts<'static> = RequestFacts {
        group: "",
        version: "v1",
        kind: "Pod",
        operation: "CREATE",
        cli: false,
        manifest: false,
    };
    /// A pod template of a manifest, decided as the webhook would decide its pods.
    pub const MANIFEST_POD_CREATE: RequestFacts<'static> = RequestFacts {
        manifest: true,
        ..RequestFacts::POD_CREATE
    };
    pub const CLI_POD_CREATE: RequestFacts<'static> = RequestFacts {
        cli: true,
        manifest: true,
        ..RequestFacts::POD_CREATE
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

/// Another mesh's mark on the pod: Istio's sidecar by name or image as Linkerd's
/// `HasExistingSidecars` recognises it (`istio-proxy` or a `proxyv2` image among containers and
/// init containers, `istio-init` or a `proxy_init` image among init containers); Istio's
/// status annotation alone is no such mark.
fn other_mesh(pod: &PodView<'_>) -> Option<String> {
    let sidecar = pod
        .init_containers()
        .iter()
        .chain(pod.containers())
        .find(|c| {
            c.name.as_str() == ISTIO_PROXY_CONTAINER || c.image_starts_with(ISTIO_PROXY_IMAGE)
        });
    let init = pod
        .init_containers()
        .iter()
        .find(|c| c.name.as_str() == ISTIO_INIT_CONTAINER || c.image_starts_with(ISTIO_INIT_IMAGE));
    sidecar
        .or(init)
        .map(|c| format!("Istio's container {}", Quoted(c.name.as_str())))
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
    // Linkerd's proxy by name, or its images under any name (as Linkerd's
    // `HasExistingSidecars`): a second proxy would break the pod.
    let linkerd_image = pod
        .init_containers()
        .iter()
        .chain(pod.containers())
        .any(|c| c.image_starts_with(LINKERD_PROXY_IMAGE))
        || pod
            .init_containers()
            .iter()
            .any(|c| c.image_starts_with(LINKERD_PROXY_INIT_IMAGE));
    if has_proxy(pod.containers()) || has_proxy(pod.init_containers()) || linkerd_image {
        return Decision::Skip(SkipReason::AlreadyInjected);
    }
    if let Some(what) = other_mesh(pod) {
        return Decision::Skip(SkipReason::OtherMesh(what));
    }
    // As Linkerd: a namespace value it does not know stops injection even for a pod that
    // enables it.
    if let Some(v) = ns.annotation(INJECT_ANNOTATION)
        && !matches!(v, "" | "enabled" | "ingress" | "disabled")
    {
        return Decision::Skip(SkipReason::UnknownValue {
            value: v.to_owned(),
            source: Source::Namespace,
        });
    }
    // An empty value on the pod says nothing (Linkerd reads it as absent).
    let on_pod = pod.annotation(INJECT_ANNOTATION).filter(|v| !v.is_empty());
    let (value, source): (Cow<'a, str>, Source) = match on_pod {
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
    if pod.containers().is_empty() {
        return Decision::Skip(SkipReason::NoContainers);
    }
    // Without token projection the proxy reads the pod's own token: as Linkerd, the pod must
    // mount it (on its first container, where the API server's ServiceAccount plugin puts it).
    if !config.service_account_token_projection {
        let automount_off = pod
            .spec
            .as_ref()
            .and_then(|s| s.automount_service_account_token)
            == Some(false);
        let mounted = pod.containers().first().is_some_and(|c| {
            c.volume_mounts
                .iter()
                .flatten()
                .any(|m| m.mount_path.as_str() == values::SERVICE_ACCOUNT_PATH)
        });
        if automount_off || !(mounted || req.manifest) {
            return Decision::Skip(SkipReason::NoServiceAccountToken);
        }
    }
    match values::resolve(pod, ns, config, mode) {
        Ok(r) => {
            let clashes = containers::clashes(pod, &r.proxy, config);
            if !clashes.is_empty() {
                return Decision::Skip(SkipReason::NameClash(clashes));
            }
            let podv = values::pod_values(pod, ns, config, r.explicit_opaque, req.cli);
            if let Some(refused) = refused_by_pod_security(ns, &r.proxy, &podv, config) {
                return Decision::Skip(refused);
            }
            if let Some(refused) = refused_by_limits(ns, &r.proxy, config) {
                return Decision::Skip(refused);
            }
            Decision::Inject(Plan {
                mode,
                source,
                proxy: r.proxy,
                pod: podv,
                defaults_only: r.defaults_only,
            })
        }
        Err(errors) => Decision::Skip(SkipReason::InvalidOverrides(errors)),
    }
}

/// The namespace's PodSecurity verdict on the containers injection would add, when it would
/// refuse the injected pod and not the pod as it is (the first app container's capabilities,
/// which the proxy copies, pass). `None` with `apiServerRefusal: off`.
fn refused_by_pod_security(
    ns: NamespaceInfo<'_>,
    proxy: &ProxyValues<'_>,
    pod: &PodValues,
    config: &Config,
) -> Option<SkipReason> {
    if config.api_server_refusal == RefusalPolicy::Off {
        return None;
    }
    let enforced = Enforced::from_labels(|k| ns.label(k))?;
    let added = containers::added_security(proxy, config, pod.capabilities.as_ref());
    // The app's own capabilities, alone: if they fail, the pod is refused anyway.
    let app = SecurityContext {
        capabilities: Some(k8s_openapi::api::core::v1::Capabilities {
            add: pod.capabilities.as_ref().map(|c| c.0.clone()),
            drop: pod.capabilities.as_ref().map(|c| c.1.clone()),
        }),
        allow_privilege_escalation: Some(false),
        ..Default::default()
    };
    let app_check = [podsecurity::Added {
        name: "app",
        security: Some(&app),
        host_ports: &[],
    }];
    if !podsecurity::check(enforced, &app_check).is_empty() {
        return None;
    }
    let violations = podsecurity::check(enforced, &views_of(&added));
    (!violations.is_empty()).then(|| SkipReason::PodSecurity {
        namespace: match ns {
            NamespaceInfo::Known { name, .. } => name.to_owned(),
            _ => String::new(),
        },
        enforced,
        violations,
    })
}

/// The namespace's ResourceQuotas and LimitRanges' verdict on the resources of the containers
/// injection would add. `None` with `apiServerRefusal: off`.
fn refused_by_limits(
    ns: NamespaceInfo<'_>,
    proxy: &ProxyValues<'_>,
    config: &Config,
) -> Option<SkipReason> {
    if config.api_server_refusal == RefusalPolicy::Off {
        return None;
    }
    let limits = ns.limits().filter(|l| !l.is_empty())?;
    let refusals = crate::quota::check(limits, &containers::added_resources(proxy, config));
    (!refusals.is_empty()).then(|| SkipReason::ResourceLimits {
        namespace: match ns {
            NamespaceInfo::Known { name, .. } => name.to_owned(),
            _ => String::new(),
        },
        refusals,
    })
}

/// What the API server's own admission does to the injected pods of namespace `ns`: a pod that
/// complies with whatever the namespace enforces (its container drops every capability),
/// decided as if created now; `Some` when the namespace's PodSecurity level, quotas or limit
/// ranges keep it from the mesh.
pub fn namespace_blocked(ns: NamespaceInfo<'_>, config: &Config) -> Option<SkipReason> {
    const POD: &str = r#"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"app","securityContext":{"capabilities":{"drop":["ALL"]}}}]}}"#;
    let view = PodView::parse(POD).ok()?;
    match decide(&RequestFacts::POD_CREATE, &view, ns, config) {
        Decision::Skip(
            reason @ (SkipReason::PodSecurity { .. } | SkipReason::ResourceLimits { .. }),
        ) => Some(reason),
        _ => None,
    }
}

fn views_of<'a>(
    added: &'a [(&'static str, Option<SecurityContext>)],
) -> Vec<podsecurity::Added<'a>> {
    added
        .iter()
        .map(|(name, sc)| podsecurity::Added {
            name,
            security: sc.as_ref(),
            host_ports: &[],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

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
                labels: None,
                limits: None,
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
                labels: None,
                limits: None,
            },
            &c,
        );
        assert_eq!(d, Decision::Skip(SkipReason::DisabledOnPod));
        let pod = r#"{"metadata":{"annotations":{"config.linkerd.io/proxy-log-level":"trace"}},"spec":{"containers":[{"name":"app"}]}}"#;
        let Decision::Inject(p) = decide_json(
            pod,
            NamespaceInfo::Known {
                name: "x",
                annotations: Some(&a),
                labels: None,
                limits: None,
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
            "config.linkerd.io/proxy-cpu-request":"lots","config.linkerd.io/admin-port":"70000"}},"spec":{"containers":[{"name":"app"}]}}"#;
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
            "config.linkerd.io/proxy-cpu-request":"2","config.linkerd.io/proxy-cpu-limit":"500m"}},"spec":{"containers":[{"name":"app"}]}}"#;
        let d = decide_json(pod, NamespaceInfo::None, &c);
        assert!(
            matches!(d, Decision::Skip(SkipReason::InvalidOverrides(_))),
            "{d:?}"
        );
    }

    #[test]
    fn every_listed_override_key_is_parsed() {
        let c = Config::default();
        for key in crate::mesh::override_keys().filter(|k| c.release.reads(k)) {
            let pod = serde_json::json!({"metadata": {"annotations": {
                "linkerd.io/inject": "enabled", *key: "\u{1} not valid"}}, "spec": {"containers": [{"name": "app"}]}})
            .to_string();
            let d = decide_json(&pod, NamespaceInfo::None, &c);
            let Decision::Skip(SkipReason::InvalidOverrides(e)) = d else {
                panic!("{key}: a bad value was not reported: {d:?}")
            };
            assert_eq!(e[0].key, key);
        }
    }

    #[test]
    fn non_pod_and_non_create() {
        let facts = RequestFacts {
            group: "apps",
            version: "v1",
            kind: "Deployment",
            operation: "CREATE",
            cli: false,
            manifest: false,
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
