//! How a recorded link is burned: one burn call, "already gone" counted as success. The one
//! burn primitive that sharing (a fresh link that could not be recorded), tracking (the old
//! link before a reshare), deletion and the orphan search all use.
//!
//! "Already gone" is the server's word, confirmed by the receipt (see `OtsClient::burn`): a burn
//! the server did not do while the receipt still shows the secret live is an error, not gone.

use super::{Context, Server, records};
use crate::error::Error;
use crate::ots::{BurnOutcome, SecretString};
use crate::runtime::throttle::Wait;

/// Burns a link; "already gone" (received, burned or expired, as the receipt says) counts as
/// success.
pub(super) async fn burn_link(
    ctx: &Context,
    server: &Server,
    metadata_key: &str,
    passphrase: Option<&SecretString>,
) -> Result<BurnOutcome, Error> {
    let outcome = ctx
        .throttle
        .call(
            &server.url,
            "burn",
            Wait,
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

/// Burns the recorded link with the recorded material.
pub(super) async fn burn(
    ctx: &Context,
    stored: &records::StoredRecord,
) -> Result<BurnOutcome, Error> {
    let server = ctx
        .servers
        .resolve_recorded(&stored.record.server_url, stored.credentials.clone())
        .await?;
    burn_link(
        ctx,
        &server,
        &stored.record.metadata_key,
        stored.passphrase.as_ref(),
    )
    .await
}
