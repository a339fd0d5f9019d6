//! When each live link is next due for a state check, for every share at once.
//!
//! Every live share waits for its next check (seconds to minutes). kube's controller could hold
//! those waits (`Action::requeue`), but its scheduler keeps several hundred bytes per waiting
//! object (a reconcile request in a map, in a delay queue and in its slab), which made the
//! scheduler the largest cost per share after the watch cache. The clock keeps one due time and
//! one `namespace/name` per share, and hands an object to its controller only once it is due.
//!
//! A wake-up is only a nudge: the reconcile it starts asks [`Memory`](super::Memory) whether the
//! check is really due (and sets the next wake-up if not), so a stale or repeated wake-up costs a
//! reconcile, never an extra call to a server.

use super::Watched;
use crate::resource::OneTimeShare;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

/// A share, as the clock names it: `namespace/name` (a namespace never holds a `/`).
type Key = Arc<str>;

/// The due times of every share waiting for a check.
#[derive(Default)]
pub struct CheckClock {
    /// Wake-ups in time order. A share's wake-up is not replaced when its schedule moves: the
    /// stale one costs one reconcile that finds the check not due (and asks for the wake-up it
    /// already has, which is not added twice), so no index by share is kept.
    due: Mutex<BTreeSet<(Instant, Key)>>,
    /// Told when a wake-up earlier than every other one is set.
    earlier: Notify,
}

/// Where the clock sends objects that are due: the controller of their namespace (`None`: of
/// every namespace).
pub type Route = (Option<String>, mpsc::UnboundedSender<ObjectRef<Watched>>);

impl CheckClock {
    /// Wakes `obj`'s controller for it at `at`.
    pub fn wake_at(&self, obj: &OneTimeShare, at: Instant) {
        let key: Key = format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any()).into();
        let mut due = self.due.lock().unwrap_or_else(PoisonError::into_inner);
        due.insert((at, key));
        let first = due.first().map(|(first, _)| *first);
        drop(due);
        if first == Some(at) {
            self.earlier.notify_one();
        }
    }

    /// Wakes the controller of the share `key` (`namespace/name`) names, now.
    pub fn wake_now(&self, key: Arc<str>) {
        let now = Instant::now();
        self.due
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((now, key));
        self.earlier.notify_one();
    }

    /// How many wake-ups are waiting.
    pub fn waiting(&self) -> usize {
        self.due
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Takes every wake-up that is due at `now`; tells when the next one is due.
    fn take_due(&self, now: Instant) -> (Vec<Key>, Option<Instant>) {
        let mut due = self.due.lock().unwrap_or_else(PoisonError::into_inner);
        let mut taken = Vec::new();
        while let Some((at, _)) = due.first()
            && *at <= now
        {
            if let Some((_, key)) = due.pop_first() {
                taken.push(key);
            }
        }
        (taken, due.first().map(|(at, _)| *at))
    }

    /// Sends each share to its controller when it is due, until `shutdown` completes.
    pub async fn run(&self, routes: Vec<Route>, shutdown: impl Future<Output = ()>) {
        let work = async {
            loop {
                let (due, next) = self.take_due(Instant::now());
                for key in due {
                    send(&routes, &key);
                }
                let earlier = self.earlier.notified();
                match next {
                    Some(at) => {
                        tokio::select! {
                            () = tokio::time::sleep_until(at) => {}
                            () = earlier => {}
                        }
                    }
                    None => earlier.await,
                }
            }
        };
        tokio::select! {
            () = work => {}
            () = shutdown => {}
        }
    }
}

/// Sends the share `key` names to the controller of its namespace.
fn send(routes: &[Route], key: &str) {
    let Some((namespace, name)) = key.split_once('/') else {
        return;
    };
    let route = routes
        .iter()
        .find(|(watched, _)| watched.as_deref().is_none_or(|ns| ns == namespace));
    if let Some((_, controller)) = route {
        // A controller that stopped takes no more work: nothing to do about it here.
        let _ = controller.send(ObjectRef::new(name).within(namespace));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn in_secs(secs: u64) -> Instant {
        Instant::now() + Duration::from_secs(secs)
    }

    fn share(namespace: &str, name: &str) -> OneTimeShare {
        let spec = serde_json::json!({"secretRef": {"name": "db"}});
        let mut obj = OneTimeShare::new(name, serde_json::from_value(spec).unwrap());
        obj.metadata.namespace = Some(namespace.into());
        obj
    }

    #[tokio::test(start_paused = true)]
    async fn a_share_is_sent_to_its_namespace_controller_when_due_and_once() {
        let clock = Arc::new(CheckClock::default());
        let (a_tx, mut a_rx) = mpsc::unbounded_channel();
        let (b_tx, mut b_rx) = mpsc::unbounded_channel();
        clock.wake_at(&share("a", "one"), in_secs(30));
        let running = clock.clone();
        let routes = vec![(Some("b".to_owned()), b_tx), (Some("a".to_owned()), a_tx)];
        tokio::spawn(async move { running.run(routes, std::future::pending()).await });
        tokio::time::sleep(Duration::from_secs(29)).await;
        assert!(a_rx.try_recv().is_err(), "not due yet");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            a_rx.try_recv().ok(),
            Some(ObjectRef::new("one").within("a"))
        );
        assert!(
            b_rx.try_recv().is_err(),
            "another namespace's controller is not woken"
        );
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(a_rx.try_recv().is_err(), "a wake-up fires once");
        assert_eq!(clock.waiting(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_earlier_wake_up_is_not_missed_and_the_same_one_twice_fires_once() {
        let clock = Arc::new(CheckClock::default());
        let (tx, mut rx) = mpsc::unbounded_channel();
        let running = clock.clone();
        tokio::spawn(async move { running.run(vec![(None, tx)], std::future::pending()).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        clock.wake_at(&share("a", "late"), in_secs(600));
        let moved = in_secs(300);
        clock.wake_at(&share("a", "moved"), moved);
        clock.wake_at(&share("a", "moved"), moved);
        // Set while the clock sleeps until the 300 s wake-up: it must wake earlier.
        clock.wake_at(&share("b", "soon"), in_secs(5));
        assert_eq!(clock.waiting(), 3);
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(rx.try_recv().ok(), Some(ObjectRef::new("soon").within("b")));
        tokio::time::sleep(Duration::from_secs(300)).await;
        assert_eq!(
            rx.try_recv().ok(),
            Some(ObjectRef::new("moved").within("a"))
        );
        assert!(
            rx.try_recv().is_err(),
            "one wake-up for the same share and time"
        );
        assert_eq!(clock.waiting(), 1);
    }
}
