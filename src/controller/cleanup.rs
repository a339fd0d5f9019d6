//! Deletion: burn an unread secret, treat "already gone" as done, and never hang forever.
//!
//! "Already gone" is the server's word, confirmed by the receipt (see `OtsClient::burn`): a burn
//! the server did not do while the receipt still shows the secret live is not gone; the finalizer
//! stays and the burn is retried with backoff until `--burn-timeout`.

use super::burn::revoke;
use super::{Context, now, records, status};
use crate::error::{BurnFailure, Error, Reason};
use crate::ots::BurnOutcome;
use crate::resource::{DeletionPolicy, OneTimeShare, Phase};
use crate::runtime::metrics::BurnResult;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};

/// Runs when a resource with our finalizer is deleted. Returning `Ok` releases the finalizer.
///
/// The link to burn and what the burn needs (passphrase, per-share credentials) come from the
/// operator's record, not from status or the tenant's Secrets: a forged status cannot make it
/// burn another resource's link, and Secrets deleted first (namespace deletion, GitOps pruning)
/// do not stop the burn.
pub(super) async fn cleanup(obj: &OneTimeShare, ctx: &Context) -> Result<Action, Error> {
    let uid = obj.uid().unwrap_or_default();
    let status = ctx
        .memory
        .effective(&uid, obj.status.as_ref(), obj.resource_version().as_deref())
        .unwrap_or_default();
    if obj.spec.deletion_policy == DeletionPolicy::Keep {
        ctx.records.delete(&uid).await?;
        ctx.memory.forget(&uid);
        ctx.tracker.forget(&uid);
        return Ok(Action::await_change());
    }
    let Some(stored) = ctx.records.load(&uid).await? else {
        if status.metadata_key.is_some() && status.phase == Phase::Shared {
            // A link in status that the operator never recorded: not ours to burn.
            let note = "status names a link this operator did not record for this resource; it was not burned".to_owned();
            tracing::warn!(
                object = %kube::runtime::reflector::ObjectRef::from_obj(obj),
                "{note}"
            );
            ctx.event(obj, EventType::Warning, Reason::StatusTampered, note)
                .await;
        }
        ctx.memory.forget(&uid);
        ctx.tracker.forget(&uid);
        return Ok(Action::await_change());
    };
    // Only a link this process saw spent is spared the burn; a status saying so is not enough
    // (a burn of a spent link costs one call and is answered "already gone").
    if !ctx.memory.spent(&uid) {
        match revoke(ctx, &stored).await {
            Ok(outcome) => {
                ctx.metrics.burn(BurnResult::from(&outcome));
                if matches!(outcome, BurnOutcome::Burned(_)) {
                    // The status is not written again (the resource goes), but the audit trail
                    // says how its link ended.
                    let state = crate::ots::SecretState::Burned;
                    if let Some(burned) =
                        status::refreshed_status(obj, &status, &state, None, None, now())
                    {
                        ctx.transition(obj, &status, &burned, Reason::Burned).await;
                    }
                    ctx.event(
                        obj,
                        EventType::Normal,
                        Reason::Burned,
                        "the unread secret was burned; its link no longer works".into(),
                    )
                    .await;
                }
            }
            Err(error) => {
                let deleted_for = obj
                    .meta()
                    .deletion_timestamp
                    .as_ref()
                    .map(|t| (now().as_second() - t.0.as_second()).max(0) as u64)
                    .unwrap_or_default();
                // Unsure answers (an unconfirmed burn, an odd answer, an unknown route) keep the
                // finalizer until --burn-timeout, like outages: never release a live link early.
                let keep_trying = error.handling().burn == BurnFailure::KeepTrying;
                if keep_trying && deleted_for < ctx.config.burn_timeout.as_secs() {
                    return Err(error);
                }
                give_up(obj, ctx, &stored.record, &error).await;
            }
        }
    }
    ctx.records.delete(&uid).await?;
    ctx.memory.forget(&uid);
    ctx.tracker.forget(&uid);
    Ok(Action::await_change())
}

/// A burn that cannot happen: said where it survives the resource and its namespace (a warn
/// log in the operator's log and a metric) and, where the namespace still takes it, an Event.
async fn give_up(obj: &OneTimeShare, ctx: &Context, record: &records::ShareRecord, error: &Error) {
    let until = k8s_openapi::jiff::Timestamp::from_second(record.expires_at)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| "it expires".into());
    tracing::warn!(
        object = %kube::runtime::reflector::ObjectRef::from_obj(obj),
        metadata_key_prefix = %record.metadata_key.chars().take(6).collect::<String>(),
        server = %record.server_url,
        expires_at = %until,
        error = %error,
        "could not burn the secret; the resource is released and the link stays valid until it expires"
    );
    ctx.event(
        obj,
        EventType::Warning,
        Reason::BurnFailed,
        format!(
            "could not burn the secret ({error}); the resource is released and the link stays valid until {until}"
        ),
    )
    .await;
    ctx.metrics.burn(BurnResult::GaveUp);
}
