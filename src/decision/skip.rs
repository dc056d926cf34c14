//! Why a pod is not injected: every reason reads as a sentence, with a stable code for
//! metrics and logs.

use std::fmt;

use super::Source;
use crate::config::{BadOverridePolicy, Config, RefusalPolicy};
use crate::mesh::{DEBUG_CONTAINER, INIT_CONTAINER};
use crate::mesh::{INJECT_ANNOTATION, PROXY_CONTAINER};
use crate::podsecurity::{Enforced, Violation};
use crate::quota::{Kind, Refusal};
use crate::quote::Quoted;
use crate::values::OverrideError;

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
    /// Another mesh's sidecar is there; says what gave it away.
    OtherMesh(String),
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
    /// `spec.containers` is null, absent or empty: there is no app to put the proxy next to.
    NoContainers,
    /// Token projection is off and the pod does not mount its service-account token, which
    /// the proxy would then prove its identity with.
    NoServiceAccountToken,
    InvalidOverrides(Vec<OverrideError>),
    /// The pod already has containers or volumes named like those injection adds.
    NameClash(Vec<String>),
    /// The namespace's ResourceQuotas or LimitRanges would refuse the containers injection adds.
    ResourceLimits {
        namespace: String,
        refusals: Vec<Refusal>,
    },
    /// The namespace's PodSecurity level would refuse the injected pod (not the pod as it is).
    PodSecurity {
        namespace: String,
        enforced: Enforced,
        violations: Vec<Violation>,
    },
}

impl SkipReason {
    /// A skip the user must hear about: a warning on the answer (or a denial, by policy), an
    /// Event, a warning line in the log. Ordinary skips (not annotated, disabled) are silent.
    pub fn warns(&self) -> bool {
        matches!(
            self,
            SkipReason::InvalidOverrides(_)
                | SkipReason::NameClash(_)
                | SkipReason::PodSecurity { .. }
                | SkipReason::ResourceLimits { .. }
        )
    }

    /// Whether `config` refuses the pod for this reason instead of admitting it uninjected
    /// (for a reason that [`warns`](Self::warns)).
    pub fn denies(&self, config: &Config) -> bool {
        match self {
            SkipReason::PodSecurity { .. } | SkipReason::ResourceLimits { .. } => {
                config.api_server_refusal == RefusalPolicy::Deny
            }
            _ => config.bad_override == BadOverridePolicy::Deny,
        }
    }

    /// A short stable name for metrics and logs.
    pub fn code(&self) -> &'static str {
        match self {
            SkipReason::NotAPod { .. } => "not_a_pod",
            SkipReason::NotCreate { .. } => "not_create",
            SkipReason::NoObject => "no_object",
            SkipReason::UnreadablePod { .. } => "unreadable_pod",
            SkipReason::AlreadyInjected => "already_injected",
            SkipReason::OtherMesh(_) => "other_mesh",
            SkipReason::DisabledOnPod => "disabled_on_pod",
            SkipReason::DisabledOnNamespace { .. } => "disabled_on_namespace",
            SkipReason::NotAnnotated { .. } => "not_annotated",
            SkipReason::UnknownValue { .. } => "unknown_inject_value",
            SkipReason::HostNetwork => "host_network",
            SkipReason::NoContainers => "no_containers",
            SkipReason::NoServiceAccountToken => "no_service_account_token",
            SkipReason::InvalidOverrides(_) => "invalid_override",
            SkipReason::NameClash(_) => "name_clash",
            SkipReason::PodSecurity { .. } => "pod_security",
            SkipReason::ResourceLimits { .. } => "resource_limits",
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
            SkipReason::OtherMesh(what) => {
                write!(f, "the pod belongs to another mesh (it has {what})")
            }
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
                "{INJECT_ANNOTATION}: {} on the {source} is not understood \
                 (expected enabled, disabled or ingress)",
                Quoted(value)
            ),
            SkipReason::NoContainers => f.write_str(
                "the pod has no containers (spec.containers is null or empty); there is no app to mesh",
            ),
            SkipReason::NoServiceAccountToken => f.write_str(
                "the pod does not mount its service-account token (automountServiceAccountToken: \
                 false), and with identity.serviceAccountTokenProjection: false the proxy needs it \
                 for its identity",
            ),
            SkipReason::NameClash(names) => write!(
                f,
                "the proxy was not added because the pod already has {}, which injection would add \
                 again (the API server would refuse the pod); rename it or remove it",
                names.join(", ")
            ),
            SkipReason::HostNetwork => f.write_str(
                "the pod uses hostNetwork: true; the proxy cannot redirect the host's traffic",
            ),
            SkipReason::PodSecurity {
                namespace,
                enforced,
                violations,
            } => {
                write!(
                    f,
                    "the proxy was not added because namespace {namespace} enforces PodSecurity \
                     {enforced}, which would refuse the injected pod: "
                )?;
                for (i, v) in violations.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{v}")?;
                }
                write!(f, "; to mesh it, {}", pod_security_fix(violations))
            }
            SkipReason::ResourceLimits {
                namespace,
                refusals,
            } => {
                write!(
                    f,
                    "the proxy was not added because the API server would refuse the injected pod \
                     in namespace {namespace}: "
                )?;
                for (i, r) in refusals.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{r}")?;
                }
                write!(f, "; to mesh it, {}", limits_fix(namespace, refusals))
            }
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

/// How to mesh a pod PodSecurity would refuse once injected: one fix per container at fault,
/// then the ways out that fit every case.
fn pod_security_fix(violations: &[Violation]) -> String {
    let at = |name: &str| violations.iter().any(|v| v.container == name);
    let mut fixes = Vec::new();
    if at(INIT_CONTAINER) {
        fixes.push(
            "install linkerd-cni and set cniEnabled: true (linkerd-init then gives way to a \
             network validator that complies with restricted)",
        );
    }
    if at(PROXY_CONTAINER) {
        fixes.push("give the proxy a non-root user (config.linkerd.io/proxy-uid)");
    }
    if at(DEBUG_CONTAINER) {
        fixes.push("remove config.linkerd.io/enable-debug-sidecar");
    }
    fixes.push(
        "or label the namespace with a laxer pod-security.kubernetes.io/enforce; if PodSecurity \
         exempts these pods, set apiServerRefusal: off in the injector's config",
    );
    fixes.join("; ")
}

/// How to mesh a pod the namespace's quotas or limit ranges would refuse once injected: the
/// proxy's resource annotations on the namespace (linkerd-init takes the proxy's resources).
fn limits_fix(namespace: &str, refusals: &[Refusal]) -> String {
    let mut wanted: Vec<(Kind, &str)> = refusals.iter().filter_map(Refusal::wanted).collect();
    wanted.sort();
    wanted.dedup();
    let mut fix = String::new();
    if !wanted.is_empty() {
        let keys: Vec<String> = wanted
            .iter()
            .map(|(kind, res)| {
                let (word, example) = match (kind, *res) {
                    (Kind::Request, "cpu") => ("request", "100m"),
                    (Kind::Limit, "cpu") => ("limit", "1"),
                    (Kind::Request, _) => ("request", "20Mi"),
                    (Kind::Limit, _) => ("limit", "250Mi"),
                };
                format!("config.linkerd.io/proxy-{res}-{word}={example}")
            })
            .collect();
        fix.push_str(&format!(
            "give the proxy those resources on the namespace (linkerd-init takes the proxy's), \
             e.g. kubectl annotate namespace {namespace} {}, or add a LimitRange with defaults",
            keys.join(" ")
        ));
    }
    if refusals.iter().any(|r| matches!(r, Refusal::Range { .. })) {
        if !fix.is_empty() {
            fix.push_str("; ");
        }
        fix.push_str(
            "set the proxy's resources within the LimitRange (config.linkerd.io/proxy-cpu-request, \
             proxy-cpu-limit, proxy-memory-request, proxy-memory-limit on the namespace)",
        );
    }
    fix.push_str("; if the API server admits these pods anyway, set apiServerRefusal: off in the injector's config");
    fix
}
