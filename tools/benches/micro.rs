//! Micro-benchmarks of the request path (decision + patch + response serialisation) for a
//! small, a 10 KB and a 100 KB pod, each against two baselines measured in the same run:
//! - `parse-floor`: only skimming the same AdmissionReview bytes (serde IgnoredAny), the least
//!   any JSON webhook must do;
//! - `naive`: deserialising into k8s-openapi types, building the patch with `json!`, and
//!   serialising the response, the straightforward way.
//!
//! `make bench` prints each as a ratio to `parse-floor`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use k8s_openapi::api::core::v1::Pod;
use proxy_injector::admission::Admission;
use proxy_injector::config::Config;
use proxy_injector::decision::{self, Decision, NamespaceInfo, RequestFacts};
use proxy_injector::namespaces::Namespaces;
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
        g.bench_function("injector", |b| {
            b.iter(|| admission.review(black_box(&body)).unwrap().body)
        });
        g.bench_function("naive", |b| b.iter(|| naive(black_box(&body), &config)));
        g.finish();
    }
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

criterion_group!(micro, benches);
criterion_main!(micro);
