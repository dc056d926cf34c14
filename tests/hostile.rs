//! Hostile pods against a running `serve`, with what each costs: the answer, the log line and
//! the process's peak memory (VmHWM), measured and printed. The bounds asserted are well under
//! the manifests' 128 MiB memory limit (RELIABILITY.md, "Memory under hostile input").

#[path = "support/mod.rs"]
mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Injector, client, meshed_namespace_file, pod_review};

/// Bytes of a hostile value: a pod near the API server's 3 MiB request limit.
const HOSTILE: usize = 2_900_000;

/// A running `serve`, warmed up by one ordinary review: the server, its pid, a client, and
/// its peak RSS (KiB) before the test's own requests. The temporary dir lives as long as it.
struct Warm {
    inj: Injector,
    pid: u32,
    c: reqwest::Client,
    before: u64,
    _dir: tempfile::TempDir,
}

impl Warm {
    async fn start() -> Warm {
        Self::start_with(&[]).await
    }

    /// `start`, with more arguments to `serve`.
    async fn start_with(extra: &[&str]) -> Warm {
        let dir = tempfile::tempdir().unwrap();
        let ns = meshed_namespace_file(dir.path());
        let mut args = vec!["--namespaces", ns.to_str().unwrap()];
        args.extend_from_slice(extra);
        let inj = Injector::start(&args, &[]);
        let pid = inj.child.as_ref().unwrap().id();
        let c = client(&inj.ca_pem());
        let plain = pod_review("w", "shop", pod(json!({}), json!([])));
        assert_eq!(inj.post_review(&c, &plain).await.status(), 200);
        let before = support::status_kib(pid, "VmHWM:");
        Warm {
            inj,
            pid,
            c,
            before,
            _dir: dir,
        }
    }
}

fn pod(annotations: serde_json::Value, args: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "web", "namespace": "shop", "annotations": annotations,
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                            "name": "web-1", "uid": "u1", "controller": true}]},
           "spec": {"containers": [{"name": "app", "image": "nginx", "args": args}]}})
}

/// Eight at once (four to /inject, four to /warn, each on its own connection), each with a
/// 2.9 MB override value of DEL bytes (which a Debug escape would turn into 17 MB): every answer
/// and log line stays small, and the process's peak stays far under the limit. Large bodies
/// may hold the budget but for the small reviews' reserve, so some are refused 503 at first
/// and sent again, as a client that is refused would.
#[tokio::test]
async fn a_hostile_annotation_costs_a_bounded_answer_log_line_and_memory() {
    let Warm {
        inj,
        pid,
        c,
        before,
        ..
    } = &Warm::start().await;
    let (pid, before) = (*pid, *before);
    let hostile = "\u{7f}".repeat(HOSTILE);
    let body = serde_json::to_vec(&pod_review(
        "h",
        "shop",
        pod(
            json!({"config.linkerd.io/proxy-cpu-request": hostile}),
            json!([]),
        ),
    ))
    .unwrap();
    let _ = c;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (c, body) = (client(&inj.ca_pem()), body.clone());
        let url = inj.url(if i % 2 == 0 { "/inject" } else { "/warn" });
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut refused = 0;
            loop {
                let r = c
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                if r.status() == 503 && started.elapsed() < Duration::from_secs(30) {
                    refused += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                assert_eq!(r.status(), 200);
                return (r.bytes().await.unwrap(), refused);
            }
        }));
    }
    let (mut largest_answer, mut refused) = (0, 0);
    for t in tasks {
        let (answer, r) = t.await.unwrap();
        refused += r;
        let v: serde_json::Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!(v["response"]["allowed"], true, "{v}");
        assert!(
            v["response"]["patch"].is_null(),
            "injected with a bad override: {v}"
        );
        let warnings = v["response"]["warnings"].to_string();
        assert!(warnings.contains("proxy-cpu-request"), "{v}");
        assert!(warnings.contains("2900000 bytes"), "{v}");
        largest_answer = largest_answer.max(answer.len());
    }
    let peak = support::status_kib(pid, "VmHWM:");
    std::thread::sleep(Duration::from_millis(200));
    let log = std::fs::read_to_string(&inj.log).unwrap();
    let largest_line = log.lines().map(str::len).max().unwrap_or(0);
    eprintln!(
        "8 reviews with a {HOSTILE}-byte hostile annotation at once ({refused} refused 503 and sent again): largest answer {largest_answer} B, \
         largest log line {largest_line} B (log {} B in all), peak RSS {before} KiB before, {peak} KiB after",
        log.len()
    );
    assert!(largest_answer < 4096, "answer of {largest_answer} B");
    assert!(largest_line < 4096, "log line of {largest_line} B");
    assert!(log.len() < 64 * 1024, "log of {} B", log.len());
    assert!(peak < 96 * 1024, "peak RSS {peak} KiB");
}

/// A 2.9 MB array in the pod, sent to `/warn` (which reads only the fields it checks) and to
/// `/inject`: the peak grows by a few copies of the body, not by a parsed tree of it.
#[tokio::test]
async fn a_huge_array_costs_a_few_copies_of_the_body() {
    let Warm {
        inj,
        pid,
        c,
        before,
        ..
    } = &Warm::start().await;
    let (pid, before) = (*pid, *before);
    // ~2.9 MB of one-character strings: the densest tree a parse to a generic value builds.
    let args = vec![json!("a"); HOSTILE / 4];
    let body = serde_json::to_vec(&pod_review("a", "shop", pod(json!({}), json!(args)))).unwrap();
    for path in ["/warn", "/inject"] {
        let r = c
            .post(inj.url(path))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let peak = support::status_kib(pid, "VmHWM:");
    eprintln!(
        "a {}-byte body (a {}-item array) to /warn and /inject: peak RSS {before} KiB before, {peak} KiB after",
        body.len(),
        args.len()
    );
    assert!(
        peak < before + 48 * 1024,
        "peak RSS {peak} KiB (before {before} KiB)"
    );
}

/// A 2.9 MB body in one-byte chunks (HTTP/1.1 chunked: 5 bytes of framing per byte): read
/// into one buffer, it costs its bytes, not a list of chunks.
#[tokio::test]
async fn a_body_in_one_byte_chunks_costs_its_bytes() {
    // A long request timeout, so that the usual answer is the review's even where a debug
    // build reads the framing slowly; a 408 is accepted too (below).
    let Warm {
        inj, pid, before, ..
    } = &Warm::start_with(&["--request-timeout-ms", "120000"]).await;
    let (pid, before) = (*pid, *before);
    let (port, ca) = (inj.port, inj.ca_pem());
    let args = vec![json!("abcdefgh"); HOSTILE / 12];
    let body = serde_json::to_vec(&pod_review("k", "shop", pod(json!({}), json!(args)))).unwrap();
    let len = body.len();
    let (status, took) = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut s = support::tls_stream(port, &ca);
        let mut wire = Vec::with_capacity(len * 6 + 256);
        wire.extend_from_slice(
            b"POST /inject HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        );
        for b in &body {
            wire.extend_from_slice(b"1\r\n");
            wire.push(*b);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        // The server may answer 408 and close before the last bytes are written (how fast a
        // debug build reads 13 MB of framing depends on the machine): a failed write is not the
        // test's concern, the answer and the memory are.
        let wrote = s.write_all(&wire).and_then(|()| s.flush());
        if let Err(e) = &wrote {
            eprintln!("the write ended early: {e}");
        }
        let (text, _) = support::read_until_closed(&mut s);
        (text.lines().next().unwrap_or("").to_string(), started.elapsed())
    })
    .await
    .unwrap();
    let peak = support::status_kib(pid, "VmHWM:");
    eprintln!(
        "a {len}-byte body in one-byte chunks: {status:?} after {took:?}; peak RSS {before} KiB before, {peak} KiB after"
    );
    // Either answer is clear: the review (200), or the request timeout (408) on a machine that
    // reads the framing slower than `--request-timeout-ms`. What the test guards is the memory.
    assert!(
        status.starts_with("HTTP/1.1 200") || status.starts_with("HTTP/1.1 408"),
        "{status:?}: neither the review nor the request timeout"
    );
    assert!(
        peak < before + 32 * 1024,
        "peak RSS {peak} KiB (before {before} KiB)"
    );
}
