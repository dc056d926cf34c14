//! The network section as text: one line per path, and the fix as a heredoc a user can paste.

use k8s_openapi::api::networking::v1::NetworkPolicy;

use super::{NetworkReport, PathReport, WorkloadNetwork};
use crate::netpol::{Direction, PolicyRef, Verdict};
use crate::offline::to_yaml;

/// "a/x", or "a/x, a/y (none of them allows it)": every policy isolating the side.
fn list(policies: &[PolicyRef]) -> String {
    let names: Vec<String> = policies.iter().map(ToString::to_string).collect();
    match names.len() {
        0 | 1 => names.join(""),
        _ => format!("{} (none of them allows it)", names.join(", ")),
    }
}

/// "egress to the identity controller (TCP 8080 to linkerd): blocked by shop/deny-egress".
pub fn path_line(p: &PathReport) -> String {
    let way = match p.direction {
        Direction::Egress => "egress to",
        Direction::Ingress => "ingress from",
    };
    let status = match &p.verdict {
        Verdict::Denied => {
            let mut parts = Vec::new();
            if p.pod_side.verdict == Verdict::Denied {
                parts.push(format!("blocked by {}", list(&p.pod_side.isolating)));
            }
            if let Some(far) = &p.far_side
                && far.answer.verdict == Verdict::Denied
            {
                parts.push(format!(
                    "blocked at {}'s ingress by {}",
                    far.pod,
                    list(&far.answer.isolating)
                ));
            }
            parts.join("; ")
        }
        Verdict::CannotTell { reason } => format!("cannot tell: {reason}"),
        Verdict::Allowed if p.pod_side.isolating.is_empty() => {
            format!("allowed (no policy isolates the pod for {})", p.direction)
        }
        Verdict::Allowed => {
            let rules: Vec<String> = p
                .pod_side
                .allowing
                .iter()
                .map(ToString::to_string)
                .collect();
            format!("allowed by {}", rules.join(", "))
        }
    };
    format!("{way} {}: {status}", p.label)
}

/// `{indent}fix: kubectl apply -f - <<'EOF'`, the policies as YAML documents (unindented, so
/// the heredoc works when pasted), `EOF`. Empty when there is nothing to apply.
pub fn fix_block(fix: &[NetworkPolicy], indent: &str) -> String {
    if fix.is_empty() {
        return String::new();
    }
    let mut s = format!("{indent}fix: kubectl apply -f - <<'EOF'\n");
    for np in fix {
        s.push_str("---\n");
        // JSON is YAML too, should the YAML writer refuse.
        let doc = to_yaml(np)
            .map_err(|e| e.to_string())
            .or_else(|_| serde_json::to_string_pretty(np).map_err(|e| e.to_string()));
        match doc {
            Ok(text) => s.push_str(&text),
            Err(e) => s.push_str(&format!("# this policy cannot be written out: {e}")),
        }
        if !s.ends_with('\n') {
            s.push('\n');
        }
    }
    s.push_str("EOF\n");
    s
}

fn head(w: &WorkloadNetwork) -> String {
    let n = w.pods.len();
    format!(
        "{}/{} {} ({n} pod{})",
        w.namespace,
        w.kind.to_ascii_lowercase(),
        w.name,
        if n == 1 { "" } else { "s" }
    )
}

fn is_denied(p: &&PathReport) -> bool {
    p.verdict == Verdict::Denied
}

fn is_unsure(p: &&PathReport) -> bool {
    matches!(p.verdict, Verdict::CannotTell { .. })
}

impl NetworkReport {
    /// The section of `check`'s text report.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let failing: Vec<&WorkloadNetwork> = (self.workloads.iter())
            .filter(|w| w.network.paths.iter().any(|p| is_denied(&p)))
            .collect();
        if failing.is_empty() {
            let checked = match self.meshed_workloads {
                0 => "no meshed pods found".to_string(),
                1 => "1 meshed workload checked".to_string(),
                n => format!("{n} meshed workloads checked"),
            };
            s.push_str(&format!(
                "[ok  ] no NetworkPolicy cuts a meshed proxy off what it needs ({checked})\n"
            ));
        } else {
            s.push_str("[FAIL] NetworkPolicies that cut meshed proxies off what they need:\n");
            for w in failing {
                for p in w.network.paths.iter().filter(is_denied) {
                    s.push_str(&format!("  {}: {}\n", head(w), path_line(p)));
                }
                s.push_str(&fix_block(&w.network.fix, "    "));
                if let Some(note) = &w.network.fix_note {
                    s.push_str(&format!("    no fix for every path: {note}\n"));
                }
            }
        }
        let unsure: Vec<&WorkloadNetwork> = (self.workloads.iter())
            .filter(|w| w.network.paths.iter().any(|p| is_unsure(&p)))
            .collect();
        if !unsure.is_empty() {
            s.push_str(
                "[note] cannot tell whether NetworkPolicies let these proxies through (not \
                 counted as problems; the reason says what is not known):\n",
            );
            for w in unsure {
                for p in w.network.paths.iter().filter(is_unsure) {
                    s.push_str(&format!("  {}: {}\n", head(w), path_line(p)));
                }
            }
        }
        if self.meshed_workloads > 0 && !self.not_checked.is_empty() {
            for p in &self.not_checked {
                s.push_str(&format!("[note] {p}\n"));
            }
        }
        if !self.policy_problems.is_empty() {
            s.push_str(
                "[note] NetworkPolicy parts the API server would reject (read as \"cannot \
                 tell\"):\n",
            );
            for p in &self.policy_problems {
                s.push_str(&format!("  {p}\n"));
            }
        }
        s
    }
}
