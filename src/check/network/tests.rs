use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Value, json};

use super::*;

fn namespace(name: &str) -> Namespace {
    serde_json::from_value(json!({"metadata": {"name": name,
        "labels": {"kubernetes.io/metadata.name": name}}}))
    .unwrap()
}

/// A pod; `meshed` adds the proxy container and the labels injection writes.
fn pod(ns: &str, name: &str, labels: Value, ip: Option<&str>, owner: Option<&str>) -> Pod {
    pod_with(ns, name, labels, ip, owner, true)
}

fn pod_with(
    ns: &str,
    name: &str,
    mut labels: Value,
    ip: Option<&str>,
    owner: Option<&str>,
    meshed: bool,
) -> Pod {
    let mut containers = vec![json!({"name": "app", "image": "app:1"})];
    if meshed {
        containers.push(json!({"name": "linkerd-proxy", "image": "proxy:1"}));
        labels["linkerd.io/control-plane-ns"] = "linkerd".into();
        labels["linkerd.io/workload-ns"] = ns.into();
    }
    let owners: Vec<Value> = owner
        .into_iter()
        .map(|o| {
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": o, "uid": "u",
            "controller": true})
        })
        .collect();
    let mut v = json!({"metadata": {"name": name, "namespace": ns, "labels": labels,
        "ownerReferences": owners}, "spec": {"containers": containers},
        "status": {"phase": "Running"}});
    if let Some(ip) = ip {
        v["status"]["podIP"] = ip.into();
    }
    serde_json::from_value(v).unwrap()
}

fn policy(ns: &str, name: &str, spec: &str) -> NetworkPolicy {
    let mut v: Value = serde_saphyr::from_str(&format!("spec: {spec}")).unwrap();
    v["metadata"] = json!({"name": name, "namespace": ns});
    serde_json::from_value(v).unwrap()
}

fn replica_set(ns: &str, name: &str, deployment: &str) -> k8s_openapi::api::apps::v1::ReplicaSet {
    serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns,
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment,
        "uid": "d", "controller": true}]}}))
    .unwrap()
}

/// `shop/web` (two pods of one Deployment), the control plane (identity, destination; both
/// meshed), kube-dns, an unmeshed pod in `plain`; and `policies`.
fn cluster(policies: Vec<NetworkPolicy>) -> Cluster {
    let web = |name, ip| {
        let labels = json!({"app": "web", "pod-template-hash": "5d9"});
        pod("shop", name, labels, ip, Some("web-5d9"))
    };
    let cp = |component: &str, ip| {
        let labels = json!({"linkerd.io/control-plane-component": component,
            "pod-template-hash": "77f"});
        pod(
            "linkerd",
            &format!("linkerd-{component}-x"),
            labels,
            ip,
            None,
        )
    };
    let dns = json!({"k8s-app": "kube-dns"});
    let pods = vec![
        web("web-5d9-a", Some("10.1.0.1")),
        web("web-5d9-b", Some("10.1.0.2")),
        cp("identity", Some("10.2.0.1")),
        cp("destination", Some("10.2.0.2")),
        pod_with(
            "kube-system",
            "coredns-1",
            dns,
            Some("10.3.0.1"),
            None,
            false,
        ),
        pod_with("plain", "tool", json!({"app": "tool"}), None, None, false),
    ];
    let mut c = Cluster {
        namespaces: [
            "shop",
            "linkerd",
            "kube-system",
            "plain",
            "batch",
            "linkerd-viz",
        ]
        .map(|n| (n.to_string(), namespace(n)))
        .into_iter()
        .collect(),
        pods,
        network_policies: policies,
        ..Cluster::default()
    };
    let rs = replica_set("shop", "web-5d9", "web");
    c.replica_sets.insert(("shop".into(), "web-5d9".into()), rs);
    c
}

const DENY_EGRESS: &str = "{podSelector: {}, policyTypes: [Egress]}";
const ALLOW_DNS: &str = "{podSelector: {}, policyTypes: [Egress], egress: [{to: [{namespaceSelector: {}, \
    podSelector: {matchLabels: {k8s-app: kube-dns}}}], ports: [{port: 53, protocol: UDP}, {port: 53}]}]}";

fn kinds(w: &WorkloadNetwork, verdict: fn(&Verdict) -> bool) -> Vec<PathKind> {
    let paths = w.network.paths.iter().filter(|p| verdict(&p.verdict));
    paths.map(|p| p.kind).collect()
}

fn denied(v: &Verdict) -> bool {
    *v == Verdict::Denied
}

const EGRESS: [PathKind; 5] = [
    PathKind::Identity,
    PathKind::Destination,
    PathKind::Policy,
    PathKind::DnsUdp,
    PathKind::DnsTcp,
];

#[test]
fn default_deny_egress_cuts_the_control_plane_and_dns_and_names_the_policy() {
    let c = cluster(vec![policy("shop", "default-deny-egress", DENY_EGRESS)]);
    let r = report(&c, &Config::default());
    assert_eq!(r.meshed_workloads, 3, "web, identity, destination");
    assert_eq!(r.workloads.len(), 1, "{r:#?}");
    let w = &r.workloads[0];
    assert_eq!(
        (w.namespace.as_str(), w.kind.as_str()),
        ("shop", "Deployment")
    );
    assert_eq!(kinds(w, denied), EGRESS);
    assert_eq!(
        w.network.paths.len(),
        5,
        "only what is not allowed is listed"
    );
    for p in &w.network.paths {
        assert_eq!(
            p.blocked_by,
            [PolicyRef::new("shop", "default-deny-egress")]
        );
        assert_eq!(p.far_side, None, "the peers' sides allow");
    }
    assert_eq!(r.problems, 5);
    // One fix per blocked path, selecting the workload by its labels but the per-revision ones.
    assert_eq!(w.network.fix.len(), 5);
    let spec = w.network.fix[0].spec.as_ref().unwrap();
    let want: BTreeMap<String, String> = [
        ("app", "web"),
        ("linkerd.io/control-plane-ns", "linkerd"),
        ("linkerd.io/workload-ns", "shop"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .into();
    assert_eq!(
        spec.pod_selector,
        Some(LabelSelector {
            match_labels: Some(want),
            match_expressions: None
        })
    );
    assert_eq!(w.network.fix[0].metadata.namespace.as_deref(), Some("shop"));
    // `check -o json`.
    let v = serde_json::to_value(&r).unwrap();
    let w = &v["workloads"][0];
    assert_eq!(w["kind"], "Deployment");
    assert_eq!(w["paths"][0]["kind"], "identity");
    assert_eq!(w["paths"][0]["verdict"], "denied");
    assert_eq!(
        w["paths"][0]["blocked_by"],
        json!(["shop/default-deny-egress"])
    );
    assert_eq!(w["paths"][3]["protocol"], "UDP");
    assert_eq!(w["fix"][0]["kind"], "NetworkPolicy");
    assert_eq!(w["fix"][0]["apiVersion"], "networking.k8s.io/v1");
    assert_eq!(v["problems"], 5);
}

#[test]
fn a_dns_only_allow_leaves_the_control_plane_cut() {
    let c = cluster(vec![
        policy("shop", "default-deny-egress", DENY_EGRESS),
        policy("shop", "allow-dns", ALLOW_DNS),
    ]);
    let r = report(&c, &Config::default());
    assert_eq!(r.workloads.len(), 1);
    assert_eq!(
        kinds(&r.workloads[0], denied),
        [PathKind::Identity, PathKind::Destination, PathKind::Policy]
    );
    assert_eq!(r.problems, 3);
}

#[test]
fn the_fix_applied_leaves_nothing_to_report() {
    // The pods' side (egress in shop) and the control plane's side (ingress in linkerd).
    for policies in [
        vec![policy("shop", "default-deny-egress", DENY_EGRESS)],
        vec![policy("linkerd", "deny-ingress", "{podSelector: {}}")],
        vec![
            policy(
                "shop",
                "deny-all",
                "{podSelector: {}, policyTypes: [Ingress, Egress]}",
            ),
            policy("shop", "allow-dns", ALLOW_DNS),
        ],
    ] {
        let mut c = cluster(policies);
        let r = report(&c, &Config::default());
        assert!(r.problems > 0);
        for w in &r.workloads {
            assert_eq!(w.network.fix_note, None);
            c.network_policies.extend(w.network.fix.iter().cloned());
        }
        let after = report(&c, &Config::default());
        assert_eq!(after.workloads, [], "{after:#?}");
        assert_eq!(after.problems, 0);
    }
}

#[test]
fn a_control_plane_that_refuses_meshed_pods_is_blocked_on_its_side() {
    let c = cluster(vec![policy("linkerd", "deny-ingress", "{podSelector: {}}")]);
    let r = report(&c, &Config::default());
    let web = r.workloads.iter().find(|w| w.name == "web").unwrap();
    assert_eq!(
        kinds(web, denied),
        [PathKind::Identity, PathKind::Destination, PathKind::Policy]
    );
    let identity = &web.network.paths[0];
    assert!(identity.pod_side.not_isolated());
    let far = identity.far_side.as_ref().unwrap();
    assert_eq!(far.pod, "linkerd/linkerd-identity-x");
    assert_eq!(
        identity.blocked_by,
        [PolicyRef::new("linkerd", "deny-ingress")]
    );
    assert_eq!(
        path_line(identity),
        "egress to the identity controller (TCP 8080 to linkerd): blocked at \
         linkerd/linkerd-identity-x's ingress by linkerd/deny-ingress"
    );
    // The fix is in linkerd and selects the identity pods only.
    let fix = &web.network.fix[0];
    assert_eq!(fix.metadata.namespace.as_deref(), Some("linkerd"));
    let selector = fix.spec.as_ref().unwrap().pod_selector.as_ref().unwrap();
    let labels = selector.match_labels.as_ref().unwrap();
    assert_eq!(labels["linkerd.io/control-plane-component"], "identity");
    assert!(!labels.contains_key("pod-template-hash"));
}

#[test]
fn a_policy_where_nothing_is_meshed_reports_nothing() {
    let c = cluster(vec![policy(
        "plain",
        "deny-all",
        "{podSelector: {}, policyTypes: [Ingress, Egress]}",
    )]);
    let r = report(&c, &Config::default());
    assert_eq!(r.workloads, []);
    assert_eq!(r.problems, 0);
}

#[test]
fn an_ip_block_and_a_pod_without_an_ip_cannot_tell_and_are_not_problems() {
    let mut c = cluster(vec![
        policy(
            "batch",
            "egress-by-ip",
            "{podSelector: {}, policyTypes: [Egress], egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8}}]}]}",
        ),
        // The identity controller takes only clients from 10.0.0.0/8, whose IP must be known.
        policy(
            "linkerd",
            "identity-by-ip",
            "{podSelector: {matchLabels: {linkerd.io/control-plane-component: identity}}, \
             ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}}]}]}",
        ),
    ]);
    c.pods
        .push(pod("batch", "pending", json!({"app": "job"}), None, None));
    let r = report(&c, &Config::default());
    assert_eq!(r.problems, 0, "{r:#?}");
    // The identity controller's own ingress paths come from classes of pods whose IPs are
    // not known either; web's paths all allow.
    let names: Vec<&str> = r.workloads.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["pending", "linkerd-identity-x"]);
    let w = &r.workloads[0];
    let unsure = kinds(w, |v| matches!(v, Verdict::CannotTell { .. }));
    assert_eq!(unsure, EGRESS);
    let identity = &w.network.paths[0];
    let Verdict::CannotTell { reason } = &identity.verdict else {
        panic!("{identity:?}");
    };
    assert!(reason.contains("pod's IP is not known"), "{reason}");
    assert!(
        reason.contains("at linkerd/linkerd-identity-x's ingress"),
        "both sides: {reason}"
    );
    assert_eq!(w.network.fix, []);
    let text = r.render();
    assert!(text.starts_with("[ok  ] no NetworkPolicy cuts"), "{text}");
    assert!(
        text.contains("  batch/pod pending (1 pod): egress to the identity controller (TCP 8080 to linkerd): cannot tell: "),
        "{text}"
    );
}

#[test]
fn pods_of_one_replica_set_are_one_workload() {
    let c = cluster(vec![policy("shop", "default-deny-egress", DENY_EGRESS)]);
    let r = report(&c, &Config::default());
    assert_eq!(r.workloads.len(), 1);
    let w = &r.workloads[0];
    assert_eq!((w.kind.as_str(), w.name.as_str()), ("Deployment", "web"));
    assert_eq!(w.pods, ["web-5d9-a", "web-5d9-b"]);
    assert_eq!(w.evaluated_pod, "web-5d9-a");
}

#[test]
fn terminating_finished_and_host_network_pods_are_left_out() {
    let mut p = pod("shop", "gone", json!({"app": "gone"}), None, None);
    p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        Default::default(),
    ));
    let mut done = pod("shop", "done", json!({"app": "done"}), None, None);
    done.status.as_mut().unwrap().phase = Some("Succeeded".into());
    let mut host = pod("shop", "host", json!({"app": "host"}), None, None);
    host.spec.as_mut().unwrap().host_network = Some(true);
    assert!(meshed(&p) && meshed(&done) && meshed(&host));
    assert!(!live(&p) && !live(&done) && !live(&host));
    let plain = pod_with("shop", "x", json!({}), None, None, false);
    assert!(!meshed(&plain));
}

#[test]
fn renders_the_section_with_a_fix_to_paste() {
    let c = cluster(vec![
        policy("shop", "default-deny-egress", DENY_EGRESS),
        policy("shop", "allow-dns", ALLOW_DNS),
    ]);
    let text = report(&c, &Config::default()).render();
    let want = "\
[FAIL] NetworkPolicies that cut meshed proxies off what they need:
  shop/deployment web (2 pods): egress to the identity controller (TCP 8080 to linkerd): blocked by shop/default-deny-egress, shop/allow-dns (none of them allows it)
  shop/deployment web (2 pods): egress to the destination controller (TCP 8086 to linkerd): blocked by shop/default-deny-egress, shop/allow-dns (none of them allows it)
  shop/deployment web (2 pods): egress to the policy controller (TCP 8090 to linkerd): blocked by shop/default-deny-egress, shop/allow-dns (none of them allows it)
    fix: kubectl apply -f - <<'EOF'
---
";
    assert!(text.starts_with(want), "{text}");
    assert!(text.ends_with("EOF\n"), "{text}");
    // What is between the heredoc lines is three NetworkPolicies.
    let yaml = text
        .split_once("<<'EOF'\n")
        .and_then(|(_, rest)| rest.strip_suffix("EOF\n"))
        .unwrap();
    let docs: Vec<NetworkPolicy> = serde_saphyr::from_multiple(yaml).unwrap();
    let names: Vec<&str> = docs
        .iter()
        .filter_map(|d| d.metadata.name.as_deref())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names[0].starts_with("allow-linkerd-identity-"), "{names:?}");
    println!("{text}");
    assert!(
        yaml.contains("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"),
        "{yaml}"
    );
}

#[test]
fn scraping_and_tap_are_not_checked_without_their_namespace() {
    let deny_all = "{podSelector: {}, policyTypes: [Ingress]}";
    let mut c = cluster(vec![policy("shop", "deny-ingress", deny_all)]);
    let r = report(&c, &Config::default());
    let all = [PathKind::Inbound, PathKind::Admin, PathKind::Control];
    assert_eq!(kinds(&r.workloads[0], denied), all);
    c.namespaces.remove("linkerd-viz");
    let r = report(&c, &Config::default());
    assert_eq!(kinds(&r.workloads[0], denied), [PathKind::Inbound]);
    assert_eq!(r.problems, 1);
    let text = r.render();
    assert!(
        text.contains(
            "\n[note] ingress from tap (TCP 4190 from linkerd-viz): not checked, namespace \
             linkerd-viz does not exist\n"
        ),
        "{text}"
    );
}

#[test]
fn renders_ok_when_nothing_is_cut() {
    let r = report(&cluster(Vec::new()), &Config::default());
    assert_eq!(
        r.render(),
        "[ok  ] no NetworkPolicy cuts a meshed proxy off what it needs (3 meshed workloads checked)\n"
    );
    assert_eq!(
        NetworkReport::default().render(),
        "[ok  ] no NetworkPolicy cuts a meshed proxy off what it needs (no meshed pods found)\n"
    );
}
