//! Request counters and the request log tests assert against.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Most requests kept in the log; older ones are dropped (counters keep counting).
const LOG_CAPACITY: usize = 200_000;

/// Which API a request addressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiVersion {
    /// `/api/v1`
    V1,
    /// `/api/v2`
    V2,
}

/// One API request as logged: never a query string, body, or header value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Request path without the query string.
    pub path: String,
    /// Operation name (see [`Stats::by_operation`]), `not_found` for unknown routes.
    pub operation: String,
    /// Status code sent.
    pub status: u16,
    /// API version addressed.
    pub api: ApiVersion,
    /// Time since the server started.
    #[serde(with = "duration_ms")]
    pub at: Duration,
    /// Injected fault (`error`, `timeout`, `rate_limit`, `outage`), if any.
    pub fault: Option<String>,
    /// Whether the request carried credentials of a known account.
    pub authenticated: bool,
}

mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// Counters since start (or the last reset).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// API requests answered (admin and site requests are not counted).
    pub requests_total: u64,
    /// Requests per operation: `status`, `authcheck`, `share`, `generate`, `reveal`,
    /// `receipt`, `burn`, `recent`, `secret`, `secret_status`, `secret_status_list`,
    /// `receipt_update`, `version`, `supported_locales`, `not_found`; the same names
    /// for v1 and v2.
    pub by_operation: BTreeMap<String, u64>,
    /// Requests per status code sent.
    pub by_status: BTreeMap<u16, u64>,
    /// Secrets that are unread, unexpired and unburned right now.
    pub live_secrets: usize,
    /// Requests answered by a fault switch rather than normally.
    pub faults_injected: u64,
}

/// Counters plus the bounded log.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    stats: Stats,
    log: VecDeque<RequestRecord>,
}

impl Recorder {
    pub(crate) fn record(&mut self, rec: RequestRecord) {
        self.stats.requests_total += 1;
        *self
            .stats
            .by_operation
            .entry(rec.operation.clone())
            .or_default() += 1;
        *self.stats.by_status.entry(rec.status).or_default() += 1;
        if rec.fault.is_some() {
            self.stats.faults_injected += 1;
        }
        if self.log.len() == LOG_CAPACITY {
            self.log.pop_front();
        }
        self.log.push_back(rec);
    }

    pub(crate) fn stats(&self, live_secrets: usize) -> Stats {
        Stats {
            live_secrets,
            ..self.stats.clone()
        }
    }

    pub(crate) fn requests(&self) -> Vec<RequestRecord> {
        self.log.iter().cloned().collect()
    }

    pub(crate) fn reset(&mut self) {
        *self = Recorder::default();
    }
}
