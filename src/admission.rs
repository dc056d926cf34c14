//! AdmissionReview in → AdmissionReview (response) out. Reads only what decides (a borrowed view
//! of the request and the pod), and writes only what is added.

use std::borrow::Cow;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::Config;
use crate::decision::{
    self, Decision, Mode, NamespaceInfo, NamespaceLookup, Plan, RequestFacts, SkipReason,
};
use crate::events::{EventSeed, Happened};
use crate::patch::{self, Fragments};
use crate::values::ProxyValues;
use crate::view::{BStr, PodView};

#[derive(Debug, Default, Deserialize)]
pub(crate) struct GvkView<'a> {
    #[serde(borrow, default)]
    pub(crate) group: BStr<'a>,
    #[serde(borrow, default)]
    pub(crate) version: BStr<'a>,
    #[serde(borrow, default)]
    pub(crate) kind: BStr<'a>,
}

/// The request, with `object` parsed as `O`: the pod view directly (one pass over the body),
/// or raw JSON on the slow path.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestView<'a, O> {
    #[serde(borrow)]
    uid: BStr<'a>,
    #[serde(borrow, default)]
    kind: GvkView<'a>,
    #[serde(borrow, default)]
    operation: BStr<'a>,
    #[serde(borrow, default)]
    namespace: Option<BStr<'a>>,
    #[serde(default)]
    dry_run: Option<bool>,
    #[serde(default = "none")]
    object: Option<O>,
}

fn none<O>() -> Option<O> {
    None
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReviewView<'a, O> {
    #[serde(borrow, default)]
    api_version: Option<BStr<'a>>,
    #[serde(borrow, default)]
    kind: Option<BStr<'a>>,
    #[serde(borrow, default = "none")]
    request: Option<RequestView<'a, O>>,
}

/// Why a body is answered with HTTP 400 instead of an AdmissionReview.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("the body is not an AdmissionReview: {0}")]
    NotJson(String),
    #[error(
        "expected apiVersion admission.k8s.io/v1 (or v1beta1) and kind AdmissionReview, got {api_version:?} {kind:?}"
    )]
    WrongType { api_version: String, kind: String },
    #[error("the AdmissionReview has no request")]
    NoRequest,
    #[error("the AdmissionReview request has an empty uid")]
    NoUid,
}

/// What happened to one admission, for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Injected { mode: Mode },
    Skipped(SkipReason),
    Denied(SkipReason),
}

/// One answered review.
#[derive(Debug)]
pub struct Answer {
    pub body: Vec<u8>,
    pub outcome: Outcome,
    pub pod: String,
    pub namespace: String,
    pub dry_run: bool,
    pub warnings: Vec<String>,
    /// A Kubernetes Event to record about the pod's owner (never for a dry run, never for an
    /// ordinary skip such as a namespace that is not meshed).
    pub event: Option<EventSeed>,
}

impl Answer {
    /// The `result` and `reason` labels of the admissions metric for this answer of `handler`
    /// (`/warn` answers are clean or warned; the others say their outcome and its code).
    pub fn metric_labels(&self, handler: &str) -> (&'static str, &'static str) {
        match (&self.outcome, handler) {
            (_, "warn") if self.warnings.is_empty() => ("clean", "none"),
            (_, "warn") => ("warned", "none"),
            (Outcome::Injected { mode }, _) => ("injected", mode.as_str()),
            (Outcome::Skipped(r), _) => ("skipped", r.code()),
            (Outcome::Denied(r), _) => ("denied", r.code()),
        }
    }
}

/// The admission logic with its start-up state: config, cached fragments, and where it looks
/// namespaces up.
pub struct Admission {
    config: Arc<Config>,
    namespaces: Arc<dyn NamespaceLookup>,
    /// NetworkPolicies and meshed pods, for `/warn`'s NetworkPolicy review.
    network: Arc<dyn crate::netpol::review::NetworkLookup>,
    /// What a meshed pod's proxy needs (ports from the config), built once.
    needs: crate::netpol::proxy::ProxyNeeds,
    /// Whether answers carry an `EventSeed` (only when someone records them).
    record_events: bool,
    enabled: Fragments,
    ingress: Fragments,
}

/// The admission a server answers with, swapped whole when the config changes (Linkerd's
/// ConfigMaps): a review loads the current one once and keeps it to its end.
#[derive(Clone)]
pub struct SharedAdmission(Arc<arc_swap::ArcSwap<Admission>>);

impl SharedAdmission {
    pub fn load(&self) -> Arc<Admission> {
        self.0.load_full()
    }

    pub fn store(&self, next: Admission) {
        self.0.store(Arc::new(next));
    }
}

impl From<Admission> for SharedAdmission {
    fn from(a: Admission) -> SharedAdmission {
        SharedAdmission(Arc::new(arc_swap::ArcSwap::from_pointee(a)))
    }
}

impl Admission {
    pub fn new(config: Arc<Config>, namespaces: impl NamespaceLookup + 'static) -> Admission {
        Self::new_with(config, Arc::new(namespaces))
    }

    fn new_with(config: Arc<Config>, namespaces: Arc<dyn NamespaceLookup>) -> Admission {
        let enabled = Fragments::new(&ProxyValues::from_config(&config, Mode::Enabled), &config);
        let ingress = Fragments::new(&ProxyValues::from_config(&config, Mode::Ingress), &config);
        Admission {
            needs: crate::netpol::proxy::ProxyNeeds::from_config(&config),
            config,
            namespaces,
            network: Arc::new(()),
            record_events: false,
            enabled,
            ingress,
        }
    }

    /// The same admission (namespaces, network, events) with another config: what a reload
    /// of Linkerd's config swaps in.
    pub fn with_config(&self, config: Arc<Config>) -> Admission {
        Admission {
            network: self.network.clone(),
            ..Admission::new_with(config, self.namespaces.clone()).with_events(self.record_events)
        }
    }

    /// Makes answers carry what an Event about them needs (`Answer::event`).
    pub fn with_events(mut self, on: bool) -> Admission {
        self.record_events = on;
        self
    }

    /// Where `/warn`'s NetworkPolicy review finds the cluster's policies and meshed pods.
    pub fn with_network(
        mut self,
        network: impl crate::netpol::review::NetworkLookup + 'static,
    ) -> Admission {
        self.network = Arc::new(network);
        self
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn network(&self) -> &dyn crate::netpol::review::NetworkLookup {
        &*self.network
    }

    pub fn proxy_needs(&self) -> &crate::netpol::proxy::ProxyNeeds {
        &self.needs
    }

    pub fn namespaces(&self) -> &dyn NamespaceLookup {
        &*self.namespaces
    }

    /// Answers one AdmissionReview body.
    pub fn review(&self, body: &[u8]) -> Result<Answer, ReviewError> {
        let text = std::str::from_utf8(body).map_err(|e| ReviewError::NotJson(e.to_string()))?;
        // Fast path: the object goes straight into the pod view, in one pass over the body.
        if let Ok(review) = serde_json::from_str::<ReviewView<'_, PodView<'_>>>(text) {
            return self.answer(review, Ok);
        }
        // Slow path, for what the view cannot read (an object of another shape, or not JSON at
        // all): the object kept raw, so that the error names what is wrong.
        let review: ReviewView<'_, &RawValue> =
            serde_json::from_str(text).map_err(|e| ReviewError::NotJson(e.to_string()))?;
        self.answer(review, |raw| PodView::parse(raw.get()))
    }

    fn answer<'a, O>(
        &self,
        review: ReviewView<'a, O>,
        to_pod: impl FnOnce(O) -> Result<PodView<'a>, serde_json::Error>,
    ) -> Result<Answer, ReviewError> {
        let api_version = review.api_version.as_ref().map(BStr::as_str).unwrap_or("");
        let kind = review.kind.as_ref().map(BStr::as_str).unwrap_or("");
        let api_version = match api_version {
            "admission.k8s.io/v1" | "admission.k8s.io/v1beta1" if kind == "AdmissionReview" => {
                api_version
            }
            _ => {
                return Err(ReviewError::WrongType {
                    api_version: api_version.to_owned(),
                    kind: kind.to_owned(),
                });
            }
        };
        let req = review.request.ok_or(ReviewError::NoRequest)?;
        if req.uid.as_str().is_empty() {
            return Err(ReviewError::NoUid);
        }
        let facts = RequestFacts {
            group: req.kind.group.as_str(),
            version: req.kind.version.as_str(),
            kind: req.kind.kind.as_str(),
            operation: req.operation.as_str(),
            cli: false,
            manifest: false,
        };
        let namespace = req
            .namespace
            .as_ref()
            .map(BStr::as_str)
            .filter(|n| !n.is_empty());
        let ns_obj = namespace.and_then(|n| self.namespaces.get(n));
        let limits = namespace
            .map(|n| self.namespaces.limits(n))
            .unwrap_or_default();
        let ns_info = NamespaceInfo::of(namespace, ns_obj.as_deref()).with_limits(&limits);
        let mut out = Answer {
            body: Vec::new(),
            outcome: Outcome::Skipped(SkipReason::NoObject),
            pod: String::new(),
            namespace: namespace.unwrap_or("").to_owned(),
            dry_run: req.dry_run.unwrap_or(false),
            warnings: Vec::new(),
            event: None,
        };
        let uid = req.uid.as_str();
        if let Some(reason) = decision::precheck(&facts) {
            // A Service gets the opaque-ports annotation, as Linkerd's injector (registered for
            // services too) gives it.
            let service = facts.group.is_empty()
                && facts.version == "v1"
                && facts.kind == "Service"
                && facts.operation == "CREATE";
            let patch = match req.object {
                Some(object) if service => to_pod(object).ok().and_then(|svc| {
                    out.pod = svc.display_name().to_owned();
                    self.opaque_patch(&svc, ns_info)
                }),
                _ => None,
            };
            out.outcome = Outcome::Skipped(reason);
            out.body = response(api_version, uid, patch.as_deref(), None, &[]);
            return Ok(out);
        }
        let Some(object) = req.object else {
            out.body = response(api_version, uid, None, None, &[]);
            return Ok(out);
        };
        let pod = match to_pod(object) {
            Ok(p) => p,
            Err(e) => {
                let reason = SkipReason::UnreadablePod {
                    error: e.to_string(),
                };
                out.warnings.push(format!("proxy-injector: {reason}"));
                out.body = response(api_version, uid, None, None, &out.warnings);
                out.outcome = Outcome::Skipped(reason);
                return Ok(out);
            }
        };
        out.pod = pod.display_name().to_owned();
        let missing = match (pod.spec.is_some(), pod.metadata.present) {
            (true, true) => None,
            (false, _) => Some("the pod has no spec"),
            (true, false) => Some("the pod has no metadata"),
        };
        if let Some(missing) = missing {
            // The API server never sends such a pod; a patch under /spec or /metadata could
            // not apply to it.
            let reason = SkipReason::UnreadablePod {
                error: missing.into(),
            };
            out.warnings.push(format!("proxy-injector: {reason}"));
            out.body = response(api_version, uid, None, None, &out.warnings);
            out.outcome = Outcome::Skipped(reason);
            return Ok(out);
        }
        match decision::decide(&facts, &pod, ns_info, &self.config) {
            Decision::Inject(plan) => {
                let mut patch = Vec::with_capacity(8 * 1024);
                self.write_patch(&pod, &plan, &mut patch);
                out.outcome = Outcome::Injected { mode: plan.mode };
                out.body = response(api_version, uid, Some(&patch), None, &[]);
            }
            Decision::Skip(reason) if reason.warns() => {
                let message = format!("proxy-injector: {reason}");
                if reason.denies(&self.config) {
                    out.body = response(api_version, uid, None, Some(&message), &[]);
                    out.outcome = Outcome::Denied(reason);
                } else {
                    out.warnings.push(message);
                    let patch = self.opaque_patch(&pod, ns_info);
                    out.body = response(api_version, uid, patch.as_deref(), None, &out.warnings);
                    out.outcome = Outcome::Skipped(reason);
                }
            }
            Decision::Skip(reason) => {
                let patch = self.opaque_patch(&pod, ns_info);
                out.body = response(api_version, uid, patch.as_deref(), None, &[]);
                out.outcome = Outcome::Skipped(reason);
            }
        }
        if self.record_events && !out.dry_run {
            let happened = match &out.outcome {
                Outcome::Injected { mode } => Some(Happened::Injected(*mode)),
                Outcome::Skipped(r) if r.warns() => Some(Happened::Skipped(r.to_string())),
                Outcome::Denied(r) => Some(Happened::Denied(r.to_string())),
                Outcome::Skipped(_) => None,
            };
            out.event = happened.and_then(|h| EventSeed::new(h, &pod, &out.namespace));
        }
        Ok(out)
    }

    /// The patch that adds the opaque-ports annotation to an object not injected (see
    /// [`crate::values::added_opaque_annotation`]); `None`: nothing to add.
    fn opaque_patch(&self, obj: &PodView<'_>, ns: NamespaceInfo<'_>) -> Option<Vec<u8>> {
        let value = crate::values::added_opaque_annotation(obj, ns, &self.config)?;
        Some(crate::patch::annotation_patch(
            obj.metadata.annotations.is_some(),
            crate::mesh::OPAQUE_PORTS_ANNOTATION,
            &value,
        ))
    }

    /// The patch for a decided plan, using the start-up fragments when nothing was overridden.
    pub fn write_patch(&self, pod: &PodView<'_>, plan: &Plan<'_>, out: &mut Vec<u8>) {
        let frags: Cow<'_, Fragments> = if plan.defaults_only {
            Cow::Borrowed(match plan.mode {
                Mode::Enabled => &self.enabled,
                Mode::Ingress => &self.ingress,
            })
        } else {
            Cow::Owned(Fragments::new(&plan.proxy, &self.config))
        };
        patch::write_patch(pod, plan, &frags, out);
    }
}

/// Serialises an AdmissionReview response.
pub fn response(
    api_version: &str,
    uid: &str,
    patch: Option<&[u8]>,
    deny: Option<&str>,
    warnings: &[String],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(patch.map_or(256, |p| p.len() * 4 / 3 + 256));
    out.extend_from_slice(b"{\"apiVersion\":");
    let _ = serde_json::to_writer(&mut out, api_version);
    out.extend_from_slice(b",\"kind\":\"AdmissionReview\",\"response\":{\"uid\":");
    let _ = serde_json::to_writer(&mut out, uid);
    match deny {
        Some(message) => {
            out.extend_from_slice(b",\"allowed\":false,\"status\":{\"code\":400,\"reason\":\"BadRequest\",\"message\":");
            let _ = serde_json::to_writer(&mut out, message);
            out.push(b'}');
        }
        None => out.extend_from_slice(b",\"allowed\":true"),
    }
    if let Some(p) = patch {
        out.extend_from_slice(b",\"patchType\":\"JSONPatch\",\"patch\":\"");
        // SIMD base64 straight into the response buffer (no zero-filled scratch space).
        base64_simd::STANDARD.encode_append(p, &mut out);
        out.push(b'"');
    }
    if !warnings.is_empty() {
        out.extend_from_slice(b",\"warnings\":");
        let _ = serde_json::to_writer(&mut out, warnings);
    }
    out.extend_from_slice(b"}}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventNote;
    use crate::namespaces::Namespaces;
    use serde_json::json;

    fn review(annotations: serde_json::Value, dry_run: bool, owned: bool) -> Answer {
        let ns = Namespaces::from_yaml("metadata:\n  name: shop\n", "t").unwrap();
        let a = Admission::new(Arc::new(Config::default()), ns).with_events(true);
        let mut meta = json!({"generateName": "web-5d9-", "annotations": annotations});
        if owned {
            meta["ownerReferences"] = json!([
                {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "x"},
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d9", "uid": "u1", "controller": true}
            ]);
        }
        let body = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "r", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "operation": "CREATE", "namespace": "shop", "dryRun": dry_run,
                "object": {"metadata": meta, "spec": {"containers": [{"name": "app"}]}}}});
        a.review(body.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn the_core_runs_on_any_namespace_lookup() {
        // A plain map is a namespace lookup: no reflector, no kube client.
        let ns: k8s_openapi::api::core::v1::Namespace = serde_json::from_value(json!({
            "metadata": {"name": "shop", "annotations": {"linkerd.io/inject": "enabled"}}}))
        .unwrap();
        let map: std::collections::HashMap<String, Arc<_>> =
            [("shop".to_owned(), Arc::new(ns))].into_iter().collect();
        let a = Admission::new(Arc::new(Config::default()), map);
        let body = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "r", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "operation": "CREATE", "namespace": "shop",
                "object": {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "app"}]}}}});
        let answer = a.review(body.to_string().as_bytes()).unwrap();
        assert_eq!(
            answer.outcome,
            Outcome::Injected {
                mode: Mode::Enabled
            }
        );
        let body = body.to_string().replace("\"shop\"", "\"elsewhere\"");
        let answer = a.review(body.as_bytes()).unwrap();
        assert!(
            matches!(
                answer.outcome,
                Outcome::Skipped(SkipReason::NotAnnotated {
                    namespace_cached: false,
                    ..
                })
            ),
            "{:?}",
            answer.outcome
        );
    }

    fn note(answer: Answer) -> Option<EventNote> {
        answer.event.and_then(|seed| seed.note())
    }

    #[test]
    fn events_go_to_the_controller_and_never_for_dry_runs() {
        let on = json!({"linkerd.io/inject": "enabled"});
        let e = note(review(on.clone(), false, true)).unwrap();
        assert_eq!((e.reason, e.warning), ("Injected", false));
        assert_eq!(e.regarding.kind, "ReplicaSet");
        assert_eq!(e.regarding.uid.as_deref(), Some("u1"));
        assert!(e.note.contains("web-5d9-"), "{}", e.note);
        assert!(review(on.clone(), true, true).event.is_none(), "dry run");
        assert!(
            review(on, false, false).event.is_none(),
            "no owner, no name"
        );
        assert!(
            review(json!({}), false, true).event.is_none(),
            "an ordinary skip"
        );
        let bad =
            json!({"linkerd.io/inject": "enabled", "config.linkerd.io/proxy-cpu-request": "lots"});
        let e = note(review(bad, false, true)).unwrap();
        assert_eq!((e.reason, e.warning), ("InjectionSkipped", true));
        assert!(e.note.contains("proxy-cpu-request"), "{}", e.note);
        // Without a recorder, answers carry nothing for events.
        let ns = Namespaces::from_yaml("metadata:\n  name: shop\n", "t").unwrap();
        let plain = Admission::new(Arc::new(Config::default()), ns);
        let body = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "r", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "operation": "CREATE", "namespace": "shop",
                "object": {"metadata": {"name": "p", "annotations": {"linkerd.io/inject": "enabled"}},
                    "spec": {"containers": [{"name": "app"}]}}}});
        assert!(
            plain
                .review(body.to_string().as_bytes())
                .unwrap()
                .event
                .is_none()
        );
    }
}
