//! Benchmarks through the real kube-apiserver (`make bench-apiserver`, not a test):
//! 1. RSS of `serve` whose reflector caches 10,000 namespaces, against the same binary with an
//!    empty namespace cache, measured in the same run;
//! 2. the latency the webhook adds to pod creation: N pods created in a namespace the webhook
//!    serves (injected) and in one it does not select (no webhook call), interleaved.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use support::Injector;
use support::cluster::{TEST_LABEL, control_plane, create_namespace, register_webhook};

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

#[tokio::main]
async fn main() {
    let count: usize = std::env::var("BENCH_NAMESPACES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let pods_n: usize = std::env::var("BENCH_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let cp = control_plane();
    let client = cp.client().await;

    // 1. Namespaces in the real control plane, then RSS with the reflector holding them.
    let api: Api<Namespace> = Api::all(client.clone());
    // The latency part's namespaces first: the controller-manager makes their default
    // ServiceAccounts before it gets busy with the 10,000 below.
    create_namespace(
        &client,
        "bench-injected",
        "bench",
        &[("linkerd.io/inject", "enabled")],
    )
    .await;
    // Selected by the webhook but not annotated: the call is made, no patch comes back.
    create_namespace(&client, "bench-called", "bench", &[]).await;
    let plain: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "bench-plain"}})).unwrap();
    api.create(&PostParams::default(), &plain).await.unwrap();
    let sa: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(client.clone(), "bench-plain");
    while sa.get_opt("default").await.ok().flatten().is_none() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let t0 = Instant::now();
    println!("creating {count} namespaces in the local control plane...");
    let results: Vec<bool> = futures::stream::iter(0..count)
        .map(|i| {
            let api = api.clone();
            async move {
                let mut ann = serde_json::Map::new();
                if i % 3 == 0 {
                    ann.insert("linkerd.io/inject".into(), json!("enabled"));
                }
                if i % 7 == 0 {
                    ann.insert("config.linkerd.io/proxy-cpu-request".into(), json!("100m"));
                }
                let ns: Namespace = serde_json::from_value(json!({
                    "metadata": {"name": format!("bench-ns-{i:05}"), "labels": {"team": format!("t{}", i % 50)}, "annotations": ann}
                }))
                .unwrap();
                let ok = api.create(&PostParams::default(), &ns).await.is_ok();
                if (i + 1) % 2000 == 0 {
                    println!("  ... {} namespaces ({:.0}s)", i + 1, t0.elapsed().as_secs_f64());
                }
                ok
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let created = results.iter().filter(|ok| **ok).count();
    println!(
        "{created} namespaces created in {:.1}s",
        t0.elapsed().as_secs_f64()
    );

    let kubeconfig = cp.kubeconfig.to_str().unwrap().to_owned();
    let watched = Injector::start(
        &[],
        &[("KUBECONFIG", kubeconfig.as_str()), ("RUST_LOG", "warn")],
    );
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("none.yaml");
    std::fs::write(&empty, "").unwrap();
    let baseline = Injector::start(
        &["--namespaces", empty.to_str().unwrap()],
        &[("RUST_LOG", "warn")],
    );
    watched
        .wait_ready(Duration::from_secs(120), "injector watching 10k namespaces")
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_watched = rss_mib(watched.child.as_ref().unwrap().id());
    let rss_base = rss_mib(baseline.child.as_ref().unwrap().id());
    println!(
        "RSS: {rss_watched:.1} MiB with {} namespaces in the reflector cache; {rss_base:.1} MiB with an empty cache \
         (same binary, same run); the cache costs {:.1} MiB ({:.2} KiB per namespace)",
        created + 4,
        rss_watched - rss_base,
        (rss_watched - rss_base) * 1024.0 / created.max(1) as f64
    );
    drop(baseline);

    // 2. Added latency of pod creation through the API server.
    let _wh = register_webhook(&client, "bench", watched.port, &watched.ca_pem(), "Fail").await;
    let _ = TEST_LABEL;
    let injected: Api<Pod> = Api::namespaced(client.clone(), "bench-injected");
    let plain: Api<Pod> = Api::namespaced(client.clone(), "bench-plain");
    let called: Api<Pod> = Api::namespaced(client.clone(), "bench-called");
    let pod = |name: String| -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.27", "ports": [{"containerPort": 8080}]}]}
        }))
        .unwrap()
    };
    // The registration reaches the API server's admission chain through an informer: wait
    // until a dry-run pod comes back injected.
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    support::wait_until_async(
        "the API server to call the bench webhook",
        Duration::from_secs(30),
        async || {
            injected
                .create(&dry, &pod("probe".into()))
                .await
                .is_ok_and(|p| {
                    p.spec
                        .is_some_and(|s| s.containers[0].name == "linkerd-proxy")
                })
        },
    )
    .await;
    // Warm-up: connections from the API server to the webhook, caches.
    for i in 0..20 {
        let _ = injected
            .create(&PostParams::default(), &pod(format!("warm-{i}")))
            .await;
        let _ = plain
            .create(&PostParams::default(), &pod(format!("warm-{i}")))
            .await;
    }
    let (mut with, mut without, mut nopatch) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..pods_n {
        let t = Instant::now();
        let p = injected
            .create(&PostParams::default(), &pod(format!("p-{i}")))
            .await
            .unwrap();
        with.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(p.spec.unwrap().containers[0].name, "linkerd-proxy");
        let t = Instant::now();
        plain
            .create(&PostParams::default(), &pod(format!("p-{i}")))
            .await
            .unwrap();
        without.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        called
            .create(&PostParams::default(), &pod(format!("p-{i}")))
            .await
            .unwrap();
        nopatch.push(t.elapsed().as_secs_f64() * 1e3);
    }
    nopatch.sort_by(f64::total_cmp);
    with.sort_by(f64::total_cmp);
    without.sort_by(f64::total_cmp);
    println!("pod creation through kube-apiserver, {pods_n} pods each, interleaved:");
    println!("| namespace | p50 ms | p99 ms |");
    println!("|-----------|--------|--------|");
    println!(
        "| plain (webhook not called) | {:.2} | {:.2} |",
        pct(&without, 0.5),
        pct(&without, 0.99)
    );
    println!(
        "| selected, not annotated (webhook called, no patch) | {:.2} | {:.2} |",
        pct(&nopatch, 0.5),
        pct(&nopatch, 0.99)
    );
    println!(
        "| injected (webhook called, patch applied) | {:.2} | {:.2} |",
        pct(&with, 0.5),
        pct(&with, 0.99)
    );
    println!(
        "added by the webhook: p50 {:+.2} ms, p99 {:+.2} ms",
        pct(&with, 0.5) - pct(&without, 0.5),
        pct(&with, 0.99) - pct(&without, 0.99)
    );
}
