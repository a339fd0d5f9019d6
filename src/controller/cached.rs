//! The form in which the watch cache keeps a OneTimeShare: its (slimmed) metadata, a few facts
//! the passes over the whole cache ask about, and the spec and status packed.
//!
//! The cache holds every OneTimeShare the operator watches, and a decoded one is large: the
//! struct alone is over a kibibyte (most of it fields a share does not use), plus a dozen small
//! strings. Packed, the spec and status are their JSON compressed with LZ4 against a dictionary of
//! the field names and the values they usually take: a shared share's cached form is about a
//! third of its decoded size (design.md's memory bar: at most 4 KiB per share, all told).
//!
//! A reconcile unpacks the one object it works on (JSON of a few hundred bytes: microseconds).
//! The housekeeping pass, the live-link count per Secret and the live shares per server object
//! read the facts in [`Facts`] instead, and unpack only the shares those facts select.

use crate::resource::{
    OneTimeShare, OneTimeShareSpec, OneTimeShareStatus, Phase, ServerKind, ServerRef,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::core::error_boundary::InvalidObject;
use kube::core::{DeserializeGuard, NamespaceResourceScope};
use serde::{Deserialize, Deserializer, Serialize};
use std::borrow::Cow;
use std::hash::{Hash, Hasher};

/// What LZ4 finds its matches in besides the text itself: the field names and usual values of a
/// share's spec and status as serde writes them. Changing it changes nothing but sizes (it is
/// the same for packing and unpacking in one process; nothing packed outlives the process).
const DICTIONARY: &[u8] = br#"[{"secretRef":{"name":"","key":"password"},"ttl":"7d","passphraseSecretRef":{"name":"","key":"passphrase"},"recipient":"","serverRef":{"kind":"OtsServer","name":""},"deletionPolicy":"Burn","onSecretChange":"Ignore","onExpiry":"Keep","linkSecretRef":{"name":""}},{"phase":"Shared","link":"https://","metadataKey":"","metadataLink":"https:///receipt/","linkSecretName":"","serverUrl":"https://","secretState":"new","ttlSeconds":604800,"sharedAt":"2026-12-01T00:00:00Z","expiresAt":"2026-12-08T00:00:00Z","receivedAt":"","openedAt":"","burnedAt":"","expiredAt":"","history":[{"sharedAt":"","ended":"Expired","endedAt":""}],"passphraseProtected":false,"sourceResourceVersion":"","reshareToken":"","burnToken":"","observedGeneration":1,"conditions":[{"lastTransitionTime":"2026-12-01T00:00:00Z","message":"the secret is shared; the link can be opened once","observedGeneration":1,"reason":"Shared","status":"True","type":"Ready"}]}]"#;

/// A OneTimeShare as the watch cache keeps it.
#[derive(Clone)]
pub struct CachedShare {
    metadata: ObjectMeta,
    facts: Facts,
    body: Body,
}

/// What the passes over the whole cache ask about a share, without unpacking it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The phase its status shows (Pending without a status).
    pub phase: Phase,
    /// [`secret_digest`] of `spec.secretRef.name`.
    pub secret: u64,
    /// Which server it uses, as [`server_ref_digest`] or [`server_url_digest`] compute it: its
    /// `serverRef`, else (no inline server either) the URL its status names; 0 for an inline
    /// server or none known.
    pub server: u64,
    /// `status.sharedAt`.
    pub shared_at: Option<Time>,
    /// `status.expiresAt`, in seconds since the epoch.
    pub expires_at: Option<i64>,
    /// `status.ttlSeconds`.
    pub ttl_seconds: Option<i64>,
}

#[derive(Clone)]
enum Body {
    /// LZ4 (its size first) of the JSON of `(spec, status)`.
    Share(Box<[u8]>),
    /// The object could not be decoded: why.
    Invalid(Box<str>),
}

/// What [`CachedShare::pack`] writes and [`CachedShare::share`] reads.
#[derive(Serialize, Deserialize)]
struct Packed<'a> {
    spec: Cow<'a, OneTimeShareSpec>,
    status: Cow<'a, Option<OneTimeShareStatus>>,
}

/// A digest to select shares by before unpacking them: equal values give equal digests within a
/// process (the hasher's keys are fixed); a rare equal digest of other values only costs an unpack.
fn digest(value: impl Hash) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// [`Facts::secret`] of shares of the Secret `name`.
pub fn secret_digest(name: &str) -> u64 {
    digest(("secret", name))
}

/// [`Facts::server`] of shares whose `serverRef` names `kind` `name`.
pub fn server_ref_digest(kind: ServerKind, name: &str) -> u64 {
    digest(("ref", kind.as_str(), name))
}

/// [`Facts::server`] of shares that name no server and were shared to `url`.
pub fn server_url_digest(url: &str) -> u64 {
    digest(("url", url.trim_end_matches('/')))
}

impl Facts {
    fn of(spec: &OneTimeShareSpec, status: Option<&OneTimeShareStatus>) -> Self {
        let server = match (&spec.server_ref, &spec.server) {
            (Some(ServerRef { kind, name }), _) => server_ref_digest(*kind, name),
            (None, None) => status
                .and_then(|s| s.server_url.as_deref())
                .map_or(0, server_url_digest),
            (None, Some(_)) => 0,
        };
        Facts {
            phase: status.map(|s| s.phase).unwrap_or_default(),
            secret: secret_digest(&spec.secret_ref.name),
            server,
            shared_at: status.and_then(|s| s.shared_at.clone()),
            expires_at: status.and_then(|s| Some(s.expires_at.as_ref()?.0.as_second())),
            ttl_seconds: status.and_then(|s| s.ttl_seconds),
        }
    }
}

impl CachedShare {
    /// Packs a decoded share.
    pub fn pack(share: OneTimeShare) -> Self {
        let OneTimeShare {
            metadata,
            spec,
            status,
        } = share;
        let facts = Facts::of(&spec, status.as_ref());
        let packed = Packed {
            spec: Cow::Borrowed(&spec),
            status: Cow::Borrowed(&status),
        };
        let body = match serde_json::to_vec(&packed) {
            Ok(json) => Body::Share(
                lz4_flex::block::compress_prepend_size_with_dict(&json, DICTIONARY)
                    .into_boxed_slice(),
            ),
            // Not reachable for these types (string keys, no custom serializers that fail).
            Err(e) => Body::Invalid(format!("cannot be cached: {e}").into()),
        };
        CachedShare {
            metadata,
            facts,
            body,
        }
    }

    /// The share, decoded; or why it cannot be (it was not decodable when it came from the API
    /// server).
    pub fn share(&self) -> Result<OneTimeShare, Box<InvalidObject>> {
        let invalid = |error: String| {
            Box::new(InvalidObject {
                error,
                metadata: self.metadata.clone(),
            })
        };
        match &self.body {
            Body::Invalid(error) => Err(invalid(error.to_string())),
            Body::Share(bytes) => {
                let json = lz4_flex::block::decompress_size_prepended_with_dict(bytes, DICTIONARY)
                    .map_err(|e| invalid(format!("cannot unpack the cached object: {e}")))?;
                let packed: Packed<'static> = serde_json::from_slice(&json)
                    .map_err(|e| invalid(format!("cannot unpack the cached object: {e}")))?;
                Ok(OneTimeShare {
                    metadata: self.metadata.clone(),
                    spec: packed.spec.into_owned(),
                    status: packed.status.into_owned(),
                })
            }
        }
    }

    /// Whether the object could be decoded.
    pub fn is_valid(&self) -> bool {
        matches!(self.body, Body::Share(_))
    }

    /// What the passes over the cache ask about (all default for an undecodable object).
    pub fn facts(&self) -> &Facts {
        &self.facts
    }

    /// The packed size in bytes (for tests and figures).
    #[cfg(test)]
    fn packed_len(&self) -> usize {
        match &self.body {
            Body::Share(bytes) => bytes.len(),
            Body::Invalid(error) => error.len(),
        }
    }
}

impl<'de> Deserialize<'de> for CachedShare {
    /// Decodes as [`DeserializeGuard`] does (an object that is not a valid OneTimeShare is kept
    /// with its metadata and the reason), then packs.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let DeserializeGuard(decoded) =
            DeserializeGuard::<OneTimeShare>::deserialize(deserializer)?;
        Ok(match decoded {
            Ok(share) => CachedShare::pack(share),
            Err(invalid) => CachedShare {
                metadata: invalid.metadata,
                facts: Facts::default(),
                body: Body::Invalid(invalid.error.into()),
            },
        })
    }
}

/// Names the object and its phase, nothing else: the packed status holds the link and the
/// metadata key.
impl std::fmt::Debug for CachedShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedShare")
            .field("namespace", &self.metadata.namespace)
            .field("name", &self.metadata.name)
            .field("phase", &self.facts.phase)
            .field("valid", &self.is_valid())
            .finish()
    }
}

impl kube::Resource for CachedShare {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        OneTimeShare::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        OneTimeShare::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        OneTimeShare::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        OneTimeShare::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A share as the operator leaves it once shared, with the strings it usually holds.
    fn shared() -> OneTimeShare {
        serde_json::from_value(json!({
            "apiVersion": "ots.dev/v1alpha1",
            "kind": "OneTimeShare",
            "metadata": {
                "name": "db-password-17", "namespace": "team-a",
                "uid": "3f0e7c52-8d0a-4f4e-9d36-5b2f7b9e0c11", "resourceVersion": "184467",
                "generation": 1, "creationTimestamp": "2026-12-01T10:00:00Z",
                "finalizers": ["ots.dev/burn"]
            },
            "spec": {
                "secretRef": {"name": "db-credentials", "key": "password"},
                "serverRef": {"kind": "OtsServer", "name": "eu"}
            },
            "status": {
                "phase": "Shared",
                "link": "https://eu.onetimesecret.com/secret/3o1k9x2m7q4v8n5b6c0z1a2s3d4f5g6",
                "metadataKey": "7h8j9k0l1p2o3i4u5y6t7r8e9w0q1a2",
                "metadataLink": "https://eu.onetimesecret.com/receipt/7h8j9k0l1p2o3i4u5y6t7r8e9w0q1a2",
                "serverUrl": "https://eu.onetimesecret.com",
                "secretState": "new",
                "ttlSeconds": 604800,
                "sharedAt": "2026-12-01T10:00:01Z",
                "expiresAt": "2026-12-08T10:00:01Z",
                "passphraseProtected": false,
                "sourceResourceVersion": "184460",
                "observedGeneration": 1,
                "conditions": [{
                    "type": "Ready", "status": "True", "reason": "Shared",
                    "message": "the secret is shared; the link can be opened once",
                    "lastTransitionTime": "2026-12-01T10:00:01Z", "observedGeneration": 1
                }]
            }
        }))
        .expect("a OneTimeShare")
    }

    fn assert_same(unpacked: &OneTimeShare, share: &OneTimeShare) {
        assert_eq!(unpacked.metadata, share.metadata);
        assert_eq!(unpacked.spec, share.spec);
        assert_eq!(unpacked.status, share.status);
    }

    #[test]
    fn a_packed_share_unpacks_to_the_same_share() {
        let share = shared();
        let cached = CachedShare::pack(share.clone());
        assert_same(&cached.share().expect("unpacks"), &share);
        assert_eq!(cached.facts().phase, Phase::Shared);
        assert_eq!(cached.facts().secret, secret_digest("db-credentials"));
        assert_eq!(
            cached.facts().server,
            server_ref_digest(ServerKind::OtsServer, "eu")
        );
        assert_eq!(cached.facts().ttl_seconds, Some(604800));
        assert_eq!(
            cached.facts().shared_at,
            share.status.as_ref().and_then(|s| s.shared_at.clone())
        );

        // Every field of the spec and status survives, the rare ones too.
        let mut full = shared();
        full.spec = serde_json::from_value(json!({
            "secretRef": {"name": "db"}, "ttl": "1h",
            "passphraseSecretRef": {"name": "pp", "key": "k"}, "recipient": "a@example.com",
            "server": {"url": "https://ots.example.com", "api": "v2"},
            "deletionPolicy": "Keep", "onSecretChange": "Reshare", "onExpiry": "Reshare",
            "maxShares": 3, "linkSecretRef": {"name": "link"},
            "generate": {"length": 40}, "notifications": {"optOut": true}
        }))
        .expect("a spec");
        let status = full.status.as_mut().expect("a status");
        status.history = serde_json::from_value(json!([
            {"sharedAt": "2026-11-01T00:00:00Z", "ended": "Expired", "endedAt": "2026-11-02T00:00:00Z"}
        ]))
        .expect("a history");
        status.reshare_token = Some("again".into());
        let cached = CachedShare::pack(full.clone());
        assert_same(&cached.share().expect("unpacks"), &full);
        assert_eq!(
            cached.facts().server,
            0,
            "an inline server is not selected by digest"
        );
    }

    #[test]
    fn a_share_without_a_server_is_found_by_the_url_it_was_shared_to() {
        let mut share = shared();
        share.spec.server_ref = None;
        let cached = CachedShare::pack(share);
        assert_eq!(
            cached.facts().server,
            server_url_digest("https://eu.onetimesecret.com/")
        );
    }

    #[test]
    fn an_undecodable_object_keeps_its_metadata_and_the_reason() {
        let cached: CachedShare = serde_json::from_value(json!({
            "apiVersion": "ots.dev/v1alpha1",
            "kind": "OneTimeShare",
            "metadata": {"name": "odd", "namespace": "team-a", "uid": "u-1"},
            "spec": {"secretRef": 42}
        }))
        .expect("a guarded decode never fails on the spec");
        assert!(!cached.is_valid());
        let invalid = cached.share().expect_err("not a OneTimeShare");
        assert_eq!(invalid.metadata.name.as_deref(), Some("odd"));
        assert!(
            invalid.error.contains("SecretSourceRef"),
            "{}",
            invalid.error
        );
        assert_eq!(cached.facts().phase, Phase::Pending);
    }

    #[test]
    fn a_shared_share_is_cached_in_a_third_of_its_decoded_size() {
        let share = shared();
        let json = serde_json::to_vec(&(&share.spec, &share.status)).expect("json");
        let cached = CachedShare::pack(share);
        // The link and the metadata key are random: they stay as they are (about 90 bytes).
        let packed = cached.packed_len();
        println!(
            "packed {packed} bytes; JSON {} bytes; OneTimeShare {} bytes inline, CachedShare {}",
            json.len(),
            std::mem::size_of::<OneTimeShare>(),
            std::mem::size_of::<CachedShare>()
        );
        assert!(
            packed <= 360,
            "{packed} bytes packed, {} as JSON",
            json.len()
        );
        // The decoded struct alone is over a kibibyte inline, before its strings.
        assert!(std::mem::size_of::<OneTimeShare>() > 1000);
        assert!(std::mem::size_of::<CachedShare>() < 500);
    }

    #[test]
    fn debug_never_shows_the_link_or_the_key() {
        let cached = CachedShare::pack(shared());
        let shown = format!("{cached:?}");
        assert!(
            !shown.contains("3o1k9x2m7q4v8n5b6c0z1a2s3d4f5g6"),
            "{shown}"
        );
        assert!(
            !shown.contains("7h8j9k0l1p2o3i4u5y6t7r8e9w0q1a2"),
            "{shown}"
        );
        assert!(shown.contains("db-password-17"), "{shown}");
    }
}
