//! Being gentle with the Onetime Secret server: every OTS call goes through one [`Throttle`].
//!
//! Three limits apply to all calls of the process together, whichever resource they serve:
//! - a token bucket: at most `burst` calls at once after a quiet spell, then `rate` calls per second;
//! - a cap on calls in flight (waiting in the throttle or on the wire);
//! - a shared pause: when the server answers 429 (or any answer with `Retry-After`), no call at all is
//!   sent until that time has passed, and the calls resume at the steady rate, not as a burst.
//!
//! The throttle does not retry. A failed call goes back to the controller, which requeues the resource
//! with capped, jittered backoff (see [`crate::backoff`]); the retry then passes through the throttle
//! again, so even a long outage cannot drive the request rate above `rate`.
//!
//! The bucket is a few lines of GCRA over `tokio::time::Instant` rather than the `governor` crate:
//! governor keeps its own clock and timer, which would make the behaviour impossible to test with
//! tokio's paused clock, and the pause must reshape the bucket, which governor does not allow.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::{Instant, sleep_until};

use crate::metrics::{Metrics, StatusClass};

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
#[derive(Debug)]
struct TokenBucket {
    interval: Duration,
    /// How far `next` may run ahead of now: `(burst - 1) * interval`.
    tolerance: Duration,
    next: Instant,
}

impl TokenBucket {
    /// Reserves the next slot at or after `now` and returns its time.
    fn reserve(&mut self, now: Instant) -> Instant {
        let next = self.next.max(now);
        let at = next.checked_sub(self.tolerance).map_or(now, |t| t.max(now));
        self.next = next + self.interval;
        at
    }

    /// Takes a slot only if one is free now; otherwise returns when the next one will be.
    fn try_reserve(&mut self, now: Instant) -> Result<(), Instant> {
        let next = self.next.max(now);
        let at = next.checked_sub(self.tolerance).map_or(now, |t| t.max(now));
        if at > now {
            return Err(at);
        }
        self.next = next + self.interval;
        Ok(())
    }

    /// Empties the bucket as of `at`: the first slot is `at`, then one per interval.
    fn drain_until(&mut self, at: Instant) {
        self.next = self.next.max(at + self.tolerance);
    }
}

#[derive(Debug)]
struct Shared {
    config: ThrottleConfig,
    bucket: Mutex<TokenBucket>,
    paused_until: Mutex<Option<Instant>>,
    in_flight: Semaphore,
    metrics: Metrics,
}

/// A call [`Throttle::try_run`] did not send, because it would have had to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy {
    /// When a slot is expected to be free.
    pub retry_in: Duration,
}

/// The process-wide gate in front of the OTS server. Cheap to clone; clones share all limits.
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
                bucket: Mutex::new(bucket),
                paused_until: Mutex::new(None),
                metrics,
            }),
        })
    }

    /// Runs one OTS call once all limits allow it, and records it as `operation` (a fixed name such as
    /// `share`, `receipt`, `burn`).
    ///
    /// `call` must not have started its request yet (futures are lazy, so pass e.g.
    /// `client.share(..)` directly). A failure with `Retry-After`, or any 429, pauses every caller.
    pub async fn run<T, E, F>(&self, operation: &'static str, call: F) -> Result<T, E>
    where
        E: UpstreamFailure,
        F: Future<Output = Result<T, E>>,
    {
        let queued = Instant::now();
        // Never closed, so acquiring cannot fail; without a permit the call would still be paced.
        let _permit = self.shared.in_flight.acquire().await.ok();
        self.wait_for_slot().await;
        let waited = queued.elapsed();
        if !waited.is_zero() {
            self.shared.metrics.limiter_waited(waited);
        }

        self.send(operation, call).await
    }

    /// Like [`Throttle::run`], but never waits: when the call would wait for a pause, the rate
    /// limit or an in-flight slot, nothing is sent and [`Busy`] says when to try again.
    ///
    /// For background calls (link-state checks): they use only capacity nobody waits for, so they
    /// can never crowd out shares and burns, however many links are live.
    pub async fn try_run<T, E, F>(
        &self,
        operation: &'static str,
        call: F,
    ) -> Result<Result<T, E>, Busy>
    where
        E: UpstreamFailure,
        F: Future<Output = Result<T, E>>,
    {
        let now = Instant::now();
        if let Some(until) = self.paused_until(now) {
            return Err(Busy {
                retry_in: until - now,
            });
        }
        let Ok(_permit) = self.shared.in_flight.try_acquire() else {
            return Err(Busy {
                retry_in: self.interval(),
            });
        };
        let slot = self
            .shared
            .bucket
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .try_reserve(now);
        if let Err(at) = slot {
            return Err(Busy { retry_in: at - now });
        }
        Ok(self.send(operation, call).await)
    }

    fn interval(&self) -> Duration {
        self.shared
            .bucket
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .interval
    }

    /// Sends one call and records it; a failure with `Retry-After`, or any 429, pauses everyone.
    async fn send<T, E, F>(&self, operation: &'static str, call: F) -> Result<T, E>
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
                    (Some(after), _) => self.pause(operation, after),
                    (None, StatusClass::RateLimited) => {
                        self.pause(operation, self.shared.config.default_pause)
                    }
                    (None, _) => {}
                }
                class
            }
        };
        self.shared.metrics.ots_request(operation, class, latency);
        result
    }

    /// How long every call is still held back by a server-requested pause, if one is on.
    pub fn pause_remaining(&self) -> Option<Duration> {
        let now = Instant::now();
        self.paused_until(now).map(|until| until - now)
    }

    /// Holds back every call for `after` (capped at `max_pause`) from now.
    pub fn pause(&self, operation: &'static str, after: Duration) {
        let after = after.min(self.shared.config.max_pause);
        let until = Instant::now() + after;
        {
            let mut paused = self
                .shared
                .paused_until
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if paused.is_some_and(|p| p >= until) {
                return;
            }
            *paused = Some(until);
        }
        self.shared
            .bucket
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain_until(until);
        self.shared.metrics.server_paused();
        tracing::warn!(
            operation,
            pause_seconds = after.as_secs_f64(),
            "Onetime Secret server asked to slow down; holding back all calls"
        );
    }

    fn paused_until(&self, now: Instant) -> Option<Instant> {
        let paused = *self
            .shared
            .paused_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        paused.filter(|until| *until > now)
    }

    /// Waits until no pause is on and a bucket slot has come; a pause that starts while waiting for the
    /// slot sends the caller back to wait for the pause's end.
    async fn wait_for_slot(&self) {
        loop {
            let now = Instant::now();
            if let Some(until) = self.paused_until(now) {
                sleep_until(until).await;
                continue;
            }
            let at = self
                .shared
                .bucket
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .reserve(now);
            if at > now {
                sleep_until(at).await;
            }
            if self.paused_until(Instant::now()).is_none() {
                return;
            }
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
                    t.run("share", async { Ok::<_, Failure>(Instant::now()) })
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
    async fn retry_after_holds_back_every_caller_until_it_has_passed() {
        let t = throttle(1.0, 1, 100);
        let start = Instant::now();

        // A is sent at once and, 100 ms later, told to come back in 10 s; B is queued behind A by then.
        let a = {
            let t = t.clone();
            tokio::spawn(async move {
                t.run("share", async {
                    tokio::time::sleep(ms(100)).await;
                    Err::<Instant, _>(too_many(Some(Duration::from_secs(10))))
                })
                .await
            })
        };
        let b = {
            let t = t.clone();
            tokio::spawn(async move {
                t.run("receipt", async { Ok::<_, Failure>(Instant::now()) })
                    .await
            })
        };
        assert!(a.await.unwrap().is_err());
        assert_eq!(t.pause_remaining(), Some(Duration::from_secs(10)));

        // C arrives during the pause.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let c = {
            let t = t.clone();
            tokio::spawn(async move {
                t.run("burn", async { Ok::<_, Failure>(Instant::now()) })
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
        assert_eq!(t.pause_remaining(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_without_retry_after_pauses_for_the_default() {
        let t = throttle(100.0, 100, 100);
        let _ = t.run("share", async { Err::<(), _>(too_many(None)) }).await;
        assert_eq!(
            t.pause_remaining(),
            Some(ThrottleConfig::default().default_pause)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_huge_retry_after_is_capped() {
        let t = throttle(100.0, 100, 100);
        let year = Duration::from_secs(365 * 24 * 3600);
        let _ = t
            .run("share", async { Err::<(), _>(too_many(Some(year))) })
            .await;
        assert_eq!(
            t.pause_remaining(),
            Some(ThrottleConfig::default().max_pause)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_shorter_retry_after_does_not_end_a_longer_pause() {
        let t = throttle(100.0, 100, 100);
        t.pause("share", Duration::from_secs(30));
        t.pause("share", Duration::from_secs(1));
        assert_eq!(t.pause_remaining(), Some(Duration::from_secs(30)));
    }

    #[tokio::test(start_paused = true)]
    async fn server_errors_without_retry_after_do_not_pause() {
        let t = throttle(100.0, 100, 100);
        let failure = Failure {
            class: StatusClass::ServerError,
            retry_after: None,
        };
        let _ = t.run("share", async { Err::<(), _>(failure) }).await;
        assert_eq!(t.pause_remaining(), None);
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
                    t.run("receipt", async {
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
        t.run("share", async { Ok::<_, Failure>(()) })
            .await
            .unwrap();
        t.run("share", async { Ok::<_, Failure>(()) })
            .await
            .unwrap();
        let _ = t
            .run("share", async {
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
        assert!(t.try_run("receipt", ok()).await.is_ok());
        // The next slot is a second away: nothing is sent, and the caller learns when to return.
        let busy = t.try_run("receipt", ok()).await.unwrap_err();
        assert_eq!(busy.retry_in, Duration::from_secs(1));
        // A waiting share reserves that slot, so a background call right after it still finds none.
        let waiting = tokio::spawn({
            let t = t.clone();
            async move {
                t.run("share", async { Ok::<_, Failure>(Instant::now()) })
                    .await
            }
        });
        tokio::task::yield_now().await;
        tokio::time::advance(Duration::from_millis(1000)).await;
        let busy = t.try_run("receipt", ok()).await.unwrap_err();
        assert!(busy.retry_in > Duration::ZERO);
        assert!(waiting.await.unwrap().is_ok());
        // During a server-requested pause, background calls are told how long it lasts.
        t.pause("share", Duration::from_secs(30));
        let busy = t.try_run("receipt", ok()).await.unwrap_err();
        assert_eq!(busy.retry_in, Duration::from_secs(30));
    }
}
