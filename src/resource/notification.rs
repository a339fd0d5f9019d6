//! `OtsNotification` (namespaced) and `ClusterOtsNotification` (cluster-wide): where to tell
//! people about a share's transitions, in which format, and which events (design:
//! `docs/notifications-design.md` §2; Flux's `Provider` and `Alert` in one resource, since there
//! is one source kind).
//!
//! The endpoint's URL and signing key live in a Secret, never in the spec: Slack and Teams URLs
//! are bearer tokens. An OtsNotification's Secret is in its own namespace; a
//! ClusterOtsNotification's in the operator's own namespace (as for a ClusterOtsServer), so that
//! whoever may create one cannot make the operator read a Secret of an arbitrary namespace.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::core::Rule;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

use super::server::ttl_seconds;
use super::{SECRET_NAME_PATTERN, TTL_PATTERN, Ttl, secret_name_rule};

/// Key of the endpoint Secret holding the URL notifications are POSTed to.
pub const ADDRESS_KEY: &str = "address";

/// Key of the endpoint Secret holding the Standard Webhooks signing key (`whsec_<base64>`); a
/// rotation may hold two, space-separated (the current one first).
pub const SIGNING_KEY_KEY: &str = "signingKey";

/// How long a notification is retried when `retryFor` is not set.
pub const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(3600);

/// The longest `retryFor` (and the longest lead time CEL lets through, in seconds).
const MAX_RETRY_FOR_SECS: u64 = 24 * 3600;

/// The longest `expiringUnreadLeadTime`, in seconds.
const MAX_LEAD_TIME_SECS: u64 = 7 * 24 * 3600;

/// The CEL expression: a duration string (a ttl's grammar) from 60 s to `max_secs`.
fn duration_within(max_secs: u64) -> String {
    format!(
        "self.matches('{TTL_PATTERN}') && {seconds} >= 60 && {seconds} <= {max_secs}",
        seconds = ttl_seconds("self")
    )
}

fn retry_for_rule() -> Rule {
    Rule::new(duration_within(MAX_RETRY_FOR_SECS)).message(
        "retryFor must be a whole number followed by s, m, h or d, from 60s to 24h (e.g. 10m or 1h)",
    )
}

fn lead_time_rule() -> Rule {
    Rule::new(duration_within(MAX_LEAD_TIME_SECS)).message(
        "expiringUnreadLeadTime must be a whole number followed by s, m, h or d, from 60s to 7d (e.g. 30m or 24h)",
    )
}

/// Notifications of the transitions of this namespace's OneTimeShares: where they go, in which
/// format, and for which events.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ots.dev",
    version = "v1alpha1",
    kind = "OtsNotification",
    plural = "otsnotifications",
    singular = "otsnotification",
    shortname = "otsn",
    namespaced,
    status = "OtsNotificationStatus",
    doc = "OtsNotification sends signed notifications (CloudEvents, Slack or Microsoft Teams) when the OneTimeShares of its namespace are shared, received, burned, expire or fail. The endpoint's URL and signing key are in a Secret of the namespace.",
    printcolumn = r#"{"name":"Format","type":"string","jsonPath":".spec.format","description":"The body format sent"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status","description":"Whether notifications can be sent"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason","description":"Why notifications can (not) be sent"}"#,
    printcolumn = r#"{"name":"Last","type":"string","jsonPath":".status.lastDelivery.outcome","description":"The outcome of the last delivery"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct OtsNotificationSpec {
    /// Where, how and about what to notify.
    #[serde(flatten)]
    pub settings: NotificationSettings,
}

/// Notifications of the transitions of the OneTimeShares of every namespace its
/// namespaceSelector selects (the platform's, e.g. to a security team's SIEM).
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "ots.dev",
    version = "v1alpha1",
    kind = "ClusterOtsNotification",
    plural = "clusterotsnotifications",
    singular = "clusterotsnotification",
    shortname = "cotsn",
    status = "OtsNotificationStatus",
    doc = "ClusterOtsNotification sends signed notifications (CloudEvents, Slack or Microsoft Teams) when the OneTimeShares of the namespaces it selects are shared, received, burned, expire or fail. The endpoint's URL and signing key are in a Secret of the operator's namespace.",
    printcolumn = r#"{"name":"Format","type":"string","jsonPath":".spec.format","description":"The body format sent"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status","description":"Whether notifications can be sent"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason","description":"Why notifications can (not) be sent"}"#,
    printcolumn = r#"{"name":"Last","type":"string","jsonPath":".status.lastDelivery.outcome","description":"The outcome of the last delivery"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterOtsNotificationSpec {
    /// Where, how and about what to notify. Its endpointSecretRef names a Secret of the
    /// operator's own namespace.
    #[serde(flatten)]
    pub settings: NotificationSettings,

    /// The namespaces whose OneTimeShares this notifies about, by their labels. Without it,
    /// every namespace the operator watches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,

    /// Whether a OneTimeShare's spec.notifications.optOut turns this notification off for it.
    /// false (default): the platform's notifications are mandatory (e.g. an audit trail) and
    /// a tenant cannot opt out of them; true: a share that opts out is not notified about.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub honor_opt_out: bool,
}

/// Where, how and about what to notify: the fields both kinds share.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NotificationSettings {
    /// The Secret holding the endpoint: key `address` is the URL notifications are POSTed to (it
    /// must be on the operator's --allow-notification-url list), key `signingKey` the Standard
    /// Webhooks key they are signed with (`whsec_` and base64; two space-separated keys during a
    /// rotation, the current one first). The URL is never shown in status, Events or logs.
    pub endpoint_secret_ref: EndpointSecretRef,

    /// The body format: CloudEvents (default; CloudEvents 1.0 structured JSON), Slack (an
    /// incoming-webhook message) or MicrosoftTeams (an Adaptive Card). Every format is signed.
    #[serde(default)]
    pub format: NotificationFormat,

    /// The events to notify about: Shared, Received, Burned, Expired, Failed, ExpiringUnread.
    /// Empty (default): all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 6))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub events: Vec<NotificationEvent>,

    /// How long before a live, unopened link expires ExpiringUnread is sent ("30m", "24h"; 60s
    /// to 7d). Default: a quarter of the link's lifetime, at most 24h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 10))]
    #[x_kube(validation = lead_time_rule())]
    pub expiring_unread_lead_time: Option<String>,

    /// The OneTimeShares this notifies about, by their labels. Without it, every OneTimeShare
    /// in scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_selector: Option<LabelSelector>,

    /// How long a notification the endpoint does not accept is retried, with capped, jittered
    /// exponential backoff ("10m", "1h"; 60s to 24h; default 1h). Then it is dropped with a
    /// Warning Event NotificationFailed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 10))]
    #[x_kube(validation = retry_for_rule())]
    pub retry_for: Option<String>,

    /// Whether sending is paused: transitions while suspended are not notified later.
    #[serde(default)]
    pub suspend: bool,
}

/// Which notifications apply to a OneTimeShare (`spec.notifications`): opt out of the
/// namespace's OtsNotifications, or name exactly the ones that apply.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.optOut) && self.optOut) || !has(self.notificationRefs) || size(self.notificationRefs) == 0").message("optOut and notificationRefs are mutually exclusive: opt out of the namespace's notifications, or name the ones that apply"))]
pub struct ShareNotifications {
    /// true: no OtsNotification of the namespace tells about this share. A
    /// ClusterOtsNotification (the platform's) still does, unless its honorOptOut is true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub opt_out: bool,

    /// Exactly these OtsNotifications of the share's namespace tell about it (at most 8); the
    /// others do not. Their events still filter; their shareSelector is not consulted. A name
    /// that does not exist or is suspended is skipped, with one Warning Event
    /// NotificationNotFound on the share; the share's phase never changes for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub notification_refs: Vec<NotificationRef>,
}

impl ShareNotifications {
    /// Whether the share opted out of its namespace's OtsNotifications.
    pub fn opted_out(notifications: Option<&ShareNotifications>) -> bool {
        notifications.is_some_and(|n| n.opt_out)
    }
}

/// An OtsNotification of the share's namespace, by name.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct NotificationRef {
    /// Name of the OtsNotification (in the share's namespace).
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new(format!("self.matches('{SECRET_NAME_PATTERN}')")).message("notificationRefs[].name must be a valid object name: lower-case letters, digits, '-' and '.'"))]
    pub name: String,
}

/// The Secret holding an endpoint's URL and signing key.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSecretRef {
    /// Name of the Secret (keys `address` and `signingKey`).
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = secret_name_rule())]
    pub name: String,
}

/// The body format a notification is sent in.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NotificationFormat {
    /// CloudEvents 1.0, structured-mode JSON.
    #[default]
    CloudEvents,
    /// A Slack incoming-webhook message.
    Slack,
    /// A Microsoft Teams message with an Adaptive Card.
    MicrosoftTeams,
}

/// An event a notification can be sent for.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotificationEvent {
    /// A new link is live (shared, reshared or renewed).
    Shared,
    /// The recipient opened the link.
    Received,
    /// The link was burned.
    Burned,
    /// The link expired unread.
    Expired,
    /// The share failed.
    Failed,
    /// A live, unopened link is within the lead time of its expiry.
    ExpiringUnread,
}

impl NotificationSettings {
    /// Whether `event` is one this notifies about (an empty list means every event).
    pub fn wants(&self, event: NotificationEvent) -> bool {
        self.events.is_empty() || self.events.contains(&event)
    }

    /// How long an undelivered notification is retried. A value CEL would refuse (only
    /// possible where CEL did not run) falls back to the default, clamped to 24h.
    pub fn retry_for(&self) -> Duration {
        self.retry_for
            .as_deref()
            .and_then(|text| Ttl::parse(text).ok())
            .map_or(DEFAULT_RETRY_FOR, |ttl| {
                ttl.0.min(Duration::from_secs(MAX_RETRY_FOR_SECS))
            })
    }

    /// How long before the expiry of a link that lives `lifetime` ExpiringUnread is due.
    pub fn expiring_unread_lead_time(&self, lifetime: Duration) -> Duration {
        match self
            .expiring_unread_lead_time
            .as_deref()
            .and_then(|text| Ttl::parse(text).ok())
        {
            Some(ttl) => ttl.0.min(Duration::from_secs(MAX_LEAD_TIME_SECS)),
            None => (lifetime / 4).min(Duration::from_secs(MAX_RETRY_FOR_SECS)),
        }
    }
}

/// What a delivery came to, as `status.lastDelivery.outcome` and the metric's `outcome` label.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryOutcome {
    /// The endpoint accepted it (a 2xx answer).
    Delivered,
    /// Retried for retryFor without success, then given up.
    Failed,
    /// The endpoint is not allowed (allowlist, address rules, a redirect): nothing was sent.
    Refused,
    /// The share's outbox was full: the oldest pending notification was dropped.
    Dropped,
}

impl DeliveryOutcome {
    /// The outcome's name, as in status and the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::Failed => "failed",
            DeliveryOutcome::Refused => "refused",
            DeliveryOutcome::Dropped => "dropped",
        }
    }
}

/// The last delivery a notification resource made: when and how it ended (never where to).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LastDelivery {
    /// When the delivery ended.
    pub at: Time,
    /// How it ended: delivered, failed, refused or dropped.
    pub outcome: DeliveryOutcome,
}

/// What the operator found out about a notification resource.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OtsNotificationStatus {
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The last delivery: when and its outcome. Never the URL (it can hold a token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivery: Option<LastDelivery>,

    /// Standard conditions. Ready says whether notifications can be sent; its reason says why
    /// not: EndpointNotAllowed (the URL is malformed, off the allowlist or at a refused
    /// address), SecretNotFound, KeyNotFound (the Secret lacks address or signingKey, or the key
    /// is not a whsec_ key).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(extra: serde_json::Value) -> NotificationSettings {
        let mut spec = serde_json::json!({"endpointSecretRef": {"name": "hook"}});
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        serde_json::from_value(spec).unwrap()
    }

    #[test]
    fn defaults_are_cloudevents_every_event_and_an_hour_of_retries() {
        let settings = settings(serde_json::json!({}));
        assert_eq!(settings.format, NotificationFormat::CloudEvents);
        assert!(
            settings.wants(NotificationEvent::Received)
                && settings.wants(NotificationEvent::ExpiringUnread)
        );
        assert_eq!(settings.retry_for(), Duration::from_secs(3600));
        assert!(!settings.suspend);
        assert_eq!(
            settings.expiring_unread_lead_time(Duration::from_secs(4 * 3600)),
            Duration::from_secs(3600)
        );
        assert_eq!(
            settings.expiring_unread_lead_time(Duration::from_secs(30 * 86400)),
            Duration::from_secs(86400)
        );
    }

    #[test]
    fn listed_events_are_the_only_ones_wanted() {
        let settings = settings(serde_json::json!({
            "events": ["Received", "Expired"], "retryFor": "10m", "expiringUnreadLeadTime": "2h"
        }));
        assert!(
            settings.wants(NotificationEvent::Received)
                && settings.wants(NotificationEvent::Expired)
        );
        assert!(
            !settings.wants(NotificationEvent::Shared)
                && !settings.wants(NotificationEvent::Burned)
        );
        assert_eq!(settings.retry_for(), Duration::from_secs(600));
        assert_eq!(
            settings.expiring_unread_lead_time(Duration::from_secs(60)),
            Duration::from_secs(7200)
        );
    }

    #[test]
    fn an_unknown_format_or_event_does_not_deserialize() {
        let spec = serde_json::json!({"endpointSecretRef": {"name": "h"}, "format": "Email"});
        assert!(serde_json::from_value::<NotificationSettings>(spec).is_err());
        let spec = serde_json::json!({"endpointSecretRef": {"name": "h"}, "events": ["Opened"]});
        assert!(serde_json::from_value::<NotificationSettings>(spec).is_err());
    }
}
