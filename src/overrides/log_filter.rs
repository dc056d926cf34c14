//! The proxy's log filter, checked as the proxy's `tracing` env filter reads it.

use crate::quote::quote;

/// The proxy's log filter (`LINKERD2_PROXY_LOG`, a `tracing` env filter): comma-separated
/// directives, each a bare level, or `target[span{field}]=level` where the target (`linkerd`,
/// `linkerd::app`), the span (`[name]`, `[{field}]`, `[name{field=value}]`) and the level may
/// be left out (though not all three). A bare word that is not a level is refused: the proxy
/// would read it as a target at `trace`, which is almost always a misspelt level.
pub fn parse_log_level(s: &str) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err("the log level is empty".into());
    }
    let mut any = false;
    for d in s.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        any = true;
        parse_log_directive(d)?;
    }
    if any {
        Ok(())
    } else {
        Err("the log level has no directive, only commas".into())
    }
}

const LOG_LEVELS: &str = "trace, debug, info, warn, error, off";

fn is_log_level(s: &str) -> bool {
    matches!(
        s.to_ascii_lowercase().as_str(),
        "trace" | "debug" | "info" | "warn" | "error" | "off" | "0" | "1" | "2" | "3" | "4" | "5"
    )
}

/// One directive of the filter (see [`parse_log_level`]).
fn parse_log_directive(d: &str) -> Result<(), String> {
    if is_log_level(d) {
        return Ok(());
    }
    let (selector, level) = match d.rfind(['=', ']']) {
        // `=` after the span (or with no span): the level follows it.
        Some(at) if d.as_bytes()[at] == b'=' && !d[at..].contains(']') => {
            (&d[..at], Some(&d[at + 1..]))
        }
        _ => (d, None),
    };
    let (target, span) = match selector.split_once('[') {
        Some((t, rest)) => match rest.strip_suffix(']') {
            Some(span) => (t, Some(span)),
            None => {
                return Err(format!(
                    "{} opens a span with '[' but does not end it with ']' before '='",
                    quote(d)
                ));
            }
        },
        None => (selector, None),
    };
    if target.is_empty() && span.is_none() {
        return Err(format!("{} has nothing before '='", quote(d)));
    }
    let target_ok = !target.starts_with('.')
        && target
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | ':' | '-' | '.'));
    if !target_ok {
        return Err(format!(
            "{} has an invalid target (letters, digits, '_', '-', '.' and '::' only)",
            quote(d)
        ));
    }
    if let Some(span) = span {
        check_log_span(d, span)?;
    }
    match level {
        Some(l) if is_log_level(l) => Ok(()),
        Some(_) => Err(format!(
            "{} does not end in a level after '=' (one of {LOG_LEVELS})",
            quote(d)
        )),
        None if span.is_some() => Ok(()),
        None => Err(format!(
            "{} is neither a level ({LOG_LEVELS}) nor a `target=level` directive",
            quote(d)
        )),
    }
}

/// The inside of a directive's `[...]`: a span name, then optionally `{field}` or
/// `{field=value}`.
fn check_log_span(d: &str, span: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("{} has an invalid span: {why}", quote(d)));
    let (name, fields) = match span.split_once('{') {
        Some((name, rest)) => match rest.strip_suffix('}') {
            Some(f) => (name, Some(f)),
            None => return bad("'{' without a closing '}' at the end of the span"),
        },
        None => (span, None),
    };
    if name.contains([']', '[', '}']) {
        return bad("a bracket in the span name");
    }
    match fields {
        Some("") => bad("empty field braces"),
        Some(f) if f.contains(['{', '}', '[', ']']) => bad("a bracket inside the fields"),
        None if name.is_empty() => bad("'[]' names no span"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels() {
        for ok in [
            "warn,linkerd=info,hickory=error",
            "debug",
            "WARN",
            "linkerd[name=\"inbound\"]=trace,linkerd=info",
            "linkerd::app::inbound=debug",
            "linkerd_proxy_http[{request}]=off",
            "[{headers}]=off,[{request}]=off",
            "linkerd[inbound{port=8080}]=debug",
            "linkerd[outbound]",
            "tower-h2=4,warn",
            "warn,,linkerd=info",
        ] {
            parse_log_level(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "loud",
            "linkerd=loud",
            "",
            " , ",
            "linkerd=",
            "linkerd[inbound=debug",
            "linkerd[]=info",
            "linkerd[a{}]=info",
            "linkerd[a{b]=info",
            "lin kerd=info",
            "linkerd=info=debug",
            "linkerd[x]y=info",
            "=info",
        ] {
            assert!(parse_log_level(bad).is_err(), "{bad:?}");
        }
    }
}
