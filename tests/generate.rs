//! Generate and share on a real control plane: `spec.generate` makes the operator draw a value,
//! write it into a Secret it marks as its own and share it. The link reveals exactly what the
//! application reads from the Secret; the value is in no log line, Event or status; it is never
//! replaced (second reconcile, restart); a Secret the operator did not make is never written;
//! `secretPolicy` decides whether the Secret outlives the share.

mod support;

use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams};
use ots_operator::resource::{
    GENERATED_BY_ANNOTATION, GENERATED_BY_UID_ANNOTATION, MANAGED_BY_LABEL, MANAGED_BY_VALUE,
};
use ots_testserver::Config;
use serde_json::json;
use std::time::{Duration, Instant};
use support::cluster::with_controller_manager;
use support::operator::*;

/// The value under `key` of Secret `name`, as the application reads it.
async fn secret_value(client: &kube::Client, ns: &str, name: &str, key: &str) -> Option<String> {
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .expect("get the Secret")?;
    let bytes = secret.data?.get(key)?.0.clone();
    Some(String::from_utf8(bytes).expect("a text value"))
}

fn get_secrets(client: &kube::Client, ns: &str) -> Api<Secret> {
    Api::namespaced(client.clone(), ns)
}

/// Every form in which the value could leak: as is, base64 (Secret data) and URL-encoded.
fn forms(value: &str) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let url: String = value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    vec![value.to_owned(), b64.encode(value), url]
}

#[tokio::test]
async fn a_generated_value_is_what_the_link_reveals_and_appears_in_no_log_event_or_status() {
    with_controller_manager();
    let (client, ns) = setup("generate-leaks").await;
    let server = ots_server(Config::default());
    let mut operator =
        Operator::start_with(&fast_args(&ns, &server.url()), &[("RUST_LOG", "trace")]);
    create_share(
        &client,
        &ns,
        "app-token",
        json!({
            "secretRef": {"name": "app", "key": "token"},
            "generate": {"length": 40, "charset": "AlphanumericSymbols"}
        }),
    )
    .await;
    let shared = wait_shared(&client, &ns, "app-token").await;
    let value = secret_value(&client, &ns, "app", "token")
        .await
        .expect("the Secret holds the generated value");
    assert_eq!(value.len(), 40);
    assert!(
        value
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"\"'`\\".contains(&b)),
        "{} characters of the AlphanumericSymbols set",
        value.len()
    );
    let secret = get_secrets(&client, &ns).get("app").await.expect("get");
    assert_eq!(
        secret.metadata.labels.as_ref().unwrap()[MANAGED_BY_LABEL],
        MANAGED_BY_VALUE
    );
    let annotations = secret.metadata.annotations.clone().unwrap();
    assert_eq!(annotations[GENERATED_BY_ANNOTATION], "app-token");
    assert_eq!(
        Some(&annotations[GENERATED_BY_UID_ANNOTATION]),
        shared.metadata.uid.as_ref()
    );
    assert!(
        secret.metadata.owner_references.is_none(),
        "Retain: the Secret belongs to nobody"
    );
    let note = wait_event(&client, &ns, "app-token", "Normal", "Generated").await;
    assert!(
        note.contains("40 characters") && note.contains("\"app\""),
        "{note}"
    );

    assert_eq!(open_link(&server, &shared).await, value);
    wait_for(&client, &ns, "app-token", "phase Received", |o| {
        phase(o) == "Received"
    })
    .await;
    operator.terminate();

    let logs = operator.logs();
    assert!(logs.contains("TRACE"), "trace level reached the log");
    assert!(logs.contains("generated a value into the Secret"), "{logs}");
    let events = events(&client, &ns, "app-token").await;
    let status = serde_json::to_string(
        &shares(&client, &ns)
            .get("app-token")
            .await
            .expect("get")
            .status,
    )
    .unwrap();
    for form in forms(&value) {
        assert!(
            !logs.contains(&form),
            "the operator's trace log has the value"
        );
        assert!(!format!("{events:?}").contains(&form), "an Event has it");
        assert!(!status.contains(&form), "status has it");
    }
}

#[tokio::test]
async fn a_generated_value_is_never_overwritten_by_a_second_reconcile_or_a_restart() {
    with_controller_manager();
    let (client, ns) = setup("generate-once").await;
    let server = ots_server(Config::default());
    let mut operator = Operator::start(&ns, &server.url(), &[]);
    create_share(
        &client,
        &ns,
        "db-password",
        json!({"secretRef": {"name": "db", "key": "password"}, "generate": {}}),
    )
    .await;
    let first = wait_shared(&client, &ns, "db-password").await;
    let value = secret_value(&client, &ns, "db", "password")
        .await
        .expect("a generated value");
    assert_eq!(value.len(), 32, "the default length");
    assert!(value.bytes().all(|b| b.is_ascii_alphanumeric()));
    let version = get_secrets(&client, &ns)
        .get("db")
        .await
        .unwrap()
        .metadata
        .resource_version;

    // A change of the resource reconciles it again.
    shares(&client, &ns)
        .patch(
            "db-password",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "payments"}}})),
        )
        .await
        .expect("label the share");
    tokio::time::sleep(Duration::from_secs(3)).await;
    // A restart, too.
    operator.kill();
    let _operator = Operator::start(&ns, &server.url(), &[]);
    tokio::time::sleep(Duration::from_secs(5)).await;

    let after = wait_shared(&client, &ns, "db-password").await;
    assert_eq!(
        after.status.as_ref().unwrap().metadata_key,
        first.status.as_ref().unwrap().metadata_key,
        "the same link"
    );
    assert_eq!(calls(&server, "share"), 1, "one share call");
    let secret = get_secrets(&client, &ns).get("db").await.unwrap();
    assert_eq!(
        secret.metadata.resource_version, version,
        "the Secret was not written again"
    );
    assert_eq!(
        secret_value(&client, &ns, "db", "password")
            .await
            .as_deref(),
        Some(value.as_str())
    );
    assert_eq!(open_link(&server, &after).await, value);
}

#[tokio::test]
async fn a_value_written_before_a_crash_is_shared_as_it_is_not_regenerated() {
    with_controller_manager();
    let (client, ns) = setup("generate-crash").await;
    let server = ots_server(Config::default());
    // What a crash between the write and the share leaves behind: the operator's Secret with the
    // value, and no link yet.
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {
            "name": "app",
            "labels": { MANAGED_BY_LABEL: MANAGED_BY_VALUE },
            "annotations": { GENERATED_BY_ANNOTATION: "app-token" },
        },
        "stringData": { "token": "written-before-the-crash" },
    }))
    .unwrap();
    let created = get_secrets(&client, &ns)
        .create(&Default::default(), &secret)
        .await
        .expect("create the Secret");
    let _operator = Operator::start(&ns, &server.url(), &[]);
    create_share(
        &client,
        &ns,
        "app-token",
        json!({"secretRef": {"name": "app", "key": "token"}, "generate": {}}),
    )
    .await;
    let shared = wait_shared(&client, &ns, "app-token").await;
    assert_eq!(
        open_link(&server, &shared).await,
        "written-before-the-crash"
    );
    let after = get_secrets(&client, &ns).get("app").await.unwrap();
    assert_eq!(
        after.metadata.resource_version, created.metadata.resource_version,
        "the Secret was not written"
    );
    let events = events(&client, &ns, "app-token").await;
    assert!(
        !events.iter().any(|(_, reason, _)| reason == "Generated"),
        "nothing was generated: {events:?}"
    );
}

#[tokio::test]
async fn a_secret_the_operator_did_not_make_is_refused_and_left_untouched() {
    with_controller_manager();
    let (client, ns) = setup("generate-foreign").await;
    let server = ots_server(Config::default());
    let _operator = Operator::start(&ns, &server.url(), &[]);
    create_secret(&client, &ns, "app", &[("other", b"hand-made")]).await;
    let before = get_secrets(&client, &ns).get("app").await.unwrap();
    create_share(
        &client,
        &ns,
        "grab",
        json!({"secretRef": {"name": "app", "key": "token"}, "generate": {}}),
    )
    .await;
    let failed = wait_for(&client, &ns, "grab", "SecretNotOwned", |o| {
        ready_reason_is(o, "SecretNotOwned")
    })
    .await;
    assert_eq!(phase(&failed), "Failed");
    let (_, _, message) = ready(&failed).unwrap();
    assert!(
        message.contains("ots.dev/managed-by=ots-operator") && message.contains("\"app\""),
        "{message}"
    );
    wait_event(&client, &ns, "grab", "Warning", "SecretNotOwned").await;
    // Also the key the share names, when it is there: a foreign value is not shared either.
    create_secret(&client, &ns, "creds", &[("token", b"hand-made-token")]).await;
    create_share(
        &client,
        &ns,
        "grab-existing",
        json!({"secretRef": {"name": "creds", "key": "token"}, "generate": {}}),
    )
    .await;
    wait_for(&client, &ns, "grab-existing", "SecretNotOwned", |o| {
        ready_reason_is(o, "SecretNotOwned")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let after = get_secrets(&client, &ns).get("app").await.unwrap();
    assert_eq!(
        after.metadata.resource_version,
        before.metadata.resource_version
    );
    assert_eq!(
        after.data.unwrap().keys().collect::<Vec<_>>(),
        vec!["other"],
        "no key was added"
    );
    assert_eq!(calls(&server, "share"), 0, "nothing was shared");
}

/// Issue 20 (F4) changed this contract: an absent key is filled only in the Secret the operator
/// made for that very share (its key removed, say); a second share naming a new key of it is
/// refused, since the right to create Secrets is not the right to write into someone else's.
#[tokio::test]
async fn an_absent_key_is_filled_only_in_the_secret_made_for_that_share_and_other_keys_stay() {
    with_controller_manager();
    let (client, ns) = setup("generate-fill").await;
    let server = ots_server(Config::default());
    let _operator = Operator::start(&ns, &server.url(), &[]);
    create_share(
        &client,
        &ns,
        "api-key",
        json!({
            "secretRef": {"name": "app", "key": "apiKey"},
            "generate": {"charset": "Hex"},
            "onSecretChange": "Reshare"
        }),
    )
    .await;
    let first = wait_shared(&client, &ns, "api-key").await;
    let api_key = secret_value(&client, &ns, "app", "apiKey").await.unwrap();
    assert!(api_key.bytes().all(|b| b.is_ascii_hexdigit()), "hex");

    // Someone replaces the key with another one: the share's own Secret gets a fresh value for
    // its key (shared under a new link), and the other key stays.
    let other = base64::engine::general_purpose::STANDARD.encode("kept");
    get_secrets(&client, &ns)
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"apiKey": null, "other": other}})),
        )
        .await
        .expect("replace the key");
    let refilled = wait_for(
        &client,
        &ns,
        "api-key",
        "a new link for the refilled key",
        |o| phase(o) == "Shared" && metadata_key(o) != metadata_key(&first),
    )
    .await;
    let fresh = secret_value(&client, &ns, "app", "apiKey").await.unwrap();
    assert_ne!(fresh, api_key, "a fresh value");
    assert_eq!(open_link(&server, &refilled).await, fresh);
    assert_eq!(
        secret_value(&client, &ns, "app", "other").await.as_deref(),
        Some("kept"),
        "the other key stays"
    );

    // Another share may not add its key to that Secret.
    create_share(
        &client,
        &ns,
        "pin",
        json!({
            "secretRef": {"name": "app", "key": "pin"},
            "generate": {"length": 8, "charset": "Numeric"}
        }),
    )
    .await;
    let refused = wait_for(&client, &ns, "pin", "reason SecretNotOwned", |o| {
        ready_reason_is(o, "SecretNotOwned")
    })
    .await;
    assert_eq!(phase(&refused), "Failed");
    assert_eq!(
        secret_value(&client, &ns, "app", "pin").await,
        None,
        "no key was added"
    );
    assert_eq!(
        secret_value(&client, &ns, "app", "apiKey").await.as_deref(),
        Some(fresh.as_str()),
        "the share's own key stays"
    );
}

#[tokio::test]
async fn secret_policy_delete_removes_the_secret_with_the_share_and_retain_keeps_it() {
    with_controller_manager();
    let (client, ns) = setup("generate-policy").await;
    let server = ots_server(Config::default());
    let _operator = Operator::start(&ns, &server.url(), &[]);
    create_share(
        &client,
        &ns,
        "temporary",
        json!({
            "secretRef": {"name": "scratch", "key": "value"},
            "generate": {"secretPolicy": "Delete"}
        }),
    )
    .await;
    create_share(
        &client,
        &ns,
        "lasting",
        json!({"secretRef": {"name": "kept", "key": "value"}, "generate": {}}),
    )
    .await;
    let temporary = wait_shared(&client, &ns, "temporary").await;
    wait_shared(&client, &ns, "lasting").await;
    let scratch = get_secrets(&client, &ns).get("scratch").await.unwrap();
    let owners = scratch.metadata.owner_references.unwrap_or_default();
    assert_eq!(owners.len(), 1);
    assert_eq!(Some(&owners[0].uid), temporary.metadata.uid.as_ref());
    assert_eq!(owners[0].kind, "OneTimeShare");

    delete_share(&client, &ns, "temporary").await;
    delete_share(&client, &ns, "lasting").await;
    wait_gone(&client, &ns, "temporary").await;
    wait_gone(&client, &ns, "lasting").await;
    let deadline = Instant::now() + WAIT;
    while get_secrets(&client, &ns)
        .get_opt("scratch")
        .await
        .unwrap()
        .is_some()
    {
        assert!(
            Instant::now() < deadline,
            "the Delete Secret was not garbage-collected"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        secret_value(&client, &ns, "kept", "value").await.is_some(),
        "the Retain Secret outlives its share"
    );
}

#[tokio::test]
async fn generate_without_a_key_or_changed_later_is_refused_at_apply() {
    with_controller_manager();
    let (client, ns) = setup("generate-schema").await;
    support::operator::install_crd();
    let create = |name: &str, spec: serde_json::Value| {
        let share: ots_operator::resource::OneTimeShare = serde_json::from_value(json!({
            "apiVersion": "ots.dev/v1alpha1",
            "kind": "OneTimeShare",
            "metadata": {"name": name},
            "spec": spec,
        }))
        .unwrap();
        let api = shares(&client, &ns);
        async move { api.create(&Default::default(), &share).await }
    };
    let refused = create(
        "no-key",
        json!({"secretRef": {"name": "app"}, "generate": {}}),
    )
    .await
    .expect_err("generate without a key is refused");
    assert!(
        refused.to_string().contains("generate needs secretRef.key"),
        "{refused}"
    );
    for length in [7, 1025] {
        let refused = create(
            "bad-length",
            json!({"secretRef": {"name": "app", "key": "k"}, "generate": {"length": length}}),
        )
        .await
        .expect_err("a length out of bounds is refused");
        assert!(refused.to_string().contains("length"), "{refused}");
    }
    create(
        "fixed",
        json!({"secretRef": {"name": "app", "key": "k"}, "generate": {"length": 16}}),
    )
    .await
    .expect("a valid generate spec");
    let changed = shares(&client, &ns)
        .patch(
            "fixed",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"generate": {"length": 64}}})),
        )
        .await
        .expect_err("generate is immutable");
    assert!(
        changed.to_string().contains("generate is immutable"),
        "{changed}"
    );
}
