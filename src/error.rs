//! Every outcome a user can see, and the error type of reconciliation.
//!
//! One [`Reason`] feeds the Ready condition, the Event and the metric label, so the three never
//! disagree. Messages name what to fix and never contain a secret value, passphrase or token.

use crate::ots::OtsError;
use std::time::Duration;

/// A stable, CamelCase word for an outcome: the Ready condition's reason, the Event's reason and
/// the `reason` metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The link is live.
    Shared,
    /// The recipient opened the link.
    Received,
    /// The secret was burned.
    Burned,
    /// The link expired unread.
    Expired,
    /// The old link was burned and the changed Secret shared under a new link.
    Reshared,
    /// The server granted a shorter lifetime than the spec asked for.
    TtlClamped,
    /// The referenced Secret does not exist (yet).
    SecretNotFound,
    /// The referenced key is not in the Secret.
    KeyNotFound,
    /// The value to share is empty.
    SecretEmpty,
    /// The value to share is over the server's 10,000-byte limit.
    SecretTooLarge,
    /// The value to share is not UTF-8 text.
    SecretNotText,
    /// The passphrase Secret or key is missing.
    PassphraseNotFound,
    /// The passphrase is not 4 to 128 characters of text.
    InvalidPassphrase,
    /// The credentials Secret is missing or lacks `username`/`apiToken`.
    CredentialsNotFound,
    /// `spec.server.url` is not on the operator's allowlist.
    ServerNotAllowed,
    /// The spec cannot be used as written (e.g. a ttl the schema should have rejected).
    InvalidSpec,
    /// The server refused the credentials.
    Unauthorized,
    /// The server refused the request for a reason it explained.
    ServerRejected,
    /// The server asked us to slow down.
    RateLimited,
    /// The server could not be reached, timed out or failed.
    ServerUnavailable,
    /// The server answered something we could not understand.
    ServerProtocolError,
    /// The burn could not be done in time; the finalizer was released anyway.
    BurnFailed,
    /// A Kubernetes API call failed.
    KubernetesError,
    /// Status named a link that the operator's own record of the share does not hold (written
    /// by someone else): it was restored from the record, or ignored when there is no record.
    StatusTampered,
    /// A Secret the share names cannot be shared as specified. Used instead of the precise
    /// reason when admission does not check that the share's creator may read that Secret, so
    /// status does not describe Secrets its readers may not be allowed to see.
    SecretNotUsable,
    /// The Secret already has as many live links as the operator allows.
    TooManyShares,
    /// The operator could not read or write its own record of the share.
    RecordFailed,
}

impl Reason {
    /// The reason as written in conditions, Events and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Shared => "Shared",
            Reason::Received => "Received",
            Reason::Burned => "Burned",
            Reason::Expired => "Expired",
            Reason::Reshared => "Reshared",
            Reason::TtlClamped => "TtlClamped",
            Reason::SecretNotFound => "SecretNotFound",
            Reason::KeyNotFound => "KeyNotFound",
            Reason::SecretEmpty => "SecretEmpty",
            Reason::SecretTooLarge => "SecretTooLarge",
            Reason::SecretNotText => "SecretNotText",
            Reason::PassphraseNotFound => "PassphraseNotFound",
            Reason::InvalidPassphrase => "InvalidPassphrase",
            Reason::CredentialsNotFound => "CredentialsNotFound",
            Reason::ServerNotAllowed => "ServerNotAllowed",
            Reason::InvalidSpec => "InvalidSpec",
            Reason::Unauthorized => "Unauthorized",
            Reason::ServerRejected => "ServerRejected",
            Reason::RateLimited => "RateLimited",
            Reason::ServerUnavailable => "ServerUnavailable",
            Reason::ServerProtocolError => "ServerProtocolError",
            Reason::BurnFailed => "BurnFailed",
            Reason::KubernetesError => "KubernetesError",
            Reason::StatusTampered => "StatusTampered",
            Reason::SecretNotUsable => "SecretNotUsable",
            Reason::TooManyShares => "TooManyShares",
            Reason::RecordFailed => "RecordFailed",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the controller should wait after an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Something outside may fix it soon (a Secret being created): re-check with backoff capped at 30 s.
    Soon,
    /// A transient fault (server, network, apiserver): exponential backoff with jitter.
    Backoff,
    /// The user must change a referenced Secret: re-check rarely, without calling the OTS server.
    Slowly,
    /// Only a change of the resource itself can help: wait for it.
    OnChange,
}

/// Why reconciling a OneTimeShare failed. Display is the user-facing message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// See [`Reason::SecretNotFound`].
    #[error("Secret {name:?} not found in this namespace; the share proceeds once it exists")]
    SecretNotFound {
        /// Secret name.
        name: String,
    },
    /// See [`Reason::KeyNotFound`].
    #[error("Secret {name:?} has no key {key:?}; the share proceeds once the key exists")]
    KeyNotFound {
        /// Secret name.
        name: String,
        /// Missing key.
        key: String,
    },
    /// See [`Reason::SecretEmpty`].
    #[error("Secret {name:?} has nothing to share (the value is empty)")]
    SecretEmpty {
        /// Secret name.
        name: String,
    },
    /// See [`Reason::SecretTooLarge`].
    #[error(
        "the value of Secret {name:?} is {bytes} bytes; the server accepts at most 10000 bytes: share a single key or a smaller value"
    )]
    SecretTooLarge {
        /// Secret name.
        name: String,
        /// Size of the value that would be shared.
        bytes: usize,
    },
    /// See [`Reason::SecretNotText`].
    #[error(
        "key {key:?} of Secret {name:?} is not UTF-8 text; binary values cannot be shared as a link"
    )]
    SecretNotText {
        /// Secret name.
        name: String,
        /// Key holding binary data.
        key: String,
    },
    /// See [`Reason::PassphraseNotFound`].
    #[error("passphrase Secret {name:?} or its key {key:?} not found in this namespace")]
    PassphraseNotFound {
        /// Secret name.
        name: String,
        /// Key.
        key: String,
    },
    /// See [`Reason::InvalidPassphrase`].
    #[error(
        "the passphrase in Secret {name:?} key {key:?} must be 4 to 128 characters of text (it has {chars})"
    )]
    InvalidPassphrase {
        /// Secret name.
        name: String,
        /// Key.
        key: String,
        /// Length found (0 for non-text).
        chars: usize,
    },
    /// See [`Reason::CredentialsNotFound`].
    #[error("credentials Secret {name:?} not found or lacks the keys `username` and `apiToken`")]
    CredentialsNotFound {
        /// Secret name.
        name: String,
    },
    /// See [`Reason::ServerNotAllowed`].
    #[error(
        "server {url:?} is not on the operator's allowlist; ask the operator's administrators to add it with --allow-server-url"
    )]
    ServerNotAllowed {
        /// The refused URL.
        url: String,
    },
    /// See [`Reason::InvalidSpec`].
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// See [`Reason::StatusTampered`].
    #[error(
        "status names a link this operator did not record for this resource; nothing was burned or tracked on its word ({detail})"
    )]
    StatusTampered {
        /// What did not match.
        detail: String,
    },
    /// See [`Reason::TooManyShares`].
    #[error(
        "Secret {name:?} already has {max} live link(s), the most the operator allows; this share proceeds once one of them is received, expires or is deleted"
    )]
    TooManyShares {
        /// Secret name.
        name: String,
        /// The configured limit.
        max: u32,
    },
    /// See [`Reason::RecordFailed`].
    #[error("the operator's record of this share: {detail}")]
    Record {
        /// What failed.
        detail: String,
    },
    /// A share call got no trustworthy answer, and the server may hold a secret nobody recorded.
    #[error("{error}; {detail}")]
    AmbiguousShare {
        /// The call's failure.
        error: OtsError,
        /// What the operator found or could not find, and did.
        detail: String,
    },
    /// An error from the Onetime Secret server or client.
    #[error(transparent)]
    Ots(#[from] OtsError),
    /// A Kubernetes API call failed.
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
}

impl Error {
    /// The reason shown in the Ready condition, the Warning Event and the metric label.
    pub fn reason(&self) -> Reason {
        match self {
            Error::SecretNotFound { .. } => Reason::SecretNotFound,
            Error::KeyNotFound { .. } => Reason::KeyNotFound,
            Error::SecretEmpty { .. } => Reason::SecretEmpty,
            Error::SecretTooLarge { .. } => Reason::SecretTooLarge,
            Error::SecretNotText { .. } => Reason::SecretNotText,
            Error::PassphraseNotFound { .. } => Reason::PassphraseNotFound,
            Error::InvalidPassphrase { .. } => Reason::InvalidPassphrase,
            Error::CredentialsNotFound { .. } => Reason::CredentialsNotFound,
            Error::ServerNotAllowed { .. } => Reason::ServerNotAllowed,
            Error::InvalidSpec(_) => Reason::InvalidSpec,
            Error::StatusTampered { .. } => Reason::StatusTampered,
            Error::TooManyShares { .. } => Reason::TooManyShares,
            Error::Record { .. } => Reason::RecordFailed,
            Error::AmbiguousShare { error, .. } => Error::ots_reason(error),
            Error::Ots(e) => Error::ots_reason(e),
            Error::Kube(_) => Reason::KubernetesError,
        }
    }

    fn ots_reason(e: &OtsError) -> Reason {
        match e {
            OtsError::NotFound => Reason::ServerRejected,
            OtsError::Unauthorized => Reason::Unauthorized,
            OtsError::Validation { .. } => Reason::ServerRejected,
            OtsError::RateLimited { .. } => Reason::RateLimited,
            OtsError::Unavailable { .. } | OtsError::Setup { .. } => Reason::ServerUnavailable,
            OtsError::Protocol { .. } => Reason::ServerProtocolError,
            OtsError::InvalidInput(_) => Reason::InvalidSpec,
        }
    }

    /// How long to wait, in kind, before trying again.
    pub fn retry(&self) -> Retry {
        match self {
            Error::SecretNotFound { .. }
            | Error::KeyNotFound { .. }
            | Error::PassphraseNotFound { .. }
            | Error::CredentialsNotFound { .. } => Retry::Soon,
            Error::SecretEmpty { .. }
            | Error::SecretTooLarge { .. }
            | Error::SecretNotText { .. }
            | Error::InvalidPassphrase { .. } => Retry::Slowly,
            Error::ServerNotAllowed { .. }
            | Error::InvalidSpec(_)
            | Error::StatusTampered { .. } => Retry::OnChange,
            Error::TooManyShares { .. } => Retry::Soon,
            Error::Record { .. } | Error::AmbiguousShare { .. } => Retry::Backoff,
            Error::Ots(e) => match e {
                OtsError::RateLimited { .. }
                | OtsError::Unavailable { .. }
                | OtsError::Protocol { .. }
                | OtsError::Setup { .. } => Retry::Backoff,
                // Credentials live in a Secret we do not watch, and a refusal may be lifted.
                OtsError::Unauthorized | OtsError::Validation { .. } | OtsError::NotFound => {
                    Retry::Slowly
                }
                OtsError::InvalidInput(_) => Retry::OnChange,
            },
            Error::Kube(_) => Retry::Backoff,
        }
    }

    /// Whether the message describes a Secret the share names (its existence, keys, size or
    /// content): such messages are shown only when admission checked that the share's creator
    /// may read that Secret.
    pub fn describes_secret(&self) -> bool {
        matches!(
            self,
            Error::SecretNotFound { .. }
                | Error::KeyNotFound { .. }
                | Error::SecretEmpty { .. }
                | Error::SecretTooLarge { .. }
                | Error::SecretNotText { .. }
                | Error::PassphraseNotFound { .. }
                | Error::InvalidPassphrase { .. }
                | Error::CredentialsNotFound { .. }
        )
    }

    /// The reason and message users see: precise when `admission_guard` says the creator was
    /// checked, otherwise nothing that describes a referenced Secret.
    pub fn shown(&self, admission_guard: bool) -> (Reason, String) {
        if admission_guard || !self.describes_secret() {
            return (self.reason(), self.to_string());
        }
        (
            Reason::SecretNotUsable,
            "a Secret this share names cannot be shared as specified (it, its key or its value is \
             missing or unsuitable); the operator's log has the details. Status does not describe \
             Secrets because admission does not check that this share's creator may read them"
                .to_owned(),
        )
    }

    /// Whether the share cannot proceed without a user's fix (phase Failed) rather than waiting (Pending).
    pub fn needs_user_fix(&self) -> bool {
        matches!(self.retry(), Retry::Slowly | Retry::OnChange)
    }

    /// A server-requested pause, when the server gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Ots(e) => e.retry_after(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_camel_case_and_distinct() {
        let all = [
            Reason::Shared,
            Reason::Received,
            Reason::Burned,
            Reason::Expired,
            Reason::Reshared,
            Reason::TtlClamped,
            Reason::SecretNotFound,
            Reason::KeyNotFound,
            Reason::SecretEmpty,
            Reason::SecretTooLarge,
            Reason::SecretNotText,
            Reason::PassphraseNotFound,
            Reason::InvalidPassphrase,
            Reason::CredentialsNotFound,
            Reason::ServerNotAllowed,
            Reason::InvalidSpec,
            Reason::Unauthorized,
            Reason::ServerRejected,
            Reason::RateLimited,
            Reason::ServerUnavailable,
            Reason::ServerProtocolError,
            Reason::BurnFailed,
            Reason::KubernetesError,
            Reason::StatusTampered,
            Reason::SecretNotUsable,
            Reason::TooManyShares,
            Reason::RecordFailed,
        ];
        let mut seen = std::collections::HashSet::new();
        for r in all {
            let s = r.as_str();
            assert!(s.chars().next().unwrap().is_ascii_uppercase(), "{s}");
            assert!(s.chars().all(|c| c.is_ascii_alphanumeric()), "{s}");
            assert!(seen.insert(s), "duplicate {s}");
        }
    }

    #[test]
    fn missing_inputs_retry_soon_and_bad_values_wait_for_a_fix() {
        let missing = Error::SecretNotFound { name: "a".into() };
        assert_eq!(missing.retry(), Retry::Soon);
        assert!(!missing.needs_user_fix());
        let big = Error::SecretTooLarge {
            name: "a".into(),
            bytes: 10001,
        };
        assert_eq!(big.reason(), Reason::SecretTooLarge);
        assert!(big.needs_user_fix());
        let down = Error::Ots(OtsError::Unavailable {
            detail: "connect".into(),
        });
        assert_eq!(down.reason(), Reason::ServerUnavailable);
        assert_eq!(down.retry(), Retry::Backoff);
    }

    #[test]
    fn without_the_admission_guard_messages_do_not_describe_secrets() {
        let errors = [
            Error::KeyNotFound {
                name: "db".into(),
                key: "password".into(),
            },
            Error::SecretTooLarge {
                name: "db".into(),
                bytes: 10001,
            },
            Error::InvalidPassphrase {
                name: "pp".into(),
                key: "k".into(),
                chars: 200,
            },
        ];
        for error in &errors {
            let (reason, message) = error.shown(false);
            assert_eq!(reason, Reason::SecretNotUsable);
            for detail in ["password", "10001", "200"] {
                assert!(!message.contains(detail), "{message}");
            }
            assert_eq!(error.shown(true), (error.reason(), error.to_string()));
        }
        let down = Error::Ots(OtsError::Unavailable {
            detail: "connect".into(),
        });
        assert_eq!(down.shown(false).0, Reason::ServerUnavailable);
    }
}
