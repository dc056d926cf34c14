//! `POST /warn`, the validating webhook: reviews Namespaces and workloads as they are created
//! or updated and answers with the mesh mistakes found (`warnings`, printed by kubectl), never
//! a patch. The mistakes themselves are found by `warnings`; the request is read like
//! `/inject` reads it (borrowed views), and the object only as far as `warnings` looks at it
//! (`prune`).

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::admission::{Admission, Answer, GvkView, Outcome, ReviewError, response};
use crate::decision::{NamespaceInfo, SkipReason};
use crate::view::BStr;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WarnRequest<'a> {
    #[serde(borrow, default)]
    uid: BStr<'a>,
    #[serde(borrow, default)]
    kind: GvkView<'a>,
    #[serde(borrow, default)]
    namespace: Option<BStr<'a>>,
    #[serde(default)]
    dry_run: Option<bool>,
    #[serde(borrow, default)]
    object: Option<&'a RawValue>,
    #[serde(borrow, default)]
    old_object: Option<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WarnReview<'a> {
    #[serde(borrow, default)]
    api_version: Option<BStr<'a>>,
    #[serde(borrow, default)]
    kind: Option<BStr<'a>>,
    #[serde(borrow, default)]
    request: Option<WarnRequest<'a>>,
}

/// The object as `warnings` reads it; `None` for `null` or anything that is not an object.
fn object(raw: Option<&RawValue>) -> Option<serde_json::Value> {
    raw.and_then(|r| crate::prune::parse(r.get(), &crate::prune::OBJECT).ok())
        .filter(serde_json::Value::is_object)
}

impl Admission {
    /// Answers one AdmissionReview for `POST /warn`: never a patch; `warnings` for the mesh
    /// mistakes in a Namespace or workload (denied instead with `strictWarnings: true`).
    pub fn warn(&self, body: &[u8]) -> Result<Answer, ReviewError> {
        let text = std::str::from_utf8(body).map_err(|e| ReviewError::NotJson(e.to_string()))?;
        let review: WarnReview<'_> =
            serde_json::from_str(text).map_err(|e| ReviewError::NotJson(e.to_string()))?;
        let api_version = review.api_version.as_ref().map(BStr::as_str).unwrap_or("");
        let kind = review.kind.as_ref().map(BStr::as_str).unwrap_or("");
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
        let req = review.request.ok_or(ReviewError::NoRequest)?;
        let uid = req.uid.as_str();
        if uid.is_empty() {
            return Err(ReviewError::NoUid);
        }
        let obj_kind = req.kind.kind.as_str();
        let namespace = req
            .namespace
            .as_ref()
            .map(BStr::as_str)
            .filter(|n| !n.is_empty());
        let ns_obj = namespace.and_then(|n| self.namespaces().get(n));
        let limits = namespace
            .map(|n| self.namespaces().limits(n))
            .unwrap_or_default();
        let ns_info = NamespaceInfo::of(namespace, ns_obj.as_deref()).with_limits(&limits);
        if obj_kind == "NetworkPolicy" && req.kind.group.as_str() == "networking.k8s.io" {
            let (name, warnings) = match (namespace, req.object) {
                (Some(ns), Some(raw)) => self.network_policy_warnings(ns, raw),
                _ => (String::new(), Vec::new()),
            };
            return Ok(self.warn_answer(api_version, uid, &req, namespace, name, warnings));
        }
        if matches!(obj_kind, "ResourceQuota" | "LimitRange") && req.kind.group.as_str().is_empty()
        {
            let (name, warnings) = match req.object {
                Some(raw) => {
                    crate::warnings::limits_added(obj_kind, raw.get(), ns_info, self.config())
                }
                None => (String::new(), Vec::new()),
            };
            return Ok(self.warn_answer(api_version, uid, &req, namespace, name, warnings));
        }
        let obj = object(req.object);
        let name = obj
            .as_ref()
            .and_then(|o| o.pointer("/metadata/name"))
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_owned();
        let warnings = match &obj {
            Some(obj) if crate::warnings::is_checked_kind(obj_kind) => {
                let old = object(req.old_object);
                crate::warnings::check(obj_kind, obj, old.as_ref(), ns_info, self.config())
            }
            _ => Vec::new(),
        };
        Ok(self.warn_answer(api_version, uid, &req, namespace, name, warnings))
    }

    /// The NetworkPolicy review: the policy's name and the proxy paths it would cut meshed
    /// pods off.
    fn network_policy_warnings(&self, namespace: &str, raw: &RawValue) -> (String, Vec<String>) {
        let Ok(policy) =
            serde_json::from_str::<k8s_openapi::api::networking::v1::NetworkPolicy>(raw.get())
        else {
            return (String::new(), Vec::new());
        };
        let name = crate::quote::quote(policy.metadata.name.as_deref().unwrap_or(""));
        let ns = self.namespaces().get(namespace);
        let meshed = ns
            .as_deref()
            .and_then(|n| n.metadata.annotations.as_ref())
            .and_then(|a| a.get(crate::mesh::INJECT_ANNOTATION))
            .is_some_and(|v| v == "enabled" || v == "ingress");
        let warnings = crate::netpol::review::review(
            &policy,
            namespace,
            ns.as_deref(),
            meshed,
            self.network(),
            self.proxy_needs(),
        );
        (name, warnings)
    }

    fn warn_answer(
        &self,
        api_version: &str,
        uid: &str,
        req: &WarnRequest<'_>,
        namespace: Option<&str>,
        name: String,
        warnings: Vec<String>,
    ) -> Answer {
        let obj_kind = req.kind.kind.as_str();
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
        Answer {
            body,
            outcome: Outcome::Skipped(SkipReason::NotAPod {
                group: req.kind.group.as_str().to_owned(),
                version: req.kind.version.as_str().to_owned(),
                kind: obj_kind.to_owned(),
            }),
            pod: name,
            namespace: namespace.unwrap_or("").to_owned(),
            dry_run: req.dry_run.unwrap_or(false),
            warnings,
            event: None,
        }
    }
}
