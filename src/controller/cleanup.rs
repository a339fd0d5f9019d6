//! Deletion: burn an unread secret, treat "already gone" as done, and never hang forever.

use super::{Context, Server, now};
use crate::error::{Error, Reason, Retry};
use crate::metrics::BurnOutcome as BurnMetric;
use crate::ots::{OtsError, SecretString};
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

/// Burns a link; "already gone" counts as success.
pub(super) async fn burn_link(
    ctx: &Context,
    server: &Server,
    metadata_key: &str,
    passphrase: Option<&SecretString>,
) -> Result<BurnOutcome, Error> {
    match ctx
        .ots(
            &server.url,
            "burn",
            server.client.burn(metadata_key, passphrase),
        )
        .await
    {
        Ok(_) => Ok(BurnOutcome::Burned),
        Err(OtsError::NotFound) => Ok(BurnOutcome::AlreadyGone),
        Err(e) => Err(e.into()),
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
            let may_recover = error.retry() == Retry::Backoff;
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
