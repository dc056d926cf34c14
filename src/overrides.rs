//! Parsers for `config.linkerd.io/*` values. Pure; shared by the config file's validation and
//! the per-workload annotation overrides, so both accept exactly the same values.

use std::net::IpAddr;

/// A Linkerd port list: comma-separated ports and inclusive ranges, e.g. `25,4000-4010`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortList(pub Vec<(u16, u16)>);

impl PortList {
    pub fn parse(s: &str) -> Result<PortList, String> {
        let mut out = Vec::new();
        for item in s.split(',') {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let (lo, hi) = match item.split_once('-') {
                Some((a, b)) => (parse_port(a.trim())?, parse_port(b.trim())?),
                None => {
                    let p = parse_port(item)?;
                    (p, p)
                }
            };
            if lo > hi {
                return Err(format!("port range {item} ends before it starts"));
            }
            out.push((lo, hi));
        }
        Ok(PortList(out))
    }

    pub fn contains(&self, port: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| lo <= port && port <= hi)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Canonical text: `a,b-c` in the order given.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for (i, &(lo, hi)) in self.0.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            if lo == hi {
                s.push_str(&lo.to_string());
            } else {
                s.push_str(&format!("{lo}-{hi}"));
            }
        }
        s
    }
}

/// A single TCP port, 1-65535.
pub fn parse_port(s: &str) -> Result<u16, String> {
    match s.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
        Ok(p) => Err(format!("port {p} is outside 1-65535")),
        Err(_) => Err(format!("{s:?} is not a port number (1-65535)")),
    }
}

/// A user or group ID for `runAsUser`/`runAsGroup`: a non-negative integer.
pub fn parse_uid(s: &str) -> Result<i64, String> {
    match s.parse::<i64>() {
        Ok(v) if v >= 0 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a user or group ID (a whole number, 0 or more)"
        )),
    }
}

/// A whole number, 0 or more (Go's `strconv.ParseUint`, bounded to what a pod spec holds).
pub fn parse_uint(s: &str) -> Result<i64, String> {
    match s.parse::<u32>() {
        Ok(v) => Ok(v.into()),
        Err(_) => Err(format!("{s:?} is not a whole number (0 to 4294967295)")),
    }
}

/// Go's `strconv.ParseBool`, which is what Linkerd accepts.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        "enabled" => Ok(true),
        "disabled" => Ok(false),
        _ => Err(format!("{s:?} is not a boolean (true or false)")),
    }
}

/// A Kubernetes resource quantity (`100m`, `1.5`, `64Mi`, `1e3`). Returns its value in base
/// units, used to compare a request with its limit.
pub fn parse_quantity(s: &str) -> Result<f64, String> {
    let bad = || format!("{s:?} is not a Kubernetes quantity (e.g. 100m, 0.5, 64Mi, 1G)");
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    if s.starts_with('-') {
        return Err(format!(
            "{s:?} is negative; a resource quantity must be 0 or more"
        ));
    }
    let split = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (num, suffix) = body.split_at(split);
    if num.is_empty() || num == "." || num.matches('.').count() > 1 {
        return Err(bad());
    }
    let n: f64 = num.parse().map_err(|_| bad())?;
    let mult = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) => {
            let exp: i32 = e[1..].parse().map_err(|_| bad())?;
            if !(-30..=30).contains(&exp) {
                return Err(bad());
            }
            10f64.powi(exp)
        }
        _ => return Err(bad()),
    };
    Ok(n * mult)
}

/// The proxy's log filter: comma-separated `level` or `target=level` directives.
pub fn parse_log_level(s: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    if s.trim().is_empty() {
        return Err("the log level is empty".into());
    }
    for d in s.split(',') {
        let d = d.trim();
        let level = match d.split_once('=') {
            Some((target, level)) => {
                if target.is_empty()
                    || !target
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                {
                    return Err(format!("{d:?} has an invalid target before '='"));
                }
                level
            }
            None => d,
        };
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "{d:?} is not a log directive (level one of trace, debug, info, warn, error, off)"
            ));
        }
    }
    Ok(())
}

pub fn parse_log_format(s: &str) -> Result<(), String> {
    match s {
        "plain" | "json" => Ok(()),
        _ => Err(format!("{s:?} is not a log format (plain or json)")),
    }
}

pub fn parse_pull_policy(s: &str) -> Result<(), String> {
    match s {
        "Always" | "IfNotPresent" | "Never" => Ok(()),
        _ => Err(format!(
            "{s:?} is not an image pull policy (Always, IfNotPresent or Never)"
        )),
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
        _ => Err(format!(
            "{s:?} is not an inbound policy (all-unauthenticated, all-authenticated, \
             cluster-unauthenticated, cluster-authenticated, deny, audit)"
        )),
    }
}

pub fn parse_access_log(s: &str) -> Result<(), String> {
    match s {
        "apache" | "json" => Ok(()),
        _ => Err(format!(
            "{s:?} is not an access log format (apache or json)"
        )),
    }
}

/// A Go duration (`30s`, `1m30s`, `500ms`), which is what the proxy reads.
pub fn parse_duration(s: &str) -> Result<(), String> {
    let bad = || format!("{s:?} is not a duration (e.g. 30s, 1m30s, 500ms)");
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
        let (ip, len) = item
            .split_once('/')
            .ok_or_else(|| format!("{item:?} is not a CIDR (address/prefix, e.g. 10.0.0.0/8)"))?;
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| format!("{item:?} has an invalid address"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        match len.parse::<u8>() {
            Ok(l) if l <= max => {}
            _ => return Err(format!("{item:?} has an invalid prefix length")),
        }
    }
    Ok(())
}

/// An image reference without tag (`registry/repo`): no whitespace, not empty.
pub fn parse_image(s: &str) -> Result<(), String> {
    if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err(format!("{s:?} is not an image name"))
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
        Err(format!("{s:?} is not an image tag"))
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
        assert!(PortList::parse("").unwrap().is_empty());
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("100m").unwrap(), 0.1);
        assert_eq!(parse_quantity("64Mi").unwrap(), 64.0 * 1024.0 * 1024.0);
        assert_eq!(parse_quantity("1e3").unwrap(), 1000.0);
        assert_eq!(parse_quantity("1.5").unwrap(), 1.5);
        for bad in ["", "abc", "1.2.3", "10 m", "5Xi", "-1", "1e", "m"] {
            assert!(parse_quantity(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn log_levels() {
        parse_log_level("warn,linkerd=info,hickory=error").unwrap();
        parse_log_level("debug").unwrap();
        assert!(parse_log_level("loud").is_err());
        assert!(parse_log_level("linkerd=loud").is_err());
        assert!(parse_log_level("").is_err());
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
