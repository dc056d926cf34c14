//! The proxy's shape: the containers and volumes injection adds, as typed k8s-openapi objects
//! built from the resolved values, and their removal (uninject). The patch writer serialises
//! them once per distinct set of values.

mod env;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, DownwardAPIVolumeFile, DownwardAPIVolumeSource,
    EmptyDirVolumeSource, EnvVar, ExecAction, HTTPGetAction, Lifecycle, LifecycleHandler,
    ObjectFieldSelector, Probe, ProjectedVolumeSource, ResourceRequirements, SeccompProfile,
    SecurityContext, ServiceAccountTokenProjection, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use crate::config::Config;
use crate::mesh::{
    ADMIN_PORT_NAME, DEBUG_CONTAINER, END_ENTITY_PATH, END_ENTITY_VOLUME, INBOUND_PORT_NAME,
    INIT_CONTAINER, PODINFO_PATH, PODINFO_VOLUME, PROXY_CONTAINER, TOKEN_AUDIENCE, TOKEN_DIR,
    TOKEN_VOLUME, VALIDATOR_CONTAINER, XTABLES_VOLUME,
};
use crate::values::ProxyValues;
use crate::view::PodView;

pub use env::{POD_ENV, env};

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

/// proxy-init's path in the proxy image (Linkerd edge-25.11.3 and later).
const PROXY_INIT_COMMAND: &str = "/usr/lib/linkerd/linkerd2-proxy-init";

/// The proxy's resources, as resolved (also `linkerd-init`'s unless the config sets its own).
fn proxy_resources(v: &ProxyValues<'_>) -> Option<ResourceRequirements> {
    resources([
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
    ])
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

/// Where per-pod values go in a serialised container (`patch` splices them in): a text no
/// validated value can hold.
pub const POD_SLOT: &str = "\u{1}pod\u{1}";

/// The place of a per-pod volume mount (the pod's service-account token), last in the list.
pub fn slot_mount() -> VolumeMount {
    VolumeMount {
        name: POD_SLOT.into(),
        mount_path: POD_SLOT.into(),
        ..Default::default()
    }
}

/// The place of per-pod capabilities (the first app container's).
pub fn slot_capabilities() -> Capabilities {
    Capabilities {
        add: Some(vec![POD_SLOT.into()]),
        drop: None,
    }
}

/// linkerd-init's resources: its own when the config sets them, else the proxy's.
fn init_resources(v: &ProxyValues<'_>, config: &Config) -> Option<ResourceRequirements> {
    match &config.proxy_init.resources {
        None => proxy_resources(v),
        Some(r) => resources([
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
    }
}

/// The resources of the containers injection adds (name, resources as injected), for the
/// checks of the API server's LimitRanger and ResourceQuota admission.
pub fn added_resources(
    v: &ProxyValues<'_>,
    config: &Config,
) -> Vec<(&'static str, Option<ResourceRequirements>)> {
    let mut out = vec![(PROXY_CONTAINER, proxy_resources(v))];
    out.push(match config.cni_enabled {
        false => (INIT_CONTAINER, init_resources(v, config)),
        true => (VALIDATOR_CONTAINER, proxy_resources(v)),
    });
    if v.debug_sidecar {
        out.push((DEBUG_CONTAINER, None));
    }
    out
}

/// The proxy's security context, with `capabilities` (the app's: see [`capabilities`]).
fn proxy_security(v: &ProxyValues<'_>, capabilities: Capabilities) -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(capabilities),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        run_as_user: Some(v.uid),
        run_as_group: v.gid,
        seccomp_profile: Some(runtime_default()),
        ..Default::default()
    }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        ..Default::default()
    }
}

/// linkerd-init's security context, with `capabilities` (see [`capabilities`]): privileged
/// when configured so or for a close-wait timeout, root when configured so.
fn init_security(
    v: &ProxyValues<'_>,
    config: &Config,
    capabilities: Capabilities,
) -> SecurityContext {
    let init = &config.proxy_init;
    let root = init.run_as_root;
    let privileged = init.privileged || v.close_wait_seconds > 0;
    // 0 means the chart's default user and group.
    let id = |i: i64| if i == 0 { 65534 } else { i };
    SecurityContext {
        allow_privilege_escalation: Some(privileged),
        capabilities: Some(capabilities),
        privileged: Some(privileged),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(!root),
        run_as_user: Some(if root { 0 } else { id(init.run_as_user) }),
        run_as_group: Some(if root { 0 } else { id(init.run_as_group) }),
        seccomp_profile: Some(runtime_default()),
        ..Default::default()
    }
}

/// The network validator's security context (CNI mode): it complies with `restricted`.
fn validator_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        read_only_root_filesystem: Some(true),
        run_as_group: Some(65534),
        run_as_non_root: Some(true),
        run_as_user: Some(65534),
        seccomp_profile: Some(runtime_default()),
        ..Default::default()
    }
}

/// The capabilities (add, drop) of an injected container, from the first app container's
/// (`pod`), as Linkerd: the proxy gets the app's; linkerd-init (`init`) always NET_ADMIN and
/// NET_RAW, then the app's additions, and the app's drops but those two.
pub fn capabilities(
    init: bool,
    pod: Option<&(Vec<String>, Vec<String>)>,
) -> (Vec<&str>, Vec<&str>) {
    const NEEDED: [&str; 2] = ["NET_ADMIN", "NET_RAW"];
    let (add, drop) = match pod {
        Some((a, d)) => (a.as_slice(), d.as_slice()),
        None => (&[][..], &[][..]),
    };
    let drop = drop
        .iter()
        .map(String::as_str)
        .filter(|d| !init || !NEEDED.contains(d))
        .collect();
    let add = if init {
        NEEDED
            .iter()
            .copied()
            .chain(add.iter().map(String::as_str))
            .collect()
    } else {
        add.iter().map(String::as_str).collect()
    };
    (add, drop)
}

/// The security contexts of the containers injection adds to a pod whose first app
/// container has `pod_caps` (name, context; the debug sidecar has none), for the checks of
/// the API server's PodSecurity admission.
pub fn added_security(
    v: &ProxyValues<'_>,
    config: &Config,
    pod_caps: Option<&(Vec<String>, Vec<String>)>,
) -> Vec<(&'static str, Option<SecurityContext>)> {
    let caps = |init: bool| {
        let (add, drop) = capabilities(init, pod_caps);
        let list =
            |l: Vec<&str>| (!l.is_empty()).then(|| l.into_iter().map(str::to_owned).collect());
        Capabilities {
            add: list(add),
            drop: list(drop),
        }
    };
    let mut out = vec![(PROXY_CONTAINER, Some(proxy_security(v, caps(false))))];
    out.push(match config.cni_enabled {
        false => (INIT_CONTAINER, Some(init_security(v, config, caps(true)))),
        true => (VALIDATOR_CONTAINER, Some(validator_security())),
    });
    if v.debug_sidecar {
        out.push((DEBUG_CONTAINER, None));
    }
    out
}

/// The proxy container as a typed object; `pod_env` are the entries named by [`POD_ENV`];
/// its capabilities and last volume mount are per-pod slots ([`POD_SLOT`]).
pub fn proxy_container(v: &ProxyValues<'_>, config: &Config, pod_env: [EnvVar; 2]) -> Container {
    let envs = env::proxy_env(v, config, pod_env);
    let native = v.native_sidecar;
    Container {
        name: PROXY_CONTAINER.into(),
        image: Some(format!("{}:{}", v.proxy_image, v.proxy_version)),
        image_pull_policy: Some(v.pull_policy.to_string()),
        env: Some(envs),
        ports: Some(vec![
            ContainerPort {
                container_port: v.inbound_port.into(),
                name: Some(INBOUND_PORT_NAME.into()),
                ..Default::default()
            },
            ContainerPort {
                container_port: v.admin_port.into(),
                name: Some(ADMIN_PORT_NAME.into()),
                ..Default::default()
            },
        ]),
        liveness_probe: Some(http_probe("/live", v.admin_port, 10)),
        readiness_probe: Some(http_probe("/ready", v.admin_port, 2)),
        // Linkerd's template adds it only when the proxy also awaits readiness.
        startup_probe: (native && v.await_ready).then(|| Probe {
            failure_threshold: Some(120),
            period_seconds: Some(1),
            ..http_probe("/ready", v.admin_port, 0)
        }),
        restart_policy: native.then(|| "Always".to_owned()),
        lifecycle: lifecycle(v),
        resources: proxy_resources(v),
        security_context: Some(proxy_security(v, slot_capabilities())),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: Some(
            [
                Some(VolumeMount {
                    name: END_ENTITY_VOLUME.into(),
                    mount_path: END_ENTITY_PATH.into(),
                    ..Default::default()
                }),
                config.tracing_volume().then(|| VolumeMount {
                    name: PODINFO_VOLUME.into(),
                    mount_path: PODINFO_PATH.into(),
                    ..Default::default()
                }),
                config
                    .service_account_token_projection
                    .then(|| VolumeMount {
                        name: TOKEN_VOLUME.into(),
                        mount_path: TOKEN_DIR.into(),
                        read_only: Some(true),
                        ..Default::default()
                    }),
                Some(slot_mount()),
            ]
            .into_iter()
            .flatten()
            .collect(),
        ),
        ..Default::default()
    }
}

fn exec(command: &[&str]) -> LifecycleHandler {
    LifecycleHandler {
        exec: Some(ExecAction {
            command: Some(command.iter().map(|c| (*c).to_owned()).collect()),
        }),
        ..Default::default()
    }
}

/// The proxy's hooks (none for a native sidecar, whose startup probe and restart policy do
/// that work): `linkerd-await` holds the app containers until the proxy is ready; a preStop
/// sleep keeps the proxy up a while when the pod stops.
fn lifecycle(v: &ProxyValues<'_>) -> Option<Lifecycle> {
    if v.native_sidecar || !(v.await_ready || v.wait_before_exit_seconds > 0) {
        return None;
    }
    let wait = v.wait_before_exit_seconds.to_string();
    let port = format!("--port={}", v.admin_port);
    Some(Lifecycle {
        post_start: v
            .await_ready
            .then(|| exec(&["/usr/lib/linkerd/linkerd-await", "--timeout=2m", &port])),
        pre_stop: (v.wait_before_exit_seconds > 0).then(|| exec(&["/bin/sleep", &wait])),
        ..Default::default()
    })
}

/// The `linkerd-init` container that installs the iptables redirect.
pub fn init_container(v: &ProxyValues<'_>, config: &Config) -> Container {
    let mut skip_in = format!("{},{}", v.control_port, v.admin_port);
    if !v.skip_inbound_ports.is_empty() {
        skip_in.push(',');
        skip_in.push_str(&v.skip_inbound_ports);
    }
    let mut args = Vec::new();
    if config.proxy_init.iptables_mode == "nft" {
        for a in [
            "--firewall-bin-path",
            "iptables-nft",
            "--firewall-save-bin-path",
            "iptables-nft-save",
        ] {
            args.push(a.to_owned());
        }
    }
    // Linkerd's `disableIPv6` (its default): no ip6tables rules either.
    if config.disable_ipv6 {
        args.push("--ipv6=false".to_owned());
    }
    args.extend([
        "--incoming-proxy-port".to_owned(),
        v.inbound_port.to_string(),
        "--outgoing-proxy-port".to_owned(),
        v.outbound_port.to_string(),
        "--proxy-uid".to_owned(),
        v.uid.to_string(),
    ]);
    if let Some(gid) = v.gid {
        args.push("--proxy-gid".into());
        args.push(gid.to_string());
    }
    args.push("--inbound-ports-to-ignore".into());
    args.push(skip_in);
    if !v.skip_outbound_ports.is_empty() {
        args.push("--outbound-ports-to-ignore".into());
        args.push(v.skip_outbound_ports.clone());
    }
    let init = &config.proxy_init;
    if v.close_wait_seconds > 0 {
        args.push("--timeout-close-wait-secs".into());
        args.push(v.close_wait_seconds.to_string());
    }
    for (flag, value) in [
        ("--log-format", &init.log_format),
        ("--log-level", &init.log_level),
    ] {
        if !value.is_empty() {
            args.push(flag.into());
            args.push(value.clone());
        }
    }
    if !v.skip_subnets.is_empty() {
        args.push("--subnets-to-ignore".into());
        args.push(v.skip_subnets.to_string());
    }
    // Linkerd edge-26.8.3 runs proxy-init from the proxy image; a configured separate image
    // keeps its own entrypoint (and the init-image annotations).
    let (image, command, pull_policy) = match &config.proxy_init.image {
        None => (
            format!("{}:{}", v.proxy_image, v.proxy_version),
            Some(vec![PROXY_INIT_COMMAND.to_owned()]),
            &v.pull_policy,
        ),
        Some(_) => (
            format!("{}:{}", v.init_image, v.init_version),
            None,
            &v.init_pull_policy,
        ),
    };
    Container {
        name: INIT_CONTAINER.into(),
        image: Some(image),
        command,
        image_pull_policy: Some(pull_policy.to_string()),
        args: Some(args),
        resources: init_resources(v, config),
        // NET_ADMIN and NET_RAW, with the app's (a per-pod slot).
        security_context: Some(init_security(v, config, slot_capabilities())),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: Some(vec![
            VolumeMount {
                name: XTABLES_VOLUME.into(),
                mount_path: "/run".into(),
                ..Default::default()
            },
            slot_mount(),
        ]),
        ..Default::default()
    }
}

/// The `linkerd-debug` sidecar, with probes that always pass (for clusters that require
/// probes), as Linkerd writes it.
pub fn debug_container(v: &ProxyValues<'_>) -> Container {
    let always = || Probe {
        exec: Some(ExecAction {
            command: Some(vec!["true".to_owned()]),
        }),
        ..Default::default()
    };
    Container {
        name: DEBUG_CONTAINER.into(),
        image: Some(format!("{}:{}", v.debug_image, v.debug_version)),
        image_pull_policy: Some(v.debug_pull_policy.to_string()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        liveness_probe: Some(always()),
        readiness_probe: Some(always()),
        ..Default::default()
    }
}

/// CNI mode's `linkerd-network-validator`: from the proxy image, it checks that the CNI
/// plugin redirects the pod's traffic before the proxy starts.
pub fn network_validator(v: &ProxyValues<'_>, config: &Config) -> Container {
    let nv = &config.network_validator;
    let or = |given: &str, v4: &str, v6: &str| match (given.is_empty(), config.disable_ipv6) {
        (false, _) => given.to_owned(),
        (true, true) => v4.to_owned(),
        (true, false) => v6.to_owned(),
    };
    let args = vec![
        "--log-format".to_owned(),
        nv.log_format.clone(),
        "--log-level".to_owned(),
        nv.log_level.clone(),
        "--connect-addr".to_owned(),
        or(&nv.connect_addr, "1.1.1.1:20001", "[fd00::1]:20001"),
        "--listen-addr".to_owned(),
        or(&nv.listen_addr, "0.0.0.0:4140", "[::]:4140"),
        "--timeout".to_owned(),
        nv.timeout.clone(),
    ];
    Container {
        name: VALIDATOR_CONTAINER.into(),
        image: Some(format!("{}:{}", v.proxy_image, v.proxy_version)),
        image_pull_policy: Some(v.pull_policy.to_string()),
        resources: proxy_resources(v),
        security_context: Some(validator_security()),
        command: Some(vec![
            "/usr/lib/linkerd/linkerd2-network-validator".to_owned(),
        ]),
        args: Some(args),
        ..Default::default()
    }
}

/// The volumes the injector adds.
pub fn volumes(config: &Config) -> Vec<Volume> {
    let mut v = vec![Volume {
        name: END_ENTITY_VOLUME.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            ..Default::default()
        }),
        ..Default::default()
    }];
    if config.tracing_volume() {
        v.push(Volume {
            name: PODINFO_VOLUME.into(),
            downward_api: Some(DownwardAPIVolumeSource {
                items: Some(vec![DownwardAPIVolumeFile {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: "metadata.labels".into(),
                        ..Default::default()
                    }),
                    path: "labels".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    if config.service_account_token_projection {
        v.push(Volume {
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
        });
    }
    if !config.cni_enabled {
        v.push(Volume {
            name: XTABLES_VOLUME.into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        });
    }
    v
}

/// What injection would add that the pod already has: containers (in `containers` or
/// `initContainers`) and volumes of the same name. `linkerd-proxy` itself means "already
/// injected" and is decided before.
pub fn clashes(pod: &PodView<'_>, v: &ProxyValues<'_>, config: &Config) -> Vec<String> {
    // linkerd-init also in CNI mode: Linkerd takes a container of that name for a previous
    // injection whatever the mode.
    let added_containers = [
        Some(INIT_CONTAINER),
        config.cni_enabled.then_some(VALIDATOR_CONTAINER),
        v.debug_sidecar.then_some(DEBUG_CONTAINER),
    ];
    let added_volumes = [
        Some(END_ENTITY_VOLUME),
        config
            .service_account_token_projection
            .then_some(TOKEN_VOLUME),
        (!config.cni_enabled).then_some(XTABLES_VOLUME),
        config.tracing_volume().then_some(PODINFO_VOLUME),
    ];
    let mut out = Vec::new();
    for name in added_containers.into_iter().flatten() {
        if pod
            .containers()
            .iter()
            .chain(pod.init_containers())
            .any(|c| c.name.as_str() == name)
        {
            out.push(format!("a container named {name}"));
        }
    }
    for name in added_volumes.into_iter().flatten() {
        if pod.volumes().iter().any(|vol| vol.name.as_str() == name) {
            out.push(format!("a volume named {name}"));
        }
    }
    out
}

/// The image of a pod's `linkerd-proxy` container (in `containers` or, as a native sidecar,
/// in `initContainers`).
pub fn proxy_image(pod: &Value) -> Option<&str> {
    ["containers", "initContainers"].iter().find_map(|l| {
        pod["spec"][l]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == PROXY_CONTAINER))
            .and_then(|c| c["image"].as_str())
    })
}
