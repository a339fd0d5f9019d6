//! Tracking: keep the link's state current on a bounded, jittered schedule until it is final,
//! reshare a changed Secret when the resource asks for it, and reissue a share whose
//! `ots.dev/reshare` annotation got a new value.

use super::cleanup::burn;
use super::share::{Occasion, fetch_source, prepare, record, send};
use super::status;
use super::status::refreshed_status;
use super::{Context, now, save};
use crate::error::{Error, Reason};
use crate::ots::{BurnOutcome, OtsError};
use crate::resource::{
    OneTimeShare, OneTimeShareStatus, Phase, RESHARE_ANNOTATION, SecretChangePolicy,
};
use crate::runtime::metrics::BurnResult;
use crate::runtime::throttle::IfFree;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use std::time::Duration;

/// Tracks a resource that has a link.
pub(super) async fn track(
    obj: &OneTimeShare,
    status: OneTimeShareStatus,
    ctx: &Context,
) -> Result<Action, Error> {
    let uid = obj.uid().unwrap_or_default();
    // A status we wrote but the API does not show (a failed write): write it again first.
    let generation = obj.meta().generation;
    if obj.status.as_ref() != Some(&status) || status.observed_generation != generation {
        let mut status = status.clone();
        status.observed_generation = generation;
        save(obj, ctx, &status).await?;
    }
    // A reissue is asked for by the user: it is done now, not on the link-check schedule.
    if reissue_requested(obj, &status) {
        return reissue(obj, &status, ctx).await;
    }
    let reshare = obj.spec.on_secret_change == SecretChangePolicy::Reshare;
    let live = status.phase == Phase::Shared;
    let watching_secret = reshare && status.phase == Phase::Received;
    if !(live || watching_secret) {
        return Ok(Action::await_change());
    }
    if let Some(wait) = ctx.memory.check_due_in(&uid) {
        return Ok(Action::requeue(wait));
    }
    if reshare && let Some(action) = reshare_if_changed(obj, &status, ctx).await? {
        return Ok(action);
    }
    let mut current = status;
    if live {
        match refresh(obj, &current, ctx).await? {
            Refresh::Unchanged => {}
            Refresh::Changed(next) => {
                if next.phase != Phase::Shared {
                    ctx.memory.saw_spent(&uid);
                }
                save(obj, ctx, &next).await?;
                announce(obj, ctx, &next).await;
                current = *next;
            }
            // The OTS budget is taken by shares and burns: check later, still due.
            Refresh::Busy(retry_in) => {
                let wait = retry_in.max(ctx.config.refresh_min);
                return Ok(Action::requeue(super::memory::jitter(wait)));
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
    let (refresh_min, refresh_max) = ctx.refresh_bounds();
    let wait = ctx
        .memory
        .schedule_check(&uid, refresh_min, refresh_max, until_expiry);
    Ok(Action::requeue(wait))
}

/// What a link-state check found.
enum Refresh {
    /// Nothing changed.
    Unchanged,
    /// The link reached a new state.
    Changed(Box<OneTimeShareStatus>),
    /// No OTS capacity was free for a background check; try again after this long.
    Busy(Duration),
}

/// Asks the server for the link's state, using only OTS capacity no share or burn waits for.
async fn refresh(
    obj: &OneTimeShare,
    status: &OneTimeShareStatus,
    ctx: &Context,
) -> Result<Refresh, Error> {
    let Some(metadata_key) = status.metadata_key.as_deref() else {
        return Ok(Refresh::Unchanged);
    };
    let server = ctx.link_server(obj, status).await?;
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
        Ok(Ok(receipt)) => Some((receipt.state, receipt.received, receipt.first_access)),
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
            None => Refresh::Unchanged,
        },
    )
}

/// Normal or Warning Event for a state the link reached.
async fn announce(obj: &OneTimeShare, ctx: &Context, status: &OneTimeShareStatus) {
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
        _ => return,
    };
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
    burn_and_reshare(obj, status, ctx, &source, NOTES)
        .await
        .map(Some)
}

/// Whether the `ots.dev/reshare` annotation holds a value no link was made for yet.
fn reissue_requested(obj: &OneTimeShare, status: &OneTimeShareStatus) -> bool {
    obj.annotations()
        .get(RESHARE_ANNOTATION)
        .is_some_and(|token| !token.is_empty() && status.reshare_token.as_ref() != Some(token))
}

/// Reissues a share on request (a new `ots.dev/reshare` value): the live link, if any, is burned
/// and the same spec is shared anew; `status.reshareToken` records the value acted on.
async fn reissue(
    obj: &OneTimeShare,
    status: &OneTimeShareStatus,
    ctx: &Context,
) -> Result<Action, Error> {
    const NOTES: Notes = Notes {
        blocked: "a reissue was requested, but the Secret's value cannot be shared",
        burned: "reissued on request: the old link was burned and the Secret shared anew under a new link",
        gone: "reissued on request: the old link was already gone (opened or expired); the Secret is shared anew under a new link",
        spent: "reissued on request: the old link was no longer live (opened, burned or expired); the Secret is shared anew under a new link",
    };
    let source = fetch_source(obj, ctx).await?;
    burn_and_reshare(obj, status, ctx, &source, NOTES).await
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
) -> Result<Action, Error> {
    let prepared = match prepare(obj, ctx, source, status.server_url.as_deref()).await {
        Ok(prepared) => prepared,
        Err(error) => {
            blocked_reshare(obj, status, ctx, &error, notes.blocked).await;
            return Err(error);
        }
    };
    let mut note = notes.spent;
    if status.phase == Phase::Shared {
        // The old link is burned with what it was shared with (the passphrase may have changed).
        let uid = obj.uid().unwrap_or_default();
        if let Some(stored) = ctx.records.load(&uid).await? {
            let outcome = burn(ctx, &stored).await?;
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
                BurnOutcome::AlreadyGone { .. } => notes.gone,
            };
        }
    }

    let receipt = send(obj, ctx, &prepared).await?;
    record(obj, ctx, &prepared, &receipt, Occasion::Reshared { note }).await
}

/// A reshare whose new value cannot be shared: the condition says so (the old link
/// stays live and Ready), so the user sees why no new link comes.
async fn blocked_reshare(
    obj: &OneTimeShare,
    status: &OneTimeShareStatus,
    ctx: &Context,
    error: &Error,
    trigger: &str,
) {
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
    if next != *status
        && let Err(e) = save(obj, ctx, &next).await
    {
        tracing::warn!(error = %e, "could not write the blocked reshare to status");
    }
}
