//! The floor server's answer: one constant AdmissionReview response, padded to a chosen size so
//! that the floor sends as many bytes as the injector does for the same corpus (serialising and
//! sending the answer is part of what the floor must cost too).

use base64::Engine;

const HEAD: &str = r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":"00000000-0000-4000-8000-000000000000","allowed":true"#;
const PATCH_KEYS: &str = r#","patchType":"JSONPatch","patch":""#;
const TAIL: &str = "}}";

/// The smallest answer: allowed, no patch.
pub fn minimal_len() -> usize {
    HEAD.len() + TAIL.len()
}

/// An AdmissionReview answer of exactly `bytes` bytes (or the minimal answer when `bytes` is
/// smaller). It allows the pod; when there is room, it carries a patch that changes nothing
/// (`[` spaces `]`, base64), like the injector's answers carry a patch; JSON whitespace before
/// the closing braces makes up the last few bytes.
pub fn answer(bytes: usize) -> Vec<u8> {
    let mut out = String::with_capacity(bytes.max(minimal_len()));
    out.push_str(HEAD);
    let with_patch = HEAD.len() + PATCH_KEYS.len() + 4 + 1 + TAIL.len();
    if bytes >= with_patch {
        // base64 turns 3 bytes into 4 characters: a patch of 3q bytes gives 4q characters.
        let room = bytes - HEAD.len() - PATCH_KEYS.len() - 1 - TAIL.len();
        let quads = room / 4;
        let patch = format!("[{}]", " ".repeat(3 * quads - 2));
        out.push_str(PATCH_KEYS);
        base64::engine::general_purpose::STANDARD.encode_string(patch, &mut out);
        out.push('"');
    }
    let pad = bytes.saturating_sub(out.len() + TAIL.len());
    out.push_str(&" ".repeat(pad));
    out.push_str(TAIL);
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn answers_have_the_asked_size_and_are_valid_reviews() {
        for n in (0..400).chain([1000, 8191, 8192, 8193, 100_000]) {
            let a = answer(n);
            assert_eq!(a.len(), n.max(minimal_len()), "size {n}");
            let v: Value = serde_json::from_slice(&a).unwrap_or_else(|e| panic!("size {n}: {e}"));
            assert_eq!(v["response"]["allowed"], true);
            if let Some(p) = v["response"]["patch"].as_str() {
                let patch = base64::engine::general_purpose::STANDARD.decode(p).unwrap();
                let ops: Value = serde_json::from_slice(&patch).unwrap();
                assert_eq!(ops, serde_json::json!([]), "the patch changes nothing");
            }
        }
        assert!(
            serde_json::from_slice::<Value>(&answer(1000)).unwrap()["response"]["patch"]
                .is_string()
        );
    }
}
