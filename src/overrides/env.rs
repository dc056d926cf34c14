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
    if name.is_empty() || name.contains('=') || name.chars().any(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "env name {} must be printable, without spaces or '='",
            crate::quote::quote(name)
        ));
    }
    if obj
        .get("value")
        .is_some_and(|v| !v.is_string() && !v.is_null())
    {
        return Err(format!("the value of {name} must be a string"));
    }
    if let Some(from) = obj.get("valueFrom").filter(|v| !v.is_null()) {
        let sources = from.as_object().map_or(0, |f| {
            f.iter()
                .filter(|(k, v)| SOURCES.contains(&k.as_str()) && v.is_object())
                .count()
        });
        if sources != 1 || from.as_object().is_some_and(|f| f.len() != 1) {
            return Err(format!(
                "the valueFrom of {name} must name exactly one source"
            ));
        }
        if obj
            .get("value")
            .and_then(|v| v.as_str())
            .is_some_and(|v| !v.is_empty())
        {
            return Err(format!("{name} has both a value and a valueFrom"));
        }
        // The source's own fields are checked by its type.
        serde_json::from_value::<k8s_openapi::api::core::v1::EnvVarSource>(from.clone())
            .map_err(|err| format!("the valueFrom of {name}: {err}"))?;
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
