//! The OneTimeShare controller: share a Secret once, track its link, burn it on deletion.
//!
//! Data flows one way: watch event → reconcile reads the Secret → OTS client → status write.
//! [`reconcile`] tells the whole story of an object; each step lives in its own module.
//!
//! The stages, in the order of the flow. Each calls only stages listed above it and the shared
//! parts below, never one beside or after it; this module calls `share`, `track`, `cleanup` and
//! `orphans::sweep`:
//! - `inputs`: the Secret, passphrase, server and credentials, the value and the lifetime, read
//!   and checked before any OTS call (its parts: `generate` makes a value, `value` builds it).
//! - `burn`: how a recorded link is burned; "already gone" counts as done (calls nothing above).
//! - `orphans`: links a share may have made unanswered, found and burned (calls `burn`).
//! - `share`: a first link (`share`) or a new one from checked inputs (`share_anew`): send,
//!   record, publish, tell (calls `inputs`, `orphans`, `burn`).
//! - `renew`: a new link for one that expired unread, `onExpiry: Reshare` (calls `inputs`,
//!   `share::share_anew`).
//! - `track`: link checks, reshare on a changed Secret, reissue on request (calls `inputs`,
//!   `burn`, `share::share_anew`, `renew`).
//! - `cleanup`: the finalizer's burn of the recorded link on deletion (calls `burn`).
//!
//! Shared parts any stage may use, which call no stage: `status` (status values and the write),
//! `records` (the operator's record of each link), `memory` (what this process remembers per
//! resource), `check_clock` (when each link's next check is due), `link_secret` (the link
//! Secret), `servers` (OTS clients per server), `events`, `transition` (the audit line of each
//! transition), `watch` (watch streams).
//!
//! Beside the stages, `server_status` runs the status controllers of OtsServers and
//! ClusterOtsServers (it uses `servers`' allowlist and HTTP pool, and calls no stage).

pub mod batch_track;
mod burn;
pub mod cached;
mod check_clock;
mod cleanup;
pub mod events;
pub mod generate;
mod inputs;
mod link_secret;
mod live_slots;
mod memory;
pub mod notifications;
mod orphans;
pub mod records;
mod renew;
mod server_ref;
pub mod server_status;
mod servers;
mod share;
mod status;
mod track;
pub mod transition;
pub mod value;
mod watch;

use crate::config::ControllerConfig;
use crate::error::{Error, Reason};
use crate::ots::OtsError;
use crate::resource::{
    BURN_ANNOTATION, DeletionPolicy, FINALIZER, MAX_BURN_TOKEN_CHARS, MAX_RESHARE_TOKEN_CHARS,
    OneTimeShare, OneTimeShareStatus, RESHARE_ANNOTATION,
};
use crate::runtime::metrics::{Metrics, ReconcileResult, StatusClass};
use crate::runtime::readiness::Readiness;
use crate::runtime::slots::{self, Slots};
use crate::runtime::throttle::{Class, Throttle, Turn};
use events::Recorder;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::{Action, Config as RuntimeConfig, Controller};
use kube::runtime::events::{EventType, Reporter};
use kube::runtime::finalizer::{Error as FinalizerError, Event as FinalizerEvent, finalizer};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use memory::{Memory, RecordKnown};
pub use records::Records;
pub use servers::{Server, Servers};

/// Everything a reconcile needs, shared by all reconciles.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Publishes Events (with valid names for any object name; see [`events`]).
    pub recorder: Recorder,
    /// Settings.
    pub config: ControllerConfig,
    /// OTS servers and clients.
    pub servers: Servers,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// Rate limit and in-flight bound: every OTS call goes through its one door,
    /// [`Throttle::call`], which records its outcome; a 429 from a server holds back later calls
    /// to it, not to other servers.
    pub throttle: Throttle,
    /// Reconciles at once: every reconcile takes a slot first, deletions before the others,
    /// namespaces in turn (see [`Slots`]).
    pub slots: Slots,
    /// Per-resource memory.
    pub memory: Memory,
    /// When each live link is next due for a check.
    pub checks: check_clock::CheckClock,
    /// Live links on servers with the batch status route, checked many per call.
    pub tracker: batch_track::BatchTracker,
    /// The operator's own records of its shares (the truth status is checked against).
    pub records: Records,
    /// The watch caches, once the controller runs (for counting live links per Secret).
    stores: std::sync::OnceLock<Vec<reflector::Store<Watched>>>,
    /// Metadata keys of answers this process received lately, while their record and status
    /// writes may still be on their way (so an orphan search never mistakes them for orphans).
    /// Kept as keyed 64-bit digests, not the keys: a share costs 24 bytes here, not a string; a
    /// digest shared by two keys could only make an orphan look known (never burn a known link).
    known_keys: std::sync::Mutex<std::collections::HashMap<u64, Instant>>,
    /// The key of those digests.
    key_digest: std::hash::RandomState,
    /// Share calls on their way to a server.
    share_calls: orphans::ShareCalls,
    /// Whether every record made before this process started is in memory, so a resource
    /// memory knows nothing of has no record (and a new share needs no record read).
    records_indexed: std::sync::atomic::AtomicBool,
    /// Whether every watch cache has listed its objects once (records are collected only then).
    caches_ready: std::sync::atomic::AtomicBool,
    /// Live-link slots per Secret (`--max-live-shares-per-secret`): shares under way or just
    /// made whose status the cache may not show yet, and shares waiting for a slot.
    live_slots: live_slots::LiveSlots,
    /// Live links (phase Shared) in the watch cache, refreshed every few seconds.
    live_links: std::sync::atomic::AtomicUsize,
    /// The ClusterOtsServers' watch cache, once the server status controller runs (for the
    /// default server and serverRefs without a read).
    cluster_servers: std::sync::OnceLock<reflector::Store<crate::resource::ClusterOtsServer>>,
    /// Set when the ClusterOtsServers could not be listed (the watch failed, or a share waited
    /// in vain): shares without a server then stop waiting for the list.
    cluster_servers_unlisted: std::sync::atomic::AtomicBool,
    /// Notifications of transitions, once set up (none in unit tests).
    notifier: std::sync::OnceLock<notifications::Notifier>,
}

/// Whether an error says the server a share names cannot be used any more (the object, its
/// Secrets or its consent are gone), which says nothing about a link made through it.
fn unusable_server(error: &Error) -> bool {
    matches!(
        error,
        Error::ServerRefNotFound { .. }
            | Error::ServerRefNotAllowed { .. }
            | Error::CredentialsNotFound { .. }
            | Error::SecretNotFound { .. }
            | Error::KeyNotFound { .. }
    )
}

/// Whether two base URLs name the same server (a trailing slash aside).
fn same_base_url(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// What a share's server (its object's policy) admits for a new link.
pub(super) struct Admitted {
    /// The lifetime to ask for.
    pub ttl: crate::resource::Ttl,
    /// Live links per Secret the server object allows (`policy.maxLiveSharesPerSecret`).
    pub max_live: Option<u32>,
}

impl Context {
    /// A context for the given settings.
    pub fn new(
        client: Client,
        config: ControllerConfig,
        metrics: Metrics,
        throttle: Throttle,
        identity: &str,
    ) -> Result<Self, Error> {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "ots-operator".into(),
                instance: Some(identity.to_owned()),
            },
        );
        Ok(Context {
            servers: Servers::new(&config, throttle.clone())?,
            slots: Slots::new(
                usize::from(config.concurrency),
                usize::from(config.concurrency_per_namespace),
            ),
            records: Records::new(client.clone(), &config.state_namespace),
            stores: std::sync::OnceLock::new(),
            caches_ready: std::sync::atomic::AtomicBool::new(false),
            records_indexed: std::sync::atomic::AtomicBool::new(false),
            share_calls: orphans::ShareCalls::default(),
            known_keys: std::sync::Mutex::new(std::collections::HashMap::new()),
            key_digest: std::hash::RandomState::new(),
            live_slots: live_slots::LiveSlots::new(config.max_live_shares_per_secret),
            client,
            recorder,
            config,
            metrics,
            throttle,
            memory: Memory::default(),
            checks: check_clock::CheckClock::default(),
            tracker: batch_track::BatchTracker::default(),
            live_links: std::sync::atomic::AtomicUsize::new(0),
            cluster_servers: std::sync::OnceLock::new(),
            cluster_servers_unlisted: std::sync::atomic::AtomicBool::new(false),
            notifier: std::sync::OnceLock::new(),
        })
    }

    /// The polling interval bounds for link checks: the configured ones, stretched so that all
    /// live links together use at most half of `--ots-rate`, leaving the rest to shares and burns.
    fn refresh_bounds(&self) -> (Duration, Duration) {
        let live = self.live_links.load(std::sync::atomic::Ordering::Relaxed);
        let floor = Duration::from_secs_f64(live as f64 / (0.5 * self.throttle.rate()));
        (
            self.config.refresh_min.max(floor),
            self.config.refresh_max.max(floor),
        )
    }

    /// The server reported the share's link spent (read, burned or expired): nothing is left to
    /// burn or to track.
    fn link_spent(&self, uid: &str) {
        self.memory.saw_spent(uid);
        self.tracker.forget(uid);
    }

    /// The interval of a batch-tracked link's own checks: the slow end of the schedule
    /// (`--refresh-max`), stretched so that all live links' own checks together use at most a
    /// quarter of `--ots-rate`, leaving the batch calls (and shares and burns) the rest.
    fn batched_refresh(&self) -> Duration {
        let live = self.live_links.load(std::sync::atomic::Ordering::Relaxed);
        let floor = Duration::from_secs_f64(live as f64 / (0.25 * self.throttle.rate()));
        self.config.refresh_max.max(floor)
    }

    /// Sends transitions' notifications through `notifier` from now on.
    pub fn set_notifier(&self, notifier: notifications::Notifier) {
        let _ = self.notifier.set(notifier);
    }

    /// Tells of a transition no status write records (a deleted share's last burn): its audit
    /// log line, and its notifications when some apply (appended to the share's outbox; never
    /// awaits a delivery, never fails the caller).
    async fn transition(
        &self,
        obj: &OneTimeShare,
        before: &OneTimeShareStatus,
        after: &OneTimeShareStatus,
        reason: Reason,
    ) {
        let transition = transition::Transition::of(obj, before, after, reason, now());
        transition.log();
        if let Some(notifier) = self.notifier.get() {
            notifier.announce(obj, &transition).await;
        }
    }

    /// Prepares to tell of a transition that a status write is about to record: call it before
    /// that write, and [`Told::recorded`] once the write succeeded. Its notifications are in
    /// the share's outbox before the write (a crash between the two loses none) but are not
    /// sent for a write that failed; the audit line is logged once the write succeeded.
    async fn transition_ahead(
        &self,
        obj: &OneTimeShare,
        before: &OneTimeShareStatus,
        after: &OneTimeShareStatus,
        reason: Reason,
    ) -> Told {
        let transition = transition::Transition::of(obj, before, after, reason, now());
        let held = match self.notifier.get() {
            Some(notifier) => notifier.hold(obj, &transition).await,
            None => None,
        };
        Told { transition, held }
    }

    /// Publishes an Event about `obj`; failures are logged, never fatal.
    async fn event(&self, obj: &OneTimeShare, kind: EventType, reason: Reason, note: String) {
        events::publish(&self.recorder, obj, kind, reason, note).await;
    }

    /// The server that holds a resource's link (status wins over spec), with its credentials.
    ///
    /// The server the share would use today (its server object, the default ClusterOtsServer,
    /// the flags) serves when it is the one the link lives on. When it is not (a default server
    /// added or removed since the link was made), or when the server object, its Secrets or its
    /// consent are gone, the link is reached with what its record keeps: URL, credentials, CA.
    async fn link_server(
        &self,
        obj: &OneTimeShare,
        status: &OneTimeShareStatus,
    ) -> Result<Server, Error> {
        let namespace = obj.namespace().unwrap_or_default();
        let secrets = self.secrets(&namespace);
        let recorded = status.server_url.as_deref();
        let choice = match server_ref::choose(self, obj).await {
            Ok(choice) => choice,
            Err(error) if unusable_server(&error) => {
                return self.recorded_link_server(obj, status, error).await;
            }
            Err(error) => return Err(error),
        };
        let chosen_url = self.chosen_url(&choice);
        let holds_link = recorded.is_none_or(|url| same_base_url(url, &chosen_url));
        if !holds_link {
            let moved = Error::InvalidSpec(
                "the share's server is not the one its link lives on".to_owned(),
            );
            if let Ok(server) = self.recorded_link_server(obj, status, moved).await {
                return Ok(server);
            }
        }
        match self.resolve_choice(obj, choice, &secrets, recorded).await {
            Ok((server, _)) => Ok(server),
            Err(error) if unusable_server(&error) => {
                self.recorded_link_server(obj, status, error).await
            }
            Err(error) => Err(error),
        }
    }

    /// The server of a resource's link as its record keeps it; `error` when there is no record
    /// of that link.
    async fn recorded_link_server(
        &self,
        obj: &OneTimeShare,
        status: &OneTimeShareStatus,
        error: Error,
    ) -> Result<Server, Error> {
        let uid = obj.uid().unwrap_or_default();
        if status.metadata_key.is_none() || uid.is_empty() {
            return Err(error);
        }
        let Some(stored) = self.records.load(&uid).await? else {
            return Err(error);
        };
        if Some(stored.record.metadata_key.as_str()) != status.metadata_key.as_deref() {
            return Err(error);
        }
        tracing::debug!(
            object = %kube::runtime::reflector::ObjectRef::from_obj(obj),
            reason = ?error.reason(),
            "the share's link is reached with its record"
        );
        let namespace = obj.namespace().unwrap_or_default();
        self.servers
            .resolve_recorded_in(
                &namespace,
                &stored.record.server_url,
                stored.credentials,
                stored.ca.as_deref(),
                &Turn::share(&namespace),
            )
            .await
    }

    /// The server a share uses (see [`server_ref::choose`]) and what its policy admits (a
    /// server object's policy checked first, before any call); `recorded_url` (from status) wins
    /// over the spec so that an existing link is always burned or tracked where it lives.
    async fn resolve_server(
        &self,
        obj: &OneTimeShare,
        secrets: &Api<Secret>,
        recorded_url: Option<&str>,
    ) -> Result<(Server, Admitted), Error> {
        let choice = server_ref::choose(self, obj).await?;
        self.resolve_choice(obj, choice, secrets, recorded_url)
            .await
    }

    /// [`Self::resolve_server`] once the server is chosen.
    async fn resolve_choice(
        &self,
        obj: &OneTimeShare,
        choice: server_ref::ServerChoice<'_>,
        secrets: &Api<Secret>,
        recorded_url: Option<&str>,
    ) -> Result<(Server, Admitted), Error> {
        let namespace = obj.namespace().unwrap_or_default();
        let turn = Turn::share(&namespace);
        // The recorded URL wins only on the server chosen: another server's credentials never
        // go to it (a new link goes to the server the share uses now; see `link_server` for
        // an existing one).
        let chosen_url = self.chosen_url(&choice);
        let recorded_url = recorded_url.filter(|url| same_base_url(url, &chosen_url));
        match choice {
            server_ref::ServerChoice::Inline(spec) => {
                // The schema refuses a malformed ttl; one that got past it (another CRD
                // version, say) is refused here, before the server is called.
                let ttl = obj
                    .spec
                    .ttl()
                    .map_err(|e| Error::InvalidSpec(e.to_string()))?;
                let server = self
                    .servers
                    .resolve(secrets, spec, recorded_url, &turn)
                    .await?;
                let max_live = None;
                Ok((server, Admitted { ttl, max_live }))
            }
            server_ref::ServerChoice::Object(server) => {
                let ttl = server.admit(obj)?;
                let max_live = server
                    .policy
                    .as_ref()
                    .and_then(|p| p.max_live_shares_per_secret);
                let server = self
                    .servers
                    .resolve_object(*server, recorded_url, &namespace, &turn)
                    .await?;
                Ok((server, Admitted { ttl, max_live }))
            }
        }
    }

    /// The base URL of the server a choice names.
    fn chosen_url(&self, choice: &server_ref::ServerChoice<'_>) -> String {
        match choice {
            server_ref::ServerChoice::Object(server) => server.url.clone(),
            server_ref::ServerChoice::Inline(spec) => spec
                .and_then(|s| s.url.clone())
                .unwrap_or_else(|| self.servers.default_url().to_owned()),
        }
    }

    fn secrets(&self, namespace: &str) -> Api<Secret> {
        Api::namespaced(self.client.clone(), namespace)
    }

    fn shares(&self, namespace: &str) -> Api<OneTimeShare> {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// What the operator's record says about a resource: from memory, else one read.
    async fn known_record(&self, uid: &str) -> Result<RecordKnown, Error> {
        match self.memory.record(uid) {
            RecordKnown::Unknown
                if self
                    .records_indexed
                    .load(std::sync::atomic::Ordering::Acquire) =>
            {
                Ok(RecordKnown::Absent)
            }
            RecordKnown::Unknown => {
                let known = match self.records.load(uid).await? {
                    Some(stored) => RecordKnown::Link {
                        metadata_key: stored.record.metadata_key,
                        server_url: stored.record.server_url,
                    },
                    None => RecordKnown::Absent,
                };
                self.memory.set_record(uid, known.clone());
                Ok(known)
            }
            known => Ok(known),
        }
    }

    /// Loads what every existing record says into memory (one metadata list), so that new
    /// resources need no record read. On failure, records are read one by one instead.
    async fn index_records(&self) {
        match self.records.index().await {
            Ok(index) => {
                let count = index.len();
                for (uid, metadata_key, server_url) in index {
                    if self.memory.record(&uid) == RecordKnown::Unknown {
                        self.memory.set_record(
                            &uid,
                            RecordKnown::Link {
                                metadata_key,
                                server_url,
                            },
                        );
                    }
                }
                self.records_indexed
                    .store(true, std::sync::atomic::Ordering::Release);
                tracing::debug!(records = count, "records indexed");
            }
            Err(e) => tracing::warn!(
                error = %e,
                "could not list the share records; each is read when its resource is reconciled"
            ),
        }
    }

    /// Waits for the next check of `obj`'s link, when memory says it is due: the check clock
    /// wakes the controller for it then (see `check_clock`), so the controller keeps no timer.
    fn check_when_due(&self, obj: &OneTimeShare) -> Action {
        if let Some(at) = self.memory.check_due_at(&obj.uid().unwrap_or_default()) {
            self.checks.wake_at(obj, at);
        }
        Action::await_change()
    }

    /// Remembers a metadata key the server just answered with.
    fn learned_key(&self, metadata_key: &str) {
        use std::hash::BuildHasher;
        let digest = self.key_digest.hash_one(metadata_key);
        let mut keys = self.known_keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.insert(digest, Instant::now());
    }

    /// Every metadata key this operator knows of: answers received lately and every status in
    /// the watch cache.
    fn known_metadata_keys(&self) -> orphans::KnownKeys {
        let lately = self
            .known_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .copied()
            .collect();
        let mut known = orphans::KnownKeys::new(lately, self.key_digest.clone());
        // Links kept out of status (spec.linkSecretRef) are known by their records.
        known.extend(self.memory.recorded_keys());
        for store in self.stores.get().into_iter().flatten() {
            known.extend(
                store
                    .state()
                    .iter()
                    .filter_map(|o| o.share().ok()?.status?.metadata_key),
            );
        }
        known
    }

    /// Takes a slot for a new link of `obj`'s Secret under `--max-live-shares-per-secret`, or
    /// its server object's `policy.maxLiveSharesPerSecret` when lower: live links in the watch
    /// cache plus shares under way, not counting `obj` itself.
    fn reserve_live_slot(&self, obj: &OneTimeShare, server_max: Option<u32>) -> Result<(), Error> {
        if self.live_slots.limit(server_max) == 0 {
            return Ok(());
        }
        let namespace = obj.namespace().unwrap_or_default();
        let secret = &obj.spec.secret_ref.name;
        let secret_digest = cached::secret_digest(secret);
        // Selected by the cached facts; only the few shares of this Secret are unpacked.
        let shared = self
            .stores
            .get()
            .into_iter()
            .flatten()
            .flat_map(|store| store.state())
            .filter(|o| {
                o.facts().phase == crate::resource::Phase::Shared
                    && o.facts().secret == secret_digest
                    && o.namespace().as_deref() == Some(namespace.as_str())
            })
            .filter_map(|o| o.share().ok())
            .filter(|o| o.spec.secret_ref.name == *secret)
            .filter_map(|o| o.uid())
            .collect();
        self.live_slots.take_under(obj, shared, server_max)
    }
}

fn action_of(reason: Reason) -> &'static str {
    match reason {
        Reason::Burned | Reason::BurnFailed | Reason::BurnRefused => "Burn",
        Reason::Received | Reason::Expired => "Track",
        Reason::Reshared | Reason::Renewed | Reason::ReissueRefused => "Reshare",
        Reason::Generated => "Generate",
        _ => "Share",
    }
}

/// A timestamp at whole seconds, as the API server stores times.
fn now() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_second(now.as_second()).unwrap_or(now)
}

impl crate::runtime::throttle::UpstreamFailure for OtsError {
    fn retry_after(&self) -> Option<Duration> {
        OtsError::retry_after(self)
    }

    fn status_class(&self) -> StatusClass {
        match self {
            OtsError::RateLimited { .. } => StatusClass::RateLimited,
            OtsError::Unavailable { .. } => StatusClass::ServerError,
            OtsError::NotFound
            | OtsError::RouteNotFound { .. }
            | OtsError::Unauthorized
            | OtsError::EntitlementRequired { .. }
            | OtsError::GuestRoutesDisabled
            | OtsError::Forbidden { .. }
            | OtsError::SecretTooLarge { .. }
            | OtsError::PassphraseRefused { .. }
            | OtsError::Validation { .. } => StatusClass::ClientError,
            OtsError::Refused { .. }
            | OtsError::BurnUnconfirmed { .. }
            | OtsError::Protocol { .. }
            | OtsError::InvalidInput(_)
            | OtsError::ShareDomainUnsupported
            | OtsError::Setup { .. } => StatusClass::Other,
            OtsError::TlsUntrusted { .. } => StatusClass::Connect,
        }
    }
}

/// Reconciles one OneTimeShare. Errors are turned into a Ready=False condition, a Warning Event
/// and a backoff here, so the runtime only sees actions.
pub async fn reconcile(obj: Arc<OneTimeShare>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let namespace = obj.namespace().unwrap_or_default();
    let api = ctx.shares(&namespace);

    let uses_finalizer = obj.spec.deletion_policy == DeletionPolicy::Burn
        || obj.finalizers().iter().any(|f| f == FINALIZER);
    let outcome = if uses_finalizer {
        finalizer(&api, FINALIZER, obj.clone(), |event| async {
            match event {
                FinalizerEvent::Apply(o) => apply(&o, &ctx).await,
                FinalizerEvent::Cleanup(o) => cleanup::cleanup(&o, &ctx).await,
            }
        })
        .await
        .map_err(|e| match e {
            FinalizerError::ApplyFailed(e) | FinalizerError::CleanupFailed(e) => e,
            FinalizerError::AddFinalizer(e) | FinalizerError::RemoveFinalizer(e) => Error::Kube(e),
            other => Error::InvalidSpec(other.to_string()),
        })
    } else if obj.meta().deletion_timestamp.is_some() {
        Ok(Action::await_change())
    } else {
        apply(&obj, &ctx).await
    };

    let action = settle(&obj, &api, outcome, started, &ctx).await;
    tracing::debug!(
        object = %kube::runtime::reflector::ObjectRef::from_obj(&*obj),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "reconciled"
    );
    Ok(action)
}

/// Ends a reconcile: counts it, and turns an error into what the user sees (Ready=False, a
/// Warning Event, the metric's reason) and a backoff.
async fn settle(
    obj: &OneTimeShare,
    api: &Api<OneTimeShare>,
    outcome: Result<Action, Error>,
    started: Instant,
    ctx: &Context,
) -> Action {
    let uid = obj.uid().unwrap_or_default();
    match outcome {
        Ok(action) => {
            ctx.memory.succeeded(&uid);
            ctx.metrics
                .reconcile_done(ReconcileResult::Ok, "Ok", started.elapsed());
            action
        }
        Err(error) => {
            let reason = error.reason();
            tracing::info!(
                object = %kube::runtime::reflector::ObjectRef::from_obj(obj),
                reason = reason.as_str(),
                error = %error,
                "reconcile failed"
            );
            let reported = report_error(obj, api, &error, ctx).await;
            ctx.metrics
                .reconcile_done(ReconcileResult::Error, reason.as_str(), started.elapsed());
            let shown = ctx.memory.status_to_show(&uid, obj.status.as_ref());
            let digest = ctx.memory.attempt_digest(obj, shown.as_ref());
            // A report the API server did not take is tried again with backoff, even for an
            // error that otherwise waits for a change of the resource: else the share would
            // go on showing its old status (and its Failed notification would never go) until
            // someone touched it.
            let retry = match (reported, error.retry()) {
                (Reported::WriteFailed, crate::error::Retry::OnChange) => {
                    crate::error::Retry::Backoff
                }
                (_, retry) => retry,
            };
            match ctx.memory.failed(&uid, retry, error.retry_after(), digest) {
                Some(wait) => Action::requeue(wait),
                None => Action::await_change(),
            }
        }
    }
}

/// The desired state of a live resource: shared once, then tracked, on the word of the
/// operator's own record of the share, never on status alone (anyone allowed to write
/// `onetimeshares/status` could point it at another resource's link).
async fn apply(obj: &OneTimeShare, ctx: &Context) -> Result<Action, Error> {
    let uid = obj.uid().unwrap_or_default();
    let status = ctx
        .memory
        .effective(&uid, obj.status.as_ref(), obj.resource_version().as_deref());
    let claimed = status.as_ref().and_then(|s| s.metadata_key.as_deref());
    match ctx.known_record(&uid).await? {
        RecordKnown::Link {
            metadata_key,
            server_url,
        } => match status {
            Some(status)
                if link_secret::status_matches(obj, &status, &metadata_key, &server_url) =>
            {
                track::track(obj, status, &metadata_key, ctx).await
            }
            // Status was wiped or points elsewhere: the record is the truth.
            _ => restore(obj, ctx).await,
        },
        RecordKnown::Absent | RecordKnown::Unknown => match claimed {
            None => share::share(obj, ctx).await,
            Some(_) => Err(Error::StatusTampered {
                detail: "there is no record of a link for it; delete and re-create the OneTimeShare to share again".into(),
            }),
        },
    }
}

/// Rewrites a status that does not match the operator's record from that record, and warns.
async fn restore(obj: &OneTimeShare, ctx: &Context) -> Result<Action, Error> {
    let uid = obj.uid().unwrap_or_default();
    let Some(stored) = ctx.records.load(&uid).await? else {
        ctx.memory.set_record(&uid, RecordKnown::Unknown);
        return Ok(Action::requeue(Duration::from_secs(1)));
    };
    let next = link_secret::public_status(obj, status::restored_status(obj, &stored.record, now()));
    tracing::warn!(
        object = %kube::runtime::reflector::ObjectRef::from_obj(obj),
        "status did not match the operator's record of the share; restored it"
    );
    save(obj, ctx, &next).await?;
    ctx.event(
        obj,
        EventType::Warning,
        Reason::StatusTampered,
        "status did not name the link the operator made for this resource (it was changed or removed by someone else); it was restored from the operator's record, and nothing was burned or shared on its word".into(),
    )
    .await;
    ctx.memory.reset_schedule(&uid);
    Ok(Action::requeue(Duration::from_secs(1)))
}

/// Whether [`report_error`]'s status write, if it needed one, was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reported {
    /// The status shows the error, or needed no change.
    Shown,
    /// The status write failed: the status does not show the error.
    WriteFailed,
}

/// Shows an error to the user: Ready=False (when it changed) and a Warning Event (when new).
async fn report_error(
    obj: &OneTimeShare,
    api: &Api<OneTimeShare>,
    error: &Error,
    ctx: &Context,
) -> Reported {
    let uid = obj.uid().unwrap_or_default();
    let current = ctx
        .memory
        .effective(&uid, obj.status.as_ref(), obj.resource_version().as_deref())
        .unwrap_or_default();
    let (reason, message) = error.shown(ctx.config.admission_guard);
    let message = at_fault(obj, error, message);
    // With a live link the status stays as it is; the Event tells about the failed check.
    let mut reported = Reported::Shown;
    let no_link_or_deleting = (current.metadata_key.is_none()
        && current.link_secret_name.is_none())
        || obj.meta().deletion_timestamp.is_some()
        || reason == Reason::StatusTampered
        || reason == Reason::LinkSecretNotWritten;
    if no_link_or_deleting
        && let Some(next) = status::error_status(
            obj,
            &current,
            reason,
            &message,
            error.needs_user_fix(),
            now(),
        )
    {
        ctx.memory.wrote(&uid, &next);
        let told = if next.phase == crate::resource::Phase::Failed && current.phase != next.phase {
            Some(ctx.transition_ahead(obj, &current, &next, reason).await)
        } else {
            None
        };
        match status::write_status(api, obj, &next).await {
            Ok(version) => {
                ctx.memory.write_landed(&uid, &next, version.as_deref());
                if let Some(told) = told {
                    told.recorded();
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not write the error to status");
                // Not remembered as shown: the retry compares with what the API shows, and
                // writes the report again.
                ctx.memory.write_failed(&uid, &next);
                reported = Reported::WriteFailed;
            }
        }
    }
    if ctx.memory.should_warn(&uid, reason) {
        ctx.event(obj, EventType::Warning, reason, message).await;
    }
    reported
}

/// A failure of the server a share's server object names says which object that is, so the
/// user knows whose status (and whose administrators) to look at.
fn at_fault(obj: &OneTimeShare, error: &Error, message: String) -> String {
    match (&obj.spec.server_ref, error) {
        (
            Some(server),
            Error::Ots(_) | Error::CredentialsNotFound { .. } | Error::ServerNotAllowed { .. },
        ) => format!(
            "{message} (the server of {} {:?}; see its status)",
            server.kind.as_str(),
            server.name
        ),
        _ => message,
    }
}

/// A transition whose notifications wait in the outbox for the status write recording it.
#[must_use = "call recorded() once the status write succeeded"]
pub(crate) struct Told {
    transition: transition::Transition,
    held: Option<notifications::Held>,
}

impl Told {
    /// The status write recording the transition succeeded: logs its audit line and lets its
    /// notifications go.
    pub(crate) fn recorded(self) {
        self.transition.log();
        if let Some(held) = self.held {
            held.release();
        }
    }
}

/// Writes `status` and remembers it, so a stale cache never hides it.
async fn save(obj: &OneTimeShare, ctx: &Context, status: &OneTimeShareStatus) -> Result<(), Error> {
    let uid = obj.uid().unwrap_or_default();
    ctx.memory.wrote(&uid, status);
    let api = ctx.shares(&obj.namespace().unwrap_or_default());
    let version = status::write_status(&api, obj, status).await?;
    ctx.memory.write_landed(&uid, status, version.as_deref());
    Ok(())
}

/// Keeps of a cached object only what reconciling reads, bounded: the watch cache must not grow
/// with what tenants put into metadata (annotations alone may hold 256 KiB per object).
/// managedFields, labels and owner references go; of the annotations only `ots.dev/reshare` and
/// `ots.dev/burn` stay, each cut to one character more than the operator acts on (so a longer
/// value is still seen as too long, and refused). Finalizers stay whole: the finalizer patch tests the whole list.
fn slim<K: Resource>(obj: &mut K) {
    let meta = obj.meta_mut();
    meta.managed_fields = None;
    meta.labels = None;
    meta.owner_references = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.retain(|key, _| key == RESHARE_ANNOTATION || key == BURN_ANNOTATION);
        for value in annotations.values_mut() {
            let max = MAX_RESHARE_TOKEN_CHARS.max(MAX_BURN_TOKEN_CHARS);
            if let Some((cut, _)) = value.char_indices().nth(max + 1) {
                value.truncate(cut);
                value.shrink_to_fit();
            }
        }
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
}

/// A watched OneTimeShare as the watch cache keeps it (see [`cached`]): packed, or the metadata
/// and decode error of one that is not a valid OneTimeShare.
type Watched = cached::CachedShare;

/// Reconciles a watched object: a decodable one as [`reconcile`] does; an undecodable one (written
/// through another CRD version, say) becomes one Warning, and the others go on being reconciled.
async fn reconcile_watched(obj: Arc<Watched>, ctx: Arc<Context>) -> Result<Action, Error> {
    match obj.share() {
        Ok(share) => reconcile(Arc::new(share), ctx).await,
        Err(invalid) => {
            events::report_invalid(&ctx, &*obj, &invalid).await;
            Ok(Action::await_change())
        }
    }
}

/// Reconciles a watched object if it gets a reconcile slot (a deletion's before others', the
/// namespaces in turn: see [`Slots`]), as the watch cache shows it by then. Without a slot it
/// leaves a ticket and ends: the slots wake it again when its turn comes.
async fn reconcile_in_turn(
    obj: Arc<Watched>,
    ctx: Arc<Context>,
    cache: reflector::Store<Watched>,
) -> Result<Action, Error> {
    let class = if obj.meta().deletion_timestamp.is_some() {
        Class::Revoke
    } else {
        Class::Share
    };
    // A failed resource waits for its backoff unless it changed (not for the failure report's
    // own status write): no slot, no second call to a server that just refused.
    if let (Ok(share), Some(uid)) = (obj.share(), obj.uid()) {
        // What the skipped reconcile's `Memory::effective` would have done: once the cache shows
        // our last status write, forget it, so a later change of status by someone else is
        // seen as such (not hidden behind our write).
        if let Some(status) = &share.status {
            ctx.memory
                .cache_shows(&uid, status, share.meta().resource_version.as_deref());
        }
        let digest = ctx.memory.attempt_digest(&share, share.status.as_ref());
        if let Some(wait) = ctx.memory.held(&uid, digest) {
            return Ok(wait.map_or_else(Action::await_change, Action::requeue));
        }
    }
    let key: slots::Key =
        format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any()).into();
    let Some(_slot) = ctx.slots.try_take(&key, class) else {
        return Ok(Action::await_change());
    };
    // The object may have changed (or gone) since this reconcile was asked for.
    match cache.get(&reflector::ObjectRef::from_obj(&*obj)) {
        Some(latest) => reconcile_watched(latest, ctx).await,
        None => Ok(Action::await_change()),
    }
}

/// The error policy for errors that escape [`reconcile`] (none do today): back off.
fn error_policy(_obj: Arc<Watched>, _error: &Error, _ctx: Arc<Context>) -> Action {
    Action::requeue(memory::jitter(Duration::from_secs(5)))
}

/// Runs the controller over the configured namespaces until `shutdown` completes; then waits for
/// running reconciles to finish. Each watch reports its health to `readiness` (a missing CRD or a
/// watch that keeps failing makes `/readyz` fail until it works again), and the watch counts as
/// established once every watch has listed its objects.
pub async fn run(
    ctx: Arc<Context>,
    shutdown: impl Future<Output = ()> + Send + Sync + Clone + 'static,
    readiness: Readiness,
) {
    // Before any reconcile: which resources have a record, in one list.
    ctx.index_records().await;
    let namespaces: Vec<Option<String>> = if ctx.config.namespaces.is_empty() {
        vec![None]
    } else {
        ctx.config.namespaces.iter().cloned().map(Some).collect()
    };
    let mut stores = Vec::new();
    let mut runs = Vec::new();
    let mut routes = Vec::new();
    for namespace in namespaces {
        let api: Api<Watched> = match &namespace {
            Some(ns) => Api::namespaced(ctx.client.clone(), ns),
            None => Api::all(ctx.client.clone()),
        };
        let scope = namespace.as_deref().unwrap_or("all namespaces");
        let (store, writer) = reflector::store();
        // The cache keeps only what reconciling needs (see `slim`), and a (re-)list reads the
        // objects in pages small enough that pages of tenants' largest objects stay far below
        // the chart's memory limit. Not `any_semantic()`: the API server answers a list at
        // resourceVersion 0 from its cache in one piece, ignoring the page size (1,000 shares
        // with 250 KiB annotations each were one 250 MB answer).
        let objects = watch::watch(
            api,
            watcher::Config::default().page_size(LIST_PAGE_SIZE),
            readiness.watch_health(scope),
        )
        .modify(slim)
        .reflect(writer)
        .applied_objects();
        // Links due for a check, from the check clock.
        let (due_tx, due_rx) = tokio::sync::mpsc::unbounded_channel();
        routes.push((namespace.clone(), due_tx));
        let due = futures::stream::unfold(due_rx, |mut rx| async move {
            rx.recv().await.map(|obj| (obj, rx))
        });
        // Unbounded here: `ctx.slots` bounds reconciles, fairly across namespaces (kube's own
        // bound starts them first come first served, so one namespace's backlog could hold
        // every slot).
        let controller = Controller::for_stream(objects, store.clone())
            .reconcile_on(due)
            .with_config(RuntimeConfig::default())
            .graceful_shutdown_on(shutdown.clone());
        let cache = store.clone();
        stores.push(store);
        let run = controller
            .run(
                move |obj, ctx| reconcile_in_turn(obj, ctx, cache.clone()),
                error_policy,
                ctx.clone(),
            )
            .for_each(|result| async move {
                // Watch errors are reported (once per transition) by the watch's health.
                if let Err(e) = result {
                    tracing::debug!(error = %e, "controller event");
                }
            });
        runs.push(run);
    }
    let _ = ctx.stores.set(stores.clone());
    let ready_stores = stores.clone();
    let ready_ctx = ctx.clone();
    let readiness = async move {
        for store in &ready_stores {
            if store.wait_until_ready().await.is_err() {
                return;
            }
        }
        ready_ctx
            .caches_ready
            .store(true, std::sync::atomic::Ordering::Relaxed);
        readiness.set_watch_ready(true);
    };
    let phases = housekeeping(stores, ctx.clone(), shutdown.clone());
    let clock = ctx.checks.run(routes, shutdown.clone());
    let batches = track_batches(ctx.clone(), shutdown.clone());
    let servers = server_status::run(ctx.clone(), shutdown.clone());
    // Notifications: their own watches and delivery slots; nothing here awaits a delivery.
    let notify_ctx = ctx.clone();
    let notify_stop = shutdown.clone();
    let notify = async move {
        if let Some(notifier) = notify_ctx.notifier.get() {
            notifier.run(notify_stop).await;
        }
    };
    // A ticket granted a slot is reconciled through the check clock, if its object is still
    // cached. Weak: the slots live in the context.
    let waker_ctx = Arc::downgrade(&ctx);
    ctx.slots.set_waker(move |key| {
        let Some(ctx) = waker_ctx.upgrade() else {
            return false;
        };
        let Some((namespace, name)) = key.split_once('/') else {
            return false;
        };
        let object = reflector::ObjectRef::<Watched>::new(name).within(namespace);
        let cached = ctx
            .stores
            .get()
            .is_some_and(|stores| stores.iter().any(|store| store.get(&object).is_some()));
        if cached {
            ctx.checks.wake_now(key);
        }
        cached
    });
    // No slot is handed out after shutdown; reconciles running finish.
    let slots = ctx.slots.clone();
    let close = async move {
        shutdown.await;
        slots.close();
    };
    tokio::join!(
        futures::future::join_all(runs),
        readiness,
        phases,
        clock,
        batches,
        servers,
        notify,
        close
    );
}

/// Runs the batch tracker: each batch call goes through the throttle with capacity nobody else
/// waits for, and a link that left the answer wakes its share through the check clock.
async fn track_batches(ctx: Arc<Context>, shutdown: impl Future<Output = ()>) {
    use crate::runtime::throttle::IfFree;
    use batch_track::{Checked, Wake};
    let interval = || ctx.config.refresh_min;
    let check = |group: batch_track::Group, client: crate::ots::OtsClient, keys: Vec<String>| {
        let ctx = ctx.clone();
        async move {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            match ctx
                .throttle
                .call(
                    &group.url,
                    "batch_status",
                    IfFree,
                    client.unread_among(&keys),
                )
                .await
            {
                Err(busy) => Checked::Busy(busy.retry_in),
                Ok(Ok(answers)) => Checked::Answered(answers),
                Ok(Err(error)) => Checked::Failed(error),
            }
        }
    };
    let wake = |wake: Wake| {
        ctx.memory.batch_woken(&wake.uid);
        // The server just answered for this link: a backoff from a failed check of it does not
        // hold back reading what became of it.
        ctx.memory.lift_hold(&wake.uid);
        ctx.checks.wake_now(wake.share);
    };
    ctx.tracker.run(interval, check, wake, shutdown).await;
}

/// Whether a live link expires within a quarter of its lifetime (at most 24 h): time to remind
/// someone to open it (the `links_expiring_unread` gauge behind the chart's alert).
fn expires_soon(facts: &cached::Facts) -> bool {
    let (Some(expires_at), Some(ttl)) = (facts.expires_at, facts.ttl_seconds) else {
        return false;
    };
    let left = expires_at - now().as_second();
    left > 0 && left <= (ttl / 4).min(86_400)
}

/// Objects per list page of the watch. A OneTimeShare may carry up to 256 KiB of annotations
/// (and more in labels), and a page is read whole, as text and as objects, before `slim` trims
/// it: 500 (kube's default) of those make a 125 MiB page. 20 bound a page to about 5 MiB of text
/// (the re-list of 1,000 such shares peaked at 119 MiB with pages of 50), and cost 250 list
/// calls of a few milliseconds each for 5,000 shares.
const LIST_PAGE_SIZE: u32 = 20;

/// How long an answered metadata key is remembered (its record and status are written by then).
const KNOWN_KEY_TTL: Duration = Duration::from_secs(3600);

/// How old a record must be before it is collected when its resource is not in the cache.
const RECORD_GRACE: Duration = Duration::from_secs(600);

/// Every few seconds, from the watch cache (no API calls): keeps the per-phase gauge current and
/// forgets resources that are gone.
async fn housekeeping(
    stores: Vec<kube::runtime::reflector::Store<Watched>>,
    ctx: Arc<Context>,
    shutdown: impl Future<Output = ()>,
) {
    let work = async {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        let mut ticks: u64 = 0;
        let mut last_sweep = Instant::now();
        loop {
            tick.tick().await;
            ticks += 1;
            // Slots granted to reconciles that never came go on to the next tickets.
            ctx.slots.sweep();
            let mut counts: std::collections::HashMap<_, i64> = crate::resource::Phase::ALL
                .into_iter()
                .map(|p| (p, 0))
                .collect();
            let mut live = std::collections::HashSet::new();
            let mut cached = std::collections::HashMap::new();
            let awaited = ctx.live_slots.awaited();
            let mut shared_of_awaited: std::collections::HashMap<
                live_slots::SecretId,
                std::collections::HashSet<String>,
            > = std::collections::HashMap::new();
            let mut expiring = 0;
            // Live links, for ExpiringUnread notifications (only while some notification wants it).
            let notifier = ctx.notifier.get().filter(|n| n.wants_expiring_unread());
            let mut live_links = Vec::new();
            let read_at = Instant::now();
            for store in &stores {
                for obj in store.state() {
                    if let Some(uid) = obj.uid() {
                        live.insert(uid);
                    }
                    // An undecodable object has no phase anyone could rely on.
                    if !obj.is_valid() {
                        continue;
                    }
                    // The cached facts; a share is unpacked only where they do not tell enough.
                    let facts = obj.facts();
                    let phase = facts.phase;
                    *counts.entry(phase).or_default() += 1;
                    if phase == crate::resource::Phase::Shared && expires_soon(facts) {
                        expiring += 1;
                    }
                    // The cached object itself (an Arc), not a copy: 5,000 copies every 5 s
                    // would cost the whole watch cache again.
                    if phase == crate::resource::Phase::Shared && notifier.is_some() {
                        live_links.push(obj.clone());
                    }
                    if let Some(uid) = obj.uid() {
                        if ctx.memory.has_written(&uid)
                            && let Ok(share) = obj.share()
                            && let Some(status) = &share.status
                        {
                            ctx.memory.cache_shows(
                                &uid,
                                status,
                                obj.meta().resource_version.as_deref(),
                            );
                        }
                        if phase == crate::resource::Phase::Shared
                            && !awaited.is_empty()
                            && let Some(namespace) = obj.namespace()
                            && awaited.iter().any(|(ns, secret)| {
                                *ns == namespace && cached::secret_digest(secret) == facts.secret
                            })
                            && let Ok(share) = obj.share()
                        {
                            let secret = (namespace, share.spec.secret_ref.name);
                            if awaited.contains(&secret) {
                                shared_of_awaited
                                    .entry(secret)
                                    .or_default()
                                    .insert(uid.clone());
                            }
                        }
                        let shared_at = facts.shared_at.clone();
                        cached.insert(uid, live_slots::Cached { phase, shared_at });
                    }
                }
            }
            // A share waiting for a live-link slot goes as soon as one is free: its failure's
            // backoff no longer holds it back (the resource is unchanged, but its turn came).
            for woken in ctx.live_slots.prune(&cached, &shared_of_awaited, read_at) {
                ctx.memory.lift_hold(&woken.uid);
                ctx.checks.wake_now(woken.share);
            }
            ctx.metrics.set_links_expiring_unread(expiring);
            if let Some(notifier) = notifier {
                notifier.check_expiring_unread(live_links);
            }
            ctx.known_keys
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|_, at| at.elapsed() < KNOWN_KEY_TTL);
            if ctx.config.sweep_orphans
                && last_sweep.elapsed() >= ctx.config.sweep_interval
                && ctx.caches_ready.load(std::sync::atomic::Ordering::Relaxed)
            {
                last_sweep = Instant::now();
                if let Err(e) = orphans::sweep(&ctx).await {
                    tracing::warn!(error = %e, "orphan sweep failed");
                }
            }
            // Every 5 minutes: records of resources deleted without a finalizer (Keep).
            if ticks.is_multiple_of(60)
                && ctx.caches_ready.load(std::sync::atomic::Ordering::Relaxed)
            {
                match ctx
                    .records
                    .collect_garbage(&ctx.config.namespaces, &live, RECORD_GRACE)
                    .await
                {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(records = n, "deleted the records of deleted shares"),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not collect the records of deleted shares")
                    }
                }
            }
            ctx.metrics
                .set_phase_counts(counts.iter().map(|(p, n)| (*p, *n)));
            // Only a complete cache may say what is gone: before it lists everything, forgetting
            // would drop what the records index told (and could lead to a second share).
            if ctx.caches_ready.load(std::sync::atomic::Ordering::Relaxed) {
                ctx.memory.retain(&live);
                ctx.tracker.retain(&live);
            }
            let shared = counts
                .get(&crate::resource::Phase::Shared)
                .copied()
                .unwrap_or(0);
            ctx.live_links
                .store(shared.max(0) as usize, std::sync::atomic::Ordering::Relaxed);
        }
    };
    tokio::select! {
        _ = work => {}
        _ = shutdown => {}
    }
}

#[cfg(test)]
mod reconcile_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_warning_reason_has_an_action() {
        assert_eq!(action_of(Reason::BurnFailed), "Burn");
        assert_eq!(action_of(Reason::SecretNotFound), "Share");
        assert_eq!(action_of(Reason::Reshared), "Reshare");
        assert_eq!(action_of(Reason::Generated), "Generate");
        assert_eq!(action_of(Reason::SecretNotOwned), "Share");
    }
}
