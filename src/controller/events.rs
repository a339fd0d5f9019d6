//! Publishing Kubernetes Events about OneTimeShares.
//!
//! kube's own recorder names an Event `<object name>.<nanoseconds in hex>`, which is longer than the
//! 253 characters a name may have when the object's name is long: such objects got no Events at all.
//! [`Recorder`] is a drop-in replacement (same `new` and `publish`) that keeps every Event name valid
//! for any valid object name: a name too long to take the suffix is cut and gets a short hash of the
//! whole name, so two long names with a common start still get distinct, recognisable Event names.
//!
//! Like kube's recorder, it counts a repeated Event (same object, type, reason, action and note
//! within a few minutes) in the first one's `series` instead of creating another; unlike it, a new
//! note is a new Event (kube would bump the count of an Event whose note says something else), and
//! a repeat whose Event has expired meanwhile is created again instead of failing.

use super::{Context, action_of};
use crate::error::Reason;
use crate::resource::OneTimeShare;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Patch, PatchParams, PostParams};
use kube::core::error_boundary::InvalidObject;
use kube::runtime::events::{Event, EventType, Reporter};
use kube::{Api, Client, Resource, ResourceExt};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// Longest valid object name (a DNS subdomain).
const MAX_NAME: usize = 253;
/// Longest note the Events API accepts, in bytes.
const MAX_NOTE: usize = 1024;
/// How long a published Event is remembered for counting repeats.
const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);

/// What makes two Events "the same" for counting repeats (type, reason, action, note and the
/// object they are about), as a 128-bit digest: two keyed 64-bit hashes. A repeat is looked up by
/// it, so only 16 bytes per recent Event are kept, not the strings; two different Events share a
/// digest with odds far below one in 10^24 (and would only share a series count).
type Key = u128;

/// What is remembered of a published Event to count its repeats: not the Event itself (an Event
/// object is over a kilobyte, and every share publishes one), not even its name, which is rebuilt
/// from the object's name and `first_seen` as it was made.
#[derive(Clone, Copy, Debug)]
struct Published {
    /// When the Event was created (its name's suffix).
    first_seen: Timestamp,
    /// Times it happened: its `series.count`, 1 while it has no series.
    count: i32,
    /// When it last happened (its `series.lastObservedTime`, else its `eventTime`).
    last_seen: Timestamp,
}

/// Publishes Events; cheap to share, remembers recent Events to count repeats.
pub struct Recorder {
    client: Client,
    reporter: Reporter,
    recent: Mutex<HashMap<Key, Published>>,
    /// Names an Event in `recent`.
    digest: super::memory::Digest,
    /// Undecodable objects already reported, by uid, with the resource version reported.
    reported_invalid: Mutex<HashMap<String, String>>,
}

impl Recorder {
    /// A recorder that publishes as `reporter`.
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self {
            client,
            reporter,
            recent: Mutex::new(HashMap::new()),
            digest: super::memory::Digest::default(),
            reported_invalid: Mutex::new(HashMap::new()),
        }
    }

    /// Publishes `event` about the object `reference` points to, in that object's namespace
    /// (`default` for cluster-scoped objects), or counts it as a repeat of a recent one.
    pub async fn publish(
        &self,
        event: &Event,
        reference: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let key = self.key(event, reference);
        let repeat = {
            let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
            recent.retain(|_, e| e.last_seen + SERIES_WINDOW > now);
            recent.get(&key).copied()
        };
        let namespace = reference.namespace.as_deref().unwrap_or("default");
        let events: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        let published = match repeat {
            Some(earlier) => {
                let count = earlier.count + 1;
                // Only the series changes; a merge patch leaves the rest of the Event as it is.
                let series = serde_json::json!({
                    "series": EventSeries {
                        count,
                        last_observed_time: MicroTime(now),
                    }
                });
                let name = event_name(
                    self.base_name(reference),
                    earlier.first_seen.as_nanosecond(),
                );
                match events
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&series))
                    .await
                {
                    Ok(_) => Published {
                        first_seen: earlier.first_seen,
                        count,
                        last_seen: now,
                    },
                    // The API server dropped it (Events live an hour): publish it afresh.
                    Err(kube::Error::Api(status)) if status.is_not_found() => {
                        self.create(&events, event, reference, now).await?
                    }
                    Err(e) => return Err(e),
                }
            }
            None => self.create(&events, event, reference, now).await?,
        };
        self.recent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, published);
        Ok(())
    }

    /// Creates a new Event (not a repeat) and tells what to remember of it.
    async fn create(
        &self,
        events: &Api<K8sEvent>,
        event: &Event,
        reference: &ObjectReference,
        now: Timestamp,
    ) -> Result<Published, kube::Error> {
        let fresh = self.new_event(event, reference, now);
        events.create(&PostParams::default(), &fresh).await?;
        Ok(Published {
            first_seen: now,
            count: 1,
            last_seen: now,
        })
    }

    /// The digest that tells repeats of `event` about `reference` (see [`Key`]).
    fn key(&self, event: &Event, reference: &ObjectReference) -> Key {
        let identity = (
            event.type_ == EventType::Warning,
            &event.reason,
            &event.action,
            &event.note,
            &reference.uid,
            &reference.namespace,
            &reference.name,
            &reference.kind,
        );
        self.digest.of(identity)
    }

    /// What an Event about `reference` is named after: the object's name, else the controller's.
    fn base_name<'a>(&'a self, reference: &'a ObjectReference) -> &'a str {
        reference
            .name
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(&self.reporter.controller)
    }

    fn new_event(&self, event: &Event, reference: &ObjectReference, now: Timestamp) -> K8sEvent {
        let base = self.base_name(reference);
        K8sEvent {
            action: Some(event.action.clone()),
            reason: Some(event.reason.clone()),
            event_time: Some(MicroTime(now)),
            regarding: Some(reference.clone()),
            related: event.secondary.clone(),
            note: event.note.as_deref().map(clip_note),
            metadata: ObjectMeta {
                namespace: reference.namespace.clone(),
                name: Some(event_name(base, now.as_nanosecond())),
                ..ObjectMeta::default()
            },
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            type_: Some(
                match event.type_ {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_owned(),
            ),
            ..K8sEvent::default()
        }
    }

    /// Whether this version of an undecodable object is reported for the first time.
    fn first_report_of_invalid(&self, uid: &str, resource_version: &str) -> bool {
        let mut reported = self
            .reported_invalid
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        reported.insert(uid.to_owned(), resource_version.to_owned())
            != Some(resource_version.to_owned())
    }
}

/// The name of an Event about object `name`: `<name>.<nanos hex>` as Kubernetes' own recorders do,
/// with `name` cut (and given an 8-digit hash of the whole name) when the result would be longer
/// than a name may be. Valid whenever `name` is a valid DNS subdomain.
pub fn event_name(name: &str, nanos: i128) -> String {
    let suffix = format!("{:x}", nanos.max(0));
    let room = MAX_NAME - 1 - suffix.len();
    if name.len() <= room {
        return format!("{name}.{suffix}");
    }
    let hash = format!("{:08x}", fnv1a(name.as_bytes()) as u32);
    // Names are ASCII (DNS subdomains); cut on a char boundary all the same.
    let mut cut = room - 1 - hash.len();
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let head = name[..cut].trim_end_matches(['-', '.']);
    format!("{head}-{hash}.{suffix}")
}

/// 64-bit FNV-1a: a stable, dependency-free hash for name suffixes (not for security).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A note cut to what the Events API accepts (1 kB), on a character boundary, marked with "…".
fn clip_note(note: &str) -> String {
    if note.len() <= MAX_NOTE {
        return note.to_owned();
    }
    let mut cut = MAX_NOTE - '…'.len_utf8();
    while !note.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &note[..cut])
}

/// Publishes an Event about a OneTimeShare; failures are logged, never fatal.
pub(super) async fn publish(
    recorder: &Recorder,
    obj: &OneTimeShare,
    kind: EventType,
    reason: Reason,
    note: String,
) {
    let action = action_of(reason);
    publish_about(recorder, &obj.object_ref(&()), kind, reason, action, note).await;
}

async fn publish_about(
    recorder: &Recorder,
    reference: &ObjectReference,
    kind: EventType,
    reason: Reason,
    action: &str,
    note: String,
) {
    let event = Event {
        type_: kind,
        reason: reason.as_str().to_owned(),
        note: Some(note),
        action: action.to_owned(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, reference).await {
        tracing::warn!(error = %e, reason = reason.as_str(), "could not publish event");
    }
}

/// Publishes the outcome of a server object's check (action `Check`), when what its Ready
/// condition shows changes: the note names Secrets and keys, never their data.
pub(super) async fn publish_check<K: Resource<DynamicType = ()>>(
    recorder: &Recorder,
    obj: &K,
    kind: EventType,
    reason: Reason,
    note: String,
) {
    publish_about(recorder, &obj.object_ref(&()), kind, reason, "Check", note).await;
}

/// Reports a OneTimeShare the operator cannot decode (for example written through a newer CRD
/// version): one warn log line and one Warning Event per version of the object. The object is then
/// left alone until it changes.
pub(super) async fn report_invalid<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    obj: &K,
    invalid: &InvalidObject,
) {
    let uid = obj.uid().unwrap_or_default();
    let version = obj.resource_version().unwrap_or_default();
    if !ctx.recorder.first_report_of_invalid(&uid, &version) {
        return;
    }
    let problem = redact_decode_error(&invalid.error);
    tracing::warn!(
        object = %kube::runtime::reflector::ObjectRef::from_obj(obj),
        error = %problem,
        "cannot decode a OneTimeShare; leaving it alone until it changes"
    );
    let note = format!(
        "the operator cannot read this OneTimeShare ({problem}); it is left alone until it is \
         fixed. Was it written through another version of the CRD? While it stays unreadable its \
         link is neither tracked nor burned, and its finalizer is not removed."
    );
    publish_about(
        &ctx.recorder,
        &obj.object_ref(&()),
        EventType::Warning,
        Reason::InvalidSpec,
        action_of(Reason::InvalidSpec),
        note,
    )
    .await;
}

/// A decode error without the values it quotes: serde quotes the value it found (`invalid type:
/// string "…", expected …`), and a value in a wrong place may be anything, even a secret. Only a
/// missing or duplicate field's name (from the schema, not the object) is kept.
fn redact_decode_error(error: &str) -> String {
    let lower = error.to_ascii_lowercase();
    if lower.starts_with("missing field") || lower.starts_with("duplicate field") {
        return error.to_owned();
    }
    // What the decoder expected comes from our own types: keep it.
    let cut = lower
        .find(", expected")
        .or_else(|| lower.find(". expected"))
        .unwrap_or(error.len());
    let (found, expected) = error.split_at(cut);
    let mut out = String::new();
    let mut open: Option<char> = None;
    for c in found.chars() {
        match open {
            Some(q) if c == q => {
                out.push('…');
                out.push(c);
                open = None;
            }
            Some(_) => {}
            None => {
                out.push(c);
                if c == '"' || c == '`' || c == '\'' {
                    open = Some(c);
                }
            }
        }
    }
    if open.is_some() {
        out.push('…');
    }
    out + expected
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DNS-1123 subdomain, as the API server checks object names.
    fn is_dns_subdomain(name: &str) -> bool {
        name.len() <= MAX_NAME
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            })
    }

    #[test]
    fn short_names_keep_kubernetes_own_event_names() {
        assert_eq!(event_name("db-password", 0x1f), "db-password.1f");
    }

    #[test]
    fn event_names_are_valid_for_every_valid_object_name() {
        let nanos = i128::from(i64::MAX);
        let long = "a".repeat(253);
        let dotted = format!("{}.{}", "b".repeat(200), "c".repeat(52));
        let dash_at_cut = format!("{}-{}", "d".repeat(225), "e".repeat(27));
        for name in [long.as_str(), &dotted, &dash_at_cut, "x", &"f".repeat(236)] {
            let event = event_name(name, nanos);
            assert!(is_dns_subdomain(&event), "{name} -> {event}");
        }
    }

    #[test]
    fn long_names_with_a_common_start_get_distinct_event_names() {
        let common = "g".repeat(240);
        let a = event_name(&format!("{common}-one"), 1);
        let b = event_name(&format!("{common}-two"), 1);
        assert_ne!(a, b);
        assert!(a.starts_with(&"g".repeat(200)));
    }

    #[test]
    fn long_notes_are_cut_to_what_the_api_accepts() {
        let note = "é".repeat(800);
        let clipped = clip_note(&note);
        assert!(clipped.len() <= MAX_NOTE);
        assert!(clipped.ends_with('…'));
        assert_eq!(clip_note("short"), "short");
    }

    #[test]
    fn decode_errors_never_repeat_the_value_found() {
        assert_eq!(
            redact_decode_error(
                "invalid type: string \"hunter2\", expected struct SecretSourceRef"
            ),
            "invalid type: string \"…\", expected struct SecretSourceRef"
        );
        assert_eq!(
            redact_decode_error("unknown variant `Shred-it`, expected `Burn` or `Keep`"),
            "unknown variant `…`, expected `Burn` or `Keep`"
        );
        assert_eq!(
            redact_decode_error("invalid type: integer `42`, expected a string"),
            "invalid type: integer `…`, expected a string"
        );
        // serde_value's wording, as kube's DeserializeGuard reports it.
        assert_eq!(
            redact_decode_error("Invalid type string \"hunter2\". Expected struct SecretSourceRef"),
            "Invalid type string \"…\". Expected struct SecretSourceRef"
        );
        assert_eq!(
            redact_decode_error("some custom message with \"hunter2\" in it"),
            "some custom message with \"…\" in it"
        );
        assert_eq!(
            redact_decode_error("missing field `secretRef`"),
            "missing field `secretRef`"
        );
    }
}
