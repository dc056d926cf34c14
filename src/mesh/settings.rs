//! One table of settings. A row says everything about one setting: the key of Linkerd's
//! linkerd-control-plane chart values it corresponds to, the annotation keys that override it
//! per workload (Linkerd's name first, accepted aliases after), its default (read from the
//! config), its parser, the label `explain` shows, and where its value goes in
//! [`ProxyValues`]. Adding a setting is adding a row (and, if it changes the proxy, a line in
//! `containers`).

use std::borrow::Cow;

use super::ProxyValues;
use crate::config::Config;
use crate::overrides::{self, PortList};

pub use super::table::SETTINGS;

/// One resolved value, typed by its parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    Text(Cow<'a, str>),
    Opt(Option<Cow<'a, str>>),
    Port(u16),
    Id(i64),
    OptId(Option<i64>),
    Bool(bool),
    /// A port list in canonical form (`25,4000-4010`).
    Ports(String),
}

impl Value<'_> {
    pub fn into_owned(self) -> Value<'static> {
        let own = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
        match self {
            Value::Text(t) => Value::Text(own(t)),
            Value::Opt(o) => Value::Opt(o.map(own)),
            Value::Port(p) => Value::Port(p),
            Value::Id(i) => Value::Id(i),
            Value::OptId(o) => Value::OptId(o),
            Value::Bool(b) => Value::Bool(b),
            Value::Ports(p) => Value::Ports(p),
        }
    }

    /// As `explain` shows it.
    pub fn display(&self) -> String {
        match self {
            Value::Text(t) => t.to_string(),
            Value::Opt(o) => o.as_deref().unwrap_or("(none)").to_owned(),
            Value::Port(p) => p.to_string(),
            Value::Id(i) => i.to_string(),
            Value::OptId(o) => o.map_or_else(|| "(none)".to_owned(), |i| i.to_string()),
            Value::Bool(b) => b.to_string(),
            Value::Ports(p) => p.clone(),
        }
    }
}

/// How an annotation's text becomes a [`Value`]. Config defaults are checked with the same
/// parsers, so the file and the annotations accept exactly the same values.
#[derive(Clone, Copy)]
pub enum Parser {
    /// Checked, then kept (trimmed).
    Text(fn(&str) -> Result<(), String>),
    /// Like `Text`, for a setting that may be unset.
    OptText(fn(&str) -> Result<(), String>),
    /// A Kubernetes quantity (kept trimmed).
    Quantity,
    Port,
    /// A user or group ID (`runAsUser`, `runAsGroup`).
    Id,
    OptId,
    /// A whole number, 0 or more (seconds, counts).
    Uint,
    /// Go's `strconv.ParseBool`, also `enabled`/`disabled`.
    Bool,
    /// Go's `strconv.ParseBool` only (what Linkerd reads for this key).
    GoBool,
    /// `enabled` or `disabled` only.
    Switch,
    /// A Go duration, given to the proxy as whole milliseconds (as Linkerd writes it).
    Millis,
    /// A Go duration, given to the proxy as whole seconds (as Linkerd writes it).
    Seconds,
    /// A Go duration, as a whole number of seconds (truncated, as Linkerd reads it).
    WholeSeconds,
    /// A number strictly between 0 and 1, written as Linkerd's chart prints it.
    Ratio,
    Ports,
    /// Like `Ports`, also taking container port names (`mysql`), resolved per pod.
    NamedPorts,
}

impl Parser {
    /// Parses an annotation value (checked trimmed).
    pub fn parse<'a>(self, raw: Cow<'a, str>) -> Result<Value<'a>, String> {
        let raw = trimmed(raw);
        let t = raw.as_ref();
        Ok(match self {
            Parser::Text(check) => {
                check(t)?;
                Value::Text(raw)
            }
            Parser::OptText(check) => {
                check(t)?;
                Value::Opt(Some(raw))
            }
            Parser::Quantity => {
                overrides::parse_quantity(t)?;
                Value::Opt(Some(raw))
            }
            Parser::Port => Value::Port(overrides::parse_port(t)?),
            Parser::Id => Value::Id(overrides::parse_uid(t)?),
            Parser::Uint => Value::Id(overrides::parse_uint(t)?),
            Parser::OptId => Value::OptId(Some(overrides::parse_uid(t)?)),
            Parser::Bool => Value::Bool(overrides::parse_bool(t)?),
            Parser::GoBool => Value::Bool(overrides::parse_go_bool(t)?),
            Parser::Switch => Value::Bool(overrides::parse_switch(t)?),
            Parser::Millis => Value::Opt(Some(Cow::Owned(overrides::go::duration_millis(t)?))),
            Parser::Seconds => Value::Opt(Some(Cow::Owned(overrides::go::duration_seconds(t)?))),
            Parser::WholeSeconds => Value::Id(overrides::go::duration_whole_seconds(t)?),
            Parser::Ratio => Value::Opt(Some(Cow::Owned(overrides::go::ratio(t)?))),
            Parser::Ports => Value::Ports(PortList::parse(t)?.render()),
            Parser::NamedPorts => Value::Ports(PortList::parse_named(t)?.render()),
        })
    }

    /// Checks a config default the way an annotation is checked.
    pub fn check_default(self, v: &Value<'_>) -> Result<(), String> {
        match (self, v) {
            (Parser::Text(check), Value::Text(t))
            | (Parser::OptText(check), Value::Opt(Some(t))) => check(t),
            (Parser::Quantity, Value::Opt(Some(q))) => overrides::parse_quantity(q).map(|_| ()),
            (Parser::Millis | Parser::Seconds, Value::Opt(Some(d))) => overrides::parse_duration(d),
            (Parser::Ratio, Value::Opt(Some(r))) => overrides::go::ratio(r).map(|_| ()),
            (Parser::Port, Value::Port(0)) => Err("a port must be in 1-65535".into()),
            (Parser::Ports, Value::Ports(p)) => PortList::parse(p).map(|_| ()),
            (Parser::NamedPorts, Value::Ports(p)) => PortList::parse_named(p).map(|_| ()),
            _ => Ok(()),
        }
    }

    /// What the value looks like, for README's table.
    pub fn describe(self) -> &'static str {
        match self {
            Parser::Text(_) | Parser::OptText(_) => "text",
            Parser::Quantity => "Kubernetes quantity",
            Parser::Port => "port, 1-65535",
            Parser::Id | Parser::OptId => "integer ≥ 0",
            Parser::Uint => "whole number ≥ 0",
            Parser::Bool => "`true`/`false` (Go `ParseBool`, also `enabled`/`disabled`)",
            Parser::GoBool => "`true`/`false` (Go `ParseBool`)",
            Parser::Switch => "`enabled`, `disabled`",
            Parser::Millis => "Go duration (`1s`), given to the proxy in whole milliseconds",
            Parser::Seconds => "Go duration (`1m`), given to the proxy in whole seconds",
            Parser::WholeSeconds => "Go duration (`1m`), in whole seconds",
            Parser::Ratio => "number more than 0 and less than 1 (`0.5`)",
            Parser::Ports => "ports and ranges, e.g. `25,4000-4010`",
            Parser::NamedPorts => {
                "ports, ranges and container port names, e.g. `25,4000-4010,mysql`"
            }
        }
    }
}

/// A value without its surrounding whitespace (a YAML block scalar ends with a newline, which
/// the API server refuses in an image).
fn trimmed(raw: Cow<'_, str>) -> Cow<'_, str> {
    match raw {
        Cow::Borrowed(b) => Cow::Borrowed(b.trim()),
        Cow::Owned(o) if o.trim().len() == o.len() => Cow::Owned(o),
        Cow::Owned(o) => Cow::Owned(o.trim().to_owned()),
    }
}

/// Where a setting's value goes in [`ProxyValues`].
#[derive(Clone, Copy)]
pub struct Slot {
    pub set: for<'a> fn(&mut ProxyValues<'a>, Value<'a>),
    pub get: for<'a> fn(&'a ProxyValues<'_>) -> Value<'a>,
}

/// A value another setting's annotation also sets, computed from that annotation's text.
#[derive(Clone, Copy)]
pub struct Derived {
    /// The annotation (a key of another row).
    pub from: &'static str,
    /// Its value (already checked by its own row's parser) made into this row's.
    pub value: fn(&str) -> Value<'static>,
    /// The releases in which it does (the CPU limit set the fixed cores before
    /// `proxy.runtime.workers`, then the maximum).
    pub applies: fn(&crate::release::Release) -> bool,
}

/// One setting.
pub struct Setting {
    /// Annotation keys, on the pod or its namespace: Linkerd's name first, then aliases. Empty
    /// for a value Linkerd reads only from its chart values (here: the config file).
    pub annotations: &'static [&'static str],
    /// Set (after the row's own annotation or default) from another row's annotation.
    pub derived: Option<Derived>,
    /// The key in Linkerd's linkerd-control-plane chart values ("" when only an annotation
    /// sets it).
    pub values_key: &'static str,
    /// `explain`'s label; consecutive rows with the same label share one line.
    pub label: &'static str,
    /// Text between this row's value and the previous one's on a shared `explain` line.
    pub join: &'static str,
    pub parser: Parser,
    /// What the value means, for README's table (empty: the parser's description).
    pub doc: &'static str,
    /// The default: the config's value (Linkerd's when the config does not set it).
    pub default: for<'c> fn(&'c Config) -> Value<'c>,
    /// `None`: the value is pod-specific (opaque ports) and resolved apart.
    pub slot: Option<Slot>,
}

impl Setting {
    /// Linkerd's annotation key, else (for a chart value only) its values key.
    pub fn key(&self) -> &'static str {
        self.annotations.first().copied().unwrap_or(self.values_key)
    }
}

/// How a field of [`ProxyValues`] takes and gives a [`Value`].
pub trait Field<'a> {
    fn assign(&mut self, v: Value<'a>);
    fn value(&self) -> Value<'_>;
}

impl<'a> Field<'a> for Cow<'a, str> {
    fn assign(&mut self, v: Value<'a>) {
        if let Value::Text(t) = v {
            *self = t;
        }
    }
    fn value(&self) -> Value<'_> {
        Value::Text(Cow::Borrowed(self))
    }
}

impl<'a> Field<'a> for Option<Cow<'a, str>> {
    fn assign(&mut self, v: Value<'a>) {
        if let Value::Opt(t) = v {
            *self = t;
        }
    }
    fn value(&self) -> Value<'_> {
        Value::Opt(self.as_deref().map(Cow::Borrowed))
    }
}

macro_rules! copy_field {
    ($t:ty, $variant:ident) => {
        impl Field<'_> for $t {
            fn assign(&mut self, v: Value<'_>) {
                if let Value::$variant(x) = v {
                    *self = x;
                }
            }
            fn value(&self) -> Value<'_> {
                Value::$variant(*self)
            }
        }
    };
}
copy_field!(u16, Port);
copy_field!(i64, Id);
copy_field!(Option<i64>, OptId);
copy_field!(bool, Bool);

impl Field<'_> for String {
    fn assign(&mut self, v: Value<'_>) {
        if let Value::Ports(p) = v {
            *self = p;
        }
    }
    fn value(&self) -> Value<'_> {
        Value::Ports(self.clone())
    }
}

pub(super) fn text(s: &str) -> Value<'_> {
    Value::Text(Cow::Borrowed(s))
}

pub(super) fn opt(s: &Option<String>) -> Value<'_> {
    Value::Opt(s.as_deref().map(Cow::Borrowed))
}

pub(super) fn ports(s: &str) -> Value<'static> {
    Value::Ports(PortList::parse(s).unwrap_or_default().render())
}

pub(super) fn named_ports(s: &str) -> Value<'static> {
    Value::Ports(PortList::parse_named(s).unwrap_or_default().render())
}

/// Request/limit pairs (annotation keys): a request above its limit is refused, as the API
/// server would refuse the pod.
pub const REQUEST_LIMIT_PAIRS: [(&str, &str); 3] = [
    (
        "config.linkerd.io/proxy-cpu-request",
        "config.linkerd.io/proxy-cpu-limit",
    ),
    (
        "config.linkerd.io/proxy-memory-request",
        "config.linkerd.io/proxy-memory-limit",
    ),
    (
        "config.linkerd.io/proxy-ephemeral-storage-request",
        "config.linkerd.io/proxy-ephemeral-storage-limit",
    ),
];

/// Every annotation key a setting reads (Linkerd's names and aliases).
pub fn override_keys() -> impl Iterator<Item = &'static str> {
    SETTINGS.iter().flat_map(|s| s.annotations.iter().copied())
}

/// The row an annotation key belongs to.
pub fn by_annotation(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.annotations.contains(&key))
}

/// The setting of a Linkerd values key.
pub fn by_values_key(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.values_key == key)
}

/// README's annotation table, rendered from the registry (a test keeps README equal to it).
pub fn markdown_table() -> String {
    let defaults = Config::default();
    let mut out = String::from(
        "| annotation | Linkerd values key | default | value |\n| --- | --- | --- | --- |\n",
    );
    for s in SETTINGS.iter().filter(|s| !s.annotations.is_empty()) {
        let keys: Vec<String> = s.annotations.iter().map(|k| format!("`{k}`")).collect();
        let default = match (s.default)(&defaults).display() {
            d if d.is_empty() => "(empty)".to_owned(),
            d if d == "(none)" => d,
            d => format!("`{d}`"),
        };
        let mut doc = if s.doc.is_empty() {
            s.parser.describe()
        } else {
            s.doc
        }
        .to_owned();
        let pod_only: Vec<String> = s
            .annotations
            .iter()
            .filter(|k| !crate::release::ever_passed_on(k))
            .map(|k| format!("`{k}`"))
            .collect();
        if pod_only.len() == s.annotations.len() {
            doc.push_str("; on the pod only (a namespace's is ignored, as by Linkerd)");
        } else if !pod_only.is_empty() {
            doc.push_str(&format!(
                "; {} on the pod only (a namespace's is ignored, as by Linkerd)",
                pod_only.join(", ")
            ));
        }
        let values_key = match s.values_key {
            "" => "(annotation only)".to_owned(),
            k => format!("`{k}`"),
        };
        out.push_str(&format!(
            "| {} | {values_key} | {default} | {doc} |\n",
            keys.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_annotation_key_is_unique_and_namespaced() {
        let keys: Vec<&str> = override_keys().collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), keys.len(), "a key is in two rows");
        for k in keys {
            assert!(
                k.starts_with("config.linkerd.io/")
                    || k.starts_with("config.alpha.linkerd.io/")
                    || k.starts_with("config.beta.linkerd.io/"),
                "{k}"
            );
            assert!(!crate::mesh::UNSUPPORTED_KEYS.contains(&k), "{k}");
        }
    }

    #[test]
    fn every_default_passes_its_own_parser() {
        let c = Config::default();
        for s in SETTINGS {
            let v = (s.default)(&c);
            s.parser
                .check_default(&v)
                .unwrap_or_else(|e| panic!("{}: {e}", s.key()));
        }
    }

    #[test]
    fn set_then_get_gives_the_value_back() {
        let c = Config::default();
        let mut v = crate::values::ProxyValues::from_config(&c, crate::decision::Mode::Enabled);
        for s in SETTINGS {
            let Some(slot) = s.slot else { continue };
            let d = (s.default)(&c);
            (slot.set)(&mut v, d.clone());
            assert_eq!((slot.get)(&v), d, "{}", s.key());
        }
    }

    #[test]
    fn readme_table_is_the_registry() {
        let readme = include_str!("../../README.md");
        let table = markdown_table();
        assert!(
            readme.contains(&table),
            "README.md's annotation table differs from the registry; replace it with:\n{table}"
        );
        for k in crate::mesh::UNSUPPORTED_KEYS {
            assert!(
                readme.contains(&format!("`{k}`")),
                "README does not list {k} as not supported"
            );
        }
    }
}
