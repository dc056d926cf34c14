//! Bad input, each kind with its expected answer: bodies that are not AdmissionReviews (400
//! with a message), reviews the webhook must let through unchanged, pods it cannot read, every
//! kind of bad override value (admitted uninjected with a warning naming the annotation), and
//! HTTP-level mistakes against a running server. No case may panic or hang.

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;

use proxy_injector::admission::{Admission, Outcome};
use proxy_injector::config::Config;
use proxy_injector::namespaces::Namespaces;
use serde_json::{Value, json};

fn admission() -> Admission {
    let ns = Namespaces::from_yaml(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  annotations:\n    linkerd.io/inject: enabled\n",
        "t",
    )
    .unwrap();
    Admission::new(Arc::new(Config::default()), ns)
}

fn review_with(request: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})).unwrap()
}

fn pod(annotations: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "shop", "annotations": annotations},
           "spec": {"containers": [{"name": "app", "image": "nginx"}]}})
}

fn request(object: Value) -> Value {
    json!({"uid": "u", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "operation": "CREATE",
           "namespace": "shop", "object": object})
}

enum Expect {
    /// HTTP 400, with this in the message.
    Rejected(&'static str),
    /// Allowed, no patch.
    Unchanged,
    /// Allowed, no patch, a warning containing this.
    Warned(&'static str),
    /// Allowed with a patch.
    Injected,
}

fn cases() -> Vec<(&'static str, Vec<u8>, Expect)> {
    use Expect::*;
    let mut c: Vec<(&'static str, Vec<u8>, Expect)> = vec![
        ("empty body", vec![], Rejected("not an AdmissionReview")),
        ("not JSON", b"hello".to_vec(), Rejected("not an AdmissionReview")),
        ("truncated JSON", br#"{"apiVersion":"admission.k8s.io/v1","kind":"Admiss"#.to_vec(), Rejected("not an AdmissionReview")),
        ("JSON array", b"[1,2]".to_vec(), Rejected("not an AdmissionReview")),
        ("JSON number", b"42".to_vec(), Rejected("not an AdmissionReview")),
        ("JSON null", b"null".to_vec(), Rejected("not an AdmissionReview")),
        ("invalid UTF-8", vec![b'{', 0xff, 0xfe, b'}'], Rejected("not an AdmissionReview")),
        ("wrong apiVersion", br#"{"apiVersion":"admission.k8s.io/v2","kind":"AdmissionReview","request":{"uid":"u"}}"#.to_vec(), Rejected("expected apiVersion")),
        ("wrong kind", br#"{"apiVersion":"admission.k8s.io/v1","kind":"Pod","request":{"uid":"u"}}"#.to_vec(), Rejected("expected apiVersion")),
        ("missing apiVersion", br#"{"kind":"AdmissionReview","request":{"uid":"u"}}"#.to_vec(), Rejected("expected apiVersion")),
        ("missing request", br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(), Rejected("no request")),
        ("null request", br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":null}"#.to_vec(), Rejected("no request")),
        ("missing uid", review_with(json!({"kind": {"kind": "Pod"}})), Rejected("uid")),
        ("empty uid", review_with(json!({"uid": ""})), Rejected("empty uid")),
        ("uid not a string", review_with(json!({"uid": 7})), Rejected("not an AdmissionReview")),
        ("request of the wrong shape", review_with(json!([1, 2, 3])), Rejected("not an AdmissionReview")),
        (
            "deeply nested unknown field",
            {
                let mut b = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","x":"#.to_vec();
                b.extend(std::iter::repeat_n(b'[', 5000));
                b.extend(std::iter::repeat_n(b']', 5000));
                b.extend(b"}}");
                b
            },
            // An unknown field is skipped, however deep; the request then names no Pod.
            Unchanged,
        ),
        ("missing object", review_with(json!({"uid": "u", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "operation": "CREATE"})), Unchanged),
        ("null object", review_with(request(Value::Null)), Unchanged),
        ("object is a string", review_with(request(json!("pod"))), Warned("could not be read")),
        ("containers not a list", review_with(request(json!({"metadata": {"annotations": {"linkerd.io/inject": "enabled"}}, "spec": {"containers": "app"}}))), Warned("could not be read")),
        ("pod without spec", review_with(request(json!({"metadata": {"name": "p", "annotations": {"linkerd.io/inject": "enabled"}}}))), Warned("has no spec")),
        // Found by the `review` fuzz target: a patch under /metadata cannot apply to a pod without it.
        ("pod without metadata in a meshed namespace", review_with(request(json!({"metadat,": {"name": "p"},
            "spec": {"containers": [{"name": "app", "image": "nginx"}]}}))), Warned("has no metadata")),
        // Also found by the fuzzer: labels that are not an object, volumes that are not an array.
        ("labels that are a string", review_with(request(json!({"metadata": {"name": "p", "labels": "shop"},
            "spec": {"containers": [{"name": "app", "image": "nginx"}]}}))), Warned("could not be read")),
        ("volumes that are an object", review_with(request(json!({"metadata": {"name": "p"},
            "spec": {"containers": [{"name": "app", "image": "nginx"}], "volumes": {"v": {}}}}))), Warned("could not be read")),
        // No app to mesh: never a proxy-only pod (that would turn an invalid pod into a valid one).
        ("pod without containers", review_with(request(json!({"metadata": {"name": "p"}, "spec": {}}))), Unchanged),
        ("pod with containers: null", review_with(request(json!({"metadata": {"name": "p"}, "spec": {"containers": null}}))), Unchanged),
        ("object not a Pod", review_with(json!({"uid": "u", "kind": {"group": "", "version": "v1", "kind": "ConfigMap"}, "operation": "CREATE", "namespace": "shop", "object": {"data": {}}})), Unchanged),
        ("Pod from another group", review_with(json!({"uid": "u", "kind": {"group": "example.com", "version": "v1", "kind": "Pod"}, "operation": "CREATE", "namespace": "shop", "object": pod(json!({}))})), Unchanged),
    ];
    for op in ["DELETE", "UPDATE", "CONNECT"] {
        let mut r = request(pod(json!({})));
        r["operation"] = json!(op);
        c.push(("operation other than CREATE", review_with(r), Unchanged));
    }
    let mut dry = request(pod(json!({})));
    dry["dryRun"] = json!(true);
    c.push((
        "dryRun: true (injected: the API server returns the result)",
        review_with(dry),
        Injected,
    ));
    c.push((
        "a 1 MB annotation",
        review_with(request(pod(json!({"big": "x".repeat(1 << 20)})))),
        Injected,
    ));
    let many: Vec<Value> = (0..10_000).map(|i| json!({"name": format!("c{i}"), "image": "x", "ports": [{"containerPort": 1 + i % 60000}]})).collect();
    c.push((
        "10,000 containers",
        review_with(request(
            json!({"metadata": {"name": "p"}, "spec": {"containers": many}}),
        )),
        Injected,
    ));
    c.push((
        "keys with / and ~",
        review_with(request(pod(json!({"a/b~c": "1", "~": "2", "/": "3"})))),
        Injected,
    ));
    for (key, value) in [
        ("config.linkerd.io/proxy-cpu-request", "lots"),
        ("config.linkerd.io/proxy-cpu-limit", "-1"),
        ("config.linkerd.io/proxy-memory-request", "1.2.3Gi"),
        ("config.linkerd.io/proxy-memory-limit", "64 Mi"),
        ("config.linkerd.io/admin-port", "0"),
        ("config.linkerd.io/inbound-port", "70000"),
        ("config.linkerd.io/outbound-port", "4000-4010"),
        ("config.linkerd.io/control-port", "http"),
        ("config.linkerd.io/skip-inbound-ports", "10-5"),
        ("config.linkerd.io/skip-outbound-ports", "443,,x"),
        ("config.linkerd.io/opaque-ports", "99999"),
        ("config.linkerd.io/proxy-uid", "-1"),
        ("config.linkerd.io/proxy-gid", "root"),
        ("config.linkerd.io/proxy-await", "yes"),
        ("config.linkerd.io/enable-debug-sidecar", "on"),
        ("config.linkerd.io/proxy-log-level", "loud"),
        ("config.linkerd.io/proxy-log-format", "xml"),
        ("config.linkerd.io/shutdown-grace-period", "forever"),
        ("config.linkerd.io/skip-subnets", "10.0.0.0/33"),
        ("config.linkerd.io/proxy-image", "has space"),
        ("config.linkerd.io/proxy-version", "v1:2"),
        ("config.linkerd.io/image-pull-policy", "Sometimes"),
        ("config.linkerd.io/default-inbound-policy", "open"),
        (
            "config.alpha.linkerd.io/proxy-enable-native-sidecar",
            "maybe",
        ),
    ] {
        let key: &'static str = key;
        c.push((
            key,
            review_with(request(pod(json!({key: value})))),
            Warned(key),
        ));
    }
    c
}

#[test]
fn every_bad_input_gets_its_answer() {
    let a = admission();
    let cases = cases();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    for (name, body, expect) in cases {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| a.review(&body)));
        let Ok(result) = result else {
            panic!("{name}: the handler panicked")
        };
        match (expect, result) {
            (Expect::Rejected(msg), Err(e)) => assert!(e.to_string().contains(msg), "{name}: {e}"),
            (Expect::Rejected(_), Ok(ans)) => panic!(
                "{name}: expected a 400, got {}",
                String::from_utf8_lossy(&ans.body)
            ),
            (_, Err(e)) => panic!("{name}: rejected: {e}"),
            (expect, Ok(ans)) => {
                let v: Value = serde_json::from_slice(&ans.body)
                    .unwrap_or_else(|e| panic!("{name}: response is not JSON: {e}"));
                let resp = &v["response"];
                assert_eq!(resp["allowed"], true, "{name}: {resp}");
                assert_eq!(resp["uid"], "u", "{name}");
                match expect {
                    Expect::Unchanged => assert!(
                        resp["patch"].is_null() && resp["warnings"].is_null(),
                        "{name}: {resp}"
                    ),
                    Expect::Warned(w) => {
                        assert!(resp["patch"].is_null(), "{name}: {resp}");
                        let warnings = resp["warnings"].to_string();
                        assert!(warnings.contains(w), "{name}: warnings {warnings}");
                    }
                    Expect::Injected => {
                        assert!(
                            matches!(ans.outcome, Outcome::Injected { .. }),
                            "{name}: {:?}",
                            ans.outcome
                        );
                        assert_eq!(resp["patchType"], "JSONPatch", "{name}");
                    }
                    Expect::Rejected(_) => unreachable!(),
                }
            }
        }
    }
}

#[tokio::test]
async fn http_level_mistakes() {
    let dir = tempfile::tempdir().unwrap();
    let ns = dir.path().join("ns.yaml");
    std::fs::write(
        &ns,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n",
    )
    .unwrap();
    let inj = support::Injector::start(&["--namespaces", ns.to_str().unwrap()], &[]);
    let c = support::client(&inj.ca_pem());
    let good = serde_json::to_vec(&support::pod_review("u", "shop", pod(json!({})))).unwrap();

    // Wrong Content-Type: 415 with a message.
    let r = c
        .post(inj.url("/inject"))
        .header("content-type", "text/plain")
        .body(good.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert!(r.text().await.unwrap().contains("application/json"));
    // GET on /inject, unknown paths.
    assert_eq!(
        c.get(inj.url("/inject")).send().await.unwrap().status(),
        405
    );
    assert_eq!(
        c.post(inj.url("/nope"))
            .body(good.clone())
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    // HTTP/2 (ALPN) works.
    let h2 = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&inj.ca_pem()).unwrap())
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = h2
        .post(inj.url("/inject"))
        .header("content-type", "application/json")
        .body(good.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    // HTTP/1.0 (no keep-alive, no Host): answered, then the connection is closed.
    let (port, ca) = (inj.port, inj.ca_pem());
    let body = good.clone();
    let (text, _) = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut s = support::tls_stream(port, &ca);
        let head = format!(
            "POST /inject HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(&body).unwrap();
        s.flush().unwrap();
        support::read_until_closed(&mut s)
    })
    .await
    .unwrap();
    assert!(text.starts_with("HTTP/1.0 200"), "{text}");
    assert!(text.contains("\"uid\":\"u\""), "{text}");
    // Plain HTTP to the TLS port: no answer, and the server keeps serving others.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/healthz", inj.port))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    // TLS 1.0/1.1: see `only_tls_1_2_and_1_3_are_negotiated`.
    assert_eq!(
        c.get(inj.url("/healthz")).send().await.unwrap().status(),
        200
    );
}

/// A ClientHello built by hand: `legacy_version` in the hello (and the record), and the
/// supported_versions extension when given. Everything else is what a TLS 1.2 client sends:
/// ECDHE suites for ECDSA and RSA certificates, SNI, groups, point formats, signature schemes.
fn client_hello(legacy_version: u16, supported_versions: Option<&[u16]>) -> Vec<u8> {
    fn u16s(v: &[u16]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_be_bytes()).collect()
    }
    fn ext(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut e = kind.to_be_bytes().to_vec();
        e.extend((data.len() as u16).to_be_bytes());
        e.extend(data);
        e
    }
    fn with_u16_len(data: &[u8]) -> Vec<u8> {
        let mut v = (data.len() as u16).to_be_bytes().to_vec();
        v.extend(data);
        v
    }
    let host = b"localhost";
    let mut sni = vec![0u8]; // host_name
    sni.extend(with_u16_len(host));
    let mut exts = ext(0x0000, &with_u16_len(&sni)); // server_name
    exts.extend(ext(0x000a, &with_u16_len(&u16s(&[0x001d, 0x0017])))); // x25519, secp256r1
    exts.extend(ext(0x000b, &[1, 0])); // ec_point_formats: uncompressed
    exts.extend(ext(
        0x000d,
        &with_u16_len(&u16s(&[0x0403, 0x0804, 0x0401, 0x0807])),
    )); // signature_algorithms
    if let Some(versions) = supported_versions {
        let list = u16s(versions);
        let mut data = vec![list.len() as u8];
        data.extend(list);
        exts.extend(ext(0x002b, &data));
    }
    let mut hello = legacy_version.to_be_bytes().to_vec();
    hello.extend([0x5a; 32]); // random
    hello.push(0); // no session id
    hello.extend(with_u16_len(&u16s(&[
        0xc02b, 0xc02c, 0xcca9, 0xc02f, 0xc030, 0xcca8, // ECDHE AEAD (TLS 1.2)
        0xc009, 0xc00a, 0xc013, 0xc014, 0x002f, 0x0035, // CBC suites of TLS 1.0/1.1
    ])));
    hello.extend([1, 0]); // compression: null
    hello.extend(with_u16_len(&exts));
    let mut handshake = vec![1u8]; // client_hello
    handshake.extend(&(hello.len() as u32).to_be_bytes()[1..]);
    handshake.extend(hello);
    let mut record = vec![0x16]; // handshake
    record.extend(legacy_version.min(0x0301).to_be_bytes()); // as clients do: 1.0 on the record
    record.extend((handshake.len() as u16).to_be_bytes());
    record.extend(handshake);
    record
}

/// Sends `hello` over plain TCP and returns what the server wrote, and how long that took:
/// everything until it closed (or 5 s passed), or with `first_record_only` the first record.
fn answer_to_hello(
    port: u16,
    hello: &[u8],
    first_record_only: bool,
) -> (Vec<u8>, std::time::Duration) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let started = std::time::Instant::now();
    s.write_all(hello).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
        if first_record_only
            && out.len() >= 5
            && out.len() >= 5 + u16::from_be_bytes([out[3], out[4]]) as usize
        {
            break;
        }
    }
    (out, started.elapsed())
}

#[tokio::test]
async fn only_tls_1_2_and_1_3_are_negotiated() {
    let dir = tempfile::tempdir().unwrap();
    let ns = support::meshed_namespace_file(dir.path());
    let inj = support::Injector::start(&["--namespaces", ns.to_str().unwrap()], &[]);
    let (port, ca) = (inj.port, inj.ca_pem());
    tokio::task::spawn_blocking(move || {
        // The control: the same hand-built hello saying TLS 1.2 gets a TLS 1.2 ServerHello, so
        // what refuses the others below is their version and nothing else in the bytes.
        let (out, took) = answer_to_hello(port, &client_hello(0x0303, None), true);
        eprintln!(
            "TLS 1.2 ClientHello (hand-built): a {}-byte first record (ServerHello flight) back in {took:?}",
            out.len()
        );
        assert!(out.len() > 11, "no ServerHello for TLS 1.2: {out:02x?}");
        assert_eq!(out[0], 0x16, "a handshake record: {:02x?}", &out[..11]);
        assert_eq!(out[5], 0x02, "a ServerHello: {:02x?}", &out[..11]);
        assert_eq!(&out[9..11], &[0x03, 0x03], "server_version TLS 1.2");

        // Old clients: a TLS 1.0 or 1.1 hello, and hellos whose supported_versions list only
        // TLS 1.0/1.1: a fatal protocol_version alert (70), no ServerHello, connection closed.
        for (what, hello) in [
            ("TLS 1.0 ClientHello", client_hello(0x0301, None)),
            ("TLS 1.1 ClientHello", client_hello(0x0302, None)),
            (
                "supported_versions: TLS 1.1 only",
                client_hello(0x0302, Some(&[0x0302])),
            ),
            (
                "legacy TLS 1.2, supported_versions: TLS 1.1 and 1.0",
                client_hello(0x0303, Some(&[0x0302, 0x0301])),
            ),
        ] {
            let (out, took) = answer_to_hello(port, &hello, false);
            eprintln!("{what}: answered {out:02x?} in {took:?}, then closed");
            assert_eq!(
                out.len(),
                7,
                "{what}: one alert record, nothing else: {out:02x?}"
            );
            assert_eq!(out[0], 0x15, "{what}: an alert record: {out:02x?}");
            assert_eq!(&out[3..5], &[0, 2], "{what}: alert length: {out:02x?}");
            assert_eq!(
                &out[5..7],
                &[2, 70],
                "{what}: fatal protocol_version: {out:02x?}"
            );
            assert!(
                took < std::time::Duration::from_secs(4),
                "{what}: the connection was not closed after the alert ({took:?})"
            );
        }

        // rustls clients restricted to one version each: both work, and that version is used.
        use std::io::Write;
        for (version, name) in [
            (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
            (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
        ] {
            let mut s = support::tls_stream_with(port, &ca, &[version]);
            assert_eq!(s.conn.protocol_version(), Some(name));
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .unwrap();
            let (text, took) = support::read_until_closed(&mut s);
            eprintln!(
                "rustls {name:?} only: {:?} in {took:?}",
                text.lines().next()
            );
            assert!(text.starts_with("HTTP/1.1 200"), "{name:?}: {text}");
        }
    })
    .await
    .unwrap();
    // The refused handshakes left the server fine.
    let c = support::client(&inj.ca_pem());
    assert_eq!(
        c.get(inj.url("/healthz")).send().await.unwrap().status(),
        200
    );
}

/// One hostile annotation (2.9 MB of DEL bytes, Debug-escaped to six bytes each) must cost a
/// bounded answer, warning and Event note: the value is quoted once, 64 characters at most.
#[test]
fn a_hostile_annotation_is_echoed_bounded() {
    let a = Admission::new(
        Arc::new(Config::default()),
        Namespaces::from_yaml(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  annotations:\n    linkerd.io/inject: enabled\n",
            "t",
        )
        .unwrap(),
    )
    .with_events(true);
    let hostile = "\u{7f}".repeat(2_900_000);
    let mut largest = 0;
    // Every key the release reads (the init-image keys are read by 2.19 and older only).
    let release = Config::default().release;
    for key in proxy_injector::mesh::override_keys().filter(|k| release.reads(k)) {
        let mut p = pod(json!({ key: hostile.as_str() }));
        p["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "name": "web-1", "uid": "u1", "controller": true}]);
        let body = review_with(request(p));
        let ans = a.review(&body).unwrap();
        assert!(
            matches!(ans.outcome, Outcome::Skipped(_)),
            "{key}: {:?}",
            ans.outcome
        );
        let note = ans.event.as_ref().and_then(|e| e.note()).unwrap();
        let reason = match &ans.outcome {
            Outcome::Skipped(r) => r.to_string(),
            _ => unreachable!(),
        };
        let size = ans.body.len().max(note.note.len()).max(reason.len());
        assert!(
            size < 2_000,
            "{key}: answer {} B, note {} B, reason {} B",
            ans.body.len(),
            note.note.len(),
            reason.len()
        );
        assert!(reason.contains("(2900000 bytes)"), "{key}: {reason}");
        largest = largest.max(size);
    }
    eprintln!(
        "2.9 MB hostile annotation: largest answer / warning / Event note over every setting: {largest} bytes"
    );
}
