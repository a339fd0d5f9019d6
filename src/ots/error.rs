//! Typed errors of the Onetime Secret client.
//!
//! The variants separate what a caller must treat differently (retry, report, give up). No variant
//! ever holds a secret value, a passphrase, an API token or a full secret key, so `Display` and
//! `Debug` are safe to log.

use std::time::Duration;

/// A failed Onetime Secret call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtsError {
    /// The secret or receipt is unknown, already consumed, burned or expired, or the passphrase
    /// given to a reveal was wrong (the server does not tell these apart).
    #[error(
        "not found: the secret or receipt is unknown, consumed, burned or expired (or the passphrase is wrong)"
    )]
    NotFound,
    /// Credentials are wrong, missing where required, or lack the rights for this call.
    #[error("not authorized: the server rejected the credentials")]
    Unauthorized,
    /// The server refused the request; `message` is the server's own text.
    #[error("rejected by the server: {message}")]
    Validation {
        /// The server's message, truncated; it never contains the secret.
        message: String,
    },
    /// The server asked us to slow down.
    #[error("rate limited by the server{}", retry_after_text(*.retry_after))]
    RateLimited {
        /// How long the server asked us to wait, when it said so.
        retry_after: Option<Duration>,
    },
    /// The server could not be reached or failed (5xx, connect error, timeout).
    #[error("server unavailable: {detail}")]
    Unavailable {
        /// What went wrong, without URLs or bodies.
        detail: String,
    },
    /// The server answered something this client cannot understand.
    #[error("unexpected response from the server: {detail}")]
    Protocol {
        /// What was wrong with the answer (never the raw body).
        detail: String,
    },
    /// The request was refused before anything was sent.
    #[error("invalid input: {0}")]
    InvalidInput(#[from] InputError),
    /// The HTTP client itself could not be set up (for example no usable TLS configuration).
    #[error("cannot set up the HTTP client: {detail}")]
    Setup {
        /// What failed.
        detail: String,
    },
}

fn retry_after_text(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!(" (retry after {} s)", d.as_secs()),
        None => String::new(),
    }
}

impl OtsError {
    /// Whether trying the same call again later may succeed (rate limits, outages, timeouts).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Unavailable { .. })
    }

    /// Whether the server may have carried out the call although the caller got no trustworthy
    /// answer: the request was sent and then timed out, failed with 5xx, lost its connection,
    /// or was answered with something unreadable. A connection that was never made is not.
    pub fn may_have_been_carried_out(&self) -> bool {
        match self {
            Self::Unavailable { detail } => !detail.contains(super::http::CONNECT_FAILED),
            Self::Protocol { .. } => true,
            _ => false,
        }
    }

    /// How long the server asked the caller to wait before retrying, when it said so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
}

/// A request refused by client-side checks, before any network traffic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// The secret is empty.
    #[error("the secret is empty")]
    Empty,
    /// The secret is larger than the server accepts (10,000 bytes).
    #[error("the secret is {bytes} bytes; the server accepts at most {max} bytes", max = crate::ots::validate::MAX_SECRET_BYTES)]
    TooLarge {
        /// Size of the rejected secret in bytes.
        bytes: usize,
    },
    /// The passphrase is shorter than 4 or longer than 128 characters.
    #[error("the passphrase has {chars} characters; it must have {min} to {max}", min = crate::ots::validate::PASSPHRASE_MIN_CHARS, max = crate::ots::validate::PASSPHRASE_MAX_CHARS)]
    PassphraseLength {
        /// Length of the rejected passphrase in characters.
        chars: usize,
    },
    /// The lifetime is shorter than the server's minimum of 60 seconds.
    #[error("the lifetime is {secs} s; it must be at least {min} s", min = crate::ots::validate::MIN_TTL_SECS)]
    TtlTooShort {
        /// The rejected lifetime in whole seconds.
        secs: u64,
    },
    /// A secret or metadata key is empty or has characters other than ASCII letters and digits.
    #[error("the key is empty or contains characters other than ASCII letters and digits")]
    InvalidKey,
    /// The base URL is not an absolute http(s) URL that paths can be appended to.
    #[error("the server URL must be an absolute http or https URL")]
    InvalidBaseUrl,
}
