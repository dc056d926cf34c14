//! Reads only the parts of an object that `/warn` looks at: a JSON value pruned to a fixed
//! shape while it is parsed (everything else is skipped without being stored), so a workload
//! with a multi-megabyte field it never reads costs its bytes once, not a tree of values.

use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::view::BStr;

/// What to keep of a JSON value.
pub enum Shape {
    /// The whole value.
    Whole,
    /// An object: these fields, each pruned to its own shape; other fields are skipped.
    Fields(&'static [(&'static str, &'static Shape)]),
    /// An array whose items are pruned to this shape.
    Items(&'static Shape),
}

static WHOLE: Shape = Shape::Whole;
static PORT: Shape = Shape::Fields(&[
    ("containerPort", &WHOLE),
    ("name", &WHOLE),
    ("protocol", &WHOLE),
]);
static PORTS: Shape = Shape::Items(&PORT);
/// The capabilities the proxy copies from the first container (the PodSecurity verdict).
static SECURITY: Shape = Shape::Fields(&[("capabilities", &WHOLE)]);
static CONTAINER: Shape = Shape::Fields(&[
    ("name", &WHOLE),
    ("ports", &PORTS),
    ("securityContext", &SECURITY),
]);
static CONTAINERS: Shape = Shape::Items(&CONTAINER);
static NAMED: Shape = Shape::Fields(&[("name", &WHOLE)]);
static NAMED_ITEMS: Shape = Shape::Items(&NAMED);
static META: Shape = Shape::Fields(&[
    ("name", &WHOLE),
    ("generateName", &WHOLE),
    ("namespace", &WHOLE),
    ("annotations", &WHOLE),
    ("labels", &WHOLE),
]);
static POD_SPEC: Shape = Shape::Fields(&[
    ("hostNetwork", &WHOLE),
    ("containers", &CONTAINERS),
    ("initContainers", &CONTAINERS),
    ("volumes", &NAMED_ITEMS),
]);
static TEMPLATE: Shape = Shape::Fields(&[("metadata", &META), ("spec", &POD_SPEC)]);
static JOB_SPEC: Shape = Shape::Fields(&[("template", &TEMPLATE)]);
static JOB_TEMPLATE: Shape = Shape::Fields(&[("spec", &JOB_SPEC)]);
static WORKLOAD_SPEC: Shape = Shape::Fields(&[
    ("template", &TEMPLATE),
    ("jobTemplate", &JOB_TEMPLATE),
    ("hostNetwork", &WHOLE),
    ("containers", &CONTAINERS),
    ("initContainers", &CONTAINERS),
    ("volumes", &NAMED_ITEMS),
]);

/// A Namespace, a Pod or a workload with a pod template, as far as `/warn` reads it.
pub static OBJECT: Shape = Shape::Fields(&[
    ("kind", &WHOLE),
    ("metadata", &META),
    ("spec", &WORKLOAD_SPEC),
]);

/// Parses `json` keeping only what `shape` says.
pub fn parse(json: &str, shape: &'static Shape) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(json);
    let v = Prune(shape).deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

struct Prune(&'static Shape);

impl<'de> DeserializeSeed<'de> for Prune {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        match self.0 {
            Shape::Whole => Value::deserialize(d),
            _ => d.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for Prune {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Value, A::Error> {
        let Shape::Fields(fields) = self.0 else {
            while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(Value::Null);
        };
        let mut out = Map::new();
        while let Some(key) = m.next_key::<BStr<'de>>()? {
            match fields.iter().find(|(name, _)| *name == key.as_str()) {
                Some((name, shape)) => {
                    let v = m.next_value_seed(Prune(shape))?;
                    out.insert((*name).to_owned(), v);
                }
                None => {
                    m.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(out))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Value, A::Error> {
        let Shape::Items(item) = self.0 else {
            while s.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(Value::Null);
        };
        let mut out = Vec::new();
        while let Some(v) = s.next_element_seed(Prune(item))? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keeps_what_warn_reads_and_nothing_else() {
        let obj = json!({"kind": "Deployment", "status": {"big": [1, 2, 3]},
            "metadata": {"name": "web", "annotations": {"a": "b"}, "managedFields": [{"x": 1}]},
            "spec": {"replicas": 3, "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"hostNetwork": true, "tolerations": [{"key": "k"}],
                    "containers": [{"name": "app", "env": [{"name": "E"}], "ports": [{"containerPort": 80, "hostPort": 1}]}],
                    "volumes": [{"name": "v", "emptyDir": {}}]}}}});
        let v = parse(&obj.to_string(), &OBJECT).unwrap();
        assert_eq!(
            v,
            json!({"kind": "Deployment",
                "metadata": {"name": "web", "annotations": {"a": "b"}},
                "spec": {"template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"hostNetwork": true,
                        "containers": [{"name": "app", "ports": [{"containerPort": 80}]}],
                        "volumes": [{"name": "v"}]}}}})
        );
    }

    #[test]
    fn an_unread_huge_field_is_skipped_and_a_wrong_type_becomes_null() {
        let huge: Vec<u32> = (0..200_000).collect();
        let obj = json!({"metadata": {"name": "p"}, "spec": {"tolerations": huge, "containers": {"not": "a list"}}});
        let v = parse(&obj.to_string(), &OBJECT).unwrap();
        assert_eq!(
            v,
            json!({"metadata": {"name": "p"}, "spec": {"containers": null}})
        );
        assert!(parse("{\"metadata\": ", &OBJECT).is_err());
    }
}
