//! Isolation (policyTypes and their defaults, the policy's podSelector), empty versus absent
//! rule fields, the union of policies, and both sides of a flow.

use super::Want::{Allowed, CannotTell, Denied};
use super::*;

const WEB: &str = "podSelector: {matchLabels: {app: web}}";

fn spec(body: &str) -> String {
    format!("{{{WEB}, {body}}}")
}

#[test]
fn isolation_and_policy_types() {
    let n = run(vec![
        case(
            "no policies: not isolated",
            vec![],
            tcp(client(), web(), 80),
            Allowed(&[]),
        ),
        case(
            "policyTypes absent, no ingress field: isolated for ingress",
            vec![p("deny", &format!("{{{WEB}}}"))],
            tcp(client(), web(), 80),
            Denied(&["deny"]),
        ),
        case(
            "policyTypes absent, no egress field: not isolated for egress",
            vec![p("deny", &format!("{{{WEB}}}"))],
            tcp(web(), db(), 80),
            Allowed(&[]),
        ),
        case(
            "policyTypes absent, egress: [] present: isolated for egress",
            vec![p("deny-out", &spec("egress: []"))],
            tcp(web(), db(), 80),
            Denied(&["deny-out"]),
        ),
        case(
            "policyTypes absent, egress: [] present: still isolated for ingress",
            vec![p("deny-out", &spec("egress: []"))],
            tcp(db(), web(), 80),
            Denied(&["deny-out"]),
        ),
        case(
            "policyTypes [Egress]: not isolated for ingress",
            vec![p("out", &spec("policyTypes: [Egress]"))],
            tcp(client(), web(), 80),
            Allowed(&[]),
        ),
        case(
            "policyTypes [Egress] without an egress field: isolated for egress",
            vec![p("out", &spec("policyTypes: [Egress]"))],
            tcp(web(), ext("8.8.8.8"), 53),
            Denied(&["out"]),
        ),
        case(
            "policyTypes [Ingress, Egress], ingress rules only: egress denied",
            vec![p(
                "both",
                &spec("policyTypes: [Ingress, Egress], ingress: [{}]"),
            )],
            tcp(web(), ext("8.8.8.8"), 443),
            Denied(&["both"]),
        ),
        case(
            "policyTypes [Ingress] with an egress field: egress rules ignored",
            vec![p("in", &spec("policyTypes: [Ingress], egress: []"))],
            tcp(web(), db(), 80),
            Allowed(&[]),
        ),
        case(
            "policyTypes: [] is as absent",
            vec![p("deny", &spec("policyTypes: []"))],
            tcp(client(), web(), 80),
            Denied(&["deny"]),
        ),
        case(
            "spec: {} selects every pod of its namespace",
            vec![p("all", "{}")],
            tcp(client(), db(), 5432),
            Denied(&["all"]),
        ),
        case(
            "an empty podSelector selects every pod of its namespace",
            vec![p("all", "{podSelector: {}}")],
            tcp(client(), web(), 80),
            Denied(&["all"]),
        ),
        case(
            "a policy not selecting the pod does not isolate it",
            vec![p("db-only", "{podSelector: {matchLabels: {app: db}}}")],
            tcp(client(), web(), 80),
            Allowed(&[]),
        ),
        case(
            "a policy of another namespace does not isolate the pod",
            vec![pn("b", "deny-b", "{podSelector: {}}")],
            tcp(other(), web(), 80),
            Allowed(&[]),
        ),
        case(
            "an unknown policyType: cannot tell whether it isolates",
            vec![p("odd", &spec("policyTypes: [Ingres]"))],
            tcp(client(), web(), 80),
            CannotTell("policyTypes holds an unknown value"),
        ),
        case(
            "an unknown operator in the policy's podSelector: cannot tell",
            vec![p(
                "odd",
                "{podSelector: {matchExpressions: [{key: app, operator: Like, values: [w]}]}}",
            )],
            tcp(client(), web(), 80),
            CannotTell("label selector is invalid"),
        ),
    ]);
    assert_eq!(n, 16);
}

#[test]
fn empty_and_absent_fields() {
    let n = run(vec![
        case(
            "ingress rule {}: all sources, all ports",
            vec![p("open", &spec("ingress: [{}]"))],
            tcp(other(), web(), 12345),
            Allowed(&["open"]),
        ),
        case(
            "from: [] is all sources",
            vec![p(
                "open",
                &spec("ingress: [{from: [], ports: [{port: 8080}]}]"),
            )],
            tcp(client(), web(), 8080),
            Allowed(&["open"]),
        ),
        case(
            "from: [] still limits the ports",
            vec![p(
                "open",
                &spec("ingress: [{from: [], ports: [{port: 8080}]}]"),
            )],
            tcp(client(), web(), 9999),
            Denied(&["open"]),
        ),
        case(
            "ports: [] is all ports",
            vec![p(
                "ns",
                &spec("ingress: [{from: [{namespaceSelector: {}}], ports: []}]"),
            )],
            flow(client(), web(), "UDP", 9999),
            Allowed(&["ns"]),
        ),
        case(
            "ports absent is all ports",
            vec![p(
                "ns",
                &spec("ingress: [{from: [{namespaceSelector: {}}]}]"),
            )],
            flow(client(), web(), "SCTP", 1),
            Allowed(&["ns"]),
        ),
        case(
            "ingress: [] allows nothing",
            vec![p("none", &spec("ingress: []"))],
            tcp(db(), web(), 80),
            Denied(&["none"]),
        ),
        case(
            "egress rule {}: all destinations, all ports",
            vec![p("out", &spec("egress: [{}]"))],
            tcp(web(), ext("203.0.113.9"), 25),
            Allowed(&["out"]),
        ),
        case(
            "to: [] is all destinations",
            vec![p("out", &spec("egress: [{to: [], ports: [{port: 443}]}]"))],
            tcp(web(), ext("203.0.113.9"), 443),
            Allowed(&["out"]),
        ),
        case(
            "to: [] still limits the ports",
            vec![p("out", &spec("egress: [{to: [], ports: [{port: 443}]}]"))],
            tcp(web(), ext("203.0.113.9"), 80),
            Denied(&["out"]),
        ),
    ]);
    assert_eq!(n, 9);
}

#[test]
fn union_and_both_sides() {
    let from_db = spec("ingress: [{from: [{podSelector: {matchLabels: {app: db}}}]}]");
    let from_b = spec("ingress: [{from: [{namespaceSelector: {matchLabels: {team: b}}}]}]");
    let web_to_db =
        spec("policyTypes: [Egress], egress: [{to: [{podSelector: {matchLabels: {app: db}}}]}]");
    let db_deny = "{podSelector: {matchLabels: {app: db}}}";
    let db_from_web = "{podSelector: {matchLabels: {app: db}}, ingress: [{from: [{podSelector: {matchLabels: {app: web}}}]}]}";
    let n = run(vec![
        case(
            "union: the second policy allows",
            vec![p("p1", &from_db), p("p2", &from_b)],
            tcp(client(), web(), 80),
            Allowed(&["p2"]),
        ),
        case(
            "union: the first policy allows",
            vec![p("p1", &from_db), p("p2", &from_b)],
            tcp(db(), web(), 80),
            Allowed(&["p1"]),
        ),
        case(
            "union: neither allows, both isolate",
            vec![p("p1", &from_db), p("p2", &from_b)],
            tcp(other(), web(), 80),
            Denied(&["p1", "p2"]),
        ),
        case(
            "union: both allow",
            vec![p("p1", &spec("ingress: [{}]")), p("p2", &from_b)],
            tcp(client(), web(), 80),
            Allowed(&["p1", "p2"]),
        ),
        case(
            "union: a deny-all does not take away what another allows",
            vec![p("deny", "{podSelector: {}}"), p("allow", &from_b)],
            tcp(client(), web(), 80),
            Allowed(&["allow"]),
        ),
        case(
            "both sides: egress denied although ingress allows",
            vec![
                p("web-out", &spec("policyTypes: [Egress]")),
                p("db-in", db_from_web),
            ],
            tcp(web(), db(), 5432),
            Denied(&["web-out"]),
        ),
        case(
            "both sides: ingress denied although egress allows",
            vec![p("web-out", &web_to_db), p("db-deny", db_deny)],
            tcp(web(), db(), 5432),
            Denied(&["db-deny"]),
        ),
        case(
            "both sides: both allow",
            vec![p("web-out", &web_to_db), p("db-in", db_from_web)],
            tcp(web(), db(), 5432),
            Allowed(&["db-in", "web-out"]),
        ),
        case(
            "both sides: a denied side wins over a side that cannot tell",
            vec![
                p(
                    "web-out",
                    &spec("policyTypes: [Egress], egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8}}]}]"),
                ),
                p("db-deny", db_deny),
            ],
            tcp(web(), no_ip(db()), 5432),
            Denied(&["db-deny"]),
        ),
        case(
            "an external source: only the destination's ingress counts",
            vec![p(
                "lb",
                &spec("ingress: [{from: [{ipBlock: {cidr: 198.51.100.0/24}}]}]"),
            )],
            tcp(ext("198.51.100.7"), web(), 8080),
            Allowed(&["lb"]),
        ),
        case(
            "a source of unknown namespace with egress policies around: cannot tell",
            vec![pn("b", "b-out", "{podSelector: {}, policyTypes: [Egress]}")],
            tcp(
                Endpoint::Pod(PodInfo {
                    namespace: None,
                    labels: Labels::unknown(),
                    ip: None,
                    ports: None,
                }),
                ext("1.1.1.1"),
                443,
            ),
            CannotTell("namespace is not known"),
        ),
    ]);
    assert_eq!(n, 11);
}
