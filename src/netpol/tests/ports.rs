//! Ports: numbers, named ports (ingress and egress), endPort ranges, protocols.

use super::Want::{Allowed, CannotTell, Denied};
use super::*;

/// A policy on web allowing ingress from anywhere on `ports` (a YAML flow list).
fn on(ports: &str) -> String {
    format!("{{podSelector: {{matchLabels: {{app: web}}}}, ingress: [{{ports: {ports}}}]}}")
}

/// A policy on web allowing egress to anywhere on `ports`.
fn out(ports: &str) -> String {
    format!(
        "{{podSelector: {{matchLabels: {{app: web}}}}, policyTypes: [Egress], egress: [{{ports: {ports}}}]}}"
    )
}

#[test]
fn numbers_ranges_and_protocols() {
    let n = run(vec![
        case(
            "a port number",
            vec![p("r", &on("[{port: 8080}]"))],
            tcp(client(), web(), 8080),
            Allowed(&["r"]),
        ),
        case(
            "another port number",
            vec![p("r", &on("[{port: 8080}]"))],
            tcp(client(), web(), 8081),
            Denied(&["r"]),
        ),
        case(
            "ports are ORed",
            vec![p("r", &on("[{port: 80}, {port: 8080}]"))],
            tcp(client(), web(), 8080),
            Allowed(&["r"]),
        ),
        case(
            "endPort: inside the range",
            vec![p("r", &on("[{port: 8000, endPort: 8100}]"))],
            tcp(client(), web(), 8080),
            Allowed(&["r"]),
        ),
        case(
            "endPort: the first port",
            vec![p("r", &on("[{port: 8000, endPort: 8100}]"))],
            tcp(client(), web(), 8000),
            Allowed(&["r"]),
        ),
        case(
            "endPort: the last port",
            vec![p("r", &on("[{port: 8000, endPort: 8100}]"))],
            tcp(client(), web(), 8100),
            Allowed(&["r"]),
        ),
        case(
            "endPort: past the range",
            vec![p("r", &on("[{port: 8000, endPort: 8100}]"))],
            tcp(client(), web(), 8101),
            Denied(&["r"]),
        ),
        case(
            "endPort: the range is per protocol",
            vec![p("r", &on("[{port: 8000, endPort: 8100}]"))],
            flow(client(), web(), "UDP", 8050),
            Denied(&["r"]),
        ),
        case(
            "endPort below port is invalid: cannot tell",
            vec![p("r", &on("[{port: 90, endPort: 80}]"))],
            tcp(client(), web(), 85),
            CannotTell("port entry is invalid"),
        ),
        case(
            "protocol defaults to TCP",
            vec![p("r", &on("[{port: 80}]"))],
            tcp(client(), web(), 80),
            Allowed(&["r"]),
        ),
        case(
            "protocol defaults to TCP, so not UDP",
            vec![p("r", &on("[{port: 80}]"))],
            flow(client(), web(), "UDP", 80),
            Denied(&["r"]),
        ),
        case(
            "UDP",
            vec![p("r", &on("[{port: 53, protocol: UDP}]"))],
            flow(client(), web(), "UDP", 53),
            Allowed(&["r"]),
        ),
        case(
            "UDP, so not TCP",
            vec![p("r", &on("[{port: 53, protocol: UDP}]"))],
            tcp(client(), web(), 53),
            Denied(&["r"]),
        ),
        case(
            "SCTP",
            vec![p("r", &on("[{port: 9000, protocol: SCTP}]"))],
            flow(client(), web(), "SCTP", 9000),
            Allowed(&["r"]),
        ),
        case(
            "SCTP, so not TCP",
            vec![p("r", &on("[{port: 9000, protocol: SCTP}]"))],
            tcp(client(), web(), 9000),
            Denied(&["r"]),
        ),
        case(
            "a protocol without a port: every port of it",
            vec![p("r", &on("[{protocol: UDP}]"))],
            flow(client(), web(), "UDP", 40000),
            Allowed(&["r"]),
        ),
        case(
            "a protocol without a port: not another protocol",
            vec![p("r", &on("[{protocol: UDP}]"))],
            tcp(client(), web(), 40000),
            Denied(&["r"]),
        ),
        case(
            "an unknown protocol: cannot tell",
            vec![p("r", &on("[{port: 1, protocol: ICMP}]"))],
            tcp(client(), web(), 1),
            CannotTell("port entry is invalid"),
        ),
        case(
            "a port number out of range: cannot tell",
            vec![p("r", &on("[{port: 70000}]"))],
            tcp(client(), web(), 4464),
            CannotTell("port entry is invalid"),
        ),
        case(
            "egress: a port number",
            vec![p("r", &out("[{port: 443}]"))],
            tcp(web(), ext("1.1.1.1"), 443),
            Allowed(&["r"]),
        ),
        case(
            "egress: UDP 53 but not TCP 53",
            vec![p("r", &out("[{port: 53, protocol: UDP}]"))],
            tcp(web(), ext("1.1.1.1"), 53),
            Denied(&["r"]),
        ),
    ]);
    assert_eq!(n, 21);
}

#[test]
fn named_ports() {
    let db_unknown_ports = match db() {
        Endpoint::Pod(p) => Endpoint::Pod(PodInfo { ports: None, ..p }),
        e => e,
    };
    let n = run(vec![
        case(
            "ingress: a named port of the destination",
            vec![p("r", &on("[{port: http}]"))],
            tcp(client(), web(), 8080),
            Allowed(&["r"]),
        ),
        case(
            "ingress: the name resolves to another number",
            vec![p("r", &on("[{port: http}]"))],
            tcp(client(), web(), 9090),
            Denied(&["r"]),
        ),
        case(
            "ingress: a name the pod does not have",
            vec![p("r", &on("[{port: grpc}]"))],
            tcp(client(), web(), 8080),
            Denied(&["r"]),
        ),
        case(
            "ingress: the name with another protocol (the rule's TCP default)",
            vec![p("r", &on("[{port: dns-udp}]"))],
            tcp(client(), web(), 53),
            Denied(&["r"]),
        ),
        case(
            "ingress: the name, but the rule's protocol is not the port's",
            vec![p("r", &on("[{port: dns-udp, protocol: TCP}]"))],
            flow(client(), web(), "UDP", 53),
            Denied(&["r"]),
        ),
        case(
            "ingress: the name and its protocol",
            vec![p("r", &on("[{port: dns-udp, protocol: UDP}]"))],
            flow(client(), web(), "UDP", 53),
            Allowed(&["r"]),
        ),
        case(
            "ingress: a named port is looked up on the destination, not the source",
            vec![pn(
                "b",
                "r",
                "{podSelector: {}, ingress: [{ports: [{port: http}]}]}",
            )],
            tcp(web(), client(), 8080),
            Denied(&["r"]),
        ),
        case(
            "egress: a named port of the destination pod",
            vec![p("r", &out("[{port: pg}]"))],
            tcp(web(), db(), 5432),
            Allowed(&["r"]),
        ),
        case(
            "egress: a name of the source pod does not count",
            vec![p("r", &out("[{port: http}]"))],
            tcp(web(), db(), 8080),
            Denied(&["r"]),
        ),
        case(
            "egress: an external destination has no named ports",
            vec![p("r", &out("[{port: https}]"))],
            tcp(web(), ext("1.1.1.1"), 443),
            Denied(&["r"]),
        ),
        case(
            "egress: the destination's ports are not known: cannot tell",
            vec![p("r", &out("[{port: pg}]"))],
            tcp(web(), db_unknown_ports.clone(), 5432),
            CannotTell("destination's container ports are not known"),
        ),
        case(
            "egress: ports not known, but a numeric entry allows",
            vec![p("r", &out("[{port: pg}, {port: 5432}]"))],
            tcp(web(), db_unknown_ports, 5432),
            Allowed(&["r"]),
        ),
        case(
            "endPort with a named port is invalid: cannot tell",
            vec![p("r", &on("[{port: http, endPort: 8090}]"))],
            tcp(client(), web(), 8080),
            CannotTell("port entry is invalid"),
        ),
    ]);
    assert_eq!(n, 13);
}
