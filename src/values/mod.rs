//! Values: every setting of the registry resolved for one pod (pod annotation > namespace
//! annotation > config), into a named struct the container builders read.

use std::borrow::Cow;
use std::fmt;

use crate::config::Config;
use crate::mesh::Mode;
use crate::mesh::settings::{self, REQUEST_LIMIT_PAIRS, SETTINGS, Value};
use crate::overrides::{self, PortList};
use crate::quote::quote;
use crate::release::{Change, Release};
use crate::view::PodView;
use crate::view::{NamespaceInfo, Source};

mod pod;

pub use pod::{PodValues, added_opaque_annotation, pod_values, workload_owner_label};

pub use crate::mesh::ProxyValues;

/// linkerd-init's close-wait timeout annotation.
const CLOSE_WAIT: &str = "config.linkerd.io/close-wait-timeout";
/// The proxy's additional env annotation (merged across namespace and pod).
const ADDITIONAL_ENV: &str = "config.linkerd.io/proxy-additional-env";

/// Where Kubernetes mounts the service account's token.
pub const SERVICE_ACCOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// An override annotation whose value does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideError {
    pub key: String,
    /// The value, quoted and bounded ([`quote`]).
    pub value: String,
    pub source: Source,
    pub reason: String,
}

impl fmt::Display for OverrideError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "annotation {} = {} on the {} is not valid: {}",
            self.key, self.value, self.source, self.reason
        )
    }
}

/// Every setting resolved for one pod.
#[derive(Debug)]
pub struct Resolved<'a> {
    pub proxy: ProxyValues<'a>,
    /// True when no annotation changed a container (the start-up fragments apply).
    pub defaults_only: bool,
    /// The opaque ports the pod or its namespace set explicitly.
    pub explicit_opaque: Option<ExplicitOpaque>,
}

/// An opaque-ports annotation found on the pod or its namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplicitOpaque {
    /// The list, parsed (names not yet resolved).
    pub list: PortList,
    pub source: Source,
    /// The value as written, which the pod gets when it came from the namespace.
    pub raw: String,
}

/// Every annotation key the registry reads (a setting's, and those values are derived from).
static REGISTRY_KEYS: std::sync::LazyLock<std::collections::HashSet<&'static str>> =
    std::sync::LazyLock::new(|| {
        SETTINGS
            .iter()
            .flat_map(|s| {
                s.annotations
                    .iter()
                    .copied()
                    .chain(s.derived.map(|d| d.from))
            })
            .chain([CLOSE_WAIT, ADDITIONAL_ENV])
            .collect()
    });

/// The annotations of the pod and of its namespace that the registry reads, found in one pass
/// over each (a pod usually has none of them: every lookup is then a look at an empty list,
/// not a scan of the pod's annotations for each of the registry's keys).
struct Found<'a> {
    pod: Vec<(&'a str, Cow<'a, str>)>,
    ns: Vec<(&'a str, &'a str)>,
}

impl<'a> Found<'a> {
    fn new(pod: &PodView<'a>, ns: NamespaceInfo<'a>) -> Found<'a> {
        let pod = pod
            .metadata
            .annotations
            .iter()
            .flat_map(|a| a.0.iter())
            .filter_map(|(k, _)| REGISTRY_KEYS.get(k.as_str()).copied())
            .filter_map(|k| Some((k, pod.annotation(k)?)))
            .collect();
        let ns = match ns {
            NamespaceInfo::Known {
                annotations: Some(a),
                ..
            } => a
                .iter()
                .filter(|(k, _)| REGISTRY_KEYS.contains(k.as_str()))
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            _ => Vec::new(),
        };
        Found { pod, ns }
    }

    /// The first of `keys` (in precedence order) that is set, each key read on the pod, else
    /// on its namespace when a namespace passes it on ([`Release::namespace_applies`]), and
    /// only the keys the release reads: Linkerd fills each key the pod lacks from the
    /// namespace, then reads the keys in order.
    fn lookup(
        &self,
        release: &Release,
        keys: &[&'static str],
    ) -> Option<(&'static str, Cow<'a, str>, Source)> {
        if self.pod.is_empty() && self.ns.is_empty() {
            return None;
        }
        keys.iter().filter(|k| release.reads(k)).find_map(|k| {
            let on_pod = self.pod.iter().find(|(key, _)| key == k);
            on_pod
                .map(|(_, v)| (*k, v.clone(), Source::Pod))
                .or_else(|| {
                    let (_, v) = self.ns.iter().find(|(key, _)| key == k)?;
                    release.namespace_applies(k).then_some((
                        *k,
                        Cow::Borrowed(*v),
                        Source::Namespace,
                    ))
                })
        })
    }
}

/// Resolves every setting of the registry; all the overrides that do not parse are reported.
pub fn resolve<'a>(
    pod: &PodView<'a>,
    ns: NamespaceInfo<'a>,
    config: &'a Config,
    mode: Mode,
) -> Result<Resolved<'a>, Vec<OverrideError>> {
    let mut proxy = ProxyValues {
        ingress: mode == Mode::Ingress || config.proxy.is_ingress,
        ..ProxyValues::default()
    };
    let release = &config.release;
    let mut errors = Vec::new();
    let mut defaults_only = true;
    let mut explicit_opaque = None;
    let found = Found::new(pod, ns);
    let lookup = |keys: &[&'static str]| found.lookup(release, keys);
    for s in SETTINGS {
        let value = match lookup(s.annotations) {
            Some((key, raw, source)) => match s.parser.parse(raw.clone()) {
                Ok(v) => Some(v),
                Err(reason) => {
                    errors.push(OverrideError {
                        key: key.to_owned(),
                        value: quote(&raw),
                        source,
                        reason,
                    });
                    None
                }
            },
            None => None,
        };
        match s.slot {
            Some(slot) => {
                defaults_only &= value.is_none();
                (slot.set)(&mut proxy, value.unwrap_or_else(|| (s.default)(config)));
            }
            // Opaque ports only change the pod-specific part of the patch.
            None => {
                if value.is_some()
                    && let Some((_, raw, source)) = lookup(s.annotations)
                {
                    explicit_opaque = Some(ExplicitOpaque {
                        list: PortList::parse_named(&raw).unwrap_or_default(),
                        source,
                        raw: raw.into_owned(),
                    });
                }
            }
        }
    }
    // The additional env of the namespace and of the pod are merged (by name, the pod's
    // winning), as Linkerd merges them, where any other setting takes one or the other.
    if let (true, Some(on_pod), Some(on_ns)) = (
        release.reads(ADDITIONAL_ENV),
        pod.annotation(ADDITIONAL_ENV),
        ns.annotation(ADDITIONAL_ENV),
    ) && let (Ok(p), Ok(mut n)) = (
        overrides::parse_env_list(&on_pod),
        overrides::parse_env_list(on_ns),
    ) {
        overrides::merge_env(&mut n, p);
        proxy.additional_env = Cow::Owned(serde_json::to_string(&n).unwrap_or_default());
        defaults_only = false;
    }
    // A close-wait timeout needs linkerd-init to run as root (Linkerd's chart fails without,
    // from edge-25.1.1).
    if proxy.close_wait_seconds > 0
        && !config.proxy_init.run_as_root
        && release.has(Change::PodUid)
        && let Some((key, raw, source)) = lookup(&[CLOSE_WAIT])
    {
        errors.push(OverrideError {
            key: key.to_owned(),
            value: quote(&raw),
            source,
            reason: "needs proxyInit.runAsRoot: true in the config (as Linkerd's chart requires)"
                .into(),
        });
    }
    // Before edge-26.5.2 Linkerd's chart refuses a native sidecar that waits before it exits.
    if proxy.native_sidecar
        && proxy.wait_before_exit_seconds > 0
        && !release.has(Change::NativeDefault)
    {
        let keys = settings::by_values_key("proxy.nativeSidecar")
            .into_iter()
            .chain(settings::by_values_key("proxy.waitBeforeExitSeconds"))
            .flat_map(|s| s.annotations.iter().copied())
            .collect::<Vec<_>>();
        if let Some((key, raw, source)) = lookup(&keys) {
            errors.push(OverrideError {
                key: key.to_owned(),
                value: quote(&raw),
                source,
                reason: format!(
                    "a native sidecar cannot wait before it exits in {release} (its chart refuses both)"
                ),
            });
        }
    }
    // Values another annotation also sets (the CPU request and limit set the proxy's cores).
    for s in SETTINGS {
        if let (Some(d), Some(slot)) = (s.derived, s.slot)
            && (d.applies)(&config.release)
            && let Some((_, raw, _)) = lookup(&[d.from])
        {
            (slot.set)(&mut proxy, (d.value)(raw.trim()));
        }
    }
    for (req_key, lim_key) in REQUEST_LIMIT_PAIRS {
        let quantity = |key| match proxy.get(key) {
            Some(Value::Opt(Some(q))) => Some(q.into_owned()),
            _ => None,
        };
        if let (Some(rq), Some(lm)) = (quantity(req_key), quantity(lim_key))
            && let (Ok(a), Ok(b)) = (
                overrides::parse_quantity(&rq),
                overrides::parse_quantity(&lm),
            )
            && a > b
        {
            let (key, value, source) = lookup(&[req_key])
                .or_else(|| lookup(&[lim_key]))
                .map(|(k, v, s)| (k.to_owned(), quote(&v), s))
                .unwrap_or((req_key.to_owned(), quote(&rq), Source::Pod));
            errors.push(OverrideError {
                key,
                value,
                source,
                reason: format!("the request {rq} is larger than the limit {lm}"),
            });
        }
    }
    if errors.is_empty() {
        Ok(Resolved {
            proxy,
            defaults_only,
            explicit_opaque,
        })
    } else {
        Err(errors)
    }
}
