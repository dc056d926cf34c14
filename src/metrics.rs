//! Prometheus metrics (prometheus-client): admissions by result and reason, review latency,
//! caught panics, namespace cache size and staleness, certificate expiry and reloads, events.
//!
//! Counters are bumped on the request path (one hash of two static labels, no allocation);
//! gauges that describe state (cache size, staleness) are read when `/metrics` is scraped.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::namespaces::{CacheState, Namespaces};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AdmissionLabels {
    /// inject (the mutating webhook) or warn (the validating one)
    handler: &'static str,
    /// inject: injected, skipped, denied; warn: warned, clean;
    /// both: rejected (HTTP 400), error (panic)
    result: &'static str,
    /// inject: the mode for injected pods, the skip/deny reason code otherwise;
    /// warn: none
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandlerLabels {
    handler: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectionLabels {
    /// webhook (the TLS port) or admin
    listener: &'static str,
    /// accepted, refused (over the cap), idle_closed
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: &'static str,
}

fn latency_histogram() -> Histogram {
    // 50 µs … ~1.6 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    admissions: Family<AdmissionLabels, Counter>,
    latency: Family<HandlerLabels, Histogram, fn() -> Histogram>,
    panics: Family<HandlerLabels, Counter>,
    cache_size: Gauge,
    cache_synced: Gauge,
    cache_stale_seconds: Gauge<f64, AtomicU64>,
    watch_errors: Gauge,
    cert_expiry: Gauge,
    cert_reloads: Family<ResultLabels, Counter>,
    config_reloads: Family<ResultLabels, Counter>,
    events: Family<ResultLabels, Counter>,
    event_writes: Family<ResultLabels, Counter>,
    connections: Family<ConnectionLabels, Counter>,
    open_connections: Family<ListenerLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("proxy_injector");
        let admissions = Family::<AdmissionLabels, Counter>::default();
        registry.register(
            "admissions",
            "Admission reviews answered, by handler, result and reason",
            admissions.clone(),
        );
        let latency: Family<HandlerLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "review_duration_seconds",
            "Time to review one request (parse, decide, patch, encode), by handler",
            latency.clone(),
        );
        let panics = Family::<HandlerLabels, Counter>::default();
        registry.register(
            "panics",
            "Panics caught in a request handler (each answered 500)",
            panics.clone(),
        );
        let cache_size = Gauge::default();
        registry.register(
            "namespace_cache_size",
            "Namespaces held in the cache",
            cache_size.clone(),
        );
        let cache_synced = Gauge::default();
        registry.register(
            "namespace_cache_synced",
            "1 once the namespace cache has been listed",
            cache_synced.clone(),
        );
        let cache_stale_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "namespace_cache_stale_seconds",
            "How long the namespace watch has been failing (0 when live); admissions use the last known namespaces meanwhile",
            cache_stale_seconds.clone(),
        );
        let watch_errors = Gauge::default();
        registry.register(
            "namespace_watch_errors",
            "Failed namespace watch attempts since start",
            watch_errors.clone(),
        );
        let cert_expiry = Gauge::default();
        registry.register(
            "tls_cert_expiry_timestamp_seconds",
            "notAfter of the serving certificate, as a Unix time",
            cert_expiry.clone(),
        );
        let cert_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "tls_cert_reloads",
            "Serving certificate reloads, by result (ok, error)",
            cert_reloads.clone(),
        );
        let config_reloads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "linkerd_config_reloads",
            "Linkerd's configuration (linkerd-config and linkerd-identity-trust-roots ConfigMaps) read, by result: applied, rejected (not valid; the last good one stays in use)",
            config_reloads.clone(),
        );
        let events = Family::<ResultLabels, Counter>::default();
        registry.register(
            "events",
            "Admissions noted in Kubernetes Events, by result: coalesced (added to an equal note waiting to be written), sent, failed (the write was refused), dropped (the waiting notes were at their limit)",
            events.clone(),
        );
        let event_writes = Family::<ResultLabels, Counter>::default();
        registry.register(
            "event_writes",
            "Event API writes, by result (created, patched: a count added to a recent Event)",
            event_writes.clone(),
        );
        let connections = Family::<ConnectionLabels, Counter>::default();
        registry.register(
            "connections",
            "Connections by listener (webhook, admin) and result (accepted, refused over the cap, idle_closed)",
            connections.clone(),
        );
        let open_connections = Family::<ListenerLabels, Gauge>::default();
        registry.register(
            "open_connections",
            "Connections open now, by listener",
            open_connections.clone(),
        );
        Metrics {
            registry,
            admissions,
            latency,
            panics,
            cache_size,
            cache_synced,
            cache_stale_seconds,
            watch_errors,
            cert_expiry,
            cert_reloads,
            config_reloads,
            events,
            event_writes,
            connections,
            open_connections,
        }
    }

    /// Counts one answered review (its `result` and `reason` labels, see
    /// `admission::Answer::metric_labels`) and its latency.
    pub fn answered(
        &self,
        handler: &'static str,
        (result, reason): (&'static str, &'static str),
        seconds: f64,
    ) {
        self.admissions
            .get_or_create(&AdmissionLabels {
                handler,
                result,
                reason,
            })
            .inc();
        self.latency
            .get_or_create(&HandlerLabels { handler })
            .observe(seconds);
    }

    /// Counts a body answered 400 (not an AdmissionReview).
    /// A request refused before review: its body did not fit the budget of bytes held by
    /// unfinished bodies (503), or could not be read.
    pub fn refused(&self, handler: &'static str, reason: &'static str) {
        self.admissions
            .get_or_create(&AdmissionLabels {
                handler,
                result: "refused",
                reason,
            })
            .inc();
    }

    pub fn rejected(&self, handler: &'static str) {
        self.admissions
            .get_or_create(&AdmissionLabels {
                handler,
                result: "rejected",
                reason: "bad_request",
            })
            .inc();
    }

    /// Counts a caught panic (answered 500).
    pub fn panic(&self, handler: &'static str) {
        self.panics.get_or_create(&HandlerLabels { handler }).inc();
        self.admissions
            .get_or_create(&AdmissionLabels {
                handler,
                result: "error",
                reason: "panic",
            })
            .inc();
    }

    pub fn cert_loaded(&self, not_after_unix: Option<i64>) {
        if let Some(t) = not_after_unix {
            self.cert_expiry.set(t);
        }
    }

    pub fn cert_reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.cert_reloads
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// Linkerd's ConfigMaps read: `applied` or `rejected`.
    pub fn config_reload(&self, result: &'static str) {
        self.config_reloads
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    pub fn event(&self, result: &'static str) {
        self.events.get_or_create(&ResultLabels { result }).inc();
    }

    /// Counts `n` notes written (sent) or not (failed) in one Event write.
    pub fn events(&self, result: &'static str, n: u32) {
        self.events
            .get_or_create(&ResultLabels { result })
            .inc_by(u64::from(n));
    }

    /// Counts one Event API write (created or patched).
    pub fn event_write(&self, result: &'static str) {
        self.event_writes
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// Counts a connection accepted, refused or closed for idleness; tracks the open count.
    pub fn connection(&self, listener: &'static str, result: &'static str) {
        self.connections
            .get_or_create(&ConnectionLabels { listener, result })
            .inc();
        if result == "accepted" {
            self.open_connections
                .get_or_create(&ListenerLabels { listener })
                .inc();
        }
    }

    /// A connection counted as accepted has ended.
    pub fn connection_closed(&self, listener: &'static str) {
        self.open_connections
            .get_or_create(&ListenerLabels { listener })
            .dec();
    }

    /// The text exposition, with the state gauges read from `namespaces` now.
    pub fn render(&self, namespaces: &Namespaces) -> String {
        self.cache_size.set(namespaces.len() as i64);
        let state = namespaces.state();
        self.cache_synced
            .set(i64::from(state != CacheState::NotSynced));
        self.cache_stale_seconds.set(match state {
            CacheState::Stale(d) | CacheState::TooStale(d) => d.as_secs_f64(),
            CacheState::Live | CacheState::NotSynced => 0.0,
        });
        self.watch_errors.set(namespaces.watch_errors() as i64);
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::{Answer, Outcome};
    use crate::decision::{Mode, SkipReason};

    #[test]
    fn renders_counts_and_state() {
        let m = Metrics::new();
        let answer = |outcome, warnings: Vec<String>| Answer {
            body: vec![],
            outcome,
            pod: String::new(),
            namespace: String::new(),
            dry_run: false,
            warnings,
            event: None,
        };
        let injected = answer(
            Outcome::Injected {
                mode: Mode::Enabled,
            },
            vec![],
        );
        m.answered("inject", injected.metric_labels("inject"), 0.0002);
        m.answered("inject", injected.metric_labels("inject"), 0.0003);
        let delete = Outcome::Skipped(SkipReason::NotCreate {
            operation: "DELETE".into(),
        });
        m.answered(
            "inject",
            answer(delete.clone(), vec![]).metric_labels("inject"),
            0.0001,
        );
        m.answered(
            "warn",
            answer(delete, vec!["w".into()]).metric_labels("warn"),
            0.0001,
        );
        m.rejected("inject");
        m.panic("inject");
        m.cert_loaded(Some(1_900_000_000));
        let text = m.render(&Namespaces::empty());
        for line in [
            r#"proxy_injector_admissions_total{handler="inject",result="injected",reason="enabled"} 2"#,
            r#"proxy_injector_admissions_total{handler="inject",result="skipped",reason="not_create"} 1"#,
            r#"proxy_injector_admissions_total{handler="warn",result="warned",reason="none"} 1"#,
            r#"proxy_injector_admissions_total{handler="inject",result="rejected",reason="bad_request"} 1"#,
            r#"proxy_injector_admissions_total{handler="inject",result="error",reason="panic"} 1"#,
            r#"proxy_injector_panics_total{handler="inject"} 1"#,
            r#"proxy_injector_review_duration_seconds_count{handler="inject"} 3"#,
            "proxy_injector_tls_cert_expiry_timestamp_seconds 1900000000",
            "proxy_injector_namespace_cache_synced 1",
            "proxy_injector_namespace_cache_size 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
