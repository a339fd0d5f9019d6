//! The machinery the controller runs on: who leads, how fast OTS calls go, what is measured,
//! whether the process is ready, and the HTTP endpoints that show it. Nothing here reconciles;
//! [`crate::run`] wires the pieces together.
//!
//! - [`leader`]: leader election on a Lease; the elector publishes its [`readiness::LeaderState`] and
//!   whether it leads, and knows nothing of readiness or metrics ([`crate::run`] wires those up).
//! - [`throttle`]: the one gate every OTS call passes ([`throttle::Throttle::call`]): a process-wide
//!   rate and in-flight bound, a server object's own rate (`rateLimit`), and a per-server pause
//!   after a 429; waiting calls take turns.
//! - [`slots`]: the reconcile slots (`--concurrency`), taken in turns before a reconcile starts.
//! - [`fair`]: the order of those turns: revocations first, then the namespaces round-robin.
//! - [`metrics`]: the Prometheus registry and every metric the operator exports.
//! - [`readiness`]: what `/readyz` reports (watch health and the leader state).
//! - [`kube_client`]: the Kubernetes client, kube's stack with a bounded idle connection pool.
//! - [`http`]: the `/metrics`, `/healthz` and `/readyz` server.
pub mod fair;
pub mod http;
pub mod kube_client;
pub mod leader;
pub mod metrics;
pub mod readiness;
pub mod slots;
pub mod throttle;
