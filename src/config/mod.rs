//! The injector's configuration: one type, read from an optional YAML file, whose defaults are
//! Linkerd's. Every value the patch uses comes from here (or from a per-workload override of it).

use serde::Deserialize;
use std::path::PathBuf;

use crate::release::{Change, Release};

mod proxy;

pub use proxy::{
    Control, Http2, Metrics, Ports, ProxyConfig, Runtime, Server, Side, Streams, Tracing, Workers,
};

/// What to do with a pod whose `config.linkerd.io/*` override does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BadOverridePolicy {
    /// Admit the pod without the proxy, with a warning that names the annotation.
    AdmitUninjected,
    /// Refuse the pod, with a message that names the annotation.
    Deny,
}

/// What to do with a pod that the API server's own admission (PodSecurity, ResourceQuota,
/// LimitRange) would refuse once injected, though it would admit it as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RefusalPolicy {
    /// Admit the pod without the proxy, with a warning and an Event naming the rule and the fix.
    AdmitUninjected,
    /// Refuse the pod, with that message.
    Deny,
    /// Inject as Linkerd does (for clusters whose PodSecurity exemptions the injector cannot
    /// see).
    Off,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Image {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct RequestLimit {
    pub request: Option<String>,
    pub limit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Resources {
    pub cpu: RequestLimit,
    pub memory: RequestLimit,
    pub ephemeral_storage: RequestLimit,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ProxyInitConfig {
    /// A separate proxy-init image (its own entrypoint); `null` (Linkerd edge-26.8.3's way):
    /// `linkerd-init` runs `/usr/lib/linkerd/linkerd2-proxy-init` from the proxy image.
    pub image: Option<Image>,
    /// The separate image's pull policy (Linkerd's `proxyInit.image.pullPolicy`, else its
    /// `imagePullPolicy`).
    pub image_pull_policy: String,
    /// `linkerd-init`'s own resources; `null` (Linkerd edge-26.8.3's way): the proxy's.
    pub resources: Option<Resources>,
    /// `nft` (`iptables-nft`, Linkerd's default) or `legacy` (the image's `iptables`).
    pub iptables_mode: String,
    /// Inbound ports that never go through the proxy (in addition to the control and admin ports).
    pub skip_inbound_ports: String,
    /// Outbound ports that never go through the proxy.
    pub skip_outbound_ports: String,
    pub skip_subnets: String,
    pub run_as_root: bool,
    /// proxy-init's own log level and format (`--log-level`, `--log-format`; empty: its own).
    pub log_level: String,
    pub log_format: String,
    /// `--timeout-close-wait-secs` (needs `runAsRoot`; makes `linkerd-init` privileged).
    pub close_wait_timeout_secs: u32,
    pub privileged: bool,
    /// `linkerd-init`'s user and group when not root (0 means 65534, as in Linkerd's chart).
    pub run_as_user: i64,
    pub run_as_group: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct DebugConfig {
    pub image: Image,
    /// The debug container's pull policy (Linkerd's `debugContainer.image.pullPolicy`).
    pub image_pull_policy: String,
}

/// CNI mode's `linkerd-network-validator` (Linkerd's `networkValidator` values).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct NetworkValidatorConfig {
    pub log_level: String,
    pub log_format: String,
    /// Where it connects to check the redirect (empty: `1.1.1.1:20001`, IPv6 `[fd00::1]:20001`).
    pub connect_addr: String,
    /// Where it listens, as the proxy's outbound port would (empty: `0.0.0.0:4140`, IPv6
    /// `[::]:4140`).
    pub listen_addr: String,
    pub timeout: String,
}

impl Default for NetworkValidatorConfig {
    fn default() -> Self {
        NetworkValidatorConfig {
            log_level: "debug".into(),
            log_format: "plain".into(),
            connect_addr: String::new(),
            listen_addr: String::new(),
            timeout: "10s".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Config {
    /// Namespace of the mesh control plane (destination, identity, policy services live there).
    pub control_plane_namespace: String,
    pub cluster_domain: String,
    pub identity_trust_domain: String,
    /// PEM file with the identity trust anchors, handed to every proxy.
    pub trust_anchors_file: Option<PathBuf>,
    /// The mesh CNI plugin sets up the redirect: no `linkerd-init` container.
    pub cni_enabled: bool,
    /// The proxy listens on IPv4 only and `linkerd-init` programs no ip6tables rules
    /// (Linkerd's `disableIPv6`, on by default); off: the proxy also listens on `[::]`.
    #[serde(rename = "disableIPv6")]
    pub disable_ipv6: bool,
    /// The proxy proves its identity with a projected token of its own (Linkerd's
    /// `identity.serviceAccountTokenProjection`, on by default); off: with the pod's
    /// service-account token, so a pod that does not mount it is not injected.
    pub service_account_token_projection: bool,
    pub bad_override: BadOverridePolicy,
    /// A pod the API server's PodSecurity, ResourceQuota or LimitRange admission would refuse
    /// once injected.
    pub api_server_refusal: RefusalPolicy,
    /// `POST /warn`: deny (instead of only warning about) objects with mesh mistakes.
    pub strict_warnings: bool,
    pub proxy: ProxyConfig,
    pub proxy_init: ProxyInitConfig,
    pub debug: DebugConfig,
    pub network_validator: NetworkValidatorConfig,
    /// Filled from `trust_anchors_file` at load time; not a config key.
    #[serde(skip)]
    pub trust_anchors_pem: Option<String>,
    /// The Linkerd release whose pods are made (`--linkerd-version`, the values'
    /// `linkerdVersion`, else the newest); chosen when the config is built, not a config key.
    #[serde(skip)]
    pub release: Release,
}

/// The version of the Linkerd proxy this injector's defaults correspond to.
pub const DEFAULT_PROXY_VERSION: &str = "edge-26.8.3";
/// The separate proxy-init image Linkerd ran `linkerd-init` from before edge-25.11.3.
pub const PROXY_INIT_IMAGE: &str = "cr.l5d.io/linkerd/proxy-init";

impl Default for ProxyInitConfig {
    fn default() -> Self {
        ProxyInitConfig {
            image: None,
            image_pull_policy: "IfNotPresent".into(),
            resources: None,
            iptables_mode: "nft".into(),
            skip_inbound_ports: "4567,4568".into(),
            skip_outbound_ports: "4567,4568".into(),
            skip_subnets: String::new(),
            run_as_root: false,
            log_level: String::new(),
            log_format: String::new(),
            close_wait_timeout_secs: 0,
            privileged: false,
            run_as_user: 65534,
            run_as_group: 65534,
        }
    }
}

impl Default for DebugConfig {
    fn default() -> Self {
        DebugConfig {
            image: Image {
                name: "cr.l5d.io/linkerd/debug".into(),
                version: DEFAULT_PROXY_VERSION.into(),
            },
            image_pull_policy: "IfNotPresent".into(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            control_plane_namespace: "linkerd".into(),
            cluster_domain: "cluster.local".into(),
            identity_trust_domain: "cluster.local".into(),
            trust_anchors_file: None,
            cni_enabled: false,
            disable_ipv6: true,
            service_account_token_projection: true,
            bad_override: BadOverridePolicy::AdmitUninjected,
            api_server_refusal: RefusalPolicy::AdmitUninjected,
            strict_warnings: false,
            proxy: ProxyConfig::default(),
            proxy_init: ProxyInitConfig::default(),
            debug: DebugConfig::default(),
            network_validator: NetworkValidatorConfig::default(),
            trust_anchors_pem: None,
            release: Release::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config value {key} = {value:?} is not valid: {reason}")]
    Invalid {
        key: &'static str,
        value: String,
        reason: String,
    },
    #[error("Linkerd values in {source_name} are not valid: {message}")]
    Values {
        source_name: String,
        message: String,
    },
    #[error("--linkerd-version: {0}")]
    Release(crate::release::NotSupported),
    #[error("cannot read trust anchors file {path}: {source}")]
    TrustAnchors {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Config {
    /// The defaults of `release`: Linkerd's chart values as that release has them.
    pub fn for_release(release: &Release) -> Config {
        let mut c = Config::default();
        c.set_release(release, &|_| false);
        c
    }

    /// Makes this the config of `release`: the defaults that differ between releases are set
    /// to that release's, except where `given(key)` (a key this injector's file sets).
    pub(crate) fn set_release(&mut self, r: &Release, given: &dyn Fn(&str) -> bool) {
        if !given("proxy.image.version") {
            self.proxy.image.version = r.image_version();
        }
        if !given("debug.image.version") {
            self.debug.image.version = r.image_version();
        }
        if !given("proxyInit.image") {
            self.proxy_init.image = r.proxy_init_version().map(|v| Image {
                name: PROXY_INIT_IMAGE.into(),
                version: v.into(),
            });
        }
        if !given("proxyInit.iptablesMode") && !r.has(Change::IptablesNft) {
            self.proxy_init.iptables_mode = "legacy".into();
        }
        if !given("proxy.nativeSidecar") && !r.has(Change::NativeDefault) {
            self.proxy.native_sidecar = false;
        }
        self.release = r.clone();
    }

    /// Whether the proxy exports traces (`proxy.tracing`, from edge-25.6.4).
    pub fn tracing(&self) -> bool {
        self.proxy.tracing.enabled && self.release.has(Change::Tracing)
    }

    /// Whether traced proxies get the `linkerd-podinfo` volume (not from edge-25.10.1 to
    /// edge-25.10.7, where Linkerd's chart still looked for the old key).
    pub fn tracing_volume(&self) -> bool {
        self.tracing()
            && (self.release.has(Change::TracingVolume)
                || !self.release.has(Change::TracingEnabled))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn defaults_are_linkerds() {
        let c = Config::default();
        assert_eq!(c.proxy.uid, 2102);
        assert_eq!(
            c.proxy.ports,
            Ports {
                inbound: 4143,
                outbound: 4140,
                admin: 4191,
                control: 4190
            }
        );
        assert_eq!(c.proxy.image.name, "cr.l5d.io/linkerd/proxy");
        assert_eq!(
            c.proxy.opaque_ports,
            "25,587,3306,4444,5432,6379,9300,11211"
        );
        c.validate().unwrap();
    }

    #[test]
    fn readmes_config_example_is_a_valid_config_of_the_defaults() {
        let readme = include_str!("../../README.md");
        let start = readme
            .find("```yaml\ncontrolPlaneNamespace")
            .expect("README has the config example");
        let body = &readme[start + 8..];
        let body = &body[..body.find("```").unwrap()];
        let c = Config::from_yaml(body, Path::new("README.md")).unwrap();
        assert_eq!(
            Config {
                trust_anchors_file: None,
                ..c
            },
            Config::default(),
            "README's example shows every default"
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_yaml("proxy:\n  uidd: 5\n", Path::new("c.yaml")).unwrap_err();
        assert!(err.to_string().contains("uidd"), "{err}");
        let err = Config::from_yaml("controlPlaneNamespac: x\n", Path::new("c.yaml")).unwrap_err();
        assert!(err.to_string().contains("controlPlaneNamespac"), "{err}");
    }

    #[test]
    fn partial_file_keeps_other_defaults() {
        let c = Config::from_yaml(
            "cniEnabled: true\nproxy:\n  ports:\n    admin: 5000\n",
            Path::new("c"),
        )
        .unwrap();
        assert!(c.cni_enabled);
        assert_eq!(c.proxy.ports.admin, 5000);
        assert_eq!(c.proxy.ports.inbound, 4143);
        assert_eq!(c.proxy.uid, 2102);
    }

    #[test]
    fn bad_value_in_file_fails_at_start() {
        let err = Config::from_yaml("proxy:\n  logFormat: xml\n", Path::new("c")).unwrap_err();
        assert!(err.to_string().contains("proxy.logFormat"), "{err}");
        let err = Config::from_yaml("badOverride: explode\n", Path::new("c")).unwrap_err();
        assert!(err.to_string().contains("explode"), "{err}");
    }

    #[test]
    fn proxy_runtime_values_are_checked_at_start() {
        let c = Config::from_yaml(
            "proxy:\n  runtime:\n    workers:\n      maximumCPURatio: 0.50\n",
            Path::new("c"),
        )
        .unwrap();
        assert_eq!(
            c.proxy.runtime.workers.maximum_cpu_ratio.as_deref(),
            Some("0.5")
        );
        assert_eq!(c.proxy.runtime.workers.minimum, 1);
        for (yaml, key) in [
            (
                "proxy:\n  runtime:\n    workers:\n      maximumCPURatio: 1.5\n",
                "proxy.runtime.workers.maximumCPURatio",
            ),
            (
                "proxy:\n  inboundConnectTimeout: 1d\n",
                "proxy.inboundConnectTimeout",
            ),
            (
                "proxy:\n  control:\n    streams:\n      lifetime: forever\n",
                "proxy.control.streams.lifetime",
            ),
            (
                "proxy:\n  requireIdentityOnInboundPorts: http\n",
                "proxy.requireIdentityOnInboundPorts",
            ),
        ] {
            let err = Config::from_yaml(yaml, Path::new("c")).unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn opaque_ports_may_name_container_ports_skip_ports_may_not() {
        let c = Config::from_yaml("proxy:\n  opaquePorts: 25,mysql\n", Path::new("c")).unwrap();
        assert_eq!(c.proxy.opaque_ports, "25,mysql");
        let err = Config::from_yaml("proxy:\n  opaquePorts: My_SQL\n", Path::new("c")).unwrap_err();
        assert!(err.to_string().contains("proxy.opaquePorts"), "{err}");
        let err = Config::from_yaml("proxyInit:\n  skipInboundPorts: mysql\n", Path::new("c"))
            .unwrap_err();
        assert!(err.to_string().contains("skipInboundPorts"), "{err}");
    }
}
