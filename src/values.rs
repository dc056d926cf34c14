//! Values: every setting of the registry resolved for one pod (pod annotation > namespace
//! annotation > config), into a named struct the container builders read.

use std::borrow::Cow;
use std::fmt;

use crate::config::Config;
use crate::decision::{Mode, NamespaceInfo, Source};
use crate::mesh::settings::{self, REQUEST_LIMIT_PAIRS, SETTINGS, Value};
use crate::overrides::{self, PortList};
use crate::quote::quote;
use crate::release::{Change, Release};
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
    /// The separate proxy-init image's pull policy (releases before edge-25.11.3).
    pub init_pull_policy: Cow<'a, str>,
    pub debug_image: Cow<'a, str>,
    pub debug_version: Cow<'a, str>,
    pub debug_pull_policy: Cow<'a, str>,
    pub pull_policy: Cow<'a, str>,
    pub cpu_request: Option<Cow<'a, str>>,
    pub cpu_limit: Option<Cow<'a, str>>,
    pub memory_request: Option<Cow<'a, str>>,
    pub memory_limit: Option<Cow<'a, str>>,
    pub ephemeral_request: Option<Cow<'a, str>>,
    pub ephemeral_limit: Option<Cow<'a, str>>,
    pub log_level: Cow<'a, str>,
    pub log_format: Cow<'a, str>,
    pub log_http_headers: Cow<'a, str>,
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
    /// Fixed cores (Linkerd's deprecated `proxy.cores`); `None` or 0: the workers below.
    pub cores: Option<i64>,
    /// Worker threads: 0 and no maximum or ratio means none of the cores variables.
    pub cores_min: i64,
    pub cores_max: Option<i64>,
    pub cores_max_ratio: Option<Cow<'a, str>>,
    pub shutdown_endpoint: bool,
    pub inbound_connect_timeout: Option<Cow<'a, str>>,
    pub outbound_connect_timeout: Option<Cow<'a, str>>,
    pub inbound_discovery_idle_timeout: Option<Cow<'a, str>>,
    pub outbound_discovery_idle_timeout: Option<Cow<'a, str>>,
    pub disable_inbound_detect_timeout: bool,
    pub disable_outbound_detect_timeout: bool,
    pub hostname_labels: bool,
    pub require_identity_ports: Cow<'a, str>,
    pub external_profiles: bool,
    pub gateway: bool,
    pub stream_initial_timeout: Cow<'a, str>,
    pub stream_idle_timeout: Cow<'a, str>,
    pub stream_lifetime: Cow<'a, str>,
    pub inbound_keep_alive_interval: Cow<'a, str>,
    pub inbound_keep_alive_timeout: Cow<'a, str>,
    pub outbound_keep_alive_interval: Cow<'a, str>,
    pub outbound_keep_alive_timeout: Cow<'a, str>,
    /// `linkerd-init`'s `--timeout-close-wait-secs` (0: not passed).
    pub close_wait_seconds: i64,
    /// `config.linkerd.io/proxy-additional-env`: a JSON list of env entries (the namespace's
    /// and the pod's merged by name), "" for none.
    pub additional_env: Cow<'a, str>,
}

impl<'a> ProxyValues<'a> {
    /// The config's own values (what a pod that overrides nothing gets), in `mode`.
    pub fn from_config(config: &'a Config, mode: Mode) -> ProxyValues<'a> {
        let mut v = ProxyValues {
            ingress: mode == Mode::Ingress || config.proxy.is_ingress,
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
    /// Effective opaque ports, for the proxy's env (names resolved to the pod's ports).
    pub opaque_ports: String,
    /// `Some` when the injector adds the opaque-ports annotation: the namespace's value, or the
    /// config's ports the pod exposes (when neither pod nor namespace sets it).
    pub opaque_annotation: Option<String>,
    /// The pod's namespace, for the `linkerd.io/workload-ns` label.
    pub namespace: Option<String>,
    /// Linkerd's owner label (`linkerd.io/proxy-deployment: web`), from the pod's owner.
    pub owner_label: Option<(&'static str, String)>,
    /// The namespace's proxy config annotations the pod lacks, copied onto it.
    pub from_namespace: Vec<(&'static str, String)>,
    /// The first container's capabilities (add, drop), when it sets them: the proxy gets them,
    /// and `linkerd-init` its additions and its drops but NET_ADMIN and NET_RAW.
    pub capabilities: Option<(Vec<String>, Vec<String>)>,
    /// The first container's service-account token mount (name, path, read-only), which the
    /// proxy and `linkerd-init` mount too.
    pub service_account_mount: Option<(String, String, bool)>,
}

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

/// The first of `keys` (in precedence order) that is set, each key read on the pod, else on
/// its namespace when a namespace passes it on ([`Release::namespace_applies`]), and only the
/// keys the release reads: Linkerd
/// fills each key the pod lacks from the namespace, then reads the keys in order.
fn lookup<'a>(
    pod: &PodView<'a>,
    ns: NamespaceInfo<'a>,
    release: &Release,
    keys: &[&'static str],
) -> Option<(&'static str, Cow<'a, str>, Source)> {
    keys.iter().filter(|k| release.reads(k)).find_map(|k| {
        pod.annotation(k).map(|v| (*k, v, Source::Pod)).or_else(|| {
            release
                .namespace_applies(k)
                .then(|| ns.annotation(k))
                .flatten()
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
        ingress: mode == Mode::Ingress || config.proxy.is_ingress,
        ..ProxyValues::default()
    };
    let release = &config.release;
    let mut errors = Vec::new();
    let mut defaults_only = true;
    let mut explicit_opaque = None;
    for s in SETTINGS {
        let value = match lookup(pod, ns, release, s.annotations) {
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
                    && let Some((_, raw, source)) = lookup(pod, ns, release, s.annotations)
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
        && let Some((key, raw, source)) = lookup(pod, ns, release, &[CLOSE_WAIT])
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
        if let Some((key, raw, source)) = lookup(pod, ns, release, &keys) {
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
            && let Some((_, raw, _)) = lookup(pod, ns, release, &[d.from])
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
            let (key, value, source) = lookup(pod, ns, release, &[req_key])
                .or_else(|| lookup(pod, ns, release, &[lim_key]))
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

/// The pod-specific values: the ports it serves, its opaque ports, its namespace.
///
/// As Linkerd computes them: inbound ports are every `containerPort` of the init containers
/// and containers plus the numeric `httpGet` ports of their readiness and liveness probes,
/// de-duplicated and sorted as text (`10250,80,9090`). Opaque ports are the pod's annotation,
/// else its namespace's (which the pod then gets), else the config's list; names in any of
/// them are the pod's container port names (a name the pod does not have is left out). Without an annotation, the config's ports the pod's
/// containers expose (each `containerPort` equal to an item of the list, init containers
/// first, as written) become the pod's annotation and its opaque ports.
pub fn pod_values(
    pod: &PodView<'_>,
    ns: NamespaceInfo<'_>,
    config: &Config,
    explicit_opaque: Option<ExplicitOpaque>,
    cli: bool,
) -> PodValues {
    let all = || port_containers(pod, config);
    let container_ports = || {
        all()
            .flat_map(|c| c.ports.as_deref().unwrap_or(&[]))
            .filter_map(|p| u16::try_from(p.container_port).ok().filter(|p| *p > 0))
    };
    let mut inbound: Vec<String> = container_ports()
        .chain(all().flat_map(|c| {
            [&c.readiness_probe, &c.liveness_probe]
                .into_iter()
                .filter_map(|p| p.as_ref().and_then(|p| p.http_port()))
                .filter_map(|p| u16::try_from(p).ok().filter(|p| *p > 0))
        }))
        .map(|p| p.to_string())
        .collect();
    inbound.sort_unstable();
    inbound.dedup();
    let inbound_ports = inbound.join(",");

    // A name used twice: the last container's port wins, as in Linkerd's map.
    let named = |name: &str| {
        all()
            .flat_map(|c| c.ports.as_deref().unwrap_or(&[]))
            .filter(|p| p.name.as_ref().is_some_and(|n| n.as_str() == name))
            .filter_map(|p| u16::try_from(p.container_port).ok())
            .next_back()
    };
    let (opaque_ports, opaque_annotation) = match explicit_opaque {
        Some(e) => {
            let ann = (e.source == Source::Namespace).then(|| e.raw.clone());
            (e.list.resolve(named).render(), ann)
        }
        None => {
            let exposed = exposed_default_opaque_ports(pod, config);
            if exposed.is_empty() || cli {
                // The config's list as written, as Linkerd's template prints it (its CLI never
                // adds the annotation).
                (config.proxy.opaque_ports.clone(), None)
            } else {
                let list = exposed.join(",");
                (list.clone(), Some(list))
            }
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
    let first = pod.containers().first();
    // The namespace's map first: it usually holds none of these keys.
    let from_namespace = config
        .release
        .namespace_keys()
        .filter(|k| *k != crate::mesh::OPAQUE_PORTS_ANNOTATION)
        .filter_map(|k| ns.annotation(k).map(|v| (k, v)))
        .filter(|(k, _)| !pod.has_annotation(k))
        .map(|(k, v)| (k, v.to_owned()))
        .collect();
    PodValues {
        inbound_ports,
        opaque_ports,
        opaque_annotation,
        namespace,
        owner_label: owner_label(pod),
        from_namespace,
        capabilities: first.and_then(|c| {
            let caps = c.security_context.as_ref()?.capabilities.as_ref()?;
            let list = |l: &Option<Vec<crate::view::BStr<'_>>>| {
                l.iter().flatten().map(|b| b.as_str().to_owned()).collect()
            };
            Some((list(&caps.add), list(&caps.drop)))
        }),
        service_account_mount: first.and_then(|c| {
            c.volume_mounts
                .iter()
                .flatten()
                .find(|m| m.mount_path.as_str() == SERVICE_ACCOUNT_PATH)
                .map(|m| {
                    (
                        m.name.as_str().to_owned(),
                        m.mount_path.as_str().to_owned(),
                        m.read_only.unwrap_or(false),
                    )
                })
        }),
    }
}

/// The `linkerd.io/proxy-<kind>: <name>` label Linkerd gives a pod with exactly one owner
/// (linkerd-viz builds its workload metric labels from it). A ReplicaSet named
/// `<deployment>-<pod-template-hash>` stands for its Deployment, as Linkerd finds by looking the
/// ReplicaSet up; this injector reads that from the pod's own `pod-template-hash` label instead
/// of a ReplicaSet cache. A name that is not a valid label value (longer than 63 characters)
/// gets no label: the API server would refuse the pod.
fn owner_label(pod: &PodView<'_>) -> Option<(&'static str, String)> {
    let raw = pod.metadata.owner_references?;
    let owners: Vec<crate::workload::OwnerRefView<'_>> = serde_json::from_str(raw.get()).ok()?;
    let [owner] = owners.as_slice() else {
        return None;
    };
    let name = owner.name.as_str();
    let (key, name) = match owner.kind.as_str() {
        "ReplicaSet" => {
            let hash = pod
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("pod-template-hash"));
            let deployment = hash.as_deref().and_then(|h| {
                name.strip_suffix(h)
                    .and_then(|n| n.strip_suffix('-'))
                    .filter(|d| !d.is_empty() && !h.is_empty())
            });
            match deployment {
                Some(d) => ("linkerd.io/proxy-deployment", d),
                None => ("linkerd.io/proxy-replicaset", name),
            }
        }
        "CronJob" => return None,
        // A CronJob's Jobs are named `<cronjob>-<scheduled minute>`: Linkerd resolves their
        // pods' owner to the CronJob, for which it writes no label.
        "Job" if cron_job_name(name) => return None,
        kind => return workload_owner_label(kind, name),
    };
    is_label_value(name).then(|| (key, name.to_owned()))
}

/// Whether a Job's name is one the CronJob controller gives (`<cronjob>-<minutes since the
/// epoch>`, 8 digits or more), as this injector cannot look the Job's own owner up.
fn cron_job_name(name: &str) -> bool {
    name.rsplit_once('-').is_some_and(|(base, minute)| {
        !base.is_empty() && minute.len() >= 8 && minute.bytes().all(|b| b.is_ascii_digit())
    })
}

/// The owner label for a workload of `kind` named `name` (`inject` writes it on the workload's
/// pod template, as Linkerd's CLI does); `None` for other kinds and invalid label values.
pub fn workload_owner_label(kind: &str, name: &str) -> Option<(&'static str, String)> {
    let key = match kind {
        "Deployment" => "linkerd.io/proxy-deployment",
        "ReplicaSet" => "linkerd.io/proxy-replicaset",
        "Job" => "linkerd.io/proxy-job",
        "CronJob" => "linkerd.io/proxy-cronjob",
        "DaemonSet" => "linkerd.io/proxy-daemonset",
        "StatefulSet" => "linkerd.io/proxy-statefulset",
        "ReplicationController" => "linkerd.io/proxy-replicationcontroller",
        _ => return None,
    };
    is_label_value(name).then(|| (key, name.to_owned()))
}

/// A valid label value: at most 63 characters, alphanumerics with `-`, `_`, `.` inside.
fn is_label_value(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b.first().is_none_or(u8::is_ascii_alphanumeric)
        && b.last().is_none_or(u8::is_ascii_alphanumeric)
}

/// The opaque-ports annotation Linkerd's injector adds to an object it does not inject (a pod
/// it skips, or a Service), unless the object has one: the namespace's annotation, else the
/// config's default opaque ports the object exposes (a pod's container ports; a Service's
/// ports whose `targetPort`, or the port itself when no `targetPort` is set, is in the list).
/// `None`: nothing to add.
pub fn added_opaque_annotation(
    obj: &PodView<'_>,
    ns: NamespaceInfo<'_>,
    config: &Config,
) -> Option<String> {
    let key = crate::mesh::OPAQUE_PORTS_ANNOTATION;
    if obj.has_annotation(key) {
        return None;
    }
    if let Some(v) = ns.annotation(key) {
        return Some(v.to_owned());
    }
    let defaults: Vec<&str> = config.proxy.opaque_ports.split(',').collect();
    let listed = |p: i64| defaults.contains(&p.to_string().as_str());
    let service_ports = obj
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or(&[])
        .iter()
        .filter(|p| match p.target_port {
            None | Some(crate::view::NumericPort(Some(0))) => listed(p.port),
            Some(crate::view::NumericPort(Some(t))) => listed(t),
            Some(crate::view::NumericPort(None)) => false,
        })
        .map(|p| p.port);
    let mut ports = exposed_default_opaque_ports(obj, config);
    ports.extend(service_ports.map(|p| p.to_string()));
    (!ports.is_empty()).then(|| ports.join(","))
}

/// The containers whose ports the proxy serves: the init containers (from edge-25.12.2), then
/// the containers.
fn port_containers<'p, 'a>(
    pod: &'p PodView<'a>,
    config: &Config,
) -> impl DoubleEndedIterator<Item = &'p crate::view::ContainerView<'a>> {
    let inits = match config.release.has(Change::InitPorts) {
        true => pod.init_containers(),
        false => &[],
    };
    inits.iter().chain(pod.containers())
}

/// The config's default opaque ports the pod exposes: each `containerPort` (init containers
/// first, as written, repeats kept) equal to an item of the list, as Linkerd's webhook filters
/// them.
fn exposed_default_opaque_ports(pod: &PodView<'_>, config: &Config) -> Vec<String> {
    let defaults: Vec<&str> = config.proxy.opaque_ports.split(',').collect();
    port_containers(pod, config)
        .flat_map(|c| c.ports.as_deref().unwrap_or(&[]))
        .map(|p| p.container_port.to_string())
        .filter(|p| defaults.contains(&p.as_str()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_jobs_are_told_by_their_names() {
        assert!(cron_job_name("report-29403360"));
        assert!(cron_job_name("a-b-123456789"));
        for other in [
            "migrate",
            "migrate-1",
            "backup-v2",
            "-29403360",
            "job-2940336x",
        ] {
            assert!(!cron_job_name(other), "{other}");
        }
    }
}
