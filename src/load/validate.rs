//! The config's checks at start-up: every value with the parser its annotation has, and the
//! rules Linkerd's chart enforces between values (as the release has them).

use crate::config::{Config, ConfigError};
use crate::overrides::{self, PortList};
use crate::release::Change;

impl Config {
    /// Checks every default the same way an annotation override is checked, so that a bad
    /// config fails at start-up rather than on the first pod.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn check<T>(
            key: &'static str,
            value: &str,
            parse: impl Fn(&str) -> Result<T, String>,
        ) -> Result<(), ConfigError> {
            parse(value)
                .map(|_| ())
                .map_err(|reason| ConfigError::Invalid {
                    key,
                    value: value.to_owned(),
                    reason,
                })
        }
        let p = &self.proxy;
        check("proxy.logLevel", &p.log_level, overrides::parse_log_level)?;
        check(
            "proxy.logHTTPHeaders",
            &p.log_http_headers,
            overrides::parse_log_http_headers,
        )?;
        check(
            "proxy.logFormat",
            &p.log_format,
            overrides::parse_log_format,
        )?;
        for (key, v) in [
            (
                "networkValidator.logLevel",
                &self.network_validator.log_level,
            ),
            (
                "networkValidator.logFormat",
                &self.network_validator.log_format,
            ),
            (
                "networkValidator.connectAddr",
                &self.network_validator.connect_addr,
            ),
            (
                "networkValidator.listenAddr",
                &self.network_validator.listen_addr,
            ),
        ] {
            check(key, v, one_word)?;
        }
        check(
            "networkValidator.timeout",
            &self.network_validator.timeout,
            overrides::parse_duration,
        )?;
        check(
            "debugContainer.image.pullPolicy",
            &self.debug.image_pull_policy,
            overrides::parse_pull_policy,
        )?;
        check(
            "proxy.imagePullPolicy",
            &p.image_pull_policy,
            overrides::parse_pull_policy,
        )?;
        check("proxy.opaquePorts", &p.opaque_ports, PortList::parse_named)?;
        check(
            "proxy.defaultInboundPolicy",
            &p.default_inbound_policy,
            overrides::parse_inbound_policy,
        )?;
        check(
            "proxy.clusterNetworks",
            &p.cluster_networks,
            overrides::parse_subnets,
        )?;
        check(
            "proxyInit.skipInboundPorts",
            &self.proxy_init.skip_inbound_ports,
            PortList::parse,
        )?;
        check(
            "proxyInit.skipOutboundPorts",
            &self.proxy_init.skip_outbound_ports,
            PortList::parse,
        )?;
        check(
            "proxyInit.skipSubnets",
            &self.proxy_init.skip_subnets,
            overrides::parse_subnets,
        )?;
        if let Some(g) = &p.shutdown_grace_period {
            check("proxy.shutdownGracePeriod", g, overrides::parse_duration)?;
        }
        check("proxy.uid", &p.uid.to_string(), overrides::parse_uid)?;
        let init = &self.proxy_init;
        check(
            "proxyInit.runAsUser",
            &init.run_as_user.to_string(),
            overrides::parse_uid,
        )?;
        check(
            "proxyInit.runAsGroup",
            &init.run_as_group.to_string(),
            overrides::parse_uid,
        )?;
        for (key, v) in [
            ("proxyInit.logLevel", &init.log_level),
            ("proxyInit.logFormat", &init.log_format),
        ] {
            check(key, v, one_word)?;
        }
        let t = &self.proxy.tracing;
        if self.tracing() {
            // The collector's identity is required from edge-25.10.1.
            let identity = self.release.has(Change::TracingEnabled);
            for (key, v) in [
                ("proxy.tracing.collector.endpoint", &t.collector_endpoint),
                (
                    "proxy.tracing.collector.meshIdentity.serviceAccountName",
                    &t.collector_service_account,
                ),
                (
                    "proxy.tracing.collector.meshIdentity.namespace",
                    &t.collector_namespace,
                ),
            ]
            .into_iter()
            .take(if identity { 3 } else { 1 })
            {
                if v.trim().is_empty() {
                    return Err(ConfigError::Invalid {
                        key,
                        value: String::new(),
                        reason: "must be set when proxy tracing is enabled (as in Linkerd's chart)"
                            .into(),
                    });
                }
            }
        }
        if p.native_sidecar
            && p.wait_before_exit_seconds > 0
            && !self.release.has(Change::NativeDefault)
        {
            return Err(ConfigError::Invalid {
                key: "proxy.waitBeforeExitSeconds",
                value: p.wait_before_exit_seconds.to_string(),
                reason: format!(
                    "cannot be used with proxy.nativeSidecar in {} (as in its chart)",
                    self.release
                ),
            });
        }
        if init.close_wait_timeout_secs > 0 && !init.run_as_root && self.release.has(Change::PodUid)
        {
            return Err(ConfigError::Invalid {
                key: "proxyInit.closeWaitTimeoutSecs",
                value: init.close_wait_timeout_secs.to_string(),
                reason: "needs proxyInit.runAsRoot: true (as in Linkerd's chart)".into(),
            });
        }
        if !["nft", "legacy"].contains(&self.proxy_init.iptables_mode.as_str()) {
            return Err(ConfigError::Invalid {
                key: "proxyInit.iptablesMode",
                value: self.proxy_init.iptables_mode.clone(),
                reason: "expected nft or legacy".into(),
            });
        }
        for (key, rl) in [
            ("proxy.resources", Some(&p.resources)),
            ("proxyInit.resources", self.proxy_init.resources.as_ref()),
        ] {
            let Some(rl) = rl else { continue };
            for (q, what) in [
                (&rl.cpu.request, "cpu.request"),
                (&rl.cpu.limit, "cpu.limit"),
                (&rl.memory.request, "memory.request"),
                (&rl.memory.limit, "memory.limit"),
                (&rl.ephemeral_storage.request, "ephemeralStorage.request"),
                (&rl.ephemeral_storage.limit, "ephemeralStorage.limit"),
            ] {
                if let Some(v) = q {
                    overrides::parse_quantity(v).map_err(|reason| ConfigError::Invalid {
                        key,
                        value: format!("{what}: {v}"),
                        reason,
                    })?;
                }
            }
        }
        for (key, port) in [
            ("proxy.ports.inbound", p.ports.inbound),
            ("proxy.ports.outbound", p.ports.outbound),
            ("proxy.ports.admin", p.ports.admin),
            ("proxy.ports.control", p.ports.control),
        ] {
            if port == 0 {
                return Err(ConfigError::Invalid {
                    key,
                    value: "0".into(),
                    reason: "a port must be in 1-65535".into(),
                });
            }
        }
        for (key, image) in [
            ("proxy.image", Some(&p.image)),
            ("proxyInit.image", self.proxy_init.image.as_ref()),
            ("debug.image", Some(&self.debug.image)),
        ] {
            let Some(image) = image else { continue };
            if image.name.is_empty() || image.version.is_empty() {
                return Err(ConfigError::Invalid {
                    key,
                    value: format!("{}:{}", image.name, image.version),
                    reason: "both name and version are needed".into(),
                });
            }
        }
        // Every other setting the registry reads from here, with its annotation's parser.
        for s in crate::mesh::SETTINGS
            .iter()
            .filter(|s| !s.values_key.is_empty())
        {
            let v = (s.default)(self);
            s.parser
                .check_default(&v)
                .map_err(|reason| ConfigError::Invalid {
                    key: s.values_key,
                    value: v.display(),
                    reason,
                })?;
        }
        Ok(())
    }
}

/// A value written as one container argument: printable, no spaces.
fn one_word(t: &str) -> Result<(), String> {
    if t.chars().all(|c| c.is_ascii_graphic()) {
        Ok(())
    } else {
        Err("expected one word without spaces".to_owned())
    }
}
