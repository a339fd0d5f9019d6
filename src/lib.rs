//! ots-operator: hands out Kubernetes Secrets as Onetime Secret one-time links.
pub mod ots;
