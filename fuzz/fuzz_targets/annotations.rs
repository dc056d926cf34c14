//! Annotation parsing: one `config.linkerd.io/*` key (chosen by the first byte) with an
//! arbitrary value, on a pod to inject, through the decision and the patch; plus the port-list
//! parser's round trip.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use proxy_injector::admission::Admission;
use proxy_injector::mesh::override_keys;
use proxy_injector::overrides::PortList;

static ADMISSION: OnceLock<Admission> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let value = String::from_utf8_lossy(rest);
    if let Ok(list) = PortList::parse(&value) {
        let again = PortList::parse(&list.render()).expect("a rendered port list parses");
        assert_eq!(again, list, "port list round trip");
    }
    let keys: Vec<&str> = override_keys().collect();
    let key = keys[pick as usize % keys.len()];
    let review = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "f", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "operation": "CREATE", "namespace": "shop",
            "object": {"metadata": {"name": "web", "annotations": {key: value}},
                "spec": {"containers": [{"name": "app", "image": "nginx",
                    "ports": [{"containerPort": 8080}]}]}}}
    });
    let a = ADMISSION.get_or_init(proxy_injector_fuzz::admission);
    let body = serde_json::to_vec(&review).expect("serialises");
    proxy_injector_fuzz::review_and_check(a, &body);
});
