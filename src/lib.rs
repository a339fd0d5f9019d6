//! ots-operator: hands out Kubernetes Secrets as Onetime Secret one-time links.
pub mod backoff;
pub mod config;
pub mod controller;
pub mod error;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod ots;
pub mod readiness;
pub mod resource;
pub mod run;
pub mod telemetry;
pub mod throttle;
pub use error::{Error, Reason};
