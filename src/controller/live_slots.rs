//! `--max-live-shares-per-secret`: who holds a live link of a Secret, and who waits for one.
//!
//! A live link is a share whose cached phase is `Shared`, or a share that took a slot and
//! whose new link the watch cache does not show yet (a reservation). A reservation ends as soon
//! as the cache shows the resource with a `sharedAt` other than the one it had when it took
//! the slot (its new link's status arrived: the cache counts the link from then on, or it
//! already ended), when the resource leaves the cache (deleted: its link was burned), or after
//! [`GRACE`] when the cache never showed a new link, unless the
//! resource is still Pending or Failed (a share under way or whose outcome is unknown keeps
//! its slot). A share refused for want of a slot waits; when the housekeeping tick finds a slot
//! of its Secret free, it is woken at once instead of at its next retry (up to 30 s later).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use crate::error::Error;
use crate::resource::{OneTimeShare, Phase};

/// How long a reservation counts when the cache keeps showing its resource with the link it
/// had before (long enough for the new link's status write to reach the cache).
pub(super) const GRACE: Duration = Duration::from_secs(30);

/// A Secret: (namespace, name).
pub(super) type SecretId = (String, String);

/// A share as the cache shows it, for [`LiveSlots::prune`].
pub(super) struct Cached {
    /// Its phase.
    pub phase: Phase,
    /// When its current link was made.
    pub shared_at: Option<Time>,
}

/// A slot taken for a link the cache may not show yet.
struct Reservation {
    at: Instant,
    /// The resource's `sharedAt` when it took the slot: a cache showing another has its new link.
    shared_at_before: Option<Time>,
}

/// A share refused for want of a slot.
struct Waiter {
    secret: SecretId,
    /// The limit it waits under (the operator's, or its server object's when lower).
    max: u32,
    /// `namespace/name`, as the check clock names it.
    share: Arc<str>,
}

/// A waiting share a slot is free for.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Woken {
    /// Its uid.
    pub uid: String,
    /// `namespace/name`, as the check clock names it.
    pub share: Arc<str>,
}

#[derive(Default)]
struct State {
    /// Per Secret, by resource uid.
    reservations: HashMap<SecretId, HashMap<String, Reservation>>,
    /// By resource uid.
    waiting: HashMap<String, Waiter>,
}

/// The live-link slots of every Secret (see the module documentation).
pub(super) struct LiveSlots {
    max: u32,
    state: Mutex<State>,
}

impl LiveSlots {
    /// Slots for at most `max` live links per Secret (0: no limit).
    pub(super) fn new(max: u32) -> Self {
        LiveSlots {
            max,
            state: Mutex::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a slot for a new link of `obj`'s Secret: `shared` are the uids the cache shows
    /// Shared with a link of that Secret; `obj` itself never counts. Refused: `obj` waits.
    #[cfg(test)]
    pub(super) fn take(&self, obj: &OneTimeShare, shared: HashSet<String>) -> Result<(), Error> {
        self.take_under(obj, shared, None)
    }

    /// The limit for a share whose server object allows at most `server_max` live links per
    /// Secret: the lower of it and the operator's (0: none).
    pub(super) fn limit(&self, server_max: Option<u32>) -> u32 {
        match (self.max, server_max) {
            (0, Some(server)) => server,
            (operator, Some(server)) => operator.min(server),
            (operator, None) => operator,
        }
    }

    /// [`Self::take`] under [`Self::limit`]`(server_max)`.
    pub(super) fn take_under(
        &self,
        obj: &OneTimeShare,
        shared: HashSet<String>,
        server_max: Option<u32>,
    ) -> Result<(), Error> {
        let max = self.limit(server_max);
        if max == 0 {
            return Ok(());
        }
        let secret: SecretId = (
            obj.namespace().unwrap_or_default(),
            obj.spec.secret_ref.name.clone(),
        );
        let uid = obj.uid().unwrap_or_default();
        let mut state = self.state();
        let mut holders = shared;
        holders.extend(
            state
                .reservations
                .get(&secret)
                .into_iter()
                .flat_map(HashMap::keys)
                .cloned(),
        );
        holders.remove(&uid);
        if holders.len() >= max as usize {
            let share = format!("{}/{}", secret.0, obj.name_any()).into();
            let name = secret.1.clone();
            state.waiting.insert(uid, Waiter { secret, share, max });
            return Err(Error::TooManyShares { name, max });
        }
        state.waiting.remove(&uid);
        let shared_at_before = obj.status.as_ref().and_then(|s| s.shared_at.clone());
        state.reservations.entry(secret).or_default().insert(
            uid,
            Reservation {
                at: Instant::now(),
                shared_at_before,
            },
        );
        Ok(())
    }

    /// The Secrets some share waits for a slot of.
    pub(super) fn awaited(&self) -> HashSet<SecretId> {
        self.state()
            .waiting
            .values()
            .map(|w| w.secret.clone())
            .collect()
    }

    /// Ends the reservations the cache has caught up with, forgets waiters that are gone, and
    /// returns the waiting shares (`namespace/name`) of Secrets with a slot free: `cached` is
    /// every share in the cache by uid, `shared` the uids the cache shows Shared per awaited
    /// Secret (see [`Self::awaited`]), both read from the cache from `read_at` on.
    pub(super) fn prune(
        &self,
        cached: &HashMap<String, Cached>,
        shared: &HashMap<SecretId, HashSet<String>>,
        read_at: Instant,
    ) -> Vec<Woken> {
        let mut state = self.state();
        for uids in state.reservations.values_mut() {
            uids.retain(|uid, reservation| {
                let Some(now) = cached.get(uid) else {
                    // Gone: a slot is taken only by a reconcile of a cached share, and a share
                    // leaves the cache once deleted, after its finalizer burned its link. One
                    // taken after `cached` was read is simply not in it yet.
                    return reservation.at >= read_at;
                };
                if now.shared_at != reservation.shared_at_before {
                    return false;
                }
                reservation.at.elapsed() < GRACE
                    || matches!(now.phase, Phase::Pending | Phase::Failed)
            });
        }
        state.reservations.retain(|_, uids| !uids.is_empty());
        state.waiting.retain(|uid, _| cached.contains_key(uid));

        let mut free = Vec::new();
        let awaited: HashSet<SecretId> = state.waiting.values().map(|w| w.secret.clone()).collect();
        for secret in awaited {
            let mut holders = shared.get(&secret).cloned().unwrap_or_default();
            holders.extend(
                state
                    .reservations
                    .get(&secret)
                    .into_iter()
                    .flat_map(HashMap::keys)
                    .cloned(),
            );
            let held = holders.len();
            {
                state.waiting.retain(|uid, w| {
                    if w.secret == secret && held < w.max as usize {
                        free.push(Woken {
                            uid: uid.clone(),
                            share: w.share.clone(),
                        });
                        false
                    } else {
                        true
                    }
                });
            }
        }
        free
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::{OneTimeShareSpec, OneTimeShareStatus};

    fn share(name: &str, shared_at: Option<i64>) -> OneTimeShare {
        let mut obj = OneTimeShare::new(
            name,
            serde_json::from_value::<OneTimeShareSpec>(
                serde_json::json!({"secretRef": {"name": "db", "key": "k"}}),
            )
            .unwrap(),
        );
        obj.metadata.namespace = Some("ns".into());
        obj.metadata.uid = Some(format!("uid-{name}"));
        obj.status = shared_at.map(|s| OneTimeShareStatus {
            shared_at: Some(time(s)),
            ..OneTimeShareStatus::default()
        });
        obj
    }

    fn time(s: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(s).unwrap())
    }

    fn set(uids: &[&str]) -> HashSet<String> {
        uids.iter().map(|u| format!("uid-{u}")).collect()
    }

    fn cached(entries: &[(&str, Phase, Option<i64>)]) -> HashMap<String, Cached> {
        entries
            .iter()
            .map(|(name, phase, at)| {
                (
                    format!("uid-{name}"),
                    Cached {
                        phase: *phase,
                        shared_at: at.map(time),
                    },
                )
            })
            .collect()
    }

    fn db() -> SecretId {
        ("ns".into(), "db".into())
    }

    #[test]
    fn a_reservation_ends_when_the_cache_shows_the_new_link_even_if_it_ended_already() {
        let slots = LiveSlots::new(1);
        let c = share("c", None);
        slots.take(&c, HashSet::new()).unwrap();
        // Before the cache shows c's link, nobody else gets the slot.
        let a = share("a", Some(100));
        assert!(slots.take(&a, HashSet::new()).is_err());
        assert_eq!(slots.awaited(), HashSet::from([db()]));
        // c's link made and received within the grace: its slot is free at once, and a is woken.
        let woken = slots.prune(
            &cached(&[
                ("c", Phase::Received, Some(200)),
                ("a", Phase::Received, Some(100)),
            ]),
            &HashMap::from([(db(), HashSet::new())]),
            Instant::now(),
        );
        assert_eq!(
            woken,
            vec![Woken {
                uid: "uid-a".into(),
                share: Arc::from("ns/a")
            }]
        );
        assert!(slots.awaited().is_empty());
        assert!(slots.take(&a, HashSet::new()).is_ok());
    }

    #[test]
    fn a_reissue_keeps_its_slot_while_the_cache_still_shows_the_old_link() {
        let slots = LiveSlots::new(1);
        let a = share("a", Some(100));
        slots.take(&a, HashSet::new()).unwrap();
        // The cache still shows a's old, received link: the reservation holds.
        let woken = slots.prune(
            &cached(&[("a", Phase::Received, Some(100))]),
            &HashMap::new(),
            Instant::now(),
        );
        assert!(woken.is_empty());
        let b = share("b", Some(90));
        assert!(slots.take(&b, HashSet::new()).is_err());
        // No slot frees while a's new link is live in the cache.
        let woken = slots.prune(
            &cached(&[
                ("a", Phase::Shared, Some(300)),
                ("b", Phase::Received, Some(90)),
            ]),
            &HashMap::from([(db(), set(&["a"]))]),
            Instant::now(),
        );
        assert!(woken.is_empty(), "a holds the only slot");
        assert!(slots.take(&b, set(&["a"])).is_err());
    }

    #[test]
    fn a_deleted_share_frees_its_slot_at_once_even_before_the_cache_showed_its_link() {
        let slots = LiveSlots::new(1);
        let a = share("a", None);
        let read_before_a = Instant::now();
        slots.take(&a, HashSet::new()).unwrap();
        let b = share("b", None);
        assert!(slots.take(&b, HashSet::new()).is_err());
        // A cache read that began before a took its slot need not show a: a keeps it.
        let woken = slots.prune(
            &cached(&[("b", Phase::Pending, None)]),
            &HashMap::from([(db(), HashSet::new())]),
            read_before_a,
        );
        assert!(woken.is_empty(), "a's slot is taken");
        // a was shared and deleted between two ticks: the cache never showed its link.
        let woken = slots.prune(
            &cached(&[("b", Phase::Pending, None)]),
            &HashMap::from([(db(), HashSet::new())]),
            Instant::now(),
        );
        assert_eq!(
            woken.len(),
            1,
            "b is woken within the tick, not after the grace"
        );
        assert!(slots.take(&b, HashSet::new()).is_ok());
    }

    #[test]
    fn waiters_that_are_gone_are_forgotten() {
        let slots = LiveSlots::new(1);
        let b = share("b", None);
        assert!(slots.take(&b, set(&["a"])).is_err());
        let woken = slots.prune(
            &cached(&[("a", Phase::Shared, Some(1))]),
            &HashMap::new(),
            Instant::now(),
        );
        assert!(woken.is_empty());
        assert!(slots.awaited().is_empty(), "b was deleted");
    }

    #[test]
    fn no_limit_takes_nothing() {
        let slots = LiveSlots::new(0);
        assert!(slots.take(&share("a", None), set(&["b", "c"])).is_ok());
        assert!(slots.awaited().is_empty());
    }
}
