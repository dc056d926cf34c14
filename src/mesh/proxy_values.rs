//! The resolved values of every setting of the registry, in one named struct the container
//! builders read.

use std::borrow::Cow;

use super::Mode;
use super::settings::{self, SETTINGS, Value};
use crate::config::Config;

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
