//! Tracking: keep the link's state current until it is final (in batches where the server
//! has the batch status route, see `batch_track`; else one receipt at a time on a bounded,
//! jittered schedule), reshare a changed Secret when the resource asks for it, reissue a share
//! whose `ots.dev/reshare` annotation got a new value, and burn the link of a share whose
//! `ots.dev/burn` annotation got one.

use super::batch_track::{self, Group};
use super::burn::{burn, revoke};
use super::inputs::{fetch_source, prepare};
use super::memory::Batched;
use super::share::{self, Occasion};
use super::status;
use super::status::refreshed_status;
use super::{Context, now, save};
use super::{link_secret, renew};
use crate::error::{Error, Reason};
use crate::ots::{BurnOutcome, OtsError, ResolvedApi};
use crate::resource::{
    BURN_ANNOTATION, ExpiryPolicy, MAX_BURN_TOKEN_CHARS, MAX_RESHARE_TOKEN_CHARS, OneTimeShare,
    OneTimeShareStatus, Phase, RESHARE_ANNOTATION, SecretChangePolicy,
};
use crate::runtime::metrics::BurnResult;
use crate::runtime::throttle::IfFree;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use std::time::Duration;

/// Tracks a resource that has a link. `metadata_key` is the recorded link's (status may not
/// show it: `spec.linkSecretRef` keeps it out).
pub(super) async fn track(
    obj: &OneTimeShare,
    status: OneTimeShareStatus,
    metadata_key: &str,
    ctx: &Context,
) -> Result<Action, Error> {
    let mut status = status;
    // The reissue token is decided on the record's word; status only reports it.
    let acted_on = acted_on_token(obj, &status, ctx).await?;
    if let Some(acted_on) = &acted_on {
        status.reshare_token = acted_on.clone();
    }
    // A status we wrote but the API does not show (a failed write): write it again first.
    let generation = obj.meta().generation;
    if obj.status.as_ref() != Some(&status) || status.observed_generation != generation {
        status.observed_generation = generation;
        save(obj, ctx, &status).await?;
    }
    // A burn is asked for by the user: done first, so that a reissue asked for at the same time
    // (or refused, or failing) never leaves the old link live. A value too long to act on is
    // refused like a reissue's: the condition says why, and the link is tracked as before.
    let mut burn_refusal = None;
    match burn_request(obj, ctx).await? {
        BurnRequest::Nothing => {}
        BurnRequest::New(token) => status = burn_on_request(obj, status, ctx, token).await?,
        BurnRequest::TooLong(refused) => {
            status = refused_burn(obj, &status, ctx, &refused).await;
            burn_refusal = Some(refused);
        }
    }
    // A reissue is asked for by the user: it is done now, not on the link-check schedule,
    // unless it is refused (a value too long to act on, or too many reissues this hour): then
    // the condition says why, the link is tracked as before, and the refusal is reported (a
    // Warning, and a retry when the hour allows another reissue).
    let mut refusal = None;
    if reissue_requested(obj, acted_on.as_ref()) {
        match reissue_allowance(obj, ctx).await? {
            Ok(reissued_at) => return reissue(obj, &status, ctx, reissued_at).await,
            Err(refused) => {
                let trigger = "a reissue was requested but is not carried out";
                status = blocked_reshare(obj, &status, ctx, &refused, trigger).await;
                refusal = Some(refused);
            }
        }
    } else if burn_refusal.is_none()
        && let Some(settled) = reissue_dropped(obj, &status)
    {
        save(obj, ctx, &settled).await?;
        status = settled;
    }
    match (
        follow(obj, status, metadata_key, ctx).await,
        refusal.or(burn_refusal),
    ) {
        // The link's next check stays on the check clock; the refusal decides the retry.
        (Ok(_), Some(refused)) => Err(refused),
        (tracked, _) => tracked,
    }
}

/// Follows a link that needs no reissue: writes a link Secret that could not be written,
/// checks the link's state when due, reshares a changed Secret and renews an expired link.
async fn follow(
    obj: &OneTimeShare,
    status: OneTimeShareStatus,
    metadata_key: &str,
    ctx: &Context,
) -> Result<Action, Error> {
    let uid = obj.uid().unwrap_or_default();
    let mut status = status;
    // A link Secret that could not be written is written as soon as it can be. A failure to
    // write it never stops the link checks: it is reported after them.
    let mut link_secret_error = None;
    if link_secret::name(obj).is_some()
        && status.phase == Phase::Shared
        && ready_reason(&status) == Some(Reason::LinkSecretNotWritten.as_str())
    {
        match link_secret::ensure(obj, ctx, None).await {
            Ok(_) => status = link_secret_written(obj, status, ctx).await?,
            Err(error) => link_secret_error = Some(error),
        }
    }
    let reshare = obj.spec.on_secret_change == SecretChangePolicy::Reshare;
    let live = status.phase == Phase::Shared;
    let watching_secret = reshare && status.phase == Phase::Received;
    let renewing = obj.spec.on_expiry == ExpiryPolicy::Reshare && status.phase == Phase::Expired;
    if !(live || watching_secret || renewing) {
        return Ok(Action::await_change());
    }
    // A live link the batch tracker does not check yet is handed to it without a read of its
    // own (after a share, a reshare or a restart); a server without the route keeps the
    // one-receipt schedule below.
    let batch = ctx.memory.batched(&uid);
    if live
        && link_secret_error.is_none()
        && batch == Batched::No
        && let Some(key) = status.link.as_deref().and_then(batch_track::secret_key_of)
        && batched(obj, &status, key, ctx).await?
    {
        return Ok(ctx.check_when_due(obj));
    }
    // Status left Shared while the tracker holds the link and no server said so (someone
    // else wrote it): the server's word is asked now, not at the next wake-up.
    let status_moved = batch == Batched::Tracked && !live;
    if !status_moved && ctx.memory.check_due_at(&uid).is_some() {
        return unless_failed(ctx.check_when_due(obj), link_secret_error);
    }
    if reshare && let Some(action) = reshare_if_changed(obj, &status, ctx).await? {
        return Ok(action);
    }
    if renewing {
        // Expired before this reconcile (e.g. before a restart, or maxShares was raised):
        // renewed only on the server's word, never on status alone.
        return renew::renew(obj, &status, metadata_key, ctx, false).await;
    }
    if live && link_secret_error.is_none() {
        link_secret_error = rewrite_link_secret(obj, ctx).await;
    }
    let mut current = status;
    let mut read_key = None;
    if live {
        let refreshed = refresh(obj, &current, metadata_key, ctx).await;
        if batch == Batched::Woken && !matches!(refreshed, Ok(Refresh::Busy(_))) {
            // The read the tracker holds its next batch back for was made (or failed).
            ctx.tracker.read_done(&uid);
        }
        match refreshed? {
            Refresh::Unchanged(secret_key) => read_key = secret_key,
            Refresh::Changed(next) => {
                if next.phase != Phase::Shared {
                    ctx.link_spent(&uid);
                }
                let told = ending(obj, ctx, &current, &next).await;
                save(obj, ctx, &next).await?;
                announce(obj, ctx, told).await;
                current = *next;
                if current.phase == Phase::Expired && obj.spec.on_expiry == ExpiryPolicy::Reshare {
                    return renew::renew(obj, &current, metadata_key, ctx, true).await;
                }
            }
            // The OTS budget is taken by shares and burns: check later, still due.
            Refresh::Busy(retry_in) => {
                // A link the batch tracker saw leave is asked about again as soon as a call is
                // free: the tracker holds its next batch back for this read (see
                // `batch_track`), so the next free call is this read's.
                let wait = if batch == Batched::Woken {
                    retry_in + Duration::from_millis(20)
                } else {
                    super::memory::jitter(retry_in.max(ctx.config.refresh_min))
                };
                return unless_failed(Action::requeue(wait), link_secret_error);
            }
        }
    }
    if current.phase != Phase::Shared && !(reshare && current.phase == Phase::Received) {
        return Ok(Action::await_change());
    }
    let until_expiry = current.expires_at.as_ref().and_then(|t| {
        let left = t.0.as_second() - now().as_second();
        (left > 0 && current.phase == Phase::Shared).then(|| Duration::from_secs(left as u64))
    });
    // Still live: the next check is the batch tracker's where the server has the route (the
    // key from status, or from the receipt just read when a link Secret keeps it out of status).
    let secret_key = current
        .link
        .as_deref()
        .and_then(batch_track::secret_key_of)
        .map(str::to_owned)
        .or(read_key);
    if current.phase == Phase::Shared
        && let Some(key) = secret_key
        && batched(obj, &current, &key, ctx).await?
    {
        return unless_failed(ctx.check_when_due(obj), link_secret_error);
    }
    let (refresh_min, refresh_max) = ctx.refresh_bounds();
    ctx.memory
        .schedule_check(&uid, refresh_min, refresh_max, until_expiry);
    unless_failed(ctx.check_when_due(obj), link_secret_error)
}

/// Hands a live link to the batch tracker when its server has the batch status route (v2,
/// not found without it yet); whether it did. The tracker wakes the share as soon as the link
/// leaves its answer (read, burned, expired); the share's own check, which reads the receipt
/// for what the batch answer does not carry (`openedAt` of a page opened but not revealed) and
/// looks after its link Secret and its Secret, comes at the slow end of the schedule
/// ([`Context::batched_refresh`]).
async fn batched(
    obj: &OneTimeShare,
    status: &OneTimeShareStatus,
    secret_key: &str,
    ctx: &Context,
) -> Result<bool, Error> {
    let Some(url) = status.server_url.as_deref() else {
        return Ok(false);
    };
    if !ctx.tracker.serves(url) {
        return Ok(false);
    }
    let server = ctx.link_server(obj, status).await?;
    if server.client.learned_api() != Some(ResolvedApi::V2) {
        return Ok(false);
    }
    let username = match &server.per_share_credentials {
        Some(credentials) => Some(credentials.username.clone()),
        // The operator's own account, whichever it is: one group.
        None => server.client.is_authenticated().then(String::new),
    };
    let group = Group {
        url: server.url.clone(),
        username,
    };
    let uid = obj.uid().unwrap_or_default();
    let share = format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any());
    ctx.tracker
        .watch(&uid, &share, group, &server.client, secret_key);
    let until_expiry = status
        .expires_at
        .as_ref()
        .map(|t| Duration::from_secs((t.0.as_second() - now().as_second()).max(0) as u64));
    ctx.memory.batch_tracked(&uid);
    let until_expiry = until_expiry.unwrap_or(BATCHED_RECHECK);
    ctx.memory.check_after(
        &uid,
        super::memory::jitter(ctx.batched_refresh()).min(until_expiry),
    );
    Ok(true)
}

/// How long a batch-tracked link with no known expiry goes at most without a check of its own.
const BATCHED_RECHECK: Duration = Duration::from_secs(24 * 3600);

/// Rewrites the link Secret from the operator's record when it is missing or changed (nothing
/// to do without one); the error when it cannot be written.
async fn rewrite_link_secret(obj: &OneTimeShare, ctx: &Context) -> Option<Error> {
    match link_secret::ensure(obj, ctx, None).await {
        Ok(true) => {
            tracing::info!(
                object = %kube::runtime::reflector::ObjectRef::from_obj(obj),
                "the link Secret was missing or changed; rewrote it from the operator's record"
            );
            None
        }
        Ok(false) => None,
        Err(error) => Some(error),
    }
}

/// `action`, unless the link Secret could not be written: then that error (Ready=False
/// `LinkSecretNotWritten`, a Warning, and a retry with backoff).
fn unless_failed(action: Action, link_secret_error: Option<Error>) -> Result<Action, Error> {
    match link_secret_error {
        Some(error) => Err(error),
        None => Ok(action),
    }
}

/// What a link-state check found.
enum Refresh {
    /// Nothing changed; the receipt's secret key, when it showed one.
    Unchanged(Option<String>),
    /// The link reached a new state.
    Changed(Box<OneTimeShareStatus>),
    /// No OTS capacity was free for a background check; try again after this long.
    Busy(Duration),
}

/// Asks the server for the link's state, using only OTS capacity no share or burn waits for.
async fn refresh(
    obj: &OneTimeShare,
    status: &OneTimeShareStatus,
    metadata_key: &str,
    ctx: &Context,
) -> Result<Refresh, Error> {
    let server = ctx.link_server(obj, status).await?;
    let mut secret_key = None;
    let state = match ctx
        .throttle
        .call(
            &server.url,
            "receipt",
            IfFree,
            server.client.receipt(metadata_key),
        )
        .await
    {
        Err(busy) => return Ok(Refresh::Busy(busy.retry_in)),
        Ok(Ok(receipt)) => {
            secret_key = receipt.secret_key;
            Some((receipt.state, receipt.received, receipt.first_access))
        }
        // The server says the receipt itself is gone (v2 `RecordNotFound`, v1 `Unknown
        // secret`; it lives twice the secret's lifetime): the link is dead. Only that answer:
        // an unknown route (`RouteNotFound`, a wrong URL or an old server) or any odd answer is
        // an error, and the link keeps its state.
        Ok(Err(OtsError::NotFound)) => None,
        Ok(Err(e)) => return Err(e.into()),
    };
    let (state, received, first_access) =
        state.unwrap_or((crate::ots::SecretState::Expired, None, None));
    Ok(
        match refreshed_status(obj, status, &state, received, first_access, now()) {
            Some(next) => Refresh::Changed(Box::new(next)),
            None => Refresh::Unchanged(secret_key),
        },
    )
}

/// What tells of an end the link reached (Received, Burned, Expired): the transition (its
/// notifications in the outbox ahead of the status write) and the Event to publish once the
/// write succeeded. `None` for any other phase.
async fn ending(
    obj: &OneTimeShare,
    ctx: &Context,
    before: &OneTimeShareStatus,
    status: &OneTimeShareStatus,
) -> Option<(super::Told, EventType, Reason, &'static str)> {
    let (kind, reason, note) = match status.phase {
        Phase::Received => (
            EventType::Normal,
            Reason::Received,
            "the recipient opened the link",
        ),
        Phase::Burned => (
            EventType::Warning,
            Reason::Burned,
            "the secret was burned before anyone opened the link",
        ),
        Phase::Expired => (
            EventType::Warning,
            Reason::Expired,
            "the link expired before anyone opened it",
        ),
        _ => return None,
    };
    let told = ctx.transition_ahead(obj, before, status, reason).await;
    Some((told, kind, reason, note))
}

/// Normal or Warning Event, and the transition's log line and notifications, for an end the
/// link reached, once its status write succeeded.
async fn announce(
    obj: &OneTimeShare,
    ctx: &Context,
    ending: Option<(super::Told, EventType, Reason, &'static str)>,
) {
    let Some((told, kind, reason, note)) = ending else {
        return;
    };
    told.recorded();
    ctx.event(obj, kind, reason, note.to_owned()).await;
}

/// With `onSecretChange: Reshare`: when the Secret has a new resourceVersion, burn the old link
/// and share the new value. `None` when nothing changed.
async fn reshare_if_changed(
    obj: &OneTimeShare,
    status: &OneTimeShareStatus,
    ctx: &Context,
) -> Result<Option<Action>, Error> {
    let source = match fetch_source(obj, ctx).await {
        Ok(source) => source,
        // A deleted Secret leaves the shared link as it is.
        Err(Error::SecretNotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    if source.metadata.resource_version == status.source_resource_version {
        return Ok(None);
    }
    const NOTES: Notes = Notes {
        blocked: "the Secret changed, but its new value cannot be shared",
        burned: "the Secret changed: the old link was burned and the new value shared under a new link",
        gone: "the Secret changed: the old link was already gone (opened or expired); the new value is shared under a new link",
        spent: "the Secret changed after the old link was opened; the new value is shared under a new link",
    };
    burn_and_reshare(obj, status, ctx, &source, NOTES, None)
        .await
        .map(Some)
}

/// Whether the `ots.dev/reshare` annotation holds a value no link was made for yet, on the
/// record's word (`acted_on`: the value the recorded link was made for, when looked up).
fn reissue_requested(obj: &OneTimeShare, acted_on: Option<&Option<String>>) -> bool {
    let Some(acted_on) = acted_on else {
        return false;
    };
    obj.annotations()
        .get(RESHARE_ANNOTATION)
        .is_some_and(|token| !token.is_empty() && acted_on.as_ref() != Some(token))
}

/// The status of a live, Ready share whose Reconciling or Stalled condition was left by a
/// reissue that is no longer asked for (the annotation was removed or set back): settled again,
/// so that kstatus does not wait for a reissue that will not come. `None` when nothing is to
/// settle, and with `onSecretChange: Reshare`, whose blocked reshares set them too and are retried.
fn reissue_dropped(obj: &OneTimeShare, current: &OneTimeShareStatus) -> Option<OneTimeShareStatus> {
    let ready = current
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let unsettled = current
        .conditions
        .iter()
        .any(|c| c.type_ == status::RECONCILING || c.type_ == status::STALLED);
    if current.phase != Phase::Shared
        || !ready
        || !unsettled
        || obj.spec.on_secret_change == SecretChangePolicy::Reshare
    {
        return None;
    }
    let mut next = current.clone();
    let settled = status::Progress::Settled;
    status::set_progress(&mut next, obj, settled, Reason::Shared, "", now());
    Some(next)
}

/// What the `ots.dev/burn` annotation asks for.
enum BurnRequest {
    /// Nothing: no value, an empty one, or the one last acted on.
    Nothing,
    /// A burn: a value not acted on yet.
    New(String),
    /// A value too long to act on: refused.
    TooLong(Error),
}

/// Whether the `ots.dev/burn` annotation holds a value not acted on yet, on the record's word
/// (from memory, or one record read).
async fn burn_request(obj: &OneTimeShare, ctx: &Context) -> Result<BurnRequest, Error> {
    let Some(token) = obj
        .annotations()
        .get(BURN_ANNOTATION)
        .filter(|token| !token.is_empty())
    else {
        return Ok(BurnRequest::Nothing);
    };
    if token.chars().count() > MAX_BURN_TOKEN_CHARS {
        return Ok(BurnRequest::TooLong(Error::BurnTokenTooLong {
            max: MAX_BURN_TOKEN_CHARS,
        }));
    }
    let uid = obj.uid().unwrap_or_default();
    let acted_on = match ctx.memory.burn_token(&uid) {
        Some(known) => known,
        None => {
            let Some(stored) = ctx.records.load(&uid).await? else {
                return Ok(BurnRequest::Nothing);
            };
            let known = stored.record.burn_token;
            ctx.memory.set_burn_token(&uid, known.clone());
            known
        }
    };
    Ok(if acted_on.as_ref() == Some(token) {
        BurnRequest::Nothing
    } else {
        BurnRequest::New(token.clone())
    })
}

/// Burns the link on request (a new `ots.dev/burn` value): a live link is burned on the server
/// at once, before any share waiting for the OTS budget (as a deletion's burn is), and the
/// share becomes Burned, Stalled until a reissue; a link no longer live is left alone. Either
/// way the value is recorded as acted on (after the burn: a crash in between burns again, which
/// finds the link gone) and an Event says what happened. Returns the new status.
async fn burn_on_request(
    obj: &OneTimeShare,
    status: OneTimeShareStatus,
    ctx: &Context,
    token: String,
) -> Result<OneTimeShareStatus, Error> {
    const BURNED: &str = "burned on request (ots.dev/burn): nobody can open the link any more; reissue it (a new ots.dev/reshare value, or kubectl ots reissue) to share again";
    let uid = obj.uid().unwrap_or_default();
    let Some(mut stored) = ctx.records.load(&uid).await? else {
        return Ok(status);
    };
    let mut next = status.clone();
    let note = if status.phase == Phase::Shared {
        let outcome = match revoke(ctx, &stored).await {
            Ok(outcome) => outcome,
            Err(error) => return Err(burn_retried(obj, &status, ctx, error).await),
        };
        ctx.link_spent(&uid);
        tracing::info!(
            object = %kube::runtime::reflector::ObjectRef::from_obj(obj),
            outcome = ?BurnResult::from(&outcome),
            "burned the link on request"
        );
        match outcome {
            BurnOutcome::Burned(_) => {
                ctx.metrics.burn(BurnResult::Burned);
                let state = crate::ots::SecretState::Burned;
                if let Some(burned) = refreshed_status(obj, &status, &state, None, None, now()) {
                    next = burned;
                }
                status::set_ready(&mut next, obj, false, Reason::Burned, BURNED, now());
                "the link was burned on request (ots.dev/burn); reissue it (a new ots.dev/reshare value) to share again".to_owned()
            }
            BurnOutcome::AlreadyGone { state, received } => {
                if let Some(gone) = refreshed_status(obj, &status, &state, received, None, now()) {
                    next = gone;
                }
                format!(
                    "a burn was requested (ots.dev/burn), but there was nothing to burn: the server reports the link {}",
                    state.as_str()
                )
            }
        }
    } else {
        format!(
            "a burn was requested (ots.dev/burn), but there was nothing to burn: the link is no longer live (phase {})",
            status.phase.as_str()
        )
    };
    // An expired link renewed by onExpiry: Reshare stays without a new link from now on.
    if next.phase == Phase::Expired && obj.spec.on_expiry == ExpiryPolicy::Reshare {
        next.phase = Phase::Burned;
        status::set_ready(
            &mut next,
            obj,
            false,
            Reason::Burned,
            "the link expired unread and a burn was requested (ots.dev/burn): no new link is made; reissue it (a new ots.dev/reshare value, or kubectl ots reissue) to share again",
            now(),
        );
    }
    next.burn_token = Some(token.clone());
    stored.record.burn_token = Some(token.clone());
    ctx.records.save(&stored).await?;
    ctx.memory.set_burn_token(&uid, Some(token));
    let told = if next.phase != status.phase {
        let reason = super::transition::end_reason(next.phase);
        Some(ctx.transition_ahead(obj, &status, &next, reason).await)
    } else {
        None
    };
    save(obj, ctx, &next).await?;
    if let Some(told) = told {
        told.recorded();
    }
    ctx.event(obj, EventType::Normal, Reason::Burned, note)
        .await;
    Ok(next)
}

/// A burn on request that failed (the server down, say) is retried with the error policy's
/// backoff. The link is still live, so status keeps it and Ready, but says that the burn is
/// still to come: Reconciling=True, or Stalled=True when only a fix helps, so that kstatus
/// (Flux) does not take the live link for the outcome. Returns the error.
async fn burn_retried(
    obj: &OneTimeShare,
    status: &OneTimeShareStatus,
    ctx: &Context,
    error: Error,
) -> Error {
    retried(obj, status, ctx, error, |message| {
        format!(
            "the burn asked for (ots.dev/burn) is not done yet and is retried ({message}); the link is still live"
        )
    })
    .await
}

/// A burn asked for with a value too long to act on: Stalled says why (Ready, and the link, stay
/// as they are), so the user sees why nothing was burned.
async fn refused_burn(
    obj: &OneTimeShare,
    status: &OneTimeShareStatus,
    ctx: &Context,
    error: &Error,
) -> OneTimeShareStatus {
    let (reason, message) = error.shown(ctx.config.admission_guard);
    let live = if status.phase == Phase::Shared {
        "the link stays live"
    } else {
        "nothing was burned"
    };
    let message = format!("a burn was requested but is not carried out ({message}); {live}");
    let mut next = status.clone();
    status::set_progress(
        &mut next,
        obj,
        status::Progress::Stuck,
        reason,
        &message,
        now(),
    );
    if next != *status
        && let Err(e) = save(obj, ctx, &next).await
    {
        tracing::warn!(error = %e, "could not write the refused burn to status");
    }
    next
}

/// The `ots.dev/reshare` value the recorded link was made for, from memory or the record (one
/// read). Looked up only when the annotation or status names one; `None` otherwise.
async fn acted_on_token(
    obj: &OneTimeShare,
    status: &OneTimeShareStatus,
    ctx: &Context,
) -> Result<Option<Option<String>>, Error> {
    if !obj.annotations().contains_key(RESHARE_ANNOTATION) && status.reshare_token.is_none() {
        return Ok(None);
    }
    let uid = obj.uid().unwrap_or_default();
    if let Some(known) = ctx.memory.reshare_token(&uid) {
        return Ok(Some(known));
    }
    let Some(stored) = ctx.records.load(&uid).await? else {
        return Ok(None);
    };
    let token = stored.record.reshare_token(obj);
    ctx.memory.set_reshare_token(&uid, token.clone());
    Ok(Some(token))
}

/// The Ready condition's reason.
fn ready_reason(status: &OneTimeShareStatus) -> Option<&str> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.reason.as_str())
}

/// After a link Secret that could not be written was written: Ready again, and an Event.
async fn link_secret_written(
    obj: &OneTimeShare,
    mut status: OneTimeShareStatus,
    ctx: &Context,
) -> Result<OneTimeShareStatus, Error> {
    let name = link_secret::name(obj).unwrap_or_default();
    let message = format!("the link is ready to hand out; it is in Secret {name:?}");
    status::set_ready(&mut status, obj, true, Reason::Shared, &message, now());
    save(obj, ctx, &status).await?;
    ctx.memory.healthy(&obj.uid().unwrap_or_default());
    let note = format!("the link was written into Secret {name:?}");
    ctx.event(obj, EventType::Normal, Reason::Shared, note)
        .await;
    Ok(status)
}

/// Reissues a share on request (a new `ots.dev/reshare` value): the live link, if any, is burned
/// and the same spec is shared anew; `status.reshareToken` records the value acted on.
async fn reissue(
    obj: &OneTimeShare,
    status: &OneTimeShareStatus,
    ctx: &Context,
    reissued_at: Vec<i64>,
) -> Result<Action, Error> {
    const NOTES: Notes = Notes {
        blocked: "a reissue was requested, but the Secret's value cannot be shared",
        burned: "reissued on request: the old link was burned and the Secret shared anew under a new link",
        gone: "reissued on request: the old link was already gone (opened or expired); the Secret is shared anew under a new link",
        spent: "reissued on request: the old link was no longer live (opened, burned or expired); the Secret is shared anew under a new link",
    };
    let source = fetch_source(obj, ctx).await?;
    burn_and_reshare(obj, status, ctx, &source, NOTES, Some(reissued_at)).await
}

/// Whether a requested reissue may be carried out now: the reissues of the last hour to record
/// (this one included), or why not. The count lives in the operator's record, never in status.
async fn reissue_allowance(
    obj: &OneTimeShare,
    ctx: &Context,
) -> Result<Result<Vec<i64>, Error>, Error> {
    let too_long = obj
        .annotations()
        .get(RESHARE_ANNOTATION)
        .is_some_and(|token| token.chars().count() > MAX_RESHARE_TOKEN_CHARS);
    if too_long {
        return Ok(Err(Error::ReshareTokenTooLong {
            max: MAX_RESHARE_TOKEN_CHARS,
        }));
    }
    let uid = obj.uid().unwrap_or_default();
    let earlier = match ctx.records.load(&uid).await? {
        Some(stored) => stored.record.reissued_at,
        None => Vec::new(),
    };
    Ok(within_hourly_limit(
        earlier,
        now().as_second(),
        ctx.config.max_reissues_per_hour,
    ))
}

/// The reissues of the hour before `now` plus one at `now`, if fewer than `max` were made in
/// that hour; otherwise the refusal, with when the oldest of them leaves the hour.
fn within_hourly_limit(earlier: Vec<i64>, now: i64, max: u32) -> Result<Vec<i64>, Error> {
    const HOUR: i64 = 3600;
    let mut recent: Vec<i64> = earlier
        .into_iter()
        .filter(|at| *at <= now && now - at < HOUR)
        .collect();
    recent.sort_unstable();
    if recent.len() >= max as usize {
        let oldest = recent.first().copied().unwrap_or(now);
        let retry_in = Duration::from_secs((oldest + HOUR - now).max(1) as u64);
        return Err(Error::ReissueLimited { max, retry_in });
    }
    recent.push(now);
    Ok(recent)
}

/// Event notes of a reshare, by what became of the old link.
struct Notes {
    /// The condition's message when the value cannot be shared (what asked, and that it cannot).
    blocked: &'static str,
    /// The live old link was burned.
    burned: &'static str,
    /// The old link looked live but the server had already dropped it.
    gone: &'static str,
    /// The old link was no longer live (nothing to burn).
    spent: &'static str,
}

/// Burns the old link if it is live and shares `source` under a new link, recorded in status.
/// The new value is validated before anything is burned.
async fn burn_and_reshare(
    obj: &OneTimeShare,
    status: &OneTimeShareStatus,
    ctx: &Context,
    source: &k8s_openapi::api::core::v1::Secret,
    notes: Notes,
    reissued_at: Option<Vec<i64>>,
) -> Result<Action, Error> {
    // The new value is checked, and a live-link slot taken, before anything is burned.
    let prepared = prepare(obj, ctx, source, status.server_url.as_deref())
        .await
        .and_then(|prepared| {
            ctx.reserve_live_slot(obj, prepared.max_live)
                .map(|()| prepared)
        });
    let prepared = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            blocked_reshare(obj, status, ctx, &error, notes.blocked).await;
            return Err(error);
        }
    };
    let uid = obj.uid().unwrap_or_default();
    let stored = match ctx.records.load(&uid).await {
        Ok(stored) => stored,
        Err(error) => return Err(reshare_retried(obj, status, ctx, error).await),
    };
    // A reshare of a changed Secret carries the hour's reissues on; a reissue adds itself.
    let reissued_at = reissued_at
        .or_else(|| stored.as_ref().map(|s| s.record.reissued_at.clone()))
        .unwrap_or_default();
    let mut note = notes.spent;
    // The status whose link the new one replaces, with how that link ended.
    let mut ended = status.clone();
    if status.phase == Phase::Shared {
        // The old link is burned with what it was shared with (the passphrase may have changed).
        if let Some(stored) = &stored {
            let outcome = match burn(ctx, stored).await {
                Ok(outcome) => outcome,
                Err(error) => return Err(reshare_retried(obj, status, ctx, error).await),
            };
            tracing::info!(
                object = %kube::runtime::reflector::ObjectRef::from_obj(obj),
                outcome = ?BurnResult::from(&outcome),
                "burned the old link before resharing"
            );
            note = match outcome {
                BurnOutcome::Burned(_) => {
                    ctx.metrics.burn(BurnResult::Burned);
                    notes.burned
                }
                BurnOutcome::AlreadyGone { state, received } => {
                    // Its history entry says how it really ended, not Reshared.
                    if let Some(gone) = refreshed_status(obj, status, &state, received, None, now())
                    {
                        ended = gone;
                    }
                    notes.gone
                }
            };
        }
    }

    let occasion = Occasion::Reshared { note, reissued_at };
    share::share_anew(obj, ctx, &prepared, occasion, &ended).await
}

/// A reshare that failed before its new link was made (the server down while burning the old
/// one, say) is retried with the error policy's backoff. Status keeps the link it shows, and
/// Ready with it (the Warning Event says what failed), but says that a new link is still to
/// come: Reconciling=True, or Stalled=True when only a fix helps, so that kstatus (Flux) does
/// not take the old link for the outcome. Returns the error.
async fn reshare_retried(
    obj: &OneTimeShare,
    status: &OneTimeShareStatus,
    ctx: &Context,
    error: Error,
) -> Error {
    retried(obj, status, ctx, error, |message| {
        format!("a new link is not made yet and is retried ({message})")
    })
    .await
}

/// Writes that a step failed and is retried, in words `describe` makes of the error's message:
/// Reconciling=True, or Stalled=True when only a fix helps (Ready and the link as they are).
/// Returns the error.
async fn retried(
    obj: &OneTimeShare,
    status: &OneTimeShareStatus,
    ctx: &Context,
    error: Error,
    describe: impl FnOnce(&str) -> String,
) -> Error {
    let (reason, message) = error.shown(ctx.config.admission_guard);
    let progress = if error.needs_user_fix() {
        status::Progress::Stuck
    } else {
        status::Progress::Working
    };
    let message = describe(&message);
    let mut next = status.clone();
    status::set_progress(&mut next, obj, progress, reason, &message, now());
    if next != *status
        && let Err(e) = save(obj, ctx, &next).await
    {
        tracing::warn!(error = %e, "could not write the retry to status");
    }
    error
}

/// A reshare whose new value cannot be shared: the condition says so (the old link
/// stays live and Ready), so the user sees why no new link comes.
async fn blocked_reshare(
    obj: &OneTimeShare,
    status: &OneTimeShareStatus,
    ctx: &Context,
    error: &Error,
    trigger: &str,
) -> OneTimeShareStatus {
    let (reason, message) = error.shown(ctx.config.admission_guard);
    let live = if status.phase == Phase::Shared {
        "the previous link stays live"
    } else {
        "no new link is made until it can be"
    };
    let message = format!("{trigger} ({message}); {live}");
    let mut next = status.clone();
    status::set_ready(
        &mut next,
        obj,
        status.phase == Phase::Shared,
        reason,
        &message,
        now(),
    );
    // The reshare asked for is not done: under way while it is retried, stuck when only a fix
    // helps (kstatus reads these, whatever Ready says of the old link).
    let progress = if error.needs_user_fix() {
        status::Progress::Stuck
    } else {
        status::Progress::Working
    };
    status::set_progress(&mut next, obj, progress, reason, &message, now());
    if next != *status
        && let Err(e) = save(obj, ctx, &next).await
    {
        tracing::warn!(error = %e, "could not write the blocked reshare to status");
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotated(token: Option<&str>) -> OneTimeShare {
        let mut obj = OneTimeShare::new(
            "x",
            serde_json::from_value(serde_json::json!({"secretRef": {"name": "db"}})).unwrap(),
        );
        if let Some(token) = token {
            obj.annotations_mut()
                .insert(RESHARE_ANNOTATION.to_owned(), token.to_owned());
        }
        obj
    }

    #[test]
    fn reissues_are_counted_over_a_rolling_hour() {
        let now = 10_000;
        // Fewer than the limit in the hour: allowed, and this one is added.
        assert_eq!(
            within_hourly_limit(vec![now - 100], now, 2).unwrap(),
            vec![now - 100, now]
        );
        // Older than an hour (or from a clock ahead of ours) no longer counts.
        assert_eq!(
            within_hourly_limit(vec![now - 3600, now - 7200, now + 50], now, 1).unwrap(),
            vec![now]
        );
        // At the limit: refused until the oldest of the hour is an hour old.
        match within_hourly_limit(vec![now - 10, now - 600], now, 2) {
            Err(Error::ReissueLimited { max, retry_in }) => {
                assert_eq!(max, 2);
                assert_eq!(retry_in, Duration::from_secs(3000));
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_reissue_is_decided_on_the_recorded_token_alone() {
        let made_for_a = Some("a".to_owned());
        // The recorded link was made for "a": only another value reissues.
        assert!(!reissue_requested(&annotated(Some("a")), Some(&made_for_a)));
        assert!(reissue_requested(&annotated(Some("b")), Some(&made_for_a)));
        // Made without the annotation: any value reissues; an empty one never does.
        assert!(reissue_requested(&annotated(Some("a")), Some(&None)));
        assert!(!reissue_requested(&annotated(Some("")), Some(&None)));
        assert!(!reissue_requested(&annotated(None), Some(&made_for_a)));
        // Not looked up (no record): nothing is reissued on status's word.
        assert!(!reissue_requested(&annotated(Some("b")), None));
    }
}
