//! Turns handed out fairly among tenants, the order behind the OTS throttle and the reconcile
//! slots: by [`Class`] first (every queued [`Class::Revoke`] before any [`Class::Share`]), then
//! round-robin across lanes (one lane per namespace), first come first served within a lane.
//!
//! So a namespace with a thousand calls queued delays another namespace's call by at most one turn
//! per namespace that has something queued, however much each has queued; and a deletion's burn
//! waits only for other burns. A plain data structure: who waits on it, and how, is its users'
//! business.

use std::collections::{HashMap, VecDeque};

/// What a queued turn is for. Every queued `Revoke` is served before any `Share`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Taking a live link back: the burn of a deleted share (its link stays openable until the
    /// burn is done), and the reconcile that does it.
    Revoke,
    /// Everything else a resource waits for: shares; the burn and the share of a reissue, a
    /// reshare or a renewal; credential checks; receipts read on purpose.
    Share,
}

impl Class {
    /// The classes in the order they are served.
    const IN_ORDER: [Class; 2] = [Class::Revoke, Class::Share];

    fn index(self) -> usize {
        match self {
            Class::Revoke => 0,
            Class::Share => 1,
        }
    }
}

/// A queued turn's number, unique within its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TicketId(u64);

/// The lanes of one class: each with its queued tickets, and the order they get their turns in.
#[derive(Debug)]
struct Lanes<T> {
    /// Lanes with tickets queued; the front one is served next.
    order: VecDeque<String>,
    queues: HashMap<String, VecDeque<(TicketId, T)>>,
}

impl<T> Default for Lanes<T> {
    fn default() -> Self {
        Self {
            order: VecDeque::new(),
            queues: HashMap::new(),
        }
    }
}

impl<T> Lanes<T> {
    /// Takes `id` out of `lane`; `rotate`: the lane had its turn and goes to the back.
    fn take(&mut self, lane: &str, id: TicketId, rotate: bool) -> Option<T> {
        let queue = self.queues.get_mut(lane)?;
        let at = queue.iter().position(|(queued, _)| *queued == id)?;
        let (_, value) = queue.remove(at)?;
        let empty = queue.is_empty();
        if empty {
            self.queues.remove(lane);
        }
        if empty || rotate {
            if let Some(at) = self.order.iter().position(|l| l == lane) {
                self.order.remove(at);
            }
            if !empty {
                self.order.push_back(lane.to_owned());
            }
        }
        Some(value)
    }
}

/// Tickets waiting for their turn, each carrying a `T` (what wakes its waiter, say).
#[derive(Debug)]
pub struct FairQueue<T> {
    classes: [Lanes<T>; 2],
    /// Where each queued ticket is.
    queued: HashMap<TicketId, (Class, String)>,
    next_id: u64,
}

impl<T> Default for FairQueue<T> {
    fn default() -> Self {
        Self {
            classes: [Lanes::default(), Lanes::default()],
            queued: HashMap::new(),
            next_id: 0,
        }
    }
}

impl<T> FairQueue<T> {
    /// Queues a ticket of `class` at the back of `lane`. A lane that had nothing queued gets its
    /// first turn after every lane already waiting has had one.
    pub fn push(&mut self, class: Class, lane: &str, value: T) -> TicketId {
        let id = TicketId(self.next_id);
        self.next_id += 1;
        let lanes = &mut self.classes[class.index()];
        let queue = lanes.queues.entry(lane.to_owned()).or_default();
        if queue.is_empty() {
            lanes.order.push_back(lane.to_owned());
        }
        queue.push_back((id, value));
        self.queued.insert(id, (class, lane.to_owned()));
        id
    }

    /// The ticket to serve next.
    pub fn head(&self) -> Option<(TicketId, &T)> {
        self.head_where(|_| true)
    }

    /// The ticket to serve next among lanes `eligible` accepts (a lane at its own limit waits,
    /// without holding back the others).
    pub fn head_where(&self, eligible: impl Fn(&str) -> bool) -> Option<(TicketId, &T)> {
        Class::IN_ORDER.iter().find_map(|class| {
            let lanes = &self.classes[class.index()];
            lanes
                .order
                .iter()
                .filter(|lane| eligible(lane))
                .find_map(|lane| lanes.queues.get(lane)?.front())
                .map(|(id, value)| (*id, value))
        })
    }

    /// The ticket to serve next among tickets `eligible` accepts: the first one each lane has
    /// that may go (a call to a server at its own limit waits, without holding back the calls
    /// behind it to other servers), in the usual order of classes and lanes.
    pub fn head_by(&self, eligible: impl Fn(&T) -> bool) -> Option<(TicketId, &T)> {
        Class::IN_ORDER.iter().find_map(|class| {
            let lanes = &self.classes[class.index()];
            lanes.order.iter().find_map(|lane| {
                lanes
                    .queues
                    .get(lane)?
                    .iter()
                    .find(|(_, value)| eligible(value))
                    .map(|(id, value)| (*id, value))
            })
        })
    }

    /// Serves `id`: takes it out of the queue, and its lane goes to the back of its class.
    pub fn serve(&mut self, id: TicketId) -> Option<T> {
        let (class, lane) = self.queued.remove(&id)?;
        self.classes[class.index()].take(&lane, id, true)
    }

    /// Takes `id` out of the queue without serving it (its waiter gave up); its lane keeps its
    /// place.
    pub fn remove(&mut self, id: TicketId) -> Option<T> {
        let (class, lane) = self.queued.remove(&id)?;
        self.classes[class.index()].take(&lane, id, false)
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// Frees the room a drained backlog left, once nothing is queued (hash tables keep their
    /// largest size otherwise: ~0.6 MiB after a backlog of 5,000 tickets). Small tables are
    /// kept, so a queue that empties and fills again does not churn.
    pub fn shrink_if_drained(&mut self) {
        const KEEP: usize = 64;
        if !self.queued.is_empty() || self.queued.capacity() <= KEEP {
            return;
        }
        self.queued = HashMap::new();
        for lanes in &mut self.classes {
            *lanes = Lanes::default();
        }
    }

    /// How many tickets are queued.
    pub fn len(&self) -> usize {
        self.queued.len()
    }

    /// Every queued ticket's value, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.classes
            .iter()
            .flat_map(|lanes| lanes.queues.values().flatten().map(|(_, value)| value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves every ticket in turn and returns their values.
    fn drain(queue: &mut FairQueue<&'static str>) -> Vec<&'static str> {
        let mut served = Vec::new();
        while let Some((id, _)) = queue.head() {
            served.extend(queue.serve(id));
        }
        served
    }

    #[test]
    fn lanes_take_turns_and_each_lane_keeps_its_order() {
        let mut q = FairQueue::default();
        for value in ["a1", "a2", "a3", "a4"] {
            q.push(Class::Share, "a", value);
        }
        q.push(Class::Share, "b", "b1");
        q.push(Class::Share, "b", "b2");
        q.push(Class::Share, "c", "c1");
        assert_eq!(drain(&mut q), ["a1", "b1", "c1", "a2", "b2", "a3", "a4"]);
        assert!(q.is_empty());
    }

    #[test]
    fn a_new_lane_waits_one_turn_per_lane_already_waiting_not_for_their_backlog() {
        let mut q = FairQueue::default();
        for _ in 0..1000 {
            q.push(Class::Share, "flood", "flood");
        }
        q.push(Class::Share, "other", "other");
        let served = drain(&mut q);
        assert_eq!(served.iter().position(|v| *v == "other"), Some(1));
    }

    #[test]
    fn every_revocation_goes_before_any_share_whoever_queued_first() {
        let mut q = FairQueue::default();
        q.push(Class::Share, "a", "a-share");
        q.push(Class::Share, "b", "b-share");
        q.push(Class::Revoke, "b", "b-revoke");
        q.push(Class::Revoke, "a", "a-revoke");
        assert_eq!(
            drain(&mut q),
            ["b-revoke", "a-revoke", "a-share", "b-share"]
        );
    }

    #[test]
    fn a_ticket_given_up_leaves_its_lane_in_place() {
        let mut q = FairQueue::default();
        q.push(Class::Share, "a", "a1");
        let b1 = q.push(Class::Share, "b", "b1");
        q.push(Class::Share, "b", "b2");
        q.push(Class::Share, "c", "c1");
        assert_eq!(q.remove(b1), Some("b1"));
        assert_eq!(q.remove(b1), None);
        assert_eq!(q.len(), 3);
        assert_eq!(drain(&mut q), ["a1", "b2", "c1"]);
        let only = q.push(Class::Revoke, "d", "d1");
        assert_eq!(q.head().map(|(id, _)| id), Some(only));
        assert_eq!(q.remove(only), Some("d1"));
        assert!(q.is_empty() && q.head().is_none());
    }

    #[test]
    fn a_lane_that_may_not_go_now_does_not_hold_back_the_others() {
        let mut q = FairQueue::default();
        q.push(Class::Share, "a", "a1");
        q.push(Class::Share, "b", "b1");
        let (id, value) = q.head_where(|lane| lane != "a").unwrap();
        assert_eq!(*value, "b1");
        q.serve(id);
        // a kept its place at the front.
        assert_eq!(q.head().map(|(_, v)| *v), Some("a1"));
        assert_eq!(q.values().count(), 1);
    }

    #[test]
    fn a_ticket_that_may_not_go_now_does_not_hold_back_those_behind_it() {
        let mut q = FairQueue::default();
        q.push(Class::Share, "a", "slow-1");
        q.push(Class::Share, "a", "fast-1");
        q.push(Class::Share, "b", "slow-2");
        q.push(Class::Revoke, "c", "slow-revoke");
        let fast = |v: &&str| !v.starts_with("slow");
        let (id, value) = q.head_by(fast).unwrap();
        assert_eq!(*value, "fast-1");
        q.serve(id);
        assert_eq!(q.head_by(fast), None);
        // Once allowed, the revocation still goes first, then a's own order.
        assert_eq!(q.head_by(|_| true).map(|(_, v)| *v), Some("slow-revoke"));
    }

    #[test]
    fn a_drained_backlog_gives_its_room_back_and_keeps_its_order_after() {
        let mut queue = FairQueue::default();
        for i in 0..1000 {
            queue.push(Class::Share, if i % 2 == 0 { "a" } else { "b" }, "x");
        }
        queue.shrink_if_drained();
        assert_eq!(
            queue.len(),
            1000,
            "nothing is dropped while tickets are queued"
        );
        assert_eq!(drain(&mut queue).len(), 1000);
        assert!(queue.queued.capacity() >= 1000);
        queue.shrink_if_drained();
        assert!(queue.queued.capacity() < 64, "{}", queue.queued.capacity());
        queue.push(Class::Share, "a", "first");
        queue.push(Class::Revoke, "b", "burn");
        assert_eq!(drain(&mut queue), ["burn", "first"]);
    }
}
