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
        ("pod without containers", review_with(request(json!({"metadata": {"name": "p"}, "spec": {}}))), Injected),
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
    // TLS 1.0/1.1 clients are refused (openssl, when it can still offer them).
    for flag in ["-tls1", "-tls1_1"] {
        let out = std::process::Command::new("openssl")
            .args([
                "s_client",
                flag,
                "-connect",
                &format!("127.0.0.1:{}", inj.port),
            ])
            .stdin(std::process::Stdio::null())
            .output();
        if let Ok(out) = out {
            let text = String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr);
            let negotiated = text.contains("Cipher is ") && !text.contains("Cipher is (NONE)");
            assert!(!negotiated, "{flag} was accepted:\n{text}");
        }
    }
    assert_eq!(
        c.get(inj.url("/healthz")).send().await.unwrap().status(),
        200
    );
}
