//! Parsers for `config.linkerd.io/*` values. Pure; shared by the config file's validation and
//! the per-workload annotation overrides, so both accept exactly the same values.

use std::net::IpAddr;

use num_bigint::BigUint;

mod env;

pub use env::{check_env, check_env_list, merge_env, parse_env_list};

use crate::quote::quote;

pub mod go;
mod log_filter;
mod ports;

pub use log_filter::parse_log_level;
pub use ports::{PortItem, PortList};

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

/// Go's `strconv.ParseBool`, which is what Linkerd accepts, and also `enabled`/`disabled`.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "enabled" => Ok(true),
        "disabled" => Ok(false),
        _ => parse_go_bool(s),
    }
}

/// Go's `strconv.ParseBool` only.
pub fn parse_go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err("not a boolean (true or false)".into()),
    }
}

/// `enabled` or `disabled` only (Linkerd's switches, e.g. `proxy-admin-shutdown`).
pub fn parse_switch(s: &str) -> Result<bool, String> {
    match s {
        "enabled" => Ok(true),
        "disabled" => Ok(false),
        _ => Err("not enabled or disabled".into()),
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

    /// The product, exactly.
    pub fn times(&self, other: &Quantity) -> Quantity {
        Quantity {
            digits: &self.digits * &other.digits,
            exp10: self.exp10 + other.exp10,
            exp2: self.exp2 + other.exp2,
        }
    }

    /// The value rounded up to a whole number, if it fits an i64 (Kubernetes' `RoundUp(0)`
    /// then `AsInt64`): `100m` is 1, `1.5` is 2.
    pub fn ceil_i64(&self) -> Option<i64> {
        let n = if self.exp10 >= 0 {
            self.scaled(0)
        } else {
            let num = &self.digits << self.exp2;
            let den = BigUint::from(10u8).pow(self.exp10.unsigned_abs());
            (num + &den - 1u8) / den
        };
        i64::try_from(n).ok()
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

/// Whether the proxy may log HTTP headers: `off` (or empty) or `insecure`.
pub fn parse_log_http_headers(s: &str) -> Result<(), String> {
    match s {
        "off" | "insecure" | "" => Ok(()),
        _ => Err("must be off or insecure".into()),
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

/// A Go duration (`30s`, `1m30s`, `500ms`), which is what Linkerd reads; 0 or more.
pub fn parse_duration(s: &str) -> Result<(), String> {
    go::duration_nanos(s).map(|_| ())
}

/// A Go duration or nothing (a chart value the template writes even when empty).
pub fn parse_duration_or_empty(s: &str) -> Result<(), String> {
    if s.is_empty() {
        Ok(())
    } else {
        parse_duration(s)
    }
}

/// A port list kept as written (`8080,9000-9010`), for a value Linkerd hands to the proxy as is.
pub fn parse_port_list(s: &str) -> Result<(), String> {
    PortList::parse(s).map(|_| ())
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
        // Whole numbers as Kubernetes rounds them up.
        for (s, n) in [
            ("100m", Some(1)),
            ("1500m", Some(2)),
            ("2", Some(2)),
            ("0", Some(0)),
            ("1Ki", Some(1024)),
            ("0.1Ki", Some(103)),
            ("1e3", Some(1000)),
            ("1n", Some(1)),
            ("9223372036854775807", Some(i64::MAX)),
            ("9223372036854775808", None),
            ("1e30", None),
        ] {
            assert_eq!(q(s).ceil_i64(), n, "{s}");
        }
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
