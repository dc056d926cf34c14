//! Micro-benchmarks of the request path (decision + patch + response serialisation) for a
//! small, a 10 KB and a 100 KB pod, each against two baselines measured in the same run:
//! - `parse-floor`: only skimming the same AdmissionReview bytes (serde IgnoredAny), the least
//!   any JSON webhook must do;
//! - `naive`: deserialising into k8s-openapi types, building the patch with `json!`, and
//!   serialising the response, the straightforward way.
//!
//! `make bench` prints each as a ratio to `parse-floor`.
//!
//! `netpol/*`: NetworkPolicy evaluation, one namespace with 200 policies and 1,000 pods:
//! compiling the policies once, and every proxy path of every pod.
//!
//! `warn/*`: `POST /warn` for one NetworkPolicy (a default-deny egress, which selects every
//! pod: the most work) in a namespace with those 200 policies and 1,000 meshed pods, of 20
//! workloads (50 replicas each) and, the worst case, of 150; each also timed 2,000 times
//! for its p99.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use k8s_openapi::api::core::v1::Pod;
use proxy_injector::admission::Admission;
use proxy_injector::config::Config;
use proxy_injector::decision::{self, Decision, NamespaceInfo, RequestFacts};
use proxy_injector::namespaces::Namespaces;
use proxy_injector::netpol::proxy::ProxyNeeds;
use proxy_injector::netpol::review::{MeshedPod, PartialObjectMeta};
use proxy_injector::netpol::{Labels, NamedPort, PodInfo, PodNamespace, PolicySet, Protocol};
use proxy_injector::patch::Fragments;
use proxy_injector::view::PodView;
use proxy_injector_tools::corpus::{self, Size};
use serde::Deserialize;
use serde_json::json;

#[derive(Deserialize)]
struct NaiveRequest {
    uid: String,
    object: Pod,
}

#[derive(Deserialize)]
struct NaiveReview {
    request: NaiveRequest,
}

/// The straightforward implementation, for comparison only.
fn naive(body: &[u8], config: &Config) -> Vec<u8> {
    use base64::Engine;
    let review: NaiveReview = serde_json::from_slice(body).unwrap();
    let pod = review.request.object;
    let text = serde_json::to_string(&pod).unwrap();
    let view = PodView::parse(&text).unwrap();
    let Decision::Inject(plan) = decision::decide(
        &RequestFacts::POD_CREATE,
        &view,
        NamespaceInfo::None,
        config,
    ) else {
        panic!("the corpus pod is injected")
    };
    use proxy_injector::containers::{self, POD_ENV};
    let pod_env = POD_ENV.map(|n| containers::env(n, plan.pod.inbound_ports.as_str()));
    let proxy = containers::proxy_container(&plan.proxy, config, pod_env);
    let init = containers::init_container(&plan.proxy, config);
    let volumes = containers::volumes(config);
    let mut ops = vec![
        json!({"op": "add", "path": "/spec/initContainers", "value": [init]}),
        json!({"op": "add", "path": "/spec/containers/0", "value": proxy}),
    ];
    for v in volumes {
        ops.push(json!({"op": "add", "path": "/spec/volumes/-", "value": v}));
    }
    ops.push(json!({"op": "add", "path": "/metadata/annotations/linkerd.io~1proxy-version", "value": "x"}));
    let patch = serde_json::to_vec(&ops).unwrap();
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "response": {"uid": review.request.uid, "allowed": true, "patchType": "JSONPatch",
                     "patch": base64::engine::general_purpose::STANDARD.encode(patch)}
    }))
    .unwrap()
}

fn benches(c: &mut Criterion) {
    let config = Arc::new(Config::default());
    let admission = Admission::new(config.clone(), Namespaces::empty());
    for size in Size::ALL {
        let body = corpus::injected_review_bytes(size);
        let mut g = c.benchmark_group(format!("review-{}", size.name()));
        g.throughput(criterion::Throughput::Bytes(body.len() as u64));
        g.bench_function("parse-floor", |b| {
            b.iter(|| serde_json::from_slice::<serde::de::IgnoredAny>(black_box(&body)).unwrap())
        });
        // The SIMD parsers evaluated against serde_json on the same bodies (BENCHMARKS.md,
        // "The JSON scan"): through serde as the views read, and sonic-rs's own skip.
        g.bench_function("parse-floor-sonic", |b| {
            b.iter(|| sonic_rs::from_slice::<serde::de::IgnoredAny>(black_box(&body)).unwrap())
        });
        g.bench_function("parse-floor-simd-json", |b| {
            b.iter(|| {
                let mut copy = black_box(&body).clone();
                simd_json::serde::from_slice::<serde::de::IgnoredAny>(&mut copy).unwrap()
            })
        });
        g.bench_function("skip-sonic-lazy", |b| {
            b.iter(|| {
                sonic_rs::from_slice::<sonic_rs::LazyValue<'_>>(black_box(&body))
                    .unwrap()
                    .as_raw_str()
                    .len()
            })
        });
        g.bench_function("injector", |b| {
            b.iter(|| admission.review(black_box(&body)).unwrap().body)
        });
        g.bench_function("naive", |b| b.iter(|| naive(black_box(&body), &config)));
        g.finish();
    }
    // The 10 KB review as two releases make it (Linkerd 2.18's classic sidecar with the
    // separate proxy-init image, and the newest's native sidecar), in the same run.
    let body = corpus::injected_review_bytes(Size::Medium);
    let mut g = c.benchmark_group("release-10KB");
    for name in ["edge-25.4.4", "edge-26.8.3"] {
        let release = proxy_injector::release::Release::parse(name).unwrap();
        let a = Admission::new(Arc::new(Config::for_release(&release)), Namespaces::empty());
        let answer = a.review(&body).unwrap();
        assert!(
            matches!(
                answer.outcome,
                proxy_injector::admission::Outcome::Injected { .. }
            ),
            "{name}: the 10 KB pod is injected"
        );
        eprintln!("{name}: answer {} bytes", answer.body.len());
        g.bench_function(name, |b| {
            b.iter(|| a.review(black_box(&body)).unwrap().body)
        });
    }
    g.finish();
    // Decision + patch alone (the body already parsed), the figure the target is set for.
    let pod_json = corpus::pod(Size::Medium, "web", Some("enabled")).to_string();
    let view = PodView::parse(&pod_json).unwrap();
    let Decision::Inject(plan) = decision::decide(
        &RequestFacts::POD_CREATE,
        &view,
        NamespaceInfo::None,
        &config,
    ) else {
        panic!()
    };
    let frags = Fragments::new(&plan.proxy, &config);
    c.bench_function("decide+patch-10KB", |b| {
        b.iter(|| {
            let d = decision::decide(
                &RequestFacts::POD_CREATE,
                black_box(&view),
                NamespaceInfo::None,
                &config,
            );
            let Decision::Inject(plan) = d else { panic!() };
            let mut out = Vec::with_capacity(8192);
            proxy_injector::patch::write_patch(&view, &plan, &frags, &mut out);
            out
        })
    });
}

/// 200 policies of namespace `bench` in ten shapes: default deny, ingress from selected
/// namespaces and tiers on numbered, named and ranged ports, egress to DNS and to an ipBlock
/// with an except, the control plane by namespace name, and selectors with every operator.
fn netpol_policies() -> Vec<k8s_openapi::api::networking::v1::NetworkPolicy> {
    (0..200)
        .map(|i| {
            let app = format!("app-{}", i % 50);
            let spec = match i % 10 {
                0 => json!({"podSelector": {"matchLabels": {"app": app}},
                            "policyTypes": ["Ingress", "Egress"]}),
                1..=3 => json!({"podSelector": {"matchLabels": {"app": app}},
                    "ingress": [{"from": [
                        {"namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name",
                            "operator": "In", "values": ["linkerd-viz", format!("ns-{i}")]}]}},
                        {"podSelector": {"matchExpressions": [{"key": "tier", "operator": "In",
                            "values": ["fe", "be"]}]}}],
                        "ports": [{"port": 8080}, {"port": "http"}, {"port": 9000, "endPort": 9100}]}]}),
                4..=6 => json!({"podSelector": {"matchExpressions": [{"key": "app", "operator": "In",
                        "values": [app, format!("app-{}", (i + 1) % 50)]}]},
                    "policyTypes": ["Egress"],
                    "egress": [
                        {"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                         "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53}]},
                        {"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
                         "ports": [{"port": 443}]}]}),
                _ => json!({"podSelector": {"matchLabels": {"tier": if i % 2 == 0 { "fe" } else { "be" }},
                        "matchExpressions": [{"key": "version", "operator": "NotIn", "values": ["v0"]},
                                             {"key": "canary", "operator": "DoesNotExist"}]},
                    "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "payments"}},
                                           "podSelector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]}}]}],
                    "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "linkerd"}}}],
                                "ports": [{"port": 8080}, {"port": 8086}, {"port": 8090}]}]}),
            };
            serde_json::from_value(json!({
                "metadata": {"name": format!("policy-{i}"), "namespace": "bench"},
                "spec": spec,
            }))
            .unwrap()
        })
        .collect()
}

fn netpol_pods() -> Vec<PodInfo> {
    let ns = PodNamespace::new(
        "bench",
        Labels::exactly([("team".into(), "shop".into())].into()),
    );
    (0..1000)
        .map(|j| {
            let labels = [
                ("app", format!("app-{}", j % 50)),
                ("tier", if j % 3 == 0 { "fe" } else { "be" }.to_string()),
                ("version", format!("v{}", j % 3)),
                ("pod-template-hash", format!("{:x}", j * 7919)),
            ];
            let labels = labels
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            PodInfo::new(ns.clone(), labels)
                .with_ip(format!("10.2.{}.{}", j / 250, j % 250).parse().unwrap())
                .with_ports(vec![NamedPort {
                    name: "http".into(),
                    port: 8080,
                    protocol: Protocol::Tcp,
                }])
        })
        .collect()
}

fn netpol(c: &mut Criterion) {
    let policies = netpol_policies();
    let pods = netpol_pods();
    let paths = ProxyNeeds::default().paths();
    let set = PolicySet::new(&policies);
    assert!(set.problems().is_empty(), "{:?}", set.problems());
    // What the timed loop answers: a mix of the three verdicts, not one short cut.
    let mut mix = std::collections::BTreeMap::new();
    for pod in &pods {
        for v in paths.evaluate(&set, pod) {
            let kind = v.answer.verdict.to_string();
            let kind = kind.split(':').next().unwrap_or_default().to_string();
            *mix.entry(kind).or_insert(0) += 1;
        }
    }
    eprintln!(
        "netpol: {} policies, {} pods, verdicts {mix:?}",
        set.len(),
        pods.len()
    );
    let mut g = c.benchmark_group("netpol");
    g.bench_function("compile-200-policies", |b| {
        b.iter(|| PolicySet::new(black_box(&policies)))
    });
    g.bench_function("proxy-paths-1000-pods", |b| {
        b.iter(|| {
            let mut verdicts = 0;
            for pod in black_box(&pods) {
                verdicts += paths.evaluate(&set, pod).len();
            }
            verdicts
        })
    });
    g.finish();
}

/// The cluster `/warn` sees: the bench's policies and meshed pods, all in `bench`.
struct BenchCluster {
    policies: Vec<Arc<k8s_openapi::api::networking::v1::NetworkPolicy>>,
    pods: Vec<MeshedPod>,
}

impl proxy_injector::netpol::review::NetworkLookup for BenchCluster {
    fn policies(&self, _: &str) -> Vec<Arc<k8s_openapi::api::networking::v1::NetworkPolicy>> {
        self.policies.clone()
    }
    fn meshed_pods(&self, _: &str) -> Vec<MeshedPod> {
        self.pods.clone()
    }
}

/// 1,000 meshed pods of `workloads` workloads (label sets), as the pod reflector keeps them
/// (metadata only, without per-pod labels such as pod-template-hash).
fn meshed_pods(workloads: usize) -> Vec<MeshedPod> {
    (0..1000)
        .map(|j| {
            let w = j % workloads;
            Arc::new(PartialObjectMeta {
                metadata: serde_json::from_value(json!({
                    "name": format!("pod-{j}"), "namespace": "bench", "labels": {
                        "app": format!("app-{}", w % 50),
                        "tier": if w.is_multiple_of(3) { "fe" } else { "be" },
                        "version": format!("v{}", w / 50),
                        "linkerd.io/control-plane-ns": "linkerd"}
                }))
                .unwrap(),
                ..Default::default()
            })
        })
        .collect()
}

fn warn_netpol(c: &mut Criterion) {
    let ns = Namespaces::from_yaml(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: bench\n  labels: {team: shop}\n  annotations:\n    linkerd.io/inject: enabled\n",
        "bench",
    )
    .unwrap();
    let body = serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u", "operation": "CREATE", "namespace": "bench",
            "kind": {"group": "networking.k8s.io", "version": "v1", "kind": "NetworkPolicy"},
            "resource": {"group": "networking.k8s.io", "version": "v1", "resource": "networkpolicies"},
            "object": {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                "metadata": {"name": "default-deny-egress", "namespace": "bench"},
                "spec": {"podSelector": {}, "policyTypes": ["Egress"]}}}
    }))
    .unwrap();
    let policies: Vec<_> = netpol_policies().into_iter().map(Arc::new).collect();
    let mut g = c.benchmark_group("warn");
    for workloads in [20, 150] {
        let admission =
            Admission::new(Arc::new(Config::default()), ns.clone()).with_network(BenchCluster {
                policies: policies.clone(),
                pods: meshed_pods(workloads),
            });
        let answer = admission.warn(&body).unwrap();
        assert_eq!(answer.warnings.len(), 5, "{:?}", answer.warnings);
        let mut took: Vec<std::time::Duration> = (0..2000)
            .map(|_| {
                let t = std::time::Instant::now();
                black_box(admission.warn(black_box(&body)).unwrap());
                t.elapsed()
            })
            .collect();
        took.sort();
        eprintln!(
            "warn/networkpolicy, 200 policies, 1,000 meshed pods of {workloads} workloads: p50 {:?}, p99 {:?} over 2,000 reviews ({} warnings)",
            took[1000],
            took[1980],
            answer.warnings.len()
        );
        g.bench_function(format!("networkpolicy-{workloads}-workloads"), |b| {
            b.iter(|| admission.warn(black_box(&body)).unwrap())
        });
    }
    g.finish();
}

criterion_group!(micro, benches, netpol, warn_netpol);
criterion_main!(micro);
