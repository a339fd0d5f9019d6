//! `spec.generate`: a random value drawn here from the operating system's CSPRNG (never by the
//! server, whose generated value is shown only once), written into the Secret the share names,
//! then shared like any other value.
//!
//! The operator writes only into Secrets it made (label `ots.dev/managed-by: ots-operator`) and
//! never replaces a value: a key that is there is shared as it is. So a second reconcile, a
//! restart, or a crash between the write and the share never changes what applications read.
//! Secrets are read with one targeted get, never listed or watched.

use super::Context;
use super::records::RECORD_TYPE;
use crate::error::{Error, Reason};
use crate::ots::{ExposeSecret, SecretString};
use crate::resource::{
    Charset, GENERATED_BY_ANNOTATION, GENERATED_BY_UID_ANNOTATION, GenerateSpec,
    GeneratedSecretPolicy, MANAGED_BY_LABEL, MANAGED_BY_VALUE, OneTimeShare,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use rand::TryRngCore;
use std::collections::BTreeMap;

/// Field manager of the operator's writes to generated Secrets.
const FIELD_MANAGER: &str = "ots-operator";

/// The Secret to share for a share with `spec.generate`: the existing one when its key holds a
/// value, else the one the operator created or completed with a fresh value.
pub(super) async fn ensure(
    obj: &OneTimeShare,
    generate: &GenerateSpec,
    ctx: &Context,
) -> Result<Secret, Error> {
    let name = &obj.spec.secret_ref.name;
    let Some(key) = obj.spec.secret_ref.key.as_deref() else {
        return Err(Error::InvalidSpec(
            "generate needs secretRef.key: the key the generated value is written to".into(),
        ));
    };
    let secrets = ctx.secrets(&obj.namespace().unwrap_or_default());
    // Two rounds at most: a Secret created by someone else between the get and the create is
    // looked at again (and refused unless the operator made it).
    for _ in 0..2 {
        let Some(existing) = secrets.get_opt(name).await? else {
            let value = generate_value(generate.length, generate.charset)?;
            let secret = new_secret(obj, generate, key, &value);
            match secrets.create(&PostParams::default(), &secret).await {
                Ok(created) => {
                    generated(obj, ctx, generate, key).await;
                    return Ok(created);
                }
                Err(kube::Error::Api(status)) if status.is_already_exists() => continue,
                Err(error) => return Err(write_error(name, error)),
            }
        };
        if !made_by_operator(&existing) {
            return Err(Error::SecretNotOwned { name: name.clone() });
        }
        if existing.data.as_ref().is_some_and(|d| d.contains_key(key)) {
            return Ok(existing);
        }
        // A key is added only to a Secret made for this very share: the requester was checked
        // for the right to create this Secret, not to write into one made for somebody else.
        if !made_for(&existing, obj) {
            return Err(Error::GeneratedForAnother {
                name: name.clone(),
                key: key.to_owned(),
            });
        }
        // The key is added only to the version just read: a concurrent write makes the patch
        // fail (409) and the next reconcile looks again, so nothing is ever overwritten.
        let value = generate_value(generate.length, generate.charset)?;
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": existing.resource_version()},
            "data": {key: ByteString(value.expose_secret().as_bytes().to_vec())},
        });
        let patched = secrets
            .patch(
                name,
                &PatchParams {
                    field_manager: Some(FIELD_MANAGER.to_owned()),
                    ..PatchParams::default()
                },
                &Patch::Merge(&patch),
            )
            .await
            .map_err(|e| write_error(name, e))?;
        generated(obj, ctx, generate, key).await;
        return Ok(patched);
    }
    Err(Error::SecretNotOwned { name: name.clone() })
}

/// Whether the operator made this Secret for `spec.generate` (or another of its own uses), and
/// it is not one of its records (which hold other shares' material).
fn made_by_operator(secret: &Secret) -> bool {
    secret.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY_VALUE)
        && secret.type_.as_deref() != Some(RECORD_TYPE)
}

/// Whether the operator created this Secret for `obj` itself (its uid in the annotation the
/// operator writes at creation).
fn made_for(secret: &Secret, obj: &OneTimeShare) -> bool {
    let uid = obj.uid();
    uid.is_some() && secret.annotations().get(GENERATED_BY_UID_ANNOTATION) == uid.as_ref()
}

/// The Secret a share creates: the value under `key`, marked as the operator's, naming the share.
fn new_secret(
    obj: &OneTimeShare,
    generate: &GenerateSpec,
    key: &str,
    value: &SecretString,
) -> Secret {
    let uid = obj.uid().unwrap_or_default();
    let owner_references = match generate.secret_policy {
        GeneratedSecretPolicy::Retain => None,
        // No blockOwnerDeletion: that would need `delete` on the share, and nothing waits on it.
        GeneratedSecretPolicy::Delete => Some(vec![OwnerReference {
            api_version: OneTimeShare::api_version(&()).into_owned(),
            kind: OneTimeShare::kind(&()).into_owned(),
            name: obj.name_any(),
            uid: uid.clone(),
            controller: Some(true),
            block_owner_deletion: None,
        }]),
    };
    Secret {
        metadata: ObjectMeta {
            name: Some(obj.spec.secret_ref.name.clone()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY_LABEL.to_owned(),
                MANAGED_BY_VALUE.to_owned(),
            )])),
            annotations: Some(BTreeMap::from([
                (GENERATED_BY_ANNOTATION.to_owned(), obj.name_any()),
                (GENERATED_BY_UID_ANNOTATION.to_owned(), uid),
            ])),
            owner_references,
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(
            key.to_owned(),
            ByteString(value.expose_secret().as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

/// A refused write says which switch to turn; anything else is a Kubernetes error.
fn write_error(name: &str, error: kube::Error) -> Error {
    match error {
        kube::Error::Api(status) if status.is_forbidden() => Error::SecretWriteForbidden {
            name: name.to_owned(),
            message: status.message,
        },
        other => Error::Kube(other),
    }
}

/// Tells that a value was generated (names and length only).
async fn generated(obj: &OneTimeShare, ctx: &Context, generate: &GenerateSpec, key: &str) {
    let name = &obj.spec.secret_ref.name;
    tracing::info!(
        object = %kube::runtime::reflector::ObjectRef::from_obj(obj),
        secret = %name,
        key = %key,
        length = generate.length,
        "generated a value into the Secret"
    );
    ctx.event(
        obj,
        EventType::Normal,
        Reason::Generated,
        format!(
            "a random value of {} characters was written to key {key:?} of Secret {name:?}; it is shared next",
            generate.length
        ),
    )
    .await;
}

/// Draws `length` characters from `charset`, each equally likely, from the operating system's
/// CSPRNG.
pub fn generate_value(length: u32, charset: Charset) -> Result<SecretString, Error> {
    let mut os = rand::rngs::OsRng;
    sample(length as usize, charset.characters(), |buf| {
        os.try_fill_bytes(buf)
            .map_err(|e| Error::GenerateFailed(e.to_string()))
    })
}

/// Draws `length` characters from `characters` (at most 256) with random bytes from `fill`.
/// Rejection sampling: a byte at or above the largest multiple of the alphabet's size is drawn
/// again, so no character is more likely than another (no modulo bias).
fn sample(
    length: usize,
    characters: &[u8],
    mut fill: impl FnMut(&mut [u8]) -> Result<(), Error>,
) -> Result<SecretString, Error> {
    let size = characters.len();
    if size == 0 || size > 256 {
        return Err(Error::GenerateFailed(format!(
            "an alphabet of {size} characters cannot be drawn from bytes"
        )));
    }
    let limit = 256 - (256 % size);
    let mut out = String::with_capacity(length);
    let mut buf = [0u8; 64];
    while out.len() < length {
        fill(&mut buf)?;
        for byte in buf.iter().map(|&b| usize::from(b)) {
            if out.len() == length {
                break;
            }
            if byte < limit {
                out.push(char::from(characters[byte % size]));
            }
        }
    }
    buf.fill(0);
    Ok(SecretString::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_have_the_asked_length_and_only_the_charset_characters() {
        for charset in [
            Charset::Alphanumeric,
            Charset::AlphanumericSymbols,
            Charset::Hex,
            Charset::Numeric,
        ] {
            for length in [8, 24, 1024] {
                let value = generate_value(length, charset).unwrap();
                let text = value.expose_secret();
                assert_eq!(text.len(), length as usize);
                assert!(text.bytes().all(|b| charset.characters().contains(&b)));
            }
        }
    }

    #[test]
    fn two_values_differ() {
        let a = generate_value(32, Charset::Alphanumeric).unwrap();
        let b = generate_value(32, Charset::Alphanumeric).unwrap();
        assert_ne!(a.expose_secret(), b.expose_secret());
    }

    #[test]
    fn every_character_is_equally_likely_over_all_byte_values() {
        // Each byte value once: accepted bytes must hit every character equally often.
        for charset in [
            Charset::Alphanumeric,
            Charset::AlphanumericSymbols,
            Charset::Hex,
            Charset::Numeric,
        ] {
            let chars = charset.characters();
            let accepted = 256 - 256 % chars.len();
            let mut next = 0u16;
            let value = sample(accepted, chars, |buf| {
                for b in buf.iter_mut() {
                    *b = (next % 256) as u8;
                    next += 1;
                }
                Ok(())
            })
            .unwrap();
            let mut counts = BTreeMap::new();
            for b in value.expose_secret().bytes() {
                *counts.entry(b).or_insert(0usize) += 1;
            }
            assert_eq!(counts.len(), chars.len(), "{charset:?}");
            assert!(
                counts.values().all(|&n| n == accepted / chars.len()),
                "{charset:?}: {counts:?}"
            );
        }
    }

    #[test]
    fn bytes_past_the_last_whole_multiple_are_drawn_again() {
        // For 10 characters, 250..=255 would favour '0'..'5': they are rejected.
        let mut rounds = 0;
        let value = sample(4, b"0123456789", |buf| {
            rounds += 1;
            let byte = if rounds == 1 { 255 } else { 13 };
            buf.fill(byte);
            Ok(())
        })
        .unwrap();
        assert_eq!(value.expose_secret(), "3333");
        assert_eq!(rounds, 2);
    }

    #[test]
    fn the_value_never_shows_in_debug_output() {
        let value = generate_value(32, Charset::Alphanumeric).unwrap();
        assert!(!format!("{value:?}").contains(value.expose_secret()));
    }

    #[test]
    fn only_secrets_marked_as_the_operators_and_not_records_count_as_its_own() {
        let mut secret = Secret::default();
        assert!(!made_by_operator(&secret));
        secret.metadata.labels = Some(BTreeMap::from([(
            MANAGED_BY_LABEL.to_owned(),
            MANAGED_BY_VALUE.to_owned(),
        )]));
        assert!(made_by_operator(&secret));
        secret.type_ = Some(RECORD_TYPE.to_owned());
        assert!(!made_by_operator(&secret));
        secret.type_ = None;
        secret.metadata.labels = Some(BTreeMap::from([(
            MANAGED_BY_LABEL.to_owned(),
            "someone-else".to_owned(),
        )]));
        assert!(!made_by_operator(&secret));
    }
}
