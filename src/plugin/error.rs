//! Every way a `kubectl ots` command can fail, each with a message a user can act on.
//!
//! No variant carries a secret value, a passphrase or a link: only names, reasons and the API
//! server's own refusal messages.

use std::time::Duration;

/// Exit code of a failed command.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of bad usage (clap uses it too).
pub const EXIT_USAGE: u8 = 2;

/// Why a `kubectl ots` command failed.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The kubeconfig could not be read or used.
    #[error("cannot use the kubeconfig: {0}")]
    Kubeconfig(String),
    /// `--context` names a context the kubeconfig does not have.
    #[error("context {context:?} is not in the kubeconfig (it has: {known})")]
    NoSuchContext {
        /// The context asked for.
        context: String,
        /// The contexts there are.
        known: String,
    },
    /// The cluster could not be reached.
    #[error("cannot reach the cluster: {0}")]
    Unreachable(String),
    /// The OneTimeShare CRD is not installed.
    #[error(
        "the OneTimeShare API (onetimeshares.ots.dev) is not installed in this cluster: install the ots-operator (its Helm chart or deploy/manifests) first"
    )]
    CrdMissing,
    /// The OtsServer or ClusterOtsServer CRD is not installed.
    #[error(
        "the server APIs (otsservers.ots.dev, clusterotsservers.ots.dev) are not installed in this cluster: install or upgrade the ots-operator (its Helm chart or deploy/manifests) first"
    )]
    ServerCrdMissing,
    /// The Secret to share (or the passphrase's Secret) does not exist.
    #[error("Secret {namespace}/{name} does not exist")]
    SecretNotFound {
        /// Namespace looked in.
        namespace: String,
        /// The Secret's name.
        name: String,
    },
    /// The OneTimeShare does not exist.
    #[error("OneTimeShare {namespace}/{name} does not exist")]
    ShareNotFound {
        /// Namespace looked in.
        namespace: String,
        /// The share's name.
        name: String,
    },
    /// A OneTimeShare of that name exists already.
    #[error(
        "OneTimeShare {namespace}/{name} already exists: choose another --name, or `kubectl ots reissue {name}` to hand it out again"
    )]
    AlreadyExists {
        /// Namespace.
        namespace: String,
        /// The share's name.
        name: String,
    },
    /// The user may not do this.
    #[error("not allowed to {action}: {message}")]
    Forbidden {
        /// What was attempted, e.g. "get Secret team-a/db".
        action: String,
        /// The API server's refusal.
        message: String,
    },
    /// The API server refused the request (admission policy, schema validation, …).
    #[error("the API server refused to {action}: {message}")]
    Refused {
        /// What was attempted.
        action: String,
        /// The API server's refusal.
        message: String,
    },
    /// Bad input that clap cannot check.
    #[error("{0}")]
    Usage(String),
    /// `generate` names a Secret the ots-operator did not make (it would refuse to write it).
    #[error(
        "Secret {namespace}/{name} exists and was not made by the ots-operator (no label ots.dev/managed-by=ots-operator): generate never writes into a Secret it did not make; choose another Secret name or delete that Secret"
    )]
    SecretNotOwned {
        /// Namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
    },
    /// A wait ran out of time.
    #[error("timed out after {}s waiting for {what}{last}", after.as_secs())]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long it waited.
        after: Duration,
        /// What was last seen, starting with "; ", or empty.
        last: String,
    },
    /// The share failed (its Ready condition says why).
    #[error("OneTimeShare {namespace}/{name} failed: {reason}: {message}")]
    ShareFailed {
        /// Namespace.
        namespace: String,
        /// The share's name.
        name: String,
        /// The Ready condition's reason.
        reason: String,
        /// The Ready condition's message.
        message: String,
    },
    /// Any other API error.
    #[error("the API server answered an error to {action}: {message}")]
    Api {
        /// What was attempted.
        action: String,
        /// The error.
        message: String,
    },
    /// Writing the output failed.
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

impl PluginError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            PluginError::Usage(_) => EXIT_USAGE,
            _ => EXIT_FAILURE,
        }
    }

    /// Classifies a kube error of `action` (e.g. "get Secret ns/db").
    pub fn from_kube(action: impl Into<String>, error: kube::Error) -> PluginError {
        let action = action.into();
        match error {
            kube::Error::Api(status) if status.is_forbidden() => PluginError::Forbidden {
                action,
                message: status.message,
            },
            kube::Error::Api(status) if status.is_invalid() || status.code == 400 => {
                PluginError::Refused {
                    action,
                    message: status.message,
                }
            }
            kube::Error::Api(status) => PluginError::Api {
                action,
                message: format!("{} ({})", status.message, status.code),
            },
            kube::Error::HyperError(e) => PluginError::Unreachable(e.to_string()),
            kube::Error::Service(e) => PluginError::Unreachable(e.to_string()),
            other => PluginError::Api {
                action,
                message: other.to_string(),
            },
        }
    }
}

/// Whether a kube error is a 404 (a missing object, or a route the server does not serve, which
/// comes as plain text and so without the `NotFound` reason).
pub fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.is_not_found() || status.code == 404)
}
