//! Notifications of a share's transitions (design: `docs/notifications-design.md` §3): which
//! OtsNotifications and ClusterOtsNotifications apply to a transition, the durable outbox each
//! transition's notifications wait in, and the delivery worker that sends them.
//!
//! - **Outbox**: one Secret per share with pending notifications, `ots-notify-<uid>` in the
//!   operator's namespace (beside the share's record, not in it: see §6 of the design doc),
//!   labelled `ots.dev/notify-pending=true`. A reconcile only appends to
//!   it (one read and one write, and only when some notification applies); it never awaits a
//!   delivery. At start-up the worker lists the outboxes by label, so a notification pending
//!   when the process died is sent after the restart.
//! - **One id**: every entry carries its delivery id, derived from the share's uid, its link's
//!   `sharedAt`, the event and the notification's uid ([`DeliveryId`]), and its rendered body,
//!   so every attempt, from any process, sends the same id and body.
//! - **Its own budget**: at most `--notification-concurrency` attempts at once, each bounded by
//!   the client's timeouts (5 s connect, 10 s in all); a share waiting for its retry holds no
//!   slot. Retries back off from `--notification-retry-min` doubling to
//!   `--notification-retry-max` (±20 %), or as long as `Retry-After` asks, for up to the
//!   notification's `retryFor`; then the entry is dropped with one Warning Event
//!   `NotificationFailed` on the share and on the notification resource.
//! - **Nothing secret leaves**: the body is built from a [`Transition`], which has no field for
//!   the link, the metadata key, the value or the passphrase. The endpoint URL is read from its
//!   Secret for each attempt and never written anywhere: errors name the host and the rule.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Endpoints, Namespace, ObjectReference, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::events::{Event as KubeEvent, EventType, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use rand::Rng;
use serde::{Deserialize, Serialize};
use url::Url;

use super::events::Recorder;
use super::transition::Transition;
use crate::config::NotificationConfig;
use crate::notify::address::AddressPolicy;
use crate::notify::endpoint::{EndpointError, NotificationClient};
use crate::notify::payload::{DeliveryId, Event, Format, Notification};
use crate::notify::sign::{Signer, SigningKey};
use crate::resource::notification::{
    ADDRESS_KEY, DeliveryOutcome, NotificationEvent, NotificationSettings, SIGNING_KEY_KEY,
    ShareNotifications,
};
use crate::resource::{
    ClusterOtsNotification, MANAGED_BY_LABEL, MANAGED_BY_VALUE, OneTimeShare, OtsNotification,
};
use crate::runtime::metrics::Metrics;

/// Label on an outbox Secret while it holds pending notifications (it is deleted once empty).
pub const PENDING_LABEL: &str = "ots.dev/notify-pending";
/// Label with the namespace of the share an outbox belongs to.
const SHARE_NAMESPACE_LABEL: &str = "ots.dev/share-namespace";
/// Key of the outbox Secret holding the pending notifications (JSON).
const OUTBOX_KEY: &str = "notifications";
/// Pending notifications per share at most; the oldest is dropped (and counted) beyond.
pub const MAX_OUTBOX: usize = 20;
/// Conflicting outbox writes retried at most.
const WRITE_ATTEMPTS: usize = 5;
/// How long the first transitions wait for the notification watches' first list.
const FIRST_LIST_WAIT: Duration = Duration::from_secs(5);
/// Reason of the Warning Event when a notification is given up.
const FAILED_REASON: &str = "NotificationFailed";
/// How often the endpoints of notification resources that are not Ready are checked again.
const RECHECK_EVERY: Duration = Duration::from_secs(10);
/// How long an entry written before its status write waits for that write's confirmation
/// before the worker checks the share's status itself (after a restart, or a write that failed
/// and was not retried), in milliseconds.
const HOLD_MS: i64 = 30_000;
/// Reason of the Warning Event on a share whose notificationRefs name a missing or suspended
/// OtsNotification.
const NOT_FOUND_REASON: &str = "NotificationNotFound";

/// Name of the outbox Secret of the share with this uid.
pub fn outbox_name(uid: &str) -> String {
    format!("ots-notify-{uid}")
}

/// Which notification resource an entry is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Target {
    /// `OtsNotification` or `ClusterOtsNotification`.
    kind: String,
    /// The OtsNotification's namespace; none for a ClusterOtsNotification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    name: String,
    uid: String,
}

/// One pending notification: everything an attempt needs but the endpoint's Secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    /// The delivery id (`webhook-id`, CloudEvents `id`).
    id: String,
    /// The event, as in `spec.events`.
    event: String,
    target: Target,
    /// The body's `Content-Type`.
    content_type: String,
    /// The rendered body (no secret: see the module's doc).
    body: String,
    /// Attempts made so far.
    attempts: u32,
    /// When the next attempt is due (Unix milliseconds).
    next_attempt_at: i64,
    /// When the entry is given up (Unix milliseconds).
    give_up_at: i64,
    /// Written before the status write that records its transition: not sent until that write
    /// is confirmed (by this process, [`Held::release`]) or, once `next_attempt_at` passed (a
    /// restart, a status write that failed for good), until the share's status shows it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    held: bool,
    /// The share's phase after the transition (to confirm a held entry from status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    phase: Option<String>,
    /// When the transition's link was shared, Unix seconds (to confirm a held entry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    shared_at: Option<i64>,
}

/// The share an outbox belongs to, for Events about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ShareRef {
    namespace: String,
    name: String,
    uid: String,
}

/// An outbox Secret's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Outbox {
    share: ShareRef,
    entries: Vec<Entry>,
}

/// Why a notification resource is (not) Ready: its condition's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadyReason {
    Ready,
    EndpointNotAllowed,
    SecretNotFound,
    KeyNotFound,
}

impl ReadyReason {
    fn as_str(self) -> &'static str {
        match self {
            ReadyReason::Ready => "Ready",
            ReadyReason::EndpointNotAllowed => "EndpointNotAllowed",
            ReadyReason::SecretNotFound => "SecretNotFound",
            ReadyReason::KeyNotFound => "KeyNotFound",
        }
    }
}

/// An endpoint that cannot be used, and why; the message names Secrets, keys, hosts and rules,
/// never a URL's path or query, nor a key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Unusable {
    reason: ReadyReason,
    message: String,
}

/// An endpoint read from its Secret.
struct Endpoint {
    url: Url,
    signer: Signer,
}

/// What a notification resource is, either kind.
#[derive(Clone)]
enum Resolved {
    Tenant(Arc<OtsNotification>),
    Platform(Arc<ClusterOtsNotification>),
}

impl Resolved {
    fn settings(&self) -> &NotificationSettings {
        match self {
            Resolved::Tenant(n) => &n.spec.settings,
            Resolved::Platform(n) => &n.spec.settings,
        }
    }

    fn target(&self) -> Target {
        match self {
            Resolved::Tenant(n) => Target {
                kind: "OtsNotification".into(),
                namespace: n.namespace(),
                name: n.name_any(),
                uid: n.uid().unwrap_or_default(),
            },
            Resolved::Platform(n) => Target {
                kind: "ClusterOtsNotification".into(),
                namespace: None,
                name: n.name_any(),
                uid: n.uid().unwrap_or_default(),
            },
        }
    }

    /// The object Events about it point to. A ClusterOtsNotification's are put in the
    /// operator's namespace (where its Secret is), not `default`: the Events API only takes
    /// an Event about a cluster-scoped object elsewhere than `default` or `kube-system` when
    /// its reference names that namespace, so the reference carries `operator_namespace`.
    fn reference(&self, operator_namespace: &str) -> ObjectReference {
        match self {
            Resolved::Tenant(n) => n.object_ref(&()),
            Resolved::Platform(n) => ObjectReference {
                namespace: Some(operator_namespace.to_owned()),
                ..n.object_ref(&())
            },
        }
    }
}

/// A transition's notifications, in the outbox but held until the status write recording the
/// transition succeeded. Dropped without [`Held::release`] (the write failed), they stay held:
/// the retried transition appends the same ids (nothing new) and releases them, or, past
/// [`HOLD_MS`], the worker sends them only if the share's status shows the transition.
#[must_use = "release the notifications once the status write succeeded"]
pub struct Held {
    notifier: Notifier,
    outbox: String,
    ids: Vec<String>,
}

impl Held {
    /// The status write recording the transition succeeded: the notifications may go now.
    pub fn release(self) {
        self.notifier
            .inner
            .confirmed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(self.ids);
        self.notifier.wake(&self.outbox);
    }
}

/// Retry schedule of undelivered notifications.
#[derive(Debug, Clone, Copy)]
pub struct RetrySchedule {
    /// Delay before the first retry.
    pub min: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl RetrySchedule {
    /// The delay before retry `attempt` (1 for the first): `min` doubling up to `max`, ±20 %.
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let doubled = self
            .min
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(30)));
        let ceiling = doubled.min(self.max);
        ceiling.mul_f64(rng.random_range(0.8..=1.2))
    }
}

/// The notification machinery: cheap to clone, shared by every reconcile and the worker.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    state_namespace: String,
    outboxes: Api<Secret>,
    http: NotificationClient,
    recorder: Recorder,
    metrics: Metrics,
    retry: RetrySchedule,
    /// One OtsNotification cache per watched namespace (all namespaces: one), so the operator
    /// needs no right beyond the namespaces it watches.
    tenants: Vec<(Option<String>, Store<OtsNotification>)>,
    platform: Store<ClusterOtsNotification>,
    writers: Mutex<Option<Writers>>,
    /// Whether the first wait for the watches' lists is over (waited once, never again).
    listed: std::sync::atomic::AtomicBool,
    /// Outboxes with a delivery task, and how to wake each.
    active: Mutex<HashMap<String, Arc<tokio::sync::Notify>>>,
    slots: Arc<tokio::sync::Semaphore>,
    /// Refusals found when sending (a redirect, a name resolving to a refused address), per
    /// notification uid with the generation they were found at: a later check of the Secret
    /// alone cannot see them, so they stay shown until a delivery succeeds or the spec changes.
    refusals: Mutex<HashMap<String, (Option<i64>, Unusable)>>,
    /// ExpiringUnread sent: (share uid, the link's sharedAt, notification uid).
    announced: Mutex<std::collections::HashSet<(String, i64, String)>>,
    /// Whether an ExpiringUnread pass is under way.
    expiring_pass: std::sync::atomic::AtomicBool,
    /// Ids of held entries whose transition's status write succeeded ([`Held::release`]).
    confirmed: Mutex<std::collections::HashSet<String>>,
    /// Missing or suspended notificationRefs already warned about: (share uid, name).
    warned_refs: Mutex<std::collections::HashSet<(String, String)>>,
    /// Ready conditions last written, per notification uid (to write only changes).
    shown: Mutex<HashMap<String, (ReadyReason, String)>>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier").finish_non_exhaustive()
    }
}

/// The caches' writers, taken by [`Notifier::run`].
type Writers = (
    Vec<reflector::store::Writer<OtsNotification>>,
    reflector::store::Writer<ClusterOtsNotification>,
);

/// The notifier could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up notifications: {0}")]
pub struct SetupError(String);

impl Notifier {
    /// A notifier for `config`, refusing the apiserver's own `refused` addresses whatever the
    /// allowed CIDRs say.
    pub fn new(
        client: Client,
        config: &NotificationConfig,
        state_namespace: &str,
        namespaces: &[String],
        metrics: Metrics,
        identity: &str,
        refused: Vec<IpAddr>,
    ) -> Result<Notifier, SetupError> {
        let tls = crate::ots::http::tls_config(Vec::new())
            .map_err(|e| SetupError(format!("TLS: {e}")))?;
        let policy = AddressPolicy::new(config.allowed_cidrs.clone(), refused);
        let http = NotificationClient::new(config.allowlist.clone(), policy, tls)
            .map_err(|e| SetupError(e.to_string()))?;
        let scopes: Vec<Option<String>> = if namespaces.is_empty() {
            vec![None]
        } else {
            namespaces.iter().cloned().map(Some).collect()
        };
        let mut tenants = Vec::new();
        let mut tenant_writers = Vec::new();
        for scope in scopes {
            let (store, writer) = reflector::store();
            tenants.push((scope, store));
            tenant_writers.push(writer);
        }
        let (platform, platform_writer) = reflector::store();
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "ots-operator".into(),
                instance: Some(identity.to_owned()),
            },
        );
        Ok(Notifier {
            inner: Arc::new(Inner {
                outboxes: Api::namespaced(client.clone(), state_namespace),
                client,
                state_namespace: state_namespace.to_owned(),
                http,
                recorder,
                metrics,
                retry: RetrySchedule {
                    min: config.retry_min,
                    max: config.retry_max,
                },
                tenants,
                platform,
                writers: Mutex::new(Some((tenant_writers, platform_writer))),
                refusals: Mutex::new(HashMap::new()),
                announced: Mutex::new(std::collections::HashSet::new()),
                expiring_pass: std::sync::atomic::AtomicBool::new(false),
                listed: std::sync::atomic::AtomicBool::new(false),
                active: Mutex::new(HashMap::new()),
                slots: Arc::new(tokio::sync::Semaphore::new(usize::from(config.concurrency))),
                shown: Mutex::new(HashMap::new()),
                warned_refs: Mutex::new(std::collections::HashSet::new()),
                confirmed: Mutex::new(std::collections::HashSet::new()),
            }),
        })
    }

    /// The apiserver's own addresses: the `kubernetes` Service in `default`, its endpoints, and
    /// the host of the client's URL when it is an address. Refused for notifications whatever
    /// the allowed CIDRs say. What cannot be read is left out (and logged).
    pub async fn apiserver_addresses(client: &Client, cluster_url: &Url) -> Vec<IpAddr> {
        let mut addresses = Vec::new();
        if let Some(url::Host::Ipv4(ip)) = cluster_url.host() {
            addresses.push(IpAddr::V4(ip));
        }
        if let Some(url::Host::Ipv6(ip)) = cluster_url.host() {
            addresses.push(IpAddr::V6(ip));
        }
        if let Some(url::Host::Domain(name)) = cluster_url.host()
            && let Ok(found) = tokio::net::lookup_host((name, 0)).await
        {
            addresses.extend(found.map(|a| a.ip()));
        }
        let services: Api<k8s_openapi::api::core::v1::Service> =
            Api::namespaced(client.clone(), "default");
        match services.get_opt("kubernetes").await {
            Ok(Some(service)) => addresses.extend(
                service
                    .spec
                    .into_iter()
                    .flat_map(|s| {
                        s.cluster_ips
                            .unwrap_or_default()
                            .into_iter()
                            .chain(s.cluster_ip)
                    })
                    .filter_map(|ip| ip.parse::<IpAddr>().ok()),
            ),
            Ok(None) => {}
            Err(e) => tracing::info!(error = %e, "cannot read the kubernetes Service's addresses"),
        }
        let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
        match endpoints.get_opt("kubernetes").await {
            Ok(Some(found)) => addresses.extend(
                found
                    .subsets
                    .into_iter()
                    .flatten()
                    .flat_map(|s| s.addresses.unwrap_or_default())
                    .filter_map(|a| a.ip.parse::<IpAddr>().ok()),
            ),
            Ok(None) => {}
            Err(e) => tracing::info!(error = %e, "cannot read the kubernetes endpoints"),
        }
        addresses.sort();
        addresses.dedup();
        addresses
    }

    /// When some notification applies to the share, appends `transition`'s notifications to
    /// the share's outbox and wakes the worker. For a transition no status write records (a
    /// deleted share's last burn). Never fails the caller: a notification problem never changes
    /// a share's phase.
    pub async fn announce(&self, obj: &OneTimeShare, transition: &Transition) {
        let event = Event::of(transition.reason, transition.phase);
        let notification = Notification::from(transition);
        let applying = self.applying(obj, event).await;
        if applying.is_empty() {
            return;
        }
        self.enqueue(&notification, event, &applying, false).await;
    }

    /// Like [`Notifier::announce`], but for a transition a status write is about to record:
    /// called *before* that write, so a crash between the two loses nothing. The entries are
    /// held until [`Held::release`] (after the write succeeded); a transition whose write failed
    /// and is retried derives the same ids, so its second append adds nothing. No notification
    /// applies: `None`, and no API call was made (unless a selector needed the share's labels).
    pub async fn hold(&self, obj: &OneTimeShare, transition: &Transition) -> Option<Held> {
        let event = Event::of(transition.reason, transition.phase);
        let notification = Notification::from(transition);
        let applying = self.applying(obj, event).await;
        if applying.is_empty() {
            return None;
        }
        let ids = self.enqueue(&notification, event, &applying, true).await;
        (!ids.is_empty()).then(|| Held {
            notifier: self.clone(),
            outbox: outbox_name(&notification.uid),
            ids,
        })
    }

    /// Appends `event`'s notification to each of `applying` to the share's outbox (`held`: not
    /// to be sent before its release) and, unless held, wakes the worker; the ids appended.
    async fn enqueue(
        &self,
        notification: &Notification,
        event: Event,
        applying: &[Resolved],
        held: bool,
    ) -> Vec<String> {
        let mut notification = notification.clone();
        notification.event = event;
        let now = Timestamp::now().as_millisecond();
        let mut entries = Vec::new();
        for resolved in applying {
            let target = resolved.target();
            let id = DeliveryId::derive(
                &notification.uid,
                notification.shared_at,
                event,
                &target.uid,
            );
            let format = Format::from(resolved.settings().format);
            let body = match notification.body(format, &id) {
                Ok(body) => String::from_utf8_lossy(&body).into_owned(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot encode a notification");
                    continue;
                }
            };
            let retry_for =
                i64::try_from(resolved.settings().retry_for().as_millis()).unwrap_or(i64::MAX);
            let hold = if held { HOLD_MS } else { 0 };
            entries.push(Entry {
                id: id.as_str().to_owned(),
                event: event.as_str().to_owned(),
                target,
                content_type: format.content_type().to_owned(),
                body,
                attempts: 0,
                next_attempt_at: now.saturating_add(hold),
                // retryFor counts from the transition, a hold included.
                give_up_at: now.saturating_add(retry_for),
                held,
                phase: Some(notification.phase.as_str().to_owned()),
                shared_at: notification.shared_at.map(|t| t.as_second()),
            });
        }
        let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
        let share = ShareRef {
            namespace: notification.namespace.clone(),
            name: notification.name.clone(),
            uid: notification.uid.clone(),
        };
        match self.append(&share, entries).await {
            Ok(dropped) => {
                for _ in 0..dropped {
                    self.inner.metrics.notification(DeliveryOutcome::Dropped);
                }
                if !held {
                    self.wake(&outbox_name(&share.uid));
                }
                ids
            }
            Err(e) => {
                tracing::warn!(
                    namespace = %share.namespace,
                    name = %share.name,
                    error = %e,
                    "could not record the share's notifications; they are not sent"
                );
                Vec::new()
            }
        }
    }

    /// Whether the share's status shows the transition of a held entry: its link (sharedAt)
    /// with the entry's phase, a later phase of that link for a Shared entry, or that link among
    /// the ended ones. `None`: the share could not be read (try again later).
    async fn status_shows(&self, share: &ShareRef, entry: &Entry) -> Option<bool> {
        let found = Api::<OneTimeShare>::namespaced(self.inner.client.clone(), &share.namespace)
            .get_opt(&share.name)
            .await
            .inspect_err(
                |e| tracing::info!(error = %e, "cannot read a share to confirm its notification"),
            )
            .ok()?;
        let Some(obj) = found.filter(|o| o.uid().as_deref() == Some(share.uid.as_str())) else {
            // The share is gone: whether its last status write happened cannot be told; sent
            // (at least once, as for any pending notification of a deleted share).
            return Some(true);
        };
        let Some(status) = obj.status else {
            return Some(false);
        };
        let link = status.shared_at.as_ref().map(|t| t.0.as_second());
        let same_link = link == entry.shared_at;
        let phase = Some(status.phase.as_str()) == entry.phase.as_deref();
        let shared_event = entry.event == Event::Shared.as_str();
        let ended = status
            .history
            .iter()
            .any(|past| Some(past.shared_at.0.as_second()) == entry.shared_at);
        Some((same_link && (phase || shared_event)) || (entry.shared_at.is_some() && ended))
    }

    /// The notification resources that want `event` of `obj`: its namespace's OtsNotifications
    /// whose shareSelector selects it, and the ClusterOtsNotifications whose namespaceSelector
    /// selects its namespace and whose shareSelector selects it. Suspended ones do not apply.
    ///
    /// The share's `spec.notifications` narrows the namespace's: `optOut` drops them all (and
    /// the ClusterOtsNotifications with `honorOptOut`), `notificationRefs` keeps exactly the
    /// named ones, whatever their shareSelector says.
    async fn applying(&self, obj: &OneTimeShare, event: Event) -> Vec<Resolved> {
        self.first_list().await;
        self.warn_missing_refs(obj).await;
        let candidates = self.candidates(obj, event);
        self.selected(obj, candidates).await
    }

    /// The unsuspended notification resources that could apply to `obj` for `event`, after its
    /// `spec.notifications` but before any selector is looked at (from the caches alone, no API
    /// call).
    fn candidates(&self, obj: &OneTimeShare, event: Event) -> Vec<Resolved> {
        let namespace = obj.namespace().unwrap_or_default();
        let chosen = obj.spec.notifications.as_deref();
        let wanted = NotificationEvent::from(event);
        let tenants = self
            .inner
            .tenants
            .iter()
            .flat_map(|(_, store)| store.state())
            .filter(|n| tenant_applies(&namespace, chosen, n, wanted))
            .map(Resolved::Tenant);
        let platform = self
            .inner
            .platform
            .state()
            .into_iter()
            .filter(|n| platform_applies(chosen, n, wanted))
            .map(Resolved::Platform);
        tenants.chain(platform).collect()
    }

    /// One Warning Event NotificationNotFound on a share per named OtsNotification that does
    /// not exist or is suspended (once per share, name and process); the share is otherwise
    /// untouched.
    async fn warn_missing_refs(&self, obj: &OneTimeShare) {
        let Some(chosen) = obj.spec.notifications.as_deref() else {
            return;
        };
        if chosen.notification_refs.is_empty() {
            return;
        }
        let namespace = obj.namespace().unwrap_or_default();
        let uid = obj.uid().unwrap_or_default();
        let mut missing = Vec::new();
        for reference in &chosen.notification_refs {
            let found = self.inner.tenants.iter().find_map(|(_, store)| {
                store.get(&ObjectRef::new(&reference.name).within(&namespace))
            });
            let why = match found {
                None => "does not exist",
                Some(n) if n.spec.settings.suspend => "is suspended",
                Some(_) => continue,
            };
            let first = self
                .inner
                .warned_refs
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert((uid.clone(), reference.name.clone()));
            if first {
                missing.push(format!(
                    "spec.notifications.notificationRefs names OtsNotification {:?}, which {why}: no notification is sent to it for this share",
                    reference.name
                ));
            }
        }
        for note in missing {
            let event = KubeEvent {
                type_: EventType::Warning,
                reason: NOT_FOUND_REASON.to_owned(),
                note: Some(note),
                action: "Notify".to_owned(),
                secondary: None,
            };
            if let Err(e) = self
                .inner
                .recorder
                .publish(&event, &obj.object_ref(&()))
                .await
            {
                tracing::warn!(error = %e, "could not publish event");
            }
        }
    }

    /// The candidates whose selectors select `obj`. The watch cache keeps no labels, so the
    /// share's labels are read (one metadata get) only when some candidate has a shareSelector,
    /// and its namespace's only when some has a namespaceSelector.
    async fn selected(&self, obj: &OneTimeShare, candidates: Vec<Resolved>) -> Vec<Resolved> {
        if candidates.is_empty() {
            return candidates;
        }
        let namespace = obj.namespace().unwrap_or_default();
        // OtsNotifications the share names apply whatever their shareSelector says.
        let named = obj
            .spec
            .notifications
            .as_ref()
            .is_some_and(|n| !n.notification_refs.is_empty());
        let selector = |c: &Resolved| match c {
            Resolved::Tenant(_) if named => None,
            _ => c.settings().share_selector.clone(),
        };
        let share_labels = if candidates.iter().any(|c| selector(c).is_some()) {
            Api::<OneTimeShare>::namespaced(self.inner.client.clone(), &namespace)
                .get_metadata_opt(&obj.name_any())
                .await
                .inspect_err(|e| tracing::info!(error = %e, "cannot read a share's labels"))
                .ok()
                .flatten()
                .and_then(|meta| meta.metadata.labels)
                .unwrap_or_default()
        } else {
            BTreeMap::new()
        };
        let namespace_labels = if candidates.iter().any(|c| match c {
            Resolved::Platform(n) => n.spec.namespace_selector.is_some(),
            Resolved::Tenant(_) => false,
        }) {
            Api::<Namespace>::all(self.inner.client.clone())
                .get_opt(&namespace)
                .await
                .inspect_err(|e| tracing::info!(error = %e, "cannot read a namespace's labels"))
                .ok()
                .flatten()
                .and_then(|n| n.metadata.labels)
                .unwrap_or_default()
        } else {
            BTreeMap::new()
        };
        candidates
            .into_iter()
            .filter(|c| {
                let by_share = selector(c).is_none_or(|s| selects(&s, &share_labels));
                let by_namespace = match c {
                    Resolved::Platform(n) => n
                        .spec
                        .namespace_selector
                        .as_ref()
                        .is_none_or(|s| selects(s, &namespace_labels)),
                    Resolved::Tenant(_) => true,
                };
                by_share && by_namespace
            })
            .collect()
    }

    /// Looks for links due an ExpiringUnread among `shares` (the watch cache's live links), on
    /// a task of its own; a pass still running makes this one a no-op.
    pub fn check_expiring_unread(&self, shares: Vec<std::sync::Arc<super::cached::CachedShare>>) {
        use std::sync::atomic::Ordering;
        if shares.is_empty() || self.inner.expiring_pass.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            for share in shares.iter().filter_map(|cached| cached.share().ok()) {
                this.expiring_unread(&share).await;
            }
            this.inner.expiring_pass.store(false, Ordering::Release);
        });
    }

    /// Whether any notification resource wants ExpiringUnread (from the caches alone).
    pub fn wants_expiring_unread(&self) -> bool {
        let wanted = |settings: &NotificationSettings| {
            !settings.suspend && settings.wants(NotificationEvent::ExpiringUnread)
        };
        self.inner
            .tenants
            .iter()
            .any(|(_, store)| store.state().iter().any(|n| wanted(&n.spec.settings)))
            || self
                .inner
                .platform
                .state()
                .iter()
                .any(|n| wanted(&n.spec.settings))
    }

    /// ExpiringUnread of a live, unopened link (phase Shared) that is within a notification's
    /// lead time of its expiry: once per link and notification resource in this process (after
    /// a restart it may be sent again, with the same id, which receivers dedupe).
    pub async fn expiring_unread(&self, obj: &OneTimeShare) {
        let Some(status) = obj.status.as_ref() else {
            return;
        };
        let (Some(shared_at), Some(expires_at)) = (&status.shared_at, &status.expires_at) else {
            return;
        };
        if status.phase != crate::resource::Phase::Shared {
            return;
        }
        let now = Timestamp::now();
        let left = expires_at.0.as_second() - now.as_second();
        if left <= 0 {
            return;
        }
        let lifetime = Duration::from_secs(
            u64::try_from(expires_at.0.as_second() - shared_at.0.as_second()).unwrap_or(0),
        );
        let uid = obj.uid().unwrap_or_default();
        let link = shared_at.0.as_second();
        let due: Vec<Resolved> = {
            let mut announced = self
                .inner
                .announced
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            // Links that ended long ago are forgotten (the longest lead time is 7 days).
            let horizon = now.as_second() - 8 * 86_400;
            announced.retain(|(_, at, _)| *at > horizon);
            self.candidates(obj, Event::ExpiringUnread)
                .into_iter()
                .filter(|c| {
                    let lead = c.settings().expiring_unread_lead_time(lifetime);
                    u64::try_from(left).unwrap_or(0) <= lead.as_secs()
                        && announced.insert((uid.clone(), link, c.target().uid))
                })
                .collect()
        };
        let due = self.selected(obj, due).await;
        if due.is_empty() {
            return;
        }
        let transition = Transition::of(obj, status, status, crate::error::Reason::Shared, now);
        let notification = Notification::from(&transition);
        self.enqueue(&notification, Event::ExpiringUnread, &due, false)
            .await;
    }

    /// Waits, once, for the notification watches' first lists (at most a few seconds, so a
    /// cluster without the CRDs is not held up), so the first transitions after a start see
    /// the notifications that exist.
    async fn first_list(&self) {
        use std::sync::atomic::Ordering;
        if self.inner.listed.load(Ordering::Relaxed) {
            return;
        }
        let both = async {
            for (_, store) in &self.inner.tenants {
                let _ = store.wait_until_ready().await;
            }
            let _ = self.inner.platform.wait_until_ready().await;
        };
        let _ = tokio::time::timeout(FIRST_LIST_WAIT, both).await;
        self.inner.listed.store(true, Ordering::Relaxed);
    }

    /// Appends `entries` to the share's outbox (creating it), dropping the oldest beyond
    /// [`MAX_OUTBOX`]; how many were dropped.
    async fn append(&self, share: &ShareRef, entries: Vec<Entry>) -> Result<usize, kube::Error> {
        let name = outbox_name(&share.uid);
        let mut last_error = None;
        for _ in 0..WRITE_ATTEMPTS {
            let current = self.inner.outboxes.get_opt(&name).await?;
            let (mut outbox, version) = match &current {
                Some(secret) => (
                    read_outbox(secret).unwrap_or_else(|| Outbox {
                        share: share.clone(),
                        entries: Vec::new(),
                    }),
                    secret.resource_version(),
                ),
                None => (
                    Outbox {
                        share: share.clone(),
                        entries: Vec::new(),
                    },
                    None,
                ),
            };
            let before = outbox.entries.len();
            for entry in &entries {
                // The same id is the same notification (a reconcile that ran twice, a
                // transition retried after its status write failed).
                if !outbox.entries.iter().any(|e| e.id == entry.id) {
                    outbox.entries.push(entry.clone());
                }
            }
            if version.is_some() && outbox.entries.len() == before {
                return Ok(0);
            }
            let dropped = outbox.entries.len().saturating_sub(MAX_OUTBOX);
            outbox.entries.drain(..dropped);
            let result = match version {
                Some(version) => self.replace(&name, &outbox, Some(version)).await,
                None => self.create(&name, &outbox).await,
            };
            match result {
                Ok(()) => return Ok(dropped),
                Err(kube::Error::Api(e)) if e.code == 409 => last_error = Some(kube::Error::Api(e)),
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| kube::Error::Service("the outbox kept changing".into())))
    }

    fn outbox_secret(&self, name: &str, outbox: &Outbox, version: Option<String>) -> Secret {
        let json = serde_json::to_vec(outbox).unwrap_or_default();
        Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(self.inner.state_namespace.clone()),
                resource_version: version,
                labels: Some(BTreeMap::from([
                    (PENDING_LABEL.to_owned(), "true".to_owned()),
                    (
                        SHARE_NAMESPACE_LABEL.to_owned(),
                        outbox.share.namespace.clone(),
                    ),
                    (MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned()),
                    (
                        "app.kubernetes.io/managed-by".to_owned(),
                        "ots-operator".to_owned(),
                    ),
                ])),
                annotations: Some(BTreeMap::from([(
                    "ots.dev/share".to_owned(),
                    format!("{}/{}", outbox.share.namespace, outbox.share.name),
                )])),
                ..ObjectMeta::default()
            },
            type_: Some("ots.dev/notification-outbox".to_owned()),
            data: Some(BTreeMap::from([(OUTBOX_KEY.to_owned(), ByteString(json))])),
            ..Secret::default()
        }
    }

    async fn create(&self, name: &str, outbox: &Outbox) -> Result<(), kube::Error> {
        let secret = self.outbox_secret(name, outbox, None);
        // Created meanwhile: 409 AlreadyExists, retried as a conflict.
        self.inner
            .outboxes
            .create(&PostParams::default(), &secret)
            .await
            .map(|_| ())
    }

    async fn replace(
        &self,
        name: &str,
        outbox: &Outbox,
        version: Option<String>,
    ) -> Result<(), kube::Error> {
        let secret = self.outbox_secret(name, outbox, version);
        self.inner
            .outboxes
            .replace(name, &PostParams::default(), &secret)
            .await
            .map(|_| ())
    }

    fn wake(&self, name: &str) {
        let existing = self
            .inner
            .active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned();
        match existing {
            Some(notify) => notify.notify_one(),
            None => self.spawn_outbox(name.to_owned()),
        }
    }

    /// Starts the delivery task of an outbox, unless one runs.
    fn spawn_outbox(&self, name: String) {
        let notify = Arc::new(tokio::sync::Notify::new());
        {
            let mut active = self
                .inner
                .active
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if active.contains_key(&name) {
                return;
            }
            active.insert(name.clone(), notify.clone());
        }
        let this = self.clone();
        tokio::spawn(async move {
            this.deliver_outbox(&name, notify).await;
            this.inner
                .active
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&name);
        });
    }

    /// Runs the notification watches (they keep retrying while the CRDs are missing), resumes
    /// every pending outbox, and keeps notification resources' Ready conditions current, until
    /// `shutdown`.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        let writers = self
            .inner
            .writers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some((tenant_writers, platform_writer)) = writers else {
            return;
        };
        let client = self.inner.client.clone();
        let tenants = self
            .inner
            .tenants
            .iter()
            .zip(tenant_writers)
            .map(|((scope, _), writer)| {
                let api: Api<OtsNotification> = match scope {
                    Some(namespace) => Api::namespaced(client.clone(), namespace),
                    None => Api::all(client.clone()),
                };
                watcher(api, watcher::Config::default())
                    .default_backoff()
                    .reflect(writer)
                    .applied_objects()
                    .for_each(|object| async move {
                        match object {
                            Ok(n) => {
                                let resolved = Resolved::Tenant(Arc::new(n));
                                let _ = self.endpoint(&resolved).await;
                            }
                            Err(e) => tracing::debug!(error = %e, "OtsNotification watch"),
                        }
                    })
            });
        let tenants = futures::future::join_all(tenants);
        let platform = watcher(
            Api::<ClusterOtsNotification>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(platform_writer)
        .applied_objects()
        .for_each(|object| async move {
            match object {
                Ok(n) => {
                    let resolved = Resolved::Platform(Arc::new(n));
                    let _ = self.endpoint(&resolved).await;
                }
                Err(e) => tracing::debug!(error = %e, "ClusterOtsNotification watch"),
            }
        });
        let resume = async {
            self.first_list().await;
            let pending = ListParams::default().labels(&format!("{PENDING_LABEL}=true"));
            match self.inner.outboxes.list_metadata(&pending).await {
                Ok(list) => {
                    for meta in list.items {
                        self.spawn_outbox(meta.name_any());
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot list pending notifications"),
            }
        };
        let recheck = async {
            let mut every = tokio::time::interval(RECHECK_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                self.recheck_unready().await;
            }
        };
        tokio::select! {
            _ = futures::future::join4(tenants, platform, resume, recheck) => {}
            _ = shutdown => {}
        }
    }

    /// Checks again the endpoint of every notification resource whose Ready condition last
    /// said it cannot send (a missing Secret or key, an address off the list): the operator
    /// does not watch Secrets (it never lists them), so a Secret created or fixed later is
    /// seen here, within [`RECHECK_EVERY`], without a change to the notification resource.
    /// One Secret read per such resource; a Ready one costs nothing.
    async fn recheck_unready(&self) {
        let unready = |uid: Option<String>| {
            let shown = self
                .inner
                .shown
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            uid.and_then(|uid| shown.get(&uid).map(|(reason, _)| *reason))
                .is_some_and(|reason| reason != ReadyReason::Ready)
        };
        let mut due: Vec<Resolved> = self
            .inner
            .tenants
            .iter()
            .flat_map(|(_, store)| store.state())
            .filter(|n| unready(n.uid()))
            .map(Resolved::Tenant)
            .collect();
        due.extend(
            self.inner
                .platform
                .state()
                .into_iter()
                .filter(|n| unready(n.uid()))
                .map(Resolved::Platform),
        );
        for resolved in due {
            let _ = self.endpoint(&resolved).await;
        }
    }

    /// Delivers an outbox's due entries until it is empty, sleeping until the next is due.
    async fn deliver_outbox(&self, name: &str, wake: Arc<tokio::sync::Notify>) {
        loop {
            let secret = match self.inner.outboxes.get_opt(name).await {
                Ok(Some(secret)) => secret,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read a notification outbox");
                    tokio::time::sleep(self.inner.retry.max.min(Duration::from_secs(30))).await;
                    continue;
                }
            };
            let Some(outbox) = read_outbox(&secret) else {
                tracing::warn!(
                    outbox = name,
                    "an unreadable notification outbox is removed"
                );
                let _ = self.delete(name, secret.resource_version()).await;
                return;
            };
            let now = Timestamp::now().as_millisecond();
            let released: std::collections::HashSet<String> = {
                let mut confirmed = self
                    .inner
                    .confirmed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                outbox
                    .entries
                    .iter()
                    .filter(|e| e.held && confirmed.remove(&e.id))
                    .map(|e| e.id.clone())
                    .collect()
            };
            let due: Vec<Entry> = outbox
                .entries
                .iter()
                .filter(|e| e.next_attempt_at <= now || released.contains(&e.id))
                .cloned()
                .collect();
            // Attempts of one outbox run one after another; outboxes run side by side, each
            // attempt holding one of the worker's slots.
            let mut done: HashMap<String, Option<Entry>> = HashMap::new();
            for mut entry in due {
                if entry.held && !released.contains(&entry.id) {
                    // Held past its time: sent only if the share's status shows it.
                    match self.status_shows(&outbox.share, &entry).await {
                        Some(true) => {}
                        Some(false) => {
                            tracing::info!(
                                namespace = %outbox.share.namespace,
                                name = %outbox.share.name,
                                event = %entry.event,
                                id = %entry.id,
                                "a notification whose transition status never recorded is dropped"
                            );
                            done.insert(entry.id.clone(), None);
                            continue;
                        }
                        None => {
                            entry.next_attempt_at = now.saturating_add(HOLD_MS);
                            done.insert(entry.id.clone(), Some(entry));
                            continue;
                        }
                    }
                }
                entry.held = false;
                let next = self.attempt(&outbox.share, entry.clone()).await;
                done.insert(entry.id.clone(), next);
            }
            match self.settle(name, &done).await {
                Ok(Some(next_due)) => {
                    let wait = Duration::from_millis(
                        u64::try_from(next_due - Timestamp::now().as_millisecond()).unwrap_or(0),
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = wake.notified() => {}
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot update a notification outbox");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Writes the outcome of attempts into the outbox (`None`: the entry is done), deleting it
    /// once empty; when the next remaining entry is due.
    async fn settle(
        &self,
        name: &str,
        done: &HashMap<String, Option<Entry>>,
    ) -> Result<Option<i64>, kube::Error> {
        for _ in 0..WRITE_ATTEMPTS {
            let Some(secret) = self.inner.outboxes.get_opt(name).await? else {
                return Ok(None);
            };
            let Some(mut outbox) = read_outbox(&secret) else {
                return Ok(None);
            };
            outbox.entries = outbox
                .entries
                .into_iter()
                .filter_map(|e| match done.get(&e.id) {
                    Some(next) => next.clone(),
                    None => Some(e),
                })
                .collect();
            let result = if outbox.entries.is_empty() {
                self.delete(name, secret.resource_version()).await
            } else if done.is_empty() {
                Ok(())
            } else {
                self.replace(name, &outbox, secret.resource_version()).await
            };
            match result {
                Ok(()) => return Ok(outbox.entries.iter().map(|e| e.next_attempt_at).min()),
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                Err(e) => return Err(e),
            }
        }
        Err(kube::Error::Service("the outbox kept changing".into()))
    }

    async fn delete(&self, name: &str, version: Option<String>) -> Result<(), kube::Error> {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                resource_version: version,
                uid: None,
            }),
            ..DeleteParams::default()
        };
        match self.inner.outboxes.delete(name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// One attempt at an entry: `None` when it is done (delivered, refused, given up, or its
    /// notification resource is gone), else the entry with its next attempt scheduled.
    async fn attempt(&self, share: &ShareRef, mut entry: Entry) -> Option<Entry> {
        let Some(resolved) = self.resolve(&entry.target) else {
            // The notification resource was deleted (or replaced): nobody wants it any more.
            return None;
        };
        let endpoint = match self.endpoint(&resolved).await {
            Ok(endpoint) => endpoint,
            Err(unusable) if unusable.reason == ReadyReason::EndpointNotAllowed => {
                self.finish(&resolved, DeliveryOutcome::Refused).await;
                return None;
            }
            // A missing Secret or key may be fixed: retried like an unavailable endpoint.
            Err(_) => return self.retry_later(share, &resolved, entry, None).await,
        };
        let posted = {
            let _slot = self.inner.slots.acquire().await.ok()?;
            let headers = endpoint
                .signer
                .sign(&entry.id, Timestamp::now(), entry.body.as_bytes());
            self.inner
                .http
                .post(
                    &endpoint.url,
                    &entry.content_type,
                    &headers.pairs(),
                    entry.body.clone().into_bytes(),
                )
                .await
        };
        entry.attempts = entry.attempts.saturating_add(1);
        match posted {
            Ok(_) => {
                tracing::info!(
                    namespace = %share.namespace,
                    name = %share.name,
                    event = %entry.event,
                    notification = %entry.target.name,
                    id = %entry.id,
                    attempts = entry.attempts,
                    "notification delivered"
                );
                self.finish(&resolved, DeliveryOutcome::Delivered).await;
                None
            }
            Err(error) if error.is_refusal() => {
                let refusal = Unusable {
                    reason: ReadyReason::EndpointNotAllowed,
                    message: error.to_string(),
                };
                let generation = match &resolved {
                    Resolved::Tenant(n) => n.metadata.generation,
                    Resolved::Platform(n) => n.metadata.generation,
                };
                self.inner
                    .refusals
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(entry.target.uid.clone(), (generation, refusal.clone()));
                self.show_ready(&resolved, Err(refusal)).await;
                tracing::warn!(
                    namespace = %share.namespace,
                    name = %share.name,
                    notification = %entry.target.name,
                    error = %error,
                    "notification refused"
                );
                self.finish(&resolved, DeliveryOutcome::Refused).await;
                None
            }
            Err(error) => {
                tracing::info!(
                    namespace = %share.namespace,
                    name = %share.name,
                    notification = %entry.target.name,
                    id = %entry.id,
                    attempts = entry.attempts,
                    error = %error,
                    "notification not delivered; retrying"
                );
                let retry_after = match &error {
                    EndpointError::Status { retry_after, .. } => *retry_after,
                    _ => None,
                };
                self.retry_later(share, &resolved, entry, retry_after).await
            }
        }
    }

    /// Schedules the entry's next attempt, or gives it up once its `retryFor` has passed.
    async fn retry_later(
        &self,
        share: &ShareRef,
        resolved: &Resolved,
        mut entry: Entry,
        retry_after: Option<Duration>,
    ) -> Option<Entry> {
        let now = Timestamp::now().as_millisecond();
        if now >= entry.give_up_at {
            self.give_up(share, resolved, &entry).await;
            return None;
        }
        let backoff = self
            .inner
            .retry
            .delay(entry.attempts.max(1), &mut rand::rng());
        let wait = retry_after.map_or(backoff, |asked| asked.max(backoff));
        let wait = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
        // The last attempt is made when retryFor ends, not skipped.
        entry.next_attempt_at = now.saturating_add(wait).min(entry.give_up_at);
        Some(entry)
    }

    async fn give_up(&self, share: &ShareRef, resolved: &Resolved, entry: &Entry) {
        tracing::warn!(
            namespace = %share.namespace,
            name = %share.name,
            event = %entry.event,
            notification = %entry.target.name,
            id = %entry.id,
            attempts = entry.attempts,
            "notification given up after retryFor"
        );
        let note = format!(
            "the {} notification {} ({} {}) was not delivered after {} attempts; given up",
            entry.event, entry.id, entry.target.kind, entry.target.name, entry.attempts
        );
        let share_ref = ObjectReference {
            api_version: Some(OneTimeShare::api_version(&()).into_owned()),
            kind: Some(OneTimeShare::kind(&()).into_owned()),
            namespace: Some(share.namespace.clone()),
            name: Some(share.name.clone()),
            uid: Some(share.uid.clone()),
            ..ObjectReference::default()
        };
        for reference in [share_ref, resolved.reference(&self.inner.state_namespace)] {
            let event = KubeEvent {
                type_: EventType::Warning,
                reason: FAILED_REASON.to_owned(),
                note: Some(note.clone()),
                action: "Notify".to_owned(),
                secondary: None,
            };
            if let Err(e) = self.inner.recorder.publish(&event, &reference).await {
                tracing::warn!(error = %e, "could not publish event");
            }
        }
        self.finish(resolved, DeliveryOutcome::Failed).await;
    }

    /// Counts an outcome and shows it as the resource's `lastDelivery`.
    async fn finish(&self, resolved: &Resolved, outcome: DeliveryOutcome) {
        self.inner.metrics.notification(outcome);
        let status = serde_json::json!({
            "status": {"lastDelivery": {"at": Time(Timestamp::now()), "outcome": outcome}}
        });
        self.patch_status(resolved, &status).await;
        if outcome == DeliveryOutcome::Delivered {
            self.inner
                .refusals
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&resolved.target().uid);
            self.show_ready(resolved, Ok(())).await;
        }
    }

    async fn patch_status(&self, resolved: &Resolved, status: &serde_json::Value) {
        let params = PatchParams::default();
        let result = match resolved {
            Resolved::Tenant(n) => Api::<OtsNotification>::namespaced(
                self.inner.client.clone(),
                &n.namespace().unwrap_or_default(),
            )
            .patch_status(&n.name_any(), &params, &Patch::Merge(status))
            .await
            .map(|_| ()),
            Resolved::Platform(n) => Api::<ClusterOtsNotification>::all(self.inner.client.clone())
                .patch_status(&n.name_any(), &params, &Patch::Merge(status))
                .await
                .map(|_| ()),
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "could not write a notification resource's status");
        }
    }

    /// The notification resource an entry is for, if it still exists with the same uid.
    fn resolve(&self, target: &Target) -> Option<Resolved> {
        let found = match &target.namespace {
            Some(namespace) => self
                .inner
                .tenants
                .iter()
                .find_map(|(_, store)| store.get(&ObjectRef::new(&target.name).within(namespace)))
                .map(Resolved::Tenant),
            None => self
                .inner
                .platform
                .get(&ObjectRef::new(&target.name))
                .map(Resolved::Platform),
        }?;
        (found.target().uid == target.uid).then_some(found)
    }

    /// Reads a notification resource's endpoint from its Secret and checks it against the
    /// allowlist and address rules (IP literals; names are checked when resolved), showing the
    /// outcome as its Ready condition.
    async fn endpoint(&self, resolved: &Resolved) -> Result<Endpoint, Unusable> {
        let found = self.read_endpoint(resolved).await;
        self.show_ready(resolved, found.as_ref().map(|_| ()).map_err(Clone::clone))
            .await;
        found
    }

    async fn read_endpoint(&self, resolved: &Resolved) -> Result<Endpoint, Unusable> {
        let secret_name = &resolved.settings().endpoint_secret_ref.name;
        let namespace = match resolved {
            Resolved::Tenant(n) => n.namespace().unwrap_or_default(),
            Resolved::Platform(_) => self.inner.state_namespace.clone(),
        };
        let secrets: Api<Secret> = Api::namespaced(self.inner.client.clone(), &namespace);
        let secret = match secrets.get_opt(secret_name).await {
            Ok(Some(secret)) => secret,
            Ok(None) => {
                return Err(Unusable {
                    reason: ReadyReason::SecretNotFound,
                    message: format!("Secret {namespace}/{secret_name} does not exist"),
                });
            }
            Err(e) => {
                return Err(Unusable {
                    reason: ReadyReason::SecretNotFound,
                    message: format!("cannot read Secret {namespace}/{secret_name}: {e}"),
                });
            }
        };
        let data = secret.data.unwrap_or_default();
        let text = |key: &str| {
            data.get(key)
                .and_then(|v| String::from_utf8(v.0.clone()).ok())
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        };
        let missing = |key: &str| Unusable {
            reason: ReadyReason::KeyNotFound,
            message: format!("Secret {namespace}/{secret_name} has no key {key:?}"),
        };
        let address = text(ADDRESS_KEY).ok_or_else(|| missing(ADDRESS_KEY))?;
        let keys = text(SIGNING_KEY_KEY).ok_or_else(|| missing(SIGNING_KEY_KEY))?;
        let mut parsed = keys.split_whitespace().map(SigningKey::parse);
        let bad_key = || Unusable {
            reason: ReadyReason::KeyNotFound,
            message: format!(
                "Secret {namespace}/{secret_name}: key {SIGNING_KEY_KEY:?} is not a whsec_ signing key (or two, space-separated)"
            ),
        };
        let current = parsed.next().ok_or_else(bad_key)?.map_err(|_| bad_key())?;
        let previous = parsed.next().transpose().map_err(|_| bad_key())?;
        let url = Url::parse(&address).map_err(|_| Unusable {
            reason: ReadyReason::EndpointNotAllowed,
            message: format!("Secret {namespace}/{secret_name}: key {ADDRESS_KEY:?} is not a URL"),
        })?;
        self.inner.http.check(&url).map_err(|e| Unusable {
            reason: ReadyReason::EndpointNotAllowed,
            message: e.to_string(),
        })?;
        Ok(Endpoint {
            url,
            signer: Signer::new(current, previous),
        })
    }

    /// Writes a notification resource's Ready condition when what it shows changes.
    async fn show_ready(&self, resolved: &Resolved, found: Result<(), Unusable>) {
        let target = resolved.target();
        let found = match found {
            Ok(()) => {
                let generation = match resolved {
                    Resolved::Tenant(n) => n.metadata.generation,
                    Resolved::Platform(n) => n.metadata.generation,
                };
                let refusals = self
                    .inner
                    .refusals
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                match refusals.get(&target.uid) {
                    Some((at, refusal)) if *at == generation => Err(refusal.clone()),
                    _ => Ok(()),
                }
            }
            refused => refused,
        };
        let (reason, message) = match found {
            Ok(()) => (ReadyReason::Ready, "notifications can be sent".to_owned()),
            Err(unusable) => (unusable.reason, unusable.message),
        };
        let (generation, conditions) = match resolved {
            Resolved::Tenant(n) => (
                n.metadata.generation,
                n.status
                    .as_ref()
                    .map(|s| s.conditions.clone())
                    .unwrap_or_default(),
            ),
            Resolved::Platform(n) => (
                n.metadata.generation,
                n.status
                    .as_ref()
                    .map(|s| s.conditions.clone())
                    .unwrap_or_default(),
            ),
        };
        {
            let mut shown = self
                .inner
                .shown
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let current = (reason, message.clone());
            if shown.get(&target.uid) == Some(&current) {
                return;
            }
            shown.insert(target.uid.clone(), current);
        }
        let status = if reason == ReadyReason::Ready {
            "True"
        } else {
            "False"
        };
        let unchanged = conditions.iter().any(|c| {
            c.type_ == "Ready"
                && c.status == status
                && c.reason == reason.as_str()
                && c.message == message
                && c.observed_generation == generation
        });
        if unchanged {
            return;
        }
        if reason != ReadyReason::Ready {
            tracing::info!(
                kind = %target.kind,
                name = %target.name,
                reason = reason.as_str(),
                message = %message,
                "notification endpoint not usable"
            );
            // One Warning per change of what Ready shows (the recorder counts repeats).
            let event = KubeEvent {
                type_: EventType::Warning,
                reason: reason.as_str().to_owned(),
                note: Some(message.clone()),
                action: "Check".to_owned(),
                secondary: None,
            };
            if let Err(e) = self
                .inner
                .recorder
                .publish(&event, &resolved.reference(&self.inner.state_namespace))
                .await
            {
                tracing::warn!(error = %e, "could not publish event");
            }
        }
        let condition = Condition {
            type_: "Ready".to_owned(),
            status: status.to_owned(),
            reason: reason.as_str().to_owned(),
            message,
            last_transition_time: Time(Timestamp::now()),
            observed_generation: generation,
        };
        let patch = serde_json::json!({
            "status": {"observedGeneration": generation, "conditions": [condition]}
        });
        self.patch_status(resolved, &patch).await;
    }
}

/// Whether the OtsNotification `n` may tell about `wanted` of a share of `namespace` that chose
/// `chosen` (its `spec.notifications`), before its shareSelector is looked at: of the share's
/// namespace, not suspended, wanting the event, and not opted out of, or named when the share
/// names some.
fn tenant_applies(
    namespace: &str,
    chosen: Option<&ShareNotifications>,
    n: &OtsNotification,
    wanted: NotificationEvent,
) -> bool {
    let named = chosen.map_or(&[][..], |c| c.notification_refs.as_slice());
    n.namespace().as_deref() == Some(namespace)
        && !ShareNotifications::opted_out(chosen)
        && (named.is_empty() || named.iter().any(|r| r.name == n.name_any()))
        && !n.spec.settings.suspend
        && n.spec.settings.wants(wanted)
}

/// Whether the ClusterOtsNotification `n` may tell about `wanted` of a share that chose
/// `chosen`, before its selectors are looked at: a share's optOut counts only when `n` honours
/// it; its notificationRefs never count.
fn platform_applies(
    chosen: Option<&ShareNotifications>,
    n: &ClusterOtsNotification,
    wanted: NotificationEvent,
) -> bool {
    let silenced = ShareNotifications::opted_out(chosen) && n.spec.honor_opt_out;
    !silenced && !n.spec.settings.suspend && n.spec.settings.wants(wanted)
}

/// The outbox an outbox Secret holds, if readable.
fn read_outbox(secret: &Secret) -> Option<Outbox> {
    let raw = secret.data.as_ref()?.get(OUTBOX_KEY)?;
    serde_json::from_slice(&raw.0).ok()
}

/// Whether a label selector selects these labels (matchLabels and matchExpressions, all).
fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    super::server_ref::selects(selector, labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_from_the_minimum_to_the_cap_within_twenty_percent() {
        let schedule = RetrySchedule {
            min: Duration::from_secs(1),
            max: Duration::from_secs(300),
        };
        let mut rng = rand::rng();
        for (attempt, ceiling) in [
            (1, 1.0),
            (2, 2.0),
            (3, 4.0),
            (9, 256.0),
            (10, 300.0),
            (40, 300.0),
        ] {
            for _ in 0..50 {
                let delay = schedule.delay(attempt, &mut rng).as_secs_f64();
                assert!(
                    delay >= ceiling * 0.8 - 1e-9 && delay <= ceiling * 1.2 + 1e-9,
                    "attempt {attempt}: {delay}"
                );
            }
        }
    }

    fn chosen(value: serde_json::Value) -> ShareNotifications {
        serde_json::from_value(value).unwrap()
    }

    fn tenant(name: &str, spec: serde_json::Value) -> OtsNotification {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "ots.dev/v1alpha1", "kind": "OtsNotification",
            "metadata": {"name": name, "namespace": "team"}, "spec": spec,
        }))
        .unwrap()
    }

    fn platform(spec: serde_json::Value) -> ClusterOtsNotification {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "ots.dev/v1alpha1", "kind": "ClusterOtsNotification",
            "metadata": {"name": "audit"}, "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn a_share_opts_out_of_or_names_its_namespaces_notifications() {
        let received = NotificationEvent::Received;
        let hooks = tenant(
            "hooks",
            serde_json::json!({"endpointSecretRef": {"name": "h"}}),
        );
        let picky = tenant(
            "picky",
            serde_json::json!({"endpointSecretRef": {"name": "h"}, "events": ["Shared"]}),
        );
        let paused = tenant(
            "paused",
            serde_json::json!({"endpointSecretRef": {"name": "h"}, "suspend": true}),
        );
        // Nothing chosen: every one of the namespace that wants the event.
        assert!(tenant_applies("team", None, &hooks, received));
        assert!(!tenant_applies("other", None, &hooks, received));
        assert!(!tenant_applies("team", None, &picky, received));
        assert!(!tenant_applies("team", None, &paused, received));
        // Opted out: none.
        let out = chosen(serde_json::json!({"optOut": true}));
        assert!(!tenant_applies("team", Some(&out), &hooks, received));
        // Named: only those, still filtered by their events and suspend.
        let named = chosen(serde_json::json!({"notificationRefs": [
            {"name": "picky"}, {"name": "paused"}
        ]}));
        assert!(!tenant_applies("team", Some(&named), &hooks, received));
        assert!(tenant_applies(
            "team",
            Some(&named),
            &picky,
            NotificationEvent::Shared
        ));
        assert!(!tenant_applies("team", Some(&named), &picky, received));
        assert!(!tenant_applies("team", Some(&named), &paused, received));
    }

    #[test]
    fn the_platforms_notifications_ignore_an_opt_out_unless_they_honour_it() {
        let received = NotificationEvent::Received;
        let out = chosen(serde_json::json!({"optOut": true}));
        let named = chosen(serde_json::json!({"notificationRefs": [{"name": "x"}]}));
        let mandatory = platform(serde_json::json!({"endpointSecretRef": {"name": "h"}}));
        let polite =
            platform(serde_json::json!({"endpointSecretRef": {"name": "h"}, "honorOptOut": true}));
        assert!(platform_applies(Some(&out), &mandatory, received));
        assert!(!platform_applies(Some(&out), &polite, received));
        assert!(platform_applies(None, &polite, received));
        // notificationRefs name the namespace's notifications only.
        assert!(platform_applies(Some(&named), &mandatory, received));
        assert!(platform_applies(Some(&named), &polite, received));
    }

    #[test]
    fn an_outbox_round_trips_and_holds_no_url() {
        let outbox = Outbox {
            share: ShareRef {
                namespace: "team".into(),
                name: "db".into(),
                uid: "u1".into(),
            },
            entries: vec![Entry {
                id: "ots_ABC".into(),
                event: "Received".into(),
                target: Target {
                    kind: "OtsNotification".into(),
                    namespace: Some("team".into()),
                    name: "hooks".into(),
                    uid: "n1".into(),
                },
                content_type: "application/json".into(),
                body: "{}".into(),
                attempts: 2,
                next_attempt_at: 5,
                give_up_at: 10,
                held: true,
                phase: Some("Received".into()),
                shared_at: Some(1_700_000_000),
            }],
        };
        let json = serde_json::to_vec(&outbox).unwrap();
        let secret = Secret {
            data: Some(BTreeMap::from([(OUTBOX_KEY.to_owned(), ByteString(json))])),
            ..Secret::default()
        };
        assert_eq!(read_outbox(&secret), Some(outbox));
    }
}
