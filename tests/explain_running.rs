//! Golden outputs of `explain` for a running meshed pod in the states a pod gets stuck in
//! (tests/explain/NAME.json → NAME.txt): the verdict, whose fault it is, the evidence and the
//! fix. A case is a Pod, or a List (as `kubectl get -o json` gives) of the Pod and what the
//! snapshot holds besides: its Events, NetworkPolicies (without any, the network facts count
//! as not read).
//! `UPDATE_GOLDEN=1` rewrites the outputs that differ and fails, naming them, so that the
//! diff is reviewed.

use std::path::Path;
use std::sync::Arc;

use proxy_injector::admission::Admission;
use proxy_injector::check::cluster::Cluster;
use proxy_injector::config::Config;
use proxy_injector::explain::explain_running_pod;
use proxy_injector::namespaces::Namespaces;

#[test]
fn explain_says_how_a_meshed_pod_is_doing() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/explain");
    let ns = Namespaces::from_yaml(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n",
        "t",
    )
    .unwrap();
    let admission = Admission::new(Arc::new(Config::default()), ns);
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    cases.sort();
    assert_eq!(cases.len(), 4, "four golden cases in {}", dir.display());
    let mut differ = Vec::new();
    for case in cases {
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&case).unwrap()).unwrap();
        let items = match doc["kind"].as_str() {
            Some("List") => doc["items"].as_array().unwrap().clone(),
            _ => vec![doc],
        };
        let of = |kind: &'static str| items.iter().filter(move |i| i["kind"] == kind).cloned();
        let pod = of("Pod").next().expect("a Pod in the case");
        let mut cluster = Cluster {
            pods: vec![serde_json::from_value(pod.clone()).unwrap()],
            pod_events: of("Event")
                .map(|e| serde_json::from_value(e).unwrap())
                .collect(),
            network_policies: of("NetworkPolicy")
                .map(|e| serde_json::from_value(e).unwrap())
                .collect(),
            ..Cluster::default()
        };
        if cluster.network_policies.is_empty() {
            cluster.network_unread = Some("not read in this test".into());
        }
        let lines = explain_running_pod(&admission, &pod, Some("shop"), &cluster);
        let got = lines.join("\n") + "\n";
        let expected_path = case.with_extension("txt");
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != expected {
            if update {
                std::fs::write(&expected_path, &got).unwrap();
            }
            differ.push(format!(
                "{}:\n--- expected\n{expected}--- got\n{got}",
                expected_path.display()
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "{}{}",
        if update {
            "UPDATE_GOLDEN=1 rewrote these; review `git diff tests/explain`, then run again without it:\n"
        } else {
            ""
        },
        differ.join("\n")
    );
}
