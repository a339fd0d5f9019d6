//! ots-operator: hands out Kubernetes Secrets as Onetime Secret one-time links.
pub mod backoff;
pub mod config;
pub mod controller;
pub mod error;
pub mod notify;
pub mod ots;
pub mod resource;
pub mod run;
pub mod runtime;
pub mod telemetry;
pub use error::{Error, Reason};
