//! Notifications of a share's transitions to endpoints outside the cluster (design:
//! `docs/notifications-design.md`). So far the self-contained parts, not wired into the
//! controller: what is sent ([`payload`], [`chat`]), how it is signed ([`sign`]) and where it may
//! go ([`allowlist`], [`address`], [`endpoint`]).

pub mod address;
pub mod allowlist;
pub mod chat;
pub mod endpoint;
pub mod payload;
pub mod sign;
