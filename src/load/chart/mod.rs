//! Linkerd's linkerd-control-plane chart values (`--values FILE`, and the `values` key of the
//! `linkerd-config` ConfigMap) applied over a [`Config`], Helm style: a key given replaces the
//! value under it, a key set to `null` removes the default (the setting becomes empty or
//! unset), a key absent keeps it. Linkerd's own conventions are followed: an empty image
//! version means `linkerdVersion`, an empty pull policy means `imagePullPolicy`, `gid: -1`
//! means no group, an empty `identityTrustDomain` means `clusterDomain`, empty resources and
//! timeouts mean unset.
//!
//! Every key of Linkerd's chart is known here, in one of three kinds: applied (it shapes the
//! injected pod and this injector writes it as Linkerd does), fixed (it shapes the pod, this
//! injector writes only the chart's default: another value is named in a warning), or ignored
//! (it does not shape injected pods: controller replicas, webhooks' own settings...). A key
//! unknown to the chart gets a warning naming it.

mod keys;
mod set;

use serde_json::Value as Json;

use crate::config::{Config, ConfigError};
use crate::release::{Change, Release};
use keys::{IGNORED, LEAF_MAPS, fixed, of_release};
use set::{Pending, resolve, set, text};

/// What applying a values document found that the user should know: keys unknown to
/// Linkerd's chart, and values this injector does not write as Linkerd would.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Notes {
    pub unknown: Vec<String>,
    pub unsupported: Vec<String>,
    /// The release whose chart the keys were read as (`Linkerd 2.18 (edge-25.4.4)`).
    pub release: String,
}

impl Notes {
    /// Nothing to say.
    pub fn is_empty(&self) -> bool {
        self.unknown.is_empty() && self.unsupported.is_empty()
    }

    /// One line per note, for logs and the CLI's stderr.
    pub fn lines(&self, source: &str) -> Vec<String> {
        let mut out = Vec::new();
        for k in &self.unknown {
            out.push(format!(
                "{source}: {k} is not a key of {}'s linkerd-control-plane chart values; it is ignored (check its spelling, and the release: --linkerd-version or linkerdVersion)",
                self.release
            ));
        }
        for k in &self.unsupported {
            out.push(format!(
                "{source}: {k} differs from Linkerd's default, which is all this injector writes; injected pods differ from Linkerd's here"
            ));
        }
        out
    }
}

/// Applies a YAML values document over `config`; `source` names it in errors.
pub fn apply(config: &mut Config, text: &str, source: &str) -> Result<Notes, ConfigError> {
    apply_tree(config, &parse(text, source)?, source)
}

/// A YAML values document as a tree (`null` when empty).
pub fn parse(text: &str, source: &str) -> Result<Json, ConfigError> {
    if text.trim().is_empty() {
        return Ok(Json::Null);
    }
    serde_saphyr::from_str(text).map_err(|e: serde_saphyr::Error| ConfigError::Values {
        source_name: source.to_owned(),
        message: e.without_snippet().to_string(),
    })
}

/// The release a values document's `linkerdVersion` names: `None` when it names none (absent,
/// empty, or not a release name, such as a development build's); an error when it names a
/// release outside the supported range.
pub fn release_of(tree: &Json, source: &str) -> Result<Option<Release>, ConfigError> {
    let Some(v) = tree.get("linkerdVersion").and_then(Json::as_str) else {
        return Ok(None);
    };
    if !Release::is_release_name(v) {
        return Ok(None);
    }
    Release::parse(v)
        .map(Some)
        .map_err(|e| ConfigError::Values {
            source_name: source.to_owned(),
            message: format!("linkerdVersion: {e}"),
        })
}

/// Applies a parsed values document over `config`, as the chart of `config.release` reads it.
pub fn apply_tree(config: &mut Config, tree: &Json, source: &str) -> Result<Notes, ConfigError> {
    let mut notes = Notes {
        release: config.release.describe(),
        ..Notes::default()
    };
    let mut pending = Pending::default();
    match tree {
        Json::Null => {}
        Json::Object(_) => walk(config, &mut pending, &mut notes, "", tree, source)?,
        _ => {
            return Err(ConfigError::Values {
                source_name: source.to_owned(),
                message: "expected a map of Linkerd chart values at the top".into(),
            });
        }
    }
    resolve(config, pending);
    config.validate().map_err(|e| match e {
        ConfigError::Invalid { key, value, reason } => ConfigError::Values {
            source_name: source.to_owned(),
            message: format!("{key} = {value:?} is not valid: {reason}"),
        },
        other => other,
    })?;
    Ok(notes)
}

fn walk(
    config: &mut Config,
    pending: &mut Pending,
    notes: &mut Notes,
    prefix: &str,
    node: &Json,
    source: &str,
) -> Result<(), ConfigError> {
    let Json::Object(map) = node else {
        return Ok(());
    };
    for (k, v) in map {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        if IGNORED.contains(&path.as_str()) {
            continue;
        }
        if !of_release(&path, &config.release) {
            notes.unknown.push(path);
            continue;
        }
        if let Some(default) = fixed(&path, &config.release) {
            let given = match v {
                Json::Object(m) if m.is_empty() => &Json::Null,
                Json::Array(a) if a.is_empty() => &Json::Null,
                Json::String(s) if s.is_empty() => &Json::Null,
                other => other,
            };
            if *given != default && !(default.is_null() && given.is_null()) {
                notes.unsupported.push(format!("{path} = {}", short(given)));
            }
            continue;
        }
        if path == "proxy.inbound" || path == "proxy.outbound" {
            // Linkerd renders exactly the parameters its values hold: a given map (or null)
            // replaces the defaults (the HTTP/2 keep-alive ones included).
            let inbound = path == "proxy.inbound";
            let h = match inbound {
                true => &mut config.proxy.inbound.server.http2,
                false => &mut config.proxy.outbound.server.http2,
            };
            h.keep_alive_interval.clear();
            h.keep_alive_timeout.clear();
            let prefix = if inbound {
                "LINKERD2_PROXY_INBOUND_"
            } else {
                "LINKERD2_PROXY_OUTBOUND_"
            };
            config.proxy.params.retain(|(n, _)| !n.starts_with(prefix));
            walk(config, pending, notes, &path, v, source)?;
            continue;
        }
        if v.is_null()
            && (path.starts_with("proxy.inbound.") || path.starts_with("proxy.outbound."))
        {
            continue;
        }
        // Before edge-25.11.3 `proxyInit.image` is read key by key.
        let leaf = LEAF_MAPS.contains(&path.as_str())
            && (path != "proxyInit.image" || config.release.has(Change::InitFromProxyImage));
        if v.is_object() && !leaf {
            walk(config, pending, notes, &path, v, source)?;
            continue;
        }
        if path == "proxy.tracing.labels" {
            // A map merged into the default one, Helm style (a key set to null removes it).
            let labels = &mut config.proxy.tracing.labels;
            match v {
                Json::Null => labels.clear(),
                Json::Object(m) => {
                    for (k, lv) in m {
                        if lv.is_null() {
                            labels.remove(k);
                            continue;
                        }
                        let t = text(lv).map_err(|reason| ConfigError::Values {
                            source_name: source.to_owned(),
                            message: format!("{path}.{k}: {reason}"),
                        })?;
                        labels.insert(k.clone(), t);
                    }
                }
                _ => {
                    return Err(ConfigError::Values {
                        source_name: source.to_owned(),
                        message: format!("{path} must be a map of attribute names to values"),
                    });
                }
            }
            continue;
        }
        match set(config, pending, &path, v) {
            Ok(true) => {}
            Ok(false) => notes.unknown.push(path),
            Err(reason) => {
                return Err(ConfigError::Values {
                    source_name: source.to_owned(),
                    message: format!("{path} = {} is not valid: {reason}", short(v)),
                });
            }
        }
    }
    Ok(())
}

/// A value as a warning quotes it: compact JSON, at most 64 characters.
fn short(v: &Json) -> String {
    let s = v.to_string();
    match s.char_indices().nth(64) {
        Some((i, _)) => format!("{}… ({} bytes)", &s[..i], s.len()),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(yaml: &str) -> (Config, Notes) {
        let mut c = Config::default();
        let notes = apply(&mut c, yaml, "values.yaml").unwrap();
        (c, notes)
    }

    #[test]
    fn the_charts_defaults_change_nothing() {
        let yaml = "clusterDomain: cluster.local\nimagePullPolicy: IfNotPresent\n\
            linkerdVersion: edge-26.8.3\ndisableIPv6: true\ncniEnabled: false\n\
            identityTrustDomain: \"\"\nproxy:\n  image:\n    name: cr.l5d.io/linkerd/proxy\n\
            \x20   pullPolicy: \"\"\n    version: \"\"\n  gid: -1\n  uid: 2102\n  cores:\n\
            \x20 resources:\n    cpu:\n      limit: \"\"\n      request: \"\"\n  securityContext: {}\n\
            \x20 shutdownGracePeriod: \"\"\n  nativeSidecar: true\n  tracing:\n    enabled: false\n\
            \x20   labels:\n      k8s.pod.ip: \"$(_pod_ip)\"\nproxyInit:\n  iptablesMode: nft\n\
            \x20 runAsUser: 65534\n  runAsGroup: 65534\n  xtMountPath:\n    mountPath: /run\n\
            \x20   name: linkerd-proxy-init-xtables-lock\nproxyInjector:\n  timeoutSeconds: 10\n\
            debugContainer:\n  image:\n    name: cr.l5d.io/linkerd/debug\n    pullPolicy: \"\"\n\
            \x20   version: \"\"\nidentity:\n  serviceAccountTokenProjection: true\n  issuer:\n\
            \x20   scheme: linkerd.io/tls\n";
        let (c, notes) = applied(yaml);
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(c, Config::default());
    }

    #[test]
    fn keys_set_replace_defaults_and_fallbacks_follow_linkerd() {
        let (c, _) = applied(
            "linkerdVersion: stable-2.14.10\nimagePullPolicy: Always\nclusterDomain: example.org\n\
             identityTrustDomain: \"\"\nproxy:\n  ports:\n    admin: 5191\n  gid: 3000\n\
             \x20 resources:\n    ephemeral-storage:\n      limit: 1Gi\nproxyInit:\n\
             \x20 ignoreInboundPorts: \"4567\"\n",
        );
        assert_eq!(c.proxy.image.version, "stable-2.14.10");
        assert_eq!(c.debug.image.version, "stable-2.14.10");
        assert_eq!(c.proxy.image_pull_policy, "Always");
        assert_eq!(c.identity_trust_domain, "example.org");
        assert_eq!(c.proxy.ports.admin, 5191);
        assert_eq!(c.proxy.gid, Some(3000));
        assert_eq!(
            c.proxy.resources.ephemeral_storage.limit.as_deref(),
            Some("1Gi")
        );
        assert_eq!(c.proxy_init.skip_inbound_ports, "4567");
    }

    #[test]
    fn null_removes_a_default() {
        let (c, _) = applied("proxy:\n  opaquePorts: null\n  inboundConnectTimeout: null\n");
        assert_eq!(c.proxy.opaque_ports, "");
        assert_eq!(c.proxy.inbound_connect_timeout, None);
    }

    #[test]
    fn unknown_and_unsupported_keys_are_named() {
        let (_, notes) = applied(
            "proxy:\n  logLevl: debug\n  securityContext:\n    runAsUser: 5\nfoo: 1\n\
             proxyInit:\n  xtMountPath:\n    mountPath: /xt\n",
        );
        assert_eq!(notes.unknown, vec!["foo", "proxy.logLevl"]);
        assert_eq!(
            notes.unsupported,
            vec![
                "proxy.securityContext = {\"runAsUser\":5}",
                "proxyInit.xtMountPath.mountPath = \"/xt\""
            ]
        );
        let lines = notes.lines("values.yaml");
        assert!(lines[0].contains("foo"), "{lines:?}");
    }

    #[test]
    fn keys_edge_26_8_3_ignores_or_defaults_to_are_not_reported() {
        let (_, notes) = applied(
            "networkValidator:\n  securityContext:\n    allowPrivilegeEscalation: false\n\
             \x20   capabilities:\n      drop: [ALL]\n    readOnlyRootFilesystem: true\n\
             \x20   runAsGroup: 65534\n    runAsNonRoot: true\n    runAsUser: 65534\n\
             \x20   seccompProfile:\n      type: RuntimeDefault\n",
        );
        assert!(notes.is_empty(), "{notes:?}");
        // An older chart's separate proxy-init image has no effect in edge-26.8.3: named.
        let (c, notes) = applied(
            "proxyInit:\n  image:\n    name: cr.l5d.io/linkerd/proxy-init\n    version: v2.2.3\n",
        );
        assert_eq!(c.proxy_init.image, None);
        assert_eq!(notes.unsupported.len(), 1, "{notes:?}");
        assert!(
            notes.unsupported[0].starts_with("proxyInit.image"),
            "{notes:?}"
        );
    }

    #[test]
    fn inbound_and_outbound_parameters_become_env_names() {
        let (c, notes) = applied(
            "proxy:\n  outbound:\n    server:\n      http1:\n        maxConnsPerHost: 5\n\
             \x20 inbound:\n    HTTPServer:\n      http2:\n        keepAlive-x: a\n",
        );
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(
            c.proxy.params,
            [
                (
                    "LINKERD2_PROXY_INBOUND_HTTP_SERVER_HTTP2_KEEP_ALIVE_X".to_owned(),
                    "a".to_owned()
                ),
                (
                    "LINKERD2_PROXY_OUTBOUND_SERVER_HTTP1_MAX_CONNS_PER_HOST".to_owned(),
                    "5".to_owned()
                ),
            ]
        );
        let mut c = Config::default();
        let e = apply(
            &mut c,
            "proxy:\n  inbound:\n    a b:\n      c:\n        d: 1\n",
            "v",
        )
        .unwrap_err();
        assert!(e.to_string().contains("env name"), "{e}");
        let e = apply(
            &mut c,
            "proxy:\n  additionalEnv:\n  - {name: A, value: 1}\n",
            "v",
        )
        .unwrap_err();
        assert!(e.to_string().contains("proxy.additionalEnv"), "{e}");
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let mut c = Config::default();
        let e = apply(&mut c, "proxy:\n  ports:\n    admin: 70000\n", "v.yaml").unwrap_err();
        assert!(e.to_string().contains("proxy.ports.admin"), "{e}");
        let e = apply(&mut c, "proxy:\n  logFormat: xml\n", "v.yaml").unwrap_err();
        assert!(e.to_string().contains("proxy.logFormat"), "{e}");
        let e = apply(&mut c, "- a\n", "v.yaml").unwrap_err();
        assert!(e.to_string().contains("v.yaml"), "{e}");
    }

    #[test]
    fn yaml_anchors_as_in_linkerds_values_are_read() {
        let (_, notes) =
            applied("kubeAPI: &kubeapi\n  clientQPS: 100\nidentity:\n  kubeAPI: *kubeapi\n");
        assert!(notes.is_empty(), "{notes:?}");
    }
}
