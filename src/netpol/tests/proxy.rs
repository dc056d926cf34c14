//! The proxy's paths, their evaluation, and fixes that open exactly one path.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::super::proxy::{PathKind, ProxyNeeds, ProxyPaths, fix};
use super::*;
use crate::config::Config;

/// A workload in namespace `shop` before injection.
fn meshed() -> PodInfo {
    PodInfo::new(ns("shop", "env=prod"), labels("app=web"))
        .with_ip("10.0.3.3".parse().unwrap())
        .with_ports(vec![port("http", 8080, Protocol::Tcp)])
}

fn verdicts(paths: &ProxyPaths, policies: &[String]) -> Vec<(PathKind, Verdict)> {
    let set = PolicySet::new(&parse(policies));
    let out = paths.evaluate(&set, &meshed());
    out.into_iter()
        .map(|v| (v.path.kind, v.answer.verdict))
        .collect()
}

const DENY_ALL: &str = "{podSelector: {}, policyTypes: [Ingress, Egress]}";

#[test]
fn paths_have_labels_and_ports_from_the_parameters() {
    let labels: Vec<String> = ProxyNeeds::default()
        .paths()
        .as_slice()
        .iter()
        .map(|p| p.label.clone())
        .collect();
    assert_eq!(
        labels,
        [
            "the identity controller (TCP 8080 to linkerd)",
            "the destination controller (TCP 8086 to linkerd)",
            "the policy controller (TCP 8090 to linkerd)",
            "DNS (UDP 53 to k8s-app=kube-dns in kube-system)",
            "DNS (TCP 53 to k8s-app=kube-dns in kube-system)",
            "meshed clients (TCP 4143 from meshed pods in any namespace)",
            "metrics scraping (TCP 4191 from linkerd-viz)",
            "tap (TCP 4190 from linkerd-viz)",
        ]
    );
    let mut config = Config {
        control_plane_namespace: "mesh".into(),
        ..Config::default()
    };
    config.proxy.ports.admin = 9991;
    let needs = ProxyNeeds {
        metrics_namespace: "monitoring".into(),
        identity_port: 18080,
        ..ProxyNeeds::from_config(&config)
    };
    let paths = needs.paths();
    let label = |k| paths.get(k).unwrap().label.clone();
    assert_eq!(
        label(PathKind::Identity),
        "the identity controller (TCP 18080 to mesh)"
    );
    assert_eq!(
        label(PathKind::Admin),
        "metrics scraping (TCP 9991 from monitoring)"
    );
    assert_eq!(paths.get(PathKind::Inbound).unwrap().port, 4143);
}

#[test]
fn no_policies_allow_every_path() {
    let paths = ProxyNeeds::default().paths();
    let set = PolicySet::new(&[]);
    for v in paths.evaluate(&set, &meshed()) {
        assert!(v.answer.not_isolated(), "{}: {}", v.path.label, v.answer);
    }
}

#[test]
fn deny_all_blocks_every_path_and_names_the_policy() {
    let paths = ProxyNeeds::default().paths();
    let set = PolicySet::new(&parse(&[pn("shop", "deny-all", DENY_ALL)]));
    for v in paths.evaluate(&set, &meshed()) {
        assert_eq!(v.answer.verdict, Verdict::Denied, "{}", v.path.label);
        assert_eq!(v.answer.isolating, [PolicyRef::new("shop", "deny-all")]);
    }
}

#[test]
fn typical_policies() {
    let paths = ProxyNeeds::default().paths();
    let dns = pn(
        "shop",
        "dns",
        "{podSelector: {}, policyTypes: [Egress], egress: [{to: [{namespaceSelector: {}, \
         podSelector: {matchLabels: {k8s-app: kube-dns}}}], ports: [{port: 53, protocol: UDP}, {port: 53}]}]}",
    );
    let scrape = pn(
        "shop",
        "scrape",
        "{podSelector: {}, ingress: [{from: [{namespaceSelector: {matchLabels: \
         {kubernetes.io/metadata.name: linkerd-viz}}}], ports: [{port: linkerd-admin}]}]}",
    );
    let cp_by_ip = pn(
        "shop",
        "cp-ip",
        "{podSelector: {}, policyTypes: [Egress], egress: [{to: [{ipBlock: {cidr: 10.96.0.0/12}}], ports: [{port: 8080}]}]}",
    );
    let cp_by_ns_label = pn(
        "shop",
        "cp-label",
        "{podSelector: {}, policyTypes: [Egress], egress: [{to: [{namespaceSelector: {matchLabels: \
         {linkerd.io/is-control-plane: 'true'}}}], ports: [{port: 8086}, {port: 8090}]}]}",
    );
    let got = verdicts(
        &paths,
        &[
            pn("shop", "deny-all", DENY_ALL),
            dns,
            scrape,
            cp_by_ip,
            cp_by_ns_label.clone(),
        ],
    );
    let kinds = |want: fn(&Verdict) -> bool| -> Vec<PathKind> {
        got.iter()
            .filter(|(_, v)| want(v))
            .map(|(k, _)| *k)
            .collect()
    };
    assert_eq!(
        kinds(|v| *v == Verdict::Allowed),
        [PathKind::DnsUdp, PathKind::DnsTcp, PathKind::Admin],
        "the named admin port resolves although the pod is not injected yet"
    );
    assert_eq!(
        kinds(|v| *v == Verdict::Denied),
        [PathKind::Inbound, PathKind::Control]
    );
    assert_eq!(
        kinds(|v| matches!(v, Verdict::CannotTell { .. })),
        [PathKind::Identity, PathKind::Destination, PathKind::Policy],
        "an ipBlock and unknown namespace labels cannot tell: {got:?}"
    );
    // With the control-plane namespace's labels known, the label selector decides.
    let needs = ProxyNeeds {
        namespace_labels: BTreeMap::from([(
            "linkerd".to_string(),
            labels("linkerd.io/is-control-plane=true"),
        )]),
        ..ProxyNeeds::default()
    };
    let got = verdicts(
        &needs.paths(),
        &[pn("shop", "deny-all", DENY_ALL), cp_by_ns_label],
    );
    assert_eq!(got[1], (PathKind::Destination, Verdict::Allowed));
    assert_eq!(got[2], (PathKind::Policy, Verdict::Allowed));
    assert_eq!(got[0].1, Verdict::Denied);
}

#[test]
fn a_path_as_a_flow_also_asks_the_other_side() {
    let paths = ProxyNeeds::default().paths();
    let identity = paths.get(PathKind::Identity).unwrap();
    let set = PolicySet::new(&parse(&[pn("linkerd", "cp-deny", "{podSelector: {}}")]));
    let pod_side = &paths.evaluate(&set, &meshed())[0].answer;
    assert!(pod_side.not_isolated());
    let both = set.evaluate(&Flow {
        from: Endpoint::Pod(meshed()),
        to: identity.peer.clone(),
        protocol: identity.protocol,
        port: identity.port,
    });
    assert_eq!(both.verdict, Verdict::Denied);
    assert_eq!(
        both.ingress.isolating,
        [PolicyRef::new("linkerd", "cp-deny")]
    );
}

/// A pod unrelated to every path: another namespace, no mesh labels, a known IP.
fn stranger() -> Endpoint {
    Endpoint::Pod(
        PodInfo::new(ns("elsewhere", ""), labels("app=x")).with_ip("10.9.9.9".parse().unwrap()),
    )
}

#[test]
fn each_fix_opens_its_path_and_nothing_else() {
    let needs = ProxyNeeds::default();
    let paths = needs.paths();
    let deny = pn("shop", "deny-all", DENY_ALL);
    let selector = LabelSelector {
        match_labels: Some(labels("app=web")),
        match_expressions: None,
    };
    for path in paths.as_slice() {
        let np = fix(path, "shop", &selector);
        let name = np.metadata.name.clone().unwrap();
        assert!(
            name.starts_with(&format!("allow-linkerd-{}-", path.kind.slug())),
            "{name}"
        );
        let set = PolicySet::new(&[parse(std::slice::from_ref(&deny)), vec![np]].concat());
        assert!(set.problems().is_empty(), "{:?}", set.problems());
        let pod = meshed();
        for v in paths.evaluate(&set, &pod) {
            let want = if v.path.kind == path.kind {
                Verdict::Allowed
            } else {
                Verdict::Denied
            };
            assert_eq!(v.answer.verdict, want, "fix {name}, path {}", v.path.label);
        }
        let opened = paths.evaluate(&set, &pod);
        let opened = opened.iter().find(|v| v.path.kind == path.kind).unwrap();
        assert_eq!(opened.answer.allowing.len(), 1);
        assert_eq!(*opened.answer.allowing[0].policy.name, name);
        // The same peer on the next port, the same port over the other protocol, and the
        // same port with a pod no path names all stay denied.
        let policies = set.for_pod(&pod);
        let other = match path.protocol {
            Protocol::Tcp => Protocol::Udp,
            _ => Protocol::Tcp,
        };
        let d = path.direction;
        for (peer, protocol, port) in [
            (&path.peer, path.protocol, path.port + 1),
            (&path.peer, other, path.port),
            (&stranger(), path.protocol, path.port),
        ] {
            let a = policies.check(d, peer, protocol, port);
            assert_eq!(
                a.verdict,
                Verdict::Denied,
                "fix {name}: {protocol} {port} {peer:?}"
            );
        }
        // An external address on the port stays denied too.
        let a = policies.check(d, &ext("203.0.113.1"), path.protocol, path.port);
        assert_eq!(a.verdict, Verdict::Denied, "fix {name}: external");
    }
}

#[test]
fn a_fix_is_ready_for_kubectl_apply() {
    let paths = ProxyNeeds::default().paths();
    let path = paths.get(PathKind::Destination).unwrap();
    let np = fix(path, "shop", &LabelSelector::default());
    assert_eq!(
        np.metadata.name.as_deref(),
        Some("allow-linkerd-destination")
    );
    let yaml = crate::offline::to_yaml(&np).unwrap();
    assert!(
        yaml.starts_with("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"),
        "{yaml}"
    );
    for part in [
        "namespace: shop",
        "policyTypes:\n  - Egress",
        "kubernetes.io/metadata.name: linkerd",
        "key: linkerd.io/control-plane-component",
        "operator: Exists",
        "port: 8086",
        "protocol: TCP",
    ] {
        assert!(yaml.contains(part), "{part} not in\n{yaml}");
    }
    let back: k8s_openapi::api::networking::v1::NetworkPolicy =
        serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(back, np);
    let json = serde_json::to_value(&np).unwrap();
    assert_eq!(json["apiVersion"], "networking.k8s.io/v1");
    assert_eq!(json["kind"], "NetworkPolicy");
    // A selector makes the name unique per workload, and stable.
    let web = LabelSelector {
        match_labels: Some(labels("app=web")),
        match_expressions: None,
    };
    let api = LabelSelector {
        match_labels: Some(labels("app=api")),
        match_expressions: None,
    };
    let name = |s| fix(path, "shop", s).metadata.name.unwrap();
    assert_eq!(name(&web), name(&web));
    assert_ne!(name(&web), name(&api));
}
