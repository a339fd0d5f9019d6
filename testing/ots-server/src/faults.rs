//! Fault injection: switches that make the server misbehave the way real deployments do.

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Faults applied to every API request (`/api/...`); the admin API and site routes are never affected.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Fraction (0.0-1.0) of API requests answered with a bare 500 or 503.
    pub error_rate: f64,
    /// Fraction (0.0-1.0) of API requests that hang far longer than any client timeout (120 s).
    pub timeout_rate: f64,
    /// Latency added to every API request, in milliseconds.
    pub latency_ms: u64,
    /// A burst of rate limiting: v2 answers 429, v1 its documented 404 form; both with `Retry-After`.
    pub rate_limit: Option<RateLimitFault>,
    /// Every API request fails with 503.
    pub outage: bool,
    /// A fault that strikes a create (v1 share/create/generate, v2 conceal/generate) *after*
    /// its secret is stored, so the secret exists but the client gets no usable answer.
    pub after_store: Option<AfterStoreFault>,
    /// The batch status route (`POST /api/v2/secret/status`) lies: it lists none of the
    /// secrets asked about, as if every one had been read, burned or expired.
    pub batch_status_omits: bool,
    /// The batch status route (`POST /api/v2/secret/status`) does not exist: it is answered
    /// as an unknown route (404), as a server before v0.24 (the `v0.20` profile) answers it,
    /// so a client goes back to reading one receipt per link.
    pub batch_status_missing: bool,
    /// Every batch status call (`POST /api/v2/secret/status`) fails this way, and no other
    /// request: tracking in trouble while shares and burns are served.
    pub batch_status_fails: Option<BatchStatusFault>,
}

/// How the batch status route fails under [`Faults::batch_status_fails`].
///
/// JSON: `"status_500"`, `"rate_limited"`, `"hang"` or `"garbage"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchStatusFault {
    /// A bare `500 Internal Server Error`.
    #[serde(rename = "status_500")]
    Status500,
    /// The API version's rate-limit answer, with `Retry-After: 2`.
    RateLimited,
    /// Hang far past any client timeout (120 s), then 504.
    Hang,
    /// HTTP 200 with a non-JSON (HTML) body, as a captive portal or error page sends.
    Garbage,
}

impl BatchStatusFault {
    /// What the request is answered with.
    pub(crate) fn injected(self) -> Injected {
        match self {
            BatchStatusFault::Status500 => Injected::ServerError(500),
            BatchStatusFault::RateLimited => Injected::RateLimited {
                retry_after_secs: 2,
            },
            BatchStatusFault::Hang => Injected::Hang,
            BatchStatusFault::Garbage => Injected::Garbage,
        }
    }
}

/// A fault that strikes after a create has stored its secret (the secret stays live and
/// shows in `/_admin/live`). It strikes only creates that succeeded.
///
/// JSON: `{"kind": "reset", "count": 2}` or `{"kind": "status_503", "rate": 0.5}`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AfterStoreFault {
    /// What the client gets instead of the answer.
    pub kind: AfterStoreKind,
    /// Fraction (0.0-1.0) of successful creates it strikes; missing: every one.
    #[serde(default)]
    pub rate: Option<f64>,
    /// Strike only the next N successful creates (counted down as they are struck; shown
    /// as the remaining count); missing: no limit.
    #[serde(default)]
    pub count: Option<u32>,
}

/// What a create struck by an [`AfterStoreFault`] answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AfterStoreKind {
    /// Answer late: hang far past any client timeout (120 s), then 504.
    Hang,
    /// A bare `500 Internal Server Error` (text/plain), as a crashing app server sends.
    #[serde(rename = "status_500")]
    Status500,
    /// A bare `502 Bad Gateway` (text/plain), as a proxy whose upstream died sends.
    #[serde(rename = "status_502")]
    Status502,
    /// A bare `503 Service Unavailable` (text/plain).
    #[serde(rename = "status_503")]
    Status503,
    /// HTTP 200 with a non-JSON (HTML) body, as a captive portal or error page sends.
    Garbage,
    /// Close the connection without sending any answer.
    Reset,
}

impl AfterStoreKind {
    /// Short name used in the request log (`fault`).
    pub(crate) fn label(self) -> &'static str {
        match self {
            AfterStoreKind::Hang => "after_store_hang",
            AfterStoreKind::Status500 => "after_store_500",
            AfterStoreKind::Status502 => "after_store_502",
            AfterStoreKind::Status503 => "after_store_503",
            AfterStoreKind::Garbage => "after_store_garbage",
            AfterStoreKind::Reset => "after_store_reset",
        }
    }
}

impl std::str::FromStr for AfterStoreKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hang" => Ok(AfterStoreKind::Hang),
            "500" | "status_500" => Ok(AfterStoreKind::Status500),
            "502" | "status_502" => Ok(AfterStoreKind::Status502),
            "503" | "status_503" => Ok(AfterStoreKind::Status503),
            "garbage" => Ok(AfterStoreKind::Garbage),
            "reset" => Ok(AfterStoreKind::Reset),
            _ => Err(format!(
                "unknown after-store fault {s:?}; expected hang, 500, 502, 503, garbage or reset"
            )),
        }
    }
}

/// A burst of rate limiting that starts when it is set and lasts `for_secs` (on the server clock).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimitFault {
    /// Value of the `Retry-After` header, in seconds.
    pub retry_after_secs: u64,
    /// How long the burst lasts from when it is set, in seconds.
    pub for_secs: u64,
}

/// How long a "timeout" fault hangs: far longer than any sane client timeout.
pub(crate) const HANG: std::time::Duration = std::time::Duration::from_secs(120);

/// What the fault switches decided for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Injected {
    /// Serve normally.
    Nothing,
    /// Answer 503 because of the outage switch.
    Outage,
    /// Answer with the rate-limit form of the API version.
    RateLimited { retry_after_secs: u64 },
    /// Hang, then (if the client is still there) answer 504.
    Hang,
    /// Answer a bare server error with this status.
    ServerError(u16),
    /// Answer 200 with an HTML page instead of JSON.
    Garbage,
}

impl Injected {
    /// Short name used in the request log.
    pub(crate) fn label(self) -> Option<&'static str> {
        match self {
            Injected::Nothing => None,
            Injected::Outage => Some("outage"),
            Injected::RateLimited { .. } => Some("rate_limit"),
            Injected::Hang => Some("timeout"),
            Injected::ServerError(_) => Some("error"),
            Injected::Garbage => Some("garbage"),
        }
    }
}

/// The switches plus when the current rate-limit burst ends.
#[derive(Debug, Default)]
pub(crate) struct FaultState {
    pub(crate) faults: Faults,
    /// Server-clock second at which the rate-limit burst ends.
    pub(crate) rate_limit_until: u64,
}

impl FaultState {
    /// Installs new switches; a rate-limit burst starts now.
    pub(crate) fn set(&mut self, faults: Faults, now: u64) {
        self.rate_limit_until = faults
            .rate_limit
            .map_or(0, |r| now.saturating_add(r.for_secs));
        self.faults = faults;
    }

    /// Decides whether a create that just stored its secret is struck, and how; counts a
    /// strike against `count`.
    pub(crate) fn decide_after_store(&mut self) -> Option<AfterStoreKind> {
        let fault = self.faults.after_store.as_mut()?;
        if fault.count == Some(0) {
            return None;
        }
        if let Some(rate) = fault.rate
            && !rand::rng().random_bool(rate.clamp(0.0, 1.0))
        {
            return None;
        }
        if let Some(n) = fault.count.as_mut() {
            *n -= 1;
        }
        Some(fault.kind)
    }

    /// Decides the fault for one API request.
    pub(crate) fn decide(&self, now: u64) -> Injected {
        let f = &self.faults;
        if f.outage {
            return Injected::Outage;
        }
        if let Some(r) = f.rate_limit
            && now < self.rate_limit_until
        {
            return Injected::RateLimited {
                retry_after_secs: r.retry_after_secs,
            };
        }
        let mut rng = rand::rng();
        if f.timeout_rate > 0.0 && rng.random_bool(f.timeout_rate.clamp(0.0, 1.0)) {
            return Injected::Hang;
        }
        if f.error_rate > 0.0 && rng.random_bool(f.error_rate.clamp(0.0, 1.0)) {
            return Injected::ServerError(if rng.random_bool(0.5) { 500 } else { 503 });
        }
        Injected::Nothing
    }
}
