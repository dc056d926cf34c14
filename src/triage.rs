//! "Is it the proxy or my app?": how a meshed pod is doing, read from its status and its
//! Warning Events (pure), as one verdict with the evidence and the fix. The mesh's containers
//! are judged first, in the order they start (linkerd-init or the network validator, then the
//! proxy), then the app behind a ready proxy. The status decides; the Events of the containers
//! at fault (a failing probe, a pull error, a sandbox the CNI could not set up) are the evidence.

use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};
use k8s_openapi::jiff::{self, Timestamp};

use crate::mesh::{INIT_CONTAINER, PROXY_CONTAINER, VALIDATOR_CONTAINER};

/// Waiting reasons that mean the image cannot be pulled.
const PULL_FAILURES: [&str; 4] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
];

/// A verdict: what it means, the evidence, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// A stable name (`init_failed`, `proxy_oom_killed`, `app_not_ready`, ...).
    pub code: &'static str,
    /// Whether the mesh is at fault (the app's own trouble behind a ready proxy is not).
    pub mesh: bool,
    pub says: String,
    pub fix: String,
    /// The Warning Events that back it, newest first (at most [`MAX_EVIDENCE`]).
    pub evidence: Vec<String>,
}

/// Events quoted as evidence, at most.
pub const MAX_EVIDENCE: usize = 3;

/// How long a proxy may take to get ready before that is a verdict: a proxy is ready within
/// seconds once it reaches the control plane (its native sidecar's startup probe allows two
/// minutes before the kubelet restarts it).
pub const STARTING: jiff::SignedDuration = jiff::SignedDuration::from_secs(60);

fn status<'a>(list: Option<&'a Vec<ContainerStatus>>, name: &str) -> Option<&'a ContainerStatus> {
    list?.iter().find(|s| s.name == name)
}

/// The termination that explains a container's trouble: the current one, else the last one.
fn terminated(s: &ContainerStatus) -> Option<(i32, String, String)> {
    let t = s
        .state
        .as_ref()
        .and_then(|st| st.terminated.as_ref())
        .filter(|t| t.exit_code != 0)
        .or_else(|| s.last_state.as_ref().and_then(|st| st.terminated.as_ref()))?;
    Some((
        t.exit_code,
        t.reason.clone().unwrap_or_default(),
        t.message.clone().unwrap_or_default(),
    ))
}

fn waiting(s: &ContainerStatus) -> Option<(String, String)> {
    let w = s.state.as_ref()?.waiting.as_ref()?;
    Some((
        w.reason.clone().unwrap_or_default(),
        w.message.clone().unwrap_or_default(),
    ))
}

fn running(s: &ContainerStatus) -> bool {
    s.state.as_ref().is_some_and(|st| st.running.is_some())
}

/// At most 200 characters of a message from the cluster.
/// At most 200 characters of a message from the cluster, on one line (control characters,
/// a probe's output lines among them, become spaces).
fn short(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().nth(200).is_some() {
        out.push('…');
    }
    out
}

fn exit_words(code: i32, reason: &str, message: &str) -> String {
    let mut w = format!("exit code {code}");
    if !reason.is_empty() {
        w.push_str(&format!(", {}", short(reason)));
    }
    if !message.is_empty() {
        w.push_str(&format!(": {}", short(message)));
    }
    w
}

/// The memory limit the pod's spec gives container `name`.
fn memory_limit(pod: &Pod, name: &str) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    spec.init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .find(|c| c.name == name)?
        .resources
        .as_ref()?
        .limits
        .as_ref()?
        .get("memory")
        .map(|q| q.0.clone())
}

fn verdict(code: &'static str, mesh: bool, says: String, fix: impl Into<String>) -> Verdict {
    Verdict {
        code,
        mesh,
        says,
        fix: fix.into(),
        evidence: Vec::new(),
    }
}

/// The container an Event's `fieldPath` names (`spec.containers{NAME}`,
/// `spec.initContainers{NAME}`); `None` for an Event about the pod itself.
fn event_container(e: &Event) -> Option<&str> {
    let path = e.involved_object.field_path.as_deref()?;
    let start = path.find('{')? + 1;
    path.get(start..path.rfind('}')?)
}

/// When an Event last happened, for ordering (RFC 3339 sorts as text).
fn event_time(e: &Event) -> Option<Timestamp> {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.first_timestamp.as_ref().map(|t| t.0))
}

/// One line of evidence: "Event REASON (×COUNT, CONTAINER): MESSAGE".
fn event_line(e: &Event) -> String {
    let mut what = Vec::new();
    if let Some(n) = e.count.filter(|n| *n > 1) {
        what.push(format!("×{n}"));
    }
    if let Some(c) = event_container(e) {
        what.push(short(c));
    }
    let what = if what.is_empty() {
        String::new()
    } else {
        format!(" ({})", what.join(", "))
    };
    format!(
        "Event {}{what}: {}",
        short(e.reason.as_deref().unwrap_or("")),
        short(e.message.as_deref().unwrap_or("").trim())
    )
}

/// How a meshed pod is doing; `None` for a pod without the proxy, or with no status yet.
/// `events` are the pod's Warning Events; those of the containers at fault (and, while the
/// proxy has not started, those of the pod itself, such as a sandbox the CNI could not set
/// up) are quoted as evidence. `now`: when the status was read (unknown: a proxy not ready
/// is judged as not ready for long).
pub fn how_it_is_doing(pod: &Pod, events: &[&Event], now: Option<Timestamp>) -> Option<Verdict> {
    let mut v = judge(pod, now)?;
    let st = pod.status.as_ref()?;
    let apps = st.container_statuses.as_ref();
    let proxy = status(st.init_container_statuses.as_ref(), PROXY_CONTAINER)
        .or_else(|| status(apps, PROXY_CONTAINER));
    let started = proxy.is_some_and(|p| running(p) || p.restart_count > 0);
    // The containers at fault.
    let at_fault: Vec<&str> = match v.code {
        "init_image" | "init_failed" => vec![INIT_CONTAINER],
        "cni_not_redirecting" => vec![VALIDATOR_CONTAINER],
        "app_not_ready" => apps
            .into_iter()
            .flatten()
            .filter(|s| s.name != PROXY_CONTAINER && !s.ready)
            .map(|s| s.name.as_str())
            .collect(),
        "ready" | "proxy_starting" | "finished" => vec![],
        _ => vec![PROXY_CONTAINER],
    };
    let mut quoted: Vec<&&Event> = events
        .iter()
        .filter(|e| e.type_.as_deref().is_none_or(|t| t == "Warning"))
        .filter(|e| match event_container(e) {
            Some(c) => at_fault.contains(&c),
            None => v.mesh && !started,
        })
        .collect();
    quoted.sort_by_key(|e| std::cmp::Reverse(event_time(e)));
    v.evidence = quoted
        .into_iter()
        .take(MAX_EVIDENCE)
        .map(|e| event_line(e))
        .collect();
    Some(v)
}

/// The verdict from the status.
fn judge(pod: &Pod, now: Option<Timestamp>) -> Option<Verdict> {
    let st = pod.status.as_ref()?;
    // A pod that has finished (a Job's) has a proxy that stopped with it: nothing to triage.
    if let Some(phase @ ("Succeeded" | "Failed")) = st.phase.as_deref() {
        let proxy_seen = status(st.init_container_statuses.as_ref(), PROXY_CONTAINER)
            .or_else(|| status(st.container_statuses.as_ref(), PROXY_CONTAINER));
        return proxy_seen.map(|_| {
            verdict(
                "finished",
                false,
                format!("the pod has finished (phase {phase})"),
                "",
            )
        });
    }
    let inits = st.init_container_statuses.as_ref();
    let apps = st.container_statuses.as_ref();
    let proxy = status(inits, PROXY_CONTAINER).or_else(|| status(apps, PROXY_CONTAINER))?;

    if let Some(init) = status(inits, INIT_CONTAINER) {
        if let Some((reason, message)) =
            waiting(init).filter(|(r, _)| PULL_FAILURES.contains(&r.as_str()))
        {
            return Some(verdict(
                "init_image",
                true,
                format!(
                    "linkerd-init cannot start: its image {} cannot be pulled ({reason}: {})",
                    short(&init.image),
                    short(&message)
                ),
                "check the image name and the node's access to its registry (the proxy-init image, or the proxy's from edge-25.11.3)",
            ));
        }
        if !init.ready
            && let Some((code, reason, message)) = terminated(init)
        {
            return Some(verdict(
                "init_failed",
                true,
                format!(
                    "linkerd-init failed ({}; {} restarts): it could not program the pod's iptables",
                    exit_words(code, &reason, &message),
                    init.restart_count
                ),
                "linkerd-init needs NET_ADMIN and NET_RAW and the node's iptables (proxyInit.iptablesMode: legacy or nft, as the node has); where a policy forbids them, use linkerd-cni (cniEnabled: true)",
            ));
        }
    }
    if let Some(validator) = status(inits, VALIDATOR_CONTAINER)
        && !validator.ready
        && let Some((code, reason, message)) = terminated(validator)
    {
        return Some(verdict(
            "cni_not_redirecting",
            true,
            format!(
                "the network validator failed ({}): the CNI plugin does not redirect this pod's traffic",
                exit_words(code, &reason, &message)
            ),
            "install linkerd-cni (its DaemonSet must be ready on this pod's node), then restart the pod",
        ));
    }
    if let Some((reason, message)) =
        waiting(proxy).filter(|(r, _)| PULL_FAILURES.contains(&r.as_str()))
    {
        return Some(verdict(
            "proxy_image",
            true,
            format!(
                "the proxy cannot start: its image {} cannot be pulled ({reason}: {})",
                short(&proxy.image),
                short(&message)
            ),
            "check the proxy image (proxy.image in the values, config.linkerd.io/proxy-image and proxy-version) and the node's access to its registry",
        ));
    }
    if let Some((code, reason, message)) = terminated(proxy) {
        if reason == "OOMKilled" && !proxy.ready {
            let limit = memory_limit(pod, PROXY_CONTAINER).map_or_else(
                || "no memory limit of its own".to_owned(),
                |l| format!("its memory limit {l}"),
            );
            return Some(verdict(
                "proxy_oom_killed",
                true,
                format!(
                    "the proxy was OOM-killed under {limit} ({} restarts)",
                    proxy.restart_count
                ),
                "raise config.linkerd.io/proxy-memory-limit (and proxy-memory-request) on the workload's pod template",
            ));
        }
        if proxy.restart_count > 0 && !proxy.ready {
            return Some(verdict(
                "proxy_crash_loop",
                true,
                format!(
                    "the proxy keeps crashing ({}; {} restarts)",
                    exit_words(code, &reason, &message),
                    proxy.restart_count
                ),
                "read its last log: kubectl logs POD -c linkerd-proxy --previous",
            ));
        }
    }
    if !proxy.ready {
        let phase = if running(proxy) {
            "running but not ready"
        } else {
            "not started"
        };
        // Since when: its start, else the pod's creation.
        let since = proxy
            .state
            .as_ref()
            .and_then(|st| st.running.as_ref()?.started_at.as_ref())
            .or(pod.metadata.creation_timestamp.as_ref())
            .map(|t| t.0);
        // A clock behind the node's gives a negative age: still starting, at 0 s.
        let age = now
            .zip(since)
            .map(|(now, since)| now.duration_since(since).max(jiff::SignedDuration::ZERO));
        if let Some(age) = age.filter(|a| *a < STARTING) {
            let secs = age.as_secs();
            return Some(verdict(
                "proxy_starting",
                false,
                format!("the proxy is {phase}, {secs}s after it began: still starting"),
                "",
            ));
        }
        if !running(proxy) {
            return Some(verdict(
                "proxy_not_started",
                true,
                "the proxy has not started".to_owned(),
                "read the pod's Events (kubectl describe pod POD): its sandbox (the CNI plugin) or an init container before the proxy holds it up",
            ));
        }
        return Some(verdict(
            "proxy_not_ready",
            true,
            format!(
                "the proxy is {phase}: it has not reached the identity and destination controllers"
            ),
            "check that NetworkPolicies let it reach the control plane (proxy-injector check) and that the control plane is up (linkerd check)",
        ));
    }
    // The proxy is ready: what is left is the app's.
    let app_trouble = apps
        .into_iter()
        .flatten()
        .filter(|s| s.name != PROXY_CONTAINER && !s.ready)
        .map(|s| match (waiting(s), terminated(s)) {
            (Some((r, _)), Some((code, reason, message))) if r == "CrashLoopBackOff" => {
                format!(
                    "{} crash-loops ({})",
                    s.name,
                    exit_words(code, &reason, &message)
                )
            }
            (_, Some((code, reason, message))) if s.restart_count > 0 => {
                format!(
                    "{} restarted {} times (last: {})",
                    s.name,
                    s.restart_count,
                    exit_words(code, &reason, &message)
                )
            }
            _ => format!("{} is not ready (its readiness probe)", s.name),
        })
        .collect::<Vec<_>>();
    if !app_trouble.is_empty() {
        return Some(verdict(
            "app_not_ready",
            false,
            format!(
                "the mesh is up (the proxy is ready); the app is not: {}",
                app_trouble.join("; ")
            ),
            "look at the app: its probe and its logs (kubectl logs POD -c CONTAINER --previous)",
        ));
    }
    Some(verdict(
        "ready",
        false,
        "the proxy and the app are ready".into(),
        "",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn pod(inits: Value, apps: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "web-1"},
            "spec": {"initContainers": [{"name": "linkerd-init"}, {"name": "linkerd-proxy",
                        "resources": {"limits": {"memory": "250Mi"}}}],
                     "containers": [{"name": "app"}]},
            "status": {"initContainerStatuses": inits, "containerStatuses": apps}
        }))
        .unwrap()
    }

    fn cs(name: &str, ready: bool, restarts: i32, state: Value, last: Value) -> Value {
        json!({"name": name, "ready": ready, "restartCount": restarts, "image": format!("img/{name}:v1"),
               "imageID": "", "state": state, "lastState": last})
    }

    fn ok(name: &str) -> Value {
        cs(name, true, 0, json!({"running": {}}), json!({}))
    }

    /// The proxy waiting for the init containers before it.
    fn proxy_initializing() -> Value {
        cs(
            "linkerd-proxy",
            false,
            0,
            json!({"waiting": {"reason": "PodInitializing"}}),
            json!({}),
        )
    }

    fn init_done() -> Value {
        cs(
            "linkerd-init",
            true,
            0,
            json!({"terminated": {"exitCode": 0, "reason": "Completed"}}),
            json!({}),
        )
    }

    fn doing(p: &Pod) -> Option<Verdict> {
        how_it_is_doing(p, &[], None)
    }

    fn code(p: &Pod) -> &'static str {
        how_it_is_doing(p, &[], None).map_or("none", |v| v.code)
    }

    #[test]
    fn linkerd_init_failing_says_so_with_its_exit_code() {
        let failed = cs(
            "linkerd-init",
            false,
            3,
            json!({"waiting": {"reason": "CrashLoopBackOff"}}),
            json!({"terminated": {"exitCode": 1, "reason": "Error", "message": "iptables: Permission denied"}}),
        );
        let p = pod(json!([failed, proxy_initializing()]), json!([]));
        let v = how_it_is_doing(&p, &[], None).unwrap();
        assert_eq!(v.code, "init_failed");
        assert!(v.mesh);
        assert!(
            v.says
                .contains("exit code 1, Error: iptables: Permission denied; 3 restarts"),
            "{v:?}"
        );
        assert!(v.fix.contains("cniEnabled"), "{v:?}");
    }

    #[test]
    fn image_pull_failures_name_the_image() {
        let pull = |name: &str| {
            cs(
                name,
                false,
                0,
                json!({"waiting": {"reason": "ImagePullBackOff", "message": "not found"}}),
                json!({}),
            )
        };
        let p = pod(
            json!([pull("linkerd-init"), pull("linkerd-proxy")]),
            json!([]),
        );
        let v = how_it_is_doing(&p, &[], None).unwrap();
        assert_eq!(v.code, "init_image");
        assert!(v.says.contains("img/linkerd-init:v1"), "{v:?}");
        let p = pod(json!([init_done(), pull("linkerd-proxy")]), json!([]));
        let v = how_it_is_doing(&p, &[], None).unwrap();
        assert_eq!(v.code, "proxy_image");
        assert!(v.says.contains("img/linkerd-proxy:v1"), "{v:?}");
    }

    #[test]
    fn an_oom_killed_proxy_gives_its_limit_and_the_annotation_that_raises_it() {
        let oom = cs(
            "linkerd-proxy",
            false,
            2,
            json!({"waiting": {"reason": "CrashLoopBackOff"}}),
            json!({"terminated": {"exitCode": 137, "reason": "OOMKilled"}}),
        );
        let p = pod(json!([init_done(), oom]), json!([ok("app")]));
        let v = how_it_is_doing(&p, &[], None).unwrap();
        assert_eq!(v.code, "proxy_oom_killed");
        assert!(v.says.contains("its memory limit 250Mi"), "{v:?}");
        assert!(
            v.fix.contains("config.linkerd.io/proxy-memory-limit"),
            "{v:?}"
        );
    }

    #[test]
    fn a_crash_looping_or_unready_proxy_is_the_mesh() {
        let crash = cs(
            "linkerd-proxy",
            false,
            5,
            json!({"waiting": {"reason": "CrashLoopBackOff"}}),
            json!({"terminated": {"exitCode": 101, "reason": "Error"}}),
        );
        assert_eq!(
            code(&pod(json!([init_done(), crash]), json!([]))),
            "proxy_crash_loop"
        );
        let unready = cs("linkerd-proxy", false, 0, json!({"running": {}}), json!({}));
        let v = doing(&pod(json!([init_done(), unready]), json!([ok("app")]))).unwrap();
        assert_eq!(v.code, "proxy_not_ready");
        assert!(v.fix.contains("proxy-injector check"), "{v:?}");
    }

    #[test]
    fn an_app_not_ready_behind_a_ready_proxy_is_the_app() {
        let app = cs(
            "app",
            false,
            4,
            json!({"waiting": {"reason": "CrashLoopBackOff"}}),
            json!({"terminated": {"exitCode": 2, "reason": "Error"}}),
        );
        let v = doing(&pod(
            json!([init_done(), ok("linkerd-proxy")]),
            json!([app]),
        ))
        .unwrap();
        assert_eq!(v.code, "app_not_ready");
        assert!(!v.mesh);
        assert!(v.says.starts_with("the mesh is up"), "{v:?}");
        assert!(
            v.says.contains("app crash-loops (exit code 2, Error)"),
            "{v:?}"
        );
        let v = doing(&pod(
            json!([init_done(), ok("linkerd-proxy")]),
            json!([ok("app")]),
        ))
        .unwrap();
        assert_eq!(v.code, "ready");
    }

    #[test]
    fn the_network_validator_failing_means_cni_is_missing() {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-1"},
            "spec": {"containers": [{"name": "app"}]},
            "status": {"initContainerStatuses": [
                cs("linkerd-network-validator", false, 2, json!({"waiting": {"reason": "CrashLoopBackOff"}}),
                   json!({"terminated": {"exitCode": 1, "reason": "Error"}})),
                proxy_initializing()]}
        }))
        .unwrap();
        assert_eq!(code(&p), "cni_not_redirecting");
    }

    fn event(container: Option<&str>, reason: &str, count: i32, at: &str) -> Event {
        let mut e = json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "web-1"},
            "type": "Warning", "reason": reason, "message": format!("{reason} message"),
            "count": count, "lastTimestamp": at});
        if let Some(c) = container {
            e["involvedObject"]["fieldPath"] = json!(format!("spec.initContainers{{{c}}}"));
        }
        serde_json::from_value(e).unwrap()
    }

    #[test]
    fn the_events_of_the_containers_at_fault_are_the_evidence_newest_first() {
        let unready = cs("linkerd-proxy", false, 0, json!({"running": {}}), json!({}));
        let p = pod(json!([init_done(), unready]), json!([ok("app")]));
        let events = [
            event(
                Some("linkerd-proxy"),
                "Unhealthy",
                12,
                "2026-12-07T00:05:00Z",
            ),
            event(Some("app"), "Unhealthy", 3, "2026-12-07T00:09:00Z"),
            event(None, "FailedScheduling", 1, "2026-12-07T00:01:00Z"),
            event(
                Some("linkerd-proxy"),
                "ProbeWarning",
                1,
                "2026-12-07T00:07:00Z",
            ),
        ];
        let refs: Vec<&Event> = events.iter().collect();
        let v = how_it_is_doing(&p, &refs, None).unwrap();
        assert_eq!(
            v.evidence,
            [
                "Event ProbeWarning (linkerd-proxy): ProbeWarning message",
                "Event Unhealthy (×12, linkerd-proxy): Unhealthy message"
            ],
            "the app's Event is not the proxy's; the pod's own only while the proxy has not started"
        );
        // The proxy not started: the pod's own Events (a sandbox the CNI could not set up) count.
        let waiting = cs(
            "linkerd-proxy",
            false,
            0,
            json!({"waiting": {"reason": "ContainerCreating"}}),
            json!({}),
        );
        let p = pod(json!([init_done(), waiting]), json!([]));
        let v = how_it_is_doing(&p, &refs, None).unwrap();
        assert!(
            v.evidence
                .iter()
                .any(|e| e.starts_with("Event FailedScheduling:")),
            "{v:?}"
        );
        // Normal Events are not evidence; at most three are quoted.
        let mut normal = event(Some("linkerd-proxy"), "Pulled", 1, "2026-12-07T00:08:00Z");
        normal.type_ = Some("Normal".into());
        let many: Vec<Event> = (0..5)
            .map(|i| {
                event(
                    Some("linkerd-proxy"),
                    "Unhealthy",
                    i + 2,
                    &format!("2026-12-07T00:0{i}:00Z"),
                )
            })
            .chain([normal])
            .collect();
        let refs: Vec<&Event> = many.iter().collect();
        let v = how_it_is_doing(&p, &refs, None).unwrap();
        assert_eq!(v.evidence.len(), MAX_EVIDENCE, "{v:?}");
        assert!(v.evidence[0].contains("×6"), "{v:?}");
        assert!(!v.evidence.iter().any(|e| e.contains("Pulled")), "{v:?}");
    }

    #[test]
    fn a_proxy_not_ready_for_less_than_a_minute_is_still_starting() {
        let started = |at: &str| {
            cs(
                "linkerd-proxy",
                false,
                0,
                json!({"running": {"startedAt": at}}),
                json!({}),
            )
        };
        let p = pod(
            json!([init_done(), started("2026-12-07T00:00:00Z")]),
            json!([ok("app")]),
        );
        let at = |t: &str| Some(t.parse::<Timestamp>().unwrap());
        let v = how_it_is_doing(&p, &[], at("2026-12-07T00:00:20Z")).unwrap();
        assert_eq!(v.code, "proxy_starting");
        assert!(!v.mesh);
        assert!(v.says.contains("20s after it began"), "{v:?}");
        let v = how_it_is_doing(&p, &[], at("2026-12-07T00:01:01Z")).unwrap();
        assert_eq!(v.code, "proxy_not_ready");
        // Not started: counted from the pod's creation.
        let mut p = pod(json!([init_done(), proxy_initializing()]), json!([]));
        p.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-12-07T00:00:00Z".parse().unwrap(),
        ));
        assert_eq!(
            how_it_is_doing(&p, &[], at("2026-12-07T00:00:05Z"))
                .unwrap()
                .code,
            "proxy_starting"
        );
        assert_eq!(
            how_it_is_doing(&p, &[], at("2026-12-07T00:05:00Z"))
                .unwrap()
                .code,
            "proxy_not_started"
        );
        // A clock behind the node's: still starting, at 0 s (not a negative age).
        let v = how_it_is_doing(&p, &[], at("2026-12-06T23:59:00Z")).unwrap();
        assert_eq!(v.code, "proxy_starting");
        assert!(v.says.contains(" 0s after"), "{v:?}");
    }

    #[test]
    fn a_finished_pod_is_not_triaged_and_messages_stay_on_one_bounded_line() {
        let stopped = cs(
            "linkerd-proxy",
            false,
            0,
            json!({"terminated": {"exitCode": 0, "reason": "Completed"}}),
            json!({}),
        );
        let mut p = pod(json!([init_done(), stopped]), json!([]));
        p.status.as_mut().unwrap().phase = Some("Succeeded".into());
        assert_eq!(code(&p), "finished");
        let long = format!("line one\nline two {}", "x".repeat(500));
        let crash = cs(
            "linkerd-proxy",
            false,
            2,
            json!({"waiting": {"reason": "CrashLoopBackOff"}}),
            json!({"terminated": {"exitCode": 1, "reason": "Error", "message": long}}),
        );
        let v = doing(&pod(json!([init_done(), crash]), json!([]))).unwrap();
        assert!(!v.says.contains('\n'), "{v:?}");
        assert!(v.says.contains("line one line two"), "{v:?}");
        assert!(v.says.len() < 400, "{}", v.says.len());
    }

    #[test]
    fn no_proxy_or_no_status_has_no_verdict() {
        assert_eq!(code(&pod(json!([]), json!([ok("app")]))), "none");
        let p: Pod = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
        assert_eq!(code(&p), "none");
    }
}
