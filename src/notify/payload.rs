//! What a notification says: one share's transition (the audit line's facts), its delivery id,
//! and its body in each format. The struct has no field that could hold the link, the metadata
//! key, the value or the passphrase, so no format can send them.

use k8s_openapi::jiff::Timestamp;
use ring::digest;
use serde::{Serialize, Serializer};

use super::chat;
use crate::controller::transition::Transition;
use crate::error::Reason;
use crate::resource::notification::{NotificationEvent, NotificationFormat};
use crate::resource::{PastLink, Phase};

/// `Content-Type` of a CloudEvents structured-mode body.
pub const CLOUDEVENTS_CONTENT_TYPE: &str = "application/cloudevents+json; charset=utf-8";
/// `Content-Type` of the chat formats' bodies.
pub const JSON_CONTENT_TYPE: &str = "application/json";
/// Length of the base32 part of a delivery id (130 bits of the hash).
const ID_HASH_CHARS: usize = 26;

/// What happened, as a receiver filters on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Event {
    /// A new link is live (reasons Shared, Reshared, Renewed).
    Shared,
    /// The recipient opened the link.
    Received,
    /// The link expired unread.
    Expired,
    /// The link was burned.
    Burned,
    /// The share failed.
    Failed,
    /// A live, unopened link is within the lead time of its expiry.
    ExpiringUnread,
}

impl Event {
    /// The event's name, as in `spec.events`.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Shared => "Shared",
            Event::Received => "Received",
            Event::Expired => "Expired",
            Event::Burned => "Burned",
            Event::Failed => "Failed",
            Event::ExpiringUnread => "ExpiringUnread",
        }
    }

    /// The event's segment of a CloudEvents `type` (lower case).
    pub fn type_segment(self) -> &'static str {
        match self {
            Event::Shared => "shared",
            Event::Received => "received",
            Event::Expired => "expired",
            Event::Burned => "burned",
            Event::Failed => "failed",
            Event::ExpiringUnread => "expiringunread",
        }
    }

    /// The event of a transition with `reason` into `phase`: a link's end by its reason, a
    /// failure by the phase, every other transition a new link.
    pub fn of(reason: Reason, phase: Phase) -> Event {
        match reason {
            Reason::Received => Event::Received,
            Reason::Burned => Event::Burned,
            Reason::Expired => Event::Expired,
            _ if phase == Phase::Failed => Event::Failed,
            _ => Event::Shared,
        }
    }
}

/// The body formats a notification can be sent in (`spec.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// CloudEvents 1.0, structured-mode JSON.
    CloudEvents,
    /// A Slack incoming-webhook message.
    Slack,
    /// A Microsoft Teams message with an Adaptive Card.
    MicrosoftTeams,
}

impl Format {
    /// The `Content-Type` of a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::CloudEvents => CLOUDEVENTS_CONTENT_TYPE,
            Format::Slack | Format::MicrosoftTeams => JSON_CONTENT_TYPE,
        }
    }
}

impl From<NotificationFormat> for Format {
    fn from(format: NotificationFormat) -> Format {
        match format {
            NotificationFormat::CloudEvents => Format::CloudEvents,
            NotificationFormat::Slack => Format::Slack,
            NotificationFormat::MicrosoftTeams => Format::MicrosoftTeams,
        }
    }
}

impl From<Event> for NotificationEvent {
    fn from(event: Event) -> NotificationEvent {
        match event {
            Event::Shared => NotificationEvent::Shared,
            Event::Received => NotificationEvent::Received,
            Event::Burned => NotificationEvent::Burned,
            Event::Expired => NotificationEvent::Expired,
            Event::Failed => NotificationEvent::Failed,
            Event::ExpiringUnread => NotificationEvent::ExpiringUnread,
        }
    }
}

/// A body could not be encoded.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode the notification body: {0}")]
pub struct EncodeError(#[from] serde_json::Error);

/// One share's transition, as sent to an endpoint (CloudEvents `data`, in camelCase).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// Namespace of the OneTimeShare.
    pub namespace: String,
    /// Name of the OneTimeShare.
    pub name: String,
    /// uid of the OneTimeShare.
    pub uid: String,
    /// What happened.
    pub event: Event,
    /// Why, as in the share's condition (e.g. Reshared for a [`Event::Shared`]).
    #[serde(serialize_with = "reason_word")]
    pub reason: Reason,
    /// The share's phase after it happened.
    pub phase: Phase,
    /// When it happened.
    pub at: Timestamp,
    /// The share is being deleted: this is its last transition.
    pub deleted: bool,
    /// When the current link was shared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_at: Option<Timestamp>,
    /// When the current link stops working.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    /// When the current link was received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received_at: Option<Timestamp>,
    /// When the current link was burned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burned_at: Option<Timestamp>,
    /// When the current link expired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expired_at: Option<Timestamp>,
    /// The link that ended with this transition (Received, Burned, Expired), or the one a new
    /// link replaced: when it was shared, how and when it ended. Times only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended: Option<PastLink>,
    /// The base URL of the server that holds (held) the link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_url: Option<String>,
}

fn reason_word<S: Serializer>(reason: &Reason, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(reason.as_str())
}

impl From<&Transition> for Notification {
    fn from(t: &Transition) -> Notification {
        let time = |t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
            t.as_ref().map(|t| t.0)
        };
        Notification {
            namespace: t.namespace.clone(),
            name: t.name.clone(),
            uid: t.uid.clone(),
            event: Event::of(t.reason, t.phase),
            reason: t.reason,
            phase: t.phase,
            at: t.at.0,
            deleted: t.deleted,
            shared_at: time(&t.shared_at),
            expires_at: time(&t.expires_at),
            received_at: time(&t.received_at),
            burned_at: time(&t.burned_at),
            expired_at: time(&t.expired_at),
            ended: t.ended.clone(),
            server_url: t.server_url.clone(),
        }
    }
}

/// The id of one notification to one endpoint, the same on every attempt from any process:
/// `"ots_"` and the first 26 base32 characters of SHA-256 over the share's uid, its link's
/// `sharedAt`, the event and the notification resource's uid (design §3). Receivers dedupe on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct DeliveryId(String);

impl DeliveryId {
    /// The id of `event` of the link of share `share_uid` shared at `shared_at`, sent to the
    /// endpoint of the notification resource `notification_uid`. The parts are separated by a
    /// NUL byte, which none of them can hold, so no two tuples hash the same input.
    pub fn derive(
        share_uid: &str,
        shared_at: Option<Timestamp>,
        event: Event,
        notification_uid: &str,
    ) -> DeliveryId {
        let shared_at = shared_at.map(|t| t.to_string()).unwrap_or_default();
        let mut ctx = digest::Context::new(&digest::SHA256);
        for (i, part) in [share_uid, &shared_at, event.as_str(), notification_uid]
            .iter()
            .enumerate()
        {
            if i > 0 {
                ctx.update(&[0]);
            }
            ctx.update(part.as_bytes());
        }
        let encoded = data_encoding::BASE32_NOPAD.encode(ctx.finish().as_ref());
        DeliveryId(format!("ots_{}", &encoded[..ID_HASH_CHARS]))
    }

    /// The id as sent in `webhook-id` and the CloudEvents `id`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A CloudEvents 1.0 structured-mode envelope around a notification.
#[derive(Serialize)]
struct CloudEvent<'a> {
    specversion: &'static str,
    id: &'a DeliveryId,
    source: String,
    #[serde(rename = "type")]
    kind: String,
    subject: String,
    time: Timestamp,
    datacontenttype: &'static str,
    data: &'a Notification,
}

impl Notification {
    /// This notification's id for the endpoint of the notification resource `notification_uid`.
    pub fn delivery_id(&self, notification_uid: &str) -> DeliveryId {
        DeliveryId::derive(&self.uid, self.shared_at, self.event, notification_uid)
    }

    /// The share as `namespace/name` (the CloudEvents `subject`, the chat formats' headline).
    pub fn subject(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The body in `format`, with `id` as the CloudEvents `id`.
    pub fn body(&self, format: Format, id: &DeliveryId) -> Result<Vec<u8>, EncodeError> {
        let body = match format {
            Format::CloudEvents => serde_json::to_vec(&self.cloud_event(id))?,
            Format::Slack => serde_json::to_vec(&chat::slack(self))?,
            Format::MicrosoftTeams => serde_json::to_vec(&chat::teams(self))?,
        };
        Ok(body)
    }

    fn cloud_event<'a>(&'a self, id: &'a DeliveryId) -> CloudEvent<'a> {
        CloudEvent {
            specversion: "1.0",
            id,
            source: format!(
                "/apis/ots.dev/v1alpha1/namespaces/{}/onetimeshares/{}",
                self.namespace, self.name
            ),
            kind: format!("dev.ots.onetimeshare.{}.v1", self.event.type_segment()),
            subject: self.subject(),
            time: self.at,
            datacontenttype: JSON_CONTENT_TYPE,
            data: self,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::{Value, json};

    pub(crate) fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    /// A received share's notification, with every time set.
    pub(crate) fn received() -> Notification {
        Notification {
            namespace: "team-a".into(),
            name: "db-password".into(),
            uid: "5f1c-uid".into(),
            event: Event::Received,
            reason: Reason::Received,
            phase: Phase::Received,
            at: ts(1_800_000_300),
            deleted: false,
            shared_at: Some(ts(1_800_000_000)),
            expires_at: Some(ts(1_800_086_400)),
            received_at: Some(ts(1_800_000_300)),
            burned_at: None,
            expired_at: None,
            ended: Some(PastLink {
                shared_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ts(1_800_000_000)),
                ended: crate::resource::LinkEnd::Received,
                ended_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(ts(1_800_000_300)),
            }),
            server_url: Some("https://ots.example".into()),
        }
    }

    fn cloud_event_json(n: &Notification) -> Value {
        let id = n.delivery_id("notif-uid");
        serde_json::from_slice(&n.body(Format::CloudEvents, &id).unwrap()).unwrap()
    }

    #[test]
    fn cloud_event_has_the_designed_envelope_and_camel_case_data() {
        let n = received();
        let id = n.delivery_id("notif-uid");
        assert_eq!(
            cloud_event_json(&n),
            json!({
                "specversion": "1.0",
                "id": id.as_str(),
                "source": "/apis/ots.dev/v1alpha1/namespaces/team-a/onetimeshares/db-password",
                "type": "dev.ots.onetimeshare.received.v1",
                "subject": "team-a/db-password",
                "time": "2027-01-15T08:05:00Z",
                "datacontenttype": "application/json",
                "data": {
                    "namespace": "team-a",
                    "name": "db-password",
                    "uid": "5f1c-uid",
                    "event": "Received",
                    "reason": "Received",
                    "phase": "Received",
                    "at": "2027-01-15T08:05:00Z",
                    "deleted": false,
                    "sharedAt": "2027-01-15T08:00:00Z",
                    "expiresAt": "2027-01-16T08:00:00Z",
                    "receivedAt": "2027-01-15T08:05:00Z",
                    "ended": {"sharedAt": "2027-01-15T08:00:00Z", "ended": "Received",
                              "endedAt": "2027-01-15T08:05:00Z"},
                    "serverUrl": "https://ots.example"
                }
            })
        );
    }

    #[test]
    fn an_independent_cloudevents_parser_reads_the_envelope() {
        use cloudevents::{AttributesReader, Data};
        let n = received();
        let id = n.delivery_id("notif-uid");
        let body = n.body(Format::CloudEvents, &id).unwrap();
        let event: cloudevents::Event = serde_json::from_slice(&body).unwrap();
        assert_eq!(event.specversion(), cloudevents::event::SpecVersion::V10);
        assert_eq!(event.id(), id.as_str());
        assert_eq!(
            event.source().to_string(),
            "/apis/ots.dev/v1alpha1/namespaces/team-a/onetimeshares/db-password"
        );
        assert_eq!(event.ty(), "dev.ots.onetimeshare.received.v1");
        assert_eq!(event.subject(), Some("team-a/db-password"));
        assert_eq!(event.time().map(|t| t.timestamp()), Some(n.at.as_second()));
        assert_eq!(event.datacontenttype(), Some("application/json"));
        match event.data() {
            Some(Data::Json(data)) => assert_eq!(data["receivedAt"], "2027-01-15T08:05:00Z"),
            other => panic!("data is not JSON: {other:?}"),
        }
    }

    #[test]
    fn cloud_event_type_names_each_event_in_lower_case() {
        let mut n = received();
        for (event, kind) in [
            (Event::Shared, "dev.ots.onetimeshare.shared.v1"),
            (Event::Received, "dev.ots.onetimeshare.received.v1"),
            (Event::Expired, "dev.ots.onetimeshare.expired.v1"),
            (Event::Burned, "dev.ots.onetimeshare.burned.v1"),
            (Event::Failed, "dev.ots.onetimeshare.failed.v1"),
            (
                Event::ExpiringUnread,
                "dev.ots.onetimeshare.expiringunread.v1",
            ),
        ] {
            n.event = event;
            assert_eq!(cloud_event_json(&n)["type"], kind);
        }
    }

    #[test]
    fn delivery_id_is_stable_and_changes_with_each_part() {
        let id = DeliveryId::derive("uid", Some(ts(1)), Event::Received, "n");
        assert_eq!(
            id,
            DeliveryId::derive("uid", Some(ts(1)), Event::Received, "n")
        );
        assert!(id.as_str().starts_with("ots_"));
        assert_eq!(id.as_str().len(), 4 + 26);
        assert!(
            id.as_str()[4..]
                .chars()
                .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c))
        );
        for other in [
            DeliveryId::derive("uid2", Some(ts(1)), Event::Received, "n"),
            DeliveryId::derive("uid", Some(ts(2)), Event::Received, "n"),
            DeliveryId::derive("uid", None, Event::Received, "n"),
            DeliveryId::derive("uid", Some(ts(1)), Event::Burned, "n"),
            DeliveryId::derive("uid", Some(ts(1)), Event::Received, "n2"),
            // The separator keeps shifted boundaries apart.
            DeliveryId::derive("ui", Some(ts(1)), Event::Received, "dn"),
        ] {
            assert_ne!(id, other);
        }
    }

    #[test]
    fn delivery_id_is_pinned() {
        // Pins the hash input layout: changing it would resend delivered notifications under
        // new ids after an upgrade.
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"uid\x001970-01-01T00:00:01Z\x00Received\x00n");
        let expected = data_encoding::BASE32_NOPAD.encode(ctx.finish().as_ref());
        assert_eq!(
            DeliveryId::derive("uid", Some(ts(1)), Event::Received, "n").as_str(),
            format!("ots_{}", &expected[..26])
        );
    }

    #[test]
    fn event_follows_the_transition_reason_and_phase() {
        assert_eq!(Event::of(Reason::Shared, Phase::Shared), Event::Shared);
        assert_eq!(Event::of(Reason::Reshared, Phase::Shared), Event::Shared);
        assert_eq!(Event::of(Reason::Renewed, Phase::Shared), Event::Shared);
        assert_eq!(
            Event::of(Reason::Received, Phase::Received),
            Event::Received
        );
        assert_eq!(Event::of(Reason::Burned, Phase::Burned), Event::Burned);
        assert_eq!(Event::of(Reason::Expired, Phase::Expired), Event::Expired);
        assert_eq!(
            Event::of(Reason::SecretNotFound, Phase::Failed),
            Event::Failed
        );
    }

    #[test]
    fn from_transition_keeps_its_facts_and_names_the_event() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        let n = received();
        let t = Transition {
            namespace: n.namespace.clone(),
            name: n.name.clone(),
            uid: n.uid.clone(),
            phase: Phase::Received,
            reason: Reason::Received,
            at: Time(n.at),
            deleted: false,
            shared_at: n.shared_at.map(Time),
            expires_at: n.expires_at.map(Time),
            received_at: n.received_at.map(Time),
            burned_at: None,
            expired_at: None,
            ended: n.ended.clone(),
            server_url: n.server_url.clone(),
        };
        assert_eq!(Notification::from(&t), n);
    }
}
