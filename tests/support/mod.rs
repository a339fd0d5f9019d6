//! Shared helpers for the integration tests in `tests/*.rs` (each test file says `mod support;`).
#![allow(dead_code)]

pub mod browser;
pub mod chart;
pub mod cluster;
pub mod node;
pub mod operator;
pub mod readme;
pub mod real_ots;
pub mod tls;
pub mod tools;
pub mod world;
