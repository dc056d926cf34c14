//! What the fuzz targets share: the admission under test and the oracle that every answer
//! must pass.

use std::sync::Arc;

use base64::Engine;
use proxy_injector::admission::Admission;
use proxy_injector::config::Config;
use proxy_injector::namespaces::Namespaces;
use serde_json::Value;

/// An admission with one meshed namespace ("shop") and one that is not ("plain").
pub fn admission() -> Admission {
    let ns = Namespaces::from_yaml(
        "metadata:\n  name: shop\n  annotations:\n    linkerd.io/inject: enabled\n---\nmetadata:\n  name: plain\n",
        "fuzz",
    )
    .unwrap_or_else(|_| Namespaces::empty());
    Admission::new(Arc::new(Config::default()), ns).with_events(true)
}

/// Reviews `body` and checks the answer: a 400-style error, or an AdmissionReview whose
/// response is JSON, and whose patch (if any) applies to the request's object. The Event
/// (owner references parsed, note worded) is built too, as the events task would.
pub fn review_and_check(a: &Admission, body: &[u8]) {
    let Ok(answer) = a.review(body) else {
        return;
    };
    if let Some(note) = answer.event.as_ref().and_then(|seed| seed.note()) {
        assert!(!note.regarding.name.is_empty(), "an event about nothing");
    }
    let resp: Value = serde_json::from_slice(&answer.body).expect("the answer is JSON");
    assert_eq!(resp["kind"], "AdmissionReview");
    let Some(b64) = resp["response"]["patch"].as_str() else {
        return;
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("the patch is base64");
    let patch: json_patch::Patch =
        serde_json::from_slice(&bytes).expect("the patch is an RFC 6902 patch");
    // The object as a generic JSON value (what the API server applies the patch to).
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let mut object = req["request"]["object"].clone();
    json_patch::patch(&mut object, &patch).expect("the patch applies to the object");
}
