//! The floor: the API calls a share needs (get the Secret, share the value, write the status),
//! issued by a bare loop with the same concurrency and no controller machinery. The `Contract`
//! variant also makes the three writes the operator's contract adds: the `ots.dev/burn`
//! finalizer before the share, the record Secret (in the state namespace, before the status,
//! with the operator's own `Records::save`) and a `Shared` Event after it: 5 apiserver requests
//! per share, as the operator makes.

use crate::BenchError;
use crate::workload::{secret_name, share_name};
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use ots_operator::controller::records::{Records, ShareRecord, StoredRecord};
use ots_operator::controller::value::build_value;
use ots_operator::ots::{OtsClient, ShareRequest};
use ots_operator::resource::{OneTimeShare, OneTimeShareStatus, Phase};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Lifetime the operator asks for by default (7 days).
const TTL: Duration = Duration::from_secs(7 * 86400);

/// Which calls the loop makes per share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Calls {
    /// Get the Secret, share, write the status.
    Bare,
    /// Also add the finalizer first, write the record Secret before the status and publish an
    /// Event last, as the operator's contract does.
    Contract,
}

/// Where the operator keeps its records when it runs outside a pod (`--state-namespace`'s
/// default there).
pub const STATE_NAMESPACE: &str = "default";

/// Shares `count` resources of `ns` with `concurrency` in flight; returns the elapsed time.
pub async fn run(
    client: &Client,
    ots: &OtsClient,
    ns: &str,
    count: usize,
    concurrency: usize,
    calls: Calls,
) -> Result<Duration, BenchError> {
    let records = Records::new(client.clone(), STATE_NAMESPACE);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let shares: Api<OneTimeShare> = Api::namespaced(client.clone(), ns);
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let params = PatchParams::apply("ots-bench-floor").force();
    let started = Instant::now();
    futures::stream::iter((0..count).map(Ok::<_, BenchError>))
        .try_for_each_concurrent(concurrency, |i| {
            let (secrets, shares, events, params, records) = (
                secrets.clone(),
                shares.clone(),
                events.clone(),
                params.clone(),
                records.clone(),
            );
            async move {
                let mut uid = None;
                if calls == Calls::Contract {
                    let finalizer = serde_json::json!({
                        "metadata": { "finalizers": ["ots.dev/burn"] }
                    });
                    let patched = shares
                        .patch(
                            &share_name(i),
                            &PatchParams::default(),
                            &Patch::Merge(&finalizer),
                        )
                        .await?;
                    uid = patched.metadata.uid;
                }
                let secret = secrets.get(&secret_name(i)).await?;
                let data: BTreeMap<String, Vec<u8>> = secret
                    .data
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.0.clone()))
                    .collect();
                let value = build_value(&secret_name(i), &data, Some("value"))?;
                let receipt = ots.share(&ShareRequest::new(value).with_ttl(TTL)).await?;
                let status = status_for(ots, &receipt, secret.metadata.resource_version);
                if let Some(uid) = uid {
                    records.save(&record_for(uid, ns, i, &status)).await?;
                }
                let patch = serde_json::json!({
                    "apiVersion": "ots.dev/v1alpha1",
                    "kind": "OneTimeShare",
                    "status": status,
                });
                let updated = shares
                    .patch_status(&share_name(i), &params, &Patch::Apply(&patch))
                    .await?;
                if calls == Calls::Contract {
                    events
                        .create(&PostParams::default(), &shared_event(ns, &updated))
                        .await?;
                }
                Ok(())
            }
        })
        .await?;
    Ok(started.elapsed())
}

/// A status with the same fields the operator writes after a share.
fn status_for(
    ots: &OtsClient,
    receipt: &ots_operator::ots::Receipt,
    source_resource_version: Option<String>,
) -> OneTimeShareStatus {
    let now = Timestamp::now();
    let ttl = receipt.ttl.unwrap_or(TTL.as_secs());
    let expires = now
        .checked_add(SignedDuration::from_secs(ttl as i64))
        .unwrap_or(now);
    OneTimeShareStatus {
        phase: Phase::Shared,
        link: receipt.secret_link(ots.base_url()).map(|u| u.to_string()),
        metadata_key: Some(receipt.metadata_key.clone()),
        metadata_link: Some(receipt.receipt_link(ots.base_url()).to_string()),
        link_secret_name: None,
        server_url: Some(ots.base_url().as_str().trim_end_matches('/').to_owned()),
        secret_state: Some(receipt.state.as_str().to_owned()),
        ttl_seconds: Some(ttl as i64),
        shared_at: Some(Time(now)),
        expires_at: Some(Time(expires)),
        received_at: None,
        opened_at: None,
        burned_at: None,
        expired_at: None,
        history: Vec::new(),
        passphrase_protected: Some(false),
        source_resource_version,
        reshare_token: None,
        burn_token: None,
        observed_generation: Some(1),
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: "Shared".into(),
            message: "the link is ready to hand out".into(),
            observed_generation: Some(1),
            last_transition_time: Time(now),
        }],
    }
}

/// The record the operator writes for a first link (no passphrase, its own credentials).
fn record_for(uid: String, ns: &str, i: usize, status: &OneTimeShareStatus) -> StoredRecord {
    let seconds = |t: &Option<Time>| t.as_ref().map_or(0, |t| t.0.as_second());
    StoredRecord {
        record: ShareRecord {
            uid,
            namespace: ns.to_owned(),
            name: share_name(i),
            metadata_key: status.metadata_key.clone().unwrap_or_default(),
            server_url: status.server_url.clone().unwrap_or_default(),
            link: status.link.clone().unwrap_or_default(),
            metadata_link: status.metadata_link.clone().unwrap_or_default(),
            ttl_seconds: status.ttl_seconds.unwrap_or_default(),
            shared_at: seconds(&status.shared_at),
            expires_at: seconds(&status.expires_at),
            passphrase_protected: false,
            source_resource_version: status.source_resource_version.clone(),
            reshare_token: None,
            links_in_a_row: 1,
            reissued_at: Vec::new(),
            burn_token: None,
            history: Vec::new(),
        },
        passphrase: None,
        credentials: None,
        ca: None,
    }
}

/// A `Shared` Event about a share, like the one the operator publishes.
fn shared_event(ns: &str, share: &OneTimeShare) -> Event {
    let now = Timestamp::now();
    Event {
        metadata: ObjectMeta {
            name: Some(format!(
                "{}.{:016x}",
                share.metadata.name.clone().unwrap_or_default(),
                rand::random::<u64>()
            )),
            namespace: Some(ns.to_owned()),
            ..ObjectMeta::default()
        },
        action: Some("Share".into()),
        event_time: Some(MicroTime(now)),
        note: Some("the Secret was shared; the link is in status.link".into()),
        reason: Some("Shared".into()),
        regarding: Some(ObjectReference {
            api_version: Some("ots.dev/v1alpha1".into()),
            kind: Some("OneTimeShare".into()),
            name: share.metadata.name.clone(),
            namespace: Some(ns.to_owned()),
            uid: share.metadata.uid.clone(),
            resource_version: share.metadata.resource_version.clone(),
            ..ObjectReference::default()
        }),
        reporting_controller: Some("ots-bench-floor".into()),
        reporting_instance: Some("ots-bench-floor".into()),
        type_: Some("Normal".into()),
        ..Event::default()
    }
}
