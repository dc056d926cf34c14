//! Parsers for `config.linkerd.io/*` values. Pure; shared by the config file's validation and
//! the per-workload annotation overrides, so both accept exactly the same values.

use std::net::IpAddr;

use num_bigint::BigUint;

use crate::quote::quote;

/// One item of a port list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortItem {
    /// An inclusive range; a single port is `(p, p)`.
    Range(u16, u16),
    /// A container port's name (opaque ports only), resolved against the pod's ports.
    Name(String),
}

/// A Linkerd port list: comma-separated ports and inclusive ranges, e.g. `25,4000-4010`; the
/// opaque-ports list also takes container port names (`25,mysql`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortList(pub Vec<PortItem>);

impl PortList {
    /// Ports and ranges only (the init container's skip lists).
    pub fn parse(s: &str) -> Result<PortList, String> {
        Self::parse_items(s, false)
    }

    /// Ports, ranges and container port names (opaque ports).
    pub fn parse_named(s: &str) -> Result<PortList, String> {
        Self::parse_items(s, true)
    }

    fn parse_items(s: &str, names: bool) -> Result<PortList, String> {
        let mut out = Vec::new();
        for item in s.split(',') {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            if names && item.bytes().any(|b| b.is_ascii_lowercase()) {
                check_port_name(item)?;
                out.push(PortItem::Name(item.to_owned()));
                continue;
            }
            let (lo, hi) = match item.split_once('-') {
                Some((a, b)) => (parse_port(a.trim())?, parse_port(b.trim())?),
                None => {
                    let p = parse_port(item).map_err(|e| {
                        if names {
                            format!("{e}, a range (4000-4010) or a container port name")
                        } else {
                            e
                        }
                    })?;
                    (p, p)
                }
            };
            if lo > hi {
                return Err(format!(
                    "the port range {} ends before it starts",
                    quote(item)
                ));
            }
            out.push(PortItem::Range(lo, hi));
        }
        Ok(PortList(out))
    }

    /// Whether a number in the list (names are not resolved here) covers `port`.
    pub fn contains(&self, port: u16) -> bool {
        self.0
            .iter()
            .any(|i| matches!(*i, PortItem::Range(lo, hi) if lo <= port && port <= hi))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The list with each name replaced by the port `lookup` gives it; a name it does not know
    /// is left out (as Linkerd does: the pod has no such port to treat as opaque).
    pub fn resolve(&self, lookup: impl Fn(&str) -> Option<u16>) -> PortList {
        PortList(
            self.0
                .iter()
                .filter_map(|i| match i {
                    PortItem::Range(..) => Some(i.clone()),
                    PortItem::Name(n) => lookup(n).map(|p| PortItem::Range(p, p)),
                })
                .collect(),
        )
    }

    /// Canonical text: `a,b-c,name` in the order given.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for (i, item) in self.0.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            match item {
                PortItem::Range(lo, hi) if lo == hi => s.push_str(&lo.to_string()),
                PortItem::Range(lo, hi) => s.push_str(&format!("{lo}-{hi}")),
                PortItem::Name(n) => s.push_str(n),
            }
        }
        s
    }
}

/// A container port name as the API server accepts it (IANA service name): 1-15 characters,
/// lowercase letters, digits and `-`, at least one letter, no `-` at either end or twice in a
/// row.
fn check_port_name(s: &str) -> Result<(), String> {
    let ok = (1..=15).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{} is neither a port, a range (4000-4010) nor a container port name \
             (at most 15 lowercase letters, digits and single '-')",
            quote(s)
        ))
    }
}

/// A single TCP port, 1-65535.
pub fn parse_port(s: &str) -> Result<u16, String> {
    match s.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
        Ok(p) => Err(format!("port {p} is outside 1-65535")),
        Err(_) => Err("not a port number (1-65535)".into()),
    }
}

/// The largest user or group ID the API server accepts.
pub const MAX_ID: i64 = 2_147_483_647;

/// A user or group ID for `runAsUser`/`runAsGroup`: 0 to [`MAX_ID`].
pub fn parse_uid(s: &str) -> Result<i64, String> {
    match s.parse::<i64>() {
        Ok(v) if (0..=MAX_ID).contains(&v) => Ok(v),
        _ => Err(format!(
            "not a user or group ID (a whole number from 0 to {MAX_ID})"
        )),
    }
}

/// A whole number, 0 or more (Go's `strconv.ParseUint`, bounded to what a pod spec holds).
pub fn parse_uint(s: &str) -> Result<i64, String> {
    match s.parse::<u32>() {
        Ok(v) => Ok(v.into()),
        Err(_) => Err("not a whole number (0 to 4294967295)".into()),
    }
}

/// Go's `strconv.ParseBool`, which is what Linkerd accepts.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        "enabled" => Ok(true),
        "disabled" => Ok(false),
        _ => Err("not a boolean (true or false)".into()),
    }
}

/// The longest quantity accepted (the API server's own are short; a longer one is refused
/// rather than parsed).
pub const MAX_QUANTITY_LEN: usize = 64;

/// A quantity's exact value, `digits × 10^exp10 × 2^exp2`: requests and limits are compared
/// exactly, as the API server compares them (never through a float).
#[derive(Debug, Clone)]
pub struct Quantity {
    digits: BigUint,
    exp10: i32,
    exp2: u32,
}

impl Quantity {
    fn scaled(&self, min_exp10: i32) -> BigUint {
        let up = u32::try_from(self.exp10 - min_exp10).unwrap_or(0);
        (&self.digits * BigUint::from(10u8).pow(up)) << self.exp2
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let e = self.exp10.min(other.exp10);
        self.scaled(e).cmp(&other.scaled(e))
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Quantity {}

/// A Kubernetes resource quantity (`100m`, `1.5`, `64Mi`, `1e3`), 0 or more, with its exact
/// value (to compare a request with its limit).
pub fn parse_quantity(s: &str) -> Result<Quantity, String> {
    let bad = || "not a Kubernetes quantity (e.g. 100m, 0.5, 64Mi, 1G)".to_owned();
    if s.len() > MAX_QUANTITY_LEN {
        return Err(format!(
            "longer than {MAX_QUANTITY_LEN} characters; not a Kubernetes quantity"
        ));
    }
    if s.starts_with('-') {
        return Err("negative; a resource quantity must be 0 or more".into());
    }
    let body = s.strip_prefix('+').unwrap_or(s);
    let split = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (num, suffix) = body.split_at(split);
    if num.is_empty() || num == "." || num.matches('.').count() > 1 {
        return Err(bad());
    }
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    let digits = BigUint::parse_bytes(format!("{int}{frac}").as_bytes(), 10).ok_or_else(bad)?;
    let mut exp10 = -i32::try_from(frac.len()).map_err(|_| bad())?;
    let mut exp2 = 0;
    match suffix {
        "" => {}
        "n" => exp10 -= 9,
        "u" => exp10 -= 6,
        "m" => exp10 -= 3,
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        "Ki" => exp2 = 10,
        "Mi" => exp2 = 20,
        "Gi" => exp2 = 30,
        "Ti" => exp2 = 40,
        "Pi" => exp2 = 50,
        "Ei" => exp2 = 60,
        e if e.starts_with(['e', 'E']) => {
            let exp: i32 = e[1..].parse().map_err(|_| bad())?;
            if !(-30..=30).contains(&exp) {
                return Err(bad());
            }
            exp10 += exp;
        }
        _ => return Err(bad()),
    }
    Ok(Quantity {
        digits,
        exp10,
        exp2,
    })
}

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
        Some(f) if f.is_empty() => bad("empty field braces"),
        Some(f) if f.contains(['{', '}', '[', ']']) => bad("a bracket inside the fields"),
        None if name.is_empty() => bad("'[]' names no span"),
        _ => Ok(()),
    }
}

pub fn parse_log_format(s: &str) -> Result<(), String> {
    match s {
        "plain" | "json" => Ok(()),
        _ => Err("not a log format (plain or json)".into()),
    }
}

pub fn parse_pull_policy(s: &str) -> Result<(), String> {
    match s {
        "Always" | "IfNotPresent" | "Never" => Ok(()),
        _ => Err("not an image pull policy (Always, IfNotPresent or Never)".into()),
    }
}

pub fn parse_inbound_policy(s: &str) -> Result<(), String> {
    match s {
        "all-unauthenticated"
        | "all-authenticated"
        | "cluster-unauthenticated"
        | "cluster-authenticated"
        | "deny"
        | "audit" => Ok(()),
        _ => Err(
            "not an inbound policy (all-unauthenticated, all-authenticated, \
                  cluster-unauthenticated, cluster-authenticated, deny, audit)"
                .into(),
        ),
    }
}

pub fn parse_access_log(s: &str) -> Result<(), String> {
    match s {
        "apache" | "json" => Ok(()),
        _ => Err("not an access log format (apache or json)".into()),
    }
}

/// A Go duration (`30s`, `1m30s`, `500ms`), which is what the proxy reads.
pub fn parse_duration(s: &str) -> Result<(), String> {
    let bad = || "not a duration (e.g. 30s, 1m30s, 500ms)".to_owned();
    if s == "0" {
        return Ok(());
    }
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if n == 0 {
            return Err(bad());
        }
        rest = &rest[n..];
        let unit = ["ns", "us", "µs", "ms", "s", "m", "h"]
            .iter()
            .filter(|u| rest.starts_with(**u))
            .max_by_key(|u| u.len())
            .ok_or_else(bad)?;
        rest = &rest[unit.len()..];
    }
    Ok(())
}

/// A comma-separated list of CIDRs.
pub fn parse_subnets(s: &str) -> Result<(), String> {
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (ip, len) = item.split_once('/').ok_or_else(|| {
            format!(
                "{} is not a CIDR (address/prefix, e.g. 10.0.0.0/8)",
                quote(item)
            )
        })?;
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| format!("{} has an invalid address", quote(item)))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        match len.parse::<u8>() {
            Ok(l) if l <= max => {}
            _ => return Err(format!("{} has an invalid prefix length", quote(item))),
        }
    }
    Ok(())
}

/// An image reference without tag (`registry/repo`): no whitespace, not empty.
pub fn parse_image(s: &str) -> Result<(), String> {
    if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err("not an image name (no spaces or control characters)".into())
    } else {
        Ok(())
    }
}

/// An image tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn parse_tag(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && !s.starts_with(['.', '-'])
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err("not an image tag ([A-Za-z0-9_][A-Za-z0-9_.-], at most 128 characters)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_ranges() {
        let l = PortList::parse("25, 4000-4010,3306").unwrap();
        assert!(l.contains(4005) && l.contains(25) && !l.contains(26));
        assert_eq!(l.render(), "25,4000-4010,3306");
        assert!(PortList::parse("0").is_err());
        assert!(PortList::parse("70000").is_err());
        assert!(PortList::parse("10-5").is_err());
        assert!(PortList::parse("http").is_err());
        let named = PortList::parse_named("3000, 5000-6000,mysql").unwrap();
        assert_eq!(named.render(), "3000,5000-6000,mysql");
        let resolved = named.resolve(|n| (n == "mysql").then_some(3306));
        assert_eq!(resolved.render(), "3000,5000-6000,3306");
        assert_eq!(
            PortList::parse_named("grpc,80").unwrap().resolve(|_| None).render(),
            "80"
        );
        for bad in ["MySQL", "my_sql", "-web", "web-", "a--b", "toolongportname1", "x.y", "80 x"] {
            assert!(PortList::parse_named(bad).is_err(), "{bad}");
        }
        PortList::parse_named("web-2,h2c").unwrap();
        assert!(PortList::parse("").unwrap().is_empty());
    }

    #[test]
    fn quantities() {
        let q = |s: &str| parse_quantity(s).unwrap();
        // Equal values written differently.
        for (a, b) in [
            ("100m", "0.1"),
            ("64Mi", "67108864"),
            ("1e3", "1k"),
            ("1.5", "1500m"),
            ("1Ki", "1024"),
            ("+2", "2.000"),
            (".5", "500m"),
            ("5.", "5"),
            ("1E-3", "1m"),
        ] {
            assert_eq!(q(a), q(b), "{a} = {b}");
        }
        // Exact, where a float is not: these differ in the 18th digit or past 2^53.
        assert!(q("1.00000000000000001") > q("1"));
        assert!(q("9007199254740993") > q("9007199254740992"));
        assert!(q("1Ei") > q("1E"));
        assert!(q("999m") < q("1"));
        for bad in ["", "abc", "1.2.3", "10 m", "5Xi", "-1", "1e", "m", "1e31"] {
            assert!(parse_quantity(bad).is_err(), "{bad}");
        }
        assert!(parse_quantity(&"9".repeat(MAX_QUANTITY_LEN + 1)).is_err());
    }

    #[test]
    fn ids_stay_in_the_api_servers_range() {
        assert_eq!(parse_uid("2147483647"), Ok(MAX_ID));
        assert!(parse_uid("2147483648").is_err());
        assert!(parse_uid("-1").is_err());
    }

    #[test]
    fn errors_never_quote_the_whole_value() {
        let hostile = "\u{7f}".repeat(100_000);
        for e in [
            parse_quantity(&hostile).unwrap_err(),
            parse_log_level(&hostile).unwrap_err(),
            parse_subnets(&hostile).unwrap_err(),
            parse_image(&hostile).unwrap_err(),
            parse_duration(&hostile).unwrap_err(),
            PortList::parse(&format!("9-{hostile}")).unwrap_err(),
        ] {
            assert!(e.len() < 500, "{} bytes: {}", e.len(), &e[..100]);
        }
    }

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

    #[test]
    fn durations() {
        for ok in ["30s", "1m30s", "500ms", "0", "1.5h"] {
            parse_duration(ok).unwrap();
        }
        for bad in ["", "30", "s", "3 s", "1d", "-5s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn misc() {
        assert!(parse_bool("true").unwrap());
        assert!(!parse_bool("0").unwrap());
        assert!(parse_bool("yes").is_err());
        assert!(parse_uid("-1").is_err());
        assert_eq!(parse_uid("2102").unwrap(), 2102);
        parse_subnets("10.0.0.0/8, fd00::/8").unwrap();
        assert!(parse_subnets("10.0.0.0/33").is_err());
        assert!(parse_subnets("10.0.0.0").is_err());
        assert!(parse_tag("v1.2.3").is_ok() && parse_tag("a b").is_err());
    }
}
