//! Peers: podSelector and namespaceSelector alone and together, the selector operators,
//! ipBlock with except (IPv4 and IPv6), and what cannot be told.

use super::Want::{Allowed, CannotTell, Denied};
use super::*;

/// A policy on web allowing ingress from `peers` (a YAML flow list).
fn from(peers: &str) -> String {
    format!("{{podSelector: {{matchLabels: {{app: web}}}}, ingress: [{{from: {peers}}}]}}")
}

/// Allowing ingress to web from pods of any namespace matching `expr` (one requirement).
fn expr(e: &str) -> String {
    from(&format!(
        "[{{namespaceSelector: {{}}, podSelector: {{matchExpressions: [{e}]}}}}]"
    ))
}

#[test]
fn pod_and_namespace_selectors() {
    let n = run(vec![
        case(
            "podSelector alone: a pod of the policy's namespace",
            vec![p("r", &from("[{podSelector: {matchLabels: {app: db}}}]"))],
            tcp(db(), web(), 80),
            Allowed(&["r"]),
        ),
        case(
            "podSelector alone: matching labels in another namespace do not count",
            vec![p(
                "r",
                &from("[{podSelector: {matchLabels: {app: client}}}]"),
            )],
            tcp(client(), web(), 80),
            Denied(&["r"]),
        ),
        case(
            "empty podSelector alone: every pod of the policy's namespace",
            vec![p("r", &from("[{podSelector: {}}]"))],
            tcp(db(), web(), 80),
            Allowed(&["r"]),
        ),
        case(
            "empty podSelector alone: not pods of other namespaces",
            vec![p("r", &from("[{podSelector: {}}]"))],
            tcp(client(), web(), 80),
            Denied(&["r"]),
        ),
        case(
            "namespaceSelector alone: every pod of a matching namespace",
            vec![p(
                "r",
                &from("[{namespaceSelector: {matchLabels: {team: b}}}]"),
            )],
            tcp(client(), web(), 80),
            Allowed(&["r"]),
        ),
        case(
            "namespaceSelector alone: not a namespace that does not match",
            vec![p(
                "r",
                &from("[{namespaceSelector: {matchLabels: {team: b}}}]"),
            )],
            tcp(other(), web(), 80),
            Denied(&["r"]),
        ),
        case(
            "empty namespaceSelector: every namespace",
            vec![p("r", &from("[{namespaceSelector: {}}]"))],
            tcp(other(), web(), 80),
            Allowed(&["r"]),
        ),
        case(
            "namespaceSelector on kubernetes.io/metadata.name, set on every namespace",
            vec![p(
                "r",
                &from("[{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: c}}}]"),
            )],
            tcp(other(), web(), 80),
            Allowed(&["r"]),
        ),
        case(
            "both in one peer: pods matching both",
            vec![p(
                "r",
                &from(
                    "[{namespaceSelector: {matchLabels: {team: b}}, podSelector: {matchLabels: {app: client}}}]",
                ),
            )],
            tcp(client(), web(), 80),
            Allowed(&["r"]),
        ),
        case(
            "both in one peer: the namespace matches, the pod does not",
            vec![p(
                "r",
                &from(
                    "[{namespaceSelector: {matchLabels: {team: b}}, podSelector: {matchLabels: {app: db}}}]",
                ),
            )],
            tcp(client(), web(), 80),
            Denied(&["r"]),
        ),
        case(
            "both in one peer: the pod matches, the namespace does not",
            vec![p(
                "r",
                &from(
                    "[{namespaceSelector: {matchLabels: {team: a}}, podSelector: {matchLabels: {app: client}}}]",
                ),
            )],
            tcp(client(), web(), 80),
            Denied(&["r"]),
        ),
        case(
            "two peers are ORed: the namespace alone is enough",
            vec![p(
                "r",
                &from(
                    "[{namespaceSelector: {matchLabels: {team: b}}}, {podSelector: {matchLabels: {app: db}}}]",
                ),
            )],
            tcp(client(), web(), 80),
            Allowed(&["r"]),
        ),
        case(
            "a peer with neither selector nor ipBlock: cannot tell",
            vec![p("r", &from("[{}]"))],
            tcp(client(), web(), 80),
            CannotTell("a peer is invalid"),
        ),
    ]);
    assert_eq!(n, 13);
}

#[test]
fn selector_operators() {
    let n = run(vec![
        case(
            "In: the value is listed",
            vec![p(
                "r",
                &expr("{key: app, operator: In, values: [x, client]}"),
            )],
            tcp(client(), web(), 80),
            Allowed(&["r"]),
        ),
        case(
            "In: the value is not listed",
            vec![p("r", &expr("{key: app, operator: In, values: [x, y]}"))],
            tcp(client(), web(), 80),
            Denied(&["r"]),
        ),
        case(
            "In: the key is absent",
            vec![p("r", &expr("{key: tier, operator: In, values: [fe]}"))],
            tcp(client(), web(), 80),
            Denied(&["r"]),
        ),
        case(
            "NotIn: the value is not listed",
            vec![p("r", &expr("{key: app, operator: NotIn, values: [db]}"))],
            tcp(client(), web(), 80),
            Allowed(&["r"]),
        ),
        case(
            "NotIn: the value is listed",
            vec![p(
                "r",
                &expr("{key: app, operator: NotIn, values: [client]}"),
            )],
            tcp(client(), web(), 80),
            Denied(&["r"]),
        ),
        case(
            "NotIn: the key is absent, so it matches",
            vec![p("r", &expr("{key: tier, operator: NotIn, values: [x]}"))],
            tcp(client(), web(), 80),
            Allowed(&["r"]),
        ),
        case(
            "Exists: the key is there",
            vec![p("r", &expr("{key: role, operator: Exists}"))],
            tcp(client(), web(), 80),
            Allowed(&["r"]),
        ),
        case(
            "Exists: the key is absent",
            vec![p("r", &expr("{key: tier, operator: Exists}"))],
            tcp(client(), web(), 80),
            Denied(&["r"]),
        ),
        case(
            "DoesNotExist: the key is absent",
            vec![p("r", &expr("{key: tier, operator: DoesNotExist}"))],
            tcp(client(), web(), 80),
            Allowed(&["r"]),
        ),
        case(
            "DoesNotExist: the key is there",
            vec![p("r", &expr("{key: role, operator: DoesNotExist}"))],
            tcp(client(), web(), 80),
            Denied(&["r"]),
        ),
        case(
            "matchLabels and matchExpressions are ANDed",
            vec![p(
                "r",
                &from(
                    "[{namespaceSelector: {}, podSelector: {matchLabels: {app: client}, matchExpressions: [{key: tier, operator: Exists}]}}]",
                ),
            )],
            tcp(client(), web(), 80),
            Denied(&["r"]),
        ),
        case(
            "matchExpressions on namespace labels",
            vec![p(
                "r",
                &from(
                    "[{namespaceSelector: {matchExpressions: [{key: team, operator: In, values: [a, b]}]}}]",
                ),
            )],
            tcp(client(), web(), 80),
            Allowed(&["r"]),
        ),
        case(
            "an unknown operator matches nothing: cannot tell",
            vec![p(
                "r",
                &expr("{key: app, operator: Matches, values: [client]}"),
            )],
            tcp(client(), web(), 80),
            CannotTell("a/r ingress rule 0: a label selector is invalid"),
        ),
        case(
            "an unknown operator does not matter when another rule allows",
            vec![
                p(
                    "r",
                    &expr("{key: app, operator: Matches, values: [client]}"),
                ),
                p("ok", &from("[{namespaceSelector: {}}]")),
            ],
            tcp(client(), web(), 80),
            Allowed(&["ok"]),
        ),
        case(
            "In without values is invalid: cannot tell",
            vec![p("r", &expr("{key: app, operator: In, values: []}"))],
            tcp(client(), web(), 80),
            CannotTell("label selector is invalid"),
        ),
        case(
            "labels of a class of pods not known: cannot tell",
            vec![p("r", &expr("{key: tier, operator: DoesNotExist}"))],
            tcp(
                Endpoint::Pod(PodInfo {
                    labels: Labels::at_least(labels("app=client")),
                    ..pod_of(client())
                }),
                web(),
                80,
            ),
            CannotTell("pod labels it selects on are not known"),
        ),
        case(
            "a known label decides for a class of pods",
            vec![p("r", &expr("{key: app, operator: In, values: [client]}"))],
            tcp(
                Endpoint::Pod(PodInfo {
                    labels: Labels::at_least(labels("app=client")),
                    ..pod_of(client())
                }),
                web(),
                80,
            ),
            Allowed(&["r"]),
        ),
        case(
            "namespace labels not known: cannot tell",
            vec![p(
                "r",
                &from("[{namespaceSelector: {matchLabels: {team: b}}}]"),
            )],
            tcp(
                Endpoint::Pod(PodInfo {
                    namespace: Some(PodNamespace::new("b", Labels::unknown())),
                    ..pod_of(client())
                }),
                web(),
                80,
            ),
            CannotTell("namespace labels it selects on are not known"),
        ),
        case(
            "a pod of any namespace against a podSelector alone: cannot tell",
            vec![p(
                "r",
                &from("[{podSelector: {matchLabels: {app: client}}}]"),
            )],
            tcp(
                Endpoint::Pod(PodInfo {
                    namespace: None,
                    ..pod_of(client())
                }),
                web(),
                80,
            ),
            CannotTell("namespace is not known"),
        ),
    ]);
    assert_eq!(n, 19);
}

fn pod_of(e: Endpoint) -> PodInfo {
    match e {
        Endpoint::Pod(p) => p,
        Endpoint::External(_) => unreachable!(),
    }
}

#[test]
fn ip_blocks() {
    let out = |block: &str| {
        format!(
            "{{podSelector: {{matchLabels: {{app: web}}}}, policyTypes: [Egress], egress: [{{to: [{{ipBlock: {block}}}]}}]}}"
        )
    };
    let n = run(vec![
        case(
            "ipBlock matches a pod IP",
            vec![p("r", &from("[{ipBlock: {cidr: 10.0.1.0/24}}]"))],
            tcp(client(), web(), 80),
            Allowed(&["r"]),
        ),
        case(
            "ipBlock except takes the pod IP out",
            vec![p(
                "r",
                &from("[{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.1.0/24]}}]"),
            )],
            tcp(client(), web(), 80),
            Denied(&["r"]),
        ),
        case(
            "egress to an external IP in the block",
            vec![p("r", &out("{cidr: 0.0.0.0/0, except: [10.0.0.0/8]}"))],
            tcp(web(), ext("8.8.8.8"), 53),
            Allowed(&["r"]),
        ),
        case(
            "egress to an external IP in an except",
            vec![p("r", &out("{cidr: 0.0.0.0/0, except: [10.0.0.0/8]}"))],
            tcp(web(), ext("10.1.2.3"), 53),
            Denied(&["r"]),
        ),
        case(
            "IPv6: in the block",
            vec![p(
                "r",
                &out("{cidr: '2001:db8::/32', except: ['2001:db8:1::/48']}"),
            )],
            tcp(web(), ext("2001:db8:2::1"), 443),
            Allowed(&["r"]),
        ),
        case(
            "IPv6: in the except",
            vec![p(
                "r",
                &out("{cidr: '2001:db8::/32', except: ['2001:db8:1::/48']}"),
            )],
            tcp(web(), ext("2001:db8:1::5"), 443),
            Denied(&["r"]),
        ),
        case(
            "IPv6: outside the block",
            vec![p("r", &out("{cidr: '2001:db8::/32'}"))],
            tcp(web(), ext("2001:db9::1"), 443),
            Denied(&["r"]),
        ),
        case(
            "an IPv4 block never matches an IPv6 peer",
            vec![p("r", &out("{cidr: 0.0.0.0/0}"))],
            tcp(web(), ext("2001:db8::1"), 443),
            Denied(&["r"]),
        ),
        case(
            "an IPv6 /0 matches every IPv6 peer",
            vec![p("r", &out("{cidr: '::/0'}"))],
            tcp(web(), ext("2001:db8::1"), 443),
            Allowed(&["r"]),
        ),
        case(
            "a peer CIDR only partly in the block: cannot tell",
            vec![p("r", &out("{cidr: 10.1.0.0/16}"))],
            tcp(web(), ext("10.0.0.0/8"), 443),
            CannotTell("covers only part"),
        ),
        case(
            "a peer CIDR partly in an except: cannot tell",
            vec![p("r", &out("{cidr: 10.0.0.0/8, except: [10.1.0.0/16]}"))],
            tcp(web(), ext("10.0.0.0/8"), 443),
            CannotTell("covers only part"),
        ),
        case(
            "a pod without an IP and only an ipBlock rule: cannot tell",
            vec![p("r", &from("[{ipBlock: {cidr: 10.0.0.0/8}}]"))],
            tcp(no_ip(client()), web(), 80),
            CannotTell("the pod's IP is not known"),
        ),
        case(
            "a pod without an IP, a selector peer next to the ipBlock allows",
            vec![p(
                "r",
                &from(
                    "[{ipBlock: {cidr: 10.0.0.0/8}}, {namespaceSelector: {matchLabels: {team: b}}}]",
                ),
            )],
            tcp(no_ip(client()), web(), 80),
            Allowed(&["r"]),
        ),
        case(
            "a pod without an IP, the ipBlock rule's ports do not match anyway",
            vec![p(
                "r",
                "{podSelector: {matchLabels: {app: web}}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}}], ports: [{port: 443}]}]}",
            )],
            tcp(no_ip(client()), web(), 80),
            Denied(&["r"]),
        ),
        case(
            "a CIDR that does not parse: cannot tell",
            vec![p("r", &from("[{ipBlock: {cidr: 10.0.0.0/33}}]"))],
            tcp(client(), web(), 80),
            CannotTell("CIDR does not parse"),
        ),
        case(
            "selectors never match an external peer",
            vec![p("r", &from("[{namespaceSelector: {}}]"))],
            tcp(ext("10.0.1.1"), web(), 80),
            Denied(&["r"]),
        ),
    ]);
    assert_eq!(n, 16);
}
