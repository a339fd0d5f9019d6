//! Standing hand-offs (`onExpiry: Reshare`): a link that expired unread is replaced by a new one
//! for the same spec, up to `maxShares` links in a row; then the share stays Expired.
//!
//! Only the server's word counts: a link is renewed right after a check found it expired, or
//! after the server confirms it. A link that was opened (received) is never renewed, and the
//! count of links in a row lives in the operator's record, not in status (which tenants can write).

use super::inputs::{fetch_source, prepare};
use super::share::{self, Occasion};
use super::{Context, now, save, status};
use crate::error::{Error, Reason};
use crate::ots::{OtsError, SecretState};
use crate::resource::{OneTimeShare, OneTimeShareStatus};
use crate::runtime::throttle::Turn;
use kube::ResourceExt;
use kube::runtime::controller::Action;

/// Renews an expired link if `onExpiry: Reshare` still allows another one. `confirmed`: the
/// server reported the expiry during this reconcile; otherwise it is asked first.
pub(super) async fn renew(
    obj: &OneTimeShare,
    status: &OneTimeShareStatus,
    metadata_key: &str,
    ctx: &Context,
    confirmed: bool,
) -> Result<Action, Error> {
    let uid = obj.uid().unwrap_or_default();
    let Some(stored) = ctx.records.load(&uid).await? else {
        return Ok(Action::await_change());
    };
    // The record is the one status was matched against; a record of another link is not renewed.
    if stored.record.metadata_key != metadata_key {
        return Ok(Action::await_change());
    }
    let made = stored.record.links_in_a_row.max(1);
    let max = obj.spec.max_shares();
    if made >= max {
        at_the_bound(obj, status, ctx, made, max).await?;
        return Ok(Action::await_change());
    }
    if !confirmed && !expired_on_the_server(obj, status, metadata_key, ctx).await? {
        // Status said Expired, the server does not: it was corrected from the receipt, and the
        // link is tracked again.
        return Ok(Action::requeue(std::time::Duration::from_secs(1)));
    }
    let source = fetch_source(obj, ctx).await?;
    let prepared = prepare(obj, ctx, &source, status.server_url.as_deref()).await?;
    share::share_anew(
        obj,
        ctx,
        &prepared,
        Occasion::Renewed {
            links_in_a_row: made + 1,
            reissued_at: stored.record.reissued_at.clone(),
        },
        status,
    )
    .await
}

/// Whether the server says the recorded link expired (a receipt state of expired or orphaned).
/// A missing receipt is not enough here: it is also what a link received long ago looks like.
/// When the receipt says something else, status is corrected from it (someone else wrote
/// `Expired` into status, say).
async fn expired_on_the_server(
    obj: &OneTimeShare,
    status: &OneTimeShareStatus,
    metadata_key: &str,
    ctx: &Context,
) -> Result<bool, Error> {
    let server = ctx.link_server(obj, status).await?;
    let receipt = match ctx
        .throttle
        .call(
            &server.url,
            "receipt",
            Turn::share(&obj.namespace().unwrap_or_default()),
            server.client.receipt(metadata_key),
        )
        .await
    {
        Ok(receipt) => receipt,
        Err(OtsError::NotFound) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    if matches!(receipt.state, SecretState::Expired | SecretState::Orphaned) {
        return Ok(true);
    }
    if let Some(next) = status::refreshed_status(
        obj,
        status,
        &receipt.state,
        receipt.received,
        receipt.first_access,
        now(),
    ) {
        tracing::warn!(
            object = %kube::runtime::reflector::ObjectRef::from_obj(obj),
            state = receipt.state.as_str(),
            "status said Expired but the server does not; corrected it from the receipt"
        );
        let told = if next.phase != status.phase && next.phase != crate::resource::Phase::Shared {
            let reason = super::transition::end_reason(next.phase);
            Some(ctx.transition_ahead(obj, status, &next, reason).await)
        } else {
            None
        };
        save(obj, ctx, &next).await?;
        if let Some(told) = told {
            told.recorded();
        }
    }
    Ok(false)
}

/// The share stays Expired: the condition says that maxShares was reached and how to go on.
async fn at_the_bound(
    obj: &OneTimeShare,
    status: &OneTimeShareStatus,
    ctx: &Context,
    made: u32,
    max: u32,
) -> Result<(), Error> {
    let message = format!(
        "the link expired before anyone opened it; onExpiry: Reshare made {made} link(s) in a row, the most maxShares ({max}) allows, so no new link is made: reissue with the ots.dev/reshare annotation or raise maxShares to share again"
    );
    let mut next = status.clone();
    status::set_ready(&mut next, obj, false, Reason::Expired, &message, now());
    if next != *status {
        save(obj, ctx, &next).await?;
    }
    Ok(())
}
