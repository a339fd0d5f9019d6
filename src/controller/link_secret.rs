//! Links kept out of status (`spec.linkSecretRef`): the link, the metadata key and the metadata
//! link go into a Secret of the share's namespace that the operator creates and owns; status
//! keeps the phase, the times and the Secret's name.
//!
//! The operator's record (see `records.rs`) stays the truth: the link Secret is written from it
//! right after a share and rewritten from it when a link check finds it missing or changed. A
//! Secret of that name the operator did not create for this share is never written into.

use super::Context;
use super::records::ShareRecord;
use crate::error::Error;
use crate::resource::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, OneTimeShare, OneTimeShareStatus};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use std::collections::BTreeMap;

/// Key of the link Secret that holds the one-time link.
pub const LINK_KEY: &str = "link";
/// Key of the link Secret that holds the receipt's metadata key.
pub const METADATA_KEY_KEY: &str = "metadataKey";
/// Key of the link Secret that holds the creator's receipt link.
pub const METADATA_LINK_KEY: &str = "metadataLink";

/// The link Secret's name, when the resource keeps its link out of status.
pub fn name(obj: &OneTimeShare) -> Option<&str> {
    obj.spec.link_secret_ref.as_ref().map(|r| r.name.as_str())
}

/// The status as written for users: with `linkSecretRef`, without the link, the metadata key
/// and the metadata link, and naming the Secret that holds them. Unchanged otherwise.
pub fn public_status(obj: &OneTimeShare, mut status: OneTimeShareStatus) -> OneTimeShareStatus {
    if let Some(name) = name(obj) {
        status.link = None;
        status.metadata_key = None;
        status.metadata_link = None;
        status.link_secret_name = Some(name.to_owned());
    }
    status
}

/// Whether a status describes the recorded link: same metadata key and server or, with
/// `linkSecretRef`, the same server, the Secret's name, and no link of its own.
pub fn status_matches(
    obj: &OneTimeShare,
    status: &OneTimeShareStatus,
    metadata_key: &str,
    server_url: &str,
) -> bool {
    let same_server = status.server_url.as_deref() == Some(server_url);
    match name(obj) {
        None => same_server && status.metadata_key.as_deref() == Some(metadata_key),
        Some(name) => {
            same_server
                && status.link.is_none()
                && status.metadata_key.is_none()
                && status.metadata_link.is_none()
                && status.link_secret_name.as_deref() == Some(name)
        }
    }
}

/// The data a link Secret holds for a recorded link.
fn data(record: &ShareRecord) -> BTreeMap<String, ByteString> {
    BTreeMap::from([
        (
            LINK_KEY.to_owned(),
            ByteString(record.link.as_bytes().to_vec()),
        ),
        (
            METADATA_KEY_KEY.to_owned(),
            ByteString(record.metadata_key.as_bytes().to_vec()),
        ),
        (
            METADATA_LINK_KEY.to_owned(),
            ByteString(record.metadata_link.as_bytes().to_vec()),
        ),
    ])
}

/// Whether `secret` is the link Secret this operator made for `obj` (controller owner reference
/// to it).
fn owned_by(secret: &Secret, obj: &OneTimeShare) -> bool {
    let uid = obj.uid().unwrap_or_default();
    secret
        .owner_references()
        .iter()
        .any(|r| r.uid == uid && r.controller == Some(true) && r.kind == "OneTimeShare")
}

/// Whether the Secret holds exactly the recorded link.
fn holds(secret: &Secret, record: &ShareRecord) -> bool {
    let want = data(record);
    let have = secret.data.clone().unwrap_or_default();
    want.iter().all(|(k, v)| have.get(k) == Some(v))
}

/// Makes sure the link Secret holds the recorded link: creates it when it is missing, rewrites
/// it when it was changed. Returns whether it wrote. Does nothing without `linkSecretRef`.
///
/// Reads the Secret with one targeted `get`; a Secret seen holding the link before (same
/// resourceVersion) needs no record read.
pub async fn ensure(
    obj: &OneTimeShare,
    ctx: &Context,
    record: Option<&ShareRecord>,
) -> Result<bool, Error> {
    let Some(name) = name(obj) else {
        return Ok(false);
    };
    let uid = obj.uid().unwrap_or_default();
    let api = ctx.secrets(&obj.namespace().unwrap_or_default());
    let current = api.get_opt(name).await?;
    if let Some(secret) = &current {
        if !owned_by(secret, obj) {
            return Err(Error::LinkSecretNotOwned {
                name: name.to_owned(),
            });
        }
        // Seen holding the recorded link before and unchanged since (a new link comes with
        // its record and is always compared).
        let version = secret.resource_version();
        if record.is_none() && version.is_some() && version == ctx.memory.link_secret_version(&uid)
        {
            return Ok(false);
        }
    }
    let loaded;
    let record = match record {
        Some(record) => record,
        None => match ctx.records.load(&uid).await? {
            Some(stored) => {
                loaded = stored.record;
                &loaded
            }
            // No record, no link: nothing to write.
            None => return Ok(false),
        },
    };
    let forbidden = |e: &kube::Error| match e {
        // RBAC refuses with 403; an admission policy with 403 or 422 (its default reason).
        kube::Error::Api(status) if matches!(status.code, 403 | 422) => {
            Some(Error::LinkSecretForbidden {
                name: name.to_owned(),
                message: status.message.clone(),
            })
        }
        _ => None,
    };
    let written = match current {
        Some(secret) if holds(&secret, record) => {
            ctx.memory
                .set_link_secret_version(&uid, secret.resource_version());
            return Ok(false);
        }
        Some(_) => {
            // Changed by someone else: the record is the truth. Only the link's keys and the
            // labels are set; other keys someone added are left alone.
            let patch = serde_json::json!({
                "metadata": { "labels": labels() },
                "data": data(record),
            });
            api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| forbidden(&e).unwrap_or(Error::Kube(e)))?
        }
        None => {
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    namespace: obj.namespace(),
                    labels: Some(labels()),
                    annotations: Some(BTreeMap::from([(
                        "ots.dev/share".to_owned(),
                        obj.name_any(),
                    )])),
                    owner_references: Some(vec![owner(obj)]),
                    ..ObjectMeta::default()
                },
                type_: Some("Opaque".to_owned()),
                data: Some(data(record)),
                ..Secret::default()
            };
            match api.create(&PostParams::default(), &secret).await {
                Ok(created) => created,
                // Someone created it meanwhile: look again on the next check.
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    return Err(Error::LinkSecretNotOwned {
                        name: name.to_owned(),
                    });
                }
                Err(e) => return Err(forbidden(&e).unwrap_or(Error::Kube(e))),
            }
        }
    };
    ctx.memory
        .set_link_secret_version(&uid, written.resource_version());
    Ok(true)
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned()),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "ots-operator".to_owned(),
        ),
    ])
}

/// The controller owner reference that makes garbage collection delete the link Secret with
/// its OneTimeShare.
fn owner(obj: &OneTimeShare) -> OwnerReference {
    OwnerReference {
        api_version: OneTimeShare::api_version(&()).into_owned(),
        kind: OneTimeShare::kind(&()).into_owned(),
        name: obj.name_any(),
        uid: obj.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(link_secret: Option<&str>) -> OneTimeShare {
        let mut spec = serde_json::json!({"secretRef": {"name": "db"}});
        if let Some(name) = link_secret {
            spec["linkSecretRef"] = serde_json::json!({ "name": name });
        }
        OneTimeShare::new("x", serde_json::from_value(spec).unwrap())
    }

    fn shared() -> OneTimeShareStatus {
        OneTimeShareStatus {
            link: Some("https://ots.example/secret/skLINK".into()),
            metadata_key: Some("mkKEY".into()),
            metadata_link: Some("https://ots.example/receipt/mkKEY".into()),
            server_url: Some("https://ots.example".into()),
            ..Default::default()
        }
    }

    #[test]
    fn with_a_link_secret_status_names_the_secret_and_holds_no_link() {
        let obj = share(Some("handoff-link"));
        let public = public_status(&obj, shared());
        assert_eq!(public.link, None);
        assert_eq!(public.metadata_key, None);
        assert_eq!(public.metadata_link, None);
        assert_eq!(public.link_secret_name.as_deref(), Some("handoff-link"));
        assert!(status_matches(
            &obj,
            &public,
            "mkKEY",
            "https://ots.example"
        ));
        // A link written into status by someone else does not match: it is restored.
        assert!(!status_matches(
            &obj,
            &shared(),
            "mkKEY",
            "https://ots.example"
        ));
    }

    #[test]
    fn without_a_link_secret_status_is_unchanged_and_matched_by_key() {
        let obj = share(None);
        assert_eq!(public_status(&obj, shared()), shared());
        assert!(status_matches(
            &obj,
            &shared(),
            "mkKEY",
            "https://ots.example"
        ));
        assert!(!status_matches(
            &obj,
            &shared(),
            "other",
            "https://ots.example"
        ));
        assert!(!status_matches(
            &obj,
            &shared(),
            "mkKEY",
            "https://other.example"
        ));
    }
}
