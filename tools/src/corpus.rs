//! Synthetic AdmissionReviews of realistic shape and chosen size, for benchmarks and load runs.

use serde_json::{Value, json};

/// Size classes used by the benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// One container, a few env vars: ~1.5 KB.
    Small,
    /// Several containers, env, volumes, a last-applied-configuration: ~10 KB.
    Medium,
    /// Many containers with long env lists and volumes: ~100 KB.
    Large,
}

impl Size {
    pub const ALL: [Size; 3] = [Size::Small, Size::Medium, Size::Large];

    pub fn name(self) -> &'static str {
        match self {
            Size::Small => "small",
            Size::Medium => "10KB",
            Size::Large => "100KB",
        }
    }

    fn shape(self) -> (usize, usize, usize) {
        // (containers, env vars per container, volumes)
        match self {
            Size::Small => (1, 4, 1),
            Size::Medium => (3, 18, 4),
            Size::Large => (12, 70, 20),
        }
    }
}

/// A pod of the given size. `annotation` is the pod's `linkerd.io/inject` value, if any.
pub fn pod(size: Size, name: &str, annotation: Option<&str>) -> Value {
    let (containers, envs, volumes) = size.shape();
    let mut cs = Vec::new();
    for c in 0..containers {
        let env: Vec<Value> = (0..envs)
            .map(|e| json!({"name": format!("APP_SETTING_{c}_{e}"), "value": format!("value-{e}-with-some-length-to-it")}))
            .collect();
        cs.push(json!({
            "name": format!("app-{c}"),
            "image": format!("registry.example.com/team/app-{c}:v1.{c}.0"),
            "imagePullPolicy": "IfNotPresent",
            "ports": [{"containerPort": 8080 + c, "name": format!("http-{c}"), "protocol": "TCP"}],
            "env": env,
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080 + c}, "periodSeconds": 5},
            "volumeMounts": (0..volumes).map(|v| json!({"name": format!("vol-{v}"), "mountPath": format!("/data/{v}")})).collect::<Vec<_>>(),
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
        }));
    }
    let vols: Vec<Value> = (0..volumes)
        .map(|v| json!({"name": format!("vol-{v}"), "configMap": {"name": format!("config-{v}"), "defaultMode": 420}}))
        .collect();
    let mut annotations = serde_json::Map::new();
    annotations.insert("prometheus.io/scrape".into(), json!("true"));
    if size != Size::Small {
        // kubectl's last-applied-configuration: a large escaped JSON blob, as in real pods.
        let blob = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                          "spec": {"containers": cs.iter().take(2).collect::<Vec<_>>()}});
        annotations.insert(
            "kubectl.kubernetes.io/last-applied-configuration".into(),
            json!(blob.to_string()),
        );
    }
    if let Some(a) = annotation {
        annotations.insert("linkerd.io/inject".into(), json!(a));
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "labels": {"app": name, "pod-template-hash": "7d9c6b8f5"},
            "annotations": annotations,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{name}-7d9c6b8f5"),
                                  "uid": "5b6c1f7e-0000-4000-8000-000000000001", "controller": true, "blockOwnerDeletion": true}],
        },
        "spec": {
            "containers": cs,
            "volumes": vols,
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "securityContext": {},
            "schedulerName": "default-scheduler",
        }
    })
}

/// An AdmissionReview (CREATE, v1 Pod) for `pod` in namespace `shop`.
pub fn review(uid: &str, pod: Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller",
                         "groups": ["system:serviceaccounts", "system:authenticated"]},
            "object": pod,
            "oldObject": null,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"}
        }
    })
}

/// The serialised review of a pod of `size` that will be injected (pod-level annotation).
pub fn injected_review_bytes(size: Size) -> Vec<u8> {
    serde_json::to_vec(&review(
        "00000000-0000-4000-8000-000000000000",
        pod(size, "web", Some("enabled")),
    ))
    .unwrap_or_default()
}

/// A mixed corpus: every size, with pods that are injected, opted out and not annotated.
pub fn mixed() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for size in Size::ALL {
        for (label, ann) in [
            ("inject", Some("enabled")),
            ("disabled", Some("disabled")),
            ("plain", None),
        ] {
            let body = serde_json::to_vec(&review(
                "00000000-0000-4000-8000-000000000000",
                pod(size, "web", ann),
            ))
            .unwrap_or_default();
            out.push((format!("{}-{label}", size.name()), body));
        }
    }
    out
}
