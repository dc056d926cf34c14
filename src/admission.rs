//! AdmissionReview in → AdmissionReview (response) out. Reads only what decides (a borrowed view
//! of the request and the pod), and writes only what is added.

use std::borrow::Cow;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::{BadOverridePolicy, Config};
use crate::decision::{self, Decision, Mode, Plan, RequestFacts, SkipReason};
use crate::namespaces::Namespaces;
use crate::patch::{self, Fragments};
use crate::view::{BStr, PodView};

#[derive(Debug, Default, Deserialize)]
struct GvkView<'a> {
    #[serde(borrow, default)]
    group: BStr<'a>,
    #[serde(borrow, default)]
    version: BStr<'a>,
    #[serde(borrow, default)]
    kind: BStr<'a>,
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

/// The object an Event is about: the pod's controlling owner, or the pod itself when it has
/// no owner but a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Regarding {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: Option<String>,
    pub namespace: String,
}

/// An Event to record: what happened to a pod at admission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventNote {
    pub regarding: Regarding,
    pub warning: bool,
    /// PascalCase: Injected, InjectionSkipped, InjectionDenied
    pub reason: &'static str,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Happened {
    Injected(Mode),
    Skipped(String),
    Denied(String),
}

/// What an Event needs, copied out of the request cheaply; the owner references are parsed
/// and the note written by `note()`, off the request path (in the events task).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSeed {
    happened: Happened,
    /// `metadata.ownerReferences` as raw JSON.
    owners: Option<String>,
    /// `metadata.name`, when the pod has no owner.
    name: Option<String>,
    display: String,
    namespace: String,
}

impl EventSeed {
    fn new(outcome: &Outcome, pod: &PodView<'_>, namespace: &str) -> Option<EventSeed> {
        let happened = match outcome {
            Outcome::Injected { mode } => Happened::Injected(*mode),
            Outcome::Skipped(r @ SkipReason::InvalidOverrides(_)) => {
                Happened::Skipped(r.to_string())
            }
            Outcome::Denied(r) => Happened::Denied(r.to_string()),
            Outcome::Skipped(_) => return None,
        };
        if namespace.is_empty() {
            return None;
        }
        let owners = pod.metadata.owner_references.map(|r| r.get().to_owned());
        let name = match owners {
            Some(_) => None,
            None => Some(pod.metadata.name.as_ref()?.as_str().to_owned()).filter(|n| !n.is_empty()),
        };
        if owners.is_none() && name.is_none() {
            return None;
        }
        Some(EventSeed {
            happened,
            owners,
            name,
            display: pod.display_name().to_owned(),
            namespace: namespace.to_owned(),
        })
    }

    fn regarding(&self) -> Option<Regarding> {
        if let Some(o) = self
            .owners
            .as_deref()
            .and_then(crate::view::controller_owner)
            .filter(|o| !o.name.as_str().is_empty())
        {
            return Some(Regarding {
                api_version: o.api_version.as_str().to_owned(),
                kind: o.kind.as_str().to_owned(),
                name: o.name.as_str().to_owned(),
                uid: Some(o.uid.as_str().to_owned()).filter(|u| !u.is_empty()),
                namespace: self.namespace.clone(),
            });
        }
        Some(Regarding {
            api_version: "v1".into(),
            kind: "Pod".into(),
            name: self.name.clone()?,
            uid: None,
            namespace: self.namespace.clone(),
        })
    }

    /// The Event to record (None when the owner references do not name an object).
    pub fn note(&self) -> Option<EventNote> {
        let pod = &self.display;
        let (warning, reason, note) = match &self.happened {
            Happened::Injected(mode) => (
                false,
                "Injected",
                format!(
                    "proxy injected into pod {pod} (linkerd.io/inject: {})",
                    mode.as_str()
                ),
            ),
            Happened::Skipped(r) => (
                true,
                "InjectionSkipped",
                format!("pod {pod} admitted without the proxy: {r}"),
            ),
            Happened::Denied(r) => (true, "InjectionDenied", format!("pod {pod} denied: {r}")),
        };
        Some(EventNote {
            regarding: self.regarding()?,
            warning,
            reason,
            note,
        })
    }
}

/// The admission logic with its start-up state: config, cached fragments, namespace cache.
pub struct Admission {
    config: Arc<Config>,
    namespaces: Namespaces,
    /// Whether answers carry an `EventSeed` (only when someone records them).
    record_events: bool,
    enabled: Fragments,
    ingress: Fragments,
}

impl Admission {
    pub fn new(config: Arc<Config>, namespaces: Namespaces) -> Admission {
        let (enabled, ingress) = default_fragments(&config);
        Admission {
            config,
            namespaces,
            record_events: false,
            enabled,
            ingress,
        }
    }

    /// Makes answers carry what an Event about them needs (`Answer::event`).
    pub fn with_events(mut self, on: bool) -> Admission {
        self.record_events = on;
        self
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn namespaces(&self) -> &Namespaces {
        &self.namespaces
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
        };
        let namespace = req
            .namespace
            .as_ref()
            .map(BStr::as_str)
            .filter(|n| !n.is_empty());
        let ns_obj = namespace.and_then(|n| self.namespaces.get(n));
        let ns_info = crate::namespaces::info(namespace, ns_obj.as_deref());
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
            out.outcome = Outcome::Skipped(reason);
            out.body = response(api_version, uid, None, None, &[]);
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
            Decision::Skip(reason @ SkipReason::InvalidOverrides(_)) => {
                let message = format!("proxy-injector: {reason}");
                match self.config.bad_override {
                    BadOverridePolicy::AdmitUninjected => {
                        out.warnings.push(message);
                        out.body = response(api_version, uid, None, None, &out.warnings);
                        out.outcome = Outcome::Skipped(reason);
                    }
                    BadOverridePolicy::Deny => {
                        out.body = response(api_version, uid, None, Some(&message), &[]);
                        out.outcome = Outcome::Denied(reason);
                    }
                }
            }
            Decision::Skip(reason) => {
                out.body = response(api_version, uid, None, None, &[]);
                out.outcome = Outcome::Skipped(reason);
            }
        }
        if self.record_events && !out.dry_run {
            out.event = EventSeed::new(&out.outcome, &pod, &out.namespace);
        }
        Ok(out)
    }

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
        let ns_obj = namespace.and_then(|n| self.namespaces.get(n));
        let ns_info = crate::namespaces::info(namespace, ns_obj.as_deref());
        let warnings = match req.get("object").filter(|o| o.is_object()) {
            Some(obj) if crate::warnings::is_checked_kind(obj_kind) => {
                let old = req.get("oldObject").filter(|o| o.is_object());
                crate::warnings::check(obj_kind, obj, old, ns_info, &self.config)
            }
            _ => Vec::new(),
        };
        let strict = self.config.strict_warnings && !warnings.is_empty();
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

/// Fragments for the two modes with no overrides, built once.
fn default_fragments(config: &Config) -> (Fragments, Fragments) {
    let build = |mode| match decision::values_without_overrides(config, mode) {
        Some(values) => Fragments::new(&values, config),
        // The config was validated at load, so its defaults always resolve.
        None => unreachable!("the config's defaults must resolve"),
    };
    (build(Mode::Enabled), build(Mode::Ingress))
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
