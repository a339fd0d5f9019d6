//! In-memory, Onetime Secret compatible API server for tests, with fault injection.
//!
//! It serves `/api/v1` and `/api/v2` with the semantics of the real server (see
//! `shared/ots-api.md`): one-time reveal, passphrase gate and lockout, burn rules, ttl
//! clamping and expiry on a controllable clock, exact error bodies per version.
//!
//! The same listener has an admin API (never under `/api`, never hit by faults):
//!
//! | request | answer |
//! |---|---|
//! | `GET /_admin/stats` | [`Stats`] |
//! | `GET /_admin/requests` | `[RequestRecord]` ([`RequestRecord`], `at` in ms) |
//! | `GET /_admin/faults` | [`Faults`] |
//! | `PUT /_admin/faults` with [`Faults`] JSON (missing fields: off) | the new [`Faults`]; 400 if invalid |
//! | `POST /_admin/clock/advance?secs=N` | `{"advanced_secs": N}` |
//! | `GET /_admin/live` | `[LiveReceipt]` ([`LiveReceipt`]) |
//! | `POST /_admin/reset` | `{"reset": true}`: clears counters and the log, keeps secrets |
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use ots_testserver::{Config, TestServer};
//! let server = TestServer::start(Config::default()).await?;
//! let api = format!("{}/api/v1", server.url());
//! # let _ = api; Ok(()) }
//! ```
#![deny(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod api;
mod auth;
mod clock;
mod config;
mod create;
mod faults;
mod keys;
mod params;
mod server;
mod site;
mod stats;
mod store;
mod v1;
mod v2;
mod v2_legacy;

pub use config::{
    Account, AccountParseError, BODY_LIMIT_BYTES, Config, CustomDomain, DEFAULT_TTL, FREE_TTL,
    MIN_TTL, ParseChoiceError, Plan, Profile, SECRET_MAX_BYTES,
};
pub use faults::{AfterStoreFault, AfterStoreKind, BatchStatusFault, Faults, RateLimitFault};
pub use keys::{KEY_LEN, LEGACY_KEY_LEN, SHORTKEY_LEN};
pub use server::TestServer;
pub use stats::{ApiVersion, RequestRecord, Stats};
pub use store::LiveReceipt;
