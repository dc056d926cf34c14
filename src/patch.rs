//! Pure patch building: the RFC 6902 JSON patch that adds the proxy to a pod.
//!
//! The containers and volumes the injector adds are built once per distinct set of values as
//! typed k8s-openapi objects and serialised to JSON ([`Fragments`]); per request, the patch is
//! written by splicing those bytes together with the few pod-specific values. The user's pod is
//! never re-serialised.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource, ExecAction,
    HTTPGetAction, Lifecycle, LifecycleHandler, ObjectFieldSelector, Probe, ProjectedVolumeSource,
    ResourceRequirements, SeccompProfile, SecurityContext, ServiceAccountTokenProjection, Volume,
    VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::config::Config;
use crate::decision::{
    DEBUG_CONTAINER, INIT_CONTAINER, INJECT_ANNOTATION, Mode, OPAQUE_PORTS_ANNOTATION,
    PROXY_CONTAINER, Plan, ProxyValues, Source,
};
use crate::view::PodView;

pub const END_ENTITY_VOLUME: &str = "linkerd-identity-end-entity";
pub const END_ENTITY_PATH: &str = "/var/run/linkerd/identity/end-entity";
pub const TOKEN_VOLUME: &str = "linkerd-identity-token";
pub const TOKEN_DIR: &str = "/var/run/secrets/tokens";
pub const TOKEN_AUDIENCE: &str = "identity.l5d.io";
pub const XTABLES_VOLUME: &str = "linkerd-proxy-init-xtables-lock";
pub const CREATED_BY: &str = concat!("proxy-injector/", env!("CARGO_PKG_VERSION"));

/// JSON with holes: `parts[0] slot0 parts[1] slot1 parts[2]`. Each slot is an optional env
/// entry of the proxy container: written as `,{"name":..,"value":..}`, or left out when empty
/// (the API server drops empty env values, so the stored pod and the patch agree).
#[derive(Debug, Clone)]
struct Template {
    parts: Vec<Vec<u8>>,
}

const SLOT_INBOUND_PORTS: usize = 0;
const SLOT_OPAQUE_PORTS: usize = 1;
const SLOTS: usize = 2;
const SLOT_ENV: [&str; SLOTS] = [
    "LINKERD2_PROXY_INBOUND_PORTS",
    "LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION",
];

fn slot_marker(i: usize) -> EnvVar {
    // Control characters cannot appear in any validated value, so the marker is unambiguous.
    EnvVar {
        name: format!("\u{1}slot{i}\u{1}"),
        ..Default::default()
    }
}

impl Template {
    fn new(json: Vec<u8>) -> Template {
        let mut parts = Vec::with_capacity(SLOTS + 1);
        let mut rest: &[u8] = &json;
        for i in 0..SLOTS {
            let mut marker = b",".to_vec();
            marker.extend_from_slice(&to_json(&slot_marker(i)));
            match find(rest, &marker) {
                Some(at) => {
                    parts.push(rest[..at].to_vec());
                    rest = &rest[at + marker.len()..];
                }
                None => parts.push(Vec::new()),
            }
        }
        parts.push(rest.to_vec());
        Template { parts }
    }

    fn write(&self, out: &mut Vec<u8>, slots: [&str; SLOTS]) {
        for (i, part) in self.parts.iter().enumerate() {
            out.extend_from_slice(part);
            if i < SLOTS && !slots[i].is_empty() {
                out.extend_from_slice(b",{\"name\":");
                write_json_str(out, SLOT_ENV[i]);
                out.extend_from_slice(b",\"value\":");
                write_json_str(out, slots[i]);
                out.push(b'}');
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The serialised pieces the patch is made of, for one set of proxy values.
#[derive(Debug, Clone)]
pub struct Fragments {
    proxy: Template,
    init: Option<Vec<u8>>,
    debug: Option<Vec<u8>>,
    volumes: Vec<Vec<u8>>,
    native_sidecar: bool,
    proxy_version: Vec<u8>,
    control_plane_ns: Vec<u8>,
    created_by: Vec<u8>,
}

fn to_json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    // Serialising k8s-openapi types into a Vec cannot fail (no maps with non-string keys).
    serde_json::to_vec(v).unwrap_or_default()
}

fn json_string(s: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(s.len() + 2);
    write_json_str(&mut v, s);
    v
}

fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a &str to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn env_field(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn resources(pairs: [(&str, Option<&str>, Option<&str>); 3]) -> Option<ResourceRequirements> {
    let mut requests = BTreeMap::new();
    let mut limits = BTreeMap::new();
    for (name, req, lim) in pairs {
        if let Some(r) = req {
            requests.insert(name.to_owned(), Quantity(r.to_owned()));
        }
        if let Some(l) = lim {
            limits.insert(name.to_owned(), Quantity(l.to_owned()));
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return None;
    }
    Some(ResourceRequirements {
        requests: (!requests.is_empty()).then_some(requests),
        limits: (!limits.is_empty()).then_some(limits),
        ..Default::default()
    })
}

fn http_probe(path: &str, port: u16, initial_delay: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(port.into()),
            ..Default::default()
        }),
        initial_delay_seconds: Some(initial_delay),
        timeout_seconds: Some(1),
        ..Default::default()
    }
}

/// The proxy container as a typed object (slots hold markers for the pod-specific env values).
pub fn proxy_container(v: &ProxyValues<'_>, config: &Config) -> Container {
    let cp = &config.control_plane_namespace;
    let domain = &config.cluster_domain;
    let mut envs = Vec::with_capacity(40);
    envs.push(env_field("_pod_name", "metadata.name"));
    envs.push(env_field("_pod_ns", "metadata.namespace"));
    envs.push(env_field("_pod_nodeName", "spec.nodeName"));
    envs.push(env_field("_pod_sa", "spec.serviceAccountName"));
    envs.push(env("_l5d_ns", cp.as_str()));
    envs.push(env(
        "_l5d_trustdomain",
        config.identity_trust_domain.as_str(),
    ));
    envs.push(env("LINKERD2_PROXY_LOG", v.log_level.as_ref()));
    envs.push(env("LINKERD2_PROXY_LOG_FORMAT", v.log_format.as_ref()));
    envs.push(env(
        "LINKERD2_PROXY_DESTINATION_SVC_ADDR",
        format!("linkerd-dst-headless.{cp}.svc.{domain}.:8086"),
    ));
    envs.push(env(
        "LINKERD2_PROXY_DESTINATION_PROFILE_NETWORKS",
        config.proxy.cluster_networks.as_str(),
    ));
    envs.push(env(
        "LINKERD2_PROXY_POLICY_SVC_ADDR",
        format!("linkerd-policy.{cp}.svc.{domain}.:8090"),
    ));
    envs.push(env(
        "LINKERD2_PROXY_POLICY_WORKLOAD",
        r#"{"ns":"$(_pod_ns)", "pod":"$(_pod_name)"}"#,
    ));
    envs.push(env(
        "LINKERD2_PROXY_INBOUND_DEFAULT_POLICY",
        v.default_inbound_policy.as_ref(),
    ));
    envs.push(env(
        "LINKERD2_PROXY_POLICY_CLUSTER_NETWORKS",
        config.proxy.cluster_networks.as_str(),
    ));
    envs.push(env(
        "LINKERD2_PROXY_CONTROL_LISTEN_ADDR",
        format!("0.0.0.0:{}", v.control_port),
    ));
    envs.push(env(
        "LINKERD2_PROXY_ADMIN_LISTEN_ADDR",
        format!("0.0.0.0:{}", v.admin_port),
    ));
    envs.push(env(
        "LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR",
        format!("127.0.0.1:{}", v.outbound_port),
    ));
    envs.push(env(
        "LINKERD2_PROXY_INBOUND_LISTEN_ADDR",
        format!("0.0.0.0:{}", v.inbound_port),
    ));
    envs.push(env_field("LINKERD2_PROXY_INBOUND_IPS", "status.podIPs"));
    envs.push(slot_marker(SLOT_INBOUND_PORTS));
    envs.push(slot_marker(SLOT_OPAQUE_PORTS));
    envs.push(env(
        "LINKERD2_PROXY_DESTINATION_PROFILE_SUFFIXES",
        format!("svc.{domain}."),
    ));
    envs.push(env("LINKERD2_PROXY_INBOUND_ACCEPT_KEEPALIVE", "10000ms"));
    envs.push(env("LINKERD2_PROXY_OUTBOUND_CONNECT_KEEPALIVE", "10000ms"));
    if v.ingress {
        envs.push(env("LINKERD2_PROXY_INGRESS_MODE", "true"));
    }
    if let Some(g) = &v.shutdown_grace_period {
        envs.push(env("LINKERD2_PROXY_SHUTDOWN_GRACE_PERIOD", g.as_ref()));
    }
    if let Some(a) = &v.access_log {
        envs.push(env("LINKERD2_PROXY_ACCESS_LOG", a.as_ref()));
    }
    envs.push(env("LINKERD2_PROXY_IDENTITY_DIR", END_ENTITY_PATH));
    if let Some(pem) = &config.trust_anchors_pem {
        envs.push(env("LINKERD2_PROXY_IDENTITY_TRUST_ANCHORS", pem.as_str()));
    }
    envs.push(env(
        "LINKERD2_PROXY_IDENTITY_TOKEN_FILE",
        format!("{TOKEN_DIR}/{TOKEN_VOLUME}"),
    ));
    envs.push(env(
        "LINKERD2_PROXY_IDENTITY_SVC_ADDR",
        format!("linkerd-identity-headless.{cp}.svc.{domain}.:8080"),
    ));
    envs.push(env(
        "LINKERD2_PROXY_IDENTITY_LOCAL_NAME",
        "$(_pod_sa).$(_pod_ns).serviceaccount.identity.$(_l5d_ns).$(_l5d_trustdomain)",
    ));
    envs.push(env(
        "LINKERD2_PROXY_IDENTITY_SVC_NAME",
        "linkerd-identity.$(_l5d_ns).serviceaccount.identity.$(_l5d_ns).$(_l5d_trustdomain)",
    ));
    envs.push(env(
        "LINKERD2_PROXY_DESTINATION_SVC_NAME",
        "linkerd-destination.$(_l5d_ns).serviceaccount.identity.$(_l5d_ns).$(_l5d_trustdomain)",
    ));
    envs.push(env(
        "LINKERD2_PROXY_POLICY_SVC_NAME",
        "linkerd-destination.$(_l5d_ns).serviceaccount.identity.$(_l5d_ns).$(_l5d_trustdomain)",
    ));

    let native = v.native_sidecar;
    Container {
        name: PROXY_CONTAINER.into(),
        image: Some(format!("{}:{}", v.proxy_image, v.proxy_version)),
        image_pull_policy: Some(v.pull_policy.to_string()),
        env: Some(envs),
        ports: Some(vec![
            ContainerPort {
                container_port: v.inbound_port.into(),
                name: Some("linkerd-proxy".into()),
                ..Default::default()
            },
            ContainerPort {
                container_port: v.admin_port.into(),
                name: Some("linkerd-admin".into()),
                ..Default::default()
            },
        ]),
        liveness_probe: Some(http_probe("/live", v.admin_port, 10)),
        readiness_probe: Some(http_probe("/ready", v.admin_port, 2)),
        startup_probe: native.then(|| Probe {
            failure_threshold: Some(120),
            period_seconds: Some(1),
            ..http_probe("/ready", v.admin_port, 0)
        }),
        restart_policy: native.then(|| "Always".to_owned()),
        lifecycle: (v.await_ready && !native).then(|| Lifecycle {
            post_start: Some(LifecycleHandler {
                exec: Some(ExecAction {
                    command: Some(vec![
                        "/usr/lib/linkerd/linkerd-await".into(),
                        "--timeout=2m".into(),
                    ]),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        resources: resources([
            ("cpu", v.cpu_request.as_deref(), v.cpu_limit.as_deref()),
            (
                "memory",
                v.memory_request.as_deref(),
                v.memory_limit.as_deref(),
            ),
            (
                "ephemeral-storage",
                v.ephemeral_request.as_deref(),
                v.ephemeral_limit.as_deref(),
            ),
        ]),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            run_as_user: Some(v.uid),
            run_as_group: v.gid,
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: Some(vec![
            VolumeMount {
                name: END_ENTITY_VOLUME.into(),
                mount_path: END_ENTITY_PATH.into(),
                ..Default::default()
            },
            VolumeMount {
                name: TOKEN_VOLUME.into(),
                mount_path: TOKEN_DIR.into(),
                read_only: Some(true),
                ..Default::default()
            },
        ]),
        ..Default::default()
    }
}

/// The `linkerd-init` container that installs the iptables redirect.
pub fn init_container(v: &ProxyValues<'_>, config: &Config) -> Container {
    let mut skip_in = format!("{},{}", v.control_port, v.admin_port);
    if !v.skip_inbound_ports.is_empty() {
        skip_in.push(',');
        skip_in.push_str(&v.skip_inbound_ports);
    }
    let mut args = vec![
        "--incoming-proxy-port".to_owned(),
        v.inbound_port.to_string(),
        "--outgoing-proxy-port".to_owned(),
        v.outbound_port.to_string(),
        "--proxy-uid".to_owned(),
        v.uid.to_string(),
        "--inbound-ports-to-ignore".to_owned(),
        skip_in,
    ];
    if !v.skip_outbound_ports.is_empty() {
        args.push("--outbound-ports-to-ignore".into());
        args.push(v.skip_outbound_ports.clone());
    }
    if !v.skip_subnets.is_empty() {
        args.push("--subnets-to-ignore".into());
        args.push(v.skip_subnets.to_string());
    }
    let r = &config.proxy_init.resources;
    let root = config.proxy_init.run_as_root;
    Container {
        name: INIT_CONTAINER.into(),
        image: Some(format!("{}:{}", v.init_image, v.init_version)),
        image_pull_policy: Some(v.pull_policy.to_string()),
        args: Some(args),
        resources: resources([
            ("cpu", r.cpu.request.as_deref(), r.cpu.limit.as_deref()),
            (
                "memory",
                r.memory.request.as_deref(),
                r.memory.limit.as_deref(),
            ),
            (
                "ephemeral-storage",
                r.ephemeral_storage.request.as_deref(),
                r.ephemeral_storage.limit.as_deref(),
            ),
        ]),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                add: Some(vec!["NET_ADMIN".into(), "NET_RAW".into()]),
                ..Default::default()
            }),
            privileged: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(!root),
            run_as_user: Some(if root { 0 } else { 65534 }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: Some(vec![VolumeMount {
            name: XTABLES_VOLUME.into(),
            mount_path: "/run".into(),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

fn debug_container(v: &ProxyValues<'_>) -> Container {
    Container {
        name: DEBUG_CONTAINER.into(),
        image: Some(format!("{}:{}", v.debug_image, v.debug_version)),
        image_pull_policy: Some(v.pull_policy.to_string()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Default::default()
    }
}

/// The volumes the injector adds.
pub fn volumes(config: &Config) -> Vec<Volume> {
    let mut v = vec![
        Volume {
            name: END_ENTITY_VOLUME.into(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: TOKEN_VOLUME.into(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(vec![VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        audience: Some(TOKEN_AUDIENCE.into()),
                        expiration_seconds: Some(86400),
                        path: TOKEN_VOLUME.into(),
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        },
    ];
    if !config.cni_enabled {
        v.push(Volume {
            name: XTABLES_VOLUME.into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        });
    }
    v
}

impl Fragments {
    pub fn new(v: &ProxyValues<'_>, config: &Config) -> Fragments {
        Fragments {
            proxy: Template::new(to_json(&proxy_container(v, config))),
            init: (!config.cni_enabled).then(|| to_json(&init_container(v, config))),
            debug: v.debug_sidecar.then(|| to_json(&debug_container(v))),
            volumes: volumes(config).iter().map(to_json).collect(),
            native_sidecar: v.native_sidecar,
            proxy_version: json_string(&v.proxy_version),
            control_plane_ns: json_string(&config.control_plane_namespace),
            created_by: json_string(CREATED_BY),
        }
    }
}

/// Appends `/`-escaped JSON pointer segment (RFC 6901: `~` → `~0`, `/` → `~1`).
fn push_pointer_segment(out: &mut Vec<u8>, seg: &str) {
    for b in seg.bytes() {
        match b {
            b'~' => out.extend_from_slice(b"~0"),
            b'/' => out.extend_from_slice(b"~1"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            _ => out.push(b),
        }
    }
}

struct Ops<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl Ops<'_> {
    fn start(&mut self, path: &str, key: Option<&str>) {
        self.out.extend_from_slice(if self.first {
            b"{\"op\":\"add\",\"path\":\""
        } else {
            b",{\"op\":\"add\",\"path\":\""
        });
        self.first = false;
        self.out.extend_from_slice(path.as_bytes());
        if let Some(k) = key {
            self.out.push(b'/');
            push_pointer_segment(self.out, k);
        }
        self.out.extend_from_slice(b"\",\"value\":");
    }

    fn end(&mut self) {
        self.out.push(b'}');
    }

    fn add(&mut self, path: &str, value: &[u8]) {
        self.start(path, None);
        self.out.extend_from_slice(value);
        self.end();
    }

    fn add_key(&mut self, path: &str, key: &str, value: &[u8]) {
        self.start(path, Some(key));
        self.out.extend_from_slice(value);
        self.end();
    }

    /// Adds `items` to the array at `path`: the whole array if the pod has none, else each item
    /// appended (`/-`) or inserted at `at`.
    fn array(&mut self, path: &str, exists: bool, at: Option<usize>, items: &[&[u8]]) {
        if items.is_empty() {
            return;
        }
        if exists {
            for (i, item) in items.iter().enumerate() {
                match at {
                    Some(at) => self.add(&format!("{path}/{}", at + i), item),
                    None => self.add(&format!("{path}/-"), item),
                }
            }
        } else {
            self.start(path, None);
            self.out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    self.out.push(b',');
                }
                self.out.extend_from_slice(item);
            }
            self.out.push(b']');
            self.end();
        }
    }

    /// Adds string entries to the map at `path`, creating it whole if the pod has none.
    fn map(&mut self, path: &str, exists: bool, entries: &[(&str, &[u8])]) {
        if entries.is_empty() {
            return;
        }
        if exists {
            for (k, v) in entries {
                self.add_key(path, k, v);
            }
        } else {
            self.start(path, None);
            self.out.push(b'{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    self.out.push(b',');
                }
                write_json_str(self.out, k);
                self.out.push(b':');
                self.out.extend_from_slice(v);
            }
            self.out.push(b'}');
            self.end();
        }
    }
}

/// Writes the JSON patch for `plan` applied to `pod` into `out` (as a JSON array).
pub fn write_patch(pod: &PodView<'_>, plan: &Plan<'_>, frags: &Fragments, out: &mut Vec<u8>) {
    let mut proxy = Vec::with_capacity(frags.proxy.parts.iter().map(Vec::len).sum::<usize>() + 64);
    frags.proxy.write(
        &mut proxy,
        [&plan.pod.inbound_ports, &plan.pod.opaque_ports],
    );

    out.push(b'[');
    let mut ops = Ops { out, first: true };
    let spec = pod.spec.as_ref();

    // Init containers: linkerd-init goes last so the user's init containers keep their network;
    // a native-sidecar proxy goes first (after linkerd-init) so it serves them too.
    let has_init = spec.is_some_and(|s| s.init_containers.is_some());
    let mut init_items: Vec<&[u8]> = Vec::with_capacity(2);
    if let Some(init) = &frags.init {
        init_items.push(init);
    }
    if frags.native_sidecar {
        init_items.push(&proxy);
        ops.array("/spec/initContainers", has_init, Some(0), &init_items);
    } else {
        ops.array("/spec/initContainers", has_init, None, &init_items);
    }

    // Containers: the proxy first so the apps start after it; the debug sidecar last.
    let has_containers = spec.is_some_and(|s| s.containers.is_some());
    if has_containers {
        if !frags.native_sidecar {
            ops.array("/spec/containers", true, Some(0), &[&proxy]);
        }
        if let Some(d) = &frags.debug {
            ops.array("/spec/containers", true, None, &[d]);
        }
    } else {
        let mut items: Vec<&[u8]> = Vec::with_capacity(2);
        if !frags.native_sidecar {
            items.push(&proxy);
        }
        if let Some(d) = &frags.debug {
            items.push(d);
        }
        ops.array("/spec/containers", false, None, &items);
    }

    let has_volumes = spec.is_some_and(|s| s.volumes.is_some());
    let vols: Vec<&[u8]> = frags.volumes.iter().map(Vec::as_slice).collect();
    ops.array("/spec/volumes", has_volumes, None, &vols);

    let mode_json: &[u8] = match plan.mode {
        Mode::Enabled => b"\"enabled\"",
        Mode::Ingress => b"\"ingress\"",
    };
    let opaque_json = plan.pod.opaque_annotation.as_deref().map(json_string);
    let mut annotations: Vec<(&str, &[u8])> = vec![
        ("linkerd.io/created-by", &frags.created_by),
        ("linkerd.io/identity-mode", b"\"default\""),
        ("linkerd.io/proxy-version", &frags.proxy_version),
    ];
    if plan.source == Source::Namespace {
        annotations.push((INJECT_ANNOTATION, mode_json));
    }
    if let Some(o) = &opaque_json {
        annotations.push((OPAQUE_PORTS_ANNOTATION, o));
    }
    ops.map(
        "/metadata/annotations",
        pod.metadata.annotations.is_some(),
        &annotations,
    );

    let workload_ns = plan.pod.namespace.as_deref().map(json_string);
    let mut labels: Vec<(&str, &[u8])> =
        vec![("linkerd.io/control-plane-ns", &frags.control_plane_ns)];
    if let Some(ns) = &workload_ns {
        labels.push(("linkerd.io/workload-ns", ns));
    }
    ops.map("/metadata/labels", pod.metadata.labels.is_some(), &labels);
    out.push(b']');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_escaping() {
        let mut v = Vec::new();
        push_pointer_segment(&mut v, "a/b~c");
        assert_eq!(v, b"a~1b~0c");
    }

    #[test]
    fn template_splices_slots() {
        let c = Config::default();
        let d = crate::decision::decide(
            &crate::decision::RequestFacts::POD_CREATE,
            &PodView::parse(r#"{"metadata":{"annotations":{"linkerd.io/inject":"enabled"}}}"#)
                .unwrap(),
            crate::decision::NamespaceInfo::None,
            &c,
        );
        let crate::decision::Decision::Inject(plan) = d else {
            panic!()
        };
        let f = Fragments::new(&plan.proxy, &c);
        assert_eq!(f.proxy.parts.len(), SLOTS + 1);
        let mut out = Vec::new();
        f.proxy.write(&mut out, ["80,443", "3306"]);
        let c: Container = serde_json::from_slice(&out).unwrap();
        let env = c.env.unwrap();
        let get = |n: &str| {
            env.iter()
                .find(|e| e.name == n)
                .and_then(|e| e.value.clone())
        };
        assert_eq!(
            get("LINKERD2_PROXY_INBOUND_PORTS").as_deref(),
            Some("80,443")
        );
        assert_eq!(
            get("LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION").as_deref(),
            Some("3306")
        );
        let mut out = Vec::new();
        f.proxy.write(&mut out, ["80", ""]);
        let c: Container = serde_json::from_slice(&out).unwrap();
        let env = c.env.unwrap();
        assert!(
            env.iter()
                .all(|e| e.name != "LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION")
        );
        assert!(env.iter().all(|e| !e.name.contains("slot")));
    }
}
