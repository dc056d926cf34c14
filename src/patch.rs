//! Pure patch building: the RFC 6902 JSON patch that adds the proxy to a pod.
//!
//! The containers and volumes the injector adds are built once per distinct set of values as
//! typed k8s-openapi objects and serialised to JSON ([`Fragments`]); per request, the patch is
//! written by splicing those bytes together with the few pod-specific values. The user's pod is
//! never re-serialised.

use k8s_openapi::api::core::v1::EnvVar;

use crate::config::Config;
use crate::containers::{self, POD_ENV};
use crate::decision::{Mode, Plan, Source};
use crate::mesh::{
    CONTROL_PLANE_NS_LABEL, CREATED_BY, CREATED_BY_ANNOTATION, INJECT_ANNOTATION,
    OPAQUE_PORTS_ANNOTATION, PROXY_VERSION_ANNOTATION, TRUST_ROOT_ANNOTATION, WORKLOAD_NS_LABEL,
};
use crate::values::{PodValues, ProxyValues};
use crate::view::PodView;

/// JSON with holes: `parts[0] hole0 parts[1] hole1 ...`, cut at marker texts that the
/// serialised container holds in place of per-pod values (see [`Holes`]).
#[derive(Debug, Clone)]
struct Template {
    parts: Vec<Vec<u8>>,
    /// Whether each hole's marker was found (a hole whose marker is not there is not filled).
    found: Vec<bool>,
}

/// The per-pod values of a container: the proxy's two env entries (as in Linkerd's template,
/// the inbound ports entry is always there, empty when the pod exposes none, and the opaque
/// ports entry only when the list is not empty), its capabilities and its last volume mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hole {
    Env(usize),
    Capabilities,
    Mount,
}

const PROXY_HOLES: [Hole; 4] = [Hole::Env(0), Hole::Env(1), Hole::Capabilities, Hole::Mount];
const INIT_HOLES: [Hole; 2] = [Hole::Capabilities, Hole::Mount];
/// Whether each env slot is written when its value is empty.
const SLOT_WHEN_EMPTY: [bool; POD_ENV.len()] = [true, false];

fn slot_marker(i: usize) -> EnvVar {
    // Control characters cannot appear in any validated value, so the marker is unambiguous.
    EnvVar {
        name: format!("\u{1}slot{i}\u{1}"),
        ..Default::default()
    }
}

/// The text a hole stands for in the serialised container (cut out whole).
fn marker(hole: Hole) -> Vec<u8> {
    let mut m = Vec::new();
    match hole {
        Hole::Env(i) => {
            m.push(b',');
            m.extend_from_slice(&to_json(&slot_marker(i)));
        }
        Hole::Capabilities => {
            m.extend_from_slice(b"\"capabilities\":");
            m.extend_from_slice(&to_json(&containers::slot_capabilities()));
            m.push(b',');
        }
        Hole::Mount => {
            m.push(b',');
            m.extend_from_slice(&to_json(&containers::slot_mount()));
        }
    }
    m
}

impl Template {
    fn new(json: Vec<u8>, holes: &[Hole]) -> Template {
        let mut parts = Vec::with_capacity(holes.len() + 1);
        let mut found = Vec::with_capacity(holes.len());
        let mut rest: &[u8] = &json;
        for hole in holes {
            let m = marker(*hole);
            match find(rest, &m) {
                Some(at) => {
                    parts.push(rest[..at].to_vec());
                    rest = &rest[at + m.len()..];
                    found.push(true);
                }
                None => {
                    parts.push(Vec::new());
                    found.push(false);
                }
            }
        }
        parts.push(rest.to_vec());
        Template { parts, found }
    }

    /// Writes the container, each hole whose marker was found filled by `fill(i, out)`.
    fn write(&self, out: &mut Vec<u8>, mut fill: impl FnMut(usize, &mut Vec<u8>)) {
        for (i, part) in self.parts.iter().enumerate() {
            out.extend_from_slice(part);
            if self.found.get(i).copied().unwrap_or(false) {
                fill(i, out);
            }
        }
    }
}

/// A JSON list of strings.
fn write_str_list<'s>(out: &mut Vec<u8>, items: impl Iterator<Item = &'s str>) {
    out.push(b'[');
    for (i, s) in items.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_str(out, s);
    }
    out.push(b']');
}

/// Fills one hole of the proxy (`init: false`) or of `linkerd-init` (`init: true`) for `pod`.
fn fill_hole(out: &mut Vec<u8>, hole: Hole, init: bool, pod: &PodValues, env: [&str; 2]) {
    match hole {
        Hole::Env(i) => {
            if SLOT_WHEN_EMPTY[i] || !env[i].is_empty() {
                out.extend_from_slice(b",{\"name\":");
                write_json_str(out, POD_ENV[i]);
                out.extend_from_slice(b",\"value\":");
                write_json_str(out, env[i]);
                out.push(b'}');
            }
        }
        // As Linkerd: the proxy gets the first app container's capabilities (nothing when
        // both lists are empty); linkerd-init always NET_ADMIN and NET_RAW, then the app's
        // additions, and the app's drops but those two.
        Hole::Capabilities => {
            let (add, drop) = containers::capabilities(init, pod.capabilities.as_ref());
            if add.is_empty() && drop.is_empty() {
                return;
            }
            out.extend_from_slice(b"\"capabilities\":{");
            if !add.is_empty() {
                out.extend_from_slice(b"\"add\":");
                write_str_list(out, add.into_iter());
            }
            if !drop.is_empty() {
                if out.last() != Some(&b'{') {
                    out.push(b',');
                }
                out.extend_from_slice(b"\"drop\":");
                write_str_list(out, drop.into_iter());
            }
            out.extend_from_slice(b"},");
        }
        Hole::Mount => {
            if let Some((name, path, read_only)) = &pod.service_account_mount {
                out.extend_from_slice(b",{\"mountPath\":");
                write_json_str(out, path);
                out.extend_from_slice(b",\"name\":");
                write_json_str(out, name);
                out.extend_from_slice(if *read_only {
                    b",\"readOnly\":true}"
                } else {
                    b",\"readOnly\":false}"
                });
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
    init: Option<Template>,
    debug: Option<Vec<u8>>,
    volumes: Vec<Vec<u8>>,
    native_sidecar: bool,
    await_ready: bool,
    proxy_version: Vec<u8>,
    control_plane_ns: Vec<u8>,
    created_by: Vec<u8>,
    trust_root: Vec<u8>,
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

impl Fragments {
    pub fn new(v: &ProxyValues<'_>, config: &Config) -> Fragments {
        Fragments {
            proxy: Template::new(
                to_json(&containers::proxy_container(
                    v,
                    config,
                    [slot_marker(0), slot_marker(1)],
                )),
                &PROXY_HOLES,
            ),
            // CNI mode: the network validator in linkerd-init's place (nothing per pod).
            init: Some(match config.cni_enabled {
                false => {
                    Template::new(to_json(&containers::init_container(v, config)), &INIT_HOLES)
                }
                true => Template::new(to_json(&containers::network_validator(v, config)), &[]),
            }),
            debug: v
                .debug_sidecar
                .then(|| to_json(&containers::debug_container(v))),
            volumes: containers::volumes(config).iter().map(to_json).collect(),
            native_sidecar: v.native_sidecar,
            await_ready: v.await_ready,
            proxy_version: json_string(&v.proxy_version),
            control_plane_ns: json_string(&config.control_plane_namespace),
            created_by: json_string(CREATED_BY),
            trust_root: json_string(&trust_root_sha256(config)),
        }
    }
}

/// The `linkerd.io/trust-root-sha256` annotation: the SHA-256 of the trust anchors as given
/// (of nothing when there are none), in lowercase hex, as Linkerd writes it.
pub fn trust_root_sha256(config: &Config) -> String {
    let pem = config.trust_anchors_pem.as_deref().unwrap_or("");
    let digest = ring::digest::digest(&ring::digest::SHA256, pem.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
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

/// The JSON patch that adds one annotation (to the object's map, or as a new map).
pub fn annotation_patch(has_annotations: bool, key: &str, value: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(96 + value.len());
    out.push(b'[');
    let v = json_string(value);
    Ops {
        out: &mut out,
        first: true,
    }
    .map("/metadata/annotations", has_annotations, &[(key, &v)]);
    out.push(b']');
    out
}

/// Writes the JSON patch for `plan` applied to `pod` into `out` (as a JSON array).
pub fn write_patch(pod: &PodView<'_>, plan: &Plan<'_>, frags: &Fragments, out: &mut Vec<u8>) {
    let env = [
        plan.pod.inbound_ports.as_str(),
        plan.pod.opaque_ports.as_str(),
    ];
    let mut proxy = Vec::with_capacity(frags.proxy.parts.iter().map(Vec::len).sum::<usize>() + 256);
    frags.proxy.write(&mut proxy, |i, out| {
        fill_hole(out, PROXY_HOLES[i], false, &plan.pod, env);
    });
    let init = frags.init.as_ref().map(|t| {
        let mut buf = Vec::with_capacity(t.parts.iter().map(Vec::len).sum::<usize>() + 256);
        t.write(&mut buf, |i, out| {
            fill_hole(out, INIT_HOLES[i], true, &plan.pod, env)
        });
        buf
    });

    out.push(b'[');
    let mut ops = Ops { out, first: true };
    let spec = pod.spec.as_ref();

    // Init containers: linkerd-init goes last so the user's init containers keep their network;
    // a native-sidecar proxy goes first (after linkerd-init) so it serves them too.
    let has_init = spec.is_some_and(|s| s.init_containers.is_some());
    let mut init_items: Vec<&[u8]> = Vec::with_capacity(2);
    if let Some(init) = &init {
        init_items.push(init);
    }
    if frags.native_sidecar {
        init_items.push(&proxy);
        ops.array("/spec/initContainers", has_init, Some(0), &init_items);
    } else {
        ops.array("/spec/initContainers", has_init, None, &init_items);
    }

    // Containers, as Linkerd orders them: the debug sidecar appended; a classic proxy first
    // when it holds the apps until it is ready (await), else appended after the debug sidecar.
    let has_containers = spec.is_some_and(|s| s.containers.is_some());
    if has_containers {
        if !frags.native_sidecar && frags.await_ready {
            ops.array("/spec/containers", true, Some(0), &[&proxy]);
        }
        if let Some(d) = &frags.debug {
            ops.array("/spec/containers", true, None, &[d]);
        }
        if !frags.native_sidecar && !frags.await_ready {
            ops.array("/spec/containers", true, None, &[&proxy]);
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
        (CREATED_BY_ANNOTATION, &frags.created_by),
        (PROXY_VERSION_ANNOTATION, &frags.proxy_version),
        (TRUST_ROOT_ANNOTATION, &frags.trust_root),
    ];
    // The namespace's switch, unless the pod has the key (empty): Linkerd copies it only then.
    if plan.source == Source::Namespace && !pod.has_annotation(INJECT_ANNOTATION) {
        annotations.push((INJECT_ANNOTATION, mode_json));
    }
    if let Some(o) = &opaque_json {
        annotations.push((OPAQUE_PORTS_ANNOTATION, o));
    }
    let copied: Vec<(&str, Vec<u8>)> = plan
        .pod
        .from_namespace
        .iter()
        .map(|(k, v)| (*k, json_string(v)))
        .collect();
    annotations.extend(copied.iter().map(|(k, v)| (*k, v.as_slice())));
    ops.map(
        "/metadata/annotations",
        pod.metadata.annotations.is_some(),
        &annotations,
    );

    let workload_ns = plan.pod.namespace.as_deref().map(json_string);
    let mut labels: Vec<(&str, &[u8])> = vec![(CONTROL_PLANE_NS_LABEL, &frags.control_plane_ns)];
    if let Some(ns) = &workload_ns {
        labels.push((WORKLOAD_NS_LABEL, ns));
    }
    let owner = plan
        .pod
        .owner_label
        .as_ref()
        .map(|(k, v)| (*k, json_string(v)));
    if let Some((k, v)) = &owner {
        labels.push((k, v));
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
        let pod = PodView::parse(r#"{"metadata":{"annotations":{"linkerd.io/inject":"enabled"}},"spec":{"containers":[{"name":"app","securityContext":{"capabilities":{"add":["NET_BIND_SERVICE"],"drop":["ALL","NET_RAW"]}},"volumeMounts":[{"name":"kube-api-access-x1","mountPath":"/var/run/secrets/kubernetes.io/serviceaccount","readOnly":true}]}]}}"#)
            .unwrap();
        let d = crate::decision::decide(
            &crate::decision::RequestFacts::POD_CREATE,
            &pod,
            crate::decision::NamespaceInfo::None,
            &c,
        );
        let crate::decision::Decision::Inject(mut plan) = d else {
            panic!()
        };
        let f = Fragments::new(&plan.proxy, &c);
        assert_eq!(f.proxy.parts.len(), PROXY_HOLES.len() + 1);
        let write = |plan: &Plan<'_>, env: [&str; 2], init: bool| {
            let mut out = Vec::new();
            let (t, holes) = match init {
                false => (&f.proxy, &PROXY_HOLES[..]),
                true => (f.init.as_ref().unwrap(), &INIT_HOLES[..]),
            };
            t.write(&mut out, |i, o| {
                fill_hole(o, holes[i], init, &plan.pod, env)
            });
            let c: k8s_openapi::api::core::v1::Container = serde_json::from_slice(&out)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)));
            c
        };
        let c = write(&plan, ["80,443", "3306"], false);
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
        let caps = c.security_context.unwrap().capabilities.unwrap();
        assert_eq!(caps.add.unwrap(), ["NET_BIND_SERVICE"]);
        assert_eq!(caps.drop.unwrap(), ["ALL", "NET_RAW"]);
        let mounts = c.volume_mounts.unwrap();
        assert_eq!(mounts.last().unwrap().name, "kube-api-access-x1");
        assert_eq!(mounts.last().unwrap().read_only, Some(true));
        // linkerd-init: NET_ADMIN and NET_RAW kept whatever the app drops.
        let init = write(&plan, ["80", ""], true);
        let caps = init.security_context.unwrap().capabilities.unwrap();
        assert_eq!(
            caps.add.unwrap(),
            ["NET_ADMIN", "NET_RAW", "NET_BIND_SERVICE"]
        );
        assert_eq!(caps.drop.unwrap(), ["ALL"]);
        assert_eq!(init.volume_mounts.unwrap().len(), 2);
        // Without them: no capabilities on the proxy, no extra mount, no empty env entry.
        plan.pod.capabilities = None;
        plan.pod.service_account_mount = None;
        let c = write(&plan, ["80", ""], false);
        let env = c.env.unwrap();
        assert!(
            env.iter()
                .all(|e| e.name != "LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION")
        );
        assert!(env.iter().all(|e| !e.name.contains("slot")));
        assert!(c.security_context.unwrap().capabilities.is_none());
        assert_eq!(c.volume_mounts.unwrap().len(), 2);
        let init = write(&plan, ["80", ""], true);
        let caps = init.security_context.unwrap().capabilities.unwrap();
        assert_eq!(caps.add.unwrap(), ["NET_ADMIN", "NET_RAW"]);
        assert!(caps.drop.is_none());
    }
}
