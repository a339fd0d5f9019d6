//! Reconcile slots: how many resources are reconciled at once, all namespaces together
//! (`--concurrency`) and of one namespace (`--concurrency-per-namespace`), handed out in
//! [`fair`](crate::runtime::fair) turns: deletions first, then the namespaces round-robin.
//!
//! Why not kube's own bound: its controller starts queued reconciles first come first served, so
//! a backlog in one namespace (250 shares, each waiting for the OTS budget) held every slot, and
//! another namespace's reconcile, a deletion's burn included, did not even start until the
//! backlog was through. The controller therefore starts reconciles unbounded and each first takes
//! a slot here. A reconcile waiting for its slot is a small future: it has read no Secret yet, and
//! its own work is allocated only once it has the slot ([`Slots::run`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use crate::runtime::fair::{Class, FairQueue, TicketId};

#[derive(Debug)]
struct State {
    /// Reconciles waiting for a slot, each with what wakes it.
    queue: FairQueue<Arc<Notify>>,
    /// Slots taken, all namespaces together.
    taken: usize,
    /// Slots taken per namespace (namespaces with none are dropped).
    by_namespace: HashMap<String, usize>,
    /// Shutting down: nobody gets a slot any more.
    closed: bool,
}

#[derive(Debug)]
struct Shared {
    total: usize,
    per_namespace: usize,
    state: Mutex<State>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The ticket that may take a slot now, if a slot is free.
    fn next(&self, state: &State) -> Option<(TicketId, Arc<Notify>)> {
        if state.taken >= self.total {
            return None;
        }
        state
            .queue
            .head_where(|lane| {
                state.by_namespace.get(lane).copied().unwrap_or(0) < self.per_namespace
            })
            .map(|(id, woken)| (id, woken.clone()))
    }

    /// Wakes the waiter that may take a slot now, if any.
    fn wake_next(&self, state: &State) {
        if let Some((_, woken)) = self.next(state) {
            woken.notify_one();
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
    namespace: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.shared.state();
        state.taken = state.taken.saturating_sub(1);
        if let Some(n) = state.by_namespace.get_mut(&self.namespace) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                state.by_namespace.remove(&self.namespace);
            }
        }
        self.shared.wake_next(&state);
    }
}

/// A reconcile waiting for a slot: leaves the queue if it is dropped first.
struct Waiting<'a> {
    shared: &'a Shared,
    id: TicketId,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut state = self.shared.state();
        if state.queue.remove(self.id).is_some() {
            self.shared.wake_next(&state);
        }
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
                state: Mutex::new(State {
                    queue: FairQueue::default(),
                    taken: 0,
                    by_namespace: HashMap::new(),
                    closed: false,
                }),
            }),
        }
    }

    /// Waits for a slot in `namespace` (deletions ask with [`Class::Revoke`]); `None` once the
    /// slots are closed.
    pub async fn take(&self, namespace: &str, class: Class) -> Option<Slot> {
        let woken = Arc::new(Notify::new());
        let waiting = {
            let mut state = self.shared.state();
            if state.closed {
                return None;
            }
            let id = state.queue.push(class, namespace, woken.clone());
            self.shared.wake_next(&state);
            Waiting {
                shared: &self.shared,
                id,
            }
        };
        loop {
            {
                let mut state = self.shared.state();
                if state.closed {
                    return None;
                }
                if self
                    .shared
                    .next(&state)
                    .is_some_and(|(id, _)| id == waiting.id)
                {
                    state.queue.serve(waiting.id);
                    state.taken += 1;
                    *state.by_namespace.entry(namespace.to_owned()).or_default() += 1;
                    self.shared.wake_next(&state);
                    return Some(Slot {
                        shared: self.shared.clone(),
                        namespace: namespace.to_owned(),
                    });
                }
            }
            woken.notified().await;
        }
    }

    /// Runs the future `work` makes once a slot in `namespace` is taken, and gives the slot back
    /// after; `None` (and `work` never called) once the slots are closed. The future is boxed only
    /// then, so a waiting reconcile costs a few words, not the size of its work.
    pub async fn run<F: Future>(
        &self,
        namespace: &str,
        class: Class,
        work: impl FnOnce() -> F,
    ) -> Option<F::Output> {
        let _slot = self.take(namespace, class).await?;
        Some(Box::pin(work()).await)
    }

    /// Closes the slots (at shutdown): every waiting reconcile ends without a slot, and no new
    /// one is handed out; those running finish.
    pub fn close(&self) {
        let mut state = self.shared.state();
        state.closed = true;
        for woken in state.queue.values() {
            woken.notify_one();
        }
    }

    /// Reconciles waiting for a slot.
    pub fn waiting(&self) -> usize {
        self.shared.state().queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex as StdMutex;

    /// Queues one waiter per (namespace, class) in order; each records its name when it gets a
    /// slot and holds it until `release` says so.
    fn waiters(
        slots: &Slots,
        who: &[(&'static str, Class)],
        served: &Arc<StdMutex<Vec<&'static str>>>,
        release: &Arc<Notify>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        who.iter()
            .map(|(ns, class)| {
                let (slots, served, release) = (slots.clone(), served.clone(), release.clone());
                let (ns, class) = (*ns, *class);
                tokio::spawn(async move {
                    let _slot = slots.take(ns, class).await.expect("a slot");
                    served.lock().unwrap().push(ns);
                    release.notified().await;
                })
            })
            .collect()
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_namespace_takes_no_more_than_its_bound_and_others_start_at_once() {
        let slots = Slots::new(4, 2);
        let served = Arc::new(StdMutex::new(Vec::new()));
        let release = Arc::new(Notify::new());
        let flood = [("flood", Class::Share); 10];
        let _flood = waiters(&slots, &flood, &served, &release);
        settle().await;
        assert_eq!(served.lock().unwrap().len(), 2);
        assert_eq!(slots.waiting(), 8);
        let _calm = waiters(&slots, &[("calm", Class::Share)], &served, &release);
        settle().await;
        assert_eq!(*served.lock().unwrap(), ["flood", "flood", "calm"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_freed_slot_goes_to_a_deletion_first_then_to_the_namespaces_in_turn() {
        let slots = Slots::new(1, 1);
        let served = Arc::new(StdMutex::new(Vec::new()));
        let release = Arc::new(Notify::new());
        let holder = slots.take("holder", Class::Share).await.unwrap();
        let queued = [
            ("a", Class::Share),
            ("a", Class::Share),
            ("a", Class::Share),
            ("b", Class::Share),
            ("c", Class::Revoke),
        ];
        let _tasks = waiters(&slots, &queued, &served, &release);
        settle().await;
        assert!(served.lock().unwrap().is_empty());
        drop(holder);
        for _ in 0..queued.len() {
            settle().await;
            release.notify_one();
        }
        settle().await;
        assert_eq!(*served.lock().unwrap(), ["c", "a", "b", "a", "a"]);
    }

    #[tokio::test(start_paused = true)]
    async fn closing_ends_every_wait_without_a_slot() {
        let slots = Slots::new(1, 1);
        let _held = slots.take("a", Class::Share).await.unwrap();
        let waiting = tokio::spawn({
            let slots = slots.clone();
            async move { slots.take("b", Class::Revoke).await.is_none() }
        });
        settle().await;
        slots.close();
        assert!(waiting.await.unwrap(), "a closed wait ends without a slot");
        assert!(slots.take("c", Class::Share).await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_given_up_passes_the_slot_on() {
        let slots = Slots::new(1, 1);
        let held = slots.take("a", Class::Share).await.unwrap();
        let given_up = tokio::spawn({
            let slots = slots.clone();
            async move { slots.take("b", Class::Share).await.map(|_| ()) }
        });
        settle().await;
        given_up.abort();
        let _ = given_up.await;
        assert_eq!(slots.waiting(), 0);
        drop(held);
        assert!(slots.take("c", Class::Share).await.is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn work_waiting_for_a_slot_is_small_whatever_its_size() {
        let slots = Slots::new(1, 1);
        // A future that keeps 64 KiB across an await, as a reconcile keeps its whole state.
        let work = || async {
            let big = [1u8; 64 * 1024];
            tokio::task::yield_now().await;
            big.iter().map(|b| usize::from(*b)).sum::<usize>()
        };
        let waiting = slots.run("a", Class::Share, work);
        assert!(
            std::mem::size_of_val(&waiting) < 1024,
            "{} bytes",
            std::mem::size_of_val(&waiting)
        );
        assert_eq!(waiting.await, Some(64 * 1024));
    }
}
