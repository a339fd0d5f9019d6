//! Inputs of a share: the Secret (one targeted get), the passphrase, the server and its
//! credentials, the value built from them and the lifetime. Everything is read and checked here,
//! before any OTS call; nothing here talks to the OTS server.

use super::value::{build_passphrase, build_value_within};
use super::{Context, Server};
use crate::error::Error;
use crate::ots::SecretString;
use crate::resource::{OneTimeShare, SecretKeyRef, Ttl};
use k8s_openapi::api::core::v1::Secret;
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
    /// Live links per Secret its server object allows (`policy.maxLiveSharesPerSecret`).
    pub max_live: Option<u32>,
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
    let (server, admitted) = ctx.resolve_server(obj, &secrets, recorded_server).await?;
    Ok(Prepared {
        server,
        value,
        passphrase,
        source_resource_version: source.metadata.resource_version.clone(),
        ttl: admitted.ttl,
        max_live: admitted.max_live,
    })
}

/// Reads the passphrase a resource references.
async fn read_passphrase(
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
fn secret_data(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect()
}
