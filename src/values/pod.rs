//! The pod-specific values: the ports the pod serves and its opaque ports, its namespace, its
//! owner label, the namespace annotations it gets, and what of its first container the proxy
//! shares; and the opaque-ports annotation of objects not injected.

use super::{ExplicitOpaque, SERVICE_ACCOUNT_PATH};
use crate::config::Config;
use crate::release::Change;
use crate::view::PodView;
use crate::view::{NamespaceInfo, Source};

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
    // The namespace's map first: it usually holds none of these keys (then its few
    // annotations are all that is looked at).
    let passes_on = match ns {
        NamespaceInfo::Known {
            annotations: Some(a),
            ..
        } => a.keys().any(|k| config.release.namespace_applies(k)),
        _ => false,
    };
    let from_namespace = config
        .release
        .namespace_keys()
        .filter(|_| passes_on)
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
