//! Live links checked many at a time: v2's batch status call (`POST /secret/status`) names the
//! secrets still unread among up to [`BATCH`] asked, reading nothing. A link the answer leaves
//! out was revealed, burned or expired (the answer does not say which), and a link the server
//! marks previewed may have an `openedAt` to learn: for those, and only those, the share's own
//! reconcile is woken to read the receipt, which decides.
//!
//! The tracker holds, per server and identity, each live link's secret key and when it was last
//! seen unread. It checks the links least recently seen first, no link more often than the
//! configured minimum, and only with OTS capacity that no share or burn waits for (the
//! throttle's `IfFree`), so a large set of links is checked as fast as the budget allows and
//! never slows a share or a burn down. A server without the route (v1, or v2 before v0.24)
//! is learned once; its links go back to one receipt at a time.
//!
//! It keeps no Kubernetes objects and makes no decision about a share: a wake-up only makes the
//! share's next reconcile read the receipt now, exactly as a due check would.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::ots::{OtsClient, OtsError, Unread};

/// Secrets asked about per call: 200 keys of 62 characters make a 12.6 KB request, well inside
/// any server's request size, and one answer a few hundred bytes per live secret.
pub const BATCH: usize = 200;

/// A server as the tracker groups links: its base URL and the username the calls go out as
/// (`None`: anonymous). Links of one group are checked together.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Group {
    /// The server's base URL, as recorded.
    pub url: String,
    /// The account the calls are made as.
    pub username: Option<String>,
}

/// One link being tracked.
struct Link {
    /// Shared by the group's links (one copy of the URL and username per server).
    group: Arc<Group>,
    /// The share, as the check clock names it (`namespace/name`).
    share: Arc<str>,
    /// The link's last part: what the batch call asks about. A capability: never logged.
    secret_key: Box<str>,
    /// When the link was last seen unread (or registered).
    seen: Instant,
    /// Whether the server marked it previewed already (its wake-up was sent).
    previewed: bool,
}

/// The links of one group, least recently seen first.
struct Members {
    client: OtsClient,
    order: BTreeSet<(Instant, Arc<str>)>,
}

#[derive(Default)]
struct State {
    /// By share uid.
    links: HashMap<Arc<str>, Link>,
    groups: HashMap<Arc<Group>, Members>,
    /// Servers (base URLs) found without the batch route.
    without_route: HashSet<String>,
    /// Shares woken to read their receipt that have not read it yet, and when each was woken:
    /// no batch call is made while one is owed (for at most [`OWED_WAIT`]).
    owed: HashMap<Arc<str>, Instant>,
}

/// What became of a link, for the share's reconcile to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wake {
    /// The share's uid.
    pub uid: Arc<str>,
    /// The share, `namespace/name`.
    pub share: Arc<str>,
}

/// What a batch check of one group came to.
pub enum Checked {
    /// The server answered: one [`Unread`] per key asked, in order.
    Answered(Vec<Unread>),
    /// No OTS capacity was free; try again after this long.
    Busy(Duration),
    /// The call failed.
    Failed(OtsError),
}

/// How long the next batch call waits at most for a woken share's receipt read: long enough
/// for its reconcile to get a slot and the throttle's next free call; a share that never reads
/// (deleted meanwhile, say) does not hold tracking up for longer.
pub const OWED_WAIT: Duration = Duration::from_secs(10);

/// The links checked by batch, per server.
#[derive(Default)]
pub struct BatchTracker {
    state: Mutex<State>,
    /// Told when a link is added to an empty schedule, a wake-up may be due sooner, or an owed
    /// receipt read was made.
    added: Notify,
}

impl BatchTracker {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether links on `url` can be checked by batch (not yet found without the route).
    pub fn serves(&self, url: &str) -> bool {
        !self.state().without_route.contains(url)
    }

    /// Whether the share `uid` is being tracked here.
    pub fn tracks(&self, uid: &str) -> bool {
        self.state().links.contains_key(uid)
    }

    /// How many links are tracked.
    pub fn len(&self) -> usize {
        self.state().links.len()
    }

    /// Whether no link is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tracks the share `uid`'s live link (`secret_key` on `group`'s server, asked with
    /// `client`), first checked one `interval` from now. A share tracked already keeps its
    /// place unless its link changed.
    pub fn watch(
        &self,
        uid: &str,
        share: &str,
        group: Group,
        client: &OtsClient,
        secret_key: &str,
    ) {
        let mut state = self.state();
        if let Some(link) = state.links.get(uid)
            && *link.group == group
            && *link.secret_key == *secret_key
        {
            return;
        }
        remove(&mut state, uid);
        let uid: Arc<str> = uid.into();
        let now = Instant::now();
        let group = match state.groups.get_key_value(&group) {
            Some((shared, _)) => shared.clone(),
            None => Arc::new(group),
        };
        let members = state
            .groups
            .entry(group.clone())
            .or_insert_with(|| Members {
                client: client.clone(),
                order: BTreeSet::new(),
            });
        // The newest registrant's client: a rotated token is used from its next share on.
        members.client = client.clone();
        members.order.insert((now, uid.clone()));
        state.links.insert(
            uid,
            Link {
                group,
                share: share.into(),
                secret_key: secret_key.into(),
                seen: now,
                previewed: false,
            },
        );
        drop(state);
        self.added.notify_one();
    }

    /// Stops tracking every share whose uid `live` does not hold.
    pub fn retain(&self, live: &HashSet<String>) {
        let mut state = self.state();
        let gone: Vec<Arc<str>> = state
            .links
            .keys()
            .filter(|uid| !live.contains(&***uid))
            .cloned()
            .collect();
        for uid in gone {
            remove(&mut state, &uid);
        }
    }

    /// Stops tracking the share `uid` (its link is spent, replaced or gone).
    pub fn forget(&self, uid: &str) {
        let mut state = self.state();
        remove(&mut state, uid);
        if state.owed.remove(uid).is_some() {
            drop(state);
            self.added.notify_one();
        }
    }

    /// The share `uid`, woken, has read its receipt (whatever it said): batch calls may go on.
    pub fn read_done(&self, uid: &str) {
        if self.state().owed.remove(uid).is_some() {
            self.added.notify_one();
        }
    }

    /// Until when the next batch call waits for owed receipt reads (`None`: it need not).
    /// Reads owed for [`OWED_WAIT`] are waited for no longer.
    fn owed_until(&self, now: Instant) -> Option<Instant> {
        let mut state = self.state();
        state.owed.retain(|_, woken| *woken + OWED_WAIT > now);
        state.owed.values().min().map(|woken| *woken + OWED_WAIT)
    }

    /// The next batch due: once a group's least recently seen link has not been seen for
    /// `interval`, that group, its client and up to [`BATCH`] links least recently seen first,
    /// taking along those due within half an interval (links made one after another would
    /// otherwise each come due alone and cost a call each); else when the next one is due.
    fn next_batch(&self, interval: Duration, now: Instant) -> Result<Batch, Option<Instant>> {
        let state = self.state();
        let mut soonest: Option<Instant> = None;
        let mut best: Option<(&Group, &Members, Instant)> = None;
        for (group, members) in &state.groups {
            let Some((seen, _)) = members.order.first() else {
                continue;
            };
            let due = *seen + interval;
            if due <= now {
                if best.is_none_or(|(_, _, oldest)| *seen < oldest) {
                    best = Some((&**group, members, *seen));
                }
            } else {
                soonest = Some(soonest.map_or(due, |s| s.min(due)));
            }
        }
        let Some((group, members, _)) = best else {
            return Err(soonest);
        };
        let links = members
            .order
            .iter()
            .take_while(|(seen, _)| *seen + interval <= now + interval / 2)
            .take(BATCH)
            .filter_map(|(_, uid)| {
                let link = state.links.get(uid)?;
                Some((uid.clone(), link.secret_key.to_string()))
            })
            .collect();
        Ok(Batch {
            group: group.clone(),
            client: members.client.clone(),
            links,
        })
    }

    /// Applies a batch's outcome; the shares whose reconcile must read the receipt now.
    fn settle(&self, batch: &Batch, checked: &Checked, now: Instant) -> Vec<Wake> {
        let mut state = self.state();
        let mut wakes = Vec::new();
        match checked {
            Checked::Answered(answers) => {
                for ((uid, key), answer) in batch.links.iter().zip(answers) {
                    // Only the link that was asked about: it may have been replaced meanwhile.
                    let Some(link) = state.links.get_mut(uid).filter(|l| *l.secret_key == **key)
                    else {
                        continue;
                    };
                    match answer {
                        Unread::Yes { previewed } => {
                            let newly_previewed = *previewed && !link.previewed;
                            link.previewed |= *previewed;
                            let share = link.share.clone();
                            touch(&mut state, uid, now);
                            if newly_previewed {
                                state.owed.insert(uid.clone(), now);
                                wakes.push(Wake {
                                    uid: uid.clone(),
                                    share,
                                });
                            }
                        }
                        Unread::Left => {
                            let share = link.share.clone();
                            remove(&mut state, uid);
                            state.owed.insert(uid.clone(), now);
                            wakes.push(Wake {
                                uid: uid.clone(),
                                share,
                            });
                        }
                    }
                }
            }
            Checked::Failed(OtsError::RouteNotFound { .. }) => {
                // The server has no batch route: every link of it goes back to its own checks.
                state.without_route.insert(batch.group.url.clone());
                let uids: Vec<Arc<str>> = state
                    .links
                    .iter()
                    .filter(|(_, link)| link.group.url == batch.group.url)
                    .map(|(uid, _)| uid.clone())
                    .collect();
                for uid in uids {
                    if let Some(link) = state.links.get(&uid) {
                        wakes.push(Wake {
                            uid: uid.clone(),
                            share: link.share.clone(),
                        });
                    }
                    remove(&mut state, &uid);
                }
            }
            // Nothing is concluded from a failure: the links are asked again one interval
            // later, least recently seen first as before.
            Checked::Failed(_) => {
                for (uid, key) in &batch.links {
                    if state
                        .links
                        .get(uid)
                        .is_some_and(|link| *link.secret_key == **key)
                    {
                        touch(&mut state, uid, now);
                    }
                }
            }
            Checked::Busy(_) => {}
        }
        wakes
    }

    /// Checks the tracked links until `shutdown` completes: `check` makes one batch call (with
    /// the group's client, through the throttle), `wake` hands a share to its reconcile. The
    /// interval is asked anew for each batch (it may follow the configuration).
    ///
    /// Each share woken owes a receipt read from the same spare capacity the batch calls use,
    /// and goes first: no batch call is made until the woken shares have read (see
    /// [`Self::read_done`]) or [`OWED_WAIT`] has passed. Otherwise a batch loop that takes every
    /// free call as soon as it comes would crowd the reads out, and a revealed link would be
    /// seen gone within one pass but shown `Received` only minutes later.
    pub async fn run<C, F, W>(
        &self,
        interval: impl Fn() -> Duration,
        check: C,
        wake: W,
        shutdown: impl Future<Output = ()>,
    ) where
        C: Fn(Group, OtsClient, Vec<String>) -> F,
        F: Future<Output = Checked>,
        W: Fn(Wake),
    {
        let work = async {
            loop {
                let added = self.added.notified();
                if let Some(until) = self.owed_until(Instant::now()) {
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => {}
                        () = added => {}
                    }
                    continue;
                }
                match self.next_batch(interval(), Instant::now()) {
                    Ok(batch) => {
                        let keys = batch.links.iter().map(|(_, key)| key.clone()).collect();
                        let checked = check(batch.group.clone(), batch.client.clone(), keys).await;
                        if let Checked::Failed(error) = &checked {
                            tracing::warn!(
                                server = %batch.group.url,
                                links = batch.links.len(),
                                error = %error,
                                "a batch check of live links failed; they are asked again later"
                            );
                        }
                        let busy = match &checked {
                            Checked::Busy(retry_in) => Some(*retry_in),
                            _ => None,
                        };
                        for wake_up in self.settle(&batch, &checked, Instant::now()) {
                            wake(wake_up);
                        }
                        if let Some(pause) = busy {
                            tokio::time::sleep(pause.max(Duration::from_millis(50))).await;
                        }
                    }
                    Err(Some(at)) => {
                        tokio::select! {
                            () = tokio::time::sleep_until(at) => {}
                            () = added => {}
                        }
                    }
                    Err(None) => added.await,
                }
            }
        };
        tokio::select! {
            () = work => {}
            () = shutdown => {}
        }
    }
}

/// One call's worth of links of one group.
struct Batch {
    group: Group,
    client: OtsClient,
    /// (uid, secret key).
    links: Vec<(Arc<str>, String)>,
}

/// Marks the link of `uid` seen unread at `now` (moving it to the back of its group's order).
fn touch(state: &mut State, uid: &Arc<str>, now: Instant) {
    let Some(link) = state.links.get_mut(uid) else {
        return;
    };
    let before = link.seen;
    link.seen = now;
    let group = link.group.clone();
    if let Some(members) = state.groups.get_mut(&group) {
        members.order.remove(&(before, uid.clone()));
        members.order.insert((now, uid.clone()));
    }
}

/// Removes the link of `uid`, and its group once empty.
fn remove(state: &mut State, uid: &str) {
    let Some((uid, link)) = state.links.remove_entry(uid) else {
        return;
    };
    if let Some(members) = state.groups.get_mut(&link.group) {
        members.order.remove(&(link.seen, uid));
        if members.order.is_empty() {
            state.groups.remove(&link.group);
        }
    }
}

/// The secret key a link ends with (`…/secret/KEY`), when it looks like one.
pub fn secret_key_of(link: &str) -> Option<&str> {
    let path = link.split(['?', '#']).next()?;
    let key = path.trim_end_matches('/').rsplit('/').next()?;
    crate::ots::validate::key(key).ok().map(|()| key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ots::ClientConfig;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn client() -> OtsClient {
        OtsClient::new(ClientConfig::new(
            url::Url::parse("http://ots.invalid").unwrap(),
        ))
        .unwrap()
    }

    fn group(url: &str) -> Group {
        Group {
            url: url.into(),
            username: None,
        }
    }

    fn key(n: usize) -> String {
        format!("key{n:059}")
    }

    const INTERVAL: Duration = Duration::from_secs(30);

    #[tokio::test(start_paused = true)]
    async fn due_links_go_in_batches_of_at_most_200_least_recently_seen_first() {
        let tracker = BatchTracker::default();
        for n in 0..450 {
            tracker.watch(
                &format!("uid{n}"),
                &format!("ns/s{n}"),
                group("a"),
                &client(),
                &key(n),
            );
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        assert!(
            tracker.next_batch(INTERVAL, Instant::now()).is_err(),
            "none due yet"
        );
        tokio::time::advance(INTERVAL).await;
        let now = Instant::now();
        let first = tracker.next_batch(INTERVAL, now).ok().unwrap();
        assert_eq!(first.links.len(), BATCH);
        assert_eq!(first.links[0].1, key(0), "the oldest first");
        let answers = vec![Unread::Yes { previewed: false }; BATCH];
        assert!(
            tracker
                .settle(&first, &Checked::Answered(answers), now)
                .is_empty()
        );
        let second = tracker.next_batch(INTERVAL, now).ok().unwrap();
        assert_eq!(second.links[0].1, key(BATCH), "then the next oldest");
        // The links seen just now are not due again until one interval later.
        let answers = vec![Unread::Yes { previewed: false }; BATCH];
        tracker.settle(&second, &Checked::Answered(answers), now);
        let third = tracker.next_batch(INTERVAL, now).ok().unwrap();
        assert_eq!(third.links.len(), 50);
    }

    #[tokio::test(start_paused = true)]
    async fn links_made_one_after_another_are_asked_about_together() {
        let tracker = BatchTracker::default();
        for n in 0..10 {
            tracker.watch(
                &format!("uid{n}"),
                &format!("ns/s{n}"),
                group("a"),
                &client(),
                &key(n),
            );
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        // The first is due 30 s after it was made; the other nine come due within 9 s.
        tokio::time::advance(INTERVAL - Duration::from_secs(10)).await;
        let now = Instant::now();
        let batch = tracker.next_batch(INTERVAL, now).ok().unwrap();
        assert_eq!(batch.links.len(), 10, "one call for all ten");
        let answers = vec![Unread::Yes { previewed: false }; 10];
        tracker.settle(&batch, &Checked::Answered(answers), now);
        assert_eq!(
            tracker.next_batch(INTERVAL, now).err(),
            Some(Some(now + INTERVAL)),
            "and the next one a whole interval later"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_link_that_left_the_answer_wakes_its_share_once_and_is_no_longer_tracked() {
        let tracker = BatchTracker::default();
        tracker.watch("u1", "ns/one", group("a"), &client(), &key(1));
        tracker.watch("u2", "ns/two", group("a"), &client(), &key(2));
        tracker.watch("u3", "ns/three", group("a"), &client(), &key(3));
        tokio::time::advance(INTERVAL).await;
        let now = Instant::now();
        let batch = tracker.next_batch(INTERVAL, now).ok().unwrap();
        let answers = vec![
            Unread::Left,
            Unread::Yes { previewed: true },
            Unread::Yes { previewed: false },
        ];
        let wakes = tracker.settle(&batch, &Checked::Answered(answers), now);
        let woken: Vec<&str> = wakes.iter().map(|w| &*w.share).collect();
        assert_eq!(woken, ["ns/one", "ns/two"], "left, and newly previewed");
        assert!(!tracker.tracks("u1"));
        assert!(tracker.tracks("u2") && tracker.tracks("u3"));
        // Previewed again: no second wake-up.
        tokio::time::advance(INTERVAL).await;
        let now = Instant::now();
        let batch = tracker.next_batch(INTERVAL, now).ok().unwrap();
        let answers = vec![
            Unread::Yes { previewed: true },
            Unread::Yes { previewed: false },
        ];
        assert!(
            tracker
                .settle(&batch, &Checked::Answered(answers), now)
                .is_empty()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_or_busy_call_concludes_nothing() {
        let tracker = BatchTracker::default();
        tracker.watch("u1", "ns/one", group("a"), &client(), &key(1));
        tokio::time::advance(INTERVAL).await;
        let now = Instant::now();
        let batch = tracker.next_batch(INTERVAL, now).ok().unwrap();
        let busy = Checked::Busy(Duration::from_secs(1));
        assert!(tracker.settle(&batch, &busy, now).is_empty());
        assert!(tracker.next_batch(INTERVAL, now).is_ok(), "still due");
        let failed = Checked::Failed(OtsError::Unavailable {
            detail: "HTTP 503".into(),
        });
        assert!(tracker.settle(&batch, &failed, now).is_empty());
        assert!(tracker.tracks("u1"), "a failure never marks a link gone");
        assert!(
            tracker.next_batch(INTERVAL, now).is_err(),
            "asked again later"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_without_the_route_hands_its_links_back_and_is_remembered() {
        let tracker = BatchTracker::default();
        tracker.watch("u1", "ns/one", group("old"), &client(), &key(1));
        tracker.watch("u2", "ns/two", group("new"), &client(), &key(2));
        tokio::time::advance(INTERVAL).await;
        let now = Instant::now();
        let batch = loop {
            let batch = tracker.next_batch(INTERVAL, now).ok().unwrap();
            if batch.group.url == "old" {
                break batch;
            }
            let answers = vec![Unread::Yes { previewed: false }];
            tracker.settle(&batch, &Checked::Answered(answers), now);
        };
        let missing = Checked::Failed(OtsError::RouteNotFound {
            path: "/api/v2/secret/status".into(),
        });
        let wakes = tracker.settle(&batch, &missing, now);
        assert_eq!(wakes.len(), 1);
        assert_eq!(&*wakes[0].uid, "u1");
        assert!(!tracker.serves("old") && tracker.serves("new"));
        assert!(tracker.tracks("u2") && !tracker.tracks("u1"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_replaced_link_is_not_judged_by_an_answer_about_the_old_one() {
        let tracker = BatchTracker::default();
        tracker.watch("u1", "ns/one", group("a"), &client(), &key(1));
        tokio::time::advance(INTERVAL).await;
        let now = Instant::now();
        let batch = tracker.next_batch(INTERVAL, now).ok().unwrap();
        // Reshared while the call was out.
        tracker.watch("u1", "ns/one", group("a"), &client(), &key(9));
        let wakes = tracker.settle(&batch, &Checked::Answered(vec![Unread::Left]), now);
        assert!(wakes.is_empty());
        assert!(tracker.tracks("u1"));
    }

    #[tokio::test(start_paused = true)]
    async fn run_checks_due_links_and_wakes_the_shares_that_left() {
        let tracker = Arc::new(BatchTracker::default());
        tracker.watch("u1", "ns/one", group("a"), &client(), &key(1));
        tracker.watch("u2", "ns/two", group("a"), &client(), &key(2));
        let calls = Arc::new(AtomicUsize::new(0));
        let woken = Arc::new(Mutex::new(Vec::new()));
        let (running, counted, seen) = (tracker.clone(), calls.clone(), woken.clone());
        tokio::spawn(async move {
            running
                .run(
                    || INTERVAL,
                    |_, _, keys: Vec<String>| {
                        counted.fetch_add(1, Ordering::SeqCst);
                        async move {
                            Checked::Answered(
                                keys.iter()
                                    .map(|k| {
                                        if *k == key(1) {
                                            Unread::Left
                                        } else {
                                            Unread::Yes { previewed: false }
                                        }
                                    })
                                    .collect(),
                            )
                        }
                    },
                    move |wake| seen.lock().unwrap().push(wake.share),
                    std::future::pending(),
                )
                .await;
        });
        tokio::time::sleep(INTERVAL / 2).await;
        assert_eq!(calls.load(Ordering::SeqCst), 0, "nothing due yet");
        tokio::time::sleep(INTERVAL).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one call for both links");
        assert_eq!(
            woken.lock().unwrap().as_slice(),
            [Arc::<str>::from("ns/one")]
        );
        tokio::time::sleep(INTERVAL).await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "the live one again, one interval later"
        );
        assert_eq!(tracker.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn no_batch_call_goes_before_a_woken_share_reads_its_receipt_or_gives_up() {
        let tracker = Arc::new(BatchTracker::default());
        for n in 1..=3 {
            tracker.watch(
                &format!("u{n}"),
                &format!("ns/s{n}"),
                group("a"),
                &client(),
                &key(n),
            );
        }
        let calls = Arc::new(AtomicUsize::new(0));
        let (running, counted) = (tracker.clone(), calls.clone());
        let every = Duration::from_secs(1);
        tokio::spawn(async move {
            running
                .run(
                    move || every,
                    |_, _, keys: Vec<String>| {
                        // u1 is read on the first call, u2 on the second; u3 stays unread.
                        let call = counted.fetch_add(1, Ordering::SeqCst) + 1;
                        async move {
                            Checked::Answered(
                                keys.iter()
                                    .map(|k| {
                                        if *k == key(1) || (*k == key(2) && call >= 2) {
                                            Unread::Left
                                        } else {
                                            Unread::Yes { previewed: false }
                                        }
                                    })
                                    .collect(),
                            )
                        }
                    },
                    |_| {},
                    std::future::pending(),
                )
                .await;
        });
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1, "the first batch woke u1");
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "u2 and u3 are due again, but u1 has not read its receipt"
        );
        tracker.read_done("u1");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2, "u1 read: the batch goes");
        // u2 was woken and never reads (its share was deleted, say): tracking waits no
        // longer than OWED_WAIT for it.
        tokio::time::sleep(OWED_WAIT - Duration::from_secs(1)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 3, "u3 is asked about again");
    }

    #[test]
    fn the_secret_key_is_the_links_last_part() {
        let key = "abcdefghijklmnopqrstuvwxyz0123456789";
        assert_eq!(
            secret_key_of(&format!("https://eu.onetimesecret.com/secret/{key}")),
            Some(key)
        );
        assert_eq!(
            secret_key_of(&format!("https://x.example/secret/{key}/?a=1#b")),
            Some(key)
        );
        assert_eq!(secret_key_of("https://x.example/secret/not-a-key"), None);
        assert_eq!(secret_key_of(""), None);
    }
}
