//! `POST /warn`, the validating webhook: reviews Namespaces and workloads as they are created
//! or updated and answers with the mesh mistakes found (`warnings`, printed by kubectl), never
//! a patch. The mistakes themselves are found by `warnings`.

use crate::admission::{Admission, Answer, Outcome, ReviewError, response};
use crate::decision::{NamespaceInfo, SkipReason};

impl Admission {
    /// Answers one AdmissionReview for `POST /warn`: never a patch; `warnings` for the mesh
    /// mistakes in a Namespace or workload (denied instead with `strictWarnings: true`).
    pub fn warn(&self, body: &[u8]) -> Result<Answer, ReviewError> {
        let review: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| ReviewError::NotJson(e.to_string()))?;
        let api_version = review["apiVersion"].as_str().unwrap_or("");
        let kind = review["kind"].as_str().unwrap_or("");
        if !matches!(
            api_version,
            "admission.k8s.io/v1" | "admission.k8s.io/v1beta1"
        ) || kind != "AdmissionReview"
        {
            return Err(ReviewError::WrongType {
                api_version: api_version.to_owned(),
                kind: kind.to_owned(),
            });
        }
        let req = review
            .get("request")
            .filter(|r| r.is_object())
            .ok_or(ReviewError::NoRequest)?;
        let uid = req["uid"].as_str().unwrap_or("");
        if uid.is_empty() {
            return Err(ReviewError::NoUid);
        }
        let obj_kind = req["kind"]["kind"].as_str().unwrap_or("");
        let namespace = req["namespace"].as_str().filter(|n| !n.is_empty());
        let name = req["object"]["metadata"]["name"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let ns_obj = namespace.and_then(|n| self.namespaces().get(n));
        let ns_info = NamespaceInfo::of(namespace, ns_obj.as_deref());
        let warnings = match req.get("object").filter(|o| o.is_object()) {
            Some(obj) if crate::warnings::is_checked_kind(obj_kind) => {
                let old = req.get("oldObject").filter(|o| o.is_object());
                crate::warnings::check(obj_kind, obj, old, ns_info, self.config())
            }
            _ => Vec::new(),
        };
        let strict = self.config().strict_warnings && !warnings.is_empty();
        let body = if strict {
            response(
                api_version,
                uid,
                None,
                Some(&format!("proxy-injector: {}", warnings.join("; "))),
                &[],
            )
        } else {
            response(api_version, uid, None, None, &warnings)
        };
        Ok(Answer {
            body,
            outcome: Outcome::Skipped(SkipReason::NotAPod {
                group: req["kind"]["group"].as_str().unwrap_or("").to_owned(),
                version: req["kind"]["version"].as_str().unwrap_or("").to_owned(),
                kind: obj_kind.to_owned(),
            }),
            pod: name,
            namespace: namespace.unwrap_or("").to_owned(),
            dry_run: req["dryRun"].as_bool().unwrap_or(false),
            warnings,
            event: None,
        })
    }
}
