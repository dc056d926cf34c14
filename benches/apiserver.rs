//! Benchmarks through the real kube-apiserver (`make bench-apiserver`, not a test):
//! 1. RSS of `serve` whose reflector caches 10,000 namespaces, against the same binary with an
//!    empty namespace cache, measured in the same run;
//! 2. the latency the webhook adds to pod creation: N pods created in a namespace the webhook
//!    serves (injected) and in one it does not select (no webhook call), interleaved;
//! 3. the unthrottled burst: a Deployment of 1,000 and of 3,000 replicas in an injected
//!    namespace, in one the webhook does not select, and there again already injected
//!    (`inject --manual`: the same pods without the webhook call), with the controller-manager's client
//!    limits raised (so its default 20 requests/s does not hide the webhook path): the time
//!    until every pod exists, webhook calls per pod (the API server's own metrics), the API
//!    server's CPU per pod, the injector's CPU and its p99.
//!
//! 4. the injector's caches for the NetworkPolicy warnings: RSS per meshed pod (after the
//!    bursts) and per NetworkPolicy (`policies`: 2,000 created).
//! 5. its cache of ResourceQuotas and LimitRanges (`limits`: 2,000 of each created).
//!
//! `BENCH_PARTS` (default `rss,latency,burst,policies,limits`) picks the parts; `BENCH_BURSTS`
//! (default `1000,3000`) the burst sizes.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::api::PostParams;
use proxy_injector::check::network::meshed;
use serde_json::json;
use support::Injector;
use support::cluster::{TEST_LABEL, control_plane_with, create_namespace, register_webhook};

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
    let parts =
        std::env::var("BENCH_PARTS").unwrap_or_else(|_| "rss,latency,burst,policies,limits".into());
    let count: usize = if parts.contains("rss") {
        std::env::var("BENCH_NAMESPACES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10_000)
    } else {
        0
    };
    let pods_n: usize = std::env::var("BENCH_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let cp = control_plane_with(&[("CP_CM_QPS", "2000"), ("CP_CM_BURST", "4000")]);
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
    // Logs at info, as in a cluster (the harness also reads the bound port from serve's
    // "listening" line, which is info).
    let watched = Injector::start(
        &[],
        &[("KUBECONFIG", kubeconfig.as_str()), ("RUST_LOG", "info")],
    );
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("none.yaml");
    std::fs::write(&empty, "").unwrap();
    let baseline = Injector::start(
        &["--namespaces", empty.to_str().unwrap()],
        &[("RUST_LOG", "info")],
    );
    watched
        .wait_ready(Duration::from_secs(120), "injector watching 10k namespaces")
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_watched = rss_mib(watched.child.as_ref().unwrap().id());
    let rss_base = rss_mib(baseline.child.as_ref().unwrap().id());
    if parts.contains("rss") {
        println!(
            "RSS: {rss_watched:.1} MiB with {} namespaces in the reflector cache; {rss_base:.1} MiB with an empty cache \
         (same binary, same run); the cache costs {:.1} MiB ({:.2} KiB per namespace)",
            created + 4,
            rss_watched - rss_base,
            (rss_watched - rss_base) * 1024.0 / created.max(1) as f64
        );
    }
    drop(baseline);

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
                .is_ok_and(|p| meshed(&p))
        },
    )
    .await;
    let pid = watched.child.as_ref().unwrap().id();
    let rss_before = rss_mib(pid);
    if parts.contains("burst") {
        burst(&client, &watched).await;
        // The bursts' pods are meshed (the injected and the pre-injected ones): the injector's
        // pod reflector (NetworkPolicy warnings) holds them, cut down to what the review reads.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let meshed: usize = 2 * std::env::var("BENCH_BURSTS")
            .unwrap_or_else(|_| "1000,3000".into())
            .split(',')
            .filter_map(|v| v.trim().parse::<usize>().ok())
            .sum::<usize>();
        let after = rss_mib(pid);
        println!(
            "RSS of the injector: {rss_before:.1} MiB before the bursts, {after:.1} MiB with their {meshed} meshed pods \
             in its pod cache ({:.2} KiB per meshed pod, allocator included)",
            (after - rss_before) * 1024.0 / meshed.max(1) as f64
        );
    }
    if parts.contains("policies") {
        policies_cache(&client, pid).await;
    }
    if parts.contains("limits") {
        limits_cache(&client, pid).await;
    }
    if !parts.contains("latency") {
        return;
    }
    // 2. Added latency of pod creation through the API server.
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
        assert!(meshed(&p));
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

/// User + system CPU seconds of process `pid` so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) closed by ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat; here 11 and 12 (state is field 3).
    (ticks(11) + ticks(12)) / 100.0
}

/// The API server's webhook admission calls so far (all mutating webhooks).
async fn webhook_calls(client: &kube::Client) -> f64 {
    let req = axum::http::Request::get("/metrics")
        .body(Vec::new())
        .unwrap();
    let text = client.request_text(req).await.unwrap_or_default();
    text.lines()
        .filter(|l| {
            l.starts_with("apiserver_admission_webhook_admission_duration_seconds_count{")
                && l.contains(r#"type="admit""#)
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// The injector's review-duration histogram for `/inject`: (upper bound, cumulative count).
fn review_buckets(text: &str) -> Vec<(f64, f64)> {
    text.lines()
        .filter(|l| {
            l.starts_with("proxy_injector_review_duration_seconds_bucket{")
                && l.contains(r#"handler="inject""#)
        })
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, l.rsplit_once(' ')?.1.parse().ok()?))
        })
        .collect()
}

/// The bucket bound under which 99% of the reviews between two scrapes fell.
fn p99_between(before: &[(f64, f64)], after: &[(f64, f64)]) -> f64 {
    let delta: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, n)| {
            let was = before.iter().find(|(b, _)| b == le).map_or(0.0, |b| b.1);
            (*le, n - was)
        })
        .collect();
    let total = delta.last().map_or(0.0, |d| d.1);
    delta
        .iter()
        .find(|(_, n)| *n >= 0.99 * total)
        .map_or(f64::NAN, |d| d.0)
}

struct Burst {
    seconds: f64,
    calls_per_pod: f64,
    apiserver_cpu_ms_per_pod: f64,
    injector_cpu_s: f64,
    injector_p99_ms: f64,
}

/// The burst's Deployment: `replicas` of one nginx container.
fn burst_deployment(replicas: usize) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": format!("burst-{replicas}")},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "burst"}},
            "template": {
                "metadata": {"labels": {"app": "burst"}},
                "spec": {"containers": [{"name": "app", "image": "nginx:1.27",
                    "ports": [{"containerPort": 8080}]}]}
            }
        }
    })
}

/// The same Deployment already injected (`inject --manual`, the injector's own code and
/// config): created where the webhook is not called, its pods are as large as the injected
/// ones, so the burst's time against it is what calling the webhook costs the cluster.
fn pre_injected(replicas: usize) -> serde_json::Value {
    use std::io::Write;
    let mut child = std::process::Command::new(support::bin())
        .args(["inject", "--manual", "-f", "-", "-o", "json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("proxy-injector inject");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(burst_deployment(replicas).to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "inject --manual failed");
    let injected: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inject's JSON");
    assert!(
        injected.to_string().contains("linkerd-proxy"),
        "inject --manual added the proxy"
    );
    injected
}

/// One Deployment (`deploy`, of `replicas`) in `ns`: the time until its ReplicaSet has made
/// every pod.
async fn one_burst(
    client: &kube::Client,
    ns: &str,
    deploy: &serde_json::Value,
    replicas: usize,
    injector: &Injector,
) -> Burst {
    use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
    let apiserver = std::fs::read_to_string(
        support::repo().join("target/e2e-controlplane/controlplane/kube-apiserver.pid"),
    )
    .ok()
    .and_then(|p| p.trim().parse::<u32>().ok())
    .expect("the local kube-apiserver's pid file");
    let inj_pid = injector.child.as_ref().unwrap().id();
    let deploy: Deployment = serde_json::from_value(deploy.clone()).unwrap();
    let calls0 = webhook_calls(client).await;
    let buckets0 = review_buckets(&injector.metrics_text().await);
    let (api_cpu0, inj_cpu0) = (cpu_seconds(apiserver), cpu_seconds(inj_pid));
    let t0 = Instant::now();
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &deploy)
        .await
        .unwrap();
    let rs: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
    let made = loop {
        let n: i32 = rs
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .iter()
            .filter_map(|r| r.status.as_ref().map(|s| s.replicas))
            .sum();
        if n as usize >= replicas {
            break t0.elapsed();
        }
        if t0.elapsed() > Duration::from_secs(600) {
            panic!("{ns}: {n} of {replicas} pods after 600 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (api_cpu, inj_cpu) = (
        cpu_seconds(apiserver) - api_cpu0,
        cpu_seconds(inj_pid) - inj_cpu0,
    );
    let calls = webhook_calls(client).await - calls0;
    let buckets = review_buckets(&injector.metrics_text().await);
    Burst {
        seconds: made.as_secs_f64(),
        calls_per_pod: calls / replicas as f64,
        apiserver_cpu_ms_per_pod: api_cpu * 1e3 / replicas as f64,
        injector_cpu_s: inj_cpu,
        injector_p99_ms: p99_between(&buckets0, &buckets) * 1e3,
    }
}

/// 3. The unthrottled burst, injected vs not selected, for each size in `BENCH_BURSTS`.
async fn burst(client: &kube::Client, injector: &Injector) {
    let sizes: Vec<usize> = std::env::var("BENCH_BURSTS")
        .unwrap_or_else(|_| "1000,3000".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    println!(
        "unthrottled burst (controller-manager --kube-api-qps 2000 --kube-api-burst 4000), one injector replica:"
    );
    println!(
        "| replicas | namespace | all pods made s | webhook calls per pod | API server CPU ms per pod | injector CPU s | injector p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (run, n) in sizes.iter().enumerate() {
        let injected = format!("bench-burst-{run}-injected");
        let called = format!("bench-burst-{run}-called");
        let plain = format!("bench-burst-{run}-plain");
        create_namespace(
            client,
            &injected,
            "bench",
            &[("linkerd.io/inject", "enabled")],
        )
        .await;
        // Selected but not annotated: the webhook is called and answers without a patch.
        create_namespace(client, &called, "bench", &[]).await;
        // Labelled for another test: the bench webhook does not select it.
        create_namespace(client, &plain, "bench-unselected", &[]).await;
        // Not selected either: the Deployment created already injected.
        let pre = format!("bench-burst-{run}-pre");
        create_namespace(client, &pre, "bench-unselected", &[]).await;
        let (plain_deploy, pre_deploy) = (burst_deployment(*n), pre_injected(*n));
        let mut results = Vec::new();
        for (label, ns, deploy) in [
            ("not selected", &plain, &plain_deploy),
            ("pre-injected, not selected", &pre, &pre_deploy),
            ("called, no patch", &called, &plain_deploy),
            ("injected", &injected, &plain_deploy),
        ] {
            let b = one_burst(client, ns, deploy, *n, injector).await;
            println!(
                "| {n} | {label} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
                b.seconds,
                b.calls_per_pod,
                b.apiserver_cpu_ms_per_pod,
                b.injector_cpu_s,
                if !label.ends_with("not selected") {
                    format!("{:.2}", b.injector_p99_ms)
                } else {
                    "-".into()
                }
            );
            results.push(b);
        }
        for (what, a, b) in [
            ("injected / pre-injected", 3, 1),
            ("injected / not selected", 3, 0),
            ("pre-injected / not selected", 1, 0),
            ("called, no patch / not selected", 2, 0),
        ] {
            println!(
                "| {n} | {what} | {:.2}× | | {:.2}× | | |",
                results[a].seconds / results[b].seconds,
                results[a].apiserver_cpu_ms_per_pod / results[b].apiserver_cpu_ms_per_pod
            );
        }
    }
}

/// RSS of the injector before and after `count` objects are made by `create(i, client,
/// namespace)`, 16 at a time, in `namespaces` namespaces `{prefix}-{k}` (labelled `prefix`, so
/// no test's webhook selects them): what its cache keeps per object (`per`).
async fn cache_growth<F, Fut>(
    client: &kube::Client,
    pid: u32,
    (prefix, namespaces): (&str, usize),
    count: usize,
    (what, per): (&str, &str),
    create: F,
) where
    F: Fn(usize, kube::Client, String) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for k in 0..namespaces {
        create_namespace(client, &format!("{prefix}-{k}"), prefix, &[]).await;
    }
    let before = rss_mib(pid);
    let t0 = Instant::now();
    let made: Vec<bool> = futures::stream::iter(0..count)
        .map(|i| create(i, client.clone(), format!("{prefix}-{}", i % namespaces)))
        .buffer_unordered(16)
        .collect()
        .await;
    let created = made.iter().filter(|ok| **ok).count();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_mib(pid);
    println!(
        "RSS of the injector: {before:.1} MiB before, {after:.1} MiB with {created} more {what} in its cache \
         (created in {:.1}s; {:.2} KiB per {per}, allocator included)",
        t0.elapsed().as_secs_f64(),
        (after - before) * 1024.0 / created.max(1) as f64
    );
}

/// The injector's NetworkPolicy cache: RSS before and after `BENCH_POLICIES` (default 2,000)
/// NetworkPolicies are created (10 namespaces, 200 each, typical shapes).
async fn policies_cache(client: &kube::Client, pid: u32) {
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    let n: usize = std::env::var("BENCH_POLICIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let create = |i: usize, client: kube::Client, ns: String| async move {
        let np: NetworkPolicy = serde_json::from_value(json!({
            "metadata": {"name": format!("policy-{i}"),
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "x".repeat(600)}},
            "spec": {"podSelector": {"matchLabels": {"app": format!("app-{}", i % 50)}},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "shop"}},
                    "podSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["fe", "be"]}]}}],
                    "ports": [{"port": 8080}, {"port": "http"}]}],
                "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
                    "ports": [{"port": 443}]}]}
        }))
        .unwrap();
        Api::<NetworkPolicy>::namespaced(client, &ns)
            .create(&PostParams::default(), &np)
            .await
            .is_ok()
    };
    let what = ("NetworkPolicies", "policy");
    cache_growth(client, pid, ("bench-policies", 10), n, what, create).await;
}

/// The injector's cache of ResourceQuotas and LimitRanges: RSS before and after
/// `BENCH_LIMITS` (default 2,000) of each are created (20 namespaces, typical shapes, each with
/// kubectl's last-applied annotation, which the cache does not keep).
async fn limits_cache(client: &kube::Client, pid: u32) {
    use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota};
    let n: usize = std::env::var("BENCH_LIMITS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let create = |i: usize, client: kube::Client, ns: String| async move {
        let meta = json!({"name": format!("obj-{i}"),
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "x".repeat(400)}});
        if i.is_multiple_of(2) {
            let q: ResourceQuota = serde_json::from_value(json!({"metadata": meta,
                "spec": {"hard": {"requests.cpu": "10", "requests.memory": "20Gi",
                    "limits.cpu": "20", "limits.memory": "40Gi", "pods": "100",
                    "services": "20", "persistentvolumeclaims": "10"}}}))
            .unwrap();
            Api::<ResourceQuota>::namespaced(client, &ns)
                .create(&PostParams::default(), &q)
                .await
                .is_ok()
        } else {
            let l: LimitRange = serde_json::from_value(json!({"metadata": meta,
                "spec": {"limits": [{"type": "Container",
                    "default": {"cpu": "500m", "memory": "256Mi"},
                    "defaultRequest": {"cpu": "100m", "memory": "64Mi"},
                    "max": {"cpu": "2", "memory": "2Gi"}, "min": {"cpu": "10m", "memory": "16Mi"}},
                    {"type": "Pod", "max": {"cpu": "4", "memory": "4Gi"}}]}}))
            .unwrap();
            Api::<LimitRange>::namespaced(client, &ns)
                .create(&PostParams::default(), &l)
                .await
                .is_ok()
        }
    };
    let what = ("ResourceQuotas and LimitRanges (half each)", "object");
    cache_growth(client, pid, ("bench-limits", 20), 2 * n, what, create).await;
}
