//! The one cluster snapshot `check` and `explain POD` read: listed from the API here (the only
//! I/O of both), built from files in tests. Every diagnosis (`classify`, `doing`, `network`,
//! `explain`'s sections) is a pure function of it and of the config it gives ([`Cluster::config`]).

use std::collections::HashMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use crate::config::Config;
use crate::linkerd_config::{
    Seen, TRUST_ROOTS_CONFIGMAP, TRUST_ROOTS_KEY, VALUES_CONFIGMAP, VALUES_KEY,
};
use crate::load::Sources;
use crate::netpol::proxy::{CONTROL_PLANE_COMPONENT_LABEL, ProxyNeeds};

type ByName<T> = HashMap<(String, String), T>;

/// What `check` and `explain POD` read from the cluster.
#[derive(Debug, Default)]
pub struct Cluster {
    pub namespaces: HashMap<String, Namespace>,
    pub pods: Vec<Pod>,
    /// By (namespace, name): to follow a pod's ReplicaSet to its Deployment.
    pub replica_sets: ByName<ReplicaSet>,
    /// By (namespace, name): to follow a pod's Job to its CronJob.
    pub jobs: ByName<Job>,
    /// Every NetworkPolicy, for the network section (`super::network`).
    pub network_policies: Vec<NetworkPolicy>,
    /// The FailedCreate Events (core/v1): pods a controller could not create.
    pub failed_creates: Vec<Event>,
    /// The Warning Events of pods (core/v1): the evidence of how a meshed pod is doing.
    pub pod_events: Vec<Event>,
    /// Each namespace's ResourceQuotas and LimitRanges, as the webhook reads them.
    pub limits: HashMap<String, crate::quota::NamespaceLimits>,
    /// What Linkerd's ConfigMaps in the control-plane namespace hold: the chart values of
    /// `linkerd-config` (which name the release) and the current trust anchors of
    /// `linkerd-identity-trust-roots`, each `None` when the cluster does not have it.
    pub linkerd: Seen,
    /// Why one of Linkerd's ConfigMaps could not be read, when one could not.
    pub linkerd_unread: Option<String>,
    /// When it was read (`None` in tests built from files: a proxy not ready is judged as
    /// not ready for long).
    pub read_at: Option<k8s_openapi::jiff::Timestamp>,
    /// Why the NetworkPolicy facts are missing, when they could not be read (`explain POD`).
    pub network_unread: Option<String>,
}

fn by_name<T: ResourceExt>(items: Vec<T>) -> ByName<T> {
    items
        .into_iter()
        .map(|o| ((o.namespace().unwrap_or_default(), o.name_any()), o))
        .collect()
}

/// Linkerd's two ConfigMaps in `namespace` (a missing one is `None`), and why one could not
/// be read, when it could not.
async fn linkerd_seen(client: &Client, namespace: &str) -> (Seen, Option<String>) {
    let api = Api::<ConfigMap>::namespaced(client.clone(), namespace);
    let mut unread = None;
    let mut key = async |name: &'static str, key: &'static str| match api.get_opt(name).await {
        Ok(cm) => cm?.data?.remove(key),
        Err(e) => {
            unread = Some(format!(
                "ConfigMap {namespace}/{name} cannot be read ({e}); it needs get on configmaps there"
            ));
            None
        }
    };
    let seen = Seen {
        values: key(VALUES_CONFIGMAP, VALUES_KEY).await,
        trust_roots: key(TRUST_ROOTS_CONFIGMAP, TRUST_ROOTS_KEY).await,
    };
    (seen, unread)
}

/// The Warning Events of pods, by a field selector (`involvedObject...`).
async fn pod_warnings(client: &Client, more: &str) -> Result<Vec<Event>, kube::Error> {
    let fields = format!("involvedObject.kind=Pod,type=Warning{more}");
    Ok(Api::<Event>::all(client.clone())
        .list(&ListParams::default().fields(&fields))
        .await?
        .items)
}

impl Cluster {
    /// Lists what `check` needs: every namespace, pod, ReplicaSet, Job, NetworkPolicy,
    /// ResourceQuota and LimitRange, pods' Warning Events and FailedCreate Events, and
    /// Linkerd's two ConfigMaps.
    pub async fn list(client: &Client, control_plane_ns: &str) -> anyhow::Result<Cluster> {
        let lp = ListParams::default();
        let namespaces = Api::<Namespace>::all(client.clone()).list(&lp).await?.items;
        let pods = Api::<Pod>::all(client.clone()).list(&lp).await?.items;
        let replica_sets = Api::<ReplicaSet>::all(client.clone())
            .list(&lp)
            .await?
            .items;
        let jobs = Api::<Job>::all(client.clone()).list(&lp).await?.items;
        let network_policies = Api::<NetworkPolicy>::all(client.clone())
            .list(&lp)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot list NetworkPolicies in all namespaces ({e}); `check` needs list \
                     on networking.k8s.io networkpolicies cluster-wide"
                )
            })?
            .items;
        let failed_creates = Api::<Event>::all(client.clone())
            .list(&ListParams::default().fields("reason=FailedCreate"))
            .await?
            .items;
        let pod_events = pod_warnings(client, "").await?;
        let mut limits: HashMap<String, crate::quota::NamespaceLimits> = HashMap::new();
        for q in Api::<k8s_openapi::api::core::v1::ResourceQuota>::all(client.clone())
            .list(&lp)
            .await?
            .items
        {
            let entry = limits.entry(q.namespace().unwrap_or_default()).or_default();
            std::sync::Arc::make_mut(entry.quotas.get_or_insert_default())
                .insert(q.name_any(), crate::quota::QuotaDigest::of(&q));
        }
        for l in Api::<k8s_openapi::api::core::v1::LimitRange>::all(client.clone())
            .list(&lp)
            .await?
            .items
        {
            let entry = limits.entry(l.namespace().unwrap_or_default()).or_default();
            std::sync::Arc::make_mut(entry.ranges.get_or_insert_default())
                .insert(l.name_any(), crate::quota::RangeDigest::of(&l));
        }
        let (linkerd, linkerd_unread) = linkerd_seen(client, control_plane_ns).await;
        Ok(Cluster {
            read_at: Some(k8s_openapi::jiff::Timestamp::now()),
            failed_creates,
            pod_events,
            limits,
            linkerd,
            linkerd_unread,
            namespaces: namespaces.into_iter().map(|n| (n.name_any(), n)).collect(),
            pods,
            replica_sets: by_name(replica_sets),
            jobs: by_name(jobs),
            network_policies,
            network_unread: None,
        })
    }

    /// Reads what `explain POD` needs about one pod: the pod (first in `pods`), its Warning
    /// Events, its ReplicaSet or Job (to name its owner), Linkerd's ConfigMaps, and for its
    /// proxy's paths the NetworkPolicies of its namespace and of the control-plane and DNS
    /// namespaces (whose pods' ingress is the far side of the proxy's egress), those pods and
    /// the namespaces the paths name. Only the pod is required: what else cannot be read is
    /// left out (the NetworkPolicy facts say why in `network_unread`).
    pub async fn for_pod(
        client: &Client,
        namespace: &str,
        name: &str,
        config: &Config,
    ) -> anyhow::Result<Cluster> {
        let pod = Api::<Pod>::namespaced(client.clone(), namespace)
            .get_opt(name)
            .await?
            .ok_or_else(|| anyhow::anyhow!("pod {name} not found in namespace {namespace}"))?;
        let (linkerd, linkerd_unread) = linkerd_seen(client, &config.control_plane_namespace).await;
        let mut cluster = Cluster {
            read_at: Some(k8s_openapi::jiff::Timestamp::now()),
            linkerd,
            linkerd_unread,
            pod_events: pod_warnings(
                client,
                &format!(",involvedObject.namespace={namespace},involvedObject.name={name}"),
            )
            .await
            .unwrap_or_default(),
            ..Cluster::default()
        };
        for owner in pod.owner_references() {
            let key = (namespace.to_owned(), owner.name.clone());
            let api = |c: &Client| c.clone();
            match owner.kind.as_str() {
                "ReplicaSet" => {
                    let rs = Api::<ReplicaSet>::namespaced(api(client), namespace);
                    if let Ok(Some(rs)) = rs.get_opt(&owner.name).await {
                        cluster.replica_sets.insert(key, rs);
                    }
                }
                "Job" => {
                    let jobs = Api::<Job>::namespaced(api(client), namespace);
                    if let Ok(Some(job)) = jobs.get_opt(&owner.name).await {
                        cluster.jobs.insert(key, job);
                    }
                }
                _ => {}
            }
        }
        cluster.pods.push(pod);
        if let Err(e) = cluster.add_network_facts(client, namespace, config).await {
            cluster.network_unread = Some(format!("{e:#}"));
        }
        Ok(cluster)
    }

    async fn add_network_facts(
        &mut self,
        client: &Client,
        namespace: &str,
        config: &Config,
    ) -> anyhow::Result<()> {
        let needs = ProxyNeeds::from_config(config);
        let cp = needs.control_plane_namespace.as_str();
        let dns = needs.dns_namespace.as_str();
        let dns_selector: Vec<String> = needs
            .dns_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut policy_namespaces = vec![namespace, cp, dns];
        policy_namespaces.sort_unstable();
        policy_namespaces.dedup();
        let mut named = vec![
            namespace,
            cp,
            dns,
            needs.metrics_namespace.as_str(),
            needs.tap_namespace.as_str(),
        ];
        named.sort_unstable();
        named.dedup();
        let rights = "explain needs get on namespaces and list on pods and networking.k8s.io \
                      networkpolicies there";
        let namespaces: Api<Namespace> = Api::all(client.clone());
        for n in named {
            let found = namespaces
                .get_opt(n)
                .await
                .map_err(|e| anyhow::anyhow!("cannot read namespace {n} ({e}); {rights}"))?;
            if let Some(found) = found {
                self.namespaces.insert(n.to_owned(), found);
            }
        }
        let lp = ListParams::default();
        for n in policy_namespaces {
            let api: Api<NetworkPolicy> = Api::namespaced(client.clone(), n);
            let list = api.list(&lp).await.map_err(|e| {
                anyhow::anyhow!("cannot list the NetworkPolicies of namespace {n} ({e}); {rights}")
            })?;
            self.network_policies.extend(list.items);
        }
        for (n, selector) in [
            (cp, CONTROL_PLANE_COMPONENT_LABEL.to_owned()),
            (dns, dns_selector.join(",")),
        ] {
            let api: Api<Pod> = Api::namespaced(client.clone(), n);
            let list = api.list(&ListParams::default().labels(&selector)).await;
            let list = list.map_err(|e| {
                anyhow::anyhow!("cannot list the pods {selector} in namespace {n} ({e}); {rights}")
            })?;
            self.pods.extend(list.items);
        }
        Ok(())
    }

    /// The config a pod is judged by: `sources` with what Linkerd's ConfigMaps hold, as
    /// `serve --watch-linkerd-config` would use it (the values of `linkerd-config` name the
    /// release), and a line saying where the release comes from.
    pub fn config(&self, sources: &Sources) -> anyhow::Result<(Config, Vec<String>, String)> {
        let base = sources.build()?.0;
        let ns = base.control_plane_namespace.clone();
        let (mut config, notes, from) = match &self.linkerd.values {
            Some(values) => {
                let source = format!("ConfigMap {ns}/{VALUES_CONFIGMAP}");
                let (c, notes) = sources.with_values(&source, values).build()?;
                (c, notes, format!("the values of {source}"))
            }
            None => {
                let (c, notes) = sources.build()?;
                let why = match &self.linkerd_unread {
                    Some(e) => e.clone(),
                    None => format!("no {VALUES_CONFIGMAP} in {ns}"),
                };
                (c, notes, format!("this injector's config: {why}"))
            }
        };
        if let Some(roots) = self
            .linkerd
            .trust_roots
            .as_ref()
            .filter(|r| !r.trim().is_empty())
        {
            config.trust_anchors_pem = Some(roots.clone());
        }
        let line = format!("release: {} (from {from})", config.release);
        Ok((config, notes, line))
    }

    /// The Warning Events of `pod` (matched by uid when both have one, else by name).
    pub fn events_of<'a>(&'a self, pod: &Pod) -> Vec<&'a Event> {
        let ns = pod.metadata.namespace.as_deref();
        let name = pod.metadata.name.as_deref();
        let uid = pod.metadata.uid.as_deref();
        self.pod_events
            .iter()
            .filter(|e| {
                let o = &e.involved_object;
                match (o.uid.as_deref(), uid) {
                    (Some(a), Some(b)) => a == b,
                    _ => o.namespace.as_deref() == ns && o.name.as_deref() == name,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_are_judged_by_the_release_and_anchors_linkerds_configmaps_hold() {
        let sources = Sources::default();
        let mut cluster = Cluster::default();
        let (c, _, line) = cluster.config(&sources).unwrap();
        assert_eq!(c.release, crate::release::Release::default());
        assert_eq!(
            line,
            format!(
                "release: {} (from this injector's config: no linkerd-config in linkerd)",
                c.release
            )
        );
        cluster.linkerd_unread = Some("ConfigMap linkerd/linkerd-config cannot be read".into());
        let line = cluster.config(&sources).unwrap().2;
        assert!(
            line.ends_with("config: ConfigMap linkerd/linkerd-config cannot be read)"),
            "{line}"
        );
        cluster.linkerd = Seen {
            values: Some("linkerdVersion: edge-25.4.4\n".into()),
            trust_roots: Some("the anchors\n".into()),
        };
        let (c, notes, line) = cluster.config(&sources).unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        assert_ne!(c.release, crate::release::Release::default());
        assert_eq!(c.trust_anchors_pem.as_deref(), Some("the anchors\n"));
        assert!(
            line.ends_with("(from the values of ConfigMap linkerd/linkerd-config)"),
            "{line}"
        );
        // Values a release outside the range cannot be judged by: said, not guessed.
        cluster.linkerd.values = Some("linkerdVersion: stable-2.10.0\n".into());
        assert!(cluster.config(&sources).is_err());
    }
}
