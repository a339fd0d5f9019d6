//! Sharing: read the Secret with one targeted get, build the value, share it, record the link.

use super::status::{self, SharedLink};
use super::value::{build_passphrase, build_value_within};
use super::{Context, Server, now, save};
use crate::error::{Error, Reason};
use crate::ots::{Receipt, SecretString, ShareRequest};
use crate::resource::{OneTimeShare, SecretKeyRef};
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use std::collections::BTreeMap;

/// What a share needs, read from the cluster before the server is called.
pub(super) struct Prepared {
    pub server: Server,
    pub value: SecretString,
    pub passphrase: Option<SecretString>,
    pub source_resource_version: Option<String>,
}

/// Reads the Secret to share with one targeted get (Secrets are never listed or watched).
pub(super) async fn fetch_source(obj: &OneTimeShare, ctx: &Context) -> Result<Secret, Error> {
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
    Ok(Prepared {
        server,
        value,
        passphrase,
        source_resource_version: source.metadata.resource_version.clone(),
    })
}

/// Shares a resource that has no link yet.
pub(super) async fn share(obj: &OneTimeShare, ctx: &Context) -> Result<Action, Error> {
    let source = fetch_source(obj, ctx).await?;
    let prepared = prepare(obj, ctx, &source, None).await?;
    let receipt = send(obj, ctx, &prepared).await?;
    record(obj, ctx, &prepared, &receipt, Reason::Shared).await
}

/// Calls the server's share operation.
pub(super) async fn send(
    obj: &OneTimeShare,
    ctx: &Context,
    prepared: &Prepared,
) -> Result<Receipt, Error> {
    let ttl = obj
        .spec
        .ttl()
        .map_err(|e| Error::InvalidSpec(e.to_string()))?;
    let request = ShareRequest {
        secret: prepared.value.clone(),
        passphrase: prepared.passphrase.clone(),
        ttl: Some(ttl.0),
        recipient: obj.spec.recipient.clone(),
    };
    let client = &prepared.server.client;
    ctx.ots("share", client.share(&request))
        .await
        .map_err(|e| Error::from_share(e, ttl.0))
}

/// Records a fresh link in status (the write is retried until it sticks) and tells the user.
pub(super) async fn record(
    obj: &OneTimeShare,
    ctx: &Context,
    prepared: &Prepared,
    receipt: &Receipt,
    reason: Reason,
) -> Result<Action, Error> {
    let uid = obj.uid().unwrap_or_default();
    let requested = obj
        .spec
        .ttl()
        .map_err(|e| Error::InvalidSpec(e.to_string()))?
        .0;
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
            requested_ttl: requested,
        },
        now(),
    );
    ctx.metrics.share_created();
    ctx.memory.reset_schedule(&uid);
    ctx.memory.healthy(&uid);
    tracing::info!(
        object = %kube::runtime::reflector::ObjectRef::from_obj(obj),
        metadata_key_prefix = %receipt.metadata_key.chars().take(6).collect::<String>(),
        "shared"
    );
    save(obj, ctx, &next).await?;
    let granted = receipt.ttl.unwrap_or(requested.as_secs());
    let note = match reason {
        Reason::Reshared => {
            "the Secret changed: the old link was burned and the new value shared under a new link"
                .to_owned()
        }
        _ => "the Secret was shared; the link is in status.link".to_owned(),
    };
    ctx.event(obj, EventType::Normal, reason, note).await;
    if let Some(clamp) = status::clamp_message(requested.as_secs(), granted) {
        ctx.event(obj, EventType::Warning, Reason::TtlClamped, clamp)
            .await;
    }
    let (refresh_min, refresh_max) = ctx.refresh_bounds();
    let wait = ctx.memory.schedule_check(
        &uid,
        refresh_min,
        refresh_max,
        Some(std::time::Duration::from_secs(granted)),
    );
    Ok(Action::requeue(wait))
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
