//! `OtsServer` (namespaced) and `ClusterOtsServer` (cluster-wide): a Onetime Secret server, the
//! credentials and trust to use with it, and the policy its shares obey, as resources (the way
//! external-secrets has `SecretStore` and `ClusterSecretStore`).
//!
//! Both kinds share [`ServerSettings`]; a ClusterOtsServer adds `conditions`, the namespaces
//! that may use it. Where a kind's Secrets live: an OtsServer's in its own namespace; a
//! ClusterOtsServer's in the operator's own namespace (its `--state-namespace`), as
//! cert-manager's ClusterIssuer does, so that whoever may create a ClusterOtsServer cannot make
//! the operator read a Secret of an arbitrary namespace, and the operator needs no Secret rights
//! beyond the namespaces it already reads.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::core::Rule;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{SecretKeyRef, secret_key_rule, secret_name_rule, ttl_format_rule, ttl_minimum_rule};
use crate::ots::ApiVersion;

/// Annotation that makes a ClusterOtsServer the default server, the way IngressClass does it:
/// `ots.dev/default-server: "true"`.
pub const DEFAULT_SERVER_ANNOTATION: &str = "ots.dev/default-server";

/// Default key of the account email in a credentials Secret.
pub const DEFAULT_USERNAME_KEY: &str = "username";

/// Default key of the API token in a credentials Secret.
pub const DEFAULT_API_TOKEN_KEY: &str = "apiToken";

/// A lower-case DNS name with at least two labels (a recipient domain, a share domain).
pub const DOMAIN_PATTERN: &str =
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)+$";

/// A namespace name (an RFC 1123 label).
pub const NAMESPACE_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// The CEL expression for the seconds of a ttl string held in `field` (a ttl the format rule
/// accepts).
pub(super) fn ttl_seconds(field: &str) -> String {
    format!(
        "int({field}.substring(0, size({field}) - 1)) * ({field}.endsWith('d') ? 86400 : {field}.endsWith('h') ? 3600 : {field}.endsWith('m') ? 60 : 1)"
    )
}

/// The CEL rule that keeps a policy's default ttl within its maximum.
fn default_within_max_rule() -> Rule {
    Rule::new(format!(
        "!has(self.maxTtl) || !has(self.defaultTtl) || {} <= {}",
        ttl_seconds("self.defaultTtl"),
        ttl_seconds("self.maxTtl")
    ))
    .message("policy.defaultTtl must not be longer than policy.maxTtl")
}

/// A Onetime Secret server for the OneTimeShares of this namespace: its URL, the account to use,
/// the CA that signs its certificate, and the policy its shares obey.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ots.dev",
    version = "v1alpha1",
    kind = "OtsServer",
    plural = "otsservers",
    singular = "otsserver",
    shortname = "otss",
    namespaced,
    status = "OtsServerStatus",
    doc = "OtsServer is a Onetime Secret server, with its credentials, trust and policy, for the OneTimeShares of its namespace.",
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".spec.url","description":"The server's base URL"}"#,
    printcolumn = r#"{"name":"API","type":"string","jsonPath":".status.api","description":"The API version in use (v1 or v2)"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status","description":"Whether the server works with these credentials"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason","description":"Why the server is (not) Ready"}"#,
    printcolumn = r#"{"name":"Shares","type":"integer","jsonPath":".status.liveShares","description":"Live links on this server"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct OtsServerSpec {
    /// The server, its credentials, trust and policy.
    #[serde(flatten)]
    pub settings: ServerSettings,
}

/// A Onetime Secret server for the OneTimeShares of every namespace its conditions allow.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ots.dev",
    version = "v1alpha1",
    kind = "ClusterOtsServer",
    plural = "clusterotsservers",
    singular = "clusterotsserver",
    shortname = "cotss",
    status = "OtsServerStatus",
    doc = "ClusterOtsServer is a Onetime Secret server, with its credentials, trust and policy, for the OneTimeShares of the namespaces its conditions allow. Annotated ots.dev/default-server: \"true\", it is the server of every share that names none.",
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".spec.url","description":"The server's base URL"}"#,
    printcolumn = r#"{"name":"API","type":"string","jsonPath":".status.api","description":"The API version in use (v1 or v2)"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status","description":"Whether the server works with these credentials"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason","description":"Why the server is (not) Ready"}"#,
    printcolumn = r#"{"name":"Shares","type":"integer","jsonPath":".status.liveShares","description":"Live links on this server"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterOtsServerSpec {
    /// The server, its credentials, trust and policy. Its Secrets (credentialsSecretRef,
    /// caBundleSecretRef) live in the operator's own namespace.
    #[serde(flatten)]
    pub settings: ServerSettings,

    /// Which namespaces' OneTimeShares may use this server: a namespace may when any one
    /// condition matches it (as external-secrets' ClusterSecretStore). Without conditions, every
    /// namespace may.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub conditions: Vec<NamespaceCondition>,
}

/// A server, the account and trust to use with it, and the policy its shares obey.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServerSettings {
    /// Base URL of the server, e.g. https://eu.onetimesecret.com (no path, query or fragment).
    /// It must be on the operator's allowlist (--allow-server-url); otherwise the server is
    /// never called and is not Ready (reason ServerNotAllowed).
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^https?://[^/?#\\\\s]+/?$')").message("url must be a base URL such as https://eu.onetimesecret.com (no path, query or fragment)"))]
    pub url: String,

    /// The API version to speak: auto (default: v2 when the server offers it, else v1), v1 or v2.
    #[serde(default)]
    pub api: ServerApi,

    /// A Secret holding the account's email and API token (keys `username` and `apiToken`
    /// unless usernameKey and apiTokenKey say otherwise): in the OtsServer's namespace, or for a
    /// ClusterOtsServer in the operator's namespace. Without it, the server is used anonymously.
    /// A changed token is used within seconds, without a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<CredentialsSecretRef>,

    /// A key of a Secret holding the PEM certificates of the authority that signs the server's
    /// TLS certificate (a private CA): in the OtsServer's namespace, or for a ClusterOtsServer in
    /// the operator's namespace. They are trusted for this server only, besides the usual roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle_secret_ref: Option<SecretKeyRef>,

    /// A custom domain of the server account that new links are to be on (v2 `share_domain`),
    /// e.g. secrets.example.com: links are then SCHEME://secrets.example.com/secret/... (the
    /// scheme of url). A domain the account may not use (any, for anonymous use) is refused by
    /// the server: the share is Failed with reason ShareDomainRefused, nothing is shared on
    /// another domain. API v1 has no share domain: the object is not Ready
    /// (ShareDomainRefused) and its shares fail. Existing links keep their domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new(format!("self.matches('{DOMAIN_PATTERN}')")).message("shareDomain must be a lower-case DNS name such as secrets.example.com"))]
    pub share_domain: Option<String>,

    /// How fast the operator calls this server: at most requestsPerSecond calls a second, and
    /// burst calls at once after a quiet spell. The operator-wide --ots-rate applies too (a call
    /// waits for both). A ClusterOtsServer's limit counts every call to the server's origin
    /// (scheme://host:port): shares, burns, receipt and batch checks. An OtsServer's counts only
    /// the calls made for its own namespace, so it never slows another tenant's calls to a
    /// server they share. Several limits on one origin: the strictest of each scope applies.
    /// Calls waiting for it hold back no call to another server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,

    /// What the shares that use this server may ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<ServerPolicy>,
}

/// The API version a server is spoken to with.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ServerApi {
    /// v2 when the server offers it, else v1.
    #[default]
    Auto,
    /// The legacy form-encoded API under /api/v1.
    V1,
    /// The JSON API under /api/v2.
    V2,
}

impl From<ServerApi> for ApiVersion {
    fn from(api: ServerApi) -> Self {
        match api {
            ServerApi::Auto => ApiVersion::Auto,
            ServerApi::V1 => ApiVersion::V1,
            ServerApi::V2 => ApiVersion::V2,
        }
    }
}

/// A Secret with an account's email and API token.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = secret_name_rule())]
    pub name: String,

    /// The key holding the account's email. Default `username`.
    #[serde(default = "default_username_key")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = secret_key_rule())]
    pub username_key: String,

    /// The key holding the API token. Default `apiToken`.
    #[serde(default = "default_api_token_key")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = secret_key_rule())]
    pub api_token_key: String,
}

fn default_username_key() -> String {
    DEFAULT_USERNAME_KEY.to_owned()
}

fn default_api_token_key() -> String {
    DEFAULT_API_TOKEN_KEY.to_owned()
}

/// A request rate for one server.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// Steady calls per second at most, 1 to 1000.
    #[schemars(range(min = 1, max = 1000))]
    #[schemars(transform = super::kubernetes_integer_format)]
    pub requests_per_second: u32,

    /// Calls that may go at once after a quiet spell, 1 to 10000 (default: requestsPerSecond).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 10000))]
    #[schemars(transform = super::kubernetes_integer_format)]
    pub burst: Option<u32>,
}

/// What the shares that use a server may ask for.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = default_within_max_rule())]
pub struct ServerPolicy {
    /// The longest spec.ttl a share may ask for ("90s", "30m", "24h", "7d"; at least 60s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = ttl_format_rule())]
    #[x_kube(validation = ttl_minimum_rule())]
    #[schemars(length(max = 10))]
    pub max_ttl: Option<String>,

    /// The lifetime of a share that sets no spec.ttl (at most maxTtl). Default 7d.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = ttl_format_rule())]
    #[x_kube(validation = ttl_minimum_rule())]
    #[schemars(length(max = 10))]
    pub default_ttl: Option<String>,

    /// Whether every share must set spec.passphraseSecretRef.
    #[serde(default)]
    pub passphrase_required: bool,

    /// The domains spec.recipient may be at (e.g. example.com); empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        inner(length(min = 1, max = 253), pattern(DOMAIN_PATTERN))
    )]
    pub allowed_recipient_domains: Vec<String>,

    /// Live links per Secret at most, 1 to 1000 (besides the operator-wide limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    #[schemars(transform = super::kubernetes_integer_format)]
    pub max_live_shares_per_secret: Option<u32>,
}

/// Namespaces that may use a ClusterOtsServer: those its namespaceSelector selects, those it
/// names, and those a regular expression of it matches.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.namespaceSelector) || size(self.namespaces) > 0 || size(self.namespaceRegexes) > 0").message("a condition needs namespaceSelector, namespaces or namespaceRegexes"))]
pub struct NamespaceCondition {
    /// Namespaces whose labels this selector selects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,

    /// Namespaces by name.
    #[serde(default)]
    #[schemars(
        length(max = 256),
        inner(length(min = 1, max = 63), pattern(NAMESPACE_PATTERN))
    )]
    pub namespaces: Vec<String>,

    /// Namespaces whose whole name a regular expression matches (RE2 syntax, e.g. ^team-.*$).
    #[serde(default)]
    #[schemars(length(max = 64), inner(length(min = 1, max = 256)))]
    pub namespace_regexes: Vec<String>,
}

/// What the operator found out about a server.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OtsServerStatus {
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The API version in use: v1 or v2 (what spec.api auto resolved to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,

    /// Live links of the shares that use this object: those that name it in serverRef, and for
    /// the default ClusterOtsServer those that name no server (updated every 15 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_shares: Option<i64>,

    /// When the server was last checked (credentials verified, API version resolved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checked_at: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,

    /// Standard conditions. Ready says whether the server answers, trusts the credentials and
    /// is trusted; its reason says why not (ServerNotAllowed, CredentialsNotFound, Unauthorized,
    /// TlsUntrusted, ServerUnavailable, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

impl ClusterOtsServer {
    /// Whether the default-server annotation is set to "true".
    pub fn is_default(&self) -> bool {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DEFAULT_SERVER_ANNOTATION))
            .is_some_and(|v| v == "true")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_keys_default_to_the_inline_servers_keys() {
        let spec: OtsServerSpec = serde_json::from_value(serde_json::json!({
            "url": "https://eu.onetimesecret.com",
            "credentialsSecretRef": {"name": "creds"}
        }))
        .unwrap();
        let credentials = spec.settings.credentials_secret_ref.unwrap();
        assert_eq!(credentials.username_key, "username");
        assert_eq!(credentials.api_token_key, "apiToken");
        assert_eq!(spec.settings.api, ServerApi::Auto);
    }

    #[test]
    fn a_cluster_server_is_the_default_only_when_annotated_true() {
        let mut server = ClusterOtsServer::new(
            "eu",
            serde_json::from_value(serde_json::json!({"url": "https://eu.onetimesecret.com"}))
                .unwrap(),
        );
        assert!(!server.is_default());
        server.metadata.annotations = Some(
            [(DEFAULT_SERVER_ANNOTATION.to_owned(), "false".to_owned())]
                .into_iter()
                .collect(),
        );
        assert!(!server.is_default());
        server.metadata.annotations = Some(
            [(DEFAULT_SERVER_ANNOTATION.to_owned(), "true".to_owned())]
                .into_iter()
                .collect(),
        );
        assert!(server.is_default());
    }
}
