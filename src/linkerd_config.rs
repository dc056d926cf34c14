//! In a Linkerd cluster, Linkerd's own configuration, followed live: the `values` key of the
//! `linkerd-config` ConfigMap (Linkerd's chart values) and `ca-bundle.crt` of
//! `linkerd-identity-trust-roots` (the trust anchors), both in the control-plane namespace.
//! Two watches (list and watch of one named ConfigMap each, no read per request); every change
//! rebuilds the config (this injector's `--config`/`--values`, then the ConfigMap's values,
//! then the trust roots) and swaps it in for the next review, so Linkerd's trust-anchor
//! rotation works without a restart. A change that does not give a valid config is refused:
//! the last good config stays in use, the refusal is logged and counted, and `/readyz` says so.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use crate::admission::SharedAdmission;
use crate::config::Config;
use crate::load::Sources;
use crate::metrics::Metrics;

pub const VALUES_CONFIGMAP: &str = "linkerd-config";
pub const VALUES_KEY: &str = "values";
pub const TRUST_ROOTS_CONFIGMAP: &str = "linkerd-identity-trust-roots";
pub const TRUST_ROOTS_KEY: &str = "ca-bundle.crt";

/// What readiness says of Linkerd's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Not both ConfigMaps read yet (or never a valid config): the reason.
    Waiting(String),
    /// The ConfigMaps' config is in use.
    Applied,
    /// A later change was refused; the last good config is in use. The reason.
    KeptLastGood(String),
}

/// Shared between the watch and `/readyz`.
#[derive(Debug)]
pub struct ConfigStatus(Mutex<Status>);

impl ConfigStatus {
    pub fn new(namespace: &str) -> ConfigStatus {
        ConfigStatus(Mutex::new(Status::Waiting(format!(
            "waiting for ConfigMaps {VALUES_CONFIGMAP} and {TRUST_ROOTS_CONFIGMAP} in {namespace}"
        ))))
    }

    pub fn get(&self) -> Status {
        self.0
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn set(&self, s: Status) {
        match self.0.lock() {
            Ok(mut g) => *g = s,
            Err(p) => *p.into_inner() = s,
        }
    }
}

/// The two ConfigMaps' contents as last seen (`None`: not seen, or without the key).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Seen {
    pub values: Option<String>,
    pub trust_roots: Option<String>,
}

/// The config from `sources` and what the ConfigMaps hold; the values' notes (unknown keys,
/// unsupported values), one line each. `Err`: why the ConfigMaps do not give a valid config.
pub fn build(
    sources: &Sources,
    seen: &Seen,
    namespace: &str,
) -> Result<(Config, Vec<String>), String> {
    let (Some(values), Some(roots)) = (&seen.values, &seen.trust_roots) else {
        let missing: Vec<String> = [
            (
                seen.values.is_none(),
                format!("{VALUES_CONFIGMAP} (key {VALUES_KEY})"),
            ),
            (
                seen.trust_roots.is_none(),
                format!("{TRUST_ROOTS_CONFIGMAP} (key {TRUST_ROOTS_KEY})"),
            ),
        ]
        .into_iter()
        .filter_map(|(m, name)| m.then_some(name))
        .collect();
        return Err(format!(
            "waiting for ConfigMap {} in {namespace}",
            missing.join(" and ")
        ));
    };
    let source = format!("ConfigMap {namespace}/{VALUES_CONFIGMAP}");
    // Built again from the sources: the ConfigMap's `linkerdVersion` chooses the release
    // whose defaults everything applies over (so `linkerd upgrade` is followed).
    let (mut config, notes) = sources
        .with_values(&source, values)
        .build()
        .map_err(|e| e.to_string())?;
    if roots.trim().is_empty() {
        return Err(format!(
            "ConfigMap {namespace}/{TRUST_ROOTS_CONFIGMAP} has an empty {TRUST_ROOTS_KEY}"
        ));
    }
    config.trust_anchors_pem = Some(roots.clone());
    Ok((config, notes))
}

/// Starts the two watches; each valid change is swapped into `shared`.
pub fn watch(
    client: Client,
    base: &Config,
    sources: Sources,
    shared: SharedAdmission,
    metrics: Arc<Metrics>,
    status: Arc<ConfigStatus>,
) {
    let namespace = base.control_plane_namespace.clone();
    let api: Api<ConfigMap> = Api::namespaced(client, &namespace);
    let one = |name: &'static str| {
        watcher(
            api.clone(),
            watcher::Config::default().fields(&format!("metadata.name={name}")),
        )
        .default_backoff()
        .applied_objects()
        .boxed()
    };
    let mut stream = futures::stream::select(one(VALUES_CONFIGMAP), one(TRUST_ROOTS_CONFIGMAP));
    tokio::spawn(async move {
        let mut seen = Seen::default();
        let mut applied: Option<Seen> = None;
        while let Some(item) = stream.next().await {
            let cm = match item {
                Ok(cm) => cm,
                Err(e) => {
                    tracing::warn!(error = %e, namespace, "watch of Linkerd's ConfigMaps failed; retrying (the last good config stays in use)");
                    continue;
                }
            };
            let data = cm.data.unwrap_or_default();
            match cm.metadata.name.as_deref() {
                Some(VALUES_CONFIGMAP) => seen.values = data.get(VALUES_KEY).cloned(),
                Some(TRUST_ROOTS_CONFIGMAP) => {
                    seen.trust_roots = data.get(TRUST_ROOTS_KEY).cloned()
                }
                _ => continue,
            }
            if applied.as_ref() == Some(&seen) {
                // Back to what is in use (a refused change reverted): nothing is refused now.
                status.set(Status::Applied);
                continue;
            }
            match build(&sources, &seen, &namespace) {
                Ok((config, notes)) => {
                    for n in notes {
                        tracing::warn!(note = %n, "Linkerd values");
                    }
                    let sha = crate::patch::trust_root_sha256(&config);
                    let next = shared.load().with_config(Arc::new(config));
                    shared.store(next);
                    applied = Some(seen.clone());
                    metrics.config_reload("applied");
                    status.set(Status::Applied);
                    tracing::info!(namespace, trust_root_sha256 = %sha, "Linkerd's config applied");
                }
                Err(reason) if applied.is_none() => {
                    if seen.values.is_some() && seen.trust_roots.is_some() {
                        metrics.config_reload("rejected");
                        tracing::error!(%reason, "Linkerd's config refused; not ready until it is valid");
                    }
                    status.set(Status::Waiting(reason));
                }
                Err(reason) => {
                    metrics.config_reload("rejected");
                    tracing::error!(%reason, "Linkerd's config refused; the last good one stays in use");
                    status.set(Status::KeptLastGood(reason));
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_configmaps_are_needed_and_the_roots_win() {
        let base = Sources::default();
        let mut seen = Seen::default();
        let e = build(&base, &seen, "linkerd").unwrap_err();
        assert!(
            e.contains("linkerd-config") && e.contains("linkerd-identity-trust-roots"),
            "{e}"
        );
        seen.values = Some("identityTrustAnchorsPEM: old\nproxy:\n  logLevel: debug\n".into());
        let e = build(&base, &seen, "linkerd").unwrap_err();
        assert!(
            !e.contains("linkerd-config ") && e.contains("trust-roots"),
            "{e}"
        );
        seen.trust_roots = Some("new\n".into());
        let (c, notes) = build(&base, &seen, "linkerd").unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(c.proxy.log_level, "debug");
        assert_eq!(c.trust_anchors_pem.as_deref(), Some("new\n"));
    }

    #[test]
    fn a_bad_values_document_is_refused_with_its_source() {
        let seen = Seen {
            values: Some("proxy:\n  ports:\n    admin: 0\n".into()),
            trust_roots: Some("x".into()),
        };
        let e = build(&Sources::default(), &seen, "linkerd").unwrap_err();
        assert!(
            e.contains("linkerd/linkerd-config") && e.contains("proxy.ports.admin"),
            "{e}"
        );
    }
}
