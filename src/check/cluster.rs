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
    /// Why Linkerd's ConfigMaps could not be read, when one could not.
    pub linkerd_unread: Option<String>,
    /// Why the pods' Events could not be read, when they could not (`explain POD`).
    pub events_unread: Option<String>,
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
    let mut unread = Vec::new();
    let mut key = async |name: &'static str, key: &'static str| match api.get_opt(name).await {
        Ok(cm) => cm?.data?.remove(key),
        Err(e) => {
            unread.push(format!("ConfigMap {namespace}/{name} cannot be read ({e})"));
            None
        }
    };
    let seen = Seen {
        values: key(VALUES_CONFIGMAP, VALUES_KEY).await,
        trust_roots: key(TRUST_ROOTS_CONFIGMAP, TRUST_ROOTS_KEY).await,
    };
    let unread = (!unread.is_empty())
        .then(|| format!("{}; it needs get on configmaps there", unread.join("; ")));
    (seen, unread)
}

/// The Warning Events of pods, found by pod (`Cluster::pod_events`).
pub struct PodEvents<'a>(HashMap<(&'a str, &'a str), Vec<&'a Event>>);

impl<'a> PodEvents<'a> {
    /// The Warning Events of `pod` (matched by uid when both have one, else by name).
    pub fn of(&self, pod: &Pod) -> Vec<&'a Event> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let uid = pod.metadata.uid.as_deref();
        self.0
            .get(&(ns, name))
            .into_iter()
            .flatten()
            .filter(|e| match (e.involved_object.uid.as_deref(), uid) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            })
            .copied()
            .collect()
    }
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
            events_unread: None,
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
    ) -> anyhow::Result<(Pod, Cluster)> {
        let pod = Api::<Pod>::namespaced(client.clone(), namespace)
            .get_opt(name)
            .await?
            .ok_or_else(|| anyhow::anyhow!("pod {name} not found in namespace {namespace}"))?;
        let (linkerd, linkerd_unread) = linkerd_seen(client, &config.control_plane_namespace).await;
        let events = pod_warnings(
            client,
            &format!(",involvedObject.namespace={namespace},involvedObject.name={name}"),
        )
        .await;
        let mut cluster = Cluster {
            read_at: Some(k8s_openapi::jiff::Timestamp::now()),
            linkerd,
            linkerd_unread,
            events_unread: events
                .as_ref()
                .err()
                .map(|e| format!("the pod's Events cannot be read ({e}); it needs list on events")),
            pod_events: events.unwrap_or_default(),
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
        cluster.pods.push(pod.clone());
        if let Err(e) = cluster.add_network_facts(client, namespace, config).await {
            cluster.network_unread = Some(format!("{e:#}"));
        }
        Ok((pod, cluster))
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
    /// `serve --watch-linkerd-config` would use it (the values of `linkerd-config` over this
    /// injector's config; they name the release unless `--linkerd-version` does), the values'
    /// notes, and what the config was built from. Values that do not give a valid config
    /// leave this injector's config in use, with a note saying why.
    pub fn config(&self, sources: &Sources) -> anyhow::Result<(Config, Vec<String>, String)> {
        let (base, base_notes) = sources.build()?;
        let ns = base.control_plane_namespace.clone();
        let fallback = |why: String| {
            let from = format!("this injector's config: {why}");
            (base.clone(), base_notes.clone(), from)
        };
        let (mut config, mut notes, from) = match (&self.linkerd.values, &self.linkerd_unread) {
            (Some(values), _) => {
                let source = format!("ConfigMap {ns}/{VALUES_CONFIGMAP}");
                match sources.with_values(&source, values).build() {
                    Ok((c, notes)) => {
                        let from = format!("this injector's config with the values of {source}");
                        (c, notes, from)
                    }
                    Err(e) => {
                        let mut f = fallback(format!("the values of {source} are refused"));
                        f.1.push(format!(
                            "{e}; pods are judged by this injector's config instead (serve \
                             --watch-linkerd-config keeps its last good one)"
                        ));
                        f
                    }
                }
            }
            (None, Some(e)) => fallback(e.clone()),
            (None, None) => fallback(format!("no {VALUES_CONFIGMAP} in {ns}")),
        };
        match &self.linkerd.trust_roots {
            Some(roots) if !roots.trim().is_empty() => {
                config.trust_anchors_pem = Some(roots.clone());
            }
            Some(_) => notes.push(format!(
                "ConfigMap {ns}/{TRUST_ROOTS_CONFIGMAP} has an empty {TRUST_ROOTS_KEY}: the \
                 pods' trust anchors are compared with this injector's"
            )),
            None => {}
        }
        Ok((config, notes, from))
    }

    /// The pods' Warning Events found by pod, indexed once.
    pub fn pod_events(&self) -> PodEvents<'_> {
        let mut by_pod: HashMap<(&str, &str), Vec<&Event>> = HashMap::new();
        for e in &self.pod_events {
            let o = &e.involved_object;
            let key = (
                o.namespace.as_deref().unwrap_or_default(),
                o.name.as_deref().unwrap_or_default(),
            );
            by_pod.entry(key).or_default().push(e);
        }
        PodEvents(by_pod)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_are_judged_by_the_release_and_anchors_linkerds_configmaps_hold() {
        let sources = Sources::default();
        let mut cluster = Cluster::default();
        let (c, _, from) = cluster.config(&sources).unwrap();
        assert_eq!(c.release, crate::release::Release::default());
        assert_eq!(from, "this injector's config: no linkerd-config in linkerd");
        cluster.linkerd_unread = Some("ConfigMap linkerd/linkerd-config cannot be read".into());
        let from = cluster.config(&sources).unwrap().2;
        assert!(
            from.ends_with(": ConfigMap linkerd/linkerd-config cannot be read"),
            "{from}"
        );
        cluster.linkerd = Seen {
            values: Some("linkerdVersion: edge-25.4.4\n".into()),
            trust_roots: Some("the anchors\n".into()),
        };
        let (c, notes, from) = cluster.config(&sources).unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        assert_ne!(c.release, crate::release::Release::default());
        assert_eq!(c.trust_anchors_pem.as_deref(), Some("the anchors\n"));
        assert_eq!(
            from,
            "this injector's config with the values of ConfigMap linkerd/linkerd-config"
        );
        // Values naming a release outside the range: this injector's config, and why.
        cluster.linkerd.values = Some("linkerdVersion: stable-2.10.0\n".into());
        let (c, notes, from) = cluster.config(&sources).unwrap();
        assert_eq!(c.release, crate::release::Release::default());
        assert!(
            from.ends_with("the values of ConfigMap linkerd/linkerd-config are refused"),
            "{from}"
        );
        assert!(
            notes.iter().any(|n| n.contains("stable-2.10.0")),
            "{notes:?}"
        );
        // An empty ca-bundle.crt is said, not taken as anchors.
        cluster.linkerd.trust_roots = Some(" \n".into());
        let (c, notes, _) = cluster.config(&sources).unwrap();
        assert_eq!(c.trust_anchors_pem, None);
        assert!(
            notes.iter().any(|n| n.contains("empty ca-bundle.crt")),
            "{notes:?}"
        );
    }

    #[test]
    fn a_pods_events_are_found_by_name_and_uid() {
        let ev = |name: &str, uid: Option<&str>| -> Event {
            serde_json::from_value(
                serde_json::json!({"metadata": {"name": format!("{name}.1")},
                "involvedObject": {"kind": "Pod", "namespace": "shop", "name": name, "uid": uid}}),
            )
            .unwrap()
        };
        let cluster = Cluster {
            pod_events: vec![
                ev("web-0", Some("old")),
                ev("web-0", Some("new")),
                ev("web-0", None),
                ev("api-0", None),
            ],
            ..Cluster::default()
        };
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-0", "namespace": "shop", "uid": "new"}}))
        .unwrap();
        let index = cluster.pod_events();
        // The StatefulSet pod's earlier incarnation (another uid) is not its evidence.
        let uids: Vec<Option<&str>> = index
            .of(&pod)
            .iter()
            .map(|e| e.involved_object.uid.as_deref())
            .collect();
        assert_eq!(uids, [Some("new"), None]);
    }
}
