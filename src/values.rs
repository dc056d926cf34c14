//! Values: every setting of the registry resolved for one pod (pod annotation > namespace
//! annotation > config), into a named struct the container builders read.

use std::borrow::Cow;
use std::fmt;

use crate::config::Config;
use crate::decision::{Mode, NamespaceInfo, Source};
use crate::mesh::settings::{self, REQUEST_LIMIT_PAIRS, SETTINGS, Value};
use crate::overrides::{self, PortList};
use crate::quote::quote;
use crate::view::PodView;

/// Values that shape the added containers. Two pods with equal `ProxyValues` get byte-identical
/// containers, so the serialised fragments are cached per distinct value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
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
    pub wait_before_exit_seconds: i64,
}

impl<'a> ProxyValues<'a> {
    /// The config's own values (what a pod that overrides nothing gets), in `mode`.
    pub fn from_config(config: &'a Config, mode: Mode) -> ProxyValues<'a> {
        let mut v = ProxyValues {
            ingress: mode == Mode::Ingress,
            ..ProxyValues::default()
        };
        for s in SETTINGS {
            if let Some(slot) = s.slot {
                (slot.set)(&mut v, (s.default)(config));
            }
        }
        v
    }

    pub fn into_owned(self) -> ProxyValues<'static> {
        let mut out = ProxyValues {
            ingress: self.ingress,
            ..ProxyValues::default()
        };
        for slot in SETTINGS.iter().filter_map(|s| s.slot) {
            (slot.set)(&mut out, (slot.get)(&self).into_owned());
        }
        out
    }

    /// The value of the setting whose annotation is `key` (None for a pod-specific setting).
    pub fn get(&self, key: &str) -> Option<Value<'_>> {
        settings::by_annotation(key)
            .and_then(|s| s.slot)
            .map(|slot| (slot.get)(self))
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
    /// The opaque ports the pod or its namespace set explicitly (canonical form).
    pub explicit_opaque: Option<String>,
}

/// The first of `keys` set on the pod, else on its namespace.
fn lookup<'a>(
    pod: &PodView<'a>,
    ns: NamespaceInfo<'a>,
    keys: &[&'static str],
) -> Option<(&'static str, Cow<'a, str>, Source)> {
    keys.iter()
        .find_map(|k| pod.annotation(k).map(|v| (*k, v, Source::Pod)))
        .or_else(|| {
            keys.iter().find_map(|k| {
                ns.annotation(k)
                    .map(|v| (*k, Cow::Borrowed(v), Source::Namespace))
            })
        })
}

/// Resolves every setting of the registry; all the overrides that do not parse are reported.
pub fn resolve<'a>(
    pod: &PodView<'a>,
    ns: NamespaceInfo<'a>,
    config: &'a Config,
    mode: Mode,
) -> Result<Resolved<'a>, Vec<OverrideError>> {
    let mut proxy = ProxyValues {
        ingress: mode == Mode::Ingress,
        ..ProxyValues::default()
    };
    let mut errors = Vec::new();
    let mut defaults_only = true;
    let mut explicit_opaque = None;
    for s in SETTINGS {
        let value = match lookup(pod, ns, s.annotations) {
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
                if let Some(Value::Ports(p)) = value {
                    explicit_opaque = Some(p);
                }
            }
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
            let (key, value, source) = lookup(pod, ns, &[req_key])
                .or_else(|| lookup(pod, ns, &[lim_key]))
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

/// The pod-specific values: ports its containers expose, its opaque ports, its namespace.
pub fn pod_values(
    pod: &PodView<'_>,
    ns: NamespaceInfo<'_>,
    config: &Config,
    explicit_opaque: Option<String>,
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
        Some(list) => (list, None),
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
