//! Table tests written from the Kubernetes NetworkPolicy API reference: one row per rule,
//! each a set of policies (YAML), a flow and the expected verdict with the deciding policies.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::networking::v1::NetworkPolicy;

use super::*;

mod peers;
mod ports;
mod proxy;
mod types;

/// `"app=web,tier=fe"` as a map.
pub(super) fn labels(s: &str) -> BTreeMap<String, String> {
    s.split(',')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

pub(super) fn ns(name: &str, ns_labels: &str) -> PodNamespace {
    PodNamespace::new(name, Labels::exactly(labels(ns_labels)))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn port(name: &str, port: u16, protocol: Protocol) -> NamedPort {
    NamedPort {
        name: name.into(),
        port,
        protocol,
    }
}

/// `app=web` in namespace `a` (team=a), IP 10.0.0.1, ports http 8080/TCP, dns-udp 53/UDP,
/// metrics 9090/TCP.
pub(super) fn web() -> Endpoint {
    Endpoint::Pod(
        PodInfo::new(ns("a", "team=a"), labels("app=web"))
            .with_ip(ip("10.0.0.1"))
            .with_ports(vec![
                port("http", 8080, Protocol::Tcp),
                port("dns-udp", 53, Protocol::Udp),
                port("metrics", 9090, Protocol::Tcp),
            ]),
    )
}

/// `app=db` in namespace `a`, IP 10.0.0.2, port pg 5432/TCP.
pub(super) fn db() -> Endpoint {
    Endpoint::Pod(
        PodInfo::new(ns("a", "team=a"), labels("app=db"))
            .with_ip(ip("10.0.0.2"))
            .with_ports(vec![port("pg", 5432, Protocol::Tcp)]),
    )
}

/// `app=client,role=fe` in namespace `b` (team=b), IP 10.0.1.1.
pub(super) fn client() -> Endpoint {
    Endpoint::Pod(
        PodInfo::new(ns("b", "team=b"), labels("app=client,role=fe")).with_ip(ip("10.0.1.1")),
    )
}

/// `app=x` in namespace `c` (no labels but its name), IP 10.0.2.1.
pub(super) fn other() -> Endpoint {
    Endpoint::Pod(PodInfo::new(ns("c", ""), labels("app=x")).with_ip(ip("10.0.2.1")))
}

/// `pod` without its IP (not scheduled yet).
pub(super) fn no_ip(pod: Endpoint) -> Endpoint {
    match pod {
        Endpoint::Pod(p) => Endpoint::Pod(PodInfo { ip: None, ..p }),
        e => e,
    }
}

/// Outside the cluster.
pub(super) fn ext(cidr: &str) -> Endpoint {
    Endpoint::External(Cidr::parse(cidr).unwrap())
}

pub(super) fn flow(from: Endpoint, to: Endpoint, protocol: &str, port: u16) -> Flow {
    Flow {
        from,
        to,
        protocol: Protocol::parse(protocol).unwrap(),
        port,
    }
}

pub(super) fn tcp(from: Endpoint, to: Endpoint, port: u16) -> Flow {
    flow(from, to, "TCP", port)
}

/// A policy in namespace `a`; `spec` is a YAML flow mapping.
pub(super) fn p(name: &str, spec: &str) -> String {
    pn("a", name, spec)
}

pub(super) fn pn(namespace: &str, name: &str, spec: &str) -> String {
    format!("- metadata: {{name: {name}, namespace: {namespace}}}\n  spec: {spec}\n")
}

pub(super) fn parse(policies: &[String]) -> Vec<NetworkPolicy> {
    let yaml = policies.concat();
    if yaml.is_empty() {
        return Vec::new();
    }
    serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

#[derive(Debug)]
pub(super) enum Want {
    /// Allowed; the policies whose rules allow it on either side (empty: not isolated).
    Allowed(&'static [&'static str]),
    /// Denied; the policies isolating the denying side(s).
    Denied(&'static [&'static str]),
    /// Cannot tell; a part of the reason.
    CannotTell(&'static str),
}

pub(super) struct Case {
    pub name: &'static str,
    pub policies: Vec<String>,
    pub flow: Flow,
    pub want: Want,
}

pub(super) fn case(name: &'static str, policies: Vec<String>, flow: Flow, want: Want) -> Case {
    Case {
        name,
        policies,
        flow,
        want,
    }
}

fn names<'a>(items: impl Iterator<Item = &'a PolicyRef>) -> Vec<String> {
    let mut v: Vec<String> = items.map(|p| p.name.to_string()).collect();
    v.sort();
    v.dedup();
    v
}

/// Runs every row and reports all the rows that fail, not only the first.
pub(super) fn run(cases: Vec<Case>) -> usize {
    let mut failures = Vec::new();
    let count = cases.len();
    for c in cases {
        let set = PolicySet::new(&parse(&c.policies));
        let e = set.evaluate(&c.flow);
        let sides = [&e.egress, &e.ingress];
        let ok = match (&c.want, &e.verdict) {
            (Want::Allowed(want), Verdict::Allowed) => {
                let by = sides
                    .iter()
                    .flat_map(|s| s.allowing.iter().map(|r| &r.policy));
                names(by) == *want
            }
            (Want::Denied(want), Verdict::Denied) => {
                let denying = sides.iter().filter(|s| s.verdict == Verdict::Denied);
                names(denying.flat_map(|s| s.isolating.iter())) == *want
            }
            (Want::CannotTell(part), Verdict::CannotTell { reason }) => reason.contains(part),
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{}: want {:?}, got {} / {} / {}",
                c.name, c.want, e.verdict, e.egress, e.ingress
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    count
}

#[test]
fn cidr_parsing() {
    assert_eq!(Cidr::parse("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
    assert_eq!(Cidr::parse("10.1.2.3").unwrap().to_string(), "10.1.2.3/32");
    assert_eq!(Cidr::parse("0.0.0.0/0").unwrap().to_string(), "0.0.0.0/0");
    assert_eq!(
        Cidr::parse("2001:db8::1/32").unwrap().to_string(),
        "2001:db8::/32"
    );
    assert_eq!(Cidr::parse("::/0").unwrap().to_string(), "::/0");
    assert_eq!(Cidr::parse("::1").unwrap().prefix_len(), 128);
    for bad in [
        "10.0.0.0/33",
        "10.0.0.0/",
        "10.0.0/8",
        "2001:db8::/129",
        "x",
        "",
        "1.2.3.4/+8",
    ] {
        assert!(Cidr::parse(bad).is_err(), "{bad}");
    }
    let v4 = Cidr::parse("10.0.0.0/8").unwrap();
    assert!(v4.contains(&Cidr::parse("10.255.0.0/16").unwrap()));
    assert!(!v4.contains(&Cidr::parse("11.0.0.0/16").unwrap()));
    assert!(!v4.contains(&Cidr::parse("0.0.0.0/0").unwrap()));
    assert!(v4.overlaps(&Cidr::parse("0.0.0.0/0").unwrap()));
    // ::a00:0/104 has the same low bits as 10.0.0.0/8, but the families never match.
    assert!(!v4.overlaps(&Cidr::parse("::a00:0/104").unwrap()));
}

#[test]
fn problems_are_listed_once_per_invalid_part() {
    let set = PolicySet::new(&parse(&[
        p(
            "bad",
            "{podSelector: {matchExpressions: [{key: app, operator: Matches, values: [x]}]}, \
             policyTypes: [Ingress, Sideways], ingress: [{from: [{}, {ipBlock: {cidr: nope}}], \
             ports: [{protocol: ICMP}, {port: http, endPort: 90}, {endPort: 90}, {port: 90, endPort: 80}]}]}",
        ),
        "- metadata: {name: nons}\n  spec: {}\n".to_string(),
    ]));
    let text = set.problems().join("\n");
    for part in [
        "a/bad: podSelector: operator \"Matches\"",
        "a/bad: policyTypes: unknown value \"Sideways\"",
        "a/bad: ingress rule 0: a peer with neither",
        "a/bad: ingress rule 0: ipBlock:",
        "unknown protocol \"ICMP\"",
        "endPort with the named port \"http\"",
        "endPort without a port",
        "endPort 80 is below port 90",
        "default/nons: no metadata.namespace",
    ] {
        assert!(text.contains(part), "{part} not in\n{text}");
    }
    assert_eq!(set.problems().len(), 9, "{text}");
    assert_eq!(set.len(), 2);
}

#[test]
fn from_pod_reads_labels_ip_ports_and_the_namespace() {
    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "w", "namespace": "a", "labels": {"app": "web"}},
        "spec": {
            "containers": [{"name": "app", "ports": [
                {"name": "http", "containerPort": 8080},
                {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                {"containerPort": 9000}]}],
            "initContainers": [
                {"name": "side", "restartPolicy": "Always", "ports": [{"name": "s", "containerPort": 7}]},
                {"name": "init", "ports": [{"name": "i", "containerPort": 8}]}]},
        "status": {"podIP": "10.0.0.9"}
    }))
    .unwrap();
    let info = PodInfo::from_pod(&pod, None);
    assert_eq!(info.ip, Some(ip("10.0.0.9")));
    assert_eq!(info.labels, Labels::exactly(labels("app=web")));
    let ns = info.namespace.as_ref().unwrap();
    assert_eq!(ns.name, "a");
    assert!(!ns.labels.complete);
    assert_eq!(ns.labels.known, labels("kubernetes.io/metadata.name=a"));
    assert_eq!(
        info.ports.unwrap(),
        vec![
            port("http", 8080, Protocol::Tcp),
            port("dns", 53, Protocol::Udp),
            port("s", 7, Protocol::Tcp)
        ]
    );
}

#[test]
fn displays_say_who_decided() {
    let set = PolicySet::new(&parse(&[
        p("deny", "{podSelector: {}}"),
        p(
            "allow",
            "{podSelector: {matchLabels: {app: web}}, ingress: [{ports: [{port: 8080}]}]}",
        ),
    ]));
    let allowed = set.evaluate(&tcp(db(), web(), 8080));
    assert_eq!(allowed.egress.to_string(), "egress: not isolated");
    assert!(allowed.egress.not_isolated());
    assert_eq!(
        allowed.ingress.to_string(),
        "ingress: allowed by a/allow ingress rule 0"
    );
    let denied = set.evaluate(&tcp(db(), web(), 80));
    assert_eq!(
        denied.ingress.to_string(),
        "ingress: denied, isolated by a/deny, a/allow and no rule allows it"
    );
    let outside = set.evaluate(&tcp(ext("1.1.1.1"), web(), 8080));
    assert_eq!(
        outside.egress.to_string(),
        "egress: outside the cluster, no policy applies"
    );
    let json = serde_json::to_value(&denied).unwrap();
    assert_eq!(json["verdict"], "denied");
    assert_eq!(json["ingress"]["verdict"], "denied");
    assert_eq!(json["ingress"]["direction"], "Ingress");
    assert_eq!(json["ingress"]["isolating"][0], "a/deny");
    let unsure = PolicySet::new(&parse(&[p(
        "ip",
        "{ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}}]}]}",
    )]))
    .evaluate(&tcp(no_ip(db()), web(), 80));
    let json = serde_json::to_value(&unsure).unwrap();
    assert_eq!(json["verdict"], "cannot-tell");
    assert_eq!(
        json["reason"],
        "ingress: a/ip ingress rule 0: only an ipBlock could match and the pod's IP is not known"
    );
}
