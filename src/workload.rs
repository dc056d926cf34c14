//! Workloads and their pods: where each kind keeps its pod template, the name a pod is shown
//! by, and the owner rule (a pod belongs to the owner reference with `controller: true`; a pod
//! without one stands for itself). Pure; shared by the webhook, the offline commands, Events
//! and `check`.

use serde::Deserialize;

use crate::view::BStr;

/// Where a kind keeps its pod template (JSON pointer), `Some("")` for a Pod itself.
pub fn pod_template_path(kind: &str) -> Option<&'static str> {
    match kind {
        "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "ReplicationController"
        | "Job" => Some("/spec/template"),
        "CronJob" => Some("/spec/jobTemplate/spec/template"),
        "Pod" => Some(""),
        _ => None,
    }
}

pub use crate::view::display_name;

/// The owner rule, once: the reference that controls the object.
pub fn is_controller(controller: Option<bool>) -> bool {
    controller == Some(true)
}

/// An entry of `metadata.ownerReferences`, borrowed from the request.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerRefView<'a> {
    #[serde(borrow, default)]
    pub api_version: BStr<'a>,
    #[serde(borrow, default)]
    pub kind: BStr<'a>,
    #[serde(borrow, default)]
    pub name: BStr<'a>,
    #[serde(borrow, default)]
    pub uid: BStr<'a>,
    #[serde(default)]
    pub controller: Option<bool>,
}

/// The controlling owner, from the raw JSON of `metadata.ownerReferences`.
pub fn controller_owner(owner_references: &str) -> Option<OwnerRefView<'_>> {
    let owners: Vec<OwnerRefView<'_>> = serde_json::from_str(owner_references).ok()?;
    owners.into_iter().find(|o| is_controller(o.controller))
}

/// The command that gets the proxy into a workload's running pods.
pub fn restart_command(kind: &str, name: &str, ns: &str, pods: &[String]) -> String {
    match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" => {
            format!(
                "kubectl rollout restart {}/{name} -n {ns}",
                kind.to_ascii_lowercase()
            )
        }
        "CronJob" => format!(
            "the next run of cronjob {name} gets the proxy; to restart running pods now: kubectl delete pod -n {ns} {}",
            pods.join(" ")
        ),
        "Job" => format!(
            "kubectl delete pod -n {ns} {} (job {name} creates them again while it runs)",
            pods.join(" ")
        ),
        _ => format!(
            "kubectl delete pod -n {ns} {} (and create it again, or let its owner do it)",
            pods.join(" ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_controller_is_the_owner_and_nothing_else_is() {
        let refs = r#"[{"apiVersion":"v1","kind":"Node","name":"n1","uid":"x"},
            {"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-5d9","uid":"u1","controller":true}]"#;
        let o = controller_owner(refs).unwrap();
        assert_eq!(
            (o.kind.as_str(), o.name.as_str()),
            ("ReplicaSet", "web-5d9")
        );
        let no_controller = r#"[{"apiVersion":"v1","kind":"Node","name":"n1","uid":"x"}]"#;
        assert!(controller_owner(no_controller).is_none());
        assert!(controller_owner("not json").is_none());
    }

    #[test]
    fn names_and_templates() {
        assert_eq!(display_name(Some("p"), Some("g-")), "p");
        assert_eq!(display_name(None, Some("g-")), "g-");
        assert_eq!(display_name(Some(""), None), "(unnamed)");
        assert_eq!(
            pod_template_path("CronJob"),
            Some("/spec/jobTemplate/spec/template")
        );
        assert_eq!(pod_template_path("Pod"), Some(""));
        assert_eq!(pod_template_path("Service"), None);
    }
}
