//! Typed errors of the Onetime Secret client.
//!
//! The variants separate what a caller must treat differently (retry, report, give up). No variant
//! ever holds a secret value, a passphrase, an API token or a full secret key, so `Display` and
//! `Debug` are safe to log.

use std::time::Duration;

use super::types::SecretState;

/// A failed Onetime Secret call.
///
/// Server text is untrusted input: a variant only carries a server's message when it is one of
/// the real server's known texts ([`super::json::known_message`]); otherwise it says the HTTP
/// status and `error_type`. Every string kept is also scrubbed of the secret value, passphrase
/// and API token sent with the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtsError {
    /// The secret or receipt is unknown, already consumed, burned or expired, or the passphrase
    /// given to a reveal was wrong (the server does not tell these apart). Only a record-level
    /// answer (v2 `RecordNotFound`, v1 `Unknown secret`) means this; an unknown route never does.
    #[error(
        "not found: the secret or receipt is unknown, consumed, burned or expired (or the passphrase is wrong)"
    )]
    NotFound,
    /// The server has no such route: a wrong base URL or path prefix, a proxy in the way, or a
    /// server version without this endpoint. Never a sign that a secret is gone.
    #[error(
        "the server has no route {path} (HTTP 404): check the server URL and --ots-api; this is a configuration or server-version problem, not a missing secret"
    )]
    RouteNotFound {
        /// The URL path that did not exist (keys shortened to a prefix).
        path: String,
    },
    /// Credentials are wrong, or missing where required.
    #[error("not authorized: the server rejected the credentials")]
    Unauthorized,
    /// The account's plan does not include what the request asked for (v2 403
    /// `EntitlementRequired`), e.g. a lifetime above the plan's maximum.
    #[error("the account's plan does not allow this request{}", entitlement_text(.entitlement.as_deref()))]
    EntitlementRequired {
        /// The entitlement the server named (`extended_default_expiration`, `api_access`, …).
        entitlement: Option<String>,
    },
    /// The server does not accept anonymous requests on this API (v2 403 `GuestRoutesDisabled`).
    #[error("the server does not accept anonymous API requests (its guest routes are disabled)")]
    GuestRoutesDisabled,
    /// The server forbade the request for a reason other than credentials or the plan (e.g. a
    /// share domain the account may not use).
    #[error("forbidden by the server: {detail}")]
    Forbidden {
        /// The server's known message, or the HTTP status and `error_type`.
        detail: String,
    },
    /// The server declined the action (v0.21–v0.23 answer `500 {success:false, message}`, any
    /// version `success:false`): a refusal, not an outage.
    #[error("the server declined the request: {message}")]
    Refused {
        /// The server's known message, or the HTTP status.
        message: String,
    },
    /// The server refused the secret as too large (its own limit, which may differ from the
    /// 10,000-byte default).
    #[error("the server refused the secret as too large{}", max_text(*.max))]
    SecretTooLarge {
        /// The server's limit in bytes, when it said.
        max: Option<usize>,
    },
    /// The server refused the passphrase (its own length or complexity rules).
    #[error("the server refused the passphrase: {message}")]
    PassphraseRefused {
        /// The server's known message.
        message: String,
    },
    /// The server refused the request; `message` is the server's own text when it is a known one.
    #[error("rejected by the server: {message}")]
    Validation {
        /// The server's known message, or the HTTP status and `error_type`.
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
    /// A burn neither destroyed the secret nor found it gone: the receipt still shows it live.
    /// The link may still work; try again later.
    #[error(
        "the burn is not confirmed: the server did not burn the secret, and its receipt still says `{state}`"
    )]
    BurnUnconfirmed {
        /// The receipt's state after the failed burn.
        state: SecretState,
    },
    /// The server answered something this client cannot understand.
    #[error("unexpected response from the server: {detail}")]
    Protocol {
        /// What was wrong with the answer (never the raw body).
        detail: String,
    },
    /// A share domain was asked of a server spoken to over v1, which has none (nothing was
    /// sent: the link would be on the server's own host).
    #[error(
        "the server speaks API v1, which cannot put links on a share domain (use API v2, or remove shareDomain)"
    )]
    ShareDomainUnsupported,
    /// The request was refused before anything was sent.
    #[error("invalid input: {0}")]
    InvalidInput(#[from] InputError),
    /// The HTTP client itself could not be set up (for example no usable TLS configuration).
    #[error("cannot set up the HTTP client: {detail}")]
    Setup {
        /// What failed.
        detail: String,
    },
    /// The server's TLS certificate is not signed by an authority the operator trusts (a
    /// private CA, or a self-signed certificate). Nothing was sent.
    #[error(
        "{server} presented a TLS certificate that no trusted authority signed ({detail}); if the server uses a private CA, give the operator its certificate (the chart's caBundle value, or --ots-ca-file)"
    )]
    TlsUntrusted {
        /// The server's origin (scheme, host, port).
        server: String,
        /// What the certificate check said.
        detail: String,
    },
}

fn retry_after_text(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!(" (retry after {} s)", d.as_secs()),
        None => String::new(),
    }
}

fn entitlement_text(entitlement: Option<&str>) -> String {
    match entitlement {
        Some(name) => format!(" (it lacks the `{name}` entitlement)"),
        None => String::new(),
    }
}

fn max_text(max: Option<usize>) -> String {
    match max {
        Some(max) => format!(" (it accepts at most {max} bytes)"),
        None => String::new(),
    }
}

impl OtsError {
    /// Whether trying the same call again later may succeed (rate limits, outages, timeouts, a
    /// burn the server did not confirm).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. } | Self::Unavailable { .. } | Self::BurnUnconfirmed { .. }
        )
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

    /// The same error with every occurrence of `sensitive` (the secret value, passphrase and API
    /// token sent with the request) removed from the text it keeps.
    pub(crate) fn scrub(self, sensitive: &[&str]) -> Self {
        let clean = |text: String| scrub_text(text, sensitive);
        match self {
            Self::RouteNotFound { path } => Self::RouteNotFound { path: clean(path) },
            Self::EntitlementRequired { entitlement } => Self::EntitlementRequired {
                entitlement: entitlement.map(clean),
            },
            Self::Forbidden { detail } => Self::Forbidden {
                detail: clean(detail),
            },
            Self::Refused { message } => Self::Refused {
                message: clean(message),
            },
            Self::PassphraseRefused { message } => Self::PassphraseRefused {
                message: clean(message),
            },
            Self::Validation { message } => Self::Validation {
                message: clean(message),
            },
            Self::Unavailable { detail } => Self::Unavailable {
                detail: clean(detail),
            },
            Self::Protocol { detail } => Self::Protocol {
                detail: clean(detail),
            },
            Self::Setup { detail } => Self::Setup {
                detail: clean(detail),
            },
            Self::BurnUnconfirmed { state } => Self::BurnUnconfirmed {
                state: match state {
                    SecretState::Unknown(word) => SecretState::Unknown(clean(word)),
                    known => known,
                },
            },
            other => other,
        }
    }
}

/// `text` without the `sensitive` values. Values shorter than 4 characters are removed only
/// where they stand alone (between non-alphanumeric characters): as substrings they would be
/// found inside ordinary words, which they cannot reveal.
fn scrub_text(mut text: String, sensitive: &[&str]) -> String {
    const REDACTED: &str = "[redacted]";
    for value in sensitive.iter().filter(|v| !v.is_empty()) {
        if value.chars().count() >= 4 {
            if text.contains(*value) {
                text = text.replace(*value, REDACTED);
            }
            continue;
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text.as_str();
        while let Some(at) = rest.find(*value) {
            let before = rest[..at].chars().next_back();
            let after = rest[at + value.len()..].chars().next();
            let alone = !before.is_some_and(char::is_alphanumeric)
                && !after.is_some_and(char::is_alphanumeric);
            out.push_str(&rest[..at]);
            out.push_str(if alone { REDACTED } else { value });
            rest = &rest[at + value.len()..];
        }
        out.push_str(rest);
        text = out;
    }
    text
}

/// A request refused by client-side checks, before any network traffic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// The secret is empty.
    #[error("the secret is empty")]
    Empty,
    /// The secret is larger than the server accepts (10,000 bytes unless configured otherwise).
    #[error("the secret is {bytes} bytes; the server accepts at most {max} bytes")]
    TooLarge {
        /// Size of the rejected secret in bytes.
        bytes: usize,
        /// The limit it was checked against.
        max: usize,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubbing_removes_every_value_sent() {
        let err = OtsError::Validation {
            message: "echo: hunter22 and tok-99 and hunter22".into(),
        };
        assert_eq!(
            err.scrub(&["hunter22", "tok-99"]),
            OtsError::Validation {
                message: "echo: [redacted] and [redacted] and [redacted]".into()
            }
        );
    }

    #[test]
    fn short_values_are_scrubbed_where_they_stand_alone() {
        let err = OtsError::EntitlementRequired {
            entitlement: Some("extended_default_expiration x".into()),
        };
        assert_eq!(
            err.scrub(&["x"]),
            OtsError::EntitlementRequired {
                entitlement: Some("extended_default_expiration [redacted]".into())
            }
        );
    }
}
