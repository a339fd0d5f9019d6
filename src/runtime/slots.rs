//! Reconcile slots: how many resources are reconciled at once, all namespaces together
//! (`--concurrency`) and of one namespace (`--concurrency-per-namespace`), handed out in
//! [`fair`](crate::runtime::fair) turns: deletions first, then the namespaces round-robin.
//!
//! Why not kube's own bound: its controller starts queued reconciles first come first served, so
//! a backlog in one namespace (250 shares, each waiting for the OTS budget) held every slot, and
//! another namespace's reconcile, a deletion's burn included, did not even start until the
//! backlog was through. The controller therefore starts reconciles unbounded, and each first asks
//! for a slot here ([`Slots::try_take`]).
//!
//! Why tickets, not waiting: a reconcile that waited for its slot kept a running future in kube's
//! controller, with its tracing span, for every object in a backlog: about 1.8 KiB each, 9 MiB at
//! 5,000 shares. A reconcile that finds no slot now leaves a ticket (its `namespace/name`, a few
//! dozen bytes) and ends. When a slot frees, it is granted to the next ticket in fair order and
//! held for it, and the controller is told to reconcile that object again (the waker set with
//! [`Slots::set_waker`]); that reconcile takes the granted slot. A grant nobody comes for (the
//! object was deleted meanwhile) is given back after [`GRANT_TTL`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use tokio::time::{Duration, Instant};

use crate::runtime::fair::{Class, FairQueue, TicketId};

/// A resource, as the slots name it: `namespace/name`.
pub type Key = Arc<str>;

/// How long a slot granted to a ticket is held for the reconcile it wakes. The wake-up reaches
/// the controller in milliseconds; a grant older than this belongs to an object that went away.
pub const GRANT_TTL: Duration = Duration::from_secs(30);

/// Tells the controller to reconcile the resource a key names; `false` when the resource is gone
/// (its grant is passed on at once).
type Waker = Box<dyn Fn(Key) -> bool + Send + Sync>;

#[derive(Debug, Default)]
struct State {
    /// Resources waiting for a slot, in fair order.
    queue: FairQueue<Key>,
    /// Each waiting resource's one ticket, and its class.
    tickets: HashMap<Key, (TicketId, Class)>,
    /// Slots held for woken resources, since when.
    granted: HashMap<Key, Instant>,
    /// Slots taken or granted, all namespaces together.
    taken: usize,
    /// Slots taken or granted per namespace (namespaces with none are dropped).
    by_namespace: HashMap<String, usize>,
    /// Shutting down: nobody gets a slot any more.
    closed: bool,
}

impl State {
    fn count(&mut self, namespace: &str) {
        self.taken += 1;
        *self.by_namespace.entry(namespace.to_owned()).or_default() += 1;
    }

    fn uncount(&mut self, namespace: &str) {
        self.taken = self.taken.saturating_sub(1);
        if let Some(n) = self.by_namespace.get_mut(namespace) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.by_namespace.remove(namespace);
            }
        }
    }
}

struct Shared {
    total: usize,
    per_namespace: usize,
    state: Mutex<State>,
    waker: OnceLock<Waker>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("total", &self.total)
            .field("per_namespace", &self.per_namespace)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// The namespace part of a key.
fn namespace_of(key: &str) -> &str {
    key.split_once('/').map_or("", |(namespace, _)| namespace)
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Gives back grants nobody came for, then grants every free slot to the tickets whose turn
    /// it is; answers the keys granted, to be woken once the lock is released.
    fn grant(&self, state: &mut State, now: Instant) -> Vec<Key> {
        let stale: Vec<Key> = state
            .granted
            .iter()
            .filter(|(_, since)| now.saturating_duration_since(**since) >= GRANT_TTL)
            .map(|(key, _)| key.clone())
            .collect();
        for key in stale {
            state.granted.remove(&key);
            state.uncount(namespace_of(&key));
        }
        let mut woken = Vec::new();
        if state.closed {
            return woken;
        }
        while state.taken < self.total {
            let Some((id, key)) = state
                .queue
                .head_where(|lane| {
                    state.by_namespace.get(lane).copied().unwrap_or(0) < self.per_namespace
                })
                .map(|(id, key)| (id, key.clone()))
            else {
                break;
            };
            state.queue.serve(id);
            state.tickets.remove(&key);
            state.count(namespace_of(&key));
            state.granted.insert(key.clone(), now);
            woken.push(key);
        }
        if state.tickets.is_empty() && state.tickets.capacity() > 64 {
            state.tickets = HashMap::new();
            state.queue.shrink_if_drained();
        }
        woken
    }

    /// Wakes the resources granted a slot; the grants of those that are gone go on to the next
    /// tickets at once.
    fn wake(&self, mut keys: Vec<Key>) {
        let Some(waker) = self.waker.get() else {
            return;
        };
        while !keys.is_empty() {
            let gone: Vec<Key> = keys.into_iter().filter(|key| !waker(key.clone())).collect();
            if gone.is_empty() {
                return;
            }
            let mut state = self.state();
            for key in &gone {
                if state.granted.remove(key).is_some() {
                    state.uncount(namespace_of(key));
                }
            }
            keys = self.grant(&mut state, Instant::now());
        }
    }
}

/// Reconcile slots, fairly shared. Cheap to clone; clones share the slots.
#[derive(Debug, Clone)]
pub struct Slots {
    shared: Arc<Shared>,
}

/// A slot taken: given back when dropped.
#[derive(Debug)]
pub struct Slot {
    shared: Arc<Shared>,
    key: Key,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let woken = {
            let mut state = self.shared.state();
            state.uncount(namespace_of(&self.key));
            self.shared.grant(&mut state, Instant::now())
        };
        self.shared.wake(woken);
    }
}

impl Slots {
    /// `total` slots, at most `per_namespace` of them for one namespace (both at least 1; a
    /// per-namespace bound above `total` is `total`).
    pub fn new(total: usize, per_namespace: usize) -> Self {
        let total = total.max(1);
        Self {
            shared: Arc::new(Shared {
                total,
                per_namespace: per_namespace.clamp(1, total),
                state: Mutex::new(State::default()),
                waker: OnceLock::new(),
            }),
        }
    }

    /// Sets what tells the controller to reconcile a resource whose ticket was granted a slot,
    /// answering `false` when the resource is gone (once; later calls are ignored).
    pub fn set_waker(&self, waker: impl Fn(Key) -> bool + Send + Sync + 'static) {
        let _ = self.shared.waker.set(Box::new(waker));
    }

    /// A slot for the resource `key` (`namespace/name`; deletions ask with [`Class::Revoke`]) if
    /// it is its turn, or one granted to it earlier. Otherwise `None`, and the resource keeps one
    /// ticket (a deletion's moves ahead of a share's): it is woken when its slot is granted.
    /// Always `None` once the slots are closed.
    pub fn try_take(&self, key: &Key, class: Class) -> Option<Slot> {
        let now = Instant::now();
        let (mine, woken) = {
            let mut state = self.shared.state();
            if state.closed {
                return None;
            }
            if state.granted.remove(key).is_some() {
                // Held for this reconcile since its ticket's turn (and still counted).
                (true, self.shared.grant(&mut state, now))
            } else {
                match state.tickets.get(key).copied() {
                    Some((_, queued)) if queued == class || queued == Class::Revoke => {}
                    earlier => {
                        if let Some((id, _)) = earlier {
                            state.queue.remove(id);
                        }
                        let id = state.queue.push(class, namespace_of(key), key.clone());
                        state.tickets.insert(key.clone(), (id, class));
                    }
                }
                let mut woken = self.shared.grant(&mut state, now);
                // Its turn now: the slot is this reconcile's, no wake-up needed.
                let mine = match woken.iter().position(|k| k == key) {
                    Some(at) => {
                        woken.swap_remove(at);
                        state.granted.remove(key);
                        true
                    }
                    None => false,
                };
                (mine, woken)
            }
        };
        self.shared.wake(woken);
        mine.then(|| Slot {
            shared: self.shared.clone(),
            key: key.clone(),
        })
    }

    /// Gives back grants nobody came for within [`GRANT_TTL`] and passes their slots on (the
    /// controller calls it every few seconds, so a slot is never lost for long).
    pub fn sweep(&self) {
        let woken = {
            let mut state = self.shared.state();
            self.shared.grant(&mut state, Instant::now())
        };
        self.shared.wake(woken);
    }

    /// Closes the slots (at shutdown): no slot is handed out any more, and tickets are dropped;
    /// reconciles running finish.
    pub fn close(&self) {
        let mut state = self.shared.state();
        state.closed = true;
        state.queue = FairQueue::default();
        state.tickets.clear();
        state.granted.clear();
    }

    /// Resources waiting for a slot.
    pub fn waiting(&self) -> usize {
        self.shared.state().queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex as StdMutex;

    fn key(namespace: &str, name: &str) -> Key {
        format!("{namespace}/{name}").into()
    }

    /// Slots whose waker records the keys it wakes; keys named in `gone` are gone.
    fn recorded(
        total: usize,
        per_namespace: usize,
        gone: &[&str],
    ) -> (Slots, Arc<StdMutex<Vec<String>>>) {
        let slots = Slots::new(total, per_namespace);
        let woken = Arc::new(StdMutex::new(Vec::new()));
        let gone: Vec<String> = gone.iter().map(|g| (*g).to_owned()).collect();
        let record = woken.clone();
        slots.set_waker(move |key| {
            if gone.iter().any(|g| **g == *key) {
                return false;
            }
            record.lock().unwrap().push(key.to_string());
            true
        });
        (slots, woken)
    }

    fn take_woken(woken: &StdMutex<Vec<String>>) -> Vec<String> {
        std::mem::take(&mut *woken.lock().unwrap())
    }

    #[tokio::test(start_paused = true)]
    async fn one_namespace_takes_no_more_than_its_bound_and_others_start_at_once() {
        let (slots, _) = recorded(4, 2, &[]);
        let flood: Vec<Option<Slot>> = (0..10)
            .map(|i| slots.try_take(&key("flood", &i.to_string()), Class::Share))
            .collect();
        assert_eq!(flood.iter().filter(|s| s.is_some()).count(), 2);
        assert_eq!(slots.waiting(), 8);
        assert!(slots.try_take(&key("calm", "one"), Class::Share).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_freed_slot_goes_to_a_deletion_first_then_to_the_namespaces_in_turn() {
        let (slots, woken) = recorded(1, 1, &[]);
        let holder = slots.try_take(&key("holder", "h"), Class::Share).unwrap();
        for (ns, name, class) in [
            ("a", "1", Class::Share),
            ("a", "2", Class::Share),
            ("a", "3", Class::Share),
            ("b", "1", Class::Share),
            ("c", "1", Class::Revoke),
        ] {
            assert!(slots.try_take(&key(ns, name), class).is_none());
        }
        assert!(
            take_woken(&woken).is_empty(),
            "nobody is woken while the slot is held"
        );
        drop(holder);
        let mut served = Vec::new();
        for _ in 0..5 {
            let next = take_woken(&woken);
            assert_eq!(next.len(), 1, "one slot, one wake-up at a time: {next:?}");
            let slot = slots.try_take(&next[0].as_str().into(), Class::Share);
            assert!(slot.is_some(), "the woken reconcile takes its granted slot");
            served.push(next[0].clone());
        }
        assert_eq!(served, ["c/1", "a/1", "b/1", "a/2", "a/3"]);
        assert_eq!(slots.waiting(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_resource_keeps_one_ticket_and_a_deletion_moves_it_ahead() {
        let (slots, woken) = recorded(1, 1, &[]);
        let holder = slots.try_take(&key("x", "h"), Class::Share).unwrap();
        for _ in 0..3 {
            assert!(slots.try_take(&key("a", "1"), Class::Share).is_none());
        }
        assert!(slots.try_take(&key("b", "1"), Class::Share).is_none());
        assert_eq!(
            slots.waiting(),
            2,
            "one ticket per resource however often it asks"
        );
        assert!(slots.try_take(&key("b", "1"), Class::Revoke).is_none());
        // A share's reconcile of a resource already queued for deletion keeps the deletion's place.
        assert!(slots.try_take(&key("b", "1"), Class::Share).is_none());
        assert_eq!(slots.waiting(), 2);
        drop(holder);
        assert_eq!(take_woken(&woken), ["b/1"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_granted_to_a_resource_that_is_gone_goes_on_at_once() {
        let (slots, woken) = recorded(1, 1, &["a/gone"]);
        let holder = slots.try_take(&key("x", "h"), Class::Share).unwrap();
        assert!(slots.try_take(&key("a", "gone"), Class::Share).is_none());
        assert!(slots.try_take(&key("b", "here"), Class::Share).is_none());
        drop(holder);
        assert_eq!(take_woken(&woken), ["b/here"]);
        assert!(slots.try_take(&key("b", "here"), Class::Share).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_grant_nobody_comes_for_is_given_back_after_its_ttl() {
        let (slots, woken) = recorded(1, 1, &[]);
        let holder = slots.try_take(&key("x", "h"), Class::Share).unwrap();
        assert!(slots.try_take(&key("a", "1"), Class::Share).is_none());
        assert!(slots.try_take(&key("b", "1"), Class::Share).is_none());
        drop(holder);
        assert_eq!(take_woken(&woken), ["a/1"]);
        tokio::time::sleep(GRANT_TTL - Duration::from_secs(1)).await;
        slots.sweep();
        assert!(take_woken(&woken).is_empty(), "the grant is still held");
        tokio::time::sleep(Duration::from_secs(1)).await;
        slots.sweep();
        assert_eq!(take_woken(&woken), ["b/1"]);
        // The late reconcile of the first queues again rather than taking a second slot.
        assert!(slots.try_take(&key("a", "1"), Class::Share).is_none());
        assert_eq!(slots.waiting(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn closing_hands_out_no_slot_any_more() {
        let (slots, woken) = recorded(1, 1, &[]);
        let held = slots.try_take(&key("a", "1"), Class::Share).unwrap();
        assert!(slots.try_take(&key("b", "1"), Class::Revoke).is_none());
        slots.close();
        drop(held);
        assert!(take_woken(&woken).is_empty());
        assert!(slots.try_take(&key("c", "1"), Class::Share).is_none());
    }
}
