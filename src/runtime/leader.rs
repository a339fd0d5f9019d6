//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several replicas only one reconciles.
//!
//! kube 5 has no elector of its own. `kube-lease-manager` (0.13, on kube 5) was considered and not
//! used: a standby sleeps until the lease's expiry even when the leader releases it (handover would take
//! up to the lease duration, not the two seconds we promise on SIGTERM), a leader whose renewals fail
//! keeps reporting itself leader, and expiry is judged by comparing clocks across nodes.
//!
//! This elector follows client-go's rules:
//! - Expiry is judged on the local monotonic clock: a lease is expired when its `resourceVersion` has
//!   not changed for `leaseDurationSeconds` since this process first saw that version. Clock skew
//!   between nodes does not matter.
//! - Every write is a `replace` guarded by the `resourceVersion` last read, so of two candidates
//!   acquiring at once exactly one wins; the other gets a conflict and stays standby.
//! - The leader renews every `lease_duration / 3`, retrying every `retry_period` after a failure, and
//!   stops leading once `renew_deadline` (`2/3` of the duration) has passed since the start of its last
//!   successful renewal. A standby cannot take over before a full lease duration after it saw that
//!   renewal, so there is always at least `lease_duration / 3` during which nobody leads, never two.
//! - On shutdown the leader clears `holderIdentity`; standbys poll every `retry_period` (at most 1 s),
//!   so one of them leads about a second later.
//!
//! With the default 15 s lease, a standby takes over a dead leader between 15 and about 16 s after the
//! dead leader's last renewal.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use rand::Rng as _;
use rand::distr::Alphanumeric;
use tokio::sync::watch;
use tokio::time::{Instant, sleep, timeout};

use crate::runtime::readiness::LeaderState;

/// Default lease duration: a dead leader is replaced after about this long.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);

/// Longest time to wait for the lease to be released on shutdown.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the lease lives, who we are, and the timing derived from the lease duration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Namespace of the Lease (the operator's own namespace).
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This process's identity, unique among the replicas (see [`default_identity`]).
    pub identity: String,
    /// How long a lease stays valid without renewal (whole seconds, at least 3).
    pub lease_duration: Duration,
    /// How often the leader renews: `lease_duration / 3`.
    pub renew_interval: Duration,
    /// How long the leader keeps leading without a successful renewal: `2 * lease_duration / 3`.
    pub renew_deadline: Duration,
    /// How often a standby looks at the lease, and a failed call is retried: `lease_duration / 5`,
    /// at most 1 s.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// A configuration with [`DEFAULT_LEASE_DURATION`].
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::ZERO,
            renew_interval: Duration::ZERO,
            renew_deadline: Duration::ZERO,
            retry_period: Duration::ZERO,
        }
        .with_lease_duration(DEFAULT_LEASE_DURATION)
    }

    /// Sets the lease duration (rounded down to whole seconds, at least 3 s) and the timings derived
    /// from it.
    pub fn with_lease_duration(mut self, duration: Duration) -> Self {
        let duration = Duration::from_secs(duration.as_secs().max(3));
        self.lease_duration = duration;
        self.renew_interval = duration / 3;
        self.renew_deadline = duration * 2 / 3;
        self.retry_period = (duration / 5).min(Duration::from_secs(1));
        self
    }

    fn lease_duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }
}

/// `$POD_NAME` (or `$HOSTNAME`, or `ots-operator`) plus a random suffix, so a restarted process never
/// mistakes its predecessor's lease for its own.
pub fn default_identity() -> String {
    let base = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "ots-operator".to_owned());
    let suffix: String = rand::rng()
        .sample_iter(Alphanumeric)
        .take(6)
        .map(|c| char::from(c).to_ascii_lowercase())
        .collect();
    format!("{base}-{suffix}")
}

/// Why a Lease call failed.
#[derive(Debug, thiserror::Error)]
enum StoreError {
    /// Someone else wrote the Lease since we read it (or created it first).
    #[error("the lease was changed by someone else")]
    Conflict,
    /// The API server refused or could not be reached.
    #[error(transparent)]
    Kube(kube::Error),
    /// The call did not finish in time.
    #[error("the call timed out")]
    Timeout,
}

impl From<kube::Error> for StoreError {
    fn from(e: kube::Error) -> Self {
        match e {
            kube::Error::Api(s) if s.code == 409 => Self::Conflict,
            e => Self::Kube(e),
        }
    }
}

/// Where leases are read and written: the API server, or an in-memory stand-in for unit tests.
// One per process: the size of the API variant does not matter.
#[cfg_attr(test, allow(clippy::large_enum_variant))]
enum Store {
    Kube {
        api: Api<Lease>,
        name: String,
    },
    #[cfg(test)]
    Fake(tests::FakeStore),
}

impl Store {
    async fn get(&self) -> Result<Option<Lease>, StoreError> {
        match self {
            Self::Kube { api, name } => Ok(api.get_opt(name).await?),
            #[cfg(test)]
            Self::Fake(f) => f.get(),
        }
    }

    async fn create(&self, lease: &Lease) -> Result<Lease, StoreError> {
        match self {
            Self::Kube { api, .. } => Ok(api.create(&PostParams::default(), lease).await?),
            #[cfg(test)]
            Self::Fake(f) => f.create(lease),
        }
    }

    /// Replaces the lease; fails with a conflict unless `lease`'s `resourceVersion` is the current one.
    async fn replace(&self, lease: &Lease) -> Result<Lease, StoreError> {
        match self {
            Self::Kube { api, name } => {
                Ok(api.replace(name, &PostParams::default(), lease).await?)
            }
            #[cfg(test)]
            Self::Fake(f) => f.replace(lease),
        }
    }
}

/// Campaigns for the lease and keeps it; tells the controller through [`LeaderElector::leading`]
/// and publishes where it stands through [`LeaderElector::state`] (the caller wires both to
/// readiness and metrics).
pub struct LeaderElector {
    store: Store,
    config: LeaseConfig,
    state_tx: watch::Sender<LeaderState>,
    leading_tx: watch::Sender<bool>,
    /// The lease as last read or written.
    known: Option<Lease>,
    /// When `known`'s resourceVersion was first seen here.
    observed_at: Instant,
    leading: bool,
    /// Start of the last successful acquire or renew request.
    renewed_at: Instant,
    /// Last successful call of any kind.
    last_ok: Instant,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field("config", &self.config)
            .field("leading", &self.leading)
            .finish_non_exhaustive()
    }
}

impl LeaderElector {
    /// An elector for the Lease `config.namespace/config.name` (created on first use). Needs RBAC
    /// `get`, `create`, `update` on `leases` in that namespace.
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        let store = Store::Kube {
            api: Api::namespaced(client, &config.namespace),
            name: config.name.clone(),
        };
        Self::with_store(store, config)
    }

    fn with_store(store: Store, config: LeaseConfig) -> Self {
        let now = Instant::now();
        Self {
            store,
            config,
            // Unhealthy until the lease has been looked at.
            state_tx: watch::channel(LeaderState::Unhealthy).0,
            leading_tx: watch::channel(false).0,
            known: None,
            observed_at: now,
            leading: false,
            renewed_at: now,
            last_ok: now,
        }
    }

    /// `true` while this process holds the lease and may reconcile. It turns `false` before the lease
    /// could be taken by anyone else; stop reconciling at once when it does.
    pub fn leading(&self) -> watch::Receiver<bool> {
        self.leading_tx.subscribe()
    }

    /// Where this process stands in the election: `Unhealthy` until the lease has been looked at
    /// (and whenever it cannot be read or renewed for `renew_deadline`), then `Leading` or
    /// `Standby`; `Unhealthy` again once the elector has stopped. Readiness follows it.
    pub fn state(&self) -> watch::Receiver<LeaderState> {
        self.state_tx.subscribe()
    }

    /// Publishes `state`; subscribers hear of changes only.
    fn set_state(&self, state: LeaderState) {
        self.state_tx.send_if_modified(|current| {
            let changed = *current != state;
            *current = state;
            changed
        });
    }

    /// Campaigns and renews until `shutdown` completes, then stops leading and releases the lease.
    ///
    /// Resolve `shutdown` once the controller has stopped and its in-flight reconciles have finished, so
    /// the next leader never works on an object at the same time.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let shutdown = std::pin::pin!(shutdown);
        let mut shutdown = shutdown;
        tracing::info!(identity = %self.config.identity, lease = %self.config.name, "starting leader election");
        loop {
            let wait = tokio::select! {
                biased;
                () = &mut shutdown => break,
                wait = self.tick() => wait,
            };
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                () = sleep(wait) => {}
            }
        }
        self.release().await;
    }

    /// One step of the election; returns how long to wait before the next.
    async fn tick(&mut self) -> Duration {
        let start = Instant::now();
        if self.leading {
            let deadline = self.renewed_at + self.config.renew_deadline;
            if start >= deadline {
                self.step_down("the lease could not be renewed in time");
            } else if let Some(known) = &self.known {
                let renewal = self.renewal(known.clone(), false);
                match timeout(deadline - start, self.store.replace(&renewal)).await {
                    Ok(Ok(lease)) => {
                        self.now_leading(lease, start);
                        return self.config.renew_interval;
                    }
                    // Someone else wrote the lease: read it afresh and decide below.
                    Ok(Err(StoreError::Conflict)) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "renewing the leader lease failed");
                        self.call_failed(start);
                        return self.config.retry_period.min(deadline - start);
                    }
                    Err(_) => {
                        self.step_down("renewing the lease timed out");
                        return Duration::ZERO;
                    }
                }
            }
        }

        let lease = match timeout(self.config.renew_interval, self.store.get()).await {
            Ok(Ok(lease)) => lease,
            Ok(Err(e)) => return self.failed(start, &e),
            Err(_) => return self.failed(start, &StoreError::Timeout),
        };
        self.last_ok = start;
        let Some(lease) = lease else {
            let fresh = self.renewal(
                Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: None,
                },
                true,
            );
            return self.try_write(self.store.create(&fresh).await, start);
        };

        let now = Instant::now();
        self.observe(lease.clone(), now);
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.filter(|h| !h.is_empty());
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.config.lease_duration, Duration::from_secs);
        let ours = holder.as_deref() == Some(self.config.identity.as_str());
        let expired = now >= self.observed_at + duration;

        if ours || holder.is_none() || expired {
            let next = self.renewal(lease, !ours);
            self.try_write(self.store.replace(&next).await, start)
        } else {
            if self.leading {
                self.step_down("another process holds the lease");
            }
            self.set_state(LeaderState::Standby);
            self.config.retry_period
        }
    }

    /// Outcome of an acquire: leading on success, standby on a lost race.
    fn try_write(&mut self, result: Result<Lease, StoreError>, start: Instant) -> Duration {
        match result {
            Ok(lease) => {
                self.now_leading(lease, start);
                self.config.renew_interval
            }
            Err(StoreError::Conflict) => {
                if self.leading {
                    self.step_down("another process took the lease");
                }
                self.set_state(LeaderState::Standby);
                // Read the winner's lease right away, so its version is timed from now.
                Duration::ZERO
            }
            Err(e) => self.failed(start, &e),
        }
    }

    fn failed(&mut self, start: Instant, e: &StoreError) -> Duration {
        tracing::warn!(error = %e, "leader election call failed");
        self.call_failed(start);
        self.config.retry_period
    }

    fn call_failed(&mut self, now: Instant) {
        if now.duration_since(self.last_ok) >= self.config.renew_deadline {
            self.set_state(LeaderState::Unhealthy);
        }
        if self.leading && now >= self.renewed_at + self.config.renew_deadline {
            self.step_down("the lease could not be renewed in time");
        }
    }

    /// Remembers `lease`; a new resourceVersion restarts the expiry clock.
    fn observe(&mut self, lease: Lease, now: Instant) {
        let version =
            |l: &Option<Lease>| l.as_ref().and_then(|l| l.metadata.resource_version.clone());
        let fresh = Some(lease);
        if version(&self.known) != version(&fresh) || self.known.is_none() {
            self.observed_at = now;
        }
        self.known = fresh;
    }

    /// `lease` with us as holder and a fresh renew time; `acquiring` also sets the acquire time and
    /// counts a transition.
    fn renewal(&self, mut lease: Lease, acquiring: bool) -> Lease {
        let now = Some(MicroTime(Timestamp::now()));
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if acquiring {
            spec.acquire_time.clone_from(&now);
            // A new Lease starts at 0; every later change of holder (also after a release) counts one.
            spec.lease_transitions =
                Some(spec.lease_transitions.map_or(0, |n| n.saturating_add(1)));
        }
        spec.holder_identity = Some(self.config.identity.clone());
        spec.lease_duration_seconds = Some(self.config.lease_duration_seconds());
        spec.renew_time = now;
        lease
    }

    fn now_leading(&mut self, lease: Lease, start: Instant) {
        self.known = Some(lease);
        self.observed_at = start;
        self.renewed_at = start;
        self.last_ok = start;
        self.set_state(LeaderState::Leading);
        if !self.leading {
            self.leading = true;
            self.leading_tx.send_replace(true);
            tracing::info!(identity = %self.config.identity, "became leader");
        }
    }

    fn step_down(&mut self, why: &'static str) {
        if self.leading {
            self.leading = false;
            self.leading_tx.send_replace(false);
            tracing::warn!(identity = %self.config.identity, why, "stopped leading");
        }
    }

    /// Stops leading and clears the holder, so a standby can take over at once.
    async fn release(&mut self) {
        let was_leading = self.leading;
        self.step_down("shutting down");
        self.set_state(LeaderState::Unhealthy);
        if !was_leading {
            return;
        }
        match timeout(RELEASE_TIMEOUT, self.clear_holder()).await {
            Ok(Ok(())) => {
                tracing::info!(identity = %self.config.identity, "released the leader lease")
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not release the leader lease; it expires on its own")
            }
            Err(_) => tracing::warn!("releasing the leader lease timed out; it expires on its own"),
        }
    }

    async fn clear_holder(&mut self) -> Result<(), StoreError> {
        let mut lease = self.known.clone();
        for _ in 0..3 {
            let Some(mut current) = lease.take() else {
                lease = self.store.get().await?;
                if lease.is_none() {
                    return Ok(());
                }
                continue;
            };
            let spec = current.spec.get_or_insert_with(LeaseSpec::default);
            if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
                return Ok(());
            }
            spec.holder_identity = None;
            spec.acquire_time = None;
            spec.renew_time = Some(MicroTime(Timestamp::now()));
            match self.store.replace(&current).await {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict) => lease = None,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    /// One Lease in memory, with resourceVersion checks like the API server's.
    #[derive(Default)]
    pub(super) struct FakeApi {
        lease: Mutex<Option<Lease>>,
        version: AtomicU64,
    }

    impl FakeApi {
        fn holder(&self) -> Option<String> {
            let lease = self.lease.lock().unwrap();
            lease.as_ref()?.spec.as_ref()?.holder_identity.clone()
        }

        fn transitions(&self) -> Option<i32> {
            let lease = self.lease.lock().unwrap();
            lease.as_ref()?.spec.as_ref()?.lease_transitions
        }

        /// Writes `holder` as if another program took the lease.
        fn force_holder(&self, holder: &str) {
            let mut lease = self.lease.lock().unwrap();
            let l = lease.as_mut().unwrap();
            l.spec.as_mut().unwrap().holder_identity = Some(holder.to_owned());
            let v = self.version.fetch_add(1, Ordering::SeqCst) + 1;
            l.metadata.resource_version = Some(v.to_string());
        }
    }

    /// One elector's connection to the [`FakeApi`]; `down` makes every call fail.
    pub(super) struct FakeStore {
        api: Arc<FakeApi>,
        down: Arc<AtomicBool>,
    }

    impl FakeStore {
        fn check(&self) -> Result<(), StoreError> {
            if self.down.load(Ordering::SeqCst) {
                Err(StoreError::Kube(kube::Error::Api(
                    kube::core::Status::failure("unreachable", "ServiceUnavailable")
                        .with_code(503)
                        .boxed(),
                )))
            } else {
                Ok(())
            }
        }

        fn stamp(&self, mut lease: Lease) -> Lease {
            let v = self.api.version.fetch_add(1, Ordering::SeqCst) + 1;
            lease.metadata.resource_version = Some(v.to_string());
            lease
        }

        pub(super) fn get(&self) -> Result<Option<Lease>, StoreError> {
            self.check()?;
            Ok(self.api.lease.lock().unwrap().clone())
        }

        pub(super) fn create(&self, lease: &Lease) -> Result<Lease, StoreError> {
            self.check()?;
            let mut current = self.api.lease.lock().unwrap();
            if current.is_some() {
                return Err(StoreError::Conflict);
            }
            let stored = self.stamp(lease.clone());
            *current = Some(stored.clone());
            Ok(stored)
        }

        pub(super) fn replace(&self, lease: &Lease) -> Result<Lease, StoreError> {
            self.check()?;
            let mut current = self.api.lease.lock().unwrap();
            let Some(existing) = current.as_ref() else {
                return Err(StoreError::Kube(kube::Error::Api(
                    kube::core::Status::failure("not found", "NotFound")
                        .with_code(404)
                        .boxed(),
                )));
            };
            if existing.metadata.resource_version != lease.metadata.resource_version {
                return Err(StoreError::Conflict);
            }
            let stored = self.stamp(lease.clone());
            *current = Some(stored.clone());
            Ok(stored)
        }
    }

    struct Candidate {
        leading: watch::Receiver<bool>,
        state: watch::Receiver<LeaderState>,
        down: Arc<AtomicBool>,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        task: tokio::task::JoinHandle<()>,
    }

    fn config(identity: &str) -> LeaseConfig {
        LeaseConfig::new("ots-system", "ots-operator", identity)
    }

    fn candidate(api: &Arc<FakeApi>, identity: &str) -> Candidate {
        let down = Arc::new(AtomicBool::new(false));
        let store = Store::Fake(FakeStore {
            api: api.clone(),
            down: down.clone(),
        });
        let elector = LeaderElector::with_store(store, config(identity));
        let leading = elector.leading();
        let state = elector.state();
        assert_eq!(
            *state.borrow(),
            LeaderState::Unhealthy,
            "before the lease is read"
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(elector.run(async {
            let _ = stopped.await;
        }));
        Candidate {
            leading,
            state,
            down,
            stop: Some(stop),
            task,
        }
    }

    impl Candidate {
        fn is_leading(&self) -> bool {
            *self.leading.borrow()
        }

        /// The state the elector published last.
        fn state(&self) -> LeaderState {
            *self.state.borrow()
        }

        async fn shut_down(&mut self) {
            if let Some(stop) = self.stop.take() {
                let _ = stop.send(());
            }
            (&mut self.task).await.unwrap();
        }
    }

    const STEP: Duration = Duration::from_millis(50);

    /// Advances virtual time in 50 ms steps until `cond` holds, checking at every step that no two
    /// candidates lead at once; returns the time it took.
    async fn until(
        candidates: &[&Candidate],
        limit: Duration,
        cond: impl Fn() -> bool,
    ) -> Duration {
        let start = Instant::now();
        loop {
            let leaders = candidates.iter().filter(|c| c.is_leading()).count();
            assert!(leaders <= 1, "{leaders} leaders at once");
            if cond() {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "condition not met within {limit:?}"
            );
            sleep(STEP).await;
        }
    }

    /// Lets `span` of virtual time pass, checking at every step that no two candidates lead at once.
    async fn hold(candidates: &[&Candidate], span: Duration) {
        let start = Instant::now();
        while start.elapsed() < span {
            let leaders = candidates.iter().filter(|c| c.is_leading()).count();
            assert!(leaders <= 1, "{leaders} leaders at once");
            sleep(STEP).await;
        }
    }

    /// Starts `a`, waits until it leads, then starts `b`.
    async fn leader_and_standby(api: &Arc<FakeApi>) -> (Candidate, Candidate) {
        let a = candidate(api, "a");
        until(&[&a], Duration::from_secs(2), || a.is_leading()).await;
        let b = candidate(api, "b");
        hold(&[&a, &b], Duration::from_secs(2)).await;
        (a, b)
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_candidate_creates_the_lease_and_leads() {
        let api = Arc::new(FakeApi::default());
        let a = candidate(&api, "a");
        until(&[&a], Duration::from_secs(2), || a.is_leading()).await;
        assert_eq!(api.holder().as_deref(), Some("a"));
        assert_eq!(api.transitions(), Some(0));
        let lease = api.lease.lock().unwrap().clone().unwrap();
        assert_eq!(lease.spec.unwrap().lease_duration_seconds, Some(15));
        assert_eq!(a.state(), LeaderState::Leading);
    }

    #[tokio::test(start_paused = true)]
    async fn of_two_candidates_exactly_one_leads_and_keeps_leading() {
        let api = Arc::new(FakeApi::default());
        let a = candidate(&api, "a");
        let b = candidate(&api, "b");
        until(&[&a, &b], Duration::from_secs(5), || {
            a.is_leading() || b.is_leading()
        })
        .await;
        let (leader, standby) = if a.is_leading() { (&a, &b) } else { (&b, &a) };
        hold(&[&a, &b], Duration::from_secs(60)).await;
        assert!(leader.is_leading());
        assert!(!standby.is_leading());
        assert_eq!(leader.state(), LeaderState::Leading);
        assert_eq!(standby.state(), LeaderState::Standby);
    }

    #[tokio::test(start_paused = true)]
    async fn a_released_lease_is_taken_over_within_two_seconds() {
        let api = Arc::new(FakeApi::default());
        let (mut a, b) = leader_and_standby(&api).await;
        a.shut_down().await;
        assert!(!a.is_leading());
        assert_eq!(
            a.state(),
            LeaderState::Unhealthy,
            "a stopped elector is not ready"
        );
        assert_eq!(api.holder(), None);
        let took = until(&[&a, &b], Duration::from_secs(5), || b.is_leading()).await;
        assert!(took <= Duration::from_secs(2), "handover took {took:?}");
        assert_eq!(api.holder().as_deref(), Some("b"));
        assert_eq!(api.transitions(), Some(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_leader_that_cannot_renew_steps_down_before_the_standby_takes_over() {
        let api = Arc::new(FakeApi::default());
        let (a, b) = leader_and_standby(&api).await;
        let cfg = config("a");
        a.down.store(true, Ordering::SeqCst);
        // `until` also proves the two never lead at once.
        let stepped_down = until(&[&a, &b], cfg.lease_duration, || !a.is_leading()).await;
        assert!(
            stepped_down <= cfg.renew_deadline,
            "stepped down after {stepped_down:?}"
        );
        let took = until(&[&a, &b], cfg.lease_duration * 2, || b.is_leading()).await + stepped_down;
        assert!(
            took <= cfg.lease_duration + cfg.retry_period + STEP,
            "takeover after {took:?}"
        );
        assert_eq!(a.state(), LeaderState::Unhealthy);

        // Once it can reach the API again, the old leader stands by.
        a.down.store(false, Ordering::SeqCst);
        until(&[&a, &b], Duration::from_secs(5), || {
            a.state() == LeaderState::Standby
        })
        .await;
        assert!(b.is_leading());
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_left_by_a_dead_holder_is_taken_after_the_lease_duration() {
        let api = Arc::new(FakeApi::default());
        let ghost = FakeStore {
            api: api.clone(),
            down: Arc::new(AtomicBool::new(false)),
        };
        let elector = LeaderElector::with_store(Store::Fake(ghost), config("ghost"));
        let lease = elector.renewal(
            Lease {
                metadata: ObjectMeta {
                    name: Some("ots-operator".into()),
                    ..ObjectMeta::default()
                },
                spec: None,
            },
            true,
        );
        let Store::Fake(ghost) = &elector.store else {
            unreachable!()
        };
        ghost.create(&lease).unwrap();

        let b = candidate(&api, "b");
        hold(&[&b], Duration::from_secs(14)).await;
        assert!(!b.is_leading(), "took a live-looking lease early");
        assert_eq!(b.state(), LeaderState::Standby);
        until(&[&b], Duration::from_secs(3), || b.is_leading()).await;
        assert_eq!(api.transitions(), Some(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_leader_whose_lease_is_taken_by_another_writer_stops_leading() {
        let api = Arc::new(FakeApi::default());
        let a = candidate(&api, "a");
        until(&[&a], Duration::from_secs(2), || a.is_leading()).await;
        api.force_holder("intruder");
        let took = until(&[&a], Duration::from_secs(10), || !a.is_leading()).await;
        assert!(took <= config("a").renew_interval + STEP, "{took:?}");
        assert_eq!(a.state(), LeaderState::Standby);
        assert_eq!(api.holder().as_deref(), Some("intruder"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_standby_that_shuts_down_leaves_the_lease_alone() {
        let api = Arc::new(FakeApi::default());
        let (a, mut b) = leader_and_standby(&api).await;
        b.shut_down().await;
        assert_eq!(api.holder().as_deref(), Some("a"));
        assert!(a.is_leading());
    }

    #[test]
    fn timings_derive_from_the_lease_duration() {
        let c = config("a");
        assert_eq!(c.lease_duration, Duration::from_secs(15));
        assert_eq!(c.renew_interval, Duration::from_secs(5));
        assert_eq!(c.renew_deadline, Duration::from_secs(10));
        assert_eq!(c.retry_period, Duration::from_secs(1));
        let short = config("a").with_lease_duration(Duration::from_millis(500));
        assert_eq!(short.lease_duration, Duration::from_secs(3));
        assert_eq!(short.retry_period, Duration::from_millis(600));
    }

    #[test]
    fn default_identities_differ_between_processes() {
        assert_ne!(default_identity(), default_identity());
    }
}
