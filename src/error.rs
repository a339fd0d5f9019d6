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
    /// The server refused the lifetime: the account's plan allows less (v2 does not clamp).
    TtlNotAllowed,
    /// The server refuses anonymous requests on the configured API (guest routes disabled).
    AnonymousNotAllowed,
    /// The referenced Secret does not exist (yet).
    SecretNotFound,
    /// The referenced key is not in the Secret.
    KeyNotFound,
    /// The value to share is empty.
    SecretEmpty,
    /// The value to share is over the server's size limit (10,000 bytes unless configured).
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
    /// The server answered something we could not understand, or has no such route (a wrong
    /// URL or server version).
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
    /// The server's TLS certificate is not signed by an authority the operator trusts.
    TlsUntrusted,
    /// `spec.generate` wrote a new random value into the Secret (Normal Event).
    Generated,
    /// `spec.generate` names a Secret the operator did not make: it is neither written nor shared.
    SecretNotOwned,
    /// The operator may not write the Secret `spec.generate` names (the chart's
    /// `secretWrites.enabled` is off, or an admission policy refused the write).
    SecretWriteForbidden,
    /// The operating system's random number generator failed.
    GenerateFailed,
    /// The link Secret (`spec.linkSecretRef`) could not be written: the operator may not write
    /// Secrets there, or the name is taken by a Secret it did not create. The link is kept in the
    /// operator's record and written once it can be; it is never shared twice.
    LinkSecretNotWritten,
    /// `onExpiry: Reshare` made a new link after the old one expired unread (Normal Event).
    Renewed,
    /// A reissue (`ots.dev/reshare`) was not carried out: its value is longer than the operator
    /// acts on, or the share made as many reissues in the last hour as the operator allows.
    ReissueRefused,
    /// A burn on request (`ots.dev/burn`) was not carried out: its value is longer than the
    /// operator acts on.
    BurnRefused,
    /// An OtsServer or ClusterOtsServer answers and accepts its credentials (its Ready reason).
    Verified,
    /// `spec.serverRef` names an OtsServer or ClusterOtsServer that does not exist (yet).
    ServerNotFound,
    /// The share asks for what its server object's policy does not allow (a ttl over maxTtl, no
    /// passphrase where one is required, a recipient outside the allowed domains).
    PolicyViolation,
    /// The share's server object asks for a `shareDomain` the server refused (not a custom
    /// domain of the account, not verified, not for anonymous use), or its server speaks v1,
    /// which has none. Nothing is shared on another domain instead.
    ShareDomainRefused,
}

impl Reason {
    /// Every reason, in declaration order. A new variant belongs here too (a unit test checks
    /// the order and that none is missing before the last).
    pub const ALL: [Reason; 42] = [
        Reason::Shared,
        Reason::Received,
        Reason::Burned,
        Reason::Expired,
        Reason::Reshared,
        Reason::TtlClamped,
        Reason::TtlNotAllowed,
        Reason::AnonymousNotAllowed,
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
        Reason::TlsUntrusted,
        Reason::Generated,
        Reason::SecretNotOwned,
        Reason::SecretWriteForbidden,
        Reason::GenerateFailed,
        Reason::LinkSecretNotWritten,
        Reason::Renewed,
        Reason::ReissueRefused,
        Reason::BurnRefused,
        Reason::Verified,
        Reason::ServerNotFound,
        Reason::PolicyViolation,
        Reason::ShareDomainRefused,
    ];

    /// The reason as written in conditions, Events and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Shared => "Shared",
            Reason::Received => "Received",
            Reason::Burned => "Burned",
            Reason::Expired => "Expired",
            Reason::Reshared => "Reshared",
            Reason::TtlClamped => "TtlClamped",
            Reason::TtlNotAllowed => "TtlNotAllowed",
            Reason::AnonymousNotAllowed => "AnonymousNotAllowed",
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
            Reason::TlsUntrusted => "TlsUntrusted",
            Reason::Generated => "Generated",
            Reason::SecretNotOwned => "SecretNotOwned",
            Reason::SecretWriteForbidden => "SecretWriteForbidden",
            Reason::GenerateFailed => "GenerateFailed",
            Reason::LinkSecretNotWritten => "LinkSecretNotWritten",
            Reason::Renewed => "Renewed",
            Reason::ReissueRefused => "ReissueRefused",
            Reason::BurnRefused => "BurnRefused",
            Reason::Verified => "Verified",
            Reason::ServerNotFound => "ServerNotFound",
            Reason::PolicyViolation => "PolicyViolation",
            Reason::ShareDomainRefused => "ShareDomainRefused",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an error means for the share: three decisions, each made explicitly per error in
/// [`Error::handling`] rather than derived from one another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handling {
    /// When to reconcile again.
    pub retry: Retry,
    /// The phase of a resource that has no link yet.
    pub phase: ErrorPhase,
    /// What a deletion does when its burn fails this way.
    pub burn: BurnFailure,
}

/// The phase an error gives a resource that has no link yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorPhase {
    /// Waiting for something outside that may come by itself (a Secret, the server): Pending.
    Pending,
    /// A user must fix something before the share can go on: Failed.
    Failed,
}

/// What a deletion does when its burn fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BurnFailure {
    /// The failure may pass (an outage, an unsure answer): keep the finalizer and try again
    /// with backoff until `--burn-timeout`, so a live link is never released early.
    KeepTrying,
    /// Trying again cannot help: release the resource now with a BurnFailed Event.
    GiveUp,
}

impl Handling {
    /// Something outside may fix it soon (a Secret being created).
    const MISSING: Handling = Handling::new(Retry::Soon, ErrorPhase::Pending, BurnFailure::GiveUp);
    /// A transient fault or an answer the operator could not trust.
    const TRANSIENT: Handling =
        Handling::new(Retry::Backoff, ErrorPhase::Pending, BurnFailure::KeepTrying);
    /// A referenced Secret, the account or the server refuses what the spec asks for.
    const REFUSED: Handling = Handling::new(Retry::Slowly, ErrorPhase::Failed, BurnFailure::GiveUp);
    /// Only a change of the resource itself can help.
    const BAD_SPEC: Handling =
        Handling::new(Retry::OnChange, ErrorPhase::Failed, BurnFailure::GiveUp);

    const fn new(retry: Retry, phase: ErrorPhase, burn: BurnFailure) -> Self {
        Handling { retry, phase, burn }
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
        "the value of Secret {name:?} is {bytes} bytes; the server accepts at most {max} bytes: share a single key or a smaller value (a self-hosted server with a larger limit: set --ots-max-secret-bytes)"
    )]
    SecretTooLarge {
        /// Secret name.
        name: String,
        /// Size of the value that would be shared.
        bytes: usize,
        /// The limit checked against (`--ots-max-secret-bytes`, default 10,000).
        max: usize,
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
        "the passphrase in Secret {name:?} key {key:?} must be {min} to {max} characters of text (it has {chars})",
        min = crate::ots::validate::PASSPHRASE_MIN_CHARS,
        max = crate::ots::validate::PASSPHRASE_MAX_CHARS
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
    /// See [`Reason::ServerNotAllowed`]: a ClusterOtsServer whose conditions do not name the
    /// share's namespace.
    #[error(
        "{kind} {name:?} may not be used by namespace {namespace:?}: none of its conditions matches the namespace (its namespaceSelector, namespaces and namespaceRegexes); ask the cluster's administrators to allow it, or name another server in spec.serverRef"
    )]
    ServerRefNotAllowed {
        /// The kind named (ClusterOtsServer).
        kind: &'static str,
        /// The server object's name.
        name: String,
        /// The share's namespace.
        namespace: String,
    },
    /// See [`Reason::PolicyViolation`].
    #[error("{server} does not allow this share: {rule}")]
    PolicyViolation {
        /// The server object, kind and name.
        server: String,
        /// The rule broken, and how to meet it.
        rule: String,
    },
    /// See [`Reason::ShareDomainRefused`].
    #[error(
        "{server} asks for shareDomain {domain:?}, which its server refused: {detail}; nothing was shared (fix the domain on the server account, or remove shareDomain)"
    )]
    ShareDomainRefused {
        /// The server object, kind and name.
        server: String,
        /// The domain asked for.
        domain: String,
        /// Why, in the server's known words (never a value sent).
        detail: String,
    },
    /// See [`Reason::ServerNotFound`].
    #[error("{kind} {name:?} not found; the share proceeds once it exists")]
    ServerRefNotFound {
        /// The kind named (OtsServer or ClusterOtsServer).
        kind: &'static str,
        /// The server object's name.
        name: String,
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
    /// See [`Reason::TtlNotAllowed`].
    #[error(
        "the server refused the requested lifetime of {}: the account's plan allows less (a free onetimesecret.com account allows at most 14d, a paid one 30d); set a shorter spec.ttl or upgrade the account's plan",
        human_duration(*.requested)
    )]
    TtlNotAllowed {
        /// The lifetime the spec asked for.
        requested: Duration,
    },
    /// See [`Reason::AnonymousNotAllowed`].
    #[error(
        "the server does not accept anonymous v2 requests (its guest routes are disabled): give the share an account (spec.server.credentialsSecretRef, or OTS_USERNAME/OTS_API_TOKEN for the default server), or run the operator with --ots-api auto or v1 (v1 is not gated)"
    )]
    AnonymousNotAllowed,
    /// A burn the server neither did nor reported as unnecessary; see
    /// [`OtsError::BurnUnconfirmed`].
    #[error(
        "the burn is not confirmed: the server did not burn the secret and its receipt still says `{state}`, so the link may still work; the operator keeps the finalizer and retries with backoff (a deleted resource is released after --burn-timeout with a BurnFailed Event)"
    )]
    BurnUnconfirmed {
        /// The receipt's state after the failed burn.
        state: crate::ots::SecretState,
    },
    /// See [`Reason::SecretNotOwned`].
    #[error(
        "Secret {name:?} exists but was not made by the ots-operator (it lacks the label ots.dev/managed-by=ots-operator): spec.generate never writes into or shares from a Secret it did not make; delete that Secret or name another one in secretRef"
    )]
    SecretNotOwned {
        /// Secret name.
        name: String,
    },
    /// See [`Reason::SecretNotOwned`]: made by the operator, but for another share.
    #[error(
        "Secret {name:?} was made by the ots-operator for another OneTimeShare and has no key {key:?}: spec.generate adds a key only to a Secret it made for this very OneTimeShare; name a new Secret, or a key that Secret already holds"
    )]
    GeneratedForAnother {
        /// Secret name.
        name: String,
        /// The key this share would generate.
        key: String,
    },
    /// See [`Reason::SecretWriteForbidden`].
    #[error(
        "the operator may not write Secret {name:?} ({message}); spec.generate needs the chart's secretWrites.enabled=true, which lets the operator create and patch Secrets"
    )]
    SecretWriteForbidden {
        /// Secret name.
        name: String,
        /// The API server's refusal (RBAC or admission; never the Secret's data).
        message: String,
    },
    /// See [`Reason::LinkSecretNotWritten`]: the API server refused the write.
    #[error(
        "the operator may not write the link Secret {name:?} ({message}); spec.linkSecretRef needs the chart's secretWrites.enabled=true. The link is kept in the operator's record and written once the operator may (it is not shared again)"
    )]
    LinkSecretForbidden {
        /// Secret name.
        name: String,
        /// The API server's refusal (RBAC or admission; never the Secret's data).
        message: String,
    },
    /// See [`Reason::GenerateFailed`].
    #[error("could not draw a random value from the operating system: {0}")]
    GenerateFailed(String),
    /// See [`Reason::LinkSecretNotWritten`]: a Secret the operator did not make has the name.
    #[error(
        "Secret {name:?} exists but was not made by the ots-operator for this OneTimeShare, so the link is not written into it; delete that Secret (the link is then written into a new one) or re-create the OneTimeShare with another linkSecretRef"
    )]
    LinkSecretNotOwned {
        /// Secret name.
        name: String,
    },
    /// See [`Reason::ReissueRefused`]: the annotation's value is too long to act on.
    #[error(
        "the ots.dev/reshare annotation's value is longer than the {max} characters the operator acts on; nothing was reissued. Set a shorter value (a timestamp, say) to reissue"
    )]
    ReshareTokenTooLong {
        /// The longest value acted on, in characters.
        max: usize,
    },
    /// See [`Reason::BurnRefused`]: the annotation's value is too long to act on.
    #[error(
        "the ots.dev/burn annotation's value is longer than the {max} characters the operator acts on; nothing was burned. Set a shorter value (a timestamp, say) to burn the link"
    )]
    BurnTokenTooLong {
        /// The longest value acted on, in characters.
        max: usize,
    },
    /// See [`Reason::ReissueRefused`]: the share reissued as often as allowed this hour.
    #[error(
        "this OneTimeShare was reissued {max} time(s) in the last hour, the most the operator allows (--max-reissues-per-hour); the requested reissue is carried out in {}",
        human_duration(Duration::from_secs(retry_in.as_secs().max(1)))
    )]
    ReissueLimited {
        /// The configured limit per rolling hour.
        max: u32,
        /// When the oldest of the hour's reissues leaves the window.
        retry_in: Duration,
    },
    /// An error from the Onetime Secret server or client.
    #[error(transparent)]
    Ots(OtsError),
    /// A Kubernetes API call failed.
    #[error("Kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
}

impl From<OtsError> for Error {
    fn from(error: OtsError) -> Self {
        match error {
            OtsError::GuestRoutesDisabled => Error::AnonymousNotAllowed,
            OtsError::BurnUnconfirmed { state } => Error::BurnUnconfirmed { state },
            other => Error::Ots(other),
        }
    }
}

/// The free plan's longest lifetime on onetimesecret.com (`DEFAULT_FREE_TTL`, 14 days).
const FREE_PLAN_TTL: Duration = Duration::from_secs(14 * 86_400);

impl Error {
    /// The error of a failed share that asked for `requested`: a v2 entitlement refusal of a
    /// lifetime (`extended_default_expiration`, or an unnamed one above the free plan's 14 days)
    /// is [`Error::TtlNotAllowed`].
    pub fn from_share(error: OtsError, requested: Duration) -> Self {
        Self::from_create(error, requested, None)
    }

    /// [`Self::from_share`] for a create that asked for a share domain (`Some((server object,
    /// domain))`): the server's refusal of that domain, or a v1 server, is
    /// [`Error::ShareDomainRefused`].
    pub fn from_create(
        error: OtsError,
        requested: Duration,
        share_domain: Option<(&str, &str)>,
    ) -> Self {
        if let Some((server, domain)) = share_domain {
            let about_domain = match &error {
                OtsError::ShareDomainUnsupported => true,
                OtsError::Forbidden { detail } => detail.to_ascii_lowercase().contains("domain"),
                OtsError::Validation { message } | OtsError::Refused { message } => {
                    message.to_ascii_lowercase().contains("domain")
                }
                _ => false,
            };
            if about_domain {
                return Error::ShareDomainRefused {
                    server: server.to_owned(),
                    domain: domain.to_owned(),
                    detail: error.to_string(),
                };
            }
        }
        match &error {
            OtsError::EntitlementRequired { entitlement }
                if entitlement.as_deref() == Some("extended_default_expiration")
                    || (entitlement.is_none() && requested > FREE_PLAN_TTL) =>
            {
                Error::TtlNotAllowed { requested }
            }
            _ => error.into(),
        }
    }

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
            Error::ServerRefNotAllowed { .. } => Reason::ServerNotAllowed,
            Error::ServerRefNotFound { .. } => Reason::ServerNotFound,
            Error::PolicyViolation { .. } => Reason::PolicyViolation,
            Error::ShareDomainRefused { .. } => Reason::ShareDomainRefused,
            Error::InvalidSpec(_) => Reason::InvalidSpec,
            Error::StatusTampered { .. } => Reason::StatusTampered,
            Error::TooManyShares { .. } => Reason::TooManyShares,
            Error::Record { .. } => Reason::RecordFailed,
            Error::TtlNotAllowed { .. } => Reason::TtlNotAllowed,
            Error::AnonymousNotAllowed => Reason::AnonymousNotAllowed,
            Error::BurnUnconfirmed { .. } => Reason::ServerProtocolError,
            Error::AmbiguousShare { error, .. } => Error::ots_reason(error),
            Error::Ots(e) => Error::ots_reason(e),
            Error::SecretNotOwned { .. } | Error::GeneratedForAnother { .. } => {
                Reason::SecretNotOwned
            }
            Error::SecretWriteForbidden { .. } => Reason::SecretWriteForbidden,
            Error::GenerateFailed(_) => Reason::GenerateFailed,
            Error::LinkSecretForbidden { .. } | Error::LinkSecretNotOwned { .. } => {
                Reason::LinkSecretNotWritten
            }
            Error::ReshareTokenTooLong { .. } | Error::ReissueLimited { .. } => {
                Reason::ReissueRefused
            }
            Error::BurnTokenTooLong { .. } => Reason::BurnRefused,
            Error::Kube(_) => Reason::KubernetesError,
        }
    }

    fn ots_reason(e: &OtsError) -> Reason {
        match e {
            OtsError::NotFound => Reason::ServerRejected,
            OtsError::Unauthorized | OtsError::EntitlementRequired { .. } => Reason::Unauthorized,
            OtsError::GuestRoutesDisabled => Reason::AnonymousNotAllowed,
            OtsError::Validation { .. } | OtsError::Refused { .. } | OtsError::Forbidden { .. } => {
                Reason::ServerRejected
            }
            OtsError::SecretTooLarge { .. }
            | OtsError::InvalidInput(crate::ots::InputError::TooLarge { .. }) => {
                Reason::SecretTooLarge
            }
            OtsError::PassphraseRefused { .. } => Reason::InvalidPassphrase,
            OtsError::ShareDomainUnsupported => Reason::ShareDomainRefused,
            OtsError::RateLimited { .. } => Reason::RateLimited,
            OtsError::Unavailable { .. } | OtsError::Setup { .. } => Reason::ServerUnavailable,
            OtsError::TlsUntrusted { .. } => Reason::TlsUntrusted,
            OtsError::Protocol { .. }
            | OtsError::RouteNotFound { .. }
            | OtsError::BurnUnconfirmed { .. } => Reason::ServerProtocolError,
            OtsError::InvalidInput(_) => Reason::InvalidSpec,
        }
    }

    /// What this error means for the share: when to retry, which phase, and what a failed burn
    /// does. Every error decides all three here.
    pub fn handling(&self) -> Handling {
        match self {
            Error::SecretNotFound { .. }
            | Error::KeyNotFound { .. }
            | Error::PassphraseNotFound { .. }
            | Error::CredentialsNotFound { .. }
            | Error::ServerRefNotFound { .. } => Handling::MISSING,
            // The cluster's administrators may allow the namespace: re-check rarely, no OTS call.
            Error::ServerRefNotAllowed { .. } | Error::PolicyViolation { .. } => Handling::REFUSED,
            // The server account or the object must change: re-check rarely, never a loop.
            Error::ShareDomainRefused { .. } => Handling::REFUSED,
            // The user must change a referenced Secret: re-check rarely, without calling the server.
            Error::SecretEmpty { .. }
            | Error::SecretTooLarge { .. }
            | Error::SecretNotText { .. }
            | Error::InvalidPassphrase { .. } => Handling::REFUSED,
            Error::ServerNotAllowed { .. }
            | Error::InvalidSpec(_)
            | Error::StatusTampered { .. } => Handling::BAD_SPEC,
            // Another link of the Secret will be received, expire or be deleted.
            Error::TooManyShares { .. } => Handling::MISSING,
            Error::Record { .. } | Error::AmbiguousShare { .. } => Handling::TRANSIENT,
            // A plan or server setting may change; re-check rarely (at most one share per 5 min).
            Error::TtlNotAllowed { .. } | Error::AnonymousNotAllowed => Handling::REFUSED,
            Error::BurnUnconfirmed { .. } => Handling::TRANSIENT,
            // The Secret or the operator's permissions must change: re-check rarely.
            Error::SecretNotOwned { .. }
            | Error::GeneratedForAnother { .. }
            | Error::SecretWriteForbidden { .. } => Handling::REFUSED,
            Error::GenerateFailed(_) => Handling::TRANSIENT,
            // The link is recorded: writing it again is cheap (no OTS call), so a fix of the
            // operator's rights is picked up within minutes; a Secret in the way may go any moment.
            Error::LinkSecretForbidden { .. } => Handling::TRANSIENT,
            Error::LinkSecretNotOwned { .. } => Handling::MISSING,
            // Only a new annotation value can help; the link is tracked meanwhile.
            Error::ReshareTokenTooLong { .. } => Handling::REFUSED,
            // Only a new annotation value can help; the link is tracked meanwhile.
            Error::BurnTokenTooLong { .. } => Handling::REFUSED,
            // Comes by itself once the hour's oldest reissue leaves the window (see retry_after).
            Error::ReissueLimited { .. } => Handling::MISSING,
            Error::Ots(e) => match e {
                OtsError::RateLimited { .. }
                | OtsError::Unavailable { .. }
                | OtsError::Protocol { .. }
                | OtsError::BurnUnconfirmed { .. }
                | OtsError::Setup { .. } => Handling::TRANSIENT,
                // An unknown route is a configuration error: never a retry storm, but a burn that
                // met one keeps the finalizer (the link may be live) until --burn-timeout.
                OtsError::RouteNotFound { .. } => Handling {
                    burn: BurnFailure::KeepTrying,
                    ..Handling::REFUSED
                },
                // Credentials live in a Secret we do not watch, and a refusal may be lifted:
                // never a retry storm.
                OtsError::Unauthorized
                | OtsError::EntitlementRequired { .. }
                | OtsError::GuestRoutesDisabled
                | OtsError::Forbidden { .. }
                | OtsError::Refused { .. }
                | OtsError::SecretTooLarge { .. }
                | OtsError::PassphraseRefused { .. }
                | OtsError::TlsUntrusted { .. }
                | OtsError::Validation { .. }
                | OtsError::ShareDomainUnsupported
                | OtsError::NotFound => Handling::REFUSED,
                OtsError::InvalidInput(_) => Handling::BAD_SPEC,
            },
            Error::Kube(_) => Handling::TRANSIENT,
        }
    }

    /// How long to wait, in kind, before trying again.
    pub fn retry(&self) -> Retry {
        self.handling().retry
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
                | Error::SecretNotOwned { .. }
                | Error::GeneratedForAnother { .. }
                | Error::LinkSecretNotOwned { .. }
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
        self.handling().phase == ErrorPhase::Failed
    }

    /// A server-requested pause, when the server gave one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Ots(e) => e.retry_after(),
            Error::ReissueLimited { retry_in, .. } => Some(*retry_in),
            _ => None,
        }
    }
}

/// A lifetime in the largest whole unit: `30d`, `12h`, `90m`, `45s`.
pub fn human_duration(duration: Duration) -> String {
    match duration.as_secs() {
        s if s > 0 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s > 0 && s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s > 0 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// One error of every kind (and every OTS error a reconcile can meet), for tests.
#[cfg(test)]
pub(crate) fn examples() -> Vec<Error> {
    let name = || "db".to_owned();
    let ots = vec![
        OtsError::NotFound,
        OtsError::RouteNotFound { path: "/x".into() },
        OtsError::Unauthorized,
        OtsError::EntitlementRequired { entitlement: None },
        OtsError::GuestRoutesDisabled,
        OtsError::Forbidden { detail: "d".into() },
        OtsError::Refused {
            message: "m".into(),
        },
        OtsError::SecretTooLarge { max: None },
        OtsError::PassphraseRefused {
            message: "m".into(),
        },
        OtsError::Validation {
            message: "m".into(),
        },
        OtsError::RateLimited { retry_after: None },
        OtsError::Unavailable { detail: "d".into() },
        OtsError::BurnUnconfirmed {
            state: crate::ots::SecretState::New,
        },
        OtsError::Protocol { detail: "d".into() },
        OtsError::InvalidInput(crate::ots::InputError::Empty),
        OtsError::Setup { detail: "d".into() },
        OtsError::TlsUntrusted {
            server: "https://x".into(),
            detail: "d".into(),
        },
    ];
    let mut errors = vec![
        Error::SecretNotFound { name: name() },
        Error::KeyNotFound {
            name: name(),
            key: "k".into(),
        },
        Error::SecretEmpty { name: name() },
        Error::SecretTooLarge {
            name: name(),
            bytes: 2,
            max: 1,
        },
        Error::SecretNotText {
            name: name(),
            key: "k".into(),
        },
        Error::PassphraseNotFound {
            name: name(),
            key: "k".into(),
        },
        Error::InvalidPassphrase {
            name: name(),
            key: "k".into(),
            chars: 1,
        },
        Error::CredentialsNotFound { name: name() },
        Error::ServerNotAllowed {
            url: "https://x".into(),
        },
        Error::ServerRefNotAllowed {
            kind: "ClusterOtsServer",
            name: "eu".into(),
            namespace: "team".into(),
        },
        Error::ServerRefNotFound {
            kind: "OtsServer",
            name: "eu".into(),
        },
        Error::PolicyViolation {
            server: "OtsServer \"eu\"".into(),
            rule: "r".into(),
        },
        Error::ShareDomainRefused {
            server: "OtsServer \"eu\"".into(),
            domain: "secrets.example.com".into(),
            detail: "d".into(),
        },
        Error::InvalidSpec("x".into()),
        Error::StatusTampered { detail: "d".into() },
        Error::TooManyShares {
            name: name(),
            max: 1,
        },
        Error::Record { detail: "d".into() },
        Error::AmbiguousShare {
            error: OtsError::Unavailable { detail: "d".into() },
            detail: "d".into(),
        },
        Error::TtlNotAllowed {
            requested: Duration::from_secs(60),
        },
        Error::AnonymousNotAllowed,
        Error::BurnUnconfirmed {
            state: crate::ots::SecretState::New,
        },
        Error::SecretNotOwned { name: name() },
        Error::GeneratedForAnother {
            name: name(),
            key: "k".into(),
        },
        Error::SecretWriteForbidden {
            name: name(),
            message: "m".into(),
        },
        Error::GenerateFailed("d".into()),
        Error::LinkSecretForbidden {
            name: name(),
            message: "m".into(),
        },
        Error::LinkSecretNotOwned { name: name() },
        Error::ReshareTokenTooLong { max: 63 },
        Error::BurnTokenTooLong { max: 63 },
        Error::ReissueLimited {
            max: 6,
            retry_in: Duration::from_secs(60),
        },
        Error::Kube(kube::Error::Service("connection refused".into())),
    ];
    errors.extend(ots.into_iter().map(Error::Ots));
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_decides_its_retry_phase_and_burn_as_before_the_split() {
        // Before `Handling`, the phase and the burn followed from the retry (and the reason);
        // the split must not change a single decision.
        for error in examples() {
            let handling = error.handling();
            let was_failed = matches!(handling.retry, Retry::Slowly | Retry::OnChange);
            assert_eq!(
                handling.phase == ErrorPhase::Failed,
                was_failed,
                "{error:?}"
            );
            assert_eq!(error.needs_user_fix(), was_failed, "{error:?}");
            let kept_trying =
                handling.retry == Retry::Backoff || error.reason() == Reason::ServerProtocolError;
            assert_eq!(
                handling.burn == BurnFailure::KeepTrying,
                kept_trying,
                "{error:?}"
            );
        }
    }

    #[test]
    fn an_unknown_route_fails_the_share_but_keeps_a_deletion_burning() {
        let route = Error::Ots(OtsError::RouteNotFound { path: "/x".into() });
        assert_eq!(
            route.handling(),
            Handling {
                retry: Retry::Slowly,
                phase: ErrorPhase::Failed,
                burn: BurnFailure::KeepTrying,
            }
        );
        let unsure = Error::BurnUnconfirmed {
            state: crate::ots::SecretState::New,
        };
        assert_eq!(unsure.handling().burn, BurnFailure::KeepTrying);
        let refused = Error::Ots(OtsError::Unauthorized);
        assert_eq!(refused.handling().burn, BurnFailure::GiveUp);
    }

    #[test]
    fn a_refused_share_domain_names_the_server_object_and_the_domain_and_waits_for_a_fix() {
        let ttl = Duration::from_secs(3600);
        let asked = Some(("OtsServer \"eu\"", "secrets.example.com"));
        for ots in [
            OtsError::ShareDomainUnsupported,
            OtsError::Forbidden {
                detail: "You do not have permission to use domain: secrets.example.com".into(),
            },
            OtsError::Validation {
                message: "Unknown domain: secrets.example.com".into(),
            },
        ] {
            let error = Error::from_create(ots.clone(), ttl, asked);
            assert_eq!(error.reason(), Reason::ShareDomainRefused, "{error}");
            assert_eq!(error.retry(), Retry::Slowly, "{error}");
            assert_eq!(error.handling().phase, ErrorPhase::Failed, "{error}");
            let text = error.to_string();
            assert!(
                text.contains("OtsServer \"eu\"")
                    && text.contains("shareDomain \"secrets.example.com\""),
                "{text}"
            );
            // Without a share domain asked, the server's answer is what it always was.
            if ots != OtsError::ShareDomainUnsupported {
                assert_eq!(
                    Error::from_create(ots, ttl, None).reason(),
                    Reason::ServerRejected
                );
            }
        }
        // Other refusals of a create with a share domain keep their own reasons.
        let big = Error::from_create(OtsError::SecretTooLarge { max: Some(5) }, ttl, asked);
        assert_eq!(big.reason(), Reason::SecretTooLarge);
    }

    #[test]
    fn all_holds_every_reason_in_declaration_order() {
        for (i, r) in Reason::ALL.into_iter().enumerate() {
            assert_eq!(r as usize, i, "{r}");
        }
    }

    #[test]
    fn every_reason_is_camel_case_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::ALL {
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
            max: 10_000,
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
                max: 10000,
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

    #[test]
    fn a_refused_lifetime_is_ttl_not_allowed_and_names_the_lifetime() {
        let thirty_days = Duration::from_secs(30 * 86_400);
        let refused = OtsError::EntitlementRequired {
            entitlement: Some("extended_default_expiration".into()),
        };
        let error = Error::from_share(refused, thirty_days);
        assert_eq!(error.reason(), Reason::TtlNotAllowed);
        assert_eq!(error.retry(), Retry::Slowly);
        assert!(error.needs_user_fix());
        let message = error.to_string();
        assert!(
            message.contains("30d") && message.contains("14d"),
            "{message}"
        );
        // Another missing entitlement is not about the lifetime.
        let api_access = OtsError::EntitlementRequired {
            entitlement: Some("api_access".into()),
        };
        assert_eq!(
            Error::from_share(api_access, thirty_days).reason(),
            Reason::Unauthorized
        );
    }

    #[test]
    fn real_server_refusals_have_their_own_reasons_and_never_retry_fast() {
        let cases = [
            (OtsError::GuestRoutesDisabled, Reason::AnonymousNotAllowed),
            (
                OtsError::RouteNotFound {
                    path: "/api/v2/receipt/abc…".into(),
                },
                Reason::ServerProtocolError,
            ),
            (
                OtsError::SecretTooLarge { max: Some(5) },
                Reason::SecretTooLarge,
            ),
            (
                OtsError::PassphraseRefused {
                    message: "Passphrase must be at least 8 characters long".into(),
                },
                Reason::InvalidPassphrase,
            ),
            (
                OtsError::Refused {
                    message: "Secret could not be concealed.".into(),
                },
                Reason::ServerRejected,
            ),
        ];
        for (ots, reason) in cases {
            let error = Error::from(ots);
            assert_eq!(error.reason(), reason, "{error}");
            assert_eq!(error.retry(), Retry::Slowly, "{error}");
        }
        let route = Error::from(OtsError::RouteNotFound {
            path: "/wrong/api/v2/receipt/abc…".into(),
        });
        assert!(
            route.to_string().contains("/wrong/api/v2/receipt/abc…"),
            "{route}"
        );
        let unsure = Error::from(OtsError::BurnUnconfirmed {
            state: crate::ots::SecretState::New,
        });
        assert_eq!(unsure.retry(), Retry::Backoff);
        assert!(
            unsure.to_string().contains("keeps the finalizer"),
            "{unsure}"
        );
    }

    #[test]
    fn generate_refusals_wait_for_a_fix_and_never_retry_fast() {
        let foreign = Error::SecretNotOwned { name: "app".into() };
        assert_eq!(foreign.reason(), Reason::SecretNotOwned);
        assert_eq!(foreign.retry(), Retry::Slowly);
        assert!(foreign.needs_user_fix());
        assert!(
            foreign
                .to_string()
                .contains("ots.dev/managed-by=ots-operator")
        );
        assert_eq!(foreign.shown(false).0, Reason::SecretNotUsable);
        let forbidden = Error::SecretWriteForbidden {
            name: "app".into(),
            message: "secrets is forbidden".into(),
        };
        assert_eq!(forbidden.reason(), Reason::SecretWriteForbidden);
        assert_eq!(forbidden.retry(), Retry::Slowly);
        assert!(forbidden.to_string().contains("secretWrites.enabled"));
    }
}
