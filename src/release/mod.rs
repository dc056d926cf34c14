//! The Linkerd release whose pods this injector makes: every release from 2.16 (edge-24.8.2)
//! to edge-26.8.3. What a release changes in the injected pod is data ([`table`]): a list of
//! break points, each the first edge tag with one change. A [`Release`] is chosen once per
//! config (`--linkerd-version`, else the values' `linkerdVersion`, else the newest) and the
//! container builders, the value resolution and the chart reader ask it which changes it has;
//! nothing on the request path compares versions.

mod table;

use std::fmt;

pub use table::{BREAKS, Change, NAMESPACE_KEYS, RELEASES};

/// An edge tag, `edge-YY.M.N`, ordered by date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Edge(pub u8, pub u8, pub u16);

impl Edge {
    /// `edge-24.8.2` (or `24.8.2`) as an edge tag.
    pub fn parse(s: &str) -> Option<Edge> {
        let rest = s.strip_prefix("edge-")?;
        let mut it = rest.split('.');
        let (y, m, n) = (it.next()?, it.next()?, it.next()?);
        if it.next().is_some() {
            return None;
        }
        fn num<T: std::str::FromStr>(t: &str) -> Option<T> {
            (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                .then(|| t.parse().ok())
                .flatten()
        }
        Some(Edge(num(y)?, num(m)?, num(n)?))
    }
}

impl fmt::Display for Edge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "edge-{}.{}.{}", self.0, self.1, self.2)
    }
}

/// The oldest and newest releases supported.
pub const OLDEST: Edge = Edge(24, 8, 2);
pub const NEWEST: Edge = Edge(26, 8, 3);

/// A supported Linkerd release: the edge tag it is (or was cut from) and the name it was
/// given, with the set of [`Change`]s it has.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Release {
    /// The name as given (`edge-25.4.4`, `version-2.18`, `enterprise-2.18.2`).
    pub name: String,
    pub edge: Edge,
    changes: u32,
    /// The annotation keys this release does not read, computed once (the request path asks
    /// [`Release::reads`] for every setting's keys).
    unread: Vec<&'static str>,
    /// The annotation keys a namespace passes on to its pods, computed once.
    passed_on: Vec<&'static str>,
}

impl Default for Release {
    fn default() -> Release {
        Release::from_edge(NEWEST)
    }
}

/// Why a name is not a supported release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotSupported {
    pub name: String,
    /// What the name is, when it names a release outside the range.
    pub is: Option<String>,
}

impl fmt::Display for NotSupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = crate::quote::quote(&self.name);
        match &self.is {
            Some(is) => write!(f, "Linkerd {name} ({is}) is not supported")?,
            None => write!(f, "{name} is not a Linkerd release")?,
        }
        write!(
            f,
            "; supported: Linkerd 2.16 ({OLDEST}) to {NEWEST}, named by an edge tag (edge-25.4.4), \
             version-2.18, stable-2.18.x or enterprise-2.18.x"
        )
    }
}

impl std::error::Error for NotSupported {}

impl Release {
    pub fn from_edge(edge: Edge) -> Release {
        let changes = table::changes_at(edge);
        let has = |c: Change| changes & (1 << c as u32) != 0;
        let unread: Vec<&'static str> = table::ANNOTATIONS
            .iter()
            .filter(|(_, since, until)| !(since.is_none_or(has) && until.is_none_or(|c| !has(c))))
            .map(|(k, _, _)| *k)
            .collect();
        Release {
            name: edge.to_string(),
            edge,
            changes,
            passed_on: passed_on(changes, &unread),
            unread,
        }
    }

    /// The release a name stands for: an edge tag, or `version-2.X`, `stable-2.X[.Y]`,
    /// `enterprise-2.X[.Y]` (the edge tag 2.X was cut from). Outside 2.16…edge-26.8.3, or not
    /// a release name: an error that says the supported range.
    pub fn parse(name: &str) -> Result<Release, NotSupported> {
        let name = name.trim();
        let err = |is: Option<String>| NotSupported {
            name: name.to_owned(),
            is,
        };
        let edge = match Edge::parse(name) {
            Some(e) => e,
            None => {
                let minor = ["version-2.", "stable-2.", "enterprise-2."]
                    .iter()
                    .find_map(|p| name.strip_prefix(p))
                    .and_then(|r| {
                        let mut it = r.splitn(2, '.');
                        let minor = it.next()?;
                        // A patch number (`2`, `x`, `2rc1`), bounded: the name is quoted back.
                        let patch_ok = it.next().is_none_or(|p| {
                            !p.is_empty()
                                && p.len() <= 16
                                && p.bytes().all(|b| b.is_ascii_alphanumeric())
                        });
                        (patch_ok && !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit()))
                            .then(|| minor.parse::<u32>().ok())
                            .flatten()
                    })
                    .ok_or_else(|| err(None))?;
                match RELEASES.iter().find(|(m, _)| *m == minor) {
                    Some((_, e)) => *e,
                    None => return Err(err(Some(format!("Linkerd 2.{minor}")))),
                }
            }
        };
        if edge < OLDEST || edge > NEWEST {
            return Err(err(Some(format!("{edge}, outside the range"))));
        }
        Ok(Release {
            name: name.to_owned(),
            ..Release::from_edge(edge)
        })
    }

    /// Whether the name looks like a release name at all (so a `linkerdVersion` that does
    /// not, such as a development build's, means the newest release rather than an error).
    pub fn is_release_name(name: &str) -> bool {
        let name = name.trim();
        ["edge-", "version-", "stable-", "enterprise-"]
            .iter()
            .any(|p| name.starts_with(p))
    }

    /// Whether this release has `change`.
    pub fn has(&self, change: Change) -> bool {
        self.changes & (1 << change as u32) != 0
    }

    /// The tag of the separate proxy-init image this release runs `linkerd-init` from
    /// (`None`: from the proxy image, edge-25.11.3 and later).
    pub fn proxy_init_version(&self) -> Option<&'static str> {
        if self.has(Change::InitFromProxyImage) {
            None
        } else if self.has(Change::ProxyInit243) {
            Some("v2.4.3")
        } else if self.has(Change::PodUid) {
            Some("v2.4.2")
        } else {
            Some("v2.4.1")
        }
    }

    /// The image tag this release's chart uses for the proxy and debug images when the values
    /// do not name one: the name when it is an edge tag, else the edge tag the release was cut
    /// from (the upstream images of a `version-2.X`).
    pub fn image_version(&self) -> String {
        match Edge::parse(&self.name) {
            Some(_) => self.name.clone(),
            None => self.edge.to_string(),
        }
    }

    /// `2.18 (edge-25.4.4)`, or the edge tag alone for an edge between announced versions.
    pub fn describe(&self) -> String {
        let announced = RELEASES.iter().find(|(_, e)| *e == self.edge);
        match (announced, self.name == self.edge.to_string()) {
            (Some((m, e)), true) => format!("Linkerd 2.{m} ({e})"),
            (Some((m, e)), false) => format!("Linkerd {} (2.{m}, {e})", self.name),
            (None, true) => format!("Linkerd {}", self.edge),
            (None, false) => format!("Linkerd {} ({})", self.name, self.edge),
        }
    }

    /// Whether this release reads the annotation `key` (a key added by a later release, or
    /// removed by an earlier one, is ignored as that release's injector ignores it).
    pub fn reads(&self, key: &str) -> bool {
        !self.unread.contains(&key)
    }

    /// Whether a namespace's annotation `key` applies to its pods in this release (Linkerd's
    /// list of keys a namespace passes on, as it was then).
    pub fn namespace_applies(&self, key: &str) -> bool {
        self.passed_on.contains(&key)
    }

    /// The keys a namespace passes on in this release, in Linkerd's order.
    pub fn namespace_keys(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.passed_on.iter().copied()
    }
}

/// The keys a namespace passes on to its pods in a release: Linkerd's list of the time, of the
/// keys the release reads.
fn passed_on(changes: u32, unread: &[&'static str]) -> Vec<&'static str> {
    let native_default = changes & (1 << Change::NativeDefault as u32) != 0;
    NAMESPACE_KEYS
        .iter()
        .copied()
        // Passed on only while it was the newest native-sidecar key.
        .chain((!native_default).then_some(table::BETA_NATIVE))
        .chain([table::INIT_IMAGE, table::INIT_IMAGE_VERSION])
        .filter(|k| !unread.contains(k))
        .collect()
}

/// README's table of the break points, rendered from [`BREAKS`] (a test keeps README equal
/// to it).
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| from | release | what changes in the injected pod |\n| --- | --- | --- |\n",
    );
    for (edge, _, what) in BREAKS {
        let release = RELEASES
            .iter()
            .filter(|(_, e)| e >= edge)
            .map(|(m, _)| format!("2.{m}"))
            .next()
            .unwrap_or_else(|| "after 2.20".to_owned());
        out.push_str(&format!("| {edge} | {release} | {what} |\n"));
    }
    out
}

/// Whether any supported release passes a namespace's annotation `key` on to its pods.
pub fn ever_passed_on(key: &str) -> bool {
    std::iter::once(OLDEST)
        .chain(BREAKS.iter().map(|(e, _, _)| *e))
        .any(|e| Release::from_edge(e).namespace_applies(key))
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readme_table_is_the_break_points() {
        let readme = include_str!("../../README.md");
        let table = markdown_table();
        assert!(
            readme.contains(&table),
            "README.md's release table differs from the break points; replace it with:\n{table}"
        );
    }

    #[test]
    fn names_map_to_edge_tags() {
        for (name, edge) in [
            ("edge-24.8.2", Edge(24, 8, 2)),
            ("version-2.16", Edge(24, 8, 2)),
            ("stable-2.17.x", Edge(24, 11, 8)),
            ("enterprise-2.18.2", Edge(25, 4, 4)),
            ("version-2.19", Edge(25, 10, 7)),
            ("version-2.20", Edge(26, 6, 3)),
            ("edge-26.8.3", NEWEST),
            (" edge-25.4.4 ", Edge(25, 4, 4)),
        ] {
            assert_eq!(Release::parse(name).unwrap().edge, edge, "{name}");
        }
    }

    #[test]
    fn outside_the_range_or_not_a_release_says_the_range() {
        for bad in [
            "edge-23.1.1",
            "edge-26.9.1",
            "stable-2.14.10",
            "version-2.21",
            "edge-25.4",
            "latest",
            "",
            "edge-25.4.4.1",
            "enterprise-2.18.",
            "enterprise-2.18.12345678901234567",
        ] {
            let e = Release::parse(bad).unwrap_err().to_string();
            assert!(
                e.contains("edge-24.8.2") && e.contains("edge-26.8.3"),
                "{bad}: {e}"
            );
        }
        assert!(
            Release::parse("edge-23.1.1")
                .unwrap_err()
                .to_string()
                .contains("outside")
        );
    }

    #[test]
    fn an_edge_between_break_points_has_the_older_shape() {
        let r = Release::parse("edge-25.2.1").unwrap();
        assert!(r.has(Change::PodUid) && !r.has(Change::Workers));
        let r = Release::parse("edge-25.3.3").unwrap();
        assert!(r.has(Change::Workers) && !r.has(Change::HostnameLabels));
        assert!(Release::default().has(Change::CollectorTrustDomain));
        assert!(
            !Release::parse("version-2.16")
                .unwrap()
                .has(Change::UserTimeouts)
        );
    }

    #[test]
    fn proxy_init_versions_follow_the_chart() {
        let v = |n: &str| Release::parse(n).unwrap().proxy_init_version();
        assert_eq!(v("version-2.16"), Some("v2.4.1"));
        assert_eq!(v("version-2.17"), Some("v2.4.1"));
        assert_eq!(v("version-2.18"), Some("v2.4.2"));
        assert_eq!(v("version-2.19"), Some("v2.4.3"));
        assert_eq!(v("version-2.20"), None);
    }

    #[test]
    fn annotations_are_read_while_the_release_has_them() {
        let r218 = Release::parse("version-2.18").unwrap();
        let newest = Release::default();
        assert!(r218.reads("config.linkerd.io/init-image"));
        assert!(!newest.reads("config.linkerd.io/init-image"));
        assert!(!r218.reads("config.linkerd.io/proxy-additional-env"));
        assert!(!r218.reads("config.beta.linkerd.io/proxy-enable-native-sidecar"));
        assert!(r218.reads("config.alpha.linkerd.io/proxy-enable-native-sidecar"));
        assert!(r218.namespace_applies("config.linkerd.io/init-image"));
        assert!(!newest.namespace_applies("config.beta.linkerd.io/proxy-enable-native-sidecar"));
        let r219 = Release::parse("version-2.19").unwrap();
        assert!(r219.namespace_applies("config.beta.linkerd.io/proxy-enable-native-sidecar"));
        assert!(!r219.namespace_applies("config.linkerd.io/proxy-enable-native-sidecar"));
        let r216 = Release::parse("version-2.16").unwrap();
        assert!(!r216.reads("config.linkerd.io/proxy-cpu-ratio-limit"));
        assert!(!r216.reads("config.linkerd.io/debug-image"));
        assert!(!r216.namespace_applies("config.linkerd.io/proxy-metrics-hostname-labels"));
        // Every key the newest release passes on is one it reads.
        for k in NAMESPACE_KEYS {
            assert!(newest.namespace_applies(k), "{k}");
        }
    }
}
