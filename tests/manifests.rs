//! What the shipped manifests, the demo and the e2e tests register must agree (no cluster
//! needed): one webhook call per pod.

#[path = "support/mod.rs"]
mod support;

use serde_json::Value;

#[test]
fn every_registration_calls_the_webhook_once_per_pod() {
    let repo = support::repo();
    let webhook = std::fs::read_to_string(repo.join("manifests/base/webhook.yaml")).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&webhook).unwrap();
    let mutating: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "MutatingWebhookConfiguration")
        .flat_map(|d| d["webhooks"].as_array().unwrap())
        .collect();
    assert!(
        !mutating.is_empty(),
        "no mutating webhook in manifests/base/webhook.yaml"
    );
    for w in mutating {
        assert_eq!(w["reinvocationPolicy"], "Never", "manifests: {w}");
    }
    for (file, needle) in [
        ("scripts/demo.sh", "reinvocationPolicy: Never"),
        (
            "tests/support/cluster.rs",
            r#""reinvocationPolicy": "Never""#,
        ),
    ] {
        let text = std::fs::read_to_string(repo.join(file)).unwrap();
        assert!(text.contains(needle), "{file} does not register {needle}");
        assert!(!text.contains("IfNeeded"), "{file} registers IfNeeded");
    }
}
