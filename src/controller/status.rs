//! Status of a OneTimeShare: built from a receipt, the Ready condition, and writes that stick.

use crate::error::{Error, Reason};
use crate::ots::{Receipt, SecretState};
use crate::resource::{
    BURN_ANNOTATION, ExpiryPolicy, LinkEnd, MAX_BURN_TOKEN_CHARS, MAX_HISTORY,
    MAX_RESHARE_TOKEN_CHARS, OneTimeShare, OneTimeShareStatus, PastLink, Phase, RESHARE_ANNOTATION,
    Ttl,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use std::time::Duration;

/// Field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "ots-operator";

/// The phase a server state means.
pub fn phase_of(state: &SecretState) -> Phase {
    match state {
        SecretState::New | SecretState::Viewed => Phase::Shared,
        SecretState::Received => Phase::Received,
        SecretState::Burned => Phase::Burned,
        SecretState::Expired | SecretState::Orphaned => Phase::Expired,
        SecretState::Unknown(_) => Phase::Shared,
    }
}

/// Status right after a share: the link, its keys, and when it expires.
pub struct SharedLink<'a> {
    /// The server's answer to the share.
    pub receipt: &'a Receipt,
    /// The link to hand out.
    pub link: String,
    /// The creator's receipt page.
    pub metadata_link: String,
    /// The server's base URL.
    pub server_url: String,
    /// resourceVersion of the shared Secret.
    pub source_resource_version: Option<String>,
    /// Whether a passphrase gates the link.
    pub passphrase_protected: bool,
    /// The lifetime asked for and granted.
    pub lifetime: &'a Lifetime,
    /// The share's ended links, the one this link replaces included (see [`history_for_new_link`]).
    pub history: Vec<PastLink>,
}

/// The lifetime of a fresh link, worked out once per share: what was asked for, what the
/// server granted, and the sentence about a silent clamp (for the condition and the Event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifetime {
    /// The lifetime asked for (`spec.ttl`).
    pub requested: Ttl,
    /// The lifetime the server granted, in seconds (the one asked for when it does not say).
    pub granted_secs: u64,
    /// Set when the server granted less than asked.
    pub clamp: Option<String>,
}

impl Lifetime {
    /// The lifetime of a link asked for with `requested`, whose receipt says `granted` seconds.
    pub fn new(requested: Ttl, granted: Option<u64>) -> Self {
        let granted_secs = granted.unwrap_or(requested.0.as_secs());
        Lifetime {
            requested,
            granted_secs,
            clamp: clamp_message(requested.0.as_secs(), granted_secs),
        }
    }

    /// The granted lifetime.
    pub fn granted(&self) -> Duration {
        Duration::from_secs(self.granted_secs)
    }
}

/// Status after a successful share.
pub fn shared_status(
    obj: &OneTimeShare,
    shared: SharedLink<'_>,
    now: Timestamp,
) -> OneTimeShareStatus {
    let granted = shared.lifetime.granted_secs;
    let shared_at = shared
        .receipt
        .created
        .and_then(|s| Timestamp::from_second(s).ok())
        .unwrap_or(now);
    let expires_at = shared_at
        .checked_add(SignedDuration::from_secs(granted as i64))
        .unwrap_or(shared_at);
    let message = match &shared.lifetime.clamp {
        Some(clamp) => format!("the link is ready to hand out; {clamp}"),
        None => "the link is ready to hand out".to_owned(),
    };
    let mut status = OneTimeShareStatus {
        phase: Phase::Shared,
        link: Some(shared.link),
        metadata_key: Some(shared.receipt.metadata_key.clone()),
        metadata_link: Some(shared.metadata_link),
        link_secret_name: None,
        server_url: Some(shared.server_url),
        secret_state: Some(shared.receipt.state.as_str().to_owned()),
        ttl_seconds: Some(granted as i64),
        shared_at: Some(Time(shared_at)),
        expires_at: Some(Time(expires_at)),
        received_at: None,
        opened_at: None,
        burned_at: None,
        expired_at: None,
        history: shared.history,
        passphrase_protected: Some(shared.passphrase_protected),
        source_resource_version: shared.source_resource_version,
        reshare_token: reshare_token(obj),
        burn_token: burn_token(obj),
        observed_generation: obj.meta().generation,
        conditions: conditions_now(obj),
    };
    set_ready(&mut status, obj, true, Reason::Shared, &message, now);
    status
}

/// The resource's conditions as they are, for a status written anew (so transition times stay).
fn conditions_now(obj: &OneTimeShare) -> Vec<Condition> {
    obj.status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default()
}

/// The `ots.dev/reshare` value a new link is made for: the one the resource carries now, so
/// that only a later change of the annotation reissues it. A value longer than
/// [`MAX_RESHARE_TOKEN_CHARS`] is never copied (into status or the record): a reissue it asks
/// for is refused instead.
pub fn reshare_token(obj: &OneTimeShare) -> Option<String> {
    obj.annotations()
        .get(RESHARE_ANNOTATION)
        .filter(|token| token.chars().count() <= MAX_RESHARE_TOKEN_CHARS)
        .cloned()
}

/// The `ots.dev/burn` value a new link is made for: the one the resource carries now, which
/// counts as acted on (no link was live when it was set, or the link it burned is replaced). A
/// value longer than [`MAX_BURN_TOKEN_CHARS`] is never copied; a burn it asks for is refused.
pub fn burn_token(obj: &OneTimeShare) -> Option<String> {
    obj.annotations()
        .get(BURN_ANNOTATION)
        .filter(|token| !token.is_empty() && token.chars().count() <= MAX_BURN_TOKEN_CHARS)
        .cloned()
}

/// A sentence about a silent clamp of the lifetime, if the server granted less than asked.
pub fn clamp_message(requested: u64, granted: u64) -> Option<String> {
    (granted < requested).then(|| {
        format!(
            "the server granted a lifetime of {} instead of the {} asked for",
            human(granted),
            human(requested)
        )
    })
}

/// A lifetime in seconds as users write it (`7d`, `90m`).
fn human(secs: u64) -> String {
    crate::error::human_duration(Duration::from_secs(secs))
}

/// Status after a receipt refresh; `None` when nothing changed. `first_access` is the server's
/// report of the link's first opening (revealed or not), if it gives one.
pub fn refreshed_status(
    obj: &OneTimeShare,
    current: &OneTimeShareStatus,
    state: &SecretState,
    received: Option<i64>,
    first_access: Option<i64>,
    now: Timestamp,
) -> Option<OneTimeShareStatus> {
    let phase = phase_of(state);
    let first_access = first_access
        .and_then(|s| Timestamp::from_second(s).ok())
        .map(Time);
    // The first opening is kept once known; it never moves.
    let opened_at = current.opened_at.clone().or(first_access);
    if current.secret_state.as_deref() == Some(state.as_str())
        && current.phase == phase
        && current.opened_at == opened_at
    {
        return None;
    }
    let mut next = current.clone();
    next.phase = phase;
    next.secret_state = Some(state.as_str().to_owned());
    next.opened_at = opened_at;
    let ended =
        match phase {
            Phase::Received => {
                let at = received
                    .and_then(|s| Timestamp::from_second(s).ok())
                    .map(Time)
                    .unwrap_or_else(|| not_before_shared(current, now));
                next.received_at = Some(at.clone());
                // Received means opened: at the latest then.
                if next.opened_at.is_none() {
                    next.opened_at = Some(at.clone());
                }
                Some((LinkEnd::Received, at))
            }
            Phase::Burned => {
                let at = current
                    .burned_at
                    .clone()
                    .unwrap_or_else(|| not_before_shared(current, now));
                next.burned_at = Some(at.clone());
                Some((LinkEnd::Burned, at))
            }
            Phase::Expired => {
                // Expired: at expiresAt, on the server's clock as sharedAt and expiresAt are (the
                // operator's may be behind or ahead). Dropped early (orphaned): when first seen.
                let at = current.expired_at.clone().unwrap_or_else(|| {
                    match (&current.expires_at, state) {
                        (Some(expires), SecretState::Expired) => expires.clone(),
                        _ => not_before_shared(current, now),
                    }
                });
                next.expired_at = Some(at.clone());
                Some((LinkEnd::Expired, at))
            }
            _ => None,
        };
    if let Some((end, at)) = ended
        && (current.phase == Phase::Shared || !link_in_history(current))
    {
        note_end(&mut next, end, at);
    }
    next.observed_generation = obj.meta().generation;
    let (ready, reason, message) = match phase {
        Phase::Received => (
            true,
            Reason::Received,
            "the recipient opened the link; the secret is gone from the server",
        ),
        Phase::Burned => (
            false,
            Reason::Burned,
            "the secret was burned before anyone opened the link; reissue it (a new ots.dev/reshare value, or kubectl ots reissue) to share again",
        ),
        Phase::Expired => (
            false,
            Reason::Expired,
            "the link expired before anyone opened it; reissue it (a new ots.dev/reshare value, or kubectl ots reissue) to share again",
        ),
        _ => (true, Reason::Shared, "the link is ready to hand out"),
    };
    set_ready(&mut next, obj, ready, reason, message, now);
    if phase == Phase::Expired && obj.spec.on_expiry == ExpiryPolicy::Reshare {
        // A new link follows at once, unless maxShares was reached (then it is Stalled).
        set_progress(&mut next, obj, Progress::Working, reason, message, now);
    }
    Some(next)
}

/// `now`, or the link's sharedAt when that is later: sharedAt is the server's time, and the
/// operator's clock may be behind it; an end is never before its link's start.
fn not_before_shared(status: &OneTimeShareStatus, now: Timestamp) -> Time {
    match &status.shared_at {
        Some(shared) if shared.0 > now => shared.clone(),
        _ => Time(now),
    }
}

/// Whether `status.history` already ends with an entry for the current link (same sharedAt).
fn link_in_history(status: &OneTimeShareStatus) -> bool {
    status
        .history
        .last()
        .is_some_and(|last| Some(&last.shared_at) == status.shared_at.as_ref())
}

/// Adds the current link's end to `status.history` (nothing without a sharedAt), dropping the
/// oldest entries beyond [`MAX_HISTORY`].
pub fn note_end(status: &mut OneTimeShareStatus, end: LinkEnd, at: Time) {
    let Some(shared_at) = status.shared_at.clone() else {
        return;
    };
    status.history.push(PastLink {
        shared_at,
        ended: end,
        ended_at: at,
    });
    let excess = status.history.len().saturating_sub(MAX_HISTORY);
    status.history.drain(..excess);
}

/// The history a new link's status carries: `previous`'s, plus the end of the link it had if
/// that is not listed yet: Reshared when it was still live (a reissue or a reshare burns it),
/// else as its phase says (a status written before history was kept). Bounded by [`MAX_HISTORY`].
pub fn history_for_new_link(previous: &OneTimeShareStatus, now: Timestamp) -> Vec<PastLink> {
    let mut status = OneTimeShareStatus {
        shared_at: previous.shared_at.clone(),
        history: previous.history.clone(),
        ..Default::default()
    };
    let at = |time: &Option<Time>| {
        time.clone()
            .unwrap_or_else(|| not_before_shared(previous, now))
    };
    let end = match previous.phase {
        Phase::Shared => Some((LinkEnd::Reshared, not_before_shared(previous, now))),
        _ if link_in_history(previous) => None,
        Phase::Received => Some((LinkEnd::Received, at(&previous.received_at))),
        Phase::Burned => Some((LinkEnd::Burned, at(&previous.burned_at))),
        Phase::Expired => Some((LinkEnd::Expired, at(&previous.expired_at))),
        Phase::Pending | Phase::Failed => None,
    };
    if let Some((end, at)) = end {
        note_end(&mut status, end, at);
    }
    status.history
}

/// Status after an error: Ready=False with the reason and message users see. `None` when
/// nothing changed.
pub fn error_status(
    obj: &OneTimeShare,
    current: &OneTimeShareStatus,
    reason: Reason,
    message: &str,
    needs_user_fix: bool,
    now: Timestamp,
) -> Option<OneTimeShareStatus> {
    let mut next = current.clone();
    if !next.phase.has_link() {
        next.phase = if needs_user_fix {
            Phase::Failed
        } else {
            Phase::Pending
        };
        // No link, nothing to burn: an ots.dev/burn value is reported as seen, and the first
        // link made takes it as acted on.
        next.burn_token = burn_token(obj);
    }
    next.observed_generation = obj.meta().generation;
    set_ready(&mut next, obj, false, reason, message, now);
    // Whether anything happens without a user is the error's to say, whatever the phase.
    let progress = if needs_user_fix {
        Progress::Stuck
    } else {
        Progress::Working
    };
    set_progress(&mut next, obj, progress, reason, message, now);
    (next != *current).then_some(next)
}

/// Status rebuilt from the operator's record of the link, when status no longer matches it.
/// The link's state is checked again right after.
pub fn restored_status(
    obj: &OneTimeShare,
    record: &super::records::ShareRecord,
    now: Timestamp,
) -> OneTimeShareStatus {
    let time = |secs: i64| Timestamp::from_second(secs).ok().map(Time);
    let mut status = OneTimeShareStatus {
        phase: Phase::Shared,
        link: Some(record.link.clone()),
        metadata_key: Some(record.metadata_key.clone()),
        metadata_link: Some(record.metadata_link.clone()).filter(|l| !l.is_empty()),
        link_secret_name: None,
        server_url: Some(record.server_url.clone()),
        secret_state: None,
        ttl_seconds: Some(record.ttl_seconds),
        shared_at: time(record.shared_at),
        expires_at: time(record.expires_at),
        received_at: None,
        opened_at: None,
        burned_at: None,
        expired_at: None,
        // The record's history: the links that ended before the recorded one (its own end is
        // seen again by the next check).
        history: record.history.clone(),
        passphrase_protected: Some(record.passphrase_protected),
        source_resource_version: record.source_resource_version.clone(),
        // The value the link was made for, not the annotation now (a pending reissue stays pending).
        reshare_token: record.reshare_token(obj),
        // The burn value last acted on for this share, on the record's word.
        burn_token: record.burn_token.clone(),
        observed_generation: obj.meta().generation,
        conditions: conditions_now(obj),
    };
    set_ready(
        &mut status,
        obj,
        true,
        Reason::StatusTampered,
        "status was changed by someone else and restored from the operator's record of the link",
        now,
    );
    status
}

/// kstatus's condition for work under way: True while the operator is still getting the share
/// in place (Pending, or a retry after a transient failure); absent otherwise.
pub const RECONCILING: &str = "Reconciling";

/// kstatus's condition for a share that cannot get further on its own: True while it is Failed
/// (a fix of the spec or the Secrets is needed), Burned or Expired (a reissue is needed); absent
/// otherwise.
pub const STALLED: &str = "Stalled";

/// Where the work on a share stands, as kstatus (Flux, cli-utils) reads it from the conditions
/// Reconciling and Stalled besides Ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Ready, nothing under way: neither condition.
    Settled,
    /// The operator is still working on it: Reconciling=True.
    Working,
    /// Nothing more happens without a user: Stalled=True.
    Stuck,
}

impl Progress {
    /// The usual reading of a Ready value in a phase: Ready is settled; not Ready is stuck in
    /// Failed, Burned and Expired, and under way in the other phases.
    pub fn of(ready: bool, phase: Phase) -> Progress {
        match (ready, phase) {
            (true, _) => Progress::Settled,
            (false, Phase::Failed | Phase::Burned | Phase::Expired) => Progress::Stuck,
            (false, _) => Progress::Working,
        }
    }
}

/// Sets the Ready condition, keeping lastTransitionTime when its status did not change, and
/// Reconciling or Stalled as [`Progress::of`] reads it (see [`set_progress`]).
pub fn set_ready(
    status: &mut OneTimeShareStatus,
    obj: &OneTimeShare,
    ready: bool,
    reason: Reason,
    message: &str,
    now: Timestamp,
) {
    let value = if ready { "True" } else { "False" };
    let previous = status.conditions.iter().find(|c| c.type_ == "Ready");
    let last_transition_time = match previous {
        Some(c) if c.status == value => c.last_transition_time.clone(),
        _ => Time(now),
    };
    let condition = Condition {
        type_: "Ready".to_owned(),
        status: value.to_owned(),
        reason: reason.as_str().to_owned(),
        message: truncate(message, 1024),
        observed_generation: obj.meta().generation,
        last_transition_time,
    };
    status.conditions.retain(|c| c.type_ != "Ready");
    status.conditions.push(condition);
    let progress = Progress::of(ready, status.phase);
    set_progress(status, obj, progress, reason, message, now);
}

/// Sets kstatus's abnormal-true conditions for `progress`: Reconciling=True while working,
/// Stalled=True while stuck (with Ready's reason and message), and neither once settled, so
/// that Flux's health check and `kstatus` tell a share that will get there from one that will
/// not. lastTransitionTime stays while a condition stays.
pub fn set_progress(
    status: &mut OneTimeShareStatus,
    obj: &OneTimeShare,
    progress: Progress,
    reason: Reason,
    message: &str,
    now: Timestamp,
) {
    let wanted = match progress {
        Progress::Settled => None,
        Progress::Working => Some(RECONCILING),
        Progress::Stuck => Some(STALLED),
    };
    let last_transition_time = wanted
        .and_then(|kind| status.conditions.iter().find(|c| c.type_ == kind))
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    status
        .conditions
        .retain(|c| c.type_ != RECONCILING && c.type_ != STALLED);
    if let Some(kind) = wanted {
        status.conditions.push(Condition {
            type_: kind.to_owned(),
            status: "True".to_owned(),
            reason: reason.as_str().to_owned(),
            message: truncate(message, 1024),
            observed_generation: obj.meta().generation,
            last_transition_time,
        });
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// Writes the whole status by server-side apply, retrying briefly on conflicts and transient
/// failures. A write that still fails returns an error; the caller keeps the status in memory
/// and writes it again on the next reconcile, so a link is never shared twice. Returns the
/// resource's new resourceVersion.
pub async fn write_status(
    api: &Api<OneTimeShare>,
    obj: &OneTimeShare,
    status: &OneTimeShareStatus,
) -> Result<Option<String>, Error> {
    let patch = serde_json::json!({
        "apiVersion": "ots.dev/v1alpha1",
        "kind": "OneTimeShare",
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let name = obj.name_any();
    let mut delay = Duration::from_millis(100);
    let mut attempt = 1;
    loop {
        match api
            .patch_status(&name, &params, &Patch::Apply(&patch))
            .await
        {
            Ok(written) => return Ok(written.metadata.resource_version),
            Err(e) if attempt < 4 && is_retryable(&e) => {
                tracing::debug!(attempt, error = %e, "status write failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 4;
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn is_retryable(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => matches!(status.code, 409 | 429 | 500..=599),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamps_are_described_in_user_units() {
        assert_eq!(
            clamp_message(30 * 86400, 7 * 86400).as_deref(),
            Some("the server granted a lifetime of 7d instead of the 30d asked for")
        );
        assert_eq!(clamp_message(3600, 3600), None);
        assert_eq!(clamp_message(90, 120), None);
    }

    #[test]
    fn a_lifetime_is_the_granted_one_with_its_clamp_worked_out_once() {
        let week = Ttl(Duration::from_secs(7 * 86400));
        let granted = Lifetime::new(week, Some(86400));
        assert_eq!(granted.granted(), Duration::from_secs(86400));
        assert_eq!(
            granted.clamp.as_deref(),
            Some("the server granted a lifetime of 1d instead of the 7d asked for")
        );
        let silent = Lifetime::new(week, None);
        assert_eq!(silent.granted(), week.0);
        assert_eq!(silent.clamp, None);
    }

    #[test]
    fn server_states_map_to_phases() {
        assert_eq!(phase_of(&SecretState::New), Phase::Shared);
        assert_eq!(phase_of(&SecretState::Viewed), Phase::Shared);
        assert_eq!(phase_of(&SecretState::Received), Phase::Received);
        assert_eq!(phase_of(&SecretState::Burned), Phase::Burned);
        assert_eq!(phase_of(&SecretState::Expired), Phase::Expired);
        assert_eq!(phase_of(&SecretState::Orphaned), Phase::Expired);
    }

    fn share(spec: serde_json::Value) -> OneTimeShare {
        let mut obj = OneTimeShare::new("x", serde_json::from_value(spec).unwrap());
        obj.metadata.generation = Some(3);
        obj
    }

    fn condition<'a>(status: &'a OneTimeShareStatus, kind: &str) -> Option<&'a Condition> {
        status.conditions.iter().find(|c| c.type_ == kind)
    }

    /// The kinds of conditions, in order, with their status and reason.
    fn kinds(status: &OneTimeShareStatus) -> Vec<(String, String, String)> {
        status
            .conditions
            .iter()
            .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
            .collect()
    }

    fn cond(kind: &str, value: &str, reason: &str) -> (String, String, String) {
        (kind.to_owned(), value.to_owned(), reason.to_owned())
    }

    #[test]
    fn kstatus_reads_working_stuck_and_settled_from_the_conditions() {
        let obj = share(serde_json::json!({"secretRef": {"name": "db"}}));
        let now = Timestamp::from_second(1_000).unwrap();
        let pending = OneTimeShareStatus::default();
        let waiting = error_status(
            &obj,
            &pending,
            Reason::ServerUnavailable,
            "the server did not answer",
            false,
            now,
        )
        .unwrap();
        assert_eq!(waiting.phase, Phase::Pending);
        assert_eq!(
            kinds(&waiting),
            [
                cond("Ready", "False", "ServerUnavailable"),
                cond(RECONCILING, "True", "ServerUnavailable")
            ]
        );
        let reconciling = condition(&waiting, RECONCILING).unwrap();
        assert_eq!(reconciling.observed_generation, Some(3));
        assert_eq!(reconciling.message, "the server did not answer");

        let later = Timestamp::from_second(2_000).unwrap();
        let failed = error_status(
            &obj,
            &waiting,
            Reason::KeyNotFound,
            "the Secret has no such key",
            true,
            later,
        )
        .unwrap();
        assert_eq!(failed.phase, Phase::Failed);
        assert_eq!(
            kinds(&failed),
            [
                cond("Ready", "False", "KeyNotFound"),
                cond(STALLED, "True", "KeyNotFound")
            ]
        );
        // Ready stayed False: its transition time stays; Stalled is new.
        assert_eq!(
            condition(&failed, "Ready").unwrap().last_transition_time,
            Time(now)
        );
        assert_eq!(
            condition(&failed, STALLED).unwrap().last_transition_time,
            Time(later)
        );
        // The same error again changes nothing (no status write).
        assert_eq!(
            error_status(
                &obj,
                &failed,
                Reason::KeyNotFound,
                "the Secret has no such key",
                true,
                later
            ),
            None
        );

        // Ready: neither kstatus condition is left.
        let mut shared = failed.clone();
        shared.phase = Phase::Shared;
        set_ready(&mut shared, &obj, true, Reason::Shared, "ready", later);
        assert_eq!(kinds(&shared), [cond("Ready", "True", "Shared")]);
    }

    #[test]
    fn an_expired_link_is_stalled_unless_a_new_one_follows() {
        let now = Timestamp::from_second(1_000).unwrap();
        let live = OneTimeShareStatus {
            phase: Phase::Shared,
            secret_state: Some("new".into()),
            ..Default::default()
        };
        let keep = share(serde_json::json!({"secretRef": {"name": "db"}}));
        let expired =
            refreshed_status(&keep, &live, &SecretState::Expired, None, None, now).unwrap();
        assert_eq!(
            kinds(&expired),
            [
                cond("Ready", "False", "Expired"),
                cond(STALLED, "True", "Expired")
            ]
        );
        let standing =
            share(serde_json::json!({"secretRef": {"name": "db"}, "onExpiry": "Reshare"}));
        let renewing =
            refreshed_status(&standing, &live, &SecretState::Expired, None, None, now).unwrap();
        assert_eq!(
            kinds(&renewing),
            [
                cond("Ready", "False", "Expired"),
                cond(RECONCILING, "True", "Expired")
            ]
        );
        // At maxShares the renewal stops: Stalled.
        let mut bound = renewing.clone();
        set_ready(
            &mut bound,
            &standing,
            false,
            Reason::Expired,
            "maxShares",
            now,
        );
        assert_eq!(
            kinds(&bound),
            [
                cond("Ready", "False", "Expired"),
                cond(STALLED, "True", "Expired")
            ]
        );
        let received =
            refreshed_status(&keep, &live, &SecretState::Received, Some(900), None, now).unwrap();
        assert_eq!(kinds(&received), [cond("Ready", "True", "Received")]);
    }

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    /// A live link shared at `shared` that expires at `expires`, after `history`.
    fn live(shared: i64, expires: i64, history: Vec<PastLink>) -> OneTimeShareStatus {
        OneTimeShareStatus {
            phase: Phase::Shared,
            secret_state: Some("new".into()),
            shared_at: Some(at(shared)),
            expires_at: Some(at(expires)),
            history,
            ..Default::default()
        }
    }

    fn entry(shared: i64, ended: LinkEnd, ended_at: i64) -> PastLink {
        PastLink {
            shared_at: at(shared),
            ended,
            ended_at: at(ended_at),
        }
    }

    #[test]
    fn each_end_of_a_link_sets_its_time_and_one_history_entry() {
        let obj = share(serde_json::json!({"secretRef": {"name": "db"}}));
        let now = Timestamp::from_second(5_000).unwrap();
        let link = live(1_000, 4_600, Vec::new());

        let received =
            refreshed_status(&obj, &link, &SecretState::Received, Some(2_000), None, now).unwrap();
        assert_eq!(received.received_at, Some(at(2_000)));
        assert_eq!(
            (received.burned_at.clone(), received.expired_at.clone()),
            (None, None)
        );
        assert_eq!(received.history, [entry(1_000, LinkEnd::Received, 2_000)]);

        let burned = refreshed_status(&obj, &link, &SecretState::Burned, None, None, now).unwrap();
        assert_eq!(burned.burned_at, Some(Time(now)));
        assert_eq!(burned.received_at, None);
        assert_eq!(burned.history, [entry(1_000, LinkEnd::Burned, 5_000)]);

        // Expired: at the link's own expiry time, not when the operator noticed.
        let expired =
            refreshed_status(&obj, &link, &SecretState::Expired, None, None, now).unwrap();
        assert_eq!(expired.expired_at, Some(at(4_600)));
        assert_eq!(expired.history, [entry(1_000, LinkEnd::Expired, 4_600)]);
        // Ended early on the server's word (orphaned, say): when it said so.
        let early = live(1_000, 9_000, Vec::new());
        let orphaned =
            refreshed_status(&obj, &early, &SecretState::Orphaned, None, None, now).unwrap();
        assert_eq!(orphaned.expired_at, Some(Time(now)));

        // The server's clock ahead of the operator's: no end before its link's start, and an
        // expiry at expiresAt on the server's clock.
        let ahead = live(7_000, 10_600, Vec::new());
        let early_burn =
            refreshed_status(&obj, &ahead, &SecretState::Burned, None, None, now).unwrap();
        assert_eq!(early_burn.burned_at, Some(at(7_000)));
        let late_expiry =
            refreshed_status(&obj, &ahead, &SecretState::Expired, None, None, now).unwrap();
        assert_eq!(late_expiry.expired_at, Some(at(10_600)));
        assert_eq!(
            history_for_new_link(&ahead, now),
            [entry(7_000, LinkEnd::Reshared, 7_000)]
        );

        // A link that stays live, or a second look at an ended one, adds nothing.
        let opened =
            refreshed_status(&obj, &link, &SecretState::Viewed, None, Some(1_500), now).unwrap();
        assert!(opened.history.is_empty());
        let later = Timestamp::from_second(6_000).unwrap();
        let again =
            refreshed_status(&obj, &expired, &SecretState::Orphaned, None, None, later).unwrap();
        assert_eq!(again.history, expired.history);
        assert_eq!(again.expired_at, expired.expired_at);
    }

    #[test]
    fn a_new_link_carries_the_history_with_the_old_links_end() {
        let now = Timestamp::from_second(9_000).unwrap();
        let before = vec![entry(100, LinkEnd::Expired, 200)];
        // Live when replaced: Reshared, now.
        assert_eq!(
            history_for_new_link(&live(1_000, 4_600, before.clone()), now),
            [before[0].clone(), entry(1_000, LinkEnd::Reshared, 9_000)]
        );
        // Ended and noted already (received, then reshared on a changed Secret): as it is.
        let mut received = live(1_000, 4_600, before.clone());
        received.phase = Phase::Received;
        received.received_at = Some(at(2_000));
        received
            .history
            .push(entry(1_000, LinkEnd::Received, 2_000));
        assert_eq!(history_for_new_link(&received, now), received.history);
        // Ended before history was kept: noted as its phase says.
        received.history.pop();
        assert_eq!(
            history_for_new_link(&received, now),
            [before[0].clone(), entry(1_000, LinkEnd::Received, 2_000)]
        );
        // No link before: nothing to add.
        assert!(history_for_new_link(&OneTimeShareStatus::default(), now).is_empty());
    }

    #[test]
    fn history_keeps_the_newest_entries_up_to_the_bound() {
        let mut status = OneTimeShareStatus::default();
        for n in 0..(MAX_HISTORY as i64 + 5) {
            status.shared_at = Some(at(n * 100));
            note_end(&mut status, LinkEnd::Reshared, at(n * 100 + 50));
        }
        assert_eq!(status.history.len(), MAX_HISTORY);
        assert_eq!(
            status.history[0].shared_at,
            at(500),
            "the oldest went first"
        );
        assert_eq!(
            status.history.last().map(|e| e.shared_at.clone()),
            Some(at((MAX_HISTORY as i64 + 4) * 100))
        );
        // A full history of the longest timestamps stays small in JSON (the watch cache's
        // budget is 4 KiB per share, all of status included).
        let json = serde_json::to_string(&status.history).unwrap();
        assert!(json.len() < 1_000, "{} bytes: {json}", json.len());
    }

    #[test]
    fn a_new_link_resets_the_ends_of_the_old_one() {
        let obj = share(serde_json::json!({"secretRef": {"name": "db"}}));
        let receipt = Receipt {
            metadata_key: "m".into(),
            secret_key: Some("s".into()),
            state: SecretState::New,
            ttl: Some(3600),
            secret_ttl: None,
            metadata_ttl: None,
            created: Some(9_000),
            updated: None,
            received: None,
            first_access: None,
            passphrase_required: None,
            receipt_url: None,
            recipients: Vec::new(),
            share_domain: None,
        };
        let lifetime = Lifetime::new(Ttl(Duration::from_secs(3600)), Some(3600));
        let history = vec![entry(1_000, LinkEnd::Expired, 4_600)];
        let status = shared_status(
            &obj,
            SharedLink {
                receipt: &receipt,
                link: "https://ots.example/secret/s".into(),
                metadata_link: "https://ots.example/receipt/m".into(),
                server_url: "https://ots.example".into(),
                source_resource_version: None,
                passphrase_protected: false,
                lifetime: &lifetime,
                history: history.clone(),
            },
            Timestamp::from_second(9_000).unwrap(),
        );
        assert_eq!(status.history, history);
        assert_eq!(status.shared_at, Some(at(9_000)));
        assert_eq!(
            (status.received_at, status.burned_at, status.expired_at),
            (None, None, None)
        );
    }

    #[test]
    fn a_status_restored_from_the_record_keeps_the_recorded_history() {
        let obj = share(serde_json::json!({"secretRef": {"name": "db"}}));
        let history = vec![
            entry(100, LinkEnd::Expired, 200),
            entry(300, LinkEnd::Reshared, 400),
        ];
        let record = super::super::records::ShareRecord {
            uid: "u".into(),
            namespace: "team".into(),
            name: "x".into(),
            metadata_key: "m".into(),
            server_url: "https://ots.example".into(),
            link: "https://ots.example/secret/s".into(),
            metadata_link: String::new(),
            ttl_seconds: 3600,
            shared_at: 400,
            expires_at: 4_000,
            passphrase_protected: false,
            source_resource_version: None,
            reshare_token: None,
            links_in_a_row: 1,
            reissued_at: Vec::new(),
            burn_token: None,
            history: history.clone(),
        };
        let restored = restored_status(&obj, &record, Timestamp::from_second(500).unwrap());
        assert_eq!(restored.history, history);
        assert_eq!(restored.shared_at, Some(at(400)));
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let text = "é".repeat(600);
        let cut = truncate(&text, 1024);
        assert!(cut.len() <= 1024);
        assert!(cut.chars().all(|c| c == 'é'));
    }

    #[test]
    fn the_first_opening_is_recorded_once_and_never_moves() {
        let obj = OneTimeShare::new(
            "x",
            serde_json::from_value(serde_json::json!({"secretRef": {"name": "db"}})).unwrap(),
        );
        let live = OneTimeShareStatus {
            phase: Phase::Shared,
            secret_state: Some("new".into()),
            ..Default::default()
        };
        let now = Timestamp::from_second(1_000).unwrap();
        assert_eq!(
            refreshed_status(&obj, &live, &SecretState::New, None, None, now),
            None
        );
        let opened = refreshed_status(&obj, &live, &SecretState::New, None, Some(500), now)
            .expect("an opening is a change");
        assert_eq!(opened.phase, Phase::Shared);
        assert_eq!(
            opened.opened_at,
            Some(Time(Timestamp::from_second(500).unwrap()))
        );
        assert_eq!(
            refreshed_status(&obj, &opened, &SecretState::New, None, Some(600), now),
            None
        );
        let received = refreshed_status(
            &obj,
            &opened,
            &SecretState::Received,
            Some(700),
            Some(500),
            now,
        )
        .unwrap();
        assert_eq!(received.opened_at, opened.opened_at);
        let direct =
            refreshed_status(&obj, &live, &SecretState::Received, Some(700), None, now).unwrap();
        assert_eq!(direct.opened_at, direct.received_at);
    }
}
