//! Deletion: burn an unread secret, treat "already gone" as done, and never hang forever.
//!
//! "Already gone" is the server's word, confirmed by the receipt (see `OtsClient::burn`): a burn
//! the server did not do while the receipt still shows the secret live is not gone; the finalizer
//! stays and the burn is retried with backoff until `--burn-timeout`.

use super::{Context, Server, now};
use crate::error::{Error, Reason, Retry};
use crate::metrics::BurnOutcome as BurnMetric;
use crate::ots::{BurnOutcome as OtsBurn, SecretString};
use crate::resource::{DeletionPolicy, OneTimeShare, Phase};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};

/// What a burn achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BurnOutcome {
    /// The secret was destroyed by this call.
    Burned,
    /// It was already received, burned or expired.
    AlreadyGone,
}

/// Burns a link; "already gone" (received, burned or expired, as the receipt says) counts as
/// success.
pub(super) async fn burn_link(
    ctx: &Context,
    server: &Server,
    metadata_key: &str,
    passphrase: Option<&SecretString>,
) -> Result<BurnOutcome, Error> {
    match ctx
        .ots("burn", server.client.burn(metadata_key, passphrase))
        .await?
    {
        OtsBurn::Burned(_) => Ok(BurnOutcome::Burned),
        OtsBurn::AlreadyGone { state, .. } => {
            tracing::info!(
                metadata_key_prefix = %metadata_key.chars().take(6).collect::<String>(),
                state = state.as_str(),
                "nothing to burn: the secret is already gone"
            );
            Ok(BurnOutcome::AlreadyGone)
        }
    }
}

/// Runs when a resource with our finalizer is deleted. Returning `Ok` releases the finalizer.
pub(super) async fn cleanup(obj: &OneTimeShare, ctx: &Context) -> Result<Action, Error> {
    let uid = obj.uid().unwrap_or_default();
    let status = ctx
        .memory
        .effective(&uid, obj.status.as_ref())
        .unwrap_or_default();
    let live = status.phase == Phase::Shared && status.metadata_key.is_some();
    if obj.spec.deletion_policy == DeletionPolicy::Keep || !live {
        ctx.memory.forget(&uid);
        return Ok(Action::await_change());
    }
    match burn(obj, ctx, &status).await {
        Ok(outcome) => {
            let metric = match outcome {
                BurnOutcome::Burned => BurnMetric::Burned,
                BurnOutcome::AlreadyGone => BurnMetric::AlreadyGone,
            };
            ctx.metrics.burn(metric);
            if outcome == BurnOutcome::Burned {
                ctx.event(
                    obj,
                    EventType::Normal,
                    Reason::Burned,
                    "the unread secret was burned; its link no longer works".into(),
                )
                .await;
            }
            ctx.memory.forget(&uid);
            Ok(Action::await_change())
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
            let may_recover =
                error.retry() == Retry::Backoff || error.reason() == Reason::ServerProtocolError;
            if may_recover && deleted_for < ctx.config.burn_timeout.as_secs() {
                return Err(error);
            }
            let until = status
                .expires_at
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_else(|| "it expires".into());
            ctx.event(
                obj,
                EventType::Warning,
                Reason::BurnFailed,
                format!(
                    "could not burn the secret ({error}); the resource is released and the link stays valid until {until}"
                ),
            )
            .await;
            ctx.metrics.burn(BurnMetric::GaveUp);
            ctx.memory.forget(&uid);
            Ok(Action::await_change())
        }
    }
}

async fn burn(
    obj: &OneTimeShare,
    ctx: &Context,
    status: &crate::resource::OneTimeShareStatus,
) -> Result<BurnOutcome, Error> {
    let Some(metadata_key) = status.metadata_key.as_deref() else {
        return Ok(BurnOutcome::AlreadyGone);
    };
    let secrets = ctx.secrets(&obj.namespace().unwrap_or_default());
    let passphrase = match (&obj.spec.passphrase_secret_ref, status.passphrase_protected) {
        (Some(reference), Some(true)) => {
            Some(super::share::read_passphrase(&secrets, reference).await?)
        }
        _ => None,
    };
    let server = ctx.link_server(obj, status).await?;
    burn_link(ctx, &server, metadata_key, passphrase.as_ref()).await
}
