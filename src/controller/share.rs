//! Sharing: read the Secret with one targeted get, build the value, share it, record the link.

use super::status::{self, Lifetime, SharedLink};
use super::value::{build_passphrase, build_value_within};
use super::{Context, RecordKnown, Server, now, save};
use super::{orphans, records};
use crate::error::{Error, Reason};
use crate::ots::{Receipt, SecretString, ShareRequest};
use crate::resource::{OneTimeShare, SecretKeyRef, Ttl};
use crate::runtime::throttle::Wait;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use std::collections::BTreeMap;

/// What a share needs, read from the cluster and the spec before the server is called. Every
/// field of the spec is parsed here once and carried typed to the call and the status.
pub(super) struct Prepared {
    pub server: Server,
    pub value: SecretString,
    pub passphrase: Option<SecretString>,
    pub source_resource_version: Option<String>,
    /// The lifetime asked for (`spec.ttl`, or the default).
    pub ttl: Ttl,
}

/// Reads the Secret to share with one targeted get (Secrets are never listed or watched); with
/// `spec.generate`, first makes sure it holds a generated value.
pub(super) async fn fetch_source(obj: &OneTimeShare, ctx: &Context) -> Result<Secret, Error> {
    if let Some(generate) = &obj.spec.generate {
        return super::generate::ensure(obj, generate, ctx).await;
    }
    let name = &obj.spec.secret_ref.name;
    ctx.secrets(&obj.namespace().unwrap_or_default())
        .get_opt(name)
        .await?
        .ok_or_else(|| Error::SecretNotFound { name: name.clone() })
}

/// Builds everything a share needs from the source Secret. Fails before any OTS call when an
/// input is wrong.
pub(super) async fn prepare(
    obj: &OneTimeShare,
    ctx: &Context,
    source: &Secret,
    recorded_server: Option<&str>,
) -> Result<Prepared, Error> {
    let secrets = ctx.secrets(&obj.namespace().unwrap_or_default());
    let reference = &obj.spec.secret_ref;
    let value = build_value_within(
        &reference.name,
        &secret_data(source),
        reference.key.as_deref(),
        ctx.config.max_secret_bytes,
    )?;
    let passphrase = match &obj.spec.passphrase_secret_ref {
        Some(reference) => Some(read_passphrase(&secrets, reference).await?),
        None => None,
    };
    let server = ctx
        .servers
        .resolve(&secrets, obj.spec.server.as_ref(), recorded_server)
        .await?;
    // The schema refuses a malformed ttl; one that got past it (another CRD version, say) is
    // refused here, before the server is called.
    let ttl = obj
        .spec
        .ttl()
        .map_err(|e| Error::InvalidSpec(e.to_string()))?;
    Ok(Prepared {
        server,
        value,
        passphrase,
        source_resource_version: source.metadata.resource_version.clone(),
        ttl,
    })
}

/// Shares a resource that has no link yet.
pub(super) async fn share(obj: &OneTimeShare, ctx: &Context) -> Result<Action, Error> {
    let source = fetch_source(obj, ctx).await?;
    let prepared = prepare(obj, ctx, &source, None).await?;
    ctx.reserve_live_slot(obj)?;
    let receipt = send(obj, ctx, &prepared).await?;
    record(obj, ctx, &prepared, &receipt, Occasion::First).await
}

/// Calls the server's share operation.
pub(super) async fn send(
    obj: &OneTimeShare,
    ctx: &Context,
    prepared: &Prepared,
) -> Result<Receipt, Error> {
    let ttl = prepared.ttl;
    let request = ShareRequest {
        secret: prepared.value.clone(),
        passphrase: prepared.passphrase.clone(),
        ttl: Some(ttl.0),
        recipient: obj.spec.recipient.clone(),
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
    match ctx
        .throttle
        .call(&prepared.server.url, "share", Wait, call)
        .await
    {
        Ok(receipt) => Ok(receipt),
        Err(error) if error.may_have_been_carried_out() => {
            let attempt = orphans::Attempt {
                server: &prepared.server,
                ttl: ttl.0.as_secs(),
                passphrase: prepared.passphrase.as_ref(),
                window: (sent_at, now().as_second()),
            };
            Err(orphans::after_ambiguous_share(ctx, attempt, error).await)
        }
        Err(error) => Err(Error::from_share(error, ttl.0)),
    }
}

/// Why a link is being made.
pub(super) enum Occasion {
    /// The resource's first link.
    First,
    /// A new link for a changed Secret; `note` says what became of the old one.
    Reshared {
        /// The Event's note.
        note: &'static str,
    },
    /// A new link after the old one expired unread (`onExpiry: Reshare`).
    Renewed {
        /// How many links in a row this one is, counting the first.
        links_in_a_row: u32,
    },
}

/// Records a fresh link in status (the write is retried until it sticks) and tells the user.
pub(super) async fn record(
    obj: &OneTimeShare,
    ctx: &Context,
    prepared: &Prepared,
    receipt: &Receipt,
    occasion: Occasion,
) -> Result<Action, Error> {
    let uid = obj.uid().unwrap_or_default();
    let lifetime = Lifetime::new(prepared.ttl, receipt.ttl);
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
        },
        now(),
    );
    let links_in_a_row = match occasion {
        Occasion::Renewed { links_in_a_row } => links_in_a_row,
        _ => 1,
    };
    let kept = keep_record(obj, ctx, prepared, &next, links_in_a_row).await?;
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
    save(obj, ctx, &next).await?;
    // The link is recorded: a failed link Secret write is retried from the record, never by
    // sharing again.
    published?;
    let whereabouts = match super::link_secret::name(obj) {
        Some(name) => format!("the link is in Secret {name:?}"),
        None => "the link is in status.link".to_owned(),
    };
    let (reason, note) = match occasion {
        Occasion::First => (
            Reason::Shared,
            format!("the Secret was shared; {whereabouts}"),
        ),
        Occasion::Reshared { note } => (Reason::Reshared, format!("{note}; {whereabouts}")),
        Occasion::Renewed { links_in_a_row } => (
            Reason::Renewed,
            format!(
                "the link expired unread; the Secret was shared anew under a new link (link {links_in_a_row} in a row of at most {}, onExpiry: Reshare); {whereabouts}",
                obj.spec.max_shares()
            ),
        ),
    };
    ctx.event(obj, EventType::Normal, reason, note).await;
    if let Some(clamp) = lifetime.clamp.clone() {
        ctx.event(obj, EventType::Warning, Reason::TtlClamped, clamp)
            .await;
    }
    let (refresh_min, refresh_max) = ctx.refresh_bounds();
    let wait = ctx
        .memory
        .schedule_check(&uid, refresh_min, refresh_max, Some(lifetime.granted()));
    Ok(Action::requeue(wait))
}

/// Writes the operator's record of a fresh link before status names it. If the record cannot be
/// written, the fresh link is burned (best effort) so that no link lives without a record.
async fn keep_record(
    obj: &OneTimeShare,
    ctx: &Context,
    prepared: &Prepared,
    status: &crate::resource::OneTimeShareStatus,
    links_in_a_row: u32,
) -> Result<records::ShareRecord, Error> {
    let uid = obj.uid().unwrap_or_default();
    let Some(mut record) = records::new_record(obj, status) else {
        return Err(Error::Record {
            detail: "the resource has no uid or the link is incomplete".into(),
        });
    };
    record.links_in_a_row = links_in_a_row;
    let stored = records::StoredRecord {
        record,
        passphrase: prepared.passphrase.clone(),
        credentials: prepared.server.per_share_credentials.clone(),
    };
    if let Err(error) = ctx.records.save(&stored).await {
        tracing::warn!(
            object = %kube::runtime::reflector::ObjectRef::from_obj(obj),
            error = %error,
            "could not record the new link; burning it so that no unrecorded link stays live"
        );
        let burned = super::cleanup::burn_link(
            ctx,
            &prepared.server,
            &stored.record.metadata_key,
            prepared.passphrase.as_ref(),
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
    Ok(stored.record)
}

/// Reads the passphrase a resource references.
pub(super) async fn read_passphrase(
    secrets: &Api<Secret>,
    reference: &SecretKeyRef,
) -> Result<SecretString, Error> {
    let secret =
        secrets
            .get_opt(&reference.name)
            .await?
            .ok_or_else(|| Error::PassphraseNotFound {
                name: reference.name.clone(),
                key: reference.key.clone(),
            })?;
    build_passphrase(&reference.name, &reference.key, &secret_data(&secret))
}

/// A Secret's data as bytes per key.
pub(super) fn secret_data(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect()
}
