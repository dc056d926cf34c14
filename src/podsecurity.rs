//! The Pod Security Standards checks that the containers injection adds can fail, as the API
//! server's PodSecurity admission applies them after the mutating webhooks: a namespace's
//! `pod-security.kubernetes.io/enforce` level refuses a pod any of whose containers fails one.
//! Pure: the caller gives the namespace's labels and the added containers' security contexts.
//!
//! Only the container-level checks are here: injection adds containers and emptyDir, projected
//! and downwardAPI volumes (allowed at every level), and changes nothing at the pod level. A
//! check that reads the pod level too (runAsNonRoot, seccompProfile) is judged only on a
//! container that sets the field itself; the one container injection adds without a security
//! context (the debug sidecar) fails `restricted` on allowPrivilegeEscalation and capabilities
//! whatever the pod says.

use std::fmt;

use k8s_openapi::api::core::v1::SecurityContext;

pub const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";
pub const ENFORCE_VERSION_LABEL: &str = "pod-security.kubernetes.io/enforce-version";

/// A Pod Security Standards level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

/// What a namespace enforces: its level, and the minor version of the standards (`None`:
/// latest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enforced {
    pub level: Level,
    pub minor: Option<u32>,
}

impl Enforced {
    /// From a namespace's labels (`label(key)`); `None` when it enforces nothing stricter than
    /// `privileged`. An enforce value PodSecurity does not know is enforced as `restricted`,
    /// an unknown version as the latest, as PodSecurity does.
    pub fn from_labels<'a>(label: impl Fn(&str) -> Option<&'a str>) -> Option<Enforced> {
        let level = match label(ENFORCE_LABEL)? {
            "privileged" => return None,
            "baseline" => Level::Baseline,
            _ => Level::Restricted,
        };
        let minor = label(ENFORCE_VERSION_LABEL)
            .and_then(|v| v.strip_prefix("v1."))
            .and_then(|m| m.parse().ok());
        Some(Enforced { level, minor })
    }

    fn at_least(&self, minor: u32) -> bool {
        self.minor.is_none_or(|m| m >= minor)
    }
}

impl fmt::Display for Enforced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.minor {
            None => write!(f, "{}:latest", self.level.as_str()),
            Some(m) => write!(f, "{}:v1.{m}", self.level.as_str()),
        }
    }
}

/// A check of the standards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// baseline: `privileged` must not be true.
    Privileged,
    /// baseline: capabilities may add only the default set.
    Capabilities,
    /// baseline: no host ports.
    HostPorts,
    /// baseline: seccompProfile must not be Unconfined.
    SeccompUnconfined,
    /// restricted: allowPrivilegeEscalation must be false.
    AllowPrivilegeEscalation,
    /// restricted: capabilities must drop ALL and add at most NET_BIND_SERVICE.
    RestrictedCapabilities,
    /// restricted: runAsNonRoot must not be false (nor unset, unless the pod sets it).
    RunAsNonRoot,
    /// restricted (v1.23+): runAsUser must not be 0.
    RunAsUser,
    /// restricted: seccompProfile must be RuntimeDefault or Localhost.
    Seccomp,
}

impl Check {
    /// PodSecurity's name for it, as its refusals say.
    pub fn name(self) -> &'static str {
        match self {
            Check::Privileged => "privileged",
            Check::Capabilities => "non-default capabilities",
            Check::HostPorts => "hostPort",
            Check::SeccompUnconfined | Check::Seccomp => "seccompProfile",
            Check::AllowPrivilegeEscalation => "allowPrivilegeEscalation != false",
            Check::RestrictedCapabilities => "unrestricted capabilities",
            Check::RunAsNonRoot => "runAsNonRoot != true",
            Check::RunAsUser => "runAsUser=0",
        }
    }
}

/// Capabilities a `baseline` container may add.
pub const BASELINE_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// One failed check of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub check: Check,
    pub container: String,
    /// What the container must (not) do, in PodSecurity's words.
    pub must: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (container {:?} {})",
            self.check.name(),
            self.container,
            self.must
        )
    }
}

/// A container injection adds: its name, security context and host ports.
pub struct Added<'a> {
    pub name: &'a str,
    pub security: Option<&'a SecurityContext>,
    pub host_ports: &'a [i32],
}

fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|c| format!("{c:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The checks of `enforced` that `containers` fail, in the order of the standards.
pub fn check(enforced: Enforced, containers: &[Added<'_>]) -> Vec<Violation> {
    let mut out = Vec::new();
    let restricted = enforced.level == Level::Restricted;
    for c in containers {
        let mut fail = |check: Check, must: String| {
            out.push(Violation {
                check,
                container: c.name.to_owned(),
                must,
            })
        };
        let sc = c.security;
        let caps = sc.and_then(|s| s.capabilities.as_ref());
        let added: Vec<&str> = caps
            .and_then(|c| c.add.as_ref())
            .map(|a| a.iter().map(String::as_str).collect())
            .unwrap_or_default();
        let dropped = |cap: &str| {
            caps.and_then(|c| c.drop.as_ref())
                .is_some_and(|d| d.iter().any(|x| x == cap))
        };
        let seccomp = sc
            .and_then(|s| s.seccomp_profile.as_ref())
            .map(|p| p.type_.as_str());

        if sc.and_then(|s| s.privileged) == Some(true) {
            fail(
                Check::Privileged,
                "must not set securityContext.privileged=true".into(),
            );
        }
        let not_default: Vec<&str> = added
            .iter()
            .copied()
            .filter(|a| !BASELINE_CAPABILITIES.contains(a))
            .collect();
        // At restricted (v1.22+) the restricted capabilities check replaces this one, as
        // PodSecurity's own override does.
        let replaced = restricted && enforced.at_least(22);
        if !not_default.is_empty() && !replaced {
            fail(
                Check::Capabilities,
                format!(
                    "must not include {} in securityContext.capabilities.add",
                    quoted_list(&not_default)
                ),
            );
        }
        let host: Vec<String> = c
            .host_ports
            .iter()
            .filter(|p| **p != 0)
            .map(i32::to_string)
            .collect();
        if !host.is_empty() {
            fail(
                Check::HostPorts,
                format!("uses hostPort {}", host.join(", ")),
            );
        }
        if seccomp == Some("Unconfined") {
            fail(
                Check::SeccompUnconfined,
                "must not set securityContext.seccompProfile.type to \"Unconfined\"".into(),
            );
        }
        if !restricted {
            continue;
        }
        if sc.and_then(|s| s.allow_privilege_escalation) != Some(false) {
            fail(
                Check::AllowPrivilegeEscalation,
                "must set securityContext.allowPrivilegeEscalation=false".into(),
            );
        }
        let beyond: Vec<&str> = added
            .iter()
            .copied()
            .filter(|a| *a != "NET_BIND_SERVICE")
            .collect();
        if enforced.at_least(22) && (!dropped("ALL") || !beyond.is_empty()) {
            let mut must = Vec::new();
            if !dropped("ALL") {
                must.push("must set securityContext.capabilities.drop=[\"ALL\"]".to_owned());
            }
            if !beyond.is_empty() {
                must.push(format!(
                    "must not include {} in securityContext.capabilities.add",
                    quoted_list(&beyond)
                ));
            }
            fail(Check::RestrictedCapabilities, must.join("; "));
        }
        if sc.and_then(|s| s.run_as_non_root) == Some(false) {
            fail(
                Check::RunAsNonRoot,
                "must not set securityContext.runAsNonRoot=false".into(),
            );
        }
        if enforced.at_least(23) && sc.and_then(|s| s.run_as_user) == Some(0) {
            fail(Check::RunAsUser, "must not set runAsUser=0".into());
        }
        if seccomp.is_some_and(|t| t != "RuntimeDefault" && t != "Localhost") {
            fail(
                Check::Seccomp,
                "must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\""
                    .into(),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Capabilities, SeccompProfile};

    const BASELINE: Enforced = Enforced {
        level: Level::Baseline,
        minor: None,
    };
    const RESTRICTED: Enforced = Enforced {
        level: Level::Restricted,
        minor: None,
    };

    /// A container that complies with `restricted`.
    fn compliant() -> SecurityContext {
        SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            run_as_non_root: Some(true),
            run_as_user: Some(2102),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn checks(enforced: Enforced, sc: SecurityContext, host_ports: &[i32]) -> Vec<Check> {
        check(
            enforced,
            &[Added {
                name: "c",
                security: Some(&sc),
                host_ports,
            }],
        )
        .into_iter()
        .map(|v| v.check)
        .collect()
    }

    fn with_caps(add: &[&str], drop: &[&str]) -> SecurityContext {
        SecurityContext {
            capabilities: Some(Capabilities {
                add: Some(add.iter().map(|s| (*s).to_owned()).collect()),
                drop: Some(drop.iter().map(|s| (*s).to_owned()).collect()),
            }),
            ..compliant()
        }
    }

    #[test]
    fn the_enforced_level_comes_from_the_namespace_labels() {
        let of = |pairs: &'static [(&'static str, &'static str)]| {
            Enforced::from_labels(|k| pairs.iter().find(|(l, _)| *l == k).map(|(_, v)| *v))
        };
        assert_eq!(of(&[]), None);
        assert_eq!(of(&[(ENFORCE_LABEL, "privileged")]), None);
        assert_eq!(of(&[(ENFORCE_LABEL, "baseline")]), Some(BASELINE));
        assert_eq!(
            of(&[
                (ENFORCE_LABEL, "restricted"),
                (ENFORCE_VERSION_LABEL, "v1.22")
            ]),
            Some(Enforced {
                level: Level::Restricted,
                minor: Some(22)
            })
        );
        // Unknown values fail closed, as PodSecurity does.
        assert_eq!(of(&[(ENFORCE_LABEL, "strict")]), Some(RESTRICTED));
        assert_eq!(
            of(&[(ENFORCE_LABEL, "baseline"), (ENFORCE_VERSION_LABEL, "next")]),
            Some(BASELINE)
        );
        assert_eq!(RESTRICTED.to_string(), "restricted:latest");
    }

    #[test]
    fn a_compliant_container_passes_every_level() {
        assert_eq!(checks(BASELINE, compliant(), &[]), []);
        assert_eq!(checks(RESTRICTED, compliant(), &[]), []);
    }

    #[test]
    fn privileged_fails_baseline_and_restricted() {
        let sc = SecurityContext {
            privileged: Some(true),
            ..compliant()
        };
        assert_eq!(checks(BASELINE, sc.clone(), &[]), [Check::Privileged]);
        assert_eq!(checks(RESTRICTED, sc, &[]), [Check::Privileged]);
        // privileged: false is fine.
        let sc = SecurityContext {
            privileged: Some(false),
            ..compliant()
        };
        assert_eq!(checks(BASELINE, sc, &[]), []);
    }

    #[test]
    fn capabilities_beyond_the_default_set_fail_baseline() {
        assert_eq!(
            checks(BASELINE, with_caps(&["NET_ADMIN", "NET_RAW"], &[]), &[]),
            [Check::Capabilities]
        );
        assert_eq!(
            checks(BASELINE, with_caps(&["CHOWN", "KILL"], &[]), &[]),
            []
        );
        let v = check(
            BASELINE,
            &[Added {
                name: "linkerd-init",
                security: Some(&with_caps(&["NET_ADMIN", "NET_RAW"], &[])),
                host_ports: &[],
            }],
        );
        assert_eq!(
            v[0].to_string(),
            "non-default capabilities (container \"linkerd-init\" must not include \"NET_ADMIN\", \"NET_RAW\" in securityContext.capabilities.add)"
        );
    }

    #[test]
    fn restricted_capabilities_must_drop_all_and_add_only_net_bind_service() {
        assert_eq!(
            checks(RESTRICTED, with_caps(&["NET_BIND_SERVICE"], &["ALL"]), &[]),
            []
        );
        assert_eq!(
            checks(RESTRICTED, with_caps(&[], &["NET_RAW"]), &[]),
            [Check::RestrictedCapabilities]
        );
        // CHOWN is fine for baseline, not for restricted.
        assert_eq!(
            checks(RESTRICTED, with_caps(&["CHOWN"], &["ALL"]), &[]),
            [Check::RestrictedCapabilities]
        );
        // At restricted, the restricted check replaces baseline's (reported once)...
        assert_eq!(
            checks(RESTRICTED, with_caps(&["NET_ADMIN"], &["ALL"]), &[]),
            [Check::RestrictedCapabilities]
        );
        // ... from v1.22, which introduced it; before, baseline's applies.
        let v1_21 = Enforced {
            level: Level::Restricted,
            minor: Some(21),
        };
        assert_eq!(
            checks(v1_21, with_caps(&["NET_ADMIN"], &[]), &[]),
            [Check::Capabilities]
        );
    }

    #[test]
    fn host_ports_fail_baseline() {
        assert_eq!(checks(BASELINE, compliant(), &[4143]), [Check::HostPorts]);
        assert_eq!(checks(BASELINE, compliant(), &[0]), []);
    }

    #[test]
    fn unconfined_seccomp_fails_baseline_and_restricted_wants_a_profile() {
        let with = |t: &str| SecurityContext {
            seccomp_profile: Some(SeccompProfile {
                type_: t.into(),
                ..Default::default()
            }),
            ..compliant()
        };
        assert_eq!(
            checks(BASELINE, with("Unconfined"), &[]),
            [Check::SeccompUnconfined]
        );
        assert_eq!(
            checks(RESTRICTED, with("Unconfined"), &[]),
            [Check::SeccompUnconfined, Check::Seccomp]
        );
        assert_eq!(checks(RESTRICTED, with("Localhost"), &[]), []);
        // Unset on the container: the pod's own setting decides; not judged here.
        let unset = SecurityContext {
            seccomp_profile: None,
            ..compliant()
        };
        assert_eq!(checks(RESTRICTED, unset, &[]), []);
    }

    #[test]
    fn privilege_escalation_must_be_off_for_restricted_only() {
        let sc = SecurityContext {
            allow_privilege_escalation: Some(true),
            ..compliant()
        };
        assert_eq!(checks(BASELINE, sc.clone(), &[]), []);
        assert_eq!(
            checks(RESTRICTED, sc, &[]),
            [Check::AllowPrivilegeEscalation]
        );
        let unset = SecurityContext {
            allow_privilege_escalation: None,
            ..compliant()
        };
        assert_eq!(
            checks(RESTRICTED, unset, &[]),
            [Check::AllowPrivilegeEscalation]
        );
    }

    #[test]
    fn root_fails_restricted_only_and_run_as_user_zero_from_1_23() {
        let root = SecurityContext {
            run_as_non_root: Some(false),
            run_as_user: Some(0),
            ..compliant()
        };
        assert_eq!(checks(BASELINE, root.clone(), &[]), []);
        assert_eq!(
            checks(RESTRICTED, root.clone(), &[]),
            [Check::RunAsNonRoot, Check::RunAsUser]
        );
        let v1_22 = Enforced {
            level: Level::Restricted,
            minor: Some(22),
        };
        assert_eq!(checks(v1_22, root, &[]), [Check::RunAsNonRoot]);
    }

    #[test]
    fn no_security_context_fails_restricted_on_what_the_pod_cannot_set() {
        let v = check(
            RESTRICTED,
            &[Added {
                name: "linkerd-debug",
                security: None,
                host_ports: &[],
            }],
        );
        let got: Vec<Check> = v.iter().map(|v| v.check).collect();
        assert_eq!(
            got,
            [
                Check::AllowPrivilegeEscalation,
                Check::RestrictedCapabilities
            ]
        );
        assert!(
            check(
                BASELINE,
                &[Added {
                    name: "linkerd-debug",
                    security: None,
                    host_ports: &[]
                }]
            )
            .is_empty()
        );
    }
}
