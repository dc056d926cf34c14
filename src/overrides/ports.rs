//! Port lists: the init container's skip lists (ports and ranges) and opaque ports (which also
//! name container ports).

use super::parse_port;
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
            PortList::parse_named("grpc,80")
                .unwrap()
                .resolve(|_| None)
                .render(),
            "80"
        );
        for bad in [
            "MySQL",
            "my_sql",
            "-web",
            "web-",
            "a--b",
            "toolongportname1",
            "x.y",
            "80 x",
        ] {
            assert!(PortList::parse_named(bad).is_err(), "{bad}");
        }
        PortList::parse_named("web-2,h2c").unwrap();
        assert!(PortList::parse("").unwrap().is_empty());
    }
}
