//! What the controller remembers about each resource between reconciles: failures for backoff,
//! when the link is next due for a state check, and the last status it wrote.
//!
//! The last written status matters: the watch cache may not show our own write yet when the next
//! reconcile starts, and a stale view without a link must never lead to a second share.

use crate::error::{Reason, Retry};
use crate::resource::{OneTimeShare, OneTimeShareStatus};
use rand::Rng;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Longest wait before re-checking a missing Secret (the contract promises 30 s).
pub const SOON_CAP: Duration = Duration::from_secs(30);
/// Longest backoff after transient failures.
pub const BACKOFF_CAP: Duration = Duration::from_secs(300);
/// Interval of re-checks that only a user's fix of a referenced Secret can satisfy.
pub const SLOW_RECHECK: Duration = Duration::from_secs(300);

/// What this process knows of a resource's record (see `records.rs`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub enum RecordKnown {
    /// Not looked up yet (e.g. after a restart).
    #[default]
    Unknown,
    /// The operator made no link for this resource.
    Absent,
    /// The operator recorded this link (metadata key, server URL).
    Link {
        /// The receipt's metadata key.
        metadata_key: String,
        /// The server's base URL.
        server_url: String,
    },
}

/// What is remembered of one resource. Every live share has one, so it is kept small: what only
/// some resources need (failures, warnings, reissue tokens, link Secrets) is in [`Rare`].
#[derive(Debug, Default, Clone)]
struct Entry {
    record: RecordKnown,
    /// This process saw the server report the link received, burned or expired.
    spent: bool,
    written: Option<Box<Written>>,
    next_check: Option<Instant>,
    interval: Option<Duration>,
    /// Where the batch tracker stands with the live link (see `batch_track`).
    batch: Batched,
    rare: Option<Box<Rare>>,
}

/// A status this process wrote, until the watch cache shows it or something newer.
#[derive(Debug, Clone)]
struct Written {
    status: OneTimeShareStatus,
    /// The resourceVersion the API server gave the write (`None`: not answered yet, or failed).
    version: Option<u64>,
}

/// Whether the cache (`cached` at resourceVersion `version`) shows our write or something newer.
fn caught_up(
    written: &Written,
    cached: Option<&OneTimeShareStatus>,
    version: Option<&str>,
) -> bool {
    cached == Some(&written.status)
        || matches!(
            (written.version, version_number(version)),
            (Some(ours), Some(shown)) if shown >= ours
        )
}

/// A resourceVersion as a number: the API server's are etcd revisions, which only grow. One that
/// is not a number (another storage) is compared with nothing, and the cache is then trusted
/// only once it shows our status itself.
fn version_number(version: Option<&str>) -> Option<u64> {
    version?.parse().ok()
}

/// Where the batch tracker stands with a share's live link.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Batched {
    /// Not handed to it (a new link, a restart, or a server checked one link at a time).
    #[default]
    No,
    /// Checked in batches; its own checks come at the slow end of the schedule.
    Tracked,
    /// The tracker saw the link leave the batch answer (or get previewed): read the receipt.
    Woken,
}

/// The parts of an [`Entry`] only a resource in trouble, or with a reissue annotation or a link
/// Secret, needs.
#[derive(Debug, Default, Clone)]
struct Rare {
    failures: u32,
    /// After a failure: no new attempt before this backoff ends, unless the resource changed
    /// (see [`Memory::held`]).
    hold: Option<Hold>,
    last_warning: Option<(Reason, Instant)>,
    /// The `ots.dev/reshare` value the recorded link was made for, as the record says (`None`:
    /// not looked up yet).
    reshare_token: Option<Option<String>>,
    /// The `ots.dev/burn` value last acted on, as the record says (`None`: not looked up yet).
    burn_token: Option<Option<String>>,
    /// resourceVersion of the link Secret last seen to hold the recorded link.
    link_secret_version: Option<String>,
}

/// A failed resource's backoff, and what the resource looked like once the failure was reported.
#[derive(Debug, Clone, Copy)]
struct Hold {
    /// When the next attempt is due; `None`: only a change of the resource brings one.
    until: Option<Instant>,
    /// [`Memory::attempt_digest`] of the resource as the failure left it (its status as the
    /// failure report wrote it).
    digest: u128,
}

impl Entry {
    /// The rare parts, made when first needed.
    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_default()
    }
}

/// Per-resource memory, keyed by the resource's uid.
#[derive(Debug, Default)]
pub struct Memory {
    entries: Mutex<HashMap<Uid, Entry>>,
    /// Keys uids in `entries`.
    digest: Digest,
}

/// A keyed 128-bit digest (two keyed SipHash-1-3 hashes, keys drawn per process): what this
/// process remembers many of is kept by digest, not by string.
#[derive(Debug, Default, Clone)]
pub(super) struct Digest(RandomState, RandomState);

impl Digest {
    /// The digest of `value`.
    pub(super) fn of(&self, value: impl std::hash::Hash + Copy) -> u128 {
        (u128::from(self.0.hash_one(value)) << 64) | u128::from(self.1.hash_one(value))
    }
}

/// A resource's uid as memory keys it: a 128-bit keyed digest, 16 bytes in the map instead of a
/// 36-character string of its own (two uids share a digest with odds far below one in 10^24).
type Uid = u128;

impl Memory {
    /// The key of `uid` in `entries`.
    fn key(&self, uid: &str) -> Uid {
        self.digest.of(uid)
    }

    fn with<T>(&self, uid: &str, f: impl FnOnce(&mut Entry) -> T) -> T {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        f(map.entry(self.key(uid)).or_default())
    }

    /// Forgets a resource (it is gone).
    pub fn forget(&self, uid: &str) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&self.key(uid));
    }

    /// Forgets every resource whose uid `live` does not hold (deleted without a cleanup, e.g.
    /// with `deletionPolicy: Keep`), so memory does not grow with deleted resources.
    pub fn retain(&self, live: &std::collections::HashSet<String>) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let live: std::collections::HashSet<Uid> = live.iter().map(|uid| self.key(uid)).collect();
        map.retain(|uid, _| live.contains(uid));
    }

    /// What is known of the resource's record.
    pub fn record(&self, uid: &str) -> RecordKnown {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&self.key(uid))
            .map(|e| e.record.clone())
            .unwrap_or_default()
    }

    /// Remembers what the resource's record holds (after a write or a read).
    pub fn set_record(&self, uid: &str, known: RecordKnown) {
        self.with(uid, |e| e.record = known);
    }

    /// Remembers that the server reported the link spent (nothing left to burn).
    pub fn saw_spent(&self, uid: &str) {
        self.with(uid, |e| {
            e.spent = true;
            e.batch = Batched::No;
        });
    }

    /// Whether this process saw the server report the link spent. Status alone is not
    /// believed: anyone allowed to write it could mark a live link received to spare it a burn.
    pub fn spent(&self, uid: &str) -> bool {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&self.key(uid)).is_some_and(|e| e.spent)
    }

    /// Records a status this process is about to write (before the write: the watch may show
    /// it before the write's answer arrives).
    pub fn wrote(&self, uid: &str, status: &OneTimeShareStatus) {
        self.with(uid, |e| {
            e.written = Some(Box::new(Written {
                status: status.clone(),
                version: None,
            }))
        });
    }

    /// The API server accepted the write of `status` as `version` (its new resourceVersion).
    pub fn write_landed(&self, uid: &str, status: &OneTimeShareStatus, version: Option<&str>) {
        self.update(uid, |e| {
            if let Some(written) = e.written.as_mut().filter(|w| w.status == *status) {
                written.version = version_number(version);
            }
        });
    }

    /// Whether a status write of `uid` is remembered (the cache has not shown it yet).
    pub fn has_written(&self, uid: &str) -> bool {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&self.key(uid)).is_some_and(|e| e.written.is_some())
    }

    /// The write of `status` failed: it is not remembered as ours any more (unless a later
    /// write replaced it), so the next attempt compares with what the API server shows.
    pub fn write_failed(&self, uid: &str, status: &OneTimeShareStatus) {
        self.update(uid, |e| {
            if e.written.as_deref().is_some_and(|w| w.status == *status) {
                e.written = None;
            }
        });
    }

    /// The status to act on: our last write while the cached object (its `status` at
    /// resourceVersion `version`) is older than that write; else the cache's. A cache that
    /// shows a newer version with another status shows someone else's change, made after our
    /// write (a forged status is then seen, and restored with a warning, not silently).
    pub fn effective(
        &self,
        uid: &str,
        cached: Option<&OneTimeShareStatus>,
        version: Option<&str>,
    ) -> Option<OneTimeShareStatus> {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let Some(entry) = map.get_mut(&self.key(uid)) else {
            return cached.cloned();
        };
        match &entry.written {
            Some(written) if !caught_up(written, cached, version) => Some(written.status.clone()),
            Some(_) => {
                entry.written = None;
                cached.cloned()
            }
            None => cached.cloned(),
        }
    }

    /// Forgets our last write of `uid`'s status once the watch cache shows it or something
    /// newer (as [`effective`] would on the next reconcile): until then every share would keep
    /// a second copy of its status here.
    ///
    /// [`effective`]: Memory::effective
    pub fn cache_shows(&self, uid: &str, cached: &OneTimeShareStatus, version: Option<&str>) {
        self.update(uid, |e| {
            if e.written
                .as_deref()
                .is_some_and(|w| caught_up(w, Some(cached), version))
            {
                e.written = None;
            }
        });
    }

    /// Changes the entry of `uid` if there is one (most resources never need one).
    fn update(&self, uid: &str, f: impl FnOnce(&mut Entry)) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = map.get_mut(&self.key(uid)) {
            f(entry);
        }
    }

    /// A success: failures reset.
    pub fn succeeded(&self, uid: &str) {
        self.update(uid, |e| {
            if let Some(rare) = &mut e.rare {
                rare.failures = 0;
                rare.hold = None;
            }
        });
    }

    /// A failure: how long to wait before the next attempt. Until then, [`Memory::held`] keeps
    /// back attempts on a resource whose [`Memory::attempt_digest`] is still `digest`.
    pub fn failed(
        &self,
        uid: &str,
        retry: Retry,
        retry_after: Option<Duration>,
        digest: u128,
    ) -> Option<Duration> {
        let failures = self.with(uid, |e| {
            let rare = e.rare();
            rare.failures = rare.failures.saturating_add(1);
            rare.failures
        });
        let wait = match retry {
            Retry::Soon => Some(exponential(Duration::from_secs(2), failures, SOON_CAP)),
            Retry::Backoff => Some(exponential(Duration::from_secs(1), failures, BACKOFF_CAP)),
            Retry::Slowly => Some(SLOW_RECHECK),
            Retry::OnChange => None,
        }
        .map(|w| jitter(w.max(retry_after.unwrap_or_default())));
        let until = wait.map(|w| Instant::now() + w);
        self.with(uid, |e| e.rare().hold = Some(Hold { until, digest }));
        wait
    }

    /// Ends the backoff [`Memory::held`] keeps a failed resource in: what it waited for
    /// happened without changing the resource (a live-link slot of its Secret is free, or the
    /// batch tracker saw its link change).
    pub fn lift_hold(&self, uid: &str) {
        self.update(uid, |e| {
            if let Some(rare) = &mut e.rare {
                rare.hold = None;
            }
        });
    }

    /// Whether an attempt on a failed resource waits for its backoff: `Some(wait)` (`None`
    /// inside: until the resource changes) while the backoff runs and the resource is as the
    /// failure left it. The failure report's own status write changes the resource, and used to
    /// bring a second attempt at once, ignoring the backoff: one more call to a server that had
    /// just refused. A change by someone else (spec, annotations, deletion, finalizers, a status
    /// not written by the report) is acted on at once.
    pub fn held(&self, uid: &str, digest: u128) -> Option<Option<Duration>> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let hold = map.get(&self.key(uid))?.rare.as_ref()?.hold?;
        if hold.digest != digest {
            return None;
        }
        match hold.until {
            None => Some(None),
            Some(until) => {
                let left = until.saturating_duration_since(Instant::now());
                (!left.is_zero()).then_some(Some(left))
            }
        }
    }

    /// What decides whether an attempt on `share` is a new one: its generation, deletion,
    /// finalizers, reissue and burn annotations, and `status` (the status it will show), as a
    /// keyed digest.
    pub fn attempt_digest(
        &self,
        share: &OneTimeShare,
        status: Option<&OneTimeShareStatus>,
    ) -> u128 {
        let meta = &share.metadata;
        let annotation = |key: &str| {
            meta.annotations
                .as_ref()
                .and_then(|a| a.get(key))
                .map(String::as_str)
        };
        let status = status.and_then(|s| serde_json::to_vec(s).ok());
        self.digest.of((
            meta.generation,
            meta.deletion_timestamp.is_some(),
            meta.finalizers.as_deref(),
            annotation(crate::resource::RESHARE_ANNOTATION),
            annotation(crate::resource::BURN_ANNOTATION),
            status.as_deref(),
        ))
    }

    /// The status `uid` will show: our last write if there is one, else `cached`.
    pub fn status_to_show(
        &self,
        uid: &str,
        cached: Option<&OneTimeShareStatus>,
    ) -> Option<OneTimeShareStatus> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&self.key(uid)).and_then(|e| e.written.as_deref()) {
            Some(written) => Some(written.status.clone()),
            None => cached.cloned(),
        }
    }

    /// Whether a Warning Event for `reason` should be published now: when the reason changed or
    /// ten minutes passed, so a stuck resource does not write an Event per retry.
    pub fn should_warn(&self, uid: &str, reason: Reason) -> bool {
        let now = Instant::now();
        self.with(uid, |e| match e.rare().last_warning {
            Some((last, at))
                if last == reason && now.duration_since(at) < Duration::from_secs(600) =>
            {
                false
            }
            _ => {
                e.rare().last_warning = Some((reason, now));
                true
            }
        })
    }

    /// Clears the warning memory (the resource is healthy again).
    pub fn healthy(&self, uid: &str) {
        self.update(uid, |e| {
            if let Some(rare) = &mut e.rare {
                rare.last_warning = None;
            }
        });
    }

    /// When the link's state is next due for a check; `None` when it is due now.
    pub fn check_due_at(&self, uid: &str) -> Option<Instant> {
        let now = Instant::now();
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&self.key(uid))
            .and_then(|e| e.next_check)
            .filter(|at| *at > now)
    }

    /// Schedules the next check: the interval starts at `min` and doubles up to `max`, with
    /// jitter, and never sleeps past `deadline` (e.g. the link's expiry).
    pub fn schedule_check(
        &self,
        uid: &str,
        min: Duration,
        max: Duration,
        deadline: Option<Duration>,
    ) -> Duration {
        self.with(uid, |e| {
            let interval = match e.interval {
                None => min,
                Some(previous) => (previous * 2).min(max),
            };
            e.interval = Some(interval);
            let mut wait = jitter(interval);
            if let Some(deadline) = deadline {
                wait = wait.min(deadline + Duration::from_secs(1));
            }
            e.next_check = Some(Instant::now() + wait);
            wait
        })
    }

    /// The `ots.dev/reshare` value the recorded link was made for, if known (outer `None`: not
    /// looked up yet).
    pub fn reshare_token(&self, uid: &str) -> Option<Option<String>> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&self.key(uid))
            .and_then(|e| e.rare.as_ref())
            .and_then(|r| r.reshare_token.clone())
    }

    /// The `ots.dev/burn` value last acted on, if known (outer `None`: not looked up yet).
    pub fn burn_token(&self, uid: &str) -> Option<Option<String>> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&self.key(uid))
            .and_then(|e| e.rare.as_ref())
            .and_then(|r| r.burn_token.clone())
    }

    /// Remembers the `ots.dev/burn` value last acted on, as the record now says.
    pub fn set_burn_token(&self, uid: &str, token: Option<String>) {
        self.with(uid, |e| {
            // As for reshare tokens: "none" needs no memory until something else is remembered.
            if token.is_some() || e.rare.is_some() {
                e.rare().burn_token = Some(token);
            }
        });
    }

    /// Remembers the `ots.dev/reshare` value the recorded link was made for.
    pub fn set_reshare_token(&self, uid: &str, token: Option<String>) {
        self.with(uid, |e| {
            // "No token" needs no memory while nothing else is remembered in `rare`: a later
            // lookup reads it from the record once (and most resources never ask).
            if token.is_some() || e.rare.is_some() {
                e.rare().reshare_token = Some(token);
            }
        });
    }

    /// The resourceVersion of the link Secret last seen to hold the recorded link.
    pub fn link_secret_version(&self, uid: &str) -> Option<String> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&self.key(uid))
            .and_then(|e| e.rare.as_ref())
            .and_then(|r| r.link_secret_version.clone())
    }

    /// Remembers (or, with `None`, forgets) the link Secret's resourceVersion that holds the
    /// recorded link.
    pub fn set_link_secret_version(&self, uid: &str, version: Option<String>) {
        self.with(uid, |e| e.rare().link_secret_version = version);
    }

    /// The metadata keys of every record this process knows of.
    pub fn recorded_keys(&self) -> Vec<String> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.values()
            .filter_map(|e| match &e.record {
                RecordKnown::Link { metadata_key, .. } => Some(metadata_key.clone()),
                _ => None,
            })
            .collect()
    }

    /// Where the batch tracker stands with the share's link.
    pub fn batched(&self, uid: &str) -> Batched {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&self.key(uid)).map(|e| e.batch).unwrap_or_default()
    }

    /// The share's link is checked in batches from now on (its own checks become rare).
    pub fn batch_tracked(&self, uid: &str) {
        self.with(uid, |e| e.batch = Batched::Tracked);
    }

    /// The next check is due once `wait` has passed (and a second more), not on a doubling
    /// schedule.
    pub fn check_after(&self, uid: &str, wait: Duration) {
        self.with(uid, |e| {
            e.interval = None;
            e.next_check = Some(Instant::now() + wait + Duration::from_secs(1));
        });
    }

    /// The batch tracker found the link gone from its answer, or previewed: its receipt is
    /// read at the next reconcile.
    pub fn batch_woken(&self, uid: &str) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = map.get_mut(&self.key(uid)) {
            e.batch = Batched::Woken;
            e.next_check = None;
        }
    }

    /// Restarts the check schedule (a new link was shared).
    pub fn reset_schedule(&self, uid: &str) {
        self.with(uid, |e| {
            e.interval = None;
            e.next_check = None;
            e.batch = Batched::No;
        });
    }
}

/// `base * 2^(n-1)`, capped.
fn exponential(base: Duration, n: u32, cap: Duration) -> Duration {
    let factor = 1u32
        .checked_shl(n.saturating_sub(1).min(20))
        .unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(cap)
}

/// ±20 % random spread, so that many resources do not retry in lockstep.
pub fn jitter(d: Duration) -> Duration {
    let factor = rand::rng().random_range(0.8..=1.2);
    d.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::Phase;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(
            exponential(Duration::from_secs(2), 1, SOON_CAP),
            Duration::from_secs(2)
        );
        assert_eq!(
            exponential(Duration::from_secs(2), 3, SOON_CAP),
            Duration::from_secs(8)
        );
        assert_eq!(exponential(Duration::from_secs(2), 40, SOON_CAP), SOON_CAP);
        assert_eq!(
            exponential(Duration::from_secs(1), 100, BACKOFF_CAP),
            BACKOFF_CAP
        );
    }

    fn share(generation: i64, reshare: Option<&str>) -> OneTimeShare {
        let mut share: OneTimeShare = serde_json::from_value(serde_json::json!({
            "apiVersion": "ots.dev/v1alpha1",
            "kind": "OneTimeShare",
            "metadata": {"name": "a", "namespace": "n", "uid": "u-1", "generation": generation},
            "spec": {"secretRef": {"name": "s"}},
        }))
        .unwrap();
        if let Some(token) = reshare {
            share.metadata.annotations = Some(
                [(
                    crate::resource::RESHARE_ANNOTATION.to_string(),
                    token.to_string(),
                )]
                .into(),
            );
        }
        share
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_holds_back_attempts_on_the_resource_as_the_report_left_it_until_the_backoff_ends()
     {
        let m = Memory::default();
        let obj = share(1, None);
        let reported = OneTimeShareStatus {
            phase: Phase::Failed,
            ..Default::default()
        };
        // The failure report wrote `reported`; the watch then shows it.
        m.wrote("u-1", &reported);
        let shown = m.status_to_show("u-1", None);
        let digest = m.attempt_digest(&obj, shown.as_ref());
        let wait = m
            .failed("u-1", Retry::Backoff, Some(Duration::from_secs(60)), digest)
            .unwrap();
        let after_write = m.attempt_digest(&obj, Some(&reported));
        let left = m
            .held("u-1", after_write)
            .expect("held after its own status write");
        assert_eq!(left, Some(wait));

        // Someone else's change is acted on at once: spec, reissue, a status it did not write.
        assert_eq!(
            m.held("u-1", m.attempt_digest(&share(2, None), Some(&reported))),
            None
        );
        assert_eq!(
            m.held(
                "u-1",
                m.attempt_digest(&share(1, Some("t")), Some(&reported))
            ),
            None
        );
        let tampered = OneTimeShareStatus {
            phase: Phase::Shared,
            ..Default::default()
        };
        assert_eq!(m.held("u-1", m.attempt_digest(&obj, Some(&tampered))), None);

        // The backoff over, the next attempt goes; a success ends the hold.
        tokio::time::advance(wait).await;
        assert_eq!(m.held("u-1", after_write), None);
        m.failed("u-1", Retry::OnChange, None, after_write);
        assert_eq!(m.held("u-1", after_write), Some(None));
        m.succeeded("u-1");
        assert_eq!(m.held("u-1", after_write), None);

        // What it waited for happened elsewhere (a live-link slot freed): the hold is lifted.
        m.failed("u-1", Retry::Soon, None, after_write);
        assert!(m.held("u-1", after_write).is_some());
        m.lift_hold("u-1");
        assert_eq!(m.held("u-1", after_write), None);
    }

    #[test]
    fn a_missing_secret_is_rechecked_within_thirty_seconds_forever() {
        let m = Memory::default();
        for _ in 0..50 {
            let wait = m.failed("u", Retry::Soon, None, 0).unwrap();
            assert!(wait <= SOON_CAP.mul_f64(1.2), "{wait:?}");
        }
        assert_eq!(m.failed("u", Retry::OnChange, None, 0), None);
    }

    #[test]
    fn retry_after_is_a_floor() {
        let m = Memory::default();
        let wait = m
            .failed("u", Retry::Backoff, Some(Duration::from_secs(10)), 0)
            .unwrap();
        assert!(wait >= Duration::from_secs(8), "{wait:?}");
    }

    fn shared_status() -> OneTimeShareStatus {
        OneTimeShareStatus {
            phase: Phase::Shared,
            metadata_key: Some("mk".into()),
            ..Default::default()
        }
    }

    #[test]
    fn our_own_write_wins_over_a_stale_cache_until_the_cache_catches_up() {
        let m = Memory::default();
        let shared = shared_status();
        m.wrote("u", &shared);
        let stale = OneTimeShareStatus::default();
        assert_eq!(m.effective("u", Some(&stale), None), Some(shared.clone()));
        assert_eq!(m.effective("u", None, None), Some(shared.clone()));
        assert_eq!(m.effective("u", Some(&shared), None), Some(shared.clone()));
        // Caught up: the cache is the truth again.
        assert_eq!(m.effective("u", Some(&stale), None), Some(stale));
    }

    #[test]
    fn a_status_changed_after_our_write_is_seen_even_when_the_cache_never_showed_our_write() {
        let m = Memory::default();
        let shared = shared_status();
        let forged = OneTimeShareStatus {
            metadata_key: Some("someone-elses".into()),
            ..shared_status()
        };
        m.wrote("u", &shared);
        m.write_landed("u", &shared, Some("120"));
        // An older object (the cache lags behind our write): our write is what stands.
        let stale = OneTimeShareStatus::default();
        assert_eq!(
            m.effective("u", Some(&stale), Some("118")),
            Some(shared.clone())
        );
        // Both our write and a forgery landed before the watch showed either: the cache's
        // newer object is what stands (it does not show our write: someone changed it since).
        assert_eq!(
            m.effective("u", Some(&forged), Some("121")),
            Some(forged.clone())
        );
        assert_eq!(
            m.effective("u", Some(&stale), Some("118")),
            Some(stale.clone())
        );
        // The housekeeping pass forgets our write the same way.
        m.wrote("u", &shared);
        m.write_landed("u", &shared, Some("130"));
        m.cache_shows("u", &stale, Some("129"));
        assert_eq!(
            m.effective("u", Some(&stale), Some("129")),
            Some(shared.clone())
        );
        m.cache_shows("u", &forged, Some("131"));
        assert_eq!(
            m.effective("u", Some(&stale), Some("129")),
            Some(stale.clone())
        );
        // A write answered for another status, or a version that is no number, proves nothing.
        m.wrote("u", &shared);
        m.write_landed("u", &forged, Some("140"));
        assert_eq!(
            m.effective("u", Some(&forged), Some("141")),
            Some(shared.clone())
        );
        m.write_landed("u", &shared, Some("not-a-number"));
        assert_eq!(
            m.effective("u", Some(&forged), Some("142")),
            Some(shared.clone())
        );
    }

    #[test]
    fn our_own_write_is_forgotten_once_the_cache_shows_it_and_not_before() {
        let m = Memory::default();
        let shared = shared_status();
        let stale = OneTimeShareStatus::default();
        m.wrote("u", &shared);
        m.cache_shows("u", &stale, None);
        assert_eq!(m.effective("u", Some(&stale), None), Some(shared.clone()));
        m.cache_shows("u", &shared, None);
        assert_eq!(m.effective("u", Some(&stale), None), Some(stale));
    }

    #[test]
    fn check_interval_grows_and_respects_deadline() {
        let m = Memory::default();
        let min = Duration::from_secs(10);
        let max = Duration::from_secs(40);
        let first = m.schedule_check("u", min, max, None);
        assert!(first <= min.mul_f64(1.2));
        m.schedule_check("u", min, max, None);
        let third = m.schedule_check("u", min, max, None);
        assert!(third >= Duration::from_secs(32));
        let capped = m.schedule_check("u", min, max, Some(Duration::from_secs(3)));
        assert_eq!(capped, Duration::from_secs(4));
        assert!(m.check_due_at("u").is_some());
    }

    #[test]
    fn forgotten_resources_leave_memory() {
        let m = Memory::default();
        m.reset_schedule("kept");
        m.reset_schedule("deleted");
        m.retain(&["kept".to_owned()].into_iter().collect());
        assert_eq!(m.entries.lock().unwrap().len(), 1);
        assert!(m.entries.lock().unwrap().contains_key(&m.key("kept")));
    }

    #[test]
    fn warnings_are_not_repeated_for_the_same_reason() {
        let m = Memory::default();
        assert!(m.should_warn("u", Reason::SecretNotFound));
        assert!(!m.should_warn("u", Reason::SecretNotFound));
        assert!(m.should_warn("u", Reason::KeyNotFound));
        m.healthy("u");
        assert!(m.should_warn("u", Reason::KeyNotFound));
    }
}
