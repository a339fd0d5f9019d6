//! How a recorded link is burned: one burn call, "already gone" counted as success. The one
//! burn primitive that sharing (a fresh link that could not be recorded), tracking (the old
//! link before a reshare), deletion and the orphan search all use.
//!
//! A burn that takes a live link back (a deletion's, one asked for with `ots.dev/burn`, or a
//! fresh link's that could not be recorded) waits for the OTS budget as a [`Class::Revoke`], before every share; the burn of a
//! link being replaced (a reshare, a reissue) is part of making the new one, a [`Class::Share`].
//!
//! "Already gone" is the server's word, confirmed by the receipt (see `OtsClient::burn`): a burn
//! the server did not do while the receipt still shows the secret live is an error, not gone.

use super::{Context, Server, records};
use crate::error::Error;
use crate::ots::{BurnOutcome, SecretString};
use crate::runtime::throttle::{Class, Turn};

/// Burns a link, waiting for the OTS budget with `turn`; "already gone" (received, burned or
/// expired, as the receipt says) counts as success.
pub(super) async fn burn_link(
    ctx: &Context,
    server: &Server,
    metadata_key: &str,
    passphrase: Option<&SecretString>,
    turn: Turn,
) -> Result<BurnOutcome, Error> {
    let outcome = ctx
        .throttle
        .call(
            &server.url,
            "burn",
            turn,
            server.client.burn(metadata_key, passphrase),
        )
        .await?;
    if let BurnOutcome::AlreadyGone { state, .. } = &outcome {
        tracing::info!(
            metadata_key_prefix = %metadata_key.chars().take(6).collect::<String>(),
            state = state.as_str(),
            "nothing to burn: the secret is already gone"
        );
    }
    Ok(outcome)
}

/// Burns the recorded link with the recorded material, as a step of replacing it (a reshare, a
/// reissue): a [`Class::Share`] turn of its namespace.
pub(super) async fn burn(
    ctx: &Context,
    stored: &records::StoredRecord,
) -> Result<BurnOutcome, Error> {
    burn_recorded(ctx, stored, Class::Share).await
}

/// Burns the recorded link of a deleted resource, or of one whose `ots.dev/burn` annotation asks
/// for it, with the recorded material: a [`Class::Revoke`] turn, before every share, since the
/// link stays openable until it is done.
pub(super) async fn revoke(
    ctx: &Context,
    stored: &records::StoredRecord,
) -> Result<BurnOutcome, Error> {
    burn_recorded(ctx, stored, Class::Revoke).await
}

async fn burn_recorded(
    ctx: &Context,
    stored: &records::StoredRecord,
    class: Class,
) -> Result<BurnOutcome, Error> {
    let turn = Turn::new(&stored.record.namespace, class);
    let server = ctx
        .servers
        .resolve_recorded_in(
            &stored.record.namespace,
            &stored.record.server_url,
            stored.credentials.clone(),
            stored.ca.as_deref(),
            &turn,
        )
        .await?;
    burn_link(
        ctx,
        &server,
        &stored.record.metadata_key,
        stored.passphrase.as_ref(),
        turn,
    )
    .await
}
