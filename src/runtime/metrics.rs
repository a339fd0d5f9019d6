//! Prometheus metrics of the operator, served as OpenMetrics text on `/metrics`.
//!
//! Every label value is drawn from a small fixed set: `&'static str` names the caller picks from an enum
//! (reconcile reason, OTS operation, phase) or one of the enums here. No label ever carries a resource
//! name, a namespace, a link, a key or a value, so the number of series stays bounded and nothing secret
//! can leak through a scrape.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::resource::Phase;

/// Content type of [`Metrics::encode`]'s output, for the `/metrics` response.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Outcome of one reconcile.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum ReconcileResult {
    /// The reconcile finished without error.
    Ok,
    /// The reconcile returned an error (and will be retried).
    Error,
}

impl ReconcileResult {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
        }
    }
}

/// How an OTS API call ended, coarse enough to be a label.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum StatusClass {
    /// A 2xx answer.
    Success,
    /// A 4xx answer other than 429.
    ClientError,
    /// 429 Too Many Requests.
    RateLimited,
    /// A 5xx answer.
    ServerError,
    /// No answer within the client's timeout.
    Timeout,
    /// The connection could not be made (DNS, TCP, TLS).
    Connect,
    /// Anything else (a body that could not be read or decoded, 1xx/3xx, ...).
    Other,
}

impl StatusClass {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "2xx",
            Self::ClientError => "4xx",
            Self::RateLimited => "429",
            Self::ServerError => "5xx",
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Other => "other",
        }
    }
}

impl EncodeLabelValue for StatusClass {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

impl EncodeLabelValue for ReconcileResult {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

/// What became of an attempt to burn a link.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum BurnResult {
    /// The server burned the secret.
    Burned,
    /// The secret was already received, burned or expired; nothing left to burn.
    AlreadyGone,
    /// The operator stopped trying (server down past the bound, passphrase gone); the link stays valid
    /// until it expires.
    GaveUp,
}

impl BurnResult {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Burned => "burned",
            Self::AlreadyGone => "already_gone",
            Self::GaveUp => "gave_up",
        }
    }
}

impl From<&crate::ots::BurnOutcome> for BurnResult {
    /// The label for what the OTS client reported of a burn.
    fn from(outcome: &crate::ots::BurnOutcome) -> Self {
        match outcome {
            crate::ots::BurnOutcome::Burned(_) => Self::Burned,
            crate::ots::BurnOutcome::AlreadyGone { .. } => Self::AlreadyGone,
        }
    }
}

impl EncodeLabelValue for BurnResult {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    result: ReconcileResult,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: &'static str,
    status_class: StatusClass,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BurnLabels {
    outcome: BurnResult,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotificationLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

/// Reconciles take from a millisecond (nothing to do) to tens of seconds (slow OTS server).
fn reconcile_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// OTS calls take from a few milliseconds (local server) to the client's timeout.
fn request_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

struct Families {
    registry: Registry,
    reconciles: Family<ReconcileLabels, Counter>,
    reconcile_duration: Histogram,
    ots_requests: Family<RequestLabels, Counter>,
    ots_request_duration: Family<OperationLabels, Histogram>,
    shares_created: Counter,
    orphans_possible: Counter,
    orphans_burned: Counter,
    links_expiring_unread: Gauge,
    burns: Family<BurnLabels, Counter>,
    notifications: Family<NotificationLabels, Counter>,
    resources: Family<PhaseLabels, Gauge>,
    limiter_waits: Counter,
    limiter_wait_seconds: Counter<f64, AtomicU64>,
    server_pauses: Counter,
    leader: Gauge,
}

/// The operator's metrics. Cheap to clone; every clone records into the same registry.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Families>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates a registry with every family registered, prefixed `ots_operator_`.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ots_operator");

        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles by result and reason",
            reconciles.clone(),
        );
        let reconcile_duration = reconcile_histogram();
        registry.register_with_unit(
            "reconcile_duration",
            "Time one reconcile took",
            Unit::Seconds,
            reconcile_duration.clone(),
        );
        let ots_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "ots_requests",
            "Onetime Secret API requests by operation and status class",
            ots_requests.clone(),
        );
        let ots_request_duration = Family::<OperationLabels, Histogram>::new_with_constructor(
            request_histogram as fn() -> Histogram,
        );
        registry.register_with_unit(
            "ots_request_duration",
            "Latency of Onetime Secret API requests by operation",
            Unit::Seconds,
            ots_request_duration.clone(),
        );
        let shares_created = Counter::default();
        registry.register(
            "shares_created",
            "Secrets shared on the Onetime Secret server",
            shares_created.clone(),
        );
        let orphans_possible = Counter::default();
        registry.register(
            "orphans_possible",
            "Share calls without a trustworthy answer after which the server may hold a live secret nobody recorded",
            orphans_possible.clone(),
        );
        let orphans_burned = Counter::default();
        registry.register(
            "orphans_burned",
            "Live secrets no OneTimeShare recorded that the operator found on its account and burned",
            orphans_burned.clone(),
        );
        let links_expiring_unread = Gauge::default();
        registry.register(
            "links_expiring_unread",
            "Live links nobody opened yet that expire within a quarter of their lifetime (at most 24 h)",
            links_expiring_unread.clone(),
        );
        let burns = Family::<BurnLabels, Counter>::default();
        registry.register("burns", "Burn attempts by outcome", burns.clone());
        let notifications = Family::<NotificationLabels, Counter>::default();
        registry.register(
            "notifications",
            "Notifications by outcome: delivered, failed (given up after retryFor), refused (the endpoint is not allowed), dropped (outbox full)",
            notifications.clone(),
        );
        let resources = Family::<PhaseLabels, Gauge>::default();
        registry.register(
            "resources",
            "OneTimeShare resources currently known, by phase",
            resources.clone(),
        );
        let limiter_waits = Counter::default();
        registry.register(
            "rate_limiter_waits",
            "OTS calls held back by the rate limit, a Retry-After pause or the in-flight cap",
            limiter_waits.clone(),
        );
        let limiter_wait_seconds = Counter::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "rate_limiter_wait",
            "Total time OTS calls were held back before being sent",
            Unit::Seconds,
            limiter_wait_seconds.clone(),
        );
        let server_pauses = Counter::default();
        registry.register(
            "ots_server_pauses",
            "Times the OTS server asked for a pause (429) and all calls were held back",
            server_pauses.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this process holds the leader lease (or leader election is off), else 0",
            leader.clone(),
        );

        Self {
            inner: Arc::new(Families {
                registry,
                reconciles,
                reconcile_duration,
                ots_requests,
                ots_request_duration,
                shares_created,
                orphans_possible,
                orphans_burned,
                links_expiring_unread,
                burns,
                notifications,
                resources,
                limiter_waits,
                limiter_wait_seconds,
                server_pauses,
                leader,
            }),
        }
    }

    /// Records a finished reconcile. `reason` must come from the operator's `Reason` enum.
    pub fn reconcile_done(
        &self,
        result: ReconcileResult,
        reason: &'static str,
        duration: Duration,
    ) {
        self.inner
            .reconciles
            .get_or_create(&ReconcileLabels { result, reason })
            .inc();
        self.inner
            .reconcile_duration
            .observe(duration.as_secs_f64());
    }

    /// Records one OTS API call. `operation` is a fixed name such as `share`, `receipt` or `burn`.
    pub fn ots_request(&self, operation: &'static str, class: StatusClass, latency: Duration) {
        self.inner
            .ots_requests
            .get_or_create(&RequestLabels {
                operation,
                status_class: class,
            })
            .inc();
        self.inner
            .ots_request_duration
            .get_or_create(&OperationLabels { operation })
            .observe(latency.as_secs_f64());
    }

    /// Records a secret shared on the server.
    pub fn share_created(&self) {
        self.inner.shares_created.inc();
    }

    /// Records secrets the server may hold that nobody recorded (an answer was lost).
    pub fn orphans_possible(&self, n: u64) {
        self.inner.orphans_possible.inc_by(n);
    }

    /// Records an unrecorded live secret found and burned.
    pub fn orphan_burned(&self) {
        self.inner.orphans_burned.inc();
    }

    /// Sets how many live, unopened links expire soon.
    pub fn set_links_expiring_unread(&self, n: i64) {
        self.inner.links_expiring_unread.set(n);
    }

    /// Records the end of a burn attempt.
    pub fn burn(&self, outcome: BurnResult) {
        self.inner
            .burns
            .get_or_create(&BurnLabels { outcome })
            .inc();
    }

    /// Sets the per-phase gauge from the phases counted in the watch cache: every phase is
    /// written, so a phase missing from `counts` drops to 0.
    pub fn set_phase_counts(&self, counts: impl IntoIterator<Item = (Phase, i64)>) {
        let counts: Vec<_> = counts.into_iter().collect();
        for phase in Phase::ALL {
            let count = counts
                .iter()
                .filter(|(p, _)| *p == phase)
                .map(|(_, n)| n)
                .sum();
            self.inner
                .resources
                .get_or_create(&PhaseLabels {
                    phase: phase.as_str(),
                })
                .set(count);
        }
    }

    /// Records a call that was held back for `waited` before being sent.
    pub fn limiter_waited(&self, waited: Duration) {
        self.inner.limiter_waits.inc();
        self.inner.limiter_wait_seconds.inc_by(waited.as_secs_f64());
    }

    /// Records that the server asked everyone to pause (a 429).
    pub fn server_paused(&self) {
        self.inner.server_pauses.inc();
    }

    /// Records the end of a notification: delivered, failed, refused or dropped.
    pub fn notification(&self, outcome: crate::resource::notification::DeliveryOutcome) {
        self.inner
            .notifications
            .get_or_create(&NotificationLabels {
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// Records whether this process is the one that reconciles.
    pub fn set_leader(&self, leading: bool) {
        self.inner.leader.set(i64::from(leading));
    }

    /// The registry as OpenMetrics text (see [`OPENMETRICS_CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.inner.registry).is_err() {
            // Writing into a String cannot fail; an encoder error would be a bug in a label value.
            out.clear();
            let _ = writeln!(out, "# EOF");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the one sample line that starts with `series` (name plus labels), if any.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    /// Asserts each series' value in an exposition, naming the series that differs.
    fn assert_samples(text: &str, expected: &[(&str, f64)]) {
        for (series, value) in expected {
            assert_eq!(sample(text, series), Some(*value), "{series}");
        }
    }

    #[test]
    fn reconciles_are_counted_by_result_and_reason() {
        let m = Metrics::new();
        m.reconcile_done(ReconcileResult::Ok, "Shared", Duration::from_millis(250));
        m.reconcile_done(ReconcileResult::Ok, "Shared", Duration::from_millis(500));
        m.reconcile_done(
            ReconcileResult::Error,
            "ServerUnavailable",
            Duration::from_secs(2),
        );
        let text = m.encode();
        assert_samples(
            &text,
            &[
                (
                    r#"ots_operator_reconciles_total{result="ok",reason="Shared"}"#,
                    2.0,
                ),
                (
                    r#"ots_operator_reconciles_total{result="error",reason="ServerUnavailable"}"#,
                    1.0,
                ),
                ("ots_operator_reconcile_duration_seconds_count", 3.0),
                ("ots_operator_reconcile_duration_seconds_sum", 2.75),
            ],
        );
    }

    #[test]
    fn ots_requests_are_counted_by_operation_and_status_class_with_latency() {
        let m = Metrics::new();
        m.ots_request("share", StatusClass::Success, Duration::from_millis(40));
        m.ots_request("share", StatusClass::RateLimited, Duration::from_millis(5));
        m.ots_request("receipt", StatusClass::Timeout, Duration::from_secs(10));
        let text = m.encode();
        assert_samples(
            &text,
            &[
                (
                    r#"ots_operator_ots_requests_total{operation="share",status_class="2xx"}"#,
                    1.0,
                ),
                (
                    r#"ots_operator_ots_requests_total{operation="share",status_class="429"}"#,
                    1.0,
                ),
                (
                    r#"ots_operator_ots_requests_total{operation="receipt",status_class="timeout"}"#,
                    1.0,
                ),
                (
                    r#"ots_operator_ots_request_duration_seconds_count{operation="share"}"#,
                    2.0,
                ),
            ],
        );
    }

    #[test]
    fn a_burn_the_client_reports_is_counted_under_its_outcome() {
        use crate::ots::{BurnOutcome, Receipt, SecretState};
        let burned = BurnOutcome::Burned(Box::new(Receipt {
            metadata_key: "metadatakey".into(),
            secret_key: None,
            state: SecretState::Burned,
            ttl: None,
            secret_ttl: None,
            metadata_ttl: None,
            created: None,
            updated: None,
            received: None,
            first_access: None,
            passphrase_required: None,
            receipt_url: None,
            recipients: Vec::new(),
            share_domain: None,
        }));
        let gone = BurnOutcome::AlreadyGone {
            state: SecretState::Received,
            received: Some(1),
        };
        let m = Metrics::new();
        m.burn(BurnResult::from(&burned));
        m.burn(BurnResult::from(&gone));
        m.burn(BurnResult::from(&gone));
        let text = m.encode();
        let burns = |outcome: &str| {
            sample(
                &text,
                &format!(r#"ots_operator_burns_total{{outcome="{outcome}"}}"#),
            )
        };
        assert_eq!(burns("burned"), Some(1.0));
        assert_eq!(burns("already_gone"), Some(2.0));
    }

    #[test]
    fn shares_burns_and_limiter_waits_are_counted() {
        let m = Metrics::new();
        m.share_created();
        m.share_created();
        m.burn(BurnResult::Burned);
        m.burn(BurnResult::AlreadyGone);
        m.burn(BurnResult::GaveUp);
        m.burn(BurnResult::GaveUp);
        m.limiter_waited(Duration::from_millis(500));
        m.limiter_waited(Duration::from_millis(250));
        m.server_paused();
        let text = m.encode();
        assert_samples(
            &text,
            &[
                ("ots_operator_shares_created_total", 2.0),
                (r#"ots_operator_burns_total{outcome="burned"}"#, 1.0),
                (r#"ots_operator_burns_total{outcome="already_gone"}"#, 1.0),
                (r#"ots_operator_burns_total{outcome="gave_up"}"#, 2.0),
                ("ots_operator_rate_limiter_waits_total", 2.0),
                ("ots_operator_rate_limiter_wait_seconds_total", 0.75),
                ("ots_operator_ots_server_pauses_total", 1.0),
            ],
        );
    }

    #[test]
    fn phase_gauge_reports_every_phase_and_drops_unreported_ones_to_zero() {
        let m = Metrics::new();
        m.set_phase_counts([(Phase::Pending, 1), (Phase::Shared, 2)]);
        let text = m.encode();
        assert_samples(
            &text,
            &[
                (r#"ots_operator_resources{phase="Pending"}"#, 1.0),
                (r#"ots_operator_resources{phase="Shared"}"#, 2.0),
                (r#"ots_operator_resources{phase="Failed"}"#, 0.0),
            ],
        );

        m.set_phase_counts([(Phase::Received, 4)]);
        let text = m.encode();
        assert_samples(
            &text,
            &[
                (r#"ots_operator_resources{phase="Received"}"#, 4.0),
                (r#"ots_operator_resources{phase="Pending"}"#, 0.0),
                (r#"ots_operator_resources{phase="Shared"}"#, 0.0),
            ],
        );
    }

    #[test]
    fn leader_gauge_reports_leadership() {
        let m = Metrics::new();
        m.set_leader(true);
        assert_eq!(sample(&m.encode(), "ots_operator_leader"), Some(1.0));
        m.set_leader(false);
        assert_eq!(sample(&m.encode(), "ots_operator_leader"), Some(0.0));
    }

    #[test]
    fn encoding_is_openmetrics_text_ending_in_eof() {
        let m = Metrics::new();
        m.share_created();
        let text = m.encode();
        assert!(
            text.contains("# TYPE ots_operator_shares_created counter"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn clones_record_into_the_same_registry() {
        let m = Metrics::new();
        let c = m.clone();
        c.share_created();
        assert_eq!(
            sample(&m.encode(), "ots_operator_shares_created_total"),
            Some(1.0)
        );
    }
}
