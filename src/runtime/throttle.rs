//! Being gentle with the Onetime Secret servers: every OTS call goes through one door,
//! [`Throttle::call`].
//!
//! Two limits apply to all calls of the process together, whichever resource or server they serve:
//! - a token bucket: at most `burst` calls at once after a quiet spell, then `rate` calls per second;
//! - a cap on calls in flight (waiting in the throttle or on the wire).
//!
//! One limit applies per server (keyed by the server's origin, `scheme://host:port`): when a server
//! answers 429 (or any answer with `Retry-After`), no call to *that server* is sent until that time has
//! passed, and its calls then resume at the steady rate, not as a burst. Calls to other servers go on
//! as before: one server's rate limit must not hold back burns on a healthy one.
//!
//! A server object may set a lower limit of its own (`rateLimit`): [`Throttle::set_server_rate`]
//! gives a server its own bucket, and a call to it goes only when both that bucket and the
//! process-wide one have a slot. A call waiting for its server's bucket keeps its place in the
//! queue but holds back nobody: the next turn goes to the first waiting call whose server may be
//! called now, in the order below.
//!
//! Calls that wait take turns, and the budget is shared fairly among tenants: each waits with a
//! [`Turn`], its namespace and [`Class`]. A deletion's burn ([`Turn::revoke`]) goes before every
//! other waiting call; otherwise the namespaces take turns, first come first served within one
//! (see [`crate::runtime::fair`]). So one tenant's backlog of hundreds of shares or reissues delays
//! another tenant's call by at most one call per namespace that is waiting too, and a burn that
//! takes a live link back waits only for other burns. A turn is decided when a slot is free, never
//! reserved ahead, so a burn that comes behind a queue takes the very next slot. Background calls
//! ([`IfFree`]) go only when nobody waits.
//!
//! The throttle does not retry. A failed call goes back to the controller, which requeues the resource
//! with capped, jittered backoff (see [`crate::backoff`]); the retry then passes through the throttle
//! again, so even a long outage cannot drive the request rate above `rate`.
//!
//! The bucket is a few lines of GCRA over `tokio::time::Instant` rather than the `governor` crate:
//! governor keeps its own clock and timer, which would make the behaviour impossible to test with
//! tokio's paused clock, and the pause must reshape a bucket, which governor does not allow.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, SemaphorePermit};
use tokio::time::{Instant, sleep_until};

pub use crate::runtime::fair::Class;
use crate::runtime::fair::{FairQueue, TicketId};
use crate::runtime::metrics::{Metrics, StatusClass};

/// What the throttle needs to know about a failed OTS call. The OTS client's error implements it.
pub trait UpstreamFailure {
    /// How the call ended, for the request metric.
    fn status_class(&self) -> StatusClass;
    /// The server's `Retry-After`, when it sent one.
    fn retry_after(&self) -> Option<Duration>;
}

/// Limits for calls to the OTS server.
#[derive(Clone, Debug, PartialEq)]
pub struct ThrottleConfig {
    /// Steady calls per second (`--ots-rate`).
    ///
    /// Default 2/s: the public service publishes no API limit for its edge, and its v1 API allows an
    /// anonymous IP 1,000 creates per 20 minutes (0.83/s). Two calls a second shares 100 resources in
    /// under a minute, keeps receipt polling of thousands of links cheap for the server, and a
    /// sustained excess of anonymous creates meets the server's own limit, which the pause handles.
    pub rate: f64,
    /// Calls allowed at once after a quiet spell (`--ots-burst`). Default 10: a handful of new
    /// resources is shared at once without being a burden.
    pub burst: u32,
    /// Calls waiting or in flight at once. Default 8.
    pub max_in_flight: usize,
    /// Pause after a 429 that carries no `Retry-After`. Default 5 s.
    pub default_pause: Duration,
    /// Longest pause honoured from one `Retry-After`, so a wrong header cannot stall the operator for
    /// days. Default 10 minutes.
    pub max_pause: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            rate: 2.0,
            burst: 10,
            max_in_flight: 8,
            default_pause: Duration::from_secs(5),
            max_pause: Duration::from_secs(600),
        }
    }
}

/// A [`ThrottleConfig`] that cannot work.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ThrottleConfigError {
    /// The rate is not a positive number of calls per second (at most one million).
    #[error("OTS rate must be a positive number of requests per second up to 1000000, got {0}")]
    Rate(f64),
    /// The burst is 0.
    #[error("OTS burst must be at least 1")]
    Burst,
    /// The in-flight cap is 0.
    #[error("the number of OTS calls in flight must be at least 1")]
    InFlight,
}

/// Generic cell rate algorithm: `next` is when the bucket would be empty again if no call came.
#[derive(Debug, Clone)]
struct TokenBucket {
    interval: Duration,
    /// How far `next` may run ahead of now: `(burst - 1) * interval`.
    tolerance: Duration,
    next: Instant,
}

impl TokenBucket {
    /// When the next slot at or after `now` is, without taking it.
    fn free_at(&self, now: Instant) -> Instant {
        let next = self.next.max(now);
        next.checked_sub(self.tolerance).map_or(now, |t| t.max(now))
    }

    /// Reserves the next slot at or after `now` and returns its time.
    fn reserve(&mut self, now: Instant) -> Instant {
        let at = self.free_at(now);
        self.next = self.next.max(now) + self.interval;
        at
    }

    /// Takes a slot only if one is free now; otherwise returns when the next one will be.
    fn try_reserve(&mut self, now: Instant) -> Result<(), Instant> {
        let at = self.free_at(now);
        if at > now {
            return Err(at);
        }
        self.next = self.next.max(now) + self.interval;
        Ok(())
    }

    /// Empties the bucket as of `at`: the first slot is `at`, then one per interval.
    fn drain_until(&mut self, at: Instant) {
        self.next = self.next.max(at + self.tolerance);
    }

    /// Whether the bucket is full again as of `now` (a whole burst could go out).
    fn is_full(&self, now: Instant) -> bool {
        self.next <= now
    }
}

/// A server that asked to slow down: nothing goes to it before `until`, and afterwards its calls
/// pass its own bucket, drained as of `until`, so they resume at the steady rate. Dropped once the
/// pause is over and the bucket is full again.
#[derive(Debug)]
struct ServerPause {
    until: Instant,
    bucket: TokenBucket,
}

/// A server's own limit (a server object's `rateLimit`): steady calls per second, and calls
/// allowed at once after a quiet spell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServerRate {
    /// Steady calls per second, positive.
    pub rate: f64,
    /// Calls at once after a quiet spell, at least 1.
    pub burst: u32,
}

impl ServerRate {
    /// The stricter of two limits, field by field.
    fn min(self, other: ServerRate) -> ServerRate {
        ServerRate {
            rate: self.rate.min(other.rate),
            burst: self.burst.min(other.burst),
        }
    }

    /// A full bucket of this limit, or `None` for a limit that cannot work (never from a
    /// validated server object).
    fn bucket(self, now: Instant) -> Option<TokenBucket> {
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= 1_000_000.0)
            || self.burst == 0
        {
            return None;
        }
        let interval = Duration::from_secs_f64(1.0 / self.rate);
        Some(TokenBucket {
            interval,
            tolerance: interval * (self.burst - 1),
            next: now,
        })
    }
}

/// A call waiting for its turn: what wakes it, and the server it is for.
#[derive(Debug)]
struct Waiter {
    woken: Arc<Notify>,
    server: String,
    /// Its turn's lane: the namespace it calls for ([`OPERATOR_LANE`] for the operator's own).
    lane: String,
}

/// A limit and its bucket.
type Limit = (ServerRate, TokenBucket);

/// The limits server objects set on one server: a ClusterOtsServer's holds every call to it; an
/// OtsServer's only the calls made for its own namespace, so that a tenant's limit on a server
/// others use too slows that tenant alone.
#[derive(Debug, Default)]
struct Limits {
    all: Option<Limit>,
    by_namespace: HashMap<String, Limit>,
}

impl Limits {
    fn get(&self, namespace: Option<&str>) -> Option<&Limit> {
        match namespace {
            None => self.all.as_ref(),
            Some(ns) => self.by_namespace.get(ns),
        }
    }

    /// When a call for `lane` (`None`: for no namespace) may go as far as these limits go.
    fn free_at(&self, lane: Option<&str>, now: Instant) -> Instant {
        let all = self.all.as_ref().map(|(_, b)| b.free_at(now));
        let own = lane
            .and_then(|lane| self.by_namespace.get(lane))
            .map(|(_, b)| b.free_at(now));
        all.into_iter().chain(own).max().unwrap_or(now)
    }

    /// Takes the slot of a call for `lane` from every bucket that holds it.
    fn reserve(&mut self, lane: Option<&str>, now: Instant) {
        if let Some((_, bucket)) = &mut self.all {
            bucket.reserve(now);
        }
        if let Some((_, bucket)) = lane.and_then(|lane| self.by_namespace.get_mut(lane)) {
            bucket.reserve(now);
        }
    }

    fn is_empty(&self) -> bool {
        self.all.is_none() && self.by_namespace.is_empty()
    }
}

#[derive(Debug)]
struct State {
    /// The process-wide bucket.
    bucket: TokenBucket,
    /// Servers that asked to slow down, by [`server_key`].
    paused: HashMap<String, ServerPause>,
    /// The limits server objects set, by owner (an object's uid): its server's key, its
    /// namespace (`None`: a ClusterOtsServer) and limit.
    rate_owners: HashMap<String, (String, Option<String>, ServerRate)>,
    /// Servers with limits of their own, by [`server_key`]: per scope, the strictest limit of
    /// their owners and its bucket.
    limits: HashMap<String, Limits>,
    /// Calls waiting for their turn.
    queue: FairQueue<Waiter>,
    /// The call last told its turn is next, so that it is told when that changes (it may hold
    /// an in-flight permit another call now needs).
    next: Option<(TicketId, Arc<Notify>)>,
}

impl State {
    /// When the limits of `key` have the next slot for a call for `lane` (`None`: for no
    /// namespace), if that is later than `now`.
    fn limited_until(&self, key: &str, lane: Option<&str>, now: Instant) -> Option<Instant> {
        self.limits
            .get(key)
            .map(|limits| limits.free_at(lane, now))
            .filter(|at| *at > now)
    }

    /// The waiting call whose turn is next as of `now`: the first in turn order whose server's
    /// own limit lets it go.
    fn head(&self, now: Instant) -> Option<(TicketId, Arc<Notify>)> {
        let limits = &self.limits;
        self.queue
            .head_by(|w| {
                limits
                    .get(&w.server)
                    .is_none_or(|l| l.free_at(Some(&w.lane), now) <= now)
            })
            .map(|(id, w)| (id, w.woken.clone()))
    }

    /// Finds the call whose turn is next; when it changed, the one told before is woken (to let
    /// go of its permit). Returns it.
    fn refresh_next(&mut self, now: Instant) -> Option<(TicketId, Arc<Notify>)> {
        let head = self.head(now);
        let before = self.next.as_ref().map(|(id, _)| *id);
        if before != head.as_ref().map(|(id, _)| *id)
            && let Some((_, displaced)) = self.next.take()
        {
            displaced.notify_one();
        }
        self.next.clone_from(&head);
        head
    }

    /// Wakes the call whose turn is next, if one waits.
    fn wake_next(&mut self) {
        if let Some((_, woken)) = self.refresh_next(Instant::now()) {
            woken.notify_one();
        }
    }

    /// Wakes every waiting call to `key` (its limit's slot was taken, or the limit changed), so
    /// that each looks again when its turn can come.
    fn wake_server(&self, key: &str) {
        for waiter in self.queue.values().filter(|w| w.server == key) {
            waiter.woken.notify_one();
        }
    }

    /// Sets the bucket of `key` for `namespace` (`None`: every call) from the strictest limit
    /// its owners set (none: no bucket). A bucket whose limit changes keeps its debt, so a
    /// change cannot buy a fresh burst.
    fn apply_limit(&mut self, key: &str, namespace: Option<&str>, now: Instant) {
        let strictest = self
            .rate_owners
            .values()
            .filter(|(server, ns, _)| server == key && ns.as_deref() == namespace)
            .map(|(_, _, rate)| *rate)
            .reduce(ServerRate::min);
        let limits = self.limits.entry(key.to_owned()).or_default();
        let old = limits.get(namespace).cloned();
        if old.as_ref().map(|(rate, _)| *rate) == strictest {
            if limits.is_empty() {
                self.limits.remove(key);
            }
            return;
        }
        let new = strictest.and_then(|rate| {
            let mut bucket = rate.bucket(now)?;
            if let Some((_, old)) = old {
                bucket.next = old.next.max(now);
            }
            Some((rate, bucket))
        });
        match (namespace, new) {
            (None, new) => limits.all = new,
            (Some(ns), Some(new)) => {
                limits.by_namespace.insert(ns.to_owned(), new);
            }
            (Some(ns), None) => {
                limits.by_namespace.remove(ns);
            }
        }
        if limits.is_empty() {
            self.limits.remove(key);
        }
        self.wake_server(key);
        self.wake_next();
    }

    /// The pause record of a server, if it still matters as of `now`.
    fn server(&mut self, key: &str, now: Instant) -> Option<&mut ServerPause> {
        if self
            .paused
            .get(key)
            .is_some_and(|p| p.until <= now && p.bucket.is_full(now))
        {
            self.paused.remove(key);
        }
        self.paused.get_mut(key)
    }
}

#[derive(Debug)]
struct Shared {
    config: ThrottleConfig,
    interval: Duration,
    state: Mutex<State>,
    in_flight: Semaphore,
    metrics: Metrics,
}

/// A call [`Throttle::call`] with [`IfFree`] did not send, because it would have had to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy {
    /// When a slot is expected to be free.
    pub retry_in: Duration,
}

/// How a call waits for its turn at [`Throttle::call`]: [`Turn`] (or [`Wait`]) or [`IfFree`].
pub trait Patience: sealed::Sealed + Send {
    /// What [`Throttle::call`] answers for a call that ends in `Result<T, E>`.
    type Answer<T, E>;
    /// Why a call was not let through ([`Busy`]; a waiting call never is).
    #[doc(hidden)]
    type Refused;
    /// Takes the call's turn: the in-flight permit to hold while it runs, if any.
    #[doc(hidden)]
    fn admit<'a>(
        self,
        throttle: &'a Throttle,
        key: &'a str,
    ) -> impl Future<Output = Result<Option<SemaphorePermit<'a>>, Self::Refused>> + Send + 'a;
    /// The answer for a call that ran (`Ok`) or was refused.
    #[doc(hidden)]
    fn answer<T, E>(ran: Result<Result<T, E>, Self::Refused>) -> Self::Answer<T, E>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Wait {}
    impl Sealed for super::Turn {}
    impl Sealed for super::IfFree {}
}

/// The lane of calls made for no namespace (the orphan sweep): no namespace has an empty name.
const OPERATOR_LANE: &str = "";

/// Wait for a turn however long the limits say, in the lane of a resource's namespace, as its
/// class says: the patience of every call made for a resource (shares, burns, and what they need
/// first). See the module docs for the order turns are given in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    lane: String,
    class: Class,
}

impl Turn {
    /// A call of `class` for a resource of `namespace`.
    pub fn new(namespace: &str, class: Class) -> Self {
        Self {
            lane: namespace.to_owned(),
            class,
        }
    }

    /// The burn that takes a deleted resource's live link back: before every other waiting call.
    pub fn revoke(namespace: &str) -> Self {
        Self::new(namespace, Class::Revoke)
    }

    /// Any other call for a resource of `namespace`: shares, the burn and share of a reissue,
    /// reshare or renewal, and what they need first (the server's version, a credential check).
    pub fn share(namespace: &str) -> Self {
        Self::new(namespace, Class::Share)
    }

    /// A call the operator makes for no resource (the orphan sweep's): a lane of its own, as
    /// [`Class::Share`]. What [`Wait`] waits with.
    pub fn operator() -> Self {
        Self::new(OPERATOR_LANE, Class::Share)
    }
}

impl Patience for Turn {
    type Answer<T, E> = Result<T, E>;
    type Refused = Infallible;

    async fn admit<'a>(
        self,
        throttle: &'a Throttle,
        key: &'a str,
    ) -> Result<Option<SemaphorePermit<'a>>, Infallible> {
        Ok(throttle.wait_turn(key, &self).await)
    }

    fn answer<T, E>(ran: Result<Result<T, E>, Infallible>) -> Result<T, E> {
        Wait::answer(ran)
    }
}

/// Wait for a turn however long the limits say, as the operator itself: in a lane of its own,
/// as [`Class::Share`] (calls made for no resource, such as the orphan sweep's). A call made for
/// a resource waits with its [`Turn`] instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait;

impl Patience for Wait {
    type Answer<T, E> = Result<T, E>;
    type Refused = Infallible;

    async fn admit<'a>(
        self,
        throttle: &'a Throttle,
        key: &'a str,
    ) -> Result<Option<SemaphorePermit<'a>>, Infallible> {
        Ok(throttle.wait_turn(key, &Turn::operator()).await)
    }

    fn answer<T, E>(ran: Result<Result<T, E>, Infallible>) -> Result<T, E> {
        match ran {
            Ok(answer) => answer,
            Err(never) => match never {},
        }
    }
}

/// Go only on capacity nobody waits for, else answer [`Busy`] (background calls: link-state
/// checks, so they can never crowd out shares and burns, however many links are live).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfFree;

impl Patience for IfFree {
    type Answer<T, E> = Result<Result<T, E>, Busy>;
    type Refused = Busy;

    fn admit<'a>(
        self,
        throttle: &'a Throttle,
        key: &'a str,
    ) -> impl Future<Output = Result<Option<SemaphorePermit<'a>>, Busy>> + Send + 'a {
        std::future::ready(throttle.turn_if_free(key).map(Some))
    }

    fn answer<T, E>(ran: Result<Result<T, E>, Busy>) -> Result<Result<T, E>, Busy> {
        ran
    }
}

/// The key pauses are kept under: the origin (`scheme://host:port`) of a server's base URL, so
/// every path on one host shares the pause and no user info or path ever reaches a log line.
/// Text that is not an absolute URL is used as it is.
pub fn server_key(base_url: &str) -> String {
    match url::Url::parse(base_url) {
        Ok(url) if url.origin().is_tuple() => url.origin().ascii_serialization(),
        _ => base_url.trim_end_matches('/').to_owned(),
    }
}

/// The process-wide gate in front of the OTS servers. Cheap to clone; clones share all limits.
#[derive(Clone, Debug)]
pub struct Throttle {
    shared: Arc<Shared>,
}

impl Throttle {
    /// Builds the throttle; its waits and calls are recorded in `metrics`.
    pub fn new(config: ThrottleConfig, metrics: Metrics) -> Result<Self, ThrottleConfigError> {
        if !(config.rate.is_finite() && config.rate > 0.0 && config.rate <= 1_000_000.0) {
            return Err(ThrottleConfigError::Rate(config.rate));
        }
        if config.burst == 0 {
            return Err(ThrottleConfigError::Burst);
        }
        if config.max_in_flight == 0 {
            return Err(ThrottleConfigError::InFlight);
        }
        let interval = Duration::from_secs_f64(1.0 / config.rate);
        let bucket = TokenBucket {
            interval,
            tolerance: interval * (config.burst - 1),
            next: Instant::now(),
        };
        Ok(Self {
            shared: Arc::new(Shared {
                in_flight: Semaphore::new(config.max_in_flight),
                config,
                interval,
                state: Mutex::new(State {
                    bucket,
                    paused: HashMap::new(),
                    rate_owners: HashMap::new(),
                    limits: HashMap::new(),
                    queue: FairQueue::default(),
                    next: None,
                }),
                metrics,
            }),
        })
    }

    /// Steady calls per second (`--ots-rate`), the one copy of it.
    pub fn rate(&self) -> f64 {
        self.shared.config.rate
    }

    /// Sets (`Some`) or drops (`None`) the limit that `owner` (a server object, by uid) sets for
    /// calls to `server` (its base URL): for every call when `namespace` is `None` (a
    /// ClusterOtsServer), else for the calls made for that namespace (an OtsServer: a tenant's
    /// limit never slows another tenant's calls to a server they share). Calls go no faster
    /// than the strictest limit that holds them, and never faster than the process-wide one.
    pub fn set_server_rate(
        &self,
        owner: &str,
        server: &str,
        namespace: Option<&str>,
        rate: Option<ServerRate>,
    ) {
        let now = Instant::now();
        let mut state = self.state();
        let key = server_key(server);
        let before = match rate {
            Some(rate) => state.rate_owners.insert(
                owner.to_owned(),
                (key.clone(), namespace.map(str::to_owned), rate),
            ),
            None => state.rate_owners.remove(owner),
        };
        if let Some((old_key, old_namespace, _)) = before {
            state.apply_limit(&old_key, old_namespace.as_deref(), now);
        }
        if rate.is_some() {
            state.apply_limit(&key, namespace, now);
        }
    }

    /// Drops the limits of the owners `keep` refuses (server objects that are gone).
    pub fn retain_server_rates(&self, keep: impl Fn(&str) -> bool) {
        let now = Instant::now();
        let mut state = self.state();
        let gone: Vec<(String, String, Option<String>)> = state
            .rate_owners
            .iter()
            .filter(|(owner, _)| !keep(owner))
            .map(|(owner, (key, ns, _))| (owner.clone(), key.clone(), ns.clone()))
            .collect();
        for (owner, key, namespace) in gone {
            state.rate_owners.remove(&owner);
            state.apply_limit(&key, namespace.as_deref(), now);
        }
    }

    /// The limit a server object set for calls to `server` (a base URL) for `namespace`
    /// (`None`: for every call), if any.
    pub fn server_rate(&self, server: &str, namespace: Option<&str>) -> Option<ServerRate> {
        self.state()
            .limits
            .get(&server_key(server))
            .and_then(|limits| limits.get(namespace))
            .map(|(rate, _)| *rate)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The one door of every OTS call: runs `call` to `server` (its base URL) once the limits
    /// allow it, and records it as `operation` (a fixed name such as `share`, `receipt`, `burn`).
    ///
    /// `patience` says what happens when the limits say "not yet": a [`Turn`] (or [`Wait`]) waits
    /// its turn and answers the call's own `Result<T, E>`; [`IfFree`] sends nothing and answers
    /// `Err(`[`Busy`]`)` with when to try again.
    ///
    /// `call` must not have started its request yet (futures are lazy, so pass e.g.
    /// `client.share(..)` directly). A failure with `Retry-After`, or any 429, pauses every call to
    /// the same server.
    pub async fn call<P, T, E, F>(
        &self,
        server: &str,
        operation: &'static str,
        patience: P,
        call: F,
    ) -> P::Answer<T, E>
    where
        P: Patience,
        E: UpstreamFailure,
        F: Future<Output = Result<T, E>>,
    {
        let key = server_key(server);
        let _permit = match patience.admit(self, &key).await {
            Ok(permit) => permit,
            Err(refused) => return P::answer(Err(refused)),
        };
        P::answer(Ok(self.send(&key, operation, call).await))
    }

    /// Waits until it is `turn`'s turn and all limits let a call to `key` go; the in-flight
    /// permit it holds, if any.
    async fn wait_turn(&self, key: &str, turn: &Turn) -> Option<SemaphorePermit<'_>> {
        let queued = Instant::now();
        // A call waits out its server's pause outside the queue and without an in-flight permit:
        // calls held back by one server must not hold back calls to others.
        let permit = loop {
            self.wait_for_server(key).await;
            if let Some(permit) = self.take_turn(key, turn).await {
                break permit;
            }
        };
        let waited = queued.elapsed();
        if !waited.is_zero() {
            self.shared.metrics.limiter_waited(waited);
        }
        permit
    }

    /// Queues `turn` and waits until it is served: once it is the next turn, it holds an
    /// in-flight permit and the bucket has a slot *now* (`Some`, with the permit). `None` when
    /// its server is held back meanwhile (a pause began, or the server's recovering bucket has no
    /// slot): the call leaves the queue, so that calls to other servers go on.
    async fn take_turn(&self, key: &str, turn: &Turn) -> Option<Option<SemaphorePermit<'_>>> {
        let ticket = Ticket::queue(self, turn, key);
        // `Some` once the call holds a permit (`Some(None)`: the semaphore closed, which it never
        // does; the call would still be paced).
        let mut permit = None;
        loop {
            match self.try_serve(ticket.id, key, &turn.lane, permit.is_some()) {
                Serve::Go => return Some(permit.flatten()),
                Serve::NotNext(None) => {
                    // Another call's turn came first: the permit is for it.
                    permit = None;
                    ticket.woken.notified().await;
                }
                // Its server's own limit has no slot yet: it looks again then, or when woken.
                Serve::NotNext(Some(at)) => {
                    permit = None;
                    tokio::select! {
                        () = sleep_until(at) => {}
                        () = ticket.woken.notified() => {}
                    }
                }
                Serve::NeedsPermit => permit = Some(self.shared.in_flight.acquire().await.ok()),
                // Woken early when another call's turn comes first (a burn, say).
                Serve::At(at) => tokio::select! {
                    () = sleep_until(at) => {}
                    () = ticket.woken.notified() => {}
                },
                Serve::ServerHeld => return None,
            }
        }
    }

    /// Serves ticket `id` for a call to `key` if it is next and every limit allows it now.
    fn try_serve(&self, id: TicketId, key: &str, lane: &str, has_permit: bool) -> Serve {
        let now = Instant::now();
        let mut state = self.state();
        if state.refresh_next(now).map(|(head, _)| head) != Some(id) {
            return Serve::NotNext(state.limited_until(key, Some(lane), now));
        }
        if state
            .server(key, now)
            .is_some_and(|server| server.until > now || server.bucket.free_at(now) > now)
        {
            return Serve::ServerHeld;
        }
        if !has_permit {
            return Serve::NeedsPermit;
        }
        let at = state.bucket.free_at(now);
        if at > now {
            return Serve::At(at);
        }
        state.bucket.reserve(now);
        if let Some(server) = state.server(key, now) {
            server.bucket.reserve(now);
        }
        state.queue.serve(id);
        if let Some(limits) = state.limits.get_mut(key) {
            limits.reserve(Some(lane), now);
            // Its other calls now wait for the next slot: each arms its wake-up.
            state.wake_server(key);
        }
        state.wake_next();
        Serve::Go
    }

    /// Lets a call to `key` go only if it would not wait for a pause, the rate limit or an
    /// in-flight slot; otherwise [`Busy`] says when to try again.
    fn turn_if_free(&self, key: &str) -> Result<SemaphorePermit<'_>, Busy> {
        let now = Instant::now();
        if let Some(until) = self.paused_until(key, now) {
            return Err(Busy {
                retry_in: until - now,
            });
        }
        let Ok(permit) = self.shared.in_flight.try_acquire() else {
            return Err(Busy {
                retry_in: self.shared.interval,
            });
        };
        let mut state = self.state();
        // What is free now belongs to the calls waiting their turn (those whose server's own
        // limit holds them back want nothing now).
        if state.head(now).is_some() {
            return Err(Busy {
                retry_in: self.shared.interval,
            });
        }
        // Calls for no namespace (the batch tracker's) go by the limits of every call.
        if let Some(at) = state.limited_until(key, None, now) {
            return Err(Busy { retry_in: at - now });
        }
        // A server that is recovering from a pause has its own bucket; both must have a slot.
        let server_at = state.server(key, now).map(|s| s.bucket.free_at(now));
        if let Some(at) = server_at.filter(|at| *at > now) {
            return Err(Busy { retry_in: at - now });
        }
        if let Err(at) = state.bucket.try_reserve(now) {
            return Err(Busy { retry_in: at - now });
        }
        if let Some(server) = state.server(key, now) {
            server.bucket.reserve(now);
        }
        if let Some(limits) = state.limits.get_mut(key) {
            limits.reserve(None, now);
        }
        Ok(permit)
    }

    /// Sends one call and records it; a failure with `Retry-After`, or any 429, pauses its server.
    async fn send<T, E, F>(&self, key: &str, operation: &'static str, call: F) -> Result<T, E>
    where
        E: UpstreamFailure,
        F: Future<Output = Result<T, E>>,
    {
        let sent = Instant::now();
        let result = call.await;
        let latency = sent.elapsed();

        let class = match &result {
            Ok(_) => StatusClass::Success,
            Err(e) => {
                let class = e.status_class();
                match (e.retry_after(), class) {
                    (Some(after), _) => self.pause(key, operation, after),
                    (None, StatusClass::RateLimited) => {
                        self.pause(key, operation, self.shared.config.default_pause)
                    }
                    (None, _) => {}
                }
                class
            }
        };
        self.shared.metrics.ots_request(operation, class, latency);
        result
    }

    /// How long calls to `server` (a base URL) are still held back by its requested pause, if one
    /// is on.
    pub fn pause_remaining(&self, server: &str) -> Option<Duration> {
        let now = Instant::now();
        self.paused_until(&server_key(server), now)
            .map(|until| until - now)
    }

    /// Holds back every call to `server` (a base URL) for `after` (capped at `max_pause`) from now.
    pub fn pause(&self, server: &str, operation: &'static str, after: Duration) {
        let key = server_key(server);
        let after = after.min(self.shared.config.max_pause);
        let now = Instant::now();
        let until = now + after;
        {
            let mut state = self.state();
            let fresh = TokenBucket {
                interval: state.bucket.interval,
                tolerance: state.bucket.tolerance,
                next: now,
            };
            let entry = state.paused.entry(key.clone()).or_insert(ServerPause {
                until: now,
                bucket: fresh,
            });
            if entry.until >= until && entry.until > now {
                return;
            }
            entry.until = until;
            entry.bucket.drain_until(until);
        }
        self.shared.metrics.server_paused();
        tracing::warn!(
            server = %key,
            operation,
            pause_seconds = after.as_secs_f64(),
            "Onetime Secret server asked to slow down; holding back calls to it"
        );
    }

    fn paused_until(&self, key: &str, now: Instant) -> Option<Instant> {
        self.state()
            .server(key, now)
            .map(|p| p.until)
            .filter(|until| *until > now)
    }

    /// Sleeps until `key` has no pause on and, while it recovers from one, a slot in its own bucket
    /// is free. Takes nothing: several callers may wake for one slot, and [`Throttle::take_turn`]
    /// decides.
    async fn wait_for_server(&self, key: &str) {
        loop {
            let now = Instant::now();
            let free_at = match self.state().server(key, now) {
                Some(server) if server.until > now => server.until,
                Some(server) => server.bucket.free_at(now),
                None => now,
            };
            if free_at <= now {
                return;
            }
            sleep_until(free_at).await;
        }
    }
}

/// What [`Throttle::try_serve`] found.
#[derive(Debug)]
enum Serve {
    /// Served: the call goes now.
    Go,
    /// Another call's turn comes first; with when its server's own limit has a slot, when
    /// that is what holds it back.
    NotNext(Option<Instant>),
    /// Next, but it needs an in-flight permit first.
    NeedsPermit,
    /// Next, with a permit; the bucket's next slot is at this time.
    At(Instant),
    /// Next, but its server holds its calls back (a pause, or no slot while it recovers).
    ServerHeld,
}

/// A call's place in the queue. Dropped unserved (the call gave up, or its server held it back),
/// it leaves the queue and the next call's turn comes.
struct Ticket<'a> {
    throttle: &'a Throttle,
    id: TicketId,
    /// Notified when this call's turn may have come (or gone to a call that came later).
    woken: Arc<Notify>,
}

impl<'a> Ticket<'a> {
    /// Queues `turn`, a call to `key`. When it goes before the call that was next (a burn before
    /// shares), both are woken: the one to take its turn, the other to let go of its permit.
    fn queue(throttle: &'a Throttle, turn: &Turn, key: &str) -> Self {
        let woken = Arc::new(Notify::new());
        let mut state = throttle.state();
        let before = state.next.as_ref().map(|(id, _)| *id);
        let waiter = Waiter {
            woken: woken.clone(),
            server: key.to_owned(),
            lane: turn.lane.clone(),
        };
        let id = state.queue.push(turn.class, &turn.lane, waiter);
        if state.refresh_next(Instant::now()).map(|(head, _)| head) != before {
            state.wake_next();
        }
        drop(state);
        Ticket {
            throttle,
            id,
            woken,
        }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let mut state = self.throttle.state();
        if state.queue.remove(self.id).is_some() {
            state.wake_next();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug)]
    struct Failure {
        class: StatusClass,
        retry_after: Option<Duration>,
    }

    impl UpstreamFailure for Failure {
        fn status_class(&self) -> StatusClass {
            self.class
        }
        fn retry_after(&self) -> Option<Duration> {
            self.retry_after
        }
    }

    fn too_many(retry_after: Option<Duration>) -> Failure {
        Failure {
            class: StatusClass::RateLimited,
            retry_after,
        }
    }

    fn throttle(rate: f64, burst: u32, max_in_flight: usize) -> Throttle {
        let config = ThrottleConfig {
            rate,
            burst,
            max_in_flight,
            ..ThrottleConfig::default()
        };
        Throttle::new(config, Metrics::new()).unwrap()
    }

    /// Starts `n` calls at once; each returns the instant it was actually sent.
    async fn send_times(t: &Throttle, n: usize) -> Vec<Instant> {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let t = t.clone();
                tokio::spawn(async move {
                    t.call(A, "share", Wait, async { Ok::<_, Failure>(Instant::now()) })
                        .await
                })
            })
            .collect();
        let mut times = Vec::new();
        for task in tasks {
            times.push(task.await.unwrap().unwrap());
        }
        times.sort();
        times
    }

    const A: &str = "https://a.example";
    const B: &str = "https://b.example:8443/api/";

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test(start_paused = true)]
    async fn calls_beyond_the_burst_are_paced_at_the_configured_rate() {
        let t = throttle(2.0, 1, 100);
        let start = Instant::now();
        let times = send_times(&t, 5).await;
        let offsets: Vec<_> = times.iter().map(|at| *at - start).collect();
        assert_eq!(offsets, vec![ms(0), ms(500), ms(1000), ms(1500), ms(2000)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_goes_out_at_once_then_the_rate_applies() {
        let t = throttle(2.0, 10, 100);
        let start = Instant::now();
        let times = send_times(&t, 20).await;
        let at_once = times.iter().filter(|at| **at == start).count();
        assert_eq!(at_once, 10);
        for (i, at) in times.iter().enumerate().skip(10) {
            assert_eq!(*at - start, ms(500) * (i as u32 - 9), "call {i}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_spell_refills_the_bucket() {
        let t = throttle(2.0, 3, 100);
        send_times(&t, 3).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        let start = Instant::now();
        let times = send_times(&t, 3).await;
        assert!(times.iter().all(|at| *at == start));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_holds_back_every_call_to_that_server_until_it_has_passed() {
        let t = throttle(1.0, 1, 100);
        let start = Instant::now();

        // A is sent at once and, 100 ms later, told to come back in 10 s; B is queued behind A by then.
        let a = {
            let t = t.clone();
            tokio::spawn(async move {
                t.call(A, "share", Wait, async {
                    tokio::time::sleep(ms(100)).await;
                    Err::<Instant, _>(too_many(Some(Duration::from_secs(10))))
                })
                .await
            })
        };
        let b = {
            let t = t.clone();
            tokio::spawn(async move {
                t.call(A, "receipt", Wait, async {
                    Ok::<_, Failure>(Instant::now())
                })
                .await
            })
        };
        assert!(a.await.unwrap().is_err());
        assert_eq!(t.pause_remaining(A), Some(Duration::from_secs(10)));

        // C arrives during the pause.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let c = {
            let t = t.clone();
            tokio::spawn(async move {
                t.call(A, "burn", Wait, async { Ok::<_, Failure>(Instant::now()) })
                    .await
            })
        };

        let mut sent = vec![
            b.await.unwrap().unwrap() - start,
            c.await.unwrap().unwrap() - start,
        ];
        sent.sort();
        // Nothing before the pause ends, and the two resume at the steady rate, not together.
        assert_eq!(sent, vec![ms(10_100), ms(11_100)]);
        assert_eq!(t.pause_remaining(A), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_without_retry_after_pauses_for_the_default() {
        let t = throttle(100.0, 100, 100);
        let _ = t
            .call(A, "share", Wait, async { Err::<(), _>(too_many(None)) })
            .await;
        assert_eq!(
            t.pause_remaining(A),
            Some(ThrottleConfig::default().default_pause)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_huge_retry_after_is_capped() {
        let t = throttle(100.0, 100, 100);
        let year = Duration::from_secs(365 * 24 * 3600);
        let _ = t
            .call(A, "share", Wait, async {
                Err::<(), _>(too_many(Some(year)))
            })
            .await;
        assert_eq!(
            t.pause_remaining(A),
            Some(ThrottleConfig::default().max_pause)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_shorter_retry_after_does_not_end_a_longer_pause() {
        let t = throttle(100.0, 100, 100);
        t.pause(A, "share", Duration::from_secs(30));
        t.pause(A, "share", Duration::from_secs(1));
        assert_eq!(t.pause_remaining(A), Some(Duration::from_secs(30)));
    }

    #[tokio::test(start_paused = true)]
    async fn server_errors_without_retry_after_do_not_pause() {
        let t = throttle(100.0, 100, 100);
        let failure = Failure {
            class: StatusClass::ServerError,
            retry_after: None,
        };
        let _ = t
            .call(A, "share", Wait, async { Err::<(), _>(failure) })
            .await;
        assert_eq!(t.pause_remaining(A), None);
    }

    #[tokio::test(start_paused = true)]
    async fn no_more_than_the_cap_of_calls_are_in_flight() {
        let t = throttle(1000.0, 1000, 3);
        let now_in_flight = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let (t, now_in_flight, most) = (t.clone(), now_in_flight.clone(), most.clone());
                tokio::spawn(async move {
                    t.call(A, "receipt", Wait, async {
                        let n = now_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(n, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        now_in_flight.fetch_sub(1, Ordering::SeqCst);
                        Ok::<_, Failure>(())
                    })
                    .await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn calls_and_waits_are_recorded_in_metrics() {
        let metrics = Metrics::new();
        let config = ThrottleConfig {
            rate: 1.0,
            burst: 1,
            ..ThrottleConfig::default()
        };
        let t = Throttle::new(config, metrics.clone()).unwrap();
        t.call(A, "share", Wait, async { Ok::<_, Failure>(()) })
            .await
            .unwrap();
        t.call(A, "share", Wait, async { Ok::<_, Failure>(()) })
            .await
            .unwrap();
        let _ = t
            .call(A, "share", Wait, async {
                Err::<(), _>(too_many(Some(Duration::from_secs(2))))
            })
            .await;
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"ots_operator_ots_requests_total{operation="share",status_class="2xx"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"ots_operator_ots_requests_total{operation="share",status_class="429"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains("ots_operator_rate_limiter_waits_total 2"),
            "{text}"
        );
        assert!(
            text.contains("ots_operator_rate_limiter_wait_seconds_total 2.0"),
            "{text}"
        );
        assert!(
            text.contains("ots_operator_ots_server_pauses_total 1"),
            "{text}"
        );
    }

    #[test]
    fn unusable_limits_are_refused() {
        let bad = |c: ThrottleConfig| Throttle::new(c, Metrics::new()).unwrap_err();
        let base = ThrottleConfig::default();
        assert_eq!(
            bad(ThrottleConfig {
                rate: 0.0,
                ..base.clone()
            }),
            ThrottleConfigError::Rate(0.0)
        );
        assert!(matches!(
            bad(ThrottleConfig {
                rate: f64::NAN,
                ..base.clone()
            }),
            ThrottleConfigError::Rate(_)
        ));
        assert_eq!(
            bad(ThrottleConfig {
                burst: 0,
                ..base.clone()
            }),
            ThrottleConfigError::Burst
        );
        assert_eq!(
            bad(ThrottleConfig {
                max_in_flight: 0,
                ..base
            }),
            ThrottleConfigError::InFlight
        );
    }

    #[tokio::test(start_paused = true)]
    async fn background_calls_use_only_capacity_nobody_waits_for() {
        let t = throttle(1.0, 1, 4);
        let ok = || async { Ok::<_, Failure>(()) };
        // The one slot is free: a background call goes out.
        assert!(t.call(A, "receipt", IfFree, ok()).await.is_ok());
        // The next slot is a second away: nothing is sent, and the caller learns when to return.
        let busy = t.call(A, "receipt", IfFree, ok()).await.unwrap_err();
        assert_eq!(busy.retry_in, Duration::from_secs(1));
        // A waiting share reserves that slot, so a background call right after it still finds none.
        let waiting = tokio::spawn({
            let t = t.clone();
            async move {
                t.call(A, "share", Wait, async { Ok::<_, Failure>(Instant::now()) })
                    .await
            }
        });
        tokio::task::yield_now().await;
        tokio::time::advance(Duration::from_millis(1000)).await;
        let busy = t.call(A, "receipt", IfFree, ok()).await.unwrap_err();
        assert!(busy.retry_in > Duration::ZERO);
        assert!(waiting.await.unwrap().is_ok());
        // During a server-requested pause, background calls are told how long it lasts.
        t.pause(A, "share", Duration::from_secs(30));
        let busy = t.call(A, "receipt", IfFree, ok()).await.unwrap_err();
        assert_eq!(busy.retry_in, Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_on_one_server_does_not_hold_back_calls_to_another() {
        let t = throttle(10.0, 10, 100);
        let start = Instant::now();
        let _ = t
            .call(B, "share", Wait, async {
                Err::<(), _>(too_many(Some(Duration::from_secs(60))))
            })
            .await;
        assert_eq!(t.pause_remaining(B), Some(Duration::from_secs(60)));
        assert_eq!(t.pause_remaining(A), None);

        // A burn on A goes out at once, and so does a background check on A.
        let on_a = t
            .call(A, "burn", Wait, async { Ok::<_, Failure>(Instant::now()) })
            .await
            .unwrap();
        assert_eq!(on_a, start);
        assert!(
            t.call(A, "receipt", IfFree, async { Ok::<_, Failure>(()) })
                .await
                .is_ok()
        );
        // B is held back for the whole pause, background checks included.
        let busy = t
            .call(B, "receipt", IfFree, async { Ok::<_, Failure>(()) })
            .await
            .unwrap_err();
        assert_eq!(busy.retry_in, Duration::from_secs(60));
        let on_b = t
            .call(B, "burn", Wait, async { Ok::<_, Failure>(Instant::now()) })
            .await
            .unwrap();
        assert_eq!(on_b - start, Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn after_its_pause_a_server_resumes_at_the_steady_rate_while_others_keep_their_burst() {
        let t = throttle(2.0, 10, 100);
        t.pause(B, "share", Duration::from_secs(10));
        let start = Instant::now();
        let spawn_calls = |server: &'static str, n: usize| {
            (0..n)
                .map(|_| {
                    let t = t.clone();
                    tokio::spawn(async move {
                        t.call(server, "share", Wait, async {
                            Ok::<_, Failure>(Instant::now())
                        })
                        .await
                        .unwrap()
                    })
                })
                .collect::<Vec<_>>()
        };
        let on_b = spawn_calls(B, 3);
        let on_a = spawn_calls(A, 3);
        let mut a_times = Vec::new();
        for task in on_a {
            a_times.push(task.await.unwrap() - start);
        }
        assert_eq!(a_times, vec![ms(0); 3], "A keeps its burst");
        let mut b_times = Vec::new();
        for task in on_b {
            b_times.push(task.await.unwrap() - start);
        }
        b_times.sort();
        assert_eq!(b_times, vec![ms(10_000), ms(10_500), ms(11_000)]);
    }

    #[test]
    fn every_path_of_one_origin_shares_a_pause_key_and_no_user_info_is_kept() {
        assert_eq!(
            server_key("https://b.example:8443/api/"),
            "https://b.example:8443"
        );
        assert_eq!(
            server_key("https://b.example:8443"),
            "https://b.example:8443"
        );
        assert_eq!(
            server_key("https://user:pw@b.example/x"),
            "https://b.example"
        );
        assert_eq!(server_key("https://b.example:443/"), "https://b.example");
        assert_ne!(
            server_key("https://a.example"),
            server_key("https://b.example")
        );
        assert_eq!(server_key("not a url/"), "not a url");
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_is_forgotten_once_its_pause_is_over_and_its_bucket_full_again() {
        let t = throttle(2.0, 4, 100);
        t.pause(B, "share", Duration::from_secs(10));
        assert_eq!(t.state().paused.len(), 1);
        // After the pause, the drained bucket needs burst * interval to fill up again.
        tokio::time::sleep(Duration::from_millis(11_000)).await;
        assert_eq!(t.pause_remaining(B), None);
        assert_eq!(t.state().paused.len(), 1, "still recovering");
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        assert_eq!(t.pause_remaining(B), None);
        assert!(t.state().paused.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn calls_waiting_out_a_pause_hold_no_in_flight_slot() {
        let t = throttle(100.0, 100, 2);
        t.pause(B, "share", Duration::from_secs(60));
        let start = Instant::now();
        let waiting: Vec<_> = (0..5)
            .map(|_| {
                let t = t.clone();
                tokio::spawn(async move {
                    t.call(B, "share", Wait, async { Ok::<_, Failure>(Instant::now()) })
                        .await
                        .unwrap()
                })
            })
            .collect();
        tokio::task::yield_now().await;
        let on_a = t
            .call(A, "burn", Wait, async { Ok::<_, Failure>(Instant::now()) })
            .await
            .unwrap();
        assert_eq!(on_a, start);
        for task in waiting {
            assert!(task.await.unwrap() - start >= Duration::from_secs(60));
        }
    }

    /// Starts one call to `A` per turn, each queued after the one before; each answers when it
    /// was sent.
    async fn queue_calls(t: &Throttle, turns: Vec<Turn>) -> Vec<tokio::task::JoinHandle<Instant>> {
        let mut tasks = Vec::new();
        for turn in turns {
            let t = t.clone();
            tasks.push(tokio::spawn(async move {
                t.call(A, "share", turn, async { Ok::<_, Failure>(Instant::now()) })
                    .await
                    .unwrap()
            }));
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
        }
        tasks
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_delays_another_namespaces_call_by_one_turn_per_namespace_waiting() {
        let t = throttle(2.0, 1, 100);
        let start = Instant::now();
        let mut flood = queue_calls(&t, vec![Turn::share("a"); 50]).await;
        flood.extend(queue_calls(&t, vec![Turn::share("c"); 50]).await);
        let mut calm = queue_calls(&t, vec![Turn::share("b")]).await;
        let sent = calm.remove(0).await.unwrap() - start;
        // a's first call went at once and its second was next; then c had its turn, then b:
        // 1.5 s, where first come first served would have been 50 s.
        assert_eq!(sent, ms(1500));
        for task in flood {
            task.abort();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_revocation_takes_the_next_slot_before_every_queued_share() {
        let t = throttle(2.0, 1, 100);
        let start = Instant::now();
        let mut shares = queue_calls(&t, vec![Turn::share("a"); 20]).await;
        shares.extend(queue_calls(&t, vec![Turn::share("b"); 20]).await);
        let revoke = queue_calls(&t, vec![Turn::revoke("b")]).await;
        for task in revoke {
            assert_eq!(task.await.unwrap() - start, ms(500));
        }
        // The share that was next goes right after.
        assert_eq!(shares.remove(1).await.unwrap() - start, ms(1000));
        for task in shares {
            task.abort();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn calls_of_one_namespace_go_in_the_order_they_came() {
        let t = throttle(2.0, 1, 100);
        let start = Instant::now();
        let tasks = queue_calls(&t, vec![Turn::share("a"); 5]).await;
        let mut sent = Vec::new();
        for task in tasks {
            sent.push(task.await.unwrap() - start);
        }
        assert_eq!(sent, vec![ms(0), ms(500), ms(1000), ms(1500), ms(2000)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_given_up_while_queued_passes_its_turn_on() {
        let t = throttle(2.0, 1, 100);
        let start = Instant::now();
        let mut tasks = queue_calls(&t, vec![Turn::share("a"); 3]).await;
        tokio::time::sleep(ms(100)).await;
        tasks.remove(1).abort();
        let sent: Vec<_> = futures::future::join_all(tasks)
            .await
            .into_iter()
            .map(|at| at.unwrap() - start)
            .collect();
        assert_eq!(sent, vec![ms(0), ms(500)]);
        assert!(t.state().queue.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_revocation_held_back_by_its_servers_pause_holds_back_no_other_server() {
        let t = throttle(2.0, 1, 1);
        t.pause(B, "share", Duration::from_secs(60));
        let start = Instant::now();
        let revoke = {
            let t = t.clone();
            tokio::spawn(async move {
                t.call(B, "burn", Turn::revoke("x"), async {
                    Ok::<_, Failure>(Instant::now())
                })
                .await
                .unwrap()
            })
        };
        tokio::task::yield_now().await;
        let share = t
            .call(A, "share", Turn::share("y"), async {
                Ok::<_, Failure>(Instant::now())
            })
            .await
            .unwrap();
        assert_eq!(share, start);
        assert_eq!(revoke.await.unwrap() - start, Duration::from_secs(60));
    }

    /// Starts one call per (server, turn), each queued after the one before; each answers when
    /// it was sent.
    async fn queue_to(
        t: &Throttle,
        calls: Vec<(&'static str, Turn)>,
    ) -> Vec<tokio::task::JoinHandle<Instant>> {
        let mut tasks = Vec::new();
        for (server, turn) in calls {
            let t = t.clone();
            tasks.push(tokio::spawn(async move {
                t.call(server, "share", turn, async {
                    Ok::<_, Failure>(Instant::now())
                })
                .await
                .unwrap()
            }));
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
        }
        tasks
    }

    async fn sent_after(
        start: Instant,
        tasks: Vec<tokio::task::JoinHandle<Instant>>,
    ) -> Vec<Duration> {
        let mut sent = Vec::new();
        for task in tasks {
            sent.push(task.await.unwrap() - start);
        }
        sent
    }

    fn per_second(rate: f64, burst: u32) -> Option<ServerRate> {
        Some(ServerRate { rate, burst })
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_limited_to_one_call_a_second_gets_one_while_others_go_at_the_global_rate() {
        let t = throttle(10.0, 10, 100);
        t.set_server_rate("uid-b", B, None, per_second(1.0, 1));
        let start = Instant::now();
        // The slow server's calls queue first; they must not hold back those to A behind them.
        let on_b = queue_to(&t, vec![(B, Turn::share("x")); 10]).await;
        let on_a = queue_to(&t, vec![(A, Turn::share("x")); 10]).await;
        let a_times = sent_after(start, on_a).await;
        // B's first call and nine of A's share the global burst; A's last takes the next slot.
        assert_eq!(a_times.iter().max(), Some(&ms(100)), "{a_times:?}");
        let b_times = sent_after(start, on_b).await;
        assert_eq!(b_times, (0..10).map(|s| ms(s * 1000)).collect::<Vec<_>>());
    }

    #[tokio::test(start_paused = true)]
    async fn a_tenants_limit_on_a_shared_server_slows_that_tenant_alone() {
        let t = throttle(10.0, 10, 100);
        // A namespaced OtsServer of tenant "slow" names the server every tenant uses.
        t.set_server_rate("uid-tenant", B, Some("slow"), per_second(1.0, 1));
        assert_eq!(t.server_rate(B, Some("slow")), per_second(1.0, 1));
        assert_eq!(t.server_rate(B, None), None);
        let start = Instant::now();
        let slow = queue_to(&t, vec![(B, Turn::share("slow")); 3]).await;
        let others = queue_to(&t, vec![(B, Turn::share("other")); 5]).await;
        let other_times = sent_after(start, others).await;
        assert_eq!(
            other_times.iter().max(),
            Some(&ms(0)),
            "another tenant's calls to the same server go within the global burst: {other_times:?}"
        );
        assert_eq!(
            sent_after(start, slow).await,
            [ms(0), ms(1000), ms(2000)],
            "the tenant's own calls keep to its limit"
        );
        // Background calls (for no namespace) are not held by a tenant's limit either.
        let ok = async { Ok::<_, Failure>(()) };
        assert!(t.call(B, "batch_status", IfFree, ok).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_servers_own_burst_goes_at_once_then_its_rate_holds() {
        let t = throttle(100.0, 100, 100);
        t.set_server_rate("uid-b", B, None, per_second(2.0, 3));
        let start = Instant::now();
        let on_b = queue_to(&t, vec![(B, Turn::share("x")); 6]).await;
        assert_eq!(
            sent_after(start, on_b).await,
            vec![ms(0), ms(0), ms(0), ms(500), ms(1000), ms(1500)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn on_a_limited_server_a_revocation_still_takes_the_next_slot_before_its_shares() {
        let t = throttle(100.0, 100, 100);
        t.set_server_rate("uid-b", B, None, per_second(1.0, 1));
        let start = Instant::now();
        let mut shares = queue_to(&t, vec![(B, Turn::share("a")); 5]).await;
        let revoke = queue_to(&t, vec![(B, Turn::revoke("b"))]).await;
        assert_eq!(sent_after(start, revoke).await, vec![ms(1000)]);
        let first = shares.remove(0);
        let second = shares.remove(0);
        assert_eq!(
            sent_after(start, vec![first, second]).await,
            vec![ms(0), ms(2000)]
        );
        for task in shares {
            task.abort();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn background_calls_keep_to_a_servers_own_limit_and_are_not_held_back_by_its_queue() {
        let t = throttle(100.0, 100, 100);
        t.set_server_rate("uid-b", B, None, per_second(1.0, 1));
        let ok = || async { Ok::<_, Failure>(()) };
        assert!(t.call(B, "receipt", IfFree, ok()).await.is_ok());
        let busy = t.call(B, "receipt", IfFree, ok()).await.unwrap_err();
        assert_eq!(busy.retry_in, Duration::from_secs(1));
        // Shares to B wait for B's slot; capacity for A is nobody's, so a check on A goes.
        let waiting = queue_to(&t, vec![(B, Turn::share("x")); 2]).await;
        assert!(t.call(A, "receipt", IfFree, ok()).await.is_ok());
        let busy = t.call(B, "receipt", IfFree, ok()).await.unwrap_err();
        assert!(busy.retry_in > Duration::ZERO);
        for task in waiting {
            task.abort();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_strictest_owner_of_a_server_sets_its_limit_until_it_is_dropped() {
        let t = throttle(100.0, 100, 100);
        t.set_server_rate("uid-1", B, None, per_second(5.0, 5));
        t.set_server_rate(
            "uid-2",
            "https://b.example:8443/other",
            None,
            per_second(1.0, 2),
        );
        assert_eq!(t.server_rate(B, None), per_second(1.0, 2));
        t.set_server_rate("uid-2", B, None, None);
        assert_eq!(t.server_rate(B, None), per_second(5.0, 5));
        t.set_server_rate("uid-1", B, None, None);
        assert_eq!(t.server_rate(B, None), None);
        // Without a limit of its own, B's calls go at the global rate again.
        let start = Instant::now();
        let on_b = queue_to(&t, vec![(B, Turn::share("x")); 3]).await;
        assert_eq!(sent_after(start, on_b).await, vec![ms(0); 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_limit_dropped_while_calls_wait_lets_them_go_at_once() {
        let t = throttle(100.0, 100, 100);
        t.set_server_rate("uid-b", B, None, per_second(1.0, 1));
        let start = Instant::now();
        let on_b = queue_to(&t, vec![(B, Turn::share("x")); 3]).await;
        // Dropping the limit lets the waiting calls go at once (nobody waits for a timer).
        tokio::time::sleep(ms(200)).await;
        t.set_server_rate("uid-b", B, None, None);
        assert_eq!(sent_after(start, on_b).await, vec![ms(0), ms(200), ms(200)]);
    }
}
