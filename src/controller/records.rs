//! The operator's own record of each share, kept in a Secret of the operator's namespace.
//!
//! Status is writable by anyone with `update` on `onetimeshares/status`, so it cannot be trusted
//! to say which link belongs to a resource. The record can: it lives where only the operator (and
//! the cluster's admins) can write, it is written right after the server answered and before the
//! status write, and it holds what a burn needs (the passphrase and per-share credentials), so
//! a burn still works after the tenant's Secrets are gone or while their namespace terminates.
//!
//! - A status whose metadata key or server differs from the record is restored from the record.
//! - A status that names a link with no record is refused (`StatusTampered`): nothing is burned
//!   or tracked on its word.
//! - A deletion burns the recorded link with the recorded material, then deletes the record.
//! - A reissue (`ots.dev/reshare`) and an `onExpiry: Reshare` renewal are decided on the
//!   recorded token and count of links in a row; `status.reshareToken` only reports the token.
//! - With `spec.linkSecretRef`, status holds no link at all: the link Secret is written, and
//!   rewritten, from the record.
//!
//! Records are found by name (`ots-share-<uid>`); the operator lists them only to collect the
//! records of resources that were deleted without a finalizer (`deletionPolicy: Keep`).

use crate::error::Error;
use crate::ots::{Credentials, ExposeSecret, SecretString};
use crate::resource::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, OneTimeShare};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, PartialObjectMeta, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::fmt;

/// Label on every record Secret, so they can be listed and told apart from other Secrets.
pub const RECORD_LABEL: &str = "ots.dev/share-record";
/// Label with the namespace of the share a record belongs to.
pub const NAMESPACE_LABEL: &str = "ots.dev/share-namespace";
/// Type of the record Secrets.
pub const RECORD_TYPE: &str = "ots.dev/share-record";
/// Annotation with the recorded metadata key.
const METADATA_KEY_ANNOTATION: &str = "ots.dev/metadata-key";
/// Annotation with the recorded server URL.
const SERVER_ANNOTATION: &str = "ots.dev/server-url";
/// Field manager of record writes.
const FIELD_MANAGER: &str = "ots-operator";

const RECORD_KEY: &str = "record";
const PASSPHRASE_KEY: &str = "passphrase";
const USERNAME_KEY: &str = "username";
const API_TOKEN_KEY: &str = "apiToken";
/// The CA certificates (PEM) a server object gave the link's server; public material.
const CA_KEY: &str = "ca.crt";

/// What the operator knows about a link it made: enough to verify status, restore it, and burn.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShareRecord {
    /// uid of the OneTimeShare.
    pub uid: String,
    /// Namespace of the OneTimeShare.
    pub namespace: String,
    /// Name of the OneTimeShare.
    pub name: String,
    /// The receipt's metadata key.
    pub metadata_key: String,
    /// Base URL of the server that holds the link.
    pub server_url: String,
    /// The link handed out (kept so a wiped status can be restored).
    pub link: String,
    /// The creator's receipt link.
    pub metadata_link: String,
    /// Lifetime the server granted, in seconds.
    pub ttl_seconds: i64,
    /// When the link was made (Unix seconds).
    pub shared_at: i64,
    /// When the link expires (Unix seconds).
    pub expires_at: i64,
    /// Whether a passphrase gates the link.
    pub passphrase_protected: bool,
    /// resourceVersion of the shared Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_resource_version: Option<String>,
    /// The `ots.dev/reshare` annotation's value this link was made for: the token a reissue is
    /// decided on (status.reshareToken is only a report, writable by tenants).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reshare_token: Option<String>,
    /// How many links this one is in a row of `onExpiry: Reshare` renewals, counting the first
    /// (1 for a first share, a reissue or a reshare of a changed Secret). 0: a record written
    /// before this was recorded (then `reshare_token` is unknown too).
    #[serde(default)]
    pub links_in_a_row: u32,
    /// When this share was reissued (`ots.dev/reshare`) within the hour before its latest link,
    /// as Unix seconds, oldest first: the count `--max-reissues-per-hour` is checked against,
    /// carried from record to record (a reshare or a renewal does not reset it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reissued_at: Vec<i64>,
    /// The `ots.dev/burn` annotation's value last acted on for this share: the token a burn on
    /// request is decided on (status.burnToken is only a report). Written after the burn it
    /// asked for, so a crash in between burns again (a no-op), never skips the burn. A new link's
    /// record takes the value the share carries then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burn_token: Option<String>,
    /// The share's links that had ended when this link was made (`status.history` then):
    /// restored with status, so a wiped status does not lose them. Times only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<crate::resource::PastLink>,
}

impl ShareRecord {
    /// The `ots.dev/reshare` value the link was made for. A record from before tokens were
    /// recorded falls back to what status reports, once (the next link's record has it).
    pub fn reshare_token(&self, obj: &OneTimeShare) -> Option<String> {
        if self.links_in_a_row > 0 {
            self.reshare_token.clone()
        } else {
            obj.status.as_ref().and_then(|s| s.reshare_token.clone())
        }
    }
}

impl fmt::Debug for ShareRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The link and the metadata key are capabilities: only prefixes are shown.
        f.debug_struct("ShareRecord")
            .field("uid", &self.uid)
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("metadata_key", &prefix(&self.metadata_key))
            .field("server_url", &self.server_url)
            .finish_non_exhaustive()
    }
}

/// Certificates as PEM text.
fn pem(certs: &[rustls::pki_types::CertificateDer<'_>]) -> String {
    use base64::Engine;
    let mut out = String::new();
    for cert in certs {
        let encoded = base64::engine::general_purpose::STANDARD.encode(cert.as_ref());
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in encoded.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

/// A record with the material a burn needs.
#[derive(Clone)]
pub struct StoredRecord {
    /// The record.
    pub record: ShareRecord,
    /// The passphrase the link was shared with.
    pub passphrase: Option<SecretString>,
    /// The per-share credentials it was shared with (`None`: the operator's own, or anonymous).
    pub credentials: Option<Credentials>,
    /// The CA certificates its server object gave, besides the operator's roots: a burn then
    /// trusts the server as the share did, after a restart and after the object is deleted.
    pub ca: Option<Vec<rustls::pki_types::CertificateDer<'static>>>,
}

impl fmt::Debug for StoredRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredRecord")
            .field("record", &self.record)
            .field(
                "passphrase",
                &self.passphrase.as_ref().map(|_| "[REDACTED]"),
            )
            .field("credentials", &self.credentials)
            .field("ca", &self.ca.as_ref().map(Vec::len))
            .finish()
    }
}

fn prefix(key: &str) -> String {
    key.chars().take(6).collect()
}

/// Name of the record Secret of the resource with this uid.
pub fn record_name(uid: &str) -> String {
    format!("ots-share-{uid}")
}

/// Reads and writes records in the operator's namespace.
#[derive(Clone)]
pub struct Records {
    api: Api<Secret>,
    namespace: String,
}

impl Records {
    /// Records kept in `namespace`.
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Records {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
        }
    }

    /// The namespace records are kept in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Writes (creates or replaces) a record in one server-side apply.
    pub async fn save(&self, stored: &StoredRecord) -> Result<(), Error> {
        let record = &stored.record;
        let json = serde_json::to_vec(record).map_err(|e| Error::Record {
            detail: format!("cannot encode the record: {e}"),
        })?;
        let mut data = BTreeMap::from([(RECORD_KEY.to_owned(), ByteString(json))]);
        if let Some(passphrase) = &stored.passphrase {
            data.insert(
                PASSPHRASE_KEY.to_owned(),
                ByteString(passphrase.expose_secret().as_bytes().to_vec()),
            );
        }
        if let Some(credentials) = &stored.credentials {
            data.insert(
                USERNAME_KEY.to_owned(),
                ByteString(credentials.username.as_bytes().to_vec()),
            );
            data.insert(
                API_TOKEN_KEY.to_owned(),
                ByteString(credentials.api_token.expose_secret().as_bytes().to_vec()),
            );
        }
        if let Some(ca) = &stored.ca {
            data.insert(CA_KEY.to_owned(), ByteString(pem(ca).into_bytes()));
        }
        let name = record_name(&record.uid);
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(BTreeMap::from([
                    (RECORD_LABEL.to_owned(), "true".to_owned()),
                    (NAMESPACE_LABEL.to_owned(), record.namespace.clone()),
                    // What the admission policy checks before the operator may write a Secret.
                    (MANAGED_BY_LABEL.to_owned(), MANAGED_BY_VALUE.to_owned()),
                    (
                        "app.kubernetes.io/managed-by".to_owned(),
                        "ots-operator".to_owned(),
                    ),
                ])),
                // The key and server are annotations too, so one metadata list at start-up tells
                // which resources have a link without reading any record's data.
                annotations: Some(BTreeMap::from([
                    (
                        "ots.dev/share".to_owned(),
                        format!("{}/{}", record.namespace, record.name),
                    ),
                    (
                        METADATA_KEY_ANNOTATION.to_owned(),
                        record.metadata_key.clone(),
                    ),
                    (SERVER_ANNOTATION.to_owned(), record.server_url.clone()),
                ])),
                ..ObjectMeta::default()
            },
            type_: Some(RECORD_TYPE.to_owned()),
            data: Some(data),
            ..Secret::default()
        };
        self.api
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&secret),
            )
            .await?;
        Ok(())
    }

    /// The record of a resource, if the operator made one.
    pub async fn load(&self, uid: &str) -> Result<Option<StoredRecord>, Error> {
        let Some(secret) = self.api.get_opt(&record_name(uid)).await? else {
            return Ok(None);
        };
        let unreadable = |what: &str| Error::Record {
            detail: format!(
                "the record Secret {}/{} is unreadable ({what})",
                self.namespace,
                record_name(uid)
            ),
        };
        let data = secret.data.unwrap_or_default();
        let record: ShareRecord = data
            .get(RECORD_KEY)
            .ok_or_else(|| unreadable("no record"))
            .and_then(|raw| {
                serde_json::from_slice(&raw.0).map_err(|_| unreadable("malformed record"))
            })?;
        if record.uid != uid {
            return Err(unreadable("it belongs to another resource"));
        }
        let text = |key: &str| {
            data.get(key)
                .and_then(|v| String::from_utf8(v.0.clone()).ok())
                .filter(|s| !s.is_empty())
        };
        let credentials = match (text(USERNAME_KEY), text(API_TOKEN_KEY)) {
            (Some(user), Some(token)) => Some(Credentials::new(user, SecretString::from(token))),
            _ => None,
        };
        let ca = match data.get(CA_KEY) {
            Some(raw) => {
                use rustls::pki_types::pem::PemObject;
                let certs = rustls::pki_types::CertificateDer::pem_slice_iter(&raw.0)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| unreadable("malformed CA certificates"))?;
                Some(certs)
            }
            None => None,
        };
        Ok(Some(StoredRecord {
            record,
            passphrase: text(PASSPHRASE_KEY).map(SecretString::from),
            credentials,
            ca,
        }))
    }

    /// Deletes a resource's record; an absent record is fine.
    pub async fn delete(&self, uid: &str) -> Result<(), Error> {
        match self
            .api
            .delete(&record_name(uid), &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// One page of the records' metadata (no data read), and the token of the next page.
    async fn metadata_page(
        &self,
        token: Option<&str>,
    ) -> Result<(Vec<PartialObjectMeta<Secret>>, Option<String>), Error> {
        let list = self.api.list_metadata(&record_page(token)).await?;
        Ok((list.items, next_page(list.metadata.continue_)))
    }

    /// Every record's (uid, metadata key, server URL), from a metadata list (no data read).
    /// Records without the annotations (none are written so) are left out; they are read one
    /// by one when needed.
    pub async fn index(&self) -> Result<Vec<(String, String, String)>, Error> {
        let mut index = Vec::new();
        let mut token = None;
        loop {
            let (items, next) = self.metadata_page(token.as_deref()).await?;
            index.extend(items.into_iter().filter_map(|meta| {
                let uid = meta.name_any().strip_prefix("ots-share-")?.to_owned();
                let annotations = meta.annotations();
                let key = annotations.get(METADATA_KEY_ANNOTATION)?.clone();
                let server = annotations.get(SERVER_ANNOTATION)?.clone();
                Some((uid, key, server))
            }));
            token = next;
            if token.is_none() {
                return Ok(index);
            }
        }
    }

    /// The metadata keys of every record.
    pub async fn metadata_keys(&self) -> Result<HashSet<String>, Error> {
        let mut keys = HashSet::new();
        let mut token: Option<String> = None;
        loop {
            let list = self.api.list(&record_page(token.as_deref())).await?;
            keys.extend(
                list.items
                    .into_iter()
                    .filter_map(|secret| {
                        let raw = secret.data?.remove(RECORD_KEY)?;
                        serde_json::from_slice::<ShareRecord>(&raw.0).ok()
                    })
                    .map(|record| record.metadata_key),
            );
            token = next_page(list.metadata.continue_);
            if token.is_none() {
                return Ok(keys);
            }
        }
    }

    /// Deletes the records of resources that are gone: in `namespaces` (all when empty), not in
    /// `live`, and older than `min_age` (a record is written before its resource's status, so a
    /// young record may belong to a resource the cache has not shown yet). Returns how many.
    pub async fn collect_garbage(
        &self,
        namespaces: &[String],
        live: &HashSet<String>,
        min_age: std::time::Duration,
    ) -> Result<usize, Error> {
        let now = k8s_openapi::jiff::Timestamp::now().as_second();
        let mut deleted = 0;
        let mut gone = Vec::new();
        let mut token = None;
        loop {
            let (items, next) = self.metadata_page(token.as_deref()).await?;
            gone.extend(items.into_iter().filter_map(|meta| {
                let uid = meta.name_any().strip_prefix("ots-share-")?.to_owned();
                let namespace = meta.labels().get(NAMESPACE_LABEL);
                let watched =
                    namespaces.is_empty() || namespace.is_some_and(|ns| namespaces.contains(ns));
                let age = meta
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| now - t.0.as_second())
                    .unwrap_or(0);
                (watched && !live.contains(&uid) && age >= min_age.as_secs() as i64).then_some(uid)
            }));
            token = next;
            if token.is_none() {
                break;
            }
        }
        for uid in gone {
            self.delete(&uid).await?;
            deleted += 1;
        }
        Ok(deleted)
    }
}

/// Records per list page. A record's metadata (annotations, labels, managed fields) is ~1.2 KB
/// of JSON: 10,000 records listed at once make one answer of ~12 MB, read and parsed whole
/// (managed fields as JSON values) every 5 minutes by the record collector; a page of 500 is
/// ~0.6 MB.
const RECORD_PAGE: u32 = 500;

/// The records' list request for the page after `token` (the first page without one).
fn record_page(token: Option<&str>) -> ListParams {
    let page = ListParams::default()
        .labels(&format!("{RECORD_LABEL}=true"))
        .limit(RECORD_PAGE);
    match token {
        Some(token) => page.continue_token(token),
        None => page,
    }
}

/// The continue token of a list answer, if more pages follow.
fn next_page(token: Option<String>) -> Option<String> {
    token.filter(|t| !t.is_empty())
}

/// The record a fresh link gets.
pub fn new_record(
    obj: &OneTimeShare,
    status: &crate::resource::OneTimeShareStatus,
) -> Option<ShareRecord> {
    let secs = |t: &Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
        t.as_ref().map(|t| t.0.as_second()).unwrap_or_default()
    };
    Some(ShareRecord {
        uid: obj.uid()?,
        namespace: obj.namespace().unwrap_or_default(),
        name: obj.name_any(),
        metadata_key: status.metadata_key.clone()?,
        server_url: status.server_url.clone()?,
        link: status.link.clone()?,
        metadata_link: status.metadata_link.clone().unwrap_or_default(),
        ttl_seconds: status.ttl_seconds.unwrap_or_default(),
        shared_at: secs(&status.shared_at),
        expires_at: secs(&status.expires_at),
        passphrase_protected: status.passphrase_protected.unwrap_or(false),
        source_resource_version: status.source_resource_version.clone(),
        reshare_token: status.reshare_token.clone(),
        links_in_a_row: 1,
        reissued_at: Vec::new(),
        burn_token: status.burn_token.clone(),
        history: status.history.clone(),
    })
}

/// Whether a status describes the recorded link (same metadata key and server).
pub fn status_matches(record: &ShareRecord, status: &crate::resource::OneTimeShareStatus) -> bool {
    status.metadata_key.as_deref() == Some(record.metadata_key.as_str())
        && status.server_url.as_deref() == Some(record.server_url.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ShareRecord {
        ShareRecord {
            uid: "u-1".into(),
            namespace: "team".into(),
            name: "share".into(),
            metadata_key: "mkSECRETKEY123".into(),
            server_url: "https://eu.onetimesecret.com".into(),
            link: "https://eu.onetimesecret.com/secret/skLINK999".into(),
            metadata_link: "https://eu.onetimesecret.com/receipt/mkSECRETKEY123".into(),
            ttl_seconds: 3600,
            shared_at: 1,
            expires_at: 3601,
            passphrase_protected: true,
            source_resource_version: Some("7".into()),
            reshare_token: Some("2026-11-30".into()),
            links_in_a_row: 2,
            reissued_at: vec![1_764_460_800],
            burn_token: Some("2026-12-05T06:00:00Z".into()),
            history: vec![crate::resource::PastLink {
                shared_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::from_second(1_764_460_000).unwrap(),
                ),
                ended: crate::resource::LinkEnd::Reshared,
                ended_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::from_second(1_764_460_800).unwrap(),
                ),
            }],
        }
    }

    #[test]
    fn ca_certificates_written_as_pem_read_back_the_same() {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let certs = vec![
            CertificateDer::from((0u8..=255).cycle().take(700).collect::<Vec<u8>>()),
            CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]),
        ];
        let text = pem(&certs);
        assert!(text.lines().all(|l| l.len() <= 64), "{text}");
        let back = CertificateDer::pem_slice_iter(text.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        assert_eq!(back, certs);
    }

    #[test]
    fn debug_shows_neither_link_nor_key_nor_material() {
        let stored = StoredRecord {
            record: record(),
            passphrase: Some(SecretString::from("pass-PHRASE-1")),
            credentials: Some(Credentials::new("a@b.c", "tok-TOKEN-2")),
            ca: None,
        };
        let text = format!("{stored:?}");
        for secret in [
            "mkSECRETKEY123",
            "skLINK999",
            "pass-PHRASE-1",
            "tok-TOKEN-2",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("mkSECR"), "{text}");
    }

    #[test]
    fn a_record_round_trips_through_json() {
        let json = serde_json::to_string(&record()).unwrap();
        let back: ShareRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, record());
        assert!(json.contains("\"metadataKey\""), "{json}");
    }

    #[test]
    fn a_status_matches_only_with_the_same_key_and_server() {
        let r = record();
        let mut status = crate::resource::OneTimeShareStatus {
            metadata_key: Some(r.metadata_key.clone()),
            server_url: Some(r.server_url.clone()),
            ..Default::default()
        };
        assert!(status_matches(&r, &status));
        status.server_url = Some("https://us.onetimesecret.com".into());
        assert!(!status_matches(&r, &status));
        status.server_url = Some(r.server_url.clone());
        status.metadata_key = Some("another".into());
        assert!(!status_matches(&r, &status));
        status.metadata_key = None;
        assert!(!status_matches(&r, &status));
    }

    #[test]
    fn a_record_from_before_tokens_were_recorded_reads_as_legacy() {
        let mut json = serde_json::to_value(record()).unwrap();
        let map = json.as_object_mut().unwrap();
        map.remove("reshareToken");
        map.remove("linksInARow");
        let legacy: ShareRecord = serde_json::from_value(json).unwrap();
        assert_eq!(legacy.links_in_a_row, 0);
        assert_eq!(legacy.reshare_token, None);
    }

    #[test]
    fn record_names_are_valid_secret_names() {
        let name = record_name("0f8c2a5e-1b2c-4d5e-8f90-123456789abc");
        assert!(name.len() <= 253);
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }
}
