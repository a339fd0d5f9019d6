//! Whether this process is ready to serve, as `/readyz` reports it.
//!
//! Two facts decide it: is the watch on OneTimeShares established, and is the leader-election loop
//! healthy. A standby replica does not run the watch (only the leader reconciles), so it is ready as
//! long as its lease loop works: otherwise a two-replica Deployment could never finish a rollout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

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
                if self.watch_ready() {
                    Ok(())
                } else {
                    Err("watch not established")
                }
            }
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
}
