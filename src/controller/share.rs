//! Sharing: send the prepared value to the server, record the link, tell the user.
//!
//! Two doors: `share` makes a resource's first link (its inputs read here), and `share_anew`
//! makes a new link from inputs the caller already checked (a reshare, a reissue, a renewal).

use super::inputs::{self, Prepared};
use super::status::{self, Lifetime, SharedLink};
use super::{Context, RecordKnown, burn, now, save};
use super::{orphans, records};
use crate::error::{Error, Reason};
use crate::ots::{Receipt, ShareRequest};
use crate::resource::{OneTimeShare, OneTimeShareStatus};
use crate::runtime::throttle::Turn;
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;

/// Shares a resource that has no link yet.
pub(super) async fn share(obj: &OneTimeShare, ctx: &Context) -> Result<Action, Error> {
    let source = inputs::fetch_source(obj, ctx).await?;
    let prepared = inputs::prepare(obj, ctx, &source, None).await?;
    ctx.reserve_live_slot(obj, prepared.max_live)?;
    let receipt = send(obj, ctx, &prepared).await?;
    // No link before, but a history may be known (from a status the record was lost for).
    let previous = ctx
        .memory
        .effective(
            &obj.uid().unwrap_or_default(),
            obj.status.as_ref(),
            obj.metadata.resource_version.as_deref(),
        )
        .unwrap_or_default();
    record(obj, ctx, &prepared, &receipt, Occasion::First, &previous).await
}

/// Shares `prepared` under a new link for a resource that had one before, and records it.
/// Whatever became of the old link was settled by the caller; `previous` is the status that
/// says so (its history goes on in the new link's status).
pub(super) async fn share_anew(
    obj: &OneTimeShare,
    ctx: &Context,
    prepared: &Prepared,
    occasion: Occasion,
    previous: &OneTimeShareStatus,
) -> Result<Action, Error> {
    // Every live link counts against --max-live-shares-per-secret, whatever made it (the
    // resource's own old link does not: it is burned or spent by now).
    ctx.reserve_live_slot(obj, prepared.max_live)?;
    let receipt = send(obj, ctx, prepared).await?;
    if let Occasion::Renewed { links_in_a_row, .. } = occasion {
        tracing::info!(
            object = %kube::runtime::reflector::ObjectRef::from_obj(obj),
            link = links_in_a_row,
            max = obj.spec.max_shares(),
            "the link expired unread; shared anew (onExpiry: Reshare)"
        );
    }
    record(obj, ctx, prepared, &receipt, occasion, previous).await
}

/// Calls the server's share operation.
async fn send(obj: &OneTimeShare, ctx: &Context, prepared: &Prepared) -> Result<Receipt, Error> {
    let ttl = prepared.ttl;
    let request = ShareRequest {
        secret: prepared.value.clone(),
        passphrase: prepared.passphrase.clone(),
        ttl: Some(ttl.0),
        recipient: obj.spec.recipient.clone(),
        share_domain: prepared
            .server
            .share_domain
            .as_ref()
            .map(|d| d.domain.clone()),
    };
    let client = &prepared.server.client;
    let sent_at = now().as_second();
    let call = async {
        let _in_flight = ctx.share_calls.enter();
        let answer = client.share(&request).await;
        // Known before the call counts as settled, so no orphan search mistakes it.
        if let Ok(receipt) = &answer {
            ctx.learned_key(&receipt.metadata_key);
        }
        answer
    };
    let namespace = obj.namespace().unwrap_or_default();
    match ctx
        .throttle
        .call(&prepared.server.url, "share", Turn::share(&namespace), call)
        .await
    {
        Ok(receipt) => Ok(receipt),
        Err(error) if error.may_have_been_carried_out() => {
            let attempt = orphans::Attempt {
                namespace: &namespace,
                server: &prepared.server,
                ttl: ttl.0.as_secs(),
                passphrase: prepared.passphrase.as_ref(),
                window: (sent_at, now().as_second()),
            };
            Err(orphans::after_ambiguous_share(ctx, attempt, error).await)
        }
        Err(error) => Err(Error::from_create(
            error,
            ttl.0,
            prepared
                .server
                .share_domain
                .as_ref()
                .map(|d| (d.named.as_str(), d.domain.as_str())),
        )),
    }
}

/// Why a link is being made.
pub(super) enum Occasion {
    /// The resource's first link.
    First,
    /// A new link for a changed Secret or on request (a reissue); `note` says what became of
    /// the old one.
    Reshared {
        /// The Event's note.
        note: &'static str,
        /// The reissues of the last hour to record (this one included, if it is one).
        reissued_at: Vec<i64>,
    },
    /// A new link after the old one expired unread (`onExpiry: Reshare`).
    Renewed {
        /// How many links in a row this one is, counting the first.
        links_in_a_row: u32,
        /// The reissues of the last hour, carried from the old link's record.
        reissued_at: Vec<i64>,
    },
}

/// Records a fresh link in status (the write is retried until it sticks) and tells the user.
async fn record(
    obj: &OneTimeShare,
    ctx: &Context,
    prepared: &Prepared,
    receipt: &Receipt,
    occasion: Occasion,
    previous: &OneTimeShareStatus,
) -> Result<Action, Error> {
    let uid = obj.uid().unwrap_or_default();
    let lifetime = Lifetime::new(prepared.ttl, receipt.ttl);
    let history = status::history_for_new_link(previous, now());
    let client = &prepared.server.client;
    let link = receipt
        .secret_link(client.base_url())
        .map(|u| u.to_string())
        .ok_or_else(|| {
            Error::Ots(crate::ots::OtsError::Protocol {
                detail: "the share response has no secret key".into(),
            })
        })?;
    let next = status::shared_status(
        obj,
        SharedLink {
            receipt,
            link,
            metadata_link: receipt.receipt_link(client.base_url()).to_string(),
            server_url: prepared.server.url.clone(),
            source_resource_version: prepared.source_resource_version.clone(),
            passphrase_protected: prepared.passphrase.is_some(),
            lifetime: &lifetime,
            history,
        },
        now(),
    );
    let (links_in_a_row, reissued_at) = match &occasion {
        Occasion::First => (1, Vec::new()),
        Occasion::Reshared { reissued_at, .. } => (1, reissued_at.clone()),
        Occasion::Renewed {
            links_in_a_row,
            reissued_at,
        } => (*links_in_a_row, reissued_at.clone()),
    };
    let kept = keep_record(obj, ctx, prepared, &next, links_in_a_row, reissued_at).await?;
    ctx.metrics.share_created();
    ctx.memory.reset_schedule(&uid);
    ctx.memory.healthy(&uid);
    tracing::info!(
        object = %kube::runtime::reflector::ObjectRef::from_obj(obj),
        metadata_key_prefix = %receipt.metadata_key.chars().take(6).collect::<String>(),
        "shared"
    );
    // With linkSecretRef the link goes into its Secret (from the record) and not into status.
    let next = super::link_secret::public_status(obj, next);
    let published = super::link_secret::ensure(obj, ctx, Some(&kept)).await;
    let reason = match &occasion {
        Occasion::First => Reason::Shared,
        Occasion::Reshared { .. } => Reason::Reshared,
        Occasion::Renewed { .. } => Reason::Renewed,
    };
    let told = ctx.transition_ahead(obj, previous, &next, reason).await;
    save(obj, ctx, &next).await?;
    told.recorded();
    // The link is recorded: a failed link Secret write is retried from the record, never by
    // sharing again.
    published?;
    let whereabouts = match super::link_secret::name(obj) {
        Some(name) => format!("the link is in Secret {name:?}"),
        None => "the link is in status.link".to_owned(),
    };
    let note = match occasion {
        Occasion::First => format!("the Secret was shared; {whereabouts}"),
        Occasion::Reshared { note, .. } => format!("{note}; {whereabouts}"),
        Occasion::Renewed { links_in_a_row, .. } => format!(
            "the link expired unread; the Secret was shared anew under a new link (link {links_in_a_row} in a row of at most {}, onExpiry: Reshare); {whereabouts}",
            obj.spec.max_shares()
        ),
    };
    ctx.event(obj, EventType::Normal, reason, note).await;
    if let Some(asked) = &prepared.server.share_domain
        && !receipt
            .share_domain
            .as_deref()
            .is_some_and(|used| used.eq_ignore_ascii_case(&asked.domain))
    {
        // The server accepted the share but left shareDomain out (it is the server's own
        // host, or not a public domain name to it): said, never silent.
        ctx.event(
            obj,
            EventType::Warning,
            Reason::ShareDomainRefused,
            format!(
                "{} asks for shareDomain {:?}, but the server did not use it: the link is on the server's own host",
                asked.named, asked.domain
            ),
        )
        .await;
    }
    if let Some(clamp) = lifetime.clamp.clone() {
        ctx.event(obj, EventType::Warning, Reason::TtlClamped, clamp)
            .await;
    }
    let (refresh_min, refresh_max) = ctx.refresh_bounds();
    ctx.memory
        .schedule_check(&uid, refresh_min, refresh_max, Some(lifetime.granted()));
    Ok(ctx.check_when_due(obj))
}

/// Writes the operator's record of a fresh link before status names it. If the record cannot be
/// written, the fresh link is burned (best effort) so that no link lives without a record.
async fn keep_record(
    obj: &OneTimeShare,
    ctx: &Context,
    prepared: &Prepared,
    status: &crate::resource::OneTimeShareStatus,
    links_in_a_row: u32,
    reissued_at: Vec<i64>,
) -> Result<records::ShareRecord, Error> {
    let uid = obj.uid().unwrap_or_default();
    let Some(mut record) = records::new_record(obj, status) else {
        return Err(Error::Record {
            detail: "the resource has no uid or the link is incomplete".into(),
        });
    };
    record.links_in_a_row = links_in_a_row;
    record.reissued_at = reissued_at;
    let stored = records::StoredRecord {
        record,
        passphrase: prepared.passphrase.clone(),
        credentials: prepared.server.per_share_credentials.clone(),
        ca: prepared.server.ca.clone(),
    };
    if let Err(error) = ctx.records.save(&stored).await {
        tracing::warn!(
            object = %kube::runtime::reflector::ObjectRef::from_obj(obj),
            error = %error,
            "could not record the new link; burning it so that no unrecorded link stays live"
        );
        // A live link nobody can find: taken back before any share.
        let burned = burn::burn_link(
            ctx,
            &prepared.server,
            &stored.record.metadata_key,
            prepared.passphrase.as_ref(),
            Turn::revoke(&stored.record.namespace),
        )
        .await;
        if burned.is_err() {
            ctx.metrics
                .burn(crate::runtime::metrics::BurnResult::GaveUp);
        }
        return Err(error);
    }
    ctx.memory.set_record(
        &uid,
        RecordKnown::Link {
            metadata_key: stored.record.metadata_key.clone(),
            server_url: stored.record.server_url.clone(),
        },
    );
    ctx.memory
        .set_reshare_token(&uid, stored.record.reshare_token.clone());
    ctx.memory
        .set_burn_token(&uid, stored.record.burn_token.clone());
    Ok(stored.record)
}
