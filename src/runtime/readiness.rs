//! Whether this process is ready to serve, as `/readyz` reports it.
//!
//! Three facts decide it: is the watch on OneTimeShares established, does it keep working (the CRD
//! can be deleted, RBAC can be taken away), and is the leader-election loop healthy. A standby replica
//! does not run the watch (only the leader reconciles), so it is ready as long as its lease loop
//! works: otherwise a two-replica Deployment could never finish a rollout.
//!
//! Each watch reports to its own [`WatchHealth`], which turns a stream of successes and failures into
//! transitions: the process becomes unready at once when the API server says the OneTimeShare type
//! does not exist, and after [`FAILURES_BEFORE_UNREADY`] failures in a row for any other error (one
//! dropped connection is routine), and ready again at the watch's next successful list or event. Each
//! transition is logged once, at warn when something broke, never once per retry.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Where this process stands in leader election.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaderState {
    /// Leader election is off: this process always reconciles.
    Disabled,
    /// This process holds the lease and reconciles.
    Leading,
    /// Another process holds the lease; this one watches the lease and waits.
    Standby,
    /// The lease cannot be read or renewed (API server unreachable, no RBAC, ...), or has not been
    /// looked at yet.
    Unhealthy,
}

impl LeaderState {
    fn to_u8(self) -> u8 {
        match self {
            Self::Disabled => 0,
            Self::Leading => 1,
            Self::Standby => 2,
            Self::Unhealthy => 3,
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Disabled,
            1 => Self::Leading,
            2 => Self::Standby,
            _ => Self::Unhealthy,
        }
    }
}

/// Shared readiness flags. Cheap to clone; all clones see the same state.
#[derive(Clone, Debug)]
pub struct Readiness {
    watch_ready: Arc<AtomicBool>,
    leader: Arc<AtomicU8>,
    /// Watches whose resource type is missing (the CRD is not installed).
    watches_without_crd: Arc<AtomicUsize>,
    /// Watches that keep failing for another reason.
    watches_failing: Arc<AtomicUsize>,
}

impl Readiness {
    /// Starts not ready. With `leader_election`, the leader state starts `Unhealthy` until the lease
    /// has been looked at; without it, `Disabled`.
    pub fn new(leader_election: bool) -> Self {
        let leader = if leader_election {
            LeaderState::Unhealthy
        } else {
            LeaderState::Disabled
        };
        Self {
            watch_ready: Arc::new(AtomicBool::new(false)),
            leader: Arc::new(AtomicU8::new(leader.to_u8())),
            watches_without_crd: Arc::new(AtomicUsize::new(0)),
            watches_failing: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A health reporter for one watch; `scope` names what it watches in log lines (a namespace, or
    /// all namespaces).
    pub fn watch_health(&self, scope: impl Into<String>) -> WatchHealth {
        WatchHealth {
            readiness: self.clone(),
            scope: scope.into(),
            problem: None,
            failures: 0,
            last_failure: None,
        }
    }

    /// Records whether the OneTimeShare watch is established (its initial list has completed).
    pub fn set_watch_ready(&self, ready: bool) {
        self.watch_ready.store(ready, Ordering::Release);
    }

    /// Records the leader-election state.
    pub fn set_leader_state(&self, state: LeaderState) {
        self.leader.store(state.to_u8(), Ordering::Release);
    }

    /// The current leader-election state.
    pub fn leader_state(&self) -> LeaderState {
        LeaderState::from_u8(self.leader.load(Ordering::Acquire))
    }

    /// Whether the watch is established.
    pub fn watch_ready(&self) -> bool {
        self.watch_ready.load(Ordering::Acquire)
    }

    /// `Ok(())` when ready, else a short reason for the `/readyz` body.
    pub fn check(&self) -> Result<(), &'static str> {
        match self.leader_state() {
            LeaderState::Unhealthy => Err("leader election is not healthy"),
            LeaderState::Standby => Ok(()),
            LeaderState::Disabled | LeaderState::Leading => {
                if self.watches_without_crd.load(Ordering::Acquire) > 0 {
                    Err("the OneTimeShare CRD is not installed")
                } else if self.watches_failing.load(Ordering::Acquire) > 0 {
                    Err("the OneTimeShare watch keeps failing")
                } else if self.watch_ready() {
                    Ok(())
                } else {
                    Err("watch not established")
                }
            }
        }
    }
}

/// Failures in a row (without a success between them) after which a watch counts as failing.
pub const FAILURES_BEFORE_UNREADY: u32 = 2;

/// Failures further apart than this do not count as "in a row": a watch that restarts without
/// emitting an event gives no other sign of success.
const FAILURE_MEMORY: Duration = Duration::from_secs(120);

/// What is wrong with a watch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchProblem {
    /// The API server does not know the resource type: the CRD is not installed (or was deleted).
    CrdMissing,
    /// Listing or watching keeps failing for another reason (RBAC, connectivity, ...).
    Failing,
}

/// Tracks one watch's health and moves the shared [`Readiness`] on transitions. Dropping it (the
/// watch stopped) withdraws its problem.
#[derive(Debug)]
pub struct WatchHealth {
    readiness: Readiness,
    scope: String,
    problem: Option<WatchProblem>,
    failures: u32,
    last_failure: Option<Instant>,
}

impl WatchHealth {
    /// The watch delivered a list or an event: it works.
    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.last_failure = None;
        if let Some(problem) = self.problem.take() {
            self.counter(problem).fetch_sub(1, Ordering::AcqRel);
            tracing::info!(scope = %self.scope, "the OneTimeShare watch works again");
        }
    }

    /// The watch failed; `not_found` when the API server answered that the resource type does not
    /// exist. `error` is logged when this failure changes the watch's state. Returns the watch's
    /// problem, if it now has one.
    pub fn failed(
        &mut self,
        not_found: bool,
        error: &dyn std::fmt::Display,
    ) -> Option<WatchProblem> {
        let now = Instant::now();
        if self
            .last_failure
            .is_some_and(|last| now.duration_since(last) > FAILURE_MEMORY)
        {
            self.failures = 0;
        }
        self.failures = self.failures.saturating_add(1);
        self.last_failure = Some(now);
        let problem = if not_found {
            Some(WatchProblem::CrdMissing)
        } else if self.failures >= FAILURES_BEFORE_UNREADY {
            Some(WatchProblem::Failing)
        } else {
            // One failure is routine (a dropped connection); keep an earlier diagnosis until then.
            self.problem
        };
        if problem != self.problem {
            if let Some(old) = self.problem {
                self.counter(old).fetch_sub(1, Ordering::AcqRel);
            }
            if let Some(new) = problem {
                self.counter(new).fetch_add(1, Ordering::AcqRel);
                match new {
                    WatchProblem::CrdMissing => tracing::warn!(
                        scope = %self.scope,
                        %error,
                        "the OneTimeShare CRD is not installed (the API server does not know \
                         onetimeshares.ots.dev); nothing is reconciled and /readyz fails until it \
                         is applied again"
                    ),
                    WatchProblem::Failing => tracing::warn!(
                        scope = %self.scope,
                        %error,
                        failures = self.failures,
                        "the OneTimeShare watch keeps failing; nothing new is reconciled and \
                         /readyz fails until it works again"
                    ),
                }
            }
            self.problem = problem;
        }
        self.problem
    }

    /// The watch's current problem, if any.
    pub fn problem(&self) -> Option<WatchProblem> {
        self.problem
    }

    fn counter(&self, problem: WatchProblem) -> &AtomicUsize {
        match problem {
            WatchProblem::CrdMissing => &self.readiness.watches_without_crd,
            WatchProblem::Failing => &self.readiness.watches_failing,
        }
    }
}

impl Drop for WatchHealth {
    fn drop(&mut self) {
        if let Some(problem) = self.problem.take() {
            self.counter(problem).fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_leader_election_ready_once_the_watch_is_established() {
        let r = Readiness::new(false);
        assert_eq!(r.check(), Err("watch not established"));
        r.set_watch_ready(true);
        assert_eq!(r.check(), Ok(()));
        r.set_watch_ready(false);
        assert_eq!(r.check(), Err("watch not established"));
    }

    #[test]
    fn with_leader_election_not_ready_before_the_lease_is_seen() {
        let r = Readiness::new(true);
        r.set_watch_ready(true);
        assert_eq!(r.check(), Err("leader election is not healthy"));
    }

    #[test]
    fn a_healthy_standby_is_ready_without_a_watch() {
        let r = Readiness::new(true);
        r.set_leader_state(LeaderState::Standby);
        assert_eq!(r.check(), Ok(()));
    }

    #[test]
    fn a_leader_is_ready_only_with_its_watch_established() {
        let r = Readiness::new(true);
        r.set_leader_state(LeaderState::Leading);
        assert_eq!(r.check(), Err("watch not established"));
        r.set_watch_ready(true);
        assert_eq!(r.check(), Ok(()));
    }

    #[test]
    fn an_unhealthy_lease_loop_makes_the_process_unready() {
        let r = Readiness::new(true);
        r.set_watch_ready(true);
        r.set_leader_state(LeaderState::Leading);
        r.set_leader_state(LeaderState::Unhealthy);
        assert_eq!(r.check(), Err("leader election is not healthy"));
        assert_eq!(r.clone().leader_state(), LeaderState::Unhealthy);
    }

    #[test]
    fn a_missing_crd_makes_the_process_unready_at_once_and_a_new_list_makes_it_ready() {
        let r = Readiness::new(false);
        r.set_watch_ready(true);
        let mut health = r.watch_health("all namespaces");
        assert_eq!(
            health.failed(true, &"404 page not found"),
            Some(WatchProblem::CrdMissing)
        );
        assert_eq!(r.check(), Err("the OneTimeShare CRD is not installed"));
        // Retries that fail the same way change nothing.
        health.failed(true, &"404 page not found");
        assert_eq!(health.problem(), Some(WatchProblem::CrdMissing));
        health.succeeded();
        assert_eq!(r.check(), Ok(()));
    }

    #[test]
    fn one_failure_is_routine_but_failures_in_a_row_make_the_process_unready() {
        let r = Readiness::new(false);
        r.set_watch_ready(true);
        let mut health = r.watch_health("ns-a");
        assert_eq!(health.failed(false, &"connection reset"), None);
        assert_eq!(r.check(), Ok(()));
        health.succeeded();
        assert_eq!(health.failed(false, &"connection reset"), None);
        assert_eq!(
            health.failed(false, &"403 forbidden"),
            Some(WatchProblem::Failing)
        );
        assert_eq!(r.check(), Err("the OneTimeShare watch keeps failing"));
        health.succeeded();
        assert_eq!(r.check(), Ok(()));
    }

    #[test]
    fn every_watch_must_be_healthy_and_a_stopped_watch_withdraws_its_problem() {
        let r = Readiness::new(false);
        r.set_watch_ready(true);
        let mut a = r.watch_health("ns-a");
        let mut b = r.watch_health("ns-b");
        a.failed(true, &"404");
        b.failed(true, &"404");
        a.succeeded();
        assert_eq!(r.check(), Err("the OneTimeShare CRD is not installed"));
        drop(b);
        assert_eq!(r.check(), Ok(()));
    }

    #[test]
    fn a_standby_stays_ready_whatever_a_stale_watch_reported() {
        let r = Readiness::new(true);
        let mut health = r.watch_health("all namespaces");
        health.failed(true, &"404");
        r.set_leader_state(LeaderState::Standby);
        assert_eq!(r.check(), Ok(()));
    }
}
