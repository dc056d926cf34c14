//! A borrowed, partial view of a Pod: only the fields that decide injection or shape the patch.
//! Everything else in the pod is skipped by the parser, never copied and never re-serialised.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::{Borrow, Cow};
use std::fmt;

/// A string borrowed from the request body when it has no escapes, owned otherwise.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BStr<'a>(pub Cow<'a, str>);

impl BStr<'_> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for BStr<'_> {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for BStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = BStr<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(BStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(BStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(BStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

/// `metadata.annotations` with values kept as raw JSON: only the few values that matter are
/// ever decoded (a `last-applied-configuration` blob is skipped, not unescaped).
#[derive(Debug, Default)]
pub struct Annotations<'a>(pub Vec<(BStr<'a>, &'a RawValue)>);

impl<'a> Annotations<'a> {
    /// The value of `key`, if present and a string.
    pub fn get(&self, key: &str) -> Option<Cow<'a, str>> {
        let raw = self.0.iter().find(|(k, _)| k.as_str() == key)?.1;
        serde_json::from_str::<BStr<'a>>(raw.get())
            .ok()
            .map(|b| b.0)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k.as_str() == key)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Annotations<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Annotations<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut v = Vec::with_capacity(m.size_hint().unwrap_or(4));
                while let Some((k, val)) = m.next_entry::<BStr<'a>, &'a RawValue>()? {
                    v.push((k, val));
                }
                Ok(Annotations(v))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// A JSON object whose contents are skipped: only that it exists (and is an object) matters,
/// since the patch then adds to it instead of creating it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AnyMap;

impl<'de> Deserialize<'de> for AnyMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AnyMap;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<AnyMap, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(AnyMap)
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetaView<'a> {
    #[serde(borrow, default)]
    pub name: Option<BStr<'a>>,
    #[serde(borrow, default)]
    pub generate_name: Option<BStr<'a>>,
    #[serde(borrow, default)]
    pub namespace: Option<BStr<'a>>,
    #[serde(borrow, default)]
    pub annotations: Option<Annotations<'a>>,
    /// Values kept raw like the annotations: only `pod-template-hash` is ever decoded.
    #[serde(borrow, default)]
    pub labels: Option<Annotations<'a>>,
    /// Kept raw: read only when an Event is recorded (parsing it on every request costs more
    /// than skipping it).
    #[serde(borrow, default)]
    pub owner_references: Option<&'a RawValue>,
    /// Whether the pod has a `metadata` object at all (false only when it is absent; a patch
    /// under /metadata could not apply then).
    #[serde(skip_deserializing, default = "present")]
    pub present: bool,
}

fn present() -> bool {
    true
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortView<'a> {
    #[serde(default)]
    pub container_port: i64,
    /// The port's name, which opaque-port lists may use instead of its number.
    #[serde(borrow, default)]
    pub name: Option<BStr<'a>>,
}

/// A probe's `httpGet.port` when it is a number (an IntOrString holding a name, or any other
/// JSON, reads as `None`: the pod is never refused over it).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NumericPort(pub Option<i64>);

impl<'de> Deserialize<'de> for NumericPort {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = <&RawValue>::deserialize(d)?;
        Ok(NumericPort(serde_json::from_str::<i64>(v.get()).ok()))
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct HttpGetView {
    #[serde(default)]
    pub port: NumericPort,
}

/// A probe: only the port of its `httpGet`, which the proxy is told is an inbound port.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeView {
    #[serde(default)]
    pub http_get: Option<HttpGetView>,
}

impl ProbeView {
    /// The probe's numeric HTTP port, if it has one.
    pub fn http_port(&self) -> Option<i64> {
        self.http_get.as_ref().and_then(|h| h.port.0)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerView<'a> {
    #[serde(borrow, default)]
    pub name: BStr<'a>,
    /// Read to recognise another mesh's proxy by its image.
    #[serde(borrow, default)]
    pub image: Option<BStr<'a>>,
    #[serde(borrow, default)]
    pub ports: Option<Vec<PortView<'a>>>,
    #[serde(default)]
    pub readiness_probe: Option<ProbeView>,
    #[serde(default)]
    pub liveness_probe: Option<ProbeView>,
    /// Read on the first container: its service-account token mount and capabilities are
    /// given to the proxy and `linkerd-init` too, as Linkerd does.
    #[serde(borrow, default)]
    pub volume_mounts: Option<Vec<VolumeMountView<'a>>>,
    #[serde(borrow, default)]
    pub security_context: Option<SecurityContextView<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMountView<'a> {
    #[serde(borrow, default)]
    pub name: BStr<'a>,
    #[serde(borrow, default)]
    pub mount_path: BStr<'a>,
    #[serde(default)]
    pub read_only: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub struct SecurityContextView<'a> {
    #[serde(borrow, default)]
    pub capabilities: Option<CapabilitiesView<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct CapabilitiesView<'a> {
    #[serde(borrow, default)]
    pub add: Option<Vec<BStr<'a>>>,
    #[serde(borrow, default)]
    pub drop: Option<Vec<BStr<'a>>>,
}

impl ContainerView<'_> {
    /// Whether the container's image starts with `prefix` (how Linkerd recognises sidecars).
    pub fn image_starts_with(&self, prefix: &str) -> bool {
        self.image
            .as_ref()
            .is_some_and(|i| i.as_str().starts_with(prefix))
    }
}

/// A volume: only its name is read (injection must not add one of the same name).
#[derive(Debug, Default, Deserialize)]
pub struct VolumeView<'a> {
    #[serde(borrow, default)]
    pub name: BStr<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpecView<'a> {
    #[serde(borrow, default)]
    pub containers: Option<Vec<ContainerView<'a>>>,
    #[serde(borrow, default)]
    pub init_containers: Option<Vec<ContainerView<'a>>>,
    #[serde(borrow, default)]
    pub volumes: Option<Vec<VolumeView<'a>>>,
    #[serde(default)]
    pub host_network: Option<bool>,
    #[serde(default)]
    pub automount_service_account_token: Option<bool>,
    /// A Service's ports (a pod has none here): read for the opaque-ports annotation a Service
    /// gets, in the same single pass.
    #[serde(default)]
    pub ports: Option<Vec<ServicePortView>>,
}

/// A Service port: its number and its `targetPort` (`None`: absent; `Some(NumericPort(None))`:
/// a port name).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePortView {
    #[serde(default)]
    pub port: i64,
    #[serde(default)]
    pub target_port: Option<NumericPort>,
}

#[derive(Debug, Default, Deserialize)]
pub struct PodView<'a> {
    #[serde(borrow, default)]
    pub metadata: MetaView<'a>,
    #[serde(borrow, default)]
    pub spec: Option<SpecView<'a>>,
}

impl<'a> PodView<'a> {
    pub fn parse(json: &'a str) -> Result<PodView<'a>, serde_json::Error> {
        serde_json::from_str(json)
    }

    pub fn annotation(&self, key: &str) -> Option<Cow<'a, str>> {
        self.metadata.annotations.as_ref()?.get(key)
    }

    pub fn has_annotation(&self, key: &str) -> bool {
        self.metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains(key))
    }

    pub fn containers(&self) -> &[ContainerView<'a>] {
        self.spec
            .as_ref()
            .and_then(|s| s.containers.as_deref())
            .unwrap_or(&[])
    }

    pub fn init_containers(&self) -> &[ContainerView<'a>] {
        self.spec
            .as_ref()
            .and_then(|s| s.init_containers.as_deref())
            .unwrap_or(&[])
    }

    pub fn volumes(&self) -> &[VolumeView<'a>] {
        self.spec
            .as_ref()
            .and_then(|s| s.volumes.as_deref())
            .unwrap_or(&[])
    }

    /// A name to show in logs and messages: name, else generateName, else "(unnamed)".
    pub fn display_name(&self) -> &str {
        let m = &self.metadata;
        display_name(
            m.name.as_ref().map(BStr::as_str),
            m.generate_name.as_ref().map(BStr::as_str),
        )
    }
}

/// A name to show in logs and messages: name, else generateName, else "(unnamed)".
pub fn display_name<'a>(name: Option<&'a str>, generate_name: Option<&'a str>) -> &'a str {
    name.filter(|n| !n.is_empty())
        .or(generate_name.filter(|n| !n.is_empty()))
        .unwrap_or("(unnamed)")
}

/// Where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Pod,
    Namespace,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Pod => "pod",
            Source::Namespace => "namespace",
        })
    }
}

/// What the injector knows about the pod's namespace.
#[derive(Debug, Clone, Copy)]
pub enum NamespaceInfo<'a> {
    /// Found in the cache, with these annotations and labels.
    Known {
        name: &'a str,
        annotations: Option<&'a BTreeMap<String, String>>,
        labels: Option<&'a BTreeMap<String, String>>,
        /// Its ResourceQuotas and LimitRanges, when the lookup knows them.
        limits: Option<&'a crate::quota::NamespaceLimits>,
    },
    /// The request names a namespace the cache does not hold.
    NotCached { name: &'a str },
    /// The request names no namespace.
    None,
}

impl<'a> NamespaceInfo<'a> {
    /// What the decision knows of the namespace `name` (if the request names one), given the
    /// cached object for it (if the cache holds one).
    pub fn of(name: Option<&'a str>, obj: Option<&'a Namespace>) -> NamespaceInfo<'a> {
        match (name, obj) {
            (Some(name), Some(obj)) => NamespaceInfo::Known {
                name,
                annotations: obj.metadata.annotations.as_ref(),
                labels: obj.metadata.labels.as_ref(),
                limits: None,
            },
            (Some(name), None) => NamespaceInfo::NotCached { name },
            (None, _) => NamespaceInfo::None,
        }
    }

    /// The same, with the namespace's quotas and limit ranges.
    pub fn with_limits(self, l: &'a crate::quota::NamespaceLimits) -> NamespaceInfo<'a> {
        match self {
            NamespaceInfo::Known {
                name,
                annotations,
                labels,
                ..
            } => NamespaceInfo::Known {
                name,
                annotations,
                labels,
                limits: Some(l),
            },
            other => other,
        }
    }

    pub fn limits(&self) -> Option<&'a crate::quota::NamespaceLimits> {
        match self {
            NamespaceInfo::Known { limits, .. } => *limits,
            _ => None,
        }
    }

    pub fn label(&self, key: &str) -> Option<&'a str> {
        match self {
            NamespaceInfo::Known {
                labels: Some(l), ..
            } => l.get(key).map(String::as_str),
            _ => None,
        }
    }

    pub fn annotation(&self, key: &str) -> Option<&'a str> {
        match self {
            NamespaceInfo::Known {
                annotations: Some(a),
                ..
            } => a.get(key).map(String::as_str),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrows_plain_strings_and_skips_the_rest() {
        let json = r#"{"metadata":{"name":"web","annotations":{"a/b":"x","big":"{\"q\":1}"},
            "labels":{"app":"web"}},"spec":{"containers":[{"name":"app","image":"nginx",
            "ports":[{"containerPort":80}]}],"volumes":[],"hostNetwork":false},"status":{}}"#;
        let pod = PodView::parse(json).unwrap();
        assert!(matches!(
            pod.metadata.name.as_ref().unwrap().0,
            Cow::Borrowed("web")
        ));
        assert_eq!(pod.annotation("a/b").as_deref(), Some("x"));
        assert_eq!(pod.annotation("big").as_deref(), Some("{\"q\":1}"));
        assert!(pod.metadata.labels.is_some());
        assert_eq!(
            pod.containers()[0].ports.as_ref().unwrap()[0].container_port,
            80
        );
        assert!(pod.spec.as_ref().unwrap().volumes.is_some());
    }

    #[test]
    fn probe_ports_are_read_when_numeric() {
        let pod = PodView::parse(
            r#"{"spec":{"containers":[{"name":"a","ports":[{"containerPort":80,"name":"http"}],
            "readinessProbe":{"httpGet":{"port":9090,"path":"/"}},
            "livenessProbe":{"httpGet":{"port":"http"}}},
            {"name":"b","readinessProbe":{"tcpSocket":{"port":5432}},"livenessProbe":{"httpGet":{"port":[1]}}}]}}"#,
        )
        .unwrap();
        let c = pod.containers();
        assert_eq!(
            c[0].readiness_probe.as_ref().unwrap().http_port(),
            Some(9090)
        );
        assert_eq!(c[0].liveness_probe.as_ref().unwrap().http_port(), None);
        assert_eq!(c[1].readiness_probe.as_ref().unwrap().http_port(), None);
        assert_eq!(c[1].liveness_probe.as_ref().unwrap().http_port(), None);
        assert_eq!(
            c[0].ports.as_ref().unwrap()[0]
                .name
                .as_ref()
                .unwrap()
                .as_str(),
            "http"
        );
    }

    #[test]
    fn nulls_are_absent() {
        let pod = PodView::parse(
            r#"{"metadata":{"annotations":null,"labels":null},
            "spec":{"containers":[],"volumes":null,"initContainers":null}}"#,
        )
        .unwrap();
        assert!(pod.metadata.annotations.is_none());
        assert!(pod.metadata.labels.is_none());
        assert!(pod.metadata.present);
        assert!(!PodView::parse(r#"{"spec":{}}"#).unwrap().metadata.present);
        // Labels must be an object and volumes an array: the patch adds into them.
        assert!(PodView::parse(r#"{"metadata":{"labels":"shop"},"spec":{}}"#).is_err());
        assert!(PodView::parse(r#"{"spec":{"volumes":{"a":1}}}"#).is_err());
        assert!(pod.spec.as_ref().unwrap().volumes.is_none());
        assert!(pod.spec.as_ref().unwrap().init_containers.is_none());
    }
}
