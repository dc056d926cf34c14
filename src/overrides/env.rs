//! Env entries given by the user (`config.linkerd.io/proxy-additional-env`,
//! `proxy.additionalEnv`): checked as the API server checks a container's env, and merged by
//! name as Linkerd merges them.

/// A list of Kubernetes `EnvVar` objects as JSON (`config.linkerd.io/proxy-additional-env`,
/// `proxy.additionalEnv`), checked as the API server will check them in a container: a name
/// without `=` or control characters, and either a `value` or one `valueFrom` source. Empty:
/// no entries.
pub fn parse_env_list(raw: &str) -> Result<Vec<serde_json::Value>, String> {
    if raw.trim().is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<serde_json::Value> = serde_json::from_str(raw).map_err(|e| {
        format!("expected a JSON list of env entries ({{\"name\":..,\"value\":..}}): {e}")
    })?;
    for e in &list {
        check_env(e)?;
    }
    Ok(list)
}

/// [`parse_env_list`] as a check.
pub fn check_env_list(raw: &str) -> Result<(), String> {
    parse_env_list(raw).map(|_| ())
}

/// One env entry, as [`parse_env_list`] checks it.
pub fn check_env(e: &serde_json::Value) -> Result<(), String> {
    const SOURCES: [&str; 5] = [
        "fieldRef",
        "resourceFieldRef",
        "configMapKeyRef",
        "secretKeyRef",
        "fileKeyRef",
    ];
    let obj = e
        .as_object()
        .ok_or("each entry must be an object with a name")?;
    if let Some(k) = obj
        .keys()
        .find(|k| !["name", "value", "valueFrom"].contains(&k.as_str()))
    {
        return Err(format!(
            "an env entry has no field {}",
            crate::quote::quote(k)
        ));
    }
    let name = obj.get("name").and_then(|n| n.as_str()).unwrap_or("");
    // Every text quoted back is bounded (the entry is the user's).
    let q = crate::quote::quote(name);
    if name.is_empty() || name.contains('=') || name.chars().any(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "env name {q} must be printable, without spaces or '='"
        ));
    }
    if obj
        .get("value")
        .is_some_and(|v| !v.is_string() && !v.is_null())
    {
        return Err(format!("the value of {q} must be a string"));
    }
    if let Some(from) = obj.get("valueFrom").filter(|v| !v.is_null()) {
        let sources = from.as_object().map_or(0, |f| {
            f.iter()
                .filter(|(k, v)| SOURCES.contains(&k.as_str()) && v.is_object())
                .count()
        });
        if sources != 1 || from.as_object().is_some_and(|f| f.len() != 1) {
            return Err(format!("the valueFrom of {q} must name exactly one source"));
        }
        if obj
            .get("value")
            .and_then(|v| v.as_str())
            .is_some_and(|v| !v.is_empty())
        {
            return Err(format!("{q} has both a value and a valueFrom"));
        }
        // The source's own fields are checked by its type, then as the API server checks them.
        let source =
            serde_json::from_value::<k8s_openapi::api::core::v1::EnvVarSource>(from.clone())
                .map_err(|err| {
                    format!(
                        "the valueFrom of {q}: {}",
                        crate::quote::quote(&err.to_string())
                    )
                })?;
        check_source(&source).map_err(|why| format!("the valueFrom of {q}: {why}"))?;
    }
    Ok(())
}

/// The pod fields an env entry may take (`fieldRef.fieldPath`), as the API server allows them
/// in a container's env (labels and annotations by key apart).
const FIELD_PATHS: [&str; 9] = [
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// The resources an env entry may take (`resourceFieldRef.resource`).
const RESOURCES: [&str; 6] = [
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
];

/// A `valueFrom` source as the API server checks it: a supported field path or resource, a
/// key for a ConfigMap or Secret. (What it names need not exist yet.)
fn check_source(s: &k8s_openapi::api::core::v1::EnvVarSource) -> Result<(), String> {
    if let Some(f) = &s.field_ref {
        let p = f.field_path.as_str();
        let by_key = ["metadata.labels['", "metadata.annotations['"]
            .iter()
            .any(|pre| p.starts_with(pre) && p.ends_with("']") && p.len() > pre.len() + 2);
        if !FIELD_PATHS.contains(&p) && !by_key {
            return Err(format!(
                "fieldRef.fieldPath {} is not one a container's env may take",
                crate::quote::quote(p)
            ));
        }
    }
    if let Some(r) = &s.resource_field_ref
        && !RESOURCES.contains(&r.resource.as_str())
    {
        return Err(format!(
            "resourceFieldRef.resource {} is not one of {}",
            crate::quote::quote(&r.resource),
            RESOURCES.join(", ")
        ));
    }
    let keyed = [
        s.config_map_key_ref.as_ref().map(|r| r.key.as_str()),
        s.secret_key_ref.as_ref().map(|r| r.key.as_str()),
    ];
    if keyed.into_iter().flatten().any(str::is_empty) {
        return Err("a configMapKeyRef or secretKeyRef needs a key".into());
    }
    Ok(())
}

/// `src`'s entries replace `dst`'s of the same name, the others are appended (Linkerd's
/// merge of the values', the namespace's and the pod's additional env).
pub fn merge_env(dst: &mut Vec<serde_json::Value>, src: Vec<serde_json::Value>) {
    for e in src {
        match dst.iter_mut().find(|d| d["name"] == e["name"]) {
            Some(d) => *d = e,
            None => dst.push(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_checked_as_the_api_server_checks_them() {
        parse_env_list(
            r#"[{"name":"A","value":"1"},{"name":"N","valueFrom":{"fieldRef":{"fieldPath":"spec.nodeName"}}},
               {"name":"L","valueFrom":{"fieldRef":{"fieldPath":"metadata.labels['app']"}}},
               {"name":"C","valueFrom":{"resourceFieldRef":{"resource":"limits.cpu"}}},
               {"name":"S","valueFrom":{"secretKeyRef":{"name":"s","key":"k"}}}]"#,
        )
        .unwrap();
        for bad in [
            r#"[{"name":"A","value":"1","valueFrom":{"fieldRef":{"fieldPath":"spec.nodeName"}}}]"#,
            r#"[{"name":"F","valueFrom":{"fieldRef":{"fieldPath":"spec.containers"}}}]"#,
            r#"[{"name":"R","valueFrom":{"resourceFieldRef":{"resource":"limits.gpu"}}}]"#,
            r#"[{"name":"K","valueFrom":{"configMapKeyRef":{"name":"c","key":""}}}]"#,
            r#"[{"name":"A=B","value":"1"}]"#,
            r#"[{"name":"A","value":1}]"#,
        ] {
            assert!(parse_env_list(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn what_is_quoted_back_is_bounded() {
        let long = "X".repeat(100_000);
        for raw in [
            format!(r#"[{{"name":"{long}","value":1}}]"#),
            format!(r#"[{{"name":"A","{long}":1}}]"#),
            format!(r#"[{{"name":"A","valueFrom":{{"fieldRef":{{"fieldPath":1}},"{long}":1}}}}]"#),
            format!(r#"[{{"name":"A","valueFrom":{{"fieldRef":{{"fieldPath":"{long}"}}}}}}]"#),
        ] {
            let e = parse_env_list(&raw).unwrap_err();
            assert!(e.len() < 600, "{} bytes", e.len());
        }
    }
}
