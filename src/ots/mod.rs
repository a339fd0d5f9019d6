//! Onetime Secret API client (v1 and v2), with no Kubernetes types in it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ots_operator::ots::OtsError> {
//! use ots_operator::ots::{ClientConfig, OtsClient, ShareRequest};
//! let url = url::Url::parse("https://eu.onetimesecret.com").expect("valid URL");
//! let client = OtsClient::new(ClientConfig::new(url))?;
//! let receipt = client.share(&ShareRequest::new("s3cret")).await?;
//! let link = receipt.secret_link(client.base_url());
//! # Ok(()) }
//! ```
//!
//! - [`OtsClient`] checks input before sending (size, passphrase length, lifetime, key shape),
//!   resolves `auto` to v1 or v2 once, and maps every answer to a [`Receipt`], a value, or an
//!   [`OtsError`] the caller can act on (`is_transient`, `retry_after`).
//! - Secret values, passphrases and API tokens travel as [`SecretString`]; no `Debug`, `Display`,
//!   error or log line of this module contains them, nor full keys (logs show a 6-character
//!   prefix).
//! - The per-version details (routes, bodies, error tables) live in `v1.rs` and `v2.rs`.

mod client;
mod config;
mod error;
pub(crate) mod http;
mod json;
mod types;
mod v1;
mod v2;
pub mod validate;

pub use client::{Learned, OtsClient};
pub use config::{ApiVersion, ClientConfig, Credentials, DEFAULT_TIMEOUT, ParseApiVersionError};
pub use error::{InputError, OtsError};
pub use http::{USER_AGENT, build_client_with_roots as http_client_with_roots};
pub use secrecy::{ExposeSecret, SecretString};
pub use types::{
    BurnOutcome, GenerateRequest, Receipt, ResolvedApi, SecretState, ServerStatus, ShareRequest,
    Unread,
};
