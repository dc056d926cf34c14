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
    CONTROL_PLANE_NS_LABEL, CREATED_BY, CREATED_BY_ANNOTATION, IDENTITY_MODE_ANNOTATION,
    INJECT_ANNOTATION, OPAQUE_PORTS_ANNOTATION, PROXY_VERSION_ANNOTATION, TRUST_ROOT_ANNOTATION,
    WORKLOAD_NS_LABEL,
};
use crate::values::ProxyValues;
use crate::view::PodView;

/// JSON with holes: `parts[0] slot0 parts[1] slot1 parts[2]`. Each slot is an env entry of the
/// proxy container, written as `,{"name":..,"value":..}`. As in Linkerd's template, the
/// inbound ports entry is always there (empty when the pod exposes none) and the opaque ports
/// entry only when the list is not empty.
#[derive(Debug, Clone)]
struct Template {
    parts: Vec<Vec<u8>>,
}

const SLOTS: usize = POD_ENV.len();
/// Whether each slot is written when its value is empty.
const SLOT_WHEN_EMPTY: [bool; SLOTS] = [true, false];

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
            if i < SLOTS && (SLOT_WHEN_EMPTY[i] || !slots[i].is_empty()) {
                out.extend_from_slice(b",{\"name\":");
                write_json_str(out, POD_ENV[i]);
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
            proxy: Template::new(to_json(&containers::proxy_container(
                v,
                config,
                [slot_marker(0), slot_marker(1)],
            ))),
            init: (!config.cni_enabled).then(|| to_json(&containers::init_container(v, config))),
            debug: v
                .debug_sidecar
                .then(|| to_json(&containers::debug_container(v))),
            volumes: containers::volumes(config).iter().map(to_json).collect(),
            native_sidecar: v.native_sidecar,
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
        (CREATED_BY_ANNOTATION, &frags.created_by),
        (IDENTITY_MODE_ANNOTATION, b"\"default\""),
        (PROXY_VERSION_ANNOTATION, &frags.proxy_version),
        (TRUST_ROOT_ANNOTATION, &frags.trust_root),
    ];
    if plan.source == Source::Namespace {
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
        let d = crate::decision::decide(
            &crate::decision::RequestFacts::POD_CREATE,
            &PodView::parse(r#"{"metadata":{"annotations":{"linkerd.io/inject":"enabled"}},"spec":{"containers":[{"name":"app"}]}}"#)
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
        let c: k8s_openapi::api::core::v1::Container = serde_json::from_slice(&out).unwrap();
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
        let c: k8s_openapi::api::core::v1::Container = serde_json::from_slice(&out).unwrap();
        let env = c.env.unwrap();
        assert!(
            env.iter()
                .all(|e| e.name != "LINKERD2_PROXY_INBOUND_PORTS_DISABLE_PROTOCOL_DETECTION")
        );
        assert!(env.iter().all(|e| !e.name.contains("slot")));
    }
}
