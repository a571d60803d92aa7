//! Every metric the gateway exports, in one struct registered in an owned registry. Label values
//! come from closed sets (route prefixes from the config, method classes, `ErrorCode` and check
//! names), never from paths, tokens, keys or client ids. All names start with `dpop_gateway_`.

use std::time::Duration;

use crate::refusal::Reason;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Request and upstream latency buckets, in seconds: from 25 µs (a cached-token ES256 check is
/// about 70 µs) to 30 s (the default `upstream.request_timeout`).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_075, 0.000_1, 0.000_15, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Verification buckets: proof, nonce, token and replay checks, from 10 µs (cache hits) through
/// 50 ms (RSA-4096 signatures) to 5 s: the checks also wait on the network (an introspection
/// call or a JWKS fetch on an unknown `kid`, each bounded at 5 s; a Redis round trip, bounded by
/// `replay_cache.timeout`), and those waits must land in a bucket of their own, not all in
/// `+Inf` past 50 ms.
pub const VERIFY_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_075, 0.000_1, 0.000_15, 0.000_2, 0.000_3, 0.000_5, 0.001,
    0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The `status_class` label values of `dpop_gateway_upstream_response_seconds`, in order.
const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

/// The gateway's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `dpop_gateway_requests_total{listener,route,method,outcome,reason,status}`.
    pub requests: IntCounterVec,
    /// `dpop_gateway_request_duration_seconds{listener,route,outcome}`.
    pub request_duration: HistogramVec,
    /// `dpop_gateway_verification_duration_seconds`: proof, nonce, token and replay checks.
    pub verification_duration: Histogram,
    /// `dpop_gateway_upstream_duration_seconds{upstream}`: until the upstream's response
    /// headers, or until the exchange failed (connect error, timeout); its `_count` is the
    /// requests sent to each upstream.
    upstream_duration: HistogramVec,
    /// `dpop_gateway_upstream_response_seconds{upstream,status_class}`: until the upstream's
    /// response headers, for exchanges that got them, by the class of the status it answered.
    upstream_response: HistogramVec,
    /// `dpop_gateway_upstream_errors_total{upstream,kind}`.
    upstream_errors: IntCounterVec,
    /// `dpop_gateway_connection_refusals_total{reason}`: connections ended before a request
    /// was parsed (`head_too_large`, `head_timeout`, `uri_too_long`); these never reach the
    /// request metrics.
    pub connection_refusals: IntCounterVec,
    /// `dpop_gateway_in_flight_requests`.
    pub in_flight: IntGauge,
    /// `dpop_gateway_open_connections{listener}`.
    pub open_connections: IntGaugeVec,
    /// `dpop_gateway_tunnels_open`: WebSocket tunnels open now.
    pub tunnels_open: IntGauge,
    /// `dpop_gateway_tunnels_total`: WebSocket tunnels opened (upstream and client upgraded).
    pub tunnels: IntCounter,
    /// `dpop_gateway_replay_cache_entries`.
    pub replay_entries: IntGauge,
    /// `dpop_gateway_replay_cache_capacity`.
    pub replay_capacity: IntGauge,
    /// `dpop_gateway_replay_cache_expired_total`: entries removed once their replay window
    /// passed; the cache evicts nothing else.
    pub replay_expired: IntCounter,
    /// `dpop_gateway_replay_cache_full_total`: proofs refused because the cache was full of live
    /// entries (a live entry is never evicted).
    pub replay_full: IntCounter,
    /// `dpop_gateway_replay_per_key_limited_total`: proofs refused with 429 because their key
    /// held `replay_cache.per_key_limit` live entries.
    pub replay_key_limited: IntCounter,
    /// `dpop_gateway_replay_store_failovers_total`: the sentinels named a new master.
    pub replay_failovers: IntCounter,
    /// `dpop_gateway_replay_store_wait_shortfalls_total`: `WAIT` confirmed fewer than
    /// `min_replicas` replicas.
    pub replay_wait_shortfalls: IntCounter,
    /// `dpop_gateway_replay_store_errors_total{policy}`: store unreachable or slow.
    pub replay_store_errors: IntCounterVec,
    /// `dpop_gateway_token_cache_requests_total{result}`: `hit` or `miss`.
    pub token_cache: IntCounterVec,
    /// `dpop_gateway_tls_reloads_total{result}`.
    pub tls_reloads: IntCounterVec,
    /// `dpop_gateway_tls_certificate_expiry_timestamp_seconds`: the serving certificate's
    /// `notAfter` (registered only with `tls`).
    pub tls_certificate_expiry: IntGauge,
    /// `dpop_gateway_jwks_fetches_total{result}`.
    pub jwks_fetches: IntCounterVec,
    /// `dpop_gateway_introspection_requests_total{result}`.
    pub introspections: IntCounterVec,
    /// `dpop_gateway_jwks_last_success_timestamp_seconds`: when the token signing keys were
    /// last loaded (file read or fetch); the keys' age is `time() - this`.
    pub jwks_last_success: IntGauge,
    /// `dpop_gateway_config_reloads_total{result}`: SIGHUP or config file change.
    pub config_reloads: IntCounterVec,
    /// `dpop_gateway_config_last_reload_success_timestamp_seconds`: when the running
    /// configuration was loaded (at start, then by each successful reload).
    pub config_last_reload_success: IntGauge,
}

/// One upstream's series of the upstream metrics, resolved once when the upstream is built so
/// that a forwarded request looks no label up.
#[derive(Clone)]
pub(crate) struct UpstreamMetrics {
    /// `dpop_gateway_upstream_duration_seconds{upstream}`.
    pub(crate) duration: Histogram,
    /// `dpop_gateway_upstream_response_seconds{upstream,status_class}` by [`STATUS_CLASSES`]
    /// index.
    by_class: [Histogram; 6],
    /// `dpop_gateway_upstream_errors_total`, and the name to label its series with.
    errors: IntCounterVec,
    name: String,
}

/// Holds a gauge one higher for as long as it lives (a connection, a request in flight),
/// however that life ends.
pub(crate) struct GaugeGuard(IntGauge);

/// The listener that answered a request: the `listener` label of the request metrics and the
/// access log's `listener` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// `listen`: checks, then forwards to the upstream.
    Proxy,
    /// `forward_auth.listen`: checks, then answers the ingress with a decision.
    ForwardAuth,
}

impl Listener {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Listener::Proxy => "proxy",
            Listener::ForwardAuth => "forward_auth",
        }
    }
}

/// A request method as a bounded label.
pub fn method_class(m: &http::Method) -> &'static str {
    match *m {
        http::Method::GET => "GET",
        http::Method::HEAD => "HEAD",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

// === impl UpstreamMetrics ===

impl UpstreamMetrics {
    /// Records an exchange that got response headers with `status` after `elapsed`.
    pub(crate) fn observe_response(&self, status: http::StatusCode, elapsed: Duration) {
        let class = match status.as_u16() {
            100..=199 => 0,
            200..=299 => 1,
            300..=399 => 2,
            400..=499 => 3,
            500..=599 => 4,
            _ => 5,
        };
        self.by_class[class].observe(elapsed.as_secs_f64());
    }

    /// Counts a failed exchange of kind `reason`.
    pub(crate) fn error(&self, reason: Reason) {
        self.errors
            .with_label_values(&[self.name.as_str(), reason.as_str()])
            .inc();
    }
}

// === impl GaugeGuard ===

impl GaugeGuard {
    /// Increments `gauge` now and decrements it on drop.
    pub(crate) fn new(gauge: IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

// === impl Metrics ===

impl Metrics {
    /// Creates and registers every metric in a fresh registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let upstream_response = HistogramVec::new(
            HistogramOpts::new(
                "dpop_gateway_upstream_response_seconds",
                "Time until the upstream's response headers, for exchanges that got them, by status class (1xx..5xx, other).",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["upstream", "status_class"],
        )?;
        let m = Metrics {
            requests: IntCounterVec::new(
                Opts::new(
                    "dpop_gateway_requests_total",
                    "Requests by the listener that answered (proxy, forward_auth), route, method, outcome (forwarded, local or the refusal's error code), reason and response status.",
                ),
                &["listener", "route", "method", "outcome", "reason", "status"],
            )?,
            request_duration: HistogramVec::new(
                HistogramOpts::new(
                    "dpop_gateway_request_duration_seconds",
                    "Time from request head to response head, by listener, route and outcome.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["listener", "route", "outcome"],
            )?,
            verification_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "dpop_gateway_verification_duration_seconds",
                    "Time spent checking proof, nonce, token and replay for one request.",
                )
                .buckets(VERIFY_BUCKETS.to_vec()),
            )?,
            upstream_duration: HistogramVec::new(
                HistogramOpts::new(
                    "dpop_gateway_upstream_duration_seconds",
                    "Time until the upstream's response headers (or its failure), by upstream.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
                &["upstream"],
            )?,
            upstream_response,
            upstream_errors: IntCounterVec::new(
                Opts::new(
                    "dpop_gateway_upstream_errors_total",
                    "Upstream failures by upstream and kind.",
                ),
                &["upstream", "kind"],
            )?,
            connection_refusals: IntCounterVec::new(
                Opts::new(
                    "dpop_gateway_connection_refusals_total",
                    "Connections refused before a request was read, by reason.",
                ),
                &["reason"],
            )?,
            in_flight: IntGauge::new(
                "dpop_gateway_in_flight_requests",
                "Requests being handled now.",
            )?,
            open_connections: IntGaugeVec::new(
                Opts::new("dpop_gateway_open_connections", "Client connections open now."),
                &["listener"],
            )?,
            tunnels_open: IntGauge::new(
                "dpop_gateway_tunnels_open",
                "WebSocket tunnels open now (client and upstream connections upgraded).",
            )?,
            tunnels: IntCounter::new(
                "dpop_gateway_tunnels_total",
                "WebSocket tunnels opened.",
            )?,
            replay_entries: IntGauge::new(
                "dpop_gateway_replay_cache_entries",
                "Live entries in the in-memory replay cache.",
            )?,
            replay_capacity: IntGauge::new(
                "dpop_gateway_replay_cache_capacity",
                "Configured capacity of the in-memory replay cache.",
            )?,
            replay_expired: IntCounter::new(
                "dpop_gateway_replay_cache_expired_total",
                "Replay-cache entries removed once their window passed (the only evictions: a live entry is never evicted).",
            )?,
            replay_full: IntCounter::new(
                "dpop_gateway_replay_cache_full_total",
                "Proofs refused with 503 because the replay cache was full of live entries.",
            )?,
            replay_key_limited: IntCounter::new(
                "dpop_gateway_replay_per_key_limited_total",
                "Proofs refused with 429 because their key held replay_cache.per_key_limit live entries.",
            )?,
            replay_failovers: IntCounter::new(
                "dpop_gateway_replay_store_failovers_total",
                "Sentinel failovers seen: the sentinels named a new master for the replay store.",
            )?,
            replay_wait_shortfalls: IntCounter::new(
                "dpop_gateway_replay_store_wait_shortfalls_total",
                "Inserts that WAIT confirmed on fewer than replay_cache.min_replicas replicas (on_error applied).",
            )?,
            replay_store_errors: IntCounterVec::new(
                Opts::new(
                    "dpop_gateway_replay_store_errors_total",
                    "Replay store failures (unreachable or past timeout), by the on_error policy applied.",
                ),
                &["policy"],
            )?,
            token_cache: IntCounterVec::new(
                Opts::new(
                    "dpop_gateway_token_cache_requests_total",
                    "Verified-token cache lookups by result (hit, miss).",
                ),
                &["result"],
            )?,
            tls_certificate_expiry: IntGauge::new(
                "dpop_gateway_tls_certificate_expiry_timestamp_seconds",
                "Unix time the serving certificate (the leaf of tls.cert) expires; updated on reload.",
            )?,
            tls_reloads: IntCounterVec::new(
                Opts::new(
                    "dpop_gateway_tls_reloads_total",
                    "TLS certificate reloads by result (success, failure).",
                ),
                &["result"],
            )?,
            jwks_fetches: IntCounterVec::new(
                Opts::new(
                    "dpop_gateway_jwks_fetches_total",
                    "Fetches of the authorization server's keys (metadata + JWKS) by result.",
                ),
                &["result"],
            )?,
            introspections: IntCounterVec::new(
                Opts::new(
                    "dpop_gateway_introspection_requests_total",
                    "RFC 7662 introspection requests sent (cache misses) by result; failures answered 503.",
                ),
                &["result"],
            )?,
            jwks_last_success: IntGauge::new(
                "dpop_gateway_jwks_last_success_timestamp_seconds",
                "Unix time the access-token signing keys were last loaded (0: never).",
            )?,
            config_reloads: IntCounterVec::new(
                Opts::new(
                    "dpop_gateway_config_reloads_total",
                    "Configuration reloads (SIGHUP or a change of the file) by result (success, failure).",
                ),
                &["result"],
            )?,
            config_last_reload_success: IntGauge::new(
                "dpop_gateway_config_last_reload_success_timestamp_seconds",
                "Unix time the running configuration was loaded (at start, then by each successful reload).",
            )?,
            registry,
        };
        m.register_all()?;
        // Small closed label sets start at 0, so rate() and alerts see them before the first event.
        for reason in Reason::all() {
            match reason {
                Reason::HeadTooLarge | Reason::HeadTimeout | Reason::UriTooLong => {
                    m.connection_refusals.with_label_values(&[reason.as_str()]);
                }
                _ => {}
            }
        }
        for policy in ["reject", "allow"] {
            m.replay_store_errors.with_label_values(&[policy]);
        }
        for result in ["hit", "miss"] {
            m.token_cache.with_label_values(&[result]);
        }
        for result in ["success", "failure"] {
            m.tls_reloads.with_label_values(&[result]);
            m.jwks_fetches.with_label_values(&[result]);
            m.introspections.with_label_values(&[result]);
            m.config_reloads.with_label_values(&[result]);
        }
        let build = IntGaugeVec::new(
            Opts::new(
                "dpop_gateway_build_info",
                "Build information; the value is 1.",
            ),
            &["version"],
        )?;
        m.registry.register(Box::new(build.clone()))?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        Ok(m)
    }

    fn register_all(&self) -> Result<(), prometheus::Error> {
        let r = &self.registry;
        r.register(Box::new(self.requests.clone()))?;
        r.register(Box::new(self.request_duration.clone()))?;
        r.register(Box::new(self.verification_duration.clone()))?;
        r.register(Box::new(self.upstream_duration.clone()))?;
        r.register(Box::new(self.upstream_response.clone()))?;
        r.register(Box::new(self.upstream_errors.clone()))?;
        r.register(Box::new(self.connection_refusals.clone()))?;
        r.register(Box::new(self.in_flight.clone()))?;
        r.register(Box::new(self.open_connections.clone()))?;
        r.register(Box::new(self.tunnels_open.clone()))?;
        r.register(Box::new(self.tunnels.clone()))?;
        r.register(Box::new(self.replay_entries.clone()))?;
        r.register(Box::new(self.replay_capacity.clone()))?;
        r.register(Box::new(self.replay_full.clone()))?;
        r.register(Box::new(self.replay_expired.clone()))?;
        r.register(Box::new(self.replay_key_limited.clone()))?;
        r.register(Box::new(self.replay_failovers.clone()))?;
        r.register(Box::new(self.replay_wait_shortfalls.clone()))?;
        r.register(Box::new(self.replay_store_errors.clone()))?;
        r.register(Box::new(self.token_cache.clone()))?;
        r.register(Box::new(self.tls_reloads.clone()))?;
        r.register(Box::new(self.jwks_fetches.clone()))?;
        r.register(Box::new(self.introspections.clone()))?;
        r.register(Box::new(self.jwks_last_success.clone()))?;
        r.register(Box::new(self.config_reloads.clone()))?;
        r.register(Box::new(self.config_last_reload_success.clone()))?;
        Ok(())
    }

    /// Registers the serving certificate's expiry: only a gateway that serves TLS has one (an
    /// always-present 0 would read as "expired" to an alert).
    pub(crate) fn register_tls_expiry(&self) -> Result<(), prometheus::Error> {
        self.registry
            .register(Box::new(self.tls_certificate_expiry.clone()))
    }

    /// Records one finished request on the proxy listener.
    pub fn record_request(
        &self,
        route: &str,
        method: &'static str,
        outcome: &'static str,
        reason: &'static str,
        status: http::StatusCode,
        elapsed: Duration,
    ) {
        self.record_request_on(
            Listener::Proxy,
            route,
            method,
            outcome,
            reason,
            status,
            elapsed,
        );
    }

    /// Records one finished request on `listener`.
    #[allow(clippy::too_many_arguments)] // reason: one label each
    pub fn record_request_on(
        &self,
        listener: Listener,
        route: &str,
        method: &'static str,
        outcome: &'static str,
        reason: &'static str,
        status: http::StatusCode,
        elapsed: Duration,
    ) {
        let listener = listener.as_str();
        self.requests
            .with_label_values(&[listener, route, method, outcome, reason, status.as_str()])
            .inc();
        self.request_duration
            .with_label_values(&[listener, route, outcome])
            .observe(elapsed.as_secs_f64());
    }

    /// The series of the upstream named `name` (a closed set: the configured upstreams), its
    /// error kinds at 0.
    pub(crate) fn upstream(&self, name: &str) -> UpstreamMetrics {
        for reason in Reason::all() {
            if reason.is_upstream() {
                self.upstream_errors
                    .with_label_values(&[name, reason.as_str()]);
            }
        }
        UpstreamMetrics {
            duration: self.upstream_duration.with_label_values(&[name]),
            by_class: STATUS_CLASSES
                .map(|class| self.upstream_response.with_label_values(&[name, class])),
            errors: self.upstream_errors.clone(),
            name: name.to_owned(),
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        if encoder.encode(&self.registry.gather(), &mut buf).is_err() {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}
