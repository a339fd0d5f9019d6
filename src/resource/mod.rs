//! The `OneTimeShare` custom resource: what a user asks for (spec) and what the operator reports (status).
//!
//! Doc comments on these types become `kubectl explain` text; CEL rules reject malformed specs at
//! `kubectl apply` time so that only what the operator alone can know reaches reconciliation.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::core::Rule;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::ots::validate::MIN_TTL_SECS;

pub mod notification;
pub mod server;
pub use notification::{ClusterOtsNotification, OtsNotification, OtsNotificationStatus};
pub use server::{ClusterOtsServer, OtsServer, OtsServerStatus};

/// Name of the finalizer that burns an unread secret before the resource goes away.
pub const FINALIZER: &str = "ots.dev/burn";

/// Annotation that reissues a share: setting it to a new value (a timestamp, say) burns the
/// current link if it is still live and shares the same spec anew under a new link, also after
/// the link was received or expired. `status.reshareToken` holds the value last acted on.
pub const RESHARE_ANNOTATION: &str = "ots.dev/reshare";

/// Longest `ots.dev/reshare` value acted on, in characters (a label value's limit: room for any
/// timestamp or commit hash). A longer one is refused at admission and by the operator, and is
/// never copied into status or the operator's record.
pub const MAX_RESHARE_TOKEN_CHARS: usize = 63;

/// Annotation that burns a share's live link without deleting the share: setting it to a new
/// value (a timestamp, say) burns the link on the server if it is still live; the share then
/// stays in phase Burned, with no new link (not even by `onExpiry: Reshare`), until a new
/// `ots.dev/reshare` value reissues it. A value is acted on once: `status.burnToken` reports the
/// last one. Longer than [`MAX_BURN_TOKEN_CHARS`]: refused at admission and by the operator.
pub const BURN_ANNOTATION: &str = "ots.dev/burn";

/// Longest `ots.dev/burn` value acted on, in characters (as for `ots.dev/reshare`).
pub const MAX_BURN_TOKEN_CHARS: usize = MAX_RESHARE_TOKEN_CHARS;

/// Label on every Secret the operator writes (its records, generated Secrets, link Secrets),
/// with the value [`MANAGED_BY_VALUE`]. The operator writes only into Secrets that carry it, and
/// the chart's admission policy refuses the operator's ServiceAccount any write to a Secret without it.
pub const MANAGED_BY_LABEL: &str = "ots.dev/managed-by";

/// The value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY_VALUE: &str = "ots-operator";

/// Annotation on a Secret made by `spec.generate`: the name of the OneTimeShare that generated it.
pub const GENERATED_BY_ANNOTATION: &str = "ots.dev/generated-by";

/// Annotation on a Secret made by `spec.generate`: the uid of the OneTimeShare that generated it.
pub const GENERATED_BY_UID_ANNOTATION: &str = "ots.dev/generated-by-uid";

/// Default of `spec.maxShares`: how many links in a row `onExpiry: Reshare` makes at most.
pub const DEFAULT_MAX_SHARES: u32 = 10;

/// Default lifetime of a link when `spec.ttl` is not set: 7 days, the public service's anonymous maximum.
pub const DEFAULT_TTL: &str = "7d";

/// A Secret name is a DNS subdomain (RFC 1123): dot-separated labels of lower-case letters, digits
/// and '-', each starting and ending with a letter or digit. The length (at most 253) is the
/// schema's `maxLength`. Refusing anything else at `kubectl apply` keeps names such as
/// `../../team-a/secrets/x`, `creds?watch=true` or `creds#frag` out of the apiserver URLs the
/// operator builds.
pub const SECRET_NAME_PATTERN: &str =
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// A key of a Secret's `data`: letters, digits, '-', '_' and '.' (the length, at most 253, is the
/// schema's `maxLength`).
pub const SECRET_KEY_PATTERN: &str = "^[-._a-zA-Z0-9]+$";

/// The CEL rule every Secret name in the spec carries (the apiserver's refusal quotes the value).
fn secret_name_rule() -> Rule {
    Rule::new(format!("self.matches('{SECRET_NAME_PATTERN}')")).message(
        "name must be a valid Secret name: lower-case letters, digits, '-' and '.', starting \
         and ending with a letter or digit (e.g. db-credentials)",
    )
}

/// The CEL rule every Secret key in the spec carries (the apiserver's refusal quotes the value).
fn secret_key_rule() -> Rule {
    Rule::new(format!("self.matches('{SECRET_KEY_PATTERN}')")).message(
        "key must be a valid Secret key: letters, digits, '-', '_' and '.' (e.g. password)",
    )
}

/// The grammar of `spec.ttl`: 1 to 9 digits and a unit. [`Ttl::parse`] accepts exactly what
/// this pattern and [`ttl_minimum_rule`] accept.
pub const TTL_PATTERN: &str = "^[0-9]{1,9}[smhd]$";

/// The CEL rule for the form of `spec.ttl`.
fn ttl_format_rule() -> Rule {
    Rule::new(format!("self.matches('{TTL_PATTERN}')"))
        .message("ttl must be a whole number followed by s, m, h or d, e.g. 90s, 30m, 24h or 7d")
}

/// The CEL rule for the least `spec.ttl` ([`MIN_TTL_SECS`]); it leaves malformed values to
/// [`ttl_format_rule`].
fn ttl_minimum_rule() -> Rule {
    Rule::new(format!(
        "!self.matches('{TTL_PATTERN}') || int(self.substring(0, size(self) - 1)) * (self.endsWith('d') ? 86400 : self.endsWith('h') ? 3600 : self.endsWith('m') ? 60 : 1) >= {MIN_TTL_SECS}"
    ))
    .message("ttl must be at least 60s")
}

// The minimum rule's message names the minimum.
const _: () = assert!(MIN_TTL_SECS == 60);

/// Share a Kubernetes Secret as a Onetime Secret link that can be opened exactly once.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ots.dev",
    version = "v1alpha1",
    kind = "OneTimeShare",
    plural = "onetimeshares",
    singular = "onetimeshare",
    shortname = "ots",
    namespaced,
    status = "OneTimeShareStatus",
    doc = "OneTimeShare shares a Secret of its namespace as a Onetime Secret link that can be opened exactly once.",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase","description":"Where the share is in its life"}"#,
    printcolumn = r#"{"name":"Secret","type":"string","jsonPath":".spec.secretRef.name","description":"The shared Secret"}"#,
    printcolumn = r#"{"name":"Expires","type":"string","jsonPath":".status.expiresAt","description":"When the link stops working"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason","description":"Why the share is (not) Ready: the Ready condition's reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Link","type":"string","jsonPath":".status.link","priority":1,"description":"The one-time link to hand to the recipient"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.secretRef == oldSelf.secretRef").message("secretRef is immutable: create a new OneTimeShare to share another Secret"))]
#[x_kube(validation = Rule::new("has(self.ttl) == has(oldSelf.ttl) && (!has(self.ttl) || self.ttl == oldSelf.ttl)").message("ttl is immutable once set: create a new OneTimeShare for another lifetime"))]
#[x_kube(validation = Rule::new("has(self.passphraseSecretRef) == has(oldSelf.passphraseSecretRef) && (!has(self.passphraseSecretRef) || self.passphraseSecretRef == oldSelf.passphraseSecretRef)").message("passphraseSecretRef is immutable: create a new OneTimeShare to change the passphrase"))]
#[x_kube(validation = Rule::new("has(self.recipient) == has(oldSelf.recipient) && (!has(self.recipient) || self.recipient == oldSelf.recipient)").message("recipient is immutable: create a new OneTimeShare for another recipient"))]
#[x_kube(validation = Rule::new("has(self.server) == has(oldSelf.server) && (!has(self.server) || self.server == oldSelf.server)").message("server is immutable: create a new OneTimeShare to use another server"))]
#[x_kube(validation = Rule::new("has(self.serverRef) == has(oldSelf.serverRef) && (!has(self.serverRef) || self.serverRef == oldSelf.serverRef)").message("serverRef is immutable: create a new OneTimeShare to use another server"))]
#[x_kube(validation = Rule::new("!has(self.server) || !has(self.serverRef)").message("name the server either by serverRef or inline by server, not both"))]
#[x_kube(validation = Rule::new("has(self.generate) == has(oldSelf.generate) && (!has(self.generate) || self.generate == oldSelf.generate)").message("generate is immutable: create a new OneTimeShare to generate another value"))]
#[x_kube(validation = Rule::new("!has(self.generate) || has(self.secretRef.key)").message("generate needs secretRef.key: the key of the Secret the generated value is written to"))]
#[x_kube(validation = Rule::new("has(self.linkSecretRef) == has(oldSelf.linkSecretRef) && (!has(self.linkSecretRef) || self.linkSecretRef == oldSelf.linkSecretRef)").message("linkSecretRef is immutable: create a new OneTimeShare to keep the link elsewhere"))]
#[x_kube(validation = Rule::new("!has(self.linkSecretRef) || (self.linkSecretRef.name != self.secretRef.name && (!has(self.passphraseSecretRef) || self.linkSecretRef.name != self.passphraseSecretRef.name) && (!has(self.server) || !has(self.server.credentialsSecretRef) || self.linkSecretRef.name != self.server.credentialsSecretRef.name))").message("linkSecretRef must name a Secret of its own, not one the share reads (secretRef, passphraseSecretRef or server.credentialsSecretRef)"))]
#[x_kube(validation = Rule::new("!has(self.maxShares) || (has(self.onExpiry) && self.onExpiry == 'Reshare')").message("maxShares only applies with onExpiry: Reshare"))]
pub struct OneTimeShareSpec {
    /// The Secret to share. It must be in the same namespace as this OneTimeShare.
    pub secret_ref: SecretSourceRef,

    /// How long the link stays valid: a whole number followed by s, m, h or d ("90s", "30m",
    /// "24h", "7d"); at least 60s. Default 7d. The server may grant less than asked (anonymous use
    /// of the public service allows at most 7d); status.ttlSeconds shows what it granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = ttl_format_rule())]
    #[x_kube(validation = ttl_minimum_rule())]
    #[schemars(length(max = 10))]
    pub ttl: Option<String>,

    /// A passphrase the reader must type before the secret is revealed: the key of a Secret in
    /// this namespace whose value is 4 to 128 characters. Burning the link also needs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase_secret_ref: Option<SecretKeyRef>,

    /// An email address the server sends the link to. It needs server credentials (an account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[^@\\\\s]+@[^@\\\\s]+\\\\.[^@\\\\s]+$')").message("recipient must be an email address such as alice@example.com"))]
    #[schemars(length(max = 254))]
    pub recipient: Option<String>,

    /// The Onetime Secret server to use and how to authenticate to it. Without it, the
    /// operator's configured server and credentials are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerSpec>,

    /// The server to use, by reference: an OtsServer of this namespace or a ClusterOtsServer
    /// that allows this namespace (otherwise the share fails with reason ServerNotAllowed and
    /// the server is never called). It brings the server's URL, credentials and API version.
    /// Without serverRef and server, a ClusterOtsServer annotated ots.dev/default-server: "true"
    /// is used, else the operator's configured server. Replaces the older inline server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_ref: Option<ServerRef>,

    /// What deleting this OneTimeShare does to its link. Burn (default): an unread secret is
    /// destroyed so the link stops working. Keep: the link stays valid until it expires.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// What happens when the shared Secret changes after it was shared. Ignore (default): nothing.
    /// Reshare: the old link is burned and the new value is shared under a new link.
    #[serde(default)]
    pub on_secret_change: SecretChangePolicy,

    /// Generate the value instead of sharing one a person wrote: the operator draws a random
    /// value, writes it into secretRef (creating the Secret, or adding the key to a Secret the
    /// operator made) and shares it. Nobody writing YAML ever sees it; applications read it from
    /// the Secret. An existing value is shared as it is, never regenerated; a Secret the operator
    /// did not make is never written to. Needs secretRef.key and the chart's secretWrites.enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate: Option<GenerateSpec>,

    /// What happens when the link expires before anyone opened it. Keep (default): the share
    /// stays Expired. Reshare: the same spec is shared anew under a new link (a standing
    /// hand-off), up to maxShares links in a row. A link that was opened is never reshared.
    #[serde(default)]
    pub on_expiry: ExpiryPolicy,

    /// With onExpiry: Reshare, how many links in a row this OneTimeShare makes at most, counting
    /// the first (1 to 100, default 10). When that many expired unread, it stays Expired. A
    /// reissue (the ots.dev/reshare annotation) or a reshare of a changed Secret starts a new count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    #[schemars(transform = crate::resource::kubernetes_integer_format)]
    pub max_shares: Option<u32>,

    /// Keep the link out of status: the link, the metadata key and the metadata link are written
    /// into this Secret of the namespace (keys `link`, `metadataKey`, `metadataLink`), which the
    /// operator creates and owns (it is deleted with this OneTimeShare). Status, Events and
    /// `kubectl get -o wide` then never show the link; status.linkSecretName names the Secret.
    /// The name must not be taken by a Secret the operator did not create. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_secret_ref: Option<LocalSecretRef>,

    /// Which notifications tell about this share's transitions. Without it, every
    /// OtsNotification of the namespace whose shareSelector selects it, and every
    /// ClusterOtsNotification that selects it. optOut: true turns the namespace's
    /// OtsNotifications off for this share; notificationRefs names exactly the OtsNotifications
    /// of the namespace that apply (their events still filter; their shareSelector is not
    /// consulted). ClusterOtsNotifications (the platform's) are not affected by
    /// notificationRefs, and honour optOut only when their honorOptOut is true. A name that
    /// does not exist (or is suspended) never changes the share's phase: it gets one Warning
    /// Event NotificationNotFound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<Box<notification::ShareNotifications>>,
}

/// How to generate a value (`spec.generate`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GenerateSpec {
    /// Number of characters, 8 to 1024. Default 32.
    #[serde(default = "default_generate_length")]
    #[schemars(range(min = 8, max = 1024))]
    #[schemars(transform = crate::resource::kubernetes_integer_format)]
    pub length: u32,

    /// The characters drawn from, each equally likely. Alphanumeric (default): A-Z, a-z, 0-9.
    /// AlphanumericSymbols: those and !#$%&()*+,-./:;<=>?@[]^_{|}~ (no quotes, backslash or
    /// space). Hex: 0-9 and a-f. Numeric: 0-9.
    #[serde(default)]
    pub charset: Charset,

    /// What deleting this OneTimeShare does to the Secret it generated. Retain (default): the
    /// Secret stays (applications keep using it). Delete: the Secret is owned by the
    /// OneTimeShare and garbage-collected with it (only a Secret this share created).
    #[serde(default)]
    pub secret_policy: GeneratedSecretPolicy,
}

fn default_generate_length() -> u32 {
    32
}

/// Publishes an unsigned field (`u32`, which schemars calls `uint32`) with a format Kubernetes
/// knows, so that `kubectl apply` of the CRD does not warn `unrecognized format "uint32"`:
/// `int32` for the small unsigned types (every such field's range lies far inside it, and its
/// `minimum` keeps out negatives), `int64` for the others. Other formats stay as they are.
pub fn kubernetes_integer_format(schema: &mut schemars::Schema) {
    let known = match schema.get("format").and_then(|format| format.as_str()) {
        Some("uint8" | "uint16" | "uint32") => "int32",
        Some(format) if format.starts_with("uint") => "int64",
        _ => return,
    };
    schema.insert("format".to_owned(), known.into());
}

/// The characters a generated value is drawn from.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Charset {
    /// A-Z, a-z and 0-9 (about 5.95 bits per character).
    #[default]
    Alphanumeric,
    /// A-Z, a-z, 0-9 and !#$%&()*+,-./:;<=>?@[]^_{|}~ (about 6.5 bits per character).
    AlphanumericSymbols,
    /// 0-9 and a-f (4 bits per character).
    Hex,
    /// 0-9 (about 3.3 bits per character).
    Numeric,
}

impl Charset {
    /// The characters, in a fixed order.
    pub fn characters(self) -> &'static [u8] {
        const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        match self {
            Charset::Alphanumeric => ALNUM,
            Charset::AlphanumericSymbols => {
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&()*+,-./:;<=>?@[]^_{|}~"
            }
            Charset::Hex => b"0123456789abcdef",
            Charset::Numeric => b"0123456789",
        }
    }
}

/// What deleting a OneTimeShare does to the Secret its `spec.generate` created.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GeneratedSecretPolicy {
    /// The Secret outlives the OneTimeShare.
    #[default]
    Retain,
    /// The Secret is deleted with the OneTimeShare (an ownerReference to it).
    Delete,
}

/// A Secret in the same namespace, and optionally one key of it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretSourceRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = secret_name_rule())]
    pub name: String,

    /// The key whose value is shared. Without it, every key is shared as sorted KEY=VALUE lines,
    /// a value with a line break as a here-document (KEY<<EOF, its lines, EOF).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = secret_key_rule())]
    pub key: Option<String>,
}

/// One key of a Secret in the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = secret_name_rule())]
    pub name: String,

    /// The key that holds the value.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = secret_key_rule())]
    pub key: String,
}

/// A Onetime Secret server and the credentials to use with it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServerSpec {
    /// Base URL of the server, e.g. https://eu.onetimesecret.com. It must be on the operator's
    /// allowlist (--allow-server-url); otherwise the share fails with reason ServerNotAllowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^https?://[^/?#\\\\s]+/?$')").message("url must be a base URL such as https://eu.onetimesecret.com (no path, query or fragment)"))]
    pub url: Option<String>,

    /// A Secret in this namespace with the keys `username` (the account email) and `apiToken`.
    /// Without it the operator's own credentials are used with the operator's server, and no
    /// credentials (anonymous use) with any other server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<LocalSecretRef>,
}

/// An OtsServer of the share's namespace or a ClusterOtsServer, by name.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServerRef {
    /// OtsServer (of this namespace) or ClusterOtsServer.
    pub kind: ServerKind,

    /// Name of the server object.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new(format!("self.matches('{SECRET_NAME_PATTERN}')")).message("name must be a valid object name: lower-case letters, digits, '-' and '.'"))]
    pub name: String,
}

/// The kinds `spec.serverRef` may name.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    /// A namespaced OtsServer, in the share's namespace.
    OtsServer,
    /// A cluster-wide ClusterOtsServer whose conditions allow the share's namespace.
    ClusterOtsServer,
}

impl ServerKind {
    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerKind::OtsServer => "OtsServer",
            ServerKind::ClusterOtsServer => "ClusterOtsServer",
        }
    }
}

/// A Secret in the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LocalSecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = secret_name_rule())]
    pub name: String,
}

/// What deleting a OneTimeShare does to its link.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Burn an unread secret so its link stops working.
    #[default]
    Burn,
    /// Leave the link valid until it expires.
    Keep,
}

/// What a change of the shared Secret does.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SecretChangePolicy {
    /// Nothing: the link keeps the value that was shared.
    #[default]
    Ignore,
    /// Burn the old link and share the new value under a new link.
    Reshare,
}

/// What an unread link's expiry does.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExpiryPolicy {
    /// Nothing: the share stays Expired.
    #[default]
    Keep,
    /// Share the same spec anew under a new link, up to maxShares links in a row.
    Reshare,
}

/// Where a share is in its life.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Not shared yet (waiting for the Secret, the server, or a fix described by the Ready condition).
    #[default]
    Pending,
    /// The link is live and nobody has opened it yet.
    Shared,
    /// The recipient opened the link; the secret is gone from the server.
    Received,
    /// The secret was burned before anyone opened it.
    Burned,
    /// The link expired before anyone opened it.
    Expired,
    /// Sharing cannot proceed until the spec or the referenced Secrets are fixed (see the Ready condition).
    Failed,
}

impl Phase {
    /// Every phase, for metrics that report a gauge per phase.
    pub const ALL: [Phase; 6] = [
        Phase::Pending,
        Phase::Shared,
        Phase::Received,
        Phase::Burned,
        Phase::Expired,
        Phase::Failed,
    ];

    /// The phase as written in status.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Shared => "Shared",
            Phase::Received => "Received",
            Phase::Burned => "Burned",
            Phase::Expired => "Expired",
            Phase::Failed => "Failed",
        }
    }

    /// Whether a link exists (or existed) for this phase.
    pub fn has_link(self) -> bool {
        matches!(
            self,
            Phase::Shared | Phase::Received | Phase::Burned | Phase::Expired
        )
    }
}

/// What the operator observed: the link, its state on the server, and why.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OneTimeShareStatus {
    /// Pending, Shared, Received, Burned, Expired or Failed.
    #[serde(default)]
    pub phase: Phase,

    /// The one-time link to hand to the recipient. Whoever opens it first gets the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,

    /// The server's metadata (receipt) key: it lets its holder see the link's state and burn it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_key: Option<String>,

    /// The creator's receipt page on the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_link: Option<String>,

    /// With spec.linkSecretRef: the Secret that holds the link, the metadata key and the
    /// metadata link (status.link, status.metadataKey and status.metadataLink then stay empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_secret_name: Option<String>,

    /// The base URL of the server that holds the secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_url: Option<String>,

    /// The server's own word for the secret's state: new, viewed, received, burned, expired or orphaned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_state: Option<String>,

    /// The lifetime the server granted, in seconds (it may clamp what was asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<i64>,

    /// When the secret was shared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_at: Option<Time>,

    /// When the link stops working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,

    /// When the recipient opened the link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at: Option<Time>,

    /// When someone first opened the link, whether or not the value was revealed: set while the
    /// link is still live when the server reports access (v2 receipts' first access, e.g. a
    /// recipient on the passphrase page who has not typed it yet), and at the latest when it is
    /// received. Learned from the regular link checks, no extra polling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_at: Option<Time>,

    /// When the current link was burned (on request with the ots.dev/burn annotation, or by
    /// someone holding its metadata key), as first seen by the operator. Empty for a new link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burned_at: Option<Time>,

    /// When the current link expired unread: its expiresAt (the server's clock, like sharedAt),
    /// or, when the server dropped it early (orphaned), when the operator learned of it. Empty
    /// for a new link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_at: Option<Time>,

    /// The links of this share that have ended, oldest first: when each was shared, and when and
    /// how it ended (Received, Burned, Expired, or Reshared: replaced by a new link while still
    /// live). The live link, if any, is not listed (see sharedAt and expiresAt). At most 10
    /// entries: the oldest is dropped first. Never holds a link or a key. Kept in the operator's
    /// record too, so it survives a wiped status.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub history: Vec<PastLink>,

    /// Whether the reader must type a passphrase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passphrase_protected: Option<bool>,

    /// The resourceVersion of the Secret that was shared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_resource_version: Option<String>,

    /// The value of the `ots.dev/reshare` annotation the current link was made for (a report: the
    /// operator acts on its own record of it). Setting the annotation to any other value
    /// reissues the share (burns a live link, shares anew).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reshare_token: Option<String>,

    /// The value of the `ots.dev/burn` annotation last acted on (a report: the operator acts on
    /// its own record of it). Setting the annotation to any other value burns the link if it is
    /// still live; a value present when a link is made counts as acted on (nothing was live).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burn_token: Option<String>,

    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Standard conditions. Ready says whether the share is in place, and its reason says why not.
    /// Besides it, as kstatus (Flux's health checks) expects, at most one of: Reconciling=True
    /// while the operator is still at work (Pending, or retrying after a transient failure), and
    /// Stalled=True when nothing more happens without a user (Failed: fix the spec or the
    /// Secrets; Burned or Expired: reissue with the ots.dev/reshare annotation).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// Shows whether the link, the metadata key and the metadata link are set, never what they are:
/// each is a capability. A `OneTimeShare`'s `Debug` goes through this, so neither prints them.
impl std::fmt::Debug for OneTimeShareStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        /// A capability shown only as present or absent.
        fn redacted(value: &Option<String>) -> Option<&'static str> {
            value.as_ref().map(|_| "[redacted]")
        }
        f.debug_struct("OneTimeShareStatus")
            .field("phase", &self.phase)
            .field("link", &redacted(&self.link))
            .field("metadata_key", &redacted(&self.metadata_key))
            .field("metadata_link", &redacted(&self.metadata_link))
            .field("link_secret_name", &self.link_secret_name)
            .field("server_url", &self.server_url)
            .field("secret_state", &self.secret_state)
            .field("ttl_seconds", &self.ttl_seconds)
            .field("shared_at", &self.shared_at)
            .field("expires_at", &self.expires_at)
            .field("received_at", &self.received_at)
            .field("opened_at", &self.opened_at)
            .field("burned_at", &self.burned_at)
            .field("expired_at", &self.expired_at)
            .field("history", &self.history)
            .field("passphrase_protected", &self.passphrase_protected)
            .field("source_resource_version", &self.source_resource_version)
            .field("reshare_token", &self.reshare_token)
            .field("burn_token", &self.burn_token)
            .field("observed_generation", &self.observed_generation)
            .field("conditions", &self.conditions)
            .finish()
    }
}

/// Most entries `status.history` keeps (the oldest go first). As many as the default
/// `maxShares`, so a standing hand-off's default run of links fits whole; about 80 bytes of JSON
/// each, so a full history stays far inside the operator's memory budget of 4 KiB per share.
pub const MAX_HISTORY: usize = 10;

// The schema's maxItems on status.history says the same.
const _: () = assert!(MAX_HISTORY == 10);

/// How a link ended.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkEnd {
    /// The recipient opened the link and the secret was revealed.
    Received,
    /// The secret was burned before anyone opened the link.
    Burned,
    /// The link expired before anyone opened it.
    Expired,
    /// The link was replaced by a new one while still live (a reissue, or a reshare of a
    /// changed Secret); it was burned.
    Reshared,
}

impl LinkEnd {
    /// The end as written in status and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkEnd::Received => "Received",
            LinkEnd::Burned => "Burned",
            LinkEnd::Expired => "Expired",
            LinkEnd::Reshared => "Reshared",
        }
    }
}

/// One ended link of a share (`status.history`): times and outcome only, never the link or a key.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PastLink {
    /// When the link was shared.
    pub shared_at: Time,
    /// How the link ended: Received, Burned, Expired or Reshared.
    pub ended: LinkEnd,
    /// When the link ended (for Received, when the secret was revealed).
    pub ended_at: Time,
}

/// A parsed `spec.ttl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttl(pub Duration);

/// Why a `spec.ttl` string could not be parsed (the CRD schema normally rejects these first).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TtlError {
    /// Not a whole number followed by s, m, h or d.
    #[error("ttl {0:?} must be a whole number followed by s, m, h or d, e.g. 90s, 30m, 24h or 7d")]
    Format(String),
    /// Shorter than the server's minimum of 60 seconds.
    #[error("ttl {0:?} must be at least 60s")]
    TooShort(String),
}

impl Ttl {
    /// Parses "90s", "30m", "24h" or "7d" (at least 60 s): exactly the values the CRD's rules
    /// ([`TTL_PATTERN`] and the minimum) accept.
    pub fn parse(text: &str) -> Result<Self, TtlError> {
        let format = || TtlError::Format(text.to_owned());
        let (&unit, number) = text.as_bytes().split_last().ok_or_else(format)?;
        if number.is_empty() || number.len() > 9 || !number.iter().all(u8::is_ascii_digit) {
            return Err(format());
        }
        let number: u64 = number
            .iter()
            .fold(0, |n, digit| n * 10 + u64::from(digit - b'0'));
        let unit_secs = match unit {
            b's' => 1,
            b'm' => 60,
            b'h' => 3600,
            b'd' => 86400,
            _ => return Err(format()),
        };
        // At most 999,999,999 days: no overflow.
        let secs = number * unit_secs;
        if secs < MIN_TTL_SECS {
            return Err(TtlError::TooShort(text.to_owned()));
        }
        Ok(Ttl(Duration::from_secs(secs)))
    }
}

impl OneTimeShareSpec {
    /// The requested lifetime (the default when `ttl` is not set).
    pub fn ttl(&self) -> Result<Ttl, TtlError> {
        Ttl::parse(self.ttl.as_deref().unwrap_or(DEFAULT_TTL))
    }

    /// How many links in a row `onExpiry: Reshare` makes at most (the default when not set).
    pub fn max_shares(&self) -> u32 {
        self.max_shares.unwrap_or(DEFAULT_MAX_SHARES).clamp(1, 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_of_a_share_never_shows_its_link_or_metadata_key() {
        let link = "https://ots.example/secret/abcdefghijklmnop0123456789";
        let key = "metadatakey0123456789abcdefghij";
        let receipt = "https://ots.example/receipt/metadatakey0123456789abcdefghij";
        let mut share = OneTimeShare::new(
            "db",
            serde_json::from_value(serde_json::json!({"secretRef": {"name": "db"}})).unwrap(),
        );
        share.status = Some(OneTimeShareStatus {
            phase: Phase::Shared,
            link: Some(link.to_owned()),
            metadata_key: Some(key.to_owned()),
            metadata_link: Some(receipt.to_owned()),
            secret_state: Some("new".to_owned()),
            ..Default::default()
        });
        for shown in [format!("{share:?}"), format!("{share:#?}")] {
            for capability in [link, key, receipt, "abcdefghijklmnop", "metadatakey"] {
                assert!(!shown.contains(capability), "{capability} in {shown}");
            }
            assert!(
                shown.contains("[redacted]") && shown.contains("Shared") && shown.contains("new")
            );
        }
    }

    #[test]
    fn a_full_history_costs_well_under_a_kibibyte_in_the_watch_cache() {
        // Two timestamps and a one-byte enum: 10 entries stay far inside the 4 KiB per share.
        let entry = std::mem::size_of::<PastLink>();
        assert!(entry <= 40, "{entry} bytes per entry");
        assert!(MAX_HISTORY * entry + std::mem::size_of::<Vec<PastLink>>() < 512);
    }

    #[test]
    fn ttl_accepts_every_documented_unit() {
        assert_eq!(Ttl::parse("90s"), Ok(Ttl(Duration::from_secs(90))));
        assert_eq!(Ttl::parse("30m"), Ok(Ttl(Duration::from_secs(1800))));
        assert_eq!(Ttl::parse("24h"), Ok(Ttl(Duration::from_secs(86400))));
        assert_eq!(Ttl::parse("7d"), Ok(Ttl(Duration::from_secs(604800))));
        assert_eq!(Ttl::parse("60s"), Ok(Ttl(Duration::from_secs(60))));
    }

    #[test]
    fn ttl_rejects_malformed_and_short_values() {
        for bad in [
            "",
            "s",
            "10",
            "1w",
            "-5m",
            "1.5h",
            " 5m",
            "5 m",
            "1234567890s",
        ] {
            assert!(
                matches!(Ttl::parse(bad), Err(TtlError::Format(_))),
                "{bad:?}"
            );
        }
        // Not ASCII at the end or anywhere: refused, never a panic.
        for bad in ["5é", "é5m", "５m", "5m\n", "\u{0}"] {
            assert!(
                matches!(Ttl::parse(bad), Err(TtlError::Format(_))),
                "{bad:?}"
            );
        }
        for short in ["59s", "0m", "0d", "1s"] {
            assert!(
                matches!(Ttl::parse(short), Err(TtlError::TooShort(_))),
                "{short:?}"
            );
        }
    }

    #[test]
    fn ttl_takes_the_largest_value_the_schema_allows() {
        assert_eq!(
            Ttl::parse("999999999d"),
            Ok(Ttl(Duration::from_secs(999_999_999 * 86_400)))
        );
        assert_eq!(Ttl::parse("000000060s"), Ok(Ttl(Duration::from_secs(60))));
        assert_eq!(Ttl::parse("1m"), Ok(Ttl(Duration::from_secs(60))));
    }

    /// What the CRD's two ttl rules accept, spelled out independently of [`Ttl::parse`]:
    /// `^[0-9]{1,9}[smhd]$` and at least 60 seconds.
    fn schema_accepts(text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        let Some((unit, digits)) = chars.split_last() else {
            return false;
        };
        if !(1..=9).contains(&digits.len()) || !digits.iter().all(char::is_ascii_digit) {
            return false;
        }
        let factor = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return false,
        };
        let number: u64 = digits.iter().collect::<String>().parse().unwrap_or(0);
        number * factor >= 60
    }

    proptest::proptest! {
        #[test]
        fn ttl_parse_accepts_exactly_what_the_schema_accepts(
            text in "[0-9]{0,11}[smhdw\u{e9}5 ]?|\\PC{0,12}"
        ) {
            proptest::prop_assert_eq!(Ttl::parse(&text).is_ok(), schema_accepts(&text), "{:?}", text);
        }
    }

    #[test]
    fn spec_defaults_fill_in_policies_and_ttl() {
        let spec: OneTimeShareSpec =
            serde_json::from_value(serde_json::json!({"secretRef": {"name": "db"}})).unwrap();
        assert_eq!(spec.deletion_policy, DeletionPolicy::Burn);
        assert_eq!(spec.on_secret_change, SecretChangePolicy::Ignore);
        assert_eq!(spec.on_expiry, ExpiryPolicy::Keep);
        assert_eq!(spec.max_shares(), DEFAULT_MAX_SHARES);
        assert_eq!(spec.link_secret_ref, None);
        assert_eq!(spec.ttl(), Ok(Ttl(Duration::from_secs(7 * 86400))));
        assert_eq!(spec.generate, None);
    }

    #[test]
    fn generate_defaults_to_32_alphanumeric_characters_kept_after_the_share() {
        let spec: OneTimeShareSpec = serde_json::from_value(serde_json::json!({
            "secretRef": {"name": "app", "key": "token"},
            "generate": {}
        }))
        .unwrap();
        let generate = spec.generate.unwrap();
        assert_eq!(generate.length, 32);
        assert_eq!(generate.charset, Charset::Alphanumeric);
        assert_eq!(generate.secret_policy, GeneratedSecretPolicy::Retain);
    }

    #[test]
    fn charsets_have_distinct_printable_characters() {
        for (charset, size) in [
            (Charset::Alphanumeric, 62),
            (Charset::AlphanumericSymbols, 90),
            (Charset::Hex, 16),
            (Charset::Numeric, 10),
        ] {
            let chars = charset.characters();
            assert_eq!(chars.len(), size, "{charset:?}");
            let unique: std::collections::HashSet<_> = chars.iter().collect();
            assert_eq!(unique.len(), size, "{charset:?}");
            assert!(
                chars
                    .iter()
                    .all(|c| c.is_ascii_graphic() && !b"\"'`\\".contains(c))
            );
        }
    }
}
