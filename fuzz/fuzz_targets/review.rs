//! The whole request path: bytes → AdmissionReview → decision → patch → response.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use proxy_injector::admission::Admission;

static ADMISSION: OnceLock<Admission> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let a = ADMISSION.get_or_init(proxy_injector_fuzz::admission);
    proxy_injector_fuzz::review_and_check(a, data);
});
